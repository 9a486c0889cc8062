//! The [`Policy`] a participant applies to a peer's verified [`Claims`] before sending it a share.
//!
//! The defaults refuse what is unsafe to accept without thought: debug enclaves
//! (`allow_debug = false`) and simulated evidence (`allow_simulated = false`). An empty list of
//! measurements accepts none; a policy must name the code it trusts.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::claims::{Claims, EnclaveKind, TcbStatus};
use crate::error::PolicyViolation;
use crate::report_data::ReportData;

/// What a participant accepts from a peer's enclave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Evidence kinds accepted.
    pub allowed_kinds: Vec<EnclaveKind>,
    /// Measurements accepted (MRENCLAVE, MRTD, SNP measurement, simulated measurement).
    pub measurements: Vec<Vec<u8>>,
    /// The lowest security version accepted.
    pub min_svn: u32,
    /// TCB statuses accepted (Intel's names; SNP reports `UpToDate`).
    pub allowed_tcb_statuses: Vec<TcbStatus>,
    /// Advisories that make evidence unacceptable even under an allowed status.
    pub rejected_advisories: Vec<String>,
    /// Accept an enclave in debug mode. Default `false`.
    pub allow_debug: bool,
    /// Accept simulated evidence, which carries no hardware protection. Default `false`.
    pub allow_simulated: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            allowed_kinds: vec![
                EnclaveKind::SgxDcap,
                EnclaveKind::TdxDcap,
                EnclaveKind::SevSnp,
            ],
            measurements: Vec::new(),
            min_svn: 0,
            allowed_tcb_statuses: vec![TcbStatus::up_to_date()],
            rejected_advisories: Vec::new(),
            allow_debug: false,
            allow_simulated: false,
        }
    }
}

