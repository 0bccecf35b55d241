//! The Loc-RIB engine of [`Rib`]: candidate bookkeeping per prefix, re-running the decision
//! process for a touched prefix, reporting ECMP-set changes, and pushing a changed best path
//! into every Established peer's Adj-RIB-Out through the export rules. Pure.
//!
//! The hot path (one announced prefix) does one probe of the prefix table, stores the
//! candidate in the new slot (a new prefix runs no decision: its one candidate is the
//! selection, recorded as [`Selection::Sole`] without a second handle), reports a clone of
//! the UPDATE's path template, and does one cached export transformation lookup per other
//! Established peer: one handle taken on the interned attribute set (the candidate's) and
//! one on the UPDATE's report copy. Each peer's Adj-RIB-In is its
//! candidates in this table; peer-down, stale sweeps and queries scan the table's dense
//! slots instead of keeping a second index.

use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;

use super::cands::Cands;
use super::decision::{self, Learned, PathFacts};
use super::export::{self, ExportAction, ExportContext, SourceClass, Target};
use super::{
    Candidate, Entry, PathSource, Paths, Peer, PeerId, Rib, RibChange, RibConfig, RibError,
    RoutePath, SharedAttrs, family_of,
};

type Slot = Option<Peer>;

/// The ECMP set last reported for a prefix, best first. Almost always zero or one path,
/// stored without allocation; the dominant case, "the prefix's only candidate as it is
/// now", stores nothing at all ([`Selection::Sole`]).
#[derive(Debug, Default)]
pub(super) enum Selection {
    #[default]
    Empty,
    /// Exactly the entry's first candidate with its current attributes. Every change of
    /// the candidate list goes through [`Entry::pin_selection`] first, which turns this
    /// into [`Selection::One`] so the old selection survives for comparison.
    Sole,
    One((PathSource, SharedAttrs)),
    /// Boxed (a thin pointer): an ECMP set is rare, and every prefix pays for this
    /// enum's size.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<(PathSource, SharedAttrs)>>),
}

impl Selection {
    fn set(&mut self, mut paths: Vec<(PathSource, SharedAttrs)>) {
        *self = match paths.len() {
            0 => Selection::Empty,
            1 => match paths.pop() {
                Some(x) => Selection::One(x),
                None => Selection::Empty,
            },
            _ => Selection::Many(Box::new(paths)),
        };
    }
}

impl Entry {
    /// The selected paths, best first, as (source, attributes).
    pub(super) fn selected(&self) -> impl Iterator<Item = (PathSource, &SharedAttrs)> {
        let (sole, listed): (Option<&Candidate>, &[(PathSource, SharedAttrs)]) =
            match &self.selected {
                Selection::Empty => (None, &[]),
                Selection::Sole => (self.cands.first(), &[]),
                Selection::One(x) => (None, std::slice::from_ref(x)),
                Selection::Many(v) => (None, v.as_slice()),
            };
        sole.map(|c| (c.source, &c.attrs))
            .into_iter()
            .chain(listed.iter().map(|(s, a)| (*s, a)))
    }

    /// The best path, if the prefix has a route.
    pub(super) fn best(&self) -> Option<(PathSource, &SharedAttrs)> {
        match &self.selected {
            Selection::Empty => None,
            Selection::Sole => self.cands.first().map(|c| (c.source, &c.attrs)),
            Selection::One((s, a)) => Some((*s, a)),
            Selection::Many(v) => v.first().map(|(s, a)| (*s, a)),
        }
    }

    /// True when the prefix has a selected route.
    pub(super) fn has_route(&self) -> bool {
        !matches!(self.selected, Selection::Empty)
    }

    /// Makes the selection independent of the candidate list before that list changes.
    fn pin_selection(&mut self) {
        if let Selection::Sole = self.selected {
            self.selected = match self.cands.first() {
                Some(c) => Selection::One((c.source, c.attrs.clone())),
                None => Selection::Empty,
            };
        }
    }
}

fn peer_at(peers: &[Slot], id: PeerId) -> Option<&Peer> {
    peers.get(id.0 as usize).and_then(Option::as_ref)
}

pub(super) fn route_path(
    peers: &[Slot],
    source: PathSource,
    attrs: &SharedAttrs,
    nh: Option<IpAddr>,
) -> RoutePath {
    let peer_address = match source {
        PathSource::Local => None,
        PathSource::Peer(id) => peer_at(peers, id).map(|p| p.cfg.address),
    };
    RoutePath {
        source,
        peer_address,
        next_hop: nh,
        attrs: attrs.clone(),
    }
}

