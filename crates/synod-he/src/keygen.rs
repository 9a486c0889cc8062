//! Collective public-key generation (CKG), Mouchet, Troncoso-Pastoriza,
//! Bossuat and Hubaux, "Multiparty Homomorphic Encryption from
//! Ring-Learning-with-Errors", PETS 2021, §4 (Lattigo `multiparty.PublicKeyGenProtocol`).
//!
//! With the common random polynomial `a` (derived from the session id), each
//! participant publishes `p_i = −a·s_i + e_i`; the public key is
//! `pk = (Σ p_i, a)`, an RLWE encryption of zero under `s = Σ s_i`. The
//! protocol is linear in the secret, so it also runs on Lagrange-weighted
//! Shamir shares (any `t` participants) after thresholdisation.

use fhe::bfv::PublicKey;
use fhe_math::rq::{Poly, Representation};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::crp::{CommonRandomness, CrpPurpose};
use crate::kernels::{mul_sub_into, sample_small, NttView, RingOps};
use crate::ring::WirePoly;
use crate::secret::LinearSecret;
use crate::shamir::EvaluationPoint;
use crate::{glue, round, Params, Result};

/// One participant's public-key share `p_i = −a·s_i + e_i`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyShare {
    /// Who made it.
    pub sender: EvaluationPoint,
    /// `p_i`, level 0.
    pub p0: WirePoly,
}

/// Makes this participant's public-key share.
pub fn public_key_share<S: LinearSecret, R: RngCore + CryptoRng>(
    params: &Params,
    crs: &CommonRandomness,
    secret: &S,
    sender: EvaluationPoint,
    rng: &mut R,
) -> Result<PublicKeyShare> {
    let a = crs.poly(CrpPurpose::PublicKey)?;
    let ops = RingOps::of(params.ctx(0)?)?;
    let l = ops.len();
    // p_i = e − a·s_i, row by row: the error taken to NTT form in place, the
    // product subtracted from it.
    let e = sample_small(params.degree(), params.variance(), rng)?;
    let a_view = NttView::of(&a)?;
    let a = a_view.rows(l)?;
    let s_view = NttView::of(secret.secret_ntt())?;
    let s = s_view.rows(l)?;
    let mut p0 = ops.small_matrix(&e);
    ops.par_rows(&mut p0, |i, q, ntt, row| {
        ntt.forward(row);
        mul_sub_into(q, row, ops.row(a, i), ops.row(s, i));
    });
    Ok(PublicKeyShare {
        sender,
        p0: WirePoly::from_residues(0, p0),
    })
}

/// The collective public key, with the polynomials it was built from.
#[derive(Clone, Debug)]
pub struct CollectivePublicKey {
    p0: Poly,
    a: Poly,
    pk: PublicKey,
}

impl CollectivePublicKey {
    /// The `fhe` key, for encryption.
    pub fn key(&self) -> &PublicKey {
        &self.pk
    }

    /// `(Σ p_i, a)` in wire form.
    pub fn to_wire(&self) -> (WirePoly, WirePoly) {
        (
            WirePoly::from_poly(&self.p0, 0),
            WirePoly::from_poly(&self.a, 0),
        )
    }
}

/// Sums the shares of exactly the participants in `expected` into the public key.
pub fn aggregate_public_key(
    params: &Params,
    crs: &CommonRandomness,
    expected: &[EvaluationPoint],
    shares: impl IntoIterator<Item = PublicKeyShare>,
) -> Result<CollectivePublicKey> {
    let shares = round::collect(
        expected,
        shares.into_iter().map(|s| (s.sender, s)),
        "public-key share",
        "the key-generation set",
    )?;
    let ctx = params.ctx(0)?;
    let mut p0 = Poly::zero(ctx, Representation::Ntt);
    for (sender, share) in &shares {
        p0 += &share.p0.parse(params, 0, *sender, "public-key share")?;
    }
    let a = crs.poly(CrpPurpose::PublicKey)?.into_owned();
    let pk = glue::public_key(params, &p0, &a)?;
    Ok(CollectivePublicKey { p0, a, pk })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::secret::AdditiveKeyShare;
    use crate::ParameterSet;
    use rand::SeedableRng;

    /// The row kernels give `Poly`'s `−a·s + e` with the same randomness.
    #[test]
    fn share_equals_the_poly_arithmetic() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let ctx = params.ctx(0).unwrap();
        let crs = CommonRandomness::new(&params, [3; 32]);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(8);
        let sk = AdditiveKeyShare::generate(&params, &mut rng).unwrap();
        let me = EvaluationPoint::new(2).unwrap();
        let mut a_rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let mut b_rng = a_rng.clone();
        let share = public_key_share(&params, &crs, &sk, me, &mut a_rng).unwrap();
        let a = crs.poly(CrpPurpose::PublicKey).unwrap();
        let mut want = -(a.as_ref() * sk.ntt());
        let mut small = crate::kernels::SmallStreamRng::from_caller(&mut b_rng);
        want += &Poly::small(ctx, Representation::Ntt, params.variance(), &mut small).unwrap();
        assert_eq!(share.p0.parse(&params, 0, me, "p0").unwrap(), want);
        assert_eq!(share.sender, me);
    }
}
