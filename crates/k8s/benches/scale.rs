//! Scale bench of the controller (issue 5 §6): 10,000 LoadBalancer Services over 100
//! namespaces and 50 IPAddressPools through the real [`Controller`].
//!
//! The controller is the one `ferrolb controller` runs. Its reflector stores are filled
//! the way kube's reflector fills them (`Init`, `InitApply` per object, `InitDone`), it
//! is started by the `Listed` changes the source reports once every watch has listed,
//! and every request it makes goes to a mocked API server (`tower_test::mock`) on a
//! thread of its own, which answers each write with a plausible 200/201 (the Service
//! echoed with a new resource version, the Event echoed, ...) and counts it. The watch
//! events the API server would send back for the controller's own writes (a Service
//! with its new status, then with its annotation; a pool with its new status) are put
//! into the stores and handed to the controller too, as the watcher would.
//!
//! Measured, median of `FERROLB_BENCH_RUNS` runs (5):
//! - the first full sync of 10,000 Services that show no address (every one gets an
//!   address: status, annotation and event written), then the watch echoes of those
//!   writes;
//! - a full resync by a new controller (a restart or a new leader) over the same
//!   Services, now showing their addresses, and the full pass of a Service relist;
//! - one Service deleted, one added, one pool changed, one namespace relabelled, after
//!   the 10,000 are in: time and API writes;
//! - memory: VmRSS / VmHWM of the process and the heap bytes counted by the global
//!   allocator below.
//!
//! CPU time is user + system: of the controller's thread (`CLOCK_THREAD_CPUTIME_ID`;
//! the controller runs on the main thread, alone in its runtime) and of the whole
//! process (`CLOCK_PROCESS_CPUTIME_ID`, with the mocked API server), and for the full
//! passes also `getrusage(RUSAGE_SELF)`, whose tick-sampled split makes it too coarse
//! for steps of a millisecond. The bench fails
//! (exit status 1) when the controller did not give every Service a fitting address,
//! gave one address to Services that may not share it, or moved an address on the
//! restart; it never fails on time or memory, it prints them against the targets
//! (full resync CPU ≤ 2 s, memory ≤ 100 MB).
//!
//! `cargo bench -p ferrolb-k8s --bench scale` writes the results into
//! docs/benchmarks.md between the `k8s-scale` markers (not with
//! `FERROLB_BENCH_NO_DOC=1`). Run without `--bench` (as `cargo test --benches` does),
//! it makes one run and writes nothing.

use bytes::Bytes;
use ferrolb_allocator::{Options, ServiceKey};
use ferrolb_k8s::controller::Controller;
use ferrolb_k8s::metrics::Metrics;
use ferrolb_k8s::sink::Sink;
use ferrolb_k8s::source::{Change, KINDS, Stores, changed_apart_from_status};
use ferrolb_model::annotations::{
    ADDRESS_POOL, ALLOW_SHARED_IP, IP_ALLOCATED_FROM_POOL, LOAD_BALANCER_IPS,
};
use ferrolb_model::crd::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use futures::Stream;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use k8s_openapi::api::core::v1::{LoadBalancerIngress, Namespace, Node, Secret, Service};
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use serde_json::{Map, Value, json};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Services in the cluster.
const SERVICES: usize = 10_000;
/// Namespaces they are spread over (100 Services each).
const NAMESPACES: usize = 100;
/// Services per namespace.
const PER_NAMESPACE: usize = SERVICES / NAMESPACES;
/// Nodes of the cluster (in the configuration snapshot the controller validates).
const NODES: usize = 50;
/// ferrolb's namespace.
const SYSTEM: &str = "metallb-system";
/// Deletions and additions measured per run.
const SINGLES: usize = 20;
/// The targets of issue 5 §6.
const TARGET_CPU: Duration = Duration::from_secs(2);
/// Memory target, in bytes (100 MB).
const TARGET_MEMORY: u64 = 100 * 1000 * 1000;

// ---------------------------------------------------------------------------------------
// Heap bytes.

/// The global allocator: [`System`], counting the bytes currently allocated and their
/// peak.
struct Counting;

/// Bytes allocated now.
static HEAP_NOW: AtomicUsize = AtomicUsize::new(0);
/// The most bytes allocated at once since the last [`reset_heap_peak`].
static HEAP_PEAK: AtomicUsize = AtomicUsize::new(0);

/// Counts `by` more bytes.
fn heap_grew(by: usize) {
    let now = HEAP_NOW.fetch_add(by, Ordering::Relaxed) + by;
    HEAP_PEAK.fetch_max(now, Ordering::Relaxed);
}

/// Counts `by` fewer bytes.
fn heap_shrank(by: usize) {
    HEAP_NOW.fetch_sub(by, Ordering::Relaxed);
}

/// Starts a new peak from the bytes allocated now.
fn reset_heap_peak() {
    HEAP_PEAK.store(HEAP_NOW.load(Ordering::Relaxed), Ordering::Relaxed);
}

// SAFETY: every call goes unchanged to `System`, which keeps `GlobalAlloc`'s contract;
// the counters are bookkeeping on the side and never touch the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees about `layout` are those `System.alloc` needs.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            heap_grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            heap_grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, that is by `System`, with
        // `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        heap_shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` and `layout` come from this allocator (that is `System`) and
        // `new_size` is valid, as the caller guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            heap_shrank(layout.size());
            heap_grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// ---------------------------------------------------------------------------------------
// Clocks and memory.

/// User + system CPU time from `getrusage(who)`: `RUSAGE_SELF`, the process. (Its
/// user/system split is sampled at the scheduler tick and adjusted to stay monotonic,
/// so short steps are timed with [`cpu_clock`] instead.)
fn rusage(who: libc::c_int) -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `rusage` into the buffer, which is ours and of that
    // type.
    if unsafe { libc::getrusage(who, usage.as_mut_ptr()) } != 0 {
        return Duration::ZERO;
    }
    // SAFETY: all-zero bytes are a valid `rusage` (plain integers), and getrusage filled
    // it in.
    let usage = unsafe { usage.assume_init() };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// CPU time (user + system, to the nanosecond) of a CPU clock:
/// `CLOCK_THREAD_CPUTIME_ID` (the calling thread) or `CLOCK_PROCESS_CPUTIME_ID`.
fn cpu_clock(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one `timespec` into `ts`, which is ours.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A point in time on the clocks.
#[derive(Clone, Copy)]
struct Clock {
    wall: Instant,
    thread: Duration,
    process: Duration,
    rusage: Duration,
}

/// Time spent between two [`Clock`]s.
#[derive(Clone, Copy, Debug, Default)]
struct Spent {
    /// Wall time.
    wall: Duration,
    /// CPU time of the controller's thread.
    thread: Duration,
    /// CPU time of the process (the controller and the mocked API server).
    process: Duration,
    /// The same from `getrusage(RUSAGE_SELF)`.
    rusage: Duration,
}

impl Clock {
    fn now() -> Clock {
        Clock {
            wall: Instant::now(),
            thread: cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID),
            process: cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID),
            rusage: rusage(libc::RUSAGE_SELF),
        }
    }

    fn spent(&self) -> Spent {
        let now = Clock::now();
        Spent {
            wall: now.wall - self.wall,
            thread: now.thread.saturating_sub(self.thread),
            process: now.process.saturating_sub(self.process),
            rusage: now.rusage.saturating_sub(self.rusage),
        }
    }
}

