//! Shared test setup: one real etcd per test binary (loopback, dies with the process), a
//! unique key prefix per test, and helpers to create pools, nodes and the IPAMConfig.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;
use tortie_crds::{IpPool, IpPoolSpec, IpamConfig, IpamConfigSpec, TortieNode, TortieNodeSpec};
use tortie_datastore::{Datastore, EtcdDatastore};
use tortie_ipam::{Ipam, Stores};

static ETCD: OnceLock<testlab::etcd::Etcd> = OnceLock::new();
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The binary's etcd endpoint (started on first use).
pub fn endpoint() -> String {
    ETCD.get_or_init(|| testlab::etcd::Etcd::start_loopback().expect("start etcd"))
        .endpoint()
}

/// A fresh key prefix for one test.
pub fn prefix(test: &str) -> String {
    format!(
        "/ipamtest/{}-{}-{}",
        test,
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A datastore with its own etcd client under `prefix`.
pub async fn datastore(prefix: &str) -> Result<Datastore> {
    Ok(Datastore::Etcd(Box::new(
        EtcdDatastore::connect(&[endpoint()], prefix).await?,
    )))
}

/// IPAM over its own client under `prefix`.
pub async fn ipam(prefix: &str) -> Result<Ipam> {
    Ok(Ipam::new(Stores::from_datastore(&datastore(prefix).await?)))
}

/// Creates a pool.
pub async fn pool(
    ds: &Datastore,
    name: &str,
    cidr: &str,
    f: impl FnOnce(&mut IpPoolSpec),
) -> Result<()> {
    let mut spec = IpPoolSpec::new(cidr.parse()?);
    f(&mut spec);
    ds.store::<IpPool>()
        .create(&IpPool::new(name, spec))
        .await?;
    Ok(())
}

/// Creates a TortieNode with `labels`.
pub async fn node(ds: &Datastore, name: &str, labels: &[(&str, &str)]) -> Result<()> {
    let mut n = TortieNode::new(name, TortieNodeSpec::default());
    if !labels.is_empty() {
        n.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        );
    }
    ds.store::<TortieNode>().create(&n).await?;
    Ok(())
}

/// Writes the IPAMConfig `default`.
pub async fn config(ds: &Datastore, strict: bool, max_blocks: u32) -> Result<()> {
    let c = IpamConfig::new(
        "default",
        IpamConfigSpec {
            strict_affinity: strict,
            max_blocks_per_host: max_blocks,
            auto_allocate_blocks: true,
        },
    );
    ds.store::<IpamConfig>().create(&c).await?;
    Ok(())
}
