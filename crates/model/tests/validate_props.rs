//! Properties: validation never panics, whatever the input, and gives the same answer
//! twice; range summarisation covers exactly the range with the fewest CIDRs.

use ferrolb_model::crd::{
    BFDProfile, BFDProfileSpec, BGPAdvertisement, BGPAdvertisementSpec, BGPPeer, BGPPeerSpec,
    Community, CommunityAlias, CommunitySpec, DynamicAsn, IPAddressPool, IPAddressPoolSpec,
    L2Advertisement, L2AdvertisementSpec, PreferredNodeSelector, SecretReference,
    ServiceAllocation,
};
use ferrolb_model::validate::{parse_go_duration, parse_pool_address, summarize_range};
use ferrolb_model::{BgpCommunity, Snapshot, validate};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn meta(name: Option<String>) -> ObjectMeta {
    ObjectMeta {
        name,
        namespace: Some("metallb-system".into()),
        ..ObjectMeta::default()
    }
}

/// A few names, so that references and duplicates happen.
fn name() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        8 => prop::sample::select(vec!["a", "b", "c", "d"]).prop_map(|s| Some(s.to_string())),
        1 => Just(None),
        1 => Just(Some(String::new())),
    ]
}

fn small_v4() -> impl Strategy<Value = Ipv4Addr> {
    // Few distinct addresses, so that overlaps are common.
    (
        prop::sample::select(vec![0u8, 10, 192, 255]),
        any::<u8>(),
        0u8..4,
    )
        .prop_map(|(a, c, d)| Ipv4Addr::new(a, 0, c % 4, d.wrapping_mul(64)))
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        small_v4().prop_map(IpAddr::V4),
        any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
        (0u128..4).prop_map(|n| IpAddr::V6(Ipv6Addr::from((0x2001_0db8u128 << 96) | (n << 64)))),
    ]
}

/// Address entries: CIDRs, ranges, bare addresses and arbitrary text.
fn address() -> impl Strategy<Value = String> {
    prop_oneof![
        (any_ip(), 0u8..=130).prop_map(|(ip, len)| format!("{ip}/{len}")),
        (any_ip(), any_ip()).prop_map(|(a, b)| format!("{a}-{b}")),
        (any_ip(), any_ip()).prop_map(|(a, b)| format!(" {a} - {b} ")),
        any_ip().prop_map(|ip| ip.to_string()),
        ".{0,40}",
        "[0-9./:-]{0,40}",
    ]
}

fn duration() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        "-?[0-9]{0,25}(\\.[0-9]{0,25})?(ns|us|µs|ms|s|m|h|x|)".prop_map(Some),
        "([0-9]{1,3}(h|m|s|ms)){1,4}".prop_map(Some),
        ".{0,12}".prop_map(Some),
    ]
}

fn selector() -> impl Strategy<Value = LabelSelector> {
    let key = prop_oneof!["[a-z]{1,3}", ".{0,8}", Just("a".to_string())];
    let op = prop::sample::select(vec!["In", "NotIn", "Exists", "DoesNotExist", "Near", ""]);
    let expr = (key.clone(), op, prop::collection::vec("[a-c]{0,2}", 0..3)).prop_map(
        |(key, op, values)| LabelSelectorRequirement {
            key,
            operator: op.to_string(),
            values: Some(values),
        },
    );
    (
        prop::option::of(prop::collection::btree_map(key, "[a-c]{0,2}", 0..3)),
        prop::option::of(prop::collection::vec(expr, 0..3)),
    )
        .prop_map(|(match_labels, match_expressions)| LabelSelector {
            match_labels,
            match_expressions,
        })
}

fn selectors() -> impl Strategy<Value = Vec<LabelSelector>> {
    prop::collection::vec(selector(), 0..3)
}

fn names() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop::sample::select(vec!["a", "b", "x"]).prop_map(String::from),
        0..3,
    )
}

