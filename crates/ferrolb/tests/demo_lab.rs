//! The demo (`scripts/demo`, the README's first command) runs end to end: the lab, the
//! examples, requests, a failover, the clean-up. Needs root and bird2 (installed by
//! scripts/test), and the `ferrolb-demo` binary built next to `ferrolb` (the workspace
//! test run builds it); skips, saying why, otherwise.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_demo_runs_end_to_end() {
    if !ferrolb_lab::available() || !ferrolb_lab::require("bird", "bird2") {
        return;
    }
    let ferrolb = PathBuf::from(env!("CARGO_BIN_EXE_ferrolb"));
    let demo = ferrolb.with_file_name("ferrolb-demo");
    if !demo.exists() {
        eprintln!(
            "skipping: {} is not built (cargo build -p ferrolb-demo)",
            demo.display()
        );
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(&demo)
        .arg("--ferrolb")
        .arg(&ferrolb)
        .arg("--manifests")
        .arg(root.join("examples"))
        .output()
        .expect("run the demo");
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{err}");
    for want in [
        "[7/7]",
        "layer 2 203.0.113.0: answered again by",
        "BGP 203.0.113.64:",
        "no namespace or process is left behind",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}\n{err}");
    }
    // BGP requests were spread over more than one node before the cut.
    let spread = text
        .lines()
        .find(|l| l.contains("203.0.113.64") && l.contains("30 requests answered by"))
        .unwrap_or_default();
    assert!(spread.matches("node-").count() >= 2, "{text}");
    // Nothing of the lab is left.
    let netns = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("fldemo-"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(netns, 0);
}
