//! Verifiable resharing end to end: committee chains that keep decrypting,
//! epochs that do not mix, and every kind of misbehaviour named.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use fhe::bfv::{Encoding, Plaintext};
use fhe_traits::{FheDecoder, FheEncoder, FheEncrypter};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use synod_he::decrypt;
use synod_he::flooding::Flooding;
use synod_he::reshare::Fault;
use synod_he::shamir::ActiveSet;
use synod_he::{EvaluationPoint, ParameterSet, Params};
use synod_local::{LocalCommittee, ReshareFaults};

fn pts(xs: &[u32]) -> Vec<EvaluationPoint> {
    xs.iter()
        .map(|&x| EvaluationPoint::new(x).unwrap())
        .collect()
}

fn committee(xs: &[u32], t: usize, seed: u64) -> (LocalCommittee, ChaCha20Rng) {
    let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let c = LocalCommittee::setup(
        &params,
        &pts(xs),
        t,
        [seed as u8; 32],
        &[],
        &mut rng,
        &mut |_| {},
    )
    .unwrap();
    (c, rng)
}

/// Encrypts random values and checks that `active` decrypts them.
fn decrypts(c: &LocalCommittee, active: &[EvaluationPoint], rng: &mut ChaCha20Rng) -> bool {
    let params = c.keys().params();
    let values: Vec<u64> = (0..params.degree())
        .map(|_| rng.random_range(0..params.plaintext()))
        .collect();
    let pt = Plaintext::try_encode(&values, Encoding::simd(), params.bfv()).unwrap();
    let ct = c.keys().public_key().key().try_encrypt(&pt, rng).unwrap();
    let flooding = Flooding::new(params, 0, 20.0, 64, active.len()).unwrap();
    match c.decrypt(active, &ct, &flooding, rng) {
        Ok(pt) => Vec::<u64>::try_decode(&pt, Encoding::simd()).unwrap() == values,
        Err(_) => false,
    }
}

fn blamed(report: &synod_local::EpochReport) -> Vec<(u32, Fault)> {
    report
        .blamed
        .iter()
        .map(|b| (b.participant.get(), b.fault.clone()))
        .collect()
}

#[test]
fn committee_chain_keeps_decrypting() {
    let (mut c, mut rng) = committee(&[1, 2, 3, 4, 5], 3, 1);
    assert!(decrypts(&c, &pts(&[1, 3, 5]), &mut rng));
    // 3-of-5 → 4-of-6: member 5 removed, 6 and 7 join.
    let r = c
        .reshare(
            &pts(&[1, 2, 3, 4, 6, 7]),
            4,
            &pts(&[1, 2, 3, 4]),
            &ReshareFaults::default(),
            &mut rng,
        )
        .unwrap();
    assert_eq!(
        (r.epoch, r.t, r.members.clone()),
        (1, 4, vec![1, 2, 3, 4, 6, 7])
    );
    assert!(r.blamed.is_empty() && r.absent.is_empty());
    assert!(r.bytes_per_member > 0);
    assert!(decrypts(&c, &pts(&[2, 4, 6, 7]), &mut rng));
    assert!(
        !decrypts(&c, &pts(&[2, 4, 6]), &mut rng),
        "t'-1 new members must not decrypt"
    );
    // 4-of-6 → 2-of-3.
    c.reshare(
        &pts(&[2, 6, 8]),
        2,
        &pts(&[1, 3, 6, 7]),
        &ReshareFaults::default(),
        &mut rng,
    )
    .unwrap();
    assert!(decrypts(&c, &pts(&[6, 8]), &mut rng));
    // 2-of-3 → 5-of-5.
    c.reshare(
        &pts(&[2, 6, 8, 9, 10]),
        5,
        &pts(&[2, 8]),
        &ReshareFaults::default(),
        &mut rng,
    )
    .unwrap();
    assert!(decrypts(&c, &pts(&[2, 6, 8, 9, 10]), &mut rng));
    assert!(c.participants().iter().all(|p| p.key_share().epoch() == 3));
}

