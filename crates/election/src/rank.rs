//! The order of candidates for one address.

use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// The tie-breaking key of a node for an address: `sha256(node + "#" + ip)`.
pub fn hash_key(node: &str, ip: IpAddr) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update(b"#");
    h.update(ip.to_string().as_bytes());
    h.finalize().into()
}

/// Orders candidate nodes for `ip`: highest preference score first, then by
/// [`hash_key`] ascending, then by name (a hash tie cannot happen in practice, but the
/// order must not depend on the input order). The first node is the owner.
pub fn rank_nodes<'a>(
    ip: IpAddr,
    candidates: impl IntoIterator<Item = (&'a str, u32)>,
) -> Vec<&'a str> {
    let mut keyed: Vec<(u32, [u8; 32], &str)> = candidates
        .into_iter()
        .map(|(node, score)| (score, hash_key(node, ip), node))
        .collect();
    keyed.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(b.2)));
    keyed.dedup_by(|a, b| a.2 == b.2);
    keyed.into_iter().map(|(_, _, n)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metallb_vectors() {
        let nodes = [("node-a", 0), ("node-b", 0), ("node-c", 0)];
        assert_eq!(
            rank_nodes("10.0.0.1".parse().unwrap(), nodes),
            ["node-b", "node-a", "node-c"]
        );
        assert_eq!(
            rank_nodes("10.0.0.2".parse().unwrap(), nodes),
            ["node-b", "node-c", "node-a"]
        );
    }

    #[test]
    fn preference_beats_hash_and_input_order_does_not_matter() {
        let ip = "10.0.0.1".parse().unwrap();
        assert_eq!(
            rank_nodes(ip, [("node-a", 0), ("node-b", 0), ("node-c", 10)])[0],
            "node-c"
        );
        let forward = rank_nodes(ip, [("node-a", 5), ("node-b", 5), ("node-c", 1)]);
        let backward = rank_nodes(ip, [("node-c", 1), ("node-b", 5), ("node-a", 5)]);
        assert_eq!(forward, backward);
        assert_eq!(forward, ["node-b", "node-a", "node-c"]);
    }

    #[test]
    fn removing_a_node_keeps_the_relative_order_of_the_rest() {
        // Only the owner's departure moves an address: others keep their ranking.
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let names: Vec<String> = (0..20).map(|i| format!("node-{i}")).collect();
        let all = rank_nodes(ip, names.iter().map(|n| (n.as_str(), 0)));
        for gone in &names {
            let rest = rank_nodes(
                ip,
                names.iter().filter(|n| *n != gone).map(|n| (n.as_str(), 0)),
            );
            let expected: Vec<&str> = all.iter().copied().filter(|n| n != gone).collect();
            assert_eq!(rest, expected);
        }
    }
}
