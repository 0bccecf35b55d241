//! `tortie_datastore::endpoints::watch_endpoints` against the real backends.
//!
//! Kubernetes (the real kube-apiserver of `testlab::kube_apiserver`, no kubelet: Pods stay
//! Pending, which is all the join needs): a node's endpoint takes its labels and named
//! ports from its Pod, relabelling the Pod re-emits the endpoint as Modified within
//! seconds, and endpoints and Pods of another node are never seen.
//! etcd (real `etcd`): endpoints pass through with their own labels and ports.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, ContainerPort, Namespace, Pod, PodSpec};
use kube::api::ObjectMeta;
use testlab::etcd::Etcd;
use testlab::kube_apiserver::KubeApiServer;
use tortie_crds::endpoint::{EndpointPort, Protocol, WorkloadEndpoint, WorkloadEndpointSpec};
use tortie_datastore::endpoints::{NAMESPACE_LABEL, watch_endpoints};
use tortie_datastore::{Datastore, EtcdDatastore, Event, KubeDatastore, WatchStream};

const EVENT_DEADLINE: Duration = Duration::from_secs(10);

fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{}-{nanos}", std::process::id())
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn pod(ns: &str, name: &str, node: &str, app: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            labels: Some(labels(&[("app", app)])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            containers: vec![Container {
                name: "web".into(),
                image: Some("busybox".into()),
                ports: Some(vec![
                    ContainerPort {
                        name: Some("http".into()),
                        container_port: 8080,
                        ..Default::default()
                    },
                    ContainerPort {
                        container_port: 9090,
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    }
}

fn wep(ns: &str, pod: &str, node: &str) -> WorkloadEndpoint {
    let name = WorkloadEndpoint::name_for(node, "k8s", pod, "eth0");
    let mut w = WorkloadEndpoint::new(
        &name,
        WorkloadEndpointSpec {
            orchestrator: Some("k8s".into()),
            node: node.into(),
            pod: pod.into(),
            interface_name: "cali1234567890a".into(),
            ..Default::default()
        },
    );
    w.metadata.namespace = Some(ns.into());
    w
}

/// The next Added/Modified/Deleted event (skipping nothing else), within the deadline.
async fn next_event(s: &mut WatchStream<WorkloadEndpoint>) -> Result<Event<WorkloadEndpoint>> {
    match tokio::time::timeout(EVENT_DEADLINE, s.next()).await {
        Err(_) => bail!("no endpoint event within {EVENT_DEADLINE:?}"),
        Ok(None) => bail!("endpoint stream ended"),
        Ok(Some(ev)) => ev.context("endpoint stream reported an error"),
    }
}

async fn first_resync(s: &mut WatchStream<WorkloadEndpoint>) -> Result<Vec<WorkloadEndpoint>> {
    match next_event(s).await? {
        Event::Resync { items, .. } => Ok(items),
        other => bail!("stream must start with Resync, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_endpoint_labels_and_ports_follow_the_pod() -> Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let server = KubeApiServer::start()
        .await
        .context("start the real kube-apiserver (testlab::kube_apiserver)")?;
    let ds = Datastore::Kube(KubeDatastore::new(server.client().await?).with_watch_timeout(3));
    let ns = format!("wep-{}", run_id());
    ds.store::<Namespace>()
        .create(&Namespace {
            metadata: ObjectMeta {
                name: Some(ns.clone()),
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .context("create namespace")?;

    // Before the watch: pod + endpoint on n1 (seen in the initial resync) and on n2.
    let pods = ds.store::<Pod>();
    let weps = ds.store::<WorkloadEndpoint>();
    pods.create(&pod(&ns, "web", "n1", "web")).await?;
    weps.create(&wep(&ns, "web", "n1")).await?;
    pods.create(&pod(&ns, "other", "n2", "other")).await?;
    weps.create(&wep(&ns, "other", "n2")).await?;

    let mut s = watch_endpoints(&ds, "n1").await?;
    let items = first_resync(&mut s).await?;
    let [w] = &items[..] else {
        bail!("expected exactly n1's endpoint, got {items:?}");
    };
    assert_eq!(w.spec.pod, "web");
    assert_eq!(
        w.labels_map(),
        labels(&[
            ("app", "web"),
            (NAMESPACE_LABEL, &ns),
            ("projectcalico.org/orchestrator", "k8s"),
        ])
    );
    assert_eq!(
        w.spec.ports,
        vec![EndpointPort {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 8080,
        }]
    );

    // Relabel the pod: a Modified endpoint with the new label arrives.
    let mut p = pods
        .get(&tortie_datastore::ObjectKey::namespaced(&ns, "web"))
        .await?
        .context("pod web vanished")?;
    p.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert("app".into(), "web-v2".into());
    let started = std::time::Instant::now();
    pods.update(&p).await?;
    match next_event(&mut s).await? {
        Event::Modified(w) => {
            assert_eq!(w.spec.pod, "web");
            assert_eq!(w.labels_map()["app"], "web-v2");
            eprintln!("relabel -> Modified endpoint in {:?}", started.elapsed());
        }
        other => bail!("expected Modified after relabel, got {other:?}"),
    }

    // Changes on n2 are not seen; a new endpoint on n1 (created before its pod) appears
    // once its pod exists, and is the very next event.
    let mut q = pods
        .get(&tortie_datastore::ObjectKey::namespaced(&ns, "other"))
        .await?
        .context("pod other vanished")?;
    q.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert("app".into(), "other-v2".into());
    pods.update(&q).await?;
    weps.create(&wep(&ns, "late", "n1")).await?;
    pods.create(&pod(&ns, "late", "n1", "late")).await?;
    match next_event(&mut s).await? {
        Event::Added(w) => {
            assert_eq!(w.spec.pod, "late");
            assert_eq!(w.labels_map()["app"], "late");
        }
        other => bail!("expected Added for pod late's endpoint, got {other:?}"),
    }

    // Deleting the endpoint (CNI DEL) withdraws it. (Deleting the Pod would not do for a
    // test: a Pod bound to a node only gets a deletionTimestamp until its kubelet, absent
    // here, confirms; the endpoint stays while the Pod terminates.)
    weps.delete(
        &tortie_datastore::ObjectKey::namespaced(
            &ns,
            WorkloadEndpoint::name_for("n1", "k8s", "late", "eth0"),
        ),
        None,
    )
    .await?;
    match next_event(&mut s).await? {
        Event::Deleted(w) => assert_eq!(w.spec.pod, "late"),
        other => bail!("expected Deleted for endpoint late, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_endpoints_pass_through_unchanged() -> Result<()> {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let etcd = tokio::task::spawn_blocking(Etcd::start_loopback)
        .await?
        .context("start etcd")?;
    let ds =
        EtcdDatastore::connect(&etcd.endpoints(), &format!("/tortie-wep/{}", run_id())).await?;
    let ds = Datastore::Etcd(Box::new(ds));
    let weps = ds.store::<WorkloadEndpoint>();
    let mut mine = wep("ns1", "web", "n1");
    mine.metadata.labels = Some(labels(&[("app", "own")]));
    mine.spec.ports = vec![EndpointPort {
        name: "dns".into(),
        protocol: Protocol::Udp,
        port: 53,
    }];
    let stored = weps.create(&mine).await?;
    weps.create(&wep("ns1", "db", "n2")).await?;

    let mut s = watch_endpoints(&ds, "n1").await?;
    let items = first_resync(&mut s).await?;
    assert_eq!(items, vec![stored.clone()]);

    let mut relabelled = stored;
    relabelled.metadata.labels = Some(labels(&[("app", "own-v2")]));
    weps.create(&wep("ns1", "db2", "n2")).await?;
    let updated = weps.update(&relabelled).await?;
    match next_event(&mut s).await? {
        Event::Modified(w) => assert_eq!(w, updated),
        other => bail!("expected Modified of n1's endpoint, got {other:?}"),
    }
    Ok(())
}
