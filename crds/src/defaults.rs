//! The default IP pools the node agent creates at start, from Calico's environment
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
//! The `CALICO_IPV6POOL_*` variables build an IPv6 pool the same way (blockSize 122,
//! natOutgoing false) when `CALICO_IPV6POOL_CIDR` is set.
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
/// Name of the IPv6 pool created from the environment.
pub const DEFAULT_IPV6_POOL_NAME: &str = "default-ipv6-ippool";
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
    build(&Family::V4, env)
}

/// Builds (and validates) the default IPv6 pool from `CALICO_IPV6POOL_*` values, when
/// `CALICO_IPV6POOL_CIDR` is set (`None` otherwise: tortie does not invent a ULA range).
/// Defaults: blockSize 122, VXLAN Never, natOutgoing false, nodeSelector `all()`.
pub fn default_ipv6_pool(
    env: &BTreeMap<String, String>,
) -> Option<Result<IpPool, ValidationErrors>> {
    env.get("CALICO_IPV6POOL_CIDR")
        .filter(|v| !v.trim().is_empty())
        .map(|_| build(&Family::V6, env))
}

struct Family {
    prefix: &'static str,
    name: &'static str,
    fallback_cidr: &'static str,
    block_size: u8,
    nat_outgoing: bool,
    v6: bool,
}

impl Family {
    const V4: Family = Family {
        prefix: "CALICO_IPV4POOL_",
        name: DEFAULT_IPV4_POOL_NAME,
        fallback_cidr: DEFAULT_IPV4_POOL_CIDR,
        block_size: 26,
        nat_outgoing: true,
        v6: false,
    };
    const V6: Family = Family {
        prefix: "CALICO_IPV6POOL_",
        name: DEFAULT_IPV6_POOL_NAME,
        fallback_cidr: "",
        block_size: 122,
        nat_outgoing: false,
        v6: true,
    };
}

fn build(fam: &Family, env: &BTreeMap<String, String>) -> Result<IpPool, ValidationErrors> {
    let mut errs = ValidationErrors::default();
    let var = |suffix: &str| format!("{}{suffix}", fam.prefix);
    let get = |suffix: &str| env.get(&var(suffix)).filter(|v| !v.trim().is_empty());
    let cidr_text = get("CIDR")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| fam.fallback_cidr.to_string());
    let family_name = if fam.v6 { "IPv6" } else { "IPv4" };
    let cidr: IpNetwork = match cidr_text.parse::<IpNetwork>() {
        Ok(c) if c.is_ipv6() == fam.v6 => c,
        _ => {
            errs.push(
                var("CIDR"),
                format!("{cidr_text:?} is not an {family_name} CIDR"),
            );
            return Err(errs);
        }
    };
    let block_size = match get("BLOCK_SIZE") {
        None => fam.block_size,
        Some(v) => v.trim().parse::<u8>().unwrap_or_else(|_| {
            errs.push(var("BLOCK_SIZE"), format!("{v:?} is not a prefix length"));
            fam.block_size
        }),
    };
    let mut spec = IpPoolSpec::new(cidr);
    spec.block_size = Some(block_size);
    if !fam.v6 {
        spec.ipip_mode = encap(&var("IPIP"), get("IPIP"), &mut errs);
    }
    spec.vxlan_mode = encap(&var("VXLAN"), get("VXLAN"), &mut errs);
    spec.nat_outgoing = boolean(
        &var("NAT_OUTGOING"),
        get("NAT_OUTGOING"),
        fam.nat_outgoing,
        &mut errs,
    );
    spec.disable_bgp_export = boolean(
        &var("DISABLE_BGP_EXPORT"),
        get("DISABLE_BGP_EXPORT"),
        false,
        &mut errs,
    );
    if let Some(sel) = get("NODE_SELECTOR") {
        spec.node_selector = sel.trim().to_string();
    }
    let pool = IpPool {
        metadata: ObjectMeta {
            name: Some(fam.name.to_string()),
            ..Default::default()
        },
        spec,
    };
    // Report the spec's problems under the variable that caused them.
    if let Err(e) = pool.validate() {
        for fe in e.errors {
            let field = match fe.field.as_str() {
                "spec.cidr" => var("CIDR"),
                "spec.blockSize" => var("BLOCK_SIZE"),
                "spec.ipipMode" => var("IPIP"),
                "spec.vxlanMode" => var("VXLAN"),
                "spec.nodeSelector" => var("NODE_SELECTOR"),
                other => other.to_string(),
            };
            errs.push(field, fe.message);
        }
    }
    errs.into_result().map(|()| pool)
}
