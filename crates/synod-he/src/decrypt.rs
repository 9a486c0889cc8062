//! Threshold decryption by any `t` of `n` with flooding noise (Mouchet,
//! Bertrand, Hubaux, J. Cryptology 2023, §5; Lattigo `multiparty.KeySwitchProtocol`
//! to the zero key, with `multiparty.Combiner` weights).
//!
//! For a ciphertext `(c0, c1)` at level `ℓ` and an active set `T` (|T| ≥ t),
//! participant `j ∈ T` publishes `h_j = λ_j^T·S_j·c1 + E_j` restricted to the
//! primes of level `ℓ`, where `E_j` is flooding noise ([`crate::flooding`]).
//! Then `c0 + Σ_{j∈T} h_j = Δ·m + v + Σ E_j`, which rounds to `m`.
//! [`decryption_share`] applies `λ_j^T` per coefficient and never stores
//! `λ_j^T·S_j`; a member that decrypts several ciphertexts for one set can
//! weight its share once ([`KeyShare::weighted`], Lattigo's
//! `Combiner.GenAdditiveShare`) and use [`decryption_share_weighted`], which
//! gives the same share with one product per coefficient fewer.
//!
//! A share names its sender, its active set, the ciphertext's digest and its
//! level; [`combine`] rejects a share made for another set, ciphertext or
//! level with an error naming the sender. [`combine_signed`] makes the same
//! checks and decodes the slots directly, without fhe.rs's `Plaintext`. A participant must only make a
//! share for a ciphertext it has checked to be the agreed output (DESIGN.md
//! §2, output): that check belongs to the caller, which knows the circuit.

use std::sync::OnceLock;

use fhe::bfv::{Ciphertext, Plaintext, SecretKey};
use fhe_math::rq::{Poly, Representation};
use fhe_math::zq::Modulus;
use fhe_traits::FheDecrypter;
use rand::{CryptoRng, RngCore, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::flooding::Flooding;
use crate::kernels::{BlockHasher, FloodLimbs, NttView, RingOps};
use crate::ntt::{FusedProduct, Ntt};
use crate::ring::WirePoly;
use crate::secret::{KeyShare, WeightedKey};
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
        match NttView::of(poly)? {
            NttView::Borrowed(p) => h.write_residues(p.coefficients()),
            NttView::Owned { residues, .. } => h.write_slice(&residues),
        }
    }
    Ok(*h.finalize().as_bytes())
}

/// A ciphertext with its [`ciphertext_digest`], computed once: a participant
/// hashes an output when it checks the evaluation's output hash (made of
/// these digests), and its share and the combination reuse the digest
/// instead of hashing the ciphertext again (pass it where a [`Bound`] is
/// taken).
#[derive(Clone, Copy, Debug)]
pub struct Digested<'a> {
    ct: &'a Ciphertext,
    digest: [u8; 32],
}

impl<'a> Digested<'a> {
    /// Hashes `ct`.
    pub fn new(params: &Params, ct: &'a Ciphertext) -> Result<Self> {
        Ok(Self {
            ct,
            digest: ciphertext_digest(params, ct)?,
        })
    }

    /// `ct` with the digest the caller computed for it with
    /// [`ciphertext_digest`]. The digest is a label that lets combiners
    /// refuse shares of another ciphertext, not a secret: a wrong one makes
    /// this participant's shares carry a digest the others refuse (naming
    /// it), and a combination under a wrong one refuses the honest shares.
    pub fn with_digest(ct: &'a Ciphertext, digest: [u8; 32]) -> Self {
        Self { ct, digest }
    }

    /// The ciphertext.
    pub fn ciphertext(&self) -> &'a Ciphertext {
        self.ct
    }

    /// Its digest.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }
}

/// The ciphertext a share or a combination binds, as every function here
/// that binds one takes it (`impl Into<Bound>`): a `&Ciphertext`, hashed
/// beside the work, or a [`Digested`] one, whose digest is reused.
#[derive(Clone, Copy, Debug)]
pub struct Bound<'a> {
    ct: &'a Ciphertext,
    digest: Option<[u8; 32]>,
}

impl<'a> From<&'a Ciphertext> for Bound<'a> {
    fn from(ct: &'a Ciphertext) -> Self {
        Self { ct, digest: None }
    }
}

impl<'a> From<Digested<'a>> for Bound<'a> {
    fn from(d: Digested<'a>) -> Self {
        Self {
            ct: d.ct,
            digest: Some(d.digest),
        }
    }
}

impl<'a> Bound<'a> {
    /// The ciphertext.
    pub fn ciphertext(&self) -> &'a Ciphertext {
        self.ct
    }

    /// The digest: the one known, or the ciphertext hashed now.
    pub(crate) fn digest(&self, params: &Params) -> Result<[u8; 32]> {
        match self.digest {
            Some(d) => Ok(d),
            None => ciphertext_digest(params, self.ct),
        }
    }

    /// `work()` and the digest: the one known, or the ciphertext hashed
    /// beside the work (in parallel where the pool has a second thread).
    pub(crate) fn digest_beside<T: Send>(
        &self,
        params: &Params,
        work: impl FnOnce() -> T + Send,
    ) -> (Result<[u8; 32]>, T) {
        match self.digest {
            Some(d) => (Ok(d), work()),
            None => rayon::join(|| ciphertext_digest(params, self.ct), work),
        }
    }
}

