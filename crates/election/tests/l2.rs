//! Layer 2 election rules, one case each.

use ferrolb_election::{Assigned, Interfaces, ServiceFacts, Skip, elect_l2, rank_nodes};
use ferrolb_model::config::{L2Advertisement, PreferredNodes};
use ferrolb_model::{Config, Selector, Snapshot};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeSet;
use std::net::IpAddr;

fn node(name: &str, labels: &str, extra: &str) -> Node {
    serde_saphyr::from_str(&format!(
        "metadata: {{name: {name}, labels: {{{labels}}}}}\n{extra}"
    ))
    .unwrap()
}

fn service(name: &str, extra_meta: &str, spec: &str) -> Service {
    serde_saphyr::from_str(&format!(
        "metadata: {{name: {name}, namespace: default{extra_meta}}}\nspec: {{type: LoadBalancer{spec}}}"
    ))
    .unwrap()
}

fn slice(service: &str, endpoints: &str) -> EndpointSlice {
    serde_saphyr::from_str(&format!(
        "metadata: {{name: {service}-x, namespace: default, labels: {{kubernetes.io/service-name: {service}}}}}\naddressType: IPv4\nendpoints: {endpoints}"
    ))
    .unwrap()
}

fn selector(labels: &[(&str, &str)]) -> Selector {
    Selector::parse(&LabelSelector {
        match_labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        match_expressions: None,
    })
    .unwrap()
}

fn ad(name: &str, pools: &[&str]) -> L2Advertisement {
    L2Advertisement {
        name: name.into(),
        pools: pools.iter().map(|p| p.to_string()).collect(),
        node_selectors: vec![],
        interfaces: vec![],
        service_selectors: vec![],
        preferred_node_selectors: vec![],
    }
}

fn config(ads: Vec<L2Advertisement>) -> Config {
    let mut c = Config::default();
    for a in ads {
        c.l2_advertisements.insert(a.name.clone(), a);
    }
    c
}

