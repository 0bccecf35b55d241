//! Read-back of workload plumbing (for CNI CHECK and tests): whether a link exists and is
//! up, the addresses on a link and the main-table routes leaving through it. Reads only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::LinkFlags;
use netlink_packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::{Handle, RouteMessageBuilder};

use crate::error::PlumbingError;
use crate::netns::Netns;

fn nl(op: impl Into<String>, ns: &Netns) -> impl FnOnce(rtnetlink::Error) -> PlumbingError {
    let op = op.into();
    let ns = ns.to_string();
    move |source| PlumbingError::Netlink { op, ns, source }
}

/// A link as CHECK needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkState {
    /// Interface index.
    pub index: u32,
    /// Administratively up.
    pub up: bool,
}

/// The link named `name` in `ns`, or `None`.
pub async fn link_state(
    handle: &Handle,
    ns: &Netns,
    name: &str,
) -> Result<Option<LinkState>, PlumbingError> {
    let Some(index) = crate::plumbing::link_index(handle, ns, name).await? else {
        return Ok(None);
    };
    let mut links = handle.link().get().match_index(index).execute();
    let msg = links
        .try_next()
        .await
        .map_err(nl(format!("get link {name}"), ns))?;
    Ok(msg.map(|m| LinkState {
        index,
        up: m.header.flags.contains(LinkFlags::Up),
    }))
}

/// Every address on link `index` in `ns`, with its prefix length.
pub async fn addresses_on(
    handle: &Handle,
    ns: &Netns,
    index: u32,
) -> Result<Vec<IpNetwork>, PlumbingError> {
    let mut out = Vec::new();
    let mut s = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute();
    while let Some(m) = s
        .try_next()
        .await
        .map_err(nl(format!("dump addresses of #{index}"), ns))?
    {
        if m.header.index != index {
            continue;
        }
        let ip = m
            .attributes
            .iter()
            .find_map(|a| match a {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            })
            .or_else(|| {
                m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
        if let Some(net) = ip.and_then(|ip| IpNetwork::new(ip, m.header.prefix_len).ok()) {
            out.push(net);
        }
    }
    Ok(out)
}

/// One main-table route through a link: destination and gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkRoute {
    /// Destination prefix (`0.0.0.0/0` for a default route).
    pub dst: IpNetwork,
    /// Gateway, if any.
    pub gateway: Option<IpAddr>,
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Every main-table route (v4 and v6) leaving through link `index` in `ns`.
pub async fn routes_via(
    handle: &Handle,
    ns: &Netns,
    index: u32,
) -> Result<Vec<LinkRoute>, PlumbingError> {
    let mut out = Vec::new();
    for v6 in [false, true] {
        let req = if v6 {
            RouteMessageBuilder::<Ipv6Addr>::new().build()
        } else {
            RouteMessageBuilder::<Ipv4Addr>::new().build()
        };
        let mut s = handle.route().get(req).execute();
        while let Some(m) = s.try_next().await.map_err(nl("dump routes", ns))? {
            if u32::from(m.header.table) != 254 {
                continue;
            }
            let mut dst = None;
            let mut gateway = None;
            let mut oif = None;
            for a in &m.attributes {
                match a {
                    RouteAttribute::Destination(d) => dst = route_addr(d),
                    RouteAttribute::Gateway(g) => gateway = route_addr(g),
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    _ => {}
                }
            }
            if oif != Some(index) {
                continue;
            }
            let dst = dst.unwrap_or(if v6 {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            });
            if let Ok(dst) = IpNetwork::new(dst, m.header.destination_prefix_length) {
                out.push(LinkRoute { dst, gateway });
            }
        }
    }
    Ok(out)
}
