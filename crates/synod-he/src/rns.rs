//! RNS base conversion, division and BFV scaling with floating-point
//! corrections, after Halevi, Polyakov and Shoup, "An Improved RNS Variant
//! of the BFV Homomorphic Encryption Scheme" (CT-RSA 2019, ePrint
//! 2018/117), §2.2 and §4.2 — the algorithm OpenFHE's `HPS` BFV
//! multiplication uses.
//!
//! * [`BaseConverter`] lifts residues modulo `Q = ∏ q_i` to the centred
//!   representative `x̄ ∈ (−Q/2, Q/2)` (`Q` is odd) and reduces it modulo other primes:
//!   `x̄ = Σ y_i·(Q/q_i) − v·Q` with `y_i = [x_i·(Q/q_i)^{-1}]_{q_i}` and
//!   `v = round(Σ y_i / q_i)`, the rounding done in `f64`. The lift is exact
//!   unless `x̄/Q` lies within about `k·2^-52` of `±1/2`, where it may come
//!   out as `x̄ ± Q` (HPS Lemma 2: harmless for BFV multiplication, and for
//!   ciphertext coefficients a probability of about `2^-49` each).
//! * [`DivideDown`] computes `round(x̄/Q) mod p_j` from the residues of `x̄`
//!   modulo `Q·P`: `(x̄ − x̃)/Q` with `x̃` the centred lift of `x̄ mod Q`
//!   as above, one dot of `k + 2` terms per output prime. BFV
//!   multiplication then takes `t·round(x̄/Q)` in place of HPS's
//!   `round(t·x̄/Q)` ("complex scaling"), as Lattigo's BFV evaluator does
//!   (`tensorAndRescale`: "(ct(x)/Q)·T, doing so only requires that
//!   Q·P > Q·Q, faster but adds error ~|T|"): `P` then need not hold the
//!   factor `t`, and the scaling needs no fractions. (Until session 19
//!   synod took HPS's complex scaling, with a fraction row summed in
//!   `f64`.)
//!
//! The first products `y_i` need not be a pass of their own: a caller
//! whose rows come out of an inverse NTT folds `[(Q/q_i)^{-1}]_{q_i}` into
//! the transform's normalisation and hands the rows over as they are
//! ([`BaseConverter::convert_prescaled`], [`DivideDown::divide_prescaled`]),
//! and a division whose outputs feed a conversion takes that conversion's
//! factors into its own constants ([`DivideDown::scaled`]). The
//! multiplication does both (about a fifth of the conversions' time).
//!
//! On CPUs with AVX-512 IFMA, when every prime involved is below 2^50
//! (synod's ciphertext and extension primes are), both run row by row on
//! eight coefficients at a time: each output residue is a sum of products
//! of bounded rows and precomputed constants, accumulated in IFMA's 52-bit
//! halves and reduced once where the rows' bounds keep the sum below
//! `2^(b+51)` (`kernels::dot_planned`: the conversion into the
//! 50-bit extension primes and the division), else product by product in
//! Shoup's form. On CPUs with AVX2 and FMA but no IFMA the same row sums
//! run on four coefficients at a time in double precision
//! (`kernels::fma`). Either way the floating-point sums are taken in the
//! same order as the scalar code, so the results are the same bits (tested
//! against the scalar path and against big integers).
//!
//! Every operand here is public (ciphertexts and key material that is
//! published anyway), so variable-time code is acceptable. Tests check both
//! against exact big-integer arithmetic.

use num_bigint::BigUint;
use num_traits::{One, ToPrimitive, Zero};

use crate::kernels::{dot_planned, dot_planned_each, has_vector_dots, DotPlan, Shoup52};
use crate::{Error, Result};

/// A prime with the constants for Barrett reduction of 128-bit values and
/// Shoup multiplication.
#[derive(Clone, Copy)]
pub(crate) struct Prime {
    p: u64,
    /// `⌊2^128 / p⌋`, high and low words.
    hi: u64,
    lo: u64,
}

impl Prime {
    pub(crate) fn new(p: u64) -> Result<Self> {
        if !(2..1 << 62).contains(&p) {
            return Err(Error::Parameters(format!("prime {p} out of range")));
        }
        let r = u128::MAX / u128::from(p);
        Ok(Self {
            p,
            hi: (r >> 64) as u64,
            lo: r as u64,
        })
    }

    /// `a mod p` for `a < 2^126`.
    #[inline(always)]
    fn reduce(&self, a: u128) -> u64 {
        let (a_lo, a_hi) = (a as u64, (a >> 64) as u64);
        let lo_lo = (u128::from(a_lo) * u128::from(self.lo)) >> 64;
        let hi_lo = u128::from(a_hi) * u128::from(self.lo);
        let lo_hi = u128::from(a_lo) * u128::from(self.hi);
        let q = ((lo_hi + hi_lo + lo_lo) >> 64) + u128::from(a_hi) * u128::from(self.hi);
        let mut r = a.wrapping_sub(q.wrapping_mul(u128::from(self.p))) as u64;
        // The quotient estimate is short by at most two.
        if r >= self.p {
            r -= self.p;
        }
        if r >= self.p {
            r -= self.p;
        }
        r
    }

    /// `⌊w·2^64/p⌋`, the Shoup companion of `w < p`.
    fn shoup(&self, w: u64) -> u64 {
        ((u128::from(w) << 64) / u128::from(self.p)) as u64
    }

    /// `a·w mod p` for `a < 2^64`, `w < p` with companion `ws`.
    #[inline(always)]
    fn mul_shoup(&self, a: u64, w: u64, ws: u64) -> u64 {
        let q = ((u128::from(a) * u128::from(ws)) >> 64) as u64;
        let r = a.wrapping_mul(w).wrapping_sub(q.wrapping_mul(self.p));
        if r >= self.p {
            r - self.p
        } else {
            r
        }
    }
}

fn product(primes: &[u64]) -> BigUint {
    primes.iter().fold(BigUint::one(), |acc, &p| acc * p)
}

fn residue(x: &BigUint, p: u64) -> u64 {
    (x % p).to_u64().unwrap_or(0)
}

/// `a^{-1} mod p` for prime `p` (Fermat).
fn inverse(a: &BigUint, p: u64) -> Result<u64> {
    let a = a % p;
    if a.is_zero() {
        return Err(Error::Parameters(format!(
            "RNS basis: {p} divides another modulus"
        )));
    }
    Ok(residue(
        &a.modpow(&BigUint::from(p - 2), &BigUint::from(p)),
        p,
    ))
}

