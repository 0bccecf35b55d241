//! Node IPv4 address autodetection, as calico-node's `IP_AUTODETECTION_METHOD`:
//! parsing the method, and choosing an address from a list of (interface, address with
//! mask) pairs in kernel order.
//!
//! Pure: no I/O. The agent reads the interface list ([`crate::agent::node_address`]);
//! for `can-reach` it asks the kernel which source address a UDP socket connected to the
//! destination gets (no packet is sent) and [`with_mask`] finds that address's prefix.
//!
//! Methods, with Calico's semantics:
//! - `first-found` (default): the first valid address on an interface not named like a
//!   container or tunnel device ([`DEFAULT_EXCLUDED`]).
//! - `interface=REGEX[,REGEX]`: the first valid address on an interface whose name
//!   matches one of the regexes (unanchored, as Go's `MatchString`: write `^eth0$` for
//!   exactly `eth0`); the default exclusions do not apply.
//! - `skip-interface=REGEX[,REGEX]`: as `first-found`, also skipping interfaces that
//!   match one of the regexes.
//! - `cidr=CIDR[,CIDR]`: the first valid address inside one of the CIDRs, on any
//!   interface.
//! - `can-reach=DEST`: the address the kernel would send from towards `DEST` (an IPv4
//!   address or a host name), with the mask of the interface that carries it (`/32`
//!   when none does).
//! - `kubernetes-internal-ip` (Kubernetes datastore only): the first IPv4 `InternalIP`
//!   of this node's Kubernetes Node ([`internal_ipv4`]), with its interface's mask as
//!   for `can-reach`.
//!
//! A valid address is IPv4 global unicast: not loopback, link-local, multicast,
//! broadcast or unspecified.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::LazyLock;

use ipnetwork::IpNetwork;
use regex::Regex;

use crate::error::ConfigError;

/// The variable the methods come from (errors name it).
pub const VAR: &str = "IP_AUTODETECTION_METHOD";

/// Interface names `first-found` and `skip-interface` never use (Calico's list).
pub const DEFAULT_EXCLUDED: &[&str] = &[
    "^docker.*",
    "^cbr.*",
    "^dummy.*",
    "^virbr.*",
    "^lxcbr.*",
    "^veth.*",
    "^lo",
    "^cali.*",
    "^tunl.*",
    "^flannel.*",
    "^kube-ipvs.*",
    "^cni.*",
    r"^vxlan\.calico.*",
    r"^vxlan-v6\.calico.*",
    r"^wireguard\.cali.*",
    r"^wg-v6\.cali.*",
    "^nodelocaldns.*",
];

/// A compiled interface-name regex (compared by its text).
#[derive(Debug, Clone)]
pub struct Pattern(Regex);

impl Pattern {
    fn new(text: &str) -> Result<Pattern, String> {
        Regex::new(text)
            .map(Pattern)
            .map_err(|e| e.to_string().replace('\n', " "))
    }

    fn matches(&self, name: &str) -> bool {
        self.0.is_match(name)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Pattern {}

/// One autodetection method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    FirstFound,
    Interface(Vec<Pattern>),
    SkipInterface(Vec<Pattern>),
    Cidr(Vec<IpNetwork>),
    /// An IPv4 address or a host name.
    CanReach(String),
    /// The Kubernetes Node's `InternalIP`.
    KubernetesInternalIp,
}

const METHODS: &str = "first-found, interface=REGEX, skip-interface=REGEX, cidr=CIDR, \
                       can-reach=DEST, kubernetes-internal-ip";

fn bad(reason: String) -> ConfigError {
    ConfigError::Invalid {
        field: VAR.to_string(),
        reason,
    }
}

/// Splits a comma-separated list (spaces around commas ignored); an empty item is an
/// error naming the method.
fn items<'a>(method: &str, list: &'a str) -> Result<Vec<&'a str>, ConfigError> {
    let out: Vec<&str> = list.split(',').map(str::trim).collect();
    if out.iter().any(|s| s.is_empty()) {
        return Err(bad(format!("{method}={list:?}: empty item in the list")));
    }
    Ok(out)
}

