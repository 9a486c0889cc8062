//! Signed envelopes: a payload bound by its sender's Ed25519 signature to a [`MessageContext`] and
//! to the previous round's transcript hash, and the [`ReplayGuard`] that refuses old messages.
//!
//! The signed string is fixed-layout, so no two different `(context, prev_round_hash, payload)`
//! triples sign the same bytes (short of a BLAKE3 collision on the payload):
//!
//! ```text
//! "synod/envelope/v1" ‖ context.encode() (73) ‖ prev_round_hash (32) ‖ BLAKE3(payload) (32)
//! ```
//!
//! Ed25519 hashes that string with SHA-512 internally; hashing the payload first keeps the signed
//! string short whatever the payload's size.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::context::{ContextField, ExpectedContext, MessageContext};
use crate::identity::{IdentityKey, IdentityPublicKey, Signature};
use crate::ids::{ParticipantId, SequenceNumber, SessionId};
use crate::transcript::RoundHash;
use crate::wire::{self, byte_vec, fixed, WireError};

/// Domain-separation tag at the start of every signed string.
const ENVELOPE_TAG: &[u8; 17] = b"synod/envelope/v1";

/// A payload signed by its sender over its context and the previous round's hash.
///
/// Fields are read through accessors: an envelope is made by [`sign`](Self::sign) or parsed by
/// [`from_bytes`](Self::from_bytes), and trusted only after [`verify`](Self::verify).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignedEnvelope {
    context: MessageContext,
    payload: Vec<u8>,
    prev_round_hash: RoundHash,
    signature: Signature,
}

/// Why an envelope was refused. Every variant names the sender whose message it claims to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The signature does not verify under the sender's key: forged or altered in transit.
    #[error("{sender}: signature does not verify")]
    BadSignature {
        /// The expected sender, whose key was used.
        sender: ParticipantId,
    },
    /// Validly signed, but for another place in the session than the receiver expects.
    #[error("{sender}: message context differs in its {field}")]
    ContextMismatch {
        /// The expected sender, who signed it.
        sender: ParticipantId,
        /// The first field that differs.
        field: ContextField,
    },
    /// Validly signed on top of a previous round other than the one the receiver saw.
    #[error("{sender}: built on previous round {found:?}, expected {expected:?}")]
    TranscriptFork {
        /// The sender.
        sender: ParticipantId,
        /// The receiver's round hash.
        expected: RoundHash,
        /// The envelope's.
        found: RoundHash,
    },
    /// The sequence number is not above the last one accepted from this sender in this session.
    #[error("{sender}: sequence number {sequence} replayed (last accepted {last})")]
    Replay {
        /// The sender.
        sender: ParticipantId,
        /// The envelope's sequence number.
        sequence: SequenceNumber,
        /// The last one accepted.
        last: SequenceNumber,
    },
    /// Two different validly signed messages with the same sequence number.
    #[error("{sender}: signed two different messages with sequence number {sequence}")]
    Equivocation {
        /// The sender.
        sender: ParticipantId,
        /// The sequence number used twice.
        sequence: SequenceNumber,
    },
}

impl EnvelopeError {
    /// The participant whose message was refused.
    pub fn sender(&self) -> ParticipantId {
        match self {
            Self::BadSignature { sender }
            | Self::ContextMismatch { sender, .. }
            | Self::TranscriptFork { sender, .. }
            | Self::Replay { sender, .. }
            | Self::Equivocation { sender, .. } => *sender,
        }
    }

    /// The participants this error proves misbehaved. Messages travel through an untrusted
    /// relay, which can alter (bad signature), misroute (context mismatch), fork or replay them,
    /// so those errors blame nobody; only evidence that the sender itself signed something it must
    /// not have names it: a context claiming another sender, or two messages for one sequence
    /// number.
    pub fn culprits(&self) -> Vec<ParticipantId> {
        match self {
            Self::ContextMismatch {
                sender,
                field: ContextField::Sender,
            }
            | Self::Equivocation { sender, .. } => vec![*sender],
            Self::BadSignature { .. }
            | Self::ContextMismatch { .. }
            | Self::TranscriptFork { .. }
            | Self::Replay { .. } => Vec::new(),
        }
    }
}

