//! `cargo bench -p synod --bench enclave_demo`: the demo's time with and without
//! one simulated enclave process per participant (release build).
//!
//! Environment: `SYNOD_BENCH_PARTIES` (5), `SYNOD_BENCH_THRESHOLD` (3),
//! `SYNOD_BENCH_ROWS` (8192), `SYNOD_BENCH_RUNS` (3). Prints the median of
//! each phase over the runs; every run must report `ok: true`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

/// mimalloc keeps freed pages for reuse (see the workspace Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // The main thread works in rayon's pool (see `synod_he::join_global_pool`).
    synod_he::join_global_pool();
    if !cfg!(feature = "insecure-sim") {
        println!("enclave_demo: built without the insecure-sim feature; nothing to measure");
        return;
    }
    let parties = env("SYNOD_BENCH_PARTIES", 5).to_string();
    let threshold = env("SYNOD_BENCH_THRESHOLD", 3).to_string();
    let rows = env("SYNOD_BENCH_ROWS", 8192).to_string();
    let runs = env("SYNOD_BENCH_RUNS", 3).max(1);
    let mut table: BTreeMap<&str, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for run in 0..runs {
        for (label, extra) in [
            ("in process", &[][..]),
            ("enclave processes", &["--enclave", "insecure-sim"][..]),
        ] {
            let seed = (run + 1).to_string();
            let out = Command::new(env!("CARGO_BIN_EXE_synod"))
                .args(["demo", "--json", "--parties", &parties])
                .args(["--threshold", &threshold, "--rows", &rows, "--seed", &seed])
                .args(extra)
                .output()
                .expect("run synod");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let report: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(report["ok"], true);
            let phases = table.entry(label).or_default();
            let mut at = 0;
            let phases_in_order = common::ordered_phases(&out.stdout).unwrap();
            for (name, ms) in &phases_in_order {
                match order.iter().position(|n| n == name) {
                    Some(i) => at = i + 1,
                    None => {
                        order.insert(at, name.clone());
                        at += 1;
                    }
                }
                phases.entry(name.clone()).or_default().push(*ms);
            }
            phases
                .entry("total".into())
                .or_default()
                .push(report["total_ms"].as_f64().unwrap());
        }
    }
    order.push("total".into());
    println!(
        "synod demo, {parties} parties, threshold {threshold}, {rows} rows: median of {runs} \
         run(s), ms"
    );
    println!(
        "{:<34} {:>12} {:>18} {:>8}",
        "phase", "in process", "enclave processes", "ratio"
    );
    for name in &order {
        let get = |label: &str| {
            table
                .get(label)
                .and_then(|p| p.get(name))
                .map(|v| median(v.clone()))
        };
        let (a, b) = (get("in process"), get("enclave processes"));
        let cell = |x: Option<f64>| x.map(|x| format!("{x:.1}")).unwrap_or_else(|| "—".into());
        let ratio = match (a, b) {
            (Some(a), Some(b)) if a > 0.0 => format!("{:.2}", b / a),
            _ => "—".into(),
        };
        println!("{name:<34} {:>12} {:>18} {ratio:>8}", cell(a), cell(b));
    }
}
