//! Table tests of the pure route calculation.

use super::*;
use crate::input::{BlockAffinity, LearnedRoute};
use std::collections::BTreeMap as Map;

fn net(s: &str) -> IpNetwork {
    s.parse().expect("test network")
}
fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn node(name: &str, addr: &str, vtep: Option<&str>) -> Input {
    let mut n = Node::new(name, addr.parse().expect("node addr"));
    n.vxlan_tunnel_addr = vtep.map(|v| v.parse().expect("vtep"));
    n.ipip_tunnel_addr = Some("10.65.0.1".parse().expect("ipip addr"));
    Input::NodeUpsert(n)
}

fn endpoint(pod: &str, node: &str, iface: &str, ips: &[&str]) -> Endpoint {
    Endpoint {
        id: EndpointId {
            namespace: "default".into(),
            pod: pod.into(),
            endpoint: "eth0".into(),
        },
        node: node.into(),
        iface: iface.into(),
        ips: ips.iter().map(|i| net(i)).collect(),
        mac: None,
        labels: Map::new(),
        ports: vec![],
        service_account: None,
    }
}

fn affinity(cidr: &str, node: &str, state: AffinityState) -> Input {
    Input::AffinityUpsert(BlockAffinity {
        cidr: net(cidr),
        node: node.into(),
        state,
    })
}

fn pool(cidr: &str, ipip: EncapMode, vxlan: EncapMode) -> Input {
    Input::PoolUpsert(Pool {
        ipip_mode: ipip,
        vxlan_mode: vxlan,
        ..Pool::new(net(cidr))
    })
}

fn learned(prefix: &str, hops: &[&str]) -> Input {
    Input::RouteUpsert(LearnedRoute {
        prefix: net(prefix),
        paths: hops
            .iter()
            .map(|h| RoutePath {
                next_hop: ip(h),
                node: None,
            })
            .collect(),
    })
}

fn hop(gw: &str, iface: Option<&str>) -> Hop {
    Hop {
        gateway: ip(gw),
        iface: iface.map(str::to_string),
        onlink: iface.is_some(),
    }
}

fn calc(inputs: &[Input]) -> RouteCalc {
    let mut c = RouteCalc::new("a");
    for i in inputs {
        c.apply(i);
    }
    c
}

#[test]
fn workload_route_added_and_removed() {
    let mut c = calc(&[]);
    let ep = endpoint("p1", "a", "cali1", &["10.65.0.5/32", "fd00::5/128"]);
    c.apply(&Input::EndpointUpsert(ep.clone()));
    let changes = c.take_changes();
    assert_eq!(changes.len(), 2);
    assert_eq!(
        c.routes().get(&net("10.65.0.5/32")),
        Some(&RouteTarget::Device {
            iface: "cali1".into()
        })
    );
    assert!(c.routes().contains_key(&net("fd00::5/128")));
    assert_eq!(c.workload_ifaces().get("cali1"), Some(&(true, true)));
    c.apply(&Input::EndpointRemove(ep.id));
    assert_eq!(
        c.take_changes(),
        vec![(net("10.65.0.5/32"), None), (net("fd00::5/128"), None)]
    );
    // Remote endpoints never produce a route.
    c.apply(&Input::EndpointUpsert(endpoint(
        "p2",
        "b",
        "cali2",
        &["10.65.1.5/32"],
    )));
    assert!(c.take_changes().is_empty());
}

#[test]
fn blackhole_only_for_confirmed_local_blocks() {
    let mut c = calc(&[
        affinity("10.65.0.0/26", "a", AffinityState::Pending),
        affinity("10.65.0.64/26", "a", AffinityState::Confirmed),
    ]);
    assert_eq!(
        c.routes().get(&net("10.65.0.64/26")),
        Some(&RouteTarget::Blackhole)
    );
    assert!(!c.routes().contains_key(&net("10.65.0.0/26")));
    c.apply(&affinity("10.65.0.0/26", "a", AffinityState::Confirmed));
    assert_eq!(
        c.routes().get(&net("10.65.0.0/26")),
        Some(&RouteTarget::Blackhole)
    );
}

