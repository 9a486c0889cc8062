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

use super::ifma::{limbs_tail, LIMB_BITS, LIMB_MASK, MAX_LIMB_ROWS};
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
            self.int_to_f64(bits)
        } else {
            avx._mm256_castsi256_pd(bits)
        }
    }

    /// Four `u64` integers below 2^52, as `f64`.
    #[inline(always)]
    pub(crate) fn int_to_f64(self, bits: __m256i) -> __m256d {
        let avx = self.simd.avx;
        let biased = self
            .simd
            .avx2
            ._mm256_or_si256(bits, avx._mm256_set1_epi64x(BIAS_BITS));
        avx._mm256_sub_pd(avx._mm256_castsi256_pd(biased), avx._mm256_set1_pd(BOUND))
    }

    /// Four signed integers in `[−2^51, 2^51)` (two's complement), as
    /// `f64`: added to the bit pattern of `1.5·2^52`, whose last 52 bits
    /// then hold `2^51 + c`, and `1.5·2^52` subtracted.
    #[inline(always)]
    pub(crate) fn signed_to_f64(self, bits: __m256i) -> __m256d {
        let avx = self.simd.avx;
        let magic = 1.5 * BOUND;
        let biased = self
            .simd
            .avx2
            ._mm256_add_epi64(bits, avx._mm256_castpd_si256(avx._mm256_set1_pd(magic)));
        avx._mm256_sub_pd(avx._mm256_castsi256_pd(biased), avx._mm256_set1_pd(magic))
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

    /// [`Self::mul`] with the quotient estimated from `w_p = w/p` (rounded)
    /// alongside the product, a shorter dependency chain; the same bound.
    #[inline(always)]
    pub(crate) fn mul_quotient(self, x: __m256d, w: __m256d, w_p: __m256d) -> __m256d {
        let (avx, fma) = (self.simd.avx, self.simd.fma);
        let h = avx._mm256_mul_pd(x, w);
        let c = avx._mm256_round_pd::<0x08>(avx._mm256_mul_pd(x, w_p));
        let l = fma._mm256_fmsub_pd(x, w, h);
        avx._mm256_add_pd(fma._mm256_fnmadd_pd(c, self.p, h), l)
    }

    /// `w·(1/p)`: a quotient estimate for [`Self::mul_quotient`] within the
    /// bound of [`Self::mul`]'s (three roundings, as there).
    #[inline(always)]
    pub(crate) fn over_p(self, w: __m256d) -> __m256d {
        self.simd.avx._mm256_mul_pd(w, self.p_inv)
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
/// AVX2 + FMA, for `p ≥ 2^50` or rows of other lengths or number.
pub(crate) fn dot_const_rows(p: u64, out: &mut [u64], rows: &[&[u64]], consts: &[Shoup52]) -> bool {
    dot_const_rows_below(p, out, rows, consts, &vec![1 << 52; rows.len()])
}

/// [`dot_const_rows`] for rows known to lie below `bounds` (one per row, at
/// most 2^52): the sum is reduced only where the bounds say that the next
/// product could take it past 2^53 ([`reductions`]). A caller's bound that
/// does not hold gives a wrong residue, never undefined behaviour.
pub(crate) fn dot_const_rows_below(
    p: u64,
    out: &mut [u64],
    rows: &[&[u64]],
    consts: &[Shoup52],
    bounds: &[u64],
) -> bool {
    if bounds.len() != rows.len() || bounds.iter().any(|&b| b > 1 << 52) {
        return false;
    }
    dot_const_rows_scheduled(p, out, rows, consts, &reductions(p, consts, bounds))
}

/// [`dot_const_rows_below`] with the schedule `reduce_after` (one flag per
/// row: [`reductions`] of the constants and the rows' bounds), computed
/// once by a caller that runs the same dot many times. Four vectors of four
/// coefficients are summed side by side, so that four dependency chains
/// overlap.
pub(crate) fn dot_const_rows_scheduled(
    p: u64,
    out: &mut [u64],
    rows: &[&[u64]],
    consts: &[Shoup52],
    reduce_after: &[bool],
) -> bool {
    let Some(simd) = token() else {
        return false;
    };
    if !(3..MAX_PRIME).contains(&p)
        || rows.len() != consts.len()
        || reduce_after.len() != rows.len()
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
        reduce_after,
    });
    true
}

/// Per row of a constant dot product, whether the running sum is reduced
/// after its product is added: the module doc's bounds, replayed. A
/// product of `|x| < B` and `w` is at most `p/2 + 3.01·2^-53·B·w` in
/// magnitude, a reduced sum `s` at most `p/2 + 2.01·2^-53·s`; the sum is
/// reduced when the next product could take it past `2^53` (every integer
/// up to that is an exact `f64`, and the reduction's analysis holds there).
/// For synod's primes below 2^45 the sums of up to 256 products are never
/// reduced before the end; at 2^50 about every eighth product of rows
/// below `p`, every third or fourth of rows up to 2^52.
pub(crate) fn reductions(p: u64, consts: &[Shoup52], bounds: &[u64]) -> Vec<bool> {
    let (pf, limit) = (p as f64, 2.0 * BOUND);
    let product = |i: usize| {
        let (b, w) = (
            bounds.get(i).map_or(BOUND, |&b| b as f64),
            consts.get(i).map_or(pf, |c| c.w as f64),
        );
        pf * 0.5 + 3.01 * b * w / (2.0 * BOUND) + 1.0
    };
    let mut sum = 0.0;
    (0..consts.len())
        .map(|i| {
            sum += product(i);
            let reduce = i + 1 < consts.len() && sum + product(i + 1) > limit;
            if reduce {
                sum = pf * 0.5 + 2.01 * sum / (2.0 * BOUND) + 1.0;
            }
            reduce
        })
        .collect()
}

