//! Table tests of the allocation rules, one case per rule, in the spirit of MetalLB's
//! `allocator_test.go` (TestAssignment, TestPoolAllocation, TestAllocation), run through
//! [`allocate`].

mod common;

use common::*;
use ferrolb_allocator::{Options, allocate};
use ferrolb_model::Pool;
use k8s_openapi::api::core::v1::Namespace;
use std::collections::BTreeMap;

#[derive(Default)]
struct Case {
    name: &'static str,
    pools: Vec<Pool>,
    namespaces: Vec<Namespace>,
    services: Vec<Svc>,
    options: Options,
    previous: Vec<(&'static str, &'static [&'static str])>,
    expect: Vec<(&'static str, Expect)>,
    /// (service, text a warning must contain)
    warnings: Vec<(&'static str, &'static str)>,
}

fn run_cases(cases: Vec<Case>) {
    for case in cases {
        let config = config(case.pools.clone());
        let mut snap = snapshot(&case.services);
        snap.namespaces = case.namespaces.clone();
        let previous: BTreeMap<_, _> = case
            .previous
            .iter()
            .map(|(k, list)| (key(k), ips(list)))
            .collect();
        let outcome = allocate(&config, &snap, &case.options, &previous);
        for (service, expect) in &case.expect {
            check(&outcome, service, expect, case.name);
        }
        for (service, text) in &case.warnings {
            let r = result(&outcome, service);
            assert!(
                r.warnings.iter().any(|w| w.contains(text)),
                "{}: {service} should warn about {text:?}, warnings: {:?}",
                case.name,
                r.warnings
            );
        }
        // Every case is also a fixed point.
        let again = allocate(&config, &snap, &case.options, &outcome.assignments());
        assert_eq!(
            again, outcome,
            "{}: allocating again changed the outcome",
            case.name
        );
    }
}

use Expect::{Absent, Error, Ips};

#[test]
fn which_services_are_ours() {
    run_cases(vec![
        Case {
            name: "only LoadBalancer services",
            pools: vec![pool("p", &["10.0.0.0/30"])],
            services: vec![
                Svc::new("ns/cluster-ip").spec("type", "ClusterIP".into()),
                Svc::new("ns/node-port").spec("type", "NodePort".into()),
                Svc::new("ns/lb"),
            ],
            expect: vec![
                ("ns/cluster-ip", Absent),
                ("ns/node-port", Absent),
                ("ns/lb", Ips("p", &["10.0.0.0"])),
            ],
            ..Case::default()
        },
        Case {
            name: "without --lb-class only services without a class",
            pools: vec![pool("p", &["10.0.0.0/30"])],
            services: vec![
                Svc::new("ns/classed").spec("loadBalancerClass", "other".into()),
                Svc::new("ns/plain"),
            ],
            expect: vec![
                ("ns/classed", Absent),
                ("ns/plain", Ips("p", &["10.0.0.0"])),
            ],
            ..Case::default()
        },
        Case {
            name: "with --lb-class only that class",
            pools: vec![pool("p", &["10.0.0.0/30"])],
            services: vec![
                Svc::new("ns/ours").spec("loadBalancerClass", "ferrolb".into()),
                Svc::new("ns/other").spec("loadBalancerClass", "other".into()),
                Svc::new("ns/plain"),
            ],
            options: Options {
                lb_class: Some("ferrolb".into()),
            },
            expect: vec![
                ("ns/ours", Ips("p", &["10.0.0.0"])),
                ("ns/other", Absent),
                ("ns/plain", Absent),
            ],
            ..Case::default()
        },
    ]);
}

#[test]
fn automatic_assignment() {
    run_cases(vec![
        Case {
            name: "lowest address first, then the next",
            pools: vec![pool("p", &["10.0.0.4/31"])],
            services: vec![Svc::new("ns/a"), Svc::new("ns/b")],
            expect: vec![
                ("ns/a", Ips("p", &["10.0.0.4"])),
                ("ns/b", Ips("p", &["10.0.0.5"])),
            ],
            ..Case::default()
        },
        Case {
            name: "CIDRs in the order the pool lists them",
            pools: vec![pool("p", &["10.0.1.0/31", "10.0.0.0/31"])],
            services: vec![Svc::new("ns/a"), Svc::new("ns/b"), Svc::new("ns/c")],
            expect: vec![
                ("ns/a", Ips("p", &["10.0.1.0"])),
                ("ns/b", Ips("p", &["10.0.1.1"])),
                ("ns/c", Ips("p", &["10.0.0.0"])),
            ],
            ..Case::default()
        },
        Case {
            name: "pool exhausted",
            pools: vec![pool("p", &["10.0.0.0/31"])],
            services: vec![Svc::new("ns/a"), Svc::new("ns/b"), Svc::new("ns/c")],
            expect: vec![
                ("ns/a", Ips("p", &["10.0.0.0"])),
                ("ns/b", Ips("p", &["10.0.0.1"])),
                ("ns/c", Error("no available IPs")),
            ],
            ..Case::default()
        },
        Case {
            name: "no pools at all",
            services: vec![Svc::new("ns/a")],
            expect: vec![("ns/a", Error("no available IPs"))],
            ..Case::default()
        },
        Case {
            name: "avoidBuggyIPs skips .0 and .255",
            pools: vec![
                pool("a", &["10.0.0.0/24"]).avoid_buggy(),
                pool("b", &["10.0.1.254/31", "10.0.2.0/31"]).avoid_buggy(),
            ],
            services: vec![
                Svc::new("ns/a").pool("a"),
                Svc::new("ns/b1").pool("b"),
                Svc::new("ns/b2").pool("b"),
                Svc::new("ns/b3").pool("b"),
            ],
            expect: vec![
                ("ns/a", Ips("a", &["10.0.0.1"])),
                ("ns/b1", Ips("b", &["10.0.1.254"])),
                ("ns/b2", Ips("b", &["10.0.2.1"])),
                ("ns/b3", Error("no available IPs in pool \"b\"")),
            ],
            ..Case::default()
        },
        Case {
            name: "without avoidBuggyIPs .0 and .255 are handed out",
            pools: vec![pool("p", &["10.0.0.255/32", "10.0.1.0/32"])],
            services: vec![Svc::new("ns/a"), Svc::new("ns/b")],
            expect: vec![
                ("ns/a", Ips("p", &["10.0.0.255"])),
                ("ns/b", Ips("p", &["10.0.1.0"])),
            ],
            ..Case::default()
        },
        Case {
            name: "fallback pools in name order, the next when one is full",
            pools: vec![pool("b", &["10.0.0.0/32"]), pool("a", &["10.0.1.0/32"])],
            services: vec![Svc::new("ns/x"), Svc::new("ns/y"), Svc::new("ns/z")],
            expect: vec![
                ("ns/x", Ips("a", &["10.0.1.0"])),
                ("ns/y", Ips("b", &["10.0.0.0"])),
                ("ns/z", Error("no available IPs")),
            ],
            ..Case::default()
        },
        Case {
            name: "autoAssign=false pools are not used automatically",
            pools: vec![pool("manual", &["10.0.0.0/30"]).manual()],
            services: vec![Svc::new("ns/a")],
            expect: vec![("ns/a", Error("no available IPs"))],
            ..Case::default()
        },
        Case {
            name: "a family no pool has",
            pools: vec![pool("v4", &["10.0.0.0/30"])],
            services: vec![Svc::new("ns/a").families(&["IPv6"])],
            expect: vec![(
                "ns/a",
                Error("no pool this service may use has IPv6 addresses"),
            )],
            ..Case::default()
        },
        Case {
            name: "IPv6 pool, lowest first",
            pools: vec![pool("v6", &["fd00::/64"])],
            services: vec![
                Svc::new("ns/a").families(&["IPv6"]),
                Svc::new("ns/b").families(&["IPv6"]),
            ],
            expect: vec![
                ("ns/a", Ips("v6", &["fd00::"])),
                ("ns/b", Ips("v6", &["fd00::1"])),
            ],
            ..Case::default()
        },
    ]);
}

#[test]
fn pool_allocation() {
    run_cases(vec![
        Case {
            name: "a namespace pool is preferred to the fallback",
            pools: vec![
                pool("a-open", &["10.0.0.0/30"]),
                pool("z-team", &["10.0.9.0/30"]).allocation(alloc(0, &["team"])),
            ],
            services: vec![Svc::new("team/a"), Svc::new("other/b")],
            expect: vec![
                ("team/a", Ips("z-team", &["10.0.9.0"])),
                ("other/b", Ips("a-open", &["10.0.0.0"])),
            ],
            ..Case::default()
        },
        Case {
            name: "lower priority number first",
            pools: vec![
                pool("a", &["10.0.1.0/30"]).allocation(alloc(2, &["ns"])),
                pool("b", &["10.0.2.0/30"]).allocation(alloc(1, &["ns"])),
            ],
            services: vec![Svc::new("ns/s")],
            expect: vec![("ns/s", Ips("b", &["10.0.2.0"]))],
            ..Case::default()
        },
        Case {
            name: "priority 0 is the lowest",
            pools: vec![
                pool("a", &["10.0.1.0/30"]).allocation(alloc(0, &["ns"])),
                pool("b", &["10.0.2.0/30"]).allocation(alloc(50, &["ns"])),
            ],
            services: vec![Svc::new("ns/s")],
            expect: vec![("ns/s", Ips("b", &["10.0.2.0"]))],
            ..Case::default()
        },
        Case {
            name: "equal priorities by pool name",
            pools: vec![
                pool("b", &["10.0.1.0/30"]).allocation(alloc(3, &["ns"])),
                pool("a", &["10.0.2.0/30"]).allocation(alloc(3, &["ns"])),
            ],
            services: vec![Svc::new("ns/s")],
            expect: vec![("ns/s", Ips("a", &["10.0.2.0"]))],
            ..Case::default()
        },
        Case {
            name: "namespace selector, resolved with the snapshot's namespaces",
            pools: vec![
                pool("open", &["10.0.0.0/30"]),
                pool("prod", &["10.0.5.0/30"]).allocation({
                    let mut a = alloc(0, &[]);
                    a.namespace_selectors = vec![selector(&[("env", "prod")])];
                    a
                }),
            ],
            namespaces: vec![
                namespace("shop", &[("env", "prod")]),
                namespace("lab", &[("env", "dev")]),
            ],
            services: vec![Svc::new("shop/a"), Svc::new("lab/b"), Svc::new("ghost/c")],
            expect: vec![
                ("shop/a", Ips("prod", &["10.0.5.0"])),
                ("ghost/c", Ips("open", &["10.0.0.0"])),
                ("lab/b", Ips("open", &["10.0.0.1"])),
            ],
            ..Case::default()
        },
        Case {
            name: "service selector",
            pools: vec![
                pool("open", &["10.0.0.0/30"]),
                pool("web", &["10.0.6.0/30"]).allocation({
                    let mut a = alloc(0, &[]);
                    a.service_selectors = vec![selector(&[("team", "web")])];
                    a
                }),
            ],
            services: vec![Svc::new("ns/a").label("team", "web"), Svc::new("ns/b")],
            expect: vec![
                ("ns/a", Ips("web", &["10.0.6.0"])),
                ("ns/b", Ips("open", &["10.0.0.0"])),
            ],
            ..Case::default()
        },
        Case {
            name: "namespaces and service selectors must both match",
            pools: vec![
                pool("open", &["10.0.0.0/30"]),
                pool("both", &["10.0.7.0/30"]).allocation({
                    let mut a = alloc(0, &["ns1"]);
                    a.service_selectors = vec![selector(&[("team", "web")])];
                    a
                }),
            ],
            services: vec![
                Svc::new("ns1/match").label("team", "web"),
                Svc::new("ns1/nolabel"),
                Svc::new("ns2/wrongns").label("team", "web"),
            ],
            expect: vec![
                ("ns1/match", Ips("both", &["10.0.7.0"])),
                ("ns1/nolabel", Ips("open", &["10.0.0.0"])),
                ("ns2/wrongns", Ips("open", &["10.0.0.1"])),
            ],
            ..Case::default()
        },
        Case {
            name: "an allocation without namespaces or selectors matches everything",
            pools: vec![
                pool("a-open", &["10.0.0.0/30"]),
                pool("b-all", &["10.0.8.0/30"]).allocation(alloc(1, &[])),
            ],
            services: vec![Svc::new("any/s")],
            expect: vec![("any/s", Ips("b-all", &["10.0.8.0"]))],
            ..Case::default()
        },
        Case {
            name: "a full pinned pool falls back to the open pools",
            pools: vec![
                pool("open", &["10.0.0.0/30"]),
                pool("team", &["10.0.9.0/32"]).allocation(alloc(0, &["ns"])),
            ],
            services: vec![Svc::new("ns/a").created(1), Svc::new("ns/b").created(2)],
            expect: vec![
                ("ns/a", Ips("team", &["10.0.9.0"])),
                ("ns/b", Ips("open", &["10.0.0.0"])),
            ],
            ..Case::default()
        },
        Case {
            name: "a pool with an allocation is not a fallback for others",
            pools: vec![pool("team", &["10.0.9.0/30"]).allocation(alloc(0, &["ns"]))],
            services: vec![Svc::new("other/a")],
            expect: vec![("other/a", Error("no available IPs"))],
            ..Case::default()
        },
        Case {
            name: "a pinned pool with autoAssign=false is not used automatically",
            pools: vec![
                pool("open", &["10.0.0.0/30"]),
                pool("team", &["10.0.9.0/30"])
                    .allocation(alloc(1, &["ns"]))
                    .manual(),
            ],
            services: vec![Svc::new("ns/a")],
            expect: vec![("ns/a", Ips("open", &["10.0.0.0"]))],
            ..Case::default()
        },
    ]);
}

#[test]
fn requested_addresses() {
    run_cases(vec![
        Case {
            name: "spec.loadBalancerIP, with a deprecation warning",
            pools: vec![pool("p", &["10.0.0.0/28"])],
            services: vec![Svc::new("ns/a").spec("loadBalancerIP", "10.0.0.9".into())],
            expect: vec![("ns/a", Ips("p", &["10.0.0.9"]))],
            warnings: vec![("ns/a", "spec.loadBalancerIP is deprecated")],
            ..Case::default()
        },
        Case {
            name: "annotation with one address per family, in family order",
            pools: vec![pool("p", &["10.0.0.0/28", "fd00::/120"])],
            services: vec![
                Svc::new("ns/a")
                    .policy("RequireDualStack")
                    .ips_annotation("fd00::7, 10.0.0.7"),
            ],
            expect: vec![("ns/a", Ips("p", &["10.0.0.7", "fd00::7"]))],
            ..Case::default()
        },
        Case {
            name: "legacy annotation still works, with a warning",
            pools: vec![pool("p", &["10.0.0.0/28"])],
            services: vec![
                Svc::new("ns/a").annotation("metallb.universe.tf/loadBalancerIPs", "10.0.0.3"),
            ],
            expect: vec![("ns/a", Ips("p", &["10.0.0.3"]))],
            warnings: vec![(
                "ns/a",
                "annotation metallb.universe.tf/loadBalancerIPs is deprecated; use metallb.io/loadBalancerIPs",
            )],
            ..Case::default()
        },
        Case {
            name: "both spec.loadBalancerIP and the annotation",
            pools: vec![pool("p", &["10.0.0.0/28"])],
            services: vec![
                Svc::new("ns/a")
                    .spec("loadBalancerIP", "10.0.0.1".into())
                    .ips_annotation("10.0.0.2"),
            ],
            expect: vec![(
                "ns/a",
                Error("both spec.loadBalancerIP and metallb.io/loadBalancerIPs are set"),
            )],
            ..Case::default()
        },
        Case {
            name: "an address in no pool",
            pools: vec![pool("p", &["10.0.0.0/28"])],
            services: vec![Svc::new("ns/a").ips_annotation("203.0.113.9")],
            expect: vec![("ns/a", Error("IP 203.0.113.9 is not in any pool"))],
            ..Case::default()
        },
        Case {
            name: "a buggy address of a pool avoiding them",
            pools: vec![pool("p", &["10.0.0.0/24"]).avoid_buggy()],
            services: vec![Svc::new("ns/a").ips_annotation("10.0.0.255")],
            expect: vec![(
                "ns/a",
                Error(
                    "IP 10.0.0.255 is in pool \"p\", which avoids buggy IPs ending in .0 or .255",
                ),
            )],
            ..Case::default()
        },
        Case {
            name: "not an address",
            pools: vec![pool("p", &["10.0.0.0/28"])],
            services: vec![Svc::new("ns/a").ips_annotation("10.0.0.1,banana")],
            expect: vec![(
                "ns/a",
                Error("invalid metallb.io/loadBalancerIPs: \"banana\" is not an IP address"),
            )],
            ..Case::default()
        },
        Case {
            name: "too many addresses, or two of one family",
            pools: vec![pool("p", &["10.0.0.0/28", "fd00::/120"])],
            services: vec![
                Svc::new("ns/three")
                    .policy("RequireDualStack")
                    .ips_annotation("10.0.0.1,10.0.0.2,fd00::1"),
                Svc::new("ns/two-v4").ips_annotation("10.0.0.1,10.0.0.2"),
            ],
            expect: vec![
                (
                    "ns/three",
                    Error(
                        "metallb.io/loadBalancerIPs lists 3 IPs; at most 2 (one IPv4 and one IPv6)",
                    ),
                ),
                (
                    "ns/two-v4",
                    Error(
                        "metallb.io/loadBalancerIPs lists two IPv4 addresses; at most one of each family",
                    ),
                ),
            ],
            ..Case::default()
        },
        Case {
            name: "an address of the wrong family",
            pools: vec![pool("p", &["10.0.0.0/28", "fd00::/120"])],
            services: vec![
                Svc::new("ns/v4").ips_annotation("fd00::1"),
                Svc::new("ns/dual-one")
                    .policy("RequireDualStack")
                    .ips_annotation("10.0.0.1"),
            ],
            expect: vec![
                (
                    "ns/v4",
                    Error(
                        "IP(s) fd00::1 do not match the IP families of the service (IPv4, SingleStack)",
                    ),
                ),
                (
                    "ns/dual-one",
                    Error(
                        "IP(s) 10.0.0.1 do not match the IP families of the service (IPv4, IPv6, RequireDualStack)",
                    ),
                ),
            ],
            ..Case::default()
        },
        Case {
            name: "PreferDualStack may ask for one address",
            pools: vec![pool("p", &["10.0.0.0/28", "fd00::/120"])],
            services: vec![
                Svc::new("ns/a")
                    .policy("PreferDualStack")
                    .ips_annotation("10.0.0.4"),
            ],
            expect: vec![("ns/a", Ips("p", &["10.0.0.4"]))],
            ..Case::default()
        },
        Case {
            name: "autoAssign=false pools serve explicit requests",
            pools: vec![pool("manual", &["10.0.0.0/28"]).manual()],
            services: vec![Svc::new("ns/a").ips_annotation("10.0.0.5")],
            expect: vec![("ns/a", Ips("manual", &["10.0.0.5"]))],
            ..Case::default()
        },
        Case {
            name: "an address of a pool reserved for others",
            pools: vec![pool("team", &["10.0.0.0/28"]).allocation(alloc(0, &["team"]))],
            services: vec![Svc::new("other/a").ips_annotation("10.0.0.5")],
            expect: vec![(
                "other/a",
                Error(
                    "pool \"team\" is reserved by its serviceAllocation for other namespaces or services",
                ),
            )],
            ..Case::default()
        },
        Case {
            name: "an address in use",
            pools: vec![pool("p", &["203.0.113.0/28"])],
            services: vec![
                Svc::new("ns/other")
                    .ips_annotation("203.0.113.5")
                    .created(1),
                Svc::new("ns/late").ips_annotation("203.0.113.5").created(2),
            ],
            expect: vec![
                ("ns/other", Ips("p", &["203.0.113.5"])),
                (
                    "ns/late",
                    Error(
                        "IP 203.0.113.5 is already in use by ns/other and cannot be shared: it does not allow sharing (no metallb.io/allow-shared-ip annotation)",
                    ),
                ),
            ],
            ..Case::default()
        },
        Case {
            name: "addresses in two pools",
            pools: vec![pool("a", &["10.0.0.0/28"]), pool("b", &["fd00::/120"])],
            services: vec![
                Svc::new("ns/s")
                    .policy("RequireDualStack")
                    .ips_annotation("10.0.0.1,fd00::1"),
            ],
            expect: vec![(
                "ns/s",
                Error(
                    "IPs 10.0.0.1 and fd00::1 are in different pools (\"a\" and \"b\"); all IPs of a service come from one pool",
                ),
            )],
            ..Case::default()
        },
    ]);
}

#[test]
fn requested_pool() {
    run_cases(vec![
        Case {
            name: "only that pool, even with autoAssign=false",
            pools: vec![
                pool("a", &["10.0.0.0/30"]),
                pool("m", &["10.0.5.0/30"]).manual(),
            ],
            services: vec![Svc::new("ns/s").pool("m")],
            expect: vec![("ns/s", Ips("m", &["10.0.5.0"]))],
            ..Case::default()
        },
        Case {
            name: "an unknown pool",
            pools: vec![pool("a", &["10.0.0.0/30"])],
            services: vec![Svc::new("ns/s").pool("nope")],
            expect: vec![("ns/s", Error("pool \"nope\" does not exist"))],
            ..Case::default()
        },
        Case {
            name: "an address outside the requested pool",
            pools: vec![pool("a", &["10.0.0.0/30"]), pool("b", &["10.0.1.0/30"])],
            services: vec![Svc::new("ns/s").pool("b").ips_annotation("10.0.0.1")],
            expect: vec![(
                "ns/s",
                Error("IP(s) 10.0.0.1 are in pool \"a\", not in the requested pool \"b\""),
            )],
            ..Case::default()
        },
        Case {
            name: "the requested pool is full",
            pools: vec![pool("a", &["10.0.0.0/30"]), pool("b", &["10.0.1.0/32"])],
            services: vec![
                Svc::new("ns/s1").pool("b").created(1),
                Svc::new("ns/s2").pool("b").created(2),
            ],
            expect: vec![
                ("ns/s1", Ips("b", &["10.0.1.0"])),
                ("ns/s2", Error("no available IPs in pool \"b\"")),
            ],
            ..Case::default()
        },
        Case {
            name: "legacy pool annotation, with a warning",
            pools: vec![pool("a", &["10.0.0.0/30"]), pool("b", &["10.0.1.0/30"])],
            services: vec![Svc::new("ns/s").annotation("metallb.universe.tf/address-pool", "b")],
            expect: vec![("ns/s", Ips("b", &["10.0.1.0"]))],
            warnings: vec![(
                "ns/s",
                "annotation metallb.universe.tf/address-pool is deprecated",
            )],
            ..Case::default()
        },
        Case {
            name: "a requested pool lacking a required family",
            pools: vec![pool("a", &["10.0.0.0/30"])],
            services: vec![Svc::new("ns/s").pool("a").policy("RequireDualStack")],
            expect: vec![("ns/s", Error("pool \"a\" has no IPv6 addresses"))],
            ..Case::default()
        },
        Case {
            name: "a requested pool reserved for others",
            pools: vec![pool("team", &["10.0.0.0/30"]).allocation(alloc(0, &["team"]))],
            services: vec![Svc::new("ns/s").pool("team")],
            expect: vec![(
                "ns/s",
                Error(
                    "pool \"team\" is reserved by its serviceAllocation for other namespaces or services",
                ),
            )],
            ..Case::default()
        },
    ]);
}

#[test]
fn families_and_dual_stack() {
    let dual = || pool("dual", &["10.0.0.0/30", "fd00::/126"]);
    run_cases(vec![
        Case {
            name: "spec.ipFamilies chooses the family",
            pools: vec![dual()],
            services: vec![Svc::new("ns/s").families(&["IPv6"])],
            expect: vec![("ns/s", Ips("dual", &["fd00::"]))],
            ..Case::default()
        },
        Case {
            name: "else spec.clusterIPs",
            pools: vec![dual()],
            services: vec![Svc::new("ns/s").spec("clusterIPs", serde_json::json!(["fd99::1"]))],
            expect: vec![("ns/s", Ips("dual", &["fd00::"]))],
            ..Case::default()
        },
        Case {
            name: "else IPv4",
            pools: vec![dual()],
            services: vec![Svc::new("ns/s")],
            expect: vec![("ns/s", Ips("dual", &["10.0.0.0"]))],
            ..Case::default()
        },
        Case {
            name: "RequireDualStack takes both, primary family first",
            pools: vec![dual()],
            services: vec![
                Svc::new("ns/v4first").policy("RequireDualStack"),
                Svc::new("ns/v6first")
                    .policy("RequireDualStack")
                    .families(&["IPv6", "IPv4"]),
            ],
            expect: vec![
                ("ns/v4first", Ips("dual", &["10.0.0.0", "fd00::"])),
                ("ns/v6first", Ips("dual", &["fd00::1", "10.0.0.1"])),
            ],
            ..Case::default()
        },
        Case {
            name: "RequireDualStack skips pools with one family",
            pools: vec![pool("a-v4", &["10.0.9.0/30"]), dual()],
            services: vec![Svc::new("ns/s").policy("RequireDualStack")],
            expect: vec![("ns/s", Ips("dual", &["10.0.0.0", "fd00::"]))],
            ..Case::default()
        },
        Case {
            name: "RequireDualStack without a dual-stack pool",
            pools: vec![
                pool("a-v4", &["10.0.9.0/30"]),
                pool("b-v6", &["fd00::/126"]),
            ],
            services: vec![Svc::new("ns/s").policy("RequireDualStack")],
            expect: vec![(
                "ns/s",
                Error("RequireDualStack needs a pool with both IPv4 and IPv6 addresses"),
            )],
            ..Case::default()
        },
        Case {
            name: "RequireDualStack when the dual-stack pool is full",
            pools: vec![pool("dual", &["10.0.0.0/32", "fd00::/126"])],
            services: vec![
                Svc::new("ns/a").created(1),
                Svc::new("ns/b").policy("RequireDualStack").created(2),
            ],
            expect: vec![
                ("ns/a", Ips("dual", &["10.0.0.0"])),
                ("ns/b", Error("no available IPs")),
            ],
            ..Case::default()
        },
        Case {
            name: "PreferDualStack takes both from one pool when it can",
            pools: vec![pool("a-v4", &["10.0.9.0/30"]), dual()],
            services: vec![Svc::new("ns/s").policy("PreferDualStack")],
            expect: vec![("ns/s", Ips("dual", &["10.0.0.0", "fd00::"]))],
            ..Case::default()
        },
        Case {
            name: "PreferDualStack takes the primary family alone otherwise",
            pools: vec![
                pool("a-v6", &["fd00::/126"]),
                pool("b-v4", &["10.0.9.0/30"]),
            ],
            services: vec![
                Svc::new("ns/v4").policy("PreferDualStack"),
                Svc::new("ns/v6")
                    .policy("PreferDualStack")
                    .families(&["IPv6", "IPv4"]),
            ],
            expect: vec![
                ("ns/v4", Ips("b-v4", &["10.0.9.0"])),
                ("ns/v6", Ips("a-v6", &["fd00::"])),
            ],
            ..Case::default()
        },
        Case {
            name: "PreferDualStack takes the other family when the primary has no room",
            pools: vec![pool("v6", &["fd00::/126"])],
            services: vec![Svc::new("ns/s").policy("PreferDualStack")],
            expect: vec![("ns/s", Ips("v6", &["fd00::"]))],
            ..Case::default()
        },
        Case {
            name: "PreferDualStack adds the missing family from the same pool later",
            pools: vec![
                pool("dual", &["10.0.0.0/30", "fd00::/128"]),
                pool("z", &["fd00::9/128"]),
            ],
            services: vec![Svc::new("ns/s").policy("PreferDualStack")],
            previous: vec![("ns/s", &["10.0.0.2"])],
            expect: vec![("ns/s", Ips("dual", &["10.0.0.2", "fd00::"]))],
            ..Case::default()
        },
    ]);
}

#[test]
fn sharing() {
    let p = || pool("p", &["10.0.0.0/29"]);
    run_cases(vec![
        Case {
            name: "same key, different ports: one address",
            pools: vec![p()],
            services: vec![
                Svc::new("ns/a").share("k").ports(&["TCP/80"]),
                Svc::new("ns/b").share("k").ports(&["TCP/443"]),
            ],
            expect: vec![
                ("ns/a", Ips("p", &["10.0.0.0"])),
                ("ns/b", Ips("p", &["10.0.0.0"])),
            ],
            ..Case::default()
        },
        Case {
            name: "same key, a common port: two addresses",
            pools: vec![p()],
            services: vec![
                Svc::new("ns/a").share("k").ports(&["TCP/80", "TCP/443"]),
                Svc::new("ns/b").share("k").ports(&["TCP/443"]),
            ],
            expect: vec![
                ("ns/a", Ips("p", &["10.0.0.0"])),
                ("ns/b", Ips("p", &["10.0.0.1"])),
            ],
            ..Case::default()
        },
        Case {
            name: "the same port number over TCP and UDP does not clash",
            pools: vec![p()],
            services: vec![
                Svc::new("ns/a").share("dns").ports(&["TCP/53"]),
                Svc::new("ns/b").share("dns").ports(&["UDP/53"]),
            ],
            expect: vec![
                ("ns/a", Ips("p", &["10.0.0.0"])),
                ("ns/b", Ips("p", &["10.0.0.0"])),
            ],
            ..Case::default()
        },
        Case {
            name: "a port without protocol is TCP",
            pools: vec![p()],
            services: vec![
                Svc::new("ns/a")
                    .share("k")
                    .spec("ports", serde_json::json!([{"port": 80}])),
                Svc::new("ns/b").share("k").ports(&["TCP/80"]),
            ],
            expect: vec![
                ("ns/a", Ips("p", &["10.0.0.0"])),
                ("ns/b", Ips("p", &["10.0.0.1"])),
            ],
            ..Case::default()
        },
        Case {
            name: "different keys: two addresses",
            pools: vec![p()],
            services: vec![
                Svc::new("ns/a").share("k1").ports(&["TCP/80"]),
                Svc::new("ns/b").share("k2").ports(&["TCP/443"]),
            ],
            expect: vec![
                ("ns/a", Ips("p", &["10.0.0.0"])),
                ("ns/b", Ips("p", &["10.0.0.1"])),
            ],
            ..Case::default()
        },
        Case {
            name: "Cluster and Local never share",
            pools: vec![p()],
            services: vec![
                Svc::new("ns/a").share("k").ports(&["TCP/80"]),
                Svc::new("ns/b").share("k").ports(&["TCP/443"]).local(&[]),
            ],
            expect: vec![
                ("ns/a", Ips("p", &["10.0.0.0"])),
                ("ns/b", Ips("p", &["10.0.0.1"])),
            ],
            ..Case::default()
        },
        Case {
            name: "Local services share only with the same selector",
            pools: vec![p()],
            services: vec![
                Svc::new("ns/a")
                    .share("k")
                    .ports(&["TCP/80"])
                    .local(&[("app", "x")]),
                Svc::new("ns/b")
                    .share("k")
                    .ports(&["TCP/443"])
                    .local(&[("app", "x")]),
                Svc::new("ns/c")
                    .share("k")
                    .ports(&["TCP/8080"])
                    .local(&[("app", "y")]),
            ],
            expect: vec![
                ("ns/a", Ips("p", &["10.0.0.0"])),
                ("ns/b", Ips("p", &["10.0.0.0"])),
                ("ns/c", Ips("p", &["10.0.0.1"])),
            ],
            ..Case::default()
        },
        Case {
            name: "a new sharer lands on the shared address when it is lower",
            pools: vec![p()],
            services: vec![
                Svc::new("ns/a").share("k").ports(&["TCP/80"]).created(1),
                Svc::new("ns/b").created(2),
                Svc::new("ns/c").share("k").ports(&["TCP/443"]).created(3),
            ],
            expect: vec![
                ("ns/a", Ips("p", &["10.0.0.0"])),
                ("ns/b", Ips("p", &["10.0.0.1"])),
                ("ns/c", Ips("p", &["10.0.0.0"])),
            ],
            ..Case::default()
        },
        Case {
            name: "a new sharer takes a lower free address over a higher shared one",
            pools: vec![p()],
            services: vec![
                Svc::new("ns/a")
                    .share("k")
                    .ports(&["TCP/80"])
                    .ips_annotation("10.0.0.5"),
                Svc::new("ns/c").share("k").ports(&["TCP/443"]),
            ],
            expect: vec![
                ("ns/a", Ips("p", &["10.0.0.5"])),
                ("ns/c", Ips("p", &["10.0.0.0"])),
            ],
            ..Case::default()
        },
        Case {
            name: "two requests for one address with the same key",
            pools: vec![p()],
            services: vec![
                Svc::new("ns/a")
                    .share("k")
                    .ports(&["TCP/80"])
                    .ips_annotation("10.0.0.5"),
                Svc::new("ns/b")
                    .share("k")
                    .ports(&["TCP/443"])
                    .ips_annotation("10.0.0.5"),
            ],
            expect: vec![
                ("ns/a", Ips("p", &["10.0.0.5"])),
                ("ns/b", Ips("p", &["10.0.0.5"])),
            ],
            ..Case::default()
        },
        Case {
            name: "a request clashing on a port",
            pools: vec![p()],
            services: vec![
                Svc::new("ns/a")
                    .share("k")
                    .ports(&["TCP/80"])
                    .ips_annotation("10.0.0.5")
                    .created(1),
                Svc::new("ns/b")
                    .share("k")
                    .ports(&["TCP/80"])
                    .ips_annotation("10.0.0.5")
                    .created(2),
            ],
            expect: vec![
                ("ns/a", Ips("p", &["10.0.0.5"])),
                (
                    "ns/b",
                    Error(
                        "IP 10.0.0.5 is already in use by ns/a and cannot be shared: both use port TCP/80",
                    ),
                ),
            ],
            ..Case::default()
        },
        Case {
            name: "dual-stack sharers share both addresses",
            pools: vec![pool("d", &["10.0.0.0/30", "fd00::/126"])],
            services: vec![
                Svc::new("ns/a")
                    .policy("RequireDualStack")
                    .share("k")
                    .ports(&["TCP/80"]),
                Svc::new("ns/b")
                    .policy("RequireDualStack")
                    .share("k")
                    .ports(&["TCP/443"]),
            ],
            expect: vec![
                ("ns/a", Ips("d", &["10.0.0.0", "fd00::"])),
                ("ns/b", Ips("d", &["10.0.0.0", "fd00::"])),
            ],
            ..Case::default()
        },
        Case {
            name: "legacy sharing key, with a warning",
            pools: vec![p()],
            services: vec![
                Svc::new("ns/a")
                    .annotation("metallb.universe.tf/allow-shared-ip", "k")
                    .ports(&["TCP/80"]),
                Svc::new("ns/b").share("k").ports(&["TCP/443"]),
            ],
            expect: vec![
                ("ns/a", Ips("p", &["10.0.0.0"])),
                ("ns/b", Ips("p", &["10.0.0.0"])),
            ],
            warnings: vec![(
                "ns/a",
                "annotation metallb.universe.tf/allow-shared-ip is deprecated",
            )],
            ..Case::default()
        },
    ]);
}

#[test]
fn held_addresses() {
    let p = || pool("p", &["10.0.0.0/29"]);
    run_cases(vec![
        Case {
            name: "a status address is kept though a lower one is free",
            pools: vec![p()],
            services: vec![Svc::new("ns/a").status(&["10.0.0.3"])],
            expect: vec![("ns/a", Ips("p", &["10.0.0.3"]))],
            ..Case::default()
        },
        Case {
            name: "a remembered address is kept",
            pools: vec![p()],
            services: vec![Svc::new("ns/a")],
            previous: vec![("ns/a", &["10.0.0.6"])],
            expect: vec![("ns/a", Ips("p", &["10.0.0.6"]))],
            ..Case::default()
        },
        Case {
            name: "holders are placed before older new services",
            pools: vec![p()],
            services: vec![
                Svc::new("ns/old").created(1),
                Svc::new("ns/holder").created(2).status(&["10.0.0.0"]),
            ],
            expect: vec![
                ("ns/old", Ips("p", &["10.0.0.1"])),
                ("ns/holder", Ips("p", &["10.0.0.0"])),
            ],
            ..Case::default()
        },
        Case {
            name: "new services by creation time, missing last, then by name",
            pools: vec![p()],
            services: vec![
                Svc::new("ns/none"),
                Svc::new("ns/b").created(5),
                Svc::new("ns/a").created(5),
                Svc::new("ns/first").created(1),
            ],
            expect: vec![
                ("ns/first", Ips("p", &["10.0.0.0"])),
                ("ns/a", Ips("p", &["10.0.0.1"])),
                ("ns/b", Ips("p", &["10.0.0.2"])),
                ("ns/none", Ips("p", &["10.0.0.3"])),
            ],
            ..Case::default()
        },
        Case {
            name: "a status address outside every pool is replaced, with a warning",
            pools: vec![p()],
            services: vec![Svc::new("ns/a").status(&["192.0.2.1"])],
            expect: vec![("ns/a", Ips("p", &["10.0.0.0"]))],
            warnings: vec![(
                "ns/a",
                "status IP(s) 192.0.2.1 cannot be kept: IP 192.0.2.1 is not in any pool",
            )],
            ..Case::default()
        },
        Case {
            name: "a changed pool annotation reallocates",
            pools: vec![p(), pool("q", &["10.0.1.0/29"])],
            services: vec![Svc::new("ns/a").pool("q").status(&["10.0.0.3"])],
            expect: vec![("ns/a", Ips("q", &["10.0.1.0"]))],
            ..Case::default()
        },
        Case {
            name: "a changed requested address reallocates",
            pools: vec![p()],
            services: vec![
                Svc::new("ns/a")
                    .ips_annotation("10.0.0.5")
                    .status(&["10.0.0.3"]),
            ],
            expect: vec![("ns/a", Ips("p", &["10.0.0.5"]))],
            ..Case::default()
        },
        Case {
            name: "two services claiming one address: the older keeps it",
            pools: vec![p()],
            services: vec![
                Svc::new("ns/young").created(9).status(&["10.0.0.4"]),
                Svc::new("ns/old").created(1).status(&["10.0.0.4"]),
            ],
            expect: vec![
                ("ns/old", Ips("p", &["10.0.0.4"])),
                ("ns/young", Ips("p", &["10.0.0.0"])),
            ],
            warnings: vec![("ns/young", "10.0.0.4 is in use by another service")],
            ..Case::default()
        },
        Case {
            name: "an address of a pool no longer allowed is replaced",
            pools: vec![
                pool("open", &["10.0.1.0/29"]),
                pool("team", &["10.0.0.0/29"]).allocation(alloc(0, &["team"])),
            ],
            services: vec![Svc::new("ns/a").status(&["10.0.0.2"])],
            expect: vec![("ns/a", Ips("open", &["10.0.1.0"]))],
            ..Case::default()
        },
        Case {
            name: "an address of the wrong family is replaced",
            pools: vec![pool("d", &["10.0.0.0/30", "fd00::/126"])],
            services: vec![Svc::new("ns/a").families(&["IPv6"]).status(&["10.0.0.2"])],
            expect: vec![("ns/a", Ips("d", &["fd00::"]))],
            ..Case::default()
        },
        Case {
            name: "a remembered address wins over a different status",
            pools: vec![p()],
            services: vec![Svc::new("ns/a").status(&["10.0.0.3"])],
            previous: vec![("ns/a", &["10.0.0.6"])],
            expect: vec![("ns/a", Ips("p", &["10.0.0.6"]))],
            ..Case::default()
        },
    ]);
}

#[test]
fn odd_services_do_not_panic() {
    let p = || pool("p", &["10.0.0.0/29"]);
    run_cases(vec![Case {
        name: "bad status, odd ports, no spec details",
        pools: vec![p()],
        services: vec![
            Svc::new("ns/bad-status").status(&["not-an-ip", ""]),
            Svc::new("ns/odd-ports").ports(&["TCP/-1", "TCP/0", "BOGUS/99999", "TCP/0"]),
            Svc::new("ns/unknown-policy")
                .policy("TripleStack")
                .families(&["IPv5"]),
            Svc::new("ns/empty-annotations")
                .ips_annotation("")
                .pool("")
                .share(""),
            Svc::new("ns/bad-cluster-ip").spec("clusterIPs", serde_json::json!(["None", "x"])),
            Svc::new("ns/mapped").ips_annotation("::ffff:10.0.0.6"),
            Svc::new("ns/trailing-comma").ips_annotation("10.0.0.7,"),
        ],
        expect: vec![
            ("ns/bad-cluster-ip", Ips("p", &["10.0.0.0"])),
            ("ns/bad-status", Ips("p", &["10.0.0.1"])),
            ("ns/empty-annotations", Ips("p", &["10.0.0.2"])),
            ("ns/mapped", Ips("p", &["10.0.0.6"])),
            ("ns/odd-ports", Ips("p", &["10.0.0.3"])),
            ("ns/unknown-policy", Ips("p", &["10.0.0.4"])),
            (
                "ns/trailing-comma",
                Error("invalid metallb.io/loadBalancerIPs: \"\" is not an IP address"),
            ),
        ],
        warnings: vec![
            (
                "ns/bad-status",
                "ignoring status.loadBalancer.ingress IP \"not-an-ip\"",
            ),
            (
                "ns/unknown-policy",
                "unknown spec.ipFamilyPolicy \"TripleStack\"",
            ),
            (
                "ns/unknown-policy",
                "ignoring unknown spec.ipFamilies entry \"IPv5\"",
            ),
        ],
        ..Case::default()
    }]);
}

#[test]
fn bare_service_objects_do_not_panic() {
    let config = config(vec![pool("p", &["10.0.0.0/30"])]);
    let services: Vec<k8s_openapi::api::core::v1::Service> = vec![
        serde_json::from_value(serde_json::json!({"metadata": {}})).unwrap(),
        serde_json::from_value(
            serde_json::json!({"metadata": {}, "spec": {"type": "LoadBalancer"}}),
        )
        .unwrap(),
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x"},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}}
        }))
        .unwrap(),
    ];
    let snap = ferrolb_model::Snapshot {
        services,
        ..Default::default()
    };
    let outcome = run(&config, &snap);
    assert_eq!(outcome.results.len(), 2);
    assert_eq!(result(&outcome, "default/").ips, ips(&["10.0.0.0"]));
    assert_eq!(result(&outcome, "default/x").ips, ips(&["10.0.0.1"]));
}

#[test]
fn duplicate_services_count_once() {
    let config = config(vec![pool("p", &["10.0.0.0/30"])]);
    let snap = snapshot(&[Svc::new("ns/a"), Svc::new("ns/a").pool("nope")]);
    let outcome = run(&config, &snap);
    assert_eq!(outcome.results.len(), 1);
    assert_eq!(result(&outcome, "ns/a").ips, ips(&["10.0.0.0"]));
}

#[test]
fn error_event_reason() {
    let e = ferrolb_allocator::AllocationError::NoAvailableIps;
    assert_eq!(e.reason(), "AllocationFailed");
    assert_eq!(ferrolb_allocator::EVENT_REASON, "AllocationFailed");
}
