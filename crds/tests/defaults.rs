//! Defaults table: what an operator gets for every field left out, as Calico documents it,
//! and the default IPv4 pool built from `CALICO_IPV4POOL_*`.

use std::collections::BTreeMap;
use std::time::Duration;

use tortie_crds::bgp::DEFAULT_MAX_RESTART_TIME;
use tortie_crds::{
    AllowedUse, AsNumber, BgpConfigurationSpec, BgpPeerSpec, BindMode, EncapMode, IpPoolSpec,
    IpamConfigSpec, NextHopMode, SourceAddress, default_ipv4_pool,
};

#[test]
fn ippool_defaults() {
    let v4: IpPoolSpec = serde_yaml::from_str("cidr: 10.244.0.0/16").unwrap();
    assert_eq!(v4.block_size, None);
    assert_eq!(v4.block_size(), 26);
    assert_eq!(v4.ipip_mode, EncapMode::Never);
    assert_eq!(v4.vxlan_mode, EncapMode::Never);
    assert!(!v4.nat_outgoing && !v4.disabled && !v4.disable_bgp_export);
    assert_eq!(v4.node_selector, "all()");
    assert_eq!(
        v4.allowed_uses,
        vec![AllowedUse::Workload, AllowedUse::Tunnel]
    );
    assert!(v4.allows(AllowedUse::Tunnel) && !v4.allows(AllowedUse::LoadBalancer));
    let d = v4.clone().with_defaults();
    assert_eq!(d.block_size, Some(26));
    assert_eq!(d.clone().with_defaults(), d, "with_defaults is idempotent");

    let v6: IpPoolSpec = serde_yaml::from_str("cidr: fd00:10::/48").unwrap();
    assert_eq!(v6.with_defaults().block_size, Some(122));

    // Empty values stand for the defaults too.
    let blank: IpPoolSpec =
        serde_yaml::from_str("cidr: 10.0.0.0/16\nnodeSelector: ''\nallowedUses: []").unwrap();
    let blank = blank.with_defaults();
    assert_eq!(blank.node_selector, "all()");
    assert_eq!(
        blank.allowed_uses,
        vec![AllowedUse::Workload, AllowedUse::Tunnel]
    );
    // An explicit value is kept.
    let explicit: IpPoolSpec = serde_yaml::from_str("cidr: 10.0.0.0/16\nblockSize: 28").unwrap();
    assert_eq!(explicit.with_defaults().block_size, Some(28));
}

#[test]
fn bgp_configuration_defaults() {
    let d = BgpConfigurationSpec::default().with_defaults();
    assert_eq!(d.node_to_node_mesh_enabled, Some(true));
    assert_eq!(d.as_number, Some(AsNumber(64512)));
    assert_eq!(d.listen_port, Some(179));
    assert_eq!(d.log_severity_screen.as_deref(), Some("Info"));
    assert_eq!(d.bind_mode, Some(BindMode::None));
    // Set values survive defaulting.
    let set: BgpConfigurationSpec =
        serde_yaml::from_str("nodeToNodeMeshEnabled: false\nasNumber: 65001").unwrap();
    let set = set.with_defaults();
    assert_eq!(set.node_to_node_mesh_enabled, Some(false));
    assert_eq!(set.as_number, Some(AsNumber(65001)));
}

#[test]
fn bgp_peer_defaults() {
    let p: BgpPeerSpec = serde_yaml::from_str("peerIP: 192.0.2.1\nasNumber: 65000").unwrap();
    assert_eq!(p.max_restart(), Ok(DEFAULT_MAX_RESTART_TIME));
    assert_eq!(DEFAULT_MAX_RESTART_TIME, Duration::from_secs(120));
    assert_eq!(p.source_address(), SourceAddress::UseNodeIP);
    assert_eq!(p.next_hop_mode(), NextHopMode::Auto);
    let q: BgpPeerSpec = serde_yaml::from_str(
        "peerIP: 192.0.2.1\nasNumber: 65000\nmaxRestartTime: 5m\nnextHopMode: Self",
    )
    .unwrap();
    assert_eq!(q.max_restart(), Ok(Duration::from_secs(300)));
    assert_eq!(q.next_hop_mode(), NextHopMode::SelfHop);
}

#[test]
fn ipam_config_defaults() {
    let c: IpamConfigSpec = serde_yaml::from_str("{}").unwrap();
    assert_eq!(c, IpamConfigSpec::default());
    assert!(!c.strict_affinity);
    assert_eq!(c.max_blocks_per_host, 0, "0 = no limit");
    assert!(c.auto_allocate_blocks);
}

