//! The network configuration the runtime streams on stdin, as Calico's CNI plugin reads it:
//! `cniVersion`, `name`, `type`, `mtu`, `ipam` (`type`, `assign_ipv4`, `assign_ipv6`),
//! the datastore settings (`datastore_type` `etcdv3`|`kubernetes`, `etcd_endpoints` as a
//! comma-separated list, tortie's `etcd_prefix`, `kubernetes.kubeconfig` or a top-level
//! `kubeconfig`), the node name (`nodename`, else the file `nodename_file`, default
//! `/var/lib/tortie/nodename`) and `prevResult` (CHECK, DEL).
//!
//! Pure: [`NetConf::parse`] turns bytes into a validated [`NetConf`] or an
//! [`InvocationError`] naming the field. Reading the node-name and MTU files is the
//! driver's job ([`NetConf::node_source`], [`NetConf::mtu_source`] say what to read).

use serde::Deserialize;
use serde_json::Value;

use crate::spec::{AddResult, ErrorCode, InvocationError};

/// The plugin's `type` (and its IPAM's).
pub const PLUGIN_TYPE: &str = "tortie-cni";
/// Where the node agent leaves the node's name (Calico: /var/lib/calico/nodename).
pub const DEFAULT_NODENAME_FILE: &str = "/var/lib/tortie/nodename";
/// Where the node agent leaves the computed veth MTU, read when `mtu` is 0 or absent.
pub const DEFAULT_MTU_FILE: &str = "/var/lib/tortie/mtu";
/// MTU when neither the configuration nor the MTU file gives one (Calico's fallback).
pub const FALLBACK_MTU: u32 = 1500;
/// etcd key prefix of the tortie objects (the agent's `ETCD_PREFIX` default).
pub const DEFAULT_ETCD_PREFIX: &str = "/tortie";

/// Which datastore the WorkloadEndpoints and IPAM objects live in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatastoreConf {
    /// etcd v3.
    Etcd {
        /// Client URLs.
        endpoints: Vec<String>,
        /// Key prefix.
        prefix: String,
    },
    /// The Kubernetes API.
    Kubernetes {
        /// Path of the kubeconfig; `None` = `KUBECONFIG` / in-cluster defaults.
        kubeconfig: Option<String>,
    },
}

/// Where the node's name comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeSource {
    /// Given in the configuration.
    Name(String),
    /// Read from this file (trimmed); the host name when the file is absent.
    File(String),
}

/// Where the MTU comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MtuSource {
    /// Given in the configuration.
    Value(u32),
    /// Read from [`DEFAULT_MTU_FILE`], else [`FALLBACK_MTU`].
    File(String),
}

/// A validated network configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConf {
    /// Spec version the runtime speaks (results are printed in it).
    pub cni_version: String,
    /// Network name (part of the IPAM handle, `<name>.<containerID>`).
    pub name: String,
    /// Datastore.
    pub datastore: DatastoreConf,
    /// Node name source.
    pub node: NodeSource,
    /// MTU source.
    pub mtu: MtuSource,
    /// Assign an IPv4 address (default true).
    pub assign_ipv4: bool,
    /// Assign an IPv6 address (default false).
    pub assign_ipv6: bool,
    /// `log_level` (`info` by default).
    pub log_level: String,
    /// The previous ADD's result, when the runtime passed one.
    pub prev_result: Option<AddResult>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "cniVersion")]
    cni_version: Option<String>,
    name: Option<String>,
    #[serde(rename = "type")]
    type_: Option<String>,
    mtu: Option<Value>,
    ipam: Option<Value>,
    datastore_type: Option<String>,
    etcd_endpoints: Option<String>,
    etcd_prefix: Option<String>,
    kubeconfig: Option<String>,
    kubernetes: Option<Value>,
    nodename: Option<String>,
    nodename_file: Option<String>,
    log_level: Option<String>,
    #[serde(rename = "prevResult")]
    prev_result: Option<Value>,
}

fn bad(field: &str, reason: impl std::fmt::Display) -> InvocationError {
    InvocationError::new(ErrorCode::InvalidConfig, format!("{field}: {reason}"))
}

