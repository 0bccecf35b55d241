//! Export rules (what goes into a peer's Adj-RIB-Out, and with which attributes) and the
//! user policy hook. Pure.
//!
//! Built-in rules, applied before the hook:
//! - split horizon: a route is never sent back to the peer it came from;
//! - NO_ADVERTISE is sent to nobody, NO_EXPORT / NO_EXPORT_SUBCONFED to no eBGP peer
//!   (RFC 1997);
//! - iBGP-learned routes go to iBGP peers only when we reflect (RFC 4456 §6: a client's
//!   route to every iBGP peer, a non-client's route to clients only); reflected routes
//!   get ORIGINATOR_ID (if absent) and our cluster id prepended to CLUSTER_LIST;
//! - toward eBGP: our AS prepended as an AS_SEQUENCE, NEXT_HOP self (unless the peer's
//!   [`NextHopMode`] is `Keep`), LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST removed, MED
//!   removed from routes that came from another AS;
//! - toward iBGP: LOCAL_PREF set (the route's degree of preference, default 100), NEXT_HOP
//!   kept for learned routes and self for our own (or always self with `SelfAddr`);
//! - IPv4 routes carry NEXT_HOP, IPv6 routes the MP_REACH next hop (the peer's configured
//!   local IPv6 address); a route needing "self" when we have no address of that family
//!   toward the peer is not exported;
//! - unknown optional transitive attributes are passed on with the Partial bit, unknown
//!   non-transitive ones dropped (RFC 4271 §5).

use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;

use crate::msg::{AsSegment, PathAttributes};

use super::types::{NextHopMode, PathSource, PeerConfig, PeerId, RibConfig};

/// RFC 1997 well-known communities.
pub const NO_EXPORT: u32 = 0xFFFF_FF01;
pub const NO_ADVERTISE: u32 = 0xFFFF_FF02;
pub const NO_EXPORT_SUBCONFED: u32 = 0xFFFF_FF03;

const FLAG_TRANSITIVE: u8 = 0x40;
const FLAG_PARTIAL: u8 = 0x20;

/// What the policy hook sees for one (peer, prefix, path).
#[derive(Debug)]
pub struct ExportContext<'a> {
    /// The peer the route would be sent to.
    pub peer: PeerId,
    pub peer_config: &'a PeerConfig,
    pub prefix: &'a IpNetwork,
    /// Where the route came from.
    pub source: PathSource,
    /// Attributes as stored in the Loc-RIB.
    pub original: &'a PathAttributes,
    /// Attributes after the built-in export rules, as they would be sent.
    pub outgoing: &'a PathAttributes,
}

/// The hook's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportAction {
    /// Send `outgoing` unchanged.
    Accept,
    /// Do not send (a previously sent route is withdrawn).
    Reject,
    /// Send these attributes instead.
    Modify(PathAttributes),
}

/// Export policy hook, consulted for every route about to enter an Adj-RIB-Out, after the
/// built-in rules accepted it. Closures `Fn(&ExportContext) -> ExportAction` implement it.
pub trait ExportPolicy {
    fn export(&self, ctx: &ExportContext<'_>) -> ExportAction;
}

impl<F> ExportPolicy for F
where
    F: Fn(&ExportContext<'_>) -> ExportAction,
{
    fn export(&self, ctx: &ExportContext<'_>) -> ExportAction {
        self(ctx)
    }
}

/// The default policy: accept everything the built-in rules allow.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAll;

impl ExportPolicy for AcceptAll {
    fn export(&self, _: &ExportContext<'_>) -> ExportAction {
        ExportAction::Accept
    }
}

/// How the route to be exported was learned; with the attribute set this determines the
/// built-in transformation completely (so it is cached per peer under this key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SourceClass {
    Local,
    Ebgp,
    /// iBGP-learned; `router_id` is the sender's BGP identifier (for ORIGINATOR_ID).
    Ibgp {
        client: bool,
        router_id: Ipv4Addr,
    },
}

/// The target peer as the export rules see it.
pub(crate) struct Target<'a> {
    pub id: PeerId,
    pub cfg: &'a PeerConfig,
    /// Session local address (fills unset [`PeerConfig::local_v4`]/`local_v6`).
    pub session_local: Option<IpAddr>,
}

