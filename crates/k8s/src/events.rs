//! A small `events.k8s.io/v1` Event writer with a bounded cache.
//!
//! It writes Events as client-go's `EventRecorder` does: the first occurrence of an
//! Event is created (named `<object>.<hex nanoseconds>`); a repeat of the same Event
//! (same object, type, reason, action and note) within [`SERIES_WINDOW`] is a merge
//! patch of that Event's `series` (`count`, `lastObservedTime`) instead of a new object.
//!
//! The cache of Events written, used to find repeats, holds at most [`CACHE_CAPACITY`]
//! entries: past that, entries older than the window go first, then the least recently
//! used half. An evicted Event that repeats is created again, which costs one more
//! object on the API server and nothing else. (kube-runtime's `Recorder` keeps every
//! Event of the last six minutes, whole, and sweeps them all on every publish: for the
//! 10,000 Events of a first sync that was about 27 MB and half the CPU.)

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::Reporter;
use kube::{Api, Client};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How long a repeat of an Event is counted in that Event's `series` (client-go's
/// window) rather than written as a new Event.
pub const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// The most Events remembered for finding repeats.
pub const CACHE_CAPACITY: usize = 4096;

/// One Event to write.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventRecord {
    /// `Warning` rather than `Normal`.
    pub warning: bool,
    /// The reason (`IPAllocated`, ...).
    pub reason: String,
    /// What the controller did (`Allocate`, ...).
    pub action: String,
    /// The note (the message).
    pub note: String,
}

/// What makes two Events the same Event (the object by its identity, not its version).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    api_version: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
    record: EventRecord,
}

/// An Event written, as remembered.
#[derive(Debug)]
struct Written {
    /// Its name and namespace.
    name: String,
    namespace: String,
    /// Occurrences so far.
    count: i32,
    /// When it last occurred.
    last: Timestamp,
    /// When it was last used, in the cache's own ticks (for eviction).
    used: u64,
}

#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<Key, Written>,
    tick: u64,
    /// The last nanosecond stamp given to a name (names stay unique within a process
    /// even when the clock does not move between two Events).
    last_stamp: i128,
}

impl Cache {
    /// Makes room for one more entry.
    fn evict(&mut self, now: Timestamp, capacity: usize) {
        if self.entries.len() < capacity {
            return;
        }
        self.entries.retain(|_, w| w.last + SERIES_WINDOW > now);
        if self.entries.len() < capacity {
            return;
        }
        // The least recently used half goes (amortized: one sort per capacity/2 new
        // Events).
        let mut used: Vec<u64> = self.entries.values().map(|w| w.used).collect();
        used.sort_unstable();
        let keep_from = used[used.len() / 2];
        self.entries.retain(|_, w| w.used >= keep_from);
    }
}

/// Writes Events for one reporting controller (see the module docs).
#[derive(Clone)]
pub struct EventWriter {
    client: Client,
    reporter: Reporter,
    capacity: usize,
    cache: Arc<Mutex<Cache>>,
}

fn type_name(warning: bool) -> &'static str {
    if warning { "Warning" } else { "Normal" }
}

impl EventWriter {
    /// A writer reporting as `reporter` (`reportingController` and, when it has one,
    /// `reportingInstance`; else the controller's name is the instance too).
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self::with_capacity(client, reporter, CACHE_CAPACITY)
    }

    /// As [`EventWriter::new`], remembering at most `capacity` Events (at least 2).
    pub fn with_capacity(client: Client, reporter: Reporter, capacity: usize) -> Self {
        EventWriter {
            client,
            reporter,
            capacity: capacity.max(2),
            cache: Arc::new(Mutex::new(Cache::default())),
        }
    }

    /// How many Events are remembered now.
    pub fn cached(&self) -> usize {
        self.cache.lock().map(|c| c.entries.len()).unwrap_or(0)
    }

    /// Writes one Event about `regarding`: created, or counted in the series of the same
    /// Event written within the window.
    pub async fn publish(
        &self,
        record: &EventRecord,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = Key {
            api_version: regarding.api_version.clone(),
            kind: regarding.kind.clone(),
            namespace: regarding.namespace.clone(),
            name: regarding.name.clone(),
            uid: regarding.uid.clone(),
            record: record.clone(),
        };
        let repeat = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.tick += 1;
            let tick = cache.tick;
            match cache.entries.get_mut(&key) {
                Some(w) if w.last + SERIES_WINDOW > now => {
                    w.used = tick;
                    Some((w.name.clone(), w.namespace.clone(), w.count + 1))
                }
                _ => None,
            }
        };
        if let Some((name, namespace, count)) = repeat {
            let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
            let patch = json!({
                "series": {"count": count, "lastObservedTime": MicroTime(now)},
            });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(w) = cache.entries.get_mut(&key) {
                        w.count = count;
                        w.last = now;
                    }
                    return Ok(());
                }
                // Gone meanwhile (the API server keeps Events an hour): a new one.
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    tracing::debug!("event {namespace}/{name} is gone: creating a new one");
                }
                Err(e) => return Err(e),
            }
        }
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let stamp = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            let stamp = now.as_nanosecond().max(cache.last_stamp + 1);
            cache.last_stamp = stamp;
            stamp
        };
        let name = format!(
            "{}.{stamp:x}",
            regarding
                .name
                .as_deref()
                .unwrap_or(self.reporter.controller.as_str())
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            action: Some(record.action.clone()),
            reason: Some(record.reason.clone()),
            note: Some(record.note.clone()),
            type_: Some(type_name(record.warning).to_string()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        api.create(&PostParams::default(), &event).await?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.evict(now, self.capacity);
        cache.tick += 1;
        let used = cache.tick;
        cache.entries.insert(
            key,
            Written {
                name,
                namespace,
                count: 1,
                last: now,
                used,
            },
        );
        Ok(())
    }
}
