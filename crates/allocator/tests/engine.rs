//! The incremental [`Allocator`]: sequences of assign/keep/release as a controller would
//! make them (after MetalLB's TestAssignment and TestPoolAllocation), queries and pool
//! usage.

mod common;

use common::*;
use ferrolb_allocator::{
    AllocationError, Allocator, Backend, FamilyPolicy, Options, Port, Request, Sharing,
    SharingConflict, allocate,
};
use std::collections::BTreeMap;

fn port(p: &str) -> Port {
    let (protocol, n) = p.split_once('/').expect("PROTO/port");
    Port {
        protocol: ferrolb_allocator::Protocol::parse(Some(protocol)),
        port: n.parse().expect("port"),
    }
}

/// A SingleStack IPv4 request of `ns/name` with ports and an optional sharing key.
fn req(name: &str, share: Option<(&str, &str)>, ports: &[&str]) -> Request {
    let mut ports: Vec<Port> = ports.iter().map(|p| port(p)).collect();
    ports.sort();
    Request {
        service: key(&format!("ns/{name}")),
        primary: ferrolb_allocator::Family::V4,
        policy: FamilyPolicy::SingleStack,
        requested_ips: Vec::new(),
        pool: None,
        sharing: share.map(|(k, backend)| Sharing {
            key: k.to_string(),
            backend: if backend.is_empty() {
                Backend::Cluster
            } else {
                Backend::Local(backend.to_string())
            },
        }),
        ports,
        labels: BTreeMap::new(),
        namespace_labels: None,
    }
}

fn from_service(svc: Svc) -> Request {
    let (r, _) = Request::from_service(&svc.build(), None);
    r.expect("valid request")
}

#[test]
fn keep_sequence_like_metallb_test_assignment() {
    let mut a = Allocator::new(&config(vec![
        pool("test", &["1.2.3.4/31", "1000::4/127"]),
        pool("test2", &["1.2.4.0/24", "1000::4:0/120"]).avoid_buggy(),
    ]));
    let s = |name: &str| req(name, None, &["TCP/8080"]);
    let held = |a: &Allocator, name: &str| {
        a.assignment(&key(&format!("ns/{name}")))
            .map(|x| x.ips.clone())
            .unwrap_or_default()
    };

    assert!(a.keep(&s("s1"), &ips(&["1.2.3.4"])).is_ok(), "assign s1");
    assert!(a.keep(&s("s1"), &ips(&["1.2.3.4"])).is_ok(), "idempotent");
    assert!(
        a.keep(&s("s2"), &ips(&["1.2.3.4"])).is_err(),
        "s2 can't grab s1's IP"
    );
    assert!(a.keep(&s("s2"), &ips(&["1.2.3.5"])).is_ok());
    assert!(a.keep(&s("s1"), &ips(&["1.2.3.5"])).is_err());
    assert_eq!(
        held(&a, "s1"),
        ips(&["1.2.3.4"]),
        "a failed keep changes nothing"
    );
    a.release(&key("ns/s1"));
    assert!(a.keep(&s("s2"), &ips(&["1.2.3.4"])).is_ok(), "s2 moves");
    assert!(
        a.keep(&s("s1"), &ips(&["1.2.3.5"])).is_ok(),
        "s2's former IP is free"
    );
    for buggy in ["1.2.4.0", "1.2.4.255"] {
        assert!(matches!(
            a.keep(&s("s3"), &ips(&[buggy])),
            Err(AllocationError::BuggyIp { .. })
        ));
    }
    assert!(a.keep(&s("s3"), &ips(&["1.2.4.254"])).is_ok());

    let s4 = |k: &str| req("s4", Some((k, "")), &["TCP/80"]);
    assert!(a.keep(&s4("sharing"), &ips(&["1.2.4.3"])).is_ok());
    assert!(
        a.keep(&s4("share"), &ips(&["1.2.4.3"])).is_ok(),
        "key changed in place"
    );
    let s3 = |k: &str, backend: &str, p: &str| req("s3", Some((k, backend)), &[p]);
    let err = a
        .keep(&s3("share", "", "TCP/80"), &ips(&["1.2.4.3"]))
        .unwrap_err();
    assert_eq!(
        err,
        AllocationError::IpInUse {
            ip: ip("1.2.4.3"),
            holder: key("ns/s4"),
            reason: SharingConflict::PortInUse(port("TCP/80")),
        }
    );
    assert!(
        a.keep(&s3("othershare", "", "TCP/443"), &ips(&["1.2.4.3"]))
            .is_err()
    );
    assert!(
        a.keep(&s3("share", "app=x", "TCP/443"), &ips(&["1.2.4.3"]))
            .is_err()
    );
    assert!(
        a.keep(&s3("share", "", "TCP/443"), &ips(&["1.2.4.3"]))
            .is_ok()
    );
    assert_eq!(a.holders(ip("1.2.4.3")), vec![key("ns/s4"), key("ns/s3")]);
    assert!(
        a.keep(&s3("share", "", "UDP/53"), &ips(&["1.2.4.3"]))
            .is_ok(),
        "ports change in place"
    );
    assert!(
        a.keep(&s3("othershare", "", "UDP/53"), &ips(&["1.2.4.3"]))
            .is_err(),
        "no key change while shared"
    );
    assert!(
        a.keep(&s4("share"), &ips(&["1.2.4.254"])).is_ok(),
        "s4 takes s3's old IP"
    );
    assert_eq!(a.holders(ip("1.2.4.3")), vec![key("ns/s3")]);
    assert_eq!(a.holders(ip("1.2.4.254")), vec![key("ns/s4")]);

    // Dual stack: both addresses from one pool.
    let mut dual = req("d", None, &["TCP/80"]);
    dual.policy = FamilyPolicy::RequireDualStack;
    a.release(&key("ns/s2"));
    assert!(a.keep(&dual, &ips(&["1.2.3.4", "1000::4"])).is_ok());
    assert!(matches!(
        a.keep(&dual, &ips(&["1.2.4.5", "1000::4"])),
        Err(AllocationError::DifferentPools { .. })
    ));
}

