//! Threshold BFV for synod, built on `fhe` / `fhe-math` 0.1.1.
//!
//! This crate owns the parameter sets, the encoding of integers and fixed-point
//! reals into SIMD slots, and every multiparty protocol that touches the ring:
//! collective public-key generation ([`keygen`]), two-round relinearisation-key
//! generation ([`relin`]), rotation-key generation ([`galois`]), Shamir
//! thresholdisation over `R_q` ([`shamir`], [`thresholdize`]), threshold
//! decryption with flooding noise ([`decrypt`], [`flooding`]) and key switching
//! to a named recipient ([`keyswitch`]). Every protocol is sans-I/O: functions
//! from messages to messages, with rounds as types and secret state consumed
//! by value.
//!
//! It must never do I/O, and it must never hold a whole secret key outside the
//! test-only `oracle` module (behind the `insecure-test-params` feature).

pub mod crp;
pub mod decrypt;
pub mod encoding;
mod error;
pub mod flooding;
pub mod gadget;
pub mod galois;
mod glue;
mod kernels;
pub mod keygen;
pub mod keyswitch;
mod mul;
mod ntt;
#[cfg(feature = "insecure-test-params")]
pub mod oracle;
mod packing;
pub mod params;
pub mod relin;
pub mod reshare;
pub mod ring;
mod rns;
mod round;
pub mod sealable;
pub mod secret;
pub mod shamir;
pub mod thresholdize;

pub use error::{Error, Result};
pub use params::{ParameterSet, Params};
pub use shamir::{Committee, EvaluationPoint, Threshold};

/// Re-exported so that callers use the exact `fhe` types this crate was built with.
pub use fhe::bfv::{Ciphertext, EvaluationKey, Plaintext, PublicKey, RelinearizationKey};

/// For binaries, first thing in `main`: makes the calling thread worker 0
/// of rayon's global pool (sized by `RAYON_NUM_THREADS` as usual), so that
/// the parallel sections of a step called from it run there, with the other
/// workers stealing, instead of being handed over to a pool thread that may
/// be asleep (a wake-up and a context switch per section; at one thread all
/// of it). Returns `false`, changing nothing, when the global pool already
/// exists. The libraries never call it, as they never choose an allocator.
pub fn join_global_pool() -> bool {
    rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global()
        .is_ok()
}
