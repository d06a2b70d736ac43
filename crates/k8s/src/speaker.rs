//! The speaker on Kubernetes: what `ferrolb speaker` needs besides the node core it
//! shares with `ferrolb run`.
//!
//! - [`watch`]: the controller's reflectors ([`crate::source::watch_all`]) plus
//!   EndpointSlices, and [`SpeakerStores::snapshot`], the whole [`Snapshot`] the node
//!   core works from (the LoadBalancer Services with the addresses the controller wrote
//!   in their status, where they are served, the nodes, the configuration).
//! - [`StatusWriter`]: the `ServiceL2Status` and `ServiceBGPStatus` objects of this node,
//!   one per Service it announces, owned by the speaker pod (so they go with it), with
//!   MetalLB's labels; written when the node starts announcing a Service and deleted when
//!   it stops, with a `nodeAssigned` event on the Service. Names are deterministic
//!   (`l2-` / `bgp-` and a hash of node and Service), so a restarted speaker finds its
//!   objects again (and writes those its previous pod owned again, now owned by itself);
//!   at start, objects of this node that are no longer wanted are deleted.
//! - [`StartGate`]: the first snapshot waits for the gossip Secret the controller
//!   creates (at most [`GOSSIP_SECRET_WAIT`]), since the membership keeps the key it
//!   starts with.
//!
//! Services without a selector whose EndpointSlices were made by hand are announced like
//! any other (MetalLB ignores them): the slices are read by their
//! `kubernetes.io/service-name` label, whoever made them.

use crate::events::{EventRecord, EventWriter};
use crate::sink::SinkError;
use crate::source::{Change, Stores, typed, watch_all};
use ferrolb_election::Announced;
use ferrolb_model::crd::{
    InterfaceInfo, MetalLBServiceBGPStatus, MetalLBServiceL2Status, ServiceBGPStatus,
    ServiceBGPStatusSpec, ServiceL2Status, ServiceL2StatusSpec,
};
use ferrolb_model::{Problem, Snapshot};
use futures::{Stream, StreamExt, stream};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Label: the node a status object is about.
pub const LABEL_NODE: &str = "metallb.io/node";
/// Label: the Service's name.
pub const LABEL_SERVICE_NAME: &str = "metallb.io/service-name";
/// Label: the Service's namespace.
pub const LABEL_SERVICE_NAMESPACE: &str = "metallb.io/service-namespace";
/// The field manager of the speaker's writes.
pub const FIELD_MANAGER: &str = "ferrolb-speaker";
/// The reason of the event a speaker publishes when it starts announcing a Service
/// (MetalLB's).
pub const REASON_NODE_ASSIGNED: &str = "nodeAssigned";

/// The stores the speaker reads.
#[derive(Clone)]
pub struct SpeakerStores {
    /// The controller's stores (Services, Namespaces, Nodes, Secrets, metallb.io kinds).
    pub config: Stores,
    /// EndpointSlices of every namespace.
    pub endpoint_slices: Store<EndpointSlice>,
}

/// The kind the speaker watches besides the controller's ([`crate::source::KINDS`]).
pub const ENDPOINT_SLICE: &str = "EndpointSlice";

/// The speaker's stores and the stream of changes that drives every watch.
pub fn watch(
    client: Client,
    namespace: &str,
) -> (SpeakerStores, impl Stream<Item = Change> + Send + use<>) {
    let (config, changes) = watch_all(client.clone(), namespace);
    let (endpoint_slices, slices) = typed(
        Api::<EndpointSlice>::all(client),
        watcher::Config::default(),
        ENDPOINT_SLICE,
        |event| match event {
            watcher::Event::Apply(_) | watcher::Event::Delete(_) => {
                Some(Change::Config(ENDPOINT_SLICE))
            }
            _ => None,
        },
    );
    let stores = SpeakerStores {
        config,
        endpoint_slices,
    };
    (stores, stream::select(changes, slices))
}

