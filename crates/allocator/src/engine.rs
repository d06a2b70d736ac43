//! The incremental allocator: pools, who holds which address, and the rules to hand out
//! more.

use crate::ServiceKey;
use crate::error::{AllocationError, SharingConflict};
use crate::fxhash::{FxBuildHasher, FxHasher};
use crate::request::{Family, FamilyPolicy, Port, Request, Sharing, fit_families, fit_pair};
use crate::space::{Holders, ServiceId, Space};
use ferrolb_model::crd::IPAddressPoolStatus;
use ferrolb_model::{Config, PoolAllocation};
use ipnet::IpNet;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The addresses a Service holds and the pool they come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The pool.
    pub pool: String,
    /// The addresses, in the Service's family order (one or two, of different families).
    pub ips: Vec<IpAddr>,
}

/// How much of a pool is used, for `IPAddressPool` status and metrics. Counts are
/// addresses (an address shared by several Services counts once); they saturate at
/// `u128::MAX` (only an IPv6 `::/0` pool reaches it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolUsage {
    /// IPv4 addresses assigned to Services.
    pub assigned_ipv4: u128,
    /// IPv6 addresses assigned to Services.
    pub assigned_ipv6: u128,
    /// IPv4 addresses still free (buggy ones excluded when the pool avoids them).
    pub available_ipv4: u128,
    /// IPv6 addresses still free.
    pub available_ipv6: u128,
}

impl PoolUsage {
    /// The counts as an `IPAddressPool` status, each clamped to `i64::MAX`.
    pub fn to_status(&self) -> IPAddressPoolStatus {
        let clamp = |v: u128| i64::try_from(v).unwrap_or(i64::MAX);
        IPAddressPoolStatus {
            assigned_ipv4: clamp(self.assigned_ipv4),
            assigned_ipv6: clamp(self.assigned_ipv6),
            available_ipv4: clamp(self.available_ipv4),
            available_ipv6: clamp(self.available_ipv6),
        }
    }
}

/// Addresses picked for a Service: one or two `(family, address as integer)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Picked {
    items: [(Family, u128); 2],
    len: usize,
}

impl Picked {
    fn one(x: (Family, u128)) -> Picked {
        Picked {
            items: [x, x],
            len: 1,
        }
    }

    fn two(x: (Family, u128), y: (Family, u128)) -> Picked {
        Picked {
            items: [x, y],
            len: 2,
        }
    }

    fn push(&mut self, x: (Family, u128)) {
        if self.len < 2 {
            self.items[self.len] = x;
            self.len += 1;
        }
    }

    fn as_slice(&self) -> &[(Family, u128)] {
        &self.items[..self.len]
    }
}

/// One CIDR of a pool as an inclusive integer interval.
#[derive(Clone, Copy, Debug)]
struct Range {
    family: Family,
    lo: u128,
    hi: u128,
}

#[derive(Clone, Debug)]
struct PoolState {
    name: String,
    auto_assign: bool,
    allocation: Option<PoolAllocation>,
    ranges: Vec<Range>,
    v4: Space,
    v6: Space,
    capacity_v4: u128,
    capacity_v6: u128,
}

impl PoolState {
    fn space(&self, family: Family) -> &Space {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    fn space_mut(&mut self, family: Family) -> &mut Space {
        match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }

    fn has(&self, family: Family) -> bool {
        self.ranges.iter().any(|r| r.family == family)
    }

    /// Whether the pool's `serviceAllocation` admits the Service: its namespace is
    /// listed or selected (when the pool names namespaces), and its labels are selected
    /// (when the pool has Service selectors). Pools without one admit every Service.
    fn admits(&self, req: &Request) -> bool {
        let Some(a) = &self.allocation else {
            return true;
        };
        let namespace_ok = (a.namespaces.is_empty() && a.namespace_selectors.is_empty())
            || a.namespaces.contains(&req.service.namespace)
            || req
                .namespace_labels
                .as_ref()
                .is_some_and(|labels| a.namespace_selectors.iter().any(|s| s.matches(labels)));
        let service_ok = a.service_selectors.is_empty()
            || a.service_selectors.iter().any(|s| s.matches(&req.labels));
        namespace_ok && service_ok
    }
}

/// What the allocator keeps about a Service holding addresses.
#[derive(Clone, Debug)]
struct Held {
    /// The Service's namespace and name, one after the other (one allocation).
    key: Box<str>,
    /// Length of the namespace in `key`.
    namespace_len: usize,
    pool: usize,
    /// Addresses in the Service's family order.
    addrs: Picked,
    /// Ports, kept only for Services that share (others never meet another holder).
    ports: Vec<Port>,
    sharing: Option<Sharing>,
    seq: u64,
}

impl Held {
    fn key(&self) -> (&str, &str) {
        self.key.split_at(self.namespace_len.min(self.key.len()))
    }