/// A field of /proc/self/status in bytes (`VmRSS`, `VmHWM`).
fn proc_status(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Memory at one point of the bench.
#[derive(Clone, Copy, Debug, Default)]
struct Memory {
    rss: u64,
    hwm: u64,
    heap: u64,
    heap_peak: u64,
}

impl Memory {
    fn now() -> Memory {
        Memory {
            rss: proc_status("VmRSS"),
            hwm: proc_status("VmHWM"),
            heap: HEAP_NOW.load(Ordering::Relaxed) as u64,
            heap_peak: HEAP_PEAK.load(Ordering::Relaxed) as u64,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The mocked API server.

/// A write the controller made that the API server would echo on a watch.
#[derive(Clone, Debug)]
enum Write {
    /// `status.loadBalancer.ingress` of a Service set to these addresses.
    /// `rv` is the resource version the API server answered with (its watch event
    /// carries the same).
    Status {
        key: ServiceKey,
        ips: Vec<String>,
        rv: String,
    },
    /// Annotations of a Service set (or removed: `null`).
    Annotations {
        key: ServiceKey,
        annotations: Map<String, Value>,
        rv: String,
    },
    /// The status of an IPAddressPool.
    PoolStatus { name: String, status: Value },
}

/// What the mocked API server saw since it was last asked.
#[derive(Default)]
struct ApiLog {
    /// Requests by what they write.
    counts: BTreeMap<&'static str, u64>,
    /// The writes a watch would echo, in order.
    writes: Vec<Write>,
}

/// The kind of a collection of the API (apiVersion, kind).
fn kind_of(resource: &str) -> (&'static str, &'static str) {
    match resource {
        "services" => ("v1", "Service"),
        "secrets" => ("v1", "Secret"),
        "events" => ("events.k8s.io/v1", "Event"),
        "ipaddresspools" => ("metallb.io/v1beta1", "IPAddressPool"),
        "configurationstates" => ("metallb.io/v1beta1", "ConfigurationState"),
        _ => ("v1", "Unknown"),
    }
}

impl ApiLog {
    /// Records a request and makes its answer: the object sent, with a name, namespace,
    /// kind and a new resource version (as the API server answers a write).
    fn answer(&mut self, method: &str, path: &str, body: Value, rv: u64) -> (u16, Value) {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let at = parts.iter().position(|p| *p == "namespaces");
        let (namespace, resource, name, sub) = match at {
            Some(i) => (
                parts.get(i + 1).copied().unwrap_or(""),
                parts.get(i + 2).copied().unwrap_or(""),
                parts.get(i + 3).copied(),
                parts.get(i + 4).copied(),
            ),
            None => ("", "", None, None),
        };
        let key = || ServiceKey {
            namespace: namespace.to_string(),
            name: name.unwrap_or_default().to_string(),
        };
        let what: &'static str = match (method, resource, sub) {
            ("PATCH", "services", Some("status")) => {
                let ips = body["status"]["loadBalancer"]["ingress"]
                    .as_array()
                    .map(|list| {
                        list.iter()
                            .filter_map(|i| i["ip"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                self.writes.push(Write::Status {
                    key: key(),
                    ips,
                    rv: rv.to_string(),
                });
                "Service status"
            }
            ("PATCH", "services", None) => {
                let annotations = body["metadata"]["annotations"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                self.writes.push(Write::Annotations {
                    key: key(),
                    annotations,
                    rv: rv.to_string(),
                });
                "Service annotations"
            }
            ("POST", "events", _) => "Event create",
            ("PATCH", "events", _) => "Event series patch",
            ("PATCH", "ipaddresspools", Some("status")) => {
                self.writes.push(Write::PoolStatus {
                    name: name.unwrap_or_default().to_string(),
                    status: body["status"].clone(),
                });
                "IPAddressPool status"
            }
            ("PATCH", "configurationstates", _) => "ConfigurationState",
            ("POST", "secrets", _) => "Secret create",
            ("GET", _, _) => "read",
            _ => "other",
        };
        *self.counts.entry(what).or_default() += 1;
        let mut object = match body {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let (api_version, kind) = kind_of(resource);
        object
            .entry("apiVersion")
            .or_insert_with(|| api_version.into());
        object.entry("kind").or_insert_with(|| kind.into());
        let meta = object
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(meta) = meta {
            if let Some(name) = name {
                meta.insert("name".into(), name.into());
            }
            meta.insert("namespace".into(), namespace.into());
            meta.insert("resourceVersion".into(), rv.to_string().into());
            if let Some(Value::Object(a)) = meta.get_mut("annotations") {
                // A merge patch's nulls remove keys: the object has none.
                a.retain(|_, v| !v.is_null());
            }
        }
        let code = if method == "POST" { 201 } else { 200 };
        (code, Value::Object(object))
    }

    /// Writes counted, without the reads.
    fn total(counts: &BTreeMap<&'static str, u64>) -> u64 {
        counts
            .iter()
            .filter(|(k, _)| **k != "read")
            .map(|(_, v)| v)
            .sum()
    }
}

/// Starts the mocked API server on a thread of its own; returns a client of it and its
/// log.
fn start_api() -> (kube::Client, Arc<Mutex<ApiLog>>) {
    let (service, mut handle) =
        tower_test::mock::pair::<Request<kube::client::Body>, Response<Full<Bytes>>>();
    let log = Arc::new(Mutex::new(ApiLog::default()));
    let server_log = log.clone();
    std::thread::Builder::new()
        .name("mock-api".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the mocked API server's runtime");
            runtime.block_on(async move {
                let mut rv: u64 = 1_000_000;
                while let Some((request, respond)) = handle.next_request().await {
                    let (parts, body) = request.into_parts();
                    let bytes = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    rv += 1;
                    let (code, answer) = server_log.lock().expect("log").answer(
                        parts.method.as_str(),
                        parts.uri.path(),
                        body,
                        rv,
                    );
                    let bytes = serde_json::to_vec(&answer).unwrap_or_default();
                    let response = Response::builder()
                        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(bytes)))
                        .expect("a valid response");
                    respond.send_response(response);
                }
            });
        })
        .expect("the mocked API server's thread");
    // The client's request buffer runs on the caller's (the controller's) runtime.
    (kube::Client::new(service, "default"), log)
}

// ---------------------------------------------------------------------------------------
// The cluster.

/// Application names Services are named after.
const APPS: [&str; 10] = [
    "web", "api", "grpc", "ingress", "metrics", "auth", "search", "cache", "queue", "gateway",
];

/// The name of namespace `n`.
fn namespace_name(n: usize) -> String {
    format!("ns-{n:03}")
}

/// The team label of namespace `n` (`None` for the last ten, which use the default
/// pools).
fn team_of(n: usize) -> Option<usize> {
    (n < 90).then_some(n % 10)
}

/// Namespace `n`: labels as a cluster sets them (`kubernetes.io/metadata.name`) and as
/// teams do; `extra` adds one more.
fn namespace(n: usize, extra: Option<(&str, &str)>) -> Namespace {
    let name = namespace_name(n);
    let env = ["prod", "staging", "dev"][n % 3];
    let mut labels = json!({"kubernetes.io/metadata.name": name, "env": env});
    if let Some(t) = team_of(n) {
        labels["team"] = format!("t{t}").into();
    }
    if let Some((k, v)) = extra {
        labels[k] = v.into();
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "uid": format!("uid-ns-{n}"), "resourceVersion": "100",
                     "creationTimestamp": "2023-06-01T00:00:00Z", "labels": labels},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}
    }))
    .expect("a namespace")
}

/// Node `n`, with addresses outside every pool.
fn node(n: usize) -> Node {
    let name = format!("node-{n:02}");
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": format!("uid-node-{n}"), "resourceVersion": "200",
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64",
                       "topology.kubernetes.io/zone": format!("zone-{}", n % 3),
                       "node.kubernetes.io/instance-type": "m5.2xlarge"}},
        "spec": {"podCIDR": format!("10.244.{n}.0/24"), "providerID": format!("aws:///zone/i-{n:08x}")},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": format!("192.168.0.{}", n + 10)},
                {"type": "InternalIP", "address": format!("fd00:ffff::{:x}", n + 10)},
                {"type": "Hostname", "address": name}
            ],
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": "7800m", "memory": "30Gi", "pods": "110"},
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "kubelet is posting ready status",
                 "lastHeartbeatTime": "2024-06-01T00:00:00Z",
                 "lastTransitionTime": "2024-01-01T00:00:00Z"},
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                 "message": "kubelet has sufficient memory available",
                 "lastHeartbeatTime": "2024-06-01T00:00:00Z",
                 "lastTransitionTime": "2024-01-01T00:00:00Z"}
            ],
            "nodeInfo": {"kubeletVersion": "v1.33.1", "containerRuntimeVersion": "containerd://1.7.27",
                         "kernelVersion": "6.1.0-37-amd64", "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "architecture": "amd64", "operatingSystem": "linux",
                         "machineID": format!("{n:032x}"), "systemUUID": format!("uuid-{n}"),
                         "bootID": format!("boot-{n}"), "kubeProxyVersion": "v1.33.1"}
        }
    }))
    .expect("a node")
}

