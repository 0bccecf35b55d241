//! Shared lab for the policy tests: one node namespace running our iptables programming,
//! pods plumbed with the cni crate (`cali*` veth, /32, host route), outside hosts on the
//! node's LAN that route the pool through the node, and TCP/UDP servers in every pod.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use testlab::inside::Server;
use testlab::{Host, Lab};
use tortie_cni::{Netns, WorkloadSetup, setup_workload};
use tortie_felix::iptables::{ApplyStats, Programmer, Runner};
use tortie_felix::policy::{
    self, DataplaneConfig, Endpoint, NamedPort, PolicyInput, Pool, Ruleset,
};

pub const NODE_IP: &str = "10.99.0.1";
pub const POOL: &str = "10.65.0.0/24";
/// TCP ports every pod listens on; UDP 53 too.
pub const TCP_PORTS: [u16; 3] = [80, 6379, 8080];
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);

/// Labels as written in a test table.
pub type Labels<'a> = &'a [(&'a str, &'a str)];
/// A pod in a test table: `namespace/name`, last octet of its IP, labels.
pub type PodSpec<'a> = (&'a str, u8, Labels<'a>);

pub struct Pod {
    pub host: Host,
    pub ep: Endpoint,
    pub ip: IpAddr,
    pub servers: Vec<Server>,
}

pub struct Outside {
    pub host: Host,
    pub ip: IpAddr,
    pub servers: Vec<Server>,
}

pub struct PolicyLab {
    pub node: Host,
    /// Servers on the node's own address (pod → node probes).
    pub node_servers: Vec<Server>,
    pub pods: BTreeMap<String, Pod>,
    pub outside: BTreeMap<String, Outside>,
    pub input: PolicyInput,
    pub felix: Programmer,
    // Dropped last: kills servers' namespaces.
    pub lab: Lab,
}

pub fn np(yaml: &str) -> NetworkPolicy {
    serde_yaml::from_str(yaml).expect("test policy YAML")
}

fn servers_on(host: &Host, ip: IpAddr) -> Result<Vec<Server>> {
    let mut v = Vec::new();
    for p in TCP_PORTS {
        v.push(Server::tcp(host, SocketAddr::new(ip, p))?);
    }
    v.push(Server::udp(host, SocketAddr::new(ip, 53))?);
    Ok(v)
}

