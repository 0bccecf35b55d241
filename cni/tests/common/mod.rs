//! Shared by the plugin tests: running the built `tortie-cni` binary inside a lab host
//! as a container runtime does, and reading back what it left in the datastore.
#![allow(dead_code)]

use std::io::Write;
use std::net::IpAddr;
use std::process::Stdio;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use testlab::Host;
use tortie_crds::{IpamBlock, WorkloadEndpoint};
use tortie_datastore::{Datastore, Filter, ObjectKey};

/// The node name every plugin test uses.
pub const NODE: &str = "node-1";

/// One invocation's outcome.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.stdout).with_context(|| {
            format!(
                "stdout is not JSON: {:?} (stderr: {})",
                self.stdout, self.stderr
            )
        })
    }
}

/// A pod sandbox as the runtime names it.
pub struct Sandbox<'a> {
    pub id: &'a str,
    pub netns: String,
    pub ifname: &'a str,
    pub namespace: &'a str,
    pub pod: &'a str,
}

/// Runs the plugin binary inside the node namespace, as a runtime on that node would.
pub fn cni(node: &Host, command: &str, sb: Option<&Sandbox<'_>>, conf: &Value) -> Result<Run> {
    let mut c = node.command(env!("CARGO_BIN_EXE_tortie-cni"));
    c.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command)
        .env("CNI_PATH", "/opt/cni/bin");
    if let Some(sb) = sb {
        c.env("CNI_CONTAINERID", sb.id)
            .env("CNI_IFNAME", sb.ifname)
            .env(
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={}",
                    sb.namespace, sb.pod, sb.id
                ),
            );
        if !sb.netns.is_empty() {
            c.env("CNI_NETNS", &sb.netns);
        }
    }
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().context("spawn tortie-cni")?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(&serde_json::to_vec(conf)?)?;
    let out = child.wait_with_output()?;
    Ok(Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Every allocation in every block: (address, handle).
pub async fn allocations(ds: &Datastore) -> Result<Vec<(IpAddr, String)>> {
    let blocks = ds.store::<IpamBlock>().list(&Filter::all()).await?.items;
    Ok(blocks
        .iter()
        .flat_map(|b| {
            tortie_ipam::block::allocations(&b.spec)
                .map(|a| {
                    let h = a.attr.and_then(|x| x.handle_id.clone()).unwrap_or_default();
                    (a.ip, h)
                })
                .collect::<Vec<_>>()
        })
        .collect())
}

pub fn wep_key(namespace: &str, pod: &str) -> ObjectKey {
    ObjectKey::namespaced(
        namespace,
        WorkloadEndpoint::name_for(NODE, "k8s", pod, "eth0"),
    )
}

pub fn link_exists(node: &Host, name: &str) -> bool {
    node.ip(&["link", "show", name]).is_ok()
}

pub fn add_ip(r: &Run) -> Result<IpAddr> {
    ensure!(r.code == 0, "ADD failed: {} / {}", r.stdout, r.stderr);
    let v = r.json()?;
    let addr = v["ips"][0]["address"].as_str().context("ips[0].address")?;
    let (ip, len) = addr.split_once('/').context("address/len")?;
    ensure!(len == "32", "{addr}");
    Ok(ip.parse()?)
}