/// [`dot_const_rows_scheduled`] as pulp's vectorised operation (see
/// [`MulAcc`]).
struct Dot<'a> {
    lanes: Lanes,
    p: u64,
    out: &'a mut [u64],
    rows: &'a [&'a [u64]],
    consts: &'a [Shoup52],
    reduce_after: &'a [bool],
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
            reduce_after,
        } = self;
        // Sixteen coefficients (four vectors) at a time; nothing allocated
        // (this runs per block of a conversion).
        let (out8, rest) = pulp::as_arrays_mut::<16, u64>(out);
        for (c, o) in out8.iter_mut().enumerate() {
            let mut acc = [k.splat(0.0); 4];
            for ((row, w), &reduce) in rows.iter().zip(consts).zip(reduce_after) {
                let Some(x) = pulp::as_arrays::<16, u64>(row).0.get(c) else {
                    continue;
                };
                let xs: [[u64; 4]; 4] = cast(*x);
                let w = k.splat(w.w as f64);
                for (a, x) in acc.iter_mut().zip(&xs) {
                    *a = k.add(*a, k.mul(k.load(x, true), w));
                }
                if reduce {
                    for a in acc.iter_mut() {
                        *a = k.reduce(*a);
                    }
                }
            }
            // A loop, not `map` with a closure: a closure is compiled
            // without the target features, and its intrinsics become calls.
            let mut ys = [[0u64; 4]; 4];
            for (y, a) in ys.iter_mut().zip(acc) {
                *y = cast(k.to_bits(k.canonical(a)));
            }
            *o = cast(ys);
        }
        let done = out8.len() * 16;
        for (j, o) in rest.iter_mut().enumerate() {
            let sum = rows.iter().zip(consts).fold(0u128, |acc, (row, c)| {
                let x = row.get(done + j).copied().unwrap_or(0);
                (acc + u128::from(x) * u128::from(c.w)) % u128::from(p)
            });
            *o = sum as u64;
        }
    }
}

/// The tensor of `(a0, a1)` and `(b0, b1)` modulo one prime, in one pass
/// and in place: afterwards `a0 = a0·b0`, `b0 = a0·b1 + a1·b0` and
/// `a1 = a1·b1` (mod `q`, of the values before), canonical; `false`
/// (nothing written) without AVX2 + FMA, for `q ≥ 2^50` or lengths that
/// differ. All inputs below `q` (ciphertexts: public data).
pub(crate) fn tensor_in_place(
    q: &Modulus,
    a0: &mut [u64],
    a1: &mut [u64],
    b0: &mut [u64],
    b1: &[u64],
) -> bool {
    let Some(simd) = token() else {
        return false;
    };
    let (p, n) = (**q, a0.len());
    if !(3..MAX_PRIME).contains(&p) || a1.len() != n || b0.len() != n || b1.len() != n {
        return false;
    }
    simd.vectorize(Tensor {
        lanes: Lanes::new(simd, p as f64, 1.0 / p as f64),
        q,
        a0,
        a1,
        b0,
        b1,
    });
    true
}

/// [`tensor_in_place`] as pulp's vectorised operation (see [`MulAcc`]).
struct Tensor<'a> {
    lanes: Lanes,
    q: &'a Modulus,
    a0: &'a mut [u64],
    a1: &'a mut [u64],
    b0: &'a mut [u64],
    b1: &'a [u64],
}

impl pulp::NullaryFnOnce for Tensor<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let Self {
            lanes: k,
            q,
            a0,
            a1,
            b0,
            b1,
        } = self;
        let (a0_4, a0_t) = pulp::as_arrays_mut::<4, u64>(a0);
        let (a1_4, a1_t) = pulp::as_arrays_mut::<4, u64>(a1);
        let (b0_4, b0_t) = pulp::as_arrays_mut::<4, u64>(b0);
        let (b1_4, b1_t) = pulp::as_arrays::<4, u64>(b1);
        let lanes = a0_4.iter_mut().zip(a1_4.iter_mut());
        for ((x0, x1), (y0, y1)) in lanes.zip(b0_4.iter_mut().zip(b1_4)) {
            let (u0, u1) = (k.load(x0, true), k.load(x1, true));
            let (v0, v1) = (k.load(y0, true), k.load(y1, true));
            // Two products below p each: the cross sum is below 2p.
            let cross = k.add(k.mul(u0, v1), k.mul(u1, v0));
            *y0 = cast(k.to_bits(k.canonical(cross)));
            *x0 = cast(k.to_bits(k.canonical(k.mul(u0, v0))));
            *x1 = cast(k.to_bits(k.canonical(k.mul(u1, v1))));
        }
        let lanes = a0_t.iter_mut().zip(a1_t.iter_mut());
        for ((x0, x1), (y0, &y1)) in lanes.zip(b0_t.iter_mut().zip(b1_t)) {
            let (u0, u1, v0) = (*x0, *x1, *y0);
            *y0 = q.add(q.mul(u0, y1), q.mul(u1, v0));
            *x0 = q.mul(u0, v0);
            *x1 = q.mul(u1, y1);
        }
    }
}

