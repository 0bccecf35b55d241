//! FRR as a test peer: `zebra` + `bgpd` started in the foreground inside a lab [`Host`]
//! (tracked by PID; they drop privileges to user `frr`), with their config, zserv socket,
//! vty sockets and pid files in one directory owned by `frr:frr`; `vtysh --vty_socket`
//! for commands; parsers of FRR's JSON (`show bgp <afi> unicast json`, the per-prefix
//! detail, `show bgp neighbors json`) into the common [`Route`] / [`Neighbor`].

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ipnetwork::IpNetwork;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::lab::Host;
use crate::process::{Proc, run};
use crate::route::{AsSegment, BgpState, Neighbor, Origin, Route, parse_as_path};
use crate::wait::wait_until;

const ZEBRA: &str = "/usr/lib/frr/zebra";
const BGPD: &str = "/usr/lib/frr/bgpd";

/// One `neighbor` of `router bgp`.
#[derive(Clone, Debug)]
pub struct FrrNeighbor {
    pub address: IpAddr,
    pub remote_as: u32,
    /// Remote TCP port (default 179).
    pub port: Option<u16>,
    pub password: Option<String>,
    /// `timers KEEPALIVE HOLD` (default 3 9: quick failure detection in tests).
    pub keepalive: u16,
    pub hold_time: u16,
    pub passive: bool,
    pub rr_client: bool,
    pub update_source: Option<IpAddr>,
    pub ipv4: bool,
    pub ipv6: bool,
    /// Extra `neighbor <address> ...` lines, written as given inside `router bgp`.
    pub extra: Vec<String>,
}

impl FrrNeighbor {
    /// An IPv4-unicast session to `address` in `remote_as`.
    pub fn new(address: IpAddr, remote_as: u32) -> FrrNeighbor {
        FrrNeighbor {
            address,
            remote_as,
            port: None,
            password: None,
            keepalive: 3,
            hold_time: 9,
            passive: false,
            rr_client: false,
            update_source: None,
            ipv4: true,
            ipv6: false,
            extra: Vec::new(),
        }
    }
}

/// A bgpd configuration.
#[derive(Clone, Debug)]
pub struct FrrConfig {
    pub router_id: Ipv4Addr,
    pub local_as: u32,
    pub neighbors: Vec<FrrNeighbor>,
    /// Prefixes to originate (`network X`, with `no bgp network import-check`).
    pub networks: Vec<IpNetwork>,
    /// BGP listen port (`bgpd -p`; default 179).
    pub listen_port: Option<u16>,
    /// Graceful restart (RFC 4724) with this restart time (s).
    pub graceful_restart: Option<u32>,
    /// Raw lines appended inside `router bgp`.
    pub extra: String,
}

impl FrrConfig {
    /// A config with no sessions.
    pub fn new(router_id: Ipv4Addr, local_as: u32) -> FrrConfig {
        FrrConfig {
            router_id,
            local_as,
            neighbors: Vec::new(),
            networks: Vec::new(),
            listen_port: None,
            graceful_restart: None,
            extra: String::new(),
        }
    }

