//! OPEN handling for the session FSM. Pure.
//!
//! This module owns: the per-peer session configuration ([`FsmConfig`]), the OPEN we send
//! (capabilities from the configuration), validation of the peer's OPEN (RFC 4271 §6.2:
//! version, peer AS, hold time, BGP identifier) with the NOTIFICATION each failure maps
//! to, capability negotiation into [`Negotiated`] (the facts the codec context and the
//! RIB need), and the human-readable text of NOTIFICATIONs used in status.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::msg::{Afi, Capability, GracefulRestartCap, Notification, Open, err};

/// Our side of graceful restart (RFC 4724 §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalGr {
    /// Restart time we advertise, seconds (at most 4095).
    pub restart_time: u16,
    /// Set the Restart State (R) bit: we have just restarted. Cleared by the FSM after
    /// the first Established session.
    pub restarting: bool,
    /// Set the Forwarding State (F) bit for every family: our forwarding state survived.
    pub forwarding_preserved: bool,
}

/// Everything the FSM needs to know about one peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FsmConfig {
    pub local_as: u32,
    pub remote_as: u32,
    pub local_id: Ipv4Addr,
    /// Never connect; only accept the peer's connection.
    pub passive: bool,
    /// Hold time we offer, seconds: 0 (no keepalives) or at least 3.
    pub hold_time: u16,
    /// Keepalive interval, seconds; `None` = a third of the negotiated hold time.
    pub keepalive: Option<u16>,
    pub connect_retry: Duration,
    /// Hold timer while waiting for the peer's OPEN (RFC 4271 §8.2.2 suggests 4 minutes).
    pub open_hold_time: Duration,
    /// First idle-hold wait after a failure; doubled on each further failure.
    pub idle_hold_base: Duration,
    pub idle_hold_max: Duration,
    /// A session up this long resets the back-off.
    pub stable_time: Duration,
    /// Families we offer (multiprotocol capabilities).
    pub families: Vec<Afi>,
    pub graceful_restart: Option<LocalGr>,
    /// Offer the Extended Message capability (RFC 8654).
    pub extended_message: bool,
    /// Seed of the jitter applied to ConnectRetry and idle-hold waits (RFC 4271 §10:
    /// each wait is multiplied by a factor drawn from 0.75–1.0, so two speakers that
    /// failed together do not retry in lockstep). `None`: exact waits (tests).
    pub jitter_seed: Option<u64>,
}

impl FsmConfig {
    /// A configuration with the usual defaults (hold 90 s, connect retry 5 s, idle hold
    /// 1 s doubling up to 60 s, IPv4 and IPv6 unicast, no GR).
    pub fn new(local_as: u32, remote_as: u32, local_id: Ipv4Addr) -> FsmConfig {
        FsmConfig {
            local_as,
            remote_as,
            local_id,
            passive: false,
            hold_time: 90,
            keepalive: None,
            connect_retry: Duration::from_secs(5),
            open_hold_time: Duration::from_secs(240),
            idle_hold_base: Duration::from_secs(1),
            idle_hold_max: Duration::from_secs(60),
            stable_time: Duration::from_secs(60),
            families: vec![Afi::Ipv4Unicast, Afi::Ipv6Unicast],
            graceful_restart: None,
            extended_message: false,
            // Differs between the two ends of a session (distinct identifiers), and is
            // reproducible for a given configuration.
            jitter_seed: Some((u64::from(u32::from(local_id)) << 32) ^ u64::from(remote_as)),
        }
    }

    pub fn ibgp(&self) -> bool {
        self.local_as == self.remote_as
    }

    /// The OPEN we send.
    pub fn local_open(&self) -> Open {
        let mut capabilities: Vec<Capability> = self
            .families
            .iter()
            .map(|&f| Capability::Multiprotocol(f))
            .collect();
        capabilities.push(Capability::RouteRefresh);
        capabilities.push(Capability::EnhancedRouteRefresh);
        capabilities.push(Capability::FourOctetAs(self.local_as));
        if let Some(gr) = &self.graceful_restart {
            capabilities.push(Capability::GracefulRestart(GracefulRestartCap {
                restarting: gr.restarting,
                restart_time: gr.restart_time.min(4095),
                families: self
                    .families
                    .iter()
                    .map(|&f| (f, gr.forwarding_preserved))
                    .collect(),
            }));
        }
        if self.extended_message {
            capabilities.push(Capability::ExtendedMessage);
        }
        Open {
            version: 4,
            asn: self.local_as,
            hold_time: self.hold_time,
            bgp_id: self.local_id,
            capabilities,
        }
    }