/// The tensor of `(a0, a1)` with itself modulo one prime, in one pass:
/// afterwards `a0 = a0²`, `a1 = a1²` and `c1 = 2·a0·a1` (of the values
/// before), canonical; `false` (nothing written) without AVX2 + FMA, for
/// `q ≥ 2^50` or lengths that differ. Inputs below `q` (public data).
pub(crate) fn square_in_place(q: &Modulus, a0: &mut [u64], a1: &mut [u64], c1: &mut [u64]) -> bool {
    let Some(simd) = token() else {
        return false;
    };
    let (p, n) = (**q, a0.len());
    if !(3..MAX_PRIME).contains(&p) || a1.len() != n || c1.len() != n {
        return false;
    }
    simd.vectorize(Square {
        lanes: Lanes::new(simd, p as f64, 1.0 / p as f64),
        q,
        a0,
        a1,
        c1,
    });
    true
}

/// [`square_in_place`] as pulp's vectorised operation (see [`MulAcc`]).
struct Square<'a> {
    lanes: Lanes,
    q: &'a Modulus,
    a0: &'a mut [u64],
    a1: &'a mut [u64],
    c1: &'a mut [u64],
}

impl pulp::NullaryFnOnce for Square<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let Self {
            lanes: k,
            q,
            a0,
            a1,
            c1,
        } = self;
        let (a0_4, a0_t) = pulp::as_arrays_mut::<4, u64>(a0);
        let (a1_4, a1_t) = pulp::as_arrays_mut::<4, u64>(a1);
        let (c1_4, c1_t) = pulp::as_arrays_mut::<4, u64>(c1);
        for ((x0, x1), y) in a0_4.iter_mut().zip(a1_4.iter_mut()).zip(c1_4.iter_mut()) {
            let (u0, u1) = (k.load(x0, true), k.load(x1, true));
            // A product below 0.6p, doubled: below 1.2p.
            let m = k.mul(u0, u1);
            *y = cast(k.to_bits(k.canonical(k.add(m, m))));
            *x0 = cast(k.to_bits(k.canonical(k.mul(u0, u0))));
            *x1 = cast(k.to_bits(k.canonical(k.mul(u1, u1))));
        }
        for ((x0, x1), y) in a0_t.iter_mut().zip(a1_t.iter_mut()).zip(c1_t.iter_mut()) {
            let (u0, u1) = (*x0, *x1);
            let m = q.mul(u0, u1);
            *y = q.add(m, m);
            *x0 = q.mul(u0, u0);
            *x1 = q.mul(u1, u1);
        }
    }
}

/// HPS simple scaling's sums on four lanes: `out[k] = Σ_i (h_i·wh_i +
/// l_i·wl_i) + ⌊f + 1/2⌋ mod t`, canonical, where `x_i = rows[i][k]` splits
/// as `h_i = x_i >> s_i`, `l_i = x_i mod 2^{s_i}` and `f = Σ_i (h_i·fh_i +
/// l_i·fl_i)`, added prime by prime in the order (and so with the roundings)
/// of the scalar code. `split[i] = (s_i, fh_i, fl_i)`; `consts` holds `wh_i,
/// wl_i` per row and then 1 (the rounded fraction's weight);
/// `reduce_after` is [`reductions`] of those constants and the matching
/// exclusive bounds (at most 2^52), computed once by the caller, whose
/// rows must lie below them. `false` (nothing done) without AVX2 + FMA, for
/// `t ≥ 2^50`, or shapes that do not match.
pub(crate) fn split_dot_round(
    t: u64,
    out: &mut [u64],
    rows: &[&[u64]],
    split: &[(u32, f64, f64)],
    consts: &[Shoup52],
    reduce_after: &[bool],
) -> bool {
    let Some(simd) = token() else {
        return false;
    };
    if !(3..MAX_PRIME).contains(&t)
        || rows.len() != split.len()
        || consts.len() != 2 * rows.len() + 1
        || reduce_after.len() != consts.len()
        || rows.iter().any(|r| r.len() != out.len())
        || consts.iter().any(|c| c.w >= t)
        || split.iter().any(|&(s, _, _)| !(1..52).contains(&s))
    {
        return false;
    }
    simd.vectorize(SplitDot {
        lanes: Lanes::new(simd, t as f64, 1.0 / t as f64),
        t,
        out,
        rows,
        split,
        consts,
        reduce_after,
    });
    true
}

/// [`split_dot_round`] as pulp's vectorised operation (see [`MulAcc`]).
struct SplitDot<'a> {
    lanes: Lanes,
    t: u64,
    out: &'a mut [u64],
    rows: &'a [&'a [u64]],
    split: &'a [(u32, f64, f64)],
    consts: &'a [Shoup52],
    reduce_after: &'a [bool],
}

