//! The delivery ledger, free of I/O: which notices exist, which are recorded in an outage record,
//! which channel took which, what a follower must remember, what a new leader must send, and when
//! a record is closed.
//!
//! It sits between the outage decisions ([`crate::outage`]) and the ZooKeeper side of the records
//! ([`crate::outbox`]): `watch.rs` feeds it events (alerts decided, records loaded, receipts, the
//! results of the record operations it asked for) and carries out its actions (write a window of
//! records, hand alerts to the channels, note receipts, close a record, come back later). It asks
//! for one ZooKeeper operation at a time and waits for its result as an event, so what it holds is
//! always what is true: nothing is forgotten on a failure, and nothing is queued twice.
//!
//! Only the leader of the watchers records and delivers. A follower keeps the alerts it decided
//! until the leader's records show them, so that on a takeover it records what the old leader did
//! not (the records drop what it did record as duplicates).

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::time::{Duration, Instant};

use tracing::{debug, info};

use crate::alert::{Alert, NoticeKey};
use crate::outbox::Recorded;
use crate::record::OutageRecord;

/// Outage records written at once (each a read and a write, pipelined on the session).
pub const RECORD_WINDOW: usize = 1000;
/// Delivery receipts noted at once, between which events are taken.
pub const RECEIPT_WINDOW: usize = 250;
/// A follower remembers at most this many alerts the leader has not recorded yet.
pub const RECENT_MAX: usize = 10_000;
/// When a record operation failed, the next try.
pub const FLUSH_RETRY: Duration = Duration::from_millis(500);

/// Why a record operation did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// ZooKeeper refused it or did not answer in time: tried again after [`FLUSH_RETRY`].
    Transient,
    /// The session ended: the next session's listing is followed by a flush anyway.
    SessionOver,
}

/// An outage record as a follower saw it change.
#[derive(Clone, Debug, PartialEq)]
pub enum Seen {
    Record(OutageRecord),
    /// Deleted: closed and delivered everywhere (pruned).
    Pruned,
    /// Unreadable: what the leader recorded is unknown, so nothing is forgotten.
    Unreadable,
}

#[derive(Debug, PartialEq)]
pub enum Event {
    /// Alerts the outage monitor decided, in order.
    Decided(Vec<Alert>),
    /// An agent stopped as planned: its open outage record (if any) is closed without a notice.
    PlannedStop(String),
    /// This watcher won the election. `took_over`: while it was following (it records what it
    /// remembers); not at the start of a session, where it leads from its first view.
    BecameLeader { took_over: bool },
    /// This watcher no longer leads (its connection was lost, or a new session began).
    SteppedDown,
    /// Every readable outage record, listed with the agents after (re)connecting.
    RecordsLoaded(BTreeMap<String, OutageRecord>),
    /// A follower saw the leader change an agent's outage record.
    LeaderRecorded { agent: String, seen: Seen },
    /// A channel is done with these recorded notices (delivered, or refused for good).
    Receipt {
        channel: String,
        keys: Vec<NoticeKey>,
    },
    /// The loop has taken every event that was waiting: record, note and close what is pending.
    Flush,
    /// The results of [`Action::Record`], one per alert of its window, in order.
    Recorded {
        results: Vec<Result<Recorded, Failure>>,
        now: Instant,
    },
    /// The results of [`Action::NoteDone`], one per receipt of its window, in order.
    Noted {
        results: Vec<Result<(), Failure>>,
        now: Instant,
    },
    /// The result of [`Action::Close`].
    Closed {
        result: Result<(), Failure>,
        now: Instant,
    },
}

/// Where alerts go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum To {
    /// Every channel: just recorded.
    All,
    /// One channel: recorded before, not yet taken by it.
    Channel(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Record these alerts (distinct agents, so pipelined); answer with [`Event::Recorded`].
    Record(Vec<Alert>),
    /// Hand these alerts to the channels.
    Deliver { to: To, alerts: Vec<Alert> },
    /// Note in the records that `channel` is done with `key` (one receipt per record); answer
    /// with [`Event::Noted`].
    NoteDone(Vec<(NoticeKey, String)>),
    /// Close this agent's outage record without a notice; answer with [`Event::Closed`].
    Close(String),
    /// Send [`Event::Flush`] at this instant (the latest asked for wins).
    RetryAt(Instant),
}

/// Where a flush stands: which operation's result the ledger waits for.
#[derive(Clone, Debug, PartialEq)]
enum Flush {
    Idle,
    /// `window` alerts at the front of `unrecorded` are being written. `first`: no alert of this
    /// flush has been recorded yet, so the window held one alert only.
    Recording {
        first: bool,
        window: usize,
    },
    Noting {
        window: Vec<(NoticeKey, String)>,
    },
    Closing {
        id: String,
    },
}

