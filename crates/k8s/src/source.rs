//! The Kubernetes source: reflectors (kube's `watcher` feeding reflector stores) over
//! Services, Namespaces, Nodes, the Secrets and every `metallb.io` kind of ferrolb's
//! namespace, and the [`Change`]s they report. The stores are the cache; a
//! [`Snapshot`] of the configuration is built from them on demand.
//!
//! The `metallb.io` kinds are watched as `DynamicObject`s and decoded afterwards: the
//! API server returns objects as stored, and MetalLB's CRDs let some kinds leave out
//! `spec` (a bare `L2Advertisement` announces every pool), which the derived types
//! require. Decoding fills the missing `spec` (as the manifest source does) and turns
//! an object that still does not fit into a [`Problem`], so one bad object makes the
//! configuration invalid instead of stalling the watch.
//!
//! A change is reported only when it can change the configuration: a `metallb.io`
//! object whose status alone changed (the controller's own pool counts) and a Node whose
//! labels and addresses stayed the same (the kubelet's status reports) report nothing.
//! Stored objects lose their managed fields and `kubectl apply`'s last-applied copy.
//!
//! The watcher relists by itself when a watch ends with 410 Gone; the relist replaces
//! the store at its end and is reported as [`Change::Listed`], after which the caller
//! compares what it holds with the store (deletions missed during the gap are found
//! that way).

use crate::sink::CONFIGURATION_STATE_NAME;
use ferrolb_allocator::ServiceKey;
use ferrolb_model::crd::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, ConfigurationState, IPAddressPool,
    IPAddressPoolStatus, L2Advertisement, fill_optional_spec,
};
use ferrolb_model::{Problem, Snapshot};
use futures::stream::{BoxStream, SelectAll};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Secret, Service};
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::future::ready;
use std::sync::Arc;

/// Every kind watched, by name (as in [`Change::Listed`]).
pub const KINDS: &[&str] = &[
    "Service",
    "Namespace",
    "Node",
    "Secret",
    "IPAddressPool",
    "L2Advertisement",
    "BGPAdvertisement",
    "BGPPeer",
    "Community",
    "BFDProfile",
];

/// Something the watches saw. The stores already reflect it when it arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A Service was added or changed.
    Service(ServiceKey),
    /// A Service was deleted.
    ServiceDeleted(ServiceKey),
    /// A Namespace was added, changed or deleted (its labels may select pools).
    Namespace(String),
    /// An object the configuration is made of changed (metallb.io kinds, Nodes,
    /// Secrets).
    Config(&'static str),
    /// The controller's `ConfigurationState` was deleted (by someone else): it is
    /// written again.
    ConfigurationStateDeleted,
    /// A (re)list of the kind completed: its store now holds exactly what the API
    /// server listed.
    Listed(&'static str),
    /// A watch failed; the watcher retries with a backoff (and relists if needed).
    WatchError {
        /// The kind.
        kind: &'static str,
        /// What failed.
        error: String,
    },
}

/// The reflector stores.
#[derive(Clone)]
pub struct Stores {
    /// Services of every namespace.
    pub services: Store<Service>,
    /// Namespaces.
    pub namespaces: Store<Namespace>,
    /// Nodes.
    pub nodes: Store<Node>,
    /// Secrets of ferrolb's namespace (BGP passwords, the membership key).
    pub secrets: Store<Secret>,
    /// `IPAddressPool`s.
    pub pools: Store<DynamicObject>,
    /// `L2Advertisement`s.
    pub l2_advertisements: Store<DynamicObject>,
    /// `BGPAdvertisement`s.
    pub bgp_advertisements: Store<DynamicObject>,
    /// `BGPPeer`s (v1beta2).
    pub bgp_peers: Store<DynamicObject>,
    /// `Community`s.
    pub communities: Store<DynamicObject>,
    /// `BFDProfile`s.
    pub bfd_profiles: Store<DynamicObject>,
}

type Changes = SelectAll<BoxStream<'static, Change>>;

/// Starts nothing by itself: returns the stores and the merged stream of changes that
/// drives every watch (poll it to keep the stores current).
pub fn watch_all(
    client: Client,
    namespace: &str,
) -> (Stores, impl Stream<Item = Change> + Send + use<>) {
    let mut streams: Changes = SelectAll::new();
    let config = watcher::Config::default();
    let (services, s) = typed(
        Api::<Service>::all(client.clone()),
        config.clone(),
        "Service",
        |event| match event {
            watcher::Event::Apply(s) => Some(Change::Service(ServiceKey::of(s))),
            watcher::Event::Delete(s) => Some(Change::ServiceDeleted(ServiceKey::of(s))),
            _ => None,
        },
    );
    streams.push(s);
    let (namespaces, s) = typed(
        Api::<Namespace>::all(client.clone()),
        config.clone(),
        "Namespace",
        |event| match event {
            watcher::Event::Apply(n) | watcher::Event::Delete(n) => {
                Some(Change::Namespace(n.name_any()))
            }
            _ => None,
        },
    );
    streams.push(s);
    let (nodes, s) = typed(
        Api::<Node>::all(client.clone()),
        config.clone(),
        "Node",
        node_change(),
    );
    streams.push(s);
    let (secrets, s) = typed(
        Api::<Secret>::namespaced(client.clone(), namespace),
        config.clone(),
        "Secret",
        config_change("Secret"),
    );
    streams.push(s);
    let mut dynamic = |ar: ApiResource, kind: &'static str| {
        let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &ar);
        let writer = Writer::new(ar);
        let reader = writer.as_reader();
        streams.push(changes(
            watcher(api, config.clone())
                .default_backoff()
                .modify(|o: &mut DynamicObject| o.metadata.managed_fields = None),
            writer,
            kind,
            spec_change(kind),
        ));
        reader
    };
    let pools = dynamic(ApiResource::erase::<IPAddressPool>(&()), "IPAddressPool");
    let l2_advertisements = dynamic(
        ApiResource::erase::<L2Advertisement>(&()),
        "L2Advertisement",
    );
    let bgp_advertisements = dynamic(
        ApiResource::erase::<BGPAdvertisement>(&()),
        "BGPAdvertisement",
    );
    let bgp_peers = dynamic(ApiResource::erase::<BGPPeer>(&()), "BGPPeer");
    let communities = dynamic(ApiResource::erase::<Community>(&()), "Community");
    let bfd_profiles = dynamic(ApiResource::erase::<BFDProfile>(&()), "BFDProfile");
    // The controller's ConfigurationState, only to notice its deletion (no store, and
    // not among the kinds that must list before the controller starts: it may be
    // missing until the controller writes it).
    let states = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<ConfigurationState>(&()),
    );
    streams.push(
        watcher(
            states,
            config
                .clone()
                .fields(&format!("metadata.name={CONFIGURATION_STATE_NAME}")),
        )
        .default_backoff()
        .filter_map(|event| {
            ready(match event {
                Ok(watcher::Event::Delete(_)) => Some(Change::ConfigurationStateDeleted),
                Ok(_) => None,
                Err(e) => Some(Change::WatchError {
                    kind: "ConfigurationState",
                    error: e.to_string(),
                }),
            })
        })
        .boxed(),
    );
    let stores = Stores {
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
    (stores, streams)
}

