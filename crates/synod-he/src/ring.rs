//! Ring helpers over `fhe_math::rq::Poly`: the wire form of a polynomial
//! (and of a ciphertext), the parse that turns untrusted bytes into a `Poly`
//! without panicking, and the few scalar operations the protocols need.
//!
//! `fhe-math` asserts (panics) on mismatched contexts or representations, so
//! every polynomial that came from another participant passes through
//! [`WirePoly::parse`] first, which checks the level, the length and the range
//! of every residue.

use std::sync::Arc;

use fhe_math::rq::{traits::TryConvertFrom, Context, Poly, Representation};
use num_bigint::BigUint;
use serde::{Deserialize, Serialize};

use crate::shamir::EvaluationPoint;
use crate::{Error, Params, Result};

/// A polynomial in NTT form at some level, as it travels: the residues of each
/// prime of that level, prime by prime.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WirePoly {
    /// Level in the modulus chain (0 = all primes).
    pub level: u8,
    /// `primes(level) × N` residues, row-major (bit-packed on the wire).
    #[serde(with = "crate::packing")]
    pub residues: Vec<u64>,
}

/// A [`WirePoly`] of **secret** residues (a dealt sub-share, a sealable
/// share): zeroized on drop, which covers a message that fails to decode
/// after it (the derived decoders drop the fields already decoded),
/// encoded with the bytes of a `WirePoly` through a zeroized buffer, and
/// printed without its residues. It reads as the `WirePoly` it wraps.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretWirePoly(WirePoly);

impl SecretWirePoly {
    /// Wraps secret residues already in NTT form, `primes(level) × N`,
    /// row-major.
    pub fn from_residues(level: usize, residues: Vec<u64>) -> Self {
        Self(WirePoly::from_residues(level, residues))
    }

    /// Wraps `poly` (converted to NTT form if needed) at `level`.
    pub fn from_poly(poly: &Poly, level: usize) -> Self {
        Self(WirePoly::from_poly(poly, level))
    }
}

impl std::ops::Deref for SecretWirePoly {
    type Target = WirePoly;
    fn deref(&self) -> &WirePoly {
        &self.0
    }
}

impl std::ops::DerefMut for SecretWirePoly {
    fn deref_mut(&mut self) -> &mut WirePoly {
        &mut self.0
    }
}

impl Drop for SecretWirePoly {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0.residues);
    }
}

impl std::fmt::Debug for SecretWirePoly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SecretWirePoly {{ level: {}, residues: [redacted] }}",
            self.0.level
        )
    }
}

/// The bytes of [`WirePoly`]'s own encoding, with the packed residues in a
/// buffer zeroized when dropped.
impl Serialize for SecretWirePoly {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        struct Residues<'a>(&'a [u64]);
        impl Serialize for Residues<'_> {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                crate::packing::serialize_zeroizing(self.0, s)
            }
        }
        /// Field for field (and name for name) [`WirePoly`].
        #[derive(Serialize)]
        #[serde(rename = "WirePoly")]
        struct Secret<'a> {
            level: u8,
            residues: Residues<'a>,
        }
        Secret {
            level: self.0.level,
            residues: Residues(&self.0.residues),
        }
        .serialize(s)
    }
}

impl std::fmt::Debug for WirePoly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WirePoly {{ level: {}, residues: [{} values] }}",
            self.level,
            self.residues.len()
        )
    }
}

impl WirePoly {
    /// Captures `poly` (converted to NTT form if needed) at `level`.
    pub fn from_poly(poly: &Poly, level: usize) -> Self {
        let mut p;
        let src = if *poly.representation() == Representation::PowerBasis {
            p = poly.clone();
            p.change_representation(Representation::Ntt);
            &p
        } else {
            poly
        };
        let coeffs = src.coefficients();
        let residues = match coeffs.to_slice() {
            Some(s) => s.to_vec(),
            None => coeffs.iter().copied().collect(),
        };
        Self::from_residues(level, residues)
    }

    /// Wraps residues already in NTT form, `primes(level) × N`, row-major.
    pub(crate) fn from_residues(level: usize, residues: Vec<u64>) -> Self {
        Self {
            level: u8::try_from(level).unwrap_or(u8::MAX),
            residues,
        }
    }

