//! tortie-datastore: the one storage contract of tortie ([`Store`]) and its two real
//! backends — etcd v3 ([`EtcdDatastore`]: JSON under one key prefix, `mod_revision` as
//! version) and Kubernetes ([`KubeDatastore`]: CRDs and native objects, `resourceVersion`
//! as version) — with compare-and-swap writes and resuming, re-listing watches.
//!
//! Pure parts: [`kind`] (addressing, key layout), [`codec`] (stored JSON), [`selector`]
//! (label/field selectors). Drivers: [`etcd`], [`etcd_watch`], [`kube`], [`kube_watch`].

use std::sync::Arc;

pub mod codec;
pub mod endpoints;
pub mod error;
pub mod etcd;
mod etcd_watch;
pub mod kind;
pub mod kube;
mod kube_watch;
pub mod selector;
pub mod store;

pub use error::{Error, Result};
pub use etcd::EtcdDatastore;
pub use kind::{Kind, ObjectKey};
pub use kube::KubeDatastore;
pub use store::{Event, Filter, Listing, Store, WatchStream};

/// Either backend, chosen at start-up; hands out object-safe per-kind stores.
#[derive(Clone, Debug)]
pub enum Datastore {
    /// etcd v3 (boxed: the etcd client is large).
    Etcd(Box<EtcdDatastore>),
    /// The Kubernetes API.
    Kube(KubeDatastore),
}

impl Datastore {
    /// The store of kind `K`.
    pub fn store<K: Kind>(&self) -> Arc<dyn Store<K>> {
        match self {
            Datastore::Etcd(d) => Arc::new(EtcdDatastore::clone(d)),
            Datastore::Kube(d) => Arc::new(d.clone()),
        }
    }

    /// The backend's name (`etcd`, `kubernetes`).
    pub fn backend(&self) -> &'static str {
        match self {
            Datastore::Etcd(_) => "etcd",
            Datastore::Kube(_) => "kubernetes",
        }
    }
}
