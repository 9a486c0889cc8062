//! End-to-end tests of the threshold engine: set-up by n parties, t-of-n
//! decryption, key switching, evaluation keys, and rejection of bad shares.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use fhe::bfv::{Ciphertext, Encoding, Multiplicator, Plaintext, PublicKey, SecretKey};
use fhe_traits::{FheDecoder, FheDecrypter, FheEncoder, FheEncrypter};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use synod_he::crp::CommonRandomness;
use synod_he::decrypt::{self, DecryptionShare};
use synod_he::flooding::Flooding;
use synod_he::oracle::WholeKey;
use synod_he::secret::{AdditiveKeyShare, KeyShare};
use synod_he::shamir::ActiveSet;
use synod_he::{
    galois, keygen, keyswitch, relin, thresholdize, Committee, Error, EvaluationPoint,
    ParameterSet, Params,
};

struct Setup {
    params: Params,
    committee: Committee,
    crs: CommonRandomness,
    additive: Vec<AdditiveKeyShare>,
    pk: PublicKey,
    rlk: synod_he::relin::RelinKey,
    shares: Vec<KeyShare>,
}

fn points(xs: &[u32]) -> Vec<EvaluationPoint> {
    xs.iter()
        .map(|&x| EvaluationPoint::new(x).unwrap())
        .collect()
}

/// Runs the whole set-up for parties at `xs` with threshold `t`.
fn setup(set: ParameterSet, p_bits: u32, xs: &[u32], t: usize, seed: u64) -> Setup {
    let params = Params::new(set, p_bits).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let members = points(xs);
    let committee = Committee::new(members.clone(), t).unwrap();
    let crs = CommonRandomness::new(&params, [seed as u8; 32]);
    let additive: Vec<_> = members
        .iter()
        .map(|_| AdditiveKeyShare::generate(&params, &mut rng).unwrap())
        .collect();
    let pk_shares: Vec<_> = members
        .iter()
        .zip(&additive)
        .map(|(&x, sk)| keygen::public_key_share(&params, &crs, sk, x, &mut rng).unwrap())
        .collect();
    let pk = keygen::aggregate_public_key(&params, &crs, &members, pk_shares).unwrap();

    let mut secrets = Vec::new();
    let mut r1 = Vec::new();
    for (&x, sk) in members.iter().zip(&additive) {
        let (s, m) = relin::round1(&params, &crs, sk, x, &mut rng).unwrap();
        secrets.push(s);
        r1.push(m);
    }
    let agg = relin::aggregate_round1(&params, &members, r1).unwrap();
    let r2: Vec<_> = secrets
        .into_iter()
        .zip(members.iter().zip(&additive))
        .map(|(s, (&x, sk))| relin::round2(&params, s, sk, &agg, x, &mut rng).unwrap())
        .collect();
    let rlk = relin::relinearization_key(&params, &agg, &members, r2).unwrap();

    let mut inbox: Vec<Vec<thresholdize::SubShare>> = members.iter().map(|_| Vec::new()).collect();
    for (&x, sk) in members.iter().zip(&additive) {
        for sub in thresholdize::deal(&params, &committee, sk, x, &mut rng).unwrap() {
            let j = members.iter().position(|m| *m == sub.recipient).unwrap();
            inbox[j].push(sub);
        }
    }
    let shares = members
        .iter()
        .zip(inbox)
        .map(|(&x, subs)| {
            thresholdize::receive(&params, &committee, x, subs)
                .unwrap()
                .0
        })
        .collect();
    Setup {
        params,
        committee,
        crs,
        additive,
        pk: pk.key().clone(),
        rlk,
        shares,
    }
}

impl Setup {
    fn share_of(&self, x: EvaluationPoint) -> &KeyShare {
        self.shares.iter().find(|s| s.point() == x).unwrap()
    }

    fn encrypt(&self, values: &[u64], rng: &mut ChaCha20Rng) -> Ciphertext {
        let pt = Plaintext::try_encode(values, Encoding::simd(), self.params.bfv()).unwrap();
        self.pk.try_encrypt(&pt, rng).unwrap()
    }

