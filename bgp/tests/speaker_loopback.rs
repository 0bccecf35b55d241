//! Two tortie speakers talking over loopback (no root needed): one listens on a free
//! port of 127.0.0.1, the other dials it from 127.0.0.2. Checks session setup, route
//! propagation with the right attributes, withdrawal, status rows, OPEN errors and the
//! RFC 9003 shutdown message.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ipnetwork::IpNetwork;
use tortie_bgp::msg::AsSegment;
use tortie_bgp::speaker::{
    PeerConfig, PeerStatus, RouteEvent, RouteSubscription, Speaker, SpeakerConfig, State,
};

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Speaker A listens on 127.0.0.1:<free>; speaker B (no listener) dials from 127.0.0.2.
async fn pair(as_a: u32, as_b: u32, b_thinks_a_is: u32) -> Result<(Speaker, Speaker)> {
    let mut ca = SpeakerConfig::new(as_a, Ipv4Addr::new(1, 1, 1, 1));
    ca.listen = Some(SocketAddr::new(A, 0));
    ca.graceful_restart_time = None;
    let a = Speaker::start(ca).await?;
    let port = a.listen_addr().context("A listens")?.port();
    let mut cb = SpeakerConfig::new(as_b, Ipv4Addr::new(2, 2, 2, 2));
    cb.listen = None;
    cb.graceful_restart_time = None;
    let b = Speaker::start(cb).await?;

    let mut pa = PeerConfig::new(B, as_b);
    pa.passive = true;
    pa.name = "Node_127_0_0_2".into();
    pa.hold_time = 9;
    a.add_peer(pa).await?;
    let mut pb = PeerConfig::new(A, b_thinks_a_is);
    pb.port = port;
    pb.source_address = Some(B);
    pb.connect_retry = Duration::from_secs(1);
    pb.hold_time = 9;
    pb.ipv6_next_hop = Some("fd00::2".parse()?);
    b.add_peer(pb).await?;
    Ok((a, b))
}

async fn wait_status(
    s: &Speaker,
    what: &str,
    f: impl Fn(&PeerStatus) -> bool,
) -> Result<PeerStatus> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = s.peer_states().await?;
        if let Some(r) = rows.iter().find(|r| f(r)) {
            return Ok(r.clone());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}; peers: {rows:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn next_change(sub: &mut RouteSubscription, prefix: IpNetwork) -> Result<RouteEvent> {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), sub.recv())
            .await
            .with_context(|| format!("no route event for {prefix}"))?
            .context("speaker stopped")?;
        if let RouteEvent::Changed(c) = &ev
            && c.prefix == prefix
        {
            return Ok(ev);
        }
    }
}

#[tokio::test]
async fn ebgp_routes_flow_and_withdraw() -> Result<()> {
    let (a, b) = pair(64512, 64513, 64512).await?;
    let row = wait_status(&b, "B established", |r| r.state == State::Established).await?;
    assert_eq!(row.info, "Established");
    let row = wait_status(&a, "A established", |r| r.state == State::Established).await?;
    assert_eq!(row.name, "Node_127_0_0_2");

    let mut sub = b.subscribe_routes().await?;
    assert_eq!(
        sub.recv().await,
        Some(RouteEvent::Synced),
        "empty snapshot first"
    );
    let prefix: IpNetwork = "10.244.1.0/26".parse()?;
    a.originate(prefix, None).await?;
    let RouteEvent::Changed(c) = next_change(&mut sub, prefix).await? else {
        bail!("expected a change");
    };
    let best = c.best().context("a path")?;
    assert_eq!(
        best.next_hop,
        Some(A),
        "eBGP next hop is A's session address"
    );
    assert_eq!(best.peer_address, Some(A));
    assert_eq!(best.attrs.as_path, vec![AsSegment::Sequence(vec![64512])]);
    wait_status(&a, "A advertised 1", |r| r.prefixes_advertised == 1).await?;
    wait_status(&b, "B received 1", |r| r.prefixes_received == 1).await?;

    // A new subscriber gets the route in its snapshot.
    let mut late = b.subscribe_routes().await?;
    match late.recv().await {
        Some(RouteEvent::Changed(c)) => assert_eq!(c.prefix, prefix),
        other => bail!("snapshot should hold the route, got {other:?}"),
    }
    assert_eq!(late.recv().await, Some(RouteEvent::Synced));

    a.withdraw(prefix).await?;
    let RouteEvent::Changed(c) = next_change(&mut sub, prefix).await? else {
        bail!("expected a change");
    };
    assert!(c.is_withdrawal(), "withdrawn: {c:?}");

    // B's routes reach A too, and host bits are refused at the API.
    let v6: IpNetwork = "fd00:1::/122".parse()?;
    let bad: IpNetwork = "10.0.0.1/24".parse()?;
    assert!(b.originate(bad, None).await.is_err());
    let mut sub_a = a.subscribe_routes().await?;
    b.originate("10.244.2.0/26".parse()?, None).await?;
    let RouteEvent::Changed(c) = next_change(&mut sub_a, "10.244.2.0/26".parse()?).await? else {
        bail!("expected a change");
    };
    assert_eq!(c.best().and_then(|p| p.next_hop), Some(B));
    b.originate(v6, None).await?;
    let RouteEvent::Changed(c) = next_change(&mut sub_a, v6).await? else {
        bail!("expected a change");
    };
    assert_eq!(c.best().and_then(|p| p.next_hop), Some("fd00::2".parse()?));

    // Clean shutdown carries the RFC 9003 message to the other side.
    b.shutdown("maintenance window").await?;
    let row = wait_status(&a, "A sees shutdown", |r| r.state != State::Established).await?;
    assert_eq!(
        row.last_error.as_deref(),
        Some("Received: Administrative shutdown: \"maintenance window\""),
        "{row:?}"
    );
    let RouteEvent::Changed(c) = next_change(&mut sub_a, v6).await? else {
        bail!("expected a change");
    };
    assert!(c.is_withdrawal(), "B's routes go with its session");
    Ok(())
}

