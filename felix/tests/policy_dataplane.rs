//! Dataplane behaviour of felix's ACLs on a real node namespace: established connections
//! across a policy change, anti-spoofing, NAT outgoing, unknown interfaces, other
//! programs' rules across start/change/drift repair, and backend detection.
//! Needs root (panics otherwise).

mod policy_support;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use policy_support::{NODE_IP, PolicyLab, check, np, tcp};
use testlab::inside::Server;
use tortie_felix::iptables::{Backend, Runner};
use tortie_felix::policy::ruleset::RPF_DROP;

const NS: &[(&str, &[(&str, &str)])] = &[("prod", &[]), ("dev", &[])];

fn two_pods(prefix: &str, nat: bool) -> PolicyLab {
    testlab::require_root();
    PolicyLab::new(
        prefix,
        NS,
        &[
            ("prod/web", 2, &[("role", "web")]),
            ("prod/db", 3, &[("role", "db")]),
            ("dev/client", 4, &[("role", "client")]),
        ],
        &[("out1", 2)],
        nat,
    )
    .expect("lab")
}

/// An echo server (one line in, the same line out) on `ip:port` inside `host`.
fn echo_server(host: &testlab::Host, addr: SocketAddr) -> std::thread::JoinHandle<()> {
    let l = host
        .run_in(|| TcpListener::bind(addr))
        .expect("netns")
        .expect("bind");
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = match conn.try_clone() {
                    Ok(w) => w,
                    Err(_) => return,
                };
                for line in BufReader::new(conn).lines().map_while(Result::ok) {
                    if w.write_all(format!("{line}\n").as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    })
}

fn echo(s: &mut TcpStream, r: &mut BufReader<TcpStream>, msg: &str) -> bool {
    let mut line = String::new();
    s.write_all(format!("{msg}\n").as_bytes()).is_ok()
        && r.read_line(&mut line).is_ok()
        && line.trim() == msg
}

#[test]
fn established_connection_survives_policy_change_and_new_ones_follow_it() {
    let mut lab = two_pods("polest", false);
    lab.program().expect("program");
    let web = lab.pod("prod/web");
    let to = SocketAddr::new(web.ip, 7000);
    let _srv = echo_server(&web.host, to);
    let conn = lab
        .pod("dev/client")
        .host
        .run_in(|| TcpStream::connect_timeout(&to, Duration::from_secs(1)))
        .expect("netns")
        .expect("connect before any policy");
    conn.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut w = conn.try_clone().expect("clone");
    let mut r = BufReader::new(conn);
    assert!(echo(&mut w, &mut r, "before"));

    // Only role=client may reach web on 7000 now; db may not.
    lab.set_policies(vec![np(r#"
metadata: {name: web-in, namespace: prod}
spec:
  podSelector: {matchLabels: {role: web}}
  ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {role: client}}}], ports: [{port: 7000}]}]
"#)])
    .expect("program");
    assert!(
        echo(&mut w, &mut r, "after-allowed"),
        "established connection broke"
    );
    let fails = check(
        &lab,
        "after-change",
        &[
            tcp("prod/db", "prod/web", 7000, false),
            tcp("dev/client", "prod/web", 7000, true),
        ],
    );
    assert!(fails.is_empty(), "{fails:?}");
    assert!(
        echo(&mut w, &mut r, "still"),
        "established connection broke"
    );
}

/// Packets of the anti-spoofing DROP rule, from `iptables-save -c`.
fn rpf_drops(lab: &PolicyLab) -> u64 {
    let text = lab.save("raw", true).expect("save");
    let line = text
        .lines()
        .find(|l| l.contains("rpfilter --invert"))
        .unwrap_or_else(|| panic!("no rpfilter rule in\n{text}"));
    line.trim_start_matches('[')
        .split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {line}"))
}

fn nc(host: &testlab::Host, src: Option<IpAddr>, to: SocketAddr) {
    let mut args = vec!["-z".to_string(), "-w".into(), "1".into()];
    if let Some(s) = src {
        args.extend(["-s".into(), s.to_string()]);
    }
    args.extend([to.ip().to_string(), to.port().to_string()]);
    let _ = host.exec_unchecked("nc", &args);
}

