//! Key switching of a result to one recipient's public key (PCKS, Mouchet et
//! al., PETS 2021, §4.6; Lattigo `multiparty.PublicKeySwitchProtocol`), by any
//! `t` participants with Lagrange-weighted shares.
//!
//! For `ct = (c0, c1)` at level `ℓ`, the recipient's public key
//! `(p0, p1) = (−a·s_R + e_R, a)` and an active set `T`, participant `j ∈ T`
//! draws a small `u_j` and publishes
//! `h0_j = λ_j^T·S_j·c1 + u_j·p0 + E_j` (flooded) and `h1_j = u_j·p1 + e_j`.
//! Then `(c0 + Σ h0_j, Σ h1_j)` encrypts the same message under `s_R`: only
//! the recipient can decrypt it.

use fhe::bfv::{Ciphertext, PublicKey};
use fhe_math::rq::{Poly, Representation};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::decrypt::{
    check_decryptable, check_membership, check_share_binding, ciphertext_level,
    flooded_key_product, Bound, KeyProduct,
};
use crate::flooding::Flooding;
use crate::kernels::{mul_add_into, sample_small, NttView, RingOps};
use crate::ntt::FusedProduct;
use crate::ring::WirePoly;
use crate::secret::{KeyShare, WeightedKey};
use crate::shamir::{ActiveSet, EvaluationPoint};
use crate::{glue, round, Error, Params, Result};

/// A recipient's public key, as polynomials.
#[derive(Clone, Debug)]
pub struct RecipientKey {
    p0: Poly,
    p1: Poly,
}

impl RecipientKey {
    /// From the recipient's `fhe` public key (same parameters).
    pub fn new(params: &Params, pk: &PublicKey) -> Result<Self> {
        let (p0, p1) = glue::public_key_polys(params, pk)?;
        Ok(Self { p0, p1 })
    }
}

/// One participant's key-switch share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySwitchShare {
    /// Who made it.
    pub sender: EvaluationPoint,
    /// The active set whose Lagrange weight it used.
    pub set: ActiveSet,
    /// Digest of the ciphertext it switches.
    pub ciphertext: [u8; 32],
    /// Flooding bits it added.
    pub flooding_bits: u32,
    /// `h0_j`.
    pub h0: WirePoly,
    /// `h1_j`.
    pub h1: WirePoly,
}

/// Participant `key.point()`'s share for switching `ct` to `recipient`.
pub fn key_switch_share<'a, R: RngCore + CryptoRng>(
    params: &Params,
    key: &KeyShare,
    set: &ActiveSet,
    ct: impl Into<Bound<'a>>,
    recipient: &RecipientKey,
    flooding: &Flooding,
    rng: &mut R,
) -> Result<KeySwitchShare> {
    check_membership(key, set)?;
    let key = KeyProduct::Shamir(key, set);
    switch_with(params, key, ct.into(), recipient, flooding, rng)
}

/// [`key_switch_share`] from a key already weighted for its active set
/// ([`KeyShare::weighted`] at the ciphertext's level; see
/// [`crate::decrypt::decryption_share_weighted`]): the same share for the
/// same RNG. Errors if `key` holds another level.
pub fn key_switch_share_weighted<'a, R: RngCore + CryptoRng>(
    params: &Params,
    key: &WeightedKey,
    ct: impl Into<Bound<'a>>,
    recipient: &RecipientKey,
    flooding: &Flooding,
    rng: &mut R,
) -> Result<KeySwitchShare> {
    let key = KeyProduct::Weighted(key);
    switch_with(params, key, ct.into(), recipient, flooding, rng)
}

