//! Native kinds through the same trait: Nodes, the Pods of one node by field selector
//! (list and watch), NetworkPolicy.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use kube::api::ObjectMeta;
use tortie_datastore::{Event, Filter, ObjectKey};

use super::{Target, name, next_event};

/// The native kinds the node agent reads: Nodes (cluster-scoped), the Pods of one node
/// through the field selector `spec.nodeName=<node>` (list and watch), NetworkPolicy.
pub async fn native_kinds(t: &Target) -> Result<()> {
    use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec};
    use k8s_openapi::api::networking::v1::NetworkPolicy;

    let ns = t.namespace().await?;
    let labels: BTreeMap<String, String> = [("tortie-test".to_string(), t.run_id.clone())].into();
    let meta = |name: String, ns: Option<&str>| ObjectMeta {
        name: Some(name),
        namespace: ns.map(str::to_string),
        labels: Some(labels.clone()),
        ..Default::default()
    };
    let node_name = |i: u32| format!("{}-node{i}", t.run_id);
    let nodes = t.store::<Node>();
    for i in 1..=2 {
        let node = Node {
            metadata: meta(node_name(i), None),
            ..Default::default()
        };
        nodes
            .create(&node)
            .await
            .with_context(|| format!("create node {i}"))?;
    }
    let listed = nodes
        .list(&Filter::default().with_labels(format!("tortie-test={}", t.run_id)))
        .await?;
    ensure!(
        listed.items.len() == 2,
        "nodes listed: {}",
        listed.items.len()
    );

    let pods = t.store::<Pod>();
    let of_node1 =
        Filter::namespace(ns.clone()).with_fields(format!("spec.nodeName={}", node_name(1)));
    let before = pods.list(&of_node1).await?;
    ensure!(
        before.items.is_empty(),
        "pods before: {}",
        before.items.len()
    );
    let mut w = pods.watch(&of_node1, &before.revision).await?;
    for (pod, node) in [("p1", 1), ("p2", 2), ("p3", 1)] {
        let p = Pod {
            metadata: meta(format!("{}-{pod}", t.run_id), Some(&ns)),
            spec: Some(PodSpec {
                node_name: Some(node_name(node)),
                containers: vec![Container {
                    name: "c".into(),
                    image: Some("example.invalid/none:1".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        pods.create(&p)
            .await
            .with_context(|| format!("create pod {pod}"))?;
    }
    let mut got: Vec<String> = pods.list(&of_node1).await?.items.iter().map(name).collect();
    got.sort();
    let want = vec![format!("{}-p1", t.run_id), format!("{}-p3", t.run_id)];
    ensure!(got == want, "pods of node1: {got:?}");
    for w_ in &want {
        match next_event(&mut w, &format!("Added({w_})")).await? {
            Event::Added(p) if &name(&p) == w_ => {}
            other => bail!("want Added({w_}), got {:?}", other.object().map(name)),
        }
    }
    match tokio::time::timeout(Duration::from_millis(300), w.next()).await {
        Err(_) => {}
        Ok(other) => bail!(
            "watch of node1's pods saw more: {:?}",
            other.map(|r| r.map(|e| e.object().map(name)))
        ),
    }

    let policies = t.store::<NetworkPolicy>();
    let np = NetworkPolicy {
        metadata: meta(format!("{}-np", t.run_id), Some(&ns)),
        ..Default::default()
    };
    let created = policies
        .create(&np)
        .await
        .context("create network policy")?;
    ensure!(
        policies.get(&ObjectKey::of(&created)).await?.is_some(),
        "policy not found"
    );

    for p in pods.list(&Filter::namespace(ns.clone())).await?.items {
        pods.delete(&ObjectKey::of(&p), None).await?;
    }
    policies.delete(&ObjectKey::of(&created), None).await?;
    for i in 1..=2 {
        nodes
            .delete(&ObjectKey::cluster(node_name(i)), None)
            .await?;
    }
    Ok(())
}
