//! Interop with BIRD 2 in network namespaces (root only): eBGP and iBGP route exchange
//! with the right attributes, IPv6 unicast over the IPv4 session, withdrawals both ways,
//! wrong AS in both directions, TCP MD5, hold-timer expiry on a cut link.
//! Graceful restart with BIRD lives in `interop_bird_gr.rs`.

mod interop_util;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use interop_util::{Ours, POLL, UP, peer_config, speaker_config, wait_some};
use testlab::bird::{Bird, BirdConfig, BirdNeighbor};
use testlab::{AsSegment, Lab, holds_for, routes_for};
use tortie_bgp::speaker::State;

const US: &str = "10.0.0.1";
const BIRD: &str = "10.0.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}

/// A lab with our host (10.0.0.1, fd00::1) and BIRD's host (10.0.0.2, fd00::2).
fn lab(name: &str) -> Result<(Lab, testlab::Host, testlab::Host)> {
    let lab = Lab::new(name)?;
    let us = lab.add_host("us", "10.0.0.1/24")?;
    let bird = lab.add_host("bird", "10.0.0.2/24")?;
    us.ip(&["addr", "add", "fd00::1/64", "dev", "eth0", "nodad"])?;
    bird.ip(&["addr", "add", "fd00::2/64", "dev", "eth0", "nodad"])?;
    Ok((lab, us, bird))
}

fn bird_neighbor(remote_as: u32) -> BirdNeighbor {
    let mut n = BirdNeighbor::new("tortie", ip(US), remote_as);
    n.graceful_restart = None;
    n
}

fn bird_route(bird: &Bird, table: &str, prefix: &str) -> Result<(Option<testlab::Route>, usize)> {
    let routes = bird.routes(table)?;
    let found = routes_for(&routes, prefix).first().map(|r| (*r).clone());
    Ok((found, routes.len()))
}

#[test]
fn bird_ebgp_routes_both_ways_with_ipv6() -> Result<()> {
    let (_lab, us, bh) = lab("bbebgp")?;
    let mut bc = BirdConfig::new(ip(BIRD).to_string().parse()?, 64513);
    let mut n = bird_neighbor(64512);
    n.ipv6 = true;
    n.ipv6_extra = "next hop address fd00::2;".into();
    bc.neighbors.push(n);
    bc.static_routes = vec!["10.245.0.0/26".parse()?, "fd00:245::/122".parse()?];
    let mut bird = Bird::start(&bh, bc.clone())?;

    let ours = Ours::start(&us, speaker_config(64512, US, None)?)?;
    let mut p = peer_config(BIRD, 64513)?;
    p.ipv6_next_hop = Some("fd00::1".parse()?);
    ours.add_peer(p)?;
    let mut view = ours.routes()?;
    ours.originate("10.244.1.0/26")?;
    ours.originate("fd00:244::/122")?;

    ours.wait_established(ip(BIRD))?;
    bird.wait_established("tortie", UP)?;

    // Ours in BIRD: next hop = our address, AS_PATH a sequence of our AS.
    let r = wait_some("10.244.1.0/26 in BIRD", UP, || {
        bird_route(&bird, "master4", "10.244.1.0/26")
    })?;
    assert_eq!(r.next_hop, Some(ip(US)));
    assert_eq!(r.as_path, vec![AsSegment::Sequence(vec![64512])]);
    let r = wait_some("fd00:244::/122 in BIRD", UP, || {
        bird_route(&bird, "master6", "fd00:244::/122")
    })?;
    assert_eq!(r.next_hop, Some(ip("fd00::1")));
    assert_eq!(r.as_path, vec![AsSegment::Sequence(vec![64512])]);

    // BIRD's in ours.
    let c = view.wait_for("10.245.0.0/26", UP, |_| true)?;
    let best = c.best().expect("a path");
    assert_eq!(best.next_hop, Some(ip(BIRD)));
    assert_eq!(best.peer_address, Some(ip(BIRD)));
    assert_eq!(
        best.attrs.as_path,
        vec![tortie_bgp::msg::AsSegment::Sequence(vec![64513])]
    );
    let c = view.wait_for("fd00:245::/122", UP, |_| true)?;
    assert_eq!(c.best().and_then(|p| p.next_hop), Some(ip("fd00::2")));
    let row = ours.wait_peer(ip(BIRD), "counts", UP, |r| {
        r.prefixes_received == 2 && r.prefixes_advertised == 2
    })?;
    assert_eq!(row.info, "Established");

    // Withdrawals both ways.
    ours.withdraw("10.244.1.0/26")?;
    wait_some("10.244.1.0/26 withdrawn from BIRD", UP, || {
        let (r, n) = bird_route(&bird, "master4", "10.244.1.0/26")?;
        Ok((r.is_none().then_some(()), n))
    })?;
    bc.static_routes = vec!["fd00:245::/122".parse()?];
    bird.reconfigure(bc)?;
    view.wait_gone("10.245.0.0/26", UP)?;
    assert!(
        view.get("fd00:245::/122").is_some(),
        "only the removed prefix goes"
    );
    Ok(())
}

