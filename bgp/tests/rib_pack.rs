//! UPDATE generation: packing by shared attributes within 4096 encoded bytes (checked with
//! the real codec), withdrawal packing, End-of-RIB after the initial dump, route refresh.

mod rib_util;

use std::collections::HashMap;

use ipnetwork::IpNetwork;
use rib_util::*;
use tortie_bgp::msg::{Afi, AsSegment, Message, PathAttributes, RouteRefresh, Update};
use tortie_bgp::rib::{Negotiated, Rib};
use tortie_bgp::wire::{self, Ctx};

fn ctx(four_octet_as: bool) -> Ctx {
    Ctx {
        four_octet_as,
        extended_message: false,
        ipv4_in_mp: false,
    }
}

/// Every message encodes, and to at most 4096 bytes.
fn assert_fits(msgs: &[Message], c: &Ctx) {
    for m in msgs {
        let bytes = wire::encode_message(m, c).expect("encodes");
        assert!(bytes.len() <= 4096, "{} bytes", bytes.len());
    }
}

#[test]
fn announcements_pack_by_attributes_within_4096_bytes() {
    let mut rib = rib();
    let srcs = [
        up(&mut rib, 1, 65001),
        up(&mut rib, 2, 65002),
        up(&mut rib, 3, 65003),
    ];
    let dst = up(&mut rib, 4, 65004);
    // Three attribute groups over 6000 prefixes, one of them with bulky attributes.
    let mut expect: HashMap<IpNetwork, u32> = HashMap::new();
    for (g, src) in srcs.iter().enumerate() {
        let n = u8::try_from(g + 1).expect("n");
        let asn = 65001 + u32::try_from(g).expect("g");
        let mut a = attrs(n, &[asn]);
        if g == 2 {
            a.as_path = vec![AsSegment::Sequence(vec![asn; 200])];
            a.communities = (0..100).collect();
            a.large_communities = (0..20).map(|i| (i, i, i)).collect();
        }
        let base = u32::try_from(g).expect("g") * 2000;
        let ps: Vec<_> = (base..base + 2000).map(p26).collect();
        for chunk in ps.chunks(700) {
            rib.apply_update(*src, &announce(chunk, a.clone()))
                .expect("apply");
        }
        for p in ps {
            expect.insert(p, asn);
        }
    }
    let msgs = rib.pending_messages(dst).expect("drain");
    assert_fits(&msgs, &ctx(true));
    let ups = updates(&msgs);
    let mut seen: HashMap<IpNetwork, u32> = HashMap::new();
    for u in &ups {
        let a = u.attrs.as_ref().expect("attrs");
        let asn = match &a.as_path[0] {
            AsSegment::Sequence(v) => v[1],
            other => panic!("{other:?}"),
        };
        for p in &u.announced {
            assert!(seen.insert(*p, asn).is_none(), "{p} sent twice");
        }
    }
    assert_eq!(
        seen, expect,
        "every prefix exactly once, with its own attributes"
    );
    // Shared attributes grouped: a full message takes ~800 /26s, so the light groups need
    // 3 messages each and the heavy one a few more; anything like one message per prefix
    // or per source UPDATE would be far more.
    let data_updates = ups.iter().filter(|u| !u.announced.is_empty()).count();
    assert!(data_updates <= 12, "{data_updates} UPDATEs");
    // End-of-RIB is not repeated (it went with the initial dump).
    assert!(ups.iter().all(|u| u.is_end_of_rib().is_none()));
}

#[test]
fn two_octet_as_session_still_fits() {
    let mut rib = rib();
    let src = up(&mut rib, 1, 65001);
    let id = rib.add_peer(peer_cfg(2, 65002));
    let mut n = Negotiated::ipv4(std::net::Ipv4Addr::new(10, 255, 0, 2));
    n.four_octet_as = false;
    rib.peer_up(id, n).expect("up");
    let mut a = attrs(1, &[65001]);
    a.as_path = vec![AsSegment::Sequence(vec![65001, 4_200_000_000, 65001])];
    let ps: Vec<_> = (0..3000).map(p26).collect();
    rib.apply_update(src, &announce(&ps, a)).expect("apply");
    let msgs = rib.pending_messages(id).expect("drain");
    assert_fits(&msgs, &ctx(false));
    assert_eq!(announced(&msgs).len(), 3000);
}

#[test]
fn withdrawals_are_packed() {
    let mut rib = rib();
    let src = up(&mut rib, 1, 65001);
    let dst = up(&mut rib, 2, 65002);
    let ps: Vec<_> = (0..3000).map(p26).collect();
    rib.apply_update(src, &announce(&ps, attrs(1, &[65001])))
        .expect("apply");
    rib.pending_messages(dst).expect("drain");
    rib.peer_down(src).expect("down");
    let msgs = rib.pending_messages(dst).expect("withdrawals");
    assert_fits(&msgs, &ctx(true));
    let mut w = withdrawn(&msgs);
    w.sort();
    let mut want = ps.clone();
    want.sort();
    assert_eq!(w, want);
    // (4096 - 23) / 5 = 814 per message: 4 messages for 3000.
    assert_eq!(updates(&msgs).len(), 4);
}

