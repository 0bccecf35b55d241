//! The kinds the suite writes, each with a counter field: ConfigMap (namespaced, native)
//! and IPAMHandle (cluster-scoped tortie CRD).

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use tortie_datastore::Kind;

/// A kind with a counter the suite can read and write.
pub trait Subject: Kind {
    /// An object with `meta` and the counter at `n`.
    fn make(meta: ObjectMeta, n: u64) -> Self;
    /// The counter.
    fn counter(&self) -> u64;
    /// Sets the counter.
    fn set_counter(&mut self, n: u64);
}

impl Subject for ConfigMap {
    fn make(metadata: ObjectMeta, n: u64) -> Self {
        let mut cm = ConfigMap {
            metadata,
            ..Default::default()
        };
        cm.set_counter(n);
        cm
    }

    fn counter(&self) -> u64 {
        self.data
            .as_ref()
            .and_then(|d| d.get("counter"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    }

    fn set_counter(&mut self, n: u64) {
        self.data
            .get_or_insert_with(Default::default)
            .insert("counter".into(), n.to_string());
    }
}

/// IPAMHandle keeps the counter in `spec.block["counter"]`.
impl Subject for tortie_crds::ipam::IpamHandle {
    fn make(metadata: ObjectMeta, n: u64) -> Self {
        let handle_id = metadata.name.clone().unwrap_or_default();
        let mut h = tortie_crds::ipam::IpamHandle {
            metadata,
            spec: tortie_crds::ipam::IpamHandleSpec {
                handle_id,
                ..Default::default()
            },
        };
        h.set_counter(n);
        h
    }

    fn counter(&self) -> u64 {
        self.spec
            .block
            .get("counter")
            .map(|n| *n as u64)
            .unwrap_or(u64::MAX)
    }

    fn set_counter(&mut self, n: u64) {
        self.spec
            .block
            .insert("counter".into(), usize::try_from(n).unwrap_or(usize::MAX));
    }
}
