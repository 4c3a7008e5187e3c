//! flume-watcher: keeps a view of every agent's identity and liveness nodes and tells people, once
//! per outage, when an agent died unplanned, and again when it recovered.
//!
//! The decisions live in [`outage`] (pure) and what becomes of its alerts in [`ledger`] (pure:
//! recorded, delivered, noted); [`watch`] turns ZooKeeper events into their events and carries out
//! the ledger's actions through [`outbox`]; [`leadership`] decides which watcher delivers;
//! [`notify`] batches alerts and delivers them through [`channels`], one file per receiver.

pub mod alert;
pub mod blind;
pub mod burst;
pub mod channels;
pub mod cli;
pub mod config;
pub mod degradation;
pub mod escalation;
pub mod held;
pub mod http;
pub mod hushed;
pub mod leadership;
pub mod ledger;
pub mod message;
pub mod notify;
pub mod outage;
pub mod outbox;
pub mod record;
pub mod routing;
pub mod silence;
pub mod silencing;
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
    #[error(transparent)]
    Listen(#[from] http::ListenError),
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
    let listener = match cfg.listen {
        Some(addr) => {
            let board = cfg.watch.board.clone();
            notifier.observe(board.observer());
            let parts = http::Parts {
                board,
                notifier: notifier.clone(),
                zk: cfg.watch.zk.clone(),
                layout: cfg.watch.layout.clone(),
            };
            match http::start(addr, parts, cancel.clone()).await {
                Ok(task) => Some(task),
                Err(e) => {
                    cancel.cancel();
                    notifier.wait_stopped().await;
                    return Err(e.into());
                }
            }
        }
        None => None,
    };
    let systemd = Arc::new(common::systemd::Systemd::from_env());
    systemd.status("connecting to ZooKeeper");
    let on_signal = cancel.clone();
    let stopping = systemd.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = sigterm.recv() => info!("SIGTERM: shutting down"),
            _ = sigint.recv() => info!("SIGINT: shutting down"),
            _ = on_signal.cancelled() => {}
        }
        stopping.stopping("stopping: last delivery attempts, records written");
        on_signal.cancel();
    });
    watch::watch(cfg.watch, notifier.clone(), systemd, cancel).await;
    notifier.wait_stopped().await;
    if let Some(task) = listener {
        // Cancelled with the rest; its ZooKeeper session closes within a second.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), task).await;
    }
    Ok(())
}

/// What became of the test message at one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TestOutcome {
    Delivered,
    /// Refused for good (the reason is in the log).
    Refused,
    /// Still failing when the wait ran out, after this many retries.
    StillFailing {
        retries: u64,
    },
}

/// `test-alert`: sends one clearly marked test notice through each channel and waits (at most
/// `cfg.wait`) for each to take it or refuse it; the outcome per channel name, in order.
pub async fn test_alert(cfg: cli::TestAlertConfig) -> Result<Vec<(String, TestOutcome)>, RunError> {
    use std::time::{Duration, SystemTime};
    let cancel = CancellationToken::new();
    let ctx = channels::Context {
        http: channels::http_client()?,
        style: cfg.style,
    };
    // Quick retries: an operator is waiting at the terminal.
    let policy = notify::RetryPolicy {
        initial: Duration::from_millis(500),
        max: Duration::from_secs(2),
    };
    let notifier = notify::Notifier::start(&cfg.channels, &ctx, policy, cancel.clone());
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok());
    let reason = format!(
        "test alert from flume-watcher on {}: nothing is wrong",
        host.as_deref().unwrap_or("this host")
    );
    notifier.send(vec![alert::Alert {
        host,
        ..alert::Alert::new(
            alert::AlertKind::Test,
            "flume-watcher",
            reason,
            SystemTime::now(),
        )
    }]);
    let deadline = tokio::time::Instant::now() + cfg.wait;
    let outcome = |s: &notify::ChannelStats| {
        if s.delivered > 0 {
            Some(TestOutcome::Delivered)
        } else if s.failed_permanently > 0 {
            Some(TestOutcome::Refused)
        } else {
            None
        }
    };
    loop {
        let stats = notifier.stats();
        let done = stats.iter().all(|s| outcome(s).is_some());
        if done || tokio::time::Instant::now() >= deadline {
            cancel.cancel();
            // What is still failing is not tried again at length: its last attempt is bounded.
            let _ = tokio::time::timeout(Duration::from_secs(3), notifier.wait_stopped()).await;
            return Ok(stats
                .iter()
                .map(|s| {
                    let o = outcome(s).unwrap_or(TestOutcome::StillFailing { retries: s.retries });
                    (s.label.clone(), o)
                })
                .collect());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
