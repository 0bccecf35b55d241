//! Real BGP messages from BIRD 2, GoBGP and FRR (captured by `regenerate_captures`, run
//! through `tests/data/capture.sh`) decode without error or issue, and re-encode
//! byte-identically wherever the sender's encoding is the canonical one.

mod wire_common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use testlab::bird::{Bird, BirdConfig, BirdNeighbor};
use testlab::capture::{split_bgp, tcp_streams};
use testlab::frr::{Frr, FrrConfig, FrrNeighbor};
use testlab::gobgp::{GoBgp, GoBgpConfig, GoBgpNeighbor};
use testlab::{Host, Lab, require_root, wait_until};
use tortie_bgp::msg::Message;
use tortie_bgp::wire::{decode_message, encode_message};
use wire_common::*;

fn kind(m: &Message) -> &'static str {
    match m {
        Message::Open(_) => "OPEN",
        Message::Update(_) => "UPDATE",
        Message::Notification(_) => "NOTIFICATION",
        Message::Keepalive => "KEEPALIVE",
        Message::RouteRefresh(_) => "ROUTE-REFRESH",
    }
}

/// An UPDATE in a normal form that forgets only the sender's free choices: attribute
/// order and whether the Extended Length bit is used for a short value. `None` if the
/// bytes do not parse (they always do for captured messages).
type NormalUpdate = (Vec<u8>, Vec<(u8, u8, Vec<u8>)>, Vec<u8>);

fn normal_update(m: &[u8]) -> Option<NormalUpdate> {
    let body = m.get(19..)?;
    let wl = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let withdrawn = body.get(2..2 + wl)?.to_vec();
    let rest = body.get(2 + wl..)?;
    let al = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
    let mut section = rest.get(2..2 + al)?;
    let nlri = rest.get(2 + al..)?.to_vec();
    let mut attrs = Vec::new();
    while !section.is_empty() {
        let flags = *section.first()?;
        let ty = *section.get(1)?;
        let (len, hdr) = if flags & 0x10 != 0 {
            (
                usize::from(u16::from_be_bytes([*section.get(2)?, *section.get(3)?])),
                4,
            )
        } else {
            (usize::from(*section.get(2)?), 3)
        };
        attrs.push((ty, flags & !0x10, section.get(hdr..hdr + len)?.to_vec()));
        section = section.get(hdr + len..)?;
    }
    attrs.sort();
    Some((withdrawn, attrs, nlri))
}

/// Why a captured message may re-encode differently: the sender made one of several
/// valid choices where ours is fixed. `None`: the bytes must match.
fn non_canonical(sender: &str, m: &Message, ours: &[u8], theirs: &[u8]) -> Option<&'static str> {
    match m {
        // FRR puts each capability in its own optional parameter and also advertises
        // the pre-standard route refresh (128), which decodes as RouteRefresh.
        Message::Open(_) if sender == "frr" => Some("FRR: one parameter per capability"),
        Message::Update(_)
            if normal_update(ours).is_some() && normal_update(ours) == normal_update(theirs) =>
        {
            // BIRD and FRR set Extended Length on MP_REACH/MP_UNREACH (FRR also on
            // AS_PATH) whatever the size; GoBGP orders MP_REACH by type code and FRR
            // puts AS4_PATH last. Same attributes, flags and values otherwise.
            Some("attribute order / Extended Length bit only")
        }
        _ => None,
    }
}

