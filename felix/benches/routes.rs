//! Route programming benchmark (root; builds its own namespace with testlab).
//!
//! Usage: `cargo bench -p tortie-felix --bench routes` (env `ROUTES=N` changes the
//! table size, default 10000). Prints, for N workload routes on 50 `cali*` veths:
//! programming all from scratch, applying one added workload with N present (median of
//! 200), a full resync of N unchanged routes (median of 5), and `ip -batch` doing the
//! same N adds in a fresh namespace as the floor, with felix's ratio to it. The
//! reconciler sends its route requests pipelined (many per `sendmsg`, see
//! `felix::route::batch`), `ip -batch` one request and one ack at a time.

use anyhow::{Context, Result, ensure};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};
use testlab::Lab;
use tortie_cni::Netns;
use tortie_felix::input::{Endpoint, EndpointId, Input};
use tortie_felix::route::{ReconcilerConfig, RouteReconciler};

const IFACES: usize = 50;

fn iface(i: usize) -> String {
    format!("calibench{i:05}")
}

fn endpoint(i: usize) -> Endpoint {
    let ip = std::net::Ipv4Addr::from(0x0a40_0000u32 + i as u32);
    Endpoint {
        id: EndpointId {
            namespace: "bench".into(),
            pod: format!("pod{i}"),
            endpoint: "eth0".into(),
        },
        node: "bench".into(),
        iface: iface(i % IFACES),
        ips: vec![ipnetwork::IpNetwork::new(ip.into(), 32).unwrap_or_else(|_| unreachable!())],
        mac: None,
        labels: BTreeMap::new(),
        ports: vec![],
        service_account: None,
    }
}

fn add_ifaces(host: &testlab::Host) -> Result<()> {
    let mut batch = String::new();
    for i in 0..IFACES {
        batch.push_str(&format!(
            "link add {} type veth peer name pb{i}\n",
            iface(i)
        ));
        batch.push_str(&format!("link set {} up\n", iface(i)));
    }
    let file = host.dir("")?.join("links.batch");
    std::fs::write(&file, batch)?;
    host.ip(&["-batch", &file.display().to_string()])?;
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let n: usize = std::env::var("ROUTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let lab = Lab::new("frbn")?;
    let host = lab.add_bare_host("n")?;
    add_ifaces(&host)?;
    let floor_host = lab.add_bare_host("f")?;
    add_ifaces(&floor_host)?;

    let (scratch, one, resync) = rt.block_on(async {
        let cfg = ReconcilerConfig::new("bench", Netns::named(host.netns()));
        let mut r = RouteReconciler::new(cfg).await?;
        let t0 = Instant::now();
        for i in 0..n {
            r.handle_input(&Input::EndpointUpsert(endpoint(i)));
        }
        r.handle_input(&Input::InSync);
        let stats = r.apply().await?;
        let scratch = t0.elapsed();
        ensure!(stats.writes == n, "wrote {} of {n}", stats.writes);

        let mut one = Vec::new();
        for k in 0..200 {
            let t = Instant::now();
            r.handle_input(&Input::EndpointUpsert(endpoint(n + k)));
            let s = r.apply().await?;
            one.push(t.elapsed());
            ensure!(s.writes == 1, "one add wrote {}", s.writes);
        }
        let mut resync = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let s = r.resync().await?;
            resync.push(t.elapsed());
            ensure!(
                s.writes == 0 && s.deletes == 0,
                "resync changed something: {s:?}"
            );
        }
        anyhow::Ok((scratch, median(one), median(resync)))
    })?;

    let mut batch = String::new();
    for i in 0..n {
        let ep = endpoint(i);
        batch.push_str(&format!(
            "route replace {} dev {} scope link proto 80\n",
            ep.ips[0], ep.iface
        ));
    }
    let file = floor_host.dir("")?.join("routes.batch");
    std::fs::File::create(&file)?.write_all(batch.as_bytes())?;
    let t = Instant::now();
    floor_host
        .ip(&["-batch", &file.display().to_string()])
        .context("ip -batch")?;
    let floor = t.elapsed();
    let count = floor_host
        .ip(&["route", "show", "proto", "80"])?
        .lines()
        .count();
    ensure!(count == n, "ip -batch installed {count} of {n}");

    println!("routes benchmark, {n} workload routes on {IFACES} cali* veths");
    println!(
        "  program from scratch (felix):        {:>9.1} ms",
        scratch.as_secs_f64() * 1e3
    );
    println!(
        "  program from scratch (ip -batch):    {:>9.1} ms  (floor)",
        floor.as_secs_f64() * 1e3
    );
    println!(
        "  from scratch, felix / ip -batch:     {:>9.2}x",
        scratch.as_secs_f64() / floor.as_secs_f64()
    );
    println!(
        "  one added workload, {n} present:  {:>9.3} ms  (median of 200)",
        one.as_secs_f64() * 1e3
    );
    println!(
        "  full resync, {n} unchanged:       {:>9.1} ms  (median of 5)",
        resync.as_secs_f64() * 1e3
    );
    Ok(())
}
