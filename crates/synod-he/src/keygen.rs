//! Collective public-key generation (CKG), Mouchet, Troncoso-Pastoriza,
//! Bossuat and Hubaux, "Multiparty Homomorphic Encryption from
//! Ring-Learning-with-Errors", PETS 2021, §4 (Lattigo `multiparty.PublicKeyGenProtocol`).
//!
//! With the common random polynomial `a` (derived from the session id), each
//! participant publishes `p_i = −a·s_i + e_i`; the public key is
//! `pk = (Σ p_i, a)`, an RLWE encryption of zero under `s = Σ s_i`. The
//! protocol is linear in the secret, so it also runs on Lagrange-weighted
//! Shamir shares (any `t` participants) after thresholdisation.

use fhe::bfv::{Ciphertext, Plaintext, PublicKey};
use fhe_math::rq::{Poly, Representation};
use fhe_traits::FheEncrypter;
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::crp::{CommonRandomness, CrpPurpose};
use crate::kernels::{sample_small, NttView, RingOps, SmallSeed};
use crate::ntt::FusedProduct;
use crate::ring::WirePoly;
use crate::secret::LinearSecret;
use crate::shamir::EvaluationPoint;
use crate::{glue, round, Params, Result};

/// One participant's public-key share `p_i = −a·s_i + e_i`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyShare {
    /// Who made it.
    pub sender: EvaluationPoint,
    /// `p_i`, level 0.
    pub p0: WirePoly,
}

/// Makes this participant's public-key share.
pub fn public_key_share<S: LinearSecret, R: RngCore + CryptoRng>(
    params: &Params,
    crs: &CommonRandomness,
    secret: &S,
    sender: EvaluationPoint,
    rng: &mut R,
) -> Result<PublicKeyShare> {
    let a = crs.poly(CrpPurpose::PublicKey)?;
    let ops = RingOps::of(params.ctx(0)?)?;
    let l = ops.len();
    // p_i = e − a·s_i, row by row: the error taken to NTT form in place, the
    // product subtracted from it.
    let e = sample_small(params.degree(), params.variance(), rng)?;
    let a_view = NttView::of(&a)?;
    let a = a_view.rows(l)?;
    let s_view = NttView::of(secret.secret_ntt())?;
    let s = s_view.rows(l)?;
    let p0 = ops.small_forward(
        &e,
        |i| Some(FusedProduct::Sub(ops.row(a, i), ops.row(s, i))),
        |_, _, _| {},
    );
    Ok(PublicKeyShare {
        sender,
        p0: WirePoly::from_residues(0, p0),
    })
}

/// The collective public key, with the polynomials it was built from.
#[derive(Clone, Debug)]
pub struct CollectivePublicKey {
    p0: Poly,
    a: Poly,
    pk: PublicKey,
}

impl CollectivePublicKey {
    /// The `fhe` key.
    pub fn key(&self) -> &PublicKey {
        &self.pk
    }

