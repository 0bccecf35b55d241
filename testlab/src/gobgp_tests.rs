//! Unit tests of the GoBGP config renderer and JSON parsers, on output captured from
//! gobgp 3.10.

use super::*;

const RIB: &str = r#"{"10.1.0.0/26":[{"nlri":{"prefix":"10.1.0.0/26"},"age":1795263360,"best":true,"attrs":[{"type":1,"value":0},{"type":2,"as_paths":[{"segment_type":2,"num":1,"asns":[65001]},{"segment_type":1,"num":2,"asns":[65007,65008]}]},{"type":3,"nexthop":"10.9.0.1"},{"type":5,"value":100}],"stale":true,"source-id":"10.9.0.1","neighbor-ip":"10.9.0.1"}],"10.2.0.0/26":[{"nlri":{"prefix":"10.2.0.0/26"},"age":1795263362,"best":true,"attrs":[{"type":1,"value":2},{"type":3,"nexthop":"0.0.0.0"}],"stale":false}],"10.3.0.0/26":[{"nlri":{"prefix":"10.3.0.0/26"},"age":1795263362,"best":true,"attrs":[{"type":1,"value":2},{"type":4,"metric":5},{"type":8,"communities":[4259840001]},{"type":32,"communities":[{"global_admin":65000,"local_data1":1,"local_data2":2}]},{"type":3,"nexthop":"10.9.0.2"}],"stale":false}],"fd10::/64":[{"nlri":{"prefix":"fd10::/64"},"best":false,"attrs":[{"type":14,"nexthop":"fd00::1","afi":2,"safi":1,"value":[{"prefix":"fd10::/64"}]}],"neighbor-ip":"10.9.0.1"}]}"#;

#[test]
fn rib_json_parses_into_routes() {
    let mut r = parse_rib(RIB).unwrap();
    r.sort_by_key(|r| r.prefix.to_string());
    assert_eq!(r.len(), 4);
    assert_eq!(r[0].prefix.to_string(), "10.1.0.0/26");
    assert_eq!(
        r[0].as_path,
        vec![
            AsSegment::Sequence(vec![65001]),
            AsSegment::Set(vec![65007, 65008])
        ]
    );
    assert_eq!(r[0].next_hop, Some("10.9.0.1".parse().unwrap()));
    assert_eq!(r[0].local_pref, Some(100));
    assert_eq!(r[0].origin, Some(Origin::Igp));
    assert_eq!(r[0].from.as_deref(), Some("10.9.0.1"));
    assert!(r[0].best && r[0].stale);
    // Local route: unspecified next hop becomes None.
    assert_eq!(r[1].next_hop, None);
    assert_eq!(r[1].origin, Some(Origin::Incomplete));
    assert_eq!(r[2].med, Some(5));
    assert_eq!(r[2].communities, vec![(65000, 1)]);
    assert_eq!(r[2].large_communities, vec![(65000, 1, 2)]);
    // MP_REACH next hop.
    assert_eq!(r[3].next_hop, Some("fd00::1".parse().unwrap()));
    assert!(!r[3].best);
}

#[test]
fn empty_and_bad_json() {
    assert!(parse_rib("").unwrap().is_empty());
    assert!(parse_rib("{}").unwrap().is_empty());
    assert!(parse_rib("[1]").is_err());
    assert!(parse_rib("{\"x/99\":[]}").is_err());
    assert!(parse_neighbors("{").is_err());
}

#[test]
fn neighbors_json_and_log_reason() {
    let json = r#"[{"conf":{"local_asn":65002,"neighbor_address":"10.9.0.1","peer_asn":65001,"type":1},"state":{"neighbor_address":"10.9.0.1","peer_asn":65001,"session_state":6},"afi_safis":[{"state":{"family":{"afi":1,"safi":1},"enabled":true,"received":3,"accepted":2,"advertised":5}},{"state":{"received":1,"accepted":1}}]},{"conf":{"neighbor_address":"10.9.0.3","peer_asn":65003},"state":{"session_state":3}}]"#;
    let n = parse_neighbors(json).unwrap();
    assert_eq!(n.len(), 2);
    assert!(n[0].is_established());
    assert_eq!(n[0].remote_as, Some(65001));
    assert_eq!(n[0].prefixes_received, Some(3));
    assert_eq!(n[0].prefixes_sent, Some(5));
    assert_eq!(n[1].prefixes_received, None);
    assert_eq!(n[1].state, BgpState::Active);
    assert_eq!(n[1].address, Some("10.9.0.3".parse().unwrap()));
    let log = "{\"Key\":\"10.9.0.1\",\"Reason\":\"dying\",\"msg\":\"Peer Down\"}\n\
               {\"Key\":\"10.9.0.1\",\"Reason\":\"notification-received code 2(open message error) subcode 2(bad peer AS)\",\"msg\":\"Peer Down\"}\n\
               {\"Key\":\"10.9.0.3\",\"msg\":\"Peer Up\"}\nnot json";
    assert_eq!(
        last_peer_down(log, "10.9.0.1").as_deref(),
        Some("notification-received code 2(open message error) subcode 2(bad peer AS)")
    );
    assert_eq!(last_peer_down(log, "10.9.0.3"), None);
    let log = "{\"Data\":\"as number mismatch expected 65077, received 65001\",\"Key\":\"10.9.0.1\",\"msg\":\"sent notification\"}";
    assert_eq!(
        last_peer_down(log, "10.9.0.1").as_deref(),
        Some("sent notification: as number mismatch expected 65077, received 65001")
    );
}

#[test]
fn config_renders_toml() {
    let mut c = GoBgpConfig::new("10.0.0.2".parse().unwrap(), 65002);
    let mut n = GoBgpNeighbor::new("10.0.0.1".parse().unwrap(), 65001);
    n.password = Some("pw\"x".into());
    n.graceful_restart = Some(30);
    n.ipv6 = true;
    n.port = Some(1790);
    c.neighbors.push(n);
    c.listen_port = Some(-1);
    let s = c.render();
    for want in [
        "as = 65002",
        "router-id = \"10.0.0.2\"",
        "port = -1",
        "neighbor-address = \"10.0.0.1\"",
        "peer-as = 65001",
        "auth-password = \"pw\\\"x\"",
        "connect-retry = 1",
        "remote-port = 1790",
        "restart-time = 30",
        "afi-safi-name = \"ipv4-unicast\"",
        "afi-safi-name = \"ipv6-unicast\"",
    ] {
        assert!(s.contains(want), "missing {want:?} in\n{s}");
    }
}
