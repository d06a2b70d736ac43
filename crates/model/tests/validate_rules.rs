//! One case per validation rule: an input that breaks it, with the problems expected
//! (object and field exactly, and a key part of the message), and valid neighbours that
//! must produce no problem at all.

mod common;

use common::problems;

/// A case: YAML documents and the problems expected, each as (`Kind/name: field`, a
/// fragment of the message). A `transient ` prefix requires a transient problem. Every
/// problem found must be expected: the count is checked too.
struct Case {
    name: &'static str,
    yaml: &'static str,
    want: &'static [(&'static str, &'static str)],
}

const fn case(
    name: &'static str,
    yaml: &'static str,
    want: &'static [(&'static str, &'static str)],
) -> Case {
    Case { name, yaml, want }
}

const fn ok(name: &'static str, yaml: &'static str) -> Case {
    Case {
        name,
        yaml,
        want: &[],
    }
}

const CASES: &[Case] = &[
    // ---------------------------------------------------------------- IPAddressPool
    ok(
        "pool: CIDRs, ranges (spaces trimmed), IPv6 and host bits are fine",
        "
kind: IPAddressPool
metadata: {name: a}
spec:
  addresses: [192.0.2.0/25, 192.0.2.128 - 192.0.2.200, '2001:db8::/120', 198.51.100.7/24]
",
    ),
    case(
        "pool: missing name",
        "
kind: IPAddressPool
metadata: {}
spec: {addresses: [192.0.2.0/24]}
",
        &[("IPAddressPool/(unnamed #1): metadata.name", "missing name")],
    ),
    case(
        "pool: no addresses",
        "
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: []}
",
        &[("IPAddressPool/a: spec.addresses", "the pool has no addresses")],
    ),
    case(
        "pool: bad CIDRs",
        "
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: [192.0.2.0/33, 192.0.2/24, '2001:db8::/129', garbage, 10.0.0.0/x]}
",
        &[
            ("IPAddressPool/a: spec.addresses[0]", "prefix length \"33\" is not a number from 0 to 32"),
            ("IPAddressPool/a: spec.addresses[1]", "\"192.0.2\" is not an IP address"),
            ("IPAddressPool/a: spec.addresses[2]", "from 0 to 128"),
            ("IPAddressPool/a: spec.addresses[3]", "neither a CIDR (192.0.2.0/24) nor a range"),
            ("IPAddressPool/a: spec.addresses[4]", "prefix length \"x\""),
        ],
    ),
    case(
        "pool: bad ranges",
        "
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: [192.0.2.1-foo, 192.0.2.0/28-192.0.2.20, 192.0.2.1-]}
",
        &[
            ("IPAddressPool/a: spec.addresses[0]", "its end \"foo\" is not an IP address"),
            ("IPAddressPool/a: spec.addresses[1]", "without a prefix length"),
            ("IPAddressPool/a: spec.addresses[2]", "its end \"\" is not an IP address"),
        ],
    ),
    case(
        "pool: reversed range",
        "
kind: IPAddressPool
metadata: {name: prod}
spec: {addresses: [192.0.2.0/28, 192.0.2.100-192.0.2.20]}
",
        &[(
            "IPAddressPool/prod: spec.addresses[1]",
            "\"192.0.2.100-192.0.2.20\" is a reversed range: start 192.0.2.100 is after end 192.0.2.20",
        )],
    ),
    case(
        "pool: mixed-family range",
        "
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: ['192.0.2.1-2001:db8::1']}
",
        &[("IPAddressPool/a: spec.addresses[0]", "mixes IPv4 and IPv6")],
    ),
    case(
        "pool: bare IPs",
        "
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: [192.0.2.1, '2001:db8::5']}
",
        &[
            ("IPAddressPool/a: spec.addresses[0]", "use 192.0.2.1/32 for a single address"),
            ("IPAddressPool/a: spec.addresses[1]", "use 2001:db8::5/128 for a single address"),
        ],
    ),
    case(
        "pool: overlap across pools (range against CIDR, after summarisation)",
        "
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: [192.0.2.0/26]}
---
kind: IPAddressPool
metadata: {name: b}
spec: {addresses: [198.51.100.0/24, 192.0.2.60-192.0.2.70]}
",
        &[(
            "IPAddressPool/b: spec.addresses[1]",
            "overlaps \"192.0.2.0/26\" (IPAddressPool/a spec.addresses[0])",
        )],
    ),
    case(
        "pool: overlap within a pool",
        "
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: ['2001:db8::/64', '2001:db8::ff-2001:db8::1ff', 192.0.2.0/24, 192.0.2.0/24]}
",
        &[
            ("IPAddressPool/a: spec.addresses[1]", "(spec.addresses[0] of the same pool)"),
            ("IPAddressPool/a: spec.addresses[3]", "(spec.addresses[2] of the same pool)"),
        ],
    ),
    ok(
        "pool: adjacent entries do not overlap",
        "
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: [192.0.2.0-192.0.2.127, 192.0.2.128/25]}
---
kind: IPAddressPool
metadata: {name: b}
spec: {addresses: [192.0.3.0/24, '::ffff:0:0/96']}
",
    ),
    case(
        "pool: duplicate names",
        "
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: [192.0.2.0/24]}
---
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: [198.51.100.0/24]}
",
        &[("IPAddressPool/a: metadata.name", "IPAddressPool #2 has the same name as #1")],
    ),
    case(
        "pool: contains a node's InternalIP / ExternalIP",
        "
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: [192.0.2.0/24, '2001:db8::1-2001:db8::9']}
---
apiVersion: v1
kind: Node
metadata: {name: n1}
status:
  addresses:
  - {type: InternalIP, address: 192.0.2.10}
  - {type: ExternalIP, address: '2001:db8::5'}
  - {type: Hostname, address: 192.0.2.11}