    /// The bgpd config text.
    pub fn render(&self) -> String {
        let mut s = String::from("frr defaults traditional\nlog stdout informational\n!\n");
        let _ = writeln!(s, "router bgp {}", self.local_as);
        let _ = writeln!(s, " bgp router-id {}", self.router_id);
        s.push_str(" no bgp ebgp-requires-policy\n no bgp network import-check\n");
        if let Some(t) = self.graceful_restart {
            let _ = writeln!(
                s,
                " bgp graceful-restart\n bgp graceful-restart restart-time {t}"
            );
        }
        for n in &self.neighbors {
            let a = n.address;
            let _ = writeln!(s, " neighbor {a} remote-as {}", n.remote_as);
            let _ = writeln!(s, " neighbor {a} timers {} {}", n.keepalive, n.hold_time);
            let _ = writeln!(s, " neighbor {a} timers connect 1");
            let _ = writeln!(s, " neighbor {a} advertisement-interval 0");
            if let Some(p) = n.port {
                let _ = writeln!(s, " neighbor {a} port {p}");
            }
            if let Some(p) = &n.password {
                let _ = writeln!(s, " neighbor {a} password {p}");
            }
            if n.passive {
                let _ = writeln!(s, " neighbor {a} passive");
            }
            if let Some(src) = n.update_source {
                let _ = writeln!(s, " neighbor {a} update-source {src}");
            }
            for l in &n.extra {
                let _ = writeln!(s, " {l}");
            }
        }
        for (afi, v6) in [("ipv4", false), ("ipv6", true)] {
            let _ = writeln!(s, " address-family {afi} unicast");
            for p in self.networks.iter().filter(|p| p.is_ipv6() == v6) {
                let _ = writeln!(s, "  network {p}");
            }
            for n in &self.neighbors {
                let on = if v6 { n.ipv6 } else { n.ipv4 };
                let no = if on { "" } else { "no " };
                let _ = writeln!(s, "  {no}neighbor {} activate", n.address);
                if on && n.rr_client {
                    let _ = writeln!(s, "  neighbor {} route-reflector-client", n.address);
                }
            }
            s.push_str(" exit-address-family\n");
        }
        s.push_str(&self.extra);
        s.push_str("!\n");
        s
    }
}

/// A running zebra + bgpd pair inside a lab host.
pub struct Frr {
    host: Host,
    dir: PathBuf,
    config: FrrConfig,
    zebra: Proc,
    bgpd: Proc,
}

impl std::fmt::Debug for Frr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frr")
            .field("host", &self.host.name())
            .field("dir", &self.dir)
            .finish()
    }
}

fn chown_frr(path: &Path) -> Result<()> {
    let user = nix::unistd::User::from_name("frr")
        .map_err(|e| Error::io("look up user frr", e.into()))?
        .ok_or_else(|| Error::invalid("user", "frr", "not found (is frr installed?)"))?;
    nix::unistd::chown(path, Some(user.uid), Some(user.gid))
        .map_err(|e| Error::io(format!("chown frr {}", path.display()), e.into()))
}

fn write_frr_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    chown_frr(path)
}

impl Frr {
    /// Prepares `<lab dir>/<host>/frr` (owned by frr), starts zebra, waits for its
    /// zserv socket, starts bgpd and waits until vtysh answers.
    pub fn start(host: &Host, config: FrrConfig) -> Result<Frr> {
        let dir = host.dir("frr")?;
        chown_frr(&dir)?;
        write_frr_file(&dir.join("zebra.conf"), "log stdout informational\n")?;
        write_frr_file(&dir.join("vtysh.conf"), "")?;
        let (zebra, bgpd) = spawn_frr(host, &dir, &config)?;
        let f = Frr {
            host: host.clone(),
            dir,
            config,
            zebra,
            bgpd,
        };
        f.wait_ready()?;
        Ok(f)
    }

    fn wait_ready(&self) -> Result<()> {
        wait_until(Duration::from_secs(10), Duration::from_millis(30), || {
            self.zebra.check_running()?;
            self.bgpd.check_running()?;
            self.vtysh(&["show bgp summary json"])
        })
        .map(|_| ())
    }

    /// The directory holding configs, sockets, pid files and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bgpd process (log, pid).
    pub fn bgpd(&self) -> &Proc {
        &self.bgpd
    }

    /// The zebra process.
    pub fn zebra(&self) -> &Proc {
        &self.zebra
    }

    /// The config bgpd was started with.
    pub fn config(&self) -> &FrrConfig {
        &self.config
    }

