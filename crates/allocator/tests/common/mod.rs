//! Helpers shared by the allocator's integration tests: pools, configs and Services built
//! directly (validation is not involved).

#![allow(dead_code)]

use ferrolb_allocator::{Options, Outcome, ServiceKey, ServiceResult, allocate};
use ferrolb_model::selector::Selector;
use ferrolb_model::{Config, Pool, PoolAllocation, Snapshot};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// An auto-assign pool without restrictions.
pub fn pool(name: &str, cidrs: &[&str]) -> Pool {
    Pool {
        name: name.to_string(),
        labels: BTreeMap::new(),
        cidrs: cidrs
            .iter()
            .map(|c| c.parse().expect("test CIDR"))
            .collect(),
        auto_assign: true,
        avoid_buggy_ips: false,
        allocation: None,
    }
}

/// Builder-style changes to a pool.
pub trait PoolExt {
    /// autoAssign: false.
    fn manual(self) -> Self;
    /// avoidBuggyIPs: true.
    fn avoid_buggy(self) -> Self;
    /// A serviceAllocation.
    fn allocation(self, a: PoolAllocation) -> Self;
}

impl PoolExt for Pool {
    fn manual(mut self) -> Self {
        self.auto_assign = false;
        self
    }
    fn avoid_buggy(mut self) -> Self {
        self.avoid_buggy_ips = true;
        self
    }
    fn allocation(mut self, a: PoolAllocation) -> Self {
        self.allocation = Some(a);
        self
    }
}

/// A serviceAllocation.
pub fn alloc(priority: i32, namespaces: &[&str]) -> PoolAllocation {
    PoolAllocation {
        priority,
        namespaces: namespaces
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>(),
        namespace_selectors: Vec::new(),
        service_selectors: Vec::new(),
    }
}

/// A selector matching labels `k=v`.
pub fn selector(pairs: &[(&str, &str)]) -> Selector {
    Selector::parse(&LabelSelector {
        match_labels: Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        match_expressions: None,
    })
    .expect("test selector")
}

pub fn config(pools: Vec<Pool>) -> Config {
    Config {
        pools: pools.into_iter().map(|p| (p.name.clone(), p)).collect(),
        ..Config::default()
    }
}

pub fn key(s: &str) -> ServiceKey {
    let (namespace, name) = s.split_once('/').expect("ns/name");
    ServiceKey {
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test IP")
}

pub fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| ip(s)).collect()
}

/// A LoadBalancer Service under construction, as JSON.
#[derive(Clone, Debug)]
pub struct Svc(pub Value);

impl Svc {
    /// A LoadBalancer Service `ns/name` with port TCP/80.
    pub fn new(ns_name: &str) -> Svc {
        let k = key(ns_name);
        Svc(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"namespace": k.namespace, "name": k.name},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
        }))
    }
    fn meta_map(&mut self, field: &str) -> &mut serde_json::Map<String, Value> {
        let meta = self.0["metadata"].as_object_mut().expect("metadata");
        meta.entry(field)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("map")
    }
    pub fn annotation(mut self, k: &str, v: &str) -> Svc {
        self.meta_map("annotations").insert(k.into(), json!(v));
        self
    }
    pub fn label(mut self, k: &str, v: &str) -> Svc {
        self.meta_map("labels").insert(k.into(), json!(v));
        self
    }
    pub fn spec(mut self, field: &str, v: Value) -> Svc {
        self.0["spec"][field] = v;
        self
    }
    pub fn ips_annotation(self, v: &str) -> Svc {
        self.annotation("metallb.io/loadBalancerIPs", v)
    }
    pub fn pool(self, v: &str) -> Svc {
        self.annotation("metallb.io/address-pool", v)
    }
    pub fn share(self, v: &str) -> Svc {
        self.annotation("metallb.io/allow-shared-ip", v)
    }
    pub fn policy(self, p: &str) -> Svc {
        self.spec("ipFamilyPolicy", json!(p))
    }
    pub fn families(self, f: &[&str]) -> Svc {
        self.spec("ipFamilies", json!(f))
    }
    /// Ports as `PROTO/port`.
    pub fn ports(self, ports: &[&str]) -> Svc {
        let list: Vec<Value> = ports
            .iter()
            .map(|p| {
                let (proto, port) = p.split_once('/').expect("PROTO/port");
                json!({"protocol": proto, "port": port.parse::<i32>().expect("port")})
            })
            .collect();
        self.spec("ports", json!(list))
    }
    /// externalTrafficPolicy: Local with a selector.
    pub fn local(self, selector: &[(&str, &str)]) -> Svc {
        let sel: serde_json::Map<String, Value> = selector
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        self.spec("externalTrafficPolicy", json!("Local"))
            .spec("selector", Value::Object(sel))
    }
    pub fn status(mut self, list: &[&str]) -> Svc {
        let ingress: Vec<Value> = list.iter().map(|i| json!({"ip": i})).collect();
        self.0["status"] = json!({"loadBalancer": {"ingress": ingress}});
        self
    }
    /// creationTimestamp at second `s` of 2024-01-01.
    pub fn created(mut self, s: u32) -> Svc {
        self.0["metadata"]["creationTimestamp"] =
            json!(format!("2024-01-01T00:{:02}:{:02}Z", s / 60, s % 60));
        self
    }
    pub fn build(&self) -> Service {
        serde_json::from_value(self.0.clone()).expect("valid Service JSON")
    }
}

pub fn namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
        .expect("namespace")
}

pub fn snapshot(services: &[Svc]) -> Snapshot {
    Snapshot {
        services: services.iter().map(Svc::build).collect(),
        ..Snapshot::default()
    }
}

pub fn run(config: &Config, snap: &Snapshot) -> Outcome {
    allocate(config, snap, &Options::default(), &BTreeMap::new())
}

pub fn result<'a>(outcome: &'a Outcome, service: &str) -> &'a ServiceResult {
    let k = key(service);
    outcome
        .results
        .iter()
        .find(|r| r.service == k)
        .unwrap_or_else(|| panic!("no result for {service} in {outcome:#?}"))
}

/// What a test expects of one Service.
#[derive(Debug)]
pub enum Expect {
    /// These addresses from this pool.
    Ips(&'static str, &'static [&'static str]),
    /// This error text.
    Error(&'static str),
    /// Not in the outcome at all.
    Absent,
}

pub fn check(outcome: &Outcome, service: &str, expect: &Expect, case: &str) {
    let k = key(service);
    let found = outcome.results.iter().find(|r| r.service == k);
    match (expect, found) {
        (Expect::Absent, None) => {}
        (Expect::Absent, Some(r)) => panic!("{case}: {service} should not be ours: {r:?}"),
        (_, None) => panic!("{case}: no result for {service}"),
        (Expect::Ips(pool, list), Some(r)) => {
            assert_eq!(
                (
                    r.pool.as_deref(),
                    r.ips.clone(),
                    r.error.as_ref().map(ToString::to_string)
                ),
                (Some(*pool), ips(list), None),
                "{case}: {service}"
            );
        }
        (Expect::Error(text), Some(r)) => {
            assert_eq!(
                (
                    r.error.as_ref().map(ToString::to_string),
                    r.ips.clone(),
                    r.pool.clone()
                ),
                (Some(text.to_string()), vec![], None),
                "{case}: {service}"
            );
        }
    }
}