---
apiVersion: v1
kind: Node
metadata: {name: n2}
status:
  addresses:
  - {type: InternalIP, address: 198.51.100.10}
",
        &[
            ("IPAddressPool/a: spec.addresses[0]", "contains 192.0.2.10, the InternalIP of Node/n1"),
            ("IPAddressPool/a: spec.addresses[1]", "contains 2001:db8::5, the ExternalIP of Node/n1"),
        ],
    ),
    case(
        "pool: serviceAllocation duplicates and bad selectors",
        "
kind: IPAddressPool
metadata: {name: a}
spec:
  addresses: [192.0.2.0/24]
  serviceAllocation:
    priority: 5
    namespaces: [dev, prod, dev]
    namespaceSelectors:
    - matchLabels: {team: a, env: x}
    - matchLabels: {env: x, team: a}
    - matchExpressions: [{key: k, operator: Near, values: [v]}]
    serviceSelectors:
    - matchExpressions: [{key: tier, operator: In, values: [b, a]}]
    - matchExpressions: [{key: tier, operator: In, values: [a, b]}]
    - matchExpressions:
      - {key: k, operator: Exists}
      - {key: k, operator: Exists}
",
        &[
            ("IPAddressPool/a: spec.serviceAllocation.namespaces[2]", "namespace \"dev\" is listed twice"),
            ("IPAddressPool/a: spec.serviceAllocation.namespaceSelectors[1]", "listed twice (also spec.serviceAllocation.namespaceSelectors[0])"),
            ("IPAddressPool/a: spec.serviceAllocation.namespaceSelectors[2]", "unknown operator \"Near\""),
            ("IPAddressPool/a: spec.serviceAllocation.serviceSelectors[1]", "\"tier in (a,b)\" is listed twice"),
            ("IPAddressPool/a: spec.serviceAllocation.serviceSelectors[2].matchExpressions[1]", "repeats matchExpressions[0]"),
        ],
    ),
    ok(
        "pool: serviceAllocation with distinct entries",
        "
kind: IPAddressPool
metadata: {name: a}
spec:
  addresses: [192.0.2.0/24]
  autoAssign: false
  serviceAllocation:
    priority: 0
    namespaces: [dev, prod]
    namespaceSelectors: [{matchLabels: {team: a}}, {matchLabels: {team: b}}]
    serviceSelectors: [{matchExpressions: [{key: k, operator: DoesNotExist}]}]
",
    ),
    // ---------------------------------------------------------------- L2Advertisement
    ok(
        "l2: every field, an unknown pool name selects nothing",
        "
kind: IPAddressPool
metadata: {name: a, labels: {zone: x}}
spec: {addresses: [192.0.2.0/24]}
---
kind: L2Advertisement
metadata: {name: l2}
spec:
  ipAddressPools: [a, does-not-exist]
  ipAddressPoolSelectors: [{matchLabels: {zone: x}}]
  nodeSelectors: [{matchLabels: {rack: '1'}}, {matchLabels: {rack: '2'}}]
  interfaces: [eth0, eth1]
  serviceSelectors: [{matchLabels: {app: web}}]
  preferredNodeSelectors:
  - {weight: 1, preference: {matchLabels: {rack: '1'}}}
  - {weight: 100, preference: {matchLabels: {rack: '2'}}}
",
    ),
    case(
        "l2: duplicates",
        "
kind: L2Advertisement
metadata: {name: l2}
spec:
  ipAddressPools: [a, b, a]
  ipAddressPoolSelectors: [{matchLabels: {zone: x}}, {matchLabels: {zone: x}}]
  nodeSelectors: [{}, {}]
  interfaces: [eth0, eth0]
  serviceSelectors: [{matchLabels: {app: web}}, {matchExpressions: [{key: app, operator: In, values: [web]}]}]
",
        &[
            ("L2Advertisement/l2: spec.ipAddressPools[2]", "pool \"a\" is listed twice (also spec.ipAddressPools[0])"),
            ("L2Advertisement/l2: spec.ipAddressPoolSelectors[1]", "\"zone=x\" is listed twice"),
            ("L2Advertisement/l2: spec.nodeSelectors[1]", "{} (every object) is listed twice"),
            ("L2Advertisement/l2: spec.interfaces[1]", "interface \"eth0\" is listed twice"),
            ("L2Advertisement/l2: spec.serviceSelectors[1]", "\"app=web\" is listed twice"),
        ],
    ),
    case(
        "l2: invalid selectors and weights",
        "
kind: L2Advertisement
metadata: {name: l2}
spec:
  nodeSelectors: [{matchLabels: {-bad: x}}]
  ipAddressPoolSelectors: [{matchExpressions: [{key: k, operator: In}]}]
  preferredNodeSelectors:
  - {weight: 0, preference: {matchLabels: {rack: '1'}}}
  - {weight: 101, preference: {matchLabels: {rack: '2'}}}
  - {weight: 50, preference: {matchExpressions: [{key: k, operator: Exists, values: [x]}]}}
",
        &[
            ("L2Advertisement/l2: spec.nodeSelectors[0]", "invalid label key \"-bad\""),
            ("L2Advertisement/l2: spec.ipAddressPoolSelectors[0]", "needs at least one value"),
            ("L2Advertisement/l2: spec.preferredNodeSelectors[0].weight", "0 is out of range: use 1 to 100"),
            ("L2Advertisement/l2: spec.preferredNodeSelectors[1].weight", "101 is out of range"),
            ("L2Advertisement/l2: spec.preferredNodeSelectors[2].preference", "takes no values"),
        ],
    ),
    case(
        "l2: duplicate names, missing name",
        "
kind: L2Advertisement
metadata: {name: l2}
spec: {}
---
kind: L2Advertisement
metadata: {name: l2}
spec: {}
---
kind: L2Advertisement
metadata: {name: ''}
spec: {}
",
        &[
            ("L2Advertisement/l2: metadata.name", "duplicate name"),
            ("L2Advertisement/(unnamed #3): metadata.name", "missing name"),
        ],
    ),
    // ---------------------------------------------------------------- BGPAdvertisement
    ok(
        "bgp adv: every field valid",
        "
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: [192.0.2.0/24, '2001:db8::/64', 198.51.100.0-198.51.100.63]}
---
kind: Community
metadata: {name: c}
spec: {communities: [{name: no-export, value: '65535:65281'}]}
---
kind: BGPAdvertisement
metadata: {name: adv}
spec:
  ipAddressPools: [a]
  aggregationLength: 26
  aggregationLengthV6: 64
  localPref: 100
  communities: ['65000:1', 'large:4294967295:0:1', no-export]
  nodeSelectors: [{matchLabels: {rack: '1'}}]
  peers: [p1, p2]
