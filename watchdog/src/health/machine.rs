//! The health verdict, free of I/O: readings of Flume's metrics (or their absence) and the time
//! come in as [`Event`]s; out come "publish this summary", "withdraw it" and "restart the agent".
//!
//! Two rules shape it, both for ZooKeeper's sake (thousands of agents, every watcher sees every
//! write): a condition must be seen on `polls` readings in a row before it counts, so one odd
//! reading changes nothing; and a summary is written only when it changes materially — the
//! verdict or its set of reasons at once (that is what alerts), a channel's fill that moved 10
//! points or more from what was written only when that lasts `polls` readings and at most once
//! per `min_gap` (doubled for each such write in the last hour, up to 16 times), a drain rate
//! never on its own. A degraded verdict is held until its reasons
//! have been gone for `hold`, doubled for each time it cleared in the last hour (up to 16 times):
//! an agent that flaps is kept degraded rather than written healthy and degraded again and again.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use common::records::{
    ChannelFigures, HealthReason, HealthRecord, RestartCause, SinkFigures, Verdict,
    HEALTH_RECORD_VERSION,
};

use super::metrics::Snapshot;

/// How far a channel's fill must move from the written figure to be worth a write.
pub const FILL_STEP_PCT: f64 = 10.0;

/// The thresholds, from flags.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// A channel fuller than this (per cent) is full.
    pub fill_threshold: f64,
    /// Readings in a row that a condition must last to count (a full channel, a flat sink, an
    /// endpoint that does not answer or answers garbage).
    pub polls: u32,
    /// A degraded verdict stays until its reasons have been gone this long.
    pub hold: Duration,
    /// Least time between two writes of changed figures alone.
    pub min_gap: Duration,
    /// Restart the agent when the endpoint has not answered this long.
    pub restart_on_hang: Option<Duration>,
    /// Until its first answer, an agent's endpoint may be silent this long without counting as
    /// not answering: Flume starts its HTTP server only after the JVM and the configuration are
    /// up, which takes seconds.
    pub startup_grace: Duration,
    /// Which channel each sink drains (from the agent's properties file); may be empty.
    pub wiring: BTreeMap<String, String>,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            fill_threshold: 80.0,
            polls: 2,
            hold: Duration::from_secs(60),
            min_gap: Duration::from_secs(60),
            restart_on_hang: None,
            startup_grace: Duration::from_secs(30),
            wiring: BTreeMap::new(),
        }
    }
}

