//! The deployment files: the Helm chart `deploy/helm/ferrolb`, the plain manifests
//! rendered from it (`deploy/manifests/`) and the Dockerfile.
//!
//! The manifests are read into `k8s-openapi` types and checked for what matters on a
//! cluster: two controller replicas and their disruption budget, the speaker on the host
//! network with exactly NET_RAW and NET_ADMIN, probes, least-privilege RBAC, the webhook's
//! names and failure policy, and alerts and dashboard panels that use metric names the
//! binaries export (read from their source). With helm available (`$HELM`, the copy
//! `scripts/test` installs, or `helm` on PATH) the chart is also linted, rendered with
//! other values, and the checked-in manifests are compared with a fresh rendering.

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const NAMESPACE: &str = "metallb-system";
const MANIFESTS: &str = "deploy/manifests/ferrolb.yaml";
const MONITORING: &str = "deploy/manifests/ferrolb-monitoring.yaml";
const CHART: &str = "deploy/helm/ferrolb";
const HELM_VERSION: &str = "3.10.1";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The objects of a multi-document YAML text (empty documents left out).
fn objects(text: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).expect("valid YAML");
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

struct Objects(Vec<Value>);

impl Objects {
    fn load(path: &str) -> Self {
        Objects(objects(&read(path)))
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.0.iter().filter(|o| o["kind"] == kind).collect()
    }

    /// The one object of `kind` named `name`, as `T`.
    fn get<T: DeserializeOwned>(&self, kind: &str, name: &str) -> T {
        let found: Vec<&Value> = self
            .of_kind(kind)
            .into_iter()
            .filter(|o| o["metadata"]["name"] == name)
            .collect();
        assert_eq!(found.len(), 1, "exactly one {kind}/{name}");
        serde_json::from_value(found[0].clone())
            .unwrap_or_else(|e| panic!("{kind}/{name} does not fit its schema: {e}"))
    }

    fn all<T: DeserializeOwned>(&self, kind: &str) -> Vec<T> {
        self.of_kind(kind)
            .into_iter()
            .map(|o| {
                serde_json::from_value(o.clone()).unwrap_or_else(|e| {
                    panic!(
                        "{kind}/{} does not fit its schema: {e}",
                        o["metadata"]["name"]
                    )
                })
            })
            .collect()
    }
}

fn pod_spec_of_deployment(d: &Deployment) -> &PodSpec {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec")
}

fn only_container(spec: &PodSpec) -> &Container {
    assert_eq!(spec.containers.len(), 1, "one container");
    &spec.containers[0]
}

fn quantity_keys(
    map: &Option<BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> BTreeSet<String> {
    map.as_ref()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Probes on /healthz (liveness) and /readyz (readiness), on the container port serving
/// them; resource requests and no CPU limit.
fn check_probes_and_resources(c: &Container, port: i32) {
    for (probe, path) in [
        (c.liveness_probe.as_ref(), "/healthz"),
        (c.readiness_probe.as_ref(), "/readyz"),
    ] {
        let get = probe
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("{}: an HTTP probe on {path}", c.name));
        assert_eq!(get.path.as_deref(), Some(path), "{}", c.name);
        let probed = match &get.port {
            IntOrString::Int(p) => *p,
            IntOrString::String(name) => {
                c.ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(name))
                    .unwrap_or_else(|| panic!("{}: no port named {name}", c.name))
                    .container_port
            }
        };
        assert_eq!(
            probed, port,
            "{}: {path} probed on the metrics port",
            c.name
        );
    }
    let resources = c.resources.as_ref().expect("resources");
    let requests = quantity_keys(&resources.requests);
    assert!(
        requests.contains("cpu") && requests.contains("memory"),
        "{}: CPU and memory requests, got {requests:?}",
        c.name
    );
    assert!(
        !quantity_keys(&resources.limits).contains("cpu"),
        "{}: no CPU limit (throttling delays failover)",
        c.name
    );
}

fn env_field_ref<'a>(c: &'a Container, name: &str) -> Option<&'a str> {
    c.env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.field_ref.as_ref())
        .map(|f| f.field_path.as_str())
}

