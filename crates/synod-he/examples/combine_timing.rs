//! Median time of the two ways to combine 3 decryption shares (3-of-5, N =
//! 8192, log q = 218, p = 30 bits): `decrypt::combine` (an fhe.rs
//! `Plaintext`) and `decrypt::combine_signed` (the slots, direct path), on
//! the same shares, checking that both give the same slots.
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo run --release -p synod-he --example combine_timing
//! ```
//!
//! Environment: `LEVEL` (default 0), `ITERS` (default 500). Not part of CI;
//! `cargo bench -p synod-he --features insecure-test-params --bench steps`
//! times `combine` beside fhe.rs.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

/// mimalloc keeps freed pages for reuse (see the workspace Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use fhe_math::rq::{Poly, Representation};
use rand::SeedableRng;
use synod_he::decrypt;
use synod_he::flooding::Flooding;
use synod_he::secret::AdditiveKeyShare;
use synod_he::shamir::ActiveSet;
use synod_he::{thresholdize, Committee, EvaluationPoint, ParameterSet, Params};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // The main thread works in rayon's pool (see `synod_he::join_global_pool`).
    synod_he::join_global_pool();
    let params = Params::new(ParameterSet::Bfv8192, 30).unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let members: Vec<_> = (1..=5).map(|x| EvaluationPoint::new(x).unwrap()).collect();
    let committee = Committee::new(members.clone(), 3).unwrap();
    let mut inbox: Vec<Vec<thresholdize::SubShare>> = vec![Vec::new(); 5];
    for &x in &members {
        let sk = AdditiveKeyShare::generate(&params, &mut rng).unwrap();
        for sub in thresholdize::deal(&params, &committee, &sk, x, &mut rng).unwrap() {
            inbox[sub.recipient.get() as usize - 1].push(sub);
        }
    }
    let keys: Vec<_> = members
        .iter()
        .zip(inbox)
        .map(|(&x, s)| thresholdize::receive(&params, &committee, x, s).unwrap().0)
        .collect();
    let set = ActiveSet::new(&committee, members[..3].iter().copied()).unwrap();
    let level = env("LEVEL", 0);
    let iters = env("ITERS", 500).max(1);
    let ctx = params.ctx(level).unwrap();
    // Only the shape matters for timing: a random ciphertext at `level`.
    let ct = fhe::bfv::Ciphertext::new(
        (0..2)
            .map(|_| Poly::random(ctx, Representation::Ntt, &mut rng))
            .collect(),
        params.bfv(),
    )
    .unwrap();
    let flooding = Flooding::new(&params, level, 10.0, 2, 3).unwrap();
    let shares: Vec<_> = keys[..3]
        .iter()
        .map(|k| decrypt::decryption_share(&params, k, &set, &ct, &flooding, &mut rng).unwrap())
        .collect();
    let (mut plain, mut direct) = (Vec::new(), Vec::new());
    let (mut pt, mut slots) = (None, None);
    // Alternate the two, one repetition each per round (the box is shared).
    for _ in 0..iters {
        let s = shares.clone();
        let start = Instant::now();
        pt = Some(std::hint::black_box(
            decrypt::combine(&params, &ct, &set, s).unwrap(),
        ));
        plain.push(start.elapsed().as_secs_f64() * 1e3);
        let s = shares.clone();
        let start = Instant::now();
        slots = Some(std::hint::black_box(
            decrypt::combine_signed(&params, &ct, &set, s).unwrap(),
        ));
        direct.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let want = synod_he::encoding::decode_signed(&params, &pt.unwrap()).unwrap();
    assert_eq!(slots.unwrap(), want, "the two paths disagree");
    println!(
        "level {level}, {} rayon thread(s), {iters} repetitions: combine {:.3} ms, \
         combine_signed {:.3} ms (medians; same slots)",
        rayon::current_num_threads(),
        median_ms(plain),
        median_ms(direct)
    );
}