fn config_change<K>(kind: &'static str) -> impl Fn(&watcher::Event<K>) -> Option<Change> {
    move |event| match event {
        watcher::Event::Apply(_) | watcher::Event::Delete(_) => Some(Change::Config(kind)),
        _ => None,
    }
}

/// What of a `metallb.io` object the configuration is made of: all but its status
/// and what the API server changes with any write (resource version, managed fields).
#[derive(Clone, Debug, PartialEq)]
struct Shape {
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    data: serde_json::Map<String, serde_json::Value>,
}

impl Shape {
    fn of(object: &DynamicObject) -> Shape {
        let mut metadata = object.metadata.clone();
        metadata.resource_version = None;
        metadata.managed_fields = None;
        let mut data = object.data.as_object().cloned().unwrap_or_default();
        data.remove("status");
        Shape { metadata, data }
    }
}

/// Whether two versions of a `metallb.io` object differ in more than their status (and
/// resource version and managed fields): only then can the configuration differ. A
/// write to the status subresource (the controller's own pool counts) changes nothing
/// else.
pub fn changed_apart_from_status(old: &DynamicObject, new: &DynamicObject) -> bool {
    Shape::of(old) != Shape::of(new)
}

/// The changes of a `metallb.io` kind: every deletion, and an addition or change unless
/// it touched the object's status only (then the configuration is the same, and
/// reloading it, decoding and validating every object again, would be wasted).
fn spec_change(kind: &'static str) -> impl FnMut(&watcher::Event<DynamicObject>) -> Option<Change> {
    // The shapes last seen, by namespace and name.
    let mut seen: HashMap<(Option<String>, Option<String>), Shape> = HashMap::new();
    move |event| {
        let key = |o: &DynamicObject| (o.metadata.namespace.clone(), o.metadata.name.clone());
        match event {
            watcher::Event::Init => {
                seen.clear();
                None
            }
            watcher::Event::InitApply(o) => {
                seen.insert(key(o), Shape::of(o));
                None
            }
            watcher::Event::InitDone => None,
            watcher::Event::Apply(o) => {
                let shape = Shape::of(o);
                if seen.get(&key(o)) == Some(&shape) {
                    tracing::debug!(
                        "{kind} {}: status only, the configuration is the same",
                        o.metadata.name.as_deref().unwrap_or_default()
                    );
                    return None;
                }
                seen.insert(key(o), shape);
                Some(Change::Config(kind))
            }
            watcher::Event::Delete(o) => {
                seen.remove(&key(o));
                Some(Change::Config(kind))
            }
        }
    }
}

