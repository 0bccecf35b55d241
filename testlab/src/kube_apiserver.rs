//! A real Kubernetes API server for datastore tests: the `kube-apiserver` built once from
//! Debian's `kubernetes` source package into `$TORTIE_CACHE/kube-apiserver/` (by
//! `.ci/prepare.d/kube-apiserver.sh`; TORTIE_CACHE defaults to `/var/cache/tortie`),
//! run on a free 127.0.0.1 port against its own [`Etcd`], with a CA and serving
//! certificate made by `openssl` at start, service-account keys and a static admin token.
//! [`KubeApiServer::start`] returns once `/readyz` answers `ok` and the CRDs of
//! `deploy/crds/` are Established. Everything (server, etcd, temp dir) goes away on drop.
//!
//! A missing binary is an error that says how to build it; tests never skip silently.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::Deserialize as _;

use crate::error::{Error, Result};
use crate::etcd::Etcd;
use crate::process::{Proc, Registry, run};

/// The bearer token of the `admin` user (group `system:masters`).
pub const ADMIN_TOKEN: &str = "tortie-admin-token";

/// How long [`KubeApiServer::start`] waits for `/readyz` (typically ~2 s here).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long it waits for the CRDs to become Established.
pub const CRD_TIMEOUT: Duration = Duration::from_secs(30);

/// The CRD manifests checked in by `crdgen`.
pub fn default_crd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds")
}

/// The cached kube-apiserver binary, or an error telling how to build it.
pub fn binary() -> Result<PathBuf> {
    let cache = std::env::var_os("TORTIE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/tortie"));
    binary_in(&cache)
}

/// The kube-apiserver binary in cache directory `cache`, or an error telling how to build it.
pub fn binary_in(cache: &Path) -> Result<PathBuf> {
    let bin = cache.join("kube-apiserver/kube-apiserver");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(Error::invalid(
            "kube-apiserver binary",
            bin.display().to_string(),
            "not built yet: run `.ci/prepare.d/kube-apiserver.sh` (builds it once from \
             Debian's kubernetes source package into $TORTIE_CACHE, ~6 min)",
        ))
    }
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| Error::io("bind 127.0.0.1:0 for a free port", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("read local port", e))
}

/// A running kube-apiserver with its own etcd.
pub struct KubeApiServer {
    registry: Arc<Registry>,
    proc: Proc,
    args: Vec<String>,
    port: u16,
    kubeconfig: PathBuf,
    etcd: Etcd,
    // Declared last: removed after the processes are gone.
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for KubeApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApiServer")
            .field("url", &self.url())
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

/// A running [`KubeApiServer::relay_into`] relay; dropping it stops the relay.
#[derive(Debug)]
#[must_use = "the relay stops when this is dropped"]
pub struct Relay(tokio::task::JoinHandle<()>);

impl Drop for Relay {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl KubeApiServer {
    /// Starts etcd and kube-apiserver, waits for `/readyz`, applies the CRDs of
    /// [`default_crd_dir`] and waits until they are Established.
    pub async fn start() -> Result<KubeApiServer> {
        Self::start_with_crds(Some(&default_crd_dir())).await
    }

