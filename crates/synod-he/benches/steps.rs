//! Per-step timings of the threshold engine, beside fhe.rs's own `mbfv`
//! timings for the steps it has (the plain-Rust baseline).
//!
//! Needs the test oracle (to measure the noise that sizes the flooding), hence
//! the feature:
//!
//! ```text
//! cargo bench -p synod-he --features insecure-test-params --bench steps
//! RAYON_NUM_THREADS=1 cargo bench -p synod-he --features insecure-test-params --bench steps
//! ```
//!
//! Environment: `SYNOD_BENCH_N=8192` (or 16384) runs one parameter set only;
//! `SYNOD_BENCH_REPS=k` overrides the repetition count; `SYNOD_BENCH_JSON=path`
//! also writes the medians as JSON (used by `bench/peers/run`). n = 5 parties, t = 3,
//! p a 30-bit batching prime. Each figure is the median of the repetitions.
//! Not part of CI.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

/// mimalloc keeps freed pages for reuse (see the workspace Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fhe::bfv::{Ciphertext, Encoding, Multiplicator, Plaintext, SecretKey};
use fhe::mbfv::round::R1Aggregated;
use fhe::mbfv::{self, Aggregate, CommonRandomPoly, RelinKeyGenerator, RelinKeyShare};
use fhe_traits::{FheEncoder, FheEncrypter};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use synod_he::crp::CommonRandomness;
use synod_he::decrypt;
use synod_he::flooding::Flooding;
use synod_he::keyswitch::{self, RecipientKey};
use synod_he::oracle::WholeKey;
use synod_he::secret::{AdditiveKeyShare, KeyShare};
use synod_he::shamir::ActiveSet;
use synod_he::{
    galois, keygen, relin, thresholdize, Committee, EvaluationPoint, ParameterSet, Params,
};

const PARTIES: usize = 5;
const THRESHOLD: usize = 3;
const P_BITS: u32 = 30;
const MAX_DECRYPTIONS: u64 = 64;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Runs `f` `reps` times (after one warm-up) and returns the median.
fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> Duration {
    black_box(f());
    let v = (0..reps)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .collect();
    median(v)
}

/// Like [`time`], but each repetition consumes a prepared input (no warm-up).
fn time_with<I, T>(inputs: Vec<I>, mut f: impl FnMut(I) -> T) -> Duration {
    let v = inputs
        .into_iter()
        .map(|i| {
            let start = Instant::now();
            black_box(f(i));
            start.elapsed()
        })
        .collect();
    median(v)
}

/// Times `synod(i)` and `fhe(j)` in alternating blocks (a quarter of the
/// repetitions each), so that both see the same machine (the box is shared
/// and noisy) and each runs warm, back to back, as it would in a session —
/// one-by-one interleaving would start every repetition with the other
/// system's data in the caches and idle worker threads, which penalises the
/// parallel one; returns both medians.
fn pair_with<I, J, A, B>(
    inputs: Vec<(I, J)>,
    mut synod: impl FnMut(I) -> A,
    mut fhe: impl FnMut(J) -> B,
) -> (Duration, Duration) {
    let block = inputs.len().div_ceil(4).max(1);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut inputs = inputs.into_iter().peekable();
    while inputs.peek().is_some() {
        let chunk: Vec<(I, J)> = inputs.by_ref().take(block).collect();
        let (is, js): (Vec<I>, Vec<J>) = chunk.into_iter().unzip();
        for i in is {
            let start = Instant::now();
            black_box(synod(i));
            a.push(start.elapsed());
        }
        for j in js {
            let start = Instant::now();
            black_box(fhe(j));
            b.push(start.elapsed());
        }
    }
    (median(a), median(b))
}

/// [`pair_with`] without inputs, after one warm-up of each.
fn pair<A, B>(
    reps: usize,
    mut synod: impl FnMut() -> A,
    mut fhe: impl FnMut() -> B,
) -> (Duration, Duration) {
    black_box(synod());
    black_box(fhe());
    pair_with(vec![((), ()); reps], |()| synod(), |()| fhe())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Row<'a> {
    step: &'a str,
    flood: Option<u32>,
    synod: Duration,
    fhe: Option<Duration>,
}

