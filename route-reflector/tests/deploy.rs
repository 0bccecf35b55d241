//! Parses every `deploy/*.yaml` (all documents) and checks the fields an operator relies
//! on: images named, hostNetwork and privileges, the node agent's calico-node style
//! environment, the reflector's replicas/placement/port, the CNI conf template, and that
//! RBAC covers every kind in `deploy/crds/` plus the native objects the agent reads.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use serde_yaml::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn docs_of(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v = Value::deserialize(doc).with_context(|| path.display().to_string())?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Every object of `deploy/*.yaml` (not the generated CRDs).
fn objects() -> Result<Vec<Value>> {
    let mut all = Vec::new();
    for f in yaml_files(&deploy_dir())? {
        all.extend(docs_of(&f)?);
    }
    Ok(all)
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path)?.as_str()
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn seq<'a>(v: &'a Value, path: &[&str]) -> Vec<&'a Value> {
    get(v, path)
        .and_then(Value::as_sequence)
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> Result<&'a Value> {
    objs.iter()
        .find(|o| s(o, &["kind"]) == Some(kind) && s(o, &["metadata", "name"]) == Some(name))
        .ok_or_else(|| anyhow!("no {kind} {name} in deploy/*.yaml"))
}

fn env_of(container: &Value) -> Vec<(String, &Value)> {
    seq(container, &["env"])
        .into_iter()
        .filter_map(|e| Some((s(e, &["name"])?.to_string(), e)))
        .collect()
}

#[test]
fn every_object_is_named_and_typed() -> Result<()> {
    let objs = objects()?;
    assert!(objs.len() >= 8, "expected the full set, got {}", objs.len());
    for o in &objs {
        for field in [&["apiVersion"][..], &["kind"], &["metadata", "name"]] {
            if s(o, field).is_none_or(str::is_empty) {
                bail!("object without {field:?}: {o:?}");
            }
        }
    }
    // Every container (and init container) names an image with a tag.
    for o in &objs {
        for c in seq(o, &["spec", "template", "spec", "containers"])
            .into_iter()
            .chain(seq(o, &["spec", "template", "spec", "initContainers"]))
        {
            let image = s(c, &["image"]).unwrap_or_default();
            assert!(
                image.starts_with("tortie/") && image.contains(':'),
                "container {:?}: image {image:?}",
                s(c, &["name"])
            );
        }
    }
    Ok(())
}

#[test]
fn node_daemonset_is_host_network_privileged_with_calico_env() -> Result<()> {
    let objs = objects()?;
    let ds = find(&objs, "DaemonSet", "tortie-node")?;
    let pod = get(ds, &["spec", "template", "spec"]).context("pod spec")?;
    assert_eq!(get(pod, &["hostNetwork"]), Some(&Value::Bool(true)));
    let sa = s(pod, &["serviceAccountName"]).context("serviceAccountName")?;
    find(&objs, "ServiceAccount", sa)?;
    let c = seq(pod, &["containers"])
        .into_iter()
        .find(|c| s(c, &["name"]) == Some("tortie-node"))
        .context("tortie-node container")?;
    assert!(s(c, &["image"]).is_some_and(|i| i.contains("tortie-node")));
    assert_eq!(
        get(c, &["securityContext", "privileged"]),
        Some(&Value::Bool(true))
    );
    let env = env_of(c);
    let value = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, e)| *e);
    let nodename = value("NODENAME").context("NODENAME")?;
    assert_eq!(
        s(nodename, &["valueFrom", "fieldRef", "fieldPath"]),
        Some("spec.nodeName")
    );
    assert_eq!(
        value("IP").and_then(|e| s(e, &["value"])),
        Some("autodetect")
    );
    for name in [
        "IP_AUTODETECTION_METHOD",
        "CALICO_IPV4POOL_CIDR",
        "CALICO_IPV4POOL_IPIP",
        "CALICO_IPV4POOL_VXLAN",
        "CALICO_IPV4POOL_BLOCK_SIZE",
        "CALICO_IPV4POOL_NAT_OUTGOING",
        "DATASTORE_TYPE",
    ] {
        assert!(value(name).is_some(), "tortie-node env lacks {name}");
    }
    Ok(())
}

