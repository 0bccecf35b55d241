//! CNI CHECK (the workload is still as ADD left it) and STATUS (the plugin can serve
//! ADDs). CHECK compares the kernel and the datastore with `prevResult`: the host end
//! exists and is up, the container interface holds every address, each address has its
//! `/32` (`/128`) host route through the host end, the pod's default route points at the
//! gateway, the IPAM handle still holds the addresses and the WorkloadEndpoint names this
//! container.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use tortie_crds::{IpPool, WorkloadEndpoint};
use tortie_datastore::{Datastore, Filter};
use tortie_ipam::{Ipam, Stores};

use super::PluginError;
use super::add::{endpoint_key, pod_of};
use crate::conf::NetConf;
use crate::inspect::{addresses_on, link_state, routes_via};
use crate::names::{POD_GATEWAY_V4, POD_GATEWAY_V6, host_iface_name};
use crate::netns::Netns;
use crate::spec::{ErrorCode, Invocation, InvocationError};

/// Runs CHECK on `node` against `ds`.
pub async fn check(
    ds: &Datastore,
    inv: &Invocation,
    conf: &NetConf,
    node: &str,
) -> Result<(), PluginError> {
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        InvocationError::new(ErrorCode::InvalidConfig, "prevResult: required for CHECK")
    })?;
    let (namespace, pod) = pod_of(inv)?;
    let fail = |what: String| PluginError::Check {
        container: inv.container_id.clone(),
        what,
    };
    let mut ips = Vec::new();
    for c in &prev.ips {
        let net: IpNetwork = c.address.parse().map_err(|e| {
            InvocationError::new(
                ErrorCode::InvalidConfig,
                format!("prevResult.ips: {:?}: {e}", c.address),
            )
        })?;
        ips.push(net.ip());
    }
    if ips.is_empty() {
        return Err(fail("prevResult lists no address".into()));
    }
    let host_iface = prev
        .interfaces
        .iter()
        .find(|i| i.sandbox.is_empty())
        .map(|i| i.name.clone())
        .unwrap_or_else(|| host_iface_name(namespace, pod));

    // Host side.
    let host_ns = Netns::current();
    let h = host_ns
        .connect()
        .map_err(PluginError::plumbing("netlink in the host namespace"))?;
    let link = link_state(&h, &host_ns, &host_iface)
        .await
        .map_err(PluginError::plumbing(format!("reading {host_iface}")))?
        .ok_or_else(|| fail(format!("host interface {host_iface} is missing")))?;
    if !link.up {
        return Err(fail(format!("host interface {host_iface} is down")));
    }
    let host_routes = routes_via(&h, &host_ns, link.index)
        .await
        .map_err(PluginError::plumbing(format!(
            "reading routes via {host_iface}"
        )))?;
    for ip in &ips {
        if !host_routes.iter().any(|r| r.dst == IpNetwork::from(*ip)) {
            return Err(fail(format!("host route {ip} dev {host_iface} is missing")));
        }
    }

    // Pod side.
    let netns = inv.netns.clone().unwrap_or_default();
    let pod_ns = Netns::from_path(&netns);
    pod_ns.open().map_err(|e| PluginError::UnknownContainer {
        path: netns.clone(),
        reason: e.to_string(),
    })?;
    let p = pod_ns
        .connect()
        .map_err(PluginError::plumbing(format!("netlink in {netns}")))?;
    let eth = link_state(&p, &pod_ns, &inv.ifname)
        .await
        .map_err(PluginError::plumbing(format!("reading {}", inv.ifname)))?
        .ok_or_else(|| fail(format!("interface {} is missing in {netns}", inv.ifname)))?;
    let addrs = addresses_on(&p, &pod_ns, eth.index)
        .await
        .map_err(PluginError::plumbing(format!(
            "reading addresses of {}",
            inv.ifname
        )))?;
    for ip in &ips {
        if !addrs.iter().any(|a| a.ip() == *ip) {
            return Err(fail(format!("address {ip} is missing on {}", inv.ifname)));
        }
    }
    let pod_routes = routes_via(&p, &pod_ns, eth.index)
        .await
        .map_err(PluginError::plumbing(format!(
            "reading routes via {}",
            inv.ifname
        )))?;
    for (v4, gw) in [
        (true, IpAddr::V4(POD_GATEWAY_V4)),
        (false, IpAddr::V6(POD_GATEWAY_V6)),
    ] {
        let family_used = ips.iter().any(|ip| ip.is_ipv4() == v4);
        let present = pod_routes
            .iter()
            .any(|r| r.dst.prefix() == 0 && r.dst.is_ipv4() == v4 && r.gateway == Some(gw));
        if family_used && !present {
            return Err(fail(format!(
                "default route via {gw} is missing in {netns}"
            )));
        }
    }

    // Datastore side.
    let handle = conf.handle(&inv.container_id);
    let held = Ipam::new(Stores::from_datastore(ds))
        .addresses_of(&handle)
        .await
        .map_err(PluginError::ipam("lookup", &handle))?;
    for ip in &ips {
        if !held.contains(ip) {
            return Err(fail(format!("IPAM handle {handle} does not hold {ip}")));
        }
    }
    let key = endpoint_key(node, namespace, pod, &inv.ifname);
    let wep = ds
        .store::<WorkloadEndpoint>()
        .get(&key)
        .await
        .map_err(PluginError::ds(format!("get WorkloadEndpoint {key}")))?
        .ok_or_else(|| fail(format!("WorkloadEndpoint {key} is missing")))?;
    if wep.spec.container_id != inv.container_id {
        return Err(fail(format!(
            "WorkloadEndpoint {key} belongs to container {}",
            wep.spec.container_id
        )));
    }
    Ok(())
}

/// STATUS: the datastore answers and at least one enabled IP pool exists.
pub async fn status(ds: &Datastore, node: &str) -> Result<(), PluginError> {
    let pools = ds
        .store::<IpPool>()
        .list(&Filter::all())
        .await
        .map_err(|e| PluginError::NotAvailable(format!("listing IP pools: {e}")))?;
    if !pools.items.iter().any(|p| !p.spec.disabled) {
        return Err(PluginError::NotAvailable(format!(
            "no enabled IP pool to assign pod addresses on node {node}"
        )));
    }
    Ok(())
}
