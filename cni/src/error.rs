//! Errors of the plumbing library: every variant names the namespace, link or file it
//! was about.

use std::path::PathBuf;

/// What went wrong while plumbing a pod or talking to netlink in a namespace.
#[derive(Debug, thiserror::Error)]
pub enum PlumbingError {
    #[error("cannot open network namespace {path}: {source}")]
    NetnsOpen {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot enter network namespace {path}: {source}")]
    NetnsEnter { path: PathBuf, source: nix::Error },
    #[error("helper thread for network namespace {path} panicked")]
    NetnsThread { path: PathBuf },
    #[error("no tokio runtime is running (netlink connections need one)")]
    NoRuntime,
    #[error("cannot open a netlink socket in {ns}: {source}")]
    NetlinkSocket { ns: String, source: std::io::Error },
    #[error("netlink {op} failed in {ns}: {source}")]
    Netlink {
        op: String,
        ns: String,
        source: rtnetlink::Error,
    },
    #[error("link {name} not found in {ns}")]
    LinkNotFound { name: String, ns: String },
    #[error("sysctl {path} = {value} failed: {source}")]
    Sysctl {
        path: String,
        value: String,
        source: std::io::Error,
    },
    #[error("invalid workload {field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },
}
