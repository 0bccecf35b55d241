//! WorkloadEndpoint: one pod interface as the CNI plugin created it.
//!
//! Pure. Owns the WorkloadEndpoint type (namespaced, like the pod) and Calico's name
//! scheme for it. Labels are the object's metadata labels; on the Kubernetes datastore
//! the pod's own labels and ports take precedence.

use std::collections::BTreeMap;

use ipnetwork::IpNetwork;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Transport protocol of a named port.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// TCP (the default, as in Kubernetes).
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// A named container port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPort {
    /// The port's name (what policies refer to).
    pub name: String,
    /// Transport protocol (default TCP).
    #[serde(default)]
    pub protocol: Protocol,
    /// Port number.
    pub port: u16,
}

/// `spec` of a WorkloadEndpoint (`crd.tortie.dev/v1`, namespaced like its pod).
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "crd.tortie.dev",
    version = "v1",
    kind = "WorkloadEndpoint",
    plural = "workloadendpoints",
    namespaced,
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEndpointSpec {
    /// Orchestrator (`k8s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator: Option<String>,
    /// Node the pod runs on.
    pub node: String,
    /// Pod name.
    pub pod: String,
    /// Container (sandbox) ID given by the runtime.
    #[serde(
        default,
        rename = "containerID",
        skip_serializing_if = "String::is_empty"
    )]
    pub container_id: String,
    /// Interface inside the pod (`eth0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Host end of the veth (`cali` + 11 hex chars).
    pub interface_name: String,
    /// The pod's addresses (`/32`, `/128`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    #[serde(with = "crate::serde_net::vec_cidr")]
    pub ip_networks: Vec<IpNetwork>,
    /// MAC address of the pod end, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Named container ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<EndpointPort>,
    /// Profiles applied (`kns.<namespace>`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
}

impl WorkloadEndpoint {
    /// Calico's name: `<node>-<orchestrator>-<pod>-<endpoint>`, each part with `-`
    /// doubled (`node-1`, pod `web-0` → `node--1-k8s-web--0-eth0`).
    pub fn name_for(node: &str, orchestrator: &str, pod: &str, endpoint: &str) -> String {
        [node, orchestrator, pod, endpoint]
            .iter()
            .map(|p| p.replace('-', "--"))
            .collect::<Vec<_>>()
            .join("-")
    }

    /// The endpoint's labels (its metadata labels), empty when it has none.
    pub fn labels_map(&self) -> BTreeMap<String, String> {
        self.metadata.labels.clone().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calico_name_scheme() {
        assert_eq!(
            WorkloadEndpoint::name_for("node-1", "k8s", "web-0", "eth0"),
            "node--1-k8s-web--0-eth0"
        );
    }
}
