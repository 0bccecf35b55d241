//! BGPConfiguration and BGPPeer: how nodes speak BGP and to whom.
//!
//! Pure. Owns both resource types, Calico's defaults for the `default` BGPConfiguration
//! (mesh on, AS 64512, port 179), the merge of a per-node `node.<name>` override over it,
//! and the `peerIP` accessor (`IP`, `IP:port`, `[v6]:port`). Validation lives in
//! `crate::validation`.

use std::net::{IpAddr, SocketAddr};

use ipnetwork::IpNetwork;
use k8s_openapi::api::core::v1::SecretKeySelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::AsNumber;

/// Name of the cluster-wide BGPConfiguration.
pub const DEFAULT_BGP_CONFIGURATION: &str = "default";

/// Calico's default BGP port.
pub const DEFAULT_BGP_PORT: u16 = 179;

/// A BGP password taken from a Kubernetes Secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpPassword {
    /// The Secret key holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeySelector>,
}

/// Which address the BGP listener binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BindMode {
    /// Listen on every address.
    None,
    /// Listen on the node IP only.
    NodeIP,
}

/// One CIDR entry of the service advertisement lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceCidr {
    /// The range to advertise.
    #[serde(with = "crate::serde_net::cidr")]
    #[schemars(with = "String")]
    pub cidr: IpNetwork,
}

/// A named BGP community (`aa:nn` standard or `aa:nn:mm` large).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Community {
    /// Name referenced from `prefixAdvertisements`.
    pub name: String,
    /// `aa:nn` (RFC 1997) or `aa:nn:mm` (RFC 8092).
    pub value: String,
}

/// Communities attached to routes within one CIDR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PrefixAdvertisement {
    /// Routes within this range get the communities.
    #[serde(with = "crate::serde_net::cidr")]
    #[schemars(with = "String")]
    pub cidr: IpNetwork,
    /// Community names (from `communities`) or literal values.
    #[serde(default)]
    pub communities: Vec<String>,
}

/// `spec` of a BGPConfiguration (`crd.tortie.dev/v1`, cluster-scoped). The instance
/// named `default` holds the cluster values; `node.<name>` overrides them for one node.
/// Every field is optional so that an override only carries what it changes.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "crd.tortie.dev",
    version = "v1",
    kind = "BGPConfiguration",
    root = "BgpConfiguration",
    plural = "bgpconfigurations",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!(has(self.nodeToNodeMeshEnabled) && !self.nodeToNodeMeshEnabled && has(self.nodeMeshPassword))",
     "message": "spec.nodeMeshPassword: cannot be set when nodeToNodeMeshEnabled is false"},
    {"rule": "!(has(self.nodeToNodeMeshEnabled) && !self.nodeToNodeMeshEnabled && has(self.nodeMeshMaxRestartTime))",
     "message": "spec.nodeMeshMaxRestartTime: cannot be set when nodeToNodeMeshEnabled is false"}
]))]
pub struct BgpConfigurationSpec {
    /// Log level of the BGP speaker (Debug, Info, Warning, Error, Fatal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_severity_screen: Option<String>,
    /// Full mesh between all nodes (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_to_node_mesh_enabled: Option<bool>,
    /// Cluster AS number (default 64512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// Service cluster IP ranges to advertise.
    #[serde(
        default,
        rename = "serviceClusterIPs",
        skip_serializing_if = "Option::is_none"
    )]
    pub service_cluster_ips: Option<Vec<ServiceCidr>>,
    /// Service external IP ranges to advertise.
    #[serde(
        default,
        rename = "serviceExternalIPs",
        skip_serializing_if = "Option::is_none"
    )]
    pub service_external_ips: Option<Vec<ServiceCidr>>,
    /// Service LoadBalancer IP ranges to advertise.
    #[serde(
        default,
        rename = "serviceLoadBalancerIPs",
        skip_serializing_if = "Option::is_none"
    )]
    pub service_load_balancer_ips: Option<Vec<ServiceCidr>>,
    /// Named communities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communities: Option<Vec<Community>>,
    /// Communities per advertised range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_advertisements: Option<Vec<PrefixAdvertisement>>,
    /// TCP port of the BGP listener (default 179).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub listen_port: Option<u16>,
    /// MD5 password of the node-to-node mesh sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_mesh_password: Option<BgpPassword>,
    /// Graceful-restart time of mesh sessions (Go duration, default 120s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_mesh_max_restart_time: Option<String>,
    /// Which address the listener binds (default None = all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_mode: Option<BindMode>,
    /// Interfaces whose addresses are never exported (glob patterns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored_interfaces: Option<Vec<String>>,
}

