//! The one message context of DESIGN.md §3 and its canonical encoding.
//!
//! Every signature, every HPKE associated data and every transcript entry binds
//! [`MessageContext::encode`], so a message cannot be moved to another session, epoch, protocol,
//! round, sender, recipient or position in the sender's stream without detection. The encoding is
//! fixed-layout (every field at a fixed offset, integers big-endian), so it is injective by
//! construction: [`MessageContext::decode`] is its inverse.
//!
//! ```text
//! offset len field
//!      0  12 tag "synod/ctx/v1" (domain separation from every other hashed or signed string)
//!     12   2 protocol version (PROTOCOL_VERSION)
//!     14  32 session id
//!     46   8 epoch
//!     54   1 protocol code (ProtocolName::code)
//!     55   2 round
//!     57   4 sender (non-zero)
//!     61   4 recipient (0 = broadcast, otherwise the participant id)
//!     65   8 sequence number
//!     73     end
//! ```

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{Epoch, ParticipantId, ProtocolName, Recipient, Round, SequenceNumber, SessionId};
use crate::transcript::RoundHash;
use crate::wire::fixed;

/// The wire protocol version this crate speaks. Written into every context; a context with any
/// other version is refused.
///
/// 2: common random polynomials read from the BLAKE3 XOF by rejection sampling
/// (`synod/crp/v2`), and ct×ct by HPS RNS multiplication, whose evaluation outputs (and so
/// output hashes) can differ from version 1's in rare coefficients. Peers of different versions
/// would derive different collective keys, so they must not be in one session.
///
/// 3: thresholdisation and resharing sub-shares may carry a 32-byte seed instead of their values
/// (members at the dealer's nodes; resharing commitments `synod/reshare/commitment/v2`), and
/// ct×ct uses an extension basis of 50-bit primes, whose outputs can again differ from version
/// 2's in rare coefficients.
///
/// 4: relinearisation and rotation keys may have digits of two ciphertext primes (the plan
/// chooses each; `synod_he::Params::with_digit_primes`), so their generation rounds may carry
/// `⌈L/2⌉` rows where version 3 always carried one per prime (`L`), and the enclave set-up names
/// both digit sizes.
///
/// 5: slot sums are traces by the Galois elements `2^j + 1` (not fhe.rs's rotation elements), so
/// the rotation-key rounds cover other elements; the evaluation output carries packs (one-value
/// outputs traced together, `synod_he::galois::GaloisKeys::pack_traces`) and its hash is
/// `synod/evaluation/v2`, which covers them.
///
/// 6: input uploads carry their ciphertexts as `synod_he::ring::WireCiphertext` (bit-packed NTT
/// residues, like every other polynomial on the wire), not fhe.rs's protobuf `to_bytes`; so do the
/// ciphertexts a host hands its enclave to decrypt.
///
/// 7: the Shamir values a dealer sends as a seed (thresholdisation and resharing) and the
/// projection vectors of a resharing challenge are expanded from their seeds with BLAKE3's keyed
/// extendable output (`synod dealt shamir values`, `synod reshare projections`), not ChaCha20.
///
/// 8: a ciphertext product rounds `t·round(x/Q)` per tensor coefficient (Lattigo's BFV scaling),
/// not `round(t·x/Q)`, so the product, and every evaluation output hash over one, differs from
/// version 7's.
pub const PROTOCOL_VERSION: u16 = 8;

/// Domain-separation tag at the start of every encoded context.
const CONTEXT_TAG: &[u8; 12] = b"synod/ctx/v1";

/// Where a message belongs: the one context bound by signatures, HPKE and the transcript.
///
/// The protocol version is not a field: this type is the version-[`PROTOCOL_VERSION`] context, and
/// its encoding always carries that version.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct MessageContext {
    /// The session.
    pub session: SessionId,
    /// The key epoch within the session.
    pub epoch: Epoch,
    /// The protocol the message belongs to.
    pub protocol: ProtocolName,
    /// The round within that protocol.
    pub round: Round,
    /// Who sends (and signs) the message.
    pub sender: ParticipantId,
    /// Who the message is for.
    pub recipient: Recipient,
    /// The sender's sequence number within the session.
    pub sequence: SequenceNumber,
}

