//! Import checks through the public API: dropped routes are treated as withdrawn and
//! counted.

mod rib_util;

use std::net::Ipv4Addr;

use rib_util::*;
use tortie_bgp::msg::{AsSegment, PathAttributes};
use tortie_bgp::rib::{RejectReason, Rib, RibConfig, RibError};

#[test]
fn as_path_loop_is_dropped_and_replaces_the_old_route() {
    let mut rib = rib();
    let a = up(&mut rib, 1, 65001);
    let pfx = net("10.1.0.0/26");
    rib.apply_update(a, &announce(&[pfx], attrs(1, &[65001])))
        .expect("ok route");
    let ch = rib
        .apply_update(a, &announce(&[pfx], attrs(1, &[65001, LOCAL_AS, 65003])))
        .expect("loop route");
    assert_eq!(ch.len(), 1);
    assert!(
        ch[0].is_withdrawal(),
        "looped announcement withdraws the old one"
    );
    let st = rib.peer_stats(a).expect("stats");
    assert_eq!(st.rejected, 1);
    assert_eq!(st.last_reject, Some(RejectReason::AsPathLoop));
    assert_eq!(st.received, 0);
}

#[test]
fn originator_id_of_ours_is_dropped() {
    let mut rib = rib();
    let a = up(&mut rib, 1, LOCAL_AS);
    let bad = PathAttributes {
        originator_id: Some(ROUTER_ID),
        ..attrs(1, &[])
    };
    let ch = rib
        .apply_update(a, &announce(&[net("10.2.0.0/26")], bad))
        .expect("apply");
    assert!(ch.is_empty());
    assert_eq!(
        rib.peer_stats(a).expect("stats").last_reject,
        Some(RejectReason::OriginatorIsUs)
    );
}

#[test]
fn cluster_list_with_our_cluster_id_is_dropped() {
    let mut c = cfg();
    c.cluster_id = Some(Ipv4Addr::new(1, 1, 1, 1));
    let mut rib = Rib::new(c);
    let a = up(&mut rib, 1, LOCAL_AS);
    let bad = PathAttributes {
        originator_id: Some(Ipv4Addr::new(10, 9, 9, 9)),
        cluster_list: vec![Ipv4Addr::new(2, 2, 2, 2), Ipv4Addr::new(1, 1, 1, 1)],
        ..attrs(1, &[])
    };
    assert!(
        rib.apply_update(a, &announce(&[net("10.3.0.0/26")], bad))
            .expect("apply")
            .is_empty()
    );
    assert_eq!(
        rib.peer_stats(a).expect("stats").last_reject,
        Some(RejectReason::ClusterLoop)
    );
    let good = PathAttributes {
        cluster_list: vec![Ipv4Addr::new(2, 2, 2, 2)],
        ..attrs(1, &[])
    };
    assert_eq!(
        rib.apply_update(a, &announce(&[net("10.3.0.0/26")], good))
            .expect("apply")
            .len(),
        1
    );
}

#[test]
fn bad_next_hops_are_dropped() {
    let mut rib = rib();
    let a = up(&mut rib, 1, 65001);
    for nh in [
        Some(Ipv4Addr::UNSPECIFIED),
        Some(Ipv4Addr::new(224, 0, 0, 1)),
        None,
    ] {
        let bad = PathAttributes {
            next_hop: nh,
            ..attrs(1, &[65001])
        };
        assert!(
            rib.apply_update(a, &announce(&[net("10.4.0.0/26")], bad))
                .expect("apply")
                .is_empty()
        );
    }
    assert_eq!(rib.peer_stats(a).expect("stats").rejected, 3);
    // IPv6 prefix without an MP next hop.
    let v6 = announce(&[net("fd00:1::/64")], attrs(1, &[65001]));
    assert!(rib.apply_update(a, &v6).expect("apply").is_empty());
    assert_eq!(
        rib.peer_stats(a).expect("stats").last_reject,
        Some(RejectReason::BadNextHop)
    );
}

#[test]
fn ipv6_route_with_mp_next_hop_is_accepted() {
    let mut rib = rib();
    let a = up(&mut rib, 1, 65001);
    let a6 = PathAttributes {
        next_hop: None,
        mp_next_hop: Some((ip("fd00::2"), Some(ip("fe80::2")))),
        ..attrs(1, &[65001])
    };
    let ch = rib
        .apply_update(a, &announce(&[net("fd00:1::/122")], a6))
        .expect("apply");
    assert_eq!(ch[0].paths[0].next_hop, Some(ip("fd00::2")));
}

#[test]
fn family_not_negotiated_is_dropped() {
    let mut rib = rib();
    let id = rib.add_peer(peer_cfg(1, 65001));
    rib.peer_up(
        id,
        tortie_bgp::rib::Negotiated::ipv4(Ipv4Addr::new(10, 255, 0, 1)),
    )
    .expect("up");
    let a6 = PathAttributes {
        mp_next_hop: Some((ip("fd00::2"), None)),
        ..attrs(1, &[65001])
    };
    assert!(
        rib.apply_update(id, &announce(&[net("fd00:1::/122")], a6))
            .expect("apply")
            .is_empty()
    );
    assert_eq!(
        rib.peer_stats(id).expect("stats").last_reject,
        Some(RejectReason::FamilyNotNegotiated)
    );
}

#[test]
fn ebgp_first_as_must_be_the_peers() {
    let mut rib = rib();
    let a = up(&mut rib, 1, 65001);
    let spoofed = PathAttributes {
        as_path: vec![AsSegment::Sequence(vec![65099])],
        ..attrs(1, &[])
    };
    assert!(
        rib.apply_update(a, &announce(&[net("10.5.0.0/26")], spoofed))
            .expect("apply")
            .is_empty()
    );
    assert_eq!(
        rib.peer_stats(a).expect("stats").last_reject,
        Some(RejectReason::FirstAsMismatch)
    );
}

#[test]
fn errors_name_the_peer() {
    let mut rib = rib();
    let id = rib.add_peer(peer_cfg(1, 65001));
    let u = announce(&[net("10.6.0.0/26")], attrs(1, &[65001]));
    assert_eq!(
        rib.apply_update(id, &u),
        Err(RibError::PeerNotUp { peer: id })
    );
    let ghost = tortie_bgp::rib::PeerId(99);
    let err = rib.apply_update(ghost, &u).expect_err("unknown");
    assert_eq!(err, RibError::UnknownPeer { peer: ghost });
    assert_eq!(err.to_string(), "unknown peer#99");
    let _ = RibConfig::new(1, ROUTER_ID);
}
