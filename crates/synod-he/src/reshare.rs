//! Verifiable resharing `(t, A) → (t', B)` of the collective secret key,
//! without ever forming it (DESIGN.md §2, dynamic threshold).
//!
//! The construction is Desmedt–Jajodia redistribution (1997) with the
//! verification of Wong–Wang–Wing (2002) replaced by commitments and
//! Fiat–Shamir linear checks that work over `R_q` (Feldman/Pedersen
//! commitments per RNS prime would live in groups of order ≈ 2^44, which fall
//! to Pollard rho), in the style of CHURP (Maram et al., CCS 2019) and of
//! drand's resharing. `docs/resharing.md` has the rounds, the security
//! argument and the message sizes. In short, with dealers `D ⊆ A`
//! (`|D| ≥ t`), each dealer `i`:
//!
//! 1. **deals** four polynomials of degree `t'−1` over `R_q`:
//!    `g_i` with `g_i(0) = S_i` (its key share), `h_i` with a fresh random
//!    constant (the next epoch's mask), and two blinding polynomials
//!    `W_i` with `W_i(0) = M_i` (its *old mask share*) and `V_i` (random).
//!    Member `j ∈ B` receives the four values at `x_j`, sealed to it; the
//!    dealer broadcasts a salted BLAKE3 commitment to each member's values.
//!    The polynomials are dealt *by values* (the constant and `t'−1` drawn
//!    values at `1 … t'−1`, the same uniform distribution as drawing
//!    coefficients), and the other members' values are computed from those
//!    by stepping a difference table or by Lagrange combination. The four
//!    values at each drawn node come from a fresh seed, and a member at a
//!    node is sent the 32-byte seed rather than the values
//!    ([`SubShareValues::Seeded`]);
//! 2. after every commitment is fixed, a Fiat–Shamir challenge gives, for
//!    `k = 1..κ` (`κ = ⌈128 / log2 q_min⌉`), scalars `γ_k` and projections
//!    `π_k: R_q → Z_q^L` (a random linear functional per RNS prime). The
//!    dealer **responds** with the scalar polynomials
//!    `Π_i^k = π_k(W_i + γ_k·g_i)` and `Ψ_i^k = π_k(V_i + γ_k·h_i)`
//!    (`t'` coefficients of `L` scalars each): the blinding makes them
//!    uniform, and projecting keeps them small;
//! 3. member `j` **checks** `Π_i^k(x_j) = π_k(W_i(x_j) + γ_k·g_i(x_j))` and
//!    the same for `Ψ`, and complains about a dealer whose values fail
//!    (or do not match their commitment). The accused dealer **opens** the
//!    disputed values; everyone re-checks them against the signed
//!    commitment, which names either the dealer or a false accuser;
//! 4. **constant-term check**: `Π_i^k(0) = π_k(M_i + γ_k·S_i)` must, over the
//!    dealers, be a Reed–Solomon codeword of degree `< t` (it is a sharing of
//!    `π_k(r + γ_k·s)`, uniform because the old mask `r` is used once). With
//!    `|D| ≥ t+1` a wrong constant term is detected; with `|D| ≥ t+2` a single
//!    culprit is identified and excluded;
//! 5. with the qualified set `Q` fixed, member `j`'s new share is
//!    `S'_j = Σ_{i∈Q} λ_i^Q·g_i(x_j)` and its next mask share
//!    `M'_j = Σ_{i∈Q} λ_i^Q·h_i(x_j)`.
//!
//! The public key and the evaluation keys are unchanged. Signatures (the
//! proposal approvals, every round's envelope, the epoch certificate) and
//! HPKE belong to the caller, which binds each message to the one
//! `MessageContext`; this module is sans-I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use fhe_math::rq::Poly;
use fhe_math::zq::Modulus;
use rand::{CryptoRng, RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

mod dealing;

use dealing::{combine_nodes, inverse};
pub(crate) use dealing::{draw_from_seed, draw_seeds, node_values, random_residues, Dealing};

use crate::kernels::{Stream, StreamRng};
use crate::ring::{self, SecretWirePoly};
use crate::secret::{KeyShare, MaskShare};
use crate::shamir::{lagrange_weight_residues, Committee, EvaluationPoint};
use crate::{Error, Params, Result};

/// A proposed change of committee, to be approved by at least `t` members
/// of the old committee before anyone deals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The session.
    pub session: [u8; 32],
    /// The epoch being left; the new shares belong to `old_epoch + 1`.
    pub old_epoch: u64,
    /// The old committee `A` with its threshold `t`.
    pub old: Committee,
    /// The new committee `B` with its threshold `t'`.
    pub new: Committee,
    /// The dealers `D ⊆ A`, at least `t` of them.
    pub dealers: Vec<EvaluationPoint>,
}

impl Proposal {
    /// Checks the proposal's own consistency.
    pub fn check(&self) -> Result<()> {
        let set: BTreeSet<_> = self.dealers.iter().copied().collect();
        if set.len() != self.dealers.len() {
            return Err(Error::InvalidCommittee("a dealer is listed twice".into()));
        }
        if let Some(d) = set.iter().find(|d| !self.old.contains(**d)) {
            return Err(Error::InvalidCommittee(format!(
                "dealer {d} is not a member of the old committee"
            )));
        }
        let t = self.old.threshold().get();
        if set.len() < t {
            return Err(Error::InvalidCommittee(format!(
                "{} dealers cannot reshare a threshold of {t}",
                set.len()
            )));
        }
        Ok(())
    }

    /// The epoch the new shares belong to.
    pub fn new_epoch(&self) -> u64 {
        self.old_epoch + 1
    }

    /// The digest every approval signs and every commitment binds.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("synod/reshare/proposal/v1");
        h.update(&self.session);
        h.update(&self.old_epoch.to_le_bytes());
        for (c, tag) in [(&self.old, b'A'), (&self.new, b'B')] {
            h.update(&[tag]);
            h.update(&(c.threshold().get() as u64).to_le_bytes());
            h.update(&(c.len() as u64).to_le_bytes());
            for m in c.members() {
                h.update(&m.get().to_le_bytes());
            }
        }
        h.update(b"D");
        let mut dealers = self.dealers.clone();
        dealers.sort();
        h.update(&(dealers.len() as u64).to_le_bytes());
        for d in dealers {
            h.update(&d.get().to_le_bytes());
        }
        *h.finalize().as_bytes()
    }
}

/// The values dealer `dealer` sends member `recipient`, sealed to it.
/// **Secret**; zeroized on drop, redacted in `Debug`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReshareSubShare {
    /// The dealer.
    pub dealer: EvaluationPoint,
    /// The recipient.
    pub recipient: EvaluationPoint,
    /// The epoch of the new shares.
    pub epoch: u64,
    /// The four values, or the seed they are drawn from.
    pub values: SubShareValues,
    /// Commitment salt.
    pub salt: [u8; 32],
}

/// The four values `g_i(x_j), h_i(x_j), W_i(x_j), V_i(x_j)` a member
/// receives, in one of two forms.
///
/// A member whose point is one of the dealer's drawn nodes `1 … t'−1` gets
/// values that are uniformly random by construction (dealing by values), so
/// the dealer draws them from a fresh 32-byte seed (BLAKE3's keyed XOF,
/// `kernels::Stream::Dealt`, since protocol 7) and sends the seed: 64 bytes
/// instead of `4·L·N` residues, the same values for the member (expanded by
/// `random_residues`, in the order `g, h, W, V`).
/// Committing to and opening the seed commits to and opens the values.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum SubShareValues {
    /// The values themselves.
    Explicit {
        /// `g_i(x_j)`.
        key: SecretWirePoly,
        /// `h_i(x_j)`.
        mask: SecretWirePoly,
        /// `W_i(x_j)`.
        key_blind: SecretWirePoly,
        /// `V_i(x_j)`.
        mask_blind: SecretWirePoly,
    },
    /// The seed the four values are expanded from.
    Seeded([u8; 32]),
}

impl Drop for ReshareSubShare {
    fn drop(&mut self) {
        // The values zeroize themselves (`SubShareValues`'s own `Drop`).
        self.salt.zeroize();
    }
}

impl Drop for SubShareValues {
    fn drop(&mut self) {
        // Explicit values zeroize themselves (`SecretWirePoly`).
        if let SubShareValues::Seeded(seed) = self {
            seed.zeroize();
        }
    }
}

impl fmt::Debug for ReshareSubShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let form = match self.values {
            SubShareValues::Explicit { .. } => "explicit",
            SubShareValues::Seeded(_) => "seeded",
        };
        f.debug_struct("ReshareSubShare")
            .field("dealer", &self.dealer)
            .field("recipient", &self.recipient)
            .field("epoch", &self.epoch)
            .field("values", &format_args!("[redacted, {form}]"))
            .finish()
    }
}

/// A member's four values as residue matrices (`L × N`, NTT form), in the
/// order `g, h, W, V`. Zeroized on drop.
struct Values([Vec<u64>; 4]);

impl Drop for Values {
    fn drop(&mut self) {
        for v in self.0.iter_mut() {
            v.zeroize();
        }
    }
}

/// The four values drawn from `seed`, in the order `g, h, W, V`.
fn seeded_values(params: &Params, seed: &[u8; 32]) -> Values {
    Values(draw_from_seed(params, seed))
}

impl ReshareSubShare {
    /// The salted commitment the dealer publishes for these values (to the
    /// seed, for seeded values).
    pub fn commitment(&self, proposal_digest: &[u8; 32]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("synod/reshare/commitment/v2");
        h.update(&self.salt);
        h.update(proposal_digest);
        h.update(&self.dealer.get().to_le_bytes());
        h.update(&self.recipient.get().to_le_bytes());
        h.update(&self.epoch.to_le_bytes());
        match &self.values {
            SubShareValues::Explicit {
                key,
                mask,
                key_blind,
                mask_blind,
            } => {
                h.update(b"E");
                let mut h = crate::kernels::BlockHasher::new(h);
                for w in [key, mask, key_blind, mask_blind] {
                    h.write_u64(u64::from(w.level));
                    h.write_u64(w.residues.len() as u64);
                    h.write_slice(&w.residues);
                }
                *h.finalize().as_bytes()
            }
            SubShareValues::Seeded(seed) => {
                h.update(b"S");
                h.update(seed);
                *h.finalize().as_bytes()
            }
        }
    }

    /// The four values, checked for shape (explicit) or expanded (seeded).
    fn expand(&self, params: &Params) -> Result<Values> {
        self.clone().into_values(params)
    }

