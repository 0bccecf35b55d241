//! The Kubernetes watch driver: a watch request with bookmarks from the last seen
//! `resourceVersion`; when the server ends it (timeout) or the connection breaks, a new
//! request continues from the last object or bookmark seen, so nothing is missed or
//! repeated; `410 Gone` (revision expired) re-lists and emits [`Event::Resync`].

use std::collections::VecDeque;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use kube::api::{WatchEvent, WatchParams};

use crate::error::{Error, Result};
use crate::kind::{Kind, ObjectKey};
use crate::kube::{KubeDatastore, kube_err, list_params, status_code};
use crate::store::{Event, Filter, WatchStream};

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

struct KubeWatch<K: Kind> {
    store: KubeDatastore,
    filter: Filter,
    resource_version: String,
    stream: Option<BoxStream<'static, kube::Result<WatchEvent<K>>>>,
    pending: VecDeque<Result<Event<K>>>,
    backoff: Duration,
}

/// Starts a watch of `K` after `resource_version`.
pub(crate) fn start<K: Kind>(
    store: KubeDatastore,
    filter: Filter,
    resource_version: String,
) -> Result<WatchStream<K>> {
    let watch = KubeWatch::<K> {
        store,
        filter,
        resource_version,
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

fn rv_of<K: Kind>(obj: &K) -> Option<String> {
    obj.meta().resource_version.clone()
}

impl<K: Kind> KubeWatch<K> {
    fn params(&self) -> WatchParams {
        let mut wp = WatchParams::default().timeout(self.store.watch_timeout_secs);
        wp.label_selector = self.filter.label_selector.clone();
        wp.field_selector = self.filter.field_selector.clone();
        wp
    }

    async fn next(&mut self) -> Result<Event<K>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return item;
            }
            let Some(stream) = self.stream.as_mut() else {
                self.open().await;
                continue;
            };
            match stream.next().await {
                Some(Ok(ev)) => {
                    self.backoff = BACKOFF_MIN;
                    self.handle(ev).await;
                }
                Some(Err(e)) => {
                    tracing::info!(kind = %K::kind_name(), error = %e, "watch broke; resuming");
                    self.stream = None;
                    self.pause().await;
                }
                None => {
                    tracing::debug!(kind = %K::kind_name(), rv = %self.resource_version, "watch request ended; resuming");
                    self.stream = None;
                }
            }
        }
    }

    async fn handle(&mut self, ev: WatchEvent<K>) {
        let advance = |obj: &K, rv: &mut String| {
            if let Some(v) = rv_of(obj) {
                *rv = v;
            }
        };
        match ev {
            WatchEvent::Added(o) => {
                advance(&o, &mut self.resource_version);
                self.pending.push_back(Ok(Event::Added(o)));
            }
            WatchEvent::Modified(o) => {
                advance(&o, &mut self.resource_version);
                self.pending.push_back(Ok(Event::Modified(o)));
            }
            WatchEvent::Deleted(o) => {
                advance(&o, &mut self.resource_version);
                self.pending.push_back(Ok(Event::Deleted(o)));
            }
            WatchEvent::Bookmark(b) => {
                self.resource_version = b.metadata.resource_version;
            }
            WatchEvent::Error(status) if status.code == 410 => {
                tracing::info!(kind = %K::kind_name(), rv = %self.resource_version, "watch revision expired (410); re-listing");
                self.stream = None;
                self.relist().await;
            }
            WatchEvent::Error(status) => {
                tracing::warn!(kind = %K::kind_name(), code = status.code, message = %status.message, "watch error; resuming");
                self.stream = None;
                self.pause().await;
            }
        }
    }

    async fn pause(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    async fn open(&mut self) {
        let api = self.store.api::<K>(self.filter.namespace.as_deref());
        match api.watch(&self.params(), &self.resource_version).await {
            Ok(s) => self.stream = Some(s.map_err(|e| e).boxed()),
            Err(e) if status_code(&e) == Some(410) => self.relist().await,
            Err(e) => {
                tracing::debug!(kind = %K::kind_name(), error = %e, "cannot open watch; retrying");
                self.pause().await;
            }
        }
    }

    async fn relist(&mut self) {
        let lp = list_params(&self.filter);
        let what = ObjectKey::cluster("(re-list)");
        loop {
            let api = self.store.api::<K>(self.filter.namespace.as_deref());
            match api.list(&lp).await {
                Ok(list) => {
                    let revision = list.metadata.resource_version.unwrap_or_default();
                    self.resource_version = revision.clone();
                    self.pending.push_back(Ok(Event::Resync {
                        items: list.items,
                        revision,
                    }));
                    return;
                }
                Err(e) => {
                    let err: Error = kube_err::<K>("re-list", &what, e);
                    tracing::debug!(error = %err, "re-list failed; retrying");
                    self.pause().await;
                }
            }
        }
    }
}
