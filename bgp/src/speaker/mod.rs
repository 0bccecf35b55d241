//! The tokio BGP speaker: the public handle ([`Speaker`]) the node agent uses, and the
//! types it exchanges. One owner task (in `owner`) holds the RIB and every peer's FSM and
//! is fed by one channel (API commands, frames from connection readers, accepts and
//! connects); timers are deadlines inside the owner loop. Connection reader/writer tasks
//! are owned by it and aborted when it drops them.
//!
//! ```text
//! let speaker = Speaker::start(SpeakerConfig::new(64512, "10.0.0.1".parse()?)).await?;
//! speaker.add_peer(PeerConfig::new("10.0.0.2".parse()?, 64513)).await?;
//! speaker.originate("10.244.1.0/26".parse()?, None).await?;
//! let mut routes = speaker.subscribe_routes().await?;
//! while let Some(ev) = routes.recv().await { /* RouteEvent::Changed / Synced */ }
//! ```

mod commands;
mod config;
mod net;
mod owner;
pub mod sockopt;

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

pub use crate::fsm::State;
pub use crate::rib::{NextHopMode, Paths, RibChange, RoutePath};
pub use config::{PeerConfig, SpeakerConfig};

use net::Owned;
use owner::{Command, Event, Owner};

/// Errors of the speaker API.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("peer {peer}: invalid {field}: {reason}")]
    InvalidPeerConfig {
        peer: IpAddr,
        field: &'static str,
        reason: String,
    },
    #[error("peer {peer} is already configured")]
    PeerExists { peer: IpAddr },
    #[error("peer {peer} is not configured")]
    UnknownPeer { peer: IpAddr },
    #[error("cannot set TCP MD5 password for peer {peer} on the listener: {source}")]
    Md5 {
        peer: IpAddr,
        source: std::io::Error,
    },
    #[error("route {prefix}: {reason}")]
    Route { prefix: IpNetwork, reason: String },
    #[error("the speaker has stopped")]
    Stopped,
}

/// One row of the peer table (Calico's `node status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub address: IpAddr,
    pub name: String,
    pub state: State,
    /// Wall-clock time of the last state change.
    pub since: SystemTime,
    /// Last error, e.g. `Socket: Connection refused`, `Received: Bad peer AS`.
    pub last_error: Option<String>,
    /// Calico's INFO column: `Established`, or the state and last error
    /// (`Active Socket: Connection refused`).
    pub info: String,
    pub prefixes_received: usize,
    /// Of the received prefixes, those kept as stale for a restarting peer (RFC 4724).
    pub prefixes_stale: usize,
    pub prefixes_advertised: usize,
}

/// A route event for subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteEvent {
    /// The selected paths of a prefix: every usable equal-cost path, best first; empty
    /// `paths` means withdrawn. The first events after subscribing are a snapshot of the
    /// whole Loc-RIB.
    Changed(RibChange),
    /// The snapshot is complete; later events are changes.
    Synced,
}

/// One channel message to a subscriber: every event of one RIB input (an UPDATE's worth of
/// prefix changes travels as one message, not one per prefix).
pub(crate) type RouteBatch = Vec<RouteEvent>;

/// Receiver of [`RouteEvent`]s; also a `futures::Stream`. Events arrive from the speaker in
/// batches and are handed out one at a time, in order.
#[derive(Debug)]
pub struct RouteSubscription {
    rx: mpsc::UnboundedReceiver<RouteBatch>,
    pending: std::vec::IntoIter<RouteEvent>,
}

impl RouteSubscription {
    pub(crate) fn new(rx: mpsc::UnboundedReceiver<RouteBatch>) -> RouteSubscription {
        RouteSubscription {
            rx,
            pending: Vec::new().into_iter(),
        }
    }

    /// The next event; `None` once the speaker stopped.
    pub async fn recv(&mut self) -> Option<RouteEvent> {
        std::future::poll_fn(|cx| futures::Stream::poll_next(Pin::new(&mut *self), cx)).await
    }

    /// The next event if one is waiting (never blocks); `None` when none is.
    pub fn try_recv(&mut self) -> Option<RouteEvent> {
        loop {
            if let Some(ev) = self.pending.next() {
                return Some(ev);
            }
            self.pending = self.rx.try_recv().ok()?.into_iter();
        }
    }
}

