//! The Loc-RIB's prefix table: a hash index of `u32` positions over a dense vector of
//! `(prefix, entry)` slots. Pure.
//!
//! Why not a plain hash map: a full-table dump is paid for in page faults and memory
//! traffic, not in instructions. Growing a map of whole entries rehashes and moves every
//! entry into a freshly faulted table twice the size; here growth rehashes 4-byte
//! positions, and the slot vector grows in place (`realloc` of a large block remaps
//! pages instead of copying them). Scans (peer down, GR sweeps, dumps) walk the dense
//! vector. A lookup hashes the prefix once into a single 64-bit word and probes once, also
//! when it inserts. Removal moves the last slot into the hole (order is not meaningful).

use hashbrown::HashTable;
use hashbrown::hash_table::Entry as RawEntry;
use ipnetwork::IpNetwork;

use super::hash::FoldState;

/// See the module documentation.
pub(super) struct PrefixTable<V> {
    index: HashTable<u32>,
    slots: Vec<(IpNetwork, V)>,
    hasher: FoldState,
}

impl<V> Default for PrefixTable<V> {
    fn default() -> Self {
        PrefixTable {
            index: HashTable::new(),
            slots: Vec::new(),
            hasher: FoldState::default(),
        }
    }
}

/// The result of [`PrefixTable::entry`].
pub(super) enum Slot<'a, V> {
    Occupied(&'a mut V),
    Vacant(Vacant<'a, V>),
}

/// A prefix that is not in the table yet, with its index position found.
pub(super) struct Vacant<'a, V> {
    at: hashbrown::hash_table::VacantEntry<'a, u32>,
    slots: &'a mut Vec<(IpNetwork, V)>,
    prefix: IpNetwork,
}

impl<'a, V> Vacant<'a, V> {
    /// Inserts `value` and returns it in place.
    pub(super) fn insert(self, value: V) -> &'a mut V {
        let pos = self.slots.len();
        self.at.insert(position(pos));
        self.slots.push((self.prefix, value));
        &mut self.slots[pos].1
    }
}