/// Why bytes are not an encoded [`MessageContext`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContextDecodeError {
    /// The input is not exactly [`MessageContext::ENCODED_LEN`] bytes.
    #[error("message context is {actual} bytes, expected {expected}")]
    Length {
        /// [`MessageContext::ENCODED_LEN`].
        expected: usize,
        /// The input's length.
        actual: usize,
    },
    /// The domain tag is not `synod/ctx/v1`.
    #[error("message context does not start with the synod/ctx/v1 tag")]
    Tag,
    /// The version is not [`PROTOCOL_VERSION`].
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u16),
    /// The protocol code is unknown.
    #[error("unknown protocol code {0}")]
    UnknownProtocol(u8),
    /// The sender is zero, which is no participant.
    #[error("sender id is zero")]
    ZeroSender,
}

/// A field of [`MessageContext`], as named by a mismatch error.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum ContextField {
    /// [`MessageContext::session`].
    Session,
    /// [`MessageContext::epoch`].
    Epoch,
    /// [`MessageContext::protocol`].
    Protocol,
    /// [`MessageContext::round`].
    Round,
    /// [`MessageContext::sender`].
    Sender,
    /// [`MessageContext::recipient`].
    Recipient,
}

impl fmt::Display for ContextField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Session => "session",
            Self::Epoch => "epoch",
            Self::Protocol => "protocol",
            Self::Round => "round",
            Self::Sender => "sender",
            Self::Recipient => "recipient",
        })
    }
}

/// What a receiver expects of the next message from one sender: everything in the context except
/// the sequence number (which the [`ReplayGuard`](crate::ReplayGuard) checks), plus the hash of
/// the previous round as the receiver saw it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ExpectedContext {
    /// The session.
    pub session: SessionId,
    /// The key epoch.
    pub epoch: Epoch,
    /// The protocol.
    pub protocol: ProtocolName,
    /// The round.
    pub round: Round,
    /// The sender whose key will verify the signature.
    pub sender: ParticipantId,
    /// The recipient: [`Recipient::Broadcast`] for a broadcast round, or the receiver itself.
    pub recipient: Recipient,
    /// The receiver's own [`Transcript::round_hash`](crate::Transcript::round_hash): a sender that
    /// saw a different previous round carries a different hash (DESIGN.md §3).
    pub prev_round_hash: RoundHash,
}

impl ExpectedContext {
    /// The first field in which `context` differs from what is expected, if any.
    pub fn mismatch(&self, context: &MessageContext) -> Option<ContextField> {
        // The sender first: a signer naming someone else as sender is the one mismatch that is
        // provably its own fault (see `EnvelopeError::culprits`), so it must not be masked.
        if context.sender != self.sender {
            Some(ContextField::Sender)
        } else if context.session != self.session {
            Some(ContextField::Session)
        } else if context.epoch != self.epoch {
            Some(ContextField::Epoch)
        } else if context.protocol != self.protocol {
            Some(ContextField::Protocol)
        } else if context.round != self.round {
            Some(ContextField::Round)
        } else if context.recipient != self.recipient {
            Some(ContextField::Recipient)
        } else {
            None
        }
    }

    /// The context a sender fills in for its message number `sequence` of this round.
    pub fn with_sequence(&self, sequence: SequenceNumber) -> MessageContext {
        MessageContext {
            session: self.session,
            epoch: self.epoch,
            protocol: self.protocol,
            round: self.round,
            sender: self.sender,
            recipient: self.recipient,
            sequence,
        }
    }
}

impl MessageContext {
    /// Length of [`encode`](Self::encode)'s output.
    pub const ENCODED_LEN: usize = 73;

