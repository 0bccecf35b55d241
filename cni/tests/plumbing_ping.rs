//! Root-only: two pods plumbed into one node namespace by the library can ping each
//! other; the host routes carry tortie's protocol; teardown removes link and route.

use anyhow::{Context, Result, ensure};
use std::net::IpAddr;
use std::process::Command;
use tortie_cni::{
    Netns, ROUTE_PROTOCOL, WorkloadSetup, host_iface_name, setup_workload, teardown_workload,
};

/// Deletes the namespaces it created, even when the test panics.
struct Namespaces(Vec<String>);

impl Namespaces {
    fn new(tag: &str, count: usize) -> Result<Self> {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root (network namespaces)"
        );
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos();
        let mut ns = Namespaces(Vec::new());
        for i in 0..count {
            let name = format!("tc{tag}{}-{stamp:x}-{i}", std::process::id());
            run(&["ip", "netns", "add", &name])?;
            ns.0.push(name);
        }
        Ok(ns)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn run(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("{args:?}"))?;
    ensure!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ping(ns: &str, dst: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c1", "-W1", dst])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[tokio::test]
async fn two_pods_on_one_node_ping_and_teardown() -> Result<()> {
    let ns = Namespaces::new("p", 3)?;
    let (node, pod_a, pod_b) = (&ns.0[0], &ns.0[1], &ns.0[2]);
    // A bare lab node needs some route for 169.254.1.1 that is not via the cali*
    // interface, or proxy ARP does not answer (LAB-NOTES.md).
    run(&["ip", "-n", node, "link", "set", "lo", "up"])?;
    run(&["ip", "-n", node, "route", "add", "169.254.1.1", "dev", "lo"])?;
    tortie_cni::sysctl::apply(&Netns::named(node), tortie_cni::sysctl::host_sysctls())?;

    let mut ifaces = Vec::new();
    for (pod, ip) in [(pod_a, "10.65.0.1"), (pod_b, "10.65.0.2")] {
        let iface = host_iface_name("default", pod);
        let setup = WorkloadSetup {
            host_ns: Netns::named(node),
            pod_ns: Netns::named(pod),
            host_iface: iface.clone(),
            pod_iface: "eth0".into(),
            addrs: vec![ip.parse::<IpAddr>()?],
            mtu: 1450,
        };
        let built = setup_workload(&setup).await?;
        assert_eq!(built.pod_mac.len(), 6);
        // Retrying the same ADD must succeed too (stale host end replaced).
        setup_workload(&setup).await?;
        ifaces.push(iface);
    }
    let routes = run(&[
        "ip",
        "-n",
        node,
        "route",
        "show",
        "proto",
        &ROUTE_PROTOCOL.to_string(),
    ])?;
    assert!(
        routes.contains(&format!("10.65.0.1 dev {} scope link", ifaces[0])),
        "{routes}"
    );
    assert!(
        routes.contains(&format!("10.65.0.2 dev {} scope link", ifaces[1])),
        "{routes}"
    );
    let link = run(&["ip", "-n", node, "link", "show", &ifaces[0]])?;
    assert!(
        link.contains("ee:ee:ee:ee:ee:ee") && link.contains("mtu 1450"),
        "{link}"
    );
    let pod_routes = run(&["ip", "-n", pod_a, "route"])?;
    assert!(
        pod_routes.contains("default via 169.254.1.1 dev eth0"),
        "{pod_routes}"
    );
    assert!(
        pod_routes.contains("169.254.1.1 dev eth0 scope link"),
        "{pod_routes}"
    );
    let proxy_arp = tortie_cni::sysctl::read(
        &Netns::named(node),
        &format!("net/ipv4/conf/{}/proxy_arp", ifaces[0]),
    )?;
    assert_eq!(proxy_arp, "1");

    assert!(ping(pod_a, "10.65.0.2"), "pod a cannot reach pod b");
    assert!(ping(pod_b, "10.65.0.1"), "pod b cannot reach pod a");

    assert!(teardown_workload(&Netns::named(node), &ifaces[1]).await?);
    assert!(!teardown_workload(&Netns::named(node), &ifaces[1]).await?);
    let routes = run(&[
        "ip",
        "-n",
        node,
        "route",
        "show",
        "proto",
        &ROUTE_PROTOCOL.to_string(),
    ])?;
    assert!(!routes.contains("10.65.0.2"), "{routes}");
    assert!(!ping(pod_a, "10.65.0.2"), "ping still works after teardown");
    Ok(())
}

#[tokio::test]
async fn bad_input_is_rejected_with_field_name() -> Result<()> {
    let setup = WorkloadSetup {
        host_ns: Netns::named("does-not-matter"),
        pod_ns: Netns::named("does-not-matter"),
        host_iface: "cali-name-that-is-too-long".into(),
        pod_iface: "eth0".into(),
        addrs: vec!["10.0.0.1".parse()?],
        mtu: 1500,
    };
    let err = setup_workload(&setup).await.err().context("must fail")?;
    assert!(err.to_string().contains("host_iface"), "{err}");
    let err = setup_workload(&WorkloadSetup {
        host_iface: "cali1".into(),
        addrs: vec![],
        ..setup
    })
    .await
    .err()
    .context("must fail")?;
    assert!(err.to_string().contains("addrs"), "{err}");
    Ok(())
}