fn switch_with<R: RngCore + CryptoRng>(
    params: &Params,
    key: KeyProduct<'_>,
    bound: Bound<'_>,
    recipient: &RecipientKey,
    flooding: &Flooding,
    rng: &mut R,
) -> Result<KeySwitchShare> {
    let ct = bound.ciphertext();
    let level = check_decryptable(params, ct, flooding)?;
    key.check_level(level)?;
    let ops = RingOps::of(params.ctx(level)?)?;
    let k = ops.len();
    let n = ops.degree();
    let c1 = ct
        .get(1)
        .ok_or_else(|| Error::Parameters("ciphertext without c1".into()))?;
    // Randomness in the order of the straightforward computation: u, the
    // flooding noise, then e.
    let u = sample_small(n, params.variance(), rng)?;
    let noise = flooding.seed(rng);
    let e = sample_small(n, params.variance(), rng)?;
    let p0_view = NttView::of(&recipient.p0)?;
    let p0 = p0_view.rows(k)?;
    let p1_view = NttView::of(&recipient.p1)?;
    let p1 = p1_view.rows(k)?;
    let u_ntt = ops.small_to_ntt(&u);
    let shares = || {
        let noise = noise.expand(n);
        // h0 = λ_j·S_j·c1 + E_j + u·p0
        let h0 = flooded_key_product(key, c1, &ops, &noise, |i, q, _, row| {
            mul_add_into(q, row, ops.row(&u_ntt, i), ops.row(p0, i));
        });
        // h1 = u·p1 + e
        let h1 = ops.small_forward(
            &e,
            |i| Some(FusedProduct::Add(ops.row(&u_ntt, i), ops.row(p1, i))),
            |_, _, _| {},
        );
        (h0, h1)
    };
    let (digest, (h0, h1)) = bound.digest_beside(params, shares);
    Ok(KeySwitchShare {
        sender: key.point(),
        set: key.set().clone(),
        ciphertext: digest?,
        flooding_bits: flooding.bits(),
        h0: WirePoly::from_residues(level, h0?),
        h1: WirePoly::from_residues(level, h1),
    })
}

