//! The CRDs checked in under deploy/crds/ are exactly what `ferrolb crds` prints.
//! Regenerate with `cargo run -- crds > deploy/crds/metallb.io.yaml`, or run this test
//! with `FERROLB_BLESS=1`.

use ferrolb_model::crd::{all_crds, crds_yaml};

const CHECKED_IN: &str = include_str!("../../../deploy/crds/metallb.io.yaml");

#[test]
fn checked_in_crds_are_current() {
    let now = crds_yaml().expect("CRDs serialize");
    if std::env::var_os("FERROLB_BLESS").is_some() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/crds/metallb.io.yaml"
        );
        std::fs::write(path, &now).expect("write deploy/crds/metallb.io.yaml");
        return;
    }
    assert!(
        now == CHECKED_IN,
        "deploy/crds/metallb.io.yaml is stale: run `cargo run -- crds > deploy/crds/metallb.io.yaml`"
    );
}

#[test]
fn every_kind_is_there_with_metallb_names() {
    let crds = all_crds();
    let names: Vec<String> = crds
        .iter()
        .map(|c| c.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        [
            "bfdprofiles.metallb.io",
            "bgpadvertisements.metallb.io",
            "bgppeers.metallb.io",
            "communities.metallb.io",
            "configurationstates.metallb.io",
            "ipaddresspools.metallb.io",
            "l2advertisements.metallb.io",
            "servicebgpstatuses.metallb.io",
            "servicel2statuses.metallb.io",
        ]
    );
    let peers = crds
        .iter()
        .find(|c| c.spec.names.kind == "BGPPeer")
        .unwrap();
    let versions: Vec<(&str, bool, bool)> = peers
        .spec
        .versions
        .iter()
        .map(|v| (v.name.as_str(), v.served, v.storage))
        .collect();
    assert_eq!(
        versions,
        [("v1beta1", true, false), ("v1beta2", true, true)]
    );
    for crd in &crds {
        assert_eq!(crd.spec.scope, "Namespaced", "{:?}", crd.metadata.name);
        assert_eq!(crd.spec.group, "metallb.io");
    }
}

#[test]
fn schema_keeps_metallb_field_names_and_defaults() {
    let yaml = crds_yaml().unwrap();
    for field in [
        "avoidBuggyIPs",
        "autoAssign",
        "serviceAllocation",
        "namespaceSelectors",
        "aggregationLengthV6",
        "myASN",
        "peerASN",
        "dynamicASN",
        "routerID",
        "passwordSecret",
        "ebgpMultiHop",
        "disableMP",
        "minimumTtl",
        "assignedIPv4",
        "availableIPv6",
        "preferredNodeSelectors",
        "errorSummary",
        "serviceNamespace",
    ] {
        assert!(
            yaml.contains(&format!("{field}:")),
            "field {field} missing from the CRDs"
        );
    }
}

const REFERENCE: &str = include_str!("../../../docs/reference.md");

#[test]
fn configuration_reference_is_current() {
    let now = ferrolb_model::crd::reference_markdown();
    if std::env::var_os("FERROLB_BLESS").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/reference.md");
        std::fs::write(path, &now).expect("write docs/reference.md");
        return;
    }
    assert!(
        now == REFERENCE,
        "docs/reference.md is stale: run FERROLB_BLESS=1 cargo test -p ferrolb-model --test crds"
    );
    for needle in [
        "## IPAddressPool",
        "`spec.addresses`",
        "`spec.serviceAllocation.priority`",
        "`spec.peerPort`",
        "`status.assignedIPv4`",
    ] {
        assert!(now.contains(needle), "{needle} missing from the reference");
    }
}
