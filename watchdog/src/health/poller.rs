//! Reads Flume's metrics every interval and hands each [`Reading`] to the run loop. The only I/O
//! of the health check: what a reading means is decided in `machine`.

use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::machine::Reading;
use super::metrics;

/// A reply larger than this is not Flume's metrics (a few KB even for large agents); reading on
/// would only cost memory.
pub const MAX_BODY: usize = 1 << 20;

/// One reading and when it was taken.
pub struct Polled {
    pub now: Instant,
    pub wall: SystemTime,
    pub reading: Reading,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot make an HTTP client: {0}")]
pub struct ClientError(#[from] reqwest::Error);

/// Polls `url` until `cancel`, or until the run loop stops listening.
pub async fn run(
    url: String,
    interval: Duration,
    timeout: Duration,
    tx: mpsc::Sender<Polled>,
    cancel: CancellationToken,
) -> Result<(), ClientError> {
    // No proxy: the endpoint is the agent's own, on this host; an HTTP_PROXY of the environment
    // would only get in the way.
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .no_proxy()
        .build()?;
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let reading = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            r = read(&client, &url) => r,
        };
        let polled = Polled {
            now: Instant::now(),
            wall: SystemTime::now(),
            reading,
        };
        if tx.send(polled).await.is_err() {
            return Ok(());
        }
    }
}

/// One GET, bounded by the client's timeout and [`MAX_BODY`].
pub async fn read(client: &reqwest::Client, url: &str) -> Reading {
    let mut resp = match client.get(url).send().await {
        Ok(r) => r,
        Err(e) => {
            debug!(url, error = %e, "metrics endpoint did not answer");
            return Reading::Unanswered;
        }
    };
    let status = resp.status();
    if !status.is_success() {
        return Reading::Garbled {
            error: format!("HTTP status {}", status.as_u16()),
        };
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Reading::Garbled {
                        error: format!("reply larger than {MAX_BODY} bytes"),
                    };
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            // Headers came, the body did not (in time): as hung as no answer at all.
            Err(e) => {
                debug!(url, error = %e, "metrics reply cut short");
                return Reading::Unanswered;
            }
        }
    }
    match metrics::parse(&body) {
        Ok(snapshot) => Reading::Metrics(snapshot),
        Err(e) => Reading::Garbled {
            error: e.to_string(),
        },
    }
}
