//! A fake API server behind `tower_test::mock`: every request is recorded; lists and
//! watches are answered from what each test sets up; watches stay open so the test can
//! push events into them.

#![allow(dead_code)]

use bytes::Bytes;
use futures::channel::mpsc;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use kube::Client;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The body of every answer: frames sent through a channel (a watch stays open while
/// its sender lives).
pub type Body = StreamBody<mpsc::UnboundedReceiver<Chunk>>;

/// One piece of a body.
pub type Chunk = Result<Frame<Bytes>, Infallible>;

/// One request as the fake server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `GET`, `PATCH`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string.
    pub query: String,
    /// The `content-type` header.
    pub content_type: String,
    /// The body, as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

impl Recorded {
    /// Whether it is a watch.
    pub fn is_watch(&self) -> bool {
        self.query.contains("watch=true")
    }

    /// Whether it is a list (not a watch) of a collection.
    pub fn is_list(&self) -> bool {
        self.method == "GET" && !self.is_watch()
    }
}

/// An answer.
pub enum Reply {
    /// A JSON body with a status code.
    Json(u16, Value),
    /// A watch: these events first, then the stream stays open.
    Watch(Vec<Value>),
}

type Router = Box<dyn FnMut(&Recorded) -> Option<Reply> + Send>;

struct State {
    log: Vec<Recorded>,
    /// Open watches by collection path.
    watches: HashMap<String, Vec<mpsc::UnboundedSender<Chunk>>>,
    /// Items listed per collection path (when the router does not answer).
    items: HashMap<String, Vec<Value>>,
}

/// The fake server.
#[derive(Clone)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
    router: Arc<Mutex<Router>>,
    notify: Arc<Notify>,
}

fn frame(value: &Value) -> Chunk {
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    Ok(Frame::data(Bytes::from(line)))
}

fn json_response(code: u16, value: &Value) -> Response<Body> {
    let (tx, rx) = mpsc::unbounded();
    let _ = tx.unbounded_send(frame(value));
    drop(tx);
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(StreamBody::new(rx))
        .expect("a valid response")
}

/// A `Status` object as the API server sends for errors.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Status", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code
    })
}

