//! The BGP RIB: Adj-RIB-In per peer, the Loc-RIB with the decision process and ECMP sets,
//! Adj-RIB-Out per peer with export rules and UPDATE packing, and graceful-restart
//! bookkeeping. Pure: no async, sockets or clocks — timers belong to the driver, which
//! reports their expiry as method calls.
//!
//! # Driving it (for the speaker's owner task)
//!
//! ```text
//! let mut rib = Rib::new(RibConfig::new(64512, router_id));
//! let p = rib.add_peer(PeerConfig::new(addr, remote_as, 64512));   // at configuration
//! rib.peer_up(p, negotiated)?;                                     // on Established
//! for peer in rib.peers_with_pending() {                           // after every input
//!     for msg in rib.pending_messages(peer)? { /* encode and send */ }
//! }
//! let changes = rib.apply_update(p, &update)?;                     // on UPDATE received
//! //   `changes` go to the node agent (every equal-cost path per prefix, or "gone").
//! rib.apply_route_refresh(p, &rr)?;                                // on ROUTE-REFRESH
//! rib.peer_down(p)?;               // session lost, no GR: its routes go
//! rib.peer_down_graceful(p, &families)?;  // session lost, peer does GR: routes kept stale
//! rib.restart_timer_expired(p)?;   // the driver's GR restart timer fired
//! rib.originate(prefix, attrs)?; rib.withdraw_local(prefix);  // our own routes
//! ```
//!
//! Every method that can change the Loc-RIB returns the [`RibChange`]s it caused, and only
//! real changes of a prefix's ECMP set (source or attributes of a path). Outgoing UPDATEs
//! accumulate per peer until [`Rib::pending_messages`] drains them, so a burst of input is
//! sent as few, fully packed messages.
//!
//! Module map: [`attrs`] (interned attribute sets), `decision` (best path, ECMP),
//! `import` (loop and next-hop checks), [`export`] (export rules, policy hook), `adj_out`
//! and `pack` (Adj-RIB-Out, UPDATE packing), `gr` (graceful restart, deferral, refresh),
//! `locrib` (the per-prefix engine), `table` (the prefix table), `cands` (a prefix's
//! candidate list), `hash` (keyed fast hasher), `input` ([`RibInput`] /
//! [`RibOutput`] for recorded event logs and [`Rib::handle`]).

mod adj_out;
pub mod attrs;
mod cands;
mod decision;
pub mod export;
mod gr;
mod hash;
mod import;
mod input;
mod locrib;
mod pack;
mod paths;
mod table;
mod types;

use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;

use crate::msg::{Afi, Message, Origin, PathAttributes, Update};

use adj_out::AdjOut;
use attrs::Interner;
use decision::Learned;
use export::SourceClass;
use hash::{FastMap, FastSet};
use pack::PackCtx;

pub use attrs::SharedAttrs;
pub use export::{AcceptAll, ExportPolicy};
pub use input::{RibInput, RibOutput};
pub use paths::Paths;
pub use types::{
    Negotiated, NextHopMode, PathSource, PeerConfig, PeerId, PeerStats, RejectReason, RibChange,
    RibConfig, RibError, RoutePath,
};

/// One candidate path of a prefix.
#[derive(Debug, Clone)]
struct Candidate {
    source: PathSource,
    attrs: SharedAttrs,
    stale: bool,
}

impl Candidate {
    /// The forwarding next hop for a prefix of the given family: NEXT_HOP (or an IPv4
    /// MP_REACH next hop) for IPv4, the MP_REACH global address for IPv6. Derived from the
    /// attributes rather than stored: import and `originate` already checked it, and the
    /// entry stays small (the Loc-RIB's size is what a table dump pays for in page faults).
    fn next_hop(&self, v6: bool) -> Option<IpAddr> {
        forwarding_next_hop(&self.attrs, v6)
    }
}

