//! Sysctls of workload plumbing: the pure list per interface and a writer that applies a
//! list inside a namespace (`/proc/sys/net` shows the namespace of the writing thread).

use crate::error::PlumbingError;
use crate::netns::Netns;

/// One sysctl: slash path below `/proc/sys` (`net/ipv4/ip_forward`) and its value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sysctl {
    pub key: String,
    pub value: String,
}

impl Sysctl {
    fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Sysctl {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Host-side sysctls of a workload interface (Calico's list).
pub fn workload_sysctls(iface: &str, ipv4: bool, ipv6: bool) -> Vec<Sysctl> {
    let mut out = Vec::new();
    if ipv4 {
        out.push(Sysctl::new(
            format!("net/ipv4/conf/{iface}/forwarding"),
            "1",
        ));
        out.push(Sysctl::new(format!("net/ipv4/conf/{iface}/proxy_arp"), "1"));
        out.push(Sysctl::new(
            format!("net/ipv4/neigh/{iface}/proxy_delay"),
            "0",
        ));
        out.push(Sysctl::new(
            format!("net/ipv4/conf/{iface}/route_localnet"),
            "1",
        ));
    }
    if ipv6 {
        out.push(Sysctl::new(format!("net/ipv6/conf/{iface}/accept_ra"), "0"));
        out.push(Sysctl::new(format!("net/ipv6/conf/{iface}/proxy_ndp"), "1"));
        out.push(Sysctl::new(
            format!("net/ipv6/conf/{iface}/forwarding"),
            "1",
        ));
    }
    out
}

/// Host-global sysctls a node needs to route pod traffic.
pub fn host_sysctls() -> Vec<Sysctl> {
    vec![
        Sysctl::new("net/ipv4/ip_forward", "1"),
        Sysctl::new("net/ipv6/conf/all/forwarding", "1"),
    ]
}

/// Writes every sysctl of `list` inside `ns`; stops at the first failure, naming it.
pub fn apply(ns: &Netns, list: Vec<Sysctl>) -> Result<(), PlumbingError> {
    ns.run(move || {
        for s in list {
            // Keys are slash paths: interface names may contain dots (vxlan.calico).
            let path = format!("/proc/sys/{}", s.key);
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            if current.trim() == s.value {
                continue;
            }
            std::fs::write(&path, &s.value).map_err(|source| PlumbingError::Sysctl {
                path: path.clone(),
                value: s.value.clone(),
                source,
            })?;
        }
        Ok(())
    })?
}

/// Reads one sysctl inside `ns` (trimmed), e.g. for tests and drift checks.
pub fn read(ns: &Netns, key: &str) -> Result<String, PlumbingError> {
    let path = format!("/proc/sys/{key}");
    ns.run(move || {
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(|source| PlumbingError::Sysctl {
                path,
                value: String::new(),
                source,
            })
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_list_has_calico_keys() {
        let l = workload_sysctls("cali0123456789a", true, true);
        let keys: Vec<_> = l.iter().map(|s| s.key.as_str()).collect();
        assert!(keys.contains(&"net/ipv4/conf/cali0123456789a/proxy_arp"));
        assert!(keys.contains(&"net/ipv4/neigh/cali0123456789a/proxy_delay"));
        assert!(keys.contains(&"net/ipv6/conf/cali0123456789a/proxy_ndp"));
        let ra = l.iter().find(|s| s.key.ends_with("accept_ra"));
        assert_eq!(ra.map(|s| s.value.as_str()), Some("0"));
        assert_eq!(workload_sysctls("x", true, false).len(), 4);
    }
}
