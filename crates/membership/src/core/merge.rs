//! Merging news into the member table: precedence by incarnation and state, refuting
//! news about this node, and the events a change emits.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

use super::suspicion::Suspicion;
use super::{Core, DownReason, Event, Member};
use crate::config::LiveSet;
use crate::wire::{Message, Status, Update};

impl Core {
    /// Merges one piece of news.
    pub(super) fn apply(
        &mut self,
        u: Update,
        via_sync: bool,
        src: SocketAddr,
        from: &str,
        now: Instant,
    ) {
        if u.name == self.name {
            self.about_self(u, src, from);
            return;
        }
        let current = self.members.get(&u.name).map(|m| (m.status, m.incarnation));
        let accuser = || u.accuser.clone().unwrap_or_else(|| from.to_owned());
        match (u.status, current) {
            (Status::Alive, None) => {
                self.set(&u.name, Status::Alive, u.incarnation, u.addr, None, now);
                self.queue_news(&u.name);
            }
            (Status::Alive, Some((_, inc))) if u.incarnation > inc => {
                self.set(&u.name, Status::Alive, u.incarnation, u.addr, None, now);
                self.queue_news(&u.name);
            }
            (Status::Suspect, None) => {
                self.set(
                    &u.name,
                    Status::Suspect,
                    u.incarnation,
                    u.addr,
                    Some(accuser()),
                    now,
                );
                self.queue_news(&u.name);
            }
            (Status::Suspect, Some((status, inc)))
                if (status == Status::Alive && u.incarnation >= inc) || u.incarnation > inc =>
            {
                let addr = self.members[&u.name].addr;
                self.set(
                    &u.name,
                    Status::Suspect,
                    u.incarnation,
                    addr,
                    Some(accuser()),
                    now,
                );
                self.queue_news(&u.name);
            }
            (Status::Suspect, Some((Status::Suspect, inc))) if u.incarnation == inc => {
                let by = accuser();
                let confirmed = self
                    .members
                    .get_mut(&u.name)
                    .and_then(|m| m.suspicion.as_mut())
                    .is_some_and(|s| s.confirm(&by));
                if confirmed {
                    self.queue_update(self.suspect_update(&u.name, &by));
                }
            }
            (Status::Dead, Some((Status::Alive | Status::Suspect, inc)))
                if u.incarnation >= inc =>
            {
                if via_sync {
                    // A full-state exchange can carry the view of the other side of a
                    // partition: suspect rather than kill, so a live node can refute.
                    let suspect = Update {
                        status: Status::Suspect,
                        accuser: Some(from.to_owned()),
                        ..u
                    };
                    self.apply(suspect, false, src, from, now);
                } else {
                    let addr = self.members[&u.name].addr;
                    self.set(&u.name, Status::Dead, u.incarnation, addr, None, now);
                    self.queue_news(&u.name);
                }
            }
            (Status::Left, Some((Status::Alive | Status::Suspect | Status::Dead, inc)))
                if u.incarnation >= inc =>
            {
                let addr = self.members[&u.name].addr;
                self.set(&u.name, Status::Left, u.incarnation, addr, None, now);
                self.queue_news(&u.name);
            }
            (Status::Dead | Status::Left, Some((Status::Dead | Status::Left, inc)))
                if u.incarnation > inc =>
            {
                if let Some(m) = self.members.get_mut(&u.name) {
                    m.incarnation = u.incarnation;
                }
            }
            // Stale news, or death of a member never heard of.
            _ => {}
        }
    }

    /// News about this node: refute anything but "alive" at our incarnation.
    pub(super) fn about_self(&mut self, u: Update, src: SocketAddr, from: &str) {
        if self.left {
            return;
        }
        match u.status {
            Status::Alive => {
                if u.incarnation > self.incarnation {
                    // News of an earlier life that had counted higher.
                    self.refute(u.incarnation);
                } else {
                    if u.incarnation == self.incarnation && u.addr != self.addr {
                        self.stats.misdirected += 1;
                        warn!(name = %self.name, other = %u.addr, "another node claims this node's name");
                    }
                    return;
                }
            }
            Status::Suspect | Status::Dead | Status::Left => {
                if u.incarnation >= self.incarnation {
                    info!(from, status = %u.status, incarnation = u.incarnation, "refuting");
                    self.refute(u.incarnation);
                }
            }
        }
        // Whoever told us gets the answer straight away.
        let me = self.self_update();
        self.send_with(src, Some(from), Message::Gossip, vec![me]);
    }

    pub(super) fn refute(&mut self, incarnation: u64) {
        self.incarnation = incarnation.max(self.incarnation).saturating_add(1);
        self.stats.refutations += 1;
        self.raise_health();
        self.queue_update(self.self_update());
    }

