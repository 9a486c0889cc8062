//! AMD SEV-SNP attestation reports, verified with `sev` (`crypto_nossl`: pure-Rust P-384/RSA)
//! plus the checks `sev` leaves to its caller:
//!
//! - the VCEK chains to AMD's ARK/ASK for Milan, Genoa or Turin, as pinned in `sev`;
//! - ARK, ASK and VCEK are valid at `now` (not before, not after);
//! - the report is signed by the VCEK (ECDSA P-384, SHA-384), its version is known (2 to 5) and
//!   its signature algorithm is ECDSA P-384;
//! - the chip id and the reported TCB (bootloader, TEE, SNP, microcode and, on Turin, FMC SPLs)
//!   equal those in the VCEK's extensions, so a VCEK of another chip or TCB is refused;
//! - the report was requested at VMPL 0 (the most privileged level), or at most `max_vmpl`.

use sev::certs::snp::{builtin, ca, Certificate, Chain, Verifiable as _};
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser as _;
use x509_cert::der::asn1::{ObjectIdentifier, OctetString};
use x509_cert::der::Decode as _;

use crate::claims::{Claims, EnclaveKind, TcbStatus, UnixTime};
use crate::error::{Error, Result};

const OID_BL_SPL: &str = "1.3.6.1.4.1.3704.1.3.1";
const OID_TEE_SPL: &str = "1.3.6.1.4.1.3704.1.3.2";
const OID_SNP_SPL: &str = "1.3.6.1.4.1.3704.1.3.3";
const OID_UCODE_SPL: &str = "1.3.6.1.4.1.3704.1.3.8";
const OID_FMC_SPL: &str = "1.3.6.1.4.1.3704.1.3.9";
const OID_HW_ID: &str = "1.3.6.1.4.1.3704.1.4";

/// The only signature algorithm of SNP reports: ECDSA P-384 with SHA-384.
const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;

/// Options of the SNP checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnpOptions {
    /// The highest (least privileged) VMPL a report may come from. Default 0.
    pub max_vmpl: u32,
}

fn fail(reason: impl Into<String>) -> Error {
    Error::Evidence {
        kind: EnclaveKind::SevSnp,
        reason: reason.into(),
    }
}

fn oid(s: &str) -> Result<ObjectIdentifier> {
    ObjectIdentifier::new(s).map_err(|_| fail(format!("bad OID {s}")))
}

fn extension<'a>(cert: &'a x509_cert::Certificate, id: &str) -> Result<Option<&'a [u8]>> {
    let id = oid(id)?;
    Ok(cert
        .tbs_certificate
        .extensions
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .find(|e| e.extn_id == id)
        .map(|e| e.extn_value.as_bytes()))
}

fn spl(cert: &x509_cert::Certificate, id: &str, name: &str) -> Result<Option<u8>> {
    extension(cert, id)?
        .map(|der| u8::from_der(der).map_err(|e| fail(format!("VCEK {name} extension: {e}"))))
        .transpose()
}

fn check_validity(cert: &x509_cert::Certificate, name: &str, now: UnixTime) -> Result<()> {
    let v = &cert.tbs_certificate.validity;
    let not_before = v.not_before.to_unix_duration().as_secs();
    let not_after = v.not_after.to_unix_duration().as_secs();
    if now.0 < not_before {
        return Err(fail(format!(
            "{name} certificate is not valid yet (not before {not_before}, now {})",
            now.0
        )));
    }
    if now.0 > not_after {
        return Err(fail(format!(
            "{name} certificate has expired (not after {not_after}, now {})",
            now.0
        )));
    }
    Ok(())
}

/// The AMD CA chain that issued `vcek`, among the ones `sev` pins.
fn issuing_chain(vcek: &Certificate) -> Result<Chain> {
    let candidates = [
        ("Milan", builtin::milan::ark(), builtin::milan::ask()),
        ("Genoa", builtin::genoa::ark(), builtin::genoa::ask()),
        ("Turin", builtin::turin::ark(), builtin::turin::ask()),
    ];
    for (_name, ark, ask) in candidates {
        let (Ok(ark), Ok(ask)) = (ark, ask) else {
            continue;
        };
        let chain = Chain {
            ca: ca::Chain { ark, ask },
            vek: vcek.clone(),
        };
        if (&chain).verify().is_ok() {
            return Ok(chain);
        }
    }
    Err(fail(
        "the VCEK is not issued by AMD's Milan, Genoa or Turin ARK/ASK",
    ))
}