fn primes(moduli: &[u64]) -> Result<Vec<Prime>> {
    moduli.iter().map(|&p| Prime::new(p)).collect()
}

/// `init + Σ a_i·b_i` over 128 bits (`b` at least as long as `a`), with the
/// loop unrolled at compile time for the lengths the parameter sets use.
#[inline(always)]
fn dot(a: &[u64], b: &[u64], init: u128) -> u128 {
    #[inline(always)]
    fn fixed<const K: usize>(a: &[u64], b: &[u64], init: u128) -> Option<u128> {
        let a: &[u64; K] = a.try_into().ok()?;
        let b: &[u64; K] = b.get(..K)?.try_into().ok()?;
        Some(
            a.iter()
                .zip(b)
                .fold(init, |s, (&x, &y)| s + u128::from(x) * u128::from(y)),
        )
    }
    let unrolled = match a.len() {
        4 => fixed::<4>(a, b, init),
        5 => fixed::<5>(a, b, init),
        6 => fixed::<6>(a, b, init),
        8 => fixed::<8>(a, b, init),
        9 => fixed::<9>(a, b, init),
        10 => fixed::<10>(a, b, init),
        11 => fixed::<11>(a, b, init),
        18 => fixed::<18>(a, b, init),
        19 => fixed::<19>(a, b, init),
        _ => None,
    };
    unrolled.unwrap_or_else(|| {
        a.iter()
            .zip(b)
            .fold(init, |s, (&x, &y)| s + u128::from(x) * u128::from(y))
    })
}

/// Checks that a block has `rows_in` input rows and `rows_out` output rows,
/// all of one length, and returns that length.
fn block_shape(
    input: &[&[u64]],
    out: &[&mut [u64]],
    rows_in: usize,
    rows_out: usize,
) -> Result<usize> {
    let len = out.first().map_or(0, |o| o.len());
    if input.len() != rows_in
        || out.len() != rows_out
        || input.iter().any(|r| r.len() != len)
        || out.iter().any(|r| r.len() != len)
    {
        return Err(Error::Parameters(format!(
            "RNS block: {} input and {} output rows for {rows_in} and {rows_out}, or rows of unequal length",
            input.len(),
            out.len()
        )));
    }
    Ok(len)
}

/// Conversion of residues modulo `Q = ∏ from` to residues of the centred
/// representative (times a constant factor, see [`Self::scaled`]) modulo
/// each prime of `to`; with an own term, [`DivideDown`].
pub(crate) struct BaseConverter {
    from: Vec<Prime>,
    /// `[(Q/q_i)^{-1}]_{q_i}` and its Shoup companion.
    hat_inv: Vec<(u64, u64)>,
    /// `1/q_i`.
    inv: Vec<f64>,
    to: Vec<Prime>,
    /// Per output prime: the weight of every `y_i` (`[f·Q/q_i]_{p_j}` for
    /// a conversion times `f`), then of `v` (`[−f·Q]_{p_j}`).
    hat: Vec<Vec<u64>>,
    neg_q: Vec<u64>,
    /// Per output prime, in a [`DivideDown`]: the weight of that prime's
    /// own input residue, with its Shoup companion.
    own: Option<Vec<(u64, u64)>>,
    /// The same constants for the vector kernels (IFMA, or AVX2 + FMA),
    /// when this CPU has them and every prime is below 2^50.
    vector: Option<ConvertConsts>,
}

/// [`BaseConverter`]'s constants as planned dots: `[(Q/q_i)^{-1}]_{q_i}` per
/// input prime (one row); per output prime the weights of the `y_i`, of
/// `v` and of the own residue if there is one, on rows below `q_i`, `k + 1`
/// (`v = round(Σ y_i/q_i) ≤ k`) and `p_j`.
struct ConvertConsts {
    hat_inv: Vec<DotPlan>,
    hat: Vec<DotPlan>,
}

impl BaseConverter {
    pub(crate) fn new(from: &[u64], to: &[u64]) -> Result<Self> {
        Self::scaled(from, to, 1)
    }

    /// `f·x̄` modulo each prime of `to`: the conversion with its output
    /// weights multiplied by `f` (no extra pass).
    pub(crate) fn scaled(from: &[u64], to: &[u64], f: u64) -> Result<Self> {
        let q = product(from) * f;
        let hat = to
            .iter()
            .map(|&pj| from.iter().map(|&qi| residue(&(&q / qi), pj)).collect())
            .collect();
        let neg_q = to.iter().map(|&pj| (pj - residue(&q, pj)) % pj).collect();
        Self::build(from, to, hat, neg_q, None)
    }

    fn build(
        from: &[u64],
        to: &[u64],
        hat: Vec<Vec<u64>>,
        neg_q: Vec<u64>,
        own: Option<Vec<u64>>,
    ) -> Result<Self> {
        // The accumulator holds k + 1 products of a residue and a constant
        // (k + 2 with an own residue, below the larger of the two bases).
        let bits = |m: &[u64]| m.iter().map(|p| 64 - p.leading_zeros()).max().unwrap_or(0);
        // 2^terms > k (or k + 1): at least as many products as there are.
        let terms = usize::BITS - (from.len() + usize::from(own.is_some())).leading_zeros();
        let widest = if own.is_some() {
            bits(from).max(bits(to))
        } else {
            bits(from)
        };
        if from.is_empty() || to.is_empty() || widest + bits(to) + terms > 126 {
            return Err(Error::Parameters(format!(
                "RNS base conversion from {} primes to {}",
                from.len(),
                to.len()
            )));
        }
        let q = product(from);
        let from_p = primes(from)?;
        let to_p = primes(to)?;
        let hat_inv: Vec<(u64, u64)> = from_p
            .iter()
            .map(|pr| {
                let w = inverse(&(&q / pr.p), pr.p)?;
                Ok((w, pr.shoup(w)))
            })
            .collect::<Result<_>>()?;
        let own: Option<Vec<(u64, u64)>> = own.map(|own| {
            to_p.iter()
                .zip(own)
                .map(|(pr, w)| (w, pr.shoup(w)))
                .collect()
        });
        let row_bounds: Vec<u64> = from
            .iter()
            .copied()
            .chain([from.len() as u64 + 1])
            .collect();
        let vector = has_vector_dots()
            .then(|| {
                Some(ConvertConsts {
                    hat_inv: from
                        .iter()
                        .zip(&hat_inv)
                        .map(|(&qi, &(w, _))| {
                            DotPlan::new(qi, vec![Shoup52::new(w, qi)?], vec![1 << 52])
                        })
                        .collect::<Option<_>>()?,
                    hat: to
                        .iter()
                        .enumerate()
                        .map(|(j, &pj)| {
                            let own = own.as_ref().map(|o| o.get(j).map(|&(w, _)| w));
                            let mut consts: Vec<u64> = hat.get(j)?.clone();
                            consts.push(*neg_q.get(j)?);
                            let mut bounds = row_bounds.clone();
                            if let Some(w) = own {
                                consts.push(w?);
                                bounds.push(pj);
                            }
                            let consts = consts
                                .iter()
                                .map(|&w| Shoup52::new(w, pj))
                                .collect::<Option<_>>()?;
                            DotPlan::new(pj, consts, bounds)
                        })
                        .collect::<Option<_>>()?,
                })
            })
            .flatten();
        Ok(Self {
            inv: from.iter().map(|&p| 1.0 / p as f64).collect(),
            from: from_p,
            hat_inv,
            to: to_p,
            hat,
            neg_q,
            own,
            vector,
        })
    }

