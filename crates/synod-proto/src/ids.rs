//! Newtypes for the fields of a [`MessageContext`](crate::MessageContext).
//!
//! Each is parsed once at the boundary (`ParticipantId` refuses zero, `ProtocolName` refuses an
//! unknown code, `SessionId` refuses anything but 64 hex digits) so that code holding one never
//! checks it again.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A participant's permanent identifier: its Shamir evaluation point `x ∈ {1, 2, …}` (DESIGN.md
/// §2), never zero and never reused. Displayed as `P<n>`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct ParticipantId(NonZeroU32);

/// The error of building a [`ParticipantId`] from zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("participant id must be non-zero")]
pub struct ZeroParticipantId;

impl ParticipantId {
    /// The participant with evaluation point `id`, or an error if `id` is zero.
    pub const fn new(id: u32) -> Result<Self, ZeroParticipantId> {
        match NonZeroU32::new(id) {
            Some(id) => Ok(Self(id)),
            None => Err(ZeroParticipantId),
        }
    }

    /// The evaluation point as an integer (never zero).
    pub const fn get(self) -> u32 {
        self.0.get()
    }
}

impl TryFrom<u32> for ParticipantId {
    type Error = ZeroParticipantId;

    fn try_from(id: u32) -> Result<Self, Self::Error> {
        Self::new(id)
    }
}

impl From<ParticipantId> for u32 {
    fn from(id: ParticipantId) -> Self {
        id.get()
    }
}

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P{}", self.0)
    }
}

impl fmt::Debug for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A session's 32-byte identifier, chosen by the coordinator at setup. Displayed and parsed as 64
/// lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SessionId(pub [u8; 32]);

/// The error of parsing a [`SessionId`] from text.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("session id must be 64 hex digits: {0}")]
pub struct SessionIdParseError(#[from] hex::FromHexError);

impl SessionId {
    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl FromStr for SessionId {
    type Err = SessionIdParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes)?;
        Ok(Self(bytes))
    }
}

/// A key epoch: incremented each time resharing changes the committee or the threshold.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "epoch {}", self.0)
    }
}

/// Which multiparty protocol a message belongs to. A closed list: a new protocol is a new variant
/// with a new wire code, never a free-form string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
#[non_exhaustive]
pub enum ProtocolName {
    /// Collective public-key generation.
    PublicKeyGen,
    /// Relinearisation-key generation (two rounds).
    RelinKeyGen,
    /// Rotation (Galois) key generation.
    GaloisKeyGen,
    /// Shamir-sharing of the additive key shares.
    Thresholdize,
    /// Upload of encrypted inputs.
    Input,
    /// Threshold decryption.
    Decrypt,
    /// Key switching to a named recipient.
    KeySwitch,
    /// Resharing `(t, A) → (t', B)`.
    Reshare,
}

/// The error of reading an unknown [`ProtocolName`] wire code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol code {0}")]
pub struct UnknownProtocol(pub u8);

impl ProtocolName {
    /// Every protocol, in wire-code order.
    pub const ALL: [Self; 8] = [
        Self::PublicKeyGen,
        Self::RelinKeyGen,
        Self::GaloisKeyGen,
        Self::Thresholdize,
        Self::Input,
        Self::Decrypt,
        Self::KeySwitch,
        Self::Reshare,
    ];

    /// The one-byte wire code. Codes are permanent: never renumber, only append.
    pub const fn code(self) -> u8 {
        match self {
            Self::PublicKeyGen => 1,
            Self::RelinKeyGen => 2,
            Self::GaloisKeyGen => 3,
            Self::Thresholdize => 4,
            Self::Input => 5,
            Self::Decrypt => 6,
            Self::KeySwitch => 7,
            Self::Reshare => 8,
        }
    }

    /// The protocol with wire code `code`.
    pub const fn from_code(code: u8) -> Result<Self, UnknownProtocol> {
        Ok(match code {
            1 => Self::PublicKeyGen,
            2 => Self::RelinKeyGen,
            3 => Self::GaloisKeyGen,
            4 => Self::Thresholdize,
            5 => Self::Input,
            6 => Self::Decrypt,
            7 => Self::KeySwitch,
            8 => Self::Reshare,
            other => return Err(UnknownProtocol(other)),
        })
    }

    /// A short stable name for logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PublicKeyGen => "public-key-gen",
            Self::RelinKeyGen => "relin-key-gen",
            Self::GaloisKeyGen => "galois-key-gen",
            Self::Thresholdize => "thresholdize",
            Self::Input => "input",
            Self::Decrypt => "decrypt",
            Self::KeySwitch => "key-switch",
            Self::Reshare => "reshare",
        }
    }
}

impl TryFrom<u8> for ProtocolName {
    type Error = UnknownProtocol;

    fn try_from(code: u8) -> Result<Self, Self::Error> {
        Self::from_code(code)
    }
}

impl From<ProtocolName> for u8 {
    fn from(protocol: ProtocolName) -> Self {
        protocol.code()
    }
}

impl fmt::Display for ProtocolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A round number within one run of a protocol.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct Round(pub u16);

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "round {}", self.0)
    }
}

/// Who a message is for: everyone in the session, or one participant.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum Recipient {
    /// Every participant of the session.
    Broadcast,
    /// One participant.
    Participant(ParticipantId),
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Broadcast => f.write_str("broadcast"),
            Self::Participant(id) => fmt::Display::fmt(id, f),
        }
    }
}

/// A sender's message counter within a session: strictly increasing across all its messages of
/// the session (every epoch, protocol and round), so that a receiver can refuse replays.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct SequenceNumber(pub u64);

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn participant_id_refuses_zero_and_displays_p_n() {
        assert_eq!(ParticipantId::new(0), Err(ZeroParticipantId));
        let p = ParticipantId::new(7).unwrap();
        assert_eq!(p.get(), 7);
        assert_eq!(p.to_string(), "P7");
        assert!(postcard::from_bytes::<ParticipantId>(&[0]).is_err());
        let bytes = postcard::to_allocvec(&p).unwrap();
        assert_eq!(postcard::from_bytes::<ParticipantId>(&bytes).unwrap(), p);
    }

    #[test]
    fn session_id_hex_round_trip() {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        let id = SessionId(bytes);
        let text = id.to_string();
        assert_eq!(
            text,
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        );
        assert_eq!(text.parse::<SessionId>().unwrap(), id);
        assert!("00".parse::<SessionId>().is_err());
        assert!(text.replace('0', "g").parse::<SessionId>().is_err());
    }

    #[test]
    fn protocol_codes_round_trip_and_are_distinct() {
        for (i, p) in ProtocolName::ALL.iter().enumerate() {
            assert_eq!(usize::from(p.code()), i + 1);
            assert_eq!(ProtocolName::from_code(p.code()), Ok(*p));
        }
        assert_eq!(ProtocolName::from_code(0), Err(UnknownProtocol(0)));
        assert_eq!(ProtocolName::from_code(9), Err(UnknownProtocol(9)));
        assert!(postcard::from_bytes::<ProtocolName>(&[200]).is_err());
    }
}