    fn shares_for(
        &self,
        set: &ActiveSet,
        ct: &Ciphertext,
        flooding: &Flooding,
        rng: &mut ChaCha20Rng,
    ) -> Vec<DecryptionShare> {
        set.members()
            .iter()
            .map(|&x| {
                decrypt::decryption_share(&self.params, self.share_of(x), set, ct, flooding, rng)
                    .unwrap()
            })
            .collect()
    }

    fn threshold_decrypt(
        &self,
        xs: &[EvaluationPoint],
        ct: &Ciphertext,
        flooding: &Flooding,
        rng: &mut ChaCha20Rng,
    ) -> Vec<u64> {
        let set = ActiveSet::new(&self.committee, xs.iter().copied()).unwrap();
        let shares = self.shares_for(&set, ct, flooding, rng);
        let pt = decrypt::combine(&self.params, ct, &set, shares).unwrap();
        Vec::<u64>::try_decode(&pt, Encoding::simd()).unwrap()
    }
}

fn random_values(params: &Params, rng: &mut ChaCha20Rng) -> Vec<u64> {
    use rand::Rng;
    (0..params.degree())
        .map(|_| rng.random_range(0..params.plaintext()))
        .collect()
}

fn subsets(items: &[EvaluationPoint], k: usize) -> Vec<Vec<EvaluationPoint>> {
    if k == 0 {
        return vec![vec![]];
    }
    if items.len() < k {
        return vec![];
    }
    let mut out = subsets(&items[1..], k - 1);
    out.iter_mut().for_each(|s| s.insert(0, items[0]));
    out.extend(subsets(&items[1..], k));
    out
}

#[test]
fn every_t_subset_decrypts_and_no_smaller_set_does() {
    let s = setup(ParameterSet::InsecureTestN2048, 20, &[1, 2, 3, 4, 5], 3, 1);
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let values = random_values(&s.params, &mut rng);
    let ct = s.encrypt(&values, &mut rng);
    let flooding = Flooding::new(&s.params, 0, 20.0, 16, 5).unwrap();
    let members = s.committee.members().to_vec();
    let all = subsets(&members, 3);
    assert_eq!(all.len(), 10);
    for subset in &all {
        assert_eq!(
            s.threshold_decrypt(subset, &ct, &flooding, &mut rng),
            values,
            "{subset:?}"
        );
    }
    // Any 4 (more than t) also decrypt.
    assert_eq!(
        s.threshold_decrypt(&members[1..], &ct, &flooding, &mut rng),
        values
    );

    // t-1 participants cannot form an active set…
    assert!(ActiveSet::new(&s.committee, members[..2].iter().copied()).is_err());
    // …and if they pretend the threshold were t-1, their weighted shares do not
    // sum to the key: the result is not the message.
    for pair in subsets(&members, 2) {
        let fake = Committee::new(members.clone(), 2).unwrap();
        let set = ActiveSet::new(&fake, pair.iter().copied()).unwrap();
        let shares = s.shares_for(&set, &ct, &flooding, &mut rng);
        let pt = decrypt::combine(&s.params, &ct, &set, shares).unwrap();
        let got = Vec::<u64>::try_decode(&pt, Encoding::simd()).unwrap();
        let agree = got.iter().zip(&values).filter(|(a, b)| a == b).count();
        assert!(agree < 20, "{pair:?}: {agree} slots agree");
    }
}

