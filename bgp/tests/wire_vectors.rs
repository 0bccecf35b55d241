//! Byte-vector tests: every message type and every attribute, written out by hand from
//! the RFC layouts (RFC 4271 §4, RFC 4760, RFC 5492, RFC 6793, RFC 4724, RFC 7313,
//! RFC 9003, RFC 8092, RFC 1997, RFC 4456), decoded to the expected value and encoded
//! back to the same bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;
use tortie_bgp::msg::*;
use tortie_bgp::wire::*;

const FOUR: Ctx = Ctx {
    four_octet_as: true,
    extended_message: false,
    ipv4_in_mp: false,
};
const TWO: Ctx = Ctx {
    four_octet_as: false,
    extended_message: false,
    ipv4_in_mp: false,
};

/// Marker, length, type followed by `body`; the length is checked against `len`.
fn msg(len: u16, ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0xff; 16];
    v.extend_from_slice(&len.to_be_bytes());
    v.push(ty);
    v.extend_from_slice(body);
    assert_eq!(v.len(), usize::from(len), "hand-written length field");
    v
}

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

#[track_caller]
fn check(bytes: &[u8], want: &Message, ctx: &Ctx) {
    let d = decode_message(bytes, ctx).expect("decode");
    assert_eq!(&d.message, want);
    assert!(d.issues.is_empty(), "issues: {:?}", d.issues);
    assert!(!d.ignore);
    assert_eq!(encode_message(want, ctx).expect("encode"), bytes);
    assert_eq!(frame_len(bytes, ctx), Ok(Some(bytes.len())));
}

#[test]
fn keepalive() {
    check(&msg(19, 4, &[]), &Message::Keepalive, &Ctx::default());
}

#[test]
fn open_with_every_capability_and_as_trans() {
    #[rustfmt::skip]
    let body = [
        4,                      // version
        0x5b, 0xa0,             // My AS = AS_TRANS
        0, 90,                  // hold time
        192, 0, 2, 1,           // BGP identifier
        42,                     // optional parameters length
        2, 40,                  // parameter: capabilities, 40 octets
        1, 4, 0, 1, 0, 1,       // MP IPv4 unicast
        1, 4, 0, 2, 0, 1,       // MP IPv6 unicast
        2, 0,                   // route refresh
        70, 0,                  // enhanced route refresh
        65, 4, 0xfa, 0x56, 0xea, 0x01, // 4-octet AS 4200000001
        64, 10, 0x80, 120,      // GR: R bit, restart time 120
            0, 1, 1, 0x80,      //   IPv4 unicast, F bit
            0, 2, 1, 0,         //   IPv6 unicast
        6, 0,                   // extended message
        73, 2, 1, 2,            // unknown (FQDN) kept
    ];
    let want = Message::Open(Open {
        version: 4,
        asn: 4_200_000_001,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(192, 0, 2, 1),
        capabilities: vec![
            Capability::Multiprotocol(Afi::Ipv4Unicast),
            Capability::Multiprotocol(Afi::Ipv6Unicast),
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::FourOctetAs(4_200_000_001),
            Capability::GracefulRestart(GracefulRestartCap {
                restarting: true,
                restart_time: 120,
                families: vec![(Afi::Ipv4Unicast, true), (Afi::Ipv6Unicast, false)],
            }),
            Capability::ExtendedMessage,
            Capability::Unknown {
                code: 73,
                data: vec![1, 2],
            },
        ],
    });
    check(&msg(71, 1, &body), &want, &Ctx::default());
}

#[test]
fn open_without_parameters_and_cisco_route_refresh() {
    let body = [4, 0xfd, 0xe9, 0, 0, 10, 0, 0, 1, 0];
    let want = Message::Open(Open {
        version: 4,
        asn: 65001,
        hold_time: 0,
        bgp_id: Ipv4Addr::new(10, 0, 0, 1),
        capabilities: vec![],
    });
    check(&msg(29, 1, &body), &want, &Ctx::default());
    // Capability 128 (pre-standard route refresh) decodes as RouteRefresh.
    let body = [4, 0xfd, 0xe9, 0, 0, 10, 0, 0, 1, 4, 2, 2, 128, 0];
    let d = decode_message(&msg(33, 1, &body), &Ctx::default()).unwrap();
    let Message::Open(o) = d.message else {
        panic!("not an OPEN")
    };
    assert_eq!(o.capabilities, vec![Capability::RouteRefresh]);
}

#[test]
fn open_rfc9072_extended_optional_parameters_decode() {
    // Non-extended length 255, type 255, 2-octet length 8; one capabilities parameter
    // with a 2-octet length 5 holding 4-octet AS 65001... and route refresh.
    let body = [
        4, 0xfd, 0xe9, 0, 180, 10, 0, 0, 1, 255, 255, 0, 11, 2, 0, 8, 65, 4, 0, 0, 0xfd, 0xe9, 2, 0,
    ];
    let d = decode_message(&msg(43, 1, &body), &Ctx::default()).unwrap();
    let Message::Open(o) = d.message else {
        panic!("not an OPEN")
    };
    assert_eq!(o.asn, 65001);
    assert_eq!(
        o.capabilities,
        vec![Capability::FourOctetAs(65001), Capability::RouteRefresh]
    );
}