/// The level of `ct` in `params`' modulus chain.
pub fn ciphertext_level(params: &Params, ct: &Ciphertext) -> Result<usize> {
    let first = ct
        .first()
        .ok_or_else(|| Error::Parameters("empty ciphertext".into()))?;
    // Polynomials made under `params` share its context `Arc`s: find the
    // level by pointer first. `level_of_context` compares contexts field by
    // field (NTT tables included), 1–3 ms at N = 8192.
    if let Some(level) = (0..=params.max_level()).find(|&l| {
        params
            .ctx(l)
            .is_ok_and(|c| std::sync::Arc::ptr_eq(c, first.ctx()))
    }) {
        return Ok(level);
    }
    // A ciphertext fhe.rs switched down holds the context its parent
    // context made (`next_context`), not the parameters' `Arc` for that
    // level: a context is its moduli and degree, so match those.
    let moduli = first.ctx().moduli();
    if first.coefficients().ncols() == params.degree() {
        if let Some(level) =
            (0..=params.max_level()).find(|&l| params.ctx(l).is_ok_and(|c| c.moduli() == moduli))
        {
            return Ok(level);
        }
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
pub fn decryption_share<'a, R: RngCore + CryptoRng>(
    params: &Params,
    key: &KeyShare,
    set: &ActiveSet,
    ct: impl Into<Bound<'a>>,
    flooding: &Flooding,
    rng: &mut R,
) -> Result<DecryptionShare> {
    check_membership(key, set)?;
    share_with(
        params,
        KeyProduct::Shamir(key, set),
        ct.into(),
        flooding,
        rng,
    )
}

/// [`decryption_share`] from a key already weighted for its active set
/// ([`KeyShare::weighted`] at the ciphertext's level), as a member that
/// decrypts several ciphertexts for one set would hold it (Lattigo's
/// t-out-of-N path: `Combiner.GenAdditiveShare` once, then the n-of-n
/// share): the same share, bit for bit, for the same RNG, without the
/// weight's product per coefficient. Errors if `key` holds another level.
pub fn decryption_share_weighted<'a, R: RngCore + CryptoRng>(
    params: &Params,
    key: &WeightedKey,
    ct: impl Into<Bound<'a>>,
    flooding: &Flooding,
    rng: &mut R,
) -> Result<DecryptionShare> {
    share_with(params, KeyProduct::Weighted(key), ct.into(), flooding, rng)
}

fn share_with<R: RngCore + CryptoRng>(
    params: &Params,
    key: KeyProduct<'_>,
    ct: Bound<'_>,
    flooding: &Flooding,
    rng: &mut R,
) -> Result<DecryptionShare> {
    let level = check_decryptable(params, ct.ciphertext(), flooding)?;
    key.check_level(level)?;
    let ops = RingOps::of(params.ctx(level)?)?;
    let c1 = ct
        .ciphertext()
        .get(1)
        .ok_or_else(|| Error::Parameters("ciphertext without c1".into()))?;
    let noise = flooding.seed(rng);
    let (digest, h) = crate::kernels::in_pool(|| {
        ct.digest_beside(params, || {
            let noise = noise.expand(params.degree());
            flooded_key_product(key, c1, &ops, &noise, |_, _, _, _| {})
        })
    });
    Ok(DecryptionShare {
        sender: key.point(),
        set: key.set().clone(),
        ciphertext: digest?,
        flooding_bits: flooding.bits(),
        h: WirePoly::from_residues(level, h?),
    })
}

/// The key a decryption or key-switch share multiplies `c1` by.
#[derive(Clone, Copy)]
pub(crate) enum KeyProduct<'a> {
    /// A Shamir share and the active set: `λ_j^T` is applied per
    /// coefficient and `λ_j^T·S_j` never stored.
    Shamir(&'a KeyShare, &'a ActiveSet),
    /// `λ_j^T·S_j` held ([`KeyShare::weighted`]).
    Weighted(&'a WeightedKey),
}

impl KeyProduct<'_> {
    pub(crate) fn point(self) -> EvaluationPoint {
        match self {
            Self::Shamir(key, _) => key.point(),
            Self::Weighted(key) => key.point(),
        }
    }

    pub(crate) fn set(&self) -> &ActiveSet {
        match self {
            Self::Shamir(_, set) => set,
            Self::Weighted(key) => key.set(),
        }
    }

    /// A weighted key must hold the ciphertext's level (a Shamir share is
    /// at level 0 and restricted to any).
    pub(crate) fn check_level(self, level: usize) -> Result<()> {
        match self {
            Self::Weighted(key) if key.level() != level => Err(Error::Parameters(format!(
                "key weighted at level {} for a ciphertext at level {level}",
                key.level()
            ))),
            _ => Ok(()),
        }
    }
}

