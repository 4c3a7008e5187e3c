//! Alert delivery: one task and one unbounded queue per channel, batching, retries, shutdown.
//!
//! Each channel task waits for an alert, sends it at once together with everything already
//! queued (so alerts that arrive while a delivery is in flight go together in the next
//! message), split into chunks of the channel's `max_batch`, in order. A retryable failure is
//! retried with capped exponential backoff until it succeeds or the notifier is cancelled: the
//! alerts queued meanwhile wait, nothing is dropped. A receiver that says when to come back (a
//! 429 with `Retry-After`, [`DeliveryError::RetryAfter`]) is not tried before then. A permanent failure is logged, counted and
//! skipped. On cancellation each task makes one last attempt for what is pending, bounded by
//! [`SHUTDOWN_GRACE`], then stops.
//!
//! A channel read by people ([`Channel::summarizes`]) sends a batch that more than one message
//! would carry — a rack lost at once — as one summary instead: the first alert of a quiet period
//! still goes alone and at once, and what piles up behind it is gathered for [`BURST_GATHER`]
//! after it (or the channel's spacing, if longer) and summarised in one message. The summary
//! counts the alerts sent just before it in the same burst too (the first loss), so that it
//! reads "2,000 agents lost contact", not 1,999; receipts cover what it carried new.
//!
//! Every attempt — a first try, a retry, a last attempt at shutdown — keeps the channel's
//! [`min_interval`](Channel::min_interval) after the end of the one before: a receiver that
//! blocks senders for going too fast (DingTalk: for 10 minutes) must not be hammered by retries
//! of its own "too fast" answers, nor by a burst of last attempts. At shutdown an attempt that
//! the spacing pushes past the grace period is not made; recorded alerts stay in their outage
//! records for the next leader.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use common::session::Backoff;

use crate::alert::{Alert, NoticeKey, Ticket};
use crate::channels::{Channel, Configured, Context, DeliveryError};

/// How long, after cancellation, a channel may spend on its last attempt.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How long after the first alert of a burst a summarising channel gathers the rest before it
/// sends the summary: a rack whose agents' sessions expire over a second or two is one message,
/// and the summary still leaves within a few seconds of the first loss (this, or the channel's
/// spacing when longer: 3 s for DingTalk and WeCom).
pub const BURST_GATHER: Duration = Duration::from_secs(2);

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
    /// The channel's name (never a secret): the key of its receipts.
    pub channel: String,
    /// Its name in the configuration file (or the same key).
    pub label: String,
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

/// A channel is done with these notices: recorded ones by key, ones handed over while their
/// record was being written by ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub channel: String,
    pub keys: Vec<NoticeKey>,
    pub tickets: Vec<Ticket>,
}

/// A channel is done with some alerts (one message): delivered, or refused for good. Given to the
/// [`Observer`], which the HTTP listener's metrics use (counts per event, delivery latency from
/// each alert's `at` to `done`); retries and shutdown abandonments are not settlements.
#[derive(Clone, Copy, Debug)]
pub struct Settlement<'a> {
    /// The channel's label (its name in the configuration file, or its key).
    pub channel: &'a str,
    pub alerts: &'a [Alert],
    pub delivered: bool,
    pub done: SystemTime,
}

