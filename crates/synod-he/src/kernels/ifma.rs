//! Modular multiply-accumulate on eight residues at a time with AVX-512 IFMA
//! (`vpmadd52{lo,hi}uq`: the low and high 52 bits of a 52 × 52-bit
//! product), for primes below 2^50 — every ciphertext prime of synod's
//! parameter sets (43 to 49 bits) and the HPS extension primes.
//!
//! The reduction is Barrett's, in the form Intel HEXL uses for its IFMA
//! element-wise products (Boemer et al., "Intel HEXL: Accelerating
//! Homomorphic Encryption with Intel AVX512-IFMA52", WAHC 2021, §4): for a
//! `b`-bit prime `q` (`2^(b−1) < q < 2^b`, `b ≤ 50`) and `x, y < q`, with
//! `P = x·y = H·2^52 + L`,
//!
//! ```text
//! T = ⌊P / 2^(b−1)⌋ = H·2^(53−b) + ⌊L / 2^(b−1)⌋     (< 2^(b+1) ≤ 2^51)
//! μ = ⌊2^(b+51) / q⌋                                   (< 2^52)
//! Q = ⌊T·μ / 2^52⌋                                     (madd52hi)
//! r = (L − Q·q) mod 2^52                               (madd52lo)
//! ```
//!
//! `Q ≤ ⌊P/q⌋` because `T·μ/2^52 ≤ P/q`, and `Q ≥ ⌊P/q⌋ − 2` because the two
//! truncations lose less than `P/2^(b+51) + 2^(b−1)/q < 1/2 + 1`; so the true
//! remainder `r ∈ [0, 3q)` is below `2^52` and exact in 52-bit arithmetic.
//! Two branch-free conditional subtractions (`min(r, r − q)` in unsigned
//! arithmetic) give `x·y mod q` — the same value as `Modulus::mul`, so the
//! callers' results are bit-for-bit the scalar ones (tested). No branch or
//! memory access depends on the residues.
//!
//! **Sums reduced once.** The same steps reduce a sum of products
//! `P = Σ x_g·y_g` accumulated as its `madd52lo` and `madd52hi` halves (the
//! carry of the low half above 52 bits moved into the high one), as long as
//! `P < 2^(b+51)`: then `T < 2^52` (so `madd52hi` reads all of it), the two
//! truncations lose less than `P/2^(b+51) + 2^(b−1)/q < 1 + 1`, and the
//! quotient is again at most two short. Key switching sums a digit's products this way
//! (at most `2^(50−b)` of them, each below `q²`), and so do the base
//! conversion and scaling where their callers bound the rows
//! (`dot_const_rows_below`): two IFMA products per term and one reduction
//! per sum, instead of a reduction and a modular addition per term.
//!
//! Products with a precomputed constant whose sum may not stay below that
//! bound use Shoup's form instead ([`super::Shoup52`]): three IFMA
//! products and one conditional subtraction.

use fhe_math::zq::Modulus;
use pulp::{cast, u64x8};

use super::Shoup52;

pulp::simd_type! {
    /// AVX-512 with IFMA (Ice Lake and later, Zen 4 and later).
    pub(crate) struct V4Ifma {
        pub sse: "sse",
        pub sse2: "sse2",
        pub fxsr: "fxsr",
        pub sse3: "sse3",
        pub ssse3: "ssse3",
        pub sse4_1: "sse4.1",
        pub sse4_2: "sse4.2",
        pub popcnt: "popcnt",
        pub avx: "avx",
        pub avx2: "avx2",
        pub bmi1: "bmi1",
        pub bmi2: "bmi2",
        pub fma: "fma",
        pub lzcnt: "lzcnt",
        pub avx512f: "avx512f",
        pub avx512bw: "avx512bw",
        pub avx512cd: "avx512cd",
        pub avx512dq: "avx512dq",
        pub avx512vl: "avx512vl",
        pub avx512ifma: "avx512ifma",
    }
}

/// The largest prime (exclusive) the kernels here accept.
pub(crate) const MAX_PRIME: u64 = super::IFMA_MAX_PRIME;

/// The IFMA token, if this CPU has it and the environment variable
/// `SYNOD_NO_IFMA` is unset (both read once). With `SYNOD_NO_IFMA` set every
/// kernel of synod's takes its portable path, so one IFMA machine can test
/// the code that CPUs without IFMA run. tfhe-ntt's NTT dispatches on its
/// own and keeps its IFMA code, so timings under the flag are not those of
/// a CPU without IFMA.
pub(crate) fn token() -> Option<V4Ifma> {
    static DISABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *DISABLED.get_or_init(|| std::env::var_os("SYNOD_NO_IFMA").is_some()) {
        return None;
    }
    V4Ifma::try_new()
}

/// Barrett constants of one prime below 2^50.
#[derive(Clone, Copy)]
struct Barrett {
    q: u64,
    /// `53 − b`: the shift of the high half into `T`.
    hi_shift: u64,
    /// `b − 1`: the shift of the low half into `T`.
    lo_shift: u64,
    mu: u64,
}

impl Barrett {
    fn new(q: u64) -> Option<Self> {
        if !(3..MAX_PRIME).contains(&q) {
            return None;
        }
        let b = u64::from(64 - q.leading_zeros());
        let mu = u64::try_from((1u128 << (b + 51)) / u128::from(q)).ok()?;
        // μ < 2^52 for every q that is not a power of two (IFMA reads 52 bits).
        if mu >= 1 << 52 {
            return None;
        }
        Some(Self {
            q,
            hi_shift: 53 - b,
            lo_shift: b - 1,
            mu,
        })
    }
}

/// What to do with each product.
#[derive(Clone, Copy)]
enum Accumulate {
    Add,
    Sub,
}

const MASK52: u64 = (1 << 52) - 1;

impl V4Ifma {
    /// `x·y mod q` for eight lanes (`x, y < q`).
    #[inline(always)]
    fn mul_mod(self, c: &Barrett, x: u64x8, y: u64x8) -> u64x8 {
        let f = self.avx512f;
        let m = self.avx512ifma;
        let zero = f._mm512_setzero_si512();
        let (x, y) = (cast(x), cast(y));
        let lo = m._mm512_madd52lo_epu64(zero, x, y);
        let hi = m._mm512_madd52hi_epu64(zero, x, y);
        cast(self.barrett(c, hi, lo))
    }

    /// `P mod q` for eight lanes of `P = hi·2^52 + lo` with `lo < 2^52` and
    /// `P < 2^(b+51)`: Barrett's reduction as the module doc states it.
    #[inline(always)]
    fn barrett(
        self,
        c: &Barrett,
        hi: core::arch::x86_64::__m512i,
        lo: core::arch::x86_64::__m512i,
    ) -> core::arch::x86_64::__m512i {
        let f = self.avx512f;
        let m = self.avx512ifma;
        let zero = f._mm512_setzero_si512();
        let t = f._mm512_or_si512(
            f._mm512_sllv_epi64(hi, f._mm512_set1_epi64(c.hi_shift as i64)),
            f._mm512_srlv_epi64(lo, f._mm512_set1_epi64(c.lo_shift as i64)),
        );
        let q = f._mm512_set1_epi64(c.q as i64);
        let quotient = m._mm512_madd52hi_epu64(zero, t, f._mm512_set1_epi64(c.mu as i64));
        let r = f._mm512_and_si512(
            f._mm512_sub_epi64(lo, m._mm512_madd52lo_epu64(zero, quotient, q)),
            f._mm512_set1_epi64(MASK52 as i64),
        );
        let r = f._mm512_min_epu64(r, f._mm512_sub_epi64(r, q));
        f._mm512_min_epu64(r, f._mm512_sub_epi64(r, q))
    }