#[test]
fn rr_deployment_two_replicas_spread_on_labelled_nodes_own_port() -> Result<()> {
    let objs = objects()?;
    let d = find(&objs, "Deployment", "tortie-rr")?;
    assert_eq!(
        get(d, &["spec", "replicas"]).and_then(Value::as_u64),
        Some(2)
    );
    let pod = get(d, &["spec", "template", "spec"]).context("pod spec")?;
    assert_eq!(get(pod, &["hostNetwork"]), Some(&Value::Bool(true)));
    assert_eq!(
        s(pod, &["nodeSelector", "tortie.dev/route-reflector"]),
        Some("true")
    );
    let anti = seq(
        pod,
        &[
            "affinity",
            "podAntiAffinity",
            "requiredDuringSchedulingIgnoredDuringExecution",
        ],
    );
    assert!(
        anti.iter()
            .any(|t| s(t, &["topologyKey"]) == Some("kubernetes.io/hostname")),
        "no per-host anti-affinity: {anti:?}"
    );
    let sa = s(pod, &["serviceAccountName"]).context("serviceAccountName")?;
    find(&objs, "ServiceAccount", sa)?;
    let c = seq(pod, &["containers"])
        .into_iter()
        .find(|c| s(c, &["name"]) == Some("tortie-rr"))
        .context("tortie-rr container")?;
    assert!(s(c, &["image"]).is_some_and(|i| i.contains("tortie-rr")));
    let port = tortie_rr::config::DEFAULT_LISTEN_PORT;
    let ports: Vec<u64> = seq(c, &["ports"])
        .into_iter()
        .filter_map(|p| get(p, &["containerPort"])?.as_u64())
        .collect();
    assert_eq!(ports, vec![u64::from(port)]);
    let args: Vec<&str> = seq(c, &["args"])
        .into_iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        args.contains(&format!("--listen=0.0.0.0:{port}").as_str()),
        "{args:?}"
    );
    // The clients file it reads is mounted from the ConfigMap in the same file.
    let cm = find(&objs, "ConfigMap", "tortie-rr-clients")?;
    assert!(s(cm, &["data", "clients"]).is_some());
    // The args parse with the binary's own parser (env given as the manifest sets it).
    let mut argv = vec!["tortie-rr".to_string()];
    argv.extend(args.iter().map(|a| a.replace("$(HOST_IP)", "10.0.0.5")));
    let parsed = <tortie_rr::Args as clap::Parser>::try_parse_from(argv)?;
    let cfg = parsed.into_config(Some(""))?;
    assert_eq!(cfg.speaker.listen.map(|l| l.port()), Some(port));
    Ok(())
}

#[test]
fn cni_conf_template_is_json_with_our_plugin() -> Result<()> {
    let objs = objects()?;
    let cm = find(&objs, "ConfigMap", "tortie-config")?;
    let tpl = s(cm, &["data", "cni_network_config"]).context("cni_network_config")?;
    let filled = tpl
        .replace("__KUBERNETES_NODE_NAME__", "node-1")
        .replace("__CNI_MTU__", "1440");
    let conf: serde_json::Value = serde_json::from_str(&filled).context("template JSON")?;
    assert!(
        conf["cniVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1."))
    );
    assert_eq!(conf["plugins"][0]["type"], "tortie-cni");
    assert_eq!(conf["plugins"][0]["nodename"], "node-1");
    assert_eq!(conf["plugins"][0]["mtu"], 1440);
    Ok(())
}

/// (group, plural) of every CRD checked in under deploy/crds/.
fn crd_resources() -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for f in yaml_files(&deploy_dir().join("crds"))? {
        for d in docs_of(&f)? {
            let group = s(&d, &["spec", "group"]).context("crd group")?;
            let plural = s(&d, &["spec", "names", "plural"]).context("crd plural")?;
            out.push((group.to_string(), plural.to_string()));
        }
    }
    Ok(out)
}

fn role_allows(role: &Value, group: &str, resource: &str, verbs: &[&str]) -> bool {
    seq(role, &["rules"]).into_iter().any(|r| {
        let has = |field: &str, want: &str| {
            seq(r, &[field])
                .into_iter()
                .any(|v| v.as_str() == Some(want) || v.as_str() == Some("*"))
        };
        has("apiGroups", group)
            && has("resources", resource)
            && verbs.iter().all(|v| has("verbs", v))
    })
}

#[test]
fn rbac_covers_every_crd_kind_and_native_reads() -> Result<()> {
    let objs = objects()?;
    let crds = crd_resources()?;
    assert!(crds.len() >= 9, "deploy/crds has {} kinds", crds.len());
    let role = find(&objs, "ClusterRole", "tortie-node")?;
    for (group, plural) in &crds {
        assert!(
            role_allows(
                role,
                group,
                plural,
                &["get", "list", "watch", "create", "update"]
            ),
            "ClusterRole tortie-node does not cover {plural}.{group}"
        );
    }
    for (group, res) in [
        ("", "nodes"),
        ("", "pods"),
        ("", "namespaces"),
        ("networking.k8s.io", "networkpolicies"),
    ] {
        assert!(
            role_allows(role, group, res, &["get", "list", "watch"]),
            "ClusterRole tortie-node cannot read {res}"
        );
    }
    assert!(!role_allows(role, "", "nodes", &["delete"]));
    // Each binding names an existing role and service account.
    for b in objs
        .iter()
        .filter(|o| s(o, &["kind"]) == Some("ClusterRoleBinding"))
    {
        let r = s(b, &["roleRef", "name"]).context("roleRef")?;
        find(&objs, "ClusterRole", r)?;
        for subj in seq(b, &["subjects"]) {
            let sa = s(subj, &["name"]).context("subject name")?;
            find(&objs, "ServiceAccount", sa)?;
        }
    }
    for sa in ["tortie-node", "tortie-rr"] {
        let bound = objs.iter().any(|o| {
            s(o, &["kind"]) == Some("ClusterRoleBinding")
                && seq(o, &["subjects"])
                    .iter()
                    .any(|x| s(x, &["name"]) == Some(sa))
        });
        assert!(bound, "ServiceAccount {sa} is bound to no ClusterRole");
    }
    Ok(())
}
