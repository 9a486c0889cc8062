//! The enclave boundary: the [`Enclave`] trait and [`KeyVault`], the key operations every backend
//! runs inside its protected memory.
//!
//! Every operation that touches key material is a method here, so key material is born inside
//! the enclave and leaves it only as public shares (public-key, relinearisation, decryption and
//! key-switch shares, all of which reveal nothing about the secret by the protocols' design) or
//! HPKE-sealed to a peer's attested transport key. The trait is object-safe and synchronous, so
//! the same boundary serves an in-process backend, the simulated enclave process
//! (`sim`, feature `insecure-sim`) and a later network daemon.

use std::fmt;

use fhe_traits::DeserializeParametrized as _;
use serde::{Deserialize, Serialize};
use synod_he::crp::CommonRandomness;
use synod_he::decrypt::DecryptionShare;
use synod_he::flooding::Flooding;
use synod_he::galois::GaloisKeyShare;
use synod_he::keygen::PublicKeyShare;
use synod_he::keyswitch::{KeySwitchShare, RecipientKey};
use synod_he::relin::{Round1Secret, Round1Share, Round2Share};
use synod_he::reshare::{
    self, Challenge, Commitments, Complaint, DealerState, MemberState, Opening, OpeningState,
    Proposal, ReshareSubShare, Verdict,
};
use synod_he::ring::WireCiphertext;
use synod_he::sealable::SealableShares;
use synod_he::secret::{AdditiveKeyShare, KeyShare, MaskShare};
use synod_he::shamir::ActiveSet;
use synod_he::thresholdize::SubShare;
use synod_he::{Ciphertext, Committee, EvaluationPoint, ParameterSet, Params, PublicKey};
use synod_proto::{MessageContext, SealedPayload, SessionId, TransportKey, TransportPublicKey};

use crate::claims::EnclaveKind;
use crate::error::{Error, Result};
use crate::report_data::ReportData;
use crate::seal::{KeyId, SealedBlob};
use zeroize::Zeroizing;

/// Attestation evidence, as an enclave produces it and a verifier consumes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Evidence {
    /// An Intel DCAP quote (SGX or TDX) with its collateral (the JSON of `dcap-qvl`'s
    /// `QuoteCollateralV3`), fetched by the caller beforehand.
    Dcap {
        /// The raw quote.
        quote: Vec<u8>,
        /// The collateral JSON.
        collateral: Vec<u8>,
    },
    /// An AMD SEV-SNP attestation report (1184 bytes) with the chip's VCEK certificate (DER).
    SevSnp {
        /// The raw report.
        report: Vec<u8>,
        /// The VCEK, DER.
        vcek: Vec<u8>,
    },
    /// A report of synod's simulated enclave: **no hardware protection**.
    InsecureSimulated(crate::verify::sim::SimReport),
}

/// What a session's key operations need to know, given to the enclave once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSetup {
    /// The session (seeds the common random polynomials).
    pub session: SessionId,
    /// The parameter set.
    pub parameter_set: ParameterSet,
    /// Bits of the plaintext modulus `p`.
    pub plaintext_bits: u32,
    /// Ciphertext primes per digit of the relinearisation key
    /// (`Params::with_digit_primes`).
    pub relin_digit_primes: usize,
    /// Ciphertext primes per digit of the rotation keys.
    pub rotation_digit_primes: usize,
    /// This participant's permanent evaluation point.
    pub me: EvaluationPoint,
    /// The committee and threshold.
    pub committee: Committee,
}

/// A peer to deal a thresholdisation sub-share to: its point, its attested transport key and the
/// message context the sealed sub-share is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedRecipient {
    /// The peer's evaluation point.
    pub point: EvaluationPoint,
    /// The transport key the caller verified in the peer's evidence.
    pub transport_key: TransportPublicKey,
    /// The context (HPKE associated data).
    pub context: MessageContext,
}

/// A sealed sub-share as it arrives from a peer, with the context it was sealed under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingSubShare {
    /// The context it was sealed for.
    pub context: MessageContext,
    /// The sealed sub-share.
    pub sealed: SealedPayload,
}

/// What a dealer's enclave returns for a resharing: its commitments (to broadcast) and one
/// sub-share per member of the new committee, each HPKE-sealed to that member's transport key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReshareDealt {
    /// The dealer's salted commitments to each member's values.
    pub commitments: Commitments,
    /// The sealed sub-shares, by recipient.
    pub sealed: Vec<(EvaluationPoint, SealedPayload)>,
}

