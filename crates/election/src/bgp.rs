//! BGP: what one node announces to each of its peers.
//!
//! In BGP mode there is no owner: every eligible node announces, and the routers spread
//! the traffic with ECMP. So the plan is per node, and needs no membership view (a dead
//! node's sessions die with it). The rules are MetalLB's:
//!
//! - the node peers with every `BGPPeer` whose `nodeSelectors` select it (none: all);
//! - a Service is announced through each `BGPAdvertisement` of its pool whose
//!   `serviceSelectors` and `nodeSelectors` select it and this node, to the advertisement's
//!   `peers` (none: all the node's peers), as its address rolled up to the advertisement's
//!   `aggregationLength` / `aggregationLengthV6`, with its communities and local preference;
//! - a Service with EndpointSlices but no serving endpoint is not announced; with
//!   `externalTrafficPolicy: Local`, only nodes running a serving endpoint announce it (so
//!   routers send traffic only where it is served). A Service without any EndpointSlice
//!   counts as served everywhere (standalone hosts often describe none; MetalLB ignores
//!   such Services, which leaves selector-less Services with hand-made endpoints dark);
//! - a node that is `NetworkUnavailable` or labelled
//!   `node.kubernetes.io/exclude-from-external-load-balancers` keeps its sessions but
//!   announces nothing.
//!
//! Several Services (or advertisements) may yield the same prefix for a peer (shared
//! addresses, aggregation): it is announced once, with the union of their communities and
//! the highest local preference (validation already rejects advertisements that disagree
//! on the local preference of the same pool, peers and nodes).

use crate::endpoints::Endpoints;
use crate::l2::{Assigned, any_matches, node_view};
use ferrolb_model::config::{BgpAdvertisement, BgpCommunity, Peer};
use ferrolb_model::{Config, Selector, Snapshot};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// One prefix announced to one peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    /// Communities attached (aliases already resolved).
    pub communities: BTreeSet<BgpCommunity>,
    /// LOCAL_PREF for internal peers; `None` leaves the speaker's default.
    pub local_pref: Option<u32>,
    /// The Services (`namespace/name`) behind the prefix, sorted, each once. A name is
    /// one allocation shared by every peer's route (10,000 Services announced to two
    /// peers would otherwise hold 20,000 copies and as many one-element sets).
    pub services: Vec<Arc<str>>,
}

impl Route {
    /// Adds a Service behind the prefix (kept sorted, each once).
    fn add_service(&mut self, name: &Arc<str>) {
        if let Err(at) = self.services.binary_search(name) {
            self.services.insert(at, name.clone());
        }
    }
}

/// What the node announces to one peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerPlan {
    /// The prefixes, with their attributes.
    pub routes: BTreeMap<IpNet, Route>,
}

/// Why this node does not announce a Service over BGP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BgpSkip {
    /// The node is not eligible (NetworkUnavailable, or excluded by label).
    NodeExcluded,
    /// It has EndpointSlices, but no endpoint is serving.
    NoServingEndpoint,
    /// `externalTrafficPolicy: Local` and no serving endpoint runs on this node.
    NoLocalEndpoint,
    /// No BGPAdvertisement of its pool selects both the Service and this node.
    NotSelected,
    /// The advertisements selecting it name no peer this node has.
    NoPeer,
}

impl fmt::Display for BgpSkip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BgpSkip::NodeExcluded => "the node is excluded from load balancers",
            BgpSkip::NoServingEndpoint => "no serving endpoints",
            BgpSkip::NoLocalEndpoint => {
                "externalTrafficPolicy is Local and no serving endpoint runs on this node"
            }
            BgpSkip::NotSelected => "no BGPAdvertisement of its pool selects it on this node",
            BgpSkip::NoPeer => "its BGPAdvertisements name no peer of this node",
        })
    }
}

/// The BGP plan of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeBgpPlan {
    /// The node's sessions, by `BGPPeer` name (peers with nothing to announce included).
    pub peers: BTreeMap<String, PeerPlan>,
    /// Services (`namespace/name`) of pools with a BGPAdvertisement that this node does
    /// not announce, with the reason.
    pub skipped: BTreeMap<String, BgpSkip>,
}

impl NodeBgpPlan {
    /// Every address announced to at least one peer, with the peers' names.
    pub fn announced(&self) -> BTreeMap<IpNet, BTreeSet<&str>> {
        let mut out: BTreeMap<IpNet, BTreeSet<&str>> = BTreeMap::new();
        for (peer, p) in &self.peers {
            for prefix in p.routes.keys() {
                out.entry(*prefix).or_default().insert(peer);
            }
        }
        out
    }

    /// The peers each Service (`namespace/name`) is announced to.
    pub fn peers_of_services(&self) -> BTreeMap<&str, BTreeSet<&str>> {
        let mut out: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (peer, p) in &self.peers {
            for route in p.routes.values() {
                for svc in &route.services {
                    out.entry(&**svc).or_default().insert(peer);
                }
            }
        }
        out
    }
}