    /// The canonical fixed-layout encoding (see the module docs for the layout).
    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let version = PROTOCOL_VERSION.to_be_bytes();
        let epoch = self.epoch.0.to_be_bytes();
        let protocol = [self.protocol.code()];
        let round = self.round.0.to_be_bytes();
        let sender = self.sender.get().to_be_bytes();
        let recipient = recipient_code(self.recipient).to_be_bytes();
        let sequence = self.sequence.0.to_be_bytes();
        let parts: [&[u8]; 9] = [
            CONTEXT_TAG,
            &version,
            &self.session.0,
            &epoch,
            &protocol,
            &round,
            &sender,
            &recipient,
            &sequence,
        ];
        // The parts' lengths add up to ENCODED_LEN (checked at compile time below), so every byte
        // of `out` is written.
        let mut out = [0u8; Self::ENCODED_LEN];
        for (slot, byte) in out.iter_mut().zip(parts.iter().flat_map(|p| p.iter())) {
            *slot = *byte;
        }
        out
    }

    /// Parses an encoded context, refusing any other length, tag or version, an unknown protocol
    /// and a zero sender.
    pub fn decode(bytes: &[u8]) -> Result<Self, ContextDecodeError> {
        if bytes.len() != Self::ENCODED_LEN {
            return Err(ContextDecodeError::Length {
                expected: Self::ENCODED_LEN,
                actual: bytes.len(),
            });
        }
        let mut reader = Reader(bytes);
        if &reader.take::<12>()? != CONTEXT_TAG {
            return Err(ContextDecodeError::Tag);
        }
        let version = u16::from_be_bytes(reader.take()?);
        if version != PROTOCOL_VERSION {
            return Err(ContextDecodeError::UnsupportedVersion(version));
        }
        let session = SessionId(reader.take()?);
        let epoch = Epoch(u64::from_be_bytes(reader.take()?));
        let [code] = reader.take::<1>()?;
        let protocol =
            ProtocolName::from_code(code).map_err(|_| ContextDecodeError::UnknownProtocol(code))?;
        let round = Round(u16::from_be_bytes(reader.take()?));
        let sender = ParticipantId::new(u32::from_be_bytes(reader.take()?))
            .map_err(|_| ContextDecodeError::ZeroSender)?;
        let recipient = match ParticipantId::new(u32::from_be_bytes(reader.take()?)) {
            Ok(id) => Recipient::Participant(id),
            Err(_) => Recipient::Broadcast,
        };
        let sequence = SequenceNumber(u64::from_be_bytes(reader.take()?));
        Ok(Self {
            session,
            epoch,
            protocol,
            round,
            sender,
            recipient,
            sequence,
        })
    }
}

// The layout table in the module docs, checked: tag, version, session, epoch, protocol, round,
// sender, recipient, sequence.
const _: () = assert!(12 + 2 + 32 + 8 + 1 + 2 + 4 + 4 + 8 == MessageContext::ENCODED_LEN);

/// Broadcast is 0, which no participant can be.
fn recipient_code(recipient: Recipient) -> u32 {
    match recipient {
        Recipient::Broadcast => 0,
        Recipient::Participant(id) => id.get(),
    }
}

/// Reads fixed-size chunks off the front of a slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], ContextDecodeError> {
        // Unreachable after the length check in `decode`, but reported rather than panicked on.
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(ContextDecodeError::Length {
                expected: MessageContext::ENCODED_LEN,
                actual: 0,
            })?;
        self.0 = rest;
        Ok(*head)
    }
}

impl fmt::Display for MessageContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "v{} session {} {} {} {} {}→{} {}",
            PROTOCOL_VERSION,
            self.session,
            self.epoch,
            self.protocol,
            self.round,
            self.sender,
            self.recipient,
            self.sequence
        )
    }
}

/// Serialised as its canonical encoding (73 raw bytes in postcard), so the wire form and the
/// signed form are the same bytes.
impl Serialize for MessageContext {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fixed::serialize(&self.encode(), serializer)
    }
}

