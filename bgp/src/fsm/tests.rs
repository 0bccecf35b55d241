//! Transition tests for the session FSM: each drives a fresh [`Fsm`] through inputs and
//! checks the state reached and the outputs that matter.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;
use crate::msg::{Afi, Capability, GracefulRestartCap, Message, Notification, Open, Update, err};

const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER_LOW: Ipv4Addr = Ipv4Addr::new(9, 0, 0, 1);
const PEER_HIGH: Ipv4Addr = Ipv4Addr::new(11, 0, 0, 1);

fn cfg() -> FsmConfig {
    let mut c = FsmConfig::new(64512, 64513, LOCAL);
    c.connect_retry = Duration::from_secs(2);
    c.jitter_seed = None;
    c
}

fn peer_open(asn: u32, id: Ipv4Addr, hold: u16) -> Open {
    Open {
        version: 4,
        asn,
        hold_time: hold,
        bgp_id: id,
        capabilities: vec![
            Capability::Multiprotocol(Afi::Ipv4Unicast),
            Capability::FourOctetAs(asn),
            Capability::RouteRefresh,
        ],
    }
}

fn gr_open(asn: u32, id: Ipv4Addr) -> Open {
    let mut o = peer_open(asn, id, 90);
    o.capabilities
        .push(Capability::GracefulRestart(GracefulRestartCap {
            restarting: false,
            restart_time: 120,
            families: vec![(Afi::Ipv4Unicast, true), (Afi::Ipv6Unicast, true)],
        }));
    o
}

fn sent_notification(out: &[Output], conn: ConnId) -> Option<(u8, u8)> {
    out.iter().find_map(|o| match o {
        Output::Send {
            conn: c,
            msg: Message::Notification(n),
        } if *c == conn => Some((n.code, n.subcode)),
        _ => None,
    })
}

fn closed(out: &[Output], conn: ConnId) -> bool {
    out.contains(&Output::Close { conn })
}

fn timer_started(out: &[Output], timer: Timer) -> Option<Duration> {
    out.iter().find_map(|o| match o {
        Output::StartTimer { timer: t, after } if *t == timer => Some(*after),
        _ => None,
    })
}

/// Drive an active peer to Established on connection `conn`.
fn established(fsm: &mut Fsm, conn: ConnId, open: Open) -> Vec<Output> {
    fsm.process(Input::ManualStart);
    fsm.process(Input::TcpConnectionConfirmed {
        conn,
        dir: Direction::Outgoing,
    });
    fsm.process(Input::BgpOpen { conn, open });
    fsm.process(Input::KeepAliveMsg { conn })
}

#[test]
fn start_active_and_passive() {
    let mut f = Fsm::new(cfg());
    assert_eq!(f.state(), State::Idle);
    let out = f.process(Input::ManualStart);
    assert_eq!(f.state(), State::Connect);
    assert!(out.contains(&Output::Connect));
    assert_eq!(
        timer_started(&out, Timer::ConnectRetry),
        Some(Duration::from_secs(2))
    );
    assert!(out.contains(&Output::StateChanged {
        from: State::Idle,
        to: State::Connect
    }));

    let mut c = cfg();
    c.passive = true;
    let mut p = Fsm::new(c);
    let out = p.process(Input::AutomaticStart);
    assert_eq!(p.state(), State::Active);
    assert!(!out.contains(&Output::Connect), "passive peers never dial");
    assert!(
        p.process(Input::ConnectRetryTimerExpires)
            .iter()
            .all(|o| *o != Output::Connect)
    );
}

#[test]
fn connect_refused_then_retry() {
    let mut f = Fsm::new(cfg());
    f.process(Input::ManualStart);
    let out = f.process(Input::TcpConnectionFails {
        conn: None,
        error: "Connection refused".into(),
    });
    assert_eq!(f.state(), State::Active);
    assert_eq!(f.last_error(), Some("Socket: Connection refused"));
    assert!(timer_started(&out, Timer::ConnectRetry).is_some());
    let out = f.process(Input::ConnectRetryTimerExpires);
    assert_eq!(f.state(), State::Connect);
    assert!(out.contains(&Output::Connect));
}

