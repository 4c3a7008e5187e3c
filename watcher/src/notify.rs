//! Alert delivery: one task and one unbounded queue per channel, batching, retries, shutdown.
//!
//! Each channel task waits for an alert, sends it at once together with everything already
//! queued (so alerts that arrive while a delivery is in flight go together in the next
//! message), split into chunks of the channel's `max_batch`, in order. A retryable failure is
//! retried with capped exponential backoff until it succeeds or the notifier is cancelled: the
//! alerts queued meanwhile wait, nothing is dropped. A permanent failure is logged, counted and
//! skipped. On cancellation each task makes one last attempt for what is pending, bounded by
//! [`SHUTDOWN_GRACE`], then stops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use common::session::Backoff;

use crate::alert::{Alert, NoticeKey};
use crate::channels::{
    Channel, ChannelSpec, ConsoleChannel, DeliveryError, DingTalkChannel, WebhookChannel,
};

/// How long, after cancellation, a channel may spend on its last attempt.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Backoff between attempts of one message: `initial`, doubling, at most `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

/// Counters of one channel, in alerts (not messages), except `retries` (failed attempts).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelStats {
    /// The channel's name (never a secret).
    pub channel: String,
    pub delivered: u64,
    /// Dropped after a permanent error (a configuration problem).
    pub failed_permanently: u64,
    /// Attempts that failed with a retryable error.
    pub retries: u64,
    /// Still undelivered when the shutdown grace period ended.
    pub abandoned: u64,
    /// Queued or in flight.
    pub pending: u64,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    failed_permanently: AtomicU64,
    retries: AtomicU64,
    abandoned: AtomicU64,
    pending: AtomicU64,
}

/// A channel is done with these recorded notices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub channel: String,
    pub keys: Vec<NoticeKey>,
}

struct Lane {
    name: String,
    tx: mpsc::UnboundedSender<Alert>,
    counters: Arc<Counters>,
}

/// Sends alerts to every configured channel. Cheap to share behind an `Arc`.
pub struct Notifier {
    lanes: Vec<Lane>,
    /// Where channels report the recorded notices they are done with.
    receipts: mpsc::UnboundedSender<Receipt>,
    receipts_rx: Mutex<Option<mpsc::UnboundedReceiver<Receipt>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    policy: RetryPolicy,
    cancel: CancellationToken,
}

impl Notifier {
    /// Starts one task per channel (must be called inside a tokio runtime).
    pub fn start(
        channels: Vec<ChannelSpec>,
        http: reqwest::Client,
        policy: RetryPolicy,
        cancel: CancellationToken,
    ) -> Notifier {
        let mut notifier = Notifier::new(policy, cancel);
        for spec in channels {
            match spec {
                ChannelSpec::Webhook(c) => {
                    notifier.add_channel(WebhookChannel::new(c, http.clone()))
                }
                ChannelSpec::DingTalk(c) => {
                    notifier.add_channel(DingTalkChannel::new(c, http.clone()))
                }
                ChannelSpec::Console => notifier.add_channel(ConsoleChannel::new()),
            };
        }
        notifier
    }

    /// A notifier without channels; add them with [`Notifier::add_channel`].
    pub fn new(policy: RetryPolicy, cancel: CancellationToken) -> Notifier {
        let (receipts, rx) = mpsc::unbounded_channel();
        Notifier {
            receipts,
            receipts_rx: Mutex::new(Some(rx)),
            lanes: Vec::new(),
            tasks: Mutex::new(Vec::new()),
            policy,
            cancel,
        }
    }

    /// Starts a task for `channel` (must be called inside a tokio runtime), unless a channel of
    /// the same name is there already: returns whether it was added.
    ///
    /// Names carry a fingerprint of the whole configuration, so a name taken twice is the same
    /// receiver configured twice. It is used once, with a warning, rather than refused: two lanes
    /// of one name would share its delivery receipts in the outage records (one lane's delivery
    /// would count for the other), and the receiver would get every alert twice.
    pub fn add_channel<C: Channel>(&mut self, channel: C) -> bool {
        let name = channel.name();
        if self.lanes.iter().any(|l| l.name == name) {
            warn!(channel = %name, "alert channel configured twice; using it once");
            return false;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            name: name.clone(),
            channel,
            rx,
            counters: counters.clone(),
            policy: self.policy,
            cancel: self.cancel.clone(),
            last_start: None,
            deadline: None,
            receipts: self.receipts.clone(),
        };
        let task = tokio::spawn(worker.run());
        lock(&self.tasks).push(task);
        self.lanes.push(Lane { name, tx, counters });
        true
    }

    /// The channels' names, in configuration order (the keys of delivery state in outage records).
    pub fn channel_names(&self) -> Vec<String> {
        self.lanes.iter().map(|l| l.name.clone()).collect()
    }

    /// Receipts for alerts that carry a [`NoticeKey`]: one per chunk a channel is done with
    /// (delivered, or refused for good). Can be taken once.
    pub fn take_receipts(&self) -> Option<mpsc::UnboundedReceiver<Receipt>> {
        lock(&self.receipts_rx).take()
    }

