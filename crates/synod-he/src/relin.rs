//! Two-round relinearisation-key generation (RKG), Mouchet et al., PETS 2021,
//! §4.3 (Lattigo `multiparty.RelinearizationKeyGenProtocol`).
//!
//! The key has one row per key-switching digit ([`crate::gadget`]: `w_k` is
//! 1 modulo the primes of digit `k` and 0 modulo the others; with one prime
//! per digit this is fhe.rs's RNS-gadget layout). With common random `a[k]`:
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
use fhe_math::rq::Poly;
use rand::{CryptoRng, RngCore};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crp::{CommonRandomness, CrpPurpose};
use crate::gadget::Gadget;
use crate::kernels::{contiguous_rows, sample_small, NttView, RingOps, SmallSeed};
use crate::ntt::FusedProduct;
use crate::ring::WirePoly;
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

/// What a participant keeps between rounds 1 and 2: the ephemeral `u_i`
/// (its NTT residues, one row of `N` per prime). Consumed by [`round2`], so
/// round 2 cannot run twice; round 2 turns these residues into `u_i − s_i`
/// in place, so no second secret matrix is copied, and wiped, beside them.
pub struct Round1Secret {
    u: Zeroizing<Vec<u64>>,
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

#[cfg(test)]
fn gadget(params: &Params) -> Result<Vec<num_bigint::BigUint>> {
    let moduli = params.moduli();
    let rns = fhe_math::rns::RnsContext::new(moduli)?;
    (0..moduli.len())
        .map(|k| {
            rns.get_garner(k)
                .cloned()
                .ok_or_else(|| Error::Parameters("missing Garner coefficient".into()))
        })
        .collect()
}

#[cfg(test)]
fn crps(params: &Params, crs: &CommonRandomness) -> Result<Vec<Poly>> {
    (0..params.relin_digits())
        .map(|k| {
            crs.poly(CrpPurpose::Relinearization {
                row: u32::try_from(k).unwrap_or(u32::MAX),
            })
            .map(std::borrow::Cow::into_owned)
        })
        .collect()
}

/// Round 1 for participant `sender` with additive share `sk`.
///
/// The gadget coefficient `w_k` is 1 modulo the primes of digit `k` and 0
/// modulo every other prime, so `w_k·s` is `s`'s residues in those rows
/// alone. Randomness is
/// drawn in the order of the textbook loop (`u`, then `e, e'` per gadget
/// row); the rows are then computed in parallel.
pub fn round1<R: RngCore + CryptoRng>(
    params: &Params,
    crs: &CommonRandomness,
    sk: &AdditiveKeyShare,
    sender: EvaluationPoint,
    rng: &mut R,
) -> Result<(Round1Secret, Round1Share)> {
    let ctx = params.ctx(0)?;
    let ops = RingOps::of(ctx)?;
    let (l, n) = (ops.len(), ops.degree());
    let gadget = Gadget::relin(params)?;
    let digits = gadget.digits();
    let u_coeffs = sample_small(n, params.variance(), rng)?;
    let errors = sample_errors(params, 2 * digits, rng)?;
    let u = ops.small_to_ntt(&u_coeffs);
    let s_view = NttView::of(sk.ntt())?;
    let s = s_view.rows(l)?;
    let rows = (0..digits)
        .into_par_iter()
        .map(|k| {
            let group = gadget.group(k);
            let a = crs.poly(CrpPurpose::Relinearization {
                row: u32::try_from(k).unwrap_or(u32::MAX),
            })?;
            let a = contiguous_rows(a.coefficients(), l)?;
            let (e0, e1) = match (errors.get(2 * k), errors.get(2 * k + 1)) {
                (Some(e0), Some(e1)) => (e0, e1),
                _ => return Err(Error::Parameters("missing error sample".into())),
            };
            // r0 = −a·u + w_k·s + e0
            let r0 = ops.small_forward(
                &e0.coeffs(),
                |i| Some(FusedProduct::Sub(ops.row(a, i), ops.row(&u, i))),
                |i, q, row| {
                    if group.contains(&i) {
                        q.add_vec(row, ops.row(s, i));
                    }
                },
            );
            // r1 = a·s + e1
            let r1 = ops.small_forward(
                &e1.coeffs(),
                |i| Some(FusedProduct::Add(ops.row(a, i), ops.row(s, i))),
                |_, _, _| {},
            );
            Ok((
                WirePoly::from_residues(0, r0),
                WirePoly::from_residues(0, r1),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let (h0, h1) = rows.into_iter().unzip();
    Ok((Round1Secret { u }, Round1Share { sender, h0, h1 }))
}

/// The seeds of `count` error polynomials, drawn in order; each job
/// expands and counts its own into coefficients ([`SmallSeed::coeffs`]).
pub(crate) fn sample_errors<R: RngCore + CryptoRng>(
    params: &Params,
    count: usize,
    rng: &mut R,
) -> Result<Vec<SmallSeed>> {
    (0..count)
        .map(|_| SmallSeed::draw(params.degree(), params.variance(), rng))
        .collect()
}

fn parse_rows(
    params: &Params,
    rows: &[WirePoly],
    sender: EvaluationPoint,
    what: &'static str,
) -> Result<Vec<Poly>> {
    let digits = params.relin_digits();
    if rows.len() != digits {
        return Err(Error::Malformed {
            sender,
            what,
            reason: format!("{} gadget rows where {digits} were expected", rows.len()),
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
    let ops = RingOps::of(params.ctx(0)?)?;
    let l = ops.len();
    let digits = params.relin_digits();
    if aggregate.h0.len() != digits || aggregate.h1.len() != digits {
        return Err(Error::Parameters(
            "round-1 aggregate has the wrong number of rows".into(),
        ));
    }
    let errors = sample_errors(params, 2 * digits, rng)?;
    let s_view = NttView::of(sk.ntt())?;
    let s = s_view.rows(l)?;
    let mut u_minus_s = secret.u;
    if u_minus_s.len() != l * ops.degree() {
        return Err(Error::Parameters(
            "round-1 secret of the wrong size for the parameters".into(),
        ));
    }
    ops.par_rows(&mut u_minus_s, |i, q, _, row| q.sub_vec(row, ops.row(s, i)));
    // One job per (gadget row, output polynomial).
    let jobs: Vec<(usize, bool)> = (0..digits).flat_map(|k| [(k, false), (k, true)]).collect();
    let out = jobs
        .par_iter()
        .map(|&(k, second)| {
            // h0'[k] = s·h0[k] + e,  h1'[k] = (u − s)·h1[k] + e'
            let (agg, secret_factor) = match second {
                false => (aggregate.h0.get(k), s),
                true => (aggregate.h1.get(k), u_minus_s.as_slice()),
            };
            let agg = agg.ok_or_else(|| Error::Parameters("missing aggregate row".into()))?;
            let agg_view = NttView::of(agg)?;
            let agg = agg_view.rows(l)?;
            let e = errors
                .get(2 * k + usize::from(second))
                .ok_or_else(|| Error::Parameters("missing error sample".into()))?;
            let r = ops.small_forward(
                &e.coeffs(),
                |i| {
                    let (agg, factor) = (ops.row(agg, i), ops.row(secret_factor, i));
                    Some(FusedProduct::Add(agg, factor))
                },
                |_, _, _| {},
            );
            Ok(WirePoly::from_residues(0, r))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut h0 = Vec::with_capacity(digits);
    let mut h1 = Vec::with_capacity(digits);
    for (w, &(_, second)) in out.into_iter().zip(&jobs) {
        if second {
            h1.push(w);
        } else {
            h0.push(w);
        }
    }
    Ok(Round2Share { sender, h0, h1 })
}

/// The collective relinearisation key: per digit `k` ([`crate::gadget`]),
/// `c0[k] + s·c1[k] ≈ w_k·s²`, held as NTT residue matrices at level 0. It
/// is public.
#[derive(Clone)]
pub struct RelinKey {
    params: Params,
    c0: Vec<Vec<u64>>,
    c1: Vec<Vec<u64>>,
}

impl std::fmt::Debug for RelinKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelinKey")
            .field("params", &self.params)
            .field("digits", &self.c0.len())
            .finish()
    }
}

impl RelinKey {
    /// The parameters (digit size included) the key was made for.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The rows `(c0[k], c1[k])`, `L × N` NTT residues each.
    pub(crate) fn rows(&self) -> (&[Vec<u64>], &[Vec<u64>]) {
        (&self.c0, &self.c1)
    }

    /// The same key as an fhe.rs `RelinearizationKey`, for fhe.rs's own
    /// `Multiplicator`; only keys with one prime per digit have that layout.
    pub fn to_fhe(&self) -> Result<RelinearizationKey> {
        if self.params.relin_digit_primes() != 1 {
            return Err(Error::Parameters(format!(
                "fhe.rs keys have one prime per digit, this one has {}",
                self.params.relin_digit_primes()
            )));
        }
        let polys = |rows: &[Vec<u64>]| glue::shoup_polys(&self.params, rows);
        glue::relinearization_key(&self.params, &polys(&self.c0)?, &polys(&self.c1)?)
    }
}

/// Builds the relinearisation key from round 1's sums and everyone's round-2 shares.
pub fn relinearization_key(
    params: &Params,
    aggregate: &Round1Aggregate,
    expected: &[EvaluationPoint],
    shares: impl IntoIterator<Item = Round2Share>,
) -> Result<RelinKey> {
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
    let c0 = c0.ok_or(Error::Missing {
        what: WHAT,
        missing: Vec::new(),
    })?;
    let l = params.moduli().len();
    let rows = |polys: &[Poly]| -> Result<Vec<Vec<u64>>> {
        polys
            .iter()
            .map(|p| Ok(NttView::of(p)?.rows(l)?.to_vec()))
            .collect()
    };
    Ok(RelinKey {
        params: params.clone(),
        c0: rows(&c0)?,
        c1: rows(&aggregate.h1)?,
    })
}

/// Ciphertext × ciphertext with relinearisation by a relinearisation key
/// from [`relinearization_key`], in the RNS variant of Halevi, Polyakov and
/// Shoup (CT-RSA 2019): fast base conversions and scaling with
/// floating-point corrections instead of fhe.rs's exact big-integer scaler.
/// It rounds each tensor coefficient as `t·round(x/Q)`, as Lattigo does,
/// where fhe.rs's `Multiplicator::default` rounds `t·x/Q`: the two products
/// differ by at most `t/2` per coefficient before relinearisation, and
/// their noise by a few millionths (see `mul`); tests check both. Independent steps run in parallel (rayon, honouring
/// `RAYON_NUM_THREADS`). Level-0 ciphertexts only.
pub struct Multiplier {
    inner: crate::mul::FastMul,
}

impl std::fmt::Debug for Multiplier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("relin::Multiplier")
    }
}

impl Multiplier {
    /// Prepares the multiplication tables for `rlk`, under the parameters
    /// it was made for ([`RelinKey::params`]).
    pub fn new(rlk: &RelinKey) -> Result<Self> {
        Ok(Self {
            inner: crate::mul::FastMul::new(rlk)?,
        })
    }

    /// `a · b`, relinearised, at level 0.
    pub fn multiply(
        &self,
        a: &fhe::bfv::Ciphertext,
        b: &fhe::bfv::Ciphertext,
    ) -> Result<fhe::bfv::Ciphertext> {
        self.inner.multiply(a, b)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::{ring, ParameterSet};
    use fhe_math::rq::Representation;
    use rand::SeedableRng;

    /// Round 1 as first written, with `Poly` arithmetic and the BigUint gadget.
    fn reference_round1(
        params: &Params,
        crs: &CommonRandomness,
        s: &Poly,
        rng: &mut rand_chacha::ChaCha20Rng,
    ) -> (Poly, Vec<WirePoly>, Vec<WirePoly>) {
        let ctx = params.ctx(0).unwrap();
        let mut small = crate::kernels::StreamRng::from_caller(rng);
        let u = Poly::small(ctx, Representation::Ntt, params.variance(), &mut small).unwrap();
        let (mut h0, mut h1) = (Vec::new(), Vec::new());
        for (a, w) in crps(params, crs)
            .unwrap()
            .iter()
            .zip(gadget(params).unwrap())
        {
            let mut r0 = -(a * &u);
            r0 += &ring::scalar_mul(s, &w);
            r0 += &ring::error_ntt(params, ctx, rng).unwrap();
            let mut r1 = a * s;
            r1 += &ring::error_ntt(params, ctx, rng).unwrap();
            h0.push(WirePoly::from_poly(&r0, 0));
            h1.push(WirePoly::from_poly(&r1, 0));
        }
        (u, h0, h1)
    }

    /// Round 2 as first written.
    fn reference_round2(
        params: &Params,
        u: &Poly,
        s: &Poly,
        agg: &Round1Aggregate,
        rng: &mut rand_chacha::ChaCha20Rng,
    ) -> (Vec<WirePoly>, Vec<WirePoly>) {
        let ctx = params.ctx(0).unwrap();
        let u_minus_s = u - s;
        let (mut h0, mut h1) = (Vec::new(), Vec::new());
        for (a0, a1) in agg.h0.iter().zip(&agg.h1) {
            let mut r0 = a0 * s;
            r0 += &ring::error_ntt(params, ctx, rng).unwrap();
            let mut r1 = a1 * &u_minus_s;
            r1 += &ring::error_ntt(params, ctx, rng).unwrap();
            h0.push(WirePoly::from_poly(&r0, 0));
            h1.push(WirePoly::from_poly(&r1, 0));
        }
        (h0, h1)
    }

    /// The parallel rounds give exactly the textbook polynomials from the
    /// same random stream.
    #[test]
    fn rounds_match_straightforward_computation() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let crs = CommonRandomness::new(&params, [3; 32]);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(31);
        let pts: Vec<_> = (1..=2).map(|x| EvaluationPoint::new(x).unwrap()).collect();
        let sks: Vec<_> = pts
            .iter()
            .map(|_| AdditiveKeyShare::generate(&params, &mut rng).unwrap())
            .collect();
        let mut a = rng.clone();
        let (secret, share) = round1(&params, &crs, &sks[0], pts[0], &mut rng).unwrap();
        let (u, h0, h1) = reference_round1(&params, &crs, sks[0].ntt(), &mut a);
        assert_eq!((&share.h0, &share.h1), (&h0, &h1));
        assert_eq!(Some(secret.u.as_slice()), u.coefficients().as_slice());

        let (_, other) = round1(&params, &crs, &sks[1], pts[1], &mut rng).unwrap();
        let agg = aggregate_round1(&params, &pts, [share, other]).unwrap();
        let mut a = rng.clone();
        let r2 = round2(&params, secret, &sks[0], &agg, pts[0], &mut rng).unwrap();
        let (h0, h1) = reference_round2(&params, &u, sks[0].ntt(), &agg, &mut a);
        assert_eq!((&r2.h0, &r2.h1), (&h0, &h1));
    }

    /// Runs both rounds for `parties` participants and returns their
    /// additive shares and the key.
    fn collective_key(
        params: &Params,
        parties: u32,
        rng: &mut rand_chacha::ChaCha20Rng,
    ) -> (Vec<AdditiveKeyShare>, RelinKey) {
        let crs = CommonRandomness::new(params, [9; 32]);
        let pts: Vec<_> = (1..=parties)
            .map(|x| EvaluationPoint::new(x).unwrap())
            .collect();
        let sks: Vec<_> = pts
            .iter()
            .map(|_| AdditiveKeyShare::generate(params, rng).unwrap())
            .collect();
        let (secrets, r1): (Vec<_>, Vec<_>) = pts
            .iter()
            .zip(&sks)
            .map(|(&x, sk)| round1(params, &crs, sk, x, rng).unwrap())
            .unzip();
        let agg = aggregate_round1(params, &pts, r1).unwrap();
        let r2: Vec<_> = secrets
            .into_iter()
            .zip(pts.iter().zip(&sks))
            .map(|(s, (&x, sk))| round2(params, s, sk, &agg, x, rng).unwrap())
            .collect();
        (sks, relinearization_key(params, &agg, &pts, r2).unwrap())
    }

    /// Keys with two and three primes per digit have fewer rows, multiply
    /// correctly, and add the key-switching noise their larger digits
    /// predict: more than one prime per digit, well below the budget.
    #[test]
    fn grouped_digits_relinearise_correctly() {
        use fhe::bfv::{Encoding, Plaintext};
        use fhe_traits::{FheDecoder, FheDecrypter, FheEncoder, FheEncrypter};
        let base = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let p = base.plaintext();
        let x: Vec<u64> = (0..2048u64).map(|i| (i * 7919 + 3) % p).collect();
        let want: Vec<u64> = x
            .iter()
            .map(|a| (*a as u128 * *a as u128 % p as u128) as u64)
            .collect();
        let mut noise = Vec::new();
        for digit_primes in [1, 2, 3] {
            let params = base.clone().with_digit_primes(digit_primes, 1).unwrap();
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(43);
            let (sks, rlk) = collective_key(&params, 3, &mut rng);
            assert_eq!(rlk.rows().0.len(), 5usize.div_ceil(digit_primes));
            assert_eq!(rlk.to_fhe().is_ok(), digit_primes == 1);
            let whole = crate::oracle::WholeKey::from_shares(&params, &sks);
            let sk = whole.secret_key(&params).unwrap();
            let pt = Plaintext::try_encode(&x, Encoding::simd(), params.bfv()).unwrap();
            let ct: fhe::bfv::Ciphertext = sk.try_encrypt(&pt, &mut rng).unwrap();
            let sq = Multiplier::new(&rlk).unwrap().multiply(&ct, &ct).unwrap();
            let got = sk.try_decrypt(&sq).unwrap();
            assert_eq!(
                Vec::<u64>::try_decode(&got, Encoding::simd()).unwrap(),
                want,
                "{digit_primes} primes per digit"
            );
            noise.push(whole.noise_bits(&params, &sq).unwrap());
        }
        // One prime per digit: the tensor's noise dominates. Two and three:
        // digits of ~2^87 and ~2^131 put the key switch's noise on top.
        assert!(noise[1] > noise[0] + 20.0, "{noise:?}");
        assert!(noise[2] > noise[1] + 30.0, "{noise:?}");
        assert!(noise[2] < params_log_delta(&base) - 10.0, "{noise:?}");
    }

    fn params_log_delta(params: &Params) -> f64 {
        params.log_q(0) - (params.plaintext() as f64).log2()
    }

    /// A round-1 share with another digit count is rejected and names its
    /// sender (a participant on other parameters, or a malformed message).
    #[test]
    fn shares_with_the_wrong_digit_count_name_their_sender() {
        let base = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let grouped = base.clone().with_digit_primes(2, 1).unwrap();
        let crs = CommonRandomness::new(&base, [9; 32]);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(47);
        let pts: Vec<_> = (1..=2).map(|x| EvaluationPoint::new(x).unwrap()).collect();
        let sk = AdditiveKeyShare::generate(&base, &mut rng).unwrap();
        let (_, good) = round1(&grouped, &crs, &sk, pts[0], &mut rng).unwrap();
        let (_, stale) = round1(&base, &crs, &sk, pts[1], &mut rng).unwrap();
        assert_eq!(good.h0.len(), 3);
        let got = aggregate_round1(&grouped, &pts, [good, stale]);
        assert!(
            matches!(got, Err(Error::Malformed { sender, .. }) if sender == pts[1]),
            "expected a malformed share from 2, got {got:?}"
        );
    }

    /// The HPS multiplier's product decrypts to the slot-wise product, with
    /// the noise of fhe.rs's `Multiplicator` (which rounds `t·x/Q` where it
    /// takes `t·round(x/Q)`, see [`crate::mul`]): within a tenth of a bit
    /// of it, on random inputs and at every depth of repeated squaring.
    #[test]
    fn multiplier_matches_fhe_multiplicator() {
        use fhe::bfv::{Encoding, Multiplicator, Plaintext};
        use fhe_traits::{FheDecoder, FheDecrypter, FheEncoder, FheEncrypter};
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let crs = CommonRandomness::new(&params, [5; 32]);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(41);
        let pts: Vec<_> = (1..=2).map(|x| EvaluationPoint::new(x).unwrap()).collect();
        let sks: Vec<_> = pts
            .iter()
            .map(|_| AdditiveKeyShare::generate(&params, &mut rng).unwrap())
            .collect();
        let (secrets, r1): (Vec<_>, Vec<_>) = pts
            .iter()
            .zip(&sks)
            .map(|(&x, sk)| round1(&params, &crs, sk, x, &mut rng).unwrap())
            .unzip();
        let agg = aggregate_round1(&params, &pts, r1).unwrap();
        let r2: Vec<_> = secrets
            .into_iter()
            .zip(pts.iter().zip(&sks))
            .map(|(s, (&x, sk))| round2(&params, s, sk, &agg, x, &mut rng).unwrap())
            .collect();
        let rlk = relinearization_key(&params, &agg, &pts, r2).unwrap();
        let whole = crate::oracle::WholeKey::from_shares(&params, &sks);
        let sk = whole.secret_key(&params).unwrap();
        let noise = |ct: &fhe::bfv::Ciphertext| whole.noise_bits(&params, ct).unwrap();
        let fast = Multiplier::new(&rlk).unwrap();
        let reference = Multiplicator::default(&rlk.to_fhe().unwrap()).unwrap();
        let p = params.plaintext();
        for _ in 0..3 {
            use rand::Rng;
            let x: Vec<u64> = (0..2048).map(|_| rng.random_range(0..p)).collect();
            let y: Vec<u64> = (0..2048).map(|_| rng.random_range(0..p)).collect();
            let enc = |v: &[u64], rng: &mut rand_chacha::ChaCha20Rng| {
                let pt = Plaintext::try_encode(v, Encoding::simd(), params.bfv()).unwrap();
                sk.try_encrypt(&pt, rng).unwrap()
            };
            let (a, b) = (enc(&x, &mut rng), enc(&y, &mut rng));
            let got = fast.multiply(&a, &b).unwrap();
            let want = reference.multiply(&a, &b).unwrap();
            assert_eq!(got.len(), 2);
            let (ours, theirs) = (noise(&got), noise(&want));
            assert!(
                (ours - theirs).abs() < 0.1,
                "noise 2^{ours} against fhe.rs's 2^{theirs}"
            );
            let pt = sk.try_decrypt(&got).unwrap();
            let prod: Vec<u64> = x
                .iter()
                .zip(&y)
                .map(|(a, b)| (*a as u128 * *b as u128 % p as u128) as u64)
                .collect();
            assert_eq!(Vec::<u64>::try_decode(&pt, Encoding::simd()).unwrap(), prod);
        }
        // Repeated squaring (the multiplier's square path: one operand,
        // extended once): at every depth the squared plaintexts, and the
        // noise of fhe.rs's square of the same input. (Comparing the noise
        // of two separate fhe.rs encryptions instead was flaky: fhe.rs's
        // secret-key encryption draws part of its randomness from the
        // thread RNG.)
        let x: Vec<u64> = (0..2048u64).map(|i| (i * 7919 + 3) % p).collect();
        let pt = Plaintext::try_encode(&x, Encoding::simd(), params.bfv()).unwrap();
        let mut ours: fhe::bfv::Ciphertext = sk.try_encrypt(&pt, &mut rng).unwrap();
        let mut want = x;
        for depth in 1..=3 {
            let theirs = reference.multiply(&ours, &ours).unwrap();
            ours = fast.multiply(&ours, &ours).unwrap();
            want = want
                .iter()
                .map(|a| (*a as u128 * *a as u128 % p as u128) as u64)
                .collect();
            let got = sk.try_decrypt(&ours).unwrap();
            assert_eq!(
                Vec::<u64>::try_decode(&got, Encoding::simd()).unwrap(),
                want,
                "depth {depth}"
            );
            let (a, b) = (noise(&ours), noise(&theirs));
            assert!(
                (a - b).abs() < 0.1,
                "depth {depth}: noise 2^{a} against fhe.rs's 2^{b}"
            );
        }
        // Only level-0, two-part ciphertexts.
        let pt = Plaintext::try_encode(&[1u64], Encoding::simd(), params.bfv()).unwrap();
        let mut low: fhe::bfv::Ciphertext = sk.try_encrypt(&pt, &mut rng).unwrap();
        low.switch_to_level(1).unwrap();
        assert!(fast.multiply(&low, &low).is_err());
    }
}
