//! The generated CRDs on a real kube-apiserver (testlab's, 1.20): every kind is accepted,
//! objects round-trip into the Rust types, the server applies the same defaults as Rust,
//! and the schema refuses what the types cannot represent.
//!
//! Needs the cached kube-apiserver binary (`.ci/prepare.d/kube-apiserver.sh`); fails
//! loudly without it.

use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use testlab::kube_apiserver::KubeApiServer;
use tortie_crds::{
    AffinityState, AsNumber, BgpConfiguration, BgpConfigurationSpec, BgpPeer, BlockAffinity,
    IpPool, IpPoolSpec, IpamBlock, IpamBlockSpec, IpamConfig, IpamConfigSpec, IpamHandle,
    IpamHandleSpec, NodeBgpSpec, TortieNode, TortieNodeSpec, Validate, WorkloadEndpoint,
    WorkloadEndpointSpec,
};

/// Posts raw JSON for kind `K` (cluster-scoped unless `ns`), returning the server's answer.
async fn post_raw<K: Resource<DynamicType = ()>>(
    client: &Client,
    ns: Option<&str>,
    body: serde_json::Value,
) -> Result<DynamicObject, kube::Error> {
    let ar = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let mut obj: DynamicObject = serde_json::from_value(body).expect("test JSON is an object");
    obj.types = Some(kube::api::TypeMeta {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
    });
    api.create(&PostParams::default(), &obj).await
}

/// Creates `obj` through the typed API and reads it back.
async fn round_trip<K>(api: &Api<K>, obj: &K) -> K
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = obj.meta().name.clone().expect("named");
    api.create(&PostParams::default(), obj)
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    api.get(&name)
        .await
        .unwrap_or_else(|e| panic!("get {name}: {e}"))
}

