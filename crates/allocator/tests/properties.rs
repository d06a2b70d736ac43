//! Properties of [`allocate`] over random configurations and Services: addresses are
//! never given to two Services unless they may share; every address is one the Service
//! may have; allocating again from the outcome changes nothing; adding or removing a
//! Service never moves another one's addresses.

mod common;

use common::*;
use ferrolb_allocator::{Family, FamilyPolicy, Options, Outcome, Request, ServiceKey, allocate};
use ferrolb_model::{Config, Pool, PoolAllocation, Snapshot};
use ipnet::IpNet;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Pool shapes: small, so that pools fill up, share buggy boundaries and mix families.
const SHAPES: &[(&str, &[&str])] = &[
    ("a", &["10.0.0.0/29", "fd00::/126"]),
    ("b", &["10.0.1.254/31", "10.0.2.0/31"]),
    ("c", &["fd00:1::/127"]),
    ("d", &["10.0.3.0/30", "fd00:2::/127"]),
];

const ADDRESSES: &[&str] = &[
    "10.0.0.0",
    "10.0.0.3",
    "10.0.1.254",
    "10.0.2.0",
    "10.0.3.1",
    "fd00::1",
    "fd00:1::",
    "fd00:2::1",
    "203.0.113.1",
];

fn pool_strategy(index: usize) -> impl Strategy<Value = Pool> {
    let (name, cidrs) = SHAPES[index];
    (
        proptest::bool::weighted(0.8),
        any::<bool>(),
        0..6usize,
        0..3i32,
    )
        .prop_map(move |(auto, avoid, allocation, priority)| {
            let mut p = pool(name, cidrs);
            p.auto_assign = auto;
            p.avoid_buggy_ips = avoid;
            p.allocation = match allocation {
                0 => Some(alloc(priority, &["ns1"])),
                1 => Some(PoolAllocation {
                    service_selectors: vec![selector(&[("team", "red")])],
                    ..alloc(priority, &[])
                }),
                2 => Some(alloc(priority, &[])),
                3 => Some(PoolAllocation {
                    namespace_selectors: vec![selector(&[("env", "prod")])],
                    ..alloc(priority, &[])
                }),
                _ => None,
            };
            p
        })
}

fn config_strategy() -> impl Strategy<Value = Config> {
    (
        pool_strategy(0),
        pool_strategy(1),
        pool_strategy(2),
        pool_strategy(3),
        proptest::sample::subsequence(vec![0usize, 1, 2, 3], 2..=4),
    )
        .prop_map(|(a, b, c, d, keep)| {
            let all = [a, b, c, d];
            config(keep.into_iter().map(|i| all[i].clone()).collect())
        })
}

/// One random Service, named by the caller.
#[derive(Clone, Debug)]
struct Spec {
    ns: usize,
    red: bool,
    policy: usize,
    families: usize,
    share: usize,
    ports: Vec<bool>,
    local: usize,
    requested: Option<(usize, Option<usize>)>,
    pool: usize,
    status: Option<usize>,
    created: Option<u32>,
}

fn spec_strategy() -> impl Strategy<Value = Spec> {
    (
        (0..3usize, any::<bool>(), 0..4usize, 0..4usize, 0..4usize),
        (
            proptest::collection::vec(proptest::bool::weighted(0.35), 3),
            0..3usize,
            proptest::option::weighted(0.2, (0..ADDRESSES.len(), proptest::option::of(5..8usize))),
            0..14usize,
            proptest::option::weighted(0.25, 0..ADDRESSES.len()),
            proptest::option::weighted(0.7, 0..6u32),
        ),
    )
        .prop_map(
            |(
                (ns, red, policy, families, share),
                (ports, local, requested, pool, status, created),
            )| Spec {
                ns,
                red,
                policy,
                families,
                share,
                ports,
                local,
                requested,
                pool,
                status,
                created,
            },
        )
}

