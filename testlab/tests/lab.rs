//! Lab basics against the real kernel: hosts reach each other over the fabric, a router
//! joins two segments, cutting a link stops traffic, and the guard removes namespaces
//! and processes even when the test body panics. Needs root.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use testlab::{Lab, OutputExt, require_root};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip literal")
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// A PID is gone when /proc has no entry, or only a zombie's (an orphaned grandchild
/// waits there until init reaps it; it no longer runs).
fn pid_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

#[test]
fn two_hosts_ping_each_other_v4_and_v6() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::new("ping")?;
    let a = lab.add_host("a", "10.0.0.1/24")?;
    let b = lab.add_host("b", "10.0.0.2/24")?;
    a.add_addr("eth0", "fd00::1/64")?;
    b.add_addr("eth0", "fd00::2/64")?;
    assert!(a.ping(ip("10.0.0.2"), 1, Duration::from_secs(3)));
    assert!(b.ping(ip("10.0.0.1"), 1, Duration::from_secs(3)));
    assert!(a.ping(ip("fd00::2"), 1, Duration::from_secs(3)));
    // Nobody owns 10.0.0.3: no reply.
    assert!(!a.ping(ip("10.0.0.3"), 1, Duration::from_secs(1)));
    // Each host sees only its own eth0 and lo.
    let links = a.ip(&["-o", "link", "show"])?;
    assert!(links.contains("eth0"), "{links}");
    assert_eq!(links.lines().count(), 2, "{links}");
    // A failing command is an error naming the command and carrying its stderr.
    let err = a
        .exec("ip", &["link", "show", "nosuchdev"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nosuchdev") && err.contains("does not exist"),
        "{err}"
    );
    assert_eq!(a.sh("echo $((6 * 7))")?.trim(), "42");
    // stdin-fed commands: a batch of routes in one `ip -batch -`.
    a.exec_stdin(
        "ip",
        &["-batch", "-"],
        b"route add 192.0.2.0/24 via 10.0.0.2\nroute add 198.51.100.0/24 via 10.0.0.2\n",
    )?;
    let routes = a.ip(&["route", "show"])?;
    assert!(routes.contains("192.0.2.0/24 via 10.0.0.2"), "{routes}");
    assert!(routes.contains("198.51.100.0/24 via 10.0.0.2"), "{routes}");
    let err = a
        .exec_stdin("ip", &["-batch", "-"], b"route add bogus\n")
        .unwrap_err();
    assert!(err.to_string().contains("bogus"), "{err}");
    Ok(())
}

#[test]
fn router_joins_two_segments_and_cut_link_stops_traffic() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::new("route")?;
    lab.add_segment("s2")?;
    let a = lab.add_host("a", "10.1.0.1/24")?;
    let c = lab.add_host_on("s2", "c", "10.2.0.1/24")?;
    let r = lab.add_router("r", &[("lan", "10.1.0.254/24"), ("s2", "10.2.0.254/24")])?;
    assert_eq!(r.sysctl_get("net.ipv4.ip_forward")?, "1");
    assert_eq!(a.sysctl_get("net.ipv4.ip_forward")?, "0");
    a.ip(&["route", "add", "default", "via", "10.1.0.254"])?;
    c.ip(&["route", "add", "default", "via", "10.2.0.254"])?;
    assert!(a.ping(ip("10.2.0.1"), 1, Duration::from_secs(3)));
    // Segments are separate L2 domains: a is not on s2.
    let out = a
        .exec("ip", &["route", "get", "10.2.0.1"])?
        .stdout_trimmed();
    assert!(out.contains("via 10.1.0.254"), "{out}");

    lab.set_link(&c, false)?;
    assert!(!a.ping(ip("10.2.0.1"), 1, Duration::from_secs(1)));
    // The host keeps its address while its cable is cut.
    assert!(c.ip(&["addr", "show", "eth0"])?.contains("10.2.0.1/24"));
    lab.set_link_on(&c, "s2", true)?;
    assert!(a.ping(ip("10.2.0.1"), 3, Duration::from_secs(3)));
    Ok(())
}

