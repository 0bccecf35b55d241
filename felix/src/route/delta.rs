//! Pure delta tracker (after Calico felix's `deltatracker`): the desired map, the last
//! known dataplane map, and the keys on which they disagree, kept up to date on every
//! change so finding the work costs O(changes), not O(table). No I/O.

use std::collections::{BTreeMap, BTreeSet};

/// Desired vs dataplane state for keys `K` with values `V`. `satisfied(desired, actual)`
/// decides whether a dataplane value already does what the desired one asks.
#[derive(Debug, Clone)]
pub struct DeltaTracker<K, V> {
    desired: BTreeMap<K, V>,
    dataplane: BTreeMap<K, V>,
    pending_updates: BTreeSet<K>,
    pending_deletes: BTreeSet<K>,
    satisfied: fn(&V, &V) -> bool,
}

impl<K: Ord + Clone, V: Clone + PartialEq> DeltaTracker<K, V> {
    /// An empty tracker using `satisfied` to compare desired with dataplane values.
    pub fn new(satisfied: fn(&V, &V) -> bool) -> Self {
        DeltaTracker {
            desired: BTreeMap::new(),
            dataplane: BTreeMap::new(),
            pending_updates: BTreeSet::new(),
            pending_deletes: BTreeSet::new(),
            satisfied,
        }
    }

    fn refresh(&mut self, k: &K) {
        let d = self.desired.get(k);
        let a = self.dataplane.get(k);
        match (d, a) {
            (Some(d), Some(a)) if (self.satisfied)(d, a) => {
                self.pending_updates.remove(k);
                self.pending_deletes.remove(k);
            }
            (Some(_), _) => {
                self.pending_updates.insert(k.clone());
                self.pending_deletes.remove(k);
            }
            (None, Some(_)) => {
                self.pending_updates.remove(k);
                self.pending_deletes.insert(k.clone());
            }
            (None, None) => {
                self.pending_updates.remove(k);
                self.pending_deletes.remove(k);
            }
        }
    }

    /// Sets (`Some`) or clears (`None`) the desired value of `k`.
    pub fn set_desired(&mut self, k: K, v: Option<V>) {
        match v {
            Some(v) => {
                self.desired.insert(k.clone(), v);
            }
            None => {
                self.desired.remove(&k);
            }
        }
        self.refresh(&k);
    }

    /// Records what the dataplane holds for `k` (after a write, or from an event).
    pub fn set_dataplane(&mut self, k: K, v: Option<V>) {
        match v {
            Some(v) => {
                self.dataplane.insert(k.clone(), v);
            }
            None => {
                self.dataplane.remove(&k);
            }
        }
        self.refresh(&k);
    }

    /// Replaces the whole dataplane view (after a full dump).
    pub fn replace_dataplane(&mut self, all: BTreeMap<K, V>) {
        let old = std::mem::replace(&mut self.dataplane, all);
        let mut keys: BTreeSet<K> = old.into_keys().collect();
        keys.extend(self.dataplane.keys().cloned());
        keys.extend(self.pending_updates.iter().cloned());
        for k in keys {
            self.refresh(&k);
        }
    }

    /// Keys whose desired value is missing from or wrong in the dataplane.
    pub fn pending_updates(&self) -> impl Iterator<Item = (&K, &V)> {
        self.pending_updates
            .iter()
            .filter_map(|k| self.desired.get(k).map(|v| (k, v)))
    }

    /// Keys present in the dataplane that nothing desires (with their dataplane value).
    pub fn pending_deletes(&self) -> impl Iterator<Item = (&K, &V)> {
        self.pending_deletes
            .iter()
            .filter_map(|k| self.dataplane.get(k).map(|v| (k, v)))
    }

    /// Number of keys out of step (updates + deletes).
    pub fn pending_len(&self) -> (usize, usize) {
        (self.pending_updates.len(), self.pending_deletes.len())
    }

    /// The desired value of `k`.
    pub fn desired(&self, k: &K) -> Option<&V> {
        self.desired.get(k)
    }

    /// The dataplane value of `k`.
    pub fn dataplane(&self, k: &K) -> Option<&V> {
        self.dataplane.get(k)
    }

    /// Number of desired keys.
    pub fn desired_len(&self) -> usize {
        self.desired.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eq(a: &u32, b: &u32) -> bool {
        a == b
    }

    #[test]
    fn tracks_updates_and_deletes() {
        let mut t: DeltaTracker<&str, u32> = DeltaTracker::new(eq);
        t.set_desired("a", Some(1));
        t.set_desired("b", Some(2));
        assert_eq!(t.pending_len(), (2, 0));
        t.replace_dataplane([("a", 1), ("c", 3)].into_iter().collect());
        assert_eq!(t.pending_updates().collect::<Vec<_>>(), vec![(&"b", &2)]);
        assert_eq!(t.pending_deletes().collect::<Vec<_>>(), vec![(&"c", &3)]);
        t.set_dataplane("b", Some(2));
        t.set_dataplane("c", None);
        assert_eq!(t.pending_len(), (0, 0));
        // Someone changes a value behind our back: an update is pending again.
        t.set_dataplane("a", Some(9));
        assert_eq!(t.pending_updates().collect::<Vec<_>>(), vec![(&"a", &1)]);
        t.set_desired("a", None);
        assert_eq!(t.pending_deletes().collect::<Vec<_>>(), vec![(&"a", &9)]);
        assert_eq!(t.pending_len(), (0, 1));
    }
}
