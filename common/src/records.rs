//! The JSON held by identity and liveness nodes.
//!
//! Writers produce the full records below. Readers must survive anything a human or a foreign
//! tool may have put into a node (not JSON, wrong types, empty, 1 MB), so parsing is field by
//! field: what can be used is used, the rest is reported once as a [`Garbled`] note.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the watchdog is doing with its agent, as written to the identity node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// Registered, the agent is being started.
    Starting,
    /// The agent runs.
    Running,
    /// The agent exited unasked; it will be restarted after a backoff.
    Backoff,
    /// A graceful stop is under way.
    Stopping,
    /// The watchdog gave up after too many restarts; nothing will restart the agent.
    Failed,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Starting => "starting",
            AgentState::Running => "running",
            AgentState::Backoff => "backoff",
            AgentState::Stopping => "stopping",
            AgentState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<AgentState> {
        serde_json::from_value(Value::String(s.to_owned())).ok()
    }
}

/// How the agent's process last ended: an exit code or a signal, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    pub code: Option<i32>,
    /// Signal name such as `SIGKILL`.
    pub signal: Option<String>,
    /// RFC 3339 timestamp.
    pub at: String,
    /// Set when the agent could not be started at all (code 127): why, in words such as
    /// `cannot start /opt/flume/bin/flume-ng: No such file or directory`. A wrong `FLUME_HOME`
    /// looks like this, and the operator needs the path and the reason, not "code 127".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ExitRecord {
    /// Words for an alert: `exited with code 3`, `killed by SIGKILL`, or why it could not start.
    pub fn describe(&self) -> String {
        if let Some(error) = &self.error {
            return error.clone();
        }
        match (&self.signal, self.code) {
            (Some(sig), _) => format!("killed by {sig}"),
            (None, Some(code)) => format!("exited with code {code}"),
            (None, None) => "exited".to_owned(),
        }
    }

    pub fn at_time(&self) -> Option<SystemTime> {
        crate::time::parse(&self.at)
    }
}

/// Data of the PERSISTENT identity node `<root>/agents/<id>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRecord {
    pub id: String,
    pub host: String,
    pub command: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub registered_at: String,
    pub watchdog_version: String,
    pub restarts: u64,
    pub last_exit: Option<ExitRecord>,
    pub state: AgentState,
    /// Set while a watchdog whose session ended re-registers its *still running* agent: the czxid
    /// of the liveness node it replaces. Its vanishing is a handover, not a death.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reregistering: Option<i64>,
    /// Set by a watchdog that found the liveness node of an earlier watchdog of this id that is
    /// gone (killed, its agent killed with it) and is about to delete it: the watcher then says
    /// what happened instead of "lost contact".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<Replaced>,
    /// Set when the watchdog itself ended the run that `last_exit` describes (a hung agent), so
    /// the watcher says "restarted: metrics endpoint hung for 1m" rather than "killed by
    /// SIGTERM". Written with that exit and cleared by the next one, so it never explains a later
    /// crash. A field of its own (not in [`ExitRecord`]) because readers build exit records field
    /// by field; older readers skip it and still say how the process ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_for: Option<RestartCause>,
}

/// Why the watchdog restarted an agent that had not exited by itself.
///
/// Encoded `{"cause":"metrics_hung","ms":60000}`. Readers take a cause they do not know as no
/// cause at all (a later watchdog may add some): the exit then reads as it always did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum RestartCause {
    /// Flume's metrics endpoint had not answered for `ms` milliseconds while the process lived
    /// (a JVM stuck in GC or deadlocked answers nothing, yet never exits).
    MetricsHung { ms: u64 },
}

impl RestartCause {
    /// Words for an alert, in English: `restarted: metrics endpoint hung for 1m`.
    pub fn describe(&self) -> String {
        match self {
            RestartCause::MetricsHung { ms } => format!(
                "restarted: metrics endpoint hung for {}",
                crate::time::human(std::time::Duration::from_millis(*ms))
            ),
        }
    }

    /// Lenient: `None` for anything but a cause this version knows.
    fn read(v: &Value) -> Option<RestartCause> {
        serde_json::from_value(v.clone()).ok()
    }
}