    /// Input rows per block: one per prime of `Q`, then in a division one
    /// per output prime.
    fn input_rows(&self) -> usize {
        self.from.len() + self.own.as_ref().map_or(0, |_| self.to.len())
    }

    /// [`Self::convert`] row by row with the vector kernels: the same values
    /// (`v` summed in the same order, every residue exact).
    #[inline(always)]
    fn convert_rows(
        &self,
        c: &ConvertConsts,
        input: &[&[u64]],
        out: &mut [&mut [u64]],
        scratch: &mut Scratch,
        prescaled: bool,
    ) -> Result<()> {
        let k = self.from.len();
        let len = block_shape(input, out, self.input_rows(), self.to.len())?;
        if len == 0 {
            return Ok(());
        }
        let (input, own_rows) = input.split_at(k);
        let (y, v, rounded) = scratch.take_rows(if prescaled { 0 } else { k }, len);
        if !prescaled {
            for ((y, x), plan) in y.chunks_mut(len).zip(input).zip(&c.hat_inv) {
                if !dot_planned(y, &[x], plan) {
                    return Err(Error::Parameters(
                        "internal: vector conversion refused".into(),
                    ));
                }
            }
        }
        let mut rows: Vec<&[u64]> = if prescaled {
            input.to_vec()
        } else {
            y.chunks(len).collect()
        };
        v.iter_mut().for_each(|v| *v = 0.0);
        for (y, &inv) in rows.iter().zip(&self.inv) {
            for (v, &y) in v.iter_mut().zip(y.iter()) {
                *v += y as f64 * inv;
            }
        }
        for (r, &v) in rounded.iter_mut().zip(v.iter()) {
            *r = (v + 0.5) as u64;
        }
        rows.push(rounded);
        if dot_planned_each(out, &rows, own_rows, &c.hat) {
            return Ok(());
        }
        for (j, (o, plan)) in out.iter_mut().zip(&c.hat).enumerate() {
            rows.truncate(k + 1);
            rows.extend(own_rows.get(j));
            if !dot_planned(o, &rows, plan) {
                return Err(Error::Parameters(
                    "internal: vector conversion refused".into(),
                ));
            }
        }
        Ok(())
    }

    /// Converts one block of coefficients: `input` has one slice per input
    /// prime, `out` one per output prime, all of the same length. (The
    /// product takes [`Self::convert_prescaled`]; this is its reference.)
    #[cfg(test)]
    pub(crate) fn convert(
        &self,
        input: &[&[u64]],
        out: &mut [&mut [u64]],
        scratch: &mut Scratch,
    ) -> Result<()> {
        self.convert_with(input, out, scratch, false)
    }

    /// Converts one block (`input`: one slice per input prime, then in a
    /// division one per output prime; `out`: one per output prime, all of
    /// one length) whose rows of `Q` already hold `y_i = [x_i·f_i]_{q_i}`
    /// for the factors `f_i` of [`Self::input_factor`] (fully reduced), as
    /// an inverse transform leaves them when it takes the factor with its
    /// normalisation ([`crate::ntt::Ntt::backward_scaled`]): the same
    /// outputs without the conversion's first products.
    pub(crate) fn convert_prescaled(
        &self,
        input: &[&[u64]],
        out: &mut [&mut [u64]],
        scratch: &mut Scratch,
    ) -> Result<()> {
        self.convert_with(input, out, scratch, true)
    }

    /// `[(Q/q_i)^{-1}]_{q_i}`: the factor of input row `i` that
    /// [`Self::convert_prescaled`] expects already applied (zero for an `i`
    /// out of range).
    pub(crate) fn input_factor(&self, i: usize) -> u64 {
        self.hat_inv.get(i).map_or(0, |&(w, _)| w)
    }

    fn convert_with(
        &self,
        input: &[&[u64]],
        out: &mut [&mut [u64]],
        scratch: &mut Scratch,
        prescaled: bool,
    ) -> Result<()> {
        crate::kernels::dispatch(
            #[inline(always)]
            || match &self.vector {
                Some(c) => self.convert_rows(c, input, out, scratch, prescaled),
                None => self.convert_block(input, out, scratch, prescaled),
            },
        )
    }

