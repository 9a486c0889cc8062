//! Secret key material: the small additive share a participant draws at
//! set-up, its Shamir share of the collective key after thresholdisation, and
//! the mask share that resharing consumes.
//!
//! Every type here zeroizes on drop, prints as `[redacted]`, and has no
//! `Serialize`: it leaves a process only inside an encrypted or sealed
//! envelope built by the caller from [`crate::thresholdize::SubShare`].

use std::fmt;

use fhe_math::rq::Poly;
use rand::{CryptoRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::kernels::{NttView, RingOps};
use crate::ring;
use crate::shamir::{ActiveSet, Committee, EvaluationPoint};
use crate::{Params, Result};

/// A participant's additive share `s_i` of the collective secret key
/// `s = Σ s_i`: small coefficients (centred binomial, variance 10), drawn
/// locally and never sent anywhere. Needed in full only at set-up
/// (public-key, relinearisation-key and thresholdisation rounds).
pub struct AdditiveKeyShare {
    coeffs: Zeroizing<Vec<i64>>,
    ntt: Zeroizing<Poly>,
}

impl AdditiveKeyShare {
    /// Draws a fresh share.
    pub fn generate<R: RngCore + CryptoRng>(params: &Params, rng: &mut R) -> Result<Self> {
        let coeffs = crate::kernels::sample_small(params.degree(), params.variance(), rng)?;
        let ntt = Zeroizing::new(ring::small_to_ntt(&coeffs, params.ctx(0)?)?);
        Ok(Self { coeffs, ntt })
    }

    /// `s_i` in NTT form at level 0.
    pub(crate) fn ntt(&self) -> &Poly {
        &self.ntt
    }

    /// The small coefficients (for the test oracle).
    #[cfg_attr(not(feature = "insecure-test-params"), allow(dead_code))]
    pub(crate) fn coeffs(&self) -> &[i64] {
        &self.coeffs
    }
}

impl fmt::Debug for AdditiveKeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdditiveKeyShare([redacted])")
    }
}

/// Participant `point`'s Shamir share `S_j` of the collective secret key for
/// `committee` in `epoch`. Uniform in `R_q`; any `t` of them, each weighted by
/// its Lagrange coefficient, sum to `s`.
pub struct KeyShare {
    point: EvaluationPoint,
    committee: Committee,
    epoch: u64,
    poly: Poly,
}

impl KeyShare {
    pub(crate) fn new(
        point: EvaluationPoint,
        committee: Committee,
        epoch: u64,
        poly: Poly,
    ) -> Self {
        Self {
            point,
            committee,
            epoch,
            poly,
        }
    }

    /// The holder's evaluation point.
    pub fn point(&self) -> EvaluationPoint {
        self.point
    }

    /// The committee this share belongs to.
    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    /// The epoch (0 after set-up; each resharing increments it).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// `S_j` at level 0, NTT form.
    pub(crate) fn poly(&self) -> &Poly {
        &self.poly
    }

    /// `λ_j^T · S_j` for the active set `T`, restricted to `level`'s primes:
    /// Lattigo's `Combiner.GenAdditiveShare`, the additive share of the
    /// secret key for `T`. Errors if this member or one of `T` is not in
    /// the share's committee.
    ///
    /// Word arithmetic per prime (the weight's residues, constant-time Shoup
    /// products) on one copy of the residues, which then becomes the
    /// polynomial (no other copy is left).
    pub fn weighted(&self, params: &Params, set: &ActiveSet, level: usize) -> Result<WeightedKey> {
        crate::decrypt::check_membership(self, set)?;
        let ctx = params.ctx(level)?;
        let ops = RingOps::of(ctx)?;
        let lambda = set.weight_residues(self.point, ops.moduli())?;
        let view = NttView::of(&self.poly)?;
        let mut rows = Zeroizing::new(view.rows(ops.len())?.to_vec());
        for ((row, q), &l) in rows.chunks_mut(ops.degree()).zip(ops.moduli()).zip(&lambda) {
            q.scalar_mul_vec(row, l);
        }
        let poly = crate::kernels::ntt_poly(std::mem::take(&mut *rows), ctx)?;
        Ok(WeightedKey {
            point: self.point,
            set: set.clone(),
            level,
            poly: Zeroizing::new(poly),
        })
    }
}

impl Drop for KeyShare {
    fn drop(&mut self) {
        self.poly.zeroize();
    }
}
impl ZeroizeOnDrop for KeyShare {}

impl fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyShare")
            .field("point", &self.point)
            .field("epoch", &self.epoch)
            .field("share", &"[redacted]")
            .finish()
    }
}

/// Participant `point`'s Shamir share of a uniformly random mask `r ∈ R_q`,
/// dealt beside the key share. Resharing's constant-term check publishes
/// `γ·S_j + M_j`, which is a degree-(t−1) codeword exactly when every dealer
/// used its true share, and reveals nothing because `M_j` is a fresh sharing.
pub struct MaskShare {
    point: EvaluationPoint,
    epoch: u64,
    poly: Poly,
}

impl MaskShare {
    pub(crate) fn new(point: EvaluationPoint, epoch: u64, poly: Poly) -> Self {
        Self { point, epoch, poly }
    }

    /// The holder's evaluation point.
    pub fn point(&self) -> EvaluationPoint {
        self.point
    }

    /// The epoch this mask is for.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The mask share at level 0, NTT form.
    pub(crate) fn poly(&self) -> &Poly {
        &self.poly
    }
}

impl Drop for MaskShare {
    fn drop(&mut self) {
        self.poly.zeroize();
    }
}
impl ZeroizeOnDrop for MaskShare {}

