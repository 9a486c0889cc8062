//! The `synod demo` command as a user runs it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::process::Command;

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

#[test]
fn demo_json_export_and_user_spec_agree() {
    let dir = std::env::temp_dir().join(format!("synod-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (code, stdout, stderr) = synod(&[
        "demo",
        "--parties",
        "4",
        "--threshold",
        "3",
        "--rows",
        "300",
        "--seed",
        "5",
        "--json",
        "--export",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["parties"], 4);
    assert_eq!(report["threshold"], 3);
    assert_eq!(report["decryptors"].as_array().unwrap().len(), 3);
    let results = report["results"].as_array().unwrap();
    // sum, mean, variance for 4 parties, and the inner product.
    assert_eq!(results.len(), 13);
    for r in results {
        assert_eq!(r["expected"], r["decrypted"], "{r}");
    }
    for phase in ["plan", "setup", "inputs", "compute", "decrypt"] {
        assert!(
            report["phases_ms"][phase].as_f64().unwrap() >= 0.0,
            "{phase}"
        );
    }

    // The exported CSVs hold the data: recompute a sum by hand.
    let csv = std::fs::read_to_string(dir.join("p1.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("x"));
    let values: Vec<i64> = lines.map(|l| l.parse().unwrap()).collect();
    assert_eq!(values.len(), 300);
    let sum = results.iter().find(|r| r["name"] == "sum p1.x").unwrap();
    assert_eq!(
        sum["decrypted"].as_f64().unwrap(),
        values.iter().sum::<i64>() as f64
    );

    // The same circuit as a user's spec on the exported files.
    let spec = dir.join("spec.toml");
    std::fs::write(
        &spec,
        "name = \"mine\"\n\
         [[inputs]]\nparty = \"p1\"\ncolumn = \"x\"\nmin = -1000\nmax = 1000\n\
         [[inputs]]\nparty = \"p2\"\ncolumn = \"x\"\nmin = -1000\nmax = 1000\n\
         [[outputs]]\nname = \"ip\"\nexpr = \"inner_product(p1.x, p2.x)\"\n\
         [[outputs]]\nname = \"var\"\nexpr = \"variance(p1.x)\"\n",
    )
    .unwrap();
    let p1 = format!("p1={}", dir.join("p1.csv").display());
    let p2 = format!("p2={}", dir.join("p2.csv").display());
    let (code, stdout, stderr) = synod(&[
        "demo",
        "--spec",
        spec.to_str().unwrap(),
        "--input",
        &p1,
        "--input",
        &p2,
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let mine: Value = serde_json::from_str(&stdout).unwrap();
    let find = |rep: &Value, name: &str| {
        rep["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        find(&mine, "ip")["decrypted"],
        find(&report, "inner product p1.x·p2.x")["decrypted"]
    );
    assert_eq!(
        find(&mine, "var")["decrypted"],
        find(&report, "variance p1.x")["decrypted"]
    );
    // User data: no expected value is claimed.
    assert_eq!(find(&mine, "ip")["expected"], Value::Null);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_fail_with_a_readable_message() {
    let (code, _, stderr) = synod(&["demo", "--parties", "3", "--threshold", "4"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--threshold must be between 1 and --parties"),
        "{stderr}"
    );
    let (code, _, stderr) = synod(&["demo", "--parties", "3", "--threshold", "3", "--reshare"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--reshare needs at least t+1"), "{stderr}");

    let dir = std::env::temp_dir().join(format!("synod-demo-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = dir.join("s.toml");
    std::fs::write(
        &spec,
        "name = \"x\"\n[[inputs]]\nparty = \"a\"\ncolumn = \"v\"\nmin = 0\nmax = 10\n\
         [[outputs]]\nname = \"s\"\nexpr = \"sum(a.v)\"\n",
    )
    .unwrap();
    let csv = dir.join("a.csv");
    std::fs::write(&csv, "v\n1\n2\n11\n").unwrap();
    let input = format!("a={}", csv.display());
    let (code, _, stderr) = synod(&["demo", "--spec", spec.to_str().unwrap(), "--input", &input]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("row 3") && stderr.contains("outside the declared"),
        "{stderr}"
    );

    std::fs::write(&csv, "v\n1\nfoo\n").unwrap();
    let (code, _, stderr) = synod(&["demo", "--spec", spec.to_str().unwrap(), "--input", &input]);
    assert_eq!(code, 2);
    assert!(stderr.contains("not a number"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_reshare_changes_the_committee_and_still_decrypts() {
    let (code, stdout, stderr) = synod(&[
        "demo",
        "--parties",
        "4",
        "--threshold",
        "2",
        "--rows",
        "100",
        "--seed",
        "9",
        "--json",
        "--reshare",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["ok"], true);
    let epochs = report["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    assert_eq!(epochs[0]["t"], 2);
    assert_eq!(epochs[0]["members"], serde_json::json!([1, 2, 3]));
    assert_eq!(epochs[1]["t"], 3);
    assert_eq!(epochs[1]["members"], serde_json::json!([1, 2, 3, 5]));
    for e in epochs {
        assert_eq!(e["results_ok"], true);
        assert!(e["bytes_per_member"].as_u64().unwrap() > 0);
        assert!(e["ms"].as_f64().unwrap() > 0.0);
    }
}
