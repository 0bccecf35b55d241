//! The IPPool resource: a range pods (and tunnel addresses) are assigned from.
//!
//! Pure. Owns the IPPool type and its Calico defaults (blockSize 26/122 by family,
//! encapsulation Never, nodeSelector `all()`, allowedUses [Workload, Tunnel]). Validation
//! lives in `crate::validation`; the default pool built from `CALICO_IPV4POOL_*` values
//! lives in `crate::defaults`.

use ipnetwork::IpNetwork;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Encapsulation mode of a pool, for IPIP and for VXLAN alike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum EncapMode {
    /// Always encapsulate traffic to remote blocks of this pool.
    Always,
    /// Encapsulate only towards nodes outside this node's subnet.
    CrossSubnet,
    /// Never encapsulate (the default).
    #[default]
    Never,
}

impl EncapMode {
    /// True unless `Never`.
    pub fn enabled(self) -> bool {
        self != EncapMode::Never
    }
}

/// What addresses of a pool may be used for.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum AllowedUse {
    /// Pod addresses.
    Workload,
    /// Tunnel device addresses (tunl0, vxlan.calico).
    Tunnel,
    /// Service LoadBalancer addresses.
    LoadBalancer,
}

/// `spec` of an IPPool (`crd.tortie.dev/v1`, cluster-scoped), fields as Calico's
/// `projectcalico.org/v3` IPPool.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "crd.tortie.dev",
    version = "v1",
    kind = "IPPool",
    root = "IpPool",
    plural = "ippools",
    derive = "PartialEq",
    printcolumn(name = "CIDR", type_ = "string", json_path = ".spec.cidr"),
    printcolumn(name = "Disabled", type_ = "boolean", json_path = ".spec.disabled")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.cidr == oldSelf.cidr", "message": "spec.cidr is immutable"},
    {"rule": "(has(self.blockSize) ? self.blockSize : (self.cidr.contains(':') ? 122 : 26)) == (has(oldSelf.blockSize) ? oldSelf.blockSize : (oldSelf.cidr.contains(':') ? 122 : 26))",
     "message": "spec.blockSize is immutable"},
    {"rule": "!(has(self.ipipMode) && self.ipipMode != 'Never' && has(self.vxlanMode) && self.vxlanMode != 'Never')",
     "message": "spec.ipipMode: IPIP and VXLAN cannot both be enabled"},
    {"rule": "!(self.cidr.contains(':') && has(self.ipipMode) && self.ipipMode != 'Never')",
     "message": "spec.ipipMode: IPIP is not supported on IPv6 pools"},
    {"rule": "!has(self.blockSize) || (self.cidr.contains(':') ? (self.blockSize >= 116 && self.blockSize <= 128) : (self.blockSize >= 20 && self.blockSize <= 32))",
     "message": "spec.blockSize: must be 20..=32 for IPv4 and 116..=128 for IPv6"},
    {"rule": "!(has(self.allowedUses) && 'LoadBalancer' in self.allowedUses && size(self.allowedUses) > 1)",
     "message": "spec.allowedUses: LoadBalancer cannot be combined with Workload or Tunnel"},
    {"rule": "!(has(self.allowedUses) && 'LoadBalancer' in self.allowedUses && ((has(self.ipipMode) && self.ipipMode != 'Never') || (has(self.vxlanMode) && self.vxlanMode != 'Never')))",
     "message": "spec.allowedUses: a LoadBalancer pool cannot use IPIP or VXLAN"}
]))]
pub struct IpPoolSpec {
    /// The pool's range, masked (`10.244.0.0/16`). Immutable.
    #[serde(with = "crate::serde_net::cidr")]
    #[schemars(with = "String")]
    pub cidr: IpNetwork,
    /// Prefix length of the blocks handed to nodes (default 26 for IPv4, 122 for IPv6).
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u8>,
    /// IPIP encapsulation (IPv4 only).
    #[serde(default, rename = "ipipMode")]
    pub ipip_mode: EncapMode,
    /// VXLAN encapsulation.
    #[serde(default, rename = "vxlanMode")]
    pub vxlan_mode: EncapMode,
    /// Masquerade traffic from pods of this pool to destinations outside all pools.
    #[serde(default)]
    pub nat_outgoing: bool,
    /// No new assignments from this pool; existing addresses and routes stay.
    #[serde(default)]
    pub disabled: bool,
    /// Do not advertise this pool's blocks over BGP.
    #[serde(default, rename = "disableBGPExport")]
    pub disable_bgp_export: bool,
    /// Nodes that may take blocks from this pool (selector language; default `all()`).
    #[serde(default = "all_selector")]
    pub node_selector: String,
    /// What the addresses may be used for (default Workload and Tunnel).
    #[serde(default = "default_allowed_uses")]
    pub allowed_uses: Vec<AllowedUse>,
}

pub(crate) fn all_selector() -> String {
    "all()".to_string()
}

fn default_allowed_uses() -> Vec<AllowedUse> {
    vec![AllowedUse::Workload, AllowedUse::Tunnel]
}

/// Calico's default block size for a pool of this family.
pub fn default_block_size(cidr: &IpNetwork) -> u8 {
    match cidr {
        IpNetwork::V4(_) => 26,
        IpNetwork::V6(_) => 122,
    }
}

impl IpPoolSpec {
    /// A pool over `cidr` with every other field at Calico's default.
    pub fn new(cidr: IpNetwork) -> Self {
        IpPoolSpec {
            cidr,
            block_size: None,
            ipip_mode: EncapMode::Never,
            vxlan_mode: EncapMode::Never,
            nat_outgoing: false,
            disabled: false,
            disable_bgp_export: false,
            node_selector: all_selector(),
            allowed_uses: default_allowed_uses(),
        }
    }

    /// Fills the defaults that depend on other fields (blockSize by family) and those an
    /// empty value stands for (nodeSelector, allowedUses). Idempotent.
    pub fn with_defaults(mut self) -> Self {
        self.block_size = Some(self.block_size());
        if self.node_selector.trim().is_empty() {
            self.node_selector = all_selector();
        }
        if self.allowed_uses.is_empty() {
            self.allowed_uses = default_allowed_uses();
        }
        self
    }

    /// The effective block size (the configured one, else the family default).
    pub fn block_size(&self) -> u8 {
        self.block_size
            .unwrap_or_else(|| default_block_size(&self.cidr))
    }

    /// True when the pool may hand out addresses for `use_`.
    pub fn allows(&self, use_: AllowedUse) -> bool {
        if self.allowed_uses.is_empty() {
            return default_allowed_uses().contains(&use_);
        }
        self.allowed_uses.contains(&use_)
    }
}

impl IpPool {
    /// The pool with its spec defaulted (see [`IpPoolSpec::with_defaults`]).
    pub fn with_defaults(mut self) -> Self {
        self.spec = self.spec.with_defaults();
        self
    }
}
