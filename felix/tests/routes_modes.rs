//! Root-only: pod-to-pod traffic across "nodes" (namespaces on bridges) with routes
//! programmed by felix's reconciler, in no-encap, VXLAN Always and VXLAN CrossSubnet
//! modes, and through a fabric that drops pod addresses.

mod routes_support;

use anyhow::{Result, ensure};
use routes_support::*;
use std::time::Duration;
use testlab::Lab;
use tortie_felix::input::{EncapMode, Input};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_encap_two_nodes_same_subnet() -> Result<()> {
    let lab = Lab::new("frne")?;
    let a = TestNode::add(&lab, "lan", "a", "192.168.50.1/24", "10.70.1.0/26")?;
    let b = TestNode::add(&lab, "lan", "b", "192.168.50.2/24", "10.70.2.0/26")?;
    let pa = TestPod::add(&lab, &a, "pa", "10.70.1.2").await?;
    let pb = TestPod::add(&lab, &b, "pb", "10.70.2.2").await?;
    let nodes = [&a, &b];
    let mut tasks = Vec::new();
    for n in nodes {
        let t = n.start().await?;
        let mut inputs = vec![pool(EncapMode::Never, EncapMode::Never)];
        inputs.extend(cluster_inputs(&nodes, &[&pa, &pb]));
        inputs.extend(learned_inputs(n, &nodes, |o| o.ip()));
        feed(&t, &inputs).await?;
        tasks.push(t);
    }
    let r = wait_routes(
        &a,
        &[
            "10.70.2.0/26 via 192.168.50.2 dev eth0 proto 80",
            "blackhole 10.70.1.0/26 proto 80",
        ],
    )
    .await?;
    ensure!(
        r.contains(&format!(
            "10.70.1.2 dev {} proto 80 scope link",
            pa.endpoint.iface
        )),
        "{r}"
    );
    wait_routes(&b, &["10.70.1.0/26 via 192.168.50.1 dev eth0 proto 80"]).await?;
    ensure!(pa.ping(pb.ip), "pod a cannot reach pod b");
    ensure!(pb.ping(pa.ip), "pod b cannot reach pod a");
    // The pod MTU of no-encap is the uplink MTU.
    ensure!(
        tasks[0].status.borrow().pod_mtu == 1500,
        "{:?}",
        *tasks[0].status.borrow()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_always_two_nodes() -> Result<()> {
    let lab = Lab::new("frvx")?;
    let a = TestNode::add(&lab, "lan", "a", "192.168.50.1/24", "10.70.1.0/26")?;
    let b = TestNode::add(&lab, "lan", "b", "192.168.50.2/24", "10.70.2.0/26")?;
    let pa = TestPod::add(&lab, &a, "pa", "10.70.1.2").await?;
    let pb = TestPod::add(&lab, &b, "pb", "10.70.2.2").await?;
    let nodes = [&a, &b];
    let mut tasks = Vec::new();
    for n in nodes {
        let t = n.start().await?;
        let mut inputs = vec![pool(EncapMode::Never, EncapMode::Always)];
        inputs.extend(cluster_inputs(&nodes, &[&pa, &pb]));
        feed(&t, &inputs).await?;
        tasks.push(t);
    }
    wait_routes(
        &a,
        &["10.70.2.0/26 via 10.70.2.1 dev vxlan.calico proto 80 onlink"],
    )
    .await?;
    wait_routes(
        &b,
        &["10.70.1.0/26 via 10.70.1.1 dev vxlan.calico proto 80 onlink"],
    )
    .await?;
    let link = a.host.ip(&["-d", "link", "show", "vxlan.calico"])?;
    ensure!(
        link.contains("vxlan id 4096") && link.contains("dstport 4789"),
        "{link}"
    );
    ensure!(link.contains("mtu 1450"), "{link}");
    let neigh = a.host.ip(&["neigh", "show", "dev", "vxlan.calico"])?;
    ensure!(
        neigh.contains("10.70.2.1 lladdr") && neigh.contains("PERMANENT"),
        "{neigh}"
    );
    let fdb = a
        .host
        .exec("bridge", &["fdb", "show", "dev", "vxlan.calico"])?;
    let fdb = String::from_utf8_lossy(&fdb.stdout).to_string();
    ensure!(
        fdb.contains("dst 192.168.50.2") && fdb.contains("permanent"),
        "{fdb}"
    );
    ensure!(pa.ping(pb.ip), "pod a cannot reach pod b over VXLAN");
    ensure!(pb.ping(pa.ip), "pod b cannot reach pod a over VXLAN");
    ensure!(tasks[0].status.borrow().pod_mtu == 1450);

    // Node b leaves: its route, ARP and FDB entries go.
    let b_gone = || -> Result<()> {
        let r = a.routes()?;
        let n = a.host.ip(&["neigh", "show", "dev", "vxlan.calico"])?;
        let f = a
            .host
            .exec("bridge", &["fdb", "show", "dev", "vxlan.calico"])?;
        let f = String::from_utf8_lossy(&f.stdout).to_string();
        ensure!(
            !r.contains("10.70.2.0/26") && !n.contains("10.70.2.1") && !f.contains("192.168.50.2"),
            "{r}\n{n}\n{f}"
        );
        Ok(())
    };
    tasks[0]
        .input_tx
        .send(Input::NodeRemove { name: "b".into() })
        .await?;
    eventually(Duration::from_secs(5), "node b's state removed", b_gone).await?;

    // b comes back, then leaves while a's felix is down: the restarted felix removes
    // b's stale entries once in sync.
    tasks[0].input_tx.send(b.input()).await?;
    wait_routes(&a, &["10.70.2.0/26 via 10.70.2.1 dev vxlan.calico"]).await?;
    eventually(Duration::from_secs(5), "b's ARP entry back", || {
        let n = a.host.ip(&["neigh", "show", "dev", "vxlan.calico"])?;
        ensure!(n.contains("10.70.2.1"), "{n}");
        Ok(())
    })
    .await?;
    let first = tasks.remove(0);
    first.stop().await;
    let restarted = a.start().await?;
    let mut inputs = vec![pool(EncapMode::Never, EncapMode::Always)];
    inputs.extend(cluster_inputs(&[&a], &[&pa]));
    feed(&restarted, &inputs).await?;
    eventually(
        Duration::from_secs(5),
        "b's stale state removed after restart",
        || b_gone().map_err(|e| e.context(format!("{:?}", *restarted.status.borrow()))),
    )
    .await?;
    // Converged: only the timer resyncs (every 500 ms here), no event storm of our own
    // making (re-adding an existing address, say, emits an event every time).
    let before = restarted.status.borrow().resyncs;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = restarted.status.borrow().resyncs;
    ensure!(after - before <= 3, "{} resyncs in 1 s", after - before);
    Ok(())
}

fn vxlan_tx_packets(node: &TestNode) -> Result<u64> {
    let out = node.host.exec("iptables", &["-w", "-nvxL", "OUTPUT"])?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text
        .lines()
        .find(|l| l.contains("udp dpt:4789"))
        .ok_or_else(|| anyhow::anyhow!("no counter rule in {text}"))?;
    Ok(line
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_crosssubnet_three_nodes_two_subnets() -> Result<()> {
    let lab = Lab::new("frcs")?;
    lab.add_segment("far")?;
    let _router = lab.add_router(
        "r",
        &[("lan", "192.168.50.254/24"), ("far", "192.168.60.254/24")],
    )?;
    let a = TestNode::add(&lab, "lan", "a", "192.168.50.1/24", "10.70.1.0/26")?;
    let b = TestNode::add(&lab, "lan", "b", "192.168.50.2/24", "10.70.2.0/26")?;
    let c = TestNode::add(&lab, "far", "c", "192.168.60.3/24", "10.70.3.0/26")?;
    for n in [&a, &b] {
        n.host
            .ip(&["route", "add", "192.168.60.0/24", "via", "192.168.50.254"])?;
    }
    c.host
        .ip(&["route", "add", "192.168.50.0/24", "via", "192.168.60.254"])?;
    let pa = TestPod::add(&lab, &a, "pa", "10.70.1.2").await?;
    let pb = TestPod::add(&lab, &b, "pb", "10.70.2.2").await?;
    let pc = TestPod::add(&lab, &c, "pc", "10.70.3.2").await?;
    let nodes = [&a, &b, &c];
    let mut tasks = Vec::new();
    for n in nodes {
        let t = n.start().await?;
        let mut inputs = vec![pool(EncapMode::Never, EncapMode::CrossSubnet)];
        inputs.extend(cluster_inputs(&nodes, &[&pa, &pb, &pc]));
        feed(&t, &inputs).await?;
        tasks.push(t);
    }
    let r = wait_routes(
        &a,
        &[
            "10.70.2.0/26 via 192.168.50.2 dev eth0 proto 80",
            "10.70.3.0/26 via 10.70.3.1 dev vxlan.calico proto 80 onlink",
        ],
    )
    .await?;
    ensure!(
        !r.contains("10.70.2.0/26 via 10.70.2.1"),
        "same-subnet pair encapsulated:\n{r}"
    );
    wait_routes(
        &c,
        &[
            "10.70.1.0/26 via 10.70.1.1 dev vxlan.calico",
            "10.70.2.0/26 via 10.70.2.1 dev vxlan.calico",
        ],
    )
    .await?;
    wait_routes(&b, &["10.70.1.0/26 via 192.168.50.1 dev eth0 proto 80"]).await?;

    a.host.exec(
        "iptables",
        &["-w", "-A", "OUTPUT", "-p", "udp", "--dport", "4789"],
    )?;
    let before = vxlan_tx_packets(&a)?;
    ensure!(pa.ping(pb.ip), "same-subnet pods cannot talk");
    let after_same = vxlan_tx_packets(&a)?;
    ensure!(
        after_same == before,
        "same-subnet ping was encapsulated: {before} -> {after_same}"
    );
    ensure!(pa.ping(pc.ip), "cross-subnet pods cannot talk");
    let after_cross = vxlan_tx_packets(&a)?;
    ensure!(
        after_cross > after_same,
        "cross-subnet ping not encapsulated: {after_same} -> {after_cross}"
    );
    ensure!(pc.ping(pb.ip), "pod c cannot reach pod b");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fabric_dropping_pod_addresses_needs_encap() -> Result<()> {
    let lab = Lab::new("frfd")?;
    lab.add_segment("far")?;
    let router = lab.add_router(
        "r",
        &[("lan", "192.168.50.254/24"), ("far", "192.168.60.254/24")],
    )?;
    let a = TestNode::add(&lab, "lan", "a", "192.168.50.1/24", "10.70.1.0/26")?;
    let c = TestNode::add(&lab, "far", "c", "192.168.60.3/24", "10.70.3.0/26")?;
    a.host
        .ip(&["route", "add", "192.168.60.0/24", "via", "192.168.50.254"])?;
    c.host
        .ip(&["route", "add", "192.168.50.0/24", "via", "192.168.60.254"])?;
    // The fabric knows the pod blocks (as a BGP ToR would) ...
    router.ip(&["route", "add", "10.70.1.0/26", "via", "192.168.50.1"])?;
    router.ip(&["route", "add", "10.70.3.0/26", "via", "192.168.60.3"])?;
    let pa = TestPod::add(&lab, &a, "pa", "10.70.1.2").await?;
    let pc = TestPod::add(&lab, &c, "pc", "10.70.3.2").await?;
    let nodes = [&a, &c];
    let gateway = |n: &TestNode| -> std::net::IpAddr {
        if n.name == "c" {
            "192.168.50.254".parse()
        } else {
            "192.168.60.254".parse()
        }
        .unwrap_or_else(|_| unreachable!())
    };
    let mut tasks = Vec::new();
    for n in nodes {
        let t = n.start().await?;
        let mut inputs = vec![pool(EncapMode::Never, EncapMode::Never)];
        inputs.extend(cluster_inputs(&nodes, &[&pa, &pc]));
        // In no-encap mode the fabric's routes (next hop: the router) reach each node.
        inputs.extend(learned_inputs(n, &nodes, gateway));
        feed(&t, &inputs).await?;
        tasks.push(t);
    }
    wait_routes(&a, &["10.70.3.0/26 via 192.168.50.254 dev eth0 proto 80"]).await?;
    wait_routes(&c, &["10.70.1.0/26 via 192.168.60.254 dev eth0 proto 80"]).await?;
    // Control run: the fabric forwards pod traffic.
    ensure!(
        pa.ping(pc.ip),
        "control run: no-encap across the fabric failed"
    );

    // ... but drops anything from or to the pod range.
    router.exec(
        "iptables",
        &["-w", "-A", "FORWARD", "-s", POOL, "-j", "DROP"],
    )?;
    router.exec(
        "iptables",
        &["-w", "-A", "FORWARD", "-d", POOL, "-j", "DROP"],
    )?;
    ensure!(
        !pa.ping(pc.ip),
        "no-encap ping passed a fabric that drops pod addresses"
    );

    for t in &tasks {
        t.input_tx
            .send(pool(EncapMode::Never, EncapMode::Always))
            .await?;
    }
    wait_routes(
        &a,
        &["10.70.3.0/26 via 10.70.3.1 dev vxlan.calico proto 80 onlink"],
    )
    .await?;
    wait_routes(
        &c,
        &["10.70.1.0/26 via 10.70.1.1 dev vxlan.calico proto 80 onlink"],
    )
    .await?;
    ensure!(
        pa.ping(pc.ip),
        "VXLAN did not get through the dropping fabric"
    );
    Ok(())
}
