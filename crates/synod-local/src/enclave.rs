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
//! Nothing here holds or adds key shares; the host sees only public shares and
//! sealed payloads. Resharing inside enclaves is not available (synod-tee's
//! enclaves return `Unsupported` for it).

#![cfg(feature = "tee")]

use std::collections::BTreeMap;

use fhe::bfv::{Ciphertext, PublicKey, RelinearizationKey};
use rand::{CryptoRng, RngCore};
use synod_circuit::{ColumnRef, EvaluatedOutputs, Evaluator, Plan};
use synod_he::crp::CommonRandomness;
use synod_he::flooding::Flooding;
use synod_he::galois::GaloisKeys;
use synod_he::shamir::ActiveSet;
use synod_he::{decrypt, galois, keygen, relin, Committee, EvaluationPoint, Params};
use synod_proto::{
    Epoch, MessageContext, ParticipantId, ProtocolName, Recipient, Round, SealedPayload,
    SequenceNumber, SessionId,
};
use synod_tee::enclave::{ciphertext_bytes, IncomingSubShare, SealedRecipient, SessionSetup};
use synod_tee::verify::verify_evidence;
use synod_tee::{Claims, Enclave, Policy, ReportDataInput, UnixTime};

use crate::relay::Relay;
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
    params: Params,
    committee: Committee,
    crs: CommonRandomness,
    enclaves: BTreeMap<EvaluationPoint, BoxedEnclave>,
    public_key: PublicKey,
    relin_key: RelinearizationKey,
    galois_key: Option<GaloisKeys>,
    relay: Relay,
    /// Claims of each peer's evidence as the first dealer verified them.
    claims: BTreeMap<EvaluationPoint, Claims>,
    /// Phases run so far.
    pub phases: Vec<Phase>,
}

impl std::fmt::Debug for EnclaveCommittee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnclaveCommittee")
            .field("members", &self.committee.members())
            .field("threshold", &self.committee.threshold())
            .finish_non_exhaustive()
    }
}

fn tee_err(who: EvaluationPoint, what: &str) -> impl Fn(synod_tee::Error) -> LocalError + '_ {
    move |e| LocalError::Other(format!("{who}'s enclave: {what}: {e}"))
}

fn participant(point: EvaluationPoint) -> Result<ParticipantId> {
    ParticipantId::new(point.get()).map_err(|e| LocalError::Other(e.to_string()))
}

