//! This node's tunnel addresses, decided as calico-node's tunnel address allocation
//! (`allocateip`) does it.
//!
//! Pure: no async, sockets or clocks. Owns the decision, per encapsulation (IPIP for
//! `tunl0`, VXLAN for `vxlan.calico`), from the pools, the node's labels, the address its
//! TortieNode records and the addresses its IPAM handle (`ipip-tunnel-addr-<node>`,
//! `vxlan-tunnel-addr-<node>`) holds, to what the driver ([`crate::tunnel_driver`]) does:
//!
//! - no enabled IPv4 pool that allows `Tunnel`, selects the node and has that
//!   encapsulation on (Always or CrossSubnet): the recorded field is cleared and the
//!   handle's addresses released;
//! - the recorded address lies in such a pool: kept (no churn across restarts); when the
//!   handle does not hold it (a lost IPAM write) the driver claims that very address
//!   again, falling back to a new one when someone else holds it;
//! - otherwise an address the handle already holds in such a pool is recorded (a crash
//!   between assignment and node write leaks nothing); else a new one is assigned;
//! - held addresses that are not kept are released (a stale address: its pool gone,
//!   disabled, no longer selecting the node, or its encapsulation turned off).
//!
//! The VXLAN MAC (`vxlanTunnelMACAddr`) is derived once from random bits (locally
//! administered, unicast) and kept for good, as Calico does: a node whose VXLAN goes off
//! and on again keeps its MAC, so peers' ARP/FDB entries stay right.

use std::collections::BTreeMap;
use std::net::IpAddr;

use tortie_crds::{AllowedUse, IpPool};
use tortie_ipam::{IpamError, TunnelKind, pools};

/// What the node and IPAM say now about one tunnel address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Current {
    /// The address the TortieNode records (`ipv4IPIPTunnelAddr` / `ipv4VXLANTunnelAddr`).
    pub recorded: Option<IpAddr>,
    /// The addresses the node's IPAM handle for this tunnel holds.
    pub held: Vec<IpAddr>,
}

/// The address the node should have for one tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// None: the recorded field is cleared.
    None,
    /// This address, which the handle holds: recorded as is.
    Keep(IpAddr),
    /// The recorded address, valid but not held by the handle: claim it again (a new one
    /// when another handle holds it).
    Reclaim(IpAddr),
    /// A new address from a pool with the encapsulation on.
    New,
}

/// The decision for one tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub kind: TunnelKind,
    pub want: Want,
    /// Held addresses to release (stale, or extra beside the kept one).
    pub release: Vec<IpAddr>,
}

impl Plan {
    /// True when nothing changes: the address is held and recorded, nothing is released.
    pub fn is_noop(&self, recorded: Option<IpAddr>) -> bool {
        self.release.is_empty()
            && match self.want {
                Want::None => recorded.is_none(),
                Want::Keep(a) => recorded == Some(a),
                Want::Reclaim(_) | Want::New => false,
            }
    }
}

/// Whether `kind`'s encapsulation is on in `pool` (IPIP is IPv4 only).
pub fn encap_on(pool: &IpPool, kind: TunnelKind) -> bool {
    match kind {
        TunnelKind::Ipip => pool.spec.ipip_mode.enabled(),
        TunnelKind::Vxlan => pool.spec.vxlan_mode.enabled(),
    }
}

/// The pools a tunnel address of `kind` may come from for a node with `labels`:
/// IPv4, enabled, allowing `Tunnel`, selecting the node, with the encapsulation on.
/// Fails only on a pool's unparsable nodeSelector (naming the pool).
pub fn tunnel_pools<'a>(
    all: &'a [IpPool],
    labels: &BTreeMap<String, String>,
    kind: TunnelKind,
) -> Result<Vec<&'a IpPool>, IpamError> {
    Ok(pools::select_pools(all, labels, AllowedUse::Tunnel, 4)?
        .into_iter()
        .filter(|p| encap_on(p, kind))
        .collect())
}

/// Decides one tunnel address (see the module header for the rules).
pub fn decide(
    kind: TunnelKind,
    all: &[IpPool],
    labels: &BTreeMap<String, String>,
    cur: &Current,
) -> Result<Plan, IpamError> {
    let usable = tunnel_pools(all, labels, kind)?;
    let valid = |ip: &IpAddr| ip.is_ipv4() && usable.iter().any(|p| p.spec.cidr.contains(*ip));
    let want = if usable.is_empty() {
        Want::None
    } else if let Some(a) = cur.recorded.filter(valid) {
        if cur.held.contains(&a) {
            Want::Keep(a)
        } else {
            Want::Reclaim(a)
        }
    } else if let Some(h) = cur.held.iter().copied().find(valid) {
        Want::Keep(h)
    } else {
        Want::New
    };
    let kept = match want {
        Want::Keep(a) => Some(a),
        _ => None,
    };
    let mut release: Vec<IpAddr> = cur
        .held
        .iter()
        .copied()
        .filter(|h| Some(*h) != kept)
        .collect();
    release.sort();
    release.dedup();
    Ok(Plan {
        kind,
        want,
        release,
    })
}

/// Parses `aa:bb:cc:dd:ee:ff` (either case).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// `random` made a locally administered unicast MAC, as text.
pub fn local_mac(random: [u8; 6]) -> String {
    let mut m = random;
    m[0] = (m[0] & 0xfe) | 0x02;
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The `vxlanTunnelMACAddr` the node should record: the recorded one when it is a
/// usable (unicast, non-zero) MAC; else, when the node has (or gets) a VXLAN address, a
/// fresh one from `random`; else whatever is recorded.
pub fn vxlan_mac(recorded: Option<&str>, vxlan_wanted: bool, random: [u8; 6]) -> Option<String> {
    let usable = recorded
        .and_then(parse_mac)
        .is_some_and(|m| m[0] & 0x01 == 0 && m != [0; 6]);
    if usable || !vxlan_wanted {
        return recorded.map(str::to_string);
    }
    Some(local_mac(random))
}

#[cfg(test)]
#[path = "tunnel_tests.rs"]
mod tests;
