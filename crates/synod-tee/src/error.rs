//! The crate's errors: one `#[non_exhaustive]` enum with structured fields.

use crate::claims::EnclaveKind;

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A claim that a [`Policy`](crate::Policy) refused, naming the claim and what was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyViolation {
    /// The evidence kind is not in the policy's allowed kinds.
    #[error("enclave kind {found} is not allowed by the policy")]
    KindNotAllowed {
        /// What the evidence is.
        found: EnclaveKind,
    },
    /// Simulated evidence and `allow_simulated = false`.
    #[error("simulated evidence (hardware_protected: false) is refused: allow_simulated is false")]
    SimulatedRefused,
    /// A debug enclave and `allow_debug = false`.
    #[error(
        "the enclave runs in debug mode (its memory is readable by the host): allow_debug is false"
    )]
    DebugRefused,
    /// The measurement (MRENCLAVE, MRTD, SNP measurement) is not in the allowed list.
    #[error("measurement {found} is not one of the allowed measurements")]
    MeasurementNotAllowed {
        /// The measurement, hex.
        found: String,
    },
    /// The security version is below the policy's minimum.
    #[error("security version {found} is below the minimum {minimum}")]
    SvnTooLow {
        /// The enclave's SVN.
        found: u32,
        /// The policy's minimum.
        minimum: u32,
    },
    /// The TCB status is not in the allowed list.
    #[error("TCB status {found} is not allowed by the policy")]
    TcbStatusNotAllowed {
        /// The status the verifier found.
        found: String,
    },
    /// The platform is affected by an advisory the policy rejects.
    #[error("the platform is affected by rejected advisory {advisory}")]
    AdvisoryRejected {
        /// The advisory id, e.g. `INTEL-SA-00615`.
        advisory: String,
    },
    /// The report data does not bind the expected nonce, key, participant and epoch (a replay or
    /// a key substitution).
    #[error("report data does not match the expected binding (replayed or substituted evidence)")]
    ReportDataMismatch,
}

/// Why an enclave operation, a verification or a sealing operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The evidence failed cryptographic verification.
    #[error("{kind} evidence rejected: {reason}")]
    Evidence {
        /// The evidence kind.
        kind: EnclaveKind,
        /// What failed, as the verifier put it.
        reason: String,
    },
    /// The verified claims were refused by the policy.
    #[error("policy refused the evidence: {0}")]
    Policy(#[from] PolicyViolation),
    /// A sealed blob could not be parsed.
    #[error("sealed blob is malformed: {0}")]
    SealedFormat(String),
    /// A sealed blob was sealed by another measurement.
    #[error("sealed blob belongs to measurement {sealed}, this enclave is {current}")]
    SealedMeasurementMismatch {
        /// The blob's measurement, hex.
        sealed: String,
        /// This enclave's measurement, hex.
        current: String,
    },
    /// A sealed blob was sealed at a higher SVN than this enclave's (a rollback attempt).
    #[error("sealed blob needs SVN {sealed}, this enclave has SVN {current}")]
    SealedSvnTooHigh {
        /// The blob's SVN.
        sealed: u32,
        /// This enclave's SVN.
        current: u32,
    },
    /// AES-GCM authentication failed: the blob or its metadata was altered, or the platform secret
    /// differs.
    #[error("sealed blob failed authentication (tampered, or sealed on another platform)")]
    SealedTampered,
    /// Sealing itself failed.
    #[error("sealing failed: {0}")]
    Seal(String),
    /// The HSM refused an operation.
    #[error("HSM: {0}")]
    Hsm(String),
    /// A key operation failed inside the HE engine.
    #[error("key operation failed: {0}")]
    KeyOperation(#[from] synod_he::Error),
    /// A key operation was requested out of order (e.g. a decryption share before
    /// thresholdisation).
    #[error("operation out of order: {0}")]
    State(String),
    /// The operation is not implemented by this backend.
    #[error("unsupported by this enclave: {0}")]
    Unsupported(&'static str),
    /// A transport (HPKE) failure.
    #[error("transport encryption: {0}")]
    Transport(#[from] synod_proto::TransportError),
    /// The enclave protocol was violated (bad frame, wrong version, refused peer).
    #[error("enclave protocol: {0}")]
    Protocol(String),
    /// The enclave answered with an error.
    #[error("the enclave refused: {0}")]
    Remote(String),
    /// An I/O failure on the enclave socket or its files.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}