    /// Queues `alerts` for one channel only: a recorded notice that this channel has not taken.
    pub fn send_to(&self, channel: &str, alerts: Vec<Alert>) {
        let Some(lane) = self.lanes.iter().find(|l| l.name == channel) else {
            warn!(channel, alerts = alerts.len(), "no such alert channel");
            return;
        };
        for alert in alerts {
            lane.counters.pending.fetch_add(1, Ordering::Relaxed);
            if lane.tx.send(alert).is_err() {
                lane.counters.pending.fetch_sub(1, Ordering::Relaxed);
                warn!(channel, "alert channel has stopped; alert not queued");
                return;
            }
        }
    }

    /// Queues `alerts` for every channel. Never blocks, never fails: a channel whose task is
    /// gone (stopped by cancellation) is logged.
    pub fn send(&self, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        if self.lanes.is_empty() {
            warn!(
                alerts = alerts.len(),
                "no alert channel configured; alerts not sent"
            );
            return;
        }
        let mut queued_somewhere = false;
        for lane in &self.lanes {
            let mut queued = 0usize;
            for alert in &alerts {
                lane.counters.pending.fetch_add(1, Ordering::Relaxed);
                if lane.tx.send(alert.clone()).is_err() {
                    lane.counters.pending.fetch_sub(1, Ordering::Relaxed);
                    break;
                }
                queued += 1;
            }
            if queued < alerts.len() {
                error!(
                    channel = %lane.name,
                    alerts = alerts.len() - queued,
                    "alert channel task is not running; alerts not sent to it"
                );
            } else {
                queued_somewhere = true;
            }
        }
        if !queued_somewhere {
            error!(
                alerts = alerts.len(),
                "no alert channel task is running; alerts lost"
            );
        }
    }

