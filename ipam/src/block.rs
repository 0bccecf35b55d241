//! The allocator over one IPAMBlock: ordinals ↔ addresses, the FIFO of free ordinals (take
//! from the head, return to the tail), attributes (handle + who holds it), and per-ordinal
//! sequence numbers so a stale release cannot free a re-assigned address.
//!
//! Pure: functions over an [`IpamBlockSpec`] value, no I/O, no clock (timestamps come in
//! with the attributes). The datastore driver reads a block, calls these, and writes the
//! block back with compare-and-swap.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use tortie_crds::{AllocationAttribute, IpamBlockSpec};

use crate::error::{IpamError, Result};

/// One address handed out by [`assign`] / [`assign_specific`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The address.
    pub ip: IpAddr,
    /// Its ordinal in the block.
    pub ordinal: usize,
    /// The sequence number to quote when releasing it.
    pub seq: u64,
}

/// One address freed by [`release`] / [`release_handle`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freed {
    /// The address.
    pub ip: IpAddr,
    /// The handle it belonged to (if the attribute named one).
    pub handle: Option<String>,
}

/// One live allocation of a block, as read by [`allocations`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation<'a> {
    /// The address.
    pub ip: IpAddr,
    /// Its ordinal.
    pub ordinal: usize,
    /// Who holds it (`None` when the index points nowhere: a corrupt block).
    pub attr: Option<&'a AllocationAttribute>,
    /// Its sequence number, if recorded.
    pub seq: Option<u64>,
}

/// Number of ordinals of the block.
pub fn size(b: &IpamBlockSpec) -> usize {
    b.allocations.len()
}

/// Number of allocated ordinals.
pub fn used(b: &IpamBlockSpec) -> usize {
    b.allocations.iter().filter(|a| a.is_some()).count()
}

/// Number of free ordinals (the length of the free list).
pub fn free(b: &IpamBlockSpec) -> usize {
    b.unallocated.len()
}

/// True when nothing is allocated.
pub fn is_empty(b: &IpamBlockSpec) -> bool {
    b.allocations.iter().all(Option::is_none)
}

/// The address of `ordinal`, if the ordinal is inside the block.
pub fn ip_of(b: &IpamBlockSpec, ordinal: usize) -> Option<IpAddr> {
    if ordinal >= size(b) {
        return None;
    }
    match b.cidr {
        IpNetwork::V4(n) => {
            let base = u32::from(n.network());
            let o = u32::try_from(ordinal).ok()?;
            base.checked_add(o).map(|v| IpAddr::V4(Ipv4Addr::from(v)))
        }
        IpNetwork::V6(n) => {
            let base = u128::from(n.network());
            base.checked_add(ordinal as u128)
                .map(|v| IpAddr::V6(Ipv6Addr::from(v)))
        }
    }
}

/// The ordinal of `ip`, if it is inside the block.
pub fn ordinal_of(b: &IpamBlockSpec, ip: IpAddr) -> Option<usize> {
    let off = match (b.cidr, ip) {
        (IpNetwork::V4(n), IpAddr::V4(a)) if n.contains(a) => {
            u128::from(u32::from(a) - u32::from(n.network()))
        }
        (IpNetwork::V6(n), IpAddr::V6(a)) if n.contains(a) => {
            u128::from(a) - u128::from(n.network())
        }
        _ => return None,
    };
    usize::try_from(off).ok().filter(|o| *o < size(b))
}

/// The attribute of an allocated ordinal.
pub fn holder(b: &IpamBlockSpec, ordinal: usize) -> Option<&AllocationAttribute> {
    b.allocations
        .get(ordinal)
        .copied()
        .flatten()
        .and_then(|i| b.attributes.get(i))
}

/// Every live allocation, in ordinal order.
pub fn allocations(b: &IpamBlockSpec) -> impl Iterator<Item = Allocation<'_>> + '_ {
    b.allocations.iter().enumerate().filter_map(move |(o, a)| {
        let idx = (*a)?;
        Some(Allocation {
            ip: ip_of(b, o)?,
            ordinal: o,
            attr: b.attributes.get(idx),
            seq: b
                .sequence_number_for_allocation
                .get(&o.to_string())
                .copied(),
        })
    })
}

