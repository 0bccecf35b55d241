//! tortie-rr (the built binary, in its own lab host) reflecting between three real iBGP
//! clients — BIRD, FRR and GoBGP — each originating one /26: every client learns the
//! other two prefixes with the ORIGINAL next hop, ORIGINATOR_ID = the originating client
//! and CLUSTER_LIST = [cluster id]; a withdrawal at one client disappears at the others;
//! the status socket shows every client Established; SIGTERM ends the sessions with
//! Cease/Administrative Shutdown carrying the RFC 9003 message. Needs root.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use testlab::bird::{Bird, BirdConfig, BirdNeighbor};
use testlab::frr::{Frr, FrrConfig, FrrNeighbor};
use testlab::gobgp::{GoBgp, GoBgpConfig, GoBgpNeighbor};
use testlab::{Lab, Route, routes_for, wait_until};

const AS: u32 = 64512;
const RR: &str = "10.0.0.10";
const CLUSTER: &str = "10.0.0.99";
const RR_PORT: u16 = 1790;
const BIRD_IP: &str = "10.0.0.1";
const FRR_IP: &str = "10.0.0.2";
const GOBGP_IP: &str = "10.0.0.3";
const BIRD_NET: &str = "10.244.1.0/26";
const FRR_NET: &str = "10.244.2.0/26";
const GOBGP_NET: &str = "10.244.3.0/26";
const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("bad literal {s}: {e}"))
}

/// One reflected route as seen at a client: next hop, originator id, cluster list.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    next_hop: Option<IpAddr>,
    originator: Option<String>,
    cluster_list: Vec<String>,
}

fn want(origin: &str) -> Seen {
    Seen {
        next_hop: Some(ip(origin)),
        originator: Some(origin.to_string()),
        cluster_list: vec![CLUSTER.to_string()],
    }
}

fn only<'a>(rib: &'a [Route], prefix: &str) -> Result<&'a Route> {
    match routes_for(rib, prefix).as_slice() {
        [r] => Ok(r),
        other => bail!("{prefix}: expected one path, got {other:?}"),
    }
}

/// BIRD `show route all for P`: `BGP.originator_id: X`, `BGP.cluster_list: A B`.
fn bird_seen(bird: &Bird, prefix: &str) -> Result<Seen> {
    let route = only(&bird.routes("master4")?, prefix)?.clone();
    let text = bird.birdc(&format!("show route all for {prefix}"))?;
    let attr = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
    };
    Ok(Seen {
        next_hop: route.next_hop,
        originator: attr("BGP.originator_id:"),
        cluster_list: attr("BGP.cluster_list:")
            .map(|v| v.split_whitespace().map(String::from).collect())
            .unwrap_or_default(),
    })
}

/// FRR `show bgp ipv4 unicast P`: `Originator: X, Cluster list: A B`.
fn frr_seen(frr: &Frr, prefix: &str) -> Result<Seen> {
    let route = only(&frr.routes("ipv4")?, prefix)?.clone();
    let text = frr.vtysh(&[&format!("show bgp ipv4 unicast {prefix}")])?;
    let line = text
        .lines()
        .find(|l| l.contains("Originator:"))
        .ok_or_else(|| anyhow!("FRR shows no originator for {prefix}: {text}"))?;
    let after = |key: &str| {
        line.split_once(key)
            .map(|(_, v)| v.split(',').next().unwrap_or_default().trim().to_string())
    };
    Ok(Seen {
        next_hop: route.next_hop,
        originator: after("Originator:"),
        cluster_list: after("Cluster list:")
            .map(|v| v.split_whitespace().map(String::from).collect())
            .unwrap_or_default(),
    })
}

/// GoBGP `global rib -a ipv4 P -j`: attrs of type 9 (ORIGINATOR_ID) and 10
/// (CLUSTER_LIST).
fn gobgp_seen(gobgp: &GoBgp, prefix: &str) -> Result<Seen> {
    let route = only(&gobgp.routes("ipv4")?, prefix)?.clone();
    let text = gobgp.gobgp(&["global", "rib", "-a", "ipv4", prefix, "-j"])?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("gobgp json: {text}"))?;
    let mut attrs = Vec::new();
    collect_attrs(&json, &mut attrs);
    let of_type = |t: u64| attrs.iter().find(|a| a.get("type") == Some(&t.into()));
    Ok(Seen {
        next_hop: route.next_hop,
        originator: of_type(9).and_then(|a| a.get("value")?.as_str().map(String::from)),
        cluster_list: of_type(10)
            .and_then(|a| a.get("value")?.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
    })
}

