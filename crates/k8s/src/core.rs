//! The controller core: the shared allocator and the rules of when a Service keeps,
//! gets or loses addresses. Sans-IO: it is fed Services and configurations and says
//! what it decided ([`Outcome`]); [`crate::decision::decide`] turns that into writes.

use crate::decision::Outcome;
use ferrolb_allocator::{
    AllocationError, Allocator, Options, PoolUsage, Request, ServiceKey, Warning, is_ours,
    status_ips,
};
use ferrolb_model::{Config, Problem, Snapshot};
use k8s_openapi::api::core::v1::Service;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Labels of a namespace.
pub type Labels = BTreeMap<String, String>;

/// What became of a new configuration.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigChange {
    /// Valid and different from the one in force: now in force. Every Service must be
    /// reconciled again ([`Core::full_sync`]).
    Applied,
    /// Valid and equal to the one in force: nothing to do.
    Unchanged,
    /// Invalid: the last good configuration (if any) stays in force.
    Invalid(Vec<Problem>),
}

/// Which pools' usage may have changed, as [`Core::take_changed_pools`] says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangedPools {
    /// Every pool (a new term, a new configuration, or [`Core::touch_all_pools`]).
    All,
    /// These pools only (none: nothing changed).
    These(BTreeSet<String>),
}

/// The controller core. One per leader term: a new leader starts from an empty core and
/// claims the addresses Services show in their status first.
#[derive(Debug)]
pub struct Core {
    options: Options,
    config: Option<Config>,
    allocator: Allocator,
    /// The pool of each Service holding addresses.
    holding: HashMap<ServiceKey, String>,
    /// Number of Services in `holding` per pool, kept with it: publishing the counts
    /// after a change costs the number of pools, not of Services.
    held_per_pool: HashMap<String, u64>,
    /// Services that got no address: retried when addresses are freed.
    pending: BTreeSet<ServiceKey>,
    /// Whether addresses were freed since the last [`Core::take_retries`].
    freed: bool,
    /// The pools whose usage changed since the last [`Core::take_changed_pools`]
    /// (`None`: all of them).
    changed_pools: Option<BTreeSet<String>>,
}

impl Core {
    /// An empty core handling the Services of `options.lb_class`.
    pub fn new(options: Options) -> Self {
        Core {
            options,
            config: None,
            allocator: Allocator::new(&Config::default()),
            holding: HashMap::new(),
            held_per_pool: HashMap::new(),
            pending: BTreeSet::new(),
            freed: false,
            changed_pools: None,
        }
    }

    /// The configuration in force, if one was ever valid.
    pub fn config(&self) -> Option<&Config> {
        self.config.as_ref()
    }

    /// Validates the configuration objects of `snapshot` and puts the result in force
    /// when valid. `extra` are problems found before validation (objects that did not
    /// decode): they make the configuration invalid too.
    pub fn load_config(&mut self, snapshot: &Snapshot, extra: Vec<Problem>) -> ConfigChange {
        let config = match ferrolb_model::validate(snapshot) {
            Ok(config) if extra.is_empty() => config,
            Ok(_) => return ConfigChange::Invalid(extra),
            Err(mut problems) => {
                problems.extend(extra);
                problems.sort();
                return ConfigChange::Invalid(problems);
            }
        };
        self.set_config(config)
    }

    /// Puts a valid configuration in force. Addresses still inside some pool stay held
    /// (under that pool); the others are released.
    pub fn set_config(&mut self, config: Config) -> ConfigChange {
        if self.config.as_ref() == Some(&config) {
            return ConfigChange::Unchanged;
        }
        let released = self.allocator.set_config(&config);
        for key in released {
            self.unhold(&key);
        }
        for (key, pool) in self.holding.iter_mut() {
            if let Some(a) = self.allocator.assignment(key) {
                *pool = a.pool;
            }
        }
        // Kept addresses may now be of another pool: counted again (a configuration
        // change is a pass over every Service anyway).
        self.held_per_pool.clear();
        for pool in self.holding.values() {
            *self.held_per_pool.entry(pool.clone()).or_default() += 1;
        }
        self.config = Some(config);
        self.changed_pools = None;
        ConfigChange::Applied
    }

    /// Drops every assignment (the configuration stays): for a leader that lost its term.
    pub fn reset(&mut self) {
        let config = self.config.clone().unwrap_or_default();
        self.allocator = Allocator::new(&config);
        self.holding.clear();
        self.held_per_pool.clear();
        self.pending.clear();
        self.freed = false;
        self.changed_pools = None;
    }