/// Positions are `u32`: four billion prefixes are far beyond any memory this runs in.
fn position(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

impl<V> PrefixTable<V> {
    fn hash(&self, p: &IpNetwork) -> u64 {
        self.hasher.hash_prefix(p)
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn get(&self, p: &IpNetwork) -> Option<&V> {
        let slots = &self.slots;
        let i = *self
            .index
            .find(self.hash(p), |&i| slots[i as usize].0 == *p)?;
        Some(&slots[i as usize].1)
    }

    pub(super) fn get_mut(&mut self, p: &IpNetwork) -> Option<&mut V> {
        let h = self.hash(p);
        let slots = &self.slots;
        let i = *self.index.find(h, |&i| slots[i as usize].0 == *p)?;
        Some(&mut self.slots[i as usize].1)
    }

    /// The entry of `p`, found or with its insert position found (one probe either way).
    pub(super) fn entry(&mut self, p: IpNetwork) -> Slot<'_, V> {
        let h = self.hash(&p);
        let PrefixTable {
            index,
            slots,
            hasher,
        } = self;
        if index.len() == index.capacity() {
            // Grow the index fourfold instead of twofold: every growth rehashes all
            // prefixes (a random read of each slot), and at 5 bytes a bucket a sparser
            // index costs little next to the 64-byte slots it points into.
            let view: &Vec<(IpNetwork, V)> = slots;
            index.reserve(3 * index.len() + 16, |&i| {
                hasher.hash_prefix(&view[i as usize].0)
            });
        }
        let found = {
            let view: &Vec<(IpNetwork, V)> = slots;
            index.entry(
                h,
                |&i| view[i as usize].0 == p,
                |&i| hasher.hash_prefix(&view[i as usize].0),
            )
        };
        match found {
            RawEntry::Occupied(o) => Slot::Occupied(&mut slots[*o.get() as usize].1),
            RawEntry::Vacant(at) => Slot::Vacant(Vacant {
                at,
                slots,
                prefix: p,
            }),
        }
    }

    /// Removes `p`, moving the last slot into its place.
    pub(super) fn remove(&mut self, p: &IpNetwork) -> Option<V> {
        let h = self.hash(p);
        let slots = &self.slots;
        let (i, _) = self
            .index
            .find_entry(h, |&i| slots[i as usize].0 == *p)
            .ok()?
            .remove();
        let i = i as usize;
        let last = self.slots.len() - 1;
        if i != last {
            let moved = self.hash(&self.slots[last].0);
            if let Some(at) = self.index.find_mut(moved, |&j| j as usize == last) {
                *at = position(i);
            }
        }
        Some(self.slots.swap_remove(i).1)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&IpNetwork, &V)> {
        self.slots.iter().map(|(p, v)| (p, v))
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&IpNetwork, &mut V)> {
        self.slots.iter_mut().map(|(p, v)| (&*p, v))
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn v4(i: u32, len: u8) -> IpNetwork {
        IpNetwork::new(std::net::Ipv4Addr::from(i << 8).into(), len).expect("prefix")
    }

    #[test]
    fn insert_get_remove_keep_every_other_prefix_reachable() {
        let mut t = PrefixTable::default();
        for i in 0..1000 {
            match t.entry(v4(i, 24)) {
                Slot::Vacant(v) => *v.insert(i) += 0,
                Slot::Occupied(_) => panic!("{i} present before insert"),
            }
        }
        assert!(matches!(t.entry(v4(7, 24)), Slot::Occupied(x) if *x == 7));
        // Same address, other length: a different prefix.
        assert!(t.get(&v4(7, 25)).is_none());
        for i in (0..1000).step_by(3) {
            assert_eq!(t.remove(&v4(i, 24)), Some(i));
            assert_eq!(t.remove(&v4(i, 24)), None);
        }
        for i in 0..1000 {
            assert_eq!(t.get(&v4(i, 24)).copied(), (i % 3 != 0).then_some(i), "{i}");
        }
        assert_eq!(t.len(), 666);
        assert_eq!(t.iter().count(), 666);
        if let Some(x) = t.get_mut(&v4(1, 24)) {
            *x = 99;
        }
        assert_eq!(t.values().filter(|&&x| x == 99).count(), 1);
    }

    #[test]
    fn ipv6_and_ipv4_do_not_collide() {
        let mut t = PrefixTable::default();
        let six: IpNetwork = "::a00:0/120".parse().expect("prefix");
        let four: IpNetwork = "10.0.0.0/24".parse().expect("prefix");
        if let Slot::Vacant(v) = t.entry(six) {
            v.insert(6);
        }
        if let Slot::Vacant(v) = t.entry(four) {
            v.insert(4);
        }
        assert_eq!(t.get(&six), Some(&6));
        assert_eq!(t.get(&four), Some(&4));
    }

    proptest! {
        /// Any sequence of inserts and removals agrees with std's HashMap.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((any::<bool>(), 0..64u32, 22..26u8), 0..400)) {
            let mut t = PrefixTable::default();
            let mut m = HashMap::new();
            for (n, (insert, i, len)) in ops.into_iter().enumerate() {
                let p = v4(i, len);
                if insert {
                    match t.entry(p) {
                        Slot::Occupied(x) => *x = n,
                        Slot::Vacant(v) => {
                            v.insert(n);
                        }
                    }
                    m.insert(p, n);
                } else {
                    prop_assert_eq!(t.remove(&p), m.remove(&p));
                }
                prop_assert_eq!(t.len(), m.len());
            }
            for (p, n) in &m {
                prop_assert_eq!(t.get(p), Some(n));
            }
            let mut seen: Vec<_> = t.iter().map(|(p, n)| (*p, *n)).collect();
            let mut want: Vec<_> = m.into_iter().collect();
            seen.sort_unstable();
            want.sort_unstable();
            prop_assert_eq!(seen, want);
        }
    }
}
