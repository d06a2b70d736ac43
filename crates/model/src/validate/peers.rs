//! `BGPPeer` rules: AS numbers, where to connect, timers, password, BFD profile, and no
//! two peers describing the same session.

use super::duration::parse_go_duration;
use super::selectors::check_selectors;
use super::{Ctx, Obj, name_objects};
use crate::Snapshot;
use crate::config::{BfdProfile, Password, Peer, PeerAsn};
use crate::crd::{BGPPeer, DynamicAsn, SecretReference};
use k8s_openapi::api::core::v1::Secret;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// The Secret type a password Secret must have.
const BASIC_AUTH: &str = "kubernetes.io/basic-auth";

/// Checks the peers; returns every named peer (the first of each name), built from what
/// parsed, so that rules spanning kinds can still look at it.
pub(crate) fn check(
    ctx: &mut Ctx,
    snapshot: &Snapshot,
    bfd_profiles: &BTreeMap<String, BfdProfile>,
) -> BTreeMap<String, Peer> {
    let peers = &snapshot.bgp_peers;
    let named = name_objects(
        ctx,
        "BGPPeer",
        peers.iter().map(|p| p.metadata.name.as_deref()),
    );
    let mut out = BTreeMap::new();
    // Session identity → the peer that first had it.
    let mut sessions: Vec<(SessionKey, String)> = Vec::new();
    for (n, p) in named.iter().zip(peers) {
        let peer = check_peer(ctx, &n.obj, p, &snapshot.secrets, bfd_profiles);
        if let Some(key) = session_key(&peer) {
            if let Some((_, first)) = sessions.iter().find(|(k, _)| *k == key) {
                ctx.push(n.obj.problem(
                    "",
                    format!(
                        "describes the same session as BGPPeer/{first} (same address or interface, port, VRF, AS numbers and node selectors): remove one"
                    ),
                ));
            } else {
                sessions.push((key, n.obj.name.clone()));
            }
        }
        if n.first {
            out.insert(n.obj.name.clone(), peer);
        }
    }
    out
}

