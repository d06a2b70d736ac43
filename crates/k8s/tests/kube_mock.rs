//! The kube layer against a mocked API server (tower-test): lists and watches made by
//! hand, status-subresource writes, 409 Conflict, 410 Gone, restarts, invalid
//! configurations and leader election.

mod support;

use ferrolb_k8s::controller::{ControllerOptions, Election, run};
use ferrolb_k8s::lease::LeaseTimings;
use ferrolb_k8s::metrics::Metrics;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::{FakeApi, POOLS, Recorded, Reply, SERVICES, pool, service, status};
use tokio::sync::watch;

const WEB_STATUS: &str = "/api/v1/namespaces/shop/services/web/status";

struct Running {
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn start(client: kube::Client, election: Option<Election>) -> Running {
    let metrics = Arc::new(Metrics::default());
    let (stop, stopped) = watch::channel(false);
    let options = ControllerOptions {
        namespace: "metallb-system".into(),
        lb_class: None,
        election,
        memberlist_secret: Some("memberlist".into()),
    };
    let m = metrics.clone();
    let task = tokio::spawn(async move {
        let _ = run(client, options, m, stopped).await;
    });
    Running {
        metrics,
        stop,
        task,
    }
}

fn patches_of<'a>(log: &'a [Recorded], path: &str) -> Vec<&'a Recorded> {
    log.iter()
        .filter(|r| r.method == "PATCH" && r.path == path)
        .collect()
}

