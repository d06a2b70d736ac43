//! Building packets: piggybacked news, the buddy rule, gossip rounds, full-state
//! exchanges (join, rejoin, anti-entropy).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Instant;

use super::{Core, Transmit};
use crate::wire::{Message, Packet, Status, Update};

impl Core {
    pub(super) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    pub(super) fn send(&mut self, to: SocketAddr, to_name: Option<&str>, message: Message) {
        self.send_with(to, to_name, message, Vec::new());
    }

    /// Sends `message` with `first` updates, then news about the recipient if we suspect
    /// it, think it dead or think it left (a live recipient then refutes: this also
    /// undoes a replayed "left" within a round trip), then queued news as space allows.
    pub(super) fn send_with(
        &mut self,
        to: SocketAddr,
        to_name: Option<&str>,
        message: Message,
        mut updates: Vec<Update>,
    ) {
        if let Some(m) = to_name.and_then(|n| self.members.get(n).map(|m| (n, m))) {
            let (n, m) = m;
            if m.status != Status::Alive && !updates.iter().any(|u| u.name == n) {
                let mut u = self.update_of(n, m);
                if m.status == Status::Suspect {
                    u.accuser = m.suspicion.as_ref().map(|s| s.accuser().to_owned());
                }
                updates.push(u);
            }
        }
        let used = Packet::header_len(&self.name, &message)
            + updates.iter().map(Update::encoded_len).sum::<usize>();
        let budget = self.max_packet.saturating_sub(used);
        let exclude: Vec<String> = updates.iter().map(|u| u.name.clone()).collect();
        let exclude: Vec<&str> = exclude.iter().map(String::as_str).collect();
        let limit = self.retransmit_limit();
        updates.extend(self.broadcasts.take(budget, limit, &exclude));
        if message == Message::Gossip && updates.is_empty() {
            return;
        }
        let packet = Packet {
            from: self.name.clone(),
            message,
            updates,
        };
        self.transmits.push_back(Transmit {
            to,
            packet: packet.encode(),
        });
    }

    pub(super) fn gossip(&mut self) {
        if self.broadcasts.is_empty() {
            return;
        }
        let live: Vec<(String, SocketAddr)> = self
            .members
            .iter()
            .filter(|(_, m)| matches!(m.status, Status::Alive | Status::Suspect))
            .map(|(n, m)| (n.clone(), m.addr))
            .collect();
        for (name, addr) in self.rng.choose(&live, self.timing.gossip_fanout) {
            self.send(addr, Some(&name), Message::Gossip);
        }
    }

    /// A full state exchange: this node, the recipient as we see it (so it can refute),
    /// every live member and every member that left. Dead members are not sent: each
    /// side finds those by probing, and a partition's view of the other side must not
    /// kill live nodes.
    pub(super) fn send_sync(&mut self, to: SocketAddr, to_name: Option<&str>, reply: bool) {
        let mut entries = vec![self.self_update()];
        let recipient = to_name.filter(|n| self.members.contains_key(*n));
        if let Some(n) = recipient {
            let m = &self.members[n];
            let mut u = self.update_of(n, m);
            if m.status == Status::Suspect {
                u.accuser = m.suspicion.as_ref().map(|s| s.accuser().to_owned());
            }
            entries.push(u);
        }
        for (n, m) in &self.members {
            if Some(n.as_str()) == recipient || m.status == Status::Dead {
                continue;
            }
            let mut u = self.update_of(n, m);
            if m.status == Status::Suspect {
                u.accuser = m.suspicion.as_ref().map(|s| s.accuser().to_owned());
            }
            entries.push(u);
        }
        let mut first = true;
        let mut entries = entries.into_iter().peekable();
        while entries.peek().is_some() {
            let message = Message::Join {
                reply: reply && first,
            };
            let mut budget = self
                .max_packet
                .saturating_sub(Packet::header_len(&self.name, &message));
            let mut chunk = Vec::new();
            while let Some(u) = entries.peek() {
                let len = u.encoded_len();
                if len > budget && !chunk.is_empty() {
                    break;
                }
                budget = budget.saturating_sub(len);
                chunk.extend(entries.next());
            }
            let packet = Packet {
                from: self.name.clone(),
                message,
                updates: chunk,
            };
            self.transmits.push_back(Transmit {
                to,
                packet: packet.encode(),
            });
            first = false;
        }
    }

    /// Joins every seed and dead member that is not a live member.
    pub(super) fn rejoin(&mut self, _now: Instant) {
        if self.left {
            return;
        }
        let live: BTreeSet<SocketAddr> = self
            .members
            .values()
            .filter(|m| matches!(m.status, Status::Alive | Status::Suspect))
            .map(|m| m.addr)
            .collect();
        let mut targets: Vec<SocketAddr> = self
            .seeds
            .iter()
            .copied()
            .chain(
                self.members
                    .values()
                    .filter(|m| m.status == Status::Dead)
                    .map(|m| m.addr),
            )
            .filter(|a| *a != self.addr && !live.contains(a))
            .collect();
        targets.sort();
        targets.dedup();
        for addr in targets {
            let name = self
                .members
                .iter()
                .find(|(_, m)| m.addr == addr)
                .map(|(n, _)| n.clone());
            self.send_sync(addr, name.as_deref(), true);
        }
    }

    pub(super) fn sync_random(&mut self) {
        let live: Vec<(String, SocketAddr)> = self
            .members
            .iter()
            .filter(|(_, m)| matches!(m.status, Status::Alive | Status::Suspect))
            .map(|(n, m)| (n.clone(), m.addr))
            .collect();
        if let Some((name, addr)) = self.rng.choose(&live, 1).pop() {
            self.send_sync(addr, Some(&name), true);
        }
    }
}
