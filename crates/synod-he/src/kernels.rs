//! Row-wise kernels over RNS residue matrices, for the protocol hot paths.
//!
//! `fhe_math::rq::Poly` does one prime after another, allocates for every
//! operation and has no in-place access to its residues. The share
//! computations here work directly on `primes × N` residue matrices
//! (row-major, one row per prime, NTT form unless said otherwise), run the
//! rows in parallel with rayon (which honours `RAYON_NUM_THREADS`), and write
//! the public result straight into the wire vector.
//!
//! Every modular operation is `fhe_math::zq::Modulus`'s constant-time one
//! (Barrett / Shoup with branch-free final subtraction) or, for the fused
//! multiply-add/sub on CPUs with AVX-512 IFMA, the vectorised Barrett
//! reduction of `ifma` (the same values, tested), and the NTT is
//! [`crate::ntt::Ntt`] (`tfhe-ntt` 0.7, bit-for-bit `fhe-math`'s
//! `NttOperator` for the same prime and degree), so results are bit-for-bit
//! those of the `Poly` arithmetic (tests check it). Buffers
//! that hold secrets are `Zeroizing`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use fhe_math::rq::{Context, Poly, Representation};
use fhe_math::zq::Modulus;
use ndarray::ArrayView2;
use rand::{CryptoRng, RngCore};
use rayon::prelude::*;
use zeroize::Zeroizing;

use crate::ntt::{FusedProduct, Ntt};
use crate::{Error, Result};

#[cfg(target_arch = "x86_64")]
pub(crate) mod fma;
#[cfg(target_arch = "x86_64")]
mod ifma;

/// `row ± a'·b mod q` (`a' = a`, or `a·c mod q` with a `scale` `c`) with
/// AVX2 + FMA double-precision products (`true`), or nothing (`false`: no
/// such CPU, or `q ≥ 2^50`; the caller's scalar loop runs).
fn fma_mul_acc(
    q: &Modulus,
    subtract: bool,
    row: &mut [u64],
    a: &[u64],
    scale: Option<u64>,
    b: &[u64],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        fma::mul_acc_into(q, subtract, row, a, scale, b)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (q, subtract, row, a, scale, b);
        false
    }
}

/// Whether the AVX2 + FMA row products run for every one of these primes
/// (this CPU has AVX2 and FMA, and every prime is below 2^50).
pub(crate) fn fma_covers(moduli: &[Modulus]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        fma::token().is_some() && moduli.iter().all(|q| **q < fma::MAX_PRIME)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = moduli;
        false
    }
}

/// `row ± a·b mod q` with AVX-512 IFMA when this CPU has it and `q < 2^50`
/// (`true`), else nothing (`false`, the caller's scalar loop runs).
fn ifma_mul_acc(q: &Modulus, subtract: bool, row: &mut [u64], a: &[u64], b: &[u64]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if subtract {
            ifma::mul_sub_into(q, row, a, b)
        } else {
            ifma::mul_add_into(q, row, a, b)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (q, subtract, row, a, b);
        false
    }
}

/// `acc0 += Σ_g x[g]⊙w0[g]`, `acc1 += Σ_g x[g]⊙w1[g]` modulo `q` in one
/// IFMA pass, reduced lazily, or one AVX2 + FMA pass (`true`), or nothing
/// (`false`: the caller takes the products one at a time). All values
/// below `q`; every row as long as the accumulators, and as many rows of
/// each.
pub(crate) fn dot2_add_into(
    q: &Modulus,
    acc0: &mut [u64],
    acc1: &mut [u64],
    x: &[&[u64]],
    w0: &[&[u64]],
    w1: &[&[u64]],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        ifma::dot2_add_into(q, acc0, acc1, x, w0, w1)
            || fma::dot2_add_into(**q, acc0, acc1, x, w0, w1)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (q, acc0, acc1, x, w0, w1);
        false
    }
}

/// In place, `a0 ← a0·b0`, `b0 ← a0·b1 + a1·b0`, `a1 ← a1·b1` modulo `q` in
/// one IFMA pass, else one AVX2 + FMA pass, or `false` (nothing written;
/// the caller computes it otherwise).
pub(crate) fn tensor_in_place(
    q: &Modulus,
    a0: &mut [u64],
    a1: &mut [u64],
    b0: &mut [u64],
    b1: &[u64],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        ifma::tensor_in_place(q, a0, a1, b0, b1) || fma::tensor_in_place(q, a0, a1, b0, b1)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (q, a0, a1, b0, b1);
        false
    }
}

/// The tensor of `(a0, a1)` and `(b0, b1)` modulo `q` into other rows:
/// `c0 = a0·b0`, `c1 = a0·b1 + a1·b0`, `c2 = a1·b1`, in one IFMA pass, or
/// `false` (nothing written; the caller copies the inputs and takes
/// [`tensor_in_place`]).
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
    #[cfg(target_arch = "x86_64")]
    {
        ifma::tensor_into(q, a0, a1, b0, b1, c0, c1, c2)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (q, a0, a1, b0, b1, c0, c1, c2);
        false
    }
}

/// In place, the tensor of `(a0, a1)` with itself: `a0 ← a0²`, `a1 ← a1²`,
/// `c1 = 2·a0·a1` modulo `q` in one AVX2 + FMA pass, or `false` (nothing
/// written; the caller computes it otherwise).
pub(crate) fn square_in_place(q: &Modulus, a0: &mut [u64], a1: &mut [u64], c1: &mut [u64]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        !has_ifma() && fma::square_in_place(q, a0, a1, c1)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (q, a0, a1, c1);
        false
    }
}

/// The moduli and NTT operators of one context.
pub(crate) struct RingOps {
    degree: usize,
    moduli: Vec<Modulus>,
    /// Shared with every other set of operators holding the same prime
    /// ([`shared_ntt`]).
    ntt: Vec<Arc<Ntt>>,
}

type Cache = Mutex<HashMap<(Vec<u64>, usize), Arc<RingOps>>>;

impl RingOps {
    /// The (cached) operators for `ctx`. Building an NTT plan costs about a
    /// millisecond per prime, so they are built once per process.
    pub(crate) fn of(ctx: &Arc<Context>) -> Result<Arc<RingOps>> {
        // Keyed by the context's address: `Context` does not expose its
        // degree, and finding it out allocates a whole zero polynomial. The
        // cache holds each context alive, so an address is never reused for
        // another context; it is never emptied, which is bounded because
        // contexts come from `Params`, built once per (set, p) and process.
        // Do not call this with contexts made per operation.
        type ByContext = Mutex<HashMap<usize, (Arc<Context>, Arc<RingOps>)>>;
        static BY_CONTEXT: OnceLock<ByContext> = OnceLock::new();
        let key = Arc::as_ptr(ctx) as usize;
        let cache = BY_CONTEXT.get_or_init(|| Mutex::new(HashMap::new()));
        if let Some((_, ops)) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(ops.clone());
        }
        let ops = Self::for_moduli(ctx.moduli(), ctx_degree(ctx))?;
        cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (ctx.clone(), ops.clone()));
        Ok(ops)
    }

    /// The (cached) operators for `moduli` at `degree`, without building an
    /// fhe-math `Context` (which makes NTT tables of its own).
    pub(crate) fn for_moduli(moduli: &[u64], degree: usize) -> Result<Arc<RingOps>> {
        static CACHE: OnceLock<Cache> = OnceLock::new();
        let key = (moduli.to_vec(), degree);
        let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
        if let Some(ops) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(ops.clone());
        }
        let moduli = moduli
            .iter()
            .map(|&q| Ok(Modulus::new(q)?))
            .collect::<Result<Vec<_>>>()?;
        // The levels of one chain and the multiplication's bases share
        // primes: each prime's transform is built once, the missing ones in
        // parallel.
        let ntt = moduli
            .par_iter()
            .map(|q| shared_ntt(q, degree))
            .collect::<Result<Vec<_>>>()?;
        let ops = Arc::new(RingOps {
            degree,
            moduli,
            ntt,
        });
        cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, ops.clone());
        Ok(ops)
    }

    /// Ring degree N.
    pub(crate) fn degree(&self) -> usize {
        self.degree
    }

    /// Number of primes.
    pub(crate) fn len(&self) -> usize {
        self.moduli.len()
    }

    /// The constant-time modulus of each prime.
    pub(crate) fn moduli(&self) -> &[Modulus] {
        &self.moduli
    }

    /// The NTT operator of each prime.
    pub(crate) fn ntt(&self) -> &[Arc<Ntt>] {
        &self.ntt
    }

    /// Row `i` of a row-major `primes × N` matrix (empty if out of range;
    /// callers have checked the shape).
    pub(crate) fn row<'a>(&self, m: &'a [u64], i: usize) -> &'a [u64] {
        m.get(i * self.degree..(i + 1) * self.degree).unwrap_or(&[])
    }

    /// Runs `f(prime index, modulus, ntt, row)` on every row of `m` in parallel.
    pub(crate) fn par_rows<F>(&self, m: &mut [u64], f: F)
    where
        F: Fn(usize, &Modulus, &Ntt, &mut [u64]) + Sync + Send,
    {
        m.par_chunks_mut(self.degree)
            .zip(self.moduli.par_iter().zip(self.ntt.par_iter()))
            .enumerate()
            .for_each(|(i, (row, (q, ntt)))| f(i, q, ntt, row));
    }

    /// A zeroed `primes × N` matrix that is wiped on drop.
    pub(crate) fn secret_matrix(&self) -> Zeroizing<Vec<u64>> {
        Zeroizing::new(vec![0u64; self.len() * self.degree])
    }

    /// Small signed coefficients (centred-binomial samples, `|c| < q`),
    /// reduced into each prime and taken to NTT form: what `Poly::small` /
    /// `try_convert_from(&[i64])` + `change_representation(Ntt)` computes.
    pub(crate) fn small_to_ntt(&self, coeffs: &[i64]) -> Zeroizing<Vec<u64>> {
        Zeroizing::new(self.small_forward(coeffs, |_| None, |_, _, _| {}))
    }

    /// Small signed coefficients (`|c| < q`, centred-binomial samples) in
    /// NTT form, row-major, with `fused(i)` added to row `i` in its
    /// transform's last pass and then `after(i, q, row)` run on it. Where
    /// every transform converts the coefficients in its first pass
    /// ([`Ntt::forward_from_small`]: the same small values for every prime,
    /// never written per prime and read back) they go into a zeroed matrix,
    /// else into [`Self::small_matrix`]'s residues. Wipe the result, or
    /// overwrite it with public values, before it is dropped.
    pub(crate) fn small_forward<'f, P, A>(&self, coeffs: &[i64], fused: P, after: A) -> Vec<u64>
    where
        P: Fn(usize) -> Option<FusedProduct<'f>> + Sync + Send,
        A: Fn(usize, &Modulus, &mut [u64]) + Sync + Send,
    {
        let direct = coeffs.len() == self.degree && self.ntt.iter().all(|ntt| ntt.takes_small());
        let mut m = if direct {
            vec![0u64; self.len() * self.degree]
        } else {
            self.small_matrix(coeffs)
        };
        self.par_rows(&mut m, |i, q, ntt, row| {
            let fused = fused(i);
            if !(direct && ntt.forward_from_small(coeffs, row, fused)) {
                if direct {
                    // The first pass did not take them (a product that
                    // does not fit): the residues, as `small_matrix`.
                    for (r, &c) in row.iter_mut().zip(coeffs) {
                        *r = small_residue(**q, c);
                    }
                }
                match fused {
                    Some(fused) => ntt.forward_and(q, row, fused),
                    None => ntt.forward(row),
                }
            }
            after(i, q, row);
        });
        m
    }

    /// Small signed coefficients (`|c| < q`, one per column) reduced into
    /// each prime, row-major in coefficient form: [`small_residue`] per entry,
    /// written once into fresh memory instead of over a zeroed matrix
    /// (zeroing a 320 KiB matrix cost as much as filling it). Wipe it, or
    /// overwrite it with public values, before it is dropped.
    ///
    /// Rows are `N` long whatever `coeffs.len()`: missing coefficients are
    /// zero and any beyond `N` are ignored (as over a zeroed matrix).
    pub(crate) fn small_matrix(&self, coeffs: &[i64]) -> Vec<u64> {
        let n = self.degree;
        let coeffs = coeffs.get(..n).unwrap_or(coeffs);
        let mut m = Vec::with_capacity(self.len() * n);
        for q in &self.moduli {
            let p = **q;
            dispatch(
                #[inline(always)]
                || m.extend(coeffs.iter().map(|&c| small_residue(p, c))),
            );
            m.resize(m.len() + (n - coeffs.len()), 0);
        }
        m
    }
}

