//! Garbage collection (CALICO-FACTS.md "IPAM algorithm" step 6), run by one elected node
//! agent: allocations whose pod is gone are released after a grace period (Calico: 15
//! minutes); a deleted node's allocations, tunnel addresses and affinities are released at
//! once; empty blocks are released after being seen empty on two runs, keeping one block
//! per node.
//!
//! [`plan`] is pure (snapshot + live set + previous state + now → what to release);
//! [`gc`] loads, plans and executes with compare-and-swap writes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use tortie_crds::{AffinityState, IpamBlock, Pod, WorkloadEndpoint};
use tortie_datastore::{Filter, ObjectKey, Store};

use crate::block;
use crate::check::Snapshot;
use crate::error::{IpamError, Result};
use crate::ipam::{IPIP_HANDLE_PREFIX, Ipam, VXLAN_HANDLE_PREFIX};
use crate::stores::Stores;

/// Where "the pod exists" comes from: WorkloadEndpoints on etcd, Pods on Kubernetes.
#[async_trait]
pub trait Liveness: Send + Sync {
    /// Every `(namespace, pod)` that exists now.
    async fn live_pods(&self) -> Result<BTreeSet<(String, String)>>;
}

/// Pods exist while their WorkloadEndpoint does (the etcd datastore).
pub struct WorkloadEndpointLiveness(pub Arc<dyn Store<WorkloadEndpoint>>);

#[async_trait]
impl Liveness for WorkloadEndpointLiveness {
    async fn live_pods(&self) -> Result<BTreeSet<(String, String)>> {
        let l = self.0.list(&Filter::all()).await?;
        Ok(l.items
            .into_iter()
            .filter_map(|w| Some((w.metadata.namespace?, w.spec.pod)))
            .collect())
    }
}

/// Pods exist while the Kubernetes Pod does.
pub struct PodLiveness(pub Arc<dyn Store<Pod>>);

#[async_trait]
impl Liveness for PodLiveness {
    async fn live_pods(&self) -> Result<BTreeSet<(String, String)>> {
        let l = self.0.list(&Filter::all()).await?;
        Ok(l.items
            .into_iter()
            .filter_map(|p| Some((p.metadata.namespace?, p.metadata.name?)))
            .collect())
    }
}

/// A fixed set of live pods (tests, replays).
#[async_trait]
impl Liveness for BTreeSet<(String, String)> {
    async fn live_pods(&self) -> Result<BTreeSet<(String, String)>> {
        Ok(self.clone())
    }
}

/// What exists now: pods and nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveSet {
    /// `(namespace, pod)`.
    pub pods: BTreeSet<(String, String)>,
    /// TortieNode names.
    pub nodes: BTreeSet<String>,
}

impl LiveSet {
    /// Reads the live pods from `liveness` and the nodes from `stores`.
    pub async fn load(stores: &Stores, liveness: &dyn Liveness) -> Result<LiveSet> {
        let pods = liveness.live_pods().await?;
        let nodes = stores
            .nodes
            .list(&Filter::all())
            .await?
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        Ok(LiveSet { pods, nodes })
    }
}

/// What GC remembers between runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcState {
    /// Allocations `(address, sequence number)` whose pod was missing, since when.
    pub suspects: BTreeMap<(IpAddr, u64), DateTime<Utc>>,
    /// Blocks seen empty on the previous run.
    pub empty_seen: BTreeSet<IpNetwork>,
}

/// GC options.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// How long an allocation's pod must be missing before it is released.
    pub grace: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: Duration::from_secs(15 * 60),
        }
    }
}

/// What one run decided (pure output of [`plan`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcPlan {
    /// Allocations of gone pods past the grace period: `(address, seq)`.
    pub leaks: Vec<(IpAddr, u64)>,
    /// Allocations of deleted nodes: `(address, seq)`.
    pub node_gone: Vec<(IpAddr, u64)>,
    /// Affinities of deleted nodes: `(node, block)`.
    pub orphan_affinities: Vec<(String, IpNetwork)>,
    /// Empty blocks to release: `(block, its version when seen empty)`.
    pub empty_blocks: Vec<(IpNetwork, Option<String>)>,
    /// The state for the next run.
    pub next: GcState,
}

fn tunnel_node(handle: &str) -> Option<&str> {
    handle
        .strip_prefix(IPIP_HANDLE_PREFIX)
        .or_else(|| handle.strip_prefix(VXLAN_HANDLE_PREFIX))
}

