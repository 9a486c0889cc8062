//! The real verifiers on real evidence: the samples that the published `dcap-qvl` and `sev`
//! crates ship, found in the cargo registry at test time (never copied into this repository).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

#[path = "samples/mod.rs"]
mod samples;

use samples::package_dir;
use synod_tee::verify::{dcap, snp, verify_evidence};
use synod_tee::{Claims, EnclaveKind, Error, Evidence, Policy, ReportData, TcbStatus, UnixTime};

fn dcap_sample(name: &str) -> (Vec<u8>, Vec<u8>) {
    let dir = package_dir("dcap-qvl").join("sample");
    let quote = std::fs::read(dir.join(name))
        .unwrap_or_else(|e| panic!("the published dcap-qvl ships sample/{name}: {e}"));
    let collateral = std::fs::read(dir.join(format!("{name}_collateral.json"))).unwrap();
    (quote, collateral)
}

fn snp_sample(file: &str) -> Vec<u8> {
    let path = package_dir("sev").join("tests/certs_data").join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("the published sev ships {path:?}: {e}"))
}

fn snp_report() -> Vec<u8> {
    hex::decode(
        String::from_utf8(snp_sample("report_milan.hex"))
            .unwrap()
            .trim(),
    )
    .unwrap()
}

/// Fixed times inside each sample's collateral window (TCB info, QE identity, CRLs).
const SGX_TIME: UnixTime = UnixTime(1_750_377_600); // 2025-06-20T00:00:00Z
const TDX_TIME: UnixTime = UnixTime(1_750_377_600); // 2025-06-20T00:00:00Z
const TDX_OUTDATED_TIME: UnixTime = UnixTime(1_771_459_200); // 2026-02-19T00:00:00Z
const SNP_TIME: UnixTime = UnixTime(1_750_377_600); // 2025-06-20T00:00:00Z

fn evidence_error(r: Result<Claims, Error>) -> String {
    match r {
        Err(e @ Error::Evidence { .. }) => e.to_string(),
        other => panic!("expected an evidence error, got {other:?}"),
    }
}

/// A policy that trusts exactly what `claims` measure, so each test isolates one refusal.
fn policy_for(claims: &Claims) -> Policy {
    Policy {
        measurements: vec![claims.measurement.clone()],
        allowed_tcb_statuses: vec![claims.tcb_status.clone()],
        ..Policy::default()
    }
}

#[test]
fn sgx_sample_accepted() {
    let (quote, collateral) = dcap_sample("sgx_quote");
    let claims = dcap::verify(&quote, &collateral, SGX_TIME).unwrap();
    assert_eq!(claims.kind, EnclaveKind::SgxDcap);
    assert!(claims.hardware_protected);
    assert_eq!(claims.measurement.len(), 32);
    assert_eq!(
        claims.tcb_status,
        TcbStatus("ConfigurationAndSWHardeningNeeded".into())
    );
    assert!(claims.advisories.contains(&"INTEL-SA-00615".to_string()));
    // The same through the evidence enum.
    let e = Evidence::Dcap { quote, collateral };
    assert_eq!(verify_evidence(&e, SGX_TIME).unwrap(), claims);
    // The default policy allows only UpToDate; this platform needs configuration.
    let expected = ReportData(claims.report_data);
    let strict = Policy {
        measurements: vec![claims.measurement.clone()],
        ..Policy::default()
    };
    assert!(strict.check(&claims, &expected).is_err());
    policy_for(&claims).check(&claims, &expected).unwrap();
    let no_615 = Policy {
        rejected_advisories: vec!["INTEL-SA-00615".into()],
        ..policy_for(&claims)
    };
    assert!(no_615.check(&claims, &expected).is_err());
}

#[test]
fn tdx_sample_accepted() {
    let (quote, collateral) = dcap_sample("tdx_quote");
    let claims = dcap::verify(&quote, &collateral, TDX_TIME).unwrap();
    assert_eq!(claims.kind, EnclaveKind::TdxDcap);
    assert_eq!(claims.measurement.len(), 48);
    assert_eq!(claims.tcb_status, TcbStatus::up_to_date());
    let policy = Policy {
        measurements: vec![claims.measurement.clone()],
        ..Policy::default()
    };
    policy
        .check(&claims, &ReportData(claims.report_data))
        .unwrap();
}

/// The outdated sample's platform TCB is below every level of its (genuine, current) TCB info:
/// the verifier itself refuses it, before any policy.
#[test]
fn tdx_outdated_tcb_refused() {
    let (quote, collateral) = dcap_sample("tdx_quote_outdated");
    let err = evidence_error(dcap::verify(&quote, &collateral, TDX_OUTDATED_TIME));
    assert!(err.contains("TCB"), "{err}");
}

#[test]
fn dcap_tampered_signed_bytes_rejected() {
    for (name, time) in [("sgx_quote", SGX_TIME), ("tdx_quote", TDX_TIME)] {
        let (quote, collateral) = dcap_sample(name);
        // Header, report body (measurement, report data), and the last byte of the signed body.
        for offset in [10, 48 + 64, 48 + 100, 48 + 300] {
            let mut bad = quote.clone();
            bad[offset] ^= 0x01;
            evidence_error(dcap::verify(&bad, &collateral, time));
        }
    }
}

