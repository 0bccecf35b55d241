//! Unit tests of the pcap reader, stream reassembly and BGP splitting on hand-built
//! frames (Ethernet + IPv4/IPv6 + TCP), including padding, retransmissions and
//! truncated files.

use super::*;

fn keepalive() -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&[0, 19, 4]);
    m
}

fn tcp(sport: u16, dport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    t.extend_from_slice(&[5 << 4, flags, 0, 0, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    t
}

fn eth_v4(src: [u8; 4], dst: [u8; 4], seg: &[u8], pad: usize) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let total = u16::try_from(20 + seg.len()).unwrap();
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(seg);
    f.extend(std::iter::repeat_n(0u8, pad));
    f
}

fn eth_v6(seg: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&u16::try_from(seg.len()).unwrap().to_be_bytes());
    f.extend_from_slice(&[6, 64]);
    let mut a = [0u8; 16];
    a[0] = 0xfd;
    a[15] = 1;
    f.extend_from_slice(&a);
    a[15] = 2;
    f.extend_from_slice(&a);
    f.extend_from_slice(seg);
    f
}

fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut p = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(&65535u32.to_le_bytes());
    p.extend_from_slice(&1u32.to_le_bytes());
    for f in frames {
        p.extend_from_slice(&[0; 8]);
        let n = u32::try_from(f.len()).unwrap();
        p.extend_from_slice(&n.to_le_bytes());
        p.extend_from_slice(&n.to_le_bytes());
        p.extend_from_slice(f);
    }
    p
}

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];

fn sample() -> Vec<u8> {
    let ka = keepalive();
    let mut two = ka.clone();
    two.extend_from_slice(&ka[..10]); // second message split across segments
    pcap(&[
        eth_v4(A, B, &tcp(40000, 179, 99, 0x02, &[]), 6), // SYN, padded
        eth_v4(A, B, &tcp(40000, 179, 100, 0x18, &two), 0),
        eth_v4(A, B, &tcp(40000, 179, 100, 0x18, &two), 0), // retransmission
        eth_v4(A, B, &tcp(40000, 179, 129, 0x18, &ka[10..]), 0),
        eth_v4(B, A, &tcp(179, 40000, 7, 0x18, &ka), 3), // padded payload
        eth_v6(&tcp(179, 40001, 1, 0x18, &ka)),
    ])
}

#[test]
fn segments_streams_and_messages() {
    let segs = parse_pcap(&sample()).unwrap();
    assert_eq!(segs.len(), 6);
    assert!(
        segs[0].syn && segs[0].payload.is_empty(),
        "padding is not payload"
    );
    assert_eq!(
        segs[4].payload,
        keepalive(),
        "IP length trims Ethernet padding"
    );
    assert_eq!(segs[5].src.to_string(), "[fd00::1]:179");
    let streams = tcp_streams(&segs);
    let a2b = &streams[&(
        "10.0.0.1:40000".parse().unwrap(),
        "10.0.0.2:179".parse().unwrap(),
    )];
    assert_eq!(a2b.len(), 38, "retransmitted bytes dropped");
    let msgs = split_bgp(a2b);
    assert_eq!(msgs, vec![keepalive(), keepalive()]);
    let b2a = &streams[&(
        "10.0.0.2:179".parse().unwrap(),
        "10.0.0.1:40000".parse().unwrap(),
    )];
    assert_eq!(split_bgp(b2a).len(), 1);
}

#[test]
fn split_stops_at_garbage_and_truncation() {
    let mut s = keepalive();
    s.extend_from_slice(&keepalive()[..18]);
    assert_eq!(split_bgp(&s).len(), 1);
    let mut s = keepalive();
    s[17] = 5; // length below the header size
    assert!(split_bgp(&s).is_empty());
    assert!(split_bgp(&[0u8; 40]).is_empty());
}

#[test]
fn truncated_or_foreign_files_error_without_panic() {
    assert!(parse_pcap(&[]).is_err());
    assert!(parse_pcap(b"not a pcap file at all....").is_err());
    let p = sample();
    // Every truncation either parses (at a record boundary) or errors; never panics.
    for n in 0..p.len() {
        let _ = parse_pcap(&p[..n]);
    }
    // Every single-byte corruption of every frame byte is survivable too.
    for i in 24..p.len() {
        let mut q = p.clone();
        q[i] ^= 0xff;
        if let Ok(segs) = parse_pcap(&q) {
            let _ = tcp_streams(&segs);
        }
    }
}
