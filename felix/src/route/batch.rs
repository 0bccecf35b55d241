//! Pipelined route writes: many RTM_NEWROUTE / RTM_DELROUTE requests in one `sendmsg` on
//! a netlink socket of the reconciler's own, each acknowledged on its own and matched to
//! its request by sequence number. The kernel handles every message of a buffer in turn
//! (a rejected one does not stop the rest) and queues one ack or error per message
//! before `sendmsg` returns, so the acks are read without waiting. This module owns the
//! wire framing of such a batch ([`encode_batch`], [`parse_acks`], pure) and the thin
//! socket driver ([`RouteSocket`]); which routes to write is the reconciler's business.

use super::error::RouteError;
use ipnetwork::IpNetwork;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, NLMSG_ERROR, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::RouteMessage;
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use tortie_cni::Netns;

/// Requests per `sendmsg`: every ack of a chunk must fit the socket's receive buffer
/// (an ack with `NETLINK_CAP_ACK` is 36 bytes, about 1 KiB of buffer accounting).
pub const CHUNK: usize = 128;
/// Bytes of requests per `sendmsg` (well under the default send buffer).
const CHUNK_BYTES: usize = 64 * 1024;
/// Receive buffer asked for (the kernel caps it at `rmem_max`).
const RCVBUF: usize = 1 << 20;
const ESRCH: i32 = 3;
const ENOBUFS: i32 = 105;
/// `NLMSGERR_ATTR_MSG`: the kernel's extended-ack text.
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSG_HDRLEN: usize = 16;

/// What to do with one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteOp {
    /// `ip route replace` (create or replace).
    Replace(RouteMessage),
    /// Delete; a route already gone counts as done.
    Delete(RouteMessage),
}

impl RouteOp {
    fn verb(&self) -> &'static str {
        match self {
            RouteOp::Replace(_) => "replace",
            RouteOp::Delete(_) => "delete",
        }
    }
}

/// One request of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRequest {
    pub dst: IpNetwork,
    pub op: RouteOp,
}

/// How the kernel answered one request: `Ok` for an ack, or the errno and the
/// extended-ack text it gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub seq: u32,
    /// 0 for success, else the positive errno.
    pub errno: i32,
    pub message: Option<String>,
}

/// Serialises `reqs` into one buffer, request `i` carrying sequence number
/// `first_seq + i` (wrapping).
pub fn encode_batch(reqs: &[RouteRequest], first_seq: u32) -> Vec<u8> {
    let mut msgs: Vec<NetlinkMessage<RouteNetlinkMessage>> = reqs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (flags, inner) = match &r.op {
                RouteOp::Replace(m) => (
                    NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
                    RouteNetlinkMessage::NewRoute(m.clone()),
                ),
                RouteOp::Delete(m) => (
                    NLM_F_REQUEST | NLM_F_ACK,
                    RouteNetlinkMessage::DelRoute(m.clone()),
                ),
            };
            let mut header = NetlinkHeader::default();
            header.flags = flags;
            header.sequence_number = first_seq.wrapping_add(i as u32);
            let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(inner));
            m.finalize();
            m
        })
        .collect();
    let total: usize = msgs.iter().map(|m| m.buffer_len()).sum();
    let mut buf = vec![0u8; total];
    let mut at = 0;
    for m in msgs.iter_mut() {
        let len = m.buffer_len();
        m.serialize(&mut buf[at..at + len]);
        at += len;
    }
    buf
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The extended-ack text among the TLVs after an error's echoed request header.
fn ext_ack_text(tlvs: &[u8]) -> Option<String> {
    let mut at = 0;
    while at + 4 <= tlvs.len() {
        let len = usize::from(u16_at(tlvs, at)?);
        let kind = u16_at(tlvs, at + 2)? & 0x3fff;
        if len < 4 || at + len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[at + 4..at + len];
            let text = text.split(|b| *b == 0).next().unwrap_or(text);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        at += (len + 3) & !3;
    }
    None
}

