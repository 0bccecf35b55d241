//! Shared helpers of the interop tests: our speaker running inside a lab host (its own
//! thread and tokio runtime, so every socket lives in that host's namespace), a blocking
//! view of its Loc-RIB built from `subscribe_routes`, and small polling helpers.
//!
//! Everything here is synchronous so tests can mix it freely with testlab's blocking
//! daemon helpers.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures::executor::block_on;
use ipnetwork::IpNetwork;
use testlab::Host;
use tortie_bgp::speaker::{
    PeerConfig, PeerStatus, RibChange, RouteEvent, RouteSubscription, Speaker, SpeakerConfig, State,
};

pub const POLL: Duration = Duration::from_millis(50);
pub const UP: Duration = Duration::from_secs(15);

/// Our speaker inside a lab host. Dropping it (or [`Ours::crash`]) stops its runtime:
/// every connection closes without a NOTIFICATION.
pub struct Ours {
    pub speaker: Speaker,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<testlab::Result<()>>>,
}

impl Ours {
    pub fn start(host: &Host, cfg: SpeakerConfig) -> Result<Ours> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = host.thread_in(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow!("runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                match Speaker::start(cfg).await {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(s));
                        let _ = stop_rx.await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow!(e)));
                    }
                }
            });
        });
        let speaker = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .context("speaker thread did not report")??;
        Ok(Ours {
            speaker,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops the runtime abruptly (like a crash: no NOTIFICATION) and waits for it.
    pub fn crash(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    pub fn add_peer(&self, p: PeerConfig) -> Result<()> {
        Ok(block_on(self.speaker.add_peer(p))?)
    }

    pub fn originate(&self, prefix: &str) -> Result<()> {
        Ok(block_on(self.speaker.originate(prefix.parse()?, None))?)
    }

    pub fn withdraw(&self, prefix: &str) -> Result<()> {
        Ok(block_on(self.speaker.withdraw(prefix.parse()?))?)
    }

    pub fn peers(&self) -> Result<Vec<PeerStatus>> {
        Ok(block_on(self.speaker.peer_states())?)
    }

    pub fn peer(&self, addr: IpAddr) -> Result<PeerStatus> {
        self.peers()?
            .into_iter()
            .find(|p| p.address == addr)
            .with_context(|| format!("peer {addr} not configured"))
    }

    /// Waits until `pred` holds for the row of `addr`; the error shows the last row.
    pub fn wait_peer(
        &self,
        addr: IpAddr,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&PeerStatus) -> bool,
    ) -> Result<PeerStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let row = self.peer(addr)?;
            if pred(&row) {
                return Ok(row);
            }
            if Instant::now() > deadline {
                bail!("timed out after {timeout:?} waiting for {what}; last: {row:?}");
            }
            std::thread::sleep(POLL);
        }
    }

    pub fn wait_established(&self, addr: IpAddr) -> Result<PeerStatus> {
        self.wait_peer(addr, "Established", UP, |r| r.state == State::Established)
    }

    pub fn routes(&self) -> Result<RouteView> {
        let sub = block_on(self.speaker.subscribe_routes())?;
        Ok(RouteView {
            sub,
            table: HashMap::new(),
            log: Vec::new(),
        })
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Our Loc-RIB as seen through a subscription, with the log of every event.
pub struct RouteView {
    sub: RouteSubscription,
    pub table: HashMap<IpNetwork, RibChange>,
    /// Every change seen, in order.
    pub log: Vec<RibChange>,
}

impl RouteView {
    /// Applies every event waiting.
    pub fn poll(&mut self) {
        while let Some(ev) = self.sub.try_recv() {
            if let RouteEvent::Changed(c) = ev {
                self.log.push(c.clone());
                if c.is_withdrawal() {
                    self.table.remove(&c.prefix);
                } else {
                    self.table.insert(c.prefix, c);
                }
            }
        }
    }

    pub fn get(&mut self, prefix: &str) -> Option<RibChange> {
        self.poll();
        let p: IpNetwork = prefix.parse().ok()?;
        self.table.get(&p).cloned()
    }

    /// Waits until `prefix` is present and `pred` holds for it.
    pub fn wait_for(
        &mut self,
        prefix: &str,
        timeout: Duration,
        pred: impl Fn(&RibChange) -> bool,
    ) -> Result<RibChange> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = self.get(prefix).filter(|c| pred(c)) {
                return Ok(c);
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out waiting for {prefix} in our Loc-RIB; have {:?}",
                    self.table.keys().collect::<Vec<_>>()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    pub fn wait_gone(&mut self, prefix: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.get(prefix).is_none() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for {prefix} to leave our Loc-RIB");
            }
            std::thread::sleep(POLL);
        }
    }
}

/// A speaker config for tests: GR as asked, quick idle hold.
pub fn speaker_config(asn: u32, router_id: &str, gr: Option<u16>) -> Result<SpeakerConfig> {
    let mut c = SpeakerConfig::new(asn, router_id.parse()?);
    c.graceful_restart_time = gr;
    c.idle_hold = Duration::from_millis(500);
    Ok(c)
}

/// A peer config for tests: quick connect retry, 9 s hold.
pub fn peer_config(addr: &str, asn: u32) -> Result<PeerConfig> {
    let mut p = PeerConfig::new(addr.parse()?, asn);
    p.connect_retry = Duration::from_secs(1);
    p.hold_time = 9;
    p.name = format!("Global_{}", addr.replace(['.', ':'], "_"));
    Ok(p)
}

/// Polls `probe` until it returns `Some`, or fails with `what` and the last value seen.
pub fn wait_some<T, D: std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<(Option<T>, D)>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let (v, seen) = probe()?;
        if let Some(v) = v {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}; last seen: {seen:?}");
        }
        std::thread::sleep(POLL);
    }
}
