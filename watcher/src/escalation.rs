//! Notices held back from the channels of an escalation route (`after`) until they are due.
//!
//! The ledger holds a `down` or `failed` here for each channel that gets it only if its outage is
//! still open `after` it; a `recovered` or a planned stop of the agent ends the wait, and the due
//! time releases it. The outage record keeps the notice pending for those channels, so a new
//! leader holds it again from the record, due at the same wall-clock time (the notice's time plus
//! `after`), and an escalation survives a failover like any notice. A leader that steps down lets
//! go of what is recorded (whoever leads next holds it from the record) and keeps what is not yet.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::alert::Alert;
use crate::held::{Holding, Waiting};

/// One notice held back from one channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    pub due: SystemTime,
    pub channel: String,
    /// As it will be handed to the channel: with its ticket, or its key once recorded.
    pub alert: Alert,
}

impl Waiting for Held {
    fn alert(&self) -> &Alert {
        &self.alert
    }
    fn channel(&self) -> &str {
        &self.channel
    }
    fn at(&self) -> SystemTime {
        self.due
    }
}

/// The notices held back for escalation routes.
pub type Escalations = Holding<Held>;

impl Holding<Held> {
    /// Holds `alert` back from each channel of `later` for its wait, counted from the alert's
    /// time (when the transition happened, the same in every watcher); once per notice and
    /// channel.
    pub fn hold(&mut self, alert: &Alert, later: &BTreeMap<String, Duration>) {
        let id = alert.notice_id();
        for (channel, wait) in later {
            if self.holds(&id, channel) {
                continue;
            }
            self.push(Held {
                due: alert.at + *wait,
                channel: channel.clone(),
                alert: alert.clone(),
            });
        }
    }

    /// Those due at `wall`, removed, in the order they fell due.
    pub fn due(&mut self, wall: SystemTime) -> Vec<Held> {
        let mut due = self.take_where(|h| h.due <= wall);
        due.sort_by(|a, b| (a.due, &a.alert.agent).cmp(&(b.due, &b.alert.agent)));
        due
    }

    /// Those of `agent`, removed: its outage ended.
    pub fn of_agent(&mut self, agent: &str) -> Vec<Held> {
        self.take_where(|h| h.alert.agent == agent)
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
