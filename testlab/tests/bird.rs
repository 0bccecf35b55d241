//! BIRD helper against real BIRD 2 daemons in a lab: eBGP and iBGP sessions come up,
//! originated prefixes arrive with the right next hop, AS path and local preference,
//! reconfigure withdraws, a wrong password keeps the session down, and a killed GR peer's
//! routes are kept as stale. Needs root.

use std::net::IpAddr;
use std::time::Duration;

use testlab::bird::{Bird, BirdConfig, BirdNeighbor};
use testlab::{AsSegment, BgpState, Lab, Route, holds_for, require_root, routes_for, wait_until};

const T: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(50);

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip literal")
}

fn wait_route(bird: &Bird, table: &str, prefix: &str) -> anyhow::Result<Route> {
    wait_until(T, POLL, || {
        let routes = bird.routes(table)?;
        routes_for(&routes, prefix)
            .first()
            .map(|r| (*r).clone())
            .ok_or_else(|| anyhow::anyhow!("{prefix} not in {table}: {routes:?}"))
    })
}

#[test]
fn ebgp_and_ibgp_between_two_birds() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::new("bird")?;
    let a = lab.add_host("a", "10.0.0.1/24")?;
    let b = lab.add_host("b", "10.0.0.2/24")?;
    let c = lab.add_host("c", "10.0.0.3/24")?;

    let mut ca = BirdConfig::new("10.0.0.1".parse()?, 65001);
    ca.neighbors
        .push(BirdNeighbor::new("to_b", ip("10.0.0.2"), 65002));
    ca.neighbors
        .push(BirdNeighbor::new("to_c", ip("10.0.0.3"), 65001));
    ca.static_routes.push("10.1.0.0/26".parse()?);
    ca.static_routes.push("fd10::/64".parse()?);
    let mut bird_a = Bird::start(&a, ca.clone())?;

    let mut cb = BirdConfig::new("10.0.0.2".parse()?, 65002);
    cb.neighbors
        .push(BirdNeighbor::new("to_a", ip("10.0.0.1"), 65001));
    cb.static_routes.push("10.2.0.0/26".parse()?);
    let bird_b = Bird::start(&b, cb)?;

    let mut cc = BirdConfig::new("10.0.0.3".parse()?, 65001);
    cc.neighbors
        .push(BirdNeighbor::new("to_a", ip("10.0.0.1"), 65001));
    cc.kernel_export = true;
    let bird_c = Bird::start(&c, cc)?;

    bird_a.wait_established("to_b", T)?;
    bird_a.wait_established("to_c", T)?;
    let n = bird_b.protocol_state("to_a")?;
    assert_eq!(n.state, BgpState::Established);
    assert_eq!(n.address, Some(ip("10.0.0.1")));
    assert_eq!(n.remote_as, Some(65001));
    // The persistent control connection reads the same state as birdc, and keeps working
    // for further commands on the same socket.
    let mut cli = bird_b.cli()?;
    assert_eq!(cli.protocol_state("to_a")?, n);
    assert!(cli.command("show status")?.contains("Router ID"));
    assert!(
        cli.command("show bogus-command").is_err(),
        "a syntax error is an error"
    );
    assert_eq!(cli.protocol_state("to_a")?.state, BgpState::Established);

    // eBGP: next hop a, AS path a sequence [65001].
    let r = wait_route(&bird_b, "master4", "10.1.0.0/26")?;
    assert_eq!(r.next_hop, Some(ip("10.0.0.1")));
    assert_eq!(r.as_path, vec![AsSegment::Sequence(vec![65001])]);
    assert_eq!(r.from.as_deref(), Some("to_a"));
    assert!(r.best);
    // iBGP: a passes b's route to c with b's next hop, AS path [65002], local pref 100.
    let r = wait_route(&bird_c, "master4", "10.2.0.0/26")?;
    assert_eq!(r.as_path, vec![AsSegment::Sequence(vec![65002])]);
    assert_eq!(r.local_pref, Some(100));
    assert_eq!(r.next_hop, Some(ip("10.0.0.2")));
    // a's own route on c: empty AS path.
    let r = wait_route(&bird_c, "master4", "10.1.0.0/26")?;
    assert!(r.as_path.is_empty(), "{r:?}");
    assert_eq!(r.next_hop, Some(ip("10.0.0.1")));

    // With kernel export, c installs the learned routes into its namespace.
    wait_until(T, POLL, || {
        let k = c.ip(&["route", "show", "proto", "bird"])?;
        anyhow::ensure!(k.contains("10.2.0.0/26 via 10.0.0.2"), "kernel: {k}");
        anyhow::ensure!(k.contains("10.1.0.0/26 via 10.0.0.1"), "kernel: {k}");
        Ok(())
    })?;
    assert!(
        b.ip(&["route", "show", "proto", "bird"])?.is_empty(),
        "b exports nothing"
    );

    // Withdraw through reconfigure.
    ca.static_routes.retain(|p| p.to_string() != "10.1.0.0/26");
    bird_a.reconfigure(ca)?;
    wait_until(T, POLL, || {
        let routes = bird_b.routes("master4")?;
        if routes_for(&routes, "10.1.0.0/26").is_empty() {
            Ok(())
        } else {
            Err(anyhow::anyhow!("still there: {routes:?}"))
        }
    })?;
    assert!(!bird_a.routes("master6")?.is_empty(), "v6 static stays");
    Ok(())
}

