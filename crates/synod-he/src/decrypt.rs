//! Threshold decryption by any `t` of `n` with flooding noise (Mouchet,
//! Bertrand, Hubaux, J. Cryptology 2023, §5; Lattigo `multiparty.KeySwitchProtocol`
//! to the zero key, with `multiparty.Combiner` weights).
//!
//! For a ciphertext `(c0, c1)` at level `ℓ` and an active set `T` (|T| ≥ t),
//! participant `j ∈ T` publishes `h_j = λ_j^T·S_j·c1 + E_j` restricted to the
//! primes of level `ℓ`, where `E_j` is flooding noise ([`crate::flooding`]).
//! Then `c0 + Σ_{j∈T} h_j = Δ·m + v + Σ E_j`, which rounds to `m`.
//!
//! A share names its sender, its active set, the ciphertext's digest and its
//! level; [`combine`] rejects a share made for another set, ciphertext or
//! level with an error naming the sender. A participant must only make a
//! share for a ciphertext it has checked to be the agreed output (DESIGN.md
//! §2, output): that check belongs to the caller, which knows the circuit.

use fhe::bfv::{Ciphertext, Plaintext, SecretKey};
use fhe_math::ntt::NttOperator;
use fhe_math::rq::{traits::TryConvertFrom, Poly, Representation};
use fhe_math::zq::Modulus;
use fhe_traits::FheDecrypter;
use ndarray::Array2;
use rand::{CryptoRng, RngCore, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::flooding::Flooding;
use crate::kernels::{BlockHasher, FloodLimbs, NttView, RingOps};
use crate::ring::WirePoly;
use crate::secret::KeyShare;
use crate::shamir::{ActiveSet, EvaluationPoint};
use crate::{round, Error, Params, Result};

/// A 32-byte digest of a ciphertext (level and every residue), which shares
/// carry so they cannot be applied to another ciphertext.
pub fn ciphertext_digest(params: &Params, ct: &Ciphertext) -> Result<[u8; 32]> {
    let level = ciphertext_level(params, ct)?;
    let mut h = BlockHasher::new(blake3::Hasher::new_derive_key("synod/ciphertext/v1"));
    h.write_u64(level as u64);
    h.write_u64(ct.len() as u64);
    for poly in ct.iter() {
        // The residues of the NTT form, without copying when already NTT.
        h.write_residues(NttView::of(poly).poly().coefficients());
    }
    Ok(*h.finalize().as_bytes())
}

/// The level of `ct` in `params`' modulus chain.
pub fn ciphertext_level(params: &Params, ct: &Ciphertext) -> Result<usize> {
    let first = ct
        .first()
        .ok_or_else(|| Error::Parameters("empty ciphertext".into()))?;
    // Polynomials made under `params` share its context `Arc`s: find the
    // level by pointer first. `level_of_context` compares contexts field by
    // field (NTT tables included), which costs about as much as an NTT.
    if let Some(level) = (0..=params.max_level()).find(|&l| {
        params
            .ctx(l)
            .is_ok_and(|c| std::sync::Arc::ptr_eq(c, first.ctx()))
    }) {
        return Ok(level);
    }
    Ok(params.bfv().level_of_context(first.ctx())?)
}

/// A share can only be made for a relinearised ciphertext at the level its
/// flooding was sized for; returns that level.
pub(crate) fn check_decryptable(
    params: &Params,
    ct: &Ciphertext,
    flooding: &Flooding,
) -> Result<usize> {
    if ct.len() != 2 {
        return Err(Error::Parameters(format!(
            "only relinearised ciphertexts (2 polynomials) can be decrypted or switched, this one has {}",
            ct.len()
        )));
    }
    let level = ciphertext_level(params, ct)?;
    if level != flooding.level() {
        return Err(Error::NoiseBudget(format!(
            "flooding was sized for level {}, the ciphertext is at level {level}",
            flooding.level()
        )));
    }
    Ok(level)
}

/// One participant's decryption share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecryptionShare {
    /// Who made it.
    pub sender: EvaluationPoint,
    /// The active set whose Lagrange weight it used.
    pub set: ActiveSet,
    /// Digest of the ciphertext it decrypts.
    pub ciphertext: [u8; 32],
    /// Flooding bits it added.
    pub flooding_bits: u32,
    /// `h_j` at the ciphertext's level.
    pub h: WirePoly,
}

/// Participant `key.point()`'s share for decrypting `ct` with active set `set`.
pub fn decryption_share<R: RngCore + CryptoRng>(
    params: &Params,
    key: &KeyShare,
    set: &ActiveSet,
    ct: &Ciphertext,
    flooding: &Flooding,
    rng: &mut R,
) -> Result<DecryptionShare> {
    let level = check_decryptable(params, ct, flooding)?;
    check_membership(key, set)?;
    let ops = RingOps::of(params.ctx(level)?)?;
    let c1 = ct
        .get(1)
        .ok_or_else(|| Error::Parameters("ciphertext without c1".into()))?;
    let noise = flooding.limbs(params.degree(), rng);
    // The digest is independent of the share: hash while the share is computed.
    let (digest, h) = rayon::join(
        || ciphertext_digest(params, ct),
        || flooded_key_product(params, key, set, c1, &ops, &noise, |_, _, _, _| {}),
    );
    Ok(DecryptionShare {
        sender: key.point(),
        set: set.clone(),
        ciphertext: digest?,
        flooding_bits: flooding.bits(),
        h: WirePoly::from_residues(level, h?),
    })
}