impl pulp::NullaryFnOnce for SplitDot<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let Self {
            lanes: k,
            t,
            out,
            rows,
            split,
            consts,
            reduce_after,
        } = self;
        let (avx, avx2) = (k.simd.avx, k.simd.avx2);
        // Per row: the shift, mask and fractions, and both weights with
        // their reduction flags.
        let terms: Vec<(u32, f64, f64, f64, bool, f64, bool)> = split
            .iter()
            .enumerate()
            .map(|(i, &(s, fh, fl))| {
                let w = |j: usize| consts.get(j).map_or(0.0, |c| c.w as f64);
                let r = |j: usize| reduce_after.get(j).copied().unwrap_or(true);
                (s, fh, fl, w(2 * i), r(2 * i), w(2 * i + 1), r(2 * i + 1))
            })
            .collect();
        // Eight coefficients (two vectors) at a time: two dependency chains.
        let rows8: Vec<&[[u64; 8]]> = rows
            .iter()
            .map(|r| pulp::as_arrays::<8, u64>(r).0)
            .collect();
        let (out8, rest) = pulp::as_arrays_mut::<8, u64>(out);
        let half = k.splat(0.5);
        for (c, o) in out8.iter_mut().enumerate() {
            let (mut f0, mut f1) = (k.splat(0.0), k.splat(0.0));
            let (mut acc0, mut acc1) = (k.splat(0.0), k.splat(0.0));
            for (row, &(s, fh, fl, wh, rh, wl, rl)) in rows8.iter().zip(&terms) {
                let Some(x) = row.get(c) else { continue };
                let [x0, x1]: [__m256i; 2] = cast(*x);
                let shift = avx._mm256_set1_epi64x(i64::from(s));
                let mask = avx._mm256_set1_epi64x(((1u64 << s) - 1) as i64);
                let (h0, l0) = (
                    k.int_to_f64(avx2._mm256_srlv_epi64(x0, shift)),
                    k.int_to_f64(avx2._mm256_and_si256(x0, mask)),
                );
                let (h1, l1) = (
                    k.int_to_f64(avx2._mm256_srlv_epi64(x1, shift)),
                    k.int_to_f64(avx2._mm256_and_si256(x1, mask)),
                );
                let (fh, fl, wh, wl) = (k.splat(fh), k.splat(fl), k.splat(wh), k.splat(wl));
                // As the scalar code: f += h·fh + l·fl, rounded alike.
                f0 = k.add(
                    f0,
                    k.add(avx._mm256_mul_pd(h0, fh), avx._mm256_mul_pd(l0, fl)),
                );
                f1 = k.add(
                    f1,
                    k.add(avx._mm256_mul_pd(h1, fh), avx._mm256_mul_pd(l1, fl)),
                );
                acc0 = k.add(acc0, k.mul(h0, wh));
                acc1 = k.add(acc1, k.mul(h1, wh));
                if rh {
                    (acc0, acc1) = (k.reduce(acc0), k.reduce(acc1));
                }
                acc0 = k.add(acc0, k.mul(l0, wl));
                acc1 = k.add(acc1, k.mul(l1, wl));
                if rl {
                    (acc0, acc1) = (k.reduce(acc0), k.reduce(acc1));
                }
            }
            // ⌊f + 1/2⌋ (f ≥ 0, as the scalar truncation), weight 1.
            acc0 = k.add(acc0, avx._mm256_round_pd::<0x09>(k.add(f0, half)));
            acc1 = k.add(acc1, avx._mm256_round_pd::<0x09>(k.add(f1, half)));
            let y0: [u64; 4] = cast(k.to_bits(k.canonical(acc0)));
            let y1: [u64; 4] = cast(k.to_bits(k.canonical(acc1)));
            *o = cast([y0, y1]);
        }
        // The tail (shorter than eight) in scalar arithmetic, as
        // `rns::SimpleScale`'s scalar path (a decrypted phase is the
        // output being opened).
        let done = out8.len() * 8;
        for (j, o) in rest.iter_mut().enumerate() {
            let mut f = 0f64;
            let mut acc = 0u128;
            for (row, (&(s, fh, fl), pair)) in rows.iter().zip(split.iter().zip(consts.chunks(2))) {
                let x = row.get(done + j).copied().unwrap_or(0);
                let (h, l) = (x >> s, x & ((1u64 << s) - 1));
                f += h as f64 * fh + l as f64 * fl;
                let w = |i: usize| u128::from(pair.get(i).map_or(0, |c| c.w));
                acc += u128::from(h) * w(0) + u128::from(l) * w(1);
            }
            *o = ((acc + u128::from((f + 0.5) as u64)) % u128::from(t)) as u64;
        }
    }
}

