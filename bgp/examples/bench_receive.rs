//! Whole-system receive benchmark in network namespaces (root; a measurement, not a
//! test). One injector (our speaker) originates N /26 prefixes and then peers, over eBGP,
//! with four receivers at once: tortie (the `peer` example in `--quiet` mode, its own
//! process), BIRD 2, GoBGP and FRR. Prints, per receiver, the seconds from the moment
//! the injector's peers were added until all N prefixes were in its RIB, and its peak
//! RSS.
//!
//! Usage (build the `peer` example first; release builds give the real numbers):
//!
//! ```text
//! cargo build --release -p tortie-bgp --examples
//! sudo target/release/examples/bench_receive [--prefixes 100000] [--timeout 300]
//! ```

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use ipnetwork::{IpNetwork, Ipv4Network};
use testlab::bird::{Bird, BirdConfig, BirdNeighbor};
use testlab::frr::{Frr, FrrConfig, FrrNeighbor};
use testlab::gobgp::{GoBgp, GoBgpConfig, GoBgpNeighbor};
use testlab::{Lab, Proc};
use tortie_bgp::speaker::{PeerConfig, Speaker, SpeakerConfig};

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value_t = 100_000)]
    prefixes: u32,
    /// Seconds to wait for every receiver.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

const INJECTOR: &str = "10.0.0.1";
const OURS: &str = "10.0.0.2";
const BIRD: &str = "10.0.0.3";
const GOBGP: &str = "10.0.0.4";
const FRR: &str = "10.0.0.5";

/// The i-th /26 of 10.128.0.0/9 (room for 131072 of them).
fn prefix(i: u32) -> Result<IpNetwork> {
    let base = u32::from(Ipv4Addr::new(10, 128, 0, 0));
    let addr = Ipv4Addr::from(base + (i << 6));
    Ok(IpNetwork::V4(Ipv4Network::new(addr, 26)?))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Our speaker as injector, on a thread inside the injector host.
fn start_injector(
    host: &testlab::Host,
    n: u32,
) -> Result<(Speaker, tokio::sync::oneshot::Sender<()>)> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let _thread = host.thread_in(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build();
        let Ok(rt) = rt else {
            let _ = ready_tx.send(Err(anyhow!("cannot build a runtime")));
            return;
        };
        rt.block_on(async move {
            let mut cfg = SpeakerConfig::new(64512, Ipv4Addr::new(10, 0, 0, 1));
            cfg.graceful_restart_time = None;
            let r: Result<Speaker> = async {
                let s = Speaker::start(cfg).await?;
                for i in 0..n {
                    s.originate(prefix(i)?, None).await?;
                }
                Ok(s)
            }
            .await;
            let ok = r.is_ok();
            let _ = ready_tx.send(r);
            if ok {
                let _ = stop_rx.await;
            }
        });
    });
    let s = ready_rx
        .recv_timeout(Duration::from_secs(120))
        .context("injector did not start")??;
    Ok((s, stop_tx))
}

fn peer_example() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let p = exe.with_file_name("peer");
    if !p.exists() {
        bail!(
            "{} missing: cargo build -p tortie-bgp --examples",
            p.display()
        );
    }
    Ok(p)
}

fn ours_count(p: &Proc) -> u64 {
    p.log()
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("routes ")?.trim().parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let n = args.prefixes.min(131_072);
    let lab = Lab::new("bench")?;
    let inj = lab.add_host("inj", "10.0.0.1/24")?;
    let h_ours = lab.add_host("ours", "10.0.0.2/24")?;
    let h_bird = lab.add_host("bird", "10.0.0.3/24")?;
    let h_gobgp = lab.add_host("gobgp", "10.0.0.4/24")?;
    let h_frr = lab.add_host("frr", "10.0.0.5/24")?;

    let t = Instant::now();
    let (injector, _stop) = start_injector(&inj, n)?;
    eprintln!("injector originated {n} prefixes in {:.1?}", t.elapsed());

    let example = peer_example()?;
    let ours = h_ours.spawn(
        "peer-example",
        &example.to_string_lossy(),
        &[
            "--local-as",
            "64513",
            "--router-id",
            OURS,
            "--peer",
            INJECTOR,
            "--peer-as",
            "64512",
            "--quiet",
            "--graceful-restart",
            "0",
        ],
    )?;
    let mut bc = BirdConfig::new(BIRD.parse()?, 64514);
    bc.neighbors
        .push(BirdNeighbor::new("inj", ip(INJECTOR), 64512));
    let bird = Bird::start(&h_bird, bc)?;
    let mut gc = GoBgpConfig::new(GOBGP.parse()?, 64515);
    gc.neighbors.push(GoBgpNeighbor::new(ip(INJECTOR), 64512));
    let gobgp = GoBgp::start(&h_gobgp, gc)?;
    let mut fc = FrrConfig::new(FRR.parse()?, 64516);
    fc.neighbors.push(FrrNeighbor::new(ip(INJECTOR), 64512));
    let frr = Frr::start(&h_frr, fc)?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let t0 = Instant::now();
    for (addr, asn) in [(OURS, 64513), (BIRD, 64514), (GOBGP, 64515), (FRR, 64516)] {
        let mut p = PeerConfig::new(ip(addr), asn);
        p.connect_retry = Duration::from_secs(1);
        p.hold_time = 90;
        rt.block_on(injector.add_peer(p))?;
    }
    let names = ["tortie", "BIRD", "GoBGP", "FRR"];
    let mut done: [Option<Duration>; 4] = [None; 4];
    let mut rss: [Option<u64>; 4] = [None; 4];
    let deadline = t0 + Duration::from_secs(args.timeout);
    while done.iter().any(Option::is_none) && Instant::now() < deadline {
        let counts = [
            ours_count(&ours),
            bird.neighbors()?
                .first()
                .and_then(|x| x.prefixes_received)
                .unwrap_or(0),
            gobgp
                .neighbors()?
                .first()
                .and_then(|x| x.prefixes_received)
                .unwrap_or(0),
            frr.neighbors()?
                .first()
                .and_then(|x| x.prefixes_received)
                .unwrap_or(0),
        ];
        let procs = [&ours, bird.proc(), gobgp.proc(), frr.bgpd()];
        for i in 0..4 {
            rss[i] = procs[i].peak_rss_kib().or(rss[i]);
            if done[i].is_none() && counts[i] >= u64::from(n) {
                done[i] = Some(t0.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("| receiver | {n} prefixes in RIB after | peak RSS |");
    println!("|---|---|---|");
    for i in 0..4 {
        let time = done[i].map_or("timed out".to_string(), |d| {
            format!("{:.2} s", d.as_secs_f64())
        });
        let mem = rss[i].map_or("-".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        println!("| {} | {time} | {mem} |", names[i]);
    }
    Ok(())
}
