//! BGP session finite state machine (RFC 4271 §8), one per configured peer. Pure: no
//! sockets, no clocks, no async. The driver feeds [`Input`]s (named after the RFC 4271
//! §8.1 events) into [`Fsm::process`] and carries out the returned [`Output`]s: open a TCP
//! connection, send or close, start/stop timers (expiries come back as inputs), hand
//! UPDATEs to the RIB.
//!
//! This module owns: the six session states, OPEN validation and capability negotiation
//! ([`open`]), connection collision resolution (RFC 4271 §6.8: up to two connections per
//! peer, the one opened by the speaker with the higher BGP identifier wins), passive peers,
//! idle-hold back-off after failures (exponential with a cap, reset once a session has been
//! stable), the "last error" text shown by status, and the graceful-restart rule that a
//! new connection from a peer that negotiated GR replaces its Established session
//! (RFC 4724 §4.2).

pub mod open;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::msg::{Message, Notification, Open, RouteRefresh, Update, err};
pub use open::{FsmConfig, LocalGr, Negotiated, describe_notification, shutdown_notification};

/// Identifies one TCP connection; allocated by the driver, unique per speaker.
pub type ConnId = u64;

/// The six session states of RFC 4271 §8.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        };
        f.write_str(s)
    }
}

/// Which side opened a connection (needed for collision resolution, RFC 4271 §6.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// We connected to the peer.
    Outgoing,
    /// The peer connected to our listener.
    Incoming,
}

/// Timers the FSM asks the driver to run (RFC 4271 §10, RFC 4271 §8.1.1 IdleHoldTimer,
/// plus `Stable`: how long a session must stay up before the back-off resets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timer {
    ConnectRetry,
    Hold,
    Keepalive,
    IdleHold,
    Stable,
}

/// Events fed into the FSM (RFC 4271 §8.1 names).
// Inputs are moved once into `process`; boxing the OPEN would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Input {
    /// Event 1: the operator enables the peer.
    ManualStart,
    /// Event 2: the operator stops the peer: a Cease NOTIFICATION with `subcode` (and an
    /// RFC 9003 `message` for Administrative Shutdown/Reset) goes out on every connection.
    ManualStop { subcode: u8, message: String },
    /// Event 3: start without operator action (also used after configuration changes).
    AutomaticStart,
    /// Events 16/17: a TCP connection is up (outgoing connect succeeded or an incoming
    /// one was accepted for this peer).
    TcpConnectionConfirmed { conn: ConnId, dir: Direction },
    /// Event 18: `conn` is `None` when our own connect attempt failed before a
    /// connection existed, otherwise the connection that closed or broke.
    TcpConnectionFails { conn: Option<ConnId>, error: String },
    /// Event 19.
    BgpOpen { conn: ConnId, open: Open },
    /// Events 21/22/28: a message failed to decode; `notification` is what to send.
    MsgDecodeError {
        conn: ConnId,
        notification: Notification,
    },
    /// Events 24/25.
    NotifMsg {
        conn: ConnId,
        notification: Notification,
    },
    /// Event 26.
    KeepAliveMsg { conn: ConnId },
    /// Event 27.
    UpdateMsg { conn: ConnId, update: Update },
    /// ROUTE-REFRESH received (RFC 2918).
    RouteRefreshMsg { conn: ConnId, refresh: RouteRefresh },
    /// Event 9.
    ConnectRetryTimerExpires,
    /// Event 10.
    HoldTimerExpires,
    /// Event 11.
    KeepaliveTimerExpires,
    /// Event 13.
    IdleHoldTimerExpires,
    /// The session has been Established for the stable time: reset the back-off.
    StableTimerExpires,
}

/// Actions for the driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Output {
    /// Open a TCP connection to the peer (abandoning any attempt still under way).
    Connect,
    /// Write a message on a connection.
    Send { conn: ConnId, msg: Message },
    /// Close a connection (after flushing what was queued for it).
    Close { conn: ConnId },
    /// (Re)start a timer; a running one is replaced.
    StartTimer { timer: Timer, after: Duration },
    /// Stop a timer if it runs.
    StopTimer(Timer),
    /// The peer's state changed (for status and logs).
    StateChanged { from: State, to: State },
    /// The session reached Established on `conn` with these negotiated facts.
    Established { conn: ConnId, session: Negotiated },
    /// The Established session went down. `graceful` carries the peer's restart time
    /// (seconds) when its routes are to be kept as stale (RFC 4724 §4.2), else `None`.
    SessionDown { graceful: Option<u16> },
    /// An UPDATE received on the Established session.
    Update(Update),
    /// A ROUTE-REFRESH received on the Established session.
    RouteRefresh(RouteRefresh),
}