/// What a member's enclave checks in round 3 of a resharing: the proposal, every dealer's
/// commitments and response as the relay delivered them, and the sealed sub-shares addressed
/// to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReshareReceive {
    /// The approved proposal.
    pub proposal: Proposal,
    /// Round-1 commitments of every dealer.
    pub commitments: Vec<Commitments>,
    /// Round-2 responses of every dealer.
    pub responses: Vec<reshare::Response>,
    /// The sealed sub-shares addressed to this member.
    pub incoming: Vec<IncomingSubShare>,
}

/// The enclave boundary.
///
/// Resharing ([`synod_he::reshare`]) runs as: [`join_session`](Self::join_session) for a member
/// that joins, [`reshare_deal`](Self::reshare_deal) and
/// [`reshare_respond`](Self::reshare_respond) on each dealer,
/// [`reshare_receive`](Self::reshare_receive) on each new member, [`reshare_open`](Self::reshare_open)
/// on each accused dealer, [`reshare_finish`](Self::reshare_finish) on each new member (the
/// new share stays *pending*), [`reshare_test_decryption_share`](Self::reshare_test_decryption_share)
/// for the new committee's test decryption, and once the epoch certificate exists
/// [`reshare_commit`](Self::reshare_commit) on every old and new member: the pending share
/// replaces the old one, and a member that left erases its share. [`reshare_abort`](Self::reshare_abort)
/// forgets the change and keeps the old share.
pub trait Enclave {
    /// The backend's kind.
    fn kind(&self) -> EnclaveKind;
    /// Whether hardware protects this enclave's memory. `false` for the simulated backend, always.
    fn hardware_protected(&self) -> bool;
    /// The enclave's transport public key: peers seal sub-shares to it.
    fn transport_key(&mut self) -> Result<TransportPublicKey>;
    /// Evidence binding `report_data` (see [`crate::report_data`]).
    fn attest(&mut self, report_data: &ReportData) -> Result<Evidence>;
    /// Seals `plaintext` under `key_id` to this enclave's measurement and SVN.
    fn seal(&mut self, key_id: &KeyId, plaintext: &[u8]) -> Result<SealedBlob>;
    /// Unseals a blob sealed by this enclave (or an older SVN of it).
    fn unseal(&mut self, blob: &SealedBlob) -> Result<(KeyId, Zeroizing<Vec<u8>>)>;

    /// Draws the additive key share inside the enclave and returns its public-key share.
    fn generate_key_share(&mut self, setup: &SessionSetup) -> Result<PublicKeyShare>;
    /// Relinearisation-key round 1.
    fn relin_round1(&mut self) -> Result<Round1Share>;
    /// Rotation (Galois) key shares for `elements`, from the additive share.
    fn galois_key_share(&mut self, _elements: &[u32]) -> Result<GaloisKeyShare> {
        Err(Error::Unsupported(
            "rotation keys: not implemented by this backend",
        ))
    }
    /// Relinearisation-key round 2, from every participant's round-1 share.
    fn relin_round2(&mut self, round1: Vec<Round1Share>) -> Result<Round2Share>;
    /// Deals the additive share (and a mask) to every committee member, each sub-share sealed
    /// with HPKE to that member's transport key. The caller must have verified each key's
    /// evidence against its policy first.
    fn deal_thresholdization(
        &mut self,
        recipients: &[SealedRecipient],
    ) -> Result<Vec<(EvaluationPoint, SealedPayload)>>;
    /// Opens the sealed sub-shares addressed to this enclave and forms its Shamir key share.
    fn receive_thresholdization(&mut self, incoming: Vec<IncomingSubShare>) -> Result<()>;
    /// A flooded decryption share of `ciphertext` ([`ciphertext_bytes`]) for the active set.
    fn decryption_share(
        &mut self,
        set: &ActiveSet,
        ciphertext: &[u8],
        flooding: &Flooding,
    ) -> Result<DecryptionShare>;
    /// A flooded key-switch share of `ciphertext` to `recipient` (fhe.rs public-key bytes).
    fn key_switch_share(
        &mut self,
        set: &ActiveSet,
        ciphertext: &[u8],
        recipient: &[u8],
        flooding: &Flooding,
    ) -> Result<KeySwitchShare>;
    /// Prepares a session without drawing an additive share: for a member that joins the
    /// committee at a resharing (its `setup.committee` is the new committee).
    fn join_session(&mut self, _setup: &SessionSetup) -> Result<()> {
        Err(Error::Unsupported(
            "resharing: not implemented by this backend",
        ))
    }
    /// Resharing round 1 (dealer): deals this enclave's Shamir share and mask share for
    /// `proposal` as fresh degree-`(t'−1)` sharings, each member's values sealed to the transport
    /// key the caller verified for it.
    fn reshare_deal(
        &mut self,
        _proposal: &Proposal,
        _recipients: &[SealedRecipient],
    ) -> Result<ReshareDealt> {
        Err(Error::Unsupported(
            "resharing: not implemented by this backend",
        ))
    }
    /// Resharing round 2 (dealer): derives the Fiat–Shamir challenge from every dealer's
    /// commitments (which must include this dealer's own, unchanged) and responds.
    fn reshare_respond(&mut self, _commitments: &[Commitments]) -> Result<reshare::Response> {
        Err(Error::Unsupported(
            "resharing: not implemented by this backend",
        ))
    }
    /// Resharing round 3 (new member): opens its sealed sub-shares, checks them against the
    /// commitments and responses, and returns its complaints.
    fn reshare_receive(&mut self, _round: ReshareReceive) -> Result<Vec<Complaint>> {
        Err(Error::Unsupported(
            "resharing: not implemented by this backend",
        ))
    }
    /// Resharing round 4 (dealer): opens the values of the members that complained about it.
    fn reshare_open(&mut self, _complaints: &[Complaint]) -> Result<Vec<Opening>> {
        Err(Error::Unsupported(
            "resharing: not implemented by this backend",
        ))
    }
    /// Resharing round 5 (new member): judges the public messages and forms the new share,
    /// which stays pending until [`reshare_commit`](Self::reshare_commit).
    fn reshare_finish(
        &mut self,
        _complaints: &[Complaint],
        _openings: &[Opening],
    ) -> Result<Verdict> {
        Err(Error::Unsupported(
            "resharing: not implemented by this backend",
        ))
    }
    /// A decryption share made with the *pending* share, for the new committee's test decryption.
    fn reshare_test_decryption_share(
        &mut self,
        _set: &ActiveSet,
        _ciphertext: &[u8],
        _flooding: &Flooding,
    ) -> Result<DecryptionShare> {
        Err(Error::Unsupported(
            "resharing: not implemented by this backend",
        ))
    }
    /// The epoch certificate for `new_epoch` exists: a new member's pending share replaces its
    /// old one, a member that left erases its share. The caller is trusted to have checked the
    /// certificate (as it is trusted to verify evidence before dealing).
    fn reshare_commit(&mut self, _new_epoch: u64) -> Result<()> {
        Err(Error::Unsupported(
            "resharing: not implemented by this backend",
        ))
    }
    /// Forgets a resharing in progress; the current share stays.
    fn reshare_abort(&mut self) -> Result<()> {
        Err(Error::Unsupported(
            "resharing: not implemented by this backend",
        ))
    }
}

