//! No input makes the pipeline panic: random manifests go through the source, validation
//! and (when valid) the allocator. Random bytes go through the YAML layer. The cargo-fuzz
//! target in fuzz/ runs the same pipeline for longer.

use ferrolb_allocator::{Options, allocate};
use ferrolb_source::{decode_object, load_documents};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Values that sit on the edges of what the resources accept.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("203.0.113.0/28")),
        Just(json!("203.0.113.0/31")),
        Just(json!("203.0.113.255/32")),
        Just(json!("203.0.113.10-203.0.113.2")),
        Just(json!("203.0.113.1 - 203.0.113.9")),
        Just(json!("2001:db8::/126")),
        Just(json!("2001:db8::1-2001:db8::ff")),
        Just(json!("2001:db8::1-203.0.113.1")),
        Just(json!("0.0.0.0/0")),
        Just(json!("::/0")),
        Just(json!("198.51.100.1")),
        Just(json!("65535:65535")),
        Just(json!("65536:1")),
        Just(json!("large:1:2:3")),
        Just(json!("90s")),
        Just(json!("1ms")),
        Just(json!("-3s")),
        Just(json!("1e999h")),
        Just(json!("In")),
        Just(json!("internal")),
        Just(json!("")),
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(4294967295u64)),
        Just(json!(18446744073709551615u64)),
        Just(json!(1.5)),
        Just(json!(true)),
        Just(Value::Null),
        "[a-z0-9./:-]{0,12}".prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "addresses",
        "autoAssign",
        "avoidBuggyIPs",
        "serviceAllocation",
        "priority",
        "namespaces",
        "namespaceSelectors",
        "serviceSelectors",
        "matchLabels",
        "matchExpressions",
        "key",
        "operator",
        "values",
        "ipAddressPools",
        "ipAddressPoolSelectors",
        "nodeSelectors",
        "interfaces",
        "aggregationLength",
        "aggregationLengthV6",
        "localPref",
        "communities",
        "peers",
        "myASN",
        "peerASN",
        "dynamicASN",
        "peerAddress",
        "holdTime",
        "keepaliveTime",
        "connectTime",
        "routerID",
        "password",
        "passwordSecret",
        "bfdProfile",
        "ebgpMultiHop",
        "name",
        "value",
        "receiveInterval",
        "detectMultiplier",
        "minimumTtl",
        "echoMode",
        "type",
        "ports",
        "port",
        "protocol",
        "loadBalancerIP",
        "loadBalancerClass",
        "ipFamilies",
        "ipFamilyPolicy",
        "clusterIPs",
        "externalTrafficPolicy",
        "selector",
        "status",
        "loadBalancer",
        "ingress",
        "ip",
        "annotations",
        "labels",
    ])
    .prop_map(str::to_string)
}

fn kind() -> impl Strategy<Value = (&'static str, &'static str)> {
    prop::sample::select(vec![
        ("metallb.io/v1beta1", "IPAddressPool"),
        ("metallb.io/v1beta1", "L2Advertisement"),
        ("metallb.io/v1beta1", "BGPAdvertisement"),
        ("metallb.io/v1beta1", "BGPPeer"),
        ("metallb.io/v1beta2", "BGPPeer"),
        ("metallb.io/v1beta1", "Community"),
        ("metallb.io/v1beta1", "BFDProfile"),
        ("v1", "Service"),
        ("v1", "Namespace"),
        ("v1", "Node"),
        ("v1", "Secret"),
    ])
}

fn annotations() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        prop::sample::select(vec![
            "metallb.io/loadBalancerIPs",
            "metallb.universe.tf/loadBalancerIPs",
            "metallb.io/address-pool",
            "metallb.io/allow-shared-ip",
        ])
        .prop_map(str::to_string),
        prop::sample::select(vec![
            "203.0.113.1",
            "203.0.113.1,2001:db8::1",
            "203.0.113.1,203.0.113.2",
            "junk",
            "p0",
            "p1",
            "k",
        ])
        .prop_map(|s| Value::String(s.to_string())),
        0..3,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// One manifest: a known kind with a random spec (and for Services a plausible one).
fn manifest() -> impl Strategy<Value = Value> {
    (
        kind(),
        "p[0-2]",
        annotations(),
        value(),
        value(),
        prop::collection::vec(scalar(), 0..3),
    )
        .prop_map(
            |((api, kind), name, annotations, spec, status, addresses)| {
                let mut spec = spec;
                if kind == "IPAddressPool" {
                    spec = json!({"addresses": addresses});
                }
                if kind == "Service" {
                    // Keep the random fields, but make it a LoadBalancer Service with a port.
                    let mut s = match spec {
                        Value::Object(o) => o,
                        _ => serde_json::Map::new(),
                    };
                    s.insert("type".into(), json!("LoadBalancer"));
                    s.entry("ports").or_insert(json!([{"port": 80}]));
                    spec = Value::Object(s);
                }
                json!({
                    "apiVersion": api,
                    "kind": kind,
                    "metadata": {"name": name, "namespace": "default", "annotations": annotations},
                    "spec": spec,
                    "status": status,
                })
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_manifests_never_panic(manifests in prop::collection::vec(manifest(), 0..12)) {
        let mut snapshot = ferrolb_model::Snapshot::default();
        for m in manifests {
            let _ = decode_object(m, &mut snapshot);
        }
        if let Ok(config) = ferrolb_model::validate(&snapshot) {
            let outcome = allocate(&config, &snapshot, &Options::default(), &BTreeMap::new());
            // Every Service that is ours gets an answer: addresses or a reason.
            for r in &outcome.results {
                prop_assert!(r.error.is_some() || !r.ips.is_empty() || r.pool.is_none());
            }
        }
    }

    #[test]
    fn random_text_never_panics(text in "(---\n|[ a-zA-Z0-9:{}\\[\\],'\"&*!|>#-]|\n){0,200}") {
        let loaded = load_documents([("random.yaml", text.as_bytes())]);
        let _ = ferrolb_model::validate(&loaded.snapshot);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = load_documents([("random.yaml", bytes.as_slice())]);
    }
}
