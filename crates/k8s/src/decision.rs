//! What to write for a Service, given what the allocator decided: pure functions, no
//! I/O. The sink ([`crate::sink`]) carries the result out.

use ferrolb_allocator::{
    AllocationError, Assignment, ServiceKey, Warning, WarningKind, status_ips,
};
use ferrolb_model::annotations::IP_ALLOCATED_FROM_POOL;
use k8s_openapi::api::core::v1::Service;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

/// The annotation MetalLB wrote before `metallb.io/`; removed when ours is written.
pub const IP_ALLOCATED_FROM_POOL_LEGACY: &str = "metallb.universe.tf/ip-allocated-from-pool";

/// Event reason: a Service got addresses.
pub const REASON_ALLOCATED: &str = "IPAllocated";
/// Event reason: a Service got no address.
pub const REASON_FAILED: &str = ferrolb_allocator::EVENT_REASON;
/// Event reason: the addresses in a Service's status are no longer allowed and are
/// dropped.
pub const REASON_CLEAR: &str = "ClearAssignment";
/// Event reason: a Service uses a deprecated field or annotation (`spec.loadBalancerIP`,
/// a `metallb.universe.tf/` key), which still works.
pub const REASON_DEPRECATED: &str = "deprecatedAnnotation";

/// What the controller core decided for one Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The Service is not ours: not `type: LoadBalancer` (`not_load_balancer`), or of
    /// another `loadBalancerClass`.
    NotOurs {
        /// Whether it is not a LoadBalancer Service at all (then state we wrote is
        /// cleared, as MetalLB does); otherwise it belongs to another class and is left
        /// alone.
        not_load_balancer: bool,
    },
    /// No valid configuration was ever loaded: nothing is decided, nothing written.
    NoConfig,
    /// The Service holds addresses.
    Assigned {
        /// Its addresses and their pool.
        assignment: Assignment,
        /// Why the addresses its status showed were dropped, if they were.
        cleared: Option<AllocationError>,
    },
    /// The Service gets no address.
    Failed {
        /// Why.
        error: AllocationError,
        /// Why the addresses its status showed were dropped, if it had some.
        cleared: Option<AllocationError>,
    },
}

/// An Event to publish about a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSpec {
    /// `Warning` rather than `Normal`.
    pub warning: bool,
    /// The reason (MetalLB's: `IPAllocated`, `AllocationFailed`, `ClearAssignment`,
    /// `deprecatedAnnotation`).
    pub reason: &'static str,
    /// The message.
    pub message: String,
}

/// The writes one Service needs. Empty when the Service already shows the decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceUpdate {
    /// The new `status.loadBalancer.ingress` addresses (empty: clear them), when they
    /// differ from the Service's.
    pub ingress: Option<Vec<IpAddr>>,
    /// Annotations to set (`Some`) or remove (`None`), when they differ.
    pub annotations: BTreeMap<String, Option<String>>,
    /// Events to publish.
    pub events: Vec<EventSpec>,
}

impl ServiceUpdate {
    /// Whether nothing is to be written.
    pub fn is_empty(&self) -> bool {
        self.ingress.is_none() && self.annotations.is_empty() && self.events.is_empty()
    }
}

/// The `status.loadBalancer.ingress` entries of a Service as written: `(ip, hostname)`.
fn current_ingress(service: &Service) -> Vec<(Option<&str>, Option<&str>)> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|list| {
            list.iter()
                .map(|i| (i.ip.as_deref(), i.hostname.as_deref()))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the Service's ingress is exactly these addresses, in this order, without
/// hostnames.
fn ingress_is(service: &Service, ips: &[IpAddr]) -> bool {
    let current = current_ingress(service);
    current.len() == ips.len()
        && current.iter().zip(ips).all(|((ip, host), want)| {
            host.is_none()
                && ip
                    .and_then(|t| t.parse::<IpAddr>().ok())
                    .is_some_and(|got| got.to_canonical() == *want)
        })
}

fn annotation<'a>(service: &'a Service, key: &str) -> Option<&'a str> {
    service
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// MetalLB's rendering of a list of addresses (Go's `%q` of a slice): `["a" "b"]`.
pub fn quoted_ips(ips: &[IpAddr]) -> String {
    let mut s = String::from("[");
    for (i, ip) in ips.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "\"{ip}\"");
    }
    s.push(']');
    s
}