fn collect_attrs(v: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(serde_json::Value::Array(a)) = m.get("attrs") {
                out.extend(a.iter().cloned());
            }
            m.values().for_each(|x| collect_attrs(x, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_attrs(x, out)),
        _ => {}
    }
}

fn eventually(what: &str, check: impl FnMut() -> Result<()>) -> Result<()> {
    wait_until(DEADLINE, POLL, check).map_err(|e| anyhow!("{what}: {e}"))
}

#[test]
fn reflects_between_bird_frr_and_gobgp() -> Result<()> {
    let lab = Lab::new("rr")?;
    let rr_host = lab.add_host("rr", &format!("{RR}/24"))?;
    let bird_host = lab.add_host("bird", &format!("{BIRD_IP}/24"))?;
    let frr_host = lab.add_host("frr", &format!("{FRR_IP}/24"))?;
    let gobgp_host = lab.add_host("gobgp", &format!("{GOBGP_IP}/24"))?;

    let status = lab.dir().join("rr-status.sock");
    let rr = rr_host.spawn(
        "tortie-rr",
        env!("CARGO_BIN_EXE_tortie-rr"),
        &[
            "--router-id",
            RR,
            "--cluster-id",
            CLUSTER,
            "--as",
            &AS.to_string(),
            "--listen",
            &format!("{RR}:{RR_PORT}"),
            "--client",
            BIRD_IP,
            "--client",
            FRR_IP,
            "--client",
            GOBGP_IP,
            "--connect-retry",
            "1",
            "--hold-time",
            "9",
            "--status-socket",
            &status.display().to_string(),
        ],
    )?;

    let mut n = BirdNeighbor::new("reflector", ip(RR), AS);
    n.port = Some(RR_PORT);
    let mut cfg = BirdConfig::new(BIRD_IP.parse()?, AS);
    cfg.neighbors.push(n);
    cfg.static_routes.push(BIRD_NET.parse()?);
    let bird = Bird::start(&bird_host, cfg)?;

    let mut n = FrrNeighbor::new(ip(RR), AS);
    n.port = Some(RR_PORT);
    let mut cfg = FrrConfig::new(FRR_IP.parse()?, AS);
    cfg.neighbors.push(n);
    cfg.networks.push(FRR_NET.parse()?);
    let frr = Frr::start(&frr_host, cfg)?;

    let mut n = GoBgpNeighbor::new(ip(RR), AS);
    n.port = Some(RR_PORT);
    let mut cfg = GoBgpConfig::new(GOBGP_IP.parse()?, AS);
    cfg.neighbors.push(n);
    cfg.originate.push((GOBGP_NET.parse()?, None));
    let gobgp = GoBgp::start(&gobgp_host, cfg)?;

    let rr_log = || rr.log_tail(40);
    bird.wait_established("reflector", DEADLINE)
        .with_context(rr_log)?;
    frr.wait_established(ip(RR), DEADLINE)
        .with_context(rr_log)?;
    gobgp
        .wait_established(ip(RR), DEADLINE)
        .with_context(rr_log)?;

    // Every client gets the other two prefixes, reflected unchanged.
    eventually("BIRD sees FRR's and GoBGP's prefixes", || {
        for (net, origin) in [(FRR_NET, FRR_IP), (GOBGP_NET, GOBGP_IP)] {
            let seen = bird_seen(&bird, net)?;
            if seen != want(origin) {
                bail!("{net} at BIRD: {seen:?}");
            }
        }
        Ok(())
    })
    .with_context(rr_log)?;
    eventually("FRR sees BIRD's and GoBGP's prefixes", || {
        for (net, origin) in [(BIRD_NET, BIRD_IP), (GOBGP_NET, GOBGP_IP)] {
            let seen = frr_seen(&frr, net)?;
            if seen != want(origin) {
                bail!("{net} at FRR: {seen:?}");
            }
        }
        Ok(())
    })
    .with_context(rr_log)?;
    eventually("GoBGP sees BIRD's and FRR's prefixes", || {
        for (net, origin) in [(BIRD_NET, BIRD_IP), (FRR_NET, FRR_IP)] {
            let seen = gobgp_seen(&gobgp, net)?;
            if seen != want(origin) {
                bail!("{net} at GoBGP: {seen:?}");
            }
        }
        Ok(())
    })
    .with_context(rr_log)?;

    // The status socket (tortiectl node status contract) shows three Established clients.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let addr = tortie_ctl::status::StatusAddr::Unix(status.clone());
    let peers = rt.block_on(tortie_ctl::status::fetch(&addr))?;
    let mut rows: Vec<(String, String)> = peers
        .iter()
        .map(|p| (p.status.name.clone(), p.status.info.clone()))
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            ("RRClient_10_0_0_1".to_string(), "Established".to_string()),
            ("RRClient_10_0_0_2".to_string(), "Established".to_string()),
            ("RRClient_10_0_0_3".to_string(), "Established".to_string()),
        ]
    );

    // A withdrawal at FRR disappears at BIRD and GoBGP.
    frr.del_network(FRR_NET.parse()?)?;
    eventually("FRR's withdrawal reaches BIRD and GoBGP", || {
        let at_bird = bird.routes("master4")?;
        let at_gobgp = gobgp.routes("ipv4")?;
        if !routes_for(&at_bird, FRR_NET).is_empty() || !routes_for(&at_gobgp, FRR_NET).is_empty() {
            bail!("still there: bird {at_bird:?} gobgp {at_gobgp:?}");
        }
        Ok(())
    })
    .with_context(rr_log)?;
    // ... while the other reflected routes stay.
    assert_eq!(bird_seen(&bird, GOBGP_NET)?, want(GOBGP_IP));
    assert_eq!(gobgp_seen(&gobgp, BIRD_NET)?, want(BIRD_IP));

    // SIGTERM: a clean exit and an Administrative Shutdown with our message at the peers.
    let exit = rr.stop();
    assert!(
        exit.is_some_and(|s| s.success()),
        "tortie-rr exit {exit:?}: {}",
        rr.log_tail(20)
    );
    eventually("BIRD saw Administrative Shutdown", || {
        let n = bird.protocol_state("reflector")?;
        let err = n.last_error.clone().unwrap_or_default();
        if n.is_established() || !err.contains("Administrative shutdown") {
            bail!("bird rr: {n:?}");
        }
        Ok(())
    })?;
    eventually("FRR saw Administrative Shutdown", || {
        let n = frr.neighbor(ip(RR))?;
        let log = frr.bgpd().log();
        let err = n.last_error.clone().unwrap_or_default();
        if n.is_established()
            || !(err.contains("Administrative") || log.contains(tortie_rr::SHUTDOWN_MESSAGE))
        {
            bail!("frr: {n:?}; log: {}", frr.bgpd().log_tail(10));
        }
        Ok(())
    })?;
    assert!(!status.exists(), "status socket removed on exit");
    Ok(())
}