impl SpeakerStores {
    /// Everything the node core needs, and the problems of objects that did not decode.
    /// Only LoadBalancer Services are taken (the others are never announced).
    pub fn snapshot(&self) -> (Snapshot, Vec<Problem>) {
        let (mut snapshot, problems) = self.config.config_snapshot();
        let mut services: Vec<Service> = self
            .config
            .services
            .state()
            .iter()
            .filter(|s| s.spec.as_ref().and_then(|sp| sp.type_.as_deref()) == Some("LoadBalancer"))
            .map(|s| s.as_ref().clone())
            .collect();
        services.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        snapshot.services = services;
        let mut slices: Vec<EndpointSlice> = self
            .endpoint_slices
            .state()
            .iter()
            .map(|s| s.as_ref().clone())
            .collect();
        slices.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        snapshot.endpoint_slices = slices;
        (snapshot, problems)
    }
}

/// The name of the status object of `kind_prefix` (`l2` or `bgp`) for a Service and a
/// node: deterministic, a valid object name whatever the lengths.
pub fn status_name(kind_prefix: &str, node: &str, service: &str) -> String {
    let digest = Sha256::digest(format!("{node}\n{service}").as_bytes());
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("{kind_prefix}-{hex}")
}

fn split(service: &str) -> (&str, &str) {
    service.split_once('/').unwrap_or(("default", service))
}

fn meta(
    name: String,
    namespace: &str,
    node: &str,
    service: &str,
    owner: Option<&OwnerReference>,
) -> ObjectMeta {
    let (svc_ns, svc_name) = split(service);
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_string()),
        labels: Some(
            [
                (LABEL_NODE, node),
                (LABEL_SERVICE_NAME, svc_name),
                (LABEL_SERVICE_NAMESPACE, svc_ns),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ),
        owner_references: owner.map(|o| vec![o.clone()]),
        ..ObjectMeta::default()
    }
}

/// The status objects this node should have for what it announces, by name.
pub fn wanted_objects(
    namespace: &str,
    node: &str,
    owner: Option<&OwnerReference>,
    announced: &Announced,
) -> (
    BTreeMap<String, ServiceL2Status>,
    BTreeMap<String, ServiceBGPStatus>,
) {
    let mut l2 = BTreeMap::new();
    for (service, interfaces) in &announced.l2 {
        let name = status_name("l2", node, service);
        let (svc_ns, svc_name) = split(service);
        l2.insert(
            name.clone(),
            ServiceL2Status {
                metadata: meta(name, namespace, node, service, owner),
                spec: ServiceL2StatusSpec {},
                status: Some(MetalLBServiceL2Status {
                    node: node.to_string(),
                    service_name: svc_name.to_string(),
                    service_namespace: svc_ns.to_string(),
                    interfaces: interfaces
                        .iter()
                        .map(|i| InterfaceInfo { name: i.clone() })
                        .collect(),
                }),
            },
        );
    }
    let mut bgp = BTreeMap::new();
    for (service, peers) in &announced.bgp {
        let name = status_name("bgp", node, service);
        let (svc_ns, svc_name) = split(service);
        bgp.insert(
            name.clone(),
            ServiceBGPStatus {
                metadata: meta(name, namespace, node, service, owner),
                spec: ServiceBGPStatusSpec {},
                status: Some(MetalLBServiceBGPStatus {
                    node: node.to_string(),
                    service_name: svc_name.to_string(),
                    service_namespace: svc_ns.to_string(),
                    peers: peers.iter().cloned().collect(),
                }),
            },
        );
    }
    (l2, bgp)
}

/// Writes this node's status objects and events.
pub struct StatusWriter {
    client: Client,
    namespace: String,
    node: String,
    owner: Option<OwnerReference>,
    events: EventWriter,
    /// What was written, by name (`None` before the first sync: unknown).
    l2: Option<BTreeMap<String, ServiceL2Status>>,
    bgp: Option<BTreeMap<String, ServiceBGPStatus>>,
    announced: Announced,
}

fn api_err(what: String) -> impl FnOnce(kube::Error) -> SinkError {
    move |source| SinkError::Api { what, source }
}