fn is_invalid(r: Result<DynamicObject, kube::Error>) -> String {
    match r {
        Err(kube::Error::Api(s)) if s.code == 422 => s.message,
        other => panic!("expected 422 Invalid, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_work_on_a_real_apiserver() {
    let server = KubeApiServer::start()
        .await
        .expect("kube-apiserver with deploy/crds");
    let client = server.client().await.expect("client");

    // Server-side defaults equal the Rust ones.
    post_raw::<IpPool>(
        &client,
        None,
        json!({"metadata": {"name": "bare"}, "spec": {"cidr": "10.9.0.0/16"}}),
    )
    .await
    .expect("bare pool");
    let pools: Api<IpPool> = Api::all(client.clone());
    let bare = pools.get("bare").await.expect("get bare");
    assert_eq!(bare.spec, IpPoolSpec::new("10.9.0.0/16".parse().unwrap()));
    assert!(bare.validate().is_ok());

    post_raw::<IpamConfig>(
        &client,
        None,
        json!({"metadata": {"name": "default"}, "spec": {}}),
    )
    .await
    .expect("ipam config");
    let cfg = Api::<IpamConfig>::all(client.clone())
        .get("default")
        .await
        .unwrap();
    assert_eq!(cfg.spec, IpamConfigSpec::default());

    post_raw::<BlockAffinity>(
        &client,
        None,
        json!({"metadata": {"name": "n1-10-9-0-0-26"}, "spec": {"node": "n1", "cidr": "10.9.0.0/26"}}),
    )
    .await
    .expect("affinity");
    let aff = Api::<BlockAffinity>::all(client.clone())
        .get("n1-10-9-0-0-26")
        .await
        .unwrap();
    assert_eq!(aff.spec.state, AffinityState::Pending);
    assert!(!aff.spec.deleted);

    // An asdot AS number is stored as written and read as the number.
    post_raw::<BgpPeer>(
        &client,
        None,
        json!({"metadata": {"name": "tor"}, "spec": {"peerIP": "192.0.2.1", "asNumber": "1.10"}}),
    )
    .await
    .expect("asdot peer");
    let tor = Api::<BgpPeer>::all(client.clone())
        .get("tor")
        .await
        .unwrap();
    assert_eq!(tor.spec.as_number, Some(AsNumber(65546)));

    // Typed round trips of every other kind.
    let mut block_spec = IpamBlockSpec::empty("10.9.0.64/30".parse().unwrap(), Some("n1"));
    block_spec.allocations[1] = Some(0);
    block_spec.unallocated.retain(|o| *o != 1);
    block_spec
        .attributes
        .push(tortie_crds::AllocationAttribute {
            handle_id: Some("k8s-pod-network.abc".into()),
            secondary: None,
        });
    block_spec
        .sequence_number_for_allocation
        .insert("1".into(), 1);
    let block = IpamBlock::new("10-9-0-64-30", block_spec);
    let back = round_trip(&Api::all(client.clone()), &block).await;
    assert_eq!(back.spec, block.spec);

    let handle = IpamHandle::new(
        "k8s-pod-network.abc",
        IpamHandleSpec {
            handle_id: "k8s-pod-network.abc".into(),
            block: [("10.9.0.64/30".to_string(), 1)].into(),
            deleted: false,
        },
    );
    assert_eq!(
        round_trip(&Api::all(client.clone()), &handle).await.spec,
        handle.spec
    );

    let node = TortieNode::new(
        "n1",
        TortieNodeSpec {
            bgp: Some(NodeBgpSpec {
                ipv4_address: Some("10.0.0.5/24".parse().unwrap()),
                as_number: Some(AsNumber(65001)),
                route_reflector_cluster_id: Some("224.0.0.1".into()),
                ..Default::default()
            }),
            vxlan_tunnel_mac_addr: Some("66:00:11:22:33:44".into()),
            ..Default::default()
        },
    );
    assert_eq!(
        round_trip(&Api::all(client.clone()), &node).await.spec,
        node.spec
    );

    let conf = BgpConfiguration::new("default", BgpConfigurationSpec::default().with_defaults());
    assert_eq!(
        round_trip(&Api::all(client.clone()), &conf).await.spec,
        conf.spec
    );

    let mut wep = WorkloadEndpoint::new(
        &WorkloadEndpoint::name_for("n1", "k8s", "web", "eth0"),
        WorkloadEndpointSpec {
            node: "n1".into(),
            pod: "web".into(),
            container_id: "abc".into(),
            interface_name: "cali0123456789a".into(),
            ip_networks: vec!["10.9.0.65/32".parse().unwrap()],
            ..Default::default()
        },
    );
    wep.metadata.namespace = Some("default".into());
    let back = round_trip(&Api::namespaced(client.clone(), "default"), &wep).await;
    assert_eq!(back.spec, wep.spec);
    assert!(back.validate().is_ok());

    // The schema refuses values the types cannot hold.
    let msg = is_invalid(
        post_raw::<IpPool>(
            &client,
            None,
            json!({"metadata": {"name": "bad1"}, "spec": {"cidr": "10.8.0.0/16", "ipipMode": "Sometimes"}}),
        )
        .await,
    );
    assert!(msg.contains("spec.ipipMode"), "{msg}");
    let msg = is_invalid(
        post_raw::<IpPool>(
            &client,
            None,
            json!({"metadata": {"name": "bad2"}, "spec": {"ipipMode": "Never"}}),
        )
        .await,
    );
    assert!(msg.contains("spec.cidr"), "{msg}");
    let msg = is_invalid(
        post_raw::<BgpConfiguration>(
            &client,
            None,
            json!({"metadata": {"name": "default2"}, "spec": {"listenPort": 70000}}),
        )
        .await,
    );
    assert!(msg.contains("spec.listenPort"), "{msg}");
    let msg = is_invalid(
        post_raw::<BgpPeer>(
            &client,
            None,
            json!({"metadata": {"name": "bad3"}, "spec": {"peerIP": "192.0.2.1", "asNumber": true}}),
        )
        .await,
    );
    assert!(msg.contains("spec.asNumber"), "{msg}");
}
