//! Root-only: pipelined route writes keep per-route semantics. Among 1,000 good
//! workload routes written in batches, two routes via an interface that vanished behind
//! the reconciler's back are refused by the kernel: each is reported on its own (naming
//! its destination), the 1,000 others land (checked with `ip route` in the namespace),
//! the failed ones stay pending until a resync repairs them; a batch of deletes that
//! includes a route already removed by hand is no error. Acks the kernel had to drop
//! (receive buffer overrun) make errors for exactly those routes, never a hang.

use anyhow::{Context, Result, ensure};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use testlab::{Host, Lab};
use tortie_cni::Netns;
use tortie_felix::input::{Endpoint, EndpointId, Input};
use tortie_felix::route::{ReconcilerConfig, RouteReconciler};

const GOOD: usize = 1000;
const IFACES: usize = 10;
const GONE: &str = "calibtgone";
/// Positions (in destination order) of the routes via the vanished interface: one
/// inside the first chunk, one inside a later one.
const BAD_AT: [usize; 2] = [77, 777];

fn iface(i: usize) -> String {
    format!("calibt{i:04}")
}

fn ip_of(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(0x0a50_0000u32 + i as u32)
}

fn endpoint(i: usize, iface: String) -> Endpoint {
    Endpoint {
        id: EndpointId {
            namespace: "batch".into(),
            pod: format!("pod{i}"),
            endpoint: "eth0".into(),
        },
        node: "batch".into(),
        iface,
        ips: vec![
            ipnetwork::IpNetwork::new(ip_of(i).into(), 32).unwrap_or_else(|_| unreachable!()),
        ],
        mac: None,
        labels: BTreeMap::new(),
        ports: vec![],
        service_account: None,
    }
}

fn add_veths(host: &Host, names: &[String]) -> Result<()> {
    let mut batch = String::new();
    for n in names {
        batch.push_str(&format!("link add {n} type veth peer name p{n}\n"));
        batch.push_str(&format!("link set {n} up\n"));
    }
    let file = host.dir("")?.join(format!("links-{}.batch", names.len()));
    std::fs::write(&file, batch)?;
    host.ip(&["-batch", &file.display().to_string()])?;
    Ok(())
}

/// Our routes in the namespace, one `ip route` line each.
fn our_routes(host: &Host) -> Result<Vec<String>> {
    Ok(host
        .ip(&["route", "show", "proto", "80"])?
        .lines()
        .map(str::to_string)
        .collect())
}

