//! Interop with FRR (zebra + bgpd, read through vtysh) in network namespaces (root only):
//! eBGP and iBGP route exchange with the right attributes, withdrawals both ways, wrong
//! AS in both directions.

mod interop_util;

use std::net::IpAddr;

use anyhow::Result;
use interop_util::{Ours, UP, peer_config, speaker_config, wait_some};
use testlab::frr::{Frr, FrrConfig, FrrNeighbor};
use testlab::{AsSegment, Lab, routes_for};
use tortie_bgp::speaker::State;

const US: &str = "10.0.0.1";
const FRR: &str = "10.0.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}

fn lab(name: &str) -> Result<(Lab, testlab::Host, testlab::Host)> {
    let lab = Lab::new(name)?;
    let us = lab.add_host("us", "10.0.0.1/24")?;
    let peer = lab.add_host("frr", "10.0.0.2/24")?;
    Ok((lab, us, peer))
}

fn frr_config(asn: u32, expects_us_as: u32, networks: &[&str]) -> Result<FrrConfig> {
    let mut c = FrrConfig::new(FRR.parse()?, asn);
    c.neighbors.push(FrrNeighbor::new(ip(US), expects_us_as));
    for p in networks {
        c.networks.push(p.parse()?);
    }
    Ok(c)
}

fn frr_route(f: &Frr, prefix: &str) -> Result<(Option<testlab::Route>, usize)> {
    let routes = f.routes("ipv4")?;
    let r = routes_for(&routes, prefix).first().map(|r| (*r).clone());
    Ok((r, routes.len()))
}

#[test]
fn frr_ebgp_routes_both_ways() -> Result<()> {
    let (_lab, us, fh) = lab("bgpfrrebgp")?;
    let f = Frr::start(
        &fh,
        frr_config(64513, 64512, &["10.247.0.0/26", "10.247.1.0/26"])?,
    )?;
    let ours = Ours::start(&us, speaker_config(64512, US, Some(120))?)?;
    ours.add_peer(peer_config(FRR, 64513)?)?;
    let mut view = ours.routes()?;
    ours.originate("10.244.7.0/26")?;
    ours.wait_established(ip(FRR))?;
    f.wait_established(ip(US), UP)?;

    let r = wait_some("ours in FRR", UP, || frr_route(&f, "10.244.7.0/26"))?;
    assert_eq!(r.next_hop, Some(ip(US)));
    assert_eq!(r.as_path, vec![AsSegment::Sequence(vec![64512])]);

    let c = view.wait_for("10.247.0.0/26", UP, |_| true)?;
    let best = c.best().expect("a path");
    assert_eq!(best.next_hop, Some(ip(FRR)));
    assert_eq!(
        best.attrs.as_path,
        vec![tortie_bgp::msg::AsSegment::Sequence(vec![64513])]
    );
    view.wait_for("10.247.1.0/26", UP, |_| true)?;

    ours.withdraw("10.244.7.0/26")?;
    wait_some("ours withdrawn from FRR", UP, || {
        let (r, n) = frr_route(&f, "10.244.7.0/26")?;
        Ok((r.is_none().then_some(()), n))
    })?;
    f.del_network("10.247.0.0/26".parse()?)?;
    view.wait_gone("10.247.0.0/26", UP)?;
    assert!(view.get("10.247.1.0/26").is_some());
    Ok(())
}

#[test]
fn frr_ibgp_carries_local_pref() -> Result<()> {
    let (_lab, us, fh) = lab("bgpfrribgp")?;
    let f = Frr::start(&fh, frr_config(64512, 64512, &["10.247.2.0/26"])?)?;
    let ours = Ours::start(&us, speaker_config(64512, US, None)?)?;
    ours.add_peer(peer_config(FRR, 64512)?)?;
    let mut view = ours.routes()?;
    ours.originate("10.244.8.0/26")?;
    ours.wait_established(ip(FRR))?;

    let r = wait_some("ours in FRR", UP, || frr_route(&f, "10.244.8.0/26"))?;
    assert_eq!(r.next_hop, Some(ip(US)));
    assert!(r.as_path_flat().is_empty(), "{:?}", r.as_path);
    assert_eq!(r.local_pref, Some(100));
    let c = view.wait_for("10.247.2.0/26", UP, |_| true)?;
    let best = c.best().expect("a path");
    assert_eq!(best.next_hop, Some(ip(FRR)));
    assert_eq!(best.attrs.local_pref, Some(100));
    Ok(())
}

#[test]
fn frr_wrong_as_both_directions() -> Result<()> {
    let (_lab, us, fh) = lab("bgpfrrbadas")?;
    // FRR expects AS 64999 for us: it refuses our OPEN with Bad Peer AS.
    let f = Frr::start(&fh, frr_config(64513, 64999, &[])?)?;
    let ours = Ours::start(&us, speaker_config(64512, US, None)?)?;
    ours.add_peer(peer_config(FRR, 64513)?)?;
    let row = ours.wait_peer(ip(FRR), "FRR's NOTIFICATION", UP, |r| {
        r.last_error.as_deref() == Some("Received: Bad peer AS")
    })?;
    assert_ne!(row.state, State::Established);

    drop((ours, f));

    // The other way round: FRR is right, we expect the wrong AS; FRR shows our
    // NOTIFICATION.
    let (_lab2, us2, fh2) = lab("bgpfrrbadas2")?;
    let f = Frr::start(&fh2, frr_config(64513, 64512, &[])?)?;
    let ours = Ours::start(&us2, speaker_config(64512, US, None)?)?;
    // Passive, so the NOTIFICATION arrives on the connection FRR opened itself (FRR
    // keeps errors of connections it accepted on a shadow peer that status never shows).
    let mut p = peer_config(FRR, 64998)?;
    p.passive = true;
    ours.add_peer(p)?;
    ours.wait_peer(ip(FRR), "our NOTIFICATION", UP, |r| {
        r.last_error.as_deref() == Some("Sent: Bad peer AS")
    })?;
    let n = wait_some("FRR shows the error", UP, || {
        let n = f.neighbor(ip(US))?;
        let ok = n
            .last_error
            .as_deref()
            .is_some_and(|e| e.to_ascii_lowercase().contains("bad peer as"));
        Ok((ok.then_some(n.clone()), n))
    })?;
    assert!(!n.is_established());
    Ok(())
}
