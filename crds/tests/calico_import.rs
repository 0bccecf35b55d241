//! Calico `projectcalico.org/v3` manifests (examples from Calico's resource reference on
//! docs.tigera.io) convert to the same objects as their tortie form; what tortie cannot
//! honour is refused naming the field.

use tortie_crds::{ImportErrorKind, TortieObject, from_calico_v3_yaml};

fn one(text: &str) -> TortieObject {
    let mut v = from_calico_v3_yaml(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(v.len(), 1, "{text}");
    v.remove(0)
}

/// (Calico YAML, the same resource written for tortie).
const PAIRS: &[(&str, &str)] = &[
    (
        r#"
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: my.ippool-1
  resourceVersion: "12345"
  uid: 2b4c2b2e-0000-0000-0000-000000000000
  creationTimestamp: "2024-01-01T00:00:00Z"
spec:
  cidr: 10.1.0.0/16
  ipipMode: CrossSubnet
  natOutgoing: true
  disabled: false
  nodeSelector: all()
  allowedUses:
    - Workload
    - Tunnel
  assignmentMode: Automatic
"#,
        r#"
apiVersion: crd.tortie.dev/v1
kind: IPPool
metadata:
  name: my.ippool-1
spec:
  cidr: 10.1.0.0/16
  ipipMode: CrossSubnet
  natOutgoing: true
"#,
    ),
    (
        r#"
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: v6pool
spec:
  cidr: 2001:db8::/48
  blockSize: 122
  vxlanMode: Always
  disableBGPExport: true
"#,
        r#"
apiVersion: crd.tortie.dev/v1
kind: IPPool
metadata: {name: v6pool}
spec: {cidr: "2001:db8::/48", blockSize: 122, vxlanMode: Always, disableBGPExport: true}
"#,
    ),
    (
        r#"
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: some.name
spec:
  node: rack1-host1
  peerIP: 192.168.1.1
  asNumber: 63400
"#,
        r#"
apiVersion: crd.tortie.dev/v1
kind: BGPPeer
metadata: {name: some.name}
spec: {node: rack1-host1, peerIP: 192.168.1.1, asNumber: 63400}
"#,
    ),
    (
        r#"
kind: BGPPeer
apiVersion: projectcalico.org/v3
metadata:
  name: peer-with-route-reflectors
spec:
  nodeSelector: all()
  peerSelector: route-reflector == 'true'
"#,
        r#"
apiVersion: crd.tortie.dev/v1
kind: BGPPeer
metadata: {name: peer-with-route-reflectors}
spec: {nodeSelector: all(), peerSelector: "route-reflector == 'true'"}
"#,
    ),
    (
        r#"
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: bgppeer-global-3040
spec:
  peerIP: 192.20.30.40
  asNumber: "1.10"
  keepOriginalNextHop: true
  password:
    secretKeyRef:
      name: bgp-secrets
      key: rr-password
  failureDetectionMode: None
  restartMode: GracefulRestart
  birdGatewayMode: Recursive
  maxRestartTime: 300s
  keepaliveTime: 20s
  ttlSecurity: 1
  sourceAddress: UseNodeIP
"#,
        r#"
apiVersion: crd.tortie.dev/v1
kind: BGPPeer
metadata: {name: bgppeer-global-3040}
spec:
  peerIP: 192.20.30.40
  asNumber: 65546
  nextHopMode: Keep
  password: {secretKeyRef: {name: bgp-secrets, key: rr-password}}
  maxRestartTime: 300s
  keepaliveTime: 20s
  ttlSecurity: 1
  sourceAddress: UseNodeIP
"#,
    ),
    (
        r#"
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  logSeverityScreen: Info
  nodeToNodeMeshEnabled: true
  nodeMeshMaxRestartTime: 120s
  asNumber: 63400
  serviceClusterIPs:
    - cidr: 10.96.0.0/12
  serviceExternalIPs:
    - cidr: 104.244.42.129/32
    - cidr: 172.217.3.0/24
  listenPort: 178
  bindMode: NodeIP
  communities:
    - name: bgp-large-community
      value: 63400:300:100
  prefixAdvertisements:
    - cidr: 172.218.4.0/26
      communities:
        - bgp-large-community
        - 63400:120
"#,
        r#"
apiVersion: crd.tortie.dev/v1
kind: BGPConfiguration
metadata: {name: default}
spec:
  logSeverityScreen: Info
  nodeToNodeMeshEnabled: true
  nodeMeshMaxRestartTime: 120s
  asNumber: 63400
  serviceClusterIPs: [{cidr: 10.96.0.0/12}]
  serviceExternalIPs: [{cidr: 104.244.42.129/32}, {cidr: 172.217.3.0/24}]
  listenPort: 178
  bindMode: NodeIP
  communities: [{name: bgp-large-community, value: "63400:300:100"}]
  prefixAdvertisements: [{cidr: 172.218.4.0/26, communities: [bgp-large-community, "63400:120"]}]
"#,
    ),
    (
        r#"
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: node.node-1
spec:
  listenPort: 1179
  ignoredInterfaces: ["iface-*"]
"#,
        r#"
apiVersion: crd.tortie.dev/v1
kind: BGPConfiguration
metadata: {name: node.node-1}
spec: {listenPort: 1179, ignoredInterfaces: ["iface-*"]}
"#,
    ),
];

#[test]
fn calico_examples_convert_to_the_tortie_form() {
    for (calico, tortie) in PAIRS {
        assert_eq!(one(calico), one(tortie), "{calico}");
    }
}

#[test]
fn a_stream_mixes_both_forms_in_order() {
    let stream = format!(
        "---\n{}\n---\n{}\n---\n# just a comment\n---\n{}",
        PAIRS[0].0, PAIRS[2].1, PAIRS[5].0
    );
    let objs = from_calico_v3_yaml(&stream).unwrap();
    let kinds: Vec<(&str, &str)> = objs.iter().map(|o| (o.kind(), o.name())).collect();
    assert_eq!(
        kinds,
        vec![
            ("IPPool", "my.ippool-1"),
            ("BGPPeer", "some.name"),
            ("BGPConfiguration", "default")
        ]
    );
    // Identity from the source cluster is dropped, labels stay.
    let TortieObject::IpPool(p) = &objs[0] else {
        panic!()
    };
    assert_eq!(p.metadata.resource_version, None);
    assert_eq!(p.metadata.uid, None);
}

/// (Calico YAML, field the refusal must name).
const REFUSED: &[(&str, &str)] = &[
    (
        "kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.1.0.0/16, blockSize: 33}",
        "spec.blockSize",
    ),
    (
        "kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.1.0.0/16, natOutgoin: true}",
        "spec.natOutgoin",
    ),
    (
        "kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.1.0.0/16, assignmentMode: Manual}",
        "spec.assignmentMode",
    ),
    (
        "kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.1.0.5/16}",
        "spec.cidr",
    ),
    ("kind: IPPool\nmetadata: {name: p}", "spec"),
    (
        "kind: BGPPeer\nmetadata: {name: b}\nspec: {peerIP: 10.0.0.1, asNumber: 64512, failureDetectionMode: BFDIfDirectlyConnected}",
        "spec.failureDetectionMode",
    ),
    (
        "kind: BGPPeer\nmetadata: {name: b}\nspec: {peerIP: 10.0.0.1, asNumber: 64512, filters: [f1]}",
        "spec.filters",
    ),
    (
        "kind: BGPPeer\nmetadata: {name: b}\nspec: {peerIP: 10.0.0.1, asNumber: 64512, keepOriginalNextHop: true, nextHopMode: Self}",
        "spec.keepOriginalNextHop",
    ),
    (
        "kind: BGPPeer\nmetadata: {name: b}\nspec: {node: n1, nodeSelector: all(), peerIP: 10.0.0.1, asNumber: 64512}",
        "spec.nodeSelector",
    ),
    (
        "kind: BGPPeer\nmetadata: {name: b}\nspec: {peerIP: 10.0.0.1, asNumber: 1.10}",
        "spec.asNumber",
    ),
    (
        "kind: BGPConfiguration\nmetadata: {name: default}\nspec: {asNumber: 64512, programClusterRoutes: Enabled}",
        "spec.programClusterRoutes",
    ),
    (
        "kind: BGPConfiguration\nmetadata: {name: default}\nspec: {serviceClusterIPs: [{cidr: 10.96.0.1/12}]}",
        "spec.serviceClusterIPs[0].cidr",
    ),
];

#[test]
fn refusals_name_the_field() {
    for (body, field) in REFUSED {
        let text = format!("apiVersion: projectcalico.org/v3\n{body}\n");
        let e = from_calico_v3_yaml(&text).expect_err(body);
        assert!(e.mentions(field), "{body}: want {field}, got {e}");
        assert!(e.to_string().contains(field), "{body}: {e}");
    }
}

#[test]
fn unsupported_kinds_and_versions_are_refused() {
    let gnp = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: x}\nspec: {}";
    let e = from_calico_v3_yaml(gnp).unwrap_err();
    assert!(matches!(e.kind, ImportErrorKind::Unsupported { .. }), "{e}");
    let old = "apiVersion: projectcalico.org/v2\nkind: IPPool\nmetadata: {name: x}\nspec: {cidr: 10.0.0.0/16}";
    assert!(matches!(
        from_calico_v3_yaml(old).unwrap_err().kind,
        ImportErrorKind::Unsupported { .. }
    ));
    let e = from_calico_v3_yaml(&format!("{}\n---\n{gnp}", PAIRS[0].0)).unwrap_err();
    assert_eq!(e.doc, 2, "{e}");
    assert!(
        e.to_string()
            .starts_with("document 2 (GlobalNetworkPolicy x): "),
        "{e}"
    );
    assert!(from_calico_v3_yaml("- a\n- b").is_err());
    let e = from_calico_v3_yaml("kind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16}")
        .unwrap_err();
    assert!(e.mentions("apiVersion"), "{e}");
    let e = from_calico_v3_yaml("apiVersion: crd.tortie.dev/v1\nspec: {}").unwrap_err();
    assert!(e.mentions("kind"), "{e}");
    assert!(from_calico_v3_yaml("a: [").is_err());
    assert_eq!(from_calico_v3_yaml("").unwrap(), vec![]);
}

