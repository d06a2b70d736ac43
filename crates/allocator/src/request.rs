//! What a Service asks of the allocator, read once from the Service object.

use crate::error::AllocationError;
use crate::{Options, ServiceKey};
use ferrolb_model::annotations;
use k8s_openapi::api::core::v1::Service;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// An IP address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address (IPv4-mapped IPv6 addresses are IPv6 here; parse with
    /// [`IpAddr::to_canonical`] first to treat them as IPv4).
    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The other family.
    pub fn other(self) -> Family {
        match self {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        }
    }

    fn parse(s: &str) -> Option<Family> {
        match s {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// A Service's `spec.ipFamilyPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FamilyPolicy {
    /// One address, of the primary family (the default).
    #[default]
    SingleStack,
    /// Both families when one pool can give both, else one.
    PreferDualStack,
    /// Both families, from one pool, or none.
    RequireDualStack,
}

impl fmt::Display for FamilyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FamilyPolicy::SingleStack => "SingleStack",
            FamilyPolicy::PreferDualStack => "PreferDualStack",
            FamilyPolicy::RequireDualStack => "RequireDualStack",
        })
    }
}

/// A port's protocol.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (also when the Service does not say).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
    /// Anything else, as written.
    Other(String),
}

impl Protocol {
    /// Reads a Service port's protocol; `None` is TCP.
    pub fn parse(text: Option<&str>) -> Protocol {
        match text {
            None | Some("TCP") => Protocol::Tcp,
            Some("UDP") => Protocol::Udp,
            Some("SCTP") => Protocol::Sctp,
            Some(other) => Protocol::Other(other.to_string()),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
            Protocol::Other(s) => s,
        })
    }
}

/// A port a Service uses on its address: `(protocol, port)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    /// The protocol.
    pub protocol: Protocol,
    /// The port number as the Service gives it (not checked).
    pub port: i32,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol, self.port)
    }
}

/// Where the traffic of a Service goes, as far as sharing an address is concerned.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Backend {
    /// `externalTrafficPolicy: Cluster` (or unset): any node may answer.
    Cluster,
    /// `externalTrafficPolicy: Local`, with the canonical text of `spec.selector`:
    /// only nodes with endpoints answer, so sharers must select the same pods.
    Local(String),
}

/// A Service's permission to share its addresses: only Services with equal `Sharing`
/// (and no common port) hold one address together.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sharing {
    /// The non-empty value of `metallb.io/allow-shared-ip`.
    pub key: String,
    /// The Service's backend.
    pub backend: Backend,
}

/// What a [`Warning`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WarningKind {
    /// A deprecated field or annotation that still works (`spec.loadBalancerIP`, the
    /// `metallb.universe.tf/` annotation keys).
    Deprecated,
    /// A value that is ignored or read otherwise than written.
    Ignored,
}

/// Something about a Service the user should fix that did not stop reading it.
/// Displays as its message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Warning {
    /// What it is about.
    pub kind: WarningKind,
    /// What to tell the user.
    pub message: String,
}

impl Warning {
    fn deprecated(message: String) -> Warning {
        Warning {
            kind: WarningKind::Deprecated,
            message,
        }
    }