#[test]
fn learned_routes_follow_the_ipip_table() {
    let base = [
        node("a", "192.168.1.1/24", None),
        learned("10.65.1.0/26", &["192.168.1.2"]),
        learned("10.65.2.0/26", &["192.168.2.2"]),
    ];
    let gw = |c: &RouteCalc, d: &str| c.routes().get(&net(d)).cloned();
    let mut with = base.to_vec();
    with.push(pool("10.65.0.0/16", EncapMode::Never, EncapMode::Never));
    let c = calc(&with);
    assert_eq!(
        gw(&c, "10.65.1.0/26"),
        Some(RouteTarget::Gateway {
            hops: vec![hop("192.168.1.2", None)]
        })
    );

    with.push(pool("10.65.0.0/16", EncapMode::Always, EncapMode::Never));
    let c = calc(&with);
    assert_eq!(
        gw(&c, "10.65.1.0/26"),
        Some(RouteTarget::Gateway {
            hops: vec![hop("192.168.1.2", Some("tunl0"))]
        })
    );
    assert_eq!(c.devices().ipip.map(|d| d.mtu), Some(1440));
    assert_eq!(c.devices().pod_mtu, 1440);

    with.push(pool(
        "10.65.0.0/16",
        EncapMode::CrossSubnet,
        EncapMode::Never,
    ));
    let c = calc(&with);
    assert_eq!(
        gw(&c, "10.65.1.0/26"),
        Some(RouteTarget::Gateway {
            hops: vec![hop("192.168.1.2", None)]
        })
    );
    assert_eq!(
        gw(&c, "10.65.2.0/26"),
        Some(RouteTarget::Gateway {
            hops: vec![hop("192.168.2.2", Some("tunl0"))]
        })
    );
}

#[test]
fn slash_32_node_address_falls_back_to_uplink_prefix() {
    let mut c = calc(&[
        node("a", "192.168.1.1/32", None),
        pool("10.65.0.0/16", EncapMode::CrossSubnet, EncapMode::Never),
        learned("10.65.1.0/26", &["192.168.1.2"]),
    ]);
    // Without the kernel's view every peer looks remote.
    assert_eq!(
        c.routes().get(&net("10.65.1.0/26")),
        Some(&RouteTarget::Gateway {
            hops: vec![hop("192.168.1.2", Some("tunl0"))]
        })
    );
    c.set_uplink_prefixes(vec!["192.168.1.0/24".parse().expect("prefix")]);
    assert_eq!(
        c.routes().get(&net("10.65.1.0/26")),
        Some(&RouteTarget::Gateway {
            hops: vec![hop("192.168.1.2", None)]
        })
    );
}

#[test]
fn ecmp_and_borrowed_slash_32() {
    let c = calc(&[
        node("a", "192.168.1.1/24", None),
        affinity("10.65.0.0/26", "a", AffinityState::Confirmed),
        learned(
            "10.65.9.0/26",
            &["192.168.1.3", "192.168.1.2", "192.168.1.3"],
        ),
        // Another node borrowed an address of our block and advertises it as a /32.
        learned("10.65.0.7/32", &["192.168.1.2"]),
        // Our own block coming back over BGP never replaces the blackhole.
        learned("10.65.0.0/26", &["192.168.1.2"]),
        // A path through ourselves is dropped.
        learned("10.65.8.0/26", &["192.168.1.1"]),
    ]);
    assert_eq!(
        c.routes().get(&net("10.65.9.0/26")),
        Some(&RouteTarget::Gateway {
            hops: vec![hop("192.168.1.2", None), hop("192.168.1.3", None)]
        })
    );
    assert_eq!(
        c.routes().get(&net("10.65.0.7/32")),
        Some(&RouteTarget::Gateway {
            hops: vec![hop("192.168.1.2", None)]
        })
    );
    assert_eq!(
        c.routes().get(&net("10.65.0.0/26")),
        Some(&RouteTarget::Blackhole)
    );
    assert!(!c.routes().contains_key(&net("10.65.8.0/26")));
}

