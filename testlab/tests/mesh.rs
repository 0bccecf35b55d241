//! All three daemon helpers end to end: BIRD (AS 65001), GoBGP (AS 65002) and FRR
//! (AS 65003) in an eBGP full mesh on one segment. Every session reaches Established,
//! and each daemon's best path to each other daemon's prefix points at the originator
//! with a one-AS sequence. Then a withdrawal from each propagates. Needs root.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use testlab::bird::{Bird, BirdConfig, BirdNeighbor};
use testlab::frr::{Frr, FrrConfig, FrrNeighbor};
use testlab::gobgp::{GoBgp, GoBgpConfig, GoBgpNeighbor};
use testlab::{AsSegment, Lab, Route, require_root, wait_until};

const T: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip literal")
}

/// The best path for `prefix` must come from `nh` with AS path exactly `[asn]`.
fn check_best(routes: &[Route], prefix: &str, nh: &str, asn: u32) -> anyhow::Result<()> {
    let r = routes
        .iter()
        .find(|r| r.prefix.to_string() == prefix && r.best)
        .ok_or_else(|| anyhow::anyhow!("no best path for {prefix} in {routes:?}"))?;
    anyhow::ensure!(
        r.next_hop == Some(ip(nh)),
        "{prefix}: next hop {:?}",
        r.next_hop
    );
    anyhow::ensure!(
        r.as_path == vec![AsSegment::Sequence(vec![asn])],
        "{prefix}: as path {:?}",
        r.as_path
    );
    Ok(())
}

fn absent(routes: &[Route], prefix: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !routes.iter().any(|r| r.prefix.to_string() == prefix),
        "{prefix} still present"
    );
    Ok(())
}

