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
//! profiling) skips fhe.rs. Prints medians and their ratio. The
//! relinearisation key comes from a two-party run of the RKG protocol. Not
//! part of CI.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

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

    let ours = relin::Multiplier::new(&params, &rlk).unwrap();
    let theirs = Multiplicator::default(&rlk).unwrap();
    black_box(ours.multiply(&a, &b).unwrap());
    black_box(theirs.multiply(&a, &b).unwrap());
    // For profiling: `SYNOD_BENCH_ONLY=synod` skips fhe.rs.
    let only_ours = std::env::var("SYNOD_BENCH_ONLY").as_deref() == Ok("synod");
    let (mut t_ours, mut t_theirs) = (Vec::new(), vec![Duration::ZERO]);
    for _ in 0..reps {
        let start = Instant::now();
        black_box(ours.multiply(&a, &b).unwrap());
        t_ours.push(start.elapsed());
        if only_ours {
            continue;
        }
        let start = Instant::now();
        black_box(theirs.multiply(&a, &b).unwrap());
        t_theirs.push(start.elapsed());
    }
    let (o, t) = (median(t_ours), median(t_theirs));
    println!(
        "ct x ct + relin  N={} log q {} p {} bits  threads {}  reps {reps}",
        params.degree(),
        params.ctx(0).unwrap().modulus().bits(),
        params.plaintext_bits(),
        rayon::current_num_threads(),
    );
    println!("  synod  {o:8.2} ms");
    println!("  fhe.rs {t:8.2} ms");
    println!("  ratio  {:8.2}", o / t);
}
