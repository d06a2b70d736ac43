//! The speaker's Kubernetes side against a fake API server (tower-test): the snapshot it
//! builds from its watches, and the ServiceL2Status / ServiceBGPStatus objects and
//! events it writes.

mod support;

use ferrolb_election::Announced;
use ferrolb_k8s::source::Change;
use ferrolb_k8s::speaker::{
    GOSSIP_WAIT_OVER, StartGate, StatusWriter, all_listed, gossip_wait_over, status_name, watch,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use support::{FakeApi, Recorded};

const NS: &str = "metallb-system";
const L2: &str = "/apis/metallb.io/v1beta1/namespaces/metallb-system/servicel2statuses";
const BGP: &str = "/apis/metallb.io/v1beta1/namespaces/metallb-system/servicebgpstatuses";

fn web() -> Arc<Service> {
    Arc::new(
        serde_json::from_value(support::service(
            "shop",
            "web",
            "5",
            "2026-01-01T00:00:00Z",
            &["192.0.2.10"],
        ))
        .unwrap(),
    )
}

fn announced(l2: &[(&str, &[&str])], bgp: &[(&str, &[&str])]) -> Announced {
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    Announced {
        l2: l2.iter().map(|(k, v)| (k.to_string(), set(v))).collect(),
        bgp: bgp.iter().map(|(k, v)| (k.to_string(), set(v))).collect(),
    }
}

fn writes(log: &[Recorded]) -> Vec<String> {
    log.iter()
        .filter(|r| r.method != "GET" && !r.path.contains("/events"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test]
async fn status_objects_follow_what_the_node_announces() {
    let (client, api) = FakeApi::start();
    // A leftover of an earlier run of this speaker: no longer wanted.
    api.set_items(
        L2,
        vec![json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status",
            "metadata": {"name": "l2-stale", "namespace": NS,
                         "labels": {"metallb.io/node": "node-a"}},
            "spec": {},
            "status": {"node": "node-a", "serviceName": "old", "serviceNamespace": "shop"}
        })],
    );
    // A delete answers with a Status, a status write with the whole object, as the API
    // server does.
    api.route(|r| match r.method.as_str() {
        "DELETE" => Some(support::Reply::Json(
            200,
            json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Success"}),
        )),
        "PATCH" if r.path.ends_with("/status") => {
            let mut whole = r.body.clone();
            whole["spec"] = json!({});
            Some(support::Reply::Json(200, whole))
        }
        _ => None,
    });
    let mut writer = StatusWriter::new(client, NS, "node-a", None);
    let svc = web();
    let lookup = |key: &str| (key == "shop/web").then(|| svc.clone());

    let now = announced(&[("shop/web", &["eth0"])], &[("shop/web", &["tor"])]);
    writer.sync(&now, lookup).await.unwrap();
    let log = api.log();
    // The lists asked for this node's objects only.
    let lists: Vec<&Recorded> = log.iter().filter(|r| r.is_list()).collect();
    assert_eq!(lists.len(), 2, "{lists:?}");
    assert!(
        lists
            .iter()
            .all(|r| r.query.contains("labelSelector=metallb.io%2Fnode%3Dnode-a")),
        "{lists:?}"
    );
    let l2_name = status_name("l2", "node-a", "shop/web");
    let bgp_name = status_name("bgp", "node-a", "shop/web");
    assert_eq!(
        writes(&log),
        vec![
            format!("DELETE {L2}/l2-stale"),
            format!("PATCH {L2}/{l2_name}"),
            format!("PATCH {L2}/{l2_name}/status"),
            format!("PATCH {BGP}/{bgp_name}"),
            format!("PATCH {BGP}/{bgp_name}/status"),
        ]
    );
    // Server-side apply, with MetalLB's labels, and the status on the status subresource.
    let object = log
        .iter()
        .find(|r| r.path == format!("{L2}/{l2_name}"))
        .unwrap();
    assert!(object.content_type.contains("apply-patch"), "{object:?}");
    assert!(object.query.contains("fieldManager=ferrolb-speaker"));
    assert_eq!(
        object.body["metadata"]["labels"]["metallb.io/service-name"],
        "web"
    );
    assert_eq!(
        object.body["metadata"]["labels"]["metallb.io/service-namespace"],
        "shop"
    );
    let status = log
        .iter()
        .find(|r| r.path == format!("{L2}/{l2_name}/status"))
        .unwrap();
    assert_eq!(status.body["status"]["node"], "node-a");
    assert_eq!(status.body["status"]["interfaces"][0]["name"], "eth0");
    let bgp_status = log
        .iter()
        .find(|r| r.path == format!("{BGP}/{bgp_name}/status"))
        .unwrap();
    assert_eq!(bgp_status.body["status"]["peers"], json!(["tor"]));
    // One nodeAssigned event per protocol, on the Service.
    let events: Vec<&Recorded> = log
        .iter()
        .filter(|r| r.path.contains("/namespaces/shop/events"))
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e.body["reason"] == "nodeAssigned" || e.body["series"].is_object()),
        "{events:?}"
    );

    // The same again: nothing to write.
    let before = api.log().len();
    writer.sync(&now, lookup).await.unwrap();
    assert_eq!(api.log().len(), before, "{:?}", &api.log()[before..]);

    // The node stops announcing over BGP: its object goes, the other stays.
    let later = announced(&[("shop/web", &["eth0"])], &[]);
    writer.sync(&later, lookup).await.unwrap();
    assert_eq!(
        writes(&api.log()[before..]),
        vec![format!("DELETE {BGP}/{bgp_name}")]
    );
}