impl BgpConfigurationSpec {
    /// Calico's defaults for the `default` instance, filled where unset. Idempotent.
    pub fn with_defaults(mut self) -> Self {
        self.node_to_node_mesh_enabled.get_or_insert(true);
        self.as_number.get_or_insert(AsNumber::DEFAULT);
        self.listen_port.get_or_insert(DEFAULT_BGP_PORT);
        self.log_severity_screen
            .get_or_insert_with(|| "Info".to_string());
        self.bind_mode.get_or_insert(BindMode::None);
        self
    }

    /// This spec with every field the per-node `overlay` sets taking precedence.
    pub fn merged_with(&self, overlay: &BgpConfigurationSpec) -> BgpConfigurationSpec {
        fn pick<T: Clone>(over: &Option<T>, base: &Option<T>) -> Option<T> {
            over.clone().or_else(|| base.clone())
        }
        BgpConfigurationSpec {
            log_severity_screen: pick(&overlay.log_severity_screen, &self.log_severity_screen),
            node_to_node_mesh_enabled: pick(
                &overlay.node_to_node_mesh_enabled,
                &self.node_to_node_mesh_enabled,
            ),
            as_number: pick(&overlay.as_number, &self.as_number),
            service_cluster_ips: pick(&overlay.service_cluster_ips, &self.service_cluster_ips),
            service_external_ips: pick(&overlay.service_external_ips, &self.service_external_ips),
            service_load_balancer_ips: pick(
                &overlay.service_load_balancer_ips,
                &self.service_load_balancer_ips,
            ),
            communities: pick(&overlay.communities, &self.communities),
            prefix_advertisements: pick(
                &overlay.prefix_advertisements,
                &self.prefix_advertisements,
            ),
            listen_port: pick(&overlay.listen_port, &self.listen_port),
            node_mesh_password: pick(&overlay.node_mesh_password, &self.node_mesh_password),
            node_mesh_max_restart_time: pick(
                &overlay.node_mesh_max_restart_time,
                &self.node_mesh_max_restart_time,
            ),
            bind_mode: pick(&overlay.bind_mode, &self.bind_mode),
            ignored_interfaces: pick(&overlay.ignored_interfaces, &self.ignored_interfaces),
        }
    }
}

impl BgpConfiguration {
    /// Name of the per-node override for `node`.
    pub fn node_name(node: &str) -> String {
        format!("node.{node}")
    }
}

/// Which local address a peering uses as source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SourceAddress {
    /// The node IP (default).
    #[default]
    UseNodeIP,
    /// Let the kernel choose.
    None,
}

/// How the next hop of routes sent to a peer is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum NextHopMode {
    /// eBGP: self; iBGP: keep (the default).
    #[default]
    Auto,
    /// Always this node.
    #[serde(rename = "Self")]
    SelfHop,
    /// Never change it.
    Keep,
}

