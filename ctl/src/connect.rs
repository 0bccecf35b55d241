//! Datastore selection, as calicoctl's: `--datastore-type etcdv3|kubernetes`
//! (`DATASTORE_TYPE`), `--etcd-endpoints` (`ETCD_ENDPOINTS`, comma separated),
//! `--kubeconfig` (`KUBECONFIG`). The decision ([`DatastoreConfig::resolve`]) is pure;
//! [`DatastoreConfig::connect`] is the thin driver.

use tortie_datastore::{Datastore, EtcdDatastore, KubeDatastore};

use crate::CtlError;

/// Key prefix of tortie's objects in etcd (shared with the node agent and the CNI
/// plugin).
pub const ETCD_PREFIX: &str = tortie_datastore::etcd::DEFAULT_ETCD_PREFIX;

/// Which backend, resolved from flags/environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatastoreConfig {
    /// etcd v3 at these endpoints.
    Etcd {
        /// `http://IP:PORT` URLs.
        endpoints: Vec<String>,
        /// Key prefix (`--etcd-prefix`, default [`ETCD_PREFIX`]).
        prefix: String,
    },
    /// The Kubernetes API, with this kubeconfig (or the inferred configuration).
    Kubernetes {
        /// `--kubeconfig`.
        kubeconfig: Option<String>,
    },
}

impl DatastoreConfig {
    /// Decides the backend; errors name the flag. etcd is the default when endpoints are
    /// given and no type is, kubernetes otherwise (as calicoctl).
    pub fn resolve(
        datastore_type: Option<&str>,
        etcd_endpoints: Option<&str>,
        kubeconfig: Option<&str>,
        etcd_prefix: Option<&str>,
    ) -> Result<DatastoreConfig, CtlError> {
        let endpoints: Vec<String> = etcd_endpoints
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let ty = match datastore_type.map(str::trim).filter(|s| !s.is_empty()) {
            Some(t) => t.to_string(),
            None if !endpoints.is_empty() => "etcdv3".to_string(),
            None => "kubernetes".to_string(),
        };
        match ty.as_str() {
            "etcdv3" | "etcd" => {
                if endpoints.is_empty() {
                    return Err(CtlError::Usage(
                        "--etcd-endpoints: required with --datastore-type etcdv3".into(),
                    ));
                }
                for e in &endpoints {
                    if !(e.starts_with("http://") || e.starts_with("https://")) {
                        return Err(CtlError::Usage(format!(
                            "--etcd-endpoints: {e:?} is not an http(s):// URL"
                        )));
                    }
                }
                let prefix = etcd_prefix.unwrap_or(ETCD_PREFIX).to_string();
                if !prefix.starts_with('/') {
                    return Err(CtlError::Usage(format!(
                        "--etcd-prefix: {prefix:?} must start with '/'"
                    )));
                }
                Ok(DatastoreConfig::Etcd { endpoints, prefix })
            }
            "kubernetes" => Ok(DatastoreConfig::Kubernetes {
                kubeconfig: kubeconfig.map(str::to_string).filter(|s| !s.is_empty()),
            }),
            other => Err(CtlError::Usage(format!(
                "--datastore-type: {other:?} is not etcdv3 or kubernetes"
            ))),
        }
    }

    /// Connects.
    pub async fn connect(&self) -> Result<Datastore, CtlError> {
        match self {
            DatastoreConfig::Etcd { endpoints, prefix } => Ok(Datastore::Etcd(Box::new(
                EtcdDatastore::connect(endpoints, prefix).await?,
            ))),
            DatastoreConfig::Kubernetes { kubeconfig: None } => {
                Ok(Datastore::Kube(KubeDatastore::try_default().await?))
            }
            DatastoreConfig::Kubernetes {
                kubeconfig: Some(path),
            } => {
                let ds = KubeDatastore::from_kubeconfig(path.as_ref())
                    .await
                    .map_err(|e| CtlError::Usage(format!("--kubeconfig {path}: {e}")))?;
                Ok(Datastore::Kube(ds))
            }
        }
    }
}
