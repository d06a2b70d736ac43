//! The controller loop: the source's changes in, the core's decisions out through the
//! sinks, only while this replica leads.
//!
//! - Until every watch has listed once nothing is decided. Then the configuration is
//!   loaded and, if this replica leads, a term starts: a fresh core claims the addresses
//!   every Service shows in its status (so neither a restart nor a new leader moves an
//!   address), then gives the others theirs.
//! - A changed Service is reconciled alone; a deleted one frees its addresses and only
//!   the Services that are waiting for one are retried.
//! - The watch events of the controller's own writes write nothing again: a Service is
//!   written in two steps (its status, then its annotation), and the store may show the
//!   version in between, or still the one the writes were decided on. While it shows one
//!   of the versions those writes went through, the Service is read as they left it.
//! - A Service's deprecated fields and annotations (`spec.loadBalancerIP`, the
//!   `metallb.universe.tf/` keys) are Warning Events `deprecatedAnnotation`, published
//!   once per version of the Service: when it is first seen in a term, or changed by
//!   someone else. The watch events of our own writes, a relist, a resync or a retry
//!   showing a version already warned about publish nothing (a repeat after someone
//!   else's edit is counted in the first Event's series by [`crate::events`]). What is
//!   remembered for this is one version per Service that has such warnings.
//! - After each change the pools whose counts changed (all of them after a new term or a
//!   configuration change) get their metrics and status published.
//! - A configuration change re-validates; a valid new configuration is put in force and
//!   every Service reconciled again; an invalid one keeps the last good one in force
//!   and shows in the `ConfigurationState` (and `metallb_k8s_client_config_stale_bool`).
//! - A relist (after 410 Gone or a broken watch) of Services forgets those that
//!   disappeared meanwhile and reconciles the others (writing only what differs).
//! - Losing leadership stops every write at once and drops the core's state.
//! - The `ConfigurationState` is written when the result changes, at the start of a
//!   term, and again when someone deletes it.

use crate::core::{ChangedPools, ConfigChange, Core, Labels};
use crate::decision::{EventSpec, Outcome, decide, deprecation_events};
use crate::lease::{Elector, LeaseTimings, run_election};
use crate::metrics::{Metrics, PoolMetrics};
use crate::sink::{Sink, Written};
use crate::source::{Change, KINDS, Stores, watch_all};
use ferrolb_allocator::{Options, ServiceKey, Warning, WarningKind};
use ferrolb_model::Problem;
use ferrolb_model::crd::IPAddressPoolStatus;
use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::runtime::events::Reporter;
use kube::{Api, Client};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::watch;

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// The namespace of the metallb.io resources, the Lease and the
    /// `ConfigurationState` (`metallb-system`).
    pub namespace: String,
    /// The `loadBalancerClass` handled (`None`: Services without a class).
    pub lb_class: Option<String>,
    /// Leader election: `None` runs as the only replica (always leads).
    pub election: Option<Election>,
    /// The membership Secret (in `namespace`) to create when missing, as MetalLB's
    /// controller does (`None`: leave it to someone else).
    pub memberlist_secret: Option<String>,
}

/// Leader election settings.
#[derive(Clone, Debug)]
pub struct Election {
    /// The Lease's name.
    pub lease_name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// The timings.
    pub timings: LeaseTimings,
}

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The watches ended (they never do unless the client is gone).
    #[error("the watches ended")]
    WatchesEnded,
}

