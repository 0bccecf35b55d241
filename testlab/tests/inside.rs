//! Code inside a host's namespace: sockets made by `run_in` live in that host, TCP and
//! UDP probes reach recording servers across the fabric, a DROP rule makes probes time
//! out while a paired allowed probe still passes. Needs root.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use testlab::inside::{Server, tcp_hello};
use testlab::{Lab, require_root};

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("socket address literal")
}

#[test]
fn run_in_sees_the_hosts_interfaces() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::new("inside")?;
    let a = lab.add_host("a", "10.0.0.1/24")?;
    // Binding 10.0.0.1 only works inside a, not in the test's own namespace.
    let bound = a.run_in(|| std::net::TcpListener::bind("10.0.0.1:0").map(|l| l.local_addr()))?;
    assert!(bound.is_ok(), "{bound:?}");
    let outside = std::net::TcpListener::bind("10.0.0.1:0");
    assert!(
        outside.is_err(),
        "10.0.0.1 must not exist in the root namespace"
    );
    // A panic inside propagates.
    let r = std::panic::catch_unwind(|| a.run_in(|| panic!("inside")));
    assert!(r.is_err());
    // A thread owned by the caller, e.g. to run a server for the whole test.
    let h = a.thread_in(|| {
        std::net::UdpSocket::bind("10.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|addr| addr.ip().to_string())
    });
    let ip = h.join().map_err(|_| anyhow::anyhow!("thread panicked"))??;
    assert_eq!(ip?, "10.0.0.1");
    Ok(())
}

#[test]
fn probes_pass_and_drops_time_out() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::new("probe")?;
    let a = lab.add_host("a", "10.0.0.1/24")?;
    let b = lab.add_host("b", "10.0.0.2/24")?;
    let tcp = Server::tcp(&b, sa("10.0.0.2:0"))?;
    let udp = Server::udp(&b, sa("10.0.0.2:0"))?;
    let t = Duration::from_millis(500);

    assert!(a.tcp_probe(tcp.addr(), t));
    assert_eq!(tcp_hello(&a, tcp.addr(), t).as_deref(), Some("b"));
    assert!(a.udp_probe(udp.addr(), t));
    assert!(
        tcp.peers().iter().all(|p| p.ip().to_string() == "10.0.0.1"),
        "{:?}",
        tcp.peers()
    );
    assert_eq!(udp.peers().len(), 1);
    // Nothing listens on port 9: refused at once, false.
    assert!(!a.tcp_probe(sa("10.0.0.2:9"), t));

    // Drop TCP to the server's port in b; UDP stays allowed (the paired probe).
    let port = tcp.addr().port().to_string();
    b.exec(
        "iptables",
        &["-A", "INPUT", "-p", "tcp", "--dport", &port, "-j", "DROP"],
    )?;
    let start = Instant::now();
    assert!(!a.tcp_probe(tcp.addr(), t));
    assert!(
        start.elapsed() >= t,
        "a drop times out rather than failing fast"
    );
    assert!(a.udp_probe(udp.addr(), t));
    Ok(())
}
