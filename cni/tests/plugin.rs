//! Root-only: the built `tortie-cni` binary run exactly as a container runtime runs it
//! (`CNI_*` environment, network configuration on stdin, inside the node's network
//! namespace) against a real etcd, for pods that are namespaces of a lab:
//! - VERSION; ADD of two pods (distinct addresses from the node's affine block, the ADD
//!   result, a repeated ADD returning the same address, WorkloadEndpoints in etcd,
//!   pod-to-pod ping through the node); CHECK passing, then failing once a host route is
//!   gone; DEL releasing the addresses and removing veths and endpoints, DEL repeated;
//! - a broken configuration getting the spec's error object naming the field;
//! - an ADD failing after assignment (the interface name is taken in the pod) and an ADD
//!   for a netns that does not exist: neither leaks an address, a veth or an endpoint.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::{NODE, Sandbox, add_ip, allocations, cni, link_exists, wep_key};
use serde_json::{Value, json};
use testlab::etcd::Etcd;
use testlab::{Host, Lab};
use tortie_crds::{IpPool, IpPoolSpec, IpamBlock, TortieNode, TortieNodeSpec, WorkloadEndpoint};
use tortie_datastore::{Datastore, EtcdDatastore, Filter};
use tortie_ipam::{Ipam, Stores};

const POOL: &str = "10.77.0.0/16";

fn conf(endpoint: &str) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "k8s-pod-network",
        "type": "tortie-cni",
        "log_level": "debug",
        "datastore_type": "etcdv3",
        "etcd_endpoints": endpoint,
        "nodename": NODE,
        "mtu": 1450,
        "ipam": {"type": "tortie-cni"}
    })
}

/// Runs `f` with a datastore client inside the node namespace (etcd listens there).
fn with_ds<R, F, Fut>(node: &Host, endpoint: &str, f: F) -> Result<R>
where
    R: Send,
    F: FnOnce(Datastore) -> Fut + Send,
    Fut: std::future::Future<Output = Result<R>>,
{
    let endpoint = endpoint.to_string();
    node.run_in(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let ds = EtcdDatastore::connect(&[endpoint], "/tortie").await?;
            f(Datastore::Etcd(Box::new(ds))).await
        })
    })?
}

/// A lab with one node host running etcd on its loopback, an IPv4 pool (and IPv6 pool
/// `v6_pool` when given) and the node's TortieNode. Returns the etcd endpoint too.
fn node_with_etcd(tag: &str, v6_pool: Option<&str>) -> Result<(Lab, Host, Etcd, String)> {
    let lab = Lab::new(tag)?;
    let node = lab.add_bare_host("node")?;
    // What a real node has and the agent sets: forwarding, and some route to
    // 169.254.1.1 that is not through a cali* interface (LAB-NOTES.md).
    node.sysctl("net/ipv4/ip_forward", "1")?;
    node.ip(&["route", "add", "169.254.1.1", "dev", "lo"])?;
    let etcd = Etcd::start_in(&node, "127.0.0.1".parse()?)?;
    let ep = etcd.endpoint();
    let v6 = v6_pool.map(str::to_string);
    with_ds(&node, &ep, |ds| async move {
        let spec = IpPoolSpec::new(POOL.parse()?).with_defaults();
        ds.store::<IpPool>()
            .create(&IpPool::new("pool-a", spec))
            .await?;
        if let Some(v6) = v6 {
            let spec = IpPoolSpec::new(v6.parse()?).with_defaults();
            ds.store::<IpPool>()
                .create(&IpPool::new("pool-v6", spec))
                .await?;
        }
        ds.store::<TortieNode>()
            .create(&TortieNode::new(NODE, TortieNodeSpec::default()))
            .await?;
        Ok(())
    })?;
    Ok((lab, node, etcd, ep))
}

