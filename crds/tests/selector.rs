//! Selector language: the operator table of Calico's documentation
//! (docs.tigera.io, NetworkPolicy reference, "Selectors"), canonical printing,
//! positioned errors, and a property test of print → parse.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use tortie_crds::selector::{Expr, Selector};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// (selector, labels, expected match) — the documented meaning of each operator.
#[test]
fn documented_operator_table() {
    let none = labels(&[]);
    let red = labels(&[("k", "v"), ("color", "red")]);
    let other = labels(&[("k", "w")]);
    let ns = labels(&[("projectcalico.org/name", "bar")]);
    let host = labels(&[("kubernetes.io/hostname", "node-1")]);
    let rr = labels(&[("route-reflector", "true")]);
    let cases: Vec<(&str, &BTreeMap<String, String>, bool)> = vec![
        // all(): every in-scope resource; !all() matches nothing.
        ("all()", &none, true),
        ("all()", &red, true),
        ("!all()", &red, false),
        // The empty selector selects everything, like all().
        ("", &red, true),
        ("   ", &none, true),
        // k == 'v': label k with value v.
        ("k == 'v'", &red, true),
        ("k == \"v\"", &red, true),
        ("k == 'v'", &other, false),
        ("k == 'v'", &none, false),
        // k != 'v': without label k, or k with another value.
        ("k != 'v'", &red, false),
        ("k != 'v'", &other, true),
        ("k != 'v'", &none, true),
        // has(k) / !has(k).
        ("has(k)", &red, true),
        ("has(k)", &none, false),
        ("!has(k)", &none, true),
        ("!has(k)", &red, false),
        // k in {...}: label present with a value in the set.
        ("k in { 'v1', 'v' }", &red, true),
        ("k in {'v1', 'v2'}", &red, false),
        ("k in {'v1', 'v2'}", &none, false),
        ("k in {}", &red, false),
        // k not in {...}: without label k, or a value outside the set.
        ("k not in { 'v1', 'v2' }", &red, true),
        ("k not in {'v', 'v2'}", &red, false),
        ("k not in {'v1'}", &none, true),
        // contains / starts with / ends with need the label.
        ("color contains 'e'", &red, true),
        ("color contains 'x'", &red, false),
        ("color starts with 're'", &red, true),
        ("color starts with 'ed'", &red, false),
        ("color ends with 'ed'", &red, true),
        ("color ends with 're'", &red, false),
        ("color contains ''", &none, false),
        // Boolean operators and grouping.
        ("k == 'v' && color == 'red'", &red, true),
        ("k == 'v' && color == 'blue'", &red, false),
        ("k == 'x' || color == 'red'", &red, true),
        ("!(k == 'v')", &red, false),
        ("!k == 'v'", &red, false),
        ("k == 'x' || k == 'v' && color == 'blue'", &red, false),
        ("(k == 'x' || k == 'v') && color == 'red'", &red, true),
        ("!!has(k)", &red, true),
        // Keys with a prefix, as Kubernetes labels have.
        ("projectcalico.org/name in {\"foo\", \"bar\"}", &ns, true),
        ("kubernetes.io/hostname == 'node-1'", &host, true),
        ("route-reflector == 'true'", &rr, true),
    ];
    for (text, l, want) in cases {
        let s = Selector::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(s.matches(l), want, "{text:?} on {l:?}");
        // The canonical text means the same thing.
        let again = Selector::parse(&s.to_string()).expect("canonical text parses");
        assert_eq!(again, s, "{text:?} printed as {s}");
    }
}

#[test]
fn canonical_text() {
    let cases = [
        ("", "all()"),
        ("k=='v'", "k == \"v\""),
        ("k in {'b','a','b'}", "k in {\"a\", \"b\"}"),
        ("k not in {}", "k not in {}"),
        (
            "a == 'x' || b == 'y' && !has(c)",
            "a == \"x\" || b == \"y\" && !has(c)",
        ),
        (
            "(a == 'x' || b == 'y') && c starts with 'z'",
            "(a == \"x\" || b == \"y\") && c starts with \"z\"",
        ),
        ("!(has(a) && has(b))", "!(has(a) && has(b))"),
        ("k == 'say \"hi\"'", "k == 'say \"hi\"'"),
        ("a ends with  \"q\"", "a ends with \"q\""),
    ];
    for (input, want) in cases {
        assert_eq!(
            Selector::parse(input).unwrap().to_string(),
            want,
            "{input:?}"
        );
    }
}

