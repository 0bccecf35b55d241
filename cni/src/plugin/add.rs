//! CNI ADD: addresses from IPAM (handle `<network>.<containerID>`, pod and namespace as
//! attributes), the pod plumbed Calico style, and the WorkloadEndpoint the agent watches.
//!
//! All or nothing: once an address is held, any later failure releases the handle, removes
//! the veth and the endpoint this call wrote, so a failed ADD leaks no address and leaves
//! no half-plumbed pod. Idempotent: a repeated ADD of the same container finds its
//! handle's addresses and re-plumbs with them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use tortie_crds::{AllowedUse, WorkloadEndpoint, WorkloadEndpointSpec};
use tortie_datastore::{Datastore, ObjectKey};
use tortie_ipam::{AssignArgs, Attrs, Ipam, Stores};

use super::PluginError;
use crate::conf::NetConf;
use crate::names::{HOST_END_MAC, format_mac, host_iface_name};
use crate::netns::Netns;
use crate::plumbing::{WorkloadSetup, setup_workload, teardown_workload};
use crate::spec::{AddResult, Attachment, ErrorCode, Invocation, InvocationError, add_result};

/// Orchestrator of the endpoints this plugin writes.
pub const ORCHESTRATOR: &str = "k8s";
/// Calico's implicit namespace label on an endpoint.
pub const NAMESPACE_LABEL: &str = "projectcalico.org/namespace";
/// Calico's implicit orchestrator label on an endpoint.
pub const ORCHESTRATOR_LABEL: &str = "projectcalico.org/orchestrator";

/// The pod named in `CNI_ARGS` (required for ADD and CHECK).
pub(crate) fn pod_of(inv: &Invocation) -> Result<(&str, &str), PluginError> {
    inv.pod().ok_or_else(|| {
        InvocationError::new(
            ErrorCode::InvalidEnv,
            "CNI_ARGS: K8S_POD_NAMESPACE and K8S_POD_NAME are required",
        )
        .into()
    })
}

/// The WorkloadEndpoint's key for this pod interface on `node`.
pub fn endpoint_key(node: &str, namespace: &str, pod: &str, ifname: &str) -> ObjectKey {
    ObjectKey::namespaced(
        namespace,
        WorkloadEndpoint::name_for(node, ORCHESTRATOR, pod, ifname),
    )
}

/// The endpoint ADD writes (pure).
pub fn endpoint(
    node: &str,
    inv: &Invocation,
    namespace: &str,
    pod: &str,
    host_iface: &str,
    ips: &[IpAddr],
    pod_mac: &str,
) -> WorkloadEndpoint {
    let name = WorkloadEndpoint::name_for(node, ORCHESTRATOR, pod, &inv.ifname);
    let mut wep = WorkloadEndpoint::new(
        &name,
        WorkloadEndpointSpec {
            orchestrator: Some(ORCHESTRATOR.into()),
            node: node.into(),
            pod: pod.into(),
            container_id: inv.container_id.clone(),
            endpoint: Some(inv.ifname.clone()),
            interface_name: host_iface.into(),
            ip_networks: ips.iter().map(|ip| IpNetwork::from(*ip)).collect(),
            mac: Some(pod_mac.to_string()).filter(|m| !m.is_empty()),
            ports: Vec::new(),
            profiles: vec![format!("kns.{namespace}")],
        },
    );
    wep.metadata.namespace = Some(namespace.into());
    wep.metadata.labels = Some(BTreeMap::from([
        (NAMESPACE_LABEL.to_string(), namespace.to_string()),
        (ORCHESTRATOR_LABEL.to_string(), ORCHESTRATOR.to_string()),
    ]));
    wep
}

