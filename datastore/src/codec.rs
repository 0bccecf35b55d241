//! How objects are stored as JSON in etcd: the object as Kubernetes would serialize it,
//! minus `metadata.resourceVersion` (the version is etcd's `mod_revision` of the key, so
//! storing it would only go stale); on read the revision is put back. Pure: no I/O.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::kind::{Kind, ObjectKey};

/// The JSON bytes to store for `obj`.
pub fn encode<K: Kind>(obj: &K, key: &ObjectKey) -> Result<Vec<u8>> {
    let mut value =
        serde_json::to_value(obj).map_err(|source| json_err::<K>(key, "encode", source))?;
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&value).map_err(|source| json_err::<K>(key, "encode", source))
}

/// The object stored as `bytes`, carrying `revision` as its `resourceVersion`.
pub fn decode<K: Kind>(bytes: &[u8], revision: i64, key: &ObjectKey) -> Result<K> {
    let mut obj: K =
        serde_json::from_slice(bytes).map_err(|source| json_err::<K>(key, "decode", source))?;
    obj.meta_mut().resource_version = Some(revision.to_string());
    Ok(obj)
}

/// Parses a version or revision string as an etcd revision (`field` names it in errors).
pub fn parse_revision<K: Kind>(text: &str, key: &ObjectKey, field: &'static str) -> Result<i64> {
    text.parse::<i64>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| Error::Invalid {
            kind: K::kind_name(),
            key: key.to_string(),
            field,
            reason: format!("{text:?} is not an etcd revision (a non-negative integer)"),
        })
}

/// The object key encoded in an etcd key below `kind_prefix`.
pub fn key_from_path(kind_prefix: &str, path: &[u8]) -> ObjectKey {
    let path = String::from_utf8_lossy(path);
    let rest = path.strip_prefix(kind_prefix).unwrap_or(&path);
    match rest.split_once('/') {
        Some((ns, name)) => ObjectKey::namespaced(ns, name),
        None => ObjectKey::cluster(rest),
    }
}

fn json_err<K: Kind>(key: &ObjectKey, op: &'static str, source: serde_json::Error) -> Error {
    Error::Json {
        kind: K::kind_name(),
        key: key.to_string(),
        op,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    #[test]
    fn version_is_not_stored_and_comes_back_from_the_revision() {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some("c".into()),
                namespace: Some("ns".into()),
                resource_version: Some("41".into()),
                ..Default::default()
            },
            data: Some([("k".to_string(), "v".to_string())].into()),
            ..Default::default()
        };
        let key = ObjectKey::of(&cm);
        let bytes = encode(&cm, &key).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("41"));
        let back: ConfigMap = decode(&bytes, 42, &key).unwrap();
        assert_eq!(back.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(back.data, cm.data);
    }

    #[test]
    fn bad_input_names_the_object() {
        let key = ObjectKey::namespaced("ns", "c");
        let e = decode::<ConfigMap>(b"{not json", 1, &key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ConfigMap ns/c") && e.contains("decode"), "{e}");
        let e = parse_revision::<ConfigMap>("x1", &key, "revision")
            .unwrap_err()
            .to_string();
        assert!(e.contains("revision") && e.contains("x1"), "{e}");
        assert_eq!(
            parse_revision::<ConfigMap>("17", &key, "revision").unwrap(),
            17
        );
    }

    #[test]
    fn keys_parse_back() {
        assert_eq!(
            key_from_path("/p/configmaps/", b"/p/configmaps/ns/c"),
            ObjectKey::namespaced("ns", "c")
        );
        assert_eq!(
            key_from_path("/p/nodes/", b"/p/nodes/n1"),
            ObjectKey::cluster("n1")
        );
    }
}
