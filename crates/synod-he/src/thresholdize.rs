//! Thresholdisation: from an n-of-n additive sharing `s = Σ s_i` to a t-of-n
//! Shamir sharing, without ever forming `s` (Mouchet, Bertrand, Hubaux,
//! J. Cryptology 2023, §4; Lattigo `multiparty.Thresholdizer`).
//!
//! Each participant `i` shares its additive share `s_i` with a fresh random
//! polynomial of degree `t−1` over `R_q` and sends `f_i(x_j)` to each member
//! `j` (the caller encrypts it to `j`'s attested transport key and signs it).
//! Participant `j`'s Shamir share is `S_j = Σ_i f_i(x_j)`, a point on
//! `F = Σ f_i` with `F(0) = s`.
//!
//! Alongside, each participant deals a uniformly random mask `r_i` the same
//! way; `M_j = Σ_i h_i(x_j)` is `j`'s share of the mask `r = Σ r_i` that the
//! first resharing's constant-term check consumes (DESIGN.md §2).

use std::fmt;

use fhe_math::rq::{Poly, Representation};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::kernels::NttView;
use crate::reshare::{draw_from_seed, draw_seeds, node_values, random_residues, Dealing};
use crate::ring::SecretWirePoly;
use crate::secret::{AdditiveKeyShare, KeyShare, MaskShare};
use crate::shamir::{Committee, EvaluationPoint};
use crate::{Error, Params, Result};

/// The epoch of the first Shamir sharing.
pub const SETUP_EPOCH: u64 = 0;

/// A dealt sub-share `(f_i(x_j), h_i(x_j))` from `sender` to `recipient`.
///
/// **Secret.** It is `Serialize` only so that the caller can put it inside an
/// HPKE envelope to the recipient; it must never be logged or stored in the
/// clear. Zeroized on drop; `Debug` shows only the routing fields.
#[derive(Clone, Serialize, Deserialize)]
pub struct SubShare {
    /// The dealer.
    pub sender: EvaluationPoint,
    /// The recipient.
    pub recipient: EvaluationPoint,
    /// The epoch the resulting share belongs to.
    pub epoch: u64,
    /// The two values, or the seed they are drawn from.
    pub values: SubShareValues,
}

/// `f_i(x_j), h_i(x_j)` in one of two forms. A recipient whose point is one
/// of the dealer's nodes `1 … t−1` gets values that are uniformly random by
/// construction (dealing by values), drawn by the dealer from a fresh
/// 32-byte seed (BLAKE3's keyed XOF, since protocol 7): it is sent the seed
/// and draws them itself (key first, then mask), as in resharing
/// (`docs/resharing.md`).
#[derive(Clone, Serialize, Deserialize)]
pub enum SubShareValues {
    /// The values themselves.
    Explicit {
        /// `f_i(x_j)`: the dealer's key sub-share.
        key: SecretWirePoly,
        /// `h_i(x_j)`: the dealer's mask sub-share.
        mask: SecretWirePoly,
    },
    /// The seed the two values are expanded from.
    Seeded([u8; 32]),
}

impl Drop for SubShareValues {
    fn drop(&mut self) {
        // Explicit values zeroize themselves (`SecretWirePoly`).
        if let SubShareValues::Seeded(seed) = self {
            seed.zeroize();
        }
    }
}

impl fmt::Debug for SubShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let form = match self.values {
            SubShareValues::Explicit { .. } => "explicit",
            SubShareValues::Seeded(_) => "seeded",
        };
        f.debug_struct("SubShare")
            .field("sender", &self.sender)
            .field("recipient", &self.recipient)
            .field("epoch", &self.epoch)
            .field("values", &format_args!("[redacted, {form}]"))
            .finish()
    }
}

impl SubShare {
    /// The key and mask values as polynomials (NTT form, level 0), checked
    /// (explicit) or drawn from the seed.
    pub(crate) fn polys(&self, params: &Params) -> Result<[Zeroizing<Poly>; 2]> {
        const WHAT: &str = "thresholdisation sub-share";
        match &self.values {
            SubShareValues::Explicit { key, mask } => Ok([
                Zeroizing::new(key.parse(params, 0, self.sender, WHAT)?),
                Zeroizing::new(mask.parse(params, 0, self.sender, WHAT)?),
            ]),
            SubShareValues::Seeded(seed) => {
                // Drawn below each prime: moved into polynomials, not parsed.
                let ctx = params.ctx(0)?;
                // Each taken out of the wiped-on-drop array only when it moves.
                let mut drawn = Zeroizing::new(draw_from_seed::<2>(params, seed));
                let [key, mask] = &mut *drawn;
                let key = Zeroizing::new(crate::kernels::ntt_poly(std::mem::take(key), ctx)?);
                let mask = Zeroizing::new(crate::kernels::ntt_poly(std::mem::take(mask), ctx)?);
                Ok([key, mask])
            }
        }
    }
}