/// What a Service of the fixture asks for, by its index.
#[derive(Clone, Debug, PartialEq)]
struct Want {
    /// Address families, primary first.
    families: Vec<Family>,
    /// Whether it must get every family (SingleStack, RequireDualStack), or may get the
    /// primary alone (PreferDualStack).
    require_all: bool,
    /// The pool it asks for by annotation.
    pool: Option<String>,
    /// The addresses it asks for by annotation.
    ips: Vec<String>,
    /// Its `metallb.io/allow-shared-ip` key.
    sharing: Option<String>,
}

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }

    fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// The dedicated pools Services ask for by annotation: IPv4 (`dedicated-0`..`-4`),
/// IPv6 (`dedicated-5`, `-6`) and a range (`legacy`).
fn requested_pool(k: usize) -> (String, Family) {
    match k {
        0..=4 => (format!("dedicated-{k}"), Family::V4),
        5 | 6 => (format!("dedicated-{k}"), Family::V6),
        _ => ("legacy".to_string(), Family::V4),
    }
}

/// What Service `i` asks for. Per namespace (100 Services): 66 plain IPv4 (4 of them
/// labelled `exposure: public`), two pairs sharing an address (DNS over TCP and UDP,
/// mail on two ports), one asking for its addresses (`metallb.io/loadBalancerIPs`, an
/// IPv4 and, in even namespaces, an IPv6 one too), 10 IPv6, 5 dual-stack (Prefer and
/// Require, both family orders) and 10 asking for a dedicated pool.
fn want(i: usize) -> Want {
    let (n, j) = (i / PER_NAMESPACE, i % PER_NAMESPACE);
    let mut w = Want {
        families: vec![Family::V4],
        require_all: true,
        pool: None,
        ips: Vec::new(),
        sharing: None,
    };
    match j {
        70 | 71 => w.sharing = Some(format!("dns-{n}")),
        72 | 73 => w.sharing = Some(format!("mail-{n}")),
        74 => {
            w.ips.push(format!("10.50.0.{}", n + 1));
            if n.is_multiple_of(2) {
                w.ips.push(format!("fd00:50::{:x}", n + 1));
                w.families.push(Family::V6);
            }
        }
        75..=84 => w.families = vec![Family::V6],
        85..=87 => {
            w.families = vec![Family::V4, Family::V6];
            w.require_all = false;
        }
        88 => w.families = vec![Family::V6, Family::V4],
        89 => w.families = vec![Family::V4, Family::V6],
        90..=99 => {
            let (pool, family) = requested_pool((n + j) % 8);
            w.families = vec![family];
            w.pool = Some(pool);
        }
        _ => {}
    }
    w
}

/// Service `i` as the API server lists it, before ferrolb ever ran (no status).
fn service(i: usize) -> Service {
    let (n, j) = (i / PER_NAMESPACE, i % PER_NAMESPACE);
    service_named(
        i,
        &namespace_name(n),
        &format!("{}-{j:02}", APPS[j % APPS.len()]),
    )
}

