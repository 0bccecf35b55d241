//! Workload plumbing (Calico style): the `cali*` veth pair with its peer moved into the
//! pod namespace as `eth0`, the pod's /32 (/128) addresses and gateway routes, the host
//! end's MAC and sysctls, and the host route `<podIP> dev caliX scope link` carrying
//! [`crate::ROUTE_PROTOCOL`]. Also small netlink helpers felix reuses.

use crate::ROUTE_PROTOCOL;
use crate::error::PlumbingError;
use crate::names::{HOST_END_MAC, POD_GATEWAY_V4, POD_GATEWAY_V6};
use crate::netns::Netns;
use crate::sysctl;
use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use netlink_packet_route::link::LinkAttribute;
use netlink_packet_route::route::{RouteProtocol, RouteScope};
use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

/// Kernel limit on interface names (IFNAMSIZ - 1).
pub const MAX_IFACE_LEN: usize = 15;

/// What to build for one pod.
#[derive(Debug, Clone)]
pub struct WorkloadSetup {
    /// The node's namespace, where the `cali*` end and the host routes live.
    pub host_ns: Netns,
    /// The pod's namespace.
    pub pod_ns: Netns,
    /// Host-end name, usually [`crate::host_iface_name`].
    pub host_iface: String,
    /// Pod-side interface name (`eth0`).
    pub pod_iface: String,
    /// Pod addresses; IPv4 get a /32, IPv6 a /128.
    pub addrs: Vec<IpAddr>,
    /// MTU of both veth ends.
    pub mtu: u32,
}

/// What was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadPlumbing {
    /// Index of the host end in the host namespace.
    pub host_ifindex: u32,
    /// MAC of the pod's `eth0`.
    pub pod_mac: Vec<u8>,
}

fn check_name(field: &'static str, name: &str) -> Result<(), PlumbingError> {
    if name.is_empty() || name.len() > MAX_IFACE_LEN || name.contains('/') {
        return Err(PlumbingError::InvalidInput {
            field,
            reason: format!("interface name {name:?} must be 1..=15 chars without '/'"),
        });
    }
    Ok(())
}

fn nl(op: impl Into<String>, ns: &Netns) -> impl FnOnce(rtnetlink::Error) -> PlumbingError {
    let op = op.into();
    let ns = ns.to_string();
    move |source| PlumbingError::Netlink { op, ns, source }
}

/// Index of link `name`, or None if there is no such link.
pub async fn link_index(
    handle: &Handle,
    ns: &Netns,
    name: &str,
) -> Result<Option<u32>, PlumbingError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(Some(msg.header.index)),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc_enodev() => Ok(None),
        Err(e) => Err(nl(format!("get link {name}"), ns)(e)),
    }
}

const fn libc_enodev() -> i32 {
    19
}

async fn require_link(handle: &Handle, ns: &Netns, name: &str) -> Result<u32, PlumbingError> {
    link_index(handle, ns, name)
        .await?
        .ok_or_else(|| PlumbingError::LinkNotFound {
            name: name.to_string(),
            ns: ns.to_string(),
        })
}

/// `replace <ip>/32 (/128) dev <ifindex> scope link proto tortie`.
pub async fn replace_host_route(
    handle: &Handle,
    ns: &Netns,
    ifindex: u32,
    ip: IpAddr,
) -> Result<(), PlumbingError> {
    let proto = RouteProtocol::from(ROUTE_PROTOCOL);
    let msg = match ip {
        IpAddr::V4(a) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(a, 32)
            .output_interface(ifindex)
            .scope(RouteScope::Link)
            .protocol(proto)
            .build(),
        IpAddr::V6(a) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(a, 128)
            .output_interface(ifindex)
            .scope(RouteScope::Link)
            .protocol(proto)
            .build(),
    };
    handle
        .route()
        .add(msg)
        .replace()
        .execute()
        .await
        .map_err(nl(format!("replace route {ip} dev #{ifindex}"), ns))
}

