//! Flooding ("smudging") noise for decryption and key-switch shares
//! (DESIGN.md §4; Asharov et al., Eurocrypt 2012; Mouchet et al. 2021, §5).
//!
//! A decryption share `h_j = λ_j·S_j·c1 + E_j` must not reveal the
//! ciphertext's noise `v` (which depends on the secret key). Each participant
//! adds `E_j`, every coefficient **uniform on `[−B, B)` with `B = 2^b`**,
//! independently. Shifting that distribution by `|v| ≤ 2^ν` moves it by at
//! most `2^ν / 2B` in statistical distance per coefficient, so the whole
//! session's output — `N` coefficients per decryption, at most `D` decryptions
//! — is within `N · D · 2^(ν − b − 1)` of an ideal one. Choosing
//!
//! ```text
//!     b = ⌈40 + log2 N + log2 D + ν⌉
//! ```
//!
//! keeps it at most `2^-40`. (One honest participant's flooding suffices: the
//! corrupt ones know their own.)
//!
//! **Cost.** The combined noise `v + Σ_{j∈T} E_j` must stay below `Δ/2 ≈
//! q/2p`, so the modulus must hold `log2 p + 1 + log2(|T|·2^b + 2^ν) + 1` bits:
//! roughly 40 + 13 + log2 D ≈ 60 bits above the circuit's own noise at
//! N = 8192. [`Flooding::new`] refuses when that does not fit, before any share
//! is made.
//!
//! **Randomness.** Each noise polynomial takes a 32-byte seed from the
//! caller's cryptographic RNG and expands it with a PRF: on CPUs with
//! AVX-512, BLAKE3 in keyed mode read as an extendable output (keyed BLAKE3
//! is specified as a pseudorandom function with extendable output;
//! O'Connor et al., "BLAKE3", 2020; draft-aumasson-blake3); elsewhere,
//! where that XOF is slower, the ChaCha12 keystream (RFC 8439's cipher
//! with 12 rounds) under a key that keyed BLAKE3 derives from the seed
//! (`kernels::Stream`). The uniform distribution above is then
//! computationally, not statistically, what the shares carry, as with any
//! CSPRNG. The seed and the generator's state are wiped after use. The
//! expansion can seek, so the blocks of one polynomial are drawn in
//! parallel.

use std::sync::Arc;

use fhe_math::rq::{Context, Poly};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::kernels::{FloodSeed, RingOps};
use crate::{Error, Params, Result};

/// The statistical security of flooding, in bits (DESIGN.md §4).
pub const STATISTICAL_SECURITY_BITS: u32 = 40;

/// The flooding applied to shares of ciphertexts at one level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flooding {
    bits: u32,
    level: u32,
}

/// Bits of modulus the flooded decryption of `active` shares needs beyond `p`.
fn needed_bits(flood_bits: u32, noise_bits: f64, active: usize, plaintext_bits: f64) -> f64 {
    let flood = (active as f64).log2() + f64::from(flood_bits);
    // log2(2^flood + 2^noise), then one bit for the Δ/2 margin and one for
    // the rounding of Δ = ⌊q/p⌋.
    let total = flood.max(noise_bits) + (1.0 + 2f64.powf(-(flood - noise_bits).abs())).log2();
    total + plaintext_bits + 2.0
}

