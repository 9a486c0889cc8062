//! Two-round relinearisation-key generation (RKG), Mouchet et al., PETS 2021,
//! §4.3 (Lattigo `multiparty.RelinearizationKeyGenProtocol`).
//!
//! The key has one row per ciphertext prime (the RNS gadget `w_k` = Garner
//! coefficient of prime `k`, as fhe.rs lays out key-switching keys). With
//! common random `a[k]`:
//!
//! * round 1 — party `i` draws an ephemeral small `u_i` and publishes
//!   `h0_i[k] = −u_i·a[k] + w_k·s_i + e`, `h1_i[k] = s_i·a[k] + e'`;
//! * round 2 — on the sums `h0, h1` it publishes
//!   `h0'_i[k] = s_i·h0[k] + e''`, `h1'_i[k] = (u_i − s_i)·h1[k] + e'''`;
//! * the key is `(Σ h0'_i + Σ h1'_i, h1)`, since
//!   `s·h0 + (u − s)·h1 + s·h1 = w·s² + small`.
//!
//! This needs the small additive shares of *all* n parties, once, at set-up
//! (the product `s·s` is not linear in the shares).

use fhe::bfv::RelinearizationKey;
use fhe_math::rns::RnsContext;
use fhe_math::rq::{Poly, Representation};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crp::{CommonRandomness, CrpPurpose};
use crate::ring::{self, WirePoly};
use crate::secret::AdditiveKeyShare;
use crate::shamir::EvaluationPoint;
use crate::{glue, round, Error, Params, Result};

/// Public message of round 1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round1Share {
    /// Who made it.
    pub sender: EvaluationPoint,
    /// `h0_i[k]` per gadget row.
    pub h0: Vec<WirePoly>,
    /// `h1_i[k]` per gadget row.
    pub h1: Vec<WirePoly>,
}

/// Public message of round 2.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round2Share {
    /// Who made it.
    pub sender: EvaluationPoint,
    /// `h0'_i[k]` per gadget row.
    pub h0: Vec<WirePoly>,
    /// `h1'_i[k]` per gadget row.
    pub h1: Vec<WirePoly>,
}

/// What a participant keeps between rounds 1 and 2: the ephemeral `u_i`.
/// Consumed by [`round2`], so round 2 cannot run twice.
pub struct Round1Secret {
    u: Zeroizing<Poly>,
}

impl std::fmt::Debug for Round1Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("relin::Round1Secret([redacted])")
    }
}

/// The sums `h0 = Σ h0_i`, `h1 = Σ h1_i` of round 1, which every participant
/// needs for round 2 and which form the key's second component.
#[derive(Clone, Debug)]
pub struct Round1Aggregate {
    h0: Vec<Poly>,
    h1: Vec<Poly>,
}

fn gadget(params: &Params) -> Result<Vec<num_bigint::BigUint>> {
    let moduli = params.moduli();
    let rns = RnsContext::new(moduli)?;
    (0..moduli.len())
        .map(|k| {
            rns.get_garner(k)
                .cloned()
                .ok_or_else(|| Error::Parameters("missing Garner coefficient".into()))
        })
        .collect()
}

fn crps(params: &Params, crs: &CommonRandomness) -> Result<Vec<Poly>> {
    (0..params.moduli().len())
        .map(|k| {
            crs.poly(CrpPurpose::Relinearization {
                row: u32::try_from(k).unwrap_or(u32::MAX),
            })
        })
        .collect()
}

/// Round 1 for participant `sender` with additive share `sk`.
pub fn round1<R: RngCore + CryptoRng>(
    params: &Params,
    crs: &CommonRandomness,
    sk: &AdditiveKeyShare,
    sender: EvaluationPoint,
    rng: &mut R,
) -> Result<(Round1Secret, Round1Share)> {
    let ctx = params.ctx(0)?;
    let u = Zeroizing::new(Poly::small(ctx, Representation::Ntt, params.variance(), rng)?);
    let s = sk.ntt();
    let mut h0 = Vec::new();
    let mut h1 = Vec::new();
    for (a, w) in crps(params, crs)?.iter().zip(gadget(params)?) {
        let mut r0 = -(a * u.as_ref());
        r0 += &ring::scalar_mul(s, &w);
        r0 += &ring::error_ntt(params, ctx, rng)?;
        let mut r1 = a * s;
        r1 += &ring::error_ntt(params, ctx, rng)?;
        h0.push(WirePoly::from_poly(&r0, 0));
        h1.push(WirePoly::from_poly(&r1, 0));
    }
    Ok((Round1Secret { u }, Round1Share { sender, h0, h1 }))
}