    /// Parses into a `Poly` at `expected_level`, rejecting anything that does
    /// not fit the parameters, and naming `sender` in the error.
    pub fn parse(
        &self,
        params: &Params,
        expected_level: usize,
        sender: EvaluationPoint,
        what: &'static str,
    ) -> Result<Poly> {
        let ctx = self.check(params, expected_level, sender, what)?;
        let malformed = |reason: String| Error::Malformed {
            sender,
            what,
            reason,
        };
        crate::kernels::ntt_poly(self.residues.clone(), ctx).map_err(|e| malformed(e.to_string()))
    }

    /// The checks of [`WirePoly::parse`] without building the polynomial:
    /// after `Ok`, `residues` holds `primes(expected_level) × N` reduced
    /// residues. Returns the level's context.
    pub(crate) fn check<'a>(
        &self,
        params: &'a Params,
        expected_level: usize,
        sender: EvaluationPoint,
        what: &'static str,
    ) -> Result<&'a Arc<Context>> {
        let ctx = self.check_shape(params, expected_level, sender, what)?;
        let n = params.degree();
        let malformed = |reason: String| Error::Malformed {
            sender,
            what,
            reason,
        };
        for (row, q) in self.residues.chunks(n).zip(ctx.moduli()) {
            // Branch-free scan (the values are public, but this keeps the
            // common all-valid case fast); report the first offender.
            let bad = crate::kernels::dispatch(
                #[inline(always)]
                || row.iter().fold(false, |acc, &r| acc | (r >= *q)),
            );
            if bad {
                let first = row.iter().find(|&&r| r >= *q).copied().unwrap_or(0);
                return Err(malformed(format!("residue {first} is not reduced mod {q}")));
            }
        }
        Ok(ctx)
    }

    /// The level and length checks of [`WirePoly::check`], without the scan
    /// for unreduced residues (for a caller that scans while it sums).
    pub(crate) fn check_shape<'a>(
        &self,
        params: &'a Params,
        expected_level: usize,
        sender: EvaluationPoint,
        what: &'static str,
    ) -> Result<&'a Arc<Context>> {
        let malformed = |reason: String| Error::Malformed {
            sender,
            what,
            reason,
        };
        if usize::from(self.level) != expected_level {
            return Err(malformed(format!(
                "level {} where {expected_level} was expected",
                self.level
            )));
        }
        let ctx = params
            .ctx(expected_level)
            .map_err(|e| malformed(e.to_string()))?;
        let n = params.degree();
        let k = ctx.moduli().len();
        if self.residues.len() != n * k {
            return Err(malformed(format!(
                "{} residues where {} ({} primes × N = {n}) were expected",
                self.residues.len(),
                n * k,
                k
            )));
        }
        Ok(ctx)
    }
}

/// A ciphertext as it travels: its polynomials as [`WirePoly`]s at its
/// level (NTT residues, bit-packed), the encoding of every other synod
/// message. fhe.rs's own `to_bytes` (protobuf of per-coefficient
/// serialisations) took about 3 ms to write and 2 ms to read a fresh
/// N = 8192 ciphertext; this takes a copy and the packing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireCiphertext {
    /// `c0, c1`, at the ciphertext's level.
    pub polys: Vec<WirePoly>,
}

impl WireCiphertext {
    /// Captures `ct`, a ciphertext under `params`.
    pub fn from_ciphertext(params: &Params, ct: &fhe::bfv::Ciphertext) -> Result<Self> {
        let level = crate::decrypt::ciphertext_level(params, ct)?;
        Ok(Self {
            polys: ct.iter().map(|p| WirePoly::from_poly(p, level)).collect(),
        })
    }

    /// Parses a ciphertext of two polynomials (a fresh encryption or a
    /// relinearised product) at `expected_level`, each checked as
    /// [`WirePoly::parse`] checks it, naming `sender` in every error.
    pub fn parse(
        &self,
        params: &Params,
        expected_level: usize,
        sender: EvaluationPoint,
        what: &'static str,
    ) -> Result<fhe::bfv::Ciphertext> {
        let malformed = |reason: String| Error::Malformed {
            sender,
            what,
            reason,
        };
        if self.polys.len() != 2 {
            return Err(malformed(format!(
                "{} polynomials where 2 were expected",
                self.polys.len()
            )));
        }
        let mut polys = self
            .polys
            .iter()
            .map(|p| p.parse(params, expected_level, sender, what));
        match (polys.next(), polys.next()) {
            (Some(c0), Some(c1)) => ciphertext_at(params, expected_level, c0?, c1?),
            _ => Err(malformed("missing polynomials".into())),
        }
        .map_err(|e| match e {
            e @ Error::Malformed { .. } => e,
            e => malformed(e.to_string()),
        })
    }
}

