//! Configuration of the speaker and its peers, its validation, and the translation into
//! the pure cores' configurations ([`crate::fsm::FsmConfig`], [`crate::rib::PeerConfig`],
//! [`crate::rib::RibConfig`]). Pure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fsm::{FsmConfig, LocalGr};
use crate::msg::Afi;
use crate::rib::{self, NextHopMode, RibConfig};

use super::SpeakerError;
use super::sockopt::MD5_MAX_KEY_LEN;

/// Speaker-wide configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeakerConfig {
    pub local_as: u32,
    pub router_id: Ipv4Addr,
    /// Where to accept connections (`None`: active sessions only). Default `0.0.0.0:179`;
    /// port 0 picks a free port (see [`super::Speaker::listen_addr`]).
    pub listen: Option<SocketAddr>,
    /// Route-reflector cluster id: `Some` makes this speaker reflect to `rr_client` peers.
    pub cluster_id: Option<Ipv4Addr>,
    /// Graceful-restart time we advertise on every session (`None`: no GR capability).
    pub graceful_restart_time: Option<u16>,
    /// We have just restarted with forwarding state kept: advertise GR with the R and F
    /// bits, defer best-path selection and exports until our GR peers' End-of-RIBs (or
    /// `selection_deferral`), then send our table and End-of-RIB (RFC 4724 §4.1).
    pub restarting: bool,
    /// Longest wait for peers' End-of-RIBs when `restarting`.
    pub selection_deferral: Duration,
    /// First idle-hold wait after a session failure (doubles per failure, capped at 60 s).
    pub idle_hold: Duration,
}

impl SpeakerConfig {
    pub fn new(local_as: u32, router_id: Ipv4Addr) -> SpeakerConfig {
        SpeakerConfig {
            local_as,
            router_id,
            listen: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 179)),
            cluster_id: None,
            graceful_restart_time: Some(120),
            restarting: false,
            selection_deferral: Duration::from_secs(30),
            idle_hold: Duration::from_secs(1),
        }
    }

    pub(crate) fn rib_config(&self) -> RibConfig {
        let mut c = RibConfig::new(self.local_as, self.router_id);
        c.cluster_id = self.cluster_id;
        c.defer_until_eor = self.restarting && self.graceful_restart_time.is_some();
        c
    }
}

/// One configured peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerConfig {
    pub address: IpAddr,
    /// TCP port the peer listens on (we connect there).
    pub port: u16,
    pub remote_as: u32,
    /// Our AS on this session (Calico `localASNumber`), else the speaker's.
    pub local_as: Option<u32>,
    /// Never connect; wait for the peer.
    pub passive: bool,
    /// TCP MD5 signature password (RFC 2385), at most 80 bytes.
    pub password: Option<String>,
    /// GTSM (RFC 5082): the peer is at most this many hops away.
    pub ttl_security: Option<u8>,
    /// Hold time we offer, seconds (0 or at least 3).
    pub hold_time: u16,
    /// Keepalive interval, seconds (default: a third of the hold time).
    pub keepalive: Option<u16>,
    pub connect_retry: Duration,
    /// Overrides [`SpeakerConfig::graceful_restart_time`] for this peer; `Some(0)`
    /// disables GR on this session.
    pub graceful_restart_time: Option<u16>,
    /// The peer is our route-reflector client (RFC 4456).
    pub rr_client: bool,
    pub next_hop_mode: NextHopMode,
    /// Local address to connect from (also our IPv4 next hop when it is IPv4).
    pub source_address: Option<IpAddr>,
    /// Our IPv6 next hop for IPv6 routes sent over this session (needed for IPv6 over an
    /// IPv4 session).
    pub ipv6_next_hop: Option<Ipv6Addr>,
    pub families: Vec<Afi>,
    /// Name shown by status (Calico: `Mesh_10_0_0_2`, `Global_...`, `Node_...`).
    pub name: String,
}

impl PeerConfig {
    /// Defaults: port 179, active, hold 90 s, connect retry 5 s, IPv4 and IPv6 unicast.
    pub fn new(address: IpAddr, remote_as: u32) -> PeerConfig {
        PeerConfig {
            address,
            port: 179,
            remote_as,
            local_as: None,
            passive: false,
            password: None,
            ttl_security: None,
            hold_time: 90,
            keepalive: None,
            connect_retry: Duration::from_secs(5),
            graceful_restart_time: None,
            rr_client: false,
            next_hop_mode: NextHopMode::Auto,
            source_address: None,
            ipv6_next_hop: None,
            families: vec![Afi::Ipv4Unicast, Afi::Ipv6Unicast],
            name: format!("peer_{address}"),
        }
    }

