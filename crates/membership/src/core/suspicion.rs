//! Lifeguard's dynamic suspicion timeout: a suspicion starts long and shrinks as other
//! nodes independently confirm it, so a node that only one (possibly slow) prober
//! accuses gets more time to refute, while a really dead node is declared quickly once
//! several agree.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A running suspicion of one member at one incarnation.
#[derive(Clone, Debug)]
pub(crate) struct Suspicion {
    start: Instant,
    min: Duration,
    max: Duration,
    /// Confirmations that bring the timeout to `min`.
    needed: u32,
    /// Who raised the suspicion first.
    accuser: String,
    /// Other nodes that suspected the same incarnation independently.
    confirmers: BTreeSet<String>,
    deadline: Instant,
}

impl Suspicion {
    /// A suspicion raised by `accuser` at `start`; `needed` is Lifeguard's K (already
    /// bounded by the cluster size).
    pub(crate) fn new(
        start: Instant,
        min: Duration,
        max: Duration,
        needed: u32,
        accuser: String,
    ) -> Suspicion {
        let mut s = Suspicion {
            start,
            min,
            max: max.max(min),
            needed,
            accuser,
            confirmers: BTreeSet::new(),
            deadline: start,
        };
        s.deadline = start + s.timeout();
        s
    }

    /// When the member is declared dead if nothing refutes.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Who raised the suspicion first.
    pub(crate) fn accuser(&self) -> &str {
        &self.accuser
    }

    /// Records an independent confirmation; true if it was new (and so worth passing on).
    pub(crate) fn confirm(&mut self, from: &str) -> bool {
        if from == self.accuser
            || self.confirmers.len() as u32 >= self.needed
            || !self.confirmers.insert(from.to_owned())
        {
            return false;
        }
        self.deadline = self.start + self.timeout();
        true
    }

    /// `max - (max - min) × log(c + 1) / log(k + 1)`, at least `min` (Lifeguard §IV-B).
    fn timeout(&self) -> Duration {
        if self.needed == 0 {
            return self.min;
        }
        let c = self.confirmers.len() as f64;
        let frac = (c + 1.0).ln() / (f64::from(self.needed) + 1.0).ln();
        let span = self.max.saturating_sub(self.min).as_secs_f64();
        let t = self.max.as_secs_f64() - span * frac.min(1.0);
        Duration::from_secs_f64(t.max(self.min.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmations_shrink_the_timeout_to_its_minimum() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Suspicion::new(t0, ms(200), ms(400), 2, "a".into());
        assert_eq!(s.deadline(), t0 + ms(400));
        assert!(!s.confirm("a"), "the accuser does not confirm itself");
        assert!(s.confirm("b"));
        assert!(!s.confirm("b"), "counted once");
        let mid = s.deadline() - t0;
        assert!(mid > ms(200) && mid < ms(400), "{mid:?}");
        assert!(s.confirm("c"));
        assert_eq!(s.deadline(), t0 + ms(200));
        assert!(!s.confirm("d"), "enough already");
        let none = Suspicion::new(t0, ms(200), ms(400), 0, "a".into());
        assert_eq!(none.deadline(), t0 + ms(200));
    }
}
