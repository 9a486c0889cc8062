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
use fhe_math::rq::{Poly, Representation, SubstitutionExponent};
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::crp::{CommonRandomness, CrpPurpose};
use crate::ring::WirePoly;
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
///
/// Row `k` is `−a_g[k]·s + w_k·σ_g(s) + e`; since the gadget value `w_k` is 1
/// modulo prime `k` and 0 modulo the others, `w_k·σ_g(s)` is just prime `k`'s
/// row of `σ_g(s)`. Rows are computed in parallel.
pub fn galois_key_share<S: LinearSecret, R: RngCore + CryptoRng>(
    params: &Params,
    crs: &CommonRandomness,
    secret: &S,
    elements: &[u32],
    sender: EvaluationPoint,
    rng: &mut R,
) -> Result<GaloisKeyShare> {
    use crate::kernels::{contiguous_rows, small_into, NttView, RingOps};
    use rayon::prelude::*;
    let ctx = params.ctx(0)?;
    let ops = RingOps::of(ctx)?;
    let (l, n) = (ops.len(), ops.degree());
    let s_view = NttView::of(secret.secret_ntt());
    let s = s_view.rows(l)?;
    let mut elements = elements.to_vec();
    elements.sort_unstable();
    elements.dedup();
    // Errors for every (element, row), drawn in order before parallel work.
    let errors = crate::relin::sample_errors(params, elements.len() * l, rng)?;
    let mut keys = Vec::new();
    for (e_index, &g) in elements.iter().enumerate() {
        let sub = SubstitutionExponent::new(ctx, g as usize)?;
        let s_g = zeroize::Zeroizing::new(secret.secret_ntt().substitute(&sub)?);
        let s_g_view = NttView::of(&s_g);
        let s_g_rows = s_g_view.rows(l)?;
        let rows = (0..l)
            .into_par_iter()
            .map(|k| {
                let a = crs.poly(CrpPurpose::Galois {
                    exponent: g,
                    row: u32::try_from(k).unwrap_or(u32::MAX),
                })?;
                let a = contiguous_rows(a.coefficients(), l)?;
                let e = errors
                    .get(e_index * l + k)
                    .ok_or_else(|| Error::Parameters("missing error sample".into()))?;
                let mut h = vec![0u64; l * n];
                ops.par_rows(&mut h, |i, q, ntt, row| {
                    small_into(q, e, row);
                    ntt.forward(row);
                    let mut t = zeroize::Zeroizing::new(ops.row(a, i).to_vec());
                    q.mul_vec(&mut t, ops.row(s, i));
                    q.sub_vec(row, &t);
                    if i == k {
                        q.add_vec(row, ops.row(s_g_rows, i));
                    }
                });
                Ok(WirePoly::from_residues(0, h))
            })
            .collect::<Result<Vec<_>>>()?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::ring;
    use crate::secret::AdditiveKeyShare;
    use crate::ParameterSet;
    use fhe_math::rns::RnsContext;
    use rand::SeedableRng;

    /// The row-wise kernel equals the textbook `Poly` computation
    /// `−a·s + g_k·σ(s) + e` with the big-integer Garner coefficient, for the
    /// same error samples.
    #[test]
    fn fast_share_equals_reference() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let crs = CommonRandomness::new(&params, [3; 32]);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let sk = AdditiveKeyShare::generate(&params, &mut rng).unwrap();
        let elements = vec![3u32, 4095];
        let sender = EvaluationPoint::new(1).unwrap();
        let mut rng_fast = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let fast = galois_key_share(&params, &crs, &sk, &elements, sender, &mut rng_fast).unwrap();

        let mut rng_ref = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let l = params.moduli().len();
        let errors =
            crate::relin::sample_errors(&params, elements.len() * l, &mut rng_ref).unwrap();
        let ctx = params.ctx(0).unwrap();
        let rns = RnsContext::new(params.moduli()).unwrap();
        for (ei, (g, rows)) in fast.keys.iter().enumerate() {
            assert_eq!(*g, elements[ei]);
            let s_g = sk
                .ntt()
                .substitute(&SubstitutionExponent::new(ctx, *g as usize).unwrap())
                .unwrap();
            for k in 0..l {
                let a = crs
                    .poly(CrpPurpose::Galois {
                        exponent: *g,
                        row: k as u32,
                    })
                    .unwrap();
                let mut h = -(&a * sk.ntt());
                h += &ring::scalar_mul(&s_g, rns.get_garner(k).unwrap());
                h += &ring::small_to_ntt(&errors[ei * l + k], ctx).unwrap();
                assert_eq!(rows[k], WirePoly::from_poly(&h, 0), "element {g} row {k}");
            }
        }
    }
}
