//! Common random polynomials, derived deterministically from the session id.
//!
//! Every participant must use the same uniform `a ∈ R_q` in collective key
//! generation. It is derived, never drawn from a shared RNG object: the
//! residues modulo the `i`-th prime `q_i` are read from the BLAKE3 XOF of
//! `derive_key("synod/crp/v2", session ‖ len ‖ parameter-set name ‖ p ‖
//! purpose ‖ indices ‖ i)` (fixed-width little-endian integers), eight bytes at a time, masked to the bit length of `q_i`
//! and kept when below `q_i` (rejection sampling: uniform, and at least half
//! of the draws are kept). A different session, parameter set or purpose
//! gives an unrelated polynomial (domain separation). The residues are taken
//! as the NTT form, which is as uniform as any other.

use fhe_math::rq::Poly;
use rayon::prelude::*;

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
        let ctx = self.params.ctx(0)?;
        let n = self.params.degree();
        let mut h = blake3::Hasher::new_derive_key("synod/crp/v2");
        h.update(&self.session);
        let set = self.params.set().to_string();
        h.update(&u32::try_from(set.len()).unwrap_or(u32::MAX).to_le_bytes());
        h.update(set.as_bytes());
        h.update(&self.params.plaintext().to_le_bytes());
        h.update(&purpose.encode());
        let mut residues = vec![0u64; ctx.moduli().len() * n];
        residues
            .par_chunks_mut(n)
            .zip(ctx.moduli().par_iter())
            .enumerate()
            .for_each(|(i, (row, &q))| {
                let mut xof = h.clone();
                xof.update(&u32::try_from(i).unwrap_or(u32::MAX).to_le_bytes());
                uniform_into(&mut xof.finalize_xof(), q, row);
            });
        crate::kernels::ntt_poly(residues, ctx)
    }
}

/// Fills `row` with residues uniform modulo `q`, by rejection from `xof`.
fn uniform_into(xof: &mut blake3::OutputReader, q: u64, row: &mut [u64]) {
    let mask = u64::MAX >> q.leading_zeros();
    let mut buf = [0u8; 4096];
    let mut out = row.iter_mut();
    let mut slot = out.next();
    while slot.is_some() {
        xof.fill(&mut buf);
        for word in buf.chunks_exact(8) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(word);
            let v = u64::from_le_bytes(bytes) & mask;
            if v < q {
                match slot {
                    Some(s) => *s = v,
                    None => return,
                }
                slot = out.next();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
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

    /// Every residue is below its prime, the residues look uniform (mean
    /// and top-bit frequency within a few standard deviations), and the
    /// rows modulo different primes are unrelated.
    #[test]
    fn residues_are_uniform_modulo_each_prime() {
        let params = Params::new(ParameterSet::Bfv8192, 30).unwrap();
        let poly = CommonRandomness::new(&params, [7; 32])
            .poly(CrpPurpose::PublicKey)
            .unwrap();
        let n = params.degree() as f64;
        let coeffs = poly.coefficients();
        for (row, &q) in coeffs.outer_iter().zip(params.ctx(0).unwrap().moduli()) {
            assert!(row.iter().all(|&v| v < q));
            let mean = row.iter().map(|&v| v as f64 / q as f64).sum::<f64>() / n;
            // Uniform on [0, 1): variance 1/12 per draw.
            let sd = (1.0 / 12.0 / n).sqrt();
            assert!((mean - 0.5).abs() < 5.0 * sd, "mean {mean} modulo {q}");
            let high = row.iter().filter(|&&v| v >= q / 2).count() as f64 / n;
            assert!(
                (high - 0.5).abs() < 5.0 * (0.25 / n).sqrt(),
                "{high} modulo {q}"
            );
        }
        let rows: Vec<Vec<u64>> = coeffs.outer_iter().map(|r| r.to_vec()).collect();
        assert_ne!(rows[0][..64], rows[1][..64]);
    }

    /// A known answer: the CRP bytes for a fixed session are part of the
    /// protocol (every peer must derive the same), so a change here must
    /// come with a new `PROTOCOL_VERSION`.
    #[test]
    fn known_answer() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let crs = CommonRandomness::new(&params, [3; 32]);
        let mut h = blake3::Hasher::new();
        for purpose in [
            CrpPurpose::PublicKey,
            CrpPurpose::Relinearization { row: 1 },
            CrpPurpose::Galois {
                exponent: 3,
                row: 0,
            },
        ] {
            for v in crs.poly(purpose).unwrap().coefficients().iter() {
                h.update(&v.to_le_bytes());
            }
        }
        assert_eq!(
            h.finalize().to_hex().as_str(),
            "611c5730ce305dabac4caf111cc0beed0c81100339a4fc5dc42f1f17108841fc"
        );
    }
}
