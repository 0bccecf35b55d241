//! The node agent's view of its WorkloadEndpoints, with labels and ports from the right
//! source for the backend.
//!
//! On etcd the WorkloadEndpoint carries its own labels and named ports: endpoints pass
//! through unchanged. On Kubernetes the Pod is the truth (relabelling a pod must change
//! which policies select it): an endpoint's labels and ports are taken from the Pod of
//! the same namespace named by `spec.pod`, and a change of the Pod's labels or named
//! ports re-emits the endpoint as `Modified`.
//!
//! Pure parts: [`endpoint_with_pod`] (the join of one endpoint with its Pod) and
//! [`EndpointJoin`] (join state: endpoint and pod events in, endpoint events out; no I/O,
//! no clock), and [`ClusterJoin`] (one join per node, for every node's endpoints). Thin
//! driver: [`watch_endpoints`] (list + watch of the node's endpoints and, on Kubernetes,
//! its Pods via `spec.nodeName=<node>`, fed through the join state) and
//! [`watch_all_endpoints`] (every node's, through [`ClusterJoin`]).
//!
//! Kubernetes semantics chosen here:
//! - An endpoint whose Pod is not (or no longer) known is not emitted (or is emitted as
//!   `Deleted`): without the Pod its labels are unknown, and guessing them could open or
//!   close traffic wrongly. It appears as soon as the Pod does. A terminating Pod (with a
//!   `deletionTimestamp`) still counts until it is gone: its interface still exists.
//! - Labels are the Pod's labels plus Calico's implicit `projectcalico.org/namespace:
//!   <ns>` and `projectcalico.org/orchestrator: k8s` (which win over pod labels of the same
//!   key), so selectors written for Calico keep working.
//! - Ports are the named container ports of the Pod's containers (not init containers),
//!   in container then port order; protocol defaults to TCP; a port with an unknown
//!   protocol or a number outside 1..=65535 is skipped (it is user input, never a panic).
//!
//! Endpoints of other nodes (`spec.node != node`) are filtered out on both backends
//! (CRDs cannot be field-selected by the 1.20 API server, so this happens client side).

use std::collections::BTreeMap;

use futures::{StreamExt, future, stream};
use k8s_openapi::api::core::v1::Pod;
use tortie_crds::endpoint::{EndpointPort, Protocol, WorkloadEndpoint};

mod cluster;

pub use cluster::ClusterJoin;

use crate::Datastore;
use crate::error::Result;
use crate::kind::ObjectKey;
use crate::store::{Event, Filter, WatchStream};

/// Calico's implicit namespace label on every Kubernetes endpoint.
pub const NAMESPACE_LABEL: &str = "projectcalico.org/namespace";
/// Calico's implicit orchestrator label on every Kubernetes endpoint.
pub const ORCHESTRATOR_LABEL: &str = "projectcalico.org/orchestrator";

/// `wep` with its labels and ports taken from `pod` (see the module header for the exact
/// rules). Everything else of `wep` (spec, name, version) is kept.
pub fn endpoint_with_pod(mut wep: WorkloadEndpoint, pod: &Pod) -> WorkloadEndpoint {
    let mut labels = pod.metadata.labels.clone().unwrap_or_default();
    let ns = pod
        .metadata
        .namespace
        .clone()
        .or_else(|| wep.metadata.namespace.clone())
        .unwrap_or_default();
    labels.insert(NAMESPACE_LABEL.to_string(), ns);
    labels.insert(ORCHESTRATOR_LABEL.to_string(), "k8s".to_string());
    wep.metadata.labels = Some(labels);
    wep.spec.ports = pod_ports(pod);
    wep
}

/// The named container ports of `pod`.
fn pod_ports(pod: &Pod) -> Vec<EndpointPort> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let name = p.name.as_deref().filter(|n| !n.is_empty())?;
            let protocol = match p.protocol.as_deref() {
                None | Some("TCP") => Protocol::Tcp,
                Some("UDP") => Protocol::Udp,
                Some("SCTP") => Protocol::Sctp,
                Some(_) => return None,
            };
            let port = u16::try_from(p.container_port).ok().filter(|&n| n != 0)?;
            Some(EndpointPort {
                name: name.to_string(),
                protocol,
                port,
            })
        })
        .collect()
}

