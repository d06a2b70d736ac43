//! Turning one manifest (as a JSON value) into a typed object of the [`Snapshot`].

use ferrolb_model::Problem;
use ferrolb_model::Snapshot;
use ferrolb_model::crd::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, L2Advertisement, peer::v1beta1,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What became of one manifest.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    /// Added to the snapshot.
    Added,
    /// A `v1` `List`: its items, to be decoded in turn.
    List(Vec<Value>),
    /// A kind ferrolb does not read; skipped.
    Skipped {
        /// `apiVersion` of the manifest.
        api_version: String,
        /// `kind` of the manifest.
        kind: String,
    },
}

/// Decodes one manifest and adds it to the snapshot. Kinds ferrolb does not read are
/// skipped. A manifest that does not fit its kind's schema is a [`Problem`] naming the
/// object and the field path.
pub fn decode_object(mut value: Value, snapshot: &mut Snapshot) -> Result<Decoded, Problem> {
    ferrolb_model::crd::fill_optional_spec(&mut value);
    let Value::Object(map) = &value else {
        return Err(Problem {
            object: "manifest".into(),
            field: String::new(),
            message: format!(
                "expected a mapping with apiVersion and kind, found {}",
                type_name(&value)
            ),
            transient: false,
        });
    };
    let text = |k: &str| map.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let api_version = text("apiVersion");
    let kind = text("kind");
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if api_version.is_empty() || kind.is_empty() {
        let object = if kind.is_empty() {
            "manifest".into()
        } else {
            format!("{kind}/{name}")
        };
        let missing = if api_version.is_empty() {
            "apiVersion"
        } else {
            "kind"
        };
        return Err(Problem {
            object,
            field: missing.into(),
            message: "missing".into(),
            transient: false,
        });
    }
    let problem = |field: String, message: String| Problem {
        object: format!("{kind}/{name}"),
        field,
        message,
        transient: false,
    };
    if (api_version.as_str(), kind.as_str()) == ("v1", "List") {
        // `kubectl get -o yaml` output: the caller decodes each item.
        return match map.get("items") {
            None | Some(Value::Null) => Ok(Decoded::List(Vec::new())),
            Some(Value::Array(items)) => Ok(Decoded::List(items.clone())),
            Some(_) => Err(problem("items".into(), "expected a list".into())),
        };
    }
    if name.is_empty() {
        return Err(problem("metadata.name".into(), "missing".into()));
    }
    match (api_version.as_str(), kind.as_str()) {
        ("metallb.io/v1beta1", "IPAddressPool") => snapshot.pools.push(typed(value, &problem)?),
        ("metallb.io/v1beta1", "L2Advertisement") => {
            snapshot
                .l2_advertisements
                .push(typed::<L2Advertisement>(value, &problem)?)
        }
        ("metallb.io/v1beta1", "BGPAdvertisement") => {
            snapshot
                .bgp_advertisements
                .push(typed::<BGPAdvertisement>(value, &problem)?)
        }
        ("metallb.io/v1beta2", "BGPPeer") => {
            snapshot.bgp_peers.push(typed::<BGPPeer>(value, &problem)?)
        }
        ("metallb.io/v1beta1", "BGPPeer") => snapshot
            .bgp_peers
            .push(typed::<v1beta1::BGPPeer>(value, &problem)?.into_v1beta2()),
        ("metallb.io/v1beta1", "Community") => snapshot
            .communities
            .push(typed::<Community>(value, &problem)?),
        ("metallb.io/v1beta1", "BFDProfile") => snapshot
            .bfd_profiles
            .push(typed::<BFDProfile>(value, &problem)?),
        ("v1", "Service") => snapshot.services.push(typed::<Service>(value, &problem)?),
        ("v1", "Namespace") => snapshot
            .namespaces
            .push(typed::<Namespace>(value, &problem)?),
        ("v1", "Node") => snapshot.nodes.push(typed::<Node>(value, &problem)?),
        ("v1", "Secret") => snapshot
            .secrets
            .push(secret(typed::<Secret>(value, &problem)?)),
        ("discovery.k8s.io/v1", "EndpointSlice") => {
            snapshot
                .endpoint_slices
                .push(typed::<EndpointSlice>(value, &problem)?)
        }
        (api, k) if api.starts_with("metallb.io/") => {
            return Err(problem(
                "apiVersion".into(),
                format!("{api} {k} is not a kind ferrolb knows (check the spelling and version)"),
            ));
        }
        _ => {
            return Ok(Decoded::Skipped { api_version, kind });
        }
    }
    Ok(Decoded::Added)
}

/// Deserializes a typed object, reporting the path of the offending field.
fn typed<T: DeserializeOwned>(
    value: Value,
    problem: &impl Fn(String, String) -> Problem,
) -> Result<T, Problem> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        problem(path, e.into_inner().to_string())
    })
}

/// Applies `stringData` the way the API server does: its keys are written into `data`.
fn secret(mut s: Secret) -> Secret {
    if let Some(string_data) = s.string_data.take() {
        let data = s.data.get_or_insert_with(Default::default);
        for (k, v) in string_data {
            data.insert(k, ByteString(v.into_bytes()));
        }
    }
    s
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
