//! The conformance suite against a real Kubernetes API server: the kube-apiserver built
//! from Debian's `kubernetes` source package (`testlab::kube_apiserver`, with its own etcd
//! and tortie's CRDs applied), and any cluster named by `TORTIE_TEST_KUBECONFIG`.
//! A namespaced native kind (ConfigMap) and a cluster-scoped tortie CRD (IPAMHandle)
//! each go through every behaviour. Mid-watch, every connection to the server is reset
//! (`ss -K`; the watch resumes exactly) and, separately, the server is restarted (its
//! watch cache is gone: the watch re-lists and converges); watch requests are also cut
//! short (3 s) so resuming is exercised all along.

mod suite;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use testlab::kube_apiserver::{KubeApiServer, client_from_kubeconfig};
use tokio::sync::Mutex;
use tortie_crds::ipam::IpamHandle;
use tortie_datastore::{Datastore, KubeDatastore};

use suite::Target;

const WATCH_TIMEOUT_SECS: u32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_apiserver_conformance() -> Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let server = KubeApiServer::start()
        .await
        .context("start the real kube-apiserver (testlab::kube_apiserver)")?;
    let client = server.client().await?;
    let server = Arc::new(Mutex::new(server));
    let for_restart = Arc::clone(&server);
    let for_expire = Arc::clone(&server);
    let for_cut = Arc::clone(&server);
    let target = Target {
        name: "kube-apiserver".into(),
        ds: Datastore::Kube(KubeDatastore::new(client).with_watch_timeout(WATCH_TIMEOUT_SECS)),
        // Reset every TCP connection to the server (which keeps running and keeps its
        // watch cache): the watch must resume from its last revision, exactly.
        disrupt: Some(Box::new(move || {
            let server = Arc::clone(&for_cut);
            Box::pin(async move {
                server
                    .lock()
                    .await
                    .cut_connections()
                    .context("reset connections")
            })
        })),
        restart: Some(Box::new(move || {
            let server = Arc::clone(&for_restart);
            Box::pin(async move {
                server
                    .lock()
                    .await
                    .restart()
                    .await
                    .context("restart kube-apiserver")
            })
        })),
        // A restarted API server's watch cache starts at the current revision: watches
        // from any older revision get 410 Gone, as after an API server roll-out.
        expire: Some(Box::new(move || {
            let server = Arc::clone(&for_expire);
            Box::pin(async move {
                server
                    .lock()
                    .await
                    .restart()
                    .await
                    .context("restart kube-apiserver")?;
                Ok("1".to_string())
            })
        })),
        run_id: suite::run_id(),
    };
    suite::native_kinds(&target).await.context("native kinds")?;
    suite::run_all::<ConfigMap>(&target, 10, true).await?;
    suite::run_all::<IpamHandle>(&target, 10, false).await?;
    suite::watch_survives_timeouts::<IpamHandle>(&target).await?;
    Ok(())
}

/// Runs when `TORTIE_TEST_KUBECONFIG` names a kubeconfig of a cluster with tortie's CRDs
/// (`kubectl apply -f deploy/crds/`); writes only objects labelled with its run id, in a
/// namespace of its own, and deletes them afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_cluster_conformance() -> Result<()> {
    let Some(path) = std::env::var_os("TORTIE_TEST_KUBECONFIG") else {
        eprintln!("TORTIE_TEST_KUBECONFIG is not set: no external cluster to test");
        return Ok(());
    };
    let path = PathBuf::from(path);
    let client = client_from_kubeconfig(&path)
        .await
        .with_context(|| format!("TORTIE_TEST_KUBECONFIG={}", path.display()))?;
    let target = Target {
        name: format!("TORTIE_TEST_KUBECONFIG={}", path.display()),
        ds: Datastore::Kube(KubeDatastore::new(client).with_watch_timeout(WATCH_TIMEOUT_SECS)),
        disrupt: None,
        restart: None,
        expire: None,
        run_id: suite::run_id(),
    };
    suite::native_kinds(&target).await.context("native kinds")?;
    suite::run_all::<ConfigMap>(&target, 10, true).await?;
    suite::run_all::<IpamHandle>(&target, 10, true).await?;
    Ok(())
}
