//! Timing profiles and what counts as a live member.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use thiserror::Error;

/// A configuration that cannot work.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// An unknown profile name.
    #[error("unknown membership profile {0:?} (expected \"default\" or \"conservative\")")]
    Profile(String),
    /// A timing that is zero or out of order.
    #[error("membership timing: {0}")]
    Timing(String),
    /// A node name that cannot be sent.
    #[error("node name {0:?}: 1-253 bytes without control characters")]
    Name(String),
    /// A shared secret that is empty.
    #[error("a gossip secret must not be empty")]
    EmptySecret,
    /// No address to advertise could be found.
    #[error("cannot tell which address to advertise: bind a specific address or set one")]
    Advertise,
}

/// A named set of timings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    /// Fast: a dead node is declared down in about 300-500 ms on a LAN.
    #[default]
    Default,
    /// For lossy or congested networks: about MetalLB's memberlist LAN timing
    /// (probe every second, suspicion of four seconds and more).
    Conservative,
}

impl Profile {
    /// The profile's timings.
    pub fn timing(self) -> Timing {
        match self {
            Profile::Default => Timing::fast(),
            Profile::Conservative => Timing::conservative(),
        }
    }
}

impl FromStr for Profile {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Profile, ConfigError> {
        match s {
            "default" | "fast" => Ok(Profile::Default),
            "conservative" | "lan" => Ok(Profile::Conservative),
            other => Err(ConfigError::Profile(other.into())),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Profile::Default => "default",
            Profile::Conservative => "conservative",
        })
    }
}

/// Which members count as live in [`crate::Core::live_members`] and the membership
/// watch, and so which `Up`/`Down` events are emitted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LiveSet {
    /// Alive or suspect (MetalLB's choice: a suspect node keeps its addresses until it is
    /// declared dead, so one lost probe never moves traffic).
    #[default]
    AliveOrSuspect,
    /// Alive only (fails over at the first suspicion: faster, more churn).
    AliveOnly,
}

/// Every timing of the protocol. Start from a [`Profile`] and override fields as needed;
/// [`Timing::validate`] checks the result.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    /// How often this node starts a probe of one member (SWIM protocol period).
    pub probe_interval: Duration,
    /// How long to wait for a direct ack before asking helpers for indirect probes.
    pub probe_timeout: Duration,
    /// How long a probe has in all (direct and indirect) before its target becomes
    /// suspect. May exceed `probe_interval`: probes then overlap.
    pub probe_deadline: Duration,
    /// How many helpers an indirect probe asks (SWIM's k).
    pub indirect_probes: usize,
    /// The shortest suspicion timeout, for clusters of up to 10 nodes; it grows with
    /// log10(cluster size) beyond.
    pub suspicion_timeout: Duration,
    /// Lifeguard: a suspicion starts at `suspicion_timeout × this` and shrinks toward
    /// `suspicion_timeout` as other nodes independently confirm it.
    pub suspicion_max_multiplier: u32,
    /// Lifeguard: independent confirmations that bring the timeout to its minimum.
    pub suspicion_confirmations: u32,
    /// How often queued news is gossiped to random members.
    pub gossip_interval: Duration,
    /// How many members each gossip round reaches.
    pub gossip_fanout: usize,
    /// Each piece of news is sent `this × ceil(log10(n + 1))` times.
    pub retransmit_multiplier: u32,
    /// How often seeds (and dead members) that are not live members are sent a join:
    /// this is how a healed partition or a restarted seed merges back.
    pub rejoin_interval: Duration,
    /// How often a full state exchange with one random member runs (anti-entropy).
    pub sync_interval: Duration,
    /// How long dead and departed members are remembered (so stale news cannot revive
    /// them).
    pub dead_retention: Duration,
    /// Lifeguard local health: the largest multiplier (+1) applied to the probe interval
    /// and timeout when this node sees signs that it is itself slow.
    pub max_local_health: u32,
}

impl Timing {
    /// The `default` profile: a probe starts every 50 ms, each with a direct timeout of
    /// 40 ms and 100 ms in all (3 indirect probes), suspicion 200-400 ms (Lifeguard),
    /// gossip every 50 ms.
    pub fn fast() -> Timing {
        Timing {
            probe_interval: Duration::from_millis(50),
            probe_timeout: Duration::from_millis(40),
            probe_deadline: Duration::from_millis(100),
            indirect_probes: 3,
            suspicion_timeout: Duration::from_millis(200),
            suspicion_max_multiplier: 2,
            suspicion_confirmations: 2,
            gossip_interval: Duration::from_millis(50),
            gossip_fanout: 3,
            retransmit_multiplier: 4,
            rejoin_interval: Duration::from_millis(200),
            sync_interval: Duration::from_secs(10),
            dead_retention: Duration::from_secs(60),
            max_local_health: 8,
        }
    }

    /// The `conservative` profile: memberlist's LAN timing (probe every 1 s, direct
    /// timeout 500 ms, 1 s in all, suspicion 4 s × log10(n), up to 6 × that without
    /// confirmations, gossip 200 ms).
    pub fn conservative() -> Timing {
        Timing {
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            probe_deadline: Duration::from_secs(1),
            indirect_probes: 3,
            suspicion_timeout: Duration::from_secs(4),
            suspicion_max_multiplier: 6,
            suspicion_confirmations: 2,
            gossip_interval: Duration::from_millis(200),
            gossip_fanout: 3,
            retransmit_multiplier: 4,
            rejoin_interval: Duration::from_secs(5),
            sync_interval: Duration::from_secs(30),
            dead_retention: Duration::from_secs(120),
            max_local_health: 8,
        }
    }

    /// A profile's timings by name (`default` or `conservative`).
    pub fn profile(name: &str) -> Result<Timing, ConfigError> {
        Ok(name.parse::<Profile>()?.timing())
    }

    /// Checks that every duration is positive and that they are in a workable order.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("probe_interval", self.probe_interval),
            ("probe_timeout", self.probe_timeout),
            ("probe_deadline", self.probe_deadline),
            ("suspicion_timeout", self.suspicion_timeout),
            ("gossip_interval", self.gossip_interval),
            ("rejoin_interval", self.rejoin_interval),
            ("sync_interval", self.sync_interval),
        ];
        for (name, d) in positive {
            if d.is_zero() {
                return Err(ConfigError::Timing(format!("{name} must be positive")));
            }
        }
        if self.probe_timeout >= self.probe_deadline {
            return Err(ConfigError::Timing(format!(
                "probe_timeout ({:?}) must be shorter than probe_deadline ({:?})",
                self.probe_timeout, self.probe_deadline
            )));
        }
        if self.suspicion_max_multiplier == 0 {
            return Err(ConfigError::Timing(
                "suspicion_max_multiplier must be at least 1".into(),
            ));
        }
        if self.retransmit_multiplier == 0 || self.gossip_fanout == 0 {
            return Err(ConfigError::Timing(
                "retransmit_multiplier and gossip_fanout must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

impl Default for Timing {
    fn default() -> Timing {
        Timing::fast()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_by_name_are_valid() {
        for name in ["default", "conservative"] {
            let t = Timing::profile(name).unwrap();
            t.validate().unwrap();
            assert_eq!(name.parse::<Profile>().unwrap().to_string(), name);
        }
        assert!(matches!(
            Timing::profile("turbo"),
            Err(ConfigError::Profile(_))
        ));
        let mut t = Timing::fast();
        t.probe_timeout = t.probe_deadline;
        assert!(t.validate().is_err());
    }
}