#[test]
fn bad_shares_are_rejected_and_blamed() {
    let s = setup(
        ParameterSet::InsecureTestN2048,
        20,
        &[2, 5, 9, 14, 20],
        3,
        2,
    );
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let values = random_values(&s.params, &mut rng);
    let ct = s.encrypt(&values, &mut rng);
    let flooding = Flooding::new(&s.params, 0, 20.0, 16, 5).unwrap();
    let m = s.committee.members().to_vec();
    let set = ActiveSet::new(&s.committee, [m[0], m[1], m[2]]).unwrap();
    let good = s.shares_for(&set, &ct, &flooding, &mut rng);

    // A share from outside the decrypting set.
    let other_set = ActiveSet::new(&s.committee, [m[0], m[1], m[3]]).unwrap();
    let outsider = decrypt::decryption_share(
        &s.params,
        s.share_of(m[3]),
        &other_set,
        &ct,
        &flooding,
        &mut rng,
    )
    .unwrap();
    let mut shares = good.clone();
    shares[2] = outsider.clone();
    let err = decrypt::combine(&s.params, &ct, &set, shares).unwrap_err();
    assert!(
        matches!(err, Error::UnexpectedSender { sender, .. } if sender == m[3]),
        "{err}"
    );

    // A share computed with the wrong Lagrange set (m[0] weighted for {0,1,3}).
    let wrong = decrypt::decryption_share(
        &s.params,
        s.share_of(m[0]),
        &other_set,
        &ct,
        &flooding,
        &mut rng,
    )
    .unwrap();
    let mut shares = good.clone();
    shares[0] = wrong.clone();
    let err = decrypt::combine(&s.params, &ct, &set, shares).unwrap_err();
    assert!(matches!(err, Error::WrongDecryptionSet { .. }), "{err}");
    assert_eq!(err.culprits(), vec![m[0]]);

    // Malformed: wrong length, wrong level.
    let mut shares = good.clone();
    shares[1].h.residues.truncate(100);
    let err = decrypt::combine(&s.params, &ct, &set, shares).unwrap_err();
    assert!(
        matches!(err, Error::Malformed { sender, .. } if sender == m[1]),
        "{err}"
    );
    // Malformed: a residue not reduced, in the first prime's row and in the
    // last one (found while the shares are summed), through both combines.
    let q0 = s.params.moduli()[0];
    for (index, value) in [(5, q0), (usize::MAX, u64::MAX)] {
        let mut shares = good.clone();
        let last = shares[1].h.residues.len() - 1;
        shares[1].h.residues[index.min(last)] = value;
        for err in [
            decrypt::combine(&s.params, &ct, &set, shares.clone()).unwrap_err(),
            decrypt::combine_signed(&s.params, &ct, &set, shares).unwrap_err(),
        ] {
            assert!(
                matches!(&err, Error::Malformed { sender, reason, .. }
                    if *sender == m[1] && reason.contains("not reduced")),
                "{err}"
            );
        }
    }
    // Sender order holds across kinds of malformation: an unreduced
    // residue from the first sender is reported before a later sender's
    // wrong length.
    let mut shares = good.clone();
    shares[0].h.residues[3] = u64::MAX;
    shares[2].h.residues.truncate(100);
    let err = decrypt::combine(&s.params, &ct, &set, shares).unwrap_err();
    assert!(
        matches!(&err, Error::Malformed { sender, reason, .. }
            if *sender == m[0] && reason.contains("not reduced")),
        "{err}"
    );
    // Binding is judged before shape: a later share's unreduced residue
    // does not hide an earlier sender's wrong set.
    let mut shares = good.clone();
    shares[0] = wrong;
    shares[2].h.residues[0] = u64::MAX;
    let err = decrypt::combine(&s.params, &ct, &set, shares).unwrap_err();
    assert!(matches!(err, Error::WrongDecryptionSet { .. }), "{err}");
    let mut shares = good.clone();
    shares[1].h.level = 1;
    let err = decrypt::combine(&s.params, &ct, &set, shares).unwrap_err();
    assert!(
        matches!(err, Error::Malformed { sender, .. } if sender == m[1]),
        "{err}"
    );

    // Wrong parameters: a share made under another plaintext modulus.
    let other = setup(
        ParameterSet::InsecureTestN2048,
        24,
        &[2, 5, 9, 14, 20],
        3,
        3,
    );
    let ct_other = other.encrypt(&vec![1; 2048], &mut rng);
    let foreign = decrypt::decryption_share(
        &other.params,
        other.share_of(m[2]),
        &ActiveSet::new(&other.committee, [m[0], m[1], m[2]]).unwrap(),
        &ct_other,
        &Flooding::new(&other.params, 0, 20.0, 16, 5).unwrap(),
        &mut rng,
    )
    .unwrap();
    let mut shares = good.clone();
    shares[2] = foreign;
    let err = decrypt::combine(&s.params, &ct, &set, shares).unwrap_err();
    assert!(
        matches!(err, Error::WrongCiphertext { sender } if sender == m[2]),
        "{err}"
    );

    // Duplicate and missing.
    let mut shares = good.clone();
    shares[2] = good[1].clone();
    assert!(matches!(
        decrypt::combine(&s.params, &ct, &set, shares),
        Err(Error::Duplicate { .. })
    ));
    let err = decrypt::combine(&s.params, &ct, &set, good[..2].to_vec()).unwrap_err();
    assert!(
        matches!(&err, Error::Missing { missing, .. } if missing == &vec![m[2].get()]),
        "{err}"
    );

    // And the good shares do decrypt.
    let pt = decrypt::combine(&s.params, &ct, &set, good).unwrap();
    assert_eq!(
        Vec::<u64>::try_decode(&pt, Encoding::simd()).unwrap(),
        values
    );
}