impl<'de> Deserialize<'de> for MessageContext {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes: [u8; Self::ENCODED_LEN] = fixed::deserialize(deserializer)?;
        Self::decode(&bytes).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use proptest::prelude::*;

    use super::*;

    pub(crate) fn arb_participant() -> impl Strategy<Value = ParticipantId> {
        (1u32..).prop_map(|id| ParticipantId::new(id).unwrap())
    }

    pub(crate) fn arb_context() -> impl Strategy<Value = MessageContext> {
        (
            any::<[u8; 32]>(),
            any::<u64>(),
            prop::sample::select(ProtocolName::ALL.to_vec()),
            any::<u16>(),
            arb_participant(),
            prop::option::of(arb_participant()),
            any::<u64>(),
        )
            .prop_map(
                |(session, epoch, protocol, round, sender, recipient, sequence)| MessageContext {
                    session: SessionId(session),
                    epoch: Epoch(epoch),
                    protocol,
                    round: Round(round),
                    sender,
                    recipient: recipient.map_or(Recipient::Broadcast, Recipient::Participant),
                    sequence: SequenceNumber(sequence),
                },
            )
    }

    pub(crate) fn sample_context() -> MessageContext {
        MessageContext {
            session: SessionId([7; 32]),
            epoch: Epoch(3),
            protocol: ProtocolName::Thresholdize,
            round: Round(2),
            sender: ParticipantId::new(1).unwrap(),
            recipient: Recipient::Participant(ParticipantId::new(2).unwrap()),
            sequence: SequenceNumber(11),
        }
    }

    /// Every context that differs from `ctx` in exactly one field (the version aside, which the
    /// type fixes).
    pub(crate) fn one_field_changes(ctx: &MessageContext) -> Vec<(&'static str, MessageContext)> {
        let other = |id: ParticipantId| ParticipantId::new(id.get() % 1000 + 1).unwrap();
        let mut session = ctx.session;
        session.0[31] ^= 1;
        let protocol = ProtocolName::ALL
            .into_iter()
            .find(|p| *p != ctx.protocol)
            .unwrap();
        let recipient = match ctx.recipient {
            Recipient::Broadcast => Recipient::Participant(ctx.sender),
            Recipient::Participant(_) => Recipient::Broadcast,
        };
        vec![
            ("session", MessageContext { session, ..*ctx }),
            (
                "epoch",
                MessageContext {
                    epoch: Epoch(ctx.epoch.0 ^ 1),
                    ..*ctx
                },
            ),
            ("protocol", MessageContext { protocol, ..*ctx }),
            (
                "round",
                MessageContext {
                    round: Round(ctx.round.0 ^ 1),
                    ..*ctx
                },
            ),
            (
                "sender",
                MessageContext {
                    sender: other(ctx.sender),
                    ..*ctx
                },
            ),
            ("recipient", MessageContext { recipient, ..*ctx }),
            (
                "sequence",
                MessageContext {
                    sequence: SequenceNumber(ctx.sequence.0 ^ 1),
                    ..*ctx
                },
            ),
        ]
    }

    #[test]
    fn layout_is_as_documented() {
        let enc = sample_context().encode();
        assert_eq!(&enc[..12], b"synod/ctx/v1");
        assert_eq!(&enc[12..14], &PROTOCOL_VERSION.to_be_bytes());
        assert_eq!(&enc[14..46], &[7; 32]);
        assert_eq!(&enc[46..54], &3u64.to_be_bytes());
        assert_eq!(enc[54], 4);
        assert_eq!(&enc[55..57], &[0, 2]);
        assert_eq!(&enc[57..61], &[0, 0, 0, 1]);
        assert_eq!(&enc[61..65], &[0, 0, 0, 2]);
        assert_eq!(&enc[65..73], &11u64.to_be_bytes());
    }