/// Verifies an SNP report and its VCEK at `now`.
pub fn verify(
    report: &[u8],
    vcek_der: &[u8],
    now: UnixTime,
    options: SnpOptions,
) -> Result<Claims> {
    let parsed = AttestationReport::from_bytes(report)
        .map_err(|e| fail(format!("malformed report: {e}")))?;
    if !(2..=5).contains(&parsed.version) {
        return Err(fail(format!(
            "unsupported report version {}",
            parsed.version
        )));
    }
    if parsed.sig_algo != SIG_ALGO_ECDSA_P384_SHA384 {
        return Err(fail(format!(
            "unsupported signature algorithm {}",
            parsed.sig_algo
        )));
    }
    let vcek = Certificate::from_der(vcek_der).map_err(|e| fail(format!("VCEK: {e}")))?;
    let chain = issuing_chain(&vcek)?;
    for (cert, name) in [
        (&chain.ca.ark, "ARK"),
        (&chain.ca.ask, "ASK"),
        (&chain.vek, "VCEK"),
    ] {
        let x509: x509_cert::Certificate = cert.clone().into();
        check_validity(&x509, name, now)?;
    }
    (&chain, &parsed)
        .verify()
        .map_err(|e| fail(format!("report signature: {e}")))?;

    let vcek_x509 =
        x509_cert::Certificate::from_der(vcek_der).map_err(|e| fail(format!("VCEK: {e}")))?;
    let hwid =
        extension(&vcek_x509, OID_HW_ID)?.ok_or_else(|| fail("VCEK has no hwID extension"))?;
    // AMD's VCEKs carry the raw chip id; accept a DER OCTET STRING around it as well.
    let hwid = if hwid.len() == 64 || hwid.len() == 8 {
        hwid.to_vec()
    } else {
        OctetString::from_der(hwid)
            .map_err(|e| fail(format!("VCEK hwID extension: {e}")))?
            .into_bytes()
    };
    let chip_matches = parsed.chip_id.get(..hwid.len()) == Some(hwid.as_slice())
        && parsed
            .chip_id
            .get(hwid.len()..)
            .is_some_and(|rest| rest.iter().all(|&b| b == 0));
    if hwid.is_empty() || !chip_matches {
        return Err(fail(
            "the report's chip id is not the VCEK's hwID (wrong VCEK)",
        ));
    }
    let tcb = &parsed.reported_tcb;
    for (id, name, value) in [
        (OID_BL_SPL, "bootloader", Some(tcb.bootloader)),
        (OID_TEE_SPL, "TEE", Some(tcb.tee)),
        (OID_SNP_SPL, "SNP", Some(tcb.snp)),
        (OID_UCODE_SPL, "microcode", Some(tcb.microcode)),
        (OID_FMC_SPL, "FMC", tcb.fmc),
    ] {
        let in_cert = spl(&vcek_x509, id, name)?;
        if in_cert != value && !(in_cert.is_none() && id == OID_FMC_SPL) {
            return Err(fail(format!(
                "reported {name} SPL {value:?} differs from the VCEK's {in_cert:?} (wrong VCEK or TCB)"
            )));
        }
    }
    if parsed.vmpl > options.max_vmpl {
        return Err(fail(format!(
            "report comes from VMPL {}, at most {} allowed",
            parsed.vmpl, options.max_vmpl
        )));
    }
    Ok(Claims {
        kind: EnclaveKind::SevSnp,
        hardware_protected: true,
        measurement: parsed.measurement.to_vec(),
        signer: parsed.author_key_digest.to_vec(),
        svn: parsed.guest_svn,
        debug: parsed.policy.debug_allowed(),
        tcb_status: TcbStatus::up_to_date(),
        advisories: Vec::new(),
        report_data: parsed.report_data,
        verified_at: now,
    })
}
