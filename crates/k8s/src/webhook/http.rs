//! The webhook's HTTP routes (axum), TLS aside: one validating path per kind and
//! `/convert`.

use super::convert::convert_review;
use super::decide::{Kind, Verdict, decide};
use super::review::{read_review, response};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ferrolb_model::Snapshot;
use std::sync::Arc;

/// Where the configuration in force is read from: `None` until it has been read (the
/// reflectors have not listed yet), and requests are then denied with a message saying
/// so rather than judged against an empty configuration.
pub type SnapshotSource = Arc<dyn Fn() -> Option<Snapshot> + Send + Sync>;

/// What the routes share.
#[derive(Clone)]
pub struct WebhookState {
    /// ferrolb's namespace: objects elsewhere are rejected.
    pub namespace: String,
    /// The configuration in force.
    pub snapshot: SnapshotSource,
}

/// The message of a denial while the configuration has not been read.
pub const NOT_READY: &str =
    "ferrolb's webhook has not read the configuration yet: retry in a few seconds";

/// The path of v1beta1 BGPPeers (validated as their v1beta2 conversion).
pub const V1BETA1_PEER_PATH: &str = "/validate-metallb-io-v1beta1-bgppeer";

/// The routes: `POST` on each kind's [`Kind::path`] (AdmissionReview) and on `/convert`
/// (ConversionReview of BGPPeers). The v1beta2 BGPPeer path also takes v1beta1 objects, and so does
/// [`V1BETA1_PEER_PATH`].
pub fn router(state: WebhookState) -> Router {
    let mut router = Router::new();
    for kind in Kind::ALL {
        router = router.route(
            &kind.path(),
            post(
                move |State(s): State<WebhookState>, body: Bytes| async move {
                    validate(&s, kind, &body)
                },
            ),
        );
    }
    // The chart sends v1beta1 BGPPeers to their own path (matchPolicy Exact).
    router = router.route(
        V1BETA1_PEER_PATH,
        post(|State(s): State<WebhookState>, body: Bytes| async move {
            validate(&s, Kind::BGPPeer, &body)
        }),
    );
    router
        .route(
            "/convert",
            post(|body: Bytes| async move { convert(&body) }),
        )
        // A review carries the object and its old version: up to twice etcd's 1.5 MiB.
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// The largest body read (axum's default of 2 MiB is less than a review may be).
pub const BODY_LIMIT: usize = 4 << 20;

fn json(value: &serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn bad_request(message: String) -> Response {
    tracing::warn!("webhook: {message}");
    (StatusCode::BAD_REQUEST, message).into_response()
}

fn validate(state: &WebhookState, kind: Kind, body: &[u8]) -> Response {
    let review = match read_review(body, kind) {
        Ok(r) => r,
        Err(e) => return bad_request(e.to_string()),
    };
    let verdict = match (&review.request, (state.snapshot)()) {
        (Err(message), _) => Verdict::Deny {
            message: message.clone(),
        },
        (Ok(_), None) => Verdict::Deny {
            message: NOT_READY.into(),
        },
        (Ok(request), Some(snapshot)) => decide(&state.namespace, &snapshot, request),
    };
    match (&review.request, &verdict) {
        (Ok(r), Verdict::Deny { message }) => tracing::info!(
            kind = kind.name(),
            name = %r.name,
            operation = ?r.operation,
            "webhook denied: {message}"
        ),
        (Ok(r), Verdict::Allow { .. }) => tracing::debug!(
            kind = kind.name(),
            name = %r.name,
            operation = ?r.operation,
            "webhook allowed"
        ),
        (Err(message), _) => tracing::info!(kind = kind.name(), "webhook denied: {message}"),
    }
    json(&response(&review.uid, &verdict))
}

fn convert(body: &[u8]) -> Response {
    match convert_review(body) {
        Ok(review) => json(&review),
        Err(e) => bad_request(e.to_string()),
    }
}