/// Reads every NLMSG_ERROR (ack or error) of one received datagram; other messages and
/// a truncated tail are skipped (never a panic on what the socket delivered).
pub fn parse_acks(buf: &[u8]) -> Vec<Ack> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + NLMSG_HDRLEN <= buf.len() {
        let Some(len) = u32_at(buf, at).map(|l| l as usize) else {
            break;
        };
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            break;
        }
        let msg = &buf[at..at + len];
        let kind = u16_at(msg, 4).unwrap_or(0);
        let flags = u16_at(msg, 6).unwrap_or(0);
        let seq = u32_at(msg, 8).unwrap_or(0);
        if kind == NLMSG_ERROR
            && let Some(code) = u32_at(msg, NLMSG_HDRLEN).map(|c| c as i32)
        {
            let errno = code.saturating_neg();
            // The echoed request: its header only (CAP_ACK), or all of it.
            let echoed = u32_at(msg, NLMSG_HDRLEN + 4).map_or(0, |l| l as usize);
            let echoed = if flags & 0x100 != 0 {
                NLMSG_HDRLEN
            } else {
                (echoed + 3) & !3
            };
            let tlv_at = NLMSG_HDRLEN + 4 + echoed;
            let message = if flags & NLM_F_ACK_TLVS != 0 && tlv_at <= msg.len() {
                ext_ack_text(&msg[tlv_at..])
            } else {
                None
            };
            out.push(Ack {
                seq,
                errno,
                message,
            });
        }
        at += (len + 3) & !3;
    }
    out
}

/// What one request's ack means for it.
pub fn outcome(req: &RouteRequest, ack: &Ack) -> Result<(), RouteError> {
    match (ack.errno, &req.op) {
        (0, _) => Ok(()),
        // Already gone: the goal of a delete is reached.
        (ESRCH, RouteOp::Delete(_)) => Ok(()),
        (errno, op) => Err(RouteError::Rejected {
            op: format!("{} route {}", op.verb(), req.dst),
            source: std::io::Error::from_raw_os_error(errno),
            detail: ack
                .message
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default(),
        }),
    }
}

/// A netlink socket in the reconciler's namespace used only for batched route writes
/// (subscribed to nothing, so everything it reads answers its own requests).
pub struct RouteSocket {
    sock: Socket,
    next_seq: u32,
    rbuf: Vec<u8>,
}

fn sock_err(op: &str) -> impl FnOnce(std::io::Error) -> RouteError + '_ {
    move |source| RouteError::Socket {
        op: op.to_string(),
        source,
    }
}

impl RouteSocket {
    /// Opens the socket inside `netns` (non-blocking, small acks, extended-ack text).
    pub fn open(netns: &Netns) -> Result<Self, RouteError> {
        let sock = netns.run(|| -> std::io::Result<Socket> {
            let mut s = Socket::new(NETLINK_ROUTE)?;
            s.bind_auto()?;
            s.set_non_blocking(true)?;
            s.set_cap_ack(true)?;
            // Only the text of a rejection; older kernels without it still work.
            let _ = s.set_ext_ack(true);
            let _ = s.set_rx_buf_sz(RCVBUF as i32);
            Ok(s)
        })?;
        Ok(RouteSocket {
            sock: sock.map_err(sock_err("open route socket"))?,
            next_seq: 1,
            rbuf: vec![0u8; 64 * 1024],
        })
    }

    /// Sets the socket's receive buffer (bytes; the kernel doubles and bounds it). Only
    /// for tests and tuning: every ack of a chunk must fit, or some are lost.
    pub fn set_receive_buffer(&self, bytes: usize) -> Result<(), RouteError> {
        let bytes = i32::try_from(bytes).unwrap_or(i32::MAX);
        self.sock
            .set_rx_buf_sz(bytes)
            .map_err(sock_err("set receive buffer"))
    }