/// The key material of one participant in one session, and the operations on it. Backends keep
/// it inside their protected memory; it is never serialised.
pub struct KeyVault {
    transport: TransportKey,
    session: Option<SessionKeys>,
}

struct SessionKeys {
    setup: SessionSetup,
    params: Params,
    crs: CommonRandomness,
    /// The additive share: `None` for a member that joined at a resharing, and erased once a
    /// resharing commits (it is a share of the key that a later committee must not depend on).
    additive: Option<AdditiveKeyShare>,
    relin: Option<Round1Secret>,
    shamir: Option<(KeyShare, MaskShare)>,
    /// How many resharing responses have used the current mask share (sealed with the share,
    /// so a restart does not reset it).
    responses_with_mask: u32,
    reshare: ReshareState,
}

/// How many resharing responses one mask share may blind. Each response publishes
/// `κ·L` projections `π_k(M + γ_k·S)` of the mask share `M` and key share `S`; while fewer
/// than `N` such projections are public, `M` hides `S` perfectly, but a host that could make
/// the enclave respond again and again (aborting each attempt) would collect enough of them to
/// solve for `S`. A retry or two after an aborted change is normal; thousands are an attack.
pub const MAX_RESPONSES_PER_MASK: u32 = 8;

impl SessionKeys {
    /// A session for `setup` that holds no share yet.
    fn new(setup: &SessionSetup) -> Result<Self> {
        let params = Params::new(setup.parameter_set, setup.plaintext_bits)?
            .with_digit_primes(setup.relin_digit_primes, setup.rotation_digit_primes)?;
        let crs = CommonRandomness::new(&params, setup.session.0);
        Ok(Self {
            setup: setup.clone(),
            params,
            crs,
            additive: None,
            relin: None,
            shamir: None,
            responses_with_mask: 0,
            reshare: ReshareState::default(),
        })
    }

    /// The resharing proposal in progress.
    fn proposal(&self) -> Result<&Proposal> {
        self.reshare
            .proposal
            .as_ref()
            .ok_or_else(|| Error::State("no resharing in progress".into()))
    }

    fn additive(&self) -> Result<&AdditiveKeyShare> {
        self.additive.as_ref().ok_or_else(|| {
            Error::State("no additive share (joined at a resharing, or erased after one)".into())
        })
    }
}

