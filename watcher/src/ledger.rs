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
//! Only the leader of the watchers records and delivers. An alert the leader decides is handed to
//! the channels at once, with a ticket, and recorded beside it: no ZooKeeper write stands between
//! a vanished node and its first delivery attempt. Receipts that name a ticket are kept until the
//! record's key is known, then noted under it. A follower keeps the alerts it decided until the
//! leader's records show them, so that on a takeover it records what the old leader did not (the
//! records drop what it did record as duplicates) and then delivers it: a notice the old leader
//! handed over but had not recorded when it died is sent again, with the same notice id.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, info};

use crate::alert::{Alert, AlertKind, NoticeKey, Ticket};
use crate::escalation::{Escalations, Held};
use crate::hushed::{Hush, Hushed, Until};
use crate::outbox::Recorded;
use crate::record::{NoticeRecord, OutageRecord};
use crate::routing::Router;
use crate::silence::Silences;

/// Outage records written at once (each a create, pipelined on the session). A node event that
/// comes meanwhile waits for the window in flight: 250 keeps that wait to a few tens of
/// milliseconds on a slow disk, while a rack's records still take few round trips.
pub const RECORD_WINDOW: usize = 250;
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
    /// This watcher won the election. `took_over`: while it was following; otherwise at the start
    /// of a session. Either way it records (then sends) what it remembers from following.
    BecameLeader { took_over: bool },
    /// This watcher no longer leads (its connection was lost, or a new session began).
    SteppedDown,
    /// Every readable outage record, listed with the agents after (re)connecting.
    RecordsLoaded(BTreeMap<String, OutageRecord>),
    /// A follower saw the leader change an agent's outage record.
    LeaderRecorded { agent: String, seen: Seen },
    /// A channel is done with these notices (delivered, or refused for good): recorded ones by
    /// key, ones handed over before their record was written by ticket.
    Receipt {
        channel: String,
        keys: Vec<NoticeKey>,
        tickets: Vec<Ticket>,
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
    /// The time asked for by [`Action::EscalateAt`] has come (`wall`: the clock now).
    Due { wall: SystemTime },
    /// Every silence as read from ZooKeeper now (one added, extended, removed, or the listing
    /// after a reconnection); `wall`: the clock now.
    Silences {
        silences: Silences,
        wall: SystemTime,
    },
}

/// Where alerts go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum To {
    /// Every channel: just decided (ticketed), or just recorded (keyed).
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
    /// These outages, announced before this watcher led (their `down`s and `failed`s), are still
    /// open: channels that keep state at their receiver keep them alive.
    StillOpen(Vec<Alert>),
    /// This agent's outage (if any) ended without a notice: a planned stop.
    EndedQuietly(String),
    /// Send [`Event::Due`] at this wall-clock time (the latest asked for wins): an escalation
    /// falls due, or a silence ends.
    EscalateAt(SystemTime),
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

/// What became of an alert handed to the channels before its record was written.
#[derive(Clone, Debug, PartialEq)]
enum Handed {
    /// Its record is being written: the channels done with it so far.
    Unrecorded { done: Vec<String> },
    /// Recorded as `key`: receipts are noted under it. `waiting`: channels not done with it yet.
    Recorded { key: NoticeKey, waiting: usize },
    /// Not recorded (it was reported before, or its record cannot be read): nothing to note.
    Unkeyed { waiting: usize },
}

pub struct Ledger {
    /// The notifier's channel names: the keys of delivery state in outage records.
    channels: Vec<String>,
    /// Which of them each alert goes to.
    router: Router,
    /// Only the leader of the watchers records and delivers.
    leader: bool,
    /// Alerts decided but not yet in an outage record, in order. Those with a ticket were handed
    /// to the channels already; the others (a follower's memory, recorded on a takeover, and what
    /// is decided behind them) are sent once recorded, as they may have been sent before.
    unrecorded: VecDeque<Alert>,
    /// How many of `unrecorded` wait for their record to be sent: while any do, new alerts queue
    /// behind them, so that one agent's notices never overtake each other.
    unsent: usize,
    /// Tickets handed out and not yet done with by every channel.
    handed: HashMap<Ticket, Handed>,
    next_ticket: u64,
    /// A follower's alerts that the leader has not yet recorded (as far as this follower saw):
    /// recorded on takeover, where the outage records drop what the old leader did record.
    recent: VecDeque<Alert>,
    /// Agents stopped as planned whose outage record must be closed.
    to_close: BTreeSet<String>,
    /// Deliveries not yet noted in their record.
    unreceipted: Vec<(NoticeKey, String)>,
    /// Recorded notices handed to a channel and not yet receipted: never queued twice.
    queued: HashSet<(NoticeKey, String)>,
    /// Notices held back from escalation channels until due.
    escalations: Escalations,
    /// The silences, as every watcher reads them, and the notices they hush.
    silences: Silences,
    hushed: Hushed,
    flush: Flush,
}