/// Per-connection phase; a connection exists only from OpenSent on.
#[derive(Debug, Clone, PartialEq)]
struct Conn {
    id: ConnId,
    dir: Direction,
    state: State,
    session: Option<Negotiated>,
}

/// The session state machine of one peer.
#[derive(Debug, Clone)]
pub struct Fsm {
    cfg: FsmConfig,
    /// State when no connection exists: Idle, Connect or Active.
    base: State,
    conns: Vec<Conn>,
    /// ManualStart/AutomaticStart given and no ManualStop since.
    running: bool,
    /// Waiting for the IdleHold timer after a failure.
    idle_wait: bool,
    /// Consecutive failures (drives the idle-hold back-off).
    failures: u32,
    last_error: Option<String>,
    reported: State,
    /// PRNG state for timer jitter (splitmix64), from [`FsmConfig::jitter_seed`].
    jitter: u64,
}

impl Fsm {
    pub fn new(cfg: FsmConfig) -> Fsm {
        Fsm {
            base: State::Idle,
            conns: Vec::new(),
            running: false,
            idle_wait: false,
            failures: 0,
            last_error: None,
            reported: State::Idle,
            jitter: cfg.jitter_seed.unwrap_or(0),
            cfg,
        }
    }

    pub fn config(&self) -> &FsmConfig {
        &self.cfg
    }

    /// The peer's state: that of its most advanced connection, else Idle/Connect/Active.
    pub fn state(&self) -> State {
        self.conns
            .iter()
            .map(|c| c.state)
            .max()
            .unwrap_or(self.base)
    }

    /// The last error, as status shows it (e.g. `Socket: Connection refused`,
    /// `Received: Bad peer AS`, `Hold timer expired`).
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The Established connection and what was negotiated on it.
    pub fn established(&self) -> Option<(ConnId, &Negotiated)> {
        self.conns
            .iter()
            .find(|c| c.state == State::Established)
            .and_then(|c| c.session.as_ref().map(|s| (c.id, s)))
    }

    /// Negotiated facts of a connection that has received the peer's OPEN.
    pub fn session(&self, conn: ConnId) -> Option<&Negotiated> {
        self.conns
            .iter()
            .find(|c| c.id == conn)
            .and_then(|c| c.session.as_ref())
    }

    /// Whether `conn` is one of this peer's live connections.
    pub fn has_conn(&self, conn: ConnId) -> bool {
        self.conns.iter().any(|c| c.id == conn)
    }

    /// Current idle-hold back-off: base × 2^(failures-1), capped, then jittered.
    fn backoff(&mut self) -> Duration {
        let shift = self.failures.saturating_sub(1).min(16);
        let d = self.cfg.idle_hold_base.saturating_mul(1u32 << shift);
        self.jittered(d.min(self.cfg.idle_hold_max))
    }

    /// `d` scaled by a factor in [0.75, 1.0] (RFC 4271 §10) drawn from the seeded
    /// PRNG; `d` itself when jitter is off.
    fn jittered(&mut self, d: Duration) -> Duration {
        if self.cfg.jitter_seed.is_none() {
            return d;
        }
        // splitmix64 step: pure, seeded, good enough to decorrelate two speakers.
        self.jitter = self.jitter.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.jitter;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // Factor in thousandths: 750..=1000.
        let milli = 750 + (z % 251) as u32;
        d.saturating_mul(milli) / 1000
    }