pub struct Ledger {
    /// The notifier's channel names: the keys of delivery state in outage records.
    channels: Vec<String>,
    /// Only the leader of the watchers records and delivers.
    leader: bool,
    /// Alerts decided but not yet in an outage record (ZooKeeper was away): sent once recorded.
    unrecorded: VecDeque<Alert>,
    /// A follower's alerts that the leader has not yet recorded (as far as this follower saw):
    /// recorded on takeover, where the outage records drop what the old leader did record.
    recent: VecDeque<Alert>,
    /// Agents stopped as planned whose outage record must be closed.
    to_close: BTreeSet<String>,
    /// Deliveries not yet noted in their record.
    unreceipted: Vec<(NoticeKey, String)>,
    /// Recorded notices handed to a channel and not yet receipted: never queued twice.
    queued: HashSet<(NoticeKey, String)>,
    flush: Flush,
}

impl Ledger {
    pub fn new(channels: Vec<String>) -> Ledger {
        Ledger {
            channels,
            leader: false,
            unrecorded: VecDeque::new(),
            recent: VecDeque::new(),
            to_close: BTreeSet::new(),
            unreceipted: Vec::new(),
            queued: HashSet::new(),
            flush: Flush::Idle,
        }
    }

    pub fn channels(&self) -> &[String] {
        &self.channels
    }

    pub fn leader(&self) -> bool {
        self.leader
    }

    /// Alerts decided and not yet recorded.
    pub fn unrecorded(&self) -> usize {
        self.unrecorded.len()
    }

    /// Deliveries not yet noted in their records.
    pub fn unnoted(&self) -> usize {
        self.unreceipted.len()
    }

    pub fn on_event(&mut self, event: Event) -> Vec<Action> {
        match event {
            Event::Decided(alerts) => {
                if self.leader {
                    self.unrecorded.extend(alerts);
                } else {
                    self.recent.extend(alerts);
                    while self.recent.len() > RECENT_MAX {
                        self.recent.pop_front();
                    }
                }
                vec![]
            }
            Event::PlannedStop(id) => {
                // A follower leaves it to the leader, which saw the same stop.
                if self.leader {
                    self.to_close.insert(id);
                }
                vec![]
            }
            Event::BecameLeader { took_over } => {
                self.leader = true;
                if took_over {
                    info!(
                        unrecorded = self.recent.len(),
                        "leading the watchers: this watcher delivers alerts now"
                    );
                    self.unrecorded.extend(self.recent.drain(..));
                }
                vec![]
            }
            Event::SteppedDown => {
                self.leader = false;
                vec![]
            }
            Event::RecordsLoaded(records) => {
                if self.leader {
                    self.requeue(&records)
                } else {
                    for (agent, record) in &records {
                        self.leader_recorded(agent, Some(record));
                    }
                    vec![]
                }
            }
            Event::LeaderRecorded { agent, seen } => {
                match seen {
                    Seen::Record(r) => self.leader_recorded(&agent, Some(&r)),
                    Seen::Pruned => self.leader_recorded(&agent, None),
                    Seen::Unreadable => {}
                }
                vec![]
            }
            Event::Receipt { channel, keys } => {
                for key in keys {
                    self.queued.remove(&(key.clone(), channel.clone()));
                    self.unreceipted.push((key, channel.clone()));
                }
                vec![]
            }
            Event::Flush => {
                if !self.leader || self.flush != Flush::Idle {
                    return vec![];
                }
                self.record_next(true, vec![])
            }
            Event::Recorded { results, now } => self.recorded(results, now),
            Event::Noted { results, now } => self.noted(results, now),
            Event::Closed { result, now } => {
                let Flush::Closing { id } = std::mem::replace(&mut self.flush, Flush::Idle) else {
                    debug!("a close result without a close asked for; ignored");
                    return vec![];
                };
                match result {
                    Ok(()) => {
                        self.to_close.remove(&id);
                        self.close_next()
                    }
                    Err(f) => self.failed(f, now, vec![]),
                }
            }
        }
    }

    /// A follower forgets the alerts the leader has recorded (or closed and pruned).
    fn leader_recorded(&mut self, agent: &str, record: Option<&OutageRecord>) {
        let kinds: Vec<_> = record
            .map(|r| r.notices.iter().map(|n| n.notice.event).collect())
            .unwrap_or_default();
        self.recent
            .retain(|a| a.agent != agent || (record.is_some() && !kinds.contains(&a.event)));
    }

    /// Hands pending notices of loaded records to the channels that have not taken them, in the
    /// order they were decided across agents (records are per agent: finding H).
    fn requeue(&mut self, records: &BTreeMap<String, OutageRecord>) -> Vec<Action> {
        let mut records: Vec<&OutageRecord> = records.values().collect();
        records.sort_by(|a, b| a.opened_at.cmp(&b.opened_at));
        let mut actions = Vec::new();
        for channel in &self.channels {
            let mut alerts = Vec::new();
            for r in &records {
                for n in r.pending_for(channel) {
                    let key = NoticeKey {
                        agent: r.agent.clone(),
                        seq: n.seq,
                    };
                    let done_here = self
                        .unreceipted
                        .iter()
                        .any(|(k, c)| *k == key && c == channel);
                    if !done_here && self.queued.insert((key.clone(), channel.clone())) {
                        let mut alert = n.notice.to_alert();
                        alert.key = Some(key);
                        alerts.push(alert);
                    }
                }
            }
            alerts.sort_by(|a, b| (a.at, &a.agent, &a.key).cmp(&(b.at, &b.agent, &b.key)));
            if !alerts.is_empty() {
                info!(channel = %channel, alerts = alerts.len(), "delivering recorded alerts not yet delivered");
                actions.push(Action::Deliver {
                    to: To::Channel(channel.clone()),
                    alerts,
                });
            }
        }
        actions
    }

