//! Notices held back from the channels of an escalation route (`after`) until they are due.
//!
//! The ledger holds a `down` or `failed` here for each channel that gets it only if its outage is
//! still open `after` it; a `recovered` or a planned stop of the agent ends the wait, and the due
//! time releases it. Nothing here outlives a leader: the outage record keeps the notice pending
//! for those channels, so a new leader holds it again from the record, due at the same wall-clock
//! time (the notice's time plus `after`), and an escalation survives a failover like any notice.
//! Wall-clock time, not `Instant`: the due time must mean the same in every watcher.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::alert::Alert;

/// Removes from `held` those `pred` picks, and gives them: the notices held back by an escalation
/// or a silence are taken out a few at a time (an agent's, a notice's, those due).
pub fn take_where<T>(held: &mut Vec<T>, pred: impl FnMut(&T) -> bool) -> Vec<T> {
    let (taken, keep) = std::mem::take(held).into_iter().partition(pred);
    *held = keep;
    taken
}

/// One notice held back from one channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    pub due: SystemTime,
    pub channel: String,
    /// As it will be handed to the channel: with its ticket, or its key once recorded.
    pub alert: Alert,
}

/// The notices held back, in no particular order (a few per open outage at most).
#[derive(Clone, Debug, Default)]
pub struct Escalations {
    held: Vec<Held>,
}

impl Escalations {
    /// Holds `alert` back from each channel of `later` for its wait, counted from the alert's
    /// time (when the transition happened, the same in every watcher).
    pub fn hold(&mut self, alert: &Alert, later: &BTreeMap<String, Duration>) {
        for (channel, wait) in later {
            if self
                .held
                .iter()
                .any(|h| h.channel == *channel && h.alert.notice_id() == alert.notice_id())
            {
                continue;
            }
            self.held.push(Held {
                due: alert.at + *wait,
                channel: channel.clone(),
                alert: alert.clone(),
            });
        }
    }

    /// Those due at `wall`, removed, in the order they fell due.
    pub fn due(&mut self, wall: SystemTime) -> Vec<Held> {
        let mut due = take_where(&mut self.held, |h| h.due <= wall);
        due.sort_by(|a, b| (a.due, &a.alert.agent).cmp(&(b.due, &b.alert.agent)));
        due
    }

    /// Those of `agent`, removed: its outage ended.
    pub fn of_agent(&mut self, agent: &str) -> Vec<Held> {
        take_where(&mut self.held, |h| h.alert.agent == agent)
    }

    /// Every one, removed: this watcher no longer leads.
    pub fn clear(&mut self) -> Vec<Held> {
        std::mem::take(&mut self.held)
    }

    /// Held again as they were (taken by [`Escalations::clear`]), due when they were.
    pub fn restore(&mut self, held: Vec<Held>) {
        self.held.extend(held);
    }

    /// Those of this notice (by its notice id), removed: another watcher reported it.
    pub fn of_notice(&mut self, notice_id: &str) -> Vec<Held> {
        take_where(&mut self.held, |h| h.alert.notice_id() == notice_id)
    }

    /// When the next falls due.
    pub fn next(&self) -> Option<SystemTime> {
        self.held.iter().map(|h| h.due).min()
    }

    /// Whether `channel` still waits for this notice (by its notice id).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertKind;
    use std::time::UNIX_EPOCH;

    fn down(agent: &str, secs: u64) -> Alert {
        Alert {
            host: Some("h".into()),
            crashes: 1,
            zxid: Some(secs as i64),
            ..Alert::new(
                AlertKind::Down,
                agent,
                "exited with code 3",
                UNIX_EPOCH + Duration::from_secs(secs),
            )
        }
    }

    fn waits(pairs: &[(&str, u64)]) -> BTreeMap<String, Duration> {
        pairs
            .iter()
            .map(|(c, s)| (c.to_string(), Duration::from_secs(*s)))
            .collect()
    }

    #[test]
    fn a_held_notice_falls_due_at_its_time_plus_the_wait_once() {
        let mut e = Escalations::default();
        e.hold(&down("a1", 100), &waits(&[("sms", 600), ("mail", 60)]));
        e.hold(&down("a1", 100), &waits(&[("sms", 600)]));
        e.hold(&down("a2", 200), &waits(&[("sms", 600)]));
        assert_eq!(e.len(), 3, "holding the same notice twice holds it once");
        assert_eq!(e.next(), Some(UNIX_EPOCH + Duration::from_secs(160)));
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        assert!(e.due(at(159)).is_empty());
        let due: Vec<(String, String)> = e
            .due(at(700))
            .into_iter()
            .map(|h| (h.alert.agent, h.channel))
            .collect();
        assert_eq!(
            due,
            [("a1".into(), "mail".into()), ("a1".into(), "sms".into())]
        );
        assert!(e.holds(&down("a2", 200).notice_id(), "sms"));
        assert_eq!(e.of_agent("a2").len(), 1);
        assert!(e.is_empty() && e.next().is_none());
    }
}
