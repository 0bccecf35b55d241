//! Unit tests of the tunnel address decision ([`super::decide`]) and the VXLAN MAC.

use std::collections::BTreeMap;
use std::net::IpAddr;

use tortie_crds::{AllowedUse, EncapMode, IpPool, IpPoolSpec};
use tortie_ipam::TunnelKind::{Ipip, Vxlan};

use super::*;

fn pool(name: &str, cidr: &str, ipip: EncapMode, vxlan: EncapMode) -> IpPool {
    let mut s = IpPoolSpec::new(cidr.parse().unwrap());
    s.ipip_mode = ipip;
    s.vxlan_mode = vxlan;
    IpPool::new(name, s)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn cur(recorded: Option<&str>, held: &[&str]) -> Current {
    Current {
        recorded: recorded.map(ip),
        held: held.iter().map(|h| ip(h)).collect(),
    }
}

const A: EncapMode = EncapMode::Always;
const X: EncapMode = EncapMode::CrossSubnet;
const N: EncapMode = EncapMode::Never;

#[test]
fn new_address_when_an_ipip_pool_selects_the_node() {
    let pools = [pool("p", "10.244.0.0/16", A, N)];
    let p = decide(Ipip, &pools, &labels(&[]), &cur(None, &[])).unwrap();
    assert_eq!(p.want, Want::New);
    assert!(p.release.is_empty());
    // Not for VXLAN from the same pool.
    let v = decide(Vxlan, &pools, &labels(&[]), &cur(None, &[])).unwrap();
    assert_eq!(v.want, Want::None);
    assert!(v.is_noop(None));
}

#[test]
fn cross_subnet_counts_as_on() {
    let pools = [pool("p", "10.244.0.0/16", N, X)];
    let p = decide(Vxlan, &pools, &labels(&[]), &cur(None, &[])).unwrap();
    assert_eq!(p.want, Want::New);
}

#[test]
fn valid_recorded_and_held_address_is_kept_without_churn() {
    let pools = [pool("p", "10.244.0.0/16", N, A)];
    let c = cur(Some("10.244.3.1"), &["10.244.3.1"]);
    let p = decide(Vxlan, &pools, &labels(&[]), &c).unwrap();
    assert_eq!(p.want, Want::Keep(ip("10.244.3.1")));
    assert!(p.is_noop(c.recorded));
}

#[test]
fn recorded_but_not_held_is_reclaimed() {
    let pools = [pool("p", "10.244.0.0/16", A, N)];
    let p = decide(Ipip, &pools, &labels(&[]), &cur(Some("10.244.3.1"), &[])).unwrap();
    assert_eq!(p.want, Want::Reclaim(ip("10.244.3.1")));
    assert!(!p.is_noop(Some(ip("10.244.3.1"))));
}

#[test]
fn held_but_unrecorded_address_is_adopted() {
    // The agent assigned, then died before writing its TortieNode.
    let pools = [pool("p", "10.244.0.0/16", A, N)];
    let p = decide(Ipip, &pools, &labels(&[]), &cur(None, &["10.244.9.9"])).unwrap();
    assert_eq!(p.want, Want::Keep(ip("10.244.9.9")));
    assert!(p.release.is_empty());
    assert!(!p.is_noop(None));
}

#[test]
fn encapsulation_turned_off_releases_and_clears() {
    let pools = [pool("p", "10.244.0.0/16", N, N)];
    let p = decide(
        Vxlan,
        &pools,
        &labels(&[]),
        &cur(Some("10.244.3.1"), &["10.244.3.1"]),
    )
    .unwrap();
    assert_eq!(p.want, Want::None);
    assert_eq!(p.release, vec![ip("10.244.3.1")]);
    assert!(!p.is_noop(Some(ip("10.244.3.1"))));
}

#[test]
fn pool_gone_gives_a_new_address_from_the_remaining_pool() {
    // The recorded address's pool was deleted; another VXLAN pool remains.
    let pools = [pool("q", "10.250.0.0/16", N, A)];
    let p = decide(
        Vxlan,
        &pools,
        &labels(&[]),
        &cur(Some("10.244.3.1"), &["10.244.3.1"]),
    )
    .unwrap();
    assert_eq!(p.want, Want::New);
    assert_eq!(p.release, vec![ip("10.244.3.1")]);
}

#[test]
fn disabled_pool_is_stale() {
    let mut old = pool("p", "10.244.0.0/16", A, N);
    old.spec.disabled = true;
    let pools = [old.clone()];
    let p = decide(
        Ipip,
        &pools,
        &labels(&[]),
        &cur(Some("10.244.3.1"), &["10.244.3.1"]),
    )
    .unwrap();
    assert_eq!(p.want, Want::None);
    assert_eq!(p.release, vec![ip("10.244.3.1")]);
    // With a second, enabled pool: a new address from it.
    let pools = [old, pool("q", "10.250.0.0/16", A, N)];
    let p = decide(
        Ipip,
        &pools,
        &labels(&[]),
        &cur(Some("10.244.3.1"), &["10.244.3.1"]),
    )
    .unwrap();
    assert_eq!(p.want, Want::New);
    assert_eq!(p.release, vec![ip("10.244.3.1")]);
}

#[test]
fn node_selector_decides() {
    let mut p = pool("p", "10.244.0.0/16", A, N);
    p.spec.node_selector = "zone == 'a'".into();
    let pools = [p];
    let inz = labels(&[("zone", "a")]);
    let out = labels(&[("zone", "b")]);
    assert_eq!(
        decide(Ipip, &pools, &inz, &cur(None, &[])).unwrap().want,
        Want::New
    );
    // Relabelled out of the pool: released and cleared.
    let d = decide(
        Ipip,
        &pools,
        &out,
        &cur(Some("10.244.0.1"), &["10.244.0.1"]),
    )
    .unwrap();
    assert_eq!(d.want, Want::None);
    assert_eq!(d.release, vec![ip("10.244.0.1")]);
}

#[test]
fn pools_without_tunnel_use_or_of_v6_do_not_count() {
    let mut w = pool("w", "10.244.0.0/16", N, A);
    w.spec.allowed_uses = vec![AllowedUse::Workload];
    let v6 = pool("v6", "fd00::/64", N, A);
    let pools = [w, v6];
    let d = decide(Vxlan, &pools, &labels(&[]), &cur(None, &[])).unwrap();
    assert_eq!(d.want, Want::None);
}

#[test]
fn extra_held_addresses_are_released_beside_the_kept_one() {
    let pools = [pool("p", "10.244.0.0/16", A, N)];
    let c = cur(Some("10.244.0.1"), &["10.244.0.7", "10.244.0.1"]);
    let d = decide(Ipip, &pools, &labels(&[]), &c).unwrap();
    assert_eq!(d.want, Want::Keep(ip("10.244.0.1")));
    assert_eq!(d.release, vec![ip("10.244.0.7")]);
    assert!(!d.is_noop(c.recorded));
}

#[test]
fn recorded_stale_but_held_valid_adopts_the_held_one() {
    let pools = [pool("q", "10.250.0.0/16", A, N)];
    let c = cur(Some("10.244.0.1"), &["10.250.0.5"]);
    let d = decide(Ipip, &pools, &labels(&[]), &c).unwrap();
    assert_eq!(d.want, Want::Keep(ip("10.250.0.5")));
    assert!(d.release.is_empty());
}

#[test]
fn bad_node_selector_is_an_error_naming_the_pool() {
    let mut p = pool("broken", "10.244.0.0/16", A, N);
    p.spec.node_selector = "zone ==".into();
    let e = decide(Ipip, &[p], &labels(&[]), &cur(None, &[])).unwrap_err();
    assert!(e.to_string().contains("broken"), "{e}");
}

#[test]
fn vxlan_mac_is_made_once_and_kept() {
    let fresh = [0x01, 2, 3, 4, 5, 6];
    // None yet and VXLAN wanted: locally administered unicast from the random bits.
    let m = vxlan_mac(None, true, fresh).unwrap();
    assert_eq!(m, "02:02:03:04:05:06");
    let b = parse_mac(&m).unwrap();
    assert_eq!(b[0] & 0x03, 0x02);
    // Kept on the next run, whatever the random bits.
    assert_eq!(vxlan_mac(Some(&m), true, [9; 6]), Some(m.clone()));
    // Kept when VXLAN goes off (stable across toggles), and not made without VXLAN.
    assert_eq!(vxlan_mac(Some(&m), false, [9; 6]), Some(m));
    assert_eq!(vxlan_mac(None, false, fresh), None);
    // An unusable recorded value (garbage, multicast, zero) is replaced.
    for bad in [
        "nonsense",
        "01:00:5e:00:00:01",
        "00:00:00:00:00:00",
        "66:1:2:3:4:5",
    ] {
        assert_eq!(
            vxlan_mac(Some(bad), true, fresh).as_deref(),
            Some("02:02:03:04:05:06"),
            "{bad}"
        );
    }
}

#[test]
fn mac_parsing() {
    assert_eq!(
        parse_mac("66:0A:02:03:04:ff"),
        Some([0x66, 10, 2, 3, 4, 0xff])
    );
    assert_eq!(parse_mac("66:01:02:03:04"), None);
    assert_eq!(parse_mac("66:01:02:03:04:05:06"), None);
    assert_eq!(parse_mac("zz:01:02:03:04:05"), None);
}