/// See [`Candidate::next_hop`].
fn forwarding_next_hop(a: &PathAttributes, v6: bool) -> Option<IpAddr> {
    match (v6, a.next_hop, a.mp_next_hop) {
        (true, _, Some((g @ IpAddr::V6(_), _))) => Some(g),
        (true, _, _) => None,
        (false, Some(v4), _) => Some(IpAddr::V4(v4)),
        (false, None, Some((g @ IpAddr::V4(_), _))) => Some(g),
        (false, None, _) => None,
    }
}

/// A prefix of the Loc-RIB: every candidate (at most one per source) and the ECMP set last
/// reported, best first.
#[derive(Debug, Default)]
struct Entry {
    cands: cands::Cands,
    selected: locrib::Selection,
}

/// (address of the input attribute set, source class, IPv6?).
type ExportKey = (usize, SourceClass, bool);

/// The Loc-RIB: prefix → entry (see `table` for why not a plain hash map).
type Table = table::PrefixTable<Entry>;

/// Per-peer state.
struct Peer {
    cfg: PeerConfig,
    /// `Some` while Established.
    session: Option<Negotiated>,
    /// BGP identifier of the last session (kept for stale routes' tie-breaks).
    router_id: Ipv4Addr,
    /// Prefixes with a candidate from this peer (its Adj-RIB-In lives in the candidates).
    received: usize,
    stale: usize,
    rejected: u64,
    last_reject: Option<RejectReason>,
    /// Families whose End-of-RIB arrived in the current session.
    eor_seen: Vec<Afi>,
    out: AdjOut,
    /// Built-in export transformation per (attribute set, source class, family).
    /// The value keeps the input set alive so its address is not reused while cached.
    cache: FastMap<ExportKey, (SharedAttrs, Option<SharedAttrs>)>,
}

impl Peer {
    fn class(&self) -> SourceClass {
        if self.cfg.is_ibgp() {
            SourceClass::Ibgp {
                client: self.cfg.rr_client,
                router_id: self.router_id,
            }
        } else {
            SourceClass::Ebgp
        }
    }

    fn learned(&self) -> Learned {
        if self.cfg.is_ibgp() {
            Learned::Ibgp {
                router_id: self.router_id,
                addr: self.cfg.address,
            }
        } else {
            Learned::Ebgp {
                router_id: self.router_id,
                addr: self.cfg.address,
            }
        }
    }
}

/// The RIB. See the module documentation for how a speaker drives it.
pub struct Rib {
    cfg: RibConfig,
    peers: Vec<Option<Peer>>,
    table: Table,
    interner: Interner,
    policy: Box<dyn ExportPolicy + Send>,
    /// Restarting speaker: selection deferred (RFC 4724 §4.1).
    deferring: bool,
    /// Prefixes touched while deferring.
    dirty: FastSet<IpNetwork>,
}

impl std::fmt::Debug for Rib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rib")
            .field("cfg", &self.cfg)
            .field("prefixes", &self.table.len())
            .field("peers", &self.peers.iter().flatten().count())
            .field("deferring", &self.deferring)
            .finish()
    }
}

/// `prefix` with its host bits cleared (the codec already delivers received prefixes so).
fn canonical(prefix: IpNetwork) -> IpNetwork {
    IpNetwork::new(prefix.network(), prefix.prefix()).unwrap_or(prefix)
}

fn family_of(p: &IpNetwork) -> Afi {
    if p.is_ipv6() {
        Afi::Ipv6Unicast
    } else {
        Afi::Ipv4Unicast
    }
}

impl Rib {
    /// An empty RIB. With [`RibConfig::defer_until_eor`] it starts deferring selection.
    pub fn new(cfg: RibConfig) -> Rib {
        Rib {
            deferring: cfg.defer_until_eor,
            cfg,
            peers: Vec::new(),
            table: Table::default(),
            interner: Interner::default(),
            policy: Box::new(AcceptAll),
            dirty: FastSet::default(),
        }
    }

    /// The configuration this RIB runs with.
    pub fn config(&self) -> &RibConfig {
        &self.cfg
    }

