//! The etcd watch driver: one etcd watch on the kind's key prefix from a revision, with
//! previous values so deletions carry the deleted object and selector filters turn
//! "stopped matching" into `Deleted`. On a broken connection it re-creates the watch from
//! the revision after the last event delivered (so nothing is missed or repeated); when
//! that revision was compacted it re-lists and emits [`Event::Resync`].

use std::collections::VecDeque;
use std::time::Duration;

use etcd_client::{EventType, WatchOptions, WatchStream as EtcdStream};

use crate::codec::{decode, key_from_path};
use crate::error::Result;
use crate::etcd::{CompiledFilter, EtcdDatastore};
use crate::kind::{Kind, kind_prefix};
use crate::store::{Event, Filter, WatchStream};

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

struct EtcdWatch<K> {
    store: EtcdDatastore,
    filter: Filter,
    compiled: CompiledFilter,
    /// Key prefix watched (kind, and namespace when filtered).
    prefix: String,
    /// Prefix of the kind, for turning keys back into object keys.
    kind_prefix: String,
    /// The revision the next (re-)created watch starts at: one after the last delivered.
    next_revision: i64,
    stream: Option<EtcdStream>,
    pending: VecDeque<Result<Event<K>>>,
    backoff: Duration,
}

/// Starts a watch of `K` after revision `after`.
pub(crate) fn start<K: Kind>(
    store: EtcdDatastore,
    filter: Filter,
    after: i64,
) -> Result<WatchStream<K>> {
    let compiled = CompiledFilter::new(&filter)?;
    let watch = EtcdWatch::<K> {
        prefix: kind_prefix::<K>(&store.prefix, filter.namespace.as_deref()),
        kind_prefix: kind_prefix::<K>(&store.prefix, None),
        store,
        filter,
        compiled,
        next_revision: after.saturating_add(1),
        stream: None,
        pending: VecDeque::new(),
        backoff: BACKOFF_MIN,
    };
    Ok(Box::pin(futures::stream::unfold(
        watch,
        |mut w| async move {
            let item = w.next().await;
            Some((item, w))
        },
    )))
}

impl<K: Kind> EtcdWatch<K> {
    async fn next(&mut self) -> Result<Event<K>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return item;
            }
            let Some(stream) = self.stream.as_mut() else {
                self.open().await;
                continue;
            };
            match stream.message().await {
                Ok(Some(resp)) => {
                    self.backoff = BACKOFF_MIN;
                    if resp.compact_revision() > 0 {
                        tracing::info!(
                            prefix = %self.prefix,
                            wanted = self.next_revision,
                            compacted = resp.compact_revision(),
                            "watch revision compacted; re-listing"
                        );
                        self.stream = None;
                        self.relist().await;
                        continue;
                    }
                    if resp.canceled() {
                        tracing::warn!(prefix = %self.prefix, reason = resp.cancel_reason(), "watch canceled by etcd; re-creating");
                        self.stream = None;
                        continue;
                    }
                    for ev in resp.events() {
                        self.translate(ev);
                    }
                }
                Ok(None) => {
                    tracing::info!(prefix = %self.prefix, "watch stream ended; resuming");
                    self.stream = None;
                    self.pause().await;
                }
                Err(e) => {
                    tracing::info!(prefix = %self.prefix, error = %e, "watch stream broke; resuming");
                    self.stream = None;
                    self.pause().await;
                }
            }
        }
    }

    async fn pause(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    async fn open(&mut self) {
        let opts = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_start_revision(self.next_revision);
        match self
            .store
            .client
            .clone()
            .watch(self.prefix.as_str(), Some(opts))
            .await
        {
            Ok(stream) => self.stream = Some(stream),
            Err(e) => {
                tracing::debug!(prefix = %self.prefix, error = %e, "cannot open watch; retrying");
                self.pause().await;
            }
        }
    }

    async fn relist(&mut self) {
        loop {
            match self.store.list_kind::<K>(&self.filter).await {
                Ok((items, revision)) => {
                    self.next_revision = revision.saturating_add(1);
                    self.pending.push_back(Ok(Event::Resync {
                        items,
                        revision: revision.to_string(),
                    }));
                    return;
                }
                Err(e) if matches!(e, crate::Error::Etcd { .. }) => {
                    tracing::debug!(error = %e, "re-list failed; retrying");
                    self.pause().await;
                }
                Err(e) => {
                    // A selector that parsed once parses again; an undecodable object is
                    // reported and the re-list retried after a pause.
                    self.pending.push_back(Err(e));
                    return;
                }
            }
        }
    }

    fn translate(&mut self, ev: &etcd_client::Event) {
        let Some(kv) = ev.kv() else { return };
        let revision = kv.mod_revision();
        self.next_revision = self.next_revision.max(revision.saturating_add(1));
        let key = key_from_path(&self.kind_prefix, kv.key());
        if key.validate::<K>().is_err() {
            return;
        }
        let prev = ev
            .prev_kv()
            .map(|p| decode::<K>(p.value(), revision, &key))
            .transpose();
        let prev = match prev {
            Ok(p) => p.filter(|o| self.compiled.matches(o).unwrap_or(false)),
            Err(e) => {
                self.pending.push_back(Err(e));
                None
            }
        };
        let event = match ev.event_type() {
            EventType::Delete => prev.map(Event::Deleted),
            EventType::Put => match decode::<K>(kv.value(), revision, &key) {
                Err(e) => {
                    self.pending.push_back(Err(e));
                    return;
                }
                Ok(obj) => match (prev.is_some(), self.compiled.matches(&obj).unwrap_or(false)) {
                    (_, true) if kv.create_revision() == revision => Some(Event::Added(obj)),
                    (true, true) => Some(Event::Modified(obj)),
                    (false, true) => Some(Event::Added(obj)),
                    (true, false) => prev.map(|mut p| {
                        p.meta_mut().resource_version = Some(revision.to_string());
                        Event::Deleted(p)
                    }),
                    (false, false) => None,
                },
            },
        };
        if let Some(event) = event {
            self.pending.push_back(Ok(event));
        }
    }
}
