//! End-to-end: circuits planned, evaluated on ciphertexts of a simulated
//! committee, threshold-decrypted, and compared with the clear evaluation; the
//! noise model checked against measured noise.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use synod_circuit::{CircuitError, CircuitSpec, ColumnRef, Plan};
use synod_he::{EvaluationPoint, ParameterSet};
use synod_local::LocalCommittee;

fn points(n: u32) -> Vec<EvaluationPoint> {
    (1..=n).map(|x| EvaluationPoint::new(x).unwrap()).collect()
}

fn spec(inputs: &[(&str, &str, f64, f64, u64)], outputs: &[(&str, &str)]) -> CircuitSpec {
    let mut s = String::from("name = \"test\"\n");
    for (p, c, lo, hi, scale) in inputs {
        s += &format!("[[inputs]]\nparty = \"{p}\"\ncolumn = \"{c}\"\nmin = {lo:?}\nmax = {hi:?}\nscale = {scale}\n");
    }
    for (name, expr) in outputs {
        s += &format!("[[outputs]]\nname = \"{name}\"\nexpr = \"{expr}\"\n");
    }
    CircuitSpec::from_toml(&s).unwrap()
}

struct Run {
    committee: LocalCommittee,
    plan: Plan,
    ints: BTreeMap<ColumnRef, Vec<i64>>,
}

fn run(
    spec: &CircuitSpec,
    set: ParameterSet,
    rows: usize,
    n: u32,
    t: usize,
    seed: u64,
) -> (Run, synod_circuit::EvaluatedOutputs, Vec<Vec<i128>>) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let plan = Plan::with_sets(spec, rows, n as usize, t, &[set]).unwrap();
    let committee = LocalCommittee::setup(
        plan.params(),
        &points(n),
        t,
        [seed as u8; 32],
        &plan.galois_elements().unwrap(),
        &mut rng,
        &mut |_| {},
    )
    .unwrap();
    let mut ints = BTreeMap::new();
    for input in &spec.inputs {
        let col = ColumnRef {
            party: input.party.clone(),
            column: input.column.clone(),
        };
        let vals: Vec<f64> = (0..rows)
            .map(|_| {
                let x = rng.random_range(input.min..=input.max);
                (x * input.scale() as f64).round() / input.scale() as f64
            })
            .collect();
        ints.insert(col.clone(), plan.encode_column(&col, &vals).unwrap());
    }
    let cts = committee
        .encrypt_inputs(&ints, &LocalCommittee::owners(&plan).unwrap(), &mut rng)
        .unwrap();
    let out = committee.keys().evaluate(&plan, &cts).unwrap();
    // Every participant re-evaluates: byte-identical, same hash.
    let again = committee.keys().evaluate(&plan, &cts).unwrap();
    assert_eq!(out.hash, again.hash);
    // Presented ciphertexts that are not the agreed output are refused: a
    // pack, or else an aggregate's ciphertext, changed.
    let mut changed = again.clone();
    let first = changed
        .packs
        .first_mut()
        .or_else(|| changed.ciphertexts.iter_mut().flatten().next())
        .unwrap();
    *first = &*first + &*first;
    assert!(committee
        .decrypt_outputs(&plan, &changed, &points(n)[..t], &mut rng)
        .is_err());
    let mut fresh_input = again;
    fresh_input.ciphertexts[0] = cts.values().next().unwrap().clone();
    assert!(committee
        .decrypt_outputs(&plan, &fresh_input, &points(n)[..t], &mut rng)
        .is_err());
    let mut active = points(n);
    while active.len() > t {
        let i = rng.random_range(0..active.len());
        active.remove(i);
    }
    let dec = committee
        .decrypt_outputs(&plan, &out, &active, &mut rng)
        .unwrap();
    (
        Run {
            committee,
            plan,
            ints,
        },
        out,
        dec,
    )
}