    /// Counters of every channel, in configuration order.
    pub fn stats(&self) -> Vec<ChannelStats> {
        self.lanes
            .iter()
            .map(|lane| {
                let c = &lane.counters;
                ChannelStats {
                    channel: lane.name.clone(),
                    delivered: c.delivered.load(Ordering::Relaxed),
                    failed_permanently: c.failed_permanently.load(Ordering::Relaxed),
                    retries: c.retries.load(Ordering::Relaxed),
                    abandoned: c.abandoned.load(Ordering::Relaxed),
                    pending: c.pending.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Waits until every channel task has stopped: after cancellation, within about
    /// [`SHUTDOWN_GRACE`]. Call it before the runtime ends so the last attempts get their chance.
    pub async fn wait_stopped(&self) {
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in tasks {
            if let Err(e) = task.await {
                error!(error = %e, "alert channel task failed");
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Worker<C> {
    name: String,
    channel: C,
    rx: mpsc::UnboundedReceiver<Alert>,
    counters: Arc<Counters>,
    policy: RetryPolicy,
    cancel: CancellationToken,
    /// When the last attempt started, for `min_interval`.
    last_start: Option<Instant>,
    /// Set once cancelled: the end of the last attempts.
    deadline: Option<Instant>,
    receipts: mpsc::UnboundedSender<Receipt>,
}

impl<C: Channel> Worker<C> {
    async fn run(mut self) {
        let max = self.channel.max_batch().max(1);
        info!(channel = %self.name, max_batch = max, "alert channel started");
        while self.deadline.is_none() {
            let first = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                alert = self.rx.recv() => match alert {
                    Some(alert) => alert,
                    None => break,
                },
            };
            let mut batch = vec![first];
            self.pace().await;
            self.drain(&mut batch);
            let mut first_chunk = true;
            while !batch.is_empty() {
                let chunk: Vec<Alert> = batch.drain(..batch.len().min(max)).collect();
                if !first_chunk {
                    self.pace().await;
                }
                first_chunk = false;
                if self.deadline.is_some() {
                    self.last_try(&chunk).await;
                } else {
                    self.deliver(&chunk).await;
                }
            }
        }
        if self.cancel.is_cancelled() {
            if self.deadline.is_none() {
                self.deadline = Some(Instant::now() + SHUTDOWN_GRACE);
            }
            let mut rest = Vec::new();
            self.drain(&mut rest);
            for chunk in rest.chunks(max) {
                self.last_try(chunk).await;
            }
        }
        info!(channel = %self.name, "alert channel stopped");
    }

    fn drain(&mut self, batch: &mut Vec<Alert>) {
        while let Ok(alert) = self.rx.try_recv() {
            batch.push(alert);
        }
    }

    fn start_shutdown(&mut self) -> Instant {
        *self
            .deadline
            .get_or_insert_with(|| Instant::now() + SHUTDOWN_GRACE)
    }

    /// Waits until the channel's `min_interval` since the last attempt has passed.
    async fn pace(&mut self) {
        let Some(last) = self.last_start else { return };
        let at = last + self.channel.min_interval();
        if self.deadline.is_some() || at <= Instant::now() {
            return;
        }
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => {
                self.start_shutdown();
            }
            _ = tokio::time::sleep_until(at) => {}
        }
    }

    /// Delivers `chunk`, retrying until done, a permanent error, or cancellation.
    async fn deliver(&mut self, chunk: &[Alert]) {
        let mut backoff = Backoff::new(self.policy.initial, self.policy.max);
        let mut attempt: u32 = 1;
        loop {
            self.last_start = Some(Instant::now());
            let result = {
                let delivery = self.channel.deliver(chunk);
                tokio::pin!(delivery);
                tokio::select! {
                    biased;
                    result = &mut delivery => result,
                    _ = self.cancel.cancelled() => {
                        // Let the attempt in flight finish within the grace period.
                        let deadline = *self.deadline.get_or_insert_with(|| Instant::now() + SHUTDOWN_GRACE);
                        match tokio::time::timeout_at(deadline, &mut delivery).await {
                            Ok(result) => result,
                            Err(_) => Err(DeliveryError::Retry("shutdown grace period ended".to_owned())),
                        }
                    }
                }
            };
            let error = match result {
                Ok(()) => {
                    self.receipt(chunk);
                    return self.delivered(chunk.len(), attempt);
                }
                Err(DeliveryError::Permanent(e)) => {
                    self.receipt(chunk);
                    return self.failed(chunk.len(), attempt, &e);
                }
                Err(DeliveryError::Retry(e)) if self.deadline.is_some() => {
                    return self.abandoned(chunk.len(), &e);
                }
                Err(DeliveryError::Retry(e)) => e,
            };
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            let delay = backoff.next_delay();
            warn!(
                channel = %self.name,
                attempt,
                alerts = chunk.len(),
                error = %error,
                delay = ?delay,
                "alert delivery failed; will retry"
            );
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => {
                    self.start_shutdown();
                    return self.last_try(chunk).await;
                }
                _ = tokio::time::sleep(delay) => {}
            }
            attempt = attempt.saturating_add(1);
        }
    }

    /// One attempt before the shutdown deadline.
    async fn last_try(&mut self, chunk: &[Alert]) {
        let deadline = self.start_shutdown();
        self.last_start = Some(Instant::now());
        match tokio::time::timeout_at(deadline, self.channel.deliver(chunk)).await {
            Ok(Ok(())) => {
                self.receipt(chunk);
                self.delivered(chunk.len(), 1)
            }
            Ok(Err(DeliveryError::Permanent(e))) => {
                self.receipt(chunk);
                self.failed(chunk.len(), 1, &e)
            }
            Ok(Err(DeliveryError::Retry(e))) => self.abandoned(chunk.len(), &e),
            Err(_) => self.abandoned(chunk.len(), "shutdown grace period ended"),
        }
    }

    fn receipt(&self, chunk: &[Alert]) {
        let keys: Vec<NoticeKey> = chunk.iter().filter_map(|a| a.key.clone()).collect();
        if !keys.is_empty() {
            let _ = self.receipts.send(Receipt {
                channel: self.name.clone(),
                keys,
            });
        }
    }

    fn settle(&self, n: usize) {
        let n = n as u64;
        let _ = self
            .counters
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                Some(p.saturating_sub(n))
            });
    }

    fn delivered(&self, n: usize, attempts: u32) {
        self.counters
            .delivered
            .fetch_add(n as u64, Ordering::Relaxed);
        self.settle(n);
        info!(channel = %self.name, alerts = n, attempts, "alerts delivered");
    }

    fn failed(&self, n: usize, attempts: u32, reason: &str) {
        self.counters
            .failed_permanently
            .fetch_add(n as u64, Ordering::Relaxed);
        self.settle(n);
        error!(
            channel = %self.name,
            alerts = n,
            attempts,
            error = %reason,
            "alert delivery failed permanently; alerts dropped (check the channel configuration)"
        );
    }

    fn abandoned(&self, n: usize, reason: &str) {
        self.counters
            .abandoned
            .fetch_add(n as u64, Ordering::Relaxed);
        self.settle(n);
        error!(channel = %self.name, alerts = n, error = %reason, "shutting down: alerts not delivered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// A channel that never delivers, to look at the notifier's lanes.
    struct Named(&'static str);

    impl Channel for Named {
        fn name(&self) -> String {
            self.0.to_owned()
        }
        fn max_batch(&self) -> usize {
            1
        }
        async fn deliver(&self, _batch: &[Alert]) -> Result<(), DeliveryError> {
            Err(DeliveryError::Retry("never".to_owned()))
        }
    }

    #[tokio::test]
    async fn a_channel_configured_twice_is_used_once() {
        let cancel = CancellationToken::new();
        let mut notifier = Notifier::new(RetryPolicy::default(), cancel.clone());
        assert!(notifier.add_channel(Named("webhook http://h/x #00000001")));
        assert!(notifier.add_channel(Named("webhook http://h/x #00000002")));
        assert!(!notifier.add_channel(Named("webhook http://h/x #00000001")));
        assert_eq!(
            notifier.channel_names(),
            [
                "webhook http://h/x #00000001",
                "webhook http://h/x #00000002"
            ]
        );
        cancel.cancel();
        tokio::time::timeout(10 * SECOND, notifier.wait_stopped())
            .await
            .expect("tasks stop after cancel");
    }
}
