//! Property tests: every circuit operation, on random vectors, decrypts by a
//! random active set to exactly what the clear computation gives.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use synod_circuit::{CircuitSpec, ColumnRef, Plan};
use synod_he::{EvaluationPoint, ParameterSet};
use synod_local::LocalCommittee;

const ROWS: usize = 64;
const ROTATIONS: [usize; 3] = [1, 3, 17];
/// The widest expression of the test, added to every circuit so that every
/// plan picks the same plaintext modulus as the shared committee.
const PIN: &str = "sum(a.x) * sum(b.x)";

fn spec(expr: &str) -> CircuitSpec {
    CircuitSpec::from_toml(&format!(
        "name = \"prop\"\n\
         [[inputs]]\nparty = \"a\"\ncolumn = \"x\"\nmin = -50\nmax = 50\n\
         [[inputs]]\nparty = \"b\"\ncolumn = \"x\"\nmin = -50\nmax = 50\n\
         [[outputs]]\nname = \"out\"\nexpr = \"{expr}\"\n\
         [[outputs]]\nname = \"pin\"\nexpr = \"{PIN}\"\n"
    ))
    .unwrap()
}

fn plan(expr: &str) -> Plan {
    Plan::with_sets(&spec(expr), ROWS, 5, 3, &[ParameterSet::InsecureTestN2048]).unwrap()
}

/// One committee for all cases (set-up is the slow part).
fn committee() -> &'static LocalCommittee {
    static C: OnceLock<LocalCommittee> = OnceLock::new();
    C.get_or_init(|| {
        let p = plan("sum(a.x)");
        let mut elements = synod_he::galois::trace_elements(p.params());
        for k in ROTATIONS {
            elements.push(synod_he::galois::rotation_element(p.params(), k).unwrap());
        }
        let points: Vec<_> = (1..=5).map(|x| EvaluationPoint::new(x).unwrap()).collect();
        let mut rng = ChaCha20Rng::seed_from_u64(99);
        LocalCommittee::setup(
            p.params(),
            &points,
            3,
            [9; 32],
            &elements,
            &mut rng,
            &mut |_| {},
        )
        .unwrap()
    })
}

fn expression(op: usize, c: i64, k: usize, w: &[i64]) -> String {
    let weights: Vec<String> = w.iter().map(|v| v.to_string()).collect();
    match op {
        0 => "a.x + b.x".into(),
        1 => "a.x - b.x".into(),
        2 => "-a.x".into(),
        3 => "a.x * b.x".into(),
        4 => format!("{c} * a.x"),
        5 => format!("a.x * [{}]", weights.join(", ")),
        6 => format!("rotate(a.x, {k})"),
        7 => "sum(a.x)".into(),
        8 => "inner_product(a.x, b.x)".into(),
        9 => format!("weighted_sum(b.x, [{}])", weights.join(", ")),
        10 => format!("sum(a.x) * sum(b.x) - {c} * sum(a.x * a.x)"),
        _ => format!("sum(rotate(a.x * b.x, {k}) + a.x)"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn every_operation_matches_the_clear_computation(
        op in 0usize..12,
        a in proptest::collection::vec(-50i64..=50, ROWS),
        b in proptest::collection::vec(-50i64..=50, ROWS),
        w in proptest::collection::vec(-5i64..=5, ROWS),
        c in -9i64..=9,
        k_index in 0usize..3,
        seed in any::<u64>(),
    ) {
        let committee = committee();
        let expr = expression(op, c, ROTATIONS[k_index], &w);
        let plan = plan(&expr);
        prop_assert_eq!(plan.params(), committee.keys().params());
        let mut cols = BTreeMap::new();
        cols.insert(ColumnRef { party: "a".into(), column: "x".into() }, a);
        cols.insert(ColumnRef { party: "b".into(), column: "x".into() }, b);
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let cts = committee.encrypt_inputs(&cols, &LocalCommittee::owners(&plan).unwrap(), &mut rng).unwrap();
        let out = committee.keys().evaluate(&plan, &cts).unwrap();
        let active: Vec<_> = [1u32, 2, 3, 4, 5]
            .iter()
            .filter(|x| (seed >> **x) & 1 == 1 || **x <= 3 && (seed.count_ones() % 2 == 0))
            .map(|&x| EvaluationPoint::new(x).unwrap())
            .collect();
        let active = if active.len() >= 3 { active } else {
            [2u32, 4, 5].iter().map(|&x| EvaluationPoint::new(x).unwrap()).collect()
        };
        let got = committee.decrypt_outputs(&plan, &out, &active, &mut rng).unwrap();
        let want = plan.evaluate_clear(&cols).unwrap();
        let n = want[0].len();
        prop_assert_eq!(&got[0][..n], &want[0][..], "{}", expr);
    }
}