    /// `acc ± x·y mod q` for eight lanes (all below `q`).
    #[inline(always)]
    fn mul_acc(self, c: &Barrett, op: Accumulate, acc: u64x8, x: u64x8, y: u64x8) -> u64x8 {
        let f = self.avx512f;
        let r = cast(self.mul_mod(c, x, y));
        let (acc, q) = (cast(acc), f._mm512_set1_epi64(c.q as i64));
        cast(match op {
            Accumulate::Add => {
                let s = f._mm512_add_epi64(acc, r);
                f._mm512_min_epu64(s, f._mm512_sub_epi64(s, q))
            }
            Accumulate::Sub => {
                let d = f._mm512_sub_epi64(acc, r);
                f._mm512_min_epu64(d, f._mm512_add_epi64(d, q))
            }
        })
    }
}

/// `row[k] ± a'[k]·b[k] mod q` with IFMA, where `a' = a` or, with a
/// `scale` `c`, `a' = a·c mod q` (a 52-bit Shoup product in the same pass);
/// `false` (nothing done) when the CPU lacks IFMA or `q ≥ 2^50`, for the
/// caller's scalar path. All values must be below `q` and the slices of
/// equal length.
fn mul_acc_into(
    q: &Modulus,
    op: Accumulate,
    row: &mut [u64],
    a: &[u64],
    scale: Option<Shoup52>,
    b: &[u64],
) -> bool {
    let (Some(simd), Some(c)) = (token(), Barrett::new(**q)) else {
        return false;
    };
    if a.len() != row.len() || b.len() != row.len() {
        return false;
    }
    let p = **q;
    simd.vectorize(
        #[inline(always)]
        || {
            let (row8, row_tail) = pulp::as_arrays_mut::<8, u64>(row);
            let (a8, a_tail) = pulp::as_arrays::<8, u64>(a);
            let (b8, b_tail) = pulp::as_arrays::<8, u64>(b);
            for ((r, x), y) in row8.iter_mut().zip(a8).zip(b8) {
                let x = match scale {
                    Some(w) => cast(simd.mul_const(p, w, cast(*x))),
                    None => cast(*x),
                };
                let v = simd.mul_acc(&c, op, cast(*r), x, cast(*y));
                *r = cast(v);
            }
            for ((r, &x), &y) in row_tail.iter_mut().zip(a_tail).zip(b_tail) {
                let x = scale.map_or(x, |w| q.mul(x, w.w));
                *r = match op {
                    Accumulate::Add => q.add(*r, q.mul(x, y)),
                    Accumulate::Sub => q.sub(*r, q.mul(x, y)),
                };
            }
        },
    );
    true
}

/// The tensor of `(a0, a1)` and `(b0, b1)` modulo one prime, in one pass
/// and in place: afterwards `a0 = a0·b0`, `b0 = a0·b1 + a1·b0` and
/// `a1 = a1·b1` (mod `q`, of the values before), with IFMA; `false`
/// (nothing written) when the CPU lacks IFMA, `q ≥ 2^50` or the lengths
/// differ. All inputs must be below `q`.
pub(crate) fn tensor_in_place(
    q: &Modulus,
    a0: &mut [u64],
    a1: &mut [u64],
    b0: &mut [u64],
    b1: &[u64],
) -> bool {
    let (Some(simd), Some(c)) = (token(), Barrett::new(**q)) else {
        return false;
    };
    let n = a0.len();
    if a1.len() != n || b0.len() != n || b1.len() != n {
        return false;
    }
    simd.vectorize(
        #[inline(always)]
        || {
            let (a0_8, a0_t) = pulp::as_arrays_mut::<8, u64>(a0);
            let (a1_8, a1_t) = pulp::as_arrays_mut::<8, u64>(a1);
            let (b0_8, b0_t) = pulp::as_arrays_mut::<8, u64>(b0);
            let (b1_8, b1_t) = pulp::as_arrays::<8, u64>(b1);
            let lanes = a0_8.iter_mut().zip(a1_8.iter_mut());
            for ((x0, x1), (y0, y1)) in lanes.zip(b0_8.iter_mut().zip(b1_8)) {
                (*x0, *y0, *x1) = simd.tensor8(&c, [*x0, *x1, *y0, *y1]);
            }
            let lanes = a0_t.iter_mut().zip(a1_t.iter_mut());
            for ((x0, x1), (y0, &y1)) in lanes.zip(b0_t.iter_mut().zip(b1_t)) {
                (*x0, *y0, *x1) = tensor1(q, [*x0, *x1, *y0, y1]);
            }
        },
    );
    true
}

/// [`tensor_in_place`] into other rows: `c0 = a0·b0`, `c1 = a0·b1 + a1·b0`,
/// `c2 = a1·b1` (mod `q`), the inputs unchanged; `false` (nothing written)
/// under the same conditions.
#[allow(clippy::too_many_arguments)]
pub(crate) fn tensor_into(
    q: &Modulus,
    a0: &[u64],
    a1: &[u64],
    b0: &[u64],
    b1: &[u64],
    c0: &mut [u64],
    c1: &mut [u64],
    c2: &mut [u64],
) -> bool {
    let (Some(simd), Some(c)) = (token(), Barrett::new(**q)) else {
        return false;
    };
    let n = a0.len();
    if [a1.len(), b0.len(), b1.len(), c0.len(), c1.len(), c2.len()]
        .iter()
        .any(|&l| l != n)
    {
        return false;
    }
    simd.vectorize(
        #[inline(always)]
        || {
            let (a0_8, a0_t) = pulp::as_arrays::<8, u64>(a0);
            let (a1_8, a1_t) = pulp::as_arrays::<8, u64>(a1);
            let (b0_8, b0_t) = pulp::as_arrays::<8, u64>(b0);
            let (b1_8, b1_t) = pulp::as_arrays::<8, u64>(b1);
            let (c0_8, c0_t) = pulp::as_arrays_mut::<8, u64>(c0);
            let (c1_8, c1_t) = pulp::as_arrays_mut::<8, u64>(c1);
            let (c2_8, c2_t) = pulp::as_arrays_mut::<8, u64>(c2);
            let ins = a0_8.iter().zip(a1_8).zip(b0_8.iter().zip(b1_8));
            let outs = c0_8.iter_mut().zip(c1_8.iter_mut()).zip(c2_8.iter_mut());
            for (((x0, x1), (y0, y1)), ((z0, z1), z2)) in ins.zip(outs) {
                (*z0, *z1, *z2) = simd.tensor8(&c, [*x0, *x1, *y0, *y1]);
            }
            let ins = a0_t.iter().zip(a1_t).zip(b0_t.iter().zip(b1_t));
            let outs = c0_t.iter_mut().zip(c1_t.iter_mut()).zip(c2_t.iter_mut());
            for (((&u0, &u1), (&v0, &v1)), ((z0, z1), z2)) in ins.zip(outs) {
                (*z0, *z1, *z2) = tensor1(q, [u0, u1, v0, v1]);
            }
        },
    );
    true
}

/// One coefficient's tensor `(a0·b0, a0·b1 + a1·b0, a1·b1) mod q` from
/// `[a0, a1, b0, b1]` (the tails of [`tensor_in_place`] and [`tensor_into`]).
#[inline(always)]
fn tensor1(q: &Modulus, [a0, a1, b0, b1]: [u64; 4]) -> (u64, u64, u64) {
    (
        q.mul(a0, b0),
        q.add(q.mul(a0, b1), q.mul(a1, b0)),
        q.mul(a1, b1),
    )
}

impl V4Ifma {
    /// [`tensor1`] for eight coefficients.
    #[inline(always)]
    fn tensor8(
        self,
        c: &Barrett,
        [a0, a1, b0, b1]: [[u64; 8]; 4],
    ) -> ([u64; 8], [u64; 8], [u64; 8]) {
        let (u0, u1, v0, v1) = (cast(a0), cast(a1), cast(b0), cast(b1));
        let cross = self.mul_mod(c, u0, v1);
        (
            cast(self.mul_mod(c, u0, v0)),
            cast(self.mul_acc(c, Accumulate::Add, cross, u1, v0)),
            cast(self.mul_mod(c, u1, v1)),
        )
    }
}

