//! The datastore conformance suite: one generic body per behaviour, run against every
//! backend (etcd, the real kube-apiserver, and a cluster named by
//! `TORTIE_TEST_KUBECONFIG`). Each function takes a [`Target`] (a backend plus how to
//! disrupt it) and a [`Subject`] kind (a namespaced ConfigMap, a cluster-scoped
//! IPAMHandle) with a counter field to write.

#![allow(dead_code)] // each test binary uses a subset

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::ObjectMeta;
use tortie_datastore::{Datastore, Event, Filter, Kind, ObjectKey, Store, WatchStream};

pub mod native;
pub mod subjects;
pub use native::native_kinds;
pub use subjects::Subject;

/// How long any single expected event may take to arrive.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A disruption of the backend's connection (restart a server on the same port/data).
pub type Disrupt = Box<dyn Fn() -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// Makes the backend forget history and returns a revision it no longer serves.
pub type ExpireFn = Box<dyn Fn() -> BoxFuture<'static, Result<String>> + Send + Sync>;

/// One backend under test.
pub struct Target {
    /// For messages: `etcd`, `kube-apiserver`, `TORTIE_TEST_KUBECONFIG`.
    pub name: String,
    /// The backend.
    pub ds: Datastore,
    /// Breaks every connection of the backend and returns once it serves again; `None`
    /// when the target cannot be disrupted (an external cluster).
    pub disrupt: Option<Disrupt>,
    /// Restarts the server itself (history it kept in memory is lost); `None` when the
    /// target cannot be restarted.
    pub restart: Option<Disrupt>,
    /// A revision the backend no longer serves watches from (compacted / expired), made
    /// after the given objects were written; `None` when it cannot be forced.
    pub expire: Option<ExpireFn>,
    /// Unique per run, part of every name and label the suite writes.
    pub run_id: String,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A unique run id: pid, time and a counter.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "t{}-{:x}-{}",
        std::process::id(),
        nanos,
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

impl Target {
    /// The store of `K`.
    pub fn store<K: Kind>(&self) -> Arc<dyn Store<K>> {
        self.ds.store::<K>()
    }