#[test]
fn every_captured_message_decodes_and_reencodes() {
    let mut seen: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut identical = 0usize;
    let mut total = 0usize;
    let mut excused = Vec::new();
    let mut failed = 0;
    for c in load_all() {
        for (i, bytes) in c.messages.iter().enumerate() {
            let what = format!("{}→{} message {i}", c.sender, c.receiver);
            let d = decode_message(bytes, &c.ctx).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(d.issues.is_empty(), "{what}: {:?}", d.issues);
            assert!(!d.ignore, "{what}");
            *seen.entry((c.sender, kind(&d.message))).or_default() += 1;
            total += 1;
            let again = encode_message(&d.message, &c.ctx).expect("re-encode");
            if again == *bytes {
                identical += 1;
                continue;
            }
            // Always semantically identical.
            let d2 = decode_message(&again, &c.ctx).expect("re-decode");
            assert_eq!(d2.message, d.message, "{what}");
            match non_canonical(c.sender, &d.message, &again, bytes) {
                Some(why) => excused.push(format!("{what}: {why}")),
                None => {
                    let at = again.iter().zip(bytes.iter()).position(|(x, y)| x != y);
                    let at = at.unwrap_or(again.len().min(bytes.len()));
                    eprintln!(
                        "{what}: re-encoding differs at {at}\n got  {:02x?}\n want {:02x?}",
                        &again[at.saturating_sub(4)..],
                        &bytes[at.saturating_sub(4)..]
                    );
                    failed += 1;
                }
            }
        }
    }
    eprintln!("{total} messages, {identical} byte-identical; excused: {excused:#?}");
    assert!(
        identical * 2 > total,
        "most captured messages are canonical"
    );
    assert_eq!(
        failed, 0,
        "messages whose re-encoding differs without excuse"
    );
    for daemon in ["bird", "gobgp", "frr"] {
        for k in ["OPEN", "UPDATE", "KEEPALIVE"] {
            assert!(
                seen.contains_key(&(daemon, k)),
                "no {k} from {daemon}: {seen:?}"
            );
        }
    }
    for k in ["NOTIFICATION", "ROUTE-REFRESH"] {
        assert!(seen.keys().any(|(_, kk)| *kk == k), "no {k}: {seen:?}");
    }
}

// ---- regeneration (root; run by tests/data/capture.sh) ----

const A: &str = "10.0.0.1";
const B: &str = "10.0.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("literal address")
}

/// Adds an IPv6 address so IPv6 routes have a next hop of the link.
fn v6(host: &Host, addr: &str) -> Result<()> {
    host.ip(&["-6", "addr", "add", addr, "dev", "eth0", "nodad"])?;
    Ok(())
}

fn bird_config(local_as: u32, peer: &str, peer_as: u32, extra: &str, as4: bool) -> BirdConfig {
    let me = if peer == A { B } else { A };
    let mut c = BirdConfig::new(me.parse().expect("literal"), local_as);
    let mut n = BirdNeighbor::new("peer", ip(peer), peer_as);
    n.ipv6 = true;
    n.graceful_restart = Some(120);
    n.ipv6_extra = "next hop address fd00::1;".into();
    if !as4 {
        n.extra = "  enable as4 off;\n".into();
    }
    c.neighbors.push(n);
    c.extra = format!(
        "protocol static cap4 {{\n  ipv4;\n\
         route 10.1.0.0/26 blackhole {{ bgp_community.add((65001,100)); \
         bgp_large_community.add((65001,1,2)); bgp_med = 10; }};\n\
         route 10.1.0.64/26 blackhole;\n  route 10.1.0.128/26 blackhole;\n}}\n\
         protocol static cap6 {{\n  ipv6;\n\
         route 2001:db8:1::/64 blackhole {{ bgp_community.add((65001,600)); }};\n}}\n{extra}"
    );
    c
}

fn gobgp_originate(g: &GoBgp) -> Result<()> {
    g.gobgp(&[
        "global",
        "rib",
        "add",
        "-a",
        "ipv4",
        "10.2.0.0/26",
        "nexthop",
        "0.0.0.0",
        "med",
        "20",
        "community",
        "65002:200,no-export",
        "large-community",
        "65002:2:2",
    ])?;
    g.gobgp(&["global", "rib", "add", "-a", "ipv4", "10.2.0.64/26"])?;
    g.gobgp(&[
        "global",
        "rib",
        "add",
        "-a",
        "ipv6",
        "2001:db8:2::/64",
        "nexthop",
        "fd00::2",
        "community",
        "65002:600",
    ])?;
    Ok(())
}