fn pool() -> impl Strategy<Value = IPAddressPool> {
    (
        name(),
        prop::collection::vec(address(), 0..4),
        any::<bool>(),
        prop::option::of((
            any::<i32>(),
            prop::collection::vec("[a-c]", 0..3),
            selectors(),
            selectors(),
        )),
    )
        .prop_map(|(name, addresses, avoid, sa)| IPAddressPool {
            metadata: meta(name),
            spec: IPAddressPoolSpec {
                addresses,
                auto_assign: true,
                avoid_buggy_ips: avoid,
                service_allocation: sa.map(|(priority, namespaces, ns, svc)| ServiceAllocation {
                    priority,
                    namespaces,
                    namespace_selectors: ns,
                    service_selectors: svc,
                }),
            },
            status: None,
        })
}

fn peer() -> impl Strategy<Value = BGPPeer> {
    (
        (
            name(),
            prop::sample::select(vec![0u32, 1, 2, u32::MAX]),
            prop::sample::select(vec![0u32, 1, 2, u32::MAX]),
            prop::option::of(prop::sample::select(vec![
                DynamicAsn::Internal,
                DynamicAsn::External,
            ])),
            prop::option::of(prop::sample::select(vec![0u32, 7])),
            prop_oneof![
                Just(String::new()),
                any_ip().prop_map(|i| i.to_string()),
                ".{0,10}"
            ],
            prop_oneof![Just(String::new()), Just("eth0".to_string())],
            prop_oneof![Just(String::new()), any_ip().prop_map(|i| i.to_string())],
            any::<u16>(),
        ),
        (
            duration(),
            duration(),
            duration(),
            prop_oneof![Just(String::new()), any_ip().prop_map(|i| i.to_string())],
            selectors(),
            prop_oneof![Just(String::new()), Just("pw".to_string())],
            prop::option::of(
                prop::sample::select(vec!["s", ""]).prop_map(|n| SecretReference {
                    name: n.into(),
                    namespace: String::new(),
                }),
            ),
            prop::sample::select(vec!["", "a", "zz"]),
            any::<(bool, bool, bool)>(),
        ),
    )
        .prop_map(
            |(
                (name, my_asn, peer_asn, dynamic_asn, local_asn, addr, iface, src, port),
                (hold, ka, connect, router_id, node_selectors, password, secret, bfd, flags),
            )| BGPPeer {
                metadata: meta(name),
                spec: BGPPeerSpec {
                    my_asn,
                    peer_asn,
                    dynamic_asn,
                    local_asn,
                    peer_address: addr,
                    interface: iface,
                    source_address: src,
                    peer_port: port,
                    hold_time: hold,
                    keepalive_time: ka,
                    connect_time: connect,
                    router_id,
                    node_selectors,
                    password,
                    password_secret: secret,
                    bfd_profile: bfd.to_string(),
                    enable_graceful_restart: flags.0,
                    ebgp_multi_hop: flags.1,
                    vrf: String::new(),
                    disable_mp: false,
                    dual_stack_address_family: flags.2,
                },
            },
        )
}

fn community_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (any::<u32>(), any::<u32>()).prop_map(|(a, b)| format!("{}:{}", a % 70000, b % 70000)),
        (any::<u64>(), any::<u32>(), any::<u32>())
            .prop_map(|(a, b, c)| format!("large:{}:{b}:{c}", a % 5_000_000_000)),
        prop::sample::select(vec!["a", "b", "x"]).prop_map(String::from),
        ".{0,16}",
    ]
}

fn bgp_advertisement() -> impl Strategy<Value = BGPAdvertisement> {
    (
        name(),
        prop::option::of(-2i32..140),
        prop::option::of(-2i32..140),
        prop::option::of(prop::sample::select(vec![0u32, 100, 200])),
        prop::collection::vec(community_text(), 0..3),
        names(),
        selectors(),
        selectors(),
        names(),
        selectors(),
    )
        .prop_map(
            |(name, len, len6, local_pref, communities, pools, pool_sels, nodes, peers, svc)| {
                BGPAdvertisement {
                    metadata: meta(name),
                    spec: BGPAdvertisementSpec {
                        aggregation_length: len,
                        aggregation_length_v6: len6,
                        local_pref,
                        communities,
                        ip_address_pools: pools,
                        ip_address_pool_selectors: pool_sels,
                        node_selectors: nodes,
                        peers,
                        service_selectors: svc,
                    },
                }
            },
        )
}

