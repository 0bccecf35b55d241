//! Whole-system BGP receive benchmark in network namespaces (root; a measurement, not a
//! test). One injector sends N (default 100,000) distinct /26 prefixes of 10.128.0.0/9 in
//! as few 4096-octet UPDATEs as fit (≈99); the time is measured from the injector's first
//! UPDATE byte until ALL N are in the receiver's RIB. Receivers, one after another, each
//! in a fresh lab (two fresh namespaces): tortie (this binary's `receive` mode around
//! `Speaker`), BIRD 2, GoBGP and FRR; `--runs` rounds (default 3), receivers interleaved.
//! Prints a Markdown table (median, spread, ratios to BIRD, peak RSS, CPU).
//!
//! Usage (one command; builds in release mode and runs as root):
//!
//! ```text
//! bash bgp/benches/system/run.sh [--prefixes 100000] [--runs 3] [--poll-ms 1] \
//!     [--only tortie,bird,gobgp,frr]
//! # or: cargo run --release -p tortie-bgp --example bench_100k -- [same flags]
//! ```
//!
//! The injector is our own codec on a plain socket (`bgp/benches/system/injector.rs`),
//! the table encoded before the clock starts, so every receiver gets the same bytes and
//! the clock measures the receiver alone. Each receiver's count is polled with a
//! `--poll-ms` pause (a command on a kept-open BIRD control socket, a `gobgp`/`vtysh`
//! call, or reading tortie's output); the end time is the end of the first poll that sees
//! all N.

#[path = "../benches/system/injector.rs"]
mod injector;
#[path = "../benches/system/receivers.rs"]
mod receivers;
#[path = "../benches/system/report.rs"]
mod report;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use testlab::Lab;
use tortie_bgp::msg::Afi;
use tortie_bgp::speaker::{PeerConfig, RouteEvent, Speaker, SpeakerConfig};
use tortie_bgp::wire::Ctx;

use injector::{Injector, InjectorId, Table};
use receivers::{Kind, Receiver, Session};
use report::{Row, Sample};

#[derive(Parser, Debug)]
#[command(about = "100k-prefix BGP receive benchmark: tortie vs BIRD, GoBGP, FRR")]
struct Args {
    #[command(subcommand)]
    mode: Option<Mode>,
    /// Prefixes to inject (at most 131072).
    #[arg(long, default_value_t = 100_000)]
    prefixes: u32,
    /// Rounds over all receivers.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Pause between count polls, milliseconds (the table fills in tens of milliseconds,
    /// so coarser polling hides the difference between receivers).
    #[arg(long, default_value_t = 1)]
    poll_ms: u64,
    /// Seconds to wait for one receiver's full table.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Milliseconds to wait after the full count before reading peak RSS (a daemon may
    /// still be working, e.g. FRR's zebra installing routes).
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
    /// Command prefix for tortie's receiver, e.g. `--wrap "valgrind --tool=callgrind
    /// --callgrind-out-file=/tmp/cg.out"` (then its times and memory are valgrind's).
    #[arg(long, default_value = "")]
    wrap: String,
    /// Tokio worker threads of tortie's receiver (0: current-thread runtime).
    #[arg(long, default_value_t = 2)]
    tortie_threads: usize,
    /// Comma-separated receivers (tortie, bird, gobgp, frr); default all four.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// (internal) tortie's receiver: a speaker that dials the injector and prints
    /// `count N` as its Loc-RIB fills and `full N MONOTONIC_NS` once it holds all N.
    Receive {
        #[arg(long)]
        local_as: u32,
        #[arg(long)]
        router_id: Ipv4Addr,
        #[arg(long)]
        peer: IpAddr,
        #[arg(long)]
        peer_as: u32,
        #[arg(long)]
        prefixes: u32,
        /// Tokio worker threads (0: a current-thread runtime).
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
}

const INJECTOR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const INJECTOR_AS: u32 = 64512;
const RECEIVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const RECEIVER_AS: u32 = 64513;

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(Mode::Receive {
        local_as,
        router_id,
        peer,
        peer_as,
        prefixes,
        threads,
    }) = args.mode
    {
        let rt = if threads == 0 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()?
        };
        return rt.block_on(receive(local_as, router_id, peer, peer_as, prefixes));
    }
    orchestrate(&args)
}

