//! An in-process committee whose key material lives in enclaves (feature `tee`).
//!
//! The orchestration is [`LocalCommittee`](crate::LocalCommittee)'s — the same
//! relay of signed envelopes, the same plan, evaluation and decryption checks —
//! but every operation that touches a participant's key runs behind that
//! participant's [`Enclave`]: the additive share, its public-key, relinearisation
//! and rotation-key shares, the thresholdisation sub-shares (sealed by the
//! dealer's enclave to the recipient enclave's attested transport key) and the
//! decryption shares. Before a dealer's enclave seals anything to a peer, the
//! dealer verifies the peer's evidence against the session's [`Policy`] with a
//! fresh nonce and refuses, naming the peer and the violated claim, if it fails.
//!
//! Resharing ([`EnclaveCommittee::reshare`]) mirrors
//! [`LocalCommittee::reshare`](crate::LocalCommittee::reshare) round by round,
//! with every secret-touching step of [`synod_he::reshare`] inside an enclave:
//! each dealer verifies each new member's evidence (bound to the new epoch)
//! before its enclave deals, sub-shares travel HPKE-sealed enclave to enclave,
//! each member's enclave checks its values and derives the challenge itself,
//! accused dealers' enclaves open, each member's enclave judges and keeps its
//! new share pending, the new committee test-decrypts with the pending shares,
//! and only once the epoch certificate exists does every enclave commit (a
//! member that leaves erases its share).
//!
//! Nothing here holds or adds key shares; the host sees only public shares and
//! sealed payloads.

#![cfg(feature = "tee")]

use std::collections::BTreeMap;

use fhe::bfv::Ciphertext;
use rand::{CryptoRng, RngCore};
use synod_circuit::{ColumnRef, EvaluatedOutputs, Plan};
use synod_he::crp::CommonRandomness;
use synod_he::flooding::Flooding;
use synod_he::reshare::{self, Complaint, Opening, Proposal};
use synod_he::shamir::ActiveSet;
use synod_he::{decrypt, galois, keygen, relin, Committee, EvaluationPoint, Params};
use synod_proto::{
    Epoch, MessageContext, ParticipantId, ProtocolName, Recipient, Round, SealedPayload,
    SequenceNumber, SessionId, SignedEnvelope,
};
use synod_tee::enclave::{
    ciphertext_bytes, IncomingSubShare, ReshareReceive, SealedRecipient, SessionSetup,
};
use synod_tee::verify::verify_evidence;
use synod_tee::{Claims, Enclave, Policy, ReportDataInput, UnixTime};

use crate::relay::Relay;
use crate::reshare::{certificate_digest, deliver_own, EpochCertificate, EpochReport};
use crate::SessionKeys;
use crate::{LocalError, Phase, PhaseClock, Result};

/// One participant's enclave, as the committee drives it.
pub type BoxedEnclave = Box<dyn Enclave + Send>;

/// What the session accepts from a peer's enclave and when it verifies it.
#[derive(Clone, Debug)]
pub struct SessionPolicy {
    /// The policy every dealer applies to every peer before dealing to it.
    pub policy: Policy,
    /// The time verifiers use (never the clock inside the verifier).
    pub now: UnixTime,
}

/// A set-up committee whose participants' key material lives in enclaves.
pub struct EnclaveCommittee {
    keys: SessionKeys,
    enclaves: BTreeMap<EvaluationPoint, BoxedEnclave>,
    relay: Relay,
    /// Claims of each peer's evidence as the first dealer verified them.
    claims: BTreeMap<EvaluationPoint, Claims>,
    /// The key epoch (0 after set-up; each resharing increments it).
    epoch: u64,
    /// Enclaves of members that left at a resharing (their shares erased).
    departed: BTreeMap<EvaluationPoint, BoxedEnclave>,
    /// Phases run so far.
    pub phases: Vec<Phase>,
}

/// Misbehaviour of a dealer's *host* to inject into a resharing through
/// enclaves (tests and demonstrations). The dealing itself runs in the
/// enclave, so what a cheating host can do is alter or withhold what it relays.
#[derive(Clone, Debug, Default)]
pub struct EnclaveReshareFaults {
    /// Dealers whose host alters one scalar of its enclave's round-2 response.
    pub tampered_responses: Vec<EvaluationPoint>,
    /// Dealers whose host relays nothing.
    pub silent: Vec<EvaluationPoint>,
}

