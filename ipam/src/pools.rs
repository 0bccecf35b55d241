//! Which pools a node may take addresses from, which block an address belongs to, and the
//! per-host pseudo-random walk over a pool's candidate block CIDRs.
//!
//! Pure: no I/O. The walk is a full cycle over the pool's 2^k blocks, `start + i * stride
//! (mod 2^k)` with an odd stride, both derived from SHA-256 of the node name: every node
//! visits every block exactly once, lazily (a /64 IPv6 pool is never enumerated), and two
//! nodes rarely start at the same block.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use sha2::{Digest, Sha256};
use tortie_crds::{AllowedUse, IpPool, Selector};

use crate::error::{IpamError, Result};

/// 4 or 6.
pub fn family_of_net(n: &IpNetwork) -> u8 {
    match n {
        IpNetwork::V4(_) => 4,
        IpNetwork::V6(_) => 6,
    }
}

/// 4 or 6.
pub fn family_of_ip(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 4,
        IpAddr::V6(_) => 6,
    }
}

/// The pool's name for messages (its metadata name, else its CIDR).
pub fn pool_name(p: &IpPool) -> String {
    p.metadata
        .name
        .clone()
        .unwrap_or_else(|| p.spec.cidr.to_string())
}

/// Why `pool` cannot serve `node` (with `labels`) for `use_`, or `None` when it can.
pub fn unusable_reason(
    pool: &IpPool,
    labels: &BTreeMap<String, String>,
    use_: AllowedUse,
) -> Result<Option<String>> {
    if pool.spec.disabled {
        return Ok(Some("pool is disabled".into()));
    }
    if !pool.spec.allows(use_) {
        return Ok(Some(format!("allowedUses does not include {use_:?}")));
    }
    let text = pool.spec.node_selector.trim();
    let sel = if text.is_empty() {
        Selector::all()
    } else {
        Selector::parse(text).map_err(|e| IpamError::BadSelector {
            pool: pool_name(pool),
            reason: e.to_string(),
        })?
    };
    if !sel.matches(labels) {
        return Ok(Some(format!(
            "nodeSelector {text:?} does not match the node"
        )));
    }
    Ok(None)
}

/// The pools of `family` a node with `labels` may use for `use_`: enabled, allowing the
/// use, nodeSelector matching. In name order (the order the datastore lists them).
pub fn select_pools<'a>(
    pools: &'a [IpPool],
    labels: &BTreeMap<String, String>,
    use_: AllowedUse,
    family: u8,
) -> Result<Vec<&'a IpPool>> {
    let mut out = Vec::new();
    for p in pools {
        if family_of_net(&p.spec.cidr) != family {
            continue;
        }
        if unusable_reason(p, labels, use_)?.is_none() {
            out.push(p);
        }
    }
    Ok(out)
}

/// The pool containing `ip`, if any.
pub fn pool_of(pools: &[IpPool], ip: IpAddr) -> Option<&IpPool> {
    pools.iter().find(|p| p.spec.cidr.contains(ip))
}

/// The block of `pool` that contains `ip` (the address masked to the pool's block size).
pub fn block_of(pool: &IpPool, ip: IpAddr) -> Option<IpNetwork> {
    let bs = pool.spec.block_size();
    match ip {
        IpAddr::V4(a) => Ipv4Network::new(a, bs)
            .ok()
            .and_then(|n| Ipv4Network::new(n.network(), bs).ok())
            .map(IpNetwork::V4),
        IpAddr::V6(a) => Ipv6Network::new(a, bs)
            .ok()
            .and_then(|n| Ipv6Network::new(n.network(), bs).ok())
            .map(IpNetwork::V6),
    }
}

/// A lazy, deterministic per-host walk over the block CIDRs of a pool.
#[derive(Clone, Debug)]
pub struct BlockWalk {
    cidr: IpNetwork,
    block_size: u8,
    /// log2 of the number of blocks.
    bits: u32,
    start: u128,
    stride: u128,
    step: u128,
}

impl BlockWalk {
    /// The walk of `node` over `pool`'s blocks.
    pub fn new(cidr: IpNetwork, block_size: u8, node: &str) -> Self {
        let bits = u32::from(block_size.saturating_sub(cidr.prefix())).min(127);
        let digest = Sha256::digest(node.as_bytes());
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        a.copy_from_slice(&digest[..16]);
        b.copy_from_slice(&digest[16..]);
        let mask = (1u128 << bits) - 1;
        BlockWalk {
            cidr,
            block_size,
            bits,
            start: u128::from_be_bytes(a) & mask,
            stride: (u128::from_be_bytes(b) | 1) & mask.max(1),
            step: 0,
        }
    }

    /// Number of blocks in the pool (saturating).
    pub fn len(&self) -> u128 {
        1u128 << self.bits
    }

