//! Running programs: one-shot commands with captured output ([`run`]) and long-running
//! children tracked by PID in a [`Registry`] that terminates them (SIGTERM, short wait,
//! SIGKILL, reap) when it is told to or dropped. Each child leads a process group of
//! its own, and signals go to that group, so helpers a child forked die with it; and
//! each child carries a parent-death signal, so it dies with the test process even when
//! no destructor runs. A [`Proc`] is the test's handle on one
//! such child; it never owns the child, the registry does, so the guard always finds it.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// How long [`Proc::stop`] and the guard wait after SIGTERM before sending SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(3);

/// Renders a command line for messages.
pub(crate) fn display_cmd(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion and returns its output; a non-zero exit becomes
/// [`Error::Command`] carrying stderr (or stdout when stderr is empty).
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = run_unchecked(cmd)?;
    check(cmd, out)
}

/// Runs `cmd` with `input` written to its stdin; checked like [`run`].
pub fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Result<Output> {
    use std::io::Write as _;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        cmd: display_cmd(cmd),
        source,
    })?;
    // Feed stdin from a thread so a child filling its stdout pipe cannot deadlock us.
    let mut stdin = child.stdin.take();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        if let Some(s) = stdin.as_mut() {
            let _ = s.write_all(&data);
        }
    });
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io(format!("wait for `{}`", display_cmd(cmd)), e))?;
    let _ = writer.join();
    check(cmd, out)
}

fn check(cmd: &Command, out: Output) -> Result<Output> {
    if out.status.success() {
        Ok(out)
    } else {
        let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.is_empty() {
            stderr = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        Err(Error::Command {
            cmd: display_cmd(cmd),
            status: out.status.to_string(),
            stderr,
        })
    }
}

/// Runs `cmd` to completion and returns its output whatever the exit status.
pub fn run_unchecked(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null());
    cmd.output().map_err(|source| Error::Spawn {
        cmd: display_cmd(cmd),
        source,
    })
}

struct SpawnRequest {
    cmd: Command,
    reply: mpsc::Sender<std::io::Result<Child>>,
}

static KEEPER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();

/// Spawns `cmd` from one long-lived "keeper" thread with a parent-death signal
/// (SIGKILL), so children also die when the test process dies without running any
/// destructor (a `static` holding a daemon, `exit()`, SIGKILL from a test timeout).
/// The signal is tied to the spawning *thread*, hence the thread that never ends.
/// Daemons that change their user id (FRR) lose it; the reaper covers those.
fn spawn_kept(mut cmd: Command) -> std::io::Result<Child> {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only calls
    // async-signal-safe functions (prctl, getppid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        let started = std::thread::Builder::new()
            .name("testlab-keeper".into())
            .spawn(move || {
                for mut req in rx {
                    let _ = req.reply.send(req.cmd.spawn());
                }
            });
        if let Err(e) = started {
            tracing::warn!(error = %e, "no keeper thread; children lose their death signal");
        }
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    let sent = keeper
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send(SpawnRequest {
            cmd,
            reply: reply_tx,
        });
    match sent {
        Ok(()) => reply_rx
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("testlab keeper thread is gone"))),
        // No keeper thread: spawn here (the death signal then follows this thread).
        Err(mpsc::SendError(mut req)) => req.cmd.spawn(),
    }
}

struct Entry {
    name: String,
    child: Child,
}

/// Every long-running child started through it, terminated on [`Registry::kill_all`]
/// and on drop.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<RegistryInner>,
}

#[derive(Default)]
struct RegistryInner {
    next: u64,
    children: BTreeMap<u64, Entry>,
}