#[test]
fn assign_sequence_like_metallb_test_pool_allocation() {
    let mut a = Allocator::new(&config(vec![
        pool("not_this_one", &["192.168.0.0/16", "fc00::1:0/112"]),
        pool(
            "test",
            &["1.2.3.4/31", "1.2.3.10/31", "1000::/127", "2000::/127"],
        ),
    ]));
    let s = |name: &str| {
        let mut r = req(name, None, &[]);
        r.pool = Some("test".into());
        r
    };
    let mut got = Vec::new();
    for name in ["s1", "s2", "s3", "s4"] {
        got.extend(a.assign(&s(name)).expect("room").ips);
    }
    assert_eq!(got, ips(&["1.2.3.4", "1.2.3.5", "1.2.3.10", "1.2.3.11"]));
    for name in ["s5", "s6"] {
        assert_eq!(
            a.assign(&s(name)),
            Err(AllocationError::NoAvailableIpsInPool("test".into()))
        );
    }
    assert_eq!(
        a.release(&key("ns/s1")).map(|x| x.ips),
        Some(ips(&["1.2.3.4"]))
    );
    assert_eq!(a.assign(&s("s5")).map(|x| x.ips), Ok(ips(&["1.2.3.4"])));
    assert!(a.assign(&s("s6")).is_err());

    // With sharing: s5 re-created with a key, s6 joins it.
    a.release(&key("ns/s5"));
    let mut s5 = req("s5", Some(("share", "")), &["TCP/80"]);
    s5.pool = Some("test".into());
    let mut s6 = req("s6", Some(("share", "")), &["TCP/443"]);
    s6.pool = Some("test".into());
    assert_eq!(a.assign(&s5).map(|x| x.ips), Ok(ips(&["1.2.3.4"])));
    assert_eq!(a.assign(&s6).map(|x| x.ips), Ok(ips(&["1.2.3.4"])));

    // IPv6, then PreferDualStack from the same pool.
    let mut v6 = req("v6", None, &[]);
    v6.primary = ferrolb_allocator::Family::V6;
    v6.pool = Some("test".into());
    assert_eq!(a.assign(&v6).map(|x| x.ips), Ok(ips(&["1000::"])));
    let mut prefer = req("prefer", None, &[]);
    prefer.policy = FamilyPolicy::PreferDualStack;
    prefer.pool = Some("test".into());
    assert_eq!(
        a.assign(&prefer).map(|x| x.ips),
        Ok(ips(&["1000::1"])),
        "no IPv4 left: IPv6 alone"
    );
    a.release(&key("ns/s2"));
    assert_eq!(
        a.assign(&prefer).map(|x| x.ips),
        Ok(ips(&["1.2.3.5", "1000::1"])),
        "the missing family is added, the held address kept"
    );

    let mut unknown = req("u", None, &[]);
    unknown.pool = Some("nonexistentpool".into());
    assert_eq!(
        a.assign(&unknown),
        Err(AllocationError::UnknownPool("nonexistentpool".into()))
    );
}

