//! Kubernetes `LabelSelector` matching (`matchLabels` + `matchExpressions`) and a
//! canonical text form used to key ipsets.
//!
//! Pure. An empty selector matches everything; an invalid one (unknown operator, `In`
//! without values) is an error, which callers turn into "matches nothing".

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::PolicyError;

/// Does `sel` select an object carrying `labels`?
pub fn matches(
    sel: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, PolicyError> {
    if let Some(ml) = &sel.match_labels {
        for (k, v) in ml {
            if labels.get(k) != Some(v) {
                return Ok(false);
            }
        }
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or(&[]);
        let have = labels.get(&e.key);
        let ok = match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(PolicyError::BadSelector {
                    reason: format!("operator {} on key {:?} needs values", e.operator, e.key),
                });
            }
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => !have.is_some_and(|v| values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            other => {
                return Err(PolicyError::BadSelector {
                    reason: format!("unknown operator {other:?} on key {:?}", e.key),
                });
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A canonical text form: equal selectors (whatever their field order) give equal text.
pub fn canonical(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(ml) = &sel.match_labels {
        for (k, v) in ml {
            parts.push(format!("{k}=={v}"));
        }
    }
    for e in sel.match_expressions.iter().flatten() {
        let mut vals: Vec<&str> = e.values.iter().flatten().map(String::as_str).collect();
        vals.sort_unstable();
        vals.dedup();
        parts.push(format!("{} {} ({})", e.key, e.operator, vals.join(",")));
    }
    parts.sort();
    parts.dedup();
    parts.join(" && ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, vals: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if vals.is_empty() {
                None
            } else {
                Some(vals.iter().map(|s| s.to_string()).collect())
            },
        }
    }

    #[test]
    fn empty_selector_matches_all() {
        assert!(matches(&LabelSelector::default(), &labels(&[])).unwrap());
        assert!(matches(&LabelSelector::default(), &labels(&[("a", "b")])).unwrap());
    }

    #[test]
    fn match_labels_and_expressions() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("role", "db")])),
            match_expressions: Some(vec![
                expr("tier", "In", &["a", "b"]),
                expr("env", "NotIn", &["prod"]),
                expr("team", "Exists", &[]),
                expr("legacy", "DoesNotExist", &[]),
            ]),
        };
        let good = labels(&[("role", "db"), ("tier", "a"), ("team", "x")]);
        assert!(matches(&sel, &good).unwrap());
        let mut bad = good.clone();
        bad.insert("env".into(), "prod".into());
        assert!(!matches(&sel, &bad).unwrap());
        let mut bad = good.clone();
        bad.insert("legacy".into(), "1".into());
        assert!(!matches(&sel, &bad).unwrap());
        let mut bad = good.clone();
        bad.remove("team");
        assert!(!matches(&sel, &bad).unwrap());
        let mut bad = good;
        bad.insert("tier".into(), "c".into());
        assert!(!matches(&sel, &bad).unwrap());
    }

    #[test]
    fn invalid_operator_is_an_error() {
        let sel = LabelSelector {
            match_expressions: Some(vec![expr("a", "Like", &["x"])]),
            ..Default::default()
        };
        assert!(matches(&sel, &labels(&[("a", "x")])).is_err());
        let sel = LabelSelector {
            match_expressions: Some(vec![expr("a", "In", &[])]),
            ..Default::default()
        };
        assert!(matches(&sel, &labels(&[("a", "x")])).is_err());
    }

    #[test]
    fn canonical_ignores_order() {
        let a = LabelSelector {
            match_labels: Some(labels(&[("x", "1"), ("y", "2")])),
            match_expressions: Some(vec![expr("k", "In", &["b", "a"])]),
        };
        let b = LabelSelector {
            match_labels: Some(labels(&[("y", "2"), ("x", "1")])),
            match_expressions: Some(vec![expr("k", "In", &["a", "b"])]),
        };
        assert_eq!(canonical(&a), canonical(&b));
        assert_ne!(canonical(&a), canonical(&LabelSelector::default()));
    }
}