#[test]
fn statistics_match_the_clear_computation() {
    let s = spec(
        &[
            ("p1", "x", -1000.0, 1000.0, 1),
            ("p2", "x", 0.0, 50.0, 1),
            ("p3", "y", -2.5, 2.5, 100),
        ],
        &[
            ("sum p1", "sum(p1.x)"),
            ("mean p2", "mean(p2.x)"),
            ("var p1", "variance(p1.x)"),
            ("ip", "inner_product(p1.x, p2.x)"),
            ("cov", "covariance(p1.x, p2.x)"),
            ("lin", "sum(3 * p1.x - p2.x)"),
            ("fixed", "mean(p3.y)"),
            ("rows", "p1.x + p2.x"),
        ],
    );
    let rows = 3000; // two ciphertexts per column at N = 2048
    let (r, _, dec) = run(&s, ParameterSet::InsecureTestN2048, rows, 5, 3, 7);
    let clear = r.plan.evaluate_clear(&r.ints).unwrap();
    for (i, agg) in r.plan.aggregates().iter().enumerate() {
        let n = clear[i].len();
        assert_eq!(&dec[i][..n], &clear[i][..], "aggregate {}", agg.label);
    }
    // The one-value aggregates were packed and opened by one decryption;
    // the row-wise output was decrypted on its own.
    let [pack] = r.plan.packs() else {
        panic!(
            "the one-value aggregates fit one pack: {:?}",
            r.plan.packs()
        );
    };
    let one_value: Vec<usize> = r
        .plan
        .aggregates()
        .iter()
        .enumerate()
        .filter(|(_, a)| a.shape == synod_circuit::plan::Shape::Aggregate)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(pack.aggregates, one_value);
    // All of them are slot sums: packed by their traces, spread out.
    assert!(
        matches!(pack.kind, synod_circuit::PackKind::Traces(l)
            if l.stride == 2048 / one_value.len().next_power_of_two()),
        "{:?}",
        pack.kind
    );
    assert!(one_value.len() >= 2 && one_value.len() < r.plan.aggregates().len());
    assert!(one_value
        .iter()
        .all(|&i| r.plan.aggregates()[i].level == pack.level));
    let single = spec(&[("a", "x", 0.0, 1.0, 1)], &[("s", "sum(a.x)")]);
    let single = Plan::new(&single, 100, 5, 3).unwrap();
    assert!(
        single.packs().is_empty(),
        "nothing to pack one aggregate with"
    );
    let got = r.plan.finish(&dec).unwrap();
    let want = r.plan.finish(&clear).unwrap();
    assert_eq!(got, want);
    // The variance is finished in the clear, and says so.
    assert!(got[2].clear_step.is_some());
    assert!(got[0].clear_step.is_none());
    assert_eq!(got[7].values.len(), rows);
    // Sanity of the clear reference itself.
    let p1 = &r.ints[&ColumnRef {
        party: "p1".into(),
        column: "x".into(),
    }];
    assert_eq!(want[0].values[0], p1.iter().map(|&v| v as f64).sum::<f64>());
}