/// Where `typed` (the object read into its `k8s-openapi` type and written back) differs
/// from `raw` (as written): a field the type does not know is dropped, so a misspelt or
/// misplaced field shows here, which plain deserialization would ignore.
fn schema_differences(raw: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (raw, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(vb) => schema_differences(va, vb, &p, out),
                    // An empty object or list written out may be left out by the type.
                    None if va.as_object().is_some_and(|o| o.is_empty())
                        || va.as_array().is_some_and(|l| l.is_empty()) => {}
                    None => out.push(format!("{p}: not a field of the type")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                schema_differences(va, vb, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: written {a}, read as {b}")),
    }
}

fn check_schema<T: DeserializeOwned + serde::Serialize>(raw: &Value) -> Vec<String> {
    let typed: T = match serde_json::from_value(raw.clone()) {
        Ok(t) => t,
        Err(e) => return vec![format!("does not fit its schema: {e}")],
    };
    let back = serde_json::to_value(&typed).expect("serializes");
    let mut out = Vec::new();
    schema_differences(raw, &back, "", &mut out);
    out
}

/// Every object of a known kind fits its Kubernetes schema exactly (no unknown field);
/// returns the kinds checked.
fn check_schemas(objs: &Objects) -> BTreeSet<String> {
    use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let mut checked = BTreeSet::new();
    let mut problems = Vec::new();
    for o in &objs.0 {
        let kind = o["kind"].as_str().unwrap_or_default();
        let found = match kind {
            "Namespace" => check_schema::<Namespace>(o),
            "CustomResourceDefinition" => check_schema::<CustomResourceDefinition>(o),
            "ServiceAccount" => check_schema::<ServiceAccount>(o),
            "ClusterRole" => check_schema::<ClusterRole>(o),
            "ClusterRoleBinding" => check_schema::<ClusterRoleBinding>(o),
            "Role" => check_schema::<Role>(o),
            "RoleBinding" => check_schema::<RoleBinding>(o),
            "Deployment" => check_schema::<Deployment>(o),
            "DaemonSet" => check_schema::<DaemonSet>(o),
            "PodDisruptionBudget" => check_schema::<PodDisruptionBudget>(o),
            "Service" => check_schema::<Service>(o),
            "ConfigMap" => check_schema::<ConfigMap>(o),
            "ValidatingWebhookConfiguration" => check_schema::<ValidatingWebhookConfiguration>(o),
            // The Prometheus operator's kinds have no type here: tests below check them.
            "ServiceMonitor" | "PrometheusRule" => continue,
            other => panic!("unexpected kind {other:?}"),
        };
        checked.insert(kind.to_string());
        for p in found {
            problems.push(format!(
                "{kind}/{}{p}",
                o["metadata"]["name"].as_str().unwrap_or("?")
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "objects that do not fit their schema:\n{}",
        problems.join("\n")
    );
    checked
}

#[test]
fn every_object_fits_its_kubernetes_schema() {
    let checked = check_schemas(&Objects::load(MANIFESTS));
    for kind in [
        "CustomResourceDefinition",
        "Deployment",
        "DaemonSet",
        "ValidatingWebhookConfiguration",
        "ClusterRole",
        "Role",
    ] {
        assert!(checked.contains(kind), "{kind} checked");
    }
    let checked = check_schemas(&Objects::load(MONITORING));
    assert!(checked.contains("Service") && checked.contains("ConfigMap"));
}

#[test]
fn the_schema_check_catches_a_misplaced_field() {
    let objs = Objects::load(MANIFESTS);
    let mut d = objs
        .of_kind("Deployment")
        .first()
        .map(|d| (*d).clone())
        .expect("a Deployment");
    assert!(check_schema::<Deployment>(&d).is_empty());
    d["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] =
        d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].clone();
    let found = check_schema::<Deployment>(&d);
    assert_eq!(
        found,
        vec![
            ".spec.template.spec.containers[0].readinessProbes: not a field of the type"
                .to_string()
        ]
    );
}

#[test]
fn chart_crds_are_ferrolbs() {
    // deploy/crds/metallb.io.yaml is kept identical to `ferrolb crds` by tests/cli.rs.
    assert!(
        read("deploy/crds/metallb.io.yaml") == read(&format!("{CHART}/crds/metallb.io.yaml")),
        "{CHART}/crds/metallb.io.yaml differs from deploy/crds/metallb.io.yaml: run scripts/render-manifests"
    );
    let objs = Objects::load(MANIFESTS);
    let crds: BTreeSet<String> = objs
        .of_kind("CustomResourceDefinition")
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    for plural in [
        "ipaddresspools",
        "l2advertisements",
        "bgpadvertisements",
        "bgppeers",
        "communities",
        "bfdprofiles",
        "configurationstates",
        "servicel2statuses",
        "servicebgpstatuses",
    ] {
        assert!(
            crds.contains(&format!("{plural}.metallb.io")),
            "CRD {plural}"
        );
    }
}

#[test]
fn every_namespaced_object_is_in_the_release_namespace() {
    let objs = Objects::load(MANIFESTS);
    let ns: k8s_openapi::api::core::v1::Namespace = objs.get("Namespace", NAMESPACE);
    let labels = ns.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("privileged"),
        "the speaker needs a privileged namespace"
    );
    let cluster_scoped = [
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingWebhookConfiguration",
    ];
    for o in &objs.0 {
        let kind = o["kind"].as_str().expect("kind");
        let namespace = o["metadata"]["namespace"].as_str();
        if cluster_scoped.contains(&kind) {
            assert_eq!(namespace, None, "{kind} is cluster-scoped");
        } else {
            assert_eq!(
                namespace,
                Some(NAMESPACE),
                "{kind}/{}",
                o["metadata"]["name"]
            );
        }
    }
}

#[test]
fn controller_runs_two_replicas_unprivileged_with_a_disruption_budget() {
    let objs = Objects::load(MANIFESTS);
    let d: Deployment = objs.get("Deployment", "ferrolb-controller");
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = pod_spec_of_deployment(&d);
    let c = only_container(pod);
    let args = c.args.clone().unwrap_or_default();
    assert_eq!(args.first().map(String::as_str), Some("controller"));
    for arg in [
        "--namespace=$(POD_NAMESPACE)",
        "--metrics-addr=0.0.0.0:7472",
        "--webhook-port=9443",
    ] {
        assert!(
            args.iter().any(|a| a == arg),
            "controller args lack {arg}: {args:?}"
        );
    }
    assert!(
        !args.iter().any(|a| a == "--no-leader-election"),
        "two replicas need the Lease"
    );
    assert_eq!(env_field_ref(c, "POD_NAME"), Some("metadata.name"));
    assert_eq!(
        env_field_ref(c, "POD_NAMESPACE"),
        Some("metadata.namespace")
    );
    check_probes_and_resources(c, 7472);

    let pod_sc = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(pod_sc.run_as_non_root, Some(true));
    assert!(pod_sc.run_as_user.is_some_and(|u| u != 0));
    let sc = c
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_ne!(sc.privileged, Some(true));
    let caps = sc.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert!(
        caps.add.as_ref().is_none_or(|a| a.is_empty()),
        "the controller adds no capability"
    );
    assert_ne!(pod.host_network, Some(true));

    // The disruption budget selects exactly the controller pods.
    let pdb: PodDisruptionBudget = objs.get("PodDisruptionBudget", "ferrolb-controller");
    let pdb_spec = pdb.spec.unwrap();
    assert_eq!(pdb_spec.min_available, Some(IntOrString::Int(1)));
    let selector = pdb_spec.selector.unwrap().match_labels.unwrap();
    let pod_labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    for (k, v) in &selector {
        assert_eq!(
            pod_labels.get(k),
            Some(v),
            "PDB selector {k}={v} matches the pods"
        );
    }
    assert_eq!(spec.selector.match_labels.as_ref(), Some(&selector));
}

#[test]
fn speaker_runs_on_every_node_with_only_net_raw_and_net_admin() {
    let objs = Objects::load(MANIFESTS);
    let ds: DaemonSet = objs.get("DaemonSet", "ferrolb-speaker");
    let pod = ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(pod.host_network, Some(true));
    let c = only_container(pod);
    let args = c.args.clone().unwrap_or_default();
    assert_eq!(args.first().map(String::as_str), Some("speaker"));
    for arg in [
        "--node-name=$(NODE_NAME)",
        "--namespace=$(POD_NAMESPACE)",
        "--metrics-addr=0.0.0.0:7473",
        "--gossip-port=7946",
    ] {
        assert!(
            args.iter().any(|a| a == arg),
            "speaker args lack {arg}: {args:?}"
        );
    }
    assert_eq!(env_field_ref(c, "NODE_NAME"), Some("spec.nodeName"));
    assert_eq!(env_field_ref(c, "POD_NAME"), Some("metadata.name"));
    assert_eq!(
        env_field_ref(c, "POD_NAMESPACE"),
        Some("metadata.namespace")
    );
    check_probes_and_resources(c, 7473);

    let sc = c
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_ne!(sc.privileged, Some(true), "not privileged");
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    let caps = sc.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    let added: BTreeSet<&str> = caps.add.iter().flatten().map(String::as_str).collect();
    assert_eq!(added, BTreeSet::from(["NET_ADMIN", "NET_RAW"]));

    let tolerated: BTreeSet<&str> = pod
        .tolerations
        .iter()
        .flatten()
        .filter(|t| t.effect.as_deref() == Some("NoSchedule"))
        .filter_map(|t| t.key.as_deref())
        .collect();
    assert!(
        tolerated.contains("node-role.kubernetes.io/control-plane"),
        "speakers run on control-plane nodes too: {tolerated:?}"
    );
    // `ferrolb status` finds the speakers by this label.
    let labels = ds
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    assert_eq!(
        labels
            .get("app.kubernetes.io/component")
            .map(String::as_str),
        Some("speaker")
    );
}

/// Whether `rules` let a subject do `verb` on `resource` (`group/resource`, `""` group for
/// the core) named `name` (None: any name, as for list, watch and create).
fn allows(
    rules: &[PolicyRule],
    group: &str,
    resource: &str,
    verb: &str,
    name: Option<&str>,
) -> bool {
    rules.iter().any(|r| {
        let has = |list: &Option<Vec<String>>, x: &str| list.iter().flatten().any(|v| v == x);
        let names_ok = match (&r.resource_names, name) {
            (None, _) => true,
            (Some(n), _) if n.is_empty() => true,
            (Some(n), Some(name)) => n.iter().any(|x| x == name),
            (Some(_), None) => false,
        };
        r.api_groups.iter().flatten().any(|g| g == group)
            && has(&r.resources, resource)
            && r.verbs.iter().any(|v| v == verb)
            && names_ok
    })
}

struct Permissions {
    cluster: Vec<PolicyRule>,
    namespaced: Vec<PolicyRule>,
}

impl Permissions {
    /// What the service account `sa` may do: the rules of the roles bound to it.
    fn of(objs: &Objects, sa: &str) -> Self {
        let subject_is_sa = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
            subjects.iter().flatten().any(|s| {
                s.kind == "ServiceAccount"
                    && s.name == sa
                    && s.namespace.as_deref() == Some(NAMESPACE)
            })
        };
        let mut cluster = Vec::new();
        for b in objs.all::<ClusterRoleBinding>("ClusterRoleBinding") {
            if subject_is_sa(&b.subjects) {
                assert_eq!(b.role_ref.kind, "ClusterRole");
                let role: ClusterRole = objs.get("ClusterRole", &b.role_ref.name);
                cluster.extend(role.rules.unwrap_or_default());
            }
        }
        let mut namespaced = Vec::new();
        for b in objs.all::<RoleBinding>("RoleBinding") {
            if subject_is_sa(&b.subjects) {
                assert_eq!(b.role_ref.kind, "Role", "namespaced grants come from Roles");
                let role: Role = objs.get("Role", &b.role_ref.name);
                namespaced.extend(role.rules.unwrap_or_default());
            }
        }
        assert!(
            !cluster.is_empty() && !namespaced.is_empty(),
            "{sa} is bound"
        );
        Permissions {
            cluster,
            namespaced,
        }
    }

    fn cluster(&self, group: &str, resource: &str, verbs: &[&str]) -> bool {
        verbs
            .iter()
            .all(|v| allows(&self.cluster, group, resource, v, None))
    }

    fn namespaced(&self, group: &str, resource: &str, verbs: &[&str]) -> bool {
        verbs
            .iter()
            .all(|v| allows(&self.namespaced, group, resource, v, None))
    }

    /// Any grant at all on `resource`, cluster-wide or in the namespace.
    fn any(&self, group: &str, resource: &str, verb: &str) -> bool {
        allows(&self.cluster, group, resource, verb, None)
            || allows(&self.namespaced, group, resource, verb, None)
    }
}

#[test]
fn rbac_grants_what_the_binaries_use_and_no_wildcard() {
    let objs = Objects::load(MANIFESTS);
    for kind in ["ClusterRole", "Role"] {
        for o in objs.of_kind(kind) {
            let rules: Vec<PolicyRule> = serde_json::from_value(o["rules"].clone()).expect("rules");
            for r in &rules {
                let all = r
                    .verbs
                    .iter()
                    .chain(r.resources.iter().flatten())
                    .chain(r.api_groups.iter().flatten());
                for x in all {
                    assert!(
                        !x.contains('*'),
                        "{kind}/{}: wildcard {x:?}",
                        o["metadata"]["name"]
                    );
                }
                for v in &r.verbs {
                    assert!(
                        [
                            "get", "list", "watch", "create", "update", "patch", "delete"
                        ]
                        .contains(&v.as_str()),
                        "{kind}/{}: verb {v}",
                        o["metadata"]["name"]
                    );
                }
                assert!(r.non_resource_urls.is_none(), "no non-resource URLs");
            }
        }
    }

    let c = Permissions::of(&objs, "ferrolb-controller");
    // get: the sink reads a Service again when its status write meets 409 Conflict.
    assert!(c.cluster("", "services", &["get", "list", "watch", "patch"]));
    assert!(c.cluster("", "services/status", &["patch"]));
    assert!(c.cluster("", "namespaces", &["list", "watch"]));
    assert!(c.cluster("", "nodes", &["list", "watch"]));
    assert!(c.cluster("events.k8s.io", "events", &["create", "patch"]));
    for kind in [
        "ipaddresspools",
        "l2advertisements",
        "bgpadvertisements",
        "bgppeers",
        "communities",
        "bfdprofiles",
        "configurationstates",
    ] {
        assert!(
            c.namespaced("metallb.io", kind, &["list", "watch"]),
            "controller reads {kind}"
        );
    }
    assert!(c.namespaced("metallb.io", "ipaddresspools/status", &["patch"]));
    assert!(c.namespaced("metallb.io", "configurationstates", &["create", "patch"]));
    assert!(c.namespaced("metallb.io", "configurationstates/status", &["patch"]));
    assert!(c.namespaced("", "secrets", &["list", "watch", "create"]));
    assert!(c.namespaced("coordination.k8s.io", "leases", &["create"]));
    for verb in ["get", "update"] {
        assert!(allows(
            &c.namespaced,
            "coordination.k8s.io",
            "leases",
            verb,
            Some("ferrolb-controller")
        ));
        assert!(allows(
            &c.namespaced,
            "",
            "secrets",
            verb,
            Some("ferrolb-webhook-cert")
        ));
        // ... and only that Secret.
        assert!(
            !allows(&c.namespaced, "", "secrets", verb, Some("memberlist")),
            "controller {verb} other secrets"
        );
    }
    for verb in ["get", "patch"] {
        assert!(allows(
            &c.cluster,
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            verb,
            Some("ferrolb-validating-webhook")
        ));
        assert!(!allows(
            &c.cluster,
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            verb,
            Some("someone-elses")
        ));
    }
    // Nothing it does not use.
    assert!(!c.any("", "services", "delete"));
    assert!(!c.any("", "secrets", "delete"));
    assert!(!c.any("", "pods", "list"));
    assert!(
        !allows(&c.cluster, "", "secrets", "list", None),
        "secrets only in its namespace"
    );

    let s = Permissions::of(&objs, "ferrolb-speaker");
    for resource in ["services", "nodes", "namespaces"] {
        assert!(
            s.cluster("", resource, &["list", "watch"]),
            "speaker reads {resource}"
        );
    }
    assert!(s.cluster("discovery.k8s.io", "endpointslices", &["list", "watch"]));
    assert!(s.cluster("events.k8s.io", "events", &["create"]));
    // Its own pod, the owner of its status objects (peers come from the Nodes).
    assert!(s.namespaced("", "pods", &["get"]));
    assert!(!s.any("", "pods", "list") && !s.any("", "pods", "watch"));
    assert!(s.namespaced("", "secrets", &["list", "watch"]));
    for kind in [
        "ipaddresspools",
        "l2advertisements",
        "bgpadvertisements",
        "bgppeers",
        "communities",
        "bfdprofiles",
    ] {
        assert!(
            s.namespaced("metallb.io", kind, &["list", "watch"]),
            "speaker reads {kind}"
        );
    }
    for kind in ["servicel2statuses", "servicebgpstatuses"] {
        assert!(s.namespaced(
            "metallb.io",
            kind,
            &["list", "create", "update", "patch", "delete"]
        ));
        assert!(s.namespaced(
            "metallb.io",
            &format!("{kind}/status"),
            &["update", "patch"]
        ));
    }
    // The speaker writes nothing but its status objects and events.
    assert!(!s.any("", "services", "patch"));
    assert!(!s.any("", "services/status", "patch"));
    assert!(!s.any("", "secrets", "create"));
    assert!(!s.any("metallb.io", "ipaddresspools", "patch"));
    assert!(!s.any("coordination.k8s.io", "leases", "create"));
    assert!(
        !allows(&s.cluster, "", "pods", "list", None),
        "pods only in its namespace"
    );
}

#[test]
fn webhook_reaches_the_controller_and_cannot_lock_ferrolb_out() {
    let objs = Objects::load(MANIFESTS);
    let svc: Service = objs.get("Service", "ferrolb-webhook-service");
    let svc_spec = svc.spec.unwrap();
    let port = &svc_spec.ports.as_ref().unwrap()[0];
    assert_eq!(port.port, 443);
    let d: Deployment = objs.get("Deployment", "ferrolb-controller");
    let c = only_container(pod_spec_of_deployment(&d));
    let target = match port.target_port.as_ref().expect("targetPort") {
        IntOrString::Int(p) => *p,
        IntOrString::String(name) => {
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .expect("named port")
                .container_port
        }
    };
    assert_eq!(target, 9443, "443 -> the controller's webhook port");
    let pod_labels = d.spec.unwrap().template.metadata.unwrap().labels.unwrap();
    for (k, v) in svc_spec.selector.as_ref().unwrap() {
        assert_eq!(
            pod_labels.get(k),
            Some(v),
            "the Service selects the controller pods"
        );
    }

    let vwc: ValidatingWebhookConfiguration = objs.get(
        "ValidatingWebhookConfiguration",
        "ferrolb-validating-webhook",
    );
    let hooks = vwc.webhooks.unwrap();
    // The paths the controller's webhook serves, and the kind of each.
    let served: BTreeMap<String, String> = ferrolb_k8s::webhook::Kind::ALL
        .into_iter()
        .map(|k| (k.path(), k.name().to_string()))
        .collect();
    let mut paths = BTreeSet::new();
    for h in &hooks {
        assert_eq!(
            h.failure_policy.as_deref(),
            Some("Ignore"),
            "{}: see values.yaml webhook.failurePolicy",
            h.name
        );
        assert_eq!(h.side_effects, "None");
        assert!(
            h.timeout_seconds.is_some_and(|t| t <= 10),
            "{}: short timeout",
            h.name
        );
        assert!(
            h.client_config.ca_bundle.is_none(),
            "the controller writes the caBundle"
        );
        let s = h.client_config.service.as_ref().expect("a service");
        assert_eq!(
            (s.name.as_str(), s.namespace.as_str(), s.port),
            ("ferrolb-webhook-service", NAMESPACE, Some(443))
        );
        let rules = h.rules.as_ref().unwrap();
        assert_eq!(rules.len(), 1);
        let r = &rules[0];
        assert_eq!(
            r.api_groups.as_deref(),
            Some(&["metallb.io".to_string()][..])
        );
        let versions = r.api_versions.clone().unwrap();
        let plural = &r.resources.as_ref().unwrap()[0];
        let path = s.path.clone().unwrap();
        let kind = served
            .get(&path)
            .unwrap_or_else(|| panic!("{path} is not a path the webhook serves: {served:?}"));
        let singular = plural
            .strip_suffix("ies")
            .map(|stem| format!("{stem}y"))
            .unwrap_or_else(|| plural.trim_end_matches('s').to_string());
        assert_eq!(
            kind.to_ascii_lowercase(),
            singular,
            "{path} validates {plural}"
        );
        let want_versions = if kind == "BGPPeer" {
            vec!["v1beta1", "v1beta2"]
        } else {
            vec!["v1beta1"]
        };
        assert_eq!(versions, want_versions, "{path}");
        let ops: BTreeSet<String> = r.operations.iter().flatten().cloned().collect();
        let mut want_ops = BTreeSet::from(["CREATE".to_string(), "UPDATE".to_string()]);
        if ["bfdprofiles", "communities"].contains(&plural.as_str()) {
            // Deleting one still referred to is refused.
            want_ops.insert("DELETE".into());
        }
        assert_eq!(ops, want_ops, "{path}");
        assert!(paths.insert(path), "one webhook per path");
    }
    let want: BTreeSet<String> = served.keys().cloned().collect();
    assert_eq!(want.len(), 6, "{want:?}");
    assert_eq!(paths, want);
}

/// The metric names a source file exports: string literals `"metallb_..."` and
/// `"ferrolb_..."` outside its tests.
fn exported_in(path: &str) -> BTreeSet<String> {
    let text = read(path);
    let code = text.split("#[cfg(test)]").next().unwrap();
    let mut names = BTreeSet::new();
    for prefix in ["\"metallb_", "\"ferrolb_"] {
        for (i, _) in code.match_indices(prefix) {
            let rest = &code[i + 1..];
            let end = rest
                .find(|ch: char| !(ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'))
                .unwrap_or(rest.len());
            if rest[end..].starts_with('"') {
                names.insert(rest[..end].to_string());
            }
        }
    }
    names
}

fn exported() -> BTreeSet<String> {
    let controller = exported_in("crates/ferrolb/src/commands/controller.rs");
    let node = exported_in("crates/ferrolb/src/agent/state.rs");
    // Guard the scan itself: names known to be exported are found.
    assert!(
        controller.contains("metallb_allocator_addresses_in_use_total"),
        "{controller:?}"
    );
    assert!(node.contains("metallb_bgp_session_up"), "{node:?}");
    controller.into_iter().chain(node).collect()
}

/// The metric names a PromQL expression uses.
fn metrics_in(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    for prefix in ["metallb_", "ferrolb_"] {
        for (i, _) in expr.match_indices(prefix) {
            let starts_word =
                i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
            if !starts_word {
                continue;
            }
            let rest = &expr[i..];
            let end = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .unwrap_or(rest.len());
            names.insert(rest[..end].to_string());
        }
    }
    names
}

#[test]
fn alerts_use_metrics_the_binaries_export() {
    let exported = exported();
    let objs = Objects::load(MONITORING);
    let rule = objs.of_kind("PrometheusRule");
    assert_eq!(rule.len(), 1);
    let mut alerts: BTreeMap<String, String> = BTreeMap::new();
    for group in rule[0]["spec"]["groups"].as_array().unwrap() {
        for r in group["rules"].as_array().unwrap() {
            let name = r["alert"]
                .as_str()
                .expect("alerting rules only")
                .to_string();
            let expr = r["expr"].as_str().unwrap().to_string();
            assert!(r["labels"]["severity"].is_string(), "{name}: severity");
            assert!(r["annotations"]["summary"].is_string(), "{name}: summary");
            alerts.insert(name, expr);
        }
    }
    let want: [(&str, &[&str]); 7] = [
        (
            "MetalLBStaleConfig",
            &["metallb_k8s_client_config_stale_bool"],
        ),
        (
            "MetalLBConfigNotLoaded",
            &["metallb_k8s_client_config_loaded_bool"],
        ),
        (
            "MetalLBAddressPoolExhausted",
            &[
                "metallb_allocator_ipv4_addresses_in_use_total",
                "metallb_allocator_ipv6_addresses_total",
            ],
        ),
        (
            "MetalLBAddressPoolUsage75thPercent",
            &[
                "metallb_allocator_ipv4_addresses_total",
                "metallb_allocator_ipv6_addresses_in_use_total",
            ],
        ),
        (
            "MetalLBAddressPoolUsage85thPercent",
            &["metallb_allocator_ipv4_addresses_total"],
        ),
        (
            "MetalLBAddressPoolUsage95thPercent",
            &["metallb_allocator_ipv4_addresses_total"],
        ),
        ("MetalLBBGPSessionDown", &["metallb_bgp_session_up"]),
    ];
    assert_eq!(
        alerts.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        want.iter().map(|(n, _)| *n).collect::<BTreeSet<_>>()
    );
    for (name, metrics) in want {
        let used = metrics_in(&alerts[name]);
        for m in metrics {
            assert!(used.contains(*m), "{name} uses {m}: {}", alerts[name]);
        }
        for m in &used {
            assert!(
                exported.contains(m),
                "{name}: {m} is not exported by ferrolb"
            );
        }
    }
    for (pct, low, high) in [
        (75, "0.75", "0.85"),
        (85, "0.85", "0.95"),
        (95, "0.95", "1"),
    ] {
        let expr = &alerts[&format!("MetalLBAddressPoolUsage{pct}thPercent")];
        assert!(
            expr.ends_with(&format!(">= {low} < {high}")),
            "{pct} %: {expr}"
        );
    }
    assert!(alerts["MetalLBAddressPoolExhausted"].ends_with(">= 1"));

    // The ServiceMonitors scrape the metrics Services on the ports the binaries serve.
    let monitors = objs.of_kind("ServiceMonitor");
    assert_eq!(monitors.len(), 2, "controller and speaker");
    for (component, port) in [("controller", 7472), ("speaker", 7473)] {
        let svc: Service = objs.get("Service", &format!("ferrolb-{component}-metrics"));
        let spec = svc.spec.unwrap();
        assert_eq!(spec.ports.unwrap()[0].port, port);
        assert_eq!(
            spec.selector
                .unwrap()
                .get("app.kubernetes.io/component")
                .map(String::as_str),
            Some(component)
        );
        let sm = monitors
            .iter()
            .find(|m| m["metadata"]["name"] == format!("ferrolb-{component}"))
            .expect("ServiceMonitor");
        assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
        let selected = sm["spec"]["selector"]["matchLabels"].as_object().unwrap();
        let labels = svc.metadata.labels.unwrap();
        for (k, v) in selected {
            assert_eq!(
                labels.get(k).map(String::as_str),
                v.as_str(),
                "{component}: ServiceMonitor selects its Service"
            );
        }
    }
}

#[test]
fn dashboard_panels_use_metrics_the_binaries_export() {
    let exported = exported();
    let objs = Objects::load(MONITORING);
    let cm: ConfigMap = objs.get("ConfigMap", "ferrolb-dashboard");
    assert_eq!(
        cm.metadata
            .labels
            .unwrap()
            .get("grafana_dashboard")
            .map(String::as_str),
        Some("1")
    );
    let json = &cm.data.unwrap()["ferrolb.json"];
    let dash: Value = serde_json::from_str(json).expect("dashboard JSON");
    assert_eq!(
        *json,
        read(&format!("{CHART}/files/dashboard.json")).trim_end(),
        "the ConfigMap carries files/dashboard.json"
    );
    let panels = dash["panels"].as_array().unwrap();
    let mut by_title: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for p in panels {
        let used = by_title.entry(p["title"].as_str().unwrap()).or_default();
        for t in p["targets"].as_array().unwrap() {
            used.extend(metrics_in(t["expr"].as_str().unwrap()));
        }
    }
    let want: [(&str, &str); 6] = [
        (
            "Address pool usage per family",
            "metallb_allocator_ipv6_addresses_in_use_total",
        ),
        (
            "Services allocated per pool",
            "metallb_allocator_services_allocated_total",
        ),
        ("BGP sessions up", "metallb_bgp_session_up"),
        ("BFD sessions up", "metallb_bfd_session_up"),
        (
            "Layer 2 announcements per node",
            "metallb_speaker_announced",
        ),
        ("Config stale", "metallb_k8s_client_config_stale_bool"),
    ];
    for (title, metric) in want {
        let used = by_title
            .get(title)
            .unwrap_or_else(|| panic!("panel {title:?}"));
        assert!(used.contains(metric), "{title} shows {metric}");
    }
    let templating = serde_json::to_string(&dash["templating"]).unwrap();
    for (title, used) in by_title
        .iter()
        .map(|(t, u)| (*t, u.clone()))
        .chain([("templating", metrics_in(&templating))])
    {
        for m in used {
            assert!(
                exported.contains(&m),
                "{title}: {m} is not exported by ferrolb"
            );
        }
    }
}

#[test]
fn dockerfile_builds_a_static_binary_on_a_minimal_non_root_image() {
    let text = read("Dockerfile");
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    let last_stage = text.rsplit("\nFROM ").next().unwrap();
    let base = last_stage.lines().next().unwrap();
    assert!(
        base.starts_with("scratch") || base.contains("distroless/static"),
        "minimal final image: {base}"
    );
    let user = last_stage
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER in the final stage");
    let uid = user["USER ".len()..].split(':').next().unwrap().trim();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "numeric non-root user: {user}"
    );
    assert!(last_stage.contains("ENTRYPOINT [\"/ferrolb\"]"));
    assert!(text.contains("musl"), "a static (musl) build");
}

/// The helm to test with, or why there is none.
fn helm() -> Result<PathBuf, String> {
    if let Some(h) = std::env::var_os("HELM") {
        return Ok(PathBuf::from(h));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")));
    if let Some(cache) = cache {
        let cached = cache.join(format!("ferrolb/helm-v{HELM_VERSION}/helm"));
        if cached.is_file() {
            return Ok(cached);
        }
    }
    match Command::new("helm").arg("version").output() {
        Ok(o) if o.status.success() => Ok(PathBuf::from("helm")),
        _ => Err("helm not found (set HELM, or run scripts/test, which installs it)".into()),
    }
}

fn run_helm(helm: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(helm)
        .args(args)
        .current_dir(root())
        .output()
        .expect("run helm");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn helm_lints_and_renders_the_chart() {
    let helm = match helm() {
        Ok(h) => h,
        Err(why) => {
            eprintln!("skipping: {why}");
            return;
        }
    };
    let all_on = "prometheus.serviceMonitor.enabled=true,prometheus.prometheusRule.enabled=true,grafanaDashboard.enabled=true";
    for set in [
        "",
        all_on,
        "webhook.enabled=false,speaker.enabled=false,rbac.create=false",
    ] {
        let mut args = vec!["lint", "--strict", CHART, "--namespace", NAMESPACE];
        if !set.is_empty() {
            args.extend(["--set", set]);
        }
        let (ok, out) = run_helm(&helm, &args);
        assert!(ok, "helm {args:?}:\n{out}");
    }

    // Other values render what they say.
    let (ok, out) = run_helm(
        &helm,
        &[
            "template",
            "lb",
            CHART,
            "--namespace",
            "lb",
            "--set",
            "webhook.failurePolicy=Fail,loadBalancerClass=example.com/lb,controller.replicas=3",
            "--set",
            "controller.podDisruptionBudget.minAvailable=2,controller.leaderElection.leaseName=lease",
        ],
    );
    assert!(ok, "{out}");
    let objs = Objects(objects(&out));
    check_schemas(&objs);
    let vwc: ValidatingWebhookConfiguration = objs.get(
        "ValidatingWebhookConfiguration",
        "ferrolb-validating-webhook",
    );
    assert!(
        vwc.webhooks
            .unwrap()
            .iter()
            .all(|h| h.failure_policy.as_deref() == Some("Fail"))
    );
    let d: Deployment = objs.get("Deployment", "lb-ferrolb-controller");
    assert_eq!(d.spec.as_ref().unwrap().replicas, Some(3));
    let args = only_container(pod_spec_of_deployment(&d))
        .args
        .clone()
        .unwrap();
    assert!(
        args.contains(&"--lb-class=example.com/lb".to_string()),
        "{args:?}"
    );
    assert!(args.contains(&"--lease-name=lease".to_string()), "{args:?}");
    let ds: DaemonSet = objs.get("DaemonSet", "lb-ferrolb-speaker");
    let speaker_args = only_container(ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap())
        .args
        .clone()
        .unwrap();
    assert!(speaker_args.contains(&"--lb-class=example.com/lb".to_string()));
    let pdb: PodDisruptionBudget = objs.get("PodDisruptionBudget", "lb-ferrolb-controller");
    assert_eq!(pdb.spec.unwrap().min_available, Some(IntOrString::Int(2)));
    let role: Role = objs.get("Role", "lb-ferrolb-controller");
    assert!(allows(
        &role.rules.unwrap(),
        "coordination.k8s.io",
        "leases",
        "update",
        Some("lease")
    ));

    // One replica: no disruption budget (it would block every drain).
    let (ok, out) = run_helm(
        &helm,
        &[
            "template",
            "ferrolb",
            CHART,
            "--set",
            "controller.replicas=1",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        Objects(objects(&out))
            .of_kind("PodDisruptionBudget")
            .is_empty()
    );

    // Values that cannot work are refused.
    for bad in [
        "webhook.failurePolicy=Sometimes",
        "controller.leaderElection.enabled=false",
    ] {
        let (ok, out) = run_helm(&helm, &["template", "ferrolb", CHART, "--set", bad]);
        assert!(!ok, "{bad} rendered:\n{out}");
    }

    // The checked-in manifests are what the chart renders now.
    let out = Command::new(root().join("scripts/render-manifests"))
        .arg("--check")
        .env("HELM", &helm)
        .current_dir(root())
        .output()
        .expect("run scripts/render-manifests");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The flags `ferrolb SUBCOMMAND --help` lists.
fn flags_of(subcommand: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args([subcommand, "--help"])
        .output()
        .expect("run ferrolb");
    assert!(out.status.success(), "ferrolb {subcommand} --help");
    String::from_utf8_lossy(&out.stdout)
        .split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '[' || c == '<')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_string)
        .collect()
}

#[test]
fn the_binary_takes_every_flag_the_manifests_pass() {
    let objs = Objects::load(MANIFESTS);
    let d: Deployment = objs.get("Deployment", "ferrolb-controller");
    let ds: DaemonSet = objs.get("DaemonSet", "ferrolb-speaker");
    let containers = [
        only_container(pod_spec_of_deployment(&d)).clone(),
        only_container(ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap()).clone(),
    ];
    for c in containers {
        let args = c.args.unwrap_or_default();
        let subcommand = args[0].as_str();
        let known = flags_of(subcommand);
        assert!(known.contains("--namespace"), "{known:?}");
        for arg in &args[1..] {
            let flag = arg.split('=').next().unwrap();
            if known.contains(flag) {
                continue;
            }
            panic!("`ferrolb {subcommand}` does not take {flag} (from {arg:?}): {known:?}");
        }
    }
}