/// tortie's receiver: counts distinct benchmark prefixes in the Loc-RIB through
/// `subscribe_routes` (a 16 KiB bitmap, so counting adds no per-route memory).
async fn receive(
    local_as: u32,
    router_id: Ipv4Addr,
    peer: IpAddr,
    peer_as: u32,
    n: u32,
) -> Result<()> {
    let mut cfg = SpeakerConfig::new(local_as, router_id);
    cfg.listen = None;
    cfg.graceful_restart_time = None;
    let speaker = Speaker::start(cfg).await.context("starting the speaker")?;
    let mut routes = speaker.subscribe_routes().await?;
    let mut p = PeerConfig::new(peer, peer_as);
    p.connect_retry = Duration::from_secs(1);
    p.families = vec![Afi::Ipv4Unicast];
    speaker.add_peer(p).await.context("adding the injector")?;
    println!("started");
    let mut bits = vec![0u64; (injector::MAX_PREFIXES / 64) as usize];
    let mut count: u64 = 0;
    let mut full = false;
    while let Some(ev) = routes.recv().await {
        let RouteEvent::Changed(c) = ev else { continue };
        let Some(i) = injector::index_of(&c.prefix) else {
            continue;
        };
        let (w, b) = ((i / 64) as usize, 1u64 << (i % 64));
        let Some(word) = bits.get_mut(w) else {
            continue;
        };
        let had = *word & b != 0;
        if c.paths.is_empty() && had {
            *word &= !b;
            count -= 1;
        } else if !c.paths.is_empty() && !had {
            *word |= b;
            count += 1;
            if count.is_multiple_of(10_000) && count < u64::from(n) {
                println!("count {count}");
            }
        }
        if !full && count >= u64::from(n) {
            full = true;
            println!("full {count} {}", injector::monotonic_ns());
        }
    }
    Ok(())
}

fn orchestrate(args: &Args) -> Result<()> {
    testlab::require_root();
    let n = args.prefixes;
    if n == 0 || n > injector::MAX_PREFIXES {
        bail!(
            "--prefixes must be 1..={} (the /26s of 10.128.0.0/9)",
            injector::MAX_PREFIXES
        );
    }
    let kinds: Vec<Kind> = if args.only.is_empty() {
        Kind::ALL.to_vec()
    } else {
        args.only
            .iter()
            .map(|s| Kind::parse(s))
            .collect::<Result<_>>()?
    };
    let id = InjectorId {
        address: INJECTOR,
        asn: INJECTOR_AS,
    };
    let ctx = Ctx {
        four_octet_as: true,
        ..Ctx::default()
    };
    let table = Arc::new(injector::build_table(id, n, &ctx)?);
    eprintln!(
        "table: {} prefixes in {} UPDATEs, {} octets (+ End-of-RIB)",
        table.prefixes,
        table.updates,
        table.bytes.len()
    );
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); kinds.len()];
    let mut failures: Vec<Vec<String>> = vec![Vec::new(); kinds.len()];
    for run in 1..=args.runs {
        for (k, kind) in kinds.iter().enumerate() {
            match run_once(*kind, &table, args, &exe) {
                Ok(s) => {
                    eprintln!(
                        "run {run} {:>7}: full after {:.3} s (exact {}), table written in {:.3} s, \
                         peak RSS {:.1} MiB (start {:.1}), CPU {:.2} s, poll {:.1} ms \
                         (idle {:.1} ms), window {:.3} s",
                        kind.name(),
                        s.polled_s,
                        s.exact_s.map_or("-".into(), |e| format!("{e:.3} s")),
                        s.sent_s,
                        s.peak_rss_kib as f64 / 1024.0,
                        s.start_rss_kib as f64 / 1024.0,
                        s.cpu_s,
                        s.poll_s * 1000.0,
                        s.idle_poll_s * 1000.0,
                        s.window_s
                    );
                    samples[k].push(s);
                }
                Err(e) => {
                    eprintln!("run {run} {:>7}: FAILED: {e:#}", kind.name());
                    failures[k].push(format!("{e:#}"));
                }
            }
        }
    }
    let rows: Vec<Row> = kinds
        .iter()
        .zip(samples.iter().zip(failures))
        .map(|(k, (s, f))| Row::new(k.name(), s, f))
        .collect();
    println!(
        "\n{} prefixes (/26 of 10.128.0.0/9) in {} UPDATEs of ≤4096 octets; {} run(s) per \
         receiver; poll every {} ms; whole benchmark {:.0} s\n",
        n,
        table.updates,
        args.runs,
        args.poll_ms,
        started.elapsed().as_secs_f64()
    );
    print!("{}", report::markdown(&rows, Kind::Bird.name()));
    if let Some(e) = rows
        .iter()
        .find(|r| r.name == Kind::Tortie.name())
        .and_then(|t| t.exact_s)
    {
        println!("\ntortie's own timestamp of its last prefix (median): {e:.3} s");
    }
    for r in &rows {
        if let (Some(p), Some(w)) = (r.poll_ms, r.window_s) {
            println!(
                "{}: one count poll takes {p:.1} ms; the full table arrived within the last \
                 {w:.3} s before the reported time (median)",
                r.name
            );
        }
    }
    if rows.iter().any(|r| !r.failures.is_empty()) {
        bail!("some runs failed (see above)");
    }
    Ok(())
}

