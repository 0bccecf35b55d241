//! The health listener (`TORTIE_HEALTH_ADDR`, calico-node's port 9099): a tiny HTTP/1.0
//! server on tokio, one request per connection, answering [`crate::health`]'s
//! decisions. Thin: it gathers a [`Snapshot`] per request — the owner loop answers a
//! message with felix's and the policy thread's status ([`AgentView`]), the speaker
//! answers its peer table, each within [`ANSWER_TIMEOUT`] (no answer is itself the
//! liveness failure) — and writes the text the pure functions return.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tortie_bgp::speaker::Speaker;
use tortie_ctl::status::{http, read_head};

use crate::health::{self, AgentView, BgpView, Endpoint, Request, Snapshot};

/// How long the owner loop and the speaker each get to answer one request.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more are closed at once (probes and one scraper need few).
const MAX_CONNECTIONS: usize = 16;
/// The version `tortie_build_info` reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A request for the owner loop's [`AgentView`].
pub type AgentQuery = oneshot::Sender<AgentView>;

/// Where a snapshot's parts come from.
#[derive(Clone)]
pub struct Sources {
    /// The owner loop's query channel.
    pub agent_tx: mpsc::Sender<AgentQuery>,
    /// The speaker, when BGP runs.
    pub speaker: Option<Speaker>,
}

impl Sources {
    /// Asks the owner loop and the speaker (concurrently, each bounded in time).
    pub async fn snapshot(&self) -> Snapshot {
        let agent = async {
            let (tx, rx) = oneshot::channel();
            self.agent_tx.send(tx).await.ok()?;
            rx.await.ok()
        };
        let bgp = async {
            let Some(s) = &self.speaker else {
                return BgpView::Disabled;
            };
            match tokio::time::timeout(ANSWER_TIMEOUT, s.peer_states()).await {
                Ok(Ok(peers)) => BgpView::Peers(peers),
                Ok(Err(e)) => BgpView::NoAnswer(e.to_string()),
                Err(_) => BgpView::NoAnswer(format!("no answer within {ANSWER_TIMEOUT:?}")),
            }
        };
        let (agent, bgp) = tokio::join!(tokio::time::timeout(ANSWER_TIMEOUT, agent), bgp);
        Snapshot {
            agent: agent.ok().flatten(),
            bgp,
        }
    }
}

/// Binds the listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until dropped: every connection gets one answer computed from `snapshot()`.
/// Per-connection errors never stop the loop; connection tasks are owned by the loop.
pub async fn serve<F, Fut>(listener: TcpListener, snapshot: F)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Snapshot> + Send,
{
    let snapshot = Arc::new(snapshot);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                if conns.len() >= MAX_CONNECTIONS {
                    drop(stream);
                    continue;
                }
                let snap = Arc::clone(&snapshot);
                conns.spawn(async move { answer(stream, move || snap()).await });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Reads one request head and writes the answer.
async fn answer<S, F, Fut>(mut s: S, snapshot: F)
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Snapshot>,
{
    let head = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut s)).await {
        Ok(Ok(h)) => h,
        _ => return,
    };
    let line = head.lines().next().unwrap_or_default();
    let response = match health::parse_request(line) {
        Request::Get(ep) => {
            let snap = snapshot().await;
            match ep {
                Endpoint::Liveness => verdict(&health::liveness(&snap)),
                Endpoint::Readiness => verdict(&health::readiness(&snap)),
                Endpoint::Metrics => http(
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    &health::render_metrics(&snap, VERSION),
                ),
            }
        }
        Request::NotFound => http(
            "404 Not Found",
            "text/plain",
            "try /liveness, /readiness or /metrics\n",
        ),
        Request::BadMethod => http("405 Method Not Allowed", "text/plain", "GET only\n"),
        Request::Malformed => http("400 Bad Request", "text/plain", "bad request line\n"),
    };
    let _ = tokio::time::timeout(IO_TIMEOUT, async {
        s.write_all(response.as_bytes()).await?;
        s.shutdown().await
    })
    .await;
}

fn verdict(v: &health::Verdict) -> String {
    let status = if v.ok() {
        "200 OK"
    } else {
        "503 Service Unavailable"
    };
    http(status, "text/plain; charset=utf-8", &v.body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn ask(request: &[u8], snap: Snapshot) -> String {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let task = tokio::spawn(async move { answer(server, move || async move { snap }).await });
        client.write_all(request).await.unwrap();
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        task.await.unwrap();
        out
    }

    fn silent() -> Snapshot {
        Snapshot {
            agent: None,
            bgp: BgpView::Disabled,
        }
    }

    #[tokio::test]
    async fn answers_each_endpoint_with_status_and_length() {
        let ready = Snapshot {
            agent: Some(AgentView {
                felix: Some(tortie_felix::route::Status {
                    in_sync: true,
                    ..Default::default()
                }),
                policy: Some(crate::policy::PolicyStatus {
                    in_sync: true,
                    programs: 1,
                    ..Default::default()
                }),
            }),
            bgp: BgpView::Disabled,
        };
        let r = ask(b"GET /readiness HTTP/1.1\r\nHost: x\r\n\r\n", ready.clone()).await;
        assert_eq!(
            r,
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
        );
        let r = ask(b"GET /liveness HTTP/1.0\r\n\r\n", silent()).await;
        assert!(r.starts_with("HTTP/1.0 503 Service Unavailable\r\n"), "{r}");
        assert!(
            r.ends_with("\r\n\r\nagent: owner loop did not answer\n"),
            "{r}"
        );
        let r = ask(b"GET /metrics HTTP/1.1\r\n\r\n", ready).await;
        assert!(
            r.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n")
                && r.contains("\ntortie_ready 1\n"),
            "{r}"
        );
    }

    #[tokio::test]
    async fn refuses_other_paths_methods_and_garbage() {
        let r = ask(b"GET /healthz HTTP/1.1\r\n\r\n", silent()).await;
        assert!(r.starts_with("HTTP/1.0 404 Not Found\r\n"), "{r}");
        let r = ask(b"DELETE /readiness HTTP/1.1\r\n\r\n", silent()).await;
        assert!(r.starts_with("HTTP/1.0 405 "), "{r}");
        let r = ask(b"\xff\xfe\r\n\r\n", silent()).await;
        assert!(r.starts_with("HTTP/1.0 400 "), "{r}");
    }

    #[tokio::test]
    async fn serves_over_tcp_and_asks_the_owner() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (agent_tx, mut agent_rx) = mpsc::channel::<AgentQuery>(4);
        // A stand-in owner loop: answers with a stopped felix.
        let owner = tokio::spawn(async move {
            while let Some(q) = agent_rx.recv().await {
                let _ = q.send(AgentView {
                    felix: None,
                    policy: Some(Default::default()),
                });
            }
        });
        let sources = Sources {
            agent_tx,
            speaker: None,
        };
        let server = tokio::spawn(serve(listener, move || {
            let s = sources.clone();
            async move { s.snapshot().await }
        }));
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /liveness HTTP/1.0\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        assert!(
            out.starts_with("HTTP/1.0 503 ")
                && out.ends_with("\r\n\r\nfelix: route reconciler stopped\n"),
            "{out}"
        );
        server.abort();
        owner.abort();
    }
}
