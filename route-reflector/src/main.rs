//! Thin binary: `tortie-rr` parses its flags (see `tortie_rr::Args`), then runs the route
//! reflector until SIGTERM or SIGINT. Configuration errors exit with code 64.

use std::process::ExitCode;

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match tortie_rr::Args::try_parse() {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => {
            // --help / --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(64);
        }
    };
    let file = match &args.clients_from {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("tortie-rr: --clients-from {}: {e}", p.display());
                return ExitCode::from(64);
            }
        },
        None => None,
    };
    let config = match args.into_config(file.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tortie-rr: {e}");
            return ExitCode::from(64);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tortie-rr: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res: anyhow::Result<()> = rt.block_on(async move {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let stop = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        tortie_rr::run(config, stop, |_| {}).await?;
        Ok(())
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tortie-rr: {e:#}");
            ExitCode::FAILURE
        }
    }
}
