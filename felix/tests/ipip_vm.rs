//! Root-only: IPIP end to end inside a qemu VM (TCG, `-nic none`) booting Debian's stock
//! kernel, since the host kernel has no `ipip` module. The host-side test packs an
//! initramfs (busybox, iproute2's `ip`, the kernel modules, and this very test binary),
//! boots it, and reads the verdict from the serial console. Inside the VM the ignored
//! test `inside_vm` builds two nodes and two pods in namespaces, runs one felix route
//! reconciler per node with an IPIP Always pool, checks the `tunl0` routes and pings
//! pod to pod. The kernel comes from `.ci/prepare.d/ipip-vm-kernel.sh`.

mod routes_support;

use anyhow::{Context, Result, bail, ensure};
use routes_support::eventually;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tortie_cni::{Netns, WorkloadSetup, setup_workload};
use tortie_felix::input::{
    AffinityState, BlockAffinity, EncapMode, Endpoint, EndpointId, Input, LearnedRoute, Node, Pool,
    RoutePath,
};
use tortie_felix::route::{ReconcilerConfig, spawn};

const PASS: &str = "TORTIE-VM-RESULT: PASS";
const MODULES: &[&str] = &["tunnel4", "ip_tunnel", "ipip", "veth"];

fn cache_dir() -> PathBuf {
    let base = std::env::var("TORTIE_CACHE").unwrap_or_else(|_| "/var/cache/tortie".into());
    Path::new(&base).join("ipip-vm")
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Copies `bin` to `root/dest` plus every shared library `ldd` names.
fn copy_with_libs(bin: &Path, root: &Path, dest: &str) -> Result<()> {
    let target = root.join(dest.trim_start_matches('/'));
    std::fs::create_dir_all(target.parent().context("dest has a parent")?)?;
    std::fs::copy(bin, &target).with_context(|| format!("copy {}", bin.display()))?;
    let ldd = run(Command::new("ldd").arg(bin))?;
    for lib in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
        let to = root.join(lib.trim_start_matches('/'));
        if !to.exists() {
            std::fs::create_dir_all(to.parent().context("lib has a parent")?)?;
            std::fs::copy(lib, &to).with_context(|| format!("copy {lib}"))?;
        }
    }
    Ok(())
}

const INIT: &str = r#"#!/bin/sh
export PATH=/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
mkdir -p /run/netns /var
ln -s /run /var/run
for m in tunnel4 ip_tunnel ipip veth; do insmod /modules/$m.ko || echo "TORTIE-VM: insmod $m failed"; done
TORTIE_IPIP_VM_INSIDE=1 /felix-vm-test inside_vm --exact --ignored --nocapture --test-threads=1
echo "TORTIE-VM-EXIT: $?"
poweroff -f
"#;

