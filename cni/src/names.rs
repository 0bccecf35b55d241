//! Pure naming rules of workload plumbing (Calico compatible): host-end interface
//! names, the fixed host-end MAC and the pod-side gateways.

use sha1::{Digest, Sha1};
use std::net::{Ipv4Addr, Ipv6Addr};

/// MAC address forced on the host end of every workload veth.
pub const HOST_END_MAC: [u8; 6] = [0xee; 6];
/// IPv4 gateway the pods route through; proxy ARP on the host end answers for it.
pub const POD_GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// IPv6 gateway of the pods: the link-local address derived from [`HOST_END_MAC`].
pub const POD_GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);
/// Prefix every workload host-end interface name starts with.
pub const HOST_IFACE_PREFIX: &str = "cali";

/// Host-end interface name: `cali` + first 11 hex chars of SHA-1("<namespace>.<pod>"),
/// 15 characters (the kernel's IFNAMSIZ limit).
pub fn host_iface_name(namespace: &str, pod: &str) -> String {
    let digest = Sha1::digest(format!("{namespace}.{pod}").as_bytes());
    let hex = hex::encode(digest);
    format!("{HOST_IFACE_PREFIX}{}", &hex[..11])
}

/// Whether `name` is a workload host-end interface.
pub fn is_workload_iface(name: &str) -> bool {
    name.starts_with(HOST_IFACE_PREFIX)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_is_fifteen_chars_and_stable() {
        let n = host_iface_name("default", "nginx");
        assert_eq!(n.len(), 15);
        assert!(n.starts_with("cali"));
        // `echo -n default.nginx | sha1sum` = c440f455693b...
        assert_eq!(n, "calic440f455693");
        assert_ne!(n, host_iface_name("default", "nginx2"));
    }

    #[test]
    fn gateway_v6_matches_mac() {
        assert_eq!(POD_GATEWAY_V6.to_string(), "fe80::ecee:eeff:feee:eeee");
        assert_eq!(format_mac(&HOST_END_MAC), "ee:ee:ee:ee:ee:ee");
    }
}
