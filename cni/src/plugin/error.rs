//! Errors of the plugin driver, each mapped to the CNI error code the runtime sees.
//! Messages name the field, variable, handle, interface or object concerned.

use std::error::Error as _;
use std::time::Duration;

use crate::error::PlumbingError;
use crate::spec::{ErrorCode, InvocationError};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The environment or the network configuration is wrong.
    #[error(transparent)]
    Invocation(#[from] InvocationError),
    /// The datastore could not be reached.
    #[error("cannot connect to {what}: {reason}")]
    Connect { what: String, reason: String },
    /// A datastore read or write failed.
    #[error("{what}: {source}")]
    Datastore {
        what: String,
        #[source]
        source: Box<tortie_datastore::Error>,
    },
    /// IPAM failed (pool exhausted, no pool for the node, datastore trouble).
    #[error("IPAM {op} for handle {handle}: {source}")]
    Ipam {
        op: &'static str,
        handle: String,
        #[source]
        source: Box<tortie_ipam::IpamError>,
    },
    /// IPAM handed out no address of a family the configuration asked for.
    #[error("IPAM gave handle {handle} no IPv{family} address")]
    NoAddress { handle: String, family: u8 },
    /// The container's network namespace is not there.
    #[error("CNI_NETNS: container network namespace {path} does not exist: {reason}")]
    UnknownContainer { path: String, reason: String },
    /// Kernel work (veth, addresses, routes, sysctls) failed.
    #[error("{what}: {source}")]
    Plumbing {
        what: String,
        #[source]
        source: Box<PlumbingError>,
    },
    /// CHECK found the workload not as ADD left it.
    #[error("CHECK of container {container}: {what}")]
    Check { container: String, what: String },
    /// STATUS: the plugin cannot serve ADDs now.
    #[error("plugin not available: {0}")]
    NotAvailable(String),
    /// The command did not finish in time.
    #[error("{what} did not finish within {after:?}")]
    Timeout { what: String, after: Duration },
    /// The result could not be encoded.
    #[error("cannot encode the result: {0}")]
    Encode(String),
}

impl PluginError {
    /// The CNI error code of this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            PluginError::Invocation(e) => e.code,
            PluginError::Connect { .. } | PluginError::Timeout { .. } => ErrorCode::TryAgainLater,
            PluginError::Datastore { source, .. } => {
                if matches!(**source, tortie_datastore::Error::Etcd { .. })
                    || matches!(**source, tortie_datastore::Error::Kube { .. })
                {
                    ErrorCode::TryAgainLater
                } else {
                    ErrorCode::Io
                }
            }
            PluginError::Ipam { source, .. } => match **source {
                tortie_ipam::IpamError::Store(_)
                | tortie_ipam::IpamError::TooManyConflicts { .. } => ErrorCode::TryAgainLater,
                _ => ErrorCode::Ipam,
            },
            PluginError::NoAddress { .. } => ErrorCode::Ipam,
            PluginError::UnknownContainer { .. } => ErrorCode::UnknownContainer,
            PluginError::Plumbing { .. } | PluginError::Encode(_) => ErrorCode::Io,
            PluginError::Check { .. } => ErrorCode::CheckFailed,
            PluginError::NotAvailable(_) => ErrorCode::PluginNotAvailable,
        }
    }

    /// The underlying causes the message does not already spell out, `; `-separated (the
    /// error object's `details`; usually empty, as every message embeds its cause).
    pub fn details(&self) -> String {
        let msg = self.to_string();
        let mut out: Vec<String> = Vec::new();
        let mut cur = self.source();
        while let Some(e) = cur {
            let s = e.to_string();
            if !msg.contains(&s) && !out.iter().any(|o| o.contains(&s)) {
                out.push(s);
            }
            cur = e.source();
        }
        out.join("; ")
    }

    pub(crate) fn plumbing(what: impl Into<String>) -> impl FnOnce(PlumbingError) -> Self {
        let what = what.into();
        move |source| PluginError::Plumbing {
            what,
            source: Box::new(source),
        }
    }

    pub(crate) fn ds(what: impl Into<String>) -> impl FnOnce(tortie_datastore::Error) -> Self {
        let what = what.into();
        move |source| PluginError::Datastore {
            what,
            source: Box::new(source),
        }
    }

    pub(crate) fn ipam(
        op: &'static str,
        handle: &str,
    ) -> impl FnOnce(tortie_ipam::IpamError) -> Self {
        let handle = handle.to_string();
        move |source| PluginError::Ipam {
            op,
            handle,
            source: Box::new(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_cause() {
        let exhausted = PluginError::ipam("assign", "k8s-pod-network.a")(
            tortie_ipam::IpamError::PoolExhausted {
                pools: vec!["p".into()],
                node: "n".into(),
                family: 4,
                wanted: 1,
                got: 0,
            },
        );
        assert_eq!(exhausted.code(), ErrorCode::Ipam);
        assert!(
            exhausted
                .to_string()
                .starts_with("IPAM assign for handle k8s-pod-network.a: pool(s)"),
            "{exhausted}"
        );
        let conflicts =
            PluginError::ipam("release", "h")(tortie_ipam::IpamError::TooManyConflicts {
                what: "x".into(),
                attempts: 100,
            });
        assert_eq!(conflicts.code(), ErrorCode::TryAgainLater);
        let missing =
            PluginError::ds("get WorkloadEndpoint a/b")(tortie_datastore::Error::NotFound {
                kind: "WorkloadEndpoint".into(),
                key: "a/b".into(),
            });
        assert_eq!(missing.code(), ErrorCode::Io);
        let netns = PluginError::UnknownContainer {
            path: "/x".into(),
            reason: "gone".into(),
        };
        assert_eq!(netns.code(), ErrorCode::UnknownContainer);
        assert!(netns.to_string().starts_with("CNI_NETNS"));
        let inv: PluginError = InvocationError::new(ErrorCode::InvalidConfig, "mtu: bad").into();
        assert_eq!(inv.code(), ErrorCode::InvalidConfig);
        assert_eq!(inv.to_string(), "mtu: bad");
        // Every cause is already in the message: no repeated details.
        assert_eq!(exhausted.details(), "");
        assert_eq!(inv.details(), "");
    }
}
