//! The block claim protocol (CALICO-FACTS.md "IPAM algorithm" step 3): create the
//! BlockAffinity `pending` → create the IPAMBlock with `affinity: host:<node>` → mark the
//! affinity `confirmed`. A block that already exists belongs to whoever created it: when
//! that is another node, our pending affinity is deleted again. A pending affinity left by
//! a crash is finished (or dropped) by the node's next claim ([`Ipam::finish_claim`]).
//! Reclaiming another node's empty block moves its affinity with a CAS on the block.

use ipnetwork::IpNetwork;
use tortie_crds::{AffinityState, BlockAffinity, BlockAffinitySpec, IpamBlock, IpamBlockSpec};
use tortie_datastore::ObjectKey;

use crate::error::Result;
use crate::ipam::{FP_CLAIM_AFTER_PENDING, Ipam, set_empty_since};

impl Ipam {
    /// Claims the (not yet existing) block `cidr` for `node`. True when the block is now
    /// `node`'s with a confirmed affinity; false when another node got it first.
    pub(crate) async fn claim_cidr(&self, node: &str, cidr: &IpNetwork) -> Result<bool> {
        let aff = BlockAffinity::new(
            &BlockAffinity::name_for(node, cidr),
            BlockAffinitySpec {
                state: AffinityState::Pending,
                node: node.to_string(),
                cidr: *cidr,
                deleted: false,
            },
        );
        match self.stores.affinities.create(&aff).await {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e.into()),
        }
        self.hit(FP_CLAIM_AFTER_PENDING)?;
        self.finish_claim(node, cidr).await
    }

    /// Second half of a claim whose pending affinity exists: create the block; if it
    /// exists already, confirm when it is ours, otherwise delete our affinity. True when
    /// the block is `node`'s.
    pub(crate) async fn finish_claim(&self, node: &str, cidr: &IpNetwork) -> Result<bool> {
        let mut blk = IpamBlock::new(
            &IpamBlock::name_for(cidr),
            IpamBlockSpec::empty(*cidr, Some(node)),
        );
        set_empty_since(&mut blk, Some(self.now()));
        let ours = match self.stores.blocks.create(&blk).await {
            Ok(_) => true,
            Err(e) if e.is_already_exists() => {
                let key = ObjectKey::cluster(IpamBlock::name_for(cidr));
                match self.stores.blocks.get(&key).await? {
                    Some(b) => b.spec.affinity_node() == Some(node) && !b.spec.deleted,
                    // Deleted in between (GC): try again on the next claim.
                    None => false,
                }
            }
            Err(e) => return Err(e.into()),
        };
        if ours {
            self.set_affinity_state(node, cidr, AffinityState::Confirmed)
                .await?;
        } else {
            self.drop_affinity(node, cidr, None).await?;
        }
        Ok(ours)
    }

    /// Sets the state of `node`'s affinity for `cidr` (creating it when missing).
    pub(crate) async fn set_affinity_state(
        &self,
        node: &str,
        cidr: &IpNetwork,
        state: AffinityState,
    ) -> Result<()> {
        let key = ObjectKey::cluster(BlockAffinity::name_for(node, cidr));
        for _ in 0..self.opts.max_retries {
            match self.stores.affinities.get(&key).await? {
                Some(a) if a.spec.state == state => return Ok(()),
                Some(mut a) => {
                    a.spec.state = state;
                    match self.stores.affinities.update(&a).await {
                        Ok(_) => return Ok(()),
                        Err(e) if e.is_conflict() || e.is_not_found() => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                None => {
                    let a = BlockAffinity::new(
                        &key.name,
                        BlockAffinitySpec {
                            state,
                            node: node.into(),
                            cidr: *cidr,
                            deleted: false,
                        },
                    );
                    match self.stores.affinities.create(&a).await {
                        Ok(_) => return Ok(()),
                        Err(e) if e.is_already_exists() => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Err(self.conflicts(format!("affinity {}", key.name)))
    }

    /// Deletes `node`'s affinity for `cidr` (only in `only_state`, when given); absent is
    /// fine.
    pub(crate) async fn drop_affinity(
        &self,
        node: &str,
        cidr: &IpNetwork,
        only_state: Option<AffinityState>,
    ) -> Result<()> {
        let key = ObjectKey::cluster(BlockAffinity::name_for(node, cidr));
        for _ in 0..self.opts.max_retries {
            let Some(a) = self.stores.affinities.get(&key).await? else {
                return Ok(());
            };
            if only_state.is_some_and(|s| s != a.spec.state) {
                return Ok(());
            }
            match self
                .stores
                .affinities
                .delete(&key, a.metadata.resource_version.as_deref())
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(self.conflicts(format!("delete affinity {}", key.name)))
    }

    /// Moves another node's empty block `b` to `node`: pending affinity for us, CAS the
    /// block's affinity (fails if anything changed), drop the old owner's affinity,
    /// confirm ours. True when the block is now ours.
    pub(crate) async fn reclaim(&self, node: &str, b: &IpamBlock) -> Result<bool> {
        let cidr = b.spec.cidr;
        let old = b.spec.affinity_node().map(str::to_string);
        self.set_affinity_state(node, &cidr, AffinityState::Pending)
            .await?;
        let mut nb = b.clone();
        nb.spec.affinity = Some(format!("{}{node}", tortie_crds::ipam::HOST_AFFINITY_PREFIX));
        set_empty_since(&mut nb, Some(self.now()));
        match self.stores.blocks.update(&nb).await {
            Ok(_) => {}
            Err(e) if e.is_conflict() || e.is_not_found() => {
                self.drop_affinity(node, &cidr, None).await?;
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        }
        if let Some(old) = old {
            self.drop_affinity(&old, &cidr, None).await?;
        }
        self.set_affinity_state(node, &cidr, AffinityState::Confirmed)
            .await?;
        tracing::info!(%cidr, node, "ipam: reclaimed an empty block of another node");
        Ok(true)
    }
}