/// Decides what to release. Pure.
pub fn plan(
    snap: &Snapshot,
    live: &LiveSet,
    prev: &GcState,
    now: DateTime<Utc>,
    grace: Duration,
) -> GcPlan {
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let mut p = GcPlan::default();
    for b in &snap.blocks {
        for a in block::allocations(&b.spec) {
            let Some(seq) = a.seq else { continue };
            let attr = a.attr;
            let sec = attr.and_then(|x| x.secondary.as_ref());
            let node = sec.and_then(|s| s.node.as_deref()).or_else(|| {
                attr.and_then(|x| x.handle_id.as_deref())
                    .and_then(tunnel_node)
            });
            if let Some(n) = node
                && !live.nodes.contains(n)
            {
                p.node_gone.push((a.ip, seq));
                continue;
            }
            let (Some(ns), Some(pod)) = (
                sec.and_then(|s| s.namespace.clone()),
                sec.and_then(|s| s.pod.clone()),
            ) else {
                continue;
            };
            if live.pods.contains(&(ns, pod)) {
                continue;
            }
            let since = prev.suspects.get(&(a.ip, seq)).copied().unwrap_or(now);
            if now - since >= grace {
                p.leaks.push((a.ip, seq));
            } else {
                p.next.suspects.insert((a.ip, seq), since);
            }
        }
    }
    let mut orphans = BTreeSet::new();
    for a in &snap.affinities {
        if !live.nodes.contains(&a.spec.node) {
            orphans.insert((a.spec.node.clone(), a.spec.cidr));
        }
    }
    for b in &snap.blocks {
        if let Some(n) = b.spec.affinity_node()
            && !live.nodes.contains(n)
        {
            orphans.insert((n.to_string(), b.spec.cidr));
        }
    }
    p.orphan_affinities = orphans.into_iter().collect();
    // Empty blocks of live nodes, seen empty twice; keep one block per node.
    let mut per_node: BTreeMap<&str, Vec<&IpamBlock>> = BTreeMap::new();
    for b in &snap.blocks {
        if let Some(n) = b.spec.affinity_node()
            && live.nodes.contains(n)
        {
            per_node.entry(n).or_default().push(b);
        }
        if block::is_empty(&b.spec) {
            p.next.empty_seen.insert(b.spec.cidr);
        }
    }
    for blocks in per_node.values() {
        let mut keep = blocks.len();
        for b in blocks {
            if keep <= 1 {
                break;
            }
            if block::is_empty(&b.spec) && prev.empty_seen.contains(&b.spec.cidr) {
                p.empty_blocks
                    .push((b.spec.cidr, b.metadata.resource_version.clone()));
                keep -= 1;
            }
        }
    }
    p
}

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Addresses of gone pods released.
    pub leaks_released: Vec<IpAddr>,
    /// Addresses of deleted nodes released.
    pub node_addresses_released: Vec<IpAddr>,
    /// Affinities of deleted nodes removed.
    pub affinities_removed: Vec<String>,
    /// Blocks removed (empty ones, and deleted nodes' emptied ones).
    pub blocks_removed: Vec<IpNetwork>,
}

/// One GC run over `ipam`'s datastore. `state` carries what was seen to the next run.
pub async fn gc(
    ipam: &Ipam,
    liveness: &dyn Liveness,
    state: &mut GcState,
    opts: &GcOptions,
) -> Result<GcReport> {
    let stores = ipam.stores();
    let snap = Snapshot::load(stores).await?;
    let live = LiveSet::load(stores, liveness).await?;
    let plan = plan(&snap, &live, state, ipam.now(), opts.grace);
    let mut rep = GcReport::default();
    if !plan.leaks.is_empty() {
        let ips: Vec<_> = plan.leaks.iter().map(|(ip, s)| (*ip, Some(*s))).collect();
        rep.leaks_released = ipam.release_ips(&ips).await?.released;
    }
    if !plan.node_gone.is_empty() {
        let ips: Vec<_> = plan
            .node_gone
            .iter()
            .map(|(ip, s)| (*ip, Some(*s)))
            .collect();
        rep.node_addresses_released = ipam.release_ips(&ips).await?.released;
    }
    for (node, cidr) in &plan.orphan_affinities {
        if ipam.release_orphan_block(node, cidr).await? {
            rep.blocks_removed.push(*cidr);
        }
        rep.affinities_removed
            .push(tortie_crds::BlockAffinity::name_for(node, cidr));
    }
    for (cidr, version) in &plan.empty_blocks {
        if let (Some(node), Some(v)) = (
            snap.blocks
                .iter()
                .find(|b| b.spec.cidr == *cidr)
                .and_then(|b| b.spec.affinity_node()),
            version,
        ) && ipam.release_empty_block(node, cidr, v).await?
        {
            rep.blocks_removed.push(*cidr);
        }
    }
    *state = plan.next;
    Ok(rep)
}