impl Target<'_> {
    fn self_v4(&self) -> Option<Ipv4Addr> {
        self.cfg.local_v4.or(match self.session_local {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        })
    }

    fn self_v6(&self) -> Option<IpAddr> {
        self.cfg
            .local_v6
            .map(IpAddr::V6)
            .or(match self.session_local {
                Some(IpAddr::V6(a)) => Some(IpAddr::V6(a)),
                _ => None,
            })
    }
}

/// Whether the built-in rules allow sending a route from `src` (learned from `src_peer`)
/// to `target` at all (split horizon, reflection rules, well-known communities).
pub(crate) fn eligible(
    cfg: &RibConfig,
    target: &Target<'_>,
    src: SourceClass,
    src_peer: Option<PeerId>,
    a: &PathAttributes,
) -> bool {
    if src_peer == Some(target.id) {
        return false;
    }
    if a.communities.contains(&NO_ADVERTISE) {
        return false;
    }
    let ebgp = !target.cfg.is_ibgp();
    if ebgp && (a.communities.contains(&NO_EXPORT) || a.communities.contains(&NO_EXPORT_SUBCONFED))
    {
        return false;
    }
    match src {
        SourceClass::Ibgp { client, .. } if !ebgp => {
            cfg.cluster_id.is_some() && (client || target.cfg.rr_client)
        }
        _ => true,
    }
}

/// Applies the built-in transformation for a route of family `v6`; `None` when no usable
/// next hop can be formed for this peer.
pub(crate) fn transform(
    cfg: &RibConfig,
    target: &Target<'_>,
    src: SourceClass,
    a: &PathAttributes,
    v6: bool,
) -> Option<PathAttributes> {
    let mut out = a.clone();
    let ebgp = !target.cfg.is_ibgp();
    let local = matches!(src, SourceClass::Local);
    let own_nh = if v6 {
        target.self_v6()
    } else {
        target.self_v4().map(IpAddr::V4)
    };
    let kept_nh = if v6 {
        match a.mp_next_hop {
            Some((g @ IpAddr::V6(_), _)) => Some(g),
            _ => None,
        }
    } else {
        a.next_hop.map(IpAddr::V4)
    };
    let keep = match target.cfg.next_hop_mode {
        NextHopMode::SelfAddr => false,
        NextHopMode::Keep => true,
        NextHopMode::Auto => !ebgp && !local,
    };
    let nh = if keep { kept_nh.or(own_nh) } else { own_nh }?;
    let keep_link_local = keep && kept_nh == Some(nh);
    match nh {
        IpAddr::V4(v4) if !v6 => {
            out.next_hop = Some(v4);
            out.mp_next_hop = None;
        }
        IpAddr::V6(_) if v6 => {
            let ll = if keep_link_local {
                a.mp_next_hop.and_then(|(_, ll)| ll)
            } else {
                None
            };
            out.next_hop = None;
            out.mp_next_hop = Some((nh, ll));
        }
        _ => return None,
    }
    if ebgp {
        prepend_as(&mut out.as_path, target.cfg.local_as);
        out.local_pref = None;
        out.originator_id = None;
        out.cluster_list.clear();
        if !local && !a.as_path.is_empty() {
            out.med = None;
        }
    } else {
        out.local_pref = Some(match src {
            SourceClass::Ebgp => cfg.default_local_pref,
            _ => a.local_pref.unwrap_or(cfg.default_local_pref),
        });
        if let SourceClass::Ibgp { router_id, .. } = src {
            // Only reflected routes reach here (see `eligible`).
            out.originator_id.get_or_insert(router_id);
            out.cluster_list.insert(0, cfg.effective_cluster_id());
        }
    }
    out.unknown.retain(|u| u.flags & FLAG_TRANSITIVE != 0);
    for u in &mut out.unknown {
        u.flags |= FLAG_PARTIAL;
    }
    Some(out)
}

