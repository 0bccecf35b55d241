//! Felix's one input type: everything the node agent tells felix, fed over one channel.
//! Plain felix-own types (serde, so a recorded event log replays in a test); the node
//! agent converts datastore resources and BGP updates into these.

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

/// One event for felix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Input {
    /// A workload endpoint (any node: remote ones feed policy IP sets and VXLAN /32s).
    EndpointUpsert(Endpoint),
    EndpointRemove(EndpointId),
    PoolUpsert(Pool),
    PoolRemove {
        cidr: IpNetwork,
    },
    /// An IPAM block affinity (block CIDR → node).
    AffinityUpsert(BlockAffinity),
    AffinityRemove {
        cidr: IpNetwork,
        node: String,
    },
    NodeUpsert(Node),
    NodeRemove {
        name: String,
    },
    /// A route learned over BGP with every equal-cost path (replaces earlier paths).
    RouteUpsert(LearnedRoute),
    RouteRemove {
        prefix: IpNetwork,
    },
    NamespaceUpsert(Namespace),
    NamespaceRemove {
        name: String,
    },
    /// A Kubernetes NetworkPolicy (for the policy compiler).
    PolicyUpsert(Box<k8s_openapi::api::networking::v1::NetworkPolicy>),
    PolicyRemove {
        namespace: String,
        name: String,
    },
    /// Every source has been listed once (datastore listed, every BGP peer sent
    /// End-of-RIB or its restart timer ran out): deleting stale state is safe now.
    InSync,
}

/// Identity of a workload endpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EndpointId {
    pub namespace: String,
    pub pod: String,
    /// Endpoint name within the pod (`eth0`).
    pub endpoint: String,
}

/// A workload endpoint: one pod interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: EndpointId,
    /// Node the pod runs on.
    pub node: String,
    /// Host-end interface (`cali...`).
    pub iface: String,
    /// Pod addresses (/32 and /128).
    pub ips: Vec<IpNetwork>,
    /// MAC of the pod's interface, if known.
    pub mac: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<EndpointPort>,
    /// Service account name (for policy selectors), if known.
    pub service_account: Option<String>,
}

/// A named container port of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointPort {
    pub name: String,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    pub port: u16,
}

/// Encapsulation mode of a pool (`ipipMode` / `vxlanMode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EncapMode {
    #[default]
    Never,
    Always,
    CrossSubnet,
}

impl EncapMode {
    /// Whether the mode ever encapsulates.
    pub fn enabled(self) -> bool {
        self != EncapMode::Never
    }
}

/// An IP pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub cidr: IpNetwork,
    pub ipip_mode: EncapMode,
    pub vxlan_mode: EncapMode,
    pub nat_outgoing: bool,
    pub disabled: bool,
    pub disable_bgp_export: bool,
}

impl Pool {
    /// A pool with no encapsulation and every flag off.
    pub fn new(cidr: IpNetwork) -> Self {
        Pool {
            cidr,
            ipip_mode: EncapMode::Never,
            vxlan_mode: EncapMode::Never,
            nat_outgoing: false,
            disabled: false,
            disable_bgp_export: false,
        }
    }
}

/// State of a block affinity; only confirmed blocks are routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AffinityState {
    Pending,
    Confirmed,
    PendingDeletion,
}

/// An IPAM block affine to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockAffinity {
    pub cidr: IpNetwork,
    pub node: String,
    pub state: AffinityState,
}

/// A cluster node as felix needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    /// Node IPv4 address WITH its mask (the mask drives CrossSubnet).
    pub ipv4_address: Option<Ipv4Network>,
    pub ipv6_address: Option<Ipv6Network>,
    pub ipip_tunnel_addr: Option<Ipv4Addr>,
    pub vxlan_tunnel_addr: Option<Ipv4Addr>,
    /// `aa:bb:cc:dd:ee:ff`; derived from the node name when absent.
    pub vxlan_tunnel_mac: Option<String>,
}

impl Node {
    /// A node with only its IPv4 address set.
    pub fn new(name: &str, ipv4_address: Ipv4Network) -> Self {
        Node {
            name: name.into(),
            ipv4_address: Some(ipv4_address),
            ipv6_address: None,
            ipip_tunnel_addr: None,
            vxlan_tunnel_addr: None,
            vxlan_tunnel_mac: None,
        }
    }
}

/// One path of a learned route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RoutePath {
    pub next_hop: IpAddr,
    /// The node that advertised it, if the agent knows.
    pub node: Option<String>,
}

/// A route learned over BGP, with every equal-cost path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedRoute {
    pub prefix: IpNetwork,
    pub paths: Vec<RoutePath>,
}

/// A Kubernetes namespace's labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_round_trip_through_json() {
        let inputs = vec![
            Input::PoolUpsert(Pool {
                vxlan_mode: EncapMode::CrossSubnet,
                ..Pool::new("10.65.0.0/16".parse().unwrap_or_else(|_| unreachable!()))
            }),
            Input::RouteUpsert(LearnedRoute {
                prefix: "10.65.1.0/26".parse().unwrap_or_else(|_| unreachable!()),
                paths: vec![RoutePath {
                    next_hop: "192.168.0.2".parse().unwrap_or_else(|_| unreachable!()),
                    node: Some("b".into()),
                }],
            }),
            Input::InSync,
        ];
        let text = serde_json::to_string(&inputs).unwrap_or_default();
        let back: Vec<Input> = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back, inputs);
    }
}
