//! Shared helpers for the RIB tests (`rib_*.rs`): a RIB for AS 64512 / 10.0.0.1, peers
//! brought up with one call, attribute and UPDATE builders.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;
use tortie_bgp::msg::{Afi, AsSegment, Message, Origin, PathAttributes, Update};
use tortie_bgp::rib::{Negotiated, PeerConfig, PeerId, Rib, RibConfig};

pub const LOCAL_AS: u32 = 64512;
pub const ROUTER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

pub fn net(s: &str) -> IpNetwork {
    s.parse().expect("test prefix")
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// The /26 number `i` inside 10.0.0.0/8.
pub fn p26(i: u32) -> IpNetwork {
    IpNetwork::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i << 6))), 26).expect("prefix")
}

pub fn cfg() -> RibConfig {
    RibConfig::new(LOCAL_AS, ROUTER_ID)
}

pub fn rib() -> Rib {
    Rib::new(cfg())
}

/// Peer `n` lives at 10.0.0.(n+1) with router id 10.255.0.n; our address toward it is
/// 10.0.0.1 / fd00::1.
pub fn peer_cfg(n: u8, asn: u32) -> PeerConfig {
    let mut p = PeerConfig::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n + 1)), asn, LOCAL_AS);
    p.local_v4 = Some(ROUTER_ID);
    p.local_v6 = Some(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1));
    p
}

pub fn negotiated(n: u8) -> Negotiated {
    Negotiated {
        families: vec![Afi::Ipv4Unicast, Afi::Ipv6Unicast],
        ..Negotiated::ipv4(Ipv4Addr::new(10, 255, 0, n))
    }
}

/// Adds peer `n` with AS `asn` and brings it up; drains its initial messages.
pub fn up(rib: &mut Rib, n: u8, asn: u32) -> PeerId {
    up_with(rib, peer_cfg(n, asn))
}

pub fn up_with(rib: &mut Rib, pc: PeerConfig) -> PeerId {
    let n = match pc.address {
        IpAddr::V4(a) => a.octets()[3] - 1,
        IpAddr::V6(_) => 0,
    };
    let id = rib.add_peer(pc);
    rib.peer_up(id, negotiated(n)).expect("peer up");
    rib.pending_messages(id).expect("drain");
    id
}

/// Attributes as peer `n` with AS path `path` would send them (next hop = its address).
pub fn attrs(n: u8, path: &[u32]) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: if path.is_empty() {
            vec![]
        } else {
            vec![AsSegment::Sequence(path.to_vec())]
        },
        next_hop: Some(Ipv4Addr::new(10, 0, 0, n + 1)),
        ..Default::default()
    }
}

pub fn announce(prefixes: &[IpNetwork], a: PathAttributes) -> Update {
    Update {
        withdrawn: vec![],
        attrs: Some(a),
        announced: prefixes.to_vec(),
        eor_family: None,
    }
}

pub fn withdraw(prefixes: &[IpNetwork]) -> Update {
    Update {
        withdrawn: prefixes.to_vec(),
        ..Update::default()
    }
}

/// Every UPDATE in `msgs` (other messages skipped).
pub fn updates(msgs: &[Message]) -> Vec<&Update> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Update(u) => Some(u),
            _ => None,
        })
        .collect()
}

/// (prefix, attrs) of every announcement in `msgs`.
pub fn announced(msgs: &[Message]) -> Vec<(IpNetwork, PathAttributes)> {
    updates(msgs)
        .into_iter()
        .flat_map(|u| {
            u.announced
                .iter()
                .map(|p| (*p, u.attrs.clone().expect("announcement has attributes")))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every withdrawn prefix in `msgs`.
pub fn withdrawn(msgs: &[Message]) -> Vec<IpNetwork> {
    updates(msgs)
        .into_iter()
        .flat_map(|u| u.withdrawn.clone())
        .collect()
}