fn build(name: &str, s: &Spec) -> Svc {
    let ns = ["ns1", "ns2", "ns3"][s.ns];
    let mut svc = Svc::new(&format!("{ns}/{name}"));
    if s.red {
        svc = svc.label("team", "red");
    }
    if let Some(p) = [
        None,
        Some("SingleStack"),
        Some("PreferDualStack"),
        Some("RequireDualStack"),
    ][s.policy]
    {
        svc = svc.policy(p);
    }
    match s.families {
        1 => svc = svc.families(&["IPv4"]),
        2 => svc = svc.families(&["IPv6"]),
        3 => svc = svc.families(&["IPv6", "IPv4"]),
        _ => {}
    }
    if let Some(k) = [None, Some("k1"), Some("k1"), Some("k2")][s.share] {
        svc = svc.share(k);
    }
    let ports: Vec<&str> = ["TCP/80", "TCP/443", "UDP/53"]
        .iter()
        .zip(&s.ports)
        .filter(|(_, on)| **on)
        .map(|(p, _)| *p)
        .collect();
    svc = svc.ports(&ports);
    match s.local {
        1 => svc = svc.local(&[("app", "x")]),
        2 => svc = svc.local(&[("app", "y")]),
        _ => {}
    }
    if let Some((a, b)) = s.requested {
        let text = match b {
            Some(b) if b != a => format!("{},{}", ADDRESSES[a], ADDRESSES[b]),
            _ => ADDRESSES[a].to_string(),
        };
        svc = svc.ips_annotation(&text);
    }
    if let Some(p) = ["a", "b", "c", "zz"].get(s.pool) {
        svc = svc.pool(p);
    }
    if let Some(i) = s.status {
        svc = svc.status(&[ADDRESSES[i]]);
    }
    if let Some(t) = s.created {
        svc = svc.created(t);
    }
    svc
}

fn world(specs: &[Spec]) -> Vec<Svc> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| build(&format!("s{i}"), s))
        .collect()
}

fn snap(services: &[Svc]) -> Snapshot {
    let mut snap = snapshot(services);
    snap.namespaces = vec![
        namespace("ns1", &[("env", "prod")]),
        namespace("ns2", &[("env", "dev")]),
    ];
    snap
}

fn run_with(
    config: &Config,
    snap: &Snapshot,
    previous: &BTreeMap<ServiceKey, Vec<IpAddr>>,
) -> Outcome {
    allocate(config, snap, &Options::default(), previous)
}

/// Requests of the snapshot's Services, by key.
fn requests(snap: &Snapshot) -> BTreeMap<ServiceKey, Request> {
    let labels: BTreeMap<String, BTreeMap<String, String>> = snap
        .namespaces
        .iter()
        .map(|n| {
            (
                n.metadata.name.clone().unwrap_or_default(),
                n.metadata.labels.clone().unwrap_or_default(),
            )
        })
        .collect();
    snap.services
        .iter()
        .filter_map(|s| {
            let key = ServiceKey::of(s);
            let (r, _) = Request::from_service(s, labels.get(&key.namespace));
            Some((key, r.ok()?))
        })
        .collect()
}

fn admits(pool: &Pool, req: &Request) -> bool {
    let Some(a) = &pool.allocation else {
        return true;
    };
    let ns = (a.namespaces.is_empty() && a.namespace_selectors.is_empty())
        || a.namespaces.contains(&req.service.namespace)
        || req
            .namespace_labels
            .as_ref()
            .is_some_and(|l| a.namespace_selectors.iter().any(|s| s.matches(l)));
    let svc = a.service_selectors.is_empty()
        || a.service_selectors.iter().any(|s| s.matches(&req.labels));
    ns && svc
}

fn contains(net: &IpNet, ip: &IpAddr) -> bool {
    net.contains(ip)
}

fn buggy(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if matches!(v4.octets()[3], 0 | 255))
}