/// The ciphertext `(c0, c1)` of two NTT-form polynomials at `level` under
/// `params`.
///
/// fhe.rs's `Ciphertext::new` finds the level by walking the context chain
/// and comparing contexts field by field, after cloning the level-0
/// context when the level is not 0: at N = 8192 it took 33 µs at level 0
/// and 145–210 µs at levels 1 and 2, as long as a decryption share. Here
/// a zero ciphertext per parameter set and level is made that way once;
/// each new one is a clone of it with the polynomials replaced (the clone
/// copies the template's residues, 10–17 µs). Polynomials not made under
/// `params.ctx(level)` (another `Arc` of equal parameters, or another
/// level) go through `Ciphertext::new`, which checks them and takes the
/// level from their context, not from `level`.
pub(crate) fn ciphertext_at(
    params: &Params,
    level: usize,
    c0: Poly,
    c1: Poly,
) -> Result<fhe::bfv::Ciphertext> {
    let ctx = params.ctx(level)?;
    if !(ntt_of(&c0, ctx) && ntt_of(&c1, ctx)) {
        return Ok(fhe::bfv::Ciphertext::new(vec![c0, c1], params.bfv())?);
    }
    Blank::of(params, level)?.fill(params, c0, c1)
}

/// Whether `p` is in NTT form under `ctx` itself (the same `Arc`).
fn ntt_of(p: &Poly, ctx: &Arc<Context>) -> bool {
    Arc::ptr_eq(p.ctx(), ctx) && *p.representation() == Representation::Ntt
}

/// A copy of the zero ciphertext at one level of one parameter set, whose
/// two parts [`Blank::fill`] replaces ([`ciphertext_at`] in two steps, so
/// that the copy can be made beside other work).
pub(crate) struct Blank {
    ct: fhe::bfv::Ciphertext,
    level: usize,
}

impl Blank {
    /// The copy of the template of `params` at `level`.
    pub(crate) fn of(params: &Params, level: usize) -> Result<Self> {
        use std::collections::HashMap;
        use std::sync::{Mutex, OnceLock};
        type Templates = Mutex<HashMap<(usize, usize), Arc<fhe::bfv::Ciphertext>>>;
        static TEMPLATES: OnceLock<Templates> = OnceLock::new();
        let ctx = params.ctx(level)?;
        // Keyed by the parameters' `Arc` (one per set and p for the process,
        // never dropped: `Params::new`) and the level.
        let key = (Arc::as_ptr(params.bfv()) as usize, level);
        let template = {
            let templates = TEMPLATES.get_or_init(|| Mutex::new(HashMap::new()));
            let mut guard = templates
                .lock()
                .map_err(|_| Error::Parameters("ciphertext template cache poisoned".into()))?;
            match guard.get(&key) {
                Some(template) => template.clone(),
                None => {
                    let zero = || Poly::zero(ctx, Representation::Ntt);
                    let template = Arc::new(fhe::bfv::Ciphertext::new(
                        vec![zero(), zero()],
                        params.bfv(),
                    )?);
                    guard.insert(key, template.clone());
                    template
                }
            }
        };
        // The copy outside the lock: threads making ciphertexts do not queue.
        Ok(Self {
            ct: (*template).clone(),
            level,
        })
    }

    /// The ciphertext `(c0, c1)`: both must be NTT-form polynomials of
    /// `params.ctx(level)` for this blank's level (else an error).
    pub(crate) fn fill(self, params: &Params, c0: Poly, c1: Poly) -> Result<fhe::bfv::Ciphertext> {
        let ctx = params.ctx(self.level)?;
        if !(ntt_of(&c0, ctx) && ntt_of(&c1, ctx)) {
            return Err(Error::Parameters(
                "ciphertext parts of another context than the blank's".into(),
            ));
        }
        let mut ct = self.ct;
        match ct.get_mut(..2) {
            Some([t0, t1]) => {
                *t0 = c0;
                *t1 = c1;
            }
            _ => {
                return Err(Error::Parameters(
                    "ciphertext template of the wrong size".into(),
                ))
            }
        }
        Ok(ct)
    }
}

