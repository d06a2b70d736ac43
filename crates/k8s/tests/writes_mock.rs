//! The controller's own writes against a mocked API server (tower-test): the watch
//! events they cause write nothing again (nor publish a deprecation Warning again),
//! Events are counted in a series and their cache is bounded, a status-only change of
//! a `metallb.io` object is no configuration change, and stored objects lose what is
//! never read.

mod support;

use ferrolb_k8s::controller::{ControllerOptions, run};
use ferrolb_k8s::decision::EventSpec;
use ferrolb_k8s::events::{EventRecord, EventWriter};
use ferrolb_k8s::metrics::Metrics;
use ferrolb_k8s::sink::Sink;
use ferrolb_k8s::source::{Change, LAST_APPLIED, watch_all};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::runtime::events::Reporter;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::{FakeApi, POOLS, Recorded, Reply, SERVICES, pool, service};
use tokio::sync::watch;

const WEB: &str = "/api/v1/namespaces/shop/services/web";
const WEB_STATUS: &str = "/api/v1/namespaces/shop/services/web/status";
const OTHER_STATUS: &str = "/api/v1/namespaces/shop/services/other/status";

fn patches<'a>(log: &'a [Recorded], path: &str) -> Vec<&'a Recorded> {
    log.iter()
        .filter(|r| r.method == "PATCH" && r.path == path)
        .collect()
}

fn event_posts(log: &[Recorded]) -> Vec<&Recorded> {
    log.iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/events"))
        .collect()
}

fn start(client: kube::Client) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = watch::channel(false);
    let options = ControllerOptions {
        namespace: "metallb-system".into(),
        lb_class: None,
        election: None,
        memberlist_secret: None,
    };
    let task = tokio::spawn(async move {
        let _ = run(client, options, Arc::new(Metrics::default()), stopped).await;
    });
    (stop, task)
}

/// `web` as the API server shows it after our status write (version 6) and after our
/// annotation write too (version 7).
fn web_at(rv: &str, annotated: bool) -> Value {
    let mut web = service("shop", "web", rv, "2024-01-01T00:00:00Z", &["192.0.2.0"]);
    if annotated {
        web["metadata"]["annotations"] = json!({"metallb.io/ip-allocated-from-pool": "main"});
    }
    web
}