#[test]
fn assign_keeps_what_is_still_valid_and_moves_what_is_not() {
    let mut a = Allocator::new(&config(vec![
        pool("a", &["10.0.0.0/29"]),
        pool("b", &["10.0.1.0/29"]),
    ]));
    let first = from_service(Svc::new("ns/x"));
    assert_eq!(a.assign(&first).map(|x| x.ips), Ok(ips(&["10.0.0.0"])));
    let other = from_service(Svc::new("ns/y"));
    assert_eq!(a.assign(&other).map(|x| x.ips), Ok(ips(&["10.0.0.1"])));
    a.release(&key("ns/x"));
    assert_eq!(
        a.assign(&other).map(|x| x.ips),
        Ok(ips(&["10.0.0.1"])),
        "a held address is kept though a lower one is free"
    );
    let moved = from_service(Svc::new("ns/y").pool("b"));
    assert_eq!(
        a.assign(&moved),
        Ok(ferrolb_allocator::Assignment {
            pool: "b".into(),
            ips: ips(&["10.0.1.0"])
        })
    );
    let requested = from_service(Svc::new("ns/y").ips_annotation("10.0.0.7"));
    assert_eq!(a.assign(&requested).map(|x| x.ips), Ok(ips(&["10.0.0.7"])));
    let bad = from_service(Svc::new("ns/y").ips_annotation("192.0.2.1"));
    assert_eq!(
        a.assign(&bad),
        Err(AllocationError::NotInAnyPool(ip("192.0.2.1")))
    );
    assert!(
        a.assignment(&key("ns/y")).is_none(),
        "on error nothing is held"
    );
    assert!(a.is_empty());
}

#[test]
fn check_keep_changes_nothing() {
    let mut a = Allocator::new(&config(vec![pool("a", &["10.0.0.0/29"])]));
    let x = from_service(Svc::new("ns/x"));
    assert!(a.check_keep(&x, &ips(&["10.0.0.3"])).is_ok());
    assert!(a.is_empty());
    a.keep(&x, &ips(&["10.0.0.3"])).expect("keep");
    let y = from_service(Svc::new("ns/y"));
    assert!(a.check_keep(&y, &ips(&["10.0.0.3"])).is_err());
    assert!(a.check_keep(&x, &ips(&["10.0.0.3"])).is_ok());
    assert_eq!(a.len(), 1);
}

#[test]
fn pool_usage_and_queries() {
    let mut a = Allocator::new(&config(vec![
        pool("v4", &["10.0.0.0/24", "10.0.1.0/30"]).avoid_buggy(),
        pool("v6", &["fd00::/64"]),
        pool("huge", &["::/0"]).manual(),
        pool("edge", &["10.9.0.255/32", "10.9.1.0/31"]).avoid_buggy(),
    ]));
    let u = a.usage("v4").expect("pool");
    assert_eq!((u.assigned_ipv4, u.available_ipv4), (0, 254 + 3));
    assert_eq!(a.usage("v6").map(|u| u.available_ipv6), Some(1u128 << 64));
    assert_eq!(a.usage("huge").map(|u| u.available_ipv6), Some(u128::MAX));
    assert_eq!(a.usage("edge").map(|u| u.available_ipv4), Some(1));
    assert_eq!(a.usage("nope"), None);

    let mut x = req("x", Some(("k", "")), &["TCP/80"]);
    x.pool = Some("v4".into());
    let mut y = req("y", Some(("k", "")), &["TCP/443"]);
    y.pool = Some("v4".into());
    let mut z = req("z", None, &[]);
    z.pool = Some("v4".into());
    a.assign(&x).expect("x");
    a.assign(&y).expect("y");
    a.assign(&z).expect("z");
    let u = a.usage("v4").expect("pool");
    assert_eq!(
        (u.assigned_ipv4, u.available_ipv4),
        (2, 255),
        "a shared address counts once"
    );
    assert_eq!(a.holders(ip("10.0.0.1")), vec![key("ns/x"), key("ns/y")]);
    assert_eq!(a.pool_of(ip("10.0.1.2")), Some("v4"));
    assert_eq!(a.pool_of(ip("fd00::1:2")), Some("v6"));
    assert_eq!(a.pool_of(ip("2001:db8::1")), Some("huge"));
    assert_eq!(a.pool_of(ip("192.0.2.1")), None);
    assert_eq!(a.usages().len(), 4);

    let status = a.usage("huge").expect("pool").to_status();
    assert_eq!(status.available_ipv6, i64::MAX);
    let status = a.usage("v4").expect("pool").to_status();
    assert_eq!((status.assigned_ipv4, status.available_ipv4), (2, 255));
}

#[test]
fn set_config_keeps_what_still_fits() {
    let mut a = Allocator::new(&config(vec![
        pool("a", &["10.0.0.0/29"]),
        pool("b", &["10.0.1.0/29"]),
    ]));
    let x = from_service(Svc::new("ns/x").pool("a"));
    let y = from_service(Svc::new("ns/y").pool("b"));
    a.assign(&x).expect("x");
    a.assign(&y).expect("y");
    let released = a.set_config(&config(vec![pool("renamed", &["10.0.0.0/28"])]));
    assert_eq!(released, vec![key("ns/y")]);
    assert_eq!(
        a.assignment(&key("ns/x")).map(|x| (x.pool, x.ips)),
        Some(("renamed".to_string(), ips(&["10.0.0.0"])))
    );
    assert_eq!(a.usage("renamed").map(|u| u.assigned_ipv4), Some(1));
    let z = from_service(Svc::new("ns/z"));
    assert_eq!(a.assign(&z).map(|x| x.ips), Ok(ips(&["10.0.0.1"])));
}

