//! Intel SGX and TDX DCAP quotes, verified with `dcap-qvl` (pure Rust, RustCrypto backend, no
//! networking): the quote's signature chain to Intel's pinned SGX root CA, the CRLs, the signed
//! TCB info and QE identity, and their validity at `now`. The collateral is passed in as the
//! JSON of `dcap_qvl::QuoteCollateralV3`; nothing is fetched.

use dcap_qvl::quote::Report;
use dcap_qvl::QuoteCollateralV3;

use crate::claims::{Claims, EnclaveKind, TcbStatus, UnixTime};
use crate::error::{Error, Result};

/// The SGX `ATTRIBUTES.DEBUG` bit (byte 0, bit 1).
const SGX_ATTRIBUTE_DEBUG: u8 = 0x02;
/// The TDX `TD_ATTRIBUTES.DEBUG` bit (byte 0, bit 0).
const TDX_ATTRIBUTE_DEBUG: u8 = 0x01;

/// Verifies a DCAP quote against its collateral at `now`.
pub fn verify(quote: &[u8], collateral_json: &[u8], now: UnixTime) -> Result<Claims> {
    let kind_guess = match quote.get(4..8) {
        Some([0x81, 0, 0, 0]) => EnclaveKind::TdxDcap,
        _ => EnclaveKind::SgxDcap,
    };
    let fail = |reason: String| Error::Evidence {
        kind: kind_guess,
        reason,
    };
    let collateral: QuoteCollateralV3 = serde_json::from_slice(collateral_json)
        .map_err(|e| fail(format!("collateral is not valid JSON: {e}")))?;
    let verified = dcap_qvl::verify::rustcrypto::verify(quote, &collateral, now.0)
        .map_err(|e| fail(format!("{e:#}")))?;
    let (kind, measurement, signer, svn, debug, report_data) = match &verified.report {
        Report::SgxEnclave(r) => (
            EnclaveKind::SgxDcap,
            r.mr_enclave.to_vec(),
            r.mr_signer.to_vec(),
            u32::from(r.isv_svn),
            r.attributes
                .first()
                .is_some_and(|b| b & SGX_ATTRIBUTE_DEBUG != 0),
            r.report_data,
        ),
        other => {
            let td = other
                .as_td10()
                .ok_or_else(|| fail("unknown report body".into()))?;
            (
                EnclaveKind::TdxDcap,
                td.mr_td.to_vec(),
                td.mr_signer_seam.to_vec(),
                // The TDX module's SVN (TEE_TCB_SVN byte 0); a TD has no SVN of its own.
                u32::from(td.tee_tcb_svn.first().copied().unwrap_or(0)),
                td.td_attributes
                    .first()
                    .is_some_and(|b| b & TDX_ATTRIBUTE_DEBUG != 0),
                td.report_data,
            )
        }
    };
    Ok(Claims {
        kind,
        hardware_protected: true,
        measurement,
        signer,
        svn,
        debug,
        tcb_status: TcbStatus(verified.status.clone()),
        advisories: verified.advisory_ids.clone(),
        report_data,
        verified_at: now,
    })
}
