//! Runs one threshold step in a loop, for a profiler (`perf record`,
//! `valgrind --tool=callgrind`), and prints its median time: 5 parties, t = 3,
//! N = 8192, log q = 218, p = 30 bits, as in the `steps` bench.
//!
//! ```text
//! cargo build --release -p synod-he --example profile_step
//! STEP=relin1 RAYON_NUM_THREADS=1 perf record -g target/release/examples/profile_step
//! ```
//!
//! `STEP` is one of `pk`, `relin1`, `relin2`, `mul`, `deal` and `receive`
//! (thresholdisation, as member 1), `share`, `share_weighted` (from the key
//! weighted once for the active set), `combine`,
//! `rotate`, `traces` (eleven slot sums traced one by one, then packed as
//! constants), `pack_traces` (the same traced together)
//! (default `relin1`; `mul` multiplies two ciphertexts, `SQUARE=1` one by
//! itself); `ITERS` (default 200); `GAP_MS` (default 0) busy-waits
//! between repetitions, as another system's step would; `DIGIT_PRIMES`
//! (default 1) sets the primes per key-switching digit; `NOISE_BITS` (default
//! 10) the ciphertext noise that sizes the flooding of `share` and
//! `combine` (61 gives the steps bench's product, 124 flooding bits). Not
//! part of CI.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

/// mimalloc keeps freed pages for reuse (see the workspace Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::time::Instant;

use fhe::bfv::{Encoding, Plaintext};
use fhe_traits::{FheEncoder, FheEncrypter};
use rand::SeedableRng;
use synod_he::crp::CommonRandomness;
use synod_he::flooding::Flooding;
use synod_he::secret::AdditiveKeyShare;
use synod_he::shamir::ActiveSet;
use synod_he::{
    decrypt, galois, keygen, relin, thresholdize, Committee, EvaluationPoint, ParameterSet, Params,
};

