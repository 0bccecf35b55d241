//! Export rules and Adj-RIB-Out through the public API: what each kind of peer receives in
//! the UPDATEs [`Rib::pending_messages`] produces.

mod rib_util;

use std::net::Ipv4Addr;

use rib_util::*;
use tortie_bgp::msg::{AsSegment, PathAttributes};
use tortie_bgp::rib::export::{ExportAction, ExportContext};
use tortie_bgp::rib::{NextHopMode, Rib};

#[test]
fn ebgp_export_prepends_sequence_sets_self_and_strips_lp_med() {
    let mut rib = rib();
    let src = up(&mut rib, 1, 65001);
    let dst = up(&mut rib, 2, 65002);
    let pfx = net("10.1.0.0/26");
    let a = PathAttributes {
        med: Some(50),
        ..attrs(1, &[65001, 65010])
    };
    rib.apply_update(src, &announce(&[pfx], a)).expect("apply");
    let msgs = rib.pending_messages(dst).expect("drain");
    let got = announced(&msgs);
    assert_eq!(got.len(), 1);
    let (p, out) = &got[0];
    assert_eq!(*p, pfx);
    assert_eq!(
        out.as_path,
        vec![AsSegment::Sequence(vec![LOCAL_AS, 65001, 65010])],
        "prepended into one AS_SEQUENCE"
    );
    assert_eq!(out.next_hop, Some(ROUTER_ID));
    assert_eq!(out.local_pref, None);
    assert_eq!(out.med, None, "MED of another AS is not passed on");
    // Nothing more: the Adj-RIB-Out remembers what was sent.
    assert!(rib.pending_messages(dst).expect("drain2").is_empty());
    assert_eq!(rib.peer_stats(dst).expect("stats").advertised, 1);
}

#[test]
fn split_horizon_never_sends_back() {
    let mut rib = rib();
    let src = up(&mut rib, 1, 65001);
    rib.apply_update(src, &announce(&[net("10.2.0.0/26")], attrs(1, &[65001])))
        .expect("apply");
    assert!(rib.pending_messages(src).expect("drain").is_empty());
    assert!(rib.adj_rib_out(src).expect("out").is_empty());
}

#[test]
fn ibgp_gets_local_pref_and_unchanged_next_hop() {
    let mut rib = rib();
    let e = up(&mut rib, 1, 65001);
    let i = up(&mut rib, 2, LOCAL_AS);
    rib.apply_update(e, &announce(&[net("10.3.0.0/26")], attrs(1, &[65001])))
        .expect("apply");
    rib.originate(net("10.3.1.0/26"), PathAttributes::default())
        .expect("local");
    let got = announced(&rib.pending_messages(i).expect("drain"));
    assert_eq!(got.len(), 2);
    for (p, a) in got {
        assert_eq!(a.local_pref, Some(100), "{p}");
        if p == net("10.3.0.0/26") {
            assert_eq!(
                a.next_hop,
                Some(Ipv4Addr::new(10, 0, 0, 2)),
                "eBGP next hop kept"
            );
            assert_eq!(a.as_path, vec![AsSegment::Sequence(vec![65001])]);
        } else {
            assert_eq!(a.next_hop, Some(ROUTER_ID), "own route: next hop self");
            assert!(a.as_path.is_empty(), "no prepend toward iBGP");
        }
    }
}

#[test]
fn next_hop_self_per_peer() {
    let mut rib = rib();
    let e = up(&mut rib, 1, 65001);
    let mut pc = peer_cfg(2, LOCAL_AS);
    pc.next_hop_mode = NextHopMode::SelfAddr;
    let i = up_with(&mut rib, pc);
    rib.apply_update(e, &announce(&[net("10.4.0.0/26")], attrs(1, &[65001])))
        .expect("apply");
    let got = announced(&rib.pending_messages(i).expect("drain"));
    assert_eq!(got[0].1.next_hop, Some(ROUTER_ID));
}

#[test]
fn ibgp_routes_are_not_sent_to_ibgp_without_reflection() {
    let mut rib = rib();
    let a = up(&mut rib, 1, LOCAL_AS);
    let b = up(&mut rib, 2, LOCAL_AS);
    let e = up(&mut rib, 3, 65003);
    rib.apply_update(a, &announce(&[net("10.5.0.0/26")], attrs(1, &[])))
        .expect("apply");
    assert!(rib.pending_messages(b).expect("b").is_empty());
    let got = announced(&rib.pending_messages(e).expect("e"));
    assert_eq!(got.len(), 1, "iBGP-learned goes to eBGP");
    assert_eq!(got[0].1.as_path, vec![AsSegment::Sequence(vec![LOCAL_AS])]);
}