/// A resharing in progress, as far as this enclave takes part in it.
#[derive(Default)]
struct ReshareState {
    proposal: Option<Proposal>,
    dealer: Option<DealerPhase>,
    member: Option<MemberPhase>,
    /// The new shares, until the epoch certificate exists.
    pending: Option<(KeyShare, MaskShare)>,
}

enum DealerPhase {
    /// Dealt; waits for the challenge. Keeps its own commitments to check the challenge's input.
    Dealt(DealerState, Commitments),
    /// Responded; keeps only the values sent, to open them if accused.
    Responded(OpeningState),
}

struct MemberPhase {
    commitments: Vec<Commitments>,
    responses: Vec<reshare::Response>,
    challenge: Challenge,
    state: MemberState,
}

/// What [`KeyVault::sealable_state`] serialises: the session set-up and the Shamir shares.
#[derive(Serialize, Deserialize)]
struct StoredShares {
    format: u16,
    setup: SessionSetup,
    shares: SealableShares,
    responses_with_mask: u32,
}

/// The format version of the sealed key-share state, its first field.
///
/// 2: the set-up names the key-switching digit sizes (protocol version 4).
/// State of format 1 is refused with a format error, not misread: postcard
/// is not self-describing, so the format is read before the rest.
pub const STORED_SHARES_FORMAT: u16 = 2;

impl fmt::Debug for KeyVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVault")
            .field("transport", self.transport.public_key())
            .field("session", &self.session.as_ref().map(|s| s.setup.session))
            .field("keys", &"[redacted]")
            .finish()
    }
}

impl Default for KeyVault {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyVault {
    /// A vault with a fresh transport key, born here.
    pub fn new() -> Self {
        Self {
            transport: TransportKey::generate(&mut rand::rng()),
            session: None,
        }
    }

    /// The transport public key.
    pub fn transport_key(&self) -> TransportPublicKey {
        *self.transport.public_key()
    }

    fn session(&mut self) -> Result<&mut SessionKeys> {
        self.session
            .as_mut()
            .ok_or_else(|| Error::State("no key share yet: call generate_key_share first".into()))
    }

    fn shamir(&mut self) -> Result<(&Params, &KeyShare)> {
        let s = self.session()?;
        match &s.shamir {
            Some((key, _)) => Ok((&s.params, key)),
            None => Err(Error::State(
                "no Shamir share yet: thresholdisation has not completed".into(),
            )),
        }
    }

    /// See [`Enclave::generate_key_share`].
    pub fn generate_key_share(&mut self, setup: &SessionSetup) -> Result<PublicKeyShare> {
        if self.session.as_ref().is_some_and(|s| s.shamir.is_some()) {
            return Err(Error::State(
                "this enclave already holds a Shamir key share: refusing to replace it".into(),
            ));
        }
        if !setup.committee.contains(setup.me) {
            return Err(Error::State(format!(
                "{} is not a member of the committee",
                setup.me
            )));
        }
        let mut keys = SessionKeys::new(setup)?;
        let mut rng = rand::rng();
        let additive = AdditiveKeyShare::generate(&keys.params, &mut rng)?;
        let share = synod_he::keygen::public_key_share(
            &keys.params,
            &keys.crs,
            &additive,
            setup.me,
            &mut rng,
        )?;
        keys.additive = Some(additive);
        self.session = Some(keys);
        Ok(share)
    }

    /// See [`Enclave::relin_round1`].
    pub fn relin_round1(&mut self) -> Result<Round1Share> {
        let s = self.session()?;
        let (secret, share) = synod_he::relin::round1(
            &s.params,
            &s.crs,
            s.additive()?,
            s.setup.me,
            &mut rand::rng(),
        )?;
        s.relin = Some(secret);
        Ok(share)
    }

    /// See [`Enclave::galois_key_share`].
    pub fn galois_key_share(&mut self, elements: &[u32]) -> Result<GaloisKeyShare> {
        let s = self.session()?;
        Ok(synod_he::galois::galois_key_share(
            &s.params,
            &s.crs,
            s.additive()?,
            elements,
            s.setup.me,
            &mut rand::rng(),
        )?)
    }

    /// See [`Enclave::relin_round2`].
    pub fn relin_round2(&mut self, round1: Vec<Round1Share>) -> Result<Round2Share> {
        let s = self.session()?;
        let secret = s
            .relin
            .take()
            .ok_or_else(|| Error::State("relinearisation round 1 has not run".into()))?;
        let aggregate =
            synod_he::relin::aggregate_round1(&s.params, s.setup.committee.members(), round1)?;
        Ok(synod_he::relin::round2(
            &s.params,
            secret,
            s.additive()?,
            &aggregate,
            s.setup.me,
            &mut rand::rng(),
        )?)
    }

