//! Thin rtnetlink I/O for the route dataplane: dump links, addresses and main-table
//! routes into the model's types, and encode desired routes as replace / delete
//! requests carrying tortie's route protocol. No decisions live here.

use super::error::{RouteError, nl};
use super::model::{Hop, RouteTarget};
use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteNextHopFlags,
    RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, IpVersion, RouteMessageBuilder, RouteNextHopBuilder};
use std::collections::BTreeMap;
use std::net::IpAddr;
use tortie_cni::ROUTE_PROTOCOL;

/// One network interface as read from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub mtu: u32,
    pub up: bool,
    /// `veth`, `vxlan`, `ipip`, ... (`None` for plain devices such as `lo`).
    pub kind: Option<String>,
    pub mac: Vec<u8>,
}

/// One main-table route as read from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute {
    pub dst: IpNetwork,
    pub protocol: u8,
    /// `None` for route types tortie never programs (local, broadcast, ...).
    pub target: Option<RouteTarget>,
}

/// Every link in the namespace.
pub async fn list_links(h: &Handle) -> Result<Vec<LinkInfo>, RouteError> {
    let mut out = Vec::new();
    let mut s = h.link().get().execute();
    while let Some(m) = s.try_next().await.map_err(nl("dump links"))? {
        let mut l = LinkInfo {
            index: m.header.index,
            name: String::new(),
            mtu: 0,
            up: m.header.flags.contains(LinkFlags::Up),
            kind: None,
            mac: Vec::new(),
        };
        for a in m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n,
                LinkAttribute::Mtu(v) => l.mtu = v,
                LinkAttribute::Address(mac) => l.mac = mac,
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let NlLinkInfo::Kind(k) = i {
                            l.kind = Some(k.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        out.push(l);
    }
    Ok(out)
}

/// Every address: (interface index, address with prefix length).
pub async fn list_addrs(h: &Handle) -> Result<Vec<(u32, IpNetwork)>, RouteError> {
    let mut out = Vec::new();
    let mut s = h.address().get().execute();
    while let Some(m) = s.try_next().await.map_err(nl("dump addresses"))? {
        let ip = m.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        });
        let ip = ip.or_else(|| {
            m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        });
        if let Some(net) = ip.and_then(|ip| IpNetwork::new(ip, m.header.prefix_len).ok()) {
            out.push((m.header.index, net));
        }
    }
    Ok(out)
}

fn addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn name_of(names: &BTreeMap<u32, String>, index: u32) -> String {
    names
        .get(&index)
        .cloned()
        .unwrap_or_else(|| format!("#{index}"))
}

/// Converts a kernel route message; `None` for other tables.
pub fn parse_route(m: &RouteMessage, names: &BTreeMap<u32, String>) -> Option<KernelRoute> {
    let mut table = u32::from(m.header.table);
    let mut dst = None;
    let mut gateway = None;
    let mut oif = None;
    let mut multipath = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => dst = addr(d),
            RouteAttribute::Gateway(g) => gateway = addr(g),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::MultiPath(hops) => multipath = Some(hops),
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let dst = match dst {
        Some(ip) => ip,
        None if m.header.address_family == AddressFamily::Inet6 => IpAddr::V6(0.into()),
        None => IpAddr::V4(0.into()),
    };
    let dst = IpNetwork::new(dst, m.header.destination_prefix_length).ok()?;
    let target = match m.header.kind {
        RouteType::BlackHole => Some(RouteTarget::Blackhole),
        RouteType::Unicast => {
            if let Some(hops) = multipath {
                let mut hops: Vec<Hop> = hops
                    .iter()
                    .filter_map(|nh| {
                        let gw = nh.attributes.iter().find_map(|a| match a {
                            RouteAttribute::Gateway(g) => addr(g),
                            _ => None,
                        })?;
                        Some(Hop {
                            gateway: gw,
                            iface: Some(name_of(names, nh.interface_index)),
                            onlink: nh.flags.contains(RouteNextHopFlags::Onlink),
                        })
                    })
                    .collect();
                hops.sort();
                Some(RouteTarget::Gateway { hops })
            } else if let Some(gw) = gateway {
                Some(RouteTarget::Gateway {
                    hops: vec![Hop {
                        gateway: gw,
                        iface: oif.map(|i| name_of(names, i)),
                        onlink: m.header.flags.contains(RouteFlags::Onlink),
                    }],
                })
            } else {
                oif.map(|i| RouteTarget::Device {
                    iface: name_of(names, i),
                })
            }
        }
        _ => None,
    };
    Some(KernelRoute {
        dst,
        protocol: m.header.protocol.into(),
        target,
    })
}

