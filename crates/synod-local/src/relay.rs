//! The in-memory relay: every protocol message of the simulation travels as a
//! `synod-proto` [`SignedEnvelope`] bound to its [`MessageContext`], and every
//! point-to-point secret (a thresholdisation sub-share) is sealed with HPKE to
//! the recipient's transport key with that context as associated data. Each
//! receiver verifies the signature, the context (session, epoch, protocol,
//! round, sender, recipient), the previous-round hash and freshness before it
//! decodes the payload, exactly as a networked node will.
//!
//! All honest participants see the same messages, so one [`Transcript`]
//! stands for each participant's own copy.

use std::collections::BTreeMap;

use rand::{CryptoRng, RngCore};
use serde::{de::DeserializeOwned, Serialize};
use synod_he::EvaluationPoint;
use synod_proto::{
    Epoch, ExpectedContext, IdentityKey, IdentityPublicKey, MessageContext, ParticipantId,
    ProtocolName, Recipient, ReplayGuard, Round, SealedPayload, SequenceNumber, SessionId,
    SignedEnvelope, Transcript, TransportKey, TransportPublicKey, Verified,
};

use crate::{LocalError, Result};

struct Member {
    id: ParticipantId,
    identity: IdentityKey,
    transport: TransportKey,
    next_sequence: u64,
    guard: ReplayGuard,
}

/// Moves signed messages between simulated participants and counts bytes.
pub(crate) struct Relay {
    session: SessionId,
    epoch: Epoch,
    transcript: Transcript,
    members: BTreeMap<EvaluationPoint, Member>,
    directory: BTreeMap<ParticipantId, (IdentityPublicKey, TransportPublicKey)>,
    /// Contexts already recorded in this round's transcript: every receiver
    /// records what it accepts, and all of them record the same messages.
    recorded: std::collections::BTreeSet<[u8; MessageContext::ENCODED_LEN]>,
    bytes: u64,
    /// The size of the last broadcast payload per protocol, round and
    /// message type: the next one (the same shape from another sender) is
    /// encoded into a buffer of that size instead of one grown by doubling
    /// (each regrowth copies the bytes and touches fresh pages).
    size_hints: BTreeMap<(ProtocolName, u16, &'static str), usize>,
}

fn id_of(point: EvaluationPoint) -> Result<ParticipantId> {
    ParticipantId::new(point.get()).map_err(|e| LocalError::Other(e.to_string()))
}

impl Relay {
    /// Registers every participant with fresh identity and transport keys.
    pub(crate) fn new<R: RngCore + CryptoRng>(
        points: &[EvaluationPoint],
        session: [u8; 32],
        rng: &mut R,
    ) -> Result<Self> {
        let mut members = BTreeMap::new();
        let mut directory = BTreeMap::new();
        for &p in points {
            let id = id_of(p)?;
            let identity = IdentityKey::generate(rng);
            let transport = TransportKey::generate(rng);
            directory.insert(id, (identity.public_key(), *transport.public_key()));
            members.insert(
                p,
                Member {
                    id,
                    identity,
                    transport,
                    next_sequence: 0,
                    guard: ReplayGuard::new(),
                },
            );
        }
        let session = SessionId(session);
        Ok(Self {
            session,
            epoch: Epoch(0),
            transcript: Transcript::new(session),
            members,
            directory,
            recorded: std::collections::BTreeSet::new(),
            bytes: 0,
            size_hints: BTreeMap::new(),
        })
    }

    /// Registers a new participant (a member joining at a resharing).
    pub(crate) fn register<R: RngCore + CryptoRng>(
        &mut self,
        point: EvaluationPoint,
        rng: &mut R,
    ) -> Result<()> {
        if self.members.contains_key(&point) {
            return Ok(());
        }
        let id = id_of(point)?;
        let identity = IdentityKey::generate(rng);
        let transport = TransportKey::generate(rng);
        self.directory
            .insert(id, (identity.public_key(), *transport.public_key()));
        self.members.insert(
            point,
            Member {
                id,
                identity,
                transport,
                next_sequence: 0,
                guard: ReplayGuard::new(),
            },
        );
        Ok(())
    }

