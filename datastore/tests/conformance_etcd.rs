//! The conformance suite against a real etcd (Debian's etcd-server) per test, started on
//! loopback by `testlab::etcd::Etcd` with its own data dir; each behaviour is its own
//! test (and its own etcd, so a restart disturbs nobody else).

mod suite;

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use testlab::etcd::Etcd;
use tortie_crds::ipam::IpamHandle;
use tortie_datastore::{Datastore, EtcdDatastore};

use suite::Target;

/// A running etcd and a target on it. The etcd stops when this is dropped.
struct Fixture {
    target: Target,
    _etcd: Arc<Mutex<Etcd>>,
}

async fn fixture() -> Result<Fixture> {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let etcd = tokio::task::spawn_blocking(Etcd::start_loopback)
        .await?
        .context("start etcd")?;
    let endpoints = etcd.endpoints();
    let run_id = suite::run_id();
    let ds = EtcdDatastore::connect(&endpoints, &format!("/tortie-test/{run_id}")).await?;
    let etcd = Arc::new(Mutex::new(etcd));
    let for_restart = Arc::clone(&etcd);
    let client = ds.client();
    let restart: suite::Disrupt = Box::new(move || {
        let etcd = Arc::clone(&for_restart);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut e = etcd.lock().unwrap_or_else(|p| p.into_inner());
                e.restart()
            })
            .await?
            .context("restart etcd")
        })
    });
    let restart = Arc::new(restart);
    let again = Arc::clone(&restart);
    Ok(Fixture {
        target: Target {
            name: "etcd".into(),
            ds: Datastore::Etcd(Box::new(ds)),
            // Restarting etcd (same data dir and port) breaks every client connection.
            disrupt: Some(Box::new(move || restart())),
            restart: Some(Box::new(move || again())),
            expire: Some(Box::new(move || {
                let mut client = client.clone();
                Box::pin(async move {
                    let now = client
                        .get("/", None)
                        .await?
                        .header()
                        .map(|h| h.revision())
                        .unwrap_or(0);
                    client
                        .compact(
                            now,
                            Some(etcd_client::CompactionOptions::new().with_physical()),
                        )
                        .await?;
                    Ok("1".to_string())
                })
            })),
            run_id,
        },
        _etcd: etcd,
    })
}

#[tokio::test]
async fn etcd_create_get_list() -> Result<()> {
    let f = fixture().await?;
    suite::create_get_list::<ConfigMap>(&f.target).await
}

#[tokio::test]
async fn etcd_stale_versions_conflict() -> Result<()> {
    let f = fixture().await?;
    suite::stale_versions::<ConfigMap>(&f.target).await
}

#[tokio::test]
async fn etcd_watch_in_order() -> Result<()> {
    let f = fixture().await?;
    suite::watch_in_order::<ConfigMap>(&f.target).await
}

#[tokio::test]
async fn etcd_watch_resumes_after_restart() -> Result<()> {
    let f = fixture().await?;
    suite::watch_resumes::<ConfigMap>(&f.target).await
}

#[tokio::test]
async fn etcd_watch_relists_after_compaction() -> Result<()> {
    let f = fixture().await?;
    suite::watch_relists_when_expired::<ConfigMap>(&f.target).await
}

#[tokio::test]
async fn etcd_watch_converges_after_restart() -> Result<()> {
    let f = fixture().await?;
    suite::watch_converges_after_restart::<ConfigMap>(&f.target).await
}

#[tokio::test]
async fn etcd_cluster_scoped_crd_kind() -> Result<()> {
    let f = fixture().await?;
    suite::create_get_list::<IpamHandle>(&f.target).await?;
    suite::stale_versions::<IpamHandle>(&f.target).await?;
    suite::watch_in_order::<IpamHandle>(&f.target).await
}

#[tokio::test]
async fn etcd_concurrent_cas_counter() -> Result<()> {
    let f = fixture().await?;
    suite::concurrent_counter::<ConfigMap>(&f.target, 25).await
}

#[tokio::test]
async fn etcd_native_kinds_and_field_selectors() -> Result<()> {
    let f = fixture().await?;
    suite::native_kinds(&f.target).await
}
