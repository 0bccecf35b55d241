//! The speaker's owner task: the only holder of the RIB, every peer's FSM and every
//! connection handle. Everything reaches it as an [`Event`] on one channel; timers are
//! deadlines in its loop. It turns FSM outputs into socket actions and RIB calls, decodes
//! frames with each session's negotiated codec context, sends the RIB's pending UPDATEs
//! after every event, and publishes Loc-RIB changes to subscribers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use ipnetwork::IpNetwork;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::fsm::{self, ConnId, Direction, Fsm, Input, Output, Timer};
use crate::msg::{Message, Notification, Open, err};
use crate::rib::{self, PeerId, Rib, RibChange};
use crate::wire::{self, Ctx};

use super::net::{self, ConnIo, Owned};
use super::{PeerConfig, PeerStatus, RouteBatch, RouteEvent, SpeakerConfig, SpeakerError};

type Reply<T> = oneshot::Sender<T>;

/// API requests from [`super::Speaker`].
pub(crate) enum Command {
    AddPeer(Box<PeerConfig>, Reply<Result<(), SpeakerError>>),
    UpdatePeer(Box<PeerConfig>, Reply<Result<(), SpeakerError>>),
    RemovePeer(IpAddr, Reply<Result<(), SpeakerError>>),
    Originate {
        prefix: IpNetwork,
        next_hop: Option<IpAddr>,
        reply: Reply<Result<(), SpeakerError>>,
    },
    Withdraw {
        prefix: IpNetwork,
        reply: Reply<()>,
    },
    Subscribe(Reply<mpsc::UnboundedReceiver<RouteBatch>>),
    PeerStates(Reply<Vec<PeerStatus>>),
    Shutdown {
        message: String,
        reply: Reply<()>,
    },
}

