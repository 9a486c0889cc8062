//! A participant's Shamir key share and mask share in a serialisable form, for
//! an enclave that must **seal** them to disk so that a restarted enclave
//! keeps its share (synod-tee's simulated enclave; DESIGN.md §1).
//!
//! [`SealableShares`] is secret: it zeroizes on drop (its polynomials are
//! [`crate::ring::SecretWirePoly`]) and prints as
//! `[redacted]`. Its only intended use is to be serialised straight into an
//! authenticated, encrypted sealed blob and parsed back from one; nothing in
//! synod sends it anywhere. The key types themselves stay without
//! `Serialize` (see [`crate::secret`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ring::SecretWirePoly;
use crate::secret::{KeyShare, MaskShare};
use crate::shamir::{Committee, EvaluationPoint};
use crate::{Error, Params, Result};

/// A key share and its mask share, as residues. **Secret.**
#[derive(Clone, Serialize, Deserialize)]
pub struct SealableShares {
    point: EvaluationPoint,
    committee: Committee,
    epoch: u64,
    key: SecretWirePoly,
    mask: SecretWirePoly,
}

impl fmt::Debug for SealableShares {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealableShares")
            .field("point", &self.point)
            .field("epoch", &self.epoch)
            .field("shares", &"[redacted]")
            .finish()
    }
}

impl SealableShares {
    /// Captures `key` and `mask` (which must belong to the same point and epoch).
    pub fn new(key: &KeyShare, mask: &MaskShare) -> Result<Self> {
        if key.point() != mask.point() || key.epoch() != mask.epoch() {
            return Err(Error::InvalidCommittee(format!(
                "key share of {} (epoch {}) with a mask share of {} (epoch {})",
                key.point(),
                key.epoch(),
                mask.point(),
                mask.epoch()
            )));
        }
        Ok(Self {
            point: key.point(),
            committee: key.committee().clone(),
            epoch: key.epoch(),
            key: SecretWirePoly::from_poly(key.poly(), 0),
            mask: SecretWirePoly::from_poly(mask.poly(), 0),
        })
    }

    /// The holder's point.
    pub fn point(&self) -> EvaluationPoint {
        self.point
    }

    /// The epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The committee.
    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    /// Rebuilds the shares, checking every residue against `params`.
    pub fn shares(&self, params: &Params) -> Result<(KeyShare, MaskShare)> {
        if !self.committee.contains(self.point) {
            return Err(Error::InvalidCommittee(format!(
                "{} is not a member of the sealed committee",
                self.point
            )));
        }
        let key = self.key.parse(params, 0, self.point, "sealed key share")?;
        let mask = self
            .mask
            .parse(params, 0, self.point, "sealed mask share")?;
        Ok((
            KeyShare::new(self.point, self.committee.clone(), self.epoch, key),
            MaskShare::new(self.point, self.epoch, mask),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use fhe_math::rq::{Poly, Representation};

    use super::*;
    use crate::ParameterSet;

    #[test]
    fn shares_round_trip_and_are_checked() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let pts: Vec<EvaluationPoint> = (1..=3).map(|x| EvaluationPoint::new(x).unwrap()).collect();
        let committee = Committee::new(pts.clone(), 2).unwrap();
        let mut rng = rand::rng();
        let ctx = params.ctx(0).unwrap();
        let random = |rng: &mut rand::rngs::ThreadRng| Poly::random(ctx, Representation::Ntt, rng);
        let key = KeyShare::new(pts[0], committee.clone(), 3, random(&mut rng));
        let mask = MaskShare::new(pts[0], 3, random(&mut rng));
        let s = SealableShares::new(&key, &mask).unwrap();
        assert!(format!("{s:?}").contains("[redacted]"));
        let bytes = postcard::to_stdvec(&s).unwrap();
        let back: SealableShares = postcard::from_bytes(&bytes).unwrap();
        let (k2, m2) = back.shares(&params).unwrap();
        assert_eq!(k2.poly(), key.poly());
        assert_eq!(m2.poly(), mask.poly());
        assert_eq!((k2.epoch(), k2.point()), (3, pts[0]));
        assert_eq!(k2.committee(), &committee);
        // Another point's mask, or residues that do not fit the parameters: refused.
        let other = MaskShare::new(pts[1], 3, random(&mut rng));
        assert!(SealableShares::new(&key, &other).is_err());
        let mut bad = back.clone();
        bad.key.residues.pop();
        assert!(bad.shares(&params).is_err());
    }
}