#[test]
fn ipv6_announcements_and_withdrawals_fit() {
    let mut rib = rib();
    let src = up(&mut rib, 1, 65001);
    let dst = up(&mut rib, 2, 65002);
    let a6 = PathAttributes {
        next_hop: None,
        mp_next_hop: Some((ip("fd00::2"), None)),
        ..attrs(1, &[65001])
    };
    let ps: Vec<IpNetwork> = (0..1000u128)
        .map(|i| {
            let base: u128 = 0xfd00_0001_0000_0000_0000_0000_0000_0000;
            IpNetwork::new(std::net::Ipv6Addr::from(base + (i << 6)).into(), 122).expect("v6")
        })
        .collect();
    rib.apply_update(src, &announce(&ps, a6)).expect("apply");
    let msgs = rib.pending_messages(dst).expect("drain");
    assert_fits(&msgs, &ctx(true));
    assert_eq!(announced(&msgs).len(), 1000);
    rib.apply_update(src, &withdraw(&ps)).expect("wd");
    let msgs = rib.pending_messages(dst).expect("drain wd");
    assert_fits(&msgs, &ctx(true));
    assert_eq!(withdrawn(&msgs).len(), 1000);
}

#[test]
fn end_of_rib_follows_the_initial_dump_per_family() {
    let mut rib = rib();
    let src = up(&mut rib, 1, 65001);
    rib.apply_update(src, &announce(&[p26(0), p26(1)], attrs(1, &[65001])))
        .expect("a");
    let id = rib.add_peer(peer_cfg(2, 65002));
    rib.peer_up(id, negotiated(2)).expect("up");
    let msgs = rib.pending_messages(id).expect("drain");
    let n = msgs.len();
    assert!(n >= 3);
    assert_eq!(announced(&msgs[..n - 2]).len(), 2);
    assert_eq!(
        msgs[n - 2],
        Message::Update(Update::end_of_rib(Afi::Ipv4Unicast))
    );
    assert_eq!(
        msgs[n - 1],
        Message::Update(Update::end_of_rib(Afi::Ipv6Unicast))
    );
    // Later changes come without another End-of-RIB.
    rib.apply_update(src, &announce(&[p26(2)], attrs(1, &[65001])))
        .expect("b");
    let msgs = rib.pending_messages(id).expect("drain2");
    assert_eq!(msgs.len(), 1);
    assert_eq!(announced(&msgs)[0].0, p26(2));
}

#[test]
fn route_refresh_resends_the_family() {
    let mut rib = rib();
    let src = up(&mut rib, 1, 65001);
    let dst = up(&mut rib, 2, 65002);
    let ps: Vec<_> = (0..20).map(p26).collect();
    rib.apply_update(src, &announce(&ps, attrs(1, &[65001])))
        .expect("a");
    let first = announced(&rib.pending_messages(dst).expect("drain"));
    assert!(rib.pending_messages(dst).expect("empty").is_empty());
    rib.apply_route_refresh(
        dst,
        &RouteRefresh {
            afi: Afi::Ipv4Unicast,
            subtype: 0,
        },
    )
    .expect("refresh");
    let msgs = rib.pending_messages(dst).expect("resend");
    let mut again = announced(&msgs);
    again.sort_by_key(|(p, _)| *p);
    let mut first = first;
    first.sort_by_key(|(p, _)| *p);
    assert_eq!(again, first);
    assert!(
        msgs.iter().all(|m| matches!(m, Message::Update(_))),
        "no BoRR without ERR"
    );
    // IPv6 refresh of an empty family sends nothing.
    rib.route_refresh(dst, Afi::Ipv6Unicast).expect("v6");
    assert!(rib.pending_messages(dst).expect("v6 drain").is_empty());
}

#[test]
fn enhanced_route_refresh_is_framed() {
    let mut rib = rib();
    let src = up(&mut rib, 1, 65001);
    let id = rib.add_peer(peer_cfg(2, 65002));
    let mut n = negotiated(2);
    n.enhanced_route_refresh = true;
    rib.peer_up(id, n).expect("up");
    rib.apply_update(src, &announce(&[p26(0)], attrs(1, &[65001])))
        .expect("a");
    rib.pending_messages(id).expect("drain");
    rib.route_refresh(id, Afi::Ipv4Unicast).expect("refresh");
    let msgs = rib.pending_messages(id).expect("resend");
    assert_eq!(msgs.len(), 3);
    assert_eq!(
        msgs[0],
        Message::RouteRefresh(RouteRefresh {
            afi: Afi::Ipv4Unicast,
            subtype: 1
        })
    );
    assert_eq!(announced(&msgs[1..2]).len(), 1);
    assert_eq!(
        msgs[2],
        Message::RouteRefresh(RouteRefresh {
            afi: Afi::Ipv4Unicast,
            subtype: 2
        })
    );
}

#[test]
fn inbound_enhanced_refresh_sweeps_what_was_not_resent() {
    let mut rib: Rib = rib();
    let src = up(&mut rib, 1, 65001);
    rib.apply_update(src, &announce(&[p26(0), p26(1)], attrs(1, &[65001])))
        .expect("a");
    let borr = RouteRefresh {
        afi: Afi::Ipv4Unicast,
        subtype: 1,
    };
    assert!(
        rib.apply_route_refresh(src, &borr)
            .expect("borr")
            .is_empty()
    );
    rib.apply_update(src, &announce(&[p26(0)], attrs(1, &[65001])))
        .expect("resent");
    let eorr = RouteRefresh {
        afi: Afi::Ipv4Unicast,
        subtype: 2,
    };
    let ch = rib.apply_route_refresh(src, &eorr).expect("eorr");
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0].prefix, p26(1));
    assert!(ch[0].is_withdrawal());
}
