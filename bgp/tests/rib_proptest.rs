//! Property: after any sequence of announce / withdraw / peer-down / graceful-down /
//! End-of-RIB / originate / local-withdraw, the Loc-RIB equals a naive recomputation of the
//! decision process from a model of every Adj-RIB-In, replaying the emitted change events
//! reproduces the Loc-RIB, and the UPDATEs sent to an observing eBGP peer leave it with
//! exactly the current best routes (our AS prepended).

mod rib_util;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;
use proptest::prelude::*;
use rib_util::*;
use tortie_bgp::msg::{Afi, AsSegment, Origin, PathAttributes};
use tortie_bgp::rib::{PathSource, PeerId, Rib};

/// Peers: 0 and 1 eBGP in AS 65001 (ECMP candidates), 2 eBGP in AS 65002, 3 iBGP.
const PEER_AS: [u32; 4] = [65001, 65001, 65002, LOCAL_AS];
const PREFIXES: u32 = 4;

#[derive(Debug, Clone)]
enum Op {
    Announce { peer: usize, mask: u8, variant: u8 },
    Withdraw { peer: usize, mask: u8 },
    Down { peer: usize },
    GracefulDown { peer: usize },
    EndOfRib { peer: usize },
    Originate { prefix: u32, variant: u8 },
    WithdrawLocal { prefix: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4usize, 1..16u8, any::<u8>()).prop_map(|(peer, mask, variant)| Op::Announce { peer, mask, variant }),
        3 => (0..4usize, 1..16u8).prop_map(|(peer, mask)| Op::Withdraw { peer, mask }),
        1 => (0..4usize).prop_map(|peer| Op::Down { peer }),
        1 => (0..4usize).prop_map(|peer| Op::GracefulDown { peer }),
        1 => (0..4usize).prop_map(|peer| Op::EndOfRib { peer }),
        1 => (0..PREFIXES, any::<u8>()).prop_map(|(prefix, variant)| Op::Originate { prefix, variant }),
        1 => (0..PREFIXES).prop_map(|prefix| Op::WithdrawLocal { prefix }),
    ]
}

fn prefixes(mask: u8) -> Vec<IpNetwork> {
    (0..PREFIXES)
        .filter(|i| mask & (1 << i) != 0)
        .map(p26)
        .collect()
}

/// A valid attribute set for peer `i` chosen by `v`: path length, MED, LOCAL_PREF and
/// ORIGIN vary.
fn variant_attrs(i: usize, v: u8) -> PathAttributes {
    let n = u8::try_from(i + 1).expect("small");
    let mut path = vec![];
    if PEER_AS[i] != LOCAL_AS {
        path.push(PEER_AS[i]);
    }
    for k in 0..(v % 3) {
        path.push(65100 + u32::from(k));
    }
    PathAttributes {
        origin: Some(if v & 8 == 0 {
            Origin::Igp
        } else {
            Origin::Incomplete
        }),
        as_path: if path.is_empty() {
            vec![]
        } else {
            vec![AsSegment::Sequence(path)]
        },
        next_hop: Some(Ipv4Addr::new(10, 0, 0, n + 1)),
        med: [None, Some(0), Some(5)][usize::from((v >> 4) % 3)],
        local_pref: if v & 64 != 0 { Some(200) } else { None },
        ..Default::default()
    }
}

#[derive(Clone)]
struct Cand {
    source: PathSource,
    attrs: PathAttributes,
    ebgp: bool,
    router_id: Ipv4Addr,
    addr: IpAddr,
}