/// A Service asking what Service `i` asks for, under another name.
fn service_named(i: usize, namespace: &str, name: &str) -> Service {
    let j = i % PER_NAMESPACE;
    let w = want(i);
    let app = APPS[j % APPS.len()];
    let mut labels = json!({
        "app": app,
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/instance": format!("{app}-{j}"),
        "app.kubernetes.io/part-of": format!("product-{}", j % 7),
        "app.kubernetes.io/managed-by": "Helm",
        "helm.sh/chart": format!("{app}-1.{}.0", j % 13),
    });
    if j.is_multiple_of(20) && j < 70 {
        labels["exposure"] = "public".into();
    }
    let mut annotations = Map::new();
    if let Some(pool) = &w.pool {
        annotations.insert(ADDRESS_POOL.into(), pool.clone().into());
    }
    if let Some(key) = &w.sharing {
        annotations.insert(ALLOW_SHARED_IP.into(), key.clone().into());
    }
    if !w.ips.is_empty() {
        annotations.insert(LOAD_BALANCER_IPS.into(), w.ips.join(",").into());
    }
    annotations.insert(
        "meta.helm.sh/release-name".into(),
        format!("{app}-{j}").into(),
    );
    annotations.insert("meta.helm.sh/release-namespace".into(), namespace.into());
    let ports = match j {
        70 => json!([{"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 5353}]),
        71 => json!([{"name": "dns-udp", "port": 53, "protocol": "UDP", "targetPort": 5353}]),
        72 => json!([{"name": "smtp", "port": 25, "protocol": "TCP", "targetPort": 2525}]),
        73 => json!([{"name": "submission", "port": 587, "protocol": "TCP", "targetPort": 2587}]),
        _ if j.is_multiple_of(3) => json!([
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}
        ]),
        _ => json!([{"name": "grpc", "port": 9000 + j, "protocol": "TCP", "targetPort": "grpc"}]),
    };
    let mut ports = ports;
    for (k, p) in ports.as_array_mut().into_iter().flatten().enumerate() {
        p["nodePort"] = (30000 + (i * 2 + k) % 2768).into();
    }
    let v4 = format!("10.96.{}.{}", i / 250, i % 250 + 1);
    let v6 = format!("fd00:96::{:x}", i + 1);
    let families: Vec<&str> = w.families.iter().map(|f| f.name()).collect();
    let cluster_ips: Vec<&str> = w
        .families
        .iter()
        .map(|f| match f {
            Family::V4 => v4.as_str(),
            Family::V6 => v6.as_str(),
        })
        .collect();
    let policy = match (w.families.len(), w.require_all) {
        (1, _) => "SingleStack",
        (_, true) => "RequireDualStack",
        (_, false) => "PreferDualStack",
    };
    // Local traffic policy for a fifth of the Services (not the sharing ones: Cluster
    // and Local never share).
    let traffic = if j % 5 == 1 && w.sharing.is_none() {
        "Local"
    } else {
        "Cluster"
    };
    // Created in an order mixing the namespaces, one second apart.
    let created = (i * 7919) % SERVICES;
    let mut spec = json!({
        "type": "LoadBalancer",
        "selector": {"app": app, "app.kubernetes.io/instance": format!("{app}-{}", j / 2)},
        "ports": ports,
        "clusterIP": cluster_ips[0],
        "clusterIPs": cluster_ips,
        "ipFamilies": families,
        "ipFamilyPolicy": policy,
        "externalTrafficPolicy": traffic,
        "internalTrafficPolicy": "Cluster",
        "sessionAffinity": "None",
        "allocateLoadBalancerNodePorts": true
    });
    if traffic == "Local" {
        spec["healthCheckNodePort"] = (32000 + i % 700).into();
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": name, "namespace": namespace,
            "uid": format!("{:08x}-0000-4000-8000-{:012x}", i, i * 31 + name.len()),
            "resourceVersion": (10_000 + i).to_string(),
            "creationTimestamp": format!("2024-01-{:02}T{:02}:{:02}:{:02}Z",
                1 + created / 86_400, created / 3600 % 24, created / 60 % 60, created % 60),
            "labels": labels,
            "annotations": annotations
        },
        "spec": spec,
        "status": {"loadBalancer": {}}
    }))
    .expect("a service")
}

/// The 50 IPAddressPools, without status.
///
/// - `team<t>-v4`, `team<t>-v6`, `team<t>-ds` (t = 0..9, 30 pools): IPv4, IPv6 and
///   dual-stack pools for the namespaces labelled `team: t<t>` (a namespace selector),
///   priority 10 (20 for the dual-stack one);
/// - `edge-<k>` (5): IPv4 for five namespaces each, listed by name, priority 5,
///   avoiding buggy addresses;
/// - `public-<k>` (3): IPv4 for Services labelled `exposure: public` (a Service
///   selector), priority 1;
/// - `dedicated-<k>` (7, IPv4 and IPv6), `legacy` (a range) and `static` (both
///   families): `autoAssign: false`, used by Services asking for them;
/// - `default-v4`, `default-v6`, `default-x-ds`: no `serviceAllocation`, for the
///   namespaces no other pool admits.
fn pools() -> Vec<Value> {
    let mut out = Vec::new();
    let mut push = |name: String, addresses: Vec<String>, extra: Value| {
        let mut spec = json!({"addresses": addresses});
        if let (Value::Object(s), Value::Object(e)) = (&mut spec, extra) {
            s.extend(e);
        }
        out.push(json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name, "namespace": SYSTEM, "uid": format!("uid-pool-{name}"),
                         "resourceVersion": "300", "generation": 1},
            "spec": spec
        }));
    };
    for t in 0..10 {
        let team = json!({"matchLabels": {"team": format!("t{t}")}});
        push(
            format!("team{t}-v4"),
            vec![format!("10.{t}.0.0/22")],
            json!({"serviceAllocation": {"priority": 10, "namespaceSelectors": [team]}}),
        );
        push(
            format!("team{t}-v6"),
            vec![format!("fd00:{t:x}::/112")],
            json!({"serviceAllocation": {"priority": 10, "namespaceSelectors": [team]}}),
        );
        push(
            format!("team{t}-ds"),
            vec![format!("10.{t}.8.0/24"), format!("fd00:{t:x}:1::/120")],
            json!({"serviceAllocation": {"priority": 20, "namespaceSelectors": [team]}}),
        );
    }
    for k in 0..5 {
        let namespaces: Vec<String> = (5 * k..5 * k + 5).map(namespace_name).collect();
        push(
            format!("edge-{k}"),
            vec![format!("10.20.{}.0/23", 2 * k)],
            json!({"avoidBuggyIPs": true,
                   "serviceAllocation": {"priority": 5, "namespaces": namespaces}}),
        );
    }
    for k in 0..3 {
        push(
            format!("public-{k}"),
            vec![format!("10.30.{k}.0/24")],
            json!({"serviceAllocation": {"priority": 1,
                   "serviceSelectors": [{"matchLabels": {"exposure": "public"}}]}}),
        );
    }
    for k in 0..7 {
        let (name, family) = requested_pool(k);
        let addresses = match family {
            Family::V4 => format!("10.40.{k}.0/24"),
            Family::V6 => format!("fd00:40:{k}::/120"),
        };
        push(name, vec![addresses], json!({"autoAssign": false}));
    }
    push(
        "legacy".into(),
        vec!["10.70.0.10-10.70.0.250".into()],
        json!({"autoAssign": false}),
    );
    push(
        "static".into(),
        vec!["10.50.0.0/24".into(), "fd00:50::/120".into()],
        json!({"autoAssign": false}),
    );
    push("default-v4".into(), vec!["10.60.0.0/22".into()], json!({}));
    push("default-v6".into(), vec!["fd00:60::/112".into()], json!({}));
    push(
        "default-x-ds".into(),
        vec!["10.61.0.0/24".into(), "fd00:61::/120".into()],
        json!({}),
    );
    out
}

/// The writers of the controller's reflector stores: the bench plays kube's reflector.
struct Writers {
    services: Writer<Service>,
    namespaces: Writer<Namespace>,
    nodes: Writer<Node>,
    secrets: Writer<Secret>,
    pools: Writer<DynamicObject>,
    l2_advertisements: Writer<DynamicObject>,
    bgp_advertisements: Writer<DynamicObject>,
    bgp_peers: Writer<DynamicObject>,
    communities: Writer<DynamicObject>,
    bfd_profiles: Writer<DynamicObject>,
}