/// Switches `ct` down to `level` (its own level, which leaves it as it is,
/// or deeper): the same ciphertext, bit for bit, as fhe.rs's
/// `Ciphertext::switch_to_level` leaves, one
/// prime dropped at a time with rounding (fhe-math's `Poly::switch_down`:
/// `x' = (x − z)·q_L^{−1}` modulo each remaining prime, with
/// `z = [x + ⌊q_L/2⌋]_{q_L} − ⌊q_L/2⌋` the centred remainder), but in NTT
/// form: only the dropped prime's row goes back to coefficients, and the
/// remainder `z` forward into each remaining prime, where fhe.rs takes
/// every row back and forth through fhe-math's transforms (a level-0
/// ciphertext to level 2 at N = 8192: 9 transforms a part instead of 16;
/// the demo's compute phase about 1 ms, 3 %, shorter at one thread).
pub fn switch_to_level(params: &Params, ct: &mut fhe::bfv::Ciphertext, level: usize) -> Result<()> {
    use rayon::prelude::*;
    // Each level drops one prime: the level is read off the first part's
    // primes, which must be the parameters' at that level.
    let primes = ct.first().map_or(&[][..], |c| c.ctx().moduli());
    let from = params.ctx(0)?.moduli().len().saturating_sub(primes.len());
    if params.ctx(from)?.moduli() != primes || ct.iter().any(|c| c.ctx().moduli() != primes) {
        return Err(Error::Parameters(
            "a ciphertext of other parameters than the session's".into(),
        ));
    }
    if level < from || level > params.max_level() {
        return Err(Error::Parameters(format!(
            "cannot switch a level-{from} ciphertext to level {level} (levels {from} ..= {})",
            params.max_level()
        )));
    }
    if level == from {
        return Ok(());
    }
    let top = crate::kernels::RingOps::of(params.ctx(from)?)?;
    let n = top.degree();
    let target = params.ctx(level)?.moduli().len();
    // Per dropped prime q_L (the last first), q_L^{−1} modulo each prime
    // kept below it, by Fermat (`Modulus::inv` tests q for primality first,
    // 0.5 ms a level at N = 8192): once for every part.
    let inverses: Vec<Vec<u64>> = (target + 1..=top.len())
        .rev()
        .map(|l| {
            let q_last = top.moduli().get(l - 1).map_or(0, |q| **q);
            top.moduli()
                .iter()
                .take(l - 1)
                .map(|q| q.pow(q.reduce(q_last), **q - 2))
                .collect()
        })
        .collect();
    let parts = ct
        .iter()
        .map(|part| {
            let view = crate::kernels::NttView::of(part)?;
            let mut rows = view.rows(top.len())?.to_vec();
            for (l, inverses) in (target + 1..=top.len()).rev().zip(&inverses) {
                let (kept, last) = rows.split_at_mut((l - 1) * n);
                let last = last.get_mut(..n).unwrap_or_default();
                let (q_last, ntt_last) = match (top.moduli().get(l - 1), top.ntt().get(l - 1)) {
                    (Some(q), Some(ntt)) => (q, ntt),
                    _ => return Err(Error::Parameters("missing prime".into())),
                };
                ntt_last.backward(last);
                let half = **q_last / 2;
                // y = [x + ⌊q_L/2⌋]_{q_L}, so z = y − ⌊q_L/2⌋.
                for y in last.iter_mut() {
                    *y = q_last.add(*y, half);
                }
                let last = &*last;
                kept.par_chunks_mut(n)
                    .zip(top.moduli().par_iter().zip(top.ntt().par_iter()))
                    .zip(inverses.par_iter())
                    .for_each(|((row, (q, ntt)), &inverse)| {
                        let half_mod_q = q.reduce(half);
                        let mut z = Vec::with_capacity(n);
                        crate::kernels::dispatch(
                            #[inline(always)]
                            || z.extend(last.iter().map(|&y| q.sub(q.reduce(y), half_mod_q))),
                        );
                        ntt.forward(&mut z);
                        q.sub_vec(row, &z);
                        crate::kernels::scale_in_place(q, row, inverse);
                    });
                rows.truncate((l - 1) * n);
            }
            crate::kernels::ntt_poly(rows, params.ctx(level)?)
        })
        .collect::<Result<Vec<_>>>()?;
    *ct = match <[Poly; 2]>::try_from(parts) {
        Ok([c0, c1]) => ciphertext_at(params, level, c0, c1)?,
        Err(parts) => fhe::bfv::Ciphertext::new(parts, params.bfv())?,
    };
    Ok(())
}

