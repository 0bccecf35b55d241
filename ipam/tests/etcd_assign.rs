//! Assignment behaviour on a real etcd: affine blocks and datastore round-trips, borrowing
//! on/off, maxBlocksPerHost, disabled pool, nodeSelector mismatch, IPv6 pool, pool
//! exhaustion leaving nothing half-written, specific addresses, stale releases, tunnel
//! addresses, and the usage/check reports.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;

use anyhow::Result;
use tortie_crds::{AffinityState, AllowedUse, BlockAffinity, EncapMode};
use tortie_datastore::Filter;
use tortie_ipam::{
    AssignArgs, Attrs, Ipam, IpamError, Stores, TunnelKind, check, format_usage, pod_handle, usage,
};

fn args(node: &str, handle: &str, v4: usize, v6: usize) -> AssignArgs {
    AssignArgs {
        handle: handle.into(),
        num_v4: v4,
        num_v6: v6,
        node: node.into(),
        attrs: Attrs {
            namespace: Some("default".into()),
            pod: Some(handle.into()),
            kind: None,
        },
        use_: AllowedUse::Workload,
    }
}

async fn assert_clean(ipam: &Ipam) -> Result<()> {
    let r = check(ipam.stores(), None).await?;
    assert!(
        r.is_clean(),
        "check not clean:\n{}",
        tortie_ipam::format_report(&r)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn affine_block_then_two_writes_per_assignment() -> Result<()> {
    let p = common::prefix("affine");
    let ds = common::datastore(&p).await?;
    common::pool(&ds, "p4", "10.20.0.0/24", |s| s.block_size = Some(28)).await?;
    common::node(&ds, "n1", &[]).await?;
    let (stores, counters) = Stores::from_datastore(&ds).counted();
    let ipam = Ipam::new(stores);
    let first = ipam
        .auto_assign(&args("n1", &pod_handle("c0"), 1, 0))
        .await?;
    let block = first.v4[0].block;
    let affs = ipam.stores().affinities.list(&Filter::all()).await?.items;
    assert_eq!(affs.len(), 1);
    assert_eq!(affs[0].spec.state, AffinityState::Confirmed);
    assert_eq!(
        affs[0].metadata.name.as_deref(),
        Some(BlockAffinity::name_for("n1", &block).as_str())
    );
    let mut seen = BTreeSet::from([first.v4[0].ip]);
    for i in 1..16 {
        let (r0, w0) = counters.snapshot();
        let a = ipam
            .auto_assign(&args("n1", &pod_handle(&format!("c{i}")), 1, 0))
            .await?;
        let (r1, w1) = counters.snapshot();
        assert_eq!(
            a.v4[0].block, block,
            "left the affine block while it had room"
        );
        assert!(seen.insert(a.v4[0].ip), "{} twice", a.v4[0].ip);
        assert_eq!(w1 - w0, 2, "writes for one assignment from an affine block");
        assert!(r1 - r0 <= 4, "reads for one assignment: {}", r1 - r0);
    }
    // The block is full: the next one claims a second block.
    let a = ipam
        .auto_assign(&args("n1", &pod_handle("c16"), 1, 0))
        .await?;
    assert_ne!(a.v4[0].block, block);
    assert_clean(&ipam).await?;
    // Release by handle, and a stale release.
    let freed = ipam.release_by_handle(&pod_handle("c3")).await?;
    assert_eq!(freed.len(), 1);
    assert!(ipam.release_by_handle(&pod_handle("c3")).await?.is_empty());
    let r = ipam
        .release_ips(&[(a.v4[0].ip, Some(a.v4[0].seq + 1))])
        .await?;
    assert_eq!(r.stale, vec![a.v4[0].ip]);
    let r = ipam.release_ips(&[(a.v4[0].ip, Some(a.v4[0].seq))]).await?;
    assert_eq!(r.released, vec![a.v4[0].ip]);
    assert_clean(&ipam).await?;
    let u = usage(ipam.stores()).await?;
    assert_eq!(u.pools[0].blocks, 2);
    assert_eq!(u.pools[0].used, 15);
    let text = format_usage(&u, true);
    assert!(
        text.contains("10.20.0.0/24") && text.contains("| n1"),
        "{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn borrowing_on_and_off_and_block_cap() -> Result<()> {
    for strict in [false, true] {
        let p = common::prefix("borrow");
        let ds = common::datastore(&p).await?;
        // Two blocks of 4 in the pool.
        common::pool(&ds, "small", "10.30.0.0/29", |s| s.block_size = Some(30)).await?;
        common::node(&ds, "a", &[]).await?;
        common::node(&ds, "b", &[]).await?;
        common::config(&ds, strict, 1).await?;
        let ipam = common::ipam(&p).await?;
        let a = ipam.auto_assign(&args("a", "ha", 2, 0)).await?;
        let b = ipam.auto_assign(&args("b", "hb", 1, 0)).await?;
        assert_ne!(a.v4[0].block, b.v4[0].block, "nodes share a block");
        // a's block has 2 free; a asks for 4: maxBlocksPerHost=1 stops a new claim (there
        // is none left anyway); only borrowing from b's block can serve the rest.
        let r = ipam.auto_assign(&args("a", "ha2", 4, 0)).await;
        if strict {
            match r {
                Err(IpamError::PoolExhausted { pools, got, .. }) => {
                    assert_eq!(pools, vec!["small".to_string()]);
                    assert_eq!(got, 2);
                }
                other => panic!("strict affinity: expected PoolExhausted, got {other:?}"),
            }
            // Nothing half-written: the 2 taken were given back.
            assert_eq!(usage(ipam.stores()).await?.pools[0].used, 3);
        } else {
            let got = r?;
            let borrowed: Vec<_> = got.v4.iter().filter(|x| x.block == b.v4[0].block).collect();
            assert_eq!(got.v4.len(), 4);
            assert_eq!(borrowed.len(), 2, "borrowed from b's block: {got:?}");
        }
        let affs = ipam.stores().affinities.list(&Filter::all()).await?.items;
        assert_eq!(
            affs.len(),
            2,
            "block cap exceeded or pending left: {affs:?}"
        );
        assert_clean(&ipam).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_blocks_per_host_caps_claims() -> Result<()> {
    let p = common::prefix("cap");
    let ds = common::datastore(&p).await?;
    common::pool(&ds, "p", "10.31.0.0/26", |s| s.block_size = Some(30)).await?;
    common::node(&ds, "a", &[]).await?;
    common::config(&ds, true, 2).await?;
    let ipam = common::ipam(&p).await?;
    ipam.auto_assign(&args("a", "h1", 8, 0)).await?;
    let e = ipam.auto_assign(&args("a", "h2", 1, 0)).await.unwrap_err();
    assert!(matches!(e, IpamError::PoolExhausted { .. }), "{e}");
    assert_eq!(
        ipam.stores().blocks.list(&Filter::all()).await?.items.len(),
        2
    );
    assert_clean(&ipam).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_choice_disabled_selector_ipv6() -> Result<()> {
    let p = common::prefix("pools");
    let ds = common::datastore(&p).await?;
    common::pool(&ds, "off", "10.40.0.0/24", |s| s.disabled = true).await?;
    common::pool(&ds, "east", "10.41.0.0/24", |s| {
        s.node_selector = "zone == 'east'".into()
    })
    .await?;
    common::pool(&ds, "v6", "fd00:41::/120", |s| s.block_size = Some(124)).await?;
    common::node(&ds, "w", &[("zone", "west")]).await?;
    common::node(&ds, "e", &[("zone", "east")]).await?;
    let ipam = common::ipam(&p).await?;
    // West matches no enabled v4 pool: the disabled one is skipped, east's selector fails.
    let e = ipam.auto_assign(&args("w", "h", 1, 0)).await.unwrap_err();
    assert!(
        matches!(e, IpamError::NoMatchingPool { family: 4, .. }),
        "{e}"
    );
    let a = ipam.auto_assign(&args("e", "he", 1, 2)).await?;
    assert!(a.v4[0].block.to_string().starts_with("10.41."), "{a:?}");
    assert_eq!(a.v6.len(), 2);
    assert!(
        a.v6.iter()
            .all(|x| x.block.prefix() == 124 && matches!(x.ip, IpAddr::V6(_)))
    );
    // IPv6 only for west works: the v6 pool selects all().
    let w = ipam.auto_assign(&args("w", "hw", 0, 1)).await?;
    assert_ne!(w.v6[0].block, a.v6[0].block);
    // Specific address in the disabled pool is refused; in east's pool from east works.
    let e = ipam
        .assign_ip("10.40.0.5".parse()?, "hx", &Attrs::default(), "e")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("disabled"), "{e}");
    let s = ipam
        .assign_ip("10.41.0.200".parse()?, "hs", &Attrs::default(), "e")
        .await?;
    let e = ipam
        .assign_ip("10.41.0.200".parse()?, "hs2", &Attrs::default(), "e")
        .await
        .unwrap_err();
    assert!(matches!(e, IpamError::AlreadyAssigned { .. }), "{e}");
    assert_eq!(
        ipam.release_ips(&[(s.ip, Some(s.seq))]).await?.released,
        vec![s.ip]
    );
    assert_clean(&ipam).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhaustion_leaves_nothing_half_written() -> Result<()> {
    let p = common::prefix("exhaust");
    let ds = common::datastore(&p).await?;
    common::pool(&ds, "tiny", "10.50.0.0/29", |s| s.block_size = Some(30)).await?;
    common::node(&ds, "a", &[]).await?;
    common::node(&ds, "b", &[]).await?;
    let ipam = common::ipam(&p).await?;
    ipam.auto_assign(&args("a", "h1", 5, 0)).await?;
    // 3 left; asking for 4 fails and gives back what it took.
    let e = ipam.auto_assign(&args("b", "h2", 4, 0)).await.unwrap_err();
    match &e {
        IpamError::PoolExhausted { pools, wanted, .. } => {
            assert_eq!(pools, &vec!["tiny".to_string()]);
            assert_eq!(*wanted, 4);
        }
        other => panic!("expected PoolExhausted, got {other}"),
    }
    assert!(e.to_string().contains("tiny"), "{e}");
    assert!(ipam.addresses_of("h2").await?.is_empty());
    let affs = ipam.stores().affinities.list(&Filter::all()).await?.items;
    assert!(
        affs.iter()
            .all(|a| a.spec.state == AffinityState::Confirmed),
        "{affs:?}"
    );
    assert_eq!(usage(ipam.stores()).await?.pools[0].used, 5);
    assert_clean(&ipam).await?;
    // Exactly the 3 remaining fit.
    assert_eq!(ipam.auto_assign(&args("b", "h3", 3, 0)).await?.v4.len(), 3);
    assert_clean(&ipam).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_addresses_are_per_node_and_idempotent() -> Result<()> {
    let p = common::prefix("tunnel");
    let ds = common::datastore(&p).await?;
    common::pool(&ds, "plain", "10.60.0.0/24", |_| {}).await?;
    common::pool(&ds, "ipip", "10.61.0.0/24", |s| {
        s.ipip_mode = EncapMode::Always
    })
    .await?;
    common::node(&ds, "a", &[]).await?;
    let ipam = common::ipam(&p).await?;
    let t = ipam.assign_tunnel_addr("a", TunnelKind::Ipip).await?;
    assert!(t.to_string().starts_with("10.61."), "{t}");
    assert_eq!(ipam.assign_tunnel_addr("a", TunnelKind::Ipip).await?, t);
    assert_eq!(ipam.addresses_of("ipip-tunnel-addr-a").await?, vec![t]);
    let e = ipam
        .assign_tunnel_addr("a", TunnelKind::Vxlan)
        .await
        .unwrap_err();
    assert!(matches!(e, IpamError::NoMatchingPool { .. }), "{e}");
    assert_clean(&ipam).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_block_of_another_node_is_reclaimed_after_min_age() -> Result<()> {
    use std::sync::{Arc, Mutex};
    let p = common::prefix("reclaim");
    let ds = common::datastore(&p).await?;
    // One block in the pool; strict affinity so "b" cannot borrow.
    common::pool(&ds, "one", "10.90.0.0/28", |s| s.block_size = Some(28)).await?;
    common::node(&ds, "a", &[]).await?;
    common::node(&ds, "b", &[]).await?;
    common::config(&ds, true, 0).await?;
    let now = Arc::new(Mutex::new(chrono::Utc::now()));
    let clock = now.clone();
    let ipam =
        Ipam::new(Stores::from_datastore(&ds)).with_clock(Arc::new(move || *clock.lock().unwrap()));
    let a = ipam.auto_assign(&args("a", "ha", 1, 0)).await?;
    ipam.release_by_handle("ha").await?;
    // Empty for 30 s only: not yet reclaimable.
    *now.lock().unwrap() += chrono::Duration::seconds(30);
    let e = ipam.auto_assign(&args("b", "hb", 1, 0)).await.unwrap_err();
    assert!(matches!(e, IpamError::PoolExhausted { .. }), "{e}");
    // Empty for over a minute: b takes it over.
    *now.lock().unwrap() += chrono::Duration::seconds(31);
    let b = ipam.auto_assign(&args("b", "hb", 1, 0)).await?;
    assert_eq!(b.v4[0].block, a.v4[0].block);
    let affs = ipam.stores().affinities.list(&Filter::all()).await?.items;
    assert_eq!(affs.len(), 1, "{affs:?}");
    assert_eq!(affs[0].spec.node, "b");
    assert_eq!(affs[0].spec.state, AffinityState::Confirmed);
    assert_clean(&ipam).await?;
    Ok(())
}
