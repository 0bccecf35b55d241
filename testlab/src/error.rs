//! The crate's error type. Every variant names the command, field, daemon or file it is
//! about, so a failing test says what broke without a debugger.

use std::time::Duration;

/// Errors of the lab and the daemon helpers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A program could not be started at all (not installed, bad path).
    #[error("cannot start `{cmd}`: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    /// A program ran and exited unsuccessfully.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    /// A file or directory operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// An argument given to the lab was not acceptable.
    #[error("invalid {field} {value:?}: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: String,
    },
    /// A daemon's output could not be understood.
    #[error("{daemon}: cannot parse {what}: {detail}")]
    Parse {
        daemon: &'static str,
        what: String,
        detail: String,
    },
    /// Something did not become ready in time.
    #[error("{what} not ready after {after:?}: {last}")]
    Timeout {
        what: String,
        after: Duration,
        last: String,
    },
    /// A process exited although it was expected to keep running.
    #[error("{what} exited early ({status}); log {log}:\n{tail}")]
    Exited {
        what: String,
        status: String,
        log: String,
        tail: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn invalid(
        field: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            field,
            value: value.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn parse(
        daemon: &'static str,
        what: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Error::Parse {
            daemon,
            what: what.into(),
            detail: detail.into(),
        }
    }
}