/// [`super::ifma::dot_const_limbs64`] in double precision: `out[k] = init +
/// Σ_l limb_l(k)·consts[l] mod p`, canonical, where `limb_l(k)` is bits
/// `48·l .. 48·l + 48` of the number `Σ_r rows[r][k]·2^(64·r)`, cut from
/// the words in registers by shifts at public positions. Each product of a
/// limb (below 2^48) is at most `0.6p` in magnitude, and the sum is reduced
/// after every second one but the last, so it stays within
/// [`limb_sum_bound`] (below 2^52) until made canonical. `init < p < 2^50`, at
/// most [`MAX_LIMB_ROWS`] rows, each as long as `out`, and `⌈64·R/48⌉` or
/// one fewer limbs for `R` rows; `false` (nothing done) otherwise or
/// without AVX2 + FMA. Constant time: no branch on the values, and the
/// scalar tail takes Shoup products.
pub(crate) fn dot_const_limbs64(
    p: u64,
    init: u64,
    out: &mut [u64],
    rows: &[&[u64]],
    consts: &[Shoup52],
) -> bool {
    let Some(simd) = token() else {
        return false;
    };
    if !(3..MAX_PRIME).contains(&p)
        || init >= p
        || rows.is_empty()
        || rows.len() > MAX_LIMB_ROWS
        || rows.iter().any(|r| r.len() != out.len())
        || consts.iter().any(|c| c.w >= p)
    {
        return false;
    }
    let lanes = Lanes::new(simd, p as f64, 1.0 / p as f64);
    // A first constant of 1 (as `2^0 mod p` always is) is an addition.
    let unit = consts.first().is_some_and(|c| c.w == 1);
    macro_rules! run {
        ($r:literal, $l:literal) => {
            if unit {
                simd.vectorize(Limbs::<$r, $l, true> {
                    lanes,
                    p,
                    init,
                    out,
                    rows,
                    consts,
                })
            } else {
                simd.vectorize(Limbs::<$r, $l, false> {
                    lanes,
                    p,
                    init,
                    out,
                    rows,
                    consts,
                })
            }
        };
    }
    // One kernel per shape, so that the limb loop unrolls with constant
    // shifts: every flooding width up to 255 bits.
    match (rows.len(), consts.len()) {
        (1, 1) => run!(1, 1),
        (1, 2) => run!(1, 2),
        (2, 2) => run!(2, 2),
        (2, 3) => run!(2, 3),
        (3, 3) => run!(3, 3),
        (3, 4) => run!(3, 4),
        (4, 5) => run!(4, 5),
        (4, 6) => run!(4, 6),
        _ => return false,
    }
    true
}

/// [`dot_const_limbs64`] for `R` rows and `L` limbs, as pulp's vectorised
/// operation (see [`MulAcc`]); `UNIT`: the first constant is 1, so the
/// first limb (below 2^48) is added without a product.
struct Limbs<'a, const R: usize, const L: usize, const UNIT: bool> {
    lanes: Lanes,
    p: u64,
    init: u64,
    out: &'a mut [u64],
    rows: &'a [&'a [u64]],
    consts: &'a [Shoup52],
}

impl<const R: usize, const L: usize, const UNIT: bool> pulp::NullaryFnOnce
    for Limbs<'_, R, L, UNIT>
{
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let Self {
            lanes: k,
            p,
            init,
            out,
            rows,
            consts,
        } = self;
        let sum = LimbSum::<R, L, UNIT>::new(k, init, consts);
        let zero = k.simd.avx._mm256_setzero_si256();
        let rows4: [&[[u64; 4]]; R] = core::array::from_fn(|r| {
            rows.get(r)
                .map_or(&[][..], |row| pulp::as_arrays::<4, u64>(row).0)
        });
        let len = out.len();
        let (out4, out_tail) = pulp::as_arrays_mut::<4, u64>(out);
        for (lane, o) in out4.iter_mut().enumerate() {
            let w: [__m256i; R] = core::array::from_fn(|r| {
                rows4
                    .get(r)
                    .and_then(|row| row.get(lane))
                    .map_or(zero, |x| cast(*x))
            });
            *o = cast(k.to_bits(k.canonical(sum.of(w))));
        }
        // The tail (shorter than four): Shoup products in scalar
        // arithmetic, as the IFMA kernel's.
        limbs_tail(p, init, out_tail, len, rows, consts);
    }
}

/// The limb sum of [`dot_const_limbs64`] for four values, `R` rows and `L`
/// limbs: `init + Σ_l limb_l·consts[l]`, not canonical, at most
/// [`limb_sum_bound`] in magnitude: the sum is reduced after every second
/// limb but the last (the last reduction is the caller's: `canonical`, or
/// the forward NTT's schedule started from that bound). `UNIT`: the first
/// constant is 1, so the first limb (below 2^48) is added without a
/// product. The products take their quotients from `consts[l]/p`
/// ([`Lanes::mul_quotient`]), off the dependency chain. The forward NTT's
/// first pass ([`crate::ntt`]) takes flooding noise through it without
/// storing the residues. Constant time.
#[derive(Clone, Copy)]
pub(crate) struct LimbSum<const R: usize, const L: usize, const UNIT: bool> {
    k: Lanes,
    init: __m256d,
    ws: [__m256d; L],
    /// `ws[l]·(1/p)`, the quotient estimates ([`Lanes::over_p`]).
    ws_q: [__m256d; L],
    mask: __m256i,
}

impl<const R: usize, const L: usize, const UNIT: bool> LimbSum<R, L, UNIT> {
    /// For `init < p` and the constants `consts` (at least `L`; below `p`).
    #[inline(always)]
    pub(crate) fn new(k: Lanes, init: u64, consts: &[Shoup52]) -> Self {
        let ws: [__m256d; L] =
            core::array::from_fn(|l| k.splat(consts.get(l).map_or(0.0, |c| c.w as f64)));
        Self {
            k,
            init: k.splat(init as f64),
            ws,
            ws_q: ws.map(|w| k.over_p(w)),
            mask: k.simd.avx._mm256_set1_epi64x(LIMB_MASK as i64),
        }
    }

