//! BIRD 2 as a test peer: a config rendered from [`BirdConfig`], `bird -f` started inside
//! a lab [`Host`] with its own config/socket/pid files, `birdc` commands, and parsers of
//! `show protocols all` and `show route all` into the common [`Neighbor`] / [`Route`].
//! The parsers are pure functions ([`parse_protocols`], [`parse_routes`]) tested on
//! captured output.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ipnetwork::IpNetwork;

use crate::error::{Error, Result};
use crate::lab::Host;
use crate::process::{Proc, run};
use crate::route::{AsSegment, BgpState, Neighbor, Origin, Route};
use crate::wait::wait_until;

/// One `protocol bgp` block.
#[derive(Clone, Debug)]
pub struct BirdNeighbor {
    /// Protocol name (letters, digits, `_`); `show protocols` and [`Route::from`] use it.
    pub name: String,
    pub address: IpAddr,
    /// Remote TCP port (default 179).
    pub port: Option<u16>,
    pub remote_as: u32,
    /// Local AS for this session (default: [`BirdConfig::local_as`]).
    pub local_as: Option<u32>,
    /// Local address to bind / source the session from.
    pub source_address: Option<IpAddr>,
    /// Local TCP port BIRD listens on for this session (default 179).
    pub local_port: Option<u16>,
    /// TCP MD5 password (RFC 2385).
    pub password: Option<String>,
    pub hold_time: Option<u16>,
    pub keepalive_time: Option<u16>,
    /// Graceful restart (RFC 4724) with this restart time in seconds; None = BIRD's
    /// default (aware).
    pub graceful_restart: Option<u32>,
    /// `direct` (on-link peer, also for iBGP). Default true.
    pub direct: bool,
    /// Never dial, only accept.
    pub passive: bool,
    /// Route reflector client (RFC 4456).
    pub rr_client: bool,
    /// `next hop self` on the IPv4 channel.
    pub next_hop_self: bool,
    pub ipv4: bool,
    pub ipv6: bool,
    /// Extra statements inside the ipv4 / ipv6 channel blocks.
    pub ipv4_extra: String,
    pub ipv6_extra: String,
    /// Extra statements inside the protocol block.
    pub extra: String,
}

impl BirdNeighbor {
    /// An IPv4-unicast session to `address` in `remote_as`, everything else default.
    pub fn new(name: &str, address: IpAddr, remote_as: u32) -> BirdNeighbor {
        BirdNeighbor {
            name: name.into(),
            address,
            port: None,
            remote_as,
            local_as: None,
            source_address: None,
            local_port: None,
            password: None,
            hold_time: None,
            keepalive_time: None,
            graceful_restart: None,
            direct: true,
            passive: false,
            rr_client: false,
            next_hop_self: false,
            ipv4: true,
            ipv6: false,
            ipv4_extra: String::new(),
            ipv6_extra: String::new(),
            extra: String::new(),
        }
    }
}

/// A whole BIRD configuration.
#[derive(Clone, Debug)]
pub struct BirdConfig {
    pub router_id: Ipv4Addr,
    pub local_as: u32,
    pub neighbors: Vec<BirdNeighbor>,
    /// Prefixes to originate (blackhole static routes; v4 and v6 mixed).
    pub static_routes: Vec<IpNetwork>,
    /// Install selected routes into the namespace's kernel table (`protocol kernel`).
    pub kernel_export: bool,
    /// `error wait time MIN, MAX` for every session (BIRD's default 60, 300 would stall
    /// tests after any error). Default (1, 5).
    pub error_wait: (u32, u32),
    /// Raw statements appended at the end.
    pub extra: String,
}

impl BirdConfig {
    /// A config with no sessions and nothing to originate.
    pub fn new(router_id: Ipv4Addr, local_as: u32) -> BirdConfig {
        BirdConfig {
            router_id,
            local_as,
            neighbors: Vec::new(),
            static_routes: Vec::new(),
            kernel_export: false,
            error_wait: (1, 5),
            extra: String::new(),
        }
    }

