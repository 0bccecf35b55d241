//! GoBGP as a test peer: a TOML config rendered from [`GoBgpConfig`], `gobgpd` started
//! inside a lab [`Host`] with its gRPC API on the host's own loopback, the `gobgp` CLI
//! for routes and sessions, and parsers of its JSON output (`global rib -j`,
//! `neighbor -j`) into the common [`Route`] / [`Neighbor`]. GoBGP installs nothing into
//! the kernel. The parsers are pure functions tested on captured output.
//!
//! Timing to plan for: after any session loss GoBGP stays Idle for a fixed 5 s (its
//! `HOLDTIME_IDLE`; not configurable) and closes connections accepted meanwhile, so a
//! re-establishment after a peer restart takes about 5-6 s (measured 5.1 s against a
//! BIRD killed and restarted). `idle-hold-time-after-reset` (set to 1 here) only
//! applies to administrative resets.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnetwork::IpNetwork;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::lab::Host;
use crate::process::{Proc, run};
use crate::route::{AsSegment, BgpState, Neighbor, Origin, Route};
use crate::wait::wait_until;

/// Default gRPC API port (on the host namespace's loopback, so labs never clash).
pub const DEFAULT_API_PORT: u16 = 50051;

/// One `[[neighbors]]` entry.
#[derive(Clone, Debug)]
pub struct GoBgpNeighbor {
    pub address: IpAddr,
    pub remote_as: u32,
    /// Local AS for this session (default: global AS).
    pub local_as: Option<u32>,
    /// Remote TCP port (default 179).
    pub port: Option<u16>,
    /// Source address of the session.
    pub local_address: Option<IpAddr>,
    pub password: Option<String>,
    pub passive: bool,
    /// Hold time and keepalive (default 9 / 3: quick failure detection in tests).
    pub hold_time: u16,
    pub keepalive: u16,
    /// Graceful restart with this restart time (s).
    pub graceful_restart: Option<u32>,
    pub rr_client: bool,
    pub ipv4: bool,
    pub ipv6: bool,
    /// Raw TOML appended after this neighbor's tables (e.g. `[neighbors.ebgp-multihop.config]`).
    pub extra: String,
}

impl GoBgpNeighbor {
    /// An IPv4-unicast session to `address` in `remote_as`.
    pub fn new(address: IpAddr, remote_as: u32) -> GoBgpNeighbor {
        GoBgpNeighbor {
            address,
            remote_as,
            local_as: None,
            port: None,
            local_address: None,
            password: None,
            passive: false,
            hold_time: 9,
            keepalive: 3,
            graceful_restart: None,
            rr_client: false,
            ipv4: true,
            ipv6: false,
            extra: String::new(),
        }
    }
}

/// A whole gobgpd configuration plus what to originate once it runs.
#[derive(Clone, Debug)]
pub struct GoBgpConfig {
    pub router_id: Ipv4Addr,
    pub local_as: u32,
    /// BGP listen port (default 179); `Some(-1)` disables listening.
    pub listen_port: Option<i32>,
    /// gRPC API port on the host's loopback.
    pub api_port: u16,
    pub neighbors: Vec<GoBgpNeighbor>,
    /// Prefixes added to the global RIB after start (`gobgp global rib add`), with an
    /// optional next hop (None: GoBGP uses its session address).
    pub originate: Vec<(IpNetwork, Option<IpAddr>)>,
    /// Raw TOML appended at the end (policies, defined sets).
    pub extra: String,
}

impl GoBgpConfig {
    /// A config with no sessions.
    pub fn new(router_id: Ipv4Addr, local_as: u32) -> GoBgpConfig {
        GoBgpConfig {
            router_id,
            local_as,
            listen_port: None,
            api_port: DEFAULT_API_PORT,
            neighbors: Vec::new(),
            originate: Vec::new(),
            extra: String::new(),
        }
    }

    /// The TOML text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "[global.config]\n  as = {}\n  router-id = \"{}\"",
            self.local_as, self.router_id
        );
        if let Some(p) = self.listen_port {
            let _ = writeln!(s, "  port = {p}");
        }
        for n in &self.neighbors {
            render_neighbor(&mut s, n);
        }
        s.push_str(&self.extra);
        s.push('\n');
        s
    }
}