/// A stale liveness node that a new watchdog replaces: which node, and whose it was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replaced {
    /// The replaced node's creation transaction: names that one node, never a later one.
    pub czxid: i64,
    /// The watchdog that had made it, as the node said.
    pub watchdog_pid: Option<u32>,
}

/// Data of the EPHEMERAL liveness node `<root>/live/<id>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LivenessRecord {
    pub host: String,
    pub watchdog_pid: u32,
    pub agent_pid: Option<u32>,
    pub since: String,
}

/// Data of the EPHEMERAL health node `<root>/health/<id>`: how the running agent is doing inside,
/// as Flume's own metrics tell it (issue 11: a hung or stalled agent is found, not only a dead
/// one).
///
/// A node of its own beside the liveness node, not more fields in it: the liveness node's
/// creation and deletion are the crash alert, and its data is compared byte for byte when a
/// watchdog re-registers, so it must not change while the agent runs; watchers that do not know
/// health nodes ignore a folder they never list. Ephemeral, so a dead watchdog leaves no stale
/// verdict behind. Written only when the verdict or a figure changes materially (see
/// `watchdog::health`): a steady agent writes it once.
///
/// Compact on purpose (thousands of agents, every watcher sees every write):
///
/// ```json
/// {"v":1,"at":"2026-11-21T01:02:03.456Z","verdict":"degraded",
///  "reasons":[{"kind":"channel_full","channel":"ch-1","pct":94,"size":940000,"capacity":1000000}],
///  "channels":{"ch-1":{"fill":94,"size":940000,"cap":1000000}},"sinks":{"k1":{"rate":0.0}}}
/// ```
///
/// `reasons` is absent when healthy; `channels` and `sinks` are absent when the metrics could not
/// be read. Readers should use [`HealthRecord::parse`], which keeps what it can.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthRecord {
    /// Format version: 1.
    pub v: u32,
    /// When the metrics were read (RFC 3339 UTC, milliseconds).
    pub at: String,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<HealthReason>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channels: BTreeMap<String, ChannelFigures>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sinks: BTreeMap<String, SinkFigures>,
}

pub const HEALTH_RECORD_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Healthy,
    Degraded,
}

/// One channel's fill as measured at [`HealthRecord::at`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelFigures {
    /// Whole per cent full (0–100), rounded down.
    pub fill: u32,
    /// Events in the channel.
    pub size: u64,
    /// Events the channel holds at most.
    pub cap: u64,
}

/// One sink's drain rate over the poll interval that ended at [`HealthRecord::at`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SinkFigures {
    /// Events per second drained (taken successfully from its channel), to one decimal; absent
    /// when there is no interval to measure over (a sink new since the last reading, or whose
    /// counter went back because it restarted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
}

/// Why an agent is degraded, with the figures a message needs. Tagged by `kind`; the watcher
/// renders each in its languages ([`HealthReason::describe`] is the English form).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HealthReason {
    /// Fuller than the threshold (default 80 %) on two readings in a row: sinks are not keeping
    /// up, and sources will soon get `ChannelFullException`.
    ChannelFull {
        channel: String,
        pct: u32,
        size: u64,
        capacity: u64,
    },
    /// The sink took nothing from its channel for `ms` (two readings in a row) while the channel
    /// held events: a stuck sink (a dead Kafka, a wedged HDFS writer).
    SinkStalled {
        sink: String,
        /// The channel it drains and that holds events, when the agent's configuration says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
        ms: u64,
    },
    /// A file channel that says `Unhealthy` = 1: its replay failed, it accepts nothing.
    ChannelUnhealthy { channel: String },
    /// A component with a `StopTime` other than 0: it stopped while the agent runs.
    ComponentStopped {
        /// `source`, `channel` or `sink`.
        component: String,
        name: String,
    },
    /// The metrics endpoint gave no answer (refused, or no reply within the poll's timeout) for
    /// `ms` while the process lived: a hung JVM, or monitoring that never started.
    MetricsUnanswered { ms: u64 },
    /// The metrics endpoint answered something that is not Flume's metrics; `error` says what
    /// (shortened).
    MetricsGarbled { error: String },
}

