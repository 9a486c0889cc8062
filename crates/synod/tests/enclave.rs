//! `synod enclave serve|attest` and `synod demo --enclave insecure-sim` as a user runs them.
#![cfg(feature = "insecure-sim")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn synod(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(args)
        .output()
        .expect("run synod");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits (a minute at most) until an enclave process listens on `socket`.
fn wait_until_listening(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "the enclave did not listen");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `synod` with `args` (a `demo … --json`) through enclave processes (`--enclave
/// insecure-sim`) and in process; asserts that both succeed with the same results and that only
/// the first reports enclaves. Returns the first run's JSON and stderr.
fn demo_with_and_without_enclaves(args: &[&str]) -> (Value, String) {
    let (code, stdout, stderr) = synod(&[args, &["--enclave", "insecure-sim"]].concat());
    assert_eq!(code, 0, "{stderr}");
    let with: Value = serde_json::from_str(&stdout).unwrap();
    let (code, stdout, in_process_stderr) = synod(args);
    assert_eq!(code, 0, "{in_process_stderr}");
    let without: Value = serde_json::from_str(&stdout).unwrap();
    assert!(without.get("enclave").is_none());
    assert_eq!(with["results"], without["results"]);
    (with, stderr)
}

/// Kills the enclave process when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_refuses_without_the_insecure_flag() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("e.sock");
    let (code, _, stderr) = synod(&[
        "enclave",
        "serve",
        "--socket",
        socket.to_str().unwrap(),
        "--platform-dir",
        dir.path().join("platform").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("NO hardware protection"), "{stderr}");
    assert!(stderr.contains("--insecure-simulated"), "{stderr}");
    assert!(!socket.exists());
}

