//! What the controller reports for `/metrics`, `/healthz` and `/readyz`: counters and
//! gauges kept by the controller loop, read by the HTTP server (which renders them with
//! MetalLB's metric names).

use ferrolb_allocator::PoolUsage;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// One pool's numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolMetrics {
    /// Addresses assigned and free.
    pub usage: PoolUsage,
    /// Services holding addresses of the pool.
    pub services: u64,
}

/// The controller's metrics, shared between the loop and the HTTP server.
#[derive(Debug, Default)]
pub struct Metrics {
    updates: AtomicU64,
    update_errors: AtomicU64,
    config_loaded: AtomicBool,
    config_stale: AtomicBool,
    synced: AtomicBool,
    leader: AtomicBool,
    pools: Mutex<BTreeMap<String, PoolMetrics>>,
}

/// A copy of the metrics at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Kubernetes object updates processed (`metallb_k8s_client_updates_total`).
    pub updates: u64,
    /// Updates that failed: watch errors and failed writes
    /// (`metallb_k8s_client_update_errors_total`).
    pub update_errors: u64,
    /// A valid configuration was loaded (`metallb_k8s_client_config_loaded_bool`).
    pub config_loaded: bool,
    /// The configuration in force is not the latest one, which is invalid
    /// (`metallb_k8s_client_config_stale_bool`).
    pub config_stale: bool,
    /// Every watch has listed once.
    pub synced: bool,
    /// This replica leads.
    pub leader: bool,
    /// Per pool.
    pub pools: BTreeMap<String, PoolMetrics>,
}

impl Metrics {
    /// Counts one processed update.
    pub fn update(&self) {
        self.updates.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one failed update.
    pub fn update_error(&self) {
        self.update_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the result of loading a configuration.
    pub fn config(&self, valid: bool) {
        if valid {
            self.config_loaded.store(true, Ordering::Relaxed);
        }
        self.config_stale.store(!valid, Ordering::Relaxed);
    }

    /// Records that every watch has listed.
    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::Relaxed);
    }

    /// Records leadership.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// Replaces the per-pool numbers.
    pub fn set_pools(&self, pools: BTreeMap<String, PoolMetrics>) {
        if let Ok(mut p) = self.pools.lock() {
            *p = pools;
        }
    }

    /// Replaces one pool's numbers (`None`: the pool is gone).
    pub fn set_pool(&self, name: &str, pool: Option<PoolMetrics>) {
        if let Ok(mut p) = self.pools.lock() {
            match pool {
                Some(pool) => {
                    p.insert(name.to_string(), pool);
                }
                None => {
                    p.remove(name);
                }
            }
        }
    }

    /// A copy of everything.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            updates: self.updates.load(Ordering::Relaxed),
            update_errors: self.update_errors.load(Ordering::Relaxed),
            config_loaded: self.config_loaded.load(Ordering::Relaxed),
            config_stale: self.config_stale.load(Ordering::Relaxed),
            synced: self.synced.load(Ordering::Relaxed),
            leader: self.leader.load(Ordering::Relaxed),
            pools: self.pools.lock().map(|p| p.clone()).unwrap_or_default(),
        }
    }
}
