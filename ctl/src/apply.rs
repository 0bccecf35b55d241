//! What `tortiectl apply|create|replace -f` does with a set of documents: the decision
//! ([`plan`], pure) and its execution ([`execute`], thin, CAS with bounded retries).
//!
//! The plan validates every document first (each error names the document and the
//! field), applies Calico's defaults, checks the documents against what is stored (pool
//! overlap with other pools and with earlier documents, `cidr`/`blockSize` immutability
//! on update, existence for `create`/`replace`) and fails as a whole: when any document is
//! refused nothing is written.

use std::collections::BTreeSet;

use tortie_crds::{IpPool, TortieObject, validate_pool_overlap};

use crate::CtlError;
use crate::objects::{self, ResourceKind};
use tortie_datastore::Datastore;

/// Which verb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Create or update.
    Apply,
    /// Create only; an existing object is an error.
    Create,
    /// Update only; a missing object is an error.
    Replace,
}

/// One write to perform.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create this object.
    Create(TortieObject),
    /// Update: the new object carries the stored `resourceVersion` it replaces.
    Update(TortieObject),
}

impl Action {
    /// The object written.
    pub fn object(&self) -> &TortieObject {
        match self {
            Action::Create(o) | Action::Update(o) => o,
        }
    }
}

/// Calico's defaults for an object as `apply` stores it: IPPool fields (blockSize,
/// modes, nodeSelector, allowedUses) and the `default` BGPConfiguration's.
pub fn with_defaults(obj: TortieObject) -> TortieObject {
    match obj {
        TortieObject::IpPool(p) => TortieObject::IpPool(p.with_defaults()),
        TortieObject::BgpConfiguration(mut c) if c.metadata.name.as_deref() == Some("default") => {
            c.spec = c.spec.with_defaults();
            TortieObject::BgpConfiguration(c)
        }
        other => other,
    }
}

fn describe(i: usize, obj: &TortieObject) -> String {
    format!("document {} ({} {})", i + 1, obj.kind(), obj.name())
}

/// Decides the writes for `docs` (already parsed and validated one by one), given the
/// stored object of the same kind and name for each document (`existing[i]`) and every
/// stored IPPool. Returns every problem found, each naming its document and field.
pub fn plan(
    docs: &[TortieObject],
    existing: &[Option<TortieObject>],
    stored_pools: &[IpPool],
    mode: Mode,
) -> Result<Vec<Action>, Vec<String>> {
    let mut problems = Vec::new();
    let mut actions = Vec::new();
    let mut seen = BTreeSet::new();
    let mut batch_pools: Vec<IpPool> = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let what = describe(i, doc);
        if ResourceKind::of(doc).is_none() {
            problems.push(format!(
                "{what}: kind: namespaced kinds are written by the CNI plugin, not tortiectl"
            ));
            continue;
        }
        if doc.name().is_empty() {
            problems.push(format!("{what}: metadata.name: is required"));
            continue;
        }
        if !seen.insert((doc.kind(), doc.name().to_string())) {
            problems.push(format!("{what}: metadata.name: appears twice in the input"));
            continue;
        }
        let new = with_defaults(doc.clone());
        let old = existing.get(i).cloned().flatten();
        match (&old, mode) {
            (Some(_), Mode::Create) => {
                problems.push(format!("{what}: metadata.name: already exists"));
                continue;
            }
            (None, Mode::Replace) => {
                problems.push(format!("{what}: metadata.name: does not exist"));
                continue;
            }
            _ => {}
        }
        if let Some(old) = &old
            && let Err(e) = new.validate_update(old)
        {
            problems.push(format!("{what}: {e}"));
            continue;
        }
        if let TortieObject::IpPool(p) = &new {
            let others: Vec<IpPool> = stored_pools
                .iter()
                .filter(|s| s.metadata.name != p.metadata.name)
                .chain(batch_pools.iter())
                .cloned()
                .collect();
            if let Err(e) = validate_pool_overlap(p, &others) {
                problems.push(format!("{what}: {e}"));
                continue;
            }
            batch_pools.push(p.clone());
        }
        actions.push(match old {
            Some(old) => Action::Update(objects::with_version(new, objects::version_of(&old))),
            None => Action::Create(new),
        });
    }
    if problems.is_empty() {
        Ok(actions)
    } else {
        Err(problems)
    }
}

/// Bounded attempts when another writer changes an object between read and write.
pub const CAS_ATTEMPTS: usize = 5;

/// Reads what `docs` touch, plans, and writes (create-or-update with CAS). On a version
/// conflict or a create race the whole plan is re-made from a fresh read, up to
/// [`CAS_ATTEMPTS`] times. Returns the objects written, in document order.
pub async fn execute(
    ds: &Datastore,
    docs: &[TortieObject],
    mode: Mode,
) -> Result<Vec<(Action, TortieObject)>, CtlError> {
    let mut last_conflict = None;
    for _ in 0..CAS_ATTEMPTS {
        let mut existing = Vec::with_capacity(docs.len());
        for d in docs {
            match ResourceKind::of(d) {
                Some(k) if !d.name().is_empty() => {
                    existing.push(objects::get(ds, k, d.name()).await?)
                }
                _ => existing.push(None),
            }
        }
        let pools: Vec<IpPool> = if docs.iter().any(|d| matches!(d, TortieObject::IpPool(_))) {
            objects::list(ds, ResourceKind::IpPool)
                .await?
                .into_iter()
                .filter_map(|o| match o {
                    TortieObject::IpPool(p) => Some(p),
                    _ => None,
                })
                .collect()
        } else {
            Vec::new()
        };
        let actions = plan(docs, &existing, &pools, mode).map_err(CtlError::Rejected)?;
        match write_all(ds, actions).await {
            Ok(done) => return Ok(done),
            Err(CtlError::Datastore(e)) if e.is_conflict() || e.is_already_exists() => {
                last_conflict = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(match last_conflict {
        Some(e) => CtlError::Datastore(e),
        None => CtlError::Usage("apply: no attempt made".into()),
    })
}

async fn write_all(
    ds: &Datastore,
    actions: Vec<Action>,
) -> Result<Vec<(Action, TortieObject)>, CtlError> {
    let mut done = Vec::with_capacity(actions.len());
    for a in actions {
        let stored = match &a {
            Action::Create(o) => objects::create(ds, o).await?,
            Action::Update(o) => objects::update(ds, o).await?,
        };
        done.push((a, stored));
    }
    Ok(done)
}
