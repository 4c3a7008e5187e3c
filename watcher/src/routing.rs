//! Which channels an alert goes to: the file's `[[route]]` tables, pure.
//!
//! Routes are tried in order, as Alertmanager's are: the first that matches decides, unless it
//! says `continue = true`, in which case the next ones are tried too and every match adds its
//! channels. An alert no route matches goes to the default channels (`[alerts] default_channels`,
//! every channel unless said otherwise), so nothing is ever left unrouted. The watcher's own
//! notices (`blind`, `sighted`) go to every channel: a watcher that cannot see must be heard.
//!
//! A route with `after` escalates: its channels get an outage's `down` (and `failed`) only if the
//! outage is still open that long after the notice, and then its `recovered`; an outage that ended
//! sooner never reaches them. The router only says which channels wait and how long
//! ([`Plan::later`]); holding the notices back, across a watcher failover too, is the ledger's.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use globset::{Glob, GlobMatcher};

use crate::alert::{Alert, AlertKind};

/// One `[[route]]`, its channels given by key.
#[derive(Clone, Debug)]
pub struct Route {
    /// Globs on the agent id; empty: any agent.
    pub agents: Vec<Pattern>,
    /// Globs on the host; empty: any host. An alert without a host matches only `*`.
    pub hosts: Vec<Pattern>,
    /// Globs on the agent's labels: each named label must be there and match; empty: any.
    pub labels: Vec<(String, Pattern)>,
    /// Events it takes; empty: every event.
    pub events: BTreeSet<AlertKind>,
    pub channels: BTreeSet<String>,
    pub continue_: bool,
    /// Escalation: its channels get a `down` or `failed` only once the outage has lasted this
    /// long, and then the `recovered`.
    pub after: Option<Duration>,
}

/// Where one alert goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Channels (by key) it goes to at once.
    pub now: BTreeSet<String>,
    /// Channels it goes to only if its outage is still open this long after it: escalations.
    /// Never one of `now`.
    pub later: BTreeMap<String, Duration>,
}

/// A glob as written (for `config check`) and compiled.
#[derive(Clone, Debug)]
pub struct Pattern {
    pub text: String,
    matcher: GlobMatcher,
}

impl Pattern {
    /// `*` any run of characters, `?` one, `[a-z]` a class, `{a,b}` alternatives.
    pub fn new(text: &str) -> Result<Pattern, String> {
        let glob = Glob::new(text).map_err(|e| format!("`{text}` is not a glob: {}", e.kind()))?;
        Ok(Pattern {
            text: text.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }

    pub fn matches(&self, s: &str) -> bool {
        self.matcher.is_match(s)
    }
}

impl Route {
    /// An escalation takes the `recovered` of what it escalated, whatever its `events` say: the
    /// phone that rang for a `down` hears that it is over.
    fn takes(&self, event: AlertKind) -> bool {
        self.events.is_empty()
            || self.events.contains(&event)
            || (self.after.is_some()
                && event == AlertKind::Recovered
                && (self.events.contains(&AlertKind::Down)
                    || self.events.contains(&AlertKind::Failed)))
    }

    fn matches(&self, alert: &Alert) -> bool {
        self.takes(alert.event)
            && (self.agents.is_empty() || self.agents.iter().any(|p| p.matches(&alert.agent)))
            && (self.hosts.is_empty()
                || self
                    .hosts
                    .iter()
                    .any(|p| p.matches(alert.host.as_deref().unwrap_or(""))))
            && self
                .labels
                .iter()
                .all(|(name, p)| alert.labels.get(name).is_some_and(|value| p.matches(value)))
    }
}

/// The routes and the channels behind them.
#[derive(Clone, Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
    /// Where an alert no route matches goes; `None`: every channel.
    default: Option<BTreeSet<String>>,
}

impl Router {
    /// Every channel gets every alert (no route, no default).
    pub fn everywhere() -> Router {
        Router::default()
    }