/// Where labels and ports come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelSource {
    /// The WorkloadEndpoint itself (etcd backend): pass-through.
    Endpoint,
    /// The endpoint's Pod (Kubernetes backend).
    Pod,
}

/// Join state of one node: raw endpoints and pods in, joined endpoint events out. Every
/// output is the difference between what was emitted before and what should be seen now,
/// so a consumer applying the events in order always holds exactly [`Self::current`].
#[derive(Clone, Debug)]
pub struct EndpointJoin {
    node: String,
    source: LabelSource,
    weps: BTreeMap<ObjectKey, WorkloadEndpoint>,
    /// Pods by (namespace, name).
    pods: BTreeMap<(String, String), Pod>,
    emitted: BTreeMap<ObjectKey, WorkloadEndpoint>,
}

impl EndpointJoin {
    /// Empty state for the endpoints of `node`.
    pub fn new(node: impl Into<String>, source: LabelSource) -> Self {
        EndpointJoin {
            node: node.into(),
            source,
            weps: BTreeMap::new(),
            pods: BTreeMap::new(),
            emitted: BTreeMap::new(),
        }
    }

    /// The joined endpoints a consumer of every emitted event holds now.
    pub fn current(&self) -> Vec<WorkloadEndpoint> {
        self.emitted.values().cloned().collect()
    }

    /// Applies a WorkloadEndpoint event; returns the endpoint events it causes.
    pub fn on_endpoint(&mut self, ev: Event<WorkloadEndpoint>) -> Vec<Event<WorkloadEndpoint>> {
        match ev {
            Event::Added(w) | Event::Modified(w) => {
                let key = ObjectKey::of(&w);
                if w.spec.node == self.node {
                    self.weps.insert(key.clone(), w);
                } else {
                    self.weps.remove(&key);
                }
                self.refresh(&key).into_iter().collect()
            }
            Event::Deleted(w) => {
                let key = ObjectKey::of(&w);
                self.weps.remove(&key);
                self.refresh(&key).into_iter().collect()
            }
            Event::Resync { items, .. } => {
                self.weps = items
                    .into_iter()
                    .filter(|w| w.spec.node == self.node)
                    .map(|w| (ObjectKey::of(&w), w))
                    .collect();
                self.refresh_all()
            }
        }
    }

    /// Applies a Pod event (ignored with [`LabelSource::Endpoint`]); returns the endpoint
    /// events it causes (`Modified` when the pod's labels or named ports changed).
    pub fn on_pod(&mut self, ev: Event<Pod>) -> Vec<Event<WorkloadEndpoint>> {
        if self.source == LabelSource::Endpoint {
            return Vec::new();
        }
        match ev {
            Event::Added(p) | Event::Modified(p) => {
                let id = pod_id(&p);
                self.pods.insert(id.clone(), p);
                self.refresh_pod(&id)
            }
            Event::Deleted(p) => {
                let id = pod_id(&p);
                self.pods.remove(&id);
                self.refresh_pod(&id)
            }
            Event::Resync { items, .. } => {
                self.pods = items.into_iter().map(|p| (pod_id(&p), p)).collect();
                self.refresh_all()
            }
        }
    }

    /// What endpoint `key` should look like now, if it should be seen at all.
    fn desired(&self, key: &ObjectKey) -> Option<WorkloadEndpoint> {
        let w = self.weps.get(key)?;
        match self.source {
            LabelSource::Endpoint => Some(w.clone()),
            LabelSource::Pod => {
                let ns = w.metadata.namespace.clone().unwrap_or_default();
                let pod = self.pods.get(&(ns, w.spec.pod.clone()))?;
                Some(endpoint_with_pod(w.clone(), pod))
            }
        }
    }

    /// Brings the emitted state of `key` to the desired one; the event that does it.
    fn refresh(&mut self, key: &ObjectKey) -> Option<Event<WorkloadEndpoint>> {
        match (self.desired(key), self.emitted.get(key)) {
            (None, None) => None,
            (None, Some(_)) => self.emitted.remove(key).map(Event::Deleted),
            (Some(d), None) => {
                self.emitted.insert(key.clone(), d.clone());
                Some(Event::Added(d))
            }
            (Some(d), Some(old)) if *old == d => None,
            (Some(d), Some(_)) => {
                self.emitted.insert(key.clone(), d.clone());
                Some(Event::Modified(d))
            }
        }
    }

