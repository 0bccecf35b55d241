//! The BGP decision process (RFC 4271 §9.1.1 and §9.1.2.2) and ECMP set formation. Pure.
//!
//! Selection works by elimination over the whole candidate set, in the RFC's order, so the
//! result never depends on the order candidates arrived in (the MED step is not a total
//! order; a pairwise sort would be order-dependent):
//!
//! 1. highest degree of preference (LOCAL_PREF; 100 when absent; eBGP routes get the
//!    configured default since a received LOCAL_PREF is ignored),
//! 2. locally originated routes,
//! 3. shortest AS_PATH (an AS_SET counts 1, confederation segments 0),
//! 4. lowest ORIGIN,
//! 5. lowest MED among routes from the same neighbour AS (missing MED = 0),
//! 6. eBGP-learned over iBGP-learned,
//! 7. (IGP cost to the next hop: skipped, every next hop is equally close),
//! 8. lowest BGP identifier (ORIGINATOR_ID when present),
//! 9. shortest CLUSTER_LIST,
//! 10. lowest peer address.
//!
//! The routes left after step 6 are equal for multipath purposes; the ECMP set is those of
//! them that share the best route's neighbour AS when the best is eBGP-learned (the usual
//! eBGP multipath rule). The best route is first; the rest follow in tie-break order.

use std::net::{IpAddr, Ipv4Addr};

use crate::msg::{AsSegment, Origin, PathAttributes};

/// What the decision process needs to know about one candidate path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PathFacts {
    pub local_pref: u32,
    pub local: bool,
    pub as_path_len: u32,
    pub origin: Origin,
    pub med: u32,
    /// Leftmost AS of the AS_PATH; `None` for routes originated inside our AS.
    pub neighbor_as: Option<u32>,
    pub ebgp: bool,
    /// ORIGINATOR_ID if present, else the sender's BGP identifier (ours for local routes).
    pub router_id: Ipv4Addr,
    pub cluster_len: usize,
    /// Address of the sending peer (unspecified for local routes).
    pub peer_addr: IpAddr,
}

/// How the candidate was learned, for [`PathFacts::of`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Learned {
    Local { router_id: Ipv4Addr },
    Ebgp { router_id: Ipv4Addr, addr: IpAddr },
    Ibgp { router_id: Ipv4Addr, addr: IpAddr },
}

impl PathFacts {
    /// Derives the facts of a path with attributes `a` learned as `how`.
    pub(crate) fn of(a: &PathAttributes, how: Learned, default_local_pref: u32) -> PathFacts {
        let (local, ebgp, sender_id, peer_addr) = match how {
            Learned::Local { router_id } => (true, false, router_id, unspecified()),
            Learned::Ebgp { router_id, addr } => (false, true, router_id, addr),
            Learned::Ibgp { router_id, addr } => (false, false, router_id, addr),
        };
        PathFacts {
            local_pref: if ebgp {
                default_local_pref
            } else {
                a.local_pref.unwrap_or(default_local_pref)
            },
            local,
            as_path_len: as_path_len(&a.as_path),
            origin: a.origin.unwrap_or(Origin::Incomplete),
            med: a.med.unwrap_or(0),
            neighbor_as: neighbor_as(&a.as_path),
            ebgp,
            router_id: a.originator_id.unwrap_or(sender_id),
            cluster_len: a.cluster_list.len(),
            peer_addr,
        }
    }

    fn tie_break(&self) -> (Ipv4Addr, usize, IpAddr) {
        (self.router_id, self.cluster_len, self.peer_addr)
    }
}

fn unspecified() -> IpAddr {
    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}

/// AS_PATH length for the decision process: each AS_SEQUENCE member counts, an AS_SET
/// counts one, confederation segments count nothing (RFC 4271 §9.1.2.2 a, RFC 5065 §5.3).
pub(crate) fn as_path_len(path: &[AsSegment]) -> u32 {
    path.iter()
        .map(|s| match s {
            AsSegment::Sequence(v) => u32::try_from(v.len()).unwrap_or(u32::MAX),
            AsSegment::Set(_) => 1,
            AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_) => 0,
        })
        .fold(0u32, u32::saturating_add)
}

/// The neighbour AS: the first AS of a leading AS_SEQUENCE (confederation segments
/// skipped).
pub(crate) fn neighbor_as(path: &[AsSegment]) -> Option<u32> {
    path.iter()
        .find(|s| matches!(s, AsSegment::Sequence(_) | AsSegment::Set(_)))
        .and_then(|s| match s {
            AsSegment::Sequence(v) => v.first().copied(),
            _ => None,
        })
}

/// Runs the decision process; returns the indices of the ECMP set, best first. Empty input
/// gives an empty set.
pub(crate) fn select(c: &[PathFacts]) -> Vec<usize> {
    let mut alive: Vec<usize> = (0..c.len()).collect();
    if alive.len() <= 1 {
        return alive;
    }
    keep_best(&mut alive, |i| std::cmp::Reverse(c[i].local_pref));
    keep_best(&mut alive, |i| !c[i].local);
    keep_best(&mut alive, |i| c[i].as_path_len);
    keep_best(&mut alive, |i| c[i].origin);
    // MED: drop a route when another one from the same neighbour AS has a lower MED.
    let snapshot = alive.clone();
    alive.retain(|&i| {
        !snapshot
            .iter()
            .any(|&j| c[j].neighbor_as == c[i].neighbor_as && c[j].med < c[i].med)
    });
    keep_best(&mut alive, |i| !c[i].ebgp);
    let Some(&best) = alive.iter().min_by_key(|&&i| c[i].tie_break()) else {
        return alive;
    };
    let mut ecmp: Vec<usize> = alive
        .into_iter()
        .filter(|&i| i != best && (!c[best].ebgp || c[i].neighbor_as == c[best].neighbor_as))
        .collect();
    ecmp.sort_by_key(|&i| c[i].tie_break());
    ecmp.insert(0, best);
    ecmp
}

