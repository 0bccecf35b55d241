//! Codec throughput (criterion): decode and encode of (a) an UPDATE with typical
//! attributes and /26 NLRI packed to ~4096 bytes, (b) KEEPALIVE, (c) OPEN.
//! Messages/s = 1 / time per iteration; the UPDATE group's throughput is in prefixes.
//!
//! Run: `cargo bench -p tortie-bgp --bench codec -- --quick`

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ipnetwork::{IpNetwork, Ipv4Network};
use tortie_bgp::msg::*;
use tortie_bgp::wire::*;

const CTX: Ctx = Ctx {
    four_octet_as: true,
    extended_message: false,
    ipv4_in_mp: false,
};

/// An UPDATE with typical attributes and as many /26s as fit in 4096 bytes, packed
/// with the codec's own size helpers.
fn packed_update() -> (Message, usize) {
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: vec![AsSegment::Sequence(vec![64512, 65001])],
        next_hop: Some(Ipv4Addr::new(10, 0, 0, 1)),
        med: Some(0),
        local_pref: Some(100),
        communities: vec![0xfc00_0001, 0xfc00_0002],
        large_communities: vec![(64512, 1, 1)],
        ..PathAttributes::default()
    };
    let mut room = max_message_len(&CTX)
        - announce_overhead(&attrs, Afi::Ipv4Unicast, &CTX).expect("attributes encode");
    let mut announced = Vec::new();
    for i in 0u32.. {
        let p = IpNetwork::V4(
            Ipv4Network::new(Ipv4Addr::from(0x0a00_0000 | (i << 6)), 26).expect("valid /26"),
        );
        let need = prefix_wire_len(&p);
        if need > room {
            break;
        }
        room -= need;
        announced.push(p);
    }
    let n = announced.len();
    let m = Message::Update(Update {
        withdrawn: vec![],
        attrs: Some(attrs),
        announced,
        eor_family: None,
    });
    (m, n)
}

fn open() -> Message {
    Message::Open(Open {
        version: 4,
        asn: 64512,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(10, 0, 0, 1),
        capabilities: vec![
            Capability::Multiprotocol(Afi::Ipv4Unicast),
            Capability::Multiprotocol(Afi::Ipv6Unicast),
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::FourOctetAs(64512),
            Capability::GracefulRestart(GracefulRestartCap {
                restarting: false,
                restart_time: 120,
                families: vec![(Afi::Ipv4Unicast, true), (Afi::Ipv6Unicast, true)],
            }),
        ],
    })
}

fn bench(c: &mut Criterion) {
    let (update, prefixes) = packed_update();
    let bytes = encode_message(&update, &CTX).expect("encodes");
    eprintln!("UPDATE: {} bytes, {prefixes} /26 prefixes", bytes.len());
    let mut g = c.benchmark_group("update_4096");
    g.throughput(Throughput::Elements(prefixes as u64));
    g.bench_function("decode", |b| {
        b.iter(|| decode_message(black_box(&bytes), &CTX).expect("decodes"))
    });
    g.bench_function("encode", |b| {
        b.iter(|| encode_message(black_box(&update), &CTX).expect("encodes"))
    });
    g.finish();

    let mut g = c.benchmark_group("messages");
    g.throughput(Throughput::Elements(1));
    for (name, m) in [("keepalive", Message::Keepalive), ("open", open())] {
        let b = encode_message(&m, &CTX).expect("encodes");
        g.bench_function(format!("{name}_decode"), |bn| {
            bn.iter(|| decode_message(black_box(&b), &CTX).expect("decodes"))
        });
        g.bench_function(format!("{name}_encode"), |bn| {
            bn.iter(|| encode_message(black_box(&m), &CTX).expect("encodes"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