/// Index of `attr` in the block's attributes, adding it when new (identical attributes
/// are shared, as Calico does).
fn attr_index(b: &mut IpamBlockSpec, attr: &AllocationAttribute) -> usize {
    if let Some(i) = b.attributes.iter().position(|a| a == attr) {
        return i;
    }
    b.attributes.push(attr.clone());
    b.attributes.len() - 1
}

fn take(b: &mut IpamBlockSpec, ordinal: usize, idx: usize) -> Result<Assignment> {
    let ip = ip_of(b, ordinal).ok_or_else(|| IpamError::CorruptBlock {
        block: b.cidr,
        field: "unallocated",
        reason: format!("ordinal {ordinal} outside the block"),
    })?;
    let slot = b
        .allocations
        .get_mut(ordinal)
        .ok_or_else(|| IpamError::CorruptBlock {
            block: b.cidr,
            field: "allocations",
            reason: format!("no slot for ordinal {ordinal}"),
        })?;
    if slot.is_some() {
        return Err(IpamError::CorruptBlock {
            block: b.cidr,
            field: "unallocated",
            reason: format!("ordinal {ordinal} is free-listed but allocated"),
        });
    }
    *slot = Some(idx);
    let seq = b.sequence_number;
    b.sequence_number += 1;
    b.sequence_number_for_allocation
        .insert(ordinal.to_string(), seq);
    Ok(Assignment { ip, ordinal, seq })
}

/// Assigns up to `n` free ordinals from the head of the free list to `attr`. Returns the
/// assignments (fewer than `n` when the block fills up; none from a deleted block).
pub fn assign(
    b: &mut IpamBlockSpec,
    n: usize,
    attr: &AllocationAttribute,
) -> Result<Vec<Assignment>> {
    if b.deleted || n == 0 || b.unallocated.is_empty() {
        return Ok(Vec::new());
    }
    let idx = attr_index(b, attr);
    let k = n.min(b.unallocated.len());
    let taken: Vec<usize> = b.unallocated.drain(..k).collect();
    let mut out = Vec::with_capacity(k);
    for o in taken {
        out.push(take(b, o, idx)?);
    }
    Ok(out)
}

/// Assigns the specific address `ip` to `attr`.
pub fn assign_specific(
    b: &mut IpamBlockSpec,
    ip: IpAddr,
    attr: &AllocationAttribute,
) -> Result<Assignment> {
    let ordinal = ordinal_of(b, ip).ok_or(IpamError::NotInBlock { ip, block: b.cidr })?;
    if b.allocations[ordinal].is_some() {
        return Err(IpamError::AlreadyAssigned {
            ip,
            block: b.cidr,
            holder: holder(b, ordinal)
                .and_then(|a| a.handle_id.clone())
                .unwrap_or_default(),
        });
    }
    let pos = b
        .unallocated
        .iter()
        .position(|o| *o == ordinal)
        .ok_or_else(|| IpamError::CorruptBlock {
            block: b.cidr,
            field: "unallocated",
            reason: format!("free ordinal {ordinal} missing from the free list"),
        })?;
    b.unallocated.remove(pos);
    let idx = attr_index(b, attr);
    take(b, ordinal, idx)
}

/// Frees `ordinal` (known allocated) and returns it to the tail of the free list.
fn free_ordinal(b: &mut IpamBlockSpec, ordinal: usize) -> Freed {
    let handle = holder(b, ordinal).and_then(|a| a.handle_id.clone());
    let ip = ip_of(b, ordinal).unwrap_or(b.cidr.ip());
    b.allocations[ordinal] = None;
    b.sequence_number_for_allocation
        .remove(&ordinal.to_string());
    b.unallocated.push(ordinal);
    Freed { ip, handle }
}

/// Releases `ip`. With `seq`, only if it still equals the allocation's sequence number
/// (a stale number means the address was re-assigned: [`IpamError::StaleSequence`]).
pub fn release(b: &mut IpamBlockSpec, ip: IpAddr, seq: Option<u64>) -> Result<Freed> {
    let ordinal = ordinal_of(b, ip).ok_or(IpamError::NotInBlock { ip, block: b.cidr })?;
    if b.allocations[ordinal].is_none() {
        return Err(IpamError::NotAssigned { ip, block: b.cidr });
    }
    let current = b
        .sequence_number_for_allocation
        .get(&ordinal.to_string())
        .copied();
    if let (Some(given), Some(current)) = (seq, current)
        && given != current
    {
        return Err(IpamError::StaleSequence {
            ip,
            block: b.cidr,
            given,
            current,
        });
    }
    let freed = free_ordinal(b, ordinal);
    b.sequence_number += 1;
    compact_attributes(b);
    Ok(freed)
}

