//! Unit tests of the health decisions and the exact metrics text.

use std::time::UNIX_EPOCH;

use super::*;

fn peer(ip: &str, state: State, received: usize, advertised: usize) -> PeerStatus {
    PeerStatus {
        address: ip.parse().unwrap(),
        name: format!("Mesh_{ip}"),
        state,
        since: UNIX_EPOCH,
        last_error: None,
        info: state.to_string(),
        prefixes_received: received,
        prefixes_stale: 0,
        prefixes_advertised: advertised,
    }
}

fn felix_synced() -> FelixStatus {
    FelixStatus {
        in_sync: true,
        resyncs: 2,
        route_writes: 7,
        route_deletes: 1,
        ..FelixStatus::default()
    }
}

fn policy_programmed() -> PolicyStatus {
    PolicyStatus {
        in_sync: true,
        programs: 3,
        errors: 0,
        chains_written: 12,
        rules_written: 40,
        last_error: None,
    }
}

fn healthy(peers: Vec<PeerStatus>) -> Snapshot {
    Snapshot {
        agent: Some(AgentView {
            felix: Some(felix_synced()),
            policy: Some(policy_programmed()),
        }),
        bgp: BgpView::Peers(peers),
    }
}

#[test]
fn ready_with_one_established_peer_of_three() {
    let s = healthy(vec![
        peer("10.0.0.2", State::Established, 1, 1),
        peer("10.0.0.3", State::Active, 0, 0),
        peer("10.0.0.4", State::Connect, 0, 0),
    ]);
    assert!(liveness(&s).ok());
    assert_eq!(readiness(&s).body(), "ok\n");
}

#[test]
fn not_ready_without_an_established_peer_names_the_count() {
    let s = healthy(vec![
        peer("10.0.0.2", State::Active, 0, 0),
        peer("10.0.0.3", State::Idle, 0, 0),
        peer("10.0.0.4", State::OpenSent, 0, 0),
    ]);
    assert!(liveness(&s).ok(), "a down peer is not a dead agent");
    assert_eq!(
        readiness(&s).body(),
        "bgp: no peer Established (3 configured)\n"
    );
}

#[test]
fn no_peers_configured_or_no_bgp_is_ready() {
    assert!(readiness(&healthy(vec![])).ok());
    let mut s = healthy(vec![]);
    s.bgp = BgpView::Disabled;
    assert!(readiness(&s).ok());
}

#[test]
fn every_failing_check_gets_a_line() {
    let s = Snapshot {
        agent: Some(AgentView {
            felix: Some(FelixStatus {
                last_error: Some("netlink: EBUSY".into()),
                ..FelixStatus::default()
            }),
            policy: Some(PolicyStatus::default()),
        }),
        bgp: BgpView::Peers(vec![peer("10.0.0.2", State::Active, 0, 0)]),
    };
    assert_eq!(
        readiness(&s).reasons,
        vec![
            "felix: routes not in sync yet",
            "felix: last route pass failed: netlink: EBUSY",
            "policy: not programmed yet",
            "bgp: no peer Established (1 configured)",
        ]
    );
    let mut p = policy_programmed();
    p.record(Err("iptables-restore: exit status 2".into()));
    let s = Snapshot {
        agent: Some(AgentView {
            felix: Some(felix_synced()),
            policy: Some(p),
        }),
        bgp: BgpView::Disabled,
    };
    assert_eq!(
        readiness(&s).body(),
        "policy: last iptables pass failed: iptables-restore: exit status 2\n"
    );
}

#[test]
fn stopped_parts_fail_liveness_and_readiness() {
    let s = Snapshot {
        agent: None,
        bgp: BgpView::NoAnswer("timed out after 3s".into()),
    };
    let want =
        "agent: owner loop did not answer\nbgp: speaker did not answer: timed out after 3s\n";
    assert_eq!(liveness(&s).body(), want);
    assert_eq!(readiness(&s).body(), want);
    let s = Snapshot {
        agent: Some(AgentView {
            felix: None,
            policy: None,
        }),
        bgp: BgpView::Disabled,
    };
    assert_eq!(
        liveness(&s).reasons,
        vec![
            "felix: route reconciler stopped",
            "policy: iptables thread stopped"
        ]
    );
}