impl SignedEnvelope {
    /// Signs `payload` for `context`, on top of the previous round as the signer saw it
    /// ([`Transcript::round_hash`](crate::Transcript::round_hash)).
    pub fn sign(
        key: &IdentityKey,
        context: MessageContext,
        prev_round_hash: RoundHash,
        payload: Vec<u8>,
    ) -> Self {
        let signature = key.sign(&signed_bytes(&context, &prev_round_hash, &payload));
        Self {
            context,
            payload,
            prev_round_hash,
            signature,
        }
    }

    /// Checks the signature under `sender_key`, then that the context is the expected one, then
    /// that the envelope builds on the expected previous round. Does not check freshness: use
    /// [`verify_and_record`](Self::verify_and_record) for that.
    pub fn verify(
        &self,
        expected: &ExpectedContext,
        sender_key: &IdentityPublicKey,
    ) -> Result<(), EnvelopeError> {
        let message = signed_bytes(&self.context, &self.prev_round_hash, &self.payload);
        self.verify_signed(&message, expected, sender_key)
    }

    /// [`verify`](Self::verify) given this envelope's [`signed_bytes`] (which
    /// hash the payload: a receiver hashes it once for both checks).
    fn verify_signed(
        &self,
        message: &[u8],
        expected: &ExpectedContext,
        sender_key: &IdentityPublicKey,
    ) -> Result<(), EnvelopeError> {
        let sender = expected.sender;
        if !sender_key.verify(message, &self.signature) {
            return Err(EnvelopeError::BadSignature { sender });
        }
        if let Some(field) = expected.mismatch(&self.context) {
            return Err(EnvelopeError::ContextMismatch { sender, field });
        }
        if self.prev_round_hash != expected.prev_round_hash {
            return Err(EnvelopeError::TranscriptFork {
                sender,
                expected: expected.prev_round_hash,
                found: self.prev_round_hash,
            });
        }
        Ok(())
    }

    /// [`verify`](Self::verify), then refuses a replayed sequence number and records this one in
    /// `guard`. Only verified envelopes are recorded, so a forger cannot burn sequence numbers.
    /// The [`Verified`] it returns carries the payload hash the check computed, for
    /// [`Transcript::record_verified`](crate::Transcript::record_verified).
    pub fn verify_and_record(
        &self,
        expected: &ExpectedContext,
        sender_key: &IdentityPublicKey,
        guard: &mut ReplayGuard,
    ) -> Result<Verified<'_>, EnvelopeError> {
        // The signed string holds the payload's hash: computed once, it
        // serves the signature check, the digest the guard keeps and the
        // transcript.
        let payload_hash = *blake3::hash(&self.payload).as_bytes();
        let message = signed_bytes_with(&self.context, &self.prev_round_hash, &payload_hash);
        self.verify_signed(&message, expected, sender_key)?;
        guard.record(self, *blake3::hash(&message).as_bytes())?;
        Ok(Verified {
            envelope: self,
            payload_hash,
        })
    }

    /// The context the signature binds.
    pub fn context(&self) -> &MessageContext {
        &self.context
    }

    /// The payload (untrusted until verified).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The payload, consuming the envelope.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    /// The previous round's hash as the sender saw it.
    pub fn prev_round_hash(&self) -> &RoundHash {
        &self.prev_round_hash
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// BLAKE3 of the signed string: identifies the message independently of its signature.
    pub fn digest(&self) -> [u8; 32] {
        *blake3::hash(&signed_bytes(
            &self.context,
            &self.prev_round_hash,
            &self.payload,
        ))
        .as_bytes()
    }

    /// The length of [`to_bytes`](Self::to_bytes) without encoding the payload again.
    pub fn encoded_len(&self) -> usize {
        // The fixed fields are encoded once with an empty payload (a 1-byte
        // length prefix); the payload adds its bytes and its varint length.
        let fixed = wire::encode(
            &EnvelopeWireRef {
                context: self.context.encode(),
                payload: &[],
                prev_round_hash: self.prev_round_hash,
                signature: self.signature,
            },
            "signed envelope",
        )
        .map(|b| b.len())
        .unwrap_or(0);
        let len = self.payload.len();
        let mut prefix = 1;
        let mut rest = len >> 7;
        while rest > 0 {
            prefix += 1;
            rest >>= 7;
        }
        fixed - 1 + prefix + len
    }

    /// The wire encoding: postcard of (context encoding, payload, prev_round_hash, signature).
    pub fn to_bytes(&self) -> Result<Vec<u8>, WireError> {
        wire::encode(self, "signed envelope")
    }

    /// Parses the wire encoding, refusing malformed input, trailing bytes and invalid contexts.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let wire: EnvelopeWire = wire::decode_exact(bytes, "signed envelope")?;
        wire.parse()
    }
}

