//! The queue of membership news waiting to be piggybacked: one entry per member (newer
//! news replaces older), each sent a bounded number of times, least-sent first.

use std::collections::BTreeMap;

use crate::wire::Update;

#[derive(Clone, Debug)]
struct Entry {
    update: Update,
    sent: u32,
    /// Insertion order, to break ties toward older news.
    order: u64,
}

/// News waiting to be gossiped.
#[derive(Clone, Debug, Default)]
pub(crate) struct Broadcasts {
    entries: BTreeMap<String, Entry>,
    next_order: u64,
}

impl Broadcasts {
    /// Queues news about a member, replacing older news about it.
    pub(crate) fn push(&mut self, update: Update) {
        self.next_order += 1;
        self.entries.insert(
            update.name.clone(),
            Entry {
                update,
                sent: 0,
                order: self.next_order,
            },
        );
    }

    /// Whether anything waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many members have news waiting.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Takes news for one packet, at most `budget` encoded bytes, least-sent first,
    /// skipping `exclude` (news already in the packet). Each taken entry counts as sent
    /// once more and is dropped after `limit` sends.
    pub(crate) fn take(&mut self, mut budget: usize, limit: u32, exclude: &[&str]) -> Vec<Update> {
        let mut order: Vec<(u32, u64, String)> = self
            .entries
            .iter()
            .filter(|(name, _)| !exclude.contains(&name.as_str()))
            .map(|(name, e)| (e.sent, e.order, name.clone()))
            .collect();
        order.sort();
        let mut out = Vec::new();
        for (_, _, name) in order {
            let Some(e) = self.entries.get_mut(&name) else {
                continue;
            };
            let len = e.update.encoded_len();
            if len > budget {
                continue;
            }
            budget -= len;
            e.sent += 1;
            out.push(e.update.clone());
            if e.sent >= limit {
                self.entries.remove(&name);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Status;

    fn u(name: &str, inc: u64) -> Update {
        Update {
            name: name.into(),
            addr: "198.51.100.1:7946".parse().unwrap(),
            incarnation: inc,
            status: Status::Alive,
            accuser: None,
        }
    }

    #[test]
    fn newest_news_per_member_least_sent_first_bounded() {
        let mut b = Broadcasts::default();
        b.push(u("a", 1));
        b.push(u("b", 1));
        b.push(u("a", 2));
        assert_eq!(b.len(), 2);
        let first = b.take(10_000, 2, &[]);
        assert_eq!(first.len(), 2);
        assert_eq!(first.iter().find(|x| x.name == "a").unwrap().incarnation, 2);
        b.push(u("c", 1));
        let second = b.take(u("c", 1).encoded_len(), 2, &[]);
        assert_eq!(second[0].name, "c", "least sent first");
        assert_eq!(b.take(10_000, 2, &["a"]).len(), 2, "b and c; a excluded");
        assert!(b.take(10_000, 2, &[]).iter().all(|x| x.name == "a"));
        assert!(b.is_empty());
    }
}