/// Runs ADD on `node` against `ds`.
pub async fn add(
    ds: &Datastore,
    inv: &Invocation,
    conf: &NetConf,
    node: &str,
) -> Result<AddResult, PluginError> {
    let (namespace, pod) = pod_of(inv)?;
    let netns = inv.netns.clone().unwrap_or_default();
    // The container must exist before anything is assigned (code 3 otherwise).
    let pod_ns = Netns::from_path(&netns);
    pod_ns.open().map_err(|e| PluginError::UnknownContainer {
        path: netns.clone(),
        reason: e.to_string(),
    })?;
    let handle = conf.handle(&inv.container_id);
    let ipam = Ipam::new(Stores::from_datastore(ds));
    let held = ipam
        .addresses_of(&handle)
        .await
        .map_err(PluginError::ipam("lookup", &handle))?;
    let ips = if held.is_empty() {
        assign(&ipam, conf, &handle, node, namespace, pod).await?
    } else {
        tracing::info!(%handle, ?held, "ADD again: reusing the handle's addresses");
        held
    };
    let host_iface = host_iface_name(namespace, pod);
    let mut wrote_endpoint = false;
    let res = plumb_and_record(
        ds,
        inv,
        conf,
        node,
        (namespace, pod),
        &host_iface,
        &ips,
        &mut wrote_endpoint,
    )
    .await;
    match res {
        Ok(r) => Ok(r),
        Err(e) => {
            tracing::warn!(error = %e, %handle, "ADD failed after assignment: rolling back");
            undo(
                ds,
                &ipam,
                &handle,
                &host_iface,
                (node, namespace, pod, inv),
                wrote_endpoint,
            )
            .await;
            Err(e)
        }
    }
}

async fn assign(
    ipam: &Ipam,
    conf: &NetConf,
    handle: &str,
    node: &str,
    namespace: &str,
    pod: &str,
) -> Result<Vec<IpAddr>, PluginError> {
    let args = AssignArgs {
        handle: handle.to_string(),
        num_v4: usize::from(conf.assign_ipv4),
        num_v6: usize::from(conf.assign_ipv6),
        node: node.to_string(),
        attrs: Attrs {
            namespace: Some(namespace.into()),
            pod: Some(pod.into()),
            kind: None,
        },
        use_: AllowedUse::Workload,
    };
    let got = ipam
        .auto_assign(&args)
        .await
        .map_err(PluginError::ipam("assign", handle))?;
    let ips: Vec<IpAddr> = got.v4.iter().chain(&got.v6).map(|a| a.ip).collect();
    for (family, wanted, n) in [
        (4u8, conf.assign_ipv4, got.v4.len()),
        (6, conf.assign_ipv6, got.v6.len()),
    ] {
        if wanted && n == 0 {
            let _ = ipam.release_by_handle(handle).await;
            return Err(PluginError::NoAddress {
                handle: handle.to_string(),
                family,
            });
        }
    }
    Ok(ips)
}

#[allow(clippy::too_many_arguments)]
async fn plumb_and_record(
    ds: &Datastore,
    inv: &Invocation,
    conf: &NetConf,
    node: &str,
    (namespace, pod): (&str, &str),
    host_iface: &str,
    ips: &[IpAddr],
    wrote_endpoint: &mut bool,
) -> Result<AddResult, PluginError> {
    let netns = inv.netns.clone().unwrap_or_default();
    let setup = WorkloadSetup {
        host_ns: Netns::current(),
        pod_ns: Netns::from_path(&netns),
        host_iface: host_iface.to_string(),
        pod_iface: inv.ifname.clone(),
        addrs: ips.to_vec(),
        mtu: super::mtu(conf),
    };
    let built = setup_workload(&setup)
        .await
        .map_err(PluginError::plumbing(format!(
            "plumbing {host_iface} into {netns} as {}",
            inv.ifname
        )))?;
    let pod_mac = format_mac(&built.pod_mac);
    let wep = endpoint(node, inv, namespace, pod, host_iface, ips, &pod_mac);
    write_endpoint(ds, wep, wrote_endpoint).await?;
    Ok(add_result(
        &conf.cni_version,
        &Attachment {
            host_iface: host_iface.to_string(),
            host_mac: format_mac(&HOST_END_MAC),
            pod_iface: inv.ifname.clone(),
            pod_mac,
            netns,
            ips: ips.to_vec(),
        },
    ))
}

