//! Root-only: the reconciler against other hands on the kernel — a restart does not
//! flap routes (watched with `ip monitor route`) yet repairs one removed meanwhile; a
//! foreign route survives resyncs while an unwanted route of ours is removed; a route
//! deleted by hand comes back; a new cali* interface gets a grace period; a kernel
//! without `ipip` yields one clear error while everything else keeps working.

mod routes_support;

use anyhow::{Result, ensure};
use routes_support::*;
use std::time::Duration;
use testlab::Lab;
use tortie_felix::input::{EncapMode, Input, LearnedRoute, RoutePath};
use tortie_felix::route::{ReconcilerConfig, ReconcilerTask, spawn};

fn learned(prefix: &str, hops: &[&str]) -> Input {
    Input::RouteUpsert(LearnedRoute {
        prefix: prefix.parse().unwrap_or_else(|_| unreachable!()),
        paths: hops
            .iter()
            .map(|h| RoutePath {
                next_hop: h.parse().unwrap_or_else(|_| unreachable!()),
                node: None,
            })
            .collect(),
    })
}

async fn wait_resyncs(t: &ReconcilerTask, n: u64) -> Result<()> {
    let start = t.status.borrow().resyncs;
    eventually(Duration::from_secs(5), "resyncs", || {
        let s = t.status.borrow().clone();
        ensure!(s.resyncs >= start + n, "{s:?}");
        Ok(())
    })
    .await
}

struct OneNode {
    lab: Lab,
    node: TestNode,
    pods: Vec<TestPod>,
    inputs: Vec<Input>,
}

async fn one_node(tag: &str) -> Result<OneNode> {
    let lab = Lab::new(tag)?;
    let node = TestNode::add(&lab, "lan", "a", "192.168.50.1/24", "10.70.1.0/26")?;
    let p1 = TestPod::add(&lab, &node, "p1", "10.70.1.2").await?;
    let p2 = TestPod::add(&lab, &node, "p2", "10.70.1.3").await?;
    let mut inputs = vec![pool(EncapMode::Never, EncapMode::Never)];
    inputs.extend(cluster_inputs(&[&node], &[&p1, &p2]));
    inputs.push(learned("10.70.2.0/26", &["192.168.50.2"]));
    inputs.push(learned("10.70.3.0/26", &["192.168.50.3"]));
    inputs.push(learned("10.70.9.0/26", &["192.168.50.2", "192.168.50.3"]));
    Ok(OneNode {
        lab,
        node,
        pods: vec![p1, p2],
        inputs,
    })
}