#[test]
fn vxlan_routes_from_affinities_and_crosssubnet() {
    let mut c = calc(&[
        node("a", "192.168.1.1/24", Some("10.65.0.1")),
        node("b", "192.168.1.2/24", Some("10.65.1.1")),
        node("c", "192.168.2.2/24", Some("10.65.2.1")),
        pool("10.65.0.0/16", EncapMode::Never, EncapMode::Always),
        affinity("10.65.1.0/26", "b", AffinityState::Confirmed),
        affinity("10.65.2.0/26", "c", AffinityState::Confirmed),
        affinity("10.65.3.0/26", "c", AffinityState::Pending),
        // BGP routes inside a VXLAN pool are ignored.
        learned("10.65.2.0/26", &["192.168.2.2"]),
    ]);
    assert_eq!(
        c.routes().get(&net("10.65.1.0/26")),
        Some(&RouteTarget::Gateway {
            hops: vec![hop("10.65.1.1", Some("vxlan.calico"))]
        })
    );
    assert_eq!(
        c.routes().get(&net("10.65.2.0/26")),
        Some(&RouteTarget::Gateway {
            hops: vec![hop("10.65.2.1", Some("vxlan.calico"))]
        })
    );
    assert!(!c.routes().contains_key(&net("10.65.3.0/26")));
    let d = c.devices();
    let dev = d.vxlan.expect("vxlan device");
    assert_eq!((dev.vni, dev.port, dev.mtu), (4096, 4789, 1410));
    assert_eq!(dev.local.to_string(), "192.168.1.1");
    assert_eq!(d.vteps.len(), 2);
    assert_eq!(d.pod_mtu, 1410);

    c.apply(&pool(
        "10.65.0.0/16",
        EncapMode::Never,
        EncapMode::CrossSubnet,
    ));
    assert_eq!(
        c.routes().get(&net("10.65.1.0/26")),
        Some(&RouteTarget::Gateway {
            hops: vec![hop("192.168.1.2", None)]
        })
    );
    assert_eq!(
        c.routes().get(&net("10.65.2.0/26")),
        Some(&RouteTarget::Gateway {
            hops: vec![hop("10.65.2.1", Some("vxlan.calico"))]
        })
    );
    c.take_changes();
    c.apply(&Input::NodeRemove { name: "c".into() });
    assert_eq!(c.take_changes(), vec![(net("10.65.2.0/26"), None)]);
    assert_eq!(c.devices().vteps.len(), 1);
}

#[test]
fn endpoint_update_touches_only_its_routes() {
    let mut c = calc(&[affinity("10.65.0.0/26", "a", AffinityState::Confirmed)]);
    for i in 0..100u32 {
        let ep = endpoint(
            &format!("p{i}"),
            "a",
            &format!("cali{i}"),
            &[&format!("10.66.{}.{}/32", i / 250, i % 250)],
        );
        c.apply(&Input::EndpointUpsert(ep));
    }
    c.take_changes();
    c.apply(&Input::EndpointUpsert(endpoint(
        "p7",
        "a",
        "caliX",
        &["10.66.0.7/32"],
    )));
    assert_eq!(
        c.take_changes(),
        vec![(
            net("10.66.0.7/32"),
            Some(RouteTarget::Device {
                iface: "caliX".into()
            })
        )]
    );
}

#[test]
fn vxlan_borrowed_addresses_get_a_slash_32() {
    let mut c = calc(&[
        node("a", "192.168.1.1/24", Some("10.65.0.1")),
        node("b", "192.168.2.2/24", Some("10.65.1.1")),
        pool("10.65.0.0/16", EncapMode::Never, EncapMode::Always),
        affinity("10.65.0.0/26", "a", AffinityState::Confirmed),
        affinity("10.65.1.0/26", "b", AffinityState::Confirmed),
    ]);
    // A pod of b inside b's own block needs no /32; one borrowed from our block does.
    c.apply(&Input::EndpointUpsert(endpoint(
        "own",
        "b",
        "caliO",
        &["10.65.1.5/32"],
    )));
    c.apply(&Input::EndpointUpsert(endpoint(
        "borrowed",
        "b",
        "caliB",
        &["10.65.0.9/32"],
    )));
    assert!(!c.routes().contains_key(&net("10.65.1.5/32")));
    assert_eq!(
        c.routes().get(&net("10.65.0.9/32")),
        Some(&RouteTarget::Gateway {
            hops: vec![hop("10.65.1.1", Some("vxlan.calico"))]
        })
    );
    assert_eq!(
        c.routes().get(&net("10.65.0.0/26")),
        Some(&RouteTarget::Blackhole)
    );
    // Once b owns a block containing it, the /32 goes.
    c.apply(&affinity("10.65.0.0/26", "b", AffinityState::Confirmed));
    c.apply(&Input::AffinityRemove {
        cidr: net("10.65.0.0/26"),
        node: "a".into(),
    });
    assert!(!c.routes().contains_key(&net("10.65.0.9/32")));
    c.apply(&Input::EndpointRemove(
        endpoint("borrowed", "b", "caliB", &[]).id,
    ));
    assert!(!c.routes().contains_key(&net("10.65.0.9/32")));
}
