//! Reading resource manifests: tortie's own `crd.tortie.dev/v1` documents and Calico's
//! `projectcalico.org/v3` IPPool, BGPPeer and BGPConfiguration, converted.
//!
//! Pure. Owns [`TortieObject`] (any tortie resource, by kind), the multi-document YAML
//! reader behind `tortiectl apply -f`, the Calico → tortie field conversion, and errors
//! that name the document and the field. Every object read is validated.

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use crate::validation::{Validate, ValidateUpdate, ValidationErrors};
use crate::{
    API_VERSION, BgpConfiguration, BgpConfigurationSpec, BgpPeer, BgpPeerSpec, BlockAffinity,
    IpPool, IpPoolSpec, IpamBlock, IpamConfig, IpamHandle, TortieNode, WorkloadEndpoint,
};

/// `apiVersion` of Calico's resources.
pub const CALICO_API_VERSION: &str = "projectcalico.org/v3";

/// Any tortie resource.
/// Serializes as the object itself (with its `apiVersion` and `kind`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)]
pub enum TortieObject {
    /// IPPool.
    IpPool(IpPool),
    /// BGPConfiguration.
    BgpConfiguration(BgpConfiguration),
    /// BGPPeer.
    BgpPeer(BgpPeer),
    /// TortieNode.
    TortieNode(TortieNode),
    /// IPAMBlock.
    IpamBlock(IpamBlock),
    /// BlockAffinity.
    BlockAffinity(BlockAffinity),
    /// IPAMHandle.
    IpamHandle(IpamHandle),
    /// IPAMConfig.
    IpamConfig(IpamConfig),
    /// WorkloadEndpoint.
    WorkloadEndpoint(WorkloadEndpoint),
}

impl TortieObject {
    /// The resource kind (`IPPool`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            TortieObject::IpPool(_) => "IPPool",
            TortieObject::BgpConfiguration(_) => "BGPConfiguration",
            TortieObject::BgpPeer(_) => "BGPPeer",
            TortieObject::TortieNode(_) => "TortieNode",
            TortieObject::IpamBlock(_) => "IPAMBlock",
            TortieObject::BlockAffinity(_) => "BlockAffinity",
            TortieObject::IpamHandle(_) => "IPAMHandle",
            TortieObject::IpamConfig(_) => "IPAMConfig",
            TortieObject::WorkloadEndpoint(_) => "WorkloadEndpoint",
        }
    }

    /// `metadata.name` (empty when unset).
    pub fn name(&self) -> &str {
        let meta = match self {
            TortieObject::IpPool(o) => &o.metadata,
            TortieObject::BgpConfiguration(o) => &o.metadata,
            TortieObject::BgpPeer(o) => &o.metadata,
            TortieObject::TortieNode(o) => &o.metadata,
            TortieObject::IpamBlock(o) => &o.metadata,
            TortieObject::BlockAffinity(o) => &o.metadata,
            TortieObject::IpamHandle(o) => &o.metadata,
            TortieObject::IpamConfig(o) => &o.metadata,
            TortieObject::WorkloadEndpoint(o) => &o.metadata,
        };
        meta.name.as_deref().unwrap_or_default()
    }
}

impl Validate for TortieObject {
    fn validate(&self) -> Result<(), ValidationErrors> {
        match self {
            TortieObject::IpPool(o) => o.validate(),
            TortieObject::BgpConfiguration(o) => o.validate(),
            TortieObject::BgpPeer(o) => o.validate(),
            TortieObject::TortieNode(o) => o.validate(),
            TortieObject::IpamBlock(o) => o.validate(),
            TortieObject::BlockAffinity(o) => o.validate(),
            TortieObject::IpamHandle(o) => o.validate(),
            TortieObject::IpamConfig(o) => o.validate(),
            TortieObject::WorkloadEndpoint(o) => o.validate(),
        }
    }
}

impl TortieObject {
    /// Problems of replacing `old` by `self` (immutable fields, then `self`'s own rules).
    /// Objects of different kinds are never an update of one another.
    pub fn validate_update(&self, old: &TortieObject) -> Result<(), ValidationErrors> {
        use TortieObject as T;
        match (self, old) {
            (T::IpPool(n), T::IpPool(o)) => n.validate_update(o),
            (T::BgpConfiguration(n), T::BgpConfiguration(o)) => n.validate_update(o),
            (T::BgpPeer(n), T::BgpPeer(o)) => n.validate_update(o),
            (T::TortieNode(n), T::TortieNode(o)) => n.validate_update(o),
            (T::IpamBlock(n), T::IpamBlock(o)) => n.validate_update(o),
            (T::BlockAffinity(n), T::BlockAffinity(o)) => n.validate_update(o),
            (T::IpamHandle(n), T::IpamHandle(o)) => n.validate_update(o),
            (T::IpamConfig(n), T::IpamConfig(o)) => n.validate_update(o),
            (T::WorkloadEndpoint(n), T::WorkloadEndpoint(o)) => n.validate_update(o),
            _ => {
                let mut e = ValidationErrors::default();
                e.push(
                    "kind",
                    format!("cannot change from {} to {}", old.kind(), self.kind()),
                );
                Err(e)
            }
        }
    }
}