fn three_nodes() -> Vec<Node> {
    vec![
        node("node-a", "rack: r1", ""),
        node("node-b", "rack: r1", ""),
        node("node-c", "rack: r2", ""),
    ]
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn hash_order(ip_: &str, nodes: &[&str]) -> Vec<String> {
    rank_nodes(ip(ip_), nodes.iter().map(|n| (*n, 0)))
        .into_iter()
        .map(String::from)
        .collect()
}

struct Case {
    snapshot: Snapshot,
    config: Config,
    services: Vec<(Service, Vec<IpAddr>, &'static str)>,
}

impl Case {
    fn new(config: Config) -> Self {
        Case {
            snapshot: Snapshot {
                nodes: three_nodes(),
                ..Default::default()
            },
            config,
            services: vec![],
        }
    }
    fn svc(mut self, s: Service, ips: &[&str], pool: &'static str) -> Self {
        self.services
            .push((s, ips.iter().map(|i| ip(i)).collect(), pool));
        self
    }
    fn run(&self, live: Option<&BTreeSet<String>>) -> ferrolb_election::L2Plan {
        let facts: Vec<ServiceFacts> = self
            .services
            .iter()
            .map(|(s, _, _)| ServiceFacts::of(s))
            .collect();
        let assigned: Vec<Assigned<'_>> = self
            .services
            .iter()
            .zip(&facts)
            .map(|((_, ips, pool), service)| Assigned { service, ips, pool })
            .collect();
        elect_l2(&self.config, &self.snapshot, &assigned, live)
    }
}

#[test]
fn every_eligible_node_ranked_in_hash_order() {
    let case = Case::new(config(vec![ad("l2", &["p"])])).svc(
        service("web", "", ""),
        &["203.0.113.1"],
        "p",
    );
    let plan = case.run(None);
    let p = &plan.ips[&ip("203.0.113.1")];
    assert_eq!(
        p.ranking,
        hash_order("203.0.113.1", &["node-a", "node-b", "node-c"])
    );
    assert_eq!(p.services, ["default/web"]);
    assert_eq!(p.interfaces, Interfaces::All);
}

#[test]
fn dead_excluded_and_network_unavailable_nodes_are_not_candidates() {
    let mut case = Case::new(config(vec![ad("l2", &["p"])])).svc(
        service("web", "", ""),
        &["203.0.113.1"],
        "p",
    );
    case.snapshot.nodes.push(node(
        "node-d",
        "node.kubernetes.io/exclude-from-external-load-balancers: ''",
        "",
    ));
    case.snapshot.nodes.push(node(
        "node-e",
        "",
        "status: {conditions: [{type: NetworkUnavailable, status: 'True'}]}",
    ));
    case.snapshot.nodes.push(node(
        "node-f",
        "",
        "status: {conditions: [{type: NetworkUnavailable, status: 'False'}]}",
    ));
    let live: BTreeSet<String> = ["node-a", "node-c", "node-d", "node-e", "node-f"]
        .map(String::from)
        .into();
    let plan = case.run(Some(&live));
    let ranking: BTreeSet<&str> = plan.ips[&ip("203.0.113.1")]
        .ranking
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(ranking, BTreeSet::from(["node-a", "node-c", "node-f"]));
}

#[test]
fn node_selectors_restrict_candidates_and_interfaces_follow_the_owner_ads() {
    let mut r1 = ad("r1-only", &["p"]);
    r1.node_selectors = vec![selector(&[("rack", "r1")])];
    r1.interfaces = vec!["eth1".into()];
    let mut r2 = ad("r2-only", &["p"]);
    r2.node_selectors = vec![selector(&[("rack", "r2")])];
    r2.interfaces = vec!["eth2".into()];
    let case = Case::new(config(vec![r1, r2])).svc(service("web", "", ""), &["203.0.113.1"], "p");
    let plan = case.run(None);
    let p = &plan.ips[&ip("203.0.113.1")];
    assert_eq!(p.ranking.len(), 3);
    let owner_rack = if p.owner() == "node-c" {
        "eth2"
    } else {
        "eth1"
    };
    assert_eq!(
        p.interfaces,
        Interfaces::Named(BTreeSet::from([owner_rack.to_string()]))
    );

    let mut only_r2 = ad("r2-only", &["p"]);
    only_r2.node_selectors = vec![selector(&[("rack", "r2")])];
    let case = Case::new(config(vec![only_r2])).svc(service("web", "", ""), &["203.0.113.1"], "p");
    assert_eq!(case.run(None).ips[&ip("203.0.113.1")].ranking, ["node-c"]);
}

#[test]
fn preferred_node_selectors_win_over_the_hash() {
    let mut a = ad("l2", &["p"]);
    // Whichever node the hash puts last gets the preference.
    let last = hash_order("203.0.113.1", &["node-a", "node-b", "node-c"])
        .pop()
        .unwrap();
    a.preferred_node_selectors = vec![PreferredNodes {
        weight: 50,
        selector: Selector::parse(&LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                    key: "kubernetes.io/hostname".into(),
                    operator: "In".into(),
                    values: Some(vec![last.clone()]),
                },
            ]),
        })
        .unwrap(),
    }];
    let mut case = Case::new(config(vec![a])).svc(service("web", "", ""), &["203.0.113.1"], "p");
    for n in &mut case.snapshot.nodes {
        let name = n.metadata.name.clone().unwrap();
        n.metadata
            .labels
            .get_or_insert_default()
            .insert("kubernetes.io/hostname".into(), name);
    }
    assert_eq!(case.run(None).ips[&ip("203.0.113.1")].owner(), last);
}

