//! flume-watcher: keeps a view of every agent's identity and liveness nodes and tells people, once
//! per outage, when an agent died unplanned, and again when it recovered.
//!
//! The decisions live in [`outage`] (pure) and what becomes of its alerts in [`ledger`] (pure:
//! recorded, delivered, noted); [`watch`] turns ZooKeeper events into their events and carries out
//! the ledger's actions through [`outbox`]; [`leadership`] decides which watcher delivers;
//! [`notify`] batches alerts and delivers them through [`channels`], one file per receiver.

pub mod alert;
pub mod blind;
pub mod channels;
pub mod cli;
pub mod config;
pub mod leadership;
pub mod ledger;
pub mod message;
pub mod notify;
pub mod outage;
pub mod outbox;
pub mod record;
pub mod routing;
pub mod status;
pub mod watch;

use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::info;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(#[from] std::io::Error),
}

/// Runs the watcher until SIGTERM/SIGINT or `cancel`, then gives pending alerts a last chance.
pub async fn run(cfg: cli::RunConfig, cancel: CancellationToken) -> Result<(), RunError> {
    let http = channels::http_client()?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    for c in &cfg.channels {
        info!(channel = %c.label, receiver = %c.spec.describe(), "alert channel");
    }
    info!(
        lang = cfg.style.lang.as_str(),
        timezone = cfg.style.zone.name(),
        "messages"
    );
    let ctx = channels::Context {
        http,
        style: cfg.style.clone(),
    };
    let notifier = Arc::new(notify::Notifier::start(
        &cfg.channels,
        &ctx,
        cfg.retry,
        cancel.clone(),
    ));
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = sigterm.recv() => info!("SIGTERM: shutting down"),
            _ = sigint.recv() => info!("SIGINT: shutting down"),
            _ = on_signal.cancelled() => {}
        }
        on_signal.cancel();
    });
    watch::watch(cfg.watch, notifier.clone(), cancel).await;
    notifier.wait_stopped().await;
    Ok(())
}
