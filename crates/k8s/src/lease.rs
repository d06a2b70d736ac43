//! Leader election with a `coordination.k8s.io/v1` Lease, as a sans-IO core
//! ([`Elector`]: the observed Lease and the time in, what to write out) and a small task
//! ([`run_election`]) that reads and writes the Lease.
//!
//! The rules are client-go's:
//! - The holder renews the Lease every `retry_period` (its `renewTime` changes).
//! - A candidate never compares clocks with the holder: it notes *when it first saw*
//!   the Lease as it is now (holder, renew time, resource version) on its own monotonic
//!   clock, and takes the Lease over only when it has not changed for
//!   `leaseDurationSeconds`. Writes carry the resource version read, so of two candidates
//!   only one wins (the other gets 409 Conflict).
//! - The holder considers itself leader only until `renew_deadline` after its last
//!   successful renewal; `renew_deadline < lease_duration`, so it stops writing before
//!   anyone may take over.
//! - On shutdown the holder releases the Lease (empty holder), so another takes over at
//!   its next poll.
//!
//! With the defaults (lease 10 s, renew deadline 7 s, retry 2 s) a candidate sees a
//! renewal at most 2 s after it happened and takes over at most 10 s + 2 s later: a dead
//! leader is replaced within 14 s.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Timings of the election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseTimings {
    /// How long a Lease that does not change is honoured (`leaseDurationSeconds`).
    pub lease_duration: Duration,
    /// How long after its last renewal the holder still acts as leader.
    pub renew_deadline: Duration,
    /// How often the Lease is read (and renewed by the holder).
    pub retry_period: Duration,
}

impl Default for LeaseTimings {
    fn default() -> Self {
        LeaseTimings {
            lease_duration: Duration::from_secs(10),
            renew_deadline: Duration::from_secs(7),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// The parts of a Lease the election reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// `spec.holderIdentity` (empty: released).
    pub holder: String,
    /// `spec.leaseDurationSeconds`.
    pub duration_secs: i32,
    /// `spec.acquireTime`.
    pub acquire_time: Option<Timestamp>,
    /// `spec.renewTime`.
    pub renew_time: Option<Timestamp>,
    /// `spec.leaseTransitions`.
    pub transitions: i32,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
}

impl Record {
    /// Reads a Lease.
    pub fn of(lease: &Lease) -> Record {
        let spec = lease.spec.clone().unwrap_or_default();
        Record {
            holder: spec.holder_identity.unwrap_or_default(),
            duration_secs: spec.lease_duration_seconds.unwrap_or(0),
            acquire_time: spec.acquire_time.map(|t| t.0),
            renew_time: spec.renew_time.map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
            resource_version: lease.metadata.resource_version.clone().unwrap_or_default(),
        }
    }
}

/// What to do after reading the Lease.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Create the Lease with this spec (there is none).
    Create(LeaseSpec),
    /// Replace the Lease with this spec, if its resource version is still this one.
    Update {
        /// The new spec.
        spec: LeaseSpec,
        /// The resource version read.
        resource_version: String,
    },
    /// Someone else holds a live Lease: wait.
    Wait,
}

/// The election's state for one candidate.
#[derive(Debug)]
pub struct Elector {
    identity: String,
    timings: LeaseTimings,
    /// The Lease as last seen and when it was first seen so.
    observed: Option<(Record, Instant)>,
    /// When the Lease was last written by us successfully.
    renewed: Option<Instant>,
    /// The Lease we are writing, to remember when the write succeeds.
    writing: Option<Record>,
}

impl Elector {
    /// A candidate named `identity` (unique per replica: the pod name).
    pub fn new(identity: impl Into<String>, timings: LeaseTimings) -> Self {
        Elector {
            identity: identity.into(),
            timings,
            observed: None,
            renewed: None,
            writing: None,
        }
    }

    /// The candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The timings.
    pub fn timings(&self) -> &LeaseTimings {
        &self.timings
    }

