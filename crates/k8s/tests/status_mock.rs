//! `ferrolb status` against a cluster (a fake API server on tower-test): pools, Services
//! with who announces them, the controller's configuration state, and the speakers'
//! own status through the pod proxy.

mod support;

use ferrolb_k8s::status::{SpeakerPods, cluster_status};
use serde_json::json;
use support::{FakeApi, Reply};

const NS: &str = "metallb-system";
const MLB: &str = "/apis/metallb.io/v1beta1/namespaces/metallb-system";

#[tokio::test]
async fn the_document_gathers_pools_services_announcers_and_speakers() {
    let (client, api) = FakeApi::start();
    api.set_items(
        &format!("{MLB}/ipaddresspools"),
        vec![json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "main", "namespace": NS},
            "spec": {"addresses": ["192.0.2.0/28"]},
            "status": {"assignedIPv4": 2, "availableIPv4": 14}
        })],
    );
    let mut web = support::service("shop", "web", "2", "2026-01-01T00:00:00Z", &["192.0.2.1"]);
    web["metadata"]["annotations"] = json!({"metallb.io/ip-allocated-from-pool": "main"});
    let api_svc = support::service("shop", "api", "3", "2026-01-01T00:00:00Z", &["192.0.2.2"]);
    let pending = support::service("shop", "pending", "4", "2026-01-01T00:00:00Z", &[]);
    api.set_items("/api/v1/services", vec![web, api_svc, pending]);
    api.set_items(
        &format!("{MLB}/servicel2statuses"),
        vec![json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status",
            "metadata": {"name": "l2-1", "namespace": NS},
            "status": {"node": "node-b", "serviceName": "web", "serviceNamespace": "shop",
                       "interfaces": [{"name": "eth0"}]}
        })],
    );
    api.set_items(
        &format!("{MLB}/servicebgpstatuses"),
        ["node-a", "node-c"]
            .iter()
            .map(|n| {
                json!({
                    "apiVersion": "metallb.io/v1beta1", "kind": "ServiceBGPStatus",
                    "metadata": {"name": format!("bgp-{n}"), "namespace": NS},
                    "status": {"node": n, "serviceName": "api", "serviceNamespace": "shop",
                               "peers": ["tor"]}
                })
            })
            .collect(),
    );
    api.set_items(
        &format!("{MLB}/configurationstates"),
        vec![json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "ConfigurationState",
            "metadata": {"name": "controller", "namespace": NS,
                         "labels": {"metallb.io/component-type": "controller"}},
            "status": {"result": "Invalid",
                       "errorSummary": "IPAddressPool/x: spec.addresses[0]: bad"}
        })],
    );
    api.set_items(
        &format!("/api/v1/namespaces/{NS}/pods"),
        ["speaker-a", "speaker-b"]
            .iter()
            .zip(["node-a", "node-b"])
            .map(|(p, n)| {
                json!({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": p, "namespace": NS},
                       "spec": {"nodeName": n, "containers": []}})
            })
            .collect(),
    );
    // speaker-a answers; speaker-b's proxy is forbidden.
    api.route(|r| {
        if r.path.ends_with("speaker-a:7473/proxy/status") {
            return Some(Reply::Json(
                200,
                json!({"members": ["node-a", "node-b"],
                       "bgp_sessions": [{"name": "tor", "peer": "198.51.100.1:179",
                                         "state": "Established", "up": true,
                                         "announced_prefixes": 1, "pending_prefixes": 0,
                                         "bfd": "up"}]}),
            ));
        }
        if r.path.ends_with("speaker-b:7473/proxy/status") {
            return Some(Reply::Json(
                403,
                support::status(403, "Forbidden", "pods/proxy is forbidden"),
            ));
        }
        None
    });

    let doc = cluster_status(&client, NS, &SpeakerPods::default())
        .await
        .unwrap();
    assert_eq!(doc["pools"][0]["assigned_ipv4"], 2);
    assert_eq!(doc["pools"][0]["available_ipv4"], 14);
    assert_eq!(doc["config_stale"], true);
    assert_eq!(
        doc["problems"][0],
        "IPAddressPool/x: spec.addresses[0]: bad"
    );
    let services = doc["services"].as_array().unwrap();
    let names: Vec<&str> = services
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shop/api", "shop/pending", "shop/web"]);
    assert_eq!(services[2]["pool"], "main");
    assert_eq!(
        services[2]["announced_by"],
        json!([["192.0.2.1", "node-b", ["eth0"]]])
    );
    assert_eq!(services[0]["bgp_nodes"], json!(["node-a", "node-c"]));
    assert_eq!(services[0]["bgp_peers"], json!(["tor"]));
    assert!(services[1]["error"].is_string());
    assert_eq!(doc["bgp_sessions"][0]["node"], "node-a");
    assert_eq!(doc["members"], json!(["node-a", "node-b"]));
    let speakers = doc["speakers"].as_array().unwrap();
    assert!(speakers[0]["error"].is_null());
    let err = speakers[1]["error"].as_str().unwrap();
    assert!(err.contains("permission denied"), "{err}");
    // The pod proxy was asked for each speaker's /status.
    assert!(
        api.log()
            .iter()
            .any(|r| r.path == "/api/v1/namespaces/metallb-system/pods/speaker-a:7473/proxy/status")
    );
}

#[tokio::test]
async fn a_missing_permission_says_which() {
    let (client, api) = FakeApi::start();
    api.route(|r| {
        r.path.ends_with("/ipaddresspools").then(|| {
            Reply::Json(
                403,
                support::status(403, "Forbidden", "ipaddresspools is forbidden"),
            )
        })
    });
    let err = cluster_status(&client, NS, &SpeakerPods::default())
        .await
        .unwrap_err();
    assert!(
        err.contains("permission denied reading ipaddresspools"),
        "{err}"
    );
}