/// `λ_j^T·S_j·c1 + E_j` at the level of `ops` (NTT residues, row-major),
/// computed per prime in parallel without forming `λ_j^T·S_j`; then
/// `extra(i, q, ntt, row)` runs on each row (key switching adds `u·p0`).
/// Constant time in the key share and the noise.
pub(crate) fn flooded_key_product<F>(
    params: &Params,
    key: &KeyShare,
    set: &ActiveSet,
    c1: &Poly,
    ops: &RingOps,
    noise: &FloodLimbs,
    extra: F,
) -> Result<Vec<u64>>
where
    F: Fn(usize, &Modulus, &NttOperator, &mut [u64]) + Sync + Send,
{
    let k = ops.len();
    let lambda = ops.project(&set.weight(key.point(), params.ctx(0)?.modulus())?);
    let s_view = NttView::of(key.poly());
    let s = s_view.rows(k)?;
    let c1_view = NttView::of(c1);
    let c1 = c1_view.rows(k)?;
    let mut h = vec![0u64; k * ops.degree()];
    ops.par_rows(&mut h, |i, q, ntt, row| {
        noise.ntt_row(q, ntt, row);
        // λ_j·S_j·c1 for this prime, with fhe-math's (SIMD-dispatched,
        // constant-time) vector operations.
        let mut t = Zeroizing::new(ops.row(s, i).to_vec());
        q.scalar_mul_vec(&mut t, lambda.get(i).copied().unwrap_or(0));
        q.mul_vec(&mut t, ops.row(c1, i));
        q.add_vec(row, &t);
        extra(i, q, ntt, row);
    });
    Ok(h)
}

pub(crate) fn check_membership(key: &KeyShare, set: &ActiveSet) -> Result<()> {
    if !set.contains(key.point()) {
        return Err(Error::InvalidCommittee(format!(
            "{} is not in the active set",
            key.point()
        )));
    }
    if let Some(outsider) = set
        .members()
        .iter()
        .find(|p| !key.committee().contains(**p))
    {
        return Err(Error::InvalidCommittee(format!(
            "{outsider} in the active set is not a member of the committee"
        )));
    }
    Ok(())
}

/// Checks that a share of `ct` was made by a member of `set` for exactly
/// `set` and `ct`.
pub(crate) fn check_share_binding(
    sender: EvaluationPoint,
    claimed_set: &ActiveSet,
    claimed_ct: &[u8; 32],
    set: &ActiveSet,
    digest: &[u8; 32],
) -> Result<()> {
    if claimed_set != set {
        return Err(Error::WrongDecryptionSet {
            sender,
            claimed: claimed_set.as_u32(),
            expected: set.as_u32(),
        });
    }
    if claimed_ct != digest {
        return Err(Error::WrongCiphertext { sender });
    }
    Ok(())
}

/// Combines one share from every member of `set` and decodes the plaintext.
pub fn combine(
    params: &Params,
    ct: &Ciphertext,
    set: &ActiveSet,
    shares: impl IntoIterator<Item = DecryptionShare>,
) -> Result<Plaintext> {
    const WHAT: &str = "decryption share";
    let level = ciphertext_level(params, ct)?;
    if ct.len() != 2 {
        return Err(Error::Parameters(
            "ciphertext must have 2 polynomials".into(),
        ));
    }
    let shares = round::collect(
        set.members(),
        shares.into_iter().map(|s| (s.sender, s)),
        WHAT,
        "the active set",
    )?;
    let ctx = params.ctx(level)?;
    let ops = RingOps::of(ctx)?;
    let list: Vec<(&EvaluationPoint, &DecryptionShare)> = shares.iter().collect();
    // Hash the ciphertext while the shares' shapes and ranges are checked;
    // report the first problem in sender order, binding before shape.
    let (digest, checks) = rayon::join(
        || ciphertext_digest(params, ct),
        || {
            list.par_iter()
                .map(|(sender, share)| share.h.check(params, level, **sender, WHAT).map(|_| ()))
                .collect::<Vec<_>>()
        },
    );
    let digest = digest?;
    for ((sender, share), check) in list.iter().zip(checks) {
        check_share_binding(**sender, &share.set, &share.ciphertext, set, &digest)?;
        check?;
    }
    let c0 = ct
        .first()
        .ok_or_else(|| Error::Parameters("empty ciphertext".into()))?;
    let mut acc = NttView::of(c0).rows(ops.len())?.to_vec();
    ops.par_rows(&mut acc, |i, q, _, row| {
        for (_, share) in &list {
            q.add_vec(row, ops.row(&share.h.residues, i));
        }
    });
    let phase = Poly::try_convert_from(
        Array2::from_shape_vec((ops.len(), ops.degree()), acc)
            .map_err(|e| Error::Parameters(e.to_string()))?,
        ctx,
        false,
        Representation::Ntt,
    )?;
    decode_phase(params, phase, ctx)
}