impl futures::Stream for RouteSubscription {
    type Item = RouteEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<RouteEvent>> {
        loop {
            if let Some(ev) = self.pending.next() {
                return Poll::Ready(Some(ev));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(batch)) => self.pending = batch.into_iter(),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Cheaply clonable handle to a running speaker. When the last handle is dropped the
/// owner task is aborted: every connection closes without a NOTIFICATION (which is what a
/// crash looks like to peers; use [`Speaker::shutdown`] for a clean stop).
#[derive(Debug, Clone)]
pub struct Speaker {
    tx: mpsc::Sender<Event>,
    listen_addr: Option<SocketAddr>,
    _task: Arc<Owned>,
}

impl Speaker {
    /// Binds the listener (if configured) and starts the owner task on the current
    /// tokio runtime.
    pub async fn start(config: SpeakerConfig) -> Result<Speaker, SpeakerError> {
        let listener = match config.listen {
            Some(addr) => {
                Some(net::listen(addr).map_err(|source| SpeakerError::Listen { addr, source })?)
            }
            None => None,
        };
        let listen_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        let (tx, rx) = mpsc::channel(1024);
        let owner = Owner::new(config, listener, tx.clone());
        let task = Owned(tokio::spawn(owner.run(rx)));
        Ok(Speaker {
            tx,
            listen_addr,
            _task: Arc::new(task),
        })
    }

    /// The address the listener is bound to (with the real port when 0 was asked).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen_addr
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SpeakerError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Event::Command(make(reply)))
            .await
            .map_err(|_| SpeakerError::Stopped)?;
        rx.await.map_err(|_| SpeakerError::Stopped)
    }

    /// Configures a new peer and starts its session.
    pub async fn add_peer(&self, peer: PeerConfig) -> Result<(), SpeakerError> {
        peer.validate()?;
        self.call(|reply| Command::AddPeer(Box::new(peer), reply))
            .await?
    }

    /// Changes a peer's configuration; anything but the name resets the session.
    pub async fn update_peer(&self, peer: PeerConfig) -> Result<(), SpeakerError> {
        peer.validate()?;
        self.call(|reply| Command::UpdatePeer(Box::new(peer), reply))
            .await?
    }

    /// Removes a peer (Cease/Peer De-configured) and the routes learned from it.
    pub async fn remove_peer(&self, address: IpAddr) -> Result<(), SpeakerError> {
        self.call(|reply| Command::RemovePeer(address, reply))
            .await?
    }

    /// Originates `prefix`. Each peer gets our own next hop (its session address, or the
    /// peer's `ipv6_next_hop` for IPv6); a `next_hop` given here is used instead toward
    /// peers whose next-hop mode is `Keep`.
    pub async fn originate(
        &self,
        prefix: IpNetwork,
        next_hop: Option<IpAddr>,
    ) -> Result<(), SpeakerError> {
        self.call(|reply| Command::Originate {
            prefix,
            next_hop,
            reply,
        })
        .await?
    }

    /// Withdraws a prefix we originated.
    pub async fn withdraw(&self, prefix: IpNetwork) -> Result<(), SpeakerError> {
        self.call(|reply| Command::Withdraw { prefix, reply }).await
    }

    /// Route changes, starting with a snapshot of the Loc-RIB.
    pub async fn subscribe_routes(&self) -> Result<RouteSubscription, SpeakerError> {
        let rx = self.call(Command::Subscribe).await?;
        Ok(RouteSubscription::new(rx))
    }

    /// The peer table.
    pub async fn peer_states(&self) -> Result<Vec<PeerStatus>, SpeakerError> {
        self.call(Command::PeerStates).await
    }

    /// Stops every session with Cease/Administrative Shutdown carrying `message`
    /// (RFC 9003), waits briefly for the NOTIFICATIONs to be written, and stops the
    /// speaker.
    pub async fn shutdown(&self, message: &str) -> Result<(), SpeakerError> {
        let message = message.to_string();
        self.call(|reply| Command::Shutdown { message, reply })
            .await
    }
}
