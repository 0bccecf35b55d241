//! The cluster-wide endpoint join: the WorkloadEndpoints of *every* node (felix needs
//! remote ones too: their addresses fill the IP sets of policy rules that select pods by
//! label), with labels and named ports from the backend's source of truth. Pure.
//!
//! [`EndpointJoin`] serves one node, so [`ClusterJoin`] keeps one per node and routes
//! each endpoint event by `spec.node` and each Pod event by `spec.nodeName`; a listing of
//! either input is split per node, so every join sees its own complete listing. Pods
//! without a node (not scheduled yet) cannot have an endpoint and are not held. The
//! driver is [`super::watch_all_endpoints`].

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;
use tortie_crds::endpoint::WorkloadEndpoint;

use super::{EndpointJoin, LabelSource};
use crate::kind::ObjectKey;
use crate::store::Event;

/// One [`EndpointJoin`] per node, fed from cluster-wide endpoint and Pod events.
#[derive(Clone, Debug)]
pub struct ClusterJoin {
    source: LabelSource,
    joins: BTreeMap<String, EndpointJoin>,
    /// The node each known endpoint was routed to (an update may move it).
    wep_node: BTreeMap<ObjectKey, String>,
}

fn pod_node(p: &Pod) -> Option<&str> {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

impl ClusterJoin {
    /// Empty state; `source` as the backend dictates.
    pub fn new(source: LabelSource) -> Self {
        ClusterJoin {
            source,
            joins: BTreeMap::new(),
            wep_node: BTreeMap::new(),
        }
    }

    /// The joined endpoints of every node a consumer of every emitted event holds now.
    pub fn current(&self) -> Vec<WorkloadEndpoint> {
        self.joins.values().flat_map(|j| j.current()).collect()
    }

    fn join(&mut self, node: &str) -> &mut EndpointJoin {
        let source = self.source;
        self.joins
            .entry(node.to_string())
            .or_insert_with(|| EndpointJoin::new(node, source))
    }

    /// Applies a WorkloadEndpoint event (any node); returns the endpoint events it causes.
    pub fn on_endpoint(&mut self, ev: Event<WorkloadEndpoint>) -> Vec<Event<WorkloadEndpoint>> {
        let mut out = Vec::new();
        match ev {
            Event::Added(w) | Event::Modified(w) => {
                let key = ObjectKey::of(&w);
                let node = w.spec.node.clone();
                if let Some(old) = self.wep_node.insert(key, node.clone())
                    && old != node
                {
                    out.extend(self.join(&old).on_endpoint(Event::Deleted(w.clone())));
                }
                out.extend(self.join(&node).on_endpoint(Event::Modified(w)));
            }
            Event::Deleted(w) => {
                let key = ObjectKey::of(&w);
                let node = self
                    .wep_node
                    .remove(&key)
                    .unwrap_or_else(|| w.spec.node.clone());
                out.extend(self.join(&node).on_endpoint(Event::Deleted(w)));
            }
            Event::Resync { items, revision } => {
                let mut by_node: BTreeMap<String, Vec<WorkloadEndpoint>> = BTreeMap::new();
                self.wep_node.clear();
                for w in items {
                    self.wep_node.insert(ObjectKey::of(&w), w.spec.node.clone());
                    by_node.entry(w.spec.node.clone()).or_default().push(w);
                }
                let nodes: BTreeSet<String> = self
                    .joins
                    .keys()
                    .cloned()
                    .chain(by_node.keys().cloned())
                    .collect();
                for node in nodes {
                    let items = by_node.remove(&node).unwrap_or_default();
                    let revision = revision.clone();
                    out.extend(
                        self.join(&node)
                            .on_endpoint(Event::Resync { items, revision }),
                    );
                }
            }
        }
        out
    }

    /// Applies a Pod event (any node); returns the endpoint events it causes. Ignored
    /// on etcd ([`LabelSource::Endpoint`]).
    pub fn on_pod(&mut self, ev: Event<Pod>) -> Vec<Event<WorkloadEndpoint>> {
        if self.source == LabelSource::Endpoint {
            return Vec::new();
        }
        match ev {
            Event::Added(p) | Event::Modified(p) => match pod_node(&p).map(str::to_string) {
                Some(node) => self.join(&node).on_pod(Event::Modified(p)),
                None => Vec::new(),
            },
            Event::Deleted(p) => match pod_node(&p).map(str::to_string) {
                Some(node) => self.join(&node).on_pod(Event::Deleted(p)),
                None => Vec::new(),
            },
            Event::Resync { items, revision } => {
                let mut by_node: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
                for p in items {
                    if let Some(node) = pod_node(&p).map(str::to_string) {
                        by_node.entry(node).or_default().push(p);
                    }
                }
                let nodes: BTreeSet<String> = self
                    .joins
                    .keys()
                    .cloned()
                    .chain(by_node.keys().cloned())
                    .collect();
                let mut out = Vec::new();
                for node in nodes {
                    let items = by_node.remove(&node).unwrap_or_default();
                    let revision = revision.clone();
                    out.extend(self.join(&node).on_pod(Event::Resync { items, revision }));
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodSpec;
    use kube::api::ObjectMeta;

    use super::*;
    use crate::endpoints::tests::wep;

    fn pod(ns: &str, name: &str, node: Option<&str>, app: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                labels: Some([("app".to_string(), app.to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(str::to_string),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn app(w: &WorkloadEndpoint) -> String {
        w.labels_map().get("app").cloned().unwrap_or_default()
    }

    #[test]
    fn endpoints_of_every_node_take_their_pods_labels() {
        let mut c = ClusterJoin::new(LabelSource::Pod);
        assert!(c.on_endpoint(Event::Added(wep("ns", "a", "n1"))).is_empty());
        assert!(c.on_endpoint(Event::Added(wep("ns", "b", "n2"))).is_empty());
        // An unscheduled pod is not held; once bound to n2 its endpoint appears.
        assert!(c.on_pod(Event::Added(pod("ns", "b", None, "x"))).is_empty());
        let out = c.on_pod(Event::Modified(pod("ns", "b", Some("n2"), "x")));
        assert!(matches!(&out[..], [Event::Added(w)] if w.spec.node == "n2" && app(w) == "x"));
        let out = c.on_pod(Event::Added(pod("ns", "a", Some("n1"), "y")));
        assert!(matches!(&out[..], [Event::Added(w)] if w.spec.node == "n1" && app(w) == "y"));
        // Relabel the remote (n2) pod: its endpoint is re-emitted with the new label.
        let out = c.on_pod(Event::Modified(pod("ns", "b", Some("n2"), "z")));
        assert!(matches!(&out[..], [Event::Modified(w)] if w.spec.pod == "b" && app(w) == "z"));
        assert_eq!(c.current().len(), 2);
        // A pod of the same name bound to another node does not label n1's endpoint.
        assert!(
            c.on_pod(Event::Added(pod("ns", "a", Some("n3"), "other")))
                .is_empty()
        );
        let out = c.on_endpoint(Event::Deleted(wep("ns", "b", "n2")));
        assert!(matches!(&out[..], [Event::Deleted(w)] if w.spec.pod == "b"));
        assert_eq!(c.current().len(), 1);
    }

    #[test]
    fn resyncs_split_per_node_and_yield_differences() {
        let mut c = ClusterJoin::new(LabelSource::Pod);
        c.on_pod(Event::Resync {
            items: vec![
                pod("ns", "a", Some("n1"), "1"),
                pod("ns", "b", Some("n2"), "1"),
            ],
            revision: "1".into(),
        });
        let out = c.on_endpoint(Event::Resync {
            items: vec![wep("ns", "a", "n1"), wep("ns", "b", "n2")],
            revision: "1".into(),
        });
        assert_eq!(out.len(), 2, "{out:?}");
        // Pods re-listed: b relabelled; a's endpoint re-listed away.
        let out = c.on_pod(Event::Resync {
            items: vec![
                pod("ns", "a", Some("n1"), "1"),
                pod("ns", "b", Some("n2"), "2"),
            ],
            revision: "2".into(),
        });
        assert!(matches!(&out[..], [Event::Modified(w)] if w.spec.pod == "b" && app(w) == "2"));
        let out = c.on_endpoint(Event::Resync {
            items: vec![wep("ns", "b", "n2")],
            revision: "2".into(),
        });
        assert!(matches!(&out[..], [Event::Deleted(w)] if w.spec.pod == "a"));
        assert_eq!(c.current().len(), 1);
    }

    #[test]
    fn etcd_passes_every_node_through_and_ignores_pods() {
        let mut c = ClusterJoin::new(LabelSource::Endpoint);
        let mut w = wep("ns", "a", "n2");
        w.metadata.labels = Some([("app".to_string(), "own".to_string())].into());
        let out = c.on_endpoint(Event::Added(w.clone()));
        assert!(matches!(&out[..], [Event::Added(x)] if *x == w));
        assert!(
            c.on_pod(Event::Added(pod("ns", "a", Some("n2"), "pod")))
                .is_empty()
        );
        assert_eq!(c.current(), vec![w]);
    }
}
