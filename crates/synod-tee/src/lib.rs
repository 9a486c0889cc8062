//! synod's enclave boundary (DESIGN.md §1, §3).
//!
//! This crate owns the [`Enclave`] trait — the one interface through which a participant's key
//! material is born, used and sealed — together with [`seal`]ing (AES-256-GCM under an HKDF key
//! bound to the platform secret, the measurement, the SVN and a key id), attestation
//! [`Evidence`], the [`Claims`] a verifier extracts from it and the [`Policy`] that judges them,
//! real verifiers for Intel SGX/TDX DCAP quotes ([`verify::dcap`]) and AMD SEV-SNP reports
//! ([`verify::snp`]) that are pure functions of (evidence, collateral, time), an optional PKCS#11
//! key wrapper (`hsm`, feature `hsm`) and a simulated enclave process (`sim`, feature
//! `insecure-sim`) reachable over a Unix socket.
//!
//! It must never claim hardware protection it does not have: the simulated backend reports
//! `hardware_protected: false` in every report and every log line, its evidence is signed by a
//! simulated platform key that no real verifier accepts, and the default [`Policy`] refuses it.
//! Verifiers never read the clock and never fetch collateral: time and collateral are parameters.

pub mod claims;
pub mod enclave;
mod error;
#[cfg(feature = "hsm")]
pub mod hsm;
pub mod policy;
pub mod report_data;
pub mod seal;
#[cfg(feature = "insecure-sim")]
pub mod sim;
pub mod verify;

pub use claims::{Claims, EnclaveKind, TcbStatus, UnixTime};
pub use enclave::{Enclave, Evidence};
pub use error::{Error, PolicyViolation, Result};
pub use policy::Policy;
pub use report_data::{ReportData, ReportDataInput};
pub use seal::{KeyId, SealedBlob, Sealer};
