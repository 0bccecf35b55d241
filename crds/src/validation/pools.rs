//! IPPool validation: the object alone, against the other pools, and old → new.
//!
//! Pure. The same rules the IPPool CRD carries as CEL (encapsulation exclusivity, IPIP on
//! IPv6, blockSize range, immutability), plus what CEL cannot say (masking, the block
//! fitting inside the pool, selector syntax, overlap with other pools).

use ipnetwork::IpNetwork;

use super::{Validate, ValidationErrors, check_masked, check_name, check_selector};
use crate::{AllowedUse, IpPool, IpPoolSpec};

const LINK_LOCAL_V4: &str = "169.254.0.0/16";
const LINK_LOCAL_V6: &str = "fe80::/10";

fn overlaps(a: &IpNetwork, b: &IpNetwork) -> bool {
    match (a, b) {
        (IpNetwork::V4(x), IpNetwork::V4(y)) => x.contains(y.network()) || y.contains(x.network()),
        (IpNetwork::V6(x), IpNetwork::V6(y)) => x.contains(y.network()) || y.contains(x.network()),
        _ => false,
    }
}

impl IpPoolSpec {
    /// Checks the spec alone; field paths start with `spec.`.
    pub fn validate_into(&self, errs: &mut ValidationErrors) {
        let cidr = &self.cidr;
        check_masked("spec.cidr", cidr, errs);
        let link_local = match cidr {
            IpNetwork::V4(_) => LINK_LOCAL_V4,
            IpNetwork::V6(_) => LINK_LOCAL_V6,
        };
        if link_local.parse().is_ok_and(|ll| overlaps(cidr, &ll)) {
            errs.push(
                "spec.cidr",
                format!("{cidr} overlaps the link-local range {link_local}"),
            );
        }
        if let Some(bs) = self.block_size {
            let (lo, hi, family) = match cidr {
                IpNetwork::V4(_) => (20, 32, "IPv4"),
                IpNetwork::V6(_) => (116, 128, "IPv6"),
            };
            if !(lo..=hi).contains(&bs) {
                errs.push(
                    "spec.blockSize",
                    format!("{bs} is out of range: must be {lo}..={hi} for {family}"),
                );
            } else if bs < cidr.prefix() {
                errs.push(
                    "spec.blockSize",
                    format!(
                        "/{bs} blocks do not fit in the pool {cidr} (must be at least /{})",
                        cidr.prefix()
                    ),
                );
            }
        } else if self.block_size() < cidr.prefix() {
            errs.push(
                "spec.blockSize",
                format!(
                    "the default /{} blocks do not fit in the pool {cidr}: set a larger blockSize",
                    self.block_size()
                ),
            );
        }
        if self.ipip_mode.enabled() && self.vxlan_mode.enabled() {
            errs.push("spec.ipipMode", "IPIP and VXLAN cannot both be enabled");
        }
        if self.ipip_mode.enabled() && cidr.is_ipv6() {
            errs.push("spec.ipipMode", "IPIP is not supported on IPv6 pools");
        }
        check_selector("spec.nodeSelector", &self.node_selector, errs);
        for (i, u) in self.allowed_uses.iter().enumerate() {
            if self.allowed_uses[..i].contains(u) {
                errs.push(
                    format!("spec.allowedUses[{i}]"),
                    format!("{u:?} is listed twice"),
                );
            }
        }
        if self.allowed_uses.contains(&AllowedUse::LoadBalancer) && self.allowed_uses.len() > 1 {
            errs.push(
                "spec.allowedUses",
                "LoadBalancer cannot be combined with Workload or Tunnel",
            );
        }
        if self.allowed_uses.contains(&AllowedUse::LoadBalancer)
            && (self.ipip_mode.enabled() || self.vxlan_mode.enabled())
        {
            errs.push(
                "spec.allowedUses",
                "a LoadBalancer pool cannot use IPIP or VXLAN",
            );
        }
    }
}

impl Validate for IpPool {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        check_name(&self.metadata, &mut errs);
        self.spec.validate_into(&mut errs);
        errs.into_result()
    }
}

impl Validate for IpPoolSpec {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        self.validate_into(&mut errs);
        errs.into_result()
    }
}

/// `new` must not overlap any pool of `existing` (a pool of the same name is the one
/// being replaced and is skipped).
pub fn validate_pool_overlap(new: &IpPool, existing: &[IpPool]) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    for other in existing {
        if other.metadata.name.is_some() && other.metadata.name == new.metadata.name {
            continue;
        }
        if overlaps(&new.spec.cidr, &other.spec.cidr) {
            errs.push(
                "spec.cidr",
                format!(
                    "{} overlaps IPPool {} ({})",
                    new.spec.cidr,
                    other.metadata.name.as_deref().unwrap_or("<unnamed>"),
                    other.spec.cidr
                ),
            );
        }
    }
    errs.into_result()
}

/// An update may not change `cidr` or the effective `blockSize` (allocated blocks and
/// routes depend on both); everything else of `new` is validated as usual.
pub fn validate_pool_update(old: &IpPool, new: &IpPool) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    if old.spec.cidr != new.spec.cidr {
        errs.push(
            "spec.cidr",
            format!("is immutable ({} → {})", old.spec.cidr, new.spec.cidr),
        );
    }
    if old.spec.block_size() != new.spec.block_size() {
        errs.push(
            "spec.blockSize",
            format!(
                "is immutable ({} → {})",
                old.spec.block_size(),
                new.spec.block_size()
            ),
        );
    }
    if let Err(e) = new.validate() {
        errs.extend(e);
    }
    errs.into_result()
}