impl V4Ifma {
    /// `P mod q` for eight lanes of `P = hi·2^52 + lo`, where `hi` and `lo`
    /// are the sums of `madd52hi` and `madd52lo` over products whose total
    /// is below `2^(b+51)` (the module doc's sums; `lo` below `2^63`): the
    /// carry of `lo` above 52 bits moves into `hi`, then [`Self::barrett`].
    #[inline(always)]
    fn reduce_sum(
        self,
        c: &Barrett,
        hi: core::arch::x86_64::__m512i,
        lo: core::arch::x86_64::__m512i,
    ) -> core::arch::x86_64::__m512i {
        let f = self.avx512f;
        let hi = f._mm512_add_epi64(hi, f._mm512_srli_epi64::<52>(lo));
        let lo = f._mm512_and_si512(lo, f._mm512_set1_epi64(MASK52 as i64));
        self.barrett(c, hi, lo)
    }
}

/// How many products of residues below a `b`-bit `q` one lazy sum may take
/// before [`V4Ifma::reduce_sum`]: `2^(50−b)`, at most 2048. For `P < G·q²`
/// the Barrett analysis of the module doc holds unchanged when
/// `P/2^(b+51) < 1/2`, that is `G ≤ 2^(50−b)`; then also `T < 2^51`. The
/// cap keeps the lanes' `lo` sums (each term below `2^52`) below `2^63`.
/// 64 for the N = 8192 primes (44 bits), 2 for the 49-bit ones.
fn lazy_group(c: &Barrett) -> usize {
    // lo_shift = b − 1.
    1 << 49u64.saturating_sub(c.lo_shift).min(11)
}

/// `acc0[k] += Σ_g x[g][k]·w0[g][k]` and `acc1[k] += Σ_g x[g][k]·w1[g][k]`
/// (mod `q`) with IFMA: a key switch's inner products with both halves of
/// the key, each `x[g]` row read once, the sums held in registers as their
/// `madd52lo`/`madd52hi` halves and reduced once per [`lazy_group`]
/// products (lazy reduction) instead of once per product. Bit-for-bit the
/// products reduced one by one (tested). `false` (nothing done) without
/// IFMA, with `q ≥ 2^50`, or rows of other lengths or counts. All values
/// must be below `q`.
pub(crate) fn dot2_add_into(
    q: &Modulus,
    acc0: &mut [u64],
    acc1: &mut [u64],
    x: &[&[u64]],
    w0: &[&[u64]],
    w1: &[&[u64]],
) -> bool {
    let (Some(simd), Some(c)) = (token(), Barrett::new(**q)) else {
        return false;
    };
    let n = acc0.len();
    let rows_fit = |rows: &[&[u64]]| rows.len() == x.len() && rows.iter().all(|r| r.len() == n);
    if acc1.len() != n || !rows_fit(x) || !rows_fit(w0) || !rows_fit(w1) {
        return false;
    }
    let group = lazy_group(&c);
    simd.vectorize(
        #[inline(always)]
        || {
            let f = simd.avx512f;
            let m = simd.avx512ifma;
            let qv = f._mm512_set1_epi64(c.q as i64);
            // Per digit: its rows of `x`, `w0` and `w1` as 8-lane arrays.
            let digits: Vec<[&[[u64; 8]]; 3]> = x
                .iter()
                .zip(w0.iter().zip(w1))
                .map(|(a, (b, d))| [a, b, d].map(|r| pulp::as_arrays::<8, u64>(r).0))
                .collect();
            let (acc0_8, acc0_t) = pulp::as_arrays_mut::<8, u64>(acc0);
            let (acc1_8, acc1_t) = pulp::as_arrays_mut::<8, u64>(acc1);
            let add = |s: core::arch::x86_64::__m512i, r: core::arch::x86_64::__m512i| {
                let s = f._mm512_add_epi64(s, r);
                f._mm512_min_epu64(s, f._mm512_sub_epi64(s, qv))
            };
            for (j, (a0, a1)) in acc0_8.iter_mut().zip(acc1_8.iter_mut()).enumerate() {
                let (mut s0, mut s1) = (cast(*a0), cast(*a1));
                for chunk in digits.chunks(group) {
                    let zero = f._mm512_setzero_si512();
                    let (mut lo0, mut hi0, mut lo1, mut hi1) = (zero, zero, zero, zero);
                    for [xg, w0g, w1g] in chunk {
                        let (Some(xv), Some(u), Some(v)) = (xg.get(j), w0g.get(j), w1g.get(j))
                        else {
                            continue;
                        };
                        let (xv, u, v) = (cast(*xv), cast(*u), cast(*v));
                        lo0 = m._mm512_madd52lo_epu64(lo0, xv, u);
                        hi0 = m._mm512_madd52hi_epu64(hi0, xv, u);
                        lo1 = m._mm512_madd52lo_epu64(lo1, xv, v);
                        hi1 = m._mm512_madd52hi_epu64(hi1, xv, v);
                    }
                    s0 = add(s0, simd.reduce_sum(&c, hi0, lo0));
                    s1 = add(s1, simd.reduce_sum(&c, hi1, lo1));
                }
                *a0 = cast(s0);
                *a1 = cast(s1);
            }
            let tail = n - acc0_t.len();
            for (k, (a0, a1)) in acc0_t.iter_mut().zip(acc1_t.iter_mut()).enumerate() {
                for ((xg, w0g), w1g) in x.iter().zip(w0).zip(w1) {
                    let (Some(&xv), Some(&u), Some(&v)) =
                        (xg.get(tail + k), w0g.get(tail + k), w1g.get(tail + k))
                    else {
                        continue;
                    };
                    *a0 = q.add(*a0, q.mul(xv, u));
                    *a1 = q.add(*a1, q.mul(xv, v));
                }
            }
        },
    );
    true
}

/// `row[k] += a[k]·b[k] mod q` with IFMA, or `false` (see [`mul_acc_into`]).
pub(crate) fn mul_add_into(q: &Modulus, row: &mut [u64], a: &[u64], b: &[u64]) -> bool {
    mul_acc_into(q, Accumulate::Add, row, a, None, b)
}

/// `row[k] −= a[k]·b[k] mod q` with IFMA, or `false` (see [`mul_acc_into`]).
pub(crate) fn mul_sub_into(q: &Modulus, row: &mut [u64], a: &[u64], b: &[u64]) -> bool {
    mul_acc_into(q, Accumulate::Sub, row, a, None, b)
}

/// `row[k] += (a[k]·c mod q)·b[k] mod q` in one pass with IFMA (all values
/// below `q`); `false` (nothing done) without IFMA, with `q ≥ 2^50` or
/// slices of different lengths.
pub(crate) fn scaled_mul_add_into(
    q: &Modulus,
    row: &mut [u64],
    a: &[u64],
    c: Shoup52,
    b: &[u64],
) -> bool {
    mul_acc_into(q, Accumulate::Add, row, a, Some(c), b)
}

impl V4Ifma {
    /// `x·c mod p` for eight lanes with `x < 2^52`, fully reduced.
    #[inline(always)]
    fn mul_const(
        self,
        p: u64,
        c: Shoup52,
        x: core::arch::x86_64::__m512i,
    ) -> core::arch::x86_64::__m512i {
        let f = self.avx512f;
        let m = self.avx512ifma;
        let zero = f._mm512_setzero_si512();
        let pv = f._mm512_set1_epi64(p as i64);
        let quotient = m._mm512_madd52hi_epu64(zero, x, f._mm512_set1_epi64(c.companion as i64));
        let r = f._mm512_and_si512(
            f._mm512_sub_epi64(
                m._mm512_madd52lo_epu64(zero, x, f._mm512_set1_epi64(c.w as i64)),
                m._mm512_madd52lo_epu64(zero, quotient, pv),
            ),
            f._mm512_set1_epi64(MASK52 as i64),
        );
        f._mm512_min_epu64(r, f._mm512_sub_epi64(r, pv))
    }
}