#[test]
fn plugin_binary_add_check_del_against_etcd() -> Result<()> {
    let started = std::time::Instant::now();
    let (lab, node, _etcd, ep) = node_with_etcd("cni", None)?;
    let conf = conf(&ep);

    // VERSION.
    let v = cni(&node, "VERSION", None, &conf)?;
    ensure!(v.code == 0, "{}", v.stderr);
    let vj = v.json()?;
    assert_eq!(vj["cniVersion"], "1.1.0");
    assert!(
        vj["supportedVersions"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("1.0.0")))
    );

    // ADD two pods.
    let pa = lab.add_bare_host("pa")?;
    let pb = lab.add_bare_host("pb")?;
    let sa = Sandbox {
        id: "ctr-a",
        netns: format!("/var/run/netns/{}", pa.netns()),
        ifname: "eth0",
        namespace: "default",
        pod: "pod-a",
    };
    let sb = Sandbox {
        id: "ctr-b",
        netns: format!("/var/run/netns/{}", pb.netns()),
        ifname: "eth0",
        namespace: "web",
        pod: "pod-b",
    };
    let t = std::time::Instant::now();
    let ra = cni(&node, "ADD", Some(&sa), &conf)?;
    eprintln!("first ADD (claims the block): {:?}", t.elapsed());
    let ip_a = add_ip(&ra)?;
    let res_a = ra.json()?;
    let cali_a = tortie_cni::host_iface_name("default", "pod-a");
    assert_eq!(res_a["cniVersion"], "1.0.0");
    assert_eq!(res_a["interfaces"][0]["name"], cali_a.as_str());
    assert_eq!(res_a["interfaces"][0]["mac"], "ee:ee:ee:ee:ee:ee");
    assert_eq!(res_a["interfaces"][1]["name"], "eth0");
    assert_eq!(res_a["interfaces"][1]["sandbox"], sa.netns.as_str());
    assert_eq!(res_a["ips"][0]["interface"], 1);
    assert_eq!(
        res_a["routes"][0],
        json!({"dst": "0.0.0.0/0", "gw": "169.254.1.1"})
    );
    // A repeated ADD returns the same address.
    let again = add_ip(&cni(&node, "ADD", Some(&sa), &conf)?)?;
    assert_eq!(again, ip_a, "a repeated ADD must return the same address");
    let t = std::time::Instant::now();
    let ip_b = add_ip(&cni(&node, "ADD", Some(&sb), &conf)?)?;
    eprintln!("second ADD (affine block): {:?}", t.elapsed());
    assert_ne!(ip_a, ip_b);
    let cali_b = tortie_cni::host_iface_name("web", "pod-b");

    // Both from one block of the pool, affine to this node; endpoints written.
    let (ka, kb) = (wep_key("default", "pod-a"), wep_key("web", "pod-b"));
    let (blocks, allocs, wa, wb) = with_ds(&node, &ep, move |ds| async move {
        let blocks = ds.store::<IpamBlock>().list(&Filter::all()).await?.items;
        let allocs = allocations(&ds).await?;
        let store = ds.store::<WorkloadEndpoint>();
        let wa = store.get(&ka).await?.context("endpoint of pod-a")?;
        let wb = store.get(&kb).await?.context("endpoint of pod-b")?;
        Ok((blocks, allocs, wa, wb))
    })?;
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    let block = &blocks[0].spec;
    assert_eq!(block.affinity_node(), Some(NODE));
    assert!(
        block.cidr.contains(ip_a) && block.cidr.contains(ip_b),
        "{}",
        block.cidr
    );
    let mut got = allocs.clone();
    got.sort();
    let mut want = vec![
        (ip_a, "k8s-pod-network.ctr-a".to_string()),
        (ip_b, "k8s-pod-network.ctr-b".to_string()),
    ];
    want.sort();
    assert_eq!(got, want, "exactly one address per pod, held by its handle");
    assert_eq!(wa.spec.interface_name, cali_a);
    assert_eq!(wa.spec.container_id, "ctr-a");
    assert_eq!(wa.spec.ip_networks, vec![ipnetwork::IpNetwork::from(ip_a)]);
    assert_eq!(wa.spec.profiles, vec!["kns.default".to_string()]);
    assert_eq!(wb.spec.interface_name, cali_b);
    assert_eq!(wb.metadata.namespace.as_deref(), Some("web"));
    let mac_a = pa.ip(&["link", "show", "eth0"])?;
    assert!(
        wa.spec.mac.as_deref().is_some_and(|m| mac_a.contains(m)),
        "{:?} vs {mac_a}",
        wa.spec.mac
    );
    let link = node.ip(&["link", "show", &cali_a])?;
    assert!(link.contains("mtu 1450"), "{link}");

    // Pod to pod through the node.
    assert!(
        pa.ping(ip_b, 3, Duration::from_secs(3)),
        "pod-a cannot reach pod-b"
    );
    assert!(
        pb.ping(ip_a, 3, Duration::from_secs(3)),
        "pod-b cannot reach pod-a"
    );

    // CHECK with the ADD result as prevResult, then with a host route gone.
    let mut check_conf = conf.clone();
    check_conf["prevResult"] = res_a.clone();
    let c = cni(&node, "CHECK", Some(&sa), &check_conf)?;
    ensure!(
        c.code == 0 && c.stdout.is_empty(),
        "CHECK: {} / {}",
        c.stdout,
        c.stderr
    );
    node.ip(&["route", "del", &ip_a.to_string(), "dev", &cali_a])?;
    let c = cni(&node, "CHECK", Some(&sa), &check_conf)?;
    assert_ne!(c.code, 0);
    let cj = c.json()?;
    assert_eq!(cj["code"], 101, "{cj}");
    assert!(
        cj["msg"].as_str().is_some_and(|m| m.contains("host route")),
        "{cj}"
    );

    // A broken configuration: the spec's error object naming the field.
    let mut broken = conf.clone();
    broken["mtu"] = json!(9);
    let e = cni(&node, "ADD", Some(&sa), &broken)?;
    assert_eq!(e.code, 1, "exit code");
    assert_eq!(
        e.stdout,
        r#"{"cniVersion":"1.0.0","code":7,"msg":"mtu: 9 is outside 68..=65535 (0 = auto)"}"#
    );
    let mut broken = conf.clone();
    broken
        .as_object_mut()
        .context("conf")?
        .remove("etcd_endpoints");
    let ej = cni(&node, "ADD", Some(&sa), &broken)?.json()?;
    assert_eq!(ej["code"], 7);
    assert!(
        ej["msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("etcd_endpoints")),
        "{ej}"
    );

    // ADD failing after assignment: the pod already has an eth0.
    let pc = lab.add_bare_host("pc")?;
    pc.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "other0",
    ])?;
    let sc = Sandbox {
        id: "ctr-c",
        netns: format!("/var/run/netns/{}", pc.netns()),
        ifname: "eth0",
        namespace: "default",
        pod: "pod-c",
    };
    let r = cni(&node, "ADD", Some(&sc), &conf)?;
    assert_ne!(r.code, 0, "ADD into a pod whose eth0 exists must fail");
    let rj = r.json()?;
    assert_eq!(rj["code"], 5, "{rj}");
    assert!(!link_exists(
        &node,
        &tortie_cni::host_iface_name("default", "pod-c")
    ));
    // And one for a netns that does not exist (code 3, nothing assigned).
    let sd = Sandbox {
        id: "ctr-d",
        netns: format!("/var/run/netns/{}-gone", pc.netns()),
        ifname: "eth0",
        namespace: "default",
        pod: "pod-d",
    };
    let r = cni(&node, "ADD", Some(&sd), &conf)?;
    assert_eq!(r.json()?["code"], 3, "{}", r.stdout);
    let (allocs_now, wc) = with_ds(&node, &ep, |ds| async move {
        let a = allocations(&ds).await?;
        let wc = ds
            .store::<WorkloadEndpoint>()
            .get(&wep_key("default", "pod-c"))
            .await?;
        Ok((a, wc))
    })?;
    let mut allocs_now = allocs_now;
    allocs_now.sort();
    assert_eq!(allocs_now, want, "a failed ADD leaked an address");
    assert!(wc.is_none(), "a failed ADD left its endpoint");

    // DEL both (the second twice, and once without a netns: the runtime may lose it).
    for sb in [&sa, &sb] {
        let d = cni(&node, "DEL", Some(sb), &conf)?;
        ensure!(
            d.code == 0 && d.stdout.is_empty(),
            "DEL: {} / {}",
            d.stdout,
            d.stderr
        );
    }
    let d = cni(&node, "DEL", Some(&sb), &conf)?;
    ensure!(d.code == 0, "second DEL: {} / {}", d.stdout, d.stderr);
    let no_netns = Sandbox {
        netns: String::new(),
        ..sb
    };
    let d = cni(&node, "DEL", Some(&no_netns), &conf)?;
    ensure!(
        d.code == 0,
        "DEL without netns: {} / {}",
        d.stdout,
        d.stderr
    );
    assert!(!link_exists(&node, &cali_a) && !link_exists(&node, &cali_b));
    assert!(
        !pa.ping(ip_b, 1, Duration::from_secs(1)),
        "pod-b still reachable"
    );
    let (left, weps, held) = with_ds(&node, &ep, |ds| async move {
        let left = allocations(&ds).await?;
        let weps = ds
            .store::<WorkloadEndpoint>()
            .list(&Filter::all())
            .await?
            .items;
        let held = Ipam::new(Stores::from_datastore(&ds))
            .addresses_of("k8s-pod-network.ctr-a")
            .await?;
        Ok((left, weps, held))
    })?;
    assert!(left.is_empty(), "addresses left after DEL: {left:?}");
    assert!(weps.is_empty(), "endpoints left after DEL: {weps:?}");
    assert!(held.is_empty());
    let elapsed = started.elapsed();
    if elapsed > Duration::from_secs(60) {
        bail!("the plugin test took {elapsed:?}");
    }
    eprintln!("plugin test took {elapsed:?}");
    Ok(())
}

