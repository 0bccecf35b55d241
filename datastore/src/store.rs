//! The datastore contract every backend fulfils: [`Store`] (get, list with a revision,
//! create, compare-and-swap update, delete with an optional expected version, and a
//! resuming watch), with the value types it speaks ([`Filter`], [`Listing`], [`Event`]).
//!
//! Versions are the object's own `metadata.resourceVersion`: a `get`/`list`/`create`/
//! `update` returns objects carrying it, and `update` compares-and-swaps on the version
//! the object carries (etcd: `mod_revision`; Kubernetes: `resourceVersion`). Read, change,
//! write back; on [`Error::Conflict`](crate::Error::Conflict) read again.
//!
//! Why `Store<K>` is generic over the kind in the trait rather than per method: a trait
//! with generic methods cannot be a trait object. `Store<K>` is object safe, so the node
//! agent can hold `Arc<dyn Store<IPPool>>` built by either backend (see
//! [`Datastore`](crate::Datastore)), and tests run one generic body against every backend.

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;

use crate::error::Result;
use crate::kind::{Kind, ObjectKey};

/// What a list or watch covers: a namespace (namespaced kinds only) and Kubernetes-style
/// equality selectors on labels and fields (`spec.nodeName=node1`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only objects of this namespace; `None` = all namespaces.
    pub namespace: Option<String>,
    /// `key=value,key!=value` over labels.
    pub label_selector: Option<String>,
    /// `path=value,path!=value` over fields (dotted JSON paths).
    pub field_selector: Option<String>,
}

impl Filter {
    /// Everything of the kind.
    pub fn all() -> Self {
        Filter::default()
    }

    /// Everything in one namespace.
    pub fn namespace(ns: impl Into<String>) -> Self {
        Filter {
            namespace: Some(ns.into()),
            ..Filter::default()
        }
    }

    /// Adds a field selector (e.g. `spec.nodeName=node1` for the Pods of a node).
    pub fn with_fields(mut self, selector: impl Into<String>) -> Self {
        self.field_selector = Some(selector.into());
        self
    }

    /// Adds a label selector.
    pub fn with_labels(mut self, selector: impl Into<String>) -> Self {
        self.label_selector = Some(selector.into());
        self
    }
}

/// The result of a list: the objects (each carrying its version) and the revision of the
/// store they were read at, from which a watch continues without a gap.
#[derive(Clone, Debug)]
pub struct Listing<K> {
    /// The objects, in key order.
    pub items: Vec<K>,
    /// The revision the list was read at.
    pub revision: String,
}

/// One change seen by a watch. Objects carry their new version (for `Deleted`, the
/// last state before the deletion).
#[derive(Clone, Debug)]
pub enum Event<K> {
    /// The object appeared (or started to match the filter).
    Added(K),
    /// The object changed.
    Modified(K),
    /// The object disappeared (or stopped matching the filter).
    Deleted(K),
    /// The watch's revision was compacted away (etcd) or expired (`410 Gone`): the
    /// backend re-listed. `items` is the complete current state, replacing everything
    /// the consumer knew; events after it continue from `revision`.
    Resync {
        /// Every object matching the filter now.
        items: Vec<K>,
        /// The revision of that list.
        revision: String,
    },
}

impl<K: Kind> Event<K> {
    /// The object of an Added/Modified/Deleted event.
    pub fn object(&self) -> Option<&K> {
        match self {
            Event::Added(o) | Event::Modified(o) | Event::Deleted(o) => Some(o),
            Event::Resync { .. } => None,
        }
    }
}

/// The stream a watch returns. It never ends by itself: disconnects are retried and
/// resumed from the last revision seen; an `Err` item reports a problem it stepped over
/// (an undecodable object), not the end of the stream. Dropping it stops the watch.
pub type WatchStream<K> = Pin<Box<dyn Stream<Item = Result<Event<K>>> + Send>>;

/// Storage of one kind of object. Object safe: backends hand out `Arc<dyn Store<K>>`.
#[async_trait]
pub trait Store<K: Kind>: Send + Sync {
    /// The object at `key`, or `None`.
    async fn get(&self, key: &ObjectKey) -> Result<Option<K>>;

    /// Every object matching `filter` and the revision they were read at.
    async fn list(&self, filter: &Filter) -> Result<Listing<K>>;

    /// Creates `obj` (its `resourceVersion`, if any, is ignored); fails with
    /// `AlreadyExists` when the key is taken. Returns the stored object with its version.
    async fn create(&self, obj: &K) -> Result<K>;

    /// Replaces the object if its stored version still equals `obj`'s
    /// `metadata.resourceVersion` (required); `Conflict` otherwise, `NotFound` when it is
    /// gone. Returns the stored object with its new version.
    async fn update(&self, obj: &K) -> Result<K>;

    /// Deletes the object; with `expected_version`, only if it is still at that version
    /// (`Conflict` otherwise). `NotFound` when it is not there.
    async fn delete(&self, key: &ObjectKey, expected_version: Option<&str>) -> Result<()>;

    /// Every change after `revision` (typically a [`Listing::revision`]) to objects
    /// matching `filter`, in order, across disconnects; see [`Event::Resync`].
    async fn watch(&self, filter: &Filter, revision: &str) -> Result<WatchStream<K>>;
}
