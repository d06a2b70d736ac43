//! What a valid snapshot becomes: the parsed [`Config`].

mod common;

use common::snapshot;
use ferrolb_model::config::PreferredNodes;
use ferrolb_model::crd::DynamicAsn;
use ferrolb_model::{
    BfdProfile, BgpCommunity, Config, Password, PeerAsn, Pool, PoolAllocation, Selector, validate,
};
use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

fn config(yaml: &str) -> Config {
    match validate(&snapshot(yaml)) {
        Ok(c) => c,
        Err(problems) => panic!(
            "unexpected problems:\n{}",
            problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn sel(pairs: &[(&str, &str)]) -> Selector {
    Selector::parse(&LabelSelector {
        match_labels: Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        match_expressions: None,
    })
    .unwrap()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn empty_snapshot_is_an_empty_config() {
    assert_eq!(config(""), Config::default());
}

#[test]
fn pools() {
    let c = config(
        "
kind: IPAddressPool
metadata: {name: b, labels: {zone: x}}
spec:
  addresses: [198.51.100.7/24, 192.0.2.10 - 192.0.2.20, '2001:db8::/120']
  avoidBuggyIPs: true
  serviceAllocation:
    priority: 3
    namespaces: [prod, dev]
    namespaceSelectors: [{matchLabels: {team: a}}]
    serviceSelectors: [{matchLabels: {app: web}}]
---
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: [203.0.113.0/24], autoAssign: false}
",
    );
    assert_eq!(c.pools.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(
        c.pools["b"],
        Pool {
            name: "b".into(),
            labels: BTreeMap::from([("zone".into(), "x".into())]),
            cidrs: nets(&[
                "198.51.100.0/24",
                "192.0.2.10/31",
                "192.0.2.12/30",
                "192.0.2.16/30",
                "192.0.2.20/32",
                "2001:db8::/120",
            ]),
            auto_assign: true,
            avoid_buggy_ips: true,
            allocation: Some(PoolAllocation {
                priority: 3,
                namespaces: names(&["dev", "prod"]),
                namespace_selectors: vec![sel(&[("team", "a")])],
                service_selectors: vec![sel(&[("app", "web")])],
            }),
        }
    );
    assert!(!c.pools["a"].auto_assign);
    assert_eq!(c.pools["a"].allocation, None);
}

#[test]
fn advertisements_select_pools() {
    let c = config(
        "
kind: IPAddressPool
metadata: {name: a, labels: {zone: x}}
spec: {addresses: [192.0.2.0/24]}
---
kind: IPAddressPool
metadata: {name: b}
spec: {addresses: [198.51.100.0/24]}
---
kind: IPAddressPool
metadata: {name: c, labels: {zone: 'y'}}
spec: {addresses: ['2001:db8::/64']}
---
kind: L2Advertisement
metadata: {name: all}
spec: {}
---
kind: L2Advertisement
metadata: {name: some}
spec:
  ipAddressPools: [b, missing]
  ipAddressPoolSelectors: [{matchLabels: {zone: x}}]
  nodeSelectors: [{matchLabels: {rack: '1'}}]
  interfaces: [eth0]
  serviceSelectors: [{matchLabels: {app: web}}]
  preferredNodeSelectors: [{weight: 40, preference: {matchLabels: {rack: '1'}}}]
---
kind: L2Advertisement
metadata: {name: none}
spec: {ipAddressPools: [missing]}
---
kind: Community
metadata: {name: c}
spec: {communities: [{name: no-export, value: '65535:65281'}]}
---
kind: BGPAdvertisement
metadata: {name: bgp}
spec:
  ipAddressPoolSelectors: [{matchExpressions: [{key: zone, operator: Exists}]}]
  aggregationLength: 24
  aggregationLengthV6: 64
  localPref: 50
  communities: [no-export, '1:2', 'large:1:2:3', '65535:65281']
  peers: [r1]
---
kind: BGPAdvertisement
metadata: {name: defaults}
spec: {localPref: 0}
",
    );
    let l2 = &c.l2_advertisements;
    assert_eq!(l2["all"].pools, names(&["a", "b", "c"]));
    assert_eq!(l2["none"].pools, names(&[]));
    let some = &l2["some"];
    assert_eq!(some.pools, names(&["a", "b"]));
    assert_eq!(some.node_selectors, [sel(&[("rack", "1")])]);
    assert_eq!(some.interfaces, ["eth0"]);
    assert_eq!(some.service_selectors, [sel(&[("app", "web")])]);
    assert_eq!(
        some.preferred_node_selectors,
        [PreferredNodes {
            weight: 40,
            selector: sel(&[("rack", "1")])
        }]
    );

    let bgp = &c.bgp_advertisements["bgp"];
    assert_eq!(bgp.pools, names(&["a", "c"]));
    assert_eq!(
        (bgp.aggregation_length, bgp.aggregation_length_v6),
        (24, 64)
    );
    assert_eq!(bgp.local_pref, Some(50));
    assert_eq!(
        bgp.communities,
        BTreeSet::from([
            BgpCommunity::Standard(65535, 65281),
            BgpCommunity::Standard(1, 2),
            BgpCommunity::Large(1, 2, 3),
        ])
    );
    assert_eq!(bgp.peers, ["r1"]);
    let d = &c.bgp_advertisements["defaults"];
    assert_eq!((d.aggregation_length, d.aggregation_length_v6), (32, 128));
    assert_eq!(d.local_pref, None);
    assert_eq!(d.pools, names(&["a", "b", "c"]));
    assert_eq!(
        c.communities,
        BTreeMap::from([("no-export".into(), BgpCommunity::Standard(65535, 65281))])
    );
}

#[test]
fn peers_and_bfd_profiles() {
    let c = config(
        "
kind: BFDProfile
metadata: {name: fast}
spec: {receiveInterval: 100, echoMode: true}
---
apiVersion: v1
kind: Secret
metadata: {name: md5, namespace: metallb-system}
type: kubernetes.io/basic-auth
data: {password: c2VjcmV0}
---
kind: BGPPeer
metadata: {name: full, namespace: metallb-system}
spec:
  myASN: 64500
  peerASN: 64501
  localASN: 64999
  peerAddress: '2001:db8::1'
  sourceAddress: '2001:db8::2'
  peerPort: 1179
  holdTime: 1m30s
  keepaliveTime: 20s
  connectTime: 5s
  routerID: 10.0.0.1
  nodeSelectors: [{matchLabels: {a: b}}]
  passwordSecret: {name: md5}
  bfdProfile: fast
  ebgpMultiHop: true
  enableGracefulRestart: true
  vrf: red
  disableMP: true
  dualStackAddressFamily: true
---
kind: BGPPeer
metadata: {name: hold-only}
spec: {myASN: 1, dynamicASN: internal, interface: eth1, holdTime: 90s, password: pw}
---
kind: BGPPeer
metadata: {name: keepalive-only}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1, keepaliveTime: 10s}
---
kind: BGPPeer
metadata: {name: neither}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.2}
",
    );
    let full = &c.peers["full"];
    assert_eq!(full.my_asn, 64500);
    assert_eq!(full.peer_asn, PeerAsn::Fixed(64501));
    assert_eq!(full.local_asn, Some(64999));
    assert_eq!(full.address, Some("2001:db8::1".parse().unwrap()));
    assert_eq!(full.interface, None);
    assert_eq!(full.source_address, Some("2001:db8::2".parse().unwrap()));
    assert_eq!(full.port, 1179);
    assert_eq!(full.hold_time, Some(Duration::from_secs(90)));
    assert_eq!(full.keepalive_time, Some(Duration::from_secs(20)));
    assert_eq!(full.connect_time, Some(Duration::from_secs(5)));
    assert_eq!(full.router_id, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(full.node_selectors, [sel(&[("a", "b")])]);
    assert_eq!(full.password, Some(Password("secret".into())));
    assert_eq!(full.bfd_profile.as_deref(), Some("fast"));
    assert!(full.graceful_restart && full.ebgp_multihop && full.disable_mp && full.dual_stack);
    assert_eq!(full.vrf.as_deref(), Some("red"));
    assert!(
        !format!("{full:?}").contains("secret"),
        "Debug hides the password"
    );

    let hold = &c.peers["hold-only"];
    assert_eq!(hold.peer_asn, PeerAsn::Dynamic(DynamicAsn::Internal));
    assert_eq!(hold.address, None);
    assert_eq!(hold.interface.as_deref(), Some("eth1"));
    assert_eq!(hold.port, 179);
    assert_eq!(hold.hold_time, Some(Duration::from_secs(90)));
    assert_eq!(hold.keepalive_time, Some(Duration::from_secs(30)));
    assert_eq!(hold.password, Some(Password("pw".into())));
    assert_eq!(hold.vrf, None);

    let ka = &c.peers["keepalive-only"];
    assert_eq!(ka.hold_time, Some(Duration::from_secs(30)));
    assert_eq!(ka.keepalive_time, Some(Duration::from_secs(10)));

    let neither = &c.peers["neither"];
    assert_eq!((neither.hold_time, neither.keepalive_time), (None, None));
    assert_eq!(neither.connect_time, None);
    assert_eq!(neither.password, None);
    assert!(neither.node_selectors.is_empty());

    assert_eq!(
        c.bfd_profiles["fast"],
        BfdProfile {
            name: "fast".into(),
            receive_interval: 100,
            transmit_interval: 300,
            detect_multiplier: 3,
            echo_interval: 50,
            echo_mode: true,
            passive_mode: false,
            minimum_ttl: 254,
        }
    );
}

#[test]
fn communities_parse_and_print() {
    for (text, value) in [
        ("0:0", BgpCommunity::Standard(0, 0)),
        ("65535:65281", BgpCommunity::Standard(65535, 65281)),
        ("large:4294967295:0:7", BgpCommunity::Large(u32::MAX, 0, 7)),
    ] {
        assert_eq!(text.parse::<BgpCommunity>(), Ok(value));
        assert_eq!(value.to_string(), text);
    }
    for bad in [
        "65536:0",
        "1:+1",
        ":1",
        "1:",
        "large:1:2",
        "large:1:2:3:4",
        "big:1:2:3",
        "1:2:3",
    ] {
        assert!(bad.parse::<BgpCommunity>().is_err(), "{bad}");
    }
}
