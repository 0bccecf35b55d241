//! testlab: network-namespace labs and real-daemon harnesses for tortie's tests
//! (publish = false; used only from tests, benches and examples).
//!
//! What it owns:
//! - [`Lab`] / [`Host`]: a fabric namespace with one bridge per segment
//!   ([`Lab::add_segment`]), host namespaces joined to it by veth ([`Lab::add_host`],
//!   [`Lab::add_host_on`], [`Lab::connect`] for more legs, [`Lab::add_router`] for a
//!   forwarding host between segments), link cuts ([`Lab::set_link`]); commands
//!   ([`Host::exec`], [`Host::sh`], [`Host::ip`], [`Host::sysctl`], [`Host::ping`]) and
//!   long-running children ([`Host::spawn`] → [`Proc`]) inside a host.
//! - the guard: dropping a [`Lab`] (also while a test panics) kills every child it
//!   started (SIGTERM to its process group, up to 3 s, SIGKILL), deletes its namespaces
//!   and its temp dir. Namespaces are named `tl-<pid>-<n>-<prefix>[-<host>]`; the first
//!   lab of a process reaps such namespaces (and `/tmp/testlab-<pid>-*` dirs) whose pid
//!   is dead, i.e. left by a crashed run.
//! - [`wait_until`] / [`holds_for`]: polling with deadlines instead of sleeps.
//! - real daemons, each with its own directory for config, sockets, pid and log, started
//!   inside a host and stopped by the guard (or by their `stop`/`kill`/`restart`):
//!   [`bird::Bird`] (BIRD 2), [`gobgp::GoBgp`] (gobgpd + gobgp), [`frr::Frr`] (zebra +
//!   bgpd + vtysh), [`etcd::Etcd`] (on loopback without a lab, or in a lab host). The BGP
//!   helpers read sessions (state, last error, prefix counters) and RIBs into the common
//!   [`Neighbor`] and [`Route`] types so tests compare daemons uniformly; [`Proc`] gives
//!   any daemon's log, RSS and peak RSS.
//! - [`Host::run_in`] / [`Host::thread_in`]: Rust code (std or tokio sockets, our own
//!   speaker) on a thread inside a host's namespace; TCP/UDP probes and recording
//!   servers for policy and NAT tests ([`inside::Server`], [`Host::tcp_probe`],
//!   [`Host::udp_probe`]).
//! - [`Host::capture`]: tcpdump in a host, read back as TCP streams and BGP messages
//!   ([`capture`]) — real daemons' messages as codec seeds or wire evidence.
//!
//! Tests using a lab need root: [`Lab::new`] (and [`require_root`]) panic loudly
//! otherwise; tests never skip silently. All calls are synchronous and quick; from a
//! tokio test call them directly or through `spawn_blocking`. Every daemon's log is at
//! `proc().log_path()` (under the lab dir) for failure messages.
//!
//! ```no_run
//! use std::time::Duration;
//! use testlab::bird::{Bird, BirdConfig, BirdNeighbor};
//! use testlab::gobgp::{GoBgp, GoBgpConfig, GoBgpNeighbor};
//! use testlab::{AsSegment, Lab, routes_for, wait_until};
//!
//! # fn main() -> anyhow::Result<()> {
//! let lab = Lab::new("demo")?; // fabric namespace + bridge "lan"
//! let a = lab.add_host("a", "10.0.0.1/24")?; // namespace with eth0 10.0.0.1/24
//! let b = lab.add_host("b", "10.0.0.2/24")?;
//! assert!(a.ping("10.0.0.2".parse()?, 1, Duration::from_secs(2)));
//!
//! let mut cfg = BirdConfig::new("10.0.0.1".parse()?, 65001);
//! cfg.neighbors.push(BirdNeighbor::new("peer_b", "10.0.0.2".parse()?, 65002));
//! cfg.static_routes.push("10.1.0.0/26".parse()?);
//! let bird = Bird::start(&a, cfg)?;
//!
//! let mut cfg = GoBgpConfig::new("10.0.0.2".parse()?, 65002);
//! cfg.neighbors.push(GoBgpNeighbor::new("10.0.0.1".parse()?, 65001));
//! let gobgp = GoBgp::start(&b, cfg)?;
//!
//! bird.wait_established("peer_b", Duration::from_secs(10))?;
//! let route = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
//!     let rib = gobgp.routes("ipv4")?;
//!     routes_for(&rib, "10.1.0.0/26").first().map(|r| (*r).clone())
//!         .ok_or_else(|| anyhow::anyhow!("not yet: {rib:?}"))
//! })?;
//! assert_eq!(route.next_hop, Some("10.0.0.1".parse()?));
//! assert_eq!(route.as_path, vec![AsSegment::Sequence(vec![65001])]);
//! Ok(())
//! # } // lab dropped here: daemons killed, namespaces and files removed
//! ```
//!
//! Room is left for a kube-apiserver harness module (`kube_apiserver`).

pub mod bird;
pub mod capture;
pub mod error;
pub mod etcd;
pub mod frr;
pub mod gobgp;
pub mod inside;
pub mod kube_apiserver;
pub mod lab;
pub mod process;
pub mod reap;
pub mod route;
pub mod wait;

pub use error::{Error, Result};
pub use lab::{DEFAULT_SEGMENT, Host, Lab, OutputExt, require_root};
pub use process::{Proc, Registry};
pub use route::{AsSegment, BgpState, Neighbor, Origin, Route, parse_as_path, routes_for};
pub use wait::{holds_for, wait_until};

#[cfg(test)]
mod tests {
    fn send_sync<T: Send + Sync>() {}

    /// Handles may move into `spawn_blocking` closures and be shared across threads.
    #[test]
    fn handles_are_send_and_sync() {
        send_sync::<crate::Lab>();
        send_sync::<crate::Host>();
        send_sync::<crate::Proc>();
        send_sync::<crate::bird::Bird>();
        send_sync::<crate::gobgp::GoBgp>();
        send_sync::<crate::frr::Frr>();
        send_sync::<crate::etcd::Etcd>();
    }
}
