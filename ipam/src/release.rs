//! Release: by address (with an optional sequence number, so a stale release cannot free
//! a re-assigned address) and by handle. Blocks first (CAS), then the handle counts.
//! A block left empty gets its empty-since mark (see [`crate::ipam::EMPTY_SINCE`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use tortie_crds::{IpamBlock, IpamHandle};
use tortie_datastore::{Filter, ObjectKey};

use crate::block;
use crate::error::{IpamError, Result};
use crate::ipam::{Ipam, set_empty_since};
use crate::pools;

/// What [`Ipam::release_ips`] did with each address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseReport {
    /// Freed.
    pub released: Vec<IpAddr>,
    /// Not freed: the sequence number given is stale (the address was re-assigned).
    pub stale: Vec<IpAddr>,
    /// Not assigned (or in no block).
    pub not_assigned: Vec<IpAddr>,
}

impl Ipam {
    /// Releases addresses, each with the sequence number it was assigned with (or `None`
    /// to release whatever holds it).
    pub async fn release_ips(&self, ips: &[(IpAddr, Option<u64>)]) -> Result<ReleaseReport> {
        let mut report = ReleaseReport::default();
        let all = self.all_pools().await?;
        let mut by_block: BTreeMap<IpNetwork, Vec<(IpAddr, Option<u64>)>> = BTreeMap::new();
        let mut blocks_cache: Option<Vec<IpamBlock>> = None;
        for (ip, seq) in ips {
            let cidr = match pools::pool_of(&all, *ip).and_then(|p| pools::block_of(p, *ip)) {
                Some(c) => Some(c),
                None => {
                    if blocks_cache.is_none() {
                        blocks_cache = Some(self.stores.blocks.list(&Filter::all()).await?.items);
                    }
                    blocks_cache
                        .iter()
                        .flatten()
                        .find(|b| b.spec.cidr.contains(*ip))
                        .map(|b| b.spec.cidr)
                }
            };
            match cidr {
                Some(c) => by_block.entry(c).or_default().push((*ip, *seq)),
                None => report.not_assigned.push(*ip),
            }
        }
        for (cidr, items) in by_block {
            self.release_in_block(&cidr, &items, &mut report).await?;
        }
        Ok(report)
    }

    async fn release_in_block(
        &self,
        cidr: &IpNetwork,
        items: &[(IpAddr, Option<u64>)],
        report: &mut ReleaseReport,
    ) -> Result<()> {
        let key = ObjectKey::cluster(IpamBlock::name_for(cidr));
        for _ in 0..self.opts.max_retries {
            let Some(mut blk) = self.stores.blocks.get(&key).await? else {
                report.not_assigned.extend(items.iter().map(|(ip, _)| *ip));
                return Ok(());
            };
            let mut freed: BTreeMap<String, i64> = BTreeMap::new();
            let mut released = Vec::new();
            let mut stale = Vec::new();
            let mut not_assigned = Vec::new();
            for (ip, seq) in items {
                match block::release(&mut blk.spec, *ip, *seq) {
                    Ok(f) => {
                        released.push(*ip);
                        if let Some(h) = f.handle {
                            *freed.entry(h).or_default() += 1;
                        }
                    }
                    Err(IpamError::StaleSequence { .. }) => stale.push(*ip),
                    Err(IpamError::NotAssigned { .. } | IpamError::NotInBlock { .. }) => {
                        not_assigned.push(*ip)
                    }
                    Err(e) => return Err(e),
                }
            }
            if !released.is_empty() {
                if block::is_empty(&blk.spec) {
                    set_empty_since(&mut blk, Some(self.now()));
                }
                match self.stores.blocks.update(&blk).await {
                    Ok(_) => {}
                    Err(e) if e.is_conflict() => continue,
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e.into()),
                }
                for (h, n) in &freed {
                    self.handle_add(h, cidr, -n).await?;
                }
            }
            report.released.extend(released);
            report.stale.extend(stale);
            report.not_assigned.extend(not_assigned);
            return Ok(());
        }
        Err(self.conflicts(format!("release in block {cidr}")))
    }

    /// Releases every address of `handle` and deletes the handle. Returns the addresses
    /// freed (empty when the handle does not exist: releasing twice is fine).
    pub async fn release_by_handle(&self, handle: &str) -> Result<Vec<IpAddr>> {
        let key = ObjectKey::cluster(IpamHandle::name_for(handle));
        let Some(h) = self.stores.handles.get(&key).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for cidr_s in h.spec.block.keys() {
            let Ok(cidr) = cidr_s.parse::<IpNetwork>() else {
                continue;
            };
            out.extend(self.release_handle_in_block(handle, &cidr).await?);
        }
        let mut h = Some(h);
        for _ in 0..self.opts.max_retries {
            // The first attempt deletes at the version read above (no extra read).
            let h = match h.take() {
                Some(h) => h,
                None => match self.stores.handles.get(&key).await? {
                    Some(h) => h,
                    None => return Ok(out),
                },
            };
            match self
                .stores
                .handles
                .delete(&key, h.metadata.resource_version.as_deref())
                .await
            {
                Ok(()) => return Ok(out),
                Err(e) if e.is_not_found() => return Ok(out),
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(self.conflicts(format!("delete handle {handle}")))
    }

    pub(crate) async fn release_handle_in_block(
        &self,
        handle: &str,
        cidr: &IpNetwork,
    ) -> Result<Vec<IpAddr>> {
        let key = ObjectKey::cluster(IpamBlock::name_for(cidr));
        for _ in 0..self.opts.max_retries {
            let Some(mut blk) = self.stores.blocks.get(&key).await? else {
                return Ok(Vec::new());
            };
            let freed = block::release_handle(&mut blk.spec, handle);
            if freed.is_empty() {
                return Ok(Vec::new());
            }
            if block::is_empty(&blk.spec) {
                set_empty_since(&mut blk, Some(self.now()));
            }
            match self.stores.blocks.update(&blk).await {
                Ok(_) => return Ok(freed.into_iter().map(|f| f.ip).collect()),
                Err(e) if e.is_conflict() => continue,
                Err(e) if e.is_not_found() => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            }
        }
        Err(self.conflicts(format!("release handle {handle} in block {cidr}")))
    }
}
