//! What the agent wants, computed from its cache of datastore objects.
//!
//! Pure: no async, sockets or clocks. Owns the BGP peer plan (Calico's full mesh with its
//! passive rule, global/node/nodeSelector BGPPeers with peerIP or peerSelector), the set
//! of prefixes to originate (confirmed affine blocks outside `disableBGPExport` pools),
//! and the translation of datastore objects and BGP route changes into felix inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ipnetwork::IpNetwork;
use tortie_bgp::speaker::{PeerConfig, RibChange};
use tortie_crds::scope::{PeerRemote, PeerScope};
use tortie_crds::{
    BgpConfigurationSpec, BgpPeer, BlockAffinity, IpPool, TortieNode, WorkloadEndpoint,
};
use tortie_felix::input as fx;

/// The datastore objects the agent keeps, by name (`namespace/name` for endpoints).
#[derive(Debug, Clone, Default)]
pub struct Cache {
    pub nodes: BTreeMap<String, TortieNode>,
    pub pools: BTreeMap<String, IpPool>,
    pub affinities: BTreeMap<String, BlockAffinity>,
    pub bgp_configs: BTreeMap<String, tortie_crds::BgpConfiguration>,
    pub peers: BTreeMap<String, BgpPeer>,
    pub endpoints: BTreeMap<String, WorkloadEndpoint>,
    /// Labels of the Kubernetes Nodes by name (Kubernetes datastore only; empty on etcd).
    pub kube_node_labels: BTreeMap<String, BTreeMap<String, String>>,
}

/// The labels BGPPeer `nodeSelector`/`peerSelector` see on node `name`: its Kubernetes
/// Node's labels (on Calico's Kubernetes datastore the node *is* the Node, so operators
/// label Nodes), overlaid by the TortieNode's own labels.
pub fn node_labels(cache: &Cache, name: &str, n: &TortieNode) -> BTreeMap<String, String> {
    let mut labels = cache
        .kube_node_labels
        .get(name)
        .cloned()
        .unwrap_or_default();
    labels.extend(n.labels_map());
    labels
}

/// The effective BGP configuration of `node`: `default` overlaid by `node.<name>`, with
/// Calico's defaults.
pub fn bgp_config(cache: &Cache, node: &str) -> BgpConfigurationSpec {
    let base = cache
        .bgp_configs
        .get("default")
        .map(|c| c.spec.clone())
        .unwrap_or_default();
    let merged = match cache
        .bgp_configs
        .get(&tortie_crds::BgpConfiguration::node_name(node))
    {
        Some(o) => base.merged_with(&o.spec),
        None => base,
    };
    merged.with_defaults()
}

/// A node's BGP IPv4 address, if it has one.
pub fn node_ip(n: &TortieNode) -> Option<IpAddr> {
    n.spec
        .bgp
        .as_ref()
        .and_then(|b| b.ipv4_address)
        .map(|a| a.ip())
}

/// The AS of `n`: its own, else the cluster's.
fn node_as(n: &TortieNode, cluster_as: u32) -> u32 {
    n.spec
        .bgp
        .as_ref()
        .and_then(|b| b.as_number)
        .map(|a| a.get())
        .unwrap_or(cluster_as)
}

fn restart_secs(text: Option<&str>) -> Option<u16> {
    let d = tortie_crds::duration::parse_go_duration(text?).ok()?;
    Some(d.as_secs().min(u64::from(u16::MAX)) as u16)
}