    /// [`expand`](Self::expand) of an owned sub-share, moving explicit
    /// values out rather than copying them.
    fn into_values(mut self, params: &Params) -> Result<Values> {
        match &mut self.values {
            SubShareValues::Explicit {
                key,
                mask,
                key_blind,
                mask_blind,
            } => {
                let mut out: [Vec<u64>; 4] = Default::default();
                for (o, w) in out.iter_mut().zip([key, mask, key_blind, mask_blind]) {
                    w.check(params, 0, self.dealer, "reshare values")?;
                    *o = std::mem::take(&mut w.residues);
                }
                Ok(Values(out))
            }
            SubShareValues::Seeded(seed) => Ok(seeded_values(params, seed)),
        }
    }
}

/// Round 1, broadcast: the dealer's commitments to each member's values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitments {
    /// The dealer.
    pub dealer: EvaluationPoint,
    /// Digest of the proposal it deals for.
    pub proposal: [u8; 32],
    /// One commitment per member of `B`, in `B`'s order.
    pub commitments: Vec<(EvaluationPoint, [u8; 32])>,
}

/// Round 2, broadcast: the dealer's blinded, projected polynomials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The dealer.
    pub dealer: EvaluationPoint,
    /// `Π^k` coefficients: `t'` entries of `κ·L` scalars (index `k·L + prime`).
    pub key_poly: Vec<Vec<u64>>,
    /// `Ψ^k` coefficients, same layout.
    pub mask_poly: Vec<Vec<u64>>,
}

/// Round 3, broadcast: a member says a dealer's values fail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Complaint {
    /// Who complains.
    pub accuser: EvaluationPoint,
    /// About whom.
    pub dealer: EvaluationPoint,
}

/// Round 4, broadcast: the accused dealer reveals the disputed values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opening {
    /// The values, now public (the accuser uses them).
    pub subshare: ReshareSubShare,
}

/// Why a participant was excluded or blamed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// The dealer's values are not consistent (failed a check, did not match
    /// its commitment, or it did not open them when accused).
    InconsistentDealing,
    /// The dealer's constant term is not its share (Reed–Solomon check).
    WrongConstantTerm,
    /// The dealer sent no commitments or no response.
    Silent,
    /// The member complained about values that were correct.
    FalseAccusation,
}

/// A named culprit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blame {
    /// Who.
    pub participant: EvaluationPoint,
    /// What.
    pub fault: Fault,
}

/// The Fiat–Shamir challenge, derived after every commitment is fixed.
#[derive(Clone, Debug)]
pub struct Challenge {
    /// `γ_k` per prime (index `k·L + prime`), non-zero.
    gammas: Vec<u64>,
    /// Seed of the projections `π_k`.
    projection_seed: [u8; 32],
    kappa: usize,
    /// The projection vectors, expanded once from the seed (every member
    /// and dealer of an in-process run shares one challenge).
    expanded: std::sync::OnceLock<Vec<Vec<u64>>>,
}

/// `κ = ⌈128 / log2 q_min⌉` independent challenges.
pub fn kappa(params: &Params) -> usize {
    let q_min = params.moduli().iter().copied().min().unwrap_or(2) as f64;
    (128.0 / q_min.log2()).ceil() as usize
}

impl Challenge {
    /// Derives the challenge from the proposal and all round-1 commitments
    /// (sorted by dealer, so every member derives the same one).
    pub fn derive(params: &Params, proposal: &Proposal, commitments: &[Commitments]) -> Self {
        let mut h = blake3::Hasher::new_derive_key("synod/reshare/challenge/v1");
        h.update(&proposal.digest());
        let mut sorted: Vec<&Commitments> = commitments.iter().collect();
        sorted.sort_by_key(|c| c.dealer);
        for c in sorted {
            h.update(&c.dealer.get().to_le_bytes());
            for (m, d) in &c.commitments {
                h.update(&m.get().to_le_bytes());
                h.update(d);
            }
        }
        let mut xof = h.finalize_xof();
        let kappa = kappa(params);
        let mut gammas = Vec::new();
        for _ in 0..kappa {
            for &q in params.moduli() {
                gammas.push(nonzero_scalar(&mut xof, q));
            }
        }
        let mut projection_seed = [0u8; 32];
        xof.fill(&mut projection_seed);
        Self {
            gammas,
            projection_seed,
            kappa,
            expanded: std::sync::OnceLock::new(),
        }
    }

    /// The projection vectors `r_{k,prime}` (N scalars each), in order.
    fn projections(&self, params: &Params) -> std::borrow::Cow<'_, [Vec<u64>]> {
        let fits = |v: &[Vec<u64>]| {
            v.len() == self.kappa * params.moduli().len()
                && v.iter().all(|r| r.len() == params.degree())
        };
        let cached = self.expanded.get_or_init(|| self.expand(params));
        if fits(cached) {
            std::borrow::Cow::Borrowed(cached)
        } else {
            std::borrow::Cow::Owned(self.expand(params))
        }
    }

    /// `κ` uniform residue matrices ([`random_residues`]) from the
    /// [`Stream::Projection`] expansion of the projection seed, cut into
    /// rows.
    fn expand(&self, params: &Params) -> Vec<Vec<u64>> {
        let mut rng = StreamRng::new(Stream::Projection, &self.projection_seed);
        let mut out = Vec::with_capacity(self.kappa * params.moduli().len());
        for _ in 0..self.kappa {
            let m = random_residues(params, &mut rng);
            out.extend(m.chunks_exact(params.degree()).map(<[u64]>::to_vec));
        }
        out
    }
}

fn uniform_below<R: RngCore>(rng: &mut R, q: u64) -> u64 {
    // Rejection sampling on the smallest enclosing power of two.
    let mask = u64::MAX >> q.leading_zeros();
    loop {
        let v = rng.next_u64() & mask;
        if v < q {
            return v;
        }
    }
}

fn nonzero_scalar(xof: &mut blake3::OutputReader, q: u64) -> u64 {
    let mask = u64::MAX >> q.leading_zeros();
    loop {
        let mut b = [0u8; 8];
        xof.fill(&mut b);
        let v = u64::from_le_bytes(b) & mask;
        if v != 0 && v < q {
            return v;
        }
    }
}

/// Projects an NTT-form level-0 residue matrix (`L × N`, row-major, reduced
/// residues): one scalar per (k, prime). The products of a row are summed in
/// 128 bits and reduced once (in batches only where `N·(q−1)²` could
/// overflow), with Barrett reduction rather than a division.
fn project(s: &Scalars, projections: &[Vec<u64>], residues: &[u64]) -> Result<Vec<u64>> {
    let l = s.l;
    let n = residues.len() / l.max(1);
    if n == 0 || residues.len() != n * l {
        return Err(Error::Parameters(
            "projection of a polynomial of the wrong size".into(),
        ));
    }
    let mut out = Vec::with_capacity(projections.len());
    for (idx, r) in projections.iter().enumerate() {
        let q = s.modulus(idx)?;
        let prime = idx % l;
        let row = residues
            .get(prime * n..(prime + 1) * n)
            .ok_or_else(|| Error::Parameters("projection row".into()))?;
        let qm1 = u128::from(**q - 1);
        // Terms that fit beside a reduced accumulator: (batch + 1)·(q−1)² < 2^128.
        let batch = ((u128::MAX / (qm1 * qm1).max(1)) - 1).clamp(1, 1 << 32) as usize;
        // Four independent accumulators (one per lane of 4 columns), so the
        // 128-bit additions do not wait on each other.
        let batch = (batch / 4).max(1) * 4;
        let mut acc = [0u128; 4];
        for (chunk_a, chunk_r) in row.chunks(batch).zip(r.chunks(batch)) {
            for a in acc.iter_mut() {
                *a = u128::from(q.reduce_u128(*a));
            }
            let mut lanes_a = chunk_a.chunks_exact(4);
            let mut lanes_r = chunk_r.chunks_exact(4);
            for (la, lr) in lanes_a.by_ref().zip(lanes_r.by_ref()) {
                for ((acc, a), b) in acc.iter_mut().zip(la).zip(lr) {
                    *acc += u128::from(*a) * u128::from(*b);
                }
            }
            for ((acc, a), b) in acc
                .iter_mut()
                .zip(lanes_a.remainder())
                .zip(lanes_r.remainder())
            {
                *acc += u128::from(*a) * u128::from(*b);
            }
        }
        out.push(
            acc.iter()
                .fold(0u64, |sum, a| q.add(sum, q.reduce_u128(*a))),
        );
    }
    Ok(out)
}

fn poly_residues(p: &Poly) -> Vec<u64> {
    let c = p.coefficients();
    match c.to_slice() {
        Some(s) => s.to_vec(),
        None => c.iter().copied().collect(),
    }
}

struct Scalars {
    moduli: Vec<Modulus>,
    l: usize,
}

impl Scalars {
    fn new(params: &Params) -> Result<Self> {
        Ok(Self {
            moduli: params
                .moduli()
                .iter()
                .map(|&q| Modulus::new(q))
                .collect::<std::result::Result<_, _>>()?,
            l: params.moduli().len(),
        })
    }

    fn modulus(&self, idx: usize) -> Result<&Modulus> {
        self.moduli
            .get(idx % self.l)
            .ok_or_else(|| Error::Parameters("scalar index".into()))
    }

    /// `a + γ·b` elementwise.
    fn combine(&self, a: &[u64], gamma: &[u64], b: &[u64]) -> Result<Vec<u64>> {
        a.iter()
            .zip(gamma)
            .zip(b)
            .enumerate()
            .map(|(i, ((x, g), y))| {
                let m = self.modulus(i)?;
                Ok(m.add(*x, m.mul(*g, *y)))
            })
            .collect()
    }

    /// Evaluates a polynomial with vector coefficients at `x`.
    fn eval(&self, coeffs: &[Vec<u64>], x: u64) -> Result<Vec<u64>> {
        let width = coeffs.first().map(Vec::len).unwrap_or(0);
        let mut acc = vec![0u64; width];
        for c in coeffs.iter().rev() {
            for (i, (a, ci)) in acc.iter_mut().zip(c).enumerate() {
                let m = self.modulus(i)?;
                *a = m.add(m.mul(*a, m.reduce(x)), *ci);
            }
        }
        Ok(acc)
    }
}

/// A resharing dealer's four polynomials (see `Dealing`), with the salt of
/// each member's commitment (in the dealing's member order) and how the
/// dealer behaves (honest outside tests).
struct ResharingDealing {
    core: Dealing<4>,
    salts: Vec<[u8; 32]>,
    behaviour: Behaviour,
}

