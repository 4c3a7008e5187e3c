//! `flume-watcher silence add | list | remove`: the operator's side of silences, and how
//! `status` (and so the status page, `/api/v1/agents` and `/metrics`) reads them.
//!
//! The I/O is here (one short session per command, as `status` has); the matching is
//! [`crate::silence`]'s, so that what `status` shows as silenced is what the watcher holds back.
//! A node under `<root>/silences/` that is not a silence (a foreign name, data that does not
//! parse, a bad glob) is skipped with a note that names it and says why: never a crash, never
//! silent, and never taken for a silence of everything.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use zookeeper_client as zk;

use common::config::ZkConfig;
use common::silence::{self as record, SilenceRecord};
use common::{session, Layout};

use crate::message::{one_line, Style, Zone};
use crate::silence::{Silence, Silences, Subject};

/// Silences that ended longer ago than this are deleted by `silence add` and `silence list`
/// (Alertmanager keeps expired silences 120 h too): long enough to ask "who silenced what last
/// week", short enough that the folder does not grow for ever.
pub const KEEP_EXPIRED: Duration = Duration::from_secs(5 * 24 * 3600);

/// How many ids `add` draws before giving up: a clash of 32-bit random ids is already rare.
const ID_TRIES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    #[error("cannot reach ZooKeeper at {connect}: {source}")]
    Connect {
        connect: String,
        source: session::ConnectError,
    },
    #[error("{0}")]
    NotAuthorized(String),
    /// Said plainly for `list`: an empty list would hide a mistyped --root or chroot.
    #[error("{root} does not exist at {connect}: no watchdog has registered there and no silence was added; check the chroot in --zk and --root")]
    NoRoot { root: String, connect: String },
    #[error("no silence {id} under {dir} (`flume-watcher silence list --all` lists them)")]
    Unknown { id: String, dir: String },
    #[error("no free silence id under {dir} after {ID_TRIES} tries")]
    NoFreeId { dir: String },
    #[error("ZooKeeper refused a request: {0}")]
    Zk(#[from] zk::Error),
}

/// Where a silence stands at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Active,
    Pending,
    Expired,
}

impl State {
    pub fn of(s: &Silence, at: SystemTime) -> State {
        if s.active(at) {
            State::Active
        } else if at < s.starts {
            State::Pending
        } else {
            State::Expired
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Pending => "pending",
            State::Expired => "expired",
        }
    }
}

/// One silence as `silence list --json` and `status --json` (`silences`) give it: the record's
/// fields as stored, plus its id and its state when it was read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Listed {
    pub id: String,
    /// `active`, `pending` or `expired`.
    pub state: &'static str,
    pub agent: String,
    /// `null`: any host.
    pub host: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// RFC 3339 UTC, as stored.
    pub starts_at: String,
    pub ends_at: String,
    pub created_by: String,
    pub comment: String,
}

impl Listed {
    pub fn of(s: &Silence, at: SystemTime) -> Listed {
        let r = &s.record;
        Listed {
            id: s.id.clone(),
            state: State::of(s, at).as_str(),
            agent: r.agent.clone(),
            host: r.host.clone(),
            labels: r.labels.clone(),
            starts_at: r.starts_at.clone(),
            ends_at: r.ends_at.clone(),
            created_by: r.created_by.clone(),
            comment: r.comment.clone(),
        }
    }
}

/// `agent=web7-* host=rack7-* team=logs`: what a silence matches, as written.
pub fn matchers(r: &SilenceRecord) -> String {
    matchers_in(&r.agent, r.host.as_deref(), &r.labels)
}

/// `2026-12-03 02:00:00 +08:00 (2026-12-02T18:00:00.000Z)`: the reader's clock, and UTC for
/// comparing with the nodes and the logs.
pub fn local_and_utc(t: SystemTime, zone: &Zone) -> String {
    let style = Style {
        zone: zone.clone(),
        ..Style::default()
    };
    format!("{} ({})", style.time(t), common::time::format(t))
}

/// Every silence under `<root>/silences/`, compiled, and a note for each node skipped.
#[derive(Debug, Default)]
pub struct Read {
    pub silences: Silences,
    pub skipped: Vec<String>,
}

/// The order of `list`: in force first (soonest to end first), then pending (soonest to begin
/// first), then expired (latest to end first).
pub fn listed(silences: &Silences, at: SystemTime, all: bool) -> Vec<Listed> {
    let mut chosen: Vec<&Silence> = silences
        .iter()
        .filter(|s| all || State::of(s, at) != State::Expired)
        .collect();
    chosen.sort_by(|a, b| {
        let (sa, sb) = (State::of(a, at), State::of(b, at));
        sa.cmp(&sb)
            .then_with(|| match sa {
                State::Active => a.ends.cmp(&b.ends),
                State::Pending => a.starts.cmp(&b.starts),
                State::Expired => b.ends.cmp(&a.ends),
            })
            .then_with(|| a.id.cmp(&b.id))
    });
    chosen.into_iter().map(|s| Listed::of(s, at)).collect()
}

