//! Value types at the RIB's boundary: peer identity and facts, configuration, the route
//! events handed to the node agent, and the RIB's error type. Pure data, all serde-able so
//! an event log can be replayed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use super::attrs::SharedAttrs;
use super::paths::Paths;
use crate::msg::Afi;

/// Small copyable handle of a peer registered with [`super::Rib::add_peer`]. Never reused
/// within one RIB, so a stale id cannot silently address a different peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeerId(pub u32);

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "peer#{}", self.0)
    }
}

/// Where a path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PathSource {
    /// Originated by this speaker ([`super::Rib::originate`]).
    Local,
    /// Learned from a peer.
    Peer(PeerId),
}

/// How the NEXT_HOP is set on routes sent to a peer (Calico's `nextHopMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum NextHopMode {
    /// eBGP: next hop self. iBGP: keep a learned next hop, self for our own routes.
    #[default]
    Auto,
    /// Always our own address.
    SelfAddr,
    /// Keep the route's next hop whenever it has one (our own routes still get self).
    Keep,
}

/// Static facts about one peer, known before the session comes up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerConfig {
    /// The peer's address (tie-breaker of last resort, RFC 4271 §9.1.2.2 g).
    pub address: IpAddr,
    /// The peer's AS.
    pub remote_as: u32,
    /// Our AS on this session (Calico `localASNumber`; usually [`RibConfig::local_as`]).
    pub local_as: u32,
    /// The peer is a route-reflector client of ours (RFC 4456). Only meaningful for iBGP
    /// peers and when [`RibConfig::cluster_id`] is set.
    pub rr_client: bool,
    /// NEXT_HOP handling on export.
    pub next_hop_mode: NextHopMode,
    /// Our IPv4 next hop toward this peer (normally the session's local address).
    pub local_v4: Option<Ipv4Addr>,
    /// Our IPv6 next hop toward this peer for IPv6 routes (per-peer configured).
    pub local_v6: Option<Ipv6Addr>,
    /// The peer supports graceful restart: when we restart deferred
    /// ([`RibConfig::defer_until_eor`]) we wait for its End-of-RIBs.
    pub graceful_restart: bool,
    /// How many times our own AS may appear in a received AS_PATH (Calico
    /// `numAllowedLocalASNumbers`); 0 = standard loop detection.
    pub allowed_local_as: u8,
}

impl PeerConfig {
    /// A peer with defaults: Auto next hop, not an RR client, no GR, strict loop check.
    pub fn new(address: IpAddr, remote_as: u32, local_as: u32) -> PeerConfig {
        PeerConfig {
            address,
            remote_as,
            local_as,
            rr_client: false,
            next_hop_mode: NextHopMode::Auto,
            local_v4: None,
            local_v6: None,
            graceful_restart: false,
            allowed_local_as: 0,
        }
    }

    /// Internal (same AS) session.
    pub fn is_ibgp(&self) -> bool {
        self.remote_as == self.local_as
    }
}

/// What the session negotiated; passed to [`super::Rib::peer_up`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Negotiated {
    /// The peer's BGP identifier from its OPEN.
    pub router_id: Ipv4Addr,
    /// Families both sides advertised (IPv4 unicast when no MP capability was exchanged).
    pub families: Vec<Afi>,
    /// Both sides support 4-octet AS numbers (RFC 6793): affects encoded sizes.
    pub four_octet_as: bool,
    /// Enhanced route refresh (RFC 7313) negotiated: refreshes are wrapped in BoRR/EoRR.
    pub enhanced_route_refresh: bool,
    /// The peer's graceful-restart restart time in seconds, when it advertised GR.
    pub gr_restart_time: Option<u16>,
    /// Our local address on this session; fills [`PeerConfig::local_v4`]/`local_v6` when
    /// those are unset.
    pub local_address: Option<IpAddr>,
}

impl Negotiated {
    /// IPv4 unicast only, 4-octet AS, no optional features.
    pub fn ipv4(router_id: Ipv4Addr) -> Negotiated {
        Negotiated {
            router_id,
            families: vec![Afi::Ipv4Unicast],
            four_octet_as: true,
            enhanced_route_refresh: false,
            gr_restart_time: None,
            local_address: None,
        }
    }
}

