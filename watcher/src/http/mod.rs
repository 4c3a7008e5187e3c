//! The watcher's own observability, off unless `--listen ADDR` (or `[http] listen`) is given: a
//! read-only HTTP listener with a status page (`/`), Prometheus metrics (`/metrics`), a health
//! check (`/healthz`) and the agents as `flume-watcher status --json` gives them
//! (`/api/v1/agents`).
//!
//! [`board`] is what the watcher publishes about itself (the watch loop and the channels write
//! it); [`source`] reads the agents from ZooKeeper for the page, the API and the metrics;
//! [`metrics`] and [`page`] render; [`server`] answers.

pub mod board;
pub mod metrics;
pub mod page;
pub mod server;
pub mod source;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use common::config::ZkConfig;
use common::Layout;

pub use board::Board;

use crate::notify::Notifier;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {addr} (--listen): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What the listener needs from the watcher.
pub struct Parts {
    pub board: Board,
    pub notifier: Arc<Notifier>,
    pub zk: ZkConfig,
    pub layout: Layout,
}

/// Binds `addr` now, so that a taken port or a wrong address stops the start with its reason,
/// then serves in a task of its own until `cancel`. Logs the address it bound (the port filled
/// in when 0 was asked), which is how a test finds it.
pub async fn start(
    addr: SocketAddr,
    parts: Parts,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, ListenError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ListenError::Bind { addr, source })?;
    if !bound.ip().is_loopback() {
        warn!(address = %bound, "the http listener is not on loopback: whoever can reach it reads every agent's id, host and labels, and the channels' names");
    }
    info!(address = %bound, url = %format!("http://{bound}/"), "http listener started (/, /metrics, /healthz, /api/v1/agents)");
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok());
    let shared = Arc::new(server::Shared {
        board: parts.board,
        notifier: parts.notifier,
        source: source::Source::new(parts.zk, parts.layout),
        me: format!(
            "flume-watcher on {} (pid {})",
            host.as_deref().unwrap_or("unknown host"),
            std::process::id()
        ),
    });
    Ok(tokio::spawn(server::serve(listener, shared, cancel)))
}
