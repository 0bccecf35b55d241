//! CNI DEL: release the handle's addresses, delete the WorkloadEndpoint and the veth.
//! Whatever is already gone counts as done (spec: DEL is idempotent and should succeed
//! even when the netns or earlier resources no longer exist).
//!
//! A newer sandbox of the same pod shares the endpoint name and the `cali*` name (both come
//! from namespace/pod), so a late DEL of an old sandbox must not remove them: the endpoint
//! and the host end are removed only when the endpoint names this container (or is
//! absent); the pod-side interface in this container's own netns is always removed.

use tortie_crds::WorkloadEndpoint;
use tortie_datastore::Datastore;
use tortie_ipam::{Ipam, Stores};

use super::PluginError;
use super::add::endpoint_key;
use crate::conf::NetConf;
use crate::names::host_iface_name;
use crate::netns::Netns;
use crate::plumbing::teardown_workload;
use crate::spec::Invocation;

/// Runs DEL on `node` against `ds`.
pub async fn del(
    ds: &Datastore,
    inv: &Invocation,
    conf: &NetConf,
    node: &str,
) -> Result<(), PluginError> {
    let handle = conf.handle(&inv.container_id);
    let ipam = Ipam::new(Stores::from_datastore(ds));
    let released = ipam
        .release_by_handle(&handle)
        .await
        .map_err(PluginError::ipam("release", &handle))?;
    tracing::info!(%handle, ?released, "DEL: released");

    // The pod side first: removing it removes the pair, whatever the host end is called.
    if let Some(path) = inv.netns.as_deref()
        && std::path::Path::new(path).exists()
        && let Err(e) = teardown_workload(&Netns::from_path(path), &inv.ifname).await
    {
        // A netns that is being torn down can refuse entry: the host end goes below.
        tracing::info!(error = %e, path, "DEL: pod interface not removed");
    }

    let Some((namespace, pod)) = inv.pod() else {
        tracing::info!("DEL without K8S_POD_NAMESPACE/K8S_POD_NAME: addresses only");
        return Ok(());
    };
    let key = endpoint_key(node, namespace, pod, &inv.ifname);
    let store = ds.store::<WorkloadEndpoint>();
    let ours = match store
        .get(&key)
        .await
        .map_err(PluginError::ds(format!("get WorkloadEndpoint {key}")))?
    {
        Some(wep)
            if !wep.spec.container_id.is_empty() && wep.spec.container_id != inv.container_id =>
        {
            tracing::info!(
                %key,
                owner = %wep.spec.container_id,
                "DEL: endpoint belongs to a newer sandbox; leaving it and its veth"
            );
            false
        }
        Some(wep) => {
            match store
                .delete(&key, wep.metadata.resource_version.as_deref())
                .await
            {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(PluginError::ds(format!("delete WorkloadEndpoint {key}"))(e)),
            }
            true
        }
        None => true,
    };
    if ours {
        let host_iface = host_iface_name(namespace, pod);
        teardown_workload(&Netns::current(), &host_iface)
            .await
            .map_err(PluginError::plumbing(format!("deleting {host_iface}")))?;
    }
    Ok(())
}
