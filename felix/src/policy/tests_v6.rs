//! Unit tests of the per-family compilation (IPv6 → ip6tables chains, `cali60*` sets).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::model::*;
use super::ruleset::*;

fn ep(pod: &str, iface: Option<&str>, ips: &[&str], role: &str) -> Endpoint {
    Endpoint {
        namespace: "prod".into(),
        pod: pod.into(),
        iface: iface.map(Into::into),
        labels: [("role".to_string(), role.to_string())].into(),
        ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
        named_ports: vec![NamedPort {
            name: "http".into(),
            protocol: "TCP".into(),
            port: 8080,
        }],
    }
}

fn np(yaml: &str) -> NetworkPolicy {
    serde_yaml::from_str(yaml).unwrap()
}

/// Dual-stack pods; web allows clients on 80, a v4 block on 443, a v6 block (minus an
/// except) on 8443, a v4-only block list on 9000, and the named port from anywhere.
fn input() -> PolicyInput {
    PolicyInput {
        endpoints: vec![
            ep("web", Some("caliweb"), &["10.0.0.2", "fd00:65::2"], "web"),
            ep("client", None, &["10.0.1.3", "fd00:65:1::3"], "client"),
            ep("v4only", None, &["10.0.1.4"], "client"),
        ],
        namespaces: BTreeMap::new(),
        policies: vec![np(r#"
metadata: {name: web-in, namespace: prod}
spec:
  podSelector: {matchLabels: {role: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
    ports: [{port: 80}]
  - from: [{ipBlock: {cidr: 192.168.0.0/16}}]
    ports: [{port: 443}]
  - from: [{ipBlock: {cidr: "fd00:99::/48", except: ["fd00:99:1::/64", "192.168.9.0/24"]}}]
    ports: [{port: 8443}]
  - from: [{ipBlock: {cidr: 172.16.0.0/12}}, {ipBlock: {cidr: 10.9.0.0/16}}]
    ports: [{port: 9000}]
  - ports: [{port: http}]
"#)],
        pools: vec![
            Pool {
                cidr: "10.0.0.0/16".parse().unwrap(),
                nat_outgoing: true,
            },
            Pool {
                cidr: "fd00:65::/48".parse().unwrap(),
                nat_outgoing: true,
            },
        ],
        node_ips: vec!["192.168.1.1".parse().unwrap()],
        config: DataplaneConfig {
            ipip: true,
            ..DataplaneConfig::default()
        },
    }
}

fn rules<'a>(rs: &'a Ruleset, chain: &str) -> Vec<&'a str> {
    rs.tables[&Table::Filter].chains[chain]
        .iter()
        .map(|r| r.0.as_str())
        .collect()
}

fn set_of<'a>(rs: &'a Ruleset, rule: &str) -> (&'a str, &'a IpSetSpec) {
    let name = rule
        .split_whitespace()
        .skip_while(|w| *w != "--match-set")
        .nth(1)
        .unwrap();
    let (k, v) = rs.ipsets.get_key_value(name).unwrap();
    (k.as_str(), v)
}

#[test]
fn v6_chains_hold_v6_peers_only_and_use_cali60_sets() {
    let inp = input();
    let v4 = build_family(&inp, Family::V4);
    let v6 = build_family(&inp, Family::V6);
    assert_eq!((v4.family, v6.family), (Family::V4, Family::V6));
    assert_eq!(v4, build(&inp), "build is the IPv4 family");
    assert!(v6.warnings.is_empty(), "{:?}", v6.warnings);
    // Same chains in both families (ip6tables mirrors iptables).
    for t in Table::ALL {
        let a: Vec<_> = v4.tables[&t].chains.keys().collect();
        let b: Vec<_> = v6.tables[&t].chains.keys().collect();
        assert_eq!(a, b, "{t:?}");
    }
    let chain = super::names::policy_in_chain("prod", "web-in");
    let r4 = rules(&v4, &chain);
    let r6 = rules(&v6, &chain);

    // Selector peer: same rule, family's own set with that family's addresses.
    let sel4 = r4.iter().find(|r| r.contains("--dport 80 ")).unwrap();
    let sel6 = r6.iter().find(|r| r.contains("--dport 80 ")).unwrap();
    let (n4, s4) = set_of(&v4, sel4);
    let (n6, s6) = set_of(&v6, sel6);
    assert!(
        n4.starts_with("cali40s") && n6.starts_with("cali60s"),
        "{n4} {n6}"
    );
    assert_eq!(
        s4.members,
        ["10.0.1.3", "10.0.1.4"].map(String::from).into()
    );
    assert_eq!(s6.members, ["fd00:65:1::3"].map(String::from).into());

    // Rules whose blocks are all of the other family are left out.
    assert!(r4.iter().any(|r| r.contains("-s 192.168.0.0/16")));
    assert!(!r6.iter().any(|r| r.contains("--dport 443")), "{r6:?}");
    assert!(r4.iter().any(|r| r.contains("--dport 9000")));
    assert!(!r6.iter().any(|r| r.contains("--dport 9000")), "{r6:?}");
    assert!(!r4.iter().any(|r| r.contains("--dport 8443")), "{r4:?}");
    let b6 = r6.iter().find(|r| r.contains("--dport 8443")).unwrap();
    assert!(
        b6.starts_with("-s fd00:99::/48 -m set ! --match-set cali60e"),
        "{b6}"
    );
    let (_, ex) = set_of(&v6, b6);
    assert_eq!(ex.kind, IpSetKind::HashNet);
    assert_eq!(ex.members, ["fd00:99:1::/64"].map(String::from).into());

    // Named port resolves to the pod's v6 address.
    let npr = r6.iter().find(|r| r.contains("dst,dst")).unwrap();
    let (nn, ns) = set_of(&v6, npr);
    assert!(nn.starts_with("cali60n"));
    assert_eq!(ns.members, ["fd00:65::2,tcp:8080"].map(String::from).into());

    // No ipset of the other family leaks in.
    assert!(
        v6.ipsets.keys().all(|k| k.starts_with("cali60")),
        "{:?}",
        v6.ipsets.keys()
    );
    assert!(v4.ipsets.keys().all(|k| k.starts_with("cali40")));

    // NAT outgoing and anti-spoofing per family; encap INPUT filtering is IPv4 only.
    assert_eq!(
        v6.ipsets[MASQ_POOLS_SET_V6].members,
        ["fd00:65::/48"].map(String::from).into()
    );
    assert_eq!(
        v4.ipsets[MASQ_POOLS_SET].members,
        ["10.0.0.0/16"].map(String::from).into()
    );
    let nat6 = &v6.tables[&Table::Nat].chains[NAT_OUTGOING];
    assert!(nat6[0].0.contains("--match-set cali60masq-ipam-pools src"));
    assert_eq!(v6.tables[&Table::Raw].chains[RAW_PREROUTING][0].0, RPF_DROP);
    assert!(
        rules(&v4, INPUT_CHAIN)
            .iter()
            .any(|r| r.starts_with("-p 4 -m set"))
    );
    assert!(
        !rules(&v6, INPUT_CHAIN)
            .iter()
            .any(|r| r.contains("--match-set"))
    );
    assert!(!v6.ipsets.contains_key(ALL_HOSTS_SET));
}

#[test]
fn icmp_names_per_family() {
    assert_eq!(Family::V4.icmp(), "icmp");
    assert_eq!(Family::V6.icmp(), "ipv6-icmp");
    assert!(Family::V6.has(&"::1".parse().unwrap()));
    assert!(!Family::V6.has_net(&"10.0.0.0/8".parse().unwrap()));
}