/// `spec` of a BGPPeer (`crd.tortie.dev/v1`, cluster-scoped).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "crd.tortie.dev",
    version = "v1",
    kind = "BGPPeer",
    root = "BgpPeer",
    plural = "bgppeers",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!(has(self.node) && self.node != '' && has(self.nodeSelector) && self.nodeSelector != '')",
     "message": "spec.nodeSelector: node and nodeSelector are mutually exclusive"},
    {"rule": "!(has(self.peerIP) && self.peerIP != '' && has(self.peerSelector) && self.peerSelector != '')",
     "message": "spec.peerSelector: peerIP and peerSelector are mutually exclusive"},
    {"rule": "(has(self.peerIP) && self.peerIP != '') || (has(self.peerSelector) && self.peerSelector != '')",
     "message": "spec.peerIP: one of peerIP or peerSelector is required"},
    {"rule": "!(has(self.peerIP) && self.peerIP != '') || has(self.asNumber)",
     "message": "spec.asNumber: required with peerIP"},
    {"rule": "!(has(self.peerSelector) && self.peerSelector != '' && has(self.asNumber))",
     "message": "spec.asNumber: must be empty with peerSelector (the selected nodes' AS is used)"}
]))]
pub struct BgpPeerSpec {
    /// Only this node peers (else every node, or those matching `nodeSelector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Nodes that peer (selector language); exclusive with `node`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    /// Remote address: `IP`, `IP:port` or `[IPv6]:port`.
    #[serde(default, rename = "peerIP", skip_serializing_if = "Option::is_none")]
    pub peer_ip: Option<String>,
    /// Remote AS (required with `peerIP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// Peer with every tortie node this selects; exclusive with `peerIP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_selector: Option<String>,
    /// TCP-MD5 password (RFC 2385).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<BgpPassword>,
    /// Source address of the session (default UseNodeIP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<SourceAddress>,
    /// Keepalive interval (Go duration; hold time is three times it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,
    /// Graceful-restart time (Go duration, default 120s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restart_time: Option<String>,
    /// GTSM: the peer is at most this many hops away (RFC 5082).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_security: Option<u8>,
    /// Next-hop handling of routes sent to this peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop_mode: Option<NextHopMode>,
    /// Local AS for this session instead of the node's.
    #[serde(
        default,
        rename = "localASNumber",
        skip_serializing_if = "Option::is_none"
    )]
    pub local_as_number: Option<AsNumber>,
    /// Accept routes with our own AS in the path this many times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_allowed_local_as_numbers: Option<u32>,
    /// A gateway through which the peer is reached (adds a route to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachable_by: Option<String>,
}

/// Graceful-restart time Calico uses when none is configured.
pub const DEFAULT_MAX_RESTART_TIME: std::time::Duration = std::time::Duration::from_secs(120);

/// Why a `peerIP` is not usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not IP, IP:port or [IPv6]:port")]
pub struct PeerIpError {
    /// The offending text.
    pub text: String,
}

/// Parses a Calico `peerIP`: `IP`, `IPv4:port` or `[IPv6]:port` (port 1..=65535).
pub fn parse_peer_ip(text: &str) -> Result<(IpAddr, Option<u16>), PeerIpError> {
    let err = || PeerIpError {
        text: text.to_string(),
    };
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    let sa: SocketAddr = text.parse().map_err(|_| err())?;
    if sa.port() == 0 {
        return Err(err());
    }
    Ok((sa.ip(), Some(sa.port())))
}

impl BgpPeerSpec {
    /// The remote address and port, when `peerIP` is set.
    pub fn peer_addr(&self) -> Option<Result<(IpAddr, Option<u16>), PeerIpError>> {
        self.peer_ip
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(parse_peer_ip)
    }

    /// Effective source address mode (default UseNodeIP).
    pub fn source_address(&self) -> SourceAddress {
        self.source_address.unwrap_or_default()
    }

    /// Effective next-hop mode (default Auto).
    pub fn next_hop_mode(&self) -> NextHopMode {
        self.next_hop_mode.unwrap_or_default()
    }

    /// Effective graceful-restart time (default 120 s).
    pub fn max_restart(&self) -> Result<std::time::Duration, crate::duration::DurationError> {
        match self.max_restart_time.as_deref() {
            Some(s) => crate::duration::parse_go_duration(s),
            None => Ok(DEFAULT_MAX_RESTART_TIME),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ip_forms() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(parse_peer_ip("10.0.0.1"), Ok((v4, None)));
        assert_eq!(parse_peer_ip("10.0.0.1:1179"), Ok((v4, Some(1179))));
        assert_eq!(parse_peer_ip("fd00::1"), Ok((v6, None)));
        assert_eq!(parse_peer_ip("[fd00::1]:1179"), Ok((v6, Some(1179))));
        for bad in [
            "",
            "10.0.0.1:",
            "10.0.0.1:0",
            "10.0.0.1:70000",
            "[fd00::1]",
            "host:179",
        ] {
            assert!(parse_peer_ip(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn node_override_wins_field_by_field() {
        let global = BgpConfigurationSpec::default().with_defaults();
        let node = BgpConfigurationSpec {
            as_number: Some(AsNumber(65001)),
            ..Default::default()
        };
        let m = global.merged_with(&node);
        assert_eq!(m.as_number, Some(AsNumber(65001)));
        assert_eq!(m.listen_port, Some(179));
        assert_eq!(m.node_to_node_mesh_enabled, Some(true));
    }
}