    /// Feed one event; returns what the driver must do, in order.
    pub fn process(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::ManualStart | Input::AutomaticStart => self.start(&mut out),
            Input::ManualStop { subcode, message } => self.stop(subcode, &message, &mut out),
            Input::TcpConnectionConfirmed { conn, dir } => self.tcp_up(conn, dir, &mut out),
            Input::TcpConnectionFails { conn: None, error } => {
                self.last_error = Some(format!("Socket: {error}"));
                if self.running && !self.idle_wait && self.base == State::Connect {
                    self.base = State::Active;
                    let after = self.jittered(self.cfg.connect_retry);
                    out.push(Output::StartTimer {
                        timer: Timer::ConnectRetry,
                        after,
                    });
                }
            }
            Input::TcpConnectionFails {
                conn: Some(c),
                error,
            } => {
                if self.has_conn(c) {
                    self.last_error = Some(if error.is_empty() {
                        "Connection closed".to_string()
                    } else {
                        format!("Socket: {error}")
                    });
                    self.drop_conn(c, true, &mut out);
                    self.after_conn_lost(&mut out);
                }
            }
            Input::BgpOpen { conn, open } => self.bgp_open(conn, open, &mut out),
            Input::MsgDecodeError { conn, notification } => {
                if self.has_conn(conn) {
                    self.last_error =
                        Some(format!("Sent: {}", describe_notification(&notification)));
                    out.push(Output::Send {
                        conn,
                        msg: Message::Notification(notification),
                    });
                    self.drop_conn(conn, false, &mut out);
                    self.after_conn_lost(&mut out);
                }
            }
            Input::NotifMsg { conn, notification } => {
                if self.has_conn(conn) {
                    self.last_error = Some(format!(
                        "Received: {}",
                        describe_notification(&notification)
                    ));
                    self.drop_conn(conn, false, &mut out);
                    self.after_conn_lost(&mut out);
                }
            }
            Input::KeepAliveMsg { conn } => self.keepalive_msg(conn, &mut out),
            Input::UpdateMsg { conn, update } => {
                if self.expect_established(conn, &mut out) {
                    self.restart_hold(conn, &mut out);
                    out.push(Output::Update(update));
                }
            }
            Input::RouteRefreshMsg { conn, refresh } => {
                if self.expect_established(conn, &mut out) {
                    out.push(Output::RouteRefresh(refresh));
                }
            }
            Input::ConnectRetryTimerExpires => {
                if self.running
                    && !self.idle_wait
                    && !self.cfg.passive
                    && self.conns.is_empty()
                    && matches!(self.base, State::Connect | State::Active)
                {
                    self.connect(&mut out);
                }
            }
            Input::HoldTimerExpires => {
                if !self.conns.is_empty() {
                    self.last_error = Some("Hold timer expired".to_string());
                    for c in self.conn_ids() {
                        out.push(Output::Send {
                            conn: c,
                            msg: Message::Notification(Notification {
                                code: err::HOLD_TIMER_EXPIRED,
                                subcode: 0,
                                data: Vec::new(),
                            }),
                        });
                        self.drop_conn(c, true, &mut out);
                    }
                    self.fail(&mut out);
                }
            }
            Input::KeepaliveTimerExpires => {
                let mut any = false;
                for c in &self.conns {
                    if matches!(c.state, State::OpenConfirm | State::Established) {
                        out.push(Output::Send {
                            conn: c.id,
                            msg: Message::Keepalive,
                        });
                        any = true;
                    }
                }
                if let Some(ka) = self.keepalive_interval().filter(|_| any) {
                    out.push(Output::StartTimer {
                        timer: Timer::Keepalive,
                        after: ka,
                    });
                }
            }
            Input::IdleHoldTimerExpires => {
                if self.idle_wait {
                    self.idle_wait = false;
                    if self.running {
                        self.begin(&mut out);
                    }
                }
            }
            Input::StableTimerExpires => {
                if self.established().is_some() {
                    self.failures = 0;
                }
            }
        }
        let now = self.state();
        if now != self.reported {
            out.push(Output::StateChanged {
                from: self.reported,
                to: now,
            });
            self.reported = now;
        }
        out
    }

    fn conn_ids(&self) -> Vec<ConnId> {
        self.conns.iter().map(|c| c.id).collect()
    }

    fn keepalive_interval(&self) -> Option<Duration> {
        self.conns
            .iter()
            .filter_map(|c| c.session.as_ref())
            .map(|s| s.keepalive)
            .find(|&k| k > 0)
            .map(|k| Duration::from_secs(u64::from(k)))
    }

    fn start(&mut self, out: &mut Vec<Output>) {
        if self.running {
            return;
        }
        self.running = true;
        if !self.idle_wait && self.conns.is_empty() {
            self.begin(out);
        }
    }

    /// Leave Idle: connect (active peer) or wait for the peer (passive).
    fn begin(&mut self, out: &mut Vec<Output>) {
        if self.cfg.passive {
            self.base = State::Active;
        } else {
            self.connect(out);
        }
    }

    fn connect(&mut self, out: &mut Vec<Output>) {
        self.base = State::Connect;
        out.push(Output::Connect);
        let after = self.jittered(self.cfg.connect_retry);
        out.push(Output::StartTimer {
            timer: Timer::ConnectRetry,
            after,
        });
    }

    fn stop(&mut self, subcode: u8, message: &str, out: &mut Vec<Output>) {
        let notification = shutdown_notification(subcode, message);
        for c in self.conn_ids() {
            out.push(Output::Send {
                conn: c,
                msg: Message::Notification(notification.clone()),
            });
            self.drop_conn(c, false, out);
        }
        for t in [
            Timer::ConnectRetry,
            Timer::Hold,
            Timer::Keepalive,
            Timer::IdleHold,
            Timer::Stable,
        ] {
            out.push(Output::StopTimer(t));
        }
        self.running = false;
        self.idle_wait = false;
        self.failures = 0;
        self.base = State::Idle;
    }

    fn tcp_up(&mut self, conn: ConnId, dir: Direction, out: &mut Vec<Output>) {
        if !self.running {
            out.push(Output::Close { conn });
            return;
        }
        if self.idle_wait {
            if dir == Direction::Outgoing {
                // A connect that outlived the attempt it belonged to.
                out.push(Output::Close { conn });
                return;
            }
            // The peer dials while we wait out our idle-hold back-off. Refusing it made
            // two active speakers that failed once refuse each other forever: each one's
            // dial landed in the other's wait, both failed again and, with equal
            // back-offs, stayed in lockstep. The peer is evidently ready: take it.
            self.idle_wait = false;
            out.push(Output::StopTimer(Timer::IdleHold));
        }
        if let Some((old, session)) = self.established() {
            let gr = session.peer_gr.is_some();
            if dir == Direction::Incoming && gr {
                // RFC 4724 §4.2: the peer restarted; its old session is gone.
                self.last_error = Some("Peer restarted (graceful restart)".to_string());
                self.drop_conn(old, true, out);
            } else {
                out.push(Output::Close { conn });
                return;
            }
        }
        if let Some(same) = self.conns.iter().find(|c| c.dir == dir).map(|c| c.id) {
            // A newer connection in the same direction supersedes the older one.
            self.drop_conn(same, false, out);
        }
        self.conns.push(Conn {
            id: conn,
            dir,
            state: State::OpenSent,
            session: None,
        });
        out.push(Output::StopTimer(Timer::ConnectRetry));
        out.push(Output::Send {
            conn,
            msg: Message::Open(self.cfg.local_open()),
        });
        out.push(Output::StartTimer {
            timer: Timer::Hold,
            after: self.cfg.open_hold_time,
        });
    }

    fn bgp_open(&mut self, conn: ConnId, open: Open, out: &mut Vec<Output>) {
        let Some(idx) = self.conns.iter().position(|c| c.id == conn) else {
            return;
        };
        if self.conns[idx].state != State::OpenSent {
            self.fsm_error(conn, out);
            return;
        }
        match self.cfg.validate_open(&open) {
            Err(notification) => {
                self.last_error = Some(format!("Sent: {}", describe_notification(&notification)));
                out.push(Output::Send {
                    conn,
                    msg: Message::Notification(notification),
                });
                self.drop_conn(conn, false, out);
                self.after_conn_lost(out);
            }
            Ok(session) => {
                let peer_id = session.peer_id;
                let hold = session.hold_time;
                let ka = session.keepalive;
                self.conns[idx].state = State::OpenConfirm;
                self.conns[idx].session = Some(session);
                out.push(Output::Send {
                    conn,
                    msg: Message::Keepalive,
                });
                if hold > 0 {
                    out.push(Output::StartTimer {
                        timer: Timer::Hold,
                        after: Duration::from_secs(u64::from(hold)),
                    });
                    out.push(Output::StartTimer {
                        timer: Timer::Keepalive,
                        after: Duration::from_secs(u64::from(ka)),
                    });
                } else {
                    out.push(Output::StopTimer(Timer::Hold));
                }
                self.resolve_collision(conn, peer_id, out);
            }
        }
    }

    /// RFC 4271 §6.8: the connection opened by the side with the higher BGP identifier
    /// (then the higher AS, RFC 6286) survives; the other gets Cease/Connection Collision
    /// Resolution, and a collision with an Established connection closes the new one. The peer's
    /// identifier is known from the OPEN just received, so a second connection still in
    /// OpenSent is resolved at once too.
    fn resolve_collision(&mut self, conn: ConnId, peer_id: Ipv4Addr, out: &mut Vec<Output>) {
        let Some(other) = self
            .conns
            .iter()
            .find(|c| c.id != conn)
            .map(|c| (c.id, c.dir, c.state))
        else {
            return;
        };
        // Equal identifiers (only possible on eBGP, RFC 6286 §2.3): the larger AS wins.
        // Without this tie-break both ends kept their incoming connection, i.e. each
        // closed the one the other kept, and no session survived.
        let ours = (u32::from(self.cfg.local_id), self.cfg.local_as);
        let theirs = (u32::from(peer_id), self.cfg.remote_as);
        let keep_dir = if ours > theirs {
            Direction::Outgoing
        } else {
            Direction::Incoming
        };
        // §6.8: a collision with an Established connection closes the new one.
        let loser = if other.2 == State::Established || other.1 == keep_dir {
            conn
        } else {
            other.0
        };
        out.push(Output::Send {
            conn: loser,
            msg: Message::Notification(Notification {
                code: err::CEASE,
                subcode: err::CONNECTION_COLLISION,
                data: Vec::new(),
            }),
        });
        self.drop_conn(loser, false, out);
    }

    fn keepalive_msg(&mut self, conn: ConnId, out: &mut Vec<Output>) {
        let Some(idx) = self.conns.iter().position(|c| c.id == conn) else {
            return;
        };
        match self.conns[idx].state {
            State::OpenConfirm => {
                self.conns[idx].state = State::Established;
                let Some(session) = self.conns[idx].session.clone() else {
                    return;
                };
                self.restart_hold(conn, out);
                out.push(Output::StartTimer {
                    timer: Timer::Stable,
                    after: self.cfg.stable_time,
                });
                out.push(Output::Established { conn, session });
                // The R bit belongs only to the first session after our restart.
                if let Some(gr) = self.cfg.graceful_restart.as_mut() {
                    gr.restarting = false;
                }
            }
            State::Established => self.restart_hold(conn, out),
            _ => self.fsm_error(conn, out),
        }
    }

    fn restart_hold(&self, conn: ConnId, out: &mut Vec<Output>) {
        if let Some(s) = self.session(conn).filter(|s| s.hold_time > 0) {
            out.push(Output::StartTimer {
                timer: Timer::Hold,
                after: Duration::from_secs(u64::from(s.hold_time)),
            });
        }
    }

    /// True when `conn` is Established; otherwise handles the unexpected message.
    fn expect_established(&mut self, conn: ConnId, out: &mut Vec<Output>) -> bool {
        match self.conns.iter().find(|c| c.id == conn).map(|c| c.state) {
            Some(State::Established) => true,
            Some(_) => {
                self.fsm_error(conn, out);
                false
            }
            None => false,
        }
    }

    /// An unexpected message: Finite State Machine Error (RFC 6608 subcodes).
    fn fsm_error(&mut self, conn: ConnId, out: &mut Vec<Output>) {
        let subcode = match self.conns.iter().find(|c| c.id == conn).map(|c| c.state) {
            Some(State::OpenSent) => 1,
            Some(State::OpenConfirm) => 2,
            Some(State::Established) => 3,
            _ => 0,
        };
        let notification = Notification {
            code: err::FSM,
            subcode,
            data: Vec::new(),
        };
        self.last_error = Some(format!("Sent: {}", describe_notification(&notification)));
        out.push(Output::Send {
            conn,
            msg: Message::Notification(notification),
        });
        self.drop_conn(conn, false, out);
        self.after_conn_lost(out);
    }

    /// Forget `conn` and close it. If it was Established, report the session down;
    /// `graceful_ok` says whether the way it ended allows GR (not a NOTIFICATION).
    fn drop_conn(&mut self, conn: ConnId, graceful_ok: bool, out: &mut Vec<Output>) {
        let Some(idx) = self.conns.iter().position(|c| c.id == conn) else {
            return;
        };
        let c = self.conns.remove(idx);
        out.push(Output::Close { conn });
        if c.state == State::Established {
            let graceful = c
                .session
                .as_ref()
                .and_then(|s| s.peer_gr.as_ref())
                .filter(|_| graceful_ok)
                .map(|gr| gr.restart_time);
            out.push(Output::StopTimer(Timer::Keepalive));
            out.push(Output::StopTimer(Timer::Stable));
            out.push(Output::SessionDown { graceful });
        }
    }

    /// After a connection went away: if none is left the attempt failed.
    fn after_conn_lost(&mut self, out: &mut Vec<Output>) {
        if self.conns.is_empty() {
            self.fail(out);
        }
    }

    /// RFC 4271 §8.2.2 "goes to Idle" with DampPeerOscillations: wait out the idle-hold
    /// back-off, then start again (unless stopped).
    fn fail(&mut self, out: &mut Vec<Output>) {
        for t in [
            Timer::ConnectRetry,
            Timer::Hold,
            Timer::Keepalive,
            Timer::Stable,
        ] {
            out.push(Output::StopTimer(t));
        }
        self.base = State::Idle;
        if self.running {
            self.failures = self.failures.saturating_add(1);
            self.idle_wait = true;
            let after = self.backoff();
            out.push(Output::StartTimer {
                timer: Timer::IdleHold,
                after,
            });
        }
    }
}
