//! Loc-RIB behaviour through the public API: best path, ECMP sets and when change events
//! are (and are not) emitted.

mod rib_util;

use rib_util::*;
use tortie_bgp::msg::PathAttributes;
use tortie_bgp::rib::{PathSource, RibChange};

fn sources(c: &RibChange) -> Vec<PathSource> {
    c.paths.iter().map(|p| p.source).collect()
}

#[test]
fn ecmp_set_forms_and_shrinks_with_events() {
    let mut rib = rib();
    let a = up(&mut rib, 1, 65001);
    let b = up(&mut rib, 2, 65001);
    let c = up(&mut rib, 3, 65001);
    let pfx = net("10.1.0.0/26");

    let ch = rib
        .apply_update(a, &announce(&[pfx], attrs(1, &[65001])))
        .expect("a");
    assert_eq!(ch.len(), 1);
    assert_eq!(sources(&ch[0]), vec![PathSource::Peer(a)]);
    assert_eq!(ch[0].paths[0].next_hop, Some(ip("10.0.0.2")));

    // An equal path joins the ECMP set: one event carrying both, best (lower id) first.
    let ch = rib
        .apply_update(b, &announce(&[pfx], attrs(2, &[65001])))
        .expect("b");
    assert_eq!(ch.len(), 1);
    assert_eq!(
        sources(&ch[0]),
        vec![PathSource::Peer(a), PathSource::Peer(b)]
    );
    let hops: Vec<_> = ch[0].paths.iter().map(|p| p.next_hop).collect();
    assert_eq!(hops, vec![Some(ip("10.0.0.2")), Some(ip("10.0.0.3"))]);

    // A worse path (longer AS_PATH) changes nothing: no event.
    let ch = rib
        .apply_update(c, &announce(&[pfx], attrs(3, &[65001, 65009])))
        .expect("c");
    assert!(ch.is_empty(), "{ch:?}");

    // Re-announcing identical attributes: no event.
    let ch = rib
        .apply_update(b, &announce(&[pfx], attrs(2, &[65001])))
        .expect("b again");
    assert!(ch.is_empty(), "{ch:?}");

    // The best leaves: b alone.
    let ch = rib.apply_update(a, &withdraw(&[pfx])).expect("wd a");
    assert_eq!(sources(&ch[0]), vec![PathSource::Peer(b)]);
    // b leaves: c (the worse one) takes over.
    let ch = rib.apply_update(b, &withdraw(&[pfx])).expect("wd b");
    assert_eq!(sources(&ch[0]), vec![PathSource::Peer(c)]);
    // c leaves: the prefix is gone.
    let ch = rib.apply_update(c, &withdraw(&[pfx])).expect("wd c");
    assert_eq!(ch.len(), 1);
    assert!(ch[0].is_withdrawal());
    assert!(rib.best(&pfx).is_none());
    // Withdrawing what is not there: nothing.
    assert!(
        rib.apply_update(c, &withdraw(&[pfx]))
            .expect("again")
            .is_empty()
    );
}

#[test]
fn ebgp_multipath_requires_same_neighbor_as() {
    let mut rib = rib();
    let a = up(&mut rib, 1, 65001);
    let b = up(&mut rib, 2, 65002);
    let pfx = net("10.2.0.0/26");
    rib.apply_update(a, &announce(&[pfx], attrs(1, &[65001])))
        .expect("a");
    let ch = rib
        .apply_update(b, &announce(&[pfx], attrs(2, &[65002])))
        .expect("b");
    // Same length, different neighbour AS: b loses on router id and is no ECMP member.
    assert!(ch.is_empty(), "{ch:?}");
    assert_eq!(rib.best(&pfx).expect("best").paths.len(), 1);
}

#[test]
fn ibgp_multipath_and_local_pref() {
    let mut rib = rib();
    let a = up(&mut rib, 1, LOCAL_AS);
    let b = up(&mut rib, 2, LOCAL_AS);
    let pfx = net("10.3.0.0/26");
    rib.apply_update(a, &announce(&[pfx], attrs(1, &[])))
        .expect("a");
    // Explicit LOCAL_PREF 100 equals the default for a missing one: ECMP of two.
    let with_lp = PathAttributes {
        local_pref: Some(100),
        ..attrs(2, &[])
    };
    let ch = rib.apply_update(b, &announce(&[pfx], with_lp)).expect("b");
    assert_eq!(ch[0].paths.len(), 2);
    // LOCAL_PREF 150 beats the default.
    let higher = PathAttributes {
        local_pref: Some(150),
        ..attrs(2, &[])
    };
    let ch = rib
        .apply_update(b, &announce(&[pfx], higher))
        .expect("b150");
    assert_eq!(sources(&ch[0]), vec![PathSource::Peer(b)]);
}

