//! Attestation verifiers: pure functions of (evidence, collateral, time) → [`Claims`].
//!
//! Each verifier checks signatures up to a pinned root and the freshness of collateral at the
//! time it is given; it never reads the clock and never fetches anything. Policy (which
//! measurements, SVNs and TCB statuses are acceptable) is separate: [`crate::Policy::check`].

use crate::claims::{Claims, UnixTime};
use crate::enclave::Evidence;
use crate::error::Result;

pub mod dcap;
pub mod sim;
pub mod snp;

/// Verifies any evidence at `now`. Simulated evidence is verified (its signature checks out) but
/// its claims say `hardware_protected: false`, which the default policy refuses.
pub fn verify_evidence(evidence: &Evidence, now: UnixTime) -> Result<Claims> {
    match evidence {
        Evidence::Dcap { quote, collateral } => dcap::verify(quote, collateral, now),
        Evidence::SevSnp { report, vcek } => {
            snp::verify(report, vcek, now, snp::SnpOptions::default())
        }
        Evidence::InsecureSimulated(report) => sim::verify(report, now),
    }
}
