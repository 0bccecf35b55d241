//! The etcd harness against the real etcd-server: put/get through etcdctl (v3 API), data
//! kept across a restart on the same ports, the member gone after drop, and an etcd
//! inside a lab host reachable from another host. The lab test needs root.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use testlab::etcd::Etcd;
use testlab::{Lab, OutputExt, require_root};

#[test]
fn loopback_put_get_restart_and_cleanup() -> anyhow::Result<()> {
    let mut etcd = Etcd::start_loopback()?;
    let ep = etcd.endpoint();
    assert!(ep.starts_with("http://127.0.0.1:"), "{ep}");
    assert_eq!(etcd.endpoints(), vec![ep.clone()]);
    assert_eq!(etcd.etcdctl(&["put", "/tortie/k", "v1"])?.trim(), "OK");
    assert_eq!(
        etcd.etcdctl(&["get", "/tortie/k", "--print-value-only"])?
            .trim(),
        "v1"
    );

    etcd.stop();
    assert!(
        etcd.etcdctl(&["get", "/tortie/k"]).is_err(),
        "answers while stopped"
    );
    etcd.restart()?;
    assert_eq!(etcd.endpoint(), ep, "same port after restart");
    assert_eq!(
        etcd.etcdctl(&["get", "/tortie/k", "--print-value-only"])?
            .trim(),
        "v1",
        "data kept across restart"
    );

    let pid = etcd.proc().pid();
    let dir = etcd.dir().to_path_buf();
    drop(etcd);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "etcd {pid} still runs"
    );
    assert!(!dir.exists(), "temp dir {} left behind", dir.display());
    Ok(())
}

#[test]
fn etcd_in_a_lab_host_serves_other_hosts() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::new("etcd")?;
    let db = lab.add_host("db", "10.0.0.10/24")?;
    let node = lab.add_host("node", "10.0.0.1/24")?;
    let ip: IpAddr = "10.0.0.10".parse()?;
    let etcd = Etcd::start_in(&db, ip)?;
    assert_eq!(etcd.endpoint(), "http://10.0.0.10:2379");
    etcd.etcdctl(&["put", "a", "b"])?;
    // From the other host, over the fabric.
    let out = node
        .command("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &etcd.endpoint(),
            "get",
            "a",
            "--print-value-only",
        ])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout_trimmed(), "b");
    assert!(
        lab.pids().contains(&etcd.proc().pid()),
        "tracked by the lab guard"
    );
    assert!(!node.ping("10.0.0.99".parse()?, 1, Duration::from_millis(300)));
    Ok(())
}
