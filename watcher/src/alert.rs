//! What the watcher tells people: one alert per outage transition.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use common::records::HealthRecord;
use common::ExitRecord;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// The agent stopped being live without a planned stop.
    Down,
    /// The agent has been live continuously for `--recovered-after` after an outage.
    Recovered,
    /// The watchdog gave up restarting the agent.
    Failed,
    /// The watcher itself has had no working ZooKeeper session for a while: it cannot see outages.
    Blind,
    /// The watcher sees again after having been blind.
    Sighted,
    /// `flume-watcher test-alert`: a clearly marked message that nothing is wrong, to check a
    /// channel end to end. Never recorded.
    Test,
    /// The agent runs but does not do its job (its watchdog's reading of Flume's metrics: a full
    /// channel, a stalled sink, a hung JVM…). Once per degradation.
    Degraded,
    /// A degradation cleared.
    Healthy,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Down => "down",
            AlertKind::Recovered => "recovered",
            AlertKind::Failed => "failed",
            AlertKind::Blind => "blind",
            AlertKind::Sighted => "sighted",
            AlertKind::Test => "test",
            AlertKind::Degraded => "degraded",
            AlertKind::Healthy => "healthy",
        }
    }

    /// Whether it is about an agent's health (its own outage record, beside the crash one).
    pub fn is_health(self) -> bool {
        matches!(self, AlertKind::Degraded | AlertKind::Healthy)
    }
}

/// What a health notice's record key adds to the agent id: `~` is never part of an id, so the
/// key never names an agent, and a degradation's record never mixes with a crash's.
pub const HEALTH_RECORD_SUFFIX: &str = "~health";

/// One notice about one agent, as sent: it serialises to the generic webhook's JSON item. The
/// outage records store notices in a form of their own (`record::StoredNotice`), so that what is
/// sent can change without changing what is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub event: AlertKind,
    /// The agent id (the node's name, even when its data is garbage).
    pub agent: String,
    pub host: Option<String>,
    /// Why: `exited with code 3`, `killed by SIGKILL`, `lost contact: …`, `recovered after …`.
    pub reason: String,
    /// When the transition happened, RFC 3339.
    #[serde(serialize_with = "rfc3339")]
    pub at: SystemTime,
    /// Restarts counted by the watchdog (from the identity node), when known.
    pub restarts: Option<u64>,
    /// Crashes the watcher saw during this outage (1 for a single crash).
    pub crashes: u32,
    /// For `recovered`: how long the outage lasted.
    #[serde(
        serialize_with = "seconds",
        skip_serializing_if = "Option::is_none",
        rename = "outage_seconds"
    )]
    pub outage: Option<Duration>,
    /// The exit that caused it, when the watchdog recorded one.
    pub last_exit: Option<ExitRecord>,
    /// The agent's labels (from its identity node), for routes and messages.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// For `degraded`: what its watchdog measured (the reasons with their figures, each
    /// channel's fill, each sink's drain rate), as the health node said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// The ZooKeeper transaction that made this transition visible (for a `down`, the creation of
    /// the liveness node that vanished; for a `recovered`, of the one that came back; for a
    /// `failed`, the identity write that said so), when known. Every watcher sees the same one,
    /// so the notice id built on it is the same whichever watcher sends the notice.
    #[serde(skip)]
    pub zxid: Option<i64>,
    /// Which outage record notice this is, once recorded: delivery receipts name it.
    #[serde(skip)]
    pub key: Option<NoticeKey>,
    /// Handed to the channels before its record was written: delivery receipts name this until
    /// the ledger knows the notice's key.
    #[serde(skip)]
    pub ticket: Option<Ticket>,
    /// The channels (by key) its routes do not send it to: its notice counts as done for them.
    #[serde(skip)]
    pub not_for: BTreeSet<String>,
    /// The silence that held this notice back until it ended (or was removed) with the outage
    /// still open: the message says why it comes late.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silenced: Option<SilencedBy>,
}

/// The silence a notice waited for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SilencedBy {
    pub id: String,
    pub comment: String,
    /// When it ended (its end, or its removal), RFC 3339.
    #[serde(serialize_with = "rfc3339")]
    pub ended: SystemTime,
}

/// What a watchdog measured of its agent's health, carried by a `degraded` notice.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Health(pub Box<HealthRecord>);

/// Drain rates are `f64`s, but never NaN (the watchdog writes finite rates, and a reader that
/// finds anything else keeps no rate), so equality is an equivalence.
impl Eq for Health {}

impl std::ops::Deref for Health {
    type Target = HealthRecord;
    fn deref(&self) -> &HealthRecord {
        &self.0
    }
}

/// An alert handed to the channels while its outage record is being written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// A notice in an outage record: the agent's record and the notice's number in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NoticeKey {
    pub agent: String,
    pub seq: u32,
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&common::time::format(*t))
}

fn seconds<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64((d.as_millis() as f64) / 1000.0),
        None => s.serialize_none(),
    }
}

impl Alert {
    /// A notice with what every notice has; the rest (host, restarts, crashes, the exit, labels,
    /// health…) unknown or none, for the caller to fill in with `..Alert::new(…)`.
    pub fn new(
        event: AlertKind,
        agent: impl Into<String>,
        reason: impl Into<String>,
        at: SystemTime,
    ) -> Alert {
        Alert {
            event,
            agent: agent.into(),
            host: None,
            reason: reason.into(),
            at,
            restarts: None,
            crashes: 0,
            outage: None,
            last_exit: None,
            labels: BTreeMap::new(),
            health: None,
            zxid: None,
            key: None,
            ticket: None,
            not_for: BTreeSet::new(),
            silenced: None,
        }
    }

    /// The name of its outage record (`<root>/outages/<key>`): the agent id for crashes, the id
    /// and [`HEALTH_RECORD_SUFFIX`] for degradations, which open and close on their own.
    pub fn record_key(&self) -> String {
        if self.event.is_health() {
            format!("{}{HEALTH_RECORD_SUFFIX}", self.agent)
        } else {
            self.agent.clone()
        }
    }

    /// The notice's identity for receivers: agent, event and the ZooKeeper transaction of the
    /// transition (its time when that is unknown), all kept in the outage record. A new leader
    /// that sends a notice again (its predecessor died after the receiver took it but before
    /// noting the delivery, or before recording it) sends the same id, so a receiver that drops
    /// repeats of an id sees each notice once.
    pub fn notice_id(&self) -> String {
        match self.zxid {
            Some(zxid) => format!("{}/{}/0x{zxid:x}", self.agent, self.event.as_str()),
            None => format!(
                "{}/{}/{}",
                self.agent,
                self.event.as_str(),
                common::time::format(self.at)
            ),
        }
    }

    /// One line for logs, the console channel and chat message bodies.
    pub fn one_line(&self) -> String {
        let host = self.host.as_deref().unwrap_or("unknown host");
        let mut line = format!(
            "[{}] {} on {}: {}",
            self.event.as_str().to_uppercase(),
            self.agent,
            host,
            self.reason
        );
        if let Some(r) = self.restarts {
            line.push_str(&format!("; restarts {r}"));
        }
        if self.crashes > 1 {
            line.push_str(&format!("; {} crashes in this outage", self.crashes));
        }
        line.push_str(&format!(" (at {})", common::time::format(self.at)));
        if let Some(s) = &self.silenced {
            line.push_str(&format!(
                "; held back by silence {} until it ended at {}",
                s.id,
                common::time::format(s.ended)
            ));
        }
        line
    }
}
