//! The certificate kept in a Secret, shared by every replica, and the CA bundle written
//! where the API server reads it.
//!
//! - [`CertStore::ensure`]: reads the Secret; when it is missing, creates it with a new
//!   bundle, and when two replicas race, the loser's create fails with 409
//!   AlreadyExists and it reads the winner's; when the bundle is unreadable or near its
//!   end ([`super::cert::RENEW_BEFORE`]), replaces it (an update carrying the
//!   `resourceVersion` read, so of two replicas renewing at once one gets 409 Conflict
//!   and reads the other's). Every replica thus serves the Secret's certificate.
//! - [`CertStore::inject`]: writes the bundle's CA into the `caBundle` of every webhook
//!   of the ValidatingWebhookConfiguration (a strategic merge patch keyed by webhook
//!   name, only when one differs) and, when the BGPPeer CRD converts through a webhook,
//!   into its conversion `caBundle`.

use super::cert::{CA_CRT, CertBundle, CertError, TLS_CRT, TLS_KEY, generate};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

/// The Secret holding the webhook's certificate (in ferrolb's namespace).
pub const SECRET_NAME: &str = "ferrolb-webhook-cert";
/// The Service the API server calls the webhook through.
pub const SERVICE_NAME: &str = "ferrolb-webhook-service";
/// The ValidatingWebhookConfiguration whose `caBundle`s are written.
pub const CONFIGURATION_NAME: &str = "ferrolb-validating-webhook";
/// The CRD whose conversion webhook's `caBundle` is written, when it has one.
pub const PEER_CRD_NAME: &str = "bgppeers.metallb.io";

/// Why the certificate could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum CertStoreError {
    /// The API server refused or failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// Certificates could not be made.
    #[error("{0}")]
    Cert(#[from] CertError),
    /// Replicas kept overwriting each other.
    #[error("the Secret {0} kept changing while being written")]
    Contended(String),
}

/// What [`CertStore::inject`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Injected {
    /// The webhooks whose `caBundle` was written.
    pub webhooks: Vec<String>,
    /// Whether the CRD's conversion `caBundle` was written.
    pub crd: bool,
}

/// The Secret and the objects carrying the CA bundle.
pub struct CertStore {
    secrets: Api<Secret>,
    configurations: Api<ValidatingWebhookConfiguration>,
    crds: Api<CustomResourceDefinition>,
    secret_name: String,
    configuration_name: String,
    crd_name: Option<String>,
    /// Set once the CRD could not be read (no permission, or missing): not asked again.
    crd_unreadable: AtomicBool,
    names: Vec<String>,
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// The bundle a Secret holds, when it holds the three entries as text.
pub fn bundle_of(secret: &Secret) -> Option<CertBundle> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| {
        data.get(key)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    };
    Some(CertBundle {
        cert_pem: text(TLS_CRT)?,
        key_pem: text(TLS_KEY)?,
        ca_pem: text(CA_CRT)?,
    })
}

fn secret_data(bundle: &CertBundle) -> BTreeMap<String, ByteString> {
    BTreeMap::from([
        (
            TLS_CRT.to_string(),
            ByteString(bundle.cert_pem.clone().into_bytes()),
        ),
        (
            TLS_KEY.to_string(),
            ByteString(bundle.key_pem.clone().into_bytes()),
        ),
        (
            CA_CRT.to_string(),
            ByteString(bundle.ca_pem.clone().into_bytes()),
        ),
    ])
}

impl CertStore {
    /// The Secret `secret_name` in `namespace`, a serving certificate for `names`
    /// (see [`super::cert::service_names`]), the caBundle of `configuration_name` and
    /// of the CRD `crd_name` (when it converts through a webhook).
    pub fn new(
        client: Client,
        namespace: &str,
        secret_name: &str,
        configuration_name: &str,
        crd_name: Option<&str>,
        names: Vec<String>,
    ) -> Self {
        CertStore {
            secrets: Api::namespaced(client.clone(), namespace),
            configurations: Api::all(client.clone()),
            crds: Api::all(client),
            secret_name: secret_name.into(),
            configuration_name: configuration_name.into(),
            crd_name: crd_name.map(str::to_string),
            crd_unreadable: AtomicBool::new(false),
            names,
        }
    }

