//! The Kubernetes backend: `Api<K>` for tortie's CRDs and the native kinds (Node,
//! Namespace, Pod — e.g. of one node with `Filter::with_fields("spec.nodeName=n1")` —,
//! NetworkPolicy), `resourceVersion` as the object's version (`replace` is the API
//! server's compare-and-swap, delete uses a resourceVersion precondition). The watch lives
//! in [`crate::kube_watch`].

use async_trait::async_trait;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};

use crate::error::{Error, Result};
use crate::kind::{Kind, KindScope, ObjectKey};
use crate::store::{Filter, Listing, Store, WatchStream};

/// Seconds a single watch request lasts before the server closes it and the watch
/// resumes from its last revision (the API server's own default is about 5 minutes).
pub const DEFAULT_WATCH_TIMEOUT_SECS: u32 = 290;

/// A handle on a Kubernetes API server; cheap to clone.
#[derive(Clone)]
pub struct KubeDatastore {
    pub(crate) client: Client,
    pub(crate) watch_timeout_secs: u32,
}

impl std::fmt::Debug for KubeDatastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeDatastore")
            .field("watch_timeout_secs", &self.watch_timeout_secs)
            .finish_non_exhaustive()
    }
}

impl KubeDatastore {
    /// Uses `client`.
    pub fn new(client: Client) -> Self {
        KubeDatastore {
            client,
            watch_timeout_secs: DEFAULT_WATCH_TIMEOUT_SECS,
        }
    }

    /// Connects with the environment's configuration (in-cluster or `KUBECONFIG`).
    pub async fn try_default() -> Result<Self> {
        let client = Client::try_default().await.map_err(|e| Error::Kube {
            op: "connect",
            kind: String::new(),
            key: "(default config)".into(),
            source: Box::new(e),
        })?;
        Ok(Self::new(client))
    }

    /// Connects with the kubeconfig file at `path` (its current context). Errors are
    /// [`Error::KubeConfig`] with the reason only: the caller names the file its own way.
    pub async fn from_kubeconfig(path: &std::path::Path) -> Result<Self> {
        let bad = |e: &dyn std::fmt::Display| Error::KubeConfig(e.to_string());
        let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(&e))?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .map_err(|e| bad(&e))?;
        Ok(Self::new(Client::try_from(cfg).map_err(|e| bad(&e))?))
    }

    /// Connects with the pod's service account (in-cluster configuration only).
    pub fn in_cluster() -> Result<Self> {
        let bad = |e: &dyn std::fmt::Display| Error::KubeConfig(e.to_string());
        let cfg = kube::Config::incluster().map_err(|e| bad(&e))?;
        Ok(Self::new(Client::try_from(cfg).map_err(|e| bad(&e))?))
    }

    /// Sets how long each watch request lasts before it is resumed (short in tests, so
    /// the resume path runs often).
    pub fn with_watch_timeout(mut self, secs: u32) -> Self {
        self.watch_timeout_secs = secs.max(1);
        self
    }

    /// The underlying client.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub(crate) fn api<K: Kind>(&self, ns: Option<&str>) -> Api<K> {
        <K::Scope as KindScope>::api::<K>(self.client.clone(), ns)
    }
}

/// The list parameters of `filter` (its selectors; the namespace goes into the `Api`).
pub(crate) fn list_params(filter: &Filter) -> ListParams {
    ListParams {
        label_selector: filter.label_selector.clone(),
        field_selector: filter.field_selector.clone(),
        ..ListParams::default()
    }
}

/// The HTTP status of an API error response, if that is what `e` is.
pub(crate) fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

pub(crate) fn kube_err<K: Kind>(op: &'static str, key: &ObjectKey, e: kube::Error) -> Error {
    match status_code(&e) {
        Some(404) => Error::NotFound {
            kind: K::kind_name(),
            key: key.to_string(),
        },
        _ => Error::Kube {
            op,
            kind: K::kind_name(),
            key: key.to_string(),
            source: Box::new(e),
        },
    }
}

fn checked_key<K: Kind>(obj: &K) -> Result<ObjectKey> {
    let key = ObjectKey::of(obj);
    key.validate::<K>()?;
    Ok(key)
}

fn conflict<K: Kind>(key: &ObjectKey, expected: &str, e: kube::Error) -> Error {
    let detail = match &e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    };
    Error::Conflict {
        kind: K::kind_name(),
        key: key.to_string(),
        expected: expected.to_string(),
        detail,
    }
}

#[async_trait]
impl<K: Kind> Store<K> for KubeDatastore {
    async fn get(&self, key: &ObjectKey) -> Result<Option<K>> {
        key.validate::<K>()?;
        self.api::<K>(key.namespace.as_deref())
            .get_opt(&key.name)
            .await
            .map_err(|e| kube_err::<K>("get", key, e))
    }

    async fn list(&self, filter: &Filter) -> Result<Listing<K>> {
        let lp = list_params(filter);
        let what = ObjectKey::cluster(format!("(list {:?})", filter));
        let list = self
            .api::<K>(filter.namespace.as_deref())
            .list(&lp)
            .await
            .map_err(|e| kube_err::<K>("list", &what, e))?;
        Ok(Listing {
            revision: list.metadata.resource_version.unwrap_or_default(),
            items: list.items,
        })
    }

    async fn create(&self, obj: &K) -> Result<K> {
        let key = checked_key(obj)?;
        let mut obj = obj.clone();
        obj.meta_mut().resource_version = None;
        match self
            .api::<K>(key.namespace.as_deref())
            .create(&PostParams::default(), &obj)
            .await
        {
            Ok(o) => Ok(o),
            Err(e) if status_code(&e) == Some(409) => Err(Error::AlreadyExists {
                kind: K::kind_name(),
                key: key.to_string(),
            }),
            Err(e) => Err(kube_err::<K>("create", &key, e)),
        }
    }

    async fn update(&self, obj: &K) -> Result<K> {
        let key = checked_key(obj)?;
        let Some(version) = obj.meta().resource_version.clone() else {
            return Err(Error::Invalid {
                kind: K::kind_name(),
                key: key.to_string(),
                field: "metadata.resourceVersion",
                reason: "required for a compare-and-swap update".into(),
            });
        };
        match self
            .api::<K>(key.namespace.as_deref())
            .replace(&key.name, &PostParams::default(), obj)
            .await
        {
            Ok(o) => Ok(o),
            Err(e) if status_code(&e) == Some(409) => Err(conflict::<K>(&key, &version, e)),
            Err(e) => Err(kube_err::<K>("update", &key, e)),
        }
    }

    async fn delete(&self, key: &ObjectKey, expected_version: Option<&str>) -> Result<()> {
        key.validate::<K>()?;
        let dp = DeleteParams {
            preconditions: expected_version.map(|v| Preconditions {
                resource_version: Some(v.to_string()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        match self
            .api::<K>(key.namespace.as_deref())
            .delete(&key.name, &dp)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(409) => {
                Err(conflict::<K>(key, expected_version.unwrap_or(""), e))
            }
            Err(e) => Err(kube_err::<K>("delete", key, e)),
        }
    }

    async fn watch(&self, filter: &Filter, revision: &str) -> Result<WatchStream<K>> {
        crate::kube_watch::start::<K>(self.clone(), filter.clone(), revision.to_string())
    }
}
