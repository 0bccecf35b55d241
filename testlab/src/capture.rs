//! Packet capture in a lab host (`tcpdump -w` into the lab dir) and a pure reader of the
//! resulting pcap file: TCP segments ([`parse_pcap`]), per-direction byte streams
//! ([`tcp_streams`]) and BGP messages cut from a stream ([`split_bgp`]). This is how
//! tests collect real BIRD / GoBGP / FRR messages as codec seeds or wire evidence.
//! The parsers check every length and never panic on a truncated or foreign file.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::error::{Error, Result};
use crate::lab::Host;
use crate::process::Proc;
use crate::wait::wait_until;

/// A running `tcpdump` writing a pcap file.
#[derive(Debug)]
pub struct Capture {
    proc: Proc,
    file: PathBuf,
}

impl Host {
    /// Starts `tcpdump -i IFACE -w FILE FILTER` in this host (unbuffered, full snap
    /// length) and waits until it listens. `name` names the file
    /// (`<lab dir>/<host>/<name>.pcap`); `filter` is a pcap filter such as
    /// `"tcp port 179"` (empty for everything).
    pub fn capture(&self, name: &str, iface: &str, filter: &str) -> Result<Capture> {
        let file = self.dir("")?.join(format!("{name}.pcap"));
        let mut cmd = self.command("tcpdump");
        cmd.args([
            "-i",
            iface,
            "-s",
            "0",
            "-U",
            "--immediate-mode",
            "-Z",
            "root",
            "-n",
        ])
        .arg("-w")
        .arg(&file);
        cmd.args(filter.split_whitespace());
        let proc = self.spawn_command(&format!("tcpdump-{name}"), cmd)?;
        wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
            proc.check_running()?;
            if proc.log().contains("listening on") {
                Ok(())
            } else {
                Err(Error::Timeout {
                    what: format!("tcpdump on {iface}"),
                    after: Duration::from_secs(5),
                    last: proc.log_tail(3),
                })
            }
        })?;
        Ok(Capture { proc, file })
    }
}

impl Capture {
    /// The pcap file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Stops tcpdump (SIGINT, so it flushes and closes the file) and returns the TCP
    /// segments captured.
    pub fn stop(&self) -> Result<Vec<TcpSegment>> {
        if self.proc.signal(Signal::SIGINT).is_ok() {
            let _ = wait_until(
                Duration::from_secs(3),
                Duration::from_millis(10),
                || match self.proc.try_wait() {
                    Ok(None) => Err(()),
                    _ => Ok(()),
                },
            );
        }
        self.proc.stop();
        let bytes = std::fs::read(&self.file)
            .map_err(|e| Error::io(format!("read {}", self.file.display()), e))?;
        parse_pcap(&bytes)
    }
}

/// One TCP segment with payload, in capture order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSegment {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub syn: bool,
    pub payload: Vec<u8>,
}

fn bad(detail: impl Into<String>) -> Error {
    Error::parse("pcap", "capture file", detail)
}

fn take(b: &[u8], at: usize, n: usize) -> Option<&[u8]> {
    b.get(at..at.checked_add(n)?)
}

