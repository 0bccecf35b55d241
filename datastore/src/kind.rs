//! What a storable kind is ([`Kind`]), how an object is addressed ([`ObjectKey`]) and how
//! keys are laid out in etcd (`<prefix>/<plural>/<namespace?>/<name>`). Pure: no I/O.
//!
//! Any `kube::Resource` with static type information (tortie's CRDs from `tortie-crds`,
//! k8s-openapi's Node, Namespace, Pod, NetworkPolicy, ConfigMap, ...) is a [`Kind`] through
//! a blanket impl; the scope (namespaced or cluster) comes from the type's `Scope`.

use std::fmt;

use kube::api::Api;
use kube::core::{ClusterResourceScope, NamespaceResourceScope};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// The scope of a kind, known at compile time from `kube::Resource::Scope`.
pub trait KindScope {
    /// True for namespaced kinds.
    const NAMESPACED: bool;

    /// An `Api` for the kind: namespaced to `ns` when given and the kind is namespaced,
    /// over all namespaces otherwise.
    fn api<K>(client: Client, ns: Option<&str>) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = Self>;
}

impl KindScope for NamespaceResourceScope {
    const NAMESPACED: bool = true;

    fn api<K>(client: Client, ns: Option<&str>) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = Self>,
    {
        match ns {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        }
    }
}

impl KindScope for ClusterResourceScope {
    const NAMESPACED: bool = false;

    fn api<K>(client: Client, _ns: Option<&str>) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = Self>,
    {
        Api::all(client)
    }
}

/// A resource kind the datastore can hold. Implemented for every suitable
/// `kube::Resource`; never implement it by hand.
pub trait Kind:
    Resource<DynamicType = (), Scope: KindScope>
    + Clone
    + fmt::Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The kind's name for messages (`IPPool`, `Node`).
    fn kind_name() -> String {
        Self::kind(&()).into_owned()
    }

    /// The plural resource name (`ippools`), the kind's segment in etcd keys.
    fn plural_name() -> String {
        Self::plural(&()).into_owned()
    }

    /// True for namespaced kinds.
    fn namespaced() -> bool {
        <Self::Scope as KindScope>::NAMESPACED
    }
}

impl<K> Kind for K where
    K: Resource<DynamicType = (), Scope: KindScope>
        + Clone
        + fmt::Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// The address of one object: its namespace (namespaced kinds only) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The namespace; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
}

impl ObjectKey {
    /// The key of a cluster-scoped object.
    pub fn cluster(name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: None,
            name: name.into(),
        }
    }

    /// The key of a namespaced object.
    pub fn namespaced(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: Some(namespace.into()),
            name: name.into(),
        }
    }

    /// The key of `obj` (its metadata name and namespace); no checks.
    pub fn of<K: Kind>(obj: &K) -> Self {
        let meta = obj.meta();
        ObjectKey {
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }

    /// Checks the key against the kind: a name that is a valid path segment, and a
    /// namespace exactly when the kind is namespaced.
    pub fn validate<K: Kind>(&self) -> Result<()> {
        let invalid = |field, reason: &str| Error::Invalid {
            kind: K::kind_name(),
            key: self.to_string(),
            field,
            reason: reason.to_string(),
        };
        check_segment(&self.name).map_err(|r| invalid("metadata.name", r))?;
        match (&self.namespace, K::namespaced()) {
            (Some(ns), true) => {
                check_segment(ns).map_err(|r| invalid("metadata.namespace", r))?;
            }
            (None, true) => {
                return Err(invalid(
                    "metadata.namespace",
                    "required: kind is namespaced",
                ));
            }
            (Some(_), false) => {
                return Err(invalid(
                    "metadata.namespace",
                    "must be empty: kind is cluster-scoped",
                ));
            }
            (None, false) => {}
        }
        Ok(())
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

fn check_segment(s: &str) -> std::result::Result<(), &'static str> {
    if s.is_empty() {
        Err("must not be empty")
    } else if s.len() > 253 {
        Err("longer than 253 characters")
    } else if s.contains('/') || s.contains('\0') || s == "." || s == ".." {
        Err("must not contain '/' or NUL, nor be '.' or '..'")
    } else {
        Ok(())
    }
}

/// The etcd key prefix of every object of `K` (in `namespace` when given), ending in `/`.
pub fn kind_prefix<K: Kind>(prefix: &str, namespace: Option<&str>) -> String {
    let base = format!("{}/{}/", prefix.trim_end_matches('/'), K::plural_name());
    match namespace {
        Some(ns) if K::namespaced() => format!("{base}{ns}/"),
        _ => base,
    }
}

/// The etcd key of one object: `<prefix>/<plural>/<namespace>/<name>` for namespaced
/// kinds, `<prefix>/<plural>/<name>` for cluster-scoped ones.
pub fn object_path<K: Kind>(prefix: &str, key: &ObjectKey) -> String {
    format!(
        "{}{}",
        kind_prefix::<K>(prefix, key.namespace.as_deref()),
        key.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Node};

    #[test]
    fn paths_follow_the_layout() {
        let k = ObjectKey::cluster("n1");
        assert_eq!(object_path::<Node>("/tortie/v1", &k), "/tortie/v1/nodes/n1");
        let k = ObjectKey::namespaced("ns", "c");
        assert_eq!(
            object_path::<ConfigMap>("/tortie/v1/", &k),
            "/tortie/v1/configmaps/ns/c"
        );
        assert_eq!(kind_prefix::<ConfigMap>("/p", None), "/p/configmaps/");
        assert_eq!(kind_prefix::<Node>("/p", Some("ignored")), "/p/nodes/");
    }

    #[test]
    fn scope_is_checked() {
        assert!(!Node::namespaced() && ConfigMap::namespaced());
        assert!(ObjectKey::cluster("a").validate::<Node>().is_ok());
        let e = ObjectKey::cluster("a").validate::<ConfigMap>().unwrap_err();
        assert!(e.to_string().contains("metadata.namespace"), "{e}");
        let e = ObjectKey::namespaced("x", "a")
            .validate::<Node>()
            .unwrap_err();
        assert!(e.to_string().contains("cluster-scoped"), "{e}");
        let e = ObjectKey::cluster("a/b").validate::<Node>().unwrap_err();
        assert!(e.to_string().contains("metadata.name"), "{e}");
        let e = ObjectKey::cluster("").validate::<Node>().unwrap_err();
        assert!(e.to_string().contains("metadata.name"), "{e}");
    }
}
