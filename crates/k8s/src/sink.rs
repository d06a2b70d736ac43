//! The Kubernetes sinks: Service status (through the status subresource), the pool
//! annotation, Events, `IPAddressPool` status and the controller's
//! `ConfigurationState`.

use crate::decision::{EventSpec, ServiceUpdate, annotations_patch, status_patch};
use crate::events::{EventRecord, EventWriter};
use ferrolb_allocator::status_ips;
use ferrolb_model::Problem;
use ferrolb_model::crd::{ConfigurationState, IPAddressPool, IPAddressPoolStatus};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ObjectReference, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::events::Reporter;
use kube::{Api, Client, Resource};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// How often a status write that met a 409 Conflict is tried in all.
pub const STATUS_ATTEMPTS: usize = 5;

/// The name of the controller's `ConfigurationState` (as MetalLB's).
pub const CONFIGURATION_STATE_NAME: &str = "controller";

/// The field manager of server-side apply writes.
pub const FIELD_MANAGER: &str = "ferrolb-controller";

/// The condition type written in the `ConfigurationState`.
pub const CONDITION_TYPE: &str = "controllerConfigValid";

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The API server refused or could not be reached.
    #[error("{what}: {source}")]
    Api {
        /// What was being written.
        what: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// No random bytes for a new key.
    #[error("{0}: reading random bytes: {1}")]
    Random(String, #[source] std::io::Error),
    /// Every attempt met a conflict.
    #[error("{0}: still conflicting after {STATUS_ATTEMPTS} attempts")]
    Conflict(String),
}

/// Writes to the API server.
#[derive(Clone)]
pub struct Sink {
    client: Client,
    namespace: String,
    events: EventWriter,
}

/// What a Service write left on the API server: the versions the object went through
/// and what they show, so the controller recognises the watch events of its own writes
/// (the status subresource's answer shows the new status without the annotation written
/// next; the store may still show the version the write was decided on).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// The Service's uid.
    pub uid: Option<String>,
    /// The resource versions that show the Service as written or older (superseded by
    /// the writes), oldest first: the version decided on, then each write's answer. The
    /// last is the Service as the writes left it.
    pub versions: Vec<String>,
    /// The ingress addresses written, if they were.
    pub ingress: Option<Vec<IpAddr>>,
    /// The annotations set (`Some`) or removed (`None`) (a list: one or two, and one
    /// of these is kept per Service until its watch event arrives).
    pub annotations: Vec<(String, Option<String>)>,
}

impl Written {
    /// Whether a Service as stored is one of the versions these writes went through
    /// (or superseded), of the same object.
    pub fn covers(&self, service: &Service) -> bool {
        self.uid == service.metadata.uid
            && service
                .metadata
                .resource_version
                .as_ref()
                .is_some_and(|rv| self.versions.contains(rv))
    }

    /// Whether a Service as stored is the last version these writes left.
    pub fn is_final(&self, service: &Service) -> bool {
        service.metadata.resource_version.is_some()
            && self.versions.last() == service.metadata.resource_version.as_ref()
    }

    /// The Service as the writes left it: `service` (one of [`Written::versions`]) with
    /// the ingress and annotations written, at the last version.
    pub fn apply(&self, service: &Service) -> Service {
        let mut view = service.clone();
        if let Some(ips) = &self.ingress {
            let status = view.status.get_or_insert_with(Default::default);
            let lb = status.load_balancer.get_or_insert_with(Default::default);
            lb.ingress = (!ips.is_empty()).then(|| {
                ips.iter()
                    .map(|ip| k8s_openapi::api::core::v1::LoadBalancerIngress {
                        ip: Some(ip.to_string()),
                        ..Default::default()
                    })
                    .collect()
            });
        }
        if !self.annotations.is_empty() {
            let map = view
                .metadata
                .annotations
                .get_or_insert_with(Default::default);
            for (k, v) in &self.annotations {
                match v {
                    Some(v) => map.insert(k.clone(), v.clone()),
                    None => map.remove(k),
                };
            }
        }
        view.metadata.resource_version = self.versions.last().cloned();
        view
    }
}

