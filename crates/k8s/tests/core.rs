//! The controller core fed hand-made Services and configurations (no HTTP).

use ferrolb_allocator::{Options, ServiceKey};
use ferrolb_k8s::core::{ChangedPools, ConfigChange, Core};
use ferrolb_k8s::decision::{Outcome, decide};
use ferrolb_model::Snapshot;
use ferrolb_model::crd::IPAddressPool;
use k8s_openapi::api::core::v1::Service;
use serde_json::json;

fn pool(name: &str, addresses: &[&str]) -> IPAddressPool {
    serde_json::from_value(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": "metallb-system"},
        "spec": {"addresses": addresses}
    }))
    .unwrap()
}

fn snapshot(pools: Vec<IPAddressPool>) -> Snapshot {
    Snapshot {
        pools,
        ..Default::default()
    }
}

fn service(name: &str, created: &str, ingress: &[&str]) -> Service {
    let ingress: Vec<_> = ingress.iter().map(|ip| json!({"ip": ip})).collect();
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                 "ports": [{"port": 80, "protocol": "TCP"}]},
        "status": {"loadBalancer": {"ingress": ingress}}
    }))
    .unwrap()
}

fn key(name: &str) -> ServiceKey {
    ServiceKey {
        namespace: "default".into(),
        name: name.into(),
    }
}

fn ips(o: &Outcome) -> Vec<String> {
    match o {
        Outcome::Assigned { assignment, .. } => {
            assignment.ips.iter().map(ToString::to_string).collect()
        }
        _ => Vec::new(),
    }
}

fn core_with(pools: Vec<IPAddressPool>) -> Core {
    let mut core = Core::new(Options::default());
    assert_eq!(
        core.load_config(&snapshot(pools), Vec::new()),
        ConfigChange::Applied
    );
    core
}

#[test]
fn restart_claims_status_addresses_before_assigning_new_ones() {
    let mut core = core_with(vec![pool("main", &["192.0.2.0/30"])]);
    // "new" was created first and has nothing; "old" shows .0 in its status. Without
    // claiming first, "new" (older) would take .0 and "old" would move.
    let new = service("new", "2024-01-01T00:00:00Z", &[]);
    let old = service("old", "2024-06-01T00:00:00Z", &["192.0.2.0"]);
    let services = [&new, &old];
    let outcomes = core.full_sync(&services, |_| None);
    let by_name: Vec<(String, Vec<String>)> = outcomes
        .iter()
        .map(|(s, o)| (s.metadata.name.clone().unwrap(), ips(o)))
        .collect();
    assert_eq!(
        by_name,
        vec![
            ("old".into(), vec!["192.0.2.0".into()]),
            ("new".into(), vec!["192.0.2.1".into()]),
        ]
    );
    // The Service that kept its address needs no status write and no event (only the
    // pool annotation it lacks).
    let (svc, outcome) = &outcomes[0];
    let update = decide(svc, outcome, false);
    assert_eq!(update.ingress, None);
    assert!(update.events.is_empty());
}

#[test]
fn deleting_a_service_retries_only_waiting_services() {
    let mut core = core_with(vec![pool("tiny", &["192.0.2.1/32"])]);
    let a = service("a", "2024-01-01T00:00:00Z", &[]);
    let b = service("b", "2024-01-02T00:00:00Z", &[]);
    let c = service("c", "2024-01-03T00:00:00Z", &[]);
    assert_eq!(ips(&core.reconcile(&a, None)), vec!["192.0.2.1"]);
    assert!(matches!(core.reconcile(&b, None), Outcome::Failed { .. }));
    assert!(matches!(core.reconcile(&c, None), Outcome::Failed { .. }));
    assert!(core.take_retries().is_empty(), "nothing freed yet");
    assert!(core.remove(&key("a")));
    // Only the two waiting Services are retried, not every Service.
    assert_eq!(core.take_retries(), vec![key("b"), key("c")]);
    assert_eq!(ips(&core.reconcile(&b, None)), vec!["192.0.2.1"]);
    assert!(matches!(core.reconcile(&c, None), Outcome::Failed { .. }));
    assert!(core.take_retries().is_empty());
}

