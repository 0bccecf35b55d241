//! `tortie-cni`: the CNI plugin (spec 0.3.0 to 1.1.0) the container runtime executes for
//! every pod sandbox, and its IPAM (`"ipam": {"type": "tortie-cni"}`).
//!
//! Usage (as a runtime calls it):
//! `CNI_COMMAND=ADD CNI_CONTAINERID=ID CNI_NETNS=/var/run/netns/X CNI_IFNAME=eth0
//!  CNI_ARGS='K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0' tortie-cni < conf.json`
//! prints the result (or the spec's error object) on stdout; logs go to stderr.
//! `tortie-cni --check-conflist FILE` validates a rendered configuration list instead.
//! Thin: reads stdin, sets up logging, hands everything to `tortie_cni::plugin::invoke`.

use std::io::{Read, Write};

/// `tortie-cni --check-conflist FILE`: checks a rendered configuration list with the
/// plugin's own parser (install-cni runs it before installing the file); exit 64 on a
/// usage error, 1 when the list is rejected (the reason, naming the field, on stderr).
fn check_conflist(args: &[String]) -> ! {
    let Some(path) = args.get(2) else {
        eprintln!("usage: tortie-cni --check-conflist FILE");
        std::process::exit(64);
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("tortie-cni: cannot read {path}: {e}");
            std::process::exit(1);
        }
    };
    match tortie_cni::conf::check_conflist(&bytes) {
        Ok(c) => {
            println!(
                "{path}: network {} (cniVersion {}) accepted",
                c.name, c.cni_version
            );
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--check-conflist") {
        check_conflist(&args);
    }
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