/// A process-wide table of values built once per key ([`memo`]).
pub(crate) type Memo<K, V> = OnceLock<Mutex<HashMap<K, Arc<V>>>>;

/// A process-wide table of values built once per key: the value for `key`,
/// built by `build` outside the lock on first use. Of two threads racing
/// for one key, the first value stored is kept (both are the same).
pub(crate) fn memo<K: Eq + std::hash::Hash, V>(
    cache: &Memo<K, V>,
    key: K,
    build: impl FnOnce() -> Result<V>,
) -> Result<Arc<V>> {
    let cache = cache.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(v) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(v.clone());
    }
    let v = Arc::new(build()?);
    Ok(cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_insert(v)
        .clone())
}

/// The NTT of size `degree` modulo `q`, built once per process (about a
/// millisecond) and shared by every [`RingOps`] holding `q`.
fn shared_ntt(q: &Modulus, degree: usize) -> Result<Arc<Ntt>> {
    static PLANS: Memo<(u64, usize), Ntt> = OnceLock::new();
    memo(&PLANS, (**q, degree), || {
        Ntt::new(q, degree)
            .ok_or_else(|| Error::Parameters(format!("no NTT of size {degree} modulo {}", **q)))
    })
}

fn ctx_degree(ctx: &Arc<Context>) -> usize {
    // `Context` does not expose its degree; a zero polynomial has N columns.
    Poly::zero(ctx, Representation::PowerBasis)
        .coefficients()
        .ncols()
}

/// `c mod p` for `|c| < p` (centred-binomial samples: `|c| ≤ 2·16`), branch-free: a
/// negative `c` (as two's complement) plus `p` wraps to `p − |c|`.
#[inline(always)]
fn small_residue(p: u64, c: i64) -> u64 {
    debug_assert!(c.unsigned_abs() < p);
    let negative_mask = (c >> 63) as u64;
    (c as u64).wrapping_add(p & negative_mask)
}

/// Runs `f` compiled for the best instruction set this CPU has (AVX-512,
/// AVX2 or the baseline), chosen once at run time: the workspace builds
/// for the baseline x86-64, so loops outside such a dispatch get no
/// AVX2/AVX-512 code. fhe-math dispatches its vector operations the same way.
#[inline(always)]
pub(crate) fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    static ARCH: OnceLock<pulp::Arch> = OnceLock::new();
    ARCH.get_or_init(pulp::Arch::new).dispatch(f)
}

/// A constant `w < p` with its 52-bit Shoup companion `⌊w·2^52/p⌋`, for a
/// prime `p < 2^50`: `x·w mod p` for any `x < 2^52` is
/// `x·w − ⌊x·w'/2^52⌋·p` up to one subtraction of `p` (the quotient
/// estimate is short by less than `x/2^52 + 1 < 2`), which the IFMA kernels
/// compute in 52-bit arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shoup52 {
    w: u64,
    companion: u64,
}

impl Shoup52 {
    /// `w` modulo `p` (`None` unless `p < 2^50` and `w < p`).
    pub(crate) fn new(w: u64, p: u64) -> Option<Self> {
        if !(3..IFMA_MAX_PRIME).contains(&p) || w >= p {
            return None;
        }
        let companion = u64::try_from((u128::from(w) << 52) / u128::from(p)).ok()?;
        Some(Self { w, companion })
    }

    /// `w`.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn value(&self) -> u64 {
        self.w
    }
}

/// The primes the IFMA kernels reduce modulo are below this (52-bit lanes).
pub(crate) const IFMA_MAX_PRIME: u64 = 1 << 50;

/// Whether the IFMA kernels take every product modulo these primes.
pub(crate) fn ifma_covers(moduli: &[Modulus]) -> bool {
    has_ifma() && moduli.iter().all(|q| **q < IFMA_MAX_PRIME)
}

/// Whether [`dot_const_rows`] and [`dot_planned`] have a vector
/// kernel on this CPU (IFMA, or AVX2 + FMA).
pub(crate) fn has_vector_dots() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_ifma() || fma::token().is_some()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the IFMA kernels run on this CPU (AVX-512 IFMA, detected once).
pub(crate) fn has_ifma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        ifma::token().is_some()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `out[k] = Σ_i rows[i][k]·consts[i] mod p` with IFMA, else with AVX2 +
/// FMA (`rows[i][k] < 2^52`, `p < 2^50`, slices as long as `out`): the
/// exact residue. `false` (nothing done) without either or with a shape
/// they do not take.
pub(crate) fn dot_const_rows(p: u64, out: &mut [u64], rows: &[&[u64]], consts: &[Shoup52]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        ifma::dot_const_rows(p, out, rows, consts) || fma::dot_const_rows(p, out, rows, consts)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (p, out, rows, consts);
        false
    }
}

/// Whether [`dot_planned`] reduces once per value for these
/// constants and bounds (false without IFMA).
#[cfg(test)]
pub(crate) fn sums_lazily(p: u64, consts: &[Shoup52], bounds: &[u64]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        ifma::sums_lazily(p, consts, bounds)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (p, consts, bounds);
        false
    }
}

/// One constant dot product modulo `p` that runs many times (a base
/// conversion's or a scaling's, block after block): its constants, the
/// exclusive bounds of its rows (at most 2^52 each), and the FMA kernel's
/// reduction schedule for them, computed once here instead of per call.
pub(crate) struct DotPlan {
    p: u64,
    consts: Vec<Shoup52>,
    bounds: Vec<u64>,
    /// [`fma::reductions`] of `consts` and `bounds` (empty elsewhere).
    schedule: Vec<bool>,
}

impl DotPlan {
    /// `None` for bounds of another number than the constants or above
    /// 2^52.
    pub(crate) fn new(p: u64, consts: Vec<Shoup52>, bounds: Vec<u64>) -> Option<Self> {
        if bounds.len() != consts.len() || bounds.iter().any(|&b| b > 1 << 52) {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        let schedule = fma::reductions(p, &consts, &bounds);
        #[cfg(not(target_arch = "x86_64"))]
        let schedule = Vec::new();
        Some(Self {
            p,
            consts,
            bounds,
            schedule,
        })
    }

    #[cfg(test)]
    pub(crate) fn consts(&self) -> &[Shoup52] {
        &self.consts
    }

    #[cfg(test)]
    pub(crate) fn bounds(&self) -> &[u64] {
        &self.bounds
    }
}

/// `out[k] = Σ_i rows[i][k]·consts[i] mod p` for `plan`'s prime and
/// constants, rows below its bounds: reduced once per value instead of once
/// per product where the bounds allow it with IFMA (see that kernel), else
/// only where they say the sum could pass 2^53 with AVX2 + FMA. `false`
/// (nothing done) without either, or with a shape they do not take; a
/// caller's bound that does not hold gives a wrong residue, never undefined
/// behaviour.
pub(crate) fn dot_planned(out: &mut [u64], rows: &[&[u64]], plan: &DotPlan) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let DotPlan {
            p,
            consts,
            bounds,
            schedule,
        } = plan;
        ifma::dot_const_rows_below(*p, out, rows, consts, bounds)
            || fma::dot_const_rows_scheduled(*p, out, rows, consts, schedule)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (out, rows, plan);
        false
    }
}

/// [`dot_planned`] for every output prime of a base conversion at once:
/// `outs[j]` from `rows` and, when `own` is not empty, `own[j]`, with
/// `plans[j]` (its constants those of the shared rows, then the own row's).
/// With IFMA each shared row is loaded once for all outputs; `false`
/// (nothing done) elsewhere, for the caller's loop over [`dot_planned`].
pub(crate) fn dot_planned_each(
    outs: &mut [&mut [u64]],
    rows: &[&[u64]],
    own: &[&[u64]],
    plans: &[DotPlan],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        ifma::dot_planned_each(outs, rows, own, plans)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (outs, rows, own, plans);
        false
    }
}

