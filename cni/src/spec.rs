//! The CNI protocol as the runtime speaks it (CNI spec 0.3.x, 0.4.0, 1.0.0 and 1.1.0):
//! commands, the `CNI_*` environment, `CNI_ARGS`, the well-known error codes and the JSON
//! the plugin prints (ADD result, VERSION answer, error object).
//!
//! Pure: no I/O, no clock. The environment comes in as a lookup function so tests feed
//! maps; every JSON document is built from typed values whose field order is the spec's,
//! so the bytes printed are stable (the unit tests compare them byte for byte).

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

/// The spec versions this plugin speaks, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
/// The newest version, used when the input names none (VERSION, unreadable config).
pub const LATEST_VERSION: &str = "1.1.0";

/// Well-known error codes (CNI spec 1.1 "Error"), plus tortie's own above 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// 1: incompatible CNI version.
    IncompatibleVersion,
    /// 2: unsupported field in the network configuration.
    UnsupportedField,
    /// 3: container unknown or does not exist.
    UnknownContainer,
    /// 4: invalid necessary environment variables.
    InvalidEnv,
    /// 5: I/O failure.
    Io,
    /// 6: failed to decode content.
    Decode,
    /// 7: invalid network configuration.
    InvalidConfig,
    /// 11: try again later (a transient condition, e.g. the datastore is unreachable).
    TryAgainLater,
    /// 50: the plugin is not available (STATUS).
    PluginNotAvailable,
    /// 100: IPAM could not assign or release (pool exhausted, no matching pool).
    Ipam,
    /// 101: the workload's interfaces, addresses or routes are not as expected (CHECK).
    CheckFailed,
}

impl ErrorCode {
    /// The number printed in the error object.
    pub fn code(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnv => 4,
            ErrorCode::Io => 5,
            ErrorCode::Decode => 6,
            ErrorCode::InvalidConfig => 7,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::PluginNotAvailable => 50,
            ErrorCode::Ipam => 100,
            ErrorCode::CheckFailed => 101,
        }
    }
}

/// The error object printed on stdout when a command fails.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResult {
    /// Spec version of this output.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Error code (see [`ErrorCode`]).
    pub code: u32,
    /// Short message (names the field or variable that was wrong).
    pub msg: String,
    /// Longer details (the underlying cause), may be empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

/// The answer to VERSION.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionResult {
    /// Spec version of this output.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Every version the plugin speaks.
    #[serde(rename = "supportedVersions")]
    pub supported_versions: Vec<String>,
}

impl VersionResult {
    /// This plugin's answer.
    pub fn ours() -> Self {
        VersionResult {
            cni_version: LATEST_VERSION.into(),
            supported_versions: SUPPORTED_VERSIONS.iter().map(|v| v.to_string()).collect(),
        }
    }
}

/// One interface of an ADD result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// MAC address, `aa:bb:..`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// Netns path for the container's interface; empty for the host's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// One address of an ADD result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// `"4"`/`"6"`: only in results of spec versions before 1.0.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The address with its prefix (`10.0.0.5/32`).
    pub address: String,
    /// The gateway the pod uses for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Index into `interfaces` of the interface holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// One route of an ADD result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteConfig {
    /// Destination (`0.0.0.0/0`).
    pub dst: String,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

/// The DNS part of a result (tortie sets none; Kubernetes configures DNS itself).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {}

/// The result of ADD (and the `prevResult` a runtime hands back on CHECK and DEL).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddResult {
    /// Spec version of this output (the one the configuration asked for).
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Host end first, then the container's interface.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// The pod's addresses.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    /// The pod's routes.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// DNS settings (empty).
    #[serde(default)]
    pub dns: Dns,
}

/// What a successful ADD built, in the terms the result needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// Host end name (`cali…`).
    pub host_iface: String,
    /// Host end MAC.
    pub host_mac: String,
    /// Container interface name.
    pub pod_iface: String,
    /// Container interface MAC.
    pub pod_mac: String,
    /// Netns path of the container.
    pub netns: String,
    /// The pod's addresses.
    pub ips: Vec<IpAddr>,
}