/// The writes that make the Service show `outcome`: its ingress, the
/// `metallb.io/ip-allocated-from-pool` annotation, and MetalLB's events.
///
/// - Assigned: ingress = the addresses, annotation = the pool (the legacy
///   `metallb.universe.tf/` one removed); `IPAllocated` when the addresses are new to
///   the Service's status, `ClearAssignment` first when its old ones were dropped.
/// - Failed: ingress and annotation cleared; `ClearAssignment` when old addresses were
///   dropped, and a Warning `AllocationFailed` (unless `quiet`, for retries of a
///   Service whose failure was already reported).
/// - Not a LoadBalancer any more: the annotation and, when it shows we wrote it, the
///   ingress are cleared. Another class's Services and the no-configuration case are
///   left alone.
pub fn decide(service: &Service, outcome: &Outcome, quiet: bool) -> ServiceUpdate {
    let key = ServiceKey::of(service);
    let mut update = ServiceUpdate::default();
    let ours_annotated = annotation(service, IP_ALLOCATED_FROM_POOL).is_some()
        || annotation(service, IP_ALLOCATED_FROM_POOL_LEGACY).is_some();
    let clear_annotations = |update: &mut ServiceUpdate| {
        for k in [IP_ALLOCATED_FROM_POOL, IP_ALLOCATED_FROM_POOL_LEGACY] {
            if annotation(service, k).is_some() {
                update.annotations.insert(k.to_string(), None);
            }
        }
    };
    let cleared_event = |update: &mut ServiceUpdate, cleared: &Option<AllocationError>| {
        if let Some(e) = cleared {
            update.events.push(EventSpec {
                warning: false,
                reason: REASON_CLEAR,
                message: format!(
                    "current IP for \"{key}\" not allowed by config, will attempt for new IP assignment: {e}"
                ),
            });
        }
    };
    match outcome {
        Outcome::NoConfig
        | Outcome::NotOurs {
            not_load_balancer: false,
        } => {}
        Outcome::NotOurs {
            not_load_balancer: true,
        } => {
            if ours_annotated && !current_ingress(service).is_empty() {
                update.ingress = Some(Vec::new());
            }
            clear_annotations(&mut update);
        }
        Outcome::Assigned {
            assignment,
            cleared,
        } => {
            cleared_event(&mut update, cleared);
            if !ingress_is(service, &assignment.ips) {
                update.ingress = Some(assignment.ips.clone());
            }
            let (status, _) = status_ips(service);
            let mut before = status.clone();
            let mut now = assignment.ips.clone();
            before.sort();
            now.sort();
            if before != now {
                // A PreferDualStack Service that kept its one address and got the other
                // family too: MetalLB's "additional IP" message.
                let added: Vec<&IpAddr> = match status.as_slice() {
                    [kept] if assignment.ips.contains(kept) => {
                        assignment.ips.iter().filter(|ip| *ip != kept).collect()
                    }
                    _ => Vec::new(),
                };
                let message = match added.as_slice() {
                    [ip] => format!("Assigned additional IP \"{ip}\""),
                    _ => format!("Assigned IP {}", quoted_ips(&assignment.ips)),
                };
                update.events.push(EventSpec {
                    warning: false,
                    reason: REASON_ALLOCATED,
                    message,
                });
            }
            if annotation(service, IP_ALLOCATED_FROM_POOL) != Some(assignment.pool.as_str()) {
                update.annotations.insert(
                    IP_ALLOCATED_FROM_POOL.to_string(),
                    Some(assignment.pool.clone()),
                );
            }
            if annotation(service, IP_ALLOCATED_FROM_POOL_LEGACY).is_some() {
                update
                    .annotations
                    .insert(IP_ALLOCATED_FROM_POOL_LEGACY.to_string(), None);
            }
        }
        Outcome::Failed { error, cleared } => {
            cleared_event(&mut update, cleared);
            if !current_ingress(service).is_empty() {
                update.ingress = Some(Vec::new());
            }
            clear_annotations(&mut update);
            if !quiet {
                update.events.push(EventSpec {
                    warning: true,
                    reason: REASON_FAILED,
                    message: format!("Failed to allocate IP for \"{key}\": {error}"),
                });
            }
        }
    }
    update
}

