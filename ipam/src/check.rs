//! `tortiectl ipam check` and `tortiectl ipam show`: a [`Snapshot`] of the IPAM objects,
//! the consistency [`Report`] over it (addresses allocated twice, handles pointing at
//! nothing, blocks without affinity, affinities without blocks, leaked allocations,
//! internally broken blocks) and the [`Usage`] report, with their table formats.
//!
//! The analysis and formatting are pure functions of the snapshot; [`check`] and
//! [`usage`] only load it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use tortie_crds::{AffinityState, BlockAffinity, IpPool, IpamBlock, IpamHandle};
use tortie_datastore::Filter;

use crate::block;
use crate::error::Result;
use crate::gc::{LiveSet, Liveness};
use crate::pools;
use crate::stores::Stores;

/// Every IPAM object, read once.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// IPPools.
    pub pools: Vec<IpPool>,
    /// IPAMBlocks.
    pub blocks: Vec<IpamBlock>,
    /// BlockAffinities.
    pub affinities: Vec<BlockAffinity>,
    /// IPAMHandles.
    pub handles: Vec<IpamHandle>,
}

impl Snapshot {
    /// Reads everything from `stores`.
    pub async fn load(stores: &Stores) -> Result<Snapshot> {
        let f = Filter::all();
        Ok(Snapshot {
            pools: stores.pools.list(&f).await?.items,
            blocks: stores.blocks.list(&f).await?.items,
            affinities: stores.affinities.list(&f).await?.items,
            handles: stores.handles.list(&f).await?.items,
        })
    }
}

/// One finding of the check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The object or address it is about.
    pub subject: String,
    /// What is wrong.
    pub detail: String,
}

/// The consistency report; clean when every list is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Addresses allocated in more than one block.
    pub allocated_twice: Vec<Finding>,
    /// Handles whose recorded counts exceed what the blocks hold for them.
    pub dangling_handles: Vec<Finding>,
    /// Blocks with no (confirmed) affinity naming them.
    pub blocks_without_affinity: Vec<Finding>,
    /// Affinities whose block is missing or belongs to another node.
    pub affinities_without_blocks: Vec<Finding>,
    /// Allocations with no handle recording them, or (with liveness) whose pod or node
    /// is gone.
    pub leaked: Vec<Finding>,
    /// Blocks that are internally inconsistent.
    pub broken_blocks: Vec<Finding>,
    /// Addresses allocated in total.
    pub allocated: usize,
}

impl Report {
    /// True when nothing was found.
    pub fn is_clean(&self) -> bool {
        self.allocated_twice.is_empty()
            && self.dangling_handles.is_empty()
            && self.blocks_without_affinity.is_empty()
            && self.affinities_without_blocks.is_empty()
            && self.leaked.is_empty()
            && self.broken_blocks.is_empty()
    }