    /// Changes a member's state, emitting events.
    pub(super) fn set(
        &mut self,
        name: &str,
        status: Status,
        incarnation: u64,
        addr: SocketAddr,
        accuser: Option<String>,
        now: Instant,
    ) {
        let live_n = self.live_count();
        let (min, max, needed) = self.suspicion_bounds(live_n);
        let old = self.members.get(name).map(|m| m.status);
        let fresh = old.is_none();
        let m = self.members.entry(name.to_owned()).or_insert(Member {
            addr,
            incarnation,
            status,
            since: now,
            suspicion: None,
            probe_soon: false,
        });
        m.addr = addr;
        m.incarnation = incarnation;
        m.status = status;
        m.since = now;
        m.probe_soon = false;
        m.suspicion = None;
        if status == Status::Suspect {
            let accuser = accuser.unwrap_or_default();
            m.probe_soon = accuser != self.name;
            m.suspicion = Some(Suspicion::new(now, min, max, needed, accuser));
        }
        if fresh {
            // Probe a newcomer within this round, at a random place.
            let at = self.rng.below(self.probe_ring.len() + 1);
            self.probe_ring.insert(at, name.to_owned());
            if at <= self.probe_pos && self.probe_ring.len() > 1 {
                self.probe_pos += 1;
            }
        }
        let was_live = old.is_some_and(|s| self.is_live(s));
        let is_live = self.is_live(status);
        if status == Status::Suspect && old != Some(Status::Suspect) {
            debug!(member = name, incarnation, "suspect");
            self.events
                .push_back(Event::Suspected { name: name.into() });
        }
        if old == Some(Status::Suspect) && status == Status::Alive {
            debug!(member = name, incarnation, "suspicion refuted");
            self.events.push_back(Event::Refuted { name: name.into() });
        }
        if !was_live && is_live {
            info!(member = name, %addr, incarnation, "member up");
            self.events.push_back(Event::Up {
                name: name.into(),
                addr,
            });
        }
        if was_live && !is_live {
            let reason = match status {
                Status::Left => DownReason::Left,
                Status::Suspect => DownReason::Suspected,
                _ => DownReason::Failed,
            };
            info!(member = name, %reason, incarnation, "member down");
            self.events.push_back(Event::Down {
                name: name.into(),
                reason,
            });
        }
    }

    pub(super) fn suspicion_bounds(&self, live_n: usize) -> (Duration, Duration, u32) {
        let scale = (live_n.max(1) as f64).log10().max(1.0);
        let min = self.timing.suspicion_timeout.mul_f64(scale);
        let max = min * self.timing.suspicion_max_multiplier;
        let needed = self
            .timing
            .suspicion_confirmations
            .min(u32::try_from(live_n.saturating_sub(2)).unwrap_or(u32::MAX));
        (min, max, needed)
    }

    pub(super) fn is_live(&self, status: Status) -> bool {
        match self.live_set {
            LiveSet::AliveOrSuspect => matches!(status, Status::Alive | Status::Suspect),
            LiveSet::AliveOnly => status == Status::Alive,
        }
    }

    /// Members alive or suspect, this node included.
    pub(super) fn live_count(&self) -> usize {
        1 + self
            .members
            .values()
            .filter(|m| matches!(m.status, Status::Alive | Status::Suspect))
            .count()
    }

    pub(super) fn update_of(&self, name: &str, m: &Member) -> Update {
        Update {
            name: name.into(),
            addr: m.addr,
            incarnation: m.incarnation,
            status: m.status,
            accuser: None,
        }
    }

    pub(super) fn suspect_update(&self, name: &str, accuser: &str) -> Update {
        let m = &self.members[name];
        Update {
            accuser: Some(accuser.into()),
            ..self.update_of(name, m)
        }
    }

    pub(super) fn self_update(&self) -> Update {
        Update {
            name: self.name.clone(),
            addr: self.addr,
            incarnation: self.incarnation,
            status: if self.left {
                Status::Left
            } else {
                Status::Alive
            },
            accuser: None,
        }
    }

    /// Queues what this node now believes about a member.
    pub(super) fn queue_news(&mut self, name: &str) {
        let Some(m) = self.members.get(name) else {
            return;
        };
        let mut u = self.update_of(name, m);
        if m.status == Status::Suspect {
            u.accuser = m.suspicion.as_ref().map(|s| s.accuser().to_owned());
        }
        self.queue_update(u);
    }

    pub(super) fn queue_update(&mut self, u: Update) {
        self.broadcasts.push(u);
    }

    pub(super) fn retransmit_limit(&self) -> u32 {
        let n = self.live_count() as f64;
        let scale = (n + 1.0).log10().ceil().max(1.0) as u32;
        self.timing.retransmit_multiplier * scale
    }
}
