//! Shamir secret sharing over `R_q` at permanent evaluation points.
//!
//! A secret `a ∈ R_q` is shared with a random polynomial
//! `f(X) = a + c_1 X + … + c_{t-1} X^{t-1}` whose coefficients `c_k` are
//! uniform in `R_q`; participant `j` receives `f(x_j)`. Because evaluation is
//! coefficient-wise and the NTT is linear, sharing in NTT form is the same as
//! sharing in coefficient form. Reconstruction at 0 uses Lagrange weights
//! `λ_j^T = Π_{m∈T, m≠j} x_m / (x_m − x_j)`, computed modulo `q` (and hence
//! modulo every RNS prime). This is the construction of Mouchet, Bertrand and
//! Hubaux, "An Efficient Threshold Access-Structure for RLWE-Based Multiparty
//! Homomorphic Encryption", J. Cryptology 2023, as in Lattigo's
//! `multiparty.Thresholdizer` / `Combiner`.
//!
//! Evaluation points are *permanent* (DESIGN.md §2): a participant keeps its
//! point for life and points are never reused, so a committee is a set of
//! points, not `1..=n`.

use std::collections::BTreeSet;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;

use fhe_math::rq::{Context, Poly, Representation};
use num_bigint::{BigInt, BigUint};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A participant's permanent, non-zero Shamir evaluation point.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EvaluationPoint(NonZeroU32);

impl EvaluationPoint {
    /// A point; zero is refused (the secret lives at zero).
    pub fn new(x: u32) -> Result<Self> {
        NonZeroU32::new(x)
            .map(Self)
            .ok_or_else(|| Error::InvalidCommittee("evaluation point 0 is reserved".into()))
    }

    /// The point as an integer.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Display for EvaluationPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl fmt::Debug for EvaluationPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A threshold `t` valid for a committee of `n`: `1 ≤ t ≤ n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold(u32);

impl Threshold {
    /// Checks `1 ≤ t ≤ n`.
    pub fn new(t: usize, n: usize) -> Result<Self> {
        if t == 0 || t > n {
            return Err(Error::InvalidThreshold { t, n });
        }
        u32::try_from(t)
            .map(Self)
            .map_err(|_| Error::InvalidThreshold { t, n })
    }

    /// `t` as an integer.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

/// A committee: distinct permanent points and the threshold `t`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committee {
    members: Vec<EvaluationPoint>,
    threshold: Threshold,
}

impl Committee {
    /// A committee of `members` (any order, no duplicates) with threshold `t`.
    pub fn new(members: impl IntoIterator<Item = EvaluationPoint>, t: usize) -> Result<Self> {
        let list: Vec<EvaluationPoint> = members.into_iter().collect();
        let set: BTreeSet<EvaluationPoint> = list.iter().copied().collect();
        if set.len() != list.len() {
            return Err(Error::InvalidCommittee(
                "an evaluation point appears twice".into(),
            ));
        }
        let threshold = Threshold::new(t, set.len())?;
        Ok(Self {
            members: set.into_iter().collect(),
            threshold,
        })
    }

    /// Members in increasing order of their points.
    pub fn members(&self) -> &[EvaluationPoint] {
        &self.members
    }

    /// Whether `p` is a member.
    pub fn contains(&self, p: EvaluationPoint) -> bool {
        self.members.binary_search(&p).is_ok()
    }

    /// The threshold `t`.
    pub fn threshold(&self) -> Threshold {
        self.threshold
    }

    /// Number of members `n`.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Never true for a valid committee; present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// The participants that take part in one threshold operation (a decryption
/// or key switch): at least `t` members of the committee. Every share made for
/// it carries the set, so a share weighted for another set is rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveSet {
    members: Vec<EvaluationPoint>,
}

impl ActiveSet {
    /// `members` must be distinct members of `committee`, at least `t` of them.
    pub fn new(
        committee: &Committee,
        members: impl IntoIterator<Item = EvaluationPoint>,
    ) -> Result<Self> {
        let list: Vec<EvaluationPoint> = members.into_iter().collect();
        let set: BTreeSet<EvaluationPoint> = list.iter().copied().collect();
        if set.len() != list.len() {
            return Err(Error::InvalidCommittee(
                "a participant appears twice in the active set".into(),
            ));
        }
        if let Some(outsider) = set.iter().find(|p| !committee.contains(**p)) {
            return Err(Error::InvalidCommittee(format!(
                "{outsider} is not a member of the committee"
            )));
        }
        let t = committee.threshold().get();
        if set.len() < t {
            return Err(Error::InvalidCommittee(format!(
                "{} participants cannot act for a threshold of {t}",
                set.len()
            )));
        }
        Ok(Self {
            members: set.into_iter().collect(),
        })
    }