#[test]
fn rotation_and_weighted_sum() {
    let rows = 100;
    let weighted = format!(
        "weighted_sum(a.v, [{}])",
        (0..rows)
            .map(|i| ((i as i64 % 7) - 3).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let s = spec(
        &[("a", "v", -100.0, 100.0, 1), ("b", "v", -100.0, 100.0, 1)],
        &[
            ("shifted product", "sum(rotate(a.v, 1) * b.v)"),
            ("weighted", weighted.as_str()),
        ],
    );
    let (r, _, dec) = run(&s, ParameterSet::InsecureTestN2048, rows, 3, 2, 8);
    let clear = r.plan.evaluate_clear(&r.ints).unwrap();
    assert_eq!(dec[0][0], clear[0][0]);
    assert_eq!(dec[1][0], clear[1][0]);
    let a = &r.ints[&ColumnRef {
        party: "a".into(),
        column: "v".into(),
    }];
    let b = &r.ints[&ColumnRef {
        party: "b".into(),
        column: "v".into(),
    }];
    let direct: i128 = (0..rows - 1)
        .map(|i| i128::from(a[i + 1]) * i128::from(b[i]))
        .sum();
    assert_eq!(clear[0][0], direct);
}

#[test]
fn noise_model_bounds_the_measured_noise() {
    let s = spec(
        &[("a", "x", -100.0, 100.0, 1), ("b", "x", -100.0, 100.0, 1)],
        &[
            ("fresh", "a.x"),
            ("const", "-7 * a.x"),
            ("mul", "a.x * b.x"),
            ("sum", "sum(a.x)"),
            ("ip", "inner_product(a.x, b.x)"),
            ("cube", "sum(a.x * b.x * a.x)"),
        ],
    );
    let (r, out, _) = run(&s, ParameterSet::InsecureTestN2048, 2048, 5, 3, 9);
    // Packed aggregates are measured in their pack, against its bound.
    let packed = r.plan.packs().iter().zip(&out.packs).map(|(p, ct)| {
        (
            format!("pack of {}", p.aggregates.len()),
            p.level,
            p.noise_bits,
            std::slice::from_ref(ct),
        )
    });
    let single = r
        .plan
        .aggregates()
        .iter()
        .zip(&out.ciphertexts)
        .filter(|(_, cts)| !cts.is_empty())
        .map(|(a, cts)| (a.label.clone(), a.level, a.noise_bits, cts.as_slice()));
    let measured: Vec<_> = packed.chain(single).collect();
    assert!(
        measured.len() >= 3,
        "{} ciphertexts measured",
        measured.len()
    );
    for (label, level, noise_bits, cts) in measured {
        let measured = cts
            .iter()
            .map(|ct| r.committee.oracle.noise_bits(r.plan.params(), ct).unwrap())
            .fold(0.0, f64::max);
        eprintln!("{label:30} level {level} estimate 2^{noise_bits:.1} measured 2^{measured:.1}");
        assert!(
            measured <= noise_bits,
            "{}: measured 2^{measured:.1} above estimate 2^{:.1}",
            label,
            noise_bits
        );
        assert!(
            noise_bits - measured < 24.0,
            "{}: estimate 2^{:.1} is far above measured 2^{measured:.1}",
            label,
            noise_bits
        );
    }
}

#[test]
fn out_of_range_and_too_deep_are_refused_before_encryption() {
    let s = spec(
        &[("a", "x", -1e9, 1e9, 1), ("b", "x", -1e9, 1e9, 1)],
        &[("ip", "inner_product(a.x, b.x)")],
    );
    // 2^60 · 8192 rows ≈ 2^73: no plaintext modulus can hold it.
    let err = Plan::new(&s, 8192, 5, 3).unwrap_err();
    match &err {
        CircuitError::Range {
            output,
            expr,
            over_by,
            ..
        } => {
            assert_eq!(output, "ip");
            assert!(expr.contains("sum"), "{expr}");
            assert!(*over_by > 10.0, "{over_by}");
        }
        other => panic!("{other}"),
    }
    // A larger p is chosen rather than refusing when one fits.
    let s = spec(
        &[("a", "x", -1e4, 1e4, 1), ("b", "x", -1e4, 1e4, 1)],
        &[("ip", "inner_product(a.x, b.x)")],
    );
    let plan = Plan::new(&s, 8192, 5, 3).unwrap();
    assert!(
        plan.params().plaintext_bits() >= 42,
        "{}",
        plan.params().plaintext_bits()
    );
    // Slightly larger bounds no longer fit N = 8192 but do fit N = 16384.
    let s = spec(
        &[("a", "x", -4e4, 4e4, 1), ("b", "x", -4e4, 4e4, 1)],
        &[("ip", "inner_product(a.x, b.x)")],
    );
    let plan = Plan::new(&s, 8192, 5, 3).unwrap();
    assert_eq!(plan.params().set(), ParameterSet::Bfv16384);

    let deep = |k: usize| {
        let factors = vec!["a.x"; k].join(" * ");
        spec(
            &[("a", "x", -1.0, 1.0, 1)],
            &[("deep", &format!("sum({factors})"))],
        )
    };
    let mut max_depth = 0;
    for k in 2..10 {
        match Plan::with_sets(&deep(k), 8192, 5, 3, &[ParameterSet::Bfv8192]) {
            Ok(_) => max_depth = k - 1,
            Err(e) => {
                assert!(matches!(e, CircuitError::Noise { .. }), "{e}");
                assert!(e.to_string().contains("bits"), "{e}");
                break;
            }
        }
    }
    assert!(max_depth >= 1, "depth {max_depth}");
    eprintln!("N=8192 admits depth {max_depth} with flooding");
}

/// The deepest circuit N = 8192 admits, with the flooding in place, decrypts.
#[test]
fn deepest_admitted_circuit_decrypts_at_n8192() {
    let deep = |k: usize| {
        let factors = vec!["a.x"; k].join(" * ");
        spec(
            &[("a", "x", -1.0, 1.0, 1)],
            &[("deep", &format!("sum({factors})"))],
        )
    };
    let mut k = 2;
    while Plan::with_sets(&deep(k + 1), 8192, 3, 2, &[ParameterSet::Bfv8192]).is_ok() {
        k += 1;
    }
    let (r, _, dec) = run(&deep(k), ParameterSet::Bfv8192, 8192, 3, 2, 11);
    let clear = r.plan.evaluate_clear(&r.ints).unwrap();
    assert_eq!(dec[0][0], clear[0][0], "depth {}", k - 1);
    let agg = &r.plan.aggregates()[0];
    eprintln!(
        "depth {} decrypts at level {} with {} flooding bits",
        agg.depth,
        agg.level,
        agg.flooding_bits()
    );
}

/// A circuit whose noise leaves room gets two primes per key-switching
/// digit (fewer key rows, faster key switching); its results are exact, and
/// the noise model bounds a level-0 product and rotation made with those
/// keys. A deeper circuit keeps one prime per digit.
#[test]
fn grouped_digits_when_the_noise_allows() {
    use fhe::bfv::{Encoding, Plaintext};
    use fhe_traits::{FheEncoder, FheEncrypter};
    use synod_circuit::noise::NoiseModel;
    let s = spec(
        &[("a", "x", -100.0, 100.0, 1), ("b", "x", -100.0, 100.0, 1)],
        &[("prod", "a.x * b.x"), ("sum", "sum(a.x)")],
    );
    let rows = 2048;
    let (r, _, dec) = run(&s, ParameterSet::InsecureTestN2048, rows, 5, 3, 11);
    let params = r.plan.params().clone();
    assert_eq!(
        (params.relin_digit_primes(), params.rotation_digit_primes()),
        (2, 2)
    );
    let clear = r.plan.evaluate_clear(&r.ints).unwrap();
    for (i, agg) in r.plan.aggregates().iter().enumerate() {
        let n = clear[i].len();
        assert_eq!(&dec[i][..n], &clear[i][..], "aggregate {}", agg.label);
    }
    // The demo's statistics (products summed over all slots, p of 35
    // bits) fit N = 8192 only with one prime per digit of the
    // relinearisation key, whose noise the slot sum multiplies by N.
    let stats = spec(
        &[("a", "x", -1000.0, 1000.0, 1)],
        &[("var", "variance(a.x)")],
    );
    let plan = Plan::new(&stats, 8192, 5, 3).unwrap();
    assert_eq!(plan.params().set(), ParameterSet::Bfv8192);
    assert_eq!(
        (
            plan.params().relin_digit_primes(),
            plan.params().rotation_digit_primes()
        ),
        (1, 2)
    );

    // Keys made for other parameters are refused by an evaluator.
    let keys = r.committee.keys();
    let refused = synod_circuit::Evaluator::new(&plan, keys.relin_key(), keys.galois_key());
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("relinearisation key was made for")),
        "{:?}",
        refused.err()
    );

    // Level 0: a product and a rotation with the two-prime keys, measured
    // against the model.
    let model = NoiseModel::new(&params, 5);
    let keys = r.committee.keys();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let x: Vec<u64> = (0..2048u64).map(|i| i % 200).collect();
    let pt = Plaintext::try_encode(&x, Encoding::simd(), params.bfv()).unwrap();
    let a: fhe::bfv::Ciphertext = keys.public_key().key().try_encrypt(&pt, &mut rng).unwrap();
    let b: fhe::bfv::Ciphertext = keys.public_key().key().try_encrypt(&pt, &mut rng).unwrap();
    let mult = synod_he::relin::Multiplier::new(keys.relin_key()).unwrap();
    let product = mult.multiply(&a, &b).unwrap();
    let fresh = model.fresh();
    // Five slot sums traced together: the plan bounds a pack by the sum of
    // its members' bounds.
    let five: Vec<fhe::bfv::Ciphertext> = (0..5)
        .map(|_| keys.public_key().key().try_encrypt(&pt, &mut rng).unwrap())
        .collect();
    let cases = [
        ("product", product, model.mul(fresh, fresh)),
        (
            "slot sum",
            keys.galois_key().unwrap().trace(&a).unwrap(),
            model.sum_slots(fresh, 1),
        ),
        (
            "five packed slot sums",
            keys.galois_key()
                .unwrap()
                .pack_traces(&five.iter().collect::<Vec<_>>())
                .unwrap(),
            5.0 * model.sum_slots(fresh, 1),
        ),
    ];
    for (what, ct, var) in cases {
        let measured = r.committee.oracle.noise_bits(&params, &ct).unwrap();
        let estimate = NoiseModel::bound_bits(var);
        eprintln!("{what}: estimate 2^{estimate:.1} measured 2^{measured:.1}");
        assert!(
            measured <= estimate,
            "{what}: 2^{measured:.1} > 2^{estimate:.1}"
        );
        assert!(
            estimate - measured < 24.0,
            "{what}: estimate 2^{estimate:.1} far above 2^{measured:.1}"
        );
        // With one prime per digit the key switch would add ~2^44 less.
        assert!(measured > 80.0, "{what}: 2^{measured:.1}");
    }
}

