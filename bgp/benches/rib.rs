//! RIB throughput: 100,000 /26 prefixes from one eBGP peer into the RIB (import checks,
//! best path, change events) with the Adj-RIB-Out of one other peer computed and drained
//! into packed UPDATEs; the same table withdrawn by the peer going down; and the
//! receiver's side of the whole-system benchmark in-process: the same 124 wire UPDATEs
//! decoded and applied into a fresh RIB whose only peer is the sender.
//!
//! Run: `cargo bench -p tortie-bgp --bench rib` (criterion prints elements/s = prefixes/s).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ipnetwork::IpNetwork;
use tortie_bgp::msg::{AsSegment, Message, Origin, PathAttributes, Update};
use tortie_bgp::rib::{Negotiated, PeerConfig, PeerId, Rib, RibConfig};
use tortie_bgp::wire::{self, Ctx};

const N: u32 = 100_000;
/// /26s per UPDATE as a full 4096-byte message from a peer carries them.
const PER_UPDATE: usize = 800;

fn updates() -> Vec<Update> {
    let prefixes: Vec<IpNetwork> = (0..N)
        .map(|i| {
            IpNetwork::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i << 6))), 26).expect("prefix")
        })
        .collect();
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: vec![AsSegment::Sequence(vec![65001])],
        next_hop: Some(Ipv4Addr::new(10, 0, 0, 2)),
        ..Default::default()
    };
    prefixes
        .chunks(PER_UPDATE)
        .map(|c| Update {
            withdrawn: vec![],
            attrs: Some(attrs.clone()),
            announced: c.to_vec(),
            eor_family: None,
        })
        .collect()
}

fn setup() -> (Rib, PeerId, PeerId) {
    let mut rib = Rib::new(RibConfig::new(64512, Ipv4Addr::new(10, 0, 0, 1)));
    let mut src_cfg = PeerConfig::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 65001, 64512);
    src_cfg.local_v4 = Some(Ipv4Addr::new(10, 0, 0, 1));
    let mut dst_cfg = PeerConfig::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)), 65002, 64512);
    dst_cfg.local_v4 = Some(Ipv4Addr::new(10, 0, 0, 1));
    let src = rib.add_peer(src_cfg);
    let dst = rib.add_peer(dst_cfg);
    rib.peer_up(src, Negotiated::ipv4(Ipv4Addr::new(10, 255, 0, 2)))
        .expect("src up");
    rib.peer_up(dst, Negotiated::ipv4(Ipv4Addr::new(10, 255, 0, 3)))
        .expect("dst up");
    rib.pending_messages(dst).expect("initial");
    (rib, src, dst)
}

fn ingest(rib: &mut Rib, src: PeerId, dst: PeerId, ups: &[Update]) -> usize {
    let mut changes = 0;
    for u in ups {
        changes += rib.apply_update(src, u).expect("apply").len();
    }
    let out = rib.pending_messages(dst).expect("drain");
    assert_eq!(changes, N as usize);
    out.len()
}

/// The UPDATEs of `updates()` as a 4-octet-AS session carries them.
fn frames(ups: &[Update]) -> (Vec<Vec<u8>>, Ctx) {
    let ctx = Ctx {
        four_octet_as: true,
        ..Ctx::default()
    };
    let f = ups
        .iter()
        .map(|u| wire::encode_message(&Message::Update(u.clone()), &ctx).expect("encode"))
        .collect();
    (f, ctx)
}

/// A fresh RIB with one Established eBGP peer (the sender) and nothing else.
fn receiver() -> (Rib, PeerId) {
    let mut rib = Rib::new(RibConfig::new(64512, Ipv4Addr::new(10, 0, 0, 1)));
    let mut cfg = PeerConfig::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 65001, 64512);
    cfg.local_v4 = Some(Ipv4Addr::new(10, 0, 0, 1));
    let src = rib.add_peer(cfg);
    rib.peer_up(src, Negotiated::ipv4(Ipv4Addr::new(10, 255, 0, 2)))
        .expect("src up");
    (rib, src)
}

fn bench(c: &mut Criterion) {
    let ups = updates();
    let (wire_ups, ctx) = frames(&ups);
    let mut g = c.benchmark_group("rib");
    g.sample_size(10);
    g.throughput(Throughput::Elements(u64::from(N)));
    g.bench_function("ingest_100k_26s_best_path_and_adj_rib_out", |b| {
        b.iter_batched(
            setup,
            // The RIB is returned so that tearing it down is not timed.
            |(mut rib, src, dst)| {
                black_box(ingest(&mut rib, src, dst, &ups));
                rib
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.bench_function("receive_100k_26s_decode_and_apply", |b| {
        b.iter_batched(
            receiver,
            |(mut rib, src)| {
                let mut changes = 0;
                for f in &wire_ups {
                    let d = wire::decode_message(f, &ctx).expect("decode");
                    if let Message::Update(u) = d.message {
                        changes += rib.apply_update(src, &u).expect("apply").len();
                    }
                }
                assert_eq!(changes, N as usize);
                rib
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.bench_function("peer_down_withdraws_100k", |b| {
        b.iter_batched(
            || {
                let (mut rib, src, dst) = setup();
                ingest(&mut rib, src, dst, &ups);
                (rib, src, dst)
            },
            |(mut rib, src, dst)| {
                black_box(rib.peer_down(src).expect("down").len());
                black_box(rib.pending_messages(dst).expect("drain").len());
                rib
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