fn u16_be(b: &[u8], at: usize) -> Option<u16> {
    let s = take(b, at, 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn u32_be(b: &[u8], at: usize) -> Option<u32> {
    let s = take(b, at, 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Parses a classic pcap file (either byte order, µs or ns timestamps, Ethernet or
/// Linux cooked link type) into its IPv4/IPv6 TCP segments. Other packets are skipped.
pub fn parse_pcap(bytes: &[u8]) -> Result<Vec<TcpSegment>> {
    let magic = take(bytes, 0, 4).ok_or_else(|| bad("shorter than its header"))?;
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return Err(bad(format!("unknown magic {magic:02x?}"))),
    };
    let rd32 = |at: usize| -> Option<u32> {
        let s = take(bytes, at, 4)?;
        let a = [s[0], s[1], s[2], s[3]];
        Some(if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        })
    };
    let link = rd32(20).ok_or_else(|| bad("truncated global header"))?;
    let l2_len = match link {
        1 => 14,   // Ethernet
        113 => 16, // Linux cooked (SLL)
        _ => return Err(bad(format!("unsupported link type {link}"))),
    };
    let mut out = Vec::new();
    let mut at = 24usize;
    while at < bytes.len() {
        let incl = rd32(at + 8).ok_or_else(|| bad(format!("truncated record at {at}")))?;
        let incl = usize::try_from(incl).map_err(|_| bad("record length"))?;
        let frame = take(bytes, at + 16, incl)
            .ok_or_else(|| bad(format!("record at {at} claims {incl} bytes past the end")))?;
        at += 16 + incl;
        if let Some(seg) = parse_frame(frame, l2_len) {
            out.push(seg);
        }
    }
    Ok(out)
}

fn parse_frame(frame: &[u8], l2_len: usize) -> Option<TcpSegment> {
    let mut ethertype = u16_be(frame, l2_len - 2)?;
    let mut l3 = l2_len;
    if ethertype == 0x8100 {
        ethertype = u16_be(frame, l3 + 2)?;
        l3 += 4;
    }
    let (src, dst, l4, l4_end) = match ethertype {
        0x0800 => {
            let ihl = usize::from(*frame.get(l3)? & 0x0f) * 4;
            if *frame.get(l3 + 9)? != 6 || ihl < 20 {
                return None;
            }
            let total = usize::from(u16_be(frame, l3 + 2)?);
            let s = take(frame, l3 + 12, 4)?;
            let d = take(frame, l3 + 16, 4)?;
            (
                IpAddr::V4(Ipv4Addr::new(s[0], s[1], s[2], s[3])),
                IpAddr::V4(Ipv4Addr::new(d[0], d[1], d[2], d[3])),
                l3 + ihl,
                // Ethernet pads short frames: the IP length bounds the payload.
                (l3 + total).min(frame.len()),
            )
        }
        0x86dd => {
            if *frame.get(l3 + 6)? != 6 {
                return None; // extension headers are not followed
            }
            let plen = usize::from(u16_be(frame, l3 + 4)?);
            let s: [u8; 16] = take(frame, l3 + 8, 16)?.try_into().ok()?;
            let d: [u8; 16] = take(frame, l3 + 24, 16)?.try_into().ok()?;
            (
                IpAddr::V6(Ipv6Addr::from(s)),
                IpAddr::V6(Ipv6Addr::from(d)),
                l3 + 40,
                (l3 + 40 + plen).min(frame.len()),
            )
        }
        _ => return None,
    };
    let sport = u16_be(frame, l4)?;
    let dport = u16_be(frame, l4 + 2)?;
    let seq = u32_be(frame, l4 + 4)?;
    let off = usize::from(*frame.get(l4 + 12)? >> 4) * 4;
    let flags = *frame.get(l4 + 13)?;
    let payload = frame.get(l4 + off..l4_end).unwrap_or(&[]).to_vec();
    Some(TcpSegment {
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        seq,
        syn: flags & 0x02 != 0,
        payload,
    })
}

/// Reassembles each direction's byte stream, keyed by (source, destination), dropping
/// retransmitted bytes. A gap (lost capture) is bridged by appending what follows.
pub fn tcp_streams(segments: &[TcpSegment]) -> BTreeMap<(SocketAddr, SocketAddr), Vec<u8>> {
    let mut next: BTreeMap<(SocketAddr, SocketAddr), u32> = BTreeMap::new();
    let mut out: BTreeMap<(SocketAddr, SocketAddr), Vec<u8>> = BTreeMap::new();
    for s in segments {
        let key = (s.src, s.dst);
        if s.syn {
            next.insert(key, s.seq.wrapping_add(1));
            out.entry(key).or_default();
            continue;
        }
        if s.payload.is_empty() {
            continue;
        }
        let stream = out.entry(key).or_default();
        let expected = *next.get(&key).unwrap_or(&s.seq);
        let len = u32::try_from(s.payload.len()).unwrap_or(u32::MAX);
        let end = s.seq.wrapping_add(len);
        // Signed distance handles sequence wrap-around.
        let behind = expected.wrapping_sub(s.seq) as i32;
        if behind >= 0 {
            let skip = behind as u32;
            if skip >= len {
                continue; // pure retransmission
            }
            stream.extend_from_slice(s.payload.get(skip as usize..).unwrap_or(&[]));
        } else {
            stream.extend_from_slice(&s.payload);
        }
        next.insert(key, end);
    }
    out
}

/// Cuts a BGP byte stream into messages (RFC 4271 §4.1: 16-byte all-ones marker, 2-byte
/// length 19..=65535 including the header). Stops at the first byte that does not
/// start a well-formed header or at a truncated final message.
pub fn split_bgp(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while let Some(hdr) = take(stream, at, 19) {
        if hdr[..16].iter().any(|b| *b != 0xff) {
            break;
        }
        let len = usize::from(u16::from_be_bytes([hdr[16], hdr[17]]));
        if len < 19 {
            break;
        }
        let Some(msg) = take(stream, at, len) else {
            break;
        };
        out.push(msg.to_vec());
        at += len;
    }
    out
}

#[cfg(test)]
#[path = "capture_tests.rs"]
mod tests;