/// `acc + x·c mod p` in scalar arithmetic (`acc < p`, `x < 2^52`): the
/// Shoup formula of [`V4Ifma::mul_const`], for the kernels' tails; no
/// division, no branch on the values.
fn shoup_add(p: u64, c: Shoup52, acc: u64, x: u64) -> u64 {
    let quotient = (u128::from(x) * u128::from(c.companion)) >> 52;
    let r = (u128::from(x) * u128::from(c.w) - quotient * u128::from(p)) as u64;
    let r = r.min(r.wrapping_sub(p));
    let s = acc + r;
    s.min(s.wrapping_sub(p))
}

/// The tail of a dot product with constants (the last `out_tail.len()`
/// coefficients of rows of length `len`, fewer than eight) by the Shoup
/// formula in scalar arithmetic: no division, no branch on the values.
fn shoup_tail(p: u64, out_tail: &mut [u64], len: usize, rows: &[&[u64]], consts: &[Shoup52]) {
    let start = len - out_tail.len();
    for (k, o) in out_tail.iter_mut().enumerate() {
        *o = rows.iter().zip(consts).fold(0, |acc, (row, c)| {
            shoup_add(p, *c, acc, row.get(start + k).copied().unwrap_or(0))
        });
    }
}

/// The most 64-bit rows [`dot_const_limbs64`] takes (numbers below 2^256).
pub(crate) const MAX_LIMB_ROWS: usize = 4;

/// The width of the limbs [`dot_const_limbs64`] cuts: with limbs below
/// `2^48` and constants below `p < 2^50`, up to six products (a number below
/// `2^288`) and `init` sum to less than `2^(b+51)`, so the sum is reduced
/// once (the module doc's sums).
pub(crate) const LIMB_BITS: usize = 48;

pub(super) const LIMB_MASK: u64 = (1 << LIMB_BITS) - 1;

/// `out[k] = init + Σ_l limb_l(k)·consts[l] mod p`, where `limb_l(k)` is
/// bits `48·l .. 48·l + 48` of the number `Σ_r rows[r][k]·2^(64·r)` (zero
/// beyond its top row): the limbs are cut from the 64-bit words in
/// registers, by shifts at public positions, and their products summed in
/// IFMA's halves and reduced once. `init < p`, `p < 2^50`, at most
/// [`MAX_LIMB_ROWS`] rows, each as long as `out`, and `⌈64·R/48⌉` or one
/// fewer limbs for `R` rows; `false` (nothing done) otherwise or without
/// IFMA.
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
    let Some(c) = Barrett::new(p) else {
        return false;
    };
    if init >= p
        || rows.is_empty()
        || rows.len() > MAX_LIMB_ROWS
        || rows.iter().any(|r| r.len() != out.len())
    {
        return false;
    }
    // One kernel per shape, so that the limb loop unrolls with constant
    // shifts: every flooding width up to 255 bits.
    match (rows.len(), consts.len()) {
        (1, 1) => limbs64::<1, 1>(simd, &c, init, out, rows, consts),
        (1, 2) => limbs64::<1, 2>(simd, &c, init, out, rows, consts),
        (2, 2) => limbs64::<2, 2>(simd, &c, init, out, rows, consts),
        (2, 3) => limbs64::<2, 3>(simd, &c, init, out, rows, consts),
        (3, 3) => limbs64::<3, 3>(simd, &c, init, out, rows, consts),
        (3, 4) => limbs64::<3, 4>(simd, &c, init, out, rows, consts),
        (4, 5) => limbs64::<4, 5>(simd, &c, init, out, rows, consts),
        (4, 6) => limbs64::<4, 6>(simd, &c, init, out, rows, consts),
        _ => return false,
    }
    true
}

/// [`dot_const_limbs64`] for `R` rows and `L` limbs (checked by the caller).
fn limbs64<const R: usize, const L: usize>(
    simd: V4Ifma,
    c: &Barrett,
    init: u64,
    out: &mut [u64],
    rows: &[&[u64]],
    consts: &[Shoup52],
) {
    let p = c.q;
    let consts: [Shoup52; L] = core::array::from_fn(|l| {
        consts
            .get(l)
            .copied()
            .unwrap_or(Shoup52 { w: 0, companion: 0 })
    });
    simd.vectorize(
        #[inline(always)]
        || {
            let f = simd.avx512f;
            let m = simd.avx512ifma;
            let mask = f._mm512_set1_epi64(LIMB_MASK as i64);
            let zero = f._mm512_setzero_si512();
            let start = f._mm512_set1_epi64(init as i64);
            let ws: [core::arch::x86_64::__m512i; L] =
                consts.map(|c| f._mm512_set1_epi64(c.w as i64));
            let len = out.len();
            let rows8: [&[[u64; 8]]; R] = core::array::from_fn(|r| {
                rows.get(r)
                    .map_or(&[][..], |row| pulp::as_arrays::<8, u64>(row).0)
            });
            let (out8, out_tail) = pulp::as_arrays_mut::<8, u64>(out);
            for (lane, o) in out8.iter_mut().enumerate() {
                let w: [core::arch::x86_64::__m512i; R] = core::array::from_fn(|r| {
                    cast(
                        rows8
                            .get(r)
                            .and_then(|row| row.get(lane))
                            .copied()
                            .unwrap_or([0; 8]),
                    )
                });
                let (mut lo, mut hi) = (start, zero);
                for (l, &c) in ws.iter().enumerate() {
                    let (word, shift) = ((LIMB_BITS * l) / 64, ((LIMB_BITS * l) % 64) as i64);
                    let low = w.get(word).copied().unwrap_or(zero);
                    let high = w.get(word + 1).copied().unwrap_or(zero);
                    // A shift by 64 (shift = 0) gives zero, as wanted.
                    let x = f._mm512_and_si512(
                        f._mm512_or_si512(
                            f._mm512_srlv_epi64(low, f._mm512_set1_epi64(shift)),
                            f._mm512_sllv_epi64(high, f._mm512_set1_epi64(64 - shift)),
                        ),
                        mask,
                    );
                    lo = m._mm512_madd52lo_epu64(lo, x, c);
                    hi = m._mm512_madd52hi_epu64(hi, x, c);
                }
                *o = cast(simd.reduce_sum(c, hi, lo));
            }
            limbs_tail(p, init, out_tail, len, rows, &consts);
        },
    );
}

/// The tail of a limb dot ([`dot_const_limbs64`]: the last `out_tail.len()`
/// coefficients of rows of length `len`) by Shoup products in scalar
/// arithmetic: no division, no branch on the values.
pub(super) fn limbs_tail(
    p: u64,
    init: u64,
    out_tail: &mut [u64],
    len: usize,
    rows: &[&[u64]],
    consts: &[Shoup52],
) {
    let start = len - out_tail.len();
    for (k, o) in out_tail.iter_mut().enumerate() {
        let word = |r: usize| {
            rows.get(r)
                .and_then(|row| row.get(start + k))
                .copied()
                .unwrap_or(0)
        };
        *o = consts.iter().enumerate().fold(init, |acc, (l, c)| {
            let (r, shift) = ((LIMB_BITS * l) / 64, (LIMB_BITS * l) % 64);
            let wide = u128::from(word(r)) | u128::from(word(r + 1)) << 64;
            shoup_add(p, *c, acc, ((wide >> shift) as u64) & LIMB_MASK)
        });
    }
}

