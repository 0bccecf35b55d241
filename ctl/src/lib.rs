//! tortie-ctl: the library behind the `tortiectl` binary, and the node status contract
//! the node agent serves.
//!
//! - [`objects`]: kinds named on the command line and the per-kind datastore calls;
//! - [`apply`]: `apply|create|replace -f` — the pure plan (validation, defaults, pool
//!   overlap, immutability, all-or-nothing) and its CAS execution;
//! - [`output`] (pure): `get` tables and YAML/JSON;
//! - [`status`]: the `node status` contract (JSON over a unix socket or loopback TCP),
//!   its server loop for `tortie-node`, the client, and Calico's peer table formatter;
//! - [`connect`]: datastore selection as calicoctl's (`--datastore-type`,
//!   `--etcd-endpoints`, `--kubeconfig`).
//!
//! Configuration errors map to exit code 64 ([`EXIT_USAGE`]), refused input to 1.

#![forbid(unsafe_code)]

pub mod apply;
pub mod connect;
pub mod objects;
pub mod output;
pub mod status;

/// Exit code of configuration/usage errors (sysexits `EX_USAGE`, as linkerd uses).
pub const EXIT_USAGE: i32 = 64;
/// Exit code of everything else that fails.
pub const EXIT_FAILURE: i32 = 1;

/// Errors of `tortiectl`.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Bad flags or arguments (exit 64).
    #[error("{0}")]
    Usage(String),
    /// The input file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file (`-` for stdin).
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A manifest document could not be read or is invalid.
    #[error(transparent)]
    Import(#[from] tortie_crds::ImportError),
    /// Documents refused by the plan; nothing was written.
    #[error("{}\nnothing was written", .0.join("\n"))]
    Rejected(Vec<String>),
    /// The datastore failed.
    #[error(transparent)]
    Datastore(#[from] tortie_datastore::Error),
    /// IPAM failed.
    #[error(transparent)]
    Ipam(#[from] tortie_ipam::IpamError),
    /// The node status endpoint failed.
    #[error(transparent)]
    Status(#[from] status::StatusError),
    /// `get KIND NAME` of an object that does not exist.
    #[error("resource does not exist: {kind} with name {name:?}")]
    NotFound {
        /// The kind.
        kind: &'static str,
        /// The name asked for.
        name: String,
    },
    /// `ipam check` found problems (the report is printed).
    #[error("ipam check found {0} problem(s)")]
    CheckFailed(usize),
}

impl CtlError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CtlError::Usage(_) => EXIT_USAGE,
            CtlError::Status(status::StatusError::BadAddr { .. }) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }
}
