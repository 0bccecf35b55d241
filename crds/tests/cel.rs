//! The `x-kubernetes-validations` CEL rules of the generated CRDs, evaluated with the
//! `cel-interpreter` crate (the 1.20 test apiserver predates CEL), must agree with the
//! Rust validation on every old/new pair below, and every rule must reject something.
//!
//! As the apiserver does: `self` is the object at the rule's schema position, `oldSelf`
//! the previous one; rules mentioning `oldSelf` run on updates only; JSON integers are
//! CEL ints.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use cel_interpreter::objects::{Key, Map};
use cel_interpreter::{Context, Program, Value};
use serde::Serialize;
use serde_json::Value as Json;
use tortie_crds::{
    AffinityState, AllowedUse, BgpConfiguration, BgpConfigurationSpec, BgpPassword, BgpPeer,
    BgpPeerSpec, BlockAffinity, BlockAffinitySpec, EncapMode, IpPool, IpPoolSpec, IpamBlock,
    IpamBlockSpec, ValidateUpdate, ValidationErrors,
};

/// One rule found in a CRD: where it sits (properties path) and what it says.
#[derive(Clone, Debug)]
struct Rule {
    kind: String,
    path: Vec<String>,
    rule: String,
    message: String,
}

fn collect(kind: &str, schema: &Json, path: &mut Vec<String>, out: &mut Vec<Rule>) {
    if let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Json::as_array)
    {
        for r in rules {
            out.push(Rule {
                kind: kind.to_string(),
                path: path.clone(),
                rule: r["rule"].as_str().expect("rule text").to_string(),
                message: r["message"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    if let Some(props) = schema.get("properties").and_then(Json::as_object) {
        for (name, sub) in props {
            path.push(name.clone());
            collect(kind, sub, path, out);
            path.pop();
        }
    }
    if let Some(items) = schema.get("items") {
        path.push("[]".into());
        collect(kind, items, path, out);
        path.pop();
    }
}

fn all_rules() -> Vec<Rule> {
    let mut out = Vec::new();
    for crd in tortie_crds::crdgen::all_crds() {
        let v = serde_json::to_value(&crd).expect("CRD to JSON");
        let schema = &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        collect(&crd.spec.names.kind, schema, &mut Vec::new(), &mut out);
    }
    out
}

fn to_cel(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN))),
        Json::String(s) => Value::String(Arc::new(s.clone())),
        Json::Array(a) => Value::List(Arc::new(a.iter().map(to_cel).collect())),
        Json::Object(o) => {
            let map: HashMap<Key, Value> = o
                .iter()
                .filter(|(_, v)| !v.is_null()) // an absent field is what has() tests
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            Value::Map(Map { map: Arc::new(map) })
        }
    }
}

fn at<'a>(v: &'a Json, path: &[String]) -> Option<&'a Json> {
    path.iter().try_fold(v, |cur, p| cur.get(p))
}

/// Messages of the rules of `kind` that reject `new` (given `old` on update).
fn cel_failures(rules: &[Rule], kind: &str, old: Option<&Json>, new: &Json) -> Vec<String> {
    let mut failed = Vec::new();
    for r in rules.iter().filter(|r| r.kind == kind) {
        let transition = r.rule.contains("oldSelf");
        if transition && old.is_none() {
            continue;
        }
        let Some(selfv) = at(new, &r.path) else {
            continue;
        };
        let program = Program::compile(&r.rule)
            .unwrap_or_else(|e| panic!("rule {:?} does not compile: {e:?}", r.rule));
        let mut ctx = Context::default();
        ctx.add_variable_from_value("self", to_cel(selfv));
        if let Some(o) = old.and_then(|o| at(o, &r.path)) {
            ctx.add_variable_from_value("oldSelf", to_cel(o));
        }
        match program.execute(&ctx) {
            Ok(Value::Bool(true)) => {}
            Ok(Value::Bool(false)) => failed.push(r.message.clone()),
            other => panic!("rule {:?} on {selfv} gave {other:?}", r.rule),
        }
    }
    failed
}

/// The field a rule message names: its text up to the first `:` or ` is`.
fn message_field(msg: &str) -> &str {
    let end = msg
        .find(':')
        .or_else(|| msg.find(" is"))
        .unwrap_or(msg.len());
    &msg[..end]
}

