//! `IP_AUTODETECTION_METHOD` on a real kernel: a lab host with a docker-like bridge
//! (`docker0`, 172.17.0.1/16, first in interface order), `eth0` 10.0.0.1/24 and `ens5`
//! 10.1.0.1/24; `tortie-node detect-ip` run inside it prints the address each method
//! picks, exactly as the agent would register it. Needs root (panics otherwise).

mod common;

use std::process::Output;

use anyhow::Result;
use testlab::{Host, Lab};

fn detect(h: &Host, method: &str) -> Result<Output> {
    let mut c = h.command(common::BIN);
    c.arg("detect-ip")
        .env("NODENAME", "h")
        .env("IP_AUTODETECTION_METHOD", method)
        .env("RUST_LOG", "warn")
        .env_remove("IP")
        .env_remove("KUBECONFIG");
    Ok(c.output()?)
}

fn picks(h: &Host, method: &str) -> Result<String> {
    let o = detect(h, method)?;
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).trim().to_string(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    anyhow::ensure!(o.status.success(), "{method}: {:?}: {err}", o.status);
    Ok(out)
}

fn fails(h: &Host, method: &str) -> Result<(Option<i32>, String)> {
    let o = detect(h, method)?;
    anyhow::ensure!(!o.status.success(), "{method} succeeded: {:?}", o.stdout);
    Ok((
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    ))
}

#[test]
fn each_method_picks_its_address_in_a_host_with_three_interfaces() -> Result<()> {
    let lab = Lab::new("autodet")?;
    let h = lab.add_bare_host("h")?;
    h.ip(&["link", "add", "docker0", "type", "bridge"])?;
    h.add_addr("docker0", "172.17.0.1/16")?;
    h.ip(&["link", "set", "docker0", "up"])?;
    assert_eq!(
        lab.connect(&h, testlab::DEFAULT_SEGMENT, "10.0.0.1/24")?,
        "eth0"
    );
    lab.add_segment("b")?;
    let second = lab.connect(&h, "b", "10.1.0.1/24")?;
    h.ip(&["link", "set", &second, "down"])?;
    h.ip(&["link", "set", &second, "name", "ens5"])?;
    h.ip(&["link", "set", "ens5", "up"])?;

    // first-found skips the docker bridge; interface= has no default exclusions.
    assert_eq!(picks(&h, "first-found")?, "10.0.0.1/24");
    assert_eq!(picks(&h, "interface=ens.*")?, "10.1.0.1/24");
    assert_eq!(picks(&h, "interface=^wlan, ^ens5$")?, "10.1.0.1/24");
    assert_eq!(picks(&h, "interface=docker0")?, "172.17.0.1/16");
    assert_eq!(picks(&h, "skip-interface=eth0")?, "10.1.0.1/24");
    assert_eq!(picks(&h, "cidr=10.1.0.0/16")?, "10.1.0.1/24");
    assert_eq!(picks(&h, "cidr=192.0.2.0/24,10.0.0.0/8")?, "10.0.0.1/24");
    // can-reach: the kernel's source address towards each subnet, with its mask.
    assert_eq!(picks(&h, "can-reach=10.1.0.200")?, "10.1.0.1/24");
    assert_eq!(picks(&h, "can-reach=10.0.0.77")?, "10.0.0.1/24");
    assert_eq!(picks(&h, "can-reach=172.17.9.9")?, "172.17.0.1/16");

    // Nothing matches / no route: a run-time failure naming the method.
    let (code, err) = fails(&h, "interface=^wlan0$")?;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("IP_AUTODETECTION_METHOD=interface=^wlan0$ found no valid IPv4 address"),
        "{err}"
    );
    let (code, err) = fails(&h, "can-reach=192.0.2.1")?;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("IP_AUTODETECTION_METHOD=can-reach=192.0.2.1: no route to 192.0.2.1:80"),
        "{err}"
    );
    // A bad method is a configuration error (exit 64) naming the variable and the part.
    let (code, err) = fails(&h, "interface=eth0,eth[")?;
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains(r#"invalid IP_AUTODETECTION_METHOD: interface: regex "eth[""#),
        "{err}"
    );
    let (code, err) = fails(&h, "cidr=10.0.0.0/40")?;
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains(r#"cidr: "10.0.0.0/40""#), "{err}");
    Ok(())
}