fn check_peer(
    ctx: &mut Ctx,
    obj: &Obj,
    p: &BGPPeer,
    secrets: &[Secret],
    bfd_profiles: &BTreeMap<String, BfdProfile>,
) -> Peer {
    let s = &p.spec;

    // AS numbers.
    if s.my_asn == 0 {
        ctx.push(obj.problem(
            "spec.myASN",
            "missing local ASN: set myASN to our AS number (1-4294967295)",
        ));
    }
    let peer_asn = match (s.peer_asn, s.dynamic_asn) {
        (0, None) => {
            ctx.push(obj.problem(
                "spec.peerASN",
                "missing peer ASN: set peerASN to the router's AS number, or dynamicASN to internal or external",
            ));
            PeerAsn::Fixed(0)
        }
        (asn, Some(_)) if asn != 0 => {
            ctx.push(obj.problem(
                "spec.dynamicASN",
                "peerASN and dynamicASN are both set: keep only one",
            ));
            PeerAsn::Fixed(asn)
        }
        (_, Some(mode)) => PeerAsn::Dynamic(mode),
        (asn, None) => PeerAsn::Fixed(asn),
    };
    if s.local_asn == Some(0) {
        ctx.push(obj.problem(
            "spec.localASN",
            "0 is not an AS number: remove localASN or set it to 1-4294967295",
        ));
    }
    let ibgp = match peer_asn {
        PeerAsn::Fixed(asn) => asn == s.my_asn,
        PeerAsn::Dynamic(mode) => mode == DynamicAsn::Internal,
    };
    if s.ebgp_multi_hop && ibgp {
        ctx.push(obj.problem(
            "spec.ebgpMultiHop",
            "ebgpMultiHop is set on an iBGP peer (its AS is our AS): remove it, it applies to eBGP only",
        ));
    }

    // Where to connect.
    let mut address = None;
    match (s.peer_address.is_empty(), s.interface.is_empty()) {
        (true, true) => ctx.push(obj.problem(
            "spec.peerAddress",
            "missing peer address: set peerAddress to the router's IP address, or interface for BGP unnumbered",
        )),
        (false, false) => ctx.push(obj.problem(
            "spec.interface",
            "peerAddress and interface are both set: keep peerAddress, or interface for BGP unnumbered",
        )),
        _ => {}
    }
    if !s.peer_address.is_empty() {
        match s.peer_address.parse::<IpAddr>() {
            Ok(ip) => address = Some(ip),
            Err(_) => ctx.push(obj.problem(
                "spec.peerAddress",
                format!("{:?} is not an IP address", s.peer_address),
            )),
        }
    }
    let mut source_address = None;
    if !s.source_address.is_empty() {
        match s.source_address.parse::<IpAddr>() {
            Ok(ip) => source_address = Some(ip),
            Err(_) => ctx.push(obj.problem(
                "spec.sourceAddress",
                format!("{:?} is not an IP address", s.source_address),
            )),
        }
    }
    let mut router_id = None;
    if !s.router_id.is_empty() {
        match s.router_id.parse::<Ipv4Addr>() {
            Ok(ip) => router_id = Some(ip),
            Err(_) => ctx.push(obj.problem(
                "spec.routerID",
                format!(
                    "{:?} is not an IPv4 address: a BGP router ID is written as one (such as 10.0.0.1)",
                    s.router_id
                ),
            )),
        }
    }
    if s.peer_port == 0 || s.peer_port > 16384 {
        ctx.push(obj.problem(
            "spec.peerPort",
            format!(
                "{} is out of range: use 1 to 16384 (179 by default)",
                s.peer_port
            ),
        ));
    }

    // Timers.
    let (hold_time, keepalive_time) = timers(ctx, obj, p);
    let connect_time = s.connect_time.as_deref().and_then(|text| {
        let d = parse_duration(ctx, obj, "spec.connectTime", text)?;
        let secs = d.as_secs();
        if !(1..=65535).contains(&secs) {
            ctx.push(obj.problem(
                "spec.connectTime",
                format!("{text:?} is out of range: use 1s to 65535s"),
            ));
            None
        } else if d.subsec_millis() != 0 {
            ctx.push(obj.problem(
                "spec.connectTime",
                format!("{text:?} is not a whole number of seconds"),
            ));
            None
        } else {
            Some(Duration::from_secs(secs))
        }
    });

    // Password.
    let secret_ref = s.password_secret.as_ref().filter(|r| !r.name.is_empty());
    let mut password = (!s.password.is_empty()).then(|| Password(s.password.clone()));
    if let Some(r) = secret_ref {
        if password.is_some() {
            ctx.push(obj.problem(
                "spec.password",
                "password and passwordSecret are both set: keep only one",
            ));
        } else {
            let ns = p.metadata.namespace.as_deref().unwrap_or_default();
            password = secret_password(ctx, obj, r, ns, secrets).map(Password);
        }
    }

    // BFD profile.
    let bfd_profile = (!s.bfd_profile.is_empty()).then(|| s.bfd_profile.clone());
    if let Some(name) = bfd_profile
        .as_ref()
        .filter(|n| !bfd_profiles.contains_key(*n))
    {
        ctx.push(
            obj.problem(
                "spec.bfdProfile",
                format!("BFDProfile {name:?} does not exist: create it, or remove bfdProfile"),
            )
            .transient(),
        );
    }

    Peer {
        name: obj.name.clone(),
        my_asn: s.my_asn,
        peer_asn,
        local_asn: s.local_asn,
        address,
        interface: (!s.interface.is_empty()).then(|| s.interface.clone()),
        source_address,
        port: s.peer_port,
        hold_time,
        keepalive_time,
        connect_time,
        router_id,
        node_selectors: check_selectors(ctx, obj, "spec.nodeSelectors", &s.node_selectors),
        password,
        bfd_profile,
        graceful_restart: s.enable_graceful_restart,
        ebgp_multihop: s.ebgp_multi_hop,
        vrf: (!s.vrf.is_empty()).then(|| s.vrf.clone()),
        disable_mp: s.disable_mp,
        dual_stack: s.dual_stack_address_family,
    }
}

fn parse_duration(ctx: &mut Ctx, obj: &Obj, field: &str, text: &str) -> Option<Duration> {
    match parse_go_duration(text) {
        Ok(d) => Some(d),
        Err(e) => {
            ctx.push(obj.problem(field, e));
            None
        }
    }
}