/// Prepends `asn` to the AS_PATH as an AS_SEQUENCE (RFC 4271 §5.1.2), joining a leading
/// sequence when it has room (segments hold at most 255 ASes).
pub(crate) fn prepend_as(path: &mut Vec<AsSegment>, asn: u32) {
    if let Some(AsSegment::Sequence(v)) = path.first_mut()
        && v.len() < 255
    {
        v.insert(0, asn);
        return;
    }
    path.insert(0, AsSegment::Sequence(vec![asn]));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{Origin, RawAttribute};

    fn cfg() -> RibConfig {
        RibConfig::new(64512, Ipv4Addr::new(10, 0, 0, 1))
    }

    fn peer(asn: u32) -> PeerConfig {
        let mut p = PeerConfig::new("10.0.0.9".parse().expect("addr"), asn, 64512);
        p.local_v4 = Some(Ipv4Addr::new(10, 0, 0, 1));
        p.local_v6 = Some("fd00::1".parse().expect("addr"));
        p
    }

    fn target(cfg: &PeerConfig) -> Target<'_> {
        Target {
            id: PeerId(9),
            cfg,
            session_local: None,
        }
    }

    fn learned() -> PathAttributes {
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: vec![AsSegment::Sequence(vec![65001])],
            next_hop: Some(Ipv4Addr::new(10, 0, 0, 2)),
            med: Some(5),
            local_pref: Some(300),
            ..Default::default()
        }
    }

    #[test]
    fn prepend_joins_or_starts_a_sequence() {
        let mut p = vec![AsSegment::Sequence(vec![1])];
        prepend_as(&mut p, 9);
        assert_eq!(p, vec![AsSegment::Sequence(vec![9, 1])]);
        let mut p = vec![AsSegment::Set(vec![1, 2])];
        prepend_as(&mut p, 9);
        assert_eq!(
            p,
            vec![AsSegment::Sequence(vec![9]), AsSegment::Set(vec![1, 2])]
        );
        let mut p = vec![];
        prepend_as(&mut p, 9);
        assert_eq!(p, vec![AsSegment::Sequence(vec![9])]);
        let mut p = vec![AsSegment::Sequence(vec![1; 255])];
        prepend_as(&mut p, 9);
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn ebgp_export_prepends_sets_self_strips_lp_and_foreign_med() {
        let pc = peer(65002);
        let out = transform(&cfg(), &target(&pc), SourceClass::Ebgp, &learned(), false)
            .expect("exported");
        assert_eq!(out.as_path, vec![AsSegment::Sequence(vec![64512, 65001])]);
        assert_eq!(out.next_hop, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(out.local_pref, None);
        assert_eq!(out.med, None);
    }

    #[test]
    fn ebgp_export_keeps_med_of_local_routes() {
        let pc = peer(65002);
        let a = PathAttributes {
            med: Some(7),
            ..Default::default()
        };
        let out = transform(&cfg(), &target(&pc), SourceClass::Local, &a, false).expect("out");
        assert_eq!(out.med, Some(7));
        assert_eq!(out.as_path, vec![AsSegment::Sequence(vec![64512])]);
    }

    #[test]
    fn ibgp_export_sets_local_pref_and_keeps_next_hop() {
        let pc = peer(64512);
        let out =
            transform(&cfg(), &target(&pc), SourceClass::Ebgp, &learned(), false).expect("out");
        assert_eq!(out.local_pref, Some(100), "eBGP-learned gets the default");
        assert_eq!(out.next_hop, Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(out.as_path, learned().as_path, "no prepend on iBGP");
        let local = transform(
            &cfg(),
            &target(&pc),
            SourceClass::Local,
            &PathAttributes::default(),
            false,
        )
        .expect("out");
        assert_eq!(local.local_pref, Some(100));
        assert_eq!(local.next_hop, Some(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn next_hop_modes() {
        let mut pc = peer(64512);
        pc.next_hop_mode = NextHopMode::SelfAddr;
        let out =
            transform(&cfg(), &target(&pc), SourceClass::Ebgp, &learned(), false).expect("out");
        assert_eq!(out.next_hop, Some(Ipv4Addr::new(10, 0, 0, 1)));
        let mut pc = peer(65002);
        pc.next_hop_mode = NextHopMode::Keep;
        let out =
            transform(&cfg(), &target(&pc), SourceClass::Ebgp, &learned(), false).expect("out");
        assert_eq!(out.next_hop, Some(Ipv4Addr::new(10, 0, 0, 2)));
    }

    #[test]
    fn ipv6_uses_configured_v6_next_hop() {
        let pc = peer(65002);
        let a = PathAttributes {
            mp_next_hop: Some((
                "fd00::2".parse().expect("a"),
                Some("fe80::2".parse().expect("a")),
            )),
            ..learned()
        };
        let out = transform(&cfg(), &target(&pc), SourceClass::Ebgp, &a, true).expect("out");
        assert_eq!(out.mp_next_hop, Some(("fd00::1".parse().expect("a"), None)));
        assert_eq!(out.next_hop, None);
        let mut no_v6 = peer(65002);
        no_v6.local_v6 = None;
        assert_eq!(
            transform(&cfg(), &target(&no_v6), SourceClass::Ebgp, &a, true),
            None
        );
    }

    #[test]
    fn reflection_rules() {
        let mut c = cfg();
        let client = {
            let mut p = peer(64512);
            p.rr_client = true;
            p
        };
        let non_client = peer(64512);
        let from_client = SourceClass::Ibgp {
            client: true,
            router_id: Ipv4Addr::new(10, 0, 0, 5),
        };
        let from_non = SourceClass::Ibgp {
            client: false,
            router_id: Ipv4Addr::new(10, 0, 0, 6),
        };
        let a = learned();
        // Not a reflector: no iBGP → iBGP at all.
        assert!(!eligible(&c, &target(&client), from_client, None, &a));
        c.cluster_id = Some(Ipv4Addr::new(1, 1, 1, 1));
        assert!(eligible(&c, &target(&client), from_client, None, &a));
        assert!(eligible(&c, &target(&non_client), from_client, None, &a));
        assert!(eligible(&c, &target(&client), from_non, None, &a));
        assert!(!eligible(&c, &target(&non_client), from_non, None, &a));
        let out = transform(&c, &target(&client), from_non, &a, false).expect("out");
        assert_eq!(out.originator_id, Some(Ipv4Addr::new(10, 0, 0, 6)));
        assert_eq!(out.cluster_list, vec![Ipv4Addr::new(1, 1, 1, 1)]);
        assert_eq!(out.local_pref, Some(300), "iBGP LOCAL_PREF is kept");
    }

    #[test]
    fn split_horizon_and_well_known_communities() {
        let c = cfg();
        let e = peer(65002);
        let i = peer(64512);
        let a = learned();
        assert!(!eligible(
            &c,
            &target(&e),
            SourceClass::Ebgp,
            Some(PeerId(9)),
            &a
        ));
        assert!(eligible(
            &c,
            &target(&e),
            SourceClass::Ebgp,
            Some(PeerId(8)),
            &a
        ));
        let ne = PathAttributes {
            communities: vec![NO_EXPORT],
            ..a.clone()
        };
        assert!(!eligible(&c, &target(&e), SourceClass::Local, None, &ne));
        assert!(eligible(&c, &target(&i), SourceClass::Local, None, &ne));
        let na = PathAttributes {
            communities: vec![NO_ADVERTISE],
            ..a
        };
        assert!(!eligible(&c, &target(&i), SourceClass::Local, None, &na));
    }

    #[test]
    fn unknown_attributes_partial_or_dropped() {
        let pc = peer(65002);
        let a = PathAttributes {
            unknown: vec![
                RawAttribute {
                    flags: 0xC0,
                    type_code: 99,
                    value: vec![1],
                },
                RawAttribute {
                    flags: 0x80,
                    type_code: 100,
                    value: vec![2],
                },
            ],
            ..learned()
        };
        let out = transform(&cfg(), &target(&pc), SourceClass::Ebgp, &a, false).expect("out");
        assert_eq!(out.unknown.len(), 1);
        assert_eq!(out.unknown[0].flags, 0xE0);
    }
}