#[test]
fn forged_source_is_dropped_before_reaching_the_destination() {
    let mut lab = two_pods("polspoof", false);
    assert!(RPF_DROP.contains("rpfilter"));
    let (client, web, db) = (
        lab.pod("dev/client"),
        lab.pod("prod/web"),
        lab.pod("prod/db"),
    );
    // The client also owns db's address locally, so it can send with it as source.
    client
        .host
        .ip(&["addr", "add", &format!("{}/32", db.ip), "dev", "eth0"])
        .expect("addr");
    let to = SocketAddr::new(web.ip, 6379);
    let run = |lab: &PolicyLab| -> (bool, bool) {
        let (client, web, db) = (
            lab.pod("dev/client"),
            lab.pod("prod/web"),
            lab.pod("prod/db"),
        );
        let cap = web
            .host
            .capture("spoof", "eth0", "tcp port 6379")
            .expect("capture");
        // Forged attempt sandwiched between two real ones, so a capture that missed
        // packets cannot pass for a drop.
        nc(&client.host, Some(client.ip), to);
        nc(&client.host, Some(db.ip), to);
        nc(&client.host, Some(client.ip), to);
        let segs = cap.stop().expect("pcap");
        let from = |ip: IpAddr| segs.iter().any(|s| s.src.ip() == ip || s.dst.ip() == ip);
        (from(client.ip), from(db.ip))
    };
    // Control: without felix's rules the forged SYN does arrive.
    assert_eq!(
        run(&lab),
        (true, true),
        "control: capture must see forged packets"
    );
    lab.program().expect("program");
    let before = rpf_drops(&lab);
    let (real, forged) = run(&lab);
    assert!(real, "the pod's own address must pass");
    assert!(!forged, "forged source reached the destination");
    let after = rpf_drops(&lab);
    assert!(
        after > before,
        "DROP counter did not rise ({before} -> {after})"
    );
}

#[test]
fn nat_outgoing_masquerades_only_traffic_leaving_the_pools() {
    let mut lab = two_pods("polnat", true);
    lab.program().expect("program");
    let out = &lab.outside["out1"];
    let ext = Server::tcp(&out.host, SocketAddr::new(out.ip, 9000)).expect("server");
    let db = lab.pod("prod/db");
    let internal = Server::tcp(&db.host, SocketAddr::new(db.ip, 9000)).expect("server");
    let web = lab.pod("prod/web");
    let node: IpAddr = NODE_IP.parse().expect("ip");
    assert_eq!(source_seen(web, &ext), Some(node), "not masqueraded");
    assert_eq!(
        source_seen(web, &internal),
        Some(web.ip),
        "pod-to-pod masqueraded"
    );

    // Pool without natOutgoing: the outside host sees the pod's own address.
    lab.input.pools[0].nat_outgoing = false;
    lab.program().expect("program");
    let web = lab.pod("prod/web");
    assert_eq!(source_seen(web, &ext), Some(web.ip));
}

/// Connect from `pod` to `server`; the source address the server recorded for it.
fn source_seen(pod: &policy_support::Pod, server: &Server) -> Option<IpAddr> {
    let n = server.peers().len();
    if !pod.host.tcp_probe(server.addr(), Duration::from_secs(2)) {
        return None;
    }
    testlab::wait_until(Duration::from_secs(2), Duration::from_millis(10), || {
        server
            .peers()
            .get(n)
            .map(|p| p.ip())
            .ok_or("not accepted yet")
    })
    .ok()
}

#[test]
fn unknown_cali_interface_passes_nothing() {
    let mut lab = two_pods("polunk", false);
    // felix does not know dev/client yet (plumbed by CNI, endpoint not arrived).
    lab.input.endpoints.retain(|e| e.pod != "client");
    lab.program().expect("program");
    let fails = check(
        &lab,
        "unknown-iface",
        &[
            tcp("dev/client", "prod/web", 80, false),
            tcp("prod/db", "prod/web", 80, true),
            tcp("prod/web", "dev/client", 80, false),
            tcp("node", "dev/client", 80, true),
        ],
    );
    assert!(fails.is_empty(), "{fails:?}");
}

fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

fn first_rule<'a>(text: &'a str, chain: &str) -> &'a str {
    let prefix = format!("-A {chain} ");
    text.lines().find(|l| l.starts_with(&prefix)).unwrap_or("")
}

