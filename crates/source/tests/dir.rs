//! The manifest-directory source on real files.

use ferrolb_source::load_dir;
use std::fs;

fn write(dir: &std::path::Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

const POOL: &str = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: first\n  namespace: metallb-system\nspec:\n  addresses: [192.0.2.0/28]\n";

#[test]
fn reads_recursively_multi_document_and_skips_other_kinds() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.yaml", POOL);
    write(
        d.path(),
        "nested/deeper/b.yml",
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: default, labels: {team: a}}\n",
    );
    write(d.path(), "ignored.txt", POOL);
    write(d.path(), ".hidden/c.yaml", POOL);
    let loaded = load_dir(d.path()).unwrap();
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    assert_eq!(loaded.files, 2);
    assert_eq!(loaded.skipped, 1);
    assert_eq!(loaded.snapshot.pools.len(), 1);
    assert_eq!(loaded.snapshot.pools[0].spec.addresses, ["192.0.2.0/28"]);
    assert!(
        loaded.snapshot.pools[0].spec.auto_assign,
        "autoAssign defaults to true"
    );
    assert_eq!(loaded.snapshot.services.len(), 1);
    assert_eq!(loaded.snapshot.namespaces.len(), 1);
}

#[test]
fn malformed_yaml_names_file_and_document() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "bad.yaml",
        &format!("{POOL}---\napiVersion: v1\nkind: Service\nmetadata: {{name: x\n"),
    );
    let loaded = load_dir(d.path()).unwrap();
    assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.problems);
    let line = loaded.problems[0].to_string();
    assert!(
        line.starts_with("bad.yaml: document 2: invalid YAML"),
        "{line}"
    );
    // The good document of the same file still counts.
    assert_eq!(loaded.snapshot.pools.len(), 1);
}

#[test]
fn schema_mismatch_names_kind_name_and_field() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "peer.yaml",
        "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r1}\nspec: {myASN: not-a-number, peerAddress: 198.51.100.1}\n",
    );
    let loaded = load_dir(d.path()).unwrap();
    assert_eq!(loaded.problems.len(), 1);
    let line = loaded.problems[0].to_string();
    assert!(line.starts_with("BGPPeer/r1: spec.myASN: "), "{line}");
    assert!(line.contains("peer.yaml, document 1"), "{line}");
    assert!(loaded.snapshot.bgp_peers.is_empty());
}

#[test]
fn v1beta1_peers_are_converted_and_secrets_merge_string_data() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "x.yaml",
        "apiVersion: metallb.io/v1beta1\nkind: BGPPeer\nmetadata: {name: old}\nspec:\n  myASN: 64500\n  peerASN: 64501\n  peerAddress: 198.51.100.1\n  holdTime: 0s\n  nodeSelectors:\n  - matchLabels: {rack: r1}\n    matchExpressions: [{key: zone, operator: In, values: [a]}]\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/basic-auth\nstringData: {password: hunter2}\n",
    );
    let loaded = load_dir(d.path()).unwrap();
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let p = &loaded.snapshot.bgp_peers[0].spec;
    assert_eq!((p.my_asn, p.peer_asn, p.peer_port), (64500, 64501, 179));
    assert_eq!(p.hold_time, None, "a zero v1beta1 duration means unset");
    let sel = &p.node_selectors[0];
    assert_eq!(sel.match_labels.as_ref().unwrap()["rack"], "r1");
    assert_eq!(sel.match_expressions.as_ref().unwrap()[0].operator, "In");
    let secret = &loaded.snapshot.secrets[0];
    assert_eq!(secret.data.as_ref().unwrap()["password"].0, b"hunter2");
}

#[test]
fn lists_unknown_metallb_kinds_and_missing_fields() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "x.yaml",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Node\n  metadata: {name: n1}\n---\napiVersion: metallb.io/v1beta1\nkind: AddressPool\nmetadata: {name: legacy}\n---\nkind: Node\nmetadata: {name: n2}\n---\napiVersion: v1\nkind: Node\nmetadata: {}\n---\n- just a list\n",
    );
    let loaded = load_dir(d.path()).unwrap();
    assert_eq!(loaded.snapshot.nodes.len(), 1);
    let lines: Vec<String> = loaded.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(
        lines[0].starts_with("AddressPool/legacy: apiVersion: "),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("Node/n2: apiVersion: missing"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("Node/: metadata.name: missing"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with("manifest: expected a mapping"),
        "{}",
        lines[3]
    );
}

#[test]
fn not_a_directory_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "f.yaml", POOL);
    assert!(load_dir(&d.path().join("f.yaml")).is_err());
    assert!(load_dir(&d.path().join("missing")).is_err());
}

#[cfg(unix)]
#[test]
fn follows_file_symlinks_like_a_configmap_mount() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "..2026_11_22/pool.yaml", POOL);
    std::os::unix::fs::symlink("..2026_11_22", d.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/pool.yaml", d.path().join("pool.yaml")).unwrap();
    let loaded = load_dir(d.path()).unwrap();
    assert_eq!(
        loaded.snapshot.pools.len(),
        1,
        "read once, through the link"
    );
}

#[test]
fn spec_may_be_left_out_where_every_field_is_optional() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "x.yaml",
        "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: all}\n---\napiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: all}\nspec:\n---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\n",
    );
    let loaded = load_dir(d.path()).unwrap();
    assert_eq!(loaded.snapshot.l2_advertisements.len(), 1);
    assert_eq!(loaded.snapshot.bgp_advertisements.len(), 1);
    // A pool without spec has no addresses: still an error.
    assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.problems);
    assert!(
        loaded.problems[0]
            .to_string()
            .starts_with("IPAddressPool/p: missing field `spec`")
    );
}