#[tokio::test]
async fn wrong_peer_as_is_refused_with_bad_peer_as() -> Result<()> {
    // B expects A to be AS 64999 but A is 64512.
    let (a, b) = pair(64512, 64513, 64999).await?;
    let row = wait_status(&b, "B error", |r| r.last_error.is_some()).await?;
    assert_eq!(
        row.last_error.as_deref(),
        Some("Sent: Bad peer AS"),
        "{row:?}"
    );
    assert_ne!(row.state, State::Established);
    let row = wait_status(&a, "A error", |r| r.last_error.is_some()).await?;
    assert_eq!(
        row.last_error.as_deref(),
        Some("Received: Bad peer AS"),
        "{row:?}"
    );
    assert!(row.info.ends_with("Received: Bad peer AS"), "{}", row.info);
    Ok(())
}

#[tokio::test]
async fn unknown_peers_are_rejected_and_peers_can_be_removed() -> Result<()> {
    let mut ca = SpeakerConfig::new(64512, Ipv4Addr::new(1, 1, 1, 1));
    ca.listen = Some(SocketAddr::new(A, 0));
    let a = Speaker::start(ca).await?;
    let port = a.listen_addr().context("listens")?.port();
    let mut cb = SpeakerConfig::new(64513, Ipv4Addr::new(2, 2, 2, 2));
    cb.listen = None;
    let b = Speaker::start(cb).await?;
    let mut pb = PeerConfig::new(A, 64512);
    pb.port = port;
    pb.source_address = Some(B);
    pb.connect_retry = Duration::from_secs(1);
    b.add_peer(pb.clone()).await?;
    // A does not know B: the connection is closed before any OPEN.
    let row = wait_status(&b, "B error", |r| r.last_error.is_some()).await?;
    assert_ne!(row.state, State::Established);
    assert!(
        row.last_error.as_deref() == Some("Connection closed")
            || row
                .last_error
                .as_deref()
                .is_some_and(|e| e.starts_with("Socket:")),
        "{row:?}"
    );
    assert!(matches!(
        b.add_peer(pb.clone()).await,
        Err(tortie_bgp::speaker::SpeakerError::PeerExists { .. })
    ));
    b.remove_peer(A).await?;
    assert!(b.peer_states().await?.is_empty());
    assert!(b.remove_peer(A).await.is_err());
    Ok(())
}

#[tokio::test]
async fn refused_connection_shows_as_calico_does() -> Result<()> {
    let mut c = SpeakerConfig::new(64512, Ipv4Addr::new(1, 1, 1, 1));
    c.listen = None;
    let s = Speaker::start(c).await?;
    // Nothing listens on 127.0.0.3:<a port we just freed>.
    let port = std::net::TcpListener::bind("127.0.0.3:0")?
        .local_addr()?
        .port();
    let mut p = PeerConfig::new("127.0.0.3".parse()?, 64513);
    p.port = port;
    p.connect_retry = Duration::from_secs(1);
    s.add_peer(p).await?;
    let row = wait_status(&s, "refused", |r| r.last_error.is_some()).await?;
    assert_eq!(
        row.last_error.as_deref(),
        Some("Socket: Connection refused")
    );
    let row = wait_status(&s, "Active", |r| r.state == State::Active).await?;
    assert_eq!(row.info, "Active Socket: Connection refused");
    assert_eq!(row.prefixes_received, 0);
    Ok(())
}

/// Garbage from a configured peer's address: we answer with the header-error
/// NOTIFICATION, close, and the peer row names the error.
#[tokio::test]
async fn garbage_from_a_peer_gets_a_notification() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut ca = SpeakerConfig::new(64512, Ipv4Addr::new(1, 1, 1, 1));
    ca.listen = Some(SocketAddr::new(A, 0));
    let a = Speaker::start(ca).await?;
    let port = a.listen_addr().context("listens")?.port();
    let mut p = PeerConfig::new(B, 64513);
    p.passive = true;
    a.add_peer(p).await?;

    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(B, 0))?;
    let mut stream = sock.connect(SocketAddr::new(A, port)).await?;
    stream.write_all(&[0x42; 40]).await?;
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut got)).await??;
    let msgs = got.len();
    assert!(
        msgs >= 19 + 29,
        "OPEN then NOTIFICATION expected, got {msgs} bytes"
    );
    // The last message is the NOTIFICATION: type 3, code 1 (header), subcode 1.
    let tail = &got[got.len() - 21..];
    assert_eq!(&tail[..16], &[0xff; 16]);
    assert_eq!(&tail[18..21], &[3, 1, 1], "{got:?}");
    let row = wait_status(&a, "error shown", |r| r.last_error.is_some()).await?;
    assert_eq!(
        row.last_error.as_deref(),
        Some("Sent: Connection not synchronized")
    );
    Ok(())
}
