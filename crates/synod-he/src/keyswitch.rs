//! Key switching of a result to one recipient's public key (PCKS, Mouchet et
//! al., PETS 2021, §4.6; Lattigo `multiparty.PublicKeySwitchProtocol`), by any
//! `t` participants with Lagrange-weighted shares.
//!
//! For `ct = (c0, c1)` at level `ℓ`, the recipient's public key
//! `(p0, p1) = (−a·s_R + e_R, a)` and an active set `T`, participant `j ∈ T`
//! draws a small `u_j` and publishes
//! `h0_j = λ_j^T·S_j·c1 + u_j·p0 + E_j` (flooded) and `h1_j = u_j·p1 + e_j`.
//! Then `(c0 + Σ h0_j, Σ h1_j)` encrypts the same message under `s_R`: only
//! the recipient can decrypt it.

use fhe::bfv::{Ciphertext, PublicKey};
use fhe_math::rq::{Poly, Representation};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::decrypt::{check_membership, check_share_binding, ciphertext_digest, ciphertext_level};
use crate::flooding::Flooding;
use crate::ring::{self, WirePoly};
use crate::secret::KeyShare;
use crate::shamir::{ActiveSet, EvaluationPoint};
use crate::{glue, round, Error, Params, Result};

/// A recipient's public key, as polynomials.
#[derive(Clone, Debug)]
pub struct RecipientKey {
    p0: Poly,
    p1: Poly,
}

impl RecipientKey {
    /// From the recipient's `fhe` public key (same parameters).
    pub fn new(params: &Params, pk: &PublicKey) -> Result<Self> {
        let (p0, p1) = glue::public_key_polys(params, pk)?;
        Ok(Self { p0, p1 })
    }
}

/// One participant's key-switch share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySwitchShare {
    /// Who made it.
    pub sender: EvaluationPoint,
    /// The active set whose Lagrange weight it used.
    pub set: ActiveSet,
    /// Digest of the ciphertext it switches.
    pub ciphertext: [u8; 32],
    /// Flooding bits it added.
    pub flooding_bits: u32,
    /// `h0_j`.
    pub h0: WirePoly,
    /// `h1_j`.
    pub h1: WirePoly,
}

/// Participant `key.point()`'s share for switching `ct` to `recipient`.
pub fn key_switch_share<R: RngCore + CryptoRng>(
    params: &Params,
    key: &KeyShare,
    set: &ActiveSet,
    ct: &Ciphertext,
    recipient: &RecipientKey,
    flooding: &Flooding,
    rng: &mut R,
) -> Result<KeySwitchShare> {
    if ct.len() != 2 {
        return Err(Error::Parameters("ciphertext must have 2 polynomials".into()));
    }
    let level = ciphertext_level(params, ct)?;
    if level != flooding.level() {
        return Err(Error::NoiseBudget(format!(
            "flooding was sized for level {}, the ciphertext is at level {level}",
            flooding.level()
        )));
    }
    check_membership(key, set)?;
    let ctx = params.ctx(level)?;
    let weighted = key.weighted(params, set, level)?;
    let c1 = ct
        .get(1)
        .ok_or_else(|| Error::Parameters("ciphertext without c1".into()))?;
    let u = zeroize::Zeroizing::new(Poly::small(ctx, Representation::Ntt, params.variance(), rng)?);
    let p0 = ring::restrict(&recipient.p0, ctx)?;
    let p1 = ring::restrict(&recipient.p1, ctx)?;
    let mut h0 = c1 * weighted.poly();
    h0 += &(&p0 * u.as_ref());
    h0 += &flooding.sample(params, ctx, rng)?;
    let mut h1 = &p1 * u.as_ref();
    h1 += &ring::error_ntt(params, ctx, rng)?;
    Ok(KeySwitchShare {
        sender: key.point(),
        set: set.clone(),
        ciphertext: ciphertext_digest(params, ct)?,
        flooding_bits: flooding.bits(),
        h0: WirePoly::from_poly(&h0, level),
        h1: WirePoly::from_poly(&h1, level),
    })
}

/// Combines one share from every member of `set` into a ciphertext under the
/// recipient's key.
pub fn combine_key_switch(
    params: &Params,
    ct: &Ciphertext,
    set: &ActiveSet,
    shares: impl IntoIterator<Item = KeySwitchShare>,
) -> Result<Ciphertext> {
    const WHAT: &str = "key-switch share";
    if ct.len() != 2 {
        return Err(Error::Parameters("ciphertext must have 2 polynomials".into()));
    }
    let level = ciphertext_level(params, ct)?;
    let digest = ciphertext_digest(params, ct)?;
    let shares = round::collect(
        set.members(),
        shares.into_iter().map(|s| (s.sender, s)),
        WHAT,
        "the active set",
    )?;
    let ctx = params.ctx(level)?;
    let mut c0 = ct
        .first()
        .cloned()
        .ok_or_else(|| Error::Parameters("empty ciphertext".into()))?;
    let mut c1 = Poly::zero(ctx, Representation::Ntt);
    for (sender, share) in &shares {
        check_share_binding(*sender, &share.set, &share.ciphertext, set, &digest)?;
        c0 += &share.h0.parse(params, level, *sender, WHAT)?;
        c1 += &share.h1.parse(params, level, *sender, WHAT)?;
    }
    Ok(Ciphertext::new(vec![c0, c1], params.bfv())?)
}