    /// See [`Enclave::deal_thresholdization`].
    pub fn deal_thresholdization(
        &mut self,
        recipients: &[SealedRecipient],
    ) -> Result<Vec<(EvaluationPoint, SealedPayload)>> {
        let s = self.session()?;
        let mut rng = rand::rng();
        let subshares = synod_he::thresholdize::deal(
            &s.params,
            &s.setup.committee,
            s.additive()?,
            s.setup.me,
            &mut rng,
        )?;
        seal_each(&subshares, |sub| sub.recipient, recipients, &mut rng)
    }

    /// See [`Enclave::receive_thresholdization`].
    pub fn receive_thresholdization(&mut self, incoming: Vec<IncomingSubShare>) -> Result<()> {
        let mut subshares = Vec::with_capacity(incoming.len());
        for msg in &incoming {
            let plain = synod_proto::open(&msg.context, &self.transport, &msg.sealed)?;
            let sub: SubShare =
                postcard::from_bytes(&plain).map_err(|e| Error::Protocol(e.to_string()))?;
            if sub.sender.get() != msg.context.sender.get() {
                return Err(Error::Protocol(format!(
                    "sub-share from {} arrived in a message from participant {}",
                    sub.sender,
                    msg.context.sender.get()
                )));
            }
            subshares.push(sub);
        }
        let s = self.session()?;
        let shares =
            synod_he::thresholdize::receive(&s.params, &s.setup.committee, s.setup.me, subshares)?;
        s.shamir = Some(shares);
        Ok(())
    }

    /// See [`Enclave::decryption_share`].
    pub fn decryption_share(
        &mut self,
        set: &ActiveSet,
        ciphertext: &[u8],
        flooding: &Flooding,
    ) -> Result<DecryptionShare> {
        let (params, key) = self.shamir()?;
        decryption_share(params, key, set, ciphertext, flooding)
    }

    /// See [`Enclave::key_switch_share`].
    pub fn key_switch_share(
        &mut self,
        set: &ActiveSet,
        ciphertext: &[u8],
        recipient: &[u8],
        flooding: &Flooding,
    ) -> Result<KeySwitchShare> {
        let (params, key) = self.shamir()?;
        let ct = parse_ciphertext(params, ciphertext)?;
        let pk = PublicKey::from_bytes(recipient, params.bfv())
            .map_err(|e| Error::Protocol(format!("recipient key: {e}")))?;
        let rk = RecipientKey::new(params, &pk)?;
        Ok(synod_he::keyswitch::key_switch_share(
            params,
            key,
            set,
            &ct,
            &rk,
            flooding,
            &mut rand::rng(),
        )?)
    }

    /// See [`Enclave::join_session`].
    pub fn join_session(&mut self, setup: &SessionSetup) -> Result<()> {
        if self.session.is_some() {
            return Err(Error::State("this enclave already holds a session".into()));
        }
        if !setup.committee.contains(setup.me) {
            return Err(Error::State(format!(
                "{} is not a member of the committee it joins",
                setup.me
            )));
        }
        self.session = Some(SessionKeys::new(setup)?);
        Ok(())
    }

    /// See [`Enclave::reshare_deal`].
    pub fn reshare_deal(
        &mut self,
        proposal: &Proposal,
        recipients: &[SealedRecipient],
    ) -> Result<ReshareDealt> {
        let s = self.session()?;
        s.check_proposal(proposal)?;
        if s.reshare.dealer.is_some() {
            return Err(Error::State("this enclave has already dealt".into()));
        }
        let (key, mask) = s.shamir.as_ref().ok_or_else(|| {
            Error::State("no Shamir share to reshare: thresholdisation has not completed".into())
        })?;
        let mut rng = rand::rng();
        let (state, commitments, subs) = reshare::deal(&s.params, proposal, key, mask, &mut rng)?;
        let sealed = seal_each(&subs, |sub| sub.recipient, recipients, &mut rng)?;
        s.reshare.proposal = Some(proposal.clone());
        s.reshare.dealer = Some(DealerPhase::Dealt(state, commitments.clone()));
        Ok(ReshareDealt {
            commitments,
            sealed,
        })
    }

    /// See [`Enclave::reshare_respond`].
    pub fn reshare_respond(&mut self, commitments: &[Commitments]) -> Result<reshare::Response> {
        let s = self.session()?;
        let proposal = s.proposal()?.clone();
        let (state, mine) = match s.reshare.dealer.take() {
            Some(DealerPhase::Dealt(state, mine)) => (state, mine),
            other => {
                s.reshare.dealer = other;
                return Err(Error::State(
                    "this enclave has not dealt, or has already responded".into(),
                ));
            }
        };
        if !commitments.contains(&mine) {
            s.reshare.dealer = Some(DealerPhase::Dealt(state, mine));
            return Err(Error::Protocol(
                "the commitments to respond to do not include this dealer's own: refusing a \
                 challenge derived from other commitments"
                    .into(),
            ));
        }
        if s.responses_with_mask >= MAX_RESPONSES_PER_MASK {
            return Err(Error::State(format!(
                "this enclave's epoch-{} mask share has blinded {MAX_RESPONSES_PER_MASK} \
                 resharing responses already: another would start to reveal its key share",
                proposal.old_epoch
            )));
        }
        s.responses_with_mask = s.responses_with_mask.saturating_add(1);
        let challenge = Challenge::derive(&s.params, &proposal, commitments);
        let (opening, response) = state.respond(&s.params, &challenge)?;
        s.reshare.dealer = Some(DealerPhase::Responded(opening));
        Ok(response)
    }

