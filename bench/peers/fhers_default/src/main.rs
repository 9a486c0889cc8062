//! fhe.rs 0.1.1's `mbfv` steps, built as a user of the published crate gets
//! them (default features, default release profile), on the parameters of
//! synod's steps bench: N = 8192, the five ciphertext primes of fhe.rs's
//! `default_parameters_128` (log q = 218), the 30-bit batching prime synod
//! picks. Step names are the steps bench's, so `report.py` lines them up.
//! Prints one JSON object to stdout; the timings are medians over blocks of
//! back-to-back calls, as the steps bench takes them.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fhe::bfv::{
    BfvParametersBuilder, Ciphertext, Encoding, EvaluationKeyBuilder, Multiplicator, Plaintext,
    PublicKey, RelinearizationKey, SecretKey,
};
use fhe::mbfv::{
    self, Aggregate, AggregateIter, CommonRandomPoly, RelinKeyGenerator, RelinKeyShare,
};
use fhe_traits::{FheEncoder, FheEncrypter};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// synod's `ParameterSet::Bfv8192` moduli (fhe.rs's own 128-bit set).
const MODULI: [u64; 5] = [
    0x7fffffd8001,
    0x7fffffc8001,
    0xfffffffc001,
    0xffffff6c001,
    0xfffffebc001,
];
const DEGREE: usize = 8192;
const P_BITS: usize = 30;
const THRESHOLD: usize = 3;
const PARTIES: usize = 5;

/// The median of `reps` timed calls, after one warm-up.
fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> f64 {
    black_box(f());
    let mut v: Vec<Duration> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2].as_secs_f64() * 1e3
}

/// Like [`time`], each call consuming a prepared input (no warm-up).
fn time_with<I, T>(inputs: Vec<I>, mut f: impl FnMut(I) -> T) -> f64 {
    let mut v: Vec<Duration> = inputs
        .into_iter()
        .map(|i| {
            let start = Instant::now();
            black_box(f(i));
            start.elapsed()
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() {
    let reps: usize = std::env::var("SYNOD_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(44);
    let p = fhe_math::zq::primes::generate_prime(P_BITS, 2 * DEGREE as u64, (1 << P_BITS) - 1)
        .expect("a 30-bit batching prime");
    let par = BfvParametersBuilder::new()
        .set_degree(DEGREE)
        .set_plaintext_modulus(p)
        .set_moduli(&MODULI)
        .build_arc()
        .expect("parameters");
    let log_q: f64 = MODULI.iter().map(|&q| (q as f64).log2()).sum();
    let mut rng = ChaCha20Rng::seed_from_u64(43);
    let sks: Vec<SecretKey> = (0..PARTIES)
        .map(|_| SecretKey::random(&par, &mut rng))
        .collect();
    let crp = CommonRandomPoly::new(&par, &mut rng).expect("crp");
    let crps = CommonRandomPoly::new_vec(&par, &mut rng).expect("crps");
    let mut rows: Vec<(&str, f64)> = Vec::new();

    rows.push((
        "keygen: public-key share",
        time(reps, || {
            mbfv::PublicKeyShare::new(&sks[0], crp.clone(), &mut rng).expect("pk share")
        }),
    ));

    let gens: Vec<_> = sks
        .iter()
        .map(|sk| RelinKeyGenerator::new(sk, &crps, &mut rng).expect("generator"))
        .collect();
    let r1: Vec<_> = gens
        .iter()
        .map(|g| g.round_1(&mut rng).expect("round 1"))
        .collect();
    let aggregate = Arc::new(RelinKeyShare::from_shares(r1).expect("aggregate"));
    rows.push((
        "relin round 1 (per party)",
        time(reps, || {
            let g = RelinKeyGenerator::new(&sks[0], &crps, &mut rng).expect("generator");
            g.round_1(&mut rng).expect("round 1")
        }),
    ));
    rows.push((
        "relin round 2 (per party)",
        time(reps, || {
            gens[0].round_2(&aggregate, &mut rng).expect("round 2")
        }),
    ));

    let pk = PublicKey::new(&sks[0], &mut rng);
    let values: Vec<u64> = (0..DEGREE).map(|_| rng.random_range(0..p)).collect();
    let pt = Plaintext::try_encode(&values, Encoding::simd(), &par).expect("encode");
    rows.push((
        "encrypt (public key)",
        time(reps, || {
            let ct: Ciphertext = pk.try_encrypt(&pt, &mut rng).expect("encrypt");
            ct
        }),
    ));
    let ca: Ciphertext = pk.try_encrypt(&pt, &mut rng).expect("encrypt");
    let cb: Ciphertext = pk.try_encrypt(&pt, &mut rng).expect("encrypt");
    let rk = RelinearizationKey::new(&sks[0], &mut rng).expect("relinearisation key");
    let mult = Multiplicator::default(&rk).expect("multiplicator");
    rows.push((
        "ct x ct + relinearise",
        time(reps, || mult.multiply(&ca, &cb).expect("multiply")),
    ));
    let prod = mult.multiply(&ca, &cb).expect("multiply");
    let ek = EvaluationKeyBuilder::new(&sks[0])
        .expect("evaluation key builder")
        .enable_column_rotation(1)
        .expect("rotation")
        .build(&mut rng)
        .expect("evaluation key");
    rows.push((
        "rotate columns (key switch)",
        time(reps, || ek.rotates_columns_by(&ca, 1).expect("rotate")),
    ));

    for (what, ct) in [("fresh", &ca), ("product", &prod)] {
        let ct = Arc::new(ct.clone());
        let share = time(reps, || {
            mbfv::DecryptionShare::new(&sks[0], &ct, &mut rng).expect("decryption share")
        });
        rows.push((leak(format!("decryption share ({what})")), share));
        // Shares are not `Clone`: made beforehand, as in the steps bench.
        let inputs: Vec<Vec<mbfv::DecryptionShare>> = (0..reps)
            .map(|_| {
                sks[..THRESHOLD]
                    .iter()
                    .map(|sk| mbfv::DecryptionShare::new(sk, &ct, &mut rng).expect("share"))
                    .collect()
            })
            .collect();
        rows.push((
            leak(format!("combine {THRESHOLD} decryption shares ({what})")),
            time_with(inputs, |shares| {
                let pt: Plaintext = shares.into_iter().aggregate().expect("combine");
                pt
            }),
        ));
    }

    let rows: Vec<String> = rows
        .iter()
        .map(|(step, ms)| format!("    \"{step}\": {ms:.6}"))
        .collect();
    println!(
        "{{\n  \"system\": \"fhe.rs 0.1.1, default features, release profile\",\n  \
         \"n_degree\": {DEGREE},\n  \"log_q\": {log_q:.2},\n  \"p\": {p},\n  \"reps\": {reps},\n  \
         \"threads\": \"{}\",\n  \"rows_ms\": {{\n{}\n  }}\n}}",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into()),
        rows.join(",\n")
    );
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}