/// The reported form of an entry's current ECMP set.
pub(super) fn change_of(peers: &[Slot], prefix: IpNetwork, e: &Entry) -> RibChange {
    let v6 = prefix.is_ipv6();
    // Common case first: the single candidate is the selection (no search, no iterator).
    if let (Selection::Sole, [c]) = (&e.selected, &*e.cands) {
        let paths = Paths::one(route_path(peers, c.source, &c.attrs, c.next_hop(v6)));
        return RibChange { prefix, paths };
    }
    let paths = e
        .selected()
        .map(|(src, a)| {
            let nh = e
                .cands
                .iter()
                .find(|c| c.source == src)
                .and_then(|c| c.next_hop(v6));
            route_path(peers, src, a, nh)
        })
        .collect();
    RibChange { prefix, paths }
}

fn facts(cfg: &RibConfig, peers: &[Slot], c: &Candidate) -> PathFacts {
    let how = match c.source {
        PathSource::Local => Learned::Local {
            router_id: cfg.router_id,
        },
        PathSource::Peer(id) => match peer_at(peers, id) {
            Some(p) => p.learned(),
            // Cannot happen (a removed peer's candidates are removed first); sort it last.
            None => Learned::Ibgp {
                router_id: Ipv4Addr::BROADCAST,
                addr: IpAddr::V4(Ipv4Addr::BROADCAST),
            },
        },
    };
    PathFacts::of(&c.attrs, how, cfg.default_local_pref)
}

/// Outcome of re-running the decision on one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Unchanged,
    /// The ECMP set changed; `true` when the best path itself changed (exports needed).
    Changed {
        best: bool,
    },
}

/// Re-selects `e` in place. The caller pinned the selection before changing candidates.
fn reselect(cfg: &RibConfig, peers: &[Slot], e: &mut Entry) -> Outcome {
    if e.cands.len() <= 1 {
        // Fast path: zero or one candidate, no decision to run and no allocation.
        let first = e.cands.first();
        let same = match (first, &e.selected) {
            (None, Selection::Empty) | (Some(_), Selection::Sole) => true,
            (Some(c), Selection::One((s, a))) => c.source == *s && c.attrs.ptr_eq(a),
            _ => false,
        };
        let best = match (first, e.best()) {
            (Some(c), Some((s, a))) => c.source != s || !c.attrs.ptr_eq(a),
            (None, None) => false,
            _ => true,
        };
        e.selected = if first.is_some() {
            Selection::Sole
        } else {
            Selection::Empty
        };
        return if same {
            Outcome::Unchanged
        } else {
            Outcome::Changed { best }
        };
    }
    let f: Vec<PathFacts> = e.cands.iter().map(|c| facts(cfg, peers, c)).collect();
    let sel = decision::select(&f);
    let same = sel.len() == e.selected().count()
        && sel
            .iter()
            .zip(e.selected())
            .all(|(&i, (src, a))| e.cands[i].source == src && e.cands[i].attrs.ptr_eq(a));
    if same {
        return Outcome::Unchanged;
    }
    let best = match (sel.first(), e.best()) {
        (Some(&i), Some((s, a))) => e.cands[i].source != s || !e.cands[i].attrs.ptr_eq(a),
        (None, None) => false,
        _ => true,
    };
    e.selected.set(
        sel.iter()
            .map(|&i| (e.cands[i].source, e.cands[i].attrs.clone()))
            .collect(),
    );
    Outcome::Changed { best }
}

/// The parts of [`Rib`] export needs, borrowed apart from the prefix table so a table
/// entry's selection can be exported by reference.
struct Exporter<'a> {
    cfg: &'a RibConfig,
    peers: &'a mut Vec<Slot>,
    interner: &'a mut super::Interner,
    policy: &'a mut Box<dyn export::ExportPolicy + Send>,
}

impl Rib {
    fn exporter(&mut self) -> (Exporter<'_>, &mut super::Table) {
        let Rib {
            cfg,
            peers,
            interner,
            policy,
            table,
            ..
        } = self;
        (
            Exporter {
                cfg,
                peers,
                interner,
                policy,
            },
            table,
        )
    }

