//! Outage records: what the watcher has decided to tell, kept in ZooKeeper at
//! `<root>/outages/<id>` before anything is delivered, with each channel's delivery state.
//!
//! They make alerts durable and exactly-once across restarts (and, with several watchers, across
//! failover): a watcher that starts finds the outages already reported (so it does not report them
//! again, and it still sends their `recovered`), and the notices some channel has not yet taken
//! (so it delivers them, in order). A record is closed by its `recovered` notice and pruned once
//! every notice reached every channel. This module is the pure part: decisions on a record.

use std::collections::BTreeSet;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertKind};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutageRecord {
    pub agent: String,
    /// RFC 3339: when the current outage began.
    pub opened_at: String,
    /// A `recovered` notice ended the outage (or a planned stop did).
    pub closed: bool,
    /// Notices with `seq >= first_seq` belong to the current outage; older ones wait for delivery.
    pub first_seq: u32,
    pub notices: Vec<NoticeRecord>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoticeRecord {
    pub seq: u32,
    pub alert: Alert,
    /// Channels that took it, or refused it for good (logged and counted there).
    pub done: BTreeSet<String>,
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
    fn current(&self) -> impl Iterator<Item = &NoticeRecord> {
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
            failed_sent: self.current().any(|n| n.alert.event == AlertKind::Failed),
        })
    }

    /// The notice holding exactly this alert (this watcher's own, written before), if any.
    pub fn notice_of(&self, alert: &Alert) -> Option<u32> {
        let mut alert = alert.clone();
        alert.key = None;
        self.notices
            .iter()
            .find(|n| n.alert == alert)
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
    let mut alert = alert.clone();
    alert.key = None;
    NoticeRecord {
        seq,
        alert,
        done: BTreeSet::new(),
    }
}

/// Decides how `alert` changes the agent's record (absent: `None`).
pub fn decide(record: Option<&OutageRecord>, alert: &Alert) -> Decision {
    let opened_at = common::time::format(alert.at);
    match (record, alert.event) {
        (None, AlertKind::Recovered) => {
            let mut r = OutageRecord {
                agent: alert.agent.clone(),
                opened_at,
                closed: true,
                first_seq: 0,
                notices: vec![],
            };
            r.notices.push(notice(0, alert));
            Decision::Write { record: r, seq: 0 }
        }
        (None, _) => {
            let r = OutageRecord {
                agent: alert.agent.clone(),
                opened_at,
                closed: false,
                first_seq: 0,
                notices: vec![notice(0, alert)],
            };
            Decision::Write { record: r, seq: 0 }
        }
        (Some(r), AlertKind::Recovered) => {
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
            } else if kind == AlertKind::Down || r.current().any(|n| n.alert.event == kind) {
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
            event,
            agent: "a1".into(),
            host: Some("h".into()),
            reason: "exited with code 3".into(),
            at: UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs),
            restarts: Some(1),
            crashes: 1,
            outage: (event == AlertKind::Recovered).then(|| Duration::from_secs(2)),
            last_exit: None,
            key: None,
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
}
