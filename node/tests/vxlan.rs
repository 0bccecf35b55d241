//! VXLAN end to end: two tortie-node agents in namespaces on a real etcd whose pool has
//! `vxlanMode: Always`. Each agent gets a tunnel address from the pool (IPAM handle
//! `vxlan-tunnel-addr-<node>`) and a MAC into its TortieNode, felix builds
//! `vxlan.calico` with that address, remote blocks go `via <peer tunnel addr> dev
//! vxlan.calico onlink`, and a pod ping crosses the fabric inside UDP 4789 (seen by
//! tcpdump on the fabric bridge, with no bare ICMP there). A restarted agent keeps its
//! address and MAC. Switching the pool to `vxlanMode: Never` (a datastore update, no
//! restart) clears the fields, deletes the handles and routes go direct; switching it to
//! `ipipMode: Always` gives each node an `ipv4IPIPTunnelAddr` (this kernel has no `ipip`
//! module: the IPIP kernel part is covered by felix's qemu VM test). Needs root.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use common::{Ds, Node, block_of};
use testlab::etcd::Etcd;
use testlab::{Host, Lab, holds_for, wait_until};
use tortie_crds::{EncapMode, IpPool, IpamHandle, TortieNode};
use tortie_datastore::{Datastore, EtcdDatastore, Filter, ObjectKey};

/// Runs `f` against the lab's etcd from inside the etcd host's namespace (the only place
/// it is reachable), on a runtime of its own.
fn with_etcd<R: Send>(
    host: &Host,
    endpoint: &str,
    f: impl AsyncFnOnce(&Datastore) -> Result<R> + Send,
) -> Result<R> {
    host.run_in(|| -> Result<R> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let ds = EtcdDatastore::connect(&[endpoint.to_string()], "/tortie").await?;
            let ds = Datastore::Etcd(Box::new(ds));
            f(&ds).await
        })
    })?
}

fn nodes(host: &Host, ep: &str) -> Result<BTreeMap<String, TortieNode>> {
    with_etcd(host, ep, async |ds| {
        let l = ds.store::<TortieNode>().list(&Filter::all()).await?;
        Ok(l.items
            .into_iter()
            .map(|n| (n.metadata.name.clone().unwrap_or_default(), n))
            .collect())
    })
}

fn handle_exists(host: &Host, ep: &str, handle: &str) -> Result<bool> {
    let key = ObjectKey::cluster(IpamHandle::name_for(handle));
    with_etcd(host, ep, async |ds| {
        Ok(ds.store::<IpamHandle>().get(&key).await?.is_some())
    })
}

/// Sets every pool's encapsulation modes (a datastore update; the agents keep running).
fn set_modes(host: &Host, ep: &str, ipip: EncapMode, vxlan: EncapMode) -> Result<()> {
    with_etcd(host, ep, async |ds| {
        let store = ds.store::<IpPool>();
        for mut p in store.list(&Filter::all()).await?.items {
            p.spec.ipip_mode = ipip;
            p.spec.vxlan_mode = vxlan;
            store.update(&p).await?;
        }
        Ok(())
    })
}

/// The VXLAN address and MAC `name` records, once it has both.
fn vtep_of(n: &BTreeMap<String, TortieNode>, name: &str) -> Result<(IpAddr, String)> {
    let t = n
        .get(name)
        .with_context(|| format!("no TortieNode {name}"))?;
    match (
        t.spec.ipv4_vxlan_tunnel_addr,
        t.spec.vxlan_tunnel_mac_addr.clone(),
    ) {
        (Some(a), Some(m)) => Ok((a, m)),
        _ => bail!("{name} has no VTEP yet: {:?}", t.spec),
    }
}

