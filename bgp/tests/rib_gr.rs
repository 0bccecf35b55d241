//! Graceful restart (RFC 4724) bookkeeping: stale marking, the exact End-of-RIB sweep,
//! restart-timer expiry, and selection deferral as a restarting speaker.

mod rib_util;

use rib_util::*;
use tortie_bgp::msg::{Afi, Message, PathAttributes, Update};
use tortie_bgp::rib::{PathSource, PeerConfig, Rib, RibConfig};

fn ps(n: u32) -> Vec<ipnetwork::IpNetwork> {
    (0..n).map(p26).collect()
}

#[test]
fn stale_routes_stay_until_end_of_rib_then_exactly_the_missing_one_goes() {
    let mut rib = rib();
    let gr = up(&mut rib, 1, 65001);
    let dst = up(&mut rib, 2, 65002);
    let all = ps(5);
    rib.apply_update(gr, &announce(&all, attrs(1, &[65001])))
        .expect("a");
    rib.pending_messages(dst).expect("drain");

    // Session lost with GR: nothing changes for forwarding or for other peers.
    let ch = rib
        .peer_down_graceful(gr, &[Afi::Ipv4Unicast])
        .expect("gr down");
    assert!(ch.is_empty(), "{ch:?}");
    assert_eq!(rib.loc_rib_len(), 5);
    assert_eq!(rib.peer_stats(gr).expect("stats").stale, 5);
    assert!(
        rib.pending_messages(dst)
            .expect("nothing to send")
            .is_empty()
    );

    // It comes back and re-sends four of the five (one with new attributes).
    rib.peer_up(gr, negotiated(1)).expect("up again");
    let ch = rib
        .apply_update(gr, &announce(&all[..3], attrs(1, &[65001])))
        .expect("same");
    assert!(
        ch.is_empty(),
        "identical re-announcements change nothing: {ch:?}"
    );
    let changed = PathAttributes {
        med: Some(7),
        ..attrs(1, &[65001])
    };
    let ch = rib
        .apply_update(gr, &announce(&all[3..4], changed))
        .expect("changed");
    assert_eq!(ch.len(), 1);
    assert_eq!(rib.peer_stats(gr).expect("stats").stale, 1);
    // Before End-of-RIB nothing goes.
    assert_eq!(rib.loc_rib_len(), 5);

    // End-of-RIB: exactly the missing one is swept.
    let ch = rib
        .apply_update(gr, &Update::end_of_rib(Afi::Ipv4Unicast))
        .expect("eor");
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0].prefix, all[4]);
    assert!(ch[0].is_withdrawal());
    assert_eq!(rib.loc_rib_len(), 4);
    assert_eq!(rib.peer_stats(gr).expect("stats").stale, 0);
    assert_eq!(
        withdrawn(&rib.pending_messages(dst).expect("drain")),
        vec![all[4]]
    );
}

#[test]
fn end_of_rib_sweeps_only_its_family() {
    let mut rib = rib();
    let gr = up(&mut rib, 1, 65001);
    let v6 = PathAttributes {
        next_hop: None,
        mp_next_hop: Some((ip("fd00::2"), None)),
        ..attrs(1, &[65001])
    };
    rib.apply_update(gr, &announce(&[net("fd00:1::/122")], v6))
        .expect("v6");
    rib.apply_update(gr, &announce(&[p26(0)], attrs(1, &[65001])))
        .expect("v4");
    rib.peer_down_graceful(gr, &[Afi::Ipv4Unicast, Afi::Ipv6Unicast])
        .expect("down");
    rib.peer_up(gr, negotiated(1)).expect("up");
    let ch = rib.end_of_rib(gr, Afi::Ipv4Unicast).expect("eor v4");
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0].prefix, p26(0));
    assert_eq!(
        rib.loc_rib_len(),
        1,
        "the v6 route waits for the v6 End-of-RIB"
    );
    let ch = rib.end_of_rib(gr, Afi::Ipv6Unicast).expect("eor v6");
    assert_eq!(ch[0].prefix, net("fd00:1::/122"));
}

#[test]
fn families_without_preserved_state_are_flushed_at_once() {
    let mut rib = rib();
    let gr = up(&mut rib, 1, 65001);
    let v6 = PathAttributes {
        next_hop: None,
        mp_next_hop: Some((ip("fd00::2"), None)),
        ..attrs(1, &[65001])
    };
    rib.apply_update(gr, &announce(&[net("fd00:1::/122")], v6))
        .expect("v6");
    rib.apply_update(gr, &announce(&[p26(0)], attrs(1, &[65001])))
        .expect("v4");
    let ch = rib
        .peer_down_graceful(gr, &[Afi::Ipv4Unicast])
        .expect("down");
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0].prefix, net("fd00:1::/122"));
}

#[test]
fn restart_timer_expiry_sweeps_all_stale() {
    let mut rib = rib();
    let gr = up(&mut rib, 1, 65001);
    let other = up(&mut rib, 2, 65001);
    rib.apply_update(gr, &announce(&ps(10), attrs(1, &[65001])))
        .expect("a");
    // The other peer shares one prefix: it must survive as the new best.
    rib.apply_update(other, &announce(&ps(1), attrs(2, &[65001])))
        .expect("b");
    rib.peer_down_graceful(gr, &[Afi::Ipv4Unicast])
        .expect("down");
    let ch = rib.restart_timer_expired(gr).expect("expired");
    assert_eq!(ch.len(), 10);
    let survivor = ch.iter().find(|c| c.prefix == p26(0)).expect("p0 changed");
    assert_eq!(survivor.paths.len(), 1);
    assert_eq!(survivor.paths[0].source, PathSource::Peer(other));
    assert_eq!(ch.iter().filter(|c| c.is_withdrawal()).count(), 9);
    assert_eq!(rib.peer_stats(gr).expect("stats").stale, 0);
    // A second expiry finds nothing.
    assert!(rib.restart_timer_expired(gr).expect("again").is_empty());
}

