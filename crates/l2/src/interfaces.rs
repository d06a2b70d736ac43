//! Which interfaces to announce on.
//!
//! MetalLB's announcer (speaker/layer2 announcer, interface scan every 10 s) uses every
//! interface that is up, not enslaved to a bridge or bond, not NOARP and whose name does
//! not match its exclude list; ARP needs BROADCAST, NDP needs IPv6 on the interface. An
//! `L2Advertisement` may instead name interfaces ([`Interfaces::Named`]).
//!
//! Links are read over rtnetlink ([`discover`], with the `io` feature), not from
//! `/sys/class/net`: sysfs shows the network namespace it was mounted in, netlink the
//! namespace of the calling thread. The parsing here is sans-IO.

use crate::packet::MacAddr;
use crate::responder::InterfaceInfo;
use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

/// `IFF_UP`: administratively up.
pub const IFF_UP: u32 = 0x1;
/// `IFF_BROADCAST`: the link has a broadcast address.
pub const IFF_BROADCAST: u32 = 0x2;
/// `IFF_LOOPBACK`.
pub const IFF_LOOPBACK: u32 = 0x8;
/// `IFF_NOARP`: no address resolution on this link.
pub const IFF_NOARP: u32 = 0x80;
/// `ARPHRD_ETHER`: Ethernet link type.
pub const ARPHRD_ETHER: u16 = 1;

/// MetalLB's default interface exclude list, `^docker.*`, `^cbr.*`, `^dummy.*`,
/// `^virbr.*`, `^lxcbr.*`, `^veth.*`, `^lo$`, `^cali.*`, `^tunl.*`, `^flannel.*`,
/// `^kube-ipvs.*`, `^cni.*`, `^nodelocaldns.*`, `^lxc.*`, as (prefix, whole name only).
pub const DEFAULT_EXCLUDES: [(&str, bool); 14] = [
    ("docker", false),
    ("cbr", false),
    ("dummy", false),
    ("virbr", false),
    ("lxcbr", false),
    ("veth", false),
    ("lo", true),
    ("cali", false),
    ("tunl", false),
    ("flannel", false),
    ("kube-ipvs", false),
    ("cni", false),
    ("nodelocaldns", false),
    ("lxc", false),
];

/// The exclude pattern `name` matches, written as MetalLB writes it, if any.
pub fn excluded_by_default(name: &str) -> Option<String> {
    DEFAULT_EXCLUDES.iter().find_map(|&(prefix, whole)| {
        let hit = if whole {
            name == prefix
        } else {
            name.starts_with(prefix)
        };
        hit.then(|| {
            if whole {
                format!("^{prefix}$")
            } else {
                format!("^{prefix}.*")
            }
        })
    })
}

/// A network interface as the kernel describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub ifindex: u32,
    /// Name.
    pub name: String,
    /// `IFF_*` flags.
    pub flags: u32,
    /// `ARPHRD_*` link type.
    pub link_type: u16,
    /// Hardware address, when it is 6 bytes long.
    pub mac: Option<MacAddr>,
    /// Index of the bridge or bond this interface is enslaved to.
    pub master: Option<u32>,
    /// Whether the interface has an IPv6 address (a link-local one at least when IPv6
    /// is enabled on it).
    pub has_ipv6: bool,
}

/// Address family of an announced address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4: answered with ARP.
    V4,
    /// IPv6: answered with NDP.
    V6,
}

impl Family {
    /// The family of `ip`.
    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// Why an interface is not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Not administratively up.
    Down,
    /// Not Ethernet (no 6-byte MAC).
    NotEthernet,
    /// The loopback interface.
    Loopback,
    /// `IFF_NOARP` set.
    NoArp,
    /// No `IFF_BROADCAST`.
    NotBroadcast,
    /// A port of a bridge or bond (announce on the master instead).
    Enslaved {
        /// The master's index.
        master: u32,
    },
    /// Matches MetalLB's default exclude list (the pattern).
    Excluded(String),
    /// IPv6 is not enabled on it (no IPv6 address), for an IPv6 address.
    NoIpv6,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Down => f.write_str("down"),
            Rejection::NotEthernet => f.write_str("not Ethernet"),
            Rejection::Loopback => f.write_str("loopback"),
            Rejection::NoArp => f.write_str("NOARP"),
            Rejection::NotBroadcast => f.write_str("not broadcast-capable"),
            Rejection::Enslaved { master } => write!(f, "enslaved to interface {master}"),
            Rejection::Excluded(p) => write!(f, "excluded by default ({p})"),
            Rejection::NoIpv6 => f.write_str("IPv6 not enabled"),
        }
    }
}

impl Link {
    /// Why this link cannot carry announcements of `family`, if it cannot. The default
    /// exclude list applies only when the interface was not named explicitly: an
    /// `L2Advertisement` that lists `veth0` gets `veth0` (MetalLB would still exclude
    /// it and announce nowhere).
    pub fn rejection(&self, family: Family, named: bool) -> Option<Rejection> {
        if self.flags & IFF_UP == 0 {
            return Some(Rejection::Down);
        }
        if self.flags & IFF_LOOPBACK != 0 {
            return Some(Rejection::Loopback);
        }
        if self.link_type != ARPHRD_ETHER || self.mac.is_none() {
            return Some(Rejection::NotEthernet);
        }
        if self.flags & IFF_NOARP != 0 {
            return Some(Rejection::NoArp);
        }
        if self.flags & IFF_BROADCAST == 0 {
            return Some(Rejection::NotBroadcast);
        }
        if let Some(master) = self.master {
            return Some(Rejection::Enslaved { master });
        }
        if !named && let Some(pattern) = excluded_by_default(&self.name) {
            return Some(Rejection::Excluded(pattern));
        }
        if family == Family::V6 && !self.has_ipv6 {
            return Some(Rejection::NoIpv6);
        }
        None
    }

