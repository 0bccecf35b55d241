//! Graceful restart (RFC 4724) and route refresh (RFC 2918, RFC 7313) bookkeeping on the
//! [`Rib`]. Pure: the restart timer and the selection-deferral deadline are the driver's;
//! it reports their expiry by calling [`Rib::restart_timer_expired`] and
//! [`Rib::selection_deferral_expired`].
//!
//! Helper side (RFC 4724 §4.2): when a GR-capable peer's session is lost, its routes of the
//! families it preserves are marked stale but stay selected and forwarded; routes it sends
//! in the new session replace the stale ones; its End-of-RIB for a family sweeps exactly
//! the routes of that family still stale; restart-timer expiry sweeps all of them.
//!
//! Restarting side (RFC 4724 §4.1): with [`super::RibConfig::defer_until_eor`] the RIB
//! stores received routes but selects nothing, reports nothing and sends nothing until
//! every registered GR peer ([`super::PeerConfig::graceful_restart`]) has sent End-of-RIB
//! for each negotiated family (or the deadline passes); then it selects once and sends each
//! peer its complete table followed by End-of-RIB.

use ipnetwork::IpNetwork;

use crate::msg::{Afi, RouteRefresh};

use super::{PathSource, PeerId, Rib, RibChange, RibError, family_of};

impl Rib {
    /// The session went down and the peer had advertised graceful restart: its routes of
    /// `families` (the families of its last Graceful Restart capability, RFC 4724 §4.2) are
    /// kept as stale; routes of other families are removed now. When the peer comes back
    /// with the forwarding-state (F) bit clear for a family, call [`Rib::drop_stale`] for it.
    pub fn peer_down_graceful(
        &mut self,
        peer: PeerId,
        families: &[Afi],
    ) -> Result<Vec<RibChange>, RibError> {
        let keep = families.to_vec();
        let changes = self.flush_peer(peer, |p| !keep.contains(&family_of(p)))?;
        self.mark_stale(peer, None)?;
        Ok(changes)
    }

    /// The peer's restart timer expired before it came back (or before its End-of-RIB):
    /// every stale route of the peer is removed.
    pub fn restart_timer_expired(&mut self, peer: PeerId) -> Result<Vec<RibChange>, RibError> {
        self.sweep_stale(peer, None)
    }

    /// End-of-RIB for `family` received from `peer`: its routes of that family still stale
    /// are removed; during selection deferral this may complete the deferral.
    pub fn end_of_rib(&mut self, peer: PeerId, family: Afi) -> Result<Vec<RibChange>, RibError> {
        let p = self.peer_mut(peer)?;
        if !p.eor_seen.contains(&family) {
            p.eor_seen.push(family);
        }
        let mut changes = self.sweep_stale(peer, Some(family))?;
        self.check_deferral_done(&mut changes);
        Ok(changes)
    }

    /// Removes the peer's stale routes of `family` (all families when `None`) now: for a
    /// re-established peer whose Graceful Restart capability has the F bit clear for that
    /// family (RFC 4724 §4.2), or any other reason to stop waiting for End-of-RIB.
    pub fn drop_stale(
        &mut self,
        peer: PeerId,
        family: Option<Afi>,
    ) -> Result<Vec<RibChange>, RibError> {
        self.sweep_stale(peer, family)
    }

    /// Marks the peer's routes of `family` (all when `None`) stale.
    fn mark_stale(&mut self, peer: PeerId, family: Option<Afi>) -> Result<(), RibError> {
        self.peer(peer)?;
        let src = PathSource::Peer(peer);
        let mut marked = 0;
        for (prefix, e) in self.table.iter_mut() {
            if family.is_none_or(|f| family_of(prefix) == f)
                && let Some(c) = e.cands.iter_mut().find(|c| c.source == src)
                && !c.stale
            {
                c.stale = true;
                marked += 1;
            }
        }
        self.peer_mut(peer)?.stale += marked;
        Ok(())
    }

    fn sweep_stale(
        &mut self,
        peer: PeerId,
        family: Option<Afi>,
    ) -> Result<Vec<RibChange>, RibError> {
        let p = self.peer(peer)?;
        let mut changes = Vec::new();
        if p.stale == 0 {
            return Ok(changes);
        }
        let src = PathSource::Peer(peer);
        let victims = self.prefixes_of(src, |p, c| {
            c.stale && family.is_none_or(|f| family_of(p) == f)
        });
        for prefix in victims {
            self.remove_candidate(prefix, src, &mut changes);
        }
        Ok(changes)
    }

    /// True while a restarting speaker still defers selection.
    pub fn is_deferring(&self) -> bool {
        self.deferring
    }

    /// The selection-deferral deadline passed: select and export now, whatever End-of-RIBs
    /// are still missing.
    pub fn selection_deferral_expired(&mut self) -> Vec<RibChange> {
        let mut changes = Vec::new();
        if self.deferring {
            self.finish_deferral(&mut changes);
        }
        changes
    }

    /// Ends the deferral when every GR peer delivered End-of-RIB for all its families.
    pub(super) fn check_deferral_done(&mut self, changes: &mut Vec<RibChange>) {
        if !self.deferring {
            return;
        }
        let mut waited_for = 0;
        for p in self
            .peers
            .iter()
            .flatten()
            .filter(|p| p.cfg.graceful_restart)
        {
            let Some(s) = &p.session else {
                return;
            };
            if !s.families.iter().all(|f| p.eor_seen.contains(f)) {
                return;
            }
            waited_for += 1;
        }
        if waited_for > 0 {
            self.finish_deferral(changes);
        }
    }

    fn finish_deferral(&mut self, changes: &mut Vec<RibChange>) {
        self.deferring = false;
        let mut dirty: Vec<IpNetwork> = self.dirty.drain().collect();
        // Sorted: change events come in the same order on every run (replayable logs).
        dirty.sort_unstable();
        for prefix in dirty {
            self.recompute(prefix, changes);
        }
        let ids: Vec<PeerId> = self.up_peers().collect();
        for id in ids {
            self.dump_to(id, true);
        }
    }

    /// The peer asked us to re-send `family` (ROUTE-REFRESH, RFC 2918): the whole
    /// Adj-RIB-Out of that family is queued again, framed by BoRR/EoRR when enhanced route
    /// refresh was negotiated (RFC 7313).
    pub fn route_refresh(&mut self, peer: PeerId, family: Afi) -> Result<(), RibError> {
        let p = self.peer_mut(peer)?;
        let Some(s) = &p.session else {
            return Err(RibError::PeerNotUp { peer });
        };
        if !s.families.contains(&family) {
            return Err(RibError::FamilyNotNegotiated { peer, family });
        }
        let enhanced = s.enhanced_route_refresh;
        p.out.refresh(family, enhanced);
        Ok(())
    }

    /// Handles a received ROUTE-REFRESH message: a request (subtype 0) re-sends our routes;
    /// BoRR (1) marks the peer's routes of that family stale; EoRR (2) removes those still
    /// stale (RFC 7313 §4).
    pub fn apply_route_refresh(
        &mut self,
        peer: PeerId,
        rr: &RouteRefresh,
    ) -> Result<Vec<RibChange>, RibError> {
        match rr.subtype {
            0 => self.route_refresh(peer, rr.afi).map(|()| Vec::new()),
            1 => {
                self.mark_stale(peer, Some(rr.afi))?;
                Ok(Vec::new())
            }
            2 => self.sweep_stale(peer, Some(rr.afi)),
            _ => Ok(Vec::new()),
        }
    }
}