    /// Sends `reqs` (at most [`CHUNK`] of them, see [`chunks`]) in one `sendmsg` and
    /// returns one result per request, in order. A request whose ack never came (a
    /// receive-buffer overrun) is an error: its state is unknown until the next read.
    pub fn send_chunk(&mut self, reqs: &[RouteRequest]) -> Vec<Result<(), RouteError>> {
        if reqs.is_empty() {
            return Vec::new();
        }
        let first = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(reqs.len() as u32);
        let buf = encode_batch(reqs, first);
        let kernel = SocketAddr::new(0, 0);
        if let Err(e) = self.sock.send_to(&buf, &kernel, 0) {
            return reqs
                .iter()
                .map(|r| {
                    Err(RouteError::Socket {
                        op: format!("send {} route {}", r.op.verb(), r.dst),
                        source: std::io::Error::new(e.kind(), e.to_string()),
                    })
                })
                .collect();
        }
        let mut acks: Vec<Option<Ack>> = vec![None; reqs.len()];
        let mut missing = reqs.len();
        let mut lost = None;
        while missing > 0 {
            let mut slice: &mut [u8] = &mut self.rbuf[..];
            let n = match self.sock.recv(&mut slice, 0) {
                Ok(n) => n.min(self.rbuf.len()),
                Err(e) if e.raw_os_error() == Some(ENOBUFS) => {
                    lost = Some("acknowledgement lost (netlink receive buffer overrun)");
                    continue;
                }
                // Everything the kernel answered is read; the rest never comes.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    lost = Some("receive failed");
                    break;
                }
            };
            for ack in parse_acks(&self.rbuf[..n]) {
                let i = ack.seq.wrapping_sub(first) as usize;
                if let Some(slot) = acks.get_mut(i)
                    && slot.is_none()
                {
                    *slot = Some(ack);
                    missing -= 1;
                }
            }
        }
        reqs.iter()
            .zip(acks)
            .map(|(r, a)| match a {
                Some(a) => outcome(r, &a),
                None => Err(RouteError::NoAck {
                    op: format!("{} route {}", r.op.verb(), r.dst),
                    why: lost.unwrap_or("no acknowledgement").to_string(),
                }),
            })
            .collect()
    }
}