    #[inline(always)]
    fn convert_block(
        &self,
        input: &[&[u64]],
        out: &mut [&mut [u64]],
        scratch: &mut Scratch,
        prescaled: bool,
    ) -> Result<()> {
        let k = self.from.len();
        let len = block_shape(input, out, self.input_rows(), self.to.len())?;
        let (input, own_rows) = input.split_at(k);
        let (y, v) = scratch.take(k, len);
        // y_i = [x_i·(Q/q_i)^{-1}]_{q_i}, coefficient-major; v = round(Σ y_i/q_i).
        v.iter_mut().for_each(|v| *v = 0.0);
        for (i, ((x, pr), (&(w, ws), &inv))) in input
            .iter()
            .zip(&self.from)
            .zip(self.hat_inv.iter().zip(&self.inv))
            .enumerate()
        {
            for ((y, &x), v) in y
                .iter_mut()
                .skip(i)
                .step_by(k)
                .zip(x.iter())
                .zip(v.iter_mut())
            {
                *y = if prescaled { x } else { pr.mul_shoup(x, w, ws) };
                *v += *y as f64 * inv;
            }
        }
        // out_j = Σ y_i·[Q/q_i]_{p_j} + v·[−Q]_{p_j} (with the weights of
        // the factor or division), one coefficient at a time.
        for (c, (ys, &v)) in y.chunks_exact(k).zip(v.iter()).enumerate() {
            let v = u128::from((v + 0.5) as u64);
            for (j, (o, (pj, (hat, &neg_q)))) in out
                .iter_mut()
                .zip(self.to.iter().zip(self.hat.iter().zip(&self.neg_q)))
                .enumerate()
            {
                let own = match (&self.own, own_rows.get(j)) {
                    (Some(w), Some(row)) => {
                        let (w, ws) = w.get(j).copied().unwrap_or((0, 0));
                        pj.mul_shoup(row.get(c).copied().unwrap_or(0), w, ws)
                    }
                    _ => 0,
                };
                let a = dot(ys, hat, v * u128::from(neg_q) + u128::from(own));
                if let Some(o) = o.get_mut(c) {
                    *o = pj.reduce(a);
                }
            }
        }
        Ok(())
    }
}

/// `round(x̄/Q)` modulo each prime of `P`, from the residues of `x̄` modulo
/// `Q·P` (the first `k` rows modulo `Q`, then one per prime of `P`): with
/// `x̃` the centred lift of `x̄ mod Q` that [`BaseConverter`] takes,
/// `x̄ − x̃` is `Q·round(x̄/Q)`, so each output is
/// `[x̄]_{p_j}·[Q^{-1}]_{p_j} − Σ_i y_i·[q_i^{-1}]_{p_j} + v`: one more
/// product per output prime than a conversion. Where the lift comes out
/// as `x̃ ± Q` (its rare case) the result is off by one.
pub(crate) struct DivideDown(BaseConverter);

impl DivideDown {
    #[cfg(test)]
    pub(crate) fn new(q: &[u64], p: &[u64]) -> Result<Self> {
        Self::scaled(q, p, &vec![1; p.len()])
    }

    /// The division with output `j` multiplied by `factors[j]` (`< p_j`):
    /// every weight of that output times the factor, no extra pass. With
    /// the input factors of a conversion from `P`, its outputs are that
    /// conversion's prescaled rows ([`BaseConverter::convert_prescaled`]).
    pub(crate) fn scaled(q: &[u64], p: &[u64], factors: &[u64]) -> Result<Self> {
        if factors.len() != p.len() || factors.iter().zip(p).any(|(f, pj)| f >= pj) {
            return Err(Error::Parameters(
                "division: one factor below each output prime".into(),
            ));
        }
        let big_q = product(q);
        let times =
            |pj: u64, f: u64, w: u64| (u128::from(w) * u128::from(f) % u128::from(pj)) as u64;
        let hat = p
            .iter()
            .zip(factors)
            .map(|(&pj, &f)| {
                q.iter()
                    .map(|&qi| Ok(times(pj, f, (pj - inverse(&BigUint::from(qi), pj)?) % pj)))
                    .collect::<Result<Vec<u64>>>()
            })
            .collect::<Result<_>>()?;
        let own = p
            .iter()
            .zip(factors)
            .map(|(&pj, &f)| Ok(times(pj, f, inverse(&big_q, pj)?)))
            .collect::<Result<_>>()?;
        BaseConverter::build(q, p, hat, factors.to_vec(), Some(own)).map(Self)
    }

    /// `[(Q/q_i)^{-1}]_{q_i}`, the factor [`Self::divide_prescaled`] expects
    /// on the row of `Q`'s prime `i`.
    pub(crate) fn input_factor(&self, i: usize) -> u64 {
        self.0.input_factor(i)
    }

    /// Divides one block: `input` has one slice per prime of `Q` then one
    /// per prime of `P`; `out` one per prime of `P`.
    #[cfg(test)]
    pub(crate) fn divide(
        &self,
        input: &[&[u64]],
        out: &mut [&mut [u64]],
        scratch: &mut Scratch,
    ) -> Result<()> {
        self.0.convert(input, out, scratch)
    }

    /// Divides one block (`input`: one slice per prime of `Q`, then one per
    /// prime of `P`; `out`: one per prime of `P`) whose rows of `Q` are
    /// already times their [`Self::input_factor`] (the rows of `P` as they
    /// are).
    pub(crate) fn divide_prescaled(
        &self,
        input: &[&[u64]],
        out: &mut [&mut [u64]],
        scratch: &mut Scratch,
    ) -> Result<()> {
        self.0.convert_prescaled(input, out, scratch)
    }
}

/// For a residue `x < q` split as `x = h·2^s + l` (`s` = half of `q`'s bit
/// length): `x·A/q = h·⌊A·2^s/q⌋ + l·⌊A/q⌋ + (h·{A·2^s/q} + l·{A/q})`.
/// Returns `(s, {A·2^s/q}, {A/q})` and `(⌊A·2^s/q⌋, ⌊A/q⌋)`.
fn split_quotient(a: BigUint, q: u64) -> ((u32, f64, f64), (BigUint, BigUint)) {
    let s = (64 - q.leading_zeros()).div_ceil(2);
    let a_hi = &a << s;
    let frac = |x: &BigUint| residue(x, q) as f64 / q as f64;
    ((s, frac(&a_hi), frac(&a)), (a_hi / q, a / q))
}

/// `round(t·x̄/Q) mod t` from the residues of `x̄` modulo `Q` (HPS "simple
/// scaling", §4.1: the decryption's rounding): with `A_i = [(Q/q_i)^{-1}]_{q_i}·t`
/// it is `Σ_i x_i·⌊A_i/q_i⌋ + round(Σ_i x_i·{A_i/q_i})` modulo `t`, the
/// fractional sum evaluated in `f64` with each `x_i` split into two halves
/// ([`split_quotient`]; products exact to about `2^-30`, the sum to about
/// `2^-22`). For a ciphertext that decrypts correctly the fractional part
/// of `t·x̄/Q` is the noise over `Δ`, far from one half, so that error
/// cannot change the result.
pub(crate) struct SimpleScale {
    split: Vec<(u32, f64, f64)>,
    /// `[⌊A_i·2^{s_i}/q_i⌋]_t`, `[⌊A_i/q_i⌋]_t` per prime of `Q`.
    whole: Vec<(u64, u64)>,
    t: Prime,
    /// Whether the integer sums fit a `u64` (see `new`).
    narrow: bool,
    /// For the AVX2 + FMA kernel (on such CPUs, with `t` below 2^50):
    /// `whole`'s constants then 1 (the rounded fraction's weight), and
    /// where the kernel reduces its sums (from the halves' and the rounded
    /// sum's bounds; computed once here, not per block).
    vector: Option<(Vec<Shoup52>, Vec<bool>)>,
}

