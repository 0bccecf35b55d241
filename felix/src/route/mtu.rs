//! MTU detection (pure): the smallest MTU of the up uplinks, skipping loopback,
//! workload and tunnel devices; and the pod MTU file the CNI plugin reads.

use super::calc::FALLBACK_HOST_MTU;
use super::kernel::LinkInfo;

/// Interface name prefixes that are never uplinks (Calico's autodetection skip list).
const NOT_UPLINK: &[&str] = &[
    "lo",
    "cali",
    "tunl",
    "vxlan.calico",
    "docker",
    "cbr",
    "veth",
    "kube-ipvs",
    "tmp",
];

/// Whether `l` can carry the node's traffic.
pub fn is_uplink(l: &LinkInfo) -> bool {
    l.up && l.mtu > 0 && !NOT_UPLINK.iter().any(|p| l.name.starts_with(p))
}

/// Smallest MTU over the up uplinks, or the fallback when none is found.
pub fn detect_host_mtu(links: &[LinkInfo]) -> u32 {
    links
        .iter()
        .filter(|l| is_uplink(l))
        .map(|l| l.mtu)
        .min()
        .unwrap_or(FALLBACK_HOST_MTU)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, mtu: u32, up: bool) -> LinkInfo {
        LinkInfo {
            index: 1,
            name: name.into(),
            mtu,
            up,
            kind: None,
            mac: vec![],
        }
    }

    #[test]
    fn smallest_up_uplink_wins() {
        let links = vec![
            link("lo", 65536, true),
            link("eth0", 1500, true),
            link("eth1", 9000, true),
            link("eth2", 1400, false),
            link("cali123", 1200, true),
            link("vxlan.calico", 1450, true),
        ];
        assert_eq!(detect_host_mtu(&links), 1500);
        assert_eq!(detect_host_mtu(&links[..1]), FALLBACK_HOST_MTU);
    }
}