impl Ipam {
    /// A deleted node's affinity for `cidr`: delete the block when empty (else leave it
    /// without affinity, holding other nodes' borrowed addresses), then the affinity.
    /// True when the block was deleted.
    async fn release_orphan_block(&self, node: &str, cidr: &IpNetwork) -> Result<bool> {
        let key = ObjectKey::cluster(IpamBlock::name_for(cidr));
        let mut deleted = false;
        for attempt in 0..=self.opts.max_retries {
            if attempt == self.opts.max_retries {
                return Err(self.conflicts(format!("release block {cidr} of deleted node {node}")));
            }
            let Some(mut b) = self.stores.blocks.get(&key).await? else {
                break;
            };
            if b.spec.affinity_node() != Some(node) {
                break;
            }
            let r = if block::is_empty(&b.spec) {
                self.stores
                    .blocks
                    .delete(&key, b.metadata.resource_version.as_deref())
                    .await
            } else {
                b.spec.affinity = None;
                self.stores.blocks.update(&b).await.map(|_| ())
            };
            match r {
                Ok(()) => {
                    deleted = block::is_empty(&b.spec);
                    break;
                }
                Err(e) if e.is_conflict() => continue,
                Err(e) if e.is_not_found() => break,
                Err(e) => return Err(e.into()),
            }
        }
        self.drop_affinity(node, cidr, None).await?;
        Ok(deleted)
    }

    /// Releases `node`'s empty block `cidr` if it is still at `version`: affinity to
    /// pendingDeletion (the node stops using it), CAS-delete the block, delete the
    /// affinity; if the block changed, the affinity goes back to confirmed.
    async fn release_empty_block(
        &self,
        node: &str,
        cidr: &IpNetwork,
        version: &str,
    ) -> Result<bool> {
        self.set_affinity_state(node, cidr, AffinityState::PendingDeletion)
            .await?;
        let key = ObjectKey::cluster(IpamBlock::name_for(cidr));
        match self.stores.blocks.delete(&key, Some(version)).await {
            Ok(()) => {
                self.drop_affinity(node, cidr, None).await?;
                Ok(true)
            }
            Err(e) if e.is_conflict() => {
                self.set_affinity_state(node, cidr, AffinityState::Confirmed)
                    .await?;
                Ok(false)
            }
            Err(e) if e.is_not_found() => {
                self.drop_affinity(node, cidr, None).await?;
                Ok(false)
            }
            Err(e) => Err(IpamError::from(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_crds::{AllocationAttribute, AllocationSecondary, IpamBlockSpec};

    fn snap_with(node: &str, pod: &str) -> (Snapshot, IpAddr, u64) {
        let mut spec = IpamBlockSpec::empty("10.0.0.0/30".parse().unwrap(), Some(node));
        let attr = AllocationAttribute {
            handle_id: Some(format!("k8s-pod-network.{pod}")),
            secondary: Some(AllocationSecondary {
                namespace: Some("ns".into()),
                pod: Some(pod.into()),
                node: Some(node.into()),
                ..Default::default()
            }),
        };
        let a = block::assign(&mut spec, 1, &attr).unwrap().remove(0);
        let snap = Snapshot {
            blocks: vec![IpamBlock::new("b", spec)],
            ..Snapshot::default()
        };
        (snap, a.ip, a.seq)
    }

    #[test]
    fn dead_pod_waits_for_grace_live_pod_never() {
        let (snap, ip, seq) = snap_with("n1", "p");
        let mut live = LiveSet {
            nodes: ["n1".to_string()].into(),
            ..LiveSet::default()
        };
        let t0 = Utc::now();
        let grace = Duration::from_secs(900);
        let p1 = plan(&snap, &live, &GcState::default(), t0, grace);
        assert!(p1.leaks.is_empty());
        assert_eq!(p1.next.suspects.get(&(ip, seq)), Some(&t0));
        let p2 = plan(
            &snap,
            &live,
            &p1.next,
            t0 + chrono::Duration::minutes(15),
            grace,
        );
        assert_eq!(p2.leaks, vec![(ip, seq)]);
        // The pod came back: forgotten, never released.
        live.pods.insert(("ns".into(), "p".into()));
        let p3 = plan(
            &snap,
            &live,
            &p1.next,
            t0 + chrono::Duration::hours(1),
            grace,
        );
        assert!(p3.leaks.is_empty() && p3.next.suspects.is_empty());
    }

    #[test]
    fn deleted_node_is_released_at_once() {
        let (snap, ip, seq) = snap_with("gone", "p");
        let p = plan(
            &snap,
            &LiveSet::default(),
            &GcState::default(),
            Utc::now(),
            Duration::from_secs(900),
        );
        assert_eq!(p.node_gone, vec![(ip, seq)]);
        assert_eq!(p.orphan_affinities.len(), 1);
        assert!(p.leaks.is_empty());
    }
}
