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
use crate::held::{Holding, Waiting};
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

impl Waiting for Hush {
    fn alert(&self) -> &Alert {
        &self.alert
    }
    fn channel(&self) -> &str {
        &self.channel
    }
    fn at(&self) -> SystemTime {
        self.until.at
    }
}

/// The notices hushed by silences (one or two per silenced outage and channel).
pub type Hushed = Holding<Hush>;

impl Holding<Hush> {
    /// Hushes `alert` for `channel` until `until`; once per notice and channel (again: retimed).
    pub fn hold(&mut self, alert: &Alert, channel: &str, until: Until) {
        if let Some(h) = self.find_mut(&alert.notice_id(), channel) {
            h.until = until;
            return;
        }
        self.push(Hush {
            until,
            channel: channel.to_owned(),
            alert: alert.clone(),
        });
    }

    /// Those of the outage record `key` (an agent id, or its health record's key), removed: the
    /// outage ended, or its agent stopped as planned.
    pub fn of_record(&mut self, key: &str) -> Vec<Hush> {
        self.take_where(|h| h.alert.record_key() == key)
    }
}