#[test]
fn full_handshake_to_established() {
    let mut f = Fsm::new(cfg());
    f.process(Input::ManualStart);
    let out = f.process(Input::TcpConnectionConfirmed {
        conn: 1,
        dir: Direction::Outgoing,
    });
    assert_eq!(f.state(), State::OpenSent);
    assert!(out.contains(&Output::StopTimer(Timer::ConnectRetry)));
    let open = out.iter().find_map(|o| match o {
        Output::Send {
            msg: Message::Open(o),
            ..
        } => Some(o.clone()),
        _ => None,
    });
    let open = open.expect("OPEN sent");
    assert_eq!(open.asn, 64512);
    assert!(open.capabilities.contains(&Capability::FourOctetAs(64512)));
    assert_eq!(
        timer_started(&out, Timer::Hold),
        Some(Duration::from_secs(240))
    );

    let out = f.process(Input::BgpOpen {
        conn: 1,
        open: peer_open(64513, PEER_LOW, 6),
    });
    assert_eq!(f.state(), State::OpenConfirm);
    assert!(out.contains(&Output::Send {
        conn: 1,
        msg: Message::Keepalive
    }));
    assert_eq!(
        timer_started(&out, Timer::Hold),
        Some(Duration::from_secs(6))
    );
    assert_eq!(
        timer_started(&out, Timer::Keepalive),
        Some(Duration::from_secs(2))
    );

    let out = f.process(Input::KeepAliveMsg { conn: 1 });
    assert_eq!(f.state(), State::Established);
    let session = out.iter().find_map(|o| match o {
        Output::Established { conn: 1, session } => Some(session.clone()),
        _ => None,
    });
    let session = session.expect("Established output");
    assert_eq!(session.hold_time, 6);
    assert_eq!(session.families, vec![Afi::Ipv4Unicast]);
    assert!(session.four_octet_as && session.route_refresh && !session.ibgp);

    let upd = Update::end_of_rib(Afi::Ipv4Unicast);
    let out = f.process(Input::UpdateMsg {
        conn: 1,
        update: upd.clone(),
    });
    assert!(out.contains(&Output::Update(upd)));
    assert_eq!(
        timer_started(&out, Timer::Hold),
        Some(Duration::from_secs(6))
    );

    let out = f.process(Input::KeepaliveTimerExpires);
    assert!(out.contains(&Output::Send {
        conn: 1,
        msg: Message::Keepalive
    }));
}

#[test]
fn open_validation_table() {
    let mut bad_version = peer_open(64513, PEER_LOW, 90);
    bad_version.version = 3;
    let mut ibgp_cfg = cfg();
    ibgp_cfg.remote_as = 64512;
    type Case = (&'static str, FsmConfig, Open, (u8, u8), &'static str);
    let cases: Vec<Case> = vec![
        (
            "wrong AS",
            cfg(),
            peer_open(64999, PEER_LOW, 90),
            (err::OPEN_MESSAGE, err::BAD_PEER_AS),
            "Sent: Bad peer AS",
        ),
        (
            "version 3",
            cfg(),
            bad_version,
            (err::OPEN_MESSAGE, err::UNSUPPORTED_VERSION),
            "Sent: Unsupported version number",
        ),
        (
            "hold time 2",
            cfg(),
            peer_open(64513, PEER_LOW, 2),
            (err::OPEN_MESSAGE, err::UNACCEPTABLE_HOLD_TIME),
            "Sent: Unacceptable hold time",
        ),
        (
            "zero identifier",
            cfg(),
            peer_open(64513, Ipv4Addr::UNSPECIFIED, 90),
            (err::OPEN_MESSAGE, err::BAD_BGP_IDENTIFIER),
            "Sent: Bad BGP identifier",
        ),
        (
            "iBGP with our identifier",
            ibgp_cfg,
            peer_open(64512, LOCAL, 90),
            (err::OPEN_MESSAGE, err::BAD_BGP_IDENTIFIER),
            "Sent: Bad BGP identifier",
        ),
    ];
    for (name, c, open, want, text) in cases {
        let mut f = Fsm::new(c);
        f.process(Input::ManualStart);
        f.process(Input::TcpConnectionConfirmed {
            conn: 7,
            dir: Direction::Outgoing,
        });
        let out = f.process(Input::BgpOpen { conn: 7, open });
        assert_eq!(sent_notification(&out, 7), Some(want), "{name}");
        assert!(closed(&out, 7), "{name}: connection closed");
        assert_eq!(f.state(), State::Idle, "{name}");
        assert_eq!(f.last_error(), Some(text), "{name}");
        assert!(timer_started(&out, Timer::IdleHold).is_some(), "{name}");
    }
    // eBGP with the same identifier is allowed (RFC 6286 restricts only within an AS).
    let mut f = Fsm::new(cfg());
    f.process(Input::ManualStart);
    f.process(Input::TcpConnectionConfirmed {
        conn: 1,
        dir: Direction::Outgoing,
    });
    f.process(Input::BgpOpen {
        conn: 1,
        open: peer_open(64513, LOCAL, 0),
    });
    assert_eq!(f.state(), State::OpenConfirm);
    assert_eq!(
        f.session(1).map(|s| (s.hold_time, s.keepalive)),
        Some((0, 0))
    );
}