impl Drop for ResharingDealing {
    fn drop(&mut self) {
        self.salts.zeroize();
    }
}

/// What a dealer keeps between its rounds: its four polynomials, held by
/// their values at the nodes (see `Dealing`). Consumed by
/// [`DealerState::respond`].
pub struct DealerState {
    dealing: ResharingDealing,
}

impl fmt::Debug for DealerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DealerState({}, [redacted])", self.dealing.core.dealer)
    }
}

/// How a test dealer misbehaves (insecure test builds only).
#[cfg(feature = "insecure-test-params")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cheat {
    /// Follow the protocol.
    None,
    /// Deal the committed values of one member off the polynomial.
    InconsistentFor(EvaluationPoint),
    /// Deal `S_i + 1` instead of `S_i` (consistently).
    WrongConstant,
}

/// Round 1: dealer `key.point()` deals its share for `proposal`.
pub fn deal<R: RngCore + CryptoRng>(
    params: &Params,
    proposal: &Proposal,
    key: &KeyShare,
    mask: &MaskShare,
    rng: &mut R,
) -> Result<(DealerState, Commitments, Vec<ReshareSubShare>)> {
    deal_inner(params, proposal, key, mask, rng, Behaviour::Honest)
}

/// Round 1 for a cheating dealer (tests only).
#[cfg(feature = "insecure-test-params")]
pub fn deal_cheating<R: RngCore + CryptoRng>(
    params: &Params,
    proposal: &Proposal,
    key: &KeyShare,
    mask: &MaskShare,
    rng: &mut R,
    cheat: Cheat,
) -> Result<(DealerState, Commitments, Vec<ReshareSubShare>)> {
    let b = match cheat {
        Cheat::None => Behaviour::Honest,
        Cheat::InconsistentFor(p) => Behaviour::Inconsistent(p),
        Cheat::WrongConstant => Behaviour::WrongConstant,
    };
    deal_inner(params, proposal, key, mask, rng, b)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    Honest,
    #[cfg_attr(not(feature = "insecure-test-params"), allow(dead_code))]
    Inconsistent(EvaluationPoint),
    #[cfg_attr(not(feature = "insecure-test-params"), allow(dead_code))]
    WrongConstant,
}

impl ResharingDealing {
    /// The sub-share for member `j`: its seed where `j` is a node, otherwise
    /// its four values (`values`, or computed by Lagrange combination when
    /// `None`), cheating included where the test dealer cheats on `j` (a
    /// wrong seed, or a value off the polynomial).
    fn subshare(
        &self,
        j: EvaluationPoint,
        values: Option<[Vec<u64>; 4]>,
    ) -> Option<ReshareSubShare> {
        let core = &self.core;
        let index = core.points.iter().position(|&m| m == j)?;
        let salt = self.salts.get(index)?;
        let x = u64::from(j.get());
        let cheat = self.behaviour == Behaviour::Inconsistent(j);
        let values = match core.seed_at(x) {
            Some(seed) => {
                let mut seed = *seed;
                if cheat {
                    seed[0] ^= 1;
                }
                SubShareValues::Seeded(seed)
            }
            None => {
                let values = values.unwrap_or_else(|| core.values_at(x));
                let [mut key, mask, key_blind, mask_blind] =
                    values.map(|r| SecretWirePoly::from_residues(0, r));
                if cheat {
                    if let (Some(r), Some(q)) = (key.residues.first_mut(), core.moduli.first()) {
                        *r = q.add(*r, 1);
                    }
                }
                SubShareValues::Explicit {
                    key,
                    mask,
                    key_blind,
                    mask_blind,
                }
            }
        };
        Some(ReshareSubShare {
            dealer: core.dealer,
            recipient: j,
            epoch: core.epoch,
            values,
            salt: *salt,
        })
    }
}

/// The matrix taking values at the distinct `points` to the coefficients of
/// the interpolating polynomial, modulo `q`: `coeff_c = Σ_k m[c·K + k]·y_k`.
/// Built from the Lagrange basis: `ℓ_k(X) = Π_{m≠k}(X − p_m)/(p_k − p_m)`.
fn interpolation_matrix(q: &Modulus, points: &[u64]) -> Result<Vec<u64>> {
    let kk = points.len();
    // M(X) = Π (X − p_m), coefficients low to high (degree K).
    let mut master = vec![0u64; kk + 1];
    if let Some(c) = master.first_mut() {
        *c = 1;
    }
    for (deg, &p) in points.iter().enumerate() {
        let p = q.reduce(p);
        // Multiply by (X − p): new[i] = old[i−1] − p·old[i].
        for i in (0..=deg + 1).rev() {
            let shifted = if i > 0 {
                master.get(i - 1).copied().unwrap_or(0)
            } else {
                0
            };
            let cur = master.get(i).copied().unwrap_or(0);
            if let Some(c) = master.get_mut(i) {
                *c = q.sub(shifted, q.mul(p, cur));
            }
        }
    }
    let mut out = vec![0u64; kk * kk];
    for (k, &pk) in points.iter().enumerate() {
        let pk = q.reduce(pk);
        // ℓ_k's numerator M(X)/(X − p_k) by synthetic division, high to low.
        let mut num = vec![0u64; kk];
        let mut carry = 0u64;
        for i in (0..kk).rev() {
            carry = q.add(master.get(i + 1).copied().unwrap_or(0), q.mul(pk, carry));
            if let Some(c) = num.get_mut(i) {
                *c = carry;
            }
        }
        // Its value at p_k is the denominator Π_{m≠k}(p_k − p_m).
        let den = num
            .iter()
            .rev()
            .fold(0u64, |acc, &c| q.add(q.mul(acc, pk), c));
        let inv =
            inverse(q, den).ok_or_else(|| Error::Parameters("evaluation points collide".into()))?;
        for (c, &nc) in num.iter().enumerate() {
            if let Some(slot) = out.get_mut(c * kk + k) {
                *slot = q.mul(nc, inv);
            }
        }
    }
    Ok(out)
}

fn deal_inner<R: RngCore + CryptoRng>(
    params: &Params,
    proposal: &Proposal,
    key: &KeyShare,
    mask: &MaskShare,
    rng: &mut R,
    behaviour: Behaviour,
) -> Result<(DealerState, Commitments, Vec<ReshareSubShare>)> {
    proposal.check()?;
    let dealer = key.point();
    if !proposal.dealers.contains(&dealer) {
        return Err(Error::InvalidCommittee(format!(
            "{dealer} is not a dealer of this proposal"
        )));
    }
    if key.epoch() != proposal.old_epoch || mask.epoch() != proposal.old_epoch {
        return Err(Error::InvalidCommittee(format!(
            "{dealer}'s shares are for epoch {}, the proposal reshares epoch {}",
            key.epoch(),
            proposal.old_epoch
        )));
    }
    if key.committee() != &proposal.old {
        return Err(Error::InvalidCommittee(
            "the key share belongs to another committee".into(),
        ));
    }
    let ctx = params.ctx(0)?;
    let d = proposal.new.threshold().get().saturating_sub(1);
    // Values at the nodes 0, 1, …, d: the constants at 0, then at each node
    // k ≥ 1 four uniformly random values drawn from a fresh seed (a member at
    // node k is sent that seed instead of the values). The randomness is
    // drawn first (seeds, then the random constants), before any copy of
    // the secret exists.
    use rayon::prelude::*;
    let mut seeds = draw_seeds(d, rng);
    let mut h = Zeroizing::new(random_residues(params, rng));
    let mut v = Zeroizing::new(random_residues(params, rng));
    let mut secret = Zeroizing::new(key.poly().clone());
    if behaviour == Behaviour::WrongConstant {
        let one = ring::small_to_ntt(&[1], ctx)?;
        *secret += &one;
    }
    let g = poly_residues(&secret);
    drop(secret);
    let w = poly_residues(mask.poly());
    let (h, v) = (std::mem::take(&mut *h), std::mem::take(&mut *v));
    let values = node_values(params, [g, h, w, v], &seeds)?;
    // One commitment salt per member, in the members' order.
    let mut salts = Zeroizing::new(vec![[0u8; 32]; proposal.new.members().len()]);
    for salt in salts.iter_mut() {
        rng.fill_bytes(salt);
    }
    let dealing = ResharingDealing {
        core: Dealing::from_nodes(
            params,
            dealer,
            proposal.new_epoch(),
            values,
            std::mem::take(&mut *seeds),
            proposal.new.members().to_vec(),
        )?,
        salts: std::mem::take(&mut *salts),
        behaviour,
    };
    let subs: Vec<ReshareSubShare> = proposal
        .new
        .members()
        .iter()
        .zip(dealing.core.all_values())
        .map(|(&j, values)| {
            dealing
                .subshare(j, values)
                .ok_or_else(|| Error::Parameters("a member without values".into()))
        })
        .collect::<Result<_>>()?;
    let digest = proposal.digest();
    let commitments = subs
        .par_iter()
        .map(|sub| (sub.recipient, sub.commitment(&digest)))
        .collect();
    Ok((
        DealerState { dealing },
        Commitments {
            dealer,
            proposal: digest,
            commitments,
        },
        subs,
    ))
}

/// What a dealer keeps after responding, to open the values of an accuser:
/// the values of its polynomials at the nodes, from which it recomputes
/// exactly what it sent (it keeps no copy of each member's values). Consumed
/// by [`OpeningState::open`]; zeroized on drop.
pub struct OpeningState {
    dealing: ResharingDealing,
}

impl fmt::Debug for OpeningState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpeningState({}, [redacted])", self.dealing.core.dealer)
    }
}

