//! `admission.k8s.io/v1` AdmissionReview bodies: read leniently (any JSON, never a
//! panic), answered with a review carrying the request's `uid`.

use super::decide::{Kind, Operation, Request, Verdict};
use serde_json::{Value, json};

/// Why a body cannot be answered with a review: no `request.uid` to answer to.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReviewError {
    /// The body is not JSON.
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// It has no `request.uid` string.
    #[error("the body is not an AdmissionReview: no request.uid")]
    NoUid,
}

/// A review read: the request's `uid`, and the request or why it cannot be decided (the
/// answer is then a denial with that message).
#[derive(Debug)]
pub struct Review {
    /// `request.uid`, echoed in the response.
    pub uid: String,
    /// The request, or what is wrong with it.
    pub request: Result<Request, String>,
}

/// Reads an AdmissionReview sent to the webhook of `expected`.
pub fn read_review(body: &[u8], expected: Kind) -> Result<Review, ReviewError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ReviewError::NotJson(e.to_string()))?;
    let request = value.get("request").ok_or(ReviewError::NoUid)?;
    let uid = request
        .get("uid")
        .and_then(Value::as_str)
        .ok_or(ReviewError::NoUid)?
        .to_string();
    Ok(Review {
        uid,
        request: parse_request(request, expected),
    })
}

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

fn parse_request(request: &Value, expected: Kind) -> Result<Request, String> {
    let group = text(request, "/kind/group").unwrap_or_default();
    let kind = text(request, "/kind/kind").unwrap_or_default();
    if group != ferrolb_model::crd::GROUP || kind != expected.name() {
        return Err(format!(
            "this webhook validates {}.{}, not {kind:?} of group {group:?}",
            expected.name(),
            ferrolb_model::crd::GROUP
        ));
    }
    let operation = text(request, "/operation").unwrap_or_default();
    let operation = Operation::parse(operation)
        .ok_or_else(|| format!("operation {operation:?} is not CREATE, UPDATE or DELETE"))?;
    let object = |field: &str| match request.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(o @ Value::Object(_)) => Ok(Some(o.clone())),
        Some(_) => Err(format!("request.{field} is not an object")),
    };
    let object_value = object("object")?;
    let old_object = object("oldObject")?;
    let from_object = |pointer: &str| {
        object_value
            .as_ref()
            .or(old_object.as_ref())
            .and_then(|o| text(o, pointer))
            .unwrap_or_default()
            .to_string()
    };
    let name = match text(request, "/name") {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => from_object("/metadata/name"),
    };
    let namespace = match text(request, "/namespace") {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => from_object("/metadata/namespace"),
    };
    Ok(Request {
        operation,
        kind: expected,
        namespace,
        name,
        object: object_value,
        old_object,
    })
}

/// The AdmissionReview answering `uid` with `verdict`.
pub fn response(uid: &str, verdict: &Verdict) -> Value {
    let response = match verdict {
        Verdict::Allow { warnings } if warnings.is_empty() => json!({
            "uid": uid, "allowed": true,
        }),
        Verdict::Allow { warnings } => json!({
            "uid": uid, "allowed": true, "warnings": warnings,
        }),
        Verdict::Deny { message } => json!({
            "uid": uid,
            "allowed": false,
            "status": {"code": 403, "reason": "Forbidden", "message": message},
        }),
    };
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    })
}