/// Restricts a level-0 polynomial to the primes of `ctx` (a lower level) by
/// keeping the matching rows of residues. Unlike `mod_switch_down`, this does
/// not rescale, which is what a key share needs: `S mod q_ℓ`.
pub fn restrict(poly: &Poly, ctx: &Arc<Context>) -> Result<Poly> {
    if poly.ctx() == ctx {
        return Ok(poly.clone());
    }
    let k = ctx.moduli().len();
    let coeffs = poly.coefficients();
    if k > coeffs.nrows() {
        return Err(Error::Parameters(
            "cannot restrict a polynomial to a larger context".into(),
        ));
    }
    let rows = coeffs
        .slice_axis(ndarray::Axis(0), ndarray::Slice::from(..k))
        .to_owned();
    Ok(Poly::try_convert_from(
        rows,
        ctx,
        false,
        *poly.representation(),
    )?)
}

/// `poly * scalar` where the scalar is given as a big integer (reduced mod each
/// prime of the polynomial's context).
pub fn scalar_mul(poly: &Poly, scalar: &BigUint) -> Poly {
    let mut out = poly.clone();
    out *= scalar;
    out
}

/// An integer vector (errors, secrets, monomials; at most `N` of them) as a
/// polynomial in NTT form. Small ones (every `|c|` below every prime) take
/// synod's NTT, about three times faster than fhe-math's conversion and
/// with the same residues (tested); the residue matrix becomes the
/// polynomial, no copy is left. Larger values take fhe-math's conversion,
/// which reduces them first. The choice reads only the largest `|c|`.
pub fn small_to_ntt(coeffs: &[i64], ctx: &Arc<Context>) -> Result<Poly> {
    let ops = crate::kernels::RingOps::of(ctx)?;
    if coeffs.len() > ops.degree() {
        return Err(Error::Parameters(format!(
            "{} coefficients for a polynomial of degree {}",
            coeffs.len(),
            ops.degree()
        )));
    }
    let largest = coeffs.iter().fold(0, |m, c| m.max(c.unsigned_abs()));
    if ops.moduli().iter().all(|q| largest < **q) {
        let mut m = ops.small_to_ntt(coeffs);
        return crate::kernels::ntt_poly(std::mem::take(&mut *m), ctx);
    }
    let mut p = Poly::try_convert_from(coeffs, ctx, false, Representation::PowerBasis)?;
    p.change_representation(Representation::Ntt);
    Ok(p)
}