impl Writers {
    /// Empty writers and the stores they fill.
    fn new() -> (Writers, Stores) {
        let services = Writer::default();
        let namespaces = Writer::default();
        let nodes = Writer::default();
        let secrets = Writer::default();
        let pools = Writer::new(ApiResource::erase::<IPAddressPool>(&()));
        let l2_advertisements = Writer::new(ApiResource::erase::<L2Advertisement>(&()));
        let bgp_advertisements = Writer::new(ApiResource::erase::<BGPAdvertisement>(&()));
        let bgp_peers = Writer::new(ApiResource::erase::<BGPPeer>(&()));
        let communities = Writer::new(ApiResource::erase::<Community>(&()));
        let bfd_profiles = Writer::new(ApiResource::erase::<BFDProfile>(&()));
        let stores = Stores {
            services: services.as_reader(),
            namespaces: namespaces.as_reader(),
            nodes: nodes.as_reader(),
            secrets: secrets.as_reader(),
            pools: pools.as_reader(),
            l2_advertisements: l2_advertisements.as_reader(),
            bgp_advertisements: bgp_advertisements.as_reader(),
            bgp_peers: bgp_peers.as_reader(),
            communities: communities.as_reader(),
            bfd_profiles: bfd_profiles.as_reader(),
        };
        let writers = Writers {
            services,
            namespaces,
            nodes,
            secrets,
            pools,
            l2_advertisements,
            bgp_advertisements,
            bgp_peers,
            communities,
            bfd_profiles,
        };
        (writers, stores)
    }
}

/// Lists `objects` into a store as kube's reflector does: `Init`, one `InitApply` each,
/// `InitDone` (which swaps the new contents in).
fn list<K>(writer: &mut Writer<K>, objects: impl IntoIterator<Item = K>)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    writer.apply_watcher_event(&watcher::Event::Init);
    for object in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(object));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
}

/// A pool object as the store holds it.
fn dynamic(value: &Value) -> DynamicObject {
    serde_json::from_value(value.clone()).expect("a pool object")
}

/// What the source reports once every watch has listed.
fn listed() -> impl Stream<Item = Change> + Send {
    futures::stream::iter(KINDS.iter().map(|k| Change::Listed(k)))
}

// ---------------------------------------------------------------------------------------
// The bench.

/// Time and writes of one step.
#[derive(Clone, Debug, Default)]
struct Step {
    spent: Spent,
    /// Of which the change itself, without the echoes of its writes.
    own: Spent,
    /// Controller changes handled (the step's own and the echoes).
    changes: u64,
    /// Writes by kind.
    counts: BTreeMap<&'static str, u64>,
}

impl Step {
    fn writes(&self) -> u64 {
        ApiLog::total(&self.counts)
    }

    /// The writes, as `n (kind a, kind b)`.
    fn describe_writes(&self) -> String {
        let parts: Vec<String> = self
            .counts
            .iter()
            .filter(|(k, v)| **k != "read" && **v > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if parts.is_empty() {
            "0".into()
        } else {
            format!("{} ({})", self.writes(), parts.join(", "))
        }
    }
}

/// The results of one run.
#[derive(Clone, Debug, Default)]
struct Run {
    /// First full sync (nothing shown yet).
    initial: Step,
    /// The watch echoes of the first sync's writes.
    settle: Step,
    /// A new controller's full resync (everything shown).
    restart: Step,
    /// A relist of Services.
    relist: Step,
    /// One Service deleted (each of them).
    deletions: Vec<Step>,
    /// One Service added (each of them).
    additions: Vec<Step>,
    /// One pool given one more CIDR.
    pool_change: Step,
    /// One namespace given one more label.
    namespace_change: Step,
    /// Memory after the first sync and its echoes, the first controller alive.
    after_initial: Memory,
    /// Memory once the first controller is dropped.
    after_drop: Memory,
    /// Memory after the restart, the second controller alive (the first dropped).
    after_restart: Memory,
    /// Heap bytes of the stores' contents alone.
    store_heap: u64,
    /// Heap bytes of the bench's journal of the first sync's writes (about).
    journal_heap: u64,
    /// Addresses held by two Services (sharing).
    shared: usize,
}

/// The bench's state: the stores, the client of the mocked API server and its log.
struct Bench {
    writers: Writers,
    stores: Stores,
    client: kube::Client,
    api: Arc<Mutex<ApiLog>>,
    leader: watch::Sender<bool>,
    shutdown: watch::Sender<bool>,
    /// The pool objects as they are now.
    pools: Vec<Value>,
    /// Resource versions given to the objects the bench changes.
    rv: u64,
    /// Correctness problems found.
    failures: Vec<String>,
}

impl Bench {
    fn new() -> Bench {
        let (writers, stores) = Writers::new();
        let (client, api) = start_api();
        Bench {
            writers,
            stores,
            client,
            api,
            leader: watch::channel(true).0,
            shutdown: watch::channel(false).0,
            pools: pools(),
            rv: 500_000,
            failures: Vec::new(),
        }
    }

    /// Everything the mocked API server saw since the last call.
    fn take(&self) -> ApiLog {
        std::mem::take(&mut *self.api.lock().expect("log"))
    }

    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    /// A new controller, as `ferrolb controller` makes one, over the stores.
    fn controller(&self) -> Controller {
        let reporter = Reporter {
            controller: "ferrolb-controller".into(),
            instance: Some("ferrolb-controller-7d9f8-abcde".into()),
        };
        let sink = Sink::new(self.client.clone(), SYSTEM, reporter);
        Controller::new(
            self.stores.clone(),
            sink,
            Options { lb_class: None },
            Arc::new(Metrics::default()),
        )
    }

    /// Starts a controller's term: every watch has listed, it leads, it syncs; returns
    /// once that is done (the change stream then ends).
    async fn start(&self, controller: &mut Controller) {
        let _ = controller
            .run(listed(), self.leader.subscribe(), self.shutdown.subscribe())
            .await;
    }

