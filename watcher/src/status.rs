//! `flume-watcher status`: one row per agent, read straight from ZooKeeper.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use zookeeper_client as zk;

use common::config::ZkConfig;
use common::records::{HealthRecord, IdentityView, LivenessView, Verdict};
use common::{session, AgentId, AgentState, ExitRecord, Layout};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    pub id: String,
    pub host: Option<String>,
    /// up, down, stopped or failed.
    pub state: &'static str,
    pub since: Option<String>,
    pub restarts: Option<u64>,
    /// As stored in the identity node (`{code, signal, at}`), so scripts need not parse prose;
    /// the table turns it into words.
    pub last_exit: Option<ExitRecord>,
    /// The agent's labels from its identity node (empty when it has none or they are unusable).
    pub labels: BTreeMap<String, String>,
    /// What its watchdog last measured of Flume's health, when it measures (issue 11): a live
    /// agent whose verdict is degraded shows as `degraded`, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<RowHealth>,
    /// Ids of the silences in force that cover this agent (by its id, host and labels), as the
    /// watcher would hold its alerts back; absent when none does.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub silenced: Vec<String>,
}

/// An agent's health as its health node says, for people and scripts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RowHealth {
    /// `healthy` or `degraded`.
    pub verdict: &'static str,
    /// Why, in words: `channel c1 94 % full (940 of 1,000)`.
    pub reasons: Vec<String>,
    /// When it was measured (RFC 3339).
    pub at: String,
}

impl RowHealth {
    fn of(record: &HealthRecord) -> RowHealth {
        RowHealth {
            verdict: match record.verdict {
                Verdict::Healthy => "healthy",
                Verdict::Degraded => "degraded",
            },
            reasons: record.reasons.iter().map(|r| r.describe()).collect(),
            at: record.at.clone(),
        }
    }
}

impl Row {
    /// `exited with code 3 at …`, for people.
    pub fn last_exit_words(&self) -> Option<String> {
        self.last_exit
            .as_ref()
            .map(|e| format!("{} at {}", e.describe(), e.at))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("cannot reach ZooKeeper at {connect}: {source}")]
    Connect {
        connect: String,
        source: session::ConnectError,
    },
    /// ZooKeeper answered `NoAuth`: the nodes are not readable without the right credentials.
    #[error("not authorized to read {root}: give the watchdogs' credentials with --zk-auth USER:PASSWORD, --zk-auth-file PATH or FLUME_WATCHER_ZK_AUTH{}", .user.as_ref().map(|u| format!(" (user {u} was refused)")).unwrap_or_default())]
    NotAuthorized { root: String, user: Option<String> },
    /// The root is missing: usually a mistyped --root or a chroot in --zk that does not exist.
    /// Said plainly, because an empty table would look like "no agents" and hide the mistake.
    #[error("{root} does not exist at {connect}: no watchdog has registered there; check the chroot in --zk and --root")]
    NoRoot { root: String, connect: String },
    #[error("ZooKeeper refused a read: {0}")]
    Zk(#[from] zk::Error),
}

/// What one agent's identity node says, as read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub view: IdentityView,
    /// The node's mtime (milliseconds since the epoch).
    pub mtime: i64,
    /// `IdentityView` leaves labels out (the watcher keeps one view per agent); status reads them
    /// here.
    pub labels: BTreeMap<String, String>,
}

/// What one agent's nodes say, as read: the identity, and `(liveness, liveness ctime)`.
pub type Nodes = (Option<Identity>, Option<(LivenessView, i64)>);

