//! `ferrolb status` against a cluster: one JSON document, of the same shape as a
//! standalone agent's `/status`, gathered from the API server.
//!
//! - pools: the `IPAddressPool`s and the counts the controller writes in their status;
//! - services: every LoadBalancer Service's addresses (its status) and pool (the
//!   `metallb.io/ip-allocated-from-pool` annotation), who announces it in layer 2 mode
//!   (`ServiceL2Status`) and over BGP (`ServiceBGPStatus`: nodes and peers);
//! - configuration: the controller's `ConfigurationState`;
//! - BGP sessions, BFD and membership: each speaker's own `/status`, read through the API
//!   server's pod proxy (`pods/<name>:<port>/proxy/status`); a speaker that cannot be
//!   read is listed with the reason.
//!
//! Errors say what to do: an unreachable API server, or a permission the user lacks
//! (with the resource).

use ferrolb_model::crd::{ConfigurationState, IPAddressPool, ServiceBGPStatus, ServiceL2Status};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Where the speakers are and how to reach their `/status`.
#[derive(Clone, Debug)]
pub struct SpeakerPods {
    /// Label selector of the speaker pods.
    pub selector: String,
    /// Their HTTP port.
    pub port: u16,
}

impl Default for SpeakerPods {
    fn default() -> Self {
        SpeakerPods {
            selector: "app.kubernetes.io/component=speaker".into(),
            port: 7473,
        }
    }
}

/// A failure, worded for the person running the command.
fn explain(what: &str, e: kube::Error) -> String {
    match &e {
        kube::Error::Api(s) if s.code == 403 => format!(
            "permission denied reading {what}: {} (your user needs get/list on it; `kubectl auth can-i list {what}` tells)",
            s.message
        ),
        kube::Error::Api(s) if s.code == 404 => format!(
            "{what}: not found ({}): are ferrolb's CRDs installed (`ferrolb crds | kubectl apply -f -`)?",
            s.message
        ),
        kube::Error::Api(s) => format!("reading {what}: {} ({})", s.message, s.code),
        _ => format!(
            "cannot reach the Kubernetes API reading {what}: {e} (check KUBECONFIG and `kubectl config current-context`)"
        ),
    }
}