impl DealerState {
    /// Round 2: the projected, blinded polynomials for `challenge`. Consumes
    /// the dealer's state, so a dealer cannot respond twice.
    ///
    /// The projections are linear, so the dealer projects the values at the
    /// nodes (`κ·L` scalars each) and interpolates the scalar polynomials'
    /// coefficients from them: the same `Π^k`, `Ψ^k` as projecting each
    /// coefficient of `g, h, W, V` (tested against that).
    pub fn respond(
        self,
        params: &Params,
        challenge: &Challenge,
    ) -> Result<(OpeningState, Response)> {
        let projections = challenge.projections(params);
        let s = Scalars::new(params)?;
        let points: Vec<u64> = (0..=self.dealing.core.d() as u64).collect();
        let matrices: Vec<Vec<u64>> = s
            .moduli
            .iter()
            .map(|q| interpolation_matrix(q, &points))
            .collect::<Result<_>>()?;
        let coefficients = |set: &[Vec<u64>]| -> Result<Vec<Vec<u64>>> {
            let projected: Vec<Vec<u64>> = set
                .iter()
                .map(|p| project(&s, &projections, p))
                .collect::<Result<_>>()?;
            projected_coefficients(&s, &matrices, &projected)
        };
        let [g, h, w, v] = &self.dealing.core.values;
        let (cg, ch, cw, cv) = (
            coefficients(g)?,
            coefficients(h)?,
            coefficients(w)?,
            coefficients(v)?,
        );
        let key_poly = cw
            .iter()
            .zip(&cg)
            .map(|(a, b)| s.combine(a, &challenge.gammas, b))
            .collect::<Result<_>>()?;
        let mask_poly = cv
            .iter()
            .zip(&ch)
            .map(|(a, b)| s.combine(a, &challenge.gammas, b))
            .collect::<Result<_>>()?;
        let response = Response {
            dealer: self.dealing.core.dealer,
            key_poly,
            mask_poly,
        };
        Ok((
            OpeningState {
                dealing: self.dealing,
            },
            response,
        ))
    }
}

/// The coefficients of the scalar polynomials through `projected` (one
/// vector of `κ·L` scalars per node): `out[c][idx] = Σ_k m[c][k]·y_k[idx]`
/// with the interpolation matrix of `idx`'s prime.
fn projected_coefficients(
    s: &Scalars,
    matrices: &[Vec<u64>],
    projected: &[Vec<u64>],
) -> Result<Vec<Vec<u64>>> {
    let kk = projected.len();
    let width = projected.first().map(Vec::len).unwrap_or(0);
    (0..kk)
        .map(|c| {
            (0..width)
                .map(|idx| {
                    let q = s.modulus(idx)?;
                    let m = matrices
                        .get(idx % s.l)
                        .and_then(|m| m.get(c * kk..(c + 1) * kk))
                        .ok_or_else(|| Error::Parameters("interpolation matrix".into()))?;
                    let mut acc = 0u64;
                    for (mk, y) in m.iter().zip(projected) {
                        let yk = y
                            .get(idx)
                            .ok_or_else(|| Error::Parameters("projected value".into()))?;
                        acc = q.add(acc, q.mul(*mk, *yk));
                    }
                    Ok(acc)
                })
                .collect()
        })
        .collect()
}

impl OpeningState {
    /// Round 4: opens the values sent to each accuser, and forgets the rest.
    pub fn open(self, complaints: &[Complaint]) -> Vec<Opening> {
        complaints
            .iter()
            .filter(|c| c.dealer == self.dealing.core.dealer)
            .filter(|c| self.dealing.core.points.contains(&c.accuser))
            .filter_map(|c| self.dealing.subshare(c.accuser, None))
            .map(|subshare| Opening { subshare })
            .collect()
    }
}

/// Checks one member's values from one dealer against the dealer's
/// commitment and response. `Ok(())` when they pass.
fn check_values(
    params: &Params,
    proposal: &Proposal,
    commitments: &Commitments,
    response: &Response,
    challenge: &Challenge,
    projections: &[Vec<u64>],
    sub: &ReshareSubShare,
) -> Result<(), String> {
    check_commitment(proposal, commitments, sub)?;
    let values = sub.expand(params).map_err(|e| e.to_string())?;
    check_projections(
        params,
        proposal,
        response,
        challenge,
        projections,
        sub.recipient,
        &values,
    )
}

/// Whether `sub` is what the dealer committed to for its recipient.
fn check_commitment(
    proposal: &Proposal,
    commitments: &Commitments,
    sub: &ReshareSubShare,
) -> Result<(), String> {
    let committed = commitments
        .commitments
        .iter()
        .find(|(m, _)| *m == sub.recipient)
        .map(|(_, c)| *c)
        .ok_or("no commitment for this member")?;
    if sub.commitment(&proposal.digest()) != committed {
        return Err("values do not match the dealer's commitment".into());
    }
    if sub.dealer != commitments.dealer || sub.epoch != proposal.new_epoch() {
        return Err("values for another dealer or epoch".into());
    }
    Ok(())
}

/// Whether member `recipient`'s values lie on the dealer's projected,
/// blinded polynomials.
fn check_projections(
    params: &Params,
    proposal: &Proposal,
    response: &Response,
    challenge: &Challenge,
    projections: &[Vec<u64>],
    recipient: EvaluationPoint,
    values: &Values,
) -> Result<(), String> {
    let t_new = proposal.new.threshold().get();
    let width = challenge.gammas.len();
    let reduced = |coeffs: &[Vec<u64>]| {
        coeffs.len() == t_new
            && coeffs.iter().all(|c| {
                c.len() == width
                    && c.iter().enumerate().all(|(i, v)| {
                        params
                            .moduli()
                            .get(i % params.moduli().len())
                            .is_some_and(|q| v < q)
                    })
            })
    };
    if !reduced(&response.key_poly) || !reduced(&response.mask_poly) {
        return Err("response has the wrong shape or unreduced scalars".into());
    }
    let s = Scalars::new(params).map_err(|e| e.to_string())?;
    let x = u64::from(recipient.get());
    let [key, mask, key_blind, mask_blind] = &values.0;
    for (poly, blind, value) in [
        (&response.key_poly, key_blind, key),
        (&response.mask_poly, mask_blind, mask),
    ] {
        let b = project(&s, projections, blind).map_err(|e| e.to_string())?;
        let v = project(&s, projections, value).map_err(|e| e.to_string())?;
        let expected = s
            .combine(&b, &challenge.gammas, &v)
            .map_err(|e| e.to_string())?;
        let got = s.eval(poly, x).map_err(|e| e.to_string())?;
        if got != expected {
            return Err("values are not on the dealer's polynomial".into());
        }
    }
    Ok(())
}

/// A member's view after checking its values: what it received and whom it
/// accuses.
pub struct MemberState {
    me: EvaluationPoint,
    /// The values that passed the checks, per dealer (the blinding values
    /// already erased).
    received: BTreeMap<EvaluationPoint, Values>,
}

impl fmt::Debug for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemberState({}, [redacted])", self.me)
    }
}

/// The commitments of `dealer` that count: the first it sent for this
/// proposal (`digest`). Members check their values against them and the
/// verdict judges complaints against the same ones.
fn dealer_commitments<'a>(
    commitments: &'a [Commitments],
    dealer: EvaluationPoint,
    digest: &[u8; 32],
) -> Option<&'a Commitments> {
    commitments
        .iter()
        .find(|c| c.dealer == dealer && c.proposal == *digest)
}

/// Round 3 for member `me`: checks the values each responding dealer sent,
/// returning the member's state and its complaints.
pub fn check_dealings(
    params: &Params,
    proposal: &Proposal,
    me: EvaluationPoint,
    commitments: &[Commitments],
    responses: &[Response],
    challenge: &Challenge,
    received: Vec<ReshareSubShare>,
) -> Result<(MemberState, Vec<Complaint>)> {
    if !proposal.new.contains(me) {
        return Err(Error::InvalidCommittee(format!(
            "{me} is not in the new committee"
        )));
    }
    let projections = challenge.projections(params);
    let mut by_dealer: BTreeMap<EvaluationPoint, ReshareSubShare> = BTreeMap::new();
    for sub in received {
        if sub.recipient != me {
            return Err(Error::Malformed {
                sender: sub.dealer,
                what: "reshare values",
                reason: format!("addressed to {} but delivered to {me}", sub.recipient),
            });
        }
        let dealer = sub.dealer;
        if by_dealer.insert(dealer, sub).is_some() {
            return Err(Error::Duplicate {
                sender: dealer,
                what: "reshare values",
            });
        }
    }
    let mut complaints = Vec::new();
    let mut passed = BTreeMap::new();
    let digest = proposal.digest();
    for c in proposal
        .dealers
        .iter()
        .filter_map(|&d| dealer_commitments(commitments, d, &digest))
    {
        let Some(resp) = responses.iter().find(|r| r.dealer == c.dealer) else {
            continue; // silent in round 2: excluded by everyone, no complaint needed
        };
        // The commitment first: a seed is expanded only once it is the
        // committed one.
        let values = by_dealer.remove(&c.dealer).and_then(|sub| {
            check_commitment(proposal, c, &sub).ok()?;
            let values = sub.into_values(params).ok()?;
            check_projections(params, proposal, resp, challenge, &projections, me, &values).ok()?;
            Some(values)
        });
        match values {
            Some(mut values) => {
                for blind in values.0.iter_mut().skip(2) {
                    blind.zeroize();
                    *blind = Vec::new();
                }
                passed.insert(c.dealer, values);
            }
            None => complaints.push(Complaint {
                accuser: me,
                dealer: c.dealer,
            }),
        }
    }
    Ok((
        MemberState {
            me,
            received: passed,
        },
        complaints,
    ))
}

/// The outcome every participant computes identically from the public
/// messages: the qualified dealers, and who is to blame for what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The qualified dealer set `Q` (sorted).
    pub qualified: Vec<EvaluationPoint>,
    /// Named culprits.
    pub blamed: Vec<Blame>,
}

/// Why the change cannot complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Abort {
    /// Fewer than `t` dealers remain qualified.
    TooFewDealers {
        /// How many remain.
        qualified: usize,
        /// Those blamed so far.
        blamed: Vec<Blame>,
    },
    /// A wrong constant term was detected but cannot be attributed (only
    /// `t+1` consistent dealers): the change aborts without harm.
    ConstantTermUnattributable,
}

impl fmt::Display for Abort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Abort::TooFewDealers { qualified, blamed } => write!(
                f,
                "only {qualified} dealers qualified (blamed: {blamed:?}); the change is aborted \
                 and the current shares stay valid"
            ),
            Abort::ConstantTermUnattributable => f.write_str(
                "a dealer's constant term is not its share, and too few dealers remain to tell \
                 which: the change is aborted and the current shares stay valid",
            ),
        }
    }
}

