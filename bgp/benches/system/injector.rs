//! The benchmark's injector: a minimal BGP sender built on our codec (`tortie_bgp::wire`)
//! that listens in the injector namespace, accepts one session, and, the moment it is
//! Established, writes a pre-encoded table of N distinct /26 prefixes (packed into as few
//! 4096-octet UPDATEs as fit) followed by End-of-RIB. It then keeps the session up with
//! KEEPALIVEs and drains whatever the receiver sends until it is told to stop.
//!
//! Why not the speaker as injector: the table is encoded before the clock starts, so the
//! measured time is the receiver's work alone (plus the kernel's loopback-fast veth), and
//! the same bytes go to every receiver. `t0` is CLOCK_MONOTONIC right before the first
//! UPDATE byte is written.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use ipnetwork::{IpNetwork, Ipv4Network};
use tortie_bgp::msg::{
    AsSegment, Capability, Message, Open, Origin, PathAttributes, Update, err as notif,
};
use tortie_bgp::wire::{self, Ctx};

/// Where the prefixes come from: 10.128.0.0/9 holds 131,072 /26s.
pub const PREFIX_BASE: Ipv4Addr = Ipv4Addr::new(10, 128, 0, 0);
/// The most /26s [`PREFIX_BASE`]/9 holds.
pub const MAX_PREFIXES: u32 = 1 << 17;

/// The i-th /26 of 10.128.0.0/9.
pub fn prefix(i: u32) -> Result<IpNetwork> {
    if i >= MAX_PREFIXES {
        bail!("prefix index {i} is outside 10.128.0.0/9 (at most {MAX_PREFIXES} /26s)");
    }
    let addr = Ipv4Addr::from(u32::from(PREFIX_BASE) + (i << 6));
    Ok(IpNetwork::V4(Ipv4Network::new(addr, 26)?))
}

/// The index of `p` if it is one of the benchmark's prefixes.
pub fn index_of(p: &IpNetwork) -> Option<u32> {
    let IpNetwork::V4(v4) = p else { return None };
    if v4.prefix() != 26 {
        return None;
    }
    let off = u32::from(v4.network()).checked_sub(u32::from(PREFIX_BASE))?;
    let i = off >> 6;
    (i < MAX_PREFIXES).then_some(i)
}

/// The injector's identity on the wire.
#[derive(Debug, Clone, Copy)]
pub struct InjectorId {
    pub address: Ipv4Addr,
    pub asn: u32,
}

/// The table as bytes: UPDATE messages then the IPv4 End-of-RIB.
#[derive(Debug, Clone)]
pub struct Table {
    pub bytes: Vec<u8>,
    pub updates: usize,
    pub prefixes: u32,
}

/// Encodes `n` prefixes with one shared attribute set (ORIGIN IGP, AS_PATH [asn],
/// NEXT_HOP address) into as few UPDATEs as fit `ctx`'s maximum message length.
pub fn build_table(id: InjectorId, n: u32, ctx: &Ctx) -> Result<Table> {
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: vec![AsSegment::Sequence(vec![id.asn])],
        next_hop: Some(id.address),
        ..PathAttributes::default()
    };
    let max = wire::max_message_len(ctx);
    let overhead = wire::announce_overhead(&attrs, tortie_bgp::msg::Afi::Ipv4Unicast, ctx)?;
    let mut bytes = Vec::new();
    let mut updates = 0;
    let mut batch: Vec<IpNetwork> = Vec::new();
    let mut used = overhead;
    let mut flush = |batch: &mut Vec<IpNetwork>, bytes: &mut Vec<u8>| -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let u = Update {
            attrs: Some(attrs.clone()),
            announced: std::mem::take(batch),
            ..Update::default()
        };
        wire::encode_message_into(&Message::Update(u), ctx, bytes)?;
        updates += 1;
        Ok(())
    };
    for i in 0..n {
        let p = prefix(i)?;
        let len = wire::prefix_wire_len(&p);
        if used + len > max {
            flush(&mut batch, &mut bytes)?;
            used = overhead;
        }
        used += len;
        batch.push(p);
    }
    flush(&mut batch, &mut bytes)?;
    let eor = Update::end_of_rib(tortie_bgp::msg::Afi::Ipv4Unicast);
    wire::encode_message_into(&Message::Update(eor), ctx, &mut bytes)?;
    Ok(Table {
        bytes,
        updates,
        prefixes: n,
    })
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process of the run (the
/// receiver binary reports its own times on it).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// What the injector reports once the table is written.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    /// CLOCK_MONOTONIC when the first UPDATE byte was handed to the socket.
    pub t0_ns: u64,
    /// CLOCK_MONOTONIC when the last byte (End-of-RIB) was accepted by the socket.
    pub done_ns: u64,
}

/// A running injector; dropping it stops the session thread.
pub struct Injector {
    stop: Arc<AtomicBool>,
    sent_rx: mpsc::Receiver<Result<Sent>>,
}

impl Drop for Injector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Injector {
    /// Binds `listen` on a thread inside `host` and serves one session there. The
    /// table (encoded for 4-octet AS, no extended messages) is re-encoded before the
    /// clock starts if the receiver negotiates differently.
    pub fn start(
        host: &testlab::Host,
        id: InjectorId,
        listen: SocketAddr,
        table: Arc<Table>,
        accept_within: Duration,
    ) -> Result<Injector> {
        let stop = Arc::new(AtomicBool::new(false));
        let (sent_tx, sent_rx) = mpsc::channel();
        let (bound_tx, bound_rx) = mpsc::channel();
        let stop2 = Arc::clone(&stop);
        // Detached on purpose: it ends by itself when `stop` is set or its peer goes.
        let _thread = host.thread_in(move || {
            let listener = match TcpListener::bind(listen) {
                Ok(l) => l,
                Err(e) => {
                    let _ = bound_tx.send(Err(anyhow!("injector bind {listen}: {e}")));
                    return;
                }
            };
            let _ = bound_tx.send(Ok(()));
            let r = serve(&listener, id, &table, &stop2, accept_within, &sent_tx);
            if let Err(e) = r {
                let _ = sent_tx.send(Err(e));
            }
        });
        bound_rx
            .recv_timeout(Duration::from_secs(10))
            .context("injector thread did not start")??;
        Ok(Injector { stop, sent_rx })
    }