const ALL: &[&str] = &[
    "blackhole 10.70.1.0/26 proto 80",
    "10.70.1.2 dev cali",
    "10.70.1.3 dev cali",
    "10.70.2.0/26 via 192.168.50.2 dev eth0 proto 80",
    "10.70.3.0/26 via 192.168.50.3 dev eth0 proto 80",
    "10.70.9.0/26 proto 80",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_does_not_flap_and_repairs() -> Result<()> {
    let t = one_node("frrs").await?;
    let first = t.node.start().await?;
    feed(&first, &t.inputs).await?;
    let r = wait_routes(&t.node, ALL).await?;
    ensure!(
        r.contains("nexthop via 192.168.50.2") && r.contains("nexthop via 192.168.50.3"),
        "no ECMP:\n{r}"
    );
    first.stop().await;

    // While felix is down someone removes one of its routes.
    t.node.host.ip(&["route", "del", "10.70.3.0/26"])?;
    let monitor = t.node.host.spawn("monitor", "ip", &["monitor", "route"])?;
    // A marker proves the monitor is listening before the new reconciler starts.
    eventually(Duration::from_secs(5), "monitor ready", || {
        t.node.host.ip(&[
            "route",
            "add",
            "10.99.99.0/24",
            "dev",
            "lo",
            "proto",
            "static",
        ])?;
        t.node.host.ip(&["route", "del", "10.99.99.0/24"])?;
        ensure!(monitor.log().contains("10.99.99.0/24"), "{}", monitor.log());
        Ok(())
    })
    .await?;

    let second = t.node.start().await?;
    feed(&second, &t.inputs).await?;
    wait_routes(&t.node, ALL).await?;
    // Let at least two full resyncs run too.
    wait_resyncs(&second, 2).await?;
    let log = monitor.log();
    // Route events only: not the marker, and not iproute2's own diagnostics (`ip monitor`
    // prints e.g. "Error: Peer netns reference is invalid." when namespaces of tests
    // running in parallel go away).
    let events: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("10.99.99.0/24") && !l.starts_with("Error:"))
        .collect();
    ensure!(
        events.iter().all(|l| !l.starts_with("Deleted")),
        "a route was deleted during the restart:\n{log}"
    );
    ensure!(
        events.iter().all(|l| l.contains("10.70.3.0/26")),
        "a route other than the repaired one changed:\n{log}"
    );
    ensure!(
        events.iter().any(|l| l.contains("10.70.3.0/26")),
        "the removed route was not restored:\n{log}"
    );
    drop(t.pods);
    drop(t.lab);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_route_survives_ours_unwanted_is_removed_hand_delete_repaired() -> Result<()> {
    let t = one_node("frfr").await?;
    let h = &t.node.host;
    h.ip(&[
        "route",
        "add",
        "10.99.0.0/24",
        "via",
        "192.168.50.2",
        "proto",
        "static",
    ])?;
    h.ip(&[
        "route",
        "add",
        "10.98.0.0/24",
        "via",
        "192.168.50.2",
        "proto",
        "80",
    ])?;
    // A foreign route to a destination we also want is left alone next to ours.
    let task = t.node.start().await?;
    // Before InSync nothing is deleted, even what nobody wants.
    for i in &t.inputs {
        task.input_tx.send(i.clone()).await?;
    }
    wait_routes(&t.node, ALL).await?;
    wait_resyncs(&task, 1).await?;
    ensure!(
        t.node.routes()?.contains("10.98.0.0/24"),
        "deleted before InSync"
    );
    task.input_tx.send(Input::InSync).await?;
    eventually(
        Duration::from_secs(5),
        "unwanted route of ours removed",
        || {
            let r = t.node.routes()?;
            ensure!(!r.contains("10.98.0.0/24"), "{r}");
            Ok(())
        },
    )
    .await?;
    wait_resyncs(&task, 2).await?;
    let r = t.node.routes()?;
    ensure!(
        r.contains("10.99.0.0/24 via 192.168.50.2 dev eth0 proto static"),
        "foreign route removed:\n{r}"
    );

    // Hand-deleted routes come back (route event, at the latest the next resync).
    let deletes_before = task.status.borrow().route_deletes;
    h.ip(&["route", "del", "10.70.2.0/26"])?;
    h.ip(&["route", "del", "blackhole", "10.70.1.0/26"])?;
    let started = std::time::Instant::now();
    wait_routes(&t.node, ALL).await?;
    ensure!(
        started.elapsed() < Duration::from_secs(2),
        "repair took {:?}",
        started.elapsed()
    );
    ensure!(task.status.borrow().route_deletes == deletes_before);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_cali_interface_gets_a_grace_period() -> Result<()> {
    let t = one_node("frgr").await?;
    let task = t.node.start().await?;
    feed(&task, &t.inputs).await?;
    wait_routes(&t.node, ALL).await?;
    // CNI plumbs a pod felix has not heard of yet.
    let added = std::time::Instant::now();
    let late = TestPod::add(&t.lab, &t.node, "late", "10.70.1.9").await?;
    let want = format!("10.70.1.9 dev {}", late.endpoint.iface);
    testlab::holds_for(
        Duration::from_millis(600),
        Duration::from_millis(50),
        || {
            let r = t.node.routes()?;
            ensure!(
                r.contains(&want),
                "route of a new interface removed within the grace period:\n{r}"
            );
            Ok(())
        },
    )?;
    eventually(
        Duration::from_secs(4),
        "route removed after the grace period",
        || {
            let r = t.node.routes()?;
            ensure!(!r.contains(&want), "{r}");
            Ok(())
        },
    )
    .await?;
    ensure!(added.elapsed() >= Duration::from_secs(1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_ipip_module_is_one_clear_error() -> Result<()> {
    let t = one_node("frip").await?;
    let mtu_file = t.lab.dir().join("pod-mtu");
    let mut cfg = ReconcilerConfig::new("a", t.node.netns());
    cfg.resync_interval = Duration::from_millis(500);
    cfg.mtu_file = Some(mtu_file.clone());
    let task = spawn(cfg).await?;
    let mut inputs = t.inputs.clone();
    inputs.push(pool(EncapMode::Always, EncapMode::Never));
    feed(&task, &inputs).await?;
    // Local routes still work.
    wait_routes(&t.node, &ALL[..3]).await?;
    let status = eventually(Duration::from_secs(5), "ipip error", || {
        let s = task.status.borrow().clone();
        ensure!(s.ipip_error.is_some(), "{s:?}");
        Ok(s)
    })
    .await?;
    let err = status.ipip_error.clone().unwrap_or_default();
    ensure!(err.contains("`ipip` module"), "{err}");
    ensure!(
        status.waiting_for_iface >= 3,
        "IPIP routes should wait for tunl0: {status:?}"
    );
    ensure!(
        status.last_error.is_none(),
        "IPIP trouble must not block the rest: {status:?}"
    );
    let mtu = std::fs::read_to_string(&mtu_file)?;
    ensure!(mtu.trim() == "1480", "pod MTU file: {mtu:?}");
    Ok(())
}