    /// The next window of alerts to record; once none is left, the receipts. The first alert of a
    /// burst is recorded alone and goes out at once; the rest follows window by window (the
    /// channels batch what is queued). Alerts of distinct agents are recorded together: a rack
    /// lost costs a few round trips, not two per agent. One agent's notices stay one after the
    /// other.
    fn record_next(&mut self, first: bool, mut actions: Vec<Action>) -> Vec<Action> {
        if self.unrecorded.is_empty() {
            actions.extend(self.note_next());
            return actions;
        }
        let mut agents = HashSet::new();
        let window: Vec<Alert> = self
            .unrecorded
            .iter()
            .take(if first { 1 } else { RECORD_WINDOW })
            .take_while(|a| agents.insert(a.agent.clone()))
            .cloned()
            .collect();
        self.flush = Flush::Recording {
            first,
            window: window.len(),
        };
        actions.push(Action::Record(window));
        actions
    }

    fn recorded(&mut self, results: Vec<Result<Recorded, Failure>>, now: Instant) -> Vec<Action> {
        let Flush::Recording { first, window } = std::mem::replace(&mut self.flush, Flush::Idle)
        else {
            debug!("record results without a record asked for; ignored");
            return vec![];
        };
        debug!(alerts = results.len(), "recorded");
        let mut recorded_now = Vec::new();
        for result in results.into_iter().take(window) {
            let recorded = match result {
                Ok(r) => r,
                // What follows stays queued; a record it did write is recognised then.
                Err(f) => return self.failed(f, now, deliver_all(recorded_now)),
            };
            if let Recorded::Deliver(alert) = recorded {
                if let Some(key) = &alert.key {
                    for channel in &self.channels {
                        self.queued.insert((key.clone(), channel.clone()));
                    }
                }
                recorded_now.push(*alert);
            }
            self.unrecorded.pop_front();
        }
        // Recorded: on its way while the next window is written.
        let first = first && recorded_now.is_empty();
        self.record_next(first, deliver_all(recorded_now))
    }

    /// One window of receipts per flush, one receipt per record at a time: after a rack's burst,
    /// thousands of receipts would otherwise hold up the next event (a crash) until all were
    /// noted. The rest waits for the next turn of the loop.
    fn note_next(&mut self) -> Vec<Action> {
        if self.unreceipted.is_empty() {
            return self.close_next();
        }
        let mut agents = HashSet::new();
        let mut window = Vec::new();
        for receipt in std::mem::take(&mut self.unreceipted) {
            if window.len() < RECEIPT_WINDOW && agents.insert(receipt.0.agent.clone()) {
                window.push(receipt);
            } else {
                self.unreceipted.push(receipt);
            }
        }
        self.flush = Flush::Noting {
            window: window.clone(),
        };
        vec![Action::NoteDone(window)]
    }

    fn noted(&mut self, results: Vec<Result<(), Failure>>, now: Instant) -> Vec<Action> {
        let Flush::Noting { window } = std::mem::replace(&mut self.flush, Flush::Idle) else {
            debug!("receipt results without receipts asked for; ignored");
            return vec![];
        };
        let mut failed = None;
        let mut results = results.into_iter();
        for receipt in window {
            // A missing result is a failure: the receipt is noted again later.
            if let Err(f) = results.next().unwrap_or(Err(Failure::Transient)) {
                self.unreceipted.push(receipt);
                // The first failure says what happened, as ZooKeeper answers in order.
                failed.get_or_insert(f);
            }
        }
        if let Some(f) = failed {
            return self.failed(f, now, vec![]);
        }
        let mut actions = Vec::new();
        if !self.unreceipted.is_empty() {
            actions.push(Action::RetryAt(now));
        }
        actions.extend(self.close_next());
        actions
    }

    fn close_next(&mut self) -> Vec<Action> {
        match self.to_close.first() {
            Some(id) => {
                self.flush = Flush::Closing { id: id.clone() };
                vec![Action::Close(id.clone())]
            }
            None => {
                self.flush = Flush::Idle;
                vec![]
            }
        }
    }

    /// What ZooKeeper refused stays queued; a transient failure is tried again soon, a session
    /// that ended is flushed again after the next listing.
    fn failed(&mut self, failure: Failure, now: Instant, mut actions: Vec<Action>) -> Vec<Action> {
        self.flush = Flush::Idle;
        if failure == Failure::Transient {
            actions.push(Action::RetryAt(now + FLUSH_RETRY));
        }
        actions
    }
}

fn deliver_all(alerts: Vec<Alert>) -> Vec<Action> {
    if alerts.is_empty() {
        return vec![];
    }
    vec![Action::Deliver {
        to: To::All,
        alerts,
    }]
}