#[test]
fn bird_gobgp_frr_full_mesh() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::new("mesh")?;
    let a = lab.add_host("bird", "10.0.0.1/24")?;
    let b = lab.add_host("gobgp", "10.0.0.2/24")?;
    let c = lab.add_host("frr", "10.0.0.3/24")?;
    let start = Instant::now();

    let mut ca = BirdConfig::new("10.0.0.1".parse()?, 65001);
    ca.neighbors
        .push(BirdNeighbor::new("gobgp", ip("10.0.0.2"), 65002));
    ca.neighbors
        .push(BirdNeighbor::new("frr", ip("10.0.0.3"), 65003));
    ca.static_routes.push("10.1.0.0/26".parse()?);
    let mut bird = Bird::start(&a, ca.clone())?;

    let mut cb = GoBgpConfig::new("10.0.0.2".parse()?, 65002);
    cb.neighbors.push(GoBgpNeighbor::new(ip("10.0.0.1"), 65001));
    cb.neighbors.push(GoBgpNeighbor::new(ip("10.0.0.3"), 65003));
    cb.originate.push(("10.2.0.0/26".parse()?, None));
    let gobgp = GoBgp::start(&b, cb)?;

    let mut cc = FrrConfig::new("10.0.0.3".parse()?, 65003);
    cc.neighbors.push(FrrNeighbor::new(ip("10.0.0.1"), 65001));
    cc.neighbors.push(FrrNeighbor::new(ip("10.0.0.2"), 65002));
    cc.networks.push("10.3.0.0/26".parse()?);
    let frr = Frr::start(&c, cc)?;

    bird.wait_established("gobgp", T)?;
    bird.wait_established("frr", T)?;
    gobgp.wait_established(ip("10.0.0.3"), T)?;
    frr.wait_established(ip("10.0.0.1"), T)?;
    frr.wait_established(ip("10.0.0.2"), T)?;
    let established = start.elapsed();

    wait_until(T, POLL, || -> anyhow::Result<()> {
        let r = bird.routes("master4")?;
        check_best(&r, "10.2.0.0/26", "10.0.0.2", 65002)?;
        check_best(&r, "10.3.0.0/26", "10.0.0.3", 65003)?;
        let r = gobgp.routes("ipv4")?;
        check_best(&r, "10.1.0.0/26", "10.0.0.1", 65001)?;
        check_best(&r, "10.3.0.0/26", "10.0.0.3", 65003)?;
        let r = frr.routes("ipv4")?;
        check_best(&r, "10.1.0.0/26", "10.0.0.1", 65001)?;
        check_best(&r, "10.2.0.0/26", "10.0.0.2", 65002)?;
        Ok(())
    })?;
    let converged = start.elapsed();
    eprintln!("mesh: established after {established:?}, converged after {converged:?}");

    // Prefix counters: over each session a daemon receives two prefixes, the peer's own
    // and the third daemon's (relayed; eBGP passes it on).
    wait_until(T, POLL, || -> anyhow::Result<()> {
        let n = bird.protocol_state("gobgp")?;
        anyhow::ensure!(n.prefixes_received == Some(2), "bird from gobgp {n:?}");
        let n = gobgp.neighbor(ip("10.0.0.3"))?;
        anyhow::ensure!(n.prefixes_received == Some(2), "gobgp from frr {n:?}");
        let n = frr.neighbor(ip("10.0.0.1"))?;
        anyhow::ensure!(n.prefixes_received == Some(2), "frr from bird {n:?}");
        Ok(())
    })?;
    for (who, p) in [
        ("bird", bird.proc()),
        ("gobgpd", gobgp.proc()),
        ("bgpd", frr.bgpd()),
    ] {
        let peak = p.peak_rss_kib().unwrap_or(0);
        assert!(peak > 1000, "{who} peak RSS {peak} KiB");
        eprintln!("mesh: {who} peak RSS {peak} KiB");
    }

    // Neighbour views agree on the peer's AS.
    let n = gobgp.neighbor(ip("10.0.0.1"))?;
    assert_eq!(n.remote_as, Some(65001));
    let n = frr.neighbor(ip("10.0.0.2"))?;
    assert_eq!(n.remote_as, Some(65002));
    // GoBGP's adj-in from BIRD carries BIRD's prefix.
    let adj = gobgp.adj_in(ip("10.0.0.1"), "ipv4")?;
    assert!(
        adj.iter().any(|r| r.prefix.to_string() == "10.1.0.0/26"),
        "{adj:?}"
    );
    // FRR's detail view of BIRD's prefix via BIRD.
    let d = frr.route_detail("10.1.0.0/26".parse()?)?;
    assert!(
        d.iter()
            .any(|r| r.best && r.next_hop == Some(ip("10.0.0.1"))),
        "{d:?}"
    );

    // Withdrawals from each daemon reach the other two.
    ca.static_routes.clear();
    bird.reconfigure(ca)?;
    gobgp.del_route("10.2.0.0/26".parse()?)?;
    frr.del_network("10.3.0.0/26".parse()?)?;
    wait_until(T, POLL, || -> anyhow::Result<()> {
        let r = bird.routes("master4")?;
        absent(&r, "10.2.0.0/26")?;
        absent(&r, "10.3.0.0/26")?;
        let r = gobgp.routes("ipv4")?;
        absent(&r, "10.1.0.0/26")?;
        absent(&r, "10.3.0.0/26")?;
        let r = frr.routes("ipv4")?;
        absent(&r, "10.1.0.0/26")?;
        absent(&r, "10.2.0.0/26")?;
        Ok(())
    })?;
    Ok(())
}