/// Called by a channel's task after each settlement: it must be quick and must not block.
pub type Observer = Arc<dyn Fn(&Settlement<'_>) + Send + Sync>;

struct Lane {
    name: String,
    label: String,
    /// The channel itself, for what is not a delivery ([`Channel::still_open`] and friends).
    hooks: Arc<dyn Hooks>,
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
    /// Set once by [`Notifier::observe`]; shared with every channel task.
    observer: Arc<OnceLock<Observer>>,
}

impl Notifier {
    /// Starts one task per channel (must be called inside a tokio runtime).
    pub fn start(
        channels: &[Configured],
        ctx: &Context,
        policy: RetryPolicy,
        cancel: CancellationToken,
    ) -> Notifier {
        let mut notifier = Notifier::new(policy, cancel);
        for c in channels {
            c.spec.start(&c.label, &mut notifier, ctx);
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
            observer: Arc::default(),
        }
    }

    /// Has `observer` told of every settlement from now on; false if one was set already.
    pub fn observe(&self, observer: Observer) -> bool {
        self.observer.set(observer).is_ok()
    }

    /// Starts a task for `channel` (must be called inside a tokio runtime), unless a channel of
    /// the same name is there already: returns whether it was added.
    ///
    /// Names carry a fingerprint of the whole configuration, so a name taken twice is the same
    /// receiver configured twice. It is used once, with a warning, rather than refused: two lanes
    /// of one name would share its delivery receipts in the outage records (one lane's delivery
    /// would count for the other), and the receiver would get every alert twice.
    pub fn add_channel<C: Channel>(&mut self, channel: C) -> bool {
        self.add_channel_as(&channel.name(), channel)
    }

    /// [`Notifier::add_channel`], the channel known as `label` in routes and logs (its name in
    /// the configuration file) while its [`Channel::name`] keys its receipts.
    pub fn add_channel_as<C: Channel>(&mut self, label: &str, channel: C) -> bool {
        let name = channel.name();
        if let Some(lane) = self.lanes.iter().find(|l| l.name == name) {
            warn!(channel = %label, same_as = %lane.label, "alert channel configured twice; using it once");
            return false;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let channel = Arc::new(channel);
        let hooks: Arc<dyn Hooks> = channel.clone();
        let worker = Worker {
            label: label.to_owned(),
            name: name.clone(),
            channel,
            rx,
            counters: counters.clone(),
            policy: self.policy,
            cancel: self.cancel.clone(),
            last_end: None,
            deadline: None,
            receipts: self.receipts.clone(),
            lead: Vec::new(),
            observer: self.observer.clone(),
        };
        let task = tokio::spawn(worker.run());
        lock(&self.tasks).push(task);
        self.lanes.push(Lane {
            name,
            label: label.to_owned(),
            hooks,
            tx,
            counters,
        });
        true
    }

    /// Outages this watcher did not announce are still open: each channel their routes take them
    /// to is told (see [`Channel::still_open`]).
    pub fn still_open(&self, alerts: &[Alert]) {
        for lane in &self.lanes {
            for alert in alerts.iter().filter(|a| !a.not_for.contains(&lane.name)) {
                lane.hooks.still_open(alert);
            }
        }
    }

    /// `agent`'s outage ended without a notice: every channel is told (see
    /// [`Channel::ended_quietly`]).
    pub fn ended_quietly(&self, agent: &str) {
        for lane in &self.lanes {
            lane.hooks.ended_quietly(agent);
        }
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
            let mut routed_elsewhere = 0usize;
            for alert in &alerts {
                if alert.not_for.contains(&lane.name) {
                    routed_elsewhere += 1;
                    continue;
                }
                lane.counters.pending.fetch_add(1, Ordering::Relaxed);
                if lane.tx.send(alert.clone()).is_err() {
                    lane.counters.pending.fetch_sub(1, Ordering::Relaxed);
                    break;
                }
                queued += 1;
            }
            let missed = alerts.len() - routed_elsewhere - queued;
            if missed > 0 {
                error!(
                    channel = %lane.label,
                    alerts = missed,
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
                    label: lane.label.clone(),
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

/// What the notifier asks of a channel besides deliveries, object-safe (a [`Channel`]'s delivery
/// is generic over its future, so a lane keeps its channel both ways).
trait Hooks: Send + Sync {
    fn still_open(&self, alert: &Alert);
    fn ended_quietly(&self, agent: &str);
}

impl<C: Channel> Hooks for C {
    fn still_open(&self, alert: &Alert) {
        Channel::still_open(self, alert);
    }
    fn ended_quietly(&self, agent: &str) {
        Channel::ended_quietly(self, agent);
    }
}

struct Worker<C> {
    /// In logs: the channel's name in the configuration file, or its key.
    label: String,
    /// The key of its receipts ([`Channel::name`]).
    name: String,
    channel: Arc<C>,
    rx: mpsc::UnboundedReceiver<Alert>,
    counters: Arc<Counters>,
    policy: RetryPolicy,
    cancel: CancellationToken,
    /// When the last attempt ended (reply, error or timeout): the channel's spacing counts from
    /// here.
    last_end: Option<Instant>,
    /// Set once cancelled: the end of the last attempts.
    deadline: Option<Instant>,
    receipts: mpsc::UnboundedSender<Receipt>,
    /// The alerts of the messages sent in the current burst before a summary was needed (the
    /// first loss): a summary counts them too. Emptied by a summary or a quiet period.
    lead: Vec<Alert>,
    observer: Arc<OnceLock<Observer>>,
}

/// Most alerts kept in [`Worker::lead`]: what was sent before a burst showed itself is a message
/// or two; a channel that keeps sending ordinary messages is not in a burst.
const LEAD_MAX: usize = 100;

/// When the next attempt to a channel may start: not before `ready` (now, or the end of a retry
/// backoff), and `min_interval` after the previous attempt ended.
///
/// Counted from the end, not the start: a rate-limited receiver counts a message when it
/// arrives, and the sender knows it has arrived (or never will) only once the attempt is over.
/// Counted from the start, a request slow to get through could land less than `min_interval`
/// before the next one.
fn next_start(last_end: Option<Instant>, min_interval: Duration, ready: Instant) -> Instant {
    match last_end {
        Some(end) => ready.max(end + min_interval),
        None => ready,
    }
}

/// An attempt starting at `start` is worth making before the shutdown `deadline`.
fn fits_before(start: Instant, deadline: Instant) -> bool {
    start < deadline
}

/// What came of [`Worker::attempt`].
enum Attempt {
    Made(Result<(), DeliveryError>),
    /// Shutting down, and the spacing leaves no room for another attempt: nothing was sent.
    TooLate(&'static str),
}

/// What came of [`Worker::deliver`].
#[derive(Debug, PartialEq, Eq)]
enum Settled {
    /// Delivered, refused for good, or abandoned after a last attempt: accounted for.
    Done,
    /// Shutting down, and not even tried: the spacing leaves no room before the deadline.
    TooLate(&'static str),
}

impl<C: Channel> Worker<C> {
    async fn run(mut self) {
        let max = self.channel.max_batch().max(1);
        info!(
            channel = %self.label,
            max_batch = max,
            min_interval = %common::time::human(self.channel.min_interval()),
            "alert channel started"
        );
        while self.deadline.is_none() {
            let first = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break,
                alert = self.rx.recv() => match alert {
                    Some(alert) => alert,
                    None => break,
                },
            };
            let taken = Instant::now();
            let quiet = self
                .last_end
                .is_none_or(|end| taken.saturating_duration_since(end) > BURST_GATHER);
            if quiet {
                // A quiet period ended: a new burst, if any, starts here.
                self.lead.clear();
            }
            let mut batch = vec![first];
            // What arrives while the spacing holds this message back goes with it.
            self.wait_for_spacing().await;
            self.drain(&mut batch);
            if self.deadline.is_none() && self.pack(&batch, max) == Packing::Summary {
                if quiet {
                    // The first alert of a quiet period goes at once, alone, even when a burst
                    // is already queued behind it; the summary follows.
                    let rest = batch.split_off(1);
                    self.deliver_batch(&batch, max).await;
                    batch = rest;
                }
                // A burst: what is still on its way goes into the same summary.
                self.wait_until(taken + BURST_GATHER).await;
                self.drain(&mut batch);
            }
            if !batch.is_empty() {
                self.deliver_batch(&batch, max).await;
            }
        }
        if self.cancel.is_cancelled() {
            self.start_shutdown();
            let mut rest = Vec::new();
            self.drain(&mut rest);
            self.deliver_batch(&rest, max).await;
        }
        info!(channel = %self.label, "alert channel stopped");
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

    /// Waits until the channel's spacing allows an attempt, or cancellation.
    async fn wait_for_spacing(&mut self) {
        let at = next_start(self.last_end, self.channel.min_interval(), Instant::now());
        self.wait_until(at).await;
    }

    /// Waits until `at`, or until cancelled (which starts the shutdown).
    async fn wait_until(&mut self, at: Instant) {
        // Not even a timer when nothing is to wait for: tokio's timers round up to the next
        // millisecond, which would be added to every alert's latency.
        if at <= Instant::now() {
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

    /// How `alerts` go out on this channel.
    fn pack(&self, alerts: &[Alert], max: usize) -> Packing {
        let channel = &*self.channel;
        pack(alerts.len(), max, channel.summarizes(), |range| {
            channel.fits(&alerts[range])
        })
    }

    /// Delivers `alerts` as [`pack`] says: one summary, or messages in order. Once the shutdown
    /// deadline leaves no room for another attempt, the rest is abandoned in one go (one log
    /// line, not one per message).
    async fn deliver_batch(&mut self, alerts: &[Alert], max: usize) {
        let messages = match self.pack(alerts, max) {
            Packing::Summary => {
                info!(
                    channel = %self.label,
                    alerts = alerts.len(),
                    "more alerts than one message carries: sending one summary"
                );
                let lead = std::mem::take(&mut self.lead);
                let message = Message::Summary {
                    lead: &lead,
                    alerts,
                };
                if let Settled::TooLate(reason) = self.deliver(message).await {
                    self.abandoned(alerts, reason);
                }
                return;
            }
            Packing::Messages(messages) => messages,
        };
        for range in messages {
            let from = range.start;
            if let Settled::TooLate(reason) =
                self.deliver(Message::Alerts(&alerts[range.clone()])).await
            {
                self.abandoned(&alerts[from..], reason);
                return;
            }
            if self.lead.len() + range.len() <= LEAD_MAX {
                self.lead.extend_from_slice(&alerts[range]);
            }
        }
    }

    /// Delivers `message`, retrying until done, a permanent error, or cancellation (then one last
    /// attempt, if the spacing lets it start before the deadline).
    async fn deliver(&mut self, message: Message<'_>) -> Settled {
        let chunk = message.alerts();
        let mut backoff = Backoff::new(self.policy.initial, self.policy.max);
        let mut attempt: u32 = 1;
        let mut ready = Instant::now();
        loop {
            let result = match self.attempt(message, ready).await {
                Attempt::Made(result) => result,
                Attempt::TooLate(reason) => return Settled::TooLate(reason),
            };
            let (asked, error) = match result {
                Ok(()) => {
                    self.receipt(chunk);
                    self.delivered(chunk.len(), attempt);
                    self.settled(chunk, true);
                    return Settled::Done;
                }
                Err(DeliveryError::Permanent(e)) => {
                    self.receipt(chunk);
                    self.failed(chunk.len(), attempt, &e);
                    self.settled(chunk, false);
                    return Settled::Done;
                }
                Err(e @ (DeliveryError::Retry(_) | DeliveryError::RetryAfter(..)))
                    if self.deadline.is_some() =>
                {
                    self.abandoned(chunk, &e.to_string());
                    return Settled::Done;
                }
                Err(DeliveryError::Retry(e)) => (Duration::ZERO, e),
                Err(DeliveryError::RetryAfter(after, e)) => (after, e),
            };
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            let now = Instant::now();
            // The receiver's `Retry-After`, when it gave one, or the backoff if that is longer.
            ready = now + backoff.next_delay().max(asked);
            let next = next_start(self.last_end, self.channel.min_interval(), ready);
            warn!(
                channel = %self.label,
                attempt,
                alerts = chunk.len(),
                error = %error,
                delay = %common::time::human(next.saturating_duration_since(now)),
                "alert delivery failed; will retry"
            );
            attempt = attempt.saturating_add(1);
        }
    }

    /// One attempt, once `ready` (the end of a retry backoff) and the channel's spacing allow it.
    /// Cancellation cuts the backoff short (the last attempt goes at once) but never the spacing.
    async fn attempt(&mut self, message: Message<'_>, ready: Instant) -> Attempt {
        let spacing = self.channel.min_interval();
        if self.deadline.is_none() {
            self.wait_until(next_start(self.last_end, spacing, ready))
                .await;
        }
        if let Some(deadline) = self.deadline {
            let now = Instant::now();
            if !fits_before(now, deadline) {
                return Attempt::TooLate("shutdown grace period ended");
            }
            let at = next_start(self.last_end, spacing, now);
            if !fits_before(at, deadline) {
                return Attempt::TooLate(
                    "the channel's minimum spacing between messages leaves no room for \
                     another attempt before the shutdown grace period ends",
                );
            }
            tokio::time::sleep_until(at).await;
        }
        let result = self.send(message).await;
        self.last_end = Some(Instant::now());
        Attempt::Made(result)
    }

    /// Sends one message; once cancelled, bounded by the shutdown deadline.
    async fn send(&mut self, message: Message<'_>) -> Result<(), DeliveryError> {
        let grace_ended = || DeliveryError::Retry("shutdown grace period ended".to_owned());
        debug!(channel = %self.label, alerts = message.alerts().len(), "sending");
        let channel = self.channel.clone();
        let delivery = async move {
            match message {
                Message::Alerts(alerts) => channel.deliver(alerts).await,
                Message::Summary { lead: [], alerts } => channel.deliver_summary(alerts).await,
                Message::Summary { lead, alerts } => {
                    let all: Vec<Alert> = lead.iter().chain(alerts).cloned().collect();
                    channel.deliver_summary(&all).await
                }
            }
        };
        tokio::pin!(delivery);
        if let Some(deadline) = self.deadline {
            return tokio::time::timeout_at(deadline, delivery)
                .await
                .unwrap_or_else(|_| Err(grace_ended()));
        }
        tokio::select! {
            biased;
            result = &mut delivery => result,
            _ = self.cancel.cancelled() => {
                // Let the attempt in flight finish within the grace period.
                let deadline = *self.deadline.get_or_insert_with(|| Instant::now() + SHUTDOWN_GRACE);
                tokio::time::timeout_at(deadline, &mut delivery)
                    .await
                    .unwrap_or_else(|_| Err(grace_ended()))
            }
        }
    }

    fn receipt(&self, chunk: &[Alert]) {
        let keys: Vec<NoticeKey> = chunk.iter().filter_map(|a| a.key.clone()).collect();
        let tickets: Vec<Ticket> = chunk.iter().filter_map(|a| a.ticket).collect();
        if !keys.is_empty() || !tickets.is_empty() {
            let _ = self.receipts.send(Receipt {
                channel: self.name.clone(),
                keys,
                tickets,
            });
        }
    }

    fn settled(&self, alerts: &[Alert], delivered: bool) {
        if let Some(observer) = self.observer.get() {
            observer(&Settlement {
                channel: &self.label,
                alerts,
                delivered,
                done: SystemTime::now(),
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
        info!(channel = %self.label, alerts = n, attempts, "alerts delivered");
    }

    fn failed(&self, n: usize, attempts: u32, reason: &str) {
        self.counters
            .failed_permanently
            .fetch_add(n as u64, Ordering::Relaxed);
        self.settle(n);
        error!(
            channel = %self.label,
            alerts = n,
            attempts,
            error = %reason,
            "alert delivery failed permanently; alerts dropped (check the channel configuration)"
        );
    }

    /// Gives up on `alerts` at shutdown, saying what becomes of them. No receipt is sent, so a
    /// recorded alert (one with a notice key, or a ticket: its record is being written, and the
    /// watcher writes it before it exits) stays in its outage record as not taken by this
    /// channel, and whichever watcher leads next delivers it to the channel of this name. The
    /// others were never recorded (the blind and sighted notices): they are lost.
    fn abandoned(&self, alerts: &[Alert], reason: &str) {
        let n = alerts.len();
        self.counters
            .abandoned
            .fetch_add(n as u64, Ordering::Relaxed);
        self.settle(n);
        let (recorded, unrecorded) = split_recorded(alerts);
        if recorded > 0 {
            warn!(
                channel = %self.label,
                alerts = recorded,
                error = %reason,
                "shutting down: alerts not delivered to this channel; they stay in their outage \
                 records, and the next leading watcher (this one restarted, or another) delivers them"
            );
        }
        if unrecorded > 0 {
            error!(
                channel = %self.label,
                alerts = unrecorded,
                error = %reason,
                "shutting down: alerts not delivered to this channel and not recorded; they are lost"
            );
        }
    }
}

/// One message to a channel: some alerts, or a summary of many.
#[derive(Clone, Copy)]
enum Message<'a> {
    Alerts(&'a [Alert]),
    /// `alerts`, and the `lead` of the same burst already sent, summarised together.
    Summary {
        lead: &'a [Alert],
        alerts: &'a [Alert],
    },
}

impl<'a> Message<'a> {
    /// The alerts it carries for the first time: what its receipt and counters cover.
    fn alerts(self) -> &'a [Alert] {
        match self {
            Message::Alerts(alerts) | Message::Summary { alerts, .. } => alerts,
        }
    }
}

/// How a batch of alerts goes out on a channel.
#[derive(Debug, PartialEq, Eq)]
enum Packing {
    /// Messages in order, each a range of the batch.
    Messages(Vec<std::ops::Range<usize>>),
    /// One summary of them all.
    Summary,
}

/// Packs `len` alerts (the batch is in order) into messages of at most `max` that `fits` accepts,
/// greedily, in order; a single alert is always a message of its own (its channel splits or
/// refuses it). A channel that `summarizes` sends what needs more than one message as one
/// summary instead.
fn pack(
    len: usize,
    max: usize,
    summarizes: bool,
    fits: impl Fn(std::ops::Range<usize>) -> bool,
) -> Packing {
    let max = max.max(1);
    if summarizes && len > 1 && (len > max || !fits(0..len)) {
        return Packing::Summary;
    }
    let mut messages = Vec::new();
    let mut from = 0;
    while from < len {
        let mut to = from + 1;
        while to < len && to - from < max && fits(from..to + 1) {
            to += 1;
        }
        messages.push(from..to);
        from = to;
    }
    Packing::Messages(messages)
}

/// How many of `alerts` are (or are being written) in an outage record, and how many are not.
fn split_recorded(alerts: &[Alert]) -> (usize, usize) {
    let recorded = alerts
        .iter()
        .filter(|a| a.key.is_some() || a.ticket.is_some())
        .count();
    (recorded, alerts.len() - recorded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertKind;
    use std::time::UNIX_EPOCH;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_spacing_counts_from_the_end_of_the_last_attempt() {
        let t0 = Instant::now();
        let three = 3 * SECOND;
        // No attempt yet: at once.
        assert_eq!(next_start(None, three, t0), t0);
        // A retry whose backoff (100 ms) is shorter than the spacing waits for the spacing.
        assert_eq!(
            next_start(Some(t0), three, t0 + Duration::from_millis(100)),
            t0 + three
        );
        // A backoff longer than the spacing is not lengthened by it.
        assert_eq!(
            next_start(Some(t0), three, t0 + 10 * SECOND),
            t0 + 10 * SECOND
        );
        // A channel without a spacing goes when ready.
        assert_eq!(next_start(Some(t0), Duration::ZERO, t0), t0);
        // The last attempt after a slow one: counted from its end.
        let slow_end = t0 + 2 * SECOND;
        assert_eq!(
            next_start(Some(slow_end), three, t0 + 3 * SECOND),
            slow_end + three
        );
    }

    #[test]
    fn a_last_attempt_goes_only_if_it_can_start_before_the_deadline() {
        let t0 = Instant::now();
        let deadline = t0 + SHUTDOWN_GRACE;
        let last_end = Some(t0);
        // Cancelled right after a refused DingTalk attempt: the spacing ends after the grace.
        let at = next_start(last_end, 3 * SECOND, t0);
        assert!(!fits_before(at, deadline));
        // Cancelled 1.5 s after it: the last attempt waits until 3 s, within the grace.
        let at = next_start(last_end, 3 * SECOND, t0 + Duration::from_millis(1500));
        assert!(fits_before(
            at,
            t0 + Duration::from_millis(1500) + SHUTDOWN_GRACE
        ));
        // Without a spacing: at once.
        assert!(fits_before(
            next_start(last_end, Duration::ZERO, t0),
            deadline
        ));
        assert!(!fits_before(deadline, deadline));
    }

    #[test]
    fn abandoned_alerts_are_told_apart_by_whether_they_are_recorded() {
        let alert = |key: Option<NoticeKey>, ticket: Option<Ticket>| Alert {
            crashes: 1,
            key,
            ticket,
            ..Alert::new(AlertKind::Down, "a1", "exited with code 3", UNIX_EPOCH)
        };
        let key = NoticeKey {
            agent: "a1".to_owned(),
            seq: 0,
        };
        assert_eq!(
            split_recorded(&[
                alert(Some(key.clone()), None),
                alert(None, None),
                alert(Some(key), None),
                alert(None, Some(Ticket(7))),
            ]),
            (3, 1)
        );
        assert_eq!(split_recorded(&[]), (0, 0));
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // A message is a range of the batch.
    fn batches_are_packed_in_order_or_summarised() {
        use Packing::{Messages, Summary};
        let by_count = |_: std::ops::Range<usize>| true;
        // (alerts, max, summarizes, most alerts that fit one message, expected)
        let table: Vec<(usize, usize, bool, usize, Packing)> = vec![
            (1, 20, false, 20, Messages(vec![0..1])),
            (1, 20, true, 20, Messages(vec![0..1])),
            (20, 20, true, 20, Messages(vec![0..20])),
            (45, 20, false, 20, Messages(vec![0..20, 20..40, 40..45])),
            (21, 20, true, 20, Summary),
            (2_000, 20, true, 20, Summary),
            // Measured: as many as fit, in order.
            (10, 100, false, 4, Messages(vec![0..4, 4..8, 8..10])),
            (10, 100, true, 4, Summary),
            (4, 100, true, 4, Messages(vec![0..4])),
            // A single alert that does not fit still goes, alone.
            (3, 100, false, 0, Messages(vec![0..1, 1..2, 2..3])),
            (1, 100, true, 0, Messages(vec![0..1])),
            (0, 20, true, 20, Messages(vec![])),
        ];
        for (len, max, summarizes, fit, expected) in table {
            let got = pack(len, max, summarizes, |r: std::ops::Range<usize>| {
                r.len() <= fit
            });
            assert_eq!(
                got, expected,
                "{len} alerts, max {max}, summarizes {summarizes}, {fit} fit"
            );
        }
        assert_eq!(
            pack(3, 0, false, by_count),
            Messages(vec![0..1, 1..2, 2..3])
        );
    }

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