impl HealthReason {
    /// English words for logs and alerts: `channel ch-1 94 % full (940,000 of 1,000,000)`.
    pub fn describe(&self) -> String {
        let dur = |ms: &u64| crate::time::human(std::time::Duration::from_millis(*ms));
        match self {
            HealthReason::ChannelFull {
                channel,
                pct,
                size,
                capacity,
            } => format!(
                "channel {channel} {pct} % full ({} of {})",
                thousands(*size),
                thousands(*capacity)
            ),
            HealthReason::SinkStalled { sink, channel, ms } => match channel {
                Some(ch) => format!(
                    "sink {sink} drained 0 events in {} while channel {ch} holds events",
                    dur(ms)
                ),
                None => format!("sink {sink} drained 0 events in {}", dur(ms)),
            },
            HealthReason::ChannelUnhealthy { channel } => {
                format!("channel {channel} is unhealthy (its replay failed)")
            }
            HealthReason::ComponentStopped { component, name } => {
                format!("{component} {name} has stopped")
            }
            HealthReason::MetricsUnanswered { ms } => {
                format!("metrics endpoint not answering for {}", dur(ms))
            }
            HealthReason::MetricsGarbled { error } => {
                format!("metrics endpoint answers garbage: {error}")
            }
        }
    }
}

/// `940000` as `940,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl HealthRecord {
    /// Reads a health node leniently: a reason of a kind this version does not know is left out
    /// and counted in the [`Garbled`] note rather than failing the whole record, and so is a
    /// channel or sink whose figures are unusable. Fails only without a usable verdict.
    pub fn parse(data: &[u8]) -> (Option<HealthRecord>, Option<Garbled>) {
        let map = match object(data) {
            Ok(m) => m,
            Err(g) => return (None, Some(g)),
        };
        let mut bad = Vec::new();
        let verdict = map
            .get("verdict")
            .and_then(|v| serde_json::from_value::<Verdict>(v.clone()).ok());
        let Some(verdict) = verdict else {
            return (None, Some(Garbled::BadFields("verdict".into())));
        };
        let at = map
            .get("at")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let v = map
            .get("v")
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(HEALTH_RECORD_VERSION);
        let mut reasons = Vec::new();
        for r in map
            .get("reasons")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match serde_json::from_value(r.clone()) {
                Ok(r) => reasons.push(r),
                Err(_) => bad.push("reasons"),
            }
        }
        fn figures<T: serde::de::DeserializeOwned>(
            map: &serde_json::Map<String, Value>,
            key: &'static str,
            bad: &mut Vec<&'static str>,
        ) -> BTreeMap<String, T> {
            let mut out = BTreeMap::new();
            for (name, f) in map
                .get(key)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                match serde_json::from_value(f.clone()) {
                    Ok(f) => {
                        out.insert(name.clone(), f);
                    }
                    Err(_) => bad.push(key),
                }
            }
            out
        }
        let channels = figures(&map, "channels", &mut bad);
        let sinks = figures(&map, "sinks", &mut bad);
        bad.dedup();
        let garbled = (!bad.is_empty()).then(|| Garbled::BadFields(bad.join(", ")));
        (
            Some(HealthRecord {
                v,
                at,
                verdict,
                reasons,
                channels,
                sinks,
            }),
            garbled,
        )
    }
}

/// Why a node's data could not be used in full.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Garbled {
    #[error("node is empty")]
    Empty,
    #[error("node data is not JSON ({len} bytes): {error}")]
    NotJson { len: usize, error: String },
    #[error("node data is JSON but not an object")]
    NotObject,
    #[error("fields with unusable values: {0}")]
    BadFields(String),
}

/// An identity node as a reader sees it: every field optional, and only the fields readers use.
/// The watcher keeps one per agent, so the command line stays out; the labels are in (routes and
/// messages use them), usually a few short pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityView {
    pub host: Option<String>,
    /// The agent's labels; pairs whose value is not a string are left out.
    pub labels: BTreeMap<String, String>,
    pub restarts: Option<u64>,
    pub last_exit: Option<ExitRecord>,
    pub state: Option<AgentState>,
    pub reregistering: Option<i64>,
    pub replaced: Option<Replaced>,
    /// See [`IdentityRecord::restarted_for`]; a cause this version does not know reads as none.
    pub restarted_for: Option<RestartCause>,
}

/// A liveness node as a reader sees it: every field optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LivenessView {
    pub host: Option<String>,
    pub watchdog_pid: Option<u32>,
    pub agent_pid: Option<u32>,
    pub since: Option<String>,
}

