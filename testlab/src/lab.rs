//! The network-namespace lab: a fabric namespace holding one bridge per segment, host
//! namespaces joined to those bridges by veth pairs (created inside the fabric, so the
//! root namespace never sees them), and the guard that tears all of it down.
//!
//! Names: every namespace is `tl-<pid>-<n>-<prefix>[-<host>]`, unique per process
//! (`pid`) and per lab (`n`). The first lab of a process runs [`crate::reap`] for
//! leftovers of crashed earlier runs.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::Duration;

use ipnetwork::IpNetwork;

use crate::error::{Error, Result};
use crate::process::{Proc, Registry, run, run_unchecked};

/// Name of the segment that [`Lab::new`] creates and [`Lab::add_host`] uses.
pub const DEFAULT_SEGMENT: &str = "lan";

pub(crate) const NETNS_PREFIX: &str = "tl-";
pub(crate) const TMP_PREFIX: &str = "testlab-";

static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);
static REAP: Once = Once::new();

/// A number unique within this process, for names of namespaces and temp dirs.
pub(crate) fn next_id() -> u32 {
    LAB_COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Panics with a clear message unless the process runs as root (euid 0). Call it first
/// in every test that needs namespaces: such tests fail loudly, they never skip.
pub fn require_root() {
    if !nix::unistd::geteuid().is_root() {
        panic!(
            "this test needs root (network namespaces, veth, daemons): run the test suite \
             as root, e.g. through .ci/run; it never skips silently"
        );
    }
}

fn ip() -> Command {
    Command::new("ip")
}

/// A netns lab. Dropping it (also during a panic) kills every child started in it, deletes
/// every namespace it created and removes its temp dir.
pub struct Lab {
    inner: Arc<LabInner>,
}

pub(crate) struct LabInner {
    base: String,
    fabric: String,
    dir: PathBuf,
    tmp: Mutex<Option<tempfile::TempDir>>,
    pub(crate) registry: Arc<Registry>,
    state: Mutex<LabState>,
}

#[derive(Default)]
struct LabState {
    namespaces: Vec<String>,
    /// segment name -> bridge name in the fabric namespace
    segments: BTreeMap<String, String>,
    /// host name -> its ports
    hosts: BTreeMap<String, Vec<Port>>,
    next_port: u32,
}

#[derive(Clone, Debug)]
struct Port {
    segment: String,
    fabric_if: String,
}

impl LabInner {
    fn state(&self) -> MutexGuard<'_, LabState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cleanup(&self) {
        self.registry.kill_all();
        let namespaces = std::mem::take(&mut self.state().namespaces);
        // Hosts first, fabric last (deleting a namespace destroys its veth ends).
        for ns in namespaces.iter().rev() {
            if let Err(e) = run(ip().args(["netns", "del", ns])) {
                tracing::warn!(%ns, error = %e, "cannot delete namespace");
            }
        }
        if let Some(tmp) = self.tmp.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = tmp.close();
        }
    }
}

