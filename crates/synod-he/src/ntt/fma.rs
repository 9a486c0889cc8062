//! The negacyclic NTT modulo a prime below 2^50 in double precision with
//! AVX2 and FMA, for CPUs without AVX-512 IFMA.
//!
//! Without IFMA, `tfhe-ntt` runs 64-bit Shoup butterflies on AVX2, whose
//! 64 × 64-bit products are each built from four 32-bit multiplications.
//! Here each twiddle product is `kernels::fma`'s double-precision one (van
//! der Hoeven, Lecerf and Quintin): for `|x| ≤ B ≤ 2^52` and `0 ≤ w < p`
//! it returns the exact `x·w − c·p` with `|x·w − c·p| ≤ p·(1/2 +
//! 3.01·2^-53·B)`, about `p/2`. In the two-level passes, whose twiddles
//! are splatted, the quotient is estimated as `round(x·(w/p))` with `w/p`
//! precomputed, beside the product instead of after it (a shorter chain, 7 %
//! off the forward transform here); that estimate is within `1/2 +
//! 2.01·2^-53·B` of `x·w/p`, inside the same bound, and `x·w − c·p` is still
//! computed exactly. Values are signed and only partially
//! reduced between levels (Harvey's lazy butterflies, "Faster arithmetic
//! for number-theoretic transforms", JSC 60, 2014): a level's outputs grow
//! by at most that bound, and [`Schedule`] reduces a level's outputs
//! (`x − round(x/p)·p`, three instructions) only where the next level could
//! otherwise exceed `2^52`. For primes up to 2^45 that never happens in the
//! forward transform.
//!
//! The loops are Longa and Naehrig's ("Speeding up the Number Theoretic
//! Transform for Faster Ideal Lattice-Based Cryptography", CANS 2016,
//! Algorithms 1 and 2): Cooley–Tukey forward from natural to bit-reversed
//! order, Gentleman–Sande back, with `N^{-1}` folded into the last inverse
//! level. With the same `2N`-th root of unity (taken from `tfhe-ntt`'s plan
//! by the caller), the fully reduced output is bit for bit `tfhe-ntt`'s and
//! `fhe-math`'s (tested for every prime of every parameter set).
//!
//! Between levels the caller's buffer holds the `f64` bit patterns; the
//! first level converts from `u64` (exact below 2^52) and the last level
//! writes canonical residues in `[0, p)`. Every instruction takes the same
//! time whatever the residues (no branches, no subnormal numbers: every
//! value is an integer), so secret polynomials may pass through.

use core::arch::x86_64::{__m256d, __m256i};

use pulp::cast;
use pulp::x86::V3;
use rayon::prelude::*;

use super::FusedProduct;
use crate::galois::pow_mod;
use crate::kernels::fma::{limb_sum_bound, Lanes, LimbSum, BOUND, MAX_PRIME};
use crate::kernels::LimbInput;

/// Where the transform reduces a level's outputs, from the bounds above.
struct Schedule;

impl Schedule {
    /// `|x·w mod± p| ` after the FMA product of `|x| ≤ b`, `w < p`.
    fn product(p: f64, b: f64) -> f64 {
        p * (0.5 + 3.01 * b / (2.0 * BOUND)) + 1.0
    }

    /// `|x − round(x/p)·p|` for `|x| ≤ b`.
    fn reduced(p: f64, b: f64) -> f64 {
        p * 0.5 + 2.01 * b / (2.0 * BOUND) + 1.0
    }

    /// Per forward level (`t = N/2` first), for inputs of magnitude at most
    /// `input`: whether it reduces its outputs. A Cooley–Tukey level maps
    /// bound `b` to `b + product(b)`.
    fn forward(p: f64, input: f64, levels: usize) -> Vec<bool> {
        let step = |b: f64| b + Self::product(p, b);
        let mut b = input;
        (0..levels)
            .map(|_| {
                b = step(b);
                let reduce = step(b) > BOUND;
                if reduce {
                    b = Self::reduced(p, b);
                }
                reduce
            })
            .collect()
    }

    /// Per inverse level (`t = 1` first): whether it reduces its outputs. A
    /// Gentleman–Sande level maps `b` to `max(2b, product(2b))`.
    fn inverse(p: f64, levels: usize) -> Vec<bool> {
        let mut b = p;
        (0..levels)
            .map(|_| {
                let out = (2.0 * b).max(Self::product(p, 2.0 * b));
                let reduce = 2.0 * out > BOUND;
                b = if reduce { Self::reduced(p, out) } else { out };
                reduce
            })
            .collect()
    }
}

/// Forward and inverse negacyclic NTT of one size modulo one prime.
pub(crate) struct FmaNtt {
    simd: V3,
    p: f64,
    p_inv: f64,
    log_n: u32,
    /// `ψ^{brv(k)}` at `k < N/4`, for the levels with `t ≥ 4` (the `t = 2`
    /// and `t = 1` levels read `fwd2` and `fwd1`).
    fwd: Vec<f64>,
    /// `fwd[k] / p`, the quotient estimates of the two-level passes.
    fwd_q: Vec<f64>,
    /// The `t = 2` and `t = 1` levels' twiddles, laid out per 8 values as
    /// the shuffled lanes need them.
    fwd2: Vec<[f64; 4]>,
    fwd1: Vec<[f64; 4]>,
    /// `ψ^{−brv(k)}` at `k < N/4`, for the levels with `t ≥ 4` (the last
    /// one excepted, whose one twiddle is `last`).
    inv: Vec<f64>,
    /// `inv[k] / p`, as `fwd_q`.
    inv_q: Vec<f64>,
    inv1: Vec<[f64; 4]>,
    inv2: Vec<[f64; 4]>,
    /// `N^{-1}` and `ψ^{−brv(1)}·N^{-1}` modulo `p`.
    n_inv: f64,
    last: f64,
    fwd_reduce: Vec<bool>,
    /// [`Self::fwd_reduce`] for inputs summed from flooding limbs
    /// ([`limb_sum_bound`]).
    limbs_reduce: Vec<bool>,
    inv_reduce: Vec<bool>,
}

fn mul_mod(a: u64, b: u64, p: u64) -> u64 {
    (u128::from(a) * u128::from(b) % u128::from(p)) as u64
}