/// The labels of an identity node's JSON, leniently: anything but an object of strings is
/// ignored, so a garbled node never fails status. The second value says what was left out.
pub fn labels(data: &[u8]) -> (BTreeMap<String, String>, Option<String>) {
    let Ok(serde_json::Value::Object(node)) = serde_json::from_slice::<serde_json::Value>(data)
    else {
        // IdentityView::parse reports that the node is not a JSON object.
        return (BTreeMap::new(), None);
    };
    match node.get("labels") {
        None | Some(serde_json::Value::Null) => (BTreeMap::new(), None),
        Some(serde_json::Value::Object(map)) => {
            let mut out = BTreeMap::new();
            let mut bad = Vec::new();
            for (k, v) in map {
                match v.as_str() {
                    Some(s) => {
                        out.insert(k.clone(), s.to_owned());
                    }
                    None => bad.push(k.as_str()),
                }
            }
            let note = (!bad.is_empty())
                .then(|| format!("labels that are not strings left out: {}", bad.join(", ")));
            (out, note)
        }
        Some(_) => (
            BTreeMap::new(),
            Some("labels is not an object; left out".to_owned()),
        ),
    }
}

/// The rows, decided from node contents alone.
pub fn rows(agents: &BTreeMap<String, Nodes>) -> Vec<Row> {
    agents
        .iter()
        .map(|(id, (identity, live))| {
            let host = identity
                .as_ref()
                .and_then(|i| i.view.host.clone())
                .or_else(|| live.as_ref().and_then(|(l, _)| l.host.clone()));
            let live_since = live.as_ref().map(|(l, ctime)| {
                l.since
                    .clone()
                    .unwrap_or_else(|| common::time::format(common::time::from_millis(*ctime)))
            });
            let exit = identity.as_ref().and_then(|i| i.view.last_exit.clone());
            let (state, since) = match (identity, live) {
                (Some(_), Some(_)) => ("up", live_since),
                (Some(Identity { view: i, mtime, .. }), None) => {
                    let since = exit
                        .as_ref()
                        .map(|e| e.at.clone())
                        .or_else(|| Some(common::time::format(common::time::from_millis(*mtime))));
                    (
                        if i.state == Some(AgentState::Failed) {
                            "failed"
                        } else {
                            "down"
                        },
                        since,
                    )
                }
                // The identity node goes first on a planned stop.
                (None, _) => ("stopped", live_since),
            };
            Row {
                id: id.clone(),
                host,
                state,
                since,
                restarts: identity.as_ref().and_then(|i| i.view.restarts),
                last_exit: exit,
                labels: identity
                    .as_ref()
                    .map(|i| i.labels.clone())
                    .unwrap_or_default(),
                health: None,
                silenced: Vec::new(),
            }
        })
        .collect()
}

/// Everything `status` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The leading watcher as it registered itself (host, pid, since), if any watcher runs.
    pub leader: Option<serde_json::Value>,
    /// How many watchers take part in the election.
    pub watchers: usize,
    pub agents: Vec<Row>,
    /// The silences in force when read, as `silence list --json` gives them.
    pub silences: Vec<crate::silencing::Listed>,
    /// One line per node left out or read only in part, and why: said on stderr, never silent.
    #[serde(skip)]
    pub notes: Vec<String>,
}

pub async fn read(zk_cfg: &ZkConfig, layout: &Layout) -> Result<Status, StatusError> {
    let client = session::connect_now(zk_cfg)
        .await
        .map_err(|source| StatusError::Connect {
            connect: zk_cfg.connect.to_string(),
            source,
        })?;
    let result = read_with(&client, layout, &zk_cfg.connect.to_string()).await;
    session::close(client, Duration::from_secs(2)).await;
    match result {
        Err(StatusError::Zk(zk::Error::NoAuth)) => Err(StatusError::NotAuthorized {
            root: layout.root().to_owned(),
            user: zk_cfg.auth.as_ref().map(|a| a.user().to_owned()),
        }),
        other => other,
    }
}

/// [`read`] over a session the caller keeps (the HTTP listener's).
pub async fn read_with(
    client: &zk::Client,
    layout: &Layout,
    connect: &str,
) -> Result<Status, StatusError> {
    if client.check_stat(layout.root()).await?.is_none() {
        return Err(StatusError::NoRoot {
            root: layout.root().to_owned(),
            connect: connect.to_owned(),
        });
    }
    let (leader, watchers) = leader(client, layout).await?;
    let (mut agents, mut notes) = agents(client, layout).await?;
    let read = crate::silencing::read_with(client, layout).await?;
    notes.extend(read.skipped);
    let now = std::time::SystemTime::now();
    with_silences(&mut agents, &read.silences, now);
    Ok(Status {
        leader,
        watchers,
        agents,
        silences: crate::silencing::listed(&read.silences, now, false)
            .into_iter()
            .filter(|s| s.state == "active")
            .collect(),
        notes,
    })
}