#[test]
fn ebgp_received_local_pref_is_ignored() {
    let mut rib = rib();
    let a = up(&mut rib, 1, 65001);
    let b = up(&mut rib, 2, 65002);
    let pfx = net("10.4.0.0/26");
    let bogus = PathAttributes {
        local_pref: Some(1000),
        ..attrs(2, &[65002, 65003])
    };
    rib.apply_update(b, &announce(&[pfx], bogus)).expect("b");
    let ch = rib
        .apply_update(a, &announce(&[pfx], attrs(1, &[65001])))
        .expect("a");
    assert_eq!(
        sources(&ch[0]),
        vec![PathSource::Peer(a)],
        "shorter path wins"
    );
}

#[test]
fn local_route_preferred_and_learned_one_returns() {
    let mut rib = rib();
    let a = up(&mut rib, 1, 65001);
    let pfx = net("10.5.0.0/26");
    rib.apply_update(a, &announce(&[pfx], attrs(1, &[65001])))
        .expect("a");
    let ch = rib
        .originate(pfx, PathAttributes::default())
        .expect("originate");
    assert_eq!(sources(&ch[0]), vec![PathSource::Local]);
    assert_eq!(ch[0].paths[0].next_hop, None);
    // Originating the same again: no event.
    assert!(
        rib.originate(pfx, PathAttributes::default())
            .expect("again")
            .is_empty()
    );
    let ch = rib.withdraw_local(pfx);
    assert_eq!(sources(&ch[0]), vec![PathSource::Peer(a)]);
    assert!(rib.withdraw_local(pfx).is_empty());
}

#[test]
fn med_decides_only_within_one_neighbor_as() {
    let mut rib = rib();
    let a = up(&mut rib, 1, 65001);
    let b = up(&mut rib, 2, 65001);
    let pfx = net("10.6.0.0/26");
    let med = |n, m| PathAttributes {
        med: Some(m),
        ..attrs(n, &[65001])
    };
    rib.apply_update(a, &announce(&[pfx], med(1, 20)))
        .expect("a");
    let ch = rib
        .apply_update(b, &announce(&[pfx], med(2, 10)))
        .expect("b");
    assert_eq!(sources(&ch[0]), vec![PathSource::Peer(b)], "lower MED wins");
}

#[test]
fn peer_down_removes_its_routes_and_reports_gone() {
    let mut rib = rib();
    let a = up(&mut rib, 1, 65001);
    let ps: Vec<_> = (0..50).map(p26).collect();
    let ch = rib
        .apply_update(a, &announce(&ps, attrs(1, &[65001])))
        .expect("a");
    assert_eq!(ch.len(), 50);
    assert_eq!(rib.loc_rib_len(), 50);
    let ch = rib.peer_down(a).expect("down");
    assert_eq!(ch.len(), 50);
    assert!(ch.iter().all(RibChange::is_withdrawal));
    assert_eq!(rib.loc_rib_len(), 0);
    assert_eq!(rib.peer_stats(a).expect("stats").received, 0);
}

#[test]
fn changes_round_trip_through_serde() {
    let mut rib = rib();
    let a = up(&mut rib, 1, 65001);
    let ch = rib
        .apply_update(a, &announce(&[net("10.7.0.0/26")], attrs(1, &[65001])))
        .expect("a");
    let json = serde_json::to_string(&ch).expect("ser");
    let back: Vec<RibChange> = serde_json::from_str(&json).expect("de");
    assert_eq!(back, ch);
}

#[test]
fn local_prefixes_are_stored_without_host_bits() {
    let mut rib = rib();
    let ch = rib
        .originate(net("10.8.0.77/26"), PathAttributes::default())
        .expect("originate");
    assert_eq!(ch[0].prefix, net("10.8.0.64/26"));
    assert!(rib.best(&net("10.8.0.64/26")).is_some());
    assert_eq!(rib.withdraw_local(net("10.8.0.65/26")).len(), 1);
    assert_eq!(rib.loc_rib_len(), 0);
}
