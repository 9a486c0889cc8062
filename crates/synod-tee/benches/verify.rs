//! Verification time per evidence kind: `cargo bench -p synod-tee --bench verify --all-features`
//! (release build). Uses the samples shipped by the published `dcap-qvl` and `sev` crates, found
//! through `cargo metadata`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::time::{Duration, Instant};

#[path = "../tests/samples/mod.rs"]
mod samples;

use samples::package_dir;

use synod_tee::verify::{dcap, snp};
use synod_tee::UnixTime;

fn time(label: &str, mut f: impl FnMut()) {
    f(); // warm-up
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 20 || (start.elapsed() < Duration::from_secs(2) && samples.len() < 200) {
        let t = Instant::now();
        f();
        samples.push(t.elapsed());
    }
    samples.sort();
    let median = samples[samples.len() / 2];
    println!(
        "{label:<28} median {:>9.3} ms over {} runs",
        median.as_secs_f64() * 1e3,
        samples.len()
    );
}

fn main() {
    let dcap_dir = package_dir("dcap-qvl").join("sample");
    let now = UnixTime(1_750_377_600);
    for (name, kind) in [
        ("sgx_quote", "SGX DCAP quote"),
        ("tdx_quote", "TDX DCAP quote"),
    ] {
        let quote = std::fs::read(dcap_dir.join(name)).unwrap();
        let collateral = std::fs::read(dcap_dir.join(format!("{name}_collateral.json"))).unwrap();
        time(kind, || {
            dcap::verify(&quote, &collateral, now).unwrap();
        });
    }
    let sev_dir = package_dir("sev").join("tests/certs_data");
    let report = hex::decode(
        std::fs::read_to_string(sev_dir.join("report_milan.hex"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let vcek = std::fs::read(sev_dir.join("vcek_milan.der")).unwrap();
    time("SEV-SNP report (Milan)", || {
        snp::verify(&report, &vcek, now, snp::SnpOptions::default()).unwrap();
    });
}
