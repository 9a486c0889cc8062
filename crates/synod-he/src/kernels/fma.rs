//! Modular arithmetic on four residues at a time in double precision with
//! AVX2 and FMA, for primes below 2^50 on CPUs without AVX-512 IFMA (where
//! the [`super::ifma`] kernels take these products).
//!
//! Every residue below 2^50 is an exact `f64`, and a product's remainder
//! comes from two FMA instructions: van der Hoeven, Lecerf and Quintin's
//! modular multiplication ("Modular SIMD arithmetic in Mathemagix", ACM
//! TOMS 43(1), 2016, §3). For exact integers `x`, `w`:
//!
//! ```text
//! h = fl(x·w)            l = fma(x, w, −h)        (x·w = h + l exactly)
//! c = round(fl(h·(1/p)))                          (the quotient, nearly)
//! r = fma(−c, p, h) + l                           (= x·w − c·p, exactly)
//! ```
//!
//! The three roundings of `c`'s estimate cost at most `3.01·2^-53·|x·w/p|`,
//! so for `|x| ≤ B` and `0 ≤ w < p`, `|r| ≤ p·(1/2 + 3.01·2^-53·B)`, about
//! `p/2`: a signed, nearly reduced residue. `x·w − c·p` is an integer below
//! `2^53` whenever `B ≤ 2^52`, so the FMA and the addition are exact.
//! [`Lanes::canonical`] brings any `|x| ≤ 2^52` to `[0, p)`, so the row
//! kernels here return the same residues as the scalar code (tested).
//!
//! Every vector instruction takes the same time whatever the values (no
//! branches; every value is an integer, so no subnormal numbers), and the
//! row products' scalar tails use fhe-math's constant-time products, so
//! secret rows may pass through them. The dot products' tails (public
//! ciphertext and key data only) use plain 128-bit remainders.

use core::arch::x86_64::{__m256d, __m256i};

use pulp::cast;
use pulp::x86::V3;

use fhe_math::zq::Modulus;

use super::Shoup52;

/// `2^52`: the largest magnitude an operand may have, and the bias that
/// turns integers below it into `f64` bit patterns and back.
pub(crate) const BOUND: f64 = 4_503_599_627_370_496.0;
const BIAS_BITS: i64 = 0x4330_0000_0000_0000;

/// Primes (exclusive) these kernels support.
pub(crate) const MAX_PRIME: u64 = 1 << 50;

/// The AVX2 + FMA token, if this CPU has both.
pub(crate) fn token() -> Option<V3> {
    V3::try_new()
}

/// The vector operations, with the prime's constants in registers.
#[derive(Clone, Copy)]
pub(crate) struct Lanes {
    pub(crate) simd: V3,
    p: __m256d,
    p_inv: __m256d,
}

impl Lanes {
    #[inline(always)]
    pub(crate) fn new(simd: V3, p: f64, p_inv: f64) -> Self {
        Self {
            simd,
            p: simd.avx._mm256_set1_pd(p),
            p_inv: simd.avx._mm256_set1_pd(p_inv),
        }
    }

    #[inline(always)]
    pub(crate) fn splat(self, x: f64) -> __m256d {
        self.simd.avx._mm256_set1_pd(x)
    }

    /// Four values: `u64` residues below 2^52 when `from_int`, else the
    /// `f64` bit patterns an earlier level stored.
    #[inline(always)]
    pub(crate) fn load(self, x: &[u64; 4], from_int: bool) -> __m256d {
        let avx = self.simd.avx;
        let bits: __m256i = cast(*x);
        if from_int {
            let biased = self
                .simd
                .avx2
                ._mm256_or_si256(bits, avx._mm256_set1_epi64x(BIAS_BITS));
            avx._mm256_sub_pd(avx._mm256_castsi256_pd(biased), avx._mm256_set1_pd(BOUND))
        } else {
            avx._mm256_castsi256_pd(bits)
        }
    }

    /// Integers in `[0, 2^52)` as `u64` bit patterns.
    #[inline(always)]
    pub(crate) fn to_bits(self, x: __m256d) -> __m256i {
        let avx = self.simd.avx;
        let biased = avx._mm256_castpd_si256(avx._mm256_add_pd(x, avx._mm256_set1_pd(BOUND)));
        self.simd
            .avx2
            ._mm256_xor_si256(biased, avx._mm256_set1_epi64x(BIAS_BITS))
    }