    /// Replaces the export policy hook and re-evaluates every Established peer's
    /// Adj-RIB-Out (differences become pending messages).
    pub fn set_export_policy(&mut self, policy: Box<dyn ExportPolicy + Send>) {
        self.policy = policy;
        if self.deferring {
            // Nothing was exported yet; the end of the deferral dumps under the new policy.
            return;
        }
        let ids: Vec<PeerId> = self.up_peers().collect();
        for id in ids {
            self.dump_to(id, false);
        }
    }

    /// Registers a peer (session not yet up). Ids are never reused.
    pub fn add_peer(&mut self, cfg: PeerConfig) -> PeerId {
        let id = PeerId(u32::try_from(self.peers.len()).unwrap_or(u32::MAX));
        self.peers.push(Some(Peer {
            cfg,
            session: None,
            router_id: Ipv4Addr::UNSPECIFIED,
            received: 0,
            stale: 0,
            rejected: 0,
            last_reject: None,
            eor_seen: Vec::new(),
            out: AdjOut::default(),
            cache: FastMap::default(),
        }));
        id
    }

    /// Unregisters a peer, removing every route it contributed.
    pub fn remove_peer(&mut self, peer: PeerId) -> Result<Vec<RibChange>, RibError> {
        let changes = self.flush_peer(peer, |_| true)?;
        if let Some(slot) = self.peers.get_mut(peer.0 as usize) {
            *slot = None;
        }
        self.check_deferral_done(&mut Vec::new());
        Ok(changes)
    }

    /// The peer's static configuration.
    pub fn peer_config(&self, peer: PeerId) -> Result<&PeerConfig, RibError> {
        Ok(&self.peer(peer)?.cfg)
    }

