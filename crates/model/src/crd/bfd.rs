//! `BFDProfile`: timers and modes of the BFD sessions attached to BGP peers.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a BFDProfile. Intervals are in milliseconds.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BFDProfile",
    plural = "bfdprofiles",
    namespaced,
    derive = "PartialEq",
    doc = "Settings of the BFD sessions of the BGP peers that name this profile.",
    printcolumn(
        name = "Passive Mode",
        type_ = "boolean",
        json_path = ".spec.passiveMode"
    ),
    printcolumn(
        name = "Transmit Interval",
        type_ = "integer",
        json_path = ".spec.transmitInterval"
    ),
    printcolumn(
        name = "Receive Interval",
        type_ = "integer",
        json_path = ".spec.receiveInterval"
    ),
    printcolumn(
        name = "Multiplier",
        type_ = "integer",
        json_path = ".spec.detectMultiplier"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BFDProfileSpec {
    /// Minimum interval between received control packets, 10-60000 ms (300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub receive_interval: Option<u32>,
    /// Minimum interval between sent control packets, 10-60000 ms (300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub transmit_interval: Option<u32>,
    /// Packets missed before the session is declared down, 2-255 (3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 255))]
    pub detect_multiplier: Option<u32>,
    /// Interval between echo packets, 10-60000 ms (50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub echo_interval: Option<u32>,
    /// Send echo packets (IPv4 single-hop peers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_mode: Option<bool>,
    /// Wait for the peer to start the session instead of starting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive_mode: Option<bool>,
    /// Lowest TTL accepted on multihop sessions, 1-254 (254).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 254))]
    pub minimum_ttl: Option<u32>,
}

impl BFDProfileSpec {
    /// Receive interval in force, in milliseconds.
    pub fn effective_receive_interval(&self) -> u32 {
        self.receive_interval.unwrap_or(300)
    }
    /// Transmit interval in force, in milliseconds.
    pub fn effective_transmit_interval(&self) -> u32 {
        self.transmit_interval.unwrap_or(300)
    }
    /// Detect multiplier in force.
    pub fn effective_detect_multiplier(&self) -> u32 {
        self.detect_multiplier.unwrap_or(3)
    }
    /// Echo interval in force, in milliseconds.
    pub fn effective_echo_interval(&self) -> u32 {
        self.echo_interval.unwrap_or(50)
    }
    /// Minimum TTL in force.
    pub fn effective_minimum_ttl(&self) -> u32 {
        self.minimum_ttl.unwrap_or(254)
    }
}