/// Deals `sender`'s additive share and a fresh mask to every member of
/// `committee` (the sender included). Returns one sub-share per member, in
/// the committee's order.
pub fn deal<R: RngCore + CryptoRng>(
    params: &Params,
    committee: &Committee,
    sk: &AdditiveKeyShare,
    sender: EvaluationPoint,
    rng: &mut R,
) -> Result<Vec<SubShare>> {
    if !committee.contains(sender) {
        return Err(Error::UnexpectedSender {
            sender,
            what: "thresholdisation dealing",
            expected: "the committee".into(),
        });
    }
    // Both polynomials dealt by values (`reshare::Dealing`): the constant
    // (the additive share; a fresh uniform mask) and t−1 uniform values at
    // the nodes 1 … t−1, which is a uniformly random polynomial of degree
    // t−1 with that constant; the members' values are stepped or combined
    // from the nodes instead of evaluated by Horner's rule.
    // The values at node k ≥ 1 are drawn from a fresh seed; a member at a
    // node is sent the seed.
    let l = params.moduli().len();
    let d = committee.threshold().get() - 1;
    let mut seeds = draw_seeds(d, rng);
    let mut mask = Zeroizing::new(random_residues(params, rng));
    let key = NttView::of(sk.ntt())?.rows(l)?.to_vec();
    let values = node_values(params, [key, std::mem::take(&mut *mask)], &seeds)?;
    let points = committee.members();
    let dealing = Dealing::from_nodes(
        params,
        sender,
        SETUP_EPOCH,
        values,
        std::mem::take(&mut *seeds),
        points.to_vec(),
    )?;
    points
        .iter()
        .zip(dealing.all_values())
        .map(|(&recipient, values)| {
            let values = match (values, dealing.seed_at(u64::from(recipient.get()))) {
                (_, Some(seed)) => SubShareValues::Seeded(*seed),
                (Some([key, mask]), None) => SubShareValues::Explicit {
                    key: SecretWirePoly::from_residues(0, key),
                    mask: SecretWirePoly::from_residues(0, mask),
                },
                (None, None) => {
                    return Err(Error::Parameters("a member without values".into()));
                }
            };
            Ok(SubShare {
                sender,
                recipient,
                epoch: SETUP_EPOCH,
                values,
            })
        })
        .collect()
}

/// Combines the sub-shares addressed to `me`, one from every member of
/// `committee`, into `me`'s key share and mask share.
pub fn receive(
    params: &Params,
    committee: &Committee,
    me: EvaluationPoint,
    subshares: impl IntoIterator<Item = SubShare>,
) -> Result<(KeyShare, MaskShare)> {
    let mut receiver = Receiver::new(params, committee, me)?;
    for s in subshares {
        receiver.add(s)?;
    }
    receiver.finish()
}

/// [`receive`] one sub-share at a time: only the two running sums are held,
/// so a committee of `n` needs `O(n)` polynomials in memory rather than
/// `n²` sub-shares at once.
pub struct Receiver {
    params: Params,
    committee: Committee,
    me: EvaluationPoint,
    seen: std::collections::BTreeSet<EvaluationPoint>,
    key: Zeroizing<Poly>,
    mask: Zeroizing<Poly>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("thresholdize::Receiver")
            .field("me", &self.me)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    const WHAT: &'static str = "thresholdisation sub-share";

    /// Starts receiving for `me`, a member of `committee`.
    pub fn new(params: &Params, committee: &Committee, me: EvaluationPoint) -> Result<Self> {
        if !committee.contains(me) {
            return Err(Error::InvalidCommittee(format!(
                "{me} is not a member of the committee"
            )));
        }
        let ctx = params.ctx(0)?;
        Ok(Self {
            params: params.clone(),
            committee: committee.clone(),
            me,
            seen: std::collections::BTreeSet::new(),
            key: Zeroizing::new(Poly::zero(ctx, Representation::Ntt)),
            mask: Zeroizing::new(Poly::zero(ctx, Representation::Ntt)),
        })
    }

