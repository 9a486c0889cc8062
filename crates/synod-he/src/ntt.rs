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

use fhe_math::ntt::NttOperator;
use fhe_math::zq::Modulus;

/// Forward and backward NTT of size `N` modulo one prime.
pub(crate) enum Ntt {
    /// `tfhe-ntt` 0.7's plan.
    Tfhe(tfhe_ntt::prime64::Plan),
    /// `fhe-math`'s operator, for primes `tfhe-ntt` has no plan for.
    FheMath(Box<NttOperator>),
}

impl Ntt {
    /// The NTT of size `degree` modulo `q`, if `q ≡ 1 mod 2·degree`.
    pub(crate) fn new(q: &Modulus, degree: usize) -> Option<Self> {
        match tfhe_ntt::prime64::Plan::try_new(degree, **q) {
            Some(plan) => Some(Self::Tfhe(plan)),
            None => NttOperator::new(q, degree).map(|op| Self::FheMath(Box::new(op))),
        }
    }

    /// In place, from coefficients to NTT form (values reduced below `q`).
    pub(crate) fn forward(&self, a: &mut [u64]) {
        match self {
            Self::Tfhe(plan) => plan.fwd(a),
            Self::FheMath(op) => op.forward(a),
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
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::{ParameterSet, Params};
    use rand::SeedableRng;

    /// Bit-for-bit fhe-math's NTT, both ways, for every prime we use
    /// (ciphertext primes, the multiplication's extension primes and a
    /// plaintext prime), on random and extreme inputs.
    #[test]
    fn equals_fhe_math_for_every_prime() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        for set in [
            ParameterSet::InsecureTestN2048,
            ParameterSet::Bfv8192,
            ParameterSet::Bfv16384,
        ] {
            let params = Params::new(set, 20).unwrap();
            let n = params.degree();
            let mut primes: Vec<u64> = params.moduli().to_vec();
            primes.extend(
                crate::mul::FastMul::tables(&params)
                    .unwrap()
                    .extension_primes(),
            );
            primes.push(params.plaintext());
            for q in primes {
                let m = Modulus::new(q).unwrap();
                let ours = Ntt::new(&m, n).unwrap();
                assert!(matches!(ours, Ntt::Tfhe(_)), "tfhe-ntt plans {q}");
                let theirs = NttOperator::new(&m, n).unwrap();
                for input in [m.random_vec(n, &mut rng), vec![q - 1; n], vec![0; n]] {
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
    }
}