/// Hold and keepalive times as MetalLB derives them: given only the hold time, the
/// keepalive time is a third of it; given only the keepalive time, the hold time is
/// three times it. The hold time, in whole seconds, must be 0 or at least 3, and the
/// keepalive time at most the hold time.
fn timers(ctx: &mut Ctx, obj: &Obj, p: &BGPPeer) -> (Option<Duration>, Option<Duration>) {
    let s = &p.spec;
    let hold_text = s.hold_time.as_deref();
    let ka_text = s.keepalive_time.as_deref();
    let hold = hold_text.map(|t| parse_duration(ctx, obj, "spec.holdTime", t));
    let ka = ka_text.map(|t| parse_duration(ctx, obj, "spec.keepaliveTime", t));
    let (hold, ka) = match (hold, ka) {
        (None, None) => return (None, None),
        (Some(None), _) | (_, Some(None)) => return (None, None),
        (Some(Some(h)), Some(Some(k))) => (h, k),
        (Some(Some(h)), None) => (h, h / 3),
        (None, Some(Some(k))) => match k.checked_mul(3) {
            Some(h) => (h, k),
            None => {
                ctx.push(obj.problem(
                    "spec.keepaliveTime",
                    "too long: the hold time, three times it, would overflow",
                ));
                return (None, None);
            }
        },
    };
    let mut ok = true;
    let secs = hold.as_secs();
    if secs != 0 && secs < 3 {
        ok = false;
        let message = match hold_text {
            Some(t) => format!("{t:?} is too short: use 0 (no keepalives) or at least 3s"),
            None => format!(
                "with no holdTime, the hold time is three times keepaliveTime ({hold:?}), which is too short: it must be 0 or at least 3s"
            ),
        };
        let field = if hold_text.is_some() {
            "spec.holdTime"
        } else {
            "spec.keepaliveTime"
        };
        ctx.push(obj.problem(field, message));
    }
    if ka > hold {
        ok = false;
        ctx.push(obj.problem(
            "spec.keepaliveTime",
            format!(
                "{:?} is longer than the hold time {:?}: the keepalive time must not exceed it (a third of it is usual)",
                ka_text.unwrap_or_default(),
                hold_text.unwrap_or_default()
            ),
        ));
    }
    if ok {
        (Some(hold), Some(ka))
    } else {
        (None, None)
    }
}

/// The password held by the referenced Secret, reporting what prevents reading it. The
/// Secret is looked up by name in the reference's namespace, else the peer's (objects
/// without a namespace, as in a manifest directory, match any).
fn secret_password(
    ctx: &mut Ctx,
    obj: &Obj,
    r: &SecretReference,
    peer_namespace: &str,
    secrets: &[Secret],
) -> Option<String> {
    let ns = if r.namespace.is_empty() {
        peer_namespace
    } else {
        r.namespace.as_str()
    };
    let shown = if ns.is_empty() {
        format!("Secret {:?}", r.name)
    } else {
        format!("Secret {ns}/{}", r.name)
    };
    let field = "spec.passwordSecret";
    let secret = secrets.iter().find(|sec| {
        let sec_ns = sec.metadata.namespace.as_deref().unwrap_or_default();
        sec.metadata.name.as_deref() == Some(r.name.as_str())
            && (ns.is_empty() || sec_ns.is_empty() || sec_ns == ns)
    });
    let Some(secret) = secret else {
        ctx.push(
            obj.problem(
                field,
                format!(
                    "{shown} does not exist: create it (type {BASIC_AUTH}, with the password under the key \"password\")"
                ),
            )
            .transient(),
        );
        return None;
    };
    let kind = secret.type_.as_deref().unwrap_or("Opaque");
    if kind != BASIC_AUTH {
        ctx.push(obj.problem(
            field,
            format!("{shown} is of type {kind:?}: it must be of type {BASIC_AUTH}"),
        ));
        return None;
    }
    let from_string = secret
        .string_data
        .as_ref()
        .and_then(|d| d.get("password"))
        .cloned();
    let from_data = secret
        .data
        .as_ref()
        .and_then(|d| d.get("password"))
        .map(|b| String::from_utf8(b.0.clone()));
    match (from_string, from_data) {
        (Some(pw), _) | (None, Some(Ok(pw))) => Some(pw),
        (None, Some(Err(_))) => {
            ctx.push(obj.problem(
                field,
                format!("the \"password\" key of {shown} is not valid UTF-8 text"),
            ));
            None
        }
        (None, None) => {
            ctx.push(obj.problem(
                field,
                format!("{shown} has no \"password\" key: put the password under that key"),
            ));
            None
        }
    }
}

/// What makes two peers the same session.
#[derive(PartialEq)]
struct SessionKey {
    target: String,
    port: u16,
    vrf: Option<String>,
    my_asn: u32,
    peer_asn: PeerAsn,
    local_asn: Option<u32>,
    node_selectors: Vec<String>,
}

fn session_key(p: &Peer) -> Option<SessionKey> {
    let target = match (&p.address, &p.interface) {
        (Some(ip), _) => ip.to_string(),
        (None, Some(i)) => format!("interface {i}"),
        (None, None) => return None,
    };
    // No selector and an empty selector both mean every node.
    let mut node_selectors: Vec<String> = if p.node_selectors.iter().any(|s| s.is_everything()) {
        Vec::new()
    } else {
        p.node_selectors.iter().map(|s| s.to_string()).collect()
    };
    node_selectors.sort();
    node_selectors.dedup();
    Some(SessionKey {
        target,
        port: p.port,
        vrf: p.vrf.clone(),
        my_asn: p.my_asn,
        peer_asn: p.peer_asn,
        local_asn: p.local_asn,
        node_selectors,
    })
}
