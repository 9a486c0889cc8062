//! The session transcript: a BLAKE3 hash chain over rounds of `(context, payload hash)` entries.
//!
//! DESIGN.md §3: the coordinator "cannot show two participants different transcripts without being
//! caught", because every message of a round carries the hash of the previous round as its sender
//! saw it ([`SignedEnvelope::prev_round_hash`](crate::SignedEnvelope::prev_round_hash)).
//!
//! Messages of one round arrive in whatever order the relay chooses, so a round's entries are kept
//! sorted by their context encoding and folded into the chain only when the round ends:
//!
//! ```text
//! h_0     = BLAKE3-derive-key("synod/transcript/v1 genesis", session id)
//! h_{r+1} = BLAKE3-derive-key("synod/transcript/v1 round", h_r ‖ n ‖ (ctx_1 ‖ H(payload_1)) ‖ … ‖ (ctx_n ‖ H(payload_n)))
//! ```
//!
//! with `n` a big-endian `u64`, entries in increasing order of `ctx_i` (the 73-byte
//! [`MessageContext::encode`]) and `H` plain BLAKE3. Entries are fixed-length, so the hashed string
//! is unambiguous.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::context::MessageContext;
use crate::envelope::{SignedEnvelope, Verified};
use crate::ids::{ParticipantId, SequenceNumber, SessionId};
use crate::wire::fixed;

const GENESIS_DOMAIN: &str = "synod/transcript/v1 genesis";
const ROUND_DOMAIN: &str = "synod/transcript/v1 round";

/// The hash of a transcript up to the end of a round: what the next round's messages carry.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RoundHash(#[serde(with = "fixed")] pub [u8; 32]);

impl RoundHash {
    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for RoundHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for RoundHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoundHash({self})")
    }
}

/// Why an entry cannot join the transcript.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TranscriptError {
    /// The entry belongs to another session.
    #[error("{sender}: message of session {found} in the transcript of session {expected}")]
    WrongSession {
        /// The entry's sender.
        sender: ParticipantId,
        /// This transcript's session.
        expected: SessionId,
        /// The entry's session.
        found: SessionId,
    },
    /// The round already holds an entry with the same context and a different payload.
    #[error("{sender}: two different payloads with the same context (sequence number {sequence})")]
    Conflict {
        /// The entry's sender.
        sender: ParticipantId,
        /// The repeated sequence number.
        sequence: SequenceNumber,
    },
}

impl TranscriptError {
    /// The participant whose message was refused.
    pub fn sender(&self) -> ParticipantId {
        match self {
            Self::WrongSession { sender, .. } | Self::Conflict { sender, .. } => *sender,
        }
    }
}

/// A session's transcript as one participant saw it.
#[derive(Clone, Debug)]
pub struct Transcript {
    session: SessionId,
    chain: RoundHash,
    /// The current round's entries, keyed (and so ordered) by context encoding.
    pending: BTreeMap<[u8; MessageContext::ENCODED_LEN], [u8; 32]>,
}