/// A ring of wrong expectations: BIRD expects the wrong AS from GoBGP, GoBGP from FRR,
/// FRR from BIRD. Each detecting daemon shows the bad-peer-AS error it sent, and no
/// session comes up.
#[test]
fn wrong_peer_as_is_reported_by_all_three() -> anyhow::Result<()> {
    require_root();
    let t0 = Instant::now();
    let lab = Lab::new("badas")?;
    let a = lab.add_host("bird", "10.0.0.1/24")?;
    let b = lab.add_host("gobgp", "10.0.0.2/24")?;
    let c = lab.add_host("frr", "10.0.0.3/24")?;

    let mut ca = BirdConfig::new("10.0.0.1".parse()?, 65001);
    ca.neighbors
        .push(BirdNeighbor::new("gobgp", ip("10.0.0.2"), 65099));
    ca.neighbors
        .push(BirdNeighbor::new("frr", ip("10.0.0.3"), 65003));
    let bird = Bird::start(&a, ca)?;
    let mut cb = GoBgpConfig::new("10.0.0.2".parse()?, 65002);
    cb.neighbors.push(GoBgpNeighbor::new(ip("10.0.0.1"), 65001));
    cb.neighbors.push(GoBgpNeighbor::new(ip("10.0.0.3"), 65098));
    let gobgp = GoBgp::start(&b, cb)?;
    let mut cc = FrrConfig::new("10.0.0.3".parse()?, 65003);
    cc.neighbors.push(FrrNeighbor::new(ip("10.0.0.1"), 65097));
    cc.neighbors.push(FrrNeighbor::new(ip("10.0.0.2"), 65002));
    let frr = Frr::start(&c, cc)?;

    let bad_as = |n: &testlab::Neighbor| {
        let e = n.last_error.as_deref().unwrap_or("").to_ascii_lowercase();
        !n.is_established() && (e.contains("bad peer as") || e.contains("as number mismatch"))
    };
    wait_until(T, POLL, || -> anyhow::Result<()> {
        let n = bird.protocol_state("gobgp")?;
        anyhow::ensure!(bad_as(&n), "bird {n:?}");
        let n = gobgp.neighbor(ip("10.0.0.3"))?;
        anyhow::ensure!(bad_as(&n), "gobgp {n:?}");
        let n = frr.neighbor(ip("10.0.0.1"))?;
        anyhow::ensure!(bad_as(&n), "frr {n:?}");
        Ok(())
    })?;
    eprintln!("badas: errors shown after {:?}", t0.elapsed());
    let t1 = Instant::now();
    drop(lab);
    eprintln!("badas: lab teardown took {:?}", t1.elapsed());
    Ok(())
}

/// MD5 passwords and restarts through the GoBGP and FRR helpers: both peer with BIRD
/// using a password, and after a kill + restart (FRR) and a stop + restart (GoBGP) the
/// sessions and their originated prefixes come back.
#[test]
fn passwords_and_restarts_for_gobgp_and_frr() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::new("restart")?;
    let a = lab.add_host("bird", "10.0.0.1/24")?;
    let b = lab.add_host("gobgp", "10.0.0.2/24")?;
    let c = lab.add_host("frr", "10.0.0.3/24")?;

    let mut ca = BirdConfig::new("10.0.0.1".parse()?, 65001);
    for (name, addr, asn) in [("gobgp", "10.0.0.2", 65002), ("frr", "10.0.0.3", 65003)] {
        let mut n = BirdNeighbor::new(name, ip(addr), asn);
        n.password = Some(format!("pw-{name}"));
        ca.neighbors.push(n);
    }
    let bird = Bird::start(&a, ca)?;

    let mut cb = GoBgpConfig::new("10.0.0.2".parse()?, 65002);
    let mut n = GoBgpNeighbor::new(ip("10.0.0.1"), 65001);
    n.password = Some("pw-gobgp".into());
    cb.neighbors.push(n);
    cb.originate.push(("10.2.0.0/26".parse()?, None));
    let mut gobgp = GoBgp::start(&b, cb)?;

    let mut cc = FrrConfig::new("10.0.0.3".parse()?, 65003);
    let mut n = FrrNeighbor::new(ip("10.0.0.1"), 65001);
    n.password = Some("pw-frr".into());
    cc.neighbors.push(n);
    cc.networks.push("10.3.0.0/26".parse()?);
    let mut frr = Frr::start(&c, cc)?;

    let both_routes = || {
        wait_until(T, POLL, || -> anyhow::Result<()> {
            let r = bird.routes("master4")?;
            check_best(&r, "10.2.0.0/26", "10.0.0.2", 65002)?;
            check_best(&r, "10.3.0.0/26", "10.0.0.3", 65003)?;
            Ok(())
        })
    };
    both_routes()?;

    let old = frr.bgpd().pid();
    frr.kill();
    wait_until(T, POLL, || {
        let n = bird.protocol_state("frr")?;
        anyhow::ensure!(!n.is_established(), "still up after kill");
        Ok(())
    })?;
    frr.restart(None)?;
    assert_ne!(frr.bgpd().pid(), old);
    gobgp.stop();
    gobgp.restart(None)?;
    frr.wait_established(ip("10.0.0.1"), T)?;
    gobgp.wait_established(ip("10.0.0.1"), T)?;
    both_routes()?;
    Ok(())
}