    #[test]
    fn decode_refuses_bad_length_tag_version_protocol_sender() {
        let good = sample_context().encode();
        assert_eq!(
            MessageContext::decode(&good[..72]),
            Err(ContextDecodeError::Length {
                expected: 73,
                actual: 72
            })
        );
        let mut long = good.to_vec();
        long.push(0);
        assert!(matches!(
            MessageContext::decode(&long),
            Err(ContextDecodeError::Length { actual: 74, .. })
        ));
        let mut bad = good;
        bad[0] ^= 1;
        assert_eq!(MessageContext::decode(&bad), Err(ContextDecodeError::Tag));
        let mut bad = good;
        bad[13] = 1;
        assert_eq!(
            MessageContext::decode(&bad),
            Err(ContextDecodeError::UnsupportedVersion(1))
        );
        let mut bad = good;
        bad[54] = 0;
        assert_eq!(
            MessageContext::decode(&bad),
            Err(ContextDecodeError::UnknownProtocol(0))
        );
        let mut bad = good;
        bad[57..61].copy_from_slice(&[0; 4]);
        assert_eq!(
            MessageContext::decode(&bad),
            Err(ContextDecodeError::ZeroSender)
        );
    }

    #[test]
    fn broadcast_is_recipient_zero() {
        let ctx = MessageContext {
            recipient: Recipient::Broadcast,
            ..sample_context()
        };
        let enc = ctx.encode();
        assert_eq!(&enc[61..65], &[0; 4]);
        assert_eq!(MessageContext::decode(&enc), Ok(ctx));
    }

    #[test]
    fn expected_context_names_the_first_mismatch() {
        let ctx = sample_context();
        let expected = ExpectedContext {
            session: ctx.session,
            epoch: ctx.epoch,
            protocol: ctx.protocol,
            round: ctx.round,
            sender: ctx.sender,
            recipient: ctx.recipient,
            prev_round_hash: RoundHash([0; 32]),
        };
        assert_eq!(expected.mismatch(&ctx), None);
        assert_eq!(expected.with_sequence(ctx.sequence), ctx);
        let fields = [
            Some(ContextField::Session),
            Some(ContextField::Epoch),
            Some(ContextField::Protocol),
            Some(ContextField::Round),
            Some(ContextField::Sender),
            Some(ContextField::Recipient),
            None, // the sequence number is the replay guard's business
        ];
        for ((name, changed), field) in one_field_changes(&ctx).into_iter().zip(fields) {
            assert_eq!(expected.mismatch(&changed), field, "{name}");
        }
    }

    proptest! {
        #[test]
        fn encoding_round_trips(ctx in arb_context()) {
            prop_assert_eq!(MessageContext::decode(&ctx.encode()), Ok(ctx));
            let wire = postcard::to_allocvec(&ctx).unwrap();
            prop_assert_eq!(&wire[..], &ctx.encode()[..]);
            prop_assert_eq!(postcard::from_bytes::<MessageContext>(&wire).unwrap(), ctx);
        }

        #[test]
        fn distinct_contexts_have_distinct_encodings(a in arb_context(), b in arb_context()) {
            prop_assert_eq!(a == b, a.encode() == b.encode());
        }

        #[test]
        fn one_field_change_changes_the_encoding(ctx in arb_context()) {
            for (name, changed) in one_field_changes(&ctx) {
                prop_assert_ne!(changed.encode(), ctx.encode(), "{}", name);
            }
        }

        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
            let _ = MessageContext::decode(&bytes);
        }

        #[test]
        fn decode_accepts_only_canonical_encodings(mut bytes in prop::collection::vec(any::<u8>(), 73)) {
            // Random bytes with a valid header: whatever decodes must re-encode to the same bytes.
            bytes[..12].copy_from_slice(CONTEXT_TAG);
            bytes[12..14].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
            if let Ok(ctx) = MessageContext::decode(&bytes) {
                prop_assert_eq!(&ctx.encode()[..], &bytes[..]);
            }
        }
    }
}
