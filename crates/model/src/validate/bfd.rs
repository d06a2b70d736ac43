//! `BFDProfile` rules: names, and the ranges of the timers.

use super::{Ctx, name_objects};
use crate::config::BfdProfile;
use crate::crd::BFDProfile;
use std::collections::BTreeMap;

/// Checks the profiles; returns every named profile (the first of each name) with its
/// effective values, so that references to it resolve even when a value is out of range
/// (that is reported here).
pub(crate) fn check(ctx: &mut Ctx, profiles: &[BFDProfile]) -> BTreeMap<String, BfdProfile> {
    let named = name_objects(
        ctx,
        "BFDProfile",
        profiles.iter().map(|p| p.metadata.name.as_deref()),
    );
    let mut out = BTreeMap::new();
    for (n, p) in named.iter().zip(profiles) {
        let s = &p.spec;
        for (field, value, min, max, unit) in [
            (
                "spec.receiveInterval",
                s.receive_interval,
                10,
                60_000,
                " ms",
            ),
            (
                "spec.transmitInterval",
                s.transmit_interval,
                10,
                60_000,
                " ms",
            ),
            ("spec.echoInterval", s.echo_interval, 10, 60_000, " ms"),
            ("spec.detectMultiplier", s.detect_multiplier, 2, 255, ""),
            ("spec.minimumTtl", s.minimum_ttl, 1, 254, ""),
        ] {
            if let Some(v) = value.filter(|v| !(min..=max).contains(v)) {
                ctx.push(n.obj.problem(
                    field,
                    format!("{v} is out of range: use {min}{unit} to {max}{unit}"),
                ));
            }
        }
        if n.first {
            out.insert(
                n.obj.name.clone(),
                BfdProfile {
                    name: n.obj.name.clone(),
                    receive_interval: s.effective_receive_interval(),
                    transmit_interval: s.effective_transmit_interval(),
                    detect_multiplier: s.effective_detect_multiplier(),
                    echo_interval: s.effective_echo_interval(),
                    echo_mode: s.echo_mode.unwrap_or(false),
                    passive_mode: s.passive_mode.unwrap_or(false),
                    minimum_ttl: s.effective_minimum_ttl(),
                },
            );
        }
    }
    out
}
