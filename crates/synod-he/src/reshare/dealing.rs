//! Dealing by values: a dealer's polynomials of degree `≤ d` held by their
//! values at the nodes `0, 1, …, d`, and every member's values computed
//! from those (difference-table stepping or Lagrange combination). Used by
//! resharing (four polynomials per dealer, members at the nodes sent seeds)
//! and by thresholdisation (key and mask). See `Dealing` for why this is
//! the same distribution as drawing coefficients.

use fhe_math::zq::Modulus;
use rand::{CryptoRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

use crate::kernels::{Stream, StreamRng};
use crate::shamir::EvaluationPoint;
use crate::{Error, Params, Result};

/// `P` uniform residue matrices drawn, in order, by [`random_residues`] from
/// the [`Stream::Dealt`] expansion of `seed` (a dealer's values at one node,
/// sent as the seed).
pub(crate) fn draw_from_seed<const P: usize>(params: &Params, seed: &[u8; 32]) -> [Vec<u64>; P] {
    let mut rng = StreamRng::new(Stream::Dealt, seed);
    let mut out: [Vec<u64>; P] = std::array::from_fn(|_| Vec::new());
    for v in out.iter_mut() {
        *v = random_residues(params, &mut rng);
    }
    out
}

/// Fresh seeds for the nodes `1, …, d`, drawn from `rng` in order (filled
/// in place, wiped on drop).
pub(crate) fn draw_seeds<R: RngCore + CryptoRng>(
    d: usize,
    rng: &mut R,
) -> Zeroizing<Vec<[u8; 32]>> {
    let mut seeds = Zeroizing::new(vec![[0u8; 32]; d]);
    for seed in seeds.iter_mut() {
        rng.fill_bytes(seed);
    }
    seeds
}

/// The node values of `P` polynomials: `constants` at node 0, then at each
/// node `k = 1, …, d` the `P` residue matrices drawn from `seeds[k − 1]`
/// ([`draw_from_seed`], the seeds expanded in parallel). Wiped on error.
pub(crate) fn node_values<const P: usize>(
    params: &Params,
    constants: [Vec<u64>; P],
    seeds: &[[u8; 32]],
) -> Result<[Vec<Vec<u64>>; P]> {
    use rayon::prelude::*;
    let mut constants = Zeroizing::new(constants);
    let drawn: Vec<Zeroizing<[Vec<u64>; P]>> = seeds
        .par_iter()
        .map(|seed| Zeroizing::new(draw_from_seed::<P>(params, seed)))
        .collect();
    let mut values: [Vec<Vec<u64>>; P] =
        std::array::from_fn(|_| Vec::with_capacity(seeds.len() + 1));
    for (set, constant) in values.iter_mut().zip(constants.iter_mut()) {
        set.push(std::mem::take(constant));
    }
    for mut node in drawn {
        for (set, value) in values.iter_mut().zip(node.iter_mut()) {
            set.push(std::mem::take(value));
        }
    }
    Ok(values)
}

/// A uniformly random residue matrix (`L × N`), by rejection sampling on
/// the bit length of each prime (as for the challenge's projections), from
/// the RNG's keystream in blocks, taking only as many bytes per candidate as
/// the prime needs (6 for primes below 2^48) rather than 8.
pub(crate) fn random_residues<R: RngCore + CryptoRng>(params: &Params, rng: &mut R) -> Vec<u64> {
    let n = params.degree();
    let mut v = Vec::with_capacity(n * params.moduli().len());
    // 840 is a multiple of every width 1..=8, so no candidate straddles fills.
    let mut buf = Zeroizing::new(vec![0u8; 840 * 5]);
    for &q in params.moduli() {
        let bits = 64 - q.leading_zeros() as usize;
        let width = bits.div_ceil(8).max(1);
        let mask = u64::MAX >> q.leading_zeros();
        let end = v.len() + n;
        while v.len() < end {
            rng.fill_bytes(&mut buf);
            for bytes in buf.chunks_exact(width) {
                let x = if let [b0, b1, b2, b3, b4, b5] = *bytes {
                    u64::from_le_bytes([b0, b1, b2, b3, b4, b5, 0, 0])
                } else {
                    let mut word = [0u8; 8];
                    if let Some(w) = word.get_mut(..width) {
                        w.copy_from_slice(bytes);
                    }
                    u64::from_le_bytes(word)
                } & mask;
                if x < q && v.len() < end {
                    v.push(x);
                }
            }
        }
    }
    v
}

/// A dealer's `P` polynomials of degree `≤ d` (for resharing the four
/// `g, h, W, V` with `d = t'−1`; for thresholdisation the key and mask
/// polynomials with `d = t−1`), held by their values at the `d + 1`
/// **nodes** `0, 1, …, d`.
///
/// Dealing by values: the value at `0` is the prescribed constant (`S_i`, a
/// fresh random mask, `M_i`, random) and the values at `1, …, d` are drawn
/// uniformly at random. Evaluation at `d + 1` distinct points is a bijection
/// between polynomials of degree `≤ d` and their values (the Vandermonde
/// matrix is invertible modulo every prime, as the points are distinct and
/// smaller than every prime), so this is exactly a uniformly random
/// polynomial of degree `≤ d` with the given constant, as if its `d` upper
/// coefficients had been drawn. A member at a node gets the drawn value; the
/// others are computed exactly from the nodes, by one of two equivalent
/// routes (chosen by cost, tested equal):
///
/// - **stepping**: the backward differences `∇^k f(d)` of the node values
///   give `f(d+1), f(d+2), …` with `d` modular additions per integer point
///   and residue (vectorised by `fhe-math`), the cheap route where the
///   members' points are dense, as permanent points mostly are;
/// - **Lagrange**: `f(x) = Σ_k λ_k(x)·f(k)`, `d + 1` multiply-adds per
///   residue, for a member whose point lies far beyond the others.
pub(crate) struct Dealing<const P: usize = 4> {
    pub(super) dealer: EvaluationPoint,
    pub(super) epoch: u64,
    pub(super) moduli: Vec<Modulus>,
    pub(super) degree: usize,
    /// Per polynomial: the `d + 1` residue matrices (`L × N`, NTT form) of
    /// its values at `0, 1, …, d`.
    pub(super) values: [Vec<Vec<u64>>; P],
    /// The seeds the values at the nodes `1, …, d` were drawn from
    /// (`seeds[k − 1]` for node `k`); a member at a node is sent its seed.
    pub(super) seeds: Vec<[u8; 32]>,
    /// Inverses of the Lagrange denominators `Π_{m≠k}(k − m)` of the nodes,
    /// per prime (`L × (d + 1)`, prime-major).
    pub(super) inv_den: Vec<u64>,
    /// The members dealt to, in their committee's order.
    pub(super) points: Vec<EvaluationPoint>,
}

impl<const P: usize> Drop for Dealing<P> {
    fn drop(&mut self) {
        for set in self.values.iter_mut() {
            for p in set.iter_mut() {
                p.zeroize();
            }
        }
        self.seeds.zeroize();
    }
}

/// `a⁻¹ mod q` for a prime `q` (Fermat), without `Modulus::inv`'s primality
/// test on every call; `None` for `a ≡ 0`.
pub(super) fn inverse(q: &Modulus, a: u64) -> Option<u64> {
    let a = q.reduce(a);
    (a != 0).then(|| q.pow(a, **q - 2))
}

/// Columns per block of the stepping and combination kernels: a block of
/// every node row (`(d + 1) × 256` residues) stays in L1/L2.
const BLOCK: usize = 256;

/// Relative cost of one Lagrange multiply-add against one stepping addition
/// (measured: ≈ 0.7 ns against ≈ 0.15 ns per residue with AVX-512).
const LAGRANGE_COST: usize = 5;

impl<const P: usize> Dealing<P> {
    /// A dealing from its node values (`values[p][k]`: polynomial `p` at
    /// node `k = 0 … d`, every polynomial with the same `d`), for the
    /// members at `points` (in order).
    pub(crate) fn from_nodes(
        params: &Params,
        dealer: EvaluationPoint,
        epoch: u64,
        values: [Vec<Vec<u64>>; P],
        seeds: Vec<[u8; 32]>,
        points: Vec<EvaluationPoint>,
    ) -> Result<Self> {
        let (mut values, mut seeds) = (values, seeds);
        let built = Self::tables(params, &values, &seeds);
        if built.is_err() {
            // The node values hold the dealt secret: wipe them on refusal too.
            values.iter_mut().flatten().for_each(|v| v.zeroize());
            seeds.zeroize();
        }
        let (moduli, inv_den) = built?;
        Ok(Self {
            dealer,
            epoch,
            moduli,
            degree: params.degree(),
            values,
            seeds,
            inv_den,
            points,
        })
    }

    /// Checks the node values' shape and builds the moduli and the inverse
    /// Lagrange denominators of the nodes.
    fn tables(
        params: &Params,
        values: &[Vec<Vec<u64>>; P],
        seeds: &[[u8; 32]],
    ) -> Result<(Vec<Modulus>, Vec<u64>)> {
        let d = values.first().map_or(0, Vec::len).saturating_sub(1);
        let n = params.degree();
        let l = params.moduli().len();
        if values
            .iter()
            .any(|set| set.len() != d + 1 || set.iter().any(|v| v.len() != l * n))
            || seeds.len() != d
        {
            return Err(Error::Parameters(
                "dealing: node values of the wrong shape".into(),
            ));
        }
        let moduli: Vec<Modulus> = params
            .moduli()
            .iter()
            .map(|&q| Modulus::new(q))
            .collect::<std::result::Result<_, _>>()?;
        let mut inv_den = Vec::with_capacity(moduli.len() * (d + 1));
        for q in &moduli {
            for k in 0..=d as u64 {
                let den = (0..=d as u64)
                    .filter(|&m| m != k)
                    .fold(1u64, |acc, m| q.mul(acc, q.sub(q.reduce(k), q.reduce(m))));
                inv_den.push(
                    inverse(q, den).ok_or_else(|| {
                        Error::Parameters("threshold not below every prime".into())
                    })?,
                );
            }
        }
        Ok((moduli, inv_den))
    }

    /// `d`, the degree bound.
    pub(super) fn d(&self) -> usize {
        self.values[0].len().saturating_sub(1)
    }

    /// Lagrange weights at `x` over the nodes `0, …, d`, per prime
    /// (`L × (d + 1)`, prime-major).
    fn weights(&self, x: u64) -> Vec<u64> {
        let kk = self.d() + 1;
        let mut out = Vec::with_capacity(self.moduli.len() * kk);
        for (q, inv_den) in self.moduli.iter().zip(self.inv_den.chunks(kk)) {
            let xr = q.reduce(x);
            // prefix[k] = Π_{m<k} (x − m), suffix[k] = Π_{m>k} (x − m).
            let diffs: Vec<u64> = (0..kk as u64).map(|m| q.sub(xr, q.reduce(m))).collect();
            let mut suffix = vec![1u64; kk + 1];
            for k in (0..kk).rev() {
                let next = suffix.get(k + 1).copied().unwrap_or(1);
                if let Some(s) = suffix.get_mut(k) {
                    *s = q.mul(next, diffs.get(k).copied().unwrap_or(1));
                }
            }
            let mut prefix = 1u64;
            for (k, inv) in inv_den.iter().enumerate() {
                let after = suffix.get(k + 1).copied().unwrap_or(1);
                out.push(q.mul(q.mul(prefix, after), *inv));
                prefix = q.mul(prefix, diffs.get(k).copied().unwrap_or(1));
            }
        }
        out
    }

    /// The values at `x`, by the Lagrange route (or the drawn values where
    /// `x` is a node).
    pub(super) fn values_at(&self, x: u64) -> [Vec<u64>; P] {
        let d = self.d() as u64;
        if x <= d {
            let k = x as usize;
            return self
                .values
                .each_ref()
                .map(|set| set.get(k).cloned().unwrap_or_default());
        }
        let w = self.weights(x);
        self.values
            .each_ref()
            .map(|set| combine_nodes(&self.moduli, self.degree, set, &w))
    }

    /// The seed of the values at `x`, where `x` is one of the drawn nodes
    /// `1, …, d`.
    pub(crate) fn seed_at(&self, x: u64) -> Option<&[u8; 32]> {
        let k = usize::try_from(x).ok()?.checked_sub(1)?;
        self.seeds.get(k)
    }

    /// Up to which point to step: stepping to `X` costs `(X − d)·d` additions
    /// per residue, and each member beyond `X` costs `(d + 1)` multiply-adds.
    fn stepping_limit(&self) -> u64 {
        let d = self.d();
        let beyond: Vec<u64> = self
            .points
            .iter()
            .map(|m| u64::from(m.get()))
            .filter(|&x| x > d as u64)
            .collect();
        let cost = |limit: u64| {
            // Each step costs at least one pass (the copy of f(x)), even at d = 0.
            let stepped = (limit - d as u64) as u128 * d.max(1) as u128;
            let combined = beyond.iter().filter(|&&x| x > limit).count() as u128
                * (d as u128 + 1)
                * LAGRANGE_COST as u128;
            stepped + combined
        };
        std::iter::once(d as u64)
            .chain(beyond.iter().copied())
            .min_by_key(|&limit| cost(limit))
            .unwrap_or(d as u64)
    }

    /// Every member's values: stepped up to
    /// [`stepping_limit`](Self::stepping_limit), combined beyond; `None` for
    /// a member at a seeded node (it is sent its seed). In the members' order.
    pub(crate) fn all_values(&self) -> Vec<Option<[Vec<u64>; P]>> {
        use rayon::prelude::*;
        let d = self.d() as u64;
        let limit = self.stepping_limit();
        let stepped_points: Vec<u64> = self
            .points
            .iter()
            .map(|m| u64::from(m.get()))
            .filter(|&x| x > d && x <= limit)
            .collect();
        let l = self.moduli.len();
        let mut out: Vec<Option<[Vec<u64>; P]>> = self
            .points
            .par_iter()
            .map(|m| {
                let x = u64::from(m.get());
                if self.seed_at(x).is_some() {
                    None
                } else if stepped_points.contains(&x) {
                    Some(std::array::from_fn(|_| vec![0u64; l * self.degree]))
                } else {
                    Some(self.values_at(x))
                }
            })
            .collect();
        // One job per (polynomial, prime), writing that row of every stepped
        // member in place.
        let mut jobs: Vec<Vec<&mut [u64]>> = (0..P * l).map(|_| Vec::new()).collect();
        for (values, m) in out.iter_mut().zip(&self.points) {
            let Some(values) = values else {
                continue;
            };
            if !stepped_points.contains(&u64::from(m.get())) {
                continue;
            }
            for (p, v) in values.iter_mut().enumerate() {
                for (r, row) in v.chunks_mut(self.degree.max(1)).enumerate() {
                    if let Some(job) = jobs.get_mut(p * l + r) {
                        job.push(row);
                    }
                }
            }
        }
        jobs.into_par_iter()
            .enumerate()
            .for_each(|(job, rows)| self.step_into(job / l, job % l, &stepped_points, rows));
        out
    }

    /// Writes polynomial `p`'s residues modulo prime `r` at the increasing
    /// points `targets` (all in `d+1 ..= limit`) into `out` (one row per
    /// target), by stepping the backward difference table.
    ///
    /// With `V[i] = f(i)`, the in-place passes `V[i] −= V[i+1]` (`i = 0 …
    /// d−l`, for `l = 1 … d`) leave `V[d−k] = (−1)^k·∇^k f(d)`. In those
    /// signs, one step `∇^k f(x+1) = ∇^k f(x) + ∇^{k+1} f(x+1)` is
    /// `V[i] −= V[i−1]` for `i = 1 … d`, after which `V[d] = f(x+1)`.
    fn step_into(&self, p: usize, r: usize, targets: &[u64], mut out: Vec<&mut [u64]>) {
        let n = self.degree;
        let d = self.d();
        let (Some(q), Some(set)) = (self.moduli.get(r), self.values.get(p)) else {
            return;
        };
        let Some(&last) = targets.last() else {
            return;
        };
        let mut table = Zeroizing::new(vec![0u64; (d + 1) * BLOCK]);
        for start in (0..n).step_by(BLOCK) {
            let width = BLOCK.min(n - start);
            let table = table.get_mut(..(d + 1) * width).unwrap_or_default();
            for (row, value) in table.chunks_mut(width).zip(set) {
                if let Some(src) = value.get(r * n + start..r * n + start + width) {
                    row.copy_from_slice(src);
                }
            }
            for level in 1..=d {
                for i in 0..=(d - level) {
                    let (lo, hi) = table.split_at_mut((i + 1) * width);
                    if let (Some(a), Some(b)) = (lo.get_mut(i * width..), hi.get(..width)) {
                        q.sub_vec(a, b);
                    }
                }
            }
            let mut next = targets.iter().zip(out.iter_mut()).peekable();
            for x in (d as u64 + 1)..=last {
                for i in 1..=d {
                    let (lo, hi) = table.split_at_mut(i * width);
                    if let (Some(a), Some(b)) = (hi.get_mut(..width), lo.get((i - 1) * width..)) {
                        q.sub_vec(a, b);
                    }
                }
                while let Some((_, dst)) = next.next_if(|(t, _)| **t == x) {
                    if let (Some(dst), Some(src)) = (
                        dst.get_mut(start..start + width),
                        table.get(d * width..(d + 1) * width),
                    ) {
                        dst.copy_from_slice(src);
                    }
                }
            }
        }
    }
}

/// `Σ_k w_k·v_k` over residue matrices `v_k` (`L × degree`), with weights
/// `weights[prime·K + k]` (`K = nodes.len()`, each `< q_prime`). Products
/// are summed in 128 bits and reduced once per value (or once per batch of
/// terms where the primes are so large that the sum could overflow).
pub(super) fn combine_nodes<V: AsRef<[u64]>>(
    moduli: &[Modulus],
    degree: usize,
    nodes: &[V],
    weights: &[u64],
) -> Vec<u64> {
    let k = nodes.len().max(1);
    let mut out = vec![0u64; moduli.len() * degree];
    let mut acc = [0u128; BLOCK];
    for (prime, ((q, w), out_row)) in moduli
        .iter()
        .zip(weights.chunks(k))
        .zip(out.chunks_mut(degree.max(1)))
        .enumerate()
    {
        let qm1 = u128::from(**q - 1);
        // Terms that fit beside a reduced accumulator: (batch + 1)·(q−1)² < 2^128.
        let batch = ((u128::MAX / (qm1 * qm1).max(1)) - 1).clamp(1, 1 << 32) as usize;
        let rows: Vec<&[u64]> = nodes
            .iter()
            .filter_map(|v| v.as_ref().get(prime * degree..(prime + 1) * degree))
            .collect();
        for (block, out_block) in out_row.chunks_mut(BLOCK).enumerate() {
            let start = block * BLOCK;
            let acc = acc.get_mut(..out_block.len()).unwrap_or_default();
            acc.fill(0);
            for (i, (row, &wk)) in rows.iter().zip(w).enumerate() {
                if i > 0 && i % batch == 0 {
                    for a in acc.iter_mut() {
                        *a = u128::from(q.reduce_u128(*a));
                    }
                }
                let src = row.get(start..start + out_block.len()).unwrap_or_default();
                let wk = u128::from(wk);
                for (a, &v) in acc.iter_mut().zip(src) {
                    *a += u128::from(v) * wk;
                }
            }
            for (o, a) in out_block.iter_mut().zip(acc.iter()) {
                *o = q.reduce_u128(*a);
            }
        }
    }
    out
}
