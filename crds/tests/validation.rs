//! Validation table: every invalid example is rejected naming its field, every valid one
//! is accepted. Documents go through `from_calico_v3_yaml`, as `tortiectl apply -f` does.

use tortie_crds::{
    IpPool, IpPoolSpec, TortieObject, Validate, from_calico_v3_yaml, validate_pool_overlap,
    validate_pool_update,
};

fn doc(kind: &str, name: &str, spec: &str) -> String {
    let spec = spec
        .lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        "apiVersion: crd.tortie.dev/v1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n{spec}\n"
    )
}

/// (kind, name, spec YAML, None = valid | Some(field the error must name)).
const CASES: &[(&str, &str, &str, Option<&str>)] = &[
    // Rules Calico also enforces: LoadBalancer pools, peerSelector AS, mesh-only fields.
    (
        "IPPool",
        "p",
        "cidr: 10.244.0.0/16\nallowedUses: [LoadBalancer]",
        None,
    ),
    (
        "IPPool",
        "p",
        "cidr: 10.244.0.0/16\nallowedUses: [LoadBalancer]\nvxlanMode: Always",
        Some("spec.allowedUses"),
    ),
    (
        "BGPPeer",
        "rr",
        "peerSelector: has(rr)\nasNumber: 65000",
        Some("spec.asNumber"),
    ),
    (
        "BGPConfiguration",
        "default",
        "nodeToNodeMeshEnabled: false\nnodeMeshMaxRestartTime: 60s",
        Some("spec.nodeMeshMaxRestartTime"),
    ),
    (
        "BGPConfiguration",
        "default",
        "nodeToNodeMeshEnabled: false\nnodeMeshPassword: {secretKeyRef: {name: s, key: k}}",
        Some("spec.nodeMeshPassword"),
    ),
    // IPPool
    ("IPPool", "p", "cidr: 10.244.0.0/16", None),
    (
        "IPPool",
        "p",
        "cidr: 10.244.0.0/16\nblockSize: 24\nipipMode: CrossSubnet\nnatOutgoing: true",
        None,
    ),
    ("IPPool", "p", "cidr: fd00:10::/48\nvxlanMode: Always", None),
    (
        "IPPool",
        "p",
        "cidr: 10.244.0.0/16\nallowedUses: [Workload]\nnodeSelector: \"zone == 'a'\"",
        None,
    ),
    ("IPPool", "p", "cidr: 10.244.0.1/16", Some("spec.cidr")),
    ("IPPool", "p", "cidr: 10.244.0.0/33", Some("spec.cidr")),
    ("IPPool", "p", "cidr: not-a-cidr", Some("spec.cidr")),
    ("IPPool", "p", "cidr: 169.254.0.0/20", Some("spec.cidr")),
    (
        "IPPool",
        "p",
        "cidr: 10.244.0.0/16\nblockSize: 19",
        Some("spec.blockSize"),
    ),
    (
        "IPPool",
        "p",
        "cidr: 10.244.0.0/16\nblockSize: 33",
        Some("spec.blockSize"),
    ),
    (
        "IPPool",
        "p",
        "cidr: fd00::/48\nblockSize: 26",
        Some("spec.blockSize"),
    ),
    ("IPPool", "p", "cidr: 10.244.0.0/28", Some("spec.blockSize")),
    (
        "IPPool",
        "p",
        "cidr: 10.244.0.0/24\nblockSize: 22",
        Some("spec.blockSize"),
    ),
    (
        "IPPool",
        "p",
        "cidr: 10.244.0.0/16\nblockSize: x",
        Some("spec.blockSize"),
    ),
    (
        "IPPool",
        "p",
        "cidr: 10.244.0.0/16\nipipMode: Always\nvxlanMode: CrossSubnet",
        Some("spec.ipipMode"),
    ),
    (
        "IPPool",
        "p",
        "cidr: fd00::/48\nipipMode: Always",
        Some("spec.ipipMode"),
    ),
    (
        "IPPool",
        "p",
        "cidr: 10.244.0.0/16\nipipMode: Sometimes",
        Some("spec.ipipMode"),
    ),
    (
        "IPPool",
        "p",
        "cidr: 10.244.0.0/16\nnodeSelector: \"zone = 'a'\"",
        Some("spec.nodeSelector"),
    ),
    (
        "IPPool",
        "p",
        "cidr: 10.244.0.0/16\nallowedUses: [Workload, Workload]",
        Some("spec.allowedUses"),
    ),
    (
        "IPPool",
        "p",
        "cidr: 10.244.0.0/16\nallowedUses: [Workload, LoadBalancer]",
        Some("spec.allowedUses"),
    ),
    (
        "IPPool",
        "Bad_Name",
        "cidr: 10.244.0.0/16",
        Some("metadata.name"),
    ),
    // BGPConfiguration
    (
        "BGPConfiguration",
        "default",
        "asNumber: 64512\nnodeToNodeMeshEnabled: false\nlistenPort: 1179",
        None,
    ),
    (
        "BGPConfiguration",
        "default",
        "asNumber: \"1.10\"\nserviceClusterIPs: [{cidr: 10.96.0.0/12}]",
        None,
    ),
    (
        "BGPConfiguration",
        "default",
        "communities: [{name: c1, value: \"64512:100\"}]\nprefixAdvertisements: [{cidr: 10.0.0.0/8, communities: [c1, \"1:2:3\"]}]",
        None,
    ),
    (
        "BGPConfiguration",
        "node.n1",
        "listenPort: 1179\nlogSeverityScreen: Debug",
        None,
    ),
    (
        "BGPConfiguration",
        "default",
        "asNumber: 0",
        Some("spec.asNumber"),
    ),
    (
        "BGPConfiguration",
        "default",
        "asNumber: 4294967296",
        Some("spec.asNumber"),
    ),
    (
        "BGPConfiguration",
        "default",
        "asNumber: \"65536.1\"",
        Some("spec.asNumber"),
    ),
    (
        "BGPConfiguration",
        "default",
        "listenPort: 0",
        Some("spec.listenPort"),
    ),
    (
        "BGPConfiguration",
        "default",
        "listenPort: 70000",
        Some("spec.listenPort"),
    ),
    (
        "BGPConfiguration",
        "default",
        "logSeverityScreen: Chatty",
        Some("spec.logSeverityScreen"),
    ),
    (
        "BGPConfiguration",
        "default",
        "serviceClusterIPs: [{cidr: 10.96.0.1/12}]",
        Some("spec.serviceClusterIPs[0].cidr"),
    ),
    (
        "BGPConfiguration",
        "default",
        "communities: [{name: c1, value: \"70000:1\"}]",
        Some("spec.communities[0].value"),
    ),
    (
        "BGPConfiguration",
        "default",
        "prefixAdvertisements: [{cidr: 10.0.0.0/8, communities: [nope]}]",
        Some("spec.prefixAdvertisements[0].communities[0]"),
    ),
    (
        "BGPConfiguration",
        "default",
        "nodeMeshMaxRestartTime: soon",
        Some("spec.nodeMeshMaxRestartTime"),
    ),
    (
        "BGPConfiguration",
        "default",
        "nodeMeshPassword: {secretKeyRef: {name: \"\", key: k}}",
        Some("spec.nodeMeshPassword.secretKeyRef.name"),
    ),
    (
        "BGPConfiguration",
        "node.n1",
        "nodeToNodeMeshEnabled: false",
        Some("spec.nodeToNodeMeshEnabled"),
    ),
    (
        "BGPConfiguration",
        "node.n1",
        "asNumber: 65001",
        Some("spec.asNumber"),
    ),
    (
        "BGPConfiguration",
        "cluster",
        "asNumber: 65001",
        Some("metadata.name"),
    ),
    // BGPPeer
    ("BGPPeer", "tor", "peerIP: 192.0.2.1\nasNumber: 65000", None),
    (
        "BGPPeer",
        "tor",
        "node: n1\npeerIP: \"[fd00::1]:1179\"\nasNumber: \"1.10\"\nkeepaliveTime: 10s\nmaxRestartTime: 2m",
        None,
    ),
    (
        "BGPPeer",
        "rr",
        "nodeSelector: all()\npeerSelector: route-reflector == 'true'",
        None,
    ),
    (
        "BGPPeer",
        "tor",
        "peerIP: 192.0.2.1:179\nasNumber: 65000\nreachableBy: 10.0.0.1\nttlSecurity: 1\npassword: {secretKeyRef: {name: s, key: k}}",
        None,
    ),
    (
        "BGPPeer",
        "tor",
        "node: n1\nnodeSelector: all()\npeerIP: 192.0.2.1\nasNumber: 65000",
        Some("spec.nodeSelector"),
    ),
    (
        "BGPPeer",
        "tor",
        "peerIP: 192.0.2.1\nasNumber: 65000\npeerSelector: has(rr)",
        Some("spec.peerSelector"),
    ),
    ("BGPPeer", "tor", "node: n1", Some("spec.peerIP")),
    (
        "BGPPeer",
        "tor",
        "peerIP: 192.0.2.300\nasNumber: 65000",
        Some("spec.peerIP"),
    ),
    (
        "BGPPeer",
        "tor",
        "peerIP: \"fd00::1:179x\"\nasNumber: 65000",
        Some("spec.peerIP"),
    ),
    ("BGPPeer", "tor", "peerIP: 192.0.2.1", Some("spec.asNumber")),
    (
        "BGPPeer",
        "tor",
        "peerIP: 192.0.2.1\nasNumber: 23456",
        Some("spec.asNumber"),
    ),
    (
        "BGPPeer",
        "tor",
        "peerIP: 192.0.2.1\nasNumber: 65000\nlocalASNumber: 0",
        Some("spec.localASNumber"),
    ),
    (
        "BGPPeer",
        "rr",
        "peerSelector: \"has(rr\"",
        Some("spec.peerSelector"),
    ),
    (
        "BGPPeer",
        "rr",
        "nodeSelector: \"x in ('a')\"\npeerSelector: has(rr)",
        Some("spec.nodeSelector"),
    ),
    (
        "BGPPeer",
        "tor",
        "peerIP: 192.0.2.1\nasNumber: 65000\nkeepaliveTime: 10",
        Some("spec.keepaliveTime"),
    ),
    (
        "BGPPeer",
        "tor",
        "peerIP: 192.0.2.1\nasNumber: 65000\nreachableBy: fd00::1",
        Some("spec.reachableBy"),
    ),
    (
        "BGPPeer",
        "tor",
        "peerIP: 192.0.2.1\nasNumber: 65000\nsourceAddress: Elsewhere",
        Some("spec.sourceAddress"),
    ),
    (
        "BGPPeer",
        "tor",
        "peerIP: 192.0.2.1\nasNumber: 65000\npassword: {}",
        Some("spec.password"),
    ),
    // TortieNode
    (
        "TortieNode",
        "n1",
        "bgp: {ipv4Address: 10.0.0.5/24, asNumber: 65001, ipv4IPIPTunnelAddr: 10.244.0.1, routeReflectorClusterID: 224.0.0.1}\nipv4VXLANTunnelAddr: 10.244.0.2\nvxlanTunnelMACAddr: \"66:a1:b2:c3:d4:e5\"",
        None,
    ),
    (
        "TortieNode",
        "n1",
        "bgp: {ipv4Address: fd00::5/64}",
        Some("spec.bgp.ipv4Address"),
    ),
    (
        "TortieNode",
        "n1",
        "bgp: {ipv4Address: 10.0.0.5/40}",
        Some("spec.bgp.ipv4Address"),
    ),
    (
        "TortieNode",
        "n1",
        "bgp: {routeReflectorClusterID: rr-1}",
        Some("spec.bgp.routeReflectorClusterID"),
    ),
    (
        "TortieNode",
        "n1",
        "vxlanTunnelMACAddr: 66:a1:b2",
        Some("spec.vxlanTunnelMACAddr"),
    ),
    (
        "TortieNode",
        "n1",
        "bgp: {asNumber: 65535}",
        Some("spec.bgp.asNumber"),
    ),
    // IPAM objects
    (
        "IPAMBlock",
        "10-0-0-0-30",
        "cidr: 10.0.0.0/30\naffinity: host:n1\nallocations: [0, null, null, null]\nunallocated: [1, 2, 3]\nattributes: [{handle_id: h}]",
        None,
    ),
    (
        "IPAMBlock",
        "10-0-0-0-30",
        "cidr: 10.0.0.0/30\nallocations: [null, null]\nunallocated: [0, 1]",
        Some("spec.allocations"),
    ),
    (
        "IPAMBlock",
        "10-0-0-0-30",
        "cidr: 10.0.0.0/30\nallocations: [3, null, null, null]\nunallocated: [1, 2, 3]",
        Some("spec.allocations[0]"),
    ),
    (
        "IPAMBlock",
        "10-0-0-0-30",
        "cidr: 10.0.0.0/30\nallocations: [null, null, null, null]\nunallocated: [0, 0, 4]",
        Some("spec.unallocated[1]"),
    ),
    (
        "IPAMBlock",
        "10-0-0-0-30",
        "cidr: 10.0.0.0/30\naffinity: node1\nallocations: [null, null, null, null]",
        Some("spec.affinity"),
    ),
    (
        "BlockAffinity",
        "n1-10-0-0-0-26",
        "state: confirmed\nnode: n1\ncidr: 10.0.0.0/26",
        None,
    ),
    (
        "BlockAffinity",
        "n1-10-0-0-0-26",
        "state: gone\nnode: n1\ncidr: 10.0.0.0/26",
        Some("spec.state"),
    ),
    (
        "BlockAffinity",
        "n1-10-0-0-0-26",
        "node: \"\"\ncidr: 10.0.0.0/26",
        Some("spec.node"),
    ),
    (
        "IPAMHandle",
        "k8s-pod-network.abc",
        "handleID: k8s-pod-network.abc\nblock: {\"10.0.0.0/26\": 1}",
        None,
    ),
    (
        "IPAMHandle",
        "h",
        "handleID: h\nblock: {\"10.0.0.0\": 1}",
        Some("spec.block"),
    ),
    (
        "IPAMConfig",
        "default",
        "strictAffinity: true\nmaxBlocksPerHost: 4",
        None,
    ),
    (
        "IPAMConfig",
        "other",
        "strictAffinity: true",
        Some("metadata.name"),
    ),
];

