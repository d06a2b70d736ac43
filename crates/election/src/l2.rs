//! Layer 2 election: for each address, the ranked list of nodes that may answer ARP/NDP
//! for it. The first is the owner; the next ones are the successors in order.

use crate::endpoints::Endpoints;
use crate::rank::rank_nodes;
use crate::service::ServiceFacts;
use ferrolb_model::annotations::EXCLUDE_FROM_EXTERNAL_LB;
use ferrolb_model::config::L2Advertisement;
use ferrolb_model::{Config, Selector, Snapshot};
use k8s_openapi::api::core::v1::Node;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

/// One Service with the addresses the allocator gave it.
#[derive(Clone, Copy, Debug)]
pub struct Assigned<'a> {
    /// What the election needs of the Service.
    pub service: &'a ServiceFacts,
    /// Its addresses.
    pub ips: &'a [IpAddr],
    /// The pool they came from.
    pub pool: &'a str,
}

/// Interfaces to answer on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Interfaces {
    /// Every eligible interface of the node.
    All,
    /// Only these.
    Named(BTreeSet<String>),
}

/// The election's result for one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpPlan {
    /// Candidate nodes, best first: `ranking[0]` announces, the rest take over in order.
    pub ranking: Vec<String>,
    /// The Services (`namespace/name`) using the address.
    pub services: Vec<String>,
    /// Interfaces the owner answers on.
    pub interfaces: Interfaces,
}

impl IpPlan {
    /// The announcing node.
    pub fn owner(&self) -> &str {
        &self.ranking[0]
    }
}

/// Why a Service is not announced in layer 2 mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// It has EndpointSlices, but no endpoint is serving.
    NoServingEndpoint,
    /// No L2Advertisement covers its pool (and selects it).
    NoAdvertisement,
    /// It shares its address while an advertisement of its pool selects Services by
    /// label, which cannot be honoured for a shared address (as MetalLB).
    SharedWithServiceSelectors,
    /// No live, eligible node may announce it.
    NoCandidate,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Skip::NoServingEndpoint => "no serving endpoints",
            Skip::NoAdvertisement => "no L2Advertisement selects it",
            Skip::SharedWithServiceSelectors => {
                "it shares its IP but an L2Advertisement of its pool has serviceSelectors"
            }
            Skip::NoCandidate => "no live node is eligible to announce it",
        })
    }
}

/// The layer 2 plan of the whole cluster: every node computes the same one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct L2Plan {
    /// Elected addresses.
    pub ips: BTreeMap<IpAddr, IpPlan>,
    /// Services (`namespace/name`) not announced in layer 2 mode, with the reason.
    pub skipped: BTreeMap<String, Skip>,
}

impl L2Plan {
    /// The addresses `node` announces, with their interfaces.
    pub fn owned_by<'a>(
        &'a self,
        node: &'a str,
    ) -> impl Iterator<Item = (&'a IpAddr, &'a IpPlan)> + 'a {
        self.ips.iter().filter(move |(_, p)| p.owner() == node)
    }
}

/// A node as the election sees it.
pub(crate) struct NodeView<'a> {
    pub(crate) labels: &'a BTreeMap<String, String>,
    /// Not NetworkUnavailable and not labelled as excluded from load balancers.
    pub(crate) eligible: bool,
}

pub(crate) fn node_view(node: &Node) -> NodeView<'_> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&EMPTY);
    let network_unavailable = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "NetworkUnavailable" && c.status == "True")
        });
    NodeView {
        labels,
        eligible: !network_unavailable && !labels.contains_key(EXCLUDE_FROM_EXTERNAL_LB),
    }
}

fn selects_node(ad: &L2Advertisement, labels: &BTreeMap<String, String>) -> bool {
    ad.node_selectors.is_empty() || ad.node_selectors.iter().any(|s| s.matches(labels))
}

pub(crate) fn any_matches(
    selectors: &[Selector],
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    selectors.iter().any(|s| s.matches_opt(labels))
}

/// Per-address accumulator while Services are processed.
#[derive(Default)]
struct Pending<'a> {
    services: Vec<String>,
    /// Candidate sets of each Service using the address, with scores.
    candidate_sets: Vec<BTreeMap<&'a str, u32>>,
    ads: Vec<&'a L2Advertisement>,
}