#[test]
fn negotiation_intersects_families_and_takes_min_hold() {
    let mut c = cfg();
    c.hold_time = 9;
    c.keepalive = Some(1);
    c.graceful_restart = Some(LocalGr {
        restart_time: 120,
        restarting: true,
        forwarding_preserved: true,
    });
    let mut open = gr_open(64513, PEER_LOW);
    open.capabilities
        .push(Capability::Multiprotocol(Afi::Ipv6Unicast));
    open.capabilities.push(Capability::ExtendedMessage);
    let n = c.validate_open(&open).expect("valid OPEN");
    assert_eq!(n.hold_time, 9);
    assert_eq!(n.keepalive, 1);
    assert_eq!(n.families, vec![Afi::Ipv4Unicast, Afi::Ipv6Unicast]);
    assert!(!n.extended_message, "we did not offer it");
    assert!(n.local_gr);
    assert_eq!(n.peer_gr.map(|g| g.restart_time), Some(120));

    // No MP capability at all means IPv4 unicast only (RFC 4760 §8).
    let mut plain = peer_open(64513, PEER_LOW, 30);
    plain.capabilities.clear();
    let n = cfg().validate_open(&plain).expect("valid OPEN");
    assert_eq!(n.families, vec![Afi::Ipv4Unicast]);
    assert_eq!((n.hold_time, n.keepalive), (30, 10));
    assert!(!n.four_octet_as);

    // Our OPEN carries GR with the R and F bits as configured.
    let ours = c.local_open();
    assert!(ours.capabilities.iter().any(|cap| matches!(cap,
        Capability::GracefulRestart(g) if g.restarting && g.families.iter().all(|(_, f)| *f))));
}

#[test]
fn r_bit_cleared_after_first_session() {
    let mut c = cfg();
    c.graceful_restart = Some(LocalGr {
        restart_time: 120,
        restarting: true,
        forwarding_preserved: true,
    });
    let mut f = Fsm::new(c);
    established(&mut f, 1, peer_open(64513, PEER_LOW, 90));
    assert_eq!(f.state(), State::Established);
    assert_eq!(
        f.config().graceful_restart.as_ref().map(|g| g.restarting),
        Some(false)
    );
}

#[test]
fn hold_timer_expiry_sends_notification_and_backs_off() {
    let mut f = Fsm::new(cfg());
    established(&mut f, 1, gr_open(64513, PEER_LOW));
    let out = f.process(Input::HoldTimerExpires);
    assert_eq!(
        sent_notification(&out, 1),
        Some((err::HOLD_TIMER_EXPIRED, 0))
    );
    assert!(closed(&out, 1));
    // GR negotiated and no NOTIFICATION received: the helper keeps routes stale.
    assert!(out.contains(&Output::SessionDown {
        graceful: Some(120)
    }));
    assert_eq!(f.state(), State::Idle);
    assert_eq!(f.last_error(), Some("Hold timer expired"));
    assert_eq!(
        timer_started(&out, Timer::IdleHold),
        Some(Duration::from_secs(1))
    );
    // Back in Idle, a stale outgoing connection is refused until the idle hold ends.
    let out = f.process(Input::TcpConnectionConfirmed {
        conn: 2,
        dir: Direction::Outgoing,
    });
    assert!(closed(&out, 2));
    let out = f.process(Input::IdleHoldTimerExpires);
    assert_eq!(f.state(), State::Connect);
    assert!(out.contains(&Output::Connect));
}

