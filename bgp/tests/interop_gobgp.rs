//! Interop with GoBGP (gobgpd + gobgp CLI) in network namespaces (root only): eBGP and
//! iBGP route exchange with the right attributes, withdrawals both ways, wrong AS in
//! both directions.

mod interop_util;

use std::net::IpAddr;

use anyhow::Result;
use interop_util::{Ours, UP, peer_config, speaker_config, wait_some};
use testlab::gobgp::{GoBgp, GoBgpConfig, GoBgpNeighbor};
use testlab::{AsSegment, Lab, routes_for};
use tortie_bgp::speaker::State;

const US: &str = "10.0.0.1";
const GOBGP: &str = "10.0.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}

fn lab(name: &str) -> Result<(Lab, testlab::Host, testlab::Host)> {
    let lab = Lab::new(name)?;
    let us = lab.add_host("us", "10.0.0.1/24")?;
    let peer = lab.add_host("gobgp", "10.0.0.2/24")?;
    Ok((lab, us, peer))
}

fn gobgp_config(asn: u32, expects_us_as: u32, originate: &[&str]) -> Result<GoBgpConfig> {
    let mut c = GoBgpConfig::new(GOBGP.parse()?, asn);
    c.neighbors.push(GoBgpNeighbor::new(ip(US), expects_us_as));
    for p in originate {
        c.originate.push((p.parse()?, None));
    }
    Ok(c)
}

fn gobgp_route(g: &GoBgp, prefix: &str) -> Result<(Option<testlab::Route>, usize)> {
    let routes = g.routes("ipv4")?;
    let r = routes_for(&routes, prefix)
        .into_iter()
        .find(|r| r.from.as_deref() == Some(US))
        .cloned();
    Ok((r, routes.len()))
}

#[test]
fn gobgp_ebgp_routes_both_ways() -> Result<()> {
    let (_lab, us, gh) = lab("bgpgoebgp")?;
    let g = GoBgp::start(
        &gh,
        gobgp_config(64513, 64512, &["10.246.0.0/26", "10.246.1.0/26"])?,
    )?;
    let ours = Ours::start(&us, speaker_config(64512, US, Some(120))?)?;
    ours.add_peer(peer_config(GOBGP, 64513)?)?;
    let mut view = ours.routes()?;
    ours.originate("10.244.5.0/26")?;
    ours.wait_established(ip(GOBGP))?;
    g.wait_established(ip(US), UP)?;

    let r = wait_some("ours in GoBGP", UP, || gobgp_route(&g, "10.244.5.0/26"))?;
    assert_eq!(r.next_hop, Some(ip(US)));
    assert_eq!(r.as_path, vec![AsSegment::Sequence(vec![64512])]);

    let c = view.wait_for("10.246.0.0/26", UP, |_| true)?;
    let best = c.best().expect("a path");
    assert_eq!(best.next_hop, Some(ip(GOBGP)));
    assert_eq!(
        best.attrs.as_path,
        vec![tortie_bgp::msg::AsSegment::Sequence(vec![64513])]
    );
    view.wait_for("10.246.1.0/26", UP, |_| true)?;

    ours.withdraw("10.244.5.0/26")?;
    wait_some("ours withdrawn from GoBGP", UP, || {
        let (r, n) = gobgp_route(&g, "10.244.5.0/26")?;
        Ok((r.is_none().then_some(()), n))
    })?;
    g.del_route("10.246.0.0/26".parse()?)?;
    view.wait_gone("10.246.0.0/26", UP)?;
    assert!(view.get("10.246.1.0/26").is_some());
    Ok(())
}

#[test]
fn gobgp_ibgp_carries_local_pref() -> Result<()> {
    let (_lab, us, gh) = lab("bgpgoibgp")?;
    let g = GoBgp::start(&gh, gobgp_config(64512, 64512, &["10.246.2.0/26"])?)?;
    let ours = Ours::start(&us, speaker_config(64512, US, None)?)?;
    ours.add_peer(peer_config(GOBGP, 64512)?)?;
    let mut view = ours.routes()?;
    ours.originate("10.244.6.0/26")?;
    ours.wait_established(ip(GOBGP))?;

    let r = wait_some("ours in GoBGP", UP, || gobgp_route(&g, "10.244.6.0/26"))?;
    assert_eq!(r.next_hop, Some(ip(US)));
    assert!(r.as_path_flat().is_empty(), "{:?}", r.as_path);
    assert_eq!(r.local_pref, Some(100));
    let c = view.wait_for("10.246.2.0/26", UP, |_| true)?;
    let best = c.best().expect("a path");
    assert_eq!(best.next_hop, Some(ip(GOBGP)));
    assert_eq!(best.attrs.local_pref, Some(100));
    Ok(())
}

#[test]
fn gobgp_wrong_as_both_directions() -> Result<()> {
    let (_lab, us, gh) = lab("bgpgobadas")?;
    // GoBGP expects AS 64999 for us: it refuses our OPEN with Bad Peer AS.
    let g = GoBgp::start(&gh, gobgp_config(64513, 64999, &[])?)?;
    let ours = Ours::start(&us, speaker_config(64512, US, None)?)?;
    ours.add_peer(peer_config(GOBGP, 64513)?)?;
    let row = ours.wait_peer(ip(GOBGP), "GoBGP's NOTIFICATION", UP, |r| {
        r.last_error.as_deref() == Some("Received: Bad peer AS")
    })?;
    assert_ne!(row.state, State::Established);
    let n = wait_some("GoBGP logs its NOTIFICATION", UP, || {
        let n = g.neighbor(ip(US))?;
        let ok = n
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("as number mismatch"));
        Ok((ok.then_some(n.clone()), n))
    })?;
    assert!(!n.is_established());
    drop(g);

    // And the other way round: GoBGP is right, we expect the wrong AS.
    let (_lab2, us2, gh2) = lab("bgpgobadas2")?;
    let _g2 = GoBgp::start(&gh2, gobgp_config(64513, 64512, &[])?)?;
    let ours2 = Ours::start(&us2, speaker_config(64512, US, None)?)?;
    ours2.add_peer(peer_config(GOBGP, 64998)?)?;
    let row = ours2.wait_peer(ip(GOBGP), "our NOTIFICATION", UP, |r| {
        r.last_error.as_deref() == Some("Sent: Bad peer AS")
    })?;
    assert_ne!(row.state, State::Established);
    Ok(())
}