/// `out[k] = Σ_i rows[i][k]·consts[i] mod p` (every `rows[i][k] < 2^52`,
/// `p < 2^50`, all slices as long as `out`) with IFMA; `false` (nothing
/// done) without IFMA. The value is the exact residue, as a scalar
/// `Σ x·w mod p` gives it.
pub(crate) fn dot_const_rows(p: u64, out: &mut [u64], rows: &[&[u64]], consts: &[Shoup52]) -> bool {
    let Some(simd) = token() else {
        return false;
    };
    if !(3..MAX_PRIME).contains(&p)
        || rows.len() != consts.len()
        || rows.iter().any(|r| r.len() != out.len())
    {
        return false;
    }
    simd.vectorize(
        #[inline(always)]
        || {
            let f = simd.avx512f;
            let pv = f._mm512_set1_epi64(p as i64);
            let len = out.len();
            let rows8: Vec<&[[u64; 8]]> = rows
                .iter()
                .map(|r| pulp::as_arrays::<8, u64>(r).0)
                .collect();
            let (out8, out_tail) = pulp::as_arrays_mut::<8, u64>(out);
            for (lane, o) in out8.iter_mut().enumerate() {
                let mut acc = f._mm512_setzero_si512();
                for (row, &c) in rows8.iter().zip(consts) {
                    let x = row.get(lane).copied().unwrap_or([0; 8]);
                    let r = simd.mul_const(p, c, cast(x));
                    let s = f._mm512_add_epi64(acc, r);
                    acc = f._mm512_min_epu64(s, f._mm512_sub_epi64(s, pv));
                }
                *o = cast(acc);
            }
            shoup_tail(p, out_tail, len, rows, consts);
        },
    );
    true
}

/// Whether rows below `bounds` (each at most `2^52`, at most 2048 rows)
/// times `consts` always sum below `2^(b+51)` for the prime of `c`: the
/// condition for [`V4Ifma::reduce_sum`].
fn lazy_fits(c: &Barrett, consts: &[Shoup52], bounds: &[u64]) -> bool {
    let sum_bound = bounds.iter().zip(consts).try_fold(0u128, |acc, (&b, w)| {
        (b <= 1 << 52).then(|| acc + u128::from(b.saturating_sub(1)) * u128::from(w.w))
    });
    // lo_shift = b − 1, so 2^(b+51) = 2^(lo_shift + 52).
    bounds.len() <= 2048 && sum_bound.is_some_and(|s| s < 1u128 << (c.lo_shift + 52))
}

/// Whether [`dot_const_rows_below`] sums rows below `bounds` times `consts`
/// modulo `p` with one reduction (for tests of the callers' bounds).
#[cfg(test)]
pub(crate) fn sums_lazily(p: u64, consts: &[Shoup52], bounds: &[u64]) -> bool {
    Barrett::new(p).is_some_and(|c| lazy_fits(&c, consts, bounds))
}

/// [`dot_const_rows`] where every `rows[i][k] < bounds[i]` is known: when
/// `Σ_i (bounds[i] − 1)·consts[i] < 2^(b+51)` for the `b`-bit `p` (with at
/// most 2048 rows, every bound at most `2^52`), the products are summed as
/// their `madd52lo`/`madd52hi` halves and reduced once
/// ([`V4Ifma::reduce_sum`]: the sum bounds `T` below `2^52`, which is all
/// the module doc's analysis needs for a quotient at most two short) —
/// two IFMA products per term instead of a Shoup product and a modular
/// addition. Otherwise it is [`dot_const_rows`]. The value is the same
/// exact residue either way; a caller's bound that does not hold gives a
/// wrong residue, never undefined behaviour.
pub(crate) fn dot_const_rows_below(
    p: u64,
    out: &mut [u64],
    rows: &[&[u64]],
    consts: &[Shoup52],
    bounds: &[u64],
) -> bool {
    let (Some(simd), Some(c)) = (token(), Barrett::new(p)) else {
        return false;
    };
    if !lazy_fits(&c, consts, bounds)
        || bounds.len() != rows.len()
        || rows.len() != consts.len()
        || rows.iter().any(|r| r.len() != out.len())
    {
        return dot_const_rows(p, out, rows, consts);
    }
    simd.vectorize(
        #[inline(always)]
        || {
            let f = simd.avx512f;
            let m = simd.avx512ifma;
            let len = out.len();
            let rows8: Vec<&[[u64; 8]]> = rows
                .iter()
                .map(|r| pulp::as_arrays::<8, u64>(r).0)
                .collect();
            let ws: Vec<core::arch::x86_64::__m512i> = consts
                .iter()
                .map(|w| f._mm512_set1_epi64(w.w as i64))
                .collect();
            let (out8, out_tail) = pulp::as_arrays_mut::<8, u64>(out);
            for (lane, o) in out8.iter_mut().enumerate() {
                let zero = f._mm512_setzero_si512();
                let (mut lo, mut hi) = (zero, zero);
                for (row, &w) in rows8.iter().zip(&ws) {
                    let x = cast(row.get(lane).copied().unwrap_or([0; 8]));
                    lo = m._mm512_madd52lo_epu64(lo, x, w);
                    hi = m._mm512_madd52hi_epu64(hi, x, w);
                }
                *o = cast(simd.reduce_sum(&c, hi, lo));
            }
            shoup_tail(p, out_tail, len, rows, consts);
        },
    );
    true
}

/// `row[k] = row[k]·c mod p` in place, for residues below `2^52` (the
/// results fully reduced), with IFMA: Shoup's product, three IFMA
/// products per eight residues. `false` (nothing done) without IFMA.
pub(crate) fn scale_in_place(p: u64, row: &mut [u64], c: Shoup52) -> bool {
    let Some(simd) = token() else {
        return false;
    };
    simd.vectorize(
        #[inline(always)]
        || {
            let (row8, tail) = pulp::as_arrays_mut::<8, u64>(row);
            for x in row8 {
                *x = cast(simd.mul_const(p, c, cast(*x)));
            }
            for x in tail {
                *x = shoup_add(p, c, 0, *x);
            }
        },
    );
    true
}

/// [`dot_const_rows_below`] for several output primes at once:
/// `outs[j][k] = Σ_i rows[i][k]·c_j[i] (+ own[j][k]·c_j[R]) mod p_j` for the
/// constants `c_j` of `plans[j]` (`R` rows shared by every output, then, when
/// `own` is not empty, one row of each output's own). Each shared row's
/// eight lanes are loaded once for every output instead of once per output
/// (a dot of six rows 8.1 → 6.5 ns per output and eight coefficients on
/// session 21's machine, about one IFMA product per cycle). `false` (nothing
/// written) unless the CPU has IFMA, every plan's sums are reduced lazily
/// ([`lazy_fits`]), there are one to eight shared rows and the shapes agree.
pub(crate) fn dot_planned_each(
    outs: &mut [&mut [u64]],
    rows: &[&[u64]],
    own: &[&[u64]],
    plans: &[super::DotPlan],
) -> bool {
    let Some(simd) = token() else {
        return false;
    };
    let Some(barretts) = plans
        .iter()
        .map(|plan| Barrett::new(plan.p).filter(|c| lazy_fits(c, &plan.consts, &plan.bounds)))
        .collect::<Option<Vec<_>>>()
    else {
        return false;
    };
    let len = outs.first().map_or(0, |o| o.len());
    let terms = rows.len() + usize::from(!own.is_empty());
    if outs.len() != plans.len()
        || !(own.is_empty() || own.len() == outs.len())
        || plans.iter().any(|plan| plan.consts.len() != terms)
        || rows.iter().chain(own).any(|r| r.len() != len)
        || outs.iter().any(|o| o.len() != len)
    {
        return false;
    }
    match rows.len() {
        1 => each::<1>(simd, outs, rows, own, plans, &barretts),
        2 => each::<2>(simd, outs, rows, own, plans, &barretts),
        3 => each::<3>(simd, outs, rows, own, plans, &barretts),
        4 => each::<4>(simd, outs, rows, own, plans, &barretts),
        5 => each::<5>(simd, outs, rows, own, plans, &barretts),
        6 => each::<6>(simd, outs, rows, own, plans, &barretts),
        7 => each::<7>(simd, outs, rows, own, plans, &barretts),
        8 => each::<8>(simd, outs, rows, own, plans, &barretts),
        _ => return false,
    }
    true
}

