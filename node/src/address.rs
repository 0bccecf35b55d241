//! The node address at start: the configured `IP`, or the one `IP_AUTODETECTION_METHOD`
//! picks ([`crate::autodetect`] decides) from this namespace's interfaces read over
//! netlink, from the kernel's source-address choice (`can-reach`), or from the
//! Kubernetes Node (`kubernetes-internal-ip`). Thin driver: it only reads.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnetwork::IpNetwork;
use tortie_cni::Netns;
use tortie_datastore::{Datastore, ObjectKey};

use crate::autodetect::Method;
use crate::config::{Config, NodeIp};
use crate::error::AgentError;

/// The node address: the configured one, or the one `IP_AUTODETECTION_METHOD` picks
/// from this namespace's interfaces ([`crate::autodetect`]). `ds` is needed only for
/// `kubernetes-internal-ip` (the Kubernetes Node is read from it).
pub async fn node_address(cfg: &Config, ds: Option<&Datastore>) -> Result<IpNetwork, AgentError> {
    let method = match &cfg.ip {
        NodeIp::Fixed(n) => return Ok(*n),
        NodeIp::Autodetect(m) => m,
    };
    let felix = |source| AgentError::Felix { source };
    let h = Netns::current()
        .connect()
        .map_err(|source| AgentError::Plumbing {
            what: "netlink".into(),
            source,
        })?;
    let links = tortie_felix::route::kernel::list_links(&h)
        .await
        .map_err(felix)?;
    let names: BTreeMap<u32, String> = links.into_iter().map(|l| (l.index, l.name)).collect();
    let mut addrs = tortie_felix::route::kernel::list_addrs(&h)
        .await
        .map_err(felix)?;
    // Interface order, then each interface's addresses in kernel order.
    addrs.sort_by_key(|(i, _)| *i);
    let named: Vec<(String, IpNetwork)> = addrs
        .into_iter()
        .filter_map(|(i, a)| Some((names.get(&i)?.clone(), a)))
        .collect();
    let found = match method {
        Method::CanReach(dest) => {
            let ip = source_towards(dest).await.map_err(|e| {
                AgentError::NoAddress(format!(
                    "{}={}: {e}",
                    crate::autodetect::VAR,
                    method.describe()
                ))
            })?;
            Some(crate::autodetect::with_mask(ip, &named))
        }
        Method::KubernetesInternalIp => {
            let ip = kube_internal_ip(ds, &cfg.node_name).await.map_err(|e| {
                AgentError::NoAddress(format!(
                    "{}=kubernetes-internal-ip: {e}",
                    crate::autodetect::VAR
                ))
            })?;
            Some(crate::autodetect::with_mask(ip, &named))
        }
        _ => crate::autodetect::select(method, &named),
    };
    let found = found.ok_or_else(|| {
        AgentError::NoAddress(format!(
            "{}={} found no valid IPv4 address",
            crate::autodetect::VAR,
            method.describe()
        ))
    })?;
    tracing::info!(method = %method.describe(), address = %found, "autodetected node address");
    Ok(found)
}

/// The first IPv4 `InternalIP` of the Kubernetes Node `name`.
async fn kube_internal_ip(ds: Option<&Datastore>, name: &str) -> Result<Ipv4Addr, String> {
    let ds = match ds {
        Some(ds @ Datastore::Kube(_)) => ds,
        _ => return Err("needs DATASTORE_TYPE=kubernetes".into()),
    };
    let node = ds
        .store::<tortie_crds::Node>()
        .get(&ObjectKey::cluster(name))
        .await
        .map_err(|e| format!("get Node {name}: {e}"))?
        .ok_or_else(|| format!("no Kubernetes Node {name}"))?;
    let addrs = node.status.and_then(|s| s.addresses).unwrap_or_default();
    crate::autodetect::internal_ipv4(addrs.iter().map(|a| (a.type_.as_str(), a.address.as_str())))
        .ok_or_else(|| format!("Node {name} has no IPv4 InternalIP in status.addresses"))
}

/// The source address the kernel picks towards `dest` (an IPv4 address or a host
/// name): a UDP socket is connected (which sends nothing) and asked for its own address.
async fn source_towards(dest: &str) -> Result<Ipv4Addr, String> {
    let target = match dest.parse::<Ipv4Addr>() {
        Ok(ip) => SocketAddr::new(IpAddr::V4(ip), 80),
        Err(_) => tokio::net::lookup_host((dest, 80))
            .await
            .map_err(|e| format!("resolve {dest}: {e}"))?
            .find(|a| a.is_ipv4())
            .ok_or_else(|| format!("{dest} has no IPv4 address"))?,
    };
    let sock = tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .await
        .map_err(|e| format!("UDP socket: {e}"))?;
    sock.connect(target)
        .await
        .map_err(|e| format!("no route to {target}: {e}"))?;
    match sock.local_addr().map_err(|e| format!("getsockname: {e}"))? {
        SocketAddr::V4(a) if !a.ip().is_unspecified() => Ok(*a.ip()),
        other => Err(format!(
            "the kernel chose no IPv4 source towards {target} ({other})"
        )),
    }
}
