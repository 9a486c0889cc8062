//! **Test-only** oracle that knows the whole secret key. Available only with
//! the `insecure-test-params` feature; it exists to check protocols against
//! the math (noise measurements, "the key is never needed" assertions) and is
//! never reachable from the `synod` binary.

use fhe::bfv::{Ciphertext, SecretKey};
use fhe_math::rq::{Poly, Representation};
use fhe_traits::DeserializeParametrized;
use num_bigint::{BigInt, BigUint};
use prost::Message;

use crate::decrypt::ciphertext_level;
use crate::ring;
use crate::secret::AdditiveKeyShare;
use crate::{Params, Result};

/// The whole key `s = Σ s_i`, as coefficients.
pub struct WholeKey {
    coeffs: Vec<i64>,
}

impl WholeKey {
    /// Sums the additive shares.
    pub fn from_shares<'a>(
        params: &Params,
        shares: impl IntoIterator<Item = &'a AdditiveKeyShare>,
    ) -> Self {
        let mut coeffs = vec![0i64; params.degree()];
        for s in shares {
            coeffs.iter_mut().zip(s.coeffs()).for_each(|(a, b)| *a += b);
        }
        Self { coeffs }
    }

    /// As an `fhe` secret key.
    pub fn secret_key(&self, params: &Params) -> Result<SecretKey> {
        let proto = fhe::proto::bfv::SecretKey {
            coeffs: self.coeffs.clone(),
        };
        Ok(SecretKey::from_bytes(&proto.encode_to_vec(), params.bfv())?)
    }

    /// log2 of the largest |noise| coefficient of a 2-polynomial `ct`:
    /// with phase `φ = c0 + c1·s` and `m = round(p·φ/q)`, noise is
    /// `φ − round(q·m/p)` (centred).
    pub fn noise_bits(&self, params: &Params, ct: &Ciphertext) -> Result<f64> {
        let level = ciphertext_level(params, ct)?;
        let ctx = params.ctx(level)?;
        let s = ring::small_to_ntt(&self.coeffs, ctx)?;
        let mut phase = ct
            .first()
            .cloned()
            .unwrap_or_else(|| Poly::zero(ctx, Representation::Ntt));
        for (i, c) in ct.iter().enumerate().skip(1) {
            let mut term = c.clone();
            for _ in 0..i {
                term *= &s;
            }
            phase += &term;
        }
        phase.change_representation(Representation::PowerBasis);
        let q = BigInt::from(ctx.modulus().clone());
        let p = BigInt::from(params.plaintext());
        let half_q: BigInt = &q / 2;
        let mut worst = BigInt::from(0);
        for c in Vec::<BigUint>::from(&phase) {
            let c = BigInt::from(c);
            let c = if c > half_q { c - &q } else { c };
            // m = round(p·c / q), noise = c − round(q·m / p)
            let m = div_round(&(&p * &c), &q);
            let noise = &c - div_round(&(&q * &m), &p);
            let noise = if noise < BigInt::from(0) {
                -noise
            } else {
                noise
            };
            if noise > worst {
                worst = noise;
            }
        }
        Ok(if worst == BigInt::from(0) {
            0.0
        } else {
            worst.bits() as f64 - 1.0 + {
                // fractional part from the top bits
                let shift = worst.bits().saturating_sub(53);
                let top: BigInt = &worst >> shift;
                let top: f64 = top.to_string().parse().unwrap_or(1.0);
                (top / 2f64.powi((worst.bits() - shift - 1) as i32)).log2()
            }
        })
    }
}

fn div_round(a: &BigInt, b: &BigInt) -> BigInt {
    let two = BigInt::from(2);
    let (q, r) = (a / b, a % b);
    let r2 = &r * &two;
    if r2 >= *b {
        q + 1
    } else if -r2.clone() > *b {
        q - 1
    } else {
        q
    }
}