fn toml_str(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

fn render_neighbor(s: &mut String, n: &GoBgpNeighbor) {
    let _ = writeln!(
        s,
        "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}",
        n.address, n.remote_as
    );
    if let Some(a) = n.local_as {
        let _ = writeln!(s, "    local-as = {a}");
    }
    if let Some(p) = &n.password {
        let _ = writeln!(s, "    auth-password = {}", toml_str(p));
    }
    let _ = writeln!(
        s,
        "  [neighbors.timers.config]\n    connect-retry = 1\n    hold-time = {}\n    \
         keepalive-interval = {}\n    idle-hold-time-after-reset = 1",
        n.hold_time, n.keepalive
    );
    s.push_str("  [neighbors.transport.config]\n");
    if n.passive {
        s.push_str("    passive-mode = true\n");
    }
    if let Some(p) = n.port {
        let _ = writeln!(s, "    remote-port = {p}");
    }
    if let Some(a) = n.local_address {
        let _ = writeln!(s, "    local-address = \"{a}\"");
    }
    if let Some(t) = n.graceful_restart {
        let _ = writeln!(
            s,
            "  [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = {t}"
        );
    }
    if n.rr_client {
        s.push_str("  [neighbors.route-reflector.config]\n    route-reflector-client = true\n");
    }
    for (on, fam) in [(n.ipv4, "ipv4-unicast"), (n.ipv6, "ipv6-unicast")] {
        if on {
            let _ = writeln!(
                s,
                "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{fam}\""
            );
            if n.graceful_restart.is_some() {
                s.push_str(
                    "    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n",
                );
            }
        }
    }
    s.push_str(&n.extra);
}

/// A running gobgpd inside a lab host.
pub struct GoBgp {
    host: Host,
    dir: PathBuf,
    config: GoBgpConfig,
    proc: Proc,
}

impl std::fmt::Debug for GoBgp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoBgp")
            .field("host", &self.host.name())
            .field("dir", &self.dir)
            .finish()
    }
}

impl GoBgp {
    /// Writes `<lab dir>/<host>/gobgp-<api port>/gobgpd.toml`, starts gobgpd in `host`,
    /// waits until its API answers and adds [`GoBgpConfig::originate`].
    pub fn start(host: &Host, config: GoBgpConfig) -> Result<GoBgp> {
        let dir = host.dir(&format!("gobgp-{}", config.api_port))?;
        let proc = spawn_gobgpd(host, &dir, &config)?;
        let g = GoBgp {
            host: host.clone(),
            dir,
            config,
            proc,
        };
        g.wait_ready()?;
        g.originate_configured()?;
        Ok(g)
    }

    fn wait_ready(&self) -> Result<()> {
        wait_until(Duration::from_secs(10), Duration::from_millis(30), || {
            self.proc.check_running()?;
            self.gobgp(&["global"])
        })
        .map(|_| ())
    }

    fn originate_configured(&self) -> Result<()> {
        for (p, nh) in &self.config.originate {
            self.add_route(*p, *nh)?;
        }
        Ok(())
    }

    /// The directory holding config and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The daemon process (log, pid).
    pub fn proc(&self) -> &Proc {
        &self.proc
    }

    /// The config in use.
    pub fn config(&self) -> &GoBgpConfig {
        &self.config
    }

