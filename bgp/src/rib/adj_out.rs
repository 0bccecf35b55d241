//! Adj-RIB-Out of one peer: what was sent, what is waiting to be sent, and the markers
//! (End-of-RIB, RFC 7313 BoRR/EoRR) that frame it. Pure.
//!
//! Desired state is recorded per prefix with [`AdjOut::set`]; a desired state equal to what
//! was already sent cancels any pending change, so a flap between two drains sends nothing.
//! [`AdjOut::drain`] turns the pending differences into packed messages and records them as
//! sent.

use ipnetwork::IpNetwork;

use crate::msg::{Afi, Message, RouteRefresh, Update};

use super::attrs::{ByAddr, SharedAttrs};
use super::hash::{FastMap, FastSet};
use super::pack::{PackCtx, pack_announcements, pack_withdrawals};

/// RFC 7313 §3.2 subtypes.
const BORR: u8 = 1;
const EORR: u8 = 2;

#[derive(Debug, Default)]
pub(crate) struct AdjOut {
    sent: FastMap<IpNetwork, SharedAttrs>,
    /// prefix → desired attributes (`None` = withdraw).
    pending: FastMap<IpNetwork, Option<SharedAttrs>>,
    /// Prefixes to re-send even if unchanged (route refresh).
    forced: FastSet<IpNetwork>,
    /// Families owed an End-of-RIB after the current pending set.
    eor_due: Vec<Afi>,
    /// Families being re-sent under enhanced route refresh (BoRR … EoRR).
    refreshing: Vec<Afi>,
}

fn family(p: &IpNetwork) -> Afi {
    if p.is_ipv6() {
        Afi::Ipv6Unicast
    } else {
        Afi::Ipv4Unicast
    }
}

impl AdjOut {
    /// Records the desired state of `prefix`.
    pub(crate) fn set(&mut self, prefix: IpNetwork, desired: Option<SharedAttrs>) {
        if desired.is_none()
            && self.sent.is_empty()
            && self.pending.is_empty()
            && self.forced.is_empty()
        {
            // Nothing sent or owed (e.g. the source peer of every route): nothing to do.
            return;
        }
        let forced = !self.forced.is_empty() && self.forced.contains(&prefix);
        if !forced && self.sent.get(&prefix) == desired.as_ref() {
            self.pending.remove(&prefix);
        } else {
            self.pending.insert(prefix, desired);
        }
    }

    /// Owes an End-of-RIB for `afi` after the pending set.
    pub(crate) fn owe_eor(&mut self, afi: Afi) {
        if !self.eor_due.contains(&afi) {
            self.eor_due.push(afi);
        }
    }

    /// Schedules every sent route of `afi` for re-sending; with `enhanced`, framed by
    /// BoRR/EoRR (RFC 7313 §4).
    pub(crate) fn refresh(&mut self, afi: Afi, enhanced: bool) {
        for (p, a) in &self.sent {
            if family(p) == afi {
                self.forced.insert(*p);
                self.pending.entry(*p).or_insert_with(|| Some(a.clone()));
            }
        }
        if enhanced && !self.refreshing.contains(&afi) {
            self.refreshing.push(afi);
        }
    }

    /// Forgets everything (session went down).
    pub(crate) fn clear(&mut self) {
        *self = AdjOut::default();
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty() || !self.eor_due.is_empty() || !self.refreshing.is_empty()
    }

    pub(crate) fn sent(&self) -> &FastMap<IpNetwork, SharedAttrs> {
        &self.sent
    }

    /// Produces the messages for everything pending, in a deterministic order: BoRRs,
    /// withdrawals, announcements grouped by attribute set, EoRRs, End-of-RIBs.
    pub(crate) fn drain(&mut self, ctx: PackCtx) -> Vec<Message> {
        let mut msgs = Vec::new();
        let refreshing = std::mem::take(&mut self.refreshing);
        for afi in &refreshing {
            msgs.push(Message::RouteRefresh(RouteRefresh {
                afi: *afi,
                subtype: BORR,
            }));
        }
        let forced = std::mem::take(&mut self.forced);
        let mut withdraw: [Vec<IpNetwork>; 2] = [Vec::new(), Vec::new()];
        let mut groups: FastMap<(ByAddr, bool), Vec<IpNetwork>> = FastMap::default();
        for (p, desired) in self.pending.drain() {
            match desired {
                None => {
                    if self.sent.remove(&p).is_some() {
                        withdraw[usize::from(p.is_ipv6())].push(p);
                    }
                }
                Some(a) => {
                    let resend = forced.contains(&p);
                    let old = self.sent.insert(p, a.clone());
                    if resend || old.as_ref() != Some(&a) {
                        groups.entry((ByAddr(a), p.is_ipv6())).or_default().push(p);
                    }
                }
            }
        }
        if self.pending.capacity() > 4096 {
            // A table dump leaves a large empty map behind; give the memory back.
            self.pending = FastMap::default();
        }
        for (i, mut w) in withdraw.into_iter().enumerate() {
            if !w.is_empty() {
                w.sort_unstable();
                msgs.extend(
                    pack_withdrawals(w, i == 1, ctx)
                        .into_iter()
                        .map(Message::Update),
                );
            }
        }
        let mut groups: Vec<_> = groups.into_iter().collect();
        for (_, ps) in &mut groups {
            ps.sort_unstable();
        }
        groups.sort_unstable_by_key(|((_, v6), ps)| (*v6, ps.first().copied()));
        for ((ByAddr(a), v6), ps) in groups {
            msgs.extend(
                pack_announcements(&a, ps, v6, ctx)
                    .into_iter()
                    .map(Message::Update),
            );
        }
        for afi in refreshing {
            msgs.push(Message::RouteRefresh(RouteRefresh { afi, subtype: EORR }));
        }
        for afi in std::mem::take(&mut self.eor_due) {
            msgs.push(Message::Update(Update::end_of_rib(afi)));
        }
        msgs
    }
}
