//! Property: for arbitrary valid messages (every attribute kind, IPv4 and IPv6 prefixes,
//! 2- and 4-octet AS contexts, IPv4 classic or in MP), `decode(encode(m)) == m` with no
//! issue, and encoding the decoded value gives the same bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use proptest::prelude::*;
use tortie_bgp::msg::*;
use tortie_bgp::wire::*;

fn v4net() -> impl Strategy<Value = IpNetwork> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, len)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        IpNetwork::V4(Ipv4Network::new(Ipv4Addr::from(a & mask), len).unwrap())
    })
}

fn v6net() -> impl Strategy<Value = IpNetwork> {
    (any::<u128>(), 0u8..=128).prop_map(|(a, len)| {
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        IpNetwork::V6(Ipv6Network::new(Ipv6Addr::from(a & mask), len).unwrap())
    })
}

fn unicast_v4() -> impl Strategy<Value = Ipv4Addr> {
    (1u32..0xe000_0000).prop_map(Ipv4Addr::from)
}

fn ctx() -> impl Strategy<Value = Ctx> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(four, ext, v4mp)| Ctx {
        four_octet_as: four,
        extended_message: ext,
        ipv4_in_mp: v4mp,
    })
}

fn asn(two_octet_only: bool) -> BoxedStrategy<u32> {
    if two_octet_only {
        (0u32..=65535).boxed()
    } else {
        prop_oneof![0u32..=65535, any::<u32>()].boxed()
    }
}

fn as_path(four: bool) -> impl Strategy<Value = Vec<AsSegment>> {
    // Confederation segments only lead the path (RFC 5065); for a 2-octet peer their
    // ASes must fit in 2 octets (AS4_PATH never carries them).
    let confed = prop::collection::vec(
        (any::<bool>(), prop::collection::vec(asn(!four), 1..6)).prop_map(|(seq, v)| {
            if seq {
                AsSegment::ConfedSequence(v)
            } else {
                AsSegment::ConfedSet(v)
            }
        }),
        0..2,
    );
    let rest = prop::collection::vec(
        (any::<bool>(), prop::collection::vec(asn(false), 1..12)).prop_map(|(seq, v)| {
            if seq {
                AsSegment::Sequence(v)
            } else {
                AsSegment::Set(v)
            }
        }),
        0..4,
    );
    (confed, rest).prop_map(|(mut c, r)| {
        c.extend(r);
        c
    })
}

fn unknown_attrs() -> impl Strategy<Value = Vec<RawAttribute>> {
    prop::collection::btree_map(
        any::<u8>().prop_filter("not modelled", |t| {
            !matches!(t, 0..=10 | 14 | 15 | 17 | 18 | 32)
        }),
        prop::collection::vec(any::<u8>(), 0..300),
        0..3,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(type_code, value)| RawAttribute {
                flags: 0xe0,
                type_code,
                value,
            })
            .collect()
    })
}

fn attrs(four: bool) -> impl Strategy<Value = PathAttributes> {
    (
        (
            prop_oneof![
                Just(Origin::Igp),
                Just(Origin::Egp),
                Just(Origin::Incomplete)
            ],
            as_path(four),
            proptest::option::of(unicast_v4()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            any::<bool>(),
        ),
        (
            proptest::option::of((any::<u32>(), any::<u32>().prop_map(Ipv4Addr::from))),
            prop::collection::vec(any::<u32>(), 0..10),
            prop::collection::vec(any::<(u32, u32, u32)>(), 0..5),
            proptest::option::of(any::<u32>().prop_map(Ipv4Addr::from)),
            prop::collection::vec(any::<u32>().prop_map(Ipv4Addr::from), 0..5),
            unknown_attrs(),
        ),
    )
        .prop_map(
            |(
                (origin, as_path, next_hop, med, local_pref, atomic_aggregate),
                (aggregator, communities, large_communities, originator_id, cluster_list, unknown),
            )| PathAttributes {
                origin: Some(origin),
                as_path,
                next_hop,
                mp_next_hop: None,
                med,
                local_pref,
                atomic_aggregate,
                aggregator,
                communities,
                large_communities,
                originator_id,
                cluster_list,
                unknown,
            },
        )
}

fn mp_next_hop(v4_family: bool) -> BoxedStrategy<(IpAddr, Option<IpAddr>)> {
    let v6 = any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a)));
    let pair = (v6.clone(), proptest::option::of(v6.clone()));
    if v4_family {
        prop_oneof![
            unicast_v4().prop_map(|a| (IpAddr::V4(a), None)),
            v6.prop_map(|a| (a, None)),
        ]
        .boxed()
    } else {
        pair.boxed()
    }
}

