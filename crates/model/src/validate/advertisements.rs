//! `L2Advertisement` and `BGPAdvertisement` rules, and the rules that tie BGP
//! advertisements to pools, peers and BFD profiles.

use super::communities::Aliases;
use super::pools::{PoolInfo, by_name};
use super::selectors::{check_selector, check_selectors};
use super::{Ctx, Obj, check_duplicate_strings, name_objects};
use crate::config::{self, BfdProfile, BgpCommunity, CommunityParseError, Peer, PreferredNodes};
use crate::crd::L2Advertisement;
use crate::{Problem, Selector, Snapshot};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::{BTreeMap, BTreeSet};

/// Names of the pools an advertisement selects: the named ones that exist, plus those
/// whose labels a selector matches; every pool when neither list is given.
fn selected_pools(
    names: &[String],
    raw_selectors: &[LabelSelector],
    selectors: &[Selector],
    pools: &[PoolInfo],
) -> BTreeSet<String> {
    let pools = by_name(pools);
    if names.is_empty() && raw_selectors.is_empty() {
        return pools.keys().map(|k| k.to_string()).collect();
    }
    pools
        .values()
        .filter(|p| {
            names.contains(&p.obj.name) || selectors.iter().any(|s| s.matches(&p.pool.labels))
        })
        .map(|p| p.obj.name.clone())
        .collect()
}

pub(crate) fn check_l2(
    ctx: &mut Ctx,
    ads: &[L2Advertisement],
    pools: &[PoolInfo],
) -> BTreeMap<String, config::L2Advertisement> {
    let named = name_objects(
        ctx,
        "L2Advertisement",
        ads.iter().map(|a| a.metadata.name.as_deref()),
    );
    let mut out = BTreeMap::new();
    for (n, ad) in named.iter().zip(ads) {
        let obj = &n.obj;
        let s = &ad.spec;
        check_duplicate_strings(ctx, obj, "spec.ipAddressPools", &s.ip_address_pools, "pool");
        check_duplicate_strings(ctx, obj, "spec.interfaces", &s.interfaces, "interface");
        let pool_selectors = check_selectors(
            ctx,
            obj,
            "spec.ipAddressPoolSelectors",
            &s.ip_address_pool_selectors,
        );
        let node_selectors = check_selectors(ctx, obj, "spec.nodeSelectors", &s.node_selectors);
        let service_selectors =
            check_selectors(ctx, obj, "spec.serviceSelectors", &s.service_selectors);
        let mut preferred = Vec::new();
        for (i, pref) in s.preferred_node_selectors.iter().enumerate() {
            let at = format!("spec.preferredNodeSelectors[{i}]");
            let weight = u8::try_from(pref.weight)
                .ok()
                .filter(|w| (1..=100).contains(w));
            if weight.is_none() {
                ctx.push(obj.problem(
                    format!("{at}.weight"),
                    format!("{} is out of range: use 1 to 100", pref.weight),
                ));
            }
            let selector = check_selector(ctx, obj, &format!("{at}.preference"), &pref.preference);
            if let (Some(weight), Some(selector)) = (weight, selector) {
                preferred.push(PreferredNodes { weight, selector });
            }
        }
        if n.first {
            out.insert(
                obj.name.clone(),
                config::L2Advertisement {
                    name: obj.name.clone(),
                    pools: selected_pools(
                        &s.ip_address_pools,
                        &s.ip_address_pool_selectors,
                        &pool_selectors,
                        pools,
                    ),
                    node_selectors,
                    interfaces: s.interfaces.clone(),
                    service_selectors,
                    preferred_node_selectors: preferred,
                },
            );
        }
    }
    out
}

/// A BGP advertisement as checked, with what the rules spanning advertisements need.
struct BgpInfo {
    obj: Obj,
    ad: config::BgpAdvertisement,
    /// Both aggregation lengths are in range (so comparing them with pools makes sense).
    lengths_ok: bool,
}

