//! The default IPv4 pool the node agent creates at start, from Calico's environment
//! variables.
//!
//! Pure: a function over a map of environment values (the caller reads the process
//! environment). Variables and fallbacks as Calico's node:
//!
//! | variable | default |
//! |---|---|
//! | `CALICO_IPV4POOL_CIDR` | `192.168.0.0/16` |
//! | `CALICO_IPV4POOL_BLOCK_SIZE` | 26 |
//! | `CALICO_IPV4POOL_IPIP` | `Never` (Always, CrossSubnet, Never; `Off` = Never) |
//! | `CALICO_IPV4POOL_VXLAN` | `Never` |
//! | `CALICO_IPV4POOL_NODE_SELECTOR` | `all()` |
//! | `CALICO_IPV4POOL_NAT_OUTGOING` | `true` |
//! | `CALICO_IPV4POOL_DISABLE_BGP_EXPORT` | `false` |
//!
//! Calico's manifests set `CALICO_IPV4POOL_IPIP=Always` explicitly; the unset value here
//! is the resource default (Never). Errors name the variable.

use std::collections::BTreeMap;

use ipnetwork::IpNetwork;
use kube::api::ObjectMeta;

use crate::validation::{Validate, ValidationErrors};
use crate::{EncapMode, IpPool, IpPoolSpec};

/// Name of the pool created from the environment.
pub const DEFAULT_IPV4_POOL_NAME: &str = "default-ipv4-ippool";
/// `CALICO_IPV4POOL_CIDR` when unset.
pub const DEFAULT_IPV4_POOL_CIDR: &str = "192.168.0.0/16";

fn encap(var: &str, v: Option<&String>, errs: &mut ValidationErrors) -> EncapMode {
    match v.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("never") | Some("off") | Some("false") => EncapMode::Never,
        Some("always") => EncapMode::Always,
        Some("crosssubnet") => EncapMode::CrossSubnet,
        Some(other) => {
            errs.push(
                var,
                format!("{other:?} is not Always, CrossSubnet or Never"),
            );
            EncapMode::Never
        }
    }
}

fn boolean(var: &str, v: Option<&String>, default: bool, errs: &mut ValidationErrors) -> bool {
    match v.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") => default,
        Some("true") | Some("1") | Some("yes") => true,
        Some("false") | Some("0") | Some("no") => false,
        Some(other) => {
            errs.push(var, format!("{other:?} is not true or false"));
            default
        }
    }
}

/// Builds (and validates) the default IPv4 pool from `CALICO_IPV4POOL_*` values.
pub fn default_ipv4_pool(env: &BTreeMap<String, String>) -> Result<IpPool, ValidationErrors> {
    let mut errs = ValidationErrors::default();
    let get = |k: &str| env.get(k).filter(|v| !v.trim().is_empty());
    let cidr_text = get("CALICO_IPV4POOL_CIDR")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| DEFAULT_IPV4_POOL_CIDR.to_string());
    let cidr: IpNetwork = match cidr_text.parse() {
        Ok(c @ IpNetwork::V4(_)) => c,
        _ => {
            errs.push(
                "CALICO_IPV4POOL_CIDR",
                format!("{cidr_text:?} is not an IPv4 CIDR"),
            );
            return Err(errs);
        }
    };
    let block_size = match get("CALICO_IPV4POOL_BLOCK_SIZE") {
        None => 26,
        Some(v) => v.trim().parse::<u8>().unwrap_or_else(|_| {
            errs.push(
                "CALICO_IPV4POOL_BLOCK_SIZE",
                format!("{v:?} is not a prefix length"),
            );
            26
        }),
    };
    let mut spec = IpPoolSpec::new(cidr);
    spec.block_size = Some(block_size);
    spec.ipip_mode = encap(
        "CALICO_IPV4POOL_IPIP",
        get("CALICO_IPV4POOL_IPIP"),
        &mut errs,
    );
    spec.vxlan_mode = encap(
        "CALICO_IPV4POOL_VXLAN",
        get("CALICO_IPV4POOL_VXLAN"),
        &mut errs,
    );
    spec.nat_outgoing = boolean(
        "CALICO_IPV4POOL_NAT_OUTGOING",
        get("CALICO_IPV4POOL_NAT_OUTGOING"),
        true,
        &mut errs,
    );
    spec.disable_bgp_export = boolean(
        "CALICO_IPV4POOL_DISABLE_BGP_EXPORT",
        get("CALICO_IPV4POOL_DISABLE_BGP_EXPORT"),
        false,
        &mut errs,
    );
    if let Some(sel) = get("CALICO_IPV4POOL_NODE_SELECTOR") {
        spec.node_selector = sel.trim().to_string();
    }
    let pool = IpPool {
        metadata: ObjectMeta {
            name: Some(DEFAULT_IPV4_POOL_NAME.to_string()),
            ..Default::default()
        },
        spec,
    };
    // Report the spec's problems under the variable that caused them.
    if let Err(e) = pool.validate() {
        for fe in e.errors {
            let var = match fe.field.as_str() {
                "spec.cidr" => "CALICO_IPV4POOL_CIDR",
                "spec.blockSize" => "CALICO_IPV4POOL_BLOCK_SIZE",
                "spec.ipipMode" => "CALICO_IPV4POOL_IPIP",
                "spec.vxlanMode" => "CALICO_IPV4POOL_VXLAN",
                "spec.nodeSelector" => "CALICO_IPV4POOL_NODE_SELECTOR",
                other => other,
            };
            errs.push(var, fe.message);
        }
    }
    errs.into_result().map(|()| pool)
}