    pub fn new(routes: Vec<Route>, default: Option<BTreeSet<String>>) -> Router {
        Router { routes, default }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn default_channels(&self) -> Option<&BTreeSet<String>> {
        self.default.as_ref()
    }

    /// Some route escalates (has `after`).
    pub fn escalates(&self) -> bool {
        self.routes.iter().any(|r| r.after.is_some())
    }

    /// Where `alert` goes, out of `all` (channel keys).
    pub fn plan(&self, alert: &Alert, all: &[String]) -> Plan {
        if matches!(
            alert.event,
            AlertKind::Blind | AlertKind::Sighted | AlertKind::Test
        ) {
            return Plan {
                now: all.iter().cloned().collect(),
                later: BTreeMap::new(),
            };
        }
        let mut plan = Plan::default();
        let mut matched = false;
        for route in &self.routes {
            // An escalation pages for an outage still open, not for a degradation (the agent
            // runs, and its `healthy` would not release what was held): such a route does not
            // take health notices, which go on to the next route, or to the default channels.
            if !route.matches(alert) || (route.after.is_some() && alert.event.is_health()) {
                continue;
            }
            matched = true;
            match (route.after, alert.event) {
                (None, _) => plan.now.extend(route.channels.iter().cloned()),
                // A `recovered` goes where its outage was escalated: it lasted long enough.
                // One that ended sooner matches all the same (nothing falls through to the
                // default channels) and goes nowhere here.
                (Some(after), AlertKind::Recovered) => {
                    if alert.outage.is_some_and(|lasted| lasted >= after) {
                        plan.now.extend(route.channels.iter().cloned());
                    }
                }
                (Some(after), _) => {
                    for c in &route.channels {
                        let wait = plan.later.entry(c.clone()).or_insert(after);
                        *wait = (*wait).min(after);
                    }
                }
            }
            if !route.continue_ {
                break;
            }
        }
        if !matched {
            match &self.default {
                Some(d) => plan.now.extend(d.iter().cloned()),
                None => plan.now.extend(all.iter().cloned()),
            }
        }
        // A channel that has it now does not wait for it too.
        plan.later.retain(|c, _| !plan.now.contains(c));
        plan
    }

    /// The channels (by key) `alert` goes to at once, out of `all`.
    pub fn targets(&self, alert: &Alert, all: &[String]) -> BTreeSet<String> {
        self.plan(alert, all).now
    }

    /// The channels of `all` that `alert` does not go to, now or later: its notice counts as
    /// done for them.
    pub fn not_for(&self, alert: &Alert, all: &[String]) -> BTreeSet<String> {
        if self.routes.is_empty() && self.default.is_none() {
            return BTreeSet::new();
        }
        let plan = self.plan(alert, all);
        all.iter()
            .filter(|c| !plan.now.contains(*c) && !plan.later.contains_key(*c))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn alert(agent: &str, host: Option<&str>, event: AlertKind) -> Alert {
        Alert {
            host: host.map(str::to_owned),
            crashes: 1,
            ..Alert::new(event, agent, "exited with code 3", UNIX_EPOCH)
        }
    }

    fn route(
        agents: &[&str],
        hosts: &[&str],
        events: &[AlertKind],
        to: &[&str],
        cont: bool,
    ) -> Route {
        Route {
            labels: vec![],
            agents: agents
                .iter()
                .map(|a| Pattern::new(a).expect("glob"))
                .collect(),
            hosts: hosts
                .iter()
                .map(|h| Pattern::new(h).expect("glob"))
                .collect(),
            events: events.iter().copied().collect(),
            channels: to.iter().map(|c| c.to_string()).collect(),
            continue_: cont,
            after: None,
        }
    }

    const ALL: [&str; 4] = ["ops", "mail", "sms", "am"];

    fn all() -> Vec<String> {
        ALL.iter().map(|c| c.to_string()).collect()
    }

    fn set(cs: &[&str]) -> BTreeSet<String> {
        cs.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn routes_take_the_first_match_unless_it_continues() {
        use AlertKind::*;
        let router = Router::new(
            vec![
                route(&["web-*"], &[], &[Down, Failed], &["ops"], true),
                route(&["web-*"], &[], &[], &["sms"], false),
                route(&[], &["db?"], &[], &["mail"], false),
                route(&["*"], &[], &[], &["am"], false),
            ],
            None,
        );
        struct Case {
            what: &'static str,
            alert: Alert,
            to: &'static [&'static str],
        }
        let cases = [
            Case {
                what: "continue: both routes",
                alert: alert("web-1", Some("h"), Down),
                to: &["ops", "sms"],
            },
            Case {
                what: "the event filter skips the first",
                alert: alert("web-1", Some("h"), Recovered),
                to: &["sms"],
            },
            Case {
                what: "a host glob",
                alert: alert("api-1", Some("db7"), Down),
                to: &["mail"],
            },
            Case {
                what: "the catch-all",
                alert: alert("api-1", Some("db77"), Down),
                to: &["am"],
            },
            Case {
                what: "no host matches only a host glob of *",
                alert: alert("api-1", None, Down),
                to: &["am"],
            },
            Case {
                what: "the watcher's own notices go everywhere",
                alert: alert("watcher", None, Blind),
                to: &ALL,
            },
        ];
        for c in cases {
            assert_eq!(router.targets(&c.alert, &all()), set(c.to), "{}", c.what);
            let not_for = router.not_for(&c.alert, &all());
            assert_eq!(
                not_for,
                all()
                    .into_iter()
                    .filter(|ch| !c.to.contains(&ch.as_str()))
                    .collect(),
                "{}",
                c.what
            );
        }
    }

    #[test]
    fn what_no_route_takes_goes_to_the_default_channels() {
        let some = Router::new(
            vec![route(&["web-*"], &[], &[], &["ops"], false)],
            Some(set(&["mail"])),
        );
        assert_eq!(
            some.targets(&alert("api-1", None, AlertKind::Down), &all()),
            set(&["mail"])
        );
        let every = Router::new(vec![route(&["web-*"], &[], &[], &["ops"], false)], None);
        assert_eq!(
            every.targets(&alert("api-1", None, AlertKind::Down), &all()),
            set(&ALL)
        );
        assert!(Router::everywhere()
            .not_for(&alert("api-1", None, AlertKind::Down), &all())
            .is_empty());
    }

    #[test]
    fn labels_must_be_there_and_match() {
        let mut by_team = route(&[], &[], &[], &["ops"], false);
        by_team.labels = vec![
            ("team".into(), Pattern::new("logs").expect("glob")),
            ("dc".into(), Pattern::new("bj*").expect("glob")),
        ];
        let router = Router::new(vec![by_team], Some(set(&["mail"])));
        let labelled = |pairs: &[(&str, &str)]| Alert {
            labels: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..alert("a1", Some("h"), AlertKind::Down)
        };
        for (pairs, to) in [
            (&[("team", "logs"), ("dc", "bj2")][..], &["ops"][..]),
            (&[("team", "logs")][..], &["mail"][..]),
            (&[("team", "kafka"), ("dc", "bj2")][..], &["mail"][..]),
            (&[][..], &["mail"][..]),
        ] {
            assert_eq!(
                router.targets(&labelled(pairs), &all()),
                set(to),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn an_escalation_waits_and_takes_the_recovered_only_of_what_it_escalated() {
        use AlertKind::*;
        let ten = Duration::from_secs(600);
        let mut sms = route(&["web-*"], &[], &[], &["sms"], false);
        sms.after = Some(ten);
        let mut sms_down_only = route(&["db-*"], &[], &[Down], &["sms"], false);
        sms_down_only.after = Some(ten);
        let mut mail_soon = route(&["web-*"], &[], &[], &["mail"], true);
        mail_soon.after = Some(Duration::from_secs(60));
        let router = Router::new(
            vec![
                route(&["web-*", "db-*"], &[], &[Down, Failed], &["ops"], true),
                mail_soon,
                sms,
                sms_down_only,
            ],
            Some(set(&["am"])),
        );
        let recovered = |agent: &str, lasted: u64| Alert {
            outage: Some(Duration::from_secs(lasted)),
            ..alert(agent, Some("h"), Recovered)
        };
        let later = |pairs: &[(&str, u64)]| -> BTreeMap<String, Duration> {
            pairs
                .iter()
                .map(|(c, s)| (c.to_string(), Duration::from_secs(*s)))
                .collect()
        };
        struct Case {
            what: &'static str,
            alert: Alert,
            now: &'static [&'static str],
            later: BTreeMap<String, Duration>,
        }
        let cases = [
            Case {
                what: "a down: the chat group now, mail after a minute, the phone after ten",
                alert: alert("web-1", Some("h"), Down),
                now: &["ops"],
                later: later(&[("mail", 60), ("sms", 600)]),
            },
            Case {
                what: "failed escalates too",
                alert: alert("web-1", Some("h"), Failed),
                now: &["ops"],
                later: later(&[("mail", 60), ("sms", 600)]),
            },
            Case {
                what:
                    "an outage of 30 s: its recovered reaches neither escalation, nor the default",
                alert: recovered("web-1", 30),
                now: &[],
                later: later(&[]),
            },
            Case {
                what: "an outage of 5 min: mail was told, the phone was not",
                alert: recovered("web-1", 300),
                now: &["mail"],
                later: later(&[]),
            },
            Case {
                what: "an outage of exactly 10 min: both were told",
                alert: recovered("web-1", 600),
                now: &["mail", "sms"],
                later: later(&[]),
            },
            Case {
                what: "events = [down] still takes the recovered of what it escalated",
                alert: recovered("db-1", 900),
                now: &["sms"],
                later: later(&[]),
            },
            Case {
                what: "events = [down] does not escalate a failed",
                alert: alert("db-1", Some("h"), Failed),
                now: &["ops"],
                later: later(&[]),
            },
            Case {
                what: "a degradation is not escalated (the agent runs): no route takes it here, \
                       so the default channels do",
                alert: alert("web-1", Some("h"), Degraded),
                now: &["am"],
                later: later(&[]),
            },
            Case {
                what: "nor is its end",
                alert: alert("web-1", Some("h"), Healthy),
                now: &["am"],
                later: later(&[]),
            },
        ];
        for c in cases {
            let plan = router.plan(&c.alert, &all());
            assert_eq!(plan.now, set(c.now), "{}", c.what);
            assert_eq!(plan.later, c.later, "{}", c.what);
            let not_for = router.not_for(&c.alert, &all());
            for ch in all() {
                let goes = plan.now.contains(&ch) || plan.later.contains_key(&ch);
                assert_eq!(!goes, not_for.contains(&ch), "{}: {ch}", c.what);
            }
        }
    }

    #[test]
    fn a_channel_told_now_is_not_told_again_later() {
        let mut late = route(&[], &[], &[], &["ops", "sms"], false);
        late.after = Some(Duration::from_secs(600));
        let router = Router::new(vec![route(&[], &[], &[], &["ops"], true), late], None);
        let plan = router.plan(&alert("a1", Some("h"), AlertKind::Down), &all());
        assert_eq!(plan.now, set(&["ops"]));
        assert_eq!(
            plan.later.keys().cloned().collect::<BTreeSet<_>>(),
            set(&["sms"])
        );
    }

    #[test]
    fn a_bad_glob_is_said() {
        let e = Pattern::new("web-[").expect_err("unclosed class");
        assert!(e.starts_with("`web-[` is not a glob: "), "{e}");
        assert!(Pattern::new("web-{1,2}")
            .expect("alternatives")
            .matches("web-2"));
    }
}
