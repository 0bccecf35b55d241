//! The RIB's inputs and outputs as one serializable enum each, so a driver can record an
//! event log and a test can replay it ([`Rib::handle`]). Pure.
//!
//! Peer ids are assigned sequentially, so replaying the same inputs on a fresh [`Rib`]
//! reproduces them. The export policy hook is code, not data: a replay must install the
//! same policy first.

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::msg::{Afi, Message, PathAttributes, RouteRefresh, Update};

use super::{Negotiated, PeerConfig, PeerId, Rib, RibChange, RibError};

/// One call on the [`Rib`], as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RibInput {
    AddPeer(PeerConfig),
    RemovePeer(PeerId),
    PeerUp {
        peer: PeerId,
        negotiated: Negotiated,
    },
    PeerDown(PeerId),
    PeerDownGraceful {
        peer: PeerId,
        families: Vec<Afi>,
    },
    Update {
        peer: PeerId,
        update: Update,
    },
    RouteRefresh {
        peer: PeerId,
        message: RouteRefresh,
    },
    EndOfRib {
        peer: PeerId,
        family: Afi,
    },
    RestartTimerExpired(PeerId),
    DropStale {
        peer: PeerId,
        family: Option<Afi>,
    },
    SelectionDeferralExpired,
    Originate {
        prefix: IpNetwork,
        attrs: PathAttributes,
    },
    WithdrawLocal(IpNetwork),
    /// Drain the messages owed to a peer ([`Rib::pending_messages`]).
    Drain(PeerId),
}

/// What a [`RibInput`] produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RibOutput {
    PeerAdded(PeerId),
    /// Loc-RIB changes (possibly none).
    Changes(Vec<RibChange>),
    Messages(Vec<Message>),
    /// Accepted; nothing to report.
    Done,
}

impl Rib {
    /// Applies one input; the same as calling the corresponding method.
    pub fn handle(&mut self, input: RibInput) -> Result<RibOutput, RibError> {
        use RibOutput::{Changes, Done, Messages, PeerAdded};
        Ok(match input {
            RibInput::AddPeer(cfg) => PeerAdded(self.add_peer(cfg)),
            RibInput::RemovePeer(peer) => Changes(self.remove_peer(peer)?),
            RibInput::PeerUp { peer, negotiated } => {
                self.peer_up(peer, negotiated)?;
                Done
            }
            RibInput::PeerDown(peer) => Changes(self.peer_down(peer)?),
            RibInput::PeerDownGraceful { peer, families } => {
                Changes(self.peer_down_graceful(peer, &families)?)
            }
            RibInput::Update { peer, update } => Changes(self.apply_update(peer, &update)?),
            RibInput::RouteRefresh { peer, message } => {
                Changes(self.apply_route_refresh(peer, &message)?)
            }
            RibInput::EndOfRib { peer, family } => Changes(self.end_of_rib(peer, family)?),
            RibInput::RestartTimerExpired(peer) => Changes(self.restart_timer_expired(peer)?),
            RibInput::DropStale { peer, family } => Changes(self.drop_stale(peer, family)?),
            RibInput::SelectionDeferralExpired => Changes(self.selection_deferral_expired()),
            RibInput::Originate { prefix, attrs } => Changes(self.originate(prefix, attrs)?),
            RibInput::WithdrawLocal(prefix) => Changes(self.withdraw_local(prefix)),
            RibInput::Drain(peer) => Messages(self.pending_messages(peer)?),
        })
    }
}