/// Words in a buffer of their own that starts `line` cache lines (64 B)
/// past a 4 KiB boundary. The L1 data cache here is eight-way with 4 KiB
/// per way, so rows whose addresses agree modulo 4 KiB (any rows `N = 2^k
/// ≥ 512` words long in one matrix, and large allocations, which start
/// alike) share one set: a kernel that streams more than about eight such
/// rows side by side evicts its own lines. The key switch's product
/// streams `3·digits + 2` rows ([`crate::gadget`]); on distinct lines it
/// takes 30–50 % less time here.
pub(crate) struct Placed {
    buf: Vec<u64>,
    start: usize,
    len: usize,
}

impl Placed {
    /// `words`, copied to start on line `line` (mod 64).
    pub(crate) fn copy_of(words: &[u64], line: usize) -> Self {
        let mut buf = Vec::with_capacity(words.len() + PAGE_WORDS);
        let start = placement(buf.as_ptr(), line);
        buf.resize(start, 0);
        buf.extend_from_slice(words);
        Self {
            buf,
            start,
            len: words.len(),
        }
    }

    pub(crate) fn words(&self) -> &[u64] {
        self.buf
            .get(self.start..self.start + self.len)
            .unwrap_or_default()
    }
}

impl AsRef<[u64]> for Placed {
    fn as_ref(&self) -> &[u64] {
        self.words()
    }
}

/// 4 KiB in words.
pub(crate) const PAGE_WORDS: usize = 512;

/// How many words past `ptr` (8-byte aligned) the next address lies that is
/// `line` cache lines (mod 64) past a 4 KiB boundary: below [`PAGE_WORDS`].
pub(crate) fn placement(ptr: *const u64, line: usize) -> usize {
    let target = (line % 64) * 8;
    let at = (ptr as usize / 8) % PAGE_WORDS;
    (target + PAGE_WORDS - at) % PAGE_WORDS
}

/// `row[k] += (a[k]·c mod q)·b[k] mod q` (all below `q`) in one pass: with
/// IFMA a 52-bit Shoup product and a Barrett product per lane, with AVX2 +
/// FMA two double-precision products, else fhe-math's constant-time
/// products.
pub(crate) fn scaled_mul_add_into(q: &Modulus, row: &mut [u64], a: &[u64], c: u64, b: &[u64]) {
    debug_assert!(a.len() == row.len() && b.len() == row.len());
    #[cfg(target_arch = "x86_64")]
    if let Some(w) = Shoup52::new(c, **q) {
        if ifma::scaled_mul_add_into(q, row, a, w, b) {
            return;
        }
    }
    if fma_mul_acc(q, false, row, a, Some(c), b) {
        return;
    }
    dispatch(
        #[inline(always)]
        || {
            for ((r, &x), &y) in row.iter_mut().zip(a).zip(b) {
                *r = q.add(*r, q.mul(q.mul(x, c), y));
            }
        },
    )
}

/// `row = row·c mod q` in place (`c < q`, residues below `q`): IFMA's
/// Shoup product where the CPU has it and `q < 2^50`, else fhe-math's.
pub(crate) fn scale_in_place(q: &Modulus, row: &mut [u64], c: u64) {
    #[cfg(target_arch = "x86_64")]
    if let Some(w) = Shoup52::new(c, **q) {
        if ifma::scale_in_place(**q, row, w) {
            return;
        }
    }
    let cs = q.shoup(c);
    dispatch(
        #[inline(always)]
        || {
            for x in row.iter_mut() {
                *x = q.mul_shoup(*x, c, cs);
            }
        },
    )
}

/// Runs `f` on a rayon worker thread: one hand-over to the pool for a whole
/// step instead of one per parallel section. Called from a thread outside
/// the pool (a thread that did not call `join_global_pool`), every `par_iter` and `join`
/// injects its job and puts the caller to sleep until it is done, a round
/// trip of context switches each time; inside a worker they run inline.
pub(crate) fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// `out[k] = Σ_i rows[i][k] mod q`, in one pass over `out`: column block by
/// column block (a block of `out` stays in L1 while every row's block is
/// added into it), with branch-free modular additions (`min(s, s − q)` in
/// unsigned arithmetic), which vectorise. Returns, per row, whether it held
/// a value `≥ q` (then `out` is meaningless): the sum checks its inputs as
/// it reads them.
pub(crate) fn sum_into(q: &Modulus, out: &mut [u64], rows: &[&[u64]]) -> Vec<bool> {
    const BLOCK: usize = 1024;
    let p = **q;
    let mut bad = vec![false; rows.len()];
    dispatch(
        #[inline(always)]
        || {
            for (b, block) in out.chunks_mut(BLOCK).enumerate() {
                block.iter_mut().for_each(|o| *o = 0);
                let cols = b * BLOCK..b * BLOCK + block.len();
                for (row, bad) in rows.iter().zip(bad.iter_mut()) {
                    let mut seen = false;
                    for (o, &x) in block.iter_mut().zip(row.get(cols.clone()).unwrap_or(&[])) {
                        seen |= x >= p;
                        let s = o.wrapping_add(x);
                        *o = s.min(s.wrapping_sub(p));
                    }
                    *bad |= seen;
                }
            }
        },
    );
    bad
}

/// `row[k] −= a[k]·b[k] mod q`, in one pass (no temporary vector).
pub(crate) fn mul_sub_into(q: &Modulus, row: &mut [u64], a: &[u64], b: &[u64]) {
    debug_assert!(a.len() == row.len() && b.len() == row.len());
    if ifma_mul_acc(q, true, row, a, b) || fma_mul_acc(q, true, row, a, None, b) {
        return;
    }
    dispatch(
        #[inline(always)]
        || {
            for ((r, &x), &y) in row.iter_mut().zip(a).zip(b) {
                *r = q.sub(*r, q.mul(x, y));
            }
        },
    )
}

/// `row[k] += a[k]·b[k] mod q`, in one pass (no temporary vector).
pub(crate) fn mul_add_into(q: &Modulus, row: &mut [u64], a: &[u64], b: &[u64]) {
    debug_assert!(a.len() == row.len() && b.len() == row.len());
    if ifma_mul_acc(q, false, row, a, b) || fma_mul_acc(q, false, row, a, None, b) {
        return;
    }
    dispatch(
        #[inline(always)]
        || {
            for ((r, &x), &y) in row.iter_mut().zip(a).zip(b) {
                *r = q.add(*r, q.mul(x, y));
            }
        },
    )
}

/// `acc[k] += a[k]·w[k] mod q` for a fixed (public) `w` with Shoup
/// companions `ws`, in one pass. Where [`ifma_covers`] the moduli,
/// [`mul_add_into`] is as fast and needs no companions.
pub(crate) fn mul_shoup_add_into(q: &Modulus, acc: &mut [u64], a: &[u64], w: &[u64], ws: &[u64]) {
    debug_assert!(a.len() == acc.len() && w.len() == acc.len() && ws.len() == acc.len());
    dispatch(
        #[inline(always)]
        || {
            for (((r, &x), &y), &ys) in acc.iter_mut().zip(a).zip(w).zip(ws) {
                *r = q.add(*r, q.mul_shoup(x, y, ys));
            }
        },
    )
}

/// The Shoup companions of a key matrix (rows of `N` modulo the primes of
/// `ops`, [`shoup_vec`] row by row) for [`mul_key_add_into`], or nothing
/// where [`ifma_covers`] or [`fma_covers`] the primes (those products need
/// none).
pub(crate) fn key_companions(ops: &RingOps, m: &[u64]) -> Vec<u64> {
    if ifma_covers(&ops.moduli) || fma_covers(&ops.moduli) {
        return Vec::new();
    }
    m.chunks(ops.degree.max(1))
        .zip(&ops.moduli)
        .flat_map(|(row, q)| shoup_vec(q, row))
        .collect()
}

/// `acc[k] += a[k]·w[k] mod q` for a key row `w` with its companions `ws`
/// from [`key_companions`] (empty: the IFMA or FMA products).
pub(crate) fn mul_key_add_into(q: &Modulus, acc: &mut [u64], a: &[u64], w: &[u64], ws: &[u64]) {
    match ws {
        [] => mul_add_into(q, acc, a, w),
        ws => mul_shoup_add_into(q, acc, a, w, ws),
    }
}

/// The Shoup companions `⌊w·2^64/q⌋` of a row of residues `w < q`: fhe-math's
/// `Modulus::shoup_vec` without a 128-bit division per value. With
/// `R = ⌊2^128/q⌋ = r_hi·2^64 + r_lo`, the estimate `w·r_hi + ⌊w·r_lo/2^64⌋`
/// is short by at most one (`w < 2^64`), fixed by one comparison of the
/// remainder (branch-free). For odd `q` (every prime we use).
pub(crate) fn shoup_vec(q: &Modulus, w: &[u64]) -> Vec<u64> {
    let p = **q;
    // ⌊(2^128 − 1)/q⌋ = ⌊2^128/q⌋ for odd q (q does not divide 2^128).
    let r = u128::MAX / u128::from(p);
    let (r_hi, r_lo) = ((r >> 64) as u64, r as u64);
    dispatch(
        #[inline(always)]
        || {
            w.iter()
                .map(|&w| {
                    let est = w
                        .wrapping_mul(r_hi)
                        .wrapping_add(((u128::from(w) * u128::from(r_lo)) >> 64) as u64);
                    let rem = (u128::from(w) << 64).wrapping_sub(u128::from(est) * u128::from(p));
                    est + u64::from(rem >= u128::from(p))
                })
                .collect()
        },
    )
}

