//! Capturing a real BIRD↔FRR session with tcpdump in a lab host and reading it back as
//! BGP messages: each direction starts with an OPEN and carries an UPDATE and a
//! KEEPALIVE. Needs root.

use std::net::IpAddr;
use std::time::Duration;

use testlab::bird::{Bird, BirdConfig, BirdNeighbor};
use testlab::capture::{split_bgp, tcp_streams};
use testlab::frr::{Frr, FrrConfig, FrrNeighbor};
use testlab::{Lab, require_root, wait_until};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip literal")
}

#[test]
fn bird_frr_session_captured_as_bgp_messages() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::new("pcap")?;
    let a = lab.add_host("bird", "10.0.0.1/24")?;
    let c = lab.add_host("frr", "10.0.0.3/24")?;
    let cap = a.capture("bgp", "eth0", "tcp port 179")?;

    let mut ca = BirdConfig::new("10.0.0.1".parse()?, 65001);
    ca.neighbors
        .push(BirdNeighbor::new("frr", ip("10.0.0.3"), 65003));
    ca.static_routes.push("10.1.0.0/26".parse()?);
    let bird = Bird::start(&a, ca)?;
    let mut cc = FrrConfig::new("10.0.0.3".parse()?, 65003);
    cc.neighbors.push(FrrNeighbor::new(ip("10.0.0.1"), 65001));
    cc.networks.push("10.3.0.0/26".parse()?);
    let frr = Frr::start(&c, cc)?;

    wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        let b = bird.routes("master4")?;
        let f = frr.routes("ipv4")?;
        anyhow::ensure!(
            b.iter().any(|r| r.prefix.to_string() == "10.3.0.0/26"),
            "bird"
        );
        anyhow::ensure!(
            f.iter().any(|r| r.prefix.to_string() == "10.1.0.0/26"),
            "frr"
        );
        Ok(())
    })?;

    let segments = cap.stop()?;
    assert!(cap.file().exists());
    let streams = tcp_streams(&segments);
    let with_data: Vec<_> = streams.iter().filter(|(_, s)| !s.is_empty()).collect();
    assert_eq!(
        with_data.len(),
        2,
        "one session, two directions: {:?}",
        streams.keys()
    );
    for ((src, dst), bytes) in with_data {
        let msgs = split_bgp(bytes);
        let types: Vec<u8> = msgs.iter().map(|m| m[18]).collect();
        assert_eq!(
            types.first(),
            Some(&1),
            "{src}->{dst} starts with OPEN: {types:?}"
        );
        assert!(types.contains(&2), "{src}->{dst} has an UPDATE: {types:?}");
        assert!(
            types.contains(&4),
            "{src}->{dst} has a KEEPALIVE: {types:?}"
        );
        let total: usize = msgs.iter().map(Vec::len).sum();
        assert_eq!(
            total,
            bytes.len(),
            "{src}->{dst}: the stream is whole messages"
        );
    }
    Ok(())
}