fn is_code(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

impl Sink {
    /// A sink for a controller running in `namespace` (where the pools and its
    /// `ConfigurationState` live); events are reported as `reporter`.
    pub fn new(client: Client, namespace: impl Into<String>, reporter: Reporter) -> Self {
        Sink {
            events: EventWriter::new(client.clone(), reporter),
            client,
            namespace: namespace.into(),
        }
    }

    /// The Event writer.
    pub fn events(&self) -> &EventWriter {
        &self.events
    }

    /// Carries out a Service's update: the status, then the annotations, then the
    /// events. Returns what the writes left ([`Written`]). The status patch carries the resource version read, so a Service changed
    /// meanwhile answers 409 Conflict; then the Service is read again and the write
    /// retried (unless it was replaced by another object of that name, or already shows
    /// the addresses: then the update was decided on a stale copy and its events are
    /// not published either).
    pub async fn write_service(
        &self,
        service: &Service,
        update: &ServiceUpdate,
    ) -> Result<Written, SinkError> {
        let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
        let name = service.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
        let what = |w: &str| format!("{w} of Service {namespace}/{name}");
        // The Service as read again, when the update turned out to be decided on a stale
        // copy that already showed the addresses.
        let mut stale: Option<Service> = None;
        let mut written = Written {
            uid: service.metadata.uid.clone(),
            versions: service.metadata.resource_version.iter().cloned().collect(),
            ingress: None,
            annotations: Vec::new(),
        };
        let nothing = Written::default();
        if let Some(ips) = &update.ingress {
            let mut resource_version = service.metadata.resource_version.clone();
            let mut done = false;
            for _ in 0..STATUS_ATTEMPTS {
                let patch = status_patch(ips, resource_version.as_deref());
                match api
                    .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(answer) => {
                        written.versions.extend(answer.metadata.resource_version);
                        written.ingress = Some(ips.clone());
                        done = true;
                        break;
                    }
                    Err(e) if is_code(&e, 409) => {
                        tracing::debug!("{}: conflict, reading it again", what("status"));
                        let fresh = match api.get_opt(name).await {
                            Ok(Some(fresh)) => fresh,
                            // Deleted meanwhile: nothing to write.
                            Ok(None) => return Ok(nothing),
                            Err(source) => {
                                return Err(SinkError::Api {
                                    what: what("reading"),
                                    source,
                                });
                            }
                        };
                        if fresh.metadata.uid != service.metadata.uid {
                            // A new Service of that name: its own event will come.
                            return Ok(nothing);
                        }
                        if status_ips(&fresh).0 == *ips {
                            tracing::debug!("{}: already written", what("status"));
                            written
                                .versions
                                .extend(fresh.metadata.resource_version.clone());
                            written.ingress = Some(ips.clone());
                            stale = Some(fresh);
                            done = true;
                            break;
                        }
                        // Read before our write: that version is superseded by it too.
                        written
                            .versions
                            .extend(fresh.metadata.resource_version.clone());
                        resource_version = fresh.metadata.resource_version;
                    }
                    Err(e) if is_code(&e, 404) => return Ok(nothing),
                    Err(source) => {
                        return Err(SinkError::Api {
                            what: what("status"),
                            source,
                        });
                    }
                }
            }
            if !done {
                return Err(SinkError::Conflict(what("status")));
            }
        }
        let annotations: BTreeMap<String, Option<String>> = match &stale {
            None => update.annotations.clone(),
            Some(fresh) => {
                let current = fresh.metadata.annotations.clone().unwrap_or_default();
                update
                    .annotations
                    .iter()
                    .filter(|(k, v)| current.get(*k) != v.as_ref())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }
        };
        if !annotations.is_empty() {
            let patch = annotations_patch(&annotations);
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(answer) => {
                    written.versions.extend(answer.metadata.resource_version);
                    written.annotations = annotations.into_iter().collect();
                }
                Err(e) if is_code(&e, 404) => return Ok(nothing),
                Err(source) => {
                    return Err(SinkError::Api {
                        what: what("annotations"),
                        source,
                    });
                }
            }
        }
        if stale.is_none() {
            for event in &update.events {
                self.publish(service, event).await;
            }
        }
        Ok(written)
    }

    /// Publishes an Event about a Service (failures are logged: events are best
    /// effort).
    pub async fn publish(&self, service: &Service, event: &EventSpec) {
        let reference = service.object_ref(&());
        let action = match event.reason {
            crate::decision::REASON_ALLOCATED => "Allocate",
            crate::decision::REASON_CLEAR => "Clear",
            _ => "Allocate",
        };
        let record = EventRecord {
            warning: event.warning,
            reason: event.reason.to_string(),
            note: event.message.clone(),
            action: action.to_string(),
        };
        if let Err(e) = self.events.publish(&record, &reference).await {
            tracing::warn!(
                "publishing event {} on {}/{}: {e}",
                event.reason,
                reference.namespace.unwrap_or_default(),
                reference.name.unwrap_or_default()
            );
        }
    }

    /// Creates the membership Secret `name` with a random key; one that exists already
    /// (created meanwhile) is left alone. Returns whether it was created.
    pub async fn create_memberlist_secret(&self, name: &str) -> Result<bool, SinkError> {
        let what = || format!("Secret {}/{name}", self.namespace);
        let mut random = [0u8; 16];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random))
            .map_err(|e| SinkError::Random(what(), e))?;
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let secret = memberlist_secret(&self.namespace, name, &random);
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => Ok(true),
            Err(e) if is_code(&e, 409) => Ok(false),
            Err(source) => Err(SinkError::Api {
                what: what(),
                source,
            }),
        }
    }

    /// Writes a pool's status counts through its status subresource.
    pub async fn write_pool_status(
        &self,
        pool: &str,
        status: &IPAddressPoolStatus,
    ) -> Result<(), SinkError> {
        // Untyped: the answer is only checked for success.
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.namespace,
            &ApiResource::erase::<IPAddressPool>(&()),
        );
        let patch = json!({ "status": status });
        match api
            .patch_status(pool, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, 404) => Ok(()),
            Err(source) => Err(SinkError::Api {
                what: format!("status of IPAddressPool {}/{pool}", self.namespace),
                source,
            }),
        }
    }

    /// Creates or updates the controller's `ConfigurationState` (server-side apply):
    /// result `Valid`, or `Invalid` with the problems as `errorSummary`.
    pub async fn write_configuration_state(
        &self,
        problems: Option<&[Problem]>,
    ) -> Result<(), SinkError> {
        // Untyped: the API server answers without `spec` (MetalLB's CRD has none), which
        // the derived type requires.
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.namespace,
            &ApiResource::erase::<ConfigurationState>(&()),
        );
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let what = || {
            format!(
                "ConfigurationState {}/{CONFIGURATION_STATE_NAME}",
                self.namespace
            )
        };
        let object = configuration_state_object(&self.namespace);
        let applied = api
            .patch(CONFIGURATION_STATE_NAME, &params, &Patch::Apply(&object))
            .await
            .map_err(|source| SinkError::Api {
                what: what(),
                source,
            })?;
        let now = k8s_openapi::jiff::Timestamp::now();
        let now = k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now);
        let status = configuration_state_status(&self.namespace, problems, &now.to_string());
        api.patch_status(CONFIGURATION_STATE_NAME, &params, &Patch::Apply(&status))
            .await
            .map_err(|source| SinkError::Api {
                what: what(),
                source,
            })?;
        if let Some(problems) = problems {
            // A Warning event on the ConfigurationState, so `kubectl get events` shows
            // it too.
            let reference = ObjectReference {
                api_version: Some("metallb.io/v1beta1".into()),
                kind: Some("ConfigurationState".into()),
                name: Some(CONFIGURATION_STATE_NAME.into()),
                namespace: Some(self.namespace.clone()),
                uid: applied.metadata.uid.clone(),
                ..Default::default()
            };
            let record = EventRecord {
                warning: true,
                reason: REASON_CONFIG_INVALID.into(),
                note: event_note(problems),
                action: "LoadConfiguration".into(),
            };
            if let Err(e) = self.events.publish(&record, &reference).await {
                tracing::warn!("publishing event {REASON_CONFIG_INVALID}: {e}");
            }
        }
        Ok(())
    }
}

