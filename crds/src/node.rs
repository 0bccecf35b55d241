//! TortieNode: the per-node BGP and tunnel facts (Calico's `Node` resource).
//!
//! Pure. Owns the TortieNode type, named after the Kubernetes node it describes; its
//! labels are the object's metadata labels (what BGPPeer and IPPool selectors match).
//! On Kubernetes it is owned by the native Node so it is deleted with it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::AsNumber;

/// The BGP part of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeBgpSpec {
    /// IPv4 address *with its mask* (`10.0.0.5/24`); the mask drives CrossSubnet.
    #[serde(
        default,
        rename = "ipv4Address",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    #[serde(with = "crate::serde_net::opt_cidr")]
    pub ipv4_address: Option<IpNetwork>,
    /// IPv6 address with its mask.
    #[serde(
        default,
        rename = "ipv6Address",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    #[serde(with = "crate::serde_net::opt_cidr")]
    pub ipv6_address: Option<IpNetwork>,
    /// This node's AS (else the cluster AS from BGPConfiguration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// Address of this node's `tunl0`.
    #[serde(
        default,
        rename = "ipv4IPIPTunnelAddr",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub ipv4_ipip_tunnel_addr: Option<IpAddr>,
    /// Non-empty: this node is a route reflector with this cluster ID (RFC 4456).
    #[serde(
        default,
        rename = "routeReflectorClusterID",
        skip_serializing_if = "Option::is_none"
    )]
    pub route_reflector_cluster_id: Option<String>,
}

/// `spec` of a TortieNode (`crd.tortie.dev/v1`, cluster-scoped, named after the node).
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "crd.tortie.dev",
    version = "v1",
    kind = "TortieNode",
    plural = "tortienodes",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct TortieNodeSpec {
    /// BGP addresses, AS and route-reflector role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<NodeBgpSpec>,
    /// Address of this node's `vxlan.calico` device.
    #[serde(
        default,
        rename = "ipv4VXLANTunnelAddr",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub ipv4_vxlan_tunnel_addr: Option<IpAddr>,
    /// MAC address of this node's `vxlan.calico` device.
    #[serde(
        default,
        rename = "vxlanTunnelMACAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub vxlan_tunnel_mac_addr: Option<String>,
}

impl TortieNode {
    /// The TortieNode of the Kubernetes `node`: same name, same labels, and an owner
    /// reference to it so Kubernetes garbage-collects it with the Node. `None` when the
    /// Node has no name or uid yet (it was never stored).
    pub fn for_node(node: &k8s_openapi::api::core::v1::Node, spec: TortieNodeSpec) -> Option<Self> {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        let name = node.metadata.name.clone()?;
        let uid = node.metadata.uid.clone()?;
        let mut t = TortieNode::new(&name, spec);
        t.metadata.labels = node.metadata.labels.clone();
        t.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name,
            uid,
            controller: Some(false),
            block_owner_deletion: Some(false),
        }]);
        Some(t)
    }

    /// The node's labels (its metadata labels), empty when it has none.
    pub fn labels_map(&self) -> BTreeMap<String, String> {
        self.metadata.labels.clone().unwrap_or_default()
    }

    /// True when this node reflects routes (a non-empty cluster ID).
    pub fn is_route_reflector(&self) -> bool {
        self.spec
            .bgp
            .as_ref()
            .and_then(|b| b.route_reflector_cluster_id.as_deref())
            .is_some_and(|id| !id.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Node;

    #[test]
    fn owned_by_its_node() {
        let mut node = Node::default();
        assert!(TortieNode::for_node(&node, TortieNodeSpec::default()).is_none());
        node.metadata.name = Some("n1".into());
        node.metadata.uid = Some("u-1".into());
        node.metadata.labels = Some([("zone".to_string(), "a".to_string())].into());
        let t = TortieNode::for_node(&node, TortieNodeSpec::default()).unwrap();
        assert_eq!(t.metadata.name.as_deref(), Some("n1"));
        assert_eq!(t.labels_map().get("zone").map(String::as_str), Some("a"));
        let owner = &t.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Node", "u-1"));
        assert!(!t.is_route_reflector());
    }
}
