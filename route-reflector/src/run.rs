//! The driver: starts the speaker as a route reflector, adds the configured clients and
//! peers, serves the peer table, and shuts every session down cleanly (Cease/
//! Administrative Shutdown with an RFC 9003 message) when the stop future resolves.

use std::future::Future;

use tortie_bgp::speaker::{Speaker, SpeakerError};
use tortie_ctl::status::{self, StatusAddr, StatusError, StatusListener, StatusPeer};

use crate::config::Config;

/// The RFC 9003 shutdown communication sent to every peer on a clean stop.
pub const SHUTDOWN_MESSAGE: &str = "tortie-rr stopping (administrative shutdown)";

/// Errors of [`run`].
#[derive(Debug, thiserror::Error)]
pub enum RrError {
    #[error("bgp speaker: {0}")]
    Speaker(#[from] SpeakerError),
    #[error("status socket: {0}")]
    Status(#[from] StatusError),
}

/// Runs the route reflector until `stop` resolves (or the status server fails), then
/// sends Cease/Administrative Shutdown to every peer. `ready` is called once the speaker
/// listens and every peer is configured, with the speaker handle (for tests and for
/// embedding: the agent may add and remove clients through it).
pub async fn run(
    config: Config,
    stop: impl Future<Output = ()>,
    ready: impl FnOnce(&Speaker),
) -> Result<(), RrError> {
    let status_addr = StatusAddr::parse(&config.status_socket)?;
    let listener = StatusListener::bind(&status_addr).await?;
    let speaker = Speaker::start(config.speaker.clone()).await?;
    tracing::info!(
        listen = ?speaker.listen_addr(),
        router_id = %config.speaker.router_id,
        cluster_id = ?config.speaker.cluster_id,
        status = %status_addr,
        "route reflector started"
    );
    for peer in &config.peers {
        tracing::info!(peer = %peer.address, port = peer.port, client = peer.rr_client, "adding peer");
        speaker.add_peer(peer.clone()).await?;
    }
    ready(&speaker);
    let source = {
        let speaker = speaker.clone();
        move || {
            let speaker = speaker.clone();
            async move {
                speaker
                    .peer_states()
                    .await
                    .map(|v| v.into_iter().map(StatusPeer::from_status).collect())
                    .map_err(|e| e.to_string())
            }
        }
    };
    let served = tokio::select! {
        r = status::serve(listener, source) => r.map_err(RrError::from),
        () = stop => Ok(()),
    };
    tracing::info!("stopping: administrative shutdown of every session");
    let shut = speaker.shutdown(SHUTDOWN_MESSAGE).await;
    if let StatusAddr::Unix(p) = &status_addr {
        let _ = std::fs::remove_file(p);
    }
    served?;
    shut.map_err(RrError::from)
}
