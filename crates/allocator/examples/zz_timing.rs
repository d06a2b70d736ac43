use ferrolb_allocator::{Options, Request, allocate};
use ferrolb_model::{Config, Pool, Snapshot};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
use std::time::Instant;

fn service(i: usize) -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some(format!("ns{}", i % 100)),
            name: Some(format!("svc-{i}")),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ports: Some(vec![ServicePort {
                port: 80,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
fn main() {
    let pool = Pool {
        name: "p".into(),
        labels: BTreeMap::new(),
        cidrs: vec!["10.0.0.0/16".parse().unwrap()],
        auto_assign: true,
        avoid_buggy_ips: false,
        allocation: None,
    };
    let config = Config {
        pools: BTreeMap::from([("p".to_string(), pool)]),
        ..Default::default()
    };
    let snap = Snapshot {
        services: (0..100_000).map(service).collect(),
        ..Default::default()
    };
    for _ in 0..3 {
        let t = Instant::now();
        let mut n = 0;
        for s in &snap.services {
            let (r, _) = Request::from_service(s, None);
            n += r.is_ok() as usize;
        }
        println!("parse only: {:?} ({n})", t.elapsed());
        let t = Instant::now();
        let o = allocate(&config, &snap, &Options::default(), &BTreeMap::new());
        let e = t.elapsed();
        let t2 = Instant::now();
        drop(o);
        println!("allocate: {:?}, drop {:?}", e, t2.elapsed());
    }
}