/// `λ_j^T·S_j·c1 + E_j` at the level of `ops` (NTT residues, row-major),
/// computed per prime in parallel; then `extra(i, q, ntt, row)` runs on
/// each row (key switching adds `u·p0`). Constant time in the key share
/// and the noise.
pub(crate) fn flooded_key_product<F>(
    key: KeyProduct<'_>,
    c1: &Poly,
    ops: &RingOps,
    noise: &FloodLimbs,
    extra: F,
) -> Result<Vec<u64>>
where
    F: Fn(usize, &Modulus, &Ntt, &mut [u64]) + Sync + Send,
{
    let k = ops.len();
    // λ_j per prime, or none where the key already holds it.
    let (secret, lambda) = match key {
        KeyProduct::Shamir(key, set) => (
            key.poly(),
            Some(set.weight_residues(key.point(), ops.moduli())?),
        ),
        KeyProduct::Weighted(key) => (key.poly(), None),
    };
    let s_view = NttView::of(secret)?;
    let s = s_view.rows(k)?;
    let c1_view = NttView::of(c1)?;
    let c1 = c1_view.rows(k)?;
    let mut h = vec![0u64; k * ops.degree()];
    ops.par_rows(&mut h, |i, q, ntt, row| {
        // The noise reduced and taken to NTT form, and λ_j·S_j·c1 added,
        // constant time: in the transform's first and last passes where it
        // can.
        let (s, c1) = (ops.row(s, i), ops.row(c1, i));
        let product = match &lambda {
            Some(lambda) => FusedProduct::AddScaled(s, lambda.get(i).copied().unwrap_or(0), c1),
            None => FusedProduct::Add(s, c1),
        };
        noise.forward_into(q, ntt, row, Some(product));
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
///
/// Bit-identical to fhe.rs's decryption of `(c0 + Σ h_j, 0)`: the same
/// plaintext values, level and (absent) encoding. Where only the slots are
/// wanted, [`combine_signed`] gives them faster.
pub fn combine<'a>(
    params: &Params,
    ct: impl Into<Bound<'a>>,
    set: &ActiveSet,
    shares: impl IntoIterator<Item = DecryptionShare>,
) -> Result<Plaintext> {
    let ct = ct.into();
    let shares: Vec<DecryptionShare> = shares.into_iter().collect();
    let (level, mut acc) =
        crate::kernels::in_pool(|| checked_phase(params, ct, set, shares, PhaseForm::Ntt))?;
    let phase = crate::kernels::ntt_poly(std::mem::take(&mut *acc), params.ctx(level)?)?;
    decode_phase(params, phase, ct.ciphertext())
}

/// Combines one share from every member of `set` and decodes the slots as
/// centred integers: the same values as
/// `encoding::decode_signed(params, &combine(params, ct, set, shares)?)`,
/// by a direct path that makes no `Plaintext`. The phase `c0 + Σ h_j` is
/// taken out of NTT form prime by prime in parallel, rounded to
/// `⌊t/Q·phase⌉ mod t` by HPS simple scaling (floating-point corrected; for
/// a ciphertext that decrypts at all the result is the exact rounding fhe.rs
/// computes, as the fraction is the noise over `Δ`, far from one half) over
/// the coefficients in parallel, and the slots are read with one NTT
/// modulo `t`.
pub fn combine_signed<'a>(
    params: &Params,
    ct: impl Into<Bound<'a>>,
    set: &ActiveSet,
    shares: impl IntoIterator<Item = DecryptionShare>,
) -> Result<Vec<i64>> {
    combine_signed_as(params, ct, set, shares, Readout::Slots)
}

/// What [`combine_signed_as`] reads from the plaintext polynomial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readout {
    /// The SIMD slots (batch encoding), as [`combine_signed`].
    Slots,
    /// The coefficients, where [`pack_constants`] and
    /// [`crate::galois::GaloisKeys::pack_traces`] put packed values.
    Coefficients,
}

/// [`combine_signed`] with a choice of readout; values are centred in
/// `(−p/2, p/2]`.
pub fn combine_signed_as<'a>(
    params: &Params,
    ct: impl Into<Bound<'a>>,
    set: &ActiveSet,
    shares: impl IntoIterator<Item = DecryptionShare>,
    readout: Readout,
) -> Result<Vec<i64>> {
    let ct = ct.into();
    let shares: Vec<DecryptionShare> = shares.into_iter().collect();
    crate::kernels::in_pool(|| {
        let (level, phase) = checked_phase(params, ct, set, shares, PhaseForm::PowerBasis)?;
        let decoder = Decoder::of(params)?;
        let w = decoder.scale(params, level, phase)?;
        match readout {
            Readout::Slots => decoder.slots_signed(params, &w),
            Readout::Coefficients => Ok(centred(params.plaintext(), &w)),
        }
    })
}

/// Residues mod `p` as signed values in `(−p/2, p/2]`.
fn centred(p: u64, w: &[u64]) -> Vec<i64> {
    w.iter().map(|&s| centre(p, s)).collect()
}

/// `s mod p` as a signed value in `(−p/2, p/2]`.
fn centre(p: u64, s: u64) -> i64 {
    if s > p / 2 {
        -((p - s) as i64)
    } else {
        s as i64
    }
}

/// Packs ciphertexts whose plaintexts are constant polynomials (slot sums:
/// every slot holds the same value) into one whose plaintext holds the
/// `i`-th constant in coefficient `i`: `Σ_i X^i·ct_i`. Multiplying by a
/// monomial only moves (and negates) coefficients, so the packed noise is
/// the sum of the inputs' noises and nothing more; one threshold decryption
/// read with [`Readout::Coefficients`] then opens them all, and reveals
/// nothing the separate decryptions would not (every other coefficient is
/// zero). Every input must be a relinearised ciphertext at the same level;
/// at most `N` of them. The packing is deterministic, so every participant
/// who evaluates the circuit gets the same packed ciphertext, which is part
/// of the output it compares before making a share.
pub fn pack_constants(params: &Params, cts: &[&Ciphertext]) -> Result<Ciphertext> {
    let first = cts
        .first()
        .ok_or_else(|| Error::Parameters("nothing to pack".into()))?;
    let level = ciphertext_level(params, first)?;
    if cts.len() > params.degree() {
        return Err(Error::Parameters(format!(
            "{} ciphertexts do not fit in the {} coefficients of one",
            cts.len(),
            params.degree()
        )));
    }
    // X^i in NTT form, one pointwise product from X^(i−1).
    let x = monomial_ntt(params, level, 1)?;
    let mut x_i = monomial_ntt(params, level, 0)?;
    let mut acc: Option<Ciphertext> = None;
    for (i, ct) in cts.iter().enumerate() {
        if ciphertext_level(params, ct)? != level {
            return Err(Error::Parameters(format!(
                "ciphertext {i} is not at level {level}"
            )));
        }
        if i > 0 {
            x_i *= &x;
        }
        let moved = times_ntt(params, ct, &x_i)?;
        match acc.as_mut() {
            Some(acc) => *acc += &moved,
            None => acc = Some(moved),
        }
    }
    acc.ok_or_else(|| Error::Parameters("nothing to pack".into()))
}

/// The monomial `X^power` (`power < N`) at `level`, in NTT form.
pub(crate) fn monomial_ntt(params: &Params, level: usize, power: usize) -> Result<Poly> {
    let mut monomial = vec![0i64; params.degree()];
    *monomial.get_mut(power).ok_or_else(|| {
        Error::Parameters(format!("X^{power} is not below X^{}", params.degree()))
    })? = 1;
    crate::ring::small_to_ntt(&monomial, params.ctx(level)?)
}