pub(crate) fn check_bgp(
    ctx: &mut Ctx,
    snapshot: &Snapshot,
    pools: &[PoolInfo],
    aliases: &Aliases,
    peers: &BTreeMap<String, Peer>,
    bfd_profiles: &BTreeMap<String, BfdProfile>,
) -> BTreeMap<String, config::BgpAdvertisement> {
    let ads = &snapshot.bgp_advertisements;
    let named = name_objects(
        ctx,
        "BGPAdvertisement",
        ads.iter().map(|a| a.metadata.name.as_deref()),
    );
    let mut infos: Vec<BgpInfo> = Vec::new();
    for (i, (n, ad)) in named.iter().zip(ads).enumerate() {
        let obj = &n.obj;
        let s = &ad.spec;
        if let Some(j) = ads[..i].iter().position(|other| other.spec == ad.spec) {
            let other = named.get(j).map(|o| o.obj.id()).unwrap_or_default();
            ctx.push(obj.problem(
                "spec",
                format!("same spec as {other}: the two are duplicates, remove one"),
            ));
        }
        let mut lengths_ok = true;
        let v4 = s.effective_aggregation_length();
        let aggregation_length = u8::try_from(v4).ok().filter(|l| (1..=32).contains(l));
        if aggregation_length.is_none() {
            lengths_ok = false;
            ctx.push(obj.problem(
                "spec.aggregationLength",
                format!("{v4} is out of range: use 1 to 32 (32, the default, announces each address alone)"),
            ));
        }
        let v6 = s.effective_aggregation_length_v6();
        let aggregation_length_v6 = u8::try_from(v6).ok().filter(|l| (1..=128).contains(l));
        if aggregation_length_v6.is_none() {
            lengths_ok = false;
            ctx.push(obj.problem(
                "spec.aggregationLengthV6",
                format!("{v6} is out of range: use 1 to 128 (128, the default, announces each address alone)"),
            ));
        }
        if !s.service_selectors.is_empty() && (v4 != 32 || v6 != 128) {
            ctx.push(obj.problem(
                "spec.serviceSelectors",
                "serviceSelectors work only with the default aggregation lengths (32 and 128): remove aggregationLength/aggregationLengthV6 or the serviceSelectors",
            ));
        }
        check_duplicate_strings(ctx, obj, "spec.ipAddressPools", &s.ip_address_pools, "pool");
        check_duplicate_strings(ctx, obj, "spec.communities", &s.communities, "community");
        check_duplicate_strings(ctx, obj, "spec.peers", &s.peers, "peer");
        let pool_selectors = check_selectors(
            ctx,
            obj,
            "spec.ipAddressPoolSelectors",
            &s.ip_address_pool_selectors,
        );
        let node_selectors = check_selectors(ctx, obj, "spec.nodeSelectors", &s.node_selectors);
        let service_selectors =
            check_selectors(ctx, obj, "spec.serviceSelectors", &s.service_selectors);
        let mut communities = BTreeSet::new();
        for (i, text) in s.communities.iter().enumerate() {
            if let Some(c) = community(ctx, obj, &format!("spec.communities[{i}]"), text, aliases) {
                communities.insert(c);
            }
        }
        infos.push(BgpInfo {
            obj: obj.clone(),
            ad: config::BgpAdvertisement {
                name: obj.name.clone(),
                pools: selected_pools(
                    &s.ip_address_pools,
                    &s.ip_address_pool_selectors,
                    &pool_selectors,
                    pools,
                ),
                aggregation_length: aggregation_length.unwrap_or(32),
                aggregation_length_v6: aggregation_length_v6.unwrap_or(128),
                local_pref: s.local_pref.filter(|p| *p != 0),
                communities,
                node_selectors,
                peers: s.peers.clone(),
                service_selectors,
            },
            lengths_ok,
        });
    }
    check_aggregation_against_pools(ctx, &infos, pools);
    check_local_pref(ctx, &infos, snapshot);
    check_bfd_echo(ctx, &infos, pools, peers, bfd_profiles);
    named
        .iter()
        .zip(infos)
        .filter(|(n, _)| n.first)
        .map(|(_, info)| (info.ad.name.clone(), info.ad))
        .collect()
}

/// A community of an advertisement: an alias, else a value. Text of neither shape is
/// taken for an alias not defined yet (a transient problem, as in MetalLB).
fn community(
    ctx: &mut Ctx,
    obj: &Obj,
    field: &str,
    text: &str,
    aliases: &Aliases,
) -> Option<BgpCommunity> {
    if let Some(c) = aliases.values.get(text) {
        return Some(*c);
    }
    if aliases.names.contains(text) {
        // Defined, but its value is invalid: reported on the Community.
        return None;
    }
    match text.parse::<BgpCommunity>() {
        Ok(c) => Some(c),
        Err(CommunityParseError::InvalidValue(e)) => {
            ctx.push(obj.problem(field, format!("{text:?} is not a valid community: {e}")));
            None
        }
        Err(CommunityParseError::NotACommunity) => {
            ctx.push(
                obj.problem(
                    field,
                    format!(
                        "{text:?} is neither a community value (a:b or large:a:b:c) nor a known alias: define the alias in a Community resource"
                    ),
                )
                .transient(),
            );
            None
        }
    }
}