impl std::fmt::Debug for EnclaveCommittee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnclaveCommittee")
            .field("members", &self.keys.committee.members())
            .field("threshold", &self.keys.committee.threshold())
            .finish_non_exhaustive()
    }
}

fn tee_err(who: EvaluationPoint, what: &str) -> impl Fn(synod_tee::Error) -> LocalError + '_ {
    move |e| LocalError::Other(format!("{who}'s enclave: {what}: {e}"))
}

fn participant(point: EvaluationPoint) -> Result<ParticipantId> {
    ParticipantId::new(point.get()).map_err(|e| LocalError::Other(e.to_string()))
}

/// Each receiver's sealed sub-shares of a round-1 exchange (`sealed`: the
/// recipient and the broadcast carrying `(recipient, sealed payload)`), with
/// the context each was sealed under, for its enclave to open. Every
/// envelope is verified by its recipient through `relay`; one addressed to
/// somebody else than the recipient it was delivered to is refused.
fn sealed_inboxes(
    relay: &mut Relay,
    receivers: &[EvaluationPoint],
    sealed: &[(EvaluationPoint, SignedEnvelope)],
    session: SessionId,
    protocol: ProtocolName,
    epoch: u64,
) -> Result<BTreeMap<EvaluationPoint, Vec<IncomingSubShare>>> {
    let mut inbox: BTreeMap<EvaluationPoint, Vec<IncomingSubShare>> =
        receivers.iter().map(|&r| (r, Vec::new())).collect();
    for (to, env) in sealed {
        let (addressed, payload): (u32, SealedPayload) = relay.accept(*to, env, protocol, 1)?;
        let from = EvaluationPoint::new(env.context().sender.get())?;
        if addressed != to.get() {
            return Err(LocalError::Other(format!(
                "{from} sent {to} a sub-share addressed to P{addressed}"
            )));
        }
        inbox
            .get_mut(to)
            .ok_or_else(|| LocalError::Other(format!("no inbox for {to}")))?
            .push(IncomingSubShare {
                context: subshare_context(session, protocol, epoch, from, *to)?,
                sealed: payload,
            });
    }
    Ok(inbox)
}

/// The context a sub-share from `from` to `to` is sealed under (HPKE
/// associated data) in round 1 of `protocol` at `epoch`: thresholdisation at
/// epoch 0, resharing at the new epoch. The receiver rebuilds it; it never
/// travels.
fn subshare_context(
    session: SessionId,
    protocol: ProtocolName,
    epoch: u64,
    from: EvaluationPoint,
    to: EvaluationPoint,
) -> Result<MessageContext> {
    Ok(MessageContext {
        session,
        epoch: Epoch(epoch),
        protocol,
        round: Round(1),
        sender: participant(from)?,
        recipient: Recipient::Participant(participant(to)?),
        sequence: SequenceNumber(u64::from(to.get())),
    })
}

