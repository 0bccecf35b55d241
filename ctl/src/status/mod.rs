//! The node status contract between `tortie-node` (server) and `tortiectl node status`
//! (client), and the pure formatter of Calico's peer table ([`format`]).
//!
//! Contract: the agent listens on a unix socket (default [`DEFAULT_STATUS_ADDR`]) or on a
//! localhost TCP port, and answers `GET /v1/bgp/peers` (HTTP/1.0, one request per
//! connection) with `200` and a JSON [`StatusReport`]: every peer's
//! `tortie_bgp::speaker::PeerStatus` plus its Calico peer type. `curl --unix-socket PATH
//! http://x/v1/bgp/peers` reads it too. The agent wires [`serve`] to
//! `Speaker::peer_states`; this module owns the wire format, the server loop and the
//! client ([`fetch`]).

pub mod format;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tortie_bgp::speaker::PeerStatus;

pub use format::format_node_status;

/// Where the agent serves status unless told otherwise.
pub const DEFAULT_STATUS_ADDR: &str = "/var/run/tortie/status.sock";
/// The one path of the contract.
pub const PEERS_PATH: &str = "/v1/bgp/peers";

const MAX_REQUEST: usize = 8 * 1024;
const MAX_RESPONSE: usize = 16 * 1024 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Calico's PEER TYPE column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerType {
    /// `node-to-node mesh` (rows `Mesh_<ip>`).
    #[serde(rename = "node-to-node mesh")]
    Mesh,
    /// `global`: a BGPPeer without node scope (rows `Global_<ip>`).
    #[serde(rename = "global")]
    Global,
    /// `node specific`: a BGPPeer for this node or selected nodes (rows `Node_<ip>`).
    #[serde(rename = "node specific")]
    NodeSpecific,
}

impl PeerType {
    /// The column text.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerType::Mesh => "node-to-node mesh",
            PeerType::Global => "global",
            PeerType::NodeSpecific => "node specific",
        }
    }

    /// The type Calico's row names encode (`Mesh_`, `Global_`, `Node_`); unknown names
    /// count as `global`.
    pub fn from_peer_name(name: &str) -> PeerType {
        if name.starts_with("Mesh_") {
            PeerType::Mesh
        } else if name.starts_with("Node_") {
            PeerType::NodeSpecific
        } else {
            PeerType::Global
        }
    }
}

/// One row: the speaker's view of a peer and how the agent configured it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusPeer {
    /// Mesh, global or node specific.
    pub peer_type: PeerType,
    /// The speaker's row.
    pub status: PeerStatus,
}

impl StatusPeer {
    /// A row typed by its Calico-style name (`Mesh_10.0.0.2` ⇒ mesh).
    pub fn from_status(status: PeerStatus) -> StatusPeer {
        StatusPeer {
            peer_type: PeerType::from_peer_name(&status.name),
            status,
        }
    }
}

/// The JSON body of `GET /v1/bgp/peers`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Every configured peer.
    pub peers: Vec<StatusPeer>,
}

/// Errors of the status client and server.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// `--status-addr` is neither a path nor `IP:PORT`.
    #[error("status-addr {addr:?}: {reason}")]
    BadAddr {
        /// The text given.
        addr: String,
        /// Why it is refused.
        reason: String,
    },
    /// Connecting, reading or writing failed.
    #[error("status endpoint {addr}: {source}")]
    Io {
        /// The endpoint.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The agent answered something that is not the contract.
    #[error("status endpoint {addr}: {reason}")]
    Protocol {
        /// The endpoint.
        addr: String,
        /// What was wrong.
        reason: String,
    },
}

/// A status endpoint: a unix socket path or a TCP address (loopback in practice).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusAddr {
    /// A unix socket.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl StatusAddr {
    /// `/path`, `unix:/path` or `IP:PORT`.
    pub fn parse(text: &str) -> Result<StatusAddr, StatusError> {
        let bad = |reason: &str| StatusError::BadAddr {
            addr: text.to_string(),
            reason: reason.to_string(),
        };
        if let Some(p) = text.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(bad("empty socket path"));
            }
            return Ok(StatusAddr::Unix(p.into()));
        }
        if text.starts_with('/') || text.starts_with('.') {
            return Ok(StatusAddr::Unix(text.into()));
        }
        text.parse::<SocketAddr>()
            .map(StatusAddr::Tcp)
            .map_err(|_| bad("expected a socket path or IP:PORT"))
    }
}

impl std::fmt::Display for StatusAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            StatusAddr::Tcp(a) => write!(f, "{a}"),
        }
    }
}

/// A bound status listener.
#[derive(Debug)]
pub enum StatusListener {
    /// On a unix socket (a stale socket file is replaced).
    Unix(UnixListener),
    /// On TCP.
    Tcp(TcpListener),
}