fn ingress_ips(patch: &Recorded) -> Vec<String> {
    patch.body["status"]["loadBalancer"]["ingress"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|i| i["ip"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn events(log: &[Recorded]) -> Vec<(String, String, String)> {
    log.iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/events"))
        .map(|r| {
            (
                r.path.clone(),
                r.body["reason"].as_str().unwrap_or("").to_string(),
                r.body["note"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_new_service_gets_its_address_through_the_status_subresource() {
    let (client, fake) = FakeApi::start();
    fake.set_items(POOLS, vec![pool("main", "3", &["192.0.2.0/30"])]);
    fake.set_items(
        SERVICES,
        vec![service("shop", "web", "5", "2024-01-01T00:00:00Z", &[])],
    );
    let running = start(client, None);
    let log = fake
        .wait_for("the pool status and the event", |log| {
            !patches_of(log, &format!("{POOLS}/main/status")).is_empty()
                && events(log).iter().any(|e| e.1 == "IPAllocated")
        })
        .await;

    let status = patches_of(&log, WEB_STATUS);
    assert_eq!(status.len(), 1, "one status write");
    assert_eq!(status[0].content_type, "application/merge-patch+json");
    assert_eq!(
        status[0].body,
        json!({"metadata": {"resourceVersion": "5"},
               "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.0"}]}}})
    );
    let annotation = patches_of(&log, "/api/v1/namespaces/shop/services/web");
    assert_eq!(
        annotation[0].body,
        json!({"metadata": {"annotations": {"metallb.io/ip-allocated-from-pool": "main"}}})
    );
    assert_eq!(
        events(&log),
        vec![(
            "/apis/events.k8s.io/v1/namespaces/shop/events".to_string(),
            "IPAllocated".to_string(),
            "Assigned IP [\"192.0.2.0\"]".to_string()
        )]
    );
    let pool_status = patches_of(&log, &format!("{POOLS}/main/status"));
    assert_eq!(
        pool_status[0].body,
        json!({"status": {"assignedIPv4": 1, "assignedIPv6": 0, "availableIPv4": 3, "availableIPv6": 0}})
    );
    // The ConfigurationState is applied (server-side), then its status.
    let state = "/apis/metallb.io/v1beta1/namespaces/metallb-system/configurationstates/controller";
    let applied = patches_of(&log, state);
    assert_eq!(applied[0].content_type, "application/apply-patch+yaml");
    assert!(applied[0].query.contains("fieldManager=ferrolb-controller"));
    assert_eq!(
        applied[0].body["metadata"]["labels"]["metallb.io/component-type"],
        "controller"
    );
    let state_status = patches_of(&log, &format!("{state}/status"));
    assert_eq!(state_status[0].body["status"]["result"], "Valid");

    let m = running.metrics.snapshot();
    assert!(m.synced && m.leader && m.config_loaded && !m.config_stale);
    assert_eq!(m.pools["main"].services, 1);
    assert_eq!(m.pools["main"].usage.assigned_ipv4, 1);
    running.stop().await;
}

#[tokio::test]
async fn a_conflict_is_read_again_and_retried() {
    let (client, fake) = FakeApi::start();
    fake.set_items(POOLS, vec![pool("main", "3", &["192.0.2.0/30"])]);
    fake.set_items(
        SERVICES,
        vec![service("shop", "web", "5", "2024-01-01T00:00:00Z", &[])],
    );
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = attempts.clone();
    fake.route(move |r| {
        if r.method == "PATCH" && r.path == WEB_STATUS && a.fetch_add(1, Ordering::SeqCst) == 0 {
            return Some(Reply::Json(
                409,
                status(409, "Conflict", "the object has been modified"),
            ));
        }
        if r.method == "GET" && r.path == "/api/v1/namespaces/shop/services/web" {
            // Someone changed the Service meanwhile (a label, say).
            return Some(Reply::Json(
                200,
                service("shop", "web", "6", "2024-01-01T00:00:00Z", &[]),
            ));
        }
        None
    });
    let running = start(client, None);
    let log = fake
        .wait_for("the second status write", |log| {
            patches_of(log, WEB_STATUS).len() >= 2
        })
        .await;
    let writes = patches_of(&log, WEB_STATUS);
    let versions: Vec<&Value> = writes
        .iter()
        .map(|w| &w.body["metadata"]["resourceVersion"])
        .collect();
    assert_eq!(versions, vec![&json!("5"), &json!("6")]);
    assert_eq!(ingress_ips(writes[1]), vec!["192.0.2.0"]);
    // Between them, the Service was read again.
    let first = log.iter().position(|r| r.path == WEB_STATUS).unwrap();
    let reread = log
        .iter()
        .position(|r| r.method == "GET" && r.path == "/api/v1/namespaces/shop/services/web")
        .expect("read again");
    assert!(reread > first);
    running.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_the_addresses_services_show() {
    let (client, fake) = FakeApi::start();
    // One address. "old" holds it in its status; "young" was created earlier and has
    // nothing: it must not take the address.
    fake.set_items(POOLS, vec![pool("main", "3", &["192.0.2.3/32"])]);
    let mut old = service("shop", "old", "7", "2024-06-01T00:00:00Z", &["192.0.2.3"]);
    old["metadata"]["annotations"] = json!({"metallb.io/ip-allocated-from-pool": "main"});
    fake.set_items(
        SERVICES,
        vec![
            old,
            service("shop", "young", "8", "2024-01-01T00:00:00Z", &[]),
        ],
    );
    let running = start(client, None);
    let log = fake
        .wait_for("the failure event of young", |log| {
            events(log).iter().any(|e| e.1 == "AllocationFailed")
        })
        .await;
    assert!(
        patches_of(&log, "/api/v1/namespaces/shop/services/old/status").is_empty(),
        "old keeps its address: no write"
    );
    assert!(patches_of(&log, "/api/v1/namespaces/shop/services/young/status").is_empty());
    let failed: Vec<_> = events(&log)
        .into_iter()
        .filter(|e| e.1 == "AllocationFailed")
        .collect();
    assert_eq!(
        failed[0].2,
        "Failed to allocate IP for \"shop/young\": no available IPs"
    );
    running.stop().await;
}

#[tokio::test]
async fn a_watch_ending_in_410_gone_relists_and_finds_deletions() {
    let (client, fake) = FakeApi::start();
    fake.set_items(POOLS, vec![pool("main", "3", &["192.0.2.1/32"])]);
    let mut holder = service(
        "shop",
        "holder",
        "7",
        "2024-01-01T00:00:00Z",
        &["192.0.2.1"],
    );
    holder["metadata"]["annotations"] = json!({"metallb.io/ip-allocated-from-pool": "main"});
    let waiting = service("shop", "waiting", "8", "2024-02-01T00:00:00Z", &[]);
    let lists = Arc::new(AtomicUsize::new(0));
    let watches = Arc::new(AtomicUsize::new(0));
    let (l, w) = (lists.clone(), watches.clone());
    let first = vec![holder.clone(), waiting.clone()];
    let second = vec![waiting.clone()];
    fake.route(move |r| {
        if r.path != SERVICES {
            return None;
        }
        if r.is_watch() {
            // The first watch is answered with 410 Gone (as the API server does for a
            // resource version that is too old); later ones stay open.
            if w.fetch_add(1, Ordering::SeqCst) == 0 {
                return Some(Reply::Watch(vec![json!({
                    "type": "ERROR",
                    "object": status(410, "Expired", "too old resource version: 1 (2)")
                })]));
            }
            return Some(Reply::Watch(Vec::new()));
        }
        // "holder" was deleted while the watch was down: the relist no longer has it.
        let items = if l.fetch_add(1, Ordering::SeqCst) == 0 {
            first.clone()
        } else {
            second.clone()
        };
        Some(Reply::Json(
            200,
            json!({"apiVersion": "v1", "kind": "List",
                   "metadata": {"resourceVersion": "20"}, "items": items}),
        ))
    });
    let running = start(client, None);
    let log = fake
        .wait_for("waiting to get the freed address", |log| {
            patches_of(log, "/api/v1/namespaces/shop/services/waiting/status")
                .iter()
                .any(|p| ingress_ips(p) == vec!["192.0.2.1"])
        })
        .await;
    let service_lists = log
        .iter()
        .filter(|r| r.path == SERVICES && r.is_list())
        .count();
    assert!(service_lists >= 2, "listed again after 410 Gone");
    assert!(
        running.metrics.snapshot().update_errors >= 1,
        "the 410 counts as an update error"
    );
    running.stop().await;
}

#[tokio::test]
async fn an_invalid_pool_keeps_the_previous_configuration() {
    let (client, fake) = FakeApi::start();
    fake.set_items(POOLS, vec![pool("main", "3", &["192.0.2.0/30"])]);
    fake.set_items(
        SERVICES,
        vec![service("shop", "web", "5", "2024-01-01T00:00:00Z", &[])],
    );
    let running = start(client, None);
    fake.wait_for("the first allocation and both watches", |log| {
        !patches_of(log, WEB_STATUS).is_empty()
            && log.iter().any(|r| r.path == POOLS && r.is_watch())
            && log.iter().any(|r| r.path == SERVICES && r.is_watch())
    })
    .await;

    // The pool is edited into nonsense.
    fake.push(
        POOLS,
        json!({"type": "MODIFIED", "object": pool("main", "4", &["not-a-cidr"])}),
    );
    let state_status =
        "/apis/metallb.io/v1beta1/namespaces/metallb-system/configurationstates/controller/status";
    let log = fake
        .wait_for("ConfigurationState Invalid", |log| {
            patches_of(log, state_status)
                .iter()
                .any(|p| p.body["status"]["result"] == "Invalid")
        })
        .await;
    let invalid = patches_of(&log, state_status)
        .into_iter()
        .find(|p| p.body["status"]["result"] == "Invalid")
        .unwrap();
    let summary = invalid.body["status"]["errorSummary"].as_str().unwrap();
    assert!(summary.contains("IPAddressPool/main"), "{summary}");
    let log = fake
        .wait_for("the invalid-configuration event", |log| {
            events(log).iter().any(|e| e.1 == "InvalidConfiguration")
        })
        .await;
    let event = events(&log)
        .into_iter()
        .find(|e| e.1 == "InvalidConfiguration")
        .unwrap();
    assert_eq!(
        event.0,
        "/apis/events.k8s.io/v1/namespaces/metallb-system/events"
    );
    assert!(event.2.contains("IPAddressPool/main"), "{}", event.2);
    let m = running.metrics.snapshot();
    assert!(m.config_loaded && m.config_stale);

    // The last good configuration stays: a new Service still gets an address of it,
    // and the first one keeps its own (no clearing write).
    fake.push(
        SERVICES,
        json!({"type": "ADDED",
               "object": service("shop", "api", "9", "2024-03-01T00:00:00Z", &[])}),
    );
    let log = fake
        .wait_for("the new Service's address", |log| {
            !patches_of(log, "/api/v1/namespaces/shop/services/api/status").is_empty()
        })
        .await;
    let api = patches_of(&log, "/api/v1/namespaces/shop/services/api/status");
    assert_eq!(ingress_ips(api[0]), vec!["192.0.2.1"]);
    assert_eq!(patches_of(&log, WEB_STATUS).len(), 1);
    running.stop().await;
}

#[tokio::test]
async fn deleting_a_service_frees_its_address_for_a_waiting_one_only() {
    let (client, fake) = FakeApi::start();
    fake.set_items(POOLS, vec![pool("main", "3", &["192.0.2.1/32"])]);
    let mut holder = service(
        "shop",
        "holder",
        "7",
        "2024-01-01T00:00:00Z",
        &["192.0.2.1"],
    );
    holder["metadata"]["annotations"] = json!({"metallb.io/ip-allocated-from-pool": "main"});
    let mut other = service("other", "plain", "9", "2024-01-01T00:00:00Z", &[]);
    other["spec"]["type"] = json!("ClusterIP");
    fake.set_items(
        SERVICES,
        vec![
            holder.clone(),
            service("shop", "waiting", "8", "2024-02-01T00:00:00Z", &[]),
            other,
        ],
    );
    let running = start(client, None);
    fake.wait_for("the failure and the watch", |log| {
        events(log).iter().any(|e| e.1 == "AllocationFailed")
            && log.iter().any(|r| r.path == SERVICES && r.is_watch())
    })
    .await;
    fake.push(SERVICES, json!({"type": "DELETED", "object": holder}));
    let log = fake
        .wait_for("waiting to get the address", |log| {
            !patches_of(log, "/api/v1/namespaces/shop/services/waiting/status").is_empty()
        })
        .await;
    let w = patches_of(&log, "/api/v1/namespaces/shop/services/waiting/status");
    assert_eq!(ingress_ips(w[0]), vec!["192.0.2.1"]);
    // The retry is quiet about the earlier failure and announces the allocation.
    let reasons: Vec<String> = events(&log).into_iter().map(|e| e.1).collect();
    assert_eq!(reasons, vec!["AllocationFailed", "IPAllocated"]);
    running.stop().await;
}

fn lease(holder: &str, rv: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "ferrolb-controller", "namespace": "metallb-system", "resourceVersion": rv},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 10,
                 "renewTime": "2024-01-01T00:00:00.000000Z", "acquireTime": "2024-01-01T00:00:00.000000Z",
                 "leaseTransitions": 3}
    })
}

const LEASE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/metallb-system/leases/ferrolb-controller";

#[tokio::test(start_paused = true)]
async fn a_standby_takes_over_a_dead_leaders_lease_and_only_then_writes() {
    let (client, fake) = FakeApi::start();
    fake.set_items(POOLS, vec![pool("main", "3", &["192.0.2.0/30"])]);
    fake.set_items(
        SERVICES,
        vec![service("shop", "web", "5", "2024-01-01T00:00:00Z", &[])],
    );
    // The old leader never renews: the Lease stays as it is until we replace it.
    let taken = Arc::new(AtomicUsize::new(0));
    let t = taken.clone();
    fake.route(move |r| {
        if r.path != LEASE {
            return None;
        }
        match r.method.as_str() {
            "GET" if t.load(Ordering::SeqCst) == 0 => {
                Some(Reply::Json(200, lease("old-leader", "50")))
            }
            "GET" => Some(Reply::Json(200, lease("replica-b", "51"))),
            "PUT" => {
                t.store(1, Ordering::SeqCst);
                let mut body = r.body.clone();
                body["metadata"]["resourceVersion"] = json!("51");
                Some(Reply::Json(200, body))
            }
            _ => None,
        }
    });
    let election = election_of_replica_b();
    let running = start(client, Some(election));
    let log = fake
        .wait_for("the status write after the takeover", |log| {
            !patches_of(log, WEB_STATUS).is_empty()
        })
        .await;
    let put = log
        .iter()
        .position(|r| r.method == "PUT" && r.path == LEASE)
        .expect("the lease was taken over");
    let takeover = &log[put];
    assert_eq!(takeover.body["metadata"]["resourceVersion"], "50");
    assert_eq!(takeover.body["spec"]["holderIdentity"], "replica-b");
    assert_eq!(takeover.body["spec"]["leaseTransitions"], 4);
    // Several reads of the unchanged Lease came first (it was honoured while live).
    let reads_before = log[..put]
        .iter()
        .filter(|r| r.method == "GET" && r.path == LEASE)
        .count();
    assert!(
        reads_before >= 5,
        "{reads_before} reads before the takeover"
    );
    // No write of any Service, pool or ConfigurationState before leading.
    let first_write = log
        .iter()
        .position(|r| r.method == "PATCH" || (r.method == "POST" && r.path.ends_with("/events")))
        .expect("writes after leading");
    assert!(first_write > put);
    running.stop().await;
    // On shutdown the Lease is released.
    let log = fake.log();
    let release = log
        .iter()
        .rev()
        .find(|r| r.method == "PUT" && r.path == LEASE)
        .expect("released");
    assert!(release.body["spec"]["holderIdentity"].is_null());
}

#[tokio::test]
async fn a_conflict_with_the_addresses_already_written_publishes_nothing_more() {
    let (client, fake) = FakeApi::start();
    fake.set_items(POOLS, vec![pool("main", "3", &["192.0.2.0/30"])]);
    fake.set_items(
        SERVICES,
        vec![service("shop", "web", "5", "2024-01-01T00:00:00Z", &[])],
    );
    fake.route(move |r| {
        if r.method == "PATCH" && r.path == WEB_STATUS {
            return Some(Reply::Json(
                409,
                status(409, "Conflict", "the object has been modified"),
            ));
        }
        if r.method == "GET" && r.path == "/api/v1/namespaces/shop/services/web" {
            // The copy read was stale: the Service already shows the address and the
            // annotation (written before a restart, say).
            let mut fresh = service("shop", "web", "6", "2024-01-01T00:00:00Z", &["192.0.2.0"]);
            fresh["metadata"]["annotations"] = json!({"metallb.io/ip-allocated-from-pool": "main"});
            return Some(Reply::Json(200, fresh));
        }
        None
    });
    let running = start(client, None);
    let log = fake
        .wait_for("the read after the conflict and the pool status", |log| {
            log.iter()
                .any(|r| r.method == "GET" && r.path == "/api/v1/namespaces/shop/services/web")
                && !patches_of(log, &format!("{POOLS}/main/status")).is_empty()
        })
        .await;
    assert_eq!(
        patches_of(&log, WEB_STATUS).len(),
        1,
        "no second status write"
    );
    assert!(
        patches_of(&log, "/api/v1/namespaces/shop/services/web").is_empty(),
        "the annotation is there already"
    );
    assert!(events(&log).is_empty(), "no event for a stale decision");
    running.stop().await;
}

#[tokio::test]
async fn a_namespace_relabelled_into_a_pool_reconciles_its_services() {
    let (client, fake) = FakeApi::start();
    let mut team_pool = pool("team-a", "3", &["192.0.2.0/30"]);
    team_pool["spec"]["serviceAllocation"] =
        json!({"namespaceSelectors": [{"matchLabels": {"team": "a"}}]});
    fake.set_items(POOLS, vec![team_pool]);
    let namespace = |labels: Value| {
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "shop", "resourceVersion": "2", "labels": labels}})
    };
    fake.set_items("/api/v1/namespaces", vec![namespace(json!({}))]);
    fake.set_items(
        SERVICES,
        vec![service("shop", "web", "5", "2024-01-01T00:00:00Z", &[])],
    );
    let running = start(client, None);
    fake.wait_for("the failure and the namespace watch", |log| {
        events(log).iter().any(|e| e.1 == "AllocationFailed")
            && log
                .iter()
                .any(|r| r.path == "/api/v1/namespaces" && r.is_watch())
    })
    .await;
    assert!(patches_of(&fake.log(), WEB_STATUS).is_empty());
    fake.push(
        "/api/v1/namespaces",
        json!({"type": "MODIFIED", "object": namespace(json!({"team": "a"}))}),
    );
    let log = fake
        .wait_for("the address once the namespace is selected", |log| {
            !patches_of(log, WEB_STATUS).is_empty()
        })
        .await;
    assert_eq!(
        ingress_ips(patches_of(&log, WEB_STATUS)[0]),
        vec!["192.0.2.0"]
    );
    running.stop().await;
}

