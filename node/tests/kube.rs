//! Two tortie-node agents on the Kubernetes datastore: the real kube-apiserver of
//! `testlab::kube_apiserver` (with our CRDs), agents in two lab hosts with
//! `DATASTORE_TYPE=kubernetes` and a kubeconfig. They register (TortieNodes, default
//! IPPool), form the BGP mesh and install each other's pod blocks; pods (WorkloadEndpoint
//! from `add-pod`, Pod created through the API) ping across nodes. Then a NetworkPolicy
//! selecting pods by label denies one flow and relabelling Pods through the API (no
//! agent restart) allows it, denies it and allows it again — every denial paired with an
//! allowed probe to a pod on the same node. Last, BGPPeers (global, and one selecting a
//! Kubernetes Node label) and a BGPConfiguration made through the API reach the agents'
//! peer tables (status socket) and kernel routes; `detect-ip` with
//! `IP_AUTODETECTION_METHOD=kubernetes-internal-ip` reads each Node's InternalIP.
//!
//! The API server listens on 127.0.0.1 of the test's own namespace; each lab host gets a
//! relay on its own 127.0.0.1 at the same port (a listener made inside the host, copied
//! to the server by the test process), so the kubeconfig works unchanged in every host.
//! Needs root (panics otherwise).

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use common::{Ds, Node, block_of};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::api::ObjectMeta;
use testlab::kube_apiserver::KubeApiServer;
use testlab::{Host, Lab, Proc, wait_until};
use tokio::runtime::Runtime;
use tortie_crds::{BgpConfiguration, BgpPeer, IpPool, NetworkPolicy, Node as KubeNode, TortieNode};
use tortie_datastore::{Datastore, Filter, KubeDatastore, ObjectKey};

const NS: &str = "default";

fn pod(name: &str, node: &str, labels: &[(&str, &str)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            namespace: Some(NS.into()),
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            containers: vec![Container {
                name: "c".into(),
                image: Some("busybox".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    }
}

/// Replaces the labels of Pod `name` through the API.
fn relabel(rt: &Runtime, ds: &Datastore, name: &str, labels: &[(&str, &str)]) -> Result<()> {
    rt.block_on(async {
        let pods = ds.store::<Pod>();
        let mut p = pods
            .get(&ObjectKey::namespaced(NS, name))
            .await?
            .with_context(|| format!("pod {name} vanished"))?;
        p.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        );
        pods.update(&p).await?;
        Ok(())
    })
}

struct Pods<'a> {
    from: &'a Host,
    target: IpAddr,
    bystander: IpAddr,
}

impl Pods<'_> {
    fn ping(&self, to: IpAddr) -> bool {
        self.from.ping(to, 1, Duration::from_secs(1))
    }

    /// Waits until the target is denied (or allowed, `want_allowed`), then checks that
    /// the bystander on the same node stays reachable.
    fn expect(&self, want_allowed: bool, what: &str, logs: &dyn Fn() -> String) -> Result<()> {
        let started = Instant::now();
        wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
            if self.ping(self.target) == want_allowed {
                Ok(())
            } else {
                Err(anyhow!(
                    "{what}: ping to {} still {}",
                    self.target,
                    if want_allowed { "denied" } else { "allowed" }
                ))
            }
        })
        .with_context(logs)?;
        eprintln!(
            "{what}: target {} after {:?}",
            if want_allowed { "allowed" } else { "denied" },
            started.elapsed()
        );
        if !self.ping(self.bystander) {
            bail!(
                "{what}: bystander {} not reachable\n{}",
                self.bystander,
                logs()
            );
        }
        Ok(())
    }
}

