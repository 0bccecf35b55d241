//! Unit tests of the FRR config renderer and JSON parsers, on output captured from
//! FRR 8.4.

use super::*;

const ROUTES: &str = r#"{
 "vrfId": 0,
 "vrfName": "default",
 "routerId": "10.9.0.2",
 "localAS": 65002,
 "routes": { "10.1.0.0/26": [{"valid":true,"bestpath":true,"selectionReason":"First path received","pathFrom":"external","prefix":"10.1.0.0","prefixLen":26,"network":"10.1.0.0/26","version":2,"weight":0,"peerId":"10.9.0.1","path":"65001 {65007,65008}","origin":"IGP","nexthops":[{"ip":"10.9.0.1","afi":"ipv4","used":true}]},{"valid":true,"stale":true,"pathFrom":"internal","locPrf":150,"metric":3,"peerId":"10.9.0.3","path":"","origin":"incomplete","nexthops":[{"ip":"10.9.0.3","afi":"ipv4","used":true}]}]
,"10.2.0.0/26": [{"valid":true,"bestpath":true,"metric":0,"weight":32768,"peerId":"(unspec)","path":"","origin":"IGP","nexthops":[{"ip":"0.0.0.0","hostname":"b","afi":"ipv4","used":true}]}]
,"fd10::/64": [{"valid":true,"peerId":"10.9.0.1","path":"65001","origin":"IGP","nexthops":[{"ip":"fe80::1","scope":"link-local"},{"ip":"fd00::1","scope":"global"}]}]
 }  } "#;

#[test]
fn routes_json_parses_paths() {
    let mut r = parse_routes(ROUTES).unwrap();
    r.sort_by_key(|r| (r.prefix.to_string(), r.from.clone()));
    assert_eq!(r.len(), 4, "{r:?}");
    assert_eq!(r[0].prefix.to_string(), "10.1.0.0/26");
    assert_eq!(r[0].from.as_deref(), Some("10.9.0.1"));
    assert_eq!(
        r[0].as_path,
        vec![
            AsSegment::Sequence(vec![65001]),
            AsSegment::Set(vec![65007, 65008])
        ]
    );
    assert!(r[0].best && !r[0].stale);
    assert_eq!(r[1].from.as_deref(), Some("10.9.0.3"));
    assert!(r[1].stale && !r[1].best);
    assert_eq!(r[1].local_pref, Some(150));
    assert_eq!(r[1].med, Some(3));
    assert_eq!(r[1].origin, Some(Origin::Incomplete));
    // Local network: no peer, unspecified next hop.
    assert_eq!(r[2].from, None);
    assert_eq!(r[2].next_hop, None);
    // v6: the global next hop, not the link-local one.
    assert_eq!(r[3].next_hop, Some("fd00::1".parse().unwrap()));
}

#[test]
fn detail_json_has_communities() {
    let text = r#"{"prefix":"10.3.0.0/26","paths":[{"aspath":{"string":"65001 65009","segments":[{"type":"as-sequence","list":[65001,65009]}],"length":2},"origin":"IGP","metric":4,"locPrf":100,"valid":true,"community":{"string":"65000:1 65000:2","list":["65000:1","65000:2"]},"largeCommunity":{"string":"65000:1:2"},"nexthops":[{"ip":"10.9.0.1","afi":"ipv4"}],"peer":{"peerId":"10.9.0.1","routerId":"10.9.0.1"},"bestpath":{"overall":true}}]}"#;
    let p: IpNetwork = "10.3.0.0/26".parse().unwrap();
    let r = parse_route_detail(p, text).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].as_path, vec![AsSegment::Sequence(vec![65001, 65009])]);
    assert_eq!(r[0].communities, vec![(65000, 1), (65000, 2)]);
    assert_eq!(r[0].large_communities, vec![(65000, 1, 2)]);
    assert_eq!(r[0].med, Some(4));
    assert!(r[0].best);
    assert_eq!(r[0].from.as_deref(), Some("10.9.0.1"));
    let bad = r#"{"paths":[{"community":{"string":"99999:1"}}]}"#;
    assert!(parse_route_detail(p, bad).is_err());
}

#[test]
fn neighbors_json() {
    let text = r#"{"10.9.0.1":{"remoteAs":65001,"bgpState":"Established","lastResetDueTo":"Waiting for peer OPEN","addressFamilyInfo":{"ipv4Unicast":{"acceptedPrefixCounter":4,"sentPrefixCounter":2},"ipv6Unicast":{"acceptedPrefixCounter":1,"sentPrefixCounter":0}}},"10.9.0.5":{"remoteAs":65005,"bgpState":"Active","lastNotificationReason":"OPEN Message Error/Bad Peer AS"}}"#;
    let mut n = parse_neighbors(text).unwrap();
    n.sort_by_key(|n| n.name.clone());
    assert!(n[0].is_established());
    assert_eq!(n[0].remote_as, Some(65001));
    assert_eq!(n[0].prefixes_received, Some(5));
    assert_eq!(n[0].prefixes_sent, Some(2));
    assert_eq!(n[1].state, BgpState::Active);
    assert_eq!(
        n[1].last_error.as_deref(),
        Some("OPEN Message Error/Bad Peer AS")
    );
    assert!(parse_neighbors("[]").is_err());
    assert!(parse_routes("not json").is_err());
}

#[test]
fn config_renders_router_bgp() {
    let mut c = FrrConfig::new("10.0.0.3".parse().unwrap(), 65003);
    let mut n = FrrNeighbor::new("10.0.0.1".parse().unwrap(), 65001);
    n.password = Some("pw".into());
    n.ipv6 = true;
    c.neighbors.push(n);
    c.networks.push("10.3.0.0/26".parse().unwrap());
    c.networks.push("fd03::/64".parse().unwrap());
    c.graceful_restart = Some(30);
    let s = c.render();
    for want in [
        "router bgp 65003",
        "bgp router-id 10.0.0.3",
        "no bgp ebgp-requires-policy",
        "no bgp network import-check",
        "bgp graceful-restart restart-time 30",
        "neighbor 10.0.0.1 remote-as 65001",
        "neighbor 10.0.0.1 timers 3 9",
        "neighbor 10.0.0.1 timers connect 1",
        "neighbor 10.0.0.1 password pw",
        " address-family ipv4 unicast\n  network 10.3.0.0/26\n  neighbor 10.0.0.1 activate",
        " address-family ipv6 unicast\n  network fd03::/64\n  neighbor 10.0.0.1 activate",
    ] {
        assert!(s.contains(want), "missing {want:?} in\n{s}");
    }
}
