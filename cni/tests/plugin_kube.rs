//! Root-only: the built `tortie-cni` binary on the Kubernetes datastore — the real
//! kube-apiserver of `testlab::kube_apiserver` (with our CRDs), the plugin configured as
//! deploy/tortie-config.yaml does (`datastore_type: kubernetes`, `kubernetes.kubeconfig`,
//! cniVersion 1.1.0). STATUS answers ready; ADD assigns from the node's affine block and
//! writes the WorkloadEndpoint CRD object; CHECK passes; DEL releases the address and
//! deletes the endpoint and the veth.
//!
//! The API server listens on 127.0.0.1 of the test's namespace; the node host gets a
//! relay on its own 127.0.0.1 at the same port, so the kubeconfig works unchanged there.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{NODE, Sandbox, add_ip, allocations, cni, link_exists, wep_key};
use serde_json::json;
use testlab::Lab;
use testlab::kube_apiserver::KubeApiServer;
use tortie_crds::{IpPool, IpPoolSpec, TortieNode, TortieNodeSpec, WorkloadEndpoint};
use tortie_datastore::{Datastore, KubeDatastore};

#[test]
fn plugin_binary_on_kubernetes_datastore() -> Result<()> {
    let started = std::time::Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let lab = Lab::new("cnik")?;
    let node = lab.add_bare_host("node")?;
    node.sysctl("net/ipv4/ip_forward", "1")?;
    node.ip(&["route", "add", "169.254.1.1", "dev", "lo"])?;
    let server = rt
        .block_on(KubeApiServer::start())
        .context("start the real kube-apiserver (testlab::kube_apiserver)")?;
    let _relay = server.relay_into(rt.handle(), &node)?;
    let ds = Datastore::Kube(KubeDatastore::new(rt.block_on(server.client())?));
    rt.block_on(async {
        let spec = IpPoolSpec::new("10.78.0.0/16".parse()?).with_defaults();
        ds.store::<IpPool>()
            .create(&IpPool::new("pool-k", spec))
            .await?;
        ds.store::<TortieNode>()
            .create(&TortieNode::new(NODE, TortieNodeSpec::default()))
            .await?;
        anyhow::Ok(())
    })?;
    let conf = json!({
        "cniVersion": "1.1.0",
        "name": "k8s-pod-network",
        "type": "tortie-cni",
        "log_level": "debug",
        "datastore_type": "kubernetes",
        "nodename": NODE,
        "mtu": 1440,
        "ipam": {"type": "tortie-cni"},
        "policy": {"type": "k8s"},
        "kubernetes": {"kubeconfig": server.kubeconfig_path().display().to_string()}
    });

    let s = cni(&node, "STATUS", None, &conf)?;
    ensure!(
        s.code == 0 && s.stdout.is_empty(),
        "STATUS: {} / {}",
        s.stdout,
        s.stderr
    );

    let pa = lab.add_bare_host("pa")?;
    let sa = Sandbox {
        id: "k-ctr-a",
        netns: format!("/var/run/netns/{}", pa.netns()),
        ifname: "eth0",
        namespace: "default",
        pod: "kpod-a",
    };
    let ra = cni(&node, "ADD", Some(&sa), &conf)?;
    let ip = add_ip(&ra)?;
    let res = ra.json()?;
    assert_eq!(res["cniVersion"], "1.1.0");
    let cali = tortie_cni::host_iface_name("default", "kpod-a");
    assert!(link_exists(&node, &cali));
    let (allocs, wep) = rt.block_on(async {
        let a = allocations(&ds).await?;
        let w = ds
            .store::<WorkloadEndpoint>()
            .get(&wep_key("default", "kpod-a"))
            .await?;
        anyhow::Ok((a, w))
    })?;
    assert_eq!(allocs, vec![(ip, "k8s-pod-network.k-ctr-a".to_string())]);
    let wep = wep.context("WorkloadEndpoint on the API server")?;
    assert_eq!(wep.spec.interface_name, cali);
    assert_eq!(wep.spec.container_id, "k-ctr-a");
    assert_eq!(wep.spec.node, NODE);

    let mut check = conf.clone();
    check["prevResult"] = res;
    let c = cni(&node, "CHECK", Some(&sa), &check)?;
    ensure!(c.code == 0, "CHECK: {} / {}", c.stdout, c.stderr);

    let d = cni(&node, "DEL", Some(&sa), &conf)?;
    ensure!(
        d.code == 0 && d.stdout.is_empty(),
        "DEL: {} / {}",
        d.stdout,
        d.stderr
    );
    assert!(!link_exists(&node, &cali));
    let (allocs, wep) = rt.block_on(async {
        let a = allocations(&ds).await?;
        let w = ds
            .store::<WorkloadEndpoint>()
            .get(&wep_key("default", "kpod-a"))
            .await?;
        anyhow::Ok((a, w))
    })?;
    assert!(allocs.is_empty(), "left after DEL: {allocs:?}");
    assert!(wep.is_none(), "endpoint left after DEL");
    eprintln!("kubernetes plugin test took {:?}", started.elapsed());
    ensure!(
        started.elapsed() < Duration::from_secs(90),
        "took {:?}",
        started.elapsed()
    );
    Ok(())
}