",
    ),
    case(
        "bgp adv: aggregation lengths out of range",
        "
kind: BGPAdvertisement
metadata: {name: a}
spec: {aggregationLength: 0, aggregationLengthV6: 129}
---
kind: BGPAdvertisement
metadata: {name: b}
spec: {aggregationLength: 33, aggregationLengthV6: 0}
",
        &[
            ("BGPAdvertisement/a: spec.aggregationLength", "0 is out of range: use 1 to 32"),
            ("BGPAdvertisement/a: spec.aggregationLengthV6", "129 is out of range: use 1 to 128"),
            ("BGPAdvertisement/b: spec.aggregationLength", "33 is out of range"),
            ("BGPAdvertisement/b: spec.aggregationLengthV6", "0 is out of range"),
        ],
    ),
    case(
        "bgp adv: aggregation shorter than a pool's prefix (lowest mask of each entry)",
        "
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: [192.0.2.0/24, '2001:db8::/64', 198.51.100.10-198.51.100.20]}
---
kind: BGPAdvertisement
metadata: {name: v4}
spec: {ipAddressPools: [a], aggregationLength: 28}
---
kind: BGPAdvertisement
metadata: {name: v6}
spec: {aggregationLength: 30, aggregationLengthV6: 48, peers: [x]}
",
        &[
            ("BGPAdvertisement/v4: spec.aggregationLength", "28 is shorter than the /30 prefix of \"198.51.100.10-198.51.100.20\" (IPAddressPool/a spec.addresses[2])"),
            ("BGPAdvertisement/v6: spec.aggregationLengthV6", "48 is shorter than the /64 prefix of \"2001:db8::/64\""),
        ],
    ),
    ok(
        "bgp adv: aggregation at least the lowest prefix of each entry",
        "
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: [192.0.2.0/24, '2001:db8::/64', 198.51.100.10-198.51.100.20]}
---
kind: BGPAdvertisement
metadata: {name: adv}
spec: {aggregationLength: 30, aggregationLengthV6: 64}
",
    ),
    case(
        "bgp adv: duplicate list entries and selectors",
        "
kind: BGPAdvertisement
metadata: {name: adv}
spec:
  ipAddressPools: [a, a]
  communities: ['1:1', '1:1']
  peers: [p, q, p]
  ipAddressPoolSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}]
  nodeSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}]
  serviceSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}]
