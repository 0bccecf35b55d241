//! The tunnel address driver ([`tortie_node::tunnel_driver::reconcile`]) against a real
//! etcd on loopback (one per test binary, a key prefix per test): what it records in the
//! TortieNode and what IPAM holds afterwards, through the cases calico-node's
//! `allocateip` handles — first assignment (handle attributes as Calico's), no churn on a
//! re-run, adopting a held but unrecorded address, reclaiming a recorded address IPAM
//! lost (or a new one when another handle took it), moving to another pool when the old
//! one is deleted, and release when the pool stops selecting the node. IPAM's check is
//! clean at the end (nothing leaked). Needs `etcd` on PATH; no namespaces.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use tortie_crds::{EncapMode, IpPool, IpPoolSpec, IpamBlock, TortieNode, TortieNodeSpec};
use tortie_datastore::{Datastore, EtcdDatastore, Filter, ObjectKey};
use tortie_ipam::{Attrs, Ipam, Stores};
use tortie_node::tunnel_driver::{Recorded, reconcile};

static ETCD: OnceLock<testlab::etcd::Etcd> = OnceLock::new();
static NEXT: AtomicUsize = AtomicUsize::new(0);

async fn setup(test: &str) -> Result<(Datastore, Ipam)> {
    let ep = ETCD
        .get_or_init(|| testlab::etcd::Etcd::start_loopback().expect("start etcd"))
        .endpoint();
    let prefix = format!(
        "/tunneltest/{test}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let ds = Datastore::Etcd(Box::new(EtcdDatastore::connect(&[ep], &prefix).await?));
    let ipam = Ipam::new(Stores::from_datastore(&ds));
    Ok((ds, ipam))
}

async fn add_pool(
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

async fn pools(ds: &Datastore) -> Result<Vec<IpPool>> {
    Ok(ds.store::<IpPool>().list(&Filter::all()).await?.items)
}

async fn node(ds: &Datastore, name: &str) -> Result<TortieNode> {
    ds.store::<TortieNode>()
        .get(&ObjectKey::cluster(name))
        .await?
        .with_context(|| format!("no TortieNode {name}"))
}

/// One pass of the driver with the node and pools as stored now.
async fn pass(ds: &Datastore, ipam: &Ipam, name: &str) -> Result<Recorded> {
    let n = node(ds, name).await?;
    Ok(reconcile(ipam, name, &n, &pools(ds).await?).await?)
}

async fn assert_clean(ipam: &Ipam) -> Result<()> {
    let r = tortie_ipam::check(ipam.stores(), None).await?;
    assert!(r.is_clean(), "{}", tortie_ipam::format_report(&r));
    Ok(())
}

/// The secondary `kind` attribute IPAM stored with `ip`.
async fn kind_attr(ds: &Datastore, ip: IpAddr) -> Result<Option<String>> {
    for b in ds.store::<IpamBlock>().list(&Filter::all()).await?.items {
        if let Some(a) = tortie_ipam::block::allocations(&b.spec).find(|a| a.ip == ip) {
            return Ok(a
                .attr
                .and_then(|x| x.secondary.as_ref())
                .and_then(|s| s.kind.clone()));
        }
    }
    Ok(None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assign_keep_adopt_reclaim_and_move() -> Result<()> {
    let (ds, ipam) = setup("cycle").await?;
    add_pool(&ds, "plain", "10.60.0.0/24", |_| {}).await?;
    add_pool(&ds, "ipip", "10.61.0.0/24", |s| {
        s.ipip_mode = EncapMode::Always
    })
    .await?;
    ds.store::<TortieNode>()
        .create(&TortieNode::new("a", TortieNodeSpec::default()))
        .await?;

    // First pass: an IPIP address from the IPIP pool, no VXLAN, no MAC.
    let r = pass(&ds, &ipam, "a").await?;
    let t = r.ipip.context("no IPIP address")?;
    assert!(t.to_string().starts_with("10.61.0."), "{t}");
    assert_eq!(r.vxlan, None);
    assert_eq!(r.vxlan_mac, None);
    assert_eq!(Recorded::of(&node(&ds, "a").await?), r);
    assert_eq!(ipam.addresses_of("ipip-tunnel-addr-a").await?, vec![t]);
    assert_eq!(
        kind_attr(&ds, t).await?.as_deref(),
        Some("ipipTunnelAddress")
    );

    // A re-run changes nothing: same address, the node is not rewritten.
    let version = node(&ds, "a").await?.metadata.resource_version;
    assert_eq!(pass(&ds, &ipam, "a").await?.ipip, Some(t));
    assert_eq!(node(&ds, "a").await?.metadata.resource_version, version);

    // Held but unrecorded (the agent died between assignment and node write): adopted.
    let mut n = node(&ds, "a").await?;
    n.spec.bgp = None;
    ds.store::<TortieNode>().update(&n).await?;
    assert_eq!(pass(&ds, &ipam, "a").await?.ipip, Some(t));
    assert_eq!(ipam.addresses_of("ipip-tunnel-addr-a").await?, vec![t]);

    // Recorded but IPAM lost it: the very same address is claimed again.
    ipam.release_by_handle("ipip-tunnel-addr-a").await?;
    assert_eq!(pass(&ds, &ipam, "a").await?.ipip, Some(t));
    assert_eq!(ipam.addresses_of("ipip-tunnel-addr-a").await?, vec![t]);

    // Recorded, lost, and taken by someone else meanwhile: a new address.
    ipam.release_by_handle("ipip-tunnel-addr-a").await?;
    ipam.assign_ip(t, "someone-else", &Attrs::default(), "a")
        .await?;
    let t2 = pass(&ds, &ipam, "a").await?.ipip.context("no address")?;
    assert_ne!(t2, t);
    assert_eq!(ipam.addresses_of("ipip-tunnel-addr-a").await?, vec![t2]);
    assert_eq!(ipam.addresses_of("someone-else").await?, vec![t]);
    ipam.release_by_handle("someone-else").await?;

    // The IPIP pool is deleted, another one has IPIP: the address moves there and the
    // old one is released.
    ds.store::<IpPool>()
        .delete(&ObjectKey::cluster("ipip"), None)
        .await?;
    add_pool(&ds, "ipip2", "10.62.0.0/24", |s| {
        s.ipip_mode = EncapMode::CrossSubnet
    })
    .await?;
    let t3 = pass(&ds, &ipam, "a").await?.ipip.context("no address")?;
    assert!(t3.to_string().starts_with("10.62.0."), "{t3}");
    assert_eq!(ipam.addresses_of("ipip-tunnel-addr-a").await?, vec![t3]);
    assert_clean(&ipam).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_mac_and_release_when_the_pool_stops_selecting_the_node() -> Result<()> {
    let (ds, ipam) = setup("selector").await?;
    add_pool(&ds, "vx", "10.70.0.0/24", |s| {
        s.vxlan_mode = EncapMode::Always;
        s.node_selector = "zone == 'a'".into();
    })
    .await?;
    let mut n = TortieNode::new("b", TortieNodeSpec::default());
    n.metadata.labels = Some(BTreeMap::from([("zone".to_string(), "a".to_string())]));
    ds.store::<TortieNode>().create(&n).await?;

    let r = pass(&ds, &ipam, "b").await?;
    let v = r.vxlan.context("no VXLAN address")?;
    let mac = r.vxlan_mac.clone().context("no MAC")?;
    assert_eq!(r.ipip, None);
    assert_eq!(
        kind_attr(&ds, v).await?.as_deref(),
        Some("vxlanTunnelAddress")
    );
    // Stable across passes.
    assert_eq!(pass(&ds, &ipam, "b").await?, r);

    // Relabelled out of the pool's selector: field cleared, handle gone, MAC kept.
    let mut n = node(&ds, "b").await?;
    n.metadata.labels = Some(BTreeMap::from([("zone".to_string(), "z".to_string())]));
    ds.store::<TortieNode>().update(&n).await?;
    let r = pass(&ds, &ipam, "b").await?;
    assert_eq!(r.vxlan, None);
    assert_eq!(r.vxlan_mac.as_deref(), Some(mac.as_str()));
    let stored = node(&ds, "b").await?;
    assert_eq!(stored.spec.ipv4_vxlan_tunnel_addr, None);
    assert!(ipam.addresses_of("vxlan-tunnel-addr-b").await?.is_empty());
    let handle = tortie_crds::IpamHandle::name_for("vxlan-tunnel-addr-b");
    assert!(
        ds.store::<tortie_crds::IpamHandle>()
            .get(&ObjectKey::cluster(handle))
            .await?
            .is_none()
    );
    assert_clean(&ipam).await?;
    Ok(())
}