/// Samples one small polynomial's coefficients: centred binomial with
/// `variance` (`1 ..= 16`), exactly `fhe_util::sample_vec_cbd`'s algorithm
/// (so `Poly::small`'s) run on the [`Stream::Small`] expansion of a seed
/// drawn from `rng`, compiled under [`dispatch`]: fhe-util is built for
/// baseline x86-64, which has no `popcnt` instruction, and its bit counts
/// then dominate the sampling.
pub(crate) fn sample_small<R: RngCore + CryptoRng>(
    degree: usize,
    variance: usize,
    rng: &mut R,
) -> Result<Zeroizing<Vec<i64>>> {
    Ok(SmallSeed::draw(degree, variance, rng)?.coeffs())
}

/// The seed of one small polynomial ([`sample_small`]), drawn from the
/// caller's RNG on the caller's thread; its words are expanded and counted
/// into coefficients ([`Self::coeffs`]) later, in parallel jobs. Wiped on
/// drop.
pub(crate) struct SmallSeed {
    degree: usize,
    variance: usize,
    seed: Zeroizing<[u8; 32]>,
}

impl SmallSeed {
    /// Draws the seed for `degree` coefficients of `variance` (`1 ..= 16`).
    pub(crate) fn draw<R: RngCore + CryptoRng>(
        degree: usize,
        variance: usize,
        rng: &mut R,
    ) -> Result<Self> {
        if !(1..=16).contains(&variance) {
            return Err(Error::Parameters(format!(
                "centred-binomial variance {variance} is not between 1 and 16"
            )));
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Ok(Self {
            degree,
            variance,
            seed,
        })
    }

    /// The coefficients. Coefficient `j` is `popcount(low half) −
    /// popcount(high half)` of the `4·variance`-bit window at bit
    /// `j·4·variance` of the word stream (least significant bit first), as
    /// fhe-util's shifting pool reads it; each window is read on its own,
    /// so the loop carries no dependency.
    pub(crate) fn coeffs(&self) -> Zeroizing<Vec<i64>> {
        let variance = self.variance;
        let bits = 4 * variance;
        // As many words as fhe-util's pool consumes, in the same order.
        let words = (self.degree * bits).div_ceil(64);
        let mask_add = u64::MAX >> (64 - 2 * variance);
        let mask_sub = mask_add << (2 * variance);
        let mut out = Zeroizing::new(vec![0i64; self.degree]);
        if bits % 8 == 0 && bits <= 56 {
            // Whole bytes per window (an even variance up to 14, as the
            // default 10): window j is the little-endian word at byte
            // j·bits/8, masked, with no shifts across words. Eight zero
            // bytes after the stream keep the last reads in bounds; the
            // masks never reach them. The buffer is held as words, so its
            // wipe on drop is one store per eight bytes, not per byte (the
            // byte-wise wipe took half the function's time).
            let mut buf = Zeroizing::new(vec![0u64; words + 1]);
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(buf.as_mut_slice());
            Stream::Small.bytes(&self.seed, bytes.get_mut(..8 * words).unwrap_or_default());
            let bytes: &[u8] = bytes;
            let step = bits / 8;
            dispatch(
                #[inline(always)]
                || {
                    for (o, w) in out.iter_mut().zip(bytes.windows(8).step_by(step)) {
                        let w = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
                        *o = i64::from((w & mask_add).count_ones())
                            - i64::from((w & mask_sub).count_ones());
                    }
                },
            );
            return out;
        }
        let mut stream = Zeroizing::new(vec![0u64; words]);
        Stream::Small.words(&self.seed, 0, &mut stream);
        dispatch(
            #[inline(always)]
            || {
                for (j, o) in out.iter_mut().enumerate() {
                    let bit = j * bits;
                    let (word, shift) = (bit / 64, bit % 64);
                    let lo = stream.get(word).copied().unwrap_or(0);
                    let hi = stream.get(word + 1).copied().unwrap_or(0);
                    let window = ((u128::from(hi) << 64 | u128::from(lo)) >> shift) as u64;
                    *o = i64::from((window & mask_add).count_ones())
                        - i64::from((window & mask_sub).count_ones());
                }
            },
        );
        out
    }
}

/// The residues of `poly` in NTT form: borrowed when it already is (Ntt or
/// NttShoup), else converted in a copy with synod's NTT (bit-for-bit
/// fhe-math's `change_representation`).
pub(crate) enum NttView<'a> {
    Borrowed(&'a Poly),
    Owned {
        residues: Zeroizing<Vec<u64>>,
        primes: usize,
        degree: usize,
    },
}

impl NttView<'_> {
    pub(crate) fn of(poly: &Poly) -> Result<NttView<'_>> {
        if *poly.representation() != Representation::PowerBasis {
            return Ok(NttView::Borrowed(poly));
        }
        let c = poly.coefficients();
        let (primes, degree) = (c.nrows(), c.ncols());
        let ops = RingOps::for_moduli(poly.ctx().moduli(), degree)?;
        let mut residues = Zeroizing::new(match c.to_slice() {
            Some(s) => s.to_vec(),
            None => c.iter().copied().collect(),
        });
        ops.par_rows(&mut residues, |_, _, ntt, row| ntt.forward(row));
        Ok(NttView::Owned {
            residues,
            primes,
            degree,
        })
    }

    /// The first `rows` rows (a lower level's primes), as one contiguous slice.
    pub(crate) fn rows(&self, rows: usize) -> Result<&[u64]> {
        match self {
            NttView::Borrowed(p) => contiguous_rows(p.coefficients(), rows),
            NttView::Owned {
                residues,
                primes,
                degree,
            } => residues
                .get(..rows * degree)
                .filter(|_| rows <= *primes)
                .ok_or_else(|| {
                    Error::Parameters("a polynomial has fewer primes than the level needs".into())
                }),
        }
    }
}

/// A row-major NTT residue matrix (one row of `N` per prime of `ctx`) as
/// a `Poly` of `ctx`, taking the vector without a copy.
pub(crate) fn ntt_poly(residues: Vec<u64>, ctx: &Arc<Context>) -> Result<Poly> {
    let rows = ctx.moduli().len().max(1);
    let arr = ndarray::Array2::from_shape_vec((rows, residues.len() / rows), residues)
        .map_err(|e| Error::Parameters(e.to_string()))?;
    Ok(
        <Poly as fhe_math::rq::traits::TryConvertFrom<_>>::try_convert_from(
            arr,
            ctx,
            false,
            Representation::Ntt,
        )?,
    )
}

/// The first `rows` rows of a standard-layout residue matrix.
pub(crate) fn contiguous_rows(m: ArrayView2<'_, u64>, rows: usize) -> Result<&[u64]> {
    let n = m.ncols();
    if rows > m.nrows() {
        return Err(Error::Parameters(
            "a polynomial has fewer primes than the level needs".into(),
        ));
    }
    m.to_slice()
        .and_then(|s| s.get(..rows * n))
        .ok_or_else(|| Error::Parameters("residue matrix is not contiguous".into()))
}

/// A BLAKE3 writer that feeds the hasher in large, chunk-aligned blocks so
/// that it can use its wide SIMD paths (a 16-byte header followed by 8-byte
/// residues would otherwise leave every block misaligned). The bytes hashed
/// are exactly those written, in order.
pub(crate) struct BlockHasher {
    h: blake3::Hasher,
    buf: Box<[u8]>,
    len: usize,
}

impl BlockHasher {
    const BLOCK: usize = 64 * 1024;

    pub(crate) fn new(h: blake3::Hasher) -> Self {
        Self {
            h,
            buf: vec![0u8; Self::BLOCK].into_boxed_slice(),
            len: 0,
        }
    }

    /// Writes `v` little-endian.
    pub(crate) fn write_u64(&mut self, v: u64) {
        self.write_slice(&[v]);
    }

    /// Writes each value little-endian.
    pub(crate) fn write_slice(&mut self, vals: &[u64]) {
        // Long slices go to the hasher as they are (their in-memory bytes are
        // the little-endian encoding on a little-endian machine), after what
        // is buffered: the same byte stream, without copying; BLAKE3 spreads
        // a long input over the rayon threads.
        const DIRECT: usize = 1 << 12;
        if cfg!(target_endian = "little") && vals.len() >= DIRECT {
            if let Some(bytes) = self.buf.get(..self.len) {
                self.h.update(bytes);
            }
            self.len = 0;
            let bytes: &[u8] = bytemuck::cast_slice(vals);
            if bytes.len() >= 1 << 17 && rayon::current_num_threads() > 1 {
                self.h.update_rayon(bytes);
            } else {
                self.h.update(bytes);
            }
            return;
        }
        self.write_buffered(vals);
    }

    fn write_buffered(&mut self, mut vals: &[u64]) {
        while !vals.is_empty() {
            let room = (Self::BLOCK - self.len) / 8;
            let (now, rest) = vals.split_at(room.min(vals.len()));
            if let Some(dst) = self.buf.get_mut(self.len..self.len + 8 * now.len()) {
                for (d, v) in dst.chunks_exact_mut(8).zip(now) {
                    d.copy_from_slice(&v.to_le_bytes());
                }
            }
            self.len += 8 * now.len();
            if self.len + 8 > Self::BLOCK {
                self.flush();
            }
            vals = rest;
        }
    }

    /// Feeds the buffer to the hasher up to a 1 KiB chunk boundary of the
    /// whole stream (counting what was hashed before this writer), keeping the
    /// tail for the next block: BLAKE3 then hashes whole chunks with its wide
    /// SIMD path instead of compressing a misaligned head and tail block by
    /// block (which cost as much again for 16 KiB blocks after a short header).
    fn flush(&mut self) {
        const CHUNK: u64 = 1024;
        let fed = self.h.count();
        let end = (fed + self.len as u64) / CHUNK * CHUNK;
        let take = (end.saturating_sub(fed) as usize).min(self.len);
        if take == 0 {
            return;
        }
        if let Some(bytes) = self.buf.get(..take) {
            self.h.update(bytes);
        }
        self.buf.copy_within(take..self.len, 0);
        self.len -= take;
    }

    /// Writes the residues of `m` in logical (row-major) order.
    pub(crate) fn write_residues(&mut self, m: ArrayView2<'_, u64>) {
        match m.to_slice() {
            Some(s) => self.write_slice(s),
            None => m.iter().for_each(|&v| self.write_u64(v)),
        }
    }

    pub(crate) fn finalize(mut self) -> blake3::Hash {
        if let Some(bytes) = self.buf.get(..self.len) {
            self.h.update(bytes);
        }
        self.h.finalize()
    }
}