impl SimpleScale {
    pub(crate) fn new(q: &[u64], t: u64) -> Result<Self> {
        if q.is_empty() || !(2..1 << 62).contains(&t) {
            return Err(Error::Parameters(format!(
                "RNS scaling from {} primes to {t}",
                q.len()
            )));
        }
        let big_q = product(q);
        let mut split = Vec::with_capacity(q.len());
        let mut whole = Vec::with_capacity(q.len());
        for &qi in q {
            let (fractions, (hi, lo)) =
                split_quotient(BigUint::from(inverse(&(&big_q / qi), qi)?) * t, qi);
            split.push(fractions);
            whole.push((residue(&hi, t), residue(&lo, t)));
        }
        // The integer sum adds 2k products of a half residue (below
        // 2^{s_i}) and a value below t; the rounded fraction sum is below
        // 2k·2^{s_i} too. When 2k + 1 such terms fit 64 bits (N = 8192 with
        // a 30-bit t: 22 + 30 + 4 bits), the sums are taken in u64.
        let half = split.iter().map(|&(s, _, _)| s).max().unwrap_or(64);
        let terms = usize::BITS - (2 * q.len() + 1).leading_zeros();
        let t_bits = 64 - t.leading_zeros();
        let narrow = half + t_bits.max(1) + terms <= 64;
        let vector = Self::vector_consts(q, t, &split, &whole);
        Ok(Self {
            split,
            whole,
            t: Prime::new(t)?,
            narrow,
            vector,
        })
    }

    /// [`Self::vector`]: `None` without AVX2 + FMA, or for `t ≥ 2^50` or
    /// primes of 52 bits or more. A residue `x < q_i` splits into `x >>
    /// s_i < ⌈q_i/2^{s_i}⌉` and `x mod 2^{s_i}`; the rounded fraction sum
    /// is below `Σ_i (⌈q_i/2^{s_i}⌉ + 2^{s_i}) + 1`, since every fraction
    /// is below 1.
    fn vector_consts(
        q: &[u64],
        t: u64,
        split: &[(u32, f64, f64)],
        whole: &[(u64, u64)],
    ) -> Option<(Vec<Shoup52>, Vec<bool>)> {
        #[cfg(target_arch = "x86_64")]
        {
            crate::kernels::fma::token()?;
            if q.iter().any(|&qi| qi >= 1 << 52) {
                return None;
            }
            let mut consts = Vec::with_capacity(2 * q.len() + 1);
            let mut bounds = Vec::with_capacity(2 * q.len() + 1);
            for ((&qi, &(s, _, _)), &(wh, wl)) in q.iter().zip(split).zip(whole) {
                consts.push(Shoup52::new(wh, t)?);
                consts.push(Shoup52::new(wl, t)?);
                bounds.push(qi.div_ceil(1 << s));
                bounds.push(1 << s);
            }
            let rounded: u64 = bounds.iter().sum::<u64>() + 1;
            consts.push(Shoup52::new(1, t)?);
            bounds.push(rounded);
            let reduce_after = crate::kernels::fma::reductions(t, &consts, &bounds);
            Some((consts, reduce_after))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (q, t, split, whole);
            None
        }
    }

    /// Scales one block: `input` has one slice per prime of `Q`, each as
    /// long as `out`.
    pub(crate) fn scale(&self, input: &[&[u64]], out: &mut [u64]) -> Result<()> {
        crate::kernels::dispatch(
            #[inline(always)]
            || self.scale_block(input, out),
        )
    }

    #[inline(always)]
    fn scale_block(&self, input: &[&[u64]], out: &mut [u64]) -> Result<()> {
        let len = out.len();
        if input.len() != self.split.len() || input.iter().any(|r| r.len() != len) {
            return Err(Error::Parameters(format!(
                "RNS block: {} rows for {}, or rows of unequal length",
                input.len(),
                self.split.len()
            )));
        }
        #[cfg(target_arch = "x86_64")]
        if let Some((consts, reduce_after)) = &self.vector {
            if crate::kernels::fma::split_dot_round(
                self.t.p,
                out,
                input,
                &self.split,
                consts,
                reduce_after,
            ) {
                return Ok(());
            }
        }
        let mut f = vec![0f64; len];
        if self.narrow {
            // Every product and their sum fit 64 bits (checked in `new`):
            // the same sums in `u64`, which vectorise (AVX-512DQ multiplies
            // 64-bit lanes; the `u128` products do not).
            let mut acc = vec![0u64; len];
            self.accumulate(input, &mut f, &mut acc);
            self.round_into(&acc, &f, out);
        } else {
            let mut acc = vec![0u128; len];
            self.accumulate(input, &mut f, &mut acc);
            self.round_into(&acc, &f, out);
        }
        Ok(())
    }

    /// `acc += Σ_i h_i·⌊A_i·2^{s_i}/q_i⌋_t + l_i·⌊A_i/q_i⌋_t` and
    /// `f += Σ_i h_i·{A_i·2^{s_i}/q_i} + l_i·{A_i/q_i}` per coefficient, in
    /// `u64` or `u128`.
    #[inline(always)]
    fn accumulate<A>(&self, input: &[&[u64]], f: &mut [f64], acc: &mut [A])
    where
        A: Copy + From<u64> + std::ops::Add<Output = A> + std::ops::Mul<Output = A>,
    {
        for (x, (&(s, frac_hi, frac_lo), &(wh, wl))) in
            input.iter().zip(self.split.iter().zip(&self.whole))
        {
            let mask = (1u64 << s) - 1;
            let (wh, wl) = (A::from(wh), A::from(wl));
            for ((&x, f), a) in x.iter().zip(f.iter_mut()).zip(acc.iter_mut()) {
                let (h, l) = (x >> s, x & mask);
                *f += h as f64 * frac_hi + l as f64 * frac_lo;
                *a = *a + A::from(h) * wh + A::from(l) * wl;
            }
        }
    }