#[test]
fn attest_prints_that_the_simulated_enclave_is_not_hardware_protected() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("e.sock");
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_synod"))
            .args(["enclave", "serve", "--insecure-simulated", "--svn", "3"])
            .arg("--socket")
            .arg(&socket)
            .arg("--platform-dir")
            .arg(dir.path().join("platform"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(&socket);
    let nonce = "ab".repeat(32);
    let s = socket.to_str().unwrap();
    let (code, stdout, stderr) = synod(&["enclave", "attest", "--socket", s, "--nonce", &nonce]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("kind:               insecure-simulated"),
        "{stdout}"
    );
    assert!(
        stdout.contains("hardware_protected: false — NO hardware protection"),
        "{stdout}"
    );
    assert!(stdout.contains("svn:                3"), "{stdout}");
    assert!(stdout.contains("matches this challenge"), "{stdout}");
    assert!(stdout.contains(&format!("nonce {nonce}")), "{stdout}");
    assert!(stdout.contains("default policy:     refused"), "{stdout}");

    let (code, stdout, stderr) = synod(&["enclave", "attest", "--socket", s, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["kind"], "insecure-simulated");
    assert_eq!(v["hardware_protected"], false);
    assert_eq!(v["svn"], 3);
    assert_eq!(v["debug"], false);
    assert_eq!(v["measurement"].as_str().unwrap().len(), 96);
    assert_eq!(v["binding"]["matches"], true);

    let (code, _, stderr) = synod(&["enclave", "attest", "--socket", s, "--nonce", "xyz"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("64 hex digits"), "{stderr}");
    drop(server);
}

#[test]
fn demo_through_enclave_processes_gives_the_same_results() {
    let args = [
        "demo",
        "--parties",
        "3",
        "--threshold",
        "2",
        "--rows",
        "100",
        "--seed",
        "11",
        "--json",
    ];
    let (with, stderr) = demo_with_and_without_enclaves(&args);
    assert!(
        stderr.contains("warning: --enclave insecure-sim")
            && stderr.contains("accepted for this run only"),
        "{stderr}"
    );
    assert_eq!(with["ok"], true);
    assert_eq!(with["enclave"]["kind"], "simulated");
    assert_eq!(with["enclave"]["hardware_protected"], false);
    assert_eq!(with["decryptors"].as_array().unwrap().len(), 2);
    for phase in [
        "setup: public key",
        "setup: relinearisation key",
        "setup: rotation keys",
        "setup: attestation",
        "setup: thresholdisation",
        "decrypt",
    ] {
        assert!(with["phases_ms"][phase].as_f64().is_some(), "{phase}");
    }
}

#[test]
fn demo_refuses_to_deal_to_a_peer_whose_evidence_fails_the_policy() {
    let (code, stdout, stderr) = synod(&[
        "demo",
        "--parties",
        "3",
        "--threshold",
        "2",
        "--rows",
        "10",
        "--json",
        "--enclave",
        "insecure-sim",
        "--test-only-enclave-svn",
        "3=2",
    ]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("refuses to send its thresholdisation sub-share to participant #3"),
        "{stderr}"
    );
    assert!(
        stderr.contains("is not one of the allowed measurements"),
        "{stderr}"
    );
}

#[test]
fn enclave_flags_are_checked() {
    let (code, _, stderr) = synod(&[
        "demo",
        "--enclave",
        "insecure-sim",
        "--reshare",
        "--parties",
        "2",
        "--threshold",
        "2",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--reshare needs at least t+1"), "{stderr}");
    let (code, _, stderr) = synod(&["demo", "--test-only-enclave-svn", "3=2"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("needs --enclave"), "{stderr}");
    let (code, _, stderr) = synod(&["demo", "--enclave", "sgx"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("insecure-sim"), "{stderr}");
}

/// `--reshare` through enclave processes: the last participant leaves (its
/// enclave erases its share), a new participant's enclave process starts and
/// joins, and each new committee decrypts the same results as in process.
#[test]
fn demo_reshares_through_enclave_processes() {
    let args = [
        "demo",
        "--parties",
        "3",
        "--threshold",
        "2",
        "--rows",
        "50",
        "--seed",
        "5",
        "--reshare",
        "--json",
    ];
    let (with, _) = demo_with_and_without_enclaves(&args);
    assert_eq!(with["ok"], true);
    assert_eq!(
        with["enclave"]["processes"], 4,
        "three at set-up, one joins"
    );
    let epochs = with["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    assert_eq!(epochs[0]["members"], serde_json::json!([1, 2]));
    assert_eq!(epochs[1]["members"], serde_json::json!([1, 2, 4]));
    assert_eq!(epochs[1]["t"], 3);
    for e in epochs {
        assert_eq!(e["results_ok"], true, "{e}");
    }
}

/// `synod enclave serve --hsm-module … --hsm-token-label … --hsm-pin-file …` seals under a
/// data key wrapped by the token (SoftHSM2 with a token in a temporary directory); a wrong PIN
/// stops it from starting. When `CI=true` a missing SoftHSM fails the test; elsewhere the test
/// says plainly that it did not run.
#[cfg(feature = "hsm")]
#[test]
fn serve_seals_under_an_hsm_token() {
    use synod_tee::hsm::test_token::{self, TestToken};

    let Some(module) = test_token::module_or_skip("the CLI HSM test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token = TestToken::init(dir.path(), "synod-cli-token").unwrap();
    let bad_pin = dir.path().join("bad-pin");
    std::fs::write(&bad_pin, "00000000\n").unwrap();
    let serve = |name: &str, pin: &Path| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_synod"));
        cmd.args(["enclave", "serve", "--insecure-simulated", "--socket"])
            .arg(dir.path().join(format!("{name}.sock")))
            .arg("--platform-dir")
            .arg(dir.path().join("platform"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--hsm-module")
            .arg(&module)
            .args(["--hsm-token-label", &token.label, "--hsm-pin-file"])
            .arg(pin)
            .env("SOFTHSM2_CONF", &token.conf);
        cmd
    };

    let log = dir.path().join("serve.log");
    let server = Server(
        serve("e", &token.pin_file)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let socket = dir.path().join("e.sock");
    wait_until_listening(&socket);
    let (code, stdout, stderr) =
        synod(&["enclave", "attest", "--socket", socket.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("hardware_protected: false"), "{stdout}");
    drop(server);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("sealing root: HSM-wrapped data keys")
            && log.contains("hardware_protected: false"),
        "{log}"
    );

    let out = serve("bad", &bad_pin).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HSM"), "{stderr}");
    assert!(!dir.path().join("bad.sock").exists());
}