#[test]
fn bad_names_are_refused() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::new("names")?;
    assert!(lab.add_host("Bad Name", "10.0.0.1/24").is_err());
    assert!(lab.add_host("x", "10.0.0.300/24").is_err());
    assert!(lab.add_host_on("nosuch", "y", "10.0.0.1/24").is_err());
    lab.add_host("a", "")?;
    let err = lab.add_host("a", "").unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");
    Ok(())
}

#[test]
fn guard_cleans_up_after_panic() {
    require_root();
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::panic::catch_unwind(move || {
        let lab = Lab::new("panic").expect("lab");
        let a = lab.add_host("a", "10.0.0.1/24").expect("host");
        let sleeper = a.spawn("sleep", "sleep", &["300"]).expect("spawn");
        // A child that ignores SIGTERM must still be killed (SIGKILL after grace), and
        // so must the grandchild it forked.
        let stubborn = a
            .spawn(
                "stubborn",
                "sh",
                &["-c", "trap '' TERM; sleep 300 & echo child=$!; wait"],
            )
            .expect("spawn");
        let grandchild: u32 =
            testlab::wait_until(Duration::from_secs(3), Duration::from_millis(10), || {
                let log = stubborn.log();
                log.trim()
                    .strip_prefix("child=")
                    .and_then(|p| p.parse().ok())
                    .ok_or(log)
            })
            .expect("grandchild pid");
        let dir = lab.dir().to_path_buf();
        tx.send((
            lab.namespaces(),
            vec![sleeper.pid(), stubborn.pid(), grandchild],
            dir,
        ))
        .expect("send");
        panic!("deliberate panic inside a lab");
    });
    assert!(result.is_err(), "the closure panicked");
    let (namespaces, pids, dir) = rx.recv().expect("lab details");
    assert_eq!(namespaces.len(), 2, "fabric + a: {namespaces:?}");
    for ns in &namespaces {
        assert!(!netns_exists(ns), "namespace {ns} left behind");
    }
    for pid in pids {
        assert!(pid_gone(pid), "process {pid} left behind");
    }
    assert!(!dir.exists(), "temp dir {} left behind", dir.display());
}

#[test]
fn stop_and_kill_report_and_unregister() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::new("procs")?;
    let a = lab.add_host("a", "10.0.0.1/24")?;
    let p = a.spawn(
        "echo",
        "sh",
        &[
            "-c",
            "echo hello from $(ip -o link | wc -l) links; sleep 60",
        ],
    )?;
    testlab::wait_until(Duration::from_secs(3), Duration::from_millis(20), || {
        if p.log().contains("hello from 2 links") {
            Ok(())
        } else {
            Err(p.log())
        }
    })
    .map_err(anyhow::Error::msg)?;
    assert!(p.is_running());
    assert_eq!(lab.pids(), vec![p.pid()]);
    let st = p.stop().expect("status");
    assert!(!st.success());
    assert!(lab.pids().is_empty());
    assert!(pid_gone(p.pid()));
    assert!(p.stop().is_none(), "second stop is a no-op");

    let q = a.spawn("exit3", "sh", &["-c", "exit 3"])?;
    let st = testlab::wait_until(Duration::from_secs(3), Duration::from_millis(10), || {
        q.try_wait()?
            .ok_or_else(|| anyhow::anyhow!("still running"))
    })?;
    assert_eq!(st.code(), Some(3));
    let err = q.check_running().unwrap_err().to_string();
    assert!(err.contains("exit3"), "{err}");
    Ok(())
}