/// The key of the membership Secret holding the gossip key (as MetalLB's).
pub const MEMBERLIST_KEY: &str = "secretkey";

/// The membership Secret the controller creates when it is missing: key
/// [`MEMBERLIST_KEY`] holding the base64 text of 16 random bytes, as MetalLB's
/// controller writes it (the speakers hash that text into the gossip key).
pub fn memberlist_secret(namespace: &str, name: &str, random: &[u8; 16]) -> Secret {
    let text = base64(random);
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            [(MEMBERLIST_KEY.to_string(), ByteString(text.into_bytes()))]
                .into_iter()
                .collect(),
        ),
        ..Default::default()
    }
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The reason of the Warning event published when the configuration is invalid.
pub const REASON_CONFIG_INVALID: &str = "InvalidConfiguration";

/// The note of the invalid-configuration event: the problems, cut to the 1 kB an Event
/// note may hold.
pub fn event_note(problems: &[Problem]) -> String {
    const MAX: usize = 1024;
    let mut note = format!(
        "the configuration is invalid, the last valid one stays in force: {}",
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    );
    if note.len() > MAX {
        let mut cut = MAX - 3;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push_str("...");
    }
    note
}

/// The applied `ConfigurationState` object (no spec: MetalLB's CRD has none).
pub fn configuration_state_object(namespace: &str) -> serde_json::Value {
    json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ConfigurationState",
        "metadata": {
            "name": CONFIGURATION_STATE_NAME,
            "namespace": namespace,
            "labels": {"metallb.io/component-type": "controller"},
        },
    })
}