fn patterns(method: &str, list: &str) -> Result<Vec<Pattern>, ConfigError> {
    items(method, list)?
        .into_iter()
        .map(|r| Pattern::new(r).map_err(|e| bad(format!("{method}: regex {r:?}: {e}"))))
        .collect()
}

impl Method {
    /// Parses the variable's value (`None`/empty = `first-found`).
    pub fn parse(text: Option<&str>) -> Result<Method, ConfigError> {
        let text = text.map(str::trim).unwrap_or_default();
        if text.is_empty() || text == "first-found" {
            return Ok(Method::FirstFound);
        }
        if let Some(list) = text.strip_prefix("interface=") {
            return Ok(Method::Interface(patterns("interface", list)?));
        }
        if let Some(list) = text.strip_prefix("skip-interface=") {
            return Ok(Method::SkipInterface(patterns("skip-interface", list)?));
        }
        if let Some(list) = text.strip_prefix("cidr=") {
            let cidrs = items("cidr", list)?
                .into_iter()
                .map(|c| {
                    let net: IpNetwork = c.parse().map_err(|e| bad(format!("cidr: {c:?}: {e}")))?;
                    if !net.is_ipv4() {
                        return Err(bad(format!("cidr: {c:?} is not IPv4")));
                    }
                    Ok(net)
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Method::Cidr(cidrs));
        }
        if let Some(dest) = text.strip_prefix("can-reach=") {
            let dest = dest.trim();
            let host_like = |s: &str| {
                s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            };
            return match dest.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => Ok(Method::CanReach(dest.to_string())),
                Ok(IpAddr::V6(_)) => Err(bad(format!("can-reach: {dest:?} is not IPv4"))),
                Err(_) if !dest.is_empty() && dest.len() <= 253 && host_like(dest) => {
                    Ok(Method::CanReach(dest.to_string()))
                }
                Err(_) => Err(bad(format!(
                    "can-reach: {dest:?} is neither an IPv4 address nor a host name"
                ))),
            };
        }
        if text == "kubernetes-internal-ip" {
            return Ok(Method::KubernetesInternalIp);
        }
        Err(bad(format!("unknown method {text:?} ({METHODS})")))
    }

    /// The method as written in the variable (for logs and errors).
    pub fn describe(&self) -> String {
        let join = |p: &[Pattern]| p.iter().map(|p| p.0.as_str()).collect::<Vec<_>>().join(",");
        match self {
            Method::FirstFound => "first-found".into(),
            Method::Interface(p) => format!("interface={}", join(p)),
            Method::SkipInterface(p) => format!("skip-interface={}", join(p)),
            Method::Cidr(c) => format!(
                "cidr={}",
                c.iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Method::CanReach(d) => format!("can-reach={d}"),
            Method::KubernetesInternalIp => "kubernetes-internal-ip".into(),
        }
    }
}

/// IPv4 global unicast (see the module header).
fn valid(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            !(v.is_loopback()
                || v.is_link_local()
                || v.is_multicast()
                || v.is_broadcast()
                || v.is_unspecified())
        }
        IpAddr::V6(_) => false,
    }
}

/// [`DEFAULT_EXCLUDED`], compiled once (fixed text: a bad entry would be a bug, caught
/// by the unit tests, and is left out here rather than panicking).
static EXCLUDED: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    DEFAULT_EXCLUDED
        .iter()
        .filter_map(|p| Regex::new(p).ok())
        .collect()
});

fn excluded_by_default(name: &str) -> bool {
    EXCLUDED.iter().any(|r| r.is_match(name))
}

/// Chooses the address for every method but `can-reach` and `kubernetes-internal-ip`
/// (which need the kernel or the API; `None` for them). `addrs` is (interface, address with mask) in kernel order.
pub fn select(method: &Method, addrs: &[(String, IpNetwork)]) -> Option<IpNetwork> {
    let usable = |(iface, a): &&(String, IpNetwork)| {
        valid(a.ip())
            && match method {
                Method::FirstFound => !excluded_by_default(iface),
                Method::Interface(p) => p.iter().any(|p| p.matches(iface)),
                Method::SkipInterface(p) => {
                    !excluded_by_default(iface) && !p.iter().any(|p| p.matches(iface))
                }
                Method::Cidr(c) => c.iter().any(|c| c.contains(a.ip())),
                Method::CanReach(_) | Method::KubernetesInternalIp => false,
            }
    };
    addrs.iter().find(usable).map(|(_, a)| *a)
}