    /// The config file text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "router id {};", self.router_id);
        s.push_str("log stderr all;\n");
        s.push_str("protocol device { scan time 10; }\n");
        for (chan, v6) in [("ipv4", false), ("ipv6", true)] {
            let routes: Vec<&IpNetwork> = self
                .static_routes
                .iter()
                .filter(|n| n.is_ipv6() == v6)
                .collect();
            if !routes.is_empty() {
                let _ = writeln!(s, "protocol static static_{chan} {{\n  {chan};");
                for r in routes {
                    let _ = writeln!(s, "  route {r} blackhole;");
                }
                s.push_str("}\n");
            }
            if self.kernel_export {
                let _ = writeln!(
                    s,
                    "protocol kernel kernel_{chan} {{\n  {chan} {{ export all; }};\n}}"
                );
            }
        }
        for n in &self.neighbors {
            render_neighbor(&mut s, n, self.local_as, self.error_wait);
        }
        s.push_str(&self.extra);
        s.push('\n');
        s
    }
}

fn render_neighbor(s: &mut String, n: &BirdNeighbor, local_as: u32, error_wait: (u32, u32)) {
    let _ = writeln!(s, "protocol bgp {} {{", n.name);
    s.push_str("  local");
    if let Some(a) = n.source_address {
        let _ = write!(s, " {a}");
    }
    if let Some(p) = n.local_port {
        let _ = write!(s, " port {p}");
    }
    let _ = writeln!(s, " as {};", n.local_as.unwrap_or(local_as));
    let _ = write!(s, "  neighbor {}", n.address);
    if let Some(p) = n.port {
        let _ = write!(s, " port {p}");
    }
    let _ = writeln!(s, " as {};", n.remote_as);
    if n.direct {
        s.push_str("  direct;\n");
    }
    if n.passive {
        s.push_str("  passive on;\n");
    }
    if let Some(p) = &n.password {
        let _ = writeln!(s, "  password \"{}\";", p.replace('"', "\\\""));
    }
    if let Some(h) = n.hold_time {
        let _ = writeln!(s, "  hold time {h};");
    }
    if let Some(k) = n.keepalive_time {
        let _ = writeln!(s, "  keepalive time {k};");
    }
    s.push_str("  connect delay time 1;\n  connect retry time 1;\n");
    let _ = writeln!(s, "  error wait time {}, {};", error_wait.0, error_wait.1);
    if let Some(t) = n.graceful_restart {
        let _ = writeln!(s, "  graceful restart on;\n  graceful restart time {t};");
    }
    if n.rr_client {
        s.push_str("  rr client;\n");
    }
    if n.ipv4 {
        let nhs = if n.next_hop_self {
            " next hop self;"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "  ipv4 {{ import all; export all;{nhs} {} }};",
            n.ipv4_extra
        );
    }
    if n.ipv6 {
        let _ = writeln!(s, "  ipv6 {{ import all; export all; {} }};", n.ipv6_extra);
    }
    s.push_str(&n.extra);
    s.push_str("}\n");
}

/// A running BIRD inside a lab host.
pub struct Bird {
    host: Host,
    dir: PathBuf,
    config: BirdConfig,
    proc: Proc,
}

impl std::fmt::Debug for Bird {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bird")
            .field("host", &self.host.name())
            .field("dir", &self.dir)
            .finish()
    }
}

impl Bird {
    /// Writes the config to `<lab dir>/<host>/bird/bird.conf`, checks it (`bird -p`),
    /// starts `bird -f` in `host` and waits until its control socket answers.
    pub fn start(host: &Host, config: BirdConfig) -> Result<Bird> {
        let dir = host.dir("bird")?;
        write_file(&dir.join("bird.conf"), &config.render())?;
        let proc = spawn_bird(host, &dir)?;
        let bird = Bird {
            host: host.clone(),
            dir,
            config,
            proc,
        };
        bird.wait_ready()?;
        Ok(bird)
    }

