//! Shared, interned path attribute sets. Pure.
//!
//! One UPDATE carries one attribute set for many prefixes; the RIB stores it once behind an
//! `Arc` and every prefix points at it. [`Interner`] makes equal sets share one allocation,
//! so equality is usually a pointer comparison and exported copies are computed once per
//! set, not once per prefix.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::msg::PathAttributes;

/// An immutable, reference-counted [`PathAttributes`]. Cheap to clone; compares by pointer
/// first, then by value. Serializes as the plain attribute set.
#[derive(Debug, Clone)]
pub struct SharedAttrs(Arc<PathAttributes>);

impl SharedAttrs {
    /// Wraps an attribute set without interning it (see [`Interner::intern`]).
    pub fn new(attrs: PathAttributes) -> SharedAttrs {
        SharedAttrs(Arc::new(attrs))
    }

    /// True when both handles point at the same allocation.
    pub fn ptr_eq(&self, other: &SharedAttrs) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Address of the shared allocation (identity while any handle is alive).
    pub(crate) fn addr(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    fn handles(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

impl Deref for SharedAttrs {
    type Target = PathAttributes;
    fn deref(&self) -> &PathAttributes {
        &self.0
    }
}

impl PartialEq for SharedAttrs {
    fn eq(&self, other: &SharedAttrs) -> bool {
        self.ptr_eq(other) || *self.0 == *other.0
    }
}

impl Eq for SharedAttrs {}

impl Hash for SharedAttrs {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Serialize for SharedAttrs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedAttrs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SharedAttrs, D::Error> {
        PathAttributes::deserialize(d).map(SharedAttrs::new)
    }
}

/// Hashes a [`SharedAttrs`] by identity (allocation address). The key holds a handle, so
/// the address cannot be reused while the key exists.
#[derive(Debug, Clone)]
pub(crate) struct ByAddr(pub SharedAttrs);

impl PartialEq for ByAddr {
    fn eq(&self, other: &ByAddr) -> bool {
        self.0.ptr_eq(&other.0)
    }
}

impl Eq for ByAddr {}

impl Hash for ByAddr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.addr().hash(state);
    }
}

/// Deduplicates attribute sets: equal sets come back as the same allocation.
#[derive(Debug, Default)]
pub struct Interner {
    set: HashSet<SharedAttrs>,
    /// Size after the last sweep; the next sweep runs when the set doubles.
    swept_at: usize,
}

impl Interner {
    /// Returns the shared handle for `attrs`, allocating only if no equal set is held.
    pub fn intern(&mut self, attrs: PathAttributes) -> SharedAttrs {
        let probe = SharedAttrs::new(attrs);
        self.intern_shared(probe)
    }

    /// Like [`Interner::intern`] for a set that is already shared.
    pub fn intern_shared(&mut self, attrs: SharedAttrs) -> SharedAttrs {
        if let Some(found) = self.set.get(&attrs) {
            return found.clone();
        }
        self.maybe_sweep();
        self.set.insert(attrs.clone());
        attrs
    }

    /// Number of distinct sets currently held.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// True when no set is held.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Drops sets no route refers to any more. Amortised: runs when the set has doubled.
    fn maybe_sweep(&mut self) {
        if self.set.len() >= 2 * self.swept_at.max(512) {
            self.sweep();
        }
    }

    /// Drops every set only the interner itself still holds.
    pub fn sweep(&mut self) {
        self.set.retain(|a| a.handles() > 1);
        self.swept_at = self.set.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::Origin;

    #[test]
    fn equal_sets_share_one_allocation() {
        let mut i = Interner::default();
        let a = i.intern(PathAttributes {
            origin: Some(Origin::Igp),
            ..Default::default()
        });
        let b = i.intern(PathAttributes {
            origin: Some(Origin::Igp),
            ..Default::default()
        });
        let c = i.intern(PathAttributes::default());
        assert!(a.ptr_eq(&b));
        assert!(!a.ptr_eq(&c));
        assert_eq!(i.len(), 2);
    }

    #[test]
    fn sweep_drops_unused_sets_only() {
        let mut i = Interner::default();
        let kept = i.intern(PathAttributes {
            med: Some(1),
            ..Default::default()
        });
        drop(i.intern(PathAttributes {
            med: Some(2),
            ..Default::default()
        }));
        i.sweep();
        assert_eq!(i.len(), 1);
        assert!(kept.ptr_eq(&i.intern((*kept).clone())));
    }

    #[test]
    fn serde_round_trip_is_by_value() {
        let a = SharedAttrs::new(PathAttributes {
            local_pref: Some(7),
            ..Default::default()
        });
        let json = serde_json::to_string(&a).expect("serialize");
        let back: SharedAttrs = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(a, back);
    }
}
