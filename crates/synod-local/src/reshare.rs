//! Drives a verifiable resharing `(t, A) → (t', B)` through the relay: the
//! proposal approved by `t` old members, the dealing, challenge, response,
//! complaint and opening rounds of [`synod_he::reshare`], the test decryption
//! of a transcript-derived ciphertext by the new committee, and the epoch
//! certificate signed by at least `t'` new members. Old shares are replaced
//! (and so erased) only once the certificate exists.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use rand::{CryptoRng, RngCore};
use serde::Serialize;
use synod_he::flooding::Flooding;
use synod_he::reshare::{
    self, Blame, Challenge, Commitments, Complaint, Opening, Proposal, Response,
};
use synod_he::{Committee, EvaluationPoint};
use synod_proto::{ProtocolName, SignedEnvelope};

use crate::{LocalCommittee, LocalError, Participant, Result};

/// Misbehaviour to inject into a resharing (tests and demonstrations).
#[derive(Clone, Debug, Default)]
pub struct ReshareFaults {
    /// Old members that approve the proposal (default: every dealer).
    pub approvers: Option<Vec<EvaluationPoint>>,
    /// `(dealer, victim)`: the dealer deals the victim values off its polynomial.
    pub inconsistent: Vec<(EvaluationPoint, EvaluationPoint)>,
    /// Dealers that deal `S_i + 1` instead of their share.
    pub wrong_constant: Vec<EvaluationPoint>,
    /// Dealers that say nothing.
    pub silent: Vec<EvaluationPoint>,
    /// `(accuser, dealer)`: complaints about correct values.
    pub false_accusations: Vec<(EvaluationPoint, EvaluationPoint)>,
    /// New members that never sign the epoch certificate.
    pub non_signers: Vec<EvaluationPoint>,
}

/// The signatures of the new committee over
/// `H(transcript ‖ Q ‖ B ‖ t' ‖ epoch)`.
#[derive(Clone, Debug)]
pub struct EpochCertificate {
    /// The digest signed.
    pub digest: [u8; 32],
    /// One envelope per signer, each binding the message context.
    pub signatures: Vec<SignedEnvelope>,
}

/// What one change of committee did.
#[derive(Clone, Debug, Serialize)]
pub struct EpochReport {
    /// The new epoch.
    pub epoch: u64,
    /// The new threshold.
    pub t: usize,
    /// The new committee's points.
    pub members: Vec<u32>,
    /// Qualified dealers.
    pub qualified: Vec<u32>,
    /// Named culprits.
    pub blamed: Vec<Blame>,
    /// Members of `B` that did not sign the certificate.
    pub absent: Vec<u32>,
    /// Wall-clock milliseconds.
    pub ms: f64,
    /// Envelope bytes sent, divided by the number of participants involved.
    pub bytes_per_member: u64,
    /// The certificate.
    #[serde(skip)]
    pub certificate: EpochCertificate,
}

/// Delivers a round of list-valued broadcasts, keeping only the items each
/// sender made in its own name (`author` says who an item speaks for).
pub(crate) fn deliver_own<T: serde::de::DeserializeOwned>(
    relay: &mut crate::relay::Relay,
    receivers: &[EvaluationPoint],
    envelopes: &[SignedEnvelope],
    round: u16,
    author: impl Fn(&T) -> EvaluationPoint,
) -> Result<Vec<T>> {
    let lists: Vec<Vec<T>> = relay.deliver(receivers, envelopes, ProtocolName::Reshare, round)?;
    Ok(lists
        .into_iter()
        .zip(envelopes)
        .flat_map(|(list, env)| {
            let sender = env.context().sender.get();
            list.into_iter()
                .filter(|item| author(item).get() == sender)
                .collect::<Vec<_>>()
        })
        .collect())
}

fn points(v: &[EvaluationPoint]) -> Vec<u32> {
    v.iter().map(|p| p.get()).collect()
}

/// `H(transcript ‖ Q ‖ B ‖ t' ‖ epoch)`, what the new committee signs for
/// the epoch certificate (in process and with enclaves alike).
pub(crate) fn certificate_digest(
    transcript: &[u8; 32],
    q: &[EvaluationPoint],
    b: &Committee,
    epoch: u64,
) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("synod/reshare/epoch-certificate/v1");
    h.update(transcript);
    for (tag, list) in [(b'Q', q), (b'B', b.members())] {
        h.update(&[tag]);
        h.update(&(list.len() as u64).to_le_bytes());
        for p in list {
            h.update(&p.get().to_le_bytes());
        }
    }
    h.update(&(b.threshold().get() as u64).to_le_bytes());
    h.update(&epoch.to_le_bytes());
    *h.finalize().as_bytes()
}

