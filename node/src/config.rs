//! Agent configuration from the environment (calico-node's variables) and flags.
//!
//! Pure: no I/O. Owns the parsing of `NODENAME`, `IP`, `IP_AUTODETECTION_METHOD` (the
//! methods themselves live in [`crate::autodetect`]), `AS`,
//! the datastore choice (`DATASTORE_TYPE`, `KUBECONFIG`, `ETCD_ENDPOINTS`, `ETCD_PREFIX`),
//! `CALICO_NETWORKING_BACKEND`, the `CALICO_IPV4POOL_*` default pool, the health
//! listener (`TORTIE_HEALTH_ADDR`).
//!
//! Datastore, as calico-node: `DATASTORE_TYPE=kubernetes` (the default) uses the
//! kubeconfig file named by `KUBECONFIG` when set, else the pod's in-cluster service
//! account; `DATASTORE_TYPE=etcdv3` needs `ETCD_ENDPOINTS`. As tortiectl does, an unset
//! `DATASTORE_TYPE` with `ETCD_ENDPOINTS` given means etcdv3 (so an etcd-only set-up
//! such as `lab/up.sh` needs no extra variable).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use ipnetwork::IpNetwork;
use tortie_crds::IpPool;

use crate::autodetect::Method;
use crate::error::ConfigError;

/// `CALICO_NETWORKING_BACKEND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// BGP full mesh / peers (default).
    Bird,
    /// VXLAN routes from block affinities only; no BGP speaker.
    Vxlan,
    /// Neither BGP nor encapsulation routes: policy only.
    None,
}

/// Where the agent's objects live (`DATASTORE_TYPE` and its connection variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatastoreConfig {
    /// The Kubernetes API: the kubeconfig file `KUBECONFIG`, else in-cluster.
    Kubernetes { kubeconfig: Option<PathBuf> },
    /// etcd v3 at `ETCD_ENDPOINTS`, objects under `ETCD_PREFIX` (default `/tortie`).
    Etcd {
        endpoints: Vec<String>,
        prefix: String,
    },
}

/// The values `DATASTORE_TYPE` accepts.
pub const DATASTORE_TYPES: &str = "kubernetes, etcdv3";

/// How the node IPv4 address is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeIp {
    /// `IP=10.0.0.5/24`: given with its mask.
    Fixed(IpNetwork),
    /// `IP=autodetect` (or unset): by `IP_AUTODETECTION_METHOD`.
    Autodetect(Method),
}

/// Everything the agent needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub node_name: String,
    pub ip: NodeIp,
    /// This node's AS (`AS`), else the cluster's.
    pub as_number: Option<u32>,
    pub datastore: DatastoreConfig,
    pub backend: Backend,
    /// The default pool to create (`None` when `NO_DEFAULT_POOLS=true`).
    pub default_pool: Option<IpPool>,
    /// Where `tortiectl node status` asks (`TORTIE_STATUS_ADDR`).
    pub status_addr: String,
    /// Longest wait for BGP peers before felix is told it is in sync, seconds.
    pub in_sync_bound_secs: u64,
    /// Program IPv6 policy (ip6tables) as well (`FELIX_IPV6SUPPORT`, default true as
    /// felix's; set false where the kernel has no IPv6).
    pub ipv6_support: bool,
    /// Where the agent leaves `nodename` and `mtu` for the CNI plugin
    /// (`TORTIE_STATE_DIR`, default `/var/lib/tortie`, as calico-node's `/var/lib/calico`).
    pub state_dir: PathBuf,
    /// Where `/liveness`, `/readiness` and `/metrics` are served (`TORTIE_HEALTH_ADDR`,
    /// default [`DEFAULT_HEALTH_ADDR`] as calico-node's health port; `none` = off).
    pub health_addr: Option<SocketAddr>,
}

/// The default of [`Config::health_addr`] (calico-node's health port, loopback only: the
/// DaemonSet runs on the host network and the kubelet probes from the node itself).
pub const DEFAULT_HEALTH_ADDR: &str = "127.0.0.1:9099";

/// The default of [`Config::state_dir`]; `tortie-cni` reads `nodename` and `mtu` there.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/tortie";

fn get<'a>(env: &'a BTreeMap<String, String>, k: &str) -> Option<&'a str> {
    env.get(k).map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// Reads the configuration from environment-style key/values.