#[test]
fn errors_name_column_and_expectation() {
    let cases = [
        ("k == ", 6, "a quoted string"),
        ("k = 'v'", 3, "a label key"),
        ("k === 'v'", 5, "a quoted string"),
        ("has(k", 6, "`)` closing has("),
        ("k == 'v' &&", 12, "a label key"),
        ("k in {'a' 'b'}", 11, "`,` or `}`"),
        ("k in 'a'", 6, "`{`"),
        ("k starts 'a'", 10, "`with`"),
        ("k not {'a'}", 7, "`in`"),
        ("k == 'v' k == 'w'", 10, "`&&`, `||` or the end"),
        ("(k == 'v'", 10, "`)`"),
        ("k == 'unterminated", 6, "a closing '"),
        ("k", 2, "an operator"),
        ("all(x)", 5, "`)`"),
        ("k == 'v' & x", 10, "a label key"),
    ];
    for (text, column, expected) in cases {
        let e = Selector::parse(text).expect_err(text);
        assert_eq!(e.column, column, "{text:?}: {e}");
        assert!(
            e.expected.contains(expected),
            "{text:?}: expected {expected:?} in {e}"
        );
        assert!(
            e.to_string()
                .starts_with(&format!("column {column}: expected"))
        );
    }
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_.-]{0,6}",
        "[a-z]{1,5}\\.io/[a-z][a-z0-9-]{0,5}",
    ]
    .prop_filter("keywords are not keys", |k| {
        !matches!(
            k.as_str(),
            "in" | "not" | "contains" | "starts" | "ends" | "with"
        )
    })
}

fn value() -> impl Strategy<Value = String> {
    // Any printable text without both quote kinds (the language has no escapes).
    "[ -~]{0,8}".prop_filter("one quote kind at most", |v| {
        !(v.contains('\'') && v.contains('"'))
    })
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        Just(Expr::All),
        key().prop_map(Expr::Has),
        (key(), value()).prop_map(|(k, v)| Expr::Eq(k, v)),
        (key(), value()).prop_map(|(k, v)| Expr::Ne(k, v)),
        (key(), proptest::collection::btree_set(value(), 0..3)).prop_map(|(k, s)| Expr::In(k, s)),
        (key(), proptest::collection::btree_set(value(), 0..3))
            .prop_map(|(k, s)| Expr::NotIn(k, s)),
        (key(), value()).prop_map(|(k, v)| Expr::Contains(k, v)),
        (key(), value()).prop_map(|(k, v)| Expr::StartsWith(k, v)),
        (key(), value()).prop_map(|(k, v)| Expr::EndsWith(k, v)),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            proptest::collection::vec(inner, 2..4).prop_map(Expr::Or),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn print_then_parse_is_identity(e in expr()) {
        let text = e.to_string();
        let back = Selector::parse(&text).map_err(|err| TestCaseError::fail(format!("{text:?}: {err}")))?;
        prop_assert_eq!(back.expr(), &e, "printed as {}", text);
    }

    #[test]
    fn printing_preserves_meaning(e in expr(), ks in proptest::collection::btree_map(key(), value(), 0..4)) {
        let back = Selector::parse(&e.to_string()).expect("parses");
        prop_assert_eq!(back.matches(&ks), e.matches(&ks));
    }

    #[test]
    fn garbage_never_panics(text in "[ -~]{0,24}") {
        let _ = Selector::parse(&text);
    }
}

#[test]
fn sets_are_sets() {
    let s = Selector::parse("k in {'a', 'a', 'b'}").unwrap();
    let want: BTreeSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
    assert_eq!(s.expr(), &Expr::In("k".into(), want));
}
