//! The etcd v3 backend: objects as JSON under one key prefix
//! (`<prefix>/<plural>/<namespace?>/<name>`, prefix `/tortie/v1` by default), the key's
//! `mod_revision` as the object's version, transactions for create-if-absent, CAS update
//! and CAS delete. The watch lives in [`crate::etcd_watch`].

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, KeyValue, Txn, TxnOp, TxnOpResponse,
    TxnResponse,
};

use crate::codec::{decode, encode, key_from_path, parse_revision};
use crate::error::{Error, Result};
use crate::kind::{Kind, ObjectKey, kind_prefix, object_path};
use crate::selector::Selector;
use crate::store::{Filter, Listing, Store, WatchStream};

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "/tortie/v1";

/// The key prefix every tortie program uses on etcd unless told otherwise (the agent's
/// `ETCD_PREFIX`, tortiectl's `--etcd-prefix`, the CNI config's `etcd_prefix`).
pub const DEFAULT_ETCD_PREFIX: &str = "/tortie";

/// A handle on an etcd cluster holding tortie's objects; cheap to clone.
#[derive(Clone)]
pub struct EtcdDatastore {
    pub(crate) client: Client,
    pub(crate) prefix: String,
}

impl std::fmt::Debug for EtcdDatastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdDatastore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl EtcdDatastore {
    /// Connects to `endpoints` (`http://127.0.0.1:2379`) and stores under `prefix`
    /// (no trailing slash; [`DEFAULT_PREFIX`] in production, a unique one per test).
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<Self> {
        let client = Client::connect(endpoints, None)
            .await
            .map_err(|e| etcd_err("connect", endpoints.join(","), e))?;
        Ok(Self::from_client(client, prefix))
    }

    /// Wraps an already connected client.
    pub fn from_client(client: Client, prefix: &str) -> Self {
        EtcdDatastore {
            client,
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The underlying client (for compaction in tests, status, ...).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    async fn txn(&self, op: &'static str, path: &str, txn: Txn) -> Result<TxnResponse> {
        self.client
            .clone()
            .txn(txn)
            .await
            .map_err(|e| etcd_err(op, path.to_string(), e))
    }

    /// Lists `K` at the newest revision; shared with the watch's re-list.
    pub(crate) async fn list_kind<K: Kind>(&self, filter: &Filter) -> Result<(Vec<K>, i64)> {
        let compiled = CompiledFilter::new(filter)?;
        let prefix = kind_prefix::<K>(&self.prefix, filter.namespace.as_deref());
        let resp = self
            .client
            .clone()
            .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| etcd_err("list", prefix.clone(), e))?;
        let revision = resp.header().map(|h| h.revision()).unwrap_or_default();
        let base = kind_prefix::<K>(&self.prefix, None);
        let mut items = Vec::with_capacity(resp.kvs().len());
        for kv in resp.kvs() {
            let key = key_from_path(&base, kv.key());
            // Keys of another kind sharing the prefix text (`nodes` vs `nodesx`) cannot occur:
            // the prefix ends in '/'. A cluster-scoped key inside a namespaced prefix can
            // only come from a foreign writer; skip what does not fit the kind.
            if key.validate::<K>().is_err() {
                continue;
            }
            let obj: K = decode(kv.value(), kv.mod_revision(), &key)?;
            if compiled.matches(&obj)? {
                items.push(obj);
            }
        }
        Ok((items, revision))
    }
}

/// A [`Filter`] with its selectors parsed, evaluated on decoded objects.
pub(crate) struct CompiledFilter {
    labels: Option<Selector>,
    fields: Option<Selector>,
}

impl CompiledFilter {
    pub(crate) fn new(filter: &Filter) -> Result<Self> {
        Ok(CompiledFilter {
            labels: filter
                .label_selector
                .as_deref()
                .map(Selector::parse)
                .transpose()?,
            fields: filter
                .field_selector
                .as_deref()
                .map(Selector::parse)
                .transpose()?,
        })
    }

