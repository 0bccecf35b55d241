//! TCP plumbing of the speaker: the listener, outgoing connects with source address, MD5
//! and GTSM, and the per-connection reader and writer tasks. Readers only split the byte
//! stream into frames and forward them to the owner task (which decodes with the
//! session's negotiated context); writers only write what the owner encoded.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::fsm::ConnId;
use crate::wire::{self, Ctx};

use super::PeerConfig;
use super::owner::Event;
use super::sockopt;

/// A spawned task that is aborted when this handle is dropped (never detached).
#[derive(Debug)]
pub(crate) struct Owned(pub(crate) JoinHandle<()>);

impl Drop for Owned {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `io::Error` text without the "(os error N)" suffix, as BIRD and Calico show it.
pub(crate) fn io_text(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Maps a v4-mapped IPv6 address (from a dual-stack listener) back to IPv4.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Binds the listening socket.
pub(crate) fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(64)
}

/// Applies a peer's MD5 key (or removes it) on the listening socket.
pub(crate) fn listener_md5(
    l: &TcpListener,
    peer: IpAddr,
    password: Option<&str>,
) -> io::Result<()> {
    let v6 = l.local_addr()?.is_ipv6();
    sockopt::set_md5(l.as_fd(), v6, peer, password.map(str::as_bytes))
}

/// Connects to the peer with its transport options; bounded by `timeout`.
pub(crate) async fn connect(cfg: &PeerConfig, timeout: Duration) -> io::Result<TcpStream> {
    let dest = SocketAddr::new(cfg.address, cfg.port);
    let v6 = dest.is_ipv6();
    let sock = if v6 {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    if let Some(pw) = &cfg.password {
        sockopt::set_md5(sock.as_fd(), v6, cfg.address, Some(pw.as_bytes()))?;
    }
    if let Some(hops) = cfg.ttl_security {
        sockopt::set_ttl_security(sock.as_fd(), v6, !v6, hops)?;
    }
    if let Some(src) = cfg.source_address {
        sock.bind(SocketAddr::new(src, 0))?;
    }
    sock.set_nodelay(true)?;
    match tokio::time::timeout(timeout, sock.connect(dest)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "Connection timed out",
        )),
    }
}

/// Options applied to an accepted connection (GTSM needs IP_MINTTL on it).
pub(crate) fn accepted(stream: &TcpStream, cfg: &PeerConfig) -> io::Result<()> {
    stream.set_nodelay(true)?;
    if let Some(hops) = cfg.ttl_security {
        let v6 = stream.local_addr()?.is_ipv6();
        sockopt::set_ttl_security(stream.as_fd(), v6, cfg.address.is_ipv4(), hops)?;
    }
    Ok(())
}

/// The accept loop: every accepted connection goes to the owner, which decides.
pub(crate) async fn accept_loop(listener: std::sync::Arc<TcpListener>, tx: mpsc::Sender<Event>) {
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                if tx.send(Event::Accepted { stream, from }).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One live connection as the owner holds it.
#[derive(Debug)]
pub(crate) struct ConnIo {
    pub(crate) write_tx: mpsc::UnboundedSender<Bytes>,
    pub(crate) _reader: Owned,
    pub(crate) writer: Owned,
    pub(crate) local: Option<SocketAddr>,
    /// Codec context; negotiated once the peer's OPEN is in.
    pub(crate) ctx: Ctx,
}

/// Splits `stream` into reader and writer tasks reporting to `tx`.
pub(crate) fn spawn_io(
    stream: TcpStream,
    peer: IpAddr,
    conn: ConnId,
    tx: mpsc::Sender<Event>,
) -> ConnIo {
    let local = stream.local_addr().ok();
    let (rd, wr) = stream.into_split();
    let (write_tx, write_rx) = mpsc::unbounded_channel();
    let reader = Owned(tokio::spawn(read_loop(rd, peer, conn, tx)));
    let writer = Owned(tokio::spawn(write_loop(wr, write_rx)));
    ConnIo {
        write_tx,
        _reader: reader,
        writer,
        local,
        ctx: Ctx::default(),
    }
}

async fn read_loop(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    peer: IpAddr,
    conn: ConnId,
    tx: mpsc::Sender<Event>,
) {
    // Framing accepts the largest size any session may negotiate; the owner decodes each
    // frame with the session's real context, which rejects what was not negotiated.
    let framing = Ctx {
        extended_message: true,
        ..Ctx::default()
    };
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        // Every complete frame of this read goes to the owner in one event: a table dump
        // arrives as a few large reads, and one wake-up per read instead of per message
        // keeps both threads busy with the messages rather than with each other.
        let mut frames = Vec::new();
        let mut framing_error = None;
        loop {
            match wire::frame_len(&buf, &framing) {
                Ok(Some(n)) if buf.len() >= n => frames.push(buf.split_to(n).freeze()),
                Ok(_) => break,
                Err(e) => {
                    framing_error = Some(e.notification());
                    break;
                }
            }
        }
        if !frames.is_empty() && tx.send(Event::Frames { peer, conn, frames }).await.is_err() {
            return;
        }
        if let Some(notification) = framing_error {
            let _ = tx
                .send(Event::FramingError {
                    peer,
                    conn,
                    notification,
                })
                .await;
            return;
        }
        let error = match rd.read_buf(&mut buf).await {
            Ok(0) => String::new(),
            Ok(_) => continue,
            Err(e) => io_text(&e),
        };
        let _ = tx.send(Event::Closed { peer, conn, error }).await;
        return;
    }
}

async fn write_loop(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
) {
    while let Some(bytes) = rx.recv().await {
        if let Err(e) = wr.write_all(&bytes).await {
            tracing::debug!(error = %e, "write failed");
            return;
        }
    }
    // The owner dropped the sender: everything queued is written; close our side.
    let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
}
