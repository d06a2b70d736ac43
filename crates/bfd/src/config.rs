//! Session settings: MetalLB's `BFDProfile` (milliseconds, with its defaults and ranges)
//! and the session configuration the state machine uses.

use std::time::Duration;

use thiserror::Error;

/// A MetalLB `BFDProfile`'s values (metallb.io/v1beta1), intervals in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfdProfile {
    /// `receiveInterval`: the minimum interval we can receive control packets at,
    /// 10-60000 ms, default 300.
    pub receive_interval_ms: u32,
    /// `transmitInterval`: the minimum interval we want to send control packets at,
    /// 10-60000 ms, default 300.
    pub transmit_interval_ms: u32,
    /// `detectMultiplier`: packets that may be lost before the session is declared
    /// down, 2-255, default 3.
    pub detect_multiplier: u32,
    /// `echoInterval`: 10-60000 ms, default 50. Validated; echo is not implemented.
    pub echo_interval_ms: u32,
    /// `echoMode`: the Echo function is not implemented; `true` is accepted and the
    /// session runs in asynchronous mode alone (the agent warns).
    pub echo_mode: bool,
    /// `passiveMode`: do not send until the peer has sent a packet.
    pub passive_mode: bool,
    /// `minimumTtl`: the lowest TTL accepted on multihop sessions, 1-254, default 254.
    pub minimum_ttl: u32,
}

impl Default for BfdProfile {
    fn default() -> Self {
        BfdProfile {
            receive_interval_ms: 300,
            transmit_interval_ms: 300,
            detect_multiplier: 3,
            echo_interval_ms: 50,
            echo_mode: false,
            passive_mode: false,
            minimum_ttl: 254,
        }
    }
}

/// A [`BfdProfile`] value outside MetalLB's range.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ProfileError {
    /// A field outside its allowed range.
    #[error("{field} = {value} is outside {min}..={max}")]
    OutOfRange {
        /// The MetalLB field name.
        field: &'static str,
        /// The value given.
        value: u32,
        /// Lowest allowed.
        min: u32,
        /// Highest allowed.
        max: u32,
    },
}

fn check(field: &'static str, value: u32, min: u32, max: u32) -> Result<(), ProfileError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ProfileError::OutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

impl BfdProfile {
    /// Checks MetalLB's ranges.
    pub fn validate(&self) -> Result<(), ProfileError> {
        check("receiveInterval", self.receive_interval_ms, 10, 60_000)?;
        check("transmitInterval", self.transmit_interval_ms, 10, 60_000)?;
        check("detectMultiplier", self.detect_multiplier, 2, 255)?;
        check("echoInterval", self.echo_interval_ms, 10, 60_000)?;
        check("minimumTtl", self.minimum_ttl, 1, 254)?;
        Ok(())
    }

    /// The session configuration for this profile: single hop (RFC 5881, TTL 255
    /// required) or multihop (RFC 5883, TTL at least `minimumTtl`).
    pub fn session_config(&self, multihop: bool) -> Result<SessionConfig, ProfileError> {
        self.validate()?;
        let ms = |v: u32| Duration::from_millis(u64::from(v));
        Ok(SessionConfig {
            desired_min_tx: ms(self.transmit_interval_ms),
            required_min_rx: ms(self.receive_interval_ms),
            // validate() bounded it to 2..=255.
            detect_mult: u8::try_from(self.detect_multiplier).unwrap_or(u8::MAX),
            passive: self.passive_mode,
            ttl_check: if multihop {
                TtlCheck::Minimum(u8::try_from(self.minimum_ttl).unwrap_or(254))
            } else {
                TtlCheck::SingleHop
            },
        })
    }
}

/// Which received TTL / hop limit values a session accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtlCheck {
    /// RFC 5881 §5: exactly 255.
    SingleHop,
    /// RFC 5883 §5: at least this value.
    Minimum(u8),
}

impl TtlCheck {
    /// Whether a received TTL passes.
    pub fn accepts(self, ttl: u8) -> bool {
        match self {
            TtlCheck::SingleHop => ttl == 255,
            TtlCheck::Minimum(min) => ttl >= min,
        }
    }
}

/// One session's configuration (RFC 5880 §6.8.1 variables we choose).
///
/// Intervals are rounded down to whole microseconds on the wire and clamped to
/// `u32::MAX` µs. The RFC allows a detect multiplier of 1; MetalLB's range (2-255) is
/// enforced only by [`BfdProfile::validate`]. Zero is treated as 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// `bfd.DesiredMinTxInterval` once Up (at least 1 s is advertised while not Up).
    pub desired_min_tx: Duration,
    /// `bfd.RequiredMinRxInterval`.
    pub required_min_rx: Duration,
    /// `bfd.DetectMult`.
    pub detect_mult: u8,
    /// Passive role: send nothing until a packet from the peer arrives.
    pub passive: bool,
    /// TTL check for received packets.
    pub ttl_check: TtlCheck,
}

impl Default for SessionConfig {
    fn default() -> Self {
        BfdProfile::default()
            .session_config(false)
            .unwrap_or(SessionConfig {
                desired_min_tx: Duration::from_millis(300),
                required_min_rx: Duration::from_millis(300),
                detect_mult: 3,
                passive: false,
                ttl_check: TtlCheck::SingleHop,
            })
    }
}
