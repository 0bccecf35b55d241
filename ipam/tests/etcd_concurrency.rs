//! Must-show: 8 concurrent nodes, each a task with its OWN etcd client, each assigning and
//! releasing 1,000 addresses in a random interleaving (handles of 1-3 addresses; releases
//! by handle or by address + sequence number in batches). Asserts that no address is ever
//! held by two handles (ownership tracked outside IPAM), that no node ever holds more than
//! ceil(peak live / block size) + 1 affine blocks (checked every 25 operations and at the
//! end), and that `check` is clean at the end with no handle or allocation left.

mod common;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Result, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tortie_crds::{AffinityState, AllowedUse};
use tortie_datastore::Filter;
use tortie_ipam::{AssignArgs, AssignedIp, Attrs, Ipam, check, format_report, pod_handle};

const NODES: usize = 8;
const PER_NODE: usize = 1000;
const BLOCK: usize = 64;

type Owners = Arc<Mutex<HashMap<IpAddr, String>>>;

async fn affine_blocks(ipam: &Ipam, node: &str) -> Result<usize> {
    Ok(ipam
        .stores()
        .affinities
        .list(&Filter::all())
        .await?
        .items
        .iter()
        .filter(|a| a.spec.node == node && a.spec.state != AffinityState::PendingDeletion)
        .count())
}

async fn run_node(prefix: String, idx: usize, owners: Owners) -> Result<(usize, usize)> {
    let node = format!("node{idx}");
    // Own client per node.
    let ipam = common::ipam(&prefix).await?;
    let mut rng = StdRng::seed_from_u64(0x1ba5e + idx as u64);
    // Live handles and their addresses.
    let mut live: Vec<(String, Vec<AssignedIp>)> = Vec::new();
    let (mut assigned, mut peak, mut n_live) = (0usize, 0usize, 0usize);
    let mut ops = 0usize;
    while assigned < PER_NODE || !live.is_empty() {
        // Drift upwards while assigning, then drain: peaks of a few blocks per node.
        let p_assign = if assigned < PER_NODE { 0.6 } else { 0.0 };
        if live.is_empty() || rng.random_bool(p_assign) {
            let k = rng.random_range(1..=3).min(PER_NODE - assigned);
            let handle = pod_handle(&format!("{node}-{assigned}"));
            let a = ipam
                .auto_assign(&AssignArgs {
                    handle: handle.clone(),
                    num_v4: k,
                    num_v6: 0,
                    node: node.clone(),
                    attrs: Attrs {
                        namespace: Some("ns".into()),
                        pod: Some(format!("{node}-{assigned}")),
                        kind: None,
                    },
                    use_: AllowedUse::Workload,
                })
                .await?;
            if a.v4.len() != k {
                bail!("{node}: asked for {k}, got {:?}", a.v4);
            }
            for ip in &a.v4 {
                if let Some(other) = owners.lock().unwrap().insert(ip.ip, handle.clone()) {
                    bail!("{} held by {other} and {handle} at once", ip.ip);
                }
            }
            live.push((handle, a.v4));
            assigned += k;
            n_live += k;
            peak = peak.max(n_live);
        } else if rng.random_bool(0.5) {
            let (handle, ips) = live.swap_remove(rng.random_range(0..live.len()));
            // Forget ownership first: once released, another node may get it at once.
            let mut want: Vec<IpAddr> = ips.iter().map(|a| a.ip).collect();
            for ip in &want {
                owners.lock().unwrap().remove(ip);
            }
            let mut freed = ipam.release_by_handle(&handle).await?;
            freed.sort();
            want.sort();
            if freed != want {
                bail!("{node}: release of {handle} freed {freed:?}, expected {want:?}");
            }
            n_live -= want.len();
        } else {
            // Release a few handles' addresses by address + sequence number, one call.
            let mut batch = Vec::new();
            for _ in 0..rng.random_range(1..=3usize).min(live.len()) {
                let (_, ips) = live.swap_remove(rng.random_range(0..live.len()));
                batch.extend(ips);
            }
            for a in &batch {
                owners.lock().unwrap().remove(&a.ip);
            }
            let req: Vec<_> = batch.iter().map(|a| (a.ip, Some(a.seq))).collect();
            let r = ipam.release_ips(&req).await?;
            if r.released.len() != batch.len() {
                bail!("{node}: release of {batch:?} gave {r:?}");
            }
            n_live -= batch.len();
        }
        ops += 1;
        if ops.is_multiple_of(25) || live.is_empty() {
            let n = affine_blocks(&ipam, &node).await?;
            let bound = peak.div_ceil(BLOCK) + 1;
            if n > bound {
                bail!("{node} holds {n} affine blocks, peak live {peak} allows {bound}");
            }
        }
    }
    Ok((peak, affine_blocks(&ipam, &node).await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_nodes_assign_and_release_concurrently() -> Result<()> {
    let p = common::prefix("concurrent");
    let ds = common::datastore(&p).await?;
    common::pool(&ds, "default", "10.128.0.0/19", |s| s.block_size = Some(26)).await?;
    for i in 0..NODES {
        common::node(&ds, &format!("node{i}"), &[]).await?;
    }
    let owners: Owners = Arc::default();
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..NODES)
        .map(|i| tokio::spawn(run_node(p.clone(), i, owners.clone())))
        .collect();
    let mut peaks = Vec::new();
    for t in tasks {
        peaks.push(t.await??);
    }
    eprintln!(
        "8 nodes x {PER_NODE} assign+release in {:?}; (peak live, affine blocks) per node: {peaks:?}",
        t0.elapsed()
    );
    assert!(owners.lock().unwrap().is_empty());
    let ipam = common::ipam(&p).await?;
    let r = check(ipam.stores(), None).await?;
    assert!(r.is_clean(), "{}", format_report(&r));
    assert_eq!(r.allocated, 0);
    assert!(
        ipam.stores()
            .handles
            .list(&Filter::all())
            .await?
            .items
            .is_empty()
    );
    Ok(())
}