#[tokio::test]
async fn a_pool_created_again_gets_its_status_again() {
    let (client, fake) = FakeApi::start();
    let mut main = pool("main", "3", &["192.0.2.0/30"]);
    main["metadata"]["uid"] = json!("uid-1");
    fake.set_items(POOLS, vec![main.clone()]);
    fake.set_items(
        SERVICES,
        vec![service("shop", "web", "5", "2024-01-01T00:00:00Z", &[])],
    );
    let running = start(client, None);
    let pool_status = format!("{POOLS}/main/status");
    fake.wait_for("the pool status and the pool watch", |log| {
        !patches_of(log, &pool_status).is_empty()
            && log.iter().any(|r| r.path == POOLS && r.is_watch())
    })
    .await;
    fake.push(POOLS, json!({"type": "DELETED", "object": main}));
    let mut again = pool("main", "9", &["192.0.2.0/30"]);
    again["metadata"]["uid"] = json!("uid-2");
    fake.push(POOLS, json!({"type": "ADDED", "object": again}));
    let log = fake
        .wait_for("a second pool status write", |log| {
            patches_of(log, &pool_status).len() >= 2
        })
        .await;
    let writes = patches_of(&log, &pool_status);
    assert_eq!(
        writes[0].body, writes[1].body,
        "the same counts, written again"
    );
    assert_eq!(writes[1].body["status"]["assignedIPv4"], 1);
    running.stop().await;
}