    fn wait_ready(&self) -> Result<()> {
        wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            self.proc.check_running()?;
            self.birdc("show status")
        })
        .map(|_| ())
    }

    /// The control socket path.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("bird.ctl")
    }

    /// The directory holding config, socket, pid file and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The config currently in use.
    pub fn config(&self) -> &BirdConfig {
        &self.config
    }

    /// The daemon process (log, pid).
    pub fn proc(&self) -> &Proc {
        &self.proc
    }

    /// Runs one `birdc` command, returns its output without the `BIRD x.y ready.` line.
    pub fn birdc(&self, cmd: &str) -> Result<String> {
        let out = run(Command::new("birdc")
            .arg("-s")
            .arg(self.socket())
            .args(cmd.split_whitespace()))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let body: Vec<&str> = text
            .lines()
            .filter(|l| !(l.starts_with("BIRD ") && l.ends_with(" ready.")))
            .collect();
        let body = body.join("\n");
        if body.starts_with("syntax error") || body.contains("\nsyntax error") {
            return Err(Error::Command {
                cmd: format!("birdc {cmd}"),
                status: "syntax error".into(),
                stderr: body,
            });
        }
        Ok(body)
    }

    /// A persistent connection to the control socket: each command costs a socket round
    /// trip instead of starting `birdc` (about 2 ms), for tight polling.
    pub fn cli(&self) -> Result<BirdCli> {
        BirdCli::connect(&self.socket())
    }

    /// Every BGP protocol's session state.
    pub fn neighbors(&self) -> Result<Vec<Neighbor>> {
        Ok(parse_protocols(&self.birdc("show protocols all")?))
    }

    /// One BGP protocol's session state (state + last error).
    pub fn protocol_state(&self, name: &str) -> Result<Neighbor> {
        parse_protocols(&self.birdc(&format!("show protocols all {name}"))?)
            .into_iter()
            .find(|n| n.name == name)
            .ok_or_else(|| Error::parse("bird", format!("protocol {name}"), "not shown"))
    }

    /// Waits until protocol `name` is Established.
    pub fn wait_established(&self, name: &str, timeout: Duration) -> Result<()> {
        crate::wait::wait_established(&format!("bird protocol {name}"), timeout, || {
            self.protocol_state(name)
        })
    }

    /// Routes of `table` (`master4`, `master6`), all paths, from `show route all`.
    /// BIRD 2.0 does not flag stale routes in that output; a route counts as
    /// [`Route::stale`] when its protocol shows `Neighbor graceful restart active`.
    pub fn routes(&self, table: &str) -> Result<Vec<Route>> {
        let mut routes = parse_routes(&self.birdc(&format!("show route all table {table}"))?)?;
        let restarting = gr_active_protocols(&self.birdc("show protocols all")?);
        for r in &mut routes {
            if r.from.as_ref().is_some_and(|f| restarting.contains(f)) {
                r.stale = true;
            }
        }
        Ok(routes)
    }

    /// Routes of both master tables.
    pub fn all_routes(&self) -> Result<Vec<Route>> {
        let mut r = self.routes("master4")?;
        r.extend(self.routes("master6")?);
        Ok(r)
    }

    /// Writes `config` and applies it with `birdc configure`.
    pub fn reconfigure(&mut self, config: BirdConfig) -> Result<()> {
        write_file(&self.dir.join("bird.conf"), &config.render())?;
        let out = self.birdc("configure")?;
        if !out.contains("Reconfigured") && !out.contains("Reconfiguration in progress") {
            return Err(Error::Command {
                cmd: "birdc configure".into(),
                status: "not reconfigured".into(),
                stderr: out,
            });
        }
        self.config = config;
        Ok(())
    }

    /// `birdc graceful restart`: BIRD exits telling its GR peers to keep its routes;
    /// waits for the exit. Start it again with [`Bird::restart`].
    pub fn graceful_restart_shutdown(&self) -> Result<()> {
        let _ = self.birdc("graceful restart");
        wait_until(
            Duration::from_secs(10),
            Duration::from_millis(20),
            || match self.proc.try_wait() {
                Ok(None) => Err(Error::Timeout {
                    what: "bird graceful restart exit".into(),
                    after: Duration::from_secs(10),
                    last: "still running".into(),
                }),
                _ => Ok(()),
            },
        )
    }

    /// SIGKILL (a crash): peers see the TCP session vanish.
    pub fn kill(&self) {
        self.proc.kill();
    }

    /// SIGTERM, then SIGKILL after a grace period.
    pub fn stop(&self) {
        self.proc.stop();
    }

    /// Starts BIRD again with the same directory (after stop/kill/graceful restart),
    /// optionally with a new config; waits until its socket answers. With graceful
    /// restart configured, BIRD announces the restart to its peers.
    pub fn restart(&mut self, config: Option<BirdConfig>) -> Result<()> {
        self.proc.stop();
        if let Some(c) = config {
            self.config = c;
        }
        write_file(&self.dir.join("bird.conf"), &self.config.render())?;
        // A stale control socket would make readiness checks race the new daemon.
        let _ = std::fs::remove_file(self.socket());
        self.proc = spawn_bird(&self.host, &self.dir)?;
        self.wait_ready()
    }
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(format!("write {}", path.display()), e))
}

