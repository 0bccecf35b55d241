//! Peers with one BGP neighbour, originates prefixes, and prints peer state changes and
//! the routes it learns until Ctrl-C (then sends Cease/Administrative Shutdown).
//!
//! Usage:
//!
//! ```text
//! cargo run -p tortie-bgp --example peer -- --local-as 64512 --router-id 10.0.0.1 \
//!     --peer 10.0.0.2 --peer-as 64513 [--port 179] [--password X] [--passive] \
//!     [--listen 0.0.0.0:179 | --no-listen] [--hold-time 90] [--graceful-restart 120] \
//!     [--quiet] --originate 10.244.1.0/26 [--originate 10.244.2.0/26 ...]
//! ```
//!
//! Output lines: `peer 10.0.0.2 Connect -> Established (Established)` when the session
//! changes state, `route + 10.245.0.0/26 via 10.0.0.2 as-path [64513]` when a route is
//! learned or changes, `route - 10.245.0.0/26` when it is withdrawn. With `--quiet`,
//! `routes N` (the number of learned prefixes) replaces the per-route lines.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use ipnetwork::IpNetwork;
use tortie_bgp::msg::AsSegment;
use tortie_bgp::speaker::{PeerConfig, RouteEvent, Speaker, SpeakerConfig};

#[derive(Parser, Debug)]
#[command(about = "Peer with one BGP neighbour and originate prefixes")]
struct Args {
    #[arg(long)]
    local_as: u32,
    #[arg(long)]
    router_id: Ipv4Addr,
    #[arg(long)]
    peer: IpAddr,
    #[arg(long)]
    peer_as: u32,
    /// The neighbour's TCP port.
    #[arg(long, default_value_t = 179)]
    port: u16,
    /// TCP MD5 password (RFC 2385).
    #[arg(long)]
    password: Option<String>,
    /// Do not dial; wait for the neighbour.
    #[arg(long)]
    passive: bool,
    /// Where to accept connections.
    #[arg(long, default_value = "0.0.0.0:179")]
    listen: SocketAddr,
    /// Do not listen at all.
    #[arg(long)]
    no_listen: bool,
    #[arg(long, default_value_t = 90)]
    hold_time: u16,
    /// Graceful-restart time to advertise (0: none).
    #[arg(long, default_value_t = 120)]
    graceful_restart: u16,
    /// Prefix to originate (repeatable).
    #[arg(long)]
    originate: Vec<IpNetwork>,
    /// Print `routes N` (learned prefixes) when it changes instead of every route.
    #[arg(long)]
    quiet: bool,
}

fn as_path(path: &[AsSegment]) -> String {
    let mut out = Vec::new();
    for seg in path {
        match seg {
            AsSegment::Sequence(v) | AsSegment::ConfedSequence(v) => {
                out.extend(v.iter().map(u32::to_string));
            }
            AsSegment::Set(v) | AsSegment::ConfedSet(v) => {
                let s: Vec<String> = v.iter().map(u32::to_string).collect();
                out.push(format!("{{{}}}", s.join(",")));
            }
        }
    }
    format!("[{}]", out.join(" "))
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let mut cfg = SpeakerConfig::new(args.local_as, args.router_id);
    cfg.listen = (!args.no_listen).then_some(args.listen);
    cfg.graceful_restart_time = (args.graceful_restart > 0).then_some(args.graceful_restart);
    let speaker = Speaker::start(cfg).await.context("starting the speaker")?;

    let mut peer = PeerConfig::new(args.peer, args.peer_as);
    peer.port = args.port;
    peer.password = args.password;
    peer.passive = args.passive;
    peer.hold_time = args.hold_time;
    peer.connect_retry = Duration::from_secs(2);
    peer.name = format!("Global_{}", args.peer.to_string().replace(['.', ':'], "_"));
    speaker.add_peer(peer).await.context("adding the peer")?;
    for p in &args.originate {
        speaker
            .originate(*p, None)
            .await
            .with_context(|| format!("originating {p}"))?;
    }
    let mut routes = speaker.subscribe_routes().await?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last = None;
    let mut learned = std::collections::HashSet::new();
    let mut printed = 0;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                speaker.shutdown("example stopped").await?;
                return Ok(());
            }
            _ = tick.tick() => {
                if args.quiet && learned.len() != printed {
                    printed = learned.len();
                    println!("routes {printed}");
                }
                for row in speaker.peer_states().await? {
                    let now = (row.state, row.info.clone());
                    if last.as_ref() != Some(&now) {
                        let from = last.as_ref().map_or("-".to_string(), |(s, _)| format!("{s}"));
                        println!("peer {} {from} -> {} ({})", row.address, row.state, row.info);
                        last = Some(now);
                    }
                }
            }
            ev = routes.recv() => match ev {
                Some(RouteEvent::Changed(c)) if args.quiet => {
                    if c.best().is_some_and(|b| b.peer_address.is_some()) {
                        learned.insert(c.prefix);
                    } else {
                        learned.remove(&c.prefix);
                    }
                }
                Some(RouteEvent::Changed(c)) => match c.best() {
                    Some(best) if best.peer_address.is_some() => {
                        let nh = best.next_hop.map_or("-".to_string(), |n| n.to_string());
                        println!("route + {} via {nh} as-path {}", c.prefix, as_path(&best.attrs.as_path));
                    }
                    Some(_) => {}
                    None => println!("route - {}", c.prefix),
                },
                Some(RouteEvent::Synced) => {}
                None => return Ok(()),
            },
        }
    }
}