struct Outcome {
    label: String,
    kind: &'static str,
    cel: Vec<String>,
    rust: Result<(), ValidationErrors>,
}

fn check<T: ValidateUpdate + Serialize>(
    rules: &[Rule],
    kind: &'static str,
    label: &str,
    old: Option<&T>,
    new: &T,
) -> Outcome {
    let newj = serde_json::to_value(new).unwrap();
    let oldj = old.map(|o| serde_json::to_value(o).unwrap());
    Outcome {
        label: label.to_string(),
        kind,
        cel: cel_failures(rules, kind, oldj.as_ref(), &newj),
        rust: match old {
            Some(o) => new.validate_update(o),
            None => new.validate(),
        },
    }
}

fn pool(cidr: &str, f: impl FnOnce(&mut IpPoolSpec)) -> IpPool {
    let mut spec = IpPoolSpec::new(cidr.parse().unwrap());
    f(&mut spec);
    IpPool::new("p", spec)
}

fn peer(f: impl FnOnce(&mut BgpPeerSpec)) -> BgpPeer {
    let mut spec = BgpPeerSpec::default();
    f(&mut spec);
    BgpPeer::new("peer", spec)
}

fn bgpconf(f: impl FnOnce(&mut BgpConfigurationSpec)) -> BgpConfiguration {
    let mut spec = BgpConfigurationSpec::default();
    f(&mut spec);
    BgpConfiguration::new("default", spec)
}

fn password() -> BgpPassword {
    BgpPassword {
        secret_key_ref: Some(k8s_openapi::api::core::v1::SecretKeySelector {
            name: "bgp".into(),
            key: "mesh".into(),
            optional: None,
        }),
    }
}

fn block(cidr: &str) -> IpamBlock {
    let c = cidr.parse().unwrap();
    IpamBlock::new(
        &IpamBlock::name_for(&c),
        IpamBlockSpec::empty(c, Some("n1")),
    )
}

fn affinity(node: &str, cidr: &str, state: AffinityState) -> BlockAffinity {
    let c = cidr.parse().unwrap();
    BlockAffinity::new(
        &BlockAffinity::name_for(node, &c),
        BlockAffinitySpec {
            state,
            node: node.to_string(),
            cidr: c,
            deleted: false,
        },
    )
}

