//! Unit tests of the compiler on hand-built inputs (no kernel).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::model::*;
use super::names;
use super::ruleset::*;

fn ep(ns: &str, pod: &str, iface: Option<&str>, ip: &str, labels: &[(&str, &str)]) -> Endpoint {
    Endpoint {
        namespace: ns.into(),
        pod: pod.into(),
        iface: iface.map(Into::into),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ips: vec![ip.parse().unwrap()],
        named_ports: vec![],
    }
}

fn np(yaml: &str) -> NetworkPolicy {
    serde_yaml::from_str(yaml).unwrap()
}

fn input(policies: Vec<NetworkPolicy>) -> PolicyInput {
    let mut namespaces = BTreeMap::new();
    namespaces.insert(
        "prod".to_string(),
        [("env".to_string(), "prod".to_string())].into(),
    );
    namespaces.insert("dev".to_string(), BTreeMap::new());
    let mut db = ep("prod", "db", Some("calidb"), "10.0.0.1", &[("role", "db")]);
    db.named_ports.push(NamedPort {
        name: "pg".into(),
        protocol: "TCP".into(),
        port: 5432,
    });
    let mut db2 = ep("prod", "db2", None, "10.0.1.1", &[("role", "db")]);
    db2.named_ports.push(NamedPort {
        name: "pg".into(),
        protocol: "TCP".into(),
        port: 6432,
    });
    PolicyInput {
        endpoints: vec![
            db,
            db2,
            ep(
                "prod",
                "web",
                Some("caliweb"),
                "10.0.0.2",
                &[("role", "web")],
            ),
            ep(
                "dev",
                "web",
                Some("calidevweb"),
                "10.0.0.3",
                &[("role", "web")],
            ),
        ],
        namespaces,
        policies,
        pools: vec![Pool {
            cidr: "10.0.0.0/16".parse().unwrap(),
            nat_outgoing: true,
        }],
        node_ips: vec!["192.168.1.1".parse().unwrap()],
        config: DataplaneConfig::default(),
    }
}

fn chain<'a>(rs: &'a Ruleset, name: &str) -> Vec<&'a str> {
    rs.tables[&Table::Filter].chains[name]
        .iter()
        .map(|r| r.0.as_str())
        .collect()
}

fn set_with<'a>(rs: &'a Ruleset, rule: &str) -> &'a IpSetSpec {
    let name = rule
        .split_whitespace()
        .skip_while(|w| *w != "--match-set")
        .nth(1)
        .unwrap();
    &rs.ipsets[name]
}

const DB_INGRESS: &str = r#"
metadata: {name: db-in, namespace: prod}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - from:
    - podSelector: {matchLabels: {role: web}}
    ports: [{port: 5432}]
"#;

#[test]
fn unselected_pods_are_open_and_selected_end_in_drop() {
    let rs = build(&input(vec![np(DB_INGRESS)]));
    let tw_db = chain(&rs, "cali-tw-calidb");
    assert_eq!(tw_db.last(), Some(&"-j DROP"));
    assert!(tw_db.contains(&format!("-j {}", names::policy_in_chain("prod", "db-in")).as_str()));
    // Egress of db and ingress of web are not selected: open.
    for c in ["cali-fw-calidb", "cali-tw-caliweb", "cali-tw-calidevweb"] {
        assert_eq!(
            chain(&rs, c).last(),
            Some(&"-j MARK --set-xmark 0x10000/0x10000"),
            "{c}"
        );
    }
    assert!(chain(&rs, "cali-fw-calidb").contains(&"-p 4 -j DROP"));
    assert!(!chain(&rs, "cali-tw-calidb").contains(&"-p 4 -j DROP"));
    // Remote endpoints have no chains.
    assert!(
        !rs.tables[&Table::Filter]
            .chains
            .keys()
            .any(|c| c.contains("db2"))
    );
    assert!(rs.warnings.is_empty());
}

#[test]
fn pod_selector_peer_is_same_namespace_only_and_port_defaults_to_tcp() {
    let rs = build(&input(vec![np(DB_INGRESS)]));
    let pi = chain(&rs, &names::policy_in_chain("prod", "db-in"));
    assert_eq!(pi.len(), 2);
    assert!(
        pi[0].ends_with("src -p tcp -m tcp --dport 5432 -j MARK --set-xmark 0x10000/0x10000"),
        "{}",
        pi[0]
    );
    assert_eq!(pi[1], "-m mark --mark 0x10000/0x10000 -j RETURN");
    let members: Vec<&str> = set_with(&rs, pi[0])
        .members
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(members, vec!["10.0.0.2"], "dev/web must not be in the set");
}

