//! The used addresses of one family of one pool.
//!
//! Memory is proportional to the number of used addresses, never to the size of the pool:
//! a `/8` or a `/64` costs what a `/30` costs. Addresses are `u128` integers (IPv4
//! addresses are their `u32` value). Besides the used addresses themselves, the space
//! keeps their maximal *runs* (intervals of consecutive usable addresses that are all
//! used), so that the lowest free address from any point is found in O(log n): look up
//! the run containing the point and jump past its end.

use crate::fxhash::FxBuildHasher;
use crate::request::Sharing;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The allocator's number for a Service holding addresses.
pub(crate) type ServiceId = u32;

/// Services holding one address: almost always one, so kept inline.
#[derive(Clone, Debug)]
pub(crate) enum Holders {
    /// One holder.
    One(ServiceId),
    /// Several (sharing) holders, in the order they took the address.
    Many(Vec<ServiceId>),
}

impl Holders {
    pub(crate) fn as_slice(&self) -> &[ServiceId] {
        match self {
            Holders::One(id) => std::slice::from_ref(id),
            Holders::Many(ids) => ids,
        }
    }

    pub(crate) fn push(&mut self, id: ServiceId) {
        match self {
            Holders::One(first) => *self = Holders::Many(vec![*first, id]),
            Holders::Many(ids) => ids.push(id),
        }
    }

    /// Removes a holder; returns whether none is left.
    pub(crate) fn remove(&mut self, id: ServiceId) -> bool {
        match self {
            Holders::One(only) => *only == id,
            Holders::Many(ids) => {
                ids.retain(|h| *h != id);
                if let [last] = ids.as_slice() {
                    *self = Holders::One(*last);
                }
                ids_empty(self)
            }
        }
    }
}

fn ids_empty(h: &Holders) -> bool {
    matches!(h, Holders::Many(ids) if ids.is_empty())
}

/// Services holding one address.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    /// The sharing permission every holder has (they are all equal); `None` for an
    /// address held exclusively by one Service.
    pub(crate) sharing: Option<Box<Sharing>>,
    /// The holders.
    pub(crate) holders: Holders,
}

