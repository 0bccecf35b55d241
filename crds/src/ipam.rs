//! IPAM bookkeeping resources: IPAMBlock, BlockAffinity, IPAMHandle, IPAMConfig.
//!
//! Pure. Owns the types exactly as Calico stores them (allocations as ordinal → index into
//! `attributes`, the FIFO of free ordinals, per-ordinal sequence numbers, soft delete) and
//! Calico's name schemes (`10-244-1-0-26`, `<node>-<cidrname>`). The allocation algorithm
//! itself belongs to the `ipam` crate.

use std::collections::BTreeMap;

use ipnetwork::IpNetwork;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Prefix of an IPAMBlock's `affinity` naming a host.
pub const HOST_AFFINITY_PREFIX: &str = "host:";

/// Name of the single IPAMConfig.
pub const DEFAULT_IPAM_CONFIG: &str = "default";

/// Calico's name for a CIDR: `.`, `:` and `/` become `-` (`10.244.1.0/26` → `10-244-1-0-26`).
pub fn cidr_name(cidr: &IpNetwork) -> String {
    cidr.to_string().replace(['.', ':', '/'], "-")
}

/// The secondary attributes of an allocation (who holds it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AllocationSecondary {
    /// Pod namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Node the allocation was made for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Pod name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// When it was made (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Kind of non-pod allocation (`ipipTunnelAddress`, `vxlanTunnelAddress`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// One entry of `attributes`: the handle an allocation belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AllocationAttribute {
    /// Handle ID (`k8s-pod-network.<containerID>`, `ipip-tunnel-addr-<node>`, ...).
    /// Stored as Calico does (`handle_id`); `handleID` is accepted on input.
    #[serde(
        default,
        rename = "handle_id",
        alias = "handleID",
        skip_serializing_if = "Option::is_none"
    )]
    pub handle_id: Option<String>,
    /// Who holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary: Option<AllocationSecondary>,
}

/// `spec` of an IPAMBlock (`crd.tortie.dev/v1`, cluster-scoped, named [`IpamBlock::name_for`]).
#[derive(CustomResource, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "crd.tortie.dev",
    version = "v1",
    kind = "IPAMBlock",
    root = "IpamBlock",
    plural = "ipamblocks",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.cidr == oldSelf.cidr", "message": "spec.cidr is immutable"}
]))]
pub struct IpamBlockSpec {
    /// The block's range.
    #[serde(with = "crate::serde_net::cidr")]
    #[schemars(with = "String")]
    pub cidr: IpNetwork,
    /// `host:<node>` when the block is affine to a node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<String>,
    /// Borrowing from this block is not allowed.
    #[serde(default)]
    pub strict_affinity: bool,
    /// One slot per ordinal: index into `attributes`, or null when free.
    #[serde(default)]
    pub allocations: Vec<Option<usize>>,
    /// Free ordinals, FIFO: take from the head, return to the tail.
    #[serde(default)]
    pub unallocated: Vec<usize>,
    /// Handles and owners of allocations.
    #[serde(default)]
    pub attributes: Vec<AllocationAttribute>,
    /// Bumped on every change of the block.
    #[serde(default)]
    pub sequence_number: u64,
    /// Sequence number at which each allocated ordinal (as a string key) was assigned;
    /// a release carrying another number is stale and fails.
    #[serde(default)]
    pub sequence_number_for_allocation: BTreeMap<String, u64>,
    /// Soft delete: no new allocations, about to be removed.
    #[serde(default)]
    pub deleted: bool,
}

impl IpamBlockSpec {
    /// An empty block over `cidr` (every ordinal free, in order), affine to `node` if given.
    pub fn empty(cidr: IpNetwork, node: Option<&str>) -> Self {
        let size = block_size_of(&cidr);
        IpamBlockSpec {
            cidr,
            affinity: node.map(|n| format!("{HOST_AFFINITY_PREFIX}{n}")),
            strict_affinity: false,
            allocations: vec![None; size],
            unallocated: (0..size).collect(),
            attributes: Vec::new(),
            sequence_number: 0,
            sequence_number_for_allocation: BTreeMap::new(),
            deleted: false,
        }
    }

    /// The node named by `affinity: host:<node>`, if any.
    pub fn affinity_node(&self) -> Option<&str> {
        self.affinity
            .as_deref()
            .and_then(|a| a.strip_prefix(HOST_AFFINITY_PREFIX))
    }
}

/// Number of addresses of a block CIDR (capped: blocks are at most 2^12 addresses).
fn block_size_of(cidr: &IpNetwork) -> usize {
    let host_bits = match cidr {
        IpNetwork::V4(n) => 32 - u32::from(n.prefix()),
        IpNetwork::V6(n) => 128 - u32::from(n.prefix()),
    };
    1usize << host_bits.min(12)
}

impl IpamBlock {
    /// Calico's object name for a block: `10.244.1.0/26` → `10-244-1-0-26`.
    pub fn name_for(cidr: &IpNetwork) -> String {
        cidr_name(cidr)
    }
}

