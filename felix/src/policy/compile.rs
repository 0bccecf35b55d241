//! Kubernetes NetworkPolicy → per-policy chains (`cali-pi-<id>` ingress, `cali-po-<id>`
//! egress) and the ipsets their rules reference.
//!
//! Pure. Semantics (networking.k8s.io/v1): a policy selects pods of its own namespace by
//! `podSelector`; `policyTypes` defaults to Ingress plus Egress when egress rules exist;
//! a rule matches when any peer matches (no peers ⇒ any peer) and any port matches (no
//! ports ⇒ any port); a peer is a pod selector in the policy's namespace, a namespace
//! selector (all pods there), both (those pods in those namespaces) or an `ipBlock` with
//! `except`; a port defaults to TCP, may be named (resolved per destination pod through a
//! `hash:ip,port` set) and may be a range through `endPort`. A rule that lets a packet
//! through sets the accept mark; the endpoint chain returns on it.
//! One family at a time (`Ctx::family`): endpoint addresses and `ipBlock` CIDRs of that
//! family go to its ipsets (`cali40…` / `cali60…`); an `ipBlock` of the other family
//! matches nothing here (it is rendered in the other family's tables), so a rule whose
//! peers are all of the other family is left out of this family's chains, as Calico does.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::model::{Endpoint, Family, IpSetKind, IpSetSpec, Rule};
use super::{PolicyError, names, selector};

/// Accept mark set by policy rules; endpoint chains return when it is set.
pub const ACCEPT_MARK: &str = "0x10000/0x10000";

/// Label every namespace carries implicitly (Kubernetes ≥ 1.21 sets it).
pub const NS_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Shared state while compiling one input.
pub struct Ctx<'a> {
    /// The family being compiled.
    pub family: Family,
    pub endpoints: &'a [Endpoint],
    /// Namespace → labels, the implicit name label included.
    pub ns_labels: BTreeMap<String, BTreeMap<String, String>>,
    pub ipsets: BTreeMap<String, IpSetSpec>,
    pub warnings: Vec<PolicyError>,
}

/// One policy after compilation.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub namespace: String,
    pub name: String,
    /// Indexes into `Ctx::endpoints` of the pods the policy selects.
    pub selected: Vec<usize>,
    /// `(chain, rules)` when the policy applies to ingress.
    pub ingress: Option<(String, Vec<Rule>)>,
    pub egress: Option<(String, Vec<Rule>)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    In,
    Out,
}

impl Dir {
    fn peer_side(self) -> &'static str {
        match self {
            Dir::In => "src",
            Dir::Out => "dst",
        }
    }
    fn peer_flag(self) -> &'static str {
        match self {
            Dir::In => "-s",
            Dir::Out => "-d",
        }
    }
}

/// What a peer resolved to: iptables match text plus the endpoints it covers (for named
/// ports on egress).
struct PeerMatch {
    text: String,
    candidates: Vec<usize>,
    key: String,
}

