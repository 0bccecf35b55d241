//! tortie-route-reflector: the `tortie-rr` route reflector (RFC 4456) on the tortie BGP
//! speaker.
//!
//! What it owns:
//! - [`config`]: the command line (clap, with environment fallbacks) and its pure
//!   translation into a [`Config`]: speaker settings, clients and non-client peers
//!   (`IP`, `IP:PORT`, `[V6]:PORT`, one per line in a clients file), with errors naming
//!   the flag or line.
//! - [`run()`]: the thin driver: starts the speaker with the cluster id, adds every peer,
//!   serves the peer table on the status socket (the `tortiectl node status` contract of
//!   `tortie_ctl::status`) and, when the stop future resolves, ends every session with
//!   Cease/Administrative Shutdown carrying an RFC 9003 message.
//!
//! Membership driven by the datastore (watching TortieNodes) is the node agent's job; it
//! can call [`run()`] with its own [`Config`] or drive a speaker the same way.
//!
//! Port: tortie-rr listens on [`config::DEFAULT_LISTEN_PORT`] (1790) so it coexists with
//! the tortie-node on the same host, which keeps 179; clients are told `RR_IP:1790`.

pub mod config;
mod run;

pub use config::{Args, Config, ConfigError, PeerSpec};
pub use run::{RrError, SHUTDOWN_MESSAGE, run};