/// [`dot_planned_each`] with `R` shared rows, their lanes held in registers.
fn each<const R: usize>(
    simd: V4Ifma,
    outs: &mut [&mut [u64]],
    rows: &[&[u64]],
    own: &[&[u64]],
    plans: &[super::DotPlan],
    barretts: &[Barrett],
) {
    simd.vectorize(
        #[inline(always)]
        || {
            let f = simd.avx512f;
            let m = simd.avx512ifma;
            let len = outs.first().map_or(0, |o| o.len());
            let rows8: [&[[u64; 8]]; R] = core::array::from_fn(|i| {
                pulp::as_arrays::<8, u64>(rows.get(i).copied().unwrap_or_default()).0
            });
            let own8: Vec<&[[u64; 8]]> =
                own.iter().map(|r| pulp::as_arrays::<8, u64>(r).0).collect();
            // Per output: the shared rows' weights, then the own row's (zero
            // without one), broadcast once per call.
            let weights: Vec<(
                [core::arch::x86_64::__m512i; R],
                core::arch::x86_64::__m512i,
            )> = plans
                .iter()
                .map(|plan| {
                    let w = |i: usize| {
                        f._mm512_set1_epi64(plan.consts.get(i).map_or(0, |c| c.w) as i64)
                    };
                    (core::array::from_fn(w), w(R))
                })
                .collect();
            let mut outs8: Vec<&mut [[u64; 8]]> = outs
                .iter_mut()
                .map(|o| pulp::as_arrays_mut::<8, u64>(o).0)
                .collect();
            for lane in 0..len / 8 {
                let xs: [core::arch::x86_64::__m512i; R] = core::array::from_fn(|i| {
                    cast(
                        rows8
                            .get(i)
                            .and_then(|r| r.get(lane))
                            .copied()
                            .unwrap_or([0; 8]),
                    )
                });
                for (j, ((out, (ws, w_own)), c)) in
                    outs8.iter_mut().zip(&weights).zip(barretts).enumerate()
                {
                    let zero = f._mm512_setzero_si512();
                    let (mut lo, mut hi) = (zero, zero);
                    for (&x, &w) in xs.iter().zip(ws) {
                        lo = m._mm512_madd52lo_epu64(lo, x, w);
                        hi = m._mm512_madd52hi_epu64(hi, x, w);
                    }
                    if let Some(row) = own8.get(j) {
                        let x = cast(row.get(lane).copied().unwrap_or([0; 8]));
                        lo = m._mm512_madd52lo_epu64(lo, x, *w_own);
                        hi = m._mm512_madd52hi_epu64(hi, x, *w_own);
                    }
                    if let Some(o) = out.get_mut(lane) {
                        *o = cast(simd.reduce_sum(c, hi, lo));
                    }
                }
            }
            let done = len / 8 * 8;
            if done < len {
                for (j, (out, plan)) in outs.iter_mut().zip(plans).enumerate() {
                    let mut all: Vec<&[u64]> = rows.to_vec();
                    all.extend(own.get(j));
                    shoup_tail(
                        plan.p,
                        out.get_mut(done..).unwrap_or_default(),
                        len,
                        &all,
                        &plan.consts,
                    );
                }
            }
        },
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;

    /// Primes of every size the kernels take: synod's ciphertext primes,
    /// an HPS extension prime, and small and 50-bit edge cases.
    const PRIMES: [u64; 6] = [
        0x7fffffd8001,   // 43 bits
        0xfffffffc001,   // 44 bits
        0x1ffffffea0001, // 49 bits
        (1 << 50) - 27,  // 50 bits, the largest accepted size
        65537,           // 17 bits
        3,
    ];

    /// The reduction of [`V4Ifma::mul_mod`] step by step in scalar 52-bit
    /// arithmetic: checks the algorithm (bounds included) on any CPU.
    fn model(c: &Barrett, x: u64, y: u64) -> u64 {
        let p = u128::from(x) * u128::from(y);
        let (lo, hi) = ((p as u64) & MASK52, (p >> 52) as u64);
        let t = (hi << c.hi_shift) | (lo >> c.lo_shift);
        assert!(t < 1 << 52 && c.mu < 1 << 52);
        let quotient = ((u128::from(t) * u128::from(c.mu)) >> 52) as u64;
        let r = lo.wrapping_sub(quotient.wrapping_mul(c.q)) & MASK52;
        assert!(r < 3 * c.q, "remainder {r} not below 3q");
        let r = r.min(r.wrapping_sub(c.q));
        r.min(r.wrapping_sub(c.q))
    }

    #[test]
    fn synod_no_ifma_turns_the_kernels_off() {
        // `.ci/run` runs synod-he's tests a second time with SYNOD_NO_IFMA
        // set, to check the portable paths on an IFMA machine: make sure
        // that run really took them.
        if std::env::var_os("SYNOD_NO_IFMA").is_some() {
            assert!(token().is_none());
            assert!(!super::super::has_ifma());
            let q = Modulus::new(PRIMES[0]).unwrap();
            let mut row = vec![1; 8];
            assert!(!mul_add_into(&q, &mut row, &[2; 8], &[3; 8]));
            assert_eq!(row, vec![1; 8], "a kernel that declined wrote nothing");
        } else if V4Ifma::try_new().is_some() {
            // Without the switch, an IFMA CPU takes the kernel.
            let q = Modulus::new(PRIMES[0]).unwrap();
            let mut row = vec![1; 8];
            assert!(mul_add_into(&q, &mut row, &[2; 8], &[3; 8]));
            assert_eq!(row, vec![7; 8]);
        }
    }

    #[test]
    fn the_reduction_is_exact_at_the_extremes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for p in PRIMES {
            let (q, c) = (Modulus::new(p).unwrap(), Barrett::new(p).unwrap());
            let edges = [0, 1, 2, p / 2, p - 2, p - 1];
            for &x in &edges {
                for &y in &edges {
                    assert_eq!(model(&c, x, y), q.mul(x, y), "{x}·{y} mod {p}");
                }
            }
            for _ in 0..20_000 {
                let (x, y) = (rng.random_range(0..p), rng.random_range(0..p));
                assert_eq!(model(&c, x, y), q.mul(x, y), "{x}·{y} mod {p}");
            }
        }
    }

    fn scalar(q: &Modulus, op: Accumulate, row: &[u64], a: &[u64], b: &[u64]) -> Vec<u64> {
        row.iter()
            .zip(a)
            .zip(b)
            .map(|((&r, &x), &y)| match op {
                Accumulate::Add => q.add(r, q.mul(x, y)),
                Accumulate::Sub => q.sub(r, q.mul(x, y)),
            })
            .collect()
    }

    fn check(p: u64, row: Vec<u64>, a: Vec<u64>, b: Vec<u64>) {
        let q = Modulus::new(p).unwrap();
        for op in [Accumulate::Add, Accumulate::Sub] {
            let want = scalar(&q, op, &row, &a, &b);
            let mut got = row.clone();
            if mul_acc_into(&q, op, &mut got, &a, None, &b) {
                assert_eq!(got, want, "q = {p:#x}");
            } else if std::env::var_os("CI").is_some() && p < MAX_PRIME {
                // The kernels are only reachable on IFMA hardware: say so
                // instead of passing without having run them.
                eprintln!("IFMA off (no AVX-512 IFMA, or SYNOD_NO_IFMA set): the IFMA kernels were not tested");
            }
        }
    }

    #[test]
    fn extremes_match_the_scalar_product() {
        for p in PRIMES {
            // The largest values, zeros, and lengths that leave a tail.
            let n = 8 * 4 + 5;
            let top = vec![p - 1; n];
            let zero = vec![0; n];
            check(p, top.clone(), top.clone(), top.clone());
            check(p, zero.clone(), top.clone(), top.clone());
            check(p, top.clone(), zero.clone(), top.clone());
            check(p, zero.clone(), zero.clone(), zero);
        }
    }

    /// Moduli just above a power of two, with products whose Barrett
    /// quotient falls two short (the remainder lands in `[2q, 3q)`): both
    /// conditional subtractions are needed (found by search).
    const TWO_SHORT: [(u64, u64, u64); 2] = [
        ((1 << 40) + 15, (1 << 40) + 14, (1 << 40) - 1),
        ((1 << 49) + 9, (1 << 49) + 8, (1 << 49) - 1),
    ];

    #[test]
    fn a_quotient_two_short_is_corrected() {
        for (p, x, y) in TWO_SHORT {
            let c = Barrett::new(p).unwrap();
            let lo = (u128::from(x) * u128::from(y)) as u64 & MASK52;
            let hi = ((u128::from(x) * u128::from(y)) >> 52) as u64;
            let t = (hi << c.hi_shift) | (lo >> c.lo_shift);
            let quotient = ((u128::from(t) * u128::from(c.mu)) >> 52) as u64;
            let r = lo.wrapping_sub(quotient.wrapping_mul(p)) & MASK52;
            assert!(
                r >= 2 * p,
                "the case no longer exercises the second subtraction"
            );
            assert_eq!(model(&c, x, y), Modulus::new(p).unwrap().mul(x, y));
            check(p, vec![p - 1; 13], vec![x; 13], vec![y; 13]);
        }
    }

    /// The lazily reduced inner products equal the products reduced one by
    /// one, for every prime size (so every group length, down to one
    /// product per reduction at 50 bits), from one digit to more than a
    /// group of the 44-bit primes (64), at the extremes (every value
    /// `q − 1`, the largest sums) and on random residues, with a tail.
    #[test]
    fn lazy_inner_products_match_the_scalar_ones() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for p in PRIMES {
            let q = Modulus::new(p).unwrap();
            let n = 8 * 5 + 3;
            for digits in [1, 2, 3, 5, 9, 13, 70] {
                for extreme in [true, false] {
                    let mut draw = || -> Vec<u64> {
                        if extreme {
                            vec![p - 1; n]
                        } else {
                            (0..n).map(|_| rng.random_range(0..p)).collect()
                        }
                    };
                    let (acc0, acc1) = (draw(), draw());
                    let x: Vec<Vec<u64>> = (0..digits).map(|_| draw()).collect();
                    let w0: Vec<Vec<u64>> = (0..digits).map(|_| draw()).collect();
                    let w1: Vec<Vec<u64>> = (0..digits).map(|_| draw()).collect();
                    let (mut want0, mut want1) = (acc0.clone(), acc1.clone());
                    for g in 0..digits {
                        for k in 0..n {
                            want0[k] = q.add(want0[k], q.mul(x[g][k], w0[g][k]));
                            want1[k] = q.add(want1[k], q.mul(x[g][k], w1[g][k]));
                        }
                    }
                    fn rows(m: &[Vec<u64>]) -> Vec<&[u64]> {
                        m.iter().map(Vec::as_slice).collect()
                    }
                    let (mut got0, mut got1) = (acc0, acc1);
                    let (xr, w0r, w1r) = (rows(&x), rows(&w0), rows(&w1));
                    if dot2_add_into(&q, &mut got0, &mut got1, &xr, &w0r, &w1r) {
                        assert_eq!((got0, got1), (want0, want1), "q = {p:#x}, {digits} digits");
                    } else {
                        assert!(token().is_none() || p >= MAX_PRIME, "refused q = {p:#x}");
                    }
                }
            }
        }
    }

    /// Every output of [`dot_planned_each`] is the exact sum of its
    /// products (shared rows below `2^44`, an own row below its prime, as
    /// in a base conversion), at the extremes and at random, for one to
    /// eight shared rows, with and without own rows, with a tail; nine
    /// shared rows are refused.
    #[test]
    fn dots_for_every_output_are_exact() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
        let primes = [PRIMES[0], PRIMES[1], PRIMES[2], PRIMES[3]];
        let n = 8 * 3 + 5;
        let bound = 1u64 << 44;
        for shared in 1..=9 {
            for with_own in [false, true] {
                for extreme in [true, false] {
                    let mut value = |b: u64| {
                        if extreme {
                            b - 1
                        } else {
                            rng.random_range(0..b)
                        }
                    };
                    let rows: Vec<Vec<u64>> = (0..shared)
                        .map(|_| (0..n).map(|_| value(bound)).collect())
                        .collect();
                    let own: Vec<Vec<u64>> = primes
                        .iter()
                        .filter(|_| with_own)
                        .map(|&p| (0..n).map(|_| value(p)).collect())
                        .collect();
                    let terms = shared + usize::from(with_own);
                    let ws: Vec<Vec<u64>> = primes
                        .iter()
                        .map(|&p| (0..terms).map(|_| value(p)).collect())
                        .collect();
                    let plans: Vec<super::super::DotPlan> = primes
                        .iter()
                        .zip(&ws)
                        .map(|(&p, ws)| {
                            let consts = ws.iter().map(|&w| Shoup52::new(w, p).unwrap()).collect();
                            let mut bounds = vec![bound; shared];
                            bounds.extend(with_own.then_some(p));
                            super::super::DotPlan::new(p, consts, bounds).unwrap()
                        })
                        .collect();
                    let refs: Vec<&[u64]> = rows.iter().map(Vec::as_slice).collect();
                    let own_refs: Vec<&[u64]> = own.iter().map(Vec::as_slice).collect();
                    let mut got = vec![vec![0u64; n]; primes.len()];
                    let mut outs: Vec<&mut [u64]> = got.iter_mut().map(Vec::as_mut_slice).collect();
                    let done = dot_planned_each(&mut outs, &refs, &own_refs, &plans);
                    if shared > 8 || token().is_none() {
                        assert!(!done, "{shared} shared rows taken");
                        assert!(got.iter().flatten().all(|&x| x == 0), "refused but wrote");
                        continue;
                    }
                    assert!(done, "{shared} shared rows refused");
                    for (j, (&p, ws)) in primes.iter().zip(&ws).enumerate() {
                        for k in 0..n {
                            let mut terms: Vec<u64> = rows.iter().map(|r| r[k]).collect();
                            terms.extend(own.get(j).map(|r| r[k]));
                            let sum: u128 = terms
                                .iter()
                                .zip(ws)
                                .map(|(&x, &w)| u128::from(x) * u128::from(w) % u128::from(p))
                                .sum();
                            assert_eq!(
                                got[j][k],
                                (sum % u128::from(p)) as u64,
                                "p = {p:#x}, {shared} shared rows, own {with_own}, column {k}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Sums of products with constants, reduced once where the rows'
    /// bounds allow it, equal the exact `Σ x·w mod p`: rows of residues
    /// below `p` (up to the largest sums the once-reduction takes: two
    /// terms of `(p − 1)²` at 50 bits put `T` just below `2^52`), of small
    /// halves, of 52-bit values (which fall back to the Shoup products),
    /// at the extremes and at random, with a tail.
    #[test]
    fn bounded_constant_dots_are_exact() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        for p in PRIMES {
            let n = 8 * 3 + 5;
            for rows_count in [1, 2, 3, 6, 12] {
                for bound in [p, 1 << 22, 1 << 52] {
                    for extreme in [true, false] {
                        let rows: Vec<Vec<u64>> = (0..rows_count)
                            .map(|_| {
                                (0..n)
                                    .map(|_| {
                                        if extreme {
                                            bound - 1
                                        } else {
                                            rng.random_range(0..bound)
                                        }
                                    })
                                    .collect()
                            })
                            .collect();
                        let ws: Vec<u64> = (0..rows_count)
                            .map(|_| {
                                if extreme {
                                    p - 1
                                } else {
                                    rng.random_range(0..p)
                                }
                            })
                            .collect();
                        let consts: Vec<Shoup52> =
                            ws.iter().map(|&w| Shoup52::new(w, p).unwrap()).collect();
                        let want: Vec<u64> = (0..n)
                            .map(|k| {
                                let sum: u128 = rows
                                    .iter()
                                    .zip(&ws)
                                    .map(|(r, &w)| u128::from(r[k]) * u128::from(w) % u128::from(p))
                                    .sum();
                                (sum % u128::from(p)) as u64
                            })
                            .collect();
                        let refs: Vec<&[u64]> = rows.iter().map(Vec::as_slice).collect();
                        let bounds = vec![bound; rows_count];
                        let mut got = vec![0; n];
                        if dot_const_rows_below(p, &mut got, &refs, &consts, &bounds) {
                            assert_eq!(got, want, "p = {p:#x}, {rows_count} rows below {bound:#x}");
                        } else {
                            assert!(token().is_none(), "refused p = {p:#x}");
                        }
                    }
                }
            }
        }
    }

    /// The once-reduction's condition at its edge: two products of
    /// `(p − 1)²` at 50 bits sum below `2^101`, three do not; at 44 bits
    /// sixty-four such products fit; bounds above `2^52` never do.
    #[test]
    fn lazy_sums_are_taken_exactly_up_to_the_bound() {
        let p50 = (1u64 << 50) - 27;
        let top = Shoup52::new(p50 - 1, p50).unwrap();
        assert!(sums_lazily(p50, &[top; 2], &[p50; 2]));
        assert!(!sums_lazily(p50, &[top; 3], &[p50; 3]));
        let p44 = 0xfffffffc001;
        let top = Shoup52::new(p44 - 1, p44).unwrap();
        assert!(sums_lazily(p44, &[top; 64], &[p44; 64]));
        assert!(!sums_lazily(p44, &[top; 1], &[(1 << 52) + 1]));
    }

    #[test]
    fn rejects_primes_it_cannot_reduce() {
        let q = Modulus::new(0x3fffffff000001).unwrap(); // 54 bits
        let mut row = vec![1u64; 8];
        assert!(!mul_add_into(&q, &mut row, &[2; 8], &[3; 8]));
        assert_eq!(row, vec![1u64; 8], "untouched");
    }

    /// The fused tensor equals the products and sum computed one by one
    /// with `Modulus`, at the extremes and on random residues, with a tail.
    #[test]
    fn tensor_matches_the_scalar_products() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        for p in PRIMES {
            let q = Modulus::new(p).unwrap();
            let n = 8 * 6 + 3;
            let mut inputs: Vec<Vec<u64>> = (0..4)
                .map(|_| (0..n).map(|_| rng.random_range(0..p)).collect())
                .collect();
            for v in inputs.iter_mut() {
                v[..4].copy_from_slice(&[0, 1, p - 2, p - 1]);
            }
            let [a0, a1, b0, b1] = [&inputs[0], &inputs[1], &inputs[2], &inputs[3]];
            let (mut r0, mut r2, mut r1) = (a0.clone(), a1.clone(), b0.clone());
            if !tensor_in_place(&q, &mut r0, &mut r2, &mut r1, b1) {
                if std::env::var_os("CI").is_some() && p < MAX_PRIME {
                    eprintln!("IFMA off (no AVX-512 IFMA, or SYNOD_NO_IFMA set): the tensor kernel was not tested");
                }
                continue;
            }
            for k in 0..n {
                assert_eq!(r0[k], q.mul(a0[k], b0[k]), "q = {p:#x}, k = {k}");
                assert_eq!(r2[k], q.mul(a1[k], b1[k]), "q = {p:#x}, k = {k}");
                let cross = q.add(q.mul(a0[k], b1[k]), q.mul(a1[k], b0[k]));
                assert_eq!(r1[k], cross, "q = {p:#x}, k = {k}");
            }
        }
        // Unequal lengths are refused, nothing written.
        let q = Modulus::new(PRIMES[0]).unwrap();
        let (mut a0, mut a1, mut b0) = (vec![5; 8], vec![5; 8], vec![5; 7]);
        assert!(!tensor_in_place(&q, &mut a0, &mut a1, &mut b0, &[1; 8]));
        assert_eq!((a0, a1, b0), (vec![5; 8], vec![5; 8], vec![5; 7]));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_residues_match_the_scalar_product(
            which in 0usize..PRIMES.len(),
            seed in any::<u64>(),
            len in 0usize..100,
        ) {
            use rand::{Rng, SeedableRng};
            let p = PRIMES[which];
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut draw = || (0..len).map(|_| rng.random_range(0..p)).collect::<Vec<u64>>();
            let (row, a, b) = (draw(), draw(), draw());
            check(p, row, a, b);
        }

        /// The limbs cut in registers give `init + Σ_l limb_l·c_l mod p`
        /// over the 48-bit limbs of the multi-word numbers, on and off the
        /// eight-lane grid.
        #[test]
        fn limbs64_match_a_big_integer_reference(
            which in 0usize..PRIMES.len(),
            seed in any::<u64>(),
            len in 0usize..40,
            rows in 1usize..=MAX_LIMB_ROWS,
            extra_limbs in 0usize..2,
        ) {
            use num_bigint::BigUint;
            use rand::{Rng, SeedableRng};
            let p = PRIMES[which];
            let q = Modulus::new(p).unwrap();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let words: Vec<Vec<u64>> = (0..rows)
                .map(|_| (0..len).map(|_| rng.random::<u64>()).collect())
                .collect();
            // Every shape the kernel takes: R rows, ⌈64·R/48⌉ limbs or one
            // fewer.
            let limbs = (64 * rows).div_ceil(LIMB_BITS) - extra_limbs;
            let consts: Vec<Shoup52> = (0..limbs)
                .map(|_| Shoup52::new(rng.random_range(0..p), p).unwrap())
                .collect();
            let init = rng.random_range(0..p);
            let views: Vec<&[u64]> = words.iter().map(|w| w.as_slice()).collect();
            let mut out = vec![0u64; len];
            let took = dot_const_limbs64(p, init, &mut out, &views, &consts);
            prop_assert_eq!(took, token().is_some());
            if took {
                for (k, &got) in out.iter().enumerate() {
                    let value = words
                        .iter()
                        .rev()
                        .fold(BigUint::from(0u8), |acc, w| (acc << 64) + w[k]);
                    let want = consts.iter().enumerate().fold(init, |acc, (l, c)| {
                        let limb = (&value >> (LIMB_BITS * l)) & BigUint::from(LIMB_MASK);
                        let limb = limb.to_u64_digits().first().copied().unwrap_or(0);
                        q.add(acc, q.mul(q.reduce(limb), c.w))
                    });
                    prop_assert_eq!(got, want, "k {}", k);
                }
            }
        }

        /// The fused `row + (a·c)·b` and the dot product with constants
        /// equal their scalar definitions (lengths off the eight-lane grid
        /// too, and the edge constants 0 and p − 1).
        #[test]
        fn fused_kernels_match_the_scalar_products(
            which in 0usize..PRIMES.len(),
            seed in any::<u64>(),
            len in 0usize..100,
            edge in 0usize..3,
        ) {
            use rand::{Rng, SeedableRng};
            let p = PRIMES[which];
            let q = Modulus::new(p).unwrap();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let c = [0, p - 1, rng.random_range(0..p)][edge];
            let mut draw = || (0..len).map(|_| rng.random_range(0..p)).collect::<Vec<u64>>();
            let (row, a, b) = (draw(), draw(), draw());
            let w = Shoup52::new(c, p).unwrap();
            let mut got = row.clone();
            let took = scaled_mul_add_into(&q, &mut got, &a, w, &b);
            prop_assert_eq!(took, token().is_some());
            if took {
                let want: Vec<u64> = row
                    .iter()
                    .zip(&a)
                    .zip(&b)
                    .map(|((&r, &x), &y)| q.add(r, q.mul(q.mul(x, c), y)))
                    .collect();
                prop_assert_eq!(got, want);
            }
            let mut out = vec![0u64; len];
            let took = dot_const_rows(p, &mut out, &[&a, &b], &[w, w]);
            prop_assert_eq!(took, token().is_some());
            if took {
                let want: Vec<u64> = a
                    .iter()
                    .zip(&b)
                    .map(|(&x, &y)| q.add(q.mul(x, c), q.mul(y, c)))
                    .collect();
                prop_assert_eq!(out, want);
            }
        }
    }
}
