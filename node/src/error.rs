//! The crate's error types: [`ConfigError`] (exit code 64) and [`AgentError`] for
//! everything that stops the agent or a pod setup, each naming what it was doing.

/// A configuration value is missing or wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
}

/// Errors of the agent and of the pod-creation path.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("datastore: {what}: {source}")]
    Datastore {
        what: String,
        #[source]
        source: tortie_datastore::Error,
    },
    #[error("IPAM for pod {pod}: {source}")]
    Ipam {
        pod: String,
        #[source]
        source: tortie_ipam::IpamError,
    },
    #[error("BGP speaker: {what}: {source}")]
    Bgp {
        what: String,
        #[source]
        source: tortie_bgp::speaker::SpeakerError,
    },
    #[error("felix: {source}")]
    Felix {
        #[source]
        source: tortie_felix::route::RouteError,
    },
    #[error("plumbing {what}: {source}")]
    Plumbing {
        what: String,
        #[source]
        source: tortie_cni::PlumbingError,
    },
    #[error("status server at {addr}: {source}")]
    Status {
        addr: String,
        #[source]
        source: tortie_ctl::status::StatusError,
    },
    #[error("health listener TORTIE_HEALTH_ADDR={addr}: {source}")]
    Health {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{kind:?} tunnel address of node {node}: {source}")]
    TunnelAddr {
        node: String,
        kind: tortie_ipam::TunnelKind,
        #[source]
        source: tortie_ipam::IpamError,
    },
    #[error("TortieNode {node}: {reason}")]
    NodeWrite { node: String, reason: String },
    #[error("felix policy (iptables): {0}")]
    Policy(String),
    #[error("Kubernetes datastore: {0}")]
    Kube(String),
    #[error("no node address: {0}")]
    NoAddress(String),
    #[error("{path}: {source}")]
    StateFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl AgentError {
    pub(crate) fn ds(
        what: impl Into<String>,
    ) -> impl FnOnce(tortie_datastore::Error) -> AgentError {
        let what = what.into();
        move |source| AgentError::Datastore { what, source }
    }

    pub(crate) fn bgp(
        what: impl Into<String>,
    ) -> impl FnOnce(tortie_bgp::speaker::SpeakerError) -> AgentError {
        let what = what.into();
        move |source| AgentError::Bgp { what, source }
    }
}