/// Releases every address held by `handle`; returns them (empty when none).
pub fn release_handle(b: &mut IpamBlockSpec, handle: &str) -> Vec<Freed> {
    let ordinals: Vec<usize> = (0..size(b))
        .filter(|o| holder(b, *o).and_then(|a| a.handle_id.as_deref()) == Some(handle))
        .collect();
    let out: Vec<Freed> = ordinals.into_iter().map(|o| free_ordinal(b, o)).collect();
    if !out.is_empty() {
        b.sequence_number += 1;
        compact_attributes(b);
    }
    out
}

/// Number of addresses `handle` holds in the block.
pub fn count_handle(b: &IpamBlockSpec, handle: &str) -> usize {
    (0..size(b))
        .filter(|o| holder(b, *o).and_then(|a| a.handle_id.as_deref()) == Some(handle))
        .count()
}

/// Drops attributes no allocation points at and renumbers the rest (Calico keeps the
/// attribute list dense the same way).
fn compact_attributes(b: &mut IpamBlockSpec) {
    let mut remap = vec![None; b.attributes.len()];
    let mut kept = Vec::new();
    for slot in b.allocations.iter_mut().flatten() {
        let old = *slot;
        let new = match remap.get(old).copied().flatten() {
            Some(n) => n,
            None => {
                let Some(a) = b.attributes.get(old) else {
                    continue;
                };
                kept.push(a.clone());
                let n = kept.len() - 1;
                if let Some(r) = remap.get_mut(old) {
                    *r = Some(n);
                }
                n
            }
        };
        *slot = new;
    }
    b.attributes = kept;
}