/// The applied status of the `ConfigurationState`: `Valid`, or `Invalid` with one line
/// per problem.
pub fn configuration_state_status(
    namespace: &str,
    problems: Option<&[Problem]>,
    now: &str,
) -> serde_json::Value {
    let summary = problems
        .map(|p| {
            p.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let valid = problems.is_none();
    json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ConfigurationState",
        "metadata": {"name": CONFIGURATION_STATE_NAME, "namespace": namespace},
        "status": {
            "result": if valid { "Valid" } else { "Invalid" },
            "errorSummary": summary,
            "conditions": [{
                "type": CONDITION_TYPE,
                "status": if valid { "True" } else { "False" },
                "reason": if valid { "Reconciled" } else { "ConfigurationError" },
                "message": summary,
                "lastTransitionTime": now,
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_note_fits_in_an_event() {
        let problems: Vec<Problem> = (0..100)
            .map(|i| {
                Problem::new(
                    "IPAddressPool",
                    &format!("p{i}"),
                    "spec.addresses",
                    "é invalid",
                )
            })
            .collect();
        let note = event_note(&problems);
        assert!(note.len() <= 1024, "{}", note.len());
        assert!(note.ends_with("..."));
        assert!(
            event_note(&problems[..1]).ends_with("IPAddressPool/p0: spec.addresses: é invalid")
        );
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), output);
        }
    }

    #[test]
    fn the_memberlist_secret_holds_base64_text() {
        let secret = memberlist_secret("metallb-system", "memberlist", &[0xff; 16]);
        let data = secret.data.expect("data");
        assert_eq!(data[MEMBERLIST_KEY].0, b"/////////////////////w==".to_vec());
        assert_eq!(secret.metadata.name.as_deref(), Some("memberlist"));
    }

    #[test]
    fn configuration_state_status_says_valid_or_invalid() {
        let valid = configuration_state_status("metallb-system", None, "2024-01-01T00:00:00Z");
        assert_eq!(valid["status"]["result"], "Valid");
        assert_eq!(valid["status"]["conditions"][0]["status"], "True");
        let problems = [Problem::new(
            "IPAddressPool",
            "main",
            "spec.addresses[0]",
            "bad",
        )];
        let invalid =
            configuration_state_status("metallb-system", Some(&problems), "2024-01-01T00:00:00Z");
        assert_eq!(invalid["status"]["result"], "Invalid");
        assert_eq!(
            invalid["status"]["errorSummary"],
            problems[0].to_string().as_str()
        );
        assert_eq!(
            invalid["status"]["conditions"][0]["reason"],
            "ConfigurationError"
        );
    }
}