    /// The sum for the four values whose 64-bit words (least significant
    /// row first) are `w`.
    #[inline(always)]
    pub(crate) fn of(&self, w: [__m256i; R]) -> __m256d {
        let k = self.k;
        let avx2 = k.simd.avx2;
        let zero = k.simd.avx._mm256_setzero_si256();
        let mut acc = self.init;
        for (l, &c) in self.ws.iter().enumerate() {
            let (word, shift) = ((LIMB_BITS * l) / 64, ((LIMB_BITS * l) % 64) as i64);
            let low = w.get(word).copied().unwrap_or(zero);
            let high = w.get(word + 1).copied().unwrap_or(zero);
            // A shift by 64 (shift = 0) gives zero, as wanted.
            let x = avx2._mm256_and_si256(
                avx2._mm256_or_si256(
                    avx2._mm256_srlv_epi64(low, k.simd.avx._mm256_set1_epi64x(shift)),
                    avx2._mm256_sllv_epi64(high, k.simd.avx._mm256_set1_epi64x(64 - shift)),
                ),
                self.mask,
            );
            // The first limb alone: init + x < p + 2^48 ([`limb_sum_bound`]).
            acc = if UNIT && l == 0 {
                k.add(acc, k.int_to_f64(x))
            } else {
                let q = self.ws_q.get(l).copied().unwrap_or(c);
                k.add(acc, k.mul_quotient(k.int_to_f64(x), c, q))
            };
            if l % 2 == 1 && l + 1 < L {
                acc = k.reduce(acc);
            }
        }
        acc
    }
}

/// The largest magnitude [`LimbSum::of`] returns modulo `p`: `init + limb_0
/// + product` (`init < p`, the limb below 2^48, a product of a limb below
/// 2^48 at most `p·(1/2 + 3.01·2^-53·2^48)`), or after a reduction (to
/// `p/2 + 2.01·2^-53·b`) at most two more products.
pub(crate) fn limb_sum_bound(p: f64) -> f64 {
    let limb = (1u64 << LIMB_BITS) as f64;
    let product = p * (0.5 + 3.01 * limb / (2.0 * BOUND)) + 1.0;
    let two = p + limb + product;
    let reduced = p * 0.5 + 2.01 * two / (2.0 * BOUND) + 1.0;
    two.max(reduced + 2.0 * product)
}

/// `acc0 += Σ_g x[g]⊙w0[g]`, `acc1 += Σ_g x[g]⊙w1[g]` modulo `q` in one
/// pass (the key switch's products with both key halves): each sum is held
/// in a register, reduced only where the next product could take it past
/// 2^53 ([`reductions`]; for primes below 2^45 never before the end), and
/// written once; two vectors of four coefficients side by side. `false`
/// (nothing written) without AVX2 + FMA, for `q ≥ 2^50` or rows of other
/// lengths or number. All values below `q`.
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
    // The accumulator (below q) is the first term: 1 times a row below q.
    let Some(one) = Shoup52::new(1, q) else {
        return false;
    };
    let Some(top) = Shoup52::new(q - 1, q) else {
        return false;
    };
    let mut consts = vec![one];
    consts.extend(x.iter().map(|_| top));
    let reduce_after = reductions(q, &consts, &vec![q; consts.len()]);
    simd.vectorize(Dot2 {
        lanes: Lanes::new(simd, q as f64, 1.0 / q as f64),
        q,
        acc0,
        acc1,
        x,
        w0,
        w1,
        reduce_after: reduce_after.get(1..).unwrap_or_default(),
    });
    true
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
    /// Per digit, whether the sums are reduced after its products.
    reduce_after: &'a [bool],
}