#[test]
fn agents_on_kubernetes_mesh_route_and_follow_pod_labels() -> Result<()> {
    let lab = Lab::new("nkube")?;
    let rt = Runtime::new()?;
    let server = rt
        .block_on(KubeApiServer::start())
        .context("start the real kube-apiserver (testlab::kube_apiserver)")?;
    let ds = Datastore::Kube(KubeDatastore::new(rt.block_on(server.client())?));
    let kube = Ds::Kube(server.kubeconfig_path().to_path_buf());

    let nodes = [Node::add(&lab, 1)?, Node::add(&lab, 2)?];
    let _relays = nodes
        .iter()
        .map(|n| Ok(server.relay_into(rt.handle(), &n.host)?))
        .collect::<Result<Vec<_>>>()?;
    let agents: Vec<Proc> = nodes
        .iter()
        .map(|n| n.start(&kube, "1"))
        .collect::<Result<_>>()?;
    let logs = || {
        agents
            .iter()
            .map(|a| a.log_tail(25))
            .collect::<Vec<_>>()
            .join("\n")
    };

    // Registered through the API: both TortieNodes with their addresses, the default pool.
    let started = Instant::now();
    wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        rt.block_on(async {
            let nodes = ds.store::<TortieNode>().list(&Filter::all()).await?.items;
            let pools = ds.store::<IpPool>().list(&Filter::all()).await?.items;
            let addrs: Vec<String> = nodes
                .iter()
                .filter_map(|n| n.spec.bgp.as_ref()?.ipv4_address)
                .map(|a| a.to_string())
                .collect();
            let cidrs: Vec<String> = pools.iter().map(|p| p.spec.cidr.to_string()).collect();
            if addrs.len() == 2
                && addrs.contains(&"10.0.0.1/24".to_string())
                && cidrs == ["10.244.0.0/16"]
            {
                Ok(())
            } else {
                Err(anyhow!("nodes {addrs:?}, pools {cidrs:?}"))
            }
        })
    })
    .with_context(logs)?;
    eprintln!("both agents registered after {:?}", started.elapsed());

    // Pods: the target and a bystander on n1, the client on n2. add-pod (IPAM on the
    // API's IPAMBlocks/BlockAffinities, veth, WorkloadEndpoint), then the Pod itself.
    let pod_specs = [
        (0, "n1-target", vec![("app", "target")]),
        (0, "n1-bystander", vec![("app", "bystander")]),
        (1, "n2-client", vec![("role", "none")]),
    ];
    let mut pods = Vec::new();
    for (i, name, labels) in &pod_specs {
        let (h, ip) = nodes[*i].add_pod(&lab, &kube, NS, name)?;
        rt.block_on(
            ds.store::<Pod>()
                .create(&pod(name, &nodes[*i].name, labels)),
        )?;
        pods.push((h, ip));
    }
    // Each node installs the other's block via its node address (learned over BGP).
    for (n, peer, pod_ip) in [
        (&nodes[0], &nodes[1], pods[2].1),
        (&nodes[1], &nodes[0], pods[0].1),
    ] {
        let want = format!("{} via {} dev eth0", block_of(pod_ip), peer.ip);
        wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
            let r = n.routes();
            if r.contains(&want) {
                Ok(())
            } else {
                Err(anyhow!("{} lacks {want:?}:\n{r}", n.name))
            }
        })
        .with_context(logs)?;
    }
    eprintln!("blocks routed both ways after {:?}", started.elapsed());
    let [(target_h, target), (_, bystander), (client_h, client)] = &pods[..] else {
        bail!("three pods expected");
    };
    assert!(
        target_h.ping(*client, 2, Duration::from_secs(3)),
        "pod on n1 cannot ping pod {client} on n2\n{}",
        logs()
    );
    let probe = Pods {
        from: client_h,
        target: *target,
        bystander: *bystander,
    };
    probe.expect(true, "before any policy", &logs)?;

    // Ingress to app=target only from role=client pods: the client (role=none) is denied.
    let np: NetworkPolicy = serde_json::from_value(serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "target-from-clients", "namespace": NS},
        "spec": {
            "podSelector": {"matchLabels": {"app": "target"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]
        }
    }))?;
    rt.block_on(ds.store::<NetworkPolicy>().create(&np))?;
    probe.expect(false, "policy, client unlabelled", &logs)?;

    // The remote pod's label decides: relabel the client (on n2) as role=client.
    relabel(&rt, &ds, "n2-client", &[("role", "client")])?;
    probe.expect(true, "client relabelled role=client", &logs)?;
    relabel(&rt, &ds, "n2-client", &[("role", "none")])?;
    probe.expect(false, "client relabelled back", &logs)?;

    // The local pod's label decides too: the policy stops selecting a relabelled target.
    relabel(&rt, &ds, "n1-target", &[("app", "moved")])?;
    probe.expect(true, "target relabelled app=moved", &logs)?;

    // BGPPeer and BGPConfiguration watches on the API: a global BGPPeer joins both peer
    // tables next to the mesh peer; a BGPPeer whose nodeSelector matches a label of the
    // Kubernetes Node n1 (not of its TortieNode) joins n1's only. Turning the mesh off in
    // the `default` configuration then drops the mesh peer (and with it n2's block from
    // n1's kernel) while the other peers stay.
    // Their InternalIPs are for IP_AUTODETECTION_METHOD=kubernetes-internal-ip below.
    for (n, zone, internal) in [(&nodes[0], "z1", "10.0.5.1"), (&nodes[1], "z2", "10.0.0.2")] {
        let node: KubeNode = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": n.name, "labels": {"zone": zone}},
            "status": {"addresses": [
                {"type": "Hostname", "address": n.name},
                {"type": "InternalIP", "address": internal}
            ]}
        }))?;
        rt.block_on(ds.store::<KubeNode>().create(&node))?;
    }
    for (name, spec) in [
        (
            "global-99",
            serde_json::json!({"peerIP": "10.0.0.99", "asNumber": 64512}),
        ),
        (
            "zone-z1",
            serde_json::json!({"peerIP": "10.0.0.98", "asNumber": 64512, "nodeSelector": "zone == 'z1'"}),
        ),
    ] {
        let peer: BgpPeer = serde_json::from_value(serde_json::json!({
            "apiVersion": "crd.tortie.dev/v1",
            "kind": "BGPPeer",
            "metadata": {"name": name},
            "spec": spec
        }))?;
        rt.block_on(ds.store::<BgpPeer>().create(&peer))?;
    }
    wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let (s1, s2) = (nodes[0].status(), nodes[1].status());
        if ["Global_10.0.0.99", "Node_10.0.0.98", "Mesh_10.0.0.2"]
            .iter()
            .all(|p| s1.contains(p))
            && s2.contains("Global_10.0.0.99")
            && s2.contains("Mesh_10.0.0.1")
            && !s2.contains("Node_10.0.0.98")
        {
            Ok(())
        } else {
            Err(anyhow!(
                "BGPPeers not (only) where expected:\nn1: {s1}\nn2: {s2}"
            ))
        }
    })
    .with_context(logs)?;
    let mesh_off: BgpConfiguration = serde_json::from_value(serde_json::json!({
        "apiVersion": "crd.tortie.dev/v1",
        "kind": "BGPConfiguration",
        "metadata": {"name": "default"},
        "spec": {"nodeToNodeMeshEnabled": false}
    }))?;
    rt.block_on(ds.store::<BgpConfiguration>().create(&mesh_off))?;
    let n2_block = format!("{} via {}", block_of(*client), nodes[1].ip);
    wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let st = nodes[0].status();
        let routes = nodes[0].routes();
        if st.contains("Global_10.0.0.99")
            && !st.contains("Mesh_10.0.0.2")
            && !routes.contains(&n2_block)
        {
            Ok(())
        } else {
            Err(anyhow!(
                "mesh off: n1 status/routes not there yet:\n{st}\n{routes}"
            ))
        }
    })
    .with_context(logs)?;
    for a in &agents {
        a.check_running()?;
    }

    // kubernetes-internal-ip: the Node's InternalIP with the mask of the interface that
    // carries it (n1: a second address on eth0, not what first-found would pick).
    nodes[0].host.add_addr("eth0", "10.0.5.1/16")?;
    for (n, want) in [(&nodes[0], "10.0.5.1/16"), (&nodes[1], "10.0.0.2/24")] {
        let mut c = n.host.command(common::BIN);
        c.arg("detect-ip")
            .env("DATASTORE_TYPE", "kubernetes")
            .env("KUBECONFIG", server.kubeconfig_path())
            .env("NODENAME", &n.name)
            .env("IP_AUTODETECTION_METHOD", "kubernetes-internal-ip")
            .env_remove("IP");
        let out = c.output()?;
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            want,
            "{}: {}",
            n.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