/// The fields named `names` of a node's JSON object, each as a small [`Value`], the others
/// skipped unread: the command line and labels of an identity node cost no allocation, and a
/// listing of 100,000 nodes parses several times faster than into a whole [`Value`]. The result
/// is the map [`object`] would give, restricted to `names` (the last of duplicate keys wins, as
/// there). Anything but a well-formed object goes through [`object`], which says what is wrong.
fn fields(
    data: &[u8],
    names: &'static [&'static str],
) -> Result<serde_json::Map<String, Value>, Garbled> {
    let mut de = serde_json::Deserializer::from_slice(data);
    let read = serde::Deserializer::deserialize_map(&mut de, Wanted { names });
    // Trailing characters make it no JSON at all.
    match read.and_then(|raw| de.end().map(|()| raw)) {
        Ok(raw) => {
            let mut map = serde_json::Map::new();
            for (name, raw) in names.iter().zip(raw) {
                let Some(raw) = raw else { continue };
                // Valid JSON already: a failure here would be a serde_json bug; the slow path
                // then decides.
                match serde_json::from_str::<Value>(raw.get()) {
                    Ok(v) => {
                        map.insert((*name).to_owned(), v);
                    }
                    Err(_) => return object(data),
                }
            }
            Ok(map)
        }
        Err(_) => object(data),
    }
}

/// Reads a JSON object keeping the unparsed text of the fields named `names`, in their order.
struct Wanted {
    names: &'static [&'static str],
}

impl<'de> serde::de::Visitor<'de> for Wanted {
    type Value = Vec<Option<&'de serde_json::value::RawValue>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = vec![None; self.names.len()];
        while let Some(key) = map.next_key_seed(KeyIndex { names: self.names })? {
            match key {
                Some(i) => found[i] = Some(map.next_value()?),
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

/// A key of [`Wanted`]'s object, as its index in `names` (none: not wanted), without allocating
/// for it.
struct KeyIndex {
    names: &'static [&'static str],
}

impl<'de> serde::de::DeserializeSeed<'de> for KeyIndex {
    type Value = Option<usize>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeyIndex {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.names.iter().position(|n| *n == key))
    }
}

fn object(data: &[u8]) -> Result<serde_json::Map<String, Value>, Garbled> {
    if data.is_empty() {
        return Err(Garbled::Empty);
    }
    match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Garbled::NotObject),
        Err(e) => Err(Garbled::NotJson {
            len: data.len(),
            error: e.to_string(),
        }),
    }
}

/// Collects the names of fields present with a wrong type.
#[derive(Default)]
struct FieldReader {
    bad: Vec<&'static str>,
}

impl FieldReader {
    fn get<T>(
        &mut self,
        map: &serde_json::Map<String, Value>,
        key: &'static str,
        f: impl FnOnce(&Value) -> Option<T>,
    ) -> Option<T> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => {
                let got = f(v);
                if got.is_none() {
                    self.bad.push(key);
                }
                got
            }
        }
    }

    fn finish(self) -> Option<Garbled> {
        (!self.bad.is_empty()).then(|| Garbled::BadFields(self.bad.join(", ")))
    }
}