/// Runs the controller until `shutdown` turns true.
pub async fn run(
    client: Client,
    options: ControllerOptions,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ControllerError> {
    run_sharing_stores(client, options, metrics, shutdown, |_| {}).await
}

/// As [`run`], first handing a clone of the reflector stores to `on_stores` (the
/// admission webhook validates against them, without watches of its own).
pub async fn run_sharing_stores(
    client: Client,
    options: ControllerOptions,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    on_stores: impl FnOnce(Stores) + Send,
) -> Result<(), ControllerError> {
    let (stores, changes) = watch_all(client.clone(), &options.namespace);
    on_stores(stores.clone());
    let (leader_tx, leader_rx) = watch::channel(options.election.is_none());
    // Without election the sender stays here (a dropped sender means the election
    // ended, and the controller steps down).
    let mut always_leader = None;
    let election = match options.election.clone() {
        None => {
            always_leader = Some(leader_tx);
            None
        }
        Some(e) => Some({
            let api: Api<Lease> = Api::namespaced(client.clone(), &options.namespace);
            let elector = Elector::new(e.identity, e.timings);
            tokio::spawn(run_election(
                api,
                e.lease_name,
                elector,
                leader_tx,
                shutdown.clone(),
            ))
        }),
    };
    let reporter = Reporter {
        controller: "ferrolb-controller".into(),
        instance: options.election.as_ref().map(|e| e.identity.clone()),
    };
    let sink = Sink::new(client, options.namespace.clone(), reporter);
    let mut controller = Controller::new(
        stores,
        sink,
        Options {
            lb_class: options.lb_class.clone(),
        },
        metrics,
    );
    controller.memberlist_secret = options.memberlist_secret.clone();
    let result = controller.run(changes, leader_rx, shutdown).await;
    drop(always_leader);
    if let Some(handle) = election {
        // It releases the Lease on shutdown.
        let _ = handle.await;
    }
    result
}

/// The controller's state between changes.
pub struct Controller {
    stores: Stores,
    sink: Sink,
    core: Core,
    metrics: Arc<Metrics>,
    listed: BTreeSet<&'static str>,
    synced: bool,
    leading: bool,
    /// Leading, synced, and the term's first full sync done: decisions are written.
    active: bool,
    /// The problems of the configuration last loaded (`None`: valid), and whether that
    /// was written to the `ConfigurationState`.
    config_problems: Option<Vec<Problem>>,
    config_state_written: bool,
    /// The status last written per pool, with the uid of the object it went to (a pool
    /// deleted and created again needs it written again).
    pool_status_written: BTreeMap<String, (Option<String>, IPAddressPoolStatus)>,
    /// Pools whose status write failed: tried again at the next publish.
    pool_status_retry: BTreeSet<String>,
    /// The leadership as the election publishes it, checked before every write: a
    /// long pass stops writing the moment the term ends, not at its end.
    leadership: Option<watch::Receiver<bool>>,
    /// The membership Secret to create when missing.
    memberlist_secret: Option<String>,
    /// What the last writes to each Service left, until the store shows their last
    /// version: a watch event of an intermediate version of our own writes (the status
    /// written, the annotation not yet), or the store still showing the version they
    /// were decided on, is read as the writes left the Service, so it writes nothing
    /// again.
    written: HashMap<ServiceKey, Written>,
    /// The version of each Service with deprecation warnings whose warnings were
    /// published (then moved along by our own writes to it): the same version read again
    /// publishes nothing.
    warned: HashMap<ServiceKey, Warned>,
}

/// A version of a Service whose deprecation warnings were published.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Warned {
    uid: Option<String>,
    version: Option<String>,
}

impl Warned {
    fn of(service: &Service) -> Warned {
        Warned {
            uid: service.metadata.uid.clone(),
            version: service.metadata.resource_version.clone(),
        }
    }
}

impl Controller {
    /// A controller over these stores, writing through `sink`.
    pub fn new(stores: Stores, sink: Sink, options: Options, metrics: Arc<Metrics>) -> Self {
        Controller {
            stores,
            sink,
            core: Core::new(options),
            metrics,
            listed: BTreeSet::new(),
            synced: false,
            leading: false,
            active: false,
            config_problems: None,
            config_state_written: false,
            pool_status_written: BTreeMap::new(),
            pool_status_retry: BTreeSet::new(),
            leadership: None,
            memberlist_secret: None,
            written: HashMap::new(),
            warned: HashMap::new(),
        }
    }

