//! Outage records: what the watcher has decided to tell, kept in ZooKeeper at
//! `<root>/outages/<id>` (written beside the first delivery attempt, not before it), with each
//! channel's delivery state.
//!
//! They make alerts durable and exactly-once across restarts (and, with several watchers, across
//! failover): a watcher that starts finds the outages already reported (so it does not report them
//! again, and it still sends their `recovered`), and the notices some channel has not yet taken
//! (so it delivers them, in order). A record is closed by its `recovered` notice and pruned once
//! every notice reached every channel. This module is the pure part: decisions on a record.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use common::records::HealthRecord;
use common::ExitRecord;

use crate::alert::{Alert, AlertKind};

/// The format of the records this watcher writes. A record names its version; one without is of
/// version 1 (the first). A record of a later version is read for what this watcher knows, and its
/// version and every field it does not know are kept when it is written back.
pub const RECORD_VERSION: u32 = 1;

fn first_version() -> u32 {
    1
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutageRecord {
    #[serde(default = "first_version")]
    pub version: u32,
    pub agent: String,
    /// RFC 3339: when the current outage began.
    pub opened_at: String,
    /// A `recovered` notice ended the outage (or a planned stop did).
    pub closed: bool,
    /// Notices with `seq >= first_seq` belong to the current outage; older ones wait for delivery.
    pub first_seq: u32,
    pub notices: Vec<NoticeRecord>,
    /// Fields of a later version, kept as they are.
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoticeRecord {
    pub seq: u32,
    /// Named `alert` since the first version.
    #[serde(rename = "alert")]
    pub notice: StoredNotice,
    /// Channels that took it, or refused it for good (logged and counted there).
    pub done: BTreeSet<String>,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

/// A notice as stored: its own type, so that a change of what is sent (the webhook's body, a
/// channel's message) can never change what is stored, nor make stored records unreadable. The
/// field names are those of version 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredNotice {
    #[serde(with = "stored_event")]
    pub event: AlertKind,
    pub agent: String,
    pub host: Option<String>,
    pub reason: String,
    /// RFC 3339.
    pub at: String,
    pub restarts: Option<u64>,
    pub crashes: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outage_seconds: Option<f64>,
    pub last_exit: Option<ExitRecord>,
    /// The transition's ZooKeeper transaction (`Alert::zxid`), part of the notice id. Added in
    /// version 1 as an optional field: records without it are read, and their notices keep the
    /// time-based id they were sent with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zxid: Option<i64>,
    /// The agent's labels when it was decided (routes and messages use them), optional as well.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// A `degraded` notice's figures, as its watchdog measured them (optional too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthRecord>,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

impl StoredNotice {
    pub fn of(alert: &Alert) -> StoredNotice {
        StoredNotice {
            event: alert.event,
            agent: alert.agent.clone(),
            host: alert.host.clone(),
            reason: alert.reason.clone(),
            at: common::time::format(alert.at),
            restarts: alert.restarts,
            crashes: alert.crashes,
            outage_seconds: alert.outage.map(|d| d.as_millis() as f64 / 1000.0),
            last_exit: alert.last_exit.clone(),
            zxid: alert.zxid,
            labels: alert.labels.clone(),
            health: alert.health.as_ref().map(|h| (*h.0).clone()),
            unknown: Map::new(),
        }
    }

    /// The alert to send again. A time that cannot be read (a hand-edited record) is sent as now
    /// rather than not at all.
    pub fn to_alert(&self) -> Alert {
        Alert {
            health: self
                .health
                .clone()
                .map(|h| crate::alert::Health(Box::new(h))),
            host: self.host.clone(),
            restarts: self.restarts,
            crashes: self.crashes,
            outage: self
                .outage_seconds
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64),
            last_exit: self.last_exit.clone(),
            zxid: self.zxid,
            labels: self.labels.clone(),
            ..Alert::new(
                self.event,
                self.agent.clone(),
                self.reason.clone(),
                common::time::parse(&self.at).unwrap_or_else(SystemTime::now),
            )
        }
    }

    /// Whether this is the stored form of `alert` (what this watcher itself wrote for it).
    fn is(&self, alert: &Alert) -> bool {
        let mine = StoredNotice::of(alert);
        StoredNotice {
            unknown: Map::new(),
            ..self.clone()
        } == mine
    }
}

/// The events' names in records, fixed here rather than borrowed from the wire format.
mod stored_event {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::alert::AlertKind;

    const NAMES: [(AlertKind, &str); 8] = [
        (AlertKind::Down, "down"),
        (AlertKind::Recovered, "recovered"),
        (AlertKind::Failed, "failed"),
        (AlertKind::Blind, "blind"),
        (AlertKind::Sighted, "sighted"),
        (AlertKind::Test, "test"),
        (AlertKind::Degraded, "degraded"),
        (AlertKind::Healthy, "healthy"),
    ];

    pub fn serialize<S: Serializer>(kind: &AlertKind, s: S) -> Result<S::Ok, S::Error> {
        let name = NAMES
            .iter()
            .find(|(k, _)| k == kind)
            .map_or("unknown", |(_, n)| n);
        s.serialize_str(name)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<AlertKind, D::Error> {
        let name = String::deserialize(d)?;
        NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(k, _)| *k)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown event {name:?}")))
    }
}

/// What to do with a new alert, given the agent's record.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Write this record; then deliver the notice `seq`.
    Write { record: OutageRecord, seq: u32 },
    /// Already recorded (by an earlier run or another watcher): send nothing.
    Duplicate,
}

/// An open outage as the outage monitor needs to know it at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenOutage {
    pub since: SystemTime,
    pub failed_sent: bool,
}