fn has_route(routes: &[String], ip: Ipv4Addr) -> bool {
    let want = format!("{ip} ");
    routes.iter().any(|l| l.starts_with(&want))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_routes_in_a_large_batch_are_reported_alone_and_repaired() -> Result<()> {
    let lab = Lab::new("frbt")?;
    let host = lab.add_bare_host("n")?;
    let mut names: Vec<String> = (0..IFACES).map(iface).collect();
    names.push(GONE.into());
    add_veths(&host, &names)?;
    let cfg = ReconcilerConfig::new("batch", Netns::named(host.netns()));
    let mut r = RouteReconciler::new(cfg).await?;
    // The interface disappears; driven directly, the reconciler has not seen it go.
    host.ip(&["link", "del", GONE])?;

    let total = GOOD + BAD_AT.len();
    for i in 0..total {
        let dev = if BAD_AT.contains(&i) {
            GONE.to_string()
        } else {
            iface(i % IFACES)
        };
        r.handle_input(&Input::EndpointUpsert(endpoint(i, dev)));
    }
    r.handle_input(&Input::InSync);
    // The pass fails (the vanished interface's sysctls are the first error it returns)...
    let first = r.apply().await;
    ensure!(
        first.is_err(),
        "apply succeeded although two routes must fail: {first:?}"
    );
    // ...but every route was tried and each refusal is reported on its own.
    let st = r.status().clone();
    ensure!(st.failed_routes == 2, "{st:?}");
    ensure!(st.route_writes == GOOD as u64, "{st:?}");
    for (k, bad) in BAD_AT.iter().enumerate() {
        let f = st.route_failures.get(k).context("failure not reported")?;
        ensure!(
            f.contains(&format!("replace route {}/32", ip_of(*bad))) && f.contains("refused"),
            "failure {k}: {f}"
        );
    }
    let routes = our_routes(&host)?;
    ensure!(
        routes.len() == GOOD,
        "{} routes in the kernel",
        routes.len()
    );
    for i in 0..total {
        ensure!(
            has_route(&routes, ip_of(i)) != BAD_AT.contains(&i),
            "route {} wrongly {}",
            ip_of(i),
            if BAD_AT.contains(&i) {
                "present"
            } else {
                "missing"
            }
        );
    }

    // Not acknowledged, so not marked programmed: the next pass tries exactly those.
    let again = r.apply().await;
    ensure!(again.is_err(), "{again:?}");
    let st = r.status().clone();
    ensure!(
        st.failed_routes == 2 && st.route_writes == GOOD as u64,
        "{st:?}"
    );

    // The interface comes back; a resync repairs what failed and nothing else.
    add_veths(&host, &[GONE.to_string()])?;
    let s = r.resync().await?;
    ensure!(s.writes == 2 && s.deletes == 0 && s.failed == 0, "{s:?}");
    let st = r.status().clone();
    ensure!(
        st.failed_routes == 0 && st.route_failures.is_empty(),
        "{st:?}"
    );
    let routes = our_routes(&host)?;
    ensure!(
        routes.len() == total,
        "{} routes after resync",
        routes.len()
    );
    for bad in BAD_AT {
        let want = format!("{} dev {GONE} scope link", ip_of(bad));
        ensure!(
            routes.iter().any(|l| l.starts_with(&want)),
            "{want} missing"
        );
    }

    // Delete half in one pass; one of them was already removed by hand.
    let gone_by_hand = ip_of(10);
    host.ip(&["route", "del", &format!("{gone_by_hand}/32")])?;
    for i in (0..total).step_by(2) {
        r.handle_input(&Input::EndpointRemove(endpoint(i, String::new()).id));
    }
    let removed = total.div_ceil(2);
    let s = r.apply().await?;
    ensure!(s.deletes == removed && s.failed == 0, "{s:?}");
    let routes = our_routes(&host)?;
    ensure!(routes.len() == total - removed, "{} left", routes.len());
    for i in 0..total {
        ensure!(
            has_route(&routes, ip_of(i)) == (i % 2 == 1),
            "route {} after deletes",
            ip_of(i)
        );
    }
    let s = r.resync().await?;
    ensure!(s.writes == 0 && s.deletes == 0 && s.failed == 0, "{s:?}");
    drop(lab);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_acks_are_errors_never_a_hang_or_a_false_success() -> Result<()> {
    use tortie_felix::route::batch::{CHUNK, RouteOp, RouteRequest, RouteSocket};
    use tortie_felix::route::kernel::{build_route, list_links};
    use tortie_felix::route::model::RouteTarget;

    let lab = Lab::new("frba")?;
    let host = lab.add_bare_host("n")?;
    add_veths(&host, &[iface(0)])?;
    let ns = Netns::named(host.netns());
    let links = list_links(&ns.connect()?).await?;
    let index = links
        .iter()
        .find(|l| l.name == iface(0))
        .map(|l| l.index)
        .context("veth not found")?;
    let target = RouteTarget::Device { iface: iface(0) };
    let reqs: Vec<RouteRequest> = (0..CHUNK)
        .map(|i| {
            let dst = ipnetwork::IpNetwork::new(ip_of(i).into(), 32)?;
            let msg = build_route(dst, &target, |_| Some(index))?;
            Ok(RouteRequest {
                dst,
                op: RouteOp::Replace(msg),
            })
        })
        .collect::<Result<_>>()?;
    let mut sock = RouteSocket::open(&ns)?;
    // The smallest receive buffer holds only a few acks: the kernel drops the rest.
    sock.set_receive_buffer(0)?;
    let results = sock.send_chunk(&reqs);
    ensure!(results.len() == CHUNK, "{} results", results.len());
    let acked = results.iter().filter(|r| r.is_ok()).count();
    let lost: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    ensure!(
        !lost.is_empty(),
        "no ack was lost with a tiny receive buffer"
    );
    ensure!(
        lost.iter().all(|e| e.contains("acknowledgement lost")),
        "{lost:?}"
    );
    // Every request was still carried out by the kernel; only its answer went missing.
    let routes = our_routes(&host)?;
    ensure!(routes.len() == CHUNK, "{} routes", routes.len());
    // With the buffer back, the same socket answers every request of the next chunk.
    sock.set_receive_buffer(1 << 20)?;
    let again = sock.send_chunk(&reqs);
    ensure!(again.iter().all(|r| r.is_ok()), "{again:?}");
    ensure!(acked < CHUNK, "{acked}");
    drop(lab);
    Ok(())
}