#[test]
fn peer_dial_during_idle_hold_is_taken() {
    // Both ends failed together; the peer's dial arrives while we wait out the back-off.
    // Refusing it (the old behaviour) kept two active speakers in lockstep forever.
    let mut f = Fsm::new(cfg());
    established(&mut f, 1, peer_open(64513, PEER_LOW, 90));
    f.process(Input::TcpConnectionFails {
        conn: Some(1),
        error: String::new(),
    });
    assert_eq!(f.state(), State::Idle);
    let out = f.process(Input::TcpConnectionConfirmed {
        conn: 2,
        dir: Direction::Incoming,
    });
    assert!(!closed(&out, 2));
    assert!(out.contains(&Output::StopTimer(Timer::IdleHold)));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Send {
            conn: 2,
            msg: Message::Open(_)
        }
    )));
    assert_eq!(f.state(), State::OpenSent);
    // A late idle-hold expiry does not start a second attempt.
    let out = f.process(Input::IdleHoldTimerExpires);
    assert!(!out.contains(&Output::Connect));
    f.process(Input::BgpOpen {
        conn: 2,
        open: peer_open(64513, PEER_LOW, 90),
    });
    f.process(Input::KeepAliveMsg { conn: 2 });
    assert_eq!(f.established().map(|(c, _)| c), Some(2));
}

/// Both connections up, ours (outgoing 1) and the peer's (incoming 2); the peer's OPEN
/// arrives first on the outgoing or the incoming one, then on the other; then the
/// KEEPALIVEs. Returns the FSM and every output.
fn collide(c: FsmConfig, open: Open, first_outgoing: bool) -> (Fsm, Vec<Output>) {
    let mut f = Fsm::new(c);
    let mut all = f.process(Input::ManualStart);
    all.extend(f.process(Input::TcpConnectionConfirmed {
        conn: 1,
        dir: Direction::Outgoing,
    }));
    all.extend(f.process(Input::TcpConnectionConfirmed {
        conn: 2,
        dir: Direction::Incoming,
    }));
    let order = if first_outgoing { [1, 2] } else { [2, 1] };
    for conn in order {
        all.extend(f.process(Input::BgpOpen {
            conn,
            open: open.clone(),
        }));
    }
    for conn in order {
        all.extend(f.process(Input::KeepAliveMsg { conn }));
    }
    (f, all)
}

const CEASE7: Option<(u8, u8)> = Some((err::CEASE, err::CONNECTION_COLLISION));

#[test]
fn collision_higher_identifier_connection_survives() {
    assert_eq!(err::CONNECTION_COLLISION, 7);
    for first_outgoing in [true, false] {
        // We (10.0.0.1) are higher than 9.0.0.1: our outgoing connection (1) survives.
        let (f, out) = collide(cfg(), peer_open(64513, PEER_LOW, 90), first_outgoing);
        assert_eq!(sent_notification(&out, 2), CEASE7, "{first_outgoing}");
        assert!(closed(&out, 2));
        assert!(!closed(&out, 1));
        assert_eq!(f.established().map(|(c, _)| c), Some(1));
        assert_eq!(f.state(), State::Established);
        // The peer (11.0.0.1) is higher: its connection, our incoming (2), survives.
        let (f, out) = collide(cfg(), peer_open(64513, PEER_HIGH, 90), first_outgoing);
        assert_eq!(sent_notification(&out, 1), CEASE7, "{first_outgoing}");
        assert!(closed(&out, 1));
        assert!(!closed(&out, 2));
        assert_eq!(f.established().map(|(c, _)| c), Some(2));
    }
}