    /// `out = (acc + round(f)) mod t`.
    #[inline(always)]
    fn round_into<A: Copy + Into<u128>>(&self, acc: &[A], f: &[f64], out: &mut [u64]) {
        for ((o, &a), &f) in out.iter_mut().zip(acc).zip(f) {
            *o = self.t.reduce(a.into() + u128::from((f + 0.5) as u64));
        }
    }
}

/// Reusable buffers for one block: `rows × len` words (coefficient-major)
/// and a floating-point accumulator of `len`.
#[derive(Default)]
pub(crate) struct Scratch {
    /// Free for the caller: an intermediate block between two steps.
    pub(crate) block: Vec<u64>,
    words: Vec<u64>,
    float: Vec<f64>,
    rounded: Vec<u64>,
}

impl Scratch {
    fn take(&mut self, rows: usize, len: usize) -> (&mut [u64], &mut [f64]) {
        self.words.resize(rows * len, 0);
        self.float.resize(len, 0.0);
        (&mut self.words, &mut self.float)
    }

    /// As [`Self::take`], plus a row for the rounded fraction sums.
    fn take_rows(&mut self, rows: usize, len: usize) -> (&mut [u64], &mut [f64], &mut [u64]) {
        self.words.resize(rows * len, 0);
        self.float.resize(len, 0.0);
        self.rounded.resize(len, 0);
        (&mut self.words, &mut self.float, &mut self.rounded)
    }
}
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use num_bigint::{BigInt, Sign};
    use num_integer::Integer;
    use rand::{RngCore, SeedableRng};

    fn below(m: &BigUint, rng: &mut impl RngCore) -> BigUint {
        let mut bytes = vec![0u8; (m.bits() as usize).div_ceil(8) + 8];
        rng.fill_bytes(&mut bytes);
        BigUint::from_bytes_le(&bytes) % m
    }

    fn ntt_primes(bits: usize, count: usize, avoid: &[u64]) -> Vec<u64> {
        let mut out = Vec::new();
        let mut upper = 1u64 << bits;
        while out.len() < count {
            upper = fhe_math::zq::primes::generate_prime(bits, 2 * 8192, upper).unwrap();
            if !avoid.contains(&upper) {
                out.push(upper);
            }
        }
        out
    }

    fn residues(x: &BigInt, primes: &[u64]) -> Vec<u64> {
        primes
            .iter()
            .map(|&p| x.mod_floor(&BigInt::from(p)).to_u64().unwrap())
            .collect()
    }

    fn centred(x: &BigUint, m: &BigUint) -> BigInt {
        let x = BigInt::from_biguint(Sign::Plus, x.clone());
        let m = BigInt::from_biguint(Sign::Plus, m.clone());
        if &x * 2 > m {
            x - m
        } else {
            x
        }
    }

    /// Transposes per-value residue lists into per-prime rows.
    fn columns(values: &[Vec<u64>]) -> Vec<Vec<u64>> {
        let rows = values.first().map_or(0, |v| v.len());
        (0..rows)
            .map(|r| values.iter().map(|v| v[r]).collect())
            .collect()
    }

    #[test]
    fn base_conversion_lifts_to_the_centred_value() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        // The last two are synod's shapes (Q of 43/44-bit primes, P of
        // 50-bit ones, both ways), which take the IFMA path where the CPU
        // has it; every shape is also run on the scalar path.
        let shapes = [
            (55, 4, 61, 5),
            (62, 3, 61, 2),
            (40, 1, 61, 3),
            (50, 8, 61, 9),
            (44, 5, 50, 6),
            (50, 6, 44, 5),
        ];
        let convs = shapes.iter().flat_map(|&(bits_q, k, bits_p, m)| {
            let q = ntt_primes(bits_q, k, &[]);
            let p = ntt_primes(bits_p, m, &q);
            let conv = BaseConverter::new(&q, &p).unwrap();
            assert_eq!(
                conv.vector.is_some(),
                has_vector_dots() && bits_q <= 50 && bits_p <= 50
            );
            let mut scalar = BaseConverter::new(&q, &p).unwrap();
            scalar.vector = None;
            [(q.clone(), p.clone(), conv), (q, p, scalar)]
        });
        for (q, p, conv) in convs {
            let (k, m) = (q.len(), p.len());
            let big_q = product(&q);
            // Random values, plus the edges of the centred range.
            let mut xs: Vec<BigUint> = (0..200).map(|_| below(&big_q, &mut rng)).collect();
            let half = &big_q / 2u32;
            xs.extend([
                BigUint::zero(),
                BigUint::one(),
                &big_q - 1u32,
                half.clone(),
                &half + 1u32,
            ]);
            let input = columns(
                &xs.iter()
                    .map(|x| residues(&BigInt::from(x.clone()), &q))
                    .collect::<Vec<_>>(),
            );
            let mut out = vec![vec![0u64; xs.len()]; m];
            let refs: Vec<&[u64]> = input.iter().map(|r| r.as_slice()).collect();
            let mut outs: Vec<&mut [u64]> = out.iter_mut().map(|r| r.as_mut_slice()).collect();
            conv.convert(&refs, &mut outs, &mut Scratch::default())
                .unwrap();
            // The same outputs from rows that already carry the first
            // factors (as the product's inverse transforms leave them).
            let prescaled: Vec<Vec<u64>> = input
                .iter()
                .zip(&q)
                .enumerate()
                .map(|(i, (row, &qi))| {
                    let f = u128::from(conv.input_factor(i));
                    row.iter()
                        .map(|&x| (u128::from(x) * f % u128::from(qi)) as u64)
                        .collect()
                })
                .collect();
            let refs: Vec<&[u64]> = prescaled.iter().map(|r| r.as_slice()).collect();
            let mut again = vec![vec![0u64; xs.len()]; m];
            let mut outs: Vec<&mut [u64]> = again.iter_mut().map(|r| r.as_mut_slice()).collect();
            conv.convert_prescaled(&refs, &mut outs, &mut Scratch::default())
                .unwrap();
            assert_eq!(again, out, "prescaled rows convert differently");
            let bq = BigInt::from(big_q.clone());
            for (c, x) in xs.iter().enumerate() {
                let want = centred(x, &big_q);
                let got: Vec<u64> = out.iter().map(|r| r[c]).collect();
                if (x == &half) || (x == &(&half + 1u32)) {
                    // At ±Q/2 the lift may be either representative.
                    let either = [&want, &(&want + &bq), &(&want - &bq)]
                        .iter()
                        .any(|w| got == residues(w, &p));
                    assert!(either, "x = {x}, k = {k}");
                } else {
                    assert_eq!(got, residues(&want, &p), "x = {x}, k = {k}");
                }
            }
        }
    }

    /// `DivideDown` gives `round(x̄/Q)` for `x̄` centred modulo `Q·P`, on
    /// random values and where `x̄ mod Q` lies at or next to `±Q/2` (there
    /// the lift may take either side: one off), the vector path bit for bit
    /// the scalar one. The last shape is synod's (43/44-bit Q, 50-bit P).
    /// The division with factors on its outputs, from rows of `Q` that
    /// already carry their input factors (the product's), gives the same
    /// values times the factors.
    #[test]
    fn division_rounds_x_over_q() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        for (bits_q, k, bits_p, m) in [
            (55, 4, 61, 5),
            (62, 3, 61, 4),
            (50, 8, 61, 9),
            (44, 5, 50, 5),
            (44, 10, 50, 10),
        ] {
            let q = ntt_primes(bits_q, k, &[]);
            let p = ntt_primes(bits_p, m, &q);
            let down = DivideDown::new(&q, &p).unwrap();
            assert_eq!(
                down.0.vector.is_some(),
                has_vector_dots() && bits_p <= 50 && bits_q <= 50
            );
            let (big_q, big_p) = (product(&q), product(&p));
            let qp = &big_q * &big_p;
            let qp_all: Vec<u64> = q.iter().chain(&p).copied().collect();
            let mut xs: Vec<BigUint> = (0..400).map(|_| below(&qp, &mut rng)).collect();
            let half = &big_q / 2u32;
            for r in [
                BigUint::zero(),
                BigUint::one(),
                &big_q - 1u32,
                half.clone(),
                &half + 1u32,
            ] {
                xs.push((below(&big_p, &mut rng) * &big_q + r) % &qp);
            }
            let input = columns(
                &xs.iter()
                    .map(|x| residues(&BigInt::from(x.clone()), &qp_all))
                    .collect::<Vec<_>>(),
            );
            let refs: Vec<&[u64]> = input.iter().map(|r| r.as_slice()).collect();
            let run = |down: &DivideDown| {
                let mut out = vec![vec![0u64; xs.len()]; m];
                let mut outs: Vec<&mut [u64]> = out.iter_mut().map(|r| r.as_mut_slice()).collect();
                down.divide(&refs, &mut outs, &mut Scratch::default())
                    .unwrap();
                out
            };
            let out = run(&down);
            let mut scalar = DivideDown::new(&q, &p).unwrap();
            scalar.0.vector = None;
            assert_eq!(out, run(&scalar), "vector and scalar division differ");
            {
                use rand::Rng;
                let factors: Vec<u64> = p.iter().map(|&pj| rng.random_range(1..pj)).collect();
                let mut scaled = DivideDown::scaled(&q, &p, &factors).unwrap();
                let prescaled: Vec<Vec<u64>> = input
                    .iter()
                    .enumerate()
                    .map(|(i, row)| match q.get(i) {
                        Some(&qi) => {
                            let f = u128::from(scaled.input_factor(i));
                            row.iter()
                                .map(|&x| (u128::from(x) * f % u128::from(qi)) as u64)
                                .collect()
                        }
                        None => row.clone(),
                    })
                    .collect();
                let refs: Vec<&[u64]> = prescaled.iter().map(|r| r.as_slice()).collect();
                let want: Vec<Vec<u64>> = out
                    .iter()
                    .zip(p.iter().zip(&factors))
                    .map(|(row, (&pj, &f))| {
                        row.iter()
                            .map(|&x| (u128::from(x) * u128::from(f) % u128::from(pj)) as u64)
                            .collect()
                    })
                    .collect();
                for vector in [true, false] {
                    if !vector {
                        scaled.0.vector = None;
                    }
                    let mut got = vec![vec![0u64; xs.len()]; m];
                    let mut outs: Vec<&mut [u64]> =
                        got.iter_mut().map(|r| r.as_mut_slice()).collect();
                    scaled
                        .divide_prescaled(&refs, &mut outs, &mut Scratch::default())
                        .unwrap();
                    assert_eq!(got, want, "scaled division (vector path {vector})");
                }
                assert!(DivideDown::scaled(&q, &p, &factors[1..]).is_err());
            }
            let bq = BigInt::from(big_q.clone());
            for (c, x) in xs.iter().enumerate() {
                let num: BigInt = centred(x, &qp) * 2 + &bq;
                let want = num.div_floor(&(&bq * 2));
                let got: Vec<u64> = out.iter().map(|r| r[c]).collect();
                let r = x % &big_q;
                if r == half || r == &half + 1u32 {
                    let either = [&want, &(&want + 1), &(&want - 1)]
                        .iter()
                        .any(|w| got == residues(w, &p));
                    assert!(either, "x = {x}: more than one off");
                } else {
                    assert_eq!(got, residues(&want, &p), "x = {x}");
                }
            }
        }
    }

    /// An empty block is no error, on the IFMA path as on the scalar one.
    #[test]
    fn empty_blocks_convert_and_divide() {
        let q = ntt_primes(44, 5, &[]);
        let p = ntt_primes(50, 6, &q);
        let conv = BaseConverter::new(&q, &p).unwrap();
        let empty: Vec<&[u64]> = vec![&[]; q.len()];
        let mut outs: Vec<&mut [u64]> = (0..p.len()).map(|_| &mut [][..]).collect();
        conv.convert(&empty, &mut outs, &mut Scratch::default())
            .unwrap();
        let down = DivideDown::new(&q, &p).unwrap();
        let empty: Vec<&[u64]> = vec![&[]; q.len() + p.len()];
        down.divide(&empty, &mut outs, &mut Scratch::default())
            .unwrap();
    }

    #[test]
    fn barrett_reduction_is_exact() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        for p in ntt_primes(62, 3, &[])
            .into_iter()
            .chain(ntt_primes(30, 2, &[]))
        {
            let pr = Prime::new(p).unwrap();
            for _ in 0..10_000 {
                use rand::Rng;
                let a: u128 = rng.random::<u128>() >> 2;
                assert_eq!(u128::from(pr.reduce(a)), a % u128::from(p));
                let (x, w) = (rng.random::<u64>(), rng.random_range(0..p));
                assert_eq!(
                    u128::from(pr.mul_shoup(x, w, pr.shoup(w))),
                    u128::from(x) * u128::from(w) % u128::from(p)
                );
            }
        }
    }

    /// The bounds the IFMA path passes keep the N = 8192 product's
    /// conversion into the extension primes and its division by `Q` on the
    /// once-reduced sums (so a change that loosened them would show here,
    /// not only as a slower product); N = 16384's, ten terms of
    /// 49 × 50 bits and more, do not fit and take the Shoup products.
    #[test]
    fn the_product_sums_its_conversion_and_scaling_lazily() {
        use crate::kernels::sums_lazily;
        if !crate::kernels::has_ifma() {
            eprintln!("no IFMA here: the once-reduced sums were not checked");
            return;
        }
        for set in [
            crate::ParameterSet::InsecureTestN2048,
            crate::ParameterSet::Bfv8192,
            crate::ParameterSet::Bfv16384,
        ] {
            let params = crate::Params::new(set, 30).unwrap();
            let q = params.moduli().to_vec();
            let p = crate::mul::FastMul::tables(&params)
                .unwrap()
                .extension_primes();
            let conv = BaseConverter::new(&q, &p).unwrap();
            let consts = conv.vector.as_ref().unwrap();
            let lazy = p
                .iter()
                .zip(&consts.hat)
                .all(|(&pj, c)| sums_lazily(pj, c.consts(), c.bounds()));
            assert_eq!(lazy, set != crate::ParameterSet::Bfv16384, "{set:?}");
            let down = DivideDown::new(&q, &p).unwrap();
            let lazy_down = p
                .iter()
                .zip(&down.0.vector.as_ref().unwrap().hat)
                .all(|(&pj, c)| sums_lazily(pj, c.consts(), c.bounds()));
            assert_eq!(lazy_down, set != crate::ParameterSet::Bfv16384, "{set:?}");
        }
    }

    #[test]
    fn bad_shapes_and_oversized_bases_are_refused() {
        let q = ntt_primes(55, 3, &[]);
        let p = ntt_primes(61, 2, &q);
        let conv = BaseConverter::new(&q, &p).unwrap();
        let rows = [vec![1u64; 8], vec![2u64; 8], vec![3u64; 8]];
        let mut out = [vec![0u64; 8], vec![0u64; 8]];
        let refs: Vec<&[u64]> = rows.iter().map(|r| r.as_slice()).collect();
        let mut scratch = Scratch::default();
        {
            let mut outs: Vec<&mut [u64]> = out.iter_mut().map(|r| r.as_mut_slice()).collect();
            conv.convert(&refs, &mut outs, &mut scratch).unwrap();
            // One input row short, or one row shorter than the others.
            assert!(conv.convert(&refs[..2], &mut outs, &mut scratch).is_err());
        }
        let short = [rows[0].as_slice(), rows[1].as_slice(), &rows[2][..7]];
        let mut outs: Vec<&mut [u64]> = out.iter_mut().map(|r| r.as_mut_slice()).collect();
        assert!(conv.convert(&short, &mut outs, &mut scratch).is_err());
        // A division takes the rows of P too.
        let down = DivideDown::new(&q, &p).unwrap();
        assert!(down.divide(&refs, &mut outs, &mut scratch).is_err());
        // 15 primes of 62 bits into 62-bit primes could overflow 128 bits.
        let wide = ntt_primes(62, 16, &[]);
        assert!(BaseConverter::new(&wide[..15], &wide[15..]).is_err());
        assert!(BaseConverter::new(&wide[..3], &wide[15..]).is_ok());
    }

    #[test]
    fn simple_scaling_rounds_t_x_over_q_mod_t() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(6);
        // Both accumulations: u64 (narrow) and u128.
        for (bits_q, k, t, narrow) in [
            (44, 5, (1u64 << 30) - 35, true),
            (49, 9, (1 << 47) - 115, false),
            (55, 1, 65537, true),
        ] {
            let q = ntt_primes(bits_q, k, &[]);
            let scale = SimpleScale::new(&q, t).unwrap();
            assert_eq!(scale.narrow, narrow, "{bits_q}-bit q, t = {t}");
            let big_q = product(&q);
            let bq = BigInt::from(big_q.clone());
            let xs: Vec<BigUint> = (0..403).map(|_| below(&big_q, &mut rng)).collect();
            let input = columns(
                &xs.iter()
                    .map(|x| residues(&BigInt::from(x.clone()), &q))
                    .collect::<Vec<_>>(),
            );
            let refs: Vec<&[u64]> = input.iter().map(|r| r.as_slice()).collect();
            let mut out = vec![0u64; xs.len()];
            scale.scale(&refs, &mut out).unwrap();
            // The AVX2 + FMA kernel, where it runs, gives the scalar path's
            // values exactly (the fraction sums round alike).
            #[cfg(target_arch = "x86_64")]
            {
                let vector = crate::kernels::fma::token().is_some() && bits_q < 52;
                assert_eq!(scale.vector.is_some(), vector, "{bits_q}-bit q, t = {t}");
                if crate::kernels::fma::token().is_none() {
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "CI runs on AVX2 + FMA CPUs"
                    );
                }
            }
            let mut scalar = SimpleScale::new(&q, t).unwrap();
            scalar.vector = None;
            let mut want = vec![0u64; xs.len()];
            scalar.scale(&refs, &mut want).unwrap();
            assert_eq!(out, want, "{bits_q}-bit q, t = {t}");
            let mut off_by_one = 0;
            for (x, &got) in xs.iter().zip(&out) {
                let num: BigInt = centred(x, &big_q) * BigInt::from(t) * 2 + &bq;
                let want = num.div_floor(&(&bq * 2)).mod_floor(&BigInt::from(t));
                if BigInt::from(got) != want {
                    let diff = (BigInt::from(got) - &want).mod_floor(&BigInt::from(t));
                    assert!(
                        diff == BigInt::from(1) || diff == BigInt::from(t - 1),
                        "x = {x}"
                    );
                    off_by_one += 1;
                }
            }
            assert!(off_by_one <= 1, "{off_by_one} roundings off by one");
            assert!(scale.scale(&refs[..k - 1], &mut out).is_err());
        }
    }
}