impl Ledger {
    pub fn new(channels: Vec<String>, router: Router) -> Ledger {
        Ledger {
            channels,
            router,
            leader: false,
            unrecorded: VecDeque::new(),
            unsent: 0,
            handed: HashMap::new(),
            next_ticket: 0,
            recent: VecDeque::new(),
            to_close: BTreeSet::new(),
            unreceipted: Vec::new(),
            queued: HashSet::new(),
            escalations: Escalations::default(),
            silences: Silences::default(),
            hushed: Hushed::default(),
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

    /// Notices held back from escalation channels, not yet due.
    pub fn escalations(&self) -> usize {
        self.escalations.len()
    }

    /// Notices hushed by a silence (one per channel).
    pub fn hushed(&self) -> usize {
        self.hushed.len()
    }

    pub fn on_event(&mut self, event: Event) -> Vec<Action> {
        let next = self.next_due();
        let mut actions = self.decide(event);
        match self.next_due() {
            Some(at) if Some(at) != next => actions.push(Action::EscalateAt(at)),
            _ => {}
        }
        actions
    }

    /// When the next held notice falls due: an escalation's wait, or a silence's end.
    fn next_due(&self) -> Option<SystemTime> {
        [self.escalations.next(), self.hushed.next()]
            .into_iter()
            .flatten()
            .min()
    }

    fn decide(&mut self, event: Event) -> Vec<Action> {
        match event {
            Event::Decided(alerts) => {
                if self.leader {
                    return self.hand_over(alerts);
                }
                self.recent.extend(alerts);
                while self.recent.len() > RECENT_MAX {
                    self.recent.pop_front();
                }
                vec![]
            }
            Event::PlannedStop(id) => {
                // A follower leaves it to the leader, which saw the same stop.
                if !self.leader {
                    return vec![];
                }
                // The outage ended without a notice: nothing left to escalate, or to send once a
                // silence ends.
                for held in self.escalations.of_agent(&id) {
                    self.skip(&held.alert, &held.channel);
                }
                for hush in self.hushed.of_record(&id) {
                    self.skip(&hush.alert, &hush.channel);
                }
                self.to_close.insert(id.clone());
                vec![Action::EndedQuietly(id)]
            }
            Event::BecameLeader { took_over } => {
                self.leader = true;
                if took_over || !self.recent.is_empty() {
                    info!(
                        unrecorded = self.recent.len(),
                        "leading the watchers: this watcher delivers alerts now"
                    );
                }
                // Also at the start of a session: what this watcher decided while it followed
                // in the last one may be what a leader that died since never recorded.
                self.unsent += self.recent.len();
                let remembered: Vec<Alert> = self.recent.drain(..).collect();
                for mut alert in remembered {
                    alert.not_for = self.router.not_for(&alert, &self.channels);
                    self.unrecorded.push_back(alert);
                }
                vec![]
            }
            Event::SteppedDown => {
                self.leader = false;
                // What is recorded stays pending in its record: whoever leads next holds it
                // again from there. What is not recorded yet stays held here: this watcher
                // records it when it leads again (dropping it if another leader reported it
                // meanwhile), and an outage that ends in between must find it held.
                let (gone, kept): (Vec<Held>, Vec<Held>) = self
                    .escalations
                    .take_all()
                    .into_iter()
                    .partition(|h| self.key_of(&h.alert).is_some());
                self.escalations.restore(kept);
                let (gone_hushed, kept): (Vec<Hush>, Vec<Hush>) = self
                    .hushed
                    .take_all()
                    .into_iter()
                    .partition(|h| self.key_of(&h.alert).is_some());
                for h in kept {
                    self.hushed.hold(&h.alert, &h.channel, h.until);
                }
                for (alert, channel) in gone
                    .into_iter()
                    .map(|h| (h.alert, h.channel))
                    .chain(gone_hushed.into_iter().map(|h| (h.alert, h.channel)))
                {
                    if let Some(key) = self.key_of(&alert) {
                        self.queued.remove(&(key, channel));
                    }
                }
                vec![]
            }
            Event::RecordsLoaded(records) => {
                if self.leader {
                    let requeued = self.requeue(&records);
                    let mut actions = self.still_open(&records);
                    actions.extend(requeued);
                    actions
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
            Event::Receipt {
                channel,
                keys,
                tickets,
            } => {
                for key in keys {
                    self.queued.remove(&(key.clone(), channel.clone()));
                    self.unreceipted.push((key, channel.clone()));
                }
                for ticket in tickets {
                    self.ticket_done(ticket, &channel);
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
            Event::Due { wall } => {
                if !self.leader {
                    return vec![];
                }
                // An escalation that falls due while a silence covers its agent waits for the
                // silence to end.
                let mut due = Vec::new();
                for held in self.escalations.due(wall) {
                    match self.silences.silences(&held.alert, wall) {
                        Some(s) => self.hushed.hold(&held.alert, &held.channel, Until::of(s)),
                        None => due.push(held),
                    }
                }
                let mut actions = release(due);
                actions.extend(self.retime(wall));
                // Asked again even when unchanged: a clock set back makes a timer early.
                actions.extend(self.next_due().map(Action::EscalateAt));
                actions
            }
            Event::Silences { silences, wall } => {
                info!(
                    silences = silences.iter().count(),
                    in_force = silences.active(wall),
                    "silences read"
                );
                self.silences = silences;
                if !self.leader {
                    return vec![];
                }
                self.retime(wall)
            }
        }
    }

    /// Times the hushed notices again against the silences at `wall`: those no silence covers any
    /// more (it ended, or was removed) go out now, as their outage is still open.
    fn retime(&mut self, wall: SystemTime) -> Vec<Action> {
        let mut over = Vec::new();
        for hush in self.hushed.take_all() {
            match self.silences.silences(&hush.alert, wall) {
                Some(s) => self.hushed.hold(&hush.alert, &hush.channel, Until::of(s)),
                None => over.push(hush),
            }
        }
        self.unhush(over, wall)
    }

    /// Hushed notices whose silence is over: to their channel now, or, where an escalation route
    /// takes them, held for the rest of its wait (due at once if it has passed).
    fn unhush(&mut self, over: Vec<Hush>, wall: SystemTime) -> Vec<Action> {
        let mut now = Vec::new();
        for mut hush in over {
            hush.alert.silenced = Some(hush.until.ended(wall));
            let plan = self.router.plan(&hush.alert, &self.channels);
            match plan.later.get(&hush.channel) {
                Some(wait) => {
                    let later = BTreeMap::from([(hush.channel.clone(), *wait)]);
                    self.escalations.hold(&hush.alert, &later);
                }
                None => {
                    info!(agent = %hush.alert.agent, channel = %hush.channel, event = hush.alert.event.as_str(), "silence over and the outage still open: sent now");
                    now.push((hush.channel, hush.alert));
                }
            }
        }
        to_channels(now)
    }

    /// The outage of `ended.agent` is over: what was held back from a channel that its end goes
    /// to (the outage lasted long enough, the wait ran out before this turn) goes now, ahead of
    /// it; the rest never goes, and counts as done.
    fn settle(&mut self, ended: &Alert, goes_to: &BTreeSet<String>) -> Vec<Action> {
        let mut due = Vec::new();
        for held in self.escalations.of_agent(&ended.agent) {
            if goes_to.contains(&held.channel) {
                due.push(held);
            } else {
                self.skip(&held.alert, &held.channel);
            }
        }
        release(due)
    }

    /// A notice that will not be sent to `channel` (its outage ended before its escalation or
    /// while silenced): done there.
    fn skip(&mut self, alert: &Alert, channel: &str) {
        debug!(agent = %alert.agent, channel, event = alert.event.as_str(), "outage over before the notice was due; not sent");
        match (alert.ticket, &alert.key) {
            (Some(ticket), _) => self.ticket_done(ticket, channel),
            (None, Some(key)) => {
                self.queued.remove(&(key.clone(), channel.to_owned()));
                self.unreceipted.push((key.clone(), channel.to_owned()));
            }
            (None, None) => {}
        }
    }

    /// The key of a notice's record, when known.
    fn key_of(&self, alert: &Alert) -> Option<NoticeKey> {
        alert
            .key
            .clone()
            .or_else(|| match alert.ticket.and_then(|t| self.handed.get(&t)) {
                Some(Handed::Recorded { key, .. }) => Some(key.clone()),
                _ => None,
            })
    }

    /// An outage's end (`ended`): what was hushed of it never goes; the channels its start was
    /// hushed for, which its end does not go to either.
    fn end_hushed(&mut self, ended: &Alert) -> BTreeSet<String> {
        let mut quiet = BTreeSet::new();
        for hush in self.hushed.of_record(&ended.record_key()) {
            if matches!(hush.alert.event, AlertKind::Down | AlertKind::Degraded) {
                info!(agent = %ended.agent, channel = %hush.channel, event = ended.event.as_str(), "outage over while silenced: neither its start nor its end is sent");
                quiet.insert(hush.channel.clone());
            }
            self.skip(&hush.alert, &hush.channel);
        }
        quiet
    }

    /// Where a notice goes as it is handed to the channels (fresh with its ticket, or recorded
    /// with its key): the copy to hand over now, if any channel takes it now, and what its
    /// outage's end releases first.
    ///
    /// A notice a silence covers is hushed for every channel it would go to, now or later. An
    /// outage's end releases what waited for an escalation, and ends what was hushed: where its
    /// start was hushed, its end is not sent either (the maintenance never pages, before or after).
    fn dispatch(&mut self, alert: &Alert) -> (Option<Alert>, Vec<Action>) {
        let plan = self.router.plan(alert, &self.channels);
        let mut released = Vec::new();
        let mut handed = held_back(alert.clone(), &plan.later);
        match alert.event {
            AlertKind::Recovered | AlertKind::Healthy => {
                if alert.event == AlertKind::Recovered {
                    released.extend(self.settle(alert, &plan.now));
                }
                for channel in self.end_hushed(alert) {
                    self.skip(alert, &channel);
                    handed.not_for.insert(channel);
                }
                self.escalations.hold(alert, &plan.later);
            }
            // Its agent was stopped as planned after it (its record is to be closed): had it been
            // hushed, its outage would have ended within the silence.
            _ if self.to_close.contains(&alert.record_key())
                && self.silences.silences(alert, alert.at).is_some() =>
            {
                for channel in plan.now.iter().chain(plan.later.keys()) {
                    self.skip(alert, channel);
                    handed.not_for.insert(channel.clone());
                }
            }
            _ => match self.silences.silences(alert, alert.at) {
                Some(s) => {
                    let all = plan.now.iter().chain(plan.later.keys());
                    for channel in all {
                        self.hushed.hold(alert, channel, Until::of(s));
                        handed.not_for.insert(channel.clone());
                    }
                    info!(agent = %alert.agent, event = alert.event.as_str(), silence = %s.id, until = %s.record.ends_at, "silenced: recorded, sent only if the outage is still open when the silence ends");
                }
                None => self.escalations.hold(alert, &plan.later),
            },
        }
        let goes = self.channels.iter().any(|c| !handed.not_for.contains(c));
        (goes.then_some(handed), released)
    }

    /// Hands freshly decided alerts to every channel at once, each with a ticket, and queues them
    /// for their records; behind alerts that must be recorded first, they wait their turn.
    ///
    /// A notice an escalation route holds back is handed to its other channels only; its record
    /// keeps it pending for the escalation's, and it waits in [`Escalations`] until due.
    fn hand_over(&mut self, alerts: Vec<Alert>) -> Vec<Action> {
        let mut now = Vec::new();
        let mut released = Vec::new();
        for mut alert in alerts {
            alert.not_for = self.router.not_for(&alert, &self.channels);
            if self.unsent == 0 {
                let ticket = Ticket(self.next_ticket);
                self.next_ticket += 1;
                alert.ticket = Some(ticket);
                self.handed
                    .insert(ticket, Handed::Unrecorded { done: Vec::new() });
                let (handed, rel) = self.dispatch(&alert);
                released.extend(rel);
                now.extend(handed);
            } else {
                // Sent once recorded, behind what is: what it ends is settled now all the same,
                // and where its start was hushed, it is recorded as done (never sent).
                if alert.event == AlertKind::Recovered {
                    let plan = self.router.plan(&alert, &self.channels);
                    released.extend(self.settle(&alert, &plan.now));
                }
                if matches!(alert.event, AlertKind::Recovered | AlertKind::Healthy) {
                    let quiet = self.end_hushed(&alert);
                    alert.not_for.extend(quiet);
                }
                self.unsent += 1;
            }
            self.unrecorded.push_back(alert);
        }
        released.extend(deliver_all(now));
        released
    }

    /// `channel` is done with a ticketed alert: noted under its key once it has one.
    fn ticket_done(&mut self, ticket: Ticket, channel: &str) {
        let Some(handed) = self.handed.get_mut(&ticket) else {
            debug!(
                ticket = ticket.0,
                channel, "a receipt for a ticket no longer held; ignored"
            );
            return;
        };
        let waiting = match handed {
            Handed::Unrecorded { done } => {
                done.push(channel.to_owned());
                return;
            }
            Handed::Recorded { key, waiting } => {
                self.queued.remove(&(key.clone(), channel.to_owned()));
                self.unreceipted.push((key.clone(), channel.to_owned()));
                waiting
            }
            Handed::Unkeyed { waiting } => waiting,
        };
        *waiting = waiting.saturating_sub(1);
        if *waiting == 0 {
            self.handed.remove(&ticket);
        }
    }

    /// A ticketed alert's record is written (`key`), or will not be (`None`): the receipts taken
    /// so far are noted under its key, the channels still holding it count as queued.
    fn ticket_recorded(&mut self, ticket: Ticket, alert: &Alert, key: Option<NoticeKey>) {
        let Some(Handed::Unrecorded { done }) = self.handed.remove(&ticket) else {
            return;
        };
        // The channels its routes do not send it to never give a receipt.
        let targets: Vec<&String> = self
            .channels
            .iter()
            .filter(|c| !alert.not_for.contains(*c))
            .collect();
        let waiting = targets.iter().filter(|c| !done.contains(c)).count();
        match key {
            Some(key) => {
                for channel in targets {
                    if done.contains(channel) {
                        self.unreceipted.push((key.clone(), channel.clone()));
                    } else {
                        self.queued.insert((key.clone(), channel.clone()));
                    }
                }
                if waiting > 0 {
                    self.handed
                        .insert(ticket, Handed::Recorded { key, waiting });
                }
            }
            None if waiting > 0 => {
                self.handed.insert(ticket, Handed::Unkeyed { waiting });
            }
            None => {}
        }
    }

    /// A follower forgets the alerts the leader has recorded (or closed and pruned).
    fn leader_recorded(&mut self, agent: &str, record: Option<&OutageRecord>) {
        let kinds: Vec<_> = record
            .map(|r| r.notices.iter().map(|n| n.notice.event).collect())
            .unwrap_or_default();
        self.recent
            .retain(|a| a.record_key() != agent || (record.is_some() && !kinds.contains(&a.event)));
    }

    /// The `down`s and `failed`s of the open outages in loaded records, routed as they would be
    /// now.
    fn still_open(&self, records: &BTreeMap<String, OutageRecord>) -> Vec<Action> {
        let open: Vec<Alert> = records
            .values()
            .filter(|r| !r.closed)
            .flat_map(|r| r.current())
            .filter(|n| {
                matches!(
                    n.notice.event,
                    AlertKind::Down | AlertKind::Failed | AlertKind::Degraded
                )
            })
            .map(|n| {
                let mut alert = n.notice.to_alert();
                alert.not_for = self.router.not_for(&alert, &self.channels);
                // An escalation not yet due is not kept alive where it has not been sent.
                let id = alert.notice_id();
                let held: Vec<String> = self
                    .channels
                    .iter()
                    .filter(|c| self.escalations.holds(&id, c) || self.hushed.holds(&id, c))
                    .cloned()
                    .collect();
                alert.not_for.extend(held);
                alert
            })
            .collect();
        if open.is_empty() {
            vec![]
        } else {
            vec![Action::StillOpen(open)]
        }
    }

    /// Hands pending notices of loaded records to the channels that have not taken them, in the
    /// order they were decided across agents (records are per agent: finding H).
    fn requeue(&mut self, records: &BTreeMap<String, OutageRecord>) -> Vec<Action> {
        let mut records: Vec<&OutageRecord> = records.values().collect();
        records.sort_by(|a, b| a.opened_at.cmp(&b.opened_at));
        // Handed over and being recorded: a record that shows one (its write applied, the answer
        // lost with the connection) does not make it pending; the channels have it already.
        let handed: HashSet<String> = self
            .unrecorded
            .iter()
            .filter(|a| a.ticket.is_some())
            .map(Alert::notice_id)
            .collect();
        let mut actions = Vec::new();
        for channel in &self.channels {
            let mut alerts = Vec::new();
            for r in &records {
                for n in r.pending_for(channel) {
                    if !handed.is_empty() && handed.contains(&n.notice.to_alert().notice_id()) {
                        continue;
                    }
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
                        alert.key = Some(key.clone());
                        match self.silenced(r, n, &alert, channel) {
                            Silenced::No => {}
                            Silenced::Hush(until) => {
                                self.hushed.hold(&alert, channel, until);
                                continue;
                            }
                            Silenced::Throughout => {
                                self.queued.remove(&(key.clone(), channel.clone()));
                                self.unreceipted.push((key, channel.clone()));
                                continue;
                            }
                        }
                        match self.escalation(r, n, &alert, channel) {
                            Escalation::No | Escalation::Due => alerts.push(alert),
                            Escalation::Wait(wait) => {
                                let later = BTreeMap::from([(channel.clone(), wait)]);
                                self.escalations.hold(&alert, &later);
                            }
                            Escalation::Never => {
                                self.queued.remove(&(key.clone(), channel.clone()));
                                self.unreceipted.push((key, channel.clone()));
                            }
                        }
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

    /// What a silence makes of a pending notice of a loaded record for `channel`, judged as the
    /// leader that decided it judged it (at the notice's time): hushed (its outage is open and a
    /// silence covered it then), or never sent (its outage began silenced and ended before the
    /// silences that held it did, and neither its start nor its end reached the channel: the old
    /// leader died before noting so).
    fn silenced(
        &self,
        record: &OutageRecord,
        notice: &NoticeRecord,
        alert: &Alert,
        channel: &str,
    ) -> Silenced {
        if self.silences.is_empty() {
            return Silenced::No;
        }
        let opens = |e: AlertKind| matches!(e, AlertKind::Down | AlertKind::Degraded);
        let ends = |e: AlertKind| matches!(e, AlertKind::Recovered | AlertKind::Healthy);
        if !record.closed && notice.seq >= record.first_seq {
            if ends(notice.notice.event) {
                return Silenced::No;
            }
            return match self.silences.silences(alert, alert.at) {
                Some(s) => Silenced::Hush(Until::of(s)),
                None => Silenced::No,
            };
        }
        let opener = record
            .notices
            .iter()
            .rfind(|n| n.seq <= notice.seq && opens(n.notice.event));
        let Some(opener) = opener else {
            return Silenced::No;
        };
        let closer = record
            .notices
            .iter()
            .find(|n| n.seq > opener.seq && ends(n.notice.event));
        let Some(closer) = closer else {
            return Silenced::No;
        };
        let start = opener.notice.to_alert();
        let held_until = self.silences.silences(&start, start.at).map(|s| s.ends);
        let ended = closer.notice.to_alert().at;
        let untold = !closer.done.contains(channel) && !opener.done.contains(channel);
        match held_until {
            Some(until) if untold && ended < until => Silenced::Throughout,
            _ => Silenced::No,
        }
    }

    /// What a pending notice of a loaded record is for `channel`, when an escalation route takes
    /// it there: still to wait (the outage is open), due (it ended, and its end goes to the
    /// channel: it lasted long enough), or never (it ended sooner).
    fn escalation(
        &self,
        record: &OutageRecord,
        notice: &NoticeRecord,
        alert: &Alert,
        channel: &str,
    ) -> Escalation {
        let plan = self.router.plan(alert, &self.channels);
        let Some(wait) = plan.later.get(channel) else {
            return Escalation::No;
        };
        if !record.closed && notice.seq >= record.first_seq {
            return Escalation::Wait(*wait);
        }
        let ended = record
            .notices
            .iter()
            .find(|n| n.seq > notice.seq && n.notice.event == AlertKind::Recovered);
        match ended {
            Some(end)
                if self
                    .router
                    .plan(&end.notice.to_alert(), &self.channels)
                    .now
                    .contains(channel) =>
            {
                Escalation::Due
            }
            _ => Escalation::Never,
        }
    }

    /// The next window of alerts to record; once none is left, the receipts. Alerts of distinct
    /// agents are recorded together: a rack lost costs a few round trips, not two per agent. One
    /// agent's notices stay one after the other. Of alerts sent only once recorded (a takeover's),
    /// the first of a burst is recorded alone and goes out at once; the rest follows window by
    /// window (the channels batch what is queued).
    fn record_next(&mut self, first: bool, mut actions: Vec<Action>) -> Vec<Action> {
        if self.unrecorded.is_empty() {
            actions.extend(self.note_next());
            return actions;
        }
        let mut agents = HashSet::new();
        let window: Vec<Alert> = self
            .unrecorded
            .iter()
            .take(match self.unrecorded.front() {
                Some(a) if first && a.ticket.is_none() => 1,
                _ => RECORD_WINDOW,
            })
            .take_while(|a| agents.insert(a.record_key()))
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
        // Escalations released by an outage's end recorded here, sent ahead of it.
        let mut released = Vec::new();
        for result in results.into_iter().take(window) {
            let recorded = match result {
                Ok(r) => r,
                // What follows stays queued; a record it did write is recognised then.
                Err(f) => {
                    released.extend(deliver_all(recorded_now));
                    return self.failed(f, now, released);
                }
            };
            let Some(alert) = self.unrecorded.pop_front() else {
                break;
            };
            match (alert.ticket, recorded) {
                (Some(ticket), Recorded::Deliver(recorded)) => {
                    self.ticket_recorded(ticket, &alert, recorded.key)
                }
                (Some(ticket), Recorded::Duplicate) => {
                    info!(agent = %alert.agent, event = alert.event.as_str(), "sent before its record showed it reported already (by another watcher); a receiver that drops repeated ids drops it");
                    self.ticket_recorded(ticket, &alert, None);
                    // What it held back is the other watcher's to send (it recorded it).
                    let id = alert.notice_id();
                    let held = self.escalations.of_notice(&id).into_iter();
                    let hushed = self.hushed.of_notice(&id).into_iter();
                    for channel in held.map(|h| h.channel).chain(hushed.map(|h| h.channel)) {
                        self.ticket_done(ticket, &channel);
                    }
                }
                (None, recorded) => {
                    self.unsent = self.unsent.saturating_sub(1);
                    if let Recorded::Deliver(alert) = recorded {
                        if let Some(key) = &alert.key {
                            for channel in &self.channels {
                                if !alert.not_for.contains(channel) {
                                    self.queued.insert((key.clone(), channel.clone()));
                                }
                            }
                        }
                        let (handed, rel) = self.dispatch(&alert);
                        released.extend(rel);
                        recorded_now.extend(handed);
                    }
                }
            }
        }
        let mut actions = released;
        actions.extend(deliver_all(recorded_now));
        if self.unrecorded.front().is_some_and(|a| a.ticket.is_some()) {
            // What is left was handed over already: its records wait for the next turn of the
            // loop, so that a node event (a crash) never waits behind a burst's records.
            self.flush = Flush::Idle;
            actions.push(Action::RetryAt(now));
            return actions;
        }
        // Recorded: on its way while the next window is written.
        let first = first && actions.is_empty();
        self.record_next(first, actions)
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

/// What [`Ledger::silenced`] makes of a pending notice for one channel.
enum Silenced {
    No,
    Hush(Until),
    Throughout,
}

/// What [`Ledger::escalation`] makes of a pending notice for one channel.
enum Escalation {
    /// Not an escalation there: sent as any pending notice.
    No,
    Wait(Duration),
    Due,
    Never,
}

/// `alert` as handed to the channels at once: not to those that wait for it (its record keeps
/// it pending for them).
fn held_back(mut alert: Alert, later: &BTreeMap<String, Duration>) -> Alert {
    alert.not_for.extend(later.keys().cloned());
    alert
}

/// Held notices handed to their channels, one delivery per channel, in order.
fn release(due: Vec<Held>) -> Vec<Action> {
    let due = due.into_iter().map(|held| {
        info!(agent = %held.alert.agent, channel = %held.channel, event = held.alert.event.as_str(), "outage still open: escalated");
        (held.channel, held.alert)
    });
    to_channels(due.collect())
}

/// Alerts handed to one channel each, one delivery per channel, in order.
fn to_channels(items: Vec<(String, Alert)>) -> Vec<Action> {
    let mut by_channel: BTreeMap<String, Vec<Alert>> = BTreeMap::new();
    for (channel, alert) in items {
        by_channel.entry(channel).or_default().push(alert);
    }
    by_channel
        .into_iter()
        .map(|(channel, alerts)| Action::Deliver {
            to: To::Channel(channel),
            alerts,
        })
        .collect()
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

/// Table tests, one row per case. Findings of `tests/FAULTS.md` covered here: C (a record write
/// that fails keeps what follows queued and retries), D (a burst: the first alert alone, then
/// windows), H (a new leader sends pending notices in the order decided across agents), J
/// (delivery state is per channel name: one channel's receipt never counts for another) and K
/// (an unreadable record: nothing forgotten, alerts sent without a record and never receipted).
/// Not the ledger's concern: A and G (outage decisions, `outage.rs`), B and E (the session loop
/// and reconnect backoff, `watch.rs`, `common::session`), F (the watchdog's log line), I (channel
/// pacing, `notify.rs`).
#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    use crate::alert::AlertKind::{self, Down, Recovered};
    use crate::record::{decide, Decision};

    const CH: [&str; 2] = ["webhook", "dingtalk"];

    fn alert(agent: &str, event: AlertKind, secs: u64) -> Alert {
        Alert {
            host: Some("h".into()),
            restarts: Some(1),
            crashes: 1,
            outage: (event == Recovered).then(|| Duration::from_secs(2)),
            ..Alert::new(
                event,
                agent,
                "exited with code 3",
                UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs),
            )
        }
    }

    fn key(agent: &str, seq: u32) -> NoticeKey {
        NoticeKey {
            agent: agent.into(),
            seq,
        }
    }

    fn keyed(a: &Alert, seq: u32) -> Alert {
        Alert {
            key: Some(key(&a.agent, seq)),
            ..a.clone()
        }
    }

    fn ticketed(a: &Alert, ticket: u64) -> Alert {
        Alert {
            ticket: Some(Ticket(ticket)),
            ..a.clone()
        }
    }

    /// The agent's record after these alerts, each channel done with the notices listed.
    fn record(alerts: &[Alert], done: &[(u32, &str)]) -> OutageRecord {
        let mut r: Option<OutageRecord> = None;
        for a in alerts {
            if let Decision::Write { record, .. } = decide(r.as_ref(), a) {
                r = Some(record);
            }
        }
        let mut r = r.expect("at least one alert");
        for (seq, ch) in done {
            r.mark_done(*seq, ch);
        }
        r
    }

    fn records(rs: Vec<OutageRecord>) -> BTreeMap<String, OutageRecord> {
        rs.into_iter().map(|r| (r.agent.clone(), r)).collect()
    }

    #[test]
    fn a_degradation_is_recorded_in_its_own_record() {
        let mut t = T::leader();
        let mut a = alert("a1", Down, 0);
        a.event = AlertKind::Degraded;
        let handed = t.on(Event::Decided(vec![a.clone()]));
        assert!(
            matches!(handed.as_slice(), [Action::Deliver { .. }]),
            "{handed:?}"
        );
        let flushed = t.on(Event::Flush);
        match flushed.as_slice() {
            [Action::Record(window)] => assert_eq!(window[0].record_key(), "a1~health"),
            other => panic!("a record asked for: {other:?}"),
        }
    }

    struct T {
        l: Ledger,
        now: Instant,
    }

    impl T {
        fn leader() -> T {
            let mut t = T::follower();
            t.on(Event::BecameLeader { took_over: false });
            t
        }
        fn follower() -> T {
            T {
                l: Ledger::new(
                    CH.iter().map(|c| c.to_string()).collect(),
                    Router::everywhere(),
                ),
                now: Instant::now(),
            }
        }
        fn on(&mut self, e: Event) -> Vec<Action> {
            self.l.on_event(e)
        }
        /// A follower that remembered `alerts` and took over.
        fn taken_over(alerts: &[Alert]) -> T {
            let mut t = T::follower();
            t.decided(alerts);
            t.on(Event::BecameLeader { took_over: true });
            t
        }
        /// What a listing asks besides keeping open outages alive.
        fn requeued(&mut self, e: Event) -> Vec<Action> {
            let mut actions = self.on(e);
            actions.retain(|a| !matches!(a, Action::StillOpen(_)));
            actions
        }
        fn decided(&mut self, alerts: &[Alert]) -> Vec<Action> {
            self.on(Event::Decided(alerts.to_vec()))
        }
        /// Writes every window asked for, each alert getting the next seq of its agent; returns
        /// every action.
        fn record_all(&mut self, mut actions: Vec<Action>) -> Vec<Action> {
            let mut all = Vec::new();
            let mut seqs: BTreeMap<String, u32> = BTreeMap::new();
            loop {
                match actions.last().cloned() {
                    Some(Action::Record(window)) => {
                        all.extend(actions);
                        let results = window
                            .iter()
                            .map(|a| {
                                let seq = seqs.entry(a.agent.clone()).or_default();
                                *seq += 1;
                                Ok(Recorded::Deliver(Box::new(keyed(a, *seq - 1))))
                            })
                            .collect();
                        actions = self.on(Event::Recorded {
                            results,
                            now: self.now,
                        });
                    }
                    // The loop's next turn, as `watch.rs` gives it: a flush.
                    Some(Action::RetryAt(at)) if at == self.now => {
                        all.extend(actions);
                        actions = self.on(Event::Flush);
                    }
                    _ => break,
                }
            }
            all.extend(actions);
            all
        }
    }

    fn windows(actions: &[Action]) -> Vec<usize> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Record(w) => Some(w.len()),
                _ => None,
            })
            .collect()
    }

    fn delivered(actions: &[Action]) -> Vec<(To, Vec<(String, AlertKind)>)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Deliver { to, alerts } => Some((
                    to.clone(),
                    alerts.iter().map(|a| (a.agent.clone(), a.event)).collect(),
                )),
                _ => None,
            })
            .collect()
    }

    /// Part 3 of issue 9 (no write ahead of an alert) and D (a burst): a leader hands what it
    /// decides to every channel at once, each alert with its own ticket, before anything is
    /// recorded; the records follow in windows of distinct agents, at most RECORD_WINDOW each, one
    /// agent's notices one after the other; recording sends nothing again.
    #[test]
    fn a_leaders_alerts_go_out_at_once_and_are_recorded_beside() {
        struct Case {
            what: &'static str,
            alerts: Vec<Alert>,
            windows: Vec<usize>,
        }
        let many = |n: usize| -> Vec<Alert> {
            (0..n)
                .map(|i| alert(&format!("a{i:04}"), Down, 0))
                .collect()
        };
        let cases = [
            Case {
                what: "one alert",
                alerts: many(1),
                windows: vec![1],
            },
            Case {
                what: "a rack: recorded together",
                alerts: many(5),
                windows: vec![5],
            },
            Case {
                what: "more than a window",
                alerts: many(2 + RECORD_WINDOW),
                windows: vec![RECORD_WINDOW, 2],
            },
            Case {
                what: "one agent's notices are not written together",
                alerts: vec![
                    alert("a", Down, 0),
                    alert("b", Down, 0),
                    alert("c", Down, 0),
                    alert("b", Recovered, 1),
                    alert("d", Down, 1),
                ],
                windows: vec![3, 2],
            },
        ];
        for c in cases {
            let mut t = T::leader();
            let sent = t.decided(&c.alerts);
            let tickets: Vec<Alert> = c
                .alerts
                .iter()
                .enumerate()
                .map(|(i, a)| ticketed(a, i as u64))
                .collect();
            assert_eq!(
                sent,
                vec![Action::Deliver {
                    to: To::All,
                    alerts: tickets
                }],
                "{}: every alert at once, each with a ticket",
                c.what
            );
            let flush = t.on(Event::Flush);
            let actions = t.record_all(flush);
            assert_eq!(windows(&actions), c.windows, "{}", c.what);
            assert_eq!(
                actions.contains(&Action::RetryAt(t.now)),
                c.windows.len() > 1,
                "{}: one window a turn of the loop, so that node events come between",
                c.what
            );
            assert_eq!(
                delivered(&actions),
                vec![],
                "{}: recording sends nothing again",
                c.what
            );
            assert_eq!(t.l.unrecorded(), 0, "{}", c.what);
        }
    }

    /// D, for what a new leader takes over from its memory (which the old leader may have sent
    /// and recorded): recorded first, then sent; the first alert of the burst alone (it goes out
    /// at once), the rest window by window.
    #[test]
    fn a_takeovers_alerts_are_recorded_first_the_first_alone() {
        let many: Vec<Alert> = (0..5).map(|i| alert(&format!("a{i}"), Down, 0)).collect();
        let mut t = T::taken_over(&many);
        let flush = t.on(Event::Flush);
        let actions = t.record_all(flush);
        assert_eq!(windows(&actions), vec![1, 4]);
        let sent: Vec<Alert> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Deliver {
                    to: To::All,
                    alerts,
                } => Some(alerts.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(sent.len(), 5, "each sent once");
        assert!(
            sent.iter().all(|a| a.key.is_some() && a.ticket.is_none()),
            "sent as recorded"
        );
        // A first alert that was reported before (a duplicate) sends nothing, so the next one is
        // still the first of the burst.
        let mut t = T::taken_over(&many[..3]);
        assert_eq!(windows(&t.on(Event::Flush)), vec![1]);
        let next = t.on(Event::Recorded {
            results: vec![Ok(Recorded::Duplicate)],
            now: t.now,
        });
        assert_eq!(next, vec![Action::Record(vec![many[1].clone()])]);
    }

    /// While a new leader's memory waits for its records, what it decides queues behind: one
    /// agent's `recovered` never overtakes its `down`. Once the memory is recorded, alerts go out
    /// at once again.
    #[test]
    fn fresh_alerts_wait_behind_a_takeovers_until_it_is_recorded() {
        let (down, back, other) = (
            alert("a", Down, 0),
            alert("a", Recovered, 5),
            alert("b", Down, 6),
        );
        let mut t = T::taken_over(std::slice::from_ref(&down));
        assert_eq!(t.decided(std::slice::from_ref(&back)), vec![], "queued");
        let flush = t.on(Event::Flush);
        let actions = t.record_all(flush);
        assert_eq!(
            delivered(&actions),
            vec![
                (To::All, vec![("a".into(), Down)]),
                (To::All, vec![("a".into(), Recovered)]),
            ]
        );
        assert_eq!(
            t.decided(std::slice::from_ref(&other)),
            deliver_all(vec![ticketed(&other, 0)]),
            "at once again"
        );
    }

    /// C: a failed write keeps it and what follows queued (a write it did make is recognised as
    /// its own then); a transient failure is retried after FLUSH_RETRY, a session that ended by
    /// the next session's flush. What was handed over is not sent again; of a takeover's alerts,
    /// what was recorded before the failure goes out.
    #[test]
    fn a_failed_record_write_keeps_what_follows_and_retries() {
        struct Case {
            what: &'static str,
            failure: Failure,
            retry: Option<Duration>,
        }
        let cases = [
            Case {
                what: "ZooKeeper did not answer in time",
                failure: Failure::Transient,
                retry: Some(FLUSH_RETRY),
            },
            Case {
                what: "the session ended",
                failure: Failure::SessionOver,
                retry: None,
            },
        ];
        let (a, b, x, d) = (
            alert("a", Down, 0),
            alert("b", Down, 0),
            alert("c", Down, 0),
            alert("d", Down, 0),
        );
        let all = [a.clone(), b.clone(), x.clone(), d.clone()];
        for c in cases {
            // Handed over at once.
            let mut t = T::leader();
            t.decided(&all);
            assert_eq!(windows(&t.on(Event::Flush)), vec![4], "{}", c.what);
            let (ta, tb, tx, td) = (
                ticketed(&a, 0),
                ticketed(&b, 1),
                ticketed(&x, 2),
                ticketed(&d, 3),
            );
            let after = t.on(Event::Recorded {
                results: vec![
                    Ok(Recorded::Deliver(Box::new(keyed(&ta, 0)))),
                    Ok(Recorded::Deliver(Box::new(keyed(&tb, 0)))),
                    Err(c.failure),
                    Ok(Recorded::Deliver(Box::new(keyed(&td, 0)))),
                ],
                now: t.now,
            });
            let retry: Vec<Action> = c
                .retry
                .map(|r| Action::RetryAt(t.now + r))
                .into_iter()
                .collect();
            assert_eq!(after, retry, "{}: nothing sent again", c.what);
            assert_eq!(t.l.unrecorded(), 2, "{}: c and d stay queued", c.what);
            assert_eq!(
                t.on(Event::Flush),
                vec![Action::Record(vec![tx.clone(), td.clone()])],
                "{}: tried again",
                c.what
            );

            // A takeover's: sent once recorded.
            let mut t = T::taken_over(&all);
            t.on(Event::Flush);
            let rest = t.on(Event::Recorded {
                results: vec![Ok(Recorded::Deliver(Box::new(keyed(&a, 0))))],
                now: t.now,
            });
            assert_eq!(windows(&rest), vec![3], "{}", c.what);
            let after = t.on(Event::Recorded {
                results: vec![
                    Ok(Recorded::Deliver(Box::new(keyed(&b, 0)))),
                    Err(c.failure),
                    Ok(Recorded::Deliver(Box::new(keyed(&d, 0)))),
                ],
                now: t.now,
            });
            let mut expect = deliver_all(vec![keyed(&b, 0)]);
            expect.extend(c.retry.map(|r| Action::RetryAt(t.now + r)));
            assert_eq!(after, expect, "{}", c.what);
            assert_eq!(t.l.unrecorded(), 2, "{}: c and d stay queued", c.what);
            assert_eq!(
                t.on(Event::Flush),
                vec![Action::Record(vec![x.clone()])],
                "{}: tried again, the first alone",
                c.what
            );
        }
    }

    /// Receipts that name a ticket wait for the record's key, then are noted under it like any
    /// other; once every channel is done with a ticket it is forgotten. A ticket whose alert was
    /// not recorded (reported before by another watcher, or its record unreadable: K) has nothing
    /// to note.
    #[test]
    fn receipts_by_ticket_are_noted_once_recorded() {
        let receipt = |ch: &str, t: u64| Event::Receipt {
            channel: ch.into(),
            keys: vec![],
            tickets: vec![Ticket(t)],
        };
        let a = alert("a", Down, 0);
        let mut t = T::leader();
        t.decided(std::slice::from_ref(&a));
        assert_eq!(t.on(receipt("webhook", 0)), vec![]);
        assert_eq!(
            t.on(Event::Flush),
            vec![Action::Record(vec![ticketed(&a, 0)])],
            "no receipt to note before the record exists"
        );
        let recorded = keyed(&ticketed(&a, 0), 0);
        assert_eq!(
            t.on(Event::Recorded {
                results: vec![Ok(Recorded::Deliver(Box::new(recorded)))],
                now: t.now,
            }),
            vec![Action::NoteDone(vec![(key("a", 0), "webhook".into())])],
            "the early receipt, under its key"
        );
        t.on(Event::Noted {
            results: vec![Ok(())],
            now: t.now,
        });
        // The record lists a's down as pending for DingTalk, which still holds it: not again.
        let stale = records(vec![record(std::slice::from_ref(&a), &[(0, "webhook")])]);
        assert_eq!(t.requeued(Event::RecordsLoaded(stale)), vec![]);
        t.on(receipt("dingtalk", 0));
        assert_eq!(
            t.on(Event::Flush),
            vec![Action::NoteDone(vec![(key("a", 0), "dingtalk".into())])]
        );
        assert!(t.l.handed.is_empty(), "every channel done: forgotten");

        for (what, result) in [
            ("reported before", Recorded::Duplicate),
            (
                "record unreadable",
                Recorded::Deliver(Box::new(ticketed(&a, 0))),
            ),
        ] {
            let mut t = T::leader();
            t.decided(std::slice::from_ref(&a));
            t.on(receipt("webhook", 0));
            t.on(Event::Flush);
            assert_eq!(
                t.on(Event::Recorded {
                    results: vec![Ok(result)],
                    now: t.now,
                }),
                vec![],
                "{what}: nothing to note, nothing sent again"
            );
            t.on(receipt("dingtalk", 0));
            assert_eq!(t.on(Event::Flush), vec![], "{what}");
            assert!(t.l.handed.is_empty(), "{what}: forgotten");
        }
    }

    /// A record written while its answer was lost (the connection dropped): the listing after the
    /// reconnection shows the notice pending, but the channels have it already, so it is not
    /// queued again; the write, tried again, finds it as its own.
    #[test]
    fn a_record_written_but_unanswered_is_not_sent_again() {
        let a = alert("a", Down, 0);
        let mut t = T::leader();
        t.decided(std::slice::from_ref(&a));
        t.on(Event::Flush);
        t.on(Event::Recorded {
            results: vec![Err(Failure::SessionOver)],
            now: t.now,
        });
        let listed = records(vec![record(std::slice::from_ref(&a), &[])]);
        assert_eq!(t.requeued(Event::RecordsLoaded(listed)), vec![]);
        let flush = t.on(Event::Flush);
        assert_eq!(delivered(&t.record_all(flush)), vec![]);
        assert_eq!(t.l.unrecorded(), 0);
    }

    /// Receipts are noted one per record at a time, one window per flush (so that thousands of
    /// them never hold up the next event), the rest at once after; a failure keeps them.
    #[test]
    fn receipts_are_noted_in_windows_one_per_record() {
        let receipt = |agent: &str, seq: u32, ch: &str| (key(agent, seq), ch.to_string());
        let mut t = T::leader();
        for (ch, keys) in [
            ("webhook", vec![key("a", 0), key("a", 1), key("b", 0)]),
            ("dingtalk", vec![key("b", 0)]),
        ] {
            t.on(Event::Receipt {
                channel: ch.into(),
                keys,
                tickets: vec![],
            });
        }
        assert_eq!(
            t.on(Event::Flush),
            vec![Action::NoteDone(vec![
                receipt("a", 0, "webhook"),
                receipt("b", 0, "webhook")
            ])],
            "one receipt per record at a time"
        );
        let noted = t.on(Event::Noted {
            results: vec![Ok(()), Ok(())],
            now: t.now,
        });
        assert_eq!(
            noted,
            vec![Action::RetryAt(t.now)],
            "one window per flush; the next turn at once"
        );
        assert_eq!(
            t.on(Event::Flush),
            vec![Action::NoteDone(vec![
                receipt("a", 1, "webhook"),
                receipt("b", 0, "dingtalk")
            ])]
        );
        // A failure keeps the receipt (and closes nothing): tried again later.
        t.on(Event::PlannedStop("z".into()));
        let failed = t.on(Event::Noted {
            results: vec![Ok(()), Err(Failure::Transient)],
            now: t.now,
        });
        assert_eq!(failed, vec![Action::RetryAt(t.now + FLUSH_RETRY)]);
        assert_eq!(t.l.unnoted(), 1);
        assert_eq!(
            t.on(Event::Flush),
            vec![Action::NoteDone(vec![receipt("b", 0, "dingtalk")])]
        );
        assert_eq!(
            t.on(Event::Noted {
                results: vec![Ok(())],
                now: t.now,
            }),
            vec![Action::Close("z".into())],
            "closed once the receipts are noted"
        );

        // At most RECEIPT_WINDOW at once.
        let mut t = T::leader();
        t.on(Event::Receipt {
            channel: "webhook".into(),
            keys: (0..RECEIPT_WINDOW + 1)
                .map(|i| key(&format!("a{i}"), 0))
                .collect(),
            tickets: vec![],
        });
        match t.on(Event::Flush).as_slice() {
            [Action::NoteDone(w)] => assert_eq!(w.len(), RECEIPT_WINDOW),
            other => panic!("{other:?}"),
        }
    }

    /// A follower records and delivers nothing; it remembers its alerts until the leader's record
    /// shows them (or the record is pruned), at most RECENT_MAX of them; on a takeover it records
    /// what it still remembers.
    #[test]
    fn a_follower_remembers_until_the_leader_records() {
        struct Case {
            what: &'static str,
            seen: Vec<Event>,
            /// What the follower records once it takes over.
            recorded: Vec<(&'static str, AlertKind)>,
        }
        let (a_down, a_rec, b_down) = (
            alert("a", Down, 0),
            alert("a", Recovered, 5),
            alert("b", Down, 1),
        );
        let leader_has = |alerts: &[Alert]| Event::LeaderRecorded {
            agent: alerts[0].agent.clone(),
            seen: Seen::Record(record(alerts, &[])),
        };
        let cases = [
            Case {
                what: "the leader saw nothing: everything",
                seen: vec![],
                recorded: vec![("a", Down), ("b", Down), ("a", Recovered)],
            },
            Case {
                what: "the leader recorded a's down: a's recovered and b's down",
                seen: vec![leader_has(std::slice::from_ref(&a_down))],
                recorded: vec![("b", Down), ("a", Recovered)],
            },
            Case {
                what: "the leader recorded a's outage, then it was pruned",
                seen: vec![
                    leader_has(&[a_down.clone(), a_rec.clone()]),
                    Event::LeaderRecorded {
                        agent: "a".into(),
                        seen: Seen::Pruned,
                    },
                ],
                recorded: vec![("b", Down)],
            },
            Case {
                what: "pruned without the follower seeing it written",
                seen: vec![Event::LeaderRecorded {
                    agent: "a".into(),
                    seen: Seen::Pruned,
                }],
                recorded: vec![("b", Down)],
            },
            Case {
                what: "K: an unreadable record forgets nothing",
                seen: vec![Event::LeaderRecorded {
                    agent: "a".into(),
                    seen: Seen::Unreadable,
                }],
                recorded: vec![("a", Down), ("b", Down), ("a", Recovered)],
            },
            Case {
                what: "records listed on a reconnection count too",
                seen: vec![Event::RecordsLoaded(records(vec![record(
                    std::slice::from_ref(&b_down),
                    &[],
                )]))],
                recorded: vec![("a", Down), ("a", Recovered)],
            },
        ];
        for c in cases {
            let mut t = T::follower();
            t.decided(&[a_down.clone(), b_down.clone(), a_rec.clone()]);
            t.on(Event::PlannedStop("c".into()));
            assert_eq!(
                t.on(Event::Flush),
                vec![],
                "{}: a follower writes nothing",
                c.what
            );
            for e in c.seen {
                assert_eq!(t.on(e), vec![], "{}", c.what);
            }
            t.on(Event::BecameLeader { took_over: true });
            let flush = t.on(Event::Flush);
            let actions = t.record_all(flush);
            let got: Vec<(String, AlertKind)> = actions
                .iter()
                .filter_map(|a| match a {
                    Action::Record(w) => Some(w.clone()),
                    _ => None,
                })
                .flatten()
                .map(|a| (a.agent, a.event))
                .collect();
            let expect: Vec<(String, AlertKind)> = c
                .recorded
                .iter()
                .map(|(agent, kind)| (agent.to_string(), *kind))
                .collect();
            assert_eq!(got, expect, "{}", c.what);
            assert!(
                !actions.contains(&Action::Close("c".into())),
                "{}: a follower's planned stop is the leader's to close",
                c.what
            );
        }

        // Bounded: the oldest are forgotten first.
        let mut t = T::follower();
        let many: Vec<Alert> = (0..=RECENT_MAX as u64)
            .map(|i| alert(&format!("a{i}"), Down, i))
            .collect();
        t.decided(&many);
        t.on(Event::BecameLeader { took_over: true });
        assert_eq!(t.l.unrecorded(), RECENT_MAX);
        assert_eq!(
            t.on(Event::Flush),
            vec![Action::Record(vec![many[1].clone()])]
        );
    }

    /// H: a leader that finds recorded notices some channel has not taken (after a takeover or a
    /// restart) sends them to that channel only, in the order they were decided across agents,
    /// and a notice is never queued twice on a channel (J: per channel name).
    #[test]
    fn pending_notices_are_requeued_in_the_order_decided() {
        // Decided: d down (0), b down (1), c down (2), d recovered (3), b recovered (4),
        // a down (5), c recovered (6), a recovered (7).
        let d = record(&[alert("d", Down, 0), alert("d", Recovered, 3)], &[]);
        let b = record(
            &[alert("b", Down, 1), alert("b", Recovered, 4)],
            &[(0, "webhook"), (0, "dingtalk")],
        );
        let c = record(&[alert("c", Down, 2), alert("c", Recovered, 6)], &[]);
        let a = record(
            &[alert("a", Down, 5), alert("a", Recovered, 7)],
            &[(0, "dingtalk"), (1, "dingtalk")],
        );
        let loaded = records(vec![a, b, c, d]);
        let mut t = T::leader();
        let all = vec![
            ("d".to_string(), Down),
            ("c".to_string(), Down),
            ("d".to_string(), Recovered),
            ("b".to_string(), Recovered),
            ("a".to_string(), Down),
            ("c".to_string(), Recovered),
            ("a".to_string(), Recovered),
        ];
        let mut dingtalk = all.clone();
        dingtalk.retain(|(agent, _)| agent != "a");
        assert_eq!(
            delivered(&t.on(Event::RecordsLoaded(loaded.clone()))),
            vec![
                (To::Channel("webhook".into()), all),
                (To::Channel("dingtalk".into()), dingtalk),
            ]
        );
        assert_eq!(
            t.requeued(Event::RecordsLoaded(loaded.clone())),
            vec![],
            "queued already: not again"
        );
        // The webhook took d's down: noted later; until then it is not queued again, while the
        // DingTalk robot, still holding it, is not asked again either.
        t.on(Event::Receipt {
            channel: "webhook".into(),
            keys: vec![key("d", 0)],
            tickets: vec![],
        });
        assert_eq!(t.requeued(Event::RecordsLoaded(loaded.clone())), vec![]);
        // Once noted, a record that still shows it pending (an older listing) is sent again.
        t.on(Event::Flush);
        t.on(Event::Noted {
            results: vec![Ok(())],
            now: t.now,
        });
        assert_eq!(
            delivered(&t.on(Event::RecordsLoaded(loaded))),
            vec![(To::Channel("webhook".into()), vec![("d".into(), Down)])]
        );
        // A follower never requeues.
        let mut f = T::follower();
        assert_eq!(
            f.on(Event::RecordsLoaded(records(vec![record(
                &[alert("x", Down, 0)],
                &[]
            )]))),
            vec![]
        );
    }

    /// A notice just recorded is queued on every channel: a listing before its receipts does not
    /// queue it again. K: an alert sent without a record (its record unreadable) is not queued.
    #[test]
    fn a_recorded_notice_is_never_queued_twice() {
        let (a, k) = (alert("a", Down, 0), alert("k", Down, 0));
        let mut t = T::taken_over(&[a.clone(), k.clone()]);
        t.on(Event::Flush);
        let sent = t.on(Event::Recorded {
            results: vec![Ok(Recorded::Deliver(Box::new(keyed(&a, 0))))],
            now: t.now,
        });
        assert_eq!(
            sent,
            vec![
                Action::Deliver {
                    to: To::All,
                    alerts: vec![keyed(&a, 0)]
                },
                Action::Record(vec![k.clone()])
            ]
        );
        // Unreadable record: sent as it is, unkeyed.
        let sent = t.on(Event::Recorded {
            results: vec![Ok(Recorded::Deliver(Box::new(k.clone())))],
            now: t.now,
        });
        assert_eq!(sent, deliver_all(vec![k]));
        let listed = records(vec![record(std::slice::from_ref(&a), &[])]);
        assert_eq!(t.requeued(Event::RecordsLoaded(listed.clone())), vec![]);

        // Handed over at once, then recorded: the same.
        let mut t = T::leader();
        t.decided(std::slice::from_ref(&a));
        let flush = t.on(Event::Flush);
        t.record_all(flush);
        assert_eq!(t.requeued(Event::RecordsLoaded(listed)), vec![]);
    }

    /// Every alert to the webhook at once; to DingTalk (the phone, here) only an outage still
    /// open ten minutes after its down, and then its recovered.
    fn escalating() -> T {
        let mut t = T::leader();
        let now = crate::routing::Route {
            agents: vec![],
            hosts: vec![],
            labels: vec![],
            events: Default::default(),
            channels: ["webhook".to_string()].into(),
            continue_: true,
            after: None,
        };
        let later = crate::routing::Route {
            channels: ["dingtalk".to_string()].into(),
            continue_: false,
            after: Some(ESCALATE),
            ..now.clone()
        };
        t.l.router = Router::new(vec![now, later], None);
        t
    }

    const ESCALATE: Duration = Duration::from_secs(600);

    fn lasting(a: &Alert, secs: u64) -> Alert {
        Alert {
            event: Recovered,
            at: a.at + Duration::from_secs(secs),
            outage: Some(Duration::from_secs(secs)),
            ..a.clone()
        }
    }

    fn escalate_at(actions: &[Action]) -> Option<SystemTime> {
        actions.iter().rev().find_map(|a| match a {
            Action::EscalateAt(at) => Some(*at),
            _ => None,
        })
    }

    fn noted(actions: &[Action]) -> Vec<(NoticeKey, String)> {
        actions
            .iter()
            .flat_map(|a| match a {
                Action::NoteDone(w) => w.clone(),
                _ => vec![],
            })
            .collect()
    }

    /// An outage still open when its escalation falls due: the down goes to the phone then,
    /// not before, and the receipt notes it in the record as any delivery.
    #[test]
    fn an_open_outage_is_escalated_when_due() {
        let a = alert("a", Down, 0);
        let mut t = escalating();
        let handed = t.decided(std::slice::from_ref(&a));
        assert_eq!(
            delivered(&handed),
            vec![(To::All, vec![("a".into(), Down)])]
        );
        let Some(Action::Deliver { alerts, .. }) = handed.first() else {
            panic!("handed over: {handed:?}")
        };
        assert!(
            alerts[0].not_for.contains("dingtalk"),
            "not to the phone yet"
        );
        assert_eq!(escalate_at(&handed), Some(a.at + ESCALATE));
        // Its record keeps it pending for the phone.
        let flush = t.on(Event::Flush);
        assert_eq!(flush, vec![Action::Record(vec![ticketed(&a, 0)])]);
        t.record_all(flush);
        let early = t.on(Event::Due {
            wall: a.at + ESCALATE - Duration::from_secs(1),
        });
        assert_eq!(early, vec![Action::EscalateAt(a.at + ESCALATE)], "not yet");
        let due = t.on(Event::Due {
            wall: a.at + ESCALATE,
        });
        assert_eq!(
            due,
            vec![Action::Deliver {
                to: To::Channel("dingtalk".into()),
                alerts: vec![ticketed(&a, 0)],
            }]
        );
        assert_eq!(t.l.escalations(), 0);
        t.on(Event::Receipt {
            channel: "dingtalk".into(),
            keys: vec![],
            tickets: vec![Ticket(0)],
        });
        assert_eq!(
            noted(&t.on(Event::Flush)),
            vec![(key("a", 0), "dingtalk".to_string())]
        );
        // The recovered follows it to the phone.
        let back = t.decided(&[lasting(&a, 900)]);
        assert_eq!(
            delivered(&back),
            vec![(To::All, vec![("a".into(), Recovered)])]
        );
        let Some(Action::Deliver { alerts, .. }) = back.first() else {
            panic!("handed over: {back:?}")
        };
        assert!(alerts[0].not_for.is_empty(), "{:?}", alerts[0].not_for);
    }

    /// An outage that ended sooner never reaches the phone, down or recovered, and counts as
    /// done there (the record can be pruned); a planned stop ends the wait the same way.
    #[test]
    fn an_outage_that_ended_sooner_is_never_escalated() {
        let (a, p) = (alert("a", Down, 0), alert("p", Down, 0));
        let mut t = escalating();
        t.decided(&[a.clone(), p.clone()]);
        let flush = t.on(Event::Flush);
        t.record_all(flush);
        let back = t.decided(&[lasting(&a, 30)]);
        assert_eq!(
            delivered(&back),
            vec![(To::All, vec![("a".into(), Recovered)])]
        );
        let Some(Action::Deliver { alerts, .. }) = back.first() else {
            panic!("handed over: {back:?}")
        };
        assert!(alerts[0].not_for.contains("dingtalk"));
        t.on(Event::PlannedStop("p".into()));
        assert_eq!(t.l.escalations(), 0);
        let flush = t.on(Event::Flush);
        let all = t.record_all(flush);
        let mut noted = noted(&all);
        noted.sort();
        assert_eq!(
            noted,
            vec![
                (key("a", 0), "dingtalk".to_string()),
                (key("p", 0), "dingtalk".to_string())
            ],
            "skipped, so done: {all:?}"
        );
        assert_eq!(
            delivered(&t.on(Event::Due {
                wall: a.at + ESCALATE
            })),
            vec![]
        );
    }

    /// Due, but its turn not yet taken when the recovered comes: the down goes to the phone
    /// first, then the recovered.
    #[test]
    fn a_recovered_after_the_due_time_releases_the_down_first() {
        let a = alert("a", Down, 0);
        let mut t = escalating();
        t.decided(std::slice::from_ref(&a));
        let back = t.decided(&[lasting(&a, 700)]);
        assert_eq!(
            delivered(&back),
            vec![
                (To::Channel("dingtalk".into()), vec![("a".into(), Down)]),
                (To::All, vec![("a".into(), Recovered)]),
            ]
        );
    }

    /// A new leader holds again, from the records, what the old one held: due at the same
    /// time; sends now what fell due in between, and marks done what ended too soon.
    #[test]
    fn escalations_survive_a_failover() {
        let (open, long, short) = (
            alert("open", Down, 0),
            alert("long", Down, 0),
            alert("short", Down, 0),
        );
        let loaded = records(vec![
            record(std::slice::from_ref(&open), &[(0, "webhook")]),
            record(
                &[long.clone(), lasting(&long, 700)],
                &[(0, "webhook"), (1, "webhook")],
            ),
            record(
                &[short.clone(), lasting(&short, 30)],
                &[(0, "webhook"), (1, "webhook"), (1, "dingtalk")],
            ),
        ]);
        let mut t = escalating();
        let listed = t.requeued(Event::RecordsLoaded(loaded.clone()));
        assert_eq!(
            delivered(&listed),
            vec![(
                To::Channel("dingtalk".into()),
                vec![("long".into(), Down), ("long".into(), Recovered)]
            )],
            "the long outage's, at once"
        );
        assert_eq!(escalate_at(&listed), Some(open.at + ESCALATE));
        assert_eq!(
            noted(&t.on(Event::Flush)),
            vec![(key("short", 0), "dingtalk".to_string())]
        );
        assert_eq!(
            t.on(Event::Due {
                wall: open.at + ESCALATE
            }),
            vec![Action::Deliver {
                to: To::Channel("dingtalk".into()),
                alerts: vec![keyed(&open, 0)],
            }]
        );
        // One that stepped down and leads again holds it again from the records.
        let mut t = escalating();
        t.requeued(Event::RecordsLoaded(loaded.clone()));
        t.on(Event::SteppedDown);
        assert_eq!(
            t.on(Event::Due {
                wall: open.at + ESCALATE
            }),
            vec![],
            "a follower escalates nothing"
        );
        t.on(Event::BecameLeader { took_over: true });
        let again = t.requeued(Event::RecordsLoaded(loaded));
        assert_eq!(escalate_at(&again), Some(open.at + ESCALATE));
        assert_eq!(
            delivered(&t.on(Event::Due {
                wall: open.at + ESCALATE
            })),
            vec![(To::Channel("dingtalk".into()), vec![("open".into(), Down)])]
        );
    }

    /// Not recorded yet when this watcher stepped down: held on, and escalated when due once it
    /// leads again and has recorded it.
    #[test]
    fn an_escalation_not_recorded_yet_is_held_across_a_step_down() {
        let a = alert("a", Down, 0);
        let mut t = escalating();
        t.decided(std::slice::from_ref(&a));
        t.on(Event::SteppedDown);
        t.on(Event::BecameLeader { took_over: false });
        assert_eq!(t.l.escalations(), 1);
        let flush = t.on(Event::Flush);
        t.record_all(flush);
        assert_eq!(
            delivered(&t.on(Event::Due {
                wall: a.at + ESCALATE
            })),
            vec![(To::Channel("dingtalk".into()), vec![("a".into(), Down)])]
        );
    }

    /// Alertmanager is not kept firing for an escalation not yet due.
    #[test]
    fn an_escalation_not_yet_due_is_not_kept_alive() {
        let a = alert("a", Down, 0);
        let mut t = escalating();
        let listed = t.on(Event::RecordsLoaded(records(vec![record(
            std::slice::from_ref(&a),
            &[(0, "webhook")],
        )])));
        let Some(Action::StillOpen(open)) = listed.first() else {
            panic!("{listed:?}")
        };
        assert!(open[0].not_for.contains("dingtalk"));
    }

    /// A planned stop closes the agent's record, after its notices are recorded and receipts
    /// noted; a failed close is tried again.
    #[test]
    fn a_planned_stop_closes_the_record() {
        let mut t = T::leader();
        t.on(Event::PlannedStop("p".into()));
        t.on(Event::PlannedStop("q".into()));
        assert_eq!(t.on(Event::Flush), vec![Action::Close("p".into())]);
        assert_eq!(
            t.on(Event::Closed {
                result: Err(Failure::Transient),
                now: t.now
            }),
            vec![Action::RetryAt(t.now + FLUSH_RETRY)]
        );
        assert_eq!(t.on(Event::Flush), vec![Action::Close("p".into())]);
        assert_eq!(
            t.on(Event::Closed {
                result: Ok(()),
                now: t.now
            }),
            vec![Action::Close("q".into())]
        );
        assert_eq!(
            t.on(Event::Closed {
                result: Ok(()),
                now: t.now
            }),
            vec![]
        );
        assert_eq!(t.on(Event::Flush), vec![], "nothing left");
    }

    /// A watcher that steps down keeps what it had not recorded, and records it once it leads
    /// again, without sending again what it had handed over; while it follows, its new alerts are
    /// memory only, recorded first then sent when it leads.
    #[test]
    fn stepping_down_keeps_the_unrecorded() {
        let (a, b) = (alert("a", Down, 0), alert("b", Down, 1));
        let mut t = T::leader();
        t.decided(std::slice::from_ref(&a));
        t.on(Event::SteppedDown);
        assert_eq!(t.decided(std::slice::from_ref(&b)), vec![]);
        assert_eq!(t.on(Event::Flush), vec![]);
        t.on(Event::BecameLeader { took_over: false });
        let flush = t.on(Event::Flush);
        assert_eq!(
            flush,
            vec![Action::Record(vec![ticketed(&a, 0), b.clone()])]
        );
        assert_eq!(
            delivered(&t.record_all(flush)),
            vec![(To::All, vec![("b".into(), Down)])],
            "only what it had not handed over"
        );
    }

    /// A follower whose session ended and that leads from the start of its next one (the old
    /// leader died meanwhile) records and sends what it remembered, as on a takeover: the old
    /// leader may never have recorded it.
    #[test]
    fn leading_from_a_new_session_records_what_was_remembered() {
        let a = alert("a", Down, 0);
        let mut t = T::follower();
        t.decided(std::slice::from_ref(&a));
        t.on(Event::SteppedDown);
        t.on(Event::BecameLeader { took_over: false });
        let flush = t.on(Event::Flush);
        assert_eq!(flush, vec![Action::Record(vec![a.clone()])]);
        assert_eq!(
            delivered(&t.record_all(flush)),
            vec![(To::All, vec![("a".into(), Down)])]
        );
    }

    /// Routes: an alert is handed to the channels its routes name, its record counts it done for
    /// the others, and only the channels it went to are waited for.
    #[test]
    fn routed_alerts_wait_only_for_their_channels() {
        use crate::routing::{Pattern, Route};
        let router = Router::new(
            vec![Route {
                agents: vec![Pattern::new("web-*").expect("glob")],
                hosts: vec![],
                labels: vec![],
                events: Default::default(),
                channels: ["dingtalk".to_string()].into(),
                continue_: false,
                after: None,
            }],
            None,
        );
        let mut t = T::follower();
        t.l = Ledger::new(CH.iter().map(|c| c.to_string()).collect(), router);
        t.on(Event::BecameLeader { took_over: false });
        let (web, db) = (alert("web-1", Down, 0), alert("db-1", Down, 0));
        let sent = t.decided(&[web.clone(), db.clone()]);
        let Some(Action::Deliver { alerts, .. }) = sent.first() else {
            panic!("{sent:?}");
        };
        let not_for: Vec<Vec<&str>> = alerts
            .iter()
            .map(|a| a.not_for.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(
            not_for,
            vec![vec!["webhook"], vec![]],
            "web-1 to DingTalk only; db-1 everywhere"
        );
        let flush = t.on(Event::Flush);
        t.record_all(flush);
        for (ch, ticket) in [("dingtalk", 0), ("webhook", 1), ("dingtalk", 1)] {
            t.on(Event::Receipt {
                channel: ch.into(),
                keys: vec![],
                tickets: vec![Ticket(ticket)],
            });
        }
        assert!(
            t.l.handed.is_empty(),
            "every channel each went to is done: forgotten"
        );
        assert_eq!(t.l.unnoted(), 3);
        // The record of web-1's down is done for the webhook from the start.
        let stored = record(&alerts[..1], &[]);
        assert!(stored.notices[0].done.contains("webhook"));
        assert_eq!(stored.pending_for("webhook").count(), 0);
    }

    /// A leader that finds open outages it did not announce tells the channels they are still
    /// open (Alertmanager would otherwise let them expire: a false "resolved"); a planned stop
    /// tells them the outage ended without a notice. A follower does neither.
    #[test]
    fn open_outages_are_kept_and_planned_stops_resolve_them() {
        let down = alert("a", Down, 0);
        let open = record(
            std::slice::from_ref(&down),
            &[(0, "webhook"), (0, "dingtalk")],
        );
        let closed = record(&[alert("b", Down, 0), alert("b", Recovered, 5)], &[]);
        let loaded = records(vec![open, closed]);
        let mut t = T::leader();
        let actions = t.on(Event::RecordsLoaded(loaded.clone()));
        assert_eq!(
            actions[0],
            Action::StillOpen(vec![down.clone()]),
            "{actions:?}"
        );
        assert_eq!(
            t.on(Event::PlannedStop("a".into())),
            vec![Action::EndedQuietly("a".into())]
        );
        let mut f = T::follower();
        assert_eq!(f.on(Event::RecordsLoaded(loaded)), vec![]);
        assert_eq!(f.on(Event::PlannedStop("a".into())), vec![]);
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    /// The down of `agent` handed to each channel, one delivery each (as a silence lets it go).
    fn to_each(agent: &str) -> Vec<(To, Vec<(String, AlertKind)>)> {
        ["dingtalk", "webhook"]
            .into_iter()
            .map(|ch| (To::Channel(ch.into()), vec![(agent.to_owned(), Down)]))
            .collect()
    }

    /// Silences, each `(id, agent glob, from, to)` in the seconds of [`alert`].
    fn silences(list: &[(&str, &str, u64, u64)]) -> Silences {
        Silences::new(
            list.iter()
                .map(|(id, agent, from, to)| {
                    crate::silence::Silence::new(
                        id,
                        common::silence::SilenceRecord {
                            v: 1,
                            agent: agent.to_string(),
                            host: None,
                            labels: Default::default(),
                            starts_at: common::time::format(at(*from)),
                            ends_at: common::time::format(at(*to)),
                            created_by: "ops@bastion".into(),
                            comment: "kernel upgrade".into(),
                        },
                    )
                    .expect("a valid silence")
                })
                .collect(),
        )
    }

    fn silenced(t: &mut T, list: &[(&str, &str, u64, u64)], wall: u64) -> Vec<Action> {
        t.on(Event::Silences {
            silences: silences(list),
            wall: at(wall),
        })
    }

    /// Every receipt noted, window after window (each answered as written), from `actions` on.
    fn note_all(t: &mut T, mut actions: Vec<Action>) -> Vec<(NoticeKey, String)> {
        let mut all = Vec::new();
        for _ in 0..100 {
            actions = t.record_all(actions);
            let window = noted(&actions);
            if window.is_empty() {
                if actions.iter().any(|a| matches!(a, Action::RetryAt(_))) {
                    actions = t.on(Event::Flush);
                    continue;
                }
                break;
            }
            all.extend(window.clone());
            actions = t.on(Event::Noted {
                results: window.iter().map(|_| Ok(())).collect(),
                now: t.now,
            });
        }
        all.sort();
        all
    }

    /// Receipts for these tickets from every channel, then every note that follows.
    fn receipted(t: &mut T, tickets: &[u64]) -> Vec<(NoticeKey, String)> {
        for ch in CH {
            t.on(Event::Receipt {
                channel: ch.into(),
                keys: vec![],
                tickets: tickets.iter().map(|n| Ticket(*n)).collect(),
            });
        }
        let flush = t.on(Event::Flush);
        note_all(t, flush)
    }

    /// A silenced agent's down is recorded, not sent; still down when the silence ends, the down
    /// goes to every channel then, and its receipts are noted as any delivery's.
    #[test]
    fn a_silenced_down_is_recorded_and_sent_when_the_silence_ends_if_still_down() {
        let mut t = T::leader();
        assert_eq!(
            silenced(&mut t, &[("0000000a", "web7-*", 0, 3600)], 0),
            vec![]
        );
        let a = alert("web7-a1", Down, 10);
        let other = alert("db1-a1", Down, 10);
        let handed = t.decided(&[a.clone(), other.clone()]);
        assert_eq!(
            delivered(&handed),
            vec![(To::All, vec![("db1-a1".into(), Down)])],
            "only the agent no silence covers"
        );
        assert_eq!(escalate_at(&handed), Some(at(3600)), "woken when it ends");
        assert_eq!(t.l.hushed(), 2, "one per channel");
        let flush = t.on(Event::Flush);
        assert_eq!(windows(&flush), vec![2], "both recorded: {flush:?}");
        t.record_all(flush);
        assert_eq!(
            t.on(Event::Due { wall: at(3599) }),
            vec![Action::EscalateAt(at(3600))]
        );
        let due = t.on(Event::Due { wall: at(3600) });
        assert_eq!(delivered(&due), to_each("web7-a1"));
        assert_eq!(t.l.hushed(), 0);
        let Some(Action::Deliver { alerts, .. }) = due.first() else {
            panic!("released: {due:?}")
        };
        assert_eq!(
            alerts[0].silenced,
            Some(crate::alert::SilencedBy {
                id: "0000000a".into(),
                comment: "kernel upgrade".into(),
                ended: at(3600),
            }),
            "it says why it comes late"
        );
        assert_eq!(
            receipted(&mut t, &[0]),
            vec![
                (key("web7-a1", 0), "dingtalk".to_string()),
                (key("web7-a1", 0), "webhook".to_string())
            ]
        );
    }

    /// An outage over within the silence sends nothing, before or after: its down and its
    /// recovered count as done everywhere, so the record can be pruned.
    #[test]
    fn an_outage_over_while_silenced_sends_neither_its_start_nor_its_end() {
        let mut t = T::leader();
        silenced(&mut t, &[("0000000a", "*", 0, 3600)], 0);
        let a = alert("a", Down, 10);
        assert_eq!(delivered(&t.decided(std::slice::from_ref(&a))), vec![]);
        let back = t.decided(&[lasting(&a, 100)]);
        assert_eq!(delivered(&back), vec![], "{back:?}");
        assert_eq!(t.l.hushed(), 0);
        let mut want = Vec::new();
        for seq in [0, 1] {
            for ch in ["dingtalk", "webhook"] {
                want.push((key("a", seq), ch.to_string()));
            }
        }
        let flush = t.on(Event::Flush);
        assert_eq!(note_all(&mut t, flush), want);
        assert_eq!(delivered(&t.on(Event::Due { wall: at(3600) })), vec![]);
    }

    /// A silence extended moves the time its notices wait for; one removed lets them go at once.
    /// A silence that follows another without a gap keeps them hushed.
    #[test]
    fn silences_changed_retime_what_they_hush() {
        let mut t = T::leader();
        silenced(&mut t, &[("0000000a", "a", 0, 3600)], 0);
        let a = alert("a", Down, 10);
        t.decided(std::slice::from_ref(&a));
        let extended = silenced(
            &mut t,
            &[("0000000a", "a", 0, 3600), ("0000000b", "a", 3500, 7200)],
            20,
        );
        assert_eq!(extended, vec![Action::EscalateAt(at(7200))]);
        let lifted = silenced(&mut t, &[], 30);
        let ended: Vec<_> = lifted
            .iter()
            .filter_map(|a| match a {
                Action::Deliver { alerts, .. } => {
                    alerts[0].silenced.as_ref().map(|s| (s.id.clone(), s.ended))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            ended,
            [
                ("0000000b".to_owned(), at(30)),
                ("0000000b".to_owned(), at(30))
            ],
            "removed: ended when removed, named by the silence it last waited for"
        );
        assert_eq!(delivered(&lifted), to_each("a"));
        assert_eq!(t.l.hushed(), 0);
    }

    /// A silence set during an outage already told: its `failed` is hushed, and its end is sent
    /// (the page a person has is closed); the hushed `failed` is dropped with it.
    #[test]
    fn the_end_of_an_outage_told_before_the_silence_is_sent() {
        let mut t = T::leader();
        let a = alert("a", Down, 10);
        assert_eq!(delivered(&t.decided(std::slice::from_ref(&a))).len(), 1);
        silenced(&mut t, &[("0000000a", "a", 50, 3600)], 50);
        let failed = Alert {
            event: AlertKind::Failed,
            at: at(60),
            ..a.clone()
        };
        assert_eq!(delivered(&t.decided(&[failed])), vec![]);
        assert_eq!(t.l.hushed(), 2);
        let back = t.decided(&[lasting(&a, 100)]);
        assert_eq!(
            delivered(&back),
            vec![(To::All, vec![("a".into(), Recovered)])]
        );
        let Some(Action::Deliver { alerts, .. }) = back.first() else {
            panic!("handed over: {back:?}")
        };
        assert!(alerts[0].not_for.is_empty(), "{:?}", alerts[0].not_for);
        assert_eq!(t.l.hushed(), 0);
    }

    /// A new leader hushes again what the records keep pending for an agent silenced now, and
    /// never sends an outage that was over within the silence (the old leader died before noting
    /// it); an agent no silence covers gets its pending notices as before.
    #[test]
    fn a_new_leader_hushes_from_the_records() {
        let open = alert("web7-a1", Down, 10);
        let over = alert("web7-a2", Down, 10);
        let loud = alert("db1-a1", Down, 10);
        let loaded = records(vec![
            record(std::slice::from_ref(&open), &[]),
            record(&[over.clone(), lasting(&over, 100)], &[]),
            record(std::slice::from_ref(&loud), &[]),
        ]);
        let mut t = T::leader();
        silenced(&mut t, &[("0000000a", "web7-*", 0, 3600)], 200);
        let requeued = t.requeued(Event::RecordsLoaded(loaded));
        assert_eq!(
            delivered(&requeued),
            vec![
                (To::Channel("webhook".into()), vec![("db1-a1".into(), Down)]),
                (
                    To::Channel("dingtalk".into()),
                    vec![("db1-a1".into(), Down)]
                ),
            ],
            "{requeued:?}"
        );
        assert_eq!(escalate_at(&requeued), Some(at(3600)));
        assert_eq!(t.l.hushed(), 2);
        let flush = t.on(Event::Flush);
        let mut want = Vec::new();
        for seq in [0, 1] {
            for ch in ["dingtalk", "webhook"] {
                want.push((key("web7-a2", seq), ch.to_string()));
            }
        }
        assert_eq!(
            note_all(&mut t, flush),
            want,
            "over within the silence: done"
        );
        let due = t.on(Event::Due { wall: at(3600) });
        assert_eq!(delivered(&due), to_each("web7-a1"));
    }

    /// An escalation route's channel waits for the silence to end and then for the rest of its
    /// wait; one whose wait ran out within the silence gets the down when the silence ends.
    #[test]
    fn a_silence_holds_an_escalation_too() {
        let mut t = escalating();
        silenced(
            &mut t,
            &[("0000000a", "a", 0, 300), ("0000000b", "b", 0, 900)],
            0,
        );
        let (a, b) = (alert("a", Down, 0), alert("b", Down, 0));
        assert_eq!(delivered(&t.decided(&[a.clone(), b.clone()])), vec![]);
        let at_300 = t.on(Event::Due { wall: at(300) });
        assert_eq!(
            delivered(&at_300),
            vec![(To::Channel("webhook".into()), vec![("a".into(), Down)])],
            "the phone waits the rest of its 10 minutes"
        );
        let at_600 = t.on(Event::Due {
            wall: a.at + ESCALATE,
        });
        assert_eq!(
            delivered(&at_600),
            vec![(To::Channel("dingtalk".into()), vec![("a".into(), Down)])]
        );
        let at_900 = t.on(Event::Due { wall: at(900) });
        let mut got = delivered(&at_900);
        // The phone's wait is over too: it gets it at the next turn, at once.
        got.extend(delivered(&t.on(Event::Due { wall: at(900) })));
        assert_eq!(
            got,
            vec![
                (To::Channel("webhook".into()), vec![("b".into(), Down)]),
                (To::Channel("dingtalk".into()), vec![("b".into(), Down)]),
            ]
        );
    }

    /// A follower knows the silences (for its own view) and hushes nothing: it sends nothing.
    #[test]
    fn a_follower_takes_silences_and_does_nothing() {
        let mut f = T::follower();
        assert_eq!(silenced(&mut f, &[("0000000a", "*", 0, 60)], 0), vec![]);
        assert_eq!(f.on(Event::Due { wall: at(60) }), vec![]);
    }

    /// A degradation is silenced as an outage is: neither it nor its end is sent when it clears
    /// within the silence.
    #[test]
    fn a_degradation_over_while_silenced_is_never_sent() {
        let mut t = T::leader();
        silenced(&mut t, &[("0000000a", "*", 0, 3600)], 0);
        let degraded = Alert {
            event: AlertKind::Degraded,
            ..alert("a", Down, 10)
        };
        let healthy = Alert {
            event: AlertKind::Healthy,
            at: at(100),
            ..degraded.clone()
        };
        assert_eq!(delivered(&t.decided(&[degraded])), vec![]);
        assert_eq!(t.l.hushed(), 2);
        assert_eq!(delivered(&t.decided(&[healthy])), vec![]);
        assert_eq!(t.l.hushed(), 0);
    }

    /// Hushed, not recorded yet when this watcher stepped down: still hushed once it leads again
    /// and has recorded it, and sent when the silence ends.
    #[test]
    fn a_hushed_notice_not_recorded_yet_stays_hushed_across_a_step_down() {
        let mut t = T::leader();
        silenced(&mut t, &[("0000000a", "*", 0, 3600)], 0);
        let a = alert("a", Down, 10);
        t.decided(std::slice::from_ref(&a));
        t.on(Event::SteppedDown);
        assert_eq!(t.l.hushed(), 2);
        t.on(Event::BecameLeader { took_over: false });
        let flush = t.on(Event::Flush);
        let recorded = t.record_all(flush);
        assert_eq!(delivered(&recorded), vec![], "{recorded:?}");
        assert_eq!(t.l.hushed(), 2);
        assert_eq!(
            delivered(&t.on(Event::Due { wall: at(3600) })),
            to_each("a")
        );
    }

    /// Let go when its silence ended, before its record was written: once recorded, it is not
    /// hushed again (nor sent twice).
    #[test]
    fn a_notice_let_go_before_its_record_is_not_hushed_again() {
        let mut t = T::leader();
        silenced(&mut t, &[("0000000a", "a", 0, 3600)], 0);
        let a = alert("a", Down, 3500);
        assert_eq!(delivered(&t.decided(std::slice::from_ref(&a))), vec![]);
        let due = t.on(Event::Due { wall: at(3600) });
        assert_eq!(
            delivered(&due).len(),
            2,
            "sent at the silence's end: {due:?}"
        );
        let flush = t.on(Event::Flush);
        t.record_all(flush);
        assert_eq!(t.l.hushed(), 0);
        assert_eq!(delivered(&t.on(Event::Due { wall: at(3601) })), vec![]);
    }

    /// A new leader judges a pending notice as the leader that decided it did, at its time: an
    /// outage over before the silence began is sent (the old leader would have sent it).
    #[test]
    fn a_new_leader_sends_an_outage_that_was_over_before_the_silence() {
        let down = alert("a", Down, 10);
        let loaded = records(vec![record(&[down.clone(), lasting(&down, 30)], &[])]);
        let mut t = T::leader();
        silenced(&mut t, &[("0000000a", "a", 50, 3600)], 60);
        let requeued = t.requeued(Event::RecordsLoaded(loaded));
        let both = vec![("a".to_owned(), Down), ("a".to_owned(), Recovered)];
        assert_eq!(
            delivered(&requeued),
            vec![
                (To::Channel("webhook".into()), both.clone()),
                (To::Channel("dingtalk".into()), both),
            ],
            "{requeued:?}"
        );
    }

    /// The same for an open outage whose down came before the silence: not hushed by a new
    /// leader, so its recovered goes everywhere too.
    #[test]
    fn a_recovered_whose_down_came_before_the_silence_goes_everywhere_after_a_failover() {
        let down = alert("a", Down, 10);
        let loaded = records(vec![record(
            std::slice::from_ref(&down),
            &[(0, "dingtalk")],
        )]);
        let mut t = T::leader();
        silenced(&mut t, &[("0000000a", "a", 50, 3600)], 60);
        let requeued = t.requeued(Event::RecordsLoaded(loaded));
        assert_eq!(
            delivered(&requeued),
            vec![(To::Channel("webhook".into()), vec![("a".into(), Down)])]
        );
        let back = t.decided(&[lasting(&down, 100)]);
        let Some(Action::Deliver { alerts, .. }) = back.first() else {
            panic!("the recovered is sent: {back:?}")
        };
        assert!(
            alerts[0].not_for.is_empty(),
            "kept from {:?}",
            alerts[0].not_for
        );
    }

    /// Hushed, not recorded yet, this watcher steps down and leads again: the outage ending
    /// within the silence sends nothing, before or after the record is written.
    #[test]
    fn an_outage_over_within_the_silence_across_a_step_down_sends_nothing() {
        let mut t = T::leader();
        silenced(&mut t, &[("0000000a", "*", 0, 3600)], 0);
        let a = alert("a", Down, 10);
        assert_eq!(delivered(&t.decided(std::slice::from_ref(&a))), vec![]);
        t.on(Event::SteppedDown);
        t.on(Event::BecameLeader { took_over: false });
        silenced(&mut t, &[("0000000a", "*", 0, 3600)], 50);
        t.requeued(Event::RecordsLoaded(BTreeMap::new()));
        let back = t.decided(&[lasting(&a, 100)]);
        let flush = t.on(Event::Flush);
        let recorded = t.record_all(flush);
        let due = t.on(Event::Due { wall: at(3600) });
        assert_eq!(
            (delivered(&back), delivered(&recorded), delivered(&due)),
            (vec![], vec![], vec![]),
            "nothing is sent"
        );
    }

    /// The escalation twin: held for the phone, not recorded yet, a step-down, then the outage
    /// ends before the wait: the phone never rings.
    #[test]
    fn an_escalation_not_recorded_across_a_step_down_ends_with_its_outage() {
        let mut t = escalating();
        let a = alert("a", Down, 0);
        t.decided(std::slice::from_ref(&a));
        t.on(Event::SteppedDown);
        t.on(Event::BecameLeader { took_over: false });
        t.requeued(Event::RecordsLoaded(BTreeMap::new()));
        t.decided(&[lasting(&a, 100)]);
        let flush = t.on(Event::Flush);
        t.record_all(flush);
        let due = t.on(Event::Due {
            wall: a.at + ESCALATE,
        });
        assert_eq!(delivered(&due), vec![], "escalated after its outage ended");
    }

    /// A down recorded behind a takeover's backlog, its agent stopped as planned meanwhile, within
    /// a silence: never sent (its outage ended within the silence).
    #[test]
    fn a_silenced_down_waiting_its_turn_then_a_planned_stop_is_never_sent() {
        let old = alert("z", Down, 0);
        let mut t = T::taken_over(std::slice::from_ref(&old));
        silenced(&mut t, &[("0000000a", "a", 0, 3600)], 0);
        let a = alert("a", Down, 10);
        assert_eq!(
            delivered(&t.decided(std::slice::from_ref(&a))),
            vec![],
            "behind z's"
        );
        t.on(Event::PlannedStop("a".into()));
        let flush = t.on(Event::Flush);
        let all = t.record_all(flush);
        assert_eq!(
            delivered(&all),
            vec![(To::All, vec![("z".into(), Down)])],
            "z's, recorded first; a's never: {all:?}"
        );
        assert_eq!(t.l.hushed(), 0);
        assert_eq!(delivered(&t.on(Event::Due { wall: at(3600) })), vec![]);
    }
}