impl Transcript {
    /// The empty transcript of `session`; its [`round_hash`](Self::round_hash) is what the first
    /// round's messages carry.
    pub fn new(session: SessionId) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key(GENESIS_DOMAIN);
        hasher.update(&session.0);
        Self {
            session,
            chain: RoundHash(*hasher.finalize().as_bytes()),
            pending: BTreeMap::new(),
        }
    }

    /// The session this transcript belongs to.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// Adds a message to the current round. Recording the same message twice is a no-op; the same
    /// context with a different payload is a [`TranscriptError::Conflict`].
    pub fn record(
        &mut self,
        context: &MessageContext,
        payload: &[u8],
    ) -> Result<(), TranscriptError> {
        self.record_hash(context, *blake3::hash(payload).as_bytes())
    }

    /// [`record_envelope`](Self::record_envelope) for an envelope whose verification hashed its
    /// payload already.
    pub fn record_verified(&mut self, verified: &Verified<'_>) -> Result<(), TranscriptError> {
        self.record_hash(verified.envelope().context(), verified.payload_hash())
    }

    /// [`record`](Self::record) given the payload's BLAKE3 hash.
    fn record_hash(
        &mut self,
        context: &MessageContext,
        payload_hash: [u8; 32],
    ) -> Result<(), TranscriptError> {
        if context.session != self.session {
            return Err(TranscriptError::WrongSession {
                sender: context.sender,
                expected: self.session,
                found: context.session,
            });
        }
        match self.pending.get(&context.encode()) {
            Some(existing) if *existing != payload_hash => Err(TranscriptError::Conflict {
                sender: context.sender,
                sequence: context.sequence,
            }),
            Some(_) => Ok(()),
            None => {
                self.pending.insert(context.encode(), payload_hash);
                Ok(())
            }
        }
    }

    /// Adds an envelope's context and payload to the current round (verify it first).
    pub fn record_envelope(&mut self, envelope: &SignedEnvelope) -> Result<(), TranscriptError> {
        self.record(envelope.context(), envelope.payload())
    }

    /// How many entries the current round holds.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Closes the current round: folds its entries, in canonical order, into the chain and returns
    /// the new [`round_hash`](Self::round_hash).
    pub fn end_round(&mut self) -> RoundHash {
        let mut hasher = blake3::Hasher::new_derive_key(ROUND_DOMAIN);
        hasher.update(&self.chain.0);
        hasher.update(&(self.pending.len() as u64).to_be_bytes());
        for (context, payload_hash) in &self.pending {
            hasher.update(context);
            hasher.update(payload_hash);
        }
        self.chain = RoundHash(*hasher.finalize().as_bytes());
        self.pending.clear();
        self.chain
    }

    /// The hash as of the last completed round: the `prev_round_hash` of the next round's
    /// messages. Entries of the current round do not affect it until [`end_round`](Self::end_round).
    pub fn round_hash(&self) -> RoundHash {
        self.chain
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use crate::context::tests::sample_context;
    use crate::ids::{ParticipantId, Recipient};

    fn ctx_from(sender: u32) -> MessageContext {
        MessageContext {
            sender: ParticipantId::new(sender).unwrap(),
            recipient: Recipient::Broadcast,
            ..sample_context()
        }
    }

    #[test]
    fn round_hash_ignores_arrival_order_but_not_content() {
        let mut a = Transcript::new(sample_context().session);
        let mut b = a.clone();
        a.record(&ctx_from(1), b"one").unwrap();
        a.record(&ctx_from(2), b"two").unwrap();
        b.record(&ctx_from(2), b"two").unwrap();
        b.record(&ctx_from(1), b"one").unwrap();
        b.record(&ctx_from(1), b"one").unwrap(); // duplicate delivery is harmless
        assert_eq!(a.pending_len(), 2);
        assert_eq!(b.pending_len(), 2);
        let genesis = a.round_hash();
        assert_eq!(a.end_round(), b.end_round());
        assert_ne!(a.round_hash(), genesis);

        let mut c = Transcript::new(sample_context().session);
        c.record(&ctx_from(1), b"one").unwrap();
        c.record(&ctx_from(2), b"twO").unwrap();
        assert_ne!(c.end_round(), a.round_hash());

        // A message missing from one view changes the hash.
        let mut d = Transcript::new(sample_context().session);
        d.record(&ctx_from(1), b"one").unwrap();
        assert_ne!(d.end_round(), a.round_hash());
    }

    #[test]
    fn round_boundaries_matter() {
        let session = sample_context().session;
        let mut one_round = Transcript::new(session);
        one_round.record(&ctx_from(1), b"x").unwrap();
        one_round.record(&ctx_from(2), b"y").unwrap();
        one_round.end_round();
        let mut two_rounds = Transcript::new(session);
        two_rounds.record(&ctx_from(1), b"x").unwrap();
        two_rounds.end_round();
        two_rounds.record(&ctx_from(2), b"y").unwrap();
        two_rounds.end_round();
        assert_ne!(one_round.round_hash(), two_rounds.round_hash());
    }

    #[test]
    fn genesis_depends_on_session_and_conflicts_and_strangers_are_refused() {
        let ctx = sample_context();
        let mut other_session = ctx.session;
        other_session.0[0] ^= 1;
        assert_ne!(
            Transcript::new(ctx.session).round_hash(),
            Transcript::new(other_session).round_hash()
        );
        let mut t = Transcript::new(ctx.session);
        t.record(&ctx, b"a").unwrap();
        assert_eq!(
            t.record(&ctx, b"b"),
            Err(TranscriptError::Conflict {
                sender: ctx.sender,
                sequence: ctx.sequence
            })
        );
        let stranger = MessageContext {
            session: other_session,
            ..ctx
        };
        let err = t.record(&stranger, b"a").unwrap_err();
        assert!(matches!(err, TranscriptError::WrongSession { .. }));
        assert_eq!(err.sender(), ctx.sender);
    }
}