/// Builds the ADD result in the format of `cni_version` (before 1.0.0 every address
/// carries `"version"`). Addresses are /32 (/128) on the container's interface; the
/// default routes point at the gateways proxy ARP / NDP answer for.
pub fn add_result(cni_version: &str, a: &Attachment) -> AddResult {
    let legacy = version_before(cni_version, "1.0.0");
    let ips = a
        .ips
        .iter()
        .map(|ip| IpConfig {
            version: legacy.then(|| if ip.is_ipv4() { "4" } else { "6" }.to_string()),
            address: IpNetwork::from(*ip).to_string(),
            gateway: None,
            interface: Some(1),
        })
        .collect();
    let mut routes = Vec::new();
    if a.ips.iter().any(IpAddr::is_ipv4) {
        routes.push(RouteConfig {
            dst: "0.0.0.0/0".into(),
            gw: Some(crate::names::POD_GATEWAY_V4.to_string()),
        });
    }
    if a.ips.iter().any(IpAddr::is_ipv6) {
        routes.push(RouteConfig {
            dst: "::/0".into(),
            gw: Some(crate::names::POD_GATEWAY_V6.to_string()),
        });
    }
    AddResult {
        cni_version: cni_version.to_string(),
        interfaces: vec![
            Interface {
                name: a.host_iface.clone(),
                mac: a.host_mac.clone(),
                sandbox: String::new(),
            },
            Interface {
                name: a.pod_iface.clone(),
                mac: a.pod_mac.clone(),
                sandbox: a.netns.clone(),
            },
        ],
        ips,
        routes,
        dns: Dns::default(),
    }
}

/// The command of one invocation (`CNI_COMMAND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Add the container to the network.
    Add,
    /// Remove it.
    Del,
    /// Verify it is still plugged as ADD left it.
    Check,
    /// Report supported versions.
    Version,
    /// Whether the plugin is ready for ADDs (1.1.0).
    Status,
    /// Release what no valid attachment holds any more (1.1.0).
    Gc,
}

/// A problem with the invocation itself (environment, configuration): the error code
/// and a message naming the variable or field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct InvocationError {
    /// Error code to print.
    pub code: ErrorCode,
    /// Names the variable or field.
    pub msg: String,
}

impl InvocationError {
    /// An error of `code` with `msg`.
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        InvocationError {
            code,
            msg: msg.into(),
        }
    }
}

fn env_err(var: &str, reason: impl std::fmt::Display) -> InvocationError {
    InvocationError::new(ErrorCode::InvalidEnv, format!("{var}: {reason}"))
}

/// The runtime's environment for one invocation, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (empty for VERSION/STATUS/GC).
    pub container_id: String,
    /// `CNI_NETNS`; optional on DEL.
    pub netns: Option<String>,
    /// `CNI_IFNAME` (empty for VERSION/STATUS/GC).
    pub ifname: String,
    /// `K8S_POD_NAMESPACE` from `CNI_ARGS`.
    pub pod_namespace: Option<String>,
    /// `K8S_POD_NAME` from `CNI_ARGS`.
    pub pod_name: Option<String>,
}