impl Registry {
    /// A new, empty registry behind an `Arc` (handles keep a reference).
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    fn lock(&self) -> MutexGuard<'_, RegistryInner> {
        // A panic while holding the lock must not stop the guard from cleaning up.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spawns `cmd` with stdout and stderr appended to `log` and registers the child.
    /// The fork happens on the keeper thread, which stays in the namespace the process
    /// started in: to run inside a lab host use [`crate::Host::spawn`] (`ip netns
    /// exec`), not a call from within [`crate::Host::run_in`].
    pub fn spawn(
        self: &Arc<Self>,
        name: impl Into<String>,
        mut cmd: Command,
        log: &Path,
    ) -> Result<Proc> {
        let name = name.into();
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| Error::io(format!("open log {}", log.display()), e))?;
        let file2 = file
            .try_clone()
            .map_err(|e| Error::io(format!("dup log {}", log.display()), e))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(file2))
            .process_group(0);
        let shown = display_cmd(&cmd);
        let child = spawn_kept(cmd).map_err(|source| Error::Spawn {
            cmd: shown.clone(),
            source,
        })?;
        let pid = child.id();
        tracing::debug!(%name, pid, cmd = %shown, "spawned");
        let mut inner = self.lock();
        let id = inner.next;
        inner.next += 1;
        inner.children.insert(
            id,
            Entry {
                name: name.clone(),
                child,
            },
        );
        Ok(Proc {
            registry: Arc::clone(self),
            id,
            pid,
            name,
            log: log.to_path_buf(),
        })
    }

    /// PIDs of the children still registered.
    pub fn pids(&self) -> Vec<u32> {
        self.lock()
            .children
            .values()
            .map(|e| e.child.id())
            .collect()
    }

    fn take(&self, id: u64) -> Option<Entry> {
        self.lock().children.remove(&id)
    }

    /// Terminates every registered child: SIGTERM to all, up to [`TERM_GRACE`] for them
    /// to exit, SIGKILL to the rest, then reaps them all.
    pub fn kill_all(&self) {
        let entries: Vec<Entry> = std::mem::take(&mut self.lock().children)
            .into_values()
            .collect();
        terminate(entries, TERM_GRACE);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Signals the child's whole process group (the child is its leader).
fn signal(child: &Child, sig: Signal) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // ESRCH (already gone) is fine.
        let _ = kill(Pid::from_raw(-pid), sig);
    }
}

/// True while a live (not zombie) process is in the entry's process group. Orphans of
/// the group are reparented to init, which may reap them late: a zombie counts as gone.
fn group_alive(e: &Entry) -> bool {
    let Ok(pgid) = i32::try_from(e.child.id()) else {
        return false;
    };
    // Cheap check first: no member at all, not even a zombie.
    if kill(Pid::from_raw(-pgid), None).is_err() {
        return false;
    }
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return false;
    };
    rd.flatten().any(|d| {
        let Ok(stat) = std::fs::read_to_string(d.path().join("stat")) else {
            return false;
        };
        // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let mut f = rest.split_whitespace();
        let state = f.next();
        let pgrp = f.nth(1).and_then(|p| p.parse::<i32>().ok());
        pgrp == Some(pgid) && state != Some("Z") && state != Some("X")
    })
}

/// SIGTERM, wait up to `grace`, SIGKILL, reap. Returns each child's exit status.
fn terminate(mut entries: Vec<Entry>, grace: Duration) -> Vec<Option<ExitStatus>> {
    let mut status: Vec<Option<ExitStatus>> = vec![None; entries.len()];
    for (e, st) in entries.iter_mut().zip(status.iter_mut()) {
        match e.child.try_wait() {
            Ok(Some(s)) => *st = Some(s),
            _ => signal(&e.child, Signal::SIGTERM),
        }
    }
    let deadline = Instant::now() + grace;
    loop {
        let mut pending = false;
        for (e, st) in entries.iter_mut().zip(status.iter_mut()) {
            if st.is_none() {
                match e.child.try_wait() {
                    Ok(Some(s)) => *st = Some(s),
                    Ok(None) => pending = true,
                    Err(_) => {}
                }
            }
        }
        if !pending || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for (e, st) in entries.iter_mut().zip(status.iter_mut()) {
        if st.is_none() {
            tracing::debug!(name = %e.name, pid = e.child.id(), "SIGKILL after grace");
            signal(&e.child, Signal::SIGKILL);
            *st = e.child.wait().ok();
        } else {
            // The leader is gone; whatever it left behind in its group goes too.
            signal(&e.child, Signal::SIGKILL);
        }
    }
    // Orphans of a group die asynchronously and are reaped by init: wait (bounded) until
    // no member of any group is left, so callers can delete namespaces and dirs.
    let deadline = Instant::now() + Duration::from_secs(1);
    while entries.iter().any(group_alive) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    status
}

/// The value of a `Key:   123 kB` line of `/proc/PID/status`.
pub(crate) fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if k != key {
            return None;
        }
        v.split_whitespace().next()?.parse().ok()
    })
}