    /// See [`Enclave::reshare_receive`].
    pub fn reshare_receive(&mut self, round: ReshareReceive) -> Result<Vec<Complaint>> {
        // A sub-share that does not open, or that names another dealer than the message it
        // came in, counts as missing: the member complains and the dealer must open it.
        let mut received = Vec::with_capacity(round.incoming.len());
        for msg in &round.incoming {
            let Ok(plain) = synod_proto::open(&msg.context, &self.transport, &msg.sealed) else {
                continue;
            };
            let Ok(sub) = postcard::from_bytes::<ReshareSubShare>(&plain) else {
                continue;
            };
            if sub.dealer.get() == msg.context.sender.get() {
                received.push(sub);
            }
        }
        let s = self.session()?;
        s.check_proposal(&round.proposal)?;
        if s.reshare.member.is_some() {
            return Err(Error::State(
                "this enclave has already checked its values".into(),
            ));
        }
        let challenge = Challenge::derive(&s.params, &round.proposal, &round.commitments);
        let (state, complaints) = reshare::check_dealings(
            &s.params,
            &round.proposal,
            s.setup.me,
            &round.commitments,
            &round.responses,
            &challenge,
            received,
        )?;
        s.reshare.proposal = Some(round.proposal);
        s.reshare.member = Some(MemberPhase {
            commitments: round.commitments,
            responses: round.responses,
            challenge,
            state,
        });
        Ok(complaints)
    }

    /// See [`Enclave::reshare_open`].
    ///
    /// The host relays the complaints, so the enclave does not take them on trust: it opens
    /// only for distinct accusers in the new committee, and opens nothing when more than
    /// `t'−1` of them accuse it. `t'` opened values would determine its degree-`(t'−1)`
    /// polynomial and so its share; an honest dealer faces at most `t'−1` false accusers, so
    /// a dealer with more complaints is excluded either way.
    pub fn reshare_open(&mut self, complaints: &[Complaint]) -> Result<Vec<Opening>> {
        let s = self.session()?;
        let me = s.setup.me;
        let proposal = s.proposal()?;
        let mut accusers: Vec<EvaluationPoint> = complaints
            .iter()
            .filter(|c| c.dealer == me && proposal.new.contains(c.accuser))
            .map(|c| c.accuser)
            .collect();
        accusers.sort();
        accusers.dedup();
        let limit = proposal.new.threshold().get().saturating_sub(1);
        let accepted: Vec<Complaint> = if accusers.len() > limit {
            Vec::new()
        } else {
            accusers
                .into_iter()
                .map(|accuser| Complaint {
                    accuser,
                    dealer: me,
                })
                .collect()
        };
        match s.reshare.dealer.take() {
            Some(DealerPhase::Responded(opening)) => Ok(opening.open(&accepted)),
            other => {
                s.reshare.dealer = other;
                Err(Error::State(
                    "this enclave has not responded, or has already opened".into(),
                ))
            }
        }
    }

    /// See [`Enclave::reshare_finish`].
    pub fn reshare_finish(
        &mut self,
        complaints: &[Complaint],
        openings: &[Opening],
    ) -> Result<Verdict> {
        let s = self.session()?;
        let proposal = s.proposal()?.clone();
        let member = s
            .reshare
            .member
            .take()
            .ok_or_else(|| Error::State("this enclave has not checked its values".into()))?;
        let verdict =
            match reshare::judge(
                &s.params,
                &proposal,
                &member.commitments,
                &member.responses,
                &member.challenge,
                complaints,
                openings,
            )? {
                Ok(v) => v,
                Err(reshare::Abort::ConstantTermUnattributable) => return Err(Error::Protocol(
                    "the resharing aborts: a dealer's constant term is not its share and too few \
                     dealers remain to tell which"
                        .into(),
                )),
                Err(reshare::Abort::TooFewDealers { qualified, blamed }) => {
                    return Err(Error::Protocol(format!(
                    "the resharing aborts: only {qualified} dealers qualified (blamed: {blamed:?})"
                )))
                }
            };
        let shares = member
            .state
            .finish(&s.params, &proposal, &verdict, openings)?;
        s.reshare.pending = Some(shares);
        Ok(verdict)
    }