    /// The first step of a full sync for one Service: if it holds nothing yet and its
    /// status shows addresses that are still valid for it, it keeps them. Returns whether
    /// it holds addresses afterwards.
    pub fn claim(&mut self, service: &Service, namespace_labels: Option<&Labels>) -> bool {
        if self.config.is_none() || !is_ours(service, &self.options) {
            return false;
        }
        let key = ServiceKey::of(service);
        if self.holding.contains_key(&key) {
            return true;
        }
        let (ips, _) = status_ips(service);
        if ips.is_empty() {
            return false;
        }
        let (Ok(request), _) = Request::from_service(service, namespace_labels) else {
            return false;
        };
        match self.allocator.keep(&request, &ips) {
            Ok(a) => {
                self.hold(key, a.pool);
                true
            }
            Err(_) => false,
        }
    }

    /// Decides one Service (new, changed, or retried): it keeps what it holds while that
    /// is valid, else claims its status addresses, else gets new ones, else fails.
    pub fn reconcile(&mut self, service: &Service, namespace_labels: Option<&Labels>) -> Outcome {
        self.reconcile_warned(service, namespace_labels).0
    }

    /// As [`Core::reconcile`], also returning the warnings of reading what the Service
    /// asks for (deprecated fields and annotations, ignored values), in both success and
    /// failure; none when the Service is not ours or no configuration is in force (it is
    /// not read then).
    pub fn reconcile_warned(
        &mut self,
        service: &Service,
        namespace_labels: Option<&Labels>,
    ) -> (Outcome, Vec<Warning>) {
        let key = ServiceKey::of(service);
        if !is_ours(service, &self.options) {
            self.remove(&key);
            let not_load_balancer =
                service.spec.as_ref().and_then(|s| s.type_.as_deref()) != Some("LoadBalancer");
            return (Outcome::NotOurs { not_load_balancer }, Vec::new());
        }
        if self.config.is_none() {
            return (Outcome::NoConfig, Vec::new());
        }
        let (request, warnings) = Request::from_service(service, namespace_labels);
        for w in &warnings {
            tracing::debug!(service = %key, "{w}");
        }
        (self.decide_request(key, service, request), warnings)
    }

    /// The part of [`Core::reconcile_warned`] after the Service's request is read.
    fn decide_request(
        &mut self,
        key: ServiceKey,
        service: &Service,
        request: Result<Request, AllocationError>,
    ) -> Outcome {
        let (status, _) = status_ips(service);
        let request = match request {
            Ok(r) => r,
            Err(error) => {
                // A request that cannot be read is not helped by freed addresses: it
                // waits for the Service to change, not in `pending`.
                self.remove(&key);
                let cleared = (!status.is_empty()).then(|| error.clone());
                return Outcome::Failed { error, cleared };
            }
        };
        if !self.holding.contains_key(&key)
            && !status.is_empty()
            && let Ok(a) = self.allocator.keep(&request, &status)
        {
            self.allocator.complete_dual_stack(&request);
            self.hold(key.clone(), a.pool);
        }
        // Why the status addresses cannot stay, asked before anything moves.
        let cleared: Option<AllocationError> = if status.is_empty() {
            None
        } else {
            self.allocator.check_keep(&request, &status).err()
        };
        let before = self.allocator.assignment(&key);
        let result = self.allocator.assign(&request);
        if let Some(b) = &before
            && result.as_ref().map_or(true, |a| a.ips != b.ips)
        {
            self.freed = true;
        }
        match result {
            Ok(assignment) => {
                self.pending.remove(&key);
                self.hold(key, assignment.pool.clone());
                Outcome::Assigned {
                    assignment,
                    cleared,
                }
            }
            Err(error) => {
                self.unhold(&key);
                if freed_addresses_may_help(&error) {
                    self.pending.insert(key);
                } else {
                    self.pending.remove(&key);
                }
                Outcome::Failed { error, cleared }
            }
        }
    }

    /// Forgets a Service (deleted, or no longer ours), freeing its addresses. Returns
    /// whether it held some.
    pub fn remove(&mut self, key: &ServiceKey) -> bool {
        self.pending.remove(key);
        if self.unhold(key) {
            self.allocator.release(key);
            self.freed = true;
            true
        } else {
            false
        }
    }

    /// The Services to reconcile again because addresses were freed since the last call:
    /// those that got none. Empty when nothing was freed, so the work after a deletion is
    /// proportional to the Services waiting, not to all Services.
    pub fn take_retries(&mut self) -> Vec<ServiceKey> {
        if !std::mem::take(&mut self.freed) {
            return Vec::new();
        }
        self.pending.iter().cloned().collect()
    }

    /// The Services holding addresses.
    pub fn holders(&self) -> impl Iterator<Item = &ServiceKey> {
        self.holding.keys()
    }

    /// Whether the Service holds addresses.
    pub fn holds(&self, key: &ServiceKey) -> bool {
        self.holding.contains_key(key)
    }