    /// Runs vtysh with one `-c` per command; returns stdout. vtysh prints errors such
    /// as `% Unknown command` on stdout, which become [`Error::Command`].
    pub fn vtysh(&self, cmds: &[&str]) -> Result<String> {
        let mut c = Command::new("vtysh");
        c.arg("--vty_socket").arg(&self.dir);
        for cmd in cmds {
            c.args(["-c", cmd]);
        }
        let out = run(&mut c)?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.lines().any(|l| l.starts_with("% ")) {
            return Err(Error::Command {
                cmd: format!("vtysh -c {}", cmds.join(" -c ")),
                status: "vtysh error".into(),
                stderr: text,
            });
        }
        Ok(text)
    }

    /// Runs configuration lines under `configure terminal` (and `router bgp AS` when
    /// `in_router_bgp`).
    pub fn configure(&self, lines: &[&str], in_router_bgp: bool) -> Result<()> {
        let router = format!("router bgp {}", self.config.local_as);
        let mut cmds = vec!["configure terminal"];
        if in_router_bgp {
            cmds.push(&router);
        }
        cmds.extend_from_slice(lines);
        self.vtysh(&cmds).map(|_| ())
    }

    /// Originates `prefix` at run time (`network X`).
    pub fn add_network(&self, prefix: IpNetwork) -> Result<()> {
        self.network(prefix, "")
    }

    /// Withdraws `prefix` (`no network X`).
    pub fn del_network(&self, prefix: IpNetwork) -> Result<()> {
        self.network(prefix, "no ")
    }

    fn network(&self, prefix: IpNetwork, no: &str) -> Result<()> {
        let afi = format!("address-family {} unicast", afi(&prefix));
        let line = format!("{no}network {prefix}");
        self.configure(&[&afi, &line], true)
    }

    /// `show bgp <afi> unicast json` (`afi` = `ipv4` / `ipv6`): every path with next
    /// hop, AS path, local pref, MED, origin, best and stale flags (communities need
    /// [`Frr::route_detail`]).
    pub fn routes(&self, afi: &str) -> Result<Vec<Route>> {
        parse_routes(&self.vtysh(&[&format!("show bgp {afi} unicast json")])?)
    }

    /// `show bgp <afi> unicast PREFIX json`: every path of one prefix with communities.
    pub fn route_detail(&self, prefix: IpNetwork) -> Result<Vec<Route>> {
        let cmd = format!("show bgp {} unicast {prefix} json", afi(&prefix));
        parse_route_detail(prefix, &self.vtysh(&[&cmd])?)
    }

    /// Every session's state (`show bgp neighbors json`).
    pub fn neighbors(&self) -> Result<Vec<Neighbor>> {
        parse_neighbors(&self.vtysh(&["show bgp neighbors json"])?)
    }

    /// One session's state.
    pub fn neighbor(&self, address: IpAddr) -> Result<Neighbor> {
        self.neighbors()?
            .into_iter()
            .find(|n| n.address == Some(address))
            .ok_or_else(|| Error::parse("frr", format!("neighbor {address}"), "not shown"))
    }

    /// Waits until the session with `address` is Established.
    pub fn wait_established(&self, address: IpAddr, timeout: Duration) -> Result<()> {
        crate::wait::wait_established(&format!("frr neighbor {address}"), timeout, || {
            self.neighbor(address)
        })
    }

    /// SIGKILL both daemons (a crash).
    pub fn kill(&self) {
        self.bgpd.kill();
        self.zebra.kill();
    }

    /// SIGTERM both daemons, SIGKILL after a grace period.
    pub fn stop(&self) {
        self.bgpd.stop();
        self.zebra.stop();
    }

    /// Starts both daemons again in the same directory, optionally with a new config.
    pub fn restart(&mut self, config: Option<FrrConfig>) -> Result<()> {
        self.stop();
        if let Some(c) = config {
            self.config = c;
        }
        let (z, b) = spawn_frr(&self.host, &self.dir, &self.config)?;
        self.zebra = z;
        self.bgpd = b;
        self.wait_ready()
    }
}

fn afi(p: &IpNetwork) -> &'static str {
    if p.is_ipv6() { "ipv6" } else { "ipv4" }
}

