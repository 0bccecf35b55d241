//! BGP autonomous-system numbers as written by operators.
//!
//! Pure value type. Owns the two accepted spellings of an AS number: plain (`64512`) and
//! asdot (`1.10` = 1 × 65536 + 10, RFC 5396 §1), both range-checked into a 32-bit AS
//! (RFC 6793). It serializes as a plain integer, the way Calico's CRDs store it, and the
//! CRD schema marks it `x-kubernetes-int-or-string` so an asdot string is accepted too.

use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 32-bit BGP AS number (RFC 6793).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AsNumber(pub u32);

impl AsNumber {
    /// Calico's default cluster AS (`64512`, the first private 16-bit AS).
    pub const DEFAULT: AsNumber = AsNumber(64512);

    /// The numeric value.
    pub fn get(self) -> u32 {
        self.0
    }

    /// True for AS 0 and AS 65535/4294967295, which RFC 7607 / RFC 7300 reserve.
    pub fn is_reserved(self) -> bool {
        matches!(self.0, 0 | 65535 | u32::MAX)
    }
}

/// Why a text is not an AS number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AsNumberError {
    /// Neither a decimal number nor `high.low`.
    #[error("{0:?} is not an AS number (expected a plain number like 64512 or asdot like 1.10)")]
    Syntax(String),
    /// Plain form larger than 4294967295.
    #[error("{0:?} is out of range: AS numbers are 0..=4294967295")]
    OutOfRange(String),
    /// One half of the asdot form larger than 65535.
    #[error("{0:?} is out of range: each half of the asdot form is 0..=65535")]
    AsdotOutOfRange(String),
}

impl FromStr for AsNumber {
    type Err = AsNumberError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        if let Some((hi, lo)) = t.split_once('.') {
            if !digits(hi) || !digits(lo) {
                return Err(AsNumberError::Syntax(s.to_string()));
            }
            let part = |x: &str| {
                x.parse::<u32>()
                    .ok()
                    .filter(|v| *v <= 0xffff)
                    .ok_or_else(|| AsNumberError::AsdotOutOfRange(s.to_string()))
            };
            return Ok(AsNumber((part(hi)? << 16) | part(lo)?));
        }
        if !digits(t) {
            return Err(AsNumberError::Syntax(s.to_string()));
        }
        t.parse::<u32>()
            .map(AsNumber)
            .map_err(|_| AsNumberError::OutOfRange(s.to_string()))
    }
}

impl fmt::Display for AsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u32> for AsNumber {
    fn from(v: u32) -> Self {
        AsNumber(v)
    }
}

impl Serialize for AsNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for AsNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = AsNumber;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an AS number (plain like 64512 or asdot like 1.10)")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<AsNumber, E> {
                u32::try_from(v)
                    .map(AsNumber)
                    .map_err(|_| E::custom(AsNumberError::OutOfRange(v.to_string())))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<AsNumber, E> {
                u32::try_from(v)
                    .map(AsNumber)
                    .map_err(|_| E::custom(AsNumberError::OutOfRange(v.to_string())))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<AsNumber, E> {
                // YAML reads an unquoted asdot `1.10` as the float 1.1: refuse it rather
                // than guess, and tell the operator to quote it.
                Err(E::custom(format!(
                    "{v} looks like an unquoted asdot AS number: quote it (\"1.10\")"
                )))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<AsNumber, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for AsNumber {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AsNumber".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "AS number: plain (64512) or asdot (\"1.10\").",
            "x-kubernetes-int-or-string": true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_asdot() {
        assert_eq!("64512".parse::<AsNumber>(), Ok(AsNumber(64512)));
        assert_eq!("1.10".parse::<AsNumber>(), Ok(AsNumber(65546)));
        assert_eq!("65535.65535".parse::<AsNumber>(), Ok(AsNumber(u32::MAX)));
        assert_eq!("4294967295".parse::<AsNumber>(), Ok(AsNumber(u32::MAX)));
    }

    #[test]
    fn rejects_out_of_range_and_garbage() {
        assert!(matches!(
            "4294967296".parse::<AsNumber>(),
            Err(AsNumberError::OutOfRange(_))
        ));
        assert!(matches!(
            "65536.1".parse::<AsNumber>(),
            Err(AsNumberError::AsdotOutOfRange(_))
        ));
        for bad in ["", "-1", "1.", ".1", "1.2.3", "abc", "0x10"] {
            assert!(bad.parse::<AsNumber>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn serde_accepts_int_and_string_and_writes_int() {
        let a: AsNumber = serde_json::from_str("\"1.10\"").unwrap();
        assert_eq!(a, AsNumber(65546));
        let b: AsNumber = serde_json::from_str("64512").unwrap();
        assert_eq!(serde_json::to_string(&b).unwrap(), "64512");
        assert!(serde_json::from_str::<AsNumber>("4294967296").is_err());
        assert!(serde_json::from_str::<AsNumber>("-3").is_err());
        assert!(serde_yaml::from_str::<AsNumber>("1.10").is_err());
    }
}