#[test]
fn bird_ibgp_carries_local_pref() -> Result<()> {
    let (_lab, us, bh) = lab("bbibgp")?;
    let mut bc = BirdConfig::new(ip(BIRD).to_string().parse()?, 64512);
    bc.neighbors.push(bird_neighbor(64512));
    bc.static_routes = vec!["10.245.1.0/26".parse()?];
    let bird = Bird::start(&bh, bc)?;
    let ours = Ours::start(&us, speaker_config(64512, US, None)?)?;
    ours.add_peer(peer_config(BIRD, 64512)?)?;
    let mut view = ours.routes()?;
    ours.originate("10.244.2.0/26")?;
    ours.wait_established(ip(BIRD))?;

    let r = wait_some("10.244.2.0/26 in BIRD", UP, || {
        bird_route(&bird, "master4", "10.244.2.0/26")
    })?;
    assert_eq!(r.next_hop, Some(ip(US)));
    assert!(
        r.as_path_flat().is_empty(),
        "iBGP adds no AS: {:?}",
        r.as_path
    );
    assert_eq!(r.local_pref, Some(100));
    let c = view.wait_for("10.245.1.0/26", UP, |_| true)?;
    let best = c.best().expect("a path");
    assert_eq!(best.next_hop, Some(ip(BIRD)));
    assert_eq!(best.attrs.local_pref, Some(100));
    assert!(
        best.attrs
            .as_path
            .iter()
            .all(|s| matches!(s, tortie_bgp::msg::AsSegment::Sequence(v) if v.is_empty()))
    );
    Ok(())
}

#[test]
fn bird_wrong_as_both_directions() -> Result<()> {
    let (_lab, us, bh) = lab("bbbadas")?;
    // BIRD expects us in AS 64999, we are 64512: BIRD refuses our OPEN.
    let mut bc = BirdConfig::new(ip(BIRD).to_string().parse()?, 64513);
    bc.neighbors.push(bird_neighbor(64999));
    let mut bird = Bird::start(&bh, bc.clone())?;
    let ours = Ours::start(&us, speaker_config(64512, US, None)?)?;
    ours.add_peer(peer_config(BIRD, 64513)?)?;
    let row = ours.wait_peer(ip(BIRD), "BIRD's NOTIFICATION", UP, |r| {
        r.last_error.as_deref() == Some("Received: Bad peer AS")
    })?;
    assert_ne!(row.state, State::Established);
    assert!(row.info.ends_with("Received: Bad peer AS"), "{}", row.info);

    // Now BIRD is right and we expect the wrong AS: we send Bad Peer AS.
    bc.neighbors = vec![bird_neighbor(64512)];
    bird.reconfigure(bc)?;
    let p = peer_config(BIRD, 64998)?;
    futures::executor::block_on(ours.speaker.update_peer(p))?;
    ours.wait_peer(ip(BIRD), "our NOTIFICATION", UP, |r| {
        r.last_error.as_deref() == Some("Sent: Bad peer AS")
    })?;
    let n = wait_some("BIRD shows the error", UP, || {
        let n = bird.protocol_state("tortie")?;
        let ok = n
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("Bad peer AS"));
        Ok((ok.then_some(n.clone()), n))
    })?;
    assert!(!n.is_established());
    Ok(())
}

#[test]
fn bird_md5_passwords() -> Result<()> {
    let (_lab, us, bh) = lab("bbmd5")?;
    let mut bc = BirdConfig::new(ip(BIRD).to_string().parse()?, 64513);
    let mut n = bird_neighbor(64512);
    n.password = Some("s3cret".into());
    bc.neighbors.push(n);
    let mut bird = Bird::start(&bh, bc.clone())?;
    let ours = Ours::start(&us, speaker_config(64512, US, None)?)?;
    let mut p = peer_config(BIRD, 64513)?;
    p.password = Some("s3cret".into());
    ours.add_peer(p.clone())?;
    ours.wait_established(ip(BIRD))?;
    bird.wait_established("tortie", UP)?;

    // Wrong password on BIRD's side: the session never comes up.
    bc.neighbors[0].password = Some("wrong".into());
    bird.restart(Some(bc.clone()))?;
    ours.wait_peer(ip(BIRD), "session down", UP, |r| {
        r.state != State::Established
    })?;
    holds_for(Duration::from_secs(4), POLL, || -> Result<()> {
        let row = ours.peer(ip(BIRD))?;
        if row.state == State::Established {
            bail!("came up with a wrong password: {row:?}");
        }
        Ok(())
    })?;

    // BIRD without a password dials our passive, password-protected listener: refused.
    bc.neighbors[0].password = None;
    bird.restart(Some(bc))?;
    p.passive = true;
    futures::executor::block_on(ours.speaker.update_peer(p))?;
    holds_for(Duration::from_secs(4), POLL, || -> Result<()> {
        let row = ours.peer(ip(BIRD))?;
        let n = bird.protocol_state("tortie")?;
        if row.state >= State::OpenSent || n.is_established() {
            bail!("unsigned connection accepted: ours {row:?}, BIRD {n:?}");
        }
        Ok(())
    })?;
    Ok(())
}