fn spawn_frr(host: &Host, dir: &Path, config: &FrrConfig) -> Result<(Proc, Proc)> {
    write_frr_file(&dir.join("bgpd.conf"), &config.render())?;
    let zserv = dir.join("zserv.api");
    let _ = std::fs::remove_file(&zserv);
    let common = |cmd: &mut Command, name: &str| {
        cmd.arg("--vty_socket")
            .arg(dir)
            .arg("-z")
            .arg(&zserv)
            .arg("-f")
            .arg(dir.join(format!("{name}.conf")))
            .arg("-i")
            .arg(dir.join(format!("{name}.pid")))
            // No vty TCP port.
            .args(["-P", "0"]);
    };
    let mut z = host.command(ZEBRA);
    common(&mut z, "zebra");
    let zebra = host.spawn_command("zebra", z)?;
    wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        zebra.check_running()?;
        if zserv.exists() {
            Ok(())
        } else {
            Err(Error::Timeout {
                what: "zebra zserv socket".into(),
                after: Duration::from_secs(10),
                last: zserv.display().to_string(),
            })
        }
    })?;
    let mut b = host.command(BGPD);
    common(&mut b, "bgpd");
    if let Some(p) = config.listen_port {
        b.args(["-p", &p.to_string()]);
    }
    let bgpd = host.spawn_command("bgpd", b)?;
    Ok((zebra, bgpd))
}

fn as_u32(v: Option<&Value>) -> Option<u32> {
    v.and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

fn origin(v: Option<&Value>) -> Option<Origin> {
    match v.and_then(Value::as_str)?.to_ascii_lowercase().as_str() {
        "igp" => Some(Origin::Igp),
        "egp" => Some(Origin::Egp),
        "incomplete" => Some(Origin::Incomplete),
        _ => None,
    }
}

/// First non-link-local next hop of a path's `nexthops` array (unspecified = None).
fn next_hop(path: &Value) -> Option<IpAddr> {
    let hops = path.get("nexthops")?.as_array()?;
    let ips: Vec<IpAddr> = hops
        .iter()
        .filter_map(|h| h.get("ip")?.as_str()?.parse().ok())
        .collect();
    let pick = ips
        .iter()
        .find(|ip| !matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80))
        .or(ips.first())
        .copied()?;
    (!pick.is_unspecified()).then_some(pick)
}

fn json(what: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text.trim())
        .map_err(|e| Error::parse("frr", what.to_string(), e.to_string()))
}

/// Parses `show bgp <afi> unicast json`.
pub fn parse_routes(text: &str) -> Result<Vec<Route>> {
    let v = json("show bgp json", text)?;
    let mut out = Vec::new();
    let Some(routes) = v.get("routes").and_then(Value::as_object) else {
        return Ok(out);
    };
    for (prefix, paths) in routes {
        let p: IpNetwork = prefix
            .parse()
            .map_err(|e| Error::parse("frr", format!("prefix {prefix:?}"), format!("{e}")))?;
        for path in paths.as_array().into_iter().flatten() {
            let mut r = Route::new(p);
            r.best = path
                .get("bestpath")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            r.stale = path.get("stale").and_then(Value::as_bool).unwrap_or(false);
            r.next_hop = next_hop(path);
            r.local_pref = as_u32(path.get("locPrf"));
            r.med = as_u32(path.get("metric"));
            r.origin = origin(path.get("origin"));
            let aspath = path.get("path").and_then(Value::as_str).unwrap_or("");
            r.as_path = parse_as_path(aspath).map_err(|e| Error::parse("frr", "path", e))?;
            r.from = path
                .get("peerId")
                .and_then(Value::as_str)
                .filter(|s| *s != "(unspec)")
                .map(str::to_string);
            out.push(r);
        }
    }
    Ok(out)
}

