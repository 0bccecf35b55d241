//! [`Ipam`]: address assignment over the datastore, as Calico does it (CALICO-FACTS.md
//! "IPAM algorithm"): pools by nodeSelector/use/family, the node's confirmed affine blocks
//! first, then the node's own pending claims, then new blocks claimed with the
//! pending → confirmed affinity protocol (see [`crate::claim`]), then reclaimed empty blocks
//! of other nodes, then (unless `strictAffinity`) borrowing. Every write is compare-and-swap
//! with bounded retries. Handle bookkeeping lives in [`crate::handles`], release in
//! [`crate::release`].
//!
//! A thin driver: the decisions over one block are [`crate::block`]'s, the pool choice and
//! walk are [`crate::pools`]'.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use tortie_crds::{
    AffinityState, AllocationAttribute, AllocationSecondary, AllowedUse, BlockAffinity, IpPool,
    IpamBlock, IpamConfigSpec,
};
use tortie_datastore::{Filter, ObjectKey};

use crate::block;
use crate::error::{IpamError, Result};
use crate::pools::{self, BlockWalk};
use crate::stores::Stores;

/// The clock IPAM reads (injectable for tests).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// A failpoint hook: called with the failpoint's name; returning `true` stops the
/// operation with [`IpamError::Failpoint`]. A crash test's hook blocks instead.
pub type Failpoint = Arc<dyn Fn(&'static str) -> bool + Send + Sync>;

/// The failpoint between the pending-affinity write and the block creation.
pub const FP_CLAIM_AFTER_PENDING: &str = "claim-after-pending";

/// Annotation on a block: when it last became empty (RFC 3339). Drives the reclaim of
/// other nodes' empty blocks after [`IpamOptions::reclaim_min_age`].
pub const EMPTY_SINCE: &str = "ipam.tortie.dev/empty-since";

/// Prefix of a node's IPIP tunnel address handle (followed by the node name).
pub(crate) const IPIP_HANDLE_PREFIX: &str = "ipip-tunnel-addr-";
/// Prefix of a node's VXLAN tunnel address handle (followed by the node name).
pub(crate) const VXLAN_HANDLE_PREFIX: &str = "vxlan-tunnel-addr-";

/// Handle of a node's IPIP tunnel address.
pub fn ipip_handle(node: &str) -> String {
    format!("{IPIP_HANDLE_PREFIX}{node}")
}

/// Handle of a node's VXLAN tunnel address.
pub fn vxlan_handle(node: &str) -> String {
    format!("{VXLAN_HANDLE_PREFIX}{node}")
}

/// Handle of a pod's addresses.
pub fn pod_handle(container_id: &str) -> String {
    format!("k8s-pod-network.{container_id}")
}

/// Tunning knobs.
#[derive(Clone, Debug)]
pub struct IpamOptions {
    /// Attempts of every compare-and-swap loop (Calico: 100).
    pub max_retries: usize,
    /// How long another node's block must have been empty before it may be reclaimed.
    pub reclaim_min_age: Duration,
}

impl Default for IpamOptions {
    fn default() -> Self {
        IpamOptions {
            max_retries: 100,
            reclaim_min_age: Duration::from_secs(60),
        }
    }
}

/// Who asks for an address (the secondary attributes stored with it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attrs {
    /// Pod namespace.
    pub namespace: Option<String>,
    /// Pod name.
    pub pod: Option<String>,
    /// Non-pod kind (`ipipTunnelAddress`, `vxlanTunnelAddress`).
    pub kind: Option<String>,
}

/// Arguments of [`Ipam::auto_assign`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignArgs {
    /// The handle the addresses belong to (`k8s-pod-network.<containerID>`).
    pub handle: String,
    /// IPv4 addresses wanted.
    pub num_v4: usize,
    /// IPv6 addresses wanted.
    pub num_v6: usize,
    /// The node asking.
    pub node: String,
    /// Who holds them.
    pub attrs: Attrs,
    /// What for (pools must allow it).
    pub use_: AllowedUse,
}