#[test]
fn collision_with_equal_identifiers_keeps_the_same_connection_on_both_ends() {
    // eBGP, both ends 10.0.0.1 (RFC 6286). End X: AS 64512; end Y: AS 64513. X's
    // outgoing is Y's incoming. Both ends must close the same TCP connection: the one
    // initiated by the smaller AS (X), so X closes its outgoing and Y its incoming.
    let mut x = FsmConfig::new(64512, 64513, LOCAL);
    x.jitter_seed = None;
    let mut y = FsmConfig::new(64513, 64512, LOCAL);
    y.jitter_seed = None;
    for first_outgoing in [true, false] {
        let (fx, out_x) = collide(x.clone(), peer_open(64513, LOCAL, 90), first_outgoing);
        let (fy, out_y) = collide(y.clone(), peer_open(64512, LOCAL, 90), first_outgoing);
        assert_eq!(sent_notification(&out_x, 1), CEASE7);
        assert!(closed(&out_x, 1) && !closed(&out_x, 2));
        assert_eq!(sent_notification(&out_y, 2), CEASE7);
        assert!(closed(&out_y, 2) && !closed(&out_y, 1));
        // X's surviving incoming is Y's surviving outgoing: one session.
        assert_eq!(fx.established().map(|(c, _)| c), Some(2));
        assert_eq!(fy.established().map(|(c, _)| c), Some(1));
    }
}

#[test]
fn jitter_scales_waits_into_three_quarters_to_one() {
    let mut c = cfg();
    c.jitter_seed = Some(42);
    c.idle_hold_base = Duration::from_secs(4);
    let mut seen = std::collections::BTreeSet::new();
    let mut f = Fsm::new(c.clone());
    for _ in 0..50 {
        let out = f.process(Input::ManualStart);
        let retry = timer_started(&out, Timer::ConnectRetry).expect("connect retry");
        assert!(retry >= Duration::from_millis(1500) && retry <= Duration::from_secs(2));
        seen.insert(retry);
        let out = f.process(Input::TcpConnectionFails {
            conn: None,
            error: "refused".into(),
        });
        let retry = timer_started(&out, Timer::ConnectRetry).expect("retry after fail");
        assert!(retry >= Duration::from_millis(1500) && retry <= Duration::from_secs(2));
        f.process(Input::ManualStop {
            subcode: 2,
            message: String::new(),
        });
    }
    assert!(seen.len() > 10, "jitter varies: {seen:?}");
    // Idle-hold back-off: first failure waits 3–4 s, deterministic for a seed.
    let run = |seed| {
        let mut c = c.clone();
        c.jitter_seed = Some(seed);
        let mut f = Fsm::new(c);
        established(&mut f, 1, peer_open(64513, PEER_LOW, 90));
        let out = f.process(Input::HoldTimerExpires);
        timer_started(&out, Timer::IdleHold).expect("idle hold")
    };
    let d = run(7);
    assert!(
        d >= Duration::from_secs(3) && d <= Duration::from_secs(4),
        "{d:?}"
    );
    assert_eq!(run(7), d, "same seed, same wait");
    // The two ends of a session get different default seeds.
    let a = FsmConfig::new(64512, 64512, Ipv4Addr::new(10, 0, 0, 1));
    let b = FsmConfig::new(64512, 64512, Ipv4Addr::new(10, 0, 0, 2));
    assert_ne!(a.jitter_seed, b.jitter_seed);
}

#[test]
fn idle_hold_backoff_doubles_caps_and_resets_when_stable() {
    let mut c = cfg();
    c.idle_hold_max = Duration::from_secs(5);
    let mut f = Fsm::new(c);
    f.process(Input::ManualStart);
    let mut waits = Vec::new();
    for conn in 1..=5 {
        f.process(Input::TcpConnectionConfirmed {
            conn,
            dir: Direction::Outgoing,
        });
        let out = f.process(Input::TcpConnectionFails {
            conn: Some(conn),
            error: String::new(),
        });
        waits.push(timer_started(&out, Timer::IdleHold).map(|d| d.as_secs()));
        f.process(Input::IdleHoldTimerExpires);
    }
    assert_eq!(waits, vec![Some(1), Some(2), Some(4), Some(5), Some(5)]);
    established(&mut f, 10, peer_open(64513, PEER_LOW, 90));
    f.process(Input::StableTimerExpires);
    let out = f.process(Input::TcpConnectionFails {
        conn: Some(10),
        error: String::new(),
    });
    assert_eq!(
        timer_started(&out, Timer::IdleHold),
        Some(Duration::from_secs(1))
    );
    assert_eq!(f.last_error(), Some("Connection closed"));
    assert!(out.contains(&Output::SessionDown { graceful: None }));
}