/// The table of `silence list`, times in `zone`.
pub fn table(rows: &[Listed], zone: &Zone) -> String {
    let style = Style {
        zone: zone.clone(),
        ..Style::default()
    };
    let time = |s: &str| common::time::parse(s).map_or_else(|| s.to_owned(), |t| style.time(t));
    let header = ["ID", "MATCHERS", "STATE", "STARTS", "ENDS", "BY", "COMMENT"];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                matchers_of(r),
                r.state.to_owned(),
                time(&r.starts_at),
                time(&r.ends_at),
                r.created_by.clone(),
                one_line(&r.comment),
            ]
        })
        .collect();
    crate::status::columns(&header, &cells)
}

fn matchers_of(r: &Listed) -> String {
    matchers_in(&r.agent, r.host.as_deref(), &r.labels)
}

fn matchers_in(agent: &str, host: Option<&str>, labels: &BTreeMap<String, String>) -> String {
    let mut m = vec![format!("agent={agent}")];
    if let Some(h) = host {
        m.push(format!("host={h}"));
    }
    m.extend(labels.iter().map(|(k, v)| format!("{k}={v}")));
    m.join(" ")
}

/// The silences under `<root>/silences/` over a session the caller keeps: `status`'s read and
/// the listener's use this. A missing folder is no silence.
pub async fn read_with(client: &zk::Client, layout: &Layout) -> Result<Read, zk::Error> {
    let dir = layout.silences_dir();
    let mut foreign = Vec::new();
    let nodes = session::read_children(client, &dir, |n| {
        let ok = record::is_id(n);
        if !ok {
            foreign.push(n.to_owned());
        }
        ok
    })
    .await?;
    let mut skipped: Vec<String> = foreign
        .into_iter()
        .map(|n| format!("skipped {dir}/{n}: not a silence id (8 lowercase hex digits)"))
        .collect();
    let mut list = Vec::new();
    for (id, data, _) in nodes {
        match Silence::parse(&id, &data) {
            Ok(s) => list.push(s),
            Err(why) => skipped.push(format!("skipped {dir}/{id}: {why}")),
        }
    }
    Ok(Read {
        silences: Silences::new(list),
        skipped,
    })
}

