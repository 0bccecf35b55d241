//! Pure route calculation: inputs (endpoints, pools, affinities, nodes, learned routes,
//! the uplink's kernel prefixes and MTU) in, desired routes, tunnel devices, VTEPs and
//! pod MTU out. No I/O, no clock. Incremental: each input recomputes only the
//! destinations it touches (pool and node changes, which are rare, recompute all), and
//! the caller drains the changed destinations with [`RouteCalc::take_changes`].
//!
//! Per destination the first source that applies wins: a local workload (`dev cali*`),
//! a learned BGP route (encapsulation picked from its pool and the next hop's subnet), a
//! VXLAN route to a remote confirmed block, then the blackhole of a local confirmed
//! block. Longer prefixes (borrowed /32s) beat the block blackhole in the kernel itself.

use super::model::{
    Devices, Hop, IPIP_IFACE, IPIP_OVERHEAD, IpipDevice, RouteTarget, VXLAN_IFACE, VXLAN_OVERHEAD,
    VXLAN_PORT, VXLAN_VNI, Vtep, VxlanDevice, derived_vxlan_mac, parse_mac,
};
use crate::input::{AffinityState, EncapMode, Endpoint, EndpointId, Input, Node, Pool, RoutePath};
use ipnetwork::{IpNetwork, Ipv4Network};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

/// Host MTU assumed until one is detected (Calico's fallback).
pub const FALLBACK_HOST_MTU: u32 = 1460;

/// The route calculation for one node.
#[derive(Debug, Clone)]
pub struct RouteCalc {
    node: String,
    endpoints: BTreeMap<EndpointId, Endpoint>,
    /// Local workload address → endpoints carrying it.
    local_ips: BTreeMap<IpNetwork, BTreeSet<EndpointId>>,
    /// Remote workload address → endpoints (VXLAN routes for borrowed addresses).
    remote_ips: BTreeMap<IpNetwork, BTreeSet<EndpointId>>,
    pools: BTreeMap<IpNetwork, Pool>,
    /// Block → node → state.
    affinities: BTreeMap<IpNetwork, BTreeMap<String, AffinityState>>,
    nodes: BTreeMap<String, Node>,
    learned: BTreeMap<IpNetwork, Vec<RoutePath>>,
    uplink_prefixes: Vec<Ipv4Network>,
    host_mtu: u32,
    routes: BTreeMap<IpNetwork, RouteTarget>,
    dirty: BTreeSet<IpNetwork>,
}