impl FmaNtt {
    /// The transform of size `n` modulo `p` with the primitive `2n`-th root
    /// of unity `psi`, if this CPU has AVX2 and FMA, `p < 2^50`, `n` is a
    /// power of two of at least 16 and `psi` is such a root.
    pub(crate) fn new(p: u64, n: usize, psi: u64) -> Option<Self> {
        let simd = V3::try_new()?;
        if !(3..MAX_PRIME).contains(&p) || n < 16 || !n.is_power_of_two() || psi >= p {
            return None;
        }
        let n64 = n as u64;
        if pow_mod(psi, n64, p) != p - 1 {
            return None;
        }
        let log_n = n.trailing_zeros();
        let brv = |k: usize| k.reverse_bits() >> (usize::BITS - log_n);
        let psi_inv = pow_mod(psi, 2 * n64 - 1, p);
        let powers = |root: u64| {
            let mut pw = Vec::with_capacity(n);
            let mut x = 1;
            for _ in 0..n {
                pw.push(x);
                x = mul_mod(x, root, p);
            }
            (0..n)
                .map(|k| pw.get(brv(k)).copied())
                .collect::<Option<Vec<u64>>>()
        };
        let (fwd_u, inv_u) = (powers(psi)?, powers(psi_inv)?);
        let f = |x: u64| x as f64;
        // t = 2: groups n/4 + g; per 8 values two groups.
        let lanes2 = |tw: &[u64]| -> Option<Vec<[f64; 4]>> {
            let (pairs, _) = pulp::as_arrays::<2, u64>(tw.get(n / 4..n / 2)?);
            Some(
                pairs
                    .iter()
                    .map(|&[a, b]| [f(a), f(a), f(b), f(b)])
                    .collect(),
            )
        };
        // t = 1: groups n/2 + g; per 8 values four groups, lanes (0, 2, 1, 3).
        let lanes1 = |tw: &[u64]| -> Option<Vec<[f64; 4]>> {
            let (fours, _) = pulp::as_arrays::<4, u64>(tw.get(n / 2..n)?);
            Some(
                fours
                    .iter()
                    .map(|&[a, b, c, d]| [f(a), f(c), f(b), f(d)])
                    .collect(),
            )
        };
        let (fwd2, fwd1) = (lanes2(&fwd_u)?, lanes1(&fwd_u)?);
        let (inv2, inv1) = (lanes2(&inv_u)?, lanes1(&inv_u)?);
        let n_inv = pow_mod(n64 % p, p - 2, p);
        let last = mul_mod(*inv_u.get(1)?, n_inv, p);
        let levels = log_n as usize;
        Some(Self {
            simd,
            p: f(p),
            p_inv: 1.0 / f(p),
            log_n,
            fwd: fwd_u.get(..n / 4)?.iter().map(|&x| f(x)).collect(),
            fwd_q: fwd_u.get(..n / 4)?.iter().map(|&x| f(x) / f(p)).collect(),
            fwd2,
            fwd1,
            inv: inv_u.get(..n / 4)?.iter().map(|&x| f(x)).collect(),
            inv_q: inv_u.get(..n / 4)?.iter().map(|&x| f(x) / f(p)).collect(),
            inv1,
            inv2,
            n_inv: f(n_inv),
            last: f(last),
            fwd_reduce: Schedule::forward(f(p), f(p), levels),
            limbs_reduce: Schedule::forward(f(p), limb_sum_bound(f(p)), levels),
            inv_reduce: Schedule::inverse(f(p), levels),
        })
    }

    /// In place, from coefficients below `p` to the NTT in bit-reversed
    /// order, canonical residues. Two levels per pass, the last three (`t =
    /// 4, 2, 1`) in one: the first pass over the whole buffer, then each
    /// quarter (an independent transform from there) through the rest.
    /// Panics on a buffer of another length, as `tfhe-ntt`'s plans do.
    pub(crate) fn forward(&self, a: &mut [u64]) {
        assert_eq!(a.len(), 1usize << self.log_n, "NTT of the wrong length");
        self.simd.vectorize(Levels {
            plan: self,
            a,
            direction: Direction::Forward(None),
        });
    }

    /// [`Self::forward`], then `fused` applied to each output in the last
    /// pass, before it is made canonical: one pass over memory fewer than
    /// the transform and a product kernel after it. `false` (nothing done)
    /// when `fused`'s rows are not as long as `a` or its scalar is not
    /// below `p`; its rows hold residues below `p`.
    pub(crate) fn forward_fused(&self, a: &mut [u64], fused: FusedProduct<'_>) -> bool {
        if a.len() != 1usize << self.log_n || !self.fits(Some(fused)) {
            return false;
        }
        self.simd.vectorize(Levels {
            plan: self,
            a,
            direction: Direction::Forward(Some(fused)),
        });
        true
    }

    /// Whether `fused`'s rows are as long as the transform and its scalar
    /// below `p`.
    fn fits(&self, fused: Option<FusedProduct<'_>>) -> bool {
        let n = 1usize << self.log_n;
        let p = self.p as u64;
        match fused {
            None => true,
            Some(FusedProduct::Sub(x, y) | FusedProduct::Add(x, y)) => x.len() == n && y.len() == n,
            Some(FusedProduct::AddScaled(x, c, y)) => x.len() == n && y.len() == n && c < p,
        }
    }

    /// `a` = the forward transform of `input`'s noise modulo `p`, then
    /// `fused` ([`Self::forward_fused`]): the first pass computes each
    /// input from the limbs ([`LimbSum`], not reduced after its last limb:
    /// the schedule starts from [`limb_sum_bound`]) instead of
    /// loading a stored residue, so the residues are never written. The
    /// first pass runs as two jobs (halves of its columns), the quarters
    /// as four, on the current rayon pool. `false` (nothing done) unless
    /// `N ≥ 32`, `input` has one or two rows of `N` words and up to three
    /// 48-bit limbs (flooding up to 127 bits), a first constant of 1,
    /// `init` and the constants below `p`, and `fused` fits.
    pub(crate) fn forward_from_limbs(
        &self,
        input: &LimbInput<'_>,
        a: &mut [u64],
        fused: Option<FusedProduct<'_>>,
    ) -> bool {
        let n = 1usize << self.log_n;
        let shape = match (input.rows.len(), input.consts.len()) {
            (1, 1) => LimbShape::R1L1,
            (1, 2) => LimbShape::R1L2,
            (2, 2) => LimbShape::R2L2,
            (2, 3) => LimbShape::R2L3,
            _ => return false,
        };
        let p = self.p as u64;
        if n < 32
            || a.len() != n
            || !self.fits(fused)
            || input.init >= p
            || input.rows.iter().any(|r| r.len() != n)
            || input.consts.first().is_none_or(|c| c.value() != 1)
            || input.consts.iter().any(|c| c.value() >= p)
        {
            return false;
        }
        // The first pass in two halves of its columns, then the quarters
        // (independent transforms from there) on their own: six jobs that
        // two threads share evenly, where five whole rows split 3 : 2.
        let mut quarters = split4(a);
        {
            let [l0, l1, l2, l3] = quarters.each_mut().map(|q| q.split_at_mut(n / 8));
            let head = |quads: [&mut [u64]; 4], base: usize| {
                self.simd.vectorize(Head {
                    plan: self,
                    quads,
                    base,
                    input,
                    shape,
                })
            };
            rayon::join(
                || head([l0.0, l1.0, l2.0, l3.0], 0),
                || head([l0.1, l1.1, l2.1, l3.1], n / 8),
            );
        }
        quarters
            .into_par_iter()
            .enumerate()
            .for_each(|(index, quarter)| {
                let len = quarter.len();
                self.simd.vectorize(Block {
                    plan: self,
                    a: quarter,
                    index,
                    fused: fused.map(|f| f.part(index * len, len)),
                })
            });
        true
    }