/// Handle on one long-running child started in a lab (or by a standalone harness).
/// Dropping the handle does not stop the child; the lab's guard does.
pub struct Proc {
    registry: Arc<Registry>,
    id: u64,
    pid: u32,
    name: String,
    log: PathBuf,
}

impl std::fmt::Debug for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proc")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .field("log", &self.log)
            .finish()
    }
}

impl Proc {
    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The name given at spawn time (used in messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file receiving the child's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The log so far (lossy UTF-8; empty when unreadable).
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `n` lines of the log, for error messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// `Ok(None)` while running, `Ok(Some(status))` once exited (the child is reaped
    /// and unregistered), `Err` when the child was already stopped through this handle.
    pub fn try_wait(&self) -> Result<Option<ExitStatus>> {
        let mut inner = self.registry.lock();
        let Some(e) = inner.children.get_mut(&self.id) else {
            return Err(Error::invalid("process", &self.name, "already stopped"));
        };
        match e.child.try_wait() {
            Ok(Some(s)) => {
                inner.children.remove(&self.id);
                Ok(Some(s))
            }
            Ok(None) => Ok(None),
            Err(err) => Err(Error::io(format!("wait for {}", self.name), err)),
        }
    }

    /// True while the child runs.
    pub fn is_running(&self) -> bool {
        matches!(self.try_wait(), Ok(None))
    }

    /// Fails with [`Error::Exited`] (including the log tail) when the child has exited.
    pub fn check_running(&self) -> Result<()> {
        match self.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(st)) => Err(self.exited(st.to_string())),
            Err(_) => Err(self.exited("stopped".into())),
        }
    }

    pub(crate) fn exited(&self, status: String) -> Error {
        Error::Exited {
            what: self.name.clone(),
            status,
            log: self.log.display().to_string(),
            tail: self.log_tail(20),
        }
    }

    /// Graceful stop: SIGTERM, up to [`TERM_GRACE`], then SIGKILL. Returns the exit
    /// status (None when it could not be read). Idempotent.
    pub fn stop(&self) -> Option<ExitStatus> {
        let e = self.registry.take(self.id)?;
        terminate(vec![e], TERM_GRACE).pop().flatten()
    }

    /// Hard stop: SIGKILL at once (a crash, as for graceful-restart tests), then reap.
    pub fn kill(&self) -> Option<ExitStatus> {
        let e = self.registry.take(self.id)?;
        signal(&e.child, Signal::SIGKILL);
        terminate(vec![e], Duration::ZERO).pop().flatten()
    }

    /// Resident set size now, in KiB (`VmRSS`); None once the process is gone.
    pub fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS")
    }

    /// Peak resident set size so far, in KiB (`VmHWM`), for memory benchmarks; None
    /// once the process is gone.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.status_kib("VmHWM")
    }

    fn status_kib(&self, key: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        parse_status_kib(&status, key)
    }

    /// Sends `sig` to the child alone, without waiting (e.g. SIGHUP, or SIGSTOP/SIGCONT
    /// to freeze a daemon).
    pub fn signal(&self, sig: Signal) -> Result<()> {
        let pid = i32::try_from(self.pid)
            .map_err(|_| Error::invalid("pid", self.pid.to_string(), "out of range"))?;
        kill(Pid::from_raw(pid), sig)
            .map_err(|e| Error::io(format!("signal {sig} to {}", self.name), e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let s = "Name:\tbird\nVmHWM:\t   5120 kB\nVmRSS:\t   4096 kB\n";
        assert_eq!(parse_status_kib(s, "VmHWM"), Some(5120));
        assert_eq!(parse_status_kib(s, "VmRSS"), Some(4096));
        assert_eq!(parse_status_kib(s, "VmSwap"), None);
        assert_eq!(parse_status_kib("VmRSS: x kB", "VmRSS"), None);
    }
}