impl StatusWriter {
    /// A writer for `node`'s objects in `namespace`, owned by `owner` (the speaker pod).
    pub fn new(
        client: Client,
        namespace: &str,
        node: &str,
        owner: Option<OwnerReference>,
    ) -> StatusWriter {
        let reporter = Reporter {
            controller: "metallb-speaker".into(),
            instance: Some(node.to_string()),
        };
        StatusWriter {
            events: EventWriter::new(client.clone(), reporter),
            client,
            namespace: namespace.to_string(),
            node: node.to_string(),
            owner,
            l2: None,
            bgp: None,
            announced: Announced::default(),
        }
    }

    /// Brings the objects in line with `announced`, and publishes `nodeAssigned` on each
    /// Service this node starts announcing (`service` finds it, for the event's
    /// reference). Stops at the first failed write; the next call tries again.
    pub async fn sync(
        &mut self,
        announced: &Announced,
        service: impl Fn(&str) -> Option<Arc<Service>>,
    ) -> Result<(), SinkError> {
        let (want_l2, want_bgp) =
            wanted_objects(&self.namespace, &self.node, self.owner.as_ref(), announced);
        let l2_api: Api<ServiceL2Status> = Api::namespaced(self.client.clone(), &self.namespace);
        let bgp_api: Api<ServiceBGPStatus> = Api::namespaced(self.client.clone(), &self.namespace);
        let selector = format!("{LABEL_NODE}={}", self.node);
        let written_l2 = match self.l2.take() {
            Some(w) => w,
            None => existing(&l2_api, &selector).await?,
        };
        let written_bgp = match self.bgp.take() {
            Some(w) => w,
            None => existing(&bgp_api, &selector).await?,
        };
        let l2 = sync_kind(&l2_api, written_l2, want_l2).await;
        let bgp = sync_kind(&bgp_api, written_bgp, want_bgp).await;
        let (l2, l2_err) = l2;
        let (bgp, bgp_err) = bgp;
        self.l2 = Some(l2);
        self.bgp = Some(bgp);
        if let Some(e) = l2_err.or(bgp_err) {
            return Err(e);
        }
        // Events for what this node starts announcing.
        for (services, protocol, before) in [
            (&announced.l2, "layer2", &self.announced.l2),
            (&announced.bgp, "bgp", &self.announced.bgp),
        ] {
            for key in services.keys().filter(|k| !before.contains_key(*k)) {
                if let Some(svc) = service(key) {
                    self.publish(&svc, protocol).await;
                }
            }
        }
        self.announced = announced.clone();
        Ok(())
    }

    async fn publish(&self, service: &Service, protocol: &str) {
        let record = EventRecord {
            warning: false,
            reason: REASON_NODE_ASSIGNED.into(),
            note: format!(
                "announcing from node \"{}\" with protocol \"{protocol}\"",
                self.node
            ),
            action: "Announce".into(),
        };
        if let Err(e) = self.events.publish(&record, &service.object_ref(&())).await {
            tracing::warn!("publishing {REASON_NODE_ASSIGNED}: {e}");
        }
    }
}

/// This node's objects of one kind, as the API server has them.
async fn existing<K>(api: &Api<K>, selector: &str) -> Result<BTreeMap<String, K>, SinkError>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(api_err(format!("listing {}s", K::kind(&()))))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|o| Some((o.meta().name.clone()?, o)))
        .collect())
}

/// Writes the objects of `want` that differ from `written` (server-side apply of the
/// object, then of its status) and deletes those no longer wanted. Returns what the API
/// server has now, as far as known, and the first error.
async fn sync_kind<K>(
    api: &Api<K>,
    mut written: BTreeMap<String, K>,
    want: BTreeMap<String, K>,
) -> (BTreeMap<String, K>, Option<SinkError>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + HasStatus,
{
    let kind = K::kind(&()).to_string();
    let stale: Vec<String> = written
        .keys()
        .filter(|n| !want.contains_key(*n))
        .cloned()
        .collect();
    for name in stale {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {
                written.remove(&name);
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                written.remove(&name);
            }
            Err(e) => return (written, Some(api_err(format!("deleting {kind}/{name}"))(e))),
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for (name, obj) in want {
        if written.get(&name).is_some_and(|w| up_to_date(w, &obj)) {
            continue;
        }
        let mut body = serde_json::to_value(&obj).unwrap_or_default();
        if let Some(map) = body.as_object_mut() {
            map.insert("apiVersion".into(), K::api_version(&()).into());
            map.insert("kind".into(), kind.clone().into());
            map.remove("status");
        }
        if let Err(e) = api.patch(&name, &params, &Patch::Apply(&body)).await {
            return (written, Some(api_err(format!("writing {kind}/{name}"))(e)));
        }
        let status = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": kind,
            "metadata": {"name": name, "namespace": obj.meta().namespace},
            "status": obj.status_json(),
        });
        if let Err(e) = api
            .patch_status(&name, &params, &Patch::Apply(&status))
            .await
        {
            return (
                written,
                Some(api_err(format!("writing the status of {kind}/{name}"))(e)),
            );
        }
        written.insert(name, obj);
    }
    (written, None)
}

