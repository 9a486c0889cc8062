//! Scale curves: `synod demo`'s whole session (set-up with key generation,
//! relinearisation and rotation keys and thresholdisation; inputs; sum, mean,
//! variance of each party's column and the p1·p2 inner product; threshold
//! decryption by t = ⌊n/2⌋ + 1) against the number of parties and the number
//! of values per party.
//!
//! Run: `cargo bench -p synod --bench scale` (release build). Each
//! configuration and repetition runs in a fresh child process (this binary
//! re-executed with `SYNOD_SCALE_CHILD` set), so that the peak resident set
//! (`VmHWM` in `/proc/self/status`) belongs to that run alone. The child runs
//! the demo's own code (`src/demo.rs`, included below), so the session here
//! is exactly `synod demo --json --parties n --threshold t --rows R`.
//!
//! Environment:
//! - `SYNOD_SCALE_PARTIES` (default `5,10,20,50,100`), at `SYNOD_SCALE_BASE_VALUES`
//!   values (default 8192);
//! - `SYNOD_SCALE_VALUES` (default `8192,65536,262144,1048576`), at
//!   `SYNOD_SCALE_BASE_PARTIES` parties (default 5);
//! - `SYNOD_SCALE_REPS` (default 3) repetitions of a cheap configuration,
//!   `SYNOD_SCALE_REPS_BIG` (default 1) of one with ≥ 50 parties or ≥ 262144 values;
//! - `SYNOD_SCALE_OUT` (default `target/scale` in the workspace): `scale.json`,
//!   `scale.md` and `scale.svg` are written there.
//!
//! Quick check: `SYNOD_SCALE_PARTIES=5,10 SYNOD_SCALE_VALUES=8192,16384
//! SYNOD_SCALE_REPS=1 cargo bench -p synod --bench scale`. Times are
//! medians over the repetitions; the peak is the largest over them. Nothing is
//! asserted except that every session decrypts correctly (`ok: true`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

/// mimalloc keeps freed pages for reuse (see the workspace Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use serde::Serialize;
use serde_json::Value;

// The demo itself, compiled into this bench (it lives in the `synod` binary,
// which has no library to link against). The enclave module is only there
// because the demo names it; the scale runs never start enclaves.
#[allow(dead_code)]
mod common;
#[path = "../src/demo.rs"]
mod demo;
#[cfg(feature = "insecure-sim")]
#[allow(dead_code)]
#[path = "../src/enclave.rs"]
mod enclave;

const CHILD: &str = "SYNOD_SCALE_CHILD";

/// `synod demo`'s arguments, parsed as the command line would.
#[derive(Parser)]
struct DemoCli {
    #[command(flatten)]
    args: demo::DemoArgs,
}

fn list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A `kB` field of `/proc/self/status` (`VmHWM`, `VmRSS`), in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU seconds of this process (`/proc/self/stat` fields 14
/// and 15, in USER_HZ = 100 ticks).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Child: one demo session, then one JSON line with this process's peak
/// memory and CPU time.
fn child(spec: &str) -> std::process::ExitCode {
    let [parties, rows, seed]: [usize; 3] = spec
        .split(',')
        .map(|x| x.parse().expect("SYNOD_SCALE_CHILD=parties,rows,seed"))
        .collect::<Vec<_>>()
        .try_into()
        .expect("SYNOD_SCALE_CHILD=parties,rows,seed");
    let t = parties / 2 + 1;
    let argv = [
        "demo".to_string(),
        "--json".into(),
        format!("--parties={parties}"),
        format!("--threshold={t}"),
        format!("--rows={rows}"),
        format!("--seed={seed}"),
    ];
    let cli = DemoCli::parse_from(argv);
    let ok = match demo::run(cli.args) {
        Ok(ok) => ok,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    println!(
        "{}",
        serde_json::json!({
            "vm_hwm_kib": status_kib("VmHWM"),
            "cpu_s": cpu_seconds(),
        })
    );
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}

/// One run's measurements.
struct Run {
    phases: Vec<(String, f64)>,
    total_ms: f64,
    cpu_s: f64,
    peak_kib: u64,
    log_q: f64,
    p_bits: u32,
}

/// One child run; `Err` with the child's status and last stderr line when it
/// did not finish (killed for memory, say), so that the sweep goes on.
fn run_once(parties: usize, rows: usize, seed: usize) -> Result<Run, String> {
    let out = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, format!("{parties},{rows},{seed}"))
        .output()
        .expect("re-execute the bench");
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("").to_string();
        return Err(format!("{} {last}", out.status).trim().to_string());
    }
    let mut values = serde_json::Deserializer::from_slice(&out.stdout).into_iter::<Value>();
    let report = values.next().expect("demo report").expect("demo JSON");
    let mem = values.next().expect("memory line").expect("memory JSON");
    assert_eq!(report["ok"], true, "{parties} parties, {rows} values");
    // `phases_ms` in the order the demo wrote it: serde_json's map keeps
    // insertion order only with `preserve_order`, so read the keys from the
    // text itself.
    let phases = ordered_phases(&out.stdout, &report);
    Ok(Run {
        phases,
        total_ms: report["total_ms"].as_f64().unwrap(),
        cpu_s: mem["cpu_s"].as_f64().unwrap(),
        peak_kib: mem["vm_hwm_kib"].as_u64().unwrap(),
        log_q: report["log_q"].as_f64().unwrap(),
        p_bits: report["plaintext_modulus"]
            .as_u64()
            .map(|p| 64 - p.leading_zeros())
            .unwrap(),
    })
}