impl OutageRecord {
    /// The notices of the outage the record holds now (earlier ones may wait for delivery).
    pub fn current(&self) -> impl Iterator<Item = &NoticeRecord> {
        self.notices.iter().filter(|n| n.seq >= self.first_seq)
    }

    fn next_seq(&self) -> u32 {
        self.notices
            .iter()
            .map(|n| n.seq + 1)
            .max()
            .unwrap_or(self.first_seq)
    }

    pub fn open_outage(&self) -> Option<OpenOutage> {
        if self.closed {
            return None;
        }
        let since = common::time::parse(&self.opened_at).unwrap_or_else(SystemTime::now);
        Some(OpenOutage {
            since,
            failed_sent: self.current().any(|n| n.notice.event == AlertKind::Failed),
        })
    }

    /// The notice holding exactly this alert (this watcher's own, written before), if any.
    pub fn notice_of(&self, alert: &Alert) -> Option<u32> {
        self.notices
            .iter()
            .find(|n| n.notice.is(alert))
            .map(|n| n.seq)
    }

    /// Notices `channel` has still to take, in order.
    pub fn pending_for<'a>(
        &'a self,
        channel: &'a str,
    ) -> impl Iterator<Item = &'a NoticeRecord> + 'a {
        self.notices
            .iter()
            .filter(move |n| !n.done.contains(channel))
    }

    /// Closed, and every notice reached every channel: the record can go.
    pub fn prunable(&self, channels: &[String]) -> bool {
        self.closed
            && self
                .notices
                .iter()
                .all(|n| channels.iter().all(|c| n.done.contains(c)))
    }

    /// Notes that `channel` is done with notice `seq`; false if nothing changed.
    pub fn mark_done(&mut self, seq: u32, channel: &str) -> bool {
        match self.notices.iter_mut().find(|n| n.seq == seq) {
            Some(n) => n.done.insert(channel.to_owned()),
            None => false,
        }
    }

    /// A planned stop ends an outage without a notice.
    pub fn close_silently(&mut self) -> bool {
        !std::mem::replace(&mut self.closed, true)
    }
}

fn notice(seq: u32, alert: &Alert) -> NoticeRecord {
    NoticeRecord {
        seq,
        notice: StoredNotice::of(alert),
        // The channels its routes do not send it to are done with it from the start.
        done: alert.not_for.clone(),
        unknown: Map::new(),
    }
}

