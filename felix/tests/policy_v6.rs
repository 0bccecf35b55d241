//! IPv6 NetworkPolicy on a real node namespace: dual-stack pods plumbed by the cni crate,
//! felix's IPv4 programmer (iptables, `cali40*`) and IPv6 programmer (ip6tables,
//! `cali60*` inet6) fed the same input. Real TCP over IPv6 is allowed from `role=client`
//! and dropped from others (each denial paired with an allowed probe to the same
//! listener); an IPv4-only ipBlock rule stays out of the IPv6 chains; the two programmers
//! never touch each other's tables or sets. Needs root (panics otherwise).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use testlab::inside::Server;
use testlab::{Host, Lab};
use tortie_cni::{Netns, WorkloadSetup, setup_workload};
use tortie_felix::iptables::{DualStack, Programmer, Runner};
use tortie_felix::policy::{
    DataplaneConfig, Endpoint, Family, PolicyInput, Pool, Ruleset, build_family,
};

const NODE_IP: &str = "10.98.0.1";
const POOL_V4: &str = "10.66.0.0/24";
const POOL_V6: &str = "fd00:66::/64";
const PORTS: [u16; 2] = [80, 8080];
const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);

struct Pod {
    host: Host,
    v4: IpAddr,
    v6: IpAddr,
    _servers: Vec<Server>,
}

struct V6Lab {
    node: Host,
    pods: BTreeMap<&'static str, Pod>,
    input: PolicyInput,
    felix4: Programmer,
    felix6: Programmer,
    _lab: Lab,
}

fn np(yaml: &str) -> NetworkPolicy {
    serde_yaml::from_str(yaml).expect("test policy YAML")
}