/// Keeps only the candidates with the smallest key.
fn keep_best<K: Ord>(alive: &mut Vec<usize>, key: impl Fn(usize) -> K) {
    if alive.len() <= 1 {
        return;
    }
    if let Some(min) = alive.iter().map(|&i| key(i)).min() {
        alive.retain(|&i| key(i) == min);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> PathFacts {
        PathFacts {
            local_pref: 100,
            local: false,
            as_path_len: 2,
            origin: Origin::Igp,
            med: 0,
            neighbor_as: Some(65001),
            ebgp: true,
            router_id: Ipv4Addr::new(10, 0, 0, 1),
            cluster_len: 0,
            peer_addr: "10.0.0.1".parse().expect("addr"),
        }
    }

    /// `better` must win against `worse` in both input orders, alone (no ECMP).
    fn wins(better: PathFacts, worse: PathFacts) {
        assert_eq!(select(&[better, worse]), vec![0], "better first");
        assert_eq!(select(&[worse, better]), vec![1], "better second");
    }

    #[test]
    fn higher_local_pref_wins() {
        let mut a = base();
        a.local_pref = 200;
        a.as_path_len = 9;
        wins(a, base());
    }

    #[test]
    fn local_route_wins() {
        let mut a = base();
        a.local = true;
        a.as_path_len = 5;
        wins(a, base());
    }

    #[test]
    fn shorter_as_path_wins() {
        let mut a = base();
        a.as_path_len = 1;
        wins(a, base());
    }

    #[test]
    fn lower_origin_wins() {
        let mut b = base();
        b.origin = Origin::Egp;
        wins(base(), b);
        let mut c = base();
        c.origin = Origin::Incomplete;
        let mut d = base();
        d.origin = Origin::Egp;
        wins(d, c);
    }

    #[test]
    fn lower_med_wins_within_one_neighbor_as() {
        let mut b = base();
        b.med = 10;
        b.router_id = Ipv4Addr::new(1, 1, 1, 1);
        wins(base(), b);
    }

    #[test]
    fn med_ignored_across_neighbor_as() {
        let mut b = base();
        b.med = 10;
        b.neighbor_as = Some(65002);
        b.router_id = Ipv4Addr::new(1, 1, 1, 1);
        // MED does not apply; router id decides, so b wins.
        wins(b, base());
    }

    #[test]
    fn ebgp_beats_ibgp() {
        let mut b = base();
        b.ebgp = false;
        b.router_id = Ipv4Addr::new(1, 1, 1, 1);
        wins(base(), b);
    }

    #[test]
    fn lower_router_id_wins() {
        let mut a = base();
        a.router_id = Ipv4Addr::new(9, 9, 9, 9);
        a.neighbor_as = Some(65002);
        let b = base();
        // Different neighbour AS: no eBGP multipath, router id decides.
        wins(a, b);
    }

    #[test]
    fn shorter_cluster_list_wins() {
        let mut a = base();
        a.ebgp = false;
        let mut b = a;
        b.cluster_len = 2;
        b.peer_addr = "10.0.0.0".parse().expect("addr");
        let got = select(&[b, a]);
        assert_eq!(got[0], 1);
    }

    #[test]
    fn lower_peer_address_wins() {
        let mut a = base();
        a.ebgp = false;
        a.peer_addr = "10.0.0.0".parse().expect("addr");
        let mut b = a;
        b.peer_addr = "10.0.0.9".parse().expect("addr");
        assert_eq!(select(&[b, a])[0], 1);
        assert_eq!(select(&[a, b])[0], 0);
    }

    #[test]
    fn ecmp_set_is_everything_equal_up_to_ebgp_step() {
        let a = base();
        let mut b = base();
        b.router_id = Ipv4Addr::new(10, 0, 0, 2);
        b.peer_addr = "10.0.0.2".parse().expect("addr");
        let mut c = base();
        c.med = 5; // loses at MED
        let mut d = base();
        d.neighbor_as = Some(65009); // other neighbour AS: not in eBGP multipath
        d.router_id = Ipv4Addr::new(10, 0, 0, 3);
        assert_eq!(select(&[b, c, d, a]), vec![3, 0]);
    }

    #[test]
    fn ibgp_multipath_ignores_neighbor_as() {
        let mut a = base();
        a.ebgp = false;
        let mut b = a;
        b.neighbor_as = Some(65009);
        b.router_id = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(select(&[b, a]), vec![1, 0]);
    }

    #[test]
    fn as_path_length_rules() {
        let p = vec![
            AsSegment::ConfedSequence(vec![1, 2]),
            AsSegment::Sequence(vec![3, 4, 5]),
            AsSegment::Set(vec![6, 7]),
        ];
        assert_eq!(as_path_len(&p), 4);
        assert_eq!(neighbor_as(&p), Some(3));
        assert_eq!(neighbor_as(&[]), None);
    }
}
