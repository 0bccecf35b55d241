//! Bounded mutation run over real captured messages (seeds from BIRD, GoBGP and FRR in
//! `tests/data`): 200,000 mutants — bit flips, byte changes, truncations, length-field
//! edits, insertions/deletions and splices — decoded under the seed's negotiated context
//! and under a different one. Deterministic (fixed seed, own PRNG).
//!
//! Asserts: no panic; every `Err` maps to a NOTIFICATION with a defined code/subcode
//! whose data is bounded by the message; every `Ok` re-encodes (or fails cleanly) and
//! then encode∘decode is a fixpoint that keeps every prefix.

mod wire_common;

use std::time::Instant;

use ipnetwork::IpNetwork;
use tortie_bgp::msg::{Message, Notification, err};
use tortie_bgp::wire::{Ctx, decode_message, encode_message};
use wire_common::load_all;

/// xorshift64*: tiny, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn byte(&mut self) -> u8 {
        const INTERESTING: [u8; 10] = [0, 1, 2, 0x7f, 0x80, 0xff, 0x10, 0x40, 0xc0, 0xe0];
        if self.below(2) == 0 {
            INTERESTING[self.below(INTERESTING.len())]
        } else {
            self.next() as u8
        }
    }
}

fn set_len(m: &mut [u8]) {
    if let Ok(l) = u16::try_from(m.len())
        && m.len() >= 18
    {
        m[16..18].copy_from_slice(&l.to_be_bytes());
    }
}

fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut m = seed.to_vec();
    let rounds = 1 + rng.below(3);
    for _ in 0..rounds {
        // Mostly in the body: header damage dies at the header check.
        let pos = |rng: &mut Rng, len: usize| {
            if len > 19 && rng.below(8) != 0 {
                19 + rng.below(len - 19)
            } else {
                rng.below(len.max(1))
            }
        };
        match rng.below(7) {
            0 => {
                let p = pos(rng, m.len());
                if let Some(b) = m.get_mut(p) {
                    *b ^= 1 << rng.below(8);
                }
            }
            1 => {
                let p = pos(rng, m.len());
                let v = rng.byte();
                if let Some(b) = m.get_mut(p) {
                    *b = v;
                }
            }
            2 => {
                m.truncate(rng.below(m.len() + 1));
                if rng.below(4) != 0 {
                    set_len(&mut m);
                }
            }
            3 => {
                // A 2-octet field (withdrawn/attribute/extended lengths) set to nearby
                // or extreme values.
                let p = pos(rng, m.len());
                if p + 1 < m.len() {
                    let old = u16::from_be_bytes([m[p], m[p + 1]]);
                    let v = match rng.below(4) {
                        0 => old.wrapping_add(1 + rng.below(8) as u16),
                        1 => old.wrapping_sub(1 + rng.below(8) as u16),
                        2 => 0xffff,
                        _ => rng.below(64) as u16,
                    };
                    m[p..p + 2].copy_from_slice(&v.to_be_bytes());
                }
            }
            4 => {
                let p = pos(rng, m.len());
                for _ in 0..1 + rng.below(8) {
                    let v = rng.byte();
                    m.insert(p.min(m.len()), v);
                }
                set_len(&mut m);
            }
            5 => {
                let p = pos(rng, m.len());
                let n = 1 + rng.below(8);
                m.drain(p.min(m.len())..(p + n).min(m.len()));
                set_len(&mut m);
            }
            _ => {
                // Splice: our head, another message's tail.
                let cut = pos(rng, m.len()).min(m.len());
                let from = rng.below(other.len() + 1);
                m.truncate(cut);
                m.extend_from_slice(&other[from..]);
                set_len(&mut m);
            }
        }
    }
    m
}

/// Codes/subcodes RFC 4271 §4.5, RFC 4486, RFC 7313 define.
fn defined(n: &Notification) -> bool {
    match n.code {
        err::MESSAGE_HEADER => (1..=3).contains(&n.subcode),
        err::OPEN_MESSAGE => matches!(n.subcode, 0..=4 | 6 | 7),
        err::UPDATE_MESSAGE => matches!(n.subcode, 1..=6 | 8..=11),
        err::ROUTE_REFRESH => n.subcode == 1,
        _ => false,
    }
}

fn sorted(v: &[IpNetwork]) -> Vec<IpNetwork> {
    let mut v = v.to_vec();
    v.sort();
    v
}

fn check(bytes: &[u8], ctx: &Ctx, stats: &mut [usize; 4]) {
    match decode_message(bytes, ctx) {
        Err(e) => {
            let n = e.notification();
            assert!(defined(&n), "undefined NOTIFICATION {n:?} for {e:?}");
            assert!(
                n.data.len() <= bytes.len().max(2),
                "data longer than the message"
            );
            stats[0] += 1;
        }
        Ok(d) => {
            stats[1] += 1;
            if !d.issues.is_empty() {
                stats[2] += 1;
            }
            for i in &d.issues {
                assert!(defined(&i.notification()), "{i:?}");
            }
            let Ok(b1) = encode_message(&d.message, ctx) else {
                return;
            };
            stats[3] += 1;
            let m2 = decode_message(&b1, ctx)
                .expect("our own encoding decodes")
                .message;
            let b2 = encode_message(&m2, ctx).expect("re-encodes");
            assert_eq!(b1, b2, "encode∘decode is not a fixpoint");
            if let (Message::Update(u1), Message::Update(u2)) = (&d.message, &m2) {
                assert_eq!(u1.announced, u2.announced, "announced prefixes changed");
                assert_eq!(sorted(&u1.withdrawn), sorted(&u2.withdrawn));
            }
        }
    }
}

#[test]
fn mutated_captured_messages_never_panic_and_map_to_notifications() {
    let captured = load_all();
    let seeds: Vec<(&[u8], Ctx)> = captured
        .iter()
        .flat_map(|c| c.messages.iter().map(move |m| (m.as_slice(), c.ctx)))
        .collect();
    assert!(seeds.len() > 50, "too few seeds: {}", seeds.len());
    let mut rng = Rng(0x7a11_b9a5_5eed_0001);
    let start = Instant::now();
    let mut stats = [0usize; 4];
    const TOTAL: usize = 200_000;
    for i in 0..TOTAL {
        let (seed, ctx) = seeds[i % seeds.len()];
        let other = seeds[rng.below(seeds.len())].0;
        let m = mutate(&mut rng, seed, other);
        check(&m, &ctx, &mut stats);
        // The same bytes under the other AS width (and extended messages).
        let flipped = Ctx {
            four_octet_as: !ctx.four_octet_as,
            extended_message: i % 2 == 0,
            ipv4_in_mp: i % 3 == 0,
        };
        check(&m, &flipped, &mut stats);
    }
    let [errs, oks, with_issues, reencoded] = stats;
    eprintln!(
        "{TOTAL} mutants × 2 contexts in {:?}: {errs} errors, {oks} decoded \
         ({with_issues} with RFC 7606 issues, {reencoded} re-encoded)",
        start.elapsed()
    );
    // The run must exercise both paths substantially.
    assert!(errs > TOTAL / 10 && oks > TOTAL / 10 && with_issues > 1000);
}