/// Elects an owner for every address of `assigned`.
///
/// `live` is the membership view: the nodes known alive. `None` means no membership
/// information, and every Node of the snapshot counts as alive.
///
/// A Service whose namespace/name has no EndpointSlice in the snapshot counts as served on
/// every node (standalone hosts often describe no endpoints); one with slices but no
/// serving endpoint is not announced.
pub fn elect_l2(
    config: &Config,
    snapshot: &Snapshot,
    assigned: &[Assigned<'_>],
    live: Option<&BTreeSet<String>>,
) -> L2Plan {
    let endpoints = Endpoints::new(&snapshot.endpoint_slices);
    let nodes: BTreeMap<&str, NodeView<'_>> = snapshot
        .nodes
        .iter()
        .filter_map(|n| n.metadata.name.as_deref().map(|name| (name, node_view(n))))
        .collect();
    let mut plan = L2Plan::default();
    let mut pending: BTreeMap<IpAddr, Pending<'_>> = BTreeMap::new();

    for a in assigned {
        let svc = a.service;
        let key = svc.key.to_string();
        let serving = endpoints.get(svc.namespace(), svc.name());
        if serving.is_some_and(|s| !s.any) {
            plan.skipped.insert(key, Skip::NoServingEndpoint);
            continue;
        }
        let pool_ads: Vec<&L2Advertisement> = config
            .l2_advertisements
            .values()
            .filter(|ad| ad.pools.contains(a.pool))
            .collect();
        if svc.shares_ip && pool_ads.iter().any(|ad| !ad.service_selectors.is_empty()) {
            plan.skipped.insert(key, Skip::SharedWithServiceSelectors);
            continue;
        }
        let labels = svc.labels.as_ref();
        let ads: Vec<&L2Advertisement> = pool_ads
            .into_iter()
            .filter(|ad| {
                ad.service_selectors.is_empty() || any_matches(&ad.service_selectors, labels)
            })
            .collect();
        if ads.is_empty() {
            plan.skipped.insert(key, Skip::NoAdvertisement);
            continue;
        }
        let local = svc.local_traffic;
        let mut candidates: BTreeMap<&str, u32> = BTreeMap::new();
        for (&node, view) in &nodes {
            let alive = live.is_none_or(|l| l.contains(node));
            let selected = ads.iter().any(|ad| selects_node(ad, view.labels));
            let has_endpoint = !local || serving.is_none_or(|s| s.nodes.contains(node));
            if !(view.eligible && alive && selected && has_endpoint) {
                continue;
            }
            let score: u32 = ads
                .iter()
                .flat_map(|ad| &ad.preferred_node_selectors)
                .filter(|p| p.selector.matches(view.labels))
                .map(|p| u32::from(p.weight))
                .sum();
            candidates.insert(node, score);
        }
        for ip in a.ips {
            let p = pending.entry(*ip).or_default();
            p.services.push(key.clone());
            p.candidate_sets.push(candidates.clone());
            p.ads.extend(ads.iter().copied());
        }
    }

    for (ip, p) in pending {
        // The owner must be able to serve every Service on the address: take the nodes
        // all of them accept; if they have none in common, any node one of them accepts.
        let mut common: BTreeMap<&str, u32> = p.candidate_sets[0].clone();
        for set in &p.candidate_sets[1..] {
            common.retain(|n, score| match set.get(n) {
                Some(s) => {
                    *score = (*score).max(*s);
                    true
                }
                None => false,
            });
        }
        if common.is_empty() {
            for set in &p.candidate_sets {
                for (n, s) in set {
                    let e = common.entry(n).or_insert(0);
                    *e = (*e).max(*s);
                }
            }
        }
        let ranking: Vec<String> = rank_nodes(ip, common)
            .into_iter()
            .map(str::to_string)
            .collect();
        let Some(owner) = ranking.first() else {
            for s in p.services {
                plan.skipped.entry(s).or_insert(Skip::NoCandidate);
            }
            continue;
        };
        let owner_labels = nodes.get(owner.as_str()).map(|v| v.labels);
        let owner_ads: Vec<&&L2Advertisement> = p
            .ads
            .iter()
            .filter(|ad| owner_labels.is_some_and(|l| selects_node(ad, l)))
            .collect();
        let interfaces = if owner_ads.iter().any(|ad| ad.interfaces.is_empty()) {
            Interfaces::All
        } else {
            Interfaces::Named(
                owner_ads
                    .iter()
                    .flat_map(|ad| ad.interfaces.iter().cloned())
                    .collect(),
            )
        };
        let mut services = p.services;
        services.sort();
        services.dedup();
        plan.ips.insert(
            ip,
            IpPlan {
                ranking,
                services,
                interfaces,
            },
        );
    }
    plan
}
