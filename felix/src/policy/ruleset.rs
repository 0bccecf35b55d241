//! The whole ACL rule set for one node: hooks, `cali-FORWARD`, the dispatch tree,
//! per-endpoint chains, policy chains, host INPUT rules, anti-spoofing (raw) and NAT
//! outgoing (nat), plus every ipset they use.
//!
//! Pure: `build_family(&PolicyInput, Family) -> Ruleset`, once per family (`build` is the
//! IPv4 one). Both families get the same chains (ip6tables for IPv6); they differ in the
//! ipsets (`cali40…` inet / `cali60…` inet6), in which pools and ipBlocks they hold, and in
//! the encapsulation INPUT rules, which exist only for IPv4 (IPIP and our VXLAN run over
//! the nodes' IPv4 addresses). Layout follows CALICO-FACTS.md
//! "iptables layout". Traffic between a pod and its own node is always allowed: pod → node
//! is accepted in `cali-wl-to-host` (after dropping tunnel packets), node → pod leaves
//! through OUTPUT and never meets workload policy.

use std::collections::{BTreeMap, BTreeSet};

use super::compile::{ACCEPT_MARK, CompiledPolicy, Ctx, compile_policy, masked};
use super::model::{
    DataplaneConfig, Family, Hooks, IpSetKind, IpSetSpec, PolicyInput, Rule, Ruleset, Table,
    TableRules,
};
use super::names;

pub const FORWARD_CHAIN: &str = "cali-FORWARD";
pub const INPUT_CHAIN: &str = "cali-INPUT";
pub const OUTPUT_CHAIN: &str = "cali-OUTPUT";
pub const WL_TO_HOST: &str = "cali-wl-to-host";
pub const FROM_DISPATCH: &str = "cali-from-wl-dispatch";
pub const TO_DISPATCH: &str = "cali-to-wl-dispatch";
pub const RAW_PREROUTING: &str = "cali-PREROUTING";
pub const NAT_POSTROUTING: &str = "cali-POSTROUTING";
pub const NAT_OUTGOING: &str = "cali-nat-outgoing";
pub const MASQ_POOLS_SET: &str = "cali40masq-ipam-pools";
pub const ALL_POOLS_SET: &str = "cali40all-ipam-pools";
pub const ALL_HOSTS_SET: &str = "cali40all-hosts-net";
pub const MASQ_POOLS_SET_V6: &str = "cali60masq-ipam-pools";
pub const ALL_POOLS_SET_V6: &str = "cali60all-ipam-pools";
/// Comment-free text of the anti-spoofing DROP rule (tests read its counter).
pub const RPF_DROP: &str = "-i cali+ -m rpfilter --invert -j DROP";

/// Build the desired IPv4 rule set.
pub fn build(input: &PolicyInput) -> Ruleset {
    build_family(input, Family::V4)
}

