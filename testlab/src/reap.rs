//! Best-effort cleanup after crashed runs: namespaces named `tl-<pid>-...` and temp dirs
//! named `testlab-<pid>-...` whose creating process `<pid>` no longer exists. Only names
//! of that form (made by this crate) are ever touched; processes still inside such a
//! namespace (started there by the dead run) are killed before it is deleted.

use std::path::Path;
use std::process::Command;

use crate::lab::{NETNS_PREFIX, TMP_PREFIX};
use crate::process::run;

fn ip() -> Command {
    Command::new("ip")
}

/// The PID embedded in a testlab namespace or temp dir name, if it is one.
pub(crate) fn owner_pid(name: &str, prefix: &str) -> Option<i32> {
    let rest = name.strip_prefix(prefix)?;
    let (pid, rest) = rest.split_once('-')?;
    let (n, _) = rest.split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse::<i32>().ok().filter(|p| *p > 0)
}

pub(crate) fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Best effort (never fails): deletes namespaces and temp dirs named by testlab whose creating process
/// is gone, killing the processes still inside such a namespace first.
pub fn reap_stale() {
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    if let Ok(rd) = std::fs::read_dir("/run/netns") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = owner_pid(&name, NETNS_PREFIX) else {
                continue;
            };
            if pid == me || pid_alive(pid) {
                continue;
            }
            if let Ok(out) = run(ip().args(["netns", "pids", &name])) {
                for p in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Ok(p) = p.parse::<i32>() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(p),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
            tracing::info!(ns = %name, "reaping stale testlab namespace");
            let _ = run(ip().args(["netns", "del", &name]));
        }
    }
    let tmp = std::env::temp_dir();
    if let Ok(rd) = std::fs::read_dir(&tmp) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = owner_pid(&name, TMP_PREFIX) else {
                continue;
            };
            if pid != me && !pid_alive(pid) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_only_for_our_names() {
        assert_eq!(owner_pid("tl-123-0-bgp-a", NETNS_PREFIX), Some(123));
        assert_eq!(owner_pid("tl-123-4-x", NETNS_PREFIX), Some(123));
        assert_eq!(owner_pid("tl-abc-0-x", NETNS_PREFIX), None);
        assert_eq!(owner_pid("tl-123-x-y", NETNS_PREFIX), None);
        assert_eq!(owner_pid("cni-123-0-x", NETNS_PREFIX), None);
        assert_eq!(owner_pid("testlab-77-1-Ab3", TMP_PREFIX), Some(77));
    }
}