    /// Encrypts `pt` under the key: fhe.rs's `PublicKey::try_encrypt`
    /// (`c0 = u·p0 + e1 + Δ·m`, `c1 = u·p1 + e2`, with fhe.rs's scaling
    /// `Δ·m = (−t)⁻¹·([Q]_t·m mod t)` mod each prime), computed with synod's
    /// kernels; the same ciphertext for the same `u, e1, e2` (tested). The
    /// small polynomials are drawn as every small polynomial in synod is
    /// (a seed from `rng`, expanded with BLAKE3), in fhe.rs's order. `Δ·m` is added
    /// before the NTT, so it costs no NTT of its own: 15 NTTs in all.
    /// A plaintext below level 0 goes to fhe.rs (which switches the key
    /// down).
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        params: &Params,
        pt: &Plaintext,
        rng: &mut R,
    ) -> Result<Ciphertext> {
        use fhe_math::rq::traits::TryConvertFrom;
        use fhe_math::zq::Modulus;
        use zeroize::Zeroizing;
        let t = Modulus::new(params.plaintext())?;
        if pt.level() != 0 || params.moduli().iter().any(|&q| q <= *t) {
            return Ok(self.pk.try_encrypt(pt, rng)?);
        }
        let ctx = params.ctx(0)?;
        let ops = RingOps::of(ctx)?;
        let (l, n) = (ops.len(), ops.degree());
        let u = SmallSeed::draw(n, params.variance(), rng)?;
        let e1 = SmallSeed::draw(n, params.variance(), rng)?;
        let e2 = SmallSeed::draw(n, params.variance(), rng)?;
        // (−t)⁻¹ mod each prime, fhe.rs's scaling constant.
        let deltas = ops
            .moduli()
            .iter()
            .map(|q| {
                q.inv(q.neg(*t)).ok_or_else(|| {
                    crate::Error::Parameters(format!("t is not invertible mod {}", **q))
                })
            })
            .collect::<Result<Vec<u64>>>()?;
        // The plaintext's coefficients (below t, so below every prime) times
        // [Q]_t, mod t.
        let m = Zeroizing::new(Poly::try_convert_from(pt, ctx, false, None)?);
        let q_mod_t = params
            .moduli()
            .iter()
            .fold(1 % *t, |acc, &q| t.mul(acc, q % *t));
        let values = m.coefficients();
        let values = values.row(0);
        // A plaintext of other parameters (another t, the same primes) would
        // pass the context check: its coefficients must be below t.
        if values.iter().fold(false, |acc, &v| acc | (v >= *t)) {
            return Err(crate::Error::Parameters(
                "the plaintext was not encoded for these parameters".into(),
            ));
        }
        let m_t = Zeroizing::new(
            values
                .iter()
                .map(|&v| t.mul(v, q_mod_t))
                .collect::<Vec<u64>>(),
        );
        let p0_view = NttView::of(&self.p0)?;
        let p0 = p0_view.rows(l)?;
        let p1_view = NttView::of(&self.a)?;
        let p1 = p1_view.rows(l)?;
        let (c0, c1) = crate::kernels::in_pool(|| {
            let u = ops.small_to_ntt(&u.coeffs());
            // c0 = NTT(e1 + Δ·m) + u·p0
            let mut c0 = Zeroizing::new(ops.small_matrix(&e1.coeffs()));
            ops.par_rows(&mut c0, |i, q, ntt, row| {
                let mut dm = m_t.clone();
                q.scalar_mul_vec(&mut dm, deltas.get(i).copied().unwrap_or(0));
                q.add_vec(row, &dm);
                ntt.forward_and(q, row, FusedProduct::Add(ops.row(&u, i), ops.row(p0, i)));
            });
            // c1 = NTT(e2) + u·p1
            let mut c1 = Zeroizing::new(ops.small_forward(
                &e2.coeffs(),
                |i| Some(FusedProduct::Add(ops.row(&u, i), ops.row(p1, i))),
                |_, _, _| {},
            ));
            (std::mem::take(&mut *c0), std::mem::take(&mut *c1))
        });
        let (c0, c1) = (
            crate::kernels::ntt_poly(c0, ctx)?,
            crate::kernels::ntt_poly(c1, ctx)?,
        );
        crate::ring::ciphertext_at(params, 0, c0, c1)
    }

    /// `(Σ p_i, a)` in wire form.
    pub fn to_wire(&self) -> (WirePoly, WirePoly) {
        (
            WirePoly::from_poly(&self.p0, 0),
            WirePoly::from_poly(&self.a, 0),
        )
    }
}