/// When one pack cannot hold every one-value aggregate (the demo's circuit
/// at 50 parties: 101 of them, 64 decryptions allowed), the plan splits
/// them into packs that each fit, every aggregate in exactly one, at one
/// level, far fewer decryptions than aggregates.
#[test]
fn one_value_aggregates_split_into_packs_that_fit() {
    let parties = 50;
    let s = variances(parties, true);
    let plan = Plan::new(&s, 8192, parties, parties / 2 + 1).unwrap();
    let packs = plan.packs();
    let aggregates = plan.aggregates().len();
    assert_eq!(aggregates, 2 * parties + 1);
    assert!(
        packs.len() >= 2 && packs.len() * 4 < aggregates,
        "{} packs",
        packs.len()
    );
    let mut seen: Vec<usize> = packs.iter().flat_map(|p| p.aggregates.clone()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..aggregates).collect::<Vec<_>>());
    // Thirteen packs of eight are just enough (⌈101/8⌉) to keep two-prime
    // rotation digits; the model leaves about two bits of margin for the
    // eighth member, so a change to the noise model or the flooding may
    // move this plan to one-prime digits, and should be looked at then.
    assert_eq!(plan.params().rotation_digit_primes(), 2);
    assert_eq!(plan.decryptions(), packs.len());
    for p in packs {
        assert_eq!(p.level, packs[0].level);
        for &i in &p.aggregates {
            let a = &plan.aggregates()[i];
            assert_eq!((a.level, a.flooding_bits()), (p.level, p.flooding.bits()));
        }
    }
}