fn parse_rows(
    params: &Params,
    rows: &[WirePoly],
    sender: EvaluationPoint,
    what: &'static str,
) -> Result<Vec<Poly>> {
    let l = params.moduli().len();
    if rows.len() != l {
        return Err(Error::Malformed {
            sender,
            what,
            reason: format!("{} gadget rows where {l} were expected", rows.len()),
        });
    }
    rows.iter()
        .map(|r| r.parse(params, 0, sender, what))
        .collect()
}

fn sum_rows(acc: &mut Option<Vec<Poly>>, rows: Vec<Poly>) {
    match acc {
        None => *acc = Some(rows),
        Some(acc) => acc.iter_mut().zip(rows.iter()).for_each(|(a, r)| *a += r),
    }
}

/// Sums the round-1 shares of exactly the participants in `expected`.
pub fn aggregate_round1(
    params: &Params,
    expected: &[EvaluationPoint],
    shares: impl IntoIterator<Item = Round1Share>,
) -> Result<Round1Aggregate> {
    const WHAT: &str = "relinearisation round-1 share";
    let shares = round::collect(
        expected,
        shares.into_iter().map(|s| (s.sender, s)),
        WHAT,
        "the key-generation set",
    )?;
    let mut h0 = None;
    let mut h1 = None;
    for (sender, s) in &shares {
        sum_rows(&mut h0, parse_rows(params, &s.h0, *sender, WHAT)?);
        sum_rows(&mut h1, parse_rows(params, &s.h1, *sender, WHAT)?);
    }
    match (h0, h1) {
        (Some(h0), Some(h1)) => Ok(Round1Aggregate { h0, h1 }),
        _ => Err(Error::Missing {
            what: WHAT,
            missing: Vec::new(),
        }),
    }
}

/// Round 2: consumes the round-1 secret.
pub fn round2<R: RngCore + CryptoRng>(
    params: &Params,
    secret: Round1Secret,
    sk: &AdditiveKeyShare,
    aggregate: &Round1Aggregate,
    sender: EvaluationPoint,
    rng: &mut R,
) -> Result<Round2Share> {
    let ctx = params.ctx(0)?;
    let s = sk.ntt();
    let mut u_minus_s = Zeroizing::new(secret.u.as_ref().clone());
    *u_minus_s -= s;
    let mut h0 = Vec::new();
    let mut h1 = Vec::new();
    for (a0, a1) in aggregate.h0.iter().zip(&aggregate.h1) {
        let mut r0 = a0 * s;
        r0 += &ring::error_ntt(params, ctx, rng)?;
        let mut r1 = a1 * u_minus_s.as_ref();
        r1 += &ring::error_ntt(params, ctx, rng)?;
        h0.push(WirePoly::from_poly(&r0, 0));
        h1.push(WirePoly::from_poly(&r1, 0));
    }
    Ok(Round2Share { sender, h0, h1 })
}

/// Builds the relinearisation key from round 1's sums and everyone's round-2 shares.
pub fn relinearization_key(
    params: &Params,
    aggregate: &Round1Aggregate,
    expected: &[EvaluationPoint],
    shares: impl IntoIterator<Item = Round2Share>,
) -> Result<RelinearizationKey> {
    const WHAT: &str = "relinearisation round-2 share";
    let shares = round::collect(
        expected,
        shares.into_iter().map(|s| (s.sender, s)),
        WHAT,
        "the key-generation set",
    )?;
    let mut c0: Option<Vec<Poly>> = None;
    for (sender, s) in &shares {
        sum_rows(&mut c0, parse_rows(params, &s.h0, *sender, WHAT)?);
        sum_rows(&mut c0, parse_rows(params, &s.h1, *sender, WHAT)?);
    }
    let mut c0 = c0.ok_or(Error::Missing {
        what: WHAT,
        missing: Vec::new(),
    })?;
    let mut c1 = aggregate.h1.clone();
    for p in c0.iter_mut().chain(c1.iter_mut()) {
        p.change_representation(Representation::NttShoup);
    }
    glue::relinearization_key(params, &c0, &c1)
}