/// The lowest usable address at or above `a`.
fn usable_from(avoid_buggy: bool, a: u128) -> Option<u128> {
    if !avoid_buggy {
        return Some(a);
    }
    match a & 0xff {
        0 => a.checked_add(1),
        255 => a.checked_add(2),
        _ => Some(a),
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Space {
    /// Whether IPv4 addresses ending in .0 or .255 are unusable (never set for IPv6).
    avoid_buggy: bool,
    /// Used addresses.
    pub(crate) slots: HashMap<u128, Slot, FxBuildHasher>,
    /// Maximal runs of used addresses: start → end (inclusive). Two used addresses are in
    /// one run when every usable address between them is used.
    runs: BTreeMap<u128, u128>,
    /// Used addresses whose holders allow sharing, by sharing permission.
    shared: HashMap<Sharing, BTreeSet<u128>, FxBuildHasher>,
}

impl Space {
    pub(crate) fn new(avoid_buggy: bool) -> Self {
        Space {
            avoid_buggy,
            ..Space::default()
        }
    }

    /// Whether `a` is never handed out (an IPv4 .0 or .255 when buggy IPs are avoided).
    pub(crate) fn is_buggy(&self, a: u128) -> bool {
        self.avoid_buggy && matches!(a & 0xff, 0 | 255)
    }

    /// The lowest usable address at or above `a`.
    fn usable_from(&self, a: u128) -> Option<u128> {
        usable_from(self.avoid_buggy, a)
    }

    /// The highest usable address at or below `a` (only called with a usable address
    /// somewhere at or below `a`).
    fn usable_to(&self, a: u128) -> u128 {
        if !self.avoid_buggy {
            return a;
        }
        match a & 0xff {
            0 => a.saturating_sub(2),
            255 => a.saturating_sub(1),
            _ => a,
        }
    }

    /// The run containing `a`, if `a` is used.
    fn run_of(&self, a: u128) -> Option<(u128, u128)> {
        self.runs
            .range(..=a)
            .next_back()
            .filter(|(_, end)| **end >= a)
            .map(|(s, e)| (*s, *e))
    }

    /// The lowest usable, unused address in `lo..=hi`. O(log n).
    pub(crate) fn lowest_free(&self, lo: u128, hi: u128) -> Option<u128> {
        let c = self.usable_from(lo)?;
        // Runs are maximal, so the usable address just past the run containing `c` is
        // free: one lookup.
        let free = match self.run_of(c) {
            Some((_, end)) => self.usable_from(end.checked_add(1)?)?,
            None => c,
        };
        (free <= hi).then_some(free)
    }

    /// Used addresses in `lo..=hi` shared under `sharing`, lowest first.
    pub(crate) fn shared_in(
        &self,
        sharing: &Sharing,
        lo: u128,
        hi: u128,
    ) -> impl Iterator<Item = u128> + '_ {
        self.shared
            .get(sharing)
            .into_iter()
            .flat_map(move |set| set.range(lo..=hi).copied())
    }

    /// Adds a holder to `a`, which must be usable; a new slot takes `sharing`.
    pub(crate) fn occupy(&mut self, a: u128, holder: ServiceId, sharing: Option<&Sharing>) {
        match self.slots.entry(a) {
            Entry::Occupied(mut e) => {
                e.get_mut().holders.push(holder);
                return;
            }
            Entry::Vacant(e) => {
                e.insert(Slot {
                    sharing: sharing.map(|s| Box::new(s.clone())),
                    holders: Holders::One(holder),
                });
            }
        }
        if let Some(s) = sharing {
            self.shared.entry(s.clone()).or_default().insert(a);
        }
        // Merge with the run ending just before `a` and the one starting just after it.
        let right = a
            .checked_add(1)
            .and_then(|n| self.usable_from(n))
            .and_then(|n| self.runs.get(&n).map(|end| (n, *end)));
        if let Some((right_start, _)) = right {
            self.runs.remove(&right_start);
        }
        let end = right.map_or(a, |(_, right_end)| right_end);
        let avoid_buggy = self.avoid_buggy;
        let left = self
            .runs
            .range_mut(..a)
            .next_back()
            .filter(|(_, left_end)| {
                left_end
                    .checked_add(1)
                    .and_then(|n| usable_from(avoid_buggy, n))
                    == Some(a)
            });
        match left {
            Some((_, left_end)) => *left_end = end,
            None => {
                self.runs.insert(a, end);
            }
        }
    }

    /// Removes a holder from `a`; frees the address when it was the last. Returns
    /// whether the address became free.
    pub(crate) fn vacate(&mut self, a: u128, holder: ServiceId) -> bool {
        let Some(slot) = self.slots.get_mut(&a) else {
            return false;
        };
        if !slot.holders.remove(holder) {
            return false;
        }
        let sharing = self.slots.remove(&a).and_then(|slot| slot.sharing);
        if let Some(s) = sharing
            && let Some(set) = self.shared.get_mut(&*s)
        {
            set.remove(&a);
            if set.is_empty() {
                self.shared.remove(&*s);
            }
        }
        if let Some((start, end)) = self.run_of(a) {
            self.runs.remove(&start);
            if a > start {
                self.runs.insert(start, self.usable_to(a - 1));
            }
            if a < end
                && let Some(next) = self.usable_from(a + 1)
            {
                self.runs.insert(next, end);
            }
        }
        true
    }

    /// Number of used addresses.
    pub(crate) fn used(&self) -> usize {
        self.slots.len()
    }

    #[cfg(test)]
    pub(crate) fn runs(&self) -> Vec<(u128, u128)> {
        self.runs.iter().map(|(s, e)| (*s, *e)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> ServiceId {
        n
    }

    #[test]
    fn runs_merge_and_split() {
        let mut s = Space::new(false);
        for a in [10, 12, 11, 14] {
            s.occupy(a, key(a as u32), None);
        }
        assert_eq!(s.runs(), vec![(10, 12), (14, 14)]);
        assert_eq!(s.lowest_free(10, 20), Some(13));
        s.occupy(13, key(13), None);
        assert_eq!(s.runs(), vec![(10, 14)]);
        assert_eq!(s.lowest_free(10, 20), Some(15));
        assert_eq!(s.lowest_free(10, 14), None);
        assert!(s.vacate(12, key(12)));
        assert_eq!(s.runs(), vec![(10, 11), (13, 14)]);
        assert_eq!(s.lowest_free(10, 20), Some(12));
        assert!(s.vacate(10, key(10)));
        assert!(s.vacate(14, key(14)));
        assert_eq!(s.runs(), vec![(11, 11), (13, 13)]);
        assert_eq!(s.lowest_free(11, 11), None);
        assert_eq!(s.lowest_free(0, 100), Some(0));
    }

    #[test]
    fn buggy_addresses_join_runs() {
        let mut s = Space::new(true);
        // 0.0.0.254 and 0.0.1.1 are adjacent once .255 and .0 are skipped.
        s.occupy(254, key(1), None);
        s.occupy(257, key(2), None);
        assert_eq!(s.runs(), vec![(254, 257)]);
        assert_eq!(s.lowest_free(254, 1000), Some(258));
        assert_eq!(s.lowest_free(0, 1000), Some(1));
        assert_eq!(s.lowest_free(255, 256), None);
        s.vacate(257, key(2));
        assert_eq!(s.runs(), vec![(254, 254)]);
        assert_eq!(s.lowest_free(254, 1000), Some(257));
    }

    #[test]
    fn top_of_the_address_space() {
        let mut s = Space::new(false);
        s.occupy(u128::MAX, key(1), None);
        s.occupy(u128::MAX - 1, key(2), None);
        assert_eq!(s.lowest_free(u128::MAX - 1, u128::MAX), None);
        assert_eq!(s.lowest_free(u128::MAX - 5, u128::MAX), Some(u128::MAX - 5));
        s.vacate(u128::MAX, key(1));
        assert_eq!(s.lowest_free(u128::MAX - 1, u128::MAX), Some(u128::MAX));
    }
}