fn frr_config(local_as: u32, peer: &str, peer_as: u32, passive: bool) -> FrrConfig {
    let me = if peer == A { B } else { A };
    let mut c = FrrConfig::new(me.parse().expect("literal"), local_as);
    let mut n = FrrNeighbor::new(ip(peer), peer_as);
    n.ipv6 = true;
    n.passive = passive;
    c.neighbors.push(n);
    c.graceful_restart = Some(120);
    c.networks = ["10.3.0.0/26", "10.3.0.64/26", "2001:db8:3::/64"]
        .iter()
        .map(|s| s.parse().expect("literal"))
        .collect();
    c
}

/// Route-map giving FRR's exports communities, large communities and a MED. Applied
/// before the session comes up.
fn frr_route_map(f: &Frr, peer: &str) -> Result<()> {
    f.configure(
        &[
            "route-map CAP permit 10",
            "set community 65003:300 65003:301",
            "set large-community 65003:3:3",
            "set metric 30",
        ],
        false,
    )?;
    for afi in ["ipv4", "ipv6"] {
        f.configure(
            &[
                &format!("address-family {afi} unicast"),
                &format!("neighbor {peer} route-map CAP out"),
            ],
            true,
        )?;
    }
    Ok(())
}

fn settle() {
    std::thread::sleep(Duration::from_millis(1500));
}

/// Captures one session between the daemons on hosts a (10.0.0.1) and b (10.0.0.2);
/// `run` starts both, drives the scenario and returns after the session was shut down.
fn capture_pair(
    name: &str,
    names: (&str, &str),
    tag: &str,
    run: impl FnOnce(&Host, &Host) -> Result<()>,
) -> Result<()> {
    let lab = Lab::new(name)?;
    let a = lab.add_host("a", &format!("{A}/24"))?;
    let b = lab.add_host("b", &format!("{B}/24"))?;
    v6(&a, "fd00::1/64")?;
    v6(&b, "fd00::2/64")?;
    let cap = a.capture(name, "eth0", "tcp port 179")?;
    run(&a, &b)?;
    std::thread::sleep(Duration::from_millis(300));
    let segs = cap.stop()?;
    // Only the first connection: a daemon may reconnect after the final shutdown.
    let first = segs
        .iter()
        .find(|s| s.syn)
        .context("no TCP connection captured")?;
    let ends = [first.src, first.dst];
    let streams = tcp_streams(&segs);
    let mut wrote = std::collections::BTreeSet::new();
    for ((src, dst), bytes) in streams {
        if !(ends.contains(&src) && ends.contains(&dst)) {
            continue;
        }
        let (sender, receiver) = if src.ip() == ip(A) {
            (names.0, names.1)
        } else {
            (names.1, names.0)
        };
        if bytes.is_empty() {
            continue;
        }
        let msgs = split_bgp(&bytes);
        let path = stream_path(sender, &format!("{receiver}{tag}"));
        std::fs::create_dir_all(path.parent().context("parent")?)?;
        if !wrote.insert(path.clone()) {
            bail!(
                "{name}: more than one connection per direction ({})",
                path.display()
            );
        }
        std::fs::write(&path, msgs.concat())?;
        eprintln!("{}: {} messages", path.display(), msgs.len());
    }
    if wrote.len() != 2 {
        bail!("{name}: expected one connection (2 directions), got {wrote:?}");
    }
    Ok(())
}