fn spawn_bird(host: &Host, dir: &Path) -> Result<Proc> {
    let conf = dir.join("bird.conf");
    // Check the config first: a syntax error becomes a clear message, not a dead child.
    run(Command::new("bird").arg("-p").arg("-c").arg(&conf))?;
    let mut cmd = host.command("bird");
    cmd.arg("-f")
        .arg("-c")
        .arg(&conf)
        .arg("-s")
        .arg(dir.join("bird.ctl"))
        .arg("-P")
        .arg(dir.join("bird.pid"));
    host.spawn_command("bird", cmd)
}

/// An open BIRD control-socket session (BIRD's CLI protocol: reply lines carry a
/// four-digit code and `-` while more follow, a space on the last; continuation lines
/// start with a space). Answers read like `birdc`'s output.
#[derive(Debug)]
pub struct BirdCli {
    reader: std::io::BufReader<std::os::unix::net::UnixStream>,
    writer: std::os::unix::net::UnixStream,
}

impl BirdCli {
    fn connect(socket: &Path) -> Result<BirdCli> {
        let what = || format!("BIRD control socket {}", socket.display());
        let writer =
            std::os::unix::net::UnixStream::connect(socket).map_err(|e| Error::io(what(), e))?;
        writer
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| Error::io(what(), e))?;
        let reader = writer.try_clone().map_err(|e| Error::io(what(), e))?;
        let mut cli = BirdCli {
            reader: std::io::BufReader::new(reader),
            writer,
        };
        // The `0001 BIRD x.y ready.` greeting.
        cli.reply()?;
        Ok(cli)
    }

    /// Runs one command; returns its reply as `birdc` prints it.
    pub fn command(&mut self, cmd: &str) -> Result<String> {
        use std::io::Write as _;
        self.writer
            .write_all(format!("{cmd}\n").as_bytes())
            .map_err(|e| Error::io("writing to the BIRD control socket", e))?;
        let body = self.reply()?;
        if body.starts_with("syntax error") {
            return Err(Error::Command {
                cmd: cmd.to_string(),
                status: "syntax error".into(),
                stderr: body,
            });
        }
        Ok(body)
    }

    /// One protocol's session state, like [`Bird::protocol_state`].
    pub fn protocol_state(&mut self, name: &str) -> Result<Neighbor> {
        parse_protocols(&self.command(&format!("show protocols all {name}"))?)
            .into_iter()
            .find(|n| n.name == name)
            .ok_or_else(|| Error::parse("bird", format!("protocol {name}"), "not shown"))
    }

    fn reply(&mut self) -> Result<String> {
        use std::io::BufRead as _;
        let mut out = Vec::new();
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .map_err(|e| Error::io("reading the BIRD control socket", e))?;
            if n == 0 {
                return Err(Error::parse("bird", "control reply", "socket closed"));
            }
            let line = line.trim_end_matches('\n');
            if let Some(rest) = line.strip_prefix(' ') {
                out.push(rest.to_string());
                continue;
            }
            // `DDDD-text` / `DDDD text`; anything else (even a stray non-ASCII byte where
            // the separator belongs) is kept as a plain line rather than sliced.
            let (code, last, text) = match (line.get(..4), line.as_bytes().get(4), line.get(5..)) {
                (Some(code), Some(&sep), Some(text))
                    if code.bytes().all(|c| c.is_ascii_digit()) =>
                {
                    (code, sep == b' ', text)
                }
                _ => {
                    out.push(line.to_string());
                    continue;
                }
            };
            if code != "0000" && code != "0001" {
                out.push(text.to_string());
            }
            if last {
                return Ok(out.join("\n"));
            }
        }
    }
}

