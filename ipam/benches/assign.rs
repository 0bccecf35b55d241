//! IPAM assignment benchmark on a real etcd (loopback, started here).
//!
//! Reproduce: `CARGO_TARGET_DIR=/work/targets/ipam cargo bench -p tortie-ipam --bench assign`
//!
//! Prints one table: assignments/s, p50/p99 latency and datastore reads/writes per
//! assignment (counted by the counting wrapper around the stores), for 1 node and for 8
//! concurrent nodes (each with its own etcd client), the first address on a node (which
//! claims a block) and subsequent ones (from an already-affine block) separately.

use std::time::{Duration, Instant};

use anyhow::Result;
use tortie_crds::{AllowedUse, IpPool, IpPoolSpec, TortieNode, TortieNodeSpec};
use tortie_datastore::{Datastore, EtcdDatastore};
use tortie_ipam::{AssignArgs, Attrs, Ipam, Stores};

const SUBSEQUENT: usize = 250;

struct Row {
    name: String,
    n: usize,
    wall: Duration,
    lat: Vec<Duration>,
    reads: u64,
    writes: u64,
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or_default()
}

fn args(node: &str, i: usize) -> AssignArgs {
    AssignArgs {
        handle: format!("k8s-pod-network.{node}-{i}"),
        num_v4: 1,
        num_v6: 0,
        node: node.into(),
        attrs: Attrs {
            namespace: Some("bench".into()),
            pod: Some(format!("{node}-{i}")),
            kind: None,
        },
        use_: AllowedUse::Workload,
    }
}

async fn ds(endpoint: &str, prefix: &str) -> Result<Datastore> {
    Ok(Datastore::Etcd(Box::new(
        EtcdDatastore::connect(&[endpoint.to_string()], prefix).await?,
    )))
}

/// One node: first address (claim), then `SUBSEQUENT` more. Returns (first, subsequent).
async fn node_run(endpoint: String, prefix: String, node: String) -> Result<(Row, Row)> {
    let (stores, c) = Stores::from_datastore(&ds(&endpoint, &prefix).await?).counted();
    let ipam = Ipam::new(stores);
    let t = Instant::now();
    ipam.auto_assign(&args(&node, 0)).await?;
    let first_lat = t.elapsed();
    let (r0, w0) = c.snapshot();
    let first = Row {
        name: String::new(),
        n: 1,
        wall: first_lat,
        lat: vec![first_lat],
        reads: r0,
        writes: w0,
    };
    let mut lat = Vec::with_capacity(SUBSEQUENT);
    let start = Instant::now();
    for i in 1..=SUBSEQUENT {
        let t = Instant::now();
        ipam.auto_assign(&args(&node, i)).await?;
        lat.push(t.elapsed());
    }
    let (r1, w1) = c.snapshot();
    let sub = Row {
        name: String::new(),
        n: SUBSEQUENT,
        wall: start.elapsed(),
        lat,
        reads: r1 - r0,
        writes: w1 - w0,
    };
    Ok((first, sub))
}

fn merge(name: &str, rows: Vec<Row>, wall: Duration) -> Row {
    let mut out = Row {
        name: name.into(),
        n: 0,
        wall,
        lat: Vec::new(),
        reads: 0,
        writes: 0,
    };
    for r in rows {
        out.n += r.n;
        out.lat.extend(r.lat);
        out.reads += r.reads;
        out.writes += r.writes;
    }
    out
}

async fn scenario(endpoint: &str, nodes: usize, tag: &str) -> Result<(Row, Row)> {
    let prefix = format!("/ipambench/{tag}-{}", std::process::id());
    let d = ds(endpoint, &prefix).await?;
    // /24 blocks: every subsequent assignment stays in the first, affine block.
    let mut spec = IpPoolSpec::new("10.128.0.0/16".parse()?);
    spec.block_size = Some(24);
    d.store::<IpPool>()
        .create(&IpPool::new("default", spec))
        .await?;
    let names: Vec<String> = (0..nodes).map(|i| format!("{tag}-node{i}")).collect();
    for n in &names {
        d.store::<TortieNode>()
            .create(&TortieNode::new(n, TortieNodeSpec::default()))
            .await?;
    }
    let t = Instant::now();
    let tasks: Vec<_> = names
        .iter()
        .map(|n| tokio::spawn(node_run(endpoint.into(), prefix.clone(), n.clone())))
        .collect();
    let (mut firsts, mut subs) = (Vec::new(), Vec::new());
    for task in tasks {
        let (f, s) = task.await??;
        firsts.push(f);
        subs.push(s);
    }
    let wall = t.elapsed();
    let first_wall = firsts.iter().map(|r| r.wall).max().unwrap_or_default();
    let sub_wall = subs.iter().map(|r| r.wall).max().unwrap_or_default();
    let _ = wall;
    Ok((
        merge(
            &format!("{nodes} node(s), first address (block claim)"),
            firsts,
            first_wall,
        ),
        merge(
            &format!("{nodes} node(s), subsequent (affine block)"),
            subs,
            sub_wall,
        ),
    ))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let etcd = testlab::etcd::Etcd::start_loopback()?;
    let ep = etcd.endpoint();
    // Warm-up (connections, etcd's first writes).
    scenario(&ep, 1, "warm").await?;
    let mut rows = Vec::new();
    for (nodes, tag) in [(1, "one"), (8, "eight")] {
        let (f, s) = scenario(&ep, nodes, tag).await?;
        rows.push(f);
        rows.push(s);
    }
    println!(
        "| scenario | assignments | assignments/s | p50 ms | p99 ms | reads/assign | writes/assign |"
    );
    println!("|---|---|---|---|---|---|---|");
    for mut r in rows {
        let rate = r.n as f64 / r.wall.as_secs_f64();
        let p50 = pct(&mut r.lat, 0.5);
        let p99 = pct(&mut r.lat, 0.99);
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
            r.name,
            r.n,
            rate,
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            r.reads as f64 / r.n as f64,
            r.writes as f64 / r.n as f64
        );
    }
    Ok(())
}