    /// As [`KubeApiServer::start`], with the CRDs of `crd_dir` (none when `None`).
    pub async fn start_with_crds(crd_dir: Option<&Path>) -> Result<KubeApiServer> {
        let bin = binary()?;
        let dir = tempfile::Builder::new()
            .prefix("testlab-kube-apiserver-")
            .tempdir()
            .map_err(|e| Error::io("create kube-apiserver temp dir", e))?;
        let d = dir.path().to_path_buf();
        let etcd = tokio::task::spawn_blocking(Etcd::start_loopback)
            .await
            .map_err(|e| Error::invalid("etcd", "start", e.to_string()))??;
        tokio::task::spawn_blocking({
            let d = d.clone();
            move || make_pki(&d)
        })
        .await
        .map_err(|e| Error::invalid("openssl", "pki", e.to_string()))??;
        let port = free_port()?;
        let p = |name: &str| d.join(name).display().to_string();
        let args = vec![
            bin.display().to_string(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            "--insecure-port=0".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--etcd-servers={}", etcd.endpoint()),
            "--service-cluster-ip-range=10.96.0.0/12".into(),
            "--authorization-mode=RBAC".into(),
            format!("--token-auth-file={}", p("tokens.csv")),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            format!("--service-account-key-file={}", p("sa.pub")),
            format!("--service-account-signing-key-file={}", p("sa.key")),
            format!("--tls-cert-file={}", p("server.crt")),
            format!("--tls-private-key-file={}", p("server.key")),
            "--endpoint-reconciler-type=none".into(),
            "--disable-admission-plugins=ServiceAccount".into(),
        ];
        std::fs::write(
            d.join("tokens.csv"),
            format!("{ADMIN_TOKEN},admin,admin,system:masters\n"),
        )
        .map_err(|e| Error::io("write tokens.csv", e))?;
        let kubeconfig = d.join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(port, &d.join("ca.crt")))
            .map_err(|e| Error::io("write kubeconfig", e))?;
        let registry = Registry::new();
        let proc = spawn(&registry, &args, &d)?;
        let server = KubeApiServer {
            registry,
            proc,
            args,
            port,
            kubeconfig,
            etcd,
            dir,
        };
        server.wait_ready().await?;
        if let Some(crd_dir) = crd_dir {
            server.apply_crds(crd_dir).await?;
        }
        Ok(server)
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on (on 127.0.0.1 of the test's namespace).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Makes the API reachable at the same URL from inside `host`: a relay listening on
    /// 127.0.0.1:PORT in the host's namespace, forwarding to the server, so processes in a
    /// lab host (agents, the CNI plugin) use [`KubeApiServer::kubeconfig_path`] unchanged.
    /// Runs on `handle`'s runtime until the returned [`Relay`] is dropped (which ends its
    /// connections too). Nothing changes in the root namespace.
    pub fn relay_into(&self, handle: &tokio::runtime::Handle, host: &crate::Host) -> Result<Relay> {
        let port = self.port;
        let listener = host
            .run_in(|| -> std::io::Result<TcpListener> {
                let l = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
                l.set_nonblocking(true)?;
                Ok(l)
            })?
            .map_err(|e| Error::io(format!("relay listener in {}", host.name()), e))?;
        let _entered = handle.enter();
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| Error::io("relay listener to tokio", e))?;
        let task = handle.spawn(async move {
            // Connections are owned here: aborting the accept loop drops them.
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inner, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut outer) =
                        tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inner, &mut outer).await;
                    }
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Ok(Relay(task))
    }

    /// A kubeconfig file (server, CA, admin token) for clients and tools.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The server's etcd.
    pub fn etcd(&self) -> &Etcd {
        &self.etcd
    }

    /// The kube-apiserver process (log, pid).
    pub fn proc(&self) -> &Proc {
        &self.proc
    }

    /// A new client on the current tokio runtime (clients are bound to the runtime that
    /// made them; make one per test runtime).
    pub async fn client(&self) -> Result<Client> {
        client_from_kubeconfig(&self.kubeconfig).await
    }

    /// Kills the server (SIGKILL: a graceful stop waits ~15 s for open watches) and starts
    /// it again on the same port and etcd; returns once ready again. Its watch cache
    /// restarts at the current revision, so watches resuming from older revisions get
    /// `410 Gone`.
    pub async fn restart(&mut self) -> Result<()> {
        self.proc.kill();
        self.proc = spawn(&self.registry, &self.args, self.dir.path())?;
        self.wait_ready().await
    }

    /// Resets every TCP connection to the server's port (`ss -K`, needs root) while the
    /// server keeps running: each client sees its connection drop mid-stream.
    pub fn cut_connections(&self) -> Result<()> {
        crate::require_root();
        run(Command::new("ss").args(["-K", "dst", &format!("127.0.0.1:{}", self.port)])).map(|_| ())
    }

