//! Three tortie-node agents in namespaces with a real etcd: they register, form the BGP
//! full mesh, claim and advertise blocks for their pods, install each other's blocks
//! (`<block> via <node IP> proto 80`), and pods ping across nodes. Then one agent is
//! killed and restarted: its kernel routes and the others' routes to its block stay.
//! Needs root (panics otherwise).

mod common;

use std::time::Duration;

use anyhow::{Context, Result};
use common::{Ds, Node, block_of};
use testlab::etcd::Etcd;
use testlab::{Lab, holds_for, wait_until};

#[test]
fn three_agents_mesh_route_and_ping_across_nodes() -> Result<()> {
    let lab = Lab::new("node")?;
    let etcd_host = lab.add_host("etcd", "10.0.0.100/24")?;
    let etcd = Etcd::start_in(&etcd_host, "10.0.0.100".parse()?)?;
    let ep = Ds::Etcd(etcd.endpoint());
    let mut nodes = Vec::new();
    for i in 1..=3 {
        nodes.push(Node::add(&lab, i)?);
    }
    let mut agents = Vec::new();
    for n in &nodes {
        agents.push(n.start(&ep, "1")?);
    }
    // Registered: every node is in etcd (the pool too, by the first agent).
    wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        let out = etcd.etcdctl(&["get", "--prefix", "--keys-only", "/tortie"])?;
        let n = out.lines().filter(|l| l.contains("tortienode")).count();
        if n == 3 {
            Ok(())
        } else {
            Err(anyhow::anyhow!("{n} nodes registered:\n{out}"))
        }
    })
    .with_context(|| {
        agents
            .iter()
            .map(|a| a.log_tail(20))
            .collect::<Vec<_>>()
            .join("\n")
    })?;

    let mut pods = Vec::new();
    for n in &nodes {
        // Pod names are unique per namespace, as in Kubernetes.
        let (h, ip) = n.add_pod(&lab, &ep, "default", &format!("{}-p1", n.name))?;
        pods.push((h, ip));
    }
    // Each node installs the others' blocks via their node IPs.
    for (i, n) in nodes.iter().enumerate() {
        for (j, m) in nodes.iter().enumerate() {
            if i == j {
                continue;
            }
            let want = format!("{} via {} dev eth0", block_of(pods[j].1), m.ip);
            wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
                let r = n.routes();
                if r.contains(&want) {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("{} lacks {want:?}:\n{r}", n.name))
                }
            })
            .with_context(|| agents[i].log_tail(30))?;
        }
    }
    // Pod-to-pod across nodes, both directions.
    for (a, b) in [(0, 1), (1, 2), (2, 0)] {
        assert!(
            pods[a].0.ping(pods[b].1, 2, Duration::from_secs(3)),
            "pod on n{} cannot ping pod {} on n{}",
            a + 1,
            pods[b].1,
            b + 1
        );
    }
    // Felix's policy half programmed the filter chains in the node (and only there).
    let rules = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let out = nodes[0].host.exec("iptables-save", &["-t", "filter"])?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("-j cali-FORWARD") && text.contains("cali-tw-cali") {
            Ok(text)
        } else {
            Err(anyhow::anyhow!("no cali chains yet:\n{text}"))
        }
    })?;
    assert!(rules.contains("cali-from-wl-dispatch"), "{rules}");
    // FELIX_IPV6SUPPORT defaults to true: the same chains guard IPv6 in ip6tables.
    let rules6 = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let out = nodes[0].host.exec("ip6tables-save", &["-t", "filter"])?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("-j cali-FORWARD") && text.contains("cali-from-wl-dispatch") {
            Ok(text)
        } else {
            Err(anyhow::anyhow!("no cali chains in ip6tables yet:\n{text}"))
        }
    })?;
    assert!(
        !rules6.contains("10.244."),
        "IPv4 addresses in ip6tables:\n{rules6}"
    );
    // Status answers with the two mesh peers up.
    let body = nodes[0].status();
    assert!(
        body.contains("Mesh_10.0.0.2") && body.contains("Mesh_10.0.0.3"),
        "{body}"
    );

    // The CNI plugin's inputs: the node name, and the pod MTU felix computed — the
    // uplink's own MTU, as this pool encapsulates nothing.
    for n in &nodes {
        let nodename = std::fs::read_to_string(n.state.join("nodename"))?;
        assert_eq!(nodename, n.name);
        let link = n.host.exec("cat", &["/sys/class/net/eth0/mtu"])?;
        let uplink = String::from_utf8_lossy(&link.stdout).trim().to_string();
        let mtu = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            std::fs::read_to_string(n.state.join("mtu")).map_err(anyhow::Error::from)
        })?;
        assert_eq!(mtu.trim(), uplink, "pod MTU file of {}", n.name);
    }

    // Kill n1's agent (no clean stop): nothing is withdrawn from the kernels.
    let n1_block = format!("{} via 10.0.0.1", block_of(pods[0].1));
    let before = nodes[0].routes();
    agents[0].kill();
    holds_for(Duration::from_secs(2), Duration::from_millis(100), || {
        if nodes[1].routes().contains(&n1_block) && nodes[0].routes() == before {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "routes changed after the kill:\n{}\n{}",
                nodes[0].routes(),
                nodes[1].routes()
            ))
        }
    })?;
    // Restart: its own kernel routes never go away while it reads, syncs and re-peers.
    let again = nodes[0].start(&ep, "2")?;
    let n2_block = format!("{} via 10.0.0.2", block_of(pods[1].1));
    holds_for(Duration::from_secs(6), Duration::from_millis(50), || {
        let r = nodes[0].routes();
        if r.contains(&n2_block) && nodes[1].routes().contains(&n1_block) {
            Ok(())
        } else {
            Err(anyhow::anyhow!("route lost during restart:\n{r}"))
        }
    })
    .with_context(|| again.log_tail(30))?;
    assert!(
        pods[1].0.ping(pods[0].1, 2, Duration::from_secs(3)),
        "ping after restart\nn1 routes:\n{}\n{}",
        nodes[0].routes(),
        again.log_tail(30)
    );
    assert!(
        nodes[0]
            .routes()
            .contains(&format!("{} dev cali", pods[0].1)),
        "pod route gone after restart:\n{}",
        nodes[0].routes()
    );
    Ok(())
}