impl FakeApi {
    /// A client talking to a new fake server, and the server.
    pub fn start() -> (Client, FakeApi) {
        let (service, mut handle) =
            tower_test::mock::pair::<Request<kube::client::Body>, Response<Body>>();
        let fake = FakeApi {
            state: Arc::new(Mutex::new(State {
                log: Vec::new(),
                watches: HashMap::new(),
                items: HashMap::new(),
            })),
            router: Arc::new(Mutex::new(Box::new(|_| None))),
            notify: Arc::new(Notify::new()),
        };
        let server = fake.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let recorded = Recorded {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    query: parts.uri.query().unwrap_or("").to_string(),
                    content_type: parts
                        .headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string(),
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                };
                let response = server.answer(&recorded);
                respond.send_response(response);
            }
        });
        (Client::new(service, "default"), fake)
    }

    fn answer(&self, recorded: &Recorded) -> Response<Body> {
        let routed = {
            let mut router = self.router.lock().expect("router lock");
            router(recorded)
        };
        let response = match routed {
            Some(Reply::Json(code, value)) => json_response(code, &value),
            Some(Reply::Watch(events)) => self.open_watch(&recorded.path, events),
            None if recorded.is_watch() => self.open_watch(&recorded.path, Vec::new()),
            None if recorded.is_list() => {
                let items = self
                    .state
                    .lock()
                    .expect("state lock")
                    .items
                    .get(&recorded.path)
                    .cloned();
                match items {
                    Some(items) => json_response(
                        200,
                        &json!({"apiVersion": "v1", "kind": "List",
                                "metadata": {"resourceVersion": "1"}, "items": items}),
                    ),
                    None if is_collection(&recorded.path) => json_response(
                        200,
                        &json!({"apiVersion": "v1", "kind": "List",
                                "metadata": {"resourceVersion": "1"}, "items": []}),
                    ),
                    None => json_response(404, &status(404, "NotFound", "not found")),
                }
            }
            // Writes echo the object sent.
            None => json_response(200, &recorded.body),
        };
        let mut state = self.state.lock().expect("state lock");
        state.log.push(recorded.clone());
        drop(state);
        self.notify.notify_waiters();
        response
    }

    fn open_watch(&self, path: &str, events: Vec<Value>) -> Response<Body> {
        let (tx, rx) = mpsc::unbounded();
        for e in &events {
            let _ = tx.unbounded_send(frame(e));
        }
        self.state
            .lock()
            .expect("state lock")
            .watches
            .entry(path.to_string())
            .or_default()
            .push(tx);
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(StreamBody::new(rx))
            .expect("a valid response")
    }

    /// Sets what a collection lists (when the router does not answer).
    pub fn set_items(&self, path: &str, items: Vec<Value>) {
        self.state
            .lock()
            .expect("state lock")
            .items
            .insert(path.to_string(), items);
    }

    /// Answers requests first with `router` (which returns `None` to leave one to the
    /// defaults).
    pub fn route(&self, router: impl FnMut(&Recorded) -> Option<Reply> + Send + 'static) {
        *self.router.lock().expect("router lock") = Box::new(router);
    }

    /// Sends a watch event (`{"type": ..., "object": ...}`) to the open watches of a
    /// collection.
    pub fn push(&self, path: &str, event: Value) {
        let state = self.state.lock().expect("state lock");
        for tx in state.watches.get(path).into_iter().flatten() {
            let _ = tx.unbounded_send(frame(&event));
        }
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Recorded> {
        self.state.lock().expect("state lock").log.clone()
    }

    /// Waits until the requests so far satisfy `done` (a guard of 20 s against a hang:
    /// then it panics with the log).
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Recorded]) -> bool) -> Vec<Recorded> {
        let wait = async {
            loop {
                let notified = self.notify.notified();
                let log = self.log();
                if done(&log) {
                    return log;
                }
                notified.await;
            }
        };
        match tokio::time::timeout(Duration::from_secs(20), wait).await {
            Ok(log) => log,
            Err(_) => {
                let log: Vec<String> = self
                    .log()
                    .iter()
                    .map(|r| format!("{} {}?{} {}", r.method, r.path, r.query, r.body))
                    .collect();
                panic!("never saw {what}; requests:\n{}", log.join("\n"));
            }
        }
    }
}

/// Whether a path names a collection (its last segment is a resource, not a name).
fn is_collection(path: &str) -> bool {
    const COLLECTIONS: &[&str] = &[
        "services",
        "namespaces",
        "nodes",
        "secrets",
        "ipaddresspools",
        "l2advertisements",
        "bgpadvertisements",
        "bgppeers",
        "communities",
        "bfdprofiles",
        "configurationstates",
        "servicel2statuses",
        "servicebgpstatuses",
        "endpointslices",
        "pods",
    ];
    path.rsplit('/')
        .next()
        .is_some_and(|last| COLLECTIONS.contains(&last))
}

/// A Service object.
pub fn service(namespace: &str, name: &str, rv: &str, created: &str, ingress: &[&str]) -> Value {
    let ingress: Vec<Value> = ingress.iter().map(|ip| json!({"ip": ip})).collect();
    let mut status = json!({});
    if !ingress.is_empty() {
        status = json!({"loadBalancer": {"ingress": ingress}});
    }
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": rv,
                     "uid": format!("uid-{namespace}-{name}"), "creationTimestamp": created},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                 "ipFamilies": ["IPv4"], "ports": [{"port": 80, "protocol": "TCP"}]},
        "status": status
    })
}

/// An IPAddressPool object in `metallb-system`.
pub fn pool(name: &str, rv: &str, addresses: &[&str]) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": "metallb-system", "resourceVersion": rv},
        "spec": {"addresses": addresses}
    })
}

/// Collection paths.
pub const SERVICES: &str = "/api/v1/services";
/// IPAddressPools of metallb-system.
pub const POOLS: &str = "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools";