/// Builds the pod's veth pair, addresses, routes and sysctls. A stale host end of the
/// same name (an earlier attempt) is deleted first, so the call is retry-safe.
pub async fn setup_workload(s: &WorkloadSetup) -> Result<WorkloadPlumbing, PlumbingError> {
    check_name("host_iface", &s.host_iface)?;
    check_name("pod_iface", &s.pod_iface)?;
    if s.addrs.is_empty() {
        return Err(PlumbingError::InvalidInput {
            field: "addrs",
            reason: "a workload needs at least one address".into(),
        });
    }
    if !(68..=65535).contains(&s.mtu) {
        return Err(PlumbingError::InvalidInput {
            field: "mtu",
            reason: format!("{} is outside 68..=65535", s.mtu),
        });
    }
    let host = s.host_ns.connect()?;
    let pod = s.pod_ns.connect()?;
    let hns = &s.host_ns;
    let pns = &s.pod_ns;

    if let Some(old) = link_index(&host, hns, &s.host_iface).await? {
        host.link()
            .del(old)
            .execute()
            .await
            .map_err(nl(format!("delete stale link {}", s.host_iface), hns))?;
    }
    // Temporary peer name, unique per host end; renamed to eth0 inside the pod.
    let tmp = format!(
        "tmp{}",
        &s.host_iface[s.host_iface.len().saturating_sub(11)..]
    );
    host.link()
        .add(
            LinkVeth::new(&s.host_iface, &tmp)
                .mtu(s.mtu)
                .address(HOST_END_MAC.to_vec())
                .build(),
        )
        .execute()
        .await
        .map_err(nl(format!("add veth {} peer {tmp}", s.host_iface), hns))?;
    let result = finish_setup(s, &host, &pod, &tmp).await;
    if result.is_err() {
        // Leave nothing half-built behind: deleting the host end removes the pair.
        if let Ok(Some(idx)) = link_index(&host, hns, &s.host_iface).await {
            let _ = host.link().del(idx).execute().await;
        }
    }
    let _ = pns;
    result
}

