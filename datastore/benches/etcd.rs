//! Datastore benchmark against a real etcd (Debian's etcd-server, started on loopback by
//! `testlab::etcd::Etcd` with a temp data dir). Prints one table:
//! CAS updates/s on one key and on distinct keys with 1 and 8 clients (each client its
//! own connection), the time to list 10,000 objects, and watch fan-out latency
//! (update sent → event received, 8 watchers, p50/p99).
//!
//! Reproduce: `cargo bench -p tortie-datastore --bench etcd`
//! (`TORTIE_BENCH_SECS=N` sets each throughput phase's length, default 3).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use kube::api::ObjectMeta;
use testlab::etcd::Etcd;
use tokio::sync::Mutex;
use tortie_crds::ipam::{IpamHandle, IpamHandleSpec};
use tortie_datastore::{EtcdDatastore, Event, Filter, ObjectKey, Store};

const PREFIX: &str = "/tortie-bench";

fn handle(name: &str, n: usize) -> IpamHandle {
    let mut spec = IpamHandleSpec {
        handle_id: name.to_string(),
        ..Default::default()
    };
    spec.block.insert("10.244.1.0/26".into(), n);
    IpamHandle {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        spec,
    }
}

fn count(h: &IpamHandle) -> usize {
    h.spec.block.get("10.244.1.0/26").copied().unwrap_or(0)
}

async fn clients(etcd: &Etcd, n: usize) -> Result<Vec<EtcdDatastore>> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(EtcdDatastore::connect(&etcd.endpoints(), PREFIX).await?);
    }
    Ok(v)
}

/// Each client increments its key (or the shared key) with get + CAS update until the
/// deadline; returns (successful updates/s, conflicts).
async fn cas_rate(
    stores: &[EtcdDatastore],
    shared: bool,
    secs: f64,
    tag: &str,
) -> Result<(f64, u64)> {
    let names: Vec<String> = (0..stores.len())
        .map(|i| {
            if shared {
                format!("{tag}-shared")
            } else {
                format!("{tag}-{i}")
            }
        })
        .collect();
    for name in names.iter().collect::<std::collections::BTreeSet<_>>() {
        Store::<IpamHandle>::create(&stores[0], &handle(name, 0)).await?;
    }
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (store, name) in stores.iter().cloned().zip(names.clone()) {
        tasks.push(tokio::spawn(async move {
            let key = ObjectKey::cluster(name);
            let (mut ok, mut conflicts) = (0u64, 0u64);
            let mut cur: IpamHandle = Store::<IpamHandle>::get(&store, &key)
                .await?
                .context("gone")?;
            while Instant::now() < deadline {
                let mut next = cur.clone();
                next.spec
                    .block
                    .insert("10.244.1.0/26".into(), count(&cur) + 1);
                match Store::<IpamHandle>::update(&store, &next).await {
                    Ok(stored) => {
                        ok += 1;
                        cur = stored;
                    }
                    Err(e) if e.is_conflict() => {
                        conflicts += 1;
                        cur = Store::<IpamHandle>::get(&store, &key)
                            .await?
                            .context("gone")?;
                    }
                    Err(e) => return Err(anyhow::Error::from(e)),
                }
            }
            anyhow::Ok((ok, conflicts))
        }));
    }
    let (mut ok, mut conflicts) = (0, 0);
    for t in tasks {
        let (o, c) = t.await??;
        ok += o;
        conflicts += c;
    }
    let elapsed = start.elapsed().as_secs_f64();
    // The stored counters must add up to the successful updates (CAS lost nothing).
    let mut total = 0;
    for name in names.iter().collect::<std::collections::BTreeSet<_>>() {
        let h: IpamHandle =
            Store::<IpamHandle>::get(&stores[0], &ObjectKey::cluster(name.as_str()))
                .await?
                .context("gone")?;
        total += count(&h) as u64;
    }
    if total != ok {
        bail!("{tag}: counters sum to {total}, but {ok} updates succeeded");
    }
    Ok((ok as f64 / elapsed, conflicts))
}

async fn list_10k(stores: &[EtcdDatastore]) -> Result<(Duration, Duration, usize)> {
    const N: usize = 10_000;
    let create_start = Instant::now();
    let per = N / stores.len();
    let mut tasks = Vec::new();
    for (c, store) in stores.iter().cloned().enumerate() {
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                let name = format!("list-{:05}", c * per + i);
                Store::<IpamHandle>::create(&store, &handle(&name, i)).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let create = create_start.elapsed();
    let filter = Filter::default();
    let mut best = Duration::MAX;
    let mut items = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let l = Store::<IpamHandle>::list(&stores[0], &filter).await?;
        best = best.min(t.elapsed());
        items = l
            .items
            .iter()
            .filter(|h| {
                h.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("list-"))
            })
            .count();
    }
    if items != N {
        bail!("listed {items} of {N} objects");
    }
    Ok((create, best, items))
}