impl Flooding {
    /// Flooding for ciphertexts at `level` whose noise is at most
    /// `2^noise_bits`, in a session that allows `max_decryptions` decryptions
    /// by active sets of up to `max_active` participants.
    pub fn new(
        params: &Params,
        level: usize,
        noise_bits: f64,
        max_decryptions: u64,
        max_active: usize,
    ) -> Result<Self> {
        if !(noise_bits.is_finite() && noise_bits >= 0.0) {
            return Err(Error::NoiseBudget(format!(
                "invalid noise bound 2^{noise_bits}"
            )));
        }
        let n = params.degree() as f64;
        let d = max_decryptions.max(1) as f64;
        let bits = (f64::from(STATISTICAL_SECURITY_BITS) + n.log2() + d.log2() + noise_bits).ceil();
        let bits = bits as u32;
        let log_q = params.log_q(level);
        let need = needed_bits(
            bits,
            noise_bits,
            max_active.max(1),
            (params.plaintext() as f64).log2(),
        );
        if need > log_q {
            return Err(Error::NoiseBudget(format!(
                "flooding of 2^{bits} over ciphertext noise 2^{noise_bits:.1} needs {need:.1} bits \
                 of modulus with p = {} and {max_active} decryptors, but level {level} has only \
                 log q = {log_q:.1}",
                params.plaintext()
            )));
        }
        Ok(Self {
            bits,
            level: level as u32,
        })
    }

    /// `b`: flooding noise is uniform on `[−2^b, 2^b)`.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The ciphertext level this flooding was sized for.
    pub fn level(&self) -> usize {
        self.level as usize
    }

    /// Samples flooding noise in NTT form in `ctx`.
    pub fn sample<R: RngCore + CryptoRng>(
        &self,
        params: &Params,
        ctx: &Arc<Context>,
        rng: &mut R,
    ) -> Result<Poly> {
        sample_uniform_pow2(self.bits, params.degree(), ctx, rng)
    }

    /// The seed of one flooding polynomial, drawn from `rng` now; the share
    /// computations expand it and reduce it per prime later, in parallel.
    pub(crate) fn seed<R: RngCore + CryptoRng>(&self, rng: &mut R) -> FloodSeed {
        FloodSeed::draw(self.bits, rng)
    }
}