    fn refresh_pod(&mut self, id: &(String, String)) -> Vec<Event<WorkloadEndpoint>> {
        let keys: Vec<ObjectKey> = self
            .weps
            .iter()
            .filter(|(k, w)| k.namespace.as_deref() == Some(id.0.as_str()) && w.spec.pod == id.1)
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().filter_map(|k| self.refresh(k)).collect()
    }

    fn refresh_all(&mut self) -> Vec<Event<WorkloadEndpoint>> {
        let mut keys: Vec<ObjectKey> = self.weps.keys().cloned().collect();
        keys.extend(self.emitted.keys().cloned());
        keys.sort();
        keys.dedup();
        keys.iter().filter_map(|k| self.refresh(k)).collect()
    }
}

fn pod_id(p: &Pod) -> (String, String) {
    (
        p.metadata.namespace.clone().unwrap_or_default(),
        p.metadata.name.clone().unwrap_or_default(),
    )
}

enum Input {
    // Boxed: events are large and differ in size by kind.
    Endpoint(Box<Result<Event<WorkloadEndpoint>>>),
    Pod(Box<Result<Event<Pod>>>),
}

/// The WorkloadEndpoints of `node` with labels and ports from the backend's source of
/// truth (see the module header). The stream starts with one [`Event::Resync`] holding
/// the joined state (its `revision` is informational: `<wep revision>` on etcd,
/// `wep=<rv>,pod=<rv>` on Kubernetes), then yields Added/Modified/Deleted; a later
/// backend resync of either input is turned into the differences it causes. `Err` items
/// are passed on as the underlying watches report them; the stream does not end.
pub async fn watch_endpoints(ds: &Datastore, node: &str) -> Result<WatchStream<WorkloadEndpoint>> {
    let pods = Filter::all().with_fields(format!("spec.nodeName={node}"));
    drive(ds, &pods, |source| EndpointJoin::new(node, source)).await
}

/// Every node's WorkloadEndpoints, joined as [`watch_endpoints`] joins one node's (through
/// [`ClusterJoin`]), with the same stream shape: what the node agent feeds felix, which
/// needs remote endpoints' labels for policy rules that select pods.
pub async fn watch_all_endpoints(ds: &Datastore) -> Result<WatchStream<WorkloadEndpoint>> {
    drive(ds, &Filter::all(), ClusterJoin::new).await
}

/// Join state the driver feeds: one node's ([`EndpointJoin`]) or the cluster's
/// ([`ClusterJoin`]).
trait Join: Send + 'static {
    fn on_endpoint(&mut self, ev: Event<WorkloadEndpoint>) -> Vec<Event<WorkloadEndpoint>>;
    fn on_pod(&mut self, ev: Event<Pod>) -> Vec<Event<WorkloadEndpoint>>;
    fn current(&self) -> Vec<WorkloadEndpoint>;
}

impl Join for EndpointJoin {
    fn on_endpoint(&mut self, ev: Event<WorkloadEndpoint>) -> Vec<Event<WorkloadEndpoint>> {
        EndpointJoin::on_endpoint(self, ev)
    }
    fn on_pod(&mut self, ev: Event<Pod>) -> Vec<Event<WorkloadEndpoint>> {
        EndpointJoin::on_pod(self, ev)
    }
    fn current(&self) -> Vec<WorkloadEndpoint> {
        EndpointJoin::current(self)
    }
}

impl Join for ClusterJoin {
    fn on_endpoint(&mut self, ev: Event<WorkloadEndpoint>) -> Vec<Event<WorkloadEndpoint>> {
        ClusterJoin::on_endpoint(self, ev)
    }
    fn on_pod(&mut self, ev: Event<Pod>) -> Vec<Event<WorkloadEndpoint>> {
        ClusterJoin::on_pod(self, ev)
    }
    fn current(&self) -> Vec<WorkloadEndpoint> {
        ClusterJoin::current(self)
    }
}

