//! [`Paths`]: the equal-cost paths of one reported [`RibChange`](super::RibChange), best
//! first. Pure.
//!
//! Almost every change carries exactly one path (or none: a withdrawal), so that one is
//! stored inline and a change costs no heap allocation; only ECMP sets of two or more paths
//! use a `Vec`. Read access is a plain slice (`Deref<Target = [RoutePath]>`); serde sees a
//! sequence, as it saw the former `Vec<RoutePath>`.

use std::ops::Deref;

use serde::{Deserialize, Serialize};

use super::types::RoutePath;

/// Zero, one (inline) or several paths, best first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "Vec<RoutePath>", into = "Vec<RoutePath>")]
pub struct Paths(Repr);

#[derive(Debug, Clone, Default)]
enum Repr {
    #[default]
    Empty,
    One(RoutePath),
    Many(Vec<RoutePath>),
}

impl Paths {
    /// No path: the prefix is gone.
    pub fn new() -> Paths {
        Paths(Repr::Empty)
    }

    /// Exactly one path.
    pub fn one(p: RoutePath) -> Paths {
        Paths(Repr::One(p))
    }
}

impl Deref for Paths {
    type Target = [RoutePath];

    fn deref(&self) -> &[RoutePath] {
        match &self.0 {
            Repr::Empty => &[],
            Repr::One(p) => std::slice::from_ref(p),
            Repr::Many(v) => v,
        }
    }
}

impl PartialEq for Paths {
    fn eq(&self, other: &Paths) -> bool {
        **self == **other
    }
}

impl Eq for Paths {}

impl PartialEq<Vec<RoutePath>> for Paths {
    fn eq(&self, other: &Vec<RoutePath>) -> bool {
        **self == **other
    }
}

impl From<Vec<RoutePath>> for Paths {
    fn from(mut v: Vec<RoutePath>) -> Paths {
        match v.len() {
            0 => Paths::new(),
            1 => v.pop().map_or_else(Paths::new, Paths::one),
            _ => Paths(Repr::Many(v)),
        }
    }
}

impl From<Paths> for Vec<RoutePath> {
    fn from(p: Paths) -> Vec<RoutePath> {
        match p.0 {
            Repr::Empty => Vec::new(),
            Repr::One(x) => vec![x],
            Repr::Many(v) => v,
        }
    }
}

impl FromIterator<RoutePath> for Paths {
    fn from_iter<I: IntoIterator<Item = RoutePath>>(iter: I) -> Paths {
        let mut it = iter.into_iter();
        let Some(first) = it.next() else {
            return Paths::new();
        };
        match it.next() {
            None => Paths::one(first),
            Some(second) => {
                let mut v = Vec::with_capacity(2 + it.size_hint().0);
                v.push(first);
                v.push(second);
                v.extend(it);
                Paths(Repr::Many(v))
            }
        }
    }
}

impl<'a> IntoIterator for &'a Paths {
    type Item = &'a RoutePath;
    type IntoIter = std::slice::Iter<'a, RoutePath>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl IntoIterator for Paths {
    type Item = RoutePath;
    type IntoIter = std::vec::IntoIter<RoutePath>;

    fn into_iter(self) -> Self::IntoIter {
        Vec::from(self).into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::PathAttributes;
    use crate::rib::{PathSource, PeerId, SharedAttrs};

    fn path(peer: u32) -> RoutePath {
        RoutePath {
            source: PathSource::Peer(PeerId(peer)),
            peer_address: None,
            next_hop: None,
            attrs: SharedAttrs::new(PathAttributes::default()),
        }
    }

    #[test]
    fn one_path_is_inline_and_several_round_trip_in_order() {
        let none: Paths = std::iter::empty().collect();
        assert!(none.is_empty());
        assert!(matches!(none.0, Repr::Empty));
        let one: Paths = std::iter::once(path(1)).collect();
        assert!(matches!(one.0, Repr::One(_)), "one path needs no Vec");
        assert_eq!(one.len(), 1);
        let many: Paths = (1..=3).map(path).collect();
        let srcs: Vec<PathSource> = many.iter().map(|p| p.source).collect();
        assert_eq!(srcs, [1, 2, 3].map(|i| PathSource::Peer(PeerId(i))));
        assert_eq!(Paths::from(Vec::from(many.clone())), many);
        assert_eq!(Paths::from(vec![path(7)]), Paths::one(path(7)));
        assert_ne!(one, many);
    }

    #[test]
    fn serde_sees_a_plain_sequence() {
        let one = Paths::one(path(4));
        let as_vec = serde_json::to_value(vec![path(4)]).expect("vec");
        assert_eq!(serde_json::to_value(&one).expect("paths"), as_vec);
        let back: Paths = serde_json::from_value(as_vec).expect("back");
        assert_eq!(back, one);
        let empty: Paths = serde_json::from_str("[]").expect("empty");
        assert!(empty.is_empty());
    }
}