#[test]
fn non_graceful_down_after_graceful_removes_stale() {
    let mut rib = rib();
    let gr = up(&mut rib, 1, 65001);
    rib.apply_update(gr, &announce(&ps(3), attrs(1, &[65001])))
        .expect("a");
    rib.peer_down_graceful(gr, &[Afi::Ipv4Unicast])
        .expect("down");
    assert_eq!(rib.peer_down(gr).expect("hard down").len(), 3);
    assert_eq!(rib.loc_rib_len(), 0);
}

fn gr_peer(n: u8, asn: u32) -> PeerConfig {
    let mut p = peer_cfg(n, asn);
    p.graceful_restart = true;
    p
}

#[test]
fn restarting_speaker_defers_until_every_end_of_rib() {
    let mut c: RibConfig = cfg();
    c.defer_until_eor = true;
    let mut rib = Rib::new(c);
    let a = rib.add_peer(gr_peer(1, 65001));
    let b = rib.add_peer(gr_peer(2, 65002));
    let mut n = negotiated(1);
    n.families = vec![Afi::Ipv4Unicast];
    rib.peer_up(a, n.clone()).expect("a up");
    n.router_id = std::net::Ipv4Addr::new(10, 255, 0, 2);
    rib.peer_up(b, n).expect("b up");
    rib.originate(p26(100), PathAttributes::default())
        .expect("local");

    let ch = rib
        .apply_update(a, &announce(&ps(3), attrs(1, &[65001])))
        .expect("a");
    assert!(ch.is_empty(), "deferred: no events");
    assert!(
        rib.pending_messages(b).expect("b").is_empty(),
        "deferred: no partial table"
    );
    assert!(
        rib.apply_update(a, &Update::end_of_rib(Afi::Ipv4Unicast))
            .expect("eor a")
            .is_empty()
    );
    assert!(rib.is_deferring(), "b's End-of-RIB still missing");
    rib.apply_update(b, &announce(&[p26(50)], attrs(2, &[65002])))
        .expect("b");

    let ch = rib
        .apply_update(b, &Update::end_of_rib(Afi::Ipv4Unicast))
        .expect("eor b");
    assert!(!rib.is_deferring());
    assert_eq!(ch.len(), 5, "3 from a, 1 from b, 1 local: {ch:?}");
    // b now gets the complete table (a's 3 + ours), then End-of-RIB.
    let msgs = rib.pending_messages(b).expect("b table");
    let mut got: Vec<_> = announced(&msgs).into_iter().map(|(p, _)| p).collect();
    got.sort();
    let mut want = ps(3);
    want.push(p26(100));
    assert_eq!(got, want);
    assert_eq!(
        msgs.last(),
        Some(&Message::Update(Update::end_of_rib(Afi::Ipv4Unicast)))
    );
}

#[test]
fn selection_deferral_deadline_releases_everything() {
    let mut c: RibConfig = cfg();
    c.defer_until_eor = true;
    let mut rib = Rib::new(c);
    let a = rib.add_peer(gr_peer(1, 65001));
    let _never_up = rib.add_peer(gr_peer(2, 65002));
    rib.peer_up(a, negotiated(1)).expect("up");
    rib.apply_update(a, &announce(&ps(2), attrs(1, &[65001])))
        .expect("a");
    rib.end_of_rib(a, Afi::Ipv4Unicast).expect("eor4");
    rib.end_of_rib(a, Afi::Ipv6Unicast).expect("eor6");
    assert!(rib.is_deferring(), "the second GR peer never came up");
    let ch = rib.selection_deferral_expired();
    assert_eq!(ch.len(), 2);
    assert!(!rib.is_deferring());
    let msgs = rib.pending_messages(a).expect("drain");
    assert_eq!(
        &msgs[msgs.len() - 2..],
        &[
            Message::Update(Update::end_of_rib(Afi::Ipv4Unicast)),
            Message::Update(Update::end_of_rib(Afi::Ipv6Unicast))
        ]
    );
}

#[test]
fn adj_rib_in_lists_only_the_peers_own_prefixes_sorted_with_stale_flags() {
    let mut rib = rib();
    let a = up(&mut rib, 1, 65001);
    let b = up(&mut rib, 2, 65002);
    let mut mine = ps(4);
    mine.reverse();
    rib.apply_update(a, &announce(&mine, attrs(1, &[65001])))
        .expect("a");
    rib.apply_update(b, &announce(&[p26(1), p26(9)], attrs(2, &[65002])))
        .expect("b");
    rib.peer_down_graceful(a, &[Afi::Ipv4Unicast])
        .expect("gr down");
    rib.peer_up(a, negotiated(1)).expect("up again");
    rib.apply_update(a, &announce(&[p26(2)], attrs(1, &[65001])))
        .expect("re-sent");

    let got = rib.adj_rib_in(a).expect("adj-rib-in");
    let prefixes: Vec<_> = got.iter().map(|(p, _, _)| *p).collect();
    assert_eq!(prefixes, ps(4));
    let stale: Vec<bool> = got.iter().map(|(_, _, s)| *s).collect();
    assert_eq!(stale, [true, true, false, true]);
    assert!(
        got.iter()
            .all(|(_, path, _)| path.source == PathSource::Peer(a))
    );
    assert_eq!(rib.adj_rib_in(b).expect("b").len(), 2, "b's prefixes only");
}
