//! The validating admission webhook for the `metallb.io` kinds, and the BGPPeer
//! conversion webhook.
//!
//! - [`decide`]: the decision, pure: the configuration in force (a
//!   [`ferrolb_model::Snapshot`] from the controller's reflector stores) and one request
//!   in, a [`Verdict`] out. It rejects what `ferrolb check` rejects, with its messages;
//!   see [`decide()`] for the exact rule (only problems the request introduces count).
//! - [`review`]: AdmissionReview bodies in and out; any JSON is read without a panic.
//! - [`convert`]: BGPPeer v1beta1 ⇄ v1beta2 (ConversionReview).
//! - [`http`]: the axum routes, `/validate-metallb-io-v1beta1-<kind>` (ipaddresspool,
//!   l2advertisement, bgpadvertisement, community, bfdprofile),
//!   `/validate-metallb-io-v1beta2-bgppeer` (and `-v1beta1-bgppeer`) and `/convert`.
//! - [`cert`]: the CA and serving certificate (rcgen), pure; [`certs`]: keeping them in
//!   the Secret [`certs::SECRET_NAME`] shared by the replicas and writing the CA bundle
//!   into the ValidatingWebhookConfiguration [`certs::CONFIGURATION_NAME`] (and the
//!   BGPPeer CRD's conversion webhook, when it has one); [`tls`]: HTTPS serving with a
//!   certificate swapped without a restart; [`run()`]: all of it together.
//!
//! Every replica of the controller serves the webhook (the Service spreads requests),
//! leader or not: validation reads only the reflector stores, and every replica serves
//! the one certificate of the Secret.

pub mod cert;
pub mod certs;
pub mod convert;
pub mod decide;
pub mod http;
pub mod review;
pub mod tls;

pub use decide::{Kind, Operation, Request, Verdict, decide};
pub use http::{SnapshotSource, WebhookState, router};

use certs::{CONFIGURATION_NAME, CertStore, PEER_CRD_NAME, SECRET_NAME, SERVICE_NAME};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};
use tls::stopped;
use tokio::sync::watch;

/// How the webhook runs.
#[derive(Clone, Debug)]
pub struct WebhookOptions {
    /// ferrolb's namespace: of the configuration, the Secret and the Service.
    pub namespace: String,
    /// Where to listen (`0.0.0.0:9443`).
    pub addr: SocketAddr,
    /// The Secret holding the certificate ([`SECRET_NAME`]).
    pub secret_name: String,
    /// The Service the API server calls ([`SERVICE_NAME`]): the certificate's name.
    pub service_name: String,
    /// The ValidatingWebhookConfiguration to write the CA into ([`CONFIGURATION_NAME`]).
    pub configuration_name: String,
    /// The CRD whose conversion webhook's CA is written when it has one
    /// ([`PEER_CRD_NAME`]; `None`: never).
    pub crd_name: Option<String>,
    /// How often the Secret is read again (a renewal by another replica is picked up)
    /// and the CA bundles checked (one overwritten is written again).
    pub refresh: Duration,
}

impl WebhookOptions {
    /// The defaults: the names the chart uses, a refresh every minute.
    pub fn new(namespace: &str, addr: SocketAddr) -> Self {
        WebhookOptions {
            namespace: namespace.into(),
            addr,
            secret_name: SECRET_NAME.into(),
            service_name: SERVICE_NAME.into(),
            configuration_name: CONFIGURATION_NAME.into(),
            crd_name: Some(PEER_CRD_NAME.into()),
            refresh: Duration::from_secs(60),
        }
    }
}

/// Why the webhook stopped.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate read cannot be served.
    #[error("{0}")]
    Cert(#[from] cert::CertError),
    /// TLS could not be set up.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// Runs the webhook until `shutdown` turns true: gets the certificate (the Secret's,
/// created or renewed when needed; retried until the API server answers), serves the
/// [`router`] over HTTPS on `options.addr`, writes the CA bundle, and every
/// `options.refresh` reads the Secret again (serving a new certificate without a
/// restart) and checks the CA bundles.
pub async fn run(
    client: kube::Client,
    options: WebhookOptions,
    snapshot: SnapshotSource,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), WebhookError> {
    let store = CertStore::new(
        client,
        &options.namespace,
        &options.secret_name,
        &options.configuration_name,
        options.crd_name.as_deref(),
        cert::service_names(&options.service_name, &options.namespace),
    );
    let retry = Duration::from_secs(5).min(options.refresh);
    let mut backoff = retry;
    let mut bundle = loop {
        match store.ensure(SystemTime::now()).await {
            Ok(b) => break b,
            Err(e) => tracing::warn!(
                "webhook: cannot get its certificate (retrying in {}s): {e}",
                backoff.as_secs()
            ),
        }
        let wait = backoff;
        backoff = (backoff * 2).min(options.refresh.max(retry));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped(&mut shutdown) => return Ok(()),
        }
    };
    let slot = tls::CertSlot::new(bundle.certified_key()?);
    let config = tls::server_config(slot.clone())?;
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|source| WebhookError::Listen {
            addr: options.addr,
            source,
        })?;
    tracing::info!(addr = %options.addr, "webhook: serving");
    let state = WebhookState {
        namespace: options.namespace.clone(),
        snapshot,
    };
    let server = tokio::spawn(tls::serve_tls(
        listener,
        router(state),
        config,
        shutdown.clone(),
    ));
    loop {
        let wait = match store.inject(&bundle).await {
            Ok(_) => options.refresh,
            Err(e) => {
                tracing::warn!("webhook: cannot write the CA bundle (retrying): {e}");
                retry
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped(&mut shutdown) => break,
        }
        match store.ensure(SystemTime::now()).await {
            Ok(b) if b != bundle => match b.certified_key() {
                Ok(key) => {
                    tracing::info!("webhook: serving the Secret's new certificate");
                    slot.set(key);
                    bundle = b;
                }
                Err(e) => {
                    tracing::warn!("webhook: the Secret's new certificate cannot be served: {e}")
                }
            },
            Ok(_) => {}
            Err(e) => tracing::warn!("webhook: cannot read its certificate: {e}"),
        }
    }
    let _ = server.await;
    Ok(())
}