    /// Never true: a pool holds at least one block.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn nth_block(&self, index: u128) -> Option<IpNetwork> {
        match self.cidr {
            IpNetwork::V4(n) => {
                let host_bits = 32 - u32::from(self.block_size);
                let off = u32::try_from(index)
                    .ok()?
                    .checked_shl(host_bits)
                    .unwrap_or(0);
                let base = u32::from(n.network()).checked_add(off)?;
                Ipv4Network::new(base.into(), self.block_size)
                    .ok()
                    .map(IpNetwork::V4)
            }
            IpNetwork::V6(n) => {
                let host_bits = 128 - u32::from(self.block_size);
                let off = index.checked_shl(host_bits).unwrap_or(0);
                let base = u128::from(n.network()).checked_add(off)?;
                Ipv6Network::new(base.into(), self.block_size)
                    .ok()
                    .map(IpNetwork::V6)
            }
        }
    }
}

impl Iterator for BlockWalk {
    type Item = IpNetwork;

    fn next(&mut self) -> Option<IpNetwork> {
        if self.step >= self.len() {
            return None;
        }
        let mask = self.len() - 1;
        let idx = self.start.wrapping_add(self.step.wrapping_mul(self.stride)) & mask;
        self.step += 1;
        self.nth_block(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use tortie_crds::IpPoolSpec;

    fn pool(name: &str, cidr: &str) -> IpPool {
        IpPool::new(name, IpPoolSpec::new(cidr.parse().unwrap()))
    }

    #[test]
    fn walk_visits_every_block_once_and_differs_per_node() {
        let cidr: IpNetwork = "10.0.0.0/22".parse().unwrap();
        let a: Vec<_> = BlockWalk::new(cidr, 26, "node-a").collect();
        let b: Vec<_> = BlockWalk::new(cidr, 26, "node-b").collect();
        assert_eq!(a.len(), 16);
        assert_eq!(a.iter().collect::<BTreeSet<_>>().len(), 16);
        assert!(a.iter().all(|n| n.prefix() == 26 && cidr.contains(n.ip())));
        assert_eq!(b.iter().collect::<BTreeSet<_>>().len(), 16);
        assert_ne!(a, b, "two nodes walk in the same order");
        let again: Vec<_> = BlockWalk::new(cidr, 26, "node-a").collect();
        assert_eq!(a, again, "walk is not deterministic");
    }

    #[test]
    fn walk_over_huge_v6_pool_is_lazy() {
        let cidr: IpNetwork = "fd00::/64".parse().unwrap();
        let w = BlockWalk::new(cidr, 122, "n");
        assert_eq!(w.len(), 1u128 << 58);
        let first: Vec<_> = w.take(3).collect();
        assert_eq!(first.len(), 3);
        assert!(
            first
                .iter()
                .all(|n| n.prefix() == 122 && cidr.contains(n.ip()))
        );
    }

    #[test]
    fn single_block_pool() {
        let cidr: IpNetwork = "10.9.0.0/26".parse().unwrap();
        let all: Vec<_> = BlockWalk::new(cidr, 26, "x").collect();
        assert_eq!(all, vec![cidr]);
    }

    #[test]
    fn pool_selection_by_use_family_selector_and_disabled() {
        let mut p1 = pool("a", "10.0.0.0/16");
        p1.spec.node_selector = "zone == 'east'".into();
        let mut p2 = pool("b", "10.1.0.0/16");
        p2.spec.disabled = true;
        let mut p3 = pool("c", "10.2.0.0/16");
        p3.spec.allowed_uses = vec![AllowedUse::Tunnel];
        let p4 = pool("d", "fd00::/48");
        let pools = vec![p1, p2, p3, p4];
        let east: BTreeMap<_, _> = [("zone".to_string(), "east".to_string())].into();
        let names = |v: Vec<&IpPool>| v.into_iter().map(pool_name).collect::<Vec<_>>();
        assert_eq!(
            names(select_pools(&pools, &east, AllowedUse::Workload, 4).unwrap()),
            vec!["a"]
        );
        assert!(
            select_pools(&pools, &BTreeMap::new(), AllowedUse::Workload, 4)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            names(select_pools(&pools, &east, AllowedUse::Tunnel, 4).unwrap()),
            vec!["a", "c"]
        );
        assert_eq!(
            names(select_pools(&pools, &east, AllowedUse::Workload, 6).unwrap()),
            vec!["d"]
        );
        let mut bad = pool("bad", "10.3.0.0/16");
        bad.spec.node_selector = "((".into();
        let e = select_pools(&[bad], &east, AllowedUse::Workload, 4).unwrap_err();
        assert!(e.to_string().contains("pool bad"), "{e}");
    }

    #[test]
    fn block_of_masks_to_block_size() {
        let p = pool("a", "10.0.0.0/16");
        assert_eq!(
            block_of(&p, "10.0.3.77".parse().unwrap()).unwrap(),
            "10.0.3.64/26".parse::<IpNetwork>().unwrap()
        );
        let p6 = pool("b", "fd00::/48");
        assert_eq!(
            block_of(&p6, "fd00::1:45".parse().unwrap()).unwrap(),
            "fd00::1:40/122".parse::<IpNetwork>().unwrap()
        );
    }
}