    fn ignored(message: String) -> Warning {
        Warning {
            kind: WarningKind::Ignored,
            message,
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Warning> for String {
    fn from(w: Warning) -> String {
        w.message
    }
}

/// What one Service asks of the allocator. Build it with [`Request::from_service`], or
/// directly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The Service.
    pub service: ServiceKey,
    /// The primary family: the first of `spec.ipFamilies`, else of `spec.clusterIPs`,
    /// else IPv4.
    pub primary: Family,
    /// The family policy.
    pub policy: FamilyPolicy,
    /// Addresses asked for (`spec.loadBalancerIP` or `metallb.io/loadBalancerIPs`), in
    /// family order; empty when the Service takes any.
    pub requested_ips: Vec<IpAddr>,
    /// The pool asked for (`metallb.io/address-pool`).
    pub pool: Option<String>,
    /// The sharing permission (`metallb.io/allow-shared-ip`); `None` for exclusive use.
    pub sharing: Option<Sharing>,
    /// Ports used, sorted, without repetitions. Only read for Services that share an
    /// address ([`Request::from_service`] leaves it empty for the others).
    pub ports: Vec<Port>,
    /// The Service's labels (for pools' service selectors).
    pub labels: BTreeMap<String, String>,
    /// The labels of the Service's namespace; `None` when the namespace is unknown (then
    /// no namespace selector matches it).
    pub namespace_labels: Option<BTreeMap<String, String>>,
}

/// Whether the Service is one the allocator handles: `spec.type: LoadBalancer` and a
/// `spec.loadBalancerClass` equal to [`Options::lb_class`].
pub fn is_ours(service: &Service, options: &Options) -> bool {
    let Some(spec) = &service.spec else {
        return false;
    };
    spec.type_.as_deref() == Some("LoadBalancer")
        && spec.load_balancer_class.as_deref() == options.lb_class.as_deref()
}

/// The addresses in `status.loadBalancer.ingress[].ip`, in order, without repetitions,
/// with a warning for each entry that is not an address.
pub fn status_ips(service: &Service) -> (Vec<IpAddr>, Vec<String>) {
    let mut ips = Vec::new();
    let mut warnings = Vec::new();
    let ingress = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    for entry in ingress.into_iter().flatten() {
        let Some(text) = entry.ip.as_deref() else {
            continue;
        };
        if text.is_empty() {
            continue;
        }
        match text.trim().parse::<IpAddr>() {
            Ok(ip) => {
                let ip = ip.to_canonical();
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
            Err(_) => warnings.push(format!(
                "ignoring status.loadBalancer.ingress IP {text:?}: not an IP address"
            )),
        }
    }
    (ips, warnings)
}

impl Request {
    /// Reads what a Service asks for. `namespace_labels` are the labels of its
    /// namespace, `None` when the namespace is unknown. Returns the request, or why it
    /// cannot be served, and warnings (deprecated fields and annotations, ignored values)
    /// in both cases, in the order the Service's fields are read.
    pub fn from_service(
        service: &Service,
        namespace_labels: Option<&BTreeMap<String, String>>,
    ) -> (Result<Request, AllocationError>, Vec<Warning>) {
        let (result, warnings) =
            Self::from_service_keyed(service, ServiceKey::of(service), namespace_labels);
        (result.map_err(|(_, e)| e), warnings)
    }

    /// [`Request::from_service`] with the Service's key already made; on error the key is
    /// given back.
    pub(crate) fn from_service_keyed(
        service: &Service,
        key: ServiceKey,
        namespace_labels: Option<&BTreeMap<String, String>>,
    ) -> (Result<Request, (ServiceKey, AllocationError)>, Vec<Warning>) {
        let mut warnings = Vec::new();
        let result = match Self::parse(service, namespace_labels, &mut warnings) {
            Ok(mut request) => {
                request.service = key;
                Ok(request)
            }
            Err(e) => Err((key, e)),
        };
        (result, warnings)
    }

    fn parse(
        service: &Service,
        namespace_labels: Option<&BTreeMap<String, String>>,
        warnings: &mut Vec<Warning>,
    ) -> Result<Request, AllocationError> {
        let meta = &service.metadata;
        let annotations = meta.annotations.as_ref();
        let default_spec = Default::default();
        let spec = service.spec.as_ref().unwrap_or(&default_spec);

        let policy = match spec.ip_family_policy.as_deref() {
            None | Some("SingleStack") => FamilyPolicy::SingleStack,
            Some("PreferDualStack") => FamilyPolicy::PreferDualStack,
            Some("RequireDualStack") => FamilyPolicy::RequireDualStack,
            Some(other) => {
                warnings.push(Warning::ignored(format!(
                    "unknown spec.ipFamilyPolicy {other:?}; treated as SingleStack"
                )));
                FamilyPolicy::SingleStack
            }
        };
        let primary = primary_family(spec, warnings);
        let families = families(primary, policy);

        let mut requested_ips = Vec::new();
        let annotated = annotations::get(
            annotations,
            annotations::LOAD_BALANCER_IPS,
            annotations::LOAD_BALANCER_IPS_LEGACY,
        );
        let annotated = match annotated {
            Some((value, legacy)) => {
                if legacy {
                    warnings.push(deprecated_annotation(
                        annotations::LOAD_BALANCER_IPS_LEGACY,
                        annotations::LOAD_BALANCER_IPS,
                    ));
                }
                let field = if legacy {
                    annotations::LOAD_BALANCER_IPS_LEGACY
                } else {
                    annotations::LOAD_BALANCER_IPS
                };
                (!value.is_empty()).then_some((value, field))
            }
            None => None,
        };
        let spec_ip = spec.load_balancer_ip.as_deref().filter(|s| !s.is_empty());
        if spec_ip.is_some() {
            warnings.push(Warning::deprecated(
                "spec.loadBalancerIP is deprecated; use the metallb.io/loadBalancerIPs annotation"
                    .to_string(),
            ));
        }
        match (annotated, spec_ip) {
            (Some(_), Some(_)) => return Err(AllocationError::BothIpFieldsSet),
            (Some((value, field)), None) => {
                for item in value.split(',') {
                    let ip = parse_ip(item, field)?;
                    if !requested_ips.contains(&ip) {
                        requested_ips.push(ip);
                    }
                }
                if requested_ips.len() > 2 {
                    return Err(AllocationError::TooManyIps {
                        field,
                        count: requested_ips.len(),
                    });
                }
                if let [a, b] = requested_ips.as_slice()
                    && Family::of(a) == Family::of(b)
                {
                    return Err(AllocationError::SameFamilyTwice {
                        field,
                        family: Family::of(a),
                    });
                }
            }
            (None, Some(text)) => requested_ips.push(parse_ip(text, "spec.loadBalancerIP")?),
            (None, None) => {}
        }
        if !requested_ips.is_empty() {
            requested_ips = fit_families(&requested_ips, families, policy)?;
        }

        let pool = match annotations::get(
            annotations,
            annotations::ADDRESS_POOL,
            annotations::ADDRESS_POOL_LEGACY,
        ) {
            Some((value, legacy)) => {
                if legacy {
                    warnings.push(deprecated_annotation(
                        annotations::ADDRESS_POOL_LEGACY,
                        annotations::ADDRESS_POOL,
                    ));
                }
                (!value.is_empty()).then(|| value.to_string())
            }
            None => None,
        };

        let sharing = match annotations::get(
            annotations,
            annotations::ALLOW_SHARED_IP,
            annotations::ALLOW_SHARED_IP_LEGACY,
        ) {
            Some((value, legacy)) => {
                if legacy {
                    warnings.push(deprecated_annotation(
                        annotations::ALLOW_SHARED_IP_LEGACY,
                        annotations::ALLOW_SHARED_IP,
                    ));
                }
                (!value.is_empty()).then(|| Sharing {
                    key: value.to_string(),
                    backend: backend(spec),
                })
            }
            None => None,
        };

        let mut ports: Vec<Port> = Vec::new();
        if sharing.is_some() {
            ports = spec
                .ports
                .iter()
                .flatten()
                .map(|p| Port {
                    protocol: Protocol::parse(p.protocol.as_deref()),
                    port: p.port,
                })
                .collect();
            ports.sort();
            ports.dedup();
        }

        Ok(Request {
            service: ServiceKey::default(),
            primary,
            policy,
            requested_ips,
            pool,
            sharing,
            ports,
            labels: meta.labels.clone().unwrap_or_default(),
            namespace_labels: namespace_labels.cloned(),
        })
    }

    /// Families the Service may have addresses of, primary first: one for SingleStack,
    /// both for the dual-stack policies.
    pub fn families(&self) -> &'static [Family] {
        families(self.primary, self.policy)
    }
}

fn families(primary: Family, policy: FamilyPolicy) -> &'static [Family] {
    match (policy, primary) {
        (FamilyPolicy::SingleStack, Family::V4) => &[Family::V4],
        (FamilyPolicy::SingleStack, Family::V6) => &[Family::V6],
        (_, Family::V4) => &[Family::V4, Family::V6],
        (_, Family::V6) => &[Family::V6, Family::V4],
    }
}

/// The first family of `spec.ipFamilies`, else of `spec.clusterIPs` (or `clusterIP`),
/// else IPv4.
fn primary_family(
    spec: &k8s_openapi::api::core::v1::ServiceSpec,
    warnings: &mut Vec<Warning>,
) -> Family {
    for f in spec.ip_families.iter().flatten() {
        match Family::parse(f) {
            Some(family) => return family,
            None => warnings.push(Warning::ignored(format!(
                "ignoring unknown spec.ipFamilies entry {f:?}"
            ))),
        }
    }
    let cluster_ips = spec
        .cluster_ips
        .iter()
        .flatten()
        .map(String::as_str)
        .chain(spec.cluster_ip.as_deref());
    for text in cluster_ips {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Family::of(&ip.to_canonical());
        }
    }
    Family::V4
}

