//! The negacyclic NTT modulo one prime, for synod's own kernels.
//!
//! `fhe-math` 0.1.1 runs its NTTs on `tfhe-ntt` 0.6, whose AVX-512 paths need
//! a nightly compiler, so on stable Rust it uses the AVX2 code. `tfhe-ntt`
//! 0.7 dispatches at run time to AVX-512 (with IFMA for primes below 2^52,
//! which every synod prime is) on stable Rust, about three times faster at
//! N = 8192 on this project's machine; without those instructions it falls
//! back to the same AVX2 or scalar code. It chooses the same root of unity
//! and the same output order as 0.6, so the results are bit-for-bit those of
//! `fhe_math::ntt::NttOperator` (tested here for every prime of every
//! parameter set), and residue matrices move freely between synod's kernels
//! and fhe.rs's `Poly`. For a prime `tfhe-ntt` has no plan for, `fhe-math`'s
//! own operator is used.
//!
//! On CPUs without IFMA, `tfhe-ntt`'s AVX2 butterflies build each 64-bit
//! product from 32-bit multiplications. There, for primes below 2^50 (every
//! synod prime), [`fma::FmaNtt`] transforms in double precision with AVX2
//! and FMA, about twice as fast on this project's AVX2 machine, with the
//! same root of unity and order, so the same residues (tested against
//! `tfhe-ntt` for every prime of every parameter set).

use fhe_math::ntt::NttOperator;
use fhe_math::zq::Modulus;

#[cfg(target_arch = "x86_64")]
mod fma;

/// Forward and backward NTT of size `N` modulo one prime.
pub(crate) enum Ntt {
    /// `tfhe-ntt` 0.7's plan.
    Tfhe(tfhe_ntt::prime64::Plan),
    /// `fhe-math`'s operator, for primes `tfhe-ntt` has no plan for.
    FheMath(Box<NttOperator>),
    /// The AVX2 + FMA double-precision transform, on CPUs without IFMA.
    #[cfg(target_arch = "x86_64")]
    Fma(Box<fma::FmaNtt>),
}

impl Ntt {
    /// The NTT of size `degree` modulo `q`, if `q ≡ 1 mod 2·degree`.
    pub(crate) fn new(q: &Modulus, degree: usize) -> Option<Self> {
        match tfhe_ntt::prime64::Plan::try_new(degree, **q) {
            Some(plan) => {
                #[cfg(target_arch = "x86_64")]
                if !tfhe_uses_ifma() {
                    if let Some(fma) = fma_plan(&plan) {
                        return Some(Self::Fma(Box::new(fma)));
                    }
                }
                Some(Self::Tfhe(plan))
            }
            None => NttOperator::new(q, degree).map(|op| Self::FheMath(Box::new(op))),
        }
    }

    /// In place, from coefficients to NTT form (values reduced below `q`).
    pub(crate) fn forward(&self, a: &mut [u64]) {
        match self {
            Self::Tfhe(plan) => plan.fwd(a),
            Self::FheMath(op) => op.forward(a),
            #[cfg(target_arch = "x86_64")]
            Self::Fma(plan) => plan.forward(a),
        }
    }

    /// In place, the forward transform, then `fused` (canonical residues):
    /// in the transform's last pass where that pass is synod's (the AVX2 +
    /// FMA transform, rows as long as `a`), else with the product kernels
    /// after the transform. Rows hold residues below `q`; constant time.
    pub(crate) fn forward_and(&self, q: &Modulus, a: &mut [u64], fused: FusedProduct<'_>) {
        #[cfg(target_arch = "x86_64")]
        if let Self::Fma(plan) = self {
            if plan.forward_fused(a, fused) {
                return;
            }
        }
        self.forward(a);
        match fused {
            FusedProduct::Sub(x, y) => crate::kernels::mul_sub_into(q, a, x, y),
            FusedProduct::Add(x, y) => crate::kernels::mul_add_into(q, a, x, y),
            FusedProduct::AddScaled(x, c, y) => {
                crate::kernels::scaled_mul_add_into(q, a, x, c, y);
            }
        }
    }