/// The decision process written out plainly over one prefix's candidates.
fn naive(c: &[Cand]) -> Vec<PathSource> {
    let lp = |x: &Cand| {
        if x.ebgp {
            100
        } else {
            x.attrs.local_pref.unwrap_or(100)
        }
    };
    let len = |x: &Cand| -> usize {
        x.attrs
            .as_path
            .iter()
            .map(|s| match s {
                AsSegment::Sequence(v) => v.len(),
                AsSegment::Set(_) => 1,
                _ => 0,
            })
            .sum()
    };
    let nas = |x: &Cand| match x.attrs.as_path.first() {
        Some(AsSegment::Sequence(v)) => v.first().copied(),
        _ => None,
    };
    let mut s: Vec<&Cand> = c.iter().collect();
    if s.is_empty() {
        return vec![];
    }
    let m = s.iter().map(|x| lp(x)).max().unwrap_or(0);
    s.retain(|x| lp(x) == m);
    if s.iter().any(|x| x.source == PathSource::Local) {
        s.retain(|x| x.source == PathSource::Local);
    }
    let m = s.iter().map(|x| len(x)).min().unwrap_or(0);
    s.retain(|x| len(x) == m);
    let m = s.iter().filter_map(|x| x.attrs.origin).min();
    s.retain(|x| x.attrs.origin == m);
    let all = s.clone();
    s.retain(|x| {
        !all.iter()
            .any(|y| nas(y) == nas(x) && y.attrs.med.unwrap_or(0) < x.attrs.med.unwrap_or(0))
    });
    if s.iter().any(|x| x.ebgp) {
        s.retain(|x| x.ebgp);
    }
    let key = |x: &Cand| {
        (
            x.attrs.originator_id.unwrap_or(x.router_id),
            x.attrs.cluster_list.len(),
            x.addr,
        )
    };
    s.sort_by_key(|x| key(x));
    let best = s[0];
    let mut out = vec![best.source];
    out.extend(
        s[1..]
            .iter()
            .filter(|x| !best.ebgp || nas(x) == nas(best))
            .map(|x| x.source),
    );
    out
}

struct Model {
    /// (peer index, prefix) → (attrs, stale)
    adj_in: BTreeMap<(usize, IpNetwork), (PathAttributes, bool)>,
    local: BTreeMap<IpNetwork, PathAttributes>,
}