async fn list_dynamic<K>(client: &Client, namespace: &str) -> Result<Vec<DynamicObject>, String>
where
    K: Resource<DynamicType = ()>,
{
    let ar = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(|e| explain(&ar.plural, e))
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// The document (see the module docs).
pub async fn cluster_status(
    client: &Client,
    namespace: &str,
    speakers: &SpeakerPods,
) -> Result<Value, String> {
    let pools = list_dynamic::<IPAddressPool>(client, namespace).await?;
    let l2 = list_dynamic::<ServiceL2Status>(client, namespace).await?;
    let bgp = list_dynamic::<ServiceBGPStatus>(client, namespace).await?;
    let states = list_dynamic::<ConfigurationState>(client, namespace).await?;
    let services: Vec<Service> = Api::<Service>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| explain("services", e))?
        .items;

    let pools: Vec<Value> = pools
        .iter()
        .map(|p| {
            let st = &p.data["status"];
            let n = |k: &str| st[k].as_i64().unwrap_or(0);
            json!({
                "pool": p.name_any(),
                "assigned_ipv4": n("assignedIPv4"), "available_ipv4": n("availableIPv4"),
                "assigned_ipv6": n("assignedIPv6"), "available_ipv6": n("availableIPv6"),
            })
        })
        .collect();

    // Who announces what, from the speakers' status objects.
    let key_of = |o: &DynamicObject| {
        let st = &o.data["status"];
        format!(
            "{}/{}",
            text(&st["serviceNamespace"]),
            text(&st["serviceName"])
        )
    };
    // Service -> announcing node -> the interfaces it answers on (none listed: every
    // eligible one).
    let mut l2_nodes: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for o in &l2 {
        let st = &o.data["status"];
        let interfaces = st["interfaces"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| text(&i["name"]))
            .filter(|n| !n.is_empty());
        l2_nodes
            .entry(key_of(o))
            .or_default()
            .entry(text(&st["node"]))
            .or_default()
            .extend(interfaces);
    }
    let mut bgp_nodes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut bgp_peers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for o in &bgp {
        let key = key_of(o);
        bgp_nodes
            .entry(key.clone())
            .or_default()
            .insert(text(&o.data["status"]["node"]));
        for p in o.data["status"]["peers"].as_array().into_iter().flatten() {
            bgp_peers.entry(key.clone()).or_default().insert(text(p));
        }
    }
    let mut rows = Vec::new();
    for svc in &services {
        if svc.spec.as_ref().and_then(|s| s.type_.as_deref()) != Some("LoadBalancer") {
            continue;
        }
        let key = format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any());
        let (ips, _) = ferrolb_allocator::status_ips(svc);
        let pool = svc
            .annotations()
            .get(ferrolb_model::annotations::IP_ALLOCATED_FROM_POOL)
            .cloned();
        let nodes = l2_nodes.get(&key).cloned().unwrap_or_default();
        // The status objects are per Service, not per address: each address is shown with
        // the node(s) announcing the Service.
        let announced_by: Vec<Value> = ips
            .iter()
            .flat_map(|ip| {
                nodes
                    .iter()
                    .map(move |(n, interfaces)| json!([ip.to_string(), n, interfaces]))
            })
            .collect();
        rows.push(json!({
            "service": key,
            "ips": ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "pool": pool,
            "error": if ips.is_empty() { Some("no address (see the Service's events)") } else { None },
            "announced_by": announced_by,
            "bgp_peers": bgp_peers.get(&key).cloned().unwrap_or_default(),
            "bgp_nodes": bgp_nodes.get(&key).cloned().unwrap_or_default(),
        }));
    }
    rows.sort_by_key(|r| text(&r["service"]));

    let controller = states.iter().find(|s| {
        s.labels()
            .get("metallb.io/component-type")
            .map(String::as_str)
            == Some("controller")
    });
    let (loaded, stale, problems) = match controller {
        None => (false, false, Vec::new()),
        Some(s) => {
            let st = &s.data["status"];
            let summary = text(&st["errorSummary"]);
            let problems: Vec<String> = summary
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect();
            (true, text(&st["result"]) == "Invalid", problems)
        }
    };

    let (sessions, members, speaker_rows) = speakers_status(client, namespace, speakers).await;
    Ok(json!({
        "source": "cluster",
        "node": format!("cluster (namespace {namespace})"),
        "config_loaded": loaded,
        "config_stale": stale,
        "problems": problems,
        "members": members,
        "pools": pools,
        "services": rows,
        "bgp_sessions": sessions,
        "speakers": speaker_rows,
    }))
}

/// Each speaker's `/status` through the pod proxy: the BGP sessions (with their node),
/// the members as the speakers see them, and one row per speaker (with the error when
/// it could not be read).
async fn speakers_status(
    client: &Client,
    namespace: &str,
    speakers: &SpeakerPods,
) -> (Vec<Value>, Option<Vec<String>>, Vec<Value>) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = match pods
        .list(&ListParams::default().labels(&speakers.selector))
        .await
    {
        Ok(l) => l.items,
        Err(e) => {
            return (
                Vec::new(),
                None,
                vec![json!({"pod": null, "node": null, "error": explain("pods", e)})],
            );
        }
    };
    let mut sessions = Vec::new();
    let mut members: Option<BTreeSet<String>> = None;
    let mut rows = Vec::new();
    for pod in list {
        let name = pod.name_any();
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let path = format!(
            "/api/v1/namespaces/{namespace}/pods/{name}:{}/proxy/status",
            speakers.port
        );
        let request = http::Request::get(&path).body(Vec::new());
        let answer = match request {
            Ok(r) => client
                .request_text(r)
                .await
                .map_err(|e| explain("pods/proxy", e)),
            Err(e) => Err(e.to_string()),
        };
        let status: Result<Value, String> = answer.and_then(|t| {
            serde_json::from_str(&t).map_err(|e| format!("not a speaker's /status: {e}"))
        });
        match status {
            Ok(st) => {
                for s in st["bgp_sessions"].as_array().into_iter().flatten() {
                    let mut s = s.clone();
                    s["node"] = json!(node);
                    sessions.push(s);
                }
                if let Some(m) = st["members"].as_array() {
                    members
                        .get_or_insert_with(BTreeSet::new)
                        .extend(m.iter().map(text));
                }
                rows.push(json!({"pod": name, "node": node, "error": null}));
            }
            Err(e) => rows.push(json!({"pod": name, "node": node, "error": e})),
        }
    }
    (sessions, members.map(|m| m.into_iter().collect()), rows)
}
