//! Running code inside a network namespace: a dedicated OS thread enters the namespace
//! (setns affects only that thread), runs the closure and exits, so the caller's threads
//! never change namespace. Netlink sockets opened there stay bound to that namespace.

use crate::error::PlumbingError;
use nix::sched::{CloneFlags, setns};
use std::fs::File;
use std::path::{Path, PathBuf};

/// A network namespace, named by a path to its nsfs file, or the caller's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    path: Option<PathBuf>,
}

impl Netns {
    /// The namespace the calling process runs in (no setns at all).
    pub fn current() -> Self {
        Netns { path: None }
    }

    /// A namespace created by `ip netns add NAME`.
    pub fn named(name: &str) -> Self {
        Netns {
            path: Some(Path::new("/var/run/netns").join(name)),
        }
    }

    /// A namespace named by any nsfs path (`/proc/PID/ns/net`, a bind mount, ...).
    pub fn from_path(path: impl Into<PathBuf>) -> Self {
        Netns {
            path: Some(path.into()),
        }
    }

    /// The nsfs path, if this is not the caller's own namespace.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Opens the nsfs file (for moving links into the namespace).
    pub fn open(&self) -> Result<File, PlumbingError> {
        let path = self
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from("/proc/self/ns/net"));
        File::open(&path).map_err(|source| PlumbingError::NetnsOpen { path, source })
    }

    /// Runs `f` on a fresh thread that has entered this namespace, and returns its result.
    pub fn run<R, F>(&self, f: F) -> Result<R, PlumbingError>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let Some(path) = self.path.clone() else {
            return Ok(f());
        };
        let file = self.open()?;
        let thread_path = path.clone();
        let joined = std::thread::Builder::new()
            .name("tortie-netns".into())
            .spawn(move || {
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| {
                    PlumbingError::NetnsEnter {
                        path: thread_path,
                        source,
                    }
                })?;
                Ok(f())
            })
            .map_err(|_| PlumbingError::NetnsThread { path: path.clone() })?
            .join();
        match joined {
            Ok(r) => r,
            Err(_) => Err(PlumbingError::NetnsThread { path }),
        }
    }

    /// Opens an rtnetlink connection inside this namespace, driven by the caller's tokio
    /// runtime. The connection task ends when the last clone of the handle is dropped.
    pub fn connect(&self) -> Result<rtnetlink::Handle, PlumbingError> {
        let (conn, handle, _) = self.connect_raw(&[])?;
        tokio::spawn(conn);
        Ok(handle)
    }

    /// Opens an rtnetlink connection in this namespace subscribed to `groups`; the caller
    /// spawns the connection future and reads events from the receiver.
    #[allow(clippy::type_complexity)]
    pub fn connect_raw(
        &self,
        groups: &[rtnetlink::MulticastGroup],
    ) -> Result<
        (
            rtnetlink::proto::Connection<rtnetlink::packet_route::RouteNetlinkMessage>,
            rtnetlink::Handle,
            futures::channel::mpsc::UnboundedReceiver<(
                rtnetlink::packet_core::NetlinkMessage<
                    rtnetlink::packet_route::RouteNetlinkMessage,
                >,
                rtnetlink::sys::SocketAddr,
            )>,
        ),
        PlumbingError,
    > {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| PlumbingError::NoRuntime)?;
        let groups = groups.to_vec();
        let res = self.run(move || {
            let _guard = rt.enter();
            if groups.is_empty() {
                rtnetlink::new_connection()
            } else {
                rtnetlink::new_multicast_connection(&groups)
            }
        })?;
        res.map_err(|source| PlumbingError::NetlinkSocket {
            ns: self.to_string(),
            source,
        })
    }
}

impl std::fmt::Display for Netns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.path {
            Some(p) => write!(f, "netns {}", p.display()),
            None => write!(f, "own netns"),
        }
    }
}
