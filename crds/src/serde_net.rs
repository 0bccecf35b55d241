//! Serde helpers for CIDR fields (`#[serde(with = "...")]`).
//!
//! Pure. `ipnetwork`'s own Deserialize reads a String first and fails afterwards, which
//! makes serde_yaml blame the parent mapping; these visitors fail *inside* the field, so
//! errors carry the field path (`spec.cidr: invalid CIDR ...`).

use std::fmt;

use ipnetwork::IpNetwork;
use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;

struct CidrVisitor;

impl Visitor<'_> for CidrVisitor {
    type Value = IpNetwork;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CIDR such as 10.0.0.0/16 or fd00::/48")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<IpNetwork, E> {
        v.trim()
            .parse()
            .map_err(|e| E::custom(format!("invalid CIDR {v:?}: {e}")))
    }
}

/// `IpNetwork` as a string.
pub mod cidr {
    use super::*;

    /// Writes the CIDR text.
    pub fn serialize<S: Serializer>(v: &IpNetwork, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    /// Reads CIDR text, failing inside the field.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpNetwork, D::Error> {
        d.deserialize_str(CidrVisitor)
    }
}

/// `Option<IpNetwork>` as an optional string.
pub mod opt_cidr {
    use super::*;

    /// Writes the CIDR text, or null.
    pub fn serialize<S: Serializer>(v: &Option<IpNetwork>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.collect_str(n),
            None => s.serialize_none(),
        }
    }

    /// Reads optional CIDR text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpNetwork>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<IpNetwork>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CIDR or null")
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                d.deserialize_str(CidrVisitor).map(Some)
            }
        }
        d.deserialize_option(V)
    }
}

/// `Vec<IpNetwork>` as a list of strings.
pub mod vec_cidr {
    use super::*;
    use serde::ser::SerializeSeq;

    /// Writes each CIDR's text.
    pub fn serialize<S: Serializer>(v: &[IpNetwork], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for n in v {
            seq.serialize_element(&n.to_string())?;
        }
        seq.end()
    }

    /// Reads a list of CIDR texts.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNetwork>, D::Error> {
        struct Elem(IpNetwork);
        impl<'de> serde::Deserialize<'de> for Elem {
            fn deserialize<D2: Deserializer<'de>>(d: D2) -> Result<Self, D2::Error> {
                d.deserialize_str(CidrVisitor).map(Elem)
            }
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<IpNetwork>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of CIDRs")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(Elem(n)) = a.next_element()? {
                    out.push(n);
                }
                Ok(out)
            }
        }
        d.deserialize_seq(V)
    }
}
