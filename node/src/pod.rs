//! The lab's pod-creation path (what the CNI plugin does at pod start): assign an address
//! from IPAM for this node, plumb the veth into the pod's namespace with the cni library,
//! and write the WorkloadEndpoint felix and the other nodes read.

use std::net::IpAddr;
use std::path::Path;

use tortie_cni::{Netns, WorkloadSetup, host_iface_name, setup_workload};
use tortie_crds::{AllowedUse, WorkloadEndpoint, WorkloadEndpointSpec};
use tortie_datastore::Datastore;
use tortie_ipam::{AssignArgs, Attrs, Ipam, Stores, pod_handle};

use crate::error::AgentError;

/// Creates pod `namespace/pod` of `node` whose network namespace is at `netns`; the
/// current namespace is the node's. Returns the pod's address.
pub async fn add_pod(
    ds: &Datastore,
    node: &str,
    namespace: &str,
    pod: &str,
    netns: &Path,
    mtu: u32,
) -> Result<IpAddr, AgentError> {
    let who = format!("{namespace}/{pod}");
    let ipam = Ipam::new(Stores::from_datastore(ds));
    let container_id = format!("{namespace}.{pod}");
    let assigned = ipam
        .auto_assign(&AssignArgs {
            handle: pod_handle(&container_id),
            num_v4: 1,
            num_v6: 0,
            node: node.to_string(),
            attrs: Attrs {
                namespace: Some(namespace.into()),
                pod: Some(pod.into()),
                kind: None,
            },
            use_: AllowedUse::Workload,
        })
        .await
        .map_err(|source| AgentError::Ipam {
            pod: who.clone(),
            source,
        })?;
    let ip = assigned
        .v4
        .first()
        .map(|a| a.ip)
        .ok_or_else(|| AgentError::NoAddress(format!("IPAM gave pod {who} no IPv4 address")))?;
    let iface = host_iface_name(namespace, pod);
    let plumbed = setup_workload(&WorkloadSetup {
        host_ns: Netns::current(),
        pod_ns: Netns::from_path(netns),
        host_iface: iface.clone(),
        pod_iface: "eth0".into(),
        addrs: vec![ip],
        mtu,
    })
    .await
    .map_err(|source| AgentError::Plumbing {
        what: format!("pod {who}"),
        source,
    })?;
    let name = WorkloadEndpoint::name_for(node, "k8s", pod, "eth0");
    let mut wep = WorkloadEndpoint::new(
        &name,
        WorkloadEndpointSpec {
            orchestrator: Some("k8s".into()),
            node: node.into(),
            pod: pod.into(),
            container_id,
            endpoint: Some("eth0".into()),
            interface_name: iface,
            ip_networks: vec![ipnetwork::IpNetwork::from(ip)],
            mac: Some(tortie_cni::names::format_mac(&plumbed.pod_mac)),
            ports: Vec::new(),
            profiles: vec![format!("kns.{namespace}")],
        },
    );
    wep.metadata.namespace = Some(namespace.into());
    let store = ds.store::<WorkloadEndpoint>();
    match store.create(&wep).await {
        Ok(_) => {}
        Err(tortie_datastore::Error::AlreadyExists { .. }) => {
            let key = tortie_datastore::ObjectKey::namespaced(namespace, &name);
            let old = store
                .get(&key)
                .await
                .map_err(AgentError::ds(format!("get WorkloadEndpoint {name}")))?;
            if let Some(old) = old {
                wep.metadata.resource_version = old.metadata.resource_version;
                store
                    .update(&wep)
                    .await
                    .map_err(AgentError::ds(format!("update WorkloadEndpoint {name}")))?;
            }
        }
        Err(e) => return Err(AgentError::ds(format!("create WorkloadEndpoint {name}"))(e)),
    }
    Ok(ip)
}