    /// Checks the fields the FSM and the kernel would otherwise reject later.
    pub fn validate(&self) -> Result<(), SpeakerError> {
        let bad = |field: &'static str, reason: String| SpeakerError::InvalidPeerConfig {
            peer: self.address,
            field,
            reason,
        };
        if self.hold_time == 1 || self.hold_time == 2 {
            return Err(bad("hold_time", "must be 0 or at least 3 seconds".into()));
        }
        if self.keepalive == Some(0) {
            return Err(bad("keepalive", "must be at least 1 second".into()));
        }
        if self.port == 0 {
            return Err(bad("port", "must not be 0".into()));
        }
        if self.remote_as == 0 {
            return Err(bad("remote_as", "must not be 0".into()));
        }
        if let Some(p) = &self.password
            && (p.is_empty() || p.len() > MD5_MAX_KEY_LEN)
        {
            return Err(bad(
                "password",
                format!("must be 1..={MD5_MAX_KEY_LEN} bytes"),
            ));
        }
        if self.ttl_security == Some(0) {
            return Err(bad("ttl_security", "hops must be 1..=255".into()));
        }
        if self.families.is_empty() {
            return Err(bad("families", "at least one family is needed".into()));
        }
        if self.connect_retry.is_zero() {
            return Err(bad("connect_retry", "must be positive".into()));
        }
        if self.graceful_restart_time.is_some_and(|t| t > 4095) {
            return Err(bad("graceful_restart_time", "at most 4095 seconds".into()));
        }
        Ok(())
    }

    /// Whether changing from `self` to `new` needs the session to be reset (everything
    /// but the name does).
    pub fn needs_reset(&self, new: &PeerConfig) -> bool {
        let mut a = self.clone();
        a.name = new.name.clone();
        a != *new
    }

    pub(crate) fn local_as(&self, speaker: &SpeakerConfig) -> u32 {
        self.local_as.unwrap_or(speaker.local_as)
    }

    pub(crate) fn gr_time(&self, speaker: &SpeakerConfig) -> Option<u16> {
        self.graceful_restart_time
            .or(speaker.graceful_restart_time)
            .filter(|&t| t > 0)
    }

    pub(crate) fn fsm_config(&self, speaker: &SpeakerConfig) -> FsmConfig {
        let mut c = FsmConfig::new(self.local_as(speaker), self.remote_as, speaker.router_id);
        c.passive = self.passive;
        c.hold_time = self.hold_time;
        c.keepalive = self.keepalive;
        c.connect_retry = self.connect_retry;
        c.idle_hold_base = speaker.idle_hold;
        c.families = self.families.clone();
        c.graceful_restart = self.gr_time(speaker).map(|t| LocalGr {
            restart_time: t,
            restarting: speaker.restarting,
            forwarding_preserved: speaker.restarting,
        });
        c
    }

    pub(crate) fn rib_peer(&self, speaker: &SpeakerConfig) -> rib::PeerConfig {
        let mut c = rib::PeerConfig::new(self.address, self.remote_as, self.local_as(speaker));
        c.rr_client = self.rr_client;
        c.next_hop_mode = self.next_hop_mode;
        c.local_v4 = match self.source_address {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        };
        c.local_v6 = self.ipv6_next_hop.or(match self.source_address {
            Some(IpAddr::V6(a)) => Some(a),
            _ => None,
        });
        c.graceful_restart = self.gr_time(speaker).is_some();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerConfig {
        PeerConfig::new("10.0.0.2".parse().expect("addr"), 64513)
    }

    #[test]
    fn validation_names_the_field() {
        type Change = fn(&mut PeerConfig);
        let cases: Vec<(Change, &str)> = vec![
            (|p| p.hold_time = 2, "hold_time"),
            (|p| p.password = Some("x".repeat(81)), "password"),
            (|p| p.ttl_security = Some(0), "ttl_security"),
            (|p| p.families.clear(), "families"),
            (|p| p.port = 0, "port"),
        ];
        for (change, field) in cases {
            let mut p = peer();
            change(&mut p);
            match p.validate() {
                Err(SpeakerError::InvalidPeerConfig { field: f, peer, .. }) => {
                    assert_eq!(f, field);
                    assert_eq!(peer, p.address);
                }
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(peer().validate().is_ok());
    }

    #[test]
    fn translation_to_core_configs() {
        let mut s = SpeakerConfig::new(64512, "10.0.0.1".parse().expect("id"));
        s.restarting = true;
        let mut p = peer();
        p.local_as = Some(65000);
        p.passive = true;
        p.source_address = Some("10.0.0.1".parse().expect("addr"));
        let f = p.fsm_config(&s);
        assert_eq!((f.local_as, f.remote_as, f.passive), (65000, 64513, true));
        assert_eq!(
            f.graceful_restart.map(|g| (g.restart_time, g.restarting)),
            Some((120, true))
        );
        let r = p.rib_peer(&s);
        assert_eq!(r.local_v4, Some("10.0.0.1".parse().expect("addr")));
        assert!(r.graceful_restart);
        assert!(s.rib_config().defer_until_eor);
        p.graceful_restart_time = Some(0);
        assert!(p.fsm_config(&s).graceful_restart.is_none());
        let mut q = p.clone();
        q.name = "other".into();
        assert!(!p.needs_reset(&q));
        q.hold_time = 30;
        assert!(p.needs_reset(&q));
    }
}