",
        &[
            ("BGPAdvertisement/adv: spec.ipAddressPools[1]", "listed twice"),
            ("BGPAdvertisement/adv: spec.communities[1]", "community \"1:1\" is listed twice"),
            ("BGPAdvertisement/adv: spec.peers[2]", "peer \"p\" is listed twice"),
            ("BGPAdvertisement/adv: spec.ipAddressPoolSelectors[1]", "listed twice"),
            ("BGPAdvertisement/adv: spec.nodeSelectors[1]", "listed twice"),
            ("BGPAdvertisement/adv: spec.serviceSelectors[1]", "listed twice"),
        ],
    ),
    case(
        "bgp adv: community values and aliases",
        "
kind: Community
metadata: {name: c}
spec: {communities: [{name: known, value: '1:2'}, {name: broken, value: '1:99999'}]}
---
kind: BGPAdvertisement
metadata: {name: adv}
spec:
  communities: ['65536:1', '1:-1', 'large:1:2:4294967296', 'large:1:2', 'big:1:2:3', unknown, known, broken]
",
        &[
            ("BGPAdvertisement/adv: spec.communities[0]", "\"65536\" is not a number from 0 to 65535"),
            ("BGPAdvertisement/adv: spec.communities[1]", "\"-1\" is not a number from 0 to 65535"),
            ("BGPAdvertisement/adv: spec.communities[2]", "\"4294967296\" is not a number from 0 to 4294967295"),
            ("BGPAdvertisement/adv: spec.communities[3]", "large:a:b:c"),
            ("BGPAdvertisement/adv: spec.communities[4]", "must be large:a:b:c, but it starts with \"big\""),
            ("transient BGPAdvertisement/adv: spec.communities[5]", "nor a known alias: define the alias in a Community resource"),
            ("Community/c: spec.communities[1].value", "\"1:99999\" is not a valid community value"),
        ],
    ),
    case(
        "bgp adv: identical specs are duplicates",
        "
kind: BGPAdvertisement
metadata: {name: a}
spec: {ipAddressPools: [x], localPref: 5}
---
kind: BGPAdvertisement
metadata: {name: b}
spec: {ipAddressPools: [x], localPref: 5}
---
kind: BGPAdvertisement
metadata: {name: c}
spec: {ipAddressPools: [x], localPref: 5, peers: [p]}
",
        &[("BGPAdvertisement/b: spec", "same spec as BGPAdvertisement/a")],
    ),
    case(
        "bgp adv: conflicting localPref",
        "
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: [192.0.2.0/24]}
---
kind: BGPAdvertisement
metadata: {name: first}
spec: {ipAddressPools: [a], localPref: 100, peers: [p1, p2]}
---
kind: BGPAdvertisement
metadata: {name: second}
spec: {ipAddressPools: [a], localPref: 200, peers: [p2]}
---
kind: BGPAdvertisement
metadata: {name: third}
spec: {localPref: 300, aggregationLength: 30, nodeSelectors: [{matchLabels: {r: '1'}}]}
",
        &[
            ("BGPAdvertisement/second: spec.localPref", "localPref 200 conflicts with localPref 100 of BGPAdvertisement/first: both announce IPAddressPool/a"),
            ("BGPAdvertisement/third: spec.localPref", "localPref 300 conflicts with localPref 100 of BGPAdvertisement/first"),
            ("BGPAdvertisement/third: spec.localPref", "localPref 300 conflicts with localPref 200 of BGPAdvertisement/second"),
        ],
    ),
    ok(
        "bgp adv: different localPref told apart by peers, aggregation or nodes",
        "
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: [192.0.2.0/24]}
---
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {r: '1'}}
---
apiVersion: v1
kind: Node
metadata: {name: n2, labels: {r: '2'}}
---
kind: BGPAdvertisement
metadata: {name: base}
spec: {ipAddressPools: [a], localPref: 100, peers: [p1], nodeSelectors: [{matchLabels: {r: '1'}}]}
---
kind: BGPAdvertisement
metadata: {name: other-peer}
spec: {ipAddressPools: [a], localPref: 200, peers: [p2]}
---
kind: BGPAdvertisement
metadata: {name: other-length}
spec: {ipAddressPools: [a], localPref: 300, aggregationLength: 24, aggregationLengthV6: 64}
---
kind: BGPAdvertisement
metadata: {name: other-nodes}
spec: {ipAddressPools: [a], localPref: 400, peers: [p1], nodeSelectors: [{matchLabels: {r: '2'}}]}
---
kind: BGPAdvertisement
metadata: {name: other-pool}
spec: {ipAddressPools: [b], localPref: 500}
",
    ),
    case(
        "bgp adv: serviceSelectors need the default aggregation lengths",
        "
kind: BGPAdvertisement
metadata: {name: a}
spec: {aggregationLength: 24, serviceSelectors: [{matchLabels: {app: x}}]}
---
kind: BGPAdvertisement
metadata: {name: b}
spec: {aggregationLength: 32, aggregationLengthV6: 128, serviceSelectors: [{matchLabels: {app: 'y'}}]}
",
        &[("BGPAdvertisement/a: spec.serviceSelectors", "only with the default aggregation lengths")],
    ),
    // ---------------------------------------------------------------- BGPPeer
    ok(
        "peer: every field valid",
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
metadata: {name: p, namespace: metallb-system}
spec:
  myASN: 64500
  peerASN: 64501
  localASN: 64999
  peerAddress: 198.51.100.1
  sourceAddress: 198.51.100.2
  peerPort: 1179
  holdTime: 90s
  keepaliveTime: 30s
  connectTime: 5s
  routerID: 10.0.0.1
  nodeSelectors: [{matchLabels: {a: b}}]
  passwordSecret: {name: md5}
  bfdProfile: fast
  ebgpMultiHop: true
  enableGracefulRestart: true
  vrf: red
  dualStackAddressFamily: true
---
kind: BGPPeer
metadata: {name: unnumbered}
spec: {myASN: 64500, dynamicASN: external, interface: eth1, ebgpMultiHop: true, holdTime: '0'}
",
    ),
    case(
        "peer: AS numbers",
        "
kind: BGPPeer
metadata: {name: zero}
spec: {myASN: 0, peerASN: 1, peerAddress: 198.51.100.1}
---
kind: BGPPeer
metadata: {name: neither}
spec: {myASN: 1, peerAddress: 198.51.100.2}
---
kind: BGPPeer
metadata: {name: both}
spec: {myASN: 1, peerASN: 2, dynamicASN: internal, peerAddress: 198.51.100.3}
---
kind: BGPPeer
metadata: {name: local}
spec: {myASN: 1, peerASN: 2, localASN: 0, peerAddress: 198.51.100.4}
",
        &[
            ("BGPPeer/zero: spec.myASN", "missing local ASN"),
            ("BGPPeer/neither: spec.peerASN", "missing peer ASN: set peerASN"),
            ("BGPPeer/both: spec.dynamicASN", "peerASN and dynamicASN are both set"),
            ("BGPPeer/local: spec.localASN", "0 is not an AS number"),
        ],
    ),
    case(
        "peer: address and interface",
        "
kind: BGPPeer
metadata: {name: both}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1, interface: eth0}
---
kind: BGPPeer
metadata: {name: neither}
spec: {myASN: 1, peerASN: 2}
---
kind: BGPPeer
metadata: {name: bad}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.256, sourceAddress: 'fe80::1%eth0', routerID: '2001:db8::1'}
---
kind: BGPPeer
metadata: {name: bad-id}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.9, routerID: router-1}
",
        &[
            ("BGPPeer/both: spec.interface", "peerAddress and interface are both set"),
            ("BGPPeer/neither: spec.peerAddress", "missing peer address"),
            ("BGPPeer/bad: spec.peerAddress", "\"198.51.100.256\" is not an IP address"),
            ("BGPPeer/bad: spec.sourceAddress", "\"fe80::1%eth0\" is not an IP address"),
            ("BGPPeer/bad: spec.routerID", "\"2001:db8::1\" is not an IPv4 address"),
            ("BGPPeer/bad-id: spec.routerID", "\"router-1\" is not an IPv4 address"),
        ],
    ),
    case(
        "peer: port",
        "
kind: BGPPeer
metadata: {name: zero}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1, peerPort: 0}
---
kind: BGPPeer
metadata: {name: high}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.2, peerPort: 16385}
---
kind: BGPPeer
metadata: {name: max}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.3, peerPort: 16384}
",
        &[
            ("BGPPeer/zero: spec.peerPort", "0 is out of range: use 1 to 16384"),
            ("BGPPeer/high: spec.peerPort", "16385 is out of range"),
        ],
    ),
    case(
        "peer: hold and keepalive times",
        "
kind: BGPPeer
metadata: {name: short}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1, holdTime: 2s}
---
kind: BGPPeer
metadata: {name: rounded}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.2, holdTime: 2900ms}
---
kind: BGPPeer
metadata: {name: derived}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.3, keepaliveTime: 500ms}
---
kind: BGPPeer
metadata: {name: ka}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.4, holdTime: 30s, keepaliveTime: 1m}
---
kind: BGPPeer
metadata: {name: zero-hold}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.5, holdTime: 0s, keepaliveTime: 1s}
---
kind: BGPPeer
metadata: {name: unparsable}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.6, holdTime: '90', keepaliveTime: '-5s', connectTime: soon}
",
        &[
            ("BGPPeer/short: spec.holdTime", "\"2s\" is too short: use 0 (no keepalives) or at least 3s"),
            ("BGPPeer/rounded: spec.holdTime", "\"2900ms\" is too short"),
            ("BGPPeer/derived: spec.keepaliveTime", "the hold time is three times keepaliveTime (1.5s), which is too short"),
            ("BGPPeer/ka: spec.keepaliveTime", "\"1m\" is longer than the hold time \"30s\""),
            ("BGPPeer/zero-hold: spec.keepaliveTime", "\"1s\" is longer than the hold time \"0s\""),
            ("BGPPeer/unparsable: spec.holdTime", "\"90\" is not a duration: a unit is missing"),
            ("BGPPeer/unparsable: spec.keepaliveTime", "\"-5s\" is negative"),
            ("BGPPeer/unparsable: spec.connectTime", "\"soon\" is not a duration"),
        ],
    ),
    ok(
        "peer: timer boundaries",
        "
kind: BGPPeer
metadata: {name: a}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1, holdTime: 3s}
---
kind: BGPPeer
metadata: {name: b}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.2, holdTime: 0s, keepaliveTime: 0s}
---
kind: BGPPeer
metadata: {name: c}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.3, keepaliveTime: 1s, connectTime: 65535s}
---
kind: BGPPeer
metadata: {name: d}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.4, holdTime: 1m30s, keepaliveTime: 1m30s, connectTime: 1s}
",
    ),
    case(
        "peer: connect time",
        "
kind: BGPPeer
metadata: {name: zero}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1, connectTime: 0s}
---
kind: BGPPeer
metadata: {name: long}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.2, connectTime: 65536s}
---
kind: BGPPeer
metadata: {name: fraction}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.3, connectTime: 1.5s}
",
        &[
            ("BGPPeer/zero: spec.connectTime", "\"0s\" is out of range: use 1s to 65535s"),
            ("BGPPeer/long: spec.connectTime", "out of range"),
            ("BGPPeer/fraction: spec.connectTime", "not a whole number of seconds"),
        ],
    ),
    case(
        "peer: ebgpMultiHop on iBGP",
        "
kind: BGPPeer
metadata: {name: fixed}
spec: {myASN: 1, peerASN: 1, peerAddress: 198.51.100.1, ebgpMultiHop: true}
---
kind: BGPPeer
metadata: {name: dynamic}
spec: {myASN: 1, dynamicASN: internal, peerAddress: 198.51.100.2, ebgpMultiHop: true}
---
kind: BGPPeer
metadata: {name: ebgp}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.3, ebgpMultiHop: true}
",
        &[
            ("BGPPeer/fixed: spec.ebgpMultiHop", "iBGP peer"),
            ("BGPPeer/dynamic: spec.ebgpMultiHop", "iBGP peer"),
        ],
    ),
    case(
        "peer: passwords and secrets",
        "
apiVersion: v1
kind: Secret
metadata: {name: opaque, namespace: metallb-system}
type: Opaque
data: {password: c2VjcmV0}
---
apiVersion: v1
kind: Secret
metadata: {name: nokey, namespace: metallb-system}
type: kubernetes.io/basic-auth
data: {username: dXNlcg==}
---
apiVersion: v1
kind: Secret
metadata: {name: elsewhere, namespace: other}
type: kubernetes.io/basic-auth
data: {password: c2VjcmV0}
---
apiVersion: v1
kind: Secret
metadata: {name: good, namespace: metallb-system}
type: kubernetes.io/basic-auth
stringData: {password: secret}
---
kind: BGPPeer
metadata: {name: both, namespace: metallb-system}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1, password: x, passwordSecret: {name: good}}
---
kind: BGPPeer
metadata: {name: missing, namespace: metallb-system}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.2, passwordSecret: {name: nope}}
---
kind: BGPPeer
metadata: {name: wrong-ns, namespace: metallb-system}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.3, passwordSecret: {name: elsewhere}}
---
kind: BGPPeer
metadata: {name: opaque, namespace: metallb-system}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.4, passwordSecret: {name: opaque}}
---
kind: BGPPeer
metadata: {name: nokey, namespace: metallb-system}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.5, passwordSecret: {name: nokey}}
---
kind: BGPPeer
metadata: {name: good, namespace: metallb-system}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.6, passwordSecret: {name: good}}
---
kind: BGPPeer
metadata: {name: explicit-ns, namespace: metallb-system}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.7, passwordSecret: {name: elsewhere, namespace: other}}
",
        &[
            ("BGPPeer/both: spec.password", "password and passwordSecret are both set"),
            ("transient BGPPeer/missing: spec.passwordSecret", "Secret metallb-system/nope does not exist"),
            ("transient BGPPeer/wrong-ns: spec.passwordSecret", "Secret metallb-system/elsewhere does not exist"),
            ("BGPPeer/opaque: spec.passwordSecret", "is of type \"Opaque\": it must be of type kubernetes.io/basic-auth"),
            ("BGPPeer/nokey: spec.passwordSecret", "has no \"password\" key"),
        ],
    ),
    case(
        "peer: BFD profile",
        "
kind: BFDProfile
metadata: {name: there}
spec: {}
---
kind: BGPPeer
metadata: {name: a}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1, bfdProfile: missing}
---
kind: BGPPeer
metadata: {name: b}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.2, bfdProfile: there}
",
        &[("transient BGPPeer/a: spec.bfdProfile", "BFDProfile \"missing\" does not exist")],
    ),
    case(
        "peer: duplicate node selectors",
        "
kind: BGPPeer
metadata: {name: a}
spec:
  myASN: 1
  peerASN: 2
  peerAddress: 198.51.100.1
  nodeSelectors: [{matchLabels: {a: b}}, {matchExpressions: [{key: a, operator: In, values: [b]}]}]
",
        &[("BGPPeer/a: spec.nodeSelectors[1]", "\"a=b\" is listed twice")],
    ),
    case(
        "peer: duplicate sessions",
        "
kind: BGPPeer
metadata: {name: a}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1, holdTime: 90s}
---
kind: BGPPeer
metadata: {name: b}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1, holdTime: 30s, nodeSelectors: [{}]}
---
kind: BGPPeer
metadata: {name: other-port}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1, peerPort: 1179}
---
kind: BGPPeer
metadata: {name: other-vrf}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1, vrf: red}
---
kind: BGPPeer
metadata: {name: other-nodes}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1, nodeSelectors: [{matchLabels: {a: b}}]}
---
kind: BGPPeer
metadata: {name: other-asn}
spec: {myASN: 1, peerASN: 3, peerAddress: 198.51.100.1}
",
        &[("BGPPeer/b", "describes the same session as BGPPeer/a")],
    ),
    case(
        "peer: BFD echo mode with IPv6 advertisements",
        "
kind: BFDProfile
metadata: {name: echo}
spec: {echoMode: true}
---
kind: BFDProfile
metadata: {name: plain}
spec: {}
---
kind: IPAddressPool
metadata: {name: v6}
spec: {addresses: ['2001:db8::/120']}
---
kind: IPAddressPool
metadata: {name: v4}
spec: {addresses: [192.0.2.0/24]}
---
kind: BGPPeer
metadata: {name: echo-peer}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1, bfdProfile: echo}
---
kind: BGPPeer
metadata: {name: v4-only}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.2, bfdProfile: echo}
---
kind: BGPPeer
metadata: {name: plain-peer}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.3, bfdProfile: plain}
---
kind: BGPAdvertisement
metadata: {name: to-echo}
spec: {ipAddressPools: [v6], peers: [echo-peer, plain-peer]}
---
kind: BGPAdvertisement
metadata: {name: v4-to-all}
spec: {ipAddressPools: [v4]}
",
        &[(
            "BGPPeer/echo-peer: spec.bfdProfile",
            "BFDProfile \"echo\" has echoMode on, but BGPAdvertisement/to-echo announces IPv6 IPAddressPool/v6",
        )],
    ),
    // ---------------------------------------------------------------- Community
    case(
        "community: duplicates across resources, bad values, empty names",
        "
kind: Community
metadata: {name: one}
spec: {communities: [{name: a, value: '1:1'}, {name: '', value: '1:2'}]}
---
kind: Community
metadata: {name: two}
spec: {communities: [{name: a, value: '1:3'}, {name: b, value: 'no'}, {name: c, value: 'large:1:2:x'}]}
---
kind: Community
metadata: {}
spec: {}
",
        &[
            ("Community/one: spec.communities[1].name", "missing alias name"),
            ("Community/two: spec.communities[0].name", "alias \"a\" is already defined (Community/one spec.communities[0])"),
            ("Community/two: spec.communities[1].value", "\"no\" is not a valid community value: neither a:b (standard) nor large:a:b:c (large)"),
            ("Community/two: spec.communities[2].value", "\"x\" is not a number from 0 to 4294967295"),
            ("Community/(unnamed #3): metadata.name", "missing name"),
        ],
    ),
    // ---------------------------------------------------------------- BFDProfile
    case(
        "bfd: ranges and duplicate names",
        "
kind: BFDProfile
metadata: {name: low}
spec: {receiveInterval: 9, transmitInterval: 9, echoInterval: 9, detectMultiplier: 1, minimumTtl: 0}
---
kind: BFDProfile
metadata: {name: high}
spec: {receiveInterval: 60001, transmitInterval: 60001, echoInterval: 60001, detectMultiplier: 256, minimumTtl: 255}
---
kind: BFDProfile
metadata: {name: high}
spec: {receiveInterval: 10, transmitInterval: 60000, echoInterval: 10, detectMultiplier: 2, minimumTtl: 254}
",
        &[
            ("BFDProfile/low: spec.receiveInterval", "9 is out of range: use 10 ms to 60000 ms"),
            ("BFDProfile/low: spec.transmitInterval", "9 is out of range"),
            ("BFDProfile/low: spec.echoInterval", "9 is out of range"),
            ("BFDProfile/low: spec.detectMultiplier", "1 is out of range: use 2 to 255"),
            ("BFDProfile/low: spec.minimumTtl", "0 is out of range: use 1 to 254"),
            ("BFDProfile/high: spec.receiveInterval", "60001 is out of range"),
            ("BFDProfile/high: spec.transmitInterval", "60001 is out of range"),
            ("BFDProfile/high: spec.echoInterval", "60001 is out of range"),
            ("BFDProfile/high: spec.detectMultiplier", "256 is out of range"),
            ("BFDProfile/high: spec.minimumTtl", "255 is out of range"),
            ("BFDProfile/high: metadata.name", "BFDProfile #3 has the same name as #2"),
        ],
    ),
    // ---------------------------------------------------------------- names of every kind
    case(
        "names: duplicates within each kind (not across kinds)",
        "
kind: BGPAdvertisement
metadata: {name: x}
spec: {localPref: 1}
---
kind: BGPAdvertisement
metadata: {name: x}
spec: {localPref: 1, peers: [p]}
---
kind: BGPPeer
metadata: {name: x}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1}
---
kind: BGPPeer
metadata: {name: x}
spec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.2}
---
kind: Community
metadata: {name: x}
spec: {}
---
kind: Community
metadata: {name: x}
spec: {}
---
kind: IPAddressPool
metadata: {name: x}
spec: {addresses: [192.0.2.0/24]}
",
        &[
            ("BGPAdvertisement/x: metadata.name", "duplicate name"),
            ("BGPPeer/x: metadata.name", "duplicate name"),
            ("Community/x: metadata.name", "duplicate name"),
        ],
    ),
];