    /// `a` = the forward transform of the small signed coefficients
    /// `coeffs` (`|c| < p`: centred-binomial samples) modulo `p`, then
    /// `fused` ([`Self::forward_fused`]): the first pass converts each
    /// coefficient as it loads it, so the residues (the same small values
    /// for every prime) are never written per prime and read back. `false`
    /// (nothing done) unless `N ≥ 32`, `coeffs` and `a` hold `N` values and
    /// `fused` fits. `a`'s contents on entry are not read. Constant time.
    pub(crate) fn forward_from_small(
        &self,
        coeffs: &[i64],
        a: &mut [u64],
        fused: Option<FusedProduct<'_>>,
    ) -> bool {
        let n = 1usize << self.log_n;
        if n < 32 || a.len() != n || coeffs.len() != n || !self.fits(fused) {
            return false;
        }
        let (coeffs, _) = pulp::as_arrays::<4, i64>(coeffs);
        self.simd.vectorize(Levels {
            plan: self,
            a,
            direction: Direction::FromSmall(coeffs, fused),
        });
        true
    }

    /// Level `level`'s reduction flag (reducing is always correct, so a
    /// missing entry reduces).
    #[inline(always)]
    fn reduces(flags: &[bool], level: usize) -> bool {
        flags.get(level).copied().unwrap_or(true)
    }

    /// The `count` twiddles from index `from` of `table`.
    #[inline(always)]
    fn twiddles(table: &[f64], from: usize, count: usize) -> &[f64] {
        table.get(from..from + count).unwrap_or_default()
    }

    /// The forward transform with the first pass's inputs from `src` (from
    /// the buffer itself below N = 32, where `src` must be
    /// `Stored::<true>`).
    #[inline(always)]
    fn forward_levels(&self, a: &mut [u64], fused: Option<FusedProduct<'_>>, src: &impl Source) {
        let n = a.len();
        let k = Lanes::new(self.simd, self.p, self.p_inv);
        if n < 32 {
            return self.forward_block(k, a, (0, 1), fused, &self.fwd_reduce);
        }
        // The first two levels over the whole row, then each quarter (an
        // independent transform from there) through the rest.
        let [q0, q1, q2, q3] = split4(a);
        self.head(k, [&mut *q0, &mut *q1, &mut *q2, &mut *q3], 0, src);
        for (index, quarter) in [q0, q1, q2, q3].into_iter().enumerate() {
            let len = quarter.len();
            let fused = fused.map(|f| f.part(index * len, len));
            self.forward_block(k, quarter, (index, 4), fused, src.schedule(self));
        }
    }

    /// The first two levels (`t = N/2, N/4`) on the same columns of the
    /// row's four quarters, `base` the first of them; inputs from `src`.
    #[inline(always)]
    fn head(&self, k: Lanes, quads: [&mut [u64]; 4], base: usize, src: &impl Source) {
        let r = |level| Self::reduces(src.schedule(self), level);
        let n = 1usize << self.log_n;
        let w = |table: &[f64], i: usize| k.splat(table.get(i).copied().unwrap_or(0.0));
        let twiddles = (
            (w(&self.fwd, 1), w(&self.fwd_q, 1)),
            (w(&self.fwd, 2), w(&self.fwd_q, 2)),
            (w(&self.fwd, 3), w(&self.fwd_q, 3)),
        );
        let quads = quads.map(|q| pulp::as_arrays_mut::<4, u64>(q).0);
        flags!(
            ct_quads,
            (r(0), r(1)),
            (k, quads, base, n / 2, twiddles, src)
        );
    }

    /// Block `index` of `blocks` equal blocks of the row, each an
    /// independent transform after the first `log₂ blocks` levels, through
    /// the remaining levels and the three-level tail, then `fused`, which
    /// holds this block's columns.
    #[inline(always)]
    fn forward_block(
        &self,
        k: Lanes,
        a: &mut [u64],
        (index, blocks): (usize, usize),
        fused: Option<FusedProduct<'_>>,
        schedule: &[bool],
    ) {
        let r = |level| Self::reduces(schedule, level);
        // Level `level` has half-width `t` and `m` groups in all, `m /
        // blocks` of them in this block, their twiddles from `m + index·(m
        // / blocks)`.
        let (mut t, mut m, mut level) = (a.len() / 2, blocks, blocks.trailing_zeros() as usize);
        // Twiddles from `from` (a multiple of `m`, whose groups are split
        // evenly over the blocks): this block's share.
        #[inline(always)]
        fn local(table: &[f64], from: usize, m: usize, (index, blocks): (usize, usize)) -> &[f64] {
            let per = (m / blocks) * (from / m);
            FmaNtt::twiddles(table, from + index * per, per)
        }
        let part = (index, blocks);
        while t >= 8 {
            let w1s = local(&self.fwd, m, m, part);
            if t >= 16 {
                let (w2s, _) = pulp::as_arrays::<2, f64>(local(&self.fwd, 2 * m, m, part));
                let w1q = local(&self.fwd_q, m, m, part);
                let (w2q, _) = pulp::as_arrays::<2, f64>(local(&self.fwd_q, 2 * m, m, part));
                // Past the head (a pair of levels here means N ≥ 32, so
                // `head` took levels 0 and 1): `f64`s an earlier pass stored.
                let (r1, r2) = (r(level), r(level + 1));
                let src = &Stored::<false>;
                flags!(ct_pair, (r1, r2), (k, a, t, w1s, w2s, w1q, w2q, src));
                (t, m, level) = (t / 4, m * 4, level + 2);
            } else {
                // Level 0 here only for N = 16, from `u64`.
                flags!(ct_level, (level == 0, r(level)), (k, a, t, w1s));
                (t, m, level) = (t / 2, m * 2, level + 1);
            }
        }
        debug_assert_eq!((t, level + 3), (4, self.log_n as usize));
        let w4s = local(&self.fwd, m, m, part);
        // One entry of `fwd2` and `fwd1` per eight values.
        let eighths = a.len() / 8;
        let fwd2 = Self::lanes(&self.fwd2, index * eighths, eighths);
        let fwd1 = Self::lanes(&self.fwd1, index * eighths, eighths);
        let (r4, r2) = (r(level), r(level + 1));
        // Unfused, the last level's outputs go straight to `canonical`;
        // fused, a product (at most `p·(1/2 + 3.01·2^-53·p)`) is added
        // first, which the schedule's last flag allows for: a level's
        // product bound is at least that.
        let r1 = fused.is_some() && r(level + 2);
        match fused {
            None => flags!(ct_tail, (r4, r2, false), (k, a, w4s, fwd2, fwd1, Plain)),
            Some(FusedProduct::Sub(x, y)) => {
                let e = Product::<true>(as4(x), as4(y));
                flags!(ct_tail, (r4, r2, r1), (k, a, w4s, fwd2, fwd1, e))
            }
            Some(FusedProduct::Add(x, y)) => {
                let e = Product::<false>(as4(x), as4(y));
                flags!(ct_tail, (r4, r2, r1), (k, a, w4s, fwd2, fwd1, e))
            }
            Some(FusedProduct::AddScaled(x, c, y)) => {
                let e = AddScaledProduct(as4(x), k.splat(c as f64), as4(y));
                flags!(ct_tail, (r4, r2, r1), (k, a, w4s, fwd2, fwd1, e))
            }
        }
    }