/// Sums the shares of exactly the participants in `expected` into the public key.
pub fn aggregate_public_key(
    params: &Params,
    crs: &CommonRandomness,
    expected: &[EvaluationPoint],
    shares: impl IntoIterator<Item = PublicKeyShare>,
) -> Result<CollectivePublicKey> {
    let shares = round::collect(
        expected,
        shares.into_iter().map(|s| (s.sender, s)),
        "public-key share",
        "the key-generation set",
    )?;
    let ctx = params.ctx(0)?;
    let mut p0 = Poly::zero(ctx, Representation::Ntt);
    for (sender, share) in &shares {
        p0 += &share.p0.parse(params, 0, *sender, "public-key share")?;
    }
    let a = crs.poly(CrpPurpose::PublicKey)?.into_owned();
    let pk = glue::public_key(params, &p0, &a)?;
    Ok(CollectivePublicKey { p0, a, pk })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::secret::AdditiveKeyShare;
    use crate::ParameterSet;
    use rand::SeedableRng;

    /// The row kernels give `Poly`'s `−a·s + e` with the same randomness.
    #[test]
    fn share_equals_the_poly_arithmetic() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let ctx = params.ctx(0).unwrap();
        let crs = CommonRandomness::new(&params, [3; 32]);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(8);
        let sk = AdditiveKeyShare::generate(&params, &mut rng).unwrap();
        let me = EvaluationPoint::new(2).unwrap();
        let mut a_rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let mut b_rng = a_rng.clone();
        let share = public_key_share(&params, &crs, &sk, me, &mut a_rng).unwrap();
        let a = crs.poly(CrpPurpose::PublicKey).unwrap();
        let mut want = -(a.as_ref() * sk.ntt());
        let mut small = crate::kernels::StreamRng::from_caller(&mut b_rng);
        want += &Poly::small(ctx, Representation::Ntt, params.variance(), &mut small).unwrap();
        assert_eq!(share.p0.parse(&params, 0, me, "p0").unwrap(), want);
        assert_eq!(share.sender, me);
    }

    /// fhe.rs's `try_encrypt` fed the three small polynomials of
    /// [`CollectivePublicKey::encrypt`] (each seed's stream in turn).
    struct ThreeStreams {
        streams: Vec<crate::kernels::StreamRng>,
        words_each: usize,
        used: usize,
    }

    impl RngCore for ThreeStreams {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }

        fn next_u64(&mut self) -> u64 {
            let at = self.used / self.words_each;
            self.used += 1;
            self.streams.get_mut(at).map_or(0, |s| s.next_u64())
        }

        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for chunk in dest.chunks_mut(8) {
                let w = self.next_u64().to_le_bytes();
                chunk.copy_from_slice(&w[..chunk.len()]);
            }
        }
    }

    impl CryptoRng for ThreeStreams {}

    /// synod's encryption is fhe.rs's, coefficient for coefficient, for the
    /// same small polynomials (two plaintext widths, several values), and
    /// the whole key decrypts it to the values.
    #[test]
    fn encryption_equals_fhe_rs() {
        use fhe::bfv::Encoding;
        use fhe_traits::{FheDecoder, FheDecrypter};
        for p_bits in [20u32, 35] {
            let params = Params::new(ParameterSet::InsecureTestN2048, p_bits).unwrap();
            let crs = CommonRandomness::new(&params, [5; 32]);
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(u64::from(p_bits));
            let members: Vec<_> = (1..=3).map(|i| EvaluationPoint::new(i).unwrap()).collect();
            let sks: Vec<_> = members
                .iter()
                .map(|_| AdditiveKeyShare::generate(&params, &mut rng).unwrap())
                .collect();
            let shares: Vec<_> = members
                .iter()
                .zip(&sks)
                .map(|(&x, sk)| public_key_share(&params, &crs, sk, x, &mut rng).unwrap())
                .collect();
            let pk = aggregate_public_key(&params, &crs, &members, shares).unwrap();
            let n = params.degree();
            let values: Vec<i64> = (0..n as i64).map(|i| (i * 7919) % 1000 - 500).collect();
            let pt = crate::encoding::encode_signed(&params, &values)
                .unwrap()
                .remove(0);
            let mut a = rand_chacha::ChaCha20Rng::seed_from_u64(99);
            let mut b = a.clone();
            let ours = pk.encrypt(&params, &pt, &mut a).unwrap();
            let mut chained = ThreeStreams {
                streams: (0..3)
                    .map(|_| crate::kernels::StreamRng::from_caller(&mut b))
                    .collect(),
                words_each: (n * 4 * params.variance()).div_ceil(64),
                used: 0,
            };
            let theirs = pk.key().try_encrypt(&pt, &mut chained).unwrap();
            assert_eq!(a.next_u64(), b.next_u64());
            assert_eq!(ours.len(), theirs.len());
            for (x, y) in ours.iter().zip(theirs.iter()) {
                assert_eq!(x.coefficients(), y.coefficients(), "p = {p_bits} bits");
            }
            let sk = crate::oracle::WholeKey::from_shares(&params, &sks)
                .secret_key(&params)
                .unwrap();
            let got = sk.try_decrypt(&ours).unwrap();
            let got = Vec::<i64>::try_decode(&got, Encoding::simd()).unwrap();
            assert_eq!(got, values);
        }
    }
}