    /// The bundle in force: the Secret's, created or renewed first when needed (see the
    /// module docs for races between replicas).
    pub async fn ensure(&self, now: SystemTime) -> Result<CertBundle, CertStoreError> {
        for _ in 0..5 {
            match self.secrets.get_opt(&self.secret_name).await? {
                None => {
                    let bundle = generate(&self.names, now, None)?;
                    let secret = Secret {
                        metadata: ObjectMeta {
                            name: Some(self.secret_name.clone()),
                            labels: Some(BTreeMap::from([(
                                "app.kubernetes.io/managed-by".to_string(),
                                "ferrolb".to_string(),
                            )])),
                            ..Default::default()
                        },
                        type_: Some("kubernetes.io/tls".into()),
                        data: Some(secret_data(&bundle)),
                        ..Default::default()
                    };
                    match self.secrets.create(&PostParams::default(), &secret).await {
                        Ok(_) => {
                            tracing::info!(secret = %self.secret_name, "webhook: created the certificate");
                            return Ok(bundle);
                        }
                        Err(e) if api_code(&e) == Some(409) => {
                            tracing::info!(secret = %self.secret_name, "webhook: another replica created the certificate first: reading it");
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Some(mut secret) => {
                    let held = bundle_of(&secret);
                    if let Some(b) = held.as_ref().filter(|b| !b.needs_renewal(now)) {
                        return Ok(b.clone());
                    }
                    let previous_ca = held.as_ref().map(|b| b.ca_pem.as_str());
                    let bundle = generate(&self.names, now, previous_ca)?;
                    secret.data = Some(secret_data(&bundle));
                    secret.metadata.managed_fields = None;
                    match self
                        .secrets
                        .replace(&self.secret_name, &PostParams::default(), &secret)
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(
                                secret = %self.secret_name,
                                "webhook: renewed the certificate ({})",
                                if held.is_some() { "near its end" } else { "unreadable" }
                            );
                            return Ok(bundle);
                        }
                        Err(e) if api_code(&e) == Some(409) => {
                            tracing::info!(secret = %self.secret_name, "webhook: another replica renewed the certificate first: reading it");
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Err(CertStoreError::Contended(self.secret_name.clone()))
    }

    /// Writes `bundle`'s CA where the API server reads it; only what differs is
    /// written. The configuration missing is an error (the caller retries); the CRD's is
    /// written only when it declares `conversion.strategy: Webhook`, and a CRD that
    /// cannot be read (missing, or no permission) is skipped, and not asked for again.
    pub async fn inject(&self, bundle: &CertBundle) -> Result<Injected, CertStoreError> {
        let ca = bundle.ca_pem.as_bytes();
        let mut injected = Injected::default();
        let configuration = self.configurations.get(&self.configuration_name).await?;
        let stale: Vec<String> = configuration
            .webhooks
            .iter()
            .flatten()
            .filter(|w| w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(ca))
            .map(|w| w.name.clone())
            .collect();
        if !stale.is_empty() {
            let ca_bundle = ByteString(ca.to_vec());
            let webhooks: Vec<_> = stale
                .iter()
                .map(|name| json!({"name": name, "clientConfig": {"caBundle": ca_bundle}}))
                .collect();
            self.configurations
                .patch(
                    &self.configuration_name,
                    &PatchParams::default(),
                    &Patch::Strategic(json!({"webhooks": webhooks})),
                )
                .await?;
            tracing::info!(configuration = %self.configuration_name, webhooks = ?stale, "webhook: wrote the caBundle");
            injected.webhooks = stale;
        }
        let crd_name = self
            .crd_name
            .as_ref()
            .filter(|_| !self.crd_unreadable.load(Ordering::Relaxed));
        if let Some(crd_name) = crd_name {
            match self.crds.get(crd_name).await {
                Ok(crd) => {
                    let conversion = crd.spec.conversion.as_ref();
                    let webhook = conversion
                        .filter(|c| c.strategy == "Webhook")
                        .and_then(|c| c.webhook.as_ref());
                    let current = webhook
                        .and_then(|w| w.client_config.as_ref())
                        .and_then(|c| c.ca_bundle.as_ref())
                        .map(|b| b.0.as_slice());
                    if webhook.is_some() && current != Some(ca) {
                        let patch = json!({"spec": {"conversion": {"webhook": {"clientConfig": {
                            "caBundle": ByteString(ca.to_vec())
                        }}}}});
                        self.crds
                            .patch(crd_name, &PatchParams::default(), &Patch::Merge(patch))
                            .await?;
                        tracing::info!(crd = %crd_name, "webhook: wrote the conversion caBundle");
                        injected.crd = true;
                    }
                }
                Err(e) if matches!(api_code(&e), Some(403 | 404)) => {
                    tracing::info!(crd = %crd_name, "webhook: the CRD cannot be read, its conversion caBundle is left alone: {e}");
                    self.crd_unreadable.store(true, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::debug!(crd = %crd_name, "webhook: conversion caBundle not written: {e}")
                }
            }
        }
        Ok(injected)
    }
}