/// `x · ct` for a relinearised ciphertext and a polynomial `x` in NTT form
/// at its level (made by synod's kernels: fhe-math's variable-time flag is
/// off on the result, as on every ciphertext they make). With a monomial `X^k` ([`monomial_ntt`]) every
/// coefficient of the plaintext and of the noise moves up by `k`, those
/// that wrap past `X^N` negated.
pub(crate) fn times_ntt(params: &Params, ct: &Ciphertext, x: &Poly) -> Result<Ciphertext> {
    let (Some(c0), Some(c1), 2) = (ct.first(), ct.get(1), ct.len()) else {
        return Err(Error::Parameters(format!(
            "only 2-polynomial ciphertexts can be packed, this one has {}",
            ct.len()
        )));
    };
    // By pointer first: comparing contexts field by field costs about an NTT.
    let same = |c: &Poly| std::sync::Arc::ptr_eq(c.ctx(), x.ctx()) || c.ctx() == x.ctx();
    if !same(c0) || !same(c1) {
        return Err(Error::Parameters(
            "a ciphertext and a polynomial at different levels".into(),
        ));
    }
    // One pass per prime into a fresh matrix (fhe.rs keeps ciphertexts in
    // NTT form; a power-basis one is viewed through a converted copy).
    let ops = RingOps::of(x.ctx())?;
    let l = ops.len();
    let x_view = NttView::of(x)?;
    let xr = x_view.rows(l)?;
    let times = |c: &Poly| -> Result<Poly> {
        let view = NttView::of(c)?;
        let cr = view.rows(l)?;
        let mut out = vec![0u64; cr.len()];
        ops.par_rows(&mut out, |i, q, _, row| {
            crate::kernels::mul_add_into(q, row, ops.row(cr, i), ops.row(xr, i));
        });
        crate::kernels::ntt_poly(out, x.ctx())
    };
    let level = ciphertext_level(params, ct)?;
    crate::ring::ciphertext_at(params, level, times(c0)?, times(c1)?)
}

/// Checks that one share came from every member of `set`, each bound to
/// `set` and `bound`'s ciphertext and well formed (reporting the first problem in sender order, binding before
/// shape), and returns the level and the phase
/// `c0 + Σ h_j` (residues, row-major) in the form asked for (taken out of
/// NTT form row by row in the summing pass).
fn checked_phase(
    params: &Params,
    bound: Bound<'_>,
    set: &ActiveSet,
    shares: impl IntoIterator<Item = DecryptionShare>,
    form: PhaseForm,
) -> Result<(usize, Zeroizing<Vec<u64>>)> {
    const WHAT: &str = "decryption share";
    let ct = bound.ciphertext();
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
    let ops = RingOps::of(params.ctx(level)?)?;
    let list: Vec<(&EvaluationPoint, &DecryptionShare)> = shares.iter().collect();
    // Level and length now; the residues are scanned for values ≥ q while
    // they are summed, prime by prime (in parallel with hashing `ct` when its
    // digest is not known).
    let shapes: Vec<Result<()>> = list
        .iter()
        .map(|(sender, share)| {
            share
                .h
                .check_shape(params, level, **sender, WHAT)
                .map(|_| ())
        })
        .collect();
    let c0 = ct
        .first()
        .ok_or_else(|| Error::Parameters("empty ciphertext".into()))?;
    let c0_view = NttView::of(c0)?;
    let c0_rows = c0_view.rows(ops.len())?;
    // Summed whatever the shapes (a malformed share's missing rows add
    // nothing): its shape error is reported below, before the sum is used.
    let sum = || {
        let mut acc = Zeroizing::new(vec![0u64; c0_rows.len()]);
        // Per prime, per term (c0 first): whether it held a value ≥ q.
        let unreduced: Vec<Vec<bool>> = acc
            .par_chunks_mut(ops.degree())
            .zip(ops.moduli().par_iter().zip(ops.ntt().par_iter()))
            .enumerate()
            .map(|(i, (row, (q, ntt)))| {
                let terms: Vec<&[u64]> = std::iter::once(ops.row(c0_rows, i))
                    .chain(list.iter().map(|(_, share)| ops.row(&share.h.residues, i)))
                    .collect();
                let flags = crate::kernels::sum_into(q, row, &terms);
                if form == PhaseForm::PowerBasis {
                    ntt.backward(row);
                }
                flags
            })
            .collect();
        (acc, unreduced)
    };
    let (digest, (acc, unreduced)) = bound.digest_beside(params, sum);
    let digest = digest?;
    // The first problem in sender order: binding, then shape, then an
    // unreduced residue (named by the full check).
    for (j, ((sender, share), shape)) in list.iter().zip(shapes).enumerate() {
        check_share_binding(**sender, &share.set, &share.ciphertext, set, &digest)?;
        shape?;
        if unreduced
            .iter()
            .any(|row| row.get(j + 1).copied().unwrap_or(true))
        {
            share.h.check(params, level, **sender, WHAT)?;
            return Err(Error::Parameters(
                "internal: a share flagged as unreduced passed its check".into(),
            ));
        }
    }
    Ok((level, acc))
}

/// The form of the phase [`checked_phase`] returns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PhaseForm {
    Ntt,
    PowerBasis,
}

/// Where fhe.rs's SIMD encoding puts slot `i` in the transform modulo `t`
/// (bit-reversed order, the transform's): SEAL's `matrix_reps_index_map`,
/// which fhe.rs uses. Row 0's slot `i` is the evaluation at `ζ^{3^i}`, row
/// 1's at `ζ^{−3^i}` (`ζ` a primitive `2N`-th root of unity, evaluation
/// `j` at `ζ^{2j+1}`). Computed instead of read off an encoding of
/// `0..N` (0.9–1.5 ms at N = 8192, in a process's first decryption);
/// tested against that encoding.
fn slot_order(n: usize) -> Vec<usize> {
    let (row, m) = (n / 2, 2 * n);
    let brv = |k: usize| k.reverse_bits() >> (usize::BITS - n.trailing_zeros());
    let mut order = Vec::with_capacity(n);
    let mut second = Vec::with_capacity(row);
    let mut pos = 1;
    for _ in 0..row {
        order.push(brv((pos - 1) >> 1));
        second.push(brv((m - pos - 1) >> 1));
        pos = pos * 3 % m;
    }
    order.extend(second);
    order
}