    /// The `count` lane groups from index `from` of `table`.
    #[inline(always)]
    fn lanes(table: &[[f64; 4]], from: usize, count: usize) -> &[[f64; 4]] {
        table.get(from..from + count).unwrap_or_default()
    }

    /// In place, from the NTT in bit-reversed order (residues below `p`)
    /// back to coefficients, canonical residues. The first three levels
    /// (`t = 1, 2, 4`) in one pass, then two per pass. Panics on a buffer
    /// of another length, as `tfhe-ntt`'s plans do.
    pub(crate) fn backward(&self, a: &mut [u64]) {
        self.backward_scaled(a, 1);
    }

    /// [`Self::backward`] times `c` (`c < p`), taken in the last level's
    /// constants with `N^{-1}` (no extra pass).
    pub(crate) fn backward_scaled(&self, a: &mut [u64], c: u64) {
        assert_eq!(a.len(), 1usize << self.log_n, "NTT of the wrong length");
        self.simd.vectorize(Levels {
            plan: self,
            a,
            direction: Direction::Backward(c),
        });
    }

    #[inline(always)]
    fn backward_levels(&self, a: &mut [u64], c: u64) {
        let n = a.len();
        let k = Lanes::new(self.simd, self.p, self.p_inv);
        let r = |level| Self::reduces(&self.inv_reduce, level);
        let levels = self.log_n as usize;
        let w4s = Self::twiddles(&self.inv, n / 8, n / 8);
        let (inv1, inv2) = (&self.inv1[..], &self.inv2[..]);
        flags!(gs_head, (r(0), r(1), r(2)), (k, &mut *a, inv1, inv2, w4s));
        // Level `level` has half-width `t` and `m` groups, twiddles from `m`.
        let (mut t, mut m, mut level) = (8, n / 16, 3);
        // The last level's two constants with their quotient estimates.
        let constant = |c: f64| (k.splat(c), k.splat(c / self.p));
        // Times c: both last-level constants (below p < 2^50, exact in f64).
        let p = self.p as u64;
        let times = |x: f64| mul_mod(x as u64, c % p, p) as f64;
        let (n_inv, last) = (constant(times(self.n_inv)), constant(times(self.last)));
        while level + 2 <= levels {
            let (w1s, _) = pulp::as_arrays::<2, f64>(Self::twiddles(&self.inv, m, m));
            let (w1q, _) = pulp::as_arrays::<2, f64>(Self::twiddles(&self.inv_q, m, m));
            let w2s = Self::twiddles(&self.inv, m / 2, m / 2);
            if level + 2 == levels {
                flags!(
                    gs_pair_last,
                    (r(level)),
                    (k, &mut *a, t, (w1s, w1q), n_inv, last)
                );
            } else {
                let w2q = Self::twiddles(&self.inv_q, m / 2, m / 2);
                flags!(
                    gs_pair,
                    (r(level), r(level + 1)),
                    (k, &mut *a, t, w1s, w2s, w1q, w2q)
                );
            }
            (t, m, level) = (t * 4, m / 4, level + 2);
        }
        if level < levels {
            // The last level alone.
            let (lo, hi) = a.split_at_mut(t);
            let (lo, _) = pulp::as_arrays_mut::<4, u64>(lo);
            let (hi, _) = pulp::as_arrays_mut::<4, u64>(hi);
            for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                let (u, v) = k.gs_last(k.load(x, false), k.load(y, false), n_inv, last);
                (*x, *y) = (cast(u), cast(v));
            }
        }
    }
}

/// Calls `$f` with const flags equal to the run-time booleans, so that no
/// level's inner loop tests them (the compiler does not unswitch these
/// loops by itself).
macro_rules! flags {
    ($f:ident, ($a:expr), ($($arg:expr),*)) => {
        if $a { $f::<true>($($arg),*) } else { $f::<false>($($arg),*) }
    };
    ($f:ident, ($a:expr, $b:expr), ($($arg:expr),*)) => {
        match ($a, $b) {
            (false, false) => $f::<false, false>($($arg),*),
            (false, true) => $f::<false, true>($($arg),*),
            (true, false) => $f::<true, false>($($arg),*),
            (true, true) => $f::<true, true>($($arg),*),
        }
    };
    ($f:ident, ($a:expr, $b:expr, $c:expr), ($($arg:expr),*)) => {
        if $a {
            flags!(@one $f, true, ($b, $c), ($($arg),*))
        } else {
            flags!(@one $f, false, ($b, $c), ($($arg),*))
        }
    };
    (@one $f:ident, $a:tt, ($b:expr, $c:expr), ($($arg:expr),*)) => {
        match ($b, $c) {
            (false, false) => $f::<$a, false, false>($($arg),*),
            (false, true) => $f::<$a, false, true>($($arg),*),
            (true, false) => $f::<$a, true, false>($($arg),*),
            (true, true) => $f::<$a, true, true>($($arg),*),
        }
    };
}
use flags;

