//! Kubernetes-style equality selectors (`a=b,c!=d`, `==` accepted) and their evaluation
//! over an object's labels and over dotted JSON field paths (`spec.nodeName`). The
//! Kubernetes backend sends selectors to the API server; the etcd backend evaluates them
//! here so that both filter alike. Pure: no I/O.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Error, Result};

/// One `key=value` / `key!=value` requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// Label key, or dotted field path.
    pub key: String,
    /// True for `!=`.
    pub negated: bool,
    /// The value compared with.
    pub value: String,
}

/// A conjunction of requirements; empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// All must hold.
    pub requirements: Vec<Requirement>,
}

impl Selector {
    /// Parses `a=b,c!=d` (whitespace around terms ignored; empty string = everything).
    pub fn parse(text: &str) -> Result<Selector> {
        let err = |reason: String| Error::Selector {
            selector: text.to_string(),
            reason,
        };
        let mut requirements = Vec::new();
        for (i, term) in text.split(',').enumerate() {
            let term = term.trim();
            if term.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(err(format!("term {} is empty", i + 1)));
            }
            let (key, negated, value) = if let Some((k, v)) = term.split_once("!=") {
                (k, true, v)
            } else if let Some((k, v)) = term.split_once("==") {
                (k, false, v)
            } else if let Some((k, v)) = term.split_once('=') {
                (k, false, v)
            } else {
                return Err(err(format!(
                    "term {} ({term:?}) has no '=', '==' or '!='",
                    i + 1
                )));
            };
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() {
                return Err(err(format!("term {} ({term:?}) has an empty key", i + 1)));
            }
            if value.contains('=') || value.contains('!') {
                return Err(err(format!(
                    "term {} ({term:?}) has more than one operator",
                    i + 1
                )));
            }
            requirements.push(Requirement {
                key: key.to_string(),
                negated,
                value: value.to_string(),
            });
        }
        Ok(Selector { requirements })
    }

    /// True when every requirement holds for `labels` (a missing label equals "").
    pub fn matches_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| {
            let got = labels.get(&r.key).map(String::as_str).unwrap_or("");
            (got == r.value) != r.negated
        })
    }

    /// True when every requirement holds for the fields of `object` (JSON), each key
    /// read as a dotted path; a missing field equals "", numbers and booleans compare by
    /// their JSON text.
    pub fn matches_fields(&self, object: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let got = field_text(object, &r.key);
            (got == r.value) != r.negated
        })
    }
}

fn field_text(object: &Value, path: &str) -> String {
    let mut cur = object;
    for part in path.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_terms() {
        let s = Selector::parse(" a=b , c!=d,e==f").unwrap();
        assert_eq!(s.requirements.len(), 3);
        assert!(!s.requirements[0].negated && s.requirements[1].negated);
        assert_eq!(s.requirements[2].key, "e");
        assert_eq!(s.requirements[2].value, "f");
        assert!(Selector::parse("").unwrap().requirements.is_empty());
    }

    #[test]
    fn rejects_bad_terms_with_position() {
        for (bad, want) in [
            ("a", "term 1"),
            ("a=b,,c=d", "term 2"),
            ("=b", "empty key"),
            ("a=b=c", "more than one"),
        ] {
            let e = Selector::parse(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn matches_labels_and_fields() {
        let mut labels = BTreeMap::new();
        labels.insert("app".to_string(), "web".to_string());
        assert!(Selector::parse("app=web").unwrap().matches_labels(&labels));
        assert!(!Selector::parse("app!=web").unwrap().matches_labels(&labels));
        assert!(Selector::parse("tier!=db").unwrap().matches_labels(&labels));
        assert!(!Selector::parse("tier=db").unwrap().matches_labels(&labels));

        let pod = json!({"spec": {"nodeName": "n1", "port": 80}, "metadata": {"name": "p"}});
        assert!(
            Selector::parse("spec.nodeName=n1")
                .unwrap()
                .matches_fields(&pod)
        );
        assert!(
            !Selector::parse("spec.nodeName=n2")
                .unwrap()
                .matches_fields(&pod)
        );
        assert!(
            Selector::parse("spec.port=80,metadata.name=p")
                .unwrap()
                .matches_fields(&pod)
        );
        assert!(
            Selector::parse("spec.missing=")
                .unwrap()
                .matches_fields(&pod)
        );
    }
}
