//! Table tests of the `node status` formatter (golden text, Calico's layout) and of the
//! status contract's wire decoding.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tortie_bgp::speaker::{PeerStatus, State};
use tortie_ctl::status::{
    PeerType, StatusAddr, StatusPeer, StatusReport, format_node_status, parse_response,
};

/// 2026-11-21 23:30:04 UTC.
fn at(h: u64, m: u64, s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_219_200 + h * 3600 + m * 60 + s)
}

fn peer(addr: &str, name: &str, state: State, since: SystemTime, err: Option<&str>) -> StatusPeer {
    let info = match (state, err) {
        (State::Established, _) | (_, None) => state.to_string(),
        (s, Some(e)) => format!("{s} {e}"),
    };
    StatusPeer::from_status(PeerStatus {
        address: addr.parse().expect("test address"),
        name: name.to_string(),
        state,
        since,
        last_error: err.map(str::to_string),
        info,
        prefixes_received: 0,
        prefixes_stale: 0,
        prefixes_advertised: 0,
    })
}

#[test]
fn calico_example_row_is_reproduced_exactly() {
    let now = at(23, 40, 0);
    let rows = [peer(
        "172.17.8.102",
        "Mesh_172_17_8_102",
        State::Established,
        at(23, 30, 4),
        None,
    )];
    let want = "\
IPv4 BGP status
+--------------+-------------------+-------+----------+-------------+
| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |
+--------------+-------------------+-------+----------+-------------+
| 172.17.8.102 | node-to-node mesh | up    | 23:30:04 | Established |
+--------------+-------------------+-------+----------+-------------+

IPv6 BGP status
No IPv6 peers found.
";
    assert_eq!(format_node_status(&rows, now), want);
}

#[test]
fn mixed_types_families_states_and_dates() {
    let now = at(12, 0, 0);
    let yesterday = now - Duration::from_secs(86_400);
    let rows = [
        peer(
            "10.0.0.9",
            "Node_10_0_0_9",
            State::Active,
            at(11, 59, 58),
            Some("Socket: Connection refused"),
        ),
        peer(
            "10.0.0.3",
            "Global_10_0_0_3",
            State::Established,
            yesterday,
            None,
        ),
        peer("fd00::2", "Mesh_fd00__2", State::Connect, at(0, 0, 1), None),
    ];
    let want = "\
IPv4 BGP status
+--------------+---------------+-------+------------+-----------------------------------+
| PEER ADDRESS |   PEER TYPE   | STATE |   SINCE    |               INFO                |
+--------------+---------------+-------+------------+-----------------------------------+
| 10.0.0.3     | global        | up    | 2026-11-20 | Established                       |
| 10.0.0.9     | node specific | start | 11:59:58   | Active Socket: Connection refused |
+--------------+---------------+-------+------------+-----------------------------------+

IPv6 BGP status
+--------------+-------------------+-------+----------+---------+
| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |  INFO   |
+--------------+-------------------+-------+----------+---------+
| fd00::2      | node-to-node mesh | start | 00:00:01 | Connect |
+--------------+-------------------+-------+----------+---------+
";
    assert_eq!(format_node_status(&rows, now), want);
}

#[test]
fn no_peers_at_all() {
    let want = "IPv4 BGP status\nNo IPv4 peers found.\n\nIPv6 BGP status\nNo IPv6 peers found.\n";
    assert_eq!(format_node_status(&[], at(1, 0, 0)), want);
}

#[test]
fn peer_type_from_name_and_explicit_type_wins() {
    assert_eq!(PeerType::from_peer_name("Mesh_10_0_0_1"), PeerType::Mesh);
    assert_eq!(
        PeerType::from_peer_name("Node_10_0_0_1"),
        PeerType::NodeSpecific
    );
    assert_eq!(PeerType::from_peer_name("Global_x"), PeerType::Global);
    let mut p = peer("10.0.0.1", "whatever", State::Idle, at(1, 0, 0), None);
    p.peer_type = PeerType::NodeSpecific;
    assert!(format_node_status(&[p], at(2, 0, 0)).contains("| node specific |"));
}

#[test]
fn wire_round_trip_and_errors() {
    let rows = vec![peer(
        "10.0.0.1",
        "Mesh_10_0_0_1",
        State::Established,
        at(1, 2, 3),
        None,
    )];
    let body = serde_json::to_string(&StatusReport {
        peers: rows.clone(),
    })
    .expect("json");
    assert!(
        body.contains("\"peerType\":\"node-to-node mesh\""),
        "{body}"
    );
    let raw = format!("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{body}");
    assert_eq!(parse_response(raw.as_bytes()).expect("decodes"), rows);

    let e = parse_response(b"HTTP/1.0 503 Service Unavailable\r\n\r\nspeaker stopped")
        .expect_err("503 is an error");
    assert!(e.contains("503") && e.contains("speaker stopped"), "{e}");
    let e = parse_response(b"HTTP/1.0 200 OK\r\n\r\n{\"peers\": 7}").expect_err("bad json");
    assert!(e.contains("bad status JSON"), "{e}");
    assert!(parse_response(b"garbage").is_err());
}

#[test]
fn status_addr_forms() {
    assert_eq!(
        StatusAddr::parse("/var/run/tortie/status.sock").expect("path"),
        StatusAddr::Unix("/var/run/tortie/status.sock".into())
    );
    assert_eq!(
        StatusAddr::parse("unix:/tmp/x.sock").expect("unix:"),
        StatusAddr::Unix("/tmp/x.sock".into())
    );
    assert_eq!(
        StatusAddr::parse("127.0.0.1:9099").expect("tcp"),
        StatusAddr::Tcp("127.0.0.1:9099".parse().expect("addr"))
    );
    assert!(StatusAddr::parse("localhost").is_err());
    assert!(StatusAddr::parse("unix:").is_err());
}
