//! The 64 bytes of report data that bind an enclave's transport key to a verifier's challenge:
//! `SHA-512("synod/tee/report-data/v1" ‖ nonce ‖ enclave transport public key ‖ participant ‖
//! epoch)`, integers big-endian. A verifier that computes it from its own fresh nonce and finds it
//! in verified evidence knows the key belongs to that enclave now, for that participant and epoch.

use sha2::{Digest, Sha512};

/// Domain-separation tag of the report data hash.
pub const REPORT_DATA_DOMAIN: &[u8] = b"synod/tee/report-data/v1";

/// What the report data binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportDataInput {
    /// The verifier's fresh challenge.
    pub nonce: [u8; 32],
    /// The enclave's X25519 transport public key.
    pub transport_key: [u8; 32],
    /// The participant the enclave serves.
    pub participant: u32,
    /// The key epoch.
    pub epoch: u64,
}

impl ReportDataInput {
    /// The 64-byte report data.
    pub fn digest(&self) -> ReportData {
        let mut h = Sha512::new();
        h.update(REPORT_DATA_DOMAIN);
        h.update(self.nonce);
        h.update(self.transport_key);
        h.update(self.participant.to_be_bytes());
        h.update(self.epoch.to_be_bytes());
        ReportData(h.finalize().into())
    }
}

/// 64 bytes of report data, as placed in SGX/TDX/SNP evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportData(pub [u8; 64]);

impl ReportData {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_bound() {
        let base = ReportDataInput {
            nonce: [1; 32],
            transport_key: [2; 32],
            participant: 3,
            epoch: 4,
        };
        let d = base.digest();
        assert_ne!(
            d,
            ReportDataInput {
                nonce: [0; 32],
                ..base
            }
            .digest()
        );
        assert_ne!(
            d,
            ReportDataInput {
                transport_key: [0; 32],
                ..base
            }
            .digest()
        );
        assert_ne!(
            d,
            ReportDataInput {
                participant: 4,
                ..base
            }
            .digest()
        );
        assert_ne!(d, ReportDataInput { epoch: 5, ..base }.digest());
    }
}