fn selects(selectors: &[Selector], labels: &BTreeMap<String, String>) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

/// The prefix `ip` is announced as through `ad`: rolled up to its aggregation length.
pub fn aggregate(ip: IpAddr, ad: &BgpAdvertisement) -> IpNet {
    let len = match ip {
        IpAddr::V4(_) => ad.aggregation_length.min(32),
        IpAddr::V6(_) => ad.aggregation_length_v6.min(128),
    };
    // The length is clamped to the family's maximum, so `new` cannot fail; fall back to
    // the host route all the same rather than panic.
    IpNet::new(ip, len)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(ip))
}

/// The peers `node` (with these labels) has sessions with.
pub fn peers_of_node<'a>(
    config: &'a Config,
    labels: &BTreeMap<String, String>,
) -> impl Iterator<Item = &'a Peer> {
    config
        .peers
        .values()
        .filter(move |p| selects(&p.node_selectors, labels))
}

/// What `node` announces to each of its peers.
///
/// A node that is not among the snapshot's Nodes has no labels to select by: it gets no
/// sessions.
pub fn plan_bgp(
    config: &Config,
    snapshot: &Snapshot,
    assigned: &[Assigned<'_>],
    node: &str,
) -> NodeBgpPlan {
    let mut plan = NodeBgpPlan::default();
    let Some(view) = snapshot
        .nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(node))
        .map(node_view)
    else {
        return plan;
    };
    let peers: Vec<&Peer> = peers_of_node(config, view.labels).collect();
    for p in &peers {
        plan.peers.insert(p.name.clone(), PeerPlan::default());
    }
    let endpoints = Endpoints::new(&snapshot.endpoint_slices);

    for a in assigned {
        let svc = a.service;
        let pool_ads: Vec<&BgpAdvertisement> = config
            .bgp_advertisements
            .values()
            .filter(|ad| ad.pools.contains(a.pool))
            .collect();
        if pool_ads.is_empty() {
            continue;
        }
        let key = svc.key.to_string();
        if !view.eligible {
            plan.skipped.insert(key, BgpSkip::NodeExcluded);
            continue;
        }
        let serving = endpoints.get(svc.namespace(), svc.name());
        if serving.is_some_and(|s| !s.any) {
            plan.skipped.insert(key, BgpSkip::NoServingEndpoint);
            continue;
        }
        if svc.local_traffic && serving.is_some_and(|s| !s.nodes.contains(node)) {
            plan.skipped.insert(key, BgpSkip::NoLocalEndpoint);
            continue;
        }
        let labels = svc.labels.as_ref();
        let ads: Vec<&BgpAdvertisement> = pool_ads
            .into_iter()
            .filter(|ad| {
                (ad.service_selectors.is_empty() || any_matches(&ad.service_selectors, labels))
                    && selects(&ad.node_selectors, view.labels)
            })
            .collect();
        if ads.is_empty() {
            plan.skipped.insert(key, BgpSkip::NotSelected);
            continue;
        }
        let mut announced = false;
        for ad in ads {
            for peer in peers
                .iter()
                .filter(|p| ad.peers.is_empty() || ad.peers.contains(&p.name))
            {
                let routes = &mut plan.peers.entry(peer.name.clone()).or_default().routes;
                for ip in a.ips {
                    let route = routes.entry(aggregate(*ip, ad)).or_default();
                    route.communities.extend(ad.communities.iter().copied());
                    route.local_pref = route.local_pref.max(ad.local_pref);
                    route.add_service(&svc.key);
                    announced = true;
                }
            }
        }
        if !announced {
            plan.skipped.insert(key, BgpSkip::NoPeer);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServiceFacts;
    use ferrolb_model::config::{PeerAsn, Pool};
    use k8s_openapi::api::core::v1::{Node, NodeSpec, Service, ServiceSpec};
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn node(name: &str, l: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: labels(l),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: None,
        }
    }

    fn service(name: &str, l: &[(&str, &str)], local: bool) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                labels: labels(l),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                external_traffic_policy: local.then(|| "Local".to_string()),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn slice(svc: &str, nodes: &[(&str, bool)]) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!("{svc}-x")),
                namespace: Some("default".into()),
                labels: labels(&[("kubernetes.io/service-name", svc)]),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: nodes
                .iter()
                .map(|(n, ready)| Endpoint {
                    addresses: vec!["192.0.2.10".into()],
                    node_name: Some(n.to_string()),
                    conditions: Some(EndpointConditions {
                        ready: Some(*ready),
                        serving: Some(*ready),
                        terminating: None,
                    }),
                    ..Default::default()
                })
                .collect(),
            ports: None,
        }
    }

    fn peer(name: &str, selectors: Vec<Selector>) -> Peer {
        let mut p = Peer::new(
            name,
            64512,
            PeerAsn::Fixed(64513),
            "198.51.100.1".parse().unwrap(),
        );
        p.node_selectors = selectors;
        p
    }

    fn selector(k: &str, v: &str) -> Selector {
        Selector::parse(&LabelSelector {
            match_labels: labels(&[(k, v)]),
            match_expressions: None,
        })
        .unwrap()
    }

    fn config() -> Config {
        let mut c = Config::default();
        c.pools.insert(
            "bgp".into(),
            Pool {
                name: "bgp".into(),
                labels: BTreeMap::new(),
                cidrs: vec!["203.0.113.0/24".parse().unwrap()],
                auto_assign: true,
                avoid_buggy_ips: false,
                allocation: None,
            },
        );
        c.peers.insert("r1".into(), peer("r1", vec![]));
        c.peers
            .insert("r2".into(), peer("r2", vec![selector("rack", "a")]));
        c.bgp_advertisements.insert(
            "ad".into(),
            BgpAdvertisement {
                name: "ad".into(),
                pools: ["bgp".to_string()].into(),
                communities: [BgpCommunity::Standard(64512, 1)].into(),
                ..Default::default()
            },
        );
        c
    }

    fn snapshot(services: Vec<Service>, slices: Vec<EndpointSlice>) -> Snapshot {
        Snapshot {
            nodes: vec![node("n1", &[("rack", "a")]), node("n2", &[("rack", "b")])],
            services,
            endpoint_slices: slices,
            ..Default::default()
        }
    }

    fn plan(c: &Config, s: &Snapshot, ips: &[Vec<IpAddr>], node: &str) -> NodeBgpPlan {
        let facts: Vec<ServiceFacts> = s.services.iter().map(ServiceFacts::of).collect();
        let assigned: Vec<Assigned<'_>> = facts
            .iter()
            .zip(ips)
            .map(|(service, ips)| Assigned {
                service,
                ips,
                pool: "bgp",
            })
            .collect();
        plan_bgp(c, s, &assigned, node)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn peer_node_selectors_choose_the_sessions() {
        let c = config();
        let s = snapshot(vec![service("a", &[], false)], vec![]);
        let ips = [vec![ip("203.0.113.5")]];
        let n1 = plan(&c, &s, &ips, "n1");
        let n2 = plan(&c, &s, &ips, "n2");
        assert_eq!(n1.peers.keys().collect::<Vec<_>>(), ["r1", "r2"]);
        assert_eq!(n2.peers.keys().collect::<Vec<_>>(), ["r1"]);
        let route = &n1.peers["r2"].routes[&net("203.0.113.5/32")];
        assert_eq!(route.communities, [BgpCommunity::Standard(64512, 1)].into());
        assert_eq!(route.services, [Arc::from("default/a")]);
        assert_eq!(n2.peers["r1"].routes.len(), 1);
        // A node the snapshot does not know has no sessions.
        assert!(plan(&c, &s, &ips, "n9").peers.is_empty());
    }

    #[test]
    fn advertisement_peers_and_node_selectors_filter() {
        let mut c = config();
        let ad = c.bgp_advertisements.get_mut("ad").unwrap();
        ad.peers = vec!["r2".into()];
        let s = snapshot(vec![service("a", &[], false)], vec![]);
        let ips = [vec![ip("203.0.113.5")]];
        let n1 = plan(&c, &s, &ips, "n1");
        assert!(n1.peers["r1"].routes.is_empty());
        assert_eq!(n1.peers["r2"].routes.len(), 1);
        // n2 has no session with r2: nothing to announce it to.
        let n2 = plan(&c, &s, &ips, "n2");
        assert_eq!(n2.skipped["default/a"], BgpSkip::NoPeer);

        let ad = c.bgp_advertisements.get_mut("ad").unwrap();
        ad.peers.clear();
        ad.node_selectors = vec![selector("rack", "b")];
        assert_eq!(
            plan(&c, &s, &ips, "n1").skipped["default/a"],
            BgpSkip::NotSelected
        );
        assert_eq!(plan(&c, &s, &ips, "n2").peers["r1"].routes.len(), 1);
    }

    #[test]
    fn service_selectors_filter() {
        let mut c = config();
        c.bgp_advertisements
            .get_mut("ad")
            .unwrap()
            .service_selectors = vec![selector("expose", "bgp")];
        let s = snapshot(
            vec![
                service("a", &[("expose", "bgp")], false),
                service("b", &[], false),
            ],
            vec![],
        );
        let ips = [vec![ip("203.0.113.5")], vec![ip("203.0.113.6")]];
        let p = plan(&c, &s, &ips, "n2");
        assert_eq!(
            p.peers["r1"].routes.keys().copied().collect::<Vec<_>>(),
            [net("203.0.113.5/32")]
        );
        assert_eq!(p.skipped["default/b"], BgpSkip::NotSelected);
    }

    #[test]
    fn endpoints_and_traffic_policy() {
        let c = config();
        let s = snapshot(
            vec![
                service("cluster", &[], false),
                service("local", &[], true),
                service("down", &[], false),
                service("nolist", &[], true),
            ],
            vec![
                slice("cluster", &[("n2", true)]),
                slice("local", &[("n2", true), ("n1", false)]),
                slice("down", &[("n1", false)]),
            ],
        );
        let ips = [
            vec![ip("203.0.113.1")],
            vec![ip("203.0.113.2")],
            vec![ip("203.0.113.3")],
            vec![ip("203.0.113.4")],
        ];
        let n1 = plan(&c, &s, &ips, "n1");
        let n2 = plan(&c, &s, &ips, "n2");
        let on = |p: &NodeBgpPlan| p.peers["r1"].routes.keys().copied().collect::<Vec<_>>();
        // Cluster policy: every node announces while an endpoint serves anywhere.
        // Local: only the node with a serving endpoint. Without slices: everywhere.
        assert_eq!(on(&n1), [net("203.0.113.1/32"), net("203.0.113.4/32")]);
        assert_eq!(
            on(&n2),
            [
                net("203.0.113.1/32"),
                net("203.0.113.2/32"),
                net("203.0.113.4/32")
            ]
        );
        assert_eq!(n1.skipped["default/local"], BgpSkip::NoLocalEndpoint);
        assert_eq!(n1.skipped["default/down"], BgpSkip::NoServingEndpoint);
        assert_eq!(n2.skipped["default/down"], BgpSkip::NoServingEndpoint);
    }

    #[test]
    fn aggregation_merges_services_and_attributes() {
        let mut c = config();
        {
            let ad = c.bgp_advertisements.get_mut("ad").unwrap();
            ad.aggregation_length = 24;
            ad.aggregation_length_v6 = 64;
            ad.local_pref = Some(50);
        }
        c.bgp_advertisements.insert(
            "ad2".into(),
            BgpAdvertisement {
                name: "ad2".into(),
                pools: ["bgp".to_string()].into(),
                communities: [BgpCommunity::Large(1, 2, 3)].into(),
                local_pref: Some(200),
                ..Default::default()
            },
        );
        let s = snapshot(
            vec![service("a", &[], false), service("b", &[], false)],
            vec![],
        );
        let ips = [
            vec![ip("203.0.113.5"), ip("2001:db8::5")],
            vec![ip("203.0.113.6")],
        ];
        let p = plan(&c, &s, &ips, "n2");
        let routes = &p.peers["r1"].routes;
        assert_eq!(
            routes.keys().copied().collect::<Vec<_>>(),
            [
                net("203.0.113.0/24"),
                net("203.0.113.5/32"),
                net("203.0.113.6/32"),
                net("2001:db8::/64"),
                net("2001:db8::5/128"),
            ]
        );
        let agg = &routes[&net("203.0.113.0/24")];
        assert_eq!(
            agg.services,
            [Arc::from("default/a"), Arc::from("default/b")]
        );
        assert_eq!(agg.local_pref, Some(50));
        assert_eq!(routes[&net("203.0.113.5/32")].local_pref, Some(200));
        assert_eq!(
            routes[&net("2001:db8::5/128")].communities,
            [BgpCommunity::Large(1, 2, 3)].into()
        );
        let by_service = p.peers_of_services();
        assert_eq!(by_service["default/a"], ["r1"].into());
        assert_eq!(p.announced().len(), 5);
    }

    #[test]
    fn excluded_node_keeps_sessions_but_announces_nothing() {
        let c = config();
        let mut s = snapshot(vec![service("a", &[], false)], vec![]);
        s.nodes[0].metadata.labels.as_mut().unwrap().insert(
            ferrolb_model::annotations::EXCLUDE_FROM_EXTERNAL_LB.into(),
            String::new(),
        );
        let p = plan(&c, &s, &[vec![ip("203.0.113.5")]], "n1");
        assert_eq!(p.peers.len(), 2);
        assert!(p.peers.values().all(|p| p.routes.is_empty()));
        assert_eq!(p.skipped["default/a"], BgpSkip::NodeExcluded);
    }

    #[test]
    fn pools_without_bgp_advertisement_are_not_bgp_services() {
        let mut c = config();
        c.bgp_advertisements.clear();
        let s = snapshot(vec![service("a", &[], false)], vec![]);
        let p = plan(&c, &s, &[vec![ip("203.0.113.5")]], "n1");
        assert!(p.skipped.is_empty());
        assert!(p.peers.values().all(|p| p.routes.is_empty()));
    }
}