    /// Checks one sub-share (sender in the committee and not seen before,
    /// addressed to `me`, set-up epoch, well-formed) and adds it in.
    pub fn add(&mut self, s: SubShare) -> Result<()> {
        let (me, sender, what) = (self.me, s.sender, Self::WHAT);
        if !self.committee.contains(sender) {
            return Err(Error::UnexpectedSender {
                sender,
                what,
                expected: "the committee".to_string(),
            });
        }
        if self.seen.contains(&sender) {
            return Err(Error::Duplicate { sender, what });
        }
        let malformed = |reason: String| Error::Malformed {
            sender,
            what,
            reason,
        };
        if s.recipient != me {
            return Err(malformed(format!(
                "addressed to {} but delivered to {me}",
                s.recipient
            )));
        }
        if s.epoch != SETUP_EPOCH {
            return Err(malformed(format!(
                "for epoch {} during set-up (epoch {SETUP_EPOCH})",
                s.epoch
            )));
        }
        let [k, m] = s.polys(&self.params)?;
        *self.key += &*k;
        *self.mask += &*m;
        self.seen.insert(sender);
        Ok(())
    }

    /// The key share and mask share, once every member's sub-share is in.
    pub fn finish(mut self) -> Result<(KeyShare, MaskShare)> {
        let missing: Vec<u32> = self
            .committee
            .members()
            .iter()
            .filter(|p| !self.seen.contains(p))
            .map(|p| p.get())
            .collect();
        if !missing.is_empty() {
            return Err(Error::Missing {
                what: Self::WHAT,
                missing,
            });
        }
        let ctx = self.params.ctx(0)?;
        let key = std::mem::replace(&mut *self.key, Poly::zero(ctx, Representation::Ntt));
        let mask = std::mem::replace(&mut *self.mask, Poly::zero(ctx, Representation::Ntt));
        Ok((
            KeyShare::new(self.me, self.committee.clone(), SETUP_EPOCH, key),
            MaskShare::new(self.me, SETUP_EPOCH, mask),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::ring;
    use crate::shamir::lagrange_weight;
    use crate::ParameterSet;
    use rand::SeedableRng;

    /// A dealing is a degree-(t−1) sharing of the additive share and of one
    /// mask: every t-subset of the sub-shares interpolates to the same
    /// constant, the share itself for the key, while t−1 sub-shares do not. Dense points, a far one and a threshold of one.
    #[test]
    fn dealt_values_are_a_sharing_of_the_additive_share() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let ctx = params.ctx(0).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(21);
        let p = |x: u32| EvaluationPoint::new(x).unwrap();
        for (points, t) in [
            (vec![1, 2, 3, 4, 5, 6, 7], 4),
            (vec![1, 2, 5, 9, 40, 70_000], 3),
            (vec![3, 8], 1),
        ] {
            let points: Vec<EvaluationPoint> = points.into_iter().map(p).collect();
            let committee = Committee::new(points.clone(), t).unwrap();
            let sk = AdditiveKeyShare::generate(&params, &mut rng).unwrap();
            let subs = deal(&params, &committee, &sk, points[0], &mut rng).unwrap();
            assert_eq!(subs.len(), points.len());
            // Members at the nodes 1 … t−1 are sent seeds.
            for sub in &subs {
                let seeded = matches!(sub.values, SubShareValues::Seeded(_));
                assert_eq!(seeded, (sub.recipient.get() as usize) < t, "{sub:?}");
            }
            let at_zero = |set: &[EvaluationPoint], key: bool| {
                let mut acc = Poly::zero(ctx, Representation::Ntt);
                for &x in set {
                    let sub = subs.iter().find(|s| s.recipient == x).unwrap();
                    let w = lagrange_weight(x, set, ctx.modulus()).unwrap();
                    let [k, m] = sub.polys(&params).unwrap();
                    let v = if key { k } else { m };
                    acc += &ring::scalar_mul(&v, &w);
                }
                acc
            };
            let first: Vec<EvaluationPoint> = points[..t].to_vec();
            let last: Vec<EvaluationPoint> = points[points.len() - t..].to_vec();
            assert_eq!(&at_zero(&first, true), sk.ntt(), "{points:?}");
            assert_eq!(&at_zero(&last, true), sk.ntt(), "{points:?}");
            assert_eq!(at_zero(&first, false), at_zero(&last, false));
            if t > 1 {
                assert_ne!(&at_zero(&first[..t - 1], true), sk.ntt());
            }
        }
    }
}