/// What the direct decoding needs, per parameter set: a scaler `Q_ℓ → t`
/// for each level, the NTT modulo `t` and the slot order of fhe.rs's SIMD
/// encoding. Each part is built on its first use: a process that decrypts
/// one packed output at one level (a session's whole output) builds that
/// level's scaler alone, not every level's nor the slot decoding (together
/// about 0.26 ms in session 22's profile, an eighth of the demo's
/// decryption phase).
struct Decoder {
    /// `round(t/Q_ℓ · x) mod t` per level ℓ.
    scalers: Vec<OnceLock<crate::rns::SimpleScale>>,
    slots: OnceLock<SlotDecoding>,
}

/// The NTT modulo `t` and where each slot lies in its output.
struct SlotDecoding {
    ntt_t: Ntt,
    /// `slots[i] = NTT_t(w)[order[i]]`.
    order: Vec<usize>,
}

impl Decoder {
    /// The decoder of `params`' (set, p), kept once per process (as the
    /// parameters themselves are, see `params::cached_bfv`).
    fn of(params: &Params) -> Result<std::sync::Arc<Self>> {
        static CACHE: crate::kernels::Memo<(crate::ParameterSet, u64), Decoder> =
            std::sync::OnceLock::new();
        crate::kernels::memo(&CACHE, (params.set(), params.plaintext()), || {
            Ok(Self {
                scalers: (0..=params.max_level()).map(|_| OnceLock::new()).collect(),
                slots: OnceLock::new(),
            })
        })
    }

    /// The scaler of `level`, built on first use. Two threads may both
    /// build it; they build the same one.
    fn scaler(&self, params: &Params, level: usize) -> Result<&crate::rns::SimpleScale> {
        let cell = self
            .scalers
            .get(level)
            .ok_or_else(|| Error::Parameters(format!("no level {level}")))?;
        if let Some(scaler) = cell.get() {
            return Ok(scaler);
        }
        let built = crate::rns::SimpleScale::new(params.ctx(level)?.moduli(), params.plaintext())?;
        Ok(cell.get_or_init(|| built))
    }

    /// The slot decoding, built on first use.
    fn slot_decoding(&self, params: &Params) -> Result<&SlotDecoding> {
        if let Some(slots) = self.slots.get() {
            return Ok(slots);
        }
        let n = params.degree();
        let modulus = Modulus::new(params.plaintext())?;
        let ntt_t = Ntt::new(&modulus, n)
            .ok_or_else(|| Error::Parameters("p is not an NTT-friendly prime".into()))?;
        let built = SlotDecoding {
            ntt_t,
            order: slot_order(n),
        };
        Ok(self.slots.get_or_init(|| built))
    }

    /// `w = ⌊t/Q_ℓ·phase⌉ mod t` from the coefficient-form phase (row-major
    /// residues at `level`): what fhe.rs's decryption computes with its
    /// exact scaler, here by HPS simple scaling ([`crate::rns::SimpleScale`]),
    /// in parallel over coefficient blocks.
    fn scale(
        &self,
        params: &Params,
        level: usize,
        phase: Zeroizing<Vec<u64>>,
    ) -> Result<Zeroizing<Vec<u64>>> {
        let n = params.degree();
        let scaler = self.scaler(params, level)?;
        if phase.is_empty() || phase.len() % n != 0 {
            return Err(Error::Parameters("phase of the wrong size".into()));
        }
        let mut w = Zeroizing::new(vec![0u64; n]);
        const CHUNK: usize = 512;
        w.par_chunks_mut(CHUNK)
            .enumerate()
            .try_for_each(|(c, out)| {
                let cols = c * CHUNK..c * CHUNK + out.len();
                let rows: Vec<&[u64]> = phase
                    .chunks(n)
                    .map(|row| row.get(cols.clone()).unwrap_or(&[]))
                    .collect();
                scaler.scale(&rows, out)
            })?;
        Ok(w)
    }

    /// The slots of the plaintext polynomial `w`, centred in `(−t/2, t/2]`
    /// as `encoding::decode_signed` gives them.
    fn slots_signed(&self, params: &Params, w: &[u64]) -> Result<Vec<i64>> {
        let p = params.plaintext();
        let slots = self.slot_decoding(params)?;
        let mut y = Zeroizing::new(w.to_vec());
        slots.ntt_t.forward(&mut y);
        slots
            .order
            .iter()
            .map(|&pos| {
                let s = y
                    .get(pos)
                    .copied()
                    .ok_or_else(|| Error::Parameters("slot order out of range".into()))?;
                Ok(centre(p, s))
            })
            .collect()
    }
}

/// Rounds `phase = c0 + Σ h_j` (`Δ·m + noise`, NTT form, at `like`'s level)
/// to the plaintext with the library's own exact scaling, by decrypting
/// `(phase, 0)` with a key whose value is irrelevant (it multiplies zero).
///
/// fhe.rs 0.1.1 offers no other way to make a `Plaintext` without an
/// encoding, which callers decode with the encoding of their choice; its
/// fixed cost is the key's conversion and NTT. The ciphertext is a copy of
/// `like` with its polynomials replaced, not `Ciphertext::new`, which
/// searches the context chain comparing contexts field by field; the key is
/// sampled once per parameter set.
pub(crate) fn decode_phase(params: &Params, phase: Poly, like: &Ciphertext) -> Result<Plaintext> {
    let zero = Poly::zero(phase.ctx(), Representation::Ntt);
    let mut ct = like.clone();
    match ct.get_mut(..2) {
        Some([c0, c1]) => {
            *c0 = phase;
            *c1 = zero;
        }
        _ => {
            return Err(Error::Parameters(
                "ciphertext must have 2 polynomials".into(),
            ))
        }
    }
    Ok(any_key(params)?.try_decrypt(&ct)?)
}