/// The context a thresholdisation sub-share from `from` to `to` is sealed under
/// (HPKE associated data); the receiver rebuilds it, it never travels.
fn subshare_context(
    session: SessionId,
    from: EvaluationPoint,
    to: EvaluationPoint,
) -> Result<MessageContext> {
    Ok(MessageContext {
        session,
        epoch: Epoch(0),
        protocol: ProtocolName::Thresholdize,
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
                me: x,
                committee: committee.clone(),
            };
            let share = e
                .generate_key_share(&setup)
                .map_err(tee_err(x, "key generation"))?;
            messages.push((x, share));
        }
        let shares = relay.exchange(&members, ProtocolName::PublicKeyGen, 1, &messages)?;
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
            relay.exchange(&members, ProtocolName::RelinKeyGen, 1, &messages)?;
        let agg = relin::aggregate_round1(params, &members, round1.clone())?;
        let mut messages = Vec::new();
        for (&x, e) in enclaves.iter_mut() {
            let m = e
                .relin_round2(round1.clone())
                .map_err(tee_err(x, "relinearisation round 2"))?;
            messages.push((x, m));
        }
        let round2 = relay.exchange(&members, ProtocolName::RelinKeyGen, 2, &messages)?;
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
            let shares = relay.exchange(&members, ProtocolName::GaloisKeyGen, 1, &messages)?;
            let ek = galois::aggregate_galois_key_rows(params, &crs, &members, shares)?;
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
                    let c = verify_peer(dealer, peer, e.as_mut(), &transport_key, policy, rng)?;
                    claims.entry(peer).or_insert(c);
                }
                recipients.push(SealedRecipient {
                    point: peer,
                    transport_key,
                    context: subshare_context(session_id, dealer, peer)?,
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
        let mut inbox: BTreeMap<EvaluationPoint, Vec<IncomingSubShare>> =
            members.iter().map(|&m| (m, Vec::new())).collect();
        for (to, env) in &sealed {
            let (addressed, payload): (u32, SealedPayload) =
                relay.accept(*to, env, ProtocolName::Thresholdize, 1)?;
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
                    context: subshare_context(session_id, from, *to)?,
                    sealed: payload,
                });
        }
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
            params: params.clone(),
            committee,
            crs,
            enclaves,
            public_key: pk.key().clone(),
            relin_key,
            galois_key,
            relay,
            claims,
            phases,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The committee.
    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    /// The session's common randomness.
    pub fn crs(&self) -> &CommonRandomness {
        &self.crs
    }

    /// The collective public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// Each participant's verified claims (as its first verifier saw them).
    pub fn claims(&self) -> &BTreeMap<EvaluationPoint, Claims> {
        &self.claims
    }

    /// Gives the enclaves back (to shut them down).
    pub fn into_enclaves(self) -> BTreeMap<EvaluationPoint, BoxedEnclave> {
        self.enclaves
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
            &self.params,
            &self.public_key,
            &self.committee,
            &mut self.relay,
            columns,
            owners,
            rng,
        )
    }

    /// Evaluates `plan` on encrypted inputs (no key material involved).
    pub fn evaluate(
        &self,
        plan: &Plan,
        inputs: &BTreeMap<ColumnRef, Vec<Ciphertext>>,
    ) -> Result<EvaluatedOutputs> {
        let ev = Evaluator::new(plan, &self.relin_key, self.galois_key.as_ref())?;
        Ok(ev.evaluate(inputs)?)
    }

    /// Threshold decryption of `ct` by `active`: each active participant's
    /// enclave makes its flooded share; shares travel as signed broadcasts.
    pub fn decrypt(
        &mut self,
        active: &[EvaluationPoint],
        ct: &Ciphertext,
        flooding: &Flooding,
    ) -> Result<fhe::bfv::Plaintext> {
        let set = ActiveSet::new(&self.committee, active.iter().copied())?;
        let bytes = ciphertext_bytes(ct);
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
                .exchange(set.members(), ProtocolName::Decrypt, 1, &messages)?;
        Ok(decrypt::combine(&self.params, ct, &set, shares)?)
    }

    /// As [`LocalCommittee::decrypt_outputs`](crate::LocalCommittee::decrypt_outputs),
    /// with the shares made inside the active participants' enclaves.
    pub fn decrypt_outputs(
        &mut self,
        plan: &Plan,
        outputs: &EvaluatedOutputs,
        active: &[EvaluationPoint],
    ) -> Result<Vec<Vec<i128>>> {
        let params = self.params.clone();
        crate::decrypt_aggregates(&params, plan, outputs, |ct, flooding| {
            self.decrypt(active, ct, flooding)
        })
    }
}

/// `dealer` challenges `peer`'s enclave with a fresh nonce, verifies the
/// evidence and checks it against the policy; the error names both and the
/// violated claim.
fn verify_peer<R: RngCore + CryptoRng>(
    dealer: EvaluationPoint,
    peer: EvaluationPoint,
    enclave: &mut (dyn Enclave + Send),
    transport_key: &synod_proto::TransportPublicKey,
    policy: &SessionPolicy,
    rng: &mut R,
) -> Result<Claims> {
    let mut nonce = [0u8; 32];
    rng.fill_bytes(&mut nonce);
    let expected = ReportDataInput {
        nonce,
        transport_key: transport_key.to_bytes(),
        participant: peer.get(),
        epoch: 0,
    }
    .digest();
    let refuse = |why: String| {
        LocalError::Other(format!(
            "participant {dealer} refuses to send its thresholdisation sub-share to participant \
             {peer}: {why}"
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