#[test]
fn notification_received_is_shown_and_not_graceful() {
    let mut f = Fsm::new(cfg());
    established(&mut f, 1, gr_open(64513, PEER_LOW));
    let out = f.process(Input::NotifMsg {
        conn: 1,
        notification: shutdown_notification(err::ADMIN_SHUTDOWN, "maintenance"),
    });
    assert!(out.contains(&Output::SessionDown { graceful: None }));
    assert_eq!(
        f.last_error(),
        Some("Received: Administrative shutdown: \"maintenance\"")
    );
    assert_eq!(f.state(), State::Idle);
}

#[test]
fn manual_stop_sends_cease_with_rfc9003_text() {
    let mut f = Fsm::new(cfg());
    established(&mut f, 1, peer_open(64513, PEER_LOW, 90));
    let out = f.process(Input::ManualStop {
        subcode: err::ADMIN_SHUTDOWN,
        message: "bye".into(),
    });
    let n = Notification {
        code: err::CEASE,
        subcode: err::ADMIN_SHUTDOWN,
        data: vec![3, b'b', b'y', b'e'],
    };
    assert!(out.contains(&Output::Send {
        conn: 1,
        msg: Message::Notification(n)
    }));
    assert!(closed(&out, 1));
    assert_eq!(f.state(), State::Idle);
    assert!(
        timer_started(&out, Timer::IdleHold).is_none(),
        "stopped peers stay down"
    );
    assert!(
        f.process(Input::ConnectRetryTimerExpires)
            .iter()
            .all(|o| *o != Output::Connect)
    );
    // A very long message is cut to 255 octets at a character boundary.
    let long = "é".repeat(200);
    let n = shutdown_notification(err::ADMIN_SHUTDOWN, &long);
    assert_eq!(n.data[0], 254);
    assert_eq!(n.data.len(), 255);
}

#[test]
fn unexpected_messages_are_fsm_errors() {
    let mut f = Fsm::new(cfg());
    f.process(Input::ManualStart);
    f.process(Input::TcpConnectionConfirmed {
        conn: 1,
        dir: Direction::Outgoing,
    });
    let out = f.process(Input::UpdateMsg {
        conn: 1,
        update: Update::default(),
    });
    assert_eq!(sent_notification(&out, 1), Some((err::FSM, 1)));
    assert!(!out.iter().any(|o| matches!(o, Output::Update(_))));
    assert_eq!(f.state(), State::Idle);

    let mut f = Fsm::new(cfg());
    established(&mut f, 1, peer_open(64513, PEER_LOW, 90));
    let out = f.process(Input::BgpOpen {
        conn: 1,
        open: peer_open(64513, PEER_LOW, 90),
    });
    assert_eq!(sent_notification(&out, 1), Some((err::FSM, 3)));
    assert!(out.contains(&Output::SessionDown { graceful: None }));
}

#[test]
fn decode_error_sends_given_notification() {
    let mut f = Fsm::new(cfg());
    established(&mut f, 1, peer_open(64513, PEER_LOW, 90));
    let n = Notification {
        code: err::UPDATE_MESSAGE,
        subcode: err::MALFORMED_AS_PATH,
        data: vec![],
    };
    let out = f.process(Input::MsgDecodeError {
        conn: 1,
        notification: n,
    });
    assert_eq!(
        sent_notification(&out, 1),
        Some((err::UPDATE_MESSAGE, err::MALFORMED_AS_PATH))
    );
    assert_eq!(f.state(), State::Idle);
}