    /// Moves to `epoch`: later messages carry it in their context.
    pub(crate) fn set_epoch(&mut self, epoch: u64) {
        self.epoch = Epoch(epoch);
    }

    /// The transcript hash so far (all closed rounds).
    pub(crate) fn transcript_hash(&self) -> [u8; 32] {
        self.transcript.round_hash().0
    }

    /// Bytes of envelopes sent so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    fn context(
        &mut self,
        from: EvaluationPoint,
        protocol: ProtocolName,
        round: u16,
        recipient: Recipient,
    ) -> Result<MessageContext> {
        let session = self.session;
        let epoch = self.epoch;
        let m = self
            .members
            .get_mut(&from)
            .ok_or_else(|| LocalError::Other(format!("{from} is not registered")))?;
        let sequence = SequenceNumber(m.next_sequence);
        m.next_sequence += 1;
        Ok(MessageContext {
            session,
            epoch,
            protocol,
            round: Round(round),
            sender: m.id,
            recipient,
            sequence,
        })
    }

    /// `from` signs `msg` for everyone.
    pub(crate) fn broadcast<T: Serialize + Sync>(
        &mut self,
        from: EvaluationPoint,
        protocol: ProtocolName,
        round: u16,
        msg: &T,
    ) -> Result<SignedEnvelope> {
        self.broadcast_many(protocol, round, &[(from, msg)])?
            .pop()
            .ok_or_else(|| LocalError::Other("nothing signed".into()))
    }

    /// Each `(sender, message)` signed for everyone, in order. The contexts
    /// (sequence numbers) are fixed first, in order; then every sender
    /// serialises and signs its message, in parallel where the pool has
    /// more than one thread (each sender on its own machine in a
    /// deployment).
    fn broadcast_many<T: Serialize + Sync>(
        &mut self,
        protocol: ProtocolName,
        round: u16,
        messages: &[(EvaluationPoint, &T)],
    ) -> Result<Vec<SignedEnvelope>> {
        use rayon::prelude::*;
        let prev = self.transcript.round_hash();
        let mut jobs = Vec::with_capacity(messages.len());
        for &(from, msg) in messages {
            let ctx = self.context(from, protocol, round, Recipient::Broadcast)?;
            jobs.push((from, msg, ctx));
        }
        let key = (protocol, round, std::any::type_name::<T>());
        let members = &self.members;
        let make = |(from, msg, ctx): &(EvaluationPoint, &T, MessageContext), hint: usize| {
            let payload = postcard::to_extend(*msg, Vec::with_capacity(hint))
                .map_err(|e| LocalError::Other(e.to_string()))?;
            let m = members
                .get(from)
                .ok_or_else(|| LocalError::Other(format!("{from} is not registered")))?;
            Ok(SignedEnvelope::sign(&m.identity, *ctx, prev, payload))
        };
        // The first message of a kind the relay has not sized yet is made
        // alone, so that the others are written into buffers of its size
        // (growing a buffer by doubling copies large payloads several times).
        let known = self.size_hints.get(&key).copied();
        let (mut envs, rest) = match (known, jobs.split_first()) {
            (None, Some((first, rest))) => (vec![make(first, 0)?], rest),
            _ => (Vec::new(), jobs.as_slice()),
        };
        let hint = envs
            .first()
            .map(|env| env.payload().len())
            .or(known)
            .unwrap_or(0);
        // On one thread, on the caller's: handing the jobs to the pool would
        // only add a round trip (and free the buffers across threads).
        if rayon::current_num_threads() > 1 {
            envs.extend(
                rest.par_iter()
                    .map(|job| make(job, hint))
                    .collect::<Result<Vec<_>>>()?,
            );
        } else {
            for job in rest {
                envs.push(make(job, hint)?);
            }
        }
        if let Some(len) = envs.iter().map(|env| env.payload().len()).max() {
            self.size_hints.insert(key, len);
        }
        for env in &envs {
            self.bytes += env.encoded_len() as u64;
        }
        Ok(envs)
    }