#[test]
fn prefer_dual_stack_completes_on_a_later_run() {
    let config = config(vec![pool("dual", &["10.0.0.0/30", "fd00::/128"])]);
    let blocker = Svc::new("ns/blocker").families(&["IPv6"]).created(1);
    let s = Svc::new("ns/s").policy("PreferDualStack").created(2);
    let first = allocate(
        &config,
        &snapshot(&[blocker, s.clone()]),
        &Options::default(),
        &BTreeMap::new(),
    );
    assert_eq!(result(&first, "ns/s").ips, ips(&["10.0.0.0"]));
    let second = allocate(
        &config,
        &snapshot(&[s]),
        &Options::default(),
        &first.assignments(),
    );
    assert_eq!(result(&second, "ns/s").ips, ips(&["10.0.0.0", "fd00::"]));
}

#[test]
fn big_pools_cost_what_small_ones_do() {
    let mut a = Allocator::new(&config(vec![
        pool("v4", &["10.0.0.0/8"]).avoid_buggy(),
        pool("v6", &["fd00::/64"]),
    ]));
    let n = 20_000u32;
    for i in 0..n {
        let mut r = req(&format!("s{i}"), None, &[]);
        r.pool = Some("v4".into());
        a.assign(&r).expect("room");
    }
    // 20000 addresses skipping .0 and .255: the last one is in the 79th /24.
    let last = a.assignment(&key(&format!("ns/s{}", n - 1))).expect("held");
    assert_eq!(last.ips, ips(&["10.0.78.188"]));
    // Free a few in the middle: they are reused lowest first.
    for i in [5_000u32, 7, 12_345] {
        a.release(&key(&format!("ns/s{i}")));
    }
    let mut r = req("again", None, &[]);
    r.pool = Some("v4".into());
    assert_eq!(a.assign(&r).map(|x| x.ips), Ok(ips(&["10.0.0.8"])));
    let u = a.usage("v4").expect("pool");
    assert_eq!(u.assigned_ipv4, u128::from(n) - 2);
    assert_eq!(
        u.available_ipv4,
        (1u128 << 24) - 2 * (1 << 16) - u.assigned_ipv4
    );

    let mut v6 = req("v6", None, &[]);
    v6.primary = ferrolb_allocator::Family::V6;
    v6.requested_ips = ips(&["fd00::ffff:ffff:ffff:ffff"]);
    assert!(a.assign(&v6).is_ok(), "the top of a /64");
    v6.requested_ips.clear();
    v6.service = key("ns/v6b");
    assert_eq!(a.assign(&v6).map(|x| x.ips), Ok(ips(&["fd00::"])));
}

#[test]
fn warnings_say_whether_they_are_deprecations() {
    use ferrolb_allocator::WarningKind::{Deprecated, Ignored};
    let svc = Svc::new("ns/x")
        .annotation("metallb.universe.tf/address-pool", "a")
        .annotation("metallb.universe.tf/allow-shared-ip", "k")
        .spec("loadBalancerIP", serde_json::json!("10.0.0.7"))
        .policy("Sometimes");
    let (request, warnings) = Request::from_service(&svc.build(), None);
    assert!(request.is_ok(), "{request:?}");
    let kinds: Vec<_> = warnings.iter().map(|w| (w.kind, w.to_string())).collect();
    assert_eq!(
        kinds,
        vec![
            (
                Ignored,
                "unknown spec.ipFamilyPolicy \"Sometimes\"; treated as SingleStack".to_string()
            ),
            (
                Deprecated,
                "spec.loadBalancerIP is deprecated; use the metallb.io/loadBalancerIPs annotation"
                    .to_string()
            ),
            (
                Deprecated,
                "annotation metallb.universe.tf/address-pool is deprecated; use metallb.io/address-pool"
                    .to_string()
            ),
            (
                Deprecated,
                "annotation metallb.universe.tf/allow-shared-ip is deprecated; use metallb.io/allow-shared-ip"
                    .to_string()
            ),
        ]
    );
    // The whole run keeps them as text.
    let snap = snapshot(&[svc]);
    let outcome = run(&config(vec![pool("a", &["10.0.0.0/29"])]), &snap);
    assert_eq!(result(&outcome, "ns/x").warnings.len(), 4);
}