/// Calico writes booleans of the ipam section as strings (`"true"`); accept both.
fn flag(ipam: &Value, key: &str, default: bool) -> Result<bool, InvocationError> {
    match ipam.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" => Ok(false),
        Some(other) => Err(bad(
            &format!("ipam.{key}"),
            format!("{other} is not true or false"),
        )),
    }
}

impl NetConf {
    /// Parses and validates the configuration bytes.
    pub fn parse(bytes: &[u8]) -> Result<NetConf, InvocationError> {
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| {
            InvocationError::new(
                ErrorCode::Decode,
                format!("network configuration is not valid JSON: {e}"),
            )
        })?;
        let cni_version = raw
            .cni_version
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad("cniVersion", "missing"))?;
        let name = raw
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("name", "missing"))?;
        if name.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(bad("name", format!("{name:?} contains '/' or whitespace")));
        }
        match raw.type_.as_deref() {
            Some(PLUGIN_TYPE) => {}
            Some(t) => return Err(bad("type", format!("{t:?} is not {PLUGIN_TYPE:?}"))),
            None => return Err(bad("type", "missing")),
        }
        let mtu = match raw.mtu {
            None | Some(Value::Null) => MtuSource::File(DEFAULT_MTU_FILE.into()),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(0) => MtuSource::File(DEFAULT_MTU_FILE.into()),
                Some(m @ 68..=65535) => MtuSource::Value(m as u32),
                _ => return Err(bad("mtu", format!("{n} is outside 68..=65535 (0 = auto)"))),
            },
            Some(other) => return Err(bad("mtu", format!("{other} is not a number"))),
        };
        let ipam = raw.ipam.ok_or_else(|| bad("ipam", "missing"))?;
        match ipam.get("type").and_then(Value::as_str) {
            Some(PLUGIN_TYPE) => {}
            Some(t) => {
                return Err(InvocationError::new(
                    ErrorCode::UnsupportedField,
                    format!("ipam.type: {t:?} is not supported (only {PLUGIN_TYPE:?})"),
                ));
            }
            None => return Err(bad("ipam.type", "missing")),
        }
        let assign_ipv4 = flag(&ipam, "assign_ipv4", true)?;
        let assign_ipv6 = flag(&ipam, "assign_ipv6", false)?;
        if !assign_ipv4 && !assign_ipv6 {
            return Err(bad(
                "ipam.assign_ipv4",
                "both assign_ipv4 and assign_ipv6 are false: nothing to assign",
            ));
        }
        let datastore = match raw.datastore_type.as_deref().unwrap_or("etcdv3") {
            "etcdv3" => {
                let list = raw
                    .etcd_endpoints
                    .ok_or_else(|| bad("etcd_endpoints", "required with datastore_type etcdv3"))?;
                let endpoints: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(str::to_string)
                    .collect();
                if endpoints.is_empty() {
                    return Err(bad("etcd_endpoints", "empty"));
                }
                if let Some(e) = endpoints
                    .iter()
                    .find(|e| !(e.starts_with("http://") || e.starts_with("https://")))
                {
                    return Err(bad(
                        "etcd_endpoints",
                        format!("{e:?} is not an http(s):// URL"),
                    ));
                }
                let prefix = raw
                    .etcd_prefix
                    .unwrap_or_else(|| DEFAULT_ETCD_PREFIX.into());
                if !prefix.starts_with('/') {
                    return Err(bad(
                        "etcd_prefix",
                        format!("{prefix:?} must start with '/'"),
                    ));
                }
                DatastoreConf::Etcd { endpoints, prefix }
            }
            "kubernetes" => {
                let nested = match &raw.kubernetes {
                    None | Some(Value::Null) => None,
                    Some(Value::Object(m)) => match m.get("kubeconfig") {
                        None | Some(Value::Null) => None,
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(other) => {
                            return Err(bad(
                                "kubernetes.kubeconfig",
                                format!("{other} is not a path"),
                            ));
                        }
                    },
                    Some(other) => {
                        return Err(bad("kubernetes", format!("{other} is not an object")));
                    }
                };
                let kubeconfig = nested.or(raw.kubeconfig).filter(|s| !s.is_empty());
                DatastoreConf::Kubernetes { kubeconfig }
            }
            other => {
                return Err(bad(
                    "datastore_type",
                    format!("{other:?} is not etcdv3 or kubernetes"),
                ));
            }
        };
        let node = match raw.nodename.filter(|n| !n.is_empty()) {
            Some(n) => NodeSource::Name(n),
            None => NodeSource::File(
                raw.nodename_file
                    .filter(|f| !f.is_empty())
                    .unwrap_or_else(|| DEFAULT_NODENAME_FILE.into()),
            ),
        };
        let prev_result = match raw.prev_result {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                serde_json::from_value(v)
                    .map_err(|e| bad("prevResult", format!("not a result: {e}")))?,
            ),
        };
        Ok(NetConf {
            cni_version,
            name,
            datastore,
            node,
            mtu,
            assign_ipv4,
            assign_ipv6,
            log_level: raw.log_level.unwrap_or_else(|| "info".into()),
            prev_result,
        })
    }

    /// The IPAM handle of a container on this network: `<name>.<containerID>` (Calico;
    /// `k8s-pod-network.<id>` for the usual network name).
    pub fn handle(&self, container_id: &str) -> String {
        format!("{}.{container_id}", self.name)
    }

    /// Only the `log_level` of a configuration (`info` when absent or unreadable), so
    /// logging can start before the configuration is validated.
    pub fn log_level_of(bytes: &[u8]) -> String {
        serde_json::from_slice::<Value>(bytes)
            .ok()
            .and_then(|v| Some(v.get("log_level")?.as_str()?.to_lowercase()))
            .unwrap_or_else(|| "info".into())
    }

    /// Only the `cniVersion` of a configuration, for error output when the rest does not
    /// parse.
    pub fn version_of(bytes: &[u8]) -> Option<String> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        Some(v.get("cniVersion")?.as_str()?.to_string())
    }
}

