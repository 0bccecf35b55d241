//! The `tortie-rr` command line ([`Args`], clap with `TORTIE_RR_*` environment
//! fallbacks) and its translation into a [`Config`] of speaker and peer settings. Pure:
//! the clients file's text is passed in by the caller, nothing here reads files or
//! opens sockets.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use tortie_bgp::speaker::{NextHopMode, PeerConfig, SpeakerConfig};

/// The port tortie-rr listens on unless told otherwise: not 179, which the tortie-node
/// on the same host keeps.
pub const DEFAULT_LISTEN_PORT: u16 = 1790;
/// The port clients and peers are dialled on when a spec names none.
pub const DEFAULT_PEER_PORT: u16 = 179;
/// Where the peer table is served unless told otherwise.
pub const DEFAULT_STATUS_SOCKET: &str = "/var/run/tortie/rr-status.sock";

/// Command line of `tortie-rr`.
#[derive(Debug, Clone, Parser)]
#[command(name = "tortie-rr", about = "tortie BGP route reflector (RFC 4456)")]
pub struct Args {
    /// BGP router id (IPv4).
    #[arg(long, env = "TORTIE_RR_ROUTER_ID")]
    pub router_id: String,
    /// Route-reflector cluster id (IPv4; default: the router id). Reflectors that back
    /// each other up share one cluster id.
    #[arg(long, env = "TORTIE_RR_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// Our AS number (clients and peers are iBGP: the same AS).
    #[arg(long = "as", env = "TORTIE_RR_AS", default_value_t = 64512)]
    pub local_as: u32,
    /// Where to accept BGP connections.
    #[arg(long, env = "TORTIE_RR_LISTEN", default_value_t = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_LISTEN_PORT))]
    pub listen: SocketAddr,
    /// A route-reflector client, `IP`, `IP:PORT` or `[V6]:PORT` (port default 179).
    /// Repeatable.
    #[arg(long = "client")]
    pub clients: Vec<String>,
    /// A file with one client per line (same syntax; `#` comments, blank lines skipped).
    #[arg(long, env = "TORTIE_RR_CLIENTS_FROM")]
    pub clients_from: Option<PathBuf>,
    /// A non-client iBGP peer (another route reflector), same syntax. Repeatable.
    #[arg(long = "peer")]
    pub peers: Vec<String>,
    /// TCP MD5 password for every session (RFC 2385).
    #[arg(long, env = "TORTIE_RR_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Only accept connections, never dial (toward another reflector given with --peer,
    /// only the side with the greater address dials anyway).
    #[arg(long)]
    pub passive: bool,
    /// Graceful-restart time advertised, seconds (0 disables GR).
    #[arg(long, env = "TORTIE_RR_GRACEFUL_RESTART_TIME", default_value_t = 120)]
    pub graceful_restart_time: u16,
    /// Hold time offered, seconds (0 or at least 3).
    #[arg(long, default_value_t = 90)]
    pub hold_time: u16,
    /// Seconds between connection attempts.
    #[arg(long, default_value_t = 5)]
    pub connect_retry: u64,
    /// Where to serve the peer table: a unix socket path or `IP:PORT`.
    #[arg(long, env = "TORTIE_RR_STATUS_SOCKET", default_value = DEFAULT_STATUS_SOCKET)]
    pub status_socket: String,
}

/// A client or peer as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSpec {
    pub address: IpAddr,
    pub port: u16,
}

impl PeerSpec {
    /// `IP`, `IP:PORT` or `[V6]:PORT`; `what` names the flag or file line in errors.
    pub fn parse(text: &str, what: &str) -> Result<PeerSpec, ConfigError> {
        let t = text.trim();
        if let Ok(address) = t.parse::<IpAddr>() {
            return Ok(PeerSpec {
                address,
                port: DEFAULT_PEER_PORT,
            });
        }
        match t.parse::<SocketAddr>() {
            Ok(sa) if sa.port() != 0 => Ok(PeerSpec {
                address: sa.ip(),
                port: sa.port(),
            }),
            Ok(_) => Err(ConfigError::Invalid {
                what: what.to_string(),
                value: text.to_string(),
                reason: "port must not be 0".into(),
            }),
            Err(_) => Err(ConfigError::Invalid {
                what: what.to_string(),
                value: text.to_string(),
                reason: "expected IP, IP:PORT or [IPv6]:PORT".into(),
            }),
        }
    }
}

/// Errors in the configuration (the binary exits 64 on them).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{what}: invalid value {value:?}: {reason}")]
    Invalid {
        what: String,
        value: String,
        reason: String,
    },
    #[error("{address} is given twice ({first} and {second})")]
    Duplicate {
        address: IpAddr,
        first: String,
        second: String,
    },
    #[error("no clients and no peers: give --client, --clients-from or --peer")]
    NoPeers,
}

/// Everything `run` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub speaker: SpeakerConfig,
    /// Clients first, then non-client peers.
    pub peers: Vec<PeerConfig>,
    pub status_socket: String,
}

