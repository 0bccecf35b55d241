//! The benchmark's receivers, one per run in a fresh lab host: our speaker (this same
//! binary in `receive` mode, its own process so its memory is its own), BIRD 2, GoBGP and
//! FRR, each peering over eBGP with the injector. Each knows how to read how many of the
//! benchmark's prefixes it holds (one cheap query per poll) and which processes are
//! "the daemon" for peak RSS (VmHWM) and CPU time.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use testlab::bird::{Bird, BirdCli, BirdConfig, BirdNeighbor};
use testlab::frr::{Frr, FrrConfig, FrrNeighbor};
use testlab::gobgp::{GoBgp, GoBgpConfig, GoBgpNeighbor};
use testlab::{Host, Proc};

/// Which receiver a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tortie,
    Bird,
    GoBgp,
    Frr,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Tortie, Kind::Bird, Kind::GoBgp, Kind::Frr];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Tortie => "tortie",
            Kind::Bird => "BIRD 2",
            Kind::GoBgp => "GoBGP",
            Kind::Frr => "FRR",
        }
    }

    /// Parses a `--only` item (`tortie`, `bird`, `gobgp`, `frr`).
    pub fn parse(s: &str) -> Result<Kind> {
        match s.to_ascii_lowercase().as_str() {
            "tortie" | "ours" => Ok(Kind::Tortie),
            "bird" => Ok(Kind::Bird),
            "gobgp" => Ok(Kind::GoBgp),
            "frr" => Ok(Kind::Frr),
            other => bail!("--only: unknown receiver {other:?} (tortie, bird, gobgp, frr)"),
        }
    }
}

/// Session parameters shared by every receiver.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    pub injector: Ipv4Addr,
    pub injector_as: u32,
    pub address: Ipv4Addr,
    pub local_as: u32,
    pub prefixes: u32,
}

/// A started receiver.
pub enum Receiver {
    Tortie(Proc),
    /// With a persistent control-socket session: a `birdc` run costs ~2 ms, which would
    /// make BIRD's polls coarser than the others'.
    Bird(Bird, std::cell::RefCell<BirdCli>),
    GoBgp(GoBgp),
    Frr(Frr),
}

const HOLD: u16 = 90;
const KEEPALIVE: u16 = 30;

impl Receiver {
    /// Starts `kind` in `host`; it dials the injector (each daemon with its connect
    /// delay shortened to 1 s; the clock only starts at Established).
    /// `wrap` (tortie only) prefixes the receiver's command line, e.g.
    /// `valgrind --tool=callgrind` for a profile.
    pub fn start(
        kind: Kind,
        host: &Host,
        s: Session,
        self_exe: &Path,
        wrap: &[String],
        threads: usize,
    ) -> Result<Receiver> {
        let inj = IpAddr::V4(s.injector);
        Ok(match kind {
            Kind::Tortie => {
                let exe = self_exe.to_string_lossy().into_owned();
                let (program, mut args) = match wrap.split_first() {
                    Some((w, rest)) => (w.clone(), rest.to_vec()),
                    None => (exe.clone(), Vec::new()),
                };
                if !wrap.is_empty() {
                    args.push(exe);
                }
                args.extend([
                    "receive".to_string(),
                    "--local-as".into(),
                    s.local_as.to_string(),
                    "--router-id".into(),
                    s.address.to_string(),
                    "--peer".into(),
                    s.injector.to_string(),
                    "--peer-as".into(),
                    s.injector_as.to_string(),
                    "--prefixes".into(),
                    s.prefixes.to_string(),
                    "--threads".into(),
                    threads.to_string(),
                ]);
                let p = host.spawn("tortie-receiver", &program, &args)?;
                testlab::wait_until(Duration::from_secs(60), Duration::from_millis(5), || {
                    p.check_running()?;
                    if p.log().lines().any(|l| l == "started") {
                        Ok(())
                    } else {
                        Err(anyhow!("tortie receiver not started yet"))
                    }
                })?;
                Receiver::Tortie(p)
            }
            Kind::Bird => {
                let mut c = BirdConfig::new(s.address, s.local_as);
                let mut n = BirdNeighbor::new("inj", inj, s.injector_as);
                n.hold_time = Some(HOLD);
                n.keepalive_time = Some(KEEPALIVE);
                c.neighbors.push(n);
                let b = Bird::start(host, c)?;
                let cli = b.cli()?;
                Receiver::Bird(b, std::cell::RefCell::new(cli))
            }
            Kind::GoBgp => {
                let mut c = GoBgpConfig::new(s.address, s.local_as);
                let mut n = GoBgpNeighbor::new(inj, s.injector_as);
                n.hold_time = HOLD;
                n.keepalive = KEEPALIVE;
                c.neighbors.push(n);
                Receiver::GoBgp(GoBgp::start(host, c)?)
            }
            Kind::Frr => {
                let mut c = FrrConfig::new(s.address, s.local_as);
                let mut n = FrrNeighbor::new(inj, s.injector_as);
                n.hold_time = HOLD;
                n.keepalive = KEEPALIVE;
                c.neighbors.push(n);
                Receiver::Frr(Frr::start(host, c)?)
            }
        })
    }

