//! The health listener of two tortie-node agents on a real etcd, each on its own
//! namespace's 127.0.0.1:9099 and asked from inside that namespace: readiness is 503
//! naming the down BGP peer while the mesh is not up (and again after the peer's agent
//! is killed), 200 once it is; liveness stays 200 throughout; the metrics show the peer
//! Established and received/advertised prefix counts equal to the kernel's routes.
//! Needs root (panics otherwise).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use common::{Ds, Node};
use testlab::etcd::Etcd;
use testlab::{Lab, wait_until};

const HEALTH: &str = "127.0.0.1:9099";

/// The value of one sample line (`name{labels} value`) of a metrics text.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Waits until `GET path` answers `code` with exactly `body`.
fn wait_answer(n: &Node, path: &str, code: u16, body: &str, secs: u64) -> Result<()> {
    let addr: SocketAddr = HEALTH.parse()?;
    wait_until(
        Duration::from_secs(secs),
        Duration::from_millis(100),
        || {
            let got = n.http_get(addr, path)?;
            if got == (code, body.to_string()) {
                Ok(())
            } else {
                Err(anyhow!("{} {path}: {got:?}, want {code} {body:?}", n.name))
            }
        },
    )?;
    Ok(())
}

#[test]
fn readiness_follows_the_mesh_and_metrics_match_the_kernel() -> Result<()> {
    let lab = Lab::new("health")?;
    let etcd_host = lab.add_host("etcd", "10.0.0.100/24")?;
    let etcd = Etcd::start_in(&etcd_host, "10.0.0.100".parse()?)?;
    let ds = Ds::Etcd(etcd.endpoint());
    let n1 = Node::add(&lab, 1)?;
    let n2 = Node::add(&lab, 2)?;
    let env = [
        ("TORTIE_HEALTH_ADDR", HEALTH),
        ("TORTIE_IN_SYNC_BOUND_SECS", "2"),
    ];
    let addr: SocketAddr = HEALTH.parse()?;

    // n2 registers (and makes the default pool), then dies: n1 will have one mesh peer
    // that never comes up.
    let a2 = n2.start_with(&ds, "1", &env)?;
    wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        let out = etcd.etcdctl(&["get", "--prefix", "--keys-only", "/tortie"])?;
        if out
            .lines()
            .any(|l| l.contains("tortienode") && l.ends_with("n2"))
        {
            Ok(())
        } else {
            Err(anyhow!("n2 not registered:\n{out}"))
        }
    })
    .with_context(|| a2.log_tail(20))?;
    a2.kill();

    let a1 = n1.start_with(&ds, "1", &env)?;
    // Felix and policy get in sync (the bound runs out), BGP stays down: one reason.
    wait_answer(
        &n1,
        "/readiness",
        503,
        "bgp: no peer Established (1 configured)\n",
        15,
    )
    .with_context(|| a1.log_tail(30))?;
    assert_eq!(n1.http_get(addr, "/liveness")?, (200, "ok\n".into()));
    let m = n1.http_get(addr, "/metrics")?.1;
    assert_eq!(sample(&m, "tortie_ready"), Some(0), "{m}");
    assert_eq!(
        sample(&m, r#"tortie_bgp_peers{state="Established"}"#),
        Some(0),
        "{m}"
    );

    // A pod on each node: each advertises one block to the other.
    let (_p1, ip1) = n1.add_pod(&lab, &ds, "default", "p1")?;
    let (_p2, ip2) = n2.add_pod(&lab, &ds, "default", "p2")?;
    let a2 = n2.start_with(&ds, "2", &env)?;
    for n in [&n1, &n2] {
        wait_answer(n, "/readiness", 200, "ok\n", 20)
            .with_context(|| format!("{}\n{}", a1.log_tail(20), a2.log_tail(20)))?;
        assert_eq!(n.http_get(addr, "/liveness")?, (200, "ok\n".into()));
    }

    // Metrics agree with the kernel: as many prefixes received from the peer as routes
    // via it (the peer's block), and our own block advertised.
    for (n, peer, theirs) in [(&n1, "10.0.0.2", ip2), (&n2, "10.0.0.1", ip1)] {
        let block = common::block_of(theirs);
        let m = wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
            let routes = n.routes();
            let via = routes
                .lines()
                .filter(|l| l.contains(&format!("via {peer} ")))
                .count();
            let m = n.http_get(addr, "/metrics")?.1;
            let received = sample(
                &m,
                &format!(r#"tortie_bgp_prefixes_received{{peer="{peer}"}}"#),
            );
            if routes.contains(&block) && received == Some(via as u64) {
                Ok(m)
            } else {
                Err(anyhow!(
                    "{}: received {received:?} vs {via} routes via {peer}:\n{routes}\n{m}",
                    n.name
                ))
            }
        })?;
        let get = |series: &str| sample(&m, series);
        assert_eq!(
            get(&format!(r#"tortie_bgp_prefixes_received{{peer="{peer}"}}"#)),
            Some(1),
            "{m}"
        );
        assert_eq!(
            get(&format!(
                r#"tortie_bgp_prefixes_advertised{{peer="{peer}"}}"#
            )),
            Some(1),
            "{m}"
        );
        assert_eq!(
            get(r#"tortie_bgp_peers{state="Established"}"#),
            Some(1),
            "{m}"
        );
        assert_eq!(get(r#"tortie_bgp_peers{state="Active"}"#), Some(0), "{m}");
        assert_eq!(get("tortie_ready"), Some(1), "{m}");
        assert_eq!(get("tortie_live"), Some(1), "{m}");
        assert_eq!(get("tortie_felix_in_sync"), Some(1), "{m}");
        assert_eq!(get("tortie_policy_in_sync"), Some(1), "{m}");
        assert_eq!(get("tortie_policy_errors_total"), Some(0), "{m}");
        assert!(
            get("tortie_felix_route_writes_total").unwrap_or(0) >= 2,
            "{m}"
        );
        assert!(get("tortie_policy_programs_total").unwrap_or(0) >= 1, "{m}");
        assert!(m.contains("\ntortie_build_info{version=\""), "{m}");
    }

    // The peer's agent dies: n1 is alive but not ready, naming the BGP check.
    a2.kill();
    wait_answer(
        &n1,
        "/readiness",
        503,
        "bgp: no peer Established (1 configured)\n",
        10,
    )
    .with_context(|| a1.log_tail(20))?;
    assert_eq!(n1.http_get(addr, "/liveness")?, (200, "ok\n".into()));
    assert_eq!(n1.http_get(addr, "/nope")?.0, 404);
    Ok(())
}
