//! Validation of BGPConfiguration, BGPPeer and TortieNode.
//!
//! Pure. Peer scope consistency (`node` xor `nodeSelector`, `peerIP` xor `peerSelector`),
//! address and AS checks, per-node override restrictions, community syntax.

use std::net::IpAddr;

use super::{
    Validate, ValidationErrors, check_as, check_duration, check_masked, check_name, check_selector,
    is_mac,
};
use crate::bgp::{BgpPassword, parse_peer_ip};
use crate::{BgpConfiguration, BgpPeer, ServiceCidr, TortieNode};

const LOG_LEVELS: [&str; 5] = ["debug", "info", "warning", "error", "fatal"];

fn check_password(field: &str, p: &BgpPassword, errs: &mut ValidationErrors) {
    match &p.secret_key_ref {
        None => errs.push(field, "secretKeyRef is required"),
        Some(r) => {
            if r.name.is_empty() {
                errs.push(format!("{field}.secretKeyRef.name"), "is required");
            }
            if r.key.is_empty() {
                errs.push(format!("{field}.secretKeyRef.key"), "is required");
            }
        }
    }
}

fn check_cidr_list(field: &str, list: &Option<Vec<ServiceCidr>>, errs: &mut ValidationErrors) {
    for (i, c) in list.iter().flatten().enumerate() {
        check_masked(&format!("{field}[{i}].cidr"), &c.cidr, errs);
    }
}

/// `aa:nn` with 16-bit halves (RFC 1997) or `aa:nn:mm` with 32-bit parts (RFC 8092).
pub fn is_community(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    match parts.len() {
        2 => parts.iter().all(|p| p.parse::<u16>().is_ok()),
        3 => parts.iter().all(|p| p.parse::<u32>().is_ok()),
        _ => false,
    }
}

impl Validate for BgpConfiguration {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        check_name(&self.metadata, &mut errs);
        let name = self.metadata.name.as_deref().unwrap_or_default();
        let is_default = name == crate::bgp::DEFAULT_BGP_CONFIGURATION;
        let node_override = name.strip_prefix("node.").filter(|n| !n.is_empty());
        if !is_default && node_override.is_none() && !name.is_empty() {
            errs.push(
                "metadata.name",
                format!("{name:?} must be `default` or `node.<node name>`"),
            );
        }
        let s = &self.spec;
        if node_override.is_some() {
            let cluster_only = [
                (
                    "spec.nodeToNodeMeshEnabled",
                    s.node_to_node_mesh_enabled.is_some(),
                ),
                ("spec.asNumber", s.as_number.is_some()),
                ("spec.serviceClusterIPs", s.service_cluster_ips.is_some()),
                ("spec.nodeMeshPassword", s.node_mesh_password.is_some()),
                (
                    "spec.nodeMeshMaxRestartTime",
                    s.node_mesh_max_restart_time.is_some(),
                ),
            ];
            for (field, set) in cluster_only {
                if set {
                    errs.push(field, "may only be set on the `default` BGPConfiguration");
                }
            }
        }
        if s.node_to_node_mesh_enabled == Some(false) {
            if s.node_mesh_password.is_some() {
                errs.push(
                    "spec.nodeMeshPassword",
                    "cannot be set when nodeToNodeMeshEnabled is false",
                );
            }
            if s.node_mesh_max_restart_time.is_some() {
                errs.push(
                    "spec.nodeMeshMaxRestartTime",
                    "cannot be set when nodeToNodeMeshEnabled is false",
                );
            }
        }
        if let Some(a) = s.as_number {
            check_as("spec.asNumber", a, &mut errs);
        }
        if s.listen_port == Some(0) {
            errs.push("spec.listenPort", "must be 1..=65535");
        }
        if let Some(l) = &s.log_severity_screen
            && !LOG_LEVELS.contains(&l.to_ascii_lowercase().as_str())
        {
            errs.push(
                "spec.logSeverityScreen",
                format!("{l:?} is not one of Debug, Info, Warning, Error, Fatal"),
            );
        }
        check_cidr_list("spec.serviceClusterIPs", &s.service_cluster_ips, &mut errs);
        check_cidr_list(
            "spec.serviceExternalIPs",
            &s.service_external_ips,
            &mut errs,
        );
        check_cidr_list(
            "spec.serviceLoadBalancerIPs",
            &s.service_load_balancer_ips,
            &mut errs,
        );
        let names: Vec<&str> = s
            .communities
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        for (i, c) in s.communities.iter().flatten().enumerate() {
            if c.name.is_empty() {
                errs.push(format!("spec.communities[{i}].name"), "is required");
            }
            if !is_community(&c.value) {
                errs.push(
                    format!("spec.communities[{i}].value"),
                    format!("{:?} is not aa:nn or aa:nn:mm", c.value),
                );
            }
        }
        for (i, p) in s.prefix_advertisements.iter().flatten().enumerate() {
            check_masked(
                &format!("spec.prefixAdvertisements[{i}].cidr"),
                &p.cidr,
                &mut errs,
            );
            for (j, c) in p.communities.iter().enumerate() {
                if !names.contains(&c.as_str()) && !is_community(c) {
                    errs.push(
                        format!("spec.prefixAdvertisements[{i}].communities[{j}]"),
                        format!("{c:?} is neither a defined community name nor aa:nn[:mm]"),
                    );
                }
            }
        }
        if let Some(p) = &s.node_mesh_password {
            check_password("spec.nodeMeshPassword", p, &mut errs);
        }
        if let Some(t) = &s.node_mesh_max_restart_time {
            check_duration("spec.nodeMeshMaxRestartTime", t, &mut errs);
        }
        for (i, pat) in s.ignored_interfaces.iter().flatten().enumerate() {
            if pat.trim().is_empty() {
                errs.push(format!("spec.ignoredInterfaces[{i}]"), "must not be empty");
            }
        }
        errs.into_result()
    }
}

fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

impl Validate for BgpPeer {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        check_name(&self.metadata, &mut errs);
        let s = &self.spec;
        if set(&s.node).is_some() && set(&s.node_selector).is_some() {
            errs.push(
                "spec.nodeSelector",
                "node and nodeSelector are mutually exclusive",
            );
        }
        if let Some(sel) = set(&s.node_selector) {
            check_selector("spec.nodeSelector", sel, &mut errs);
        }
        let mut peer_family = None;
        match (set(&s.peer_ip), set(&s.peer_selector)) {
            (Some(_), Some(_)) => errs.push(
                "spec.peerSelector",
                "peerIP and peerSelector are mutually exclusive",
            ),
            (None, None) => errs.push("spec.peerIP", "one of peerIP or peerSelector is required"),
            (Some(ip), None) => {
                match parse_peer_ip(ip) {
                    Ok((addr, _)) => peer_family = Some(addr.is_ipv4()),
                    Err(e) => errs.push("spec.peerIP", e.to_string()),
                }
                if s.as_number.is_none() {
                    errs.push("spec.asNumber", "required when peerIP is set");
                }
            }
            (None, Some(sel)) => check_selector("spec.peerSelector", sel, &mut errs),
        }
        if set(&s.peer_selector).is_some() && s.as_number.is_some() {
            errs.push(
                "spec.asNumber",
                "must be empty with peerSelector (the selected nodes' AS is used)",
            );
        }
        if let Some(a) = s.as_number {
            check_as("spec.asNumber", a, &mut errs);
        }
        if let Some(a) = s.local_as_number {
            check_as("spec.localASNumber", a, &mut errs);
        }
        if let Some(p) = &s.password {
            check_password("spec.password", p, &mut errs);
        }
        if let Some(t) = &s.keepalive_time {
            check_duration("spec.keepaliveTime", t, &mut errs);
        }
        if let Some(t) = &s.max_restart_time {
            check_duration("spec.maxRestartTime", t, &mut errs);
        }
        if s.ttl_security == Some(0) {
            errs.push(
                "spec.ttlSecurity",
                "must be 1..=255 hops (omit it to disable GTSM)",
            );
        }
        if let Some(gw) = set(&s.reachable_by) {
            match gw.parse::<IpAddr>() {
                Err(_) => errs.push("spec.reachableBy", format!("{gw:?} is not an IP address")),
                Ok(a) if peer_family.is_some_and(|v4| v4 != a.is_ipv4()) => errs.push(
                    "spec.reachableBy",
                    format!("{gw} is not of the same IP family as peerIP"),
                ),
                Ok(_) => {}
            }
        }
        errs.into_result()
    }
}

impl Validate for TortieNode {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        check_name(&self.metadata, &mut errs);
        let s = &self.spec;
        if let Some(b) = &s.bgp {
            if b.ipv4_address.is_some_and(|a| !a.is_ipv4()) {
                errs.push(
                    "spec.bgp.ipv4Address",
                    "must be an IPv4 address with its mask",
                );
            }
            if b.ipv6_address.is_some_and(|a| !a.is_ipv6()) {
                errs.push(
                    "spec.bgp.ipv6Address",
                    "must be an IPv6 address with its mask",
                );
            }
            if let Some(a) = b.as_number {
                check_as("spec.bgp.asNumber", a, &mut errs);
            }
            if b.ipv4_ipip_tunnel_addr.is_some_and(|a| !a.is_ipv4()) {
                errs.push("spec.bgp.ipv4IPIPTunnelAddr", "must be an IPv4 address");
            }
            if let Some(id) = b
                .route_reflector_cluster_id
                .as_deref()
                .filter(|i| !i.is_empty())
                && id.parse::<std::net::Ipv4Addr>().is_err()
            {
                errs.push(
                    "spec.bgp.routeReflectorClusterID",
                    format!("{id:?} must be in IPv4 dotted form (e.g. 224.0.0.1)"),
                );
            }
        }
        if s.ipv4_vxlan_tunnel_addr.is_some_and(|a| !a.is_ipv4()) {
            errs.push("spec.ipv4VXLANTunnelAddr", "must be an IPv4 address");
        }
        if let Some(mac) = &s.vxlan_tunnel_mac_addr
            && !is_mac(mac)
        {
            errs.push(
                "spec.vxlanTunnelMACAddr",
                format!("{mac:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"),
            );
        }
        errs.into_result()
    }
}