impl Invocation {
    /// Reads and validates the `CNI_*` variables through `env` (e.g. `std::env::var`).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Self, InvocationError> {
        let get = |k: &str| env(k).filter(|v| !v.is_empty());
        let command = match get("CNI_COMMAND").as_deref() {
            Some("ADD") => Command::Add,
            Some("DEL") => Command::Del,
            Some("CHECK") => Command::Check,
            Some("VERSION") => Command::Version,
            Some("STATUS") => Command::Status,
            Some("GC") => Command::Gc,
            Some(other) => {
                return Err(env_err(
                    "CNI_COMMAND",
                    format!("{other:?} is not ADD, DEL, CHECK, VERSION, STATUS or GC"),
                ));
            }
            None => return Err(env_err("CNI_COMMAND", "not set")),
        };
        let mut inv = Invocation {
            command,
            container_id: String::new(),
            netns: get("CNI_NETNS"),
            ifname: String::new(),
            pod_namespace: None,
            pod_name: None,
        };
        if matches!(command, Command::Version | Command::Status | Command::Gc) {
            return Ok(inv);
        }
        inv.container_id =
            get("CNI_CONTAINERID").ok_or_else(|| env_err("CNI_CONTAINERID", "not set"))?;
        check_container_id(&inv.container_id)?;
        inv.ifname = get("CNI_IFNAME").ok_or_else(|| env_err("CNI_IFNAME", "not set"))?;
        check_ifname(&inv.ifname)?;
        if inv.netns.is_none() && command != Command::Del {
            return Err(env_err("CNI_NETNS", "not set"));
        }
        let args = parse_cni_args(get("CNI_ARGS").as_deref().unwrap_or(""))?;
        for (k, v) in args {
            match k.as_str() {
                "K8S_POD_NAMESPACE" => inv.pod_namespace = Some(v).filter(|v| !v.is_empty()),
                "K8S_POD_NAME" => inv.pod_name = Some(v).filter(|v| !v.is_empty()),
                _ => {}
            }
        }
        Ok(inv)
    }

    /// `(namespace, pod)` when the runtime named the pod.
    pub fn pod(&self) -> Option<(&str, &str)> {
        Some((self.pod_namespace.as_deref()?, self.pod_name.as_deref()?))
    }
}

/// CNI spec: a container ID starts with an alphanumeric character, followed by
/// alphanumerics, `_`, `.` or `-`.
pub fn check_container_id(id: &str) -> Result<(), InvocationError> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(env_err(
            "CNI_CONTAINERID",
            format!("{id:?} must start alphanumeric and hold only alphanumerics, '_', '.', '-'"),
        ))
    }
}

/// CNI spec: an interface name is 1..=15 bytes, not `.`/`..`, without `/`, `:` or
/// whitespace.
pub fn check_ifname(name: &str) -> Result<(), InvocationError> {
    let ok = !name.is_empty()
        && name.len() <= crate::plumbing::MAX_IFACE_LEN
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(env_err(
            "CNI_IFNAME",
            format!("{name:?} must be 1..=15 bytes, not '.'/'..', without '/', ':' or spaces"),
        ))
    }
}

/// Parses `CNI_ARGS` (`K=V;K=V`, empty allowed). A pair without `=` is an error naming
/// `CNI_ARGS`.
pub fn parse_cni_args(s: &str) -> Result<Vec<(String, String)>, InvocationError> {
    s.split(';')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(env_err("CNI_ARGS", format!("{p:?} is not KEY=VALUE"))),
        })
        .collect()
}

/// Splits a version `a.b.c` into numbers (`None` when it is not one).
fn version_parts(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
    let out = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(out)
}

/// True when `v` is an older version than `than` (unparsable counts as older).
pub fn version_before(v: &str, than: &str) -> bool {
    match (version_parts(v), version_parts(than)) {
        (Some(a), Some(b)) => a < b,
        _ => true,
    }
}

/// Checks that `v` is a version this plugin speaks and that `command` exists in it
/// (CHECK from 0.4.0, STATUS and GC from 1.1.0).
pub fn check_version(v: &str, command: Command) -> Result<(), InvocationError> {
    if !SUPPORTED_VERSIONS.contains(&v) {
        return Err(InvocationError::new(
            ErrorCode::IncompatibleVersion,
            format!(
                "cniVersion: {v:?} is not supported (supported: {})",
                SUPPORTED_VERSIONS.join(", ")
            ),
        ));
    }
    let since = match command {
        Command::Check => "0.4.0",
        Command::Status | Command::Gc => "1.1.0",
        _ => return Ok(()),
    };
    if version_before(v, since) {
        return Err(InvocationError::new(
            ErrorCode::IncompatibleVersion,
            format!("cniVersion: {command:?} needs spec {since} or later, config says {v}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