/// Speaker-wide RIB settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RibConfig {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Route-reflector cluster id; `Some` makes this speaker reflect iBGP routes (RFC 4456).
    pub cluster_id: Option<Ipv4Addr>,
    /// LOCAL_PREF assumed when absent (iBGP, local routes) and assigned to eBGP routes.
    pub default_local_pref: u32,
    /// Largest encoded UPDATE produced (RFC 4271: 4096).
    pub max_message_size: usize,
    /// Restarting speaker (RFC 4724 §4.1): hold best-path selection and all exports until
    /// every GR-capable peer has sent End-of-RIB for its families, or until
    /// [`super::Rib::selection_deferral_expired`] is called.
    pub defer_until_eor: bool,
}

impl RibConfig {
    /// Defaults: no reflection, LOCAL_PREF 100, 4096-byte messages, no deferral.
    pub fn new(local_as: u32, router_id: Ipv4Addr) -> RibConfig {
        RibConfig {
            local_as,
            router_id,
            cluster_id: None,
            default_local_pref: 100,
            max_message_size: 4096,
            defer_until_eor: false,
        }
    }

    /// The id we put in CLUSTER_LIST and check on import: the cluster id, else router id.
    pub fn effective_cluster_id(&self) -> Ipv4Addr {
        self.cluster_id.unwrap_or(self.router_id)
    }
}

/// One usable path of a selected route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutePath {
    pub source: PathSource,
    /// Address of the peer it came from (`None` for local routes).
    pub peer_address: Option<IpAddr>,
    /// The forwarding next hop: NEXT_HOP for IPv4, the MP_REACH global address otherwise.
    /// `None` only for local routes originated without one.
    pub next_hop: Option<IpAddr>,
    pub attrs: SharedAttrs,
}

/// A change of the selected route of one prefix: the new best path first, followed by every
/// other equal-cost path; empty `paths` means the prefix is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RibChange {
    pub prefix: IpNetwork,
    pub paths: Paths,
}

impl RibChange {
    /// True when the prefix no longer has any route.
    pub fn is_withdrawal(&self) -> bool {
        self.paths.is_empty()
    }

    /// The best path, if any.
    pub fn best(&self) -> Option<&RoutePath> {
        self.paths.first()
    }
}

/// Why an announced prefix was not accepted (counted in [`PeerStats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectReason {
    /// Our AS appears in AS_PATH more often than allowed (eBGP loop, RFC 4271 §9.1.2).
    AsPathLoop,
    /// ORIGINATOR_ID equals our router id (RFC 4456 §8).
    OriginatorIsUs,
    /// CLUSTER_LIST contains our cluster id (RFC 4456 §8).
    ClusterLoop,
    /// Missing, unspecified, multicast, wrong-family or our own next hop (RFC 4271 §5.1.3).
    BadNextHop,
    /// eBGP route whose first AS is not the peer's AS (RFC 4271 §6.3).
    FirstAsMismatch,
    /// Prefix family not negotiated on this session.
    FamilyNotNegotiated,
}

/// Counters for one peer, for status output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStats {
    /// Prefixes currently in this peer's Adj-RIB-In.
    pub received: usize,
    /// Of those, currently stale (graceful restart).
    pub stale: usize,
    /// Prefixes currently in this peer's Adj-RIB-Out (sent and not withdrawn).
    pub advertised: usize,
    /// Announced prefixes dropped by import checks since the peer was added.
    pub rejected: u64,
    /// The reason of the most recent rejection.
    pub last_reject: Option<RejectReason>,
}

/// Errors of the RIB API. Route content problems never error: they are counted as
/// rejections (treat-as-withdraw).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum RibError {
    #[error("unknown {peer}")]
    UnknownPeer { peer: PeerId },
    #[error("{peer} is not established")]
    PeerNotUp { peer: PeerId },
    #[error("{peer} did not negotiate {family:?}")]
    FamilyNotNegotiated { peer: PeerId, family: Afi },
    #[error("local route {prefix} has a next hop of the wrong family")]
    LocalNextHopFamily { prefix: IpNetwork },
}