/// An envelope that passed [`SignedEnvelope::verify_and_record`], with the hash of its payload
/// computed by that check: recording it in a transcript does not hash the payload again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified<'a> {
    envelope: &'a SignedEnvelope,
    payload_hash: [u8; 32],
}

impl<'a> Verified<'a> {
    /// The envelope.
    pub fn envelope(&self) -> &'a SignedEnvelope {
        self.envelope
    }

    /// BLAKE3 of its payload.
    pub(crate) fn payload_hash(&self) -> [u8; 32] {
        self.payload_hash
    }
}

/// The string an envelope's signature covers (see the module docs).
fn signed_bytes(context: &MessageContext, prev_round_hash: &RoundHash, payload: &[u8]) -> Vec<u8> {
    signed_bytes_with(context, prev_round_hash, blake3::hash(payload).as_bytes())
}

/// [`signed_bytes`] given the payload's hash.
fn signed_bytes_with(
    context: &MessageContext,
    prev_round_hash: &RoundHash,
    payload_hash: &[u8; 32],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENVELOPE_TAG.len() + MessageContext::ENCODED_LEN + 64);
    out.extend_from_slice(ENVELOPE_TAG);
    out.extend_from_slice(&context.encode());
    out.extend_from_slice(&prev_round_hash.0);
    out.extend_from_slice(payload_hash);
    out
}

/// Serialising view of an envelope (borrows the payload).
#[derive(Serialize)]
struct EnvelopeWireRef<'a> {
    #[serde(with = "fixed")]
    context: [u8; MessageContext::ENCODED_LEN],
    #[serde(serialize_with = "byte_vec::serialize")]
    payload: &'a [u8],
    prev_round_hash: RoundHash,
    signature: Signature,
}

/// Deserialised envelope before its context is parsed; same field order as [`EnvelopeWireRef`].
#[derive(Deserialize)]
struct EnvelopeWire {
    #[serde(with = "fixed")]
    context: [u8; MessageContext::ENCODED_LEN],
    #[serde(deserialize_with = "byte_vec::deserialize")]
    payload: Vec<u8>,
    prev_round_hash: RoundHash,
    signature: Signature,
}

impl EnvelopeWire {
    fn parse(self) -> Result<SignedEnvelope, WireError> {
        Ok(SignedEnvelope {
            context: MessageContext::decode(&self.context)?,
            payload: self.payload,
            prev_round_hash: self.prev_round_hash,
            signature: self.signature,
        })
    }
}

impl Serialize for SignedEnvelope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        EnvelopeWireRef {
            context: self.context.encode(),
            payload: &self.payload,
            prev_round_hash: self.prev_round_hash,
            signature: self.signature,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SignedEnvelope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        EnvelopeWire::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A receiver's memory of the last sequence number accepted from each sender in each session.
///
/// Sequence numbers must strictly increase per (session, sender); gaps are allowed (a receiver
/// does not see the sender's messages to others). The same sequence number again is a
/// [`Replay`](EnvelopeError::Replay) if it is the same message and an
/// [`Equivocation`](EnvelopeError::Equivocation) if it is a different one.
#[derive(Clone, Debug, Default)]
pub struct ReplayGuard {
    last: BTreeMap<(SessionId, ParticipantId), (SequenceNumber, [u8; 32])>,
}

impl ReplayGuard {
    /// A guard that has accepted nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last sequence number accepted from `sender` in `session`.
    pub fn last_accepted(
        &self,
        session: SessionId,
        sender: ParticipantId,
    ) -> Option<SequenceNumber> {
        self.last
            .get(&(session, sender))
            .map(|(sequence, _)| *sequence)
    }