    /// Members in increasing order.
    pub fn members(&self) -> &[EvaluationPoint] {
        &self.members
    }

    /// Whether `p` is in the set.
    pub fn contains(&self, p: EvaluationPoint) -> bool {
        self.members.binary_search(&p).is_ok()
    }

    /// The points as integers, for errors and transcripts.
    pub fn as_u32(&self) -> Vec<u32> {
        self.members.iter().map(|p| p.get()).collect()
    }

    /// The Lagrange weight of `j` in this set, mod `q`.
    pub fn weight(&self, j: EvaluationPoint, q: &BigUint) -> Result<BigUint> {
        lagrange_weight(j, &self.members, q)
    }

    /// The Lagrange weight of `j` in this set modulo each prime of
    /// `moduli` ([`lagrange_weight_residues`]).
    pub(crate) fn weight_residues(
        &self,
        j: EvaluationPoint,
        moduli: &[fhe_math::zq::Modulus],
    ) -> Result<Vec<u64>> {
        lagrange_weight_residues(j, &self.members, moduli)
    }
}

/// The Lagrange weight at zero of `j` within `set` modulo each prime of
/// `moduli`, with word arithmetic prime by prime (Fermat inverses):
/// [`lagrange_weight`] modulo `Q` reduced into each prime, without a
/// 218-bit inversion.
pub(crate) fn lagrange_weight_residues(
    j: EvaluationPoint,
    set: &[EvaluationPoint],
    moduli: &[fhe_math::zq::Modulus],
) -> Result<Vec<u64>> {
    if !set.contains(&j) {
        return Err(Error::InvalidCommittee(format!(
            "{j} is not in the Lagrange set"
        )));
    }
    moduli
        .iter()
        .map(|q| {
            let xj = q.reduce(u64::from(j.get()));
            let (mut num, mut den) = (1u64, 1u64);
            for m in set.iter().filter(|&&m| m != j) {
                let xm = q.reduce(u64::from(m.get()));
                num = q.mul(num, xm);
                den = q.mul(den, q.sub(xm, xj));
            }
            if den == 0 {
                return Err(Error::InvalidCommittee(
                    "Lagrange denominator not invertible mod q".into(),
                ));
            }
            Ok(q.mul(num, q.pow(den, **q - 2)))
        })
        .collect()
}

/// The Lagrange weight at zero of `j` within the set `set`, reduced mod `q`.
///
/// `set` must contain `j` and distinct points; every difference of points is
/// smaller than every RNS prime, so the denominator is invertible.
pub fn lagrange_weight(
    j: EvaluationPoint,
    set: &[EvaluationPoint],
    q: &BigUint,
) -> Result<BigUint> {
    if !set.contains(&j) {
        return Err(Error::InvalidCommittee(format!(
            "{j} is not in the Lagrange set"
        )));
    }
    let q_int = BigInt::from(q.clone());
    let mut num = BigInt::from(1u8);
    let mut den = BigInt::from(1u8);
    let xj = BigInt::from(j.get());
    for &m in set {
        if m == j {
            continue;
        }
        let xm = BigInt::from(m.get());
        num *= &xm;
        den *= &xm - &xj;
    }
    let num = num.modpow(&BigInt::from(1u8), &q_int);
    let mut den = den % &q_int;
    if den.sign() == num_bigint::Sign::Minus {
        den += &q_int;
    }
    let inv = den.modinv(&q_int).ok_or_else(|| {
        Error::InvalidCommittee("Lagrange denominator not invertible mod q".into())
    })?;
    let w = (num * inv) % &q_int;
    w.to_biguint()
        .ok_or_else(|| Error::InvalidCommittee("negative Lagrange weight".into()))
}

/// Shares `secret` (NTT form, in `ctx`) with threshold `t` at `points`.
/// Returns `f(x_j)` for each point, in the order given.
pub fn share<R: RngCore + CryptoRng>(
    secret: &Poly,
    t: Threshold,
    points: &[EvaluationPoint],
    ctx: &Arc<Context>,
    rng: &mut R,
) -> Vec<Poly> {
    // f(X) = secret + c_1 X + … + c_{t-1} X^{t-1}; coefficients are zeroized on drop.
    let coeffs: Vec<zeroize::Zeroizing<Poly>> = (1..t.get())
        .map(|_| zeroize::Zeroizing::new(Poly::random(ctx, Representation::Ntt, rng)))
        .collect();
    points
        .iter()
        .map(|x| {
            let x = BigUint::from(x.get());
            // Horner from the top coefficient down to the secret.
            let mut acc = match coeffs.last() {
                Some(top) => top.as_ref().clone(),
                None => return secret.clone(),
            };
            for c in coeffs.iter().rev().skip(1) {
                acc *= &x;
                acc += c.as_ref();
            }
            acc *= &x;
            acc += secret;
            acc
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::{ParameterSet, Params};
    use proptest::prelude::*;
    use rand::SeedableRng;

    fn pts(xs: &[u32]) -> Vec<EvaluationPoint> {
        xs.iter()
            .map(|&x| EvaluationPoint::new(x).unwrap())
            .collect()
    }

    #[test]
    fn threshold_and_committee_checks() {
        assert!(Threshold::new(0, 3).is_err());
        assert!(Threshold::new(4, 3).is_err());
        assert!(Threshold::new(3, 3).is_ok());
        assert!(EvaluationPoint::new(0).is_err());
        assert!(Committee::new(pts(&[1, 2, 2]), 2).is_err());
        let c = Committee::new(pts(&[7, 3, 11]), 2).unwrap();
        assert_eq!(c.members(), pts(&[3, 7, 11]).as_slice());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// The word-arithmetic weights are the big-integer weight mod Q
        /// reduced into each prime, at every level's primes.
        #[test]
        fn weight_residues_equal_the_projected_weight(
            points in proptest::collection::btree_set(1u32..5000, 1..8),
            pick in any::<proptest::sample::Index>(),
        ) {
            let params = Params::new(ParameterSet::Bfv8192, 30).unwrap();
            let members = pts(&points.iter().copied().collect::<Vec<_>>());
            let committee = Committee::new(members.clone(), 1).unwrap();
            let set = ActiveSet::new(&committee, members.iter().copied()).unwrap();
            let j = members[pick.index(members.len())];
            let q = params.ctx(0).unwrap().modulus().clone();
            let w = set.weight(j, &q).unwrap();
            let moduli: Vec<fhe_math::zq::Modulus> = params
                .moduli()
                .iter()
                .map(|&p| fhe_math::zq::Modulus::new(p).unwrap())
                .collect();
            let got = set.weight_residues(j, &moduli).unwrap();
            for (r, q) in got.iter().zip(&moduli) {
                prop_assert_eq!(BigUint::from(*r), &w % **q);
            }
            let outsider = EvaluationPoint::new(5001).unwrap();
            prop_assert!(set.weight_residues(outsider, &moduli).is_err());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        /// Any t of n shares reconstruct the secret; t-1 shares with the
        /// same weights do not.
        #[test]
        fn any_t_subset_reconstructs(seed in any::<u64>(), t in 1usize..5, extra in 0usize..3) {
            let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
            let ctx = params.ctx(0).unwrap();
            let q = ctx.modulus().clone();
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
            let n = t + extra;
            // Permanent points need not be 1..=n.
            let points: Vec<_> = (0..n).map(|i| EvaluationPoint::new(3 * i as u32 + 2).unwrap()).collect();
            let secret = Poly::random(ctx, Representation::Ntt, &mut rng);
            let shares = share(&secret, Threshold::new(t, n).unwrap(), &points, ctx, &mut rng);
            let subset: Vec<_> = points.iter().copied().skip(extra).collect();
            let mut acc = Poly::zero(ctx, Representation::Ntt);
            for (i, p) in subset.iter().enumerate() {
                let w = lagrange_weight(*p, &subset, &q).unwrap();
                acc += &crate::ring::scalar_mul(&shares[i + extra], &w);
            }
            prop_assert_eq!(&acc, &secret);
            if t > 1 {
                let fewer = &subset[1..];
                let mut acc = Poly::zero(ctx, Representation::Ntt);
                for (i, p) in fewer.iter().enumerate() {
                    let w = lagrange_weight(*p, fewer, &q).unwrap();
                    acc += &crate::ring::scalar_mul(&shares[i + extra + 1], &w);
                }
                prop_assert_ne!(&acc, &secret);
            }
        }
    }
}
