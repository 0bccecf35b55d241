//! Graceful restart (RFC 4724) with BIRD 2 in network namespaces (root only):
//! (a) our speaker crashes and restarts with the R bit: BIRD keeps our prefixes as stale
//!     meanwhile and they are refreshed (no longer stale) after our End-of-RIB;
//! (b) BIRD restarts gracefully with one prefix fewer: we keep all its prefixes until
//!     its End-of-RIB, then sweep exactly the missing one.

mod interop_util;

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Result, bail, ensure};
use interop_util::{Ours, POLL, UP, peer_config, speaker_config, wait_some};
use testlab::bird::{Bird, BirdConfig, BirdNeighbor};
use testlab::{Lab, holds_for, routes_for};
use tortie_bgp::speaker::State;

const US: &str = "10.0.0.1";
const BIRD: &str = "10.0.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}

fn lab(name: &str) -> Result<(Lab, testlab::Host, testlab::Host)> {
    let lab = Lab::new(name)?;
    let us = lab.add_host("us", "10.0.0.1/24")?;
    let bird = lab.add_host("bird", "10.0.0.2/24")?;
    Ok((lab, us, bird))
}

fn bird_config(statics: &[&str]) -> Result<BirdConfig> {
    let mut bc = BirdConfig::new(BIRD.parse()?, 64513);
    let mut n = BirdNeighbor::new("tortie", ip(US), 64512);
    n.graceful_restart = Some(30);
    bc.neighbors.push(n);
    bc.static_routes = statics
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    Ok(bc)
}

/// (present, stale) of each prefix in BIRD's master4.
fn bird_has(bird: &Bird, prefixes: &[&str]) -> Result<Vec<(bool, bool)>> {
    let routes = bird.routes("master4")?;
    Ok(prefixes
        .iter()
        .map(|p| {
            let r = routes_for(&routes, p);
            (!r.is_empty(), r.iter().any(|r| r.stale))
        })
        .collect())
}

#[test]
fn bird_keeps_our_routes_while_we_restart() -> Result<()> {
    let (_lab, us, bh) = lab("bgrours")?;
    let ours_prefixes = ["10.244.3.0/26", "10.244.4.0/26"];
    let bird = Bird::start(&bh, bird_config(&[])?)?;
    let start = |restarting: bool| -> Result<Ours> {
        let mut cfg = speaker_config(64512, US, Some(120))?;
        cfg.restarting = restarting;
        cfg.selection_deferral = Duration::from_secs(10);
        let o = Ours::start(&us, cfg)?;
        o.add_peer(peer_config(BIRD, 64513)?)?;
        for p in ours_prefixes {
            o.originate(p)?;
        }
        Ok(o)
    };
    let ours = start(false)?;
    ours.wait_established(ip(BIRD))?;
    wait_some("our routes in BIRD, fresh", UP, || {
        let have = bird_has(&bird, &ours_prefixes)?;
        Ok((have.iter().all(|&(p, s)| p && !s).then_some(()), have))
    })?;

    // Crash: no NOTIFICATION, sockets just close.
    ours.crash();
    wait_some("BIRD marks our routes stale", UP, || {
        let have = bird_has(&bird, &ours_prefixes)?;
        ensure!(
            have.iter().all(|&(p, _)| p),
            "BIRD dropped our routes: {have:?}"
        );
        Ok((have.iter().all(|&(_, s)| s).then_some(()), have))
    })?;
    holds_for(Duration::from_secs(1), POLL, || -> Result<()> {
        let have = bird_has(&bird, &ours_prefixes)?;
        ensure!(
            have.iter().all(|&(p, _)| p),
            "BIRD dropped our routes: {have:?}"
        );
        Ok(())
    })?;

    // Restart with the R bit; our routes stay in BIRD throughout and end up fresh.
    let ours = start(true)?;
    wait_some("our routes refreshed in BIRD", UP, || {
        let have = bird_has(&bird, &ours_prefixes)?;
        ensure!(
            have.iter().all(|&(p, _)| p),
            "BIRD dropped our routes: {have:?}"
        );
        Ok((have.iter().all(|&(_, s)| !s).then_some(()), have))
    })?;
    let row = ours.peer(ip(BIRD))?;
    assert_eq!(row.state, State::Established);
    assert_eq!(row.prefixes_advertised, 2);
    Ok(())
}

#[test]
fn we_sweep_exactly_the_prefix_bird_lost_at_its_end_of_rib() -> Result<()> {
    let (_lab, us, bh) = lab("bgrbird")?;
    let all = ["10.245.3.0/26", "10.245.4.0/26", "10.245.5.0/26"];
    let mut bird = Bird::start(&bh, bird_config(&all)?)?;
    let ours = Ours::start(&us, speaker_config(64512, US, Some(120))?)?;
    ours.add_peer(peer_config(BIRD, 64513)?)?;
    let mut view = ours.routes()?;
    ours.wait_established(ip(BIRD))?;
    for p in all {
        view.wait_for(p, UP, |_| true)?;
    }
    ours.wait_peer(ip(BIRD), "3 received", UP, |r| r.prefixes_received == 3)?;

    bird.graceful_restart_shutdown()?;
    // All three are kept, as stale, while BIRD is away.
    let row = ours.wait_peer(ip(BIRD), "routes stale", UP, |r| {
        r.state != State::Established && r.prefixes_stale == 3
    })?;
    assert_eq!(row.prefixes_received, 3);
    holds_for(Duration::from_secs(1), POLL, || -> Result<()> {
        for p in all {
            if view.get(p).is_none() {
                bail!("{p} swept before BIRD came back");
            }
        }
        Ok(())
    })?;

    bird.restart(Some(bird_config(&all[..2])?))?;
    // Until the sweep, every prefix stays; the sweep happens only once the new session
    // is up (it comes with BIRD's End-of-RIB) and takes exactly the missing prefix.
    let row = wait_some("the lost prefix swept", UP, || {
        let row = ours.peer(ip(BIRD))?;
        view.poll();
        let present: Vec<bool> = all.iter().map(|p| view.get(p).is_some()).collect();
        ensure!(
            present[0] && present[1],
            "a kept prefix went away: {present:?}"
        );
        if !present[2] {
            ensure!(
                row.state == State::Established,
                "swept while the session was {}: {row:?}",
                row.state
            );
            return Ok((Some(row), present));
        }
        Ok((None, present))
    })?;
    assert_eq!(row.prefixes_received, 2, "{row:?}");
    let row = ours.wait_peer(ip(BIRD), "nothing stale", UP, |r| r.prefixes_stale == 0)?;
    assert_eq!(row.prefixes_received, 2);
    let swept: Vec<_> = view.log.iter().filter(|c| c.is_withdrawal()).collect();
    assert_eq!(swept.len(), 1, "exactly one prefix swept: {swept:?}");
    assert_eq!(swept[0].prefix.to_string(), all[2]);
    Ok(())
}