/// Every peer `me` should have, by remote address, plus problems found on the way (a
/// BGPPeer with a bad field is skipped and reported, never fatal).
pub fn desired_peers(
    cache: &Cache,
    me: &str,
    base: &PeerConfig,
) -> (BTreeMap<IpAddr, PeerConfig>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    let Some(my_node) = cache.nodes.get(me) else {
        return (out, problems);
    };
    let Some(my_ip) = node_ip(my_node) else {
        return (out, problems);
    };
    let cfg = bgp_config(cache, me);
    let cluster_as = cfg.as_number.map(|a| a.get()).unwrap_or(64512);
    let port = cfg.listen_port.unwrap_or(179);
    let my_labels = node_labels(cache, me, my_node);

    let mk = |ip: IpAddr, asn: u32, port: u16, name: String| {
        let mut p = base.clone();
        p.address = ip;
        p.remote_as = asn;
        p.port = port;
        p.name = name;
        p.source_address = Some(my_ip);
        p
    };

    if cfg.node_to_node_mesh_enabled.unwrap_or(true) && !my_node.is_route_reflector() {
        for (name, n) in &cache.nodes {
            if name == me || n.is_route_reflector() {
                continue;
            }
            let Some(ip) = node_ip(n) else { continue };
            if ip.is_ipv4() != my_ip.is_ipv4() || ip == my_ip {
                continue;
            }
            let mut p = mk(ip, node_as(n, cluster_as), port, format!("Mesh_{ip}"));
            // Calico: the peer with the greater address (string compare) dials.
            p.passive = ip.to_string() > my_ip.to_string();
            if let Some(t) = restart_secs(cfg.node_mesh_max_restart_time.as_deref()) {
                p.graceful_restart_time = Some(t);
            }
            out.insert(ip, p);
        }
    }

    for (pname, peer) in &cache.peers {
        let spec = &peer.spec;
        let scope = match spec.scope() {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!("BGPPeer {pname}: {e}"));
                continue;
            }
        };
        if !scope.includes(me, &my_labels) {
            continue;
        }
        let prefix = match scope {
            PeerScope::Global => "Global",
            _ => "Node",
        };
        let remotes: Vec<(IpAddr, u32, u16)> = match spec.remote() {
            Ok(PeerRemote::Address { ip, port: p, asn }) => vec![(ip, asn.get(), p.unwrap_or(179))],
            Ok(PeerRemote::Nodes(sel)) => cache
                .nodes
                .iter()
                .filter(|(n, node)| *n != me && sel.matches(&node_labels(cache, n, node)))
                .filter_map(|(_, node)| Some((node_ip(node)?, node_as(node, cluster_as), port)))
                .collect(),
            Err(e) => {
                problems.push(format!("BGPPeer {pname}: {e}"));
                continue;
            }
        };
        for (ip, asn, p) in remotes {
            if ip == my_ip {
                continue;
            }
            let mut pc = mk(ip, asn, p, format!("{prefix}_{ip}"));
            if let Some(las) = spec.local_as_number {
                pc.local_as = Some(las.get());
            }
            pc.ttl_security = spec.ttl_security;
            if let Some(t) = restart_secs(spec.max_restart_time.as_deref()) {
                pc.graceful_restart_time = Some(t);
            }
            if let Some(k) = spec
                .keepalive_time
                .as_deref()
                .and_then(|t| tortie_crds::duration::parse_go_duration(t).ok())
            {
                let k = k.as_secs().clamp(1, 21845) as u16;
                pc.keepalive = Some(k);
                pc.hold_time = k.saturating_mul(3).max(3);
            }
            // An explicit BGPPeer replaces a mesh peering to the same address.
            out.insert(ip, pc);
        }
    }
    (out, problems)
}

/// Confirmed blocks of `me` to originate (not of `disableBGPExport` pools).
pub fn desired_exports(cache: &Cache, me: &str) -> BTreeSet<IpNetwork> {
    cache
        .affinities
        .values()
        .filter(|a| a.spec.node == me && !a.spec.deleted)
        .filter(|a| a.spec.state == tortie_crds::AffinityState::Confirmed)
        .filter(|a| {
            !cache
                .pools
                .values()
                .any(|p| p.spec.disable_bgp_export && contains(&p.spec.cidr, &a.spec.cidr))
        })
        .map(|a| a.spec.cidr)
        .collect()
}

fn contains(outer: &IpNetwork, inner: &IpNetwork) -> bool {
    outer.prefix() <= inner.prefix() && outer.contains(inner.network())
}

fn encap(m: tortie_crds::EncapMode) -> fx::EncapMode {
    match m {
        tortie_crds::EncapMode::Never => fx::EncapMode::Never,
        tortie_crds::EncapMode::Always => fx::EncapMode::Always,
        tortie_crds::EncapMode::CrossSubnet => fx::EncapMode::CrossSubnet,
    }
}