fn sum_kib(rx: &Receiver, f: fn(&testlab::Proc) -> Option<u64>) -> u64 {
    rx.procs().iter().filter_map(|p| f(p)).sum()
}

/// One receiver in a fresh lab: start it, wait for the session and the table, poll the
/// count until it is full, read memory and CPU, tear everything down (the lab's guard).
fn run_once(kind: Kind, table: &Arc<Table>, args: &Args, exe: &std::path::Path) -> Result<Sample> {
    let lab = Lab::new("b100k")?;
    let inj_host = lab.add_host("inj", &format!("{INJECTOR}/24"))?;
    let rx_host = lab.add_host("rx", &format!("{RECEIVER}/24"))?;
    let id = InjectorId {
        address: INJECTOR,
        asn: INJECTOR_AS,
    };
    let inj = Injector::start(
        &inj_host,
        id,
        SocketAddr::new(IpAddr::V4(INJECTOR), 179),
        Arc::clone(table),
        Duration::from_secs(30),
    )?;
    let session = Session {
        injector: INJECTOR,
        injector_as: INJECTOR_AS,
        address: RECEIVER,
        local_as: RECEIVER_AS,
        prefixes: table.prefixes,
    };
    let wrap: Vec<String> = args.wrap.split_whitespace().map(String::from).collect();
    let rx = Receiver::start(kind, &rx_host, session, exe, &wrap, args.tortie_threads)?;
    let start_rss = sum_kib(&rx, testlab::Proc::rss_kib);
    let sent = inj
        .wait_sent(Duration::from_secs(30))
        .with_context(|| format!("{} never took the table:\n{}", kind.name(), rx.log_tail()))?;
    let interval = receivers::poll_interval(args.poll_ms);
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let want = u64::from(table.prefixes);
    let (mut polls, mut poll_time) = (0u32, Duration::ZERO);
    // Start of the previous poll: the table was not full when the receiver answered it,
    // so the true time lies between it and the end of the first full poll.
    let mut prev_start_ns = sent.t0_ns;
    let (full_ns, low_ns) = loop {
        let t = Instant::now();
        let start_ns = injector::monotonic_ns();
        let c = rx.count(INJECTOR);
        let now_ns = injector::monotonic_ns();
        polls += 1;
        poll_time += t.elapsed();
        match c {
            Ok(c) if c >= want => break (now_ns, prev_start_ns),
            Ok(_) => {}
            Err(e) => eprintln!("{}: poll failed: {e:#}", kind.name()),
        }
        prev_start_ns = start_ns;
        if Instant::now() > deadline {
            bail!(
                "{} did not reach {want} prefixes within {} s (last count {:?}):\n{}",
                kind.name(),
                args.timeout,
                rx.count(INJECTOR).ok(),
                rx.log_tail()
            );
        }
        std::thread::sleep(interval);
    };
    let cpu_s = rx
        .procs()
        .iter()
        .filter_map(|p| receivers::cpu_seconds(p.pid()))
        .sum();
    std::thread::sleep(Duration::from_millis(args.settle_ms));
    let peak = sum_kib(&rx, testlab::Proc::peak_rss_kib);
    // One more poll on the now idle daemon: how much of a poll is the tool itself.
    let t = Instant::now();
    let _ = rx.count(INJECTOR);
    let idle_poll_s = t.elapsed().as_secs_f64();
    let secs = |ns: u64| ns.saturating_sub(sent.t0_ns) as f64 / 1e9;
    Ok(Sample {
        polled_s: secs(full_ns),
        window_s: (full_ns.saturating_sub(low_ns)) as f64 / 1e9,
        exact_s: rx.exact_full_ns().map(secs),
        sent_s: secs(sent.done_ns),
        peak_rss_kib: peak,
        start_rss_kib: start_rss,
        cpu_s,
        idle_poll_s,
        poll_s: poll_time.as_secs_f64() / f64::from(polls.max(1)),
    })
}