/// The Warning Events `deprecatedAnnotation` for a Service's warnings: one per warning
/// of kind [`WarningKind::Deprecated`], in order. The other warnings (ignored values)
/// have no MetalLB Event and get none. When to publish them is the caller's choice: the
/// controller does once per version of the Service it did not write itself.
pub fn deprecation_events(warnings: &[Warning]) -> Vec<EventSpec> {
    warnings
        .iter()
        .filter(|w| w.kind == WarningKind::Deprecated)
        .map(|w| EventSpec {
            warning: true,
            reason: REASON_DEPRECATED,
            message: w.message.clone(),
        })
        .collect()
}

/// The JSON merge patch of the status subresource that sets the ingress addresses.
/// With `resource_version`, the API server rejects it (409 Conflict) when the Service
/// changed since it was read.
pub fn status_patch(ips: &[IpAddr], resource_version: Option<&str>) -> serde_json::Value {
    let ingress = if ips.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::Value::Array(
            ips.iter()
                .map(|ip| serde_json::json!({ "ip": ip.to_string() }))
                .collect(),
        )
    };
    let mut patch = serde_json::json!({ "status": { "loadBalancer": { "ingress": ingress } } });
    if let Some(rv) = resource_version {
        patch["metadata"] = serde_json::json!({ "resourceVersion": rv });
    }
    patch
}

