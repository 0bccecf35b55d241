//! Health and metrics decisions, as calico-node's health port answers them: liveness,
//! readiness and the Prometheus text exposition, each a function of one [`Snapshot`] of
//! the agent's state, plus the mapping of an HTTP request line to an endpoint.
//!
//! Pure: no I/O, no clock, no async. [`crate::health_server`] gathers the snapshot (the
//! owner loop's answer with felix's and the policy thread's status, the speaker's peer
//! table) and writes the answers.
//!
//! - `GET /liveness`: 200 while the owner loop, felix's route reconciler, the policy
//!   thread and (with BGP) the speaker all answer; else 503.
//! - `GET /readiness`: 200 when additionally felix's routes are in sync, the policy is
//!   programmed and, unless no BGP peer is configured, at least one peer is
//!   Established; else 503 with one line per failing check.
//! - `GET /metrics`: `text/plain; version=0.0.4` (see [`render_metrics`]).

use std::fmt::Write as _;

use tortie_bgp::speaker::{PeerStatus, State};
use tortie_felix::route::Status as FelixStatus;

use crate::policy::PolicyStatus;

/// The owner loop's answer: the status of the components it owns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentView {
    /// Felix's route reconciler; `None` when its task has stopped.
    pub felix: Option<FelixStatus>,
    /// The policy thread; `None` when it has stopped.
    pub policy: Option<PolicyStatus>,
}

/// The speaker's side of the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BgpView {
    /// No BGP speaker runs (`CALICO_NETWORKING_BACKEND` vxlan or none).
    Disabled,
    /// The speaker's peer table (every configured peer).
    Peers(Vec<PeerStatus>),
    /// The speaker did not answer (the text says why).
    NoAnswer(String),
}

/// Everything one health answer or metrics scrape is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `None` when the owner loop did not answer in time.
    pub agent: Option<AgentView>,
    pub bgp: BgpView,
}

/// The outcome of a check: healthy when no reason is given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// One short line per failing check (`bgp: no peer Established (3 configured)`).
    pub reasons: Vec<String>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.reasons.is_empty()
    }

    /// The plain-text body: `ok`, or the reasons, one per line.
    pub fn body(&self) -> String {
        if self.ok() {
            "ok\n".to_string()
        } else {
            let mut s = self.reasons.join("\n");
            s.push('\n');
            s
        }
    }
}

/// Liveness: every long-running part of the agent answers.
pub fn liveness(s: &Snapshot) -> Verdict {
    let mut reasons = Vec::new();
    match &s.agent {
        None => reasons.push("agent: owner loop did not answer".to_string()),
        Some(a) => {
            if a.felix.is_none() {
                reasons.push("felix: route reconciler stopped".to_string());
            }
            if a.policy.is_none() {
                reasons.push("policy: iptables thread stopped".to_string());
            }
        }
    }
    if let BgpView::NoAnswer(why) = &s.bgp {
        reasons.push(format!("bgp: speaker did not answer: {why}"));
    }
    Verdict { reasons }
}

/// Readiness: alive, and the dataplane and BGP are where they should be.
pub fn readiness(s: &Snapshot) -> Verdict {
    let mut v = liveness(s);
    if let Some(a) = &s.agent {
        if let Some(f) = &a.felix {
            if !f.in_sync {
                v.reasons.push("felix: routes not in sync yet".to_string());
            }
            if let Some(e) = &f.last_error {
                v.reasons
                    .push(format!("felix: last route pass failed: {e}"));
            }
        }
        if let Some(p) = &a.policy {
            if let Some(e) = &p.last_error {
                v.reasons
                    .push(format!("policy: last iptables pass failed: {e}"));
            } else if !p.programmed() {
                v.reasons.push("policy: not programmed yet".to_string());
            }
        }
    }
    if let BgpView::Peers(peers) = &s.bgp
        && !peers.is_empty()
        && !peers.iter().any(|p| p.state == State::Established)
    {
        v.reasons.push(format!(
            "bgp: no peer Established ({} configured)",
            peers.len()
        ));
    }
    v
}

/// Every BGP session state, in RFC 4271 order (each gets a `tortie_bgp_peers` line).
const STATES: [State; 6] = [
    State::Idle,
    State::Connect,
    State::Active,
    State::OpenSent,
    State::OpenConfirm,
    State::Established,
];

/// Escapes a label value (backslash, double quote, newline) for the text format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: u64) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.family(name, kind, help);
        self.sample(name, "", value);
    }

    fn per_peer(
        &mut self,
        name: &str,
        help: &str,
        peers: &[PeerStatus],
        f: fn(&PeerStatus) -> usize,
    ) {
        self.family(name, "gauge", help);
        for p in peers {
            let labels = format!("peer=\"{}\"", label(&p.address.to_string()));
            self.sample(name, &labels, f(p) as u64);
        }
    }
}