fn check_name(field: &'static str, name: &str, max: usize) -> Result<()> {
    if name.is_empty() || name.len() > max {
        return Err(Error::invalid(
            field,
            name,
            format!("length must be 1..={max}"),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(Error::invalid(field, name, "use a-z, 0-9 and '-' only"));
    }
    Ok(())
}

fn parse_cidr(field: &'static str, addr: &str) -> Result<IpNetwork> {
    addr.parse::<IpNetwork>()
        .map_err(|e| Error::invalid(field, addr, e.to_string()))
}

impl Lab {
    /// Creates a lab with a fabric namespace and the [`DEFAULT_SEGMENT`] bridge.
    /// `prefix` (a-z, 0-9, at most 12 characters) appears in every namespace name, so
    /// `ip netns list` shows which test a namespace belongs to. Panics when not root.
    pub fn new(prefix: &str) -> Result<Lab> {
        require_root();
        check_name("lab prefix", prefix, 12)?;
        if prefix.contains('-') {
            return Err(Error::invalid("lab prefix", prefix, "no '-' in a prefix"));
        }
        REAP.call_once(crate::reap::reap_stale);
        let pid = std::process::id();
        let n = next_id();
        let base = format!("{NETNS_PREFIX}{pid}-{n}-{prefix}");
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{TMP_PREFIX}{pid}-{n}-"))
            .tempdir()
            .map_err(|e| Error::io("create lab temp dir", e))?;
        let dir = tmp.path().to_path_buf();
        // Daemons that drop privileges (FRR runs as `frr`) must traverse this directory.
        set_mode(&dir, 0o755)?;
        let lab = Lab {
            inner: Arc::new(LabInner {
                fabric: base.clone(),
                base,
                dir,
                tmp: Mutex::new(Some(tmp)),
                registry: Registry::new(),
                state: Mutex::new(LabState::default()),
            }),
        };
        let fabric = lab.inner.fabric.clone();
        lab.add_netns(&fabric)?;
        for key in [
            "net/bridge/bridge-nf-call-iptables",
            "net/bridge/bridge-nf-call-ip6tables",
            "net/bridge/bridge-nf-call-arptables",
        ] {
            lab.fabric().sysctl(key, "0")?;
        }
        lab.add_segment(DEFAULT_SEGMENT)?;
        Ok(lab)
    }

    /// The common stem of this lab's namespace names (`tl-<pid>-<n>-<prefix>`).
    pub fn name(&self) -> &str {
        &self.inner.base
    }

    /// This lab's temp dir (removed by the guard). Daemon helpers put their files below.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The fabric namespace as a [`Host`] (holds the bridges; useful for tcpdump or for
    /// running a shared service such as etcd on a bridge address).
    pub fn fabric(&self) -> Host {
        Host {
            name: "fabric".into(),
            netns: self.inner.fabric.clone(),
            lab: Arc::clone(&self.inner),
        }
    }

    /// PIDs of the long-running children this lab still tracks.
    pub fn pids(&self) -> Vec<u32> {
        self.inner.registry.pids()
    }

    /// Names of the namespaces this lab created (fabric first).
    pub fn namespaces(&self) -> Vec<String> {
        self.inner.state().namespaces.clone()
    }

    fn add_netns(&self, ns: &str) -> Result<()> {
        run(ip().args(["netns", "add", ns]))?;
        self.inner.state().namespaces.push(ns.to_string());
        run(ip().args(["-n", ns, "link", "set", "lo", "up"]))?;
        Ok(())
    }

    /// Adds a segment: one more bridge in the fabric namespace (an L2 subnet of its own).
    pub fn add_segment(&self, name: &str) -> Result<()> {
        check_name("segment name", name, 12)?;
        let bridge = {
            let st = self.inner.state();
            if st.segments.contains_key(name) {
                return Err(Error::invalid("segment name", name, "already exists"));
            }
            format!("br{}", st.segments.len())
        };
        let fab = &self.inner.fabric;
        run(ip().args(["-n", fab, "link", "add", &bridge, "type", "bridge"]))?;
        run(ip().args(["-n", fab, "link", "set", &bridge, "up"]))?;
        self.inner.state().segments.insert(name.into(), bridge);
        Ok(())
    }

    /// Adds a host on the default segment with `eth0` carrying `addr` (CIDR, v4 or v6;
    /// empty string for none).
    pub fn add_host(&self, name: &str, addr: &str) -> Result<Host> {
        self.add_host_on(DEFAULT_SEGMENT, name, addr)
    }

    /// Adds a host whose `eth0` is on `segment`.
    pub fn add_host_on(&self, segment: &str, name: &str, addr: &str) -> Result<Host> {
        let host = self.add_bare_host(name)?;
        self.connect(&host, segment, addr)?;
        Ok(host)
    }

    /// Adds a host namespace with only `lo` (connect it with [`Lab::connect`]).
    pub fn add_bare_host(&self, name: &str) -> Result<Host> {
        check_name("host name", name, 20)?;
        if name == "fabric" {
            return Err(Error::invalid("host name", name, "reserved"));
        }
        {
            let mut st = self.inner.state();
            if st.hosts.contains_key(name) {
                return Err(Error::invalid("host name", name, "already exists"));
            }
            st.hosts.insert(name.into(), Vec::new());
        }
        let host = Host {
            name: name.into(),
            netns: format!("{}-{name}", self.inner.base),
            lab: Arc::clone(&self.inner),
        };
        self.add_netns(&host.netns)?;
        // IPv6 addresses usable at once (no duplicate address detection wait).
        host.sysctl("net/ipv6/conf/all/accept_dad", "0")?;
        host.sysctl("net/ipv6/conf/default/accept_dad", "0")?;
        Ok(host)
    }

    /// Joins `host` to `segment` with a new interface (`eth0`, `eth1`, ... in the host)
    /// carrying `addr` (CIDR; empty for none). Returns the interface name in the host.
    pub fn connect(&self, host: &Host, segment: &str, addr: &str) -> Result<String> {
        let net = if addr.is_empty() {
            None
        } else {
            Some(parse_cidr("address", addr)?)
        };
        let (bridge, port, ifname) = {
            let mut st = self.inner.state();
            let bridge = st
                .segments
                .get(segment)
                .cloned()
                .ok_or_else(|| Error::invalid("segment", segment, "no such segment"))?;
            let nports = st
                .hosts
                .get(&host.name)
                .map(Vec::len)
                .ok_or_else(|| Error::invalid("host", &host.name, "not in this lab"))?;
            let port = format!("p{}", st.next_port);
            st.next_port += 1;
            (bridge, port, format!("eth{nports}"))
        };
        let fab = &self.inner.fabric;
        run(ip().args([
            "-n",
            fab,
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            &ifname,
            "netns",
            &host.netns,
        ]))?;
        run(ip().args(["-n", fab, "link", "set", &port, "master", &bridge, "up"]))?;
        if let Some(net) = net {
            host.add_addr(&ifname, &net.to_string())?;
        }
        run(ip().args(["-n", &host.netns, "link", "set", &ifname, "up"]))?;
        if let Some(ports) = self.inner.state().hosts.get_mut(&host.name) {
            ports.push(Port {
                segment: segment.into(),
                fabric_if: port,
            });
        }
        Ok(ifname)
    }

    /// Adds a router: a host with one interface per `(segment, cidr)` and
    /// `ip_forward=1` (v4 and v6).
    pub fn add_router(&self, name: &str, legs: &[(&str, &str)]) -> Result<Host> {
        let host = self.add_bare_host(name)?;
        for (segment, addr) in legs {
            self.connect(&host, segment, addr)?;
        }
        host.sysctl("net/ipv4/ip_forward", "1")?;
        host.sysctl("net/ipv6/conf/all/forwarding", "1")?;
        Ok(host)
    }

    /// Cuts (`up = false`) or restores every link of `host`, on the fabric side, like
    /// pulling a cable: the host keeps its addresses and routes, frames just stop.
    pub fn set_link(&self, host: &Host, up: bool) -> Result<()> {
        self.set_link_where(host, up, |_| true)
    }

    /// Like [`Lab::set_link`], only for the host's link(s) on `segment`.
    pub fn set_link_on(&self, host: &Host, segment: &str, up: bool) -> Result<()> {
        self.set_link_where(host, up, |p| p.segment == segment)
    }

    fn set_link_where(&self, host: &Host, up: bool, pick: impl Fn(&Port) -> bool) -> Result<()> {
        let ports: Vec<Port> = self
            .inner
            .state()
            .hosts
            .get(&host.name)
            .ok_or_else(|| Error::invalid("host", &host.name, "not in this lab"))?
            .iter()
            .filter(|p| pick(p))
            .cloned()
            .collect();
        if ports.is_empty() {
            return Err(Error::invalid("host", &host.name, "no matching link"));
        }
        let state = if up { "up" } else { "down" };
        for p in ports {
            run(ip().args(["-n", &self.inner.fabric, "link", "set", &p.fabric_if, state]))?;
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.inner.cleanup();
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod {}", path.display()), e))
}

/// One namespace of a lab. Cheap to clone; all clones refer to the same namespace.
#[derive(Clone)]
pub struct Host {
    name: String,
    netns: String,
    lab: Arc<LabInner>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("name", &self.name)
            .field("netns", &self.netns)
            .finish()
    }
}

impl Host {
    /// The host's short name within the lab.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace name (`ip netns exec <this>`; `/run/netns/<this>`).
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// A fresh directory for this host's files below the lab's temp dir
    /// (`<lab dir>/<host>/<sub>`), created on demand.
    pub fn dir(&self, sub: &str) -> Result<PathBuf> {
        let d = self.lab.dir.join(&self.name).join(sub);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(format!("mkdir {}", d.display()), e))?;
        Ok(d)
    }

    /// A `Command` running `program` inside this namespace (`ip netns exec`), to which
    /// the caller may add arguments and environment.
    pub fn command(&self, program: &str) -> Command {
        let mut c = ip();
        c.args(["netns", "exec", &self.netns, program]);
        c
    }

    /// Runs `program args..` in the namespace; non-zero exit is an error carrying stderr.
    pub fn exec<S: AsRef<std::ffi::OsStr>>(&self, program: &str, args: &[S]) -> Result<Output> {
        run(self.command(program).args(args))
    }

    /// Like [`Host::exec`] but returns the output whatever the exit status.
    pub fn exec_unchecked<S: AsRef<std::ffi::OsStr>>(
        &self,
        program: &str,
        args: &[S],
    ) -> Result<Output> {
        run_unchecked(self.command(program).args(args))
    }

    /// Runs `program args..` in the namespace with `input` on its stdin (for
    /// `iptables-restore`, `ip -batch -`, ...); non-zero exit is an error with stderr.
    pub fn exec_stdin<S: AsRef<std::ffi::OsStr>>(
        &self,
        program: &str,
        args: &[S],
        input: &[u8],
    ) -> Result<Output> {
        crate::process::run_with_stdin(self.command(program).args(args), input)
    }

    /// Runs a `sh -c` script in the namespace and returns its stdout.
    pub fn sh(&self, script: &str) -> Result<String> {
        let out = self.exec("sh", &["-c", script])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts `program args..` in the namespace as a long-running child registered with
    /// the lab's guard; stdout and stderr go to `<lab dir>/<host>/<name>.log`.
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(
        &self,
        name: &str,
        program: &str,
        args: &[S],
    ) -> Result<Proc> {
        let mut c = self.command(program);
        c.args(args);
        self.spawn_command(name, c)
    }

    /// Starts a prepared command (from [`Host::command`]) under the lab's guard.
    pub fn spawn_command(&self, name: &str, cmd: Command) -> Result<Proc> {
        let log = self.dir("")?.join(format!("{name}.log"));
        self.lab
            .registry
            .spawn(format!("{}/{name}", self.name), cmd, &log)
    }

    /// Pings `ip` `count` times (0.2 s apart) from this host; true when at least one
    /// reply came back within `timeout` overall (ping's deadline is whole seconds:
    /// rounded up, at least 1 s).
    pub fn ping(&self, ip: IpAddr, count: u32, timeout: Duration) -> bool {
        let secs = timeout.as_millis().div_ceil(1000).max(1).to_string();
        let count = count.max(1).to_string();
        let ip = ip.to_string();
        self.exec_unchecked(
            "ping",
            &["-n", "-q", "-c", &count, "-i", "0.2", "-w", &secs, &ip],
        )
        .map(|o| o.status.success())
        .unwrap_or(false)
    }

    /// Writes a sysctl in this namespace. `key` may use dots (`net.ipv4.ip_forward`) or
    /// slashes (`net/ipv4/conf/vxlan.calico/forwarding`, needed when a name has a dot).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = if key.contains('/') {
            format!("/proc/sys/{key}")
        } else {
            format!("/proc/sys/{}", key.replace('.', "/"))
        };
        self.exec("sh", &["-c", "echo \"$1\" > \"$2\"", "sh", value, &path])
            .map(|_| ())
    }

    /// Reads a sysctl in this namespace (same key forms as [`Host::sysctl`]).
    pub fn sysctl_get(&self, key: &str) -> Result<String> {
        let path = if key.contains('/') {
            format!("/proc/sys/{key}")
        } else {
            format!("/proc/sys/{}", key.replace('.', "/"))
        };
        Ok(self.exec("cat", &[&path])?.stdout_trimmed())
    }

    /// Adds an address (CIDR, v4 or v6; v6 without duplicate address detection).
    pub fn add_addr(&self, dev: &str, cidr: &str) -> Result<()> {
        let net = parse_cidr("address", cidr)?;
        let net = net.to_string();
        let mut args = vec!["-n", &self.netns, "addr", "add", &net, "dev", dev];
        if cidr.contains(':') {
            args.push("nodad");
        }
        run(ip().args(&args)).map(|_| ())
    }

    /// Runs `ip ARGS..` in this namespace (e.g. `["route", "add", ...]`), returns stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let out = run(ip().args(["-n", &self.netns]).args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Small convenience on `Output`.
pub trait OutputExt {
    /// stdout as trimmed lossy UTF-8.
    fn stdout_trimmed(&self) -> String;
}

impl OutputExt for Output {
    fn stdout_trimmed(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("host name", "a-1", 20).is_ok());
        assert!(check_name("host name", "", 20).is_err());
        assert!(check_name("host name", "A", 20).is_err());
        assert!(check_name("host name", "a b", 20).is_err());
    }
}