fn print_header(params: &Params, threads: usize) {
    println!();
    println!(
        "== {} (N = {}, log q = {:.1}, p = {} ({} bits)), n = {PARTIES}, t = {THRESHOLD}, threads = {threads} ==",
        params.set(),
        params.degree(),
        params.log_q(0),
        params.plaintext(),
        (params.plaintext() as f64).log2().ceil(),
    );
    println!(
        "{:<44} {:>6} {:>5} {:>6} {:>11} {:>11} {:>7}",
        "step", "log q", "p", "flood", "synod ms", "fhe.rs ms", "ratio"
    );
}

fn print_row(params: &Params, row: &Row<'_>) {
    let flood = row.flood.map_or("-".to_string(), |b| b.to_string());
    let (fhe, ratio) = match row.fhe {
        Some(f) => (
            format!("{:.3}", ms(f)),
            format!("{:.2}", ms(row.synod) / ms(f)),
        ),
        None => ("-".into(), "-".into()),
    };
    println!(
        "{:<44} {:>6.1} {:>5} {:>6} {:>11.3} {:>11} {:>7}",
        row.step,
        params.log_q(0),
        (params.plaintext() as f64).log2().ceil(),
        flood,
        ms(row.synod),
        fhe,
        ratio
    );
}

/// One parameter set's rows as a JSON object (hand-written: no serde_json here).
fn json_set(params: &Params, threads: usize, rows: &[Row<'_>]) -> String {
    let p_bits = (params.plaintext() as f64).log2().ceil();
    let rows: Vec<String> =
        rows.iter()
            .map(|r| {
                format!(
                "{{\"step\": \"{}\", \"flood_bits\": {}, \"synod_ms\": {:.6}, \"fhe_rs_ms\": {}}}",
                r.step,
                r.flood.map_or("null".to_string(), |b| b.to_string()),
                ms(r.synod),
                r.fhe.map_or("null".to_string(), |f| format!("{:.6}", ms(f))),
            )
            })
            .collect();
    format!(
        "{{\"set\": \"{}\", \"n_degree\": {}, \"log_q\": {:.2}, \"p\": {}, \"p_bits\": {p_bits}, \"parties\": {PARTIES}, \"threshold\": {THRESHOLD}, \"threads\": {threads}, \"rows\": [\n    {}\n  ]}}",
        params.set(),
        params.degree(),
        params.log_q(0),
        params.plaintext(),
        rows.join(",\n    "),
    )
}

fn run(set: ParameterSet, reps_override: Option<usize>) -> String {
    let params = Params::new(set, P_BITS).unwrap();
    let threads = rayon::current_num_threads();
    // Fewer repetitions for the slow steps at N = 16384. At N = 8192, 44:
    // `pair` runs each system in four blocks of 11 back-to-back calls (as
    // the OpenFHE script loops 11 times); with blocks of 3 the first, cold
    // call of each block (idle pool threads, memory not yet reused) moved
    // the median by up to 2× at 2 threads.
    let (fast, slow) = match (reps_override, set) {
        (Some(r), _) => (r, r),
        (None, ParameterSet::Bfv16384) => (11, 5),
        (None, _) => (44, 44),
    };
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    // fhe.rs's steps draw from their own generator, so both can be borrowed at once.
    let mut rng2 = ChaCha20Rng::seed_from_u64(43);
    let members: Vec<EvaluationPoint> = (1..=PARTIES as u32)
        .map(|x| EvaluationPoint::new(x).unwrap())
        .collect();
    let committee = Committee::new(members.clone(), THRESHOLD).unwrap();
    let crs = CommonRandomness::new(&params, [7; 32]);
    let additive: Vec<AdditiveKeyShare> = members
        .iter()
        .map(|_| AdditiveKeyShare::generate(&params, &mut rng).unwrap())
        .collect();
    let me = members[0];
    let my_sk = &additive[0];
    let mut rows = Vec::new();

    // fhe.rs baseline key material (its own secret keys; only the timing matters).
    let par = params.bfv();
    let fhe_sks: Vec<SecretKey> = (0..PARTIES)
        .map(|_| SecretKey::random(par, &mut rng))
        .collect();
    let fhe_crp = CommonRandomPoly::new(par, &mut rng).unwrap();
    let fhe_crps = CommonRandomPoly::new_vec(par, &mut rng).unwrap();

    // --- Public-key share.
    let (synod, fhe) = pair(
        fast,
        || keygen::public_key_share(&params, &crs, my_sk, me, &mut rng).unwrap(),
        || mbfv::PublicKeyShare::new(&fhe_sks[0], fhe_crp.clone(), &mut rng2).unwrap(),
    );
    rows.push(Row {
        step: "keygen: public-key share",
        flood: None,
        synod,
        fhe: Some(fhe),
    });
    let pk_shares: Vec<_> = members
        .iter()
        .zip(&additive)
        .map(|(&x, sk)| keygen::public_key_share(&params, &crs, sk, x, &mut rng).unwrap())
        .collect();
    let cpk = keygen::aggregate_public_key(&params, &crs, &members, pk_shares).unwrap();
    let pk = cpk.key().clone();

    // --- Relinearisation key, both rounds, beside fhe.rs's.
    let gens: Vec<_> = fhe_sks
        .iter()
        .map(|sk| RelinKeyGenerator::new(sk, &fhe_crps, &mut rng).unwrap())
        .collect();
    let fhe_r1: Vec<_> = gens.iter().map(|g| g.round_1(&mut rng).unwrap()).collect();
    let fhe_relin = FheRelin {
        sk: &fhe_sks[0],
        crps: &fhe_crps,
        generator: &gens[0],
        aggregate: Arc::new(RelinKeyShare::from_shares(fhe_r1).unwrap()),
    };
    let mut committee_keys = CommitteeKeys {
        crs: &crs,
        members: &members,
        additive: &additive,
        rng: &mut rng,
    };
    let rlk = relin_rows(
        &params,
        "",
        &mut committee_keys,
        &fhe_relin,
        slow,
        &mut rng2,
        &mut rows,
    );

    // --- Thresholdisation: deal to the 5 members, then receive.
    let synod = time(slow, || {
        thresholdize::deal(&params, &committee, my_sk, me, &mut rng).unwrap()
    });
    rows.push(Row {
        step: "thresholdise: deal to 5 (per party)",
        flood: None,
        synod,
        fhe: None,
    });
    let mut inbox: Vec<Vec<thresholdize::SubShare>> = members.iter().map(|_| Vec::new()).collect();
    for (&x, sk) in members.iter().zip(&additive) {
        for sub in thresholdize::deal(&params, &committee, sk, x, &mut rng).unwrap() {
            let j = members.iter().position(|m| *m == sub.recipient).unwrap();
            inbox[j].push(sub);
        }
    }
    let inputs: Vec<_> = (0..slow).map(|_| inbox[0].clone()).collect();
    let synod = time_with(inputs, |subs| {
        thresholdize::receive(&params, &committee, me, subs).unwrap()
    });
    rows.push(Row {
        step: "thresholdise: receive 5 (per party)",
        flood: None,
        synod,
        fhe: None,
    });
    let shares: Vec<KeyShare> = members
        .iter()
        .zip(inbox)
        .map(|(&x, subs)| {
            thresholdize::receive(&params, &committee, x, subs)
                .unwrap()
                .0
        })
        .collect();

    // --- Encrypt, add, multiply.
    let values: Vec<u64> = (0..params.degree())
        .map(|_| rng.random_range(0..params.plaintext()))
        .collect();
    let pt = Plaintext::try_encode(&values, Encoding::simd(), par).unwrap();
    // synod's kernels against fhe.rs's own encryption, same key and plaintext.
    let (synod, fhe) = pair(
        fast,
        || cpk.encrypt(&params, &pt, &mut rng).unwrap(),
        || pk.try_encrypt(&pt, &mut rng2).unwrap(),
    );
    rows.push(Row {
        step: "encrypt (public key)",
        flood: None,
        synod,
        fhe: Some(fhe),
    });
    let ca: Ciphertext = pk.try_encrypt(&pt, &mut rng).unwrap();
    let cb: Ciphertext = pk.try_encrypt(&pt, &mut rng).unwrap();
    let synod = time(fast, || &ca + &cb);
    rows.push(Row {
        step: "add ct+ct",
        flood: None,
        synod,
        fhe: None,
    });
    let mult = Multiplicator::default(&rlk.to_fhe().unwrap()).unwrap();
    let fast_mult = relin::Multiplier::new(&rlk).unwrap();
    let (synod, fhe) = pair(
        fast,
        || synod_he_mul(&fast_mult, &ca, &cb),
        || mult.multiply(&ca, &cb).unwrap(),
    );
    rows.push(Row {
        step: "ct x ct + relinearise",
        flood: None,
        synod,
        fhe: Some(fhe),
    });
    let prod = mult.multiply(&ca, &cb).unwrap();

    // --- A rotation (one key switch; the session's slot sums are made of
    //     them), beside fhe.rs's with the same keys.
    let step = galois::rotation_element(&params, 1).unwrap();
    let rotation_keys = |params: &Params, rng: &mut ChaCha20Rng| {
        let shares: Vec<_> = members
            .iter()
            .zip(&additive)
            .map(|(&x, sk)| galois::galois_key_share(params, &crs, sk, &[step], x, rng).unwrap())
            .collect();
        galois::aggregate_galois_key_rows(params, &crs, &members, &[step], shares).unwrap()
    };
    let gk = rotation_keys(&params, &mut rng);
    let fhe_gk = gk.to_fhe().unwrap();
    let (synod, fhe) = pair(
        fast,
        || gk.rotate_columns(&ca, 1).unwrap(),
        || fhe_gk.rotates_columns_by(&ca, 1).unwrap(),
    );
    rows.push(Row {
        step: "rotate columns (key switch)",
        flood: None,
        synod,
        fhe: Some(fhe),
    });

    // --- The key-switching steps again with two primes per digit, as the
    //     plan chooses where the noise allows it (synod-circuit; the demo's
    //     statistics: rotation keys only). fhe.rs has one layout only.
    let params2 = params.clone().with_digit_primes(2, 2).unwrap();
    let mut committee_keys = CommitteeKeys {
        crs: &crs,
        members: &members,
        additive: &additive,
        rng: &mut rng,
    };
    let rlk2 = relin_rows(
        &params2,
        ", 2-prime digits",
        &mut committee_keys,
        &fhe_relin,
        slow,
        &mut rng2,
        &mut rows,
    );
    let fast_mult2 = relin::Multiplier::new(&rlk2).unwrap();
    let (synod, fhe) = pair(
        fast,
        || synod_he_mul(&fast_mult2, &ca, &cb),
        || mult.multiply(&ca, &cb).unwrap(),
    );
    rows.push(Row {
        step: "ct x ct + relinearise, 2-prime digits",
        flood: None,
        synod,
        fhe: Some(fhe),
    });
    let gk2 = rotation_keys(&params2, &mut rng);
    let (synod, fhe) = pair(
        fast,
        || gk2.rotate_columns(&ca, 1).unwrap(),
        || fhe_gk.rotates_columns_by(&ca, 1).unwrap(),
    );
    rows.push(Row {
        step: "rotate columns, 2-prime digits",
        flood: None,
        synod,
        fhe: Some(fhe),
    });

    // --- Threshold decryption and key switching, of a fresh ciphertext and of a product.
    let whole = WholeKey::from_shares(&params, &additive);
    let set = ActiveSet::new(&committee, members[..THRESHOLD].iter().copied()).unwrap();
    let recipient_sk = SecretKey::random(par, &mut rng);
    let recipient =
        RecipientKey::new(&params, &fhe::bfv::PublicKey::new(&recipient_sk, &mut rng)).unwrap();
    // A member that decrypts several ciphertexts for one active set can
    // weight its Shamir share once (Lattigo's `GenAdditiveShare`) and make
    // n-of-n shares from it, as fhe.rs and OpenFHE do from their additive
    // keys: the like-for-like share rows below. The weighting is its own
    // row, once per set whatever the ciphertext.
    let synod = time(fast, || shares[0].weighted(&params, &set, 0).unwrap());
    rows.push(Row {
        step: "weight key share for the set, once per set",
        flood: None,
        synod,
        fhe: None,
    });
    let weighted = shares[0].weighted(&params, &set, 0).unwrap();
    for (what, ct) in [("fresh", &ca), ("product", &prod)] {
        let noise = whole.noise_bits(&params, ct).unwrap();
        let flooding = Flooding::new(&params, 0, noise, MAX_DECRYPTIONS, THRESHOLD).unwrap();
        println!(
            "  [{}] {what} ciphertext: noise 2^{noise:.1}, flooding 2^{} (D = {MAX_DECRYPTIONS}, |T| = {THRESHOLD})",
            params.set(),
            flooding.bits(),
        );
        let mine = &shares[0];
        let ct_arc = Arc::new(ct.clone());
        // A participant hashes each output ciphertext once, when it checks
        // the evaluation's output hash (made of these digests); its share
        // and the combination bind that digest without hashing again. The
        // hashing is its own row, with no peer counterpart (the peers bind
        // nothing).
        let synod = time(fast, || decrypt::Digested::new(&params, ct).unwrap());
        rows.push(Row {
            step: leak(format!("ciphertext digest, once per output ({what})")),
            flood: None,
            synod,
            fhe: None,
        });
        let digested = decrypt::Digested::new(&params, ct).unwrap();
        let (synod, fhe) = pair(
            fast,
            || {
                decrypt::decryption_share(&params, mine, &set, digested, &flooding, &mut rng)
                    .unwrap()
            },
            || mbfv::DecryptionShare::new(&fhe_sks[0], &ct_arc, &mut rng2).unwrap(),
        );
        rows.push(Row {
            step: leak(format!("decryption share ({what})")),
            flood: Some(flooding.bits()),
            synod,
            fhe: Some(fhe),
        });
        let (synod, fhe) = pair(
            fast,
            || {
                decrypt::decryption_share_weighted(
                    &params, &weighted, digested, &flooding, &mut rng,
                )
                .unwrap()
            },
            || mbfv::DecryptionShare::new(&fhe_sks[0], &ct_arc, &mut rng2).unwrap(),
        );
        rows.push(Row {
            step: leak(format!("decryption share, weighted key ({what})")),
            flood: Some(flooding.bits()),
            synod,
            fhe: Some(fhe),
        });
        let dshares: Vec<_> = set
            .members()
            .iter()
            .zip(&shares)
            .map(|(_, k)| {
                decrypt::decryption_share(&params, k, &set, ct, &flooding, &mut rng).unwrap()
            })
            .collect();
        // fhe.rs's shares are not `Clone`: make them all beforehand.
        let inputs: Vec<_> = (0..fast)
            .map(|_| {
                let f: Vec<_> = fhe_sks[..THRESHOLD]
                    .iter()
                    .map(|sk| mbfv::DecryptionShare::new(sk, &ct_arc, &mut rng2).unwrap())
                    .collect();
                (dshares.clone(), f)
            })
            .collect();
        let (synod, fhe_combine) = pair_with(
            inputs,
            // synod's output path: the shares straight to slot values
            // (fhe.rs's row stops at a plaintext, before decoding).
            |s| {
                decrypt::combine_signed_as(&params, digested, &set, s, decrypt::Readout::Slots)
                    .unwrap()
            },
            |f| Plaintext::from_shares(f).unwrap(),
        );
        rows.push(Row {
            step: leak(format!("combine {THRESHOLD} decryption shares ({what})")),
            flood: Some(flooding.bits()),
            synod,
            fhe: Some(fhe_combine),
        });
        let synod = time(fast, || {
            keyswitch::key_switch_share(
                &params, mine, &set, digested, &recipient, &flooding, &mut rng,
            )
            .unwrap()
        });
        rows.push(Row {
            step: leak(format!("key-switch share ({what})")),
            flood: Some(flooding.bits()),
            synod,
            fhe: None,
        });
    }

    print_header(&params, threads);
    for r in &rows {
        print_row(&params, r);
    }
    json_set(&params, threads, &rows)
}

/// The committee's key material and randomness for the relinearisation rounds.
struct CommitteeKeys<'a> {
    crs: &'a CommonRandomness,
    members: &'a [EvaluationPoint],
    additive: &'a [AdditiveKeyShare],
    rng: &'a mut ChaCha20Rng,
}