/// At 100 parties two-prime rotation digits leave no two one-value
/// aggregates room to share a decryption (201 decryptions); the plan takes
/// one-prime digits instead, and all of them fit one.
#[test]
fn many_parties_trade_larger_digits_for_one_decryption() {
    let parties = 100;
    let s = variances(parties, false);
    let plan = Plan::new(&s, 8192, parties, parties / 2 + 1).unwrap();
    let params = plan.params();
    assert_eq!(
        (params.relin_digit_primes(), params.rotation_digit_primes()),
        (1, 1)
    );
    assert_eq!(plan.packs().len(), 1);
    assert_eq!(plan.decryptions(), 1);
    assert_eq!(plan.packs()[0].aggregates.len(), 2 * parties);
}

/// The flooding is sized for `max_decryptions`: a plan whose outputs need
/// more threshold decryptions (here a per-row output over 20 ciphertexts,
/// against the default 16) is refused before anything is encrypted, and
/// accepted once the budget covers it.
#[test]
fn plans_needing_more_decryptions_than_allowed_are_refused() {
    let rows = 20 * 2048;
    let s = spec(
        &[("a", "x", -10.0, 10.0, 1), ("b", "x", -10.0, 10.0, 1)],
        &[("rows", "a.x + b.x"), ("s", "sum(a.x)")],
    );
    let err = Plan::with_sets(&s, rows, 5, 3, &[ParameterSet::InsecureTestN2048]).unwrap_err();
    assert!(
        err.to_string().contains("21 threshold decryptions"),
        "{err}"
    );
    let mut more = s.clone();
    more.max_decryptions = 64;
    let plan = Plan::with_sets(&more, rows, 5, 3, &[ParameterSet::InsecureTestN2048]).unwrap();
    assert_eq!(plan.decryptions(), 21);
}