pub fn from_env(env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
    let bad = |field: &str, reason: String| ConfigError::Invalid {
        field: field.to_string(),
        reason,
    };
    let node_name = get(env, "NODENAME")
        .or_else(|| get(env, "HOSTNAME"))
        .ok_or_else(|| bad("NODENAME", "required (or HOSTNAME)".into()))?
        .to_string();
    if node_name.len() > 253 || node_name.contains('/') {
        return Err(bad("NODENAME", format!("{node_name:?} is not a node name")));
    }
    // As calico-node: the method is read only when the address is to be detected.
    let ip = match get(env, "IP") {
        None | Some("autodetect") => {
            NodeIp::Autodetect(Method::parse(get(env, crate::autodetect::VAR))?)
        }
        Some(text) => {
            if !text.contains('/') {
                return Err(bad("IP", format!("{text:?} needs its mask (10.0.0.5/24)")));
            }
            let net: IpNetwork = text
                .parse()
                .map_err(|e| bad("IP", format!("{text:?}: {e}")))?;
            if !net.is_ipv4() {
                return Err(bad("IP", format!("{text:?} is not IPv4")));
            }
            NodeIp::Fixed(net)
        }
    };
    let as_number = match get(env, "AS") {
        None => None,
        Some(t) => Some(
            t.parse::<tortie_crds::AsNumber>()
                .map_err(|e| bad("AS", format!("{t:?}: {e}")))?
                .get(),
        ),
    };
    let datastore = datastore_from_env(env)?;
    let backend = match get(env, "CALICO_NETWORKING_BACKEND") {
        None | Some("bird") => Backend::Bird,
        Some("vxlan") => Backend::Vxlan,
        Some("none") => Backend::None,
        Some(o) => {
            return Err(bad(
                "CALICO_NETWORKING_BACKEND",
                format!("{o:?}: bird|vxlan|none"),
            ));
        }
    };
    let default_pool = if get(env, "NO_DEFAULT_POOLS") == Some("true") {
        None
    } else {
        Some(
            tortie_crds::defaults::default_ipv4_pool(env)
                .map_err(|e| bad("CALICO_IPV4POOL_*", e.to_string()))?,
        )
    };
    let status_addr = get(env, "TORTIE_STATUS_ADDR")
        .unwrap_or(tortie_ctl::status::DEFAULT_STATUS_ADDR)
        .to_string();
    let in_sync_bound_secs = match get(env, "TORTIE_IN_SYNC_BOUND_SECS") {
        None => 30,
        Some(t) => t
            .parse()
            .map_err(|e| bad("TORTIE_IN_SYNC_BOUND_SECS", format!("{t:?}: {e}")))?,
    };
    let state_dir = PathBuf::from(get(env, "TORTIE_STATE_DIR").unwrap_or(DEFAULT_STATE_DIR));
    if !state_dir.is_absolute() {
        return Err(bad(
            "TORTIE_STATE_DIR",
            format!("{} must be an absolute path", state_dir.display()),
        ));
    }
    let health_addr = match get(env, "TORTIE_HEALTH_ADDR").unwrap_or(DEFAULT_HEALTH_ADDR) {
        "none" => None,
        t => Some(t.parse::<SocketAddr>().map_err(|_| {
            bad(
                "TORTIE_HEALTH_ADDR",
                format!("{t:?}: expected IP:PORT (e.g. {DEFAULT_HEALTH_ADDR}) or none"),
            )
        })?),
    };
    let ipv6_support = match get(env, "FELIX_IPV6SUPPORT").map(str::to_ascii_lowercase) {
        None => true,
        Some(v) if v == "true" => true,
        Some(v) if v == "false" => false,
        Some(v) => {
            return Err(bad(
                "FELIX_IPV6SUPPORT",
                format!("{v:?} is not true or false"),
            ));
        }
    };
    Ok(Config {
        node_name,
        ip,
        as_number,
        datastore,
        backend,
        default_pool,
        status_addr,
        in_sync_bound_secs,
        ipv6_support,
        state_dir,
        health_addr,
    })
}

