//! Golden tests of the command line on examples/ and on a directory of broken manifests.
//! After an intended change of output, run with `FERROLB_BLESS=1` and review the diff of
//! tests/golden/.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs ferrolb; returns (exit code, stdout).
fn ferrolb(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run ferrolb");
    (
        out.status.code().expect("exited"),
        String::from_utf8(out.stdout).expect("UTF-8 output"),
    )
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("FERROLB_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with FERROLB_BLESS=1 to create)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "output differs from {}:\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

const INVALID: &str = "crates/ferrolb/tests/data/invalid";

#[test]
fn check_examples() {
    let (code, out) = ferrolb(&["check", "examples"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), 1, "one summary line: {out}");
    golden("check-examples.txt", &out);
}

#[test]
fn allocate_examples_json() {
    let (code, out) = ferrolb(&["allocate", "examples", "-o", "json"]);
    assert_eq!(code, 0, "{out}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("a JSON array");
    let services: Vec<&str> = rows
        .iter()
        .map(|r| r["service"].as_str().unwrap())
        .collect();
    let mut sorted = services.clone();
    sorted.sort();
    assert_eq!(services, sorted, "namespace/name order");
    assert!(
        !services.contains(&"default/other-class"),
        "another class is not ours"
    );
    assert!(
        !services.contains(&"default/internal"),
        "ClusterIP is not ours"
    );
    for r in &rows {
        let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["error", "ips", "pool", "service"]);
    }
    golden("allocate-examples.json", &out);
}

#[test]
fn allocate_examples_table() {
    let (code, out) = ferrolb(&["allocate", "examples"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("SERVICE"), "{out}");
    golden("allocate-examples.txt", &out);
}

#[test]
fn embedded_default_is_the_examples_directory() {
    assert_eq!(ferrolb(&["allocate"]), ferrolb(&["allocate", "examples"]));
    assert_eq!(ferrolb(&["check"]).0, 0);
    let mut on_disk: Vec<String> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    on_disk.sort();
    let (_, check_out) = ferrolb(&["check"]);
    assert!(
        check_out.ends_with(&format!("in {} files\n", on_disk.len())),
        "every example file is embedded: {check_out} vs {on_disk:?}"
    );
}

#[test]
fn check_invalid() {
    let (code, out) = ferrolb(&["check", INVALID]);
    assert_eq!(code, 1, "{out}");
    for line in out.lines() {
        assert!(
            line.split(": ").count() >= 2,
            "`Kind/name: field: what` form: {line}"
        );
    }
    golden("check-invalid.txt", &out);
}

#[test]
fn allocate_invalid_prints_the_check_lines() {
    let (code, out) = ferrolb(&["allocate", INVALID, "-o", "json"]);
    assert_eq!(code, 1);
    assert_eq!(out, ferrolb(&["check", INVALID]).1);
}

#[test]
fn crds_match_the_checked_in_copy() {
    let (code, out) = ferrolb(&["crds"]);
    assert_eq!(code, 0);
    let checked_in = std::fs::read_to_string(root().join("deploy/crds/metallb.io.yaml")).unwrap();
    assert!(out == checked_in, "deploy/crds/metallb.io.yaml is stale");
}

#[test]
fn missing_directory_is_a_usage_error() {
    let (code, out) = ferrolb(&["check", "no/such/dir"]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
}

#[test]
fn status_without_a_cluster_or_an_agent_says_what_it_tried() {
    // No kubeconfig, no service account, and nothing listening on the agent's default
    // address (a lab agent listens inside its namespace, not here).
    if std::net::TcpStream::connect("127.0.0.1:9120").is_ok() {
        eprintln!("skipping: something listens on 127.0.0.1:9120");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .arg("status")
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", "/nonexistent")
        .output()
        .expect("run ferrolb");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no kubeconfig found"), "{err}");
    assert!(err.contains("no agent at 127.0.0.1:9120"), "{err}");
    assert!(err.contains("ferrolb run --metrics-addr"), "{err}");
}