    /// Waits until the table was written (or the session failed).
    pub fn wait_sent(&self, timeout: Duration) -> Result<Sent> {
        self.sent_rx
            .recv_timeout(timeout)
            .map_err(|_| anyhow!("no session reached Established within {timeout:?}"))?
    }
}

fn accept(listener: &TcpListener, stop: &AtomicBool, within: Duration) -> Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + within;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                return Ok(s);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                    bail!("no receiver connected within {within:?}");
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e).context("accept"),
        }
    }
}

/// Reads one whole message (blocking, with the stream's read timeout).
fn read_message(s: &mut TcpStream, buf: &mut Vec<u8>, ctx: &Ctx) -> Result<Message> {
    loop {
        if let Some(len) = wire::frame_len(buf, ctx)?
            && buf.len() >= len
        {
            let frame: Vec<u8> = buf.drain(..len).collect();
            return Ok(wire::decode_message(&frame, ctx)?.message);
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).context("read from receiver")?;
        if n == 0 {
            bail!("receiver closed the connection");
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

fn serve(
    listener: &TcpListener,
    id: InjectorId,
    table: &Table,
    stop: &Arc<AtomicBool>,
    accept_within: Duration,
    sent_tx: &mpsc::Sender<Result<Sent>>,
) -> Result<()> {
    let mut s = accept(listener, stop, accept_within)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let ours = Open {
        version: 4,
        asn: id.asn,
        hold_time: 90,
        bgp_id: id.address,
        capabilities: vec![
            Capability::Multiprotocol(tortie_bgp::msg::Afi::Ipv4Unicast),
            Capability::FourOctetAs(id.asn),
        ],
    };
    let pre = Ctx::default();
    s.write_all(&wire::encode_message(&Message::Open(ours.clone()), &pre)?)?;
    let mut buf = Vec::new();
    let theirs = match read_message(&mut s, &mut buf, &pre)? {
        Message::Open(o) => o,
        Message::Notification(n) => bail!("receiver sent NOTIFICATION {}/{}", n.code, n.subcode),
        other => bail!("receiver sent {other:?} instead of OPEN"),
    };
    let ctx = Ctx::negotiated(&ours, &theirs);
    s.write_all(&wire::encode_message(&Message::Keepalive, &ctx)?)?;
    loop {
        match read_message(&mut s, &mut buf, &ctx)? {
            Message::Keepalive => break,
            Message::Notification(n) => {
                bail!("receiver sent NOTIFICATION {}/{}", n.code, n.subcode)
            }
            _ => {}
        }
    }
    let hold = ours.hold_time.min(theirs.hold_time);
    let keepalive = Duration::from_secs(u64::from((hold / 3).max(1)));
    let expected = Ctx {
        four_octet_as: true,
        ..Ctx::default()
    };
    let fresh;
    let bytes = if ctx == expected {
        &table.bytes
    } else {
        fresh = build_table(id, table.prefixes, &ctx)?;
        &fresh.bytes
    };
    // Drain the receiver on its own thread so it never blocks on a full socket buffer.
    let mut rd = s.try_clone()?;
    rd.set_read_timeout(Some(Duration::from_millis(200)))?;
    let stop_rd = Arc::clone(stop);
    std::thread::spawn(move || drain(&mut rd, &stop_rd, buf, ctx));

    let t0_ns = monotonic_ns();
    s.write_all(bytes).context("write the table")?;
    let done_ns = monotonic_ns();
    let _ = sent_tx.send(Ok(Sent { t0_ns, done_ns }));
    let ka = wire::encode_message(&Message::Keepalive, &ctx)?;
    let mut next = Instant::now() + keepalive;
    while !stop.load(Ordering::SeqCst) {
        if Instant::now() >= next {
            if s.write_all(&ka).is_err() {
                break;
            }
            next = Instant::now() + keepalive;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let cease = tortie_bgp::msg::Notification {
        code: notif::CEASE,
        subcode: notif::ADMIN_SHUTDOWN,
        data: Vec::new(),
    };
    let _ = s.write_all(&wire::encode_message(&Message::Notification(cease), &ctx)?);
    Ok(())
}

/// Reads and decodes everything the receiver sends until `stop` or EOF; a NOTIFICATION
/// is printed (it means the measurement is void).
fn drain(s: &mut TcpStream, stop: &AtomicBool, mut buf: Vec<u8>, ctx: Ctx) {
    let mut chunk = vec![0u8; 65536];
    while !stop.load(Ordering::SeqCst) {
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
        while let Ok(Some(len)) = wire::frame_len(&buf, &ctx) {
            if buf.len() < len {
                break;
            }
            let frame: Vec<u8> = buf.drain(..len).collect();
            if let Ok(d) = wire::decode_message(&frame, &ctx)
                && let Message::Notification(n) = d.message
                && !stop.load(Ordering::SeqCst)
            {
                eprintln!(
                    "injector: receiver sent NOTIFICATION {}/{}",
                    n.code, n.subcode
                );
            }
        }
    }
}
