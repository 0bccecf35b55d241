//! Thin rtnetlink I/O for tunnel devices and VXLAN neighbours: create or adopt
//! `vxlan.calico` / `tunl0`, fix MAC, MTU, state and tunnel address only when they
//! differ (setting the same MAC again flushes the device's neighbours), and program
//! permanent ARP + FDB entries per remote VTEP.

use super::error::{RouteError, nl};
use super::kernel::LinkInfo;
use super::model::{IPIP_IFACE, IpipDevice, VXLAN_IFACE, Vtep, VxlanDevice};
use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::{Handle, LinkIpIp, LinkUnspec, LinkVxlan};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

async fn fix_link(
    h: &Handle,
    l: &LinkInfo,
    mtu: u32,
    mac: Option<&[u8]>,
    addr: Option<Ipv4Addr>,
    addrs: &[(u32, IpNetwork)],
) -> Result<(), RouteError> {
    if let Some(mac) = mac.filter(|m| *m != l.mac.as_slice()) {
        h.link()
            .set(
                LinkUnspec::new_with_index(l.index)
                    .address(mac.to_vec())
                    .build(),
            )
            .execute()
            .await
            .map_err(nl(format!("set {} address", l.name)))?;
    }
    if l.mtu != mtu {
        h.link()
            .set(LinkUnspec::new_with_index(l.index).mtu(mtu).build())
            .execute()
            .await
            .map_err(nl(format!("set {} mtu {mtu}", l.name)))?;
    }
    if !l.up {
        h.link()
            .set(LinkUnspec::new_with_index(l.index).up().build())
            .execute()
            .await
            .map_err(nl(format!("set {} up", l.name)))?;
    }
    // Re-adding an address that is there already still emits an event: skip it.
    let present = |a: Ipv4Addr| {
        addrs
            .iter()
            .any(|(i, n)| *i == l.index && n.ip() == IpAddr::V4(a) && n.prefix() == 32)
    };
    if let Some(a) = addr.filter(|a| !present(*a)) {
        h.address()
            .add(l.index, IpAddr::V4(a), 32)
            .replace()
            .execute()
            .await
            .map_err(nl(format!("add {a}/32 to {}", l.name)))?;
    }
    Ok(())
}

/// Creates `vxlan.calico` if missing, then fixes MAC, MTU, state and address.
/// Returns whether the device was created (its index is new).
pub async fn ensure_vxlan(
    h: &Handle,
    links: &[LinkInfo],
    dev: &VxlanDevice,
    uplink: Option<u32>,
    addrs: &[(u32, IpNetwork)],
) -> Result<bool, RouteError> {
    if let Some(l) = links.iter().find(|l| l.name == VXLAN_IFACE) {
        fix_link(h, l, dev.mtu, Some(&dev.mac), Some(dev.address), addrs).await?;
        return Ok(false);
    }
    let mut b = LinkVxlan::new(VXLAN_IFACE, dev.vni)
        .port(dev.port)
        .local(dev.local)
        .learning(false);
    if let Some(u) = uplink {
        b = b.dev(u);
    }
    h.link()
        .add(b.mtu(dev.mtu).address(dev.mac.to_vec()).up().build())
        .execute()
        .await
        .map_err(nl(format!("create {VXLAN_IFACE}")))?;
    h.address()
        .add(
            link_index(h, VXLAN_IFACE).await?.unwrap_or_default(),
            IpAddr::V4(dev.address),
            32,
        )
        .replace()
        .execute()
        .await
        .map_err(nl(format!("add {}/32 to {VXLAN_IFACE}", dev.address)))?;
    Ok(true)
}

/// Adopts `tunl0` (the `ipip` module creates it) or creates it; a kernel without the
/// module yields [`RouteError::IpipModuleMissing`].
pub async fn ensure_ipip(
    h: &Handle,
    links: &[LinkInfo],
    dev: &IpipDevice,
    addrs: &[(u32, IpNetwork)],
) -> Result<bool, RouteError> {
    if let Some(l) = links.iter().find(|l| l.name == IPIP_IFACE) {
        fix_link(h, l, dev.mtu, None, dev.address, addrs).await?;
        return Ok(false);
    }
    match h
        .link()
        .add(LinkIpIp::new(IPIP_IFACE).build())
        .execute()
        .await
    {
        Ok(()) => {}
        // EOPNOTSUPP ("Unknown device type"): no ipip module in this kernel.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -95 => {
            return Err(RouteError::IpipModuleMissing);
        }
        Err(e) => return Err(nl(format!("create {IPIP_IFACE}"))(e)),
    }
    Ok(true)
}

