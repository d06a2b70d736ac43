//! ferrolb on Kubernetes: the thin kube-rs layer around the pure cores, and the
//! controller that gives LoadBalancer Services their addresses.
//!
//! # Shape
//!
//! ```text
//! API server --watch--> source (reflector stores) --Change--> controller loop
//!                                                               |  core (sans-IO): allocator, claims, retries
//!                                                               |  decision (pure): Outcome -> ServiceUpdate
//!                                                               v
//!            <--status subresource / merge patch / events-- sink
//! ```
//!
//! - [`source`]: kube's `watcher` + reflector stores over Services, Namespaces, Nodes,
//!   the Secrets and the `metallb.io` kinds of ferrolb's namespace. No hand-rolled watch
//!   loops: the watcher lists, watches, backs off and relists after 410 Gone by itself;
//!   the source only maps its events to [`source::Change`]s. The `metallb.io` kinds are
//!   watched untyped and decoded with [`ferrolb_model::crd::fill_optional_spec`], since the
//!   API server returns objects as stored and MetalLB lets some kinds omit `spec`.
//! - [`core`]: the controller core, no I/O: the shared
//!   [`ferrolb_allocator::Allocator`], claiming the addresses Services show first (a
//!   restart or a new leader never moves one), reconciling one Service at a time, and
//!   the set of Services waiting for an address (retried when one is freed, so a
//!   deletion costs work proportional to the waiting Services, not to all of them).
//! - [`decision`]: what to write for a Service given the core's [`decision::Outcome`]:
//!   ingress, the `metallb.io/ip-allocated-from-pool` annotation and MetalLB's events
//!   (`IPAllocated`, `AllocationFailed`, `ClearAssignment`, with its messages; the
//!   Warning `deprecatedAnnotation` for each deprecated field or annotation, which the
//!   controller publishes once per version of the Service not written by itself). Pure.
//! - [`sink`]: the writes: Service status through the status subresource (a merge patch
//!   carrying the resource version read; 409 Conflict → read again, retry), the
//!   annotation (a merge patch of the Service), Events (`events.k8s.io/v1`, through
//!   [`events`]), `IPAddressPool` status counts (status subresource) and the
//!   `ConfigurationState` named `controller`, labelled
//!   `metallb.io/component-type: controller` (server-side apply, then its status).
//! - [`events`]: the Event writer: a repeat within six minutes is a `series` patch of
//!   the Event written first, and the cache of Events written is bounded.
//! - [`controller`]: the loop tying them together (see its docs for the rules). The
//!   watch events of its own writes (the status written, the annotation next) are
//!   recognised by their resource versions and write nothing again.
//! - [`lease`]: leader election.
//! - [`metrics`]: the numbers behind MetalLB's controller metrics, for the binary to
//!   serve.
//! - [`webhook`]: the validating admission webhook and BGPPeer conversion, served over
//!   HTTPS by every controller replica with a certificate it keeps in a Secret.
//!
//! # Leader election
//!
//! Two or more replicas elect a leader with a `coordination.k8s.io/v1` Lease; only the
//! leader writes. The election is written here rather than taken from a crate: it is
//! small as a sans-IO core ([`lease::Elector`]: the Lease as read and
//! the time in, the write to make out), which makes its timing rules testable in
//! simulated time, and it keeps the dependency tree to kube itself. The rules are
//! client-go's: the holder renews every 2 s; a candidate takes over a Lease that has
//! not changed for its `leaseDurationSeconds` (10 s) *as measured on its own clock*
//! since it first saw it so (no clock comparison between nodes), with an optimistic
//! concurrency write (409 for the loser); the holder stops writing 7 s after its last
//! successful renewal, before anyone may take over, and the controller checks
//! leadership before every write. A dead leader is replaced within 14 s; one that
//! shuts down releases the Lease and is replaced at the next poll (2 s). A new leader
//! starts from an empty core and claims the addresses in the Services' status first,
//! so a failover never moves an address.
//!
//! # RBAC the controller needs
//!
//! Services, Namespaces, Nodes: list, watch (cluster). Services: get (read again after a
//! 409 Conflict of a status write), patch; services/status: patch. `events.k8s.io` events: create, patch. In its namespace: Secrets and every
//! `metallb.io` kind: list, watch; ipaddresspools/status: patch; configurationstates:
//! list, watch, create, patch; configurationstates/status: patch; Secrets: create (the
//! membership Secret); `coordination.k8s.io` leases:
//! get, create, update.
//!
//! For the webhook: the Secret `ferrolb-webhook-cert`: get, update (create, as above);
//! the ValidatingWebhookConfiguration `ferrolb-validating-webhook`: get, patch; and only
//! if the BGPPeer CRD converts through the webhook, `apiextensions.k8s.io`
//! customresourcedefinitions `bgppeers.metallb.io`: get, patch.

#![warn(missing_docs)]

pub mod controller;
pub mod core;
pub mod decision;
pub mod events;
pub mod lease;
pub mod metrics;
pub mod sink;
pub mod source;
pub mod speaker;
pub mod status;
pub mod webhook;

/// A client from the environment: in a pod its service account, else `KUBECONFIG` or
/// `~/.kube/config`.
pub async fn connect() -> Result<kube::Client, kube::Error> {
    kube::Client::try_default().await
}