#[tokio::test]
async fn the_membership_secret_is_created_when_missing_only() {
    let secrets = "/api/v1/namespaces/metallb-system/secrets";
    let (client, fake) = FakeApi::start();
    fake.set_items(POOLS, vec![pool("main", "3", &["192.0.2.0/30"])]);
    let running = start(client, None);
    let log = fake
        .wait_for("the Secret created", |log| {
            log.iter().any(|r| r.method == "POST" && r.path == secrets)
        })
        .await;
    let created = log
        .iter()
        .find(|r| r.method == "POST" && r.path == secrets)
        .unwrap();
    assert_eq!(created.body["metadata"]["name"], "memberlist");
    // data is base64 (the API's encoding) of base64 text of 16 bytes: 24 characters.
    let encoded = created.body["data"]["secretkey"].as_str().unwrap();
    assert_eq!(encoded.len(), 32, "{encoded}");
    running.stop().await;

    // With the Secret there, nothing is created.
    let (client, fake) = FakeApi::start();
    fake.set_items(POOLS, vec![pool("main", "3", &["192.0.2.0/30"])]);
    fake.set_items(
        secrets,
        vec![json!({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "memberlist", "namespace": "metallb-system", "resourceVersion": "4"},
                    "data": {"secretkey": "c2VjcmV0"}})],
    );
    let running = start(client, None);
    let log = fake
        .wait_for("the ConfigurationState status", |log| {
            log.iter()
                .any(|r| r.path.ends_with("configurationstates/controller/status"))
        })
        .await;
    assert!(!log.iter().any(|r| r.method == "POST" && r.path == secrets));
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_lease_is_taken_stops_writing() {
    let (client, fake) = FakeApi::start();
    fake.set_items(POOLS, vec![pool("main", "3", &["192.0.2.0/30"])]);
    fake.set_items(
        SERVICES,
        vec![service("shop", "web", "5", "2024-01-01T00:00:00Z", &[])],
    );
    // We hold the Lease (and renew it) until it is "taken": then every read shows
    // another holder, renewing.
    let taken = Arc::new(AtomicUsize::new(0));
    let reads_after = Arc::new(AtomicUsize::new(0));
    let (t, n) = (taken.clone(), reads_after.clone());
    fake.route(move |r| {
        if r.path != LEASE {
            return None;
        }
        match r.method.as_str() {
            "GET" if t.load(Ordering::SeqCst) == 0 => {
                Some(Reply::Json(200, lease("replica-b", "50")))
            }
            "GET" => {
                let i = n.fetch_add(1, Ordering::SeqCst);
                Some(Reply::Json(
                    200,
                    lease("replica-c", &format!("{}", 100 + i)),
                ))
            }
            "PUT" => {
                let mut body = r.body.clone();
                body["metadata"]["resourceVersion"] = json!("50");
                Some(Reply::Json(200, body))
            }
            _ => None,
        }
    });
    let election = election_of_replica_b();
    let running = start(client, Some(election));
    fake.wait_for("the first write as leader and the Services watch", |log| {
        !patches_of(log, WEB_STATUS).is_empty()
            && log.iter().any(|r| r.path == SERVICES && r.is_watch())
    })
    .await;
    assert!(running.metrics.snapshot().leader);
    taken.store(1, Ordering::SeqCst);
    // Five reads of the other holder's Lease: 10 s of simulated time, past the 7 s
    // renew deadline.
    fake.wait_for("reads of the taken Lease", |_| {
        reads_after.load(Ordering::SeqCst) >= 5
    })
    .await;
    assert!(!running.metrics.snapshot().leader, "stepped down");
    let before = running.metrics.snapshot().updates;
    fake.push(
        SERVICES,
        json!({"type": "ADDED",
               "object": service("shop", "api", "9", "2024-03-01T00:00:00Z", &[])}),
    );
    for _ in 0..200 {
        if running.metrics.snapshot().updates > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        running.metrics.snapshot().updates > before,
        "the event was seen"
    );
    // Time for a write to reach the server, had one been made.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let log = fake.log();
    assert!(
        patches_of(&log, "/api/v1/namespaces/shop/services/api/status").is_empty(),
        "a replica that does not lead writes nothing"
    );
    running.stop().await;
}