/// Decides how `alert` changes its record (absent: `None`): the agent's for crashes, the agent's
/// health record for degradations ([`Alert::record_key`]), where `degraded` opens as `down` does
/// and `healthy` closes as `recovered` does.
pub fn decide(record: Option<&OutageRecord>, alert: &Alert) -> Decision {
    let opened_at = common::time::format(alert.at);
    let closes = matches!(alert.event, AlertKind::Recovered | AlertKind::Healthy);
    match (record, alert.event) {
        (None, _) if closes => {
            let mut r = OutageRecord {
                version: RECORD_VERSION,
                agent: alert.record_key(),
                opened_at,
                closed: true,
                first_seq: 0,
                notices: vec![],
                unknown: Map::new(),
            };
            r.notices.push(notice(0, alert));
            Decision::Write { record: r, seq: 0 }
        }
        (None, _) => {
            let r = OutageRecord {
                version: RECORD_VERSION,
                agent: alert.record_key(),
                opened_at,
                closed: false,
                first_seq: 0,
                notices: vec![notice(0, alert)],
                unknown: Map::new(),
            };
            Decision::Write { record: r, seq: 0 }
        }
        (Some(r), _) if closes => {
            if r.closed {
                return Decision::Duplicate;
            }
            let mut r = r.clone();
            let seq = r.next_seq();
            r.notices.push(notice(seq, alert));
            r.closed = true;
            Decision::Write { record: r, seq }
        }
        (Some(r), kind) => {
            let mut r = r.clone();
            if r.closed {
                // A new outage while the last one's notices are still on their way.
                r.closed = false;
                r.first_seq = r.next_seq();
                r.opened_at = opened_at;
            } else if matches!(kind, AlertKind::Down | AlertKind::Degraded)
                || r.current().any(|n| n.notice.event == kind)
            {
                // Open already: this outage was reported.
                return Decision::Duplicate;
            }
            let seq = r.next_seq();
            r.notices.push(notice(seq, alert));
            Decision::Write { record: r, seq }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn alert(event: AlertKind, secs: u64) -> Alert {
        Alert {
            host: Some("h".into()),
            restarts: Some(1),
            crashes: 1,
            outage: (event == AlertKind::Recovered).then(|| Duration::from_secs(2)),
            ..Alert::new(
                event,
                "a1",
                "exited with code 3",
                UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs),
            )
        }
    }

    fn write(d: Decision) -> (OutageRecord, u32) {
        match d {
            Decision::Write { record, seq } => (record, seq),
            Decision::Duplicate => panic!("expected a write"),
        }
    }

    #[test]
    fn one_outage_down_then_recovered_then_pruned() {
        let (r, seq) = write(decide(None, &alert(AlertKind::Down, 0)));
        assert_eq!((seq, r.closed), (0, false));
        assert!(r.open_outage().is_some());
        assert_eq!(
            decide(Some(&r), &alert(AlertKind::Down, 5)),
            Decision::Duplicate,
            "a second down of the same outage"
        );
        let (mut r, seq) = write(decide(Some(&r), &alert(AlertKind::Recovered, 9)));
        assert_eq!((seq, r.closed), (1, true));
        assert_eq!(r.open_outage(), None);
        assert_eq!(
            decide(Some(&r), &alert(AlertKind::Recovered, 10)),
            Decision::Duplicate
        );
        let channels = vec!["webhook".to_owned(), "dingtalk".to_owned()];
        assert!(!r.prunable(&channels));
        for c in &channels {
            assert!(r.mark_done(0, c));
            assert!(r.mark_done(1, c));
        }
        assert!(!r.mark_done(1, "webhook"), "marking twice changes nothing");
        assert!(r.prunable(&channels));
    }

    #[test]
    fn pending_is_per_channel_and_in_order() {
        let (r, _) = write(decide(None, &alert(AlertKind::Down, 0)));
        let (mut r, _) = write(decide(Some(&r), &alert(AlertKind::Failed, 1)));
        r.mark_done(0, "webhook");
        let seqs = |r: &OutageRecord, c: &str| r.pending_for(c).map(|n| n.seq).collect::<Vec<_>>();
        assert_eq!(seqs(&r, "webhook"), [1]);
        assert_eq!(seqs(&r, "dingtalk"), [0, 1]);
        assert_eq!(r.open_outage().map(|o| o.failed_sent), Some(true));
        assert_eq!(
            decide(Some(&r), &alert(AlertKind::Failed, 2)),
            Decision::Duplicate
        );
    }

    #[test]
    fn a_new_outage_reopens_a_closed_record_keeping_undelivered_notices() {
        let (r, _) = write(decide(None, &alert(AlertKind::Down, 0)));
        let (r, _) = write(decide(Some(&r), &alert(AlertKind::Recovered, 5)));
        let (r, seq) = write(decide(Some(&r), &alert(AlertKind::Down, 100)));
        assert_eq!(
            (seq, r.first_seq, r.closed, r.notices.len()),
            (2, 2, false, 3)
        );
        assert_eq!(
            r.open_outage().map(|o| o.since),
            Some(UNIX_EPOCH + Duration::from_secs(1_800_000_100))
        );
        assert_eq!(
            decide(Some(&r), &alert(AlertKind::Down, 101)),
            Decision::Duplicate
        );
    }

    #[test]
    fn our_own_notice_is_recognised_where_another_would_be_a_duplicate() {
        let down = alert(AlertKind::Down, 0);
        let (r, _) = write(decide(None, &down));
        assert_eq!(r.notice_of(&down), Some(0));
        assert_eq!(
            r.notice_of(&alert(AlertKind::Down, 1)),
            None,
            "another watcher's down of the same outage"
        );
        assert_eq!(
            decide(Some(&r), &alert(AlertKind::Down, 1)),
            Decision::Duplicate
        );
    }

    #[test]
    fn recovered_without_a_record_is_still_sent_and_closes() {
        let (r, seq) = write(decide(None, &alert(AlertKind::Recovered, 0)));
        assert_eq!((seq, r.closed), (0, true));
    }

    #[test]
    fn planned_stop_closes_without_a_notice() {
        let (mut r, _) = write(decide(None, &alert(AlertKind::Down, 0)));
        assert!(r.close_silently());
        assert!(!r.close_silently());
        assert!(r.prunable(&[]), "no channels left to serve");
        assert!(
            !r.prunable(&["webhook".to_owned()]),
            "the down still has to reach the webhook"
        );
    }

    #[test]
    fn records_round_trip_through_json() {
        let (r, _) = write(decide(None, &alert(AlertKind::Down, 0)));
        let (r, _) = write(decide(Some(&r), &alert(AlertKind::Recovered, 3)));
        let back: OutageRecord = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    /// A notice sent again from its record keeps the id it was first sent with.
    #[test]
    fn a_stored_notice_is_sent_again_with_its_id() {
        let first = Alert {
            zxid: Some(0x2a),
            ..alert(AlertKind::Down, 0)
        };
        let (r, _) = write(decide(None, &first));
        let back: OutageRecord = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        let again = back.notices[0].notice.to_alert();
        assert_eq!(again.notice_id(), first.notice_id());
        assert_eq!(again.notice_id(), "a1/down/0x2a");
    }

    /// A record as the first version wrote it (before records had their own notice type).
    const V1: &str = r#"{"agent":"a1","opened_at":"2027-01-15T08:00:00.000Z","closed":false,"first_seq":0,
        "notices":[{"seq":0,"alert":{"event":"down","agent":"a1","host":"h","reason":"exited with code 3",
        "at":"2027-01-15T08:00:00.000Z","restarts":1,"crashes":1,"last_exit":null},"done":["webhook"]}]}"#;

    #[test]
    fn a_first_version_record_reads_and_its_notice_is_sent_as_it_was() {
        let r: OutageRecord = serde_json::from_str(V1).expect("version 1 reads");
        assert_eq!(r.version, 1);
        let sent = r.notices[0].notice.to_alert();
        assert_eq!(sent.event, AlertKind::Down);
        assert_eq!(sent.reason, "exited with code 3");
        assert_eq!(common::time::format(sent.at), "2027-01-15T08:00:00.000Z");
        assert_eq!(
            sent.notice_id(),
            "a1/down/2027-01-15T08:00:00.000Z",
            "the id it had"
        );
        assert_eq!(r.pending_for("dingtalk").count(), 1);
        assert_eq!(r.pending_for("webhook").count(), 0);
    }

    #[test]
    fn a_later_versions_fields_and_version_survive_a_rewrite() {
        // A later watcher added fields at every level and raised the version.
        let later = V1
            .replacen(
                r#"{"agent""#,
                r#"{"version":7,"escalated":{"sms":true},"agent""#,
                1,
            )
            .replacen(r#""seq":0,"#, r#""seq":0,"route":"ops","#, 1)
            .replacen(
                r#""crashes":1,"#,
                r#""crashes":1,"labels":{"team":"logs"},"#,
                1,
            );
        let r: OutageRecord = serde_json::from_str(&later).expect("a later version reads");
        // This watcher changes it: a recovered closes the outage.
        let (mut r, seq) = write(decide(Some(&r), &alert(AlertKind::Recovered, 9)));
        assert!(r.mark_done(seq, "webhook"));
        let back: Value = serde_json::to_value(&r).unwrap();
        assert_eq!(back["version"], 7, "not downgraded");
        assert_eq!(back["escalated"]["sms"], true);
        assert_eq!(back["notices"][0]["route"], "ops");
        assert_eq!(back["notices"][0]["alert"]["labels"]["team"], "logs");
        assert_eq!(back["closed"], true);
        // The first notice is still this watcher's to recognise and to send.
        assert_eq!(r.notices[0].notice.to_alert().event, AlertKind::Down);
    }

    #[test]
    fn what_is_stored_is_not_what_is_sent() {
        let a = alert(AlertKind::Recovered, 3);
        let stored = serde_json::to_value(StoredNotice::of(&a)).unwrap();
        let keys: Vec<&str> = stored
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "agent",
                "at",
                "crashes",
                "event",
                "host",
                "last_exit",
                "outage_seconds",
                "reason",
                "restarts"
            ],
            "the stored fields are fixed here, whatever the wire adds"
        );
        assert_eq!(
            StoredNotice::of(&a).to_alert(),
            a,
            "and it sends the same alert again"
        );
        let unknown_event = r#"{"event":"escalated","agent":"a","host":null,"reason":"r","at":"2027-01-15T08:00:00.000Z","restarts":null,"crashes":1,"last_exit":null}"#;
        assert!(serde_json::from_str::<StoredNotice>(unknown_event).is_err());
    }
}