/// The datastore part of the configuration (see the module header).
pub fn datastore_from_env(env: &BTreeMap<String, String>) -> Result<DatastoreConfig, ConfigError> {
    let bad = |field: &str, reason: String| ConfigError::Invalid {
        field: field.to_string(),
        reason,
    };
    let endpoints: Vec<String> = get(env, "ETCD_ENDPOINTS")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let ty = match get(env, "DATASTORE_TYPE") {
        Some(t) => t,
        None if !endpoints.is_empty() => "etcdv3",
        None => "kubernetes",
    };
    match ty {
        "kubernetes" => Ok(DatastoreConfig::Kubernetes {
            kubeconfig: get(env, "KUBECONFIG").map(PathBuf::from),
        }),
        "etcdv3" => {
            if endpoints.is_empty() {
                return Err(bad(
                    "ETCD_ENDPOINTS",
                    "required with DATASTORE_TYPE=etcdv3".into(),
                ));
            }
            let prefix = get(env, "ETCD_PREFIX")
                .unwrap_or(tortie_datastore::etcd::DEFAULT_ETCD_PREFIX)
                .to_string();
            if !prefix.starts_with('/') {
                return Err(bad(
                    "ETCD_PREFIX",
                    format!("{prefix:?} must start with '/'"),
                ));
            }
            Ok(DatastoreConfig::Etcd { endpoints, prefix })
        }
        other => Err(bad(
            "DATASTORE_TYPE",
            format!("unknown value {other:?} ({DATASTORE_TYPES})"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn minimal_env_gives_defaults() {
        let c = from_env(&env(&[
            ("NODENAME", "n1"),
            ("ETCD_ENDPOINTS", "http://e:2379"),
        ]))
        .unwrap();
        assert_eq!(c.node_name, "n1");
        assert_eq!(c.ip, NodeIp::Autodetect(Method::FirstFound));
        assert_eq!(c.backend, Backend::Bird);
        assert_eq!(
            c.datastore,
            DatastoreConfig::Etcd {
                endpoints: vec!["http://e:2379".into()],
                prefix: "/tortie".into()
            }
        );
        let pool = c.default_pool.unwrap();
        assert_eq!(pool.spec.cidr.to_string(), "192.168.0.0/16");
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/tortie"));
        assert!(c.ipv6_support);
    }

    #[test]
    fn ipv6_support_is_a_boolean() {
        let base = [("NODENAME", "n1"), ("ETCD_ENDPOINTS", "http://e:2379")];
        let with = |v: &str| {
            let mut pairs = base.to_vec();
            pairs.push(("FELIX_IPV6SUPPORT", v));
            from_env(&env(&pairs))
        };
        assert!(!with("false").unwrap().ipv6_support);
        assert!(with("True").unwrap().ipv6_support);
        let e = with("maybe").unwrap_err();
        assert!(e.to_string().contains("FELIX_IPV6SUPPORT"), "{e}");
    }

    #[test]
    fn health_addr_default_none_and_errors() {
        let base = [("NODENAME", "n1"), ("ETCD_ENDPOINTS", "http://e:2379")];
        let with = |v: &str| {
            let mut pairs = base.to_vec();
            pairs.push(("TORTIE_HEALTH_ADDR", v));
            from_env(&env(&pairs))
        };
        assert_eq!(
            from_env(&env(&base)).unwrap().health_addr,
            Some("127.0.0.1:9099".parse().unwrap())
        );
        assert_eq!(with("none").unwrap().health_addr, None);
        assert_eq!(
            with("10.0.0.1:19099").unwrap().health_addr,
            Some("10.0.0.1:19099".parse().unwrap())
        );
        let e = with("localhost").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"invalid TORTIE_HEALTH_ADDR: "localhost": expected IP:PORT (e.g. 127.0.0.1:9099) or none"#
        );
        assert!(with("127.0.0.1:99999").is_err());
    }

    #[test]
    fn state_dir_must_be_absolute() {
        let base = [("NODENAME", "n1"), ("ETCD_ENDPOINTS", "http://e:2379")];
        let mut pairs = base.to_vec();
        pairs.push(("TORTIE_STATE_DIR", "/tmp/x"));
        assert_eq!(
            from_env(&env(&pairs)).unwrap().state_dir,
            PathBuf::from("/tmp/x")
        );
        pairs.pop();
        pairs.push(("TORTIE_STATE_DIR", "relative/dir"));
        let e = from_env(&env(&pairs)).unwrap_err();
        assert!(e.to_string().contains("TORTIE_STATE_DIR"), "{e}");
    }

    #[test]
    fn errors_name_the_variable() {
        let e = from_env(&env(&[("ETCD_ENDPOINTS", "x")])).unwrap_err();
        assert!(e.to_string().contains("NODENAME"), "{e}");
        let e = from_env(&env(&[
            ("NODENAME", "n"),
            ("ETCD_ENDPOINTS", "x"),
            ("IP", "10.0.0.1"),
        ]))
        .unwrap_err();
        assert!(
            e.to_string().contains("IP") && e.to_string().contains("mask"),
            "{e}"
        );
        let e = from_env(&env(&[
            ("NODENAME", "n"),
            ("ETCD_ENDPOINTS", "x"),
            ("AS", "abc"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("AS"), "{e}");
        let e = from_env(&env(&[
            ("NODENAME", "n"),
            ("ETCD_ENDPOINTS", "x"),
            ("CALICO_NETWORKING_BACKEND", "gobgp"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("CALICO_NETWORKING_BACKEND"), "{e}");
    }

    #[test]
    fn fixed_ip_and_pool_env() {
        let c = from_env(&env(&[
            ("NODENAME", "n"),
            ("ETCD_ENDPOINTS", "a,b"),
            ("IP", "10.0.0.5/24"),
            ("AS", "64513"),
            ("CALICO_IPV4POOL_CIDR", "10.244.0.0/16"),
        ]))
        .unwrap();
        assert_eq!(c.ip, NodeIp::Fixed("10.0.0.5/24".parse().unwrap()));
        assert_eq!(c.as_number, Some(64513));
        assert!(
            matches!(&c.datastore, DatastoreConfig::Etcd { endpoints, .. } if endpoints == &["a", "b"])
        );
        assert_eq!(
            c.default_pool.unwrap().spec.cidr.to_string(),
            "10.244.0.0/16"
        );
    }

    #[test]
    fn datastore_defaults_to_kubernetes_in_cluster() {
        let c = from_env(&env(&[("NODENAME", "n1")])).unwrap();
        assert_eq!(
            c.datastore,
            DatastoreConfig::Kubernetes { kubeconfig: None }
        );
        let c = from_env(&env(&[
            ("NODENAME", "n1"),
            ("DATASTORE_TYPE", "kubernetes"),
            ("KUBECONFIG", "/etc/kube/config"),
            // Ignored on Kubernetes, as calico-node does.
            ("ETCD_ENDPOINTS", "http://e:2379"),
        ]))
        .unwrap();
        assert_eq!(
            c.datastore,
            DatastoreConfig::Kubernetes {
                kubeconfig: Some("/etc/kube/config".into())
            }
        );
    }

    #[test]
    fn datastore_etcdv3_and_its_errors() {
        let c = from_env(&env(&[
            ("NODENAME", "n1"),
            ("DATASTORE_TYPE", "etcdv3"),
            ("ETCD_ENDPOINTS", " http://a:2379 , ,http://b:2379"),
            ("ETCD_PREFIX", "/other"),
        ]))
        .unwrap();
        assert_eq!(
            c.datastore,
            DatastoreConfig::Etcd {
                endpoints: vec!["http://a:2379".into(), "http://b:2379".into()],
                prefix: "/other".into()
            }
        );
        let e = from_env(&env(&[("NODENAME", "n"), ("DATASTORE_TYPE", "foo")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"invalid DATASTORE_TYPE: unknown value "foo" (kubernetes, etcdv3)"#
        );
        let e = from_env(&env(&[("NODENAME", "n"), ("DATASTORE_TYPE", "etcdv3")])).unwrap_err();
        assert!(e.to_string().contains("ETCD_ENDPOINTS"), "{e}");
        let e = from_env(&env(&[
            ("NODENAME", "n"),
            ("ETCD_ENDPOINTS", "http://a:2379"),
            ("ETCD_PREFIX", "tortie"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("ETCD_PREFIX"), "{e}");
    }

    #[test]
    fn autodetection_method_is_read_when_autodetecting() {
        let c = from_env(&env(&[
            ("NODENAME", "n"),
            ("IP", "autodetect"),
            ("IP_AUTODETECTION_METHOD", "can-reach=10.0.0.1"),
        ]))
        .unwrap();
        assert_eq!(
            c.ip,
            NodeIp::Autodetect(Method::CanReach("10.0.0.1".into()))
        );
        let e = from_env(&env(&[
            ("NODENAME", "n"),
            ("IP_AUTODETECTION_METHOD", "interface=("),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("IP_AUTODETECTION_METHOD"), "{e}");
        // A fixed address never consults the method (calico-node does the same).
        let c = from_env(&env(&[
            ("NODENAME", "n"),
            ("IP", "10.0.0.5/24"),
            ("IP_AUTODETECTION_METHOD", "kubernetes-internal-ip"),
        ]))
        .unwrap();
        assert_eq!(c.ip, NodeIp::Fixed("10.0.0.5/24".parse().unwrap()));
    }
}