#[test]
fn multiplication_rotation_and_lower_level_decrypt() {
    let s = setup(ParameterSet::InsecureTestN2048, 20, &[1, 2, 3, 4, 5], 3, 4);
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let p = s.params.plaintext();
    let a = random_values(&s.params, &mut rng);
    let b = random_values(&s.params, &mut rng);
    let ca = s.encrypt(&a, &mut rng);
    let cb = s.encrypt(&b, &mut rng);
    let mult = Multiplicator::default(&s.rlk.to_fhe().unwrap()).unwrap();
    let prod = mult.multiply(&ca, &cb).unwrap();
    let expected: Vec<u64> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| ((*x as u128 * *y as u128) % p as u128) as u64)
        .collect();

    // The oracle measures the real noise; flooding is sized above it.
    let whole = WholeKey::from_shares(&s.params, &s.additive);
    let noise = whole.noise_bits(&s.params, &prod).unwrap();
    assert!(noise > 10.0 && noise < 100.0, "noise 2^{noise}");
    let flooding = Flooding::new(&s.params, 0, noise + 1.0, 16, 3).unwrap();
    let m = s.committee.members().to_vec();
    assert_eq!(
        s.threshold_decrypt(&[m[0], m[2], m[4]], &prod, &flooding, &mut rng),
        expected
    );

    // Rotation keys made after thresholdisation by 3 weighted shares only.
    let set = ActiveSet::new(&s.committee, [m[1], m[3], m[4]]).unwrap();
    let elements = galois::inner_sum_elements(&s.params);
    let gk_shares: Vec<_> = set
        .members()
        .iter()
        .map(|&x| {
            let w = s.share_of(x).weighted(&s.params, &set, 0).unwrap();
            galois::galois_key_share(&s.params, &s.crs, &w, &elements, x, &mut rng).unwrap()
        })
        .collect();
    let ek = galois::aggregate_galois_keys(&s.params, &s.crs, set.members(), &elements, gk_shares)
        .unwrap();
    let summed = ek.computes_inner_sum(&prod).unwrap();
    let total = expected
        .iter()
        .fold(0u128, |acc, v| (acc + *v as u128) % p as u128) as u64;
    let noise = whole.noise_bits(&s.params, &summed).unwrap();
    let flooding = Flooding::new(&s.params, 0, noise + 1.0, 16, 3).unwrap();
    let got = s.threshold_decrypt(&[m[0], m[1], m[2]], &summed, &flooding, &mut rng);
    assert!(got.iter().all(|&v| v == total), "slot sum");

    // Switch down two levels: shares are restricted to the remaining primes.
    let mut low = summed.clone();
    low.switch_to_level(2).unwrap();
    let noise = whole.noise_bits(&s.params, &low).unwrap();
    let flooding = Flooding::new(&s.params, 2, noise + 1.0, 16, 3).unwrap();
    let got = s.threshold_decrypt(&[m[2], m[3], m[4]], &low, &flooding, &mut rng);
    assert!(got.iter().all(|&v| v == total), "lower level");
    // Flooding sized for another level is refused.
    let f0 = Flooding::new(&s.params, 0, noise + 1.0, 16, 3).unwrap();
    let set = ActiveSet::new(&s.committee, [m[2], m[3], m[4]]).unwrap();
    assert!(
        decrypt::decryption_share(&s.params, s.share_of(m[2]), &set, &low, &f0, &mut rng).is_err()
    );
}

