//! The `tortie-cni` plugin driver: one invocation of the binary, from the runtime's
//! environment and stdin to the bytes printed on stdout and the exit code.
//!
//! Thin: validation and JSON come from the pure [`crate::spec`] and [`crate::conf`];
//! kernel work from [`crate::plumbing`] / [`crate::inspect`]; addresses from
//! `tortie_ipam`; objects from `tortie_datastore`. The commands live in [`add`] (ADD),
//! [`del`] (DEL) and [`check`] (CHECK, STATUS). Errors are [`PluginError`], each mapped to
//! a CNI error code.

pub mod add;
pub mod check;
pub mod del;
mod error;

use std::time::Duration;

use tortie_datastore::{Datastore, EtcdDatastore, KubeDatastore};

use crate::conf::{self, DatastoreConf, NetConf};
use crate::spec::{self, Command, ErrorResult, Invocation, VersionResult};

pub use error::PluginError;

/// How long connecting to the datastore may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one command may take in all (the runtime retries on failure).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// What the binary prints and how it exits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// Printed on stdout (may be empty).
    pub stdout: String,
    /// Process exit code (0 on success).
    pub exit_code: i32,
}

impl Output {
    fn ok(stdout: String) -> Self {
        Output {
            stdout,
            exit_code: 0,
        }
    }

    fn error(version: &str, e: &PluginError) -> Self {
        let r = ErrorResult {
            cni_version: version.to_string(),
            code: e.code().code(),
            msg: e.to_string(),
            details: e.details(),
        };
        Output {
            stdout: serde_json::to_string(&r).unwrap_or_default(),
            exit_code: 1,
        }
    }
}

/// Runs one invocation: `env` looks up the `CNI_*` variables, `stdin` is the network
/// configuration. Never panics on input; every failure is an error object on stdout.
pub async fn invoke(env: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Output {
    let version = conf::NetConf::version_of(stdin)
        .filter(|v| spec::SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| spec::LATEST_VERSION.to_string());
    let inv = match Invocation::from_env(env) {
        Ok(i) => i,
        Err(e) => return Output::error(&version, &e.into()),
    };
    if inv.command == Command::Version {
        return Output::ok(serde_json::to_string(&VersionResult::ours()).unwrap_or_default());
    }
    let conf = match NetConf::parse(stdin)
        .and_then(|c| spec::check_version(&c.cni_version, inv.command).map(|()| c))
    {
        Ok(c) => c,
        Err(e) => return Output::error(&version, &e.into()),
    };
    let run = run_command(&inv, &conf);
    match tokio::time::timeout(COMMAND_TIMEOUT, run).await {
        Ok(Ok(stdout)) => Output::ok(stdout),
        Ok(Err(e)) => Output::error(&conf.cni_version, &e),
        Err(_) => Output::error(
            &conf.cni_version,
            &PluginError::Timeout {
                what: format!("{:?} of container {}", inv.command, inv.container_id),
                after: COMMAND_TIMEOUT,
            },
        ),
    }
}

async fn run_command(inv: &Invocation, conf: &NetConf) -> Result<String, PluginError> {
    let node = node_name(conf)?;
    match inv.command {
        Command::Version => Ok(serde_json::to_string(&VersionResult::ours()).unwrap_or_default()),
        Command::Add => {
            let ds = connect(&conf.datastore).await?;
            let r = add::add(&ds, inv, conf, &node).await?;
            serde_json::to_string(&r).map_err(|e| PluginError::Encode(e.to_string()))
        }
        Command::Del => {
            let ds = connect(&conf.datastore).await?;
            del::del(&ds, inv, conf, &node).await?;
            Ok(String::new())
        }
        Command::Check => {
            let ds = connect(&conf.datastore).await?;
            check::check(&ds, inv, conf, &node).await?;
            Ok(String::new())
        }
        Command::Status => {
            let ds = connect(&conf.datastore)
                .await
                .map_err(|e| PluginError::NotAvailable(e.to_string()))?;
            check::status(&ds, &node).await?;
            Ok(String::new())
        }
        // Nothing is kept outside the datastore: leaked addresses are collected by the
        // node agent's IPAM GC, which knows every live WorkloadEndpoint.
        Command::Gc => Ok(String::new()),
    }
}

/// The node name: configured, else from `nodename_file`, else the host name.
fn node_name(conf: &NetConf) -> Result<String, PluginError> {
    // The files are read only when the name is not configured (every invocation runs this).
    let (file, host) = match &conf.node {
        conf::NodeSource::File(path) => (
            std::fs::read_to_string(path).ok(),
            std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default(),
        ),
        conf::NodeSource::Name(_) => (None, String::new()),
    };
    Ok(conf::resolve_node(&conf.node, file.as_deref(), &host)?)
}

/// The MTU: configured, else the agent's MTU file, else the fallback.
pub(crate) fn mtu(conf: &NetConf) -> u32 {
    let file = match &conf.mtu {
        conf::MtuSource::File(path) => std::fs::read_to_string(path).ok(),
        conf::MtuSource::Value(_) => None,
    };
    conf::resolve_mtu(&conf.mtu, file.as_deref())
}

/// Connects to the configured datastore (bounded by [`CONNECT_TIMEOUT`]).
pub async fn connect(c: &DatastoreConf) -> Result<Datastore, PluginError> {
    let what = match c {
        DatastoreConf::Etcd { endpoints, .. } => format!("etcd {}", endpoints.join(",")),
        DatastoreConf::Kubernetes { kubeconfig } => format!(
            "kubernetes ({})",
            kubeconfig.as_deref().unwrap_or("default kubeconfig")
        ),
    };
    let fut = async {
        match c {
            DatastoreConf::Etcd { endpoints, prefix } => EtcdDatastore::connect(endpoints, prefix)
                .await
                .map(|d| Datastore::Etcd(Box::new(d)))
                .map_err(|e| e.to_string()),
            DatastoreConf::Kubernetes { kubeconfig: None } => KubeDatastore::try_default()
                .await
                .map(Datastore::Kube)
                .map_err(|e| e.to_string()),
            DatastoreConf::Kubernetes {
                kubeconfig: Some(path),
            } => {
                let ds = KubeDatastore::from_kubeconfig(path.as_ref())
                    .await
                    .map_err(|e| format!("kubeconfig {path}: {e}"))?;
                Ok(Datastore::Kube(ds))
            }
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, fut).await {
        Ok(Ok(ds)) => Ok(ds),
        Ok(Err(reason)) => Err(PluginError::Connect { what, reason }),
        Err(_) => Err(PluginError::Connect {
            what,
            reason: format!("no answer within {CONNECT_TIMEOUT:?}"),
        }),
    }
}