/// A pod's sandbox replaced (same pod, new container ID): the late DEL of the old sandbox
/// releases only the old address and leaves the new sandbox's endpoint and veth alone.
/// Dual stack (`assign_ipv6`): one address per family, /128 host route, CHECK passes, DEL
/// releases both. STATUS: ready here, "not available" (50) with an unreachable etcd.
#[test]
fn sandbox_replacement_dual_stack_and_status() -> Result<()> {
    let started = std::time::Instant::now();
    let (lab, node, _etcd, ep) = node_with_etcd("cni2", Some("fd00:77::/48"))?;
    let mut conf = conf(&ep);
    conf["cniVersion"] = json!("1.1.0");

    let s = cni(&node, "STATUS", None, &conf)?;
    ensure!(
        s.code == 0 && s.stdout.is_empty(),
        "STATUS: {} / {}",
        s.stdout,
        s.stderr
    );
    let mut dead = conf.clone();
    dead["etcd_endpoints"] = json!("http://127.0.0.1:1");
    let sj = cni(&node, "STATUS", None, &dead)?.json()?;
    assert_eq!(sj["code"], 50, "{sj}");

    // The old sandbox, then its replacement in a new netns.
    let old_ns = lab.add_bare_host("old")?;
    let new_ns = lab.add_bare_host("new")?;
    let old = Sandbox {
        id: "sandbox-1",
        netns: format!("/var/run/netns/{}", old_ns.netns()),
        ifname: "eth0",
        namespace: "default",
        pod: "web-0",
    };
    let new = Sandbox {
        id: "sandbox-2",
        netns: format!("/var/run/netns/{}", new_ns.netns()),
        ..old
    };
    let ip_old = add_ip(&cni(&node, "ADD", Some(&old), &conf)?)?;
    let ip_new = add_ip(&cni(&node, "ADD", Some(&new), &conf)?)?;
    assert_ne!(ip_old, ip_new);
    let d = cni(&node, "DEL", Some(&old), &conf)?;
    ensure!(d.code == 0, "late DEL: {} / {}", d.stdout, d.stderr);
    let cali = tortie_cni::host_iface_name("default", "web-0");
    assert!(
        link_exists(&node, &cali),
        "late DEL removed the new sandbox's veth"
    );
    let (allocs, wep) = with_ds(&node, &ep, |ds| async move {
        let a = allocations(&ds).await?;
        let w = ds
            .store::<WorkloadEndpoint>()
            .get(&wep_key("default", "web-0"))
            .await?;
        Ok((a, w))
    })?;
    assert_eq!(
        allocs,
        vec![(ip_new, "k8s-pod-network.sandbox-2".to_string())]
    );
    let wep = wep.context("the new sandbox's endpoint")?;
    assert_eq!(wep.spec.container_id, "sandbox-2");
    let d = cni(&node, "DEL", Some(&new), &conf)?;
    ensure!(d.code == 0, "DEL: {} / {}", d.stdout, d.stderr);
    assert!(!link_exists(&node, &cali));

    // Dual stack.
    let mut ds_conf = conf.clone();
    ds_conf["ipam"]["assign_ipv6"] = json!("true");
    let p6 = lab.add_bare_host("p6")?;
    let sb6 = Sandbox {
        id: "ctr-6",
        netns: format!("/var/run/netns/{}", p6.netns()),
        ifname: "eth0",
        namespace: "default",
        pod: "dual",
    };
    let r = cni(&node, "ADD", Some(&sb6), &ds_conf)?;
    ensure!(r.code == 0, "dual-stack ADD: {} / {}", r.stdout, r.stderr);
    let rj = r.json()?;
    let addrs: Vec<String> = rj["ips"]
        .as_array()
        .context("ips")?
        .iter()
        .filter_map(|i| i["address"].as_str().map(str::to_string))
        .collect();
    assert_eq!(addrs.len(), 2, "{rj}");
    assert!(
        addrs[0].starts_with("10.77.") && addrs[0].ends_with("/32"),
        "{addrs:?}"
    );
    assert!(
        addrs[1].starts_with("fd00:77:") && addrs[1].ends_with("/128"),
        "{addrs:?}"
    );
    assert_eq!(
        rj["routes"][1],
        json!({"dst": "::/0", "gw": "fe80::ecee:eeff:feee:eeee"})
    );
    let v6 = addrs[1].trim_end_matches("/128").to_string();
    let cali6 = tortie_cni::host_iface_name("default", "dual");
    let routes6 = node.ip(&["-6", "route", "show", "dev", &cali6])?;
    assert!(routes6.contains(&v6), "{routes6}");
    let pod_addrs = p6.ip(&["-6", "addr", "show", "dev", "eth0"])?;
    assert!(pod_addrs.contains(&format!("{v6}/128")), "{pod_addrs}");
    let mut check = ds_conf.clone();
    check["prevResult"] = rj;
    let c = cni(&node, "CHECK", Some(&sb6), &check)?;
    ensure!(c.code == 0, "dual-stack CHECK: {} / {}", c.stdout, c.stderr);
    let d = cni(&node, "DEL", Some(&sb6), &ds_conf)?;
    ensure!(d.code == 0, "dual-stack DEL: {} / {}", d.stdout, d.stderr);
    let left = with_ds(&node, &ep, |ds| async move { allocations(&ds).await })?;
    assert!(left.is_empty(), "left after DEL: {left:?}");
    eprintln!("second plugin test took {:?}", started.elapsed());
    Ok(())
}

