//! Common random polynomials, derived deterministically from the session id.
//!
//! Every participant must use the same uniform `a ∈ R_q` in collective key
//! generation. It is derived, never drawn from a shared RNG object: a 32-byte
//! seed is `BLAKE3-derive_key("synod/crp/v1", session ‖ parameter set ‖ p ‖
//! purpose ‖ indices)`, expanded by `fhe-math`'s `Poly::random_from_seed`
//! (ChaCha8). A different session, parameter set or purpose gives an unrelated
//! polynomial (domain separation).

use fhe_math::rq::{Poly, Representation};

use crate::{Params, Result};

/// What a common random polynomial is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrpPurpose {
    /// `a` of the collective public key.
    PublicKey,
    /// `a[k]` of the relinearisation key, gadget row `k`.
    Relinearization {
        /// Gadget row.
        row: u32,
    },
    /// `a[k]` of the Galois key for `exponent`, gadget row `k`.
    Galois {
        /// Galois element.
        exponent: u32,
        /// Gadget row.
        row: u32,
    },
}

impl CrpPurpose {
    fn encode(self) -> [u8; 9] {
        let mut out = [0u8; 9];
        let (tag, a, b) = match self {
            CrpPurpose::PublicKey => (1u8, 0, 0),
            CrpPurpose::Relinearization { row } => (2, 0, row),
            CrpPurpose::Galois { exponent, row } => (3, exponent, row),
        };
        out[0] = tag;
        out[1..5].copy_from_slice(&a.to_le_bytes());
        out[5..9].copy_from_slice(&b.to_le_bytes());
        out
    }
}

/// The source of a session's common random polynomials.
#[derive(Clone, Debug)]
pub struct CommonRandomness {
    session: [u8; 32],
    params: Params,
}

impl CommonRandomness {
    /// Randomness for session `session` under `params`.
    pub fn new(params: &Params, session: [u8; 32]) -> Self {
        Self {
            session,
            params: params.clone(),
        }
    }

    /// The session id this randomness is bound to.
    pub fn session(&self) -> &[u8; 32] {
        &self.session
    }

    /// The polynomial for `purpose`, at level 0, in NTT form.
    pub fn poly(&self, purpose: CrpPurpose) -> Result<Poly> {
        let mut h = blake3::Hasher::new_derive_key("synod/crp/v1");
        h.update(&self.session);
        h.update(self.params.set().to_string().as_bytes());
        h.update(&self.params.plaintext().to_le_bytes());
        h.update(&purpose.encode());
        let seed: [u8; 32] = *h.finalize().as_bytes();
        Ok(Poly::random_from_seed(
            self.params.ctx(0)?,
            Representation::Ntt,
            seed,
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ParameterSet;

    #[test]
    fn deterministic_and_domain_separated() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let a = CommonRandomness::new(&params, [1; 32]);
        let b = CommonRandomness::new(&params, [1; 32]);
        let c = CommonRandomness::new(&params, [2; 32]);
        let pk = CrpPurpose::PublicKey;
        assert_eq!(a.poly(pk).unwrap(), b.poly(pk).unwrap());
        assert_ne!(a.poly(pk).unwrap(), c.poly(pk).unwrap());
        assert_ne!(
            a.poly(CrpPurpose::Relinearization { row: 0 }).unwrap(),
            a.poly(CrpPurpose::Relinearization { row: 1 }).unwrap()
        );
        assert_ne!(
            a.poly(pk).unwrap(),
            a.poly(CrpPurpose::Galois {
                exponent: 0,
                row: 0
            })
            .unwrap()
        );
    }
}