#[tokio::test]
async fn the_snapshot_holds_load_balancer_services_and_their_endpoint_slices() {
    let (client, api) = FakeApi::start();
    let mut cluster_ip = support::service("shop", "internal", "3", "2026-01-01T00:00:00Z", &[]);
    cluster_ip["spec"]["type"] = json!("ClusterIP");
    api.set_items(
        "/api/v1/services",
        vec![
            support::service("shop", "web", "2", "2026-01-01T00:00:00Z", &["192.0.2.10"]),
            cluster_ip,
        ],
    );
    // A hand-made slice of a Service without a selector: announced like any other.
    api.set_items(
        "/apis/discovery.k8s.io/v1/endpointslices",
        vec![json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-manual", "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["198.51.100.20"], "nodeName": "node-b",
                           "conditions": {"ready": true}}]
        })],
    );
    let (stores, changes) = watch(client, NS);
    let mut changes = Box::pin(changes);
    let mut listed = BTreeSet::new();
    while !all_listed(&listed) {
        match tokio::time::timeout(std::time::Duration::from_secs(20), changes.next()).await {
            Ok(Some(Change::Listed(kind))) => {
                listed.insert(kind);
            }
            Ok(Some(_)) => {}
            other => panic!("watches ended or hung: {other:?}; listed {listed:?}"),
        }
    }
    let (snapshot, problems) = stores.snapshot();
    assert!(problems.is_empty(), "{problems:?}");
    let names: Vec<_> = snapshot
        .services
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, vec!["web"]);
    assert_eq!(snapshot.endpoint_slices.len(), 1);
    assert_eq!(
        snapshot.endpoint_slices[0].endpoints[0]
            .node_name
            .as_deref(),
        Some("node-b")
    );
}

#[tokio::test]
async fn a_restarted_speaker_takes_over_the_objects_its_previous_pod_owned() {
    let (client, api) = FakeApi::start();
    let l2_name = status_name("l2", "node-a", "shop/web");
    let bgp_name = status_name("bgp", "node-a", "shop/web");
    let owner = |pod: &str, uid: &str| json!([{"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid}]);
    let labels = json!({"metallb.io/node": "node-a", "metallb.io/service-name": "web",
                        "metallb.io/service-namespace": "shop"});
    // What the previous speaker pod wrote: the same status, but owned by that pod, which
    // the garbage collector deletes them with.
    api.set_items(
        L2,
        vec![json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status",
            "metadata": {"name": l2_name, "namespace": NS, "labels": labels,
                         "ownerReferences": owner("speaker-old", "u-old")},
            "spec": {},
            "status": {"node": "node-a", "serviceName": "web", "serviceNamespace": "shop",
                       "interfaces": [{"name": "eth0"}]}
        })],
    );
    // ... and one this pod wrote already (a restart of its container): left alone.
    api.set_items(
        BGP,
        vec![json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "ServiceBGPStatus",
            "metadata": {"name": bgp_name, "namespace": NS, "labels": labels,
                         "ownerReferences": owner("speaker-new", "u-new")},
            "spec": {},
            "status": {"node": "node-a", "serviceName": "web", "serviceNamespace": "shop",
                       "peers": ["tor"]}
        })],
    );
    let new_owner = k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: "speaker-new".into(),
        uid: "u-new".into(),
        ..Default::default()
    };
    // A status write answers with the whole object, as the API server does.
    api.route(|r| match r.method.as_str() {
        "PATCH" if r.path.ends_with("/status") => {
            let mut whole = r.body.clone();
            whole["spec"] = json!({});
            Some(support::Reply::Json(200, whole))
        }
        _ => None,
    });
    let mut writer = StatusWriter::new(client, NS, "node-a", Some(new_owner));
    let svc = web();
    let lookup = |key: &str| (key == "shop/web").then(|| svc.clone());
    let now = announced(&[("shop/web", &["eth0"])], &[("shop/web", &["tor"])]);
    writer.sync(&now, lookup).await.unwrap();
    let log = api.log();
    assert_eq!(
        writes(&log),
        vec![
            format!("PATCH {L2}/{l2_name}"),
            format!("PATCH {L2}/{l2_name}/status"),
        ],
        "only the object of the previous pod is written again"
    );
    let object = log
        .iter()
        .find(|r| r.path == format!("{L2}/{l2_name}"))
        .unwrap();
    assert_eq!(
        object.body["metadata"]["ownerReferences"],
        owner("speaker-new", "u-new")
    );
}