#[test]
fn shares_of_different_epochs_do_not_combine() {
    let (mut c, mut rng) = committee(&[1, 2, 3, 4, 5], 3, 2);
    let params = c.keys().params().clone();
    let values: Vec<u64> = (0..params.degree())
        .map(|_| rng.random_range(0..params.plaintext()))
        .collect();
    let pt = Plaintext::try_encode(&values, Encoding::simd(), params.bfv()).unwrap();
    let ct = c
        .keys()
        .public_key()
        .key()
        .try_encrypt(&pt, &mut rng)
        .unwrap();
    let flooding = Flooding::new(&params, 0, 20.0, 64, 4).unwrap();
    let t_set = pts(&[1, 2, 3, 4]);
    // t−1 = 2 old shares, weighted for {1,2,3,4} in the old committee.
    let old_set = ActiveSet::new(c.keys().committee(), t_set.iter().copied()).unwrap();
    let mut shares: Vec<_> = c.participants()[..2]
        .iter()
        .map(|p| {
            decrypt::decryption_share(&params, p.key_share(), &old_set, &ct, &flooding, &mut rng)
                .unwrap()
        })
        .collect();
    c.reshare(
        &pts(&[1, 2, 3, 4, 6]),
        3,
        &pts(&[1, 2, 3]),
        &ReshareFaults::default(),
        &mut rng,
    )
    .unwrap();
    let new_set = ActiveSet::new(c.keys().committee(), t_set.iter().copied()).unwrap();
    for p in c
        .participants()
        .iter()
        .filter(|p| [3, 4].contains(&p.point().get()))
    {
        shares.push(
            decrypt::decryption_share(&params, p.key_share(), &new_set, &ct, &flooding, &mut rng)
                .unwrap(),
        );
    }
    let mixed = decrypt::combine(&params, &ct, &new_set, shares).unwrap();
    let got = Vec::<u64>::try_decode(&mixed, Encoding::simd()).unwrap();
    let agree = got.iter().zip(&values).filter(|(a, b)| a == b).count();
    assert!(
        agree < 20,
        "old and new shares combined: {agree} slots agree"
    );
    // The new committee alone does decrypt.
    assert!(decrypts(&c, &t_set, &mut rng));
}

#[test]
fn an_inconsistent_dealer_is_named_and_excluded() {
    // Member 4 receives values; member 1 (a node of the new degree-2
    // polynomials) receives a seed, which the cheater gets wrong.
    for victim in [4, 1] {
        let (mut c, mut rng) = committee(&[1, 2, 3, 4, 5], 3, 3);
        let faults = ReshareFaults {
            inconsistent: vec![(pts(&[2])[0], pts(&[victim])[0])],
            ..Default::default()
        };
        let r = c
            .reshare(
                &pts(&[1, 2, 3, 4, 5]),
                3,
                &pts(&[1, 2, 3, 4]),
                &faults,
                &mut rng,
            )
            .unwrap();
        assert_eq!(
            blamed(&r),
            vec![(2, Fault::InconsistentDealing)],
            "victim {victim}"
        );
        assert_eq!(r.qualified, vec![1, 3, 4]);
        assert!(decrypts(&c, &pts(&[2, 4, 5]), &mut rng));
    }
}

#[test]
fn a_wrong_constant_term_is_named_among_t_plus_2_dealers() {
    let (mut c, mut rng) = committee(&[1, 2, 3, 4, 5], 3, 4);
    let faults = ReshareFaults {
        wrong_constant: pts(&[5]),
        ..Default::default()
    };
    let r = c
        .reshare(
            &pts(&[1, 2, 3, 4, 5]),
            3,
            &pts(&[1, 2, 3, 4, 5]),
            &faults,
            &mut rng,
        )
        .unwrap();
    assert_eq!(blamed(&r), vec![(5, Fault::WrongConstantTerm)]);
    assert_eq!(r.qualified, vec![1, 2, 3, 4]);
    assert!(decrypts(&c, &pts(&[1, 3, 5]), &mut rng));
}

#[test]
fn two_wrong_constant_terms_among_t_plus_4_dealers_are_both_named() {
    let (mut c, mut rng) = committee(&[1, 2, 3, 4, 5, 6, 7], 3, 9);
    let faults = ReshareFaults {
        wrong_constant: pts(&[2, 6]),
        ..Default::default()
    };
    let all = pts(&[1, 2, 3, 4, 5, 6, 7]);
    let r = c.reshare(&all, 3, &all, &faults, &mut rng).unwrap();
    assert_eq!(
        blamed(&r),
        vec![(2, Fault::WrongConstantTerm), (6, Fault::WrongConstantTerm)]
    );
    assert_eq!(r.qualified, vec![1, 3, 4, 5, 7]);
    assert!(decrypts(&c, &pts(&[2, 5, 6]), &mut rng));
}

#[test]
fn a_wrong_constant_term_among_t_plus_1_dealers_aborts_without_harm() {
    let (mut c, mut rng) = committee(&[1, 2, 3, 4, 5], 3, 5);
    let faults = ReshareFaults {
        wrong_constant: pts(&[1]),
        ..Default::default()
    };
    let err = c
        .reshare(
            &pts(&[1, 2, 3, 4, 6]),
            3,
            &pts(&[1, 2, 3, 4]),
            &faults,
            &mut rng,
        )
        .unwrap_err();
    assert!(err.to_string().contains("aborted"), "{err}");
    // The old committee is intact.
    assert_eq!(
        c.keys().committee().members(),
        pts(&[1, 2, 3, 4, 5]).as_slice()
    );
    assert!(decrypts(&c, &pts(&[1, 2, 5]), &mut rng));
}