    /// RFC 4271 §6.2 OPEN checks, then capability negotiation.
    pub fn validate_open(&self, open: &Open) -> Result<Negotiated, Notification> {
        let notif = |subcode: u8, data: Vec<u8>| Notification {
            code: err::OPEN_MESSAGE,
            subcode,
            data,
        };
        if open.version != 4 {
            return Err(notif(err::UNSUPPORTED_VERSION, vec![0, 4]));
        }
        if open.asn != self.remote_as {
            return Err(notif(err::BAD_PEER_AS, Vec::new()));
        }
        if open.hold_time == 1 || open.hold_time == 2 {
            return Err(notif(err::UNACCEPTABLE_HOLD_TIME, Vec::new()));
        }
        if open.bgp_id.is_unspecified() || (self.ibgp() && open.bgp_id == self.local_id) {
            return Err(notif(err::BAD_BGP_IDENTIFIER, Vec::new()));
        }
        let mut peer_families = Vec::new();
        let mut four_octet_as = false;
        let mut route_refresh = false;
        let mut enhanced_route_refresh = false;
        let mut extended_message = false;
        let mut peer_gr = None;
        for cap in &open.capabilities {
            match cap {
                Capability::Multiprotocol(f) => peer_families.push(*f),
                Capability::RouteRefresh => route_refresh = true,
                Capability::EnhancedRouteRefresh => enhanced_route_refresh = true,
                Capability::FourOctetAs(_) => four_octet_as = true,
                Capability::GracefulRestart(gr) => peer_gr = Some(gr.clone()),
                Capability::ExtendedMessage => extended_message = true,
                Capability::Unknown { .. } => {}
            }
        }
        // RFC 4760 §8: a peer without any multiprotocol capability speaks IPv4 unicast.
        if !open
            .capabilities
            .iter()
            .any(|c| matches!(c, Capability::Multiprotocol(_)))
        {
            peer_families.push(Afi::Ipv4Unicast);
        }
        let families: Vec<Afi> = self
            .families
            .iter()
            .copied()
            .filter(|f| peer_families.contains(f))
            .collect();
        if let Some(gr) = peer_gr.as_mut() {
            gr.families.retain(|(f, _)| families.contains(f));
        }
        let hold_time = self.hold_time.min(open.hold_time);
        let keepalive = if hold_time == 0 {
            0
        } else {
            let third = (hold_time / 3).max(1);
            self.keepalive.map_or(third, |k| k.clamp(1, third))
        };
        Ok(Negotiated {
            peer_as: open.asn,
            peer_id: open.bgp_id,
            ibgp: self.ibgp(),
            hold_time,
            keepalive,
            families,
            four_octet_as,
            route_refresh,
            enhanced_route_refresh: enhanced_route_refresh && route_refresh,
            extended_message: extended_message && self.extended_message,
            peer_gr,
            local_gr: self.graceful_restart.is_some(),
        })
    }
}

/// What one session negotiated (from both OPENs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Negotiated {
    pub peer_as: u32,
    pub peer_id: Ipv4Addr,
    pub ibgp: bool,
    /// Seconds; 0 = no hold timer and no keepalives.
    pub hold_time: u16,
    /// Seconds between our KEEPALIVEs (0 when `hold_time` is 0).
    pub keepalive: u16,
    /// Families both sides offered.
    pub families: Vec<Afi>,
    /// Both sides speak 4-octet AS numbers (RFC 6793).
    pub four_octet_as: bool,
    /// The peer accepts ROUTE-REFRESH (RFC 2918) / enhanced refresh (RFC 7313).
    pub route_refresh: bool,
    pub enhanced_route_refresh: bool,
    /// Both sides offered Extended Message (RFC 8654): messages up to 65535 bytes.
    pub extended_message: bool,
    /// The peer's GR capability, its families restricted to the negotiated ones.
    pub peer_gr: Option<GracefulRestartCap>,
    /// We advertised GR.
    pub local_gr: bool,
}

