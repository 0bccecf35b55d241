//! Running the iptables/ipset binaries: in the current network namespace or, through
//! `ip netns exec`, in a named one (tests, benchmarks); and choosing one backend family
//! (legacy or nft) so that save and restore always talk to the same kernel tables.

use std::io::Write as _;
use std::process::{Command, Stdio};

use super::IptablesError;
use crate::policy::model::Family;

/// Where commands run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runner {
    /// `Some(name)`: run inside `ip netns exec <name>`.
    pub netns: Option<String>,
}

impl Runner {
    pub fn host() -> Self {
        Runner { netns: None }
    }

    pub fn in_netns(name: impl Into<String>) -> Self {
        Runner {
            netns: Some(name.into()),
        }
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        match &self.netns {
            None => {
                let mut c = Command::new(program);
                c.args(args);
                c
            }
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]).args(args);
                c
            }
        }
    }

    /// Run `program args`, feeding `stdin`, and return its stdout.
    pub fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, IptablesError> {
        let mut cmd = self.command(program, args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let spawn_err = |source| IptablesError::Spawn {
            program: program.to_string(),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A write error shows up as the child's failure below.
            let _ = pipe.write_all(input.as_bytes());
        }
        let out = child.wait_with_output().map_err(spawn_err)?;
        if !out.status.success() {
            return Err(IptablesError::Failed {
                program: format!("{program} {}", args.join(" ")),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        String::from_utf8(out.stdout).map_err(|_| IptablesError::NotUtf8 {
            program: program.to_string(),
        })
    }
}

/// One iptables binary family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Legacy,
    Nft,
}

impl Backend {
    pub fn save(self) -> &'static str {
        match self {
            Backend::Legacy => "iptables-legacy-save",
            Backend::Nft => "iptables-nft-save",
        }
    }

    pub fn restore(self) -> &'static str {
        match self {
            Backend::Legacy => "iptables-legacy-restore",
            Backend::Nft => "iptables-nft-restore",
        }
    }

    /// The single-rule binary (reads, counters, the naive baseline).
    pub fn iptables(self) -> &'static str {
        match self {
            Backend::Legacy => "iptables-legacy",
            Backend::Nft => "iptables-nft",
        }
    }

    /// `iptables-*-save` or `ip6tables-*-save`.
    pub fn save_of(self, family: Family) -> &'static str {
        match (family, self) {
            (Family::V4, b) => b.save(),
            (Family::V6, Backend::Legacy) => "ip6tables-legacy-save",
            (Family::V6, Backend::Nft) => "ip6tables-nft-save",
        }
    }

    /// `iptables-*-restore` or `ip6tables-*-restore`.
    pub fn restore_of(self, family: Family) -> &'static str {
        match (family, self) {
            (Family::V4, b) => b.restore(),
            (Family::V6, Backend::Legacy) => "ip6tables-legacy-restore",
            (Family::V6, Backend::Nft) => "ip6tables-nft-restore",
        }
    }

    /// Pick the family already in use where `runner` runs: the one holding more rules;
    /// on a tie (e.g. a fresh namespace) the one plain `iptables` points at.
    pub fn detect(runner: &Runner) -> Result<Backend, IptablesError> {
        Self::detect_for(runner, Family::V4)
    }

    /// [`Backend::detect`] counting the rules of `family`'s tables (ip6tables for V6).
    pub fn detect_for(runner: &Runner, family: Family) -> Result<Backend, IptablesError> {
        let count = |b: Backend| -> usize {
            runner
                .run(b.save_of(family), &[], None)
                .map(|s| s.lines().filter(|l| l.starts_with("-A ")).count())
                .unwrap_or(0)
        };
        let (legacy, nft) = (count(Backend::Legacy), count(Backend::Nft));
        if legacy != nft {
            return Ok(if legacy > nft {
                Backend::Legacy
            } else {
                Backend::Nft
            });
        }
        let version = runner.run("iptables", &["-V"], None)?;
        Ok(if version.contains("nf_tables") {
            Backend::Nft
        } else {
            Backend::Legacy
        })
    }
}