/// Rounds `c0 + Σ h_j` (the phase `Δ·m + noise`) to the plaintext, using the
/// library's own scaling: decrypting `(phase, 0)` with any key multiplies the
/// key by zero.
pub(crate) fn decode_phase(
    params: &Params,
    phase: Poly,
    ctx: &std::sync::Arc<fhe_math::rq::Context>,
) -> Result<Plaintext> {
    let zero = Poly::zero(ctx, Representation::Ntt);
    let ct = Ciphertext::new(vec![phase, zero], params.bfv())?;
    // The key's value is irrelevant (it multiplies zero); a fixed seed keeps
    // this deterministic.
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0);
    let any_key = SecretKey::random(params.bfv(), &mut rng);
    Ok(any_key.try_decrypt(&ct)?)
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::secret::AdditiveKeyShare;
    use crate::shamir::Committee;
    use crate::{thresholdize, ParameterSet};

    /// Key shares of a 2-of-3 committee at points 1, 2, 3 (the key itself is
    /// irrelevant to these tests).
    pub(crate) fn key_shares(
        params: &Params,
        rng: &mut rand_chacha::ChaCha20Rng,
    ) -> (Committee, Vec<KeyShare>) {
        let members: Vec<_> = (1..=3).map(|x| EvaluationPoint::new(x).unwrap()).collect();
        let committee = Committee::new(members.clone(), 2).unwrap();
        let mut inbox: Vec<Vec<thresholdize::SubShare>> = vec![Vec::new(); 3];
        for &x in &members {
            let sk = AdditiveKeyShare::generate(params, rng).unwrap();
            for sub in thresholdize::deal(params, &committee, &sk, x, rng).unwrap() {
                inbox[sub.recipient.get() as usize - 1].push(sub);
            }
        }
        let shares = members
            .iter()
            .zip(inbox)
            .map(|(&x, subs)| {
                thresholdize::receive(params, &committee, x, subs)
                    .unwrap()
                    .0
            })
            .collect();
        (committee, shares)
    }

    /// The digest as first written: clone, convert, hash residue by residue.
    pub(crate) fn reference_digest(params: &Params, ct: &Ciphertext) -> [u8; 32] {
        let level = ciphertext_level(params, ct).unwrap();
        let mut h = blake3::Hasher::new_derive_key("synod/ciphertext/v1");
        h.update(&(level as u64).to_le_bytes());
        h.update(&(ct.len() as u64).to_le_bytes());
        for poly in ct.iter() {
            let mut p = poly.clone();
            p.change_representation(Representation::Ntt);
            for r in p.coefficients().iter() {
                h.update(&r.to_le_bytes());
            }
        }
        *h.finalize().as_bytes()
    }

    /// A random ciphertext at `level` (only its shape matters here).
    pub(crate) fn random_ct(
        params: &Params,
        level: usize,
        rng: &mut rand_chacha::ChaCha20Rng,
    ) -> Ciphertext {
        let ctx = params.ctx(level).unwrap();
        let c = (0..2)
            .map(|_| Poly::random(ctx, Representation::Ntt, rng))
            .collect();
        Ciphertext::new(c, params.bfv()).unwrap()
    }

    /// The fast share equals the straightforward `Poly` computation
    /// `c1 · (λ_j·S_j restricted) + flooding` from the same random stream.
    #[test]
    fn fast_share_matches_straightforward_computation() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(21);
        let (committee, keys) = key_shares(&params, &mut rng);
        let set = ActiveSet::new(&committee, [keys[0].point(), keys[2].point()]).unwrap();
        for level in [0, 2] {
            let ct = random_ct(&params, level, &mut rng);
            let flooding = Flooding::new(&params, level, 10.0, 16, 3).unwrap();
            for key in [&keys[0], &keys[2]] {
                let mut a = rand_chacha::ChaCha20Rng::seed_from_u64(level as u64);
                let mut b = a.clone();
                let fast = decryption_share(&params, key, &set, &ct, &flooding, &mut a).unwrap();
                let ctx = params.ctx(level).unwrap();
                let w = key.weighted(&params, &set, level).unwrap();
                let mut h = &ct[1] * w.poly();
                h += &flooding.sample(&params, ctx, &mut b).unwrap();
                assert_eq!(fast.h, WirePoly::from_poly(&h, level));
                assert_eq!(fast.ciphertext, reference_digest(&params, &ct));
                assert_eq!(fast.h.level as usize, level);
            }
        }
    }
}
