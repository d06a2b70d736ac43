//! The address entries of an `IPAddressPool`: CIDRs and inclusive ranges `a-b`, and the
//! summarisation of a range into the fewest CIDRs.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Parses one entry of `spec.addresses`: a CIDR (`192.0.2.0/24`; host bits are masked,
/// as Go's `net.ParseCIDR` does) or an inclusive range `a-b` of one family (spaces
/// around either address are ignored, as MetalLB does), which becomes the fewest CIDRs
/// covering exactly the range, in ascending order.
///
/// The error says what is wrong with the entry, for use after a field path.
pub fn parse_pool_address(entry: &str) -> Result<Vec<IpNet>, String> {
    let Some((start_text, end_text)) = entry.split_once('-') else {
        return parse_cidr(entry).map(|n| vec![n]);
    };
    let ip = |part: &str, which: &str| {
        let part = part.trim();
        part.parse::<IpAddr>().map_err(|_| {
            let hint = if part.contains('/') {
                " (the ends of a range are plain addresses, without a prefix length)"
            } else {
                ""
            };
            format!(
                "{entry:?} is not a valid range: its {which} {part:?} is not an IP address{hint}"
            )
        })
    };
    let start = ip(start_text, "start");
    let end = ip(end_text, "end");
    let (start, end) = match (start, end) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(_), Err(_)) => return Err(neither(entry)),
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    if start.is_ipv4() != end.is_ipv4() {
        return Err(format!(
            "{entry:?} is not a valid range: it mixes IPv4 and IPv6 (start {start}, end {end}); a range must be of one family"
        ));
    }
    if start > end {
        return Err(format!(
            "{entry:?} is a reversed range: start {start} is after end {end}"
        ));
    }
    summarize_range(start, end).ok_or_else(|| format!("{entry:?} is not a valid range"))
}

/// A CIDR, masked. A bare address is refused with a hint.
fn parse_cidr(entry: &str) -> Result<IpNet, String> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        return Err(format!(
            "{entry:?} is an address without a prefix length: use {ip}/{bits} for a single address"
        ));
    }
    let Some((addr, len)) = entry.split_once('/') else {
        return Err(neither(entry));
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return Err(format!(
            "{entry:?} is not a valid CIDR: {addr:?} is not an IP address"
        ));
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = (!len.is_empty() && len.len() <= 3 && len.bytes().all(|b| b.is_ascii_digit()))
        .then(|| len.parse::<u8>().ok())
        .flatten()
        .filter(|l| *l <= max)
        .ok_or_else(|| {
            format!("{entry:?} is not a valid CIDR: the prefix length {len:?} is not a number from 0 to {max}")
        })?;
    IpNet::new(addr, len)
        .map(|n| n.trunc())
        .map_err(|_| format!("{entry:?} is not a valid CIDR"))
}

fn neither(entry: &str) -> String {
    format!("{entry:?} is neither a CIDR (192.0.2.0/24) nor a range (192.0.2.10-192.0.2.20)")
}

/// The fewest CIDRs covering exactly the inclusive range `start..=end`, in ascending
/// order. `None` when the two addresses are of different families or `start > end`.
pub fn summarize_range(start: IpAddr, end: IpAddr) -> Option<Vec<IpNet>> {
    match (start, end) {
        (IpAddr::V4(s), IpAddr::V4(e)) => Some(
            summarize(u128::from(u32::from(s)), u128::from(u32::from(e)), 32)?
                .into_iter()
                .filter_map(|(net, len)| {
                    let net = u32::try_from(net).ok()?;
                    Ipv4Net::new(Ipv4Addr::from(net), len).ok().map(IpNet::V4)
                })
                .collect(),
        ),
        (IpAddr::V6(s), IpAddr::V6(e)) => Some(
            summarize(u128::from(s), u128::from(e), 128)?
                .into_iter()
                .filter_map(|(net, len)| Ipv6Net::new(Ipv6Addr::from(net), len).ok().map(IpNet::V6))
                .collect(),
        ),
        _ => None,
    }
}