/// Whether a status object as written (or listed) is the one wanted: the same status,
/// labels and owner. An object a restarted speaker finds still owned by its previous
/// pod is written again, or the garbage collector would delete it with that pod.
pub fn up_to_date<K: Resource + HasStatus>(written: &K, wanted: &K) -> bool {
    written.status_json() == wanted.status_json()
        && written.meta().labels == wanted.meta().labels
        && written.meta().owner_references == wanted.meta().owner_references
}

/// The status of a status object, as JSON (to compare and to write).
pub trait HasStatus {
    /// The `status` field.
    fn status_json(&self) -> serde_json::Value;
}

impl HasStatus for ServiceL2Status {
    fn status_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.status).unwrap_or_default()
    }
}

impl HasStatus for ServiceBGPStatus {
    fn status_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.status).unwrap_or_default()
    }
}

/// A Service of the stores by `namespace/name`.
pub fn service_of(stores: &SpeakerStores, key: &str) -> Option<Arc<Service>> {
    let (ns, name) = split(key);
    stores.config.services.get(&ObjectRef::new(name).within(ns))
}

/// Whether every kind the speaker watches has been listed, given the kinds listed so
/// far.
pub fn all_listed(listed: &BTreeSet<&'static str>) -> bool {
    crate::source::KINDS.iter().all(|k| listed.contains(k)) && listed.contains(ENDPOINT_SLICE)
}

/// The Secret the speakers read their gossip key from (key
/// [`crate::sink::MEMBERLIST_KEY`]), which the controller creates when it is missing.
pub const MEMBERLIST_SECRET: &str = "memberlist";

/// How long a starting speaker waits for the gossip Secret before it starts without it.
pub const GOSSIP_SECRET_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The kind of the change [`gossip_wait_over`] reports.
pub const GOSSIP_WAIT_OVER: &str = "GossipSecretWaitOver";

/// One change, [`Change::Config`] of [`GOSSIP_WAIT_OVER`], `wait` from now: merged into
/// the speaker's changes, it ends [`StartGate`]'s wait for the gossip Secret even when
/// nothing else changes.
pub fn gossip_wait_over(wait: std::time::Duration) -> impl Stream<Item = Change> + Send {
    stream::once(async move {
        tokio::time::sleep(wait).await;
        Change::Config(GOSSIP_WAIT_OVER)
    })
}

impl SpeakerStores {
    /// Whether the gossip Secret `name` (by default [`MEMBERLIST_SECRET`]) holds its
    /// key.
    pub fn has_gossip_secret(&self, name: &str) -> bool {
        self.config.secrets.state().iter().any(|s| {
            s.metadata.name.as_deref() == Some(name)
                && s.data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(crate::sink::MEMBERLIST_KEY))
        })
    }
}

/// When a starting speaker hands its first snapshot to the node core, which starts the
/// membership with the gossip key the snapshot holds and keeps that key: once every kind
/// has listed and the gossip Secret is there, or the wait for it
/// ([`gossip_wait_over`]) is over. On a fresh install the speakers list before the
/// controller has created the Secret; starting then, they would gossip in plain text
/// while the speakers started later seal their packets, and the two groups would not
/// hear each other. Once open it stays open.
#[derive(Debug)]
pub struct StartGate {
    listed: BTreeSet<&'static str>,
    wait_over: bool,
    open: bool,
    secret: String,
}