#[test]
fn rules() {
    let mut failures = Vec::new();
    for case in CASES {
        let got = problems(case.yaml);
        let mut unmatched: Vec<&String> = got.iter().collect();
        for (prefix, fragment) in case.want {
            let (transient, prefix) = match prefix.strip_prefix("transient ") {
                Some(p) => (true, p),
                None => (false, *prefix),
            };
            let want_start = if transient {
                format!("transient {prefix}: ")
            } else {
                format!("{prefix}: ")
            };
            match unmatched
                .iter()
                .position(|line| line.starts_with(&want_start) && line.contains(fragment))
            {
                Some(i) => {
                    unmatched.remove(i);
                }
                None => failures.push(format!(
                    "[{}] missing: {want_start}…{fragment}…\n    got: {got:#?}",
                    case.name
                )),
            }
        }
        for line in unmatched {
            failures.push(format!("[{}] unexpected: {line}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn problems_are_sorted_and_the_same_whatever_the_order_of_objects() {
    let yaml = "
kind: IPAddressPool
metadata: {name: b}
spec: {addresses: [x, 'y', z, w, v, u, t, s, r, q, p]}
---
kind: IPAddressPool
metadata: {name: a}
spec: {addresses: []}
---
kind: BGPPeer
metadata: {name: p}
spec: {myASN: 0}
";
    let got = problems(yaml);
    let fields: Vec<&str> = got
        .iter()
        .filter(|l| l.starts_with("IPAddressPool/b"))
        .map(|l| l.split(": ").nth(1).unwrap())
        .collect();
    let want: Vec<String> = (0..11).map(|i| format!("spec.addresses[{i}]")).collect();
    assert_eq!(fields, want, "indices in numeric order");
    assert!(got[0].starts_with("BGPPeer/p: "), "{got:#?}");
    // Reversing the documents changes nothing but (here) no overlap report.
    let mut reversed: Vec<&str> = yaml.split("---").collect();
    reversed.reverse();
    assert_eq!(problems(&reversed.join("---")), got);
}
