//! The admission decision, pure: the configuration in force, one request, a verdict.

use ferrolb_model::crd::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
    fill_optional_spec, peer,
};
use ferrolb_model::{Problem, Snapshot};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeSet;

/// The `metallb.io` kinds the webhook validates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `IPAddressPool`.
    IPAddressPool,
    /// `L2Advertisement`.
    L2Advertisement,
    /// `BGPAdvertisement`.
    BGPAdvertisement,
    /// `BGPPeer` (v1beta2, or v1beta1 converted).
    BGPPeer,
    /// `Community`.
    Community,
    /// `BFDProfile`.
    BFDProfile,
}

impl Kind {
    /// Every kind, in the order of their webhook paths.
    pub const ALL: [Kind; 6] = [
        Kind::IPAddressPool,
        Kind::L2Advertisement,
        Kind::BGPAdvertisement,
        Kind::BGPPeer,
        Kind::Community,
        Kind::BFDProfile,
    ];

    /// The kind's name, as in `kind:`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::IPAddressPool => "IPAddressPool",
            Kind::L2Advertisement => "L2Advertisement",
            Kind::BGPAdvertisement => "BGPAdvertisement",
            Kind::BGPPeer => "BGPPeer",
            Kind::Community => "Community",
            Kind::BFDProfile => "BFDProfile",
        }
    }

    /// The kind of that name.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The path its validating webhook is served on (MetalLB's):
    /// `/validate-metallb-io-v1beta1-ipaddresspool`, `/validate-metallb-io-v1beta2-bgppeer`.
    pub fn path(self) -> String {
        let version = if self == Kind::BGPPeer {
            "v1beta2"
        } else {
            "v1beta1"
        };
        format!(
            "/validate-metallb-io-{version}-{}",
            self.name().to_ascii_lowercase()
        )
    }
}

/// What the request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A new object.
    Create,
    /// A changed object.
    Update,
    /// An object removed.
    Delete,
}

impl Operation {
    /// The operation of an AdmissionRequest's `operation` field.
    pub fn parse(text: &str) -> Option<Operation> {
        match text {
            "CREATE" => Some(Operation::Create),
            "UPDATE" => Some(Operation::Update),
            "DELETE" => Some(Operation::Delete),
            _ => None,
        }
    }
}

/// One admission request, as the decision needs it.
#[derive(Clone, Debug)]
pub struct Request {
    /// The operation.
    pub operation: Operation,
    /// The kind.
    pub kind: Kind,
    /// The object's namespace (the request's `namespace`).
    pub namespace: String,
    /// The object's name (the request's `name`, else the object's).
    pub name: String,
    /// The object after the operation (`None` on DELETE).
    pub object: Option<Value>,
    /// The object before the operation (UPDATE, DELETE).
    pub old_object: Option<Value>,
}

/// The verdict on a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through; the warnings are shown to the user (`kubectl` prints them).
    Allow {
        /// Problems that do not block the request (a reference to an object that does
        /// not exist yet).
        warnings: Vec<String>,
    },
    /// Reject it.
    Deny {
        /// Why: one line per problem, as `ferrolb check` prints them.
        message: String,
    },
}

impl Verdict {
    fn deny(message: impl Into<String>) -> Verdict {
        Verdict::Deny {
            message: message.into(),
        }
    }

    /// Whether the request is let through.
    pub fn allowed(&self) -> bool {
        matches!(self, Verdict::Allow { .. })
    }
}