    pub(crate) fn matches<K: Kind>(&self, obj: &K) -> Result<bool> {
        if let Some(labels) = &self.labels {
            let empty = Default::default();
            if !labels.matches_labels(obj.meta().labels.as_ref().unwrap_or(&empty)) {
                return Ok(false);
            }
        }
        if let Some(fields) = &self.fields {
            let value = serde_json::to_value(obj).map_err(|source| Error::Json {
                kind: K::kind_name(),
                key: ObjectKey::of(obj).to_string(),
                op: "encode",
                source,
            })?;
            if !fields.matches_fields(&value) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

pub(crate) fn etcd_err(op: &'static str, key: String, e: etcd_client::Error) -> Error {
    Error::Etcd {
        op,
        key,
        source: Box::new(e),
    }
}

fn first_get_kv(resp: &TxnResponse) -> Option<KeyValue> {
    resp.op_responses().into_iter().find_map(|r| match r {
        TxnOpResponse::Get(mut g) => g.take_kvs().into_iter().next(),
        _ => None,
    })
}

fn txn_revision(resp: &TxnResponse) -> i64 {
    resp.header().map(|h| h.revision()).unwrap_or_default()
}

fn checked_key<K: Kind>(obj: &K) -> Result<ObjectKey> {
    let key = ObjectKey::of(obj);
    key.validate::<K>()?;
    Ok(key)
}

#[async_trait]
impl<K: Kind> Store<K> for EtcdDatastore {
    async fn get(&self, key: &ObjectKey) -> Result<Option<K>> {
        key.validate::<K>()?;
        let path = object_path::<K>(&self.prefix, key);
        let mut resp = self
            .client
            .clone()
            .get(path.as_str(), None)
            .await
            .map_err(|e| etcd_err("get", path.clone(), e))?;
        match resp.take_kvs().into_iter().next() {
            Some(kv) => Ok(Some(decode(kv.value(), kv.mod_revision(), key)?)),
            None => Ok(None),
        }
    }

    async fn list(&self, filter: &Filter) -> Result<Listing<K>> {
        let (items, revision) = self.list_kind::<K>(filter).await?;
        Ok(Listing {
            items,
            revision: revision.to_string(),
        })
    }

    async fn create(&self, obj: &K) -> Result<K> {
        let key = checked_key(obj)?;
        let path = object_path::<K>(&self.prefix, &key);
        let bytes = encode(obj, &key)?;
        let txn = Txn::new()
            .when([Compare::create_revision(path.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(path.as_str(), bytes.clone(), None)]);
        let resp = self.txn("create", &path, txn).await?;
        if !resp.succeeded() {
            return Err(Error::AlreadyExists {
                kind: K::kind_name(),
                key: key.to_string(),
            });
        }
        decode(&bytes, txn_revision(&resp), &key)
    }

    async fn update(&self, obj: &K) -> Result<K> {
        let key = checked_key(obj)?;
        let Some(version) = obj.meta().resource_version.as_deref() else {
            return Err(Error::Invalid {
                kind: K::kind_name(),
                key: key.to_string(),
                field: "metadata.resourceVersion",
                reason: "required for a compare-and-swap update".into(),
            });
        };
        let expected = parse_revision::<K>(version, &key, "metadata.resourceVersion")?;
        let path = object_path::<K>(&self.prefix, &key);
        let bytes = encode(obj, &key)?;
        let txn = Txn::new()
            .when([Compare::mod_revision(
                path.as_str(),
                CompareOp::Equal,
                expected,
            )])
            .and_then([TxnOp::put(path.as_str(), bytes.clone(), None)])
            .or_else([TxnOp::get(path.as_str(), None)]);
        let resp = self.txn("update", &path, txn).await?;
        if resp.succeeded() {
            return decode(&bytes, txn_revision(&resp), &key);
        }
        match first_get_kv(&resp) {
            None => Err(Error::NotFound {
                kind: K::kind_name(),
                key: key.to_string(),
            }),
            Some(kv) => Err(Error::Conflict {
                kind: K::kind_name(),
                key: key.to_string(),
                expected: version.to_string(),
                detail: format!("stored version is {}", kv.mod_revision()),
            }),
        }
    }

    async fn delete(&self, key: &ObjectKey, expected_version: Option<&str>) -> Result<()> {
        key.validate::<K>()?;
        let path = object_path::<K>(&self.prefix, key);
        let not_found = || Error::NotFound {
            kind: K::kind_name(),
            key: key.to_string(),
        };
        let Some(version) = expected_version else {
            let resp = self
                .client
                .clone()
                .delete(path.as_str(), None::<DeleteOptions>)
                .await
                .map_err(|e| etcd_err("delete", path.clone(), e))?;
            return if resp.deleted() > 0 {
                Ok(())
            } else {
                Err(not_found())
            };
        };
        let expected = parse_revision::<K>(version, key, "expected version")?;
        let txn = Txn::new()
            .when([Compare::mod_revision(
                path.as_str(),
                CompareOp::Equal,
                expected,
            )])
            .and_then([TxnOp::delete(path.as_str(), None)])
            .or_else([TxnOp::get(path.as_str(), None)]);
        let resp = self.txn("delete", &path, txn).await?;
        if resp.succeeded() {
            return Ok(());
        }
        match first_get_kv(&resp) {
            None => Err(not_found()),
            Some(kv) => Err(Error::Conflict {
                kind: K::kind_name(),
                key: key.to_string(),
                expected: version.to_string(),
                detail: format!("stored version is {}", kv.mod_revision()),
            }),
        }
    }

    async fn watch(&self, filter: &Filter, revision: &str) -> Result<WatchStream<K>> {
        let key = ObjectKey::cluster(format!("<watch {}>", K::plural_name()));
        let from = parse_revision::<K>(revision, &key, "watch revision")?;
        crate::etcd_watch::start::<K>(self.clone(), filter.clone(), from)
    }
}
