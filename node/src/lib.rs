//! tortie-node: the per-node agent. It registers the node, keeps the BGP speaker's peers
//! and originated blocks equal to the datastore's plan, relays learned routes and
//! datastore objects to felix's route reconciler, and serves the peer table for
//! `tortiectl node status`.
//!
//! - [`config`] (pure): calico-node's environment variables.
//! - [`autodetect`] (pure): `IP_AUTODETECTION_METHOD` (first-found, interface=,
//!   skip-interface=, cidr=, can-reach=, kubernetes-internal-ip) over an interface
//!   list; [`address`] reads the kernel (and the Node) for it.
//! - [`plan`] (pure): mesh and BGPPeer peers, exports, felix input translation.
//! - [`endpoints`]: every node's WorkloadEndpoints, labels and ports from their Pods on
//!   Kubernetes (the datastore's per-node join, kept for each node).
//! - [`agent`]: the driver (datastore watches, speaker, felix, status server).
//! - [`health`] (pure): liveness, readiness and Prometheus metrics from one snapshot;
//!   [`health_server`] serves them over HTTP (`TORTIE_HEALTH_ADDR`, port 9099).
//! - [`policy`]: felix's policy state and iptables programmer on a thread of their own.
//! - [`tunnel`] (pure): which IPIP/VXLAN tunnel addresses (and VXLAN MAC) the node
//!   should have, from pools and IPAM; [`tunnel_driver`] assigns, releases and records.
//! - [`pod`]: the lab's pod-creation path (IPAM + cni plumbing + WorkloadEndpoint).

pub mod address;
pub mod agent;
pub mod autodetect;
pub mod config;
pub mod endpoints;
pub mod error;
pub mod health;
pub mod health_server;
pub mod plan;
pub mod pod;
pub mod policy;
pub mod tunnel;
pub mod tunnel_driver;

pub use config::{Backend, Config, DatastoreConfig, NodeIp, from_env};
pub use error::{AgentError, ConfigError};
