//! Calico's label selector language: AST, canonical printing and evaluation.
//!
//! Pure. Owns the [`Expr`] tree, its canonical text (`Display`: double-quoted values,
//! sorted sets, parentheses only where precedence needs them, so printing and parsing
//! give back the same tree) and matching against a label map. The grammar and its
//! positioned errors live in [`parser`].
//!
//! Semantics follow Calico: `k != 'v'` and `k not in {...}` also match when `k` is absent;
//! `==`, `in`, `contains`, `starts with`, `ends with` need the label present; the empty
//! selector is `all()`.

pub mod parser;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

pub use parser::SelectorError;

/// A selector expression.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expr {
    /// `all()` (and the empty selector): matches everything.
    All,
    /// `has(k)`.
    Has(String),
    /// `k == "v"`.
    Eq(String, String),
    /// `k != "v"` (true when `k` is absent).
    Ne(String, String),
    /// `k in {"a", "b"}`.
    In(String, BTreeSet<String>),
    /// `k not in {"a", "b"}` (true when `k` is absent).
    NotIn(String, BTreeSet<String>),
    /// `k contains "s"`.
    Contains(String, String),
    /// `k starts with "s"`.
    StartsWith(String, String),
    /// `k ends with "s"`.
    EndsWith(String, String),
    /// `!e`.
    Not(Box<Expr>),
    /// `a && b && ...` (two or more operands).
    And(Vec<Expr>),
    /// `a || b || ...` (two or more operands).
    Or(Vec<Expr>),
}

impl Expr {
    /// True when the labels satisfy this expression.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let get = |k: &String| labels.get(k);
        match self {
            Expr::All => true,
            Expr::Has(k) => labels.contains_key(k),
            Expr::Eq(k, v) => get(k) == Some(v),
            Expr::Ne(k, v) => get(k) != Some(v),
            Expr::In(k, set) => get(k).is_some_and(|v| set.contains(v)),
            Expr::NotIn(k, set) => !get(k).is_some_and(|v| set.contains(v)),
            Expr::Contains(k, s) => get(k).is_some_and(|v| v.contains(s.as_str())),
            Expr::StartsWith(k, s) => get(k).is_some_and(|v| v.starts_with(s.as_str())),
            Expr::EndsWith(k, s) => get(k).is_some_and(|v| v.ends_with(s.as_str())),
            Expr::Not(e) => !e.matches(labels),
            Expr::And(es) => es.iter().all(|e| e.matches(labels)),
            Expr::Or(es) => es.iter().any(|e| e.matches(labels)),
        }
    }

    /// Binding strength when printed: 0 = `||`, 1 = `&&`, 2 = unary and atoms.
    fn precedence(&self) -> u8 {
        match self {
            Expr::Or(_) => 0,
            Expr::And(_) => 1,
            _ => 2,
        }
    }

    fn fmt_child(&self, f: &mut fmt::Formatter<'_>, parent: u8) -> fmt::Result {
        // Same-level children are parenthesized too: the parser only flattens an
        // unparenthesized chain, so this keeps print → parse the identity.
        if self.precedence() <= parent {
            write!(f, "({self})")
        } else {
            write!(f, "{self}")
        }
    }
}

/// Quotes a value: double quotes unless it contains one (the language has no escapes).
fn quoted(v: &str) -> String {
    if v.contains('"') {
        format!("'{v}'")
    } else {
        format!("\"{v}\"")
    }
}

fn fmt_set(set: &BTreeSet<String>) -> String {
    let items: Vec<String> = set.iter().map(|v| quoted(v)).collect();
    format!("{{{}}}", items.join(", "))
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::All => f.write_str("all()"),
            Expr::Has(k) => write!(f, "has({k})"),
            Expr::Eq(k, v) => write!(f, "{k} == {}", quoted(v)),
            Expr::Ne(k, v) => write!(f, "{k} != {}", quoted(v)),
            Expr::In(k, s) => write!(f, "{k} in {}", fmt_set(s)),
            Expr::NotIn(k, s) => write!(f, "{k} not in {}", fmt_set(s)),
            Expr::Contains(k, v) => write!(f, "{k} contains {}", quoted(v)),
            Expr::StartsWith(k, v) => write!(f, "{k} starts with {}", quoted(v)),
            Expr::EndsWith(k, v) => write!(f, "{k} ends with {}", quoted(v)),
            Expr::Not(e) => {
                f.write_str("!")?;
                match **e {
                    Expr::And(_) | Expr::Or(_) => write!(f, "({e})"),
                    _ => write!(f, "{e}"),
                }
            }
            Expr::And(es) | Expr::Or(es) => {
                let (sep, level) = if matches!(self, Expr::And(_)) {
                    (" && ", 1)
                } else {
                    (" || ", 0)
                };
                for (i, e) in es.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    e.fmt_child(f, level)?;
                }
                Ok(())
            }
        }
    }
}

/// A parsed selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Selector {
    expr: Expr,
}

impl Selector {
    /// Parses selector text; the empty (or blank) selector is `all()`.
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        parser::parse(text).map(|expr| Selector { expr })
    }

    /// The selector matching everything.
    pub fn all() -> Selector {
        Selector { expr: Expr::All }
    }

    /// The expression tree.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// True when the labels satisfy the selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.expr.matches(labels)
    }
}

impl From<Expr> for Selector {
    fn from(expr: Expr) -> Self {
        Selector { expr }
    }
}

impl FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)
    }
}

impl serde::Serialize for Selector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Selector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Selector;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a selector such as `has(a) && b == 'c'`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Selector, E> {
                Selector::parse(v).map_err(|e| E::custom(format!("invalid selector {v:?}: {e}")))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_round_trip_uses_canonical_text() {
        let s = Selector::parse("a=='b'&&has(c)").unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#""a == \"b\" && has(c)""#);
        assert_eq!(serde_json::from_str::<Selector>(&json).unwrap(), s);
        let err = serde_json::from_str::<Selector>(r#""a =""#).unwrap_err();
        assert!(err.to_string().contains("column 3"), "{err}");
    }
}