/// What of a Node the configuration reads: its labels (advertisements select nodes by
/// them) and its addresses (a pool must not hold a node's address).
#[derive(Clone, Debug, PartialEq)]
struct NodeShape {
    uid: Option<String>,
    labels: Option<std::collections::BTreeMap<String, String>>,
    addresses: Option<Vec<k8s_openapi::api::core::v1::NodeAddress>>,
}

impl NodeShape {
    fn of(node: &Node) -> NodeShape {
        NodeShape {
            uid: node.metadata.uid.clone(),
            labels: node.metadata.labels.clone(),
            addresses: node.status.as_ref().and_then(|s| s.addresses.clone()),
        }
    }
}

/// Whether two versions of a Node differ in what the configuration reads of it (its
/// labels, its addresses): the kubelet's status reports (conditions, heartbeats, images)
/// change nothing of it.
pub fn node_changed_for_config(old: &Node, new: &Node) -> bool {
    NodeShape::of(old) != NodeShape::of(new)
}

/// The changes of Nodes: every deletion, and an addition or change of what the
/// configuration reads of a Node (see [`node_changed_for_config`]).
fn node_change() -> impl FnMut(&watcher::Event<Node>) -> Option<Change> {
    let mut seen: HashMap<String, NodeShape> = HashMap::new();
    move |event| match event {
        watcher::Event::Init => {
            seen.clear();
            None
        }
        watcher::Event::InitApply(n) => {
            seen.insert(n.name_any(), NodeShape::of(n));
            None
        }
        watcher::Event::InitDone => None,
        watcher::Event::Apply(n) => {
            let shape = NodeShape::of(n);
            if seen.get(&n.name_any()) == Some(&shape) {
                return None;
            }
            seen.insert(n.name_any(), shape);
            Some(Change::Config("Node"))
        }
        watcher::Event::Delete(n) => {
            seen.remove(&n.name_any());
            Some(Change::Config("Node"))
        }
    }
}

/// The annotation `kubectl apply` keeps the whole last applied object in: often the
/// largest part of a stored object, and never read by ferrolb.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops from an object what ferrolb never reads before it is stored: its managed
/// fields and the `kubectl apply` annotation. The controller never writes a stored
/// object back (only merge patches of the fields it owns), so nothing is lost.
pub fn strip<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// A typed reflector: its store and its changes.
pub(crate) fn typed<K>(
    api: Api<K>,
    config: watcher::Config,
    kind: &'static str,
    map: impl FnMut(&watcher::Event<K>) -> Option<Change> + Send + 'static,
) -> (Store<K>, BoxStream<'static, Change>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let writer = Writer::default();
    let reader = writer.as_reader();
    let stream = watcher(api, config)
        .default_backoff()
        // The managed fields and `kubectl apply`'s copy are large and never read.
        .modify(strip::<K>);
    (reader, changes(stream, writer, kind, map))
}

/// Feeds the store and maps what the watcher reports to [`Change`]s.
fn changes<K, S>(
    stream: S,
    writer: Writer<K>,
    kind: &'static str,
    mut map: impl FnMut(&watcher::Event<K>) -> Option<Change> + Send + 'static,
) -> BoxStream<'static, Change>
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    reflector::reflector(writer, stream)
        .filter_map(move |event| {
            ready(match event {
                Ok(watcher::Event::InitDone) => Some(Change::Listed(kind)),
                Ok(e) => map(&e),
                Err(e) => Some(Change::WatchError {
                    kind,
                    error: e.to_string(),
                }),
            })
        })
        .boxed()
}

/// Decodes a watched `metallb.io` object into its type: the missing `spec` of a kind
/// that may omit it is filled in; an object that does not fit is a [`Problem`].
pub fn decode<K>(object: &DynamicObject) -> Result<K, Problem>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let name = object.metadata.name.clone().unwrap_or_default();
    let kind = K::kind(&());
    let mut value = serde_json::to_value(object)
        .map_err(|e| Problem::new(&kind, &name, "", format!("cannot be read: {e}")))?;
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), K::api_version(&()).into());
        map.insert("kind".into(), kind.to_string().into());
    }
    fill_optional_spec(&mut value);
    serde_json::from_value(value)
        .map_err(|e| Problem::new(&kind, &name, "", format!("does not fit the schema: {e}")))
}

fn sorted<K: Resource>(mut list: Vec<Arc<K>>) -> Vec<Arc<K>> {
    list.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
    list
}

