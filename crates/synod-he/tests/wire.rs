//! Every wire type of `synod-he` round-trips through serde (postcard, the
//! envelope encoding of `synod-proto`), and its bytes are pinned by a
//! snapshot so that a format change is a deliberate, visible decision.
//!
//! Real messages (made with the insecure N = 2048 parameters) are
//! round-tripped; the snapshots pin the *format* on small hand-built values
//! (a real message is ~80 KiB of random residues). After an intended format
//! change, copy the new hex from the failure message into the test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use fhe::bfv::{Encoding, Plaintext, PublicKey, SecretKey};
use fhe_traits::{FheEncoder, FheEncrypter};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{de::DeserializeOwned, Serialize};
use synod_he::crp::CommonRandomness;
use synod_he::flooding::Flooding;
use synod_he::ring::WirePoly;
use synod_he::secret::AdditiveKeyShare;
use synod_he::shamir::ActiveSet;
use synod_he::{
    decrypt, galois, keygen, keyswitch, relin, reshare, thresholdize, Committee, EvaluationPoint,
    ParameterSet, Params,
};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    name: &str,
    value: &T,
) {
    let bytes = postcard::to_stdvec(value).unwrap();
    let back: T = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(&back, value, "{name} does not round-trip");
    // Truncated bytes are an error, not a panic.
    assert!(
        postcard::from_bytes::<T>(&bytes[..bytes.len() / 2]).is_err(),
        "{name}"
    );
}

#[test]
fn wire_types_round_trip_and_match_snapshots() {
    let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(2024);
    let pts: Vec<_> = [1u32, 2, 3]
        .iter()
        .map(|&x| EvaluationPoint::new(x).unwrap())
        .collect();
    let committee = Committee::new(pts.clone(), 2).unwrap();
    let crs = CommonRandomness::new(&params, [7; 32]);
    let sks: Vec<_> = pts
        .iter()
        .map(|_| AdditiveKeyShare::generate(&params, &mut rng).unwrap())
        .collect();

    let pk_shares: Vec<_> = pts
        .iter()
        .zip(&sks)
        .map(|(&x, sk)| keygen::public_key_share(&params, &crs, sk, x, &mut rng).unwrap())
        .collect();
    round_trip("PublicKeyShare", &pk_shares[0]);
    let pk = keygen::aggregate_public_key(&params, &crs, &pts, pk_shares).unwrap();

    let (s1, r1) = relin::round1(&params, &crs, &sks[0], pts[0], &mut rng).unwrap();
    round_trip("relin::Round1Share", &r1);
    let others: Vec<_> = pts[1..]
        .iter()
        .zip(&sks[1..])
        .map(|(&x, sk)| relin::round1(&params, &crs, sk, x, &mut rng).unwrap())
        .collect();
    let mut all = vec![r1];
    all.extend(others.iter().map(|(_, m)| m.clone()));
    let agg = relin::aggregate_round1(&params, &pts, all).unwrap();
    let r2 = relin::round2(&params, s1, &sks[0], &agg, pts[0], &mut rng).unwrap();
    round_trip("relin::Round2Share", &r2);

    let gk =
        galois::galois_key_share(&params, &crs, &sks[0], &[3, 4095], pts[0], &mut rng).unwrap();
    round_trip("galois::GaloisKeyShare", &gk);

    let subs = thresholdize::deal(&params, &committee, &sks[0], pts[0], &mut rng).unwrap();
    {
        let s = &subs[1];
        let bytes = postcard::to_stdvec(s).unwrap();
        let back: thresholdize::SubShare = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(
            (back.sender, back.recipient, back.epoch),
            (s.sender, s.recipient, s.epoch)
        );
        assert_eq!(postcard::to_stdvec(&back).unwrap(), bytes);
    }

    // Key shares for decryption and key switching.
    let mut inbox: Vec<Vec<_>> = pts.iter().map(|_| Vec::new()).collect();
    for sub in subs {
        let j = pts.iter().position(|p| *p == sub.recipient).unwrap();
        inbox[j].push(sub);
    }
    for (x, sk) in pts.iter().zip(&sks).skip(1) {
        for sub in thresholdize::deal(&params, &committee, sk, *x, &mut rng).unwrap() {
            let j = pts.iter().position(|p| *p == sub.recipient).unwrap();
            inbox[j].push(sub);
        }
    }
    let shares: Vec<_> = pts
        .iter()
        .zip(inbox)
        .map(|(&x, subs)| {
            thresholdize::receive(&params, &committee, x, subs)
                .unwrap()
                .0
        })
        .collect();
    let pt = Plaintext::try_encode(&[1u64, 2, 3], Encoding::simd(), params.bfv()).unwrap();
    let ct = pk.key().try_encrypt(&pt, &mut rng).unwrap();
    let set = ActiveSet::new(&committee, [pts[0], pts[2]]).unwrap();
    round_trip("ActiveSet", &set);
    let flooding = Flooding::new(&params, 0, 20.0, 8, 3).unwrap();
    round_trip("Flooding", &flooding);
    let d = decrypt::decryption_share(&params, &shares[0], &set, &ct, &flooding, &mut rng).unwrap();
    round_trip("DecryptionShare", &d);
    let rsk = SecretKey::random(params.bfv(), &mut rng);
    let rpk = PublicKey::new(&rsk, &mut rng);
    let recipient = keyswitch::RecipientKey::new(&params, &rpk).unwrap();
    let k = keyswitch::key_switch_share(
        &params, &shares[0], &set, &ct, &recipient, &flooding, &mut rng,
    )
    .unwrap();
    round_trip("KeySwitchShare", &k);
    round_trip("Committee", &committee);
    round_trip("ParameterSet", &ParameterSet::Bfv8192);
}