    /// The namespace of this run (created on Kubernetes; just a key segment on etcd).
    pub async fn namespace(&self) -> Result<String> {
        let ns = format!("ns-{}", self.run_id);
        let obj = Namespace {
            metadata: ObjectMeta {
                name: Some(ns.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        match self.store::<Namespace>().create(&obj).await {
            Ok(_) => Ok(ns),
            Err(e) if e.is_already_exists() => Ok(ns),
            Err(e) => Err(e).context("create the run's namespace"),
        }
    }

    /// The filter selecting exactly this run's objects of `S`.
    pub fn filter<S: Subject>(&self, ns: &str) -> Filter {
        let f = Filter::default().with_labels(format!("tortie-test={}", self.run_id));
        if S::namespaced() {
            Filter {
                namespace: Some(ns.to_string()),
                ..f
            }
        } else {
            f
        }
    }

    /// A new object of this run named `<run>-<suffix>`.
    pub fn object<S: Subject>(&self, ns: &str, suffix: &str, counter: u64) -> S {
        let mut labels = BTreeMap::new();
        labels.insert("tortie-test".to_string(), self.run_id.clone());
        let meta = ObjectMeta {
            name: Some(format!("{}-{suffix}", self.run_id)),
            namespace: S::namespaced().then(|| ns.to_string()),
            labels: Some(labels),
            ..Default::default()
        };
        S::make(meta, counter)
    }
}

/// The next event, or an error naming what was awaited.
pub async fn next_event<K: Kind>(w: &mut WatchStream<K>, what: &str) -> Result<Event<K>> {
    match tokio::time::timeout(EVENT_TIMEOUT, w.next()).await {
        Err(_) => bail!("no event within {EVENT_TIMEOUT:?} while waiting for {what}"),
        Ok(None) => bail!("watch stream ended while waiting for {what}"),
        Ok(Some(Err(e))) => Err(e).with_context(|| format!("watch error while waiting for {what}")),
        Ok(Some(Ok(ev))) => Ok(ev),
    }
}

/// Asserts no event arrives within `quiet`.
pub async fn no_event<K: Subject>(w: &mut WatchStream<K>, quiet: Duration) -> Result<()> {
    match tokio::time::timeout(quiet, w.next()).await {
        Err(_) => Ok(()),
        Ok(other) => bail!(
            "unexpected extra watch item: {:?}",
            other.map(|r| r.map(|e| describe(&e)))
        ),
    }
}

/// `Added(name=counter)` etc., for messages and comparisons.
pub fn describe<S: Subject>(ev: &Event<S>) -> String {
    match ev {
        Event::Added(o) => format!("Added({}={})", name(o), o.counter()),
        Event::Modified(o) => format!("Modified({}={})", name(o), o.counter()),
        Event::Deleted(o) => format!("Deleted({}={})", name(o), o.counter()),
        Event::Resync { items, revision } => format!("Resync({} items @{revision})", items.len()),
    }
}

fn name<K: Kind>(o: &K) -> String {
    o.meta().name.clone().unwrap_or_default()
}

fn version<K: Kind>(o: &K) -> Result<String> {
    o.meta()
        .resource_version
        .clone()
        .context("object returned without metadata.resourceVersion")
}

/// create / get / list (with label selector and revision) / AlreadyExists.
pub async fn create_get_list<S: Subject>(t: &Target) -> Result<()> {
    let ns = t.namespace().await?;
    let store = t.store::<S>();
    let a = store
        .create(&t.object::<S>(&ns, "a", 1))
        .await
        .context("create a")?;
    let va = version(&a)?;
    ensure!(a.counter() == 1, "create returned counter {}", a.counter());
    let b = store
        .create(&t.object::<S>(&ns, "b", 2))
        .await
        .context("create b")?;
    let got = store
        .get(&ObjectKey::of(&a))
        .await?
        .context("get a: not found")?;
    ensure!(
        got.counter() == 1 && version(&got)? == va,
        "get a returned {got:?}"
    );
    let missing = ObjectKey {
        name: format!("{}-missing", t.run_id),
        ..ObjectKey::of(&a)
    };
    ensure!(
        store.get(&missing).await?.is_none(),
        "get of a missing object found something"
    );

    let dup = store.create(&t.object::<S>(&ns, "a", 9)).await;
    ensure!(
        matches!(&dup, Err(e) if e.is_already_exists()),
        "second create of a: {dup:?}"
    );

    let list = store.list(&t.filter::<S>(&ns)).await.context("list")?;
    let mut names: Vec<(String, u64)> = list.items.iter().map(|o| (name(o), o.counter())).collect();
    names.sort();
    ensure!(
        names == vec![(name(&a), 1), (name(&b), 2)],
        "list returned {names:?}"
    );
    ensure!(!list.revision.is_empty(), "list revision is empty");
    let none = store
        .list(&Filter {
            label_selector: Some(format!("tortie-test={}-other", t.run_id)),
            ..t.filter::<S>(&ns)
        })
        .await?;
    ensure!(
        none.items.is_empty(),
        "label selector did not filter: {:?}",
        none.items.len()
    );
    cleanup::<S>(t, &ns).await
}

/// Update with a stale version fails with a conflict and changes nothing; delete with a
/// stale version fails; the right versions succeed; NotFound afterwards.
pub async fn stale_versions<S: Subject>(t: &Target) -> Result<()> {
    let ns = t.namespace().await?;
    let store = t.store::<S>();
    let v1 = store.create(&t.object::<S>(&ns, "cas", 1)).await?;
    let mut next = v1.clone();
    next.set_counter(2);
    let v2 = store
        .update(&next)
        .await
        .context("update with the current version")?;
    ensure!(
        version(&v2)? != version(&v1)?,
        "update did not change the version"
    );

    let mut stale = v1.clone();
    stale.set_counter(100);
    match store.update(&stale).await {
        Err(e) if e.is_conflict() => {}
        other => bail!(
            "update with stale version {}: want Conflict, got {other:?}",
            version(&v1)?
        ),
    }
    let now = store
        .get(&ObjectKey::of(&v1))
        .await?
        .context("object vanished")?;
    ensure!(
        now.counter() == 2 && version(&now)? == version(&v2)?,
        "stale update changed the object: {now:?}"
    );

    let mut unversioned = v2.clone();
    unversioned.meta_mut().resource_version = None;
    let r = store.update(&unversioned).await;
    ensure!(
        r.as_ref()
            .is_err_and(|e| e.to_string().contains("resourceVersion")),
        "update without version: {r:?}"
    );

    let key = ObjectKey::of(&v1);
    match store.delete(&key, Some(&version(&v1)?)).await {
        Err(e) if e.is_conflict() => {}
        other => bail!("delete with stale version: want Conflict, got {other:?}"),
    }
    ensure!(
        store.get(&key).await?.is_some(),
        "stale delete removed the object"
    );
    store
        .delete(&key, Some(&version(&v2)?))
        .await
        .context("delete with the current version")?;
    ensure!(
        store.get(&key).await?.is_none(),
        "object still there after delete"
    );
    let again = store.delete(&key, None).await;
    ensure!(
        matches!(&again, Err(e) if e.is_not_found()),
        "second delete: {again:?}"
    );
    let mut gone = v2.clone();
    gone.set_counter(3);
    let upd = store.update(&gone).await;
    ensure!(
        matches!(&upd, Err(e) if e.is_not_found() || e.is_conflict()),
        "update of deleted object: {upd:?}"
    );
    cleanup::<S>(t, &ns).await
}

/// A watch from a list's revision sees every change in order, with growing versions.
pub async fn watch_in_order<S: Subject>(t: &Target) -> Result<()> {
    let ns = t.namespace().await?;
    let store = t.store::<S>();
    let filter = t.filter::<S>(&ns);
    let listed = store.list(&filter).await?;
    let mut w = store.watch(&filter, &listed.revision).await?;
    let mut obj = store.create(&t.object::<S>(&ns, "w", 0)).await?;
    for i in 1..=3 {
        obj.set_counter(i);
        obj = store.update(&obj).await?;
    }
    let other = store.create(&t.object::<S>(&ns, "w2", 7)).await?;
    store.delete(&ObjectKey::of(&obj), None).await?;
    let a = name(&obj);
    let b = name(&other);
    let want = vec![
        format!("Added({a}=0)"),
        format!("Modified({a}=1)"),
        format!("Modified({a}=2)"),
        format!("Modified({a}=3)"),
        format!("Added({b}=7)"),
        format!("Deleted({a}=3)"),
    ];
    let mut got = Vec::new();
    let mut versions = Vec::new();
    for w_ in &want {
        let ev = next_event(&mut w, w_).await?;
        if let Some(o) = ev.object() {
            versions.push(version(o)?);
        }
        got.push(describe(&ev));
    }
    ensure!(got == want, "watch order: got {got:?}, want {want:?}");
    ensure!(
        versions.windows(2).all(|p| version_lt(&p[0], &p[1])),
        "versions not increasing: {versions:?}"
    );
    no_event(&mut w, Duration::from_millis(300)).await?;
    cleanup::<S>(t, &ns).await
}

/// Versions compare numerically where both are numbers (etcd and current Kubernetes);
/// otherwise only distinctness can be asked of them.
fn version_lt(a: &str, b: &str) -> bool {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x < y,
        _ => a != b,
    }
}

/// A watch that loses its connection (etcd restarted mid-stream; every connection to
/// the API server reset) resumes without
/// missing or duplicating events; writes made while it reconnects are delivered once.
pub async fn watch_resumes<S: Subject>(t: &Target) -> Result<()> {
    let Some(disrupt) = &t.disrupt else {
        eprintln!(
            "{}: cannot restart this backend; watch resume is covered by the short watch timeout only",
            t.name
        );
        return watch_survives_timeouts::<S>(t).await;
    };
    let ns = t.namespace().await?;
    let store = t.store::<S>();
    let filter = t.filter::<S>(&ns);
    let mut obj = store.create(&t.object::<S>(&ns, "r", 0)).await?;
    let mut w = store.watch(&filter, &version(&obj)?).await?;
    for i in 1..=5 {
        obj.set_counter(i);
        obj = store.update(&obj).await?;
    }
    for i in 1..=5 {
        let ev = next_event(&mut w, &format!("Modified(={i}) before the restart")).await?;
        ensure!(
            describe(&ev).ends_with(&format!("={i})")),
            "before restart: {}",
            describe(&ev)
        );
    }
    let started = std::time::Instant::now();
    disrupt().await.context("disrupt the backend")?;
    eprintln!("{}: backend restarted in {:?}", t.name, started.elapsed());
    for i in 6..=10 {
        obj.set_counter(i);
        obj = retry_io(|| store.update(&obj))
            .await
            .with_context(|| format!("update {i} after restart"))?;
    }
    for i in 6..=10 {
        let ev = next_event(&mut w, &format!("Modified(={i}) after the restart")).await?;
        ensure!(
            matches!(ev, Event::Modified(_)) && describe(&ev).ends_with(&format!("={i})")),
            "after restart, want Modified(={i}), got {}",
            describe(&ev)
        );
    }
    no_event(&mut w, Duration::from_millis(500)).await?;
    cleanup::<S>(t, &ns).await
}

/// A watch across a restart of the server itself converges: a consumer applying the
/// events (a Resync replaces its state) ends with the final state, and never sees a
/// change twice or out of order. (On Kubernetes the restarted API server's watch cache
/// no longer covers the watch's revision, so the watch re-lists; on etcd it resumes.)
pub async fn watch_converges_after_restart<S: Subject>(t: &Target) -> Result<()> {
    let Some(restart) = &t.restart else {
        eprintln!("{}: cannot restart this backend", t.name);
        return Ok(());
    };
    let ns = t.namespace().await?;
    let store = t.store::<S>();
    let mut obj = store.create(&t.object::<S>(&ns, "conv", 0)).await?;
    let mut w = store.watch(&t.filter::<S>(&ns), &version(&obj)?).await?;
    obj.set_counter(1);
    obj = store.update(&obj).await?;
    let first = next_event(&mut w, "Modified(=1)").await?;
    ensure!(
        describe(&first).ends_with("=1)"),
        "got {}",
        describe(&first)
    );
    restart().await.context("restart the backend")?;
    for i in 2..=5 {
        obj.set_counter(i);
        obj = retry_io(|| store.update(&obj))
            .await
            .with_context(|| format!("update {i} after restart"))?;
    }
    let mut last = 1u64;
    let mut seen = Vec::new();
    while last < 5 {
        let ev = next_event(
            &mut w,
            &format!("the counter to reach 5 (at {last}, seen {seen:?})"),
        )
        .await?;
        seen.push(describe(&ev));
        let counter = match &ev {
            Event::Modified(o) if name(o) == name(&obj) => o.counter(),
            Event::Resync { items, .. } => items
                .iter()
                .find(|o| name(*o) == name(&obj))
                .map(|o| o.counter())
                .context("resync lost the object")?,
            other => bail!("unexpected event {} (seen {seen:?})", describe(other)),
        };
        match ev {
            Event::Resync { .. } => ensure!(counter >= last, "resync went back: {seen:?}"),
            _ => ensure!(counter > last, "duplicate or out-of-order change: {seen:?}"),
        }
        last = counter;
    }
    eprintln!(
        "{}: across a server restart the watch delivered {seen:?}",
        t.name
    );
    no_event(&mut w, Duration::from_millis(300)).await?;
    cleanup::<S>(t, &ns).await
}

/// Without a way to restart the server: idle past the (short) watch timeout between
/// writes, so the watch is re-issued from its last revision, and still sees each write once.
pub async fn watch_survives_timeouts<S: Subject>(t: &Target) -> Result<()> {
    let ns = t.namespace().await?;
    let store = t.store::<S>();
    let mut obj = store.create(&t.object::<S>(&ns, "idle", 0)).await?;
    let mut w = store.watch(&t.filter::<S>(&ns), &version(&obj)?).await?;
    for i in 1..=2 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        obj.set_counter(i);
        obj = store.update(&obj).await?;
        let ev = next_event(&mut w, &format!("Modified(={i})")).await?;
        ensure!(
            describe(&ev).ends_with(&format!("={i})")),
            "got {}",
            describe(&ev)
        );
    }
    no_event(&mut w, Duration::from_millis(300)).await?;
    cleanup::<S>(t, &ns).await
}

/// A watch from a compacted/expired revision re-lists: a Resync with the current state,
/// then live events.
pub async fn watch_relists_when_expired<S: Subject>(t: &Target) -> Result<()> {
    let Some(expire) = &t.expire else {
        eprintln!(
            "{}: cannot force an expired revision on this backend",
            t.name
        );
        return Ok(());
    };
    let ns = t.namespace().await?;
    let store = t.store::<S>();
    let mut obj = store.create(&t.object::<S>(&ns, "x", 0)).await?;
    for i in 1..=3 {
        obj.set_counter(i);
        obj = store.update(&obj).await?;
    }
    let old = expire().await.context("expire a revision")?;
    let mut w = store.watch(&t.filter::<S>(&ns), &old).await?;
    match next_event(&mut w, "Resync").await? {
        Event::Resync { items, revision } => {
            let got: Vec<(String, u64)> = items.iter().map(|o| (name(o), o.counter())).collect();
            ensure!(got == vec![(name(&obj), 3)], "resync items {got:?}");
            ensure!(!revision.is_empty(), "resync without revision");
        }
        other => bail!(
            "want Resync from expired revision {old}, got {}",
            describe(&other)
        ),
    }
    obj.set_counter(4);
    store.update(&obj).await?;
    let ev = next_event(&mut w, "Modified(=4) after the resync").await?;
    ensure!(
        describe(&ev) == format!("Modified({}=4)", name(&obj)),
        "got {}",
        describe(&ev)
    );
    cleanup::<S>(t, &ns).await
}

/// 8 concurrent writers each add `per_writer` to one counter with CAS: the total is exact.
pub async fn concurrent_counter<S: Subject>(t: &Target, per_writer: u64) -> Result<()> {
    const WRITERS: u64 = 8;
    let ns = t.namespace().await?;
    let store = t.store::<S>();
    let obj = store.create(&t.object::<S>(&ns, "counter", 0)).await?;
    let key = ObjectKey::of(&obj);
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let store = Arc::clone(&store);
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0u64;
            for _ in 0..per_writer {
                loop {
                    let mut cur = store.get(&key).await?.context("counter vanished")?;
                    cur.set_counter(cur.counter() + 1);
                    match store.update(&cur).await {
                        Ok(_) => break,
                        Err(e) if e.is_conflict() => conflicts += 1,
                        Err(e) => return Err(anyhow::Error::from(e)),
                    }
                }
            }
            anyhow::Ok(conflicts)
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await??;
    }
    let end = store.get(&key).await?.context("counter vanished")?;
    eprintln!(
        "{}: {WRITERS} writers x {per_writer} increments: counter {} after {conflicts} conflicts",
        t.name,
        end.counter()
    );
    ensure!(
        end.counter() == WRITERS * per_writer,
        "counter {} != {}",
        end.counter(),
        WRITERS * per_writer
    );
    cleanup::<S>(t, &ns).await
}

/// Retries an operation over connection errors for a few seconds (just after a restart).
async fn retry_io<T, F, Fut>(mut f: F) -> Result<T, tortie_datastore::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tortie_datastore::Error>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match f().await {
            Err(
                e @ (tortie_datastore::Error::Etcd { .. } | tortie_datastore::Error::Kube { .. }),
            ) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "retrying after restart");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// Deletes what the run left of `S` (so an external cluster stays clean).
pub async fn cleanup<S: Subject>(t: &Target, ns: &str) -> Result<()> {
    let store = t.store::<S>();
    for o in store.list(&t.filter::<S>(ns)).await?.items {
        match store.delete(&ObjectKey::of(&o), None).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Every behaviour of the suite on one subject kind, in sequence; `with_restarts: false`
/// leaves out the two that restart the server (they test the backend's re-list path,
/// which does not depend on the kind; a kube-apiserver restart costs seconds).
pub async fn run_all<S: Subject>(t: &Target, per_writer: u64, with_restarts: bool) -> Result<()> {
    let kind = S::kind_name();
    create_get_list::<S>(t)
        .await
        .with_context(|| format!("{}: {kind}: create/get/list", t.name))?;
    stale_versions::<S>(t)
        .await
        .with_context(|| format!("{}: {kind}: stale versions", t.name))?;
    watch_in_order::<S>(t)
        .await
        .with_context(|| format!("{}: {kind}: watch in order", t.name))?;
    if with_restarts {
        watch_relists_when_expired::<S>(t)
            .await
            .with_context(|| format!("{}: {kind}: expired revision", t.name))?;
    }
    concurrent_counter::<S>(t, per_writer)
        .await
        .with_context(|| format!("{}: {kind}: concurrent CAS", t.name))?;
    watch_resumes::<S>(t)
        .await
        .with_context(|| format!("{}: {kind}: watch resume", t.name))?;
    if with_restarts {
        watch_converges_after_restart::<S>(t)
            .await
            .with_context(|| format!("{}: {kind}: watch across a server restart", t.name))?;
    }
    Ok(())
}