#[test]
fn validation_table() {
    let mut failures = Vec::new();
    for (i, (kind, name, spec, want)) in CASES.iter().enumerate() {
        let text = doc(kind, name, spec);
        let got = from_calico_v3_yaml(&text);
        match (want, &got) {
            (None, Ok(objs)) if objs.len() == 1 => {}
            (Some(field), Err(e)) if e.mentions(field) && e.to_string().contains(field) => {}
            _ => failures.push(format!(
                "case {i} {kind} {spec:?}: want {want:?}, got {got:?}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn workload_endpoint_rules() {
    let base = "apiVersion: crd.tortie.dev/v1\nkind: WorkloadEndpoint\nmetadata:\n  name: n1-k8s-web-eth0\n  namespace: default\nspec:\n  node: n1\n  pod: web\n  containerID: abc\n  interfaceName: cali12345678901\n  ipNetworks: [10.244.0.5/32]\n  mac: \"ee:ee:ee:ee:ee:ee\"\n  ports: [{name: http, port: 80}, {name: dns, protocol: UDP, port: 53}]\n";
    assert!(
        from_calico_v3_yaml(base).is_ok(),
        "{:?}",
        from_calico_v3_yaml(base)
    );
    let bad = [
        (
            "interfaceName: cali12345678901",
            "interfaceName: cali123456789012",
            "spec.interfaceName",
        ),
        (
            "ipNetworks: [10.244.0.5/32]",
            "ipNetworks: [10.244.0.0/24]",
            "spec.ipNetworks[0]",
        ),
        ("mac: \"ee:ee:ee:ee:ee:ee\"", "mac: \"ee:ee\"", "spec.mac"),
        (
            "{name: dns, protocol: UDP, port: 53}",
            "{name: http, port: 8080}",
            "spec.ports[1].name",
        ),
        (
            "{name: dns, protocol: UDP, port: 53}",
            "{name: dns, protocol: ICMP, port: 53}",
            "spec.ports",
        ),
        ("  namespace: default\n", "", "metadata.namespace"),
    ];
    for (from, to, field) in bad {
        let text = base.replace(from, to);
        let e = from_calico_v3_yaml(&text).expect_err(&text);
        assert!(e.mentions(field), "{field}: {e}");
    }
}

fn pool(name: &str, cidr: &str) -> IpPool {
    IpPool::new(name, IpPoolSpec::new(cidr.parse().unwrap()))
}

#[test]
fn pools_must_not_overlap() {
    let existing = vec![pool("a", "10.0.0.0/16"), pool("b", "fd00::/48")];
    assert!(validate_pool_overlap(&pool("c", "10.1.0.0/16"), &existing).is_ok());
    assert!(validate_pool_overlap(&pool("c", "fd01::/48"), &existing).is_ok());
    // Replacing pool a by itself is not an overlap.
    assert!(validate_pool_overlap(&pool("a", "10.0.0.0/16"), &existing).is_ok());
    for cidr in ["10.0.128.0/17", "10.0.0.0/8", "10.0.0.0/16"] {
        let e = validate_pool_overlap(&pool("c", cidr), &existing).expect_err(cidr);
        assert!(e.mentions("spec.cidr"), "{e}");
        assert!(e.to_string().contains("IPPool a"), "{e}");
    }
    let e = validate_pool_overlap(&pool("c", "fd00:0:0:1::/64"), &existing).unwrap_err();
    assert!(e.to_string().contains("IPPool b"), "{e}");
}

#[test]
fn cidr_and_block_size_are_immutable() {
    let old = pool("a", "10.0.0.0/16");
    let mut same = old.clone();
    same.spec.nat_outgoing = true;
    same.spec.block_size = Some(26); // the default made explicit: no change
    assert!(validate_pool_update(&old, &same).is_ok());
    let mut moved = old.clone();
    moved.spec.cidr = "10.1.0.0/16".parse().unwrap();
    assert!(
        validate_pool_update(&old, &moved)
            .unwrap_err()
            .mentions("spec.cidr")
    );
    let mut resized = old.clone();
    resized.spec.block_size = Some(28);
    assert!(
        validate_pool_update(&old, &resized)
            .unwrap_err()
            .mentions("spec.blockSize")
    );
    // New-object checks still apply on update.
    let mut both = old.clone();
    both.spec.ipip_mode = tortie_crds::EncapMode::Always;
    both.spec.vxlan_mode = tortie_crds::EncapMode::Always;
    assert!(
        validate_pool_update(&old, &both)
            .unwrap_err()
            .mentions("spec.ipipMode")
    );
}

#[test]
fn errors_list_every_problem() {
    let text = doc(
        "IPPool",
        "p",
        "cidr: 10.0.0.1/16\nblockSize: 40\nipipMode: Always\nvxlanMode: Always",
    );
    let e = from_calico_v3_yaml(&text).unwrap_err();
    for field in ["spec.cidr", "spec.blockSize", "spec.ipipMode"] {
        assert!(e.mentions(field), "{field} missing from {e}");
    }
    assert!(e.to_string().starts_with("document 1 (IPPool p): "), "{e}");
    let objs = from_calico_v3_yaml(&doc("IPPool", "p", "cidr: 10.0.0.0/16")).unwrap();
    assert!(matches!(&objs[0], TortieObject::IpPool(p) if p.validate().is_ok()));
}