async fn link_index(h: &Handle, name: &str) -> Result<Option<u32>, RouteError> {
    tortie_cni::plumbing::link_index(h, &tortie_cni::Netns::current(), name)
        .await
        .map_err(RouteError::from)
}

/// Programs the permanent ARP entry and the FDB entry of one remote VTEP (replace).
pub async fn replace_vtep(h: &Handle, vxlan_index: u32, v: &Vtep) -> Result<(), RouteError> {
    h.neighbours()
        .add(vxlan_index, IpAddr::V4(v.tunnel_addr))
        .link_layer_address(&v.mac)
        .state(NeighbourState::Permanent)
        .replace()
        .execute()
        .await
        .map_err(nl(format!("neigh replace {} ({})", v.tunnel_addr, v.node)))?;
    h.neighbours()
        .add_bridge(vxlan_index, &v.mac)
        .destination(IpAddr::V4(v.node_ip))
        .flags(NeighbourFlags::Own)
        .state(NeighbourState::Permanent)
        .replace()
        .execute()
        .await
        .map_err(nl(format!(
            "fdb replace {} dst {} ({})",
            tortie_cni::names::format_mac(&v.mac),
            v.node_ip,
            v.node
        )))?;
    Ok(())
}

/// Removes the ARP and FDB entries of a VTEP that left (missing entries are fine).
pub async fn delete_vtep(h: &Handle, vxlan_index: u32, v: &Vtep) -> Result<(), RouteError> {
    let mut arp = NeighbourMessage::default();
    arp.header.family = AddressFamily::Inet;
    arp.header.ifindex = vxlan_index;
    arp.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
            v.tunnel_addr,
        )));
    let mut fdb = NeighbourMessage::default();
    fdb.header.family = AddressFamily::Bridge;
    fdb.header.ifindex = vxlan_index;
    fdb.header.flags = NeighbourFlags::Own;
    fdb.attributes
        .push(NeighbourAttribute::LinkLayerAddress(v.mac.to_vec()));
    fdb.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
            v.node_ip,
        )));
    for (what, msg) in [("neigh", arp), ("fdb", fdb)] {
        match h.neighbours().del(msg).execute().await {
            Ok(()) => {}
            Err(rtnetlink::Error::NetlinkError(e)) if matches!(e.raw_code(), -2 | -19) => {}
            Err(e) => return Err(nl(format!("{what} delete for {}", v.node))(e)),
        }
    }
    Ok(())
}

/// The VTEP entries already on `vxlan.calico` (permanent ARP entries paired with FDB
/// entries by MAC), so entries of nodes that left while felix was down can be removed.
/// Node names are unknown here and left empty.
pub async fn list_vteps(h: &Handle, vxlan_index: u32) -> Result<Vec<Vtep>, RouteError> {
    let mut arp: BTreeMap<Vec<u8>, Ipv4Addr> = BTreeMap::new();
    let mut s = h
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Inet)
        .execute();
    while let Some(m) = s.try_next().await.map_err(nl("dump neighbours"))? {
        if m.header.ifindex != vxlan_index || m.header.state != NeighbourState::Permanent {
            continue;
        }
        let (mut ip, mut mac) = (None, None);
        for a in m.attributes {
            match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => ip = Some(v4),
                NeighbourAttribute::LinkLayerAddress(l) => mac = Some(l),
                _ => {}
            }
        }
        if let (Some(ip), Some(mac)) = (ip, mac) {
            arp.insert(mac, ip);
        }
    }
    let mut out = Vec::new();
    let mut s = h
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Bridge)
        .execute();
    while let Some(m) = s.try_next().await.map_err(nl("dump fdb"))? {
        if m.header.ifindex != vxlan_index {
            continue;
        }
        let (mut dst, mut mac) = (None, None);
        for a in m.attributes {
            match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => dst = Some(v4),
                // Bridge-family entries carry the IPv4 destination as raw bytes.
                NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
                    dst = <[u8; 4]>::try_from(b.as_slice()).ok().map(Ipv4Addr::from)
                }
                NeighbourAttribute::LinkLayerAddress(l) => mac = Some(l),
                _ => {}
            }
        }
        let (Some(node_ip), Some(mac)) = (dst, mac) else {
            continue;
        };
        let (Some(tunnel_addr), Ok(mac6)) = (arp.get(&mac), <[u8; 6]>::try_from(mac.as_slice()))
        else {
            continue;
        };
        out.push(Vtep {
            node: String::new(),
            tunnel_addr: *tunnel_addr,
            mac: mac6,
            node_ip,
        });
    }
    Ok(out)
}