fn parse_ip(text: &str, field: &'static str) -> Result<IpAddr, AllocationError> {
    text.trim()
        .parse::<IpAddr>()
        .map(|ip| ip.to_canonical())
        .map_err(|_| AllocationError::InvalidIp {
            field,
            value: text.to_string(),
        })
}

fn deprecated_annotation(old: &str, new: &str) -> Warning {
    Warning::deprecated(format!("annotation {old} is deprecated; use {new}"))
}

fn backend(spec: &k8s_openapi::api::core::v1::ServiceSpec) -> Backend {
    if spec.external_traffic_policy.as_deref() == Some("Local") {
        let text = spec
            .selector
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        Backend::Local(text)
    } else {
        Backend::Cluster
    }
}

/// Checks that addresses fit a Service's families and policy (at most one per family;
/// SingleStack: one of the primary family; RequireDualStack: both; PreferDualStack: one
/// or both) and returns them in family order.
pub(crate) fn fit_families(
    ips: &[IpAddr],
    families: &[Family],
    policy: FamilyPolicy,
) -> Result<Vec<IpAddr>, AllocationError> {
    let (ordered, len) = fit_pair(ips, families, policy)?;
    Ok(ordered[..len].to_vec())
}

/// [`fit_families`] without allocating: the addresses in an array, and how many.
pub(crate) fn fit_pair(
    ips: &[IpAddr],
    families: &[Family],
    policy: FamilyPolicy,
) -> Result<([IpAddr; 2], usize), AllocationError> {
    let mismatch = || AllocationError::FamilyMismatch {
        ips: ips.to_vec(),
        families: families.to_vec(),
        policy,
    };
    let mut ordered = [IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED); 2];
    let mut len = 0;
    for family in families {
        let mut of_family = ips.iter().filter(|ip| Family::of(ip) == *family);
        if let Some(ip) = of_family.next() {
            if of_family.next().is_some() || len == 2 {
                return Err(mismatch());
            }
            ordered[len] = *ip;
            len += 1;
        }
    }
    let count_ok = match policy {
        FamilyPolicy::SingleStack => len == 1,
        FamilyPolicy::PreferDualStack => len > 0,
        FamilyPolicy::RequireDualStack => len == 2,
    };
    if len != ips.len() || !count_ok {
        return Err(mismatch());
    }
    Ok((ordered, len))
}