    /// Registered peers.
    pub fn peer_ids(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_some())
            .map(|(i, _)| PeerId(i as u32))
    }

    fn up_peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.as_ref().is_some_and(|p| p.session.is_some()))
            .map(|(i, _)| PeerId(i as u32))
    }

    fn peer(&self, id: PeerId) -> Result<&Peer, RibError> {
        self.peers
            .get(id.0 as usize)
            .and_then(Option::as_ref)
            .ok_or(RibError::UnknownPeer { peer: id })
    }

    fn peer_mut(&mut self, id: PeerId) -> Result<&mut Peer, RibError> {
        self.peers
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(RibError::UnknownPeer { peer: id })
    }

    /// The session reached Established. Queues the initial table dump and the End-of-RIB
    /// per negotiated family (held back while selection is deferred). Stale routes from a
    /// previous session stay until replaced, swept by End-of-RIB, or the restart timer.
    pub fn peer_up(&mut self, peer: PeerId, negotiated: Negotiated) -> Result<(), RibError> {
        let p = self.peer_mut(peer)?;
        p.router_id = negotiated.router_id;
        p.out.clear();
        p.cache.clear();
        p.eor_seen.clear();
        p.session = Some(negotiated);
        if !self.deferring {
            self.dump_to(peer, true);
        }
        Ok(())
    }

    /// The session went down without graceful restart: every route of the peer is removed.
    pub fn peer_down(&mut self, peer: PeerId) -> Result<Vec<RibChange>, RibError> {
        let changes = self.flush_peer(peer, |_| true)?;
        Ok(changes)
    }

    /// Applies a received UPDATE: withdrawals, then announcements (after import checks;
    /// rejected prefixes are treated as withdrawn and counted in [`PeerStats`]). An
    /// End-of-RIB marker is handled as [`Rib::end_of_rib`].
    pub fn apply_update(
        &mut self,
        peer: PeerId,
        update: &Update,
    ) -> Result<Vec<RibChange>, RibError> {
        let p = self.peer(peer)?;
        let Some(session) = &p.session else {
            return Err(RibError::PeerNotUp { peer });
        };
        if let Some(afi) = update.is_end_of_rib() {
            return self.end_of_rib(peer, afi);
        }
        let families = session.families.clone();
        let own = session.local_address;
        // At most one change per prefix: sized once instead of doubling through a burst.
        let mut changes = Vec::with_capacity(update.withdrawn.len() + update.announced.len());
        for prefix in &update.withdrawn {
            self.remove_candidate(*prefix, PathSource::Peer(peer), &mut changes);
        }
        if update.announced.is_empty() {
            return Ok(changes);
        }
        let p = self.peer(peer)?;
        let peer_address = Some(p.cfg.address);
        let checked = match &update.attrs {
            None => Err(RejectReason::BadNextHop),
            Some(a) => import::check_attrs(&self.cfg, &p.cfg, a),
        };
        let attrs = match (&update.attrs, checked) {
            (Some(a), Ok(())) => Ok(self.interner.intern(a.clone())),
            (_, Err(e)) => Err(e),
            (None, Ok(())) => Err(RejectReason::BadNextHop),
        };
        // What is the same for every prefix of one family in this UPDATE is decided once:
        // the import verdict, and the path a new prefix reports. That path carries its own
        // copy of the attribute set: subscribers drop their events on another thread, and
        // sharing the RIB's handle would bounce its reference count between the two cores
        // once per prefix.
        let source = PathSource::Peer(peer);
        let mut per_family: [Option<Result<RoutePath, RejectReason>>; 2] = [None, None];
        let mut rejected = 0u64;
        let mut last = None;
        for prefix in &update.announced {
            let v6 = prefix.is_ipv6();
            let verdict = per_family[usize::from(v6)].get_or_insert_with(|| {
                let a = attrs.as_ref().map_err(|e| *e)?;
                if !families.contains(&family_of(prefix)) {
                    return Err(RejectReason::FamilyNotNegotiated);
                }
                Ok(RoutePath {
                    source,
                    peer_address,
                    next_hop: Some(import::next_hop_for(a, v6, own)?),
                    attrs: SharedAttrs::new(PathAttributes::clone(a)),
                })
            });
            match (&*verdict, &attrs) {
                (Ok(path), Ok(a)) => {
                    let c = Candidate {
                        source,
                        attrs: a.clone(),
                        stale: false,
                    };
                    self.upsert_candidate(*prefix, c, Some(path), &mut changes);
                }
                (Err(e), _) | (_, Err(e)) => {
                    rejected += 1;
                    last = Some(*e);
                    self.remove_candidate(*prefix, source, &mut changes);
                }
            }
        }
        if rejected > 0 {
            let p = self.peer_mut(peer)?;
            p.rejected += rejected;
            p.last_reject = last;
        }
        Ok(changes)
    }

    /// Originates (or replaces) a local route. Host bits of `prefix` are cleared. A missing
    /// ORIGIN becomes IGP; a missing next hop means "self" on export. A next hop of the
    /// other family is an error.
    pub fn originate(
        &mut self,
        prefix: IpNetwork,
        mut attrs: PathAttributes,
    ) -> Result<Vec<RibChange>, RibError> {
        let prefix = canonical(prefix);
        attrs.origin.get_or_insert(Origin::Igp);
        let v6 = prefix.is_ipv6();
        // The candidate derives its next hop from these attributes; only check the family.
        match (attrs.next_hop, attrs.mp_next_hop) {
            (Some(_), _) if v6 => return Err(RibError::LocalNextHopFamily { prefix }),
            (None, Some((g, _))) if g.is_ipv6() != v6 => {
                return Err(RibError::LocalNextHopFamily { prefix });
            }
            _ => {}
        }
        let c = Candidate {
            source: PathSource::Local,
            attrs: self.interner.intern(attrs),
            stale: false,
        };
        let mut changes = Vec::new();
        self.upsert_candidate(prefix, c, None, &mut changes);
        Ok(changes)
    }

    /// Withdraws a locally originated route (no-op if there is none).
    pub fn withdraw_local(&mut self, prefix: IpNetwork) -> Vec<RibChange> {
        let mut changes = Vec::new();
        self.remove_candidate(canonical(prefix), PathSource::Local, &mut changes);
        changes
    }

    /// Peers that have messages waiting in [`Rib::pending_messages`].
    pub fn peers_with_pending(&self) -> Vec<PeerId> {
        self.peers
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.as_ref()
                    .is_some_and(|p| p.session.is_some() && p.out.has_pending())
            })
            .map(|(i, _)| PeerId(i as u32))
            .collect()
    }

    /// Drains the messages owed to `peer`: withdrawals and announcements packed by shared
    /// attributes into UPDATEs of at most [`RibConfig::max_message_size`] bytes, framed by
    /// BoRR/EoRR during an enhanced route refresh, then End-of-RIB markers after the
    /// initial dump. The Adj-RIB-Out then records them as sent.
    pub fn pending_messages(&mut self, peer: PeerId) -> Result<Vec<Message>, RibError> {
        let max_len = self.cfg.max_message_size;
        let p = self.peer_mut(peer)?;
        let Some(s) = &p.session else {
            return Err(RibError::PeerNotUp { peer });
        };
        let ctx = PackCtx {
            max_len,
            four_octet_as: s.four_octet_as,
        };
        Ok(p.out.drain(ctx))
    }

    /// The current ECMP set of `prefix` (best first), if it has a route.
    pub fn best(&self, prefix: &IpNetwork) -> Option<RibChange> {
        let e = self.table.get(prefix)?;
        if !e.has_route() {
            return None;
        }
        Some(locrib::change_of(&self.peers, *prefix, e))
    }

    /// Every prefix of the Loc-RIB with its ECMP set (unordered).
    pub fn loc_rib(&self) -> impl Iterator<Item = RibChange> + '_ {
        self.table
            .iter()
            .filter(|(_, e)| e.has_route())
            .map(|(p, e)| locrib::change_of(&self.peers, *p, e))
    }

    /// Number of prefixes with a selected route.
    pub fn loc_rib_len(&self) -> usize {
        self.table.values().filter(|e| e.has_route()).count()
    }

    /// The peer's Adj-RIB-In: every accepted prefix (sorted) with its path and stale flag.
    /// Scans the Loc-RIB: for status and tests, not for per-UPDATE use.
    pub fn adj_rib_in(&self, peer: PeerId) -> Result<Vec<(IpNetwork, RoutePath, bool)>, RibError> {
        self.peer(peer)?;
        let src = PathSource::Peer(peer);
        // One scan: each entry already holds the peer's candidate.
        let mut v: Vec<(IpNetwork, RoutePath, bool)> = self
            .table
            .iter()
            .filter_map(|(pfx, e)| {
                let c = e.cands.iter().find(|c| c.source == src)?;
                Some((
                    *pfx,
                    locrib::route_path(&self.peers, c.source, &c.attrs, c.next_hop(pfx.is_ipv6())),
                    c.stale,
                ))
            })
            .collect();
        v.sort_unstable_by_key(|(p, _, _)| *p);
        Ok(v)
    }

    /// The peer's Adj-RIB-Out: what was sent and not withdrawn.
    pub fn adj_rib_out(&self, peer: PeerId) -> Result<Vec<(IpNetwork, SharedAttrs)>, RibError> {
        Ok(self
            .peer(peer)?
            .out
            .sent()
            .iter()
            .map(|(p, a)| (*p, a.clone()))
            .collect())
    }

    /// Counters for status output.
    pub fn peer_stats(&self, peer: PeerId) -> Result<PeerStats, RibError> {
        let p = self.peer(peer)?;
        Ok(PeerStats {
            received: p.received,
            stale: p.stale,
            advertised: p.out.sent().len(),
            rejected: p.rejected,
            last_reject: p.last_reject,
        })
    }
}

#[cfg(test)]
mod layout {
    /// A table dump pays for every byte of a slot in page faults: keep the common
    /// single-candidate entry at 40 bytes (a slot with its prefix key at 64).
    #[test]
    fn entry_stays_small() {
        assert_eq!(std::mem::size_of::<super::Candidate>(), 24);
        assert_eq!(std::mem::size_of::<super::cands::Cands>(), 24);
        assert_eq!(std::mem::size_of::<super::locrib::Selection>(), 16);
        assert_eq!(std::mem::size_of::<super::Entry>(), 40);
        assert_eq!(
            std::mem::size_of::<(ipnetwork::IpNetwork, super::Entry)>(),
            64
        );
    }
}