#[test]
fn policy_types_default() {
    let p = np(r#"
metadata: {name: both, namespace: prod}
spec:
  podSelector: {}
  egress: [{ports: [{port: 53, protocol: UDP}]}]
"#);
    let rs = build(&input(vec![p]));
    let pi = names::policy_in_chain("prod", "both");
    let po = names::policy_out_chain("prod", "both");
    assert!(
        chain(&rs, &pi).is_empty(),
        "ingress implied with no rules: deny all"
    );
    assert_eq!(
        chain(&rs, &po),
        vec![
            "-p udp -m udp --dport 53 -j MARK --set-xmark 0x10000/0x10000",
            "-m mark --mark 0x10000/0x10000 -j RETURN"
        ]
    );
    assert!(chain(&rs, "cali-fw-caliweb").contains(&format!("-j {po}").as_str()));
    // Only egress declared: no ingress chain.
    let p = np(r#"
metadata: {name: eg, namespace: prod}
spec: {podSelector: {}, policyTypes: [Egress]}
"#);
    let rs = build(&input(vec![p]));
    assert!(
        !rs.tables[&Table::Filter]
            .chains
            .contains_key(&names::policy_in_chain("prod", "eg"))
    );
    assert_eq!(chain(&rs, "cali-fw-caliweb").last(), Some(&"-j DROP"));
    assert_eq!(
        chain(&rs, "cali-tw-caliweb").last(),
        Some(&"-j MARK --set-xmark 0x10000/0x10000")
    );
}

#[test]
fn namespace_selector_with_and_without_pod_selector() {
    let p = np(r#"
metadata: {name: x, namespace: dev}
spec:
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {env: prod}}
  - from:
    - namespaceSelector: {matchLabels: {env: prod}}
      podSelector: {matchLabels: {role: db}}
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: dev}}
"#);
    let rs = build(&input(vec![p]));
    let pi = chain(&rs, &names::policy_in_chain("dev", "x"));
    assert_eq!(pi.len(), 6);
    let m = |i: usize| -> Vec<&str> {
        set_with(&rs, pi[i])
            .members
            .iter()
            .map(String::as_str)
            .collect()
    };
    assert_eq!(m(0), vec!["10.0.0.1", "10.0.0.2", "10.0.1.1"]);
    assert_eq!(m(2), vec!["10.0.0.1", "10.0.1.1"]);
    assert_eq!(m(4), vec!["10.0.0.3"]);
}

#[test]
fn ip_block_except_end_port_and_named_ports() {
    let p = np(r#"
metadata: {name: x, namespace: prod}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{ipBlock: {cidr: 172.17.0.5/16, except: [172.17.1.0/24]}}, {ipBlock: {cidr: "fd00::/8"}}]
    ports: [{port: pg}, {port: 8000, endPort: 8080, protocol: TCP}]
  egress:
  - to: [{podSelector: {matchLabels: {role: db}}}]
    ports: [{port: pg}]
"#);
    let rs = build(&input(vec![p]));
    let pi = chain(&rs, &names::policy_in_chain("prod", "x"));
    // One v4 peer × two ports + return; the v6 block matches nothing here.
    assert_eq!(pi.len(), 3, "{pi:#?}");
    assert!(
        pi[0].starts_with("-s 172.17.0.0/16 -m set ! --match-set cali40e"),
        "{}",
        pi[0]
    );
    assert!(
        pi[0].contains("-p tcp -m set --match-set cali40n"),
        "{}",
        pi[0]
    );
    assert!(pi[1].contains("-p tcp -m tcp --dport 8000:8080"));
    let except = &rs.ipsets[pi[0].split_whitespace().nth(6).unwrap()];
    assert_eq!(except.kind, IpSetKind::HashNet);
    assert!(except.members.contains("172.17.1.0/24"));
    // Ingress named port: resolved on the selected pods (db, db2).
    let np_in = pi[0]
        .split_whitespace()
        .skip_while(|w| *w != "-p")
        .nth(5)
        .unwrap();
    let got: Vec<&str> = rs.ipsets[np_in]
        .members
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(got, vec!["10.0.0.1,tcp:5432", "10.0.1.1,tcp:6432"]);
    assert_eq!(rs.ipsets[np_in].kind, IpSetKind::HashIpPort);
    let po = chain(&rs, &names::policy_out_chain("prod", "x"));
    assert!(po[0].contains("dst,dst"));
}