/// IPv6 unicast over an IPv4 session (the channel needs a v6 next hop address), and a
/// cut link takes the session down within the hold time and withdraws the routes.
#[test]
fn ipv6_over_ipv4_and_hold_timer_on_cut_link() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::new("birdv6")?;
    let a = lab.add_host("a", "10.0.0.1/24")?;
    let b = lab.add_host("b", "10.0.0.2/24")?;
    a.add_addr("eth0", "fd00::1/64")?;
    b.add_addr("eth0", "fd00::2/64")?;

    let mut na = BirdNeighbor::new("to_b", ip("10.0.0.2"), 65002);
    na.ipv6 = true;
    na.ipv6_extra = "next hop address fd00::1;".into();
    na.hold_time = Some(3);
    let mut ca = BirdConfig::new("10.0.0.1".parse()?, 65001);
    ca.neighbors.push(na);
    ca.static_routes.push("fd10::/64".parse()?);
    ca.static_routes.push("10.1.0.0/26".parse()?);
    let _bird_a = Bird::start(&a, ca)?;

    let mut nb = BirdNeighbor::new("to_a", ip("10.0.0.1"), 65001);
    nb.ipv6 = true;
    nb.ipv6_extra = "next hop address fd00::2;".into();
    nb.hold_time = Some(3);
    let mut cb = BirdConfig::new("10.0.0.2".parse()?, 65002);
    cb.neighbors.push(nb);
    let bird_b = Bird::start(&b, cb)?;

    let r = wait_route(&bird_b, "master6", "fd10::/64")?;
    assert_eq!(r.next_hop, Some(ip("fd00::1")));
    assert_eq!(r.as_path, vec![AsSegment::Sequence(vec![65001])]);
    wait_route(&bird_b, "master4", "10.1.0.0/26")?;

    let cut = std::time::Instant::now();
    lab.set_link(&a, false)?;
    wait_until(Duration::from_secs(8), POLL, || {
        let st = bird_b.protocol_state("to_a")?;
        let routes = bird_b.all_routes()?;
        anyhow::ensure!(!st.is_established(), "still up");
        anyhow::ensure!(routes.is_empty(), "not withdrawn: {routes:?}");
        anyhow::ensure!(
            st.last_error
                .as_deref()
                .is_some_and(|e| e.contains("Hold timer expired")),
            "{st:?}"
        );
        Ok(())
    })?;
    let down = cut.elapsed();
    assert!(
        down >= Duration::from_secs(2),
        "down after {down:?}: too early for a hold timer"
    );
    lab.set_link(&a, true)?;
    bird_b.wait_established("to_a", T)?;
    Ok(())
}

#[test]
fn wrong_password_stays_down_and_gr_keeps_stale_routes() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::new("birdgr")?;
    let a = lab.add_host("a", "10.0.0.1/24")?;
    let b = lab.add_host("b", "10.0.0.2/24")?;

    let mut na = BirdNeighbor::new("to_b", ip("10.0.0.2"), 65002);
    na.password = Some("right".into());
    na.graceful_restart = Some(60);
    let mut ca = BirdConfig::new("10.0.0.1".parse()?, 65001);
    ca.neighbors.push(na);
    let bird_a = Bird::start(&a, ca)?;

    let mut nb = BirdNeighbor::new("to_a", ip("10.0.0.1"), 65001);
    nb.password = Some("wrong".into());
    nb.graceful_restart = Some(60);
    let mut cb = BirdConfig::new("10.0.0.2".parse()?, 65002);
    cb.neighbors.push(nb.clone());
    cb.static_routes.push("10.2.0.0/26".parse()?);
    let mut bird_b = Bird::start(&b, cb.clone())?;

    // BIRD dials after 1 s and retries every second: 3 s gives it several tries.
    holds_for(Duration::from_secs(3), Duration::from_millis(200), || {
        let st = bird_a.protocol_state("to_b")?;
        anyhow::ensure!(!st.is_established(), "wrong password came up: {st:?}");
        Ok(())
    })?;

    nb.password = Some("right".into());
    cb.neighbors = vec![nb];
    bird_b.reconfigure(cb)?;
    bird_a.wait_established("to_b", T)?;
    let r = wait_route(&bird_a, "master4", "10.2.0.0/26")?;
    assert!(!r.stale);

    bird_b.kill();
    let r = wait_until(T, POLL, || {
        let st = bird_a.protocol_state("to_b")?;
        let routes = bird_a.routes("master4")?;
        match routes_for(&routes, "10.2.0.0/26").first() {
            Some(r) if r.stale && !st.is_established() => Ok((*r).clone()),
            other => Err(anyhow::anyhow!(
                "{st:?} {other:?}\n{}",
                bird_a.birdc("show route all").unwrap_or_default()
            )),
        }
    })?;
    assert_eq!(r.next_hop, Some(ip("10.0.0.2")));

    let fresh = || {
        wait_until(T, POLL, || {
            let routes = bird_a.routes("master4")?;
            match routes_for(&routes, "10.2.0.0/26").first() {
                Some(r) if !r.stale => Ok(()),
                other => Err(anyhow::anyhow!("{other:?}")),
            }
        })
    };
    bird_b.restart(None)?;
    bird_a.wait_established("to_b", T)?;
    fresh()?;

    // A planned restart (`birdc graceful restart`) also leaves the routes stale.
    bird_b.graceful_restart_shutdown()?;
    wait_until(T, POLL, || {
        let routes = bird_a.routes("master4")?;
        match routes_for(&routes, "10.2.0.0/26").first() {
            Some(r) if r.stale => Ok(()),
            other => Err(anyhow::anyhow!("{other:?}")),
        }
    })?;
    bird_b.restart(None)?;
    fresh()?;
    Ok(())
}