fn full_v4_attrs() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: vec![
            AsSegment::Sequence(vec![65001, 65002]),
            AsSegment::Set(vec![70000]),
        ],
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        mp_next_hop: None,
        med: Some(100),
        local_pref: Some(200),
        atomic_aggregate: true,
        aggregator: Some((65001, Ipv4Addr::new(192, 0, 2, 9))),
        communities: vec![0xfde9_0001, 0xffff_ff01],
        large_communities: vec![(65001, 1, 2)],
        originator_id: Some(Ipv4Addr::new(10, 0, 0, 1)),
        cluster_list: vec![Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)],
        unknown: vec![RawAttribute {
            flags: 0xe0,
            type_code: 16,
            value: vec![0, 2, 0xfd, 0xe9, 0, 0, 0, 100],
        }],
    }
}

#[test]
fn update_ipv4_with_every_attribute() {
    #[rustfmt::skip]
    let body = [
        0, 3, 16, 10, 1,                                  // withdrawn 10.1.0.0/16
        0, 113,                                           // total path attribute length
        0x40, 1, 1, 0,                                    // ORIGIN IGP
        0x40, 2, 16,                                      // AS_PATH
            2, 2, 0, 0, 0xfd, 0xe9, 0, 0, 0xfd, 0xea,     //   SEQUENCE 65001 65002
            1, 1, 0, 1, 0x11, 0x70,                       //   SET 70000
        0x40, 3, 4, 192, 0, 2, 1,                         // NEXT_HOP
        0x80, 4, 4, 0, 0, 0, 100,                         // MED
        0x40, 5, 4, 0, 0, 0, 200,                         // LOCAL_PREF
        0x40, 6, 0,                                       // ATOMIC_AGGREGATE
        0xc0, 7, 8, 0, 0, 0xfd, 0xe9, 192, 0, 2, 9,       // AGGREGATOR
        0xc0, 8, 8, 0xfd, 0xe9, 0, 1, 0xff, 0xff, 0xff, 1,// COMMUNITIES
        0x80, 9, 4, 10, 0, 0, 1,                          // ORIGINATOR_ID
        0x80, 10, 8, 10, 0, 0, 2, 10, 0, 0, 3,            // CLUSTER_LIST
        0xe0, 16, 8, 0, 2, 0xfd, 0xe9, 0, 0, 0, 100,      // unknown opt. trans. (Partial)
        0xc0, 32, 12, 0, 0, 0xfd, 0xe9, 0, 0, 0, 1, 0, 0, 0, 2, // LARGE_COMMUNITIES
        26, 10, 244, 1, 64,                               // NLRI 10.244.1.64/26
        24, 192, 168, 0,                                  //      192.168.0.0/24
    ];
    let want = Message::Update(Update {
        withdrawn: vec![net("10.1.0.0/16")],
        attrs: Some(full_v4_attrs()),
        announced: vec![net("10.244.1.64/26"), net("192.168.0.0/24")],
        eor_family: None,
    });
    check(&msg(148, 2, &body), &want, &FOUR);
}

#[test]
fn update_ipv6_mp_reach_and_unreach_with_link_local_next_hop() {
    let g = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    let ll = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    let mut body = vec![0, 0, 0, 76];
    body.extend_from_slice(&[0x80, 14, 46, 0, 2, 1, 32]);
    body.extend_from_slice(&g.octets());
    body.extend_from_slice(&ll.octets());
    body.extend_from_slice(&[0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0]);
    body.extend_from_slice(&[0x80, 15, 10, 0, 2, 1, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 0xff]);
    body.extend_from_slice(&[0x40, 1, 1, 2, 0x40, 2, 0, 0x40, 5, 4, 0, 0, 0, 100]);
    let want = Message::Update(Update {
        withdrawn: vec![net("2001:db8:ff::/48")],
        attrs: Some(PathAttributes {
            origin: Some(Origin::Incomplete),
            mp_next_hop: Some((IpAddr::V6(g), Some(IpAddr::V6(ll)))),
            local_pref: Some(100),
            ..PathAttributes::default()
        }),
        announced: vec![net("2001:db8:1::/64")],
        eor_family: None,
    });
    check(&msg(99, 2, &body), &want, &FOUR);
}

#[test]
fn update_ipv4_in_mp_with_16_octet_next_hop() {
    let g = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);
    let mut body = vec![0, 0, 0, 41];
    body.extend_from_slice(&[0x80, 14, 25, 0, 1, 1, 16]);
    body.extend_from_slice(&g.octets());
    body.extend_from_slice(&[0, 24, 10, 9, 8]);
    body.extend_from_slice(&[0x40, 1, 1, 0, 0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9]);
    let want = Message::Update(Update {
        withdrawn: vec![],
        attrs: Some(PathAttributes {
            origin: Some(Origin::Igp),
            as_path: vec![AsSegment::Sequence(vec![65001])],
            mp_next_hop: Some((IpAddr::V6(g), None)),
            ..PathAttributes::default()
        }),
        announced: vec![net("10.9.8.0/24")],
        eor_family: None,
    });
    let ctx = Ctx {
        ipv4_in_mp: true,
        ..FOUR
    };
    check(&msg(64, 2, &body), &want, &ctx);
}

