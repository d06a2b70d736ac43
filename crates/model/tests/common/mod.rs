//! Building snapshots from multi-document YAML, for the validation tests.

#![allow(dead_code)]

use ferrolb_model::Snapshot;
use serde::de::DeserializeOwned;

fn typed<T: DeserializeOwned>(doc: serde_json::Value) -> T {
    serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("bad test object: {e}\n{doc}"))
}

/// A snapshot of the objects of `yaml` (documents separated by `---` lines), by kind.
pub fn snapshot(yaml: &str) -> Snapshot {
    let mut s = Snapshot::default();
    let mut doc = String::new();
    let mut docs = Vec::new();
    for line in yaml.lines().chain(std::iter::once("---")) {
        if line.trim_end() == "---" {
            if !doc.trim().is_empty() {
                docs.push(std::mem::take(&mut doc));
            }
            doc.clear();
        } else {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    for text in docs {
        let value: serde_json::Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("bad test YAML: {e}\n{text}"));
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "IPAddressPool" => s.pools.push(typed(value)),
            "L2Advertisement" => s.l2_advertisements.push(typed(value)),
            "BGPAdvertisement" => s.bgp_advertisements.push(typed(value)),
            "BGPPeer" => s.bgp_peers.push(typed(value)),
            "Community" => s.communities.push(typed(value)),
            "BFDProfile" => s.bfd_profiles.push(typed(value)),
            "Node" => s.nodes.push(typed(value)),
            "Secret" => s.secrets.push(typed(value)),
            "Namespace" => s.namespaces.push(typed(value)),
            "Service" => s.services.push(typed(value)),
            other => panic!("unknown kind {other:?} in test YAML"),
        }
    }
    s
}

/// The problems of validating `yaml`, as printed lines (transient ones prefixed with
/// `transient `).
pub fn problems(yaml: &str) -> Vec<String> {
    match ferrolb_model::validate(&snapshot(yaml)) {
        Ok(_) => Vec::new(),
        Err(problems) => problems
            .iter()
            .map(|p| {
                if p.transient {
                    format!("transient {p}")
                } else {
                    p.to_string()
                }
            })
            .collect(),
    }
}