#[test]
fn key_switch_reaches_only_the_recipient() {
    let s = setup(
        ParameterSet::InsecureTestN2048,
        20,
        &[3, 6, 7, 10, 11],
        3,
        5,
    );
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let values = random_values(&s.params, &mut rng);
    let ct = s.encrypt(&values, &mut rng);
    let recipient_sk = SecretKey::random(s.params.bfv(), &mut rng);
    let recipient_pk = PublicKey::new(&recipient_sk, &mut rng);
    let recipient = keyswitch::RecipientKey::new(&s.params, &recipient_pk).unwrap();
    let flooding = Flooding::new(&s.params, 0, 20.0, 16, 3).unwrap();
    let m = s.committee.members().to_vec();
    let set = ActiveSet::new(&s.committee, [m[0], m[3], m[4]]).unwrap();
    let shares: Vec<_> = set
        .members()
        .iter()
        .map(|&x| {
            keyswitch::key_switch_share(
                &s.params,
                s.share_of(x),
                &set,
                &ct,
                &recipient,
                &flooding,
                &mut rng,
            )
            .unwrap()
        })
        .collect();
    let switched = keyswitch::combine_key_switch(&s.params, &ct, &set, shares).unwrap();
    let pt = recipient_sk.try_decrypt(&switched).unwrap();
    assert_eq!(
        Vec::<u64>::try_decode(&pt, Encoding::simd()).unwrap(),
        values
    );

    // Anyone else's key, including the collective one, gets noise.
    let other = SecretKey::random(s.params.bfv(), &mut rng);
    let whole = WholeKey::from_shares(&s.params, &s.additive)
        .secret_key(&s.params)
        .unwrap();
    for sk in [other, whole] {
        let pt = sk.try_decrypt(&switched).unwrap();
        let got = Vec::<u64>::try_decode(&pt, Encoding::simd()).unwrap();
        let agree = got.iter().zip(&values).filter(|(a, b)| a == b).count();
        assert!(agree < 20, "{agree} slots agree");
    }
}

#[test]
fn public_key_matches_whole_key_and_setup_rejects_bad_messages() {
    let s = setup(ParameterSet::InsecureTestN2048, 20, &[1, 2, 3], 2, 6);
    let mut rng = ChaCha20Rng::seed_from_u64(14);
    let values = random_values(&s.params, &mut rng);
    let ct = s.encrypt(&values, &mut rng);
    let whole = WholeKey::from_shares(&s.params, &s.additive);
    let pt = whole
        .secret_key(&s.params)
        .unwrap()
        .try_decrypt(&ct)
        .unwrap();
    assert_eq!(
        Vec::<u64>::try_decode(&pt, Encoding::simd()).unwrap(),
        values
    );
    assert!(whole.noise_bits(&s.params, &ct).unwrap() < 25.0);

    // A public-key share from a stranger, a duplicate and a missing one.
    let members = s.committee.members().to_vec();
    let mk = |x: u32, rng: &mut ChaCha20Rng| {
        let sk = AdditiveKeyShare::generate(&s.params, rng).unwrap();
        keygen::public_key_share(
            &s.params,
            &s.crs,
            &sk,
            EvaluationPoint::new(x).unwrap(),
            rng,
        )
        .unwrap()
    };
    let shares = vec![mk(1, &mut rng), mk(2, &mut rng), mk(9, &mut rng)];
    let err = keygen::aggregate_public_key(&s.params, &s.crs, &members, shares).unwrap_err();
    assert_eq!(err.culprits(), points(&[9]));
    let shares = vec![mk(1, &mut rng), mk(2, &mut rng)];
    assert!(matches!(
        keygen::aggregate_public_key(&s.params, &s.crs, &members, shares),
        Err(Error::Missing { .. })
    ));

    // A thresholdisation sub-share delivered to the wrong member is blamed on its dealer.
    let mut subs = thresholdize::deal(
        &s.params,
        &s.committee,
        &s.additive[0],
        members[0],
        &mut rng,
    )
    .unwrap();
    let to_2 = subs.remove(1);
    let mut inbox = vec![to_2];
    for (k, sk) in s.additive.iter().enumerate().skip(1) {
        let d = thresholdize::deal(&s.params, &s.committee, sk, members[k], &mut rng).unwrap();
        inbox.push(d.into_iter().find(|x| x.recipient == members[2]).unwrap());
    }
    let err = thresholdize::receive(&s.params, &s.committee, members[2], inbox).unwrap_err();
    assert_eq!(err.culprits(), vec![members[0]]);
}