impl V6Lab {
    /// A node with dual-stack pods (`ns/name`, last address byte, role label).
    fn new(prefix: &str, pods: &[(&'static str, u8, &str)]) -> Result<V6Lab> {
        let lab = Lab::new(prefix)?;
        let node = lab.add_host("node", &format!("{NODE_IP}/24"))?;
        node.sysctl("net/ipv4/ip_forward", "1")?;
        node.sysctl("net/ipv6/conf/all/forwarding", "1")?;
        // Something must route 169.254.1.1 for proxy ARP to answer the pods' v4 gateway.
        node.ip(&["route", "add", "default", "dev", "eth0"])?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut map = BTreeMap::new();
        let mut endpoints = Vec::new();
        for (i, (full, n, role)) in pods.iter().enumerate() {
            let (ns, name) = full.split_once('/').context("pod as ns/name")?;
            let host = lab.add_bare_host(&format!("p{i}"))?;
            let v4: IpAddr = format!("10.66.0.{n}").parse()?;
            let v6: IpAddr = format!("fd00:66::{n:x}").parse()?;
            let iface = tortie_cni::host_iface_name(ns, name);
            rt.block_on(setup_workload(&WorkloadSetup {
                host_ns: Netns::named(node.netns()),
                pod_ns: Netns::named(host.netns()),
                host_iface: iface.clone(),
                pod_iface: "eth0".into(),
                addrs: vec![v4, v6],
                mtu: 1500,
            }))
            .with_context(|| format!("plumbing {full}"))?;
            let mut servers = Vec::new();
            for ip in [v4, v6] {
                for p in PORTS {
                    servers.push(Server::tcp(&host, SocketAddr::new(ip, p))?);
                }
            }
            endpoints.push(Endpoint {
                namespace: ns.into(),
                pod: name.into(),
                iface: Some(iface),
                labels: [("role".to_string(), role.to_string())].into(),
                ips: vec![v4, v6],
                named_ports: vec![],
            });
            map.insert(
                *full,
                Pod {
                    host,
                    v4,
                    v6,
                    _servers: servers,
                },
            );
        }
        let input = PolicyInput {
            endpoints,
            namespaces: BTreeMap::new(),
            policies: vec![],
            pools: vec![
                Pool {
                    cidr: POOL_V4.parse()?,
                    nat_outgoing: false,
                },
                Pool {
                    cidr: POOL_V6.parse()?,
                    nat_outgoing: true,
                },
            ],
            node_ips: vec![NODE_IP.parse()?],
            config: DataplaneConfig::default(),
        };
        let runner = Runner::in_netns(node.netns());
        let felix4 = Programmer::detect_family(runner.clone(), Family::V4)?;
        let felix6 = Programmer::detect_family(runner, Family::V6)?;
        assert_eq!(felix6.family(), Family::V6);
        Ok(V6Lab {
            node,
            pods: map,
            input,
            felix4,
            felix6,
            _lab: lab,
        })
    }

    fn rulesets(&self) -> (Ruleset, Ruleset) {
        (
            build_family(&self.input, Family::V4),
            build_family(&self.input, Family::V6),
        )
    }

    /// Program both families; fails on compiler warnings.
    fn program(&mut self) -> Result<()> {
        let (r4, r6) = self.rulesets();
        anyhow::ensure!(r6.warnings.is_empty(), "warnings: {:?}", r6.warnings);
        self.felix4.apply(&r4)?;
        self.felix6.apply(&r6)?;
        Ok(())
    }

    fn pod(&self, name: &str) -> &Pod {
        self.pods
            .get(name)
            .unwrap_or_else(|| panic!("no pod {name}"))
    }
}

/// `from` → `to`:`port` over IPv6 (`v6`) or IPv4, expected outcome.
#[derive(Debug, Clone, Copy)]
struct Probe {
    from: &'static str,
    to: &'static str,
    v6: bool,
    port: u16,
    allowed: bool,
}

fn t6(from: &'static str, to: &'static str, port: u16, allowed: bool) -> Probe {
    Probe {
        from,
        to,
        v6: true,
        port,
        allowed,
    }
}

fn t4(from: &'static str, to: &'static str, port: u16, allowed: bool) -> Probe {
    Probe {
        v6: false,
        ..t6(from, to, port, allowed)
    }
}

/// Runs the probes concurrently and returns the mismatches. Every denial needs an allowed
/// probe to the same listener, so a dead server cannot pass for a drop.
fn check(lab: &V6Lab, case: &str, probes: &[Probe]) -> Vec<String> {
    for d in probes.iter().filter(|p| !p.allowed) {
        assert!(
            probes
                .iter()
                .any(|a| a.allowed && a.to == d.to && a.port == d.port && a.v6 == d.v6),
            "case {case}: denial {d:?} has no allowed probe to the same listener"
        );
    }
    let got: Vec<bool> = std::thread::scope(|s| {
        let hs: Vec<_> = probes
            .iter()
            .map(|p| {
                let from = &lab.pod(p.from).host;
                let to = lab.pod(p.to);
                let ip = if p.v6 { to.v6 } else { to.v4 };
                let addr = SocketAddr::new(ip, p.port);
                s.spawn(move || from.tcp_probe(addr, PROBE_TIMEOUT))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or(false)).collect()
    });
    probes
        .iter()
        .zip(got)
        .filter(|(p, g)| p.allowed != *g)
        .map(|(p, g)| format!("case {case}: {p:?} got allowed={g}"))
        .collect()
}

const WEB_FROM_CLIENTS: &str = r#"
metadata: {name: web-in, namespace: prod}
spec:
  podSelector: {matchLabels: {role: web}}
  ingress:
  - from: [{namespaceSelector: {}, podSelector: {matchLabels: {role: client}}}]
    ports: [{port: 80}]
  - from: [{ipBlock: {cidr: 10.66.0.4/32}}]
    ports: [{port: 8080}]
  - from: [{ipBlock: {cidr: "fd00:66::/64", except: ["fd00:66::4/128"]}}]
    ports: [{port: 8080}]
"#;

#[test]
fn ipv6_pod_traffic_follows_network_policy_in_ip6tables() {
    testlab::require_root();
    let started = std::time::Instant::now();
    let mut lab = V6Lab::new(
        "polv6",
        &[
            ("prod/web", 2, "web"),
            ("dev/client", 3, "client"),
            ("prod/db", 4, "db"),
        ],
    )
    .expect("lab");
    lab.program().expect("program without policy");
    let open = check(
        &lab,
        "no policy",
        &[
            t6("dev/client", "prod/web", 80, true),
            t6("prod/db", "prod/web", 80, true),
            t4("prod/db", "prod/web", 80, true),
        ],
    );
    assert!(open.is_empty(), "{open:?}");

    lab.input.policies = vec![np(WEB_FROM_CLIENTS)];
    lab.program().expect("program with policy");
    let fails = check(
        &lab,
        "web from clients",
        &[
            // The selector rule, in both families.
            t6("dev/client", "prod/web", 80, true),
            t6("prod/db", "prod/web", 80, false),
            t4("dev/client", "prod/web", 80, true),
            t4("prod/db", "prod/web", 80, false),
            // 8080: the v4 block admits db over IPv4 only; the v6 block admits the pool
            // except db.
            t4("prod/db", "prod/web", 8080, true),
            t4("dev/client", "prod/web", 8080, false),
            t6("dev/client", "prod/web", 8080, true),
            t6("prod/db", "prod/web", 8080, false),
            // db is not selected: open.
            t6("prod/web", "prod/db", 80, true),
        ],
    );
    assert!(fails.is_empty(), "{fails:?}");

    // ip6tables holds the chains, with the v6 set; iptables holds no IPv6 address.
    let runner = lab.felix6.runner().clone();
    let save6 = runner
        .run(lab.felix6.save_cmd(), &["-t", "filter"], None)
        .expect("ip6tables-save");
    let web_iface = tortie_cni::host_iface_name("prod", "web");
    let pi = tortie_felix::policy::names::policy_in_chain("prod", "web-in");
    for want in [
        format!(":{pi} "),
        format!("-A cali-tw-{web_iface} "),
        "-A FORWARD -m comment --comment \"cali:".to_string(),
        "--match-set cali60s".to_string(),
    ] {
        assert!(
            save6.contains(&want),
            "no {want:?} in ip6tables-save:\n{save6}"
        );
    }
    assert!(
        save6.lines().any(|l| l.contains("-s fd00:66::/64")
            && l.contains("! --match-set cali60e")
            && l.contains("--dport 8080")),
        "no v6 ipBlock rule with its except set:\n{save6}"
    );
    assert!(
        !save6.contains("10.66.0.4"),
        "v4 block leaked into ip6tables:\n{save6}"
    );
    let save4 = runner
        .run(lab.felix4.save_cmd(), &["-t", "filter"], None)
        .expect("iptables-save");
    assert!(save4.contains("-s 10.66.0.4/32") && !save4.contains("fd00:"));
    let raw6 = runner
        .run(lab.felix6.save_cmd(), &["-t", "raw"], None)
        .expect("ip6tables-save raw");
    assert!(raw6.contains("rpfilter --invert -j DROP"), "{raw6}");
    let nat6 = runner
        .run(lab.felix6.save_cmd(), &["-t", "nat"], None)
        .expect("ip6tables-save nat");
    assert!(
        nat6.contains("--match-set cali60masq-ipam-pools src"),
        "{nat6}"
    );

    // ipset: the selector set is inet6 and holds the client's v6 address only.
    let (_, r6) = lab.rulesets();
    let client_set = r6
        .ipsets
        .iter()
        .find(|(n, s)| n.starts_with("cali60s") && s.members.contains("fd00:66::3"))
        .map(|(n, _)| n.clone())
        .expect("a cali60s set with the client");
    let list = runner
        .run("ipset", &["list", &client_set], None)
        .expect("ipset list");
    assert!(list.contains("family inet6"), "{list}");
    assert!(
        list.contains("fd00:66::3") && !list.contains("fd00:66::4"),
        "{list}"
    );

    // Each family's programmer leaves the other's state alone: a full re-read by either
    // finds nothing to change.
    let (r4, r6) = lab.rulesets();
    let s4 = lab.felix4.resync(&r4).expect("resync v4");
    let s6 = lab.felix6.resync(&r6).expect("resync v6");
    assert!(s4.is_noop(), "v4 resync wrote {s4:?}");
    assert!(s6.is_noop(), "v6 resync wrote {s6:?}");
    let sets = runner
        .run("ipset", &["list", "-n"], None)
        .expect("ipset -n");
    assert!(sets.lines().any(|l| l.starts_with("cali40s")), "{sets}");
    assert!(sets.lines().any(|l| l.starts_with("cali60s")), "{sets}");

    // A relabel moves db into the client set: an ipset swap, and db gets in over IPv6.
    lab.input.endpoints[2]
        .labels
        .insert("role".into(), "client".into());
    lab.program().expect("program relabel");
    let fails = check(
        &lab,
        "db relabelled client",
        &[
            t6("prod/db", "prod/web", 80, true),
            t6("dev/client", "prod/web", 80, true),
        ],
    );
    assert!(fails.is_empty(), "{fails:?}");
    eprintln!("policy_v6 took {:?}", started.elapsed());
}

/// Packets counted by the IPv6 anti-spoofing DROP rule (`ip6tables-save -c -t raw`).
fn rpf_drops_v6(lab: &V6Lab) -> u64 {
    let text = lab
        .felix6
        .runner()
        .run(lab.felix6.save_cmd(), &["-c", "-t", "raw"], None)
        .expect("ip6tables-save -c");
    let line = text
        .lines()
        .find(|l| l.contains("rpfilter --invert"))
        .unwrap_or_else(|| panic!("no rpfilter rule in\n{text}"));
    line.trim_start_matches('[')
        .split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {line}"))
}

/// `nc -z` from `host` to `to`:80 with source address `src`; true when it connects.
fn nc_from(host: &Host, src: &str, to: IpAddr) -> bool {
    host.exec_unchecked(
        "nc",
        &["-6", "-z", "-w", "1", "-s", src, &to.to_string(), "80"],
    )
    .map(|o| o.status.success())
    .unwrap_or(false)
}

#[test]
fn ipv6_spoofed_source_from_a_pod_is_dropped_by_rpfilter() {
    testlab::require_root();
    let lab = V6Lab::new("polv6rpf", &[("prod/web", 2, "web"), ("prod/db", 4, "db")]).expect("lab");
    // Programmed through the agent's handle this time: both families in one call.
    let mut dual = DualStack::detect(Runner::in_netns(lab.node.netns()), true).expect("detect");
    assert_eq!(dual.families(), vec![Family::V4, Family::V6]);
    let stats = dual.apply(&lab.input).expect("program");
    assert_eq!(stats.restore_calls, 6, "3 tables x 2 families: {stats:?}");
    let again = dual.resync(&lab.input).expect("resync");
    assert!(again.is_noop(), "{again:?}");
    let db = lab.pod("prod/db");
    let web_v6 = lab.pod("prod/web").v6;
    // A second address in db that the node routes nowhere near db.
    db.host
        .ip(&[
            "-6",
            "addr",
            "add",
            "fd00:66::99/128",
            "dev",
            "eth0",
            "nodad",
        ])
        .expect("spoof address");
    let before = rpf_drops_v6(&lab);
    assert!(
        nc_from(&db.host, &db.v6.to_string(), web_v6),
        "db from its own address must connect"
    );
    assert!(
        !nc_from(&db.host, "fd00:66::99", web_v6),
        "spoofed source connected"
    );
    let after = rpf_drops_v6(&lab);
    assert!(
        after > before,
        "rpfilter counted no drop ({before} → {after})"
    );
}
