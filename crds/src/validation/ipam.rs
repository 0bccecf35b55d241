//! Validation of IPAMBlock, BlockAffinity, IPAMHandle, IPAMConfig and WorkloadEndpoint.
//!
//! Pure. Structural consistency of blocks (slots, free list, attribute indexes), names
//! and addresses of endpoints.

use std::collections::BTreeSet;

use ipnetwork::IpNetwork;

use super::{Validate, ValidationErrors, check_masked, check_name, is_mac};
use crate::ipam::{DEFAULT_IPAM_CONFIG, HOST_AFFINITY_PREFIX};
use crate::{BlockAffinity, IpamBlock, IpamConfig, IpamHandle, WorkloadEndpoint};

/// Linux IFNAMSIZ - 1.
const MAX_IFNAME: usize = 15;

impl Validate for IpamBlock {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        check_name(&self.metadata, &mut errs);
        let s = &self.spec;
        check_masked("spec.cidr", &s.cidr, &mut errs);
        let host_bits = match s.cidr {
            IpNetwork::V4(n) => 32 - u32::from(n.prefix()),
            IpNetwork::V6(n) => 128 - u32::from(n.prefix()),
        };
        if host_bits > 12 {
            errs.push(
                "spec.cidr",
                format!("/{} is too large for a block", s.cidr.prefix()),
            );
        }
        let size = 1usize << host_bits.min(12);
        if s.allocations.len() != size {
            errs.push(
                "spec.allocations",
                format!(
                    "has {} slots, the block has {size} addresses",
                    s.allocations.len()
                ),
            );
        }
        for (i, a) in s.allocations.iter().enumerate() {
            if let Some(idx) = a
                && *idx >= s.attributes.len()
            {
                errs.push(
                    format!("spec.allocations[{i}]"),
                    format!(
                        "points at attribute {idx}, there are {}",
                        s.attributes.len()
                    ),
                );
            }
        }
        let mut seen = BTreeSet::new();
        for (i, &o) in s.unallocated.iter().enumerate() {
            let field = format!("spec.unallocated[{i}]");
            if o >= size {
                errs.push(field, format!("ordinal {o} is outside the block"));
            } else if !seen.insert(o) {
                errs.push(field, format!("ordinal {o} is listed twice"));
            } else if s.allocations.get(o).is_some_and(Option::is_some) {
                errs.push(field, format!("ordinal {o} is free and allocated at once"));
            }
        }
        for key in s.sequence_number_for_allocation.keys() {
            if key.parse::<usize>().map_or(true, |o| o >= size) {
                errs.push(
                    "spec.sequenceNumberForAllocation",
                    format!("key {key:?} is not an ordinal of the block"),
                );
            }
        }
        if let Some(a) = &s.affinity
            && a.strip_prefix(HOST_AFFINITY_PREFIX)
                .is_none_or(str::is_empty)
        {
            errs.push("spec.affinity", format!("{a:?} is not host:<node>"));
        }
        errs.into_result()
    }
}

impl Validate for BlockAffinity {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        check_name(&self.metadata, &mut errs);
        if self.spec.node.is_empty() {
            errs.push("spec.node", "is required");
        }
        check_masked("spec.cidr", &self.spec.cidr, &mut errs);
        errs.into_result()
    }
}

impl Validate for IpamHandle {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        check_name(&self.metadata, &mut errs);
        if self.spec.handle_id.is_empty() {
            errs.push("spec.handleID", "is required");
        }
        for key in self.spec.block.keys() {
            if !key.contains('/') || key.parse::<IpNetwork>().is_err() {
                errs.push("spec.block", format!("key {key:?} is not a block CIDR"));
            }
        }
        errs.into_result()
    }
}

impl Validate for IpamConfig {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        check_name(&self.metadata, &mut errs);
        if let Some(n) = self.metadata.name.as_deref()
            && n != DEFAULT_IPAM_CONFIG
        {
            errs.push("metadata.name", format!("{n:?} must be `default`"));
        }
        errs.into_result()
    }
}

impl Validate for WorkloadEndpoint {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        check_name(&self.metadata, &mut errs);
        if self.metadata.namespace.as_deref().is_none_or(str::is_empty) {
            errs.push("metadata.namespace", "is required (the pod's namespace)");
        }
        let s = &self.spec;
        for (field, v) in [("spec.node", &s.node), ("spec.pod", &s.pod)] {
            if v.is_empty() {
                errs.push(field, "is required");
            }
        }
        let ifname = &s.interface_name;
        if ifname.is_empty() || ifname.len() > MAX_IFNAME || ifname.contains(['/', ' ']) {
            errs.push(
                "spec.interfaceName",
                format!("{ifname:?} is not an interface name (1..=15 chars, no / or space)"),
            );
        }
        for (i, n) in s.ip_networks.iter().enumerate() {
            let full = if n.is_ipv4() { 32 } else { 128 };
            if n.prefix() != full {
                errs.push(
                    format!("spec.ipNetworks[{i}]"),
                    format!("{n} must be a single address (/{full})"),
                );
            }
        }
        if let Some(mac) = &s.mac
            && !is_mac(mac)
        {
            errs.push("spec.mac", format!("{mac:?} is not a MAC address"));
        }
        let mut names = BTreeSet::new();
        for (i, p) in s.ports.iter().enumerate() {
            if p.name.is_empty() {
                errs.push(format!("spec.ports[{i}].name"), "is required");
            } else if !names.insert((p.name.as_str(), p.protocol)) {
                errs.push(
                    format!("spec.ports[{i}].name"),
                    format!("{:?} is listed twice", p.name),
                );
            }
            if p.port == 0 {
                errs.push(format!("spec.ports[{i}].port"), "must be 1..=65535");
            }
        }
        errs.into_result()
    }
}