fn ordered_phases(stdout: &[u8], report: &Value) -> Vec<(String, f64)> {
    match common::ordered_phases(stdout) {
        Some(p) => p,
        None => report["phases_ms"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(0.0)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[derive(Serialize)]
struct Row {
    sweep: &'static str,
    parties: usize,
    threshold: usize,
    values: usize,
    ciphertexts_per_party: usize,
    reps: usize,
    log_q: f64,
    p_bits: u32,
    /// Median milliseconds of each demo phase, in the demo's order.
    phases_ms: Vec<(String, f64)>,
    total_ms: f64,
    cpu_s: f64,
    /// Largest `VmHWM` over the repetitions.
    peak_mib: f64,
    /// Why a run did not finish (the row then has no figures).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The phases shown as table columns (the demo's names).
const COLUMNS: [(&str, &str); 9] = [
    ("setup: public key", "pk"),
    ("setup: relinearisation key", "relin"),
    ("setup: rotation keys", "rot"),
    ("setup: thresholdisation", "thresh"),
    ("setup", "setup"),
    ("inputs", "inputs"),
    ("compute", "compute"),
    ("decrypt", "decrypt"),
    ("plan", "plan"),
];

fn seconds(row: &Row, phase: &str) -> String {
    row.phases_ms
        .iter()
        .find(|(n, _)| n == phase)
        .map(|(_, ms)| format!("{:.2}", ms / 1000.0))
        .unwrap_or_else(|| "-".into())
}

fn table(rows: &[Row]) -> String {
    let mut s = String::from("| parties | t | values/party | cts/party | reps |");
    for (_, short) in COLUMNS {
        s += &format!(" {short} s |");
    }
    s += " total s | CPU s | peak RSS MiB |\n|";
    s += &"---|".repeat(5 + COLUMNS.len() + 3);
    s += "\n";
    for r in rows {
        s += &format!(
            "| {} | {} | {} | {} | {} |",
            r.parties, r.threshold, r.values, r.ciphertexts_per_party, r.reps
        );
        if let Some(e) = &r.error {
            s += &format!(" failed: {e} |\n");
            continue;
        }
        for (phase, _) in COLUMNS {
            s += &format!(" {} |", seconds(r, phase));
        }
        s += &format!(
            " {:.2} | {:.1} | {:.0} |\n",
            r.total_ms / 1000.0,
            r.cpu_s,
            r.peak_mib
        );
    }
    s
}

/// One log-x chart panel: `ys` against `xs`, at (`left`, `top`).
fn panel(left: f64, top: f64, title: &str, xs: &[f64], ys: &[f64], ylabel: &str) -> String {
    const W: f64 = 360.0;
    const H: f64 = 220.0;
    if xs.len() < 2 || xs.len() != ys.len() {
        return String::new();
    }
    let (x0, x1) = (xs[0].ln(), xs[xs.len() - 1].ln().max(xs[0].ln() + 1e-9));
    let ymax = ys.iter().copied().fold(0.0, f64::max) * 1.1;
    let ymax = if ymax > 0.0 { ymax } else { 1.0 };
    let px = |x: f64| left + 50.0 + (x.ln() - x0) / (x1 - x0) * (W - 70.0);
    let py = |y: f64| top + 30.0 + (1.0 - y / ymax) * (H - 70.0);
    let mut s = format!(
        "<text x='{}' y='{}' font-weight='bold'>{title}</text>\
         <line x1='{l}' y1='{b}' x2='{r}' y2='{b}' stroke='black'/>\
         <line x1='{l}' y1='{t}' x2='{l}' y2='{b}' stroke='black'/>\
         <text x='{}' y='{}' font-size='10'>{ylabel}</text>",
        left + 10.0,
        top + 15.0,
        left + 10.0,
        top + 25.0,
        l = left + 50.0,
        r = left + W - 20.0,
        t = top + 30.0,
        b = top + H - 40.0,
    );
    for k in 0..=4 {
        let y = ymax * k as f64 / 4.0;
        s += &format!(
            "<text x='{}' y='{}' font-size='10' text-anchor='end'>{}</text>",
            left + 46.0,
            py(y) + 3.0,
            if ymax >= 10.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.1}")
            }
        );
    }
    let mut points = Vec::new();
    for (&x, &y) in xs.iter().zip(ys) {
        points.push(format!("{:.1},{:.1}", px(x), py(y)));
        s += &format!(
            "<circle cx='{:.1}' cy='{:.1}' r='3' fill='#1f77b4'/>\
             <text x='{:.1}' y='{}' font-size='10' text-anchor='middle'>{x}</text>",
            px(x),
            py(y),
            px(x),
            top + H - 26.0
        );
    }
    s += &format!(
        "<polyline fill='none' stroke='#1f77b4' stroke-width='2' points='{}'/>",
        points.join(" ")
    );
    s
}

fn svg(rows: &[Row]) -> String {
    let mut body = String::new();
    for (i, sweep) in ["parties", "values"].iter().enumerate() {
        let sel: Vec<&Row> = rows
            .iter()
            .filter(|r| r.sweep == *sweep && r.error.is_none())
            .collect();
        let xs: Vec<f64> = sel
            .iter()
            .map(|r| {
                if *sweep == "parties" {
                    r.parties as f64
                } else {
                    r.values as f64
                }
            })
            .collect();
        let time: Vec<f64> = sel.iter().map(|r| r.total_ms / 1000.0).collect();
        let mem: Vec<f64> = sel.iter().map(|r| r.peak_mib / 1024.0).collect();
        let top = i as f64 * 230.0;
        let what = if *sweep == "parties" {
            "parties (values/party fixed)"
        } else {
            "values per party (parties fixed)"
        };
        body += &panel(
            0.0,
            top,
            &format!("session time vs {what}"),
            &xs,
            &time,
            "s",
        );
        body += &panel(370.0, top, &format!("peak RSS vs {what}"), &xs, &mem, "GiB");
    }
    format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='740' height='460' \
         font-family='sans-serif' font-size='12'>{body}</svg>\n"
    )
}

fn main() -> std::process::ExitCode {
    // The main thread works in rayon's pool (see `synod_he::join_global_pool`).
    synod_he::join_global_pool();
    if let Ok(spec) = std::env::var(CHILD) {
        return child(&spec);
    }
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let base_values = number("SYNOD_SCALE_BASE_VALUES", 8192);
    let base_parties = number("SYNOD_SCALE_BASE_PARTIES", 5);
    let parties = list("SYNOD_SCALE_PARTIES", &[5, 10, 20, 50, 100]);
    let values = list("SYNOD_SCALE_VALUES", &[8192, 65536, 262144, 1048576]);
    let reps = number("SYNOD_SCALE_REPS", 3).max(1);
    let reps_big = number("SYNOD_SCALE_REPS_BIG", 1).max(1);
    let out_dir = std::env::var_os("SYNOD_SCALE_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/scale"));
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "synod demo session at scale: t = ⌊n/2⌋+1; {threads} rayon thread(s); nproc {nproc}; {cpu}"
    );

    let mut configs: Vec<(&'static str, usize, usize)> = parties
        .iter()
        .map(|&n| ("parties", n, base_values))
        .collect();
    configs.extend(values.iter().map(|&v| ("values", base_parties, v)));
    let mut done: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let mut rows: Vec<Row> = Vec::new();
    for (sweep, n, v) in configs {
        // A configuration in both sweeps runs once and is listed in both.
        if let Some(&i) = done.get(&(n, v)) {
            let r = &rows[i];
            let copy = Row {
                sweep,
                phases_ms: r.phases_ms.clone(),
                error: r.error.clone(),
                ..*r
            };
            rows.push(copy);
            continue;
        }
        let big = n >= 50 || v >= 262_144;
        let k = if big { reps_big } else { reps };
        let mut runs: Vec<Run> = Vec::new();
        let mut error = None;
        for rep in 0..k {
            eprint!("{n} parties, {v} values, run {}/{k} … ", rep + 1);
            match run_once(n, v, rep + 1) {
                Ok(r) => {
                    eprintln!(
                        "{:.1} s, peak {:.0} MiB",
                        r.total_ms / 1000.0,
                        r.peak_kib as f64 / 1024.0
                    );
                    runs.push(r);
                }
                Err(e) => {
                    eprintln!("FAILED: {e}");
                    error = Some(e);
                    break;
                }
            }
        }
        let row = match (&error, runs.first()) {
            (None, Some(first)) => Row {
                sweep,
                parties: n,
                threshold: n / 2 + 1,
                values: v,
                ciphertexts_per_party: v.div_ceil(8192),
                reps: k,
                log_q: first.log_q,
                p_bits: first.p_bits,
                phases_ms: first
                    .phases
                    .iter()
                    .map(|(name, _)| {
                        let ms = runs
                            .iter()
                            .filter_map(|r| r.phases.iter().find(|(n, _)| n == name).map(|p| p.1))
                            .collect();
                        (name.clone(), median(ms))
                    })
                    .collect(),
                total_ms: median(runs.iter().map(|r| r.total_ms).collect()),
                cpu_s: median(runs.iter().map(|r| r.cpu_s).collect()),
                peak_mib: runs.iter().map(|r| r.peak_kib).max().unwrap_or(0) as f64 / 1024.0,
                error: None,
            },
            _ => Row {
                sweep,
                parties: n,
                threshold: n / 2 + 1,
                values: v,
                ciphertexts_per_party: v.div_ceil(8192),
                reps: runs.len() + 1,
                log_q: f64::NAN,
                p_bits: 0,
                phases_ms: Vec::new(),
                total_ms: f64::NAN,
                cpu_s: f64::NAN,
                peak_mib: f64::NAN,
                error: Some(error.unwrap_or_else(|| "no run".into())),
            },
        };
        done.insert((n, v), rows.len());
        rows.push(row);
    }

    let mut md = String::new();
    for (sweep, what) in [
        (
            "parties",
            format!("parties (values per party = {base_values})"),
        ),
        (
            "values",
            format!("values per party (parties = {base_parties})"),
        ),
    ] {
        let sel: Vec<Row> = rows
            .iter()
            .filter(|r| r.sweep == sweep)
            .map(|r| Row {
                phases_ms: r.phases_ms.clone(),
                error: r.error.clone(),
                ..*r
            })
            .collect();
        if sel.is_empty() {
            continue;
        }
        let ok = sel.iter().find(|r| r.error.is_none()).unwrap_or(&sel[0]);
        md += &format!(
            "\nSweep over {what}; N = 8192, log q = {:.0}, p = {} bits; medians in seconds; \
             peak RSS = largest VmHWM over the runs\n\n",
            ok.log_q, ok.p_bits
        );
        md += &table(&sel);
    }
    println!("{md}");
    std::fs::create_dir_all(&out_dir).unwrap();
    let json = serde_json::json!({
        "threads": threads,
        "nproc": nproc,
        "cpu": cpu,
        "rows": rows,
    });
    std::fs::write(
        out_dir.join("scale.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .unwrap();
    std::fs::write(out_dir.join("scale.md"), &md).unwrap();
    std::fs::write(out_dir.join("scale.svg"), svg(&rows)).unwrap();
    println!(
        "wrote {0}/scale.json, {0}/scale.md, {0}/scale.svg",
        out_dir.display()
    );
    std::process::ExitCode::SUCCESS
}