    fn sections(&self) -> [(&'static str, &Vec<Finding>); 6] {
        [
            ("addresses allocated twice", &self.allocated_twice),
            ("handles pointing at nothing", &self.dangling_handles),
            ("blocks without affinity", &self.blocks_without_affinity),
            ("affinities without blocks", &self.affinities_without_blocks),
            ("leaked allocations", &self.leaked),
            ("broken blocks", &self.broken_blocks),
        ]
    }
}

/// Checks `snap`; with `live`, allocations of pods or nodes that are gone count as leaked.
pub fn check_snapshot(snap: &Snapshot, live: Option<&LiveSet>) -> Report {
    let mut r = Report::default();
    let blocks: BTreeMap<IpNetwork, &IpamBlock> =
        snap.blocks.iter().map(|b| (b.spec.cidr, b)).collect();
    // Who holds each address; per (handle, block) how many the blocks hold.
    let mut holders: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
    let mut held: BTreeMap<(String, String), usize> = BTreeMap::new();
    for b in &snap.blocks {
        for p in block::problems(&b.spec) {
            r.broken_blocks.push(Finding {
                subject: format!("block {}", b.spec.cidr),
                detail: p,
            });
        }
        for a in block::allocations(&b.spec) {
            r.allocated += 1;
            let handle = a.attr.and_then(|x| x.handle_id.clone());
            holders.entry(a.ip).or_default().push(format!(
                "{} in {}",
                handle.as_deref().unwrap_or("<no handle>"),
                b.spec.cidr
            ));
            match &handle {
                Some(h) => {
                    *held
                        .entry((h.clone(), b.spec.cidr.to_string()))
                        .or_default() += 1
                }
                None => r.leaked.push(Finding {
                    subject: a.ip.to_string(),
                    detail: format!("allocated in {} without a handle", b.spec.cidr),
                }),
            }
            if let (Some(live), Some(sec)) = (live, a.attr.and_then(|x| x.secondary.as_ref())) {
                if let Some(n) = &sec.node
                    && !live.nodes.contains(n)
                {
                    r.leaked.push(Finding {
                        subject: a.ip.to_string(),
                        detail: format!("node {n} no longer exists"),
                    });
                } else if let (Some(ns), Some(pod)) = (&sec.namespace, &sec.pod)
                    && !live.pods.contains(&(ns.clone(), pod.clone()))
                {
                    r.leaked.push(Finding {
                        subject: a.ip.to_string(),
                        detail: format!("pod {ns}/{pod} no longer exists"),
                    });
                }
            }
        }
    }
    for (ip, hs) in &holders {
        if hs.len() > 1 {
            r.allocated_twice.push(Finding {
                subject: ip.to_string(),
                detail: hs.join(", "),
            });
        }
    }
    // Handles against blocks, both ways.
    let mut recorded: BTreeMap<(String, String), usize> = BTreeMap::new();
    for h in &snap.handles {
        for (cidr, n) in &h.spec.block {
            recorded.insert((h.spec.handle_id.clone(), cidr.clone()), *n);
            let actual = held
                .get(&(h.spec.handle_id.clone(), cidr.clone()))
                .copied()
                .unwrap_or(0);
            if actual < *n {
                r.dangling_handles.push(Finding {
                    subject: format!("handle {}", h.spec.handle_id),
                    detail: format!("records {n} in block {cidr}, the block holds {actual}"),
                });
            }
        }
    }
    for ((h, cidr), n) in &held {
        let rec = recorded
            .get(&(h.clone(), cidr.clone()))
            .copied()
            .unwrap_or(0);
        if rec < *n {
            r.leaked.push(Finding {
                subject: format!("handle {h}"),
                detail: format!("block {cidr} holds {n} for it, the handle records {rec}"),
            });
        }
    }
    // Blocks against affinities, both ways.
    let affs: BTreeMap<(String, IpNetwork), &BlockAffinity> = snap
        .affinities
        .iter()
        .map(|a| ((a.spec.node.clone(), a.spec.cidr), a))
        .collect();
    for b in &snap.blocks {
        let subject = format!("block {}", b.spec.cidr);
        match b.spec.affinity_node() {
            None => r.blocks_without_affinity.push(Finding {
                subject,
                detail: "no host affinity".into(),
            }),
            Some(n) => match affs.get(&(n.to_string(), b.spec.cidr)) {
                None => r.blocks_without_affinity.push(Finding {
                    subject,
                    detail: format!("affine to {n}, but no BlockAffinity"),
                }),
                Some(a) if a.spec.state != AffinityState::Confirmed => {
                    r.blocks_without_affinity.push(Finding {
                        subject,
                        detail: format!("affine to {n}, affinity is {:?}", a.spec.state),
                    })
                }
                Some(_) => {}
            },
        }
    }
    for a in &snap.affinities {
        let subject = format!(
            "affinity {}",
            BlockAffinity::name_for(&a.spec.node, &a.spec.cidr)
        );
        match blocks.get(&a.spec.cidr) {
            None => r.affinities_without_blocks.push(Finding {
                subject,
                detail: format!("{:?}, block {} does not exist", a.spec.state, a.spec.cidr),
            }),
            Some(b) if b.spec.affinity_node() != Some(a.spec.node.as_str()) => {
                r.affinities_without_blocks.push(Finding {
                    subject,
                    detail: format!(
                        "block {} is affine to {}",
                        a.spec.cidr,
                        b.spec.affinity_node().unwrap_or("nobody")
                    ),
                })
            }
            Some(_) => {}
        }
    }
    r
}

/// Loads the IPAM objects and checks them (with `liveness`, also pods/nodes gone).
pub async fn check(stores: &Stores, liveness: Option<&dyn Liveness>) -> Result<Report> {
    let snap = Snapshot::load(stores).await?;
    let live = match liveness {
        Some(l) => Some(LiveSet::load(stores, l).await?),
        None => None,
    };
    Ok(check_snapshot(&snap, live.as_ref()))
}

/// The check report as text (`ipam check`).
pub fn format_report(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Found {} allocated address(es).", r.allocated);
    for (title, list) in r.sections() {
        let _ = writeln!(out, "{title}: {}", list.len());
        for f in list {
            let _ = writeln!(out, "  {}: {}", f.subject, f.detail);
        }
    }
    let _ = writeln!(
        out,
        "{}",
        if r.is_clean() {
            "Check passed: no problems found."
        } else {
            "Check FAILED: problems found."
        }
    );
    out
}

/// Usage of one pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolUsage {
    /// Pool name.
    pub name: String,
    /// Pool CIDR.
    pub cidr: IpNetwork,
    /// Addresses in the pool (saturating).
    pub total: u128,
    /// Blocks claimed.
    pub blocks: usize,
    /// Addresses allocated.
    pub used: u128,
}