impl fmt::Debug for MaskShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaskShare")
            .field("point", &self.point)
            .field("epoch", &self.epoch)
            .field("share", &"[redacted]")
            .finish()
    }
}

/// A Lagrange-weighted key share `λ_j^T · S_j` at some level: what one
/// participant of the active set `T` contributes to a linear protocol
/// (decryption, key switching, rotation keys).
pub struct WeightedKey {
    point: EvaluationPoint,
    set: ActiveSet,
    level: usize,
    poly: Zeroizing<Poly>,
}

impl WeightedKey {
    pub(crate) fn poly(&self) -> &Poly {
        &self.poly
    }

    /// The holder's evaluation point.
    pub fn point(&self) -> EvaluationPoint {
        self.point
    }

    /// The active set whose Lagrange weight it carries.
    pub fn set(&self) -> &ActiveSet {
        &self.set
    }

    /// The level whose primes it holds.
    pub fn level(&self) -> usize {
        self.level
    }
}

impl fmt::Debug for WeightedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeightedKey")
            .field("point", &self.point)
            .field("level", &self.level)
            .field("share", &"[redacted]")
            .finish()
    }
}

/// Key material a linear protocol (public key, rotation keys) can run on: the
/// additive share at set-up, or a weighted Shamir share later.
pub trait LinearSecret {
    /// The secret in NTT form at level 0.
    fn secret_ntt(&self) -> &Poly;
}

impl LinearSecret for AdditiveKeyShare {
    fn secret_ntt(&self) -> &Poly {
        self.ntt()
    }
}

impl LinearSecret for WeightedKey {
    fn secret_ntt(&self) -> &Poly {
        self.poly()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::shamir::{Committee, EvaluationPoint};
    use crate::{thresholdize, ParameterSet};
    use fhe_math::rq::Representation;
    use rand::SeedableRng;

    /// The weighted share equals `λ_j^T·S_j` computed with the 218-bit weight
    /// and fhe-math's arithmetic, restricted to each level.
    #[test]
    fn weighted_share_is_the_lagrange_multiple() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let (committee, keys) = crate::decrypt::tests::key_shares(&params, &mut rng);
        let set =
            crate::shamir::ActiveSet::new(&committee, [keys[0].point(), keys[1].point()]).unwrap();
        let q = params.ctx(0).unwrap().modulus().clone();
        for level in [0, 2] {
            let ctx = params.ctx(level).unwrap();
            for key in &keys[..2] {
                let w = set.weight(key.point(), &q).unwrap();
                let expected = ring::scalar_mul(&ring::restrict(key.poly(), ctx).unwrap(), &w);
                let got = key.weighted(&params, &set, level).unwrap();
                assert_eq!(got.poly(), &expected);
            }
        }
        // A member outside the set has no weight in it.
        assert!(keys[2].weighted(&params, &set, 0).is_err());
    }

    /// Key and mask shares dealt by thresholdisation lie on degree-(t−1)
    /// polynomials: every t-subset interpolates the same key (Σ s_i) and the
    /// same mask, and the mask is not zero.
    #[test]
    fn key_and_mask_shares_are_consistent_sharings() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let pts: Vec<_> = [2u32, 3, 5, 8]
            .iter()
            .map(|&x| EvaluationPoint::new(x).unwrap())
            .collect();
        let committee = Committee::new(pts.clone(), 3).unwrap();
        let sks: Vec<_> = pts
            .iter()
            .map(|_| AdditiveKeyShare::generate(&params, &mut rng).unwrap())
            .collect();
        let mut inbox: Vec<Vec<_>> = pts.iter().map(|_| Vec::new()).collect();
        for (x, sk) in pts.iter().zip(&sks) {
            for sub in thresholdize::deal(&params, &committee, sk, *x, &mut rng).unwrap() {
                let j = pts.iter().position(|p| *p == sub.recipient).unwrap();
                inbox[j].push(sub);
            }
        }
        let shares: Vec<_> = pts
            .iter()
            .zip(inbox)
            .map(|(x, subs)| thresholdize::receive(&params, &committee, *x, subs).unwrap())
            .collect();
        let q = params.ctx(0).unwrap().modulus().clone();
        let ctx = params.ctx(0).unwrap();
        let interpolate = |idx: &[usize], pick: &dyn Fn(usize) -> Poly| {
            let set: Vec<_> = idx.iter().map(|&i| pts[i]).collect();
            let mut acc = Poly::zero(ctx, Representation::Ntt);
            for &i in idx {
                let w = crate::shamir::lagrange_weight(pts[i], &set, &q).unwrap();
                acc += &ring::scalar_mul(&pick(i), &w);
            }
            acc
        };
        let mut whole = Poly::zero(ctx, Representation::Ntt);
        for sk in &sks {
            whole += sk.ntt();
        }
        let key = |i: usize| shares[i].0.poly().clone();
        let mask = |i: usize| shares[i].1.poly().clone();
        assert_eq!(interpolate(&[0, 1, 2], &key), whole);
        assert_eq!(interpolate(&[1, 2, 3], &key), whole);
        let m1 = interpolate(&[0, 1, 3], &mask);
        assert_eq!(m1, interpolate(&[0, 2, 3], &mask));
        assert_ne!(m1, Poly::zero(ctx, Representation::Ntt));
        assert_eq!(shares[0].1.epoch(), thresholdize::SETUP_EPOCH);
        // Debug never shows the share.
        assert!(format!("{:?}", shares[0].0).contains("redacted"));
        assert!(format!("{:?}", sks[0]).contains("redacted"));
    }
}