impl LocalCommittee {
    /// Changes the committee to `new_points` with threshold `t_new`, dealt by
    /// `dealers` (members of the current committee). On any failure the
    /// current shares are kept unchanged.
    pub fn reshare<R: RngCore + CryptoRng>(
        &mut self,
        new_points: &[EvaluationPoint],
        t_new: usize,
        dealers: &[EvaluationPoint],
        faults: &ReshareFaults,
        rng: &mut R,
    ) -> Result<EpochReport> {
        self.reshare_observed(new_points, t_new, dealers, faults, rng, &mut |_| {})
    }

    /// [`reshare`](Self::reshare), calling `stage(name)` as each stage ends
    /// (for timing; the dealing loop reports `"deal"`, `"seal"` and
    /// `"drop the values"` once per dealer).
    pub fn reshare_observed<R: RngCore + CryptoRng>(
        &mut self,
        new_points: &[EvaluationPoint],
        t_new: usize,
        dealers: &[EvaluationPoint],
        faults: &ReshareFaults,
        rng: &mut R,
        stage: &mut dyn FnMut(&'static str),
    ) -> Result<EpochReport> {
        let start = Instant::now();
        let params = self.keys.params.clone();
        let old_epoch = self
            .participants
            .first()
            .map(|p| p.key_share.epoch())
            .ok_or_else(|| LocalError::Other("empty committee".into()))?;
        let proposal = Proposal {
            session: *self.keys.crs.session(),
            old_epoch,
            old: self.keys.committee.clone(),
            new: Committee::new(new_points.iter().copied(), t_new)?,
            dealers: dealers.to_vec(),
        };
        proposal.check()?;
        let digest = proposal.digest();
        let mut relay = self.relay()?;
        let bytes_before = relay.bytes();
        for &p in proposal.new.members() {
            relay.register(p, rng)?;
        }

        // Round 0: approvals by at least t old members.
        let approvers = faults.approvers.clone().unwrap_or_else(|| dealers.to_vec());
        let mut envs = Vec::new();
        for &a in &approvers {
            envs.push(relay.broadcast(a, ProtocolName::Reshare, 0, &digest)?);
        }
        let old_members = proposal.old.members().to_vec();
        let approvals: Vec<[u8; 32]> =
            relay.deliver(&old_members, &envs, ProtocolName::Reshare, 0)?;
        let approved: BTreeSet<u32> = envs
            .iter()
            .zip(&approvals)
            .filter(|(e, d)| {
                **d == digest
                    && proposal
                        .old
                        .members()
                        .iter()
                        .any(|m| m.get() == e.context().sender.get())
            })
            .map(|(e, _)| e.context().sender.get())
            .collect();
        if approved.len() < proposal.old.threshold().get() {
            return Err(LocalError::Other(format!(
                "the proposal is approved by {} old members, it needs {}",
                approved.len(),
                proposal.old.threshold().get()
            )));
        }
        relay.end_round();

        stage("approval");
        // Round 1: commitments (broadcast) and values (sealed to each member).
        let receivers: Vec<EvaluationPoint> = proposal.new.members().to_vec();
        let mut everyone: Vec<EvaluationPoint> = old_members.clone();
        everyone.extend(receivers.iter().copied());
        everyone.sort();
        everyone.dedup();
        let mut states = BTreeMap::new();
        let mut commit_envs = Vec::new();
        let mut sealed: Vec<(EvaluationPoint, SignedEnvelope)> = Vec::new();
        for &d in dealers {
            if faults.silent.contains(&d) {
                continue;
            }
            let p = self
                .participants
                .iter()
                .find(|p| p.point() == d)
                .ok_or_else(|| LocalError::Other(format!("{d} holds no share")))?;
            let (state, commitments, subs) = deal(&params, &proposal, p, faults, d, rng)?;
            stage("deal");
            commit_envs.push(relay.broadcast(d, ProtocolName::Reshare, 1, &commitments)?);
            let messages: Vec<_> = subs.into_iter().map(|sub| (sub.recipient, sub)).collect();
            sealed.extend(relay.seal_many(d, &messages, ProtocolName::Reshare, 1, rng)?);
            stage("seal");
            drop(messages);
            stage("drop the values");
            states.insert(d, state);
        }
        let commitments: Vec<Commitments> =
            relay.deliver(&receivers, &commit_envs, ProtocolName::Reshare, 1)?;
        stage("deliver commitments");
        let mut inbox: BTreeMap<EvaluationPoint, Vec<reshare::ReshareSubShare>> =
            receivers.iter().map(|&r| (r, Vec::new())).collect();
        // Each envelope is dropped once opened, so its memory is reused by the
        // next one's decoding instead of fresh pages.
        for (to, env) in sealed {
            let sub = relay.accept_sealed(to, &env, ProtocolName::Reshare, 1)?;
            inbox.entry(to).or_default().push(sub);
        }
        relay.end_round();

        stage("deliver and open values");
        // Round 2: the challenge, and the dealers' responses.
        let challenge = Challenge::derive(&params, &proposal, &commitments);
        let mut resp_envs = Vec::new();
        let mut openers = BTreeMap::new();
        for (d, state) in states {
            let (opener, r) = state.respond(&params, &challenge)?;
            openers.insert(d, opener);
            resp_envs.push(relay.broadcast(d, ProtocolName::Reshare, 2, &r)?);
        }
        let responses: Vec<Response> =
            relay.deliver(&receivers, &resp_envs, ProtocolName::Reshare, 2)?;
        relay.end_round();

        stage("challenge and responses");
        // Round 3: every member checks its values (in parallel, as separate
        // members would) and complains.
        use rayon::prelude::*;
        let checked: Vec<(EvaluationPoint, reshare::MemberState, Vec<Complaint>)> =
            std::mem::take(&mut inbox)
                .into_par_iter()
                .map(|(me, received)| {
                    let (state, complaints) = reshare::check_dealings(
                        &params,
                        &proposal,
                        me,
                        &commitments,
                        &responses,
                        &challenge,
                        received,
                    )?;
                    Ok((me, state, complaints))
                })
                .collect::<Result<_>>()?;
        let mut members = BTreeMap::new();
        let mut complaint_envs = Vec::new();
        for (me, state, mut complaints) in checked {
            for &(accuser, dealer) in &faults.false_accusations {
                if accuser == me && !complaints.iter().any(|c| c.dealer == dealer) {
                    complaints.push(Complaint { accuser, dealer });
                }
            }
            if !complaints.is_empty() {
                complaint_envs.push(relay.broadcast(me, ProtocolName::Reshare, 3, &complaints)?);
            }
            members.insert(me, state);
        }
        // A member complains only in its own name.
        let complaints: Vec<Complaint> = deliver_own(
            &mut relay,
            &everyone,
            &complaint_envs,
            3,
            |c: &Complaint| c.accuser,
        )?;
        relay.end_round();

        stage("checks and complaints");
        // Round 4: accused dealers open the disputed values.
        let mut open_envs = Vec::new();
        for (d, opener) in openers {
            let openings = opener.open(&complaints);
            if !openings.is_empty() {
                open_envs.push(relay.broadcast(d, ProtocolName::Reshare, 4, &openings)?);
            }
        }
        // A dealer opens only its own values.
        let openings: Vec<Opening> =
            deliver_own(&mut relay, &everyone, &open_envs, 4, |o: &Opening| {
                o.subshare.dealer
            })?;
        relay.end_round();

        stage("openings");
        // Verdict, identical for everyone.
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
        let new_participants: Vec<Participant> = members
            .into_par_iter()
            .map(|(me, state)| {
                let (key_share, mask_share) =
                    state.finish(&params, &proposal, &verdict, &openings)?;
                Ok(Participant {
                    point: me,
                    key_share,
                    mask_share,
                })
            })
            .collect::<Result<_>>()?;

        stage("verdict and new shares");
        // Test decryption of a transcript-derived ciphertext by t' new members.
        let transcript = relay.transcript_hash();
        let (ct, expected) =
            reshare::test_ciphertext(&params, self.keys.public_key.key(), &transcript)?;
        let signers: Vec<EvaluationPoint> = receivers
            .iter()
            .copied()
            .filter(|p| !faults.non_signers.contains(p))
            .collect();
        if signers.len() < t_new {
            return Err(LocalError::Other(format!(
                "only {} of the new members are present to test-decrypt and sign the epoch \
                 certificate, {t_new} are needed; the current shares stay valid",
                signers.len()
            )));
        }
        let decryptors: Vec<EvaluationPoint> = signers.iter().copied().take(t_new).collect();
        let noise = synod_circuit::noise::NoiseModel::bound_bits(
            synod_circuit::noise::NoiseModel::new(&params, self.keys.committee.len()).fresh(),
        );
        let flooding = Flooding::new(&params, 0, noise, 1, t_new)?;
        relay.set_epoch(proposal.new_epoch());
        let values = crate::threshold_decrypt(
            &params,
            &proposal.new,
            &new_participants,
            &mut relay,
            &decryptors,
            &ct,
            &flooding,
            rng,
        )?;
        let p = params.plaintext() as i64;
        if values
            .iter()
            .map(|v| v.rem_euclid(p) as u64)
            .ne(expected.iter().copied())
        {
            relay.set_epoch(old_epoch);
            return Err(LocalError::Other(
                "the new committee's test decryption failed; the change is aborted".into(),
            ));
        }

        stage("test decryption");
        // Epoch certificate: at least t' signatures of B.
        let cert_digest = certificate_digest(
            &transcript,
            &verdict.qualified,
            &proposal.new,
            proposal.new_epoch(),
        );
        let mut cert_envs = Vec::new();
        for &s in &signers {
            cert_envs.push(relay.broadcast(s, ProtocolName::Reshare, 5, &cert_digest)?);
        }
        let signed: Vec<[u8; 32]> =
            relay.deliver(&receivers, &cert_envs, ProtocolName::Reshare, 5)?;
        relay.end_round();
        let valid = signed.iter().filter(|d| **d == cert_digest).count();
        if valid < t_new {
            relay.set_epoch(old_epoch);
            return Err(LocalError::Other(format!(
                "only {valid} of the new members signed the epoch certificate, {t_new} are needed"
            )));
        }
        let absent: Vec<u32> = receivers
            .iter()
            .filter(|p| !signers.contains(p))
            .map(|p| p.get())
            .collect();
        let bytes = relay.bytes() - bytes_before;
        drop(relay);

        stage("certificate");
        // Only now are the old shares erased (dropped, zeroizing) and replaced.
        let involved = everyone.len().max(1) as u64;
        self.participants = new_participants;
        self.keys.committee = proposal.new.clone();
        Ok(EpochReport {
            epoch: proposal.new_epoch(),
            t: t_new,
            members: points(proposal.new.members()),
            qualified: points(&verdict.qualified),
            blamed: verdict.blamed,
            absent,
            ms: start.elapsed().as_secs_f64() * 1000.0,
            bytes_per_member: bytes / involved,
            certificate: EpochCertificate {
                digest: cert_digest,
                signatures: cert_envs,
            },
        })
    }
}

#[cfg(feature = "insecure-test-params")]
fn deal<R: RngCore + CryptoRng>(
    params: &synod_he::Params,
    proposal: &Proposal,
    p: &Participant,
    faults: &ReshareFaults,
    d: EvaluationPoint,
    rng: &mut R,
) -> Result<(
    reshare::DealerState,
    Commitments,
    Vec<reshare::ReshareSubShare>,
)> {
    let cheat = if faults.wrong_constant.contains(&d) {
        reshare::Cheat::WrongConstant
    } else if let Some((_, victim)) = faults.inconsistent.iter().find(|(x, _)| *x == d) {
        reshare::Cheat::InconsistentFor(*victim)
    } else {
        reshare::Cheat::None
    };
    Ok(reshare::deal_cheating(
        params,
        proposal,
        &p.key_share,
        &p.mask_share,
        rng,
        cheat,
    )?)
}

#[cfg(not(feature = "insecure-test-params"))]
fn deal<R: RngCore + CryptoRng>(
    params: &synod_he::Params,
    proposal: &Proposal,
    p: &Participant,
    faults: &ReshareFaults,
    _d: EvaluationPoint,
    rng: &mut R,
) -> Result<(
    reshare::DealerState,
    Commitments,
    Vec<reshare::ReshareSubShare>,
)> {
    if !faults.wrong_constant.is_empty() || !faults.inconsistent.is_empty() {
        return Err(LocalError::Other(
            "cheating dealers exist only in test builds".into(),
        ));
    }
    Ok(reshare::deal(
        params,
        proposal,
        &p.key_share,
        &p.mask_share,
        rng,
    )?)
}