/// One address handed out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignedIp {
    /// The address.
    pub ip: IpAddr,
    /// Its block.
    pub block: IpNetwork,
    /// The sequence number to quote when releasing it.
    pub seq: u64,
}

/// Result of [`Ipam::auto_assign`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assigned {
    /// IPv4 addresses.
    pub v4: Vec<AssignedIp>,
    /// IPv6 addresses.
    pub v6: Vec<AssignedIp>,
}

/// Which tunnel a tunnel address is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TunnelKind {
    /// `tunl0`, handle `ipip-tunnel-addr-<node>`, from pools with IPIP enabled.
    Ipip,
    /// `vxlan.calico`, handle `vxlan-tunnel-addr-<node>`, from pools with VXLAN enabled.
    Vxlan,
}

impl TunnelKind {
    /// The IPAM handle of `node`'s tunnel address of this kind (Calico's names).
    pub fn handle(self, node: &str) -> String {
        match self {
            TunnelKind::Ipip => ipip_handle(node),
            TunnelKind::Vxlan => vxlan_handle(node),
        }
    }

    /// The allocation's `type` attribute (Calico's `ipipTunnelAddress`, ...).
    pub fn attr(self) -> &'static str {
        match self {
            TunnelKind::Ipip => "ipipTunnelAddress",
            TunnelKind::Vxlan => "vxlanTunnelAddress",
        }
    }
}

/// How an allocation in a block is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode<'a> {
    /// From a block affine to this node.
    Affine(&'a str),
    /// From any block that allows borrowing.
    Borrow,
}

/// IPAM over a datastore. Cheap to clone; one per process (or per simulated node).
#[derive(Clone)]
pub struct Ipam {
    pub(crate) stores: Stores,
    pub(crate) clock: Clock,
    pub(crate) failpoint: Option<Failpoint>,
    pub(crate) opts: IpamOptions,
}