/// Build the desired rule set of `family` (iptables for V4, ip6tables for V6).
pub fn build_family(input: &PolicyInput, family: Family) -> Ruleset {
    let mut ctx = Ctx::new(family, &input.endpoints, &input.namespaces);
    // Encapsulated traffic between nodes is IPv4 only: no encap INPUT rules in IPv6.
    let mut cfg = input.config.clone();
    if family == Family::V6 {
        cfg.ipip = false;
        cfg.vxlan = false;
    }
    let cfg = &cfg;
    let mut policies: Vec<_> = input.policies.iter().collect();
    policies.sort_by_key(|p| (p.metadata.namespace.clone(), p.metadata.name.clone()));
    let compiled: Vec<CompiledPolicy> = policies
        .iter()
        .map(|p| compile_policy(&mut ctx, p))
        .collect();

    let mut filter = TableRules::default();
    // Policy chains.
    for cp in &compiled {
        for (chain, rules) in cp.ingress.iter().chain(cp.egress.iter()) {
            filter.chains.insert(chain.clone(), rules.clone());
        }
    }
    // Endpoint chains, local endpoints only, by interface name.
    let mut ifaces: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, ep) in input.endpoints.iter().enumerate() {
        if let Some(iface) = ep.iface.as_deref() {
            ifaces.insert(iface, i);
        }
    }
    for (&iface, &idx) in &ifaces {
        let pick = |egress: bool| -> Vec<&str> {
            compiled
                .iter()
                .filter(|cp| cp.selected.contains(&idx))
                .filter_map(|cp| {
                    if egress {
                        cp.egress.as_ref()
                    } else {
                        cp.ingress.as_ref()
                    }
                })
                .map(|(c, _)| c.as_str())
                .collect()
        };
        filter.chains.insert(
            names::to_wl_chain(iface),
            endpoint_chain(&pick(false), false, cfg),
        );
        filter.chains.insert(
            names::from_wl_chain(iface),
            endpoint_chain(&pick(true), true, cfg),
        );
    }
    let names_sorted: Vec<&str> = ifaces
        .keys()
        .copied()
        .filter(|n| n.starts_with("cali"))
        .collect();
    let fanout = cfg.dispatch_fanout.max(2);
    dispatch_tree(
        &mut filter.chains,
        FROM_DISPATCH,
        "-i",
        &names_sorted,
        fanout,
        names::from_wl_chain,
    );
    dispatch_tree(
        &mut filter.chains,
        TO_DISPATCH,
        "-o",
        &names_sorted,
        fanout,
        names::to_wl_chain,
    );

    filter.chains.insert(
        FORWARD_CHAIN.into(),
        vec![
            Rule::new("-j MARK --set-xmark 0x0/0x10000"),
            Rule::new(format!("-i cali+ -j {FROM_DISPATCH}")),
            Rule::new(format!("-o cali+ -j {TO_DISPATCH}")),
            Rule::new(format!("-m mark --mark {ACCEPT_MARK} -j ACCEPT")),
        ],
    );
    filter.chains.insert(INPUT_CHAIN.into(), input_chain(cfg));
    filter.chains.insert(WL_TO_HOST.into(), {
        let mut r = encap_drops(cfg);
        r.push(Rule::new("-j ACCEPT"));
        r
    });
    filter
        .chains
        .insert(OUTPUT_CHAIN.into(), vec![Rule::new("-o cali+ -j RETURN")]);
    for (kernel, ours) in [
        ("INPUT", INPUT_CHAIN),
        ("FORWARD", FORWARD_CHAIN),
        ("OUTPUT", OUTPUT_CHAIN),
    ] {
        filter.hooks.insert(
            kernel.into(),
            Hooks {
                insert: vec![Rule::new(format!("-j {ours}"))],
                append: vec![],
            },
        );
    }

    let mut raw = TableRules::default();
    raw.chains
        .insert(RAW_PREROUTING.into(), vec![Rule::new(RPF_DROP)]);
    raw.hooks.insert(
        "PREROUTING".into(),
        Hooks {
            insert: vec![Rule::new(format!("-j {RAW_PREROUTING}"))],
            append: vec![],
        },
    );

    let mut nat = TableRules::default();
    nat.chains.insert(
        NAT_POSTROUTING.into(),
        vec![Rule::new(format!("-j {NAT_OUTGOING}"))],
    );
    let (masq_set, all_pools_set) = match family {
        Family::V4 => (MASQ_POOLS_SET, ALL_POOLS_SET),
        Family::V6 => (MASQ_POOLS_SET_V6, ALL_POOLS_SET_V6),
    };
    let masq: BTreeSet<String> = family_pools(input, family, true);
    let all_pools: BTreeSet<String> = family_pools(input, family, false);
    let mut nat_rules = Vec::new();
    if !masq.is_empty() {
        nat_rules.push(Rule::new(format!(
            "-m set --match-set {masq_set} src -m set ! --match-set {all_pools_set} dst -j MASQUERADE --random-fully"
        )));
    }
    nat.chains.insert(NAT_OUTGOING.into(), nat_rules);
    nat.hooks.insert(
        "POSTROUTING".into(),
        Hooks {
            insert: vec![],
            append: vec![Rule::new(format!("-j {NAT_POSTROUTING}"))],
        },
    );

    let mut ipsets = ctx.ipsets;
    ipsets.insert(
        masq_set.into(),
        IpSetSpec {
            kind: IpSetKind::HashNet,
            members: masq,
        },
    );
    ipsets.insert(
        all_pools_set.into(),
        IpSetSpec {
            kind: IpSetKind::HashNet,
            members: all_pools,
        },
    );
    if cfg.ipip || cfg.vxlan {
        let hosts = input
            .node_ips
            .iter()
            .filter(|ip| ip.is_ipv4())
            .map(|ip| ip.to_string())
            .collect();
        ipsets.insert(
            ALL_HOSTS_SET.into(),
            IpSetSpec {
                kind: IpSetKind::HashIp,
                members: hosts,
            },
        );
    }

    let mut tables = BTreeMap::new();
    tables.insert(Table::Filter, filter);
    tables.insert(Table::Raw, raw);
    tables.insert(Table::Nat, nat);
    Ruleset {
        family,
        tables,
        ipsets,
        warnings: ctx.warnings,
    }
}

