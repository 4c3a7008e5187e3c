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
}
