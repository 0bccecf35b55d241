//! Shared by the wire tests: loading the captured BIRD / GoBGP / FRR sessions in
//! `bgp/tests/data/` (see its README) and splitting them into messages.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tortie_bgp::msg::Message;
use tortie_bgp::wire::{Ctx, decode_message, frame_len};

/// The captured session directions: (sender, receiver file name). `frr-as2` / `bird-as2`
/// name the session in which neither side used 4-octet AS numbers.
pub const SESSIONS: &[(&str, &str)] = &[
    ("bird", "gobgp"),
    ("gobgp", "bird"),
    ("gobgp", "frr"),
    ("frr", "gobgp"),
    ("frr", "bird"),
    ("bird", "frr"),
    ("frr", "bird-as2"),
    ("bird", "frr-as2"),
];

/// The other direction of a session in [`SESSIONS`].
pub fn reverse(sender: &str, receiver: &str) -> (String, String) {
    match receiver.split_once('-') {
        Some((r, tag)) => (r.to_string(), format!("{sender}-{tag}")),
        None => (receiver.to_string(), sender.to_string()),
    }
}

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// The stream file of one direction of a session: every BGP message `sender` sent to
/// `receiver`, back to back, as on the wire.
pub fn stream_path(sender: &str, receiver: &str) -> PathBuf {
    data_dir().join(sender).join(format!("to-{receiver}.bin"))
}

/// Splits a stream into messages with the header checks of the most permissive context.
pub fn split(stream: &[u8]) -> Vec<Vec<u8>> {
    let lenient = Ctx {
        extended_message: true,
        ..Ctx::default()
    };
    let mut out = Vec::new();
    let mut rest = stream;
    while let Ok(Some(n)) = frame_len(rest, &lenient) {
        let Some((m, tail)) = rest.split_at_checked(n) else {
            break;
        };
        out.push(m.to_vec());
        rest = tail;
    }
    assert!(rest.is_empty(), "trailing bytes in a captured stream");
    out
}

/// One captured direction, with the context its session negotiated (from both OPENs).
pub struct Captured {
    pub sender: &'static str,
    pub receiver: &'static str,
    pub ctx: Ctx,
    pub messages: Vec<Vec<u8>>,
}

fn first_open(msgs: &[Vec<u8>]) -> tortie_bgp::msg::Open {
    let first = msgs.first().expect("empty capture");
    match decode_message(first, &Ctx::default()).map(|d| d.message) {
        Ok(Message::Open(o)) => o,
        other => panic!("capture does not start with an OPEN: {other:?}"),
    }
}

/// Every captured direction.
pub fn load_all() -> Vec<Captured> {
    SESSIONS
        .iter()
        .map(|&(sender, receiver)| {
            let read = |s: &str, r: &str| {
                let p = stream_path(s, r);
                let b = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                split(&b)
            };
            let messages = read(sender, receiver);
            let (rs, rr) = reverse(sender, receiver);
            let back = read(&rs, &rr);
            let ctx = Ctx::negotiated(&first_open(&messages), &first_open(&back));
            Captured {
                sender,
                receiver,
                ctx,
                messages,
            }
        })
        .collect()
}
