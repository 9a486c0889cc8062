//! The one error type of `synod-he`.

use crate::shamir::EvaluationPoint;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `synod-he`.
///
/// Variants that can be blamed on a participant carry its evaluation point;
/// [`Error::culprits`] lists them.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The parameter set cannot be built or is not allowed here.
    #[error("parameters: {0}")]
    Parameters(String),
    /// The threshold does not satisfy `1 <= t <= n`.
    #[error("invalid threshold {t} for a committee of {n}")]
    InvalidThreshold {
        /// Requested threshold.
        t: usize,
        /// Committee size.
        n: usize,
    },
    /// An evaluation point appears twice, or is zero.
    #[error("invalid committee: {0}")]
    InvalidCommittee(String),
    /// A message from a participant could not be parsed against the session's
    /// parameters (wrong length, level, representation or out-of-range residue).
    #[error("malformed {what} from participant {sender}: {reason}")]
    Malformed {
        /// Who sent it.
        sender: EvaluationPoint,
        /// Which message.
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A message came from a participant that is not expected in this round.
    #[error("{what} from participant {sender}, who is not part of {expected}")]
    UnexpectedSender {
        /// Who sent it.
        sender: EvaluationPoint,
        /// Which message.
        what: &'static str,
        /// The set the sender should have belonged to.
        expected: String,
    },
    /// Two messages of the same round from one participant.
    #[error("duplicate {what} from participant {sender}")]
    Duplicate {
        /// Who sent it twice.
        sender: EvaluationPoint,
        /// Which message.
        what: &'static str,
    },
    /// A decryption or key-switch share was computed for another decryption set
    /// (so its Lagrange weight is wrong for this combination).
    #[error("share from participant {sender} was computed for decryption set {claimed:?}, not {expected:?}")]
    WrongDecryptionSet {
        /// Who sent it.
        sender: EvaluationPoint,
        /// The set the share says it was made for.
        claimed: Vec<u32>,
        /// The set being combined.
        expected: Vec<u32>,
    },
    /// A share was computed for a different ciphertext.
    #[error("share from participant {sender} is for another ciphertext")]
    WrongCiphertext {
        /// Who sent it.
        sender: EvaluationPoint,
    },
    /// Some expected participants did not contribute.
    #[error("{what}: missing contributions from participants {missing:?}")]
    Missing {
        /// Which round.
        what: &'static str,
        /// Points that are missing.
        missing: Vec<u32>,
    },
    /// The noise budget of the parameter set cannot hold the requested flooding.
    #[error("noise budget exceeded: {0}")]
    NoiseBudget(String),
    /// A value cannot be encoded in the plaintext space.
    #[error("encoding: {0}")]
    Encoding(String),
    /// An error reported by the `fhe` library.
    #[error("fhe: {0}")]
    Fhe(#[from] fhe::Error),
    /// An error reported by `fhe-math`.
    #[error("ring arithmetic: {0}")]
    Math(#[from] fhe_math::Error),
}

impl Error {
    /// The participants this error blames, if any.
    pub fn culprits(&self) -> Vec<EvaluationPoint> {
        match self {
            Error::Malformed { sender, .. }
            | Error::UnexpectedSender { sender, .. }
            | Error::Duplicate { sender, .. }
            | Error::WrongDecryptionSet { sender, .. }
            | Error::WrongCiphertext { sender } => vec![*sender],
            _ => Vec::new(),
        }
    }
}