#[test]
fn invalid_configuration_keeps_the_last_good_one() {
    let mut core = core_with(vec![pool("main", &["192.0.2.0/30"])]);
    let a = service("a", "2024-01-01T00:00:00Z", &[]);
    assert_eq!(ips(&core.reconcile(&a, None)), vec!["192.0.2.0"]);
    let bad = snapshot(vec![pool("main", &["not-a-cidr"])]);
    let ConfigChange::Invalid(problems) = core.load_config(&bad, Vec::new()) else {
        panic!("expected invalid");
    };
    assert!(
        problems[0].to_string().contains("IPAddressPool/main"),
        "{problems:?}"
    );
    assert!(core.config().is_some_and(|c| c.pools.contains_key("main")));
    assert!(core.holds(&key("a")));
    // The same configuration again changes nothing.
    assert_eq!(
        core.load_config(&snapshot(vec![pool("main", &["192.0.2.0/30"])]), Vec::new()),
        ConfigChange::Unchanged
    );
}

#[test]
fn a_status_address_outside_every_pool_is_cleared_and_replaced() {
    let mut core = core_with(vec![pool("main", &["192.0.2.0/30"])]);
    let a = service("a", "2024-01-01T00:00:00Z", &["198.51.100.7"]);
    let outcome = core.reconcile(&a, None);
    assert_eq!(ips(&outcome), vec!["192.0.2.0"]);
    let update = decide(&a, &outcome, false);
    let reasons: Vec<_> = update.events.iter().map(|e| e.reason).collect();
    assert_eq!(reasons, vec!["ClearAssignment", "IPAllocated"]);
}

#[test]
fn lb_class_decides_which_services_are_ours() {
    let mut core = Core::new(Options {
        lb_class: Some("ferrolb".into()),
    });
    core.load_config(&snapshot(vec![pool("main", &["192.0.2.0/30"])]), Vec::new());
    let plain = service("plain", "2024-01-01T00:00:00Z", &[]);
    assert_eq!(
        core.reconcile(&plain, None),
        Outcome::NotOurs {
            not_load_balancer: false
        }
    );
    let mut classed = service("classed", "2024-01-01T00:00:00Z", &[]);
    classed.spec.as_mut().unwrap().load_balancer_class = Some("ferrolb".into());
    assert_eq!(ips(&core.reconcile(&classed, None)), vec!["192.0.2.0"]);
    // Turning into a ClusterIP Service frees the address.
    classed.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    assert_eq!(
        core.reconcile(&classed, None),
        Outcome::NotOurs {
            not_load_balancer: true
        }
    );
    assert!(!core.holds(&key("classed")));
}

#[test]
fn without_any_valid_configuration_nothing_is_decided() {
    let mut core = Core::new(Options::default());
    let a = service("a", "2024-01-01T00:00:00Z", &["192.0.2.1"]);
    assert_eq!(core.reconcile(&a, None), Outcome::NoConfig);
    assert!(decide(&a, &Outcome::NoConfig, false).is_empty());
}

#[test]
fn only_failures_that_freed_addresses_can_end_are_retried() {
    let mut core = core_with(vec![pool("tiny", &["192.0.2.1/32"])]);
    let a = service("a", "2024-01-01T00:00:00Z", &[]);
    let mut foreign = service("foreign", "2024-01-02T00:00:00Z", &[]);
    foreign.metadata.annotations = Some(
        [(
            "metallb.io/loadBalancerIPs".to_string(),
            "198.51.100.1".to_string(),
        )]
        .into_iter()
        .collect(),
    );
    let full = service("full", "2024-01-03T00:00:00Z", &[]);
    assert_eq!(ips(&core.reconcile(&a, None)), vec!["192.0.2.1"]);
    assert!(matches!(
        core.reconcile(&foreign, None),
        Outcome::Failed { .. }
    ));
    assert!(matches!(
        core.reconcile(&full, None),
        Outcome::Failed { .. }
    ));
    core.remove(&key("a"));
    // The address outside every pool stays unserved whatever is freed.
    assert_eq!(core.take_retries(), vec![key("full")]);
}