    /// `from` seals `msg` to `to`'s transport key and signs the result.
    #[cfg(test)]
    pub(crate) fn seal_to<T: Serialize + Sync, R: RngCore + CryptoRng>(
        &mut self,
        from: EvaluationPoint,
        to: EvaluationPoint,
        protocol: ProtocolName,
        round: u16,
        msg: T,
        rng: &mut R,
    ) -> Result<SignedEnvelope> {
        self.seal_many(from, &[(to, msg)], protocol, round, rng)?
            .pop()
            .map(|(_, env)| env)
            .ok_or_else(|| LocalError::Other("nothing sealed".into()))
    }

    /// One broadcast round: each `(sender, message)` is signed, every
    /// receiver verifies every message, the round is closed, and the
    /// messages are returned decoded. The messages are dropped once signed,
    /// before they are decoded again, so a round of large shares does not
    /// hold three copies of itself at once.
    pub(crate) fn exchange<T: Serialize + DeserializeOwned + Sync>(
        &mut self,
        receivers: &[EvaluationPoint],
        protocol: ProtocolName,
        round: u16,
        messages: Vec<(EvaluationPoint, T)>,
    ) -> Result<Vec<T>> {
        let envs = {
            let messages: Vec<(EvaluationPoint, &T)> =
                messages.iter().map(|(from, msg)| (*from, msg)).collect();
            self.broadcast_many(protocol, round, &messages)?
        };
        drop(messages);
        self.check(receivers, &envs, protocol, round)?;
        // Each envelope dropped once decoded.
        let out = envs
            .into_iter()
            .map(|env| decode(&env))
            .collect::<Result<_>>()?;
        self.end_round();
        Ok(out)
    }

    /// `from` seals one message to each recipient and signs each envelope,
    /// in parallel (contexts and per-message RNG seeds are fixed first, in
    /// order, so the result does not depend on scheduling).
    pub(crate) fn seal_many<T: Serialize + Sync, R: RngCore + CryptoRng>(
        &mut self,
        from: EvaluationPoint,
        messages: &[(EvaluationPoint, T)],
        protocol: ProtocolName,
        round: u16,
        rng: &mut R,
    ) -> Result<Vec<(EvaluationPoint, SignedEnvelope)>> {
        use rand::SeedableRng;
        use rayon::prelude::*;
        let prev = self.transcript.round_hash();
        let mut jobs = Vec::with_capacity(messages.len());
        for (to, msg) in messages {
            let to_id = id_of(*to)?;
            let (_, transport) = self
                .directory
                .get(&to_id)
                .ok_or_else(|| LocalError::Other(format!("{to} has no transport key")))?;
            let transport = *transport;
            let ctx = self.context(from, protocol, round, Recipient::Participant(to_id))?;
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            jobs.push((*to, msg, ctx, transport, seed));
        }
        let member = self
            .members
            .get(&from)
            .ok_or_else(|| LocalError::Other(format!("{from} is not registered")))?;
        let identity = &member.identity;
        let out: Vec<(EvaluationPoint, SignedEnvelope)> = jobs
            .into_par_iter()
            .map(|(to, msg, ctx, transport, seed)| {
                let plain = synod_proto::encode_secret(msg, "sealed message")?;
                let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
                let sealed = synod_proto::seal(&ctx, &transport, &plain, &mut rng)?;
                let env = SignedEnvelope::sign(identity, ctx, prev, sealed.to_bytes()?);
                Ok((to, env))
            })
            .collect::<Result<_>>()?;
        for (_, env) in &out {
            self.bytes += env.encoded_len() as u64;
        }
        Ok(out)
    }