/// What one poll of the endpoint brought.
#[derive(Clone, Debug, PartialEq)]
pub enum Reading {
    Metrics(Snapshot),
    /// Refused, reset, or no reply within the poll's timeout.
    Unanswered,
    /// A reply that is not Flume's metrics (a bad status, not JSON, wrong shapes).
    Garbled {
        error: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A new agent process runs: judge it afresh.
    AgentStarted { now: Instant },
    /// The agent process is gone (exited, or being restarted): nothing to judge.
    AgentGone,
    Poll {
        now: Instant,
        wall: SystemTime,
        reading: Reading,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Write this summary to the health node (create it if need be).
    Publish(HealthRecord),
    /// Delete the health node: no agent runs to be judged.
    Withdraw,
    /// Restart the agent through the supervisor's ordinary path, for this cause.
    Restart(RestartCause),
}

/// Identifies a reason across readings, whatever its figures.
type ReasonKey = (&'static str, String);

fn key(r: &HealthReason) -> ReasonKey {
    match r {
        HealthReason::ChannelFull { channel, .. } => ("channel_full", channel.clone()),
        HealthReason::SinkStalled { sink, .. } => ("sink_stalled", sink.clone()),
        HealthReason::ChannelUnhealthy { channel } => ("channel_unhealthy", channel.clone()),
        HealthReason::ComponentStopped { component, name } => {
            ("component_stopped", format!("{component}.{name}"))
        }
        HealthReason::MetricsUnanswered { .. } => ("metrics_unanswered", String::new()),
        HealthReason::MetricsGarbled { .. } => ("metrics_garbled", String::new()),
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// No agent runs.
    Idle,
    Watching(Box<Watch>),
}

/// What is known of the running agent.
#[derive(Clone, Debug, PartialEq)]
pub struct Watch {
    started: Instant,
    last_answer: Option<Instant>,
    /// Good readings so far.
    answers: u32,
    /// The last good reading, and when.
    prev: Option<(Instant, Snapshot)>,
    /// Per channel: readings in a row above the threshold.
    full: BTreeMap<String, u32>,
    /// Per sink: readings in a row without a drained event while events wait, and since when.
    flat: BTreeMap<String, (u32, Instant)>,
    /// Failed readings in a row.
    failures: u32,
    /// Reasons found, with the last time each was seen; kept for `hold` after that.
    held: BTreeMap<ReasonKey, (HealthReason, Instant)>,
    /// What was written last, and when.
    published: Option<(HealthRecord, Instant)>,
    /// Readings in a row whose figures differ materially from what was written.
    drift: u32,
    restart_asked: bool,
    /// When the verdict was written healthy after degraded, in the last hour.
    clears: VecDeque<Instant>,
    /// When changed figures alone were written, in the last hour.
    figure_writes: VecDeque<Instant>,
}

/// `base` doubled for each time in `times` within the last hour (dropping older ones), at most
/// [`FLAP_DOUBLINGS`] times.
fn lengthened(base: Duration, times: &mut VecDeque<Instant>, now: Instant) -> Duration {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) > FLAP_WINDOW)
    {
        times.pop_front();
    }
    let doublings = (times.len() as u32).min(FLAP_DOUBLINGS);
    base.saturating_mul(1 << doublings)
}

/// How far back clears count to lengthen the hold.
const FLAP_WINDOW: Duration = Duration::from_secs(3600);
/// The hold is doubled at most this many times.
const FLAP_DOUBLINGS: u32 = 4;

pub struct Health {
    rules: Rules,
    state: State,
}

impl Health {
    pub fn new(rules: Rules) -> Health {
        Health {
            rules,
            state: State::Idle,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn on_event(&mut self, event: Event) -> Vec<Action> {
        match (&mut self.state, event) {
            (_, Event::AgentStarted { now }) => {
                self.state = State::Watching(Box::new(Watch {
                    started: now,
                    last_answer: None,
                    answers: 0,
                    prev: None,
                    full: BTreeMap::new(),
                    flat: BTreeMap::new(),
                    failures: 0,
                    held: BTreeMap::new(),
                    published: None,
                    drift: 0,
                    restart_asked: false,
                    clears: VecDeque::new(),
                    figure_writes: VecDeque::new(),
                }));
                Vec::new()
            }
            (State::Watching(w), Event::AgentGone) => {
                let acts = if w.published.is_some() {
                    vec![Action::Withdraw]
                } else {
                    Vec::new()
                };
                self.state = State::Idle;
                acts
            }
            (State::Idle, _) => Vec::new(),
            (State::Watching(w), Event::Poll { now, wall, reading }) => {
                w.poll(&self.rules, now, wall, reading)
            }
        }
    }
}

impl Watch {
    fn poll(
        &mut self,
        rules: &Rules,
        now: Instant,
        wall: SystemTime,
        reading: Reading,
    ) -> Vec<Action> {
        let mut acts = Vec::new();
        let mut present = Vec::new();
        let mut figures = None;
        match reading {
            Reading::Metrics(snap) => {
                self.answers = self.answers.saturating_add(1);
                self.failures = 0;
                self.last_answer = Some(now);
                present = self.judge(rules, now, &snap);
                figures = Some(self.figures(now, &snap));
                self.prev = Some((now, snap));
            }
            Reading::Unanswered => {
                let silent =
                    now.saturating_duration_since(self.last_answer.unwrap_or(self.started));
                let starting = self.last_answer.is_none() && silent < rules.startup_grace;
                if !starting {
                    self.failures += 1;
                }
                if self.failures >= rules.polls {
                    present.push(HealthReason::MetricsUnanswered { ms: millis(silent) });
                }
                if let Some(limit) = rules.restart_on_hang {
                    if silent >= limit && !self.restart_asked {
                        self.restart_asked = true;
                        acts.push(Action::Restart(RestartCause::MetricsHung {
                            ms: millis(silent),
                        }));
                    }
                }
            }
            Reading::Garbled { error } => {
                self.failures += 1;
                if self.failures >= rules.polls {
                    present.push(HealthReason::MetricsGarbled { error });
                }
            }
        }

        let hold = lengthened(rules.hold, &mut self.clears, now);
        let seen: Vec<ReasonKey> = present.iter().map(key).collect();
        for r in present {
            self.held.insert(key(&r), (r, now));
        }
        self.held
            .retain(|k, (_, last)| seen.contains(k) || now.saturating_duration_since(*last) < hold);

        let reasons: Vec<HealthReason> = self.held.values().map(|(r, _)| r.clone()).collect();
        let (channels, sinks) = figures.unwrap_or_default();
        let record = HealthRecord {
            v: HEALTH_RECORD_VERSION,
            at: common::time::format(wall),
            verdict: if reasons.is_empty() {
                Verdict::Healthy
            } else {
                Verdict::Degraded
            },
            reasons,
            channels,
            sinks,
        };
        // Nothing to say yet (fewer than two answers, so no drain rate, and nothing wrong so far):
        // the first summary waits for the second answer, so that it holds the rates.
        let unknown = self.answers < 2 && record.verdict == Verdict::Healthy;
        if !unknown && self.worth_writing(rules, now, &record) {
            let was = self.published.as_ref().map(|(r, _)| r.verdict);
            if was == Some(Verdict::Degraded) && record.verdict == Verdict::Healthy {
                self.clears.push_back(now);
            }
            self.published = Some((record.clone(), now));
            self.drift = 0;
            acts.push(Action::Publish(record));
        }
        acts
    }

    /// The conditions a good reading shows (counting readings in a row).
    fn judge(&mut self, rules: &Rules, now: Instant, snap: &Snapshot) -> Vec<HealthReason> {
        let mut found = Vec::new();
        self.full.retain(|name, _| snap.channels.contains_key(name));
        self.flat.retain(|name, _| snap.sinks.contains_key(name));
        for (name, ch) in &snap.channels {
            let streak = self.full.entry(name.clone()).or_default();
            *streak = if ch.fill_pct > rules.fill_threshold {
                *streak + 1
            } else {
                0
            };
            if *streak >= rules.polls {
                found.push(HealthReason::ChannelFull {
                    channel: name.clone(),
                    pct: ch.fill_pct.floor().clamp(0.0, 100.0) as u32,
                    size: ch.size,
                    capacity: ch.capacity,
                });
            }
            if ch.unhealthy {
                found.push(HealthReason::ChannelUnhealthy {
                    channel: name.clone(),
                });
            }
            if ch.stopped {
                found.push(stopped("channel", name));
            }
        }
        for (name, sink) in &snap.sinks {
            if sink.stopped {
                found.push(stopped("sink", name));
            }
            // Events wait for this sink: in its own channel when the wiring is known, else in
            // any channel.
            let waiting = match rules.wiring.get(name) {
                Some(ch) if snap.channels.contains_key(ch) => {
                    (snap.channels[ch].size > 0).then(|| Some(ch.clone()))
                }
                _ => snap.channels.values().any(|c| c.size > 0).then_some(None),
            };
            let before = self
                .prev
                .as_ref()
                .and_then(|(at, p)| Some((*at, p.sinks.get(name)?.drained)));
            let (streak, since) = self.flat.entry(name.clone()).or_insert((0, now));
            match (before, &waiting) {
                (Some((at, drained)), Some(_)) if drained == sink.drained => {
                    if *streak == 0 {
                        *since = at;
                    }
                    *streak += 1;
                }
                _ => *streak = 0,
            }
            if *streak >= rules.polls {
                found.push(HealthReason::SinkStalled {
                    sink: name.clone(),
                    channel: waiting.flatten(),
                    ms: millis(now.saturating_duration_since(*since)),
                });
            }
        }
        for (name, source) in &snap.sources {
            if source.stopped {
                found.push(stopped("source", name));
            }
        }
        found
    }

    fn figures(
        &self,
        now: Instant,
        snap: &Snapshot,
    ) -> (
        BTreeMap<String, ChannelFigures>,
        BTreeMap<String, SinkFigures>,
    ) {
        let channels = snap
            .channels
            .iter()
            .map(|(name, c)| {
                let f = ChannelFigures {
                    fill: c.fill_pct.floor().clamp(0.0, 100.0) as u32,
                    size: c.size,
                    cap: c.capacity,
                };
                (name.clone(), f)
            })
            .collect();
        let sinks = snap
            .sinks
            .iter()
            .map(|(name, s)| {
                let rate = self.prev.as_ref().and_then(|(at, p)| {
                    let before = p.sinks.get(name)?.drained;
                    let secs = now.saturating_duration_since(*at).as_secs_f64();
                    // A counter that went back is a restarted component: no rate this time.
                    let drained = s.drained.checked_sub(before)?;
                    (secs > 0.0).then(|| (drained as f64 / secs * 10.0).round() / 10.0)
                });
                (name.clone(), SinkFigures { rate })
            })
            .collect();
        (channels, sinks)
    }

    /// The material-change rule (see the module's comment).
    fn worth_writing(&mut self, rules: &Rules, now: Instant, record: &HealthRecord) -> bool {
        let Some((written, at)) = &self.published else {
            return true;
        };
        let keys = |r: &HealthRecord| r.reasons.iter().map(key).collect::<Vec<_>>();
        if written.verdict != record.verdict || keys(written) != keys(record) {
            return true;
        }
        // A failed reading has no figures: it says nothing about them.
        if record.channels.is_empty() && record.sinks.is_empty() {
            return false;
        }
        let moved = written.channels.len() != record.channels.len()
            || written.sinks.keys().ne(record.sinks.keys())
            || record.channels.iter().any(|(name, c)| {
                written
                    .channels
                    .get(name)
                    .is_none_or(|w| (f64::from(c.fill) - f64::from(w.fill)).abs() >= FILL_STEP_PCT)
            });
        if !moved {
            self.drift = 0;
            return false;
        }
        self.drift += 1;
        let gap = lengthened(rules.min_gap, &mut self.figure_writes, now);
        let due = self.drift >= rules.polls && now.saturating_duration_since(*at) >= gap;
        if due {
            self.figure_writes.push_back(now);
        }
        due
    }
}

fn stopped(component: &str, name: &str) -> HealthReason {
    HealthReason::ComponentStopped {
        component: component.to_owned(),
        name: name.to_owned(),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