fn wp(level: u8, residues: &[u64]) -> WirePoly {
    WirePoly {
        level,
        residues: residues.to_vec(),
    }
}

/// A secret polynomial (sub-shares): the same encoding as [`wp`]'s.
fn secret(level: u8, residues: &[u64]) -> synod_he::ring::SecretWirePoly {
    synod_he::ring::SecretWirePoly::from_residues(usize::from(level), residues.to_vec())
}

fn snapshot<T: Serialize>(name: &str, value: &T, expected: &str) {
    let hex = hex::encode(postcard::to_stdvec(value).unwrap());
    assert_eq!(hex, expected, "wire format of {name} changed");
}

#[test]
fn wire_formats_are_pinned() {
    let x = |v: u32| EvaluationPoint::new(v).unwrap();
    let committee = Committee::new([x(1), x(2), x(7)], 2).unwrap();
    let set = ActiveSet::new(&committee, [x(2), x(7)]).unwrap();
    snapshot(
        "WirePoly",
        &wp(1, &[1, 300, u64::MAX]),
        "0103401801000000000000002c01000000000000ffffffffffffffff",
    );
    snapshot(
        "WireCiphertext",
        &synod_he::ring::WireCiphertext {
            polys: vec![wp(0, &[1]), wp(0, &[2, 3])],
        },
        "020001010101000202010e",
    );
    snapshot("EvaluationPoint", &x(300), "ac02");
    snapshot("Committee", &committee, "0301020702");
    snapshot("ActiveSet", &set, "020207");
    snapshot("ParameterSet", &ParameterSet::Bfv16384, "01");
    snapshot(
        "PublicKeyShare",
        &keygen::PublicKeyShare {
            sender: x(2),
            p0: wp(0, &[5, 6]),
        },
        "020002030135",
    );
    snapshot(
        "relin::Round1Share",
        &relin::Round1Share {
            sender: x(1),
            h0: vec![wp(0, &[1])],
            h1: vec![wp(0, &[2]), wp(0, &[3])],
        },
        "010100010101010200010201020001020103",
    );
    snapshot(
        "relin::Round2Share",
        &relin::Round2Share {
            sender: x(1),
            h0: vec![],
            h1: vec![wp(0, &[9])],
        },
        "0100010001040109",
    );
    snapshot(
        "galois::GaloisKeyShare",
        &galois::GaloisKeyShare {
            sender: x(7),
            keys: vec![(4095, vec![wp(0, &[4])])],
        },
        "0701ff1f010001030104",
    );
    snapshot(
        "DecryptionShare",
        &decrypt::DecryptionShare {
            sender: x(2),
            set: set.clone(),
            ciphertext: [0xab; 32],
            flooding_bits: 77,
            h: wp(2, &[8]),
        },
        "02020207abababababababababababababababababababababababababababababababab4d0201040108",
    );
    snapshot(
        "KeySwitchShare",
        &keyswitch::KeySwitchShare {
            sender: x(7),
            set,
            ciphertext: [1; 32],
            flooding_bits: 70,
            h0: wp(0, &[1]),
            h1: wp(0, &[2]),
        },
        "0702020701010101010101010101010101010101010101010101010101010101010101014600010101010001020102",
    );
    snapshot(
        "SubShare (explicit)",
        &thresholdize::SubShare {
            sender: x(1),
            recipient: x(7),
            epoch: 0,
            values: thresholdize::SubShareValues::Explicit {
                key: secret(0, &[3]),
                mask: secret(0, &[4]),
            },
        },
        "0107000000010201030001030104",
    );
    snapshot(
        "SubShare (seeded)",
        &thresholdize::SubShare {
            sender: x(1),
            recipient: x(2),
            epoch: 0,
            values: thresholdize::SubShareValues::Seeded([9; 32]),
        },
        "010200010909090909090909090909090909090909090909090909090909090909090909",
    );
    // Resharing: a member at a drawn node gets a seed; the others the values.
    let explicit = reshare::ReshareSubShare {
        dealer: x(1),
        recipient: x(30),
        epoch: 2,
        values: reshare::SubShareValues::Explicit {
            key: secret(0, &[1]),
            mask: secret(0, &[2]),
            key_blind: secret(0, &[3]),
            mask_blind: secret(0, &[4]),
        },
        salt: [5; 32],
    };
    snapshot(
        "ReshareSubShare (explicit)",
        &explicit,
        "011e020000010101010001020102000102010300010301040505050505050505050505050505050505050505050505050505050505050505",
    );
    let seeded = reshare::ReshareSubShare {
        dealer: x(1),
        recipient: x(2),
        epoch: 2,
        values: reshare::SubShareValues::Seeded([6; 32]),
        salt: [5; 32],
    };
    snapshot(
        "ReshareSubShare (seeded)",
        &seeded,
        "0102020106060606060606060606060606060606060606060606060606060606060606060505050505050505050505050505050505050505050505050505050505050505",
    );
}