/// Felix's view of a pool.
pub fn pool_input(p: &IpPool) -> fx::Input {
    fx::Input::PoolUpsert(fx::Pool {
        cidr: p.spec.cidr,
        ipip_mode: encap(p.spec.ipip_mode),
        vxlan_mode: encap(p.spec.vxlan_mode),
        nat_outgoing: p.spec.nat_outgoing,
        disabled: p.spec.disabled,
        disable_bgp_export: p.spec.disable_bgp_export,
    })
}

/// Felix's view of a block affinity (a soft-deleted one is a removal).
pub fn affinity_input(a: &BlockAffinity) -> fx::Input {
    if a.spec.deleted {
        return fx::Input::AffinityRemove {
            cidr: a.spec.cidr,
            node: a.spec.node.clone(),
        };
    }
    let state = match a.spec.state {
        tortie_crds::AffinityState::Pending => fx::AffinityState::Pending,
        tortie_crds::AffinityState::Confirmed => fx::AffinityState::Confirmed,
        tortie_crds::AffinityState::PendingDeletion => fx::AffinityState::PendingDeletion,
    };
    fx::Input::AffinityUpsert(fx::BlockAffinity {
        cidr: a.spec.cidr,
        node: a.spec.node.clone(),
        state,
    })
}

/// Felix's view of a node.
pub fn node_input(name: &str, n: &TortieNode) -> fx::Input {
    let bgp = n.spec.bgp.clone().unwrap_or_default();
    let v4 = |a: Option<IpAddr>| match a {
        Some(IpAddr::V4(v)) => Some(v),
        _ => None,
    };
    fx::Input::NodeUpsert(fx::Node {
        name: name.to_string(),
        ipv4_address: match bgp.ipv4_address {
            Some(IpNetwork::V4(n)) => Some(n),
            _ => None,
        },
        ipv6_address: match bgp.ipv6_address {
            Some(IpNetwork::V6(n)) => Some(n),
            _ => None,
        },
        ipip_tunnel_addr: v4(bgp.ipv4_ipip_tunnel_addr),
        vxlan_tunnel_addr: v4(n.spec.ipv4_vxlan_tunnel_addr),
        vxlan_tunnel_mac: n.spec.vxlan_tunnel_mac_addr.clone(),
    })
}

/// Felix's identity of an endpoint.
pub fn endpoint_id(w: &WorkloadEndpoint) -> fx::EndpointId {
    fx::EndpointId {
        namespace: w.metadata.namespace.clone().unwrap_or_default(),
        pod: w.spec.pod.clone(),
        endpoint: w.spec.endpoint.clone().unwrap_or_else(|| "eth0".into()),
    }
}

/// Felix's view of a workload endpoint.
pub fn endpoint_input(w: &WorkloadEndpoint) -> fx::Input {
    fx::Input::EndpointUpsert(fx::Endpoint {
        id: endpoint_id(w),
        node: w.spec.node.clone(),
        iface: w.spec.interface_name.clone(),
        ips: w.spec.ip_networks.clone(),
        mac: w.spec.mac.clone(),
        labels: w.labels_map(),
        ports: w
            .spec
            .ports
            .iter()
            .map(|p| fx::EndpointPort {
                name: p.name.clone(),
                protocol: format!("{:?}", p.protocol).to_uppercase(),
                port: p.port,
            })
            .collect(),
        service_account: None,
    })
}

/// A BGP route change as felix input; `node_of` names the node behind a next hop.
pub fn route_input(c: &RibChange, node_of: &BTreeMap<IpAddr, String>) -> Option<fx::Input> {
    if c.is_withdrawal() {
        return Some(fx::Input::RouteRemove { prefix: c.prefix });
    }
    let mut paths: Vec<fx::RoutePath> = c
        .paths
        .iter()
        .filter(|p| p.peer_address.is_some())
        .filter_map(|p| {
            let nh = p.next_hop?;
            Some(fx::RoutePath {
                next_hop: nh,
                node: node_of.get(&nh).cloned(),
            })
        })
        .collect();
    paths.sort();
    paths.dedup();
    if paths.is_empty() {
        // Only a local path (our own origination): nothing to program from BGP.
        return Some(fx::Input::RouteRemove { prefix: c.prefix });
    }
    Some(fx::Input::RouteUpsert(fx::LearnedRoute {
        prefix: c.prefix,
        paths,
    }))
}

