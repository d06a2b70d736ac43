//! BGPPeer conversion between `metallb.io/v1beta1` and `metallb.io/v1beta2`
//! (`apiextensions.k8s.io/v1` ConversionReview, served on `/convert`).
//!
//! v1beta1 → v1beta2 is the model's [`ferrolb_model::crd::peer::v1beta1::BGPPeer::into_v1beta2`].
//! v1beta2 → v1beta1 keeps the fields v1beta1 has; the others (`dynamicASN`,
//! `localASN`, `interface`, `connectTime`, `passwordSecret`, `enableGracefulRestart`,
//! `vrf`, `disableMP`, `dualStackAddressFamily`) have no place there and are left out, as
//! in MetalLB. Only `apiVersion` and `spec` change: metadata and status are returned as
//! they came, as the API server requires.

use super::decide::decode_peer;
use ferrolb_model::crd::peer::v1beta1::{self, MatchExpression, NodeSelector};
use ferrolb_model::crd::{BGPPeer, BGPPeerSpec};
use serde_json::{Value, json};

/// The versions converted between.
pub const V1BETA1: &str = "metallb.io/v1beta1";
/// The stored version.
pub const V1BETA2: &str = "metallb.io/v1beta2";

/// The v1beta1 spec holding what `spec` (v1beta2) has that v1beta1 can say.
pub fn spec_to_v1beta1(spec: &BGPPeerSpec) -> v1beta1::BGPPeerSpec {
    v1beta1::BGPPeerSpec {
        my_asn: spec.my_asn,
        peer_asn: spec.peer_asn,
        peer_address: spec.peer_address.clone(),
        source_address: spec.source_address.clone(),
        peer_port: spec.peer_port,
        hold_time: spec.hold_time.clone(),
        keepalive_time: spec.keepalive_time.clone(),
        router_id: spec.router_id.clone(),
        node_selectors: spec
            .node_selectors
            .iter()
            .map(|s| NodeSelector {
                match_labels: s.match_labels.clone().unwrap_or_default(),
                match_expressions: s
                    .match_expressions
                    .iter()
                    .flatten()
                    .map(|e| MatchExpression {
                        key: e.key.clone(),
                        operator: e.operator.clone(),
                        values: e.values.clone().unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect(),
        password: spec.password.clone(),
        bfd_profile: spec.bfd_profile.clone(),
        ebgp_multi_hop: spec.ebgp_multi_hop,
    }
}

/// Converts one BGPPeer object (either version) to `desired` (`metallb.io/v1beta1` or
/// `metallb.io/v1beta2`).
pub fn convert_object(object: &Value, desired: &str) -> Result<Value, String> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let from = object.get("apiVersion").and_then(Value::as_str);
    if from == Some(desired) {
        return Ok(object.clone());
    }
    if from != Some(V1BETA1) && from != Some(V1BETA2) {
        return Err(format!(
            "BGPPeer/{name}: apiVersion {from:?} is not {V1BETA1} or {V1BETA2}"
        ));
    }
    let peer: BGPPeer = decode_peer(object, name).map_err(|p| p.to_string())?;
    let spec = match desired {
        V1BETA2 => serde_json::to_value(&peer.spec),
        V1BETA1 => serde_json::to_value(spec_to_v1beta1(&peer.spec)),
        other => {
            return Err(format!(
                "BGPPeer/{name}: cannot convert to {other:?}: only {V1BETA1} and {V1BETA2}"
            ));
        }
    }
    .map_err(|e| format!("BGPPeer/{name}: {e}"))?;
    let mut out = object.clone();
    if let Some(map) = out.as_object_mut() {
        map.insert("apiVersion".into(), desired.into());
        map.insert("spec".into(), spec);
    }
    Ok(out)
}

/// Answers a ConversionReview body. `Err` when it has no `request.uid` to answer to.
pub fn convert_review(body: &[u8]) -> Result<Value, super::review::ReviewError> {
    use super::review::ReviewError;
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ReviewError::NotJson(e.to_string()))?;
    let uid = value
        .pointer("/request/uid")
        .and_then(Value::as_str)
        .ok_or(ReviewError::NoUid)?;
    let desired = value
        .pointer("/request/desiredAPIVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let objects = value
        .pointer("/request/objects")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let converted: Result<Vec<Value>, String> =
        objects.iter().map(|o| convert_object(o, desired)).collect();
    let response = match converted {
        Ok(objects) => json!({
            "uid": uid,
            "convertedObjects": objects,
            "result": {"status": "Success"},
        }),
        Err(message) => json!({
            "uid": uid,
            "convertedObjects": [],
            "result": {"status": "Failure", "message": message},
        }),
    };
    Ok(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "response": response,
    }))
}