#[test]
fn route_reflection_rules() {
    let mut c = cfg();
    c.cluster_id = Some(Ipv4Addr::new(9, 9, 9, 9));
    let mut rib = Rib::new(c);
    let client_cfg = |n| {
        let mut p = peer_cfg(n, LOCAL_AS);
        p.rr_client = true;
        p
    };
    let c1 = up_with(&mut rib, client_cfg(1));
    let c2 = up_with(&mut rib, client_cfg(2));
    let n1 = up(&mut rib, 3, LOCAL_AS);
    let n2 = up(&mut rib, 4, LOCAL_AS);

    // From a client: to the other client and to non-clients, not back.
    let from_client = net("10.6.0.0/26");
    rib.apply_update(c1, &announce(&[from_client], attrs(1, &[])))
        .expect("c1");
    assert!(rib.pending_messages(c1).expect("c1").is_empty());
    for p in [c2, n1, n2] {
        let got = announced(&rib.pending_messages(p).expect("drain"));
        assert_eq!(got.len(), 1, "{p}");
        let a = &got[0].1;
        assert_eq!(
            a.originator_id,
            Some(Ipv4Addr::new(10, 255, 0, 1)),
            "router id of c1"
        );
        assert_eq!(a.cluster_list, vec![Ipv4Addr::new(9, 9, 9, 9)]);
        assert_eq!(
            a.next_hop,
            Some(Ipv4Addr::new(10, 0, 0, 2)),
            "next hop unchanged"
        );
    }

    // From a non-client: to clients only.
    let from_non = net("10.6.1.0/26");
    rib.apply_update(n1, &announce(&[from_non], attrs(3, &[])))
        .expect("n1");
    assert_eq!(announced(&rib.pending_messages(c1).expect("c1")).len(), 1);
    assert_eq!(announced(&rib.pending_messages(c2).expect("c2")).len(), 1);
    assert!(rib.pending_messages(n2).expect("n2").is_empty());
    assert!(rib.pending_messages(n1).expect("n1").is_empty());
}

#[test]
fn ipv6_routes_use_the_peers_v6_next_hop() {
    let mut rib = rib();
    let src = up(&mut rib, 1, 65001);
    let dst = up(&mut rib, 2, 65002);
    let a6 = PathAttributes {
        next_hop: None,
        mp_next_hop: Some((ip("fd00::2"), None)),
        ..attrs(1, &[65001])
    };
    rib.apply_update(src, &announce(&[net("fd00:1::/122")], a6))
        .expect("apply");
    let got = announced(&rib.pending_messages(dst).expect("drain"));
    assert_eq!(got[0].1.mp_next_hop, Some((ip("fd00::1"), None)));
    assert_eq!(got[0].1.next_hop, None);
}

#[test]
fn best_path_change_sends_only_the_difference() {
    let mut rib = rib();
    let a = up(&mut rib, 1, 65001);
    let b = up(&mut rib, 2, 65002);
    let dst = up(&mut rib, 3, 65003);
    let ps: Vec<_> = (0..10).map(p26).collect();
    rib.apply_update(a, &announce(&ps, attrs(1, &[65001, 65100])))
        .expect("a");
    assert_eq!(announced(&rib.pending_messages(dst).expect("1")).len(), 10);
    // b offers a shorter path for one prefix only.
    rib.apply_update(b, &announce(&ps[3..4], attrs(2, &[65002])))
        .expect("b");
    let got = announced(&rib.pending_messages(dst).expect("2"));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, ps[3]);
    assert_eq!(
        got[0].1.as_path,
        vec![AsSegment::Sequence(vec![LOCAL_AS, 65002])]
    );
    // A flap that ends where it started sends nothing.
    rib.apply_update(b, &withdraw(&ps[3..4])).expect("wd");
    rib.apply_update(b, &announce(&ps[3..4], attrs(2, &[65002])))
        .expect("re");
    assert!(rib.pending_messages(dst).expect("3").is_empty());
    // Losing the only path withdraws.
    rib.apply_update(a, &withdraw(&ps[0..1])).expect("wd a");
    assert_eq!(
        withdrawn(&rib.pending_messages(dst).expect("4")),
        vec![ps[0]]
    );
}

#[test]
fn policy_hook_rejects_and_modifies() {
    let mut rib = rib();
    let src = up(&mut rib, 1, 65001);
    let dst = up(&mut rib, 2, 65002);
    let blocked = p26(1);
    rib.set_export_policy(Box::new(move |ctx: &ExportContext<'_>| {
        if *ctx.prefix == blocked {
            ExportAction::Reject
        } else {
            let mut a = ctx.outgoing.clone();
            a.communities.push(0xFDE8_0001);
            ExportAction::Modify(a)
        }
    }));
    rib.apply_update(src, &announce(&[p26(0), p26(1)], attrs(1, &[65001])))
        .expect("apply");
    let got = announced(&rib.pending_messages(dst).expect("drain"));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, p26(0));
    assert_eq!(got[0].1.communities, vec![0xFDE8_0001]);
    assert_eq!(
        got[0].1.as_path,
        vec![AsSegment::Sequence(vec![LOCAL_AS, 65001])]
    );
}

#[test]
fn policy_change_reevaluates_adj_rib_out() {
    let mut rib = rib();
    let src = up(&mut rib, 1, 65001);
    let dst = up(&mut rib, 2, 65002);
    rib.apply_update(src, &announce(&[p26(0)], attrs(1, &[65001])))
        .expect("apply");
    assert_eq!(announced(&rib.pending_messages(dst).expect("1")).len(), 1);
    rib.set_export_policy(Box::new(|_: &ExportContext<'_>| ExportAction::Reject));
    assert_eq!(
        withdrawn(&rib.pending_messages(dst).expect("2")),
        vec![p26(0)]
    );
    assert_eq!(rib.peer_stats(dst).expect("stats").advertised, 0);
}
