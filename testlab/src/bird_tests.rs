//! Unit tests of the BIRD config renderer and output parsers, on output captured from
//! BIRD 2.0.12.

use super::*;

const PROTOCOLS: &str = "\
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     12:14:07.000
to_b       BGP        ---        start  12:14:09.915  Active        Socket: Connection refused
  BGP state:          Active
    Neighbor address: 10.9.0.2
    Neighbor AS:      65002
    Local AS:         65001
    Neighbor graceful restart active
    Connect delay:    0.779/1
    Restart timer:    58.986/-
    Last error:       Socket: Connection refused
  Channel ipv4
    State:          START
    Routes:         1 imported, 0 exported, 1 preferred
to_c       BGP        ---        up     12:14:07.100  Established
  BGP state:          Established
    Neighbor address: 10.9.0.3
    Neighbor AS:      65001
  Channel ipv4
    State:          UP
    Routes:         10 imported, 1 filtered, 2 exported, 10 preferred
  Channel ipv6
    State:          UP
    Routes:         2 imported, 1 exported, 2 preferred
";

#[test]
fn protocols_parse_state_address_as_and_error() {
    let n = parse_protocols(PROTOCOLS);
    assert_eq!(n.len(), 2, "{n:?}");
    assert_eq!(n[0].name, "to_b");
    assert_eq!(n[0].state, BgpState::Active);
    assert_eq!(n[0].address, Some("10.9.0.2".parse().unwrap()));
    assert_eq!(n[0].remote_as, Some(65002));
    assert_eq!(
        n[0].last_error.as_deref(),
        Some("Socket: Connection refused")
    );
    assert_eq!(n[0].prefixes_received, Some(1));
    assert_eq!(n[0].prefixes_sent, Some(0));
    assert!(n[1].is_established());
    assert_eq!(n[1].last_error, None);
    assert_eq!(n[1].prefixes_received, Some(12));
    assert_eq!(n[1].prefixes_sent, Some(3));
    assert_eq!(gr_active_protocols(PROTOCOLS), vec!["to_b".to_string()]);
}

const ROUTES: &str = "\
Table master4:
10.2.0.0/26          unicast [to_b 12:14:07.174] * (100) [AS65002i]
\tvia 10.9.0.2 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 65002 65010 {65020 65021}
\tBGP.next_hop: 10.9.0.2
\tBGP.local_pref: 100
\tBGP.med: 7
\tBGP.community: (65000,1) (65000,2)
\tBGP.large_community: (65000, 1, 2)
                     unicast [to_c 12:14:08.000 from 10.9.0.9] (100) [AS65003?]
\tvia 10.9.0.3 on eth0
\tType: BGP univ
\tBGP.origin: Incomplete
\tBGP.as_path: 
\tBGP.next_hop: 10.9.0.3
10.1.0.0/26          blackhole [static_ipv4 12:14:06.000] * (200)
\tType: static univ
Table master6:
fd10::/64            unicast [to_b 12:14:07.174] * (100) [AS65002i]
\tvia fe80::1 on eth0
\tType: BGP univ
\tBGP.next_hop: fd00::2 fe80::1
";

#[test]
fn routes_parse_paths_attributes_and_tables() {
    let r = parse_routes(ROUTES).unwrap();
    assert_eq!(r.len(), 4, "{r:?}");
    let p: IpNetwork = "10.2.0.0/26".parse().unwrap();
    assert_eq!(r[0].prefix, p);
    assert!(r[0].best);
    assert_eq!(r[0].from.as_deref(), Some("to_b"));
    assert_eq!(
        r[0].as_path,
        vec![
            AsSegment::Sequence(vec![65002, 65010]),
            AsSegment::Set(vec![65020, 65021])
        ]
    );
    assert_eq!(r[0].origin, Some(Origin::Igp));
    assert_eq!(r[0].local_pref, Some(100));
    assert_eq!(r[0].med, Some(7));
    assert_eq!(r[0].communities, vec![(65000, 1), (65000, 2)]);
    assert_eq!(r[0].large_communities, vec![(65000, 1, 2)]);
    // Second path of the same prefix.
    assert_eq!(r[1].prefix, p);
    assert!(!r[1].best);
    assert_eq!(r[1].from.as_deref(), Some("to_c"));
    assert!(r[1].as_path.is_empty());
    assert_eq!(r[1].origin, Some(Origin::Incomplete));
    assert_eq!(r[1].next_hop, Some("10.9.0.3".parse().unwrap()));
    // Static blackhole: no next hop.
    assert_eq!(r[2].next_hop, None);
    assert_eq!(r[2].from.as_deref(), Some("static_ipv4"));
    // v6: the global next hop wins over the link-local `via`.
    assert_eq!(r[3].next_hop, Some("fd00::2".parse().unwrap()));
}

#[test]
fn malformed_route_output_is_an_error_not_a_panic() {
    assert!(parse_routes("nonsense/99 unicast [x]").is_err());
    assert!(parse_routes("10.0.0.0/8 unicast [x]\n\tBGP.as_path: 1 {2").is_err());
    assert!(parse_routes("10.0.0.0/8 unicast [x]\n\tBGP.local_pref: abc").is_err());
    assert!(parse_routes("   unicast [x]").is_err());
    assert!(parse_routes("10.0.0.0/8 unicast [x]\n\tBGP.community: (1,99999)").is_err());
    assert!(parse_routes("").unwrap().is_empty());
}

#[test]
fn config_renders_sessions_statics_and_test_timers() {
    let mut c = BirdConfig::new("10.0.0.1".parse().unwrap(), 65001);
    let mut n = BirdNeighbor::new("to_b", "10.0.0.2".parse().unwrap(), 65002);
    n.password = Some("se\"cret".into());
    n.graceful_restart = Some(30);
    n.port = Some(1790);
    n.ipv6 = true;
    c.neighbors.push(n);
    c.static_routes.push("10.1.0.0/26".parse().unwrap());
    c.static_routes.push("fd10::/64".parse().unwrap());
    let s = c.render();
    for want in [
        "router id 10.0.0.1;",
        "protocol static static_ipv4 {\n  ipv4;\n  route 10.1.0.0/26 blackhole;",
        "route fd10::/64 blackhole;",
        "protocol bgp to_b {",
        "local as 65001;",
        "neighbor 10.0.0.2 port 1790 as 65002;",
        "direct;",
        "password \"se\\\"cret\";",
        "connect delay time 1;",
        "error wait time 1, 5;",
        "graceful restart time 30;",
        "ipv6 { import all; export all;",
    ] {
        assert!(s.contains(want), "missing {want:?} in\n{s}");
    }
    assert!(!s.contains("protocol kernel"));
}