impl EnclaveCommittee {
    /// Runs the whole set-up with each participant's key operations inside its
    /// enclave: collective public key, relinearisation key, rotation keys for
    /// `galois_elements` (none if empty), and thresholdisation to `t`, where each
    /// dealer first verifies each peer's evidence against `policy`.
    #[allow(clippy::too_many_arguments)]
    pub fn setup<R: RngCore + CryptoRng>(
        params: &Params,
        enclaves: Vec<(EvaluationPoint, BoxedEnclave)>,
        t: usize,
        session: [u8; 32],
        galois_elements: &[u32],
        policy: &SessionPolicy,
        rng: &mut R,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Self> {
        let mut enclaves: BTreeMap<EvaluationPoint, BoxedEnclave> = enclaves.into_iter().collect();
        let members: Vec<EvaluationPoint> = enclaves.keys().copied().collect();
        let committee = Committee::new(members.iter().copied(), t)?;
        let crs = CommonRandomness::new(params, session);
        let session_id = SessionId(session);
        let mut relay = Relay::new(&members, session, rng)?;
        let mut phases = Vec::new();
        let mut clock = PhaseClock::new(&relay);

        progress("key generation: additive shares born in each enclave, public key");
        let mut messages = Vec::new();
        for (&x, e) in enclaves.iter_mut() {
            let setup = SessionSetup {
                session: session_id,
                parameter_set: params.set(),
                plaintext_bits: params.plaintext_bits(),
                relin_digit_primes: params.relin_digit_primes(),
                rotation_digit_primes: params.rotation_digit_primes(),
                me: x,
                committee: committee.clone(),
            };
            let share = e
                .generate_key_share(&setup)
                .map_err(tee_err(x, "key generation"))?;
            messages.push((x, share));
        }
        let shares = relay.exchange(&members, ProtocolName::PublicKeyGen, 1, messages)?;
        let pk = keygen::aggregate_public_key(params, &crs, &members, shares)?;
        phases.push(clock.lap("public key", &relay));

        progress("relinearisation key: rounds 1 and 2 in the enclaves");
        let mut messages = Vec::new();
        for (&x, e) in enclaves.iter_mut() {
            let m = e
                .relin_round1()
                .map_err(tee_err(x, "relinearisation round 1"))?;
            messages.push((x, m));
        }
        let round1: Vec<relin::Round1Share> =
            relay.exchange(&members, ProtocolName::RelinKeyGen, 1, messages)?;
        let agg = relin::aggregate_round1(params, &members, round1.clone())?;
        let mut messages = Vec::new();
        for (&x, e) in enclaves.iter_mut() {
            let m = e
                .relin_round2(round1.clone())
                .map_err(tee_err(x, "relinearisation round 2"))?;
            messages.push((x, m));
        }
        let round2 = relay.exchange(&members, ProtocolName::RelinKeyGen, 2, messages)?;
        let relin_key = relin::relinearization_key(params, &agg, &members, round2)?;
        phases.push(clock.lap("relinearisation key", &relay));

        let galois_key = if galois_elements.is_empty() {
            None
        } else {
            progress("rotation keys in the enclaves");
            let mut messages = Vec::new();
            for (&x, e) in enclaves.iter_mut() {
                let share = e
                    .galois_key_share(galois_elements)
                    .map_err(tee_err(x, "rotation keys"))?;
                messages.push((x, share));
            }
            let shares = relay.exchange(&members, ProtocolName::GaloisKeyGen, 1, messages)?;
            let ek =
                galois::aggregate_galois_key_rows(params, &crs, &members, galois_elements, shares)?;
            phases.push(clock.lap("rotation keys", &relay));
            Some(ek)
        };

        progress("attestation: each dealer verifies each peer's evidence");
        let mut claims = BTreeMap::new();
        let mut recipients_of: BTreeMap<EvaluationPoint, Vec<SealedRecipient>> = BTreeMap::new();
        for &dealer in &members {
            let mut recipients = Vec::new();
            for &peer in &members {
                let e = enclaves
                    .get_mut(&peer)
                    .ok_or_else(|| LocalError::Other(format!("no enclave for {peer}")))?;
                let transport_key = e.transport_key().map_err(tee_err(peer, "transport key"))?;
                if peer != dealer {
                    let c = verify_peer(
                        dealer,
                        peer,
                        e.as_mut(),
                        &transport_key,
                        policy,
                        0,
                        "thresholdisation sub-share",
                        rng,
                    )?;
                    claims.entry(peer).or_insert(c);
                }
                recipients.push(SealedRecipient {
                    point: peer,
                    transport_key,
                    context: subshare_context(
                        session_id,
                        ProtocolName::Thresholdize,
                        0,
                        dealer,
                        peer,
                    )?,
                });
            }
            recipients_of.insert(dealer, recipients);
        }
        phases.push(clock.lap("attestation", &relay));

        progress("thresholdisation: sub-shares sealed enclave to enclave");
        let mut sealed = Vec::new();
        for (&x, e) in enclaves.iter_mut() {
            let recipients = recipients_of
                .get(&x)
                .ok_or_else(|| LocalError::Other(format!("no recipients for {x}")))?;
            for (to, payload) in e
                .deal_thresholdization(recipients)
                .map_err(tee_err(x, "thresholdisation deal"))?
            {
                sealed.push((
                    to,
                    relay.broadcast(x, ProtocolName::Thresholdize, 1, &(to.get(), payload))?,
                ));
            }
        }
        let inbox = sealed_inboxes(
            &mut relay,
            &members,
            &sealed,
            session_id,
            ProtocolName::Thresholdize,
            0,
        )?;
        relay.end_round();
        for (x, incoming) in inbox {
            enclaves
                .get_mut(&x)
                .ok_or_else(|| LocalError::Other(format!("no enclave for {x}")))?
                .receive_thresholdization(incoming)
                .map_err(tee_err(x, "thresholdisation receive"))?;
        }
        phases.push(clock.lap("thresholdisation", &relay));

        Ok(Self {
            keys: SessionKeys {
                params: params.clone(),
                committee,
                crs,
                public_key: pk,
                relin_key,
                galois_key,
            },
            enclaves,
            relay,
            claims,
            epoch: 0,
            departed: BTreeMap::new(),
            phases,
        })
    }

    /// The session's parameters, committee, common randomness and keys.
    pub fn keys(&self) -> &SessionKeys {
        &self.keys
    }

    /// Each participant's verified claims (as its first verifier saw them).
    pub fn claims(&self) -> &BTreeMap<EvaluationPoint, Claims> {
        &self.claims
    }

    /// Gives the enclaves back (to shut them down), those of departed members too.
    pub fn into_enclaves(self) -> BTreeMap<EvaluationPoint, BoxedEnclave> {
        let mut all = self.departed;
        all.extend(self.enclaves);
        all
    }

    /// The key epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The enclave of a current member, or of one that left.
    pub fn enclave_mut(&mut self, point: EvaluationPoint) -> Option<&mut BoxedEnclave> {
        match self.enclaves.get_mut(&point) {
            Some(e) => Some(e),
            None => self.departed.get_mut(&point),
        }
    }

    /// Bytes of signed envelopes the relay has carried so far.
    pub fn bytes_relayed(&self) -> u64 {
        self.relay.bytes()
    }

    /// As [`LocalCommittee::encrypt_inputs`](crate::LocalCommittee::encrypt_inputs):
    /// each owner encrypts its columns under the collective key and uploads them
    /// as a signed broadcast; the evaluator verifies and parses them.
    pub fn encrypt_inputs<R: RngCore + CryptoRng>(
        &mut self,
        columns: &BTreeMap<ColumnRef, Vec<i64>>,
        owners: &BTreeMap<String, EvaluationPoint>,
        rng: &mut R,
    ) -> Result<BTreeMap<ColumnRef, Vec<Ciphertext>>> {
        crate::upload_inputs(
            &self.keys.params,
            &self.keys.public_key,
            &self.keys.committee,
            &mut self.relay,
            columns,
            owners,
            rng,
        )
    }

    /// Threshold decryption of `ct` by `active`: each active participant's
    /// enclave makes its flooded share; shares travel as signed broadcasts.
    pub fn decrypt(
        &mut self,
        active: &[EvaluationPoint],
        ct: &Ciphertext,
        flooding: &Flooding,
    ) -> Result<fhe::bfv::Plaintext> {
        let (set, shares) = self.decryption_round(active, ct, flooding)?;
        Ok(decrypt::combine(&self.keys.params, ct, &set, shares)?)
    }

    /// The active participants' decryption shares of `ct`, made inside
    /// their enclaves and exchanged as signed broadcasts.
    fn decryption_round(
        &mut self,
        active: &[EvaluationPoint],
        ct: &Ciphertext,
        flooding: &Flooding,
    ) -> Result<(ActiveSet, Vec<decrypt::DecryptionShare>)> {
        let set = ActiveSet::new(&self.keys.committee, active.iter().copied())?;
        let bytes = ciphertext_bytes(&self.keys.params, ct)
            .map_err(|e| LocalError::Other(format!("encoding the ciphertext: {e}")))?;
        let mut messages = Vec::new();
        for &x in set.members() {
            let e = self
                .enclaves
                .get_mut(&x)
                .ok_or_else(|| LocalError::Other(format!("{x} is not a participant")))?;
            let share = e
                .decryption_share(&set, &bytes, flooding)
                .map_err(tee_err(x, "decryption share"))?;
            messages.push((x, share));
        }
        let shares: Vec<decrypt::DecryptionShare> =
            self.relay
                .exchange(set.members(), ProtocolName::Decrypt, 1, messages)?;
        Ok((set, shares))
    }

    /// As [`LocalCommittee::decrypt_outputs`](crate::LocalCommittee::decrypt_outputs),
    /// with the shares made inside the active participants' enclaves.
    pub fn decrypt_outputs(
        &mut self,
        plan: &Plan,
        outputs: &EvaluatedOutputs,
        active: &[EvaluationPoint],
    ) -> Result<Vec<Vec<i128>>> {
        let params = self.keys.params.clone();
        crate::decrypt_aggregates(&params, plan, outputs, |ct, flooding, readout| {
            // The enclaves hash the ciphertext they are given themselves;
            // the combination reuses the digest of the output check.
            let (set, shares) = self.decryption_round(active, ct.ciphertext(), flooding)?;
            Ok(decrypt::combine_signed_as(
                &params, ct, &set, shares, readout,
            )?)
        })
    }
}

impl EnclaveCommittee {
    /// Changes the committee to `new_points` with threshold `t_new`, dealt by
    /// `dealers`, with every share inside an enclave. `joiners` are the
    /// enclaves of new members that are not in the current committee. Each
    /// dealer verifies each new member's evidence against `policy` (report data
    /// bound to the new epoch) before its enclave deals. On any failure every
    /// enclave forgets the change and the current shares stay valid.
    #[allow(clippy::too_many_arguments)]
    pub fn reshare<R: RngCore + CryptoRng>(
        &mut self,
        joiners: Vec<(EvaluationPoint, BoxedEnclave)>,
        new_points: &[EvaluationPoint],
        t_new: usize,
        dealers: &[EvaluationPoint],
        policy: &SessionPolicy,
        faults: &EnclaveReshareFaults,
        rng: &mut R,
    ) -> Result<EpochReport> {
        let old_epoch = self.epoch;
        let joined: Vec<EvaluationPoint> = joiners.iter().map(|(p, _)| *p).collect();
        for p in &joined {
            if self.enclaves.contains_key(p) || self.departed.contains_key(p) {
                return Err(LocalError::Other(format!(
                    "{p} is or was a member: it cannot join with a new enclave"
                )));
            }
            if !new_points.contains(p) {
                return Err(LocalError::Other(format!(
                    "{p} brings an enclave but is not in the new committee"
                )));
            }
        }
        self.enclaves.extend(joiners);
        let result = self.reshare_inner(new_points, t_new, dealers, policy, faults, rng);
        // Once the epoch certificate exists and commits have begun there is no way back.
        if result.is_err() && self.epoch == old_epoch {
            for e in self.enclaves.values_mut() {
                let _ = e.reshare_abort();
            }
            for p in &joined {
                self.enclaves.remove(p);
            }
            self.relay.set_epoch(old_epoch);
        }
        result
    }