#[tokio::test]
async fn a_deleted_configuration_state_is_written_again() {
    let states = "/apis/metallb.io/v1beta1/namespaces/metallb-system/configurationstates";
    let state = format!("{states}/controller");
    let (client, fake) = FakeApi::start();
    fake.set_items(POOLS, vec![pool("main", "3", &["192.0.2.0/30"])]);
    let running = start(client, None);
    let log = fake
        .wait_for("the first ConfigurationState and its watch", |log| {
            !patches_of(log, &format!("{state}/status")).is_empty()
                && log.iter().any(|r| r.path == states && r.is_watch())
        })
        .await;
    let watch = log
        .iter()
        .find(|r| r.path == states && r.is_watch())
        .unwrap();
    assert!(
        watch
            .query
            .contains("fieldSelector=metadata.name%3Dcontroller"),
        "{}",
        watch.query
    );
    fake.push(
        states,
        json!({"type": "DELETED", "object": {
            "apiVersion": "metallb.io/v1beta1", "kind": "ConfigurationState",
            "metadata": {"name": "controller", "namespace": "metallb-system", "resourceVersion": "12"}}}),
    );
    let log = fake
        .wait_for("the ConfigurationState written again", |log| {
            patches_of(log, &format!("{state}/status")).len() >= 2
        })
        .await;
    assert_eq!(patches_of(&log, &state).len(), 2, "applied again");
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_dead_leader_is_replaced_within_15_seconds_and_not_before_its_lease_ends() {
    let (client, fake) = FakeApi::start();
    fake.set_items(POOLS, vec![pool("main", "3", &["192.0.2.0/30"])]);
    fake.set_items(
        SERVICES,
        vec![service("shop", "web", "5", "2024-01-01T00:00:00Z", &[])],
    );
    // The old leader renews every 2 s (a new resource version each time) until it dies,
    // 5 s in; the standby's takeover is timed in simulated time from that last renewal.
    let t0 = tokio::time::Instant::now();
    let died = std::time::Duration::from_secs(5);
    let taken_at: Arc<std::sync::Mutex<Option<std::time::Duration>>> = Arc::default();
    let t = taken_at.clone();
    fake.route(move |r| {
        if r.path != LEASE {
            return None;
        }
        let now = t0.elapsed();
        match r.method.as_str() {
            "GET" if t.lock().unwrap().is_none() => {
                let renewals = now.min(died).as_secs() / 2;
                Some(Reply::Json(
                    200,
                    lease("old-leader", &format!("{}", 50 + renewals)),
                ))
            }
            "GET" => Some(Reply::Json(200, lease("replica-b", "99"))),
            "PUT" => {
                t.lock().unwrap().get_or_insert(now);
                let mut body = r.body.clone();
                body["metadata"]["resourceVersion"] = json!("99");
                Some(Reply::Json(200, body))
            }
            _ => None,
        }
    });
    let election = election_of_replica_b();
    let running = start(client, Some(election));
    fake.wait_for("the status write after the takeover", |log| {
        !patches_of(log, WEB_STATUS).is_empty()
    })
    .await;
    let taken = taken_at.lock().unwrap().expect("taken over");
    // The last renewal happened at 4 s (renewals every 2 s until 5 s).
    let last_renewal = std::time::Duration::from_secs(4);
    let after = taken - last_renewal;
    assert!(
        after >= std::time::Duration::from_secs(10),
        "taken {after:?} after the last renewal: the Lease was not honoured for its 10 s"
    );
    assert!(
        after <= std::time::Duration::from_secs(15),
        "taken {after:?} after the last renewal (at most 15 s)"
    );
    assert!(running.metrics.snapshot().leader);
    running.stop().await;
}

/// The election settings of the replica under test, `replica-b`, with the default
/// timings.
fn election_of_replica_b() -> Election {
    Election {
        lease_name: "ferrolb-controller".into(),
        identity: "replica-b".into(),
        timings: LeaseTimings::default(),
    }
}