#[test]
fn update_for_two_octet_peer_splits_as4_path_and_as4_aggregator() {
    #[rustfmt::skip]
    let body = [
        0, 0, 0, 53,
        0x40, 1, 1, 0,
        0x40, 2, 6, 2, 2, 0xfd, 0xe9, 0x5b, 0xa0,          // AS_PATH 65001 AS_TRANS
        0x40, 3, 4, 10, 0, 0, 1,
        0xc0, 7, 6, 0x5b, 0xa0, 192, 0, 2, 9,              // AGGREGATOR AS_TRANS
        0xc0, 17, 10, 2, 2, 0, 0, 0xfd, 0xe9, 0xfa, 0x56, 0xea, 0x01, // AS4_PATH
        0xc0, 18, 8, 0xfa, 0x56, 0xea, 0x01, 192, 0, 2, 9, // AS4_AGGREGATOR
        8, 10,
    ];
    let want = Message::Update(Update {
        withdrawn: vec![],
        attrs: Some(PathAttributes {
            origin: Some(Origin::Igp),
            as_path: vec![AsSegment::Sequence(vec![65001, 4_200_000_001])],
            next_hop: Some(Ipv4Addr::new(10, 0, 0, 1)),
            aggregator: Some((4_200_000_001, Ipv4Addr::new(192, 0, 2, 9))),
            ..PathAttributes::default()
        }),
        announced: vec![net("10.0.0.0/8")],
        eor_family: None,
    });
    check(&msg(78, 2, &body), &want, &TWO);
}

#[test]
fn extended_length_attribute_when_value_exceeds_255() {
    let communities: Vec<u32> = (0..70).collect();
    let u = Message::Update(Update {
        withdrawn: vec![],
        attrs: Some(PathAttributes {
            origin: Some(Origin::Igp),
            next_hop: Some(Ipv4Addr::new(10, 0, 0, 1)),
            communities: communities.clone(),
            ..PathAttributes::default()
        }),
        announced: vec![net("10.0.0.0/8")],
        eor_family: None,
    });
    let bytes = encode_message(&u, &FOUR).unwrap();
    // ORIGIN(4) AS_PATH(3) NEXT_HOP(7), then COMMUNITIES with the Extended Length bit.
    let at = 19 + 4 + 4 + 3 + 7;
    assert_eq!(&bytes[at..at + 4], &[0xd0, 8, 0x01, 0x18]);
    assert_eq!(decode_message(&bytes, &FOUR).unwrap().message, u);
}

#[test]
fn end_of_rib_markers() {
    check(
        &msg(23, 2, &[0, 0, 0, 0]),
        &Message::Update(Update::end_of_rib(Afi::Ipv4Unicast)),
        &FOUR,
    );
    let v6 = msg(29, 2, &[0, 0, 0, 6, 0x80, 15, 3, 0, 2, 1]);
    check(
        &v6,
        &Message::Update(Update::end_of_rib(Afi::Ipv6Unicast)),
        &FOUR,
    );
    let Message::Update(u) = decode_message(&v6, &FOUR).unwrap().message else {
        panic!("not an UPDATE")
    };
    assert_eq!(u.is_end_of_rib(), Some(Afi::Ipv6Unicast));
}

#[test]
fn notification_with_shutdown_communication() {
    let n = shutdown_notification(err::ADMIN_SHUTDOWN, "bye").unwrap();
    let bytes = msg(25, 3, &[6, 2, 3, b'b', b'y', b'e']);
    check(&bytes, &Message::Notification(n.clone()), &FOUR);
    assert_eq!(shutdown_communication(&n), Some("bye"));
    // Plain notification with data (hold timer expired, no data; bad peer AS).
    check(
        &msg(21, 3, &[4, 0]),
        &Message::Notification(Notification {
            code: 4,
            subcode: 0,
            data: vec![],
        }),
        &FOUR,
    );
}

#[test]
fn route_refresh_subtypes() {
    for (subtype, afi, wire) in [
        (0u8, Afi::Ipv4Unicast, [0u8, 1, 0, 1]),
        (1, Afi::Ipv6Unicast, [0, 2, 1, 1]),
        (2, Afi::Ipv4Unicast, [0, 1, 2, 1]),
    ] {
        check(
            &msg(23, 5, &wire),
            &Message::RouteRefresh(RouteRefresh { afi, subtype }),
            &FOUR,
        );
    }
    // Unknown AFI/SAFI or subtype: ignored, not an error.
    assert!(
        decode_message(&msg(23, 5, &[0, 1, 0, 128]), &FOUR)
            .unwrap()
            .ignore
    );
    assert!(
        decode_message(&msg(23, 5, &[0, 1, 9, 1]), &FOUR)
            .unwrap()
            .ignore
    );
}
