//! `ferrolb controller`: the Kubernetes controller (address allocation for
//! LoadBalancer Services), with leader election, and `/metrics`, `/healthz`, `/readyz`;
//! and the admission webhook (every replica serves it, leader or not).

use crate::metrics::{Exposition, Kind};
use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use ferrolb_k8s::controller::{ControllerOptions, Election, run_sharing_stores};
use ferrolb_k8s::lease::LeaseTimings;
use ferrolb_k8s::metrics::{Metrics, MetricsSnapshot, PoolMetrics};
use ferrolb_k8s::source::Stores;
use ferrolb_k8s::webhook::{SnapshotSource, WebhookOptions};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Arguments of `ferrolb controller`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The namespace of the metallb.io resources, the Lease and the ConfigurationState.
    #[arg(long, env = "METALLB_NAMESPACE", default_value = "metallb-system")]
    pub namespace: String,
    /// Handle only Services with this spec.loadBalancerClass (default: only Services
    /// without a class).
    #[arg(long, env = "METALLB_LB_CLASS")]
    pub lb_class: Option<String>,
    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:7472")]
    pub metrics_addr: SocketAddr,
    /// Run without leader election (only safe with a single replica).
    #[arg(long)]
    pub no_leader_election: bool,
    /// The name of the Lease replicas elect a leader with.
    #[arg(long, default_value = "ferrolb-controller")]
    pub lease_name: String,
    /// This replica's identity in the Lease (the pod name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// The membership Secret the speakers gossip with, created when missing (empty: do
    /// not manage it).
    #[arg(long, env = "METALLB_ML_SECRET_NAME", default_value = "memberlist")]
    pub ml_secret_name: String,
    /// The port of the admission webhook (HTTPS, on every address; the Service
    /// ferrolb-webhook-service forwards port 443 to it).
    #[arg(long, default_value_t = 9443)]
    pub webhook_port: u16,
    /// Do not serve the admission webhook (nor manage its certificate).
    #[arg(long)]
    pub no_webhook: bool,
}

/// Runs the controller until SIGTERM or SIGINT.
pub fn run_controller(args: Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    super::block_on(run_async(args))
}

async fn run_async(args: Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let client = ferrolb_k8s::connect().await?;
    let metrics = Arc::new(Metrics::default());
    serve(args.metrics_addr, metrics.clone()).await?;
    let election = if args.no_leader_election {
        None
    } else {
        let identity = match args.identity {
            Some(id) if !id.is_empty() => id,
            _ => hostname(),
        };
        Some(Election {
            lease_name: args.lease_name,
            identity,
            timings: LeaseTimings::default(),
        })
    };
    let options = ControllerOptions {
        namespace: args.namespace,
        lb_class: args.lb_class,
        election,
        memberlist_secret: Some(args.ml_secret_name).filter(|s| !s.is_empty()),
    };
    let (stop, stopped) = watch::channel(false);
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = sigint.recv() => {}
        }
        tracing::info!("stopping");
        let _ = stop.send(true);
    });
    // The webhook validates against the controller's stores once they have listed.
    let stores: Arc<OnceLock<Stores>> = Arc::new(OnceLock::new());
    let webhook_enabled = !args.no_webhook;
    if webhook_enabled {
        let snapshot: SnapshotSource = {
            let stores = stores.clone();
            Arc::new(move || stores.get().map(|s| s.config_snapshot().0))
        };
        let webhook = WebhookOptions::new(
            &options.namespace,
            SocketAddr::from(([0, 0, 0, 0], args.webhook_port)),
        );
        let (client, stopped) = (client.clone(), stopped.clone());
        tokio::spawn(async move {
            if let Err(e) = ferrolb_k8s::webhook::run(client, webhook, snapshot, stopped).await {
                tracing::error!("the admission webhook stopped: {e}");
            }
        });
    }
    let on_stores = {
        let cell = stores.clone();
        move |s: Stores| {
            if webhook_enabled {
                tokio::spawn(async move {
                    if s.config_ready().await {
                        let _ = cell.set(s);
                    }
                });
            }
        }
    };
    run_sharing_stores(client, options, metrics, stopped, on_stores).await?;
    Ok(ExitCode::SUCCESS)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("ferrolb-controller-{}", std::process::id()))
}

async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let scrape = {
        let m = metrics.clone();
        move || async move {
            (
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                render(&m.snapshot()),
            )
        }
    };
    let ready = move || async move {
        if metrics.snapshot().synced {
            (StatusCode::OK, "ready\n")
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the watches have not listed yet\n",
            )
        }
    };
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("HTTP server: {e}");
        }
    });
    Ok(())
}