/// Two Cooley–Tukey levels (`t`, `t/2`) in one pass, the inputs from `src`;
/// `R1`, `R2` reduce each level's outputs.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn ct_pair<const R1: bool, const R2: bool>(
    k: Lanes,
    a: &mut [u64],
    t: usize,
    w1s: &[f64],
    w2s: &[[f64; 2]],
    w1q: &[f64],
    w2q: &[[f64; 2]],
    src: &impl Source,
) {
    let ws = w1s.iter().zip(w2s).zip(w1q.iter().zip(w2q));
    for (b, (block, ((&w1, &[w2a, w2b]), (&v1, &[v2a, v2b])))) in
        a.chunks_exact_mut(2 * t).zip(ws).enumerate()
    {
        let twiddles = (
            (k.splat(w1), k.splat(v1)),
            (k.splat(w2a), k.splat(v2a)),
            (k.splat(w2b), k.splat(v2b)),
        );
        ct_quads::<R1, R2>(k, quarters(block), 2 * t * b, t, twiddles, src);
    }
}

/// The twiddles of two levels on one block, splatted with their quotient
/// estimates: the first level's, then the second's for each half.
type PairTwiddles = ((__m256d, __m256d), (__m256d, __m256d), (__m256d, __m256d));

/// [`ct_pair`]'s butterflies on the same columns of a block's four
/// quarters (or of part of each), the first of them column `base` of the
/// row.
#[inline(always)]
fn ct_quads<const R1: bool, const R2: bool>(
    k: Lanes,
    [q0, q1, q2, q3]: [&mut [[u64; 4]]; 4],
    base: usize,
    t: usize,
    (w1, w2a, w2b): PairTwiddles,
    src: &impl Source,
) {
    let h = t / 2;
    let quads = q0.iter_mut().zip(q1).zip(q2).zip(q3);
    for (i, (((x0, x1), x2), x3)) in quads.enumerate() {
        // The first column of these four in the whole row.
        let c = base + 4 * i;
        let (y0, y2) = k.ctq(src.load(k, x0, c), src.load(k, x2, c + t), w1, R1);
        let (y1, y3) = k.ctq(src.load(k, x1, c + h), src.load(k, x3, c + t + h), w1, R1);
        let (y0, y1) = k.ctq(y0, y1, w2a, R2);
        let (y2, y3) = k.ctq(y2, y3, w2b, R2);
        (*x0, *x1, *x2, *x3) = (cast(y0), cast(y1), cast(y2), cast(y3));
    }
}

/// Where a first pass's inputs come from.
trait Source {
    /// The four inputs at columns `column .. column + 4` of the row, whose
    /// place in the buffer is `x`.
    fn load(&self, k: Lanes, x: &[u64; 4], column: usize) -> __m256d;

    /// `plan`'s reductions for a transform of these inputs.
    fn schedule<'p>(&self, plan: &'p FmaNtt) -> &'p [bool] {
        &plan.fwd_reduce
    }
}

/// The buffer itself: `u64` residues (`INT`), or the `f64`s an earlier pass
/// stored.
struct Stored<const INT: bool>;

impl<const INT: bool> Source for Stored<INT> {
    #[inline(always)]
    fn load(&self, k: Lanes, x: &[u64; 4], _: usize) -> __m256d {
        k.load(x, INT)
    }
}

/// Flooding noise's limbs, `R` rows and `L` limbs, reduced on the fly
/// ([`FmaNtt::forward_from_limbs`]).
struct FromLimbs<'a, const R: usize, const L: usize> {
    sum: LimbSum<R, L, true>,
    rows: [&'a [[u64; 4]]; R],
}

impl<const R: usize, const L: usize> Source for FromLimbs<'_, R, L> {
    #[inline(always)]
    fn load(&self, k: Lanes, _: &[u64; 4], column: usize) -> __m256d {
        let zero = k.simd.avx._mm256_setzero_si256();
        let w: [__m256i; R] = core::array::from_fn(|r| {
            self.rows
                .get(r)
                .and_then(|row| row.get(column / 4))
                .map_or(zero, |x| cast(*x))
        });
        self.sum.of(w)
    }

    fn schedule<'p>(&self, plan: &'p FmaNtt) -> &'p [bool] {
        &plan.limbs_reduce
    }
}

/// Small signed coefficients (`|c| < p`), the same for every prime: the
/// residues are never written ([`FmaNtt::forward_from_small`]).
struct FromSmall<'a>(&'a [[i64; 4]]);

impl Source for FromSmall<'_> {
    #[inline(always)]
    fn load(&self, k: Lanes, _: &[u64; 4], column: usize) -> __m256d {
        let c = self.0.get(column / 4).copied().unwrap_or_default();
        k.signed_to_f64(cast(c))
    }
}

/// The limb shapes [`FmaNtt::forward_from_limbs`] takes: rows and limbs.
#[derive(Clone, Copy)]
enum LimbShape {
    R1L1,
    R1L2,
    R2L2,
    R2L3,
}

/// One Cooley–Tukey level of half-width `t`.
#[inline(always)]
fn ct_level<const FIRST: bool, const R: bool>(k: Lanes, a: &mut [u64], t: usize, ws: &[f64]) {
    for (block, &w) in a.chunks_exact_mut(2 * t).zip(ws) {
        let w = k.splat(w);
        let (lo, hi) = block.split_at_mut(t);
        let (lo, _) = pulp::as_arrays_mut::<4, u64>(lo);
        let (hi, _) = pulp::as_arrays_mut::<4, u64>(hi);
        for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
            let (u, v) = k.ct(k.load(x, FIRST), k.load(y, FIRST), w, R);
            (*x, *y) = (cast(u), cast(v));
        }
    }
}