    /// See [`Enclave::reshare_test_decryption_share`].
    pub fn reshare_test_decryption_share(
        &mut self,
        set: &ActiveSet,
        ciphertext: &[u8],
        flooding: &Flooding,
    ) -> Result<DecryptionShare> {
        let s = self.session()?;
        let (key, _) = s.reshare.pending.as_ref().ok_or_else(|| {
            Error::State("no pending share: the resharing has not finished".into())
        })?;
        decryption_share(&s.params, key, set, ciphertext, flooding)
    }

    /// See [`Enclave::reshare_commit`]. Returns whether this enclave still holds a share.
    pub fn reshare_commit(&mut self, new_epoch: u64) -> Result<bool> {
        let s = self.session()?;
        let proposal = s.proposal()?;
        if proposal.new_epoch() != new_epoch {
            return Err(Error::State(format!(
                "the resharing in progress is for epoch {}, not {new_epoch}",
                proposal.new_epoch()
            )));
        }
        let stays = proposal.new.contains(s.setup.me);
        if stays && s.reshare.pending.is_none() {
            return Err(Error::State(
                "no pending share to commit: the resharing has not finished here".into(),
            ));
        }
        let new_committee = proposal.new.clone();
        let state = std::mem::take(&mut s.reshare);
        // The old shares (and the additive share) are dropped, and so zeroized, here.
        s.additive = None;
        s.relin = None;
        s.shamir = state.pending;
        s.responses_with_mask = 0;
        if stays {
            s.setup.committee = new_committee;
        }
        Ok(stays)
    }

    /// See [`Enclave::reshare_abort`].
    pub fn reshare_abort(&mut self) -> Result<()> {
        if let Some(s) = self.session.as_mut() {
            s.reshare = ReshareState::default();
        }
        Ok(())
    }

    /// The session set-up and Shamir shares, serialised for sealing (`None` before
    /// thresholdisation, or after this enclave left the committee). **Secret.**
    pub fn sealable_state(&self) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let Some(s) = self.session.as_ref() else {
            return Ok(None);
        };
        let Some((key, mask)) = s.shamir.as_ref() else {
            return Ok(None);
        };
        let stored = StoredShares {
            format: STORED_SHARES_FORMAT,
            setup: s.setup.clone(),
            shares: SealableShares::new(key, mask)?,
            responses_with_mask: s.responses_with_mask,
        };
        Ok(Some(
            synod_proto::encode_secret(&stored, "key-share state")
                .map_err(|e| Error::Protocol(e.to_string()))?,
        ))
    }

    /// Restores what [`sealable_state`](Self::sealable_state) returned (after unsealing it).
    pub fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        if self.session.is_some() {
            return Err(Error::State("this enclave already holds a session".into()));
        }
        let (format, _) = postcard::take_from_bytes::<u16>(bytes)
            .map_err(|e| Error::SealedFormat(format!("key-share state: {e}")))?;
        if format != STORED_SHARES_FORMAT {
            return Err(Error::SealedFormat(format!(
                "key-share state format {format} (this enclave reads {STORED_SHARES_FORMAT})"
            )));
        }
        let stored: StoredShares = postcard::from_bytes(bytes)
            .map_err(|e| Error::SealedFormat(format!("key-share state: {e}")))?;
        if stored.shares.point() != stored.setup.me
            || stored.shares.committee() != &stored.setup.committee
        {
            return Err(Error::SealedFormat(
                "key-share state: the shares do not belong to the sealed set-up".into(),
            ));
        }
        let mut keys = SessionKeys::new(&stored.setup)?;
        keys.shamir = Some(stored.shares.shares(&keys.params)?);
        keys.responses_with_mask = stored.responses_with_mask;
        self.session = Some(keys);
        Ok(())
    }

    /// The epoch of the Shamir share held, if any.
    pub fn epoch(&self) -> Option<u64> {
        self.session
            .as_ref()
            .and_then(|s| s.shamir.as_ref())
            .map(|(k, _)| k.epoch())
    }
}

