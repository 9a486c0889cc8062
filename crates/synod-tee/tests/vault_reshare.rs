//! Resharing through [`KeyVault`] in process: what the enclave refuses although its host asks
//! (complaints it cannot take on trust, more responses than its mask share can blind), and that
//! the count of responses survives sealing and restoring the share.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use synod_he::reshare::{Complaint, Proposal};
use synod_he::{Committee, EvaluationPoint};
use synod_proto::{ProtocolName, SessionId};
use synod_tee::enclave::{KeyVault, SealedRecipient, MAX_RESPONSES_PER_MASK};

const SESSION: SessionId = SessionId([77; 32]);

/// Three vaults, 2-of-3, thresholdised.
fn vaults() -> (Vec<KeyVault>, Committee) {
    let points = common::points([1, 2, 3]);
    let committee = Committee::new(points.clone(), 2).unwrap();
    let mut vaults: Vec<KeyVault> = (0..3).map(|_| KeyVault::new()).collect();
    for (v, &me) in vaults.iter_mut().zip(&points) {
        v.generate_key_share(&common::setup(SESSION, me, &committee))
            .unwrap();
    }
    let keys: Vec<_> = vaults.iter().map(KeyVault::transport_key).collect();
    let inbox = common::deal_thresholdization(SESSION, &points, &keys, |i, to| {
        vaults[i].deal_thresholdization(to).unwrap()
    });
    for (v, incoming) in vaults.iter_mut().zip(inbox) {
        v.receive_thresholdization(incoming).unwrap();
    }
    (vaults, committee)
}

fn proposal(committee: &Committee) -> Proposal {
    Proposal {
        session: SESSION.0,
        old_epoch: 0,
        old: committee.clone(),
        new: committee.clone(),
        dealers: common::points([1, 2, 3]),
    }
}

fn recipients(vaults: &[KeyVault], from: EvaluationPoint) -> Vec<SealedRecipient> {
    common::points([1, 2, 3])
        .into_iter()
        .zip(vaults)
        .map(|(p, v)| SealedRecipient {
            point: p,
            transport_key: v.transport_key(),
            context: common::context(SESSION, ProtocolName::Reshare, from, p),
        })
        .collect()
}

#[test]
fn a_dealer_opens_at_most_t_minus_one_values_and_only_to_new_members() {
    let (mut vaults, committee) = vaults();
    let p = proposal(&committee);
    let me = common::points([1])[0];
    let to = recipients(&vaults, me);
    let dealt = vaults[0].reshare_deal(&p, &to).unwrap();
    vaults[0].reshare_respond(&[dealt.commitments]).unwrap();
    let complaint = |accuser: u32| Complaint {
        accuser: EvaluationPoint::new(accuser).unwrap(),
        dealer: me,
    };
    // t' = 2: two accusers would get two values of a degree-1 polynomial, i.e. the share.
    let openings = vaults[0]
        .reshare_open(&[complaint(2), complaint(3)])
        .unwrap();
    assert!(openings.is_empty());

    // Again with one accuser (repeated), and one outside the new committee: one opening.
    vaults[0].reshare_abort().unwrap();
    let dealt = vaults[0].reshare_deal(&p, &to).unwrap();
    vaults[0].reshare_respond(&[dealt.commitments]).unwrap();
    let openings = vaults[0]
        .reshare_open(&[complaint(2), complaint(2), complaint(9)])
        .unwrap();
    assert_eq!(openings.len(), 1);
    assert_eq!(openings[0].subshare.recipient.get(), 2);
}

#[test]
fn a_mask_share_blinds_a_bounded_number_of_responses_even_across_a_restore() {
    let (mut vaults, committee) = vaults();
    let p = proposal(&committee);
    let me = common::points([1])[0];
    let to = recipients(&vaults, me);
    for _ in 0..MAX_RESPONSES_PER_MASK - 1 {
        let dealt = vaults[0].reshare_deal(&p, &to).unwrap();
        vaults[0].reshare_respond(&[dealt.commitments]).unwrap();
        vaults[0].reshare_abort().unwrap();
    }
    // The host cannot respond to a challenge that leaves out the dealer's own commitments.
    let dealt = vaults[0].reshare_deal(&p, &to).unwrap();
    assert!(vaults[0].reshare_respond(&[]).is_err());
    vaults[0].reshare_respond(&[dealt.commitments]).unwrap();
    vaults[0].reshare_abort().unwrap();

    // A restored copy (as after a restart) keeps the count and refuses too.
    let state = vaults[0].sealable_state().unwrap().unwrap();
    let mut restored = KeyVault::new();
    restored.restore(&state).unwrap();
    assert_eq!(restored.epoch(), Some(0));
    for v in [&mut vaults[0], &mut restored] {
        let dealt = v.reshare_deal(&p, &to).unwrap();
        let err = v.reshare_respond(&[dealt.commitments]).unwrap_err();
        assert!(err.to_string().contains("reveal its key share"), "{err}");
        v.reshare_abort().unwrap();
    }
    // State of another format (here: the format before the set-up named
    // its key-switching digits) is refused by its format, not misread.
    let mut old = state.to_vec();
    old[0] = 1;
    let err = KeyVault::new().restore(&old).unwrap_err();
    assert!(err.to_string().contains("format 1"), "{err}");
    // A vault holding a share refuses to draw a new one over it.
    assert!(restored
        .generate_key_share(&common::setup(SESSION, me, &committee))
        .is_err());
}