#[test]
fn bird_hold_timer_expiry_on_cut_link() -> Result<()> {
    let (lab, us, bh) = lab("bbhold")?;
    let mut bc = BirdConfig::new(ip(BIRD).to_string().parse()?, 64513);
    let mut n = bird_neighbor(64512);
    n.hold_time = Some(6);
    n.extra = "graceful restart off;\n".into();
    bc.neighbors.push(n);
    bc.static_routes = vec!["10.245.2.0/26".parse()?];
    let _bird = Bird::start(&bh, bc)?;
    let ours = Ours::start(&us, speaker_config(64512, US, None)?)?;
    let mut p = peer_config(BIRD, 64513)?;
    p.hold_time = 3;
    ours.add_peer(p)?;
    let mut view = ours.routes()?;
    ours.wait_established(ip(BIRD))?;
    view.wait_for("10.245.2.0/26", UP, |_| true)?;

    lab.set_link(&bh, false)?;
    let cut = Instant::now();
    let row = ours.wait_peer(ip(BIRD), "hold timer expiry", Duration::from_secs(6), |r| {
        r.state != State::Established
    })?;
    let took = cut.elapsed();
    assert!(
        took <= Duration::from_millis(4500),
        "down after {took:?}, hold time is 3 s"
    );
    assert!(
        took >= Duration::from_millis(900),
        "down after only {took:?}: not the hold timer"
    );
    assert_eq!(row.last_error.as_deref(), Some("Hold timer expired"));
    view.wait_gone("10.245.2.0/26", Duration::from_secs(1))?;
    Ok(())
}

#[test]
fn bird_ttl_security() -> Result<()> {
    let (_lab, us, bh) = lab("bbgtsm")?;
    // Both sides on GTSM: the session comes up.
    let mut bc = BirdConfig::new(ip(BIRD).to_string().parse()?, 64513);
    let mut n = bird_neighbor(64512);
    n.extra = "ttl security on;\n".into();
    bc.neighbors.push(n);
    let mut bird = Bird::start(&bh, bc.clone())?;
    let ours = Ours::start(&us, speaker_config(64512, US, None)?)?;
    let mut p = peer_config(BIRD, 64513)?;
    p.ttl_security = Some(1);
    ours.add_peer(p)?;
    ours.wait_established(ip(BIRD))?;
    bird.wait_established("tortie", UP)?;

    // BIRD without GTSM sends with TTL 64: our sockets drop its packets.
    bc.neighbors[0].extra.clear();
    bird.restart(Some(bc))?;
    ours.wait_peer(ip(BIRD), "session down", UP, |r| {
        r.state != State::Established
    })?;
    holds_for(Duration::from_secs(4), POLL, || -> Result<()> {
        let row = ours.peer(ip(BIRD))?;
        if row.state >= State::OpenConfirm {
            bail!("a TTL-64 peer got through GTSM: {row:?}");
        }
        Ok(())
    })?;
    Ok(())
}