/// What went wrong with one document.
#[derive(Debug, thiserror::Error)]
pub enum ImportErrorKind {
    /// Not YAML, or fields of the wrong type (the message carries the field path).
    #[error("{0}")]
    Parse(String),
    /// `apiVersion`/`kind` pair tortie does not read.
    #[error("unsupported apiVersion/kind {api_version}/{kind}")]
    Unsupported {
        /// The document's apiVersion.
        api_version: String,
        /// The document's kind.
        kind: String,
    },
    /// A field tortie does not know or cannot honour.
    #[error("{field}: {message}")]
    Field {
        /// Path of the field.
        field: String,
        /// Why it is refused.
        message: String,
    },
    /// Parsed, but invalid.
    #[error("{0}")]
    Invalid(ValidationErrors),
}

/// A document that could not be read: which one (1-based), its kind and name if known.
#[derive(Debug, thiserror::Error)]
#[error("document {doc}{}: {kind}", describe(.what, .name))]
pub struct ImportError {
    /// 1-based position of the document in the stream.
    pub doc: usize,
    /// `Kind`, when the document got that far.
    pub what: Option<String>,
    /// `metadata.name`, when present.
    pub name: Option<String>,
    /// The problem.
    pub kind: ImportErrorKind,
}

fn describe(what: &Option<String>, name: &Option<String>) -> String {
    match (what, name) {
        (Some(k), Some(n)) => format!(" ({k} {n})"),
        (Some(k), None) => format!(" ({k})"),
        _ => String::new(),
    }
}

impl ImportError {
    /// True when the problem is about `field` (for validation errors, any of them).
    pub fn mentions(&self, field: &str) -> bool {
        match &self.kind {
            ImportErrorKind::Invalid(e) => e.mentions(field),
            ImportErrorKind::Field { field: f, .. } => f == field || f.starts_with(field),
            ImportErrorKind::Parse(m) => m.contains(field),
            ImportErrorKind::Unsupported { .. } => false,
        }
    }
}

/// Reads a multi-document YAML stream of tortie (`crd.tortie.dev/v1`) and Calico
/// (`projectcalico.org/v3` IPPool, BGPPeer, BGPConfiguration) resources, converting
/// Calico's and validating every object. Empty documents are skipped.
pub fn from_calico_v3_yaml(text: &str) -> Result<Vec<TortieObject>, ImportError> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let n = i + 1;
        let err = |what: Option<String>, name: Option<String>, kind| ImportError {
            doc: n,
            what,
            name,
            kind,
        };
        let value = serde::Deserialize::deserialize(doc).map_err(|e: serde_yaml::Error| {
            err(None, None, ImportErrorKind::Parse(e.to_string()))
        })?;
        let Value::Mapping(map) = value else {
            if value.is_null() {
                continue;
            }
            return Err(err(
                None,
                None,
                ImportErrorKind::Parse("a document must be a mapping".into()),
            ));
        };
        let api_version = str_at(&map, "apiVersion");
        let kind = str_at(&map, "kind");
        let name = map
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let obj = read_one(map, &api_version, &kind)
            .map_err(|k| err(Some(kind.clone()), name.clone(), k))?;
        obj.validate().map_err(|e| {
            err(
                Some(kind.clone()),
                name.clone(),
                ImportErrorKind::Invalid(e),
            )
        })?;
        out.push(obj);
    }
    Ok(out)
}