/// The Prometheus text exposition (format 0.0.4) of a snapshot. Families of a part
/// that did not answer are left out; `tortie_live`/`tortie_ready` say so.
pub fn render_metrics(s: &Snapshot, version: &str) -> String {
    let mut o = Out(String::new());
    o.family(
        "tortie_build_info",
        "gauge",
        "Build of this tortie-node (value 1).",
    );
    o.sample(
        "tortie_build_info",
        &format!("version=\"{}\"", label(version)),
        1,
    );
    o.one(
        "tortie_live",
        "gauge",
        "1 when /liveness answers 200.",
        u64::from(liveness(s).ok()),
    );
    o.one(
        "tortie_ready",
        "gauge",
        "1 when /readiness answers 200.",
        u64::from(readiness(s).ok()),
    );
    if let BgpView::Peers(peers) = &s.bgp {
        o.family(
            "tortie_bgp_peers",
            "gauge",
            "Configured BGP peers by session state.",
        );
        for st in STATES {
            let n = peers.iter().filter(|p| p.state == st).count();
            o.sample("tortie_bgp_peers", &format!("state=\"{st}\""), n as u64);
        }
        o.per_peer(
            "tortie_bgp_prefixes_received",
            "Prefixes accepted from the peer (stale ones included).",
            peers,
            |p| p.prefixes_received,
        );
        o.per_peer(
            "tortie_bgp_prefixes_stale",
            "Received prefixes kept as stale for a restarting peer (RFC 4724).",
            peers,
            |p| p.prefixes_stale,
        );
        o.per_peer(
            "tortie_bgp_prefixes_advertised",
            "Prefixes advertised to the peer.",
            peers,
            |p| p.prefixes_advertised,
        );
    }
    let Some(agent) = &s.agent else {
        return o.0;
    };
    if let Some(f) = &agent.felix {
        o.one(
            "tortie_felix_in_sync",
            "gauge",
            "1 once felix's routes follow a complete datastore listing.",
            u64::from(f.in_sync),
        );
        o.one(
            "tortie_felix_route_writes_total",
            "counter",
            "Routes written (added or replaced) by felix.",
            f.route_writes,
        );
        o.one(
            "tortie_felix_route_deletes_total",
            "counter",
            "Routes deleted by felix.",
            f.route_deletes,
        );
        o.one(
            "tortie_felix_resyncs_total",
            "counter",
            "Full kernel route re-reads (timer, start, after errors).",
            f.resyncs,
        );
        o.one(
            "tortie_felix_failed_routes",
            "gauge",
            "Routes the kernel refused in the last pass.",
            f.failed_routes as u64,
        );
        o.one(
            "tortie_felix_routes_waiting_for_interface",
            "gauge",
            "Desired routes whose interface does not exist yet.",
            f.waiting_for_iface as u64,
        );
        o.one(
            "tortie_felix_route_error",
            "gauge",
            "1 when the last route pass failed as a whole.",
            u64::from(f.last_error.is_some()),
        );
    }
    if let Some(p) = &agent.policy {
        o.one(
            "tortie_policy_in_sync",
            "gauge",
            "1 when the datastore's policy is programmed into iptables.",
            u64::from(p.programmed()),
        );
        o.one(
            "tortie_policy_programs_total",
            "counter",
            "Successful iptables programming passes.",
            p.programs,
        );
        o.one(
            "tortie_policy_errors_total",
            "counter",
            "Failed iptables programming passes.",
            p.errors,
        );
        o.one(
            "tortie_policy_chains_written_total",
            "counter",
            "Chains written with iptables-restore.",
            p.chains_written,
        );
        o.one(
            "tortie_policy_rules_written_total",
            "counter",
            "Rules written with iptables-restore.",
            p.rules_written,
        );
    }
    o.0
}

/// The endpoints of the health listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Liveness,
    Readiness,
    Metrics,
}

/// What a request asks for, from its first line (`GET /readiness HTTP/1.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Get(Endpoint),
    /// A GET of another path (404).
    NotFound,
    /// Another method (405).
    BadMethod,
    /// Not an HTTP request line (400).
    Malformed,
}

/// Parses the request line; a query string is ignored (`/metrics?x=1`).
pub fn parse_request(line: &str) -> Request {
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Request::Malformed;
    };
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/")) {
        return Request::Malformed;
    }
    if method != "GET" {
        return Request::BadMethod;
    }
    let path = target.split('?').next().unwrap_or_default();
    match path {
        "/liveness" => Request::Get(Endpoint::Liveness),
        "/readiness" => Request::Get(Endpoint::Readiness),
        "/metrics" => Request::Get(Endpoint::Metrics),
        _ => Request::NotFound,
    }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
