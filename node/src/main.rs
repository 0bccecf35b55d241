//! Thin binary: `tortie-node` runs the agent (configuration from the environment, as
//! calico-node); `tortie-node add-pod --namespace N --pod P --netns PATH` creates a pod
//! for the lab; `tortie-node detect-ip` prints the node address the agent would register
//! (`IP`, else `IP_AUTODETECTION_METHOD`). Configuration errors exit with code 64.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tortie-node", about = "tortie per-node agent")]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the agent (the default).
    Run,
    /// Print the node address the agent would register (`IP`, else autodetected).
    DetectIp,
    /// Assign an address, plumb a pod's veth and write its WorkloadEndpoint.
    AddPod {
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        pod: String,
        /// Path of the pod's network namespace (`/run/netns/NAME`).
        #[arg(long)]
        netns: PathBuf,
        #[arg(long, default_value_t = 1480)]
        mtu: u32,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let cfg = match tortie_node::from_env(&env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tortie-node: {e}");
            return ExitCode::from(64);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tortie-node: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res: anyhow::Result<()> = rt.block_on(async move {
        match cli.cmd.unwrap_or(Cmd::Run) {
            Cmd::Run => {
                let stop = async {
                    let mut term = match tokio::signal::unix::signal(
                        tokio::signal::unix::SignalKind::terminate(),
                    ) {
                        Ok(s) => s,
                        Err(_) => return std::future::pending().await,
                    };
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                };
                tortie_node::agent::run(cfg, stop).await?;
            }
            Cmd::DetectIp => {
                // The datastore only when the method reads the Kubernetes Node.
                let ds = match &cfg.ip {
                    tortie_node::NodeIp::Autodetect(
                        tortie_node::autodetect::Method::KubernetesInternalIp,
                    ) => Some(tortie_node::agent::connect(&cfg).await?),
                    _ => None,
                };
                println!(
                    "{}",
                    tortie_node::address::node_address(&cfg, ds.as_ref()).await?
                );
            }
            Cmd::AddPod {
                namespace,
                pod,
                netns,
                mtu,
            } => {
                let ds = tortie_node::agent::connect(&cfg).await?;
                let ip =
                    tortie_node::pod::add_pod(&ds, &cfg.node_name, &namespace, &pod, &netns, mtu)
                        .await?;
                println!("{ip}");
            }
        }
        Ok(())
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tortie-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}