fn l2_advertisement() -> impl Strategy<Value = L2Advertisement> {
    (
        name(),
        names(),
        selectors(),
        selectors(),
        names(),
        selectors(),
        prop::collection::vec((any::<i32>(), selector()), 0..3),
    )
        .prop_map(
            |(name, pools, pool_sels, nodes, interfaces, svc, pref)| L2Advertisement {
                metadata: meta(name),
                spec: L2AdvertisementSpec {
                    ip_address_pools: pools,
                    ip_address_pool_selectors: pool_sels,
                    node_selectors: nodes,
                    interfaces,
                    service_selectors: svc,
                    preferred_node_selectors: pref
                        .into_iter()
                        .map(|(weight, preference)| PreferredNodeSelector { weight, preference })
                        .collect(),
                },
            },
        )
}

fn bfd_profile() -> impl Strategy<Value = BFDProfile> {
    let v = || prop::option::of(prop_oneof![any::<u32>(), 0u32..300]);
    (
        name(),
        v(),
        v(),
        v(),
        v(),
        v(),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(name, rx, tx, mult, echo, ttl, echo_mode)| BFDProfile {
            metadata: meta(name),
            spec: BFDProfileSpec {
                receive_interval: rx,
                transmit_interval: tx,
                detect_multiplier: mult,
                echo_interval: echo,
                echo_mode,
                passive_mode: None,
                minimum_ttl: ttl,
            },
        })
}

fn community() -> impl Strategy<Value = Community> {
    (
        name(),
        prop::collection::vec(
            (prop::sample::select(vec!["a", "b", ""]), community_text()),
            0..3,
        ),
    )
        .prop_map(|(name, aliases)| Community {
            metadata: meta(name),
            spec: CommunitySpec {
                communities: aliases
                    .into_iter()
                    .map(|(name, value)| CommunityAlias {
                        name: name.into(),
                        value,
                    })
                    .collect(),
            },
        })
}

fn node() -> impl Strategy<Value = Node> {
    (
        any_ip(),
        prop::sample::select(vec!["InternalIP", "ExternalIP", "Hostname"]),
    )
        .prop_map(|(ip, kind)| Node {
            metadata: ObjectMeta {
                name: Some("n".into()),
                ..ObjectMeta::default()
            },
            status: Some(NodeStatus {
                addresses: Some(vec![NodeAddress {
                    address: ip.to_string(),
                    type_: kind.into(),
                }]),
                ..NodeStatus::default()
            }),
            spec: None,
        })
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    (
        prop::collection::vec(pool(), 0..4),
        prop::collection::vec(l2_advertisement(), 0..3),
        prop::collection::vec(bgp_advertisement(), 0..3),
        prop::collection::vec(peer(), 0..3),
        prop::collection::vec(community(), 0..2),
        prop::collection::vec(bfd_profile(), 0..2),
        prop::collection::vec(node(), 0..2),
    )
        .prop_map(
            |(
                pools,
                l2_advertisements,
                bgp_advertisements,
                bgp_peers,
                communities,
                bfd_profiles,
                nodes,
            )| {
                Snapshot {
                    pools,
                    l2_advertisements,
                    bgp_advertisements,
                    bgp_peers,
                    communities,
                    bfd_profiles,
                    nodes,
                    ..Snapshot::default()
                }
            },
        )
}

/// The numeric bounds of a CIDR.
fn bounds(net: &IpNet) -> (u128, u128) {
    match net {
        IpNet::V4(n) => (
            u32::from(n.network()).into(),
            u32::from(n.broadcast()).into(),
        ),
        IpNet::V6(n) => (n.network().into(), n.broadcast().into()),
    }
}