/// Products of sums and public multiples of sums are one-value aggregates
/// too (constant plaintexts): they go through a pack and decrypt exactly.
#[test]
fn products_of_sums_decrypt_through_a_pack() {
    let s = spec(
        &[("a", "x", -10.0, 10.0, 1), ("b", "x", -10.0, 10.0, 1)],
        &[
            ("product", "sum(a.x) * sum(b.x)"),
            ("scaled", "3 * sum(a.x)"),
            ("plain", "sum(b.x)"),
        ],
    );
    let (r, _, dec) = run(&s, ParameterSet::InsecureTestN2048, 2048, 5, 3, 21);
    let [pack] = r.plan.packs() else {
        panic!("one pack expected: {:?}", r.plan.packs());
    };
    assert_eq!(pack.aggregates.len(), r.plan.aggregates().len());
    // Not all are sums, and the lone sum joins the others.
    assert_eq!(pack.kind, synod_circuit::PackKind::Constants);
    let clear = r.plan.evaluate_clear(&r.ints).unwrap();
    for (i, agg) in r.plan.aggregates().iter().enumerate() {
        assert_eq!(dec[i][0], clear[i][0], "aggregate {}", agg.label);
    }
    let sum = |col: &str| -> i128 {
        r.ints[&ColumnRef {
            party: col.into(),
            column: "x".into(),
        }]
            .iter()
            .map(|&v| i128::from(v))
            .sum()
    };
    assert_eq!(clear[0][0], sum("a") * sum("b"));
}

/// The demo's kind of circuit for `parties` parties: each party's variance
/// (two one-value aggregates each), optionally the p1·p2 inner product,
/// 64 decryptions allowed.
fn variances(parties: usize, inner_product: bool) -> CircuitSpec {
    let mut text = String::from("name = \"many\"\nmax_decryptions = 64\n");
    for i in 1..=parties {
        text += &format!("[[inputs]]\nparty = \"p{i}\"\ncolumn = \"x\"\nmin = -1000\nmax = 1000\n");
    }
    for i in 1..=parties {
        text += &format!("[[outputs]]\nname = \"var {i}\"\nexpr = \"variance(p{i}.x)\"\n");
    }
    if inner_product {
        text += "[[outputs]]\nname = \"ip\"\nexpr = \"inner_product(p1.x, p2.x)\"\n";
    }
    CircuitSpec::from_toml(&text).unwrap()
}