/// Combines one share from every member of `set` into a ciphertext under the
/// recipient's key.
pub fn combine_key_switch<'a>(
    params: &Params,
    ct: impl Into<Bound<'a>>,
    set: &ActiveSet,
    shares: impl IntoIterator<Item = KeySwitchShare>,
) -> Result<Ciphertext> {
    let bound = ct.into();
    let ct = bound.ciphertext();
    const WHAT: &str = "key-switch share";
    if ct.len() != 2 {
        return Err(Error::Parameters(
            "ciphertext must have 2 polynomials".into(),
        ));
    }
    let level = ciphertext_level(params, ct)?;
    // After the shape: no hashing of a ciphertext that cannot be switched.
    let digest = bound.digest(params)?;
    let shares = round::collect(
        set.members(),
        shares.into_iter().map(|s| (s.sender, s)),
        WHAT,
        "the active set",
    )?;
    let ctx = params.ctx(level)?;
    let mut c0 = ct
        .first()
        .cloned()
        .ok_or_else(|| Error::Parameters("empty ciphertext".into()))?;
    let mut c1 = Poly::zero(ctx, Representation::Ntt);
    for (sender, share) in &shares {
        check_share_binding(*sender, &share.set, &share.ciphertext, set, &digest)?;
        c0 += &share.h0.parse(params, level, *sender, WHAT)?;
        c1 += &share.h1.parse(params, level, *sender, WHAT)?;
    }
    crate::ring::ciphertext_at(params, level, c0, c1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::decrypt::tests::{key_shares, random_ct, reference_digest};
    use crate::{ring, ParameterSet};
    use rand::SeedableRng;

    /// A recipient's public key reaches a node as bytes, and fhe.rs's
    /// parsing reduces its residues (the key-switch kernels need them below
    /// their primes): one equal to its prime, made in-process, comes back
    /// as 0.
    #[test]
    fn parsed_recipient_keys_are_reduced() {
        use fhe_math::rq::traits::TryConvertFrom;
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(24);
        let sk = fhe::bfv::SecretKey::random(params.bfv(), &mut rng);
        let pk = PublicKey::new(&sk, &mut rng);
        let (p0, p1) = glue::public_key_polys(&params, &pk).unwrap();
        let ctx = params.ctx(0).unwrap();
        let mut bad = p1.coefficients().to_owned();
        bad[[1, 5]] = ctx.moduli()[1];
        let bad = Poly::try_convert_from(bad, ctx, false, *p1.representation()).unwrap();
        let pk = glue::public_key(&params, &p0, &bad).unwrap();
        let recipient = RecipientKey::new(&params, &pk).unwrap();
        for p in [&recipient.p0, &recipient.p1] {
            for (r, &q) in p.coefficients().outer_iter().zip(ctx.moduli()) {
                assert!(r.iter().all(|&x| x < q));
            }
        }
    }

    /// The fast share equals the straightforward `Poly` computation from the
    /// same random stream, and so does the share from the key weighted once
    /// for the set.
    #[test]
    fn fast_share_matches_straightforward_computation() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(22);
        let (committee, keys) = key_shares(&params, &mut rng);
        let set = ActiveSet::new(&committee, [keys[1].point(), keys[2].point()]).unwrap();
        let sk = fhe::bfv::SecretKey::random(params.bfv(), &mut rng);
        let recipient = RecipientKey::new(&params, &PublicKey::new(&sk, &mut rng)).unwrap();
        for level in [0, 2] {
            let ct = random_ct(&params, level, &mut rng);
            let flooding = Flooding::new(&params, level, 10.0, 16, 3).unwrap();
            let key = &keys[1];
            let mut a = rand_chacha::ChaCha20Rng::seed_from_u64(level as u64);
            let (mut b, mut c) = (a.clone(), a.clone());
            let fast =
                key_switch_share(&params, key, &set, &ct, &recipient, &flooding, &mut a).unwrap();
            let ctx = params.ctx(level).unwrap();
            let w = key.weighted(&params, &set, level).unwrap();
            let held =
                key_switch_share_weighted(&params, &w, &ct, &recipient, &flooding, &mut c).unwrap();
            assert_eq!(held, fast);
            let mut small = crate::kernels::StreamRng::from_caller(&mut b);
            let u = Poly::small(ctx, Representation::Ntt, params.variance(), &mut small).unwrap();
            let p0 = ring::restrict(&recipient.p0, ctx).unwrap();
            let p1 = ring::restrict(&recipient.p1, ctx).unwrap();
            let mut h0 = &ct[1] * w.poly();
            h0 += &(&p0 * &u);
            h0 += &flooding.sample(&params, ctx, &mut b).unwrap();
            let mut h1 = &p1 * &u;
            h1 += &ring::error_ntt(&params, ctx, &mut b).unwrap();
            assert_eq!(fast.h0, WirePoly::from_poly(&h0, level));
            assert_eq!(fast.h1, WirePoly::from_poly(&h1, level));
            assert_eq!(fast.ciphertext, reference_digest(&params, &ct));
        }
    }

    /// With the digest computed once the share and the combination are
    /// those of the hashing paths; a share made under another digest is
    /// refused, naming its sender.
    #[test]
    fn digested_paths_match_and_bind() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(25);
        let (committee, keys) = key_shares(&params, &mut rng);
        let set = ActiveSet::new(&committee, [keys[0].point(), keys[2].point()]).unwrap();
        let sk = fhe::bfv::SecretKey::random(params.bfv(), &mut rng);
        let recipient = RecipientKey::new(&params, &PublicKey::new(&sk, &mut rng)).unwrap();
        let ct = random_ct(&params, 0, &mut rng);
        let flooding = Flooding::new(&params, 0, 10.0, 16, 3).unwrap();
        let digested = crate::decrypt::Digested::new(&params, &ct).unwrap();
        let shares: Vec<_> = [&keys[0], &keys[2]]
            .into_iter()
            .map(|k| {
                let mut a = rand_chacha::ChaCha20Rng::seed_from_u64(u64::from(k.point().get()));
                let mut b = a.clone();
                let plain =
                    key_switch_share(&params, k, &set, &ct, &recipient, &flooding, &mut a).unwrap();
                let fast =
                    key_switch_share(&params, k, &set, digested, &recipient, &flooding, &mut b)
                        .unwrap();
                assert_eq!(plain, fast);
                fast
            })
            .collect();
        assert_eq!(
            combine_key_switch(&params, digested, &set, shares.clone()).unwrap(),
            combine_key_switch(&params, &ct, &set, shares.clone()).unwrap()
        );
        let other = random_ct(&params, 0, &mut rng);
        let mislabelled =
            crate::decrypt::Digested::with_digest(&ct, reference_digest(&params, &other));
        let bad = key_switch_share(
            &params,
            &keys[2],
            &set,
            mislabelled,
            &recipient,
            &flooding,
            &mut rng,
        )
        .unwrap();
        let got = combine_key_switch(&params, digested, &set, vec![shares[0].clone(), bad]);
        assert!(
            matches!(got, Err(Error::WrongCiphertext { sender }) if sender == keys[2].point()),
            "{got:?}"
        );
    }
}
