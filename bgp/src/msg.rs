//! BGP message model: plain value types shared by the codec (`wire`), the session FSM
//! (`fsm`) and the RIB (`rib`). Pure: no I/O, no clocks.
//!
//! The codec turns bytes into these values and back (`wire::decode_message`,
//! `wire::encode_message`); everything above it works on values only.

use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

/// Address family / subsequent address family pair (RFC 4760). Only unicast is modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Afi {
    Ipv4Unicast,
    Ipv6Unicast,
}

impl Afi {
    /// (AFI, SAFI) numbers on the wire.
    pub fn wire(self) -> (u16, u8) {
        match self {
            Afi::Ipv4Unicast => (1, 1),
            Afi::Ipv6Unicast => (2, 1),
        }
    }

    pub fn from_wire(afi: u16, safi: u8) -> Option<Afi> {
        match (afi, safi) {
            (1, 1) => Some(Afi::Ipv4Unicast),
            (2, 1) => Some(Afi::Ipv6Unicast),
            _ => None,
        }
    }
}

/// One BGP message (RFC 4271 §4).
// Messages are moved, not stored in bulk; boxing the UPDATE would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

/// OPEN (RFC 4271 §4.2). `asn` is the real (possibly 4-octet) AS: the codec writes
/// AS_TRANS (23456) into the 2-octet field when it does not fit and reads the real one
/// back from the 4-octet AS capability (RFC 6793).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Open {
    pub version: u8,
    pub asn: u32,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

/// Capabilities advertised in OPEN (RFC 5492).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Capability {
    /// RFC 4760.
    Multiprotocol(Afi),
    /// RFC 2918.
    RouteRefresh,
    /// RFC 7313.
    EnhancedRouteRefresh,
    /// RFC 6793.
    FourOctetAs(u32),
    /// RFC 4724 §3.
    GracefulRestart(GracefulRestartCap),
    /// RFC 8654.
    ExtendedMessage,
    /// Anything else, kept so it can be logged; never re-advertised.
    Unknown { code: u8, data: Vec<u8> },
}

/// RFC 4724 §3 Graceful Restart capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GracefulRestartCap {
    /// The Restart State (R) bit: the sender has restarted.
    pub restarting: bool,
    /// Restart time in seconds (12 bits).
    pub restart_time: u16,
    /// Per-AFI/SAFI: (family, forwarding state preserved (F bit)).
    pub families: Vec<(Afi, bool)>,
}

/// NOTIFICATION (RFC 4271 §4.5). `data` carries the RFC 9003 shutdown text for
/// Cease/Administrative Shutdown and Cease/Administrative Reset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

/// ROUTE-REFRESH (RFC 2918, RFC 7313 subtypes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRefresh {
    pub afi: Afi,
    /// 0 = normal request, 1 = BoRR, 2 = EoRR (RFC 7313 §3.2).
    pub subtype: u8,
}

/// UPDATE (RFC 4271 §4.3). IPv4 NLRI travel in `withdrawn`/`nlri` when `afi` is IPv4 and
/// the session is not using MP for v4; the codec places IPv6 (and, optionally, IPv4)
/// NLRI in MP_REACH/MP_UNREACH. At the value level both are unified: `announced`
/// and `withdrawn` hold every prefix of the message regardless of where it was carried,
/// and `attrs.mp_next_hop` holds the MP_REACH next hop.
///
/// An UPDATE with no attributes, no announced and no withdrawn prefixes is the IPv4
/// End-of-RIB marker; an UPDATE whose only content is an empty MP_UNREACH for a family
/// is that family's End-of-RIB (RFC 4724 §2). See [`Update::end_of_rib`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Update {
    pub withdrawn: Vec<IpNetwork>,
    pub attrs: Option<PathAttributes>,
    pub announced: Vec<IpNetwork>,
    /// Set for End-of-RIB of a non-IPv4 family (an empty MP_UNREACH of that family).
    pub eor_family: Option<Afi>,
}

impl Update {
    /// End-of-RIB marker for `afi` (RFC 4724 §2).
    pub fn end_of_rib(afi: Afi) -> Update {
        match afi {
            Afi::Ipv4Unicast => Update::default(),
            Afi::Ipv6Unicast => Update {
                eor_family: Some(afi),
                ..Update::default()
            },
        }
    }

    /// The family this UPDATE marks End-of-RIB for, if it is such a marker.
    pub fn is_end_of_rib(&self) -> Option<Afi> {
        if !self.withdrawn.is_empty() || !self.announced.is_empty() || self.attrs.is_some() {
            return None;
        }
        Some(self.eor_family.unwrap_or(Afi::Ipv4Unicast))
    }
}

/// ORIGIN values (RFC 4271 §5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

/// One AS_PATH segment (RFC 4271 §4.3, RFC 5065 confederation segments included).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AsSegment {
    Sequence(Vec<u32>),
    Set(Vec<u32>),
    ConfedSequence(Vec<u32>),
    ConfedSet(Vec<u32>),
}

/// An attribute this implementation does not interpret, carried through if it is optional
/// transitive (with the Partial bit set on re-advertisement, RFC 4271 §5).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RawAttribute {
    pub flags: u8,
    pub type_code: u8,
    pub value: Vec<u8>,
}

/// The path attributes of one UPDATE. AS numbers are always the real 4-octet values: the
/// codec merges AS4_PATH/AS4_AGGREGATOR from 2-octet peers (RFC 6793 §4.2.3) and splits
/// them back out when encoding for a 2-octet peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct PathAttributes {
    pub origin: Option<Origin>,
    pub as_path: Vec<AsSegment>,
    /// IPv4 NEXT_HOP attribute (type 3).
    pub next_hop: Option<Ipv4Addr>,
    /// MP_REACH next hop: global address, and a link-local one for IPv6 when present.
    pub mp_next_hop: Option<(IpAddr, Option<IpAddr>)>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    /// (AS, router ID).
    pub aggregator: Option<(u32, Ipv4Addr)>,
    pub communities: Vec<u32>,
    /// (global admin, local data 1, local data 2) (RFC 8092).
    pub large_communities: Vec<(u32, u32, u32)>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    /// Unrecognised optional attributes, in order of type code.
    pub unknown: Vec<RawAttribute>,
}

/// NOTIFICATION error codes (RFC 4271 §4.5, RFC 4486, RFC 9003).
pub mod err {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN_MESSAGE: u8 = 2;
    pub const UPDATE_MESSAGE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH: u8 = 7;

    // Message header subcodes.
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;

    // OPEN subcodes.
    pub const UNSUPPORTED_VERSION: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;

    // UPDATE subcodes.
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;

    // Cease subcodes (RFC 4486).
    pub const MAX_PREFIXES: u8 = 1;
    pub const ADMIN_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMIN_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIG_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
}