impl Policy {
    /// Checks `claims` against this policy and that they bind `expected` (the report data the
    /// verifier computed from its own nonce, the peer's transport key, participant and epoch).
    /// Returns the first violated claim.
    pub fn check(&self, claims: &Claims, expected: &ReportData) -> Result<(), PolicyViolation> {
        let simulated = claims.kind == EnclaveKind::InsecureSimulated || !claims.hardware_protected;
        if simulated && !self.allow_simulated {
            return Err(PolicyViolation::SimulatedRefused);
        }
        // `allow_simulated` admits the simulated kind without listing it.
        let kind_allowed = self.allowed_kinds.contains(&claims.kind)
            || (claims.kind == EnclaveKind::InsecureSimulated && self.allow_simulated);
        if !kind_allowed {
            return Err(PolicyViolation::KindNotAllowed { found: claims.kind });
        }
        if !bool::from(claims.report_data.ct_eq(expected.as_bytes())) {
            return Err(PolicyViolation::ReportDataMismatch);
        }
        if claims.debug && !self.allow_debug {
            return Err(PolicyViolation::DebugRefused);
        }
        if !self.measurements.iter().any(|m| m == &claims.measurement) {
            return Err(PolicyViolation::MeasurementNotAllowed {
                found: hex::encode(&claims.measurement),
            });
        }
        if claims.svn < self.min_svn {
            return Err(PolicyViolation::SvnTooLow {
                found: claims.svn,
                minimum: self.min_svn,
            });
        }
        // Simulated evidence has no TCB to judge; it got here only through `allow_simulated`.
        if claims.kind != EnclaveKind::InsecureSimulated
            && !self.allowed_tcb_statuses.contains(&claims.tcb_status)
        {
            return Err(PolicyViolation::TcbStatusNotAllowed {
                found: claims.tcb_status.0.clone(),
            });
        }
        if let Some(advisory) = claims.advisories.iter().find(|a| {
            self.rejected_advisories
                .iter()
                .any(|r| r.eq_ignore_ascii_case(a))
        }) {
            return Err(PolicyViolation::AdvisoryRejected {
                advisory: advisory.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use crate::claims::UnixTime;
    use crate::report_data::ReportDataInput;

    fn binding() -> ReportData {
        ReportDataInput {
            nonce: [7; 32],
            transport_key: [9; 32],
            participant: 3,
            epoch: 0,
        }
        .digest()
    }

    /// Claims of a healthy production SGX enclave, built in the test: debug enclaves, low SVNs
    /// and other measurements cannot be made from genuine quotes without breaking signatures.
    fn good_claims() -> Claims {
        Claims {
            kind: EnclaveKind::SgxDcap,
            hardware_protected: true,
            measurement: vec![0xAA; 32],
            signer: vec![0xBB; 32],
            svn: 5,
            debug: false,
            tcb_status: TcbStatus::up_to_date(),
            advisories: vec!["INTEL-SA-00615".into()],
            report_data: *binding().as_bytes(),
            verified_at: UnixTime(1_750_000_000),
        }
    }

    fn policy() -> Policy {
        Policy {
            measurements: vec![vec![0xAA; 32]],
            min_svn: 4,
            ..Policy::default()
        }
    }

    #[test]
    fn defaults_refuse_debug_and_simulated() {
        let p = Policy::default();
        assert!(!p.allow_debug);
        assert!(!p.allow_simulated);
        assert!(!p.allowed_kinds.contains(&EnclaveKind::InsecureSimulated));
    }

    #[test]
    fn good_claims_pass() {
        policy().check(&good_claims(), &binding()).unwrap();
    }

    #[test]
    fn debug_enclave_refused() {
        let c = Claims {
            debug: true,
            ..good_claims()
        };
        assert_eq!(
            policy().check(&c, &binding()),
            Err(PolicyViolation::DebugRefused)
        );
        let lenient = Policy {
            allow_debug: true,
            ..policy()
        };
        lenient.check(&c, &binding()).unwrap();
    }

    #[test]
    fn low_svn_refused() {
        let c = Claims {
            svn: 3,
            ..good_claims()
        };
        assert_eq!(
            policy().check(&c, &binding()),
            Err(PolicyViolation::SvnTooLow {
                found: 3,
                minimum: 4
            })
        );
    }

    #[test]
    fn wrong_measurement_refused() {
        let c = Claims {
            measurement: vec![0xAB; 32],
            ..good_claims()
        };
        assert!(matches!(
            policy().check(&c, &binding()),
            Err(PolicyViolation::MeasurementNotAllowed { .. })
        ));
    }

    #[test]
    fn replayed_report_data_refused() {
        let other = ReportDataInput {
            nonce: [8; 32],
            transport_key: [9; 32],
            participant: 3,
            epoch: 0,
        }
        .digest();
        assert_eq!(
            policy().check(&good_claims(), &other),
            Err(PolicyViolation::ReportDataMismatch)
        );
    }

    #[test]
    fn tcb_status_and_advisories() {
        let c = Claims {
            tcb_status: TcbStatus("OutOfDate".into()),
            ..good_claims()
        };
        assert!(matches!(
            policy().check(&c, &binding()),
            Err(PolicyViolation::TcbStatusNotAllowed { .. })
        ));
        let p = Policy {
            rejected_advisories: vec!["INTEL-SA-00615".into()],
            ..policy()
        };
        assert_eq!(
            p.check(&good_claims(), &binding()),
            Err(PolicyViolation::AdvisoryRejected {
                advisory: "INTEL-SA-00615".into()
            })
        );
    }

    #[test]
    fn simulated_refused_unless_allowed() {
        let c = Claims {
            kind: EnclaveKind::InsecureSimulated,
            hardware_protected: false,
            ..good_claims()
        };
        assert_eq!(
            policy().check(&c, &binding()),
            Err(PolicyViolation::SimulatedRefused)
        );
        let p = Policy {
            allow_simulated: true,
            ..policy()
        };
        p.check(&c, &binding()).unwrap();
        // A hardware kind that says it is unprotected is treated as simulated.
        let c = Claims {
            hardware_protected: false,
            ..good_claims()
        };
        assert_eq!(
            policy().check(&c, &binding()),
            Err(PolicyViolation::SimulatedRefused)
        );
    }
}
