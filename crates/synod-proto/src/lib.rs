//! The wire crate of synod: versioned wire messages, signed envelopes, transport encryption and
//! transcript hashing, all bound to the one [`MessageContext`] of DESIGN.md §3 (protocol version,
//! session, epoch, protocol, round, sender, recipient, sequence number) whose fixed-layout encoding
//! is what every Ed25519 signature, every HPKE associated data and every transcript entry covers;
//! it parses untrusted bytes into typed values with typed errors and never panics on them, and it
//! must never contain protocol logic: what a payload means, which rounds exist and when a party may
//! send belong to the protocol crates that use these types.

mod context;
mod envelope;
mod identity;
mod ids;
mod transcript;
mod transport;
mod wire;

pub use context::{
    ContextDecodeError, ContextField, ExpectedContext, MessageContext, PROTOCOL_VERSION,
};
pub use envelope::{EnvelopeError, ReplayGuard, SignedEnvelope, Verified};
pub use identity::{IdentityKey, IdentityPublicKey, Signature};
pub use ids::{
    Epoch, ParticipantId, ProtocolName, Recipient, Round, SequenceNumber, SessionId,
    SessionIdParseError, UnknownProtocol, ZeroParticipantId,
};
pub use transcript::{RoundHash, Transcript, TranscriptError};
pub use transport::{open, seal, SealedPayload, TransportError, TransportKey, TransportPublicKey};
pub use wire::{encode_secret, WireError};
