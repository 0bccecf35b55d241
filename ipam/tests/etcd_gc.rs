//! GC on a real etcd with an injected clock: a dead pod's address is released only after
//! the grace period, a live pod's never; a deleted node's addresses (tunnel address
//! included), affinities and blocks go at once; empty blocks go after being seen empty on
//! two runs, keeping one per node. `check` with liveness reports the leak before GC.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use tortie_crds::{AllowedUse, EncapMode, TortieNode, WorkloadEndpoint, WorkloadEndpointSpec};
use tortie_datastore::{Filter, ObjectKey};
use tortie_ipam::gc::WorkloadEndpointLiveness;
use tortie_ipam::{
    AssignArgs, Attrs, GcOptions, GcState, Ipam, Stores, TunnelKind, check, format_report, gc,
};

fn pod_args(node: &str, pod: &str, n: usize) -> AssignArgs {
    AssignArgs {
        handle: format!("k8s-pod-network.{pod}"),
        num_v4: n,
        num_v6: 0,
        node: node.into(),
        attrs: Attrs {
            namespace: Some("ns".into()),
            pod: Some(pod.into()),
            kind: None,
        },
        use_: AllowedUse::Workload,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_grace_period_deleted_node_and_empty_blocks() -> Result<()> {
    let p = common::prefix("gc");
    let ds = common::datastore(&p).await?;
    common::pool(&ds, "p", "10.80.0.0/24", |s| {
        s.block_size = Some(29);
        s.ipip_mode = EncapMode::Always;
    })
    .await?;
    common::node(&ds, "n1", &[]).await?;
    common::node(&ds, "n2", &[]).await?;
    let now: Arc<Mutex<DateTime<Utc>>> = Arc::new(Mutex::new(Utc::now()));
    let clock = now.clone();
    let ipam =
        Ipam::new(Stores::from_datastore(&ds)).with_clock(Arc::new(move || *clock.lock().unwrap()));
    let advance = |d: i64| *now.lock().unwrap() += chrono::Duration::minutes(d);

    // A live pod (its WorkloadEndpoint exists) and a dead one (none) on n1.
    let wep = WorkloadEndpoint {
        metadata: kube::api::ObjectMeta {
            name: Some("n1-k8s-live-eth0".into()),
            namespace: Some("ns".into()),
            ..Default::default()
        },
        spec: WorkloadEndpointSpec {
            node: "n1".into(),
            pod: "live".into(),
            ..Default::default()
        },
    };
    ds.store::<WorkloadEndpoint>().create(&wep).await?;
    let live = ipam.auto_assign(&pod_args("n1", "live", 1)).await?.v4[0].ip;
    let dead = ipam.auto_assign(&pod_args("n1", "dead", 1)).await?.v4[0].ip;
    // n2: a pod and a tunnel address, then n2 is deleted.
    ipam.auto_assign(&pod_args("n2", "onn2", 2)).await?;
    let tunnel = ipam.assign_tunnel_addr("n2", TunnelKind::Ipip).await?;
    ds.store::<TortieNode>()
        .delete(&ObjectKey::cluster("n2"), None)
        .await?;

    let liveness = WorkloadEndpointLiveness(ds.store());
    let r = check(ipam.stores(), Some(&liveness)).await?;
    let leaked: Vec<_> = r.leaked.iter().map(|f| f.subject.clone()).collect();
    assert!(leaked.contains(&dead.to_string()), "{}", format_report(&r));
    assert!(!leaked.contains(&live.to_string()), "{}", format_report(&r));
    assert!(
        leaked.contains(&tunnel.to_string()),
        "{}",
        format_report(&r)
    );

    let opts = GcOptions {
        grace: Duration::from_secs(15 * 60),
    };
    let mut state = GcState::default();
    // Run 1: the deleted node goes at once; the dead pod only becomes a suspect.
    let rep = gc(&ipam, &liveness, &mut state, &opts).await?;
    assert_eq!(rep.node_addresses_released.len(), 3, "{rep:?}");
    assert!(rep.node_addresses_released.contains(&tunnel));
    assert!(rep.leaks_released.is_empty(), "{rep:?}");
    assert!(ipam.addresses_of("ipip-tunnel-addr-n2").await?.is_empty());
    let affs = ipam.stores().affinities.list(&Filter::all()).await?.items;
    assert!(affs.iter().all(|a| a.spec.node == "n1"), "{affs:?}");
    assert_eq!(state.suspects.len(), 1);

    // 14 minutes later: still within the grace period.
    advance(14);
    let rep = gc(&ipam, &liveness, &mut state, &opts).await?;
    assert!(rep.leaks_released.is_empty(), "{rep:?}");
    assert_eq!(ipam.addresses_of("k8s-pod-network.dead").await?, vec![dead]);

    // 16 minutes after first seen: released; the live pod's address never.
    advance(2);
    let rep = gc(&ipam, &liveness, &mut state, &opts).await?;
    assert_eq!(rep.leaks_released, vec![dead]);
    assert!(ipam.addresses_of("k8s-pod-network.dead").await?.is_empty());
    advance(60);
    gc(&ipam, &liveness, &mut state, &opts).await?;
    assert_eq!(ipam.addresses_of("k8s-pod-network.live").await?, vec![live]);
    let r = check(ipam.stores(), Some(&liveness)).await?;
    assert!(r.is_clean(), "{}", format_report(&r));

    // Empty blocks: n1 fills a second block, then empties it; two runs release it, and
    // n1 keeps one block even when that one is empty too.
    let more = ipam.auto_assign(&pod_args("n1", "burst", 8)).await?;
    assert!(more.v4.iter().any(|a| a.block != more.v4[0].block) || more.v4.len() == 8);
    ipam.release_by_handle("k8s-pod-network.burst").await?;
    ipam.release_by_handle("k8s-pod-network.live").await?;
    let blocks_before = ipam.stores().blocks.list(&Filter::all()).await?.items.len();
    assert!(blocks_before >= 2, "burst did not need a second block");
    let rep = gc(&ipam, &liveness, &mut state, &opts).await?;
    assert!(
        rep.blocks_removed.is_empty(),
        "released on first sight: {rep:?}"
    );
    let rep = gc(&ipam, &liveness, &mut state, &opts).await?;
    assert_eq!(rep.blocks_removed.len(), blocks_before - 1, "{rep:?}");
    let blocks = ipam.stores().blocks.list(&Filter::all()).await?.items;
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].spec.affinity_node(), Some("n1"));
    let r = check(ipam.stores(), Some(&liveness)).await?;
    assert!(r.is_clean(), "{}", format_report(&r));
    Ok(())
}