fn str_at(map: &Mapping, key: &str) -> String {
    map.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn read_one(
    mut map: Mapping,
    api_version: &str,
    kind: &str,
) -> Result<TortieObject, ImportErrorKind> {
    for (field, v) in [("apiVersion", api_version), ("kind", kind)] {
        if v.is_empty() {
            return Err(refuse(field, "is required"));
        }
    }
    let unsupported = || ImportErrorKind::Unsupported {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
    };
    if api_version == CALICO_API_VERSION {
        clean_metadata(&mut map);
        map.remove("status");
        map.insert("apiVersion".into(), API_VERSION.into());
        let spec = match map.get_mut("spec") {
            Some(Value::Mapping(s)) => s,
            _ => {
                return Err(ImportErrorKind::Field {
                    field: "spec".into(),
                    message: "is required and must be a mapping".into(),
                });
            }
        };
        match kind {
            "IPPool" => {
                convert_calico_pool(spec)?;
                check_known::<IpPoolSpec>(spec)?;
            }
            "BGPPeer" => {
                convert_calico_peer(spec)?;
                check_known::<BgpPeerSpec>(spec)?;
            }
            "BGPConfiguration" => check_known::<BgpConfigurationSpec>(spec)?,
            _ => return Err(unsupported()),
        }
    } else if api_version != API_VERSION {
        return Err(unsupported());
    }
    let v = Value::Mapping(map);
    Ok(match kind {
        "IPPool" => TortieObject::IpPool(typed(v)?),
        "BGPConfiguration" => TortieObject::BgpConfiguration(typed(v)?),
        "BGPPeer" => TortieObject::BgpPeer(typed(v)?),
        "TortieNode" => TortieObject::TortieNode(typed(v)?),
        "IPAMBlock" => TortieObject::IpamBlock(typed(v)?),
        "BlockAffinity" => TortieObject::BlockAffinity(typed(v)?),
        "IPAMHandle" => TortieObject::IpamHandle(typed(v)?),
        "IPAMConfig" => TortieObject::IpamConfig(typed(v)?),
        "WorkloadEndpoint" => TortieObject::WorkloadEndpoint(typed(v)?),
        _ => return Err(unsupported()),
    })
}

/// Deserializes through YAML text so that serde_yaml reports the field path
/// (`spec.blockSize: invalid type ...`); the line numbers of the re-rendered text would
/// mislead, so they are cut off.
fn typed<T: DeserializeOwned>(v: Value) -> Result<T, ImportErrorKind> {
    let text = serde_yaml::to_string(&v).map_err(|e| ImportErrorKind::Parse(e.to_string()))?;
    serde_yaml::from_str(&text).map_err(|e| {
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        ImportErrorKind::Parse(msg)
    })
}

/// Keeps what identifies the object; drops what the source cluster generated.
fn clean_metadata(map: &mut Mapping) {
    if let Some(Value::Mapping(meta)) = map.get_mut("metadata") {
        let keep = ["name", "namespace", "labels", "annotations"];
        let drop: Vec<Value> = meta
            .keys()
            .filter(|k| !k.as_str().is_some_and(|k| keep.contains(&k)))
            .cloned()
            .collect();
        for k in drop {
            meta.remove(&k);
        }
    }
}

/// Refuses spec keys the tortie type does not have, naming them (serde would drop them
/// silently, and a typo like `natOutgoin` must not pass).
fn check_known<T: schemars::JsonSchema>(spec: &Mapping) -> Result<(), ImportErrorKind> {
    let schema = schemars::schema_for!(T);
    let props = schema.get("properties").and_then(|p| p.as_object());
    for k in spec.keys() {
        let key = k.as_str().unwrap_or_default();
        if !props.is_some_and(|p| p.contains_key(key)) {
            return Err(ImportErrorKind::Field {
                field: format!("spec.{key}"),
                message: "is not a field tortie knows".into(),
            });
        }
    }
    Ok(())
}

fn refuse(field: &str, message: impl Into<String>) -> ImportErrorKind {
    ImportErrorKind::Field {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Calico IPPool fields without a tortie counterpart: accepted when they ask for what
/// tortie does anyway, refused otherwise.
fn convert_calico_pool(spec: &mut Mapping) -> Result<(), ImportErrorKind> {
    if let Some(v) = spec.remove("assignmentMode")
        && v.as_str() != Some("Automatic")
    {
        return Err(refuse("spec.assignmentMode", "only Automatic is supported"));
    }
    if let Some(v) = spec.remove("ipip") {
        // Calico v1-style `ipip: {enabled, mode}` (deprecated): becomes ipipMode.
        let enabled = v.get("enabled").and_then(Value::as_bool).unwrap_or(false);
        let mode = match v.get("mode").and_then(Value::as_str) {
            Some("cross-subnet") => "CrossSubnet",
            _ => "Always",
        };
        if enabled && !spec.contains_key("ipipMode") {
            spec.insert("ipipMode".into(), mode.into());
        }
    }
    if let Some(v) = spec.remove("nat-outgoing")
        && !spec.contains_key("natOutgoing")
    {
        spec.insert("natOutgoing".into(), v);
    }
    Ok(())
}

/// Calico BGPPeer fields without a tortie counterpart.
fn convert_calico_peer(spec: &mut Mapping) -> Result<(), ImportErrorKind> {
    if let Some(v) = spec.remove("keepOriginalNextHop")
        && v.as_bool() == Some(true)
    {
        if spec
            .get("nextHopMode")
            .is_some_and(|m| m.as_str() != Some("Keep"))
        {
            return Err(refuse(
                "spec.keepOriginalNextHop",
                "contradicts nextHopMode (keepOriginalNextHop means Keep)",
            ));
        }
        spec.insert("nextHopMode".into(), "Keep".into());
    }
    let defaults_only = [
        ("failureDetectionMode", "None"),
        ("restartMode", "GracefulRestart"),
        ("birdGatewayMode", "Recursive"),
    ];
    for (field, only) in defaults_only {
        if let Some(v) = spec.remove(field)
            && v.as_str() != Some(only)
        {
            return Err(refuse(
                &format!("spec.{field}"),
                format!("only {only} is supported"),
            ));
        }
    }
    if let Some(v) = spec.remove("filters")
        && v.as_sequence().is_some_and(|s| !s.is_empty())
    {
        return Err(refuse("spec.filters", "BGP filters are not supported"));
    }
    if let Some(v) = spec.remove("localWorkloadSelector")
        && v.as_str().is_some_and(|s| !s.is_empty())
    {
        return Err(refuse(
            "spec.localWorkloadSelector",
            "peering with local workloads is not supported",
        ));
    }
    Ok(())
}