    #[inline(always)]
    pub(crate) fn add(self, x: __m256d, y: __m256d) -> __m256d {
        self.simd.avx._mm256_add_pd(x, y)
    }

    #[inline(always)]
    pub(crate) fn sub(self, x: __m256d, y: __m256d) -> __m256d {
        self.simd.avx._mm256_sub_pd(x, y)
    }

    /// `x·w − round(x·w/p)·p`, exact (module doc).
    #[inline(always)]
    pub(crate) fn mul(self, x: __m256d, w: __m256d) -> __m256d {
        let (avx, fma) = (self.simd.avx, self.simd.fma);
        let h = avx._mm256_mul_pd(x, w);
        let l = fma._mm256_fmsub_pd(x, w, h);
        let c = avx._mm256_round_pd::<0x08>(avx._mm256_mul_pd(h, self.p_inv));
        avx._mm256_add_pd(fma._mm256_fnmadd_pd(c, self.p, h), l)
    }

    /// `x − round(x/p)·p`.
    #[inline(always)]
    pub(crate) fn reduce(self, x: __m256d) -> __m256d {
        let (avx, fma) = (self.simd.avx, self.simd.fma);
        let c = avx._mm256_round_pd::<0x08>(avx._mm256_mul_pd(x, self.p_inv));
        fma._mm256_fnmadd_pd(c, self.p, x)
    }

    /// The residue in `[0, p)`.
    #[inline(always)]
    pub(crate) fn canonical(self, x: __m256d) -> __m256d {
        let avx = self.simd.avx;
        let r = self.reduce(x);
        let negative = avx._mm256_cmp_pd::<0x11>(r, avx._mm256_setzero_pd());
        avx._mm256_add_pd(r, avx._mm256_and_pd(negative, self.p))
    }
}

/// `row[k] ± a'[k]·b[k] mod q` where `a' = a` or, with `scale` `c`,
/// `a' = a·c mod q`; `false` (nothing written) without AVX2 + FMA, for
/// `q ≥ 2^50` or slices of different lengths. Inputs below `q`.
pub(crate) fn mul_acc_into(
    modulus: &Modulus,
    subtract: bool,
    row: &mut [u64],
    a: &[u64],
    scale: Option<u64>,
    b: &[u64],
) -> bool {
    let Some(simd) = token() else {
        return false;
    };
    let q = **modulus;
    if !(3..MAX_PRIME).contains(&q) || a.len() != row.len() || b.len() != row.len() {
        return false;
    }
    if scale.is_some_and(|c| c >= q) {
        return false;
    }
    simd.vectorize(MulAcc {
        lanes: Lanes::new(simd, q as f64, 1.0 / q as f64),
        q: modulus,
        subtract,
        row,
        a,
        scale,
        b,
    });
    true
}

/// [`mul_acc_into`] as pulp's vectorised operation (a struct, not a
/// closure: a closure's `call_once` shim is only an inlining hint, and an
/// intrinsic left out of line is a function call per instruction).
struct MulAcc<'a> {
    lanes: Lanes,
    q: &'a Modulus,
    subtract: bool,
    row: &'a mut [u64],
    a: &'a [u64],
    scale: Option<u64>,
    b: &'a [u64],
}

impl pulp::NullaryFnOnce for MulAcc<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let Self {
            lanes: k,
            q,
            subtract,
            row,
            a,
            scale,
            b,
        } = self;
        let (row4, row_tail) = pulp::as_arrays_mut::<4, u64>(row);
        let (a4, a_tail) = pulp::as_arrays::<4, u64>(a);
        let (b4, b_tail) = pulp::as_arrays::<4, u64>(b);
        let c = k.splat(scale.unwrap_or(0) as f64);
        for ((r, x), y) in row4.iter_mut().zip(a4).zip(b4) {
            let mut x = k.load(x, true);
            if scale.is_some() {
                x = k.mul(x, c);
            }
            let xy = k.mul(x, k.load(y, true));
            let r0 = k.load(r, true);
            let s = if subtract {
                k.sub(r0, xy)
            } else {
                k.add(r0, xy)
            };
            *r = cast(k.to_bits(k.canonical(s)));
        }
        // The tail with fhe-math's constant-time products (rows may be
        // secret).
        for ((r, &x), &y) in row_tail.iter_mut().zip(a_tail).zip(b_tail) {
            let xy = q.mul(scale.map_or(x, |c| q.mul(x, c)), y);
            *r = if subtract {
                q.sub(*r, xy)
            } else {
                q.add(*r, xy)
            };
        }
    }
}

