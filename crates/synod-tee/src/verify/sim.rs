//! Reports of synod's simulated enclave. They are signed with a simulated platform key (Ed25519)
//! that has no hardware root: anyone with the key file can forge one, so their claims always say
//! `hardware_protected: false`, and no real verifier (DCAP, SEV-SNP) accepts them.

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::claims::{Claims, EnclaveKind, TcbStatus, UnixTime};
use crate::error::{Error, Result};

/// Domain tag of the signed report body.
const SIM_REPORT_TAG: &[u8] = b"synod/tee/sim-report/v1 hardware_protected=false";
/// The simulated report format version.
pub const SIM_REPORT_VERSION: u16 = 1;

/// The signed body of a simulated report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimReportBody {
    /// [`SIM_REPORT_VERSION`].
    pub version: u16,
    /// Always `false`: written into every report so that no reader can miss it.
    pub hardware_protected: bool,
    /// SHA-384 of the enclave binary and its configuration.
    pub measurement: Vec<u8>,
    /// The configured SVN.
    pub svn: u32,
    /// The report data.
    pub report_data: Vec<u8>,
    /// The simulated platform's public key.
    pub platform_key: [u8; 32],
}

/// A simulated report: body and the simulated platform's signature over it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimReport {
    /// The body.
    pub body: SimReportBody,
    /// Ed25519 signature over the tag and the postcard encoding of the body.
    pub signature: Vec<u8>,
}

fn signed_bytes(body: &SimReportBody) -> Result<Vec<u8>> {
    let mut out = SIM_REPORT_TAG.to_vec();
    out.extend(postcard::to_stdvec(body).map_err(|e| Error::Protocol(e.to_string()))?);
    Ok(out)
}

impl SimReport {
    /// Signs `body` with the simulated platform key. Refuses a body that claims protection.
    pub fn sign(body: SimReportBody, key: &SigningKey) -> Result<Self> {
        if body.hardware_protected {
            return Err(Error::Protocol(
                "a simulated report cannot claim hardware protection".into(),
            ));
        }
        let signature = key.sign(&signed_bytes(&body)?).to_bytes().to_vec();
        Ok(Self { body, signature })
    }
}

/// Verifies a simulated report's signature and extracts its claims (`hardware_protected: false`).
pub fn verify(report: &SimReport, now: UnixTime) -> Result<Claims> {
    let fail = |reason: &str| Error::Evidence {
        kind: EnclaveKind::InsecureSimulated,
        reason: reason.into(),
    };
    let body = &report.body;
    if body.version != SIM_REPORT_VERSION {
        return Err(fail("unsupported simulated report version"));
    }
    if body.hardware_protected {
        return Err(fail("a simulated report claims hardware protection"));
    }
    let key = VerifyingKey::from_bytes(&body.platform_key).map_err(|_| fail("bad platform key"))?;
    let sig =
        Signature::from_slice(&report.signature).map_err(|_| fail("bad signature encoding"))?;
    key.verify(&signed_bytes(body)?, &sig)
        .map_err(|_| fail("signature does not verify under the simulated platform key"))?;
    let report_data: [u8; 64] = body
        .report_data
        .as_slice()
        .try_into()
        .map_err(|_| fail("report data is not 64 bytes"))?;
    Ok(Claims {
        kind: EnclaveKind::InsecureSimulated,
        hardware_protected: false,
        measurement: body.measurement.clone(),
        signer: body.platform_key.to_vec(),
        svn: body.svn,
        debug: false,
        tcb_status: TcbStatus("Simulated".into()),
        advisories: Vec::new(),
        report_data,
        verified_at: now,
    })
}
