//! The NetworkPolicy compiler: endpoints, namespaces, Kubernetes NetworkPolicies, pools
//! and node addresses in; iptables chains (per table) and ipsets out, once per IP family
//! (IPv4 → iptables + `cali40*` sets, IPv6 → ip6tables + `cali60*` sets).
//!
//! Pure (no async, sockets or clocks). `crate::iptables` renders and programs the result.
//! Layout and semantics: CALICO-FACTS.md "iptables layout".

pub mod compile;
pub mod model;
pub mod names;
pub mod ruleset;
pub mod selector;
pub mod state;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_v6;

pub use model::{
    DataplaneConfig, Endpoint, Family, Hooks, IpSetKind, IpSetSpec, NamedPort, PolicyInput, Pool,
    Rule, Ruleset, Table, TableRules,
};
pub use ruleset::{build, build_family};
pub use state::PolicyState;

use serde::{Deserialize, Serialize};

/// Problems in the compiler's input. They never abort compilation: the offending peer,
/// port or selector matches nothing and the error is reported in `Ruleset::warnings`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum PolicyError {
    #[error("invalid label selector: {reason}")]
    BadSelector { reason: String },
    #[error("NetworkPolicy {policy}: {reason}")]
    InPolicy { policy: String, reason: String },
}
