//! Connection collision between two tortie speakers (RFC 4271 §6.8), over loopback (no
//! root needed): A on 127.0.0.1 and B on 127.0.0.2, each listening on a free port and
//! both *active* towards the other, started at the same instant so both dial at once.
//! Repeated many times: every run must reach Established on both sides within a bound,
//! with a single surviving connection (one session, not two half-sessions in lockstep).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tortie_bgp::speaker::{PeerConfig, Speaker, SpeakerConfig, State};

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

async fn speaker(addr: IpAddr, id: Ipv4Addr, asn: u32, gr: bool) -> Result<Speaker> {
    let mut c = SpeakerConfig::new(asn, id);
    c.listen = Some(SocketAddr::new(addr, 0));
    c.graceful_restart_time = gr.then_some(120);
    // Short back-off: a lockstep failure repeats within the bound instead of hiding.
    c.idle_hold = Duration::from_millis(200);
    Ok(Speaker::start(c).await?)
}

fn peer(addr: IpAddr, port: u16, asn: u32, src: IpAddr) -> PeerConfig {
    let mut p = PeerConfig::new(addr, asn);
    p.port = port;
    p.source_address = Some(src);
    p.connect_retry = Duration::from_secs(1);
    p.hold_time = 9;
    p
}

async fn established(s: &Speaker) -> Result<bool> {
    let rows = s.peer_states().await?;
    Ok(rows.iter().any(|r| r.state == State::Established))
}

/// One run: both speakers add each other at the same instant; both must be Established
/// within `bound`.
/// `stagger`: B learns of A only this long after A started dialling B, so A's first
/// attempt is refused and A sits in its idle-hold wait when B's dial arrives (the way
/// the route-reflector pair fell into lockstep).
async fn one_run(
    run: usize,
    ids: (Ipv4Addr, Ipv4Addr),
    asns: (u32, u32),
    gr: bool,
    stagger: Option<Duration>,
) -> Result<()> {
    let a = speaker(A, ids.0, asns.0, gr).await?;
    let b = speaker(B, ids.1, asns.1, gr).await?;
    let pa = a.listen_addr().context("A listens")?.port();
    let pb = b.listen_addr().context("B listens")?.port();
    if let Some(d) = stagger {
        a.add_peer(peer(B, pb, asns.1, A)).await?;
        tokio::time::sleep(d).await;
        b.add_peer(peer(A, pa, asns.0, B)).await?;
    } else {
        let (ra, rb) = tokio::join!(
            a.add_peer(peer(B, pb, asns.1, A)),
            b.add_peer(peer(A, pa, asns.0, B))
        );
        ra?;
        rb?;
    }
    let bound = Duration::from_millis(1500);
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if established(&a).await? && established(&b).await? {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let sa = a.peer_states().await?;
            let sb = b.peer_states().await?;
            bail!("run {run}: no session within {bound:?}; A: {sa:?}; B: {sb:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The session stays up: the losing connection's close must not take it down.
    tokio::time::sleep(Duration::from_millis(100)).await;
    if !(established(&a).await? && established(&b).await?) {
        bail!("run {run}: session fell after collision resolution");
    }
    a.shutdown("done").await?;
    b.shutdown("done").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_dial_ibgp_gr_always_establishes() -> Result<()> {
    let ids = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    for run in 0..30 {
        one_run(run, ids, (64512, 64512), true, None).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_dial_ebgp_always_establishes() -> Result<()> {
    // Higher identifier on the other side this time.
    let ids = (Ipv4Addr::new(10, 0, 0, 9), Ipv4Addr::new(10, 0, 0, 2));
    for run in 0..30 {
        one_run(run, ids, (64512, 64513), false, None).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_during_peer_idle_hold_is_accepted() -> Result<()> {
    // A's first dial is refused (B does not know A yet); B's dial then reaches A during
    // A's idle-hold wait. Before the fix A closed it silently, B went Idle too, and both
    // retried in lockstep forever, each refusing the other's dial.
    let ids = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    for run in 0..5 {
        one_run(
            run,
            ids,
            (64512, 64512),
            true,
            Some(Duration::from_millis(30)),
        )
        .await?;
    }
    Ok(())
}