#[test]
fn other_programs_rules_survive_start_change_and_drift_repair() {
    let mut lab = two_pods("polforeign", true);
    let foreign_before = [
        (
            "filter",
            vec!["-A", "INPUT", "-s", "192.0.2.1/32", "-j", "ACCEPT"],
        ),
        (
            "filter",
            vec!["-A", "FORWARD", "-s", "192.0.2.2/32", "-j", "ACCEPT"],
        ),
        (
            "nat",
            vec!["-A", "POSTROUTING", "-s", "192.0.2.3/32", "-j", "RETURN"],
        ),
    ];
    for (t, args) in &foreign_before {
        let mut a = vec!["-t", t];
        a.extend(args.iter().copied());
        lab.foreign(&a).expect("foreign rule");
    }
    let first = lab.program().expect("program");
    assert_eq!(first.restore_calls, 3, "one restore per table: {first:?}");
    let foreign_after = [
        (
            "filter",
            vec!["-I", "FORWARD", "1", "-s", "192.0.2.4/32", "-j", "ACCEPT"],
        ),
        (
            "filter",
            vec!["-A", "INPUT", "-s", "192.0.2.5/32", "-j", "DROP"],
        ),
        (
            "nat",
            vec!["-A", "POSTROUTING", "-s", "192.0.2.6/32", "-j", "RETURN"],
        ),
    ];
    for (t, args) in &foreign_after {
        let mut a = vec!["-t", t];
        a.extend(args.iter().copied());
        lab.foreign(&a).expect("foreign rule");
    }
    let all_foreign = [
        "192.0.2.1/32",
        "192.0.2.2/32",
        "192.0.2.3/32",
        "192.0.2.4/32",
        "192.0.2.5/32",
        "192.0.2.6/32",
    ];
    let assert_intact = |lab: &PolicyLab, when: &str| {
        let text = format!(
            "{}{}",
            lab.save("filter", false).unwrap(),
            lab.save("nat", false).unwrap()
        );
        for f in all_foreign {
            assert_eq!(
                count(&text, f),
                1,
                "{when}: foreign rule {f} not intact in\n{text}"
            );
        }
    };
    assert_intact(&lab, "after start");

    // A change rewrites only the chains it affects, in one restore (filter only).
    let change = lab
        .set_policies(vec![np(r#"
metadata: {name: deny, namespace: prod}
spec: {podSelector: {matchLabels: {role: web}}, policyTypes: [Ingress]}
"#)])
        .expect("program");
    assert_eq!(change.restore_calls, 1, "{change:?}");
    // A change works from the cached view: no read-back, no hook touched (the foreign
    // rule now above our FORWARD hook is drift, seen by the next resync).
    assert_eq!(
        (change.hooks_fixed, change.tables_read),
        (0, 0),
        "{change:?}"
    );
    assert_eq!(
        change.chains_written, 2,
        "policy chain + web's tw chain: {change:?}"
    );
    assert_intact(&lab, "after change");

    // Drift: our FORWARD hook and nat hook removed, a chain emptied, a chain deleted.
    let filter = lab.save("filter", false).unwrap();
    let hook = filter
        .lines()
        .find(|l| l.starts_with("-A FORWARD ") && l.contains("cali-FORWARD"))
        .expect("hook")
        .replacen("-A ", "-D ", 1);
    let nat = lab.save("nat", false).unwrap();
    let nat_hook = nat
        .lines()
        .find(|l| l.starts_with("-A POSTROUTING ") && l.contains("cali-POSTROUTING"))
        .expect("nat hook")
        .replacen("-A ", "-D ", 1);
    lab.felix
        .runner()
        .run(
            lab.felix.backend().restore(),
            &["--noflush"],
            Some(&format!(
                "*filter\n{hook}\n-F cali-tw-{}\nCOMMIT\n*nat\n{nat_hook}\nCOMMIT\n",
                lab.pod("prod/web")
                    .ep
                    .iface
                    .as_deref()
                    .unwrap()
                    .trim_start_matches("cali-tw-")
            )),
        )
        .expect("tamper");
    let fails = check(&lab, "drifted", &[tcp("dev/client", "prod/web", 80, true)]);
    assert!(
        fails.is_empty(),
        "tampering should have opened web: {fails:?}"
    );

    // The cached view does not see drift; a resync reads back and repairs it.
    let rs = lab.ruleset();
    let repair = lab.felix.resync(&rs).expect("resync");
    assert_eq!(repair.hooks_fixed, 2, "{repair:?}");
    assert_eq!(repair.chains_written, 1, "{repair:?}");
    assert_intact(&lab, "after repair");
    let filter = lab.save("filter", false).unwrap();
    assert!(
        first_rule(&filter, "FORWARD").contains("-j cali-FORWARD"),
        "{filter}"
    );
    assert!(
        first_rule(&filter, "INPUT").contains("-j cali-INPUT"),
        "{filter}"
    );
    let fails = check(
        &lab,
        "repaired",
        &[
            tcp("dev/client", "prod/web", 80, false),
            tcp("node", "prod/web", 80, true),
        ],
    );
    assert!(fails.is_empty(), "{fails:?}");
    // In sync now: a second resync writes nothing.
    let again = lab.felix.resync(&rs).expect("resync");
    assert!(again.is_noop(), "{again:?}");
}

#[test]
fn backend_detection_follows_the_family_in_use() {
    testlab::require_root();
    let lab = testlab::Lab::new("polbackend").expect("lab");
    let h = lab.add_bare_host("h").expect("host");
    let runner = Runner::in_netns(h.netns());
    runner
        .run(
            "iptables-legacy",
            &["-A", "INPUT", "-s", "192.0.2.9", "-j", "ACCEPT"],
            None,
        )
        .expect("legacy rule");
    assert_eq!(Backend::detect(&runner).expect("detect"), Backend::Legacy);
    let h2 = lab.add_bare_host("h2").expect("host");
    let runner = Runner::in_netns(h2.netns());
    runner
        .run(
            "iptables-nft",
            &["-A", "INPUT", "-s", "192.0.2.9", "-j", "ACCEPT"],
            None,
        )
        .expect("nft rule");
    assert_eq!(Backend::detect(&runner).expect("detect"), Backend::Nft);
}

#[test]
fn vxlan_accepted_only_from_known_nodes_and_never_from_pods() {
    testlab::require_root();
    let mut lab = PolicyLab::new(
        "polvxlan",
        NS,
        &[("prod/web", 2, &[("role", "web")])],
        &[("peer", 2), ("stranger", 3)],
        false,
    )
    .expect("lab");
    lab.input.config.vxlan = true;
    lab.input.node_ips = vec![NODE_IP.parse().expect("ip"), lab.outside["peer"].ip];
    let node_ip: IpAddr = NODE_IP.parse().expect("ip");
    let _vxlan = Server::udp(&lab.node, SocketAddr::new(node_ip, 4789)).expect("udp server");
    let probes = [
        policy_support::udp("peer", "node", 4789, true),
        policy_support::udp("stranger", "node", 4789, false),
        policy_support::udp("prod/web", "node", 4789, false),
    ];
    // Control: before felix programs, the stranger and the pod get through.
    let open: Vec<_> = probes
        .iter()
        .map(|p| policy_support::Probe {
            allowed: true,
            ..p.clone()
        })
        .collect();
    let fails = check(&lab, "vxlan-before", &open);
    assert!(fails.is_empty(), "{fails:?}");
    lab.program().expect("program");
    let fails = check(&lab, "vxlan", &probes);
    assert!(fails.is_empty(), "{fails:?}");
}

#[test]
fn restart_reads_the_kernel_first_and_holds_deletes_until_in_sync() {
    let mut lab = two_pods("polrestart", false);
    let pol_a = np(r#"
metadata: {name: a, namespace: prod}
spec: {podSelector: {matchLabels: {role: web}}, ingress: [{from: [{podSelector: {}}]}]}
"#);
    let pol_b = np(r#"
metadata: {name: b, namespace: prod}
spec: {podSelector: {matchLabels: {role: db}}, policyTypes: [Ingress]}
"#);
    lab.set_policies(vec![pol_a.clone(), pol_b])
        .expect("program");
    let b_chain = tortie_felix::policy::names::policy_in_chain("prod", "b");

    // A restarted felix with the same input writes nothing (no flap).
    let rs = lab.ruleset();
    let mut restarted = tortie_felix::iptables::Programmer::new(
        Runner::in_netns(lab.node.netns()),
        lab.felix.backend(),
    );
    assert!(restarted.apply(&rs).expect("apply").is_noop());

    // Restarted again, before in-sync, with policy b not listed yet: nothing is deleted.
    let mut restarted = tortie_felix::iptables::Programmer::new(
        Runner::in_netns(lab.node.netns()),
        lab.felix.backend(),
    );
    restarted.set_deletes(false);
    lab.input.policies = vec![pol_a];
    let partial = lab.ruleset();
    let held = restarted.apply(&partial).expect("apply");
    assert_eq!(
        (held.chains_deleted, held.sets_destroyed),
        (0, 0),
        "{held:?}"
    );
    assert!(lab.save("filter", false).unwrap().contains(&b_chain));
    // In sync: stale state goes.
    restarted.set_deletes(true);
    let done = restarted.apply(&partial).expect("apply");
    assert!(done.chains_deleted >= 1, "{done:?}");
    assert!(!lab.save("filter", false).unwrap().contains(&b_chain));
    let fails = check(
        &lab,
        "after-in-sync",
        &[
            tcp("dev/client", "prod/db", 80, true),
            tcp("dev/client", "prod/web", 80, false),
            tcp("prod/db", "prod/web", 80, true),
        ],
    );
    assert!(fails.is_empty(), "{fails:?}");
}