/// The ids of the silences in force at `at` that cover an agent.
pub fn covering(
    silences: &Silences,
    agent: &str,
    host: Option<&str>,
    labels: &BTreeMap<String, String>,
    at: SystemTime,
) -> Vec<String> {
    let subject = Subject {
        agent,
        host,
        labels,
    };
    silences
        .covering(&subject, at)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// What `add` did.
#[derive(Debug)]
pub struct Added {
    pub id: String,
    /// Ids of silences that ended more than [`KEEP_EXPIRED`] ago, deleted on the way.
    pub pruned: Vec<String>,
    /// Nodes under silences/ that are not silences (left alone).
    pub skipped: Vec<String>,
}

/// What `list` found.
#[derive(Debug)]
pub struct Listing {
    pub silences: Silences,
    pub pruned: Vec<String>,
    pub skipped: Vec<String>,
}

/// Opens a one-shot session, runs `f`, closes the session; `NoAuth` becomes the words that say
/// which credentials to give.
async fn with_session<T>(
    cfg: &ZkConfig,
    layout: &Layout,
    f: impl AsyncFnOnce(&zk::Client) -> Result<T, SilenceError>,
) -> Result<T, SilenceError> {
    let client = session::connect_now(cfg)
        .await
        .map_err(|source| SilenceError::Connect {
            connect: cfg.connect.to_string(),
            source,
        })?;
    let result = f(&client).await;
    session::close(client, Duration::from_secs(2)).await;
    match result {
        Err(SilenceError::Zk(zk::Error::NoAuth)) => Err(SilenceError::NotAuthorized(
            session::not_authorized_message(cfg, &layout.silences_dir()),
        )),
        other => other,
    }
}

/// Stores `record` under a new id (created under `<root>/silences/`, the folders too if need be,
/// with the configured ACL).
pub async fn add(
    cfg: &ZkConfig,
    layout: &Layout,
    record: &SilenceRecord,
) -> Result<Added, SilenceError> {
    with_session(cfg, layout, async |client| {
        let dir = layout.silences_dir();
        // Only when missing: ensure_dir logs a refusal as something it retries, which a
        // one-shot command does not; a refused create below says it instead.
        if client.check_stat(&dir).await?.is_none() {
            session::ensure_dir(client, cfg, &dir).await?;
        }
        let data = record.to_json();
        let mode = zk::CreateMode::Persistent.with_acls(session::acls(cfg));
        let mut id = None;
        for attempt in 0..ID_TRIES {
            let candidate = new_id(attempt);
            match client
                .create(&layout.silence_path(&candidate), &data, &mode)
                .await
            {
                Ok(_) => {
                    id = Some(candidate);
                    break;
                }
                Err(zk::Error::NodeExists) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let id = id.ok_or(SilenceError::NoFreeId { dir: dir.clone() })?;
        let read = read_with(client, layout).await?;
        let pruned = prune(client, layout, &read.silences, SystemTime::now()).await;
        Ok(Added {
            id,
            pruned,
            skipped: read.skipped,
        })
    })
    .await
}

/// Every silence, and the nodes skipped; prunes those ended long ago.
pub async fn list(cfg: &ZkConfig, layout: &Layout) -> Result<Listing, SilenceError> {
    with_session(cfg, layout, async |client| {
        if client.check_stat(layout.root()).await?.is_none() {
            return Err(SilenceError::NoRoot {
                root: layout.root().to_owned(),
                connect: cfg.connect.to_string(),
            });
        }
        let read = read_with(client, layout).await?;
        let pruned = prune(client, layout, &read.silences, SystemTime::now()).await;
        let silences = Silences::new(
            read.silences
                .iter()
                .filter(|s| !pruned.contains(&s.id))
                .cloned()
                .collect(),
        );
        Ok(Listing {
            silences,
            pruned,
            skipped: read.skipped,
        })
    })
    .await
}

/// Deletes silence `id`, giving back what it was.
pub async fn remove(
    cfg: &ZkConfig,
    layout: &Layout,
    id: &str,
) -> Result<Option<SilenceRecord>, SilenceError> {
    with_session(cfg, layout, async |client| {
        let path = layout.silence_path(id);
        let unknown = || SilenceError::Unknown {
            id: id.to_owned(),
            dir: layout.silences_dir(),
        };
        let (data, _) = match client.get_data(&path).await {
            Ok(found) => found,
            Err(zk::Error::NoNode) => return Err(unknown()),
            Err(e) => return Err(e.into()),
        };
        match client.delete(&path, None).await {
            Ok(()) => Ok(SilenceRecord::parse(&data).ok()),
            // Removed by someone else meanwhile: what was asked is done, but say it was not us.
            Err(zk::Error::NoNode) => Err(unknown()),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// Deletes the silences that ended more than [`KEEP_EXPIRED`] before `now`; their ids. Best
/// effort: one that cannot be deleted (no right to, gone already) stays for the next time.
async fn prune(
    client: &zk::Client,
    layout: &Layout,
    silences: &Silences,
    now: SystemTime,
) -> Vec<String> {
    let mut pruned = Vec::new();
    for s in silences.iter().filter(|s| ended_long_ago(s, now)) {
        if client
            .delete(&layout.silence_path(&s.id), None)
            .await
            .is_ok()
        {
            pruned.push(s.id.clone());
        }
    }
    pruned
}

fn ended_long_ago(s: &Silence, now: SystemTime) -> bool {
    now.duration_since(s.ends)
        .is_ok_and(|ago| ago > KEEP_EXPIRED)
}

/// 8 lowercase hex digits, unpredictable enough that two operators adding at the same
/// millisecond get different ones: the SHA-256 of the time in nanoseconds, the pid, the try and
/// an address of this process (ASLR), cut to 32 bits. A clash is caught by ZooKeeper
/// (`NodeExists`) and another is drawn.
pub fn new_id(attempt: usize) -> String {
    use sha2::{Digest, Sha256};
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let local = 0u8;
    let mut h = Sha256::new();
    h.update(nanos.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(attempt.to_le_bytes());
    h.update((&local as *const u8 as usize).to_le_bytes());
    let digest = h.finalize();
    digest[..record::ID_LEN / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `user@host` for `created_by`: `$USER` (else `$LOGNAME`, else the uid's name, else `uid N`),
/// and this machine's name.
pub fn author() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|u| !u.trim().is_empty())
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| format!("uid {}", nix::unistd::getuid()));
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!("{user}@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn silence(id: &str, from: u64, to: u64, comment: &str) -> Silence {
        Silence::new(
            id,
            SilenceRecord {
                v: 1,
                agent: "web7-*".into(),
                host: (id == "0000000b").then(|| "rack7-*".to_owned()),
                labels: if id == "0000000b" {
                    BTreeMap::from([("team".to_owned(), "logs".to_owned())])
                } else {
                    BTreeMap::new()
                },
                starts_at: common::time::format(t(from)),
                ends_at: common::time::format(t(to)),
                created_by: "ops@bastion".into(),
                comment: comment.into(),
            },
        )
        .expect("valid silence")
    }

    fn sample() -> Silences {
        Silences::new(vec![
            silence("0000000a", 0, 7200, "kernel upgrade"),
            silence("0000000b", 0, 3600, "disk\nswap"),
            silence("0000000c", 5000, 9000, "pending one"),
            silence("0000000d", 0, 100, "over"),
            silence("0000000e", 0, 200, "over too"),
        ])
    }

    #[test]
    fn list_shows_in_force_then_pending_and_expired_only_with_all() {
        let at = t(1000);
        let ids = |rows: Vec<Listed>| -> Vec<(String, &'static str)> {
            rows.into_iter().map(|r| (r.id, r.state)).collect()
        };
        let want = |v: &[(&str, &'static str)]| -> Vec<(String, &'static str)> {
            v.iter().map(|(i, s)| (i.to_string(), *s)).collect()
        };
        assert_eq!(
            ids(listed(&sample(), at, false)),
            want(&[
                ("0000000b", "active"),
                ("0000000a", "active"),
                ("0000000c", "pending")
            ])
        );
        assert_eq!(
            ids(listed(&sample(), at, true)),
            want(&[
                ("0000000b", "active"),
                ("0000000a", "active"),
                ("0000000c", "pending"),
                ("0000000e", "expired"),
                ("0000000d", "expired")
            ])
        );
    }

    #[test]
    fn the_json_of_a_silence_has_every_field_scripts_read() {
        let rows = listed(&sample(), t(1000), false);
        let json = serde_json::to_value(&rows).expect("serializes");
        assert_eq!(
            json[0],
            serde_json::json!({
                "id": "0000000b", "state": "active", "agent": "web7-*", "host": "rack7-*",
                "labels": {"team": "logs"},
                "starts_at": common::time::format(t(0)),
                "ends_at": common::time::format(t(3600)),
                "created_by": "ops@bastion", "comment": "disk\nswap"
            })
        );
        assert_eq!(json[1]["host"], serde_json::Value::Null);
        assert_eq!(json[1]["labels"], serde_json::json!({}));
    }

    #[test]
    fn the_table_has_a_column_each_and_one_line_per_silence() {
        let rows = listed(&sample(), t(1000), true);
        let text = table(&rows, &Zone::parse("+08:00").expect("zone"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        assert!(
            lines[0].starts_with("ID")
                && ["MATCHERS", "STATE", "STARTS", "ENDS", "BY", "COMMENT"]
                    .iter()
                    .all(|h| lines[0].contains(h)),
            "{text}"
        );
        let b = lines[1];
        for want in [
            "0000000b",
            "agent=web7-* host=rack7-* team=logs",
            "active",
            // 2027-01-15T08:00:00Z at +08:00, then one hour later.
            "2027-01-15 16:00:00 +08:00",
            "2027-01-15 17:00:00 +08:00",
            "ops@bastion",
        ] {
            assert!(b.contains(want), "{want:?} missing in {b:?}");
        }
        assert!(
            b.ends_with("disk swap"),
            "a comment stays on its line: {b:?}"
        );
        // Columns line up: STATE starts at the same place on every line.
        let col = lines[0].find("STATE").expect("STATE");
        for l in &lines[1..] {
            assert!(
                ["active", "pending", "expired"]
                    .iter()
                    .any(|s| l[col..].starts_with(s)),
                "{l:?} in\n{text}"
            );
        }
        assert_eq!(table(&[], &Zone::utc()).lines().count(), 1);
    }

    #[test]
    fn only_silences_ended_over_five_days_ago_are_pruned() {
        let s = silence("0000000a", 0, 100, "x");
        assert!(!ended_long_ago(&s, t(100)));
        assert!(!ended_long_ago(&s, t(100 + 5 * 86400)));
        assert!(ended_long_ago(&s, t(101 + 5 * 86400)));
        assert!(!ended_long_ago(&s, t(50)), "not ended");
    }

    #[test]
    fn ids_are_silence_ids_and_differ() {
        let a = new_id(0);
        let b = new_id(1);
        assert!(record::is_id(&a) && record::is_id(&b), "{a} {b}");
        assert_ne!(a, b);
        let who = author();
        assert!(who.contains('@') && !who.starts_with('@'), "{who}");
    }

    #[test]
    fn local_and_utc_gives_both() {
        assert_eq!(
            local_and_utc(t(0), &Zone::parse("+08:00").expect("zone")),
            "2027-01-15 16:00:00 +08:00 (2027-01-15T08:00:00.000Z)"
        );
    }
}