    fn spec(&self, wall: Timestamp, acquire: Option<Timestamp>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.timings.lease_duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(MicroTime(acquire.unwrap_or(wall))),
            renew_time: Some(MicroTime(wall)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// Decides from the Lease as read now (`None`: there is none). `now` is the local
    /// monotonic clock, `wall` the time written into the Lease.
    pub fn observe(&mut self, now: Instant, wall: Timestamp, lease: Option<&Record>) -> Step {
        let Some(record) = lease else {
            self.observed = None;
            let spec = self.spec(wall, None, 0);
            self.writing = Some(Record::default());
            return Step::Create(spec);
        };
        match &self.observed {
            Some((seen, _)) if seen == record => {}
            _ => self.observed = Some((record.clone(), now)),
        }
        let since = self.observed.as_ref().map_or(now, |(_, t)| *t);
        let step = if record.holder == self.identity {
            Step::Update {
                spec: self.spec(wall, record.acquire_time, record.transitions),
                resource_version: record.resource_version.clone(),
            }
        } else {
            let duration = Duration::from_secs(u64::try_from(record.duration_secs).unwrap_or(0));
            let expired = now.saturating_duration_since(since) >= duration;
            if record.holder.is_empty() || expired {
                Step::Update {
                    spec: self.spec(wall, None, record.transitions.saturating_add(1)),
                    resource_version: record.resource_version.clone(),
                }
            } else {
                Step::Wait
            }
        };
        if matches!(step, Step::Wait) {
            self.writing = None;
        } else {
            self.writing = Some(record.clone());
        }
        step
    }

    /// The result of the write [`Elector::observe`] asked for.
    pub fn written(&mut self, now: Instant, ok: bool) {
        if self.writing.take().is_some() && ok {
            self.renewed = Some(now);
        }
    }

    /// Whether this candidate leads now: its last successful write is less than
    /// `renew_deadline` old.
    pub fn is_leader(&self, now: Instant) -> bool {
        self.renewed
            .is_some_and(|t| now.saturating_duration_since(t) < self.timings.renew_deadline)
    }

    /// The spec that releases the Lease (on shutdown), if this candidate holds it.
    pub fn release(&mut self, now: Instant) -> Option<LeaseSpec> {
        if !self.is_leader(now) {
            return None;
        }
        self.renewed = None;
        Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            ..Default::default()
        })
    }
}

/// Reads and writes the Lease `name` every retry period, publishing leadership on
/// `leader`, until `shutdown` turns true; then releases the Lease if held.
pub async fn run_election(
    api: Api<Lease>,
    name: String,
    mut elector: Elector,
    leader: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let now = monotonic();
        let wall = Timestamp::now();
        let current = match api.get_opt(&name).await {
            Ok(lease) => lease,
            Err(e) => {
                tracing::warn!("reading Lease {name}: {e}");
                leader.send_if_modified(|l| std::mem::replace(l, elector.is_leader(now)) != *l);
                if wait_or_stop(&mut shutdown, elector.timings().retry_period).await {
                    break;
                }
                continue;
            }
        };
        let record = current.as_ref().map(Record::of);
        let step = elector.observe(now, wall, record.as_ref());
        let ok = match step {
            Step::Wait => false,
            Step::Create(spec) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        ..Default::default()
                    },
                    spec: Some(spec),
                };
                api.create(&PostParams::default(), &lease)
                    .await
                    .inspect_err(|e| tracing::debug!("creating Lease {name}: {e}"))
                    .is_ok()
            }
            Step::Update {
                spec,
                resource_version,
            } => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        resource_version: Some(resource_version),
                        ..Default::default()
                    },
                    spec: Some(spec),
                };
                api.replace(&name, &PostParams::default(), &lease)
                    .await
                    .inspect_err(|e| tracing::debug!("updating Lease {name}: {e}"))
                    .is_ok()
            }
        };
        elector.written(monotonic(), ok);
        let is_leader = elector.is_leader(monotonic());
        let changed = leader.send_if_modified(|l| std::mem::replace(l, is_leader) != is_leader);
        if changed {
            tracing::info!(
                identity = elector.identity(),
                "{}",
                if is_leader {
                    "became leader"
                } else {
                    "not leader"
                }
            );
        }
        if wait_or_stop(&mut shutdown, elector.timings().retry_period).await {
            break;
        }
    }
    let _ = leader.send(false);
    if let Some(spec) = elector.release(monotonic())
        && let Ok(Some(current)) = api.get_opt(&name).await
    {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                resource_version: current.metadata.resource_version,
                ..Default::default()
            },
            spec: Some(spec),
        };
        if let Err(e) = api.replace(&name, &PostParams::default(), &lease).await {
            tracing::warn!("releasing Lease {name}: {e}");
        }
    }
}