    #[allow(clippy::too_many_lines)]
    fn reshare_inner<R: RngCore + CryptoRng>(
        &mut self,
        new_points: &[EvaluationPoint],
        t_new: usize,
        dealers: &[EvaluationPoint],
        policy: &SessionPolicy,
        faults: &EnclaveReshareFaults,
        rng: &mut R,
    ) -> Result<EpochReport> {
        let start = std::time::Instant::now();
        let params = self.keys.params.clone();
        let session = SessionId(*self.keys.crs.session());
        let proposal = Proposal {
            session: session.0,
            old_epoch: self.epoch,
            old: self.keys.committee.clone(),
            new: Committee::new(new_points.iter().copied(), t_new)?,
            dealers: dealers.to_vec(),
        };
        proposal.check()?;
        let new_epoch = proposal.new_epoch();
        let digest = proposal.digest();
        let receivers: Vec<EvaluationPoint> = proposal.new.members().to_vec();
        let old_members: Vec<EvaluationPoint> = proposal.old.members().to_vec();
        let mut everyone = old_members.clone();
        everyone.extend(receivers.iter().copied());
        everyone.sort();
        everyone.dedup();
        for &p in &everyone {
            if !self.enclaves.contains_key(&p) {
                return Err(LocalError::Other(format!(
                    "{p} has no enclave (a joining member must bring one)"
                )));
            }
        }
        let bytes_before = self.relay.bytes();
        for &p in &receivers {
            self.relay.register(p, rng)?;
            if !proposal.old.contains(p) {
                let setup = SessionSetup {
                    session,
                    parameter_set: params.set(),
                    plaintext_bits: params.plaintext_bits(),
                    relin_digit_primes: params.relin_digit_primes(),
                    rotation_digit_primes: params.rotation_digit_primes(),
                    me: p,
                    committee: proposal.new.clone(),
                };
                self.enclave(p)?
                    .join_session(&setup)
                    .map_err(tee_err(p, "joining the session"))?;
            }
        }

        // Round 0: every dealer approves the proposal (at least t old members).
        let mut envs = Vec::new();
        for &d in dealers {
            envs.push(self.relay.broadcast(d, ProtocolName::Reshare, 0, &digest)?);
        }
        let approvals: Vec<[u8; 32]> =
            self.relay
                .deliver(&old_members, &envs, ProtocolName::Reshare, 0)?;
        let approved = approvals.iter().filter(|d| **d == digest).count();
        if approved < proposal.old.threshold().get() {
            return Err(LocalError::Other(format!(
                "the proposal is approved by {approved} old members, it needs {}",
                proposal.old.threshold().get()
            )));
        }
        self.relay.end_round();

        // Attestation: each dealer verifies each new member's evidence.
        let mut recipients_of: BTreeMap<EvaluationPoint, Vec<SealedRecipient>> = BTreeMap::new();
        let mut transport_keys = BTreeMap::new();
        for &m in &receivers {
            let k = self
                .enclave(m)?
                .transport_key()
                .map_err(tee_err(m, "transport key"))?;
            transport_keys.insert(m, k);
        }
        for &dealer in dealers {
            let mut recipients = Vec::new();
            for (&peer, transport_key) in &transport_keys {
                if peer != dealer {
                    let e = self.enclave(peer)?;
                    let c = verify_peer(
                        dealer,
                        peer,
                        e.as_mut(),
                        transport_key,
                        policy,
                        new_epoch,
                        "resharing sub-share",
                        rng,
                    )?;
                    self.claims.entry(peer).or_insert(c);
                }
                recipients.push(SealedRecipient {
                    point: peer,
                    transport_key: *transport_key,
                    context: subshare_context(
                        session,
                        ProtocolName::Reshare,
                        new_epoch,
                        dealer,
                        peer,
                    )?,
                });
            }
            recipients_of.insert(dealer, recipients);
        }

        // Round 1: each dealer's enclave deals; commitments are broadcast and
        // each member's values travel sealed to its enclave.
        let mut commit_envs = Vec::new();
        let mut sealed = Vec::new();
        for &d in dealers {
            if faults.silent.contains(&d) {
                continue;
            }
            let recipients = recipients_of
                .get(&d)
                .ok_or_else(|| LocalError::Other(format!("no recipients for {d}")))?;
            let dealt = self
                .enclave(d)?
                .reshare_deal(&proposal, recipients)
                .map_err(tee_err(d, "resharing deal"))?;
            commit_envs.push(self.relay.broadcast(
                d,
                ProtocolName::Reshare,
                1,
                &dealt.commitments,
            )?);
            for (to, payload) in dealt.sealed {
                sealed.push((
                    to,
                    self.relay
                        .broadcast(d, ProtocolName::Reshare, 1, &(to.get(), payload))?,
                ));
            }
        }
        let commitments: Vec<reshare::Commitments> =
            self.relay
                .deliver(&receivers, &commit_envs, ProtocolName::Reshare, 1)?;
        let inbox = sealed_inboxes(
            &mut self.relay,
            &receivers,
            &sealed,
            session,
            ProtocolName::Reshare,
            new_epoch,
        )?;
        self.relay.end_round();

        // Round 2: each dealer's enclave derives the challenge and responds.
        let mut resp_envs = Vec::new();
        for &d in dealers {
            if faults.silent.contains(&d) {
                continue;
            }
            let mut response = self
                .enclave(d)?
                .reshare_respond(&commitments)
                .map_err(tee_err(d, "resharing response"))?;
            if faults.tampered_responses.contains(&d) {
                if let Some(v) = response.key_poly.get_mut(1).and_then(|c| c.first_mut()) {
                    *v = v.saturating_sub(1);
                }
            }
            resp_envs.push(
                self.relay
                    .broadcast(d, ProtocolName::Reshare, 2, &response)?,
            );
        }
        let responses: Vec<reshare::Response> =
            self.relay
                .deliver(&receivers, &resp_envs, ProtocolName::Reshare, 2)?;
        self.relay.end_round();

        // Round 3: each member's enclave opens and checks its values.
        let mut complaint_envs = Vec::new();
        for (me, incoming) in inbox {
            let complaints = self
                .enclave(me)?
                .reshare_receive(ReshareReceive {
                    proposal: proposal.clone(),
                    commitments: commitments.clone(),
                    responses: responses.clone(),
                    incoming,
                })
                .map_err(tee_err(me, "resharing check"))?;
            if !complaints.is_empty() {
                complaint_envs.push(self.relay.broadcast(
                    me,
                    ProtocolName::Reshare,
                    3,
                    &complaints,
                )?);
            }
        }
        let complaints: Vec<Complaint> = deliver_own(
            &mut self.relay,
            &everyone,
            &complaint_envs,
            3,
            |c: &Complaint| c.accuser,
        )?;
        self.relay.end_round();

        // Round 4: accused dealers' enclaves open the disputed values.
        let mut open_envs = Vec::new();
        for &d in dealers {
            if faults.silent.contains(&d) {
                continue;
            }
            let openings = self
                .enclave(d)?
                .reshare_open(&complaints)
                .map_err(tee_err(d, "resharing opening"))?;
            if !openings.is_empty() {
                open_envs.push(
                    self.relay
                        .broadcast(d, ProtocolName::Reshare, 4, &openings)?,
                );
            }
        }
        let openings: Vec<Opening> =
            deliver_own(&mut self.relay, &everyone, &open_envs, 4, |o: &Opening| {
                o.subshare.dealer
            })?;
        self.relay.end_round();

        // Verdict: the host judges the public messages, and so does every
        // member's enclave before it forms its (pending) new share.
        let challenge = reshare::Challenge::derive(&params, &proposal, &commitments);
        let verdict = match reshare::judge(
            &params,
            &proposal,
            &commitments,
            &responses,
            &challenge,
            &complaints,
            &openings,
        )? {
            Ok(v) => v,
            Err(abort) => return Err(LocalError::Other(abort.to_string())),
        };
        for &m in &receivers {
            let theirs = self
                .enclave(m)?
                .reshare_finish(&complaints, &openings)
                .map_err(tee_err(m, "resharing finish"))?;
            if theirs != verdict {
                return Err(LocalError::Other(format!(
                    "{m}'s enclave reached another verdict than the host"
                )));
            }
        }

        // Test decryption of a transcript-derived ciphertext with the pending shares.
        let transcript = self.relay.transcript_hash();
        let (ct, expected) =
            reshare::test_ciphertext(&params, self.keys.public_key.key(), &transcript)?;
        let decryptors: Vec<EvaluationPoint> = receivers.iter().copied().take(t_new).collect();
        let noise = synod_circuit::noise::NoiseModel::bound_bits(
            synod_circuit::noise::NoiseModel::new(&params, self.keys.committee.len()).fresh(),
        );
        let flooding = Flooding::new(&params, 0, noise, 1, t_new)?;
        self.relay.set_epoch(new_epoch);
        let set = ActiveSet::new(&proposal.new, decryptors.iter().copied())?;
        let bytes = ciphertext_bytes(&params, &ct)
            .map_err(|e| LocalError::Other(format!("encoding the ciphertext: {e}")))?;
        let mut messages = Vec::new();
        for &x in set.members() {
            let share = self
                .enclave(x)?
                .reshare_test_decryption_share(&set, &bytes, &flooding)
                .map_err(tee_err(x, "test decryption share"))?;
            messages.push((x, share));
        }
        let shares: Vec<decrypt::DecryptionShare> =
            self.relay
                .exchange(set.members(), ProtocolName::Decrypt, 1, messages)?;
        let pt = decrypt::combine(&params, &ct, &set, shares)?;
        let values = synod_he::encoding::decode_signed(&params, &pt)?;
        let p = params.plaintext() as i64;
        if values
            .iter()
            .map(|v| v.rem_euclid(p) as u64)
            .ne(expected.iter().copied())
        {
            return Err(LocalError::Other(
                "the new committee's test decryption failed; the change is aborted".into(),
            ));
        }

        // Epoch certificate: every new member signs.
        let cert_digest =
            certificate_digest(&transcript, &verdict.qualified, &proposal.new, new_epoch);
        let mut cert_envs = Vec::new();
        for &s in &receivers {
            cert_envs.push(
                self.relay
                    .broadcast(s, ProtocolName::Reshare, 5, &cert_digest)?,
            );
        }
        let signed: Vec<[u8; 32]> =
            self.relay
                .deliver(&receivers, &cert_envs, ProtocolName::Reshare, 5)?;
        self.relay.end_round();
        let valid = signed.iter().filter(|d| **d == cert_digest).count();
        if valid < t_new {
            return Err(LocalError::Other(format!(
                "only {valid} of the new members signed the epoch certificate, {t_new} are needed"
            )));
        }

        // Only now does every enclave commit: new shares replace old ones, and
        // members that leave erase theirs.
        let mut failed = Vec::new();
        for &p in &everyone {
            if let Err(e) = self.enclave(p)?.reshare_commit(new_epoch) {
                failed.push(format!("{p}: {e}"));
            }
        }
        for &p in &old_members {
            if !proposal.new.contains(p) {
                if let Some(e) = self.enclaves.remove(&p) {
                    self.departed.insert(p, e);
                }
            }
        }
        self.keys.committee = proposal.new.clone();
        self.epoch = new_epoch;
        if !failed.is_empty() {
            return Err(LocalError::Other(format!(
                "epoch {new_epoch} is certified, but some enclaves did not commit (retry \
                 reshare_commit on them): {}",
                failed.join("; ")
            )));
        }
        let bytes = self.relay.bytes() - bytes_before;
        let involved = everyone.len().max(1) as u64;
        let points = |v: &[EvaluationPoint]| v.iter().map(|p| p.get()).collect::<Vec<_>>();
        Ok(EpochReport {
            epoch: new_epoch,
            t: t_new,
            members: points(proposal.new.members()),
            qualified: points(&verdict.qualified),
            blamed: verdict.blamed,
            absent: Vec::new(),
            ms: start.elapsed().as_secs_f64() * 1000.0,
            bytes_per_member: bytes / involved,
            certificate: EpochCertificate {
                digest: cert_digest,
                signatures: cert_envs,
            },
        })
    }