impl RouteCalc {
    /// A calculation for node `node` with nothing known yet.
    pub fn new(node: &str) -> Self {
        RouteCalc {
            node: node.to_string(),
            endpoints: BTreeMap::new(),
            local_ips: BTreeMap::new(),
            remote_ips: BTreeMap::new(),
            pools: BTreeMap::new(),
            affinities: BTreeMap::new(),
            nodes: BTreeMap::new(),
            learned: BTreeMap::new(),
            uplink_prefixes: Vec::new(),
            host_mtu: 0,
            routes: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    /// Name of the node this calculation is for.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Applies one input; inputs for other components (policies, namespaces) are ignored.
    pub fn apply(&mut self, input: &Input) {
        match input {
            Input::EndpointUpsert(ep) => {
                self.remove_endpoint(&ep.id);
                self.endpoints.insert(ep.id.clone(), ep.clone());
                let local = ep.node == self.node;
                for ip in &ep.ips {
                    let host = host_net(ip.ip());
                    let index = if local {
                        &mut self.local_ips
                    } else {
                        &mut self.remote_ips
                    };
                    index.entry(host).or_default().insert(ep.id.clone());
                    self.recompute(host);
                }
            }
            Input::EndpointRemove(id) => self.remove_endpoint(id),
            Input::PoolUpsert(pool) => {
                self.pools.insert(pool.cidr, pool.clone());
                self.recompute_all();
            }
            Input::PoolRemove { cidr } => {
                self.pools.remove(cidr);
                self.recompute_all();
            }
            Input::AffinityUpsert(a) => {
                self.affinities
                    .entry(a.cidr)
                    .or_default()
                    .insert(a.node.clone(), a.state);
                self.recompute_block(a.cidr);
            }
            Input::AffinityRemove { cidr, node } => {
                if let Some(m) = self.affinities.get_mut(cidr) {
                    m.remove(node);
                    if m.is_empty() {
                        self.affinities.remove(cidr);
                    }
                }
                self.recompute_block(*cidr);
            }
            Input::NodeUpsert(n) => {
                self.nodes.insert(n.name.clone(), n.clone());
                self.recompute_all();
            }
            Input::NodeRemove { name } => {
                self.nodes.remove(name);
                self.recompute_all();
            }
            Input::RouteUpsert(r) => {
                let mut paths = r.paths.clone();
                paths.sort();
                paths.dedup();
                self.learned.insert(r.prefix, paths);
                self.recompute(r.prefix);
            }
            Input::RouteRemove { prefix } => {
                self.learned.remove(prefix);
                self.recompute(*prefix);
            }
            Input::NamespaceUpsert(_)
            | Input::NamespaceRemove { .. }
            | Input::PolicyUpsert(_)
            | Input::PolicyRemove { .. }
            | Input::InSync => {}
        }
    }

    /// The kernel's IPv4 prefixes of the uplink (used when the node address is a /32).
    pub fn set_uplink_prefixes(&mut self, prefixes: Vec<Ipv4Network>) {
        if prefixes != self.uplink_prefixes {
            self.uplink_prefixes = prefixes;
            self.recompute_all();
        }
    }

    /// The detected host MTU (smallest up uplink).
    pub fn set_host_mtu(&mut self, mtu: u32) {
        self.host_mtu = mtu;
    }

    fn remove_endpoint(&mut self, id: &EndpointId) {
        let Some(old) = self.endpoints.remove(id) else {
            return;
        };
        let index = if old.node == self.node {
            &mut self.local_ips
        } else {
            &mut self.remote_ips
        };
        let mut touched = Vec::new();
        for ip in &old.ips {
            let host = host_net(ip.ip());
            if let Some(set) = index.get_mut(&host) {
                set.remove(id);
                if set.is_empty() {
                    index.remove(&host);
                }
            }
            touched.push(host);
        }
        for host in touched {
            self.recompute(host);
        }
    }

    /// Recomputes a block and the remote workload addresses inside it (whether they are
    /// borrowed depends on the block's affinity).
    fn recompute_block(&mut self, cidr: IpNetwork) {
        self.recompute(cidr);
        let inside: Vec<IpNetwork> = self
            .remote_ips
            .keys()
            .filter(|k| cidr.contains(k.ip()))
            .copied()
            .collect();
        for k in inside {
            self.recompute(k);
        }
    }

    fn recompute_all(&mut self) {
        let mut keys: BTreeSet<IpNetwork> = self.routes.keys().copied().collect();
        keys.extend(self.local_ips.keys().copied());
        keys.extend(self.remote_ips.keys().copied());
        keys.extend(self.learned.keys().copied());
        keys.extend(self.affinities.keys().copied());
        for k in keys {
            self.recompute(k);
        }
    }

    fn recompute(&mut self, dst: IpNetwork) {
        let want = self.compute(dst);
        let changed = match &want {
            Some(t) => self.routes.insert(dst, t.clone()).as_ref() != Some(t),
            None => self.routes.remove(&dst).is_some(),
        };
        if changed {
            self.dirty.insert(dst);
        }
    }

    fn compute(&self, dst: IpNetwork) -> Option<RouteTarget> {
        if let Some(ids) = self.local_ips.get(&dst) {
            // Two endpoints claiming one IP: the first by id wins, deterministically.
            if let Some(ep) = ids.iter().next().and_then(|id| self.endpoints.get(id)) {
                return Some(RouteTarget::Device {
                    iface: ep.iface.clone(),
                });
            }
        }
        let local_block = self
            .affinities
            .get(&dst)
            .and_then(|m| m.get(&self.node))
            .is_some_and(|s| *s == AffinityState::Confirmed);
        let pool = self.pool_of(dst);
        let vxlan_pool = pool.is_some_and(|p| p.vxlan_mode.enabled());
        if !local_block {
            let remote = if vxlan_pool {
                self.vxlan_target(dst).or_else(|| self.borrowed_target(dst))
            } else {
                self.learned
                    .get(&dst)
                    .and_then(|p| self.learned_target(dst, p))
            };
            if remote.is_some() {
                return remote;
            }
        }
        local_block.then_some(RouteTarget::Blackhole)
    }

    /// Longest pool containing `dst`.
    fn pool_of(&self, dst: IpNetwork) -> Option<&Pool> {
        self.pools
            .values()
            .filter(|p| p.cidr.contains(dst.network()) && p.cidr.prefix() <= dst.prefix())
            .max_by_key(|p| p.cidr.prefix())
    }

    fn my_node(&self) -> Option<&Node> {
        self.nodes.get(&self.node)
    }

    /// Whether `ip` is in this node's subnet: the node address with its mask, or the
    /// uplink's kernel prefix when the node address is a bare /32.
    pub fn same_subnet(&self, ip: IpAddr) -> bool {
        let IpAddr::V4(ip) = ip else {
            return false;
        };
        let Some(mine) = self.my_node().and_then(|n| n.ipv4_address) else {
            return false;
        };
        if mine.prefix() < 32 {
            return mine.contains(ip);
        }
        self.uplink_prefixes
            .iter()
            .any(|p| p.contains(mine.ip()) && p.contains(ip))
    }

    fn learned_target(&self, dst: IpNetwork, paths: &[RoutePath]) -> Option<RouteTarget> {
        let mode = self.pool_of(dst).map(|p| p.ipip_mode).unwrap_or_default();
        let my_ip = self.my_node().and_then(|n| n.ipv4_address).map(|a| a.ip());
        let mut hops: Vec<Hop> = paths
            .iter()
            .filter(|p| Some(p.next_hop) != my_ip.map(IpAddr::V4))
            .map(|p| {
                let tunnel = match mode {
                    EncapMode::Never => false,
                    EncapMode::Always => p.next_hop.is_ipv4(),
                    EncapMode::CrossSubnet => p.next_hop.is_ipv4() && !self.same_subnet(p.next_hop),
                };
                Hop {
                    gateway: p.next_hop,
                    iface: tunnel.then(|| IPIP_IFACE.to_string()),
                    onlink: tunnel,
                }
            })
            .collect();
        hops.sort();
        hops.dedup();
        (!hops.is_empty()).then_some(RouteTarget::Gateway { hops })
    }

    /// The VXLAN (or, CrossSubnet within the subnet, direct) hop to node `n`.
    fn vxlan_hop(&self, n: &Node, mode: EncapMode) -> Option<Hop> {
        let node_ip = n.ipv4_address?.ip();
        if mode == EncapMode::CrossSubnet && self.same_subnet(IpAddr::V4(node_ip)) {
            return Some(Hop {
                gateway: IpAddr::V4(node_ip),
                iface: None,
                onlink: false,
            });
        }
        Some(Hop {
            gateway: IpAddr::V4(n.vxlan_tunnel_addr?),
            iface: Some(VXLAN_IFACE.to_string()),
            onlink: true,
        })
    }

    /// A remote pod whose address lies outside its node's confirmed blocks (borrowed):
    /// a /32 to that node, which beats the block owner's route or blackhole.
    fn borrowed_target(&self, dst: IpNetwork) -> Option<RouteTarget> {
        let mode = self.pool_of(dst)?.vxlan_mode;
        let ep = self
            .remote_ips
            .get(&dst)?
            .iter()
            .next()
            .and_then(|id| self.endpoints.get(id))?;
        let in_own_block = self.affinities.iter().any(|(cidr, owners)| {
            cidr.contains(dst.ip()) && owners.get(&ep.node) == Some(&AffinityState::Confirmed)
        });
        if in_own_block {
            return None;
        }
        let hop = self.vxlan_hop(self.nodes.get(&ep.node)?, mode)?;
        Some(RouteTarget::Gateway { hops: vec![hop] })
    }

    fn vxlan_target(&self, dst: IpNetwork) -> Option<RouteTarget> {
        let mode = self.pool_of(dst)?.vxlan_mode;
        let owners = self.affinities.get(&dst)?;
        let mut hops: Vec<Hop> = owners
            .iter()
            .filter(|(n, s)| **s == AffinityState::Confirmed && **n != self.node)
            .filter_map(|(n, _)| self.nodes.get(n))
            .filter_map(|n| self.vxlan_hop(n, mode))
            .collect();
        hops.sort();
        hops.dedup();
        (!hops.is_empty()).then_some(RouteTarget::Gateway { hops })
    }

    /// Drains the destinations whose desired route changed since the last call:
    /// `Some(target)` to program, `None` to remove.
    pub fn take_changes(&mut self) -> Vec<(IpNetwork, Option<RouteTarget>)> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|d| (d, self.routes.get(&d).cloned()))
            .collect()
    }