impl Default for StartGate {
    fn default() -> Self {
        StartGate::for_secret(MEMBERLIST_SECRET)
    }
}

impl StartGate {
    /// A closed gate waiting for the Secret [`MEMBERLIST_SECRET`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A closed gate waiting for the gossip Secret named `secret`.
    pub fn for_secret(secret: &str) -> Self {
        StartGate {
            listed: BTreeSet::new(),
            wait_over: false,
            open: false,
            secret: secret.to_string(),
        }
    }

    /// Takes note of one change.
    pub fn see(&mut self, change: &Change) {
        match change {
            Change::Listed(kind) => {
                self.listed.insert(*kind);
            }
            Change::Config(kind) if *kind == GOSSIP_WAIT_OVER => self.wait_over = true,
            _ => {}
        }
    }

    /// Whether snapshots may go to the node core now.
    pub fn is_open(&mut self, stores: &SpeakerStores) -> bool {
        if !self.open && all_listed(&self.listed) {
            if stores.has_gossip_secret(&self.secret) {
                self.open = true;
            } else if self.wait_over {
                tracing::warn!(
                    "no gossip Secret {} after {GOSSIP_SECRET_WAIT:?}: membership starts without encryption",
                    self.secret
                );
                self.open = true;
            }
        }
        self.open
    }
}

/// Waits for the next change (`None` when the stream ended), then for quiet: further
/// changes arriving within `quiet` are taken together. Returns them.
pub async fn next_batch<S>(changes: &mut S, quiet: std::time::Duration) -> Option<Vec<Change>>
where
    S: Stream<Item = Change> + Unpin,
{
    let first = changes.next().await?;
    let mut batch = vec![first];
    while let Ok(Some(c)) = tokio::time::timeout(quiet, changes.next()).await {
        batch.push(c);
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announced() -> Announced {
        let mut a = Announced::default();
        a.l2.insert("shop/web".into(), ["eth0".to_string()].into());
        a.bgp.insert(
            "shop/api".into(),
            ["tor-a".to_string(), "tor-b".to_string()].into(),
        );
        a
    }

    #[test]
    fn objects_carry_metallb_labels_owner_and_status() {
        let owner = OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: "speaker-x".into(),
            uid: "u-1".into(),
            ..OwnerReference::default()
        };
        let (l2, bgp) = wanted_objects("metallb-system", "node-a", Some(&owner), &announced());
        assert_eq!(l2.len(), 1);
        let (name, obj) = l2.iter().next().unwrap();
        assert!(name.starts_with("l2-") && name.len() == 23, "{name}");
        let labels = obj.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_NODE], "node-a");
        assert_eq!(labels[LABEL_SERVICE_NAME], "web");
        assert_eq!(labels[LABEL_SERVICE_NAMESPACE], "shop");
        assert_eq!(
            obj.metadata.owner_references.as_ref().unwrap()[0].uid,
            "u-1"
        );
        let st = obj.status.as_ref().unwrap();
        assert_eq!(st.interfaces[0].name, "eth0");
        assert_eq!(
            (st.service_namespace.as_str(), st.node.as_str()),
            ("shop", "node-a")
        );
        let (_, b) = bgp.iter().next().unwrap();
        assert_eq!(b.status.as_ref().unwrap().peers, vec!["tor-a", "tor-b"]);
    }

    #[test]
    fn names_are_stable_and_differ_per_node_and_service() {
        let a = status_name("l2", "node-a", "shop/web");
        assert_eq!(a, status_name("l2", "node-a", "shop/web"));
        assert_ne!(a, status_name("l2", "node-b", "shop/web"));
        assert_ne!(a, status_name("l2", "node-a", "shop/api"));
        assert!(status_name("bgp", &"n".repeat(300), "x/y").len() < 64);
    }

    #[test]
    fn every_kind_must_be_listed() {
        let mut listed: BTreeSet<&'static str> = crate::source::KINDS.iter().copied().collect();
        assert!(!all_listed(&listed));
        listed.insert(ENDPOINT_SLICE);
        assert!(all_listed(&listed));
    }
}