/// The domains of randomness expanded from a seed. One label per use, so
/// one seed never feeds two of them.
///
/// - The protocol's streams ([`Stream::Dealt`], [`Stream::Projection`]),
///   which other members expand too: BLAKE3 in keyed mode (a PRF) under the
///   seed, over the label, read as an extendable output.
/// - A member's own streams ([`Stream::Flooding`], [`Stream::Small`]), which
///   no one else expands, take the faster of two PRFs on this CPU: with
///   AVX-512, the same keyed BLAKE3 XOF (faster than ChaCha
///   there); without it, where BLAKE3 computes its output blocks one
///   by one, the ChaCha12 keystream (RFC 8439's ChaCha with 12 rounds,
///   nonce zero) under the key `BLAKE3-keyed(seed, label)`, a fresh key per
///   seed and label (about three times the XOF's speed with AVX2). Twelve
///   rounds are the `rand` crate's `StdRng`, the Rust ecosystem's default
///   CSPRNG; the best published attacks reach seven (Aumasson, "Too Much
///   Crypto", 2019, argues for eight). A seed of these streams is expanded
///   within the call that draws it, never stored, so the choice never has
///   to agree across machines.
#[derive(Clone, Copy)]
pub(crate) enum Stream {
    /// Flooding noise ([`FloodLimbs`]).
    Flooding,
    /// Centred-binomial small polynomials ([`SmallSeed`]).
    Small,
    /// A dealer's Shamir values at one node, expanded by the member the
    /// seed is sent to (`reshare::draw_from_seed`): part of the protocol.
    Dealt,
    /// The public projection vectors of a resharing challenge, from a seed
    /// derived from the transcript: part of the protocol.
    Projection,
}

impl Stream {
    fn label(self) -> &'static [u8] {
        match self {
            Self::Flooding => b"synod flooding noise",
            Self::Small => b"synod centred binomial",
            Self::Dealt => b"synod dealt shamir values",
            Self::Projection => b"synod reshare projections",
        }
    }

    /// The stream of `seed` in this domain, at its start.
    fn reader(self, seed: &[u8; 32]) -> StreamReader {
        self.reader_with(seed, own_streams_use_chacha())
    }

    /// [`Self::reader`], with ChaCha12 for a member's own streams when
    /// `chacha`.
    fn reader_with(self, seed: &[u8; 32], chacha: bool) -> StreamReader {
        use chacha20::cipher::KeyIvInit;
        use zeroize::Zeroize;
        let mut hasher = blake3::Hasher::new_keyed(seed);
        hasher.update(self.label());
        let own = matches!(self, Self::Flooding | Self::Small);
        let reader = match self {
            _ if !(own && chacha) => StreamReader::Xof(hasher.finalize_xof()),
            _ => {
                let mut key = hasher.finalize();
                let cipher = chacha20::ChaCha12::new(key.as_bytes().into(), &[0u8; 12].into());
                key.zeroize();
                StreamReader::ChaCha(cipher)
            }
        };
        hasher.zeroize();
        reader
    }

    /// The first `out.len()` bytes of the stream of `seed` (the reader's
    /// state is wiped when it drops).
    fn bytes(self, seed: &[u8; 32], out: &mut [u8]) {
        self.reader(seed).fill(out);
    }

    /// Fills `out` with the 64-bit words `at, at + 1, …` of the stream of
    /// `seed` (its bytes `8·at, …`, little-endian words). The stream's
    /// state is wiped after use.
    fn words(self, seed: &[u8; 32], at: usize, out: &mut [u64]) {
        let mut reader = self.reader(seed);
        reader.seek(8 * at as u64);
        reader.fill(bytemuck::cast_slice_mut(out));
        for w in out.iter_mut() {
            *w = u64::from_le(*w);
        }
    }
}

/// Whether a member's own streams take ChaCha12 rather than BLAKE3's XOF:
/// on CPUs without AVX-512 (detected once).
pub(crate) fn own_streams_use_chacha() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static CHACHA: OnceLock<bool> = OnceLock::new();
        *CHACHA.get_or_init(|| {
            !(std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vl"))
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        true
    }
}

/// A [`Stream`]'s generator; its state is wiped on drop.
enum StreamReader {
    Xof(blake3::OutputReader),
    ChaCha(chacha20::ChaCha12),
}

impl StreamReader {
    /// The next `out.len()` bytes.
    fn fill(&mut self, out: &mut [u8]) {
        use chacha20::cipher::StreamCipher;
        match self {
            Self::Xof(xof) => xof.fill(out),
            Self::ChaCha(cipher) => {
                out.fill(0);
                cipher.apply_keystream(out);
            }
        }
    }

    /// Moves to byte `position` of the stream.
    fn seek(&mut self, position: u64) {
        use chacha20::cipher::StreamCipherSeek;
        match self {
            Self::Xof(xof) => xof.set_position(position),
            Self::ChaCha(cipher) => cipher.seek(position),
        }
    }
}

impl Drop for StreamReader {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        match self {
            Self::Xof(xof) => xof.zeroize(),
            // chacha20's `zeroize` feature wipes the cipher's state on drop.
            Self::ChaCha(_) => {}
        }
    }
}

/// A [`Stream`] read as an RNG (little-endian words, bytes in order), for
/// samplers written against `RngCore`. Read it in large blocks: both
/// generators compute a whole 64-byte block for every read, however short.
/// The state is wiped on drop. [`StreamRng::from_caller`] is the RNG
/// [`sample_small`] runs fhe-util's algorithm on (a seed taken from the
/// caller's RNG, then its [`Stream::Small`] words), for test references that
/// call `Poly::small` or fhe-util directly.
pub(crate) struct StreamRng(StreamReader);

impl StreamRng {
    /// The stream of `seed` in `domain`, from its start.
    pub(crate) fn new(domain: Stream, seed: &[u8; 32]) -> Self {
        Self(domain.reader(seed))
    }

    #[cfg(test)]
    pub(crate) fn from_caller<R: RngCore>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self::new(Stream::Small, &seed)
    }
}

impl RngCore for StreamRng {
    fn next_u32(&mut self) -> u32 {
        let mut w = [0u8; 4];
        self.0.fill(&mut w);
        u32::from_le_bytes(w)
    }

    fn next_u64(&mut self) -> u64 {
        let mut w = [0u8; 8];
        self.0.fill(&mut w);
        u64::from_le_bytes(w)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill(dest);
    }
}

/// A PRF's output under a secret seed.
impl CryptoRng for StreamRng {}

/// 64-bit words per block of the flooding stream expanded by one task
/// (32 KiB: a few blocks per polynomial, enough to split over threads).
const FLOOD_BLOCK: usize = 4096;

/// The unused words between two rows of flooding limbs (1 KiB), and where
/// row 0 starts past a 4 KiB boundary ([`Placed`]). The NTT's
/// first pass ([`FloodLimbs::forward_into`]) reads every row at four columns
/// `N/4` apart while writing the output's four: with rows a power of two
/// long, those lines fall in one set of the 4 KiB-aliased, eight-way L1
/// cache and evict each other. Apart, the rows' lines lie in other sets
/// than each other and than a large allocation's near its page start,
/// which is where the output rows begin (about 6 % off a row's reduction
/// and transform here).
const FLOOD_ROW_GAP: usize = 128;

/// `out[LANES·i + k] = (words[i] >> (64/LANES)·k) & mask`: the top limbs
/// packed `LANES` to a word, little-endian (unrolled per lane count).
fn unpack_lanes<const LANES: usize>(words: &[u64], out: &mut [u64], mask: u64) {
    let shift = 64 / LANES;
    let full = out.len() / LANES;
    let mut whole = out.chunks_exact_mut(LANES);
    for (w, lane) in words.iter().zip(&mut whole) {
        for (k, o) in lane.iter_mut().enumerate() {
            *o = (w >> (shift * k)) & mask;
        }
    }
    let rest = whole.into_remainder();
    if let Some(w) = words.get(full) {
        for (k, o) in rest.iter_mut().enumerate() {
            *o = (w >> (shift * k)) & mask;
        }
    }
}

/// The seed of one flooding polynomial, drawn from the caller's RNG on the
/// caller's thread (which need not be in the pool, nor the RNG `Send`) and
/// expanded later, inside the step's parallel section. Wiped on drop.
pub(crate) struct FloodSeed {
    bits: u32,
    seed: Zeroizing<[u8; 32]>,
}

impl FloodSeed {
    pub(crate) fn draw<R: RngCore + CryptoRng>(bits: u32, rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self { bits, seed }
    }

    /// The noise of `degree` coefficients ([`FloodLimbs`]).
    pub(crate) fn expand(&self, degree: usize) -> FloodLimbs {
        FloodLimbs::expand(self.bits, degree, &self.seed)
    }
}

/// Uniform flooding noise on `[−2^bits, 2^bits)`: coefficient `j` is
/// `Σ_l rows64[l][j]·2^(64·l) − 2^bits`, the top row masked to the bits that
/// remain. The caller's RNG (which need not be `Send`) gives a 32-byte seed;
/// the words are that seed's [`Stream::Flooding`] (keyed BLAKE3's XOF with
/// AVX-512, else ChaCha12 keyed from the seed), cut into blocks
/// that are expanded in parallel, each from its own position, so the noise
/// is the same at every thread count: whole 64-bit
/// words for every row but the top, then the top limbs packed in the fewest
/// of 1, 2, 4 or 8 bytes that hold them, little-endian (80 random bits per
/// coefficient for 73 flooding bits, not 128). Every limb is a
/// fixed-position field, so the IFMA reduction cuts its 48-bit limbs in
/// registers.
pub(crate) struct FloodLimbs {
    bits: u32,
    degree: usize,
    per_coeff: usize,
    /// Where row 0 starts in `rows64`, and row `l` `l·stride` after it.
    first: usize,
    stride: usize,
    /// `per_coeff` rows of `degree` 64-bit limbs, least significant first,
    /// [`FLOOD_ROW_GAP`] words apart.
    rows64: Zeroizing<Vec<u64>>,
}