#[test]
fn services_per_pool_follows_every_change_without_a_pass_over_the_services() {
    // The counts are kept as Services gain and lose addresses (the controller publishes
    // them after every change; counting all holders each time made one deletion cost a
    // pass over every Service).
    let mut core = core_with(vec![
        pool("a", &["192.0.2.0/31"]),
        pool("b", &["198.51.100.0/31"]),
    ]);
    let counts =
        |core: &Core| -> Vec<(String, u64)> { core.services_per_pool().into_iter().collect() };
    assert_eq!(counts(&core), vec![("a".into(), 0), ("b".into(), 0)]);
    let s1 = service("s1", "2024-01-01T00:00:00Z", &[]);
    let s2 = service("s2", "2024-01-02T00:00:00Z", &[]);
    let s3 = service("s3", "2024-01-03T00:00:00Z", &[]);
    for s in [&s1, &s2, &s3] {
        assert!(matches!(core.reconcile(s, None), Outcome::Assigned { .. }));
    }
    assert_eq!(counts(&core), vec![("a".into(), 2), ("b".into(), 1)]);
    // Reconciled again, unchanged: counted once.
    core.reconcile(&s2, None);
    assert_eq!(counts(&core), vec![("a".into(), 2), ("b".into(), 1)]);
    assert!(core.remove(&key("s1")));
    assert!(!core.remove(&key("s1")));
    assert_eq!(counts(&core), vec![("a".into(), 1), ("b".into(), 1)]);
    // No longer a LoadBalancer: it lets its address go.
    let mut plain = s3.clone();
    plain.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    core.reconcile(&plain, None);
    assert_eq!(counts(&core), vec![("a".into(), 1), ("b".into(), 0)]);
    // Pool "a" renamed "c", same addresses: the address stays, counted under "c".
    let config = ferrolb_model::validate(&snapshot(vec![
        pool("b", &["198.51.100.0/31"]),
        pool("c", &["192.0.2.0/31"]),
    ]))
    .unwrap();
    assert_eq!(core.set_config(config), ConfigChange::Applied);
    assert!(core.holds(&key("s2")));
    assert_eq!(counts(&core), vec![("b".into(), 0), ("c".into(), 1)]);
    core.reset();
    assert_eq!(counts(&core), vec![("b".into(), 0), ("c".into(), 0)]);
}

fn these(names: &[&str]) -> ChangedPools {
    ChangedPools::These(names.iter().map(|n| n.to_string()).collect())
}

#[test]
fn only_the_pools_a_change_touched_are_published_again() {
    let mut core = core_with(vec![
        pool("a", &["192.0.2.0/30"]),
        pool("b", &["198.51.100.0/30"]),
        pool("c", &["203.0.113.0/30"]),
    ]);
    // A new configuration: every pool.
    assert_eq!(core.take_changed_pools(), ChangedPools::All);
    assert_eq!(core.take_changed_pools(), these(&[]));
    let mut asking = service("x", "2024-01-01T00:00:00Z", &[]);
    asking
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("metallb.io/address-pool".into(), "b".into());
    assert_eq!(ips(&core.reconcile(&asking, None)), vec!["198.51.100.0"]);
    assert_eq!(core.take_changed_pools(), these(&["b"]));
    assert_eq!(core.services_in("b"), 1);
    assert_eq!(core.usage("b").map(|u| u.assigned_ipv4), Some(1));
    // Reconciled again, unchanged: its pool's counts stay as they are, but it is asked
    // again (cheap: one pool).
    core.reconcile(&asking, None);
    assert!(matches!(core.take_changed_pools(), ChangedPools::These(s) if s.len() <= 1));
    assert!(core.remove(&key("x")));
    assert_eq!(core.take_changed_pools(), these(&["b"]));
    assert_eq!(core.services_in("b"), 0);
    core.touch_all_pools();
    assert_eq!(core.take_changed_pools(), ChangedPools::All);
    core.reset();
    assert_eq!(core.take_changed_pools(), ChangedPools::All);
}

#[test]
fn a_deprecated_annotation_is_a_warning_event_with_the_outcome() {
    let mut core = core_with(vec![
        pool("a", &["192.0.2.0/30"]),
        pool("b", &["198.51.100.0/30"]),
    ]);
    let mut legacy = service("x", "2024-01-01T00:00:00Z", &[]);
    legacy
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("metallb.universe.tf/address-pool".into(), "b".into());
    let (outcome, warnings) = core.reconcile_warned(&legacy, None);
    assert_eq!(ips(&outcome), vec!["198.51.100.0"]);
    let events = ferrolb_k8s::decision::deprecation_events(&warnings);
    let shown: Vec<_> = events
        .iter()
        .map(|e| (e.warning, e.reason, e.message.as_str()))
        .collect();
    assert_eq!(
        shown,
        vec![(
            true,
            "deprecatedAnnotation",
            "annotation metallb.universe.tf/address-pool is deprecated; use metallb.io/address-pool"
        )]
    );
    // The current key: no warning.
    let plain = service("y", "2024-01-01T00:00:00Z", &[]);
    let (_, warnings) = core.reconcile_warned(&plain, None);
    assert!(warnings.is_empty(), "{warnings:?}");
}
