//! The crate's error type. Every variant names the kind and the object (or the operation)
//! it is about, so a failed CAS loop or a broken watch says what it was doing.

/// Errors of the datastore backends.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist.
    #[error("{kind} {key} not found")]
    NotFound { kind: String, key: String },
    /// A create found the object already there.
    #[error("{kind} {key} already exists")]
    AlreadyExists { kind: String, key: String },
    /// A compare-and-swap failed: the object changed since `expected` was read.
    #[error("{kind} {key}: version conflict (expected version {expected}): {detail}")]
    Conflict {
        kind: String,
        key: String,
        expected: String,
        detail: String,
    },
    /// The object handed in is not acceptable (no name, no version for an update, a
    /// namespace on a cluster-scoped kind, ...).
    #[error("{kind} {key}: invalid {field}: {reason}")]
    Invalid {
        kind: String,
        key: String,
        field: &'static str,
        reason: String,
    },
    /// A label or field selector did not parse.
    #[error("invalid selector {selector:?}: {reason}")]
    Selector { selector: String, reason: String },
    /// An object could not be encoded to or decoded from JSON.
    #[error("{kind} {key}: cannot {op} JSON: {source}")]
    Json {
        kind: String,
        key: String,
        op: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The etcd server or the connection to it failed.
    #[error("etcd {op} {key}: {source}")]
    Etcd {
        op: &'static str,
        key: String,
        #[source]
        source: Box<etcd_client::Error>,
    },
    /// A Kubernetes client configuration (kubeconfig file, in-cluster service account)
    /// could not be loaded; the caller says which one it tried.
    #[error("{0}")]
    KubeConfig(String),
    /// The Kubernetes API server or the connection to it failed.
    #[error("kubernetes {op} {kind} {key}: {source}")]
    Kube {
        op: &'static str,
        kind: String,
        key: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// The backend cannot do what was asked.
    #[error("{backend} backend: {what} is not supported")]
    Unsupported { backend: &'static str, what: String },
}

impl Error {
    /// True for a failed compare-and-swap: re-read and try again.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }

    /// True when the object was not there.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// True when a create found the object already there.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::AlreadyExists { .. })
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