    /// The interface as the responder sees it (None without a MAC).
    pub fn info(&self) -> Option<InterfaceInfo> {
        Some(InterfaceInfo {
            ifindex: self.ifindex,
            name: self.name.clone(),
            mac: self.mac?,
        })
    }
}

/// Where to announce an address: the `interfaces` of the matching `L2Advertisement`s.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Interfaces {
    /// Every candidate interface (an empty `interfaces` list).
    #[default]
    All,
    /// These interfaces, by name.
    Named(BTreeSet<String>),
}

impl Interfaces {
    /// A named list.
    pub fn named<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Interfaces::Named(names.into_iter().map(Into::into).collect())
    }
}

/// The interfaces chosen for one address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Usable interfaces.
    pub selected: Vec<InterfaceInfo>,
    /// Named interfaces that do not exist.
    pub missing: Vec<String>,
    /// Named interfaces that exist but cannot be used, and why.
    pub rejected: Vec<(String, Rejection)>,
}

/// Picks the interfaces for an address of `family` among `links`.
pub fn select(links: &[Link], which: &Interfaces, family: Family) -> Selection {
    let mut out = Selection::default();
    match which {
        Interfaces::All => {
            out.selected = links
                .iter()
                .filter(|l| l.rejection(family, false).is_none())
                .filter_map(Link::info)
                .collect();
        }
        Interfaces::Named(names) => {
            for name in names {
                match links.iter().find(|l| &l.name == name) {
                    None => out.missing.push(name.clone()),
                    Some(link) => match (link.rejection(family, true), link.info()) {
                        (None, Some(info)) => out.selected.push(info),
                        (Some(why), _) => out.rejected.push((name.clone(), why)),
                        (None, None) => out.rejected.push((name.clone(), Rejection::NotEthernet)),
                    },
                }
            }
        }
    }
    out
}

/// Lists the links of the calling thread's network namespace over rtnetlink, with
/// whether each has an IPv6 address.
#[cfg(feature = "io")]
pub fn discover() -> std::io::Result<Vec<Link>> {
    crate::netlink::dump_links()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, flags: u32) -> Link {
        Link {
            ifindex: 2,
            name: name.into(),
            flags,
            link_type: ARPHRD_ETHER,
            mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
            master: None,
            has_ipv6: true,
        }
    }

    const OK: u32 = IFF_UP | IFF_BROADCAST;

    #[test]
    fn default_excludes_match_metallb() {
        for name in [
            "docker0",
            "cbr0",
            "dummy1",
            "virbr0",
            "lxcbr0",
            "veth12ab",
            "lo",
            "cali123",
            "tunl0",
            "flannel.1",
            "kube-ipvs0",
            "cni0",
            "nodelocaldns",
            "lxc9f",
        ] {
            assert!(excluded_by_default(name).is_some(), "{name}");
        }
        for name in [
            "eth0", "ens3", "bond0", "br0", "lo0", "eno1", "wlan0", "vlan10",
        ] {
            assert_eq!(excluded_by_default(name), None, "{name}");
        }
        assert_eq!(excluded_by_default("veth0").as_deref(), Some("^veth.*"));
        assert_eq!(excluded_by_default("lo").as_deref(), Some("^lo$"));
    }

    #[test]
    fn candidate_rules() {
        let v4 = Family::V4;
        assert_eq!(link("eth0", OK).rejection(v4, false), None);
        assert_eq!(
            link("eth0", IFF_BROADCAST).rejection(v4, false),
            Some(Rejection::Down)
        );
        assert_eq!(
            link("eth0", OK | IFF_NOARP).rejection(v4, false),
            Some(Rejection::NoArp)
        );
        assert_eq!(
            link("tun0", IFF_UP).rejection(v4, false),
            Some(Rejection::NotBroadcast)
        );
        assert_eq!(
            link("lo", IFF_UP | IFF_LOOPBACK).rejection(v4, true),
            Some(Rejection::Loopback)
        );
        let mut port = link("eth1", OK);
        port.master = Some(5);
        assert_eq!(
            port.rejection(v4, true),
            Some(Rejection::Enslaved { master: 5 })
        );
        assert_eq!(
            link("veth0", OK).rejection(v4, false),
            Some(Rejection::Excluded("^veth.*".into()))
        );
        assert_eq!(link("veth0", OK).rejection(v4, true), None);
        let mut no6 = link("eth0", OK);
        no6.has_ipv6 = false;
        assert_eq!(no6.rejection(v4, false), None);
        assert_eq!(no6.rejection(Family::V6, false), Some(Rejection::NoIpv6));
        let mut wg = link("wg0", OK);
        wg.mac = None;
        assert_eq!(wg.rejection(v4, true), Some(Rejection::NotEthernet));
    }

    #[test]
    fn selection_all_and_named() {
        let mut links = vec![
            link("eth0", OK),
            link("docker0", OK),
            link("eth1", IFF_BROADCAST),
        ];
        for (i, l) in links.iter_mut().enumerate() {
            l.ifindex = i as u32 + 2;
        }
        let all = select(&links, &Interfaces::All, Family::V4);
        assert_eq!(
            all.selected
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>(),
            ["eth0"]
        );
        assert!(all.missing.is_empty() && all.rejected.is_empty());
        let named = select(
            &links,
            &Interfaces::named(["docker0", "eth1", "eth9"]),
            Family::V4,
        );
        assert_eq!(
            named
                .selected
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>(),
            ["docker0"]
        );
        assert_eq!(named.missing, ["eth9"]);
        assert_eq!(named.rejected, [("eth1".to_string(), Rejection::Down)]);
    }
}