async fn watch_latency(
    stores: &[EtcdDatastore],
    writes: usize,
) -> Result<(Duration, Duration, Duration)> {
    let writer = &stores[0];
    let obj = Store::<IpamHandle>::create(writer, &handle("watched", 0)).await?;
    let rev = obj
        .metadata
        .resource_version
        .clone()
        .context("no version")?;
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; writes + 1]));
    let mut watchers = Vec::new();
    for store in stores {
        let sent = Arc::clone(&sent);
        let filter = Filter::default();
        let mut w = Store::<IpamHandle>::watch(store, &filter, &rev).await?;
        watchers.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(writes);
            while lat.len() < writes {
                let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
                    .await
                    .context("watch stalled")?
                    .context("watch ended")??;
                let now = Instant::now();
                if let Event::Modified(h) = ev {
                    if h.metadata.name.as_deref() != Some("watched") {
                        continue;
                    }
                    let n = count(&h);
                    let at = sent
                        .lock()
                        .await
                        .get(n)
                        .copied()
                        .flatten()
                        .context("event before send")?;
                    lat.push(now - at);
                }
            }
            anyhow::Ok(lat)
        }));
    }
    let mut cur = obj;
    for n in 1..=writes {
        let mut next = cur.clone();
        next.spec.block.insert("10.244.1.0/26".into(), n);
        sent.lock().await[n] = Some(Instant::now());
        cur = Store::<IpamHandle>::update(writer, &next).await?;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut all = Vec::new();
    for w in watchers {
        all.extend(w.await??);
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 - 1.0) * p).round() as usize];
    Ok((pct(0.5), pct(0.99), *all.last().context("no samples")?))
}

#[tokio::main]
async fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` probes with --list
    }
    let secs: f64 = std::env::var("TORTIE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let etcd = tokio::task::spawn_blocking(Etcd::start_loopback).await??;
    let one = clients(&etcd, 1).await?;
    let eight = clients(&etcd, 8).await?;
    println!(
        "tortie-datastore etcd benchmark (etcd 3.4 on loopback, data dir {}; {} s per phase)",
        etcd.dir().display(),
        secs
    );
    println!("{:<44} {:>14} {:>12}", "measurement", "result", "conflicts");
    let (r, c) = cas_rate(&one, true, secs, "one-key-1").await?;
    println!(
        "{:<44} {:>10.0} /s {:>12}",
        "CAS updates, one key, 1 client", r, c
    );
    let (r, c) = cas_rate(&eight, true, secs, "one-key-8").await?;
    println!(
        "{:<44} {:>10.0} /s {:>12}",
        "CAS updates, one key, 8 clients", r, c
    );
    let (r, c) = cas_rate(&one, false, secs, "distinct-1").await?;
    println!(
        "{:<44} {:>10.0} /s {:>12}",
        "CAS updates, distinct keys, 1 client", r, c
    );
    let (r, c) = cas_rate(&eight, false, secs, "distinct-8").await?;
    println!(
        "{:<44} {:>10.0} /s {:>12}",
        "CAS updates, distinct keys, 8 clients", r, c
    );
    let (create, list, n) = list_10k(&eight).await?;
    println!(
        "{:<44} {:>10.2} s",
        format!("create {n} objects (8 clients)"),
        create.as_secs_f64()
    );
    println!(
        "{:<44} {:>10.1} ms",
        format!("list {n} objects (best of 5)"),
        list.as_secs_f64() * 1e3
    );
    let (p50, p99, max) = watch_latency(&eight, 300).await?;
    println!(
        "{:<44} {:>10.2} ms",
        "watch fan-out latency p50 (8 watchers)",
        p50.as_secs_f64() * 1e3
    );
    println!(
        "{:<44} {:>10.2} ms",
        "watch fan-out latency p99 (8 watchers)",
        p99.as_secs_f64() * 1e3
    );
    println!(
        "{:<44} {:>10.2} ms",
        "watch fan-out latency max (8 watchers)",
        max.as_secs_f64() * 1e3
    );
    Ok(())
}