    /// Runs `gobgp -p <api port> ARGS..` inside the host, returns stdout.
    pub fn gobgp(&self, args: &[&str]) -> Result<String> {
        let port = self.config.api_port.to_string();
        let out = run(self.host.command("gobgp").args(["-p", &port]).args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `gobgp global rib add -a ipv4|ipv6 PREFIX [nexthop NH]`.
    pub fn add_route(&self, prefix: IpNetwork, next_hop: Option<IpAddr>) -> Result<()> {
        let p = prefix.to_string();
        let mut args = vec!["global", "rib", "add", "-a", family(&prefix), p.as_str()];
        let nh = next_hop.map(|n| n.to_string());
        if let Some(nh) = &nh {
            args.extend(["nexthop", nh.as_str()]);
        }
        self.gobgp(&args).map(|_| ())
    }

    /// `gobgp global rib del -a ipv4|ipv6 PREFIX`.
    pub fn del_route(&self, prefix: IpNetwork) -> Result<()> {
        let p = prefix.to_string();
        self.gobgp(&["global", "rib", "del", "-a", family(&prefix), &p])
            .map(|_| ())
    }

    /// The global RIB of one family (`"ipv4"` or `"ipv6"`), every path.
    pub fn routes(&self, family: &str) -> Result<Vec<Route>> {
        parse_rib(&self.gobgp(&["global", "rib", "-a", family, "-j"])?)
    }

    /// Routes received from `neighbor` before import policy (`neighbor IP adj-in`).
    pub fn adj_in(&self, neighbor: IpAddr, family: &str) -> Result<Vec<Route>> {
        let n = neighbor.to_string();
        parse_rib(&self.gobgp(&["neighbor", &n, "adj-in", "-a", family, "-j"])?)
    }

    /// Every configured session's state; last errors come from the daemon log.
    pub fn neighbors(&self) -> Result<Vec<Neighbor>> {
        let mut ns = parse_neighbors(&self.gobgp(&["neighbor", "-j"])?)?;
        let log = self.proc.log();
        for n in &mut ns {
            n.last_error = last_peer_down(&log, &n.name);
        }
        Ok(ns)
    }

    /// One session's state.
    pub fn neighbor(&self, address: IpAddr) -> Result<Neighbor> {
        self.neighbors()?
            .into_iter()
            .find(|n| n.address == Some(address))
            .ok_or_else(|| Error::parse("gobgp", format!("neighbor {address}"), "not shown"))
    }

    /// Waits until the session with `address` is Established.
    pub fn wait_established(&self, address: IpAddr, timeout: Duration) -> Result<()> {
        crate::wait::wait_established(&format!("gobgp neighbor {address}"), timeout, || {
            self.neighbor(address)
        })
    }

    /// SIGKILL (a crash).
    pub fn kill(&self) {
        self.proc.kill();
    }

    /// SIGTERM, then SIGKILL after a grace period.
    pub fn stop(&self) {
        self.proc.stop();
    }

    /// Starts gobgpd again (same dir and API port), optionally with a new config, and
    /// originates the configured prefixes again.
    pub fn restart(&mut self, config: Option<GoBgpConfig>) -> Result<()> {
        self.proc.stop();
        if let Some(c) = config {
            self.config = c;
        }
        self.proc = spawn_gobgpd(&self.host, &self.dir, &self.config)?;
        self.wait_ready()?;
        self.originate_configured()
    }
}

fn family(p: &IpNetwork) -> &'static str {
    if p.is_ipv6() { "ipv6" } else { "ipv4" }
}

fn spawn_gobgpd(host: &Host, dir: &Path, config: &GoBgpConfig) -> Result<Proc> {
    let conf = dir.join("gobgpd.toml");
    std::fs::write(&conf, config.render())
        .map_err(|e| Error::io(format!("write {}", conf.display()), e))?;
    let mut cmd = host.command("gobgpd");
    cmd.arg("-f")
        .arg(&conf)
        .args(["-t", "toml", "--api-hosts"])
        .arg(format!("127.0.0.1:{}", config.api_port));
    host.spawn_command(&format!("gobgpd-{}", config.api_port), cmd)
}

/// The last error gobgpd logged for `peer` (JSON log at the default level): the
/// `Reason` of a `Peer Down` line, or the text of a NOTIFICATION it sent (e.g. `sent
/// notification: as number mismatch expected 65077, received 65001`). GoBGP does not
/// log NOTIFICATIONs it receives before Established at that level.
pub fn last_peer_down(log: &str, peer: &str) -> Option<String> {
    log.lines().rev().find_map(|l| {
        let v: Value = serde_json::from_str(l).ok()?;
        if v.get("Key")?.as_str()? != peer {
            return None;
        }
        match v.get("msg")?.as_str()? {
            "Peer Down" => Some(v.get("Reason")?.as_str()?.to_string()),
            "sent notification" => Some(format!(
                "sent notification: {}",
                v.get("Data").and_then(Value::as_str).unwrap_or("")
            )),
            _ => None,
        }
    })
}

/// Parses `gobgp neighbor -j` (a JSON array of peers).
pub fn parse_neighbors(json: &str) -> Result<Vec<Neighbor>> {
    let v: Value = serde_json::from_str(json.trim())
        .map_err(|e| Error::parse("gobgp", "neighbor -j", e.to_string()))?;
    let peers = v
        .as_array()
        .ok_or_else(|| Error::parse("gobgp", "neighbor -j", "not an array"))?;
    peers
        .iter()
        .map(|p| {
            let addr = p
                .pointer("/conf/neighbor_address")
                .or_else(|| p.pointer("/state/neighbor_address"))
                .and_then(Value::as_str)
                .ok_or_else(|| Error::parse("gobgp", "neighbor", "no neighbor_address"))?;
            // apipb.PeerState.SessionState; absent (0) = unknown.
            let code = p
                .pointer("/state/session_state")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let state = match code {
                1 => BgpState::Idle,
                2 => BgpState::Connect,
                3 => BgpState::Active,
                4 => BgpState::OpenSent,
                5 => BgpState::OpenConfirm,
                6 => BgpState::Established,
                n => BgpState::Other(format!("session_state {n}")),
            };
            let remote_as = p
                .pointer("/conf/peer_asn")
                .and_then(Value::as_u64)
                .and_then(|a| u32::try_from(a).ok());
            let fams = p.get("afi_safis").and_then(Value::as_array);
            let sum = |key: &str| -> Option<u64> {
                fams.map(|f| {
                    f.iter()
                        .filter_map(|a| a.pointer(&format!("/state/{key}")).and_then(Value::as_u64))
                        .sum()
                })
            };
            Ok(Neighbor {
                name: addr.to_string(),
                address: addr.parse().ok(),
                remote_as,
                state,
                last_error: None,
                prefixes_received: sum("accepted"),
                prefixes_sent: sum("advertised"),
            })
        })
        .collect()
}

fn as_u32(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

/// Parses `gobgp global rib -j` / `neighbor IP adj-in -j`: `{prefix: [path, ..], ..}`.
pub fn parse_rib(json: &str) -> Result<Vec<Route>> {
    let json = json.trim();
    if json.is_empty() || json == "null" {
        return Ok(Vec::new());
    }
    let v: Value =
        serde_json::from_str(json).map_err(|e| Error::parse("gobgp", "rib -j", e.to_string()))?;
    let map = v
        .as_object()
        .ok_or_else(|| Error::parse("gobgp", "rib -j", "not an object"))?;
    let mut out = Vec::new();
    for (prefix, paths) in map {
        let p: IpNetwork = prefix
            .parse()
            .map_err(|e| Error::parse("gobgp", format!("prefix {prefix:?}"), format!("{e}")))?;
        for path in paths.as_array().into_iter().flatten() {
            out.push(parse_path(p, path)?);
        }
    }
    Ok(out)
}

fn parse_path(prefix: IpNetwork, path: &Value) -> Result<Route> {
    let mut r = Route::new(prefix);
    r.best = path.get("best").and_then(Value::as_bool).unwrap_or(false);
    r.stale = path.get("stale").and_then(Value::as_bool).unwrap_or(false);
    r.from = path
        .get("neighbor-ip")
        .and_then(Value::as_str)
        .map(str::to_string);
    for attr in path
        .get("attrs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ty = attr.get("type").and_then(Value::as_u64).unwrap_or(0);
        match ty {
            1 => {
                r.origin = match attr.get("value").and_then(Value::as_u64) {
                    Some(0) => Some(Origin::Igp),
                    Some(1) => Some(Origin::Egp),
                    Some(2) => Some(Origin::Incomplete),
                    _ => None,
                }
            }
            2 => {
                for seg in attr
                    .get("as_paths")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let asns: Vec<u32> = seg
                        .get("asns")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(as_u32)
                        .collect();
                    // RFC 4271: 1 = AS_SET, 2 = AS_SEQUENCE.
                    match seg.get("segment_type").and_then(Value::as_u64) {
                        Some(1) => r.as_path.push(AsSegment::Set(asns)),
                        _ => r.as_path.push(AsSegment::Sequence(asns)),
                    }
                }
            }
            3 | 14 => {
                let nh = attr
                    .get("nexthop")
                    .and_then(Value::as_str)
                    .or_else(|| {
                        attr.get("nexthops")
                            .and_then(Value::as_array)
                            .and_then(|a| a.first())
                            .and_then(Value::as_str)
                    })
                    .and_then(|s| s.parse::<IpAddr>().ok());
                if nh.is_some() {
                    r.next_hop = nh;
                }
            }
            4 => r.med = attr.get("metric").and_then(as_u32),
            5 => r.local_pref = attr.get("value").and_then(as_u32),
            8 => {
                for c in attr
                    .get("communities")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(c) = as_u32(c) {
                        let hi = u16::try_from(c >> 16).unwrap_or(0);
                        let lo = u16::try_from(c & 0xffff).unwrap_or(0);
                        r.communities.push((hi, lo));
                    }
                }
            }
            32 => {
                for c in attr
                    .get("communities")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let g = c.get("global_admin").and_then(as_u32).unwrap_or(0);
                    let a = c.get("local_data1").and_then(as_u32).unwrap_or(0);
                    let b = c.get("local_data2").and_then(as_u32).unwrap_or(0);
                    r.large_communities.push((g, a, b));
                }
            }
            _ => {}
        }
    }
    // GoBGP shows its own originated routes with next hop 0.0.0.0 / ::.
    if r.next_hop.is_some_and(|n| n.is_unspecified()) {
        r.next_hop = None;
    }
    Ok(r)
}

#[cfg(test)]
#[path = "gobgp_tests.rs"]
mod tests;
