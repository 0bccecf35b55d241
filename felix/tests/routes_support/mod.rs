//! Shared helpers of the felix route tests: build nodes and pods in a testlab Lab,
//! run one reconciler per node, feed them the cluster's inputs, poll for kernel state.

#![allow(dead_code)]

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;
use testlab::{Host, Lab};
use tortie_cni::{Netns, WorkloadSetup, host_iface_name, setup_workload};
use tortie_felix::input::{
    AffinityState, BlockAffinity, EncapMode, Endpoint, EndpointId, Input, LearnedRoute, Node, Pool,
    RoutePath,
};
use tortie_felix::route::{ReconcilerConfig, ReconcilerTask, spawn};

/// The pool every test uses.
pub const POOL: &str = "10.70.0.0/16";

/// Polls `probe` every 50 ms until it returns Ok or `timeout` passes (async, so the
/// reconciler tasks keep running meanwhile).
pub async fn eventually<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T>,
) -> Result<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match probe() {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                bail!("timed out after {timeout:?} waiting for {what}: {e:#}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A node of the test cluster.
pub struct TestNode {
    pub host: Host,
    pub name: String,
    /// Node address with mask.
    pub addr: String,
    /// The node's block and its VTEP address (first address of the block).
    pub block: String,
    pub vtep: String,
}

impl TestNode {
    /// Adds a node namespace on `segment` with `addr` (CIDR) owning `block`.
    pub fn add(lab: &Lab, segment: &str, name: &str, addr: &str, block: &str) -> Result<Self> {
        let host = lab.add_host_on(segment, name, addr)?;
        // A bare lab node has no default route; proxy ARP for 169.254.1.1 needs some
        // route out of another interface (LAB-NOTES.md).
        host.ip(&["route", "add", "169.254.1.1", "dev", "lo"])?;
        let net: ipnetwork::Ipv4Network = block.parse()?;
        let vtep = net.nth(1).context("block too small")?.to_string();
        Ok(TestNode {
            host,
            name: name.into(),
            addr: addr.into(),
            block: block.into(),
            vtep,
        })
    }

    pub fn ip(&self) -> IpAddr {
        self.addr
            .split('/')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    pub fn netns(&self) -> Netns {
        Netns::named(self.host.netns())
    }

    /// The `Node` input of this node.
    pub fn input(&self) -> Input {
        let mut n = Node::new(
            &self.name,
            self.addr.parse().unwrap_or_else(|_| unreachable!()),
        );
        n.vxlan_tunnel_addr = self.vtep.parse().ok();
        n.ipip_tunnel_addr = self.vtep.parse().ok();
        Input::NodeUpsert(n)
    }

    /// Starts a reconciler for this node (short timers for tests).
    pub async fn start(&self) -> Result<ReconcilerTask> {
        let mut cfg = ReconcilerConfig::new(&self.name, self.netns());
        cfg.resync_interval = Duration::from_millis(500);
        cfg.new_iface_grace = Duration::from_secs(1);
        Ok(spawn(cfg).await?)
    }

    /// Routes of `ip route show` in this node.
    pub fn routes(&self) -> Result<String> {
        Ok(self.host.ip(&["route", "show"])?)
    }
}

/// A pod plumbed by the CNI library.
pub struct TestPod {
    pub host: Host,
    pub ip: IpAddr,
    pub endpoint: Endpoint,
}

impl TestPod {
    /// Creates pod `name` with `ip` on `node`.
    pub async fn add(lab: &Lab, node: &TestNode, name: &str, ip: &str) -> Result<Self> {
        let host = lab.add_bare_host(name)?;
        let iface = host_iface_name("default", name);
        let ip: IpAddr = ip.parse()?;
        setup_workload(&WorkloadSetup {
            host_ns: node.netns(),
            pod_ns: Netns::named(host.netns()),
            host_iface: iface.clone(),
            pod_iface: "eth0".into(),
            addrs: vec![ip],
            mtu: 1400,
        })
        .await?;
        let endpoint = Endpoint {
            id: EndpointId {
                namespace: "default".into(),
                pod: name.into(),
                endpoint: "eth0".into(),
            },
            node: node.name.clone(),
            iface,
            ips: vec![ipnetwork::IpNetwork::new(ip, 32)?],
            mac: None,
            labels: BTreeMap::new(),
            ports: vec![],
            service_account: None,
        };
        Ok(TestPod { host, ip, endpoint })
    }

    pub fn ping(&self, dst: IpAddr) -> bool {
        self.host.ping(dst, 2, Duration::from_secs(2))
    }
}

/// A pool with the given modes.
pub fn pool(ipip: EncapMode, vxlan: EncapMode) -> Input {
    Input::PoolUpsert(Pool {
        ipip_mode: ipip,
        vxlan_mode: vxlan,
        ..Pool::new(POOL.parse().unwrap_or_else(|_| unreachable!()))
    })
}

/// The cluster-wide inputs: nodes, confirmed affinities, endpoints (not the pool).
pub fn cluster_inputs(nodes: &[&TestNode], pods: &[&TestPod]) -> Vec<Input> {
    let mut v = Vec::new();
    for n in nodes {
        v.push(n.input());
        v.push(Input::AffinityUpsert(BlockAffinity {
            cidr: n.block.parse().unwrap_or_else(|_| unreachable!()),
            node: n.name.clone(),
            state: AffinityState::Confirmed,
        }));
    }
    for p in pods {
        v.push(Input::EndpointUpsert(p.endpoint.clone()));
    }
    v
}

/// What BGP would deliver to `me`: every other node's block via `next_hop(node)`.
pub fn learned_inputs(
    me: &TestNode,
    nodes: &[&TestNode],
    next_hop: impl Fn(&TestNode) -> IpAddr,
) -> Vec<Input> {
    nodes
        .iter()
        .filter(|n| n.name != me.name)
        .map(|n| {
            Input::RouteUpsert(LearnedRoute {
                prefix: n.block.parse().unwrap_or_else(|_| unreachable!()),
                paths: vec![RoutePath {
                    next_hop: next_hop(n),
                    node: Some(n.name.clone()),
                }],
            })
        })
        .collect()
}

/// Sends inputs (then InSync) to a reconciler.
pub async fn feed(task: &ReconcilerTask, inputs: &[Input]) -> Result<()> {
    for i in inputs {
        task.input_tx.send(i.clone()).await?;
    }
    task.input_tx.send(Input::InSync).await?;
    Ok(())
}

/// Waits until `node`'s routing table contains every line fragment in `want`.
pub async fn wait_routes(node: &TestNode, want: &[&str]) -> Result<String> {
    eventually(
        Duration::from_secs(5),
        &format!("routes {want:?} on {}", node.name),
        || {
            let r = node.routes()?;
            match want.iter().find(|w| !r.contains(*w)) {
                None => Ok(r),
                Some(missing) => bail!("missing {missing:?} in:\n{r}"),
            }
        },
    )
    .await
}