/// The election's first node (lowest sequence number) is the leader.
async fn leader(
    client: &zk::Client,
    layout: &Layout,
) -> Result<(Option<serde_json::Value>, usize), StatusError> {
    let mut names = match client.list_children(&layout.watchers_dir()).await {
        Ok(n) => n,
        Err(zk::Error::NoNode) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    names.sort_by_key(|n| latch_sequence(n).unwrap_or(u64::MAX));
    let count = names.len();
    for name in names {
        match client
            .get_data(&format!("{}/{name}", layout.watchers_dir()))
            .await
        {
            Ok((data, _)) => {
                return Ok((
                    Some(serde_json::from_slice(&data).unwrap_or(serde_json::Value::Null)),
                    count,
                ))
            }
            Err(zk::Error::NoNode) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok((None, count))
}

/// The sequence number of an election node's name (`…-latch-0000000042`).
pub fn latch_sequence(name: &str) -> Option<u64> {
    name.rsplit('-')
        .next()
        .and_then(|s| s.strip_prefix("latch").or(Some(s)))
        .and_then(|s| s.parse::<u64>().ok())
}

/// The rows, and a note for every node left out (a name that is not an agent id) or read only in
/// part (garbled data: its row shows what could be used).
async fn agents(
    client: &zk::Client,
    layout: &Layout,
) -> Result<(Vec<Row>, Vec<String>), StatusError> {
    let mut agents: BTreeMap<String, Nodes> = BTreeMap::new();
    let mut notes = Vec::new();
    for (dir, is_identity) in [(layout.agents_dir(), true), (layout.live_dir(), false)] {
        let mut bad_names = Vec::new();
        let children = session::read_children(client, &dir, |n| match AgentId::parse(n) {
            Ok(_) => true,
            Err(_) => {
                bad_names.push(n.to_owned());
                false
            }
        })
        .await?;
        for name in bad_names {
            notes.push(format!("skipped {dir}/{name}: not a valid agent id"));
        }
        for (name, data, stat) in children {
            let path = format!("{dir}/{name}");
            let entry = agents.entry(name).or_default();
            let garbled = if is_identity {
                let (view, garbled) = IdentityView::parse(&data);
                let (labels, label_note) = labels(&data);
                entry.0 = Some(Identity {
                    view,
                    mtime: stat.mtime,
                    labels,
                });
                garbled.map(|g| g.to_string()).or(label_note)
            } else {
                let (view, garbled) = LivenessView::parse(&data);
                entry.1 = Some((view, stat.ctime));
                garbled.map(|g| g.to_string())
            };
            if let Some(why) = garbled {
                notes.push(format!(
                    "read {path} only in part: {why}; its row shows what could be used"
                ));
            }
        }
    }
    let mut rows = rows(&agents);
    let health_dir = layout.health_dir();
    let health = session::read_children(client, &health_dir, |n| AgentId::parse(n).is_ok()).await?;
    let health: BTreeMap<String, HealthRecord> = health
        .into_iter()
        .filter_map(|(name, data, _)| {
            let (record, garbled) = HealthRecord::parse(&data);
            if let Some(g) = garbled {
                notes.push(format!("read {health_dir}/{name} only in part: {g}"));
            }
            Some((name, record?))
        })
        .collect();
    with_health(&mut rows, &health);
    Ok((rows, notes))
}

/// Adds each agent's health; a live agent whose verdict is degraded is `degraded`.
pub fn with_health(rows: &mut [Row], health: &BTreeMap<String, HealthRecord>) {
    for row in rows {
        let Some(record) = health.get(&row.id) else {
            continue;
        };
        if row.state == "up" && record.verdict == Verdict::Degraded {
            row.state = "degraded";
        }
        row.health = Some(RowHealth::of(record));
    }
}

/// Marks each agent with the silences in force at `at` that cover it.
pub fn with_silences(
    rows: &mut [Row],
    silences: &crate::silence::Silences,
    at: std::time::SystemTime,
) {
    for row in rows {
        row.silenced =
            crate::silencing::covering(silences, &row.id, row.host.as_deref(), &row.labels, at);
    }
}

/// `down (silenced 3f9a1c2e)`: the state as the table shows it.
pub fn state_words(row: &Row) -> String {
    if row.silenced.is_empty() {
        row.state.to_owned()
    } else {
        format!("{} (silenced {})", row.state, row.silenced.join(", "))
    }
}

/// One line per silence in force, for below the table: what it covers, until when, who and why.
pub fn silence_lines(status: &Status) -> String {
    status
        .silences
        .iter()
        .map(|s| {
            let mut matchers = vec![format!("agent={}", s.agent)];
            matchers.extend(s.host.iter().map(|h| format!("host={h}")));
            matchers.extend(s.labels.iter().map(|(k, v)| format!("{k}={v}")));
            format!(
                "silence {} in force until {}: {} (by {}: {})\n",
                s.id,
                s.ends_at,
                matchers.join(" "),
                s.created_by,
                s.comment.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        })
        .collect()
}

/// One line per degraded agent, for below the table: which and why.
pub fn degraded_lines(rows: &[Row]) -> String {
    rows.iter()
        .filter(|r| r.state == "degraded")
        .map(|r| {
            let why = r
                .health
                .as_ref()
                .map(|h| h.reasons.join("; "))
                .unwrap_or_default();
            format!("{} degraded: {why}\n", r.id)
        })
        .collect()
}

/// A plain table for people.
pub fn table(rows: &[Row]) -> String {
    let header = ["ID", "HOST", "STATE", "SINCE", "RESTARTS", "LAST EXIT"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.host.clone().unwrap_or_else(|| "-".into()),
                state_words(r),
                r.since.clone().unwrap_or_else(|| "-".into()),
                r.restarts.map_or_else(|| "-".into(), |n| n.to_string()),
                r.last_exit_words().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    columns(&header, &cells)
}

/// Rows under a header, each column as wide as its widest cell plus two spaces (the last column
/// not padded): the tables of `status` and `silence list`.
pub fn columns<const N: usize>(header: &[&str; N], cells: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |row: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(&header.map(String::from));
    for row in cells {
        out.push_str(&line(row));
    }
    out
}

/// `watchers: 2, leader vm pid 4242 (since …)`, or that no watcher runs.
pub fn leader_line(status: &Status) -> String {
    match &status.leader {
        None => "watchers: none running: nobody is alerted\n".to_owned(),
        Some(l) => {
            let host = l["host"].as_str().unwrap_or("unknown host");
            let pid = l["pid"]
                .as_u64()
                .map_or_else(|| "?".to_owned(), |p| p.to_string());
            let since = l["since"].as_str().unwrap_or("?");
            format!(
                "watchers: {}, leader {host} pid {pid} (since {since})\n",
                status.watchers
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_authorized_says_what_to_give() {
        let anonymous = StatusError::NotAuthorized {
            root: "/r".into(),
            user: None,
        }
        .to_string();
        assert!(
            anonymous.starts_with(
                "not authorized to read /r: give the watchdogs' credentials with --zk-auth"
            ),
            "{anonymous}"
        );
        let refused = StatusError::NotAuthorized {
            root: "/r".into(),
            user: Some("alice".into()),
        }
        .to_string();
        assert!(refused.ends_with("(user alice was refused)"), "{refused}");
    }

    #[test]
    fn states_from_nodes() {
        let exit = ExitRecord {
            code: Some(3),
            signal: None,
            at: "2026-11-21T01:00:00.000Z".into(),
            error: None,
        };
        let ident = |state| IdentityView {
            host: Some("h".into()),
            restarts: Some(2),
            state: Some(state),
            last_exit: Some(exit.clone()),
            ..Default::default()
        };
        let live = LivenessView {
            host: Some("h".into()),
            since: Some("2026-11-21T01:00:01.000Z".into()),
            ..Default::default()
        };
        let node = |view, mtime| Identity {
            view,
            mtime,
            labels: BTreeMap::from([("team".to_owned(), "logs".to_owned())]),
        };
        let agents: BTreeMap<String, Nodes> = BTreeMap::from([
            (
                "a-up".to_owned(),
                (
                    Some(node(ident(AgentState::Running), 0)),
                    Some((live.clone(), 0)),
                ),
            ),
            (
                "b-down".to_owned(),
                (Some(node(ident(AgentState::Backoff), 0)), None),
            ),
            (
                "c-failed".to_owned(),
                (Some(node(ident(AgentState::Failed), 0)), None),
            ),
            ("d-stopping".to_owned(), (None, Some((live, 0)))),
            (
                "e-garbage".to_owned(),
                (
                    Some(Identity {
                        mtime: 1_800_000_000_000,
                        ..Default::default()
                    }),
                    None,
                ),
            ),
        ]);
        let r = rows(&agents);
        let states: Vec<_> = r.iter().map(|r| (r.id.as_str(), r.state)).collect();
        assert_eq!(
            states,
            [
                ("a-up", "up"),
                ("b-down", "down"),
                ("c-failed", "failed"),
                ("d-stopping", "stopped"),
                ("e-garbage", "down")
            ]
        );
        assert_eq!(r[0].since.as_deref(), Some("2026-11-21T01:00:01.000Z"));
        assert_eq!(r[1].since.as_deref(), Some("2026-11-21T01:00:00.000Z"));
        assert_eq!(
            r[1].last_exit_words().as_deref(),
            Some("exited with code 3 at 2026-11-21T01:00:00.000Z")
        );
        // JSON: the exit as stored, and the labels; a row without them says so plainly.
        let json = serde_json::to_value(&r).expect("rows serialize");
        assert_eq!(
            json[1]["last_exit"],
            serde_json::json!({"code": 3, "signal": null, "at": "2026-11-21T01:00:00.000Z"})
        );
        assert_eq!(json[1]["labels"], serde_json::json!({"team": "logs"}));
        assert_eq!(json[3]["labels"], serde_json::json!({}));
        assert_eq!(json[4]["last_exit"], serde_json::Value::Null);
        assert_eq!(r[4].since.as_deref(), Some("2027-01-15T08:00:00.000Z"));
        let t = table(&r);
        assert!(t.starts_with("ID "), "{t}");
        assert_eq!(t.lines().count(), 6);
        assert!(
            t.lines().nth(2).unwrap().contains("b-down")
                && t.lines().nth(2).unwrap().contains("down"),
            "{t}"
        );
        assert!(
            t.contains("exited with code 3 at 2026-11-21T01:00:00.000Z"),
            "the table keeps the exit in words: {t}"
        );
    }

    #[test]
    fn labels_are_read_leniently() {
        let read = |data: &[u8]| labels(data);
        assert_eq!(
            read(br#"{"labels":{"team":"logs","dc":"x"}}"#),
            (
                BTreeMap::from([
                    ("dc".to_owned(), "x".to_owned()),
                    ("team".to_owned(), "logs".to_owned())
                ]),
                None
            )
        );
        assert_eq!(read(br#"{"host":"h"}"#), (BTreeMap::new(), None));
        assert_eq!(read(b"not json"), (BTreeMap::new(), None));
        assert_eq!(read(b""), (BTreeMap::new(), None));
        let (got, note) = read(br#"{"labels":{"team":"logs","n":3}}"#);
        assert_eq!(
            got,
            BTreeMap::from([("team".to_owned(), "logs".to_owned())])
        );
        assert!(note.is_some_and(|n| n.contains('n')));
        let (got, note) = read(br#"{"labels":[1,2]}"#);
        assert!(got.is_empty() && note.is_some());
    }
}