/// `tcpdump -r FILE -n` output (the decoded packets of a capture file).
fn decode(file: &std::path::Path) -> Result<String> {
    let out = Command::new("tcpdump")
        .args(["-r"])
        .arg(file)
        .args(["-n", "-v"])
        .output()
        .context("run tcpdump -r")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn vxlan_tunnel_addresses_routes_and_encapsulated_ping() -> Result<()> {
    let lab = Lab::new("vxlan")?;
    let etcd_host = lab.add_host("etcd", "10.0.0.100/24")?;
    let etcd = Etcd::start_in(&etcd_host, "10.0.0.100".parse()?)?;
    let ep = etcd.endpoint();
    let ds = Ds::Etcd(ep.clone());
    let n = [Node::add(&lab, 1)?, Node::add(&lab, 2)?];
    let env = [("CALICO_IPV4POOL_VXLAN", "Always")];
    let mut agents = vec![
        n[0].start_with(&ds, "1", &env)?,
        n[1].start_with(&ds, "1", &env)?,
    ];
    let logs = |agents: &[testlab::Proc]| {
        agents
            .iter()
            .map(|a| a.log_tail(25))
            .collect::<Vec<_>>()
            .join("\n----\n")
    };

    // Both TortieNodes get a tunnel address from the pool and a MAC.
    let vteps = wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
        let all = nodes(&etcd_host, &ep)?;
        Ok::<_, anyhow::Error>([vtep_of(&all, "n1")?, vtep_of(&all, "n2")?])
    })
    .with_context(|| logs(&agents))?;
    let [(a1, mac1), (a2, mac2)] = vteps.clone();
    assert_ne!(a1, a2, "tunnel addresses must differ");
    assert_ne!(mac1, mac2, "VXLAN MACs must differ");
    for (a, mac) in [(a1, &mac1), (a2, &mac2)] {
        let pool: ipnetwork::IpNetwork = "10.244.0.0/16".parse()?;
        assert!(pool.contains(a), "{a} outside the pool");
        let first = u8::from_str_radix(mac.get(..2).unwrap_or(""), 16)?;
        assert_eq!(
            first & 0x03,
            0x02,
            "{mac} must be locally administered unicast"
        );
    }
    for name in ["n1", "n2"] {
        assert!(handle_exists(
            &etcd_host,
            &ep,
            &format!("vxlan-tunnel-addr-{name}")
        )?);
        assert!(!handle_exists(
            &etcd_host,
            &ep,
            &format!("ipip-tunnel-addr-{name}")
        )?);
    }

    // Felix builds vxlan.calico with that address and MAC in each node.
    for (node, (a, mac)) in n.iter().zip(&vteps) {
        wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
            let out = node
                .host
                .ip(&["-d", "addr", "show", "dev", "vxlan.calico"])?;
            if out.contains(&format!("inet {a}/32"))
                && out.contains(mac.as_str())
                && out.contains("vxlan id 4096")
            {
                Ok(())
            } else {
                Err(anyhow!("{}: vxlan.calico not ready:\n{out}", node.name))
            }
        })
        .with_context(|| logs(&agents))?;
    }

    // Pods; each node routes the other's block via the peer's tunnel address.
    let (p1, ip1) = n[0].add_pod(&lab, &ds, "default", "p1")?;
    let (_p2, ip2) = n[1].add_pod(&lab, &ds, "default", "p2")?;
    for (node, block, via) in [(&n[0], block_of(ip2), a2), (&n[1], block_of(ip1), a1)] {
        let want = format!("{block} via {via} dev vxlan.calico onlink");
        wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
            let r = node.routes();
            if r.contains(&want) {
                Ok(())
            } else {
                Err(anyhow!("{} lacks {want:?}:\n{r}", node.name))
            }
        })
        .with_context(|| logs(&agents))?;
    }

    // The ping crosses the fabric inside UDP 4789, never as bare ICMP.
    let fabric = lab.fabric();
    let vx = fabric.capture("vxlan", "br0", "udp port 4789")?;
    let bare = fabric.capture("bare", "br0", "icmp")?;
    assert!(
        p1.ping(ip2, 2, Duration::from_secs(3)),
        "pod p1 cannot ping {ip2}\nn1 routes:\n{}",
        n[0].routes()
    );
    vx.stop()?;
    bare.stop()?;
    let seen = decode(vx.file())?;
    assert!(
        seen.contains("VXLAN") && seen.contains(&format!("{ip1} > {ip2}: ICMP echo request")),
        "no encapsulated echo request on the fabric:\n{seen}"
    );
    assert!(
        seen.contains(&format!("{ip2} > {ip1}: ICMP echo reply")),
        "no encapsulated echo reply on the fabric:\n{seen}"
    );
    let plain = decode(bare.file())?;
    assert!(
        !plain.contains(&ip1.to_string()),
        "pod traffic crossed the fabric unencapsulated:\n{plain}"
    );

    // Restart n1's agent: same address, same MAC, the handle still holds it.
    agents[0].kill();
    agents[0] = n[0].start_with(&ds, "2", &env)?;
    holds_for(Duration::from_secs(3), Duration::from_millis(200), || {
        let all = nodes(&etcd_host, &ep)?;
        let now = vtep_of(&all, "n1")?;
        if now == (a1, mac1.clone())
            && n[0]
                .routes()
                .contains(&format!("via {a2} dev vxlan.calico"))
        {
            Ok(())
        } else {
            Err(anyhow!(
                "n1 changed across its restart: {now:?}\n{}",
                n[0].routes()
            ))
        }
    })
    .with_context(|| logs(&agents))?;
    assert!(handle_exists(&etcd_host, &ep, "vxlan-tunnel-addr-n1")?);

    // vxlanMode: Never, no restart: fields cleared, handles gone, routes direct.
    set_modes(&etcd_host, &ep, EncapMode::Never, EncapMode::Never)?;
    wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let all = nodes(&etcd_host, &ep)?;
        for name in ["n1", "n2"] {
            let t = &all[name];
            if t.spec.ipv4_vxlan_tunnel_addr.is_some() {
                bail!("{name} still records {:?}", t.spec.ipv4_vxlan_tunnel_addr);
            }
            if handle_exists(&etcd_host, &ep, &format!("vxlan-tunnel-addr-{name}"))? {
                bail!("handle vxlan-tunnel-addr-{name} still exists");
            }
        }
        // The MAC is kept (made once, stable across VXLAN toggles).
        if vtep_mac(&all, "n1") != Some(mac1.clone()) {
            bail!("n1's MAC changed: {:?}", vtep_mac(&all, "n1"));
        }
        Ok(())
    })
    .with_context(|| logs(&agents))?;
    for (node, block, via) in [
        (&n[0], block_of(ip2), "10.0.0.2"),
        (&n[1], block_of(ip1), "10.0.0.1"),
    ] {
        let want = format!("{block} via {via} dev eth0");
        wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
            let r = node.routes();
            if r.contains(&want) && !r.contains("vxlan.calico") {
                Ok(())
            } else {
                Err(anyhow!(
                    "{} lacks {want:?} or keeps a VXLAN route:\n{r}",
                    node.name
                ))
            }
        })
        .with_context(|| logs(&agents))?;
    }
    assert!(
        p1.ping(ip2, 2, Duration::from_secs(3)),
        "direct ping after Never"
    );

    // ipipMode: Always: each node records an IPIP tunnel address (handle ipip-tunnel-addr).
    set_modes(&etcd_host, &ep, EncapMode::Always, EncapMode::Never)?;
    let ipips = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let all = nodes(&etcd_host, &ep)?;
        let get = |name: &str| {
            all[name]
                .spec
                .bgp
                .as_ref()
                .and_then(|b| b.ipv4_ipip_tunnel_addr)
                .with_context(|| format!("{name} has no IPIP tunnel address yet"))
        };
        Ok::<_, anyhow::Error>((get("n1")?, get("n2")?))
    })
    .with_context(|| logs(&agents))?;
    assert_ne!(ipips.0, ipips.1);
    for name in ["n1", "n2"] {
        assert!(handle_exists(
            &etcd_host,
            &ep,
            &format!("ipip-tunnel-addr-{name}")
        )?);
    }
    Ok(())
}

fn vtep_mac(n: &BTreeMap<String, TortieNode>, name: &str) -> Option<String> {
    n.get(name)?.spec.vxlan_tunnel_mac_addr.clone()
}