    /// The cluster as it is before ferrolb runs: every store listed again.
    fn reset(&mut self) {
        self.pools = pools();
        list(&mut self.writers.services, (0..SERVICES).map(service));
        list(
            &mut self.writers.namespaces,
            (0..NAMESPACES).map(|n| namespace(n, None)),
        );
        list(&mut self.writers.nodes, (0..NODES).map(node));
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "memberlist", "namespace": SYSTEM, "resourceVersion": "400"},
            "type": "Opaque", "data": {"secretkey": "c2VjcmV0a2V5c2VjcmV0a2V5"}
        }))
        .expect("a secret");
        list(&mut self.writers.secrets, [secret]);
        list(&mut self.writers.pools, self.pools.iter().map(dynamic));
        let l2 = json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": "all", "namespace": SYSTEM, "resourceVersion": "301"}
        });
        list(&mut self.writers.l2_advertisements, [dynamic(&l2)]);
        list(&mut self.writers.bgp_advertisements, []);
        list(&mut self.writers.bgp_peers, []);
        list(&mut self.writers.communities, []);
        list(&mut self.writers.bfd_profiles, []);
        self.take();
    }

    /// Hands the controller the watch events its writes cause, as the watcher would:
    /// the object changed (if it changed) into the store, then the change. Writes
    /// those cause are echoed in turn. Returns the changes handled and the writes made.
    async fn echo(
        &mut self,
        controller: &mut Controller,
        mut writes: Vec<Write>,
    ) -> (u64, BTreeMap<&'static str, u64>) {
        let mut handled = 0;
        let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
        for _round in 0..5 {
            if writes.is_empty() {
                break;
            }
            for write in writes {
                let change = match write {
                    Write::Status { key, ips, rv } => {
                        let Some(current) = self.stores.service(&key) else {
                            continue;
                        };
                        let mut object = current.as_ref().clone();
                        let ingress: Vec<LoadBalancerIngress> = ips
                            .into_iter()
                            .map(|ip| LoadBalancerIngress {
                                ip: Some(ip),
                                ..Default::default()
                            })
                            .collect();
                        let status = object.status.get_or_insert_with(Default::default);
                        let lb = status.load_balancer.get_or_insert_with(Default::default);
                        let ingress = (!ingress.is_empty()).then_some(ingress);
                        if lb.ingress == ingress {
                            // A patch that changes nothing: no watch event.
                            continue;
                        }
                        lb.ingress = ingress;
                        object.metadata.resource_version = Some(rv);
                        self.writers
                            .services
                            .apply_watcher_event(&watcher::Event::Apply(object));
                        Change::Service(key)
                    }
                    Write::Annotations {
                        key,
                        annotations,
                        rv,
                    } => {
                        let Some(current) = self.stores.service(&key) else {
                            continue;
                        };
                        let mut object = current.as_ref().clone();
                        let map = object
                            .metadata
                            .annotations
                            .get_or_insert_with(Default::default);
                        let before = map.clone();
                        for (k, v) in annotations {
                            match v.as_str() {
                                Some(v) => map.insert(k, v.to_string()),
                                None => map.remove(&k),
                            };
                        }
                        if *map == before {
                            continue;
                        }
                        object.metadata.resource_version = Some(rv);
                        self.writers
                            .services
                            .apply_watcher_event(&watcher::Event::Apply(object));
                        Change::Service(key)
                    }
                    Write::PoolStatus { name, status } => {
                        let rv = self.next_rv();
                        let Some(pool) = self
                            .pools
                            .iter_mut()
                            .find(|p| p["metadata"]["name"] == name.as_str())
                        else {
                            continue;
                        };
                        if pool["status"] == status {
                            continue;
                        }
                        let old = dynamic(pool);
                        pool["status"] = status;
                        pool["metadata"]["resourceVersion"] = rv.into();
                        let object = dynamic(pool);
                        // The source reports a change of the configuration only when
                        // more than the status changed (the same test it applies).
                        let relevant = changed_apart_from_status(&old, &object);
                        self.writers
                            .pools
                            .apply_watcher_event(&watcher::Event::Apply(object));
                        if !relevant {
                            continue;
                        }
                        Change::Config("IPAddressPool")
                    }
                };
                controller.handle(change).await;
                handled += 1;
            }
            let log = self.take();
            for (k, v) in log.counts {
                *counts.entry(k).or_default() += v;
            }
            writes = log.writes;
        }
        (handled, counts)
    }

    /// Hands the controller `change` (the stores already show it) and the echoes of the
    /// writes it causes, measured.
    async fn step(&mut self, controller: &mut Controller, change: Change) -> Step {
        self.take();
        let clock = Clock::now();
        controller.handle(change).await;
        let own = clock.spent();
        let log = self.take();
        let (echoed, echo_counts) = self.echo(controller, log.writes).await;
        let spent = clock.spent();
        let mut counts = log.counts;
        for (k, v) in echo_counts {
            *counts.entry(k).or_default() += v;
        }
        Step {
            spent,
            own,
            changes: 1 + echoed,
            counts,
        }
    }

    /// One run: the first sync and its echoes, a restart, a relist, then single changes.
    async fn run(&mut self) -> Run {
        let mut run = Run::default();
        let heap_before = HEAP_NOW.load(Ordering::Relaxed) as u64;
        self.reset();
        run.store_heap = (HEAP_NOW.load(Ordering::Relaxed) as u64).saturating_sub(heap_before);
        reset_heap_peak();

        // The first full sync: nothing shows an address yet.
        let mut first = self.controller();
        let clock = Clock::now();
        self.start(&mut first).await;
        let spent = clock.spent();
        let log = self.take();
        let probe = log.writes.clone();
        let with_probe = HEAP_NOW.load(Ordering::Relaxed) as u64;
        drop(probe);
        run.journal_heap = with_probe.saturating_sub(HEAP_NOW.load(Ordering::Relaxed) as u64);
        run.initial = Step {
            spent,
            own: spent,
            changes: KINDS.len() as u64,
            counts: log.counts,
        };
        run.shared = self.check(&log.writes, first.core().holders().count());
        let clock = Clock::now();
        let (handled, counts) = self.echo(&mut first, log.writes).await;
        let spent = clock.spent();
        run.settle = Step {
            spent,
            own: spent,
            changes: handled,
            counts,
        };
        run.after_initial = Memory::now();

        // A restart (or a new leader): a new controller over the Services as they are.
        drop(first);
        run.after_drop = Memory::now();
        reset_heap_peak();
        let mut second = self.controller();
        let clock = Clock::now();
        self.start(&mut second).await;
        let spent = clock.spent();
        let log = self.take();
        run.restart = Step {
            spent,
            own: spent,
            changes: KINDS.len() as u64,
            counts: log.counts,
        };
        let moved = log
            .writes
            .iter()
            .filter(|w| !matches!(w, Write::PoolStatus { .. }))
            .count();
        if moved > 0 {
            self.failures.push(format!(
                "the restart wrote {moved} Service changes: it should keep every address"
            ));
        }
        let held = second.core().holders().count();
        if held != SERVICES {
            self.failures.push(format!(
                "after the restart {held} Services hold addresses, not {SERVICES}"
            ));
        }
        run.after_restart = Memory::now();

        // A relist of Services (after 410 Gone): a full pass that writes nothing.
        run.relist = self.step(&mut second, Change::Listed("Service")).await;

        // Single changes, after the 10,000 are in.
        for k in 0..SINGLES {
            let i = (k * 487 + 13) % SERVICES;
            let key = ServiceKey::of(&service(i));
            let Some(current) = self.stores.service(&key) else {
                continue;
            };
            self.writers
                .services
                .apply_watcher_event(&watcher::Event::Delete(current.as_ref().clone()));
            let step = self.step(&mut second, Change::ServiceDeleted(key)).await;
            run.deletions.push(step);
        }
        for k in 0..SINGLES {
            // A plain IPv4 Service in a team namespace (its pool has room).
            let n = 30 + k;
            let i = n * PER_NAMESPACE + 3;
            let object = service_named(i, &namespace_name(n), &format!("new-{k}"));
            let key = ServiceKey::of(&object);
            self.writers
                .services
                .apply_watcher_event(&watcher::Event::Apply(object));
            let step = self.step(&mut second, Change::Service(key.clone())).await;
            if !second.core().holds(&key) {
                self.failures
                    .push(format!("the added Service {key} got no address"));
            }
            run.additions.push(step);
        }

        // One pool gets one more CIDR.
        let rv = self.next_rv();
        if let Some(pool) = self
            .pools
            .iter_mut()
            .find(|p| p["metadata"]["name"] == "team3-v4")
        {
            if let Some(list) = pool["spec"]["addresses"].as_array_mut() {
                list.push("10.3.4.0/24".into());
            }
            pool["metadata"]["resourceVersion"] = rv.into();
            pool["metadata"]["generation"] = 2.into();
            let object = dynamic(pool);
            self.writers
                .pools
                .apply_watcher_event(&watcher::Event::Apply(object));
        }
        run.pool_change = self
            .step(&mut second, Change::Config("IPAddressPool"))
            .await;

        // One namespace gets one more label (no pool selects on it).
        let mut ns = namespace(42, Some(("cost-center", "cc-42")));
        ns.metadata.resource_version = Some(self.next_rv());
        self.writers
            .namespaces
            .apply_watcher_event(&watcher::Event::Apply(ns));
        run.namespace_change = self
            .step(&mut second, Change::Namespace(namespace_name(42)))
            .await;
        run
    }

    /// Checks the first sync's writes: every Service got addresses of the families it
    /// wants (those it asked for, from the pool it asked for), and no address went to
    /// two Services unless they share it by the same key. Returns the number of shared
    /// addresses.
    fn check(&mut self, writes: &[Write], held: usize) -> usize {
        let mut ips: HashMap<ServiceKey, Vec<IpAddr>> = HashMap::new();
        let mut pools: HashMap<ServiceKey, String> = HashMap::new();
        for w in writes {
            match w {
                Write::Status { key, ips: list, .. } => {
                    let parsed = list.iter().filter_map(|s| s.parse().ok()).collect();
                    ips.insert(key.clone(), parsed);
                }
                Write::Annotations {
                    key, annotations, ..
                } => {
                    if let Some(pool) = annotations
                        .get(IP_ALLOCATED_FROM_POOL)
                        .and_then(Value::as_str)
                    {
                        pools.insert(key.clone(), pool.to_string());
                    }
                }
                Write::PoolStatus { .. } => {}
            }
        }
        let mut problems = Vec::new();
        if held != SERVICES {
            problems.push(format!("{held} Services hold addresses, not {SERVICES}"));
        }
        let mut holders: HashMap<IpAddr, Vec<usize>> = HashMap::new();
        for i in 0..SERVICES {
            let key = ServiceKey::of(&service(i));
            let w = want(i);
            let got = ips.get(&key).cloned().unwrap_or_default();
            let families: Vec<Family> = got.iter().map(Family::of).collect();
            let fits = families == w.families
                || (!w.require_all && families.as_slice() == &w.families[..1]);
            if !fits {
                problems.push(format!(
                    "{key} got {got:?}, wants {:?} (all: {})",
                    w.families, w.require_all
                ));
            }
            if !w.ips.is_empty() {
                let asked: Vec<IpAddr> = w.ips.iter().filter_map(|s| s.parse().ok()).collect();
                if got != asked {
                    problems.push(format!("{key} got {got:?}, asked for {asked:?}"));
                }
            }
            if let Some(pool) = &w.pool
                && pools.get(&key) != Some(pool)
            {
                problems.push(format!(
                    "{key} asked for pool {pool}, got {:?}",
                    pools.get(&key)
                ));
            }
            if !pools.contains_key(&key) {
                problems.push(format!("{key}: no pool annotation written"));
            }
            for ip in got {
                holders.entry(ip).or_default().push(i);
            }
        }
        let mut shared = 0;
        for (ip, list) in &holders {
            if list.len() < 2 {
                continue;
            }
            shared += 1;
            let keys: Vec<Option<String>> = list.iter().map(|i| want(*i).sharing).collect();
            if keys[0].is_none() || keys.iter().any(|k| *k != keys[0]) {
                problems.push(format!(
                    "{ip} given to Services {list:?}, sharing keys {keys:?}"
                ));
            }
        }
        if !problems.is_empty() {
            let count = problems.len();
            problems.truncate(20);
            self.failures.push(format!(
                "{count} allocation problems, first ones:\n  {}",
                problems.join("\n  ")
            ));
        }
        shared
    }
}