/// `(network, prefix length)` blocks covering `start..=end` in an address space of `bits`
/// bits: at each step the largest aligned block starting at `start` that does not pass
/// `end`.
fn summarize(mut start: u128, end: u128, bits: u8) -> Option<Vec<(u128, u8)>> {
    if start > end {
        return None;
    }
    let mut out = Vec::new();
    loop {
        // Block size 2^k, k limited by the alignment of start and by the space.
        let mut k = start.trailing_zeros().min(u32::from(bits));
        let span = loop {
            let span = if k >= 128 {
                u128::MAX
            } else {
                (1u128 << k) - 1
            };
            if span <= end - start {
                break span;
            }
            k -= 1;
        };
        let k = u8::try_from(k).ok()?;
        out.push((start, bits - k));
        let last = start + span;
        if last >= end {
            return Some(out);
        }
        start = last + 1;
    }
}

/// The first and last address of a CIDR, as numbers, and whether it is IPv4.
pub(crate) fn bounds(net: &IpNet) -> (bool, u128, u128) {
    match net {
        IpNet::V4(n) => (
            true,
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        IpNet::V6(n) => (false, u128::from(n.network()), u128::from(n.broadcast())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn cidrs() {
        assert_eq!(
            parse_pool_address("192.0.2.0/24"),
            Ok(nets(&["192.0.2.0/24"]))
        );
        assert_eq!(
            parse_pool_address("192.0.2.10/24"),
            Ok(nets(&["192.0.2.0/24"]))
        );
        assert_eq!(
            parse_pool_address("2001:db8::1/64"),
            Ok(nets(&["2001:db8::/64"]))
        );
        assert_eq!(parse_pool_address("0.0.0.0/0"), Ok(nets(&["0.0.0.0/0"])));
        for bad in [
            "192.0.2.0/33",
            "192.0.2.0/",
            "192.0.2/24",
            "2001:db8::/129",
            "x",
            "",
            "192.0.2.0/+8",
            " 192.0.2.0/24",
        ] {
            assert!(parse_pool_address(bad).is_err(), "{bad:?}");
        }
        let e = parse_pool_address("192.0.2.1").unwrap_err();
        assert!(e.contains("use 192.0.2.1/32 for a single address"), "{e}");
        let e = parse_pool_address("2001:db8::1").unwrap_err();
        assert!(e.contains("use 2001:db8::1/128"), "{e}");
    }

    #[test]
    fn ranges() {
        assert_eq!(
            parse_pool_address("192.0.2.10 - 192.0.2.20"),
            Ok(nets(&[
                "192.0.2.10/31",
                "192.0.2.12/30",
                "192.0.2.16/30",
                "192.0.2.20/32"
            ]))
        );
        assert_eq!(
            parse_pool_address("192.0.2.0-192.0.2.255"),
            Ok(nets(&["192.0.2.0/24"]))
        );
        assert_eq!(
            parse_pool_address("192.0.2.7-192.0.2.7"),
            Ok(nets(&["192.0.2.7/32"]))
        );
        assert_eq!(
            parse_pool_address("0.0.0.0-255.255.255.255"),
            Ok(nets(&["0.0.0.0/0"]))
        );
        assert_eq!(
            parse_pool_address("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            Ok(nets(&["::/0"]))
        );
        assert_eq!(
            parse_pool_address("2001:db8::1-2001:db8::3"),
            Ok(nets(&["2001:db8::1/128", "2001:db8::2/127"]))
        );
        let e = parse_pool_address("192.0.2.10-192.0.2.1").unwrap_err();
        assert!(
            e.contains("reversed range: start 192.0.2.10 is after end 192.0.2.1"),
            "{e}"
        );
        let e = parse_pool_address("192.0.2.1-2001:db8::1").unwrap_err();
        assert!(e.contains("mixes IPv4 and IPv6"), "{e}");
        let e = parse_pool_address("192.0.2.0/24-192.0.2.9").unwrap_err();
        assert!(e.contains("start"), "{e}");
        assert!(parse_pool_address("192.0.2.1-").is_err());
        assert!(parse_pool_address("192.0.2.1-192.0.2.5-192.0.2.9").is_err());
    }
}