/// Parses `show protocols all` output into the BGP protocols' session states.
pub fn parse_protocols(text: &str) -> Vec<Neighbor> {
    let mut out: Vec<Neighbor> = Vec::new();
    let mut current: Option<Neighbor> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            if let Some(n) = current.take() {
                out.push(n);
            }
            let mut it = line.split_whitespace();
            let (Some(name), Some(proto)) = (it.next(), it.next()) else {
                continue;
            };
            if name == "Name" || proto != "BGP" {
                continue;
            }
            // Name Proto Table State Since Info...: the first Info word is the BGP state.
            let info: Vec<&str> = it.skip(3).collect();
            let state = info.first().map(|s| BgpState::parse(s));
            current = Some(Neighbor {
                name: name.to_string(),
                address: None,
                remote_as: None,
                state: state.unwrap_or(BgpState::Other("unknown".into())),
                last_error: None,
                prefixes_received: None,
                prefixes_sent: None,
            });
            continue;
        }
        let Some(n) = current.as_mut() else { continue };
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "BGP state" => n.state = BgpState::parse(value),
            "Neighbor address" => n.address = value.parse().ok(),
            "Neighbor AS" => n.remote_as = value.parse().ok(),
            "Last error" => n.last_error = Some(value.to_string()),
            // Per channel: `Routes: 1 imported, 0 exported, 1 preferred`.
            "Routes" => {
                let words: Vec<&str> = value.split([' ', ',']).filter(|w| !w.is_empty()).collect();
                for pair in words.windows(2) {
                    let count = pair[0].parse::<u64>().ok();
                    match (count, pair[1]) {
                        (Some(c), "imported") => *n.prefixes_received.get_or_insert(0) += c,
                        (Some(c), "exported") => *n.prefixes_sent.get_or_insert(0) += c,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(n) = current.take() {
        out.push(n);
    }
    out
}

/// Names of the BGP protocols whose neighbour is in graceful restart (their routes are
/// kept as stale), from `show protocols all`.
pub fn gr_active_protocols(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<&str> = None;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            current = line.split_whitespace().next();
        } else if line.trim() == "Neighbor graceful restart active"
            && let Some(c) = current
        {
            out.push(c.to_string());
        }
    }
    out
}