// ---------------------------------------------------------------------------------------
// Report.

/// The median of some durations (the upper one of an even count).
fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Milliseconds, with a precision fitting the size.
fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 1.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.3}")
    }
}

/// Megabytes (10^6 bytes, as the target).
fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// "median (min–max)" of one kind of time over the runs.
fn times(steps: &[&Step], of: impl Fn(&Spent) -> Duration) -> String {
    let v: Vec<Duration> = steps.iter().map(|s| of(&s.spent)).collect();
    let (lo, hi) = (
        v.iter().min().copied().unwrap_or_default(),
        v.iter().max().copied().unwrap_or_default(),
    );
    if steps.len() > 1 {
        format!("{} ({}–{})", ms(median(v)), ms(lo), ms(hi))
    } else {
        ms(median(v))
    }
}

/// The writes of a kind of step, or the range when they differ.
fn writes_of(steps: &[&Step]) -> String {
    let mut all: Vec<String> = steps.iter().map(|s| s.describe_writes()).collect();
    all.sort();
    all.dedup();
    all.join(" / ")
}

/// The 1, 5, 15 minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The CPU model, from /proc/cpuinfo.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The report, as markdown.
fn report(runs: &[Run], load: (&str, &str), baseline: Memory, end: Memory) -> String {
    let n = runs.len();
    let rows: Vec<(&str, Vec<&Step>)> = vec![
        (
            "first full sync: 10,000 Services showing nothing get an address",
            runs.iter().map(|r| &r.initial).collect(),
        ),
        (
            "then the watch events of those writes (20,000 Service events; the 50 pool status events are no configuration change, so the source reports none)",
            runs.iter().map(|r| &r.settle).collect(),
        ),
        (
            "**full resync by a new controller** (restart or new leader) over the 10,000, showing their addresses",
            runs.iter().map(|r| &r.restart).collect(),
        ),
        (
            "full pass after a relist of Services (410 Gone)",
            runs.iter().map(|r| &r.relist).collect(),
        ),
        (
            "one Service deleted (the watch event of its pool status write is no change)",
            runs.iter().flat_map(|r| r.deletions.iter()).collect(),
        ),
        (
            "one Service added (plain IPv4), with the echoes of its writes",
            runs.iter().flat_map(|r| r.additions.iter()).collect(),
        ),
        (
            "one pool gets one more CIDR (a new configuration: every Service reconciled)",
            runs.iter().map(|r| &r.pool_change).collect(),
        ),
        (
            "one namespace gets one more label (its 100 Services reconciled)",
            runs.iter().map(|r| &r.namespace_change).collect(),
        ),
    ];
    let first = &runs[0];
    let med = |of: &dyn Fn(&Run) -> Duration| median(runs.iter().map(of).collect());
    let resync = med(&|r| r.restart.spent.thread);
    let resync_process = med(&|r| r.restart.spent.process);
    let resync_rusage = med(&|r| r.restart.spent.rusage);
    let initial_rusage = med(&|r| r.initial.spent.rusage);
    let initial = med(&|r| r.initial.spent.thread);
    let initial_process = med(&|r| r.initial.spent.process);
    let delete = median(
        runs.iter()
            .flat_map(|r| r.deletions.iter().map(|s| s.own.thread))
            .collect(),
    );
    let hwm = first.after_initial.hwm.max(first.after_restart.hwm);
    let verdict = |ok: bool| if ok { "met" } else { "**not met**" };
    let mut t = format!(
        "Measured on {} (UTC) on this machine kind (2 cores, {}), load average (1, 5, 15 min) {} \
         before and {} after; another build may have been running. {n} runs; times are median \
         (min–max) in ms over the runs (single changes: over {SINGLES} deletions and {SINGLES} \
         additions per run). CPU is user + system time (`clock_gettime` CPU clocks) of the \
         controller's thread, and of the whole process (with the mocked API server's thread).\n\n",
        date(),
        cpu_model(),
        load.0,
        load.1,
    );
    t += "| step | controller CPU | of which the change itself | process CPU | wall | changes handled | API writes |\n|---|---|---|---|---|---|---|\n";
    for (what, steps) in &rows {
        let changes: Vec<u64> = steps.iter().map(|s| s.changes).collect();
        let (lo, hi) = (
            changes.iter().min().copied().unwrap_or(0),
            changes.iter().max().copied().unwrap_or(0),
        );
        let changes = if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}–{hi}")
        };
        let own: Vec<Step> = steps
            .iter()
            .map(|s| Step {
                spent: s.own,
                ..Step::default()
            })
            .collect();
        let own: Vec<&Step> = own.iter().collect();
        t += &format!(
            "| {what} | {} | {} | {} | {} | {changes} | {} |\n",
            times(steps, |s| s.thread),
            times(&own, |s| s.thread),
            times(steps, |s| s.process),
            times(steps, |s| s.wall),
            writes_of(steps)
        );
    }
    t += &format!(
        "\nMemory of the bench process (first run). VmRSS before anything was built: {}. Heap \
         of the reflector stores' contents (10,000 Services, 100 namespaces, {NODES} nodes, 50 \
         pools): {}. After the first sync and its echoes, the controller alive: VmRSS {}, heap \
         {}; heap peak during them {} (the bench's journal of the writes, about {}, included). \
         After the restart (the first controller dropped, the second alive): VmRSS {}, heap {}. \
         So the first controller's own heap was {} (its core and allocator, the kube client and \
         the event writer's cache of the Events it published, bounded to 4,096) and the \
         second's, which published no Event, {}. VmHWM (peak RSS of the whole process: fixture, mocked API server and journal \
         included): {} after the first run, {} at the end.\n\n",
        mb(baseline.rss),
        mb(first.store_heap),
        mb(first.after_initial.rss),
        mb(first.after_initial.heap),
        mb(first.after_initial.heap_peak),
        mb(first.journal_heap),
        mb(first.after_restart.rss),
        mb(first.after_restart.heap),
        mb(first
            .after_initial
            .heap
            .saturating_sub(first.after_drop.heap)),
        mb(first
            .after_restart
            .heap
            .saturating_sub(first.after_drop.heap)),
        mb(hwm),
        mb(end.hwm),
    );
    t += &format!(
        "Targets: full resync CPU ≤ 2 s: {} for the resync of a new controller ({} ms \
         controller thread, {} ms process, {} ms by getrusage(RUSAGE_SELF)); the first sync, \
         which also makes {} writes, took {} ms controller thread ({}), {} ms process ({} ms by \
         getrusage). One deletion: {} ms of controller \
         CPU for the change itself. Memory ≤ 100 MB: {} by the process peak (VmHWM {}). \
         Checked: every Service got an address of the families it wants, from the pool or the \
         addresses it asked for; {} addresses are shared, each by Services with the same \
         sharing key; the restart wrote no Service.\n",
        verdict(resync_process <= TARGET_CPU),
        ms(resync),
        ms(resync_process),
        ms(resync_rusage),
        first.initial.writes(),
        ms(initial),
        if initial <= TARGET_CPU {
            "within 2 s"
        } else {
            "**over 2 s**"
        },
        ms(initial_process),
        ms(initial_rusage),
        ms(delete),
        verdict(hwm <= TARGET_MEMORY),
        mb(hwm),
        first.shared,
    );
    t
}