/// Feeds the speaker's changes to a [`StartGate`] until every kind has listed; returns
/// whether the gate is open then, and the stores.
async fn gate_after_listing(
    secrets: Vec<serde_json::Value>,
) -> (bool, StartGate, ferrolb_k8s::speaker::SpeakerStores) {
    gate_after_listing_for(secrets, StartGate::new()).await
}

/// [`gate_after_listing`] with a gate of one's own.
async fn gate_after_listing_for(
    secrets: Vec<serde_json::Value>,
    mut gate: StartGate,
) -> (bool, StartGate, ferrolb_k8s::speaker::SpeakerStores) {
    let (client, api) = FakeApi::start();
    api.set_items("/api/v1/namespaces/metallb-system/secrets", secrets);
    let (stores, changes) = watch(client, NS);
    let mut changes = Box::pin(changes);
    let mut listed = BTreeSet::new();
    while !all_listed(&listed) {
        match tokio::time::timeout(std::time::Duration::from_secs(20), changes.next()).await {
            Ok(Some(change)) => {
                if let Change::Listed(kind) = &change {
                    listed.insert(*kind);
                }
                gate.see(&change);
            }
            other => panic!("watches ended or hung: {other:?}; listed {listed:?}"),
        }
    }
    let open = gate.is_open(&stores);
    (open, gate, stores)
}

#[tokio::test]
async fn the_first_snapshot_waits_for_the_gossip_secret_or_the_end_of_the_wait() {
    // Listed before the controller created the Secret: the node core must not start its
    // membership yet (it would gossip without the key the others use).
    let (open, mut gate, stores) = gate_after_listing(Vec::new()).await;
    assert!(!open, "closed without the gossip Secret");
    gate.see(&Change::Config("Secret"));
    assert!(!gate.is_open(&stores));
    gate.see(&Change::Config(GOSSIP_WAIT_OVER));
    assert!(gate.is_open(&stores), "open once the wait is over");
    gate.see(&Change::Config("Secret"));
    assert!(gate.is_open(&stores), "and stays open");

    // With the Secret there, open as soon as everything has listed.
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "memberlist", "namespace": NS, "resourceVersion": "3"},
        "data": {"secretkey": "c2VjcmV0"}});
    let (open, _, _) = gate_after_listing(vec![secret.clone()]).await;
    assert!(open, "open with the gossip Secret");

    // A speaker told another name (the controller's --ml-secret-name) waits for that one.
    let (open, _, _) = gate_after_listing_for(
        vec![secret.clone()],
        StartGate::for_secret("ferrolb-gossip"),
    )
    .await;
    assert!(!open, "the Secret memberlist is not the one it waits for");
    let mut named = secret;
    named["metadata"]["name"] = json!("ferrolb-gossip");
    let (open, _, _) =
        gate_after_listing_for(vec![named], StartGate::for_secret("ferrolb-gossip")).await;
    assert!(open, "open with the Secret of its name");
}

#[tokio::test(start_paused = true)]
async fn the_wait_for_the_gossip_secret_ends_by_itself() {
    let start = tokio::time::Instant::now();
    let mut over = Box::pin(gossip_wait_over(std::time::Duration::from_secs(30)));
    assert_eq!(over.next().await, Some(Change::Config(GOSSIP_WAIT_OVER)));
    assert!(start.elapsed() >= std::time::Duration::from_secs(30));
    assert_eq!(over.next().await, None);
}