/// An UPDATE valid for `ctx`, in the codec's canonical order (classic prefixes first).
fn update(ctx: Ctx) -> impl Strategy<Value = Update> {
    let eor =
        prop_oneof![Just(Afi::Ipv4Unicast), Just(Afi::Ipv6Unicast)].prop_map(Update::end_of_rib);
    let general = (
        prop::collection::vec(v4net(), 0..20),
        prop::collection::vec(v6net(), 0..20),
        prop::collection::vec(v4net(), 0..20),
        prop::collection::vec(v6net(), 0..20),
        attrs(ctx.four_octet_as),
        mp_next_hop(ctx.ipv4_in_mp),
        mp_next_hop(false),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            move |(mut w4, mut w6, mut a4, mut a6, mut at, nh4, nh6, pick_wd, pick_an)| {
                if ctx.ipv4_in_mp {
                    // One MP_REACH and one MP_UNREACH: one family each.
                    if pick_wd {
                        w6.clear()
                    } else {
                        w4.clear()
                    }
                    if pick_an { a6.clear() } else { a4.clear() }
                }
                let mut withdrawn = w4;
                withdrawn.extend(w6);
                if ctx.ipv4_in_mp {
                    at.next_hop = None;
                    if !a4.is_empty() {
                        at.mp_next_hop = Some(nh4);
                    }
                } else if !a4.is_empty() && at.next_hop.is_none() {
                    at.next_hop = Some(Ipv4Addr::new(10, 0, 0, 1));
                }
                if !a6.is_empty() {
                    at.mp_next_hop = Some(nh6);
                }
                let mut announced = a4;
                announced.extend(a6);
                let attrs = (!announced.is_empty() || pick_an).then_some(at);
                Update {
                    withdrawn,
                    attrs,
                    announced,
                    eor_family: None,
                }
            },
        );
    prop_oneof![1 => eor, 9 => general]
}

fn capability() -> impl Strategy<Value = Capability> {
    let afi = prop_oneof![Just(Afi::Ipv4Unicast), Just(Afi::Ipv6Unicast)];
    prop_oneof![
        afi.clone().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        Just(Capability::EnhancedRouteRefresh),
        Just(Capability::ExtendedMessage),
        (
            any::<bool>(),
            0u16..4096,
            prop::collection::vec((afi, any::<bool>()), 0..3)
        )
            .prop_map(|(restarting, restart_time, families)| {
                Capability::GracefulRestart(GracefulRestartCap {
                    restarting,
                    restart_time,
                    families,
                })
            }),
        (
            any::<u8>().prop_filter("unmodelled", |c| {
                !matches!(c, 1 | 2 | 6 | 64 | 65 | 70 | 128)
            }),
            prop::collection::vec(any::<u8>(), 0..40)
        )
            .prop_map(|(code, data)| Capability::Unknown { code, data }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    (
        any::<u32>(),
        any::<bool>(),
        any::<u16>(),
        1u32..,
        prop::collection::vec(capability(), 0..12),
    )
        .prop_map(|(asn, as4, hold_time, id, mut capabilities)| {
            let asn = if as4 { asn } else { asn & 0xffff };
            if as4 {
                capabilities.push(Capability::FourOctetAs(asn));
            }
            Open {
                version: 4,
                asn,
                hold_time,
                bgp_id: Ipv4Addr::from(id),
                capabilities,
            }
        })
}

fn message(ctx: Ctx) -> impl Strategy<Value = Message> {
    prop_oneof![
        1 => Just(Message::Keepalive),
        2 => open().prop_map(Message::Open),
        6 => update(ctx).prop_map(Message::Update),
        1 => (any::<u8>(), any::<u8>(), prop::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(code, subcode, data)| Message::Notification(Notification {
                code,
                subcode,
                data
            })),
        1 => (prop_oneof![Just(Afi::Ipv4Unicast), Just(Afi::Ipv6Unicast)], 0u8..=2)
            .prop_map(|(afi, subtype)| Message::RouteRefresh(RouteRefresh { afi, subtype })),
    ]
}

fn ctx_and_message() -> impl Strategy<Value = (Ctx, Message)> {
    ctx().prop_flat_map(|c| message(c).prop_map(move |m| (c, m)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decode_encode_round_trip((ctx, m) in ctx_and_message()) {
        let bytes = match encode_message(&m, &ctx) {
            Ok(b) => b,
            Err(EncodeError::TooLong { len, max }) => {
                prop_assert!(len > max);
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(format!("encode: {e}"))),
        };
        prop_assert_eq!(frame_len(&bytes, &ctx), Ok(Some(bytes.len())));
        let d = decode_message(&bytes, &ctx).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert!(d.issues.is_empty(), "{:?}", d.issues);
        prop_assert!(!d.ignore);
        prop_assert_eq!(&d.message, &m);
        prop_assert_eq!(encode_message(&d.message, &ctx).unwrap(), bytes);
    }
}