impl FloodLimbs {
    /// The noise of `seed`, expanded in parallel blocks.
    fn expand(bits: u32, degree: usize, seed: &[u8; 32]) -> Self {
        let total = bits as usize + 1;
        let per_coeff = total.div_ceil(64);
        let top_bits = total - 64 * (per_coeff - 1);
        let lanes = 8 / top_bits.div_ceil(8).next_power_of_two();
        let top_mask = u64::MAX >> (64 - top_bits);
        // Allocated once at its final size: the secret limbs are never moved.
        let stride = degree + FLOOD_ROW_GAP;
        let mut rows64 = Zeroizing::new(vec![0u64; PAGE_WORDS + (per_coeff - 1) * stride + degree]);
        // Row 0 starts 1 KiB past a 4 KiB boundary (FLOOD_ROW_GAP).
        let first = placement(rows64.as_ptr(), FLOOD_ROW_GAP / 8);
        let (lower, top) = rows64
            .get_mut(first..)
            .unwrap_or_default()
            .split_at_mut((per_coeff - 1) * stride);
        let lower_words = (per_coeff - 1) * degree;
        let fill_lower = || {
            lower
                .par_chunks_mut(stride)
                .enumerate()
                .flat_map(|(l, row)| {
                    let row = row.get_mut(..degree).unwrap_or_default();
                    row.par_chunks_mut(FLOOD_BLOCK)
                        .enumerate()
                        .map(move |(b, block)| (l * degree + b * FLOOD_BLOCK, block))
                })
                .for_each(|(at, block)| Stream::Flooding.words(seed, at, block));
        };
        let fill_top = || {
            if lanes == 1 {
                // Whole words: drawn in place and masked.
                top.par_chunks_mut(FLOOD_BLOCK)
                    .enumerate()
                    .for_each(|(b, block)| {
                        Stream::Flooding.words(seed, lower_words + b * FLOOD_BLOCK, block);
                        block.iter_mut().for_each(|w| *w &= top_mask);
                    });
                return;
            }
            let mut packed = Zeroizing::new(vec![0u64; degree.div_ceil(lanes)]);
            packed
                .par_chunks_mut(FLOOD_BLOCK)
                .zip(top.par_chunks_mut(FLOOD_BLOCK * lanes))
                .enumerate()
                .for_each(|(b, (words, out))| {
                    Stream::Flooding.words(seed, lower_words + b * FLOOD_BLOCK, words);
                    match lanes {
                        2 => unpack_lanes::<2>(words, out, top_mask),
                        4 => unpack_lanes::<4>(words, out, top_mask),
                        _ => {
                            debug_assert_eq!(lanes, 8);
                            unpack_lanes::<8>(words, out, top_mask)
                        }
                    }
                });
        };
        rayon::join(fill_lower, fill_top);
        Self {
            bits,
            degree,
            per_coeff,
            first,
            stride,
            rows64,
        }
    }

    /// 64-bit limb row `l` (empty beyond the top).
    fn row64(&self, l: usize) -> &[u64] {
        let from = self.first + l * self.stride;
        self.rows64
            .get(from..from + self.degree)
            .unwrap_or_default()
    }

    /// `row[k] = (value_k − 2^bits) mod q` in coefficient form, constant time.
    pub(crate) fn reduce_into(&self, q: &Modulus, row: &mut [u64]) {
        debug_assert_eq!(row.len(), self.degree);
        if self.reduce_vector(q, row) {
            return;
        }
        dispatch(
            #[inline(always)]
            || self.reduce_block(q, row),
        )
    }

    /// [`Self::reduce_into`] with IFMA, else AVX2 + FMA: `Σ_l
    /// limb_l·[2^{48l}]_q` over the value's 48-bit limbs (cut from the
    /// 64-bit rows in registers), plus `−2^bits`, in one pass; `false`
    /// (nothing done: the scalar path runs) without either, when `q ≥ 2^50`
    /// or beyond 255 flooding bits. Constant time: the kernels do not
    /// branch on values.
    fn reduce_vector(&self, q: &Modulus, row: &mut [u64]) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let p = **q;
            self.limb_input(q).is_some_and(|i| {
                ifma::dot_const_limbs64(p, i.init, row, &i.rows, &i.consts)
                    || fma::dot_const_limbs64(p, i.init, row, &i.rows, &i.consts)
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (q, row);
            false
        }
    }

    /// This noise's limbs for prime `q` as the vector kernels take them:
    /// the rows, the constants `2^{48l} mod q` and `init = −2^bits mod q`;
    /// `None` for `q ≥ 2^50` or beyond [`ifma::MAX_LIMB_ROWS`] rows.
    #[cfg(target_arch = "x86_64")]
    fn limb_input(&self, q: &Modulus) -> Option<LimbInput<'_>> {
        let p = **q;
        if self.per_coeff > ifma::MAX_LIMB_ROWS {
            return None;
        }
        let limbs = (self.bits as usize + 1).div_ceil(ifma::LIMB_BITS);
        let mut power = 1 % p;
        let mut consts = Vec::with_capacity(limbs);
        for _ in 0..limbs {
            consts.push(Shoup52::new(power, p)?);
            power = (0..ifma::LIMB_BITS).fold(power, |acc, _| q.add(acc, acc));
        }
        // − 2^bits, added as p − (2^bits mod p) in the same pass.
        let offset = (0..self.bits).fold(1u64 % p, |acc, _| q.add(acc, acc));
        Some(LimbInput {
            init: q.neg(offset),
            rows: (0..self.per_coeff).map(|l| self.row64(l)).collect(),
            consts,
        })
    }

    #[inline(always)]
    fn reduce_block(&self, q: &Modulus, row: &mut [u64]) {
        // 2^bits mod q.
        let offset = (0..self.bits).fold(1u64 % **q, |acc, _| q.add(acc, acc));
        let per = self.per_coeff;
        let limb = |l: usize, j: usize| self.row64(l).get(j).copied().unwrap_or(0);
        for (j, out) in row.iter_mut().enumerate() {
            // Horner from the top: the top two limbs form one u128 (Barrett
            // reduces any u128), then acc < q < 2^62 so acc·2^64 + limb fits.
            let top = limb(per - 1, j);
            let acc = match per {
                1 => q.reduce(top),
                _ => q.reduce_u128((u128::from(top) << 64) | u128::from(limb(per - 2, j))),
            };
            let acc = (0..per.saturating_sub(2)).rev().fold(acc, |acc, l| {
                q.reduce_u128((u128::from(acc) << 64) | u128::from(limb(l, j)))
            });
            *out = q.sub(acc, offset);
        }
    }

    /// This noise for prime `q` in NTT form into `row`, then `fused`
    /// ([`Ntt::forward_and`]): reduced in the transform's first pass where
    /// that pass is synod's ([`Ntt::forward_from_limbs`]), which saves
    /// storing the residues and reading them back; else reduced, then
    /// transformed. Constant time.
    pub(crate) fn forward_into(
        &self,
        q: &Modulus,
        ntt: &Ntt,
        row: &mut [u64],
        fused: Option<FusedProduct<'_>>,
    ) {
        #[cfg(target_arch = "x86_64")]
        if let Some(input) = self.limb_input(q) {
            if ntt.forward_from_limbs(&input, row, fused) {
                return;
            }
        }
        self.reduce_into(q, row);
        match fused {
            Some(fused) => ntt.forward_and(q, row, fused),
            None => ntt.forward(row),
        }
    }
}