impl<'a> Ctx<'a> {
    pub fn new(
        family: Family,
        endpoints: &'a [Endpoint],
        namespaces: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Self {
        let mut ns_labels = namespaces.clone();
        for ep in endpoints {
            ns_labels.entry(ep.namespace.clone()).or_default();
        }
        for (name, labels) in ns_labels.iter_mut() {
            labels
                .entry(NS_NAME_LABEL.to_string())
                .or_insert_with(|| name.clone());
        }
        Ctx {
            family,
            endpoints,
            ns_labels,
            ipsets: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    fn sel_matches(
        &mut self,
        sel: &LabelSelector,
        labels: &BTreeMap<String, String>,
        ctx: &str,
    ) -> bool {
        match selector::matches(sel, labels) {
            Ok(m) => m,
            Err(e) => {
                let w = PolicyError::InPolicy {
                    policy: ctx.to_string(),
                    reason: e.to_string(),
                };
                if !self.warnings.contains(&w) {
                    self.warnings.push(w);
                }
                false
            }
        }
    }

    /// Endpoints matching `pod_sel` within namespaces chosen by `ns`.
    fn select(
        &mut self,
        ns: NsScope<'_>,
        pod_sel: Option<&LabelSelector>,
        ctx: &str,
    ) -> Vec<usize> {
        let mut out = Vec::new();
        for i in 0..self.endpoints.len() {
            let ep = &self.endpoints[i];
            let ns_ok = match ns {
                NsScope::Exactly(n) => ep.namespace == n,
                NsScope::Selector(s) => {
                    let labels = self
                        .ns_labels
                        .get(&ep.namespace)
                        .cloned()
                        .unwrap_or_default();
                    self.sel_matches(s, &labels, ctx)
                }
            };
            if !ns_ok {
                continue;
            }
            let pod_ok = match pod_sel {
                None => true,
                Some(s) => {
                    let labels = ep.labels.clone();
                    self.sel_matches(s, &labels, ctx)
                }
            };
            if pod_ok {
                out.push(i);
            }
        }
        out
    }

    /// An ipset of the addresses (this family) of `eps`, keyed by `key`.
    fn member_set(&mut self, key: &str, eps: &[usize]) -> String {
        let name = names::ipset(self.family, 's', key);
        let family = self.family;
        let members = eps
            .iter()
            .flat_map(|&i| family_ips(&self.endpoints[i], family))
            .map(|ip| ip.to_string())
            .collect();
        self.ipsets.insert(
            name.clone(),
            IpSetSpec {
                kind: IpSetKind::HashIp,
                members,
            },
        );
        name
    }

    /// A `hash:ip,port` set of `(ip, proto:port)` for the named port on `eps`.
    fn named_port_set(&mut self, key: &str, proto: &str, port_name: &str, eps: &[usize]) -> String {
        let set_key = format!("np|{proto}|{port_name}|{key}");
        let name = names::ipset(self.family, 'n', &set_key);
        let mut members = BTreeSet::new();
        for &i in eps {
            let ep = &self.endpoints[i];
            for np in &ep.named_ports {
                if np.name == port_name && np.protocol.eq_ignore_ascii_case(proto) {
                    for ip in family_ips(ep, self.family) {
                        members.insert(format!("{ip},{proto}:{}", np.port));
                    }
                }
            }
        }
        self.ipsets.insert(
            name.clone(),
            IpSetSpec {
                kind: IpSetKind::HashIpPort,
                members,
            },
        );
        name
    }

    fn warn(&mut self, policy: &str, reason: String) {
        self.warnings.push(PolicyError::InPolicy {
            policy: policy.to_string(),
            reason,
        });
    }
}

#[derive(Clone, Copy)]
enum NsScope<'s> {
    Exactly(&'s str),
    Selector(&'s LabelSelector),
}

/// Addresses of an endpoint in `family`.
pub fn family_ips(ep: &Endpoint, family: Family) -> impl Iterator<Item = IpAddr> + '_ {
    ep.ips.iter().copied().filter(move |ip| family.has(ip))
}

/// `(ingress, egress)` after Kubernetes defaulting of `policyTypes`.
pub fn policy_types(spec: &NetworkPolicySpec) -> (bool, bool) {
    match &spec.policy_types {
        Some(types) if !types.is_empty() => (
            types.iter().any(|t| t.eq_ignore_ascii_case("Ingress")),
            types.iter().any(|t| t.eq_ignore_ascii_case("Egress")),
        ),
        _ => (true, spec.egress.as_ref().is_some_and(|e| !e.is_empty())),
    }
}

/// Compile one policy.
pub fn compile_policy(ctx: &mut Ctx<'_>, np: &NetworkPolicy) -> CompiledPolicy {
    let namespace = np
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = np.metadata.name.clone().unwrap_or_default();
    let label = format!("{namespace}/{name}");
    let spec = np.spec.clone().unwrap_or_default();
    let selected = ctx.select(
        NsScope::Exactly(&namespace),
        spec.pod_selector.as_ref(),
        &label,
    );
    let sel_key = format!(
        "ns:{namespace}|pod:{}",
        spec.pod_selector
            .as_ref()
            .map(selector::canonical)
            .unwrap_or_default()
    );
    let (do_in, do_out) = policy_types(&spec);
    let ingress = do_in.then(|| {
        let mut rules = Vec::new();
        for r in spec.ingress.iter().flatten() {
            let peers = r.from.as_deref().unwrap_or(&[]);
            let ports = r.ports.as_deref().unwrap_or(&[]);
            let sel = (sel_key.as_str(), selected.as_slice());
            compile_rule(
                ctx,
                &label,
                &namespace,
                Dir::In,
                peers,
                ports,
                sel,
                &mut rules,
            );
        }
        (names::policy_in_chain(&namespace, &name), rules)
    });
    let egress = do_out.then(|| {
        let mut rules = Vec::new();
        for r in spec.egress.iter().flatten() {
            let peers = r.to.as_deref().unwrap_or(&[]);
            let ports = r.ports.as_deref().unwrap_or(&[]);
            let sel = (sel_key.as_str(), selected.as_slice());
            compile_rule(
                ctx,
                &label,
                &namespace,
                Dir::Out,
                peers,
                ports,
                sel,
                &mut rules,
            );
        }
        (names::policy_out_chain(&namespace, &name), rules)
    });
    CompiledPolicy {
        namespace,
        name,
        selected,
        ingress,
        egress,
    }
}

/// One ingress/egress rule → iptables rules ending with a return-on-accept.
#[allow(clippy::too_many_arguments)]
fn compile_rule(
    ctx: &mut Ctx<'_>,
    label: &str,
    namespace: &str,
    dir: Dir,
    peers: &[NetworkPolicyPeer],
    ports: &[NetworkPolicyPort],
    selected: (&str, &[usize]),
    out: &mut Vec<Rule>,
) {
    let all: Vec<usize> = (0..ctx.endpoints.len()).collect();
    let peer_matches: Vec<PeerMatch> = if peers.is_empty() {
        vec![PeerMatch {
            text: String::new(),
            candidates: all,
            key: "all".into(),
        }]
    } else {
        peers
            .iter()
            .filter_map(|p| peer_match(ctx, label, namespace, dir, p, &all))
            .collect()
    };
    let before = out.len();
    for pm in &peer_matches {
        if ports.is_empty() {
            out.push(mark_rule(&[&pm.text]));
            continue;
        }
        for port in ports {
            // Named ports resolve against the destination: the selected pods on ingress,
            // the peer's pods on egress.
            let (cand_key, cands) = match dir {
                Dir::In => (selected.0.to_string(), selected.1.to_vec()),
                Dir::Out => (pm.key.clone(), pm.candidates.clone()),
            };
            match port_match(ctx, label, port, &cand_key, &cands) {
                Some(pt) => out.push(mark_rule(&[&pm.text, &pt])),
                None => continue,
            }
        }
    }
    if out.len() > before {
        out.push(Rule::new(format!("-m mark --mark {ACCEPT_MARK} -j RETURN")));
    }
}

fn mark_rule(parts: &[&str]) -> Rule {
    let mut s: Vec<&str> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    let tail = format!("-j MARK --set-xmark {ACCEPT_MARK}");
    s.push(&tail);
    Rule::new(s.join(" "))
}

/// A peer → match text; `None` when it can match nothing (IPv6, invalid).
fn peer_match(
    ctx: &mut Ctx<'_>,
    label: &str,
    namespace: &str,
    dir: Dir,
    peer: &NetworkPolicyPeer,
    all: &[usize],
) -> Option<PeerMatch> {
    if let Some(block) = &peer.ip_block {
        return ip_block_match(ctx, label, dir, block, all);
    }
    let (key, eps) = match (&peer.namespace_selector, &peer.pod_selector) {
        (None, None) => {
            ctx.warn(label, "peer has no selector and no ipBlock".into());
            return None;
        }
        (None, Some(ps)) => (
            format!("ns:{namespace}|pod:{}", selector::canonical(ps)),
            ctx.select(NsScope::Exactly(namespace), Some(ps), label),
        ),
        (Some(ns), ps) => (
            format!(
                "nssel:{}|pod:{}",
                selector::canonical(ns),
                ps.as_ref()
                    .map(selector::canonical)
                    .unwrap_or_else(|| "*".into())
            ),
            ctx.select(NsScope::Selector(ns), ps.as_ref(), label),
        ),
    };
    let set = ctx.member_set(&key, &eps);
    Some(PeerMatch {
        text: format!("-m set --match-set {set} {}", dir.peer_side()),
        candidates: eps,
        key,
    })
}

fn ip_block_match(
    ctx: &mut Ctx<'_>,
    label: &str,
    dir: Dir,
    block: &IPBlock,
    all: &[usize],
) -> Option<PeerMatch> {
    let cidr = match block.cidr.parse::<IpNetwork>() {
        Ok(n) if ctx.family.has_net(&n) => masked(n),
        Ok(_) => return None,
        Err(e) => {
            ctx.warn(label, format!("ipBlock.cidr {:?}: {e}", block.cidr));
            return None;
        }
    };
    let mut excepts = BTreeSet::new();
    for ex in block.except.iter().flatten() {
        match ex.parse::<IpNetwork>() {
            Ok(n) if ctx.family.has_net(&n) => {
                excepts.insert(masked(n).to_string());
            }
            Ok(_) => {}
            Err(e) => {
                // An except we cannot read would widen the rule: fail closed.
                ctx.warn(label, format!("ipBlock.except {ex:?}: {e}"));
                return None;
            }
        }
    }
    let mut text = format!("{} {cidr}", dir.peer_flag());
    let mut key = format!("net:{cidr}");
    if !excepts.is_empty() {
        let ex_key = excepts.iter().cloned().collect::<Vec<_>>().join(",");
        let name = names::ipset(ctx.family, 'e', &ex_key);
        text.push_str(&format!(" -m set ! --match-set {name} {}", dir.peer_side()));
        key.push_str(&format!("!{ex_key}"));
        ctx.ipsets.insert(
            name,
            IpSetSpec {
                kind: IpSetKind::HashNet,
                members: excepts,
            },
        );
    }
    Some(PeerMatch {
        text,
        candidates: all.to_vec(),
        key,
    })
}

/// `n` with its host bits cleared (`10.0.0.5/24` → `10.0.0.0/24`).
pub(super) fn masked(n: IpNetwork) -> IpNetwork {
    IpNetwork::new(n.network(), n.prefix()).unwrap_or(n)
}

/// A port entry → match text; `None` when invalid (warned, fail closed).
fn port_match(
    ctx: &mut Ctx<'_>,
    label: &str,
    port: &NetworkPolicyPort,
    cand_key: &str,
    cands: &[usize],
) -> Option<String> {
    let proto = port
        .protocol
        .as_deref()
        .unwrap_or("TCP")
        .to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        ctx.warn(
            label,
            format!("ports.protocol {proto:?} is not TCP, UDP or SCTP"),
        );
        return None;
    }
    match &port.port {
        None => Some(format!("-p {proto}")),
        Some(IntOrString::Int(p)) => {
            let Some(lo) = u16::try_from(*p).ok().filter(|p| *p > 0) else {
                ctx.warn(label, format!("ports.port {p} out of range"));
                return None;
            };
            match port.end_port {
                None => Some(format!("-p {proto} -m {proto} --dport {lo}")),
                Some(e) => match u16::try_from(e).ok().filter(|e| *e >= lo) {
                    Some(hi) if hi == lo => Some(format!("-p {proto} -m {proto} --dport {lo}")),
                    Some(hi) => Some(format!("-p {proto} -m {proto} --dport {lo}:{hi}")),
                    None => {
                        ctx.warn(
                            label,
                            format!("ports.endPort {e} below port {lo} or out of range"),
                        );
                        None
                    }
                },
            }
        }
        Some(IntOrString::String(name)) => {
            if port.end_port.is_some() {
                ctx.warn(label, format!("ports.endPort with named port {name:?}"));
                return None;
            }
            let set = ctx.named_port_set(cand_key, &proto, name, cands);
            Some(format!("-p {proto} -m set --match-set {set} dst,dst"))
        }
    }
}