    fn is(&self, service: &ServiceKey) -> bool {
        self.key() == (service.namespace.as_str(), service.name.as_str())
    }

    fn service_key(&self) -> ServiceKey {
        let (namespace, name) = self.key();
        ServiceKey {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    fn ips(&self) -> Vec<IpAddr> {
        self.addrs
            .as_slice()
            .iter()
            .map(|(f, a)| to_ip(*f, *a))
            .collect()
    }
}

/// The incremental allocator: the pools of a [`Config`] and the addresses Services hold.
///
/// A controller keeps one between events and calls [`Allocator::assign`] for each
/// Service that changed and [`Allocator::release`] for each one deleted; [`crate::allocate`]
/// drives one over a whole snapshot. Every operation is deterministic and costs
/// O(log n) in the number of used addresses (plus the number of pools and CIDRs), never
/// the size of a pool.
#[derive(Clone, Debug)]
pub struct Allocator {
    /// Pools in name order.
    pools: Vec<PoolState>,
    by_name: BTreeMap<String, usize>,
    /// Every CIDR: (family, first address) → (last address, pool).
    index: BTreeMap<(Family, u128), (u128, usize)>,
    /// Pools with a `serviceAllocation`, by priority (positive ascending, then 0), then
    /// name.
    pinned: Vec<usize>,
    /// Auto-assign pools without a `serviceAllocation`, in name order.
    fallback: Vec<usize>,
    /// Ids of the Services holding addresses, by hash of their key.
    ids: HashMap<u64, Holders, FxBuildHasher>,
    /// Number of Services holding addresses.
    count: usize,
    /// What each id holds; `None` for a free id.
    held: Vec<Option<Held>>,
    free_ids: Vec<ServiceId>,
    next_seq: u64,
}

fn to_int(ip: &IpAddr) -> (Family, u128) {
    match ip {
        IpAddr::V4(a) => (Family::V4, u128::from(u32::from(*a))),
        IpAddr::V6(a) => (Family::V6, u128::from(*a)),
    }
}

fn to_ip(family: Family, a: u128) -> IpAddr {
    match family {
        // IPv4 integers always fit in 32 bits; fall back to 0.0.0.0 rather than panic.
        Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(a).unwrap_or(0))),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(a)),
    }
}

fn range_of(net: &IpNet) -> Range {
    let (family, lo) = to_int(&net.network());
    let (_, hi) = to_int(&net.broadcast());
    Range { family, lo, hi }
}

/// Usable addresses of a CIDR.
fn capacity(net: &IpNet, avoid_buggy: bool) -> u128 {
    let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
    let size = 1u128.checked_shl(host_bits).unwrap_or(u128::MAX);
    match net {
        IpNet::V4(v4) if avoid_buggy => {
            if v4.prefix_len() <= 24 {
                // Every /24 inside has one .0 and one .255.
                size - 2 * (1u128 << (24 - v4.prefix_len()))
            } else {
                // Within one /24: at most its .0 (the network) and its .255 (the
                // broadcast), which are one address for a /32.
                let mut ends = vec![v4.network()];
                if v4.broadcast() != v4.network() {
                    ends.push(v4.broadcast());
                }
                let buggy = ends
                    .iter()
                    .filter(|a| matches!(a.octets()[3], 0 | 255))
                    .count();
                size.saturating_sub(buggy as u128)
            }
        }
        _ => size,
    }
}

