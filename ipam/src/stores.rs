//! The datastore stores IPAM reads and writes ([`Stores`]), built from either backend, and
//! a counting wrapper ([`Counters`]) that tallies reads and writes per store for the
//! benchmark and for tests that bound datastore round-trips.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use tortie_crds::{BlockAffinity, IpPool, IpamBlock, IpamConfig, IpamHandle, TortieNode};
use tortie_datastore::{Datastore, Filter, Kind, Listing, ObjectKey, Store, WatchStream};

/// Every store IPAM touches. Cheap to clone.
#[derive(Clone)]
pub struct Stores {
    /// IPPools (read).
    pub pools: Arc<dyn Store<IpPool>>,
    /// IPAMBlocks.
    pub blocks: Arc<dyn Store<IpamBlock>>,
    /// BlockAffinities.
    pub affinities: Arc<dyn Store<BlockAffinity>>,
    /// IPAMHandles.
    pub handles: Arc<dyn Store<IpamHandle>>,
    /// The IPAMConfig `default` (read).
    pub config: Arc<dyn Store<IpamConfig>>,
    /// TortieNodes (read: labels for nodeSelector, existence for GC).
    pub nodes: Arc<dyn Store<TortieNode>>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

impl Stores {
    /// The stores of `ds` (either backend).
    pub fn from_datastore(ds: &Datastore) -> Self {
        Stores {
            pools: ds.store(),
            blocks: ds.store(),
            affinities: ds.store(),
            handles: ds.store(),
            config: ds.store(),
            nodes: ds.store(),
        }
    }

    /// The same stores, each wrapped so that every call is counted in the returned
    /// [`Counters`].
    pub fn counted(self) -> (Stores, Arc<Counters>) {
        let c = Arc::new(Counters::default());
        let s = Stores {
            pools: Counting::wrap(self.pools, &c),
            blocks: Counting::wrap(self.blocks, &c),
            affinities: Counting::wrap(self.affinities, &c),
            handles: Counting::wrap(self.handles, &c),
            config: Counting::wrap(self.config, &c),
            nodes: Counting::wrap(self.nodes, &c),
        };
        (s, c)
    }
}

/// Datastore calls seen through [`Stores::counted`]: get/list/watch are reads;
/// create/update/delete are writes.
#[derive(Debug, Default)]
pub struct Counters {
    reads: AtomicU64,
    writes: AtomicU64,
}

impl Counters {
    /// Reads so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Writes so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// (reads, writes) so far.
    pub fn snapshot(&self) -> (u64, u64) {
        (self.reads(), self.writes())
    }

    fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    fn write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
}

struct Counting<K: Kind> {
    inner: Arc<dyn Store<K>>,
    counters: Arc<Counters>,
}

impl<K: Kind> Counting<K> {
    fn wrap(inner: Arc<dyn Store<K>>, c: &Arc<Counters>) -> Arc<dyn Store<K>> {
        Arc::new(Counting {
            inner,
            counters: c.clone(),
        })
    }
}

#[async_trait]
impl<K: Kind> Store<K> for Counting<K> {
    async fn get(&self, key: &ObjectKey) -> tortie_datastore::Result<Option<K>> {
        self.counters.read();
        self.inner.get(key).await
    }

    async fn list(&self, filter: &Filter) -> tortie_datastore::Result<Listing<K>> {
        self.counters.read();
        self.inner.list(filter).await
    }

    async fn create(&self, obj: &K) -> tortie_datastore::Result<K> {
        self.counters.write();
        self.inner.create(obj).await
    }

    async fn update(&self, obj: &K) -> tortie_datastore::Result<K> {
        self.counters.write();
        self.inner.update(obj).await
    }

    async fn delete(
        &self,
        key: &ObjectKey,
        expected_version: Option<&str>,
    ) -> tortie_datastore::Result<()> {
        self.counters.write();
        self.inner.delete(key, expected_version).await
    }

    async fn watch(
        &self,
        filter: &Filter,
        revision: &str,
    ) -> tortie_datastore::Result<WatchStream<K>> {
        self.counters.read();
        self.inner.watch(filter, revision).await
    }
}