impl Model {
    fn expected(&self, ids: &[PeerId], prefix: IpNetwork) -> Vec<PathSource> {
        let mut cands: Vec<Cand> = self
            .adj_in
            .iter()
            .filter(|((_, p), _)| *p == prefix)
            .map(|((i, _), (a, _))| Cand {
                source: PathSource::Peer(ids[*i]),
                attrs: a.clone(),
                ebgp: PEER_AS[*i] != LOCAL_AS,
                router_id: Ipv4Addr::new(10, 255, 0, u8::try_from(*i + 1).expect("small")),
                addr: IpAddr::V4(Ipv4Addr::new(
                    10,
                    0,
                    0,
                    u8::try_from(*i + 2).expect("small"),
                )),
            })
            .collect();
        if let Some(a) = self.local.get(&prefix) {
            cands.push(Cand {
                source: PathSource::Local,
                attrs: a.clone(),
                ebgp: false,
                router_id: ROUTER_ID,
                addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            });
        }
        naive(&cands)
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut rib: Rib = rib();
    let ids: Vec<PeerId> = (0..4u8)
        .map(|i| up(&mut rib, i + 1, PEER_AS[usize::from(i)]))
        .collect();
    let observer = up(&mut rib, 5, 65005);
    let mut observed: HashMap<IpNetwork, PathAttributes> = HashMap::new();
    let mut model = Model {
        adj_in: BTreeMap::new(),
        local: BTreeMap::new(),
    };
    let mut shadow: HashMap<IpNetwork, Vec<(PathSource, PathAttributes)>> = HashMap::new();
    for op in ops {
        let changes = match op.clone() {
            Op::Announce {
                peer,
                mask,
                variant,
            } => {
                let a = variant_attrs(peer, variant);
                for p in prefixes(mask) {
                    model.adj_in.insert((peer, p), (a.clone(), false));
                }
                rib.apply_update(ids[peer], &announce(&prefixes(mask), a))
                    .expect("announce")
            }
            Op::Withdraw { peer, mask } => {
                for p in prefixes(mask) {
                    model.adj_in.remove(&(peer, p));
                }
                rib.apply_update(ids[peer], &withdraw(&prefixes(mask)))
                    .expect("withdraw")
            }
            Op::Down { peer } => {
                model.adj_in.retain(|(i, _), _| *i != peer);
                let ch = rib.peer_down(ids[peer]).expect("down");
                rib.peer_up(
                    ids[peer],
                    negotiated(u8::try_from(peer + 1).expect("small")),
                )
                .expect("up");
                ch
            }
            Op::GracefulDown { peer } => {
                for ((i, _), (_, stale)) in model.adj_in.iter_mut() {
                    if *i == peer {
                        *stale = true;
                    }
                }
                let ch = rib
                    .peer_down_graceful(ids[peer], &[Afi::Ipv4Unicast])
                    .expect("gr");
                rib.peer_up(
                    ids[peer],
                    negotiated(u8::try_from(peer + 1).expect("small")),
                )
                .expect("up");
                ch
            }
            Op::EndOfRib { peer } => {
                model
                    .adj_in
                    .retain(|(i, _), (_, stale)| *i != peer || !*stale);
                rib.end_of_rib(ids[peer], Afi::Ipv4Unicast).expect("eor")
            }
            Op::Originate { prefix, variant } => {
                let a = PathAttributes {
                    origin: Some(Origin::Igp),
                    med: if variant & 1 == 0 { None } else { Some(3) },
                    ..Default::default()
                };
                model.local.insert(p26(prefix), a.clone());
                rib.originate(p26(prefix), a).expect("originate")
            }
            Op::WithdrawLocal { prefix } => {
                model.local.remove(&p26(prefix));
                rib.withdraw_local(p26(prefix))
            }
        };
        let mut seen = std::collections::HashSet::new();
        for c in changes {
            prop_assert!(
                seen.insert(c.prefix),
                "one event per prefix per input: {:?}",
                op
            );
            let srcs: Vec<(PathSource, PathAttributes)> = c
                .paths
                .iter()
                .map(|p| (p.source, (*p.attrs).clone()))
                .collect();
            prop_assert_ne!(
                shadow.get(&c.prefix).cloned().unwrap_or_default(),
                srcs.clone(),
                "an event must carry a change"
            );
            if srcs.is_empty() {
                shadow.remove(&c.prefix);
            } else {
                shadow.insert(c.prefix, srcs);
            }
        }
        let msgs = rib.pending_messages(observer).expect("observer drain");
        for p in withdrawn(&msgs) {
            prop_assert!(observed.remove(&p).is_some(), "withdrawal of unsent {}", p);
        }
        for (p, a) in announced(&msgs) {
            observed.insert(p, a);
        }
        for i in 0..PREFIXES {
            let p = p26(i);
            let want = model.expected(&ids, p);
            let want_path: Option<Vec<AsSegment>> = want.first().map(|best| {
                let a = match best {
                    PathSource::Local => model.local.get(&p).cloned(),
                    PathSource::Peer(id) => {
                        let i = ids.iter().position(|x| x == id).expect("known");
                        model.adj_in.get(&(i, p)).map(|(a, _)| a.clone())
                    }
                }
                .expect("best has attributes");
                let mut asns = vec![LOCAL_AS];
                for s in &a.as_path {
                    if let AsSegment::Sequence(v) = s {
                        asns.extend(v);
                    }
                }
                vec![AsSegment::Sequence(asns)]
            });
            prop_assert_eq!(
                observed.get(&p).map(|a| a.as_path.clone()),
                want_path,
                "observer's view of {} after {:?}",
                p,
                op
            );
            let got: Vec<PathSource> = rib
                .best(&p)
                .map(|c| c.paths.iter().map(|x| x.source).collect())
                .unwrap_or_default();
            prop_assert_eq!(&got, &want, "prefix {} after {:?}", p, op);
            let replayed: Vec<PathSource> = shadow
                .get(&p)
                .map(|v| v.iter().map(|(s, _)| *s).collect())
                .unwrap_or_default();
            prop_assert_eq!(replayed, want, "events for {}", p);
            if let Some(best) = rib.best(&p) {
                for path in &best.paths {
                    let a = match path.source {
                        PathSource::Local => model.local.get(&p).cloned(),
                        PathSource::Peer(id) => {
                            let i = ids.iter().position(|x| *x == id).expect("known");
                            model.adj_in.get(&(i, p)).map(|(a, _)| a.clone())
                        }
                    };
                    prop_assert_eq!(Some((*path.attrs).clone()), a);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn loc_rib_matches_naive_recomputation(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
