//! API commands of the owner task: peer configuration changes, origination, route
//! subscriptions and the peer table. Runs inside the owner task (`impl Owner`), so it
//! touches the RIB and the FSMs directly.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::SystemTime;

use ipnetwork::IpNetwork;
use tokio::sync::mpsc;

use crate::fsm::{Fsm, Input, State};
use crate::msg::{Origin, PathAttributes, err};

use super::net;
use super::owner::{Command, Owner, PeerEntry, TimerKey};
use super::{PeerConfig, PeerStatus, RouteEvent, SpeakerError};

impl Owner {
    pub(super) fn command(&mut self, c: Command) {
        match c {
            Command::AddPeer(cfg, reply) => {
                let _ = reply.send(self.add_peer(*cfg));
            }
            Command::UpdatePeer(cfg, reply) => {
                let r = match self.peers.get_mut(&cfg.address) {
                    None => Err(SpeakerError::UnknownPeer { peer: cfg.address }),
                    Some(p) if !p.cfg.needs_reset(&cfg) => {
                        p.cfg = *cfg;
                        Ok(())
                    }
                    Some(_) => {
                        self.remove_peer(cfg.address, err::OTHER_CONFIG_CHANGE);
                        self.add_peer(*cfg)
                    }
                };
                let _ = reply.send(r);
            }
            Command::RemovePeer(addr, reply) => {
                let r = if self.peers.contains_key(&addr) {
                    self.remove_peer(addr, err::PEER_DECONFIGURED);
                    Ok(())
                } else {
                    Err(SpeakerError::UnknownPeer { peer: addr })
                };
                let _ = reply.send(r);
            }
            Command::Originate {
                prefix,
                next_hop,
                reply,
            } => {
                let _ = reply.send(self.originate(prefix, next_hop));
            }
            Command::Withdraw { prefix, reply } => {
                let changes = self.rib.withdraw_local(prefix);
                self.publish(changes);
                let _ = reply.send(());
            }
            Command::Subscribe(reply) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let mut snapshot: Vec<RouteEvent> =
                    self.rib.loc_rib().map(RouteEvent::Changed).collect();
                snapshot.push(RouteEvent::Synced);
                let _ = tx.send(snapshot);
                self.subscribers.push(tx);
                let _ = reply.send(rx);
            }
            Command::PeerStates(reply) => {
                let _ = reply.send(self.peer_states());
            }
            // Handled by `run`, which must await the flush.
            Command::Shutdown { reply, .. } => {
                let _ = reply.send(());
            }
        }
    }

    fn add_peer(&mut self, cfg: PeerConfig) -> Result<(), SpeakerError> {
        let addr = cfg.address;
        if self.peers.contains_key(&addr) {
            return Err(SpeakerError::PeerExists { peer: addr });
        }
        if let (Some(l), Some(pw)) = (&self.listener, &cfg.password) {
            net::listener_md5(l, addr, Some(pw))
                .map_err(|source| SpeakerError::Md5 { peer: addr, source })?;
        }
        let rib_id = self.rib.add_peer(cfg.rib_peer(&self.cfg));
        let fsm = Fsm::new(cfg.fsm_config(&self.cfg));
        self.by_rib.insert(rib_id, addr);
        self.peers.insert(
            addr,
            PeerEntry {
                cfg,
                fsm,
                rib_id,
                conns: HashMap::new(),
                connecting: None,
                since: SystemTime::now(),
                session: None,
            },
        );
        self.drive(addr, Input::AutomaticStart);
        Ok(())
    }

    fn remove_peer(&mut self, addr: IpAddr, subcode: u8) {
        self.drive(
            addr,
            Input::ManualStop {
                subcode,
                message: String::new(),
            },
        );
        let Some(p) = self.peers.remove(&addr) else {
            return;
        };
        for (_, (io, _)) in p.conns {
            self.closing.push(io.writer);
        }
        self.timers.retain(|k, _| match k {
            TimerKey::Fsm(a, _) | TimerKey::GrRestart(a) => *a != addr,
            TimerKey::Deferral => true,
        });
        self.by_rib.remove(&p.rib_id);
        if let (Some(l), Some(_)) = (&self.listener, &p.cfg.password)
            && let Err(e) = net::listener_md5(l, addr, None)
        {
            tracing::warn!(peer = %addr, error = %e, "cannot remove TCP MD5 key");
        }
        let r = self.rib.remove_peer(p.rib_id);
        self.publish_result(addr, r);
    }

    fn originate(
        &mut self,
        prefix: IpNetwork,
        next_hop: Option<IpAddr>,
    ) -> Result<(), SpeakerError> {
        if prefix.network() != prefix.ip() {
            return Err(SpeakerError::Route {
                prefix,
                reason: "host bits are set".into(),
            });
        }
        let mut attrs = PathAttributes {
            origin: Some(Origin::Igp),
            ..PathAttributes::default()
        };
        match next_hop {
            Some(IpAddr::V4(nh)) if prefix.is_ipv4() => attrs.next_hop = Some(nh),
            Some(nh) => attrs.mp_next_hop = Some((nh, None)),
            None => {}
        }
        let changes = self
            .rib
            .originate(prefix, attrs)
            .map_err(|e| SpeakerError::Route {
                prefix,
                reason: e.to_string(),
            })?;
        self.publish(changes);
        Ok(())
    }

    fn peer_states(&self) -> Vec<PeerStatus> {
        let mut rows: Vec<PeerStatus> = self
            .peers
            .iter()
            .map(|(addr, p)| {
                let stats = self.rib.peer_stats(p.rib_id).unwrap_or_default();
                let state = p.fsm.state();
                let last_error = p.fsm.last_error().map(str::to_string);
                let info = match (&last_error, state) {
                    (_, State::Established) => "Established".to_string(),
                    (Some(e), s) => format!("{s} {e}"),
                    (None, s) => s.to_string(),
                };
                PeerStatus {
                    address: *addr,
                    name: p.cfg.name.clone(),
                    state,
                    since: p.since,
                    last_error,
                    info,
                    prefixes_received: stats.received,
                    prefixes_stale: stats.stale,
                    prefixes_advertised: stats.advertised,
                }
            })
            .collect();
        rows.sort_by_key(|r| r.address);
        rows
    }
}
