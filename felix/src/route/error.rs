//! Errors of the route dataplane; each names the kernel object it was about.

/// What went wrong while reading or programming routes, links or neighbours.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("netlink {op} failed: {source}")]
    Netlink {
        op: String,
        source: rtnetlink::Error,
    },
    #[error(transparent)]
    Plumbing(#[from] tortie_cni::PlumbingError),
    #[error("{op}: the kernel refused: {source}{detail}")]
    Rejected {
        op: String,
        source: std::io::Error,
        /// The kernel's extended-ack text, as ` (text)`, or empty.
        detail: String,
    },
    #[error("{op}: {why}; the route's state is re-read at the next resync")]
    NoAck { op: String, why: String },
    #[error("netlink socket: {op}: {source}")]
    Socket { op: String, source: std::io::Error },
    #[error("route {dst}: interface {iface} does not exist (yet)")]
    MissingIface { dst: String, iface: String },
    #[error("route {dst}: cannot be encoded: {reason}")]
    BadRoute { dst: String, reason: String },
    #[error(
        "the kernel has no `ipip` module: device tunl0 cannot be created, IPIP routes are not \
         programmed (load the `ipip` module or use VXLAN)"
    )]
    IpipModuleMissing,
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub(crate) fn nl(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> RouteError {
    let op = op.into();
    move |source| RouteError::Netlink { op, source }
}