impl std::fmt::Debug for Ipam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ipam")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Ipam {
    /// IPAM over `stores` with the system clock and default options.
    pub fn new(stores: Stores) -> Self {
        Ipam {
            stores,
            clock: Arc::new(Utc::now),
            failpoint: None,
            opts: IpamOptions::default(),
        }
    }

    /// Replaces the clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Installs a failpoint hook.
    pub fn with_failpoint(mut self, fp: Failpoint) -> Self {
        self.failpoint = Some(fp);
        self
    }

    /// Replaces the options.
    pub fn with_options(mut self, opts: IpamOptions) -> Self {
        self.opts = opts;
        self
    }

    /// The stores.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    pub(crate) fn hit(&self, name: &'static str) -> Result<()> {
        match &self.failpoint {
            Some(fp) if fp(name) => Err(IpamError::Failpoint { name }),
            _ => Ok(()),
        }
    }

    pub(crate) fn conflicts(&self, what: impl Into<String>) -> IpamError {
        IpamError::TooManyConflicts {
            what: what.into(),
            attempts: self.opts.max_retries,
        }
    }

    /// The IPAMConfig `default` (Calico's defaults when absent).
    pub async fn config(&self) -> Result<IpamConfigSpec> {
        let c = self
            .stores
            .config
            .get(&ObjectKey::cluster(tortie_crds::ipam::DEFAULT_IPAM_CONFIG))
            .await?;
        Ok(c.map(|c| c.spec).unwrap_or_default())
    }

    /// Labels of `node`'s TortieNode (`NodeNotFound` without one).
    pub async fn node_labels(&self, node: &str) -> Result<BTreeMap<String, String>> {
        let n = self
            .stores
            .nodes
            .get(&ObjectKey::cluster(node))
            .await?
            .ok_or_else(|| IpamError::NodeNotFound { node: node.into() })?;
        Ok(n.metadata.labels.unwrap_or_default())
    }

    pub(crate) async fn all_pools(&self) -> Result<Vec<IpPool>> {
        Ok(self.stores.pools.list(&Filter::all()).await?.items)
    }

    /// The affinities of `node` (every state), in name order.
    pub(crate) async fn node_affinities(&self, node: &str) -> Result<Vec<BlockAffinity>> {
        let all = self.stores.affinities.list(&Filter::all()).await?.items;
        Ok(all
            .into_iter()
            .filter(|a| a.spec.node == node && !a.spec.deleted)
            .collect())
    }

    fn attribute(&self, handle: &str, node: &str, attrs: &Attrs) -> AllocationAttribute {
        AllocationAttribute {
            handle_id: Some(handle.to_string()),
            secondary: Some(AllocationSecondary {
                namespace: attrs.namespace.clone(),
                node: Some(node.to_string()),
                pod: attrs.pod.clone(),
                timestamp: Some(self.now().to_rfc3339()),
                kind: attrs.kind.clone(),
            }),
        }
    }

    /// Assigns `num_v4` IPv4 and `num_v6` IPv6 addresses to `handle` for `node`. All or
    /// nothing: when either family falls short, what this call assigned is released again
    /// and the error ([`IpamError::PoolExhausted`], naming the pools) is returned.
    pub async fn auto_assign(&self, args: &AssignArgs) -> Result<Assigned> {
        let labels = self.node_labels(&args.node).await?;
        let all = self.all_pools().await?;
        let attr = self.attribute(&args.handle, &args.node, &args.attrs);
        let mut out = Assigned::default();
        for (family, n) in [(4u8, args.num_v4), (6u8, args.num_v6)] {
            if n == 0 {
                continue;
            }
            let chosen = pools::select_pools(&all, &labels, args.use_, family)?;
            if chosen.is_empty() {
                self.rollback(&out).await;
                return Err(IpamError::NoMatchingPool {
                    node: args.node.clone(),
                    use_: format!("{:?}", args.use_),
                    family,
                });
            }
            let acc = if family == 4 {
                &mut out.v4
            } else {
                &mut out.v6
            };
            let r = self
                .assign_family(&args.node, &args.handle, n, &chosen, &attr, acc)
                .await;
            if let Err(e) = r {
                self.rollback(&out).await;
                return Err(e);
            }
        }
        Ok(out)
    }

    async fn rollback(&self, got: &Assigned) {
        let ips: Vec<(IpAddr, Option<u64>)> = got
            .v4
            .iter()
            .chain(&got.v6)
            .map(|a| (a.ip, Some(a.seq)))
            .collect();
        if ips.is_empty() {
            return;
        }
        if let Err(e) = self.release_ips(&ips).await {
            tracing::warn!(error = %e, "ipam: rollback of a failed assignment failed");
        }
    }

    /// Fills `acc` up to `n` addresses from `chosen` pools of one family for `node`.
    pub(crate) async fn assign_family(
        &self,
        node: &str,
        handle: &str,
        n: usize,
        chosen: &[&IpPool],
        attr: &AllocationAttribute,
        acc: &mut Vec<AssignedIp>,
    ) -> Result<()> {
        let in_pools = |c: &IpNetwork| chosen.iter().any(|p| p.spec.cidr.contains(c.ip()));
        let start = acc.len();
        let want = |acc: &Vec<AssignedIp>| n - (acc.len() - start);
        let affs = self.node_affinities(node).await?;
        // 1. Confirmed affine blocks.
        for a in affs
            .iter()
            .filter(|a| a.spec.state == AffinityState::Confirmed)
        {
            if want(acc) == 0 {
                return Ok(());
            }
            if in_pools(&a.spec.cidr) {
                let got = self
                    .assign_from_block(&a.spec.cidr, want(acc), handle, attr, Mode::Affine(node))
                    .await?;
                acc.extend(got);
            }
        }
        if want(acc) == 0 {
            return Ok(());
        }
        let config = self.config().await?;
        // 2. Our own pending claims (a crashed or concurrent claim): finish or drop them.
        for a in affs
            .iter()
            .filter(|a| a.spec.state == AffinityState::Pending)
        {
            if want(acc) == 0 {
                return Ok(());
            }
            if in_pools(&a.spec.cidr) && self.finish_claim(node, &a.spec.cidr).await? {
                let got = self
                    .assign_from_block(&a.spec.cidr, want(acc), handle, attr, Mode::Affine(node))
                    .await?;
                acc.extend(got);
            }
        }
        // 3. New blocks (and reclaimed empty ones), up to the block cap.
        if config.auto_allocate_blocks {
            let family = chosen
                .first()
                .map(|p| pools::family_of_net(&p.spec.cidr))
                .unwrap_or(4);
            let mut held = affs
                .iter()
                .filter(|a| pools::family_of_net(&a.spec.cidr) == family)
                .filter(|a| a.spec.state != AffinityState::PendingDeletion)
                .count();
            while want(acc) > 0 {
                let cap = config.max_blocks_per_host as usize;
                if cap > 0 && held >= cap {
                    break;
                }
                let Some(cidr) = self.claim_block(node, chosen).await? else {
                    break;
                };
                held += 1;
                let got = self
                    .assign_from_block(&cidr, want(acc), handle, attr, Mode::Affine(node))
                    .await?;
                acc.extend(got);
            }
        }
        // 4. Borrow from any block with room.
        if want(acc) > 0 && !config.strict_affinity {
            let blocks = self.stores.blocks.list(&Filter::all()).await?.items;
            for b in blocks {
                if want(acc) == 0 {
                    break;
                }
                if !in_pools(&b.spec.cidr)
                    || b.spec.deleted
                    || b.spec.strict_affinity
                    || block::free(&b.spec) == 0
                {
                    continue;
                }
                let got = self
                    .assign_from_block(&b.spec.cidr, want(acc), handle, attr, Mode::Borrow)
                    .await?;
                acc.extend(got);
            }
        }
        if want(acc) > 0 {
            return Err(IpamError::PoolExhausted {
                pools: chosen.iter().map(|p| pools::pool_name(p)).collect(),
                node: node.to_string(),
                family: chosen
                    .first()
                    .map(|p| pools::family_of_net(&p.spec.cidr))
                    .unwrap_or(4),
                wanted: n,
                got: acc.len() - start,
            });
        }
        Ok(())
    }

    /// Takes up to `n` addresses from block `cidr` for `handle` (CAS loop). Handle first,
    /// then the block; a lost block write takes the handle count back. Returns what it
    /// got (nothing when the block is gone, full, deleted, or not usable in `mode`).
    pub(crate) async fn assign_from_block(
        &self,
        cidr: &IpNetwork,
        n: usize,
        handle: &str,
        attr: &AllocationAttribute,
        mode: Mode<'_>,
    ) -> Result<Vec<AssignedIp>> {
        let key = ObjectKey::cluster(IpamBlock::name_for(cidr));
        for _ in 0..self.opts.max_retries {
            let Some(mut blk) = self.stores.blocks.get(&key).await? else {
                if let Mode::Affine(node) = mode {
                    // A confirmed affinity whose block is gone (a crash mid-release):
                    // drop it so it is neither routed nor counted against the cap.
                    self.drop_affinity(node, cidr, Some(AffinityState::Confirmed))
                        .await?;
                }
                return Ok(Vec::new());
            };
            match mode {
                Mode::Affine(node) if blk.spec.affinity_node() != Some(node) => {
                    // The block moved to another node (reclaim interrupted by a crash).
                    self.drop_affinity(node, cidr, Some(AffinityState::Confirmed))
                        .await?;
                    return Ok(Vec::new());
                }
                Mode::Borrow if blk.spec.strict_affinity => return Ok(Vec::new()),
                _ => {}
            }
            let got = block::assign(&mut blk.spec, n, attr)?;
            if got.is_empty() {
                return Ok(Vec::new());
            }
            set_empty_since(&mut blk, None);
            self.handle_add(handle, cidr, got.len() as i64).await?;
            match self.stores.blocks.update(&blk).await {
                Ok(_) => {
                    return Ok(got
                        .into_iter()
                        .map(|a| AssignedIp {
                            ip: a.ip,
                            block: *cidr,
                            seq: a.seq,
                        })
                        .collect());
                }
                Err(e) => {
                    self.handle_add(handle, cidr, -(got.len() as i64)).await?;
                    if e.is_not_found() {
                        return Ok(Vec::new());
                    }
                    if !e.is_conflict() {
                        return Err(e.into());
                    }
                }
            }
        }
        Err(self.conflicts(format!("assign from block {cidr}")))
    }

    /// Claims a block of one of `chosen` pools for `node`: a free CIDR in the node's walk
    /// order, else another node's block that has been empty for the minimum age. `None`
    /// when every block of every pool is taken.
    pub(crate) async fn claim_block(
        &self,
        node: &str,
        chosen: &[&IpPool],
    ) -> Result<Option<IpNetwork>> {
        let blocks = self.stores.blocks.list(&Filter::all()).await?.items;
        let existing: std::collections::HashSet<IpNetwork> =
            blocks.iter().map(|b| b.spec.cidr).collect();
        for p in chosen {
            for cidr in BlockWalk::new(p.spec.cidr, p.spec.block_size(), node) {
                if existing.contains(&cidr) {
                    continue;
                }
                if self.claim_cidr(node, &cidr).await? {
                    return Ok(Some(cidr));
                }
            }
        }
        let now = self.now();
        let min_age =
            chrono::Duration::from_std(self.opts.reclaim_min_age).unwrap_or(chrono::Duration::MAX);
        for p in chosen {
            for b in blocks
                .iter()
                .filter(|b| p.spec.cidr.contains(b.spec.cidr.ip()))
            {
                let other = b.spec.affinity_node().is_some_and(|n| n != node);
                let old = empty_since(b).is_some_and(|t| now - t >= min_age);
                if other
                    && old
                    && !b.spec.deleted
                    && block::is_empty(&b.spec)
                    && self.reclaim(node, b).await?
                {
                    return Ok(Some(b.spec.cidr));
                }
            }
        }
        Ok(None)
    }

    /// Assigns the specific address `ip` to `handle` on `node`; creates (claims) its
    /// block for `node` when the block does not exist yet.
    pub async fn assign_ip(
        &self,
        ip: IpAddr,
        handle: &str,
        attrs: &Attrs,
        node: &str,
    ) -> Result<AssignedIp> {
        let labels = self.node_labels(node).await?;
        let all = self.all_pools().await?;
        let pool = pools::pool_of(&all, ip).ok_or(IpamError::NotInPool { ip })?;
        if let Some(reason) = pools::unusable_reason(pool, &labels, AllowedUse::Workload)? {
            return Err(IpamError::PoolNotUsable {
                ip,
                pool: pools::pool_name(pool),
                node: node.into(),
                reason,
            });
        }
        let cidr = pools::block_of(pool, ip).ok_or(IpamError::NotInPool { ip })?;
        let key = ObjectKey::cluster(IpamBlock::name_for(&cidr));
        let attr = self.attribute(handle, node, attrs);
        for _ in 0..self.opts.max_retries {
            let Some(mut blk) = self.stores.blocks.get(&key).await? else {
                self.claim_cidr(node, &cidr).await?;
                continue;
            };
            let a = block::assign_specific(&mut blk.spec, ip, &attr)?;
            set_empty_since(&mut blk, None);
            self.handle_add(handle, &cidr, 1).await?;
            match self.stores.blocks.update(&blk).await {
                Ok(_) => {
                    return Ok(AssignedIp {
                        ip,
                        block: cidr,
                        seq: a.seq,
                    });
                }
                Err(e) => {
                    self.handle_add(handle, &cidr, -1).await?;
                    if !e.is_conflict() && !e.is_not_found() {
                        return Err(e.into());
                    }
                }
            }
        }
        Err(self.conflicts(format!("assign {ip}")))
    }

    /// The tunnel address of `node` for `kind`: the one its handle already holds, else a
    /// new IPv4 address from a pool with that encapsulation enabled that allows `Tunnel`.
    pub async fn assign_tunnel_addr(&self, node: &str, kind: TunnelKind) -> Result<IpAddr> {
        let (handle, kind_attr) = (kind.handle(node), kind.attr());
        if let Some(ip) = self.addresses_of(&handle).await?.into_iter().next() {
            return Ok(ip);
        }
        let labels = self.node_labels(node).await?;
        let all = self.all_pools().await?;
        let chosen: Vec<&IpPool> = pools::select_pools(&all, &labels, AllowedUse::Tunnel, 4)?
            .into_iter()
            .filter(|p| match kind {
                TunnelKind::Ipip => p.spec.ipip_mode.enabled(),
                TunnelKind::Vxlan => p.spec.vxlan_mode.enabled(),
            })
            .collect();
        if chosen.is_empty() {
            return Err(IpamError::NoMatchingPool {
                node: node.into(),
                use_: format!("{kind:?} tunnel"),
                family: 4,
            });
        }
        let attrs = Attrs {
            kind: Some(kind_attr.into()),
            ..Attrs::default()
        };
        let attr = self.attribute(&handle, node, &attrs);
        let mut acc = Vec::new();
        if let Err(e) = self
            .assign_family(node, &handle, 1, &chosen, &attr, &mut acc)
            .await
        {
            let ips: Vec<_> = acc.iter().map(|a| (a.ip, Some(a.seq))).collect();
            if !ips.is_empty() {
                self.release_ips(&ips).await?;
            }
            return Err(e);
        }
        acc.first()
            .map(|a| a.ip)
            .ok_or_else(|| IpamError::PoolExhausted {
                pools: chosen.iter().map(|p| pools::pool_name(p)).collect(),
                node: node.into(),
                family: 4,
                wanted: 1,
                got: 0,
            })
    }

    /// The addresses `handle` holds, read from the blocks its IPAMHandle names.
    pub async fn addresses_of(&self, handle: &str) -> Result<Vec<IpAddr>> {
        let Some(h) = self
            .stores
            .handles
            .get(&ObjectKey::cluster(tortie_crds::IpamHandle::name_for(
                handle,
            )))
            .await?
        else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for cidr in h.spec.block.keys() {
            let Ok(c) = cidr.parse::<IpNetwork>() else {
                continue;
            };
            if let Some(b) = self
                .stores
                .blocks
                .get(&ObjectKey::cluster(IpamBlock::name_for(&c)))
                .await?
            {
                out.extend(
                    block::allocations(&b.spec)
                        .filter(|a| a.attr.and_then(|x| x.handle_id.as_deref()) == Some(handle))
                        .map(|a| a.ip),
                );
            }
        }
        Ok(out)
    }
}

/// When the block last became empty, from its annotation.
pub fn empty_since(b: &IpamBlock) -> Option<DateTime<Utc>> {
    b.metadata
        .annotations
        .as_ref()?
        .get(EMPTY_SINCE)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Sets (Some) or clears (None) the block's empty-since annotation.
pub(crate) fn set_empty_since(b: &mut IpamBlock, at: Option<DateTime<Utc>>) {
    let ann = b.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match at {
        Some(t) => {
            ann.insert(EMPTY_SINCE.into(), t.to_rfc3339());
        }
        None => {
            ann.remove(EMPTY_SINCE);
        }
    }
    if ann.is_empty() {
        b.metadata.annotations = None;
    }
}