    /// What a receiver expects of `sender`'s message in this round, with the
    /// key that must have signed it.
    fn expected(
        &self,
        sender: ParticipantId,
        protocol: ProtocolName,
        round: u16,
        recipient: Recipient,
    ) -> Result<(ExpectedContext, IdentityPublicKey)> {
        let (key, _) = self
            .directory
            .get(&sender)
            .ok_or_else(|| LocalError::Other(format!("message from unregistered {sender}")))?;
        Ok((
            ExpectedContext {
                session: self.session,
                epoch: self.epoch,
                protocol,
                round: Round(round),
                sender,
                recipient,
                prev_round_hash: self.transcript.round_hash(),
            },
            *key,
        ))
    }

    fn verify(
        &mut self,
        at: EvaluationPoint,
        env: &SignedEnvelope,
        protocol: ProtocolName,
        round: u16,
        recipient: Recipient,
    ) -> Result<()> {
        let (expected, key) = self.expected(env.context().sender, protocol, round, recipient)?;
        let m = self
            .members
            .get_mut(&at)
            .ok_or_else(|| LocalError::Other(format!("{at} is not registered")))?;
        let verified = env.verify_and_record(&expected, &key, &mut m.guard)?;
        if self.recorded.insert(env.context().encode()) {
            self.transcript.record_verified(&verified)?;
        }
        Ok(())
    }

    /// `at` checks a broadcast envelope and decodes its payload.
    pub(crate) fn accept<T: DeserializeOwned>(
        &mut self,
        at: EvaluationPoint,
        env: &SignedEnvelope,
        protocol: ProtocolName,
        round: u16,
    ) -> Result<T> {
        self.verify(at, env, protocol, round, Recipient::Broadcast)?;
        postcard::from_bytes(env.payload()).map_err(|e| LocalError::Decode {
            sender: env.context().sender.get(),
            reason: e.to_string(),
        })
    }

