//! Rotation (Galois) key generation (RTG), Mouchet et al., PETS 2021, §4.4
//! (Lattigo `multiparty.GaloisKeyGenProtocol`).
//!
//! For a Galois element `g` (the automorphism `σ_g: X ↦ X^g`) and common
//! random `a_g[k]`, participant `i` publishes
//! `h_i[k] = −a_g[k]·s_i + w_k·σ_g(s_i) + e`; the key is `(Σ h_i, a_g)`, since
//! `Σ h_i + s·a_g = w·σ_g(s) + small`. The protocol is linear in the secret,
//! so after thresholdisation any `t` participants can run it with their
//! Lagrange-weighted shares `λ_j·S_j` (DESIGN.md §2): rotation keys can be made
//! after parties have left.

use std::collections::BTreeMap;

use fhe::bfv::EvaluationKey;
use fhe_math::rns::RnsContext;
use fhe_math::rq::{Poly, Representation, SubstitutionExponent};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::crp::{CommonRandomness, CrpPurpose};
use crate::ring::{self, WirePoly};
use crate::secret::LinearSecret;
use crate::shamir::EvaluationPoint;
use crate::{glue, round, Error, Params, Result};

/// The Galois elements needed to sum all slots (`inner_sum` in fhe.rs):
/// the row swap `2N − 1` and the column rotations by powers of two.
pub fn inner_sum_elements(params: &Params) -> Vec<u32> {
    let n = params.degree() as u64;
    let two_n = 2 * n;
    let mut out = vec![(two_n - 1) as u32];
    let mut i = 1u64;
    while i < n / 2 {
        out.push(pow_mod(3, i, two_n) as u32);
        i *= 2;
    }
    out
}

/// The Galois element that rotates the columns left by `steps` (`0 < steps < N/2`).
pub fn rotation_element(params: &Params, steps: usize) -> Result<u32> {
    let n = params.degree();
    if steps == 0 || steps >= n / 2 {
        return Err(Error::Parameters(format!(
            "rotation by {steps} is outside 1..{}",
            n / 2
        )));
    }
    Ok(pow_mod(3, steps as u64, 2 * n as u64) as u32)
}

fn pow_mod(base: u64, mut exp: u64, m: u64) -> u64 {
    let mut acc = 1u128;
    let mut b = u128::from(base) % u128::from(m);
    while exp > 0 {
        if exp & 1 == 1 {
            acc = acc * b % u128::from(m);
        }
        b = b * b % u128::from(m);
        exp >>= 1;
    }
    acc as u64
}

/// One participant's shares of the Galois keys for several elements.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaloisKeyShare {
    /// Who made it.
    pub sender: EvaluationPoint,
    /// `(element, h_i[k] per gadget row)`, in increasing order of element.
    pub keys: Vec<(u32, Vec<WirePoly>)>,
}

fn crps(params: &Params, crs: &CommonRandomness, exponent: u32) -> Result<Vec<Poly>> {
    (0..params.moduli().len())
        .map(|k| {
            crs.poly(CrpPurpose::Galois {
                exponent,
                row: u32::try_from(k).unwrap_or(u32::MAX),
            })
        })
        .collect()
}

/// Makes this participant's shares for the Galois `elements`.
pub fn galois_key_share<S: LinearSecret, R: RngCore + CryptoRng>(
    params: &Params,
    crs: &CommonRandomness,
    secret: &S,
    elements: &[u32],
    sender: EvaluationPoint,
    rng: &mut R,
) -> Result<GaloisKeyShare> {
    let ctx = params.ctx(0)?;
    let rns = RnsContext::new(params.moduli())?;
    let s = secret.secret_ntt();
    let mut elements = elements.to_vec();
    elements.sort_unstable();
    elements.dedup();
    let mut keys = Vec::new();
    for &g in &elements {
        let sub = SubstitutionExponent::new(ctx, g as usize)?;
        let s_g = zeroize::Zeroizing::new(s.substitute(&sub)?);
        let mut rows = Vec::new();
        for (k, a) in crps(params, crs, g)?.iter().enumerate() {
            let w = rns
                .get_garner(k)
                .ok_or_else(|| Error::Parameters("missing Garner coefficient".into()))?;
            let mut h = -(a * s);
            h += &ring::scalar_mul(&s_g, w);
            h += &ring::error_ntt(params, ctx, rng)?;
            rows.push(WirePoly::from_poly(&h, 0));
        }
        keys.push((g, rows));
    }
    Ok(GaloisKeyShare { sender, keys })
}

/// Sums the shares of exactly `expected` into an `fhe` evaluation key.
pub fn aggregate_galois_keys(
    params: &Params,
    crs: &CommonRandomness,
    expected: &[EvaluationPoint],
    shares: impl IntoIterator<Item = GaloisKeyShare>,
) -> Result<EvaluationKey> {
    const WHAT: &str = "Galois key share";
    let shares = round::collect(
        expected,
        shares.into_iter().map(|s| (s.sender, s)),
        WHAT,
        "the rotation-key set",
    )?;
    let l = params.moduli().len();
    let mut sums: Option<BTreeMap<u32, Vec<Poly>>> = None;
    for (sender, share) in &shares {
        let mut parsed = BTreeMap::new();
        for (g, rows) in &share.keys {
            if rows.len() != l {
                return Err(Error::Malformed {
                    sender: *sender,
                    what: WHAT,
                    reason: format!("{} gadget rows where {l} were expected", rows.len()),
                });
            }
            let polys = rows
                .iter()
                .map(|r| r.parse(params, 0, *sender, WHAT))
                .collect::<Result<Vec<_>>>()?;
            if parsed.insert(*g, polys).is_some() {
                return Err(Error::Malformed {
                    sender: *sender,
                    what: WHAT,
                    reason: format!("element {g} appears twice"),
                });
            }
        }
        match &mut sums {
            None => sums = Some(parsed),
            Some(acc) => {
                if acc.keys().ne(parsed.keys()) {
                    return Err(Error::Malformed {
                        sender: *sender,
                        what: WHAT,
                        reason: "covers other Galois elements than its peers".into(),
                    });
                }
                for (g, rows) in parsed {
                    if let Some(acc_rows) = acc.get_mut(&g) {
                        acc_rows.iter_mut().zip(&rows).for_each(|(a, r)| *a += r);
                    }
                }
            }
        }
    }
    let sums = sums.unwrap_or_default();
    let mut keys = Vec::new();
    for (g, mut c0) in sums {
        let mut c1 = crps(params, crs, g)?;
        for p in c0.iter_mut().chain(c1.iter_mut()) {
            p.change_representation(Representation::NttShoup);
        }
        keys.push((g, c0, c1));
    }
    glue::evaluation_key(params, &keys)
}