/// Creates the endpoint, or replaces an existing one of the same name.
async fn write_endpoint(
    ds: &Datastore,
    mut wep: WorkloadEndpoint,
    wrote: &mut bool,
) -> Result<(), PluginError> {
    let store = ds.store::<WorkloadEndpoint>();
    let key = ObjectKey::of(&wep);
    let what = format!("WorkloadEndpoint {key}");
    for _ in 0..10 {
        match store.create(&wep).await {
            Ok(_) => {
                *wrote = true;
                return Ok(());
            }
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(PluginError::ds(format!("create {what}"))(e)),
        }
        let Some(old) = store
            .get(&key)
            .await
            .map_err(PluginError::ds(format!("get {what}")))?
        else {
            continue;
        };
        wep.metadata.resource_version = old.metadata.resource_version;
        match store.update(&wep).await {
            Ok(_) => {
                *wrote = true;
                return Ok(());
            }
            Err(e) if e.is_conflict() || e.is_not_found() => continue,
            Err(e) => return Err(PluginError::ds(format!("update {what}"))(e)),
        }
    }
    Err(PluginError::ds(format!("write {what}"))(
        tortie_datastore::Error::Conflict {
            kind: "WorkloadEndpoint".into(),
            key: key.to_string(),
            expected: String::new(),
            detail: "still conflicting after 10 attempts".into(),
        },
    ))
}

/// Rolls a failed ADD back: endpoint (when this call wrote it), veth, addresses.
async fn undo(
    ds: &Datastore,
    ipam: &Ipam,
    handle: &str,
    host_iface: &str,
    (node, namespace, pod, inv): (&str, &str, &str, &Invocation),
    wrote_endpoint: bool,
) {
    if wrote_endpoint {
        let key = endpoint_key(node, namespace, pod, &inv.ifname);
        let store = ds.store::<WorkloadEndpoint>();
        if let Err(e) = store.delete(&key, None).await
            && !e.is_not_found()
        {
            tracing::warn!(error = %e, %key, "rollback: endpoint not deleted");
        }
    }
    if let Err(e) = teardown_workload(&Netns::current(), host_iface).await {
        tracing::warn!(error = %e, host_iface, "rollback: veth not deleted");
    }
    match ipam.release_by_handle(handle).await {
        Ok(ips) => tracing::info!(handle, ?ips, "rollback: released"),
        Err(e) => tracing::warn!(error = %e, handle, "rollback: release failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Command;

    #[test]
    fn endpoint_is_named_and_labelled_as_calico() {
        let inv = Invocation {
            command: Command::Add,
            container_id: "abc".into(),
            netns: Some("/var/run/netns/x".into()),
            ifname: "eth0".into(),
            pod_namespace: Some("web".into()),
            pod_name: Some("api-0".into()),
        };
        let ip: IpAddr = "10.0.0.5".parse().expect("ip");
        let w = endpoint(
            "node-1",
            &inv,
            "web",
            "api-0",
            "cali0123456789a",
            &[ip],
            "02:00:00:00:00:01",
        );
        assert_eq!(w.metadata.name.as_deref(), Some("node--1-k8s-api--0-eth0"));
        assert_eq!(w.metadata.namespace.as_deref(), Some("web"));
        let labels = w.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get(NAMESPACE_LABEL).map(String::as_str), Some("web"));
        assert_eq!(
            labels.get(ORCHESTRATOR_LABEL).map(String::as_str),
            Some("k8s")
        );
        assert_eq!(w.spec.ip_networks, vec![IpNetwork::from(ip)]);
        assert_eq!(w.spec.profiles, vec!["kns.web".to_string()]);
        assert_eq!(w.spec.container_id, "abc");
        assert_eq!(w.spec.endpoint.as_deref(), Some("eth0"));
        assert_eq!(w.spec.mac.as_deref(), Some("02:00:00:00:00:01"));
        assert_eq!(
            endpoint_key("node-1", "web", "api-0", "eth0"),
            ObjectKey::namespaced("web", "node--1-k8s-api--0-eth0")
        );
    }
}
