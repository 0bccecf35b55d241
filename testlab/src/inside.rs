//! Running Rust code inside a lab host: a thread that has joined the host's network
//! namespace (`setns`, which affects only that thread) runs a closure, so std or tokio
//! sockets made there live in the host ([`Host::run_in`], [`Host::thread_in`]). On top
//! of that, connection probes for policy tests: TCP/UDP servers that record who reached
//! them ([`Server`]) and client probes that say whether a connection or an echo got
//! through within a timeout ([`Host::tcp_probe`], [`Host::udp_probe`]).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};

use crate::error::{Error, Result};
use crate::lab::Host;

fn enter(netns: &str) -> Result<()> {
    let path = format!("/run/netns/{netns}");
    let f = File::open(&path).map_err(|e| Error::io(format!("open {path}"), e))?;
    setns(&f, CloneFlags::CLONE_NEWNET)
        .map_err(|e| Error::io(format!("setns into {netns}"), e.into()))
}

impl Host {
    /// Runs `f` on a new thread inside this host's network namespace and returns its
    /// result; a panic in `f` is propagated. Sockets created in `f` stay in the host
    /// (they may be returned and used from any thread, also handed to tokio).
    pub fn run_in<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R> {
        let netns = self.netns().to_string();
        std::thread::scope(|s| {
            let h = s.spawn(move || enter(&netns).map(|()| f()));
            match h.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Starts a thread inside this host's namespace running `f` (e.g. a tokio runtime
    /// with a speaker); the caller owns the handle and joins it.
    pub fn thread_in<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> JoinHandle<Result<R>> {
        let netns = self.netns().to_string();
        std::thread::spawn(move || enter(&netns).map(|()| f()))
    }

    /// True when a TCP connection from this host to `to` completes within `timeout`
    /// (and the server's first line is read if it sends one). A drop times out, a
    /// reject fails fast: both are false.
    pub fn tcp_probe(&self, to: SocketAddr, timeout: Duration) -> bool {
        self.run_in(|| TcpStream::connect_timeout(&to, timeout).is_ok())
            .unwrap_or(false)
    }

    /// True when a datagram sent from this host to `to` is echoed back within
    /// `timeout` (see [`Server::udp`]).
    pub fn udp_probe(&self, to: SocketAddr, timeout: Duration) -> bool {
        self.run_in(|| -> std::io::Result<bool> {
            let bind: SocketAddr = if to.is_ipv4() {
                "0.0.0.0:0".parse().map_err(std::io::Error::other)?
            } else {
                "[::]:0".parse().map_err(std::io::Error::other)?
            };
            let s = UdpSocket::bind(bind)?;
            s.set_read_timeout(Some(timeout))?;
            s.send_to(b"testlab-probe", to)?;
            let mut buf = [0u8; 64];
            let (n, from) = s.recv_from(&mut buf)?;
            Ok(from == to && buf.get(..n) == Some(&b"testlab-probe"[..]))
        })
        .map(|r| r.unwrap_or(false))
        .unwrap_or(false)
    }
}

/// A TCP or UDP server inside a lab host that records the source address of every
/// client (to check NAT or anti-spoofing) and answers: TCP writes the host name and
/// closes, UDP echoes the datagram. Stopped when dropped.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    peers: Arc<Mutex<Vec<SocketAddr>>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

const POLL: Duration = Duration::from_millis(10);

impl Server {
    /// Listens on TCP `addr` (port 0 for any) inside `host`.
    pub fn tcp(host: &Host, addr: SocketAddr) -> Result<Server> {
        let listener = host
            .run_in(|| TcpListener::bind(addr))?
            .map_err(|e| Error::io(format!("bind tcp {addr} in {}", host.name()), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("set listener nonblocking", e))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::io("listener address", e))?;
        let name = host.name().to_string();
        Ok(Server::run(local, move |stop, peers| {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, from)) => {
                        lock(peers).push(from);
                        let _ = s.set_nonblocking(false);
                        let _ = s.write_all(format!("{name}\n").as_bytes());
                    }
                    Err(_) => std::thread::sleep(POLL),
                }
            }
        }))
    }

    /// Echoes datagrams on UDP `addr` (port 0 for any) inside `host`.
    pub fn udp(host: &Host, addr: SocketAddr) -> Result<Server> {
        let sock = host
            .run_in(|| UdpSocket::bind(addr))?
            .map_err(|e| Error::io(format!("bind udp {addr} in {}", host.name()), e))?;
        sock.set_read_timeout(Some(POLL))
            .map_err(|e| Error::io("set udp timeout", e))?;
        let local = sock.local_addr().map_err(|e| Error::io("udp address", e))?;
        Ok(Server::run(local, move |stop, peers| {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    lock(peers).push(from);
                    let _ = sock.send_to(buf.get(..n).unwrap_or(&[]), from);
                }
            }
        }))
    }

    fn run(
        addr: SocketAddr,
        body: impl FnOnce(&AtomicBool, &Mutex<Vec<SocketAddr>>) + Send + 'static,
    ) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let peers = Arc::new(Mutex::new(Vec::new()));
        let (s, p) = (Arc::clone(&stop), Arc::clone(&peers));
        let thread = std::thread::spawn(move || body(&s, &p));
        Server {
            addr,
            stop,
            peers,
            thread: Some(thread),
        }
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Source addresses of every client so far, in order.
    pub fn peers(&self) -> Vec<SocketAddr> {
        lock(&self.peers).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads what a TCP [`Server`] answers (its host name) from this host; None when the
/// connection fails or nothing arrives within `timeout`.
pub fn tcp_hello(host: &Host, to: SocketAddr, timeout: Duration) -> Option<String> {
    host.run_in(|| -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&to, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out.trim().to_string())
    })
    .ok()?
    .ok()
}