/// Decides the qualified set from the public messages of rounds 1–4.
pub fn judge(
    params: &Params,
    proposal: &Proposal,
    commitments: &[Commitments],
    responses: &[Response],
    challenge: &Challenge,
    complaints: &[Complaint],
    openings: &[Opening],
) -> Result<std::result::Result<Verdict, Abort>> {
    let projections = challenge.projections(params);
    let digest = proposal.digest();
    let mut blamed: Vec<Blame> = Vec::new();
    let mut candidates: BTreeSet<EvaluationPoint> = BTreeSet::new();
    for &d in &proposal.dealers {
        let c = dealer_commitments(commitments, d, &digest);
        let r = responses.iter().find(|r| r.dealer == d);
        match (c, r) {
            (Some(c), Some(_))
                if c.commitments.iter().map(|(m, _)| *m).eq(proposal
                    .new
                    .members()
                    .iter()
                    .copied()) =>
            {
                candidates.insert(d);
            }
            (Some(_), Some(_)) => blamed.push(Blame {
                participant: d,
                fault: Fault::InconsistentDealing,
            }),
            _ => blamed.push(Blame {
                participant: d,
                fault: Fault::Silent,
            }),
        }
    }
    // Complaints: the accused must open; the opening names dealer or accuser.
    let mut seen = BTreeSet::new();
    for complaint in complaints {
        if !proposal.new.contains(complaint.accuser)
            || !seen.insert((complaint.accuser, complaint.dealer))
        {
            continue;
        }
        if !candidates.contains(&complaint.dealer) {
            continue;
        }
        let mut answers = openings.iter().filter(|o| {
            o.subshare.dealer == complaint.dealer && o.subshare.recipient == complaint.accuser
        });
        // Exactly one opening answers a complaint: none, or two that could
        // differ, is the dealer's fault.
        let opening = match (answers.next(), answers.next()) {
            (Some(o), None) => Some(o),
            _ => None,
        };
        let upheld = match opening {
            None => true,
            Some(o) => {
                let c = dealer_commitments(commitments, complaint.dealer, &digest);
                let r = responses.iter().find(|r| r.dealer == complaint.dealer);
                match (c, r) {
                    (Some(c), Some(r)) => {
                        check_values(params, proposal, c, r, challenge, &projections, &o.subshare)
                            .is_err()
                    }
                    _ => true,
                }
            }
        };
        if upheld {
            candidates.remove(&complaint.dealer);
            blamed.push(Blame {
                participant: complaint.dealer,
                fault: Fault::InconsistentDealing,
            });
        } else {
            blamed.push(Blame {
                participant: complaint.accuser,
                fault: Fault::FalseAccusation,
            });
        }
    }
    // Constant terms: Π_i^k(0) over the candidates must be a codeword of degree < t.
    let t = proposal.old.threshold().get();
    let constants: BTreeMap<EvaluationPoint, Vec<u64>> = candidates
        .iter()
        .filter_map(|d| {
            responses
                .iter()
                .find(|r| r.dealer == *d)
                .and_then(|r| r.key_poly.first().cloned())
                .map(|c| (*d, c))
        })
        .collect();
    let s = Scalars::new(params)?;
    let consistent =
        |set: &BTreeMap<EvaluationPoint, Vec<u64>>| -> Result<bool> { is_codeword(&s, set, t) };
    if !consistent(&constants)? {
        // Berlekamp–Welch: with n values and e wrong ones, n ≥ t + 2e lets
        // every scalar position be decoded; the wrong dealers are the roots
        // of the error locator.
        match find_wrong_points(&s, &constants, t)? {
            Some(culprits) => {
                for d in culprits {
                    candidates.remove(&d);
                    blamed.push(Blame {
                        participant: d,
                        fault: Fault::WrongConstantTerm,
                    });
                }
            }
            None => return Ok(Err(Abort::ConstantTermUnattributable)),
        }
    }
    if candidates.len() < t {
        return Ok(Err(Abort::TooFewDealers {
            qualified: candidates.len(),
            blamed,
        }));
    }
    Ok(Ok(Verdict {
        qualified: candidates.into_iter().collect(),
        blamed,
    }))
}

/// Finds the points off the codeword of degree `< t` by Berlekamp–Welch
/// decoding of every scalar position (their error locations are unioned),
/// provided at most `⌊(n − t)/2⌋` points are wrong; `None` when the errors
/// cannot be attributed. The result is checked: removing the culprits leaves
/// a codeword in every position.
fn find_wrong_points(
    s: &Scalars,
    points: &BTreeMap<EvaluationPoint, Vec<u64>>,
    t: usize,
) -> Result<Option<Vec<EvaluationPoint>>> {
    let n = points.len();
    if n < t + 2 {
        return Ok(None);
    }
    let e_max = (n - t) / 2;
    let xs: Vec<EvaluationPoint> = points.keys().copied().collect();
    let width = points.values().next().map(Vec::len).unwrap_or(0);
    let mut culprits: BTreeSet<EvaluationPoint> = BTreeSet::new();
    for pos in 0..width {
        let m = s.modulus(pos)?;
        let ys: Vec<u64> = xs
            .iter()
            .map(|x| points.get(x).and_then(|v| v.get(pos)).map(|y| m.reduce(*y)))
            .collect::<Option<_>>()
            .ok_or_else(|| Error::Parameters("codeword point".into()))?;
        let single: BTreeMap<EvaluationPoint, Vec<u64>> = xs
            .iter()
            .copied()
            .zip(ys.iter().map(|y| vec![*y]))
            .collect();
        let single_s = Scalars {
            moduli: vec![m.clone()],
            l: 1,
        };
        if is_codeword(&single_s, &single, t)? {
            continue;
        }
        let mut found = None;
        for e in 1..=e_max {
            if let Some(roots) = berlekamp_welch(m, &xs, &ys, t, e) {
                found = Some(roots);
                break;
            }
        }
        match found {
            Some(roots) => culprits.extend(roots),
            None => return Ok(None),
        }
    }
    if culprits.is_empty() || culprits.len() > e_max {
        return Ok(None);
    }
    let rest: BTreeMap<EvaluationPoint, Vec<u64>> = points
        .iter()
        .filter(|(x, _)| !culprits.contains(x))
        .map(|(x, v)| (*x, v.clone()))
        .collect();
    if !is_codeword(s, &rest, t)? {
        return Ok(None);
    }
    Ok(Some(culprits.into_iter().collect()))
}

/// One Berlekamp–Welch attempt with `e` errors over `Z_q`: solves
/// `Q(x_i) = y_i·E(x_i)` for monic `E` of degree `e` and `Q` of degree
/// `< t + e`; returns the points where `E` vanishes, if a solution exists
/// and `E` has exactly `e` roots among the points.
fn berlekamp_welch(
    m: &Modulus,
    xs: &[EvaluationPoint],
    ys: &[u64],
    t: usize,
    e: usize,
) -> Option<Vec<EvaluationPoint>> {
    let q_len = t + e;
    let cols = q_len + e;
    // Rows: [x^0 … x^(t+e-1) | −y·x^0 … −y·x^(e-1) | y·x^e]
    let mut rows: Vec<Vec<u64>> = xs
        .iter()
        .zip(ys)
        .map(|(x, &y)| {
            let x = m.reduce(u64::from(x.get()));
            let mut row = Vec::with_capacity(cols + 1);
            let mut p = 1u64;
            for _ in 0..q_len {
                row.push(p);
                p = m.mul(p, x);
            }
            let mut p = 1u64;
            for _ in 0..e {
                row.push(m.neg(m.mul(y, p)));
                p = m.mul(p, x);
            }
            row.push(m.mul(y, p));
            row
        })
        .collect();
    let solution = solve_mod(m, &mut rows, cols)?;
    let (_, e_coeffs) = solution.split_at(q_len);
    let roots: Vec<EvaluationPoint> = xs
        .iter()
        .filter(|x| {
            let xv = m.reduce(u64::from(x.get()));
            // E(x) = x^e + Σ E_j x^j
            let mut acc = 1u64;
            for c in e_coeffs.iter().rev() {
                acc = m.add(m.mul(acc, xv), *c);
            }
            acc == 0
        })
        .copied()
        .collect();
    (roots.len() == e).then_some(roots)
}

/// Gaussian elimination mod a prime on an augmented matrix with `cols`
/// unknowns; one solution (free variables set to 0), or `None` if
/// inconsistent.
fn solve_mod(m: &Modulus, rows: &mut [Vec<u64>], cols: usize) -> Option<Vec<u64>> {
    let mut pivots = Vec::new();
    let mut r = 0;
    for c in 0..cols {
        let Some(p) = (r..rows.len()).find(|&i| {
            rows.get(i)
                .and_then(|row| row.get(c))
                .is_some_and(|v| *v != 0)
        }) else {
            continue;
        };
        rows.swap(r, p);
        let inv = inverse(m, *rows.get(r)?.get(c)?)?;
        for v in rows.get_mut(r)?.iter_mut() {
            *v = m.mul(*v, inv);
        }
        let pivot_row = rows.get(r)?.clone();
        for (i, row) in rows.iter_mut().enumerate() {
            if i == r {
                continue;
            }
            let f = *row.get(c)?;
            if f != 0 {
                for (v, pv) in row.iter_mut().zip(&pivot_row) {
                    *v = m.sub(*v, m.mul(f, *pv));
                }
            }
        }
        pivots.push(c);
        r += 1;
        if r == rows.len() {
            break;
        }
    }
    // Inconsistent if a zero row has a non-zero right-hand side.
    for row in rows.iter().skip(r) {
        if row.get(cols).is_some_and(|v| *v != 0) {
            return None;
        }
    }
    let mut x = vec![0u64; cols];
    for (i, &c) in pivots.iter().enumerate() {
        *x.get_mut(c)? = *rows.get(i)?.get(cols)?;
    }
    Some(x)
}