/// Everything the owner task reacts to.
pub(crate) enum Event {
    Command(Command),
    Accepted {
        stream: TcpStream,
        from: SocketAddr,
    },
    Connected {
        peer: IpAddr,
        attempt: u64,
        result: Result<TcpStream, String>,
    },
    /// Complete messages from one read of a connection, in order.
    Frames {
        peer: IpAddr,
        conn: ConnId,
        frames: Vec<Bytes>,
    },
    FramingError {
        peer: IpAddr,
        conn: ConnId,
        notification: Notification,
    },
    Closed {
        peer: IpAddr,
        conn: ConnId,
        error: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum TimerKey {
    Fsm(IpAddr, Timer),
    /// Helper side of GR: how long a restarting peer's stale routes are kept.
    GrRestart(IpAddr),
    /// Restarting side of GR: longest selection deferral.
    Deferral,
}

pub(super) struct PeerEntry {
    pub(super) cfg: PeerConfig,
    pub(super) fsm: Fsm,
    pub(super) rib_id: PeerId,
    pub(super) conns: HashMap<ConnId, (ConnIo, Option<Open>)>,
    pub(super) connecting: Option<(u64, Owned)>,
    pub(super) since: SystemTime,
    /// What the last Established session negotiated.
    pub(super) session: Option<fsm::Negotiated>,
}

pub(crate) struct Owner {
    pub(super) cfg: SpeakerConfig,
    pub(super) listener: Option<Arc<TcpListener>>,
    pub(super) accept_task: Option<Owned>,
    pub(super) tx: mpsc::Sender<Event>,
    pub(super) rib: Rib,
    pub(super) peers: HashMap<IpAddr, PeerEntry>,
    pub(super) by_rib: HashMap<PeerId, IpAddr>,
    pub(super) timers: HashMap<TimerKey, Instant>,
    pub(super) subscribers: Vec<mpsc::UnboundedSender<RouteBatch>>,
    /// Writers flushing their last bytes (a NOTIFICATION) after their connection closed.
    pub(super) closing: Vec<Owned>,
    pub(super) next_conn: ConnId,
    pub(super) next_attempt: u64,
}

impl Owner {
    pub(crate) fn new(
        cfg: SpeakerConfig,
        listener: Option<TcpListener>,
        tx: mpsc::Sender<Event>,
    ) -> Owner {
        Owner {
            rib: Rib::new(cfg.rib_config()),
            cfg,
            listener: listener.map(Arc::new),
            accept_task: None,
            tx,
            peers: HashMap::new(),
            by_rib: HashMap::new(),
            timers: HashMap::new(),
            subscribers: Vec::new(),
            closing: Vec::new(),
            next_conn: 1,
            next_attempt: 1,
        }
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Event>) {
        if let Some(l) = &self.listener {
            let task = tokio::spawn(net::accept_loop(l.clone(), self.tx.clone()));
            self.accept_task = Some(Owned(task));
        }
        if self.rib.is_deferring() {
            self.timers.insert(
                TimerKey::Deferral,
                Instant::now() + self.cfg.selection_deferral,
            );
        }
        loop {
            let next = self.timers.values().min().copied();
            let far = Instant::now() + Duration::from_secs(3600);
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                () = tokio::time::sleep_until(next.unwrap_or(far)), if next.is_some() => {
                    self.fire_timers();
                    self.flush();
                    continue;
                }
            };
            let Some(ev) = ev else { break };
            if let Event::Command(Command::Shutdown { message, reply }) = ev {
                self.shutdown(&message).await;
                let _ = reply.send(());
                break;
            }
            self.handle(ev);
            self.flush();
            self.closing.retain(|o| !o.0.is_finished());
        }
    }

    async fn shutdown(&mut self, message: &str) {
        let addrs: Vec<IpAddr> = self.peers.keys().copied().collect();
        for addr in addrs {
            self.drive(
                addr,
                Input::ManualStop {
                    subcode: err::ADMIN_SHUTDOWN,
                    message: message.to_string(),
                },
            );
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        for mut w in self.closing.drain(..) {
            let _ = tokio::time::timeout_at(deadline, &mut w.0).await;
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Command(c) => self.command(c),
            Event::Accepted { stream, from } => {
                let ip = net::canonical(from.ip());
                let Some(p) = self.peers.get(&ip) else {
                    tracing::info!(%from, "rejecting connection from an unknown peer");
                    return;
                };
                if let Err(e) = net::accepted(&stream, &p.cfg) {
                    tracing::warn!(peer = %ip, error = %e, "cannot set options on accepted connection");
                    return;
                }
                let conn = self.new_conn(ip, stream);
                self.drive(
                    ip,
                    Input::TcpConnectionConfirmed {
                        conn,
                        dir: Direction::Incoming,
                    },
                );
            }
            Event::Connected {
                peer,
                attempt,
                result,
            } => {
                let Some(p) = self.peers.get_mut(&peer) else {
                    return;
                };
                if p.connecting.as_ref().map(|c| c.0) != Some(attempt) {
                    return;
                }
                p.connecting = None;
                let input = match result {
                    Ok(stream) => Input::TcpConnectionConfirmed {
                        conn: self.new_conn(peer, stream),
                        dir: Direction::Outgoing,
                    },
                    Err(error) => Input::TcpConnectionFails { conn: None, error },
                };
                self.drive(peer, input);
            }
            Event::Frames { peer, conn, frames } => {
                for bytes in frames {
                    // After a close (NOTIFICATION, decode error) the connection is gone
                    // and `decode` skips the rest.
                    if let Some(input) = self.decode(peer, conn, &bytes) {
                        self.drive(peer, input);
                    }
                }
            }
            Event::FramingError {
                peer,
                conn,
                notification,
            } => self.drive(peer, Input::MsgDecodeError { conn, notification }),
            Event::Closed { peer, conn, error } => self.drive(
                peer,
                Input::TcpConnectionFails {
                    conn: Some(conn),
                    error,
                },
            ),
        }
    }

    fn new_conn(&mut self, peer: IpAddr, stream: TcpStream) -> ConnId {
        let conn = self.next_conn;
        self.next_conn += 1;
        let io = net::spawn_io(stream, peer, conn, self.tx.clone());
        if let Some(p) = self.peers.get_mut(&peer) {
            p.conns.insert(conn, (io, None));
        }
        conn
    }

    /// Decodes one frame with the connection's context into an FSM input.
    fn decode(&mut self, peer: IpAddr, conn: ConnId, bytes: &[u8]) -> Option<Input> {
        let p = self.peers.get_mut(&peer)?;
        let (io, sent_open) = p.conns.get_mut(&conn)?;
        let decoded = match wire::decode_message(bytes, &io.ctx) {
            Ok(d) => d,
            Err(e) => {
                tracing::info!(%peer, error = %e, "bad message");
                return Some(Input::MsgDecodeError {
                    conn,
                    notification: e.notification(),
                });
            }
        };
        if decoded.ignore {
            return None;
        }
        for issue in &decoded.issues {
            tracing::info!(%peer, ?issue, "UPDATE attribute problem survived (RFC 7606)");
        }
        Some(match decoded.message {
            Message::Open(open) => {
                if let Some(ours) = sent_open {
                    io.ctx = Ctx::negotiated(ours, &open);
                }
                Input::BgpOpen { conn, open }
            }
            Message::Update(update) => Input::UpdateMsg { conn, update },
            Message::Notification(notification) => Input::NotifMsg { conn, notification },
            Message::Keepalive => Input::KeepAliveMsg { conn },
            Message::RouteRefresh(refresh) => Input::RouteRefreshMsg { conn, refresh },
        })
    }

    /// Feeds `input` to the peer's FSM and carries out its outputs.
    pub(super) fn drive(&mut self, addr: IpAddr, input: Input) {
        let Some(p) = self.peers.get_mut(&addr) else {
            return;
        };
        let outputs = p.fsm.process(input);
        for o in outputs {
            self.act(addr, o);
        }
    }

    fn act(&mut self, addr: IpAddr, out: Output) {
        let Some(p) = self.peers.get_mut(&addr) else {
            return;
        };
        match out {
            Output::Connect => {
                let attempt = self.next_attempt;
                self.next_attempt += 1;
                let cfg = p.cfg.clone();
                let tx = self.tx.clone();
                let task = tokio::spawn(async move {
                    let result = net::connect(&cfg, cfg.connect_retry)
                        .await
                        .map_err(|e| net::io_text(&e));
                    let _ = tx
                        .send(Event::Connected {
                            peer: cfg.address,
                            attempt,
                            result,
                        })
                        .await;
                });
                p.connecting = Some((attempt, Owned(task)));
            }
            Output::Send { conn, msg } => {
                let Some((io, sent_open)) = p.conns.get_mut(&conn) else {
                    return;
                };
                if let Message::Open(o) = &msg {
                    *sent_open = Some(o.clone());
                }
                match wire::encode_message(&msg, &io.ctx) {
                    Ok(bytes) => {
                        let _ = io.write_tx.send(Bytes::from(bytes));
                    }
                    Err(e) => tracing::warn!(peer = %addr, error = %e, "cannot encode message"),
                }
            }
            Output::Close { conn } => {
                if let Some((io, _)) = p.conns.remove(&conn) {
                    let ConnIo { writer, .. } = io;
                    self.closing.push(writer);
                }
            }
            Output::StartTimer { timer, after } => {
                self.timers
                    .insert(TimerKey::Fsm(addr, timer), Instant::now() + after);
            }
            Output::StopTimer(timer) => {
                self.timers.remove(&TimerKey::Fsm(addr, timer));
            }
            Output::StateChanged { from, to } => {
                p.since = SystemTime::now();
                tracing::info!(peer = %addr, name = %p.cfg.name, %from, %to, error = p.fsm.last_error(), "peer state");
            }
            Output::Established { conn, session } => {
                let local = p
                    .conns
                    .get(&conn)
                    .and_then(|(io, _)| io.local)
                    .map(|a| net::canonical(a.ip()));
                let restart = session.peer_gr.as_ref().map(|g| g.restart_time);
                let n = rib::Negotiated {
                    router_id: session.peer_id,
                    families: session.families.clone(),
                    four_octet_as: session.four_octet_as,
                    enhanced_route_refresh: session.enhanced_route_refresh,
                    gr_restart_time: restart,
                    local_address: local,
                };
                p.session = Some(session);
                let id = p.rib_id;
                if let Err(e) = self.rib.peer_up(id, n) {
                    tracing::warn!(peer = %addr, error = %e, "RIB refused peer up");
                }
                // Stale routes from before a restart wait for End-of-RIB, bounded by the
                // restart time once more.
                let stale = self.rib.peer_stats(id).map(|s| s.stale).unwrap_or(0);
                match restart {
                    Some(t) if stale > 0 => {
                        self.timers.insert(
                            TimerKey::GrRestart(addr),
                            Instant::now() + Duration::from_secs(u64::from(t)),
                        );
                    }
                    _ => {
                        self.timers.remove(&TimerKey::GrRestart(addr));
                    }
                }
            }
            Output::SessionDown { graceful } => {
                let id = p.rib_id;
                let families: Vec<_> = p
                    .session
                    .as_ref()
                    .and_then(|s| s.peer_gr.as_ref())
                    .map(|g| g.families.iter().map(|(f, _)| *f).collect())
                    .unwrap_or_default();
                let changes = match graceful {
                    Some(t) if !families.is_empty() => {
                        self.timers.insert(
                            TimerKey::GrRestart(addr),
                            Instant::now() + Duration::from_secs(u64::from(t)),
                        );
                        self.rib.peer_down_graceful(id, &families)
                    }
                    _ => self.rib.peer_down(id),
                };
                self.publish_result(addr, changes);
            }
            Output::Update(update) => {
                let id = p.rib_id;
                let r = self.rib.apply_update(id, &update);
                self.publish_result(addr, r);
            }
            Output::RouteRefresh(rr) => {
                let id = p.rib_id;
                let r = self.rib.apply_route_refresh(id, &rr);
                self.publish_result(addr, r);
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        let due: Vec<TimerKey> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            self.timers.remove(&key);
            match key {
                TimerKey::Fsm(addr, timer) => {
                    let input = match timer {
                        Timer::ConnectRetry => Input::ConnectRetryTimerExpires,
                        Timer::Hold => Input::HoldTimerExpires,
                        Timer::Keepalive => Input::KeepaliveTimerExpires,
                        Timer::IdleHold => Input::IdleHoldTimerExpires,
                        Timer::Stable => Input::StableTimerExpires,
                    };
                    self.drive(addr, input);
                }
                TimerKey::GrRestart(addr) => {
                    if let Some(p) = self.peers.get(&addr) {
                        let r = self.rib.restart_timer_expired(p.rib_id);
                        self.publish_result(addr, r);
                    }
                }
                TimerKey::Deferral => {
                    let changes = self.rib.selection_deferral_expired();
                    self.publish(changes);
                }
            }
        }
    }

    /// Sends what the RIB owes each Established peer.
    fn flush(&mut self) {
        for id in self.rib.peers_with_pending() {
            let Some(addr) = self.by_rib.get(&id).copied() else {
                continue;
            };
            let msgs = match self.rib.pending_messages(id) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(peer = %addr, error = %e, "cannot drain RIB output");
                    continue;
                }
            };
            let Some(p) = self.peers.get(&addr) else {
                continue;
            };
            let Some((io, _)) = p.fsm.established().and_then(|(conn, _)| p.conns.get(&conn)) else {
                continue;
            };
            for m in msgs {
                match wire::encode_message(&m, &io.ctx) {
                    Ok(bytes) => {
                        let _ = io.write_tx.send(Bytes::from(bytes));
                    }
                    Err(e) => tracing::warn!(peer = %addr, error = %e, "cannot encode UPDATE"),
                }
            }
        }
    }

    pub(super) fn publish_result(
        &mut self,
        addr: IpAddr,
        r: Result<Vec<RibChange>, rib::RibError>,
    ) {
        match r {
            Ok(changes) => self.publish(changes),
            Err(e) => tracing::warn!(peer = %addr, error = %e, "RIB error"),
        }
    }

    /// Hands one RIB input's changes to every subscriber as one batch: cloned for all but
    /// the last subscriber, which gets the original; closed subscribers are dropped.
    pub(super) fn publish(&mut self, changes: Vec<RibChange>) {
        if changes.is_empty() || self.subscribers.is_empty() {
            return;
        }
        let batch: RouteBatch = changes.into_iter().map(RouteEvent::Changed).collect();
        let last = self.subscribers.len() - 1;
        let mut open = vec![true; self.subscribers.len()];
        for (s, ok) in self.subscribers[..last].iter().zip(open.iter_mut()) {
            *ok = s.send(batch.clone()).is_ok();
        }
        open[last] = self.subscribers[last].send(batch).is_ok();
        let mut i = 0;
        self.subscribers.retain(|_| {
            i += 1;
            open[i - 1]
        });
    }
}