#[test]
fn dcap_edited_collateral_rejected() {
    let (quote, collateral) = dcap_sample("tdx_quote");
    let mut json: serde_json::Value = serde_json::from_slice(&collateral).unwrap();
    // Claim a newer TCB evaluation than Intel signed.
    let tcb_info = json["tcb_info"].as_str().unwrap().to_owned();
    let edited = tcb_info.replacen(
        "\"tcbEvaluationDataNumber\":",
        "\"tcbEvaluationDataNumber\":9",
        1,
    );
    assert_ne!(edited, tcb_info);
    json["tcb_info"] = serde_json::Value::String(edited);
    let bad = serde_json::to_vec(&json).unwrap();
    evidence_error(dcap::verify(&quote, &bad, TDX_TIME));
    // Edited QE identity.
    let mut json: serde_json::Value = serde_json::from_slice(&collateral).unwrap();
    let qe = json["qe_identity"]
        .as_str()
        .unwrap()
        .replacen("\"isvprodid\":", "\"isvprodid\":1", 1);
    json["qe_identity"] = serde_json::Value::String(qe);
    evidence_error(dcap::verify(
        &quote,
        &serde_json::to_vec(&json).unwrap(),
        TDX_TIME,
    ));
}

#[test]
fn dcap_collateral_outside_validity_rejected() {
    let (quote, collateral) = dcap_sample("sgx_quote");
    // A year later: TCB info, QE identity and CRLs have expired.
    evidence_error(dcap::verify(
        &quote,
        &collateral,
        UnixTime(SGX_TIME.0 + 365 * 86_400),
    ));
    // A year earlier: the collateral was not issued yet.
    evidence_error(dcap::verify(
        &quote,
        &collateral,
        UnixTime(SGX_TIME.0 - 365 * 86_400),
    ));
}

#[test]
fn dcap_report_data_mismatch_is_a_replay() {
    let (quote, collateral) = dcap_sample("tdx_quote");
    let claims = dcap::verify(&quote, &collateral, TDX_TIME).unwrap();
    let fresh = synod_tee::ReportDataInput {
        nonce: [1; 32],
        transport_key: [2; 32],
        participant: 1,
        epoch: 0,
    }
    .digest();
    let policy = Policy {
        measurements: vec![claims.measurement.clone()],
        ..Policy::default()
    };
    assert_eq!(
        policy.check(&claims, &fresh),
        Err(synod_tee::PolicyViolation::ReportDataMismatch)
    );
}

#[test]
fn snp_sample_accepted() {
    let report = snp_report();
    let vcek = snp_sample("vcek_milan.der");
    let claims = snp::verify(&report, &vcek, SNP_TIME, snp::SnpOptions::default()).unwrap();
    assert_eq!(claims.kind, EnclaveKind::SevSnp);
    assert!(claims.hardware_protected);
    assert_eq!(claims.measurement.len(), 48);
    let e = Evidence::SevSnp { report, vcek };
    assert_eq!(verify_evidence(&e, SNP_TIME).unwrap(), claims);
}

#[test]
fn snp_tampered_report_rejected() {
    let vcek = snp_sample("vcek_milan.der");
    // guest SVN, policy, measurement, report data.
    for offset in [0x04, 0x08, 0x50, 0x90] {
        let mut report = snp_report();
        report[offset] ^= 0x01;
        evidence_error(snp::verify(
            &report,
            &vcek,
            SNP_TIME,
            snp::SnpOptions::default(),
        ));
    }
}

#[test]
fn snp_wrong_vcek_rejected() {
    let err = evidence_error(snp::verify(
        &snp_report(),
        &snp_sample("vcek_turin.der"),
        SNP_TIME,
        snp::SnpOptions::default(),
    ));
    assert!(!err.is_empty());
    let mut bad = snp_sample("vcek_milan.der");
    bad[40] ^= 0xff;
    evidence_error(snp::verify(
        &snp_report(),
        &bad,
        SNP_TIME,
        snp::SnpOptions::default(),
    ));
}

#[test]
fn snp_certificates_outside_validity_rejected() {
    let vcek = snp_sample("vcek_milan.der");
    let err = evidence_error(snp::verify(
        &snp_report(),
        &vcek,
        UnixTime(0),
        snp::SnpOptions::default(),
    ));
    assert!(err.contains("not valid yet"), "{err}");
    let err = evidence_error(snp::verify(
        &snp_report(),
        &vcek,
        UnixTime(4_102_444_800), // 2100
        snp::SnpOptions::default(),
    ));
    assert!(err.contains("expired"), "{err}");
}

#[test]
fn simulated_evidence_is_not_accepted_as_hardware() {
    // A simulated report placed where a DCAP quote or an SNP report is expected fails to parse
    // or verify: no real verifier accepts it.
    let junk = b"synod/tee/sim-report/v1 hardware_protected=false".to_vec();
    let (_, collateral) = dcap_sample("sgx_quote");
    evidence_error(dcap::verify(&junk, &collateral, SGX_TIME));
    evidence_error(snp::verify(
        &junk,
        &snp_sample("vcek_milan.der"),
        SNP_TIME,
        snp::SnpOptions::default(),
    ));
}