/// Every coefficient uniform on `[−2^bits, 2^bits)`, reduced into each prime
/// of `ctx` without big integers (52-bit limbs and IFMA Shoup products
/// where the CPU has IFMA, the prime is below 2^50 and `bits` below 255,
/// else 64-bit limbs and `fhe-math`'s constant-time Barrett reduction),
/// then taken to NTT form.
fn sample_uniform_pow2<R: RngCore + CryptoRng>(
    bits: u32,
    n: usize,
    ctx: &Arc<Context>,
    rng: &mut R,
) -> Result<Poly> {
    let ops = RingOps::of(ctx)?;
    let limbs = FloodSeed::draw(bits, rng).expand(n);
    let mut residues = ops.secret_matrix();
    ops.par_rows(&mut residues, |_, q, ntt, row| {
        limbs.forward_into(q, ntt, row, None)
    });
    crate::kernels::ntt_poly(std::mem::take(&mut *residues), ctx)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::ParameterSet;
    use fhe_math::rq::{traits::TryConvertFrom, Representation};
    use ndarray::Array2;
    use num_bigint::BigUint;
    use rand::SeedableRng;

    #[test]
    fn samples_lie_in_range_and_fill_it() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let ctx = params.ctx(0).unwrap();
        let q = ctx.modulus().clone();
        let half = &q >> 1;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        for bits in [3u32, 63, 64, 100, 150] {
            let mut p = sample_uniform_pow2(bits, 2048, ctx, &mut rng).unwrap();
            p.change_representation(Representation::PowerBasis);
            let vals: Vec<BigUint> = Vec::from(&p);
            let bound = BigUint::from(1u8) << bits;
            let mut max_seen = 0f64;
            let mut negatives = 0;
            for v in vals {
                let (mag, neg) = if v > half {
                    (&q - &v, true)
                } else {
                    (v, false)
                };
                negatives += usize::from(neg);
                if neg {
                    assert!(mag <= bound, "bits {bits}: |{mag}| > 2^{bits}");
                } else {
                    assert!(mag < bound, "bits {bits}: {mag} >= 2^{bits}");
                }
                max_seen = max_seen.max(mag.bits() as f64);
            }
            // Roughly half negative, and the top bits are used.
            assert!((800..1250).contains(&negatives), "{negatives}");
            assert!(
                max_seen >= f64::from(bits) - 1.0,
                "bits {bits}: max {max_seen}"
            );
        }
    }

    /// The straightforward sampler (the limbs read from the random words as
    /// documented on `FloodLimbs`: a seed from the caller's RNG, then its
    /// BLAKE3 keyed XOF read in order; then u128 `%` per limb and prime,
    /// then `Poly` conversion): the fast one must give the same polynomial
    /// from the same caller's RNG.
    fn reference_sample(bits: u32, n: usize, ctx: &Arc<Context>, rng: &mut impl RngCore) -> Poly {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let mut next_u64 = crate::kernels::tests::flood_stream_reference(&seed);
        let total = bits as usize + 1;
        let limbs = total.div_ceil(64);
        let top_bits = total - 64 * (limbs - 1);
        let top_bytes = [1usize, 2, 4, 8]
            .into_iter()
            .find(|b| 8 * b >= top_bits)
            .unwrap();
        let lower: Vec<u64> = (0..(limbs - 1) * n).map(|_| next_u64()).collect();
        let packed: Vec<u8> = (0..(n * top_bytes).div_ceil(8))
            .flat_map(|_| next_u64().to_le_bytes())
            .collect();
        let mut all = vec![0u64; n * limbs];
        for (j, coeff) in all.chunks_mut(limbs).enumerate() {
            for (l, limb) in coeff.iter_mut().enumerate().take(limbs - 1) {
                *limb = lower[l * n + j];
            }
            let mut top = 0u64;
            for (k, &b) in packed[j * top_bytes..(j + 1) * top_bytes]
                .iter()
                .enumerate()
            {
                top |= u64::from(b) << (8 * k);
            }
            coeff[limbs - 1] = top & (u64::MAX >> (64 - top_bits));
        }
        let mut residues = Array2::<u64>::zeros((ctx.moduli().len(), n));
        for (mut row, &q) in residues.outer_iter_mut().zip(ctx.moduli()) {
            let q = u128::from(q);
            let two64 = (1u128 << 64) % q;
            let off = (0..bits).fold(1u128, |a, _| a * 2 % q);
            for (out, coeff) in row.iter_mut().zip(all.chunks(limbs)) {
                let mut acc = 0u128;
                for limb in coeff.iter().rev() {
                    acc = (acc * two64 % q + u128::from(*limb) % q) % q;
                }
                *out = ((acc + q - off) % q) as u64;
            }
        }
        let mut p =
            Poly::try_convert_from(residues, ctx, false, Representation::PowerBasis).unwrap();
        p.change_representation(Representation::Ntt);
        p
    }

    #[test]
    fn fast_sampler_matches_reference() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        for level in [0, 3] {
            let ctx = params.ctx(level).unwrap();
            for bits in [
                1u32, 3, 20, 62, 63, 64, 85, 100, 127, 128, 150, 200, 255, 256, 300,
            ] {
                let mut a = rand_chacha::ChaCha20Rng::seed_from_u64(u64::from(bits));
                let mut b = a.clone();
                let fast = sample_uniform_pow2(bits, 2048, ctx, &mut a).unwrap();
                assert_eq!(
                    fast,
                    reference_sample(bits, 2048, ctx, &mut b),
                    "bits {bits}"
                );
            }
        }
    }

    #[test]
    fn refuses_flooding_that_does_not_fit() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let f = Flooding::new(&params, 0, 20.0, 16, 3).unwrap();
        assert_eq!(f.bits(), 40 + 11 + 4 + 20);
        assert!(matches!(
            Flooding::new(&params, 0, 150.0, 16, 3),
            Err(Error::NoiseBudget(_))
        ));
        // Fewer primes at a lower level: less room.
        assert!(Flooding::new(&params, 3, 40.0, 16, 3).is_err());
    }
}