/// A burst of pods on one node: twelve ADDs run at once (separate plugin processes, as a
/// runtime starting many sandboxes does) get twelve distinct addresses with no leak; then
/// twelve DELs at once free all of them. Prints the wall time of each burst.
#[test]
fn concurrent_adds_and_dels_on_one_node() -> Result<()> {
    const PODS: usize = 12;
    let (lab, node, _etcd, ep) = node_with_etcd("cni3", None)?;
    let conf = conf(&ep);
    let hosts: Vec<Host> = (0..PODS)
        .map(|i| lab.add_bare_host(&format!("b{i}")))
        .collect::<testlab::Result<_>>()?;
    let ids: Vec<String> = (0..PODS).map(|i| format!("burst-{i}")).collect();
    let pods: Vec<String> = (0..PODS).map(|i| format!("burst-pod-{i}")).collect();
    let sandboxes: Vec<Sandbox<'_>> = (0..PODS)
        .map(|i| Sandbox {
            id: &ids[i],
            netns: format!("/var/run/netns/{}", hosts[i].netns()),
            ifname: "eth0",
            namespace: "default",
            pod: &pods[i],
        })
        .collect();
    let burst = |command: &str| -> Result<Vec<common::Run>> {
        std::thread::scope(|s| {
            let handles: Vec<_> = sandboxes
                .iter()
                .map(|sb| s.spawn(|| cni(&node, command, Some(sb), &conf)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().map_err(|_| anyhow::anyhow!("runner panicked"))?)
                .collect()
        })
    };
    let t = std::time::Instant::now();
    let adds = burst("ADD")?;
    let add_time = t.elapsed();
    let mut ips = Vec::new();
    for r in &adds {
        ips.push(add_ip(r)?);
    }
    let mut distinct = ips.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), PODS, "duplicate addresses: {ips:?}");
    let allocs = with_ds(&node, &ep, |ds| async move { allocations(&ds).await })?;
    assert_eq!(allocs.len(), PODS, "{allocs:?}");
    // Every pod reaches the first one through the node.
    assert!(hosts[PODS - 1].ping(ips[0], 3, Duration::from_secs(3)));
    let t = std::time::Instant::now();
    for r in burst("DEL")? {
        ensure!(r.code == 0, "DEL: {} / {}", r.stdout, r.stderr);
    }
    let del_time = t.elapsed();
    let allocs = with_ds(&node, &ep, |ds| async move { allocations(&ds).await })?;
    assert!(allocs.is_empty(), "left after the DEL burst: {allocs:?}");
    eprintln!("{PODS} concurrent ADDs: {add_time:?}; {PODS} concurrent DELs: {del_time:?}");
    Ok(())
}