#[test]
#[ignore = "regenerates tests/data (root, real daemons); run tests/data/capture.sh"]
fn regenerate_captures() -> Result<()> {
    require_root();
    let t = Duration::from_secs(20);
    // BIRD (AS 65001, 4-octet) ↔ GoBGP (AS 65002), eBGP, IPv4 + IPv6.
    capture_pair("capbg", ("bird", "gobgp"), "", |a, b| {
        let bird = Bird::start(a, bird_config(65001, B, 65002, "", true))?;
        let mut gc = GoBgpConfig::new(B.parse()?, 65002);
        let mut n = GoBgpNeighbor::new(ip(A), 65001);
        n.ipv6 = true;
        n.passive = true;
        n.graceful_restart = Some(90);
        gc.neighbors.push(n);
        let g = GoBgp::start(b, gc)?;
        gobgp_originate(&g)?;
        bird.wait_established("peer", t)?;
        wait_until(t, Duration::from_millis(100), || {
            let r = bird.all_routes()?;
            if r.iter().any(|r| r.prefix.to_string() == "2001:db8:2::/64") {
                Ok(())
            } else {
                Err(anyhow::anyhow!("no route yet"))
            }
        })?;
        settle();
        bird.birdc("reload in peer")?;
        g.gobgp(&["neighbor", A, "softresetin"])?;
        settle();
        g.gobgp(&["global", "rib", "del", "-a", "ipv4", "10.2.0.64/26"])?;
        bird.birdc("disable cap6")?;
        settle();
        bird.birdc("disable peer \"tortie capture: maintenance\"")?;
        settle();
        Ok(())
    })?;
    // GoBGP ↔ FRR, iBGP in AS 65002 (LOCAL_PREF), IPv4 + IPv6.
    capture_pair("capgf", ("gobgp", "frr"), "", |a, b| {
        let mut gc = GoBgpConfig::new(A.parse()?, 65002);
        let mut n = GoBgpNeighbor::new(ip(B), 65002);
        n.ipv6 = true;
        n.passive = true;
        gc.neighbors.push(n);
        let g = GoBgp::start(a, gc)?;
        gobgp_originate(&g)?;
        let f = Frr::start(b, frr_config(65002, A, 65002, false))?;
        frr_route_map(&f, A)?;
        g.wait_established(ip(B), t)?;
        settle();
        settle();
        f.vtysh(&[&format!("clear bgp {A} soft in")])?;
        g.gobgp(&["neighbor", B, "softresetin"])?;
        settle();
        f.del_network("10.3.0.64/26".parse()?)?;
        f.del_network("2001:db8:3::/64".parse()?)?;
        settle();
        f.configure(
            &[&format!("neighbor {A} shutdown message tortie capture")],
            true,
        )?;
        settle();
        Ok(())
    })?;
    // FRR (AS 4200000003, sending no capabilities) ↔ BIRD (AS 65001, 4-octet AS
    // disabled, so it sees FRR as AS_TRANS): 2-octet AS_PATH with AS_TRANS plus AS4_PATH.
    capture_pair("capfb2", ("frr", "bird"), "-as2", |a, b| {
        let mut fc = frr_config(4_200_000_003, B, 65001, true);
        // No capabilities from FRR: the session is 2-octet AS both ways.
        fc.neighbors[0]
            .extra
            .push(format!("neighbor {B} dont-capability-negotiate"));
        let f = Frr::start(a, fc)?;
        frr_route_map(&f, B)?;
        let bird = Bird::start(b, bird_config(65001, A, 23456, "", false))?;
        bird.wait_established("peer", t)?;
        settle();
        settle();
        f.vtysh(&[&format!("clear bgp {B} soft in")])?;
        bird.birdc("reload in peer")?;
        settle();
        bird.birdc("disable cap6")?;
        f.del_network("10.3.0.64/26".parse()?)?;
        settle();
        bird.birdc("disable peer \"tortie capture: done\"")?;
        settle();
        Ok(())
    })?;
    // FRR (AS 65003) ↔ BIRD (AS 65001) with every capability: enhanced route refresh
    // (BoRR/EoRR), graceful restart on both sides.
    capture_pair("capfb", ("frr", "bird"), "", |a, b| {
        let f = Frr::start(a, frr_config(65003, B, 65001, true))?;
        frr_route_map(&f, B)?;
        let bird = Bird::start(b, bird_config(65001, A, 65003, "", true))?;
        bird.wait_established("peer", t)?;
        settle();
        settle();
        f.vtysh(&[&format!("clear bgp {B} soft in")])?;
        bird.birdc("reload in peer")?;
        settle();
        f.del_network("2001:db8:3::/64".parse()?)?;
        settle();
        f.configure(
            &[&format!(
                "neighbor {B} shutdown message tortie capture: bye"
            )],
            true,
        )?;
        settle();
        Ok(())
    })?;
    Ok(())
}