/// fhe.rs's side of the relinearisation rounds (its layout is the same
/// whatever synod's digits).
struct FheRelin<'a> {
    sk: &'a SecretKey,
    crps: &'a [CommonRandomPoly],
    generator: &'a RelinKeyGenerator<'a, 'a>,
    aggregate: Arc<RelinKeyShare<R1Aggregated>>,
}

/// Times both relinearisation rounds of member 1 under `params` beside
/// fhe.rs's, as rows `relin round 1{label} (per party)` and `… 2 …`, and
/// returns the committee's key.
fn relin_rows(
    params: &Params,
    label: &str,
    keys: &mut CommitteeKeys<'_>,
    fhe: &FheRelin<'_>,
    reps: usize,
    rng2: &mut ChaCha20Rng,
    rows: &mut Vec<Row<'static>>,
) -> relin::RelinKey {
    let (crs, members, additive) = (keys.crs, keys.members, keys.additive);
    let (me, my_sk) = (members[0], &additive[0]);
    let rng = &mut *keys.rng;
    let (synod, fhe_time) = pair(
        reps,
        || relin::round1(params, crs, my_sk, me, &mut *rng).unwrap(),
        || {
            let g = RelinKeyGenerator::new(fhe.sk, fhe.crps, &mut *rng2).unwrap();
            g.round_1(&mut *rng2).unwrap()
        },
    );
    rows.push(Row {
        step: leak(format!("relin round 1{label} (per party)")),
        flood: None,
        synod,
        fhe: Some(fhe_time),
    });
    let mut secrets = Vec::new();
    let mut r1 = Vec::new();
    for (&x, sk) in members.iter().zip(additive) {
        let (s, m) = relin::round1(params, crs, sk, x, rng).unwrap();
        secrets.push(s);
        r1.push(m);
    }
    let agg = relin::aggregate_round1(params, members, r1).unwrap();
    // Each repetition of round 2 consumes a round-1 secret.
    let inputs: Vec<_> = (0..reps)
        .map(|_| (relin::round1(params, crs, my_sk, me, rng).unwrap().0, ()))
        .collect();
    let (synod, fhe_time) = pair_with(
        inputs,
        |s| relin::round2(params, s, my_sk, &agg, me, &mut *rng).unwrap(),
        |()| fhe.generator.round_2(&fhe.aggregate, &mut *rng2).unwrap(),
    );
    rows.push(Row {
        step: leak(format!("relin round 2{label} (per party)")),
        flood: None,
        synod,
        fhe: Some(fhe_time),
    });
    let r2: Vec<_> = secrets
        .into_iter()
        .zip(members.iter().zip(additive))
        .map(|(s, (&x, sk))| relin::round2(params, s, sk, &agg, x, rng).unwrap())
        .collect();
    relin::relinearization_key(params, &agg, members, r2).unwrap()
}

/// synod's ct×ct: `relin::Multiplier` (HPS RNS multiplication, parallel).
fn synod_he_mul(mult: &relin::Multiplier, a: &Ciphertext, b: &Ciphertext) -> Ciphertext {
    mult.multiply(a, b).unwrap()
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn main() {
    // The main thread works in rayon's pool (see `synod_he::join_global_pool`).
    synod_he::join_global_pool();
    // `cargo bench` passes `--bench`; ignore arguments.
    let reps = std::env::var("SYNOD_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok());
    let only = std::env::var("SYNOD_BENCH_N").ok();
    let json_path = std::env::var("SYNOD_BENCH_JSON").ok();
    let sets = [ParameterSet::Bfv8192, ParameterSet::Bfv16384];
    let mut json = Vec::new();
    for set in sets {
        if let Some(n) = &only {
            if set.degree().to_string() != *n {
                continue;
            }
        }
        json.push(run(set, reps));
    }
    if let Some(path) = json_path {
        let body = format!("{{\"sets\": [\n  {}\n]}}\n", json.join(",\n  "));
        std::fs::write(&path, body).unwrap();
    }
}
