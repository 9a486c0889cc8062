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
use fhe_math::rq::{Poly, Representation};
use fhe_traits::FheDecrypter;
use rand::{CryptoRng, RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::flooding::Flooding;
use crate::ring::WirePoly;
use crate::secret::KeyShare;
use crate::shamir::{ActiveSet, EvaluationPoint};
use crate::{round, Error, Params, Result};

/// A 32-byte digest of a ciphertext (level and every residue), which shares
/// carry so they cannot be applied to another ciphertext.
pub fn ciphertext_digest(params: &Params, ct: &Ciphertext) -> Result<[u8; 32]> {
    let level = ciphertext_level(params, ct)?;
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
    Ok(*h.finalize().as_bytes())
}

/// The level of `ct` in `params`' modulus chain.
pub fn ciphertext_level(params: &Params, ct: &Ciphertext) -> Result<usize> {
    let first = ct
        .first()
        .ok_or_else(|| Error::Parameters("empty ciphertext".into()))?;
    Ok(params.bfv().level_of_context(first.ctx())?)
}

fn check_decryptable(params: &Params, ct: &Ciphertext, flooding: &Flooding) -> Result<usize> {
    if ct.len() != 2 {
        return Err(Error::Parameters(format!(
            "only relinearised ciphertexts (2 polynomials) can be decrypted, this one has {}",
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
    let ctx = params.ctx(level)?;
    let weighted = key.weighted(params, set, level)?;
    let c1 = ct
        .get(1)
        .ok_or_else(|| Error::Parameters("ciphertext without c1".into()))?;
    let mut h = c1 * weighted.poly();
    h += &flooding.sample(params, ctx, rng)?;
    Ok(DecryptionShare {
        sender: key.point(),
        set: set.clone(),
        ciphertext: ciphertext_digest(params, ct)?,
        flooding_bits: flooding.bits(),
        h: WirePoly::from_poly(&h, level),
    })
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
        return Err(Error::Parameters("ciphertext must have 2 polynomials".into()));
    }
    let digest = ciphertext_digest(params, ct)?;
    let shares = round::collect(
        set.members(),
        shares.into_iter().map(|s| (s.sender, s)),
        WHAT,
        "the active set",
    )?;
    let ctx = params.ctx(level)?;
    let mut acc = ct
        .first()
        .cloned()
        .ok_or_else(|| Error::Parameters("empty ciphertext".into()))?;
    for (sender, share) in &shares {
        check_share_binding(*sender, &share.set, &share.ciphertext, set, &digest)?;
        acc += &share.h.parse(params, level, *sender, WHAT)?;
    }
    decode_phase(params, acc, ctx)
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