/// A fixed secret key per parameter set, for [`decode_phase`] (its value
/// never matters: it only ever multiplies zero).
fn any_key(params: &Params) -> Result<SecretKey> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Keys = Mutex<HashMap<(crate::ParameterSet, u64), SecretKey>>;
    static KEYS: OnceLock<Keys> = OnceLock::new();
    let keys = KEYS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut guard = keys
        .lock()
        .map_err(|_| Error::Parameters("key cache poisoned".into()))?;
    let key = guard
        .entry((params.set(), params.plaintext()))
        .or_insert_with(|| {
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0);
            SecretKey::random(params.bfv(), &mut rng)
        });
    Ok(key.clone())
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::secret::AdditiveKeyShare;
    use crate::shamir::Committee;
    use crate::{thresholdize, ParameterSet};

    /// A ciphertext fhe.rs switched down holds a context of its own chain,
    /// not the parameters' `Arc` for the level; its level is still found
    /// (by the moduli, without fhe.rs's field-by-field comparison).
    #[test]
    fn level_of_a_switched_ciphertext() {
        use fhe::bfv::{Encoding, SecretKey};
        use fhe_traits::{FheEncoder, FheEncrypter};
        use rand::SeedableRng;
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let sk = SecretKey::random(params.bfv(), &mut rng);
        let pt = Plaintext::try_encode(&[1u64, 2, 3], Encoding::simd(), params.bfv()).unwrap();
        for level in 0..=params.max_level() {
            let mut ct: Ciphertext = sk.try_encrypt(&pt, &mut rng).unwrap();
            ct.switch_to_level(level).unwrap();
            let ctx = ct.first().unwrap().ctx();
            assert_eq!(
                std::sync::Arc::ptr_eq(ctx, params.ctx(level).unwrap()),
                level == 0
            );
            assert_eq!(ciphertext_level(&params, &ct).unwrap(), level);
        }
    }

    /// The computed slot order is where fhe.rs's SIMD encoding of `0..N`
    /// puts each index in the transform modulo `t`, for every degree.
    #[test]
    fn slot_order_is_fhe_rs_encoding() {
        use fhe::bfv::Encoding;
        use fhe_math::rq::traits::TryConvertFrom;
        use fhe_traits::FheEncoder;
        for (set, bits) in [
            (ParameterSet::InsecureTestN2048, 20),
            (ParameterSet::Bfv8192, 35),
            (ParameterSet::Bfv16384, 40),
        ] {
            let params = Params::new(set, bits).unwrap();
            let n = params.degree();
            let indices: Vec<u64> = (0..n as u64).collect();
            let pt = Plaintext::try_encode(&indices, Encoding::simd(), params.bfv()).unwrap();
            let poly = Poly::try_convert_from(
                &pt,
                params.ctx(0).unwrap(),
                false,
                Representation::PowerBasis,
            )
            .unwrap();
            let mut y = poly.coefficients().row(0).to_vec();
            let ntt_t = Ntt::new(&Modulus::new(params.plaintext()).unwrap(), n).unwrap();
            ntt_t.forward(&mut y);
            let order = slot_order(n);
            assert_eq!(order.len(), n);
            for (slot, &pos) in order.iter().enumerate() {
                assert_eq!(y[pos], slot as u64, "{set}: slot {slot}");
            }
        }
    }

    /// `times_ntt` is fhe-math's product of each polynomial with the
    /// monomial, at both levels, for NTT-form and power-basis ciphertexts.
    #[test]
    fn times_ntt_is_the_polynomial_product() {
        use fhe_traits::{FheEncoder, FheEncrypter};
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(14);
        let sk = SecretKey::random(params.bfv(), &mut rng);
        let pt =
            Plaintext::try_encode(&[7u64, 8, 9], fhe::bfv::Encoding::simd(), params.bfv()).unwrap();
        let mut ct: Ciphertext = sk.try_encrypt(&pt, &mut rng).unwrap();
        for level in [0, 1] {
            if level == 1 {
                ct.switch_down().unwrap();
            }
            let x = monomial_ntt(&params, level, 37).unwrap();
            let want: Vec<Poly> = ct
                .iter()
                .map(|c| {
                    let mut c = c.clone();
                    c *= &x;
                    c
                })
                .collect();
            // The residues (fhe.rs's flags, such as variable time, may differ).
            let same =
                |got: &Ciphertext| (0..2).all(|i| got[i].coefficients() == want[i].coefficients());
            let got = times_ntt(&params, &ct, &x).unwrap();
            assert!(same(&got), "level {level}");
            let mut power_basis = ct.clone();
            for c in power_basis.iter_mut() {
                c.change_representation(Representation::PowerBasis);
            }
            let got = times_ntt(&params, &power_basis, &x).unwrap();
            assert!(same(&got), "level {level}, power basis");
        }
    }

    /// Key shares of a 2-of-3 committee at points 1, 2, 3 (the key itself is
    /// irrelevant to these tests).
    pub(crate) fn key_shares(
        params: &Params,
        rng: &mut rand_chacha::ChaCha20Rng,
    ) -> (Committee, Vec<KeyShare>) {
        let (_, committee, _, shares) = threshold_keys(params, rng);
        (committee, shares)
    }

    /// A 2-of-3 committee at points 1, 2, 3: its members, their additive key
    /// shares (for the test oracle) and their Shamir key shares.
    pub(crate) fn threshold_keys(
        params: &Params,
        rng: &mut rand_chacha::ChaCha20Rng,
    ) -> (
        Vec<EvaluationPoint>,
        Committee,
        Vec<AdditiveKeyShare>,
        Vec<KeyShare>,
    ) {
        let members: Vec<_> = (1..=3).map(|x| EvaluationPoint::new(x).unwrap()).collect();
        let committee = Committee::new(members.clone(), 2).unwrap();
        let additive: Vec<_> = members
            .iter()
            .map(|_| AdditiveKeyShare::generate(params, rng).unwrap())
            .collect();
        let mut inbox: Vec<Vec<thresholdize::SubShare>> = vec![Vec::new(); 3];
        for (&x, sk) in members.iter().zip(&additive) {
            for sub in thresholdize::deal(params, &committee, sk, x, rng).unwrap() {
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
        (members, committee, additive, shares)
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
    /// `c1 · (λ_j·S_j restricted) + flooding` from the same random stream,
    /// and so does the share from the key weighted once for the set; a
    /// weighted key of another level is refused.
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
                let (mut b, mut c) = (a.clone(), a.clone());
                let fast = decryption_share(&params, key, &set, &ct, &flooding, &mut a).unwrap();
                let ctx = params.ctx(level).unwrap();
                let w = key.weighted(&params, &set, level).unwrap();
                let mut h = &ct[1] * w.poly();
                h += &flooding.sample(&params, ctx, &mut b).unwrap();
                assert_eq!(fast.h, WirePoly::from_poly(&h, level));
                assert_eq!(fast.ciphertext, reference_digest(&params, &ct));
                assert_eq!(fast.h.level as usize, level);
                assert_eq!((w.point(), w.set(), w.level()), (key.point(), &set, level));
                let held = decryption_share_weighted(&params, &w, &ct, &flooding, &mut c).unwrap();
                assert_eq!(held, fast);
            }
            let other = keys[0].weighted(&params, &set, 2 - level).unwrap();
            let err = decryption_share_weighted(&params, &other, &ct, &flooding, &mut rng);
            assert!(matches!(err, Err(Error::Parameters(m)) if m.contains("weighted at level")));
        }
    }

    /// The decoding as first written: a fresh `Ciphertext::new((c0 + Σ h_j, 0))`
    /// decrypted by a freshly sampled key.
    fn reference_combine(
        params: &Params,
        ct: &Ciphertext,
        shares: &[DecryptionShare],
    ) -> Plaintext {
        let level = ciphertext_level(params, ct).unwrap();
        let ctx = params.ctx(level).unwrap();
        let mut phase = ct[0].clone();
        for s in shares {
            phase += &s.h.parse(params, level, s.sender, "test").unwrap();
        }
        let zero = Poly::zero(ctx, Representation::Ntt);
        let two = Ciphertext::new(vec![phase, zero], params.bfv()).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0);
        SecretKey::random(params.bfv(), &mut rng)
            .try_decrypt(&two)
            .unwrap()
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// `combine` gives exactly the first implementation's plaintext
        /// (values, level, no encoding) and `combine_signed` exactly its
        /// decoded slots, for random ciphertexts at every level, any 2 of 3.
        #[test]
        fn combine_paths_are_bit_identical(seed in any::<u64>(), level in 0usize..8, pick in 0usize..3) {
            let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
            let level = level % (params.max_level() + 1);
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
            let (committee, keys) = key_shares(&params, &mut rng);
            let chosen: Vec<&KeyShare> = keys.iter().enumerate().filter(|(i, _)| *i != pick).map(|(_, k)| k).collect();
            let set = ActiveSet::new(&committee, chosen.iter().map(|k| k.point())).unwrap();
            let ct = random_ct(&params, level, &mut rng);
            let flooding = Flooding::new(&params, level, 1.0, 1, 2);
            prop_assume!(flooding.is_ok());
            let flooding = flooding.unwrap();
            let shares: Vec<_> = chosen
                .iter()
                .map(|k| decryption_share(&params, k, &set, &ct, &flooding, &mut rng).unwrap())
                .collect();
            let want = reference_combine(&params, &ct, &shares);
            let got = combine(&params, &ct, &set, shares.clone()).unwrap();
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(got.level(), level);
            let slots = crate::encoding::decode_signed(&params, &want).unwrap();
            prop_assert_eq!(combine_signed(&params, &ct, &set, shares).unwrap(), slots);
        }
    }

    /// With the digest computed once ([`Digested`]) the shares and the
    /// combination are those of the hashing paths, bit for bit; a share
    /// labelled with another ciphertext's digest is refused, naming its
    /// sender, and so are honest shares under a combiner's wrong digest.
    #[test]
    fn digested_paths_match_and_bind() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(31);
        let (committee, keys) = key_shares(&params, &mut rng);
        let set = ActiveSet::new(&committee, keys.iter().take(2).map(|k| k.point())).unwrap();
        let ct = random_ct(&params, 0, &mut rng);
        let other = random_ct(&params, 0, &mut rng);
        let flooding = Flooding::new(&params, 0, 1.0, 1, 2).unwrap();
        let digested = Digested::new(&params, &ct).unwrap();
        assert_eq!(*digested.digest(), reference_digest(&params, &ct));
        let shares: Vec<_> = keys
            .iter()
            .take(2)
            .enumerate()
            .map(|(i, k)| {
                let seed = 100 + i as u64;
                let mut a = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
                let mut b = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
                let plain = decryption_share(&params, k, &set, &ct, &flooding, &mut a).unwrap();
                let fast = decryption_share(&params, k, &set, digested, &flooding, &mut b).unwrap();
                assert_eq!(plain, fast);
                fast
            })
            .collect();
        assert_eq!(
            combine(&params, digested, &set, shares.clone()).unwrap(),
            combine(&params, &ct, &set, shares.clone()).unwrap()
        );
        for readout in [Readout::Slots, Readout::Coefficients] {
            assert_eq!(
                combine_signed_as(&params, digested, &set, shares.clone(), readout).unwrap(),
                combine_signed_as(&params, &ct, &set, shares.clone(), readout).unwrap()
            );
        }
        // A share labelled with another ciphertext's digest.
        let mislabelled = Digested::with_digest(&ct, reference_digest(&params, &other));
        let mut b = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let bad =
            decryption_share(&params, &keys[1], &set, mislabelled, &flooding, &mut b).unwrap();
        let mixed = vec![shares[0].clone(), bad];
        let got = combine_signed_as(&params, digested, &set, mixed.clone(), Readout::Slots);
        assert!(
            matches!(got, Err(Error::WrongCiphertext { sender }) if sender == keys[1].point()),
            "{got:?}"
        );
        assert!(matches!(
            combine_signed(&params, &ct, &set, mixed),
            Err(Error::WrongCiphertext { .. })
        ));
        // Honest shares, combined under a wrong digest.
        let got = combine_signed_as(&params, mislabelled, &set, shares, Readout::Slots);
        assert!(
            matches!(got, Err(Error::WrongCiphertext { sender }) if sender == keys[0].point()),
            "{got:?}"
        );
    }

    /// Constant plaintexts packed by monomials decrypt, by threshold, to the
    /// constants in their coefficients and zeros elsewhere, at a lower level
    /// too, with the sum of the inputs' noises and no more; bad inputs are
    /// refused.
    #[cfg(feature = "insecure-test-params")]
    #[test]
    fn packed_constants_open_in_one_decryption() {
        use fhe::bfv::Encoding;
        use fhe_traits::{FheEncoder, FheEncrypter};
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(15);
        let (members, committee, additive, keys) = threshold_keys(&params, &mut rng);
        let oracle = crate::oracle::WholeKey::from_shares(&params, &additive);
        let sk = oracle.secret_key(&params).unwrap();
        let p = params.plaintext();
        // Constants (negative ones too), each in every slot.
        let constants: Vec<i64> = (0..37).map(|i| (i * 7919 - 100_000) as i64).collect();
        let mut cts: Vec<Ciphertext> = constants
            .iter()
            .map(|&c| {
                let v = vec![c.rem_euclid(p as i64) as u64; params.degree()];
                let pt = Plaintext::try_encode(&v, Encoding::simd(), params.bfv()).unwrap();
                sk.try_encrypt(&pt, &mut rng).unwrap()
            })
            .collect();
        for ct in cts.iter_mut() {
            ct.switch_to_level(1).unwrap();
        }
        let refs: Vec<&Ciphertext> = cts.iter().collect();
        let packed = pack_constants(&params, &refs).unwrap();
        assert_eq!(ciphertext_level(&params, &packed).unwrap(), 1);
        let worst = cts
            .iter()
            .map(|ct| oracle.noise_bits(&params, ct).unwrap())
            .fold(0.0, f64::max);
        let noise = oracle.noise_bits(&params, &packed).unwrap();
        assert!(
            noise <= worst + (cts.len() as f64).log2() / 2.0 + 4.0,
            "{noise} vs {worst}"
        );
        let set = ActiveSet::new(&committee, [members[0], members[2]]).unwrap();
        let flooding = Flooding::new(&params, 1, noise, 1, 2).unwrap();
        let shares: Vec<_> = [&keys[0], &keys[2]]
            .iter()
            .map(|k| decryption_share(&params, k, &set, &packed, &flooding, &mut rng).unwrap())
            .collect();
        let got = combine_signed_as(&params, &packed, &set, shares, Readout::Coefficients).unwrap();
        assert_eq!(&got[..constants.len()], &constants[..]);
        assert!(got[constants.len()..].iter().all(|&v| v == 0));
        // Mixed levels, too many and none are refused.
        let fresh: Ciphertext = sk
            .try_encrypt(
                &Plaintext::try_encode(&[1u64], Encoding::simd(), params.bfv()).unwrap(),
                &mut rng,
            )
            .unwrap();
        assert!(pack_constants(&params, &[&cts[0], &fresh]).is_err());
        assert!(pack_constants(&params, &vec![&fresh; params.degree() + 1]).is_err());
        assert!(pack_constants(&params, &[]).is_err());
    }

    /// Both paths decrypt a real encryption to what fhe.rs's own decryption
    /// with the whole key gives, at every level it can be switched to.
    #[cfg(feature = "insecure-test-params")]
    #[test]
    fn combine_matches_fhe_decryption() {
        use fhe::bfv::Encoding;
        use fhe_traits::{FheEncoder, FheEncrypter};
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let (members, committee, additive, keys) = threshold_keys(&params, &mut rng);
        let oracle = crate::oracle::WholeKey::from_shares(&params, &additive);
        let sk = oracle.secret_key(&params).unwrap();
        let values: Vec<u64> = (0..params.degree() as u64)
            .map(|i| (i * 7919) % params.plaintext())
            .collect();
        let pt = Plaintext::try_encode(&values, Encoding::simd(), params.bfv()).unwrap();
        let mut ct: Ciphertext = sk.try_encrypt(&pt, &mut rng).unwrap();
        let set = ActiveSet::new(&committee, [members[0], members[2]]).unwrap();
        let mut checked = 0;
        for level in 0..=params.max_level() {
            if level > 0 {
                ct.switch_to_level(level).unwrap();
            }
            let noise = oracle.noise_bits(&params, &ct).unwrap();
            let Ok(flooding) = Flooding::new(&params, level, noise, 1, 2) else {
                continue;
            };
            let shares: Vec<_> = [&keys[0], &keys[2]]
                .iter()
                .map(|k| decryption_share(&params, k, &set, &ct, &flooding, &mut rng).unwrap())
                .collect();
            let fhe_pt = sk.try_decrypt(&ct).unwrap();
            let got = combine(&params, &ct, &set, shares.clone()).unwrap();
            assert_eq!(got, fhe_pt);
            assert_eq!(got.level(), fhe_pt.level());
            let signed = crate::encoding::decode_signed(&params, &fhe_pt).unwrap();
            assert_eq!(combine_signed(&params, &ct, &set, shares).unwrap(), signed);
            let p = params.plaintext() as i64;
            let centred: Vec<i64> = values
                .iter()
                .map(|&v| {
                    if v as i64 > p / 2 {
                        v as i64 - p
                    } else {
                        v as i64
                    }
                })
                .collect();
            assert_eq!(signed, centred);
            checked += 1;
        }
        assert!(checked >= 2, "only {checked} levels had room for flooding");
    }
}
