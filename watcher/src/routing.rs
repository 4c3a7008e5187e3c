//! Which channels an alert goes to: the file's `[[route]]` tables, pure.
//!
//! Routes are tried in order, as Alertmanager's are: the first that matches decides, unless it
//! says `continue = true`, in which case the next ones are tried too and every match adds its
//! channels. An alert no route matches goes to the default channels (`[alerts] default_channels`,
//! every channel unless said otherwise), so nothing is ever left unrouted. The watcher's own
//! notices (`blind`, `sighted`) go to every channel: a watcher that cannot see must be heard.

use std::collections::BTreeSet;

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
    fn matches(&self, alert: &Alert) -> bool {
        (self.events.is_empty() || self.events.contains(&alert.event))
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

    /// The channels (by key) `alert` goes to, out of `all`.
    pub fn targets(&self, alert: &Alert, all: &[String]) -> BTreeSet<String> {
        if matches!(
            alert.event,
            AlertKind::Blind | AlertKind::Sighted | AlertKind::Test
        ) {
            return all.iter().cloned().collect();
        }
        let mut out = BTreeSet::new();
        let mut matched = false;
        for route in &self.routes {
            if route.matches(alert) {
                matched = true;
                out.extend(route.channels.iter().cloned());
                if !route.continue_ {
                    break;
                }
            }
        }
        if !matched {
            match &self.default {
                Some(d) => out.extend(d.iter().cloned()),
                None => out.extend(all.iter().cloned()),
            }
        }
        out
    }

    /// The channels of `all` that `alert` does not go to: its notice counts as done for them.
    pub fn not_for(&self, alert: &Alert, all: &[String]) -> BTreeSet<String> {
        if self.routes.is_empty() && self.default.is_none() {
            return BTreeSet::new();
        }
        let to = self.targets(alert, all);
        all.iter().filter(|c| !to.contains(*c)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn alert(agent: &str, host: Option<&str>, event: AlertKind) -> Alert {
        Alert {
            event,
            agent: agent.into(),
            host: host.map(str::to_owned),
            reason: "exited with code 3".into(),
            at: UNIX_EPOCH,
            restarts: None,
            crashes: 1,
            outage: None,
            last_exit: None,
            zxid: None,
            key: None,
            ticket: None,
            not_for: BTreeSet::new(),
            labels: Default::default(),
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
    fn a_bad_glob_is_said() {
        let e = Pattern::new("web-[").expect_err("unclosed class");
        assert!(e.starts_with("`web-[` is not a glob: "), "{e}");
        assert!(Pattern::new("web-{1,2}")
            .expect("alternatives")
            .matches("web-2"));
    }
}