    /// Drops everything remembered about `session` (once it is over).
    pub fn forget_session(&mut self, session: SessionId) {
        self.last.retain(|(s, _), _| *s != session);
    }

    /// Refuses a sequence number at or below the last accepted one, else records it. Private:
    /// reached only through `verify_and_record`, after the signature checked out.
    /// `digest` is the envelope's [`SignedEnvelope::digest`].
    fn record(&mut self, envelope: &SignedEnvelope, digest: [u8; 32]) -> Result<(), EnvelopeError> {
        let context = envelope.context();
        let sender = context.sender;
        let sequence = context.sequence;
        match self.last.get(&(context.session, sender)) {
            Some((last, last_digest)) if *last == sequence && *last_digest != digest => {
                Err(EnvelopeError::Equivocation { sender, sequence })
            }
            Some((last, _)) if *last >= sequence => Err(EnvelopeError::Replay {
                sender,
                sequence,
                last: *last,
            }),
            _ => {
                self.last
                    .insert((context.session, sender), (sequence, digest));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use proptest::prelude::*;

    use super::*;
    use crate::context::tests::{one_field_changes, sample_context};
    use crate::ids::{ParticipantId, Recipient};

    fn key(n: u8) -> IdentityKey {
        IdentityKey::from_secret_bytes(&[n; 32])
    }

    fn expected_for(ctx: &MessageContext, prev: RoundHash) -> ExpectedContext {
        ExpectedContext {
            session: ctx.session,
            epoch: ctx.epoch,
            protocol: ctx.protocol,
            round: ctx.round,
            sender: ctx.sender,
            recipient: ctx.recipient,
            prev_round_hash: prev,
        }
    }

    fn sample() -> (IdentityKey, SignedEnvelope, ExpectedContext) {
        let k = key(1);
        let ctx = sample_context();
        let prev = RoundHash([9; 32]);
        let env = SignedEnvelope::sign(&k, ctx, prev, b"payload".to_vec());
        (k, env, expected_for(&ctx, prev))
    }

    #[test]
    fn encoded_len_matches_to_bytes() {
        let k = key(1);
        for len in [0usize, 1, 127, 128, 300, 16_383, 16_384, 3_000_000] {
            let env = SignedEnvelope::sign(&k, sample_context(), RoundHash([9; 32]), vec![7; len]);
            assert_eq!(
                env.encoded_len(),
                env.to_bytes().unwrap().len(),
                "payload {len}"
            );
        }
    }

    #[test]
    fn sign_then_verify() {
        let (k, env, expected) = sample();
        assert_eq!(env.verify(&expected, &k.public_key()), Ok(()));
    }

    /// The transcript entry of a verified envelope, recorded with the payload hash its check
    /// computed, is the entry of the envelope recorded from its bytes; a refused envelope gives
    /// no [`Verified`].
    #[test]
    fn verified_envelopes_record_as_their_bytes() {
        let (k, env, expected) = sample();
        let mut guard = ReplayGuard::default();
        let verified = env
            .verify_and_record(&expected, &k.public_key(), &mut guard)
            .unwrap();
        assert_eq!(verified.envelope(), &env);
        let mut from_bytes = crate::Transcript::new(env.context().session);
        let mut from_check = crate::Transcript::new(env.context().session);
        from_bytes.record_envelope(&env).unwrap();
        from_check.record_verified(&verified).unwrap();
        assert_eq!(from_bytes.end_round(), from_check.end_round());
        let mut other = crate::Transcript::new(env.context().session);
        other.record(env.context(), b"another payload").unwrap();
        assert_ne!(other.end_round(), from_check.round_hash());
        let mut fresh = ReplayGuard::default();
        assert!(env
            .verify_and_record(&expected, &key(2).public_key(), &mut fresh)
            .is_err());
    }

    #[test]
    fn wrong_key_fails() {
        let (_, env, expected) = sample();
        let err = env.verify(&expected, &key(2).public_key()).unwrap_err();
        assert_eq!(
            err,
            EnvelopeError::BadSignature {
                sender: expected.sender
            }
        );
        assert_eq!(err.sender(), expected.sender);
        assert!(err.culprits().is_empty());
    }

    #[test]
    fn every_context_field_change_after_signing_breaks_the_signature() {
        let (k, env, expected) = sample();
        for (name, changed) in one_field_changes(env.context()) {
            let tampered = SignedEnvelope {
                context: changed,
                ..env.clone()
            };
            // The receiver expects what the tampered context says, so only the signature can
            // catch it.
            let err = tampered
                .verify(
                    &expected_for(&changed, expected.prev_round_hash),
                    &k.public_key(),
                )
                .unwrap_err();
            assert!(
                matches!(err, EnvelopeError::BadSignature { .. }),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn every_context_field_signed_differently_than_expected_is_a_mismatch() {
        let (k, env, expected) = sample();
        for (name, changed) in one_field_changes(env.context()) {
            if name == "sequence" {
                continue; // not part of the expectation: the replay guard's job
            }
            let other = SignedEnvelope::sign(&k, changed, expected.prev_round_hash, b"p".to_vec());
            let err = other.verify(&expected, &k.public_key()).unwrap_err();
            assert!(
                matches!(err, EnvelopeError::ContextMismatch { .. }),
                "{name}: {err}"
            );
            assert_eq!(err.sender(), expected.sender);
            assert_eq!(err.culprits().is_empty(), name != "sender", "{name}");
        }
    }

    #[test]
    fn tampered_payload_or_prev_hash_or_signature_fails() {
        let (k, env, expected) = sample();
        let mut payload = env.clone();
        payload.payload[0] ^= 1;
        assert!(matches!(
            payload.verify(&expected, &k.public_key()),
            Err(EnvelopeError::BadSignature { .. })
        ));
        let mut longer = env.clone();
        longer.payload.push(0);
        assert!(longer.verify(&expected, &k.public_key()).is_err());
        let mut prev = env.clone();
        prev.prev_round_hash.0[0] ^= 1;
        assert!(matches!(
            prev.verify(&expected, &k.public_key()),
            Err(EnvelopeError::BadSignature { .. })
        ));
        let mut sig = env.clone();
        sig.signature.0[63] ^= 0x10;
        assert!(sig.verify(&expected, &k.public_key()).is_err());
    }

    #[test]
    fn other_previous_round_is_a_fork() {
        let (k, env, mut expected) = sample();
        expected.prev_round_hash = RoundHash([8; 32]);
        assert_eq!(
            env.verify(&expected, &k.public_key()),
            Err(EnvelopeError::TranscriptFork {
                sender: expected.sender,
                expected: RoundHash([8; 32]),
                found: RoundHash([9; 32]),
            })
        );
    }

    #[test]
    fn replay_guard_refuses_same_and_lower_sequence_and_names_equivocation() {
        let (k, env, expected) = sample();
        let pk = k.public_key();
        let at = |seq: u64, payload: &[u8]| {
            let ctx = MessageContext {
                sequence: SequenceNumber(seq),
                ..*env.context()
            };
            SignedEnvelope::sign(&k, ctx, expected.prev_round_hash, payload.to_vec())
        };
        let mut guard = ReplayGuard::new();
        assert_eq!(
            at(5, b"a")
                .verify_and_record(&expected, &pk, &mut guard)
                .map(|_| ()),
            Ok(())
        );
        assert_eq!(
            guard.last_accepted(expected.session, expected.sender),
            Some(SequenceNumber(5))
        );
        // The guard keeps the envelope's digest (from the one signed string).
        assert_eq!(
            guard.last.get(&(expected.session, expected.sender)),
            Some(&(SequenceNumber(5), at(5, b"a").digest()))
        );
        let same = at(5, b"a")
            .verify_and_record(&expected, &pk, &mut guard)
            .map(|_| ());
        assert_eq!(
            same,
            Err(EnvelopeError::Replay {
                sender: expected.sender,
                sequence: SequenceNumber(5),
                last: SequenceNumber(5)
            })
        );
        assert!(same.unwrap_err().culprits().is_empty());
        let lower = at(4, b"b")
            .verify_and_record(&expected, &pk, &mut guard)
            .map(|_| ());
        assert!(matches!(lower, Err(EnvelopeError::Replay { .. })));
        let equivocation = at(5, b"c")
            .verify_and_record(&expected, &pk, &mut guard)
            .map(|_| ());
        assert_eq!(
            equivocation,
            Err(EnvelopeError::Equivocation {
                sender: expected.sender,
                sequence: SequenceNumber(5)
            })
        );
        assert_eq!(equivocation.unwrap_err().culprits(), vec![expected.sender]);
        assert_eq!(
            at(9, b"d")
                .verify_and_record(&expected, &pk, &mut guard)
                .map(|_| ()),
            Ok(())
        );

        // A forged envelope is refused before the guard sees it, so it burns nothing.
        let forged = SignedEnvelope::sign(
            &key(3),
            at(100, b"x").context,
            expected.prev_round_hash,
            vec![],
        );
        assert!(forged
            .verify_and_record(&expected, &pk, &mut guard)
            .is_err());
        assert_eq!(
            at(10, b"e")
                .verify_and_record(&expected, &pk, &mut guard)
                .map(|_| ()),
            Ok(())
        );

        // Other senders and sessions are tracked separately.
        let k2 = key(2);
        let ctx2 = MessageContext {
            sender: ParticipantId::new(2).unwrap(),
            recipient: Recipient::Broadcast,
            sequence: SequenceNumber(1),
            ..*env.context()
        };
        let env2 = SignedEnvelope::sign(&k2, ctx2, expected.prev_round_hash, vec![]);
        let exp2 = expected_for(&ctx2, expected.prev_round_hash);
        assert_eq!(
            env2.verify_and_record(&exp2, &k2.public_key(), &mut guard)
                .map(|_| ()),
            Ok(())
        );
        guard.forget_session(expected.session);
        assert_eq!(guard.last_accepted(expected.session, expected.sender), None);
        assert_eq!(
            at(1, b"f")
                .verify_and_record(&expected, &pk, &mut guard)
                .map(|_| ()),
            Ok(())
        );
    }

    #[test]
    fn wire_round_trip_and_errors() {
        let (k, env, expected) = sample();
        let bytes = env.to_bytes().unwrap();
        let back = SignedEnvelope::from_bytes(&bytes).unwrap();
        assert_eq!(back, env);
        assert_eq!(back.verify(&expected, &k.public_key()), Ok(()));

        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            SignedEnvelope::from_bytes(&trailing),
            Err(WireError::TrailingBytes { count: 1, .. })
        ));
        for len in 0..bytes.len() {
            assert!(SignedEnvelope::from_bytes(&bytes[..len]).is_err(), "{len}");
        }
        let mut bad_version = bytes.clone();
        bad_version[13] = 9;
        assert!(matches!(
            SignedEnvelope::from_bytes(&bad_version),
            Err(WireError::Context(
                crate::ContextDecodeError::UnsupportedVersion(9)
            ))
        ));
    }

    proptest! {
        #[test]
        fn from_bytes_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = SignedEnvelope::from_bytes(&bytes);
        }

        #[test]
        fn from_bytes_never_panics_on_mutated_envelopes(
            index in any::<prop::sample::Index>(),
            xor in 1u8..,
        ) {
            let (_, env, _) = sample();
            let mut bytes = env.to_bytes().unwrap();
            let i = index.index(bytes.len());
            bytes[i] ^= xor;
            if let Ok(parsed) = SignedEnvelope::from_bytes(&bytes) {
                prop_assert_ne!(parsed, env);
            }
        }
    }
}