#[test]
fn endpoints_decide_whether_and_where() {
    let cfg = config(vec![ad("l2", &["p"])]);
    // Slices with no serving endpoint: not announced.
    let mut case = Case::new(cfg.clone()).svc(service("web", "", ""), &["203.0.113.1"], "p");
    case.snapshot.endpoint_slices.push(slice(
        "web",
        "[{addresses: [192.0.2.9], conditions: {ready: false}, nodeName: node-a}]",
    ));
    let plan = case.run(None);
    assert!(plan.ips.is_empty());
    assert_eq!(plan.skipped["default/web"], Skip::NoServingEndpoint);

    // externalTrafficPolicy Local: only nodes with a serving endpoint.
    let mut case = Case::new(cfg.clone()).svc(
        service("web", "", ", externalTrafficPolicy: Local"),
        &["203.0.113.1"],
        "p",
    );
    case.snapshot.endpoint_slices.push(slice(
        "web",
        "[{addresses: [192.0.2.9], conditions: {ready: false, serving: true}, nodeName: node-b}, {addresses: [192.0.2.10], conditions: {ready: false}, nodeName: node-c}]",
    ));
    assert_eq!(case.run(None).ips[&ip("203.0.113.1")].ranking, ["node-b"]);

    // Cluster policy: any node, once some endpoint serves.
    let mut case = Case::new(cfg.clone()).svc(service("web", "", ""), &["203.0.113.1"], "p");
    case.snapshot
        .endpoint_slices
        .push(slice("web", "[{addresses: [192.0.2.9], nodeName: node-b}]"));
    assert_eq!(case.run(None).ips[&ip("203.0.113.1")].ranking.len(), 3);

    // No EndpointSlice at all: served on every node, even with policy Local.
    let case = Case::new(cfg).svc(
        service("web", "", ", externalTrafficPolicy: Local"),
        &["203.0.113.1"],
        "p",
    );
    assert_eq!(case.run(None).ips[&ip("203.0.113.1")].ranking.len(), 3);
}

#[test]
fn advertisements_must_cover_the_pool_and_select_the_service() {
    let case = Case::new(config(vec![ad("l2", &["other"])])).svc(
        service("web", "", ""),
        &["203.0.113.1"],
        "p",
    );
    assert_eq!(case.run(None).skipped["default/web"], Skip::NoAdvertisement);

    let mut sel = ad("l2", &["p"]);
    sel.service_selectors = vec![selector(&[("expose", "l2")])];
    let case = Case::new(config(vec![sel.clone()]))
        .svc(service("web", "", ""), &["203.0.113.1"], "p")
        .svc(
            service("api", ", labels: {expose: l2}", ""),
            &["203.0.113.2"],
            "p",
        );
    let plan = case.run(None);
    assert_eq!(plan.skipped["default/web"], Skip::NoAdvertisement);
    assert!(plan.ips.contains_key(&ip("203.0.113.2")));

    // Sharing an address with service selectors in play: not announced (as MetalLB).
    let case = Case::new(config(vec![sel])).svc(
        service(
            "api",
            ", labels: {expose: l2}, annotations: {metallb.io/allow-shared-ip: k}",
            "",
        ),
        &["203.0.113.2"],
        "p",
    );
    assert_eq!(
        case.run(None).skipped["default/api"],
        Skip::SharedWithServiceSelectors
    );
}

#[test]
fn shared_address_has_one_owner_and_families_are_elected_apart() {
    let case = Case::new(config(vec![ad("l2", &["p"])]))
        .svc(
            service(
                "dns-tcp",
                ", annotations: {metallb.io/allow-shared-ip: dns}",
                "",
            ),
            &["203.0.113.5"],
            "p",
        )
        .svc(
            service(
                "dns-udp",
                ", annotations: {metallb.io/allow-shared-ip: dns}",
                "",
            ),
            &["203.0.113.5"],
            "p",
        )
        .svc(
            service("dual", "", ""),
            &["2001:db8::5", "203.0.113.6"],
            "p",
        );
    let plan = case.run(None);
    assert_eq!(
        plan.ips[&ip("203.0.113.5")].services,
        ["default/dns-tcp", "default/dns-udp"]
    );
    assert_eq!(plan.ips.len(), 3);
    for a in ["2001:db8::5", "203.0.113.6"] {
        assert_eq!(
            plan.ips[&ip(a)].ranking,
            hash_order(a, &["node-a", "node-b", "node-c"])
        );
    }
}

#[test]
fn no_live_candidate_is_reported() {
    let case = Case::new(config(vec![ad("l2", &["p"])])).svc(
        service("web", "", ""),
        &["203.0.113.1"],
        "p",
    );
    let live = BTreeSet::from(["elsewhere".to_string()]);
    let plan = case.run(Some(&live));
    assert!(plan.ips.is_empty());
    assert_eq!(plan.skipped["default/web"], Skip::NoCandidate);
}
