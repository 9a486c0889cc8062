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
//!
//! The polynomials of the steps every member runs in key generation (the
//! public key's and the relinearisation key's, one plus one per
//! key-switching digit: at most 2 MB at N = 8192) are derived once and kept
//! by the `CommonRandomness` and its clones; each is used for a member's
//! share and again to aggregate. The Galois keys' (one per digit and
//! rotation, 13–21 MB for the thirteen of a plan at N = 8192) are derived
//! where they are used.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

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
#[derive(Clone)]
pub struct CommonRandomness {
    session: [u8; 32],
    params: Params,
    /// The key-generation polynomials, once derived (shared by clones).
    kept: Arc<Kept>,
}

/// The public key's polynomial and the relinearisation key's, one per
/// gadget row.
struct Kept {
    public_key: OnceLock<Poly>,
    relinearization: Box<[OnceLock<Poly>]>,
}

impl std::fmt::Debug for CommonRandomness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommonRandomness")
            .field("session", &blake3::Hash::from(self.session).to_hex())
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl CommonRandomness {
    /// Randomness for session `session` under `params`.
    pub fn new(params: &Params, session: [u8; 32]) -> Self {
        let rows = params.moduli().len();
        Self {
            session,
            params: params.clone(),
            kept: Arc::new(Kept {
                public_key: OnceLock::new(),
                relinearization: (0..rows).map(|_| OnceLock::new()).collect(),
            }),
        }
    }

    /// The session id this randomness is bound to.
    pub fn session(&self) -> &[u8; 32] {
        &self.session
    }

    /// The polynomial for `purpose`, at level 0, in NTT form: the kept one
    /// for the public key and relinearisation rows (derived on first use),
    /// a fresh derivation for a Galois key.
    pub fn poly(&self, purpose: CrpPurpose) -> Result<Cow<'_, Poly>> {
        let cell = match purpose {
            CrpPurpose::PublicKey => Some(&self.kept.public_key),
            CrpPurpose::Relinearization { row } => usize::try_from(row)
                .ok()
                .and_then(|r| self.kept.relinearization.get(r)),
            CrpPurpose::Galois { .. } => None,
        };
        let Some(cell) = cell else {
            return self.derive(purpose).map(Cow::Owned);
        };
        if let Some(kept) = cell.get() {
            return Ok(Cow::Borrowed(kept));
        }
        // Two threads may both derive it; they derive the same polynomial.
        let derived = self.derive(purpose)?;
        Ok(Cow::Borrowed(cell.get_or_init(|| derived)))
    }

    /// The polynomial for `purpose` as its NTT residues (`primes × N`,
    /// row-major), derived afresh: for a caller that keeps them, without the
    /// copy out of a [`Poly`].
    pub(crate) fn residues(&self, purpose: CrpPurpose) -> Result<Vec<u64>> {
        let ctx = self.params.ctx(0)?;
        Ok(self.derive_residues(ctx, purpose))
    }

    /// Derives the polynomial for `purpose` (see the module documentation).
    fn derive(&self, purpose: CrpPurpose) -> Result<Poly> {
        let ctx = self.params.ctx(0)?;
        crate::kernels::ntt_poly(self.derive_residues(ctx, purpose), ctx)
    }

    /// [`Self::derive`]'s residues.
    fn derive_residues(&self, ctx: &fhe_math::rq::Context, purpose: CrpPurpose) -> Vec<u64> {
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
        residues
    }
}

/// Fills `row` with residues uniform modulo `q`, by rejection from `xof`:
/// each eight bytes, masked to `q`'s width, taken in order where below `q`.
/// Every draw is written at the next free slot and the slot kept only when
/// the draw is below `q` (a rejected one is overwritten by the next draw, or
/// by the next block's first), with no branch per draw; draws past the
/// row's end are dropped.
fn uniform_into(xof: &mut blake3::OutputReader, q: u64, row: &mut [u64]) {
    let mask = u64::MAX >> q.leading_zeros();
    let mut buf = [0u8; 4096];
    let mut filled = 0;
    while filled < row.len() {
        xof.fill(&mut buf);
        let rest = row.get_mut(filled..).unwrap_or_default();
        let mut kept = 0;
        for word in buf.chunks_exact(8) {
            let v = u64::from_le_bytes(word.try_into().unwrap_or_default()) & mask;
            if let Some(slot) = rest.get_mut(kept) {
                *slot = v;
            }
            kept += usize::from(v < q);
        }
        filled += kept;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::ParameterSet;

    /// The branch-free loop keeps exactly the draws the straightforward
    /// rejection loop keeps, in order: for a modulus whose draws are kept
    /// about half the time (just above a power of two) and one kept almost
    /// always, rows shorter and longer than a block of draws, and lengths
    /// that end inside one. Fails with a rejected draw kept.
    #[test]
    fn branch_free_rejection_keeps_the_straightforward_draws() {
        fn reference(xof: &mut blake3::OutputReader, q: u64, n: usize) -> Vec<u64> {
            let mask = u64::MAX >> q.leading_zeros();
            let mut out = Vec::new();
            let mut word = [0u8; 8];
            while out.len() < n {
                xof.fill(&mut word);
                let v = u64::from_le_bytes(word) & mask;
                if v < q {
                    out.push(v);
                }
            }
            out
        }
        for q in [(1u64 << 40) + 15, (1u64 << 44) - 3] {
            for n in [1, 100, 511, 512, 513, 1500, 8192] {
                let key = blake3::Hasher::new_derive_key("synod/test/rejection");
                let mut row = vec![u64::MAX; n];
                uniform_into(&mut key.finalize_xof(), q, &mut row);
                assert_eq!(
                    row,
                    reference(&mut key.finalize_xof(), q, n),
                    "q = {q}, n = {n}"
                );
            }
        }
    }

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

    /// The kept polynomials are the derived ones, shared by clones; a row
    /// past the gadget's and a Galois key's are derived each time.
    #[test]
    fn kept_polynomials_are_derived_once() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let crs = CommonRandomness::new(&params, [4; 32]);
        let clone = crs.clone();
        let rows = u32::try_from(params.moduli().len()).unwrap();
        let kept = [
            CrpPurpose::PublicKey,
            CrpPurpose::Relinearization { row: rows - 1 },
        ];
        for purpose in kept {
            let first = crs.poly(purpose).unwrap();
            assert!(matches!(first, Cow::Borrowed(_)));
            assert_eq!(*first, crs.derive(purpose).unwrap());
            assert!(std::ptr::eq(
                first.as_ref(),
                clone.poly(purpose).unwrap().as_ref()
            ));
        }
        let fresh = [
            CrpPurpose::Relinearization { row: rows },
            CrpPurpose::Galois {
                exponent: 3,
                row: 0,
            },
        ];
        for purpose in fresh {
            let got = crs.poly(purpose).unwrap();
            assert!(matches!(got, Cow::Owned(_)));
            assert_eq!(*got, crs.derive(purpose).unwrap());
        }
    }

    /// Every residue is below its prime, the residues look uniform (mean
    /// and top-bit frequency within a few standard deviations), and the
    /// rows modulo different primes are unrelated.
    #[test]
    fn residues_are_uniform_modulo_each_prime() {
        let params = Params::new(ParameterSet::Bfv8192, 30).unwrap();
        let crs = CommonRandomness::new(&params, [7; 32]);
        let poly = crs.poly(CrpPurpose::PublicKey).unwrap();
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