    /// Checks a round of broadcasts: every participant in `receivers`
    /// verifies every envelope but its own (the receivers in parallel, as
    /// separate nodes would), and each envelope is recorded in the
    /// transcript once.
    fn check(
        &mut self,
        receivers: &[EvaluationPoint],
        envelopes: &[SignedEnvelope],
        protocol: ProtocolName,
        round: u16,
    ) -> Result<()> {
        use rayon::prelude::*;
        let mut checks = Vec::with_capacity(envelopes.len());
        for env in envelopes {
            let (expected, key) =
                self.expected(env.context().sender, protocol, round, Recipient::Broadcast)?;
            checks.push((env, expected, key));
        }
        for at in receivers {
            if !self.members.contains_key(at) {
                return Err(LocalError::Other(format!("{at} is not registered")));
            }
        }
        let mut guards: Vec<&mut Member> = self
            .members
            .iter_mut()
            .filter(|(p, _)| receivers.contains(p))
            .map(|(_, m)| m)
            .collect();
        // Per receiver, what it verified (by envelope index).
        let verified: Vec<Vec<(usize, Verified<'_>)>> = guards
            .par_iter_mut()
            .map(|m| {
                // A participant does not verify the message it signed itself.
                checks
                    .iter()
                    .enumerate()
                    .filter(|(_, (e, _, _))| e.context().sender != m.id)
                    .map(|(i, (env, expected, key))| {
                        Ok((i, env.verify_and_record(expected, key, &mut m.guard)?))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<_>>()?;
        drop(guards);
        let mut hashed: Vec<Option<&Verified<'_>>> = vec![None; envelopes.len()];
        for (i, v) in verified.iter().flatten() {
            if let Some(slot @ None) = hashed.get_mut(*i) {
                *slot = Some(v);
            }
        }
        // One transcript stands for every node here: it records each payload
        // once for all of them, with the hash a receiver's check computed
        // (`Transcript::record_verified`, as a node records what it verified
        // itself), hashing again only an envelope no receiver checked.
        for (env, verified) in envelopes.iter().zip(hashed) {
            if self.recorded.insert(env.context().encode()) {
                match verified {
                    Some(v) => self.transcript.record_verified(v)?,
                    None => self.transcript.record_envelope(env)?,
                }
            }
        }
        Ok(())
    }

    /// [`Self::check`]s a round of broadcasts and decodes their payloads.
    pub(crate) fn deliver<T: DeserializeOwned>(
        &mut self,
        receivers: &[EvaluationPoint],
        envelopes: &[SignedEnvelope],
        protocol: ProtocolName,
        round: u16,
    ) -> Result<Vec<T>> {
        self.check(receivers, envelopes, protocol, round)?;
        envelopes.iter().map(decode).collect()
    }

    /// `at` checks an envelope sealed to it, opens it and decodes it.
    pub(crate) fn accept_sealed<T: DeserializeOwned>(
        &mut self,
        at: EvaluationPoint,
        env: &SignedEnvelope,
        protocol: ProtocolName,
        round: u16,
    ) -> Result<T> {
        let me = id_of(at)?;
        self.verify(at, env, protocol, round, Recipient::Participant(me))?;
        let sealed = SealedPayload::from_bytes(env.payload())?;
        let m = self
            .members
            .get(&at)
            .ok_or_else(|| LocalError::Other(format!("{at} is not registered")))?;
        let plain = synod_proto::open(env.context(), &m.transport, &sealed)?;
        postcard::from_bytes(&plain).map_err(|e| LocalError::Decode {
            sender: env.context().sender.get(),
            reason: e.to_string(),
        })
    }

    /// Closes the round: the next messages carry its hash.
    pub(crate) fn end_round(&mut self) {
        self.transcript.end_round();
        self.recorded.clear();
    }
}

/// A checked envelope's payload, decoded.
fn decode<T: DeserializeOwned>(env: &SignedEnvelope) -> Result<T> {
    postcard::from_bytes(env.payload()).map_err(|e| LocalError::Decode {
        sender: env.context().sender.get(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use rand::SeedableRng;

    fn relay() -> (Relay, Vec<EvaluationPoint>, rand_chacha::ChaCha20Rng) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let pts: Vec<_> = (1..=3).map(|x| EvaluationPoint::new(x).unwrap()).collect();
        (Relay::new(&pts, [4; 32], &mut rng).unwrap(), pts, rng)
    }

    #[test]
    fn honest_messages_pass_and_bytes_are_counted() {
        let (mut r, pts, mut rng) = relay();
        let env = r
            .broadcast(pts[0], ProtocolName::PublicKeyGen, 1, &42u32)
            .unwrap();
        assert!(r.bytes() > 64);
        let got: Vec<u32> = r
            .deliver(&pts, &[env], ProtocolName::PublicKeyGen, 1)
            .unwrap();
        assert_eq!(got, vec![42]);
        r.end_round();
        let env = r
            .seal_to(
                pts[0],
                pts[2],
                ProtocolName::Thresholdize,
                1,
                7u64,
                &mut rng,
            )
            .unwrap();
        let v: u64 = r
            .accept_sealed(pts[2], &env, ProtocolName::Thresholdize, 1)
            .unwrap();
        assert_eq!(v, 7);
    }

    /// The relay's transcript records each delivered payload once, with the
    /// hash a receiver's check computed, or hashed anew where no receiver
    /// checked it (a sender delivering to itself alone): the same round
    /// hash as a transcript that hashes every envelope itself.
    #[test]
    fn delivered_rounds_are_recorded_as_their_payloads() {
        let (mut r, pts, _) = relay();
        let mut reference = Transcript::new(SessionId([4; 32]));
        let msgs: Vec<(EvaluationPoint, Vec<u8>)> =
            pts.iter().map(|&x| (x, vec![x.get() as u8; 100])).collect();
        let envs = r
            .broadcast_many(
                ProtocolName::PublicKeyGen,
                1,
                &msgs.iter().map(|(x, m)| (*x, m)).collect::<Vec<_>>(),
            )
            .unwrap();
        let _: Vec<Vec<u8>> = r
            .deliver(&pts, &envs, ProtocolName::PublicKeyGen, 1)
            .unwrap();
        // Its own sender alone: nobody else checked it.
        let own = r
            .broadcast(pts[0], ProtocolName::PublicKeyGen, 1, &vec![9u8; 50])
            .unwrap();
        let _: Vec<Vec<u8>> = r
            .deliver(
                &pts[..1],
                std::slice::from_ref(&own),
                ProtocolName::PublicKeyGen,
                1,
            )
            .unwrap();
        for env in envs.iter().chain([&own]) {
            reference.record_envelope(env).unwrap();
        }
        r.end_round();
        assert_eq!(r.transcript_hash(), reference.end_round().0);
    }

    #[test]
    fn tampered_replayed_misrouted_and_stale_messages_are_rejected() {
        let (mut r, pts, mut rng) = relay();
        let env = r
            .broadcast(pts[1], ProtocolName::Decrypt, 1, &vec![1u8, 2, 3])
            .unwrap();
        // The relay alters the payload: the signature fails, naming the sender.
        let mut bytes = env.to_bytes().unwrap();
        let last = bytes.len() - 70;
        bytes[last] ^= 1;
        if let Ok(forged) = SignedEnvelope::from_bytes(&bytes) {
            let err = r
                .accept::<Vec<u8>>(pts[0], &forged, ProtocolName::Decrypt, 1)
                .unwrap_err();
            assert!(err.to_string().contains("P2"), "{err}");
        }
        // Wrong round or protocol.
        assert!(r
            .accept::<Vec<u8>>(pts[0], &env, ProtocolName::Decrypt, 2)
            .is_err());
        assert!(r
            .accept::<Vec<u8>>(pts[0], &env, ProtocolName::Input, 1)
            .is_err());
        // Accepted once, then replayed.
        r.accept::<Vec<u8>>(pts[0], &env, ProtocolName::Decrypt, 1)
            .unwrap();
        assert!(matches!(
            r.accept::<Vec<u8>>(pts[0], &env, ProtocolName::Decrypt, 1),
            Err(LocalError::Envelope(_))
        ));
        // After the round closes, an old-round message carries a stale hash.
        r.end_round();
        assert!(r
            .accept::<Vec<u8>>(pts[2], &env, ProtocolName::Decrypt, 1)
            .is_err());
        // A sealed share delivered to someone else cannot be opened.
        let sealed = r
            .seal_to(
                pts[0],
                pts[1],
                ProtocolName::Thresholdize,
                1,
                9u64,
                &mut rng,
            )
            .unwrap();
        assert!(r
            .accept_sealed::<u64>(pts[2], &sealed, ProtocolName::Thresholdize, 1)
            .is_err());
    }

    #[test]
    fn messages_of_another_epoch_or_session_are_rejected() {
        let (mut r, pts, mut rng) = relay();
        let env = r.broadcast(pts[0], ProtocolName::Reshare, 1, &5u8).unwrap();
        // The same dealing replayed after the epoch moved on.
        r.set_epoch(1);
        let err = r
            .accept::<u8>(pts[1], &env, ProtocolName::Reshare, 1)
            .unwrap_err();
        assert!(err.to_string().contains("P1"), "{err}");
        // A message from another session's relay, with the same participants.
        let mut other = Relay::new(&pts, [5; 32], &mut rng).unwrap();
        let foreign = other
            .broadcast(pts[0], ProtocolName::Reshare, 1, &5u8)
            .unwrap();
        r.set_epoch(0);
        assert!(r
            .accept::<u8>(pts[1], &foreign, ProtocolName::Reshare, 1)
            .is_err());
    }
}