/// Tokio's clock (which tests can pause and advance) as a std `Instant`.
fn monotonic() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Waits `period` or until shutdown; returns whether to stop.
async fn wait_or_stop(shutdown: &mut watch::Receiver<bool>, period: Duration) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(period) => *shutdown.borrow(),
        r = shutdown.changed() => r.is_err() || *shutdown.borrow(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall() -> Timestamp {
        Timestamp::UNIX_EPOCH
    }

    fn held_by(holder: &str, rv: &str) -> Record {
        Record {
            holder: holder.into(),
            duration_secs: 10,
            renew_time: Some(wall()),
            resource_version: rv.into(),
            ..Default::default()
        }
    }

    #[test]
    fn creates_a_missing_lease_and_leads_after_the_write() {
        let t0 = Instant::now();
        let mut e = Elector::new("a", LeaseTimings::default());
        let Step::Create(spec) = e.observe(t0, wall(), None) else {
            panic!("expected create");
        };
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_duration_seconds, Some(10));
        assert!(!e.is_leader(t0));
        e.written(t0, true);
        assert!(e.is_leader(t0));
        // Without renewals it steps down at the renew deadline, before the lease ends.
        assert!(e.is_leader(t0 + Duration::from_secs(6)));
        assert!(!e.is_leader(t0 + Duration::from_secs(7)));
    }

    #[test]
    fn a_failed_write_does_not_lead() {
        let t0 = Instant::now();
        let mut e = Elector::new("a", LeaseTimings::default());
        e.observe(t0, wall(), None);
        e.written(t0, false);
        assert!(!e.is_leader(t0));
    }

    #[test]
    fn waits_for_a_live_holder_and_takes_over_a_dead_one() {
        let t0 = Instant::now();
        let mut b = Elector::new("b", LeaseTimings::default());
        let rec = held_by("a", "1");
        assert_eq!(b.observe(t0, wall(), Some(&rec)), Step::Wait);
        // The holder renews: the clock restarts.
        let renewed = held_by("a", "2");
        let t4 = t0 + Duration::from_secs(4);
        assert_eq!(b.observe(t4, wall(), Some(&renewed)), Step::Wait);
        assert_eq!(
            b.observe(t0 + Duration::from_secs(12), wall(), Some(&renewed)),
            Step::Wait
        );
        // 10 s after it last changed, the Lease is b's to take, with the version read.
        let step = b.observe(t0 + Duration::from_secs(14), wall(), Some(&renewed));
        let Step::Update {
            spec,
            resource_version,
        } = step
        else {
            panic!("expected takeover, got {step:?}");
        };
        assert_eq!(resource_version, "2");
        assert_eq!(spec.holder_identity.as_deref(), Some("b"));
        assert_eq!(spec.lease_transitions, Some(1));
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let t0 = Instant::now();
        let mut b = Elector::new("b", LeaseTimings::default());
        let rec = held_by("", "7");
        assert!(matches!(
            b.observe(t0, wall(), Some(&rec)),
            Step::Update { .. }
        ));
    }

    #[test]
    fn the_holder_renews_and_releases() {
        let t0 = Instant::now();
        let mut a = Elector::new("a", LeaseTimings::default());
        let rec = held_by("a", "3");
        let step = a.observe(t0, wall(), Some(&rec));
        assert!(
            matches!(step, Step::Update { ref resource_version, .. } if resource_version == "3")
        );
        a.written(t0, true);
        assert!(a.is_leader(t0));
        let spec = a.release(t0).expect("leader releases");
        assert_eq!(spec.holder_identity, None);
        assert!(!a.is_leader(t0));
        assert_eq!(a.release(t0), None);
    }
}