/// Flooding noise's limbs for one prime, as the vector kernels take them
/// ([`FloodLimbs::limb_input`]): the value in column `k` is
/// `init + Σ_l limb_l(k)·consts[l] mod p`, where `limb_l(k)` is bits
/// `48·l .. 48·l + 48` of `Σ_r rows[r][k]·2^(64·r)`.
#[cfg(target_arch = "x86_64")]
pub(crate) struct LimbInput<'a> {
    pub(crate) init: u64,
    pub(crate) rows: Vec<&'a [u64]>,
    pub(crate) consts: Vec<Shoup52>,
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::{ParameterSet, Params};
    use fhe_math::rq::traits::TryConvertFrom;
    use rand::SeedableRng;

    /// A power-basis polynomial viewed in NTT form is fhe-math's
    /// `change_representation`; an NTT-form one is borrowed as it is.
    #[test]
    fn ntt_view_matches_change_representation() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(6);
        for level in [0, 1] {
            let ctx = params.ctx(level).unwrap();
            let p = Poly::random(ctx, Representation::PowerBasis, &mut rng);
            let mut expected = p.clone();
            expected.change_representation(Representation::Ntt);
            let l = ctx.moduli().len();
            let view = NttView::of(&p).unwrap();
            assert!(matches!(view, NttView::Owned { .. }));
            assert_eq!(
                view.rows(l).unwrap(),
                expected.coefficients().as_slice().unwrap()
            );
            assert_eq!(view.rows(1).unwrap().len(), 2048);
            assert!(view.rows(l + 1).is_err());
            let borrowed = NttView::of(&expected).unwrap();
            assert!(matches!(borrowed, NttView::Borrowed(_)));
            assert_eq!(borrowed.rows(l).unwrap(), view.rows(l).unwrap());
        }
    }

    /// The division-free Shoup companions are fhe-math's, for every prime
    /// we use and values from 0 to q − 1.
    #[test]
    fn shoup_companions_match_fhe_math() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        for set in [ParameterSet::Bfv8192, ParameterSet::Bfv16384] {
            let params = Params::new(set, 20).unwrap();
            let mut primes = params.moduli().to_vec();
            primes.push(params.plaintext());
            primes.extend([(1 << 62) - 57, 3, 65537]);
            for p in primes {
                let q = Modulus::new(p).unwrap();
                let mut w = q.random_vec(4096, &mut rng);
                w.extend([0, 1, 2, p - 2, p - 1, p / 2, p / 2 + 1]);
                assert_eq!(shoup_vec(&q, &w), q.shoup_vec(&w), "q = {p}");
            }
        }
    }

    /// The dispatched sampler is fhe-util's on the seed's stream, value for
    /// value; it takes only the seed from the caller's RNG; two draws differ.
    #[test]
    fn small_samples_equal_fhe_util() {
        for variance in [1, 2, 3, 7, 10, 14, 16] {
            for degree in [1, 7, 2048, 8192] {
                let mut a = rand_chacha::ChaCha20Rng::seed_from_u64(variance as u64);
                let mut b = a.clone();
                let ours = sample_small(degree, variance, &mut a).unwrap();
                // The stream read independently: a seed from the caller,
                // then this CPU's generator under it (keyed BLAKE3 over the
                // label, or ChaCha12 keyed so), little-endian words.
                let mut seed = [0u8; 32];
                b.fill_bytes(&mut seed);
                let mut stream = own_stream_reference(&seed, b"synod centred binomial");
                let theirs = fhe_util::sample_vec_cbd(degree, variance, &mut stream).unwrap();
                assert_eq!(*ours, theirs, "variance {variance}, degree {degree}");
                assert_eq!(a.next_u64(), b.next_u64());
                if degree >= 2048 {
                    assert_ne!(*sample_small(degree, variance, &mut a).unwrap(), theirs);
                }
            }
        }
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0);
        assert!(sample_small(8, 0, &mut rng).is_err());
        assert!(sample_small(8, 17, &mut rng).is_err());
    }

    /// Small coefficients taken in the transform's first pass give the
    /// residues' transform, with each fused product and the `after` step,
    /// for the largest coefficients (`±(q − 1)` of the smallest prime) and
    /// samples; a short input takes the residues' path. The first-pass path
    /// runs where the transform is the AVX2 + FMA one (CPUs without IFMA).
    #[test]
    fn small_coefficients_in_the_first_pass_equal_the_residues_transform() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let ops = RingOps::of(params.ctx(0).unwrap()).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(14);
        let q_min = ops.moduli().iter().map(|q| **q).min().unwrap() as i64;
        let mut coeffs = sample_small(2048, 10, &mut rng).unwrap().to_vec();
        for (j, c) in coeffs.iter_mut().enumerate().take(64) {
            *c = if j % 2 == 0 { q_min - 1 } else { 1 - q_min };
        }
        let x: Vec<u64> = ops
            .moduli()
            .iter()
            .flat_map(|q| (0..2048).map(|_| rng.next_u64() % **q).collect::<Vec<_>>())
            .collect();
        let y: Vec<u64> = ops
            .moduli()
            .iter()
            .flat_map(|q| vec![**q - 1; 2048])
            .collect();
        for variant in 0..4 {
            let fused = |i: usize| {
                let (x, y) = (ops.row(&x, i), ops.row(&y, i));
                match variant {
                    0 => None,
                    1 => Some(FusedProduct::Sub(x, y)),
                    2 => Some(FusedProduct::Add(x, y)),
                    _ => Some(FusedProduct::AddScaled(x, 12345, y)),
                }
            };
            let after = |i: usize, q: &Modulus, row: &mut [u64]| {
                if i == 1 {
                    q.add_vec(row, ops.row(&x, i));
                }
            };
            let mut want = ops.small_matrix(&coeffs);
            ops.par_rows(&mut want, |i, q, ntt, row| {
                match fused(i) {
                    Some(f) => ntt.forward_and(q, row, f),
                    None => ntt.forward(row),
                }
                after(i, q, row);
            });
            let got = ops.small_forward(&coeffs, fused, after);
            assert!(got == want, "variant {variant}");
            // Fewer coefficients than N: zero-padded residues.
            let short = ops.small_forward(&coeffs[..100], fused, after);
            let mut padded = coeffs[..100].to_vec();
            padded.resize(2048, 0);
            assert!(
                short == ops.small_forward(&padded, fused, after),
                "short, {variant}"
            );
        }
        let ran = ops.ntt().iter().all(|ntt| {
            let mut row = vec![0u64; 2048];
            ntt.forward_from_small(&coeffs, &mut row, None)
        });
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            ran,
            ops.ntt().iter().all(|ntt| matches!(**ntt, Ntt::Fma(_)))
        );
        #[cfg(not(target_arch = "x86_64"))]
        assert!(!ran);
    }

    #[test]
    fn small_to_ntt_matches_poly() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        for level in [0, 2] {
            let ctx = params.ctx(level).unwrap();
            let ops = RingOps::of(ctx).unwrap();
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
            let c = sample_small(2048, 10, &mut rng).unwrap();
            let mut expected =
                Poly::try_convert_from(c.as_slice(), ctx, false, Representation::PowerBasis)
                    .unwrap();
            expected.change_representation(Representation::Ntt);
            let got = ops.small_to_ntt(&c);
            assert_eq!(got.as_slice(), expected.coefficients().as_slice().unwrap());
            // Short input is zero-padded, long input cut at N.
            let short = ops.small_matrix(&c[..100]);
            let long = ops.small_matrix(&[c.as_slice(), &[1, 2, 3]].concat());
            assert_eq!(short.len(), ops.len() * 2048);
            assert_eq!(long, ops.small_matrix(&c));
            for (i, q) in ops.moduli().iter().enumerate() {
                let row = &short[i * 2048..(i + 1) * 2048];
                assert_eq!(row[..100], q.reduce_vec_i64(&c[..100])[..]);
                assert!(row[100..].iter().all(|&x| x == 0));
            }
            // The branch-free reduction agrees with fhe-math on all |c| < q.
            let edge: Vec<i64> = (0..2048i64).map(|i| (i - 1024) * 1_000_000_007).collect();
            for q in ops.moduli() {
                let row: Vec<u64> = edge.iter().map(|&c| small_residue(**q, c)).collect();
                assert!(row == q.reduce_vec_i64(&edge));
                let tiny: Vec<i64> = vec![-(**q as i64) + 1, -1, 0, 1, **q as i64 - 1];
                let row: Vec<u64> = tiny.iter().map(|&c| small_residue(**q, c)).collect();
                assert_eq!(row, q.reduce_vec_i64(&tiny));
            }
        }
    }

    /// Chunk-aligned flushing hashes exactly the bytes written, whatever
    /// was hashed before the writer and however the writes fall.
    #[test]
    fn block_hasher_aligns_without_changing_the_hash() {
        let vals: Vec<u64> = (0..20_000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        for header in [0usize, 1, 80, 1023, 1024, 1025, 70_000] {
            let head: Vec<u8> = (0..header).map(|i| i as u8).collect();
            let mut plain = blake3::Hasher::new();
            plain.update(&head);
            plain.update(&7u64.to_le_bytes());
            // Buffered (short) and direct (long, and ≥ 128 KiB: spread over
            // threads) writes interleaved.
            let order: Vec<&u64> = vals.iter().chain(&vals[..100]).chain(&vals).collect();
            for v in order {
                plain.update(&v.to_le_bytes());
            }
            let mut h = blake3::Hasher::new();
            h.update(&head);
            let mut w = BlockHasher::new(h);
            w.write_u64(7);
            let (a, b) = vals.split_at(8_191);
            w.write_slice(a);
            w.write_slice(b);
            w.write_slice(&vals[..100]);
            w.write_slice(&vals);
            assert_eq!(w.finalize(), plain.finalize(), "header {header}");
        }
    }

    #[test]
    fn block_hasher_is_residue_by_residue() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let p = Poly::random(params.ctx(0).unwrap(), Representation::Ntt, &mut rng);
        // Contiguous, and a non-contiguous (transposed) view, after a header.
        for m in [p.coefficients(), p.coefficients().reversed_axes()] {
            let mut a = BlockHasher::new(blake3::Hasher::new());
            a.write_u64(5);
            a.write_residues(m);
            let mut b = blake3::Hasher::new();
            b.update(&5u64.to_le_bytes());
            for r in m.iter() {
                b.update(&r.to_le_bytes());
            }
            assert_eq!(a.finalize(), b.finalize());
        }
    }

    /// The one-pass sum equals fhe-math's modular additions one row at a
    /// time, at the largest values.
    #[test]
    fn sum_into_matches_add_vec() {
        use rand::Rng;
        // Two whole column blocks and a partial one.
        const LEN: usize = 2 * 1024 + 67;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
        for p in [0x7fffffd8001u64, 0x1ffffffea0001, (1 << 62) - 57, 3] {
            let q = Modulus::new(p).unwrap();
            for count in [1, 2, 4, 7] {
                let mut rows: Vec<Vec<u64>> = (0..count)
                    .map(|_| (0..LEN).map(|_| rng.random_range(0..p)).collect())
                    .collect();
                rows[0][0] = p - 1;
                if count > 1 {
                    rows[1][0] = p - 1;
                }
                let mut want = rows[0].clone();
                for r in &rows[1..] {
                    q.add_vec(&mut want, r);
                }
                let refs: Vec<&[u64]> = rows.iter().map(|r| r.as_slice()).collect();
                let mut got = vec![7u64; LEN];
                assert_eq!(sum_into(&q, &mut got, &refs), vec![false; count]);
                assert_eq!(got, want, "q = {p}, {count} rows");
                // An unreduced value is reported for its row only.
                let mut rows = rows.clone();
                rows[count - 1][LEN - 1] = p;
                let refs: Vec<&[u64]> = rows.iter().map(|r| r.as_slice()).collect();
                let flags = sum_into(&q, &mut got, &refs);
                assert_eq!(flags.iter().filter(|&&b| b).count(), 1);
                assert!(flags[count - 1]);
            }
        }
    }

    /// A protocol stream of `seed` read independently of [`Stream`]:
    /// BLAKE3 keyed by the seed over `label` (written out by each caller,
    /// which pins it), as an extendable output.
    pub(crate) fn reference_reader(seed: &[u8; 32], label: &[u8]) -> blake3::OutputReader {
        let mut hasher = blake3::Hasher::new_keyed(seed);
        hasher.update(label);
        hasher.finalize_xof()
    }

    /// A member's own stream of `seed` read independently of [`Stream`],
    /// with another crate's ChaCha12 (rand_chacha's original variant, whose
    /// keystream with nonce zero and a block counter below 2^32 is RFC
    /// 8439's): keyed by BLAKE3 keyed by the seed over `label`.
    pub(crate) fn chacha_reference(seed: &[u8; 32], label: &[u8]) -> rand_chacha::ChaCha12Rng {
        use rand::SeedableRng;
        rand_chacha::ChaCha12Rng::from_seed(*blake3::keyed_hash(seed, label).as_bytes())
    }

    /// A member's own stream of `seed` over `label`, read independently of
    /// [`Stream`], with the generator this CPU takes.
    pub(crate) fn own_stream_reference(seed: &[u8; 32], label: &[u8]) -> Box<dyn CryptoRng> {
        if own_streams_use_chacha() {
            Box::new(chacha_reference(seed, label))
        } else {
            Box::new(StreamRng(StreamReader::Xof(reference_reader(seed, label))))
        }
    }

    /// The flooding stream of `seed`, little-endian 64-bit words in order.
    pub(crate) fn flood_stream_reference(seed: &[u8; 32]) -> impl FnMut() -> u64 {
        let mut stream = own_stream_reference(seed, b"synod flooding noise");
        move || stream.next_u64()
    }

    /// Both generators of a member's own streams are their references, from
    /// any position, whichever this CPU takes; the protocol's streams stay
    /// BLAKE3's XOF.
    #[test]
    fn streams_are_their_references() {
        let seed = [5u8; 32];
        let mut want = vec![0u8; 4096];
        for chacha in [false, true] {
            for (stream, label) in [
                (Stream::Flooding, &b"synod flooding noise"[..]),
                (Stream::Small, b"synod centred binomial"),
                (Stream::Dealt, b"synod dealt shamir values"),
                (Stream::Projection, b"synod reshare projections"),
            ] {
                let own = matches!(stream, Stream::Flooding | Stream::Small);
                if own && chacha {
                    chacha_reference(&seed, label).fill_bytes(&mut want);
                } else {
                    reference_reader(&seed, label).fill(&mut want);
                }
                for at in [0usize, 1, 63, 64, 100] {
                    let mut got = vec![0u8; 4096 - at];
                    let mut reader = stream.reader_with(&seed, chacha);
                    reader.seek(at as u64);
                    reader.fill(&mut got);
                    assert_eq!(got, want[at..], "{label:?}, ChaCha12 {chacha}, at {at}");
                }
            }
        }
    }

    /// Flooding coefficients are the words of the flooding stream of a seed
    /// drawn from the RNG, read as documented: rows of whole words, then the
    /// top limbs packed in the fewest of 1, 2, 4 or 8 bytes, masked; values
    /// on `[0, 2^(b+1))`. The blocks expanded in parallel are that one
    /// stream, whatever the number of threads.
    #[test]
    fn flood_limbs_are_the_seeded_stream_in_rows() {
        use num_bigint::BigUint;
        use rand::SeedableRng;
        // Top lanes of 1, 2, 4 and 8 bytes; one to five 64-bit rows; a
        // degree off the lane grid too; rows and packed words of several
        // parallel blocks.
        for (bits, degree) in [
            (1u32, 64),
            (7, 61),
            (8, 64),
            (20, 61),
            (51, 64),
            (63, 64),
            (64, 61),
            (73, 64),
            (85, 64),
            (95, 61),
            (127, 64),
            (190, 64),
            (256, 61),
            (300, 64),
            (73, 8192),
            (7, 8 * FLOOD_BLOCK + 5),
            (20, 2 * FLOOD_BLOCK + 3),
            (190, 2 * FLOOD_BLOCK + 3),
        ] {
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(u64::from(bits));
            let mut caller = rng.clone();
            let limbs = FloodSeed::draw(bits, &mut rng).expand(degree);
            let mut seed = [0u8; 32];
            caller.fill_bytes(&mut seed);
            // The caller's RNG gave the seed and nothing more.
            assert_eq!(rng.next_u64(), caller.next_u64());
            let mut next_word = flood_stream_reference(&seed);
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let again = pool.install(|| FloodLimbs::expand(bits, degree, &seed));
                for l in 0..limbs.per_coeff {
                    assert_eq!(
                        again.row64(l),
                        limbs.row64(l),
                        "bits {bits}, {threads} threads"
                    );
                }
            }
            let total = bits as usize + 1;
            let per = total.div_ceil(64);
            let top_bytes = match total - 64 * (per - 1) {
                0..=8 => 1,
                9..=16 => 2,
                17..=32 => 4,
                _ => 8,
            };
            let lower: Vec<u64> = (0..(per - 1) * degree).map(|_| next_word()).collect();
            let packed: Vec<u64> = (0..(degree * top_bytes).div_ceil(8))
                .map(|_| next_word())
                .collect();
            let packed: Vec<u8> = packed.iter().flat_map(|w| w.to_le_bytes()).collect();
            let mask = (BigUint::from(1u8) << total) - 1u8;
            for j in 0..degree {
                let mut want = BigUint::from(0u8);
                for l in 0..per - 1 {
                    want += BigUint::from(lower[l * degree + j]) << (64 * l);
                }
                let top = BigUint::from_bytes_le(&packed[j * top_bytes..(j + 1) * top_bytes]);
                want += (top << (64 * (per - 1))) & &mask;
                let got = (0..per)
                    .rev()
                    .fold(BigUint::from(0u8), |acc, l| (acc << 64) + limbs.row64(l)[j]);
                assert_eq!(got, want, "bits {bits}, j {j}");
                assert!(got <= mask);
            }
        }
    }

    /// A placed buffer holds the words it was given, starting on the line
    /// it was asked for; so do the flooding rows.
    #[test]
    fn placed_words_start_on_their_line() {
        let words: Vec<u64> = (0..3000).collect();
        for line in [0, 1, 5, 63, 64, 70] {
            let placed = Placed::copy_of(&words, line);
            assert_eq!(placed.words(), &words[..]);
            let at = placed.words().as_ptr() as usize;
            assert_eq!(at % 4096, (line % 64) * 64, "line {line}");
        }
        let limbs =
            FloodSeed::draw(100, &mut rand_chacha::ChaCha20Rng::seed_from_u64(1)).expand(2048);
        for l in 0..2 {
            let at = limbs.row64(l).as_ptr() as usize;
            assert_eq!(at % 4096, 1024 * (l + 1), "flooding row {l}");
        }
    }

    /// Noise reduced in the forward transform's first pass (and a product
    /// added in its last) equals the scalar reduction, then the transform
    /// and the product; the first-pass path runs for every shape it takes.
    #[test]
    fn noise_reduced_in_the_transform_equals_reduce_then_transform() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let ops = RingOps::of(params.ctx(0).unwrap()).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(10);
        for bits in [1u32, 40, 47, 48, 63, 64, 95, 96, 127, 128, 200] {
            let limbs = FloodSeed::draw(bits, &mut rng).expand(2048);
            for (q, ntt) in ops.moduli().iter().zip(ops.ntt()) {
                let p = **q;
                let x: Vec<u64> = (0..2048).map(|_| rng.next_u64() % p).collect();
                let y: Vec<u64> = (0..2048)
                    .map(|j| {
                        if j % 3 == 0 {
                            p - 1
                        } else {
                            rng.next_u64() % p
                        }
                    })
                    .collect();
                let c = p - 1 - rng.next_u64() % 7;
                let mut want = vec![0u64; 2048];
                limbs.reduce_block(q, &mut want);
                ntt.forward(&mut want);
                let mut plain = vec![0u64; 2048];
                limbs.forward_into(q, ntt, &mut plain, None);
                assert_eq!(plain, want, "bits {bits}, q {p}");
                scaled_mul_add_into(q, &mut want, &x, c, &y);
                let mut fused = vec![0u64; 2048];
                let product = FusedProduct::AddScaled(&x, c, &y);
                limbs.forward_into(q, ntt, &mut fused, Some(product));
                assert_eq!(fused, want, "fused: bits {bits}, q {p}");
                #[cfg(target_arch = "x86_64")]
                if matches!(**ntt, Ntt::Fma(_)) {
                    let input = limbs.limb_input(q).unwrap();
                    let ran = ntt.forward_from_limbs(&input, &mut fused, Some(product));
                    assert_eq!(ran, bits < 128, "bits {bits}");
                }
            }
        }
    }

    /// The fast reduction of flooding limbs equals a big-integer reference:
    /// `(Σ limb_i·2^(64i) − 2^bits) mod q`.
    #[test]
    fn flood_reduction_matches_biguint() {
        use num_bigint::BigInt;
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let ops = RingOps::of(params.ctx(0).unwrap()).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        // Every shape of the IFMA kernel (up to 255 bits) and the scalar
        // path beyond it.
        for bits in [
            1u32, 20, 40, 51, 63, 64, 65, 85, 103, 127, 128, 129, 190, 254, 255, 256, 300,
        ] {
            let limbs = FloodSeed::draw(bits, &mut rng).expand(2048);
            for q in ops.moduli() {
                let mut row = vec![0u64; 2048];
                limbs.reduce_into(q, &mut row);
                // The scalar path gives the same values (the IFMA one, where
                // the CPU has it, ran above), and so does the FMA one.
                let mut scalar = vec![0u64; 2048];
                limbs.reduce_block(q, &mut scalar);
                assert_eq!(row, scalar, "bits {bits}, q {}", **q);
                #[cfg(target_arch = "x86_64")]
                if fma::token().is_some() {
                    let mut vector = vec![0u64; 2048];
                    let ran = limbs.limb_input(q).is_some_and(|i| {
                        fma::dot_const_limbs64(**q, i.init, &mut vector, &i.rows, &i.consts)
                    });
                    assert_eq!(ran, bits < 256, "bits {bits}");
                    if ran {
                        assert_eq!(vector, scalar, "FMA: bits {bits}, q {}", **q);
                    }
                } else {
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "CI runs on AVX2 + FMA CPUs"
                    );
                }
                let qb = BigInt::from(**q);
                for (k, &got) in row.iter().enumerate() {
                    let mut v = BigInt::from(0);
                    for i in 0..limbs.per_coeff {
                        v += BigInt::from(limbs.row64(i)[k]) << (64 * i);
                    }
                    assert!(v < BigInt::from(1) << (bits + 1));
                    let r = ((v - (BigInt::from(1) << bits)) % &qb + &qb) % &qb;
                    assert_eq!(BigInt::from(got), r, "bits {bits}, q {}", **q);
                }
            }
        }
    }
}
