//! `tortiectl`: calicoctl-like CLI for tortie. Thin: parses flags, connects, calls the
//! `tortie_ctl`, `tortie_ipam` and `tortie_crds` functions and prints their text.
//! Usage errors exit 64; refused input and failures exit 1.

use std::io::Read as _;
use std::net::IpAddr;
use std::time::SystemTime;

use clap::{Args, Parser, Subcommand};
use tortie_crds::TortieObject;
use tortie_ctl::apply::{self, Action, Mode};
use tortie_ctl::connect::DatastoreConfig;
use tortie_ctl::objects::{self, ResourceKind};
use tortie_ctl::output::{self, Format};
use tortie_ctl::status::{self, StatusAddr};
use tortie_ctl::{CtlError, EXIT_USAGE};
use tortie_ipam::{Ipam, Stores};

#[derive(Parser, Debug)]
#[command(
    name = "tortiectl",
    version,
    about = "Manage a tortie network (calicoctl-like)"
)]
struct Cli {
    #[command(flatten)]
    ds: DsArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Debug)]
struct DsArgs {
    /// Datastore: etcdv3 or kubernetes.
    #[arg(long, env = "DATASTORE_TYPE", global = true)]
    datastore_type: Option<String>,
    /// Comma-separated etcd URLs.
    #[arg(long, env = "ETCD_ENDPOINTS", global = true)]
    etcd_endpoints: Option<String>,
    /// Key prefix of tortie's objects in etcd.
    #[arg(long, env = "TORTIE_ETCD_PREFIX", global = true)]
    etcd_prefix: Option<String>,
    /// Kubeconfig file (kubernetes datastore).
    #[arg(long, env = "KUBECONFIG", global = true)]
    kubeconfig: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create or update resources from a file (`-` for stdin).
    Apply(FileArg),
    /// Create resources; existing ones are an error.
    Create(FileArg),
    /// Replace existing resources.
    Replace(FileArg),
    /// Show resources.
    Get {
        /// Kind (ippool, bgppeer, bgpconfig, node, ipamblock, ...).
        kind: String,
        /// Name (all when omitted).
        name: Option<String>,
        /// Output: yaml, json, wide (default: table).
        #[arg(short, long, default_value = "table")]
        output: String,
    },
    /// Delete a resource by kind and name, or every resource of a file.
    Delete {
        /// Kind.
        kind: Option<String>,
        /// Name.
        name: Option<String>,
        /// File of resources to delete.
        #[arg(short, long)]
        filename: Option<String>,
    },
    /// IP address management.
    Ipam {
        #[command(subcommand)]
        cmd: IpamCmd,
    },
    /// This node.
    Node {
        #[command(subcommand)]
        cmd: NodeCmd,
    },
}

#[derive(Args, Debug)]
struct FileArg {
    /// Manifest file, `-` for stdin.
    #[arg(short, long)]
    filename: String,
}

#[derive(Subcommand, Debug)]
enum IpamCmd {
    /// Per-pool usage.
    Show {
        /// Also one row per block, with its owner.
        #[arg(long)]
        show_blocks: bool,
    },
    /// Consistency check (exit 1 when something is found).
    Check,
    /// Release an address.
    Release {
        /// The address.
        #[arg(long)]
        ip: String,
    },
}

#[derive(Subcommand, Debug)]
enum NodeCmd {
    /// BGP peer table of the node agent.
    Status {
        /// The agent's status endpoint: socket path or IP:PORT.
        #[arg(long, env = "TORTIE_STATUS_ADDR", default_value = status::DEFAULT_STATUS_ADDR)]
        status_addr: String,
    },
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tortiectl: cannot start runtime: {e}");
            std::process::exit(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(text) => print!("{text}"),
        Err((text, e)) => {
            print!("{text}");
            eprintln!("tortiectl: {e}");
            std::process::exit(e.exit_code());
        }
    }
}

type Outcome = Result<String, (String, CtlError)>;

fn fail(e: impl Into<CtlError>) -> (String, CtlError) {
    (String::new(), e.into())
}

async fn datastore(a: &DsArgs) -> Result<tortie_datastore::Datastore, CtlError> {
    DatastoreConfig::resolve(
        a.datastore_type.as_deref(),
        a.etcd_endpoints.as_deref(),
        a.kubeconfig.as_deref(),
        a.etcd_prefix.as_deref(),
    )?
    .connect()
    .await
}

fn read_docs(path: &str) -> Result<Vec<TortieObject>, CtlError> {
    let read = |source| CtlError::Read {
        path: path.to_string(),
        source,
    };
    let text = if path == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(read)?;
        s
    } else {
        std::fs::read_to_string(path).map_err(read)?
    };
    Ok(tortie_crds::from_calico_v3_yaml(&text)?)
}

