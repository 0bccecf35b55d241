//! Set-up shared by the agent's netns tests (`mesh.rs` on etcd, `kube.rs` on the
//! Kubernetes API): a lab host per node on 10.0.0.0/24 with a default route, the agent
//! started inside it with calico-node's environment for either datastore, the lab's
//! `add-pod` path, and route reading. Each test binary uses a different subset.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ipnetwork::Ipv4Network;
use testlab::{Host, Lab, Proc};

pub const BIN: &str = env!("CARGO_BIN_EXE_tortie-node");

/// The datastore the agents use.
#[derive(Clone, Debug)]
pub enum Ds {
    /// `DATASTORE_TYPE=etcdv3`, `ETCD_ENDPOINTS`.
    Etcd(String),
    /// `DATASTORE_TYPE=kubernetes`, `KUBECONFIG`.
    Kube(PathBuf),
}

fn node_env(cmd: &mut Command, name: &str, ip: &str, ds: &Ds, status: &str, state: &Path) {
    match ds {
        Ds::Etcd(ep) => cmd
            .env("DATASTORE_TYPE", "etcdv3")
            .env("ETCD_ENDPOINTS", ep),
        Ds::Kube(kubeconfig) => cmd
            .env("DATASTORE_TYPE", "kubernetes")
            .env("KUBECONFIG", kubeconfig),
    };
    cmd.env("NODENAME", name)
        .env("IP", ip)
        .env("CALICO_IPV4POOL_CIDR", "10.244.0.0/16")
        .env("TORTIE_STATUS_ADDR", status)
        .env("TORTIE_STATE_DIR", state)
        .env("TORTIE_IN_SYNC_BOUND_SECS", "10")
        .env("RUST_LOG", "info");
}

/// One node: its lab host, name (`n<i>`), address (`10.0.0.<i>`) and status socket.
pub struct Node {
    pub host: Host,
    pub name: String,
    pub ip: String,
    pub status: String,
    /// The agent's state directory (`nodename`, `mtu` for the CNI plugin).
    pub state: PathBuf,
}

impl Node {
    /// Adds host `n<i>` at `10.0.0.<i>/24` with a default route (a real host has one;
    /// proxy ARP for the pods' gateway needs it).
    pub fn add(lab: &Lab, i: u8) -> Result<Node> {
        let name = format!("n{i}");
        let ip = format!("10.0.0.{i}");
        let host = lab.add_host(&name, &format!("{ip}/24"))?;
        host.ip(&["route", "add", "default", "dev", "eth0"])?;
        let status = host.dir("run")?.join("status.sock").display().to_string();
        let state = host.dir("state")?;
        Ok(Node {
            host,
            name,
            ip,
            status,
            state,
        })
    }

    fn command(&self, ds: &Ds) -> Command {
        let mut c = self.host.command(BIN);
        node_env(
            &mut c,
            &self.name,
            &format!("{}/24", self.ip),
            ds,
            &self.status,
            &self.state,
        );
        c
    }

    /// Starts the agent in the node's namespace.
    pub fn start(&self, ds: &Ds, tag: &str) -> Result<Proc> {
        self.start_with(ds, tag, &[])
    }

    /// Starts the agent with extra (or overriding) environment variables.
    pub fn start_with(&self, ds: &Ds, tag: &str, env: &[(&str, &str)]) -> Result<Proc> {
        let mut c = self.command(ds);
        for (k, v) in env {
            c.env(k, v);
        }
        Ok(self.host.spawn_command(&format!("agent-{tag}"), c)?)
    }

    /// `GET path` on `addr` from inside the node's namespace (HTTP/1.0): the status code
    /// and body, or the connection error.
    pub fn http_get(&self, addr: SocketAddr, path: &str) -> Result<(u16, String)> {
        let request = format!("GET {path} HTTP/1.0\r\nHost: tortie\r\n\r\n");
        let raw = self
            .host
            .run_in(|| -> std::io::Result<String> {
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                s.write_all(request.as_bytes())?;
                let mut out = String::new();
                s.read_to_string(&mut out)?;
                Ok(out)
            })?
            .with_context(|| format!("GET {path} from {addr} in {}", self.name))?;
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .with_context(|| format!("no HTTP head in {raw:?}"))?;
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .with_context(|| format!("no status code in {head:?}"))?;
        Ok((code, body.to_string()))
    }

    /// Creates pod `namespace/pod` on this node with `tortie-node add-pod` (IPAM, veth,
    /// WorkloadEndpoint): a bare lab host is the pod's namespace.
    pub fn add_pod(
        &self,
        lab: &Lab,
        ds: &Ds,
        namespace: &str,
        pod: &str,
    ) -> Result<(Host, IpAddr)> {
        let pod_host = lab.add_bare_host(pod)?;
        let mut c = self.command(ds);
        c.args(["add-pod", "--namespace", namespace, "--pod", pod, "--netns"])
            .arg(format!("/run/netns/{}", pod_host.netns()));
        let out = c.output().context("run add-pod")?;
        if !out.status.success() {
            bail!(
                "add-pod {pod} on {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let ip: IpAddr = String::from_utf8_lossy(&out.stdout).trim().parse()?;
        Ok((pod_host, ip))
    }

    /// The agent's BGP peer table as its status socket answers it (`tortiectl node
    /// status`'s request), or the error text.
    pub fn status(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", self.host.netns(), "sh", "-c"])
            .arg(format!(
                "printf 'GET /v1/bgp/peers HTTP/1.0\\r\\n\\r\\n' | nc -U -q1 {}",
                self.status
            ))
            .output();
        match out {
            Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
            Err(e) => format!("status of {}: {e}", self.name),
        }
    }

    /// The agent's routes (`proto 80`) in the node's namespace.
    pub fn routes(&self) -> String {
        self.host
            .ip(&["route", "show", "proto", "80"])
            .unwrap_or_default()
    }
}

/// The /26 block holding `ip`.
pub fn block_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v) => Ipv4Network::new(v, 26)
            .and_then(|n| Ipv4Network::new(n.network(), 26))
            .map(|n| n.to_string())
            .unwrap_or_default(),
        IpAddr::V6(_) => String::new(),
    }
}