    /// `a` = the forward transform of flooding noise reduced modulo this
    /// prime in the transform's first pass (`input`'s limbs are never
    /// stored as residues), then `fused` in its last: where the transform
    /// is the AVX2 + FMA one and `input` has one of its shapes; `false`
    /// (nothing done) elsewhere. Constant time.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn forward_from_limbs(
        &self,
        input: &crate::kernels::LimbInput<'_>,
        a: &mut [u64],
        fused: Option<FusedProduct<'_>>,
    ) -> bool {
        match self {
            Self::Fma(plan) => plan.forward_from_limbs(input, a, fused),
            _ => false,
        }
    }

    /// `a` = the forward transform of small signed coefficients (`|c| <
    /// q`, one per column), then `fused` in its last pass: the
    /// coefficients converted as the first pass loads them, never stored as
    /// residues, where the transform is the AVX2 + FMA one
    /// ([`fma::FmaNtt::forward_from_small`]); `false` (nothing done)
    /// elsewhere. Constant time.
    pub(crate) fn forward_from_small(
        &self,
        coeffs: &[i64],
        a: &mut [u64],
        fused: Option<FusedProduct<'_>>,
    ) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Fma(plan) => plan.forward_from_small(coeffs, a, fused),
            _ => {
                let _ = (coeffs, a, fused);
                false
            }
        }
    }

    /// Whether [`Self::forward_from_small`] runs (for rows of `N ≥ 32`).
    pub(crate) fn takes_small(&self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Fma(_) => true,
            _ => false,
        }
    }

    /// In place, from NTT form back to coefficients (normalised).
    pub(crate) fn backward(&self, a: &mut [u64]) {
        match self {
            Self::Tfhe(plan) => {
                plan.inv(a);
                plan.normalize(a);
            }
            Self::FheMath(op) => op.backward(a),
            #[cfg(target_arch = "x86_64")]
            Self::Fma(plan) => plan.backward(a),
        }
    }

    /// In place, from NTT form back to coefficients times `c` (`c < q`, the
    /// results fully reduced), in the passes [`Self::backward`] takes: with
    /// tfhe-ntt, `c` is folded into the normalisation by `N^{-1}`; with the
    /// AVX2 + FMA transform, into its last level's constants; with
    /// fhe-math's operator (primes tfhe-ntt has no plan for) a pass after.
    /// A base conversion's first products (`x_i·[(Q/q_i)^{-1}]_{q_i}`) are
    /// taken this way ([`crate::rns::BaseConverter::convert_prescaled`]).
    pub(crate) fn backward_scaled(&self, q: &Modulus, a: &mut [u64], c: u64) {
        match self {
            Self::Tfhe(plan) => {
                plan.inv(a);
                // N divides q − 1 (an NTT prime), so N·(q − (q − 1)/N) ≡ 1.
                let n = (a.len() as u64).max(1);
                let n_inv = **q - (**q - 1) / n;
                crate::kernels::scale_in_place(q, a, q.mul(c, n_inv));
            }
            #[cfg(target_arch = "x86_64")]
            Self::Fma(plan) => plan.backward_scaled(a, c),
            Self::FheMath(op) => {
                op.backward(a);
                crate::kernels::scale_in_place(q, a, c);
            }
        }
    }
}

/// What [`Ntt::forward_and`] adds to the transform's outputs.
#[derive(Clone, Copy)]
pub(crate) enum FusedProduct<'a> {
    /// `out − x·y` (the public-key share's `e − a·s`).
    Sub(&'a [u64], &'a [u64]),
    /// `out + x·y` (the relinearisation rounds' `e + a·s`).
    Add(&'a [u64], &'a [u64]),
    /// `out + (x·c)·y` (the decryption share's `E + λ·s·c1`).
    AddScaled(&'a [u64], u64, &'a [u64]),
}

impl<'a> FusedProduct<'a> {
    /// The product restricted to columns `from .. from + len` (empty rows
    /// where they are shorter).
    pub(crate) fn part(self, from: usize, len: usize) -> Self {
        let cut = |x: &'a [u64]| x.get(from..from + len).unwrap_or_default();
        match self {
            Self::Sub(x, y) => Self::Sub(cut(x), cut(y)),
            Self::Add(x, y) => Self::Add(cut(x), cut(y)),
            Self::AddScaled(x, c, y) => Self::AddScaled(cut(x), c, cut(y)),
        }
    }
}

/// Whether `tfhe-ntt` runs its AVX-512 IFMA butterflies on this CPU (faster
/// than [`fma::FmaNtt`]; it dispatches on the CPU alone, so `SYNOD_NO_IFMA`
/// does not change this).
#[cfg(target_arch = "x86_64")]
fn tfhe_uses_ifma() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512cd")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512ifma")
}