#[test]
fn invalid_input_fails_closed_with_a_warning() {
    let p = np(r#"
metadata: {name: bad, namespace: prod}
spec:
  podSelector: {}
  ingress:
  - from: [{ipBlock: {cidr: not-a-cidr}}]
  - ports: [{port: 70000}]
  - from: [{podSelector: {matchExpressions: [{key: a, operator: Like, values: [b]}]}}]
"#);
    let rs = build(&input(vec![p]));
    let pi = chain(&rs, &names::policy_in_chain("prod", "bad"));
    // The selector rule resolves to an empty set; nothing matches everything.
    assert!(
        pi.iter()
            .all(|r| r.contains("--match-set") || r.contains("-j RETURN")),
        "{pi:#?}"
    );
    let empty = set_with(&rs, pi[0]);
    assert!(empty.members.is_empty());
    assert_eq!(rs.warnings.len(), 3, "{:?}", rs.warnings);
    assert!(rs.warnings[0].to_string().contains("prod/bad"));
}

#[test]
fn hooks_raw_and_nat() {
    let rs = build(&input(vec![]));
    let f = &rs.tables[&Table::Filter];
    assert_eq!(
        f.hooks["FORWARD"].insert,
        vec![Rule::new("-j cali-FORWARD")]
    );
    assert_eq!(rs.tables[&Table::Nat].hooks["POSTROUTING"].append.len(), 1);
    assert_eq!(
        rs.tables[&Table::Raw].chains[RAW_PREROUTING],
        vec![Rule::new(RPF_DROP)]
    );
    let nat = &rs.tables[&Table::Nat].chains[NAT_OUTGOING];
    assert!(nat[0].0.contains("MASQUERADE --random-fully"));
    assert!(rs.ipsets[MASQ_POOLS_SET].members.contains("10.0.0.0/16"));
    // No natOutgoing pool: no MASQUERADE rule.
    let mut i = input(vec![]);
    i.pools[0].nat_outgoing = false;
    i.config.ipip = true;
    let rs = build(&i);
    assert!(rs.tables[&Table::Nat].chains[NAT_OUTGOING].is_empty());
    let inp = chain(&rs, INPUT_CHAIN);
    assert!(inp[0].contains(ALL_HOSTS_SET) && inp[1] == "-p 4 -j DROP");
    assert!(rs.ipsets[ALL_HOSTS_SET].members.contains("192.168.1.1"));
}

/// Follow the dispatch tree for `iface` the way the kernel would; returns the target
/// endpoint chain and the number of rules traversed.
fn walk(rs: &Ruleset, start: &str, iface: &str) -> (String, usize) {
    let chains = &rs.tables[&Table::Filter].chains;
    let mut cur = start.to_string();
    let mut depth = 0;
    'outer: loop {
        for r in &chains[&cur] {
            depth += 1;
            let w: Vec<&str> = r.0.split_whitespace().collect();
            if w == ["-j", "DROP"] {
                return ("DROP".into(), depth);
            }
            let pat = w[1];
            let hit = match pat.strip_suffix('+') {
                Some(p) => iface.starts_with(p),
                None => iface == pat,
            };
            if hit {
                let target = w[3].to_string();
                if target.starts_with("cali-fw-") || target.starts_with("cali-tw-") {
                    return (target, depth);
                }
                cur = target;
                continue 'outer;
            }
        }
        panic!("fell off {cur}");
    }
}

#[test]
fn dispatch_tree_reaches_every_endpoint_and_drops_unknown() {
    let mut i = input(vec![]);
    i.endpoints = (0..1000)
        .map(|n| {
            let iface = format!("cali{}", &names::hash_id(&[&n.to_string()], 11));
            ep(
                "prod",
                &format!("p{n}"),
                Some(&iface),
                &format!("10.1.{}.{}", n / 250, n % 250),
                &[],
            )
        })
        .collect();
    let rs = build(&i);
    let mut max = 0;
    for e in &i.endpoints {
        let iface = e.iface.as_deref().unwrap();
        let (t, d) = walk(&rs, FROM_DISPATCH, iface);
        assert_eq!(t, names::from_wl_chain(iface));
        let (t, _) = walk(&rs, TO_DISPATCH, iface);
        assert_eq!(t, names::to_wl_chain(iface));
        max = max.max(d);
    }
    assert!(max < 120, "dispatch depth {max}");
    assert_eq!(walk(&rs, FROM_DISPATCH, "caliunknown!!").0, "DROP");
    for name in rs.tables[&Table::Filter].chains.keys() {
        assert!(name.len() <= names::MAX_CHAIN, "{name}");
    }
    for name in rs.ipsets.keys() {
        assert!(name.len() <= names::MAX_IPSET, "{name}");
    }
}

#[test]
fn build_is_deterministic() {
    let a = build(&input(vec![np(DB_INGRESS)]));
    let b = build(&input(vec![np(DB_INGRESS)]));
    assert_eq!(a, b);
}