#[tokio::test]
async fn one_allocation_is_one_status_write_one_annotation_write_and_one_event() {
    let (client, fake) = FakeApi::start();
    fake.set_items(POOLS, vec![pool("main", "3", &["192.0.2.0/30"])]);
    fake.set_items(
        SERVICES,
        vec![service("shop", "web", "5", "2024-01-01T00:00:00Z", &[])],
    );
    // The API server answers each write with the object as it now is, at a new
    // version: the status subresource ignores metadata, so version 6 has no annotation.
    fake.route(|r| match (r.method.as_str(), r.path.as_str()) {
        ("PATCH", WEB_STATUS) => Some(Reply::Json(200, web_at("6", false))),
        ("PATCH", WEB) => Some(Reply::Json(200, web_at("7", true))),
        _ => None,
    });
    let (stop, task) = start(client);
    fake.wait_for("the writes for web and the watches", |log| {
        !patches(log, WEB).is_empty()
            && !event_posts(log).is_empty()
            && log.iter().any(|r| r.path == SERVICES && r.is_watch())
            && log
                .iter()
                .any(|r| r.path == "/api/v1/namespaces" && r.is_watch())
    })
    .await;

    // Before any echo: the namespace shows up, so web is reconciled again while the
    // store still shows version 5 (nothing written yet, as far as it knows).
    fake.push(
        "/api/v1/namespaces",
        json!({"type": "ADDED", "object": {"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "shop", "resourceVersion": "30"}}}),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The watch events of our two writes, then a new Service (whose writes show that
    // everything before it was handled).
    fake.push(
        SERVICES,
        json!({"type": "MODIFIED", "object": web_at("6", false)}),
    );
    fake.push(
        SERVICES,
        json!({"type": "MODIFIED", "object": web_at("7", true)}),
    );
    fake.push(
        SERVICES,
        json!({"type": "ADDED", "object": service("shop", "other", "8", "2024-01-02T00:00:00Z", &[])}),
    );
    let log = fake
        .wait_for("the writes for other", |log| {
            !patches(log, OTHER_STATUS).is_empty()
        })
        .await;
    assert_eq!(patches(&log, WEB_STATUS).len(), 1, "one status write");
    assert_eq!(patches(&log, WEB).len(), 1, "one annotation write");
    let web_events: Vec<_> = event_posts(&log)
        .into_iter()
        .filter(|r| r.body["regarding"]["name"] == "web")
        .collect();
    assert_eq!(web_events.len(), 1, "one event");

    // Someone else removes the annotation (a version that is not ours): written again.
    let mut stripped = web_at("9", false);
    stripped["metadata"]["annotations"] = json!({});
    fake.push(SERVICES, json!({"type": "MODIFIED", "object": stripped}));
    let log = fake
        .wait_for("the annotation written again", |log| {
            patches(log, WEB).len() >= 2
        })
        .await;
    assert_eq!(
        patches(&log, WEB)[1].body,
        json!({"metadata": {"annotations": {"metallb.io/ip-allocated-from-pool": "main"}}})
    );
    assert_eq!(
        patches(&log, WEB_STATUS).len(),
        1,
        "the status is still right"
    );
    let _ = stop.send(true);
    let _ = task.await;
}

/// `web` asking for pool `main` with the deprecated annotation key, at version `rv`,
/// showing `ingress`, and our pool annotation when `annotated`.
fn legacy_web_at(rv: &str, ingress: &[&str], annotated: bool) -> Value {
    let mut web = service("shop", "web", rv, "2024-01-01T00:00:00Z", ingress);
    web["metadata"]["annotations"] = json!({"metallb.universe.tf/address-pool": "main"});
    if annotated {
        web["metadata"]["annotations"]["metallb.io/ip-allocated-from-pool"] = json!("main");
    }
    web
}

fn deprecation_posts<'a>(log: &'a [Recorded], name: &str) -> Vec<&'a Recorded> {
    event_posts(log)
        .into_iter()
        .filter(|r| {
            r.body["regarding"]["name"] == name && r.body["reason"] == "deprecatedAnnotation"
        })
        .collect()
}

fn event_patches(log: &[Recorded]) -> Vec<&Recorded> {
    log.iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("/events/"))
        .collect()
}

#[tokio::test]
async fn a_deprecated_annotation_is_one_warning_event_and_its_echoes_publish_nothing() {
    let (client, fake) = FakeApi::start();
    fake.set_items(POOLS, vec![pool("main", "3", &["192.0.2.0/30"])]);
    fake.set_items(SERVICES, vec![legacy_web_at("5", &[], false)]);
    fake.route(|r| match (r.method.as_str(), r.path.as_str()) {
        ("PATCH", WEB_STATUS) => Some(Reply::Json(200, legacy_web_at("6", &["192.0.2.0"], false))),
        ("PATCH", WEB) => Some(Reply::Json(200, legacy_web_at("7", &["192.0.2.0"], true))),
        _ => None,
    });
    let (stop, task) = start(client);
    fake.wait_for("the writes for web and the watches", |log| {
        !patches(log, WEB).is_empty()
            && !deprecation_posts(log, "web").is_empty()
            && log.iter().any(|r| r.path == SERVICES && r.is_watch())
            && log
                .iter()
                .any(|r| r.path == "/api/v1/namespaces" && r.is_watch())
    })
    .await;
    // Reconciled again while the store still shows version 5, then the echoes of our
    // two writes, then a new Service whose writes show all that was handled.
    fake.push(
        "/api/v1/namespaces",
        json!({"type": "ADDED", "object": {"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "shop", "resourceVersion": "30"}}}),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    for object in [
        legacy_web_at("6", &["192.0.2.0"], false),
        legacy_web_at("7", &["192.0.2.0"], true),
        service("shop", "other", "8", "2024-01-02T00:00:00Z", &[]),
    ] {
        let kind = if object["metadata"]["name"] == "web" {
            "MODIFIED"
        } else {
            "ADDED"
        };
        fake.push(SERVICES, json!({"type": kind, "object": object}));
    }
    let log = fake
        .wait_for("the writes for other", |log| {
            !patches(log, OTHER_STATUS).is_empty()
        })
        .await;
    // The address, from the pool asked for.
    let status = patches(&log, WEB_STATUS);
    assert_eq!(status.len(), 1, "one status write");
    assert_eq!(
        status[0].body["status"]["loadBalancer"]["ingress"],
        json!([{"ip": "192.0.2.0"}])
    );
    assert_eq!(patches(&log, WEB).len(), 1, "one annotation write");
    // One Warning, and nothing more for the echoes.
    let warned = deprecation_posts(&log, "web");
    assert_eq!(warned.len(), 1, "{warned:?}");
    let event = &warned[0].body;
    assert_eq!(event["type"], "Warning");
    assert_eq!(
        event["note"],
        "annotation metallb.universe.tf/address-pool is deprecated; use metallb.io/address-pool"
    );
    assert_eq!(event["regarding"]["kind"], "Service");
    assert_eq!(event["regarding"]["uid"], "uid-shop-web");
    assert!(event_patches(&log).is_empty(), "no repeat in a series");
    assert!(deprecation_posts(&log, "other").is_empty());

    // Someone else edits web (a label): a version not ours, still deprecated: the
    // Warning again, counted in the first one's series.
    let mut labelled = legacy_web_at("9", &["192.0.2.0"], true);
    labelled["metadata"]["labels"] = json!({"tier": "gold"});
    fake.push(SERVICES, json!({"type": "MODIFIED", "object": labelled}));
    let log = fake
        .wait_for("the warning repeated", |log| !event_patches(log).is_empty())
        .await;
    let series = event_patches(&log);
    assert_eq!(series.len(), 1);
    let name = warned[0].body["metadata"]["name"].as_str().unwrap();
    assert!(
        series[0].path.ends_with(&format!("/events/{name}")),
        "{}",
        series[0].path
    );
    assert_eq!(series[0].body["series"]["count"], 2);
    assert_eq!(deprecation_posts(&log, "web").len(), 1);
    assert_eq!(patches(&log, WEB_STATUS).len(), 1, "nothing else written");
    assert_eq!(patches(&log, WEB).len(), 1, "nothing else written");
    let _ = stop.send(true);
    let _ = task.await;
}

fn reporter() -> Reporter {
    Reporter {
        controller: "ferrolb-controller".into(),
        instance: Some("ferrolb-controller-abc".into()),
    }
}

fn web_service() -> Service {
    serde_json::from_value(service("shop", "web", "5", "2024-01-01T00:00:00Z", &[])).unwrap()
}

#[tokio::test]
async fn a_repeated_event_is_counted_in_its_series() {
    let (client, fake) = FakeApi::start();
    let sink = Sink::new(client, "metallb-system", reporter());
    let web = web_service();
    let failed = EventSpec {
        warning: true,
        reason: "AllocationFailed",
        message: "Failed to allocate IP for \"shop/web\": no available IPs".into(),
    };
    sink.publish(&web, &failed).await;
    sink.publish(&web, &failed).await;
    sink.publish(&web, &failed).await;
    // Another message is another Event.
    let other = EventSpec {
        message: "Failed to allocate IP for \"shop/web\": something else".into(),
        ..failed.clone()
    };
    sink.publish(&web, &other).await;
    let log = fake.log();
    let posts = event_posts(&log);
    assert_eq!(posts.len(), 2, "{log:?}");
    let created = &posts[0].body;
    assert_eq!(created["apiVersion"], "events.k8s.io/v1");
    assert_eq!(created["type"], "Warning");
    assert_eq!(created["reason"], "AllocationFailed");
    assert_eq!(created["note"], failed.message.as_str());
    assert_eq!(created["action"], "Allocate");
    assert_eq!(created["reportingController"], "ferrolb-controller");
    assert_eq!(created["reportingInstance"], "ferrolb-controller-abc");
    assert_eq!(created["regarding"]["kind"], "Service");
    assert_eq!(created["regarding"]["name"], "web");
    assert_eq!(created["regarding"]["namespace"], "shop");
    assert_eq!(created["regarding"]["uid"], "uid-shop-web");
    assert!(created["eventTime"].is_string());
    assert_eq!(posts[1].body["note"], other.message.as_str());
    assert_ne!(
        posts[0].body["metadata"]["name"],
        posts[1].body["metadata"]["name"]
    );
    let name = created["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("web."), "{name}");
    let series: Vec<&Recorded> = log
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("/events/"))
        .collect();
    assert_eq!(series.len(), 2);
    assert_eq!(
        series[0].path,
        format!("/apis/events.k8s.io/v1/namespaces/shop/events/{name}")
    );
    assert_eq!(series[0].content_type, "application/merge-patch+json");
    assert_eq!(series[0].body["series"]["count"], 2);
    assert_eq!(series[1].body["series"]["count"], 3);
    assert!(series[1].body["series"]["lastObservedTime"].is_string());
}

#[tokio::test]
async fn the_event_cache_is_bounded() {
    let (client, fake) = FakeApi::start();
    let writer = EventWriter::with_capacity(client, reporter(), 8);
    let regarding = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        namespace: Some("shop".into()),
        name: Some("web".into()),
        uid: Some("uid-shop-web".into()),
        ..Default::default()
    };
    let record = |i: usize| EventRecord {
        warning: false,
        reason: "IPAllocated".into(),
        action: "Allocate".into(),
        note: format!("Assigned IP [\"192.0.2.{i}\"]"),
    };
    for i in 0..50 {
        writer.publish(&record(i), &regarding).await.unwrap();
        assert!(writer.cached() <= 8, "{} cached", writer.cached());
    }
    // A recent one repeats as a series; the first one was evicted: created again.
    writer.publish(&record(49), &regarding).await.unwrap();
    writer.publish(&record(0), &regarding).await.unwrap();
    let log = fake.log();
    assert_eq!(event_posts(&log).len(), 51);
    let patched: Vec<&Recorded> = log.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patched.len(), 1);
    assert_eq!(patched[0].body["series"]["count"], 2);
}

/// The next change the source reports other than a (re)list or a watch error, if one
/// comes within half a second.
async fn next_change(
    changes: &mut (impl futures::Stream<Item = Change> + Unpin),
) -> Option<Change> {
    loop {
        match tokio::time::timeout(Duration::from_millis(500), changes.next()).await {
            Ok(Some(Change::Listed(_) | Change::WatchError { .. })) => continue,
            Ok(change) => return change,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_status_only_change_of_a_pool_is_no_configuration_change() {
    let (client, fake) = FakeApi::start();
    let main = pool("main", "3", &["192.0.2.0/30"]);
    fake.set_items(POOLS, vec![main.clone()]);
    let (_stores, changes) = watch_all(client, "metallb-system");
    let mut changes = Box::pin(changes);
    // Drive the watches until the pool watch is open.
    let opened = async {
        loop {
            let _ = tokio::time::timeout(Duration::from_millis(50), changes.next()).await;
            if fake.log().iter().any(|r| r.path == POOLS && r.is_watch()) {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), opened)
        .await
        .expect("the pool watch");
    while next_change(&mut changes).await.is_some() {}

    // Our own pool counts: only the status and the version change.
    let mut counted = main.clone();
    counted["metadata"]["resourceVersion"] = json!("4");
    counted["status"] = json!({"assignedIPv4": 1, "availableIPv4": 3,
                               "assignedIPv6": 0, "availableIPv6": 0});
    fake.push(POOLS, json!({"type": "MODIFIED", "object": counted}));
    assert_eq!(next_change(&mut changes).await, None);

    // A label (advertisements select pools by label) and a new range: changes.
    let mut labelled = counted.clone();
    labelled["metadata"]["resourceVersion"] = json!("5");
    labelled["metadata"]["labels"] = json!({"tier": "gold"});
    fake.push(
        POOLS,
        json!({"type": "MODIFIED", "object": labelled.clone()}),
    );
    assert_eq!(
        next_change(&mut changes).await,
        Some(Change::Config("IPAddressPool"))
    );
    let mut wider = labelled;
    wider["metadata"]["resourceVersion"] = json!("6");
    wider["spec"]["addresses"] = json!(["192.0.2.0/29"]);
    fake.push(POOLS, json!({"type": "MODIFIED", "object": wider.clone()}));
    assert_eq!(
        next_change(&mut changes).await,
        Some(Change::Config("IPAddressPool"))
    );
    fake.push(POOLS, json!({"type": "DELETED", "object": wider}));
    assert_eq!(
        next_change(&mut changes).await,
        Some(Change::Config("IPAddressPool"))
    );
}

#[tokio::test]
async fn stored_services_lose_managed_fields_and_the_last_applied_copy() {
    let (client, fake) = FakeApi::start();
    let mut web = service("shop", "web", "5", "2024-01-01T00:00:00Z", &[]);
    web["metadata"]["annotations"] = json!({
        LAST_APPLIED: "{\"apiVersion\":\"v1\",\"kind\":\"Service\"}",
        "metallb.io/address-pool": "main",
    });
    web["metadata"]["managedFields"] = json!([{"manager": "kubectl", "operation": "Apply",
        "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]);
    fake.set_items(SERVICES, vec![web]);
    let (stores, changes) = watch_all(client, "metallb-system");
    let mut changes = Box::pin(changes);
    let listed = async {
        while let Some(change) = changes.next().await {
            if change == Change::Listed("Service") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), listed)
        .await
        .expect("the Services listed");
    let stored = stores.services.state();
    assert_eq!(stored.len(), 1);
    let annotations = stored[0].metadata.annotations.clone().unwrap_or_default();
    assert!(!annotations.contains_key(LAST_APPLIED));
    assert_eq!(
        annotations
            .get("metallb.io/address-pool")
            .map(String::as_str),
        Some("main")
    );
    assert!(stored[0].metadata.managed_fields.is_none());
}

#[tokio::test]
async fn a_failed_pool_status_write_is_tried_again_at_the_next_change() {
    let (client, fake) = FakeApi::start();
    fake.set_items(
        POOLS,
        vec![
            pool("main", "3", &["192.0.2.0/30"]),
            pool("spare", "4", &["198.51.100.0/30"]),
        ],
    );
    fake.set_items(
        SERVICES,
        vec![service("shop", "web", "5", "2024-01-01T00:00:00Z", &[])],
    );
    let main_status = format!("{POOLS}/main/status");
    let spare_status = format!("{POOLS}/spare/status");
    let failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (path, f) = (main_status.clone(), failures.clone());
    fake.route(move |r| {
        if r.method == "PATCH" && r.path == path && f.fetch_add(1, Ordering::SeqCst) == 0 {
            return Some(Reply::Json(
                500,
                support::status(500, "InternalError", "etcd is slow"),
            ));
        }
        None
    });
    let (stop, task) = start(client);
    fake.wait_for("the failed pool status and the watch", |log| {
        !patches(log, &main_status).is_empty()
            && log.iter().any(|r| r.path == SERVICES && r.is_watch())
    })
    .await;
    // A change that touches the other pool only.
    let mut other = service("shop", "other", "8", "2024-01-02T00:00:00Z", &[]);
    other["metadata"]["annotations"] = json!({"metallb.io/address-pool": "spare"});
    fake.push(SERVICES, json!({"type": "ADDED", "object": other}));
    let log = fake
        .wait_for("main's status written again", |log| {
            patches(log, &main_status).len() >= 2
        })
        .await;
    assert_eq!(
        patches(&log, &main_status)[1].body["status"]["assignedIPv4"],
        1
    );
    let spare: Vec<_> = patches(&log, &spare_status)
        .into_iter()
        .map(|r| r.body["status"]["assignedIPv4"].clone())
        .collect();
    assert_eq!(spare.last(), Some(&json!(1)));
    let _ = stop.send(true);
    let _ = task.await;
}

#[tokio::test]
async fn a_node_status_report_is_no_configuration_change() {
    const NODES: &str = "/api/v1/nodes";
    let (client, fake) = FakeApi::start();
    let node = |rv: &str, zone: &str, ip: &str, beat: &str| {
        json!({"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": "node-a", "uid": "uid-node-a", "resourceVersion": rv,
                            "labels": {"zone": zone}},
               "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                          "conditions": [{"type": "Ready", "status": "True",
                                          "lastHeartbeatTime": beat}]}})
    };
    fake.set_items(
        NODES,
        vec![node("1", "a", "10.0.0.1", "2024-01-01T00:00:00Z")],
    );
    let (_stores, changes) = watch_all(client, "metallb-system");
    let mut changes = Box::pin(changes);
    let opened = async {
        loop {
            let _ = tokio::time::timeout(Duration::from_millis(50), changes.next()).await;
            if fake.log().iter().any(|r| r.path == NODES && r.is_watch()) {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), opened)
        .await
        .expect("the node watch");
    while next_change(&mut changes).await.is_some() {}

    // The kubelet's heartbeat: nothing the configuration reads.
    let beat = node("2", "a", "10.0.0.1", "2024-01-01T00:05:00Z");
    fake.push(NODES, json!({"type": "MODIFIED", "object": beat}));
    assert_eq!(next_change(&mut changes).await, None);
    // A label, then an address: changes.
    let relabelled = node("3", "b", "10.0.0.1", "2024-01-01T00:05:00Z");
    fake.push(NODES, json!({"type": "MODIFIED", "object": relabelled}));
    assert_eq!(
        next_change(&mut changes).await,
        Some(Change::Config("Node"))
    );
    let moved = node("4", "b", "10.0.0.2", "2024-01-01T00:05:00Z");
    fake.push(NODES, json!({"type": "MODIFIED", "object": moved}));
    assert_eq!(
        next_change(&mut changes).await,
        Some(Change::Config("Node"))
    );
}