    /// Adds or replaces `c` as `prefix`'s candidate from its source, re-selects, reports
    /// and exports. `report`, when given, is the path a new prefix reports (its source,
    /// next hop and attributes equal `c`'s; see `Rib::apply_update`).
    pub(super) fn upsert_candidate(
        &mut self,
        prefix: IpNetwork,
        c: Candidate,
        report: Option<&RoutePath>,
        changes: &mut Vec<RibChange>,
    ) {
        let deferring = self.deferring;
        let source = c.source;
        let (mut x, table) = self.exporter();
        let from = match source {
            PathSource::Peer(id) => x.peers.get_mut(id.0 as usize).and_then(Option::as_mut),
            PathSource::Local => None,
        };
        // One table lookup for the whole update of this prefix.
        let e = match table.entry(prefix) {
            super::table::Slot::Occupied(e) => {
                e.pin_selection();
                match e.cands.iter_mut().find(|x| x.source == source) {
                    Some(old) => {
                        if std::mem::replace(old, c).stale
                            && let Some(p) = from
                        {
                            p.stale -= 1;
                        }
                    }
                    None => {
                        e.cands.push(c);
                        if let Some(p) = from {
                            p.received += 1;
                        }
                    }
                }
                e
            }
            super::table::Slot::Vacant(v) => {
                // A new prefix (the bulk of a table dump): its one candidate is the
                // selection, so there is nothing to compare and no decision to run.
                if let Some(p) = from {
                    p.received += 1;
                }
                if deferring {
                    v.insert(Entry {
                        cands: Cands::One(c),
                        selected: Selection::Empty,
                    });
                    self.dirty.insert(prefix);
                    return;
                }
                let e = v.insert(Entry {
                    cands: Cands::One(c),
                    selected: Selection::Sole,
                });
                changes.push(match report {
                    Some(path) => RibChange {
                        prefix,
                        paths: Paths::one(path.clone()),
                    },
                    None => change_of(x.peers, prefix, e),
                });
                x.export_best(prefix, e.best());
                return;
            }
        };
        if deferring {
            self.dirty.insert(prefix);
            return;
        }
        let outcome = reselect(x.cfg, x.peers, e);
        if let Outcome::Changed { best } = outcome {
            changes.push(change_of(x.peers, prefix, e));
            if best {
                x.export_best(prefix, e.best());
            }
        }
    }

    pub(super) fn remove_candidate(
        &mut self,
        prefix: IpNetwork,
        source: PathSource,
        changes: &mut Vec<RibChange>,
    ) {
        let Some(e) = self.table.get_mut(&prefix) else {
            return;
        };
        let Some(pos) = e.cands.iter().position(|c| c.source == source) else {
            return;
        };
        e.pin_selection();
        let Some(old) = e.cands.swap_remove(pos) else {
            return;
        };
        if let PathSource::Peer(id) = source
            && let Some(Some(p)) = self.peers.get_mut(id.0 as usize)
        {
            p.received -= 1;
            if old.stale {
                p.stale -= 1;
            }
        }
        self.recompute(prefix, changes);
    }

    /// Re-runs the decision for one prefix; reports and exports a changed ECMP set.
    pub(super) fn recompute(&mut self, prefix: IpNetwork, changes: &mut Vec<RibChange>) {
        if self.deferring {
            self.dirty.insert(prefix);
            return;
        }
        let (mut x, table) = self.exporter();
        let Some(e) = table.get_mut(&prefix) else {
            return;
        };
        if let Outcome::Changed { best } = reselect(x.cfg, x.peers, e) {
            changes.push(change_of(x.peers, prefix, e));
            if best {
                x.export_best(prefix, e.best());
            }
        }
        if e.cands.is_empty() {
            table.remove(&prefix);
        }
    }

    /// Computes what `target` should have for `prefix` given `best`, and records it.
    pub(super) fn export_to(
        &mut self,
        target: PeerId,
        prefix: IpNetwork,
        best: Option<(PathSource, &SharedAttrs)>,
    ) {
        self.exporter().0.export_to(target, prefix, best);
    }
}

