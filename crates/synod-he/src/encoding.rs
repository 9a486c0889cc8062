//! Encoding of signed integers and fixed-point reals into SIMD slots
//! (DESIGN.md §4).
//!
//! A plaintext holds N slots of integers mod `p`; a signed value `v` with
//! `|v| ≤ (p−1)/2` is stored as `v mod p` and read back centred. Inputs longer
//! than N span several plaintexts, padded with zeros. Fixed-point reals are
//! integers with a declared scale: `x` is encoded as `round(x · scale)`, and a
//! product of two such values carries `scale²`, which the circuit tracks.

use fhe::bfv::{Encoding, Plaintext};
use fhe_traits::{FheDecoder, FheEncoder};
use rand::{CryptoRng, RngCore};

use crate::keygen::CollectivePublicKey;
use crate::{Ciphertext, Error, Params, Result};

/// Largest magnitude a signed slot value can have: `(p−1)/2`.
pub fn max_magnitude(params: &Params) -> u64 {
    (params.plaintext() - 1) / 2
}

/// Encodes `values` into `⌈len / N⌉` SIMD plaintexts (at least one).
pub fn encode_signed(params: &Params, values: &[i64]) -> Result<Vec<Plaintext>> {
    let p = params.plaintext();
    let max = max_magnitude(params);
    let n = params.degree();
    if let Some((i, v)) = values
        .iter()
        .enumerate()
        .find(|(_, v)| v.unsigned_abs() > max)
    {
        return Err(Error::Encoding(format!(
            "value {v} at position {i} is outside ±{max} (p = {p})"
        )));
    }
    let mut out = Vec::new();
    let chunks: Vec<&[i64]> = if values.is_empty() {
        vec![&[]]
    } else {
        values.chunks(n).collect()
    };
    for chunk in chunks {
        let mut slots = vec![0u64; n];
        for (s, &v) in slots.iter_mut().zip(chunk) {
            *s = if v < 0 {
                p - v.unsigned_abs()
            } else {
                v as u64
            };
        }
        out.push(Plaintext::try_encode(
            &slots,
            Encoding::simd(),
            params.bfv(),
        )?);
    }
    Ok(out)
}

/// Reads the N slots of `pt` as centred signed integers.
pub fn decode_signed(params: &Params, pt: &Plaintext) -> Result<Vec<i64>> {
    let p = params.plaintext();
    let slots = Vec::<u64>::try_decode(pt, Encoding::simd())?;
    Ok(slots
        .into_iter()
        .map(|s| {
            if s > p / 2 {
                -((p - s) as i64)
            } else {
                s as i64
            }
        })
        .collect())
}

/// Encrypts `values` under `pk`, one ciphertext per N values
/// ([`CollectivePublicKey::encrypt`]).
pub fn encrypt_signed<R: RngCore + CryptoRng>(
    params: &Params,
    pk: &CollectivePublicKey,
    values: &[i64],
    rng: &mut R,
) -> Result<Vec<Ciphertext>> {
    encode_signed(params, values)?
        .iter()
        .map(|pt| pk.encrypt(params, pt, rng))
        .collect()
}

/// A declared fixed-point scale: reals are stored as `round(x · scale)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FixedPoint {
    scale: u64,
}

impl FixedPoint {
    /// A scale ≥ 1.
    pub fn new(scale: u64) -> Result<Self> {
        if scale == 0 {
            return Err(Error::Encoding(
                "fixed-point scale must be at least 1".into(),
            ));
        }
        Ok(Self { scale })
    }

    /// The scale factor.
    pub fn scale(self) -> u64 {
        self.scale
    }

    /// `round(x · scale)`, refusing non-finite or unrepresentable values.
    pub fn to_integer(self, x: f64) -> Result<i64> {
        let v = (x * self.scale as f64).round();
        if !v.is_finite() || v.abs() >= 2f64.powi(62) {
            return Err(Error::Encoding(format!(
                "{x} cannot be encoded with scale {}",
                self.scale
            )));
        }
        Ok(v as i64)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::ParameterSet;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn signed_round_trip(values in proptest::collection::vec(-500_000i64..500_000, 0..5000)) {
            let params = Params::new(ParameterSet::InsecureTestN2048, 21).unwrap();
            let pts = encode_signed(&params, &values).unwrap();
            prop_assert_eq!(pts.len(), values.len().div_ceil(2048).max(1));
            let mut back = Vec::new();
            for pt in &pts {
                back.extend(decode_signed(&params, pt).unwrap());
            }
            prop_assert_eq!(&back[..values.len()], &values[..]);
            prop_assert!(back[values.len()..].iter().all(|&v| v == 0));
        }
    }

    #[test]
    fn out_of_range_is_refused() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 16).unwrap();
        let max = max_magnitude(&params) as i64;
        assert!(encode_signed(&params, &[max, -max]).is_ok());
        let err = encode_signed(&params, &[0, max + 1]).unwrap_err();
        assert!(err.to_string().contains("position 1"), "{err}");
    }

    #[test]
    fn fixed_point() {
        let f = FixedPoint::new(100).unwrap();
        assert_eq!(f.to_integer(1.234).unwrap(), 123);
        assert_eq!(f.to_integer(-0.005).unwrap(), -1);
        assert!(f.to_integer(f64::NAN).is_err());
        assert!(FixedPoint::new(0).is_err());
    }
}