#[test]
fn messages_read_well() {
    let e = from_calico_v3_yaml(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: b}\nspec: {peerIP: 10.0.0.1, asNumber: 1.10}",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "document 1 (BGPPeer b): spec.asNumber: 1.1 looks like an unquoted asdot AS number: quote it (\"1.10\")"
    );
    let e = from_calico_v3_yaml(
        "apiVersion: crd.tortie.dev/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/40}",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("document 1 (IPPool p): spec.cidr: invalid CIDR \"10.0.0.0/40\""),
        "{e}"
    );
}

#[test]
fn converted_objects_serialize_as_tortie_manifests() {
    let obj = one(PAIRS[2].0);
    let v = serde_json::to_value(&obj).unwrap();
    assert_eq!(v["apiVersion"], "crd.tortie.dev/v1");
    assert_eq!(v["kind"], "BGPPeer");
    assert_eq!(v["spec"]["peerIP"], "192.168.1.1");
    // And read back to the same object.
    let back = one(&serde_yaml::to_string(&obj).unwrap());
    assert_eq!(back, obj);
}

#[test]
fn updates_of_converted_objects_keep_immutable_fields() {
    let old = one(PAIRS[0].0);
    let same = one(PAIRS[0].1);
    assert!(same.validate_update(&old).is_ok());
    let moved = one(&PAIRS[0].1.replace("10.1.0.0/16", "10.2.0.0/16"));
    assert!(
        moved
            .validate_update(&old)
            .unwrap_err()
            .mentions("spec.cidr")
    );
    let peer = one(PAIRS[2].0);
    assert!(peer.validate_update(&old).unwrap_err().mentions("kind"));
}
