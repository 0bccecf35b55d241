//! The checked-in `deploy/crds/*.yaml` must be exactly what the types generate.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn crd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(tortie_crds::crdgen::CRD_DIR)
}

#[test]
fn checked_in_crds_match_the_types() {
    let dir = crd_dir();
    let generated = tortie_crds::crdgen::render_all().expect("render CRDs");
    let mut stale = Vec::new();
    for (name, text) in &generated {
        let on_disk = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        if &on_disk != text {
            stale.push(name.clone());
        }
    }
    let wanted: BTreeSet<String> = generated.iter().map(|(n, _)| n.clone()).collect();
    let extra: Vec<String> = std::fs::read_dir(&dir)
        .expect("read deploy/crds")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".crd.tortie.dev.yaml") && !wanted.contains(n))
        .collect();
    assert!(
        stale.is_empty() && extra.is_empty(),
        "deploy/crds is out of date (differs: {stale:?}, not generated: {extra:?}); \
         run `cargo run -p tortie-crds --bin crdgen`"
    );
}

#[test]
fn every_kind_is_generated_with_the_right_scope() {
    let crds = tortie_crds::crdgen::all_crds();
    let mut kinds: Vec<(String, String)> = crds
        .iter()
        .map(|c| (c.spec.names.kind.clone(), c.spec.scope.clone()))
        .collect();
    kinds.sort();
    let cluster = |k: &str| (k.to_string(), "Cluster".to_string());
    assert_eq!(
        kinds,
        vec![
            cluster("BGPConfiguration"),
            cluster("BGPPeer"),
            cluster("BlockAffinity"),
            cluster("IPAMBlock"),
            cluster("IPAMConfig"),
            cluster("IPAMHandle"),
            cluster("IPPool"),
            cluster("TortieNode"),
            ("WorkloadEndpoint".to_string(), "Namespaced".to_string()),
        ]
    );
    for c in &crds {
        assert_eq!(c.spec.group, "crd.tortie.dev");
        assert_eq!(c.spec.versions.len(), 1);
        assert_eq!(c.spec.versions[0].name, "v1");
    }
}

fn empty_string_defaults(path: &str, v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            if m.get("default") == Some(&serde_json::Value::String(String::new())) {
                out.push(path.to_string());
            }
            for (k, sub) in m {
                empty_string_defaults(&format!("{path}.{k}"), sub, out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, sub) in a.iter().enumerate() {
                empty_string_defaults(&format!("{path}[{i}]"), sub, out);
            }
        }
        _ => {}
    }
}

/// kube-apiserver 1.20 (the test server) rejects a CRD whose schema has `default: ""`
/// ("in body must be of type string: null"), as seen when applying these files to it.
#[test]
fn no_empty_string_defaults() {
    let mut bad = Vec::new();
    for crd in tortie_crds::crdgen::all_crds() {
        let v = serde_json::to_value(&crd).unwrap();
        empty_string_defaults(&crd.spec.names.kind, &v, &mut bad);
    }
    assert!(
        bad.is_empty(),
        "schemas with default \"\" (use skip_serializing_if = \"String::is_empty\"): {bad:?}"
    );
}