    /// The loop: changes, leadership and shutdown.
    pub async fn run(
        &mut self,
        changes: impl Stream<Item = Change> + Send,
        mut leader: watch::Receiver<bool>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), ControllerError> {
        let mut changes = std::pin::pin!(changes);
        self.leadership = Some(leader.clone());
        let leading = *leader.borrow_and_update();
        self.set_leading(leading).await;
        let mut election_running = true;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            tokio::select! {
                change = changes.next() => match change {
                    Some(change) => self.handle(change).await,
                    None => return Err(ControllerError::WatchesEnded),
                },
                r = leader.changed(), if election_running => {
                    let leading = match r {
                        Ok(()) => *leader.borrow_and_update(),
                        Err(_) => {
                            // The election ended: no longer safe to write.
                            election_running = false;
                            false
                        }
                    };
                    self.set_leading(leading).await;
                }
                r = shutdown.changed() => {
                    if r.is_err() || *shutdown.borrow() {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Whether decisions are being written.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The core.
    pub fn core(&self) -> &Core {
        &self.core
    }

    async fn set_leading(&mut self, leading: bool) {
        if leading == self.leading {
            return;
        }
        self.leading = leading;
        self.metrics.set_leader(leading);
        if leading {
            tracing::info!("leading: starting a term");
            self.start_term().await;
        } else {
            tracing::info!("not leading: writes stop");
            self.active = false;
            self.core.reset();
            self.config_state_written = false;
            self.pool_status_written.clear();
            self.written.clear();
            self.warned.clear();
        }
    }

    /// Handles one change.
    pub async fn handle(&mut self, change: Change) {
        match change {
            Change::WatchError { kind, error } => {
                self.metrics.update_error();
                tracing::warn!("watching {kind}: {error}");
                return;
            }
            Change::Listed(kind) => {
                self.metrics.update();
                self.listed.insert(kind);
                if !self.synced {
                    if KINDS.iter().all(|k| self.listed.contains(k)) {
                        tracing::info!("every watch has listed");
                        self.synced = true;
                        self.metrics.set_synced();
                        self.load_config().await;
                        self.start_term().await;
                    }
                    return;
                }
                if kind == "Service" {
                    self.services_relisted().await;
                } else {
                    self.config_changed().await;
                }
            }
            _ if !self.synced => self.metrics.update(),
            Change::ConfigurationStateDeleted => {
                self.metrics.update();
                tracing::info!("the ConfigurationState was deleted: writing it again");
                self.config_state_written = false;
                if self.active {
                    self.write_configuration_state().await;
                }
            }
            Change::Config(kind) => {
                self.metrics.update();
                self.config_changed().await;
                if kind == "Secret" {
                    self.ensure_memberlist_secret().await;
                }
            }
            Change::Namespace(name) => {
                self.metrics.update();
                if self.active {
                    let keys: Vec<ServiceKey> = self
                        .stores
                        .services
                        .state()
                        .iter()
                        .filter(|s| s.metadata.namespace.as_deref() == Some(name.as_str()))
                        .map(|s| ServiceKey::of(s))
                        .collect();
                    for key in keys {
                        self.reconcile_key(&key, false).await;
                    }
                }
            }
            Change::Service(key) => {
                self.metrics.update();
                if self.active {
                    self.reconcile_key(&key, false).await;
                }
            }
            Change::ServiceDeleted(key) => {
                self.metrics.update();
                self.written.remove(&key);
                self.warned.remove(&key);
                if self.active {
                    self.core.remove(&key);
                }
            }
        }
        if self.active {
            self.retry_waiting().await;
            self.publish_pools().await;
        }
    }

    async fn start_term(&mut self) {
        if !(self.leading && self.synced) || self.active {
            return;
        }
        self.core.reset();
        self.written.clear();
        self.warned.clear();
        self.write_configuration_state().await;
        self.ensure_memberlist_secret().await;
        self.active = true;
        self.full_sync().await;
        self.publish_pools().await;
    }

    async fn load_config(&mut self) -> ConfigChange {
        let (snapshot, problems) = self.stores.config_snapshot();
        let change = self.core.load_config(&snapshot, problems);
        let problems = match &change {
            ConfigChange::Invalid(p) => {
                for problem in p {
                    tracing::warn!("invalid configuration, the last valid one stays: {problem}");
                }
                Some(p.clone())
            }
            _ => None,
        };
        self.metrics.config(problems.is_none());
        if problems != self.config_problems {
            self.config_problems = problems;
            self.config_state_written = false;
        }
        change
    }

    async fn config_changed(&mut self) {
        // A pool object may be new (created again: its status is written again).
        self.core.touch_all_pools();
        let change = self.load_config().await;
        if !self.active {
            return;
        }
        self.write_configuration_state().await;
        if change == ConfigChange::Applied {
            tracing::info!("configuration changed: reconciling every Service");
            self.full_sync().await;
        }
    }

    /// Whether this replica may write now: it leads (as last handled) and the election
    /// has not said otherwise since.
    fn may_write(&self) -> bool {
        self.leading && self.leadership.as_ref().is_none_or(|l| *l.borrow())
    }

    async fn write_configuration_state(&mut self) {
        if !self.may_write() || self.config_state_written {
            return;
        }
        match self
            .sink
            .write_configuration_state(self.config_problems.as_deref())
            .await
        {
            Ok(()) => self.config_state_written = true,
            Err(e) => {
                self.metrics.update_error();
                tracing::warn!("{e}");
            }
        }
    }

    /// Creates the membership Secret if it is configured, missing, and this replica
    /// writes.
    async fn ensure_memberlist_secret(&mut self) {
        let Some(name) = self.memberlist_secret.clone() else {
            return;
        };
        if !self.may_write()
            || self
                .stores
                .secrets
                .state()
                .iter()
                .any(|s| s.metadata.name.as_deref() == Some(name.as_str()))
        {
            return;
        }
        match self.sink.create_memberlist_secret(&name).await {
            Ok(true) => tracing::info!("created the membership Secret {name}"),
            Ok(false) => {}
            Err(e) => {
                self.metrics.update_error();
                tracing::warn!("{e}");
            }
        }
    }

    fn namespaces(&self) -> HashMap<String, Arc<Namespace>> {
        self.stores
            .namespaces
            .state()
            .into_iter()
            .filter_map(|n| Some((n.metadata.name.clone()?, n)))
            .collect()
    }

    /// The Service as this controller should read it: as stored, or, when the store
    /// shows a version our last writes went through, as those writes left it.
    fn as_written(&mut self, key: &ServiceKey, service: Arc<Service>) -> Arc<Service> {
        let Some(written) = self.written.get(key) else {
            return service;
        };
        if !written.covers(&service) || written.is_final(&service) {
            // Someone else's change, or the store shows all we wrote.
            self.written.remove(key);
            if self.written.is_empty() {
                // Every echo arrived: the room the first sync needed goes back.
                self.written.shrink_to_fit();
            }
            return service;
        }
        Arc::new(written.apply(&service))
    }

    async fn full_sync(&mut self) {
        let services: Vec<Arc<Service>> = self
            .stores
            .services
            .state()
            .into_iter()
            .map(|s| {
                if self.written.is_empty() {
                    s
                } else {
                    let key = ServiceKey::of(&s);
                    self.as_written(&key, s)
                }
            })
            .collect();
        let namespaces = self.namespaces();
        let refs: Vec<&Service> = services.iter().map(|s| s.as_ref()).collect();
        let labels = |ns: &str| -> Option<&Labels> {
            namespaces.get(ns).and_then(|n| n.metadata.labels.as_ref())
        };
        let decided = self.core.full_sync_warned(&refs, labels);
        for (service, outcome, warnings) in decided {
            self.write(service, &outcome, &warnings, false).await;
        }
    }

    async fn services_relisted(&mut self) {
        if !self.active {
            return;
        }
        let gone: Vec<ServiceKey> = self
            .core
            .holders()
            .filter(|k| self.stores.service(k).is_none())
            .cloned()
            .collect();
        for key in &gone {
            tracing::debug!(service = %key, "gone after a relist");
            self.core.remove(key);
        }
        let keys: Vec<ServiceKey> = self
            .stores
            .services
            .state()
            .iter()
            .map(|s| ServiceKey::of(s))
            .collect();
        for key in keys {
            self.reconcile_key(&key, true).await;
        }
    }

    async fn reconcile_key(&mut self, key: &ServiceKey, quiet: bool) {
        let Some(service) = self.stores.service(key) else {
            self.written.remove(key);
            self.warned.remove(key);
            self.core.remove(key);
            return;
        };
        let service = self.as_written(key, service);
        let namespace = self.stores.namespace(&key.namespace);
        let labels = namespace.as_ref().and_then(|n| n.metadata.labels.as_ref());
        let (outcome, warnings) = self.core.reconcile_warned(&service, labels);
        self.write(&service, &outcome, &warnings, quiet).await;
    }

    /// The `deprecatedAnnotation` Events to publish for a Service as read (the store's
    /// version, or the view of our writes): none when it has no deprecation warnings
    /// (then it is forgotten) or its version was warned about already; else its
    /// warnings', and its version is remembered.
    fn deprecations(&mut self, service: &Service, warnings: &[Warning]) -> Vec<EventSpec> {
        let key = ServiceKey::of(service);
        if !warnings.iter().any(|w| w.kind == WarningKind::Deprecated) {
            self.warned.remove(&key);
            return Vec::new();
        }
        let seen = Warned::of(service);
        if self.warned.get(&key) == Some(&seen) {
            return Vec::new();
        }
        self.warned.insert(key, seen);
        deprecation_events(warnings)
    }

    async fn write(
        &mut self,
        service: &Service,
        outcome: &Outcome,
        warnings: &[Warning],
        quiet: bool,
    ) {
        let mut update = decide(service, outcome, quiet);
        if !self.may_write() {
            return;
        }
        let deprecations = self.deprecations(service, warnings);
        let warning = !deprecations.is_empty();
        if warning {
            // Read before anything was allocated: published first.
            update.events.splice(0..0, deprecations);
        }
        if update.is_empty() {
            return;
        }
        match self.sink.write_service(service, &update).await {
            Ok(mut written) if written.versions.len() > 1 => {
                let key = ServiceKey::of(service);
                // Written from the view of earlier writes: the versions those went
                // through are still ours (the store may show one of them next).
                if let Some(old) = self.written.remove(&key)
                    && old.uid == written.uid
                    && old.versions.last() == written.versions.first()
                {
                    let mut versions = old.versions;
                    versions.extend(written.versions.into_iter().skip(1));
                    written.versions = versions;
                    if written.ingress.is_none() {
                        written.ingress = old.ingress;
                    }
                    for (k, v) in old.annotations {
                        if !written.annotations.iter().any(|(new, _)| *new == k) {
                            written.annotations.push((k, v));
                        }
                    }
                }
                // The versions our writes made show what was warned about: their
                // watch events publish nothing again.
                if let Some(w) = self.warned.get_mut(&key)
                    && w.uid == written.uid
                    && w.version
                        .as_ref()
                        .is_some_and(|v| written.versions.contains(v))
                {
                    w.version = written.versions.last().cloned();
                }
                self.written.insert(key, written);
            }
            Ok(_) => {}
            Err(e) => {
                if warning {
                    // Not published (the events come after the writes that failed):
                    // the next reconcile of this version publishes them.
                    self.warned.remove(&ServiceKey::of(service));
                }
                self.metrics.update_error();
                tracing::warn!("{e}");
            }
        }
    }

    async fn retry_waiting(&mut self) {
        for key in self.core.take_retries() {
            self.reconcile_key(&key, true).await;
        }
    }

    /// Publishes the pools whose usage changed since the last publish (every pool after
    /// a new term or a configuration change): their metrics, and their status when it
    /// differs from what the pool object shows. Work proportional to the pools changed.
    async fn publish_pools(&mut self) {
        let changed = self.core.take_changed_pools();
        let names: Vec<String> = match changed {
            ChangedPools::All => {
                let usages = self.core.usages();
                let services = self.core.services_per_pool();
                let pools: BTreeMap<String, PoolMetrics> = usages
                    .iter()
                    .map(|(name, usage)| {
                        let count = services.get(name).copied().unwrap_or(0);
                        (
                            name.clone(),
                            PoolMetrics {
                                usage: *usage,
                                services: count,
                            },
                        )
                    })
                    .collect();
                self.metrics.set_pools(pools);
                self.pool_status_written
                    .retain(|name, _| usages.contains_key(name));
                self.pool_status_retry.clear();
                usages.into_keys().collect()
            }
            ChangedPools::These(names) => {
                for name in &names {
                    let metrics = self.core.usage(name).map(|usage| PoolMetrics {
                        usage,
                        services: self.core.services_in(name),
                    });
                    self.metrics.set_pool(name, metrics);
                }
                let mut names: BTreeSet<String> = names;
                names.extend(std::mem::take(&mut self.pool_status_retry));
                names.into_iter().collect()
            }
        };
        if !self.may_write() || names.is_empty() {
            return;
        }
        // One pass over the pool objects when many are asked for, else one lookup each.
        let shown_all = (names.len() > 4).then(|| self.stores.pool_statuses());
        for name in names {
            let Some(usage) = self.core.usage(&name) else {
                self.pool_status_written.remove(&name);
                continue;
            };
            let status = usage.to_status();
            // A pool of the configuration whose object is gone (deleted meanwhile).
            let shown = match &shown_all {
                Some(all) => all.get(&name).cloned(),
                None => self.stores.pool_status(&name),
            };
            let Some((uid, shown)) = shown else {
                continue;
            };
            let written = (uid, status);
            if self.pool_status_written.get(&name) == Some(&written) {
                continue;
            }
            if shown.as_ref() != Some(&written.1)
                && let Err(e) = self.sink.write_pool_status(&name, &written.1).await
            {
                self.metrics.update_error();
                tracing::warn!("{e}");
                self.pool_status_retry.insert(name);
                continue;
            }
            self.pool_status_written.insert(name, written);
        }
    }
}