    fn enclave(&mut self, p: EvaluationPoint) -> Result<&mut BoxedEnclave> {
        self.enclaves
            .get_mut(&p)
            .ok_or_else(|| LocalError::Other(format!("no enclave for {p}")))
    }
}

/// `dealer` challenges `peer`'s enclave with a fresh nonce, verifies the
/// evidence and checks it against the policy; the error names both and the
/// violated claim.
#[allow(clippy::too_many_arguments)]
fn verify_peer<R: RngCore + CryptoRng>(
    dealer: EvaluationPoint,
    peer: EvaluationPoint,
    enclave: &mut (dyn Enclave + Send),
    transport_key: &synod_proto::TransportPublicKey,
    policy: &SessionPolicy,
    epoch: u64,
    what: &str,
    rng: &mut R,
) -> Result<Claims> {
    let mut nonce = [0u8; 32];
    rng.fill_bytes(&mut nonce);
    let expected = ReportDataInput {
        nonce,
        transport_key: transport_key.to_bytes(),
        participant: peer.get(),
        epoch,
    }
    .digest();
    let refuse = |why: String| {
        LocalError::Other(format!(
            "participant {dealer} refuses to send its {what} to participant {peer}: {why}"
        ))
    };
    let evidence = enclave
        .attest(&expected)
        .map_err(|e| refuse(format!("no evidence: {e}")))?;
    let claims = verify_evidence(&evidence, policy.now)
        .map_err(|e| refuse(format!("evidence does not verify: {e}")))?;
    policy
        .policy
        .check(&claims, &expected)
        .map_err(|v| refuse(format!("policy violation: {v}")))?;
    Ok(claims)
}