/// Leftovers of a crashed run (a `tl-<dead pid>-...` namespace with a process still in
/// it, and a `testlab-<dead pid>-...` temp dir) are removed by the reaper; a namespace
/// of a live process with the same form is left alone.
#[test]
fn reaper_removes_only_leftovers_of_dead_runs() -> anyhow::Result<()> {
    require_root();
    // A PID that surely belonged to a process that has exited.
    let mut child = std::process::Command::new("true").spawn()?;
    let dead = child.id();
    child.wait()?;
    anyhow::ensure!(pid_gone(dead), "pid {dead} reused already");
    let me = std::process::id();
    let stale = format!("tl-{dead}-0-reapme");
    let live = format!("tl-{me}-999999-keepme");
    let unrelated = format!("other-{dead}-0-x");
    for ns in [&stale, &live, &unrelated] {
        std::process::Command::new("ip")
            .args(["netns", "add", ns])
            .status()?;
    }
    let sleeper = std::process::Command::new("ip")
        .args(["netns", "exec", &stale, "sleep", "300"])
        .spawn()?;
    let sleeper_pid = sleeper.id();
    // The reaper must find it inside the namespace (ip netns exec has entered it).
    testlab::wait_until(Duration::from_secs(3), Duration::from_millis(10), || {
        let out = std::process::Command::new("ip")
            .args(["netns", "pids", &stale])
            .output()?;
        let pids = String::from_utf8_lossy(&out.stdout).into_owned();
        anyhow::ensure!(
            pids.split_whitespace()
                .any(|p| p == sleeper_pid.to_string()),
            "sleeper not in {stale} yet: {pids:?}"
        );
        Ok(())
    })?;
    let tmp = std::env::temp_dir().join(format!("testlab-{dead}-0-leftover"));
    std::fs::create_dir_all(tmp.join("sub"))?;

    testlab::reap::reap_stale();

    let stale_gone = !netns_exists(&stale);
    let live_kept = netns_exists(&live);
    let unrelated_kept = netns_exists(&unrelated);
    // Clean up what the reaper (rightly) left, before asserting.
    for ns in [&live, &unrelated] {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", ns])
            .status();
    }
    let mut sleeper = sleeper;
    let status = sleeper.wait()?;
    assert!(stale_gone, "stale namespace {stale} not reaped");
    assert!(live_kept, "namespace of a live pid was deleted");
    assert!(
        unrelated_kept,
        "a namespace not named by testlab was deleted"
    );
    assert!(
        !status.success(),
        "process in the stale namespace was killed"
    );
    assert!(pid_gone(sleeper_pid));
    assert!(!tmp.exists(), "stale temp dir {} left", tmp.display());
    Ok(())
}

/// Children carry a parent-death signal: when the test process exits without running
/// any destructor, they die anyway. The test re-runs its own binary in a mode that
/// spawns a child, leaks every handle and exits.
#[test]
fn children_die_with_the_test_process_even_without_drop() -> anyhow::Result<()> {
    const NAME: &str = "children_die_with_the_test_process_even_without_drop";
    if std::env::var_os("TESTLAB_ORPHAN_MODE").is_some() {
        let dir = std::env::temp_dir();
        let reg = testlab::Registry::new();
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("300");
        let log = dir.join(format!("testlab-orphan-{}.log", std::process::id()));
        let p = reg.spawn("orphan", cmd, &log)?;
        println!("\norphan={}", p.pid());
        println!("log={}", log.display());
        std::mem::forget(p);
        std::mem::forget(reg);
        std::process::exit(0);
    }
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env("TESTLAB_ORPHAN_MODE", "1")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pid: u32 = stdout
        .lines()
        .find_map(|l| l.split_once("orphan=").map(|(_, p)| p))
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no orphan pid in {stdout:?}"))?;
    if let Some(log) = stdout.lines().find_map(|l| l.strip_prefix("log=")) {
        let _ = std::fs::remove_file(log.trim());
    }
    testlab::wait_until(Duration::from_secs(3), Duration::from_millis(20), || {
        if pid_gone(pid) {
            Ok(())
        } else {
            Err(format!("orphan {pid} still runs"))
        }
    })
    .map_err(anyhow::Error::msg)?;
    Ok(())
}