impl PolicyLab {
    /// A node with `pods` (`namespace/name`, last octet, labels) and `outside` hosts
    /// (name, last octet on 10.99.0.0/24).
    pub fn new(
        prefix: &str,
        namespaces: &[(&str, Labels<'_>)],
        pods: &[PodSpec<'_>],
        outside: &[(&str, u8)],
        nat_outgoing: bool,
    ) -> Result<PolicyLab> {
        let lab = Lab::new(prefix)?;
        let node = lab.add_host("node", &format!("{NODE_IP}/24"))?;
        node.sysctl("net/ipv4/ip_forward", "1")?;
        // Something must route 169.254.1.1 for proxy ARP to answer the pods' gateway.
        node.ip(&["route", "add", "default", "dev", "eth0"])?;
        let node_servers = servers_on(&node, NODE_IP.parse()?)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut pod_map = BTreeMap::new();
        for (i, (full, octet, labels)) in pods.iter().enumerate() {
            let (ns, name) = full.split_once('/').context("pod as ns/name")?;
            let host = lab.add_bare_host(&format!("p{i}"))?;
            let ip: IpAddr = format!("10.65.0.{octet}").parse()?;
            let iface = tortie_cni::host_iface_name(ns, name);
            rt.block_on(setup_workload(&WorkloadSetup {
                host_ns: Netns::named(node.netns()),
                pod_ns: Netns::named(host.netns()),
                host_iface: iface.clone(),
                pod_iface: "eth0".into(),
                addrs: vec![ip],
                mtu: 1500,
            }))
            .with_context(|| format!("plumbing {full}"))?;
            let servers = servers_on(&host, ip)?;
            let ep = Endpoint {
                namespace: ns.into(),
                pod: name.into(),
                iface: Some(iface),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ips: vec![ip],
                named_ports: vec![NamedPort {
                    name: "http".into(),
                    protocol: "TCP".into(),
                    port: 8080,
                }],
            };
            pod_map.insert(
                full.to_string(),
                Pod {
                    host,
                    ep,
                    ip,
                    servers,
                },
            );
        }
        let mut out_map = BTreeMap::new();
        for (name, octet) in outside {
            let ip: IpAddr = format!("10.99.0.{octet}").parse()?;
            let host = lab.add_host(name, &format!("{ip}/24"))?;
            host.ip(&["route", "add", POOL, "via", NODE_IP])?;
            let mut servers = servers_on(&host, ip)?;
            servers.push(Server::tcp(&host, SocketAddr::new(ip, 5978))?);
            out_map.insert(name.to_string(), Outside { host, ip, servers });
        }
        let input = PolicyInput {
            endpoints: pod_map.values().map(|p| p.ep.clone()).collect(),
            namespaces: namespaces
                .iter()
                .map(|(n, l)| {
                    (
                        n.to_string(),
                        l.iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                    )
                })
                .collect(),
            policies: vec![],
            pools: vec![Pool {
                cidr: POOL.parse()?,
                nat_outgoing,
            }],
            node_ips: vec![NODE_IP.parse()?],
            config: DataplaneConfig::default(),
        };
        let felix = Programmer::detect(Runner::in_netns(node.netns()))?;
        Ok(PolicyLab {
            node,
            node_servers,
            pods: pod_map,
            outside: out_map,
            input,
            felix,
            lab,
        })
    }

    pub fn ruleset(&self) -> Ruleset {
        policy::build(&self.input)
    }

    /// Compile the current input and program it; fails on compiler warnings.
    pub fn program(&mut self) -> Result<ApplyStats> {
        let rs = self.ruleset();
        if !rs.warnings.is_empty() {
            bail!("compiler warnings: {:?}", rs.warnings);
        }
        Ok(self.felix.apply(&rs)?)
    }

    pub fn set_policies(&mut self, policies: Vec<NetworkPolicy>) -> Result<ApplyStats> {
        self.input.policies = policies;
        self.program()
    }

    pub fn pod(&self, name: &str) -> &Pod {
        self.pods
            .get(name)
            .unwrap_or_else(|| panic!("no pod {name}"))
    }

    /// The host (pod, outside host or "node") named `who`, and its address.
    pub fn who(&self, who: &str) -> (&Host, IpAddr) {
        if who == "node" {
            return (&self.node, NODE_IP.parse().expect("node ip"));
        }
        if let Some(p) = self.pods.get(who) {
            return (&p.host, p.ip);
        }
        let o = self
            .outside
            .get(who)
            .unwrap_or_else(|| panic!("no host {who}"));
        (&o.host, o.ip)
    }

    /// `iptables-save` of the node (backend felix uses), with counters when `counters`.
    pub fn save(&self, table: &str, counters: bool) -> Result<String> {
        let mut args = vec!["-t", table];
        if counters {
            args.push("-c");
        }
        Ok(self
            .felix
            .runner()
            .run(self.felix.backend().save(), &args, None)?)
    }

    /// Run a single iptables command in the node (acting as "another program").
    pub fn foreign(&self, args: &[&str]) -> Result<()> {
        self.felix
            .runner()
            .run(self.felix.backend().iptables(), args, None)?;
        Ok(())
    }
}

/// One probe: `from` → `to`:`port` over `proto`, expected outcome.
#[derive(Debug, Clone)]
pub struct Probe {
    pub from: &'static str,
    pub to: &'static str,
    pub udp: bool,
    pub port: u16,
    pub allowed: bool,
}

pub fn tcp(from: &'static str, to: &'static str, port: u16, allowed: bool) -> Probe {
    Probe {
        from,
        to,
        udp: false,
        port,
        allowed,
    }
}

pub fn udp(from: &'static str, to: &'static str, port: u16, allowed: bool) -> Probe {
    Probe {
        from,
        to,
        udp: true,
        port,
        allowed,
    }
}

/// Run all probes concurrently; returns the list of mismatches (empty = all as expected).
/// Every denied probe must have an allowed probe to the same listener in the same step,
/// so a dead server cannot pass for a drop.
pub fn check(lab: &PolicyLab, case: &str, probes: &[Probe]) -> Vec<String> {
    for d in probes.iter().filter(|p| !p.allowed) {
        assert!(
            probes
                .iter()
                .any(|a| a.allowed && a.to == d.to && a.port == d.port && a.udp == d.udp),
            "case {case}: denial {d:?} has no allowed probe to the same listener"
        );
    }
    let results: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = probes
            .iter()
            .map(|p| {
                let (from, _) = lab.who(p.from);
                let (_, to_ip) = lab.who(p.to);
                let to = SocketAddr::new(to_ip, p.port);
                s.spawn(move || {
                    if p.udp {
                        from.udp_probe(to, PROBE_TIMEOUT)
                    } else {
                        from.tcp_probe(to, PROBE_TIMEOUT)
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(false))
            .collect()
    });
    probes
        .iter()
        .zip(results)
        .filter(|(p, got)| p.allowed != *got)
        .map(|(p, got)| format!("case {case}: {p:?} got allowed={got}"))
        .collect()
}
