//! The dead-man switch: a watcher that cannot see ZooKeeper cannot see outages, and silence would
//! read as "all is well". So after `--blind-after` without a working session it says so through
//! its channels, and says again when it sees.

use std::time::{Duration, Instant, SystemTime};

use crate::alert::{Alert, AlertKind};

pub struct Blindness {
    after: Duration,
    who: String,
    host: Option<String>,
    /// Since when there has been no working session.
    since: Option<(Instant, SystemTime)>,
    announced: bool,
}

impl Blindness {
    /// Starts blind: until the first session works, nothing is seen.
    pub fn new(after: Duration, now: Instant, wall: SystemTime) -> Blindness {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok());
        let who = format!(
            "flume-watcher on {} (pid {})",
            host.as_deref().unwrap_or("unknown host"),
            std::process::id()
        );
        Blindness {
            after,
            who,
            host,
            since: Some((now, wall)),
            announced: false,
        }
    }

    /// Since when there has been no working session and full view (`None`: it sees).
    pub fn blind_since(&self) -> Option<SystemTime> {
        self.since.map(|(_, wall)| wall)
    }

    pub fn lost(&mut self, now: Instant, wall: SystemTime) {
        self.since.get_or_insert((now, wall));
    }

    /// The session works: a `sighted` notice if blindness was announced.
    pub fn seen(&mut self, now: Instant, wall: SystemTime) -> Option<Alert> {
        let (since, _) = self.since.take()?;
        if !std::mem::replace(&mut self.announced, false) {
            return None;
        }
        let blind_for = now.saturating_duration_since(since);
        let mut alert = self.alert(
            AlertKind::Sighted,
            wall,
            format!(
                "sees ZooKeeper again after {} blind; outages from that time are reported now",
                common::time::human(blind_for)
            ),
        );
        alert.outage = Some(blind_for);
        Some(alert)
    }

    /// When to call [`Blindness::check`] next.
    pub fn due(&self) -> Option<Instant> {
        match self.since {
            Some((since, _)) if !self.announced => Some(since + self.after),
            _ => None,
        }
    }

    /// A `blind` notice once blind for `after`.
    pub fn check(&mut self, now: Instant, wall: SystemTime) -> Option<Alert> {
        let due = self.due()?;
        if now < due {
            return None;
        }
        self.announced = true;
        let since = self.since.map(|(_, w)| w).unwrap_or(wall);
        Some(self.alert(
            AlertKind::Blind,
            wall,
            format!(
                "no working ZooKeeper session since {}: agent outages are not seen until it is back",
                common::time::format(since)
            ),
        ))
    }

    fn alert(&self, event: AlertKind, at: SystemTime, reason: String) -> Alert {
        Alert {
            host: self.host.clone(),
            ..Alert::new(event, self.who.clone(), reason, at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blind_once_after_the_threshold_then_sighted_once() {
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let at = |s: u64| (t0 + Duration::from_secs(s), w0 + Duration::from_secs(s));
        let mut b = Blindness::new(Duration::from_secs(60), t0, w0);
        assert_eq!(
            b.seen(at(1).0, at(1).1),
            None,
            "a first session within the threshold says nothing"
        );
        assert_eq!(b.due(), None);
        b.lost(at(10).0, at(10).1);
        b.lost(at(20).0, at(20).1);
        assert_eq!(b.due(), Some(at(70).0), "counted from the first loss");
        assert_eq!(b.check(at(69).0, at(69).1), None);
        let blind = b.check(at(70).0, at(70).1).expect("blind after 60 s");
        assert_eq!(blind.event, AlertKind::Blind);
        assert!(
            blind.reason.contains("no working ZooKeeper session"),
            "{}",
            blind.reason
        );
        assert_eq!(b.check(at(200).0, at(200).1), None, "said once");
        let sighted = b.seen(at(250).0, at(250).1).expect("sighted");
        assert_eq!(sighted.event, AlertKind::Sighted);
        assert_eq!(sighted.outage, Some(Duration::from_secs(240)));
        assert_eq!(b.seen(at(251).0, at(251).1), None);
    }
}
