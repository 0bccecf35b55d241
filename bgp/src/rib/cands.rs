//! The candidate list of one Loc-RIB prefix, with its first candidate stored inline. Pure.
//!
//! Almost every prefix has exactly one candidate (one peer announced it), so the list keeps
//! that one inside the table entry: a new prefix allocates nothing beyond its table slot,
//! and only a second candidate moves the list to the heap. Read access is a plain slice.

use std::ops::{Deref, DerefMut};

use super::Candidate;

/// Zero, one (inline) or several candidates, at most one per source.
#[derive(Debug, Default)]
pub(super) enum Cands {
    #[default]
    Empty,
    One(Candidate),
    /// Boxed so the list is no larger than one candidate: every prefix pays for this
    /// enum's size, few ever hold a second candidate. (A thin pointer on purpose, which
    /// is what clippy's `box_collection` does not know.)
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Candidate>>),
}

impl Cands {
    /// Appends `c` (the caller ensures its source is not present yet).
    pub(super) fn push(&mut self, c: Candidate) {
        match std::mem::take(self) {
            Cands::Empty => *self = Cands::One(c),
            Cands::One(first) => *self = Cands::Many(Box::new(vec![first, c])),
            Cands::Many(mut v) => {
                v.push(c);
                *self = Cands::Many(v);
            }
        }
    }

    /// Removes the candidate at `i`, moving the last one into its place.
    pub(super) fn swap_remove(&mut self, i: usize) -> Option<Candidate> {
        if i >= self.len() {
            return None;
        }
        match std::mem::take(self) {
            Cands::Empty => None,
            Cands::One(c) => Some(c),
            Cands::Many(mut v) => {
                let c = v.swap_remove(i);
                *self = match v.len() {
                    0 => Cands::Empty,
                    1 => v.pop().map_or(Cands::Empty, Cands::One),
                    _ => Cands::Many(v),
                };
                Some(c)
            }
        }
    }
}

impl Deref for Cands {
    type Target = [Candidate];

    fn deref(&self) -> &[Candidate] {
        match self {
            Cands::Empty => &[],
            Cands::One(c) => std::slice::from_ref(c),
            Cands::Many(v) => v.as_slice(),
        }
    }
}

impl DerefMut for Cands {
    fn deref_mut(&mut self) -> &mut [Candidate] {
        match self {
            Cands::Empty => &mut [],
            Cands::One(c) => std::slice::from_mut(c),
            Cands::Many(v) => v.as_mut_slice(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::PathAttributes;
    use crate::rib::{PathSource, PeerId, SharedAttrs};

    fn cand(peer: u32) -> Candidate {
        Candidate {
            source: PathSource::Peer(PeerId(peer)),
            attrs: SharedAttrs::new(PathAttributes::default()),
            stale: false,
        }
    }

    fn sources(c: &Cands) -> Vec<PathSource> {
        c.iter().map(|c| c.source).collect()
    }

    #[test]
    fn grows_inline_then_heap_and_shrinks_back() {
        let mut c = Cands::default();
        assert!(c.is_empty());
        c.push(cand(1));
        assert!(matches!(c, Cands::One(_)));
        c.push(cand(2));
        c.push(cand(3));
        assert_eq!(sources(&c), [1, 2, 3].map(|i| PathSource::Peer(PeerId(i))));
        assert_eq!(
            c.swap_remove(0).map(|x| x.source),
            Some(PathSource::Peer(PeerId(1)))
        );
        assert_eq!(sources(&c), [3, 2].map(|i| PathSource::Peer(PeerId(i))));
        assert!(c.swap_remove(5).is_none());
        c.swap_remove(1);
        assert!(matches!(c, Cands::One(_)), "one left is inline again");
        c[0].stale = true;
        assert!(c.first().is_some_and(|x| x.stale));
        assert!(c.swap_remove(0).is_some());
        assert!(matches!(c, Cands::Empty));
        assert!(c.swap_remove(0).is_none());
    }
}