/// The last three forward levels (`t = 4, 2, 1`) in one pass, to canonical
/// residues. Each group of eight values is one dependency chain of about
/// 80 cycles (three levels, their shuffles, the canonical residues); for
/// the plain transform four groups per iteration overlap better than one
/// (the transform 5–15 % faster here, two groups about half of that), for
/// the fused products two ([`Epilogue::groups`]).
#[inline(always)]
fn ct_tail<const R4: bool, const R2: bool, const R1: bool>(
    k: Lanes,
    a: &mut [u64],
    w4s: &[f64],
    fwd2: &[[f64; 4]],
    fwd1: &[[f64; 4]],
    epilogue: impl Epilogue,
) {
    let (a4, _) = pulp::as_arrays_mut::<4, u64>(a);
    let groups = epilogue.groups();
    let wide = if groups == 4 { a4.len() / 8 * 8 } else { 0 };
    let (quads, rest) = a4.split_at_mut(wide);
    let twiddles = w4s
        .chunks_exact(4)
        .zip(fwd2.chunks_exact(4))
        .zip(fwd1.chunks_exact(4));
    for (c_index, (c, ((w4, w2), w1))) in quads.chunks_exact_mut(8).zip(twiddles).enumerate() {
        let (
            [l0, h0, l1, h1, l2, h2, l3, h3],
            [w4a, w4b, w4c, w4d],
            [w2a, w2b, w2c, w2d],
            [w1a, w1b, w1c, w1d],
        ) = (c, w4, w2, w1)
        else {
            continue;
        };
        let (x0, y0) = tail8::<R4, R2, R1>(k, (l0, h0), *w4a, w2a, w1a);
        let (x1, y1) = tail8::<R4, R2, R1>(k, (l1, h1), *w4b, w2b, w1b);
        let (x2, y2) = tail8::<R4, R2, R1>(k, (l2, h2), *w4c, w2c, w1c);
        let (x3, y3) = tail8::<R4, R2, R1>(k, (l3, h3), *w4d, w2d, w1d);
        let outputs = [
            (l0, x0),
            (h0, y0),
            (l1, x1),
            (h1, y1),
            (l2, x2),
            (h2, y2),
            (l3, x3),
            (h3, y3),
        ];
        for (i, (out, v)) in outputs.into_iter().enumerate() {
            *out = finish(k, epilogue, 8 * c_index + i, v);
        }
    }
    // Fused, two groups per iteration.
    let first = quads.len() / 2;
    let paired = if groups == 2 { rest.len() / 4 * 4 } else { 0 };
    let (pairs, rest) = rest.split_at_mut(paired);
    let twiddles = w4s
        .get(first..)
        .unwrap_or_default()
        .chunks_exact(2)
        .zip(fwd2.get(first..).unwrap_or_default().chunks_exact(2))
        .zip(fwd1.get(first..).unwrap_or_default().chunks_exact(2));
    for (p_index, (c, ((w4, w2), w1))) in pairs.chunks_exact_mut(4).zip(twiddles).enumerate() {
        let ([l0, h0, l1, h1], [w4a, w4b], [w2a, w2b], [w1a, w1b]) = (c, w4, w2, w1) else {
            continue;
        };
        let (x0, y0) = tail8::<R4, R2, R1>(k, (l0, h0), *w4a, w2a, w1a);
        let (x1, y1) = tail8::<R4, R2, R1>(k, (l1, h1), *w4b, w2b, w1b);
        let base = 2 * (first + 2 * p_index);
        *l0 = finish(k, epilogue, base, x0);
        *h0 = finish(k, epilogue, base + 1, y0);
        *l1 = finish(k, epilogue, base + 2, x1);
        *h1 = finish(k, epilogue, base + 3, y1);
    }
    // The rest one group at a time (blocks of N < 128).
    let first = first + pairs.len() / 2;
    let twiddles = w4s.iter().zip(fwd2).zip(fwd1).skip(first);
    for (g, (c, ((&w4, w2), w1))) in rest.chunks_exact_mut(2).zip(twiddles).enumerate() {
        let [lo, hi] = c else { continue };
        let (x, y) = tail8::<R4, R2, R1>(k, (lo, hi), w4, w2, w1);
        *lo = finish(k, epilogue, 2 * (first + g), x);
        *hi = finish(k, epilogue, 2 * (first + g) + 1, y);
    }
}

/// Output vector `i` of the last pass: `epilogue` applied, then canonical
/// residues as `u64`s.
#[inline(always)]
fn finish(k: Lanes, epilogue: impl Epilogue, i: usize, v: __m256d) -> [u64; 4] {
    cast(k.to_bits(k.canonical(epilogue.apply(k, i, v))))
}

/// [`ct_tail`]'s three levels on eight values `lo, hi`, in natural order,
/// before the epilogue.
#[inline(always)]
fn tail8<const R4: bool, const R2: bool, const R1: bool>(
    k: Lanes,
    (lo, hi): (&[u64; 4], &[u64; 4]),
    w4: f64,
    w2: &[f64; 4],
    w1: &[f64; 4],
) -> (__m256d, __m256d) {
    // Each twiddle's quotient estimate `w·(1/p)` is computed beside the
    // values, off their dependency chain.
    let with_quotient = |w: __m256d| (w, k.over_p(w));
    // t = 4: the two halves of these eight values.
    let (x, y) = k.ctq(
        k.load(lo, false),
        k.load(hi, false),
        with_quotient(k.splat(w4)),
        R4,
    );
    // t = 2: pairs (0, 2), (1, 3) within each four.
    let (u, v) = (k.lo128(x, y), k.hi128(x, y));
    let (u, v) = k.ctq(u, v, with_quotient(cast(*w2)), R2);
    let (x, y) = (k.lo128(u, v), k.hi128(u, v));
    // t = 1: neighbours.
    let (u, v) = (k.unpack_lo(x, y), k.unpack_hi(x, y));
    let (u, v) = k.ctq(u, v, with_quotient(cast(*w1)), R1);
    (k.unpack_lo(u, v), k.unpack_hi(u, v))
}

/// The first three inverse levels (`t = 1, 2, 4`) in one pass, from `u64`.
#[inline(always)]
fn gs_head<const R1: bool, const R2: bool, const R4: bool>(
    k: Lanes,
    a: &mut [u64],
    inv1: &[[f64; 4]],
    inv2: &[[f64; 4]],
    w4s: &[f64],
) {
    let (a4, _) = pulp::as_arrays_mut::<4, u64>(a);
    let twiddles = inv1.iter().zip(inv2).zip(w4s);
    for (c, ((w1, w2), &w4)) in a4.chunks_exact_mut(2).zip(twiddles) {
        let [lo, hi] = c else { continue };
        // Quotient estimates beside the values, as in `tail8`.
        let with_quotient = |w: __m256d| (w, k.over_p(w));
        let (x, y) = (k.load(lo, true), k.load(hi, true));
        let (u, v) = (k.unpack_lo(x, y), k.unpack_hi(x, y));
        let (u, v) = k.gsq(u, v, with_quotient(cast(*w1)), R1);
        let (x, y) = (k.unpack_lo(u, v), k.unpack_hi(u, v));
        let (u, v) = (k.lo128(x, y), k.hi128(x, y));
        let (u, v) = k.gsq(u, v, with_quotient(cast(*w2)), R2);
        let (x, y) = (k.lo128(u, v), k.hi128(u, v));
        let (x, y) = k.gsq(x, y, with_quotient(k.splat(w4)), R4);
        *lo = cast(x);
        *hi = cast(y);
    }
}