/// A Cease NOTIFICATION; for Administrative Shutdown/Reset with a non-empty `message`
/// the data is the RFC 9003 shutdown communication (length octet + UTF-8, at most 255
/// octets, cut at a character boundary).
pub fn shutdown_notification(subcode: u8, message: &str) -> Notification {
    let mut data = Vec::new();
    if !message.is_empty() && matches!(subcode, err::ADMIN_SHUTDOWN | err::ADMIN_RESET) {
        let mut end = message.len().min(255);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let text = &message.as_bytes()[..end];
        data.push(text.len() as u8);
        data.extend_from_slice(text);
    }
    Notification {
        code: err::CEASE,
        subcode,
        data,
    }
}

/// The NOTIFICATION as status shows it, in BIRD's words (e.g. `Bad peer AS`,
/// `Administrative shutdown: "maintenance"`).
pub fn describe_notification(n: &Notification) -> String {
    let name = match (n.code, n.subcode) {
        (err::MESSAGE_HEADER, err::CONNECTION_NOT_SYNCHRONIZED) => "Connection not synchronized",
        (err::MESSAGE_HEADER, err::BAD_MESSAGE_LENGTH) => "Bad message length",
        (err::MESSAGE_HEADER, err::BAD_MESSAGE_TYPE) => "Bad message type",
        (err::MESSAGE_HEADER, _) => "Invalid message header",
        (err::OPEN_MESSAGE, err::UNSUPPORTED_VERSION) => "Unsupported version number",
        (err::OPEN_MESSAGE, err::BAD_PEER_AS) => "Bad peer AS",
        (err::OPEN_MESSAGE, err::BAD_BGP_IDENTIFIER) => "Bad BGP identifier",
        (err::OPEN_MESSAGE, err::UNSUPPORTED_OPTIONAL_PARAMETER) => {
            "Unsupported optional parameter"
        }
        (err::OPEN_MESSAGE, err::UNACCEPTABLE_HOLD_TIME) => "Unacceptable hold time",
        (err::OPEN_MESSAGE, err::UNSUPPORTED_CAPABILITY) => "Required capability missing",
        (err::OPEN_MESSAGE, _) => "Invalid OPEN message",
        (err::UPDATE_MESSAGE, _) => "Invalid UPDATE message",
        (err::HOLD_TIMER_EXPIRED, _) => "Hold timer expired",
        (err::FSM, _) => "Finite state machine error",
        (err::CEASE, err::MAX_PREFIXES) => "Maximum number of prefixes reached",
        (err::CEASE, err::ADMIN_SHUTDOWN) => "Administrative shutdown",
        (err::CEASE, err::PEER_DECONFIGURED) => "Peer de-configured",
        (err::CEASE, err::ADMIN_RESET) => "Administrative reset",
        (err::CEASE, err::CONNECTION_REJECTED) => "Connection rejected",
        (err::CEASE, err::OTHER_CONFIG_CHANGE) => "Configuration change",
        (err::CEASE, err::CONNECTION_COLLISION) => "Connection collision resolution",
        (err::CEASE, err::OUT_OF_RESOURCES) => "Out of Resources",
        (err::CEASE, _) => "Cease",
        (err::ROUTE_REFRESH, _) => "Invalid ROUTE-REFRESH message",
        _ => "Unknown error",
    };
    let mut text = name.to_string();
    if n.code == err::CEASE
        && matches!(n.subcode, err::ADMIN_SHUTDOWN | err::ADMIN_RESET)
        && let Some((&len, rest)) = n.data.split_first()
        && let Some(msg) = rest.get(..usize::from(len))
        && let Ok(msg) = std::str::from_utf8(msg)
        && !msg.is_empty()
    {
        text.push_str(&format!(": \"{msg}\""));
    }
    if (n.code == err::OPEN_MESSAGE || n.code == err::UPDATE_MESSAGE)
        && (n.subcode == 0 || name.starts_with("Invalid"))
    {
        text.push_str(&format!(" (subcode {})", n.subcode));
    }
    text
}