/// Parses `show route all` output (one or more tables, several paths per prefix).
pub fn parse_routes(text: &str) -> Result<Vec<Route>> {
    let mut out: Vec<Route> = Vec::new();
    let mut prefix: Option<IpNetwork> = None;
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with("Table ") {
            continue;
        }
        if line.starts_with('\t') {
            let Some(r) = out.last_mut() else { continue };
            parse_route_attr(r, line.trim())?;
            continue;
        }
        let header = if line.starts_with(char::is_whitespace) {
            line.trim()
        } else {
            let (p, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            prefix = Some(p.parse().map_err(|e| {
                Error::parse("bird", format!("route prefix {p:?}"), format!("{e}"))
            })?);
            rest.trim()
        };
        let Some(p) = prefix else {
            return Err(Error::parse(
                "bird",
                "route line",
                format!("no prefix before {line:?}"),
            ));
        };
        let mut r = Route::new(p);
        // `unicast [proto 12:00:00.000 from 1.2.3.4] * (100) [AS65001i]`
        if let Some((_, rest)) = header.split_once('[') {
            r.from = rest
                .split_whitespace()
                .next()
                .map(|s| s.trim_end_matches(']').to_string());
            if let Some((_, after)) = rest.split_once(']') {
                r.best = after.trim_start().starts_with('*');
                r.stale = after.contains("stale");
            }
        }
        out.push(r);
    }
    Ok(out)
}

fn parse_u32(what: &str, v: &str) -> Result<u32> {
    v.trim()
        .parse()
        .map_err(|e| Error::parse("bird", what.to_string(), format!("{v:?}: {e}")))
}

fn parse_route_attr(r: &mut Route, line: &str) -> Result<()> {
    if let Some(rest) = line.strip_prefix("via ") {
        if r.next_hop.is_none() {
            r.next_hop = rest.split_whitespace().next().and_then(|s| s.parse().ok());
        }
        return Ok(());
    }
    let Some((key, value)) = line.split_once(':') else {
        return Ok(());
    };
    let value = value.trim();
    match key {
        "BGP.origin" => {
            r.origin = match value {
                "IGP" => Some(Origin::Igp),
                "EGP" => Some(Origin::Egp),
                "Incomplete" => Some(Origin::Incomplete),
                _ => None,
            }
        }
        "BGP.as_path" => r.as_path = parse_as_path(value)?,
        "BGP.next_hop" => {
            // May list a global and a link-local v6 address; the first is the next hop.
            r.next_hop = value.split_whitespace().next().and_then(|s| s.parse().ok());
        }
        "BGP.local_pref" => r.local_pref = Some(parse_u32("BGP.local_pref", value)?),
        "BGP.med" => r.med = Some(parse_u32("BGP.med", value)?),
        "BGP.community" => {
            for c in value.split(')').filter(|c| !c.trim().is_empty()) {
                let c = c.trim().trim_start_matches('(');
                let (a, b) = c
                    .split_once(',')
                    .ok_or_else(|| Error::parse("bird", "BGP.community", value.to_string()))?;
                let a = parse_u32("community", a)?;
                let b = parse_u32("community", b)?;
                let (Ok(a), Ok(b)) = (u16::try_from(a), u16::try_from(b)) else {
                    return Err(Error::parse("bird", "BGP.community", value.to_string()));
                };
                r.communities.push((a, b));
            }
        }
        "BGP.large_community" => {
            for c in value.split(')').filter(|c| !c.trim().is_empty()) {
                let parts: Vec<&str> = c.trim().trim_start_matches('(').split(',').collect();
                let [a, b, c] = parts.as_slice() else {
                    return Err(Error::parse(
                        "bird",
                        "BGP.large_community",
                        value.to_string(),
                    ));
                };
                r.large_communities.push((
                    parse_u32("large community", a)?,
                    parse_u32("large community", b)?,
                    parse_u32("large community", c)?,
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// `65001 65002 {65003 65004}` -> Sequence([65001, 65002]), Set([65003, 65004]).
pub fn parse_as_path(value: &str) -> Result<Vec<AsSegment>> {
    crate::route::parse_as_path(value).map_err(|e| Error::parse("bird", "BGP.as_path", e))
}

#[cfg(test)]
#[path = "bird_tests.rs"]
mod tests;