fn clone_all<K: Resource + Clone>(list: Vec<Arc<K>>) -> Vec<K> {
    sorted(list).iter().map(|o| o.as_ref().clone()).collect()
}

fn decode_all<K>(store: &Store<DynamicObject>, problems: &mut Vec<Problem>) -> Vec<K>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    sorted(store.state())
        .iter()
        .filter_map(|o| decode::<K>(o).map_err(|p| problems.push(p)).ok())
        .collect()
}

impl Stores {
    /// The configuration objects (metallb.io kinds, Namespaces, Nodes, Secrets; no
    /// Services) as a [`Snapshot`], in name order, and the problems of objects that did
    /// not decode.
    pub fn config_snapshot(&self) -> (Snapshot, Vec<Problem>) {
        let mut problems = Vec::new();
        let snapshot = Snapshot {
            pools: decode_all(&self.pools, &mut problems),
            l2_advertisements: decode_all(&self.l2_advertisements, &mut problems),
            bgp_advertisements: decode_all(&self.bgp_advertisements, &mut problems),
            bgp_peers: decode_all(&self.bgp_peers, &mut problems),
            communities: decode_all(&self.communities, &mut problems),
            bfd_profiles: decode_all(&self.bfd_profiles, &mut problems),
            services: Vec::new(),
            namespaces: clone_all(self.namespaces.state()),
            nodes: clone_all(self.nodes.state()),
            secrets: clone_all(self.secrets.state()),
            endpoint_slices: Vec::new(),
        };
        (snapshot, problems)
    }

    /// Waits until every store [`Stores::config_snapshot`] reads has listed once;
    /// `false` if the watches are gone first.
    pub async fn config_ready(&self) -> bool {
        let waits = [
            self.namespaces.wait_until_ready().await.is_ok(),
            self.nodes.wait_until_ready().await.is_ok(),
            self.secrets.wait_until_ready().await.is_ok(),
            self.pools.wait_until_ready().await.is_ok(),
            self.l2_advertisements.wait_until_ready().await.is_ok(),
            self.bgp_advertisements.wait_until_ready().await.is_ok(),
            self.bgp_peers.wait_until_ready().await.is_ok(),
            self.communities.wait_until_ready().await.is_ok(),
            self.bfd_profiles.wait_until_ready().await.is_ok(),
        ];
        waits.iter().all(|ok| *ok)
    }

    /// A Service by key.
    pub fn service(&self, key: &ServiceKey) -> Option<Arc<Service>> {
        self.services
            .get(&reflector::ObjectRef::new(&key.name).within(&key.namespace))
    }

    /// A namespace by name.
    pub fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        self.namespaces.get(&reflector::ObjectRef::new(name))
    }

    /// The `metadata.uid` and the status of the `IPAddressPool` of that name, if it
    /// exists (the status `None` when it has none or it does not decode).
    pub fn pool_status(&self, name: &str) -> Option<(Option<String>, Option<IPAddressPoolStatus>)> {
        let obj = self
            .pools
            .state()
            .into_iter()
            .find(|o| o.metadata.name.as_deref() == Some(name))?;
        Some(uid_and_status(&obj))
    }

    /// [`Stores::pool_status`] of every `IPAddressPool`, by name, in one pass.
    pub fn pool_statuses(&self) -> HashMap<String, PoolShown> {
        self.pools
            .state()
            .into_iter()
            .filter_map(|o| Some((o.metadata.name.clone()?, uid_and_status(&o))))
            .collect()
    }
}

/// An `IPAddressPool`'s `metadata.uid` and status, as [`Stores::pool_status`] says.
pub type PoolShown = (Option<String>, Option<IPAddressPoolStatus>);

fn uid_and_status(obj: &DynamicObject) -> PoolShown {
    let status = obj
        .data
        .get("status")
        .and_then(|s| serde_json::from_value(s.clone()).ok());
    (obj.metadata.uid.clone(), status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dynamic(value: serde_json::Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_stored_object_without_spec_decodes_when_its_kind_allows_it() {
        // As the API server returns a bare L2Advertisement: no spec at all.
        let obj = dynamic(json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": "all", "namespace": "metallb-system", "resourceVersion": "5"}
        }));
        let l2: L2Advertisement = decode(&obj).expect("decodes");
        assert_eq!(l2.metadata.name.as_deref(), Some("all"));
        assert!(l2.spec.ip_address_pools.is_empty());
    }

    #[test]
    fn an_object_that_does_not_fit_is_a_problem_naming_it() {
        let obj = dynamic(json!({
            "metadata": {"name": "broken", "namespace": "metallb-system"},
            "spec": {"addresses": "192.0.2.0/24"}
        }));
        let problem = decode::<IPAddressPool>(&obj).expect_err("a string is not a list");
        assert_eq!(problem.object, "IPAddressPool/broken");
    }
}