/// Collision table (RFC 4271 §6.8): (our id vs peer id, which OPEN arrives first) →
/// which connection survives.
#[test]
fn collision_resolution_table() {
    let cases = [
        // peer id, OPEN first on, survivor direction
        (PEER_LOW, Direction::Incoming, Direction::Outgoing),
        (PEER_LOW, Direction::Outgoing, Direction::Outgoing),
        (PEER_HIGH, Direction::Incoming, Direction::Incoming),
        (PEER_HIGH, Direction::Outgoing, Direction::Incoming),
    ];
    for (peer_id, first, survivor) in cases {
        let mut f = Fsm::new(cfg());
        f.process(Input::ManualStart);
        f.process(Input::TcpConnectionConfirmed {
            conn: 1,
            dir: Direction::Outgoing,
        });
        f.process(Input::TcpConnectionConfirmed {
            conn: 2,
            dir: Direction::Incoming,
        });
        let id_of = |d| if d == Direction::Outgoing { 1 } else { 2 };
        let (keep, lose) = (id_of(survivor), 3 - id_of(survivor));
        let out = f.process(Input::BgpOpen {
            conn: id_of(first),
            open: peer_open(64513, peer_id, 90),
        });
        let case = format!("peer {peer_id}, first {first:?}");
        assert_eq!(
            sent_notification(&out, lose),
            Some((err::CEASE, err::CONNECTION_COLLISION)),
            "{case}"
        );
        assert!(closed(&out, lose), "{case}");
        assert!(!closed(&out, keep), "{case}");
        assert!(f.has_conn(keep) && !f.has_conn(lose), "{case}");
        if id_of(first) != keep {
            f.process(Input::BgpOpen {
                conn: keep,
                open: peer_open(64513, peer_id, 90),
            });
        }
        f.process(Input::KeepAliveMsg { conn: keep });
        assert_eq!(f.established().map(|(c, _)| c), Some(keep), "{case}");
    }
}

#[test]
fn connection_while_established() {
    // Without GR the new connection is refused.
    let mut f = Fsm::new(cfg());
    established(&mut f, 1, peer_open(64513, PEER_LOW, 90));
    let out = f.process(Input::TcpConnectionConfirmed {
        conn: 2,
        dir: Direction::Incoming,
    });
    assert!(closed(&out, 2));
    assert_eq!(f.established().map(|(c, _)| c), Some(1));

    // With GR it means the peer restarted (RFC 4724 §4.2): old session down gracefully.
    let mut f = Fsm::new(cfg());
    established(&mut f, 1, gr_open(64513, PEER_LOW));
    let out = f.process(Input::TcpConnectionConfirmed {
        conn: 2,
        dir: Direction::Incoming,
    });
    assert!(closed(&out, 1));
    assert!(out.contains(&Output::SessionDown {
        graceful: Some(120)
    }));
    assert_eq!(f.state(), State::OpenSent);
    assert!(f.has_conn(2));
}

#[test]
fn second_failure_of_one_connection_keeps_the_other() {
    let mut f = Fsm::new(cfg());
    f.process(Input::ManualStart);
    f.process(Input::TcpConnectionConfirmed {
        conn: 1,
        dir: Direction::Outgoing,
    });
    f.process(Input::TcpConnectionConfirmed {
        conn: 2,
        dir: Direction::Incoming,
    });
    let out = f.process(Input::TcpConnectionFails {
        conn: Some(1),
        error: "Connection reset by peer".into(),
    });
    assert!(timer_started(&out, Timer::IdleHold).is_none());
    assert_eq!(f.state(), State::OpenSent);
    assert!(f.has_conn(2));
}

/// A recorded event log replays to the same outputs (inputs and outputs are serde values).
#[test]
fn recorded_event_log_replays() {
    let inputs = vec![
        Input::ManualStart,
        Input::TcpConnectionConfirmed {
            conn: 1,
            dir: Direction::Outgoing,
        },
        Input::BgpOpen {
            conn: 1,
            open: gr_open(64513, PEER_LOW),
        },
        Input::KeepAliveMsg { conn: 1 },
        Input::HoldTimerExpires,
    ];
    let mut f = Fsm::new(cfg());
    let outputs: Vec<Vec<Output>> = inputs.iter().map(|i| f.process(i.clone())).collect();
    let log = serde_json::to_string(&inputs).expect("serialize inputs");
    let replayed: Vec<Input> = serde_json::from_str(&log).expect("deserialize inputs");
    let mut g = Fsm::new(cfg());
    let again: Vec<Vec<Output>> = replayed.into_iter().map(|i| g.process(i)).collect();
    assert_eq!(outputs, again);
    let out_log = serde_json::to_string(&outputs).expect("serialize outputs");
    let back: Vec<Vec<Output>> = serde_json::from_str(&out_log).expect("deserialize outputs");
    assert_eq!(back, outputs);
    assert_eq!(g.state(), State::Idle);
}