fn parse_segments(aspath: &Value) -> Result<Vec<AsSegment>> {
    if let Some(segs) = aspath.get("segments").and_then(Value::as_array) {
        let mut out = Vec::new();
        for s in segs {
            let list: Vec<u32> = s
                .get("list")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|a| as_u32(Some(a)))
                .collect();
            match s.get("type").and_then(Value::as_str) {
                Some("as-set") => out.push(AsSegment::Set(list)),
                _ => out.push(AsSegment::Sequence(list)),
            }
        }
        return Ok(out);
    }
    let text = aspath.get("string").and_then(Value::as_str).unwrap_or("");
    if text == "Local" {
        return Ok(Vec::new());
    }
    parse_as_path(text).map_err(|e| Error::parse("frr", "aspath", e))
}

/// Parses `show bgp <afi> unicast PREFIX json` (the per-prefix detail).
pub fn parse_route_detail(prefix: IpNetwork, text: &str) -> Result<Vec<Route>> {
    let v = json("show bgp PREFIX json", text)?;
    let mut out = Vec::new();
    for path in v
        .get("paths")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut r = Route::new(prefix);
        r.best = path
            .pointer("/bestpath/overall")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        r.stale = path.get("stale").and_then(Value::as_bool).unwrap_or(false);
        r.next_hop = next_hop(path);
        r.local_pref = as_u32(path.get("locPrf"));
        r.med = as_u32(path.get("metric"));
        r.origin = origin(path.get("origin"));
        if let Some(a) = path.get("aspath") {
            r.as_path = parse_segments(a)?;
        }
        r.from = path
            .pointer("/peer/peerId")
            .and_then(Value::as_str)
            .filter(|s| *s != "0.0.0.0" && *s != "(unspec)")
            .map(str::to_string);
        let comm = path
            .pointer("/community/string")
            .and_then(Value::as_str)
            .unwrap_or("");
        for c in comm.split_whitespace() {
            let (a, b) = c
                .split_once(':')
                .ok_or_else(|| Error::parse("frr", "community", c.to_string()))?;
            match (a.parse::<u16>(), b.parse::<u16>()) {
                (Ok(a), Ok(b)) => r.communities.push((a, b)),
                _ => return Err(Error::parse("frr", "community", c.to_string())),
            }
        }
        let large = path
            .pointer("/largeCommunity/string")
            .and_then(Value::as_str)
            .unwrap_or("");
        for c in large.split_whitespace() {
            let parts: Vec<Option<u32>> = c.split(':').map(|x| x.parse().ok()).collect();
            match parts.as_slice() {
                [Some(a), Some(b), Some(c)] => r.large_communities.push((*a, *b, *c)),
                _ => return Err(Error::parse("frr", "large community", c.to_string())),
            }
        }
        out.push(r);
    }
    Ok(out)
}

/// Parses `show bgp neighbors json` (an object keyed by peer address).
pub fn parse_neighbors(text: &str) -> Result<Vec<Neighbor>> {
    let v = json("show bgp neighbors json", text)?;
    let map = v
        .as_object()
        .ok_or_else(|| Error::parse("frr", "show bgp neighbors json", "not an object"))?;
    Ok(map
        .iter()
        .filter(|(_, n)| n.is_object())
        .map(|(addr, n)| {
            let last_error = n
                .get("lastNotificationReason")
                .or_else(|| n.get("lastResetDueTo"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let fams = n.get("addressFamilyInfo").and_then(Value::as_object);
            let sum = |key: &str| -> Option<u64> {
                fams.map(|f| {
                    f.values()
                        .filter_map(|a| a.get(key).and_then(Value::as_u64))
                        .sum()
                })
            };
            Neighbor {
                name: addr.clone(),
                address: addr.parse().ok(),
                remote_as: as_u32(n.get("remoteAs")),
                state: BgpState::parse(n.get("bgpState").and_then(Value::as_str).unwrap_or("")),
                last_error,
                prefixes_received: sum("acceptedPrefixCounter"),
                prefixes_sent: sum("sentPrefixCounter"),
            }
        })
        .collect())
}

#[cfg(test)]
#[path = "frr_tests.rs"]
mod tests;