fn parse_v4(text: &str, what: &str) -> Result<Ipv4Addr, ConfigError> {
    text.trim().parse().map_err(|_| ConfigError::Invalid {
        what: what.to_string(),
        value: text.to_string(),
        reason: "expected an IPv4 address".into(),
    })
}

/// The non-comment lines of a clients file with their 1-based line numbers.
pub fn client_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let l = l.split('#').next().unwrap_or_default().trim();
        (!l.is_empty()).then_some((i + 1, l))
    })
}

/// Peer row name shown by status: `RRClient_10_0_0_2`, `RRPeer_10_0_0_3`.
fn row_name(kind: &str, address: IpAddr) -> String {
    let a = address.to_string().replace(['.', ':'], "_");
    format!("{kind}_{a}")
}

impl Args {
    /// Builds the configuration. `clients_file` is the text of `--clients-from` (read by
    /// the caller), if given.
    pub fn into_config(self, clients_file: Option<&str>) -> Result<Config, ConfigError> {
        let router_id = parse_v4(&self.router_id, "--router-id")?;
        let cluster_id = match &self.cluster_id {
            Some(c) => parse_v4(c, "--cluster-id")?,
            None => router_id,
        };
        if self.local_as == 0 {
            return Err(ConfigError::Invalid {
                what: "--as".into(),
                value: "0".into(),
                reason: "must not be 0".into(),
            });
        }
        if self.hold_time == 1 || self.hold_time == 2 {
            return Err(ConfigError::Invalid {
                what: "--hold-time".into(),
                value: self.hold_time.to_string(),
                reason: "must be 0 or at least 3 seconds".into(),
            });
        }
        if self.connect_retry == 0 {
            return Err(ConfigError::Invalid {
                what: "--connect-retry".into(),
                value: "0".into(),
                reason: "must be at least 1 second".into(),
            });
        }
        if self.graceful_restart_time > 4095 {
            return Err(ConfigError::Invalid {
                what: "--graceful-restart-time".into(),
                value: self.graceful_restart_time.to_string(),
                reason: "at most 4095 seconds".into(),
            });
        }
        if let Some(p) = &self.password
            && (p.is_empty() || p.len() > 80)
        {
            return Err(ConfigError::Invalid {
                what: "--password".into(),
                value: "(hidden)".into(),
                reason: "must be 1..=80 bytes".into(),
            });
        }

        // (spec, is client, where it came from)
        let mut specs: Vec<(PeerSpec, bool, String)> = Vec::new();
        for c in &self.clients {
            specs.push((
                PeerSpec::parse(c, "--client")?,
                true,
                format!("--client {c}"),
            ));
        }
        if let Some(text) = clients_file {
            let file = self
                .clients_from
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "clients file".into());
            for (n, line) in client_lines(text) {
                let what = format!("{file} line {n}");
                specs.push((PeerSpec::parse(line, &what)?, true, what));
            }
        }
        for p in &self.peers {
            specs.push((PeerSpec::parse(p, "--peer")?, false, format!("--peer {p}")));
        }
        // An empty clients file is fine (membership is managed there); no source at all
        // is a mistake.
        if specs.is_empty() && clients_file.is_none() {
            return Err(ConfigError::NoPeers);
        }

        let mut speaker = SpeakerConfig::new(self.local_as, router_id);
        speaker.listen = Some(self.listen);
        speaker.cluster_id = Some(cluster_id);
        speaker.graceful_restart_time =
            (self.graceful_restart_time > 0).then_some(self.graceful_restart_time);

