//! ct×ct with relinearisation: synod's `relin::Multiplier` (HPS RNS
//! multiplication) beside fhe.rs's `Multiplicator`, alternating in one run.
//!
//! ```text
//! cargo bench -p synod-he --bench mul
//! RAYON_NUM_THREADS=1 cargo bench -p synod-he --bench mul
//! ```
//!
//! Environment: `SYNOD_BENCH_N=8192|16384` (default 8192),
//! `SYNOD_BENCH_REPS=k` (default 40); `SYNOD_BENCH_ONLY=synod` (for
//! profiling) skips fhe.rs. Prints medians and their ratio, twice: back to
//! back (each system repeats its product in alternating blocks, warm caches,
//! as in a circuit) and interleaved one by one (each product after the other
//! system's). The
//! relinearisation key comes from a two-party run of the RKG protocol. Not
//! part of CI.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

/// mimalloc keeps freed pages for reuse (see the workspace Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::time::{Duration, Instant};

use fhe::bfv::{Ciphertext, Encoding, Multiplicator, Plaintext};
use fhe_traits::{FheEncoder, FheEncrypter};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use synod_he::crp::CommonRandomness;
use synod_he::secret::AdditiveKeyShare;
use synod_he::{keygen, relin, EvaluationPoint, ParameterSet, Params};

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort_unstable();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() {
    // The main thread works in rayon's pool (see `synod_he::join_global_pool`).
    synod_he::join_global_pool();
    let set = match std::env::var("SYNOD_BENCH_N").as_deref() {
        Ok("16384") => ParameterSet::Bfv16384,
        _ => ParameterSet::Bfv8192,
    };
    let reps: usize = std::env::var("SYNOD_BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(40);
    let params = Params::new(set, 30).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let crs = CommonRandomness::new(&params, [9; 32]);
    let pts: Vec<_> = (1..=2).map(|x| EvaluationPoint::new(x).unwrap()).collect();
    let sks: Vec<_> = pts
        .iter()
        .map(|_| AdditiveKeyShare::generate(&params, &mut rng).unwrap())
        .collect();
    let (secrets, r1): (Vec<_>, Vec<_>) = pts
        .iter()
        .zip(&sks)
        .map(|(&x, sk)| relin::round1(&params, &crs, sk, x, &mut rng).unwrap())
        .unzip();
    let agg = relin::aggregate_round1(&params, &pts, r1).unwrap();
    let r2: Vec<_> = secrets
        .into_iter()
        .zip(pts.iter().zip(&sks))
        .map(|(s, (&x, sk))| relin::round2(&params, s, sk, &agg, x, &mut rng).unwrap())
        .collect();
    let rlk = relin::relinearization_key(&params, &agg, &pts, r2).unwrap();
    let pk_shares: Vec<_> = pts
        .iter()
        .zip(&sks)
        .map(|(&x, sk)| keygen::public_key_share(&params, &crs, sk, x, &mut rng).unwrap())
        .collect();
    let cpk = keygen::aggregate_public_key(&params, &crs, &pts, pk_shares).unwrap();
    let pk = cpk.key();

    let values: Vec<u64> = (0..params.degree())
        .map(|_| rng.random_range(0..params.plaintext()))
        .collect();
    let pt = Plaintext::try_encode(&values, Encoding::simd(), params.bfv()).unwrap();
    let a: Ciphertext = pk.try_encrypt(&pt, &mut rng).unwrap();
    let b: Ciphertext = pk.try_encrypt(&pt, &mut rng).unwrap();

    let ours = relin::Multiplier::new(&rlk).unwrap();
    let theirs = Multiplicator::default(&rlk.to_fhe().unwrap()).unwrap();
    black_box(ours.multiply(&a, &b).unwrap());
    black_box(theirs.multiply(&a, &b).unwrap());
    // For profiling: `SYNOD_BENCH_ONLY=synod` skips fhe.rs.
    let only_ours = std::env::var("SYNOD_BENCH_ONLY").as_deref() == Ok("synod");
    let time = |f: &dyn Fn()| {
        let start = Instant::now();
        f();
        start.elapsed()
    };
    let run_ours = || {
        black_box(ours.multiply(&a, &b).unwrap());
    };
    let run_theirs = || {
        black_box(theirs.multiply(&a, &b).unwrap());
    };
    println!(
        "ct x ct + relin  N={} log q {} p {} bits  threads {}  reps {reps}",
        params.degree(),
        params.ctx(0).unwrap().modulus().bits(),
        params.plaintext_bits(),
        rayon::current_num_threads(),
    );
    // Back to back: each system repeats its product, as a circuit does (warm
    // caches), in blocks that alternate so both see the same machine.
    let (mut b_ours, mut b_theirs) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        b_ours.extend((0..reps.div_ceil(4)).map(|_| time(&run_ours)));
        if !only_ours {
            b_theirs.extend((0..reps.div_ceil(4)).map(|_| time(&run_theirs)));
        }
    }
    report(
        "back to back",
        median(b_ours),
        (!only_ours).then(|| median(b_theirs)),
    );
    if only_ours {
        return;
    }
    // Interleaved one by one: each product starts after the other system's
    // (colder caches, idle worker threads).
    let (mut i_ours, mut i_theirs) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        i_ours.push(time(&run_ours));
        i_theirs.push(time(&run_theirs));
    }
    report("interleaved", median(i_ours), Some(median(i_theirs)));
}

fn report(how: &str, ours: f64, theirs: Option<f64>) {
    match theirs {
        Some(t) => println!(
            "  {how:<13} synod {ours:7.2} ms   fhe.rs {t:7.2} ms   ratio {:5.2}",
            ours / t
        ),
        None => println!("  {how:<13} synod {ours:7.2} ms"),
    }
}