/// The controller's metrics, under MetalLB's names (plus `ferrolb_controller_leader`).
pub fn render(m: &MetricsSnapshot) -> String {
    let mut e = Exposition::default();
    type Get = fn(&PoolMetrics) -> u128;
    let pools: [(&str, &str, Get); 7] = [
        (
            "metallb_allocator_addresses_total",
            "Number of usable IP addresses, per pool",
            |p| {
                let u = &p.usage;
                u.assigned_ipv4
                    .saturating_add(u.available_ipv4)
                    .saturating_add(u.assigned_ipv6)
                    .saturating_add(u.available_ipv6)
            },
        ),
        (
            "metallb_allocator_ipv4_addresses_total",
            "Number of usable IPv4 addresses, per pool",
            |p| p.usage.assigned_ipv4.saturating_add(p.usage.available_ipv4),
        ),
        (
            "metallb_allocator_ipv6_addresses_total",
            "Number of usable IPv6 addresses, per pool",
            |p| p.usage.assigned_ipv6.saturating_add(p.usage.available_ipv6),
        ),
        (
            "metallb_allocator_addresses_in_use_total",
            "Number of IP addresses in use, per pool",
            |p| p.usage.assigned_ipv4.saturating_add(p.usage.assigned_ipv6),
        ),
        (
            "metallb_allocator_ipv4_addresses_in_use_total",
            "Number of IPv4 addresses in use, per pool",
            |p| p.usage.assigned_ipv4,
        ),
        (
            "metallb_allocator_ipv6_addresses_in_use_total",
            "Number of IPv6 addresses in use, per pool",
            |p| p.usage.assigned_ipv6,
        ),
        (
            "metallb_allocator_services_allocated_total",
            "Number of services allocated, per pool",
            |p| u128::from(p.services),
        ),
    ];
    for (name, help, get) in pools {
        e.family(name, help, Kind::Gauge);
        for (pool, p) in &m.pools {
            e.sample(name, &[("pool", pool)], get(p) as f64);
        }
    }
    let bool_value = |b: bool| if b { 1.0 } else { 0.0 };
    e.family(
        "metallb_k8s_client_updates_total",
        "Number of k8s object updates that have been processed.",
        Kind::Counter,
    )
    .sample("metallb_k8s_client_updates_total", &[], m.updates as f64);
    e.family(
        "metallb_k8s_client_update_errors_total",
        "Number of k8s object updates that failed for some reason.",
        Kind::Counter,
    )
    .sample(
        "metallb_k8s_client_update_errors_total",
        &[],
        m.update_errors as f64,
    );
    e.family(
        "metallb_k8s_client_config_loaded_bool",
        "1 if the MetalLB configuration was successfully loaded at least once.",
        Kind::Gauge,
    )
    .sample(
        "metallb_k8s_client_config_loaded_bool",
        &[],
        bool_value(m.config_loaded),
    );
    e.family(
        "metallb_k8s_client_config_stale_bool",
        "1 if running on a stale configuration, because the latest config failed to load.",
        Kind::Gauge,
    )
    .sample(
        "metallb_k8s_client_config_stale_bool",
        &[],
        bool_value(m.config_stale),
    );
    e.family(
        "ferrolb_controller_leader",
        "1 if this replica holds the leader Lease and writes.",
        Kind::Gauge,
    )
    .sample("ferrolb_controller_leader", &[], bool_value(m.leader));
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_allocator::PoolUsage;

    #[test]
    fn renders_metallb_names_per_pool() {
        let mut m = MetricsSnapshot {
            updates: 12,
            update_errors: 1,
            config_loaded: true,
            config_stale: true,
            synced: true,
            leader: true,
            ..Default::default()
        };
        m.pools.insert(
            "main".into(),
            PoolMetrics {
                usage: PoolUsage {
                    assigned_ipv4: 2,
                    available_ipv4: 2,
                    assigned_ipv6: 1,
                    available_ipv6: 255,
                },
                services: 3,
            },
        );
        let text = render(&m);
        for line in [
            "metallb_allocator_addresses_total{pool=\"main\"} 260",
            "metallb_allocator_ipv4_addresses_total{pool=\"main\"} 4",
            "metallb_allocator_ipv6_addresses_in_use_total{pool=\"main\"} 1",
            "metallb_allocator_addresses_in_use_total{pool=\"main\"} 3",
            "metallb_allocator_services_allocated_total{pool=\"main\"} 3",
            "metallb_k8s_client_updates_total 12",
            "metallb_k8s_client_update_errors_total 1",
            "metallb_k8s_client_config_loaded_bool 1",
            "metallb_k8s_client_config_stale_bool 1",
            "ferrolb_controller_leader 1",
            "# TYPE metallb_k8s_client_updates_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