/// Usage of one block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockUsage {
    /// Block CIDR.
    pub cidr: IpNetwork,
    /// The pool it lies in, if any.
    pub pool: Option<String>,
    /// The node it is affine to.
    pub owner: Option<String>,
    /// Addresses in the block.
    pub total: usize,
    /// Allocated.
    pub used: usize,
}

/// The usage report (`ipam show [--show-blocks]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Per pool.
    pub pools: Vec<PoolUsage>,
    /// Per block, in CIDR order.
    pub blocks: Vec<BlockUsage>,
}

/// The usage of `snap`.
pub fn usage_of(snap: &Snapshot) -> Usage {
    let mut u = Usage::default();
    let mut blocks: Vec<&IpamBlock> = snap.blocks.iter().collect();
    blocks.sort_by_key(|b| b.spec.cidr);
    for b in &blocks {
        u.blocks.push(BlockUsage {
            cidr: b.spec.cidr,
            pool: pools::pool_of(&snap.pools, b.spec.cidr.ip()).map(pools::pool_name),
            owner: b.spec.affinity_node().map(str::to_string),
            total: block::size(&b.spec),
            used: block::used(&b.spec),
        });
    }
    for p in &snap.pools {
        let host_bits = match p.spec.cidr {
            IpNetwork::V4(n) => 32 - u32::from(n.prefix()),
            IpNetwork::V6(n) => 128 - u32::from(n.prefix()),
        };
        let name = pools::pool_name(p);
        let mine: Vec<&BlockUsage> = u
            .blocks
            .iter()
            .filter(|b| b.pool.as_deref() == Some(name.as_str()))
            .collect();
        u.pools.push(PoolUsage {
            total: 1u128.checked_shl(host_bits).unwrap_or(u128::MAX),
            blocks: mine.len(),
            used: mine.iter().map(|b| b.used as u128).sum(),
            name,
            cidr: p.spec.cidr,
        });
    }
    u
}

/// Loads the IPAM objects and reports usage.
pub async fn usage(stores: &Stores) -> Result<Usage> {
    Ok(usage_of(&Snapshot::load(stores).await?))
}

fn pct(part: u128, whole: u128) -> String {
    if whole == 0 {
        return format!("{part} (0%)");
    }
    format!("{part} ({}%)", part.saturating_mul(100) / whole)
}