fn main() {
    // The main thread works in rayon's pool (`NO_JOIN_POOL` to compare).
    if std::env::var_os("NO_JOIN_POOL").is_none() {
        synod_he::join_global_pool();
    }
    let step = std::env::var("STEP").unwrap_or_else(|_| "relin1".into());
    let iters: usize = std::env::var("ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
        .max(1);
    // `DIGIT_PRIMES`: ciphertext primes per key-switching digit (default 1).
    let digit_primes: usize = std::env::var("DIGIT_PRIMES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let params = Params::new(ParameterSet::Bfv8192, 30)
        .unwrap()
        .with_digit_primes(digit_primes, digit_primes)
        .unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let members: Vec<_> = (1..=5).map(|x| EvaluationPoint::new(x).unwrap()).collect();
    let committee = Committee::new(members.clone(), 3).unwrap();
    let crs = CommonRandomness::new(&params, [7; 32]);
    let additive: Vec<_> = members
        .iter()
        .map(|_| AdditiveKeyShare::generate(&params, &mut rng).unwrap())
        .collect();
    let me = members[0];
    let mut times = Vec::with_capacity(iters);
    // `GAP_MS`: busy-wait this long on the calling thread between
    // repetitions, as another system's single-threaded step would (the
    // pool's threads go idle meanwhile).
    let gap = std::time::Duration::from_secs_f64(
        std::env::var("GAP_MS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1e3,
    );
    let mut timed = |f: &mut dyn FnMut()| {
        for _ in 0..iters {
            let idle = Instant::now();
            while idle.elapsed() < gap {
                std::hint::spin_loop();
            }
            let start = Instant::now();
            f();
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    };
    match step.as_str() {
        "pk" => timed(&mut || {
            black_box(keygen::public_key_share(&params, &crs, &additive[0], me, &mut rng).unwrap());
        }),
        "relin1" => timed(&mut || {
            black_box(relin::round1(&params, &crs, &additive[0], me, &mut rng).unwrap());
        }),
        "relin2" | "mul" => {
            let mut secrets = Vec::new();
            let mut r1 = Vec::new();
            for (&x, sk) in members.iter().zip(&additive) {
                let (s, m) = relin::round1(&params, &crs, sk, x, &mut rng).unwrap();
                secrets.push(s);
                r1.push(m);
            }
            let agg = relin::aggregate_round1(&params, &members, r1).unwrap();
            if step == "relin2" {
                let mut spare: Vec<_> = (0..iters)
                    .map(|_| {
                        relin::round1(&params, &crs, &additive[0], me, &mut rng)
                            .unwrap()
                            .0
                    })
                    .collect();
                timed(&mut || {
                    let s = spare.pop().unwrap();
                    black_box(relin::round2(&params, s, &additive[0], &agg, me, &mut rng).unwrap());
                });
            } else {
                let r2: Vec<_> = secrets
                    .into_iter()
                    .zip(members.iter().zip(&additive))
                    .map(|(s, (&x, sk))| relin::round2(&params, s, sk, &agg, x, &mut rng).unwrap())
                    .collect();
                let rlk = relin::relinearization_key(&params, &agg, &members, r2).unwrap();
                let ct = sample_ciphertext(&params, &crs, &members, &additive, &mut rng);
                let other = sample_ciphertext(&params, &crs, &members, &additive, &mut rng);
                // `SQUARE=1`: the ciphertext times itself (two extensions
                // instead of four), as the session's variances do.
                let square = std::env::var_os("SQUARE").is_some_and(|v| v == "1");
                let mult = relin::Multiplier::new(&rlk).unwrap();
                timed(&mut || {
                    let b = if square { &ct } else { &other };
                    black_box(mult.multiply(&ct, b).unwrap());
                });
            }
        }
        "deal" => timed(&mut || {
            black_box(thresholdize::deal(&params, &committee, &additive[0], me, &mut rng).unwrap());
        }),
        "receive" => {
            // Member 1 sits at a node of every dealer's polynomials (t = 3):
            // each of its five sub-shares is a seed it expands.
            let mut inbox = Vec::new();
            for (&x, sk) in members.iter().zip(&additive) {
                let subs = thresholdize::deal(&params, &committee, sk, x, &mut rng).unwrap();
                inbox.extend(subs.into_iter().filter(|s| s.recipient == me));
            }
            timed(&mut || {
                black_box(thresholdize::receive(&params, &committee, me, inbox.clone()).unwrap());
            });
        }
        "share" | "share_weighted" | "combine" => {
            let mut inbox: Vec<Vec<thresholdize::SubShare>> = vec![Vec::new(); 5];
            for (&x, sk) in members.iter().zip(&additive) {
                for sub in thresholdize::deal(&params, &committee, sk, x, &mut rng).unwrap() {
                    inbox[sub.recipient.get() as usize - 1].push(sub);
                }
            }
            let keys: Vec<_> = members
                .iter()
                .zip(inbox)
                .map(|(&x, s)| thresholdize::receive(&params, &committee, x, s).unwrap().0)
                .collect();
            let set = ActiveSet::new(&committee, members[..3].iter().copied()).unwrap();
            let ct = sample_ciphertext(&params, &crs, &members, &additive, &mut rng);
            let nu = std::env::var("NOISE_BITS").map_or(10.0, |v| v.parse().unwrap());
            let flooding = Flooding::new(&params, 0, nu, 64, 3).unwrap();
            // The digest is made once per output ciphertext (as the
            // session does, and as the `steps` bench times it).
            let digested = decrypt::Digested::new(&params, &ct).unwrap();
            if step == "share_weighted" {
                let weighted = keys[0].weighted(&params, &set, 0).unwrap();
                timed(&mut || {
                    black_box(
                        decrypt::decryption_share_weighted(
                            &params, &weighted, digested, &flooding, &mut rng,
                        )
                        .unwrap(),
                    );
                });
            } else if step == "share" {
                timed(&mut || {
                    black_box(
                        decrypt::decryption_share(
                            &params, &keys[0], &set, digested, &flooding, &mut rng,
                        )
                        .unwrap(),
                    );
                });
            } else {
                let shares: Vec<_> = keys[..3]
                    .iter()
                    .map(|k| {
                        decrypt::decryption_share(&params, k, &set, &ct, &flooding, &mut rng)
                            .unwrap()
                    })
                    .collect();
                timed(&mut || {
                    let s = shares.clone();
                    black_box(
                        decrypt::combine_signed_as(
                            &params,
                            digested,
                            &set,
                            s,
                            decrypt::Readout::Slots,
                        )
                        .unwrap(),
                    );
                });
            }
        }
        "rotate" => {
            let g = galois::rotation_element(&params, 1).unwrap();
            let shares: Vec<_> = members
                .iter()
                .zip(&additive)
                .map(|(&x, sk)| {
                    galois::galois_key_share(&params, &crs, sk, &[g], x, &mut rng).unwrap()
                })
                .collect();
            let gk =
                galois::aggregate_galois_key_rows(&params, &crs, &members, &[g], shares).unwrap();
            let ct = sample_ciphertext(&params, &crs, &members, &additive, &mut rng);
            timed(&mut || {
                black_box(gk.rotate_columns(&ct, 1).unwrap());
            });
        }
        "traces" | "pack_traces" => {
            // The demo's eleven slot sums: traced one by one and packed as
            // constants, or traced together.
            let elements = galois::trace_elements(&params);
            let shares: Vec<_> = members
                .iter()
                .zip(&additive)
                .map(|(&x, sk)| {
                    galois::galois_key_share(&params, &crs, sk, &elements, x, &mut rng).unwrap()
                })
                .collect();
            let gk = galois::aggregate_galois_key_rows(&params, &crs, &members, &elements, shares)
                .unwrap();
            let cts: Vec<_> = (0..11)
                .map(|_| sample_ciphertext(&params, &crs, &members, &additive, &mut rng))
                .collect();
            if step == "traces" {
                timed(&mut || {
                    let traced: Vec<_> = cts.iter().map(|ct| gk.trace(ct).unwrap()).collect();
                    let refs: Vec<_> = traced.iter().collect();
                    black_box(decrypt::pack_constants(&params, &refs).unwrap());
                });
            } else {
                timed(&mut || {
                    black_box(gk.pack_traces(&cts.iter().collect::<Vec<_>>()).unwrap());
                });
            }
        }
        other => {
            eprintln!(
                "unknown STEP {other}: pk, relin1, relin2, mul, deal, receive, share, \
                 combine, rotate, traces, pack_traces"
            );
            std::process::exit(2);
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{step}: median {:.3} ms over {iters} iterations",
        times[times.len() / 2]
    );
}

/// A ciphertext of a few values under the collective public key of the
/// parties' additive shares.
fn sample_ciphertext(
    params: &Params,
    crs: &CommonRandomness,
    members: &[EvaluationPoint],
    additive: &[AdditiveKeyShare],
    rng: &mut rand_chacha::ChaCha20Rng,
) -> fhe::bfv::Ciphertext {
    let pks: Vec<_> = members
        .iter()
        .zip(additive)
        .map(|(&x, sk)| keygen::public_key_share(params, crs, sk, x, rng).unwrap())
        .collect();
    let pk = keygen::aggregate_public_key(params, crs, members, pks).unwrap();
    let pt = Plaintext::try_encode(&[1u64, 2, 3], Encoding::simd(), params.bfv()).unwrap();
    pk.key().try_encrypt(&pt, rng).unwrap()
}