        let own_address = match self.listen.ip() {
            a if a.is_unspecified() => IpAddr::V4(router_id),
            a => a,
        };
        let mut peers: Vec<PeerConfig> = Vec::new();
        let mut seen: Vec<(IpAddr, String)> = Vec::new();
        for (spec, client, origin) in specs {
            if let Some((_, first)) = seen.iter().find(|(a, _)| *a == spec.address) {
                return Err(ConfigError::Duplicate {
                    address: spec.address,
                    first: first.clone(),
                    second: origin,
                });
            }
            seen.push((spec.address, origin));
            let mut p = PeerConfig::new(spec.address, self.local_as);
            p.port = spec.port;
            p.rr_client = client;
            // As Calico's mesh: between reflectors only the side with the greater
            // address dials, so two reflectors started together never race their
            // connections (clients are always dialled: they may be passive).
            p.passive = self.passive || (!client && spec.address > own_address);
            p.password = self.password.clone();
            p.hold_time = self.hold_time;
            p.connect_retry = Duration::from_secs(self.connect_retry);
            // A reflector never rewrites the next hop of reflected routes (RFC 4456 §10).
            p.next_hop_mode = NextHopMode::Auto;
            p.name = row_name(if client { "RRClient" } else { "RRPeer" }, spec.address);
            peers.push(p);
        }
        Ok(Config {
            speaker,
            peers,
            status_socket: self.status_socket,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut v = vec!["tortie-rr", "--router-id", "10.0.0.9"];
        v.extend_from_slice(extra);
        Args::try_parse_from(v).expect("args parse")
    }

    #[test]
    fn defaults_cluster_id_port_and_gr() {
        let c = args(&["--client", "10.0.0.1"])
            .into_config(None)
            .expect("config");
        assert_eq!(c.speaker.cluster_id, Some("10.0.0.9".parse().expect("ip")));
        assert_eq!(c.speaker.local_as, 64512);
        assert_eq!(
            c.speaker.listen.map(|l| l.port()),
            Some(DEFAULT_LISTEN_PORT)
        );
        assert_eq!(c.speaker.graceful_restart_time, Some(120));
        assert_eq!(c.status_socket, DEFAULT_STATUS_SOCKET);
        let p = &c.peers[0];
        assert!(p.rr_client);
        assert_eq!((p.port, p.remote_as), (179, 64512));
        assert_eq!(p.name, "RRClient_10_0_0_1");
        assert!(p.validate().is_ok());
    }

    #[test]
    fn clients_from_flags_file_and_peers() {
        let file = "# clients\n10.0.0.2:1179\n\n  [fd00::3]:179  # v6\n10.0.0.4\n";
        let c = args(&[
            "--client",
            "10.0.0.1",
            "--peer",
            "10.0.0.8:1790",
            "--cluster-id",
            "1.1.1.1",
            "--as",
            "65000",
            "--graceful-restart-time",
            "0",
            "--passive",
            "--password",
            "s3cret",
        ])
        .into_config(Some(file))
        .expect("config");
        let got: Vec<(String, u16, bool)> = c
            .peers
            .iter()
            .map(|p| (p.address.to_string(), p.port, p.rr_client))
            .collect();
        assert_eq!(
            got,
            vec![
                ("10.0.0.1".into(), 179, true),
                ("10.0.0.2".into(), 1179, true),
                ("fd00::3".into(), 179, true),
                ("10.0.0.4".into(), 179, true),
                ("10.0.0.8".into(), 1790, false),
            ]
        );
        assert_eq!(c.speaker.cluster_id, Some("1.1.1.1".parse().expect("ip")));
        assert_eq!(c.speaker.graceful_restart_time, None);
        assert!(c.peers.iter().all(|p| p.passive && p.remote_as == 65000));
        assert!(
            c.peers
                .iter()
                .all(|p| p.password.as_deref() == Some("s3cret"))
        );
        assert_eq!(c.peers[4].name, "RRPeer_10_0_0_8");
        // Only the side with the greater address dials another reflector.
        let rr = |me: &str, other: &str| {
            Args::try_parse_from(["tortie-rr", "--router-id", me, "--peer", other])
                .expect("parse")
                .into_config(None)
                .expect("config")
                .peers[0]
                .passive
        };
        assert!(rr("10.0.0.9", "10.0.0.10"));
        assert!(!rr("10.0.0.10", "10.0.0.9"));
    }

    #[test]
    fn errors_name_the_flag_or_line() {
        let bad = |extra: &[&str], file: Option<&str>| {
            args(extra)
                .into_config(file)
                .expect_err("must fail")
                .to_string()
        };
        assert!(bad(&["--client", "10.0.0.300"], None).starts_with("--client:"));
        assert!(bad(&["--client", "10.0.0.1:0"], None).contains("port must not be 0"));
        assert!(bad(&["--peer", "x"], None).starts_with("--peer:"));
        assert!(
            bad(&["--cluster-id", "fd00::1", "--client", "10.0.0.1"], None)
                .starts_with("--cluster-id:")
        );
        assert!(
            bad(&["--hold-time", "2", "--client", "10.0.0.1"], None).starts_with("--hold-time:")
        );
        let e = bad(&["--clients-from", "/etc/c"], Some("10.0.0.1\n\nnope\n"));
        assert!(e.starts_with("/etc/c line 3:"), "{e}");
        let e = bad(&["--client", "10.0.0.1", "--peer", "10.0.0.1:1790"], None);
        assert!(e.contains("given twice"), "{e}");
        assert_eq!(
            args(&[]).into_config(None).expect_err("no peers"),
            ConfigError::NoPeers
        );
        let c = args(&["--clients-from", "/etc/c"])
            .into_config(Some("# filled in later\n"))
            .expect("an empty clients file is allowed");
        assert!(c.peers.is_empty());
        let e = Args::try_parse_from(["tortie-rr", "--router-id", "1.2.3.4", "--as", "x"]);
        assert!(e.is_err());
        let e = Args::try_parse_from(["tortie-rr", "--router-id", "1.2.3.4", "--as", "0"])
            .expect("parse")
            .into_config(None)
            .expect_err("as 0");
        assert!(e.to_string().starts_with("--as:"));
    }
}