async fn finish_setup(
    s: &WorkloadSetup,
    host: &Handle,
    pod: &Handle,
    tmp: &str,
) -> Result<WorkloadPlumbing, PlumbingError> {
    let (hns, pns) = (&s.host_ns, &s.pod_ns);
    let peer = require_link(host, hns, tmp).await?;
    let pod_ns_file = pns.open()?;
    host.link()
        .set(
            LinkUnspec::new_with_index(peer)
                .setns_by_fd(pod_ns_file.as_raw_fd())
                .build(),
        )
        .execute()
        .await
        .map_err(nl(format!("move {tmp} into {pns}"), hns))?;

    // Pod side.
    let eth = require_link(pod, pns, tmp).await?;
    pod.link()
        .set(
            LinkUnspec::new_with_index(eth)
                .name(s.pod_iface.clone())
                .mtu(s.mtu)
                .build(),
        )
        .execute()
        .await
        .map_err(nl(format!("rename {tmp} to {}", s.pod_iface), pns))?;
    if s.addrs.iter().any(IpAddr::is_ipv6) {
        // A pod's /128 must not wait for duplicate address detection.
        let key = format!("net/ipv6/conf/{}/accept_dad", s.pod_iface);
        sysctl::apply(
            pns,
            vec![sysctl::Sysctl {
                key,
                value: "0".into(),
            }],
        )?;
    }
    pod.link()
        .set(LinkUnspec::new_with_index(eth).up().build())
        .execute()
        .await
        .map_err(nl(format!("set {} up", s.pod_iface), pns))?;
    if let Some(lo) = link_index(pod, pns, "lo").await? {
        pod.link()
            .set(LinkUnspec::new_with_index(lo).up().build())
            .execute()
            .await
            .map_err(nl("set lo up", pns))?;
    }
    for ip in &s.addrs {
        let len = if ip.is_ipv4() { 32 } else { 128 };
        let mut req = pod.address().add(eth, *ip, len).replace();
        if ip.is_ipv6() {
            // IFA_F_NODAD: usable at once. accept_dad=0 alone still leaves the address
            // tentative until the link has carrier, so a pod binding it right away (or a
            // test) could get "Cannot assign requested address".
            let m = req.message_mut();
            m.header.flags |= AddressHeaderFlags::Nodad;
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        req.execute()
            .await
            .map_err(nl(format!("add address {ip}/{len}"), pns))?;
    }
    if s.addrs.iter().any(IpAddr::is_ipv4) {
        let gw = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(POD_GATEWAY_V4, 32)
            .output_interface(eth)
            .scope(RouteScope::Link)
            .protocol(RouteProtocol::Boot)
            .build();
        pod.route()
            .add(gw)
            .replace()
            .execute()
            .await
            .map_err(nl("add route 169.254.1.1 dev eth0 scope link", pns))?;
        let default = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(Ipv4Addr::UNSPECIFIED, 0)
            .gateway(POD_GATEWAY_V4)
            .output_interface(eth)
            .protocol(RouteProtocol::Boot)
            .build();
        pod.route()
            .add(default)
            .replace()
            .execute()
            .await
            .map_err(nl("add default via 169.254.1.1", pns))?;
    }
    if s.addrs.iter().any(IpAddr::is_ipv6) {
        let default = RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(Ipv6Addr::UNSPECIFIED, 0)
            .gateway(POD_GATEWAY_V6)
            .output_interface(eth)
            .protocol(RouteProtocol::Boot)
            .build();
        pod.route()
            .add(default)
            .replace()
            .execute()
            .await
            .map_err(nl("add default via fe80::ecee:eeff:feee:eeee", pns))?;
    }
    let pod_mac = link_mac(pod, pns, eth).await?;

    // Host side.
    let host_idx = require_link(host, hns, &s.host_iface).await?;
    let v4 = s.addrs.iter().any(IpAddr::is_ipv4);
    let v6 = s.addrs.iter().any(IpAddr::is_ipv6);
    sysctl::apply(hns, sysctl::workload_sysctls(&s.host_iface, v4, v6))?;
    host.link()
        .set(LinkUnspec::new_with_index(host_idx).up().build())
        .execute()
        .await
        .map_err(nl(format!("set {} up", s.host_iface), hns))?;
    for ip in &s.addrs {
        replace_host_route(host, hns, host_idx, *ip).await?;
    }
    Ok(WorkloadPlumbing {
        host_ifindex: host_idx,
        pod_mac,
    })
}

async fn link_mac(handle: &Handle, ns: &Netns, index: u32) -> Result<Vec<u8>, PlumbingError> {
    let mut links = handle.link().get().match_index(index).execute();
    let msg = links
        .try_next()
        .await
        .map_err(nl(format!("get link #{index}"), ns))?;
    Ok(msg
        .and_then(|m| {
            m.attributes.into_iter().find_map(|a| match a {
                LinkAttribute::Address(mac) => Some(mac),
                _ => None,
            })
        })
        .unwrap_or_default())
}

/// Deletes the workload's host end (the kernel removes the peer and the routes with it).
/// A missing interface is success, so CNI DEL can be repeated.
pub async fn teardown_workload(host_ns: &Netns, host_iface: &str) -> Result<bool, PlumbingError> {
    check_name("host_iface", host_iface)?;
    let host = host_ns.connect()?;
    match link_index(&host, host_ns, host_iface).await? {
        Some(idx) => {
            host.link()
                .del(idx)
                .execute()
                .await
                .map_err(nl(format!("delete link {host_iface}"), host_ns))?;
            Ok(true)
        }
        None => Ok(false),
    }
}
