//! Validation of tortie resources, with every error naming the field it is about.
//!
//! Pure. Owns [`FieldError`] / [`ValidationErrors`] and the shared checks (object names,
//! masked CIDRs, AS numbers, MAC addresses, selectors, durations). The per-resource rules
//! live in [`pools`] (IPPool, incl. overlap and immutability), [`bgp`] (BGPConfiguration,
//! BGPPeer, TortieNode) and [`ipam`] (IPAM objects, WorkloadEndpoint). `tortiectl apply`
//! runs the same checks the CRD schemas express as CEL rules.

pub mod bgp;
pub mod ipam;
pub mod pools;

use std::fmt;

use ipnetwork::IpNetwork;
use kube::api::ObjectMeta;

use crate::AsNumber;
use crate::selector::Selector;

pub use pools::{validate_pool_overlap, validate_pool_update};

/// One problem, at one field path (`spec.cidr`, `spec.ports[1].name`, `metadata.name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in one object (never empty when returned as an error).
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors {
    /// The problems, in the order the fields were checked.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

impl ValidationErrors {
    /// Records a problem at `field`.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// True when some error is about `field` (exactly, or a sub-field of it).
    pub fn mentions(&self, field: &str) -> bool {
        self.errors.iter().any(|e| {
            e.field == field
                || e.field.starts_with(&format!("{field}."))
                || e.field.starts_with(&format!("{field}["))
        })
    }

    /// `Ok(())` when nothing was recorded.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    /// Adds the errors of `other`.
    pub fn extend(&mut self, other: ValidationErrors) {
        self.errors.extend(other.errors);
    }
}

/// Resources that can check themselves.
pub trait Validate {
    /// Every problem of this object, each naming its field.
    fn validate(&self) -> Result<(), ValidationErrors>;
}

/// RFC 1123 subdomain, as Kubernetes requires of most object names.
pub(crate) fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `metadata.name` present and a DNS subdomain.
pub(crate) fn check_name(meta: &ObjectMeta, errs: &mut ValidationErrors) {
    match meta.name.as_deref() {
        None | Some("") => errs.push("metadata.name", "is required"),
        Some(n) if !is_dns_subdomain(n) => errs.push(
            "metadata.name",
            format!("{n:?} is not a lowercase RFC 1123 subdomain"),
        ),
        Some(_) => {}
    }
}

/// The network address of `cidr` must equal its address (no host bits set).
pub(crate) fn check_masked(field: &str, cidr: &IpNetwork, errs: &mut ValidationErrors) {
    if cidr.network() != cidr.ip() {
        let masked = IpNetwork::new(cidr.network(), cidr.prefix())
            .map(|c| c.to_string())
            .unwrap_or_default();
        errs.push(
            field,
            format!("{cidr} has host bits set (did you mean {masked}?)"),
        );
    }
}

/// AS numbers must not be reserved (0, AS_TRANS 23456, 65535, 4294967295).
pub(crate) fn check_as(field: &str, asn: AsNumber, errs: &mut ValidationErrors) {
    if asn.is_reserved() || asn.get() == 23456 {
        errs.push(
            field,
            format!("AS {asn} is reserved (RFC 7607, RFC 6793 AS_TRANS, RFC 7300)"),
        );
    }
}

/// The selector must parse; the error keeps its column.
pub(crate) fn check_selector(field: &str, text: &str, errs: &mut ValidationErrors) {
    if let Err(e) = Selector::parse(text) {
        errs.push(field, format!("invalid selector {text:?}: {e}"));
    }
}

/// A Go duration (`120s`, `1m30s`).
pub(crate) fn check_duration(field: &str, text: &str, errs: &mut ValidationErrors) {
    if let Err(e) = crate::duration::parse_go_duration(text) {
        errs.push(field, e.to_string());
    }
}

/// `aa:bb:cc:dd:ee:ff`, hex, colon-separated.
pub fn is_mac(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Resources with rules about what an update may change (immutable fields). The default
/// only validates the new object.
pub trait ValidateUpdate: Validate {
    /// Problems of replacing `old` by `self`, each naming its field.
    fn validate_update(&self, old: &Self) -> Result<(), ValidationErrors> {
        let _ = old;
        self.validate()
    }
}

fn immutable<T: PartialEq + fmt::Display>(
    field: &str,
    old: &T,
    new: &T,
    errs: &mut ValidationErrors,
) {
    if old != new {
        errs.push(field, format!("is immutable ({old} → {new})"));
    }
}

impl ValidateUpdate for crate::IpPool {
    fn validate_update(&self, old: &Self) -> Result<(), ValidationErrors> {
        validate_pool_update(old, self)
    }
}

impl ValidateUpdate for crate::IpamBlock {
    fn validate_update(&self, old: &Self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        immutable("spec.cidr", &old.spec.cidr, &self.spec.cidr, &mut errs);
        if let Err(e) = self.validate() {
            errs.extend(e);
        }
        errs.into_result()
    }
}

impl ValidateUpdate for crate::BlockAffinity {
    fn validate_update(&self, old: &Self) -> Result<(), ValidationErrors> {
        let mut errs = ValidationErrors::default();
        immutable("spec.cidr", &old.spec.cidr, &self.spec.cidr, &mut errs);
        immutable("spec.node", &old.spec.node, &self.spec.node, &mut errs);
        if let Err(e) = self.validate() {
            errs.extend(e);
        }
        errs.into_result()
    }
}

impl ValidateUpdate for crate::BgpConfiguration {}
impl ValidateUpdate for crate::BgpPeer {}
impl ValidateUpdate for crate::TortieNode {}
impl ValidateUpdate for crate::IpamHandle {}
impl ValidateUpdate for crate::IpamConfig {}
impl ValidateUpdate for crate::WorkloadEndpoint {}