impl StatusListener {
    /// Binds `addr` (creating the socket's directory when missing).
    pub async fn bind(addr: &StatusAddr) -> Result<StatusListener, StatusError> {
        let io = |source| StatusError::Io {
            addr: addr.to_string(),
            source,
        };
        match addr {
            StatusAddr::Unix(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(e)),
                }
                Ok(StatusListener::Unix(UnixListener::bind(path).map_err(io)?))
            }
            StatusAddr::Tcp(a) => Ok(StatusListener::Tcp(TcpListener::bind(a).await.map_err(io)?)),
        }
    }

    /// The bound TCP address (useful after binding port 0).
    pub fn local_tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            StatusListener::Tcp(l) => l.local_addr().ok(),
            StatusListener::Unix(_) => None,
        }
    }
}

/// Serves the contract forever: each connection gets one answer built from `source`
/// (the agent passes a closure over `Speaker::peer_states`). A failing source answers
/// `503` with its message; per-connection errors never stop the loop.
pub async fn serve<F, Fut>(listener: StatusListener, source: F) -> Result<(), StatusError>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<StatusPeer>, String>> + Send,
{
    let source = std::sync::Arc::new(source);
    loop {
        let src = source.clone();
        match &listener {
            StatusListener::Unix(l) => {
                let Ok((s, _)) = l.accept().await else {
                    continue;
                };
                answer(s, move || src()).await;
            }
            StatusListener::Tcp(l) => {
                let Ok((s, _)) = l.accept().await else {
                    continue;
                };
                answer(s, move || src()).await;
            }
        }
    }
}

async fn answer<S, F, Fut>(mut s: S, source: F)
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Vec<StatusPeer>, String>>,
{
    let request = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut s)).await {
        Ok(Ok(r)) => r,
        _ => return,
    };
    let first = request.lines().next().unwrap_or_default();
    let response = match first.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["GET", path, ..] if *path == PEERS_PATH => match source().await {
            Ok(peers) => match serde_json::to_string(&StatusReport { peers }) {
                Ok(body) => http("200 OK", "application/json", &body),
                Err(e) => http("500 Internal Server Error", "text/plain", &e.to_string()),
            },
            Err(e) => http("503 Service Unavailable", "text/plain", &e),
        },
        ["GET", ..] => http("404 Not Found", "text/plain", "unknown path"),
        _ => http("400 Bad Request", "text/plain", "expected GET"),
    };
    let _ = tokio::time::timeout(IO_TIMEOUT, async {
        s.write_all(response.as_bytes()).await?;
        s.shutdown().await
    })
    .await;
}

/// A complete HTTP/1.0 response (the agent's small endpoints: status, health, metrics).
pub fn http(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Reads a request up to the blank line ending its head (or 8 KiB, or EOF).
pub async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        let n = s.read(&mut chunk).await?;
        if n == 0 || buf.len() > MAX_REQUEST {
            break;
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Asks the agent at `addr` for its peer table.
pub async fn fetch(addr: &StatusAddr) -> Result<Vec<StatusPeer>, StatusError> {
    let io = |source| StatusError::Io {
        addr: addr.to_string(),
        source,
    };
    let request = format!("GET {PEERS_PATH} HTTP/1.0\r\nHost: tortie\r\n\r\n");
    let raw = tokio::time::timeout(IO_TIMEOUT, async {
        match addr {
            StatusAddr::Unix(p) => exchange(UnixStream::connect(p).await?, &request).await,
            StatusAddr::Tcp(a) => exchange(TcpStream::connect(a).await?, &request).await,
        }
    })
    .await
    .map_err(|_| io(std::io::Error::from(std::io::ErrorKind::TimedOut)))?
    .map_err(io)?;
    parse_response(&raw).map_err(|reason| StatusError::Protocol {
        addr: addr.to_string(),
        reason,
    })
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    request: &str,
) -> std::io::Result<Vec<u8>> {
    s.write_all(request.as_bytes()).await?;
    let mut out = Vec::new();
    (&mut s)
        .take(MAX_RESPONSE as u64)
        .read_to_end(&mut out)
        .await?;
    Ok(out)
}

/// Splits an HTTP/1.x answer and decodes the report. Pure.
pub fn parse_response(raw: &[u8]) -> Result<Vec<StatusPeer>, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "answer is not UTF-8".to_string())?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "answer has no HTTP header".to_string())?;
    let status_line = head.lines().next().unwrap_or_default();
    let code = status_line.split_whitespace().nth(1).unwrap_or_default();
    if code != "200" {
        return Err(format!("agent answered {status_line:?}: {}", body.trim()));
    }
    let report: StatusReport =
        serde_json::from_str(body).map_err(|e| format!("bad status JSON: {e}"))?;
    Ok(report.peers)
}
