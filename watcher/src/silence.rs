//! Silences, pure: which agents one covers and until when a notice about an agent is silenced.
//!
//! A silence is read from its node (`common::silence::SilenceRecord`) and compiled here; the
//! ledger asks whether a notice is silenced at a time and until when, and holds it back from every
//! channel that long (`crate::ledger`). Silences that overlap or follow each other without a gap
//! silence a notice until the last of them ends: a maintenance extended by a second silence never
//! lets the page through in between.

use std::collections::BTreeMap;
use std::time::SystemTime;

use common::silence::SilenceRecord;

use crate::alert::{Alert, AlertKind};
use crate::routing::Pattern;

/// One silence, its matchers compiled.
#[derive(Clone, Debug)]
pub struct Silence {
    pub id: String,
    pub agent: Pattern,
    pub host: Option<Pattern>,
    pub labels: Vec<(String, Pattern)>,
    pub starts: SystemTime,
    pub ends: SystemTime,
    pub record: SilenceRecord,
}

/// What a silence matches on: an agent as the watcher knows it.
pub struct Subject<'a> {
    pub agent: &'a str,
    pub host: Option<&'a str>,
    pub labels: &'a BTreeMap<String, String>,
}

impl<'a> From<&'a Alert> for Subject<'a> {
    fn from(alert: &'a Alert) -> Subject<'a> {
        Subject {
            agent: &alert.agent,
            host: alert.host.as_deref(),
            labels: &alert.labels,
        }
    }
}

impl Silence {
    /// Compiles a record read from node `id`; the error says what is wrong, for the log.
    pub fn new(id: &str, record: SilenceRecord) -> Result<Silence, String> {
        let starts = record.starts().map_err(|e| e.to_string())?;
        let ends = record.ends().map_err(|e| e.to_string())?;
        let agent = Pattern::new(&record.agent).map_err(|e| format!("agent: {e}"))?;
        let host = match &record.host {
            Some(h) => Some(Pattern::new(h).map_err(|e| format!("host: {e}"))?),
            None => None,
        };
        let labels = record
            .labels
            .iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    Pattern::new(v).map_err(|e| format!("label {k}: {e}"))?,
                ))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Silence {
            id: id.to_owned(),
            agent,
            host,
            labels,
            starts,
            ends,
            record,
        })
    }

    /// A silence node's data, read and compiled; the error says what is wrong, for the log.
    pub fn parse(id: &str, data: &[u8]) -> Result<Silence, String> {
        let record = SilenceRecord::parse(data).map_err(|e| e.to_string())?;
        Silence::new(id, record)
    }

    /// In force at `at`: begun, not yet ended.
    pub fn active(&self, at: SystemTime) -> bool {
        self.starts <= at && at < self.ends
    }

    /// Covers this agent (whenever).
    pub fn covers(&self, s: &Subject) -> bool {
        self.agent.matches(s.agent)
            && self
                .host
                .as_ref()
                .is_none_or(|h| s.host.is_some_and(|host| h.matches(host)))
            && self
                .labels
                .iter()
                .all(|(k, p)| s.labels.get(k).is_some_and(|v| p.matches(v)))
    }
}

/// Every silence known, active, pending or ended.
#[derive(Clone, Debug, Default)]
pub struct Silences {
    list: Vec<Silence>,
}

/// Equal when they hold the same records under the same ids (the globs are compiled from them).
impl PartialEq for Silences {
    fn eq(&self, other: &Silences) -> bool {
        self.list.len() == other.list.len()
            && self
                .list
                .iter()
                .zip(&other.list)
                .all(|(a, b)| a.id == b.id && a.record == b.record)
    }
}