/// Internal consistency problems of a block (empty when sound): every ordinal exactly
/// once in either `allocations` or `unallocated`, attribute indexes in range, a sequence
/// number per allocation.
pub fn problems(b: &IpamBlockSpec) -> Vec<String> {
    let mut out = Vec::new();
    let n = size(b);
    let expected = 1usize
        << match b.cidr {
            IpNetwork::V4(c) => 32 - u32::from(c.prefix()),
            IpNetwork::V6(c) => 128 - u32::from(c.prefix()),
        }
        .min(12);
    if n != expected {
        out.push(format!("{n} allocation slots for a block of {expected}"));
    }
    let mut seen = vec![0u8; n];
    for o in &b.unallocated {
        match seen.get_mut(*o) {
            Some(s) => *s += 1,
            None => out.push(format!("free ordinal {o} outside the block")),
        }
    }
    for (o, a) in b.allocations.iter().enumerate() {
        if let Some(i) = a {
            seen[o] += 1;
            if *i >= b.attributes.len() {
                out.push(format!("ordinal {o} points at missing attribute {i}"));
            }
            if !b
                .sequence_number_for_allocation
                .contains_key(&o.to_string())
            {
                out.push(format!("ordinal {o} has no sequence number"));
            }
        }
    }
    for (o, s) in seen.iter().enumerate() {
        match s {
            1 => {}
            0 => out.push(format!("ordinal {o} neither allocated nor free (leaked)")),
            _ => out.push(format!(
                "ordinal {o} both allocated and free, or free twice"
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_crds::AllocationSecondary;

    fn attr(h: &str) -> AllocationAttribute {
        AllocationAttribute {
            handle_id: Some(h.into()),
            secondary: Some(AllocationSecondary {
                node: Some("n1".into()),
                ..Default::default()
            }),
        }
    }

    fn block(cidr: &str) -> IpamBlockSpec {
        IpamBlockSpec::empty(cidr.parse().unwrap(), Some("n1"))
    }

    #[test]
    fn fifo_takes_from_head_returns_to_tail() {
        let mut b = block("10.0.0.0/30");
        let a = assign(&mut b, 2, &attr("h1")).unwrap();
        assert_eq!(
            a.iter().map(|x| x.ip.to_string()).collect::<Vec<_>>(),
            ["10.0.0.0", "10.0.0.1"]
        );
        release(&mut b, a[0].ip, Some(a[0].seq)).unwrap();
        assert_eq!(b.unallocated, vec![2, 3, 0]);
        let c = assign(&mut b, 3, &attr("h2")).unwrap();
        assert_eq!(
            c.iter().map(|x| x.ordinal).collect::<Vec<_>>(),
            vec![2, 3, 0]
        );
        assert_eq!(free(&b), 0);
        assert!(assign(&mut b, 1, &attr("h3")).unwrap().is_empty());
        assert!(problems(&b).is_empty(), "{:?}", problems(&b));
    }

    #[test]
    fn stale_sequence_cannot_free_a_reassigned_address() {
        let mut b = block("10.0.0.0/31");
        let first = assign_specific(&mut b, "10.0.0.1".parse().unwrap(), &attr("old")).unwrap();
        release(&mut b, first.ip, Some(first.seq)).unwrap();
        let again = assign_specific(&mut b, first.ip, &attr("new")).unwrap();
        assert_ne!(first.seq, again.seq);
        let e = release(&mut b, first.ip, Some(first.seq)).unwrap_err();
        assert!(matches!(e, IpamError::StaleSequence { .. }), "{e}");
        assert_eq!(count_handle(&b, "new"), 1);
        let f = release(&mut b, again.ip, Some(again.seq)).unwrap();
        assert_eq!(f.handle.as_deref(), Some("new"));
        assert!(is_empty(&b));
    }

    #[test]
    fn specific_address_checks() {
        let mut b = block("10.0.0.0/30");
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        assign_specific(&mut b, ip, &attr("a")).unwrap();
        let e = assign_specific(&mut b, ip, &attr("b")).unwrap_err();
        assert!(e.to_string().contains("handle a"), "{e}");
        let e = assign_specific(&mut b, "10.0.0.9".parse().unwrap(), &attr("b")).unwrap_err();
        assert!(matches!(e, IpamError::NotInBlock { .. }));
        let e = release(&mut b, "10.0.0.3".parse().unwrap(), None).unwrap_err();
        assert!(matches!(e, IpamError::NotAssigned { .. }));
    }

    #[test]
    fn release_by_handle_and_attribute_compaction() {
        let mut b = block("10.0.0.0/29");
        assign(&mut b, 2, &attr("a")).unwrap();
        assign(&mut b, 3, &attr("b")).unwrap();
        assign(&mut b, 1, &attr("c")).unwrap();
        assert_eq!(b.attributes.len(), 3);
        let freed = release_handle(&mut b, "b");
        assert_eq!(freed.len(), 3);
        assert_eq!(b.attributes.len(), 2);
        assert_eq!(count_handle(&b, "a"), 2);
        assert_eq!(count_handle(&b, "c"), 1);
        assert_eq!(used(&b) + free(&b), size(&b));
        assert!(problems(&b).is_empty(), "{:?}", problems(&b));
        assert!(release_handle(&mut b, "nope").is_empty());
    }

    #[test]
    fn ipv6_ordinals() {
        let mut b = block("fd00::40/122");
        assert_eq!(size(&b), 64);
        let a = assign(&mut b, 1, &attr("x")).unwrap();
        assert_eq!(a[0].ip, "fd00::40".parse::<IpAddr>().unwrap());
        assert_eq!(ordinal_of(&b, "fd00::7f".parse().unwrap()), Some(63));
        assert_eq!(ordinal_of(&b, "fd00::80".parse().unwrap()), None);
    }

    #[test]
    fn deleted_block_hands_out_nothing_and_problems_are_found() {
        let mut b = block("10.0.0.0/30");
        b.deleted = true;
        assert!(assign(&mut b, 1, &attr("x")).unwrap().is_empty());
        let mut c = block("10.0.0.0/30");
        c.unallocated.pop();
        c.allocations[0] = Some(5);
        let p = problems(&c);
        assert!(p.iter().any(|s| s.contains("leaked")), "{p:?}");
        assert!(p.iter().any(|s| s.contains("missing attribute")), "{p:?}");
    }
}