async fn run(cli: Cli) -> Outcome {
    match cli.cmd {
        Cmd::Apply(f) => write(&cli.ds, &f.filename, Mode::Apply).await,
        Cmd::Create(f) => write(&cli.ds, &f.filename, Mode::Create).await,
        Cmd::Replace(f) => write(&cli.ds, &f.filename, Mode::Replace).await,
        Cmd::Get { kind, name, output } => {
            let kind = ResourceKind::parse(&kind).map_err(fail)?;
            let format = Format::parse(&output).map_err(fail)?;
            let ds = datastore(&cli.ds).await.map_err(fail)?;
            let objs = match name {
                Some(n) => match objects::get(&ds, kind, &n).await.map_err(fail)? {
                    Some(o) => vec![o],
                    None => {
                        return Err(fail(CtlError::NotFound {
                            kind: kind.name(),
                            name: n,
                        }));
                    }
                },
                None => objects::list(&ds, kind).await.map_err(fail)?,
            };
            let objs: Vec<TortieObject> =
                objs.into_iter().map(objects::strip_server_fields).collect();
            output::render(kind, &objs, format).map_err(fail)
        }
        Cmd::Delete {
            kind,
            name,
            filename,
        } => {
            let targets: Vec<(ResourceKind, String)> = match (kind, name, filename) {
                (Some(k), Some(n), None) => vec![(ResourceKind::parse(&k).map_err(fail)?, n)],
                (None, None, Some(f)) => {
                    let docs = read_docs(&f).map_err(fail)?;
                    let mut t = Vec::new();
                    for d in &docs {
                        let k = ResourceKind::of(d).ok_or_else(|| {
                            fail(CtlError::Usage(format!(
                                "kind: {} is not deletable here",
                                d.kind()
                            )))
                        })?;
                        t.push((k, d.name().to_string()));
                    }
                    t
                }
                _ => {
                    return Err(fail(CtlError::Usage(
                        "delete: give KIND NAME or -f FILE".into(),
                    )));
                }
            };
            let ds = datastore(&cli.ds).await.map_err(fail)?;
            let mut out = String::new();
            for (k, n) in targets {
                objects::delete(&ds, k, &n)
                    .await
                    .map_err(|e| (out.clone(), e))?;
                out.push_str(&format!(
                    "Successfully deleted 1 '{}' resource(s)\n",
                    k.name()
                ));
            }
            Ok(out)
        }
        Cmd::Ipam { cmd } => {
            let ds = datastore(&cli.ds).await.map_err(fail)?;
            let stores = Stores::from_datastore(&ds);
            match cmd {
                IpamCmd::Show { show_blocks } => {
                    let u = tortie_ipam::usage(&stores).await.map_err(fail)?;
                    Ok(tortie_ipam::format_usage(&u, show_blocks))
                }
                IpamCmd::Check => {
                    let r = tortie_ipam::check(&stores, None).await.map_err(fail)?;
                    let text = tortie_ipam::format_report(&r);
                    if r.is_clean() {
                        Ok(text)
                    } else {
                        let n = r.allocated_twice.len()
                            + r.dangling_handles.len()
                            + r.blocks_without_affinity.len()
                            + r.affinities_without_blocks.len()
                            + r.leaked.len()
                            + r.broken_blocks.len();
                        Err((text, CtlError::CheckFailed(n)))
                    }
                }
                IpamCmd::Release { ip } => {
                    let ip: IpAddr = ip.parse().map_err(|_| {
                        fail(CtlError::Usage(format!(
                            "--ip: {ip:?} is not an IP address"
                        )))
                    })?;
                    let ipam = Ipam::new(stores);
                    let r = ipam.release_ips(&[(ip, None)]).await.map_err(fail)?;
                    if r.released.contains(&ip) {
                        Ok(format!("Successfully released {ip}\n"))
                    } else {
                        Err(fail(CtlError::Rejected(vec![format!(
                            "--ip: {ip} is not assigned"
                        )])))
                    }
                }
            }
        }
        Cmd::Node {
            cmd: NodeCmd::Status { status_addr },
        } => {
            let addr = StatusAddr::parse(&status_addr).map_err(fail)?;
            let peers = status::fetch(&addr).await.map_err(fail)?;
            Ok(status::format_node_status(&peers, SystemTime::now()))
        }
    }
}

async fn write(ds_args: &DsArgs, path: &str, mode: Mode) -> Outcome {
    let docs = read_docs(path).map_err(fail)?;
    let ds = datastore(ds_args).await.map_err(fail)?;
    let done = apply::execute(&ds, &docs, mode).await.map_err(fail)?;
    let mut out = String::new();
    for (action, stored) in &done {
        let verb = match (mode, action) {
            (Mode::Create, _) => "created",
            (Mode::Replace, _) => "replaced",
            (Mode::Apply, Action::Create(_)) => "applied (created)",
            (Mode::Apply, Action::Update(_)) => "applied (updated)",
        };
        out.push_str(&format!("{} {} {verb}\n", stored.kind(), stored.name()));
    }
    out.push_str(&format!(
        "Successfully {} {} resource(s)\n",
        match mode {
            Mode::Apply => "applied",
            Mode::Create => "created",
            Mode::Replace => "replaced",
        },
        done.len()
    ));
    Ok(out)
}