/// Checks that `nets` cover exactly `start..=end`, ascending, contiguous, each aligned,
/// and that no two neighbours could merge into one CIDR (so the list is the shortest).
fn check_cover(nets: &[IpNet], start: u128, end: u128, bits: u8) -> Result<(), TestCaseError> {
    prop_assert!(!nets.is_empty());
    prop_assert!(nets.len() <= 2 * usize::from(bits));
    let mut next = start;
    let mut count: u128 = 0;
    for (i, n) in nets.iter().enumerate() {
        let (lo, hi) = bounds(n);
        prop_assert_eq!(lo, next, "contiguous at {}", n);
        count = count.saturating_add(hi - lo).saturating_add(1);
        if i + 1 < nets.len() {
            next = hi + 1;
        } else {
            prop_assert_eq!(hi, end);
        }
        if let Some(m) = nets.get(i + 1) {
            // Two equal neighbours whose union is aligned would be one CIDR.
            let mergeable = n.prefix_len() == m.prefix_len()
                && n.prefix_len() > 0
                && n.supernet()
                    .is_some_and(|s| s.contains(m) && s.network() == n.network());
            prop_assert!(!mergeable, "{} and {} merge", n, m);
        }
    }
    let want = (end - start).saturating_add(1);
    prop_assert_eq!(count, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn validate_never_panics(s in snapshot()) {
        let first = validate(&s);
        let again = validate(&s);
        prop_assert_eq!(&first, &again);
        if let Err(problems) = &first {
            prop_assert!(!problems.is_empty());
            for p in problems {
                prop_assert!(p.object.contains('/'), "{}", p);
                prop_assert!(!p.message.is_empty(), "{}", p);
            }
        }
    }

    #[test]
    fn address_parsing_never_panics(text in ".{0,60}") {
        let _ = parse_pool_address(&text);
    }

    #[test]
    fn duration_parsing_never_panics(text in "[-+]?[0-9.]{0,30}[a-zµ]{0,3}([0-9.]{0,5}[a-z]{0,2}){0,3}") {
        let _ = parse_go_duration(&text);
    }

    #[test]
    fn community_parsing_round_trips(text in community_text()) {
        if let Ok(c) = text.parse::<BgpCommunity>() {
            prop_assert_eq!(c.to_string().parse::<BgpCommunity>(), Ok(c));
        }
    }

    #[test]
    fn v4_ranges_are_covered_exactly(a in any::<u32>(), b in any::<u32>()) {
        let (start, end) = (a.min(b), a.max(b));
        let nets = summarize_range(Ipv4Addr::from(start).into(), Ipv4Addr::from(end).into()).unwrap();
        check_cover(&nets, start.into(), end.into(), 32)?;
        prop_assert_eq!(
            parse_pool_address(&format!("{} - {}", Ipv4Addr::from(start), Ipv4Addr::from(end))),
            Ok(nets)
        );
    }

    #[test]
    fn v4_small_ranges_are_covered_exactly(a in any::<u32>(), len in 0u32..600) {
        let start = a.min(u32::MAX - len);
        let end = start + len;
        let nets = summarize_range(Ipv4Addr::from(start).into(), Ipv4Addr::from(end).into()).unwrap();
        check_cover(&nets, start.into(), end.into(), 32)?;
    }

    #[test]
    fn v6_ranges_are_covered_exactly(a in any::<u128>(), b in any::<u128>(), len in 0u128..1000) {
        for (start, end) in [(a.min(b), a.max(b)), (a.min(u128::MAX - len), a.min(u128::MAX - len) + len)] {
            let nets = summarize_range(Ipv6Addr::from(start).into(), Ipv6Addr::from(end).into()).unwrap();
            check_cover(&nets, start, end, 128)?;
        }
    }

    #[test]
    fn reversed_and_mixed_ranges_are_refused(a in any::<u32>(), b in any::<u128>()) {
        let v4: IpAddr = Ipv4Addr::from(a).into();
        let v6: IpAddr = Ipv6Addr::from(b).into();
        prop_assert!(summarize_range(v4, v6).is_none());
        if a > 0 {
            prop_assert!(summarize_range(v4, Ipv4Addr::from(a - 1).into()).is_none());
        }
    }
}

#[test]
fn whole_spaces() {
    let v4 = summarize_range(Ipv4Addr::UNSPECIFIED.into(), Ipv4Addr::BROADCAST.into()).unwrap();
    assert_eq!(v4, ["0.0.0.0/0".parse::<IpNet>().unwrap()]);
    let v6 = summarize_range(
        Ipv6Addr::UNSPECIFIED.into(),
        Ipv6Addr::from(u128::MAX).into(),
    )
    .unwrap();
    assert_eq!(v6, ["::/0".parse::<IpNet>().unwrap()]);
    let worst = summarize_range(
        Ipv6Addr::from(1u128).into(),
        Ipv6Addr::from(u128::MAX - 1).into(),
    )
    .unwrap();
    assert_eq!(worst.len(), 254);
}