/// An aggregation length shorter than the shortest prefix of a pool's address entry
/// would announce addresses outside the pool.
fn check_aggregation_against_pools(ctx: &mut Ctx, infos: &[BgpInfo], pools: &[PoolInfo]) {
    let pools = by_name(pools);
    for info in infos.iter().filter(|i| i.lengths_ok) {
        for pool in info.ad.pools.iter().filter_map(|p| pools.get(p.as_str())) {
            for e in &pool.entries {
                let Some(lowest) = e.nets.iter().map(|n| n.prefix_len()).min() else {
                    continue;
                };
                let (len, field) = if e.v4 {
                    (info.ad.aggregation_length, "spec.aggregationLength")
                } else {
                    (info.ad.aggregation_length_v6, "spec.aggregationLengthV6")
                };
                if len < lowest {
                    ctx.push(info.obj.problem(
                        field,
                        format!(
                            "{len} is shorter than the /{lowest} prefix of {:?} ({} spec.addresses[{}]): the aggregated route would cover addresses outside the pool; use at least {lowest}",
                            e.text,
                            pool.obj.id(),
                            e.index
                        ),
                    ));
                }
            }
        }
    }
}

/// Two advertisements of a pool must not set different LOCAL_PREFs on the same route:
/// same aggregation length (either family), a peer in common (or either for every peer),
/// and a node in common.
fn check_local_pref(ctx: &mut Ctx, infos: &[BgpInfo], snapshot: &Snapshot) {
    for (i, b) in infos.iter().enumerate() {
        for a in infos.iter().take(i) {
            let (pa, pb) = (a.ad.local_pref.unwrap_or(0), b.ad.local_pref.unwrap_or(0));
            if pa == pb {
                continue;
            }
            let Some(pool) = a.ad.pools.intersection(&b.ad.pools).next() else {
                continue;
            };
            let same_length = a.ad.aggregation_length == b.ad.aggregation_length
                || a.ad.aggregation_length_v6 == b.ad.aggregation_length_v6;
            let same_peers = a.ad.peers.is_empty()
                || b.ad.peers.is_empty()
                || a.ad.peers.iter().any(|p| b.ad.peers.contains(p));
            if same_length
                && same_peers
                && nodes_overlap(&a.ad.node_selectors, &b.ad.node_selectors, snapshot)
            {
                ctx.push(b.obj.problem(
                    "spec.localPref",
                    format!(
                        "localPref {pb} conflicts with localPref {pa} of {}: both announce IPAddressPool/{pool} with the same aggregation length to the same peers from the same nodes; use one localPref, or tell them apart by aggregation length, peers or nodeSelectors",
                        a.obj.id()
                    ),
                ));
            }
        }
    }
}

/// Whether some node is selected by both lists (an empty list selects every node). With
/// no Node in the snapshot (checking a manifest directory) the question is answered on
/// the selectors alone: either selects every node, or both hold an equal selector.
fn nodes_overlap(a: &[Selector], b: &[Selector], snapshot: &Snapshot) -> bool {
    let all = |s: &[Selector]| s.is_empty() || s.iter().any(Selector::is_everything);
    if snapshot.nodes.is_empty() {
        return all(a) || all(b) || a.iter().any(|x| b.contains(x));
    }
    let selects = |s: &[Selector], labels: Option<&BTreeMap<String, String>>| {
        s.is_empty() || s.iter().any(|sel| sel.matches_opt(labels))
    };
    snapshot.nodes.iter().any(|node| {
        let labels = node.metadata.labels.as_ref();
        selects(a, labels) && selects(b, labels)
    })
}

/// BFD echo mode does not work with IPv6: a peer whose profile has it must not be sent
/// a pool holding IPv6 addresses.
fn check_bfd_echo(
    ctx: &mut Ctx,
    infos: &[BgpInfo],
    pools: &[PoolInfo],
    peers: &BTreeMap<String, Peer>,
    bfd_profiles: &BTreeMap<String, BfdProfile>,
) {
    let pools = by_name(pools);
    for info in infos {
        let v6_pool = info.ad.pools.iter().find(|p| {
            pools
                .get(p.as_str())
                .is_some_and(|p| p.entries.iter().any(|e| !e.v4))
        });
        let Some(v6_pool) = v6_pool else {
            continue;
        };
        let reached: Vec<&Peer> = if info.ad.peers.is_empty() {
            peers.values().collect()
        } else {
            info.ad.peers.iter().filter_map(|n| peers.get(n)).collect()
        };
        for peer in reached {
            let Some(profile) = peer.bfd_profile.as_ref().and_then(|b| bfd_profiles.get(b)) else {
                continue;
            };
            if profile.echo_mode {
                ctx.push(Problem::new(
                    "BGPPeer",
                    &peer.name,
                    "spec.bfdProfile",
                    format!(
                        "BFDProfile {:?} has echoMode on, but {} announces IPv6 IPAddressPool/{v6_pool} to this peer: BFD echo works only with IPv4; turn echoMode off or keep IPv6 pools away from this peer",
                        profile.name,
                        info.obj.id()
                    ),
                ));
            }
        }
    }
}