/// Replaces what is between the `k8s-scale` markers of docs/benchmarks.md (or appends
/// the section with them at the end).
fn write_doc(text: &str) {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks.md");
    let (begin, end) = ("<!-- k8s-scale:begin -->", "<!-- k8s-scale:end -->");
    let current = std::fs::read_to_string(&doc).unwrap_or_else(|_| "# Benchmarks\n".into());
    let section = format!("{begin}\n{text}{end}");
    let updated = match (current.find(begin), current.find(end)) {
        (Some(b), Some(e)) if e > b => {
            format!("{}{section}{}", &current[..b], &current[e + end.len()..])
        }
        _ => format!(
            "{}\n\n## Controller scale\n\nReproduce: `cargo bench -p ferrolb-k8s --bench scale` \
             (`crates/k8s/benches/scale.rs`).\n\n{section}\n",
            current.trim_end()
        ),
    };
    std::fs::write(&doc, updated).expect("write docs/benchmarks.md");
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let runs = if benching {
        std::env::var("FERROLB_BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5usize)
            .max(1)
    } else {
        1
    };
    let to_doc = benching && std::env::var_os("FERROLB_BENCH_NO_DOC").is_none();
    let load_before = loadavg();
    let baseline = Memory::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (results, failures) = runtime.block_on(async {
        let mut bench = Bench::new();
        let mut results = Vec::new();
        for r in 0..runs {
            let run = bench.run().await;
            eprintln!(
                "run {}/{runs}: first sync {} ms CPU, restart resync {} ms CPU; \
                 VmRSS {} / heap {} after the first sync, {} / {} after the restart",
                r + 1,
                ms(run.initial.spent.thread),
                ms(run.restart.spent.thread),
                mb(run.after_initial.rss),
                mb(run.after_initial.heap),
                mb(run.after_restart.rss),
                mb(run.after_restart.heap),
            );
            results.push(run);
            if !bench.failures.is_empty() {
                break;
            }
        }
        (results, std::mem::take(&mut bench.failures))
    });
    let end = Memory::now();
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("FAILED: {f}");
        }
        std::process::exit(1);
    }
    let text = report(&results, (&load_before, &loadavg()), baseline, end);
    println!("{text}");
    if to_doc {
        write_doc(&text);
    }
}