#[test]
fn metrics_text_is_exact() {
    let s = healthy(vec![
        peer("10.0.0.2", State::Established, 1, 2),
        peer("10.0.0.3", State::Active, 0, 0),
    ]);
    let want = r#"# HELP tortie_build_info Build of this tortie-node (value 1).
# TYPE tortie_build_info gauge
tortie_build_info{version="0.1.0"} 1
# HELP tortie_live 1 when /liveness answers 200.
# TYPE tortie_live gauge
tortie_live 1
# HELP tortie_ready 1 when /readiness answers 200.
# TYPE tortie_ready gauge
tortie_ready 1
# HELP tortie_bgp_peers Configured BGP peers by session state.
# TYPE tortie_bgp_peers gauge
tortie_bgp_peers{state="Idle"} 0
tortie_bgp_peers{state="Connect"} 0
tortie_bgp_peers{state="Active"} 1
tortie_bgp_peers{state="OpenSent"} 0
tortie_bgp_peers{state="OpenConfirm"} 0
tortie_bgp_peers{state="Established"} 1
# HELP tortie_bgp_prefixes_received Prefixes accepted from the peer (stale ones included).
# TYPE tortie_bgp_prefixes_received gauge
tortie_bgp_prefixes_received{peer="10.0.0.2"} 1
tortie_bgp_prefixes_received{peer="10.0.0.3"} 0
# HELP tortie_bgp_prefixes_stale Received prefixes kept as stale for a restarting peer (RFC 4724).
# TYPE tortie_bgp_prefixes_stale gauge
tortie_bgp_prefixes_stale{peer="10.0.0.2"} 0
tortie_bgp_prefixes_stale{peer="10.0.0.3"} 0
# HELP tortie_bgp_prefixes_advertised Prefixes advertised to the peer.
# TYPE tortie_bgp_prefixes_advertised gauge
tortie_bgp_prefixes_advertised{peer="10.0.0.2"} 2
tortie_bgp_prefixes_advertised{peer="10.0.0.3"} 0
# HELP tortie_felix_in_sync 1 once felix's routes follow a complete datastore listing.
# TYPE tortie_felix_in_sync gauge
tortie_felix_in_sync 1
# HELP tortie_felix_route_writes_total Routes written (added or replaced) by felix.
# TYPE tortie_felix_route_writes_total counter
tortie_felix_route_writes_total 7
# HELP tortie_felix_route_deletes_total Routes deleted by felix.
# TYPE tortie_felix_route_deletes_total counter
tortie_felix_route_deletes_total 1
# HELP tortie_felix_resyncs_total Full kernel route re-reads (timer, start, after errors).
# TYPE tortie_felix_resyncs_total counter
tortie_felix_resyncs_total 2
# HELP tortie_felix_failed_routes Routes the kernel refused in the last pass.
# TYPE tortie_felix_failed_routes gauge
tortie_felix_failed_routes 0
# HELP tortie_felix_routes_waiting_for_interface Desired routes whose interface does not exist yet.
# TYPE tortie_felix_routes_waiting_for_interface gauge
tortie_felix_routes_waiting_for_interface 0
# HELP tortie_felix_route_error 1 when the last route pass failed as a whole.
# TYPE tortie_felix_route_error gauge
tortie_felix_route_error 0
# HELP tortie_policy_in_sync 1 when the datastore's policy is programmed into iptables.
# TYPE tortie_policy_in_sync gauge
tortie_policy_in_sync 1
# HELP tortie_policy_programs_total Successful iptables programming passes.
# TYPE tortie_policy_programs_total counter
tortie_policy_programs_total 3
# HELP tortie_policy_errors_total Failed iptables programming passes.
# TYPE tortie_policy_errors_total counter
tortie_policy_errors_total 0
# HELP tortie_policy_chains_written_total Chains written with iptables-restore.
# TYPE tortie_policy_chains_written_total counter
tortie_policy_chains_written_total 12
# HELP tortie_policy_rules_written_total Rules written with iptables-restore.
# TYPE tortie_policy_rules_written_total counter
tortie_policy_rules_written_total 40
"#;
    assert_eq!(render_metrics(&s, "0.1.0"), want);
}

#[test]
fn metrics_of_a_silent_agent_keep_only_what_is_known() {
    let s = Snapshot {
        agent: None,
        bgp: BgpView::Disabled,
    };
    let text = render_metrics(&s, "x\"y");
    assert_eq!(
        text,
        "# HELP tortie_build_info Build of this tortie-node (value 1).\n\
         # TYPE tortie_build_info gauge\n\
         tortie_build_info{version=\"x\\\"y\"} 1\n\
         # HELP tortie_live 1 when /liveness answers 200.\n\
         # TYPE tortie_live gauge\n\
         tortie_live 0\n\
         # HELP tortie_ready 1 when /readiness answers 200.\n\
         # TYPE tortie_ready gauge\n\
         tortie_ready 0\n"
    );
}

#[test]
fn request_lines_map_to_endpoints() {
    assert_eq!(
        parse_request("GET /liveness HTTP/1.1"),
        Request::Get(Endpoint::Liveness)
    );
    assert_eq!(
        parse_request("GET /readiness HTTP/1.0"),
        Request::Get(Endpoint::Readiness)
    );
    assert_eq!(
        parse_request("GET /metrics?name[]=x HTTP/1.1"),
        Request::Get(Endpoint::Metrics)
    );
    assert_eq!(parse_request("GET / HTTP/1.1"), Request::NotFound);
    assert_eq!(
        parse_request("POST /readiness HTTP/1.1"),
        Request::BadMethod
    );
    assert_eq!(parse_request("GET /readiness"), Request::Malformed);
    assert_eq!(parse_request(""), Request::Malformed);
    assert_eq!(parse_request("\u{0}\u{1} garbage"), Request::Malformed);
}