#[test]
fn a_false_accuser_is_named_and_the_dealer_kept() {
    let (mut c, mut rng) = committee(&[1, 2, 3, 4, 5], 3, 6);
    let faults = ReshareFaults {
        false_accusations: vec![(pts(&[4])[0], pts(&[1])[0])],
        ..Default::default()
    };
    let r = c
        .reshare(
            &pts(&[1, 2, 3, 4, 5]),
            3,
            &pts(&[1, 2, 3]),
            &faults,
            &mut rng,
        )
        .unwrap();
    assert_eq!(blamed(&r), vec![(4, Fault::FalseAccusation)]);
    assert_eq!(r.qualified, vec![1, 2, 3]);
    // Member 4 got the opened values and holds a working share.
    assert!(decrypts(&c, &pts(&[1, 4, 5]), &mut rng));
}

#[test]
fn a_silent_dealer_only_shrinks_the_qualified_set() {
    let (mut c, mut rng) = committee(&[1, 2, 3, 4, 5], 3, 7);
    let faults = ReshareFaults {
        silent: pts(&[3]),
        ..Default::default()
    };
    let r = c
        .reshare(
            &pts(&[1, 2, 4, 5, 6]),
            3,
            &pts(&[1, 2, 3, 4]),
            &faults,
            &mut rng,
        )
        .unwrap();
    assert_eq!(blamed(&r), vec![(3, Fault::Silent)]);
    assert_eq!(r.qualified, vec![1, 2, 4]);
    assert!(decrypts(&c, &pts(&[2, 5, 6]), &mut rng));
}

#[test]
fn under_approved_proposals_are_refused_and_absent_signers_listed() {
    let (mut c, mut rng) = committee(&[1, 2, 3, 4, 5], 3, 8);
    let faults = ReshareFaults {
        approvers: Some(pts(&[1, 2])),
        ..Default::default()
    };
    let err = c
        .reshare(&pts(&[1, 2, 6]), 2, &pts(&[1, 2, 3]), &faults, &mut rng)
        .unwrap_err();
    assert!(err.to_string().contains("approved by 2"), "{err}");
    assert_eq!(c.keys().committee().len(), 5);

    let faults = ReshareFaults {
        non_signers: pts(&[6]),
        ..Default::default()
    };
    let r = c
        .reshare(&pts(&[1, 2, 6, 7]), 3, &pts(&[1, 2, 3]), &faults, &mut rng)
        .unwrap();
    assert_eq!(r.absent, vec![6]);
    assert_eq!(r.certificate.signatures.len(), 3);
    // Too many absent signers: the change does not take effect.
    let faults = ReshareFaults {
        non_signers: pts(&[6, 7]),
        ..Default::default()
    };
    let err = c
        .reshare(&pts(&[1, 2, 6, 7]), 3, &pts(&[1, 2, 6]), &faults, &mut rng)
        .unwrap_err();
    assert!(
        err.to_string().contains("sign the epoch certificate"),
        "{err}"
    );
    assert_eq!(c.participants()[0].key_share().epoch(), 1);
    assert!(decrypts(&c, &pts(&[1, 6, 7]), &mut rng));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]
    /// Random chains of committee changes keep decrypting.
    #[test]
    fn random_chains_keep_decrypting(seed in any::<u64>()) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let n = rng.random_range(2..=5u32);
        let t = rng.random_range(1..=n as usize);
        let (mut c, mut rng) = committee(&(1..=n).collect::<Vec<_>>(), t, seed);
        let mut next_point = n + 1;
        for _ in 0..2 {
            let old: Vec<u32> = c.keys().committee().members().iter().map(|p| p.get()).collect();
            let t_old = c.keys().committee().threshold().get();
            // Keep a random subset, add up to two newcomers.
            let mut members: Vec<u32> = old.iter().copied().filter(|_| rng.random_bool(0.7)).collect();
            for _ in 0..rng.random_range(0..=2) {
                members.push(next_point);
                next_point += 1;
            }
            if members.is_empty() {
                members.push(next_point);
                next_point += 1;
            }
            let t_new = rng.random_range(1..=members.len());
            let mut dealers = old.clone();
            while dealers.len() > t_old && rng.random_bool(0.5) {
                let i = rng.random_range(0..dealers.len());
                dealers.remove(i);
            }
            c.reshare(&pts(&members), t_new, &pts(&dealers), &ReshareFaults::default(), &mut rng).unwrap();
            let mut active = pts(&members);
            while active.len() > t_new {
                let i = rng.random_range(0..active.len());
                active.remove(i);
            }
            prop_assert!(decrypts(&c, &active, &mut rng), "{:?} t={}", members, t_new);
        }
    }
}