/// `out[k] = Σ_i rows[i][k]·consts[i] mod p` (`rows[i][k] < 2^52`, every
/// row as long as `out`), canonical; `false` (nothing written) without
/// AVX2 + FMA, for `p ≥ 2^50` or rows of other lengths or number. Each
/// product is nearly reduced (at most about `2.01p` in magnitude for inputs
/// below 2^52, `0.88p` below 2^50), and the sum is reduced after every
/// second product, so it stays below `4.6p < 2^53`: every intermediate is
/// an integer that `f64` holds exactly, and the reduction's error bound
/// needs no more.
pub(crate) fn dot_const_rows(p: u64, out: &mut [u64], rows: &[&[u64]], consts: &[Shoup52]) -> bool {
    let Some(simd) = token() else {
        return false;
    };
    if !(3..MAX_PRIME).contains(&p)
        || rows.len() != consts.len()
        || rows.iter().any(|r| r.len() != out.len())
        || consts.iter().any(|c| c.w >= p)
    {
        return false;
    }
    simd.vectorize(Dot {
        lanes: Lanes::new(simd, p as f64, 1.0 / p as f64),
        p,
        out,
        rows,
        consts,
    });
    true
}

/// [`dot_const_rows`] as pulp's vectorised operation (see [`MulAcc`]).
struct Dot<'a> {
    lanes: Lanes,
    p: u64,
    out: &'a mut [u64],
    rows: &'a [&'a [u64]],
    consts: &'a [Shoup52],
}

impl pulp::NullaryFnOnce for Dot<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let Self {
            lanes: k,
            p,
            out,
            rows,
            consts,
        } = self;
        let (out4, out_tail) = pulp::as_arrays_mut::<4, u64>(out);
        let rows4 = quads(rows);
        let weights: Vec<f64> = consts.iter().map(|c| c.w as f64).collect();
        for (c, o) in out4.iter_mut().enumerate() {
            let mut acc = k.splat(0.0);
            for (i, (row, &w)) in rows4.iter().zip(&weights).enumerate() {
                let x = row.get(c).map_or(k.splat(0.0), |x| k.load(x, true));
                acc = k.add(acc, k.mul(x, k.splat(w)));
                if i % 2 == 1 {
                    acc = k.reduce(acc);
                }
            }
            *o = cast(k.to_bits(k.canonical(acc)));
        }
        let done = out4.len() * 4;
        for (j, o) in out_tail.iter_mut().enumerate() {
            let sum = rows.iter().zip(consts).fold(0u128, |acc, (row, c)| {
                let x = row.get(done + j).copied().unwrap_or(0);
                (acc + u128::from(x) * u128::from(c.w)) % u128::from(p)
            });
            *o = sum as u64;
        }
    }
}

/// `acc0 += Σ_g x[g]⊙w0[g]`, `acc1 += Σ_g x[g]⊙w1[g]` modulo `q` in one
/// pass (the key switch's products with both key halves): each sum is held
/// in a register and reduced after every second product, and written once.
/// `false` (nothing written) without AVX2 + FMA, for `q ≥ 2^50` or rows
/// of other lengths or number. All values below `q`.
pub(crate) fn dot2_add_into(
    q: u64,
    acc0: &mut [u64],
    acc1: &mut [u64],
    x: &[&[u64]],
    w0: &[&[u64]],
    w1: &[&[u64]],
) -> bool {
    let Some(simd) = token() else {
        return false;
    };
    let n = acc0.len();
    if !(3..MAX_PRIME).contains(&q)
        || acc1.len() != n
        || w0.len() != x.len()
        || w1.len() != x.len()
        || x.iter().chain(w0).chain(w1).any(|r| r.len() != n)
    {
        return false;
    }
    simd.vectorize(Dot2 {
        lanes: Lanes::new(simd, q as f64, 1.0 / q as f64),
        q,
        acc0,
        acc1,
        x,
        w0,
        w1,
    });
    true
}

