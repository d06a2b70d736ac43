//! Allocator benchmarks: `cargo bench -p ferrolb-allocator`. Results are recorded in
//! `docs/benchmarks.md` ("Allocator").

use criterion::{Criterion, criterion_group, criterion_main};
use ferrolb_allocator::{Allocator, Options, Request, ServiceKey, allocate};
use ferrolb_model::{Config, Pool, Snapshot};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

fn config(name: &str, cidr: &str) -> Config {
    let pool = Pool {
        name: name.to_string(),
        labels: BTreeMap::new(),
        cidrs: vec![cidr.parse().expect("bench CIDR")],
        auto_assign: true,
        avoid_buggy_ips: false,
        allocation: None,
    };
    Config {
        pools: BTreeMap::from([(name.to_string(), pool)]),
        ..Config::default()
    }
}

fn service(i: usize, ipv6: bool) -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some(format!("ns{}", i % 100)),
            name: Some(format!("svc-{i}")),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".to_string()),
            ip_families: ipv6.then(|| vec!["IPv6".to_string()]),
            ports: Some(vec![ServicePort {
                port: 80,
                protocol: Some("TCP".to_string()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn snapshot(n: usize, ipv6: bool) -> Snapshot {
    Snapshot {
        services: (0..n).map(|i| service(i, ipv6)).collect(),
        ..Snapshot::default()
    }
}

fn request(i: usize) -> Request {
    let (r, _) = Request::from_service(&service(i, false), None);
    r.expect("bench request")
}

fn whole_runs(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocate");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    // 100,000 Services, one IPv4 /16 pool: 65,536 get an address, the rest are told
    // "no available IPs".
    let config16 = config("p", "10.0.0.0/16");
    let snap = snapshot(100_000, false);
    let outcome = allocate(&config16, &snap, &Options::default(), &BTreeMap::new());
    let served = outcome.results.iter().filter(|r| !r.ips.is_empty()).count();
    assert_eq!(served, 65_536);
    // The outcome is dropped outside the measurement (`allocate/drop outcome of 100k`
    // measures that separately).
    group.bench_function("100k services, one /16 pool", |b| {
        b.iter(|| {
            allocate(
                black_box(&config16),
                black_box(&snap),
                &Options::default(),
                &BTreeMap::new(),
            )
        })
    });

    // The same again with every address remembered (a steady-state rerun).
    let previous = outcome.assignments();
    group.bench_function("100k services, one /16 pool, all remembered", |b| {
        b.iter(|| {
            allocate(
                black_box(&config16),
                black_box(&snap),
                &Options::default(),
                black_box(&previous),
            )
        })
    });

    group.bench_function("drop outcome of 100k", |b| {
        b.iter_batched(|| outcome.clone(), drop, criterion::BatchSize::PerIteration)
    });

    // 10,000 IPv6 Services, one /64 pool.
    let config64 = config("v6", "fd00::/64");
    let snap6 = snapshot(10_000, true);
    group.bench_function("10k services, one IPv6 /64 pool", |b| {
        b.iter(|| {
            allocate(
                black_box(&config64),
                black_box(&snap6),
                &Options::default(),
                &BTreeMap::new(),
            )
        })
    });
    group.finish();
}

fn incremental(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocator");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    // An allocator holding 100,000 Services in an IPv4 /8.
    let mut allocator = Allocator::new(&config("p", "10.0.0.0/8"));
    for i in 0..100_000 {
        allocator.assign(&request(i)).expect("room in a /8");
    }
    let extra = request(100_000);
    let extra_key = ServiceKey::of(&service(100_000, false));
    let held = request(50_000);
    let held_key = held.service.clone();

    group.bench_function("assign one more, 100k held", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let r = allocator.assign(black_box(&extra));
                total += start.elapsed();
                black_box(r).expect("room");
                allocator.release(&extra_key);
            }
            total
        })
    });
    group.bench_function("release one, 100k held", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let r = allocator.release(black_box(&held_key));
                total += start.elapsed();
                black_box(r).expect("held");
                allocator.assign(&held).expect("room");
            }
            total
        })
    });
    group.bench_function("re-assign a held service (kept), 100k held", |b| {
        b.iter(|| allocator.assign(black_box(&held)))
    });
    group.finish();
}

criterion_group!(benches, whole_runs, incremental);
criterion_main!(benches);
