//! testlab: network-namespace labs and real-daemon harnesses for tortie's tests
//! (publish = false; used only from tests, benches and examples).
//!
//! What it owns:
//! - [`Lab`] / [`Host`]: a fabric namespace with one bridge per segment and host
//!   namespaces joined to it by veth; commands and long-running children inside a host.
//! - the guard: dropping a [`Lab`] (also while a test panics) kills every child it
//!   started (SIGTERM, short wait, SIGKILL, by PID), deletes its namespaces and its temp
//!   dir; stale namespaces of crashed earlier runs are reaped by the next run.
//! - [`wait_until`]: polling with a deadline instead of sleeps.
//! - real daemons started inside a host, each with its own temp dir: [`bird::Bird`]
//!   (BIRD 2), and the common [`Route`] / [`Neighbor`] types their RIB and session
//!   readers return.
//!
//! Every test using a lab needs root; [`Lab::new`] (and [`require_root`]) panic loudly
//! otherwise, tests never skip silently.
//!
//! ```no_run
//! use std::time::Duration;
//! use testlab::{Lab, wait_until};
//! use testlab::bird::{Bird, BirdConfig, BirdNeighbor};
//!
//! # fn main() -> anyhow::Result<()> {
//! let lab = Lab::new("demo")?;                      // fabric ns + bridge "lan"
//! let a = lab.add_host("a", "10.0.0.1/24")?;        // ns with eth0 10.0.0.1/24
//! let b = lab.add_host("b", "10.0.0.2/24")?;
//! assert!(a.ping("10.0.0.2".parse()?, 1, Duration::from_secs(2)));
//!
//! let mut cfg = BirdConfig::new("10.0.0.2".parse()?, 65002);
//! cfg.neighbors.push(BirdNeighbor::new("peer_a", "10.0.0.1".parse()?, 65001));
//! cfg.static_routes.push("10.2.0.0/26".parse()?);
//! let bird = Bird::start(&b, cfg)?;
//! let server = a.spawn("nc", "nc", &["-l", "179"])?;  // any program, tracked by PID
//! wait_until(Duration::from_secs(5), Duration::from_millis(100), || bird.protocol_state("peer_a"))?;
//! # drop(server);
//! Ok(())
//! # }                                               // lab dropped: all cleaned up
//! ```

pub mod bird;
pub mod error;
pub mod etcd;
pub mod frr;
pub mod gobgp;
pub mod lab;
pub mod process;
pub mod route;
pub mod wait;

pub use error::{Error, Result};
pub use lab::{DEFAULT_SEGMENT, Host, Lab, OutputExt, require_root};
pub use process::{Proc, Registry};
pub use route::{AsSegment, BgpState, Neighbor, Origin, Route, parse_as_path, routes_for};
pub use wait::{holds_for, wait_until};
