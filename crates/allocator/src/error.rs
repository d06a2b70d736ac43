//! Why a Service gets no address, in words a user can act on.

use crate::ServiceKey;
use crate::request::{Family, FamilyPolicy, Port};
use std::fmt::Write as _;
use std::net::IpAddr;

/// The Kubernetes event reason of every [`AllocationError`] (as MetalLB's controller uses
/// for a Service it cannot give an address to).
pub const EVENT_REASON: &str = "AllocationFailed";

/// Why a Service got no address. `Display` is the reason, fit for a Warning event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    /// No pool the Service may use has a free address of the families it needs.
    #[error("no available IPs")]
    NoAvailableIps,
    /// The pool the Service asked for (`metallb.io/address-pool`) has no free address of
    /// the families it needs.
    #[error("no available IPs in pool \"{0}\"")]
    NoAvailableIpsInPool(String),
    /// The pool the Service asked for does not exist.
    #[error("pool \"{0}\" does not exist")]
    UnknownPool(String),
    /// The pool's `serviceAllocation` does not select this Service (by namespace or by
    /// Service labels).
    #[error("pool \"{0}\" is reserved by its serviceAllocation for other namespaces or services")]
    PoolNotAllowed(String),
    /// The pool asked for has no address of a family the Service needs.
    #[error("pool \"{pool}\" has no {family} addresses")]
    PoolLacksFamily {
        /// The pool.
        pool: String,
        /// The missing family.
        family: Family,
    },
    /// No pool the Service may use has addresses of its family at all.
    #[error("no pool this service may use has {0} addresses")]
    NoPoolForFamily(Family),
    /// A `RequireDualStack` Service, and no pool it may use has both families.
    #[error("RequireDualStack needs a pool with both IPv4 and IPv6 addresses")]
    NoDualStackPool,
    /// An address asked for lies in no pool.
    #[error("IP {0} is not in any pool")]
    NotInAnyPool(IpAddr),
    /// An address asked for ends in .0 or .255 and its pool avoids those.
    #[error("IP {ip} is in pool \"{pool}\", which avoids buggy IPs ending in .0 or .255")]
    BuggyIp {
        /// The address.
        ip: IpAddr,
        /// Its pool.
        pool: String,
    },
    /// The two addresses asked for are in different pools.
    #[error(
        "IPs {first} and {second} are in different pools (\"{first_pool}\" and \"{second_pool}\"); all IPs of a service come from one pool"
    )]
    DifferentPools {
        /// The first address.
        first: IpAddr,
        /// Its pool.
        first_pool: String,
        /// The second address.
        second: IpAddr,
        /// Its pool.
        second_pool: String,
    },
    /// The addresses asked for are not in the pool asked for.
    #[error("IP(s) {} are in pool \"{actual}\", not in the requested pool \"{requested}\"", ip_list(.ips))]
    PoolConflict {
        /// The addresses.
        ips: Vec<IpAddr>,
        /// The pool asked for by `metallb.io/address-pool`.
        requested: String,
        /// The pool the addresses are in.
        actual: String,
    },
    /// An address is held by another Service and the two may not share it.
    #[error("IP {ip} is already in use by {holder} and cannot be shared: {reason}")]
    IpInUse {
        /// The address.
        ip: IpAddr,
        /// A Service holding it (the one that has held it longest among those in the way).
        holder: ServiceKey,
        /// Why they may not share it.
        reason: SharingConflict,
    },
    /// Both ways of asking for addresses are used.
    #[error("both spec.loadBalancerIP and metallb.io/loadBalancerIPs are set")]
    BothIpFieldsSet,
    /// An address asked for is not an IP address.
    #[error("invalid {field}: {value:?} is not an IP address")]
    InvalidIp {
        /// Where it was asked for (annotation key or `spec.loadBalancerIP`).
        field: &'static str,
        /// The text.
        value: String,
    },
    /// More than two addresses are asked for.
    #[error("{field} lists {count} IPs; at most 2 (one IPv4 and one IPv6)")]
    TooManyIps {
        /// The annotation key.
        field: &'static str,
        /// How many.
        count: usize,
    },
    /// Two addresses of one family are asked for.
    #[error("{field} lists two {family} addresses; at most one of each family")]
    SameFamilyTwice {
        /// The annotation key.
        field: &'static str,
        /// The family.
        family: Family,
    },
    /// The addresses do not fit the Service's IP families and family policy.
    #[error(
        "IP(s) {} do not match the IP families of the service ({}, {policy})",
        ip_list(.ips),
        family_list(.families)
    )]
    FamilyMismatch {
        /// The addresses.
        ips: Vec<IpAddr>,
        /// The Service's families, primary first.
        families: Vec<Family>,
        /// The Service's family policy.
        policy: FamilyPolicy,
    },
    /// Addresses held are no longer the ones the Service asks for.
    #[error("IP(s) {} are not the requested IP(s) {}", ip_list(.ips), ip_list(.requested))]
    NotRequested {
        /// The addresses held.
        ips: Vec<IpAddr>,
        /// The addresses asked for.
        requested: Vec<IpAddr>,
    },
}

impl AllocationError {
    /// The Kubernetes event reason to report this error under: [`EVENT_REASON`].
    pub fn reason(&self) -> &'static str {
        EVENT_REASON
    }
}

/// Why a Service may not share an address with the Service holding it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SharingConflict {
    /// The holder has no sharing key.
    #[error("it does not allow sharing (no metallb.io/allow-shared-ip annotation)")]
    HolderDoesNotShare,
    /// This Service has no sharing key.
    #[error("this service does not allow sharing (no metallb.io/allow-shared-ip annotation)")]
    ServiceDoesNotShare,
    /// The sharing keys differ.
    #[error("sharing keys differ ({ours:?} here, {theirs:?} there)")]
    DifferentKey {
        /// This Service's key.
        ours: String,
        /// The holder's key.
        theirs: String,
    },
    /// One is `externalTrafficPolicy: Local` and the other not, or both are Local with
    /// different selectors.
    #[error(
        "externalTrafficPolicy or selector differ (Cluster and Local services never share; Local services share only with the same selector)"
    )]
    DifferentBackend,
    /// Both use a port.
    #[error("both use port {0}")]
    PortInUse(Port),
}

pub(crate) fn ip_list(ips: &[IpAddr]) -> String {
    let mut s = String::new();
    for (i, ip) in ips.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{ip}");
    }
    s
}

fn family_list(families: &[Family]) -> String {
    families
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