/// Whether the points `(x_i, y_i)` (vectors of scalars, one per (k, prime))
/// lie on polynomials of degree `< t`: interpolate through the first `t` and
/// compare at the others, per scalar position.
fn is_codeword(
    s: &Scalars,
    points: &BTreeMap<EvaluationPoint, Vec<u64>>,
    t: usize,
) -> Result<bool> {
    if points.len() <= t {
        return Ok(true);
    }
    let xs: Vec<EvaluationPoint> = points.keys().copied().collect();
    let base = xs
        .get(..t)
        .ok_or_else(|| Error::Parameters("codeword base".into()))?;
    for check in xs.iter().skip(t) {
        let y = points
            .get(check)
            .ok_or_else(|| Error::Parameters("point".into()))?;
        for (pos, want) in y.iter().enumerate() {
            let m = s.modulus(pos)?;
            // Lagrange interpolation at x = check from the base points.
            let mut acc = 0u64;
            for &j in base {
                let yj = points
                    .get(&j)
                    .and_then(|v| v.get(pos))
                    .copied()
                    .ok_or_else(|| Error::Parameters("point".into()))?;
                let mut num = 1u64;
                let mut den = 1u64;
                for &m_pt in base {
                    if m_pt == j {
                        continue;
                    }
                    num = m.mul(
                        num,
                        m.sub(
                            m.reduce(u64::from(check.get())),
                            m.reduce(u64::from(m_pt.get())),
                        ),
                    );
                    den = m.mul(
                        den,
                        m.sub(
                            m.reduce(u64::from(j.get())),
                            m.reduce(u64::from(m_pt.get())),
                        ),
                    );
                }
                let inv =
                    inverse(m, den).ok_or_else(|| Error::Parameters("points collide".into()))?;
                acc = m.add(acc, m.mul(m.reduce(yj), m.mul(num, inv)));
            }
            if acc != m.reduce(*want) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

impl MemberState {
    /// Round 5: the new key share and mask share from the qualified dealers,
    /// using opened values where this member's complaint was answered.
    pub fn finish(
        mut self,
        params: &Params,
        proposal: &Proposal,
        verdict: &Verdict,
        openings: &[Opening],
    ) -> Result<(KeyShare, MaskShare)> {
        // An opening stands in only for values this member did not accept
        // (it complained, and `judge` found the one opening that answered
        // the complaint correct, or the dealer would not be qualified); an
        // opening for values it accepted is ignored, whoever published it.
        for o in openings {
            let dealer = o.subshare.dealer;
            if o.subshare.recipient == self.me
                && verdict.qualified.contains(&dealer)
                && !self.received.contains_key(&dealer)
            {
                self.received.insert(dealer, o.subshare.expand(params)?);
            }
        }
        let ctx = params.ctx(0)?;
        let s = Scalars::new(params)?;
        let n = params.degree();
        // Σ λ_d·value_d directly on the residues: the weights reduced per
        // prime, the products summed in 128 bits and reduced once.
        let mut keys = Vec::with_capacity(verdict.qualified.len());
        let mut masks = Vec::with_capacity(verdict.qualified.len());
        let mut weights = vec![0u64; s.l * verdict.qualified.len()];
        for (k, &d) in verdict.qualified.iter().enumerate() {
            let values = self.received.get(&d).ok_or_else(|| Error::Missing {
                what: "reshare values",
                missing: vec![d.get()],
            })?;
            let w = lagrange_weight_residues(d, &verdict.qualified, &s.moduli)?;
            for (prime, wp) in w.into_iter().enumerate() {
                if let Some(slot) = weights.get_mut(prime * verdict.qualified.len() + k) {
                    *slot = wp;
                }
            }
            let [key, mask, ..] = &values.0;
            keys.push(key.as_slice());
            masks.push(mask.as_slice());
        }
        // Moved into the polynomials, not copied (a copy would leave a second
        // secret matrix to wipe).
        let mut key = Zeroizing::new(combine_nodes(&s.moduli, n, &keys, &weights));
        let mut mask = Zeroizing::new(combine_nodes(&s.moduli, n, &masks, &weights));
        let key = crate::kernels::ntt_poly(std::mem::take(&mut *key), ctx)?;
        let mask = crate::kernels::ntt_poly(std::mem::take(&mut *mask), ctx)?;
        Ok((
            KeyShare::new(self.me, proposal.new.clone(), proposal.new_epoch(), key),
            MaskShare::new(self.me, proposal.new_epoch(), mask),
        ))
    }
}

/// The test ciphertext the new committee must decrypt before it signs the
/// epoch certificate: an encryption of values derived from `transcript`
/// under the (unchanged) public key, with randomness derived from it too, so
/// every member computes the same ciphertext and nobody can substitute an
/// arbitrary one (DESIGN.md §2, output). Returns the ciphertext and the
/// values it must decrypt to. It uses fhe.rs's `try_encrypt` on the derived
/// randomness: moving it to `CollectivePublicKey::encrypt` would change the
/// ciphertext every member derives, a protocol change.
pub fn test_ciphertext(
    params: &Params,
    pk: &fhe::bfv::PublicKey,
    transcript: &[u8; 32],
) -> Result<(fhe::bfv::Ciphertext, Vec<u64>)> {
    use fhe_traits::{FheEncoder, FheEncrypter};
    let seed = blake3::derive_key("synod/reshare/test-ciphertext/v1", transcript);
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
    let p = params.plaintext();
    let values: Vec<u64> = (0..params.degree())
        .map(|_| uniform_below(&mut rng, p))
        .collect();
    let pt = fhe::bfv::Plaintext::try_encode(&values, fhe::bfv::Encoding::simd(), params.bfv())?;
    Ok((pk.try_encrypt(&pt, &mut rng)?, values))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::ParameterSet;
    use fhe_math::rq::Representation;

    fn pts(xs: &[u32]) -> Vec<EvaluationPoint> {
        xs.iter()
            .map(|&x| EvaluationPoint::new(x).unwrap())
            .collect()
    }

    #[test]
    fn proposals_are_checked_and_their_digest_binds_everything() {
        let a = Committee::new(pts(&[1, 2, 3]), 2).unwrap();
        let b = Committee::new(pts(&[2, 3, 4]), 2).unwrap();
        let p = Proposal {
            session: [1; 32],
            old_epoch: 0,
            old: a.clone(),
            new: b.clone(),
            dealers: pts(&[1, 2]),
        };
        p.check().unwrap();
        let mut q = p.clone();
        q.dealers = pts(&[1]);
        assert!(q.check().is_err(), "fewer than t dealers");
        q.dealers = pts(&[1, 4]);
        assert!(q.check().is_err(), "a dealer outside A");
        for change in 0..4 {
            let mut q = p.clone();
            match change {
                0 => q.session = [2; 32],
                1 => q.old_epoch = 1,
                2 => q.new = Committee::new(pts(&[2, 3, 4]), 3).unwrap(),
                _ => q.dealers = pts(&[1, 3]),
            }
            assert_ne!(q.digest(), p.digest(), "change {change}");
        }
    }

    /// Berlekamp–Welch finds up to ⌊(n − t)/2⌋ wrong points and refuses more.
    #[test]
    fn wrong_points_are_found_up_to_the_decoding_radius() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let s = Scalars::new(&params).unwrap();
        let q = params.moduli();
        // Two positions (primes 0 and 1); y = 5 + 3x + 7x² (degree 2 < t = 3).
        let f = |x: u64, i: usize| (5 + 3 * x + 7 * x * x) % q[i];
        let pts: BTreeMap<EvaluationPoint, Vec<u64>> = (1..=7u64)
            .map(|x| {
                (
                    EvaluationPoint::new(x as u32).unwrap(),
                    vec![f(x, 0), f(x, 1)],
                )
            })
            .collect();
        assert_eq!(
            find_wrong_points(&s, &pts, 3).unwrap(),
            None,
            "a codeword has no culprit"
        );
        let mut bad = pts.clone();
        bad.get_mut(&EvaluationPoint::new(2).unwrap()).unwrap()[0] += 1;
        bad.get_mut(&EvaluationPoint::new(6).unwrap()).unwrap()[1] += 9;
        assert_eq!(
            find_wrong_points(&s, &bad, 3).unwrap(),
            Some(vec![
                EvaluationPoint::new(2).unwrap(),
                EvaluationPoint::new(6).unwrap()
            ])
        );
        bad.get_mut(&EvaluationPoint::new(4).unwrap()).unwrap()[0] += 3;
        assert_eq!(
            find_wrong_points(&s, &bad, 3).unwrap(),
            None,
            "3 errors exceed radius 2"
        );
    }

    /// Evaluates a polynomial with residue-matrix coefficients at the small
    /// integer `x` (Horner, per prime, in place).
    fn eval_residues(
        params: &Params,
        moduli: &[Modulus],
        coeffs: &[Vec<u64>],
        x: u64,
    ) -> Option<Vec<u64>> {
        let n = params.degree();
        let mut iter = coeffs.iter().rev();
        let mut acc = iter.next()?.clone();
        for c in iter {
            for ((row, crow), q) in acc.chunks_mut(n).zip(c.chunks(n)).zip(moduli) {
                let x = q.reduce(x);
                if x < (1 << 14) && **q < (1 << 49) {
                    // acc·x + c < 2^63: one multiply and one 64-bit Barrett
                    // reduction per value (the points are small integers).
                    for (a, c) in row.iter_mut().zip(crow) {
                        *a = q.reduce(*a * x + *c);
                    }
                } else {
                    q.scalar_mul_vec(row, x);
                    q.add_vec(row, crow);
                }
            }
        }
        Some(acc)
    }

    /// The fused small-point Horner step equals the generic one.
    #[test]
    fn fast_evaluation_equals_generic() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let moduli: Vec<Modulus> = params
            .moduli()
            .iter()
            .map(|&q| Modulus::new(q).unwrap())
            .collect();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let coeffs: Vec<Vec<u64>> = (0..5).map(|_| random_residues(&params, &mut rng)).collect();
        for x in [1u64, 2, 77, (1 << 14) - 1, 1 << 14, 1 << 31] {
            let fast = eval_residues(&params, &moduli, &coeffs, x).unwrap();
            let mut slow = coeffs.last().unwrap().clone();
            let n = params.degree();
            for c in coeffs.iter().rev().skip(1) {
                for ((row, crow), q) in slow.chunks_mut(n).zip(c.chunks(n)).zip(&moduli) {
                    q.scalar_mul_vec(row, q.reduce(x));
                    q.add_vec(row, crow);
                }
            }
            assert_eq!(fast, slow, "x = {x}");
        }
    }

    /// The old way to project a polynomial given by coefficients: project
    /// every coefficient.
    fn project_coefficients(
        params: &Params,
        projections: &[Vec<u64>],
        coeffs: &[Vec<u64>],
    ) -> Vec<Vec<u64>> {
        coeffs
            .iter()
            .map(|c| project(&Scalars::new(params).unwrap(), projections, c).unwrap())
            .collect()
    }

    /// A dealing whose four polynomials all have the given coefficients,
    /// held by their values at the nodes `0, …, d` (computed by Horner).
    fn dealing_of(params: &Params, coeffs: &[Vec<u64>], members: &[u32]) -> Dealing {
        let moduli: Vec<Modulus> = params
            .moduli()
            .iter()
            .map(|&q| Modulus::new(q).unwrap())
            .collect();
        let d = coeffs.len() - 1;
        let values: Vec<Vec<u64>> = (0..=d as u64)
            .map(|x| eval_residues(params, &moduli, coeffs, x).unwrap())
            .collect();
        let mut inv_den = Vec::new();
        for q in &moduli {
            for k in 0..=d as u64 {
                let den = (0..=d as u64)
                    .filter(|&m| m != k)
                    .fold(1u64, |acc, m| q.mul(acc, q.sub(k % **q, m % **q)));
                inv_den.push(q.inv(den).unwrap());
            }
        }
        Dealing {
            dealer: EvaluationPoint::new(1).unwrap(),
            epoch: 1,
            degree: params.degree(),
            values: [values.clone(), values.clone(), values.clone(), values],
            seeds: vec![[0; 32]; d],
            inv_den,
            points: members
                .iter()
                .map(|&m| EvaluationPoint::new(m).unwrap())
                .collect(),
            moduli,
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// Dealing by values is the old coefficient-form math: for a random
        /// polynomial given by coefficients, the values the dealer computes
        /// from the nodes (by stepping and by Lagrange combination, whichever
        /// the cost rule picks, and by Lagrange alone as when opening) equal
        /// Horner's rule at every member's point, and interpolating the
        /// projected node values gives the projections of its coefficients.
        #[test]
        fn dealing_by_values_matches_coefficient_form(
            t in 1usize..7,
            dense in 1u32..20,
            far in proptest::collection::btree_set(1u32..u32::MAX, 0..4),
            seed: u64,
        ) {
            let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
            let coeffs: Vec<Vec<u64>> = (0..t)
                .map(|_| random_residues(&params, &mut rng))
                .collect();
            let members: Vec<u32> = (1..=dense)
                .chain(far.iter().copied().filter(|&x| x > dense))
                .collect();
            let dealing = dealing_of(&params, &coeffs, &members);
            let moduli = dealing.moduli.clone();
            for (&x, values) in members.iter().zip(dealing.all_values()) {
                let want = eval_residues(&params, &moduli, &coeffs, u64::from(x)).unwrap();
                // Members at the nodes 1 … t−1 are sent seeds, not values.
                proptest::prop_assert_eq!(values.is_none(), u64::from(x) < t as u64);
                for v in values.iter().flatten() {
                    proptest::prop_assert_eq!(v, &want, "x = {}", x);
                }
                let opened = dealing.values_at(u64::from(x));
                proptest::prop_assert_eq!(&opened[0], &want, "x = {}", x);
            }
            let p = Proposal {
                session: [seed as u8; 32],
                old_epoch: 0,
                old: Committee::new(pts(&[1, 2]), 1).unwrap(),
                new: Committee::new(pts(&[1, 2]), 1).unwrap(),
                dealers: pts(&[1]),
            };
            let challenge = Challenge::derive(&params, &p, &[]);
            let projections = challenge.projections(&params);
            let s = Scalars::new(&params).unwrap();
            let nodes: Vec<u64> = (0..t as u64).collect();
            let matrices: Vec<Vec<u64>> = s
                .moduli
                .iter()
                .map(|q| interpolation_matrix(q, &nodes).unwrap())
                .collect();
            let projected: Vec<Vec<u64>> = dealing.values[0]
                .iter()
                .map(|v| project(&s, &projections, v).unwrap())
                .collect();
            proptest::prop_assert_eq!(
                projected_coefficients(&s, &matrices, &projected).unwrap(),
                project_coefficients(&params, &projections, &coeffs)
            );
        }
    }

    /// The 128-bit, four-lane projection equals a plain dot product reduced
    /// term by term.
    #[test]
    fn projection_equals_the_plain_dot_product() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let s = Scalars::new(&params).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        let p = Proposal {
            session: [8; 32],
            old_epoch: 0,
            old: Committee::new(pts(&[1, 2]), 1).unwrap(),
            new: Committee::new(pts(&[1, 2]), 1).unwrap(),
            dealers: pts(&[1]),
        };
        let challenge = Challenge::derive(&params, &p, &[]);
        let projections = challenge.projections(&params);
        let n = params.degree();
        for _ in 0..3 {
            let v = random_residues(&params, &mut rng);
            let got = project(&s, &projections, &v).unwrap();
            for (idx, r) in projections.iter().enumerate() {
                let q = u128::from(params.moduli()[idx % s.l]);
                let row = &v[(idx % s.l) * n..(idx % s.l + 1) * n];
                let want = row.iter().zip(r).fold(0u128, |acc, (a, b)| {
                    (acc + u128::from(*a) * u128::from(*b)) % q
                });
                assert_eq!(u128::from(got[idx]), want);
            }
        }
    }

    /// A member's new shares, summed on the residues, are the old
    /// `Σ λ_i·g_i(x_j)` computed with `Poly` arithmetic.
    #[test]
    fn new_shares_equal_the_poly_arithmetic() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let ctx = params.ctx(0).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
        let me = EvaluationPoint::new(4).unwrap();
        let p = Proposal {
            session: [9; 32],
            old_epoch: 0,
            old: Committee::new(pts(&[1, 2, 3]), 2).unwrap(),
            new: Committee::new(pts(&[4, 5]), 2).unwrap(),
            dealers: pts(&[1, 2, 3]),
        };
        let seeds: Vec<[u8; 32]> = p
            .dealers
            .iter()
            .map(|_| {
                let mut seed = [0; 32];
                rng.fill_bytes(&mut seed);
                seed
            })
            .collect();
        let received = || -> BTreeMap<EvaluationPoint, Values> {
            p.dealers
                .iter()
                .zip(&seeds)
                .map(|(&d, seed)| (d, seeded_values(&params, seed)))
                .collect()
        };
        let verdict = Verdict {
            qualified: pts(&[1, 3]),
            blamed: Vec::new(),
        };
        let mut want_key = Poly::zero(ctx, Representation::Ntt);
        let mut want_mask = Poly::zero(ctx, Representation::Ntt);
        for &d in &verdict.qualified {
            let w = crate::shamir::lagrange_weight(d, &verdict.qualified, ctx.modulus()).unwrap();
            let [key, mask, ..] = &received()[&d].0;
            let parse = |v: &Vec<u64>| {
                ring::WirePoly::from_residues(0, v.clone())
                    .parse(&params, 0, d, "v")
                    .unwrap()
            };
            want_key += &ring::scalar_mul(&parse(key), &w);
            want_mask += &ring::scalar_mul(&parse(mask), &w);
        }
        let state = MemberState {
            me,
            received: received(),
        };
        let (key, mask) = state.finish(&params, &p, &verdict, &[]).unwrap();
        assert_eq!(key.poly(), &want_key);
        assert_eq!(mask.poly(), &want_mask);
        // An opening for values the member accepted (it did not complain) is
        // ignored, whoever published it.
        let bogus = Opening {
            subshare: ReshareSubShare {
                dealer: EvaluationPoint::new(1).unwrap(),
                recipient: me,
                epoch: 1,
                values: SubShareValues::Seeded([42; 32]),
                salt: [0; 32],
            },
        };
        let state = MemberState {
            me,
            received: received(),
        };
        let (key, _) = state.finish(&params, &p, &verdict, &[bogus]).unwrap();
        assert_eq!(key.poly(), &want_key);
    }

    /// Drawn residues are reduced and spread over `[0, q)` for every prime
    /// (the 6-byte candidates lose nothing of the range).
    #[test]
    fn random_residues_cover_each_prime() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(13);
        let n = params.degree();
        let v = random_residues(&params, &mut rng);
        assert_eq!(v.len(), n * params.moduli().len());
        for (row, &q) in v.chunks(n).zip(params.moduli()) {
            assert!(row.iter().all(|x| *x < q));
            let mean = row.iter().map(|x| *x as f64 / q as f64).sum::<f64>() / n as f64;
            assert!((mean - 0.5).abs() < 0.03, "mean {mean} for q = {q}");
            assert!(
                row.iter().any(|x| *x >= q / 2 + q / 4),
                "top quarter reached"
            );
        }
        assert_ne!(v, random_residues(&params, &mut rng));
    }

    /// With primes near 2^62 the 128-bit sums must be reduced in batches;
    /// the result is still the plain modular sum.
    #[test]
    fn combination_reduces_in_batches_for_large_primes() {
        let q = Modulus::new(4611686018326724609).unwrap(); // a 62-bit modulus
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let degree = 300;
        let k = 40;
        let nodes: Vec<Vec<u64>> = (0..k).map(|_| q.random_vec(degree, &mut rng)).collect();
        let weights = q.random_vec(k, &mut rng);
        let fast = combine_nodes(std::slice::from_ref(&q), degree, &nodes, &weights);
        for (i, got) in fast.iter().enumerate() {
            let want = nodes
                .iter()
                .zip(&weights)
                .fold(0u64, |acc, (v, w)| q.add(acc, q.mul(v[i], *w)));
            assert_eq!(*got, want);
        }
    }

    /// A dealer's key and mask shares for `epoch` of committee `old`,
    /// uniformly random (what a dealing is made from, not a real sharing).
    fn random_shares(
        params: &Params,
        dealer: EvaluationPoint,
        old: &Committee,
        epoch: u64,
        rng: &mut rand_chacha::ChaCha20Rng,
    ) -> (KeyShare, MaskShare) {
        let ctx = params.ctx(0).unwrap();
        let key = KeyShare::new(
            dealer,
            old.clone(),
            epoch,
            Poly::random(ctx, Representation::Ntt, rng),
        );
        let mask = MaskShare::new(dealer, epoch, Poly::random(ctx, Representation::Ntt, rng));
        (key, mask)
    }

    /// Honest and cheating dealings: every member's values pass (or, for
    /// the victim of an inconsistent dealer, fail) the checks, and what a
    /// dealer opens is exactly what it sent, recomputed from its nodes.
    #[test]
    fn openings_repeat_what_was_sent() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let old = Committee::new(pts(&[1, 2, 3]), 2).unwrap();
        let p = Proposal {
            session: [5; 32],
            old_epoch: 0,
            old: old.clone(),
            new: Committee::new(pts(&[2, 4, 7, 9, 30]), 3).unwrap(),
            dealers: pts(&[1, 2]),
        };
        // Member 2 is a node (its values are drawn), member 30 is not.
        for cheat in [
            Behaviour::Honest,
            Behaviour::Inconsistent(EvaluationPoint::new(30).unwrap()),
            Behaviour::Inconsistent(EvaluationPoint::new(2).unwrap()),
        ] {
            let dealer = EvaluationPoint::new(1).unwrap();
            let (key, mask) = random_shares(&params, dealer, &old, 0, &mut rng);
            let (state, commitments, subs) =
                deal_inner(&params, &p, &key, &mask, &mut rng, cheat).unwrap();
            let challenge = Challenge::derive(&params, &p, std::slice::from_ref(&commitments));
            let (opener, response) = state.respond(&params, &challenge).unwrap();
            let projections = challenge.projections(&params);
            for sub in &subs {
                // t' = 3: the members at the nodes 1 and 2 get seeds.
                let seeded = matches!(sub.values, SubShareValues::Seeded(_));
                assert_eq!(seeded, sub.recipient.get() <= 2, "{sub:?}");
                let ok = check_values(
                    &params,
                    &p,
                    &commitments,
                    &response,
                    &challenge,
                    &projections,
                    sub,
                )
                .is_ok();
                assert_eq!(ok, cheat != Behaviour::Inconsistent(sub.recipient));
            }
            let complaints: Vec<Complaint> = p
                .new
                .members()
                .iter()
                .map(|&m| Complaint { accuser: m, dealer })
                .collect();
            let opened = opener.open(&complaints);
            assert_eq!(opened.len(), subs.len());
            for (o, sub) in opened.iter().zip(&subs) {
                assert!(o.subshare == *sub);
            }
            if cheat == Behaviour::Honest {
                // One correct opening names the accuser; a second opening
                // for the same complaint names the dealer.
                let m = EvaluationPoint::new(30).unwrap();
                let complaint = [Complaint { accuser: m, dealer }];
                let answer: Vec<Opening> = opened
                    .iter()
                    .filter(|o| o.subshare.recipient == m)
                    .cloned()
                    .collect();
                let blamed = |openings: &[Opening]| {
                    let c = std::slice::from_ref(&commitments);
                    let r = std::slice::from_ref(&response);
                    match judge(&params, &p, c, r, &challenge, &complaint, openings).unwrap() {
                        Ok(v) => v.blamed,
                        Err(Abort::TooFewDealers { blamed, .. }) => blamed,
                        Err(other) => panic!("{other:?}"),
                    }
                };
                let false_accusation = Blame {
                    participant: m,
                    fault: Fault::FalseAccusation,
                };
                let twice = Blame {
                    participant: dealer,
                    fault: Fault::InconsistentDealing,
                };
                assert!(blamed(&answer).contains(&false_accusation));
                let doubled = [answer.clone(), answer].concat();
                let b = blamed(&doubled);
                assert!(
                    b.contains(&twice) && !b.contains(&false_accusation),
                    "{b:?}"
                );
            }
        }
    }

    /// `count` residue matrices read from `xof` as the protocol describes
    /// them, written out independently of `random_residues`: per prime,
    /// blocks of 4200 bytes, each read as candidates of as many
    /// little-endian bytes as the prime needs, masked to its bit length and
    /// kept if below it; a prime's last block is dropped after its N-th
    /// value.
    fn reference_residues(
        params: &Params,
        xof: &mut blake3::OutputReader,
        count: usize,
    ) -> Vec<Vec<u64>> {
        (0..count)
            .map(|_| {
                let mut out = Vec::new();
                for &q in params.moduli() {
                    let bits = 64 - q.leading_zeros();
                    let width = bits.div_ceil(8) as usize;
                    let mut row = Vec::new();
                    while row.len() < params.degree() {
                        let mut block = [0u8; 4200];
                        xof.fill(&mut block);
                        for c in block.chunks(width) {
                            let mut w = [0u8; 8];
                            w[..width].copy_from_slice(c);
                            let x = u64::from_le_bytes(w) & ((1u64 << bits) - 1);
                            if x < q && row.len() < params.degree() {
                                row.push(x);
                            }
                        }
                    }
                    out.extend(row);
                }
                out
            })
            .collect()
    }

    /// A seed expands to the same values on every node and in every build:
    /// the draw is part of the wire protocol. It is the BLAKE3 keyed XOF of
    /// the seed over "synod dealt shamir values", read as
    /// [`reference_residues`] describes; also pinned by a digest of the four
    /// values.
    #[test]
    fn seed_expansion_is_pinned() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let seed = [7; 32];
        let values = draw_from_seed::<4>(&params, &seed);
        let mut xof = crate::kernels::tests::reference_reader(&seed, b"synod dealt shamir values");
        assert_eq!(
            values.to_vec(),
            reference_residues(&params, &mut xof, 4),
            "the dealt values are not the protocol's"
        );
        let mut h = blake3::Hasher::new();
        for v in &values {
            for x in v {
                h.update(&x.to_le_bytes());
            }
        }
        assert_eq!(
            h.finalize().to_hex().as_str(),
            "56aa498dc51f6d23da81642fa9d25f6612fdcc645f5ede8adc87c08e3deac4ec"
        );
    }

    /// A challenge's projection vectors are the BLAKE3 keyed XOF of its
    /// projection seed over "synod reshare projections", `κ` residue
    /// matrices read as [`reference_residues`] describes, row by row.
    #[test]
    fn projections_are_the_protocol_stream() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let challenge = Challenge {
            gammas: vec![1; kappa(&params) * params.moduli().len()],
            projection_seed: [9; 32],
            kappa: kappa(&params),
            expanded: std::sync::OnceLock::new(),
        };
        let mut xof =
            crate::kernels::tests::reference_reader(&[9; 32], b"synod reshare projections");
        let expected: Vec<Vec<u64>> = reference_residues(&params, &mut xof, kappa(&params))
            .iter()
            .flat_map(|m| m.chunks(params.degree()).map(<[u64]>::to_vec))
            .collect();
        assert_eq!(challenge.projections(&params).as_ref(), expected.as_slice());
    }

    /// Commitments made for another proposal (another session or epoch) are
    /// not counted: their dealer is treated as silent.
    #[test]
    fn replayed_commitments_do_not_count() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let p = Proposal {
            session: [1; 32],
            old_epoch: 1,
            old: Committee::new(pts(&[1, 2, 3]), 2).unwrap(),
            new: Committee::new(pts(&[1, 2, 3]), 2).unwrap(),
            dealers: pts(&[1, 2]),
        };
        let mut earlier = p.clone();
        earlier.old_epoch = 0;
        let stale: Vec<Commitments> = pts(&[1, 2])
            .into_iter()
            .map(|d| Commitments {
                dealer: d,
                proposal: earlier.digest(),
                commitments: p.new.members().iter().map(|m| (*m, [0; 32])).collect(),
            })
            .collect();
        let responses: Vec<Response> = pts(&[1, 2])
            .into_iter()
            .map(|d| Response {
                dealer: d,
                key_poly: Vec::new(),
                mask_poly: Vec::new(),
            })
            .collect();
        let challenge = Challenge::derive(&params, &p, &stale);
        let out = judge(&params, &p, &stale, &responses, &challenge, &[], &[]).unwrap();
        match out {
            Err(Abort::TooFewDealers { qualified, blamed }) => {
                assert_eq!(qualified, 0);
                assert!(blamed.iter().all(|b| b.fault == Fault::Silent));
                assert_eq!(blamed.len(), 2);
            }
            other => panic!("{other:?}"),
        }
    }

    /// A dealer that first sends commitments bound to another proposal and
    /// then the right ones: members check their values against the right
    /// ones (no complaint), and the verdict judges a complaint's opening
    /// against the same ones (the accuser is named, the dealer qualified).
    /// Taking a dealer's first commitments whatever their proposal made
    /// members complain, or the judge blame the honest dealer.
    #[test]
    fn a_stale_commitment_sent_first_does_not_shadow_the_real_one() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        let old = Committee::new(pts(&[1, 2, 3]), 2).unwrap();
        let p = Proposal {
            session: [6; 32],
            old_epoch: 1,
            old: old.clone(),
            new: Committee::new(pts(&[1, 2, 4]), 2).unwrap(),
            dealers: pts(&[1, 2]),
        };
        let mut earlier = p.clone();
        earlier.old_epoch = 0;
        let mut states = Vec::new();
        let mut commitments = Vec::new();
        let mut subs = Vec::new();
        for dealer in pts(&[1, 2]) {
            let (key, mask) = random_shares(&params, dealer, &old, 1, &mut rng);
            let (state, c, s) =
                deal_inner(&params, &p, &key, &mask, &mut rng, Behaviour::Honest).unwrap();
            if dealer.get() == 1 {
                // Dealer 1's commitments for the earlier proposal arrive first.
                let mut stale = c.clone();
                stale.proposal = earlier.digest();
                stale.commitments.iter_mut().for_each(|(_, d)| d[0] ^= 1);
                commitments.push(stale);
            }
            states.push(state);
            commitments.push(c);
            subs.extend(s);
        }
        let challenge = Challenge::derive(&params, &p, &commitments);
        let (openers, responses): (Vec<_>, Vec<Response>) = states
            .into_iter()
            .map(|s| s.respond(&params, &challenge).unwrap())
            .unzip();
        for &me in p.new.members() {
            let mine: Vec<ReshareSubShare> =
                subs.iter().filter(|s| s.recipient == me).cloned().collect();
            let (_, complaints) =
                check_dealings(&params, &p, me, &commitments, &responses, &challenge, mine)
                    .unwrap();
            assert!(complaints.is_empty(), "{me}: {complaints:?}");
        }
        // The judge checks against the same commitments: member 4's
        // complaint against dealer 1, answered with the values it was sent,
        // is a false accusation (judged against the stale commitments, the
        // dealer would be blamed instead).
        let (dealer, accuser) = (
            EvaluationPoint::new(1).unwrap(),
            EvaluationPoint::new(4).unwrap(),
        );
        let complaint = [Complaint { accuser, dealer }];
        let opening = openers.into_iter().next().unwrap().open(&complaint);
        let verdict = judge(
            &params,
            &p,
            &commitments,
            &responses,
            &challenge,
            &complaint,
            &opening,
        )
        .unwrap()
        .unwrap();
        assert_eq!(verdict.qualified, pts(&[1, 2]));
        let false_accusation = Blame {
            participant: accuser,
            fault: Fault::FalseAccusation,
        };
        assert_eq!(verdict.blamed, vec![false_accusation]);
    }

    #[test]
    fn codeword_check_finds_the_odd_point() {
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let s = Scalars::new(&params).unwrap();
        let q0 = params.moduli()[0];
        // y = 5 + 3x (degree 1 < t = 2) at x = 1..4, one scalar position.
        let mut points: BTreeMap<EvaluationPoint, Vec<u64>> = (1..=4u32)
            .map(|x| (EvaluationPoint::new(x).unwrap(), vec![5 + 3 * u64::from(x)]))
            .collect();
        assert!(is_codeword(&s, &points, 2).unwrap());
        points.insert(EvaluationPoint::new(3).unwrap(), vec![(15 % q0) + 1]);
        assert!(!is_codeword(&s, &points, 2).unwrap());
        points.remove(&EvaluationPoint::new(3).unwrap());
        assert!(is_codeword(&s, &points, 2).unwrap());
    }
}