/// Every main-table route (v4 and v6).
pub async fn dump_routes(
    h: &Handle,
    names: &BTreeMap<u32, String>,
) -> Result<Vec<KernelRoute>, RouteError> {
    let mut out = Vec::new();
    for v in [IpVersion::V4, IpVersion::V6] {
        let req = match v {
            IpVersion::V4 => RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            IpVersion::V6 => RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        };
        let mut s = h.route().get(req).execute();
        while let Some(m) = s.try_next().await.map_err(nl("dump routes"))? {
            if let Some(r) = parse_route(&m, names) {
                out.push(r);
            }
        }
    }
    Ok(out)
}

fn bad(dst: IpNetwork, e: impl std::fmt::Display) -> RouteError {
    RouteError::BadRoute {
        dst: dst.to_string(),
        reason: e.to_string(),
    }
}

/// Encodes a desired route (main table, tortie's protocol).
pub fn build_route(
    dst: IpNetwork,
    target: &RouteTarget,
    index_of: impl Fn(&str) -> Option<u32>,
) -> Result<RouteMessage, RouteError> {
    let need = |iface: &str| {
        index_of(iface).ok_or_else(|| RouteError::MissingIface {
            dst: dst.to_string(),
            iface: iface.to_string(),
        })
    };
    let b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dst.network(), dst.prefix())
        .map_err(|e| bad(dst, e))?
        .protocol(RouteProtocol::from(ROUTE_PROTOCOL));
    let msg = match target {
        RouteTarget::Blackhole => b.kind(RouteType::BlackHole).build(),
        RouteTarget::Device { iface } => b
            .output_interface(need(iface)?)
            .scope(RouteScope::Link)
            .build(),
        RouteTarget::Gateway { hops } if hops.len() == 1 => {
            let h = &hops[0];
            let mut b = b.gateway(h.gateway).map_err(|e| bad(dst, e))?;
            if let Some(i) = &h.iface {
                b = b.output_interface(need(i)?);
            }
            if h.onlink {
                b = b.onlink();
            }
            b.build()
        }
        RouteTarget::Gateway { hops } => {
            let family = if dst.is_ipv4() {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            };
            let mut nhs = Vec::new();
            for h in hops {
                let mut nb = RouteNextHopBuilder::new(family)
                    .via(h.gateway)
                    .map_err(|e| bad(dst, e))?;
                if let Some(i) = &h.iface {
                    nb = nb.interface(need(i)?);
                }
                if h.onlink {
                    nb = nb.onlink();
                }
                nhs.push(nb.build());
            }
            b.multipath(nhs).build()
        }
    };
    Ok(msg)
}

/// `ip route replace` of one desired route (one request; the reconciler batches through
/// [`super::batch`]).
pub async fn replace_route(
    h: &Handle,
    dst: IpNetwork,
    msg: RouteMessage,
) -> Result<(), RouteError> {
    h.route()
        .add(msg)
        .replace()
        .execute()
        .await
        .map_err(nl(format!("replace route {dst}")))
}

/// Encodes the deletion of OUR route to `dst` (the protocol in the request makes the
/// kernel skip routes of other programs to the same destination).
pub fn build_delete(dst: IpNetwork, target: &RouteTarget) -> Result<RouteMessage, RouteError> {
    let mut msg = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dst.network(), dst.prefix())
        .map_err(|e| bad(dst, e))?
        .protocol(RouteProtocol::from(ROUTE_PROTOCOL))
        .scope(RouteScope::NoWhere)
        .build();
    if *target == RouteTarget::Blackhole {
        msg.header.kind = RouteType::BlackHole;
    }
    Ok(msg)
}

/// Deletes OUR route to `dst` (one request; the reconciler batches through
/// [`super::batch`]).
pub async fn delete_route(
    h: &Handle,
    dst: IpNetwork,
    target: &RouteTarget,
) -> Result<(), RouteError> {
    let msg = build_delete(dst, target)?;
    match h.route().del(msg).execute().await {
        Ok(()) => Ok(()),
        // Already gone (ESRCH): the goal is reached.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -3 => Ok(()),
        Err(e) => Err(nl(format!("delete route {dst}"))(e)),
    }
}