/// The interface prefix of `ip` (the `can-reach` answer), or `ip/32` when no interface
/// carries it.
pub fn with_mask(ip: Ipv4Addr, addrs: &[(String, IpNetwork)]) -> IpNetwork {
    addrs
        .iter()
        .map(|(_, a)| *a)
        .find(|a| a.ip() == IpAddr::V4(ip))
        .unwrap_or_else(|| IpNetwork::V4(ip.into()))
}

/// The first IPv4 `InternalIP` among a Kubernetes Node's `status.addresses`, given as
/// (type, address) pairs.
pub fn internal_ipv4<'a>(
    addresses: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<Ipv4Addr> {
    addresses
        .into_iter()
        .filter(|(ty, _)| *ty == "InternalIP")
        .find_map(|(_, a)| a.trim().parse::<Ipv4Addr>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> Vec<(String, IpNetwork)> {
        let a = |i: &str, n: &str| (i.to_string(), n.parse::<IpNetwork>().unwrap());
        vec![
            a("lo", "127.0.0.1/8"),
            a("docker0", "172.17.0.1/16"),
            a("cali1234", "169.254.1.1/32"),
            a("vxlan.calico", "10.244.0.1/32"),
            a("eth0", "fe80::1/64"),
            a("eth0", "169.254.3.3/16"),
            a("eth0", "10.0.0.5/24"),
            a("eth0", "10.0.0.6/24"),
            a("ens5", "10.1.0.5/24"),
            a("veth9", "10.2.0.5/24"),
        ]
    }

    fn m(text: &str) -> Method {
        Method::parse(Some(text)).unwrap()
    }

    fn pick(text: &str) -> Option<String> {
        select(&m(text), &addrs()).map(|a| a.to_string())
    }

    #[test]
    fn default_exclusions_compile() {
        for p in DEFAULT_EXCLUDED {
            assert!(Regex::new(p).is_ok(), "{p}");
        }
        assert_eq!(EXCLUDED.len(), DEFAULT_EXCLUDED.len());
    }

    #[test]
    fn first_found_skips_container_and_invalid_addresses() {
        assert_eq!(Method::parse(None).unwrap(), Method::FirstFound);
        assert_eq!(pick("first-found").as_deref(), Some("10.0.0.5/24"));
        assert_eq!(select(&Method::FirstFound, &addrs()[..4]), None);
    }

    #[test]
    fn interface_regexes_pick_the_first_matching_interface() {
        assert_eq!(pick("interface=ens.*").as_deref(), Some("10.1.0.5/24"));
        assert_eq!(
            pick("interface=nomatch, ens5").as_deref(),
            Some("10.1.0.5/24")
        );
        // No default exclusions for interface=, as Calico.
        assert_eq!(pick("interface=docker0").as_deref(), Some("172.17.0.1/16"));
        // Unanchored, as Go's MatchString: eth0 also matches veth0-like names.
        assert_eq!(pick("interface=eth").as_deref(), Some("10.0.0.5/24"));
        assert_eq!(pick("interface=^veth").as_deref(), Some("10.2.0.5/24"));
        assert_eq!(pick("interface=^wlan0$"), None);
    }

    #[test]
    fn skip_interface_adds_to_the_default_exclusions() {
        assert_eq!(pick("skip-interface=eth0").as_deref(), Some("10.1.0.5/24"));
        assert_eq!(
            pick("skip-interface=eth0,ens.*"),
            None,
            "veth9 stays skipped"
        );
    }

    #[test]
    fn cidr_picks_the_first_address_inside() {
        assert_eq!(pick("cidr=10.1.0.0/16").as_deref(), Some("10.1.0.5/24"));
        assert_eq!(
            pick("cidr=192.0.2.0/24, 10.0.0.6/32").as_deref(),
            Some("10.0.0.6/24")
        );
        // Any interface, as Calico: the docker bridge too when asked for.
        assert_eq!(pick("cidr=172.16.0.0/12").as_deref(), Some("172.17.0.1/16"));
        assert_eq!(pick("cidr=127.0.0.0/8"), None, "loopback is never valid");
    }

    #[test]
    fn can_reach_takes_the_interface_mask() {
        assert_eq!(m("can-reach=8.8.8.8"), Method::CanReach("8.8.8.8".into()));
        assert_eq!(
            m("can-reach=api.example.com"),
            Method::CanReach("api.example.com".into())
        );
        assert_eq!(select(&m("can-reach=8.8.8.8"), &addrs()), None);
        assert_eq!(
            with_mask("10.1.0.5".parse().unwrap(), &addrs()).to_string(),
            "10.1.0.5/24"
        );
        assert_eq!(
            with_mask("192.0.2.9".parse().unwrap(), &addrs()).to_string(),
            "192.0.2.9/32"
        );
    }

    #[test]
    fn kubernetes_internal_ip_takes_the_first_ipv4_internal_address() {
        assert_eq!(m("kubernetes-internal-ip"), Method::KubernetesInternalIp);
        assert_eq!(select(&Method::KubernetesInternalIp, &addrs()), None);
        let status = [
            ("Hostname", "n1"),
            ("ExternalIP", "203.0.113.5"),
            ("InternalIP", "fd00::5"),
            ("InternalIP", "10.1.0.5"),
            ("InternalIP", "10.0.0.5"),
        ];
        assert_eq!(internal_ipv4(status), Some("10.1.0.5".parse().unwrap()));
        assert_eq!(internal_ipv4([("ExternalIP", "203.0.113.5")]), None);
        assert_eq!(internal_ipv4([("InternalIP", "not an ip")]), None);
    }

    #[test]
    fn errors_name_the_variable_and_the_bad_part() {
        let err = |t: &str| Method::parse(Some(t)).unwrap_err().to_string();
        let e = err("interface=eth0,eth[");
        assert!(
            e.starts_with(r#"invalid IP_AUTODETECTION_METHOD: interface: regex "eth[": "#),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        assert_eq!(
            err("skip-interface=eth0,"),
            r#"invalid IP_AUTODETECTION_METHOD: skip-interface="eth0,": empty item in the list"#
        );
        assert!(
            err("cidr=10.0.0.0/24,10.1.0.0/33").contains(r#"cidr: "10.1.0.0/33": "#),
            "{}",
            err("cidr=10.0.0.0/24,10.1.0.0/33")
        );
        assert_eq!(
            err("cidr=fd00::/64"),
            r#"invalid IP_AUTODETECTION_METHOD: cidr: "fd00::/64" is not IPv4"#
        );
        assert_eq!(
            err("can-reach="),
            r#"invalid IP_AUTODETECTION_METHOD: can-reach: "" is neither an IPv4 address nor a host name"#
        );
        assert_eq!(
            err("can-reach=a b"),
            r#"invalid IP_AUTODETECTION_METHOD: can-reach: "a b" is neither an IPv4 address nor a host name"#
        );
        assert_eq!(
            err("can-reach=::1"),
            r#"invalid IP_AUTODETECTION_METHOD: can-reach: "::1" is not IPv4"#
        );
        assert_eq!(
            err("nic=eth0"),
            "invalid IP_AUTODETECTION_METHOD: unknown method \"nic=eth0\" (first-found, \
             interface=REGEX, skip-interface=REGEX, cidr=CIDR, can-reach=DEST, \
             kubernetes-internal-ip)"
        );
    }

    #[test]
    fn describe_round_trips() {
        for t in [
            "first-found",
            "interface=eth0,ens.*",
            "skip-interface=^eth1$",
            "cidr=10.0.0.0/8,192.168.0.0/16",
            "can-reach=10.0.0.1",
            "kubernetes-internal-ip",
        ] {
            assert_eq!(m(t).describe(), t);
            assert_eq!(m(&m(t).describe()), m(t));
        }
    }
}
