//! The `peer` example against BIRD 2 in network namespaces (root only): it reaches
//! Established, its `--originate` prefix lands in BIRD with our AS, it prints the route
//! it learns from BIRD, and SIGINT makes it send Cease/Administrative Shutdown with its
//! RFC 9003 message, which BIRD shows.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use testlab::bird::{Bird, BirdConfig, BirdNeighbor};
use testlab::{AsSegment, Lab, routes_for, wait_until};

const UP: Duration = Duration::from_secs(15);

/// `target/<profile>/examples/peer`, built by `cargo test` next to this test binary.
fn example_path() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test binary has no target dir")?;
    let p = dir.join("examples").join("peer");
    if !p.exists() {
        bail!(
            "{} is missing: a plain `cargo test -p tortie-bgp` (or `cargo build -p tortie-bgp --examples`) builds it",
            p.display()
        );
    }
    Ok(p)
}

#[test]
fn peer_example_against_bird() -> Result<()> {
    let example = example_path()?;
    let lab = Lab::new("bgpexample")?;
    let us = lab.add_host("us", "10.0.0.1/24")?;
    let bh = lab.add_host("bird", "10.0.0.2/24")?;
    let mut bc = BirdConfig::new("10.0.0.2".parse()?, 64513);
    bc.neighbors
        .push(BirdNeighbor::new("tortie", "10.0.0.1".parse()?, 64512));
    bc.static_routes = vec!["10.245.9.0/26".parse()?];
    let bird = Bird::start(&bh, bc)?;

    let args = [
        "--local-as",
        "64512",
        "--router-id",
        "10.0.0.1",
        "--peer",
        "10.0.0.2",
        "--peer-as",
        "64513",
        "--originate",
        "10.244.9.0/26",
    ];
    let proc = us.spawn("peer-example", &example.to_string_lossy(), &args)?;
    bird.wait_established("tortie", UP)?;
    let r = wait_until(UP, Duration::from_millis(50), || {
        let routes = bird.routes("master4")?;
        routes_for(&routes, "10.244.9.0/26")
            .first()
            .map(|r| (*r).clone())
            .with_context(|| format!("not in BIRD yet: {routes:?}"))
    })?;
    let ours: IpAddr = "10.0.0.1".parse()?;
    assert_eq!(r.next_hop, Some(ours));
    assert_eq!(r.as_path, vec![AsSegment::Sequence(vec![64512])]);
    wait_until(UP, Duration::from_millis(50), || {
        let log = proc.log();
        let ok = log.contains("-> Established (Established)")
            && log.contains("route + 10.245.9.0/26 via 10.0.0.2 as-path [64513]");
        if ok {
            Ok(())
        } else {
            bail!("example output so far:\n{log}")
        }
    })?;

    proc.signal(nix::sys::signal::Signal::SIGINT)?;
    let status = wait_until(UP, Duration::from_millis(50), || match proc.try_wait()? {
        Some(st) => Ok(st),
        None => bail!("example still running"),
    })?;
    assert!(status.success(), "example exited with {status}");
    // BIRD logs the NOTIFICATION with its RFC 9003 text (its status line is soon
    // overwritten by reconnect attempts to the stopped example).
    wait_until(UP, Duration::from_millis(50), || {
        let log = bird.proc().log();
        if log.contains("Administrative shutdown") && log.contains("example stopped") {
            Ok(())
        } else {
            bail!("BIRD log lacks the shutdown:\n{}", bird.proc().log_tail(20))
        }
    })?;
    Ok(())
}