/// Slot sums are traced together, and the other one-value outputs (here a
/// product of sums) are added to the same pack where its plaintext is zero:
/// one decryption, exact results, even with a budget of one.
#[test]
fn mixed_one_value_outputs_share_a_traced_pack() {
    let mut s = spec(
        &[("a", "x", -10.0, 10.0, 1), ("b", "x", -10.0, 10.0, 1)],
        &[
            ("product", "sum(a.x) * sum(b.x)"),
            ("a", "sum(a.x)"),
            ("b", "sum(b.x)"),
        ],
    );
    s.max_decryptions = 1;
    let (r, _, dec) = run(&s, ParameterSet::InsecureTestN2048, 2048, 5, 3, 23);
    let [pack] = r.plan.packs() else {
        panic!("one pack expected: {:?}", r.plan.packs());
    };
    assert!(
        matches!(pack.kind, synod_circuit::PackKind::Traces(l) if l.count == 2),
        "{:?}",
        pack.kind
    );
    assert_eq!(pack.aggregates.len(), r.plan.aggregates().len());
    assert!(!pack.traces_member(2) && pack.traces_member(1));
    assert_eq!(r.plan.decryptions(), 1);
    let clear = r.plan.evaluate_clear(&r.ints).unwrap();
    for (i, agg) in r.plan.aggregates().iter().enumerate() {
        assert_eq!(dec[i][0], clear[i][0], "aggregate {}", agg.label);
    }
}

/// When the one-value outputs need several packs, a later pack (not the
/// first) can hold slot sums traced together and a product of sums in a
/// coefficient their layout leaves zero: every pack decrypts once, every
/// output exactly.
/// (Products of sums of ±100 values have noise enough that three fit one
/// decryption under the insecure N = 2048 parameters.)
#[test]
fn several_packs_one_mixing_traced_sums_and_products() {
    let columns = ["a.x", "a.y", "b.x", "b.y", "c.x", "c.y", "d.x", "d.y"];
    let mut outputs: Vec<(String, String)> = columns
        .iter()
        .map(|c| (format!("sum {c}"), format!("sum({c})")))
        .collect();
    for (i, c) in columns.iter().enumerate() {
        let next = columns[(i + 2) % columns.len()];
        outputs.push((format!("{c}·{next}"), format!("sum({c}) * sum({next})")));
    }
    let outputs: Vec<(&str, &str)> = outputs
        .iter()
        .map(|(n, e)| (n.as_str(), e.as_str()))
        .collect();
    let inputs: Vec<(&str, &str, f64, f64, u64)> = columns
        .iter()
        .map(|c| {
            let (party, column) = c.split_once('.').unwrap();
            (party, column, -100.0, 100.0, 1)
        })
        .collect();
    let mut s = spec(&inputs, &outputs);
    s.max_decryptions = 64;
    let (r, _, dec) = run(&s, ParameterSet::InsecureTestN2048, 2048, 5, 3, 29);
    let packs = r.plan.packs();
    assert!(packs.len() >= 3, "{packs:?}");
    let mixed = packs
        .iter()
        .position(|p| {
            matches!(p.kind, synod_circuit::PackKind::Traces(l)
                if l.count >= 2 && l.count < p.aggregates.len())
        })
        .unwrap_or_else(|| panic!("no pack mixes traced sums and products: {packs:?}"));
    assert!(mixed > 0, "the mixed pack is the first: {packs:?}");
    assert_eq!(r.plan.decryptions(), packs.len());
    let clear = r.plan.evaluate_clear(&r.ints).unwrap();
    assert_eq!(clear.len(), 16);
    for (i, agg) in r.plan.aggregates().iter().enumerate() {
        assert_eq!(dec[i][0], clear[i][0], "aggregate {}", agg.label);
    }
}
