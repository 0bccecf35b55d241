//! IPAMHandle bookkeeping: `handleID → {block CIDR: count}`. Increments try a create first
//! (a new pod's handle is new: one write, no read); otherwise read-modify-CAS. A handle
//! whose counts drop to zero is deleted (CAS on its version).

use ipnetwork::IpNetwork;
use tortie_crds::{IpamHandle, IpamHandleSpec};
use tortie_datastore::ObjectKey;

use crate::error::Result;
use crate::ipam::Ipam;

impl Ipam {
    /// Adds `delta` (may be negative) to `handle`'s count for block `cidr`.
    pub(crate) async fn handle_add(
        &self,
        handle: &str,
        cidr: &IpNetwork,
        delta: i64,
    ) -> Result<()> {
        if delta == 0 {
            return Ok(());
        }
        let name = IpamHandle::name_for(handle);
        let key = ObjectKey::cluster(&name);
        let cidr_s = cidr.to_string();
        if delta > 0 {
            let h = IpamHandle::new(
                &name,
                IpamHandleSpec {
                    handle_id: handle.to_string(),
                    block: [(cidr_s.clone(), delta as usize)].into(),
                    deleted: false,
                },
            );
            match self.stores.handles.create(&h).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e.into()),
            }
        }
        for _ in 0..self.opts.max_retries {
            let Some(mut h) = self.stores.handles.get(&key).await? else {
                if delta < 0 {
                    return Ok(());
                }
                let h = IpamHandle::new(
                    &name,
                    IpamHandleSpec {
                        handle_id: handle.to_string(),
                        block: [(cidr_s.clone(), delta as usize)].into(),
                        deleted: false,
                    },
                );
                match self.stores.handles.create(&h).await {
                    Ok(_) => return Ok(()),
                    Err(e) if e.is_already_exists() => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            let cur = h.spec.block.get(&cidr_s).copied().unwrap_or(0) as i64;
            let next = (cur + delta).max(0) as usize;
            if next == 0 {
                h.spec.block.remove(&cidr_s);
            } else {
                h.spec.block.insert(cidr_s.clone(), next);
            }
            let r = if h.spec.block.is_empty() {
                self.stores
                    .handles
                    .delete(&key, h.metadata.resource_version.as_deref())
                    .await
            } else {
                self.stores.handles.update(&h).await.map(|_| ())
            };
            match r {
                Ok(()) => return Ok(()),
                Err(e) if e.is_conflict() || e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(self.conflicts(format!("handle {handle}")))
    }
}