impl Silences {
    pub fn new(mut list: Vec<Silence>) -> Silences {
        list.sort_by(|a, b| a.id.cmp(&b.id));
        Silences { list }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Silence> {
        self.list.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// How many are in force at `at`.
    pub fn active(&self, at: SystemTime) -> usize {
        self.list.iter().filter(|s| s.active(at)).count()
    }

    /// The ids of those in force at `at` that cover `s`.
    pub fn covering(&self, s: &Subject, at: SystemTime) -> Vec<&str> {
        self.list
            .iter()
            .filter(|x| x.active(at) && x.covers(s))
            .map(|x| x.id.as_str())
            .collect()
    }

    /// Until when a notice about `s` is silenced, counted from `at`: `None` if no silence covers
    /// it then. Silences that take over from each other without a gap count as one.
    pub fn until(&self, s: &Subject, at: SystemTime) -> Option<SystemTime> {
        self.last(s, at).map(|x| x.ends)
    }

    /// The silence that ends last of those that hold a notice about `s` from `at` on (see
    /// [`Silences::until`]): the one the notice waits for.
    pub fn last(&self, s: &Subject, at: SystemTime) -> Option<&Silence> {
        let mut last: Option<&Silence> = None;
        loop {
            let probe = last.map_or(at, |x| x.ends);
            let next = self
                .list
                .iter()
                .filter(|x| x.active(probe) && x.covers(s))
                .max_by_key(|x| x.ends);
            match next {
                Some(x) if last.is_none_or(|l| x.ends > l.ends) => last = Some(x),
                _ => return last,
            }
        }
    }

    /// The silence `alert` waits for at `at`, if any: only notices about an agent are silenced (a
    /// watcher that cannot see must be heard; a test alert is asked for).
    pub fn silences(&self, alert: &Alert, at: SystemTime) -> Option<&Silence> {
        if matches!(
            alert.event,
            AlertKind::Blind | AlertKind::Sighted | AlertKind::Test
        ) || self.list.is_empty()
        {
            return None;
        }
        self.last(&Subject::from(alert), at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn silence(id: &str, agent: &str, host: Option<&str>, from: u64, to: u64) -> Silence {
        Silence::new(
            id,
            SilenceRecord {
                v: 1,
                agent: agent.into(),
                host: host.map(Into::into),
                labels: BTreeMap::new(),
                starts_at: common::time::format(t(from)),
                ends_at: common::time::format(t(to)),
                created_by: "ops@bastion".into(),
                comment: "kernel upgrade".into(),
            },
        )
        .unwrap()
    }

    fn subject<'a>(
        agent: &'a str,
        host: Option<&'a str>,
        labels: &'a BTreeMap<String, String>,
    ) -> Subject<'a> {
        Subject {
            agent,
            host,
            labels,
        }
    }

    #[test]
    fn which_agents_a_silence_covers() {
        let none = BTreeMap::new();
        let logs = BTreeMap::from([("team".to_owned(), "logs".to_owned())]);
        let mut labelled = silence("00000001", "*", None, 0, 10);
        labelled.labels = vec![("team".into(), Pattern::new("lo*").unwrap())];
        let rows: &[(&Silence, Subject, bool)] = &[
            (
                &silence("00000002", "web7-*", None, 0, 10),
                subject("web7-a1", None, &none),
                true,
            ),
            (
                &silence("00000002", "web7-*", None, 0, 10),
                subject("web8-a1", None, &none),
                false,
            ),
            (
                &silence("00000003", "*", Some("rack7-*"), 0, 10),
                subject("a", Some("rack7-01"), &none),
                true,
            ),
            (
                &silence("00000003", "*", Some("rack7-*"), 0, 10),
                subject("a", Some("rack8-01"), &none),
                false,
            ),
            // A host glob never matches an agent whose host is unknown.
            (
                &silence("00000003", "*", Some("*"), 0, 10),
                subject("a", None, &none),
                false,
            ),
            (&labelled, subject("a", None, &logs), true),
            (&labelled, subject("a", None, &none), false),
        ];
        for (s, subj, covers) in rows {
            assert_eq!(
                s.covers(subj),
                *covers,
                "{} on {}",
                s.record.agent,
                subj.agent
            );
        }
    }

    #[test]
    fn a_notice_is_silenced_until_the_last_of_silences_that_follow_each_other() {
        let none = BTreeMap::new();
        let s = Silences::new(vec![
            silence("0000000a", "web7-*", None, 0, 100),
            // Begins before the first ends: one maintenance, extended.
            silence("0000000b", "web7-a1", None, 90, 200),
            // After a gap: the notice goes out in the gap.
            silence("0000000c", "web7-a1", None, 300, 400),
            silence("0000000d", "other", None, 0, 1000),
        ]);
        let a1 = subject("web7-a1", None, &none);
        let a2 = subject("web7-a2", None, &none);
        assert_eq!(s.until(&a1, t(10)), Some(t(200)));
        assert_eq!(s.until(&a2, t(10)), Some(t(100)));
        assert_eq!(s.until(&a1, t(250)), None, "in the gap");
        assert_eq!(s.until(&a1, t(300)), Some(t(400)), "begun");
        assert_eq!(s.until(&a1, t(400)), None, "ended: the end is not in force");
        assert_eq!(s.active(t(10)), 2);
        assert_eq!(s.covering(&a1, t(95)), vec!["0000000a", "0000000b"]);
    }

    #[test]
    fn a_record_with_a_bad_glob_is_refused_with_the_field() {
        let mut r = silence("00000001", "*", None, 0, 10).record;
        r.host = Some("[web".into());
        let e = Silence::new("00000001", r).unwrap_err();
        assert!(e.starts_with("host: `[web` is not a glob"), "{e}");
    }
}