fn outcomes(rules: &[Rule]) -> Vec<Outcome> {
    let v4 = pool("10.0.0.0/16", |_| {});
    let v6 = pool("fd00::/48", |_| {});
    let ip = |s: &str| Some(s.to_string());
    vec![
        // IPPool, create.
        check(rules, "IPPool", "v4 defaults", None, &v4),
        check(
            rules,
            "IPPool",
            "v6 vxlan",
            None,
            &pool("fd00::/48", |s| s.vxlan_mode = EncapMode::Always),
        ),
        check(
            rules,
            "IPPool",
            "bs 20",
            None,
            &pool("10.0.0.0/16", |s| s.block_size = Some(20)),
        ),
        check(
            rules,
            "IPPool",
            "bs 32",
            None,
            &pool("10.0.0.0/16", |s| s.block_size = Some(32)),
        ),
        check(
            rules,
            "IPPool",
            "bs 128",
            None,
            &pool("fd00::/48", |s| s.block_size = Some(128)),
        ),
        check(
            rules,
            "IPPool",
            "ipip cross",
            None,
            &pool("10.0.0.0/16", |s| s.ipip_mode = EncapMode::CrossSubnet),
        ),
        check(
            rules,
            "IPPool",
            "ipip+vxlan",
            None,
            &pool("10.0.0.0/16", |s| {
                s.ipip_mode = EncapMode::Always;
                s.vxlan_mode = EncapMode::CrossSubnet;
            }),
        ),
        check(
            rules,
            "IPPool",
            "ipip v6",
            None,
            &pool("fd00::/48", |s| s.ipip_mode = EncapMode::Always),
        ),
        check(
            rules,
            "IPPool",
            "bs 19",
            None,
            &pool("10.0.0.0/16", |s| s.block_size = Some(19)),
        ),
        check(
            rules,
            "IPPool",
            "bs 33",
            None,
            &pool("10.0.0.0/16", |s| s.block_size = Some(33)),
        ),
        check(
            rules,
            "IPPool",
            "v6 bs 115",
            None,
            &pool("fd00::/48", |s| s.block_size = Some(115)),
        ),
        check(
            rules,
            "IPPool",
            "v6 bs 26",
            None,
            &pool("fd00::/48", |s| s.block_size = Some(26)),
        ),
        check(
            rules,
            "IPPool",
            "lb only",
            None,
            &pool("10.0.0.0/16", |s| {
                s.allowed_uses = vec![AllowedUse::LoadBalancer]
            }),
        ),
        check(
            rules,
            "IPPool",
            "lb+workload",
            None,
            &pool("10.0.0.0/16", |s| {
                s.allowed_uses = vec![AllowedUse::LoadBalancer, AllowedUse::Workload];
            }),
        ),
        check(
            rules,
            "IPPool",
            "lb vxlan",
            None,
            &pool("10.0.0.0/16", |s| {
                s.allowed_uses = vec![AllowedUse::LoadBalancer];
                s.vxlan_mode = EncapMode::Always;
            }),
        ),
        // IPPool, update.
        check(
            rules,
            "IPPool",
            "nat on",
            Some(&v4),
            &pool("10.0.0.0/16", |s| s.nat_outgoing = true),
        ),
        check(
            rules,
            "IPPool",
            "bs default made explicit",
            Some(&v4),
            &pool("10.0.0.0/16", |s| s.block_size = Some(26)),
        ),
        check(
            rules,
            "IPPool",
            "v6 bs default made explicit",
            Some(&v6),
            &pool("fd00::/48", |s| s.block_size = Some(122)),
        ),
        check(
            rules,
            "IPPool",
            "cidr moved",
            Some(&v4),
            &pool("10.1.0.0/16", |_| {}),
        ),
        check(
            rules,
            "IPPool",
            "bs changed",
            Some(&v4),
            &pool("10.0.0.0/16", |s| s.block_size = Some(28)),
        ),
        check(
            rules,
            "IPPool",
            "bs explicit → other",
            Some(&pool("10.0.0.0/16", |s| s.block_size = Some(24))),
            &v4,
        ),
        // BGPPeer.
        check(
            rules,
            "BGPPeer",
            "global peer",
            None,
            &peer(|s| {
                s.peer_ip = ip("192.0.2.1");
                s.as_number = Some(65000.into());
            }),
        ),
        check(
            rules,
            "BGPPeer",
            "node peer",
            None,
            &peer(|s| {
                s.node = ip("n1");
                s.peer_ip = ip("192.0.2.1:1179");
                s.as_number = Some(65000.into());
            }),
        ),
        check(
            rules,
            "BGPPeer",
            "rr selectors",
            None,
            &peer(|s| {
                s.node_selector = ip("all()");
                s.peer_selector = ip("route-reflector == 'true'");
            }),
        ),
        check(
            rules,
            "BGPPeer",
            "empty node with selector",
            None,
            &peer(|s| {
                s.node = ip("");
                s.node_selector = ip("all()");
                s.peer_selector = ip("has(rr)");
            }),
        ),
        check(
            rules,
            "BGPPeer",
            "node+nodeSelector",
            None,
            &peer(|s| {
                s.node = ip("n1");
                s.node_selector = ip("all()");
                s.peer_ip = ip("192.0.2.1");
                s.as_number = Some(65000.into());
            }),
        ),
        check(
            rules,
            "BGPPeer",
            "peerIP+peerSelector",
            None,
            &peer(|s| {
                s.peer_ip = ip("192.0.2.1");
                s.as_number = Some(65000.into());
                s.peer_selector = ip("has(rr)");
            }),
        ),
        check(
            rules,
            "BGPPeer",
            "peerSelector with AS",
            None,
            &peer(|s| {
                s.peer_selector = ip("has(rr)");
                s.as_number = Some(65000.into());
            }),
        ),
        // BGPConfiguration.
        check(
            rules,
            "BGPConfiguration",
            "mesh off",
            None,
            &bgpconf(|s| s.node_to_node_mesh_enabled = Some(false)),
        ),
        check(
            rules,
            "BGPConfiguration",
            "mesh on, password",
            None,
            &bgpconf(|s| {
                s.node_to_node_mesh_enabled = Some(true);
                s.node_mesh_password = Some(password());
                s.node_mesh_max_restart_time = ip("60s");
            }),
        ),
        check(
            rules,
            "BGPConfiguration",
            "mesh off, password",
            None,
            &bgpconf(|s| {
                s.node_to_node_mesh_enabled = Some(false);
                s.node_mesh_password = Some(password());
            }),
        ),
        check(
            rules,
            "BGPConfiguration",
            "mesh off, restart time",
            None,
            &bgpconf(|s| {
                s.node_to_node_mesh_enabled = Some(false);
                s.node_mesh_max_restart_time = ip("60s");
            }),
        ),
        check(
            rules,
            "BGPPeer",
            "no remote",
            None,
            &peer(|s| s.node = ip("n1")),
        ),
        check(
            rules,
            "BGPPeer",
            "peerIP without AS",
            None,
            &peer(|s| s.peer_ip = ip("192.0.2.1")),
        ),
        // IPAMBlock and BlockAffinity, updates.
        check(
            rules,
            "IPAMBlock",
            "block unchanged",
            Some(&block("10.0.0.0/26")),
            &block("10.0.0.0/26"),
        ),
        check(
            rules,
            "IPAMBlock",
            "block moved",
            Some(&block("10.0.0.0/26")),
            &block("10.0.0.64/26"),
        ),
        check(
            rules,
            "BlockAffinity",
            "confirm",
            Some(&affinity("n1", "10.0.0.0/26", AffinityState::Pending)),
            &affinity("n1", "10.0.0.0/26", AffinityState::Confirmed),
        ),
        check(
            rules,
            "BlockAffinity",
            "node changed",
            Some(&affinity("n1", "10.0.0.0/26", AffinityState::Confirmed)),
            &affinity("n2", "10.0.0.0/26", AffinityState::Confirmed),
        ),
        check(
            rules,
            "BlockAffinity",
            "cidr changed",
            Some(&affinity("n1", "10.0.0.0/26", AffinityState::Confirmed)),
            &affinity("n1", "10.0.0.64/26", AffinityState::Confirmed),
        ),
    ]
}

