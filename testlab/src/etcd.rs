//! A real etcd (Debian's etcd-server, v3 API) for datastore tests: either on free
//! 127.0.0.1 ports of the calling namespace with its own temp data dir
//! ([`Etcd::start_loopback`], no root needed), or inside a lab host on a given address
//! ([`Etcd::start_in`]). Both wait until the member is healthy, and support
//! stop/kill/restart on the same data dir and ports (for watch-resume tests).

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::lab::Host;
use crate::process::{Proc, Registry, run};
use crate::wait::wait_until;

/// How long [`Etcd`] waits for a started member to report healthy.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Where and how one member runs (kept for restarts).
struct Member {
    host: Option<Host>,
    /// Own registry when not in a lab (kills the member on drop).
    registry: Option<Arc<Registry>>,
    dir: PathBuf,
    ip: IpAddr,
    client_port: u16,
    peer_port: u16,
}

/// A running single-member etcd.
pub struct Etcd {
    member: Member,
    proc: Proc,
    // Declared last: dropped after `proc` (the data dir outlives the member).
    _tmp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoint", &self.endpoint())
            .field("dir", &self.member.dir)
            .finish()
    }
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| Error::io("bind 127.0.0.1:0 for a free port", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("read local port", e))
}

fn url(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("http://{v4}:{port}"),
        IpAddr::V6(v6) => format!("http://[{v6}]:{port}"),
    }
}

impl Member {
    fn spawn(&self) -> Result<Proc> {
        let client = url(self.ip, self.client_port);
        let peer = url(self.ip, self.peer_port);
        let mut cmd = match &self.host {
            Some(h) => h.command("etcd"),
            None => Command::new("etcd"),
        };
        cmd.args(["--name", "t", "--logger", "zap", "--log-outputs", "stderr"])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("t={peer}")]);
        match (&self.host, &self.registry) {
            (Some(h), _) => h.spawn_command("etcd", cmd),
            (None, Some(r)) => r.spawn("etcd", cmd, &self.dir.join("etcd.log")),
            (None, None) => Err(Error::invalid("etcd", "registry", "missing")),
        }
    }
}

impl Etcd {
    /// Starts etcd on two free 127.0.0.1 ports of the current namespace with a fresh
    /// temp data dir; returns once healthy. Stopped when dropped. May also live in a
    /// `static OnceLock` shared by a test binary: the member then dies with the test
    /// process (parent-death signal) and the next run reaps its temp dir. A port taken by a
    /// parallel test between probing and binding is retried with new ports.
    pub fn start_loopback() -> Result<Etcd> {
        let mut last = None;
        for _ in 0..3 {
            let tmp = tempfile::Builder::new()
                // `testlab-<pid>-<n>-`: the reaper removes it once this process is gone.
                .prefix(&format!(
                    "{}{}-{}-etcd-",
                    crate::lab::TMP_PREFIX,
                    std::process::id(),
                    crate::lab::next_id()
                ))
                .tempdir()
                .map_err(|e| Error::io("create etcd temp dir", e))?;
            let member = Member {
                host: None,
                registry: Some(Registry::new()),
                dir: tmp.path().to_path_buf(),
                ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                client_port: free_port()?,
                peer_port: free_port()?,
            };
            let e = Etcd {
                proc: member.spawn()?,
                member,
                _tmp: Some(tmp),
            };
            match e.wait_healthy() {
                Ok(()) => return Ok(e),
                Err(err) if e.proc.log().contains("address already in use") => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| Error::invalid("etcd", "start", "no attempt made")))
    }

    /// Starts etcd inside lab host `host`, listening on `ip` (an address of that host)
    /// ports 2379 (clients) and 2380 (peer); data under the lab's temp dir. Stopped by
    /// the lab's guard.
    pub fn start_in(host: &Host, ip: IpAddr) -> Result<Etcd> {
        let member = Member {
            host: Some(host.clone()),
            registry: None,
            dir: host.dir("etcd")?,
            ip,
            client_port: 2379,
            peer_port: 2380,
        };
        let e = Etcd {
            proc: member.spawn()?,
            member,
            _tmp: None,
        };
        e.wait_healthy()?;
        Ok(e)
    }

    fn wait_healthy(&self) -> Result<()> {
        wait_until(READY_TIMEOUT, Duration::from_millis(50), || {
            self.proc.check_running()?;
            self.etcdctl(&["endpoint", "health"])
        })
        .map(|_| ())
    }

    /// The client URL (`http://IP:PORT`).
    pub fn endpoint(&self) -> String {
        url(self.member.ip, self.member.client_port)
    }

    /// The client URLs, as etcd-client's `Client::connect` takes them.
    pub fn endpoints(&self) -> Vec<String> {
        vec![self.endpoint()]
    }

    /// The directory holding the data dir and log.
    pub fn dir(&self) -> &Path {
        &self.member.dir
    }

    /// The etcd process (log, pid).
    pub fn proc(&self) -> &Proc {
        &self.proc
    }

    /// Runs `etcdctl --endpoints URL ARGS..` with `ETCDCTL_API=3` (inside the lab host
    /// when started there); returns stdout.
    pub fn etcdctl(&self, args: &[&str]) -> Result<String> {
        let mut cmd = match &self.member.host {
            Some(h) => h.command("etcdctl"),
            None => Command::new("etcdctl"),
        };
        cmd.env("ETCDCTL_API", "3")
            .args([
                "--dial-timeout",
                "2s",
                "--command-timeout",
                "5s",
                "--endpoints",
            ])
            .arg(self.endpoint())
            .args(args);
        let out = run(&mut cmd)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// SIGTERM (etcd exits within ~2 s), SIGKILL after the grace period.
    pub fn stop(&self) {
        self.proc.stop();
    }

    /// SIGKILL (a crash).
    pub fn kill(&self) {
        self.proc.kill();
    }

    /// Starts the member again on the same data dir and ports; returns once healthy.
    pub fn restart(&mut self) -> Result<()> {
        self.proc.stop();
        self.proc = self.member.spawn()?;
        self.wait_healthy()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(r) = &self.member.registry {
            r.kill_all();
        }
    }
}
