//! Malformed input: each case yields the NOTIFICATION RFC 4271 §6 / RFC 7606 / RFC 7313
//! prescribe (session reset), or the right RFC 7606 treat-as-withdraw / attribute
//! discard outcome.

use std::net::Ipv4Addr;

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

fn raw(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0xff; 16];
    v.extend_from_slice(&u16::try_from(19 + body.len()).unwrap().to_be_bytes());
    v.push(ty);
    v.extend_from_slice(body);
    v
}

/// UPDATE with the given withdrawn, attribute and NLRI fields (lengths computed).
fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&u16::try_from(withdrawn.len()).unwrap().to_be_bytes());
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&u16::try_from(attrs.len()).unwrap().to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    raw(2, &b)
}

const ORIGIN: &[u8] = &[0x40, 1, 1, 0];
const AS_PATH: &[u8] = &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9];
const NEXT_HOP: &[u8] = &[0x40, 3, 4, 10, 0, 0, 1];
const NLRI: &[u8] = &[24, 10, 1, 2];

fn attrs(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[track_caller]
fn reset(bytes: &[u8], ctx: &Ctx, code: u8, subcode: u8) -> Notification {
    let e = decode_message(bytes, ctx).expect_err("must be a session reset");
    let n = e.notification();
    assert_eq!((n.code, n.subcode), (code, subcode), "{e}");
    n
}

/// Decodes an UPDATE that must survive with exactly one issue of `action`, whose strict
/// NOTIFICATION would be UPDATE/`subcode`; returns the update.
#[track_caller]
fn survives(bytes: &[u8], ctx: &Ctx, ty: u8, action: AttrAction, subcode: u8) -> Update {
    let d = decode_message(bytes, ctx).expect("must not reset the session");
    assert_eq!(d.issues.len(), 1, "{:?}", d.issues);
    let i = &d.issues[0];
    assert_eq!((i.type_code, i.action), (ty, action), "{i:?}");
    let n = i.notification();
    assert_eq!((n.code, n.subcode), (err::UPDATE_MESSAGE, subcode), "{i:?}");
    let Message::Update(u) = d.message else {
        panic!("not an UPDATE")
    };
    if action == AttrAction::TreatAsWithdraw {
        assert!(u.announced.is_empty());
        assert_eq!(
            u.withdrawn,
            vec!["10.1.2.0/24".parse::<IpNetwork>().unwrap()]
        );
        assert!(
            u.attrs.is_some(),
            "treat-as-withdraw must not look like End-of-RIB"
        );
    } else {
        assert_eq!(
            u.announced,
            vec!["10.1.2.0/24".parse::<IpNetwork>().unwrap()]
        );
    }
    u
}

#[test]
fn header_errors() {
    let mut m = raw(4, &[]);
    m[0] = 0xfe;
    reset(&m, &FOUR, 1, 1);
    let mut m = raw(4, &[]);
    m[17] = 18;
    let n = reset(&m[..18], &FOUR, 1, 2);
    assert_eq!(n.data, vec![0, 18]);
    let n = reset(&raw(9, &[]), &FOUR, 1, 3);
    assert_eq!(n.data, vec![9]);
    let n = reset(&raw(4, &[0]), &FOUR, 1, 2);
    assert_eq!(n.data, vec![0, 20]);
    reset(&raw(3, &[6]), &FOUR, 1, 2); // NOTIFICATION shorter than 21
    reset(&raw(1, &[4, 0, 1]), &FOUR, 1, 2); // OPEN shorter than 29
    reset(&raw(2, &[0, 0, 0]), &FOUR, 1, 2); // UPDATE shorter than 23
    reset(&raw(2, &vec![0; 4100]), &FOUR, 1, 2); // beyond 4096 without extended messages
    let ext = Ctx {
        extended_message: true,
        ..FOUR
    };
    // The same length is fine with extended messages (it then fails later, in the body).
    assert!(frame_len(&raw(2, &vec![0; 4100]), &ext).unwrap().is_some());
}

#[test]
fn open_errors() {
    let ok = [4, 0xfd, 0xe9, 0, 90, 10, 0, 0, 1, 0];
    assert!(decode_message(&raw(1, &ok), &FOUR).is_ok());
    let mut v3 = ok;
    v3[0] = 3;
    let n = reset(&raw(1, &v3), &FOUR, 2, 1);
    assert_eq!(n.data, vec![0, 4], "largest supported version");
    let mut zero_id = ok;
    zero_id[5..9].copy_from_slice(&[0, 0, 0, 0]);
    reset(&raw(1, &zero_id), &FOUR, 2, 3);
    // Optional parameter type 1 (deprecated authentication).
    reset(
        &raw(1, &[4, 0xfd, 0xe9, 0, 90, 10, 0, 0, 1, 3, 1, 1, 0]),
        &FOUR,
        2,
        4,
    );
    // 4-octet AS capability with 2 octets of value.
    reset(
        &raw(
            1,
            &[4, 0xfd, 0xe9, 0, 90, 10, 0, 0, 1, 6, 2, 4, 65, 2, 0, 1],
        ),
        &FOUR,
        2,
        0,
    );
    // Optional parameters length overruns the message.
    reset(
        &raw(1, &[4, 0xfd, 0xe9, 0, 90, 10, 0, 0, 1, 9, 2, 2]),
        &FOUR,
        2,
        0,
    );
    // Capability length overruns its parameter.
    reset(
        &raw(1, &[4, 0xfd, 0xe9, 0, 90, 10, 0, 0, 1, 4, 2, 2, 65, 4]),
        &FOUR,
        2,
        0,
    );
}

#[test]
fn fsm_side_open_errors_have_their_notifications() {
    let cases = [
        (DecodeError::BadPeerAs { got: 1, want: 2 }, 2, 2, vec![]),
        (DecodeError::UnacceptableHoldTime(2), 2, 6, vec![]),
        (
            DecodeError::BadBgpId(Ipv4Addr::new(10, 0, 0, 1)),
            2,
            3,
            vec![],
        ),
        (
            DecodeError::UnsupportedCapability {
                code: 65,
                data: vec![65, 4, 0, 0, 0, 1],
            },
            2,
            7,
            vec![65, 4, 0, 0, 0, 1],
        ),
    ];
    for (e, code, subcode, data) in cases {
        let n = e.notification();
        assert_eq!((n.code, n.subcode, n.data), (code, subcode, data), "{e}");
    }
}

#[test]
fn update_session_reset_errors() {
    // Withdrawn Routes Length beyond the message.
    reset(&raw(2, &[0, 9, 0, 0]), &FOUR, 3, 1);
    // Total Path Attribute Length beyond the message.
    reset(&raw(2, &[0, 0, 0, 9, 0x40, 1, 1, 0]), &FOUR, 3, 1);
    // NLRI /33 and an NLRI prefix running past the end.
    let a = attrs(&[ORIGIN, AS_PATH, NEXT_HOP]);
    reset(&update(&[], &a, &[33, 1, 2, 3, 4, 5]), &FOUR, 3, 10);
    reset(&update(&[], &a, &[24, 10, 1]), &FOUR, 3, 10);
    reset(&update(&[40, 1], &[], &[]), &FOUR, 3, 10);
    // Unrecognized well-known attribute: data is the attribute.
    let unk = [0x40, 99, 1, 7];
    let n = reset(&update(&[], &attrs(&[ORIGIN, &unk]), &[]), &FOUR, 3, 2);
    assert_eq!(n.data, unk);
    // MP_REACH_NLRI with a 5-octet next hop: session reset with Optional Attribute Error.
    let mp = [0x80, 14, 10, 0, 2, 1, 5, 1, 2, 3, 4, 5, 0];
    let n = reset(
        &update(&[], &attrs(&[ORIGIN, AS_PATH, &mp]), &[]),
        &FOUR,
        3,
        9,
    );
    assert_eq!(n.data, mp);
    // MP_UNREACH_NLRI whose prefix overruns; duplicate MP_UNREACH_NLRI.
    let unreach = [0x80, 15, 5, 0, 2, 1, 64, 0x20];
    reset(&update(&[], &unreach, &[]), &FOUR, 3, 9);
    let eor6 = [0x80, 15, 3, 0, 2, 1];
    reset(&update(&[], &attrs(&[&eor6, &eor6]), &[]), &FOUR, 3, 1);
}

#[test]
fn treat_as_withdraw_cases() {
    use AttrAction::TreatAsWithdraw as T;
    let ok = update(&[], &attrs(&[ORIGIN, AS_PATH, NEXT_HOP]), NLRI);
    let d = decode_message(&ok, &FOUR).unwrap();
    assert!(d.issues.is_empty() && !d.treat_as_withdraw());

    let with = |bad: &[u8], slot: usize| {
        let mut parts: Vec<&[u8]> = vec![ORIGIN, AS_PATH, NEXT_HOP];
        parts[slot] = bad;
        update(&[], &parts.concat(), NLRI)
    };
    let extra = |bad: &[u8]| update(&[], &attrs(&[ORIGIN, AS_PATH, NEXT_HOP, bad]), NLRI);

    let u = survives(&with(&[0x40, 1, 1, 3], 0), &FOUR, 1, T, 6);
    assert_eq!(u.attrs.unwrap().origin, None);
    survives(&with(&[0x40, 1, 2, 0, 0], 0), &FOUR, 1, T, 5);
    survives(&with(&[0xc0, 1, 1, 0], 0), &FOUR, 1, T, 4); // flags: optional
    survives(&with(&[0x40, 2, 2, 2, 0], 1), &FOUR, 2, T, 11); // empty segment
    survives(&with(&[0x40, 2, 4, 2, 2, 0, 1], 1), &FOUR, 2, T, 11); // overrun
    survives(&with(&[0x40, 2, 3, 7, 1, 0], 1), &FOUR, 2, T, 11); // 2-octet width mismatch
    survives(&with(&[0x40, 3, 4, 0, 0, 0, 0], 2), &FOUR, 3, T, 8);
    survives(&with(&[0x40, 3, 4, 224, 0, 0, 5], 2), &FOUR, 3, T, 8);
    survives(&with(&[0x40, 3, 5, 10, 0, 0, 1, 0], 2), &FOUR, 3, T, 5);
    survives(&extra(&[0x80, 4, 2, 0, 1]), &FOUR, 4, T, 5); // MED
    survives(&extra(&[0x40, 5, 3, 0, 0, 1]), &FOUR, 5, T, 5); // LOCAL_PREF
    survives(&extra(&[0xc0, 8, 5, 0, 0, 0, 1, 2]), &FOUR, 8, T, 5); // COMMUNITIES
    survives(&extra(&[0xc0, 8, 0]), &FOUR, 8, T, 5);
    survives(&extra(&[0x80, 9, 3, 1, 2, 3]), &FOUR, 9, T, 5); // ORIGINATOR_ID
    survives(&extra(&[0x80, 10, 0]), &FOUR, 10, T, 5); // CLUSTER_LIST
    survives(
        &extra(&[0xc0, 32, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        &FOUR,
        32,
        T,
        5,
    );

    // Missing well-known attributes (data: the missing type code).
    let d = decode_message(&update(&[], &attrs(&[AS_PATH, NEXT_HOP]), NLRI), &FOUR).unwrap();
    assert!(d.treat_as_withdraw());
    let n = d.issues[0].notification();
    assert_eq!((n.subcode, n.data), (3, vec![1]));
    survives(
        &update(&[], &attrs(&[ORIGIN, AS_PATH]), NLRI),
        &FOUR,
        3,
        T,
        3,
    );
    // Last attribute overruns the attribute section (RFC 7606 §4).
    let u = survives(
        &update(
            &[],
            &attrs(&[ORIGIN, AS_PATH, NEXT_HOP, &[0xc0, 8, 8, 0, 0]]),
            NLRI,
        ),
        &FOUR,
        8,
        T,
        5,
    );
    assert_eq!(u.attrs.unwrap().next_hop, Some(Ipv4Addr::new(10, 0, 0, 1)));
}

#[test]
fn treat_as_withdraw_covers_mp_reach_prefixes() {
    let mp = [
        0x80, 14, 30, 0, 2, 1, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 64,
        0x20, 1, 0xd, 0xb8, 0, 9, 0, 0,
    ];
    let bad_origin = [0x40, 1, 1, 9];
    let d = decode_message(
        &update(&[], &attrs(&[&mp, &bad_origin, AS_PATH]), &[]),
        &FOUR,
    )
    .unwrap();
    assert!(d.treat_as_withdraw());
    let Message::Update(u) = d.message else {
        panic!()
    };
    assert!(u.announced.is_empty());
    assert_eq!(
        u.withdrawn,
        vec!["2001:db8:9::/64".parse::<IpNetwork>().unwrap()]
    );
}

#[test]
fn attribute_discard_cases() {
    use AttrAction::Discard as D;
    let extra = |bad: &[u8]| update(&[], &attrs(&[ORIGIN, AS_PATH, NEXT_HOP, bad]), NLRI);
    let u = survives(&extra(&[0x40, 6, 1, 0]), &FOUR, 6, D, 5); // ATOMIC_AGGREGATE
    assert!(!u.attrs.unwrap().atomic_aggregate);
    let u = survives(&extra(&[0xc0, 7, 6, 0, 1, 10, 0, 0, 1]), &FOUR, 7, D, 5); // AGGREGATOR
    assert_eq!(u.attrs.unwrap().aggregator, None);
    // Duplicate MED: the first is kept.
    let med = |v| [0x80, 4, 4, 0, 0, 0, v];
    let u = survives(
        &update(
            &[],
            &attrs(&[ORIGIN, AS_PATH, NEXT_HOP, &med(1), &med(2)]),
            NLRI,
        ),
        &FOUR,
        4,
        D,
        1,
    );
    assert_eq!(u.attrs.unwrap().med, Some(1));
    // AS4_PATH on a 4-octet session; malformed AS4_PATH on a 2-octet session.
    survives(&extra(&[0xc0, 17, 6, 2, 1, 0, 0, 0, 1]), &FOUR, 17, D, 9);
    let as_path2 = [0x40, 2, 4, 2, 1, 0x5b, 0xa0];
    let u = survives(
        &update(
            &[],
            &attrs(&[ORIGIN, &as_path2, NEXT_HOP, &[0xc0, 17, 3, 2, 1, 0]]),
            NLRI,
        ),
        &TWO,
        17,
        D,
        11,
    );
    assert_eq!(
        u.attrs.unwrap().as_path,
        vec![AsSegment::Sequence(vec![23456])]
    );
    // MP_REACH_NLRI for a family not modelled (IPv4 multicast).
    survives(
        &extra(&[0x80, 14, 11, 0, 1, 2, 4, 10, 0, 0, 1, 0, 8, 10]),
        &FOUR,
        14,
        D,
        9,
    );
}

#[test]
fn unknown_optional_attributes() {
    // Optional non-transitive: dropped quietly. Optional transitive: kept, Partial on
    // re-encode.
    let a = attrs(&[
        ORIGIN,
        AS_PATH,
        NEXT_HOP,
        &[0x80, 200, 1, 1],
        &[0xc0, 201, 2, 5, 6],
    ]);
    let d = decode_message(&update(&[], &a, NLRI), &FOUR).unwrap();
    assert!(d.issues.is_empty());
    let Message::Update(u) = &d.message else {
        panic!()
    };
    let unknown = &u.attrs.as_ref().unwrap().unknown;
    assert_eq!(
        unknown,
        &vec![RawAttribute {
            flags: 0xc0,
            type_code: 201,
            value: vec![5, 6],
        }]
    );
    let out = encode_message(&d.message, &FOUR).unwrap();
    let want = update(
        &[],
        &attrs(&[ORIGIN, AS_PATH, NEXT_HOP, &[0xe0, 201, 2, 5, 6]]),
        NLRI,
    );
    assert_eq!(out, want);
}

#[test]
fn route_refresh_errors() {
    // BoRR with a bad length: ROUTE-REFRESH Message Error / Invalid Message Length, with
    // the whole message as data (RFC 7313 §5).
    let m = raw(5, &[0, 1, 1, 1, 0]);
    let n = reset(&m, &FOUR, 7, 1);
    assert_eq!(n.data, m);
    // A normal request with a bad length is a header length error.
    reset(&raw(5, &[0, 1, 0, 1, 0]), &FOUR, 1, 2);
}

#[test]
fn encode_refuses_oversize_and_inconsistent_values() {
    let many: Vec<IpNetwork> = (0..2000u32)
        .map(|i| IpNetwork::V4(ipnetwork::Ipv4Network::new(Ipv4Addr::from(i << 8), 24).unwrap()))
        .collect();
    let u = Update {
        withdrawn: many,
        ..Update::default()
    };
    assert!(matches!(
        encode_message(&Message::Update(u.clone()), &FOUR),
        Err(EncodeError::TooLong { max: 4096, .. })
    ));
    let ext = Ctx {
        extended_message: true,
        ..FOUR
    };
    assert!(encode_message(&Message::Update(u), &ext).is_ok());
    let no_attrs = Update {
        announced: vec!["10.0.0.0/8".parse().unwrap()],
        ..Update::default()
    };
    assert!(matches!(
        encode_message(&Message::Update(no_attrs), &FOUR),
        Err(EncodeError::Missing { .. })
    ));
    let open = Open {
        version: 4,
        asn: 4_200_000_000,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(1, 1, 1, 1),
        capabilities: vec![],
    };
    assert!(matches!(
        encode_message(&Message::Open(open), &FOUR),
        Err(EncodeError::AsNotRepresentable { .. })
    ));
}