/// Rows as arrays of eight (tails left out).
#[inline(always)]
fn octets<'a>(rows: &[&'a [u64]]) -> Vec<&'a [[u64; 8]]> {
    rows.iter()
        .map(|r| pulp::as_arrays::<8, u64>(r).0)
        .collect()
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
            reduce_after,
        } = self;
        let (x8, w08, w18) = (octets(x), octets(w0), octets(w1));
        let (a08, tail0) = pulp::as_arrays_mut::<8, u64>(acc0);
        let (a18, tail1) = pulp::as_arrays_mut::<8, u64>(acc1);
        for (c, (a0, a1)) in a08.iter_mut().zip(a18.iter_mut()).enumerate() {
            let ([a0l, a0h], [a1l, a1h]): ([[u64; 4]; 2], [[u64; 4]; 2]) = (cast(*a0), cast(*a1));
            let (mut s0l, mut s0h) = (k.load(&a0l, true), k.load(&a0h, true));
            let (mut s1l, mut s1h) = (k.load(&a1l, true), k.load(&a1h, true));
            let digits = x8.iter().zip(&w08).zip(&w18).zip(reduce_after);
            for (((xr, w0r), w1r), &reduce) in digits {
                let (Some(xv), Some(u), Some(v)) = (xr.get(c), w0r.get(c), w1r.get(c)) else {
                    continue;
                };
                let [xl, xh]: [[u64; 4]; 2] = cast(*xv);
                let [ul, uh]: [[u64; 4]; 2] = cast(*u);
                let [vl, vh]: [[u64; 4]; 2] = cast(*v);
                let (xl, xh) = (k.load(&xl, true), k.load(&xh, true));
                s0l = k.add(s0l, k.mul(xl, k.load(&ul, true)));
                s0h = k.add(s0h, k.mul(xh, k.load(&uh, true)));
                s1l = k.add(s1l, k.mul(xl, k.load(&vl, true)));
                s1h = k.add(s1h, k.mul(xh, k.load(&vh, true)));
                if reduce {
                    (s0l, s0h) = (k.reduce(s0l), k.reduce(s0h));
                    (s1l, s1h) = (k.reduce(s1l), k.reduce(s1h));
                }
            }
            // Written out, not as a closure: a closure is compiled without
            // the target features, and its intrinsics become calls.
            let (y0l, y0h): ([u64; 4], [u64; 4]) = (
                cast(k.to_bits(k.canonical(s0l))),
                cast(k.to_bits(k.canonical(s0h))),
            );
            let (y1l, y1h): ([u64; 4], [u64; 4]) = (
                cast(k.to_bits(k.canonical(s1l))),
                cast(k.to_bits(k.canonical(s1h))),
            );
            *a0 = cast([y0l, y0h]);
            *a1 = cast([y1l, y1h]);
        }
        let done = a08.len() * 8;
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
    use rand::{RngCore, SeedableRng};

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
                for len in [7usize, 64, 83] {
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

    /// Limb dots equal the exact sums for every shape, on random words and
    /// on all-ones words with the largest constants and start, each also
    /// with a first constant of 1 (the flooding noise's `2^0`, added
    /// without a product).
    #[test]
    fn limb_dots_match_exact_sums() {
        if token().is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs on AVX2 + FMA CPUs"
            );
            return;
        }
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
        for p in [(1u64 << 30) - 35, (1u64 << 50) - 27] {
            let m = Modulus::new(p).unwrap();
            for (r, l) in [
                (1, 1),
                (1, 2),
                (2, 2),
                (2, 3),
                (3, 3),
                (3, 4),
                (4, 5),
                (4, 6),
            ] {
                for (extreme, unit) in [(false, false), (true, false), (false, true), (true, true)]
                {
                    let len = 67;
                    let rows: Vec<Vec<u64>> = (0..r)
                        .map(|_| {
                            (0..len)
                                .map(|_| if extreme { u64::MAX } else { rng.next_u64() })
                                .collect()
                        })
                        .collect();
                    let mut ws = if extreme {
                        vec![p - 1; l]
                    } else {
                        m.random_vec(l, &mut rng)
                    };
                    if unit {
                        ws[0] = 1;
                    }
                    let consts: Vec<Shoup52> =
                        ws.iter().map(|&w| Shoup52::new(w, p).unwrap()).collect();
                    let init = if extreme { p - 1 } else { p / 3 };
                    let mut out = vec![0; len];
                    assert!(dot_const_limbs64(p, init, &mut out, &refs(&rows), &consts));
                    for (c, &o) in out.iter().enumerate() {
                        let word = |i: usize| rows.get(i).map_or(0, |row| row[c]);
                        let exact = (0..l).fold(u128::from(init), |acc, i| {
                            let (w, shift) = ((48 * i) / 64, (48 * i) % 64);
                            let wide = u128::from(word(w)) | u128::from(word(w + 1)) << 64;
                            let limb = (wide >> shift) & ((1 << 48) - 1);
                            (acc + limb * u128::from(ws[i])) % u128::from(p)
                        });
                        assert_eq!(u128::from(o), exact, "p {p}, shape ({r}, {l}), column {c}");
                    }
                }
            }
            let mut out = vec![0; 8];
            let one = [vec![0u64; 8]];
            let c = [Shoup52::new(1, p).unwrap(); 3];
            assert!(
                !dot_const_limbs64(p, 0, &mut out, &refs(&one), &c),
                "shape (1, 3)"
            );
            assert!(
                !dot_const_limbs64(p, p, &mut out, &refs(&one), &c[..1]),
                "init p"
            );
        }
    }

    /// Dots of rows below given bounds equal the exact sums, on random rows
    /// and on products that all leave about −p/2, for primes where the sum
    /// is never reduced before the end and where it is every few products;
    /// and the reductions follow the bounds.
    #[test]
    fn bounded_dots_match_exact_sums() {
        if token().is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs on AVX2 + FMA CPUs"
            );
            return;
        }
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(13);
        for p in [(1u64 << 44) - 21, (1u64 << 50) - 27] {
            let m = Modulus::new(p).unwrap();
            for terms in [1usize, 3, 12, 40] {
                let bounds: Vec<u64> = (0..terms)
                    .map(|i| match i % 3 {
                        0 => p,
                        1 => 1 << 52,
                        _ => 1 << 25,
                    })
                    .collect();
                for extreme in [false, true] {
                    let len = 35;
                    let rows: Vec<Vec<u64>> = bounds
                        .iter()
                        .map(|&b| {
                            (0..len)
                                // (p − 1)/2 times p − 1 leaves −(p − 1)/2: the
                                // signed products all near −p/2, the sum's
                                // worst growth.
                                .map(|_| match extreme {
                                    true => ((p - 1) / 2).min(b - 1),
                                    false => rng.next_u64() % b,
                                })
                                .collect()
                        })
                        .collect();
                    let consts: Vec<Shoup52> = (0..terms)
                        .map(|_| {
                            let w = if extreme {
                                p - 1
                            } else {
                                m.random_vec(1, &mut rng)[0]
                            };
                            Shoup52::new(w, p).unwrap()
                        })
                        .collect();
                    let mut out = vec![0; len];
                    assert!(dot_const_rows_below(
                        p,
                        &mut out,
                        &refs(&rows),
                        &consts,
                        &bounds
                    ));
                    for (c, &o) in out.iter().enumerate() {
                        let exact = rows.iter().zip(&consts).fold(0u128, |acc, (r, w)| {
                            (acc + u128::from(r[c]) * u128::from(w.w)) % u128::from(p)
                        });
                        assert_eq!(u128::from(o), exact, "p {p}, {terms} terms, column {c}");
                    }
                }
                let reduced = reductions(p, &vec![Shoup52::new(p - 1, p).unwrap(); terms], &bounds);
                assert!(!reduced.last().copied().unwrap_or(false));
                if p < 1 << 45 || terms <= 3 {
                    assert!(reduced.iter().all(|&r| !r), "p {p}, {terms} terms");
                } else {
                    assert!(reduced.iter().any(|&r| r), "p {p}, {terms} terms");
                }
            }
        }
    }

    /// A limb sum, before any final reduction, stays within
    /// [`limb_sum_bound`] (which the NTT's schedule starts from) with the
    /// largest first limb, start and constants and random further limbs,
    /// for every shape, a 30- and a 50-bit prime; with two limbs the widest
    /// of 2048 sums comes within `p` of the bound (so the bound is not
    /// loose by more than the products' spread).
    #[test]
    fn limb_sums_stay_within_their_bound() {
        let Some(simd) = token() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs on AVX2 + FMA CPUs"
            );
            return;
        };
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(13);
        /// The largest magnitude over 2048 random columns.
        fn widest<const R: usize, const L: usize>(k: Lanes, p: u64, rng: &mut impl RngCore) -> f64 {
            let consts: Vec<Shoup52> = (0..L)
                .map(|l| Shoup52::new(if l == 0 { 1 } else { p - 1 }, p).unwrap())
                .collect();
            let sum = LimbSum::<R, L, true>::new(k, p - 1, &consts);
            let mut widest = 0.0f64;
            for _ in 0..512 {
                let words: [__m256i; R] = core::array::from_fn(|r| {
                    let mut w = [0u64; 4];
                    for x in &mut w {
                        *x = rng.next_u64();
                        if r == 0 {
                            *x |= LIMB_MASK;
                        }
                    }
                    cast(w)
                });
                let v: [f64; 4] = cast(sum.of(words));
                widest = v.iter().fold(widest, |m, x| m.max(x.abs()));
            }
            widest
        }
        for p in [(1u64 << 30) - 35, (1u64 << 50) - 27] {
            let k = Lanes::new(simd, p as f64, 1.0 / p as f64);
            let bound = limb_sum_bound(p as f64);
            let widest = [
                widest::<1, 1>(k, p, &mut rng),
                widest::<1, 2>(k, p, &mut rng),
                widest::<2, 2>(k, p, &mut rng),
                widest::<2, 3>(k, p, &mut rng),
                widest::<3, 4>(k, p, &mut rng),
                widest::<4, 5>(k, p, &mut rng),
                widest::<4, 6>(k, p, &mut rng),
            ];
            for (shape, w) in widest.iter().enumerate() {
                assert!(*w <= bound, "p {p}, shape {shape}: {w} > {bound}");
            }
            assert!(
                widest[2] > bound - p as f64,
                "p {p}: {} far below {bound}",
                widest[2]
            );
        }
    }

    fn refs(m: &[Vec<u64>]) -> Vec<&[u64]> {
        m.iter().map(Vec::as_slice).collect()
    }

    /// Residue pairs `(x, w)` whose product the FMA kernel leaves odd and
    /// below `−0.48q` (found by running its arithmetic in scalar `f64`).
    fn adverse_pairs(q: u64, rng: &mut rand_chacha::ChaCha20Rng) -> Vec<(u64, u64)> {
        let (qf, q_inv) = (q as f64, 1.0 / q as f64);
        let mut pairs = Vec::new();
        while pairs.len() < 16 {
            let (x, w) = (rng.next_u64() % q, rng.next_u64() % q);
            let (xf, wf) = (x as f64, w as f64);
            let h = xf * wf;
            let l = xf.mul_add(wf, -h);
            let c = (h * q_inv).round_ties_even();
            let r = (-c).mul_add(qf, h) + l;
            if r < -0.48 * qf && (r as i64) % 2 != 0 {
                pairs.push((x, w));
            }
        }
        pairs
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
            for digits in [1usize, 2, 7, 20] {
                for len in [6usize, 64, 75] {
                    // Extreme: pairs whose products the kernel leaves near
                    // −q/2 and odd (the sums' worst growth, past what f64
                    // holds without the reductions), added to 1.
                    let pairs = adverse_pairs(q, &mut rng);
                    let pick = |g: usize, c: usize| pairs[(g * 7 + c) % pairs.len()];
                    for extreme in [false, true] {
                        let grid = |f: &dyn Fn(usize, usize) -> u64| -> Vec<Vec<u64>> {
                            (0..digits)
                                .map(|g| (0..len).map(|c| f(g, c)).collect())
                                .collect()
                        };
                        let (x, w0) = if extreme {
                            (grid(&|g, c| pick(g, c).0), grid(&|g, c| pick(g, c).1))
                        } else {
                            let r = m.random_vec(2 * digits * len, &mut rng);
                            (
                                grid(&|g, c| r[g * len + c]),
                                grid(&|g, c| r[(digits + g) * len + c]),
                            )
                        };
                        let w1: Vec<Vec<u64>> =
                            (0..digits).map(|_| m.random_vec(len, &mut rng)).collect();
                        let a0 = if extreme {
                            vec![1; len]
                        } else {
                            m.random_vec(len, &mut rng)
                        };
                        let a1 = m.random_vec(len, &mut rng);
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