/// Checks a configuration list (a `.conflist` as the runtime reads it) the way the runtime
/// hands it to this plugin: the `tortie-cni` entry of `plugins`, with the list's `name`
/// and `cniVersion` added, must parse. Returns that entry parsed.
pub fn check_conflist(bytes: &[u8]) -> Result<NetConf, InvocationError> {
    let list: Value = serde_json::from_slice(bytes).map_err(|e| {
        InvocationError::new(
            ErrorCode::Decode,
            format!("configuration list is not valid JSON: {e}"),
        )
    })?;
    let plugins = list
        .get("plugins")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("plugins", "missing or not a list"))?;
    let mut ours = plugins
        .iter()
        .find(|p| p.get("type").and_then(Value::as_str) == Some(PLUGIN_TYPE))
        .cloned()
        .ok_or_else(|| bad("plugins", format!("no entry of type {PLUGIN_TYPE:?}")))?;
    let version = list.get("cniVersion").cloned().unwrap_or(Value::Null);
    let name = list.get("name").cloned().unwrap_or(Value::Null);
    if let Some(m) = ours.as_object_mut() {
        m.insert("cniVersion".into(), version);
        m.insert("name".into(), name);
    }
    let bytes = serde_json::to_vec(&ours).map_err(|e| bad("plugins", e))?;
    let conf = NetConf::parse(&bytes)?;
    crate::spec::check_version(&conf.cni_version, crate::spec::Command::Add)?;
    Ok(conf)
}

/// Resolves the node name: the configured one, else the trimmed file content, else
/// `hostname` (the caller reads the file and host name; `file` is `None` when absent).
pub fn resolve_node(
    source: &NodeSource,
    file: Option<&str>,
    hostname: &str,
) -> Result<String, InvocationError> {
    let name = match source {
        NodeSource::Name(n) => n.clone(),
        NodeSource::File(_) => file
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(hostname.trim())
            .to_string(),
    };
    if name.is_empty() {
        return Err(bad(
            "nodename",
            "not set, nodename_file absent and no host name",
        ));
    }
    Ok(name)
}

/// Resolves the MTU: the configured one, else the MTU file's number, else
/// [`FALLBACK_MTU`] (an unreadable or nonsensical file falls back too).
pub fn resolve_mtu(source: &MtuSource, file: Option<&str>) -> u32 {
    match source {
        MtuSource::Value(m) => *m,
        MtuSource::File(_) => file
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|m| (68..=65535).contains(m))
            .unwrap_or(FALLBACK_MTU),
    }
}

#[cfg(test)]
#[path = "conf_tests.rs"]
mod tests;