/// Two reflectors with the same cluster id, peering with each other as non-clients, and
/// two clients (BIRD, GoBGP) peering with both: each client gets the other's prefix once
/// per reflector, every copy with CLUSTER_LIST = [cluster id] exactly (never reflected
/// twice), and a withdrawal leaves nothing behind (no route kept alive by a loop).
#[test]
fn redundant_reflectors_with_one_cluster_id_do_not_loop() -> Result<()> {
    const RR2: &str = "10.0.0.11";
    let lab = Lab::new("rr2")?;
    let h1 = lab.add_host("rr1", &format!("{RR}/24"))?;
    let h2 = lab.add_host("rr2", &format!("{RR2}/24"))?;
    let bird_host = lab.add_host("bird", &format!("{BIRD_IP}/24"))?;
    let gobgp_host = lab.add_host("gobgp", &format!("{GOBGP_IP}/24"))?;
    let mut rrs = Vec::new();
    for (host, me, other) in [(&h1, RR, RR2), (&h2, RR2, RR)] {
        let status = lab.dir().join(format!("status-{me}.sock"));
        rrs.push(host.spawn(
            "tortie-rr",
            env!("CARGO_BIN_EXE_tortie-rr"),
            &[
                "--router-id",
                me,
                "--cluster-id",
                CLUSTER,
                "--listen",
                &format!("{me}:{RR_PORT}"),
                "--client",
                BIRD_IP,
                "--client",
                GOBGP_IP,
                "--peer",
                &format!("{other}:{RR_PORT}"),
                "--connect-retry",
                "1",
                "--hold-time",
                "9",
                "--status-socket",
                &status.display().to_string(),
            ],
        )?);
    }
    let mut cfg = BirdConfig::new(BIRD_IP.parse()?, AS);
    for (name, addr) in [("reflector1", RR), ("reflector2", RR2)] {
        let mut n = BirdNeighbor::new(name, ip(addr), AS);
        n.port = Some(RR_PORT);
        cfg.neighbors.push(n);
    }
    cfg.static_routes.push(BIRD_NET.parse()?);
    let bird = Bird::start(&bird_host, cfg)?;
    let mut cfg = GoBgpConfig::new(GOBGP_IP.parse()?, AS);
    for addr in [RR, RR2] {
        let mut n = GoBgpNeighbor::new(ip(addr), AS);
        n.port = Some(RR_PORT);
        cfg.neighbors.push(n);
    }
    cfg.originate.push((GOBGP_NET.parse()?, None));
    let gobgp = GoBgp::start(&gobgp_host, cfg)?;
    let logs = || format!("rr1: {}\nrr2: {}", rrs[0].log_tail(20), rrs[1].log_tail(20));

    for name in ["reflector1", "reflector2"] {
        bird.wait_established(name, DEADLINE).with_context(logs)?;
    }
    for addr in [RR, RR2] {
        gobgp
            .wait_established(ip(addr), DEADLINE)
            .with_context(logs)?;
    }
    eventually("BIRD has GoBGP's prefix via both reflectors", || {
        let text = bird.birdc(&format!("show route all for {GOBGP_NET}"))?;
        let rib = bird.routes("master4")?;
        let paths = routes_for(&rib, GOBGP_NET);
        let clusters: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("BGP.cluster_list:"))
            .map(str::trim)
            .collect();
        let origins: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("BGP.originator_id:"))
            .map(str::trim)
            .collect();
        if paths.len() != 2
            || paths.iter().any(|p| p.next_hop != Some(ip(GOBGP_IP)))
            || clusters != [CLUSTER, CLUSTER]
            || origins != [GOBGP_IP, GOBGP_IP]
        {
            bail!("{paths:?}\n{text}");
        }
        Ok(())
    })
    .with_context(logs)?;
    eventually("GoBGP has BIRD's prefix via both reflectors", || {
        let rib = gobgp.routes("ipv4")?;
        let paths = routes_for(&rib, BIRD_NET);
        if paths.len() != 2 || paths.iter().any(|p| p.next_hop != Some(ip(BIRD_IP))) {
            bail!("{paths:?}");
        }
        Ok(())
    })
    .with_context(logs)?;
    // The reflectors' session to each other is up (so the absence of doubled cluster
    // lists above is loop prevention, not a missing session).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let addr = tortie_ctl::status::StatusAddr::Unix(lab.dir().join(format!("status-{RR}.sock")));
    eventually("rr1 shows rr2 Established", || {
        let peers = rt.block_on(tortie_ctl::status::fetch(&addr))?;
        let peer = peers
            .iter()
            .find(|p| p.status.name == "RRPeer_10_0_0_11")
            .ok_or_else(|| anyhow!("no RR peer row: {peers:?}"))?;
        if peer.status.info != "Established" {
            bail!("{peer:?}");
        }
        Ok(())
    })
    .with_context(logs)?;

    gobgp.del_route(GOBGP_NET.parse()?)?;
    eventually("GoBGP's withdrawal empties BIRD", || {
        let rib = bird.routes("master4")?;
        if !routes_for(&rib, GOBGP_NET).is_empty() {
            bail!("still there: {rib:?}");
        }
        Ok(())
    })
    .with_context(logs)?;
    Ok(())
}