impl Exporter<'_> {
    /// Records `best` (or a withdrawal) for `prefix` in every Established peer's
    /// Adj-RIB-Out; the peer the route came from only ever gets a withdrawal.
    fn export_best(&mut self, prefix: IpNetwork, best: Option<(PathSource, &SharedAttrs)>) {
        let from = best.map(|(src, _)| src);
        for i in 0..self.peers.len() {
            let id = PeerId(i as u32);
            let Some(p) = self.peers[i].as_mut().filter(|p| p.session.is_some()) else {
                continue;
            };
            if from == Some(PathSource::Peer(id)) {
                // Never back to the source: no export evaluation, only make sure an
                // earlier advertisement of this prefix is withdrawn.
                p.out.set(prefix, None);
            } else {
                self.export_to(id, prefix, best);
            }
        }
    }

    /// Computes what `target` should have for `prefix` given `best`, and records it.
    /// Kept out of line so the per-prefix peer loop above stays small.
    #[inline(never)]
    fn export_to(
        &mut self,
        target: PeerId,
        prefix: IpNetwork,
        best: Option<(PathSource, &SharedAttrs)>,
    ) {
        // Never back to the peer the route came from: no export evaluation at all.
        let desired = best
            .filter(|(src, _)| *src != PathSource::Peer(target))
            .and_then(|b| self.export_attrs(target, prefix, b));
        if let Some(Some(p)) = self.peers.get_mut(target.0 as usize) {
            p.out.set(prefix, desired);
        }
    }

    fn export_attrs(
        &mut self,
        target: PeerId,
        prefix: IpNetwork,
        (source, attrs): (PathSource, &SharedAttrs),
    ) -> Option<SharedAttrs> {
        let (class, src_peer) = match source {
            PathSource::Local => (SourceClass::Local, None),
            PathSource::Peer(id) => (peer_at(self.peers, id)?.class(), Some(id)),
        };
        let v6 = prefix.is_ipv6();
        let Exporter {
            cfg,
            interner,
            policy,
            peers,
        } = self;
        let p = peers.get_mut(target.0 as usize)?.as_mut()?;
        let session = p.session.as_ref()?;
        if !session.families.contains(&family_of(&prefix)) {
            return None;
        }
        let t = Target {
            id: target,
            cfg: &p.cfg,
            session_local: session.local_address,
        };
        if !export::eligible(cfg, &t, class, src_peer, attrs) {
            return None;
        }
        if p.cache.len() > 2 * interner.len() + 1024 {
            p.cache.clear();
        }
        let (_, out) = p.cache.entry((attrs.addr(), class, v6)).or_insert_with(|| {
            let out = export::transform(cfg, &t, class, attrs, v6).map(|a| interner.intern(a));
            // The input handle keeps the address from being reused while cached.
            (attrs.clone(), out)
        });
        let out = out.clone()?;
        let ctx = ExportContext {
            peer: target,
            peer_config: &p.cfg,
            prefix: &prefix,
            source,
            original: attrs,
            outgoing: &out,
        };
        match policy.export(&ctx) {
            ExportAction::Accept => Some(out),
            ExportAction::Reject => None,
            ExportAction::Modify(a) => Some(interner.intern(a)),
        }
    }
}

impl Rib {
    /// Re-evaluates the whole Adj-RIB-Out of `peer` (initial dump, policy change); an
    /// `initial` dump owes End-of-RIB for every negotiated family.
    pub(super) fn dump_to(&mut self, peer: PeerId, initial: bool) {
        let bests: Vec<(IpNetwork, (PathSource, SharedAttrs))> = self
            .table
            .iter()
            .filter_map(|(p, e)| e.best().map(|(s, a)| (*p, (s, a.clone()))))
            .collect();
        let sent: Vec<IpNetwork> = match peer_at(&self.peers, peer) {
            Some(p) => p.out.sent().keys().copied().collect(),
            None => return,
        };
        for (prefix, (src, attrs)) in &bests {
            self.export_to(peer, *prefix, Some((*src, attrs)));
        }
        for prefix in sent {
            if self.table.get(&prefix).is_none_or(|e| !e.has_route()) {
                self.export_to(peer, prefix, None);
            }
        }
        if initial
            && let Some(Some(p)) = self.peers.get_mut(peer.0 as usize)
            && let Some(s) = &p.session
        {
            for afi in s.families.clone() {
                p.out.owe_eor(afi);
            }
        }
    }

    /// The prefixes (sorted, so events come in the same order on every run) where `src`
    /// has a candidate satisfying `keep`. A scan of the Loc-RIB: used on peer-down, sweeps
    /// and queries, never per prefix.
    pub(super) fn prefixes_of(
        &self,
        src: PathSource,
        keep: impl Fn(&IpNetwork, &Candidate) -> bool,
    ) -> Vec<IpNetwork> {
        let mut v: Vec<IpNetwork> = self
            .table
            .iter()
            .filter(|(p, e)| e.cands.iter().any(|c| c.source == src && keep(p, c)))
            .map(|(p, _)| *p)
            .collect();
        v.sort_unstable();
        v
    }

    /// Ends the session state of `peer` and removes its candidates whose prefix matches
    /// `which`.
    pub(super) fn flush_peer(
        &mut self,
        peer: PeerId,
        which: impl Fn(&IpNetwork) -> bool,
    ) -> Result<Vec<RibChange>, RibError> {
        let p = self.peer_mut(peer)?;
        p.session = None;
        p.out.clear();
        p.cache.clear();
        p.eor_seen.clear();
        let victims = self.prefixes_of(PathSource::Peer(peer), |p, _| which(p));
        let mut changes = Vec::new();
        for prefix in victims {
            self.remove_candidate(prefix, PathSource::Peer(peer), &mut changes);
        }
        Ok(changes)
    }
}