/// Every address is one the Service may have, and shared addresses are shared by the
/// rules.
fn check_invariants(
    config: &Config,
    snap: &Snapshot,
    outcome: &Outcome,
) -> Result<(), TestCaseError> {
    let requests = requests(snap);
    let mut by_ip: BTreeMap<IpAddr, Vec<&ServiceKey>> = BTreeMap::new();
    for r in &outcome.results {
        prop_assert_eq!(r.ips.is_empty(), r.error.is_some(), "{:?}", r);
        prop_assert_eq!(r.ips.is_empty(), r.pool.is_none(), "{:?}", r);
        if r.ips.is_empty() {
            continue;
        }
        let req = requests
            .get(&r.service)
            .expect("a served Service has a valid request");
        let pool = config
            .pools
            .get(r.pool.as_deref().unwrap_or_default())
            .expect("pool exists");
        prop_assert!(
            admits(pool, req),
            "{:?} may not use pool {}",
            r.service,
            pool.name
        );
        prop_assert!(r.ips.len() <= 2);
        let families: Vec<Family> = r.ips.iter().map(Family::of).collect();
        let order: Vec<Family> = req
            .families()
            .iter()
            .copied()
            .filter(|f| families.contains(f))
            .collect();
        prop_assert_eq!(
            &families,
            &order,
            "families in service order, each once: {:?}",
            r
        );
        match req.policy {
            FamilyPolicy::SingleStack => prop_assert_eq!(&families, &vec![req.primary]),
            FamilyPolicy::RequireDualStack => prop_assert_eq!(families.len(), 2),
            FamilyPolicy::PreferDualStack => {}
        }
        for ip in &r.ips {
            prop_assert!(
                pool.cidrs.iter().any(|n| contains(n, ip)),
                "{ip} not in {}",
                pool.name
            );
            prop_assert!(
                !(pool.avoid_buggy_ips && buggy(ip)),
                "buggy {ip} from {}",
                pool.name
            );
            by_ip.entry(*ip).or_default().push(&r.service);
        }
        if !req.requested_ips.is_empty() {
            let a: BTreeSet<_> = r.ips.iter().collect();
            let b: BTreeSet<_> = req.requested_ips.iter().collect();
            prop_assert_eq!(a, b);
        }
        if let Some(p) = &req.pool {
            prop_assert_eq!(Some(p), r.pool.as_ref());
        }
    }
    for (ip, holders) in by_ip {
        for (i, a) in holders.iter().enumerate() {
            for b in &holders[i + 1..] {
                let (ra, rb) = (&requests[*a], &requests[*b]);
                prop_assert!(
                    ra.sharing.is_some() && ra.sharing == rb.sharing,
                    "{ip} held by {a} and {b} without a common sharing key"
                );
                let pa: BTreeSet<_> = ra.ports.iter().collect();
                prop_assert!(
                    rb.ports.iter().all(|p| !pa.contains(p)),
                    "{ip} held by {a} and {b} with a common port"
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn addresses_follow_the_rules(config in config_strategy(), specs in proptest::collection::vec(spec_strategy(), 0..12)) {
        let snap = snap(&world(&specs));
        let outcome = run_with(&config, &snap, &BTreeMap::new());
        check_invariants(&config, &snap, &outcome)?;
    }

    #[test]
    fn allocating_again_changes_nothing(config in config_strategy(), specs in proptest::collection::vec(spec_strategy(), 0..12)) {
        let snap = snap(&world(&specs));
        let first = run_with(&config, &snap, &BTreeMap::new());
        let second = run_with(&config, &snap, &first.assignments());
        prop_assert_eq!(&second, &first);
        let third = run_with(&config, &snap, &second.assignments());
        prop_assert_eq!(&third, &second);
        check_invariants(&config, &snap, &second)?;
    }

    #[test]
    fn adding_a_service_moves_no_other(config in config_strategy(), specs in proptest::collection::vec(spec_strategy(), 0..12), extra in spec_strategy()) {
        let mut services = world(&specs);
        let before = run_with(&config, &snap(&services), &BTreeMap::new());
        services.push(build("new", &extra));
        let snap_after = snap(&services);
        let after = run_with(&config, &snap_after, &before.assignments());
        check_invariants(&config, &snap_after, &after)?;
        for r in &before.results {
            let now = after.results.iter().find(|x| x.service == r.service).expect("still there");
            prop_assert_eq!(&now.ips, &r.ips, "{} moved", r.service);
        }
    }

    #[test]
    fn removing_a_service_moves_no_other(config in config_strategy(), specs in proptest::collection::vec(spec_strategy(), 1..12), which in any::<proptest::sample::Index>()) {
        let mut services = world(&specs);
        let before = run_with(&config, &snap(&services), &BTreeMap::new());
        let removed = services.remove(which.index(services.len()));
        let removed = ServiceKey::of(&removed.build());
        let snap_after = snap(&services);
        let after = run_with(&config, &snap_after, &before.assignments());
        check_invariants(&config, &snap_after, &after)?;
        for r in before.results.iter().filter(|r| r.service != removed) {
            let now = after.results.iter().find(|x| x.service == r.service).expect("still there");
            prop_assert!(
                r.ips.iter().all(|ip| now.ips.contains(ip)),
                "{} moved from {:?} to {:?}", r.service, r.ips, now.ips
            );
        }
    }
}
