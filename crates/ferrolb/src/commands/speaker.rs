//! `ferrolb speaker`: the node agent on Kubernetes. The same core as `ferrolb run`
//! (membership, layer 2 election, BGP, BFD), fed by the API server instead of a
//! directory: the addresses are those the controller wrote in the Services' status, and
//! what the node announces is written back as ServiceL2Status / ServiceBGPStatus objects
//! owned by the speaker pod.

use crate::agent::{AssignmentSource, Input, NodeOptions, run_node};
use ferrolb_election::Announced;
use ferrolb_k8s::source::Change;
use ferrolb_k8s::speaker::{
    GOSSIP_SECRET_WAIT, StartGate, StatusWriter, gossip_wait_over, next_batch, service_of, watch,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Api;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::{mpsc, watch as watch_channel};
use tracing::{info, warn};

/// Arguments of `ferrolb speaker`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// This node's name (the pod's spec.nodeName).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// The namespace of the metallb.io resources and of the status objects.
    #[arg(long, env = "METALLB_NAMESPACE", default_value = "metallb-system")]
    pub namespace: String,
    /// Where to serve /metrics, /healthz, /readyz and /status.
    #[arg(long, default_value = "0.0.0.0:7473")]
    pub metrics_addr: SocketAddr,
    /// UDP port of the membership protocol.
    #[arg(long, env = "METALLB_ML_BIND_PORT", default_value_t = 7946)]
    pub gossip_port: u16,
    /// Membership timing: `default` or `conservative`.
    #[arg(long, default_value = "default")]
    pub membership_profile: String,
    /// Handle only Services with this spec.loadBalancerClass.
    #[arg(long, env = "METALLB_LB_CLASS")]
    pub lb_class: Option<String>,
    /// Add local routes for the announced addresses (off: kube-proxy accepts their
    /// traffic on Kubernetes).
    #[arg(long)]
    pub local_routes: bool,
    /// On shutdown, re-announce BGP routes with GRACEFUL_SHUTDOWN and wait this long.
    #[arg(long, value_parser = parse_duration)]
    pub bgp_graceful_shutdown: Option<Duration>,
    /// Also accept the BGP connections peers open, on this address (e.g. `[::]:179`,
    /// IPv4 peers included). Sessions dial all the same; a collision keeps one
    /// connection as RFC 4271 says. Default: dial only.
    #[arg(long)]
    pub bgp_listen: Option<SocketAddr>,
    /// The Secret (in the namespace) holding the gossip key, `secretkey`: the one the
    /// controller's `--ml-secret-name` creates.
    #[arg(long, env = "METALLB_ML_SECRET_NAME", default_value = crate::agent::GOSSIP_SECRET)]
    pub ml_secret_name: String,
    /// The speaker pod's name (owner of the status objects).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    ferrolb_model::validate::duration::parse_go_duration(s)
}

/// Runs the speaker until SIGTERM or SIGINT.
pub fn run_speaker(args: Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    super::block_on(run_async(args))
}

async fn run_async(args: Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let client = ferrolb_k8s::connect().await?;
    let owner = match &args.pod_name {
        Some(name) => owner_of(&client, &args.namespace, name).await,
        None => None,
    };
    let (stores, changes) = watch(client.clone(), &args.namespace);
    let (inputs, rx) = mpsc::channel(4);
    let (announced_tx, mut announced_rx) = watch_channel::channel(Announced::default());

    // The source: once every kind is listed and the gossip Secret is there (or the wait
    // for it is over), a snapshot after each quiet batch of changes.
    let source_stores = stores.clone();
    let secret = args.ml_secret_name.clone();
    tokio::spawn(async move {
        let changes = futures_util::stream::select(changes, gossip_wait_over(GOSSIP_SECRET_WAIT));
        let mut changes = Box::pin(changes);
        let mut gate = StartGate::for_secret(&secret);
        while let Some(batch) = next_batch(&mut changes, Duration::from_millis(100)).await {
            for c in &batch {
                gate.see(c);
                if let Change::WatchError { kind, error } = c {
                    warn!("watching {kind}: {error}");
                }
            }
            if !gate.is_open(&source_stores) {
                continue;
            }
            let (snapshot, problems) = source_stores.snapshot();
            let input = Input::Read {
                snapshot: Box::new(snapshot),
                problems,
            };
            if inputs.send(input).await.is_err() {
                return;
            }
        }
    });

    // The status sink: ServiceL2Status / ServiceBGPStatus and nodeAssigned events.
    let mut writer = StatusWriter::new(client, &args.namespace, &args.node_name, owner);
    let status_stores = stores.clone();
    tokio::spawn(async move {
        loop {
            let now = announced_rx.borrow_and_update().clone();
            if let Err(e) = writer
                .sync(&now, |key| service_of(&status_stores, key))
                .await
            {
                warn!("status objects: {e}; trying again");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            if announced_rx.changed().await.is_err() {
                return;
            }
        }
    });

    info!(node = %args.node_name, namespace = %args.namespace, "speaker starting");
    let options = NodeOptions {
        node: args.node_name,
        metrics_addr: Some(args.metrics_addr),
        gossip_port: args.gossip_port,
        membership_profile: args.membership_profile,
        local_routes: args.local_routes,
        lb_class: args.lb_class,
        bgp_graceful_shutdown: args.bgp_graceful_shutdown,
        bgp_listen: args.bgp_listen,
        gossip_secret: args.ml_secret_name,
        assignments: AssignmentSource::ServiceStatus,
    };
    run_node(options, rx, Some(announced_tx)).await
}

/// An owner reference to the speaker pod (its uid read from the API server), so the
/// status objects are deleted with it.
async fn owner_of(client: &kube::Client, namespace: &str, pod: &str) -> Option<OwnerReference> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match api.get(pod).await {
        Ok(p) => Some(OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: pod.to_string(),
            uid: p.metadata.uid.unwrap_or_default(),
            ..OwnerReference::default()
        }),
        Err(e) => {
            warn!("reading pod {namespace}/{pod}: {e}: status objects without an owner");
            None
        }
    }
}