#[test]
fn bird_over_an_ipv6_session_and_dual_stack_listener() -> Result<()> {
    let (_lab, us, bh) = lab("bbv6")?;
    let mut bc = BirdConfig::new(ip(BIRD).to_string().parse()?, 64513);
    // An IPv6 session carrying IPv6 routes, and an IPv4 one to the same dual-stack
    // listener (BIRD dials both; we stay passive so every connection is accepted).
    let mut n6 = BirdNeighbor::new("tortie6", ip("fd00::1"), 64512);
    n6.ipv4 = false;
    n6.ipv6 = true;
    bc.neighbors.push(n6);
    bc.neighbors.push(bird_neighbor(64512));
    bc.static_routes = vec!["fd00:246::/122".parse()?, "10.245.6.0/26".parse()?];
    let bird = Bird::start(&bh, bc)?;
    let mut cfg = speaker_config(64512, US, None)?;
    cfg.listen = Some("[::]:179".parse()?);
    let ours = Ours::start(&us, cfg)?;
    let mut p6 = peer_config("fd00::2", 64513)?;
    p6.passive = true;
    p6.families = vec![tortie_bgp::msg::Afi::Ipv6Unicast];
    ours.add_peer(p6)?;
    let mut p4 = peer_config(BIRD, 64513)?;
    p4.passive = true;
    p4.families = vec![tortie_bgp::msg::Afi::Ipv4Unicast];
    ours.add_peer(p4)?;
    let mut view = ours.routes()?;
    ours.originate("fd00:244:1::/122")?;

    ours.wait_established(ip("fd00::2"))?;
    ours.wait_established(ip(BIRD))?;
    let c = view.wait_for("fd00:246::/122", UP, |_| true)?;
    let best = c.best().expect("a path");
    assert_eq!(best.next_hop, Some(ip("fd00::2")));
    assert_eq!(best.peer_address, Some(ip("fd00::2")));
    let c = view.wait_for("10.245.6.0/26", UP, |_| true)?;
    assert_eq!(c.best().and_then(|b| b.peer_address), Some(ip(BIRD)));
    let r = wait_some("ours in BIRD over IPv6", UP, || {
        bird_route(&bird, "master6", "fd00:244:1::/122")
    })?;
    assert_eq!(r.next_hop, Some(ip("fd00::1")));
    assert_eq!(r.from.as_deref(), Some("tortie6"));
    Ok(())
}

#[test]
fn bird_route_refresh_is_answered_without_a_reset() -> Result<()> {
    let (_lab, us, bh) = lab("bbrefresh")?;
    let cap = bh.capture("refresh", "eth0", "tcp port 179")?;
    let mut bc = BirdConfig::new(ip(BIRD).to_string().parse()?, 64513);
    bc.neighbors.push(bird_neighbor(64512));
    let bird = Bird::start(&bh, bc)?;
    let ours = Ours::start(&us, speaker_config(64512, US, None)?)?;
    ours.add_peer(peer_config(BIRD, 64513)?)?;
    ours.originate("10.244.10.0/26")?;
    let up = ours.wait_established(ip(BIRD))?;
    wait_some("ours in BIRD", UP, || {
        bird_route(&bird, "master4", "10.244.10.0/26")
    })?;

    // BIRD asks for our routes again (ROUTE-REFRESH); we answer on the same session.
    let out = bird.birdc("reload in tortie")?;
    assert!(!out.contains("error"), "{out}");
    holds_for(Duration::from_secs(2), POLL, || -> Result<()> {
        let row = ours.peer(ip(BIRD))?;
        if row.state != State::Established || row.since != up.since {
            bail!("session reset by the refresh: {row:?}");
        }
        let (r, _) = bird_route(&bird, "master4", "10.244.10.0/26")?;
        if r.is_none() {
            bail!("route gone from BIRD after the refresh");
        }
        Ok(())
    })?;

    // On the wire: BIRD sent a ROUTE-REFRESH, and we announced our prefix twice (the
    // initial dump and the answer), framed by BoRR/EoRR when enhanced refresh is on.
    let streams = testlab::capture::tcp_streams(&cap.stop()?);
    let ctx = tortie_bgp::wire::Ctx {
        four_octet_as: true,
        ..Default::default()
    };
    let decode = |from: &str| -> Vec<tortie_bgp::msg::Message> {
        streams
            .iter()
            .filter(|((src, _), _)| src.ip() == ip(from))
            .flat_map(|(_, bytes)| testlab::capture::split_bgp(bytes))
            .filter_map(|m| tortie_bgp::wire::decode_message(&m, &ctx).ok())
            .map(|d| d.message)
            .collect()
    };
    use tortie_bgp::msg::Message;
    let from_bird = decode(BIRD);
    let from_us = decode(US);
    assert!(
        from_bird
            .iter()
            .any(|m| matches!(m, Message::RouteRefresh(r) if r.subtype == 0)),
        "BIRD sent no ROUTE-REFRESH: {from_bird:?}"
    );
    let ours_prefix: ipnetwork::IpNetwork = "10.244.10.0/26".parse()?;
    let announced = from_us
        .iter()
        .filter(|m| matches!(m, Message::Update(u) if u.announced.contains(&ours_prefix)))
        .count();
    assert_eq!(announced, 2, "initial dump + refresh answer: {from_us:?}");
    let borr = from_us
        .iter()
        .position(|m| matches!(m, Message::RouteRefresh(r) if r.subtype == 1));
    let eorr = from_us
        .iter()
        .position(|m| matches!(m, Message::RouteRefresh(r) if r.subtype == 2));
    if let (Some(b), Some(e)) = (borr, eorr) {
        assert!(b < e, "BoRR before EoRR");
    }
    assert!(bird.protocol_state("tortie")?.is_established());
    Ok(())
}