/// The double-precision transform with `plan`'s root of unity: the forward
/// NTT of `X` holds `ψ` at index 0 (bit-reversed order, `X(ψ^{2·0+1})`).
#[cfg(target_arch = "x86_64")]
fn fma_plan(plan: &tfhe_ntt::prime64::Plan) -> Option<fma::FmaNtt> {
    let n = plan.ntt_size();
    let mut x = vec![0u64; n];
    *x.get_mut(1)? = 1;
    plan.fwd(&mut x);
    fma::FmaNtt::new(plan.modulus(), n, *x.first()?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::{ParameterSet, Params};
    use rand::{Rng, SeedableRng};

    /// Bit-for-bit fhe-math's NTT, both ways, for every prime we use
    /// (ciphertext primes, the multiplication's extension primes and a
    /// plaintext prime), on random and extreme inputs.
    #[test]
    fn equals_fhe_math_for_every_prime() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        for (q, n) in every_prime() {
            let m = Modulus::new(q).unwrap();
            let ours = Ntt::new(&m, n).unwrap();
            assert!(!matches!(ours, Ntt::FheMath(_)), "synod plans {q}");
            let theirs = NttOperator::new(&m, n).unwrap();
            for input in inputs(q, n, &mut rng) {
                let (mut a, mut b) = (input.clone(), input.clone());
                ours.forward(&mut a);
                theirs.forward(&mut b);
                assert_eq!(a, b, "forward mod {q} (N = {n})");
                ours.backward(&mut a);
                theirs.backward(&mut b);
                assert_eq!(a, b, "backward mod {q} (N = {n})");
                assert_eq!(a, input, "round trip mod {q}");
            }
        }
    }

    /// The inverse transform with a factor folded in is the inverse
    /// transform times that factor, for every prime (tfhe-ntt's plans fold
    /// it into the normalisation) and factors at the edges.
    #[test]
    fn scaled_backward_is_backward_times_the_factor() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(8);
        for (q, n) in every_prime() {
            let m = Modulus::new(q).unwrap();
            let ntt = Ntt::new(&m, n).unwrap();
            for c in [0, 1, q - 1, rng.random_range(0..q)] {
                for input in inputs(q, n, &mut rng) {
                    let (mut a, mut b) = (input.clone(), input);
                    ntt.backward_scaled(&m, &mut a, c);
                    ntt.backward(&mut b);
                    let want: Vec<u64> = b.iter().map(|&x| m.mul(x, c)).collect();
                    assert_eq!(a, want, "mod {q} (N = {n}), factor {c}");
                }
            }
        }
    }

    /// Every prime synod transforms modulo, with its degree: each parameter
    /// set's ciphertext primes, the multiplication's extension primes and
    /// the plaintext prime.
    fn every_prime() -> Vec<(u64, usize)> {
        let sets = [
            ParameterSet::InsecureTestN2048,
            ParameterSet::Bfv8192,
            ParameterSet::Bfv16384,
        ];
        sets.into_iter()
            .flat_map(|set| {
                let params = Params::new(set, 20).unwrap();
                let mut primes: Vec<u64> = params.moduli().to_vec();
                let tables = crate::mul::FastMul::tables(&params).unwrap();
                primes.extend(tables.extension_primes());
                primes.push(params.plaintext());
                primes.into_iter().map(move |q| (q, params.degree()))
            })
            .collect()
    }

    /// Random residues, the largest residue everywhere, zero, and
    /// alternating extremes.
    fn inputs(q: u64, n: usize, rng: &mut rand_chacha::ChaCha20Rng) -> Vec<Vec<u64>> {
        let m = Modulus::new(q).unwrap();
        vec![
            m.random_vec(n, rng),
            vec![q - 1; n],
            vec![0; n],
            (0..n).map(|i| if i % 2 == 0 { q - 1 } else { 0 }).collect(),
            (0..n).map(|i| if i % 3 == 0 { 1 } else { q - 1 }).collect(),
        ]
    }

    /// Whether this CPU runs the AVX2 + FMA transform (CI's always do).
    #[cfg(target_arch = "x86_64")]
    fn has_avx2_fma() -> bool {
        let has = pulp::x86::V3::try_new().is_some();
        if !has {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs on AVX2 + FMA CPUs"
            );
            eprintln!("skipped: this CPU lacks AVX2 or FMA");
        }
        has
    }

    /// The largest prime below `2^bits` that is 1 mod 4096 (NTT-friendly
    /// up to N = 2048).
    #[cfg(target_arch = "x86_64")]
    fn prime_below(bits: u32) -> u64 {
        (1..)
            .map(|k| (1u64 << bits) + 1 - 4096 * k)
            .find(|&q| fhe_util::is_prime(q))
            .unwrap()
    }

    /// The AVX2 + FMA transform (built directly, so that CPUs with IFMA test
    /// it too) is bit for bit `tfhe-ntt`'s, both ways, for every prime of
    /// every parameter set (the plaintext prime included) and for primes
    /// just below 2^50 and 2^30, at sizes from 16.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn fma_transform_equals_tfhe_ntt() {
        if !has_avx2_fma() {
            return;
        }
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(6);
        let mut cases = every_prime();
        // The largest NTT-friendly primes below 2^50 and 2^30 for N = 2048,
        // at the smallest sizes too (below 32 the first two levels are not
        // a pass of their own; at 32 each quarter has only the tail left).
        for bits in [50u32, 30] {
            let q = prime_below(bits);
            cases.extend([16, 32, 64, 128, 2048].map(|n| (q, n)));
        }
        for (q, n) in cases {
            let tfhe = tfhe_ntt::prime64::Plan::try_new(n, q).unwrap();
            let fma = fma_plan(&tfhe).unwrap();
            for input in inputs(q, n, &mut rng) {
                let (mut a, mut b) = (input.clone(), input.clone());
                fma.forward(&mut a);
                tfhe.fwd(&mut b);
                assert_eq!(a, b, "forward mod {q} (N = {n})");
                let forward = a.clone();
                fma.backward(&mut a);
                tfhe.inv(&mut b);
                tfhe.normalize(&mut b);
                assert_eq!(a, b, "backward mod {q} (N = {n})");
                assert_eq!(a, input, "round trip mod {q}");
                // The factor in the last level: the input times it.
                let c = rng.random_range(0..q);
                let mut scaled = forward;
                fma.backward_scaled(&mut scaled, c);
                let want: Vec<u64> = input
                    .iter()
                    .map(|&x| (u128::from(x) * u128::from(c) % u128::from(q)) as u64)
                    .collect();
                assert_eq!(scaled, want, "backward times {c} mod {q} (N = {n})");
            }
        }
    }
    /// The fused forward transform equals the transform followed by the
    /// product kernels, for every prime of every parameter set and primes
    /// just below 2^50, on random and extreme inputs; rows of the wrong
    /// length or a scalar not below the prime are refused.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn fused_forward_equals_transform_then_product() {
        if !has_avx2_fma() {
            return;
        }
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let mut cases = every_prime();
        // Small sizes too: blocks of one or two groups leave the last pass
        // a group that the pairs of fused groups do not take.
        cases.extend([16, 32, 64, 2048].map(|n| (prime_below(50), n)));
        for (q, n) in cases {
            let m = Modulus::new(q).unwrap();
            let tfhe = tfhe_ntt::prime64::Plan::try_new(n, q).unwrap();
            let fma = fma_plan(&tfhe).unwrap();
            let all = inputs(q, n, &mut rng);
            for (i, input) in all.iter().enumerate() {
                let (x, y) = (&all[(i + 1) % all.len()], &all[(i + 3) % all.len()]);
                for c in [0, 1, q / 3, q - 1] {
                    let mut expected = input.clone();
                    tfhe.fwd(&mut expected);
                    let mut sub = expected.clone();
                    crate::kernels::mul_sub_into(&m, &mut sub, x, y);
                    let mut plus = expected.clone();
                    crate::kernels::mul_add_into(&m, &mut plus, x, y);
                    let mut add = expected;
                    crate::kernels::scaled_mul_add_into(&m, &mut add, x, c, y);
                    let mut a = input.clone();
                    assert!(fma.forward_fused(&mut a, FusedProduct::Sub(x, y)));
                    assert_eq!(a, sub, "e − x·y mod {q} (N = {n})");
                    let mut a = input.clone();
                    assert!(fma.forward_fused(&mut a, FusedProduct::Add(x, y)));
                    assert_eq!(a, plus, "e + x·y mod {q} (N = {n})");
                    let mut a = input.clone();
                    assert!(fma.forward_fused(&mut a, FusedProduct::AddScaled(x, c, y)));
                    assert_eq!(a, add, "e + x·{c}·y mod {q} (N = {n})");
                }
            }
            let mut a = all[0].clone();
            assert!(!fma.forward_fused(&mut a, FusedProduct::Sub(&all[1][1..], &all[2])));
            assert!(!fma.forward_fused(&mut a, FusedProduct::AddScaled(&all[1], q, &all[2])));
            assert_eq!(a, all[0], "refused: nothing done");
        }
    }
}