/// Samples a fresh error polynomial in NTT form (centred binomial, the
/// library's variance): `Poly::small`'s algorithm on the PRF expansion of a
/// seed drawn from `rng` (`kernels::sample_small`), with synod's NTT.
pub fn error_ntt<R: rand::RngCore + rand::CryptoRng>(
    params: &Params,
    ctx: &Arc<Context>,
    rng: &mut R,
) -> Result<Poly> {
    let ops = crate::kernels::RingOps::of(ctx)?;
    let e = crate::kernels::sample_small(ops.degree(), params.variance(), rng)?;
    let mut m = ops.small_to_ntt(&e);
    crate::kernels::ntt_poly(std::mem::take(&mut *m), ctx)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// `ciphertext_at` makes what `Ciphertext::new` makes, at every level,
    /// from its template (the second call at a level) as from its first; a
    /// polynomial of another level is refused, as `Ciphertext::new` refuses
    /// it.
    #[test]
    fn ciphertexts_from_templates_are_the_librarys() {
        use rand::SeedableRng;
        let params = Params::new(crate::ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
        for level in 0..=params.max_level() {
            let ctx = params.ctx(level).unwrap();
            for _ in 0..2 {
                let c0 = Poly::random(ctx, Representation::Ntt, &mut rng);
                let c1 = Poly::random(ctx, Representation::Ntt, &mut rng);
                let want =
                    fhe::bfv::Ciphertext::new(vec![c0.clone(), c1.clone()], params.bfv()).unwrap();
                let got = ciphertext_at(&params, level, c0, c1).unwrap();
                assert_eq!(got, want, "level {level}");
                assert_eq!(
                    crate::decrypt::ciphertext_level(&params, &got).unwrap(),
                    level
                );
            }
        }
        let other = Poly::random(params.ctx(1).unwrap(), Representation::Ntt, &mut rng);
        let c0 = Poly::random(params.ctx(0).unwrap(), Representation::Ntt, &mut rng);
        assert!(ciphertext_at(&params, 0, c0.clone(), other.clone()).is_err());
        // A blank takes only parts of its own level, in NTT form.
        let blank = || Blank::of(&params, 0).unwrap();
        assert!(blank().fill(&params, c0.clone(), other).is_err());
        let mut power = c0.clone();
        power.change_representation(Representation::PowerBasis);
        assert!(blank().fill(&params, c0.clone(), power).is_err());
        let c1 = Poly::random(params.ctx(0).unwrap(), Representation::Ntt, &mut rng);
        let want = fhe::bfv::Ciphertext::new(vec![c0.clone(), c1.clone()], params.bfv()).unwrap();
        assert_eq!(blank().fill(&params, c0, c1).unwrap(), want);
    }

    /// `small_to_ntt` (synod's NTT) gives fhe-math's conversion of the same
    /// signed coefficients, short vectors padded with zeros, at every level;
    /// values beyond the primes too.
    #[test]
    fn small_to_ntt_is_fhe_maths_conversion() {
        use rand::{Rng, SeedableRng};
        let params = Params::new(crate::ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
        for level in [0, 1] {
            let ctx = params.ctx(level).unwrap();
            let mut monomial = vec![0i64; 2048];
            monomial[5] = 1;
            let random: Vec<i64> = (0..2048).map(|_| rng.random_range(-20..=20)).collect();
            let large = vec![i64::MIN, i64::MAX, -(1 << 50), 1 << 50];
            for coeffs in [vec![1i64], monomial, random, large] {
                let mut want = Poly::try_convert_from(
                    coeffs.as_slice(),
                    ctx,
                    false,
                    Representation::PowerBasis,
                )
                .unwrap();
                want.change_representation(Representation::Ntt);
                assert!(small_to_ntt(&coeffs, ctx).unwrap() == want, "level {level}");
            }
            // More coefficients than the degree: refused, small or large.
            assert!(small_to_ntt(&[1; 2049], ctx).is_err());
            assert!(small_to_ntt(&[i64::MAX; 2049], ctx).is_err());
        }
    }

    /// A ciphertext crosses the wire as itself at its level; anything else
    /// is refused with the sender named: a third polynomial, another level,
    /// an unreduced residue.
    #[test]
    fn wire_ciphertext_round_trips_and_refuses() {
        use rand::SeedableRng;
        let params = Params::new(crate::ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let sender = EvaluationPoint::new(3).unwrap();
        for level in [0, 2] {
            let ct = crate::decrypt::tests::random_ct(&params, level, &mut rng);
            let wire = WireCiphertext::from_ciphertext(&params, &ct).unwrap();
            let bytes = postcard::to_stdvec(&wire).unwrap();
            let back: WireCiphertext = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(back.parse(&params, level, sender, "ct").unwrap(), ct);
            let refused = |w: &WireCiphertext, at: usize| {
                let got = w.parse(&params, at, sender, "ct");
                assert!(
                    matches!(got, Err(Error::Malformed { sender: s, .. }) if s == sender),
                    "{got:?}"
                );
            };
            refused(&back, level + 1);
            let mut three = back.clone();
            three.polys.push(back.polys[0].clone());
            refused(&three, level);
            let mut one = back.clone();
            one.polys.pop();
            refused(&one, level);
            let mut unreduced = back.clone();
            unreduced.polys[1].residues[5] = params.moduli()[0];
            refused(&unreduced, level);
        }
    }

    /// A secret polynomial is written with the very bytes of the public
    /// encoding (so either parses it), for every width and length, reads
    /// back as itself, and prints without its residues.
    #[test]
    fn secret_encoding_is_the_public_one() {
        for (len, top) in [
            (0usize, 1u64),
            (1, 1),
            (9, 3),
            (1000, (1 << 44) - 7),
            (4096, u64::MAX),
        ] {
            let residues: Vec<u64> = (0..len as u64)
                .map(|i| i.wrapping_mul(0x9e37_79b9) % top)
                .collect();
            let poly = WirePoly::from_residues(2, residues.clone());
            let secret = SecretWirePoly::from_residues(2, residues);
            let public = postcard::to_allocvec(&poly).unwrap();
            assert_eq!(postcard::to_allocvec(&secret).unwrap(), public, "{len}");
            let back: SecretWirePoly = postcard::from_bytes(&public).unwrap();
            assert_eq!(*back, poly);
            let shown = format!("{secret:?}");
            assert!(
                shown.contains("redacted") && !shown.contains(", 1,"),
                "{shown}"
            );
        }
    }

    use crate::ParameterSet;
    use rand::SeedableRng;

    fn params() -> Params {
        Params::new(ParameterSet::InsecureTestN2048, 20).unwrap()
    }

    #[test]
    fn wire_round_trip_and_rejections() {
        let params = params();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let ctx = params.ctx(0).unwrap();
        let p = Poly::random(ctx, Representation::Ntt, &mut rng);
        let w = WirePoly::from_poly(&p, 0);
        let sender = EvaluationPoint::new(3).unwrap();
        assert_eq!(w.parse(&params, 0, sender, "test").unwrap(), p);

        let err = w.parse(&params, 1, sender, "test").unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err}");
        assert_eq!(err.culprits(), vec![sender]);

        let mut short = w.clone();
        short.residues.pop();
        assert!(matches!(
            short.parse(&params, 0, sender, "test"),
            Err(Error::Malformed { .. })
        ));

        let mut unreduced = w.clone();
        unreduced.residues[0] = u64::MAX;
        assert!(matches!(
            unreduced.parse(&params, 0, sender, "test"),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn restrict_keeps_residues() {
        let params = params();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let p = Poly::random(params.ctx(0).unwrap(), Representation::Ntt, &mut rng);
        let low = params.ctx(2).unwrap();
        let r = restrict(&p, low).unwrap();
        let k = low.moduli().len();
        assert_eq!(
            r.coefficients(),
            p.coefficients()
                .slice_axis(ndarray::Axis(0), ndarray::Slice::from(..k))
        );
    }

    /// The NTT-form switch gives fhe.rs's ciphertext bit for bit, from
    /// every level to every deeper one, for two- and three-part
    /// ciphertexts, and refuses to go up or past the last level. Fails
    /// with the remainder not centred (no `⌊q_L/2⌋`) or the wrong inverse.
    #[test]
    fn switching_levels_matches_fhe_rs() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(77);
        for set in [
            crate::ParameterSet::InsecureTestN2048,
            crate::ParameterSet::Bfv8192,
        ] {
            let params = Params::new(set, 20).unwrap();
            let max = params.max_level();
            for from in 0..max {
                let ctx = params.ctx(from).unwrap();
                for parts in [2, 3] {
                    let polys = (0..parts)
                        .map(|_| Poly::random(ctx, Representation::Ntt, &mut rng))
                        .collect();
                    let ct = fhe::bfv::Ciphertext::new(polys, params.bfv()).unwrap();
                    for to in from..=max {
                        let mut expected = ct.clone();
                        expected.switch_to_level(to).unwrap();
                        let mut got = ct.clone();
                        switch_to_level(&params, &mut got, to).unwrap();
                        assert_eq!(got, expected, "{set:?} {from} → {to}, {parts} parts");
                    }
                    let mut refused = ct.clone();
                    if from > 0 {
                        assert!(switch_to_level(&params, &mut refused, from - 1).is_err());
                    }
                    assert!(switch_to_level(&params, &mut refused, max + 1).is_err());
                    assert_eq!(refused, ct, "a refused switch changed the ciphertext");
                }
            }
        }
    }
}