/// Two Gentleman–Sande levels (`t`, `2t`) in one pass.
#[inline(always)]
fn gs_pair<const R1: bool, const R2: bool>(
    k: Lanes,
    a: &mut [u64],
    t: usize,
    w1s: &[[f64; 2]],
    w2s: &[f64],
    w1q: &[[f64; 2]],
    w2q: &[f64],
) {
    let ws = w1s.iter().zip(w2s).zip(w1q.iter().zip(w2q));
    for (block, ((&[wa, wb], &wc), (&[va, vb], &vc))) in a.chunks_exact_mut(4 * t).zip(ws) {
        let (wa, wb, wc) = (
            (k.splat(wa), k.splat(va)),
            (k.splat(wb), k.splat(vb)),
            (k.splat(wc), k.splat(vc)),
        );
        let [q0, q1, q2, q3] = quarters(block);
        for (((x0, x1), x2), x3) in q0.iter_mut().zip(q1).zip(q2).zip(q3) {
            let (y0, y1) = k.gsq(k.load(x0, false), k.load(x1, false), wa, R1);
            let (y2, y3) = k.gsq(k.load(x2, false), k.load(x3, false), wb, R1);
            let (y0, y2) = k.gsq(y0, y2, wc, R2);
            let (y1, y3) = k.gsq(y1, y3, wc, R2);
            (*x0, *x1, *x2, *x3) = (cast(y0), cast(y1), cast(y2), cast(y3));
        }
    }
}

/// The last two inverse levels in one pass, times `N^{-1}`, to canonical
/// residues.
#[inline(always)]
fn gs_pair_last<const R1: bool>(
    k: Lanes,
    a: &mut [u64],
    t: usize,
    (w1s, w1q): (&[[f64; 2]], &[[f64; 2]]),
    n_inv: (__m256d, __m256d),
    last: (__m256d, __m256d),
) {
    for (block, (&[wa, wb], &[va, vb])) in a.chunks_exact_mut(4 * t).zip(w1s.iter().zip(w1q)) {
        let (wa, wb) = ((k.splat(wa), k.splat(va)), (k.splat(wb), k.splat(vb)));
        let [q0, q1, q2, q3] = quarters(block);
        for (((x0, x1), x2), x3) in q0.iter_mut().zip(q1).zip(q2).zip(q3) {
            let (y0, y1) = k.gsq(k.load(x0, false), k.load(x1, false), wa, R1);
            let (y2, y3) = k.gsq(k.load(x2, false), k.load(x3, false), wb, R1);
            let (y0, y2) = k.gs_last(y0, y2, n_inv, last);
            let (y1, y3) = k.gs_last(y1, y3, n_inv, last);
            (*x0, *x1, *x2, *x3) = (cast(y0), cast(y1), cast(y2), cast(y3));
        }
    }
}

/// One transform as pulp's vectorised operation: a closure's `call_once`
/// shim is only an inlining hint, and with a body this large the compiler
/// declines it, which leaves every intrinsic an out-of-line call.
struct Levels<'a> {
    plan: &'a FmaNtt,
    a: &'a mut [u64],
    direction: Direction<'a>,
}

/// Which transform [`Levels`] runs.
enum Direction<'a> {
    /// Forward, with what is fused into its last pass.
    Forward(Option<FusedProduct<'a>>),
    /// Forward from small signed coefficients ([`FmaNtt::forward_from_small`]).
    FromSmall(&'a [[i64; 4]], Option<FusedProduct<'a>>),
    /// Backward, times a factor.
    Backward(u64),
}

impl pulp::NullaryFnOnce for Levels<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        match self.direction {
            Direction::Forward(fused) => self.plan.forward_levels(self.a, fused, &Stored::<true>),
            Direction::FromSmall(coeffs, fused) => {
                self.plan.forward_levels(self.a, fused, &FromSmall(coeffs))
            }
            Direction::Backward(c) => self.plan.backward_levels(self.a, c),
        }
    }
}

/// [`FmaNtt::head`] from flooding limbs, as pulp's vectorised operation.
struct Head<'a> {
    plan: &'a FmaNtt,
    quads: [&'a mut [u64]; 4],
    base: usize,
    input: &'a LimbInput<'a>,
    shape: LimbShape,
}

impl pulp::NullaryFnOnce for Head<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let Self {
            plan,
            quads,
            base,
            input,
            shape,
        } = self;
        let k = Lanes::new(plan.simd, plan.p, plan.p_inv);
        macro_rules! from_limbs {
            ($r:literal, $l:literal) => {{
                let src = FromLimbs::<$r, $l> {
                    sum: LimbSum::new(k, input.init, &input.consts),
                    rows: core::array::from_fn(|r| {
                        as4(input.rows.get(r).copied().unwrap_or_default())
                    }),
                };
                plan.head(k, quads, base, &src)
            }};
        }
        match shape {
            LimbShape::R1L1 => from_limbs!(1, 1),
            LimbShape::R1L2 => from_limbs!(1, 2),
            LimbShape::R2L2 => from_limbs!(2, 2),
            LimbShape::R2L3 => from_limbs!(2, 3),
        }
    }
}

/// [`FmaNtt::forward_block`] for quarter `index`, as pulp's vectorised
/// operation.
struct Block<'a> {
    plan: &'a FmaNtt,
    a: &'a mut [u64],
    index: usize,
    fused: Option<FusedProduct<'a>>,
}

impl pulp::NullaryFnOnce for Block<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let k = Lanes::new(self.plan.simd, self.plan.p, self.plan.p_inv);
        self.plan.forward_block(
            k,
            self.a,
            (self.index, 4),
            self.fused,
            &self.plan.limbs_reduce,
        );
    }
}

/// What the last forward pass does to vector `i` of the outputs before
/// making it canonical.
trait Epilogue: Copy {
    /// How many groups of eight values [`ct_tail`] takes per iteration:
    /// four for the plain transform; two for the fused products, whose
    /// loads and product per output leave too few registers for four (up
    /// to 15 % slower with them) but enough for two (at N = 8192, one
    /// group at a time took 38–42 µs against 32–38 for `x·y` and `x·c·y`
    /// when this shared host ran slow, 28–30 against 27–29 when it ran
    /// fast, where four groups did no better than two; `−x·y` the same
    /// either way).
    fn groups(self) -> usize {
        2
    }

    fn apply(self, k: Lanes, i: usize, v: __m256d) -> __m256d;
}

/// The plain transform.
#[derive(Clone, Copy)]
struct Plain;

impl Epilogue for Plain {
    fn groups(self) -> usize {
        4
    }

    #[inline(always)]
    fn apply(self, _: Lanes, _: usize, v: __m256d) -> __m256d {
        v
    }
}

/// [`FusedProduct::Sub`] (`SUB`) and [`FusedProduct::Add`].
#[derive(Clone, Copy)]
struct Product<'a, const SUB: bool>(&'a [[u64; 4]], &'a [[u64; 4]]);