/// Hash of a Service key, for the id map.
fn key_hash(service: &ServiceKey) -> u64 {
    hash_parts(&service.namespace, &service.name)
}

fn hash_parts(namespace: &str, name: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(namespace.as_bytes());
    h.write_u8(0xff);
    h.write(name.as_bytes());
    h.finish()
}

/// A port in both sorted lists.
fn common_port(theirs: &[Port], ours: &[Port]) -> Option<Port> {
    let (mut i, mut j) = (0, 0);
    while i < theirs.len() && j < ours.len() {
        match theirs[i].cmp(&ours[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return Some(theirs[i].clone()),
        }
    }
    None
}

/// Sort key of a pinned pool: positive priorities ascending (negative ones, which
/// validation should reject, before them), then priority 0, ties by name.
fn priority_key(pool: &PoolState) -> (bool, i32, &str) {
    let p = pool.allocation.as_ref().map_or(0, |a| a.priority);
    (p == 0, p, pool.name.as_str())
}

impl Allocator {
    /// An allocator for the pools of `config`, with no address held.
    pub fn new(config: &Config) -> Self {
        let mut pools = Vec::with_capacity(config.pools.len());
        let mut by_name = BTreeMap::new();
        let mut index = BTreeMap::new();
        for (i, pool) in config.pools.values().enumerate() {
            let ranges: Vec<Range> = pool.cidrs.iter().map(range_of).collect();
            let mut capacity_v4 = 0u128;
            let mut capacity_v6 = 0u128;
            for (net, r) in pool.cidrs.iter().zip(&ranges) {
                index.insert((r.family, r.lo), (r.hi, i));
                let c = capacity(net, pool.avoid_buggy_ips);
                match r.family {
                    Family::V4 => capacity_v4 = capacity_v4.saturating_add(c),
                    Family::V6 => capacity_v6 = capacity_v6.saturating_add(c),
                }
            }
            by_name.insert(pool.name.clone(), i);
            pools.push(PoolState {
                name: pool.name.clone(),
                auto_assign: pool.auto_assign,
                allocation: pool.allocation.clone(),
                ranges,
                v4: Space::new(pool.avoid_buggy_ips),
                v6: Space::new(false),
                capacity_v4,
                capacity_v6,
            });
        }
        let mut pinned: Vec<usize> = (0..pools.len())
            .filter(|&i| pools[i].allocation.is_some())
            .collect();
        pinned.sort_by(|&a, &b| priority_key(&pools[a]).cmp(&priority_key(&pools[b])));
        let fallback = (0..pools.len())
            .filter(|&i| pools[i].auto_assign && pools[i].allocation.is_none())
            .collect();
        Allocator {
            pools,
            by_name,
            index,
            pinned,
            fallback,
            ids: HashMap::default(),
            count: 0,
            held: Vec::new(),
            free_ids: Vec::new(),
            next_seq: 0,
        }
    }

    /// Makes room for `additional` more Services without reallocating.
    pub fn reserve(&mut self, additional: usize) {
        self.ids.reserve(additional);
        self.held.reserve(additional);
    }

    fn id_of(&self, service: &ServiceKey) -> Option<ServiceId> {
        self.ids
            .get(&key_hash(service))?
            .as_slice()
            .iter()
            .copied()
            .find(|id| self.held(*id).is_some_and(|h| h.is(service)))
    }

    fn held(&self, id: ServiceId) -> Option<&Held> {
        self.held.get(id as usize).and_then(Option::as_ref)
    }

    /// Replaces the configuration. Every held assignment whose addresses still lie in one
    /// pool (and are not buggy ones that pool avoids) is kept, under that pool's name;
    /// the others are released and returned, in Service order. Assignments are not
    /// re-checked against the Services' requests (the caller should [`Allocator::assign`]
    /// every Service again after a configuration change).
    pub fn set_config(&mut self, config: &Config) -> Vec<ServiceKey> {
        let old = std::mem::replace(self, Allocator::new(config));
        let mut held: Vec<Held> = old.held.into_iter().flatten().collect();
        held.sort_by_key(|h| h.seq);
        self.next_seq = old.next_seq;
        let mut released = Vec::new();
        for mut h in held {
            let ips = h.ips();
            match self.locate(&ips) {
                Ok((pool, addrs)) => {
                    h.pool = pool;
                    h.addrs = addrs;
                    self.insert_held(h);
                }
                Err(_) => released.push(h.service_key()),
            }
        }
        released.sort();
        released
    }

    /// Records a holding (whose addresses are checked) under a new id.
    fn insert_held(&mut self, h: Held) -> ServiceId {
        let id = match self.free_ids.pop() {
            Some(id) => id,
            None => {
                self.held.push(None);
                ServiceId::try_from(self.held.len() - 1).unwrap_or(ServiceId::MAX)
            }
        };
        let state = &mut self.pools[h.pool];
        for &(family, a) in h.addrs.as_slice() {
            state.space_mut(family).occupy(a, id, h.sharing.as_ref());
        }
        let (namespace, name) = h.key();
        match self.ids.entry(hash_parts(namespace, name)) {
            Entry::Occupied(mut e) => e.get_mut().push(id),
            Entry::Vacant(e) => {
                e.insert(Holders::One(id));
            }
        }
        self.count += 1;
        if let Some(slot) = self.held.get_mut(id as usize) {
            *slot = Some(h);
        }
        id
    }

    /// Gives the Service addresses, or says why it cannot have any.
    ///
    /// A Service already holding addresses keeps them while they are still valid for its
    /// request (then a PreferDualStack Service with one family also gets the other one
    /// from the same pool when that pool has one free); otherwise its addresses are
    /// released and it gets new ones: the addresses it asks for, else from the pool it
    /// asks for, else from the pools whose `serviceAllocation` admits it (by priority),
    /// else from the auto-assign pools without one (by name). On error the Service holds
    /// nothing.
    pub fn assign(&mut self, req: &Request) -> Result<Assignment, AllocationError> {
        let id = self.assign_id(req)?;
        Ok(self.assignment_of(id))
    }

    /// [`Allocator::assign`], returning the Service's id.
    pub(crate) fn assign_id(&mut self, req: &Request) -> Result<ServiceId, AllocationError> {
        if let Some(id) = self.id_of(&req.service) {
            if let Some(held) = self.held(id) {
                let ips = held.ips();
                if let Ok(id) = self.keep_id(req, &ips) {
                    self.complete_dual_stack(req);
                    return Ok(id);
                }
            }
            self.release(&req.service);
        }
        let (pool, addrs) = self.plan(req, None)?;
        Ok(self.commit(pool, req, addrs))
    }

    /// Makes the Service hold exactly `ips` (from status, or remembered), if they are
    /// still valid for its request (see [`Allocator::check_keep`]). On success any other
    /// addresses of the Service are released; on error nothing changes.
    pub fn keep(&mut self, req: &Request, ips: &[IpAddr]) -> Result<Assignment, AllocationError> {
        let id = self.keep_id(req, ips)?;
        Ok(self.assignment_of(id))
    }

    /// [`Allocator::keep`], returning the Service's id.
    pub(crate) fn keep_id(
        &mut self,
        req: &Request,
        ips: &[IpAddr],
    ) -> Result<ServiceId, AllocationError> {
        let (pool, addrs) = self.check_keep_picked(req, ips)?;
        self.release(&req.service);
        Ok(self.commit(pool, req, addrs))
    }

    /// What the Service with this id holds.
    pub(crate) fn assignment_of(&self, id: ServiceId) -> Assignment {
        match self.held(id) {
            Some(held) => Assignment {
                pool: self.pools[held.pool].name.clone(),
                ips: held.ips(),
            },
            None => Assignment {
                pool: String::new(),
                ips: Vec::new(),
            },
        }
    }

    /// Whether the Service could keep exactly `ips`: they fit its families and policy,
    /// are the ones it asks for (if it asks for some), lie in one pool it may use (the
    /// one it asks for, if any; buggy addresses excluded when the pool avoids them) and
    /// can be shared with their other holders. Changes nothing.
    pub fn check_keep(&self, req: &Request, ips: &[IpAddr]) -> Result<(), AllocationError> {
        self.check_keep_picked(req, ips).map(|_| ())
    }

    fn check_keep_picked(
        &self,
        req: &Request,
        ips: &[IpAddr],
    ) -> Result<(usize, Picked), AllocationError> {
        let mut unique = [IpAddr::V4(Ipv4Addr::UNSPECIFIED); 2];
        let mut n = 0;
        for ip in ips {
            let ip = ip.to_canonical();
            if unique[..n].contains(&ip) {
                continue;
            }
            if n == 2 {
                // More than two addresses: let the family check say so.
                fit_families(ips, req.families(), req.policy)?;
                return Err(AllocationError::NoAvailableIps);
            }
            unique[n] = ip;
            n += 1;
        }
        let (ordered, len) = fit_pair(&unique[..n], req.families(), req.policy)?;
        let ordered = &ordered[..len];
        if !req.requested_ips.is_empty()
            && (ordered.len() != req.requested_ips.len()
                || ordered.iter().any(|ip| !req.requested_ips.contains(ip)))
        {
            return Err(AllocationError::NotRequested {
                ips: ordered.to_vec(),
                requested: req.requested_ips.clone(),
            });
        }
        self.check_claim(req, ordered, self.id_of(&req.service))
    }

    /// Whether the Service may take `ips` (already checked against its families).
    fn check_claim(
        &self,
        req: &Request,
        ips: &[IpAddr],
        me: Option<ServiceId>,
    ) -> Result<(usize, Picked), AllocationError> {
        if let Some(name) = &req.pool
            && !self.by_name.contains_key(name)
        {
            return Err(AllocationError::UnknownPool(name.clone()));
        }
        let (pool, addrs) = self.locate(ips)?;
        let pool_name = &self.pools[pool].name;
        if let Some(name) = &req.pool
            && name != pool_name
        {
            return Err(AllocationError::PoolConflict {
                ips: ips.to_vec(),
                requested: name.clone(),
                actual: pool_name.clone(),
            });
        }
        if !self.pools[pool].admits(req) {
            return Err(AllocationError::PoolNotAllowed(pool_name.clone()));
        }
        for &(family, a) in addrs.as_slice() {
            self.shareable(pool, family, a, req, me)?;
        }
        Ok((pool, addrs))
    }

    /// The pool of addresses and their integers; errors when one is in no pool, is a
    /// buggy one its pool avoids, or they are in different pools.
    fn locate(&self, ips: &[IpAddr]) -> Result<(usize, Picked), AllocationError> {
        let mut found: Option<(usize, IpAddr)> = None;
        let mut addrs: Option<Picked> = None;
        for ip in ips {
            let (family, a) = to_int(ip);
            let pool = self
                .pool_index_of(family, a)
                .ok_or(AllocationError::NotInAnyPool(*ip))?;
            if self.pools[pool].space(family).is_buggy(a) {
                return Err(AllocationError::BuggyIp {
                    ip: *ip,
                    pool: self.pools[pool].name.clone(),
                });
            }
            if let Some((first_pool, first)) = found
                && first_pool != pool
            {
                return Err(AllocationError::DifferentPools {
                    first,
                    first_pool: self.pools[first_pool].name.clone(),
                    second: *ip,
                    second_pool: self.pools[pool].name.clone(),
                });
            }
            found = Some((pool, *ip));
            match &mut addrs {
                Some(p) => p.push((family, a)),
                None => addrs = Some(Picked::one((family, a))),
            }
        }
        match (found, addrs) {
            (Some((pool, _)), Some(addrs)) => Ok((pool, addrs)),
            _ => Err(AllocationError::NoAvailableIps),
        }
    }

    fn pool_index_of(&self, family: Family, a: u128) -> Option<usize> {
        self.index
            .range(..=(family, a))
            .next_back()
            .filter(|((f, _), (hi, _))| *f == family && a <= *hi)
            .map(|(_, (_, pool))| *pool)
    }

    /// Whether the Service (`me`, if it holds addresses) may hold address `a` next to its
    /// current holders.
    fn shareable(
        &self,
        pool: usize,
        family: Family,
        a: u128,
        req: &Request,
        me: Option<ServiceId>,
    ) -> Result<(), AllocationError> {
        let Some(slot) = self.pools[pool].space(family).slots.get(&a) else {
            return Ok(());
        };
        // The holder named in an error is the first by namespace/name among those in the
        // way, so that the error depends only on who holds the address, not on when.
        let others = slot
            .holders
            .as_slice()
            .iter()
            .filter(|h| Some(**h) != me)
            .filter_map(|h| self.held(*h));
        let Some(first) = others.clone().min_by(|x, y| x.key().cmp(&y.key())) else {
            return Ok(());
        };
        let in_use = |holder: &Held, reason| AllocationError::IpInUse {
            ip: to_ip(family, a),
            holder: holder.service_key(),
            reason,
        };
        let (Some(theirs), Some(ours)) = (slot.sharing.as_deref(), &req.sharing) else {
            let reason = if slot.sharing.is_none() {
                SharingConflict::HolderDoesNotShare
            } else {
                SharingConflict::ServiceDoesNotShare
            };
            return Err(in_use(first, reason));
        };
        if theirs.key != ours.key {
            return Err(in_use(
                first,
                SharingConflict::DifferentKey {
                    ours: ours.key.clone(),
                    theirs: theirs.key.clone(),
                },
            ));
        }
        if theirs.backend != ours.backend {
            return Err(in_use(first, SharingConflict::DifferentBackend));
        }
        let clash = others
            .filter_map(|h| Some((h, common_port(&h.ports, &req.ports)?)))
            .min_by(|x, y| x.0.key().cmp(&y.0.key()));
        match clash {
            Some((holder, port)) => Err(in_use(holder, SharingConflict::PortInUse(port))),
            None => Ok(()),
        }
    }

    /// The lowest address of `family` in the pool (CIDRs in order) that the Service may
    /// take: free, or shared compatibly.
    fn find(
        &self,
        pool: usize,
        family: Family,
        req: &Request,
        me: Option<ServiceId>,
    ) -> Option<u128> {
        let state = &self.pools[pool];
        let space = state.space(family);
        for r in state.ranges.iter().filter(|r| r.family == family) {
            let free = space.lowest_free(r.lo, r.hi);
            if let Some(sharing) = &req.sharing {
                let below = free.map_or(r.hi, |f| f.saturating_sub(1));
                if free != Some(r.lo) {
                    let shared = space
                        .shared_in(sharing, r.lo, below)
                        .find(|&a| self.shareable(pool, family, a, req, me).is_ok());
                    if shared.is_some() {
                        return shared;
                    }
                }
            }
            if free.is_some() {
                return free;
            }
        }
        None
    }

    /// Addresses for the Service from one pool, per its policy: SingleStack the primary
    /// family; RequireDualStack both or nothing; PreferDualStack both, else the primary,
    /// else the other.
    fn pick_in_pool(&self, pool: usize, req: &Request, me: Option<ServiceId>) -> Option<Picked> {
        let primary = req.primary;
        let first = self.find(pool, primary, req, me).map(|a| (primary, a));
        if req.policy == FamilyPolicy::SingleStack {
            return first.map(Picked::one);
        }
        let second = self
            .find(pool, primary.other(), req, me)
            .map(|a| (primary.other(), a));
        match (first, second, req.policy) {
            (Some(x), Some(y), _) => Some(Picked::two(x, y)),
            (Some(x), None, FamilyPolicy::PreferDualStack) => Some(Picked::one(x)),
            (None, Some(y), FamilyPolicy::PreferDualStack) => Some(Picked::one(y)),
            _ => None,
        }
    }

    /// The first pool of the list that serves the Service: one with addresses of all
    /// its families; for PreferDualStack when none has both, the first with the primary
    /// family, else the first with the other.
    fn pick_from_list(
        &self,
        list: &[usize],
        req: &Request,
        me: Option<ServiceId>,
    ) -> Option<(usize, Picked)> {
        let mut partial: [Option<(usize, Picked)>; 2] = [None, None];
        for &pool in list {
            let Some(addrs) = self.pick_in_pool(pool, req, me) else {
                continue;
            };
            if addrs.len == req.families().len() {
                return Some((pool, addrs));
            }
            let slot = usize::from(addrs.items[0].0 != req.primary);
            if partial[slot].is_none() {
                partial[slot] = Some((pool, addrs));
            }
        }
        let [primary, other] = partial;
        primary.or(other)
    }

    /// The addresses a Service that holds none would get now, or why it gets none.
    /// Changes nothing.
    pub(crate) fn plan_new(&self, req: &Request) -> Result<(usize, Picked), AllocationError> {
        self.plan(req, self.id_of(&req.service))
    }

    fn plan(
        &self,
        req: &Request,
        me: Option<ServiceId>,
    ) -> Result<(usize, Picked), AllocationError> {
        if !req.requested_ips.is_empty() {
            return self.check_claim(req, &req.requested_ips, me);
        }
        if let Some(name) = &req.pool {
            let pool = *self
                .by_name
                .get(name)
                .ok_or_else(|| AllocationError::UnknownPool(name.clone()))?;
            let state = &self.pools[pool];
            if !state.admits(req) {
                return Err(AllocationError::PoolNotAllowed(name.clone()));
            }
            let needed: &[Family] = match req.policy {
                FamilyPolicy::PreferDualStack => &[],
                _ => req.families(),
            };
            if let Some(family) = needed.iter().find(|f| !state.has(**f)) {
                return Err(AllocationError::PoolLacksFamily {
                    pool: name.clone(),
                    family: *family,
                });
            }
            let addrs = self
                .pick_in_pool(pool, req, me)
                .ok_or_else(|| AllocationError::NoAvailableIpsInPool(name.clone()))?;
            return Ok((pool, addrs));
        }
        let pinned: Vec<usize> = self
            .pinned
            .iter()
            .copied()
            .filter(|&p| self.pools[p].auto_assign && self.pools[p].admits(req))
            .collect();
        let picked = self
            .pick_from_list(&pinned, req, me)
            .or_else(|| self.pick_from_list(&self.fallback, req, me));
        if let Some(picked) = picked {
            return Ok(picked);
        }
        // Say why when the configuration itself cannot serve the Service; "no available
        // IPs" when there is no pool for it at all or its pools are full.
        let candidates = || pinned.iter().chain(&self.fallback).map(|&p| &self.pools[p]);
        let primary = req.primary;
        Err(match req.policy {
            _ if candidates().next().is_none() => AllocationError::NoAvailableIps,
            FamilyPolicy::RequireDualStack
                if !candidates().any(|p| p.has(Family::V4) && p.has(Family::V6)) =>
            {
                AllocationError::NoDualStackPool
            }
            FamilyPolicy::SingleStack if !candidates().any(|p| p.has(primary)) => {
                AllocationError::NoPoolForFamily(primary)
            }
            _ => AllocationError::NoAvailableIps,
        })
    }

    /// Records the Service (which holds nothing) as holding `addrs` of `pool`.
    fn commit(&mut self, pool: usize, req: &Request, mut addrs: Picked) -> ServiceId {
        if addrs.len == 2 && addrs.items[0].0 != req.primary {
            addrs.items.swap(0, 1);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let ServiceKey { namespace, name } = &req.service;
        let mut key = String::with_capacity(namespace.len() + name.len());
        key.push_str(namespace);
        key.push_str(name);
        self.insert_held(Held {
            key: key.into_boxed_str(),
            namespace_len: namespace.len(),
            pool,
            addrs,
            ports: if req.sharing.is_some() {
                req.ports.clone()
            } else {
                Vec::new()
            },
            sharing: req.sharing.clone(),
            seq,
        })
    }

    /// For a PreferDualStack Service that holds one family and asks for no particular
    /// address: adds the other family from the same pool, when one is free (or
    /// shareable). Returns the address added.
    pub fn complete_dual_stack(&mut self, req: &Request) -> Option<IpAddr> {
        if req.policy != FamilyPolicy::PreferDualStack || !req.requested_ips.is_empty() {
            return None;
        }
        let id = self.id_of(&req.service)?;
        let held = self.held(id)?;
        let [(family, _)] = held.addrs.as_slice() else {
            return None;
        };
        let pool = held.pool;
        let missing = family.other();
        let a = self.find(pool, missing, req, Some(id))?;
        let sharing = held.sharing.clone();
        self.pools[pool]
            .space_mut(missing)
            .occupy(a, id, sharing.as_ref());
        let held = self.held.get_mut(id as usize)?.as_mut()?;
        held.addrs.push((missing, a));
        if missing == req.primary {
            held.addrs.items.swap(0, 1);
        }
        Some(to_ip(missing, a))
    }

    /// Frees the Service's addresses (an address stays used while other Services share
    /// it). Returns what it held.
    pub fn release(&mut self, service: &ServiceKey) -> Option<Assignment> {
        let id = self.id_of(service)?;
        let hash = key_hash(service);
        if let Some(list) = self.ids.get_mut(&hash)
            && list.remove(id)
        {
            self.ids.remove(&hash);
        }
        self.count -= 1;
        let held = self.held.get_mut(id as usize)?.take()?;
        self.free_ids.push(id);
        let state = &mut self.pools[held.pool];
        for &(family, a) in held.addrs.as_slice() {
            state.space_mut(family).vacate(a, id);
        }
        Some(Assignment {
            pool: state.name.clone(),
            ips: held.ips(),
        })
    }

    /// What the Service holds.
    pub fn assignment(&self, service: &ServiceKey) -> Option<Assignment> {
        let id = self.id_of(service)?;
        self.held(id)?;
        Some(self.assignment_of(id))
    }

    /// The Services holding an address, in the order they took it.
    pub fn holders(&self, ip: IpAddr) -> Vec<ServiceKey> {
        let (family, a) = to_int(&ip.to_canonical());
        self.pool_index_of(family, a)
            .and_then(|p| self.pools[p].space(family).slots.get(&a))
            .map_or_else(Vec::new, |slot| {
                slot.holders
                    .as_slice()
                    .iter()
                    .filter_map(|id| self.held(*id).map(Held::service_key))
                    .collect()
            })
    }

    /// The name of the pool containing an address (whether or not it is usable).
    pub fn pool_of(&self, ip: IpAddr) -> Option<&str> {
        let (family, a) = to_int(&ip.to_canonical());
        self.pool_index_of(family, a)
            .map(|p| self.pools[p].name.as_str())
    }

    /// How much of a pool is used; `None` for an unknown pool.
    pub fn usage(&self, pool: &str) -> Option<PoolUsage> {
        let state = &self.pools[*self.by_name.get(pool)?];
        let assigned_ipv4 = state.v4.used() as u128;
        let assigned_ipv6 = state.v6.used() as u128;
        Some(PoolUsage {
            assigned_ipv4,
            assigned_ipv6,
            available_ipv4: state.capacity_v4.saturating_sub(assigned_ipv4),
            available_ipv6: state.capacity_v6.saturating_sub(assigned_ipv6),
        })
    }

    /// Usage of every pool, by pool name.
    pub fn usages(&self) -> BTreeMap<&str, PoolUsage> {
        self.by_name
            .keys()
            .filter_map(|name| Some((name.as_str(), self.usage(name)?)))
            .collect()
    }

    /// Number of Services holding addresses.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no Service holds an address.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}