/// Splits a request list into `sendmsg`-sized chunks (by count and by encoded size).
pub fn chunks(reqs: &[RouteRequest]) -> Vec<&[RouteRequest]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, r) in reqs.iter().enumerate() {
        let len = match &r.op {
            RouteOp::Replace(m) | RouteOp::Delete(m) => {
                use netlink_packet_core::Emitable;
                m.buffer_len() + NLMSG_HDRLEN
            }
        };
        if i > start && (i - start >= CHUNK || bytes + len > CHUNK_BYTES) {
            out.push(&reqs[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += len;
    }
    if start < reqs.len() {
        out.push(&reqs[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::kernel::{build_delete, build_route};
    use crate::route::model::RouteTarget;

    fn dev(dst: &str) -> RouteRequest {
        let dst: IpNetwork = dst.parse().unwrap_or_else(|_| unreachable!());
        let target = RouteTarget::Device {
            iface: "cali1".into(),
        };
        let msg = build_route(dst, &target, |_| Some(7)).unwrap_or_else(|e| panic!("{e}"));
        RouteRequest {
            dst,
            op: RouteOp::Replace(msg),
        }
    }

    fn del(dst: &str) -> RouteRequest {
        let dst: IpNetwork = dst.parse().unwrap_or_else(|_| unreachable!());
        let msg = build_delete(dst, &RouteTarget::Blackhole).unwrap_or_else(|e| panic!("{e}"));
        RouteRequest {
            dst,
            op: RouteOp::Delete(msg),
        }
    }

    /// An NLMSG_ERROR as the kernel writes it with CAP_ACK (+ an extack text).
    fn ack_bytes(seq: u32, code: i32, text: Option<&str>) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&code.to_ne_bytes());
        // Echoed request header (capped): length, type 24, flags, seq, port.
        body.extend_from_slice(&60u32.to_ne_bytes());
        body.extend_from_slice(&24u16.to_ne_bytes());
        body.extend_from_slice(&5u16.to_ne_bytes());
        body.extend_from_slice(&seq.to_ne_bytes());
        body.extend_from_slice(&0u32.to_ne_bytes());
        let mut flags = 0x100u16;
        if let Some(t) = text {
            flags |= NLM_F_ACK_TLVS;
            let len = 4 + t.len() + 1;
            body.extend_from_slice(&(len as u16).to_ne_bytes());
            body.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
            body.extend_from_slice(t.as_bytes());
            body.push(0);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&1234u32.to_ne_bytes());
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn encode_batch_numbers_and_flags_every_request() {
        let reqs = vec![dev("10.0.0.1/32"), del("10.0.0.2/32"), dev("10.0.0.3/32")];
        let buf = encode_batch(&reqs, u32::MAX);
        let mut at = 0;
        let mut seen = Vec::new();
        while at < buf.len() {
            let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[at..])
                .unwrap_or_else(|e| panic!("message at {at}: {e}"));
            let kind = match &m.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(_)) => "new",
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(_)) => "del",
                other => panic!("unexpected {other:?}"),
            };
            seen.push((kind, m.header.sequence_number, m.header.flags));
            at += m.header.length as usize;
        }
        let replace = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
        assert_eq!(
            seen,
            vec![
                ("new", u32::MAX, replace),
                ("del", 0, NLM_F_REQUEST | NLM_F_ACK),
                ("new", 1, replace),
            ]
        );
    }

    #[test]
    fn parse_acks_reads_acks_errors_and_text_and_skips_garbage() {
        let mut buf = ack_bytes(7, 0, None);
        buf.extend(ack_bytes(8, -19, Some("Nexthop device is not up")));
        // A truncated message at the end is ignored, not a panic.
        buf.extend_from_slice(&[200, 0, 0, 0, 2, 0]);
        let acks = parse_acks(&buf);
        assert_eq!(
            acks,
            vec![
                Ack {
                    seq: 7,
                    errno: 0,
                    message: None
                },
                Ack {
                    seq: 8,
                    errno: 19,
                    message: Some("Nexthop device is not up".into())
                },
            ]
        );
        assert!(parse_acks(&[0u8; 3]).is_empty());
        // A length field below the header size stops the walk.
        let mut bad = ack_bytes(1, 0, None);
        bad[0..4].copy_from_slice(&4u32.to_ne_bytes());
        assert!(parse_acks(&bad).is_empty());
    }

    #[test]
    fn outcome_names_the_route_and_forgives_deleting_a_missing_one() {
        let ack = |errno| Ack {
            seq: 1,
            errno,
            message: Some("No such device".into()),
        };
        assert!(outcome(&dev("10.0.0.1/32"), &ack(0)).is_ok());
        assert!(outcome(&del("10.0.0.2/32"), &ack(ESRCH)).is_ok());
        let e = outcome(&dev("10.0.0.1/32"), &ack(ESRCH))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("replace route 10.0.0.1/32"), "{e}");
        let e = outcome(&del("10.0.0.2/32"), &ack(1))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("delete route 10.0.0.2/32") && e.contains("(No such device)"),
            "{e}"
        );
    }

    #[test]
    fn chunks_split_by_count_and_keep_order() {
        let reqs: Vec<RouteRequest> = (0..(2 * CHUNK + 5))
            .map(|i| dev(&format!("10.1.{}.{}/32", i / 256, i % 256)))
            .collect();
        let c = chunks(&reqs);
        assert_eq!(
            c.iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![CHUNK, CHUNK, 5]
        );
        assert_eq!(c.concat(), reqs);
        assert!(chunks(&[]).is_empty());
    }
}