/// Decides on `request` given the configuration objects in force (`current`, e.g.
/// [`crate::source::Stores::config_snapshot`]) and ferrolb's namespace.
///
/// The rule:
///
/// 1. CREATE and UPDATE of an object outside `namespace` are rejected (ferrolb, like
///    MetalLB, reads only its own namespace; the object would be silently ignored).
///    DELETE outside it is allowed.
/// 2. An object that does not decode into its kind is rejected, naming what does not
///    fit.
/// 3. The request is applied to `current` (the object replaces the one of the same
///    name, or is added; DELETE removes it), and [`ferrolb_model::validate`] (what
///    `ferrolb check` runs) is run on the configuration before and after. Only problems
///    found after and not before count: a request is not blamed for an unrelated
///    problem that already existed (nor for one of its own object that it did not
///    fix). Among those new problems:
///    - any that is not transient rejects the request, the message being every new
///      problem, one per line, exactly as `ferrolb check` prints them;
///    - transient ones (a reference to a BFDProfile, Secret or Community alias that
///      does not exist) reject a DELETE (it would leave a reference dangling, e.g. a
///      BFDProfile still used by a BGPPeer) but only warn on CREATE and UPDATE, as
///      MetalLB's webhooks ignore them, so that the objects of one `kubectl apply` may
///      arrive in any order.
pub fn decide(namespace: &str, current: &Snapshot, request: &Request) -> Verdict {
    let kind = request.kind.name();
    let object = match request.operation {
        Operation::Delete => None,
        Operation::Create | Operation::Update => match &request.object {
            Some(o) => Some(o),
            None => {
                return Verdict::deny(format!(
                    "{kind}/{}: the request carries no object",
                    request.name
                ));
            }
        },
    };
    let name = if request.name.is_empty() {
        object
            .and_then(|o| o.pointer("/metadata/name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    } else {
        request.name.clone()
    };
    let object_namespace = object
        .and_then(|o| o.pointer("/metadata/namespace"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or(&request.namespace);
    if object.is_some() && object_namespace != namespace {
        return Verdict::deny(
            Problem::new(
                kind,
                &name,
                "metadata.namespace",
                format!(
                    "must be {namespace:?}, the namespace ferrolb reads its configuration from (not {object_namespace:?})"
                ),
            )
            .to_string(),
        );
    }
    if request.operation == Operation::Delete && request.namespace != namespace {
        return Verdict::Allow {
            warnings: Vec::new(),
        };
    }
    let mut after = current.clone();
    let applied = match object {
        Some(o) => put(&mut after, request.kind, &name, o),
        None => {
            remove(&mut after, request.kind, &name);
            Ok(())
        }
    };
    if let Err(problem) = applied {
        return Verdict::deny(problem.to_string());
    }
    let before: BTreeSet<Problem> = problems(current).into_iter().collect();
    let new: Vec<Problem> = problems(&after)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    let blocking = |p: &Problem| !p.transient || request.operation == Operation::Delete;
    if new.iter().any(blocking) {
        let lines: Vec<String> = new.iter().map(ToString::to_string).collect();
        return Verdict::deny(lines.join("\n"));
    }
    Verdict::Allow {
        warnings: new.iter().map(ToString::to_string).collect(),
    }
}

fn problems(snapshot: &Snapshot) -> Vec<Problem> {
    ferrolb_model::validate(snapshot).err().unwrap_or_default()
}

/// Decodes `object` as `K` (its `apiVersion` and `kind` set to `K`'s, a missing `spec`
/// filled for kinds that may omit it, as the Kubernetes source does).
fn decode<K>(object: &Value, name: &str) -> Result<K, Problem>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let kind = K::kind(&());
    let mut value = object.clone();
    let Some(map) = value.as_object_mut() else {
        return Err(Problem::new(&kind, name, "", "is not an object"));
    };
    map.insert("apiVersion".into(), K::api_version(&()).into());
    map.insert("kind".into(), kind.to_string().into());
    fill_optional_spec(&mut value);
    serde_json::from_value(value)
        .map_err(|e| Problem::new(&kind, name, "", format!("does not fit the schema: {e}")))
}

/// Decodes a BGPPeer of either version into the stored one (v1beta2).
pub(crate) fn decode_peer(object: &Value, name: &str) -> Result<BGPPeer, Problem> {
    let version = object.get("apiVersion").and_then(Value::as_str);
    if version == Some("metallb.io/v1beta1") {
        decode::<peer::v1beta1::BGPPeer>(object, name).map(|p| p.into_v1beta2())
    } else {
        decode::<BGPPeer>(object, name)
    }
}

/// Replaces the object of that name, or adds it; the list is then in name order, as
/// the controller's stores give it ([`crate::source::Stores::config_snapshot`]), so the
/// problems found are the ones the controller will find.
fn replace<K: Resource>(list: &mut Vec<K>, name: &str, object: K) {
    match list
        .iter_mut()
        .find(|o| o.meta().name.as_deref() == Some(name))
    {
        Some(slot) => *slot = object,
        None => list.push(object),
    }
    list.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
}

fn put(snapshot: &mut Snapshot, kind: Kind, name: &str, object: &Value) -> Result<(), Problem> {
    match kind {
        Kind::IPAddressPool => replace(
            &mut snapshot.pools,
            name,
            decode::<IPAddressPool>(object, name)?,
        ),
        Kind::L2Advertisement => replace(
            &mut snapshot.l2_advertisements,
            name,
            decode::<L2Advertisement>(object, name)?,
        ),
        Kind::BGPAdvertisement => replace(
            &mut snapshot.bgp_advertisements,
            name,
            decode::<BGPAdvertisement>(object, name)?,
        ),
        Kind::BGPPeer => replace(&mut snapshot.bgp_peers, name, decode_peer(object, name)?),
        Kind::Community => replace(
            &mut snapshot.communities,
            name,
            decode::<Community>(object, name)?,
        ),
        Kind::BFDProfile => replace(
            &mut snapshot.bfd_profiles,
            name,
            decode::<BFDProfile>(object, name)?,
        ),
    }
    Ok(())
}

fn remove(snapshot: &mut Snapshot, kind: Kind, name: &str) {
    fn drop_named<K: Resource>(list: &mut Vec<K>, name: &str) {
        list.retain(|o| o.meta().name.as_deref() != Some(name));
    }
    match kind {
        Kind::IPAddressPool => drop_named(&mut snapshot.pools, name),
        Kind::L2Advertisement => drop_named(&mut snapshot.l2_advertisements, name),
        Kind::BGPAdvertisement => drop_named(&mut snapshot.bgp_advertisements, name),
        Kind::BGPPeer => drop_named(&mut snapshot.bgp_peers, name),
        Kind::Community => drop_named(&mut snapshot.communities, name),
        Kind::BFDProfile => drop_named(&mut snapshot.bfd_profiles, name),
    }
}