    /// Every desired route right now.
    pub fn routes(&self) -> &BTreeMap<IpNetwork, RouteTarget> {
        &self.routes
    }

    /// Local workload interfaces and whether they carry v4 / v6 addresses.
    pub fn workload_ifaces(&self) -> BTreeMap<String, (bool, bool)> {
        let mut out: BTreeMap<String, (bool, bool)> = BTreeMap::new();
        for ep in self.endpoints.values().filter(|e| e.node == self.node) {
            let e = out.entry(ep.iface.clone()).or_default();
            e.0 |= ep.ips.iter().any(|i| i.is_ipv4());
            e.1 |= ep.ips.iter().any(|i| i.is_ipv6());
        }
        out
    }

    /// Interface of one local endpoint (for per-workload sysctls), if local.
    pub fn local_endpoint(&self, id: &EndpointId) -> Option<&Endpoint> {
        self.endpoints.get(id).filter(|e| e.node == self.node)
    }

    /// Tunnel devices, VTEPs and pod MTU (small; computed on demand).
    pub fn devices(&self) -> Devices {
        let host_mtu = if self.host_mtu == 0 {
            FALLBACK_HOST_MTU
        } else {
            self.host_mtu
        };
        let me = self.my_node();
        let ipip_on = self
            .pools
            .values()
            .any(|p| p.ipip_mode.enabled() && p.cidr.is_ipv4());
        let vxlan_on = self.pools.values().any(|p| p.vxlan_mode.enabled());
        let ipip = ipip_on.then(|| IpipDevice {
            address: me.and_then(|n| n.ipip_tunnel_addr),
            mtu: host_mtu - IPIP_OVERHEAD,
        });
        let vxlan = me.filter(|_| vxlan_on).and_then(|n| {
            Some(VxlanDevice {
                vni: VXLAN_VNI,
                port: VXLAN_PORT,
                local: n.ipv4_address?.ip(),
                mac: node_mac(n),
                address: n.vxlan_tunnel_addr?,
                mtu: host_mtu - VXLAN_OVERHEAD,
            })
        });
        let vteps = if vxlan.is_some() {
            self.nodes
                .values()
                .filter(|n| n.name != self.node)
                .filter_map(|n| {
                    let tunnel_addr = n.vxlan_tunnel_addr?;
                    let v = Vtep {
                        node: n.name.clone(),
                        tunnel_addr,
                        mac: node_mac(n),
                        node_ip: n.ipv4_address?.ip(),
                    };
                    Some((tunnel_addr, v))
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        let overhead = match (ipip.is_some(), vxlan_on) {
            (_, true) => VXLAN_OVERHEAD,
            (true, false) => IPIP_OVERHEAD,
            _ => 0,
        };
        Devices {
            ipip,
            vxlan,
            vteps,
            pod_mtu: host_mtu.saturating_sub(overhead),
        }
    }
}

fn node_mac(n: &Node) -> [u8; 6] {
    n.vxlan_tunnel_mac
        .as_deref()
        .and_then(parse_mac)
        .unwrap_or_else(|| derived_vxlan_mac(&n.name))
}

/// The /32 or /128 network of one address.
pub fn host_net(ip: IpAddr) -> IpNetwork {
    let len = if ip.is_ipv4() { 32 } else { 128 };
    IpNetwork::new(ip, len)
        .unwrap_or_else(|_| IpNetwork::V4(Ipv4Network::from(Ipv4Addr::UNSPECIFIED)))
}

#[cfg(test)]
#[path = "calc_tests.rs"]
mod tests;