    /// How many benchmark prefixes the receiver holds now:
    /// - tortie: distinct prefixes in its Loc-RIB, from `subscribe_routes` (the receive
    ///   mode's last `count`/`full` line);
    /// - BIRD: the session's `Routes: N imported` (`show protocols all inj` on a kept-open
    ///   control socket);
    /// - GoBGP: `Destination: N` of `gobgp global rib summary -a ipv4`;
    /// - FRR: the injector's `acceptedPrefixCounter` (`show bgp neighbors
    ///   INJECTOR json`, bgpd only).
    pub fn count(&self, injector: Ipv4Addr) -> Result<u64> {
        match self {
            Receiver::Tortie(p) => {
                p.check_running()?;
                Ok(tortie_lines(&p.log()).0)
            }
            Receiver::Bird(_, cli) => Ok(cli
                .borrow_mut()
                .protocol_state("inj")?
                .prefixes_received
                .unwrap_or(0)),
            Receiver::GoBgp(g) => {
                let out = g.gobgp(&["global", "rib", "summary", "-a", "ipv4"])?;
                gobgp_destinations(&out)
            }
            Receiver::Frr(f) => {
                // `-d bgpd`: ask bgpd alone (plain `vtysh` connects to zebra too); the
                // neighbour view reads a counter, the summary would also walk the table.
                let cmd = format!("show bgp neighbors {injector} json");
                let out = testlab::process::run(
                    std::process::Command::new("vtysh")
                        .arg("--vty_socket")
                        .arg(f.dir())
                        .args(["-d", "bgpd", "-c", &cmd]),
                )?;
                frr_accepted(&String::from_utf8_lossy(&out.stdout), injector)
            }
        }
    }

    /// tortie only: CLOCK_MONOTONIC (ns) at which its subscriber saw the last prefix.
    pub fn exact_full_ns(&self) -> Option<u64> {
        match self {
            Receiver::Tortie(p) => tortie_lines(&p.log()).1,
            _ => None,
        }
    }

    /// The processes whose memory and CPU count for this receiver.
    pub fn procs(&self) -> Vec<&Proc> {
        match self {
            Receiver::Tortie(p) => vec![p],
            Receiver::Bird(b, _) => vec![b.proc()],
            Receiver::GoBgp(g) => vec![g.proc()],
            Receiver::Frr(f) => vec![f.bgpd(), f.zebra()],
        }
    }

    /// Last lines of the daemon logs, for error messages.
    pub fn log_tail(&self) -> String {
        self.procs()
            .iter()
            .map(|p| format!("--- {}\n{}", p.name(), p.log_tail(15)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// From the receive mode's output: (latest count, CLOCK_MONOTONIC of `full`).
fn tortie_lines(log: &str) -> (u64, Option<u64>) {
    let mut count = 0;
    let mut full = None;
    for l in log.lines() {
        let mut w = l.split_whitespace();
        match (w.next(), w.next(), w.next()) {
            (Some("count"), Some(n), _) => count = n.parse().unwrap_or(count),
            (Some("full"), Some(n), Some(t)) => {
                count = n.parse().unwrap_or(count);
                full = t.parse().ok();
            }
            _ => {}
        }
    }
    (count, full)
}

/// `Table ipv4-unicast\nDestination: 100000, Path: 100000`.
fn gobgp_destinations(out: &str) -> Result<u64> {
    out.split([',', '\n'])
        .find_map(|part| part.trim().strip_prefix("Destination:"))
        .map(|n| n.trim().parse::<u64>())
        .ok_or_else(|| anyhow!("gobgp global rib summary: no Destination in {out:?}"))?
        .context("gobgp global rib summary: Destination is not a number")
}

/// `{"10.0.0.1": {"addressFamilyInfo": {"ipv4Unicast": {"acceptedPrefixCounter": N}}}}`
/// (not up yet: 0).
fn frr_accepted(out: &str, injector: Ipv4Addr) -> Result<u64> {
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).context("show bgp neighbors json")?;
    Ok(v.pointer(&format!(
        "/{injector}/addressFamilyInfo/ipv4Unicast/acceptedPrefixCounter"
    ))
    .and_then(serde_json::Value::as_u64)
    .unwrap_or(0))
}

/// User + system CPU seconds of `pid` so far (`/proc/PID/stat` fields 14 and 15).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Some(ticks as f64 / hz)
}

/// How long to wait between polls.
pub fn poll_interval(ms: u64) -> Duration {
    Duration::from_millis(ms.max(1))
}
