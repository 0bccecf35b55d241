//! Pure value types of the route dataplane: what felix wants in the kernel (routes,
//! tunnel devices, VXLAN neighbour and FDB entries, per-workload sysctls), in a form
//! that the kernel read-back converts into too, so the two compare with `==`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

/// Name of the IPIP device (created by the `ipip` module itself).
pub const IPIP_IFACE: &str = "tunl0";
/// Name of the VXLAN device.
pub const VXLAN_IFACE: &str = "vxlan.calico";
/// VXLAN network identifier (Calico's default).
pub const VXLAN_VNI: u32 = 4096;
/// VXLAN UDP port.
pub const VXLAN_PORT: u16 = 4789;
/// Bytes of outer headers per encapsulation.
pub const IPIP_OVERHEAD: u32 = 20;
pub const VXLAN_OVERHEAD: u32 = 50;

/// One next hop of a gateway route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hop {
    pub gateway: IpAddr,
    /// Output interface; `None` lets the kernel pick (direct routes on the uplink).
    pub iface: Option<String>,
    pub onlink: bool,
}

/// What a route does with its destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RouteTarget {
    /// `blackhole <dst>` (a local block).
    Blackhole,
    /// `<dst> dev <iface> scope link` (a local workload).
    Device { iface: String },
    /// `<dst> via ...` with one or more (ECMP) hops, sorted.
    Gateway { hops: Vec<Hop> },
}

impl RouteTarget {
    /// Interfaces this route needs to exist before it can be programmed.
    pub fn ifaces(&self) -> Vec<&str> {
        match self {
            RouteTarget::Blackhole => Vec::new(),
            RouteTarget::Device { iface } => vec![iface.as_str()],
            RouteTarget::Gateway { hops } => {
                hops.iter().filter_map(|h| h.iface.as_deref()).collect()
            }
        }
    }

    /// Whether a kernel route `actual` satisfies this desired target (a hop without an
    /// interface accepts whatever interface the kernel chose).
    pub fn satisfied_by(&self, actual: &RouteTarget) -> bool {
        match (self, actual) {
            (RouteTarget::Gateway { hops: want }, RouteTarget::Gateway { hops: got }) => {
                want.len() == got.len()
                    && want.iter().zip(got).all(|(w, g)| {
                        w.gateway == g.gateway
                            && w.onlink == g.onlink
                            && (w.iface.is_none() || w.iface == g.iface)
                    })
            }
            _ => self == actual,
        }
    }
}

/// The IPIP device's desired configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpipDevice {
    pub address: Option<Ipv4Addr>,
    pub mtu: u32,
}

/// The VXLAN device's desired configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VxlanDevice {
    pub vni: u32,
    pub port: u16,
    /// Underlay source address (the node IP).
    pub local: Ipv4Addr,
    pub mac: [u8; 6],
    pub address: Ipv4Addr,
    pub mtu: u32,
}

/// One remote VTEP: permanent ARP (tunnel IP → MAC) and FDB (MAC → node IP) entries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Vtep {
    pub node: String,
    pub tunnel_addr: Ipv4Addr,
    pub mac: [u8; 6],
    pub node_ip: Ipv4Addr,
}

/// The small, rarely changing part of the desired state (routes are tracked per
/// destination by the calculation itself).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Devices {
    pub ipip: Option<IpipDevice>,
    pub vxlan: Option<VxlanDevice>,
    /// Remote VTEPs keyed by tunnel address.
    pub vteps: BTreeMap<Ipv4Addr, Vtep>,
    /// MTU for pods (host MTU minus the largest enabled encapsulation overhead).
    pub pod_mtu: u32,
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Calico's VXLAN MAC when a node has none recorded: `66:` + first 5 bytes of
/// SHA-1 of the node name (deterministic per node).
pub fn derived_vxlan_mac(node: &str) -> [u8; 6] {
    use sha1::{Digest, Sha1};
    let d = Sha1::digest(node.as_bytes());
    [0x66, d[0], d[1], d[2], d[3], d[4]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parsing() {
        assert_eq!(
            parse_mac("66:01:02:03:04:ff"),
            Some([0x66, 1, 2, 3, 4, 0xff])
        );
        assert_eq!(parse_mac("66:01:02:03:04"), None);
        assert_eq!(parse_mac("66:01:02:03:04:05:06"), None);
        assert_eq!(parse_mac("zz:01:02:03:04:05"), None);
        let m = derived_vxlan_mac("node-a");
        assert_eq!(m[0], 0x66);
        assert_eq!(m, derived_vxlan_mac("node-a"));
        assert_ne!(m, derived_vxlan_mac("node-b"));
    }

    #[test]
    fn gateway_without_iface_accepts_kernel_choice() {
        let gw: IpAddr = "10.0.0.2"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let want = RouteTarget::Gateway {
            hops: vec![Hop {
                gateway: gw,
                iface: None,
                onlink: false,
            }],
        };
        let got = RouteTarget::Gateway {
            hops: vec![Hop {
                gateway: gw,
                iface: Some("eth0".into()),
                onlink: false,
            }],
        };
        assert!(want.satisfied_by(&got));
        assert!(!got.satisfied_by(&RouteTarget::Blackhole));
        let other = RouteTarget::Gateway {
            hops: vec![Hop {
                gateway: gw,
                iface: Some("tunl0".into()),
                onlink: true,
            }],
        };
        assert!(!want.satisfied_by(&other));
    }
}