/// The JSON merge patch of the Service's annotations (`null` removes one).
pub fn annotations_patch(annotations: &BTreeMap<String, Option<String>>) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = annotations
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_ref().map_or(serde_json::Value::Null, |v| {
                    serde_json::Value::String(v.clone())
                }),
            )
        })
        .collect();
    serde_json::json!({ "metadata": { "annotations": map } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn service(ingress: &[&str], pool: Option<&str>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                annotations: pool.map(|p| {
                    [(IP_ALLOCATED_FROM_POOL.to_string(), p.to_string())]
                        .into_iter()
                        .collect()
                }),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                ..Default::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(
                        ingress
                            .iter()
                            .map(|ip| LoadBalancerIngress {
                                ip: Some(ip.to_string()),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                }),
                ..Default::default()
            }),
        }
    }

    fn assigned(pool: &str, ips: &[&str]) -> Outcome {
        Outcome::Assigned {
            assignment: Assignment {
                pool: pool.into(),
                ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            },
            cleared: None,
        }
    }

    #[test]
    fn new_assignment_writes_ingress_annotation_and_ipallocated() {
        let u = decide(
            &service(&[], None),
            &assigned("main", &["192.0.2.1"]),
            false,
        );
        assert_eq!(u.ingress, Some(vec!["192.0.2.1".parse().unwrap()]));
        assert_eq!(
            u.annotations.get(IP_ALLOCATED_FROM_POOL),
            Some(&Some("main".to_string()))
        );
        assert_eq!(
            u.events,
            vec![EventSpec {
                warning: false,
                reason: "IPAllocated",
                message: "Assigned IP [\"192.0.2.1\"]".into()
            }]
        );
    }

    #[test]
    fn a_second_family_is_an_additional_ip() {
        let svc = service(&["192.0.2.1"], Some("main"));
        let u = decide(
            &svc,
            &assigned("main", &["192.0.2.1", "2001:db8::1"]),
            false,
        );
        assert_eq!(u.ingress.as_ref().map(Vec::len), Some(2));
        assert_eq!(
            u.events[0].message,
            "Assigned additional IP \"2001:db8::1\""
        );
    }

    #[test]
    fn kept_assignment_writes_nothing() {
        let svc = service(&["192.0.2.1"], Some("main"));
        let u = decide(&svc, &assigned("main", &["192.0.2.1"]), false);
        assert!(u.is_empty(), "{u:?}");
    }

    #[test]
    fn kept_assignment_without_annotation_only_annotates() {
        let svc = service(&["192.0.2.1"], None);
        let u = decide(&svc, &assigned("main", &["192.0.2.1"]), false);
        assert_eq!(u.ingress, None);
        assert!(u.events.is_empty());
        assert_eq!(u.annotations.len(), 1);
    }

    #[test]
    fn failure_clears_and_warns() {
        let svc = service(&["192.0.2.1"], Some("main"));
        let outcome = Outcome::Failed {
            error: AllocationError::NoAvailableIps,
            cleared: Some(AllocationError::NotInAnyPool("192.0.2.1".parse().unwrap())),
        };
        let u = decide(&svc, &outcome, false);
        assert_eq!(u.ingress, Some(vec![]));
        assert_eq!(u.annotations.get(IP_ALLOCATED_FROM_POOL), Some(&None));
        let reasons: Vec<_> = u.events.iter().map(|e| (e.reason, e.warning)).collect();
        assert_eq!(
            reasons,
            vec![("ClearAssignment", false), ("AllocationFailed", true)]
        );
        assert_eq!(
            u.events[1].message,
            "Failed to allocate IP for \"shop/web\": no available IPs"
        );
        assert!(u.events[0].message.starts_with(
            "current IP for \"shop/web\" not allowed by config, will attempt for new IP assignment: "
        ));
        let quiet = decide(&svc, &outcome, true);
        assert_eq!(quiet.events.len(), 1);
    }

    #[test]
    fn other_class_and_no_config_are_left_alone() {
        let svc = service(&["192.0.2.1"], Some("main"));
        for o in [
            Outcome::NoConfig,
            Outcome::NotOurs {
                not_load_balancer: false,
            },
        ] {
            assert!(decide(&svc, &o, false).is_empty());
        }
        let u = decide(
            &svc,
            &Outcome::NotOurs {
                not_load_balancer: true,
            },
            false,
        );
        assert_eq!(u.ingress, Some(vec![]));
        assert_eq!(u.annotations.get(IP_ALLOCATED_FROM_POOL), Some(&None));
    }

    #[test]
    fn only_deprecations_are_events() {
        let warnings = [
            Warning {
                kind: WarningKind::Ignored,
                message: "ignoring unknown spec.ipFamilies entry \"IPv5\"".into(),
            },
            Warning {
                kind: WarningKind::Deprecated,
                message: "spec.loadBalancerIP is deprecated".into(),
            },
        ];
        assert_eq!(
            deprecation_events(&warnings),
            vec![EventSpec {
                warning: true,
                reason: "deprecatedAnnotation",
                message: "spec.loadBalancerIP is deprecated".into(),
            }]
        );
        assert!(deprecation_events(&warnings[..1]).is_empty());
    }

    #[test]
    fn patches_have_the_api_shape() {
        let ips: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];
        assert_eq!(
            status_patch(&ips, Some("42")),
            serde_json::json!({
                "metadata": {"resourceVersion": "42"},
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"ip": "2001:db8::1"}]}}
            })
        );
        assert_eq!(
            status_patch(&[], None),
            serde_json::json!({"status": {"loadBalancer": {"ingress": null}}})
        );
        let mut a = BTreeMap::new();
        a.insert(IP_ALLOCATED_FROM_POOL.to_string(), None);
        assert_eq!(
            annotations_patch(&a),
            serde_json::json!({"metadata": {"annotations": {"metallb.io/ip-allocated-from-pool": null}}})
        );
        assert_eq!(quoted_ips(&ips), "[\"192.0.2.1\" \"2001:db8::1\"]");
    }
}
