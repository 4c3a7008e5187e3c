//! Notices held back from their channels by a silence, until it ends.
//!
//! The ledger hushes a notice (a `down`, `failed` or `degraded`) about an agent a silence covers,
//! for every channel it would go to, until the silence ends ([`crate::silence::Silences::until`]).
//! The outage is recorded all the same, and the record keeps the notice pending for those
//! channels, so a new leader hushes it again from the record. When the silence ends with the
//! outage still open, the notice goes out then; when the outage ends first, it never goes, and
//! neither does its end. Unlike an escalation's wait, the time a hushed notice is due moves: a
//! silence can be extended or removed at any time, so the ledger retimes them when silences change.

use std::time::SystemTime;

use crate::alert::{Alert, SilencedBy};
use crate::escalation::take_where;
use crate::silence::Silence;

/// The silence a notice waits for (the last of those that cover it), as known when last timed.
#[derive(Clone, Debug, PartialEq)]
pub struct Until {
    pub at: SystemTime,
    pub silence: String,
    pub comment: String,
}

impl Until {
    pub fn of(s: &Silence) -> Until {
        Until {
            at: s.ends,
            silence: s.id.clone(),
            comment: s.record.comment.clone(),
        }
    }

    /// What the notice says of it once it goes: ended at its end, or when removed (`wall`).
    pub fn ended(&self, wall: SystemTime) -> SilencedBy {
        SilencedBy {
            id: self.silence.clone(),
            comment: self.comment.clone(),
            ended: wall.min(self.at),
        }
    }
}

/// One notice hushed for one channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Hush {
    pub until: Until,
    pub channel: String,
    /// As it will be handed to the channel: with its ticket, or its key once recorded.
    pub alert: Alert,
}

/// The notices hushed, in no particular order (one or two per silenced outage and channel).
#[derive(Clone, Debug, Default)]
pub struct Hushed {
    held: Vec<Hush>,
}

impl Hushed {
    /// Hushes `alert` for `channel` until `until`; once per notice and channel.
    pub fn hold(&mut self, alert: &Alert, channel: &str, until: Until) {
        let id = alert.notice_id();
        if let Some(h) = self
            .held
            .iter_mut()
            .find(|h| h.channel == channel && h.alert.notice_id() == id)
        {
            h.until = until;
            return;
        }
        self.held.push(Hush {
            until,
            channel: channel.to_owned(),
            alert: alert.clone(),
        });
    }

    /// Every one, removed: to be timed again (silences changed, or one fell due).
    pub fn take_all(&mut self) -> Vec<Hush> {
        std::mem::take(&mut self.held)
    }

    /// Those of the outage record `key` (an agent id, or its health record's key), removed: the
    /// outage ended, or its agent stopped as planned.
    pub fn of_record(&mut self, key: &str) -> Vec<Hush> {
        take_where(&mut self.held, |h| h.alert.record_key() == key)
    }

    /// Those of this notice (by its notice id), removed: another watcher reported it.
    pub fn of_notice(&mut self, notice_id: &str) -> Vec<Hush> {
        take_where(&mut self.held, |h| h.alert.notice_id() == notice_id)
    }

    /// When the next one's silences end.
    pub fn next(&self) -> Option<SystemTime> {
        self.held.iter().map(|h| h.until.at).min()
    }

    /// Whether `channel` has this notice (by its notice id) hushed.
    pub fn holds(&self, notice_id: &str, channel: &str) -> bool {
        self.held
            .iter()
            .any(|h| h.channel == channel && h.alert.notice_id() == notice_id)
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}
