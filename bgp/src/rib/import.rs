//! Import checks on received routes (Adj-RIB-In admission). Pure.
//!
//! Attribute-level checks run once per UPDATE ([`check_attrs`]); the next-hop check runs
//! once per family ([`next_hop_for`]). A failed check turns the affected prefixes into
//! withdrawals (treat-as-withdraw), it never resets the session.

use std::net::{IpAddr, Ipv4Addr};

use crate::msg::{AsSegment, PathAttributes};

use super::types::{PeerConfig, RejectReason, RibConfig};

/// Checks that do not depend on the prefix: AS_PATH loop (eBGP), first AS (eBGP),
/// ORIGINATOR_ID and CLUSTER_LIST loops (RFC 4456 §8).
pub(crate) fn check_attrs(
    cfg: &RibConfig,
    peer: &PeerConfig,
    a: &PathAttributes,
) -> Result<(), RejectReason> {
    if !peer.is_ibgp() {
        let ours = count_as(&a.as_path, peer.local_as)
            + if peer.local_as != cfg.local_as {
                count_as(&a.as_path, cfg.local_as)
            } else {
                0
            };
        if ours > usize::from(peer.allowed_local_as) {
            return Err(RejectReason::AsPathLoop);
        }
        let first = a.as_path.iter().find_map(|s| match s {
            AsSegment::Sequence(v) | AsSegment::Set(v) => v.first().copied(),
            _ => None,
        });
        if first != Some(peer.remote_as) {
            return Err(RejectReason::FirstAsMismatch);
        }
    }
    if a.originator_id == Some(cfg.router_id) {
        return Err(RejectReason::OriginatorIsUs);
    }
    if a.cluster_list.contains(&cfg.effective_cluster_id()) {
        return Err(RejectReason::ClusterLoop);
    }
    Ok(())
}

fn count_as(path: &[AsSegment], asn: u32) -> usize {
    path.iter()
        .map(|s| match s {
            AsSegment::Sequence(v)
            | AsSegment::Set(v)
            | AsSegment::ConfedSequence(v)
            | AsSegment::ConfedSet(v) => v.iter().filter(|&&x| x == asn).count(),
        })
        .sum()
}

/// The usable forwarding next hop of `a` for a prefix of the given family, or why there is
/// none (RFC 4271 §5.1.3, RFC 4760 §3): IPv4 uses NEXT_HOP (or an IPv4 MP_REACH next
/// hop), IPv6 the MP_REACH global address. Unspecified, multicast, broadcast and our own
/// session address are rejected.
pub(crate) fn next_hop_for(
    a: &PathAttributes,
    v6: bool,
    own: Option<IpAddr>,
) -> Result<IpAddr, RejectReason> {
    let nh = if v6 {
        match a.mp_next_hop {
            Some((IpAddr::V6(g), _)) => IpAddr::V6(g),
            _ => return Err(RejectReason::BadNextHop),
        }
    } else {
        match (a.next_hop, a.mp_next_hop) {
            (Some(v4), _) => IpAddr::V4(v4),
            (None, Some((IpAddr::V4(v4), _))) => IpAddr::V4(v4),
            _ => return Err(RejectReason::BadNextHop),
        }
    };
    let bad = match nh {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4 == Ipv4Addr::BROADCAST,
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    };
    if bad || Some(nh) == own {
        return Err(RejectReason::BadNextHop);
    }
    Ok(nh)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RibConfig {
        RibConfig::new(64512, Ipv4Addr::new(10, 0, 0, 1))
    }

    fn ebgp() -> PeerConfig {
        PeerConfig::new("10.0.0.2".parse().expect("addr"), 65001, 64512)
    }

    fn ibgp() -> PeerConfig {
        PeerConfig::new("10.0.0.3".parse().expect("addr"), 64512, 64512)
    }

    fn path(p: Vec<u32>) -> PathAttributes {
        PathAttributes {
            as_path: vec![AsSegment::Sequence(p)],
            next_hop: Some(Ipv4Addr::new(10, 0, 0, 2)),
            ..Default::default()
        }
    }

    #[test]
    fn ebgp_loop_is_dropped_unless_allowed() {
        let a = path(vec![65001, 64512, 7]);
        assert_eq!(
            check_attrs(&cfg(), &ebgp(), &a),
            Err(RejectReason::AsPathLoop)
        );
        let mut allow = ebgp();
        allow.allowed_local_as = 1;
        assert_eq!(check_attrs(&cfg(), &allow, &a), Ok(()));
        assert_eq!(check_attrs(&cfg(), &ebgp(), &path(vec![65001, 7])), Ok(()));
    }

    #[test]
    fn loop_in_as_set_counts_too() {
        let mut a = path(vec![65001]);
        a.as_path.push(AsSegment::Set(vec![1, 64512]));
        assert_eq!(
            check_attrs(&cfg(), &ebgp(), &a),
            Err(RejectReason::AsPathLoop)
        );
    }

    #[test]
    fn ebgp_first_as_must_be_the_peer() {
        let a = path(vec![65099, 65001]);
        assert_eq!(
            check_attrs(&cfg(), &ebgp(), &a),
            Err(RejectReason::FirstAsMismatch)
        );
    }

    #[test]
    fn ibgp_is_not_loop_checked_on_as_path() {
        assert_eq!(check_attrs(&cfg(), &ibgp(), &path(vec![])), Ok(()));
    }

    #[test]
    fn originator_and_cluster_loops_are_dropped() {
        let mut a = path(vec![]);
        a.originator_id = Some(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(
            check_attrs(&cfg(), &ibgp(), &a),
            Err(RejectReason::OriginatorIsUs)
        );
        let mut c = cfg();
        c.cluster_id = Some(Ipv4Addr::new(1, 1, 1, 1));
        let mut b = path(vec![]);
        b.cluster_list = vec![Ipv4Addr::new(2, 2, 2, 2), Ipv4Addr::new(1, 1, 1, 1)];
        assert_eq!(check_attrs(&c, &ibgp(), &b), Err(RejectReason::ClusterLoop));
        b.cluster_list.pop();
        assert_eq!(check_attrs(&c, &ibgp(), &b), Ok(()));
    }

    #[test]
    fn next_hop_sanity() {
        let own: IpAddr = "10.0.0.1".parse().expect("addr");
        let mut a = path(vec![]);
        assert_eq!(
            next_hop_for(&a, false, Some(own)),
            Ok("10.0.0.2".parse().expect("addr"))
        );
        assert_eq!(next_hop_for(&a, true, None), Err(RejectReason::BadNextHop));
        for bad in ["0.0.0.0", "224.0.0.5", "255.255.255.255", "10.0.0.1"] {
            a.next_hop = Some(bad.parse().expect("addr"));
            assert_eq!(
                next_hop_for(&a, false, Some(own)),
                Err(RejectReason::BadNextHop),
                "{bad}"
            );
        }
        a.mp_next_hop = Some(("fd00::1".parse().expect("addr"), None));
        assert_eq!(
            next_hop_for(&a, true, None),
            Ok("fd00::1".parse().expect("addr"))
        );
        a.mp_next_hop = Some(("::".parse().expect("addr"), None));
        assert_eq!(next_hop_for(&a, true, None), Err(RejectReason::BadNextHop));
    }
}