/// Life cycle of a block affinity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AffinityState {
    /// Claimed, block not yet created: not routed.
    #[default]
    Pending,
    /// The block is this node's: routed and advertised.
    Confirmed,
    /// Being released.
    PendingDeletion,
}

/// `spec` of a BlockAffinity (`crd.tortie.dev/v1`, cluster-scoped, named
/// [`BlockAffinity::name_for`]).
#[derive(CustomResource, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "crd.tortie.dev",
    version = "v1",
    kind = "BlockAffinity",
    plural = "blockaffinities",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.cidr == oldSelf.cidr", "message": "spec.cidr is immutable"},
    {"rule": "self.node == oldSelf.node", "message": "spec.node is immutable"}
]))]
pub struct BlockAffinitySpec {
    /// pending → confirmed → pendingDeletion.
    #[serde(default)]
    pub state: AffinityState,
    /// The node.
    pub node: String,
    /// The block.
    #[serde(with = "crate::serde_net::cidr")]
    #[schemars(with = "String")]
    pub cidr: IpNetwork,
    /// Soft delete.
    #[serde(default)]
    pub deleted: bool,
}

impl BlockAffinity {
    /// Calico's name: `<node>-<cidrname>` (`node1-10-244-1-0-26`).
    pub fn name_for(node: &str, cidr: &IpNetwork) -> String {
        format!("{node}-{}", cidr_name(cidr))
    }
}

/// `spec` of an IPAMHandle (`crd.tortie.dev/v1`, cluster-scoped).
#[derive(
    CustomResource, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "crd.tortie.dev",
    version = "v1",
    kind = "IPAMHandle",
    root = "IpamHandle",
    plural = "ipamhandles",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct IpamHandleSpec {
    /// The handle (`k8s-pod-network.<containerID>`).
    #[serde(rename = "handleID")]
    pub handle_id: String,
    /// Block CIDR (string form) → number of addresses held in it.
    #[serde(default)]
    pub block: BTreeMap<String, usize>,
    /// Soft delete.
    #[serde(default)]
    pub deleted: bool,
}

impl IpamHandle {
    /// Object name of a handle: the ID lowercased (object names are DNS subdomains).
    pub fn name_for(handle_id: &str) -> String {
        handle_id.to_ascii_lowercase()
    }
}

/// `spec` of the IPAMConfig (`crd.tortie.dev/v1`, cluster-scoped, one object `default`).
#[derive(CustomResource, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "crd.tortie.dev",
    version = "v1",
    kind = "IPAMConfig",
    root = "IpamConfig",
    plural = "ipamconfigs",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct IpamConfigSpec {
    /// No borrowing from other nodes' blocks (default false).
    #[serde(default)]
    pub strict_affinity: bool,
    /// Most blocks one node may claim; 0 = no limit (the default).
    #[serde(default)]
    pub max_blocks_per_host: u32,
    /// Claim new blocks when the node's are full (default true).
    #[serde(default = "yes")]
    pub auto_allocate_blocks: bool,
}

fn yes() -> bool {
    true
}

impl Default for IpamConfigSpec {
    fn default() -> Self {
        IpamConfigSpec {
            strict_affinity: false,
            max_blocks_per_host: 0,
            auto_allocate_blocks: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calico_names() {
        let c: IpNetwork = "10.244.1.0/26".parse().unwrap();
        assert_eq!(IpamBlock::name_for(&c), "10-244-1-0-26");
        assert_eq!(BlockAffinity::name_for("node1", &c), "node1-10-244-1-0-26");
        let v6: IpNetwork = "fd00:1::/122".parse().unwrap();
        assert_eq!(IpamBlock::name_for(&v6), "fd00-1---122");
    }

    #[test]
    fn empty_block_has_every_ordinal_free_in_order() {
        let c: IpNetwork = "10.244.1.0/26".parse().unwrap();
        let b = IpamBlockSpec::empty(c, Some("n1"));
        assert_eq!(b.allocations.len(), 64);
        assert_eq!(b.unallocated, (0..64).collect::<Vec<_>>());
        assert_eq!(b.affinity_node(), Some("n1"));
    }

    #[test]
    fn block_yaml_matches_calico_shape() {
        let y = r#"
cidr: 10.244.1.0/30
affinity: host:n1
allocations: [0, null, null, null]
unallocated: [1, 2, 3]
attributes:
  - handle_id: k8s-pod-network.abc
    secondary: {namespace: default, node: n1, pod: web, timestamp: "2024-01-01T00:00:00Z"}
sequenceNumber: 7
sequenceNumberForAllocation: {"0": 7}
"#;
        let b: IpamBlockSpec = serde_yaml::from_str(y).unwrap();
        assert_eq!(b.allocations, vec![Some(0), None, None, None]);
        assert_eq!(
            b.attributes[0].handle_id.as_deref(),
            Some("k8s-pod-network.abc")
        );
        let back = serde_json::to_value(&b).unwrap();
        assert_eq!(back["attributes"][0]["handle_id"], "k8s-pod-network.abc");
        assert_eq!(back["sequenceNumberForAllocation"]["0"], 7);
        assert!(!b.deleted && !b.strict_affinity);
    }
}