/// Node addresses → names, for naming route paths.
pub fn nodes_by_ip(cache: &Cache) -> BTreeMap<IpAddr, String> {
    cache
        .nodes
        .iter()
        .filter_map(|(name, n)| Some((node_ip(n)?, name.clone())))
        .collect()
}

/// Connect delays that suit a node agent (Calico's template: retry 5 s).
pub fn base_peer(connect_retry: Duration) -> PeerConfig {
    let mut p = PeerConfig::new(IpAddr::from([0, 0, 0, 0]), 0);
    p.connect_retry = connect_retry;
    p.families = vec![tortie_bgp::msg::Afi::Ipv4Unicast];
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_crds::{
        AffinityState, BgpPeerSpec, BlockAffinitySpec, IpPoolSpec, NodeBgpSpec, TortieNodeSpec,
    };

    fn node(name: &str, ip: &str, labels: &[(&str, &str)]) -> TortieNode {
        let mut n = TortieNode::new(
            name,
            TortieNodeSpec {
                bgp: Some(NodeBgpSpec {
                    ipv4_address: Some(ip.parse().unwrap()),
                    ..NodeBgpSpec::default()
                }),
                ..TortieNodeSpec::default()
            },
        );
        n.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        n
    }

    fn cache3() -> Cache {
        let mut c = Cache::default();
        for n in [
            node("a", "10.0.0.2/24", &[("rack", "1")]),
            node("b", "10.0.0.10/24", &[]),
            node("c", "10.0.0.3/24", &[("rr", "true")]),
        ] {
            c.nodes.insert(n.metadata.name.clone().unwrap(), n);
        }
        c
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn mesh_peers_everyone_and_the_greater_address_dials() {
        let c = cache3();
        let (peers, problems) = desired_peers(&c, "a", &base_peer(Duration::from_secs(2)));
        assert!(problems.is_empty());
        assert_eq!(peers.len(), 2);
        // Calico compares strings: "10.0.0.10" < "10.0.0.2", so a dials b; "10.0.0.3" > "10.0.0.2", so a waits for c.
        assert!(!peers[&ip("10.0.0.10")].passive);
        assert!(peers[&ip("10.0.0.3")].passive);
        assert_eq!(peers[&ip("10.0.0.3")].name, "Mesh_10.0.0.3");
        assert_eq!(peers[&ip("10.0.0.3")].remote_as, 64512);
        assert_eq!(peers[&ip("10.0.0.3")].source_address, Some(ip("10.0.0.2")));
    }

    #[test]
    fn mesh_off_and_bgp_peers_by_scope() {
        let mut c = cache3();
        let mut cfg = tortie_crds::BgpConfiguration::new("default", Default::default());
        cfg.spec.node_to_node_mesh_enabled = Some(false);
        c.bgp_configs.insert("default".into(), cfg);
        let peer = |name: &str, spec: BgpPeerSpec| (name.to_string(), BgpPeer::new(name, spec));
        c.peers.extend([
            peer(
                "tor",
                BgpPeerSpec {
                    peer_ip: Some("192.0.2.1:1179".into()),
                    as_number: Some(tortie_crds::AsNumber(65000)),
                    ..BgpPeerSpec::default()
                },
            ),
            peer(
                "rack1",
                BgpPeerSpec {
                    node_selector: Some("rack == '1'".into()),
                    peer_selector: Some("rr == 'true'".into()),
                    ..BgpPeerSpec::default()
                },
            ),
            peer(
                "broken",
                BgpPeerSpec {
                    peer_ip: Some("not-an-ip".into()),
                    as_number: Some(tortie_crds::AsNumber(1)),
                    ..BgpPeerSpec::default()
                },
            ),
        ]);
        let base = base_peer(Duration::from_secs(2));
        let (a, problems) = desired_peers(&c, "a", &base);
        assert_eq!(
            a.keys().copied().collect::<Vec<_>>(),
            vec![ip("10.0.0.3"), ip("192.0.2.1")]
        );
        assert_eq!(a[&ip("192.0.2.1")].port, 1179);
        assert_eq!(a[&ip("192.0.2.1")].remote_as, 65000);
        assert_eq!(a[&ip("192.0.2.1")].name, "Global_192.0.2.1");
        assert_eq!(a[&ip("10.0.0.3")].name, "Node_10.0.0.3");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("broken") && p.contains("peerIP")),
            "{problems:?}"
        );
        let (b, _) = desired_peers(&c, "b", &base);
        assert_eq!(b.keys().copied().collect::<Vec<_>>(), vec![ip("192.0.2.1")]);
    }

    #[test]
    fn selectors_see_kubernetes_node_labels_under_the_nodes_own() {
        let mut c = cache3();
        let kl = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        // Node b is labelled only on its Kubernetes Node; a's own label wins over its Node's.
        c.kube_node_labels
            .insert("b".into(), kl(&[("rack", "1"), ("zone", "z")]));
        c.kube_node_labels.insert("a".into(), kl(&[("rack", "2")]));
        c.kube_node_labels
            .insert("c".into(), kl(&[("rr", "false")]));
        assert_eq!(node_labels(&c, "a", &c.nodes["a"])["rack"], "1");
        assert_eq!(node_labels(&c, "c", &c.nodes["c"])["rr"], "true");
        c.peers.insert(
            "zone".into(),
            BgpPeer::new(
                "zone",
                BgpPeerSpec {
                    node_selector: Some("zone == 'z'".into()),
                    peer_ip: Some("192.0.2.7".into()),
                    as_number: Some(tortie_crds::AsNumber(65001)),
                    ..BgpPeerSpec::default()
                },
            ),
        );
        let base = base_peer(Duration::from_secs(2));
        let (b, _) = desired_peers(&c, "b", &base);
        assert_eq!(b[&ip("192.0.2.7")].name, "Node_192.0.2.7");
        let (a, _) = desired_peers(&c, "a", &base);
        assert!(!a.contains_key(&ip("192.0.2.7")), "{a:?}");
    }

    #[test]
    fn exports_only_confirmed_own_blocks_outside_non_exported_pools() {
        let mut c = cache3();
        let aff = |node: &str, cidr: &str, state| {
            let spec = BlockAffinitySpec {
                state,
                node: node.into(),
                cidr: cidr.parse().unwrap(),
                deleted: false,
            };
            let name = format!("{node}-{cidr}");
            (name.clone(), BlockAffinity::new(&name, spec))
        };
        c.affinities.extend([
            aff("a", "10.244.0.0/26", AffinityState::Confirmed),
            aff("a", "10.244.0.64/26", AffinityState::Pending),
            aff("b", "10.244.0.128/26", AffinityState::Confirmed),
            aff("a", "10.99.0.0/26", AffinityState::Confirmed),
        ]);
        let mut quiet = IpPoolSpec::new("10.99.0.0/16".parse().unwrap());
        quiet.disable_bgp_export = true;
        c.pools.insert("quiet".into(), IpPool::new("quiet", quiet));
        let got: Vec<String> = desired_exports(&c, "a")
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(got, vec!["10.244.0.0/26"]);
    }

    #[test]
    fn route_changes_become_learned_routes_named_by_node() {
        use tortie_bgp::speaker::RibChange;
        let c = cache3();
        let by_ip = nodes_by_ip(&c);
        let withdrawn = RibChange {
            prefix: "10.244.1.0/26".parse().unwrap(),
            paths: Default::default(),
        };
        assert_eq!(
            route_input(&withdrawn, &by_ip),
            Some(fx::Input::RouteRemove {
                prefix: "10.244.1.0/26".parse().unwrap()
            })
        );
        assert_eq!(by_ip.get(&ip("10.0.0.10")).map(String::as_str), Some("b"));
    }
}