    /// Usage of every pool of the configuration in force.
    pub fn usages(&self) -> BTreeMap<String, PoolUsage> {
        self.allocator
            .usages()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    /// Usage of one pool of the configuration in force.
    pub fn usage(&self, pool: &str) -> Option<PoolUsage> {
        self.allocator.usage(pool)
    }

    /// Number of Services holding addresses of one pool.
    pub fn services_in(&self, pool: &str) -> u64 {
        self.held_per_pool.get(pool).copied().unwrap_or(0)
    }

    /// The pools whose usage may have changed since the last call, forgotten by it.
    pub fn take_changed_pools(&mut self) -> ChangedPools {
        match self.changed_pools.replace(BTreeSet::new()) {
            None => ChangedPools::All,
            Some(these) => ChangedPools::These(these),
        }
    }

    /// Makes the next [`Core::take_changed_pools`] say every pool.
    pub fn touch_all_pools(&mut self) {
        self.changed_pools = None;
    }

    fn touch_pool(&mut self, pool: &str) {
        if let Some(set) = &mut self.changed_pools
            && !set.contains(pool)
        {
            set.insert(pool.to_string());
        }
    }

    /// Number of Services holding addresses, per pool (every pool listed).
    pub fn services_per_pool(&self) -> BTreeMap<String, u64> {
        let mut counts: BTreeMap<String, u64> = self
            .config
            .iter()
            .flat_map(|c| c.pools.keys())
            .map(|p| (p.clone(), 0))
            .collect();
        for (pool, held) in &self.held_per_pool {
            match counts.get_mut(pool) {
                Some(count) => *count += held,
                None => {
                    counts.insert(pool.clone(), *held);
                }
            }
        }
        counts
    }

    /// Records that the Service holds addresses of `pool`.
    fn hold(&mut self, key: ServiceKey, pool: String) {
        self.touch_pool(&pool);
        match self.held_per_pool.get_mut(&pool) {
            Some(count) => *count += 1,
            None => {
                self.held_per_pool.insert(pool.clone(), 1);
            }
        }
        if let Some(old) = self.holding.insert(key, pool) {
            self.uncount(&old);
        }
    }

    /// Records that the Service holds nothing; returns whether it held something.
    fn unhold(&mut self, key: &ServiceKey) -> bool {
        match self.holding.remove(key) {
            Some(pool) => {
                self.uncount(&pool);
                true
            }
            None => false,
        }
    }

    fn uncount(&mut self, pool: &str) {
        self.touch_pool(pool);
        if let Some(count) = self.held_per_pool.get_mut(pool) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.held_per_pool.remove(pool);
            }
        }
    }

    /// A whole pass over every Service, as at startup, after a relist or a configuration
    /// change: first every Service keeps the addresses its status shows while they are
    /// valid (so a restart never moves an address), in creation order; then each is
    /// reconciled in the same order. Returns each Service's outcome, in that order.
    pub fn full_sync<'a, 'b>(
        &mut self,
        services: &[&'a Service],
        namespace_labels: impl Fn(&str) -> Option<&'b Labels>,
    ) -> Vec<(&'a Service, Outcome)> {
        self.full_sync_warned(services, namespace_labels)
            .into_iter()
            .map(|(service, outcome, _)| (service, outcome))
            .collect()
    }

    /// As [`Core::full_sync`], with each Service's warnings (as
    /// [`Core::reconcile_warned`] gives them).
    pub fn full_sync_warned<'a, 'b>(
        &mut self,
        services: &[&'a Service],
        namespace_labels: impl Fn(&str) -> Option<&'b Labels>,
    ) -> Vec<(&'a Service, Outcome, Vec<Warning>)> {
        let order = sync_order(services);
        for &i in &order {
            let svc = services[i];
            let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
            self.claim(svc, namespace_labels(ns));
        }
        order
            .into_iter()
            .map(|i| {
                let svc = services[i];
                let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
                let (outcome, warnings) = self.reconcile_warned(svc, namespace_labels(ns));
                (svc, outcome, warnings)
            })
            .collect()
    }
}

/// Whether an address freed elsewhere may end this failure (the others wait for the
/// Service or the configuration to change, which reconcile it anyway).
fn freed_addresses_may_help(error: &AllocationError) -> bool {
    matches!(
        error,
        AllocationError::NoAvailableIps
            | AllocationError::NoAvailableIpsInPool(_)
            | AllocationError::IpInUse { .. }
    )
}

/// The order of a full pass: Services showing addresses first, then by creation time
/// (missing last), then namespace/name.
pub fn sync_order(services: &[&Service]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..services.len()).collect();
    order.sort_by_cached_key(|&i| {
        let s = services[i];
        let has_status = !status_ips(s).0.is_empty();
        let created = s.metadata.creation_timestamp.clone();
        (!has_status, created.is_none(), created, ServiceKey::of(s))
    });
    order
}