fn family_pools(input: &PolicyInput, family: Family, masq_only: bool) -> BTreeSet<String> {
    input
        .pools
        .iter()
        .filter(|p| !masq_only || p.nat_outgoing)
        .filter(|p| family.has_net(&p.cidr))
        .map(|p| masked(p.cidr).to_string())
        .collect()
}

fn encap_drops(cfg: &DataplaneConfig) -> Vec<Rule> {
    vec![
        Rule::new("-p 4 -j DROP"),
        Rule::new(format!("-p udp -m udp --dport {} -j DROP", cfg.vxlan_port)),
    ]
}

fn input_chain(cfg: &DataplaneConfig) -> Vec<Rule> {
    let mut r = Vec::new();
    if cfg.ipip {
        r.push(Rule::new(format!(
            "-p 4 -m set --match-set {ALL_HOSTS_SET} src -m addrtype --dst-type LOCAL -j ACCEPT"
        )));
        r.push(Rule::new("-p 4 -j DROP"));
    }
    if cfg.vxlan {
        let port = cfg.vxlan_port;
        r.push(Rule::new(format!(
            "-p udp -m udp --dport {port} -m set --match-set {ALL_HOSTS_SET} src -m addrtype --dst-type LOCAL -j ACCEPT"
        )));
        r.push(Rule::new(format!("-p udp -m udp --dport {port} -j DROP")));
    }
    r.push(Rule::new(format!("-i cali+ -g {WL_TO_HOST}")));
    r
}

/// `cali-tw-*` (egress = false) or `cali-fw-*` (egress = true).
fn endpoint_chain(policies: &[&str], egress: bool, cfg: &DataplaneConfig) -> Vec<Rule> {
    let mut r = vec![
        Rule::new("-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        Rule::new("-m conntrack --ctstate INVALID -j DROP"),
        Rule::new("-j MARK --set-xmark 0x0/0x10000"),
    ];
    if egress {
        r.extend(encap_drops(cfg));
    }
    for p in policies {
        r.push(Rule::new(format!("-j {p}")));
        r.push(Rule::new(format!("-m mark --mark {ACCEPT_MARK} -j RETURN")));
    }
    if policies.is_empty() {
        // Not selected in this direction: open (the namespace profile's allow).
        r.push(Rule::new(format!("-j MARK --set-xmark {ACCEPT_MARK}")));
    } else {
        // End of tier: selected, nothing allowed it.
        r.push(Rule::new("-j DROP"));
    }
    r
}

/// Dispatch by interface name: linear up to `fanout` names, else a tree of chains split
/// by the next character of the name. Every dispatch chain ends in DROP, so a `cali+`
/// interface felix does not know passes nothing.
fn dispatch_tree(
    chains: &mut BTreeMap<String, Vec<Rule>>,
    chain: &str,
    flag: &str,
    ifaces: &[&str],
    fanout: usize,
    target: fn(&str) -> String,
) {
    dispatch_level(chains, chain, chain, flag, "cali", ifaces, fanout, target);
}

#[allow(clippy::too_many_arguments)]
fn dispatch_level(
    chains: &mut BTreeMap<String, Vec<Rule>>,
    base: &str,
    chain: &str,
    flag: &str,
    prefix: &str,
    ifaces: &[&str],
    fanout: usize,
    target: fn(&str) -> String,
) {
    let mut rules = Vec::new();
    if ifaces.len() <= fanout {
        for i in ifaces {
            rules.push(Rule::new(format!("{flag} {i} -g {}", target(i))));
        }
    } else {
        let mut groups: BTreeMap<char, Vec<&str>> = BTreeMap::new();
        for i in ifaces {
            match i[prefix.len()..].chars().next() {
                None => rules.push(Rule::new(format!("{flag} {i} -g {}", target(i)))),
                Some(c) => groups.entry(c).or_default().push(i),
            }
        }
        for (c, members) in groups {
            if let [only] = members.as_slice() {
                rules.push(Rule::new(format!("{flag} {only} -g {}", target(only))));
                continue;
            }
            let sub_prefix = format!("{prefix}{c}");
            let sub = names::chain_name(&format!("{base}-"), &sub_prefix["cali".len()..]);
            rules.push(Rule::new(format!("{flag} {sub_prefix}+ -g {sub}")));
            dispatch_level(
                chains,
                base,
                &sub,
                flag,
                &sub_prefix,
                &members,
                fanout,
                target,
            );
        }
    }
    rules.push(Rule::new("-j DROP"));
    chains.insert(chain.to_string(), rules);
}