/// The driver: list + watch of every WorkloadEndpoint and, on Kubernetes, of the Pods
/// `pods` selects, fed through the join state `make` builds for the backend.
async fn drive<J: Join>(
    ds: &Datastore,
    pods: &Filter,
    make: impl FnOnce(LabelSource) -> J,
) -> Result<WatchStream<WorkloadEndpoint>> {
    let weps = ds.store::<WorkloadEndpoint>();
    let wep_list = weps.list(&Filter::all()).await?;
    let (source, pod_list) = match ds {
        Datastore::Etcd(_) => (LabelSource::Endpoint, None),
        Datastore::Kube(_) => {
            let store = ds.store::<Pod>();
            let list = store.list(pods).await?;
            let watch = store.watch(pods, &list.revision).await?;
            (LabelSource::Pod, Some((list, watch)))
        }
    };
    let mut join = make(source);
    join.on_endpoint(Event::Resync {
        items: wep_list.items,
        revision: wep_list.revision.clone(),
    });
    let wep_watch = weps.watch(&Filter::all(), &wep_list.revision).await?;
    let (revision, pod_watch) = match pod_list {
        None => (wep_list.revision, stream::pending().boxed()),
        Some((list, watch)) => {
            join.on_pod(Event::Resync {
                items: list.items,
                revision: list.revision.clone(),
            });
            (
                format!("wep={},pod={}", wep_list.revision, list.revision),
                watch.map(|ev| Input::Pod(Box::new(ev))).boxed(),
            )
        }
    };
    let first = Event::Resync {
        items: join.current(),
        revision,
    };
    let merged = stream::select(wep_watch.map(|ev| Input::Endpoint(Box::new(ev))), pod_watch);
    let rest = merged
        .scan(join, |join, input| {
            let out: Vec<Result<Event<WorkloadEndpoint>>> = match input {
                Input::Endpoint(ev) => match *ev {
                    Ok(ev) => join.on_endpoint(ev).into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                },
                Input::Pod(ev) => match *ev {
                    Ok(ev) => join.on_pod(ev).into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                },
            };
            future::ready(Some(stream::iter(out)))
        })
        .flatten();
    Ok(stream::once(future::ready(Ok(first))).chain(rest).boxed())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};
    use kube::api::ObjectMeta;
    use tortie_crds::endpoint::WorkloadEndpointSpec;

    use super::*;

    /// An endpoint of `ns/pod` on `node` (shared with the cluster join's tests).
    pub(super) fn wep(ns: &str, pod: &str, node: &str) -> WorkloadEndpoint {
        let name = WorkloadEndpoint::name_for(node, "k8s", pod, "eth0");
        let mut w = WorkloadEndpoint::new(
            &name,
            WorkloadEndpointSpec {
                node: node.into(),
                pod: pod.into(),
                interface_name: "cali0123456789a".into(),
                ..Default::default()
            },
        );
        w.metadata.namespace = Some(ns.into());
        w
    }

    fn port(name: Option<&str>, proto: Option<&str>, n: i32) -> ContainerPort {
        ContainerPort {
            name: name.map(str::to_string),
            protocol: proto.map(str::to_string),
            container_port: n,
            ..Default::default()
        }
    }

    fn pod(ns: &str, name: &str, labels: &[(&str, &str)], ports: Vec<ContainerPort>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(ports),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        }
    }

    fn labels(w: &WorkloadEndpoint) -> Vec<(String, String)> {
        w.labels_map().into_iter().collect()
    }

    #[test]
    fn join_takes_pod_labels_and_named_ports_only() {
        let mut w = wep("ns1", "web", "n1");
        w.metadata.labels = Some([("stale".to_string(), "x".to_string())].into());
        let p = pod(
            "ns1",
            "web",
            &[("app", "web"), (NAMESPACE_LABEL, "forged")],
            vec![
                port(Some("http"), None, 8080),
                port(None, Some("TCP"), 9090),
                port(Some("dns"), Some("UDP"), 53),
                port(Some("assoc"), Some("SCTP"), 7000),
                port(Some("weird"), Some("QUIC"), 443),
                port(Some("big"), None, 70000),
                port(Some(""), None, 81),
            ],
        );
        let j = endpoint_with_pod(w.clone(), &p);
        assert_eq!(
            labels(&j),
            vec![
                ("app".into(), "web".into()),
                (NAMESPACE_LABEL.into(), "ns1".into()),
                (ORCHESTRATOR_LABEL.into(), "k8s".into()),
            ]
        );
        let ports: Vec<_> = j
            .spec
            .ports
            .iter()
            .map(|p| (p.name.as_str(), p.protocol, p.port))
            .collect();
        assert_eq!(
            ports,
            vec![
                ("http", Protocol::Tcp, 8080),
                ("dns", Protocol::Udp, 53),
                ("assoc", Protocol::Sctp, 7000),
            ]
        );
        assert_eq!(j.spec.interface_name, w.spec.interface_name);
        assert_eq!(j.metadata.name, w.metadata.name);
    }

    #[test]
    fn pod_source_waits_for_pod_and_reemits_on_relabel() {
        let mut j = EndpointJoin::new("n1", LabelSource::Pod);
        assert!(
            j.on_endpoint(Event::Added(wep("ns1", "web", "n1")))
                .is_empty()
        );
        let out = j.on_pod(Event::Added(pod("ns1", "web", &[("app", "a")], vec![])));
        assert!(matches!(&out[..], [Event::Added(w)] if w.labels_map()["app"] == "a"));
        // A pod update that changes neither labels nor ports emits nothing.
        assert!(
            j.on_pod(Event::Modified(pod("ns1", "web", &[("app", "a")], vec![])))
                .is_empty()
        );
        let out = j.on_pod(Event::Modified(pod(
            "ns1",
            "web",
            &[("app", "b")],
            vec![port(Some("http"), None, 80)],
        )));
        assert!(
            matches!(&out[..], [Event::Modified(w)] if w.labels_map()["app"] == "b" && w.spec.ports.len() == 1)
        );
        // A pod of the same name in another namespace is unrelated.
        assert!(
            j.on_pod(Event::Added(pod("ns2", "web", &[("app", "z")], vec![])))
                .is_empty()
        );
        let out = j.on_pod(Event::Deleted(pod("ns1", "web", &[], vec![])));
        assert!(matches!(&out[..], [Event::Deleted(_)]));
        assert!(j.current().is_empty());
    }

    #[test]
    fn other_nodes_are_filtered_and_etcd_passes_through() {
        let mut j = EndpointJoin::new("n1", LabelSource::Endpoint);
        let mut mine = wep("ns1", "web", "n1");
        mine.metadata.labels = Some([("own".to_string(), "label".to_string())].into());
        assert!(
            j.on_endpoint(Event::Added(wep("ns1", "db", "n2")))
                .is_empty()
        );
        let out = j.on_endpoint(Event::Added(mine.clone()));
        assert!(matches!(&out[..], [Event::Added(w)] if *w == mine));
        assert!(
            j.on_pod(Event::Added(pod("ns1", "web", &[("app", "x")], vec![])))
                .is_empty()
        );
        assert_eq!(j.current(), vec![mine.clone()]);
        let out = j.on_endpoint(Event::Deleted(mine));
        assert!(matches!(&out[..], [Event::Deleted(_)]));
    }

    #[test]
    fn resync_yields_only_the_differences() {
        let mut j = EndpointJoin::new("n1", LabelSource::Pod);
        j.on_pod(Event::Resync {
            items: vec![
                pod("ns1", "a", &[("v", "1")], vec![]),
                pod("ns1", "b", &[("v", "1")], vec![]),
            ],
            revision: "1".into(),
        });
        let out = j.on_endpoint(Event::Resync {
            items: vec![wep("ns1", "a", "n1"), wep("ns1", "b", "n1")],
            revision: "1".into(),
        });
        assert_eq!(out.len(), 2);
        // Pods re-listed: a unchanged, b relabelled, and the endpoint of a gone.
        let out = j.on_pod(Event::Resync {
            items: vec![
                pod("ns1", "a", &[("v", "1")], vec![]),
                pod("ns1", "b", &[("v", "2")], vec![]),
            ],
            revision: "2".into(),
        });
        assert!(matches!(&out[..], [Event::Modified(w)] if w.spec.pod == "b"));
        let out = j.on_endpoint(Event::Resync {
            items: vec![wep("ns1", "b", "n1")],
            revision: "2".into(),
        });
        assert!(matches!(&out[..], [Event::Deleted(w)] if w.spec.pod == "a"));
        assert_eq!(j.current().len(), 1);
    }
}