fn string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn pid(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

fn exit_record(v: &Value) -> Option<ExitRecord> {
    let m = v.as_object()?;
    let code = match m.get("code") {
        None | Some(Value::Null) => None,
        Some(c) => Some(i32::try_from(c.as_i64()?).ok()?),
    };
    let signal = match m.get("signal") {
        None | Some(Value::Null) => None,
        Some(s) => Some(s.as_str()?.to_owned()),
    };
    let at = m.get("at")?.as_str()?.to_owned();
    let error = match m.get("error") {
        None | Some(Value::Null) => None,
        Some(e) => Some(e.as_str()?.to_owned()),
    };
    Some(ExitRecord {
        code,
        signal,
        at,
        error,
    })
}

fn replaced(v: &Value) -> Option<Replaced> {
    let m = v.as_object()?;
    let czxid = m.get("czxid")?.as_i64()?;
    let watchdog_pid = match m.get("watchdog_pid") {
        None | Some(Value::Null) => None,
        Some(p) => Some(pid(p)?),
    };
    Some(Replaced {
        czxid,
        watchdog_pid,
    })
}

/// Labels as a map of strings; anything else is not labels.
fn labels(v: &Value) -> Option<BTreeMap<String, String>> {
    Some(
        v.as_object()?
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect(),
    )
}

impl IdentityView {
    /// Reads what can be used; the second value says what could not.
    pub fn parse(data: &[u8]) -> (IdentityView, Option<Garbled>) {
        const NAMES: &[&str] = &[
            "host",
            "restarts",
            "last_exit",
            "state",
            "reregistering",
            "replaced",
            "labels",
            "restarted_for",
        ];
        let map = match fields(data, NAMES) {
            Ok(m) => m,
            Err(g) => return (IdentityView::default(), Some(g)),
        };
        let mut r = FieldReader::default();
        let view = IdentityView {
            host: r.get(&map, "host", string),
            restarts: r.get(&map, "restarts", Value::as_u64),
            last_exit: r.get(&map, "last_exit", exit_record),
            state: r.get(&map, "state", |v| AgentState::parse(v.as_str()?)),
            reregistering: r.get(&map, "reregistering", Value::as_i64),
            replaced: r.get(&map, "replaced", replaced),
            labels: r.get(&map, "labels", labels).unwrap_or_default(),
            // Never "bad": an unknown cause is a later watchdog's, not garbage.
            restarted_for: map.get("restarted_for").and_then(RestartCause::read),
        };
        (view, r.finish())
    }
}

impl LivenessView {
    pub fn parse(data: &[u8]) -> (LivenessView, Option<Garbled>) {
        const NAMES: &[&str] = &["host", "watchdog_pid", "agent_pid", "since"];
        let map = match fields(data, NAMES) {
            Ok(m) => m,
            Err(g) => return (LivenessView::default(), Some(g)),
        };
        let mut r = FieldReader::default();
        let view = LivenessView {
            host: r.get(&map, "host", string),
            watchdog_pid: r.get(&map, "watchdog_pid", pid),
            agent_pid: r.get(&map, "agent_pid", pid),
            since: r.get(&map, "since", string),
        };
        (view, r.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> IdentityRecord {
        IdentityRecord {
            id: "h-a1".into(),
            host: "h".into(),
            command: vec!["flume-ng".into(), "agent".into(), "-n".into(), "a1".into()],
            labels: BTreeMap::from([("team".into(), "logs".into())]),
            registered_at: "2026-11-21T00:00:00.000Z".into(),
            watchdog_version: "0.1.0".into(),
            restarts: 2,
            last_exit: Some(ExitRecord {
                code: Some(3),
                signal: None,
                at: "2026-11-21T00:01:00.000Z".into(),
                error: None,
            }),
            state: AgentState::Running,
            reregistering: None,
            replaced: None,
            restarted_for: None,
        }
    }

    #[test]
    fn written_identity_reads_back_in_full() {
        let rec = identity();
        let (view, garbled) = IdentityView::parse(&serde_json::to_vec(&rec).unwrap());
        assert_eq!(garbled, None);
        assert_eq!(view.host.as_deref(), Some("h"));
        assert_eq!(view.restarts, Some(2));
        assert_eq!(view.last_exit, rec.last_exit);
        assert_eq!(view.state, Some(AgentState::Running));
        assert_eq!(view.reregistering, None);
        assert_eq!(view.replaced, None);

        // A watchdog taking over from a dead one, an agent that cannot start: both read back.
        let mut rec = identity();
        rec.replaced = Some(Replaced {
            czxid: 77,
            watchdog_pid: Some(31843),
        });
        rec.last_exit = Some(ExitRecord {
            code: Some(127),
            signal: None,
            at: "2026-11-21T00:01:00.000Z".into(),
            error: Some("cannot start /x/flume-ng: No such file or directory".into()),
        });
        let json = serde_json::to_string(&rec).unwrap();
        assert!(
            json.contains(r#""replaced":{"czxid":77,"watchdog_pid":31843}"#),
            "{json}"
        );
        let (view, garbled) = IdentityView::parse(json.as_bytes());
        assert_eq!(garbled, None);
        assert_eq!(view.replaced, rec.replaced);
        assert_eq!(view.last_exit, rec.last_exit);
        assert_eq!(
            view.last_exit.map(|e| e.describe()).as_deref(),
            Some("cannot start /x/flume-ng: No such file or directory")
        );
        // Written without them: no field at all, as older readers expect.
        let json = serde_json::to_string(&identity()).unwrap();
        assert!(
            !json.contains("replaced") && !json.contains("error"),
            "{json}"
        );
    }

    #[test]
    fn garbage_is_reported_not_fatal() {
        let huge = vec![b'x'; 1 << 20];
        type Case<'a> = (&'a [u8], fn(&Garbled) -> bool);
        let cases: Vec<Case> = vec![
            (b"", |g| matches!(g, Garbled::Empty)),
            (b"not json", |g| matches!(g, Garbled::NotJson { .. })),
            (b"[1,2]", |g| matches!(g, Garbled::NotObject)),
            (
                &huge,
                |g| matches!(g, Garbled::NotJson { len, .. } if *len == 1 << 20),
            ),
        ];
        for (data, want) in cases {
            let (view, g) = IdentityView::parse(data);
            assert_eq!(view, IdentityView::default());
            assert!(want(g.as_ref().expect("garbage must be reported")), "{g:?}");
            let (lview, lg) = LivenessView::parse(data);
            assert_eq!(lview, LivenessView::default());
            assert!(lg.is_some());
        }
    }

    #[test]
    fn wrong_types_keep_the_good_fields_and_unknown_fields_are_ignored() {
        let data = br#"{"host":"h","restarts":"many","state":"exploded","last_exit":{"code":"x"},"extra":{"a":1}}"#;
        let (view, g) = IdentityView::parse(data);
        assert_eq!(view.host.as_deref(), Some("h"));
        assert_eq!(view.restarts, None);
        assert_eq!(view.state, None);
        assert_eq!(view.last_exit, None);
        assert_eq!(
            g,
            Some(Garbled::BadFields("restarts, last_exit, state".into()))
        );

        let (lview, lg) =
            LivenessView::parse(br#"{"host":"h","watchdog_pid":-1,"agent_pid":42,"new":true}"#);
        assert_eq!(lview.agent_pid, Some(42));
        assert_eq!(lview.watchdog_pid, None);
        assert_eq!(lg, Some(Garbled::BadFields("watchdog_pid".into())));
    }

    #[test]
    fn the_quick_reading_finds_what_a_whole_parse_finds() {
        const NAMES: &[&str] = &["host", "restarts", "last_exit"];
        let cases: &[&[u8]] = &[
            br#"{"host":"h","restarts":1,"command":["a","b"],"labels":{"x":{"y":[1,{}]}}}"#,
            br#"{"host":"first","host":"second"}"#,
            br#"{"ho\u0073t":"escaped key","last_exit":{"code":3,"at":"t"}}"#,
            br#"{"host":"h\"quoted\"","restarts":null}"#,
            br#"  {"restarts":18446744073709551615}  "#,
            br#"{"host":"h"} trailing"#,
            br#"{"host":"h","#,
            br#"[1,2]"#,
            b"\"just a string\"",
            b"",
        ];
        for data in cases {
            let whole = object(data).map(|mut m| {
                m.retain(|k, _| NAMES.contains(&k.as_str()));
                m
            });
            let quick = fields(data, NAMES);
            assert_eq!(
                quick.as_ref().map_err(std::mem::discriminant),
                whole.as_ref().map_err(std::mem::discriminant),
                "{}",
                String::from_utf8_lossy(data)
            );
        }
    }

    #[test]
    fn exit_descriptions() {
        let at = "2026-11-21T00:00:00Z".to_owned();
        assert_eq!(
            ExitRecord {
                code: Some(3),
                signal: None,
                at: at.clone(),
                error: None,
            }
            .describe(),
            "exited with code 3"
        );
        assert_eq!(
            ExitRecord {
                code: None,
                signal: Some("SIGKILL".into()),
                at,
                error: None,
            }
            .describe(),
            "killed by SIGKILL"
        );
    }

    #[test]
    fn a_restart_cause_goes_with_its_exit_and_unknown_causes_read_as_none() {
        let mut rec = identity();
        rec.restarted_for = Some(RestartCause::MetricsHung { ms: 60_000 });
        let json = serde_json::to_string(&rec).unwrap();
        assert!(
            json.contains(r#""restarted_for":{"cause":"metrics_hung","ms":60000}"#),
            "{json}"
        );
        let (view, garbled) = IdentityView::parse(json.as_bytes());
        assert_eq!(garbled, None);
        assert_eq!(view.restarted_for, rec.restarted_for);
        assert_eq!(
            rec.restarted_for
                .as_ref()
                .map(RestartCause::describe)
                .as_deref(),
            Some("restarted: metrics endpoint hung for 1m")
        );
        let later = br#"{"host":"h","restarted_for":{"cause":"out_of_heap","ms":1}}"#;
        assert_eq!(
            IdentityView::parse(later),
            (
                IdentityView {
                    host: Some("h".into()),
                    ..Default::default()
                },
                None
            )
        );
        // Written without it: no field, as older readers expect.
        assert!(!serde_json::to_string(&identity())
            .unwrap()
            .contains("restarted_for"));
    }

    #[test]
    fn a_health_record_is_compact_reads_back_and_survives_later_kinds() {
        let rec = HealthRecord {
            v: HEALTH_RECORD_VERSION,
            at: "2026-11-21T01:02:03.456Z".into(),
            verdict: Verdict::Degraded,
            reasons: vec![HealthReason::ChannelFull {
                channel: "ch-1".into(),
                pct: 94,
                size: 940_000,
                capacity: 1_000_000,
            }],
            channels: BTreeMap::from([(
                "ch-1".into(),
                ChannelFigures {
                    fill: 94,
                    size: 940_000,
                    cap: 1_000_000,
                },
            )]),
            sinks: BTreeMap::from([("k1".into(), SinkFigures { rate: Some(0.0) })]),
        };
        let json = serde_json::to_string(&rec).unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"at":"2026-11-21T01:02:03.456Z","verdict":"degraded","reasons":[{"kind":"channel_full","channel":"ch-1","pct":94,"size":940000,"capacity":1000000}],"channels":{"ch-1":{"fill":94,"size":940000,"cap":1000000}},"sinks":{"k1":{"rate":0.0}}}"#
        );
        assert_eq!(
            HealthRecord::parse(json.as_bytes()),
            (Some(rec.clone()), None)
        );
        // A later watchdog's reason kind, a bad channel: the rest is kept, the problem said.
        let later = json
            .replace(
                r#""reasons":["#,
                r#""reasons":[{"kind":"gc_pauses","ms":9000},"#,
            )
            .replace(r#""channels":{"#, r#""channels":{"bad":{"fill":"x"},"#);
        let (read, garbled) = HealthRecord::parse(later.as_bytes());
        assert_eq!(read, Some(rec));
        assert_eq!(
            garbled,
            Some(Garbled::BadFields("reasons, channels".into()))
        );
        assert!(matches!(HealthRecord::parse(b"{}"), (None, Some(_))));
        assert!(matches!(
            HealthRecord::parse(b"nope"),
            (None, Some(Garbled::NotJson { .. }))
        ));
    }

    #[test]
    fn health_reasons_in_words() {
        let cases = [
            (
                HealthReason::ChannelFull {
                    channel: "ch-1".into(),
                    pct: 94,
                    size: 940_000,
                    capacity: 1_000_000,
                },
                "channel ch-1 94 % full (940,000 of 1,000,000)",
            ),
            (
                HealthReason::SinkStalled {
                    sink: "k1".into(),
                    channel: None,
                    ms: 20_000,
                },
                "sink k1 drained 0 events in 20s",
            ),
            (
                HealthReason::SinkStalled {
                    sink: "k1".into(),
                    channel: Some("c1".into()),
                    ms: 20_000,
                },
                "sink k1 drained 0 events in 20s while channel c1 holds events",
            ),
            (
                HealthReason::ChannelUnhealthy {
                    channel: "fc".into(),
                },
                "channel fc is unhealthy (its replay failed)",
            ),
            (
                HealthReason::ComponentStopped {
                    component: "sink".into(),
                    name: "k1".into(),
                },
                "sink k1 has stopped",
            ),
            (
                HealthReason::MetricsUnanswered { ms: 30_000 },
                "metrics endpoint not answering for 30s",
            ),
            (
                HealthReason::MetricsGarbled {
                    error: "JSON but not an object".into(),
                },
                "metrics endpoint answers garbage: JSON but not an object",
            ),
        ];
        for (reason, want) in cases {
            assert_eq!(reason.describe(), want);
        }
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }
}