impl SessionKeys {
    fn check_proposal(&self, proposal: &Proposal) -> Result<()> {
        if proposal.session != self.setup.session.0 {
            return Err(Error::Protocol(
                "the resharing proposal is for another session".into(),
            ));
        }
        if let Some(current) = &self.reshare.proposal {
            if current != proposal {
                return Err(Error::Protocol(
                    "another resharing proposal is already in progress".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Seals each item to its recipient's transport key, with the recipient's context.
fn seal_each<T: Serialize>(
    items: &[T],
    recipient_of: impl Fn(&T) -> EvaluationPoint,
    recipients: &[SealedRecipient],
    rng: &mut impl rand::CryptoRng,
) -> Result<Vec<(EvaluationPoint, SealedPayload)>> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let point = recipient_of(item);
        let to = recipients
            .iter()
            .find(|r| r.point == point)
            .ok_or_else(|| Error::State(format!("no attested transport key for {point}")))?;
        let plain = synod_proto::encode_secret(item, "sealed item")
            .map_err(|e| Error::Protocol(e.to_string()))?;
        out.push((
            point,
            synod_proto::seal(&to.context, &to.transport_key, &plain, rng)?,
        ));
    }
    Ok(out)
}

/// A flooded decryption share of `ciphertext` ([`ciphertext_bytes`]) under `key`.
fn decryption_share(
    params: &Params,
    key: &KeyShare,
    set: &ActiveSet,
    ciphertext: &[u8],
    flooding: &Flooding,
) -> Result<DecryptionShare> {
    let ct = parse_ciphertext(params, ciphertext)?;
    Ok(synod_he::decrypt::decryption_share(
        params,
        key,
        set,
        &ct,
        flooding,
        &mut rand::rng(),
    )?)
}

/// Parses a ciphertext the host sent ([`ciphertext_bytes`]): a postcard
/// `WireCiphertext`, each polynomial checked as every received polynomial
/// is (level, length, residues below their primes) before any ring
/// operation. The host is untrusted: a malformed one is refused, never a
/// panic.
fn parse_ciphertext(params: &Params, bytes: &[u8]) -> Result<Ciphertext> {
    let refused = |e: String| Error::Protocol(format!("ciphertext from the host: {e}"));
    let wire: WireCiphertext = postcard::from_bytes(bytes).map_err(|e| refused(e.to_string()))?;
    let level = wire
        .polys
        .first()
        .map(|p| usize::from(p.level))
        .ok_or_else(|| refused("no polynomials".into()))?;
    // The host, not a participant, sent it: the parse needs a sender to
    // name, so keep only the reason (the point would be a made-up one).
    let host = EvaluationPoint::new(1).map_err(|e| refused(e.to_string()))?;
    wire.parse(params, level, host, "ciphertext")
        .map_err(|e| match e {
            synod_he::Error::Malformed { reason, .. } => refused(reason),
            other => refused(other.to_string()),
        })
}

/// Encodes a ciphertext for [`Enclave::decryption_share`]: a postcard
/// `WireCiphertext` (bit-packed NTT residues; fhe.rs's `to_bytes` took
/// about 3 ms and its parse 2 ms at N = 8192, without range checks).
pub fn ciphertext_bytes(params: &Params, ct: &Ciphertext) -> Result<Vec<u8>> {
    let wire = WireCiphertext::from_ciphertext(params, ct)?;
    postcard::to_stdvec(&wire).map_err(|e| Error::Protocol(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// The host's ciphertext bytes come back as the ciphertext; garbage, an
    /// unreduced residue or a third polynomial is refused, not a panic.
    #[test]
    fn host_ciphertexts_parse_or_are_refused() {
        use rand::{Rng, SeedableRng};
        use synod_he::ring::WirePoly;
        let params = Params::new(ParameterSet::InsecureTestN2048, 20).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(6);
        let me = EvaluationPoint::new(1).unwrap();
        for level in [0, 1] {
            let mut random_poly = || {
                let mut residues = Vec::new();
                for &q in params.moduli_at(level).unwrap() {
                    residues.extend((0..params.degree()).map(|_| rng.random_range(0..q)));
                }
                WirePoly {
                    level: level as u8,
                    residues,
                }
            };
            let polys = vec![random_poly(), random_poly()];
            let ct = WireCiphertext { polys }
                .parse(&params, level, me, "test")
                .unwrap();
            let bytes = ciphertext_bytes(&params, &ct).unwrap();
            assert_eq!(parse_ciphertext(&params, &bytes).unwrap(), ct);
            assert!(parse_ciphertext(&params, &bytes[..bytes.len() / 2]).is_err());
            assert!(parse_ciphertext(&params, b"not a ciphertext").is_err());
            let mut wire = WireCiphertext::from_ciphertext(&params, &ct).unwrap();
            wire.polys[0].residues[3] = params.moduli()[0];
            let err = parse_ciphertext(&params, &postcard::to_stdvec(&wire).unwrap()).unwrap_err();
            // The reason, and no participant blamed for the host's bytes.
            assert!(err.to_string().contains("not reduced"), "{err}");
            assert!(!err.to_string().contains("participant"), "{err}");
            wire.polys[0].residues[3] = 0;
            wire.polys.push(wire.polys[1].clone());
            assert!(parse_ciphertext(&params, &postcard::to_stdvec(&wire).unwrap()).is_err());
        }
    }
}
