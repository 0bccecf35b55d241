//! NetworkPolicy case table on a real node: iptables programmed by felix in a network
//! namespace, pods plumbed by the cni crate, real TCP/UDP connections. Allowed probes
//! must connect; denied ones must time out, each paired with an allowed probe to the same
//! listener in the same step. Needs root (panics otherwise).

mod policy_support;

use policy_support::{PolicyLab, check, np, tcp, udp};

const NAMESPACES: &[(&str, &[(&str, &str)])] = &[
    ("prod", &[("env", "prod"), ("project", "myproject")]),
    ("dev", &[("env", "dev")]),
    ("other", &[]),
];

fn lab() -> PolicyLab {
    testlab::require_root();
    PolicyLab::new(
        "polcase",
        NAMESPACES,
        &[
            ("prod/web", 2, &[("role", "frontend")]),
            ("prod/db", 3, &[("role", "db")]),
            ("dev/client", 4, &[("role", "client")]),
            ("other/x", 5, &[("role", "frontend")]),
        ],
        &[("out1", 2), ("out2", 3)],
        false,
    )
    .expect("lab")
}

#[test]
fn network_policy_case_table() {
    let mut lab = lab();
    let mut failures = Vec::new();
    let started = std::time::Instant::now();

    // 0. No policy: everything open.
    lab.set_policies(vec![]).expect("program");
    failures.extend(check(
        &lab,
        "open",
        &[
            tcp("dev/client", "prod/web", 80, true),
            tcp("other/x", "prod/db", 6379, true),
            udp("prod/db", "dev/client", 53, true),
            tcp("out1", "prod/web", 80, true),
            tcp("prod/web", "out2", 80, true),
        ],
    ));

    // 1. Deny all ingress in prod; the node still reaches its pods (probes).
    lab.set_policies(vec![np(r#"
metadata: {name: default-deny-ingress, namespace: prod}
spec: {podSelector: {}, policyTypes: [Ingress]}
"#)])
        .expect("program");
    failures.extend(check(
        &lab,
        "deny-all-ingress",
        &[
            tcp("dev/client", "prod/web", 80, false),
            tcp("prod/db", "prod/web", 80, false),
            tcp("out1", "prod/web", 80, false),
            tcp("node", "prod/web", 80, true),
            tcp("prod/web", "dev/client", 80, true),
            tcp("other/x", "dev/client", 80, true),
        ],
    ));

    // 2. Allow only the same namespace.
    lab.set_policies(vec![np(r#"
metadata: {name: allow-same-namespace, namespace: prod}
spec:
  podSelector: {}
  ingress: [{from: [{podSelector: {}}]}]
"#)])
        .expect("program");
    failures.extend(check(
        &lab,
        "same-namespace",
        &[
            tcp("prod/db", "prod/web", 80, true),
            tcp("dev/client", "prod/web", 80, false),
            tcp("other/x", "prod/web", 80, false),
            udp("prod/web", "prod/db", 53, true),
            udp("dev/client", "prod/db", 53, false),
        ],
    ));

    // 3. Allow from namespaces by label.
    lab.set_policies(vec![np(r#"
metadata: {name: allow-from-dev, namespace: prod}
spec:
  podSelector: {matchLabels: {role: frontend}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {env: dev}}}]}]
"#)])
        .expect("program");
    failures.extend(check(
        &lab,
        "namespace-by-label",
        &[
            tcp("dev/client", "prod/web", 80, true),
            tcp("other/x", "prod/web", 80, false),
            tcp("prod/db", "prod/web", 80, false),
            tcp("other/x", "prod/db", 80, true), // db not selected
        ],
    ));

    // 4. ipBlock with except.
    lab.set_policies(vec![np(r#"
metadata: {name: ipblock, namespace: prod}
spec:
  podSelector: {matchLabels: {role: frontend}}
  ingress: [{from: [{ipBlock: {cidr: 10.99.0.0/24, except: [10.99.0.3/32]}}]}]
"#)])
        .expect("program");
    failures.extend(check(
        &lab,
        "ipblock-except",
        &[
            tcp("out1", "prod/web", 80, true),
            tcp("out2", "prod/web", 80, false),
            tcp("dev/client", "prod/web", 80, false),
        ],
    ));

    // 5. Egress to one port only.
    lab.set_policies(vec![np(r#"
metadata: {name: egress-8080, namespace: dev}
spec:
  podSelector: {matchLabels: {role: client}}
  policyTypes: [Egress]
  egress: [{ports: [{port: 8080}]}]
"#)])
        .expect("program");
    failures.extend(check(
        &lab,
        "egress-port-only",
        &[
            tcp("dev/client", "prod/web", 8080, true),
            tcp("dev/client", "prod/web", 80, false),
            tcp("other/x", "prod/web", 80, true),
            tcp("dev/client", "out1", 80, false),
            tcp("prod/db", "out1", 80, true),
        ],
    ));

    // 6. Default deny egress except DNS.
    lab.set_policies(vec![np(r#"
metadata: {name: deny-egress-but-dns, namespace: dev}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]}]
"#)])
        .expect("program");
    failures.extend(check(
        &lab,
        "deny-egress-but-dns",
        &[
            udp("dev/client", "prod/db", 53, true),
            udp("dev/client", "out1", 53, true),
            tcp("dev/client", "prod/db", 80, false),
            tcp("prod/web", "prod/db", 80, true),
            // A pod always reaches its own node, whatever its egress policy.
            tcp("dev/client", "node", 80, true),
        ],
    ));

    // 7. The Kubernetes documentation's "test-network-policy", addresses adapted to the
    //    lab: ipBlock 10.99.0.0/24 except 10.99.0.3, namespaces labelled
    //    project=myproject, pods role=frontend, TCP 6379 in; egress to 10.99.0.0/24:5978.
    lab.set_policies(vec![np(r#"
metadata: {name: test-network-policy, namespace: prod}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - ipBlock: {cidr: 10.99.0.0/24, except: [10.99.0.3/32]}
    - namespaceSelector: {matchLabels: {project: myproject}}
    - podSelector: {matchLabels: {role: frontend}}
    ports: [{protocol: TCP, port: 6379}]
  egress:
  - to: [{ipBlock: {cidr: 10.99.0.0/24}}]
    ports: [{protocol: TCP, port: 5978}]
"#)])
        .expect("program");
    failures.extend(check(
        &lab,
        "k8s-docs-example",
        &[
            tcp("prod/web", "prod/db", 6379, true),
            tcp("out1", "prod/db", 6379, true),
            tcp("out2", "prod/db", 6379, false),
            tcp("other/x", "prod/db", 6379, false), // frontend, but not in prod
            tcp("dev/client", "prod/db", 6379, false),
            tcp("prod/web", "prod/db", 80, false),
            tcp("node", "prod/db", 80, true),
            tcp("prod/db", "out1", 5978, true),
            tcp("prod/db", "out1", 80, false),
            tcp("prod/web", "out1", 80, true),
            tcp("prod/db", "dev/client", 80, false),
            tcp("other/x", "dev/client", 80, true),
        ],
    ));

    // 8. Named port and a port range, on ingress.
    lab.set_policies(vec![
        np(r#"
metadata: {name: named, namespace: prod}
spec:
  podSelector: {matchLabels: {role: frontend}}
  ingress: [{ports: [{port: http}]}]
"#),
        np(r#"
metadata: {name: range, namespace: prod}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress: [{ports: [{port: 6000, endPort: 6400}]}]
"#),
    ])
    .expect("program");
    failures.extend(check(
        &lab,
        "named-port-and-range",
        &[
            tcp("dev/client", "prod/web", 8080, true),
            tcp("dev/client", "prod/web", 80, false),
            tcp("node", "prod/web", 80, true),
            tcp("dev/client", "prod/db", 6379, true),
            tcp("dev/client", "prod/db", 8080, false),
            tcp("node", "prod/db", 8080, true),
        ],
    ));

    // 9. A pod needs egress at the source AND ingress at the destination.
    lab.set_policies(vec![
        np(r#"
metadata: {name: client-out, namespace: dev}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {matchLabels: {env: prod}}, podSelector: {matchLabels: {role: db}}}]}]
"#),
        np(r#"
metadata: {name: db-in, namespace: prod}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress: [{from: [{namespaceSelector: {}}], ports: [{port: 80}]}]
"#),
    ]).expect("program");
    failures.extend(check(
        &lab,
        "both-ends",
        &[
            tcp("dev/client", "prod/db", 80, true),
            tcp("dev/client", "prod/db", 6379, false), // egress ok, ingress not
            tcp("node", "prod/db", 6379, true),
            tcp("dev/client", "prod/web", 80, false), // ingress open, egress not
            tcp("other/x", "prod/web", 80, true),
        ],
    ));

    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
    eprintln!("case table took {:?}", started.elapsed());
}
