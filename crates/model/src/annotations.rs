//! Annotation and label keys read and written on core objects, as MetalLB spells them.

/// Requested addresses, comma separated (at most one per family).
pub const LOAD_BALANCER_IPS: &str = "metallb.io/loadBalancerIPs";
/// Deprecated spelling of [`LOAD_BALANCER_IPS`].
pub const LOAD_BALANCER_IPS_LEGACY: &str = "metallb.universe.tf/loadBalancerIPs";
/// Requested pool.
pub const ADDRESS_POOL: &str = "metallb.io/address-pool";
/// Deprecated spelling of [`ADDRESS_POOL`].
pub const ADDRESS_POOL_LEGACY: &str = "metallb.universe.tf/address-pool";
/// Sharing key: Services with the same key may share an address.
pub const ALLOW_SHARED_IP: &str = "metallb.io/allow-shared-ip";
/// Deprecated spelling of [`ALLOW_SHARED_IP`].
pub const ALLOW_SHARED_IP_LEGACY: &str = "metallb.universe.tf/allow-shared-ip";
/// Written by the controller: the pool a Service's addresses came from.
pub const IP_ALLOCATED_FROM_POOL: &str = "metallb.io/ip-allocated-from-pool";
/// Node label that keeps a node from announcing load-balancer addresses.
pub const EXCLUDE_FROM_EXTERNAL_LB: &str =
    "node.kubernetes.io/exclude-from-external-load-balancers";

/// Reads an annotation under its current key, falling back to its deprecated key.
/// Returns the value and whether the deprecated key was used.
pub fn get<'a>(
    annotations: Option<&'a std::collections::BTreeMap<String, String>>,
    key: &str,
    legacy: &str,
) -> Option<(&'a str, bool)> {
    let a = annotations?;
    if let Some(v) = a.get(key) {
        return Some((v.as_str(), false));
    }
    a.get(legacy).map(|v| (v.as_str(), true))
}