fn build_initrd(dir: &Path) -> Result<PathBuf> {
    let root = dir.join("root");
    for d in ["bin", "proc", "sys", "dev", "run", "tmp", "modules"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy("/usr/bin/busybox", root.join("bin/busybox")).context("busybox-static")?;
    for applet in [
        "sh", "mount", "mkdir", "ln", "insmod", "ping", "poweroff", "cat", "sleep", "echo",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    copy_with_libs(Path::new("/usr/sbin/ip"), &root, "/usr/sbin/ip")?;
    let exe = std::env::current_exe()?;
    copy_with_libs(&exe, &root, "/felix-vm-test")?;
    // Debug info is not needed inside; a smaller initramfs boots faster.
    run(Command::new("strip").arg(root.join("felix-vm-test")))?;
    for m in MODULES {
        std::fs::copy(
            cache_dir().join("modules").join(format!("{m}.ko")),
            root.join("modules").join(format!("{m}.ko")),
        )?;
    }
    let init = root.join("init");
    std::fs::write(&init, INIT)?;
    run(Command::new("chmod").arg("755").arg(&init))?;
    let initrd = dir.join("initrd.cpio");
    run(Command::new("sh").arg("-c").arg(format!(
        "cd {} && find . | busybox cpio -o -H newc > {} 2>/dev/null",
        root.display(),
        initrd.display()
    )))?;
    Ok(initrd)
}

/// Kills the VM by PID when the test ends, however it ends.
struct Vm(std::process::Child);

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn ipip_two_nodes_in_vm() -> Result<()> {
    testlab::require_root();
    let cache = cache_dir();
    assert!(
        cache.join("ready").exists(),
        "the IPIP VM kernel is not prepared in {}: run `bash .ci/prepare.d/ipip-vm-kernel.sh` \
         (apt-get downloads Debian's linux-image into $TORTIE_CACHE/ipip-vm)",
        cache.display()
    );
    let dir = tempfile::tempdir()?;
    let initrd = build_initrd(dir.path())?;
    let console = dir.path().join("console.log");
    let started = Instant::now();
    let vm = Vm(Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-m",
            "768",
            "-smp",
            "1",
            "-nographic",
            "-no-reboot",
            "-nic",
            "none",
        ])
        .arg("-kernel")
        .arg(cache.join("vmlinuz"))
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&console)?)
        .stderr(Stdio::null())
        .spawn()
        .context("qemu-system-x86_64 (apt package qemu-system-x86)")?);
    let mut vm = vm;
    let deadline = started + Duration::from_secs(240);
    loop {
        let log = std::fs::read_to_string(&console).unwrap_or_default();
        if log.contains("TORTIE-VM-EXIT") || vm.0.try_wait()?.is_some() {
            ensure!(log.contains(PASS), "IPIP VM test failed; console:\n{log}");
            eprintln!("IPIP VM test passed in {:?}", started.elapsed());
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("IPIP VM did not finish within 240 s; console:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ip(args: &[&str]) -> Result<String> {
    run(Command::new("ip").args(args))
}

fn node_input(name: &str, addr: &str, tunnel: &str) -> Input {
    let mut n = Node::new(name, addr.parse().unwrap_or_else(|_| unreachable!()));
    n.ipip_tunnel_addr = tunnel.parse().ok();
    Input::NodeUpsert(n)
}

fn endpoint(pod: &str, node: &str, iface: &str, ip: &str) -> Endpoint {
    Endpoint {
        id: EndpointId {
            namespace: "default".into(),
            pod: pod.into(),
            endpoint: "eth0".into(),
        },
        node: node.into(),
        iface: iface.into(),
        ips: vec![
            format!("{ip}/32")
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        ],
        mac: None,
        labels: BTreeMap::new(),
        ports: vec![],
        service_account: None,
    }
}

async fn inside() -> Result<()> {
    for ns in ["na", "nb", "pa", "pb"] {
        ip(&["netns", "add", ns])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
    }
    ip(&[
        "link", "add", "ea", "netns", "na", "type", "veth", "peer", "name", "eb", "netns", "nb",
    ])?;
    for (ns, dev, addr) in [
        ("na", "ea", "192.168.50.1/24"),
        ("nb", "eb", "192.168.50.2/24"),
    ] {
        ip(&["-n", ns, "link", "set", dev, "name", "eth0"])?;
        ip(&["-n", ns, "addr", "add", addr, "dev", "eth0"])?;
        ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", ns, "route", "add", "169.254.1.1", "dev", "lo"])?;
    }
    let nodes = [
        (
            "a",
            "na",
            "pa",
            "192.168.50.1",
            "10.70.1.0/26",
            "10.70.1.1",
            "10.70.1.2",
            "calivmpa",
        ),
        (
            "b",
            "nb",
            "pb",
            "192.168.50.2",
            "10.70.2.0/26",
            "10.70.2.1",
            "10.70.2.2",
            "calivmpb",
        ),
    ];
    let mut cluster = vec![Input::PoolUpsert(Pool {
        ipip_mode: EncapMode::Always,
        ..Pool::new("10.70.0.0/16".parse()?)
    })];
    for (name, ns, pod, addr, block, tunnel, pod_ip, iface) in nodes {
        setup_workload(&WorkloadSetup {
            host_ns: Netns::named(ns),
            pod_ns: Netns::named(pod),
            host_iface: iface.into(),
            pod_iface: "eth0".into(),
            addrs: vec![pod_ip.parse::<IpAddr>()?],
            mtu: 1480,
        })
        .await?;
        cluster.push(node_input(name, &format!("{addr}/24"), tunnel));
        cluster.push(Input::AffinityUpsert(BlockAffinity {
            cidr: block.parse()?,
            node: name.into(),
            state: AffinityState::Confirmed,
        }));
        cluster.push(Input::EndpointUpsert(endpoint(pod, name, iface, pod_ip)));
    }
    let mut tasks = Vec::new();
    for (name, ns, ..) in nodes {
        let mut cfg = ReconcilerConfig::new(name, Netns::named(ns));
        cfg.resync_interval = Duration::from_secs(2);
        let t = spawn(cfg).await?;
        for i in &cluster {
            t.input_tx.send(i.clone()).await?;
        }
        for (other, _, _, addr, block, ..) in nodes {
            if other != name {
                t.input_tx
                    .send(Input::RouteUpsert(LearnedRoute {
                        prefix: block.parse()?,
                        paths: vec![RoutePath {
                            next_hop: addr.parse()?,
                            node: Some(other.into()),
                        }],
                    }))
                    .await?;
            }
        }
        t.input_tx.send(Input::InSync).await?;
        tasks.push(t);
    }
    for (ns, want) in [
        (
            "na",
            "10.70.2.0/26 via 192.168.50.2 dev tunl0 proto 80 onlink",
        ),
        (
            "nb",
            "10.70.1.0/26 via 192.168.50.1 dev tunl0 proto 80 onlink",
        ),
    ] {
        eventually(Duration::from_secs(30), want, || {
            let r = ip(&["-n", ns, "route"])?;
            ensure!(r.contains(want), "{r}");
            Ok(())
        })
        .await?;
    }
    let tunl = ip(&["-n", "na", "addr", "show", "tunl0"])?;
    ensure!(
        tunl.contains("mtu 1480") && tunl.contains("10.70.1.1/32"),
        "{tunl}"
    );
    for t in &tasks {
        let s = t.status.borrow().clone();
        ensure!(s.ipip_error.is_none() && s.pod_mtu == 1480, "{s:?}");
    }
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            "pa",
            "ping",
            "-c",
            "3",
            "-W",
            "3",
            "10.70.2.2",
        ])
        .output()?;
    let text = String::from_utf8_lossy(&ping.stdout);
    ensure!(
        ping.status.success(),
        "pod a cannot ping pod b over IPIP: {text}"
    );
    let stats = ip(&["-n", "na", "-s", "link", "show", "tunl0"])?;
    println!("{text}\n{stats}");
    Ok(())
}

#[test]
#[ignore = "runs only inside the IPIP VM booted by ipip_two_nodes_in_vm"]
fn inside_vm() {
    assert!(
        std::env::var("TORTIE_IPIP_VM_INSIDE").is_ok(),
        "inside_vm runs only inside the VM that ipip_two_nodes_in_vm boots"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
    match rt.block_on(inside()) {
        Ok(()) => println!("{PASS}"),
        Err(e) => println!("TORTIE-VM-RESULT: FAIL: {e:#}"),
    }
}