/// Rows as arrays of four (tails left out).
#[inline(always)]
fn quads<'a>(rows: &[&'a [u64]]) -> Vec<&'a [[u64; 4]]> {
    rows.iter()
        .map(|r| pulp::as_arrays::<4, u64>(r).0)
        .collect()
}

/// [`dot2_add_into`] as pulp's vectorised operation (see [`MulAcc`]).
struct Dot2<'a> {
    lanes: Lanes,
    q: u64,
    acc0: &'a mut [u64],
    acc1: &'a mut [u64],
    x: &'a [&'a [u64]],
    w0: &'a [&'a [u64]],
    w1: &'a [&'a [u64]],
}

impl pulp::NullaryFnOnce for Dot2<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let Self {
            lanes: k,
            q,
            acc0,
            acc1,
            x,
            w0,
            w1,
        } = self;
        let (x4, w04, w14) = (quads(x), quads(w0), quads(w1));
        let (a04, tail0) = pulp::as_arrays_mut::<4, u64>(acc0);
        let (a14, tail1) = pulp::as_arrays_mut::<4, u64>(acc1);
        for (c, (a0, a1)) in a04.iter_mut().zip(a14.iter_mut()).enumerate() {
            let (mut s0, mut s1) = (k.load(a0, true), k.load(a1, true));
            for (g, ((xr, w0r), w1r)) in x4.iter().zip(&w04).zip(&w14).enumerate() {
                let (Some(xv), Some(u), Some(v)) = (xr.get(c), w0r.get(c), w1r.get(c)) else {
                    continue;
                };
                let xv = k.load(xv, true);
                s0 = k.add(s0, k.mul(xv, k.load(u, true)));
                s1 = k.add(s1, k.mul(xv, k.load(v, true)));
                if g % 2 == 1 {
                    (s0, s1) = (k.reduce(s0), k.reduce(s1));
                }
            }
            *a0 = cast(k.to_bits(k.canonical(s0)));
            *a1 = cast(k.to_bits(k.canonical(s1)));
        }
        let done = a04.len() * 4;
        let m = |a: u64, b: u64| u128::from(a) * u128::from(b);
        for (j, (t0, t1)) in tail0.iter_mut().zip(tail1.iter_mut()).enumerate() {
            let at = |r: &&[u64]| r.get(done + j).copied().unwrap_or(0);
            for ((xr, u), v) in x.iter().zip(w0).zip(w1) {
                *t0 = ((u128::from(*t0) + m(at(xr), at(u))) % u128::from(q)) as u64;
                *t1 = ((u128::from(*t1) + m(at(xr), at(v))) % u128::from(q)) as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use rand::SeedableRng;

    /// Row products, plain and scaled, adding and subtracting, equal
    /// fhe-math's scalar ones, on random and extreme residues, for primes
    /// of 30 to 50 bits and lengths with a tail.
    #[test]
    fn row_products_match_the_scalar_ones() {
        if token().is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs on AVX2 + FMA CPUs"
            );
            return;
        }
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        for q in [
            (1u64 << 30) - 35,
            (1u64 << 44) - 21,
            (1u64 << 49) - 81,
            (1u64 << 50) - 27,
        ] {
            let m = Modulus::new(q).unwrap();
            for len in [0usize, 3, 64, 1027] {
                let rows = [m.random_vec(len, &mut rng), vec![q - 1; len], vec![0; len]];
                for (a, b, r) in [(0, 1, 2), (1, 1, 1), (1, 1, 2), (0, 0, 0), (2, 1, 0)] {
                    let (a, b, r) = (&rows[a], &rows[b], &rows[r]);
                    for scale in [None, Some(q - 1), Some(m.random_vec(1, &mut rng)[0])] {
                        for subtract in [false, true] {
                            let mut ours = r.clone();
                            assert!(
                                mul_acc_into(&m, subtract, &mut ours, a, scale, b),
                                "q {q} len {len}"
                            );
                            let theirs: Vec<u64> = r
                                .iter()
                                .zip(a)
                                .zip(b)
                                .map(|((&r, &x), &y)| {
                                    let x = scale.map_or(x, |c| m.mul(x, c));
                                    if subtract {
                                        m.sub(r, m.mul(x, y))
                                    } else {
                                        m.add(r, m.mul(x, y))
                                    }
                                })
                                .collect();
                            assert_eq!(ours, theirs, "q {q}, len {len}, {scale:?}, {subtract}");
                        }
                    }
                }
            }
        }
    }

    /// Constant dots equal the exact sums, for rows up to 2^52 and up to
    /// fourteen terms, with and without a tail.
    #[test]
    fn constant_dots_match_exact_sums() {
        if token().is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs on AVX2 + FMA CPUs"
            );
            return;
        }
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(10);
        for p in [(1u64 << 44) - 21, (1u64 << 50) - 27] {
            let m = Modulus::new(p).unwrap();
            for terms in [1usize, 2, 5, 14] {
                for len in [7usize, 64] {
                    let rows: Vec<Vec<u64>> = (0..terms)
                        .map(|i| match i % 3 {
                            0 => vec![(1 << 52) - 1; len],
                            1 => m.random_vec(len, &mut rng),
                            _ => vec![p - 1; len],
                        })
                        .collect();
                    let ws = m.random_vec(terms, &mut rng);
                    let consts: Vec<Shoup52> = ws
                        .iter()
                        .enumerate()
                        .map(|(i, &w)| Shoup52::new(if i == 0 { p - 1 } else { w }, p).unwrap())
                        .collect();
                    let refs: Vec<&[u64]> = rows.iter().map(Vec::as_slice).collect();
                    let mut out = vec![0; len];
                    assert!(dot_const_rows(p, &mut out, &refs, &consts));
                    for (c, &o) in out.iter().enumerate() {
                        let exact = rows.iter().zip(&consts).fold(0u128, |acc, (r, w)| {
                            acc + u128::from(r[c]) * u128::from(w.w)
                        }) % u128::from(p);
                        assert_eq!(u128::from(o), exact, "p {p}, {terms} terms, column {c}");
                    }
                }
            }
        }
    }

    fn refs(m: &[Vec<u64>]) -> Vec<&[u64]> {
        m.iter().map(Vec::as_slice).collect()
    }

    /// The key switch's double dot product equals the products added one by
    /// one, for 1 to 7 digits, at the extremes and on random residues.
    #[test]
    fn double_dots_match_the_products_one_by_one() {
        if token().is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs on AVX2 + FMA CPUs"
            );
            return;
        }
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        for q in [(1u64 << 44) - 21, (1u64 << 50) - 27] {
            let m = Modulus::new(q).unwrap();
            for digits in [1usize, 2, 7] {
                for len in [6usize, 64] {
                    let draw = |rng: &mut rand_chacha::ChaCha20Rng, extreme: bool| {
                        if extreme {
                            vec![q - 1; len]
                        } else {
                            m.random_vec(len, rng)
                        }
                    };
                    for extreme in [false, true] {
                        let x: Vec<Vec<u64>> =
                            (0..digits).map(|_| draw(&mut rng, extreme)).collect();
                        let w0: Vec<Vec<u64>> =
                            (0..digits).map(|_| draw(&mut rng, extreme)).collect();
                        let w1: Vec<Vec<u64>> =
                            (0..digits).map(|_| draw(&mut rng, false)).collect();
                        let (a0, a1) = (draw(&mut rng, extreme), draw(&mut rng, false));
                        let (mut o0, mut o1) = (a0.clone(), a1.clone());
                        assert!(dot2_add_into(
                            q,
                            &mut o0,
                            &mut o1,
                            &refs(&x),
                            &refs(&w0),
                            &refs(&w1)
                        ));
                        let (mut e0, mut e1) = (a0, a1);
                        for g in 0..digits {
                            for c in 0..len {
                                e0[c] = m.add(e0[c], m.mul(x[g][c], w0[g][c]));
                                e1[c] = m.add(e1[c], m.mul(x[g][c], w1[g][c]));
                            }
                        }
                        assert_eq!((o0, o1), (e0, e1), "q {q}, {digits} digits, len {len}");
                    }
                }
            }
        }
    }
}
