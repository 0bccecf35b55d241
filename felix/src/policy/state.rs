//! Felix's [`Input`] events → the compiler's [`PolicyInput`]: keeps the policy-relevant
//! part of the world (endpoints of every node, namespaces, NetworkPolicies, pools, node
//! addresses) and builds the compiler input for this node on demand.
//!
//! Pure. Endpoints of this node get their interface (and so their chains); endpoints of
//! other nodes only feed the ipsets selectors resolve to. IPIP/VXLAN INPUT filtering is
//! switched on when any pool uses that encapsulation. Disabled pools still count as
//! pools (their pods keep their addresses).

use std::collections::BTreeMap;

use crate::input::{self, EndpointId, Input};

use super::model::{DataplaneConfig, Endpoint, NamedPort, PolicyInput, Pool};

/// The policy-relevant state, updated event by event.
#[derive(Debug, Clone, Default)]
pub struct PolicyState {
    node: String,
    endpoints: BTreeMap<EndpointId, input::Endpoint>,
    pools: BTreeMap<String, input::Pool>,
    nodes: BTreeMap<String, input::Node>,
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
    policies: BTreeMap<(String, String), k8s_openapi::api::networking::v1::NetworkPolicy>,
    /// Base configuration (dispatch fan-out, VXLAN port); encap switches come from pools.
    pub config: DataplaneConfig,
}

impl PolicyState {
    /// State for the node called `node`.
    pub fn new(node: &str) -> Self {
        PolicyState {
            node: node.to_string(),
            ..Default::default()
        }
    }

    /// Apply one event; returns whether policy-relevant state changed.
    pub fn apply(&mut self, ev: &Input) -> bool {
        match ev {
            Input::EndpointUpsert(e) => {
                self.endpoints.insert(e.id.clone(), e.clone()).as_ref() != Some(e)
            }
            Input::EndpointRemove(id) => self.endpoints.remove(id).is_some(),
            Input::PoolUpsert(p) => {
                self.pools.insert(p.cidr.to_string(), p.clone()).as_ref() != Some(p)
            }
            Input::PoolRemove { cidr } => self.pools.remove(&cidr.to_string()).is_some(),
            Input::NodeUpsert(n) => {
                let old = self.nodes.insert(n.name.clone(), n.clone());
                old.map(|o| o.ipv4_address) != Some(n.ipv4_address)
            }
            Input::NodeRemove { name } => self.nodes.remove(name).is_some(),
            Input::NamespaceUpsert(ns) => {
                self.namespaces
                    .insert(ns.name.clone(), ns.labels.clone())
                    .as_ref()
                    != Some(&ns.labels)
            }
            Input::NamespaceRemove { name } => self.namespaces.remove(name).is_some(),
            Input::PolicyUpsert(p) => {
                let key = (
                    p.metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into()),
                    p.metadata.name.clone().unwrap_or_default(),
                );
                self.policies.insert(key, (**p).clone()).as_ref() != Some(&**p)
            }
            Input::PolicyRemove { namespace, name } => self
                .policies
                .remove(&(namespace.clone(), name.clone()))
                .is_some(),
            Input::AffinityUpsert(_)
            | Input::AffinityRemove { .. }
            | Input::RouteUpsert(_)
            | Input::RouteRemove { .. }
            | Input::InSync => false,
        }
    }

    /// The compiler input for this node.
    pub fn policy_input(&self) -> PolicyInput {
        let mut config = self.config.clone();
        config.ipip = self.pools.values().any(|p| p.ipip_mode.enabled());
        config.vxlan = self.pools.values().any(|p| p.vxlan_mode.enabled());
        PolicyInput {
            endpoints: self
                .endpoints
                .values()
                .map(|e| Endpoint {
                    namespace: e.id.namespace.clone(),
                    pod: e.id.pod.clone(),
                    iface: (e.node == self.node).then(|| e.iface.clone()),
                    labels: e.labels.clone(),
                    ips: e.ips.iter().map(|n| n.ip()).collect(),
                    named_ports: e
                        .ports
                        .iter()
                        .map(|p| NamedPort {
                            name: p.name.clone(),
                            protocol: p.protocol.clone(),
                            port: p.port,
                        })
                        .collect(),
                })
                .collect(),
            namespaces: self.namespaces.clone(),
            policies: self.policies.values().cloned().collect(),
            pools: self
                .pools
                .values()
                .map(|p| Pool {
                    cidr: p.cidr,
                    nat_outgoing: p.nat_outgoing,
                })
                .collect(),
            node_ips: self
                .nodes
                .values()
                .filter_map(|n| n.ipv4_address.map(|a| std::net::IpAddr::V4(a.ip())))
                .collect(),
            config,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{EncapMode, EndpointPort, Namespace, Node};

    fn ep(node: &str, pod: &str, ip: &str) -> input::Endpoint {
        input::Endpoint {
            id: EndpointId {
                namespace: "prod".into(),
                pod: pod.into(),
                endpoint: "eth0".into(),
            },
            node: node.into(),
            iface: format!("cali{pod}"),
            ips: vec![format!("{ip}/32").parse().unwrap()],
            mac: None,
            labels: [("app".to_string(), pod.to_string())].into(),
            ports: vec![EndpointPort {
                name: "http".into(),
                protocol: "TCP".into(),
                port: 8080,
            }],
            service_account: None,
        }
    }

    #[test]
    fn events_become_compiler_input_for_this_node() {
        let mut s = PolicyState::new("a");
        assert!(s.apply(&Input::EndpointUpsert(ep("a", "web", "10.0.0.1"))));
        assert!(
            !s.apply(&Input::EndpointUpsert(ep("a", "web", "10.0.0.1"))),
            "no-op upsert"
        );
        assert!(s.apply(&Input::EndpointUpsert(ep("b", "db", "10.0.1.1"))));
        let mut pool = input::Pool::new("10.0.0.0/16".parse().unwrap());
        pool.nat_outgoing = true;
        pool.ipip_mode = EncapMode::Always;
        assert!(s.apply(&Input::PoolUpsert(pool)));
        assert!(s.apply(&Input::NodeUpsert(Node::new(
            "b",
            "192.168.0.2/24".parse().unwrap()
        ))));
        assert!(s.apply(&Input::NamespaceUpsert(Namespace {
            name: "prod".into(),
            labels: BTreeMap::new()
        })));
        assert!(!s.apply(&Input::InSync));
        let pi = s.policy_input();
        assert_eq!(pi.endpoints.len(), 2);
        let local: Vec<_> = pi
            .endpoints
            .iter()
            .filter_map(|e| e.iface.as_deref())
            .collect();
        assert_eq!(local, vec!["caliweb"]);
        assert_eq!(pi.endpoints[0].named_ports[0].port, 8080);
        assert!(pi.config.ipip && !pi.config.vxlan);
        assert_eq!(
            pi.node_ips,
            vec!["192.168.0.2".parse::<std::net::IpAddr>().unwrap()]
        );
        assert!(pi.pools[0].nat_outgoing);
        let rs = super::super::build(&pi);
        assert!(
            rs.tables[&super::super::Table::Filter]
                .chains
                .contains_key("cali-tw-caliweb")
        );
        assert!(
            !rs.tables[&super::super::Table::Filter]
                .chains
                .contains_key("cali-tw-calidb")
        );
        assert!(s.apply(&Input::EndpointRemove(EndpointId {
            namespace: "prod".into(),
            pod: "web".into(),
            endpoint: "eth0".into()
        })));
        assert_eq!(s.policy_input().endpoints.len(), 1);
    }
}