    async fn wait_ready(&self) -> Result<()> {
        let start = Instant::now();
        let mut last = String::from("not probed yet");
        let client = self.client().await?;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        while start.elapsed() < READY_TIMEOUT {
            self.proc.check_running()?;
            match readyz(&client).await {
                // The bootstrap controller creates `default` shortly after readiness.
                Ok(body) if body.trim() == "ok" => match namespaces.get_opt("default").await {
                    Ok(Some(_)) => return Ok(()),
                    Ok(None) => last = "namespace default not created yet".into(),
                    Err(e) => last = e.to_string(),
                },
                Ok(body) => last = body,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Timeout {
            what: format!("kube-apiserver /readyz at {}", self.url()),
            after: READY_TIMEOUT,
            last: format!("{last}; log tail:\n{}", self.proc.log_tail(20)),
        })
    }

    /// Creates every CRD in `dir/*.yaml` (multi-document files allowed) and waits until
    /// each is Established.
    pub async fn apply_crds(&self, dir: &Path) -> Result<()> {
        let client = self.client().await?;
        apply_crds(&client, dir).await
    }
}

async fn readyz(client: &Client) -> Result<String> {
    // The RBAC bootstrap hook re-reconciles every default role after a restart (seconds
    // on a busy machine); the admin token is in `system:masters`, which never needs RBAC.
    const PATH: &str = "/readyz?exclude=poststarthook/rbac/bootstrap-roles";
    let mut req = kube::core::Request::new("/readyz")
        .list(&Default::default())
        .map_err(|e| Error::parse("kube-apiserver", "readyz request", e.to_string()))?;
    *req.uri_mut() = PATH
        .parse()
        .map_err(|e| Error::parse("kube-apiserver", "readyz uri", format!("{e}")))?;
    client
        .request_text(req)
        .await
        .map_err(|e| Error::parse("kube-apiserver", "/readyz", e.to_string()))
}

/// A client for the cluster of a kubeconfig file (e.g. `TORTIE_TEST_KUBECONFIG`).
pub async fn client_from_kubeconfig(path: &Path) -> Result<Client> {
    let bad = |e: String| Error::parse("kubeconfig", path.display().to_string(), e);
    let kc = Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| bad(e.to_string()))?;
    Client::try_from(config).map_err(|e| bad(e.to_string()))
}

/// Creates (or leaves as they are, when present) the CRDs of `dir/*.yaml` and waits until
/// each is Established.
pub async fn apply_crds(client: &Client, dir: &Path) -> Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("read CRD dir {}", dir.display()), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::invalid(
            "CRD dir",
            dir.display().to_string(),
            "holds no *.yaml (run the crdgen binary of tortie-crds)",
        ));
    }
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::io(format!("read {}", file.display()), e))?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc)
                .map_err(|e| Error::parse("crd", file.display().to_string(), e.to_string()))?;
            if value.is_null() {
                continue;
            }
            let crd: CustomResourceDefinition = serde_yaml::from_value(value)
                .map_err(|e| Error::parse("crd", file.display().to_string(), e.to_string()))?;
            let name = crd.metadata.name.clone().unwrap_or_default();
            match api.create(&PostParams::default(), &crd).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => {
                    return Err(Error::Command {
                        cmd: format!("create CRD {name} from {}", file.display()),
                        status: "rejected".into(),
                        stderr: e.to_string(),
                    });
                }
            }
            names.push(name);
        }
    }
    let start = Instant::now();
    for name in &names {
        loop {
            let established = api
                .get_opt(name)
                .await
                .ok()
                .flatten()
                .and_then(|c| c.status)
                .and_then(|s| s.conditions)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            if start.elapsed() > CRD_TIMEOUT {
                return Err(Error::Timeout {
                    what: format!("CRD {name} Established"),
                    after: CRD_TIMEOUT,
                    last: "condition Established not True".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

fn spawn(registry: &Arc<Registry>, args: &[String], dir: &Path) -> Result<Proc> {
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]).current_dir(dir);
    registry.spawn("kube-apiserver", cmd, &dir.join("kube-apiserver.log"))
}

fn kubeconfig_yaml(port: u16, ca: &Path) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: tortie-test\n  cluster:\n    \
         server: https://127.0.0.1:{port}\n    certificate-authority: {ca}\nusers:\n- name: admin\n  \
         user:\n    token: {ADMIN_TOKEN}\ncontexts:\n- name: tortie-test\n  context:\n    \
         cluster: tortie-test\n    user: admin\ncurrent-context: tortie-test\n",
        ca = ca.display()
    )
}

/// CA, serving certificate for 127.0.0.1, service-account key pair, with `openssl`.
fn make_pki(d: &Path) -> Result<()> {
    let openssl = |args: &[&str]| -> Result<()> {
        run(Command::new("openssl").args(args).current_dir(d)).map(|_| ())
    };
    std::fs::write(
        d.join("san.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n",
    )
    .map_err(|e| Error::io("write san.cnf", e))?;
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=testlab-ca",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=kube-apiserver",
    ])?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
    ])?;
    openssl(&["genrsa", "-out", "sa.key", "2048"])?;
    openssl(&["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"])?;
    Ok(())
}

impl Drop for KubeApiServer {
    fn drop(&mut self) {
        // The server first (it holds connections to etcd), then etcd via its own drop.
        self.registry.kill_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_says_how_to_build_it() {
        let empty = tempfile::tempdir().expect("temp dir");
        let e = binary_in(empty.path()).unwrap_err().to_string();
        assert!(e.contains(".ci/prepare.d/kube-apiserver.sh"), "{e}");
        assert!(e.contains("kube-apiserver/kube-apiserver"), "{e}");
    }

    #[tokio::test]
    async fn serves_crds_and_survives_restart_and_connection_resets() {
        let mut server = KubeApiServer::start().await.expect("start kube-apiserver");
        let client = server.client().await.expect("client");
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let crd = crds
            .get("ippools.crd.tortie.dev")
            .await
            .expect("ippools CRD applied");
        assert_eq!(crd.spec.group, "crd.tortie.dev");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        assert!(namespaces.get_opt("default").await.expect("get").is_some());

        crate::require_root();
        server.cut_connections().expect("ss -K");
        let t = Instant::now();
        server.restart().await.expect("restart");
        eprintln!("kube-apiserver restarted and ready in {:?}", t.elapsed());
        let client = server.client().await.expect("client after restart");
        let namespaces: Api<Namespace> = Api::all(client);
        assert!(
            namespaces
                .get_opt("default")
                .await
                .expect("get after restart")
                .is_some()
        );
    }
}