impl<const SUB: bool> Epilogue for Product<'_, SUB> {
    #[inline(always)]
    fn apply(self, k: Lanes, i: usize, v: __m256d) -> __m256d {
        match (self.0.get(i), self.1.get(i)) {
            (Some(x), Some(y)) => {
                let xy = k.mul(k.load(x, true), k.load(y, true));
                if SUB {
                    k.sub(v, xy)
                } else {
                    k.add(v, xy)
                }
            }
            _ => v,
        }
    }
}

/// [`FusedProduct::AddScaled`], the scalar splatted.
#[derive(Clone, Copy)]
struct AddScaledProduct<'a>(&'a [[u64; 4]], __m256d, &'a [[u64; 4]]);

impl Epilogue for AddScaledProduct<'_> {
    #[inline(always)]
    fn apply(self, k: Lanes, i: usize, v: __m256d) -> __m256d {
        match (self.0.get(i), self.2.get(i)) {
            (Some(x), Some(y)) => {
                let xc = k.mul(k.load(x, true), self.1);
                k.add(v, k.mul(xc, k.load(y, true)))
            }
            _ => v,
        }
    }
}

/// A row as arrays of four values.
#[inline(always)]
fn as4(x: &[u64]) -> &[[u64; 4]] {
    pulp::as_arrays::<4, u64>(x).0
}

/// A block's four quarters, as arrays of four values.
#[inline(always)]
fn quarters(block: &mut [u64]) -> [&mut [[u64; 4]]; 4] {
    split4(block).map(|q| pulp::as_arrays_mut::<4, u64>(q).0)
}

/// A block's four quarters.
#[inline(always)]
fn split4(block: &mut [u64]) -> [&mut [u64]; 4] {
    let q = block.len() / 4;
    let (h0, h1) = block.split_at_mut(2 * q);
    let (q0, q1) = h0.split_at_mut(q);
    let (q2, q3) = h1.split_at_mut(q);
    [q0, q1, q2, q3]
}

impl Lanes {
    /// Cooley–Tukey: `(u + v·w, u − v·w)`.
    #[inline(always)]
    fn ct(self, u: __m256d, v: __m256d, w: __m256d, reduce: bool) -> (__m256d, __m256d) {
        let vw = self.mul(v, w);
        let (x, y) = (self.add(u, vw), self.sub(u, vw));
        if reduce {
            (self.reduce(x), self.reduce(y))
        } else {
            (x, y)
        }
    }

    /// [`Self::ct`] with a quotient estimate.
    #[inline(always)]
    fn ctq(
        self,
        u: __m256d,
        v: __m256d,
        (w, wq): (__m256d, __m256d),
        reduce: bool,
    ) -> (__m256d, __m256d) {
        let vw = self.mul_quotient(v, w, wq);
        let (x, y) = (self.add(u, vw), self.sub(u, vw));
        if reduce {
            (self.reduce(x), self.reduce(y))
        } else {
            (x, y)
        }
    }

    /// Gentleman–Sande with a quotient estimate.
    #[inline(always)]
    fn gsq(
        self,
        u: __m256d,
        v: __m256d,
        (w, wq): (__m256d, __m256d),
        reduce: bool,
    ) -> (__m256d, __m256d) {
        let s = self.add(u, v);
        let d = self.mul_quotient(self.sub(u, v), w, wq);
        if reduce {
            (self.reduce(s), self.reduce(d))
        } else {
            (s, d)
        }
    }

    /// The last inverse level, times `N^{-1}`: `(u + v)·N^{-1}` and
    /// `(u − v)·ψ^{−brv(1)}·N^{-1}`, canonical, as `u64` bit patterns.
    #[inline(always)]
    fn gs_last(
        self,
        u: __m256d,
        v: __m256d,
        (n_inv, n_inv_q): (__m256d, __m256d),
        (last, last_q): (__m256d, __m256d),
    ) -> (__m256i, __m256i) {
        let s = self.mul_quotient(self.add(u, v), n_inv, n_inv_q);
        let d = self.mul_quotient(self.sub(u, v), last, last_q);
        (
            self.to_bits(self.canonical(s)),
            self.to_bits(self.canonical(d)),
        )
    }

    /// `[x0, x1, y0, y1]`.
    #[inline(always)]
    fn lo128(self, x: __m256d, y: __m256d) -> __m256d {
        self.simd.avx._mm256_permute2f128_pd::<0x20>(x, y)
    }

    /// `[x2, x3, y2, y3]`.
    #[inline(always)]
    fn hi128(self, x: __m256d, y: __m256d) -> __m256d {
        self.simd.avx._mm256_permute2f128_pd::<0x31>(x, y)
    }

    /// `[x0, y0, x2, y2]`.
    #[inline(always)]
    fn unpack_lo(self, x: __m256d, y: __m256d) -> __m256d {
        self.simd.avx._mm256_unpacklo_pd(x, y)
    }

    /// `[x1, y1, x3, y3]`.
    #[inline(always)]
    fn unpack_hi(self, x: __m256d, y: __m256d) -> __m256d {
        self.simd.avx._mm256_unpackhi_pd(x, y)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// Replaying the bounds with the chosen reductions keeps every level's
    /// inputs and outputs within 2^52, for 14 levels (N = 16384), from
    /// residues and from flooding limbs' sums; the forward transform of
    /// primes up to 2^45 needs no reduction (from limbs neither), and the
    /// inverse of large primes does.
    #[test]
    fn schedules_stay_within_the_bound() {
        for bits in [30u32, 43, 44, 45, 49, 50] {
            let p = ((1u64 << bits) - 1) as f64;
            for input in [p, limb_sum_bound(p)] {
                let mut b = input;
                let fwd = Schedule::forward(p, input, 14);
                for &reduce in &fwd {
                    b += Schedule::product(p, b);
                    assert!(b <= BOUND, "{bits}-bit forward from {input}");
                    if reduce {
                        b = Schedule::reduced(p, b);
                    }
                }
                assert_eq!(fwd.iter().any(|&r| r), bits >= 49, "{bits}-bit forward");
            }
            let mut b = p;
            let inv = Schedule::inverse(p, 14);
            for &reduce in &inv {
                assert!(2.0 * b <= BOUND, "{bits}-bit inverse");
                let out = (2.0 * b).max(Schedule::product(p, 2.0 * b));
                b = if reduce {
                    Schedule::reduced(p, out)
                } else {
                    out
                };
            }
            assert!(2.0 * b <= BOUND, "{bits}-bit inverse, last level");
            assert_eq!(inv.iter().any(|&r| r), bits > 38, "{bits}-bit inverse");
        }
    }
}