/// Renders rows as a bordered table, Calico-style.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.len());
            }
        }
    }
    let line = format!(
        "+{}+\n",
        w.iter()
            .map(|n| "-".repeat(n + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    let row = |cells: Vec<String>| {
        let mut s = String::from("|");
        for (i, n) in w.iter().enumerate() {
            let c = cells.get(i).map(String::as_str).unwrap_or("");
            let _ = write!(s, " {c:<n$} |");
        }
        s.push('\n');
        s
    };
    let mut out = line.clone();
    out += &row(header.iter().map(|h| h.to_string()).collect());
    out += &line;
    for r in rows {
        out += &row(r.clone());
    }
    out += &line;
    out
}

/// The usage report as a table; with `show_blocks`, one row per block with its owner.
pub fn format_usage(u: &Usage, show_blocks: bool) -> String {
    let mut rows = Vec::new();
    for p in &u.pools {
        rows.push(vec![
            "IP Pool".to_string(),
            p.cidr.to_string(),
            p.total.to_string(),
            pct(p.used, p.total),
            pct(p.total - p.used, p.total),
            format!("{} block(s)", p.blocks),
        ]);
        if show_blocks {
            for b in u
                .blocks
                .iter()
                .filter(|b| b.pool.as_deref() == Some(p.name.as_str()))
            {
                rows.push(vec![
                    "Block".to_string(),
                    b.cidr.to_string(),
                    b.total.to_string(),
                    pct(b.used as u128, b.total as u128),
                    pct((b.total - b.used) as u128, b.total as u128),
                    b.owner.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
        }
    }
    let outside: BTreeSet<_> = u
        .blocks
        .iter()
        .filter(|b| b.pool.is_none())
        .map(|b| b.cidr)
        .collect();
    for c in outside {
        rows.push(vec![
            "Block".into(),
            c.to_string(),
            String::new(),
            String::new(),
            String::new(),
            "(no pool)".into(),
        ]);
    }
    table(
        &[
            "GROUPING",
            "CIDR",
            "IPS TOTAL",
            "IPS IN USE",
            "IPS FREE",
            "OWNER",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_crds::{AllocationAttribute, BlockAffinitySpec, IpamBlockSpec, IpamHandleSpec};

    fn attr(h: &str) -> AllocationAttribute {
        AllocationAttribute {
            handle_id: Some(h.into()),
            secondary: None,
        }
    }

    fn aff(node: &str, cidr: &str, state: AffinityState) -> BlockAffinity {
        let cidr: IpNetwork = cidr.parse().unwrap();
        BlockAffinity::new(
            &BlockAffinity::name_for(node, &cidr),
            BlockAffinitySpec {
                state,
                node: node.into(),
                cidr,
                deleted: false,
            },
        )
    }

    fn handle(h: &str, cidr: &str, n: usize) -> IpamHandle {
        IpamHandle::new(
            &IpamHandle::name_for(h),
            IpamHandleSpec {
                handle_id: h.into(),
                block: [(cidr.to_string(), n)].into(),
                deleted: false,
            },
        )
    }

    #[test]
    fn consistent_state_is_clean_and_each_fault_is_named() {
        let mut b1 = IpamBlockSpec::empty("10.0.0.0/30".parse().unwrap(), Some("n1"));
        block::assign(&mut b1, 1, &attr("h1")).unwrap();
        let good = Snapshot {
            pools: vec![],
            blocks: vec![IpamBlock::new("b1", b1.clone())],
            affinities: vec![aff("n1", "10.0.0.0/30", AffinityState::Confirmed)],
            handles: vec![handle("h1", "10.0.0.0/30", 1)],
        };
        let r = check_snapshot(&good, None);
        assert!(r.is_clean(), "{}", format_report(&r));
        assert_eq!(r.allocated, 1);

        // Overlapping block holding the same address, no affinity, no handle.
        let mut b2 = IpamBlockSpec::empty("10.0.0.0/31".parse().unwrap(), None);
        block::assign(&mut b2, 1, &attr("h2")).unwrap();
        let mut bad = good.clone();
        bad.blocks.push(IpamBlock::new("b2", b2));
        bad.affinities
            .push(aff("n2", "10.9.0.0/30", AffinityState::Pending));
        bad.handles.push(handle("h3", "10.0.0.0/30", 2));
        let r = check_snapshot(&bad, None);
        assert_eq!(r.allocated_twice.len(), 1, "{}", format_report(&r));
        assert_eq!(r.allocated_twice[0].subject, "10.0.0.0");
        assert_eq!(r.blocks_without_affinity.len(), 1);
        assert_eq!(r.affinities_without_blocks.len(), 1);
        assert_eq!(r.dangling_handles.len(), 1);
        assert!(r.leaked.iter().any(|f| f.subject == "handle h2"), "{r:?}");
        let text = format_report(&r);
        assert!(
            text.contains("Check FAILED") && text.contains("handle h3"),
            "{text}"
        );
    }

    #[test]
    fn usage_table_counts_blocks_and_owners() {
        let pool = IpPool::new(
            "p",
            tortie_crds::IpPoolSpec::new("10.0.0.0/24".parse().unwrap()),
        );
        let mut b1 = IpamBlockSpec::empty("10.0.0.0/26".parse().unwrap(), Some("n1"));
        block::assign(&mut b1, 3, &attr("h")).unwrap();
        let snap = Snapshot {
            pools: vec![pool],
            blocks: vec![IpamBlock::new("b1", b1)],
            ..Snapshot::default()
        };
        let u = usage_of(&snap);
        assert_eq!(u.pools[0].total, 256);
        assert_eq!(u.pools[0].used, 3);
        assert_eq!(u.pools[0].blocks, 1);
        let t = format_usage(&u, true);
        assert!(t.contains("| IP Pool  | 10.0.0.0/24 | 256"), "{t}");
        assert!(
            t.contains("| Block    | 10.0.0.0/26 | 64        | 3 (4%)"),
            "{t}"
        );
        assert!(t.contains("| n1"), "{t}");
        assert!(
            !format_usage(&u, false).contains("Block "),
            "blocks without --show-blocks"
        );
    }
}
