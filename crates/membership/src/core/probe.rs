//! Probing (direct, then indirect through helpers), relaying probes for others, and
//! turning failed probes into suspicions and expired suspicions into deaths.

use std::net::SocketAddr;
use std::time::Instant;
use tracing::{debug, info};

use super::{Core, Probe};
use crate::wire::{Message, Status};

impl Core {
    pub(super) fn start_probe(&mut self, now: Instant) {
        let scale = self.local_health + 1;
        self.next_probe = now + self.timing.probe_interval * scale;
        let Some(target) = self.next_target() else {
            return;
        };
        let addr = self.members[&target].addr;
        let seq = self.next_seq();
        self.stats.probes += 1;
        self.send(
            addr,
            Some(&target),
            Message::Ping {
                seq,
                target: target.clone(),
            },
        );
        self.probes.push(Probe {
            seq,
            target,
            addr,
            timeout_at: now + self.timing.probe_timeout * scale,
            end: now + self.timing.probe_deadline * scale,
            indirect: false,
            helpers: 0,
            nacks: 0,
        });
    }

    pub(super) fn next_target(&mut self) -> Option<String> {
        let busy = |probes: &[Probe], name: &str| probes.iter().any(|p| p.target == name);
        // A suspicion heard from others: check it ourselves first (fast confirmation of
        // a dead node, and the suspect hears of it from one more node if it is alive).
        let soon = self
            .members
            .iter()
            .find(|(n, m)| {
                m.probe_soon && m.status == Status::Suspect && !busy(&self.probes, n.as_str())
            })
            .map(|(n, _)| n.clone());
        if let Some(name) = soon {
            if let Some(m) = self.members.get_mut(&name) {
                m.probe_soon = false;
            }
            return Some(name);
        }
        for _ in 0..self.probe_ring.len() {
            self.probe_pos = (self.probe_pos + 1) % self.probe_ring.len();
            let name = &self.probe_ring[self.probe_pos];
            let live = self
                .members
                .get(name)
                .is_some_and(|m| matches!(m.status, Status::Alive | Status::Suspect));
            if live && !busy(&self.probes, name) {
                return Some(name.clone());
            }
        }
        None
    }

    pub(super) fn run_probes(&mut self, now: Instant) {
        let due: Vec<usize> = (0..self.probes.len())
            .filter(|&i| !self.probes[i].indirect && now >= self.probes[i].timeout_at)
            .collect();
        for i in due {
            self.probes[i].indirect = true;
            let (seq, target, addr) = {
                let p = &self.probes[i];
                (p.seq, p.target.clone(), p.addr)
            };
            let candidates: Vec<(String, SocketAddr)> = self
                .members
                .iter()
                .filter(|(n, m)| m.status == Status::Alive && **n != target)
                .map(|(n, m)| (n.clone(), m.addr))
                .collect();
            let helpers = self.rng.choose(&candidates, self.timing.indirect_probes);
            for (name, helper) in &helpers {
                self.send(
                    *helper,
                    Some(name),
                    Message::PingReq {
                        seq,
                        target: target.clone(),
                        addr,
                    },
                );
            }
            // One more direct try: on a lossy network it is often all it takes.
            self.send(
                addr,
                Some(&target),
                Message::Ping {
                    seq,
                    target: target.clone(),
                },
            );
            self.stats.indirect_probes += 1;
            self.probes[i].helpers = helpers.len();
        }
        let (ended, running): (Vec<Probe>, Vec<Probe>) = std::mem::take(&mut self.probes)
            .into_iter()
            .partition(|p| now >= p.end);
        self.probes = running;
        for p in ended {
            if now.saturating_duration_since(p.end) > self.timing.probe_timeout {
                // This node was not running when it should have: the missing ack says
                // nothing about the target.
                self.stats.probes_void += 1;
                self.raise_health();
                debug!(target = %p.target, "probe void: handled late");
                continue;
            }
            self.stats.probes_failed += 1;
            if p.nacks < p.helpers {
                // Helpers should have nacked: this node may be the one losing packets.
                self.raise_health();
            }
            debug!(target = %p.target, helpers = p.helpers, nacks = p.nacks, "probe failed");
            self.suspect_from_probe(&p.target, now);
        }
    }

    pub(super) fn on_ack(&mut self, seq: u32) {
        if let Some(i) = self.probes.iter().position(|p| p.seq == seq) {
            self.probes.swap_remove(i);
            self.lower_health();
            return;
        }
        if let Some(r) = self.relays.remove(&seq) {
            self.send(
                r.requester,
                Some(&r.requester_name),
                Message::Ack {
                    seq: r.requester_seq,
                },
            );
        }
    }

    pub(super) fn run_relays(&mut self, now: Instant) {
        let due: Vec<(SocketAddr, String, u32)> = self
            .relays
            .values_mut()
            .filter(|r| !r.nacked && r.nack_at <= now)
            .map(|r| {
                r.nacked = true;
                (r.requester, r.requester_name.clone(), r.requester_seq)
            })
            .collect();
        for (to, name, seq) in due {
            self.send(to, Some(&name), Message::Nack { seq });
        }
        self.relays.retain(|_, r| r.expire > now);
    }

    // ----- suspicion -----------------------------------------------------------------

    pub(super) fn suspect_from_probe(&mut self, name: &str, now: Instant) {
        let Some(m) = self.members.get(name) else {
            return;
        };
        match m.status {
            Status::Alive => {
                self.stats.suspicions += 1;
                let (addr, inc) = (m.addr, m.incarnation);
                let me = self.name.clone();
                self.set(name, Status::Suspect, inc, addr, Some(me), now);
                self.queue_news(name);
                // Tell the suspect at once, so a live one refutes within a round trip.
                self.send(addr, Some(name), Message::Gossip);
            }
            Status::Suspect => {
                let me = self.name.clone();
                let confirmed = self
                    .members
                    .get_mut(name)
                    .and_then(|m| m.suspicion.as_mut())
                    .is_some_and(|s| s.confirm(&me));
                if confirmed {
                    self.stats.suspicions += 1;
                    self.queue_update(self.suspect_update(name, &me));
                }
            }
            Status::Dead | Status::Left => {}
        }
    }

    pub(super) fn run_suspicions(&mut self, now: Instant) {
        let due: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                m.status == Status::Suspect
                    && m.suspicion.as_ref().is_some_and(|s| s.deadline() <= now)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            let (addr, inc) = {
                let m = &self.members[&name];
                (m.addr, m.incarnation)
            };
            info!(member = %name, incarnation = inc, "suspicion timed out: member is dead");
            self.stats.declared_dead += 1;
            self.set(&name, Status::Dead, inc, addr, None, now);
            self.queue_news(&name);
        }
    }
}
