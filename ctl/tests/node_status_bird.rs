//! End to end (root only): a real tortie speaker in a lab namespace peers with a real
//! BIRD and with an address where nothing listens; the speaker's table is served over
//! the status contract (unix socket) and the built `tortiectl node status` prints the
//! BIRD peer `up … Established` and the other `start … Active Socket: Connection refused`.

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use testlab::Lab;
use testlab::bird::{Bird, BirdConfig, BirdNeighbor};
use tortie_bgp::speaker::{PeerConfig, Speaker, SpeakerConfig};
use tortie_ctl::status::{self, StatusAddr, StatusListener, StatusPeer};

const US: &str = "10.0.0.1";
const BIRD: &str = "10.0.0.2";
const EMPTY: &str = "10.0.0.3";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}

fn peer(addr: &str, name: &str, asn: u32) -> PeerConfig {
    let mut p = PeerConfig::new(ip(addr), asn);
    p.connect_retry = Duration::from_secs(1);
    p.hold_time = 9;
    p.name = name.to_string();
    p
}

/// The speaker and the status server on one runtime inside the `us` namespace; stops
/// when the returned sender is dropped.
fn start_agent(
    host: &testlab::Host,
    sock: std::path::PathBuf,
) -> Result<(
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<testlab::Result<()>>,
)> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = host.thread_in(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready_tx.send(Err(anyhow!("runtime: {e}")));
                return;
            }
        };
        rt.block_on(async move {
            let setup = async {
                let mut cfg = SpeakerConfig::new(64512, US.parse()?);
                cfg.idle_hold = Duration::from_millis(500);
                let speaker = Speaker::start(cfg).await?;
                speaker.add_peer(peer(BIRD, "Mesh_10_0_0_2", 64512)).await?;
                speaker
                    .add_peer(peer(EMPTY, "Node_10_0_0_3", 64999))
                    .await?;
                let listener = StatusListener::bind(&StatusAddr::Unix(sock)).await?;
                anyhow::Ok((speaker, listener))
            };
            match setup.await {
                Ok((speaker, listener)) => {
                    let server = tokio::spawn(status::serve(listener, move || {
                        let s = speaker.clone();
                        async move {
                            s.peer_states()
                                .await
                                .map(|v| v.into_iter().map(StatusPeer::from_status).collect())
                                .map_err(|e| e.to_string())
                        }
                    }));
                    let _ = ready_tx.send(Ok(()));
                    let _ = stop_rx.await;
                    server.abort();
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        });
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .context("agent thread did not report")??;
    Ok((stop, thread))
}

fn node_status(sock: &std::path::Path) -> Result<(Option<i32>, String, String)> {
    let o = Command::new(env!("CARGO_BIN_EXE_tortiectl"))
        .args(["node", "status", "--status-addr"])
        .arg(sock)
        .output()?;
    Ok((
        o.status.code(),
        String::from_utf8(o.stdout)?,
        String::from_utf8(o.stderr)?,
    ))
}

fn row(text: &str, addr: &str) -> Option<Vec<String>> {
    text.lines()
        .find(|l| l.starts_with(&format!("| {addr} ")))
        .map(|l| {
            l.split('|')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        })
}

#[test]
fn node_status_shows_bird_established_and_refused_peer_active() -> Result<()> {
    let lab = Lab::new("ctlst")?;
    let us = lab.add_host("us", "10.0.0.1/24")?;
    let bh = lab.add_host("bird", "10.0.0.2/24")?;
    let _empty = lab.add_host("empty", "10.0.0.3/24")?;
    let mut bc = BirdConfig::new(BIRD.parse()?, 64512);
    bc.neighbors
        .push(BirdNeighbor::new("tortie", ip(US), 64512));
    let bird = Bird::start(&bh, bc)?;

    let dir = tempfile::tempdir()?;
    let sock = dir.path().join("status.sock");
    let (stop, thread) = start_agent(&us, sock.clone())?;

    let deadline = Instant::now() + Duration::from_secs(15);
    let (text, bird_row, empty_row) = loop {
        let (code, out, err) = node_status(&sock)?;
        if code == Some(0) {
            let b = row(&out, BIRD);
            let e = row(&out, EMPTY);
            let done = b
                .as_ref()
                .is_some_and(|r| r.get(2).map(String::as_str) == Some("up"))
                && e.as_ref()
                    .is_some_and(|r| r.join(" ").contains("Connection refused"));
            if done {
                break (out.clone(), b, e);
            }
        }
        if Instant::now() > deadline {
            bail!("node status never converged; exit {code:?}\n{out}\n{err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    bird.wait_established("tortie", Duration::from_secs(5))?;
    eprintln!("{text}");

    assert!(text.starts_with("IPv4 BGP status\n+"), "{text}");
    assert!(
        text.contains("| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |"),
        "{text}"
    );
    let b = bird_row.context("bird row")?;
    assert_eq!(b[1], "node-to-node mesh", "{text}");
    assert_eq!(b[2], "up");
    assert_eq!(b[3].len(), 8, "SINCE is HH:MM:SS: {text}");
    assert_eq!(b[4], "Established");
    let e = empty_row.context("empty row")?;
    assert_eq!(e[1], "node specific", "{text}");
    assert_eq!(e[2], "start");
    assert!(
        e[4].starts_with("Active") || e[4].starts_with("Connect"),
        "{text}"
    );
    assert!(e[4].contains("Socket: Connection refused"), "{text}");
    assert!(
        text.contains("IPv6 BGP status\nNo IPv6 peers found."),
        "{text}"
    );

    drop(stop);
    let _ = thread.join();
    // With the agent gone, the client fails with the endpoint named (exit 1).
    let (code, _, err) = node_status(&sock)?;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("status.sock"), "{err}");
    // A malformed address is a usage error.
    let o = Command::new(env!("CARGO_BIN_EXE_tortiectl"))
        .args(["node", "status", "--status-addr", "nonsense"])
        .output()?;
    assert_eq!(o.status.code(), Some(64));
    Ok(())
}