#[test]
fn cel_rules_agree_with_rust_validation() {
    let rules = all_rules();
    assert!(
        rules.len() >= 10,
        "expected the CRDs to carry CEL rules, found {rules:?}"
    );
    let mut problems = Vec::new();
    for o in outcomes(&rules) {
        match (&o.rust, o.cel.is_empty()) {
            (Ok(()), true) => {}
            (Err(e), false) => {
                for msg in &o.cel {
                    let field = message_field(msg);
                    if !e.mentions(field) {
                        problems.push(format!(
                            "{} {}: CEL says {msg:?}, Rust says {e} (no {field})",
                            o.kind, o.label
                        ));
                    }
                }
            }
            (rust, _) => problems.push(format!(
                "{} {}: CEL failures {:?}, Rust {:?}",
                o.kind, o.label, o.cel, rust
            )),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_rule_rejects_some_case() {
    let rules = all_rules();
    let fired: BTreeSet<String> = outcomes(&rules)
        .into_iter()
        .flat_map(|o| o.cel.into_iter().map(move |m| format!("{}/{m}", o.kind)))
        .collect();
    let never: Vec<String> = rules
        .iter()
        .map(|r| format!("{}/{}", r.kind, r.message))
        .filter(|k| !fired.contains(k))
        .collect();
    assert!(never.is_empty(), "rules no case rejects: {never:?}");
}

#[test]
fn rules_sit_where_expected() {
    let by_kind: BTreeMap<String, usize> = all_rules().iter().fold(BTreeMap::new(), |mut m, r| {
        assert_eq!(r.path, vec!["spec".to_string()], "{r:?}");
        *m.entry(r.kind.clone()).or_default() += 1;
        m
    });
    assert_eq!(by_kind.get("IPPool"), Some(&7));
    assert_eq!(by_kind.get("BGPPeer"), Some(&5));
    assert_eq!(by_kind.get("BGPConfiguration"), Some(&2));
    assert_eq!(by_kind.get("IPAMBlock"), Some(&1));
    assert_eq!(by_kind.get("BlockAffinity"), Some(&2));
}
