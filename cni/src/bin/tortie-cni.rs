//! `tortie-cni`: the CNI plugin (spec 0.3.0 to 1.1.0) the container runtime executes for
//! every pod sandbox, and its IPAM (`"ipam": {"type": "tortie-cni"}`).
//!
//! Usage (as a runtime calls it):
//! `CNI_COMMAND=ADD CNI_CONTAINERID=ID CNI_NETNS=/var/run/netns/X CNI_IFNAME=eth0
//!  CNI_ARGS='K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0' tortie-cni < conf.json`
//! prints the result (or the spec's error object) on stdout; logs go to stderr.
//! Thin: reads stdin, sets up logging, hands everything to `tortie_cni::plugin::invoke`.

use std::io::{Read, Write};

fn main() {
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        eprintln!("tortie-cni: cannot read the network configuration from stdin: {e}");
    }
    let level = tortie_cni::conf::NetConf::log_level_of(&stdin);
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tortie-cni: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let out = rt.block_on(tortie_cni::plugin::invoke(
        |k| std::env::var(k).ok(),
        &stdin,
    ));
    let mut so = std::io::stdout().lock();
    let _ = so.write_all(out.stdout.as_bytes());
    let _ = so.flush();
    std::process::exit(out.exit_code);
}
