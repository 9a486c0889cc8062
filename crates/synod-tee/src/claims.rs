//! What a verifier extracts from evidence: the [`Claims`] a [`Policy`](crate::Policy) judges.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch. Every verifier takes it as a parameter; nothing here reads the
/// clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UnixTime(pub u64);

/// The kind of enclave a piece of evidence comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EnclaveKind {
    /// An Intel SGX enclave, DCAP ECDSA quote.
    SgxDcap,
    /// An Intel TDX trust domain, DCAP ECDSA quote.
    TdxDcap,
    /// An AMD SEV-SNP guest, attestation report signed by its VCEK.
    SevSnp,
    /// synod's simulated enclave process: **no hardware protection**.
    InsecureSimulated,
}

impl EnclaveKind {
    /// Whether this kind, when genuinely verified, is backed by hardware.
    pub const fn hardware_backed(self) -> bool {
        !matches!(self, Self::InsecureSimulated)
    }
}

impl fmt::Display for EnclaveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SgxDcap => "sgx-dcap",
            Self::TdxDcap => "tdx-dcap",
            Self::SevSnp => "sev-snp",
            Self::InsecureSimulated => "insecure-simulated",
        })
    }
}

/// The platform's TCB status as the verifier found it. Intel's statuses are kept by name; SEV-SNP
/// has no status of its own and reports `UpToDate` once its TCB checks pass.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TcbStatus(pub String);

impl TcbStatus {
    /// `UpToDate`.
    pub fn up_to_date() -> Self {
        Self("UpToDate".into())
    }
}

impl fmt::Display for TcbStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Verified statements about an enclave, extracted from evidence whose signatures and collateral
/// checked out at [`Claims::verified_at`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The evidence kind.
    pub kind: EnclaveKind,
    /// `false` for simulated evidence, always; `true` only for verified hardware evidence.
    pub hardware_protected: bool,
    /// MRENCLAVE (SGX, 32 bytes), MRTD (TDX, 48 bytes), the launch measurement (SNP, 48 bytes) or
    /// the SHA-384 of the simulated enclave's binary and configuration.
    pub measurement: Vec<u8>,
    /// MRSIGNER (SGX), MRSIGNER_SEAM (TDX), the author key digest (SNP); empty if none.
    pub signer: Vec<u8>,
    /// The enclave's security version: ISVSVN (SGX), the TEE TCB SVN's first byte (TDX), the
    /// guest SVN (SNP), the configured SVN (simulated).
    pub svn: u32,
    /// Whether the enclave runs in debug mode (memory readable by the host).
    pub debug: bool,
    /// The platform's TCB status.
    pub tcb_status: TcbStatus,
    /// Security advisories that apply to the platform.
    pub advisories: Vec<String>,
    /// The 64 bytes of report data the enclave put in the evidence.
    #[serde(with = "serde_bytes_64")]
    pub report_data: [u8; 64],
    /// The time the evidence was verified at.
    pub verified_at: UnixTime,
}

impl fmt::Display for Claims {
    /// The claims as a person would want to read them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "kind:               {}", self.kind)?;
        writeln!(f, "hardware_protected: {}", self.hardware_protected)?;
        writeln!(f, "measurement:        {}", hex::encode(&self.measurement))?;
        if !self.signer.is_empty() {
            writeln!(f, "signer:             {}", hex::encode(&self.signer))?;
        }
        writeln!(f, "svn:                {}", self.svn)?;
        writeln!(f, "debug:              {}", self.debug)?;
        writeln!(f, "tcb_status:         {}", self.tcb_status)?;
        if !self.advisories.is_empty() {
            writeln!(f, "advisories:         {}", self.advisories.join(", "))?;
        }
        writeln!(f, "report_data:        {}", hex::encode(self.report_data))?;
        write!(
            f,
            "verified_at:        {} (unix seconds)",
            self.verified_at.0
        )
    }
}

mod serde_bytes_64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let v: Vec<u8> = Vec::deserialize(d)?;
        <[u8; 64]>::try_from(v.as_slice())
            .map_err(|_| serde::de::Error::invalid_length(v.len(), &"64 bytes"))
    }
}