#[test]
fn crd_schemas_carry_the_same_defaults() {
    let crds = tortie_crds::crdgen::render_all().unwrap();
    let text = |plural: &str| {
        crds.iter()
            .find(|(n, _)| n.starts_with(plural))
            .map(|(_, t)| t.clone())
            .unwrap()
    };
    let pools: serde_json::Value = serde_yaml::from_str(&text("ippools")).unwrap();
    let spec = &pools["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(spec["ipipMode"]["default"], "Never");
    assert_eq!(spec["vxlanMode"]["default"], "Never");
    assert_eq!(spec["nodeSelector"]["default"], "all()");
    assert_eq!(spec["natOutgoing"]["default"], false);
    assert_eq!(
        spec["allowedUses"]["default"],
        serde_json::json!(["Workload", "Tunnel"])
    );
    let ipam: serde_json::Value = serde_yaml::from_str(&text("ipamconfigs")).unwrap();
    let spec = &ipam["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(spec["autoAllocateBlocks"]["default"], true);
    assert_eq!(spec["maxBlocksPerHost"]["default"], 0);
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn default_pool_from_environment() {
    let p = default_ipv4_pool(&env(&[])).unwrap();
    assert_eq!(p.metadata.name.as_deref(), Some("default-ipv4-ippool"));
    assert_eq!(p.spec.cidr.to_string(), "192.168.0.0/16");
    assert_eq!(p.spec.block_size, Some(26));
    assert_eq!(p.spec.ipip_mode, EncapMode::Never);
    assert_eq!(p.spec.vxlan_mode, EncapMode::Never);
    assert!(p.spec.nat_outgoing, "the default pool masquerades");
    assert_eq!(p.spec.node_selector, "all()");

    let p = default_ipv4_pool(&env(&[
        ("CALICO_IPV4POOL_CIDR", "10.244.0.0/16"),
        ("CALICO_IPV4POOL_BLOCK_SIZE", "24"),
        ("CALICO_IPV4POOL_IPIP", "crosssubnet"),
        ("CALICO_IPV4POOL_VXLAN", "Never"),
        ("CALICO_IPV4POOL_NAT_OUTGOING", "false"),
        ("CALICO_IPV4POOL_NODE_SELECTOR", "zone == 'a'"),
    ]))
    .unwrap();
    assert_eq!(p.spec.cidr.to_string(), "10.244.0.0/16");
    assert_eq!(p.spec.block_size, Some(24));
    assert_eq!(p.spec.ipip_mode, EncapMode::CrossSubnet);
    assert!(!p.spec.nat_outgoing);
    assert_eq!(p.spec.node_selector, "zone == 'a'");

    let p = default_ipv4_pool(&env(&[
        ("CALICO_IPV4POOL_VXLAN", "Always"),
        ("CALICO_IPV4POOL_IPIP", "Off"),
    ]))
    .unwrap();
    assert_eq!(p.spec.vxlan_mode, EncapMode::Always);
    assert_eq!(p.spec.ipip_mode, EncapMode::Never);
}

#[test]
fn default_pool_errors_name_the_variable() {
    let cases = [
        (
            ("CALICO_IPV4POOL_CIDR", "fd00::/48"),
            "CALICO_IPV4POOL_CIDR",
        ),
        (
            ("CALICO_IPV4POOL_CIDR", "10.0.0.1/16"),
            "CALICO_IPV4POOL_CIDR",
        ),
        (
            ("CALICO_IPV4POOL_BLOCK_SIZE", "big"),
            "CALICO_IPV4POOL_BLOCK_SIZE",
        ),
        (
            ("CALICO_IPV4POOL_BLOCK_SIZE", "12"),
            "CALICO_IPV4POOL_BLOCK_SIZE",
        ),
        (
            ("CALICO_IPV4POOL_IPIP", "sometimes"),
            "CALICO_IPV4POOL_IPIP",
        ),
        (
            ("CALICO_IPV4POOL_NAT_OUTGOING", "maybe"),
            "CALICO_IPV4POOL_NAT_OUTGOING",
        ),
        (
            ("CALICO_IPV4POOL_NODE_SELECTOR", "zone = 'a'"),
            "CALICO_IPV4POOL_NODE_SELECTOR",
        ),
    ];
    for ((k, v), field) in cases {
        let e = default_ipv4_pool(&env(&[(k, v)])).expect_err(v);
        assert!(e.mentions(field), "{k}={v}: {e}");
    }
    let both = default_ipv4_pool(&env(&[
        ("CALICO_IPV4POOL_IPIP", "Always"),
        ("CALICO_IPV4POOL_VXLAN", "Always"),
    ]))
    .unwrap_err();
    assert!(both.mentions("CALICO_IPV4POOL_IPIP"), "{both}");
}

#[test]
fn default_ipv6_pool_only_when_asked() {
    use tortie_crds::default_ipv6_pool;
    assert!(default_ipv6_pool(&env(&[])).is_none());
    let p = default_ipv6_pool(&env(&[("CALICO_IPV6POOL_CIDR", "fd00:10::/48")]))
        .unwrap()
        .unwrap();
    assert_eq!(p.metadata.name.as_deref(), Some("default-ipv6-ippool"));
    assert_eq!(p.spec.block_size, Some(122));
    assert!(!p.spec.nat_outgoing);
    assert_eq!(p.spec.ipip_mode, EncapMode::Never);
    let p = default_ipv6_pool(&env(&[
        ("CALICO_IPV6POOL_CIDR", "fd00:10::/48"),
        ("CALICO_IPV6POOL_VXLAN", "Always"),
        ("CALICO_IPV6POOL_BLOCK_SIZE", "120"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(p.spec.vxlan_mode, EncapMode::Always);
    assert_eq!(p.spec.block_size, Some(120));
    for (k, v) in [
        ("CALICO_IPV6POOL_CIDR", "10.0.0.0/16"),
        ("CALICO_IPV6POOL_BLOCK_SIZE", "26"),
    ] {
        let mut e = env(&[("CALICO_IPV6POOL_CIDR", "fd00:10::/48")]);
        e.insert(k.to_string(), v.to_string());
        let err = default_ipv6_pool(&e).unwrap().unwrap_err();
        assert!(err.mentions(k), "{k}={v}: {err}");
    }
}
