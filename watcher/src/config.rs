//! The watcher's configuration file (TOML): ZooKeeper, alert settings and channels, read whole
//! and checked before anything starts.
//!
//! Every problem is found in one pass and named with its place (`channel[2].url: …`, tables of an
//! array counted from 1, as a person counts them in the file), so that an operator fixes a file
//! once rather than once per problem. Flags and environment variables override what the file
//! says (`cli.rs` does the merging); this module only reads the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::alert::AlertKind;
use crate::channels::{kinds, Configured};
use crate::message::{Lang, Zone};
use crate::routing::{Pattern, Route};

/// What the file says; `None` where it says nothing, so that flags and defaults can fill in.
#[derive(Debug, Default)]
pub struct FileConfig {
    pub zookeeper: ZkSection,
    pub alerts: AlertsSection,
    /// `[http]`: the `--listen` listener.
    pub http: HttpSection,
    pub channels: Vec<Configured>,
    /// The `[[route]]` tables, their channels by key.
    pub routes: Vec<Route>,
    /// `[alerts] default_channels`, by key: where what no route takes goes (`None`: everywhere).
    pub default_channels: Option<BTreeSet<String>>,
}

/// `[zookeeper]`.
#[derive(Debug, Default)]
pub struct ZkSection {
    pub connect: Option<String>,
    pub root: Option<String>,
    pub auth_file: Option<PathBuf>,
    pub session_timeout: Option<Duration>,
    pub acl: Option<String>,
}

/// `[alerts]`.
#[derive(Debug, Default)]
pub struct AlertsSection {
    pub lang: Option<Lang>,
    pub timezone: Option<Zone>,
    pub recovered_after: Option<Duration>,
    pub blind_after: Option<Duration>,
    pub retry_initial: Option<Duration>,
    pub retry_max: Option<Duration>,
}

/// `[http]`.
#[derive(Debug, Default)]
pub struct HttpSection {
    /// Like `--listen`: where to serve the status page, `/metrics`, `/healthz`, `/api/v1/agents`.
    pub listen: Option<std::net::SocketAddr>,
}

/// The file could not be used: every problem, one line each, with its place.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct FileProblems(pub Vec<String>);

/// Reads and checks the file at `path`.
pub fn load(path: &Path) -> Result<FileConfig, FileProblems> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| FileProblems(vec![format!("cannot read {}: {e}", path.display())]))?;
    parse(&text)
}

/// Checks a file's text.
pub fn parse(text: &str) -> Result<FileConfig, FileProblems> {
    let mut top: toml::Table = toml::from_str(text).map_err(|e| {
        // toml says where: "TOML parse error at line 3, column 7 | … | what".
        let said = e.to_string();
        FileProblems(vec![said
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ")
            .replace("  ", " ")])
    })?;
    let mut problems = Vec::new();
    let mut cfg = FileConfig::default();

    if let Some(table) = table_at(&mut top, "zookeeper", &mut problems) {
        let mut t = Keys::new("zookeeper", table, &mut problems);
        cfg.zookeeper = ZkSection {
            connect: t.text("connect"),
            root: t.text("root"),
            auth_file: t.take("auth_file"),
            session_timeout: t.duration("session_timeout"),
            acl: t.text("acl"),
        };
        t.finish();
    }
    let mut default_channels: Option<Vec<String>> = None;
    if let Some(table) = table_at(&mut top, "alerts", &mut problems) {
        let mut t = Keys::new("alerts", table, &mut problems);
        default_channels = t.take("default_channels");
        let lang = t
            .text("lang")
            .and_then(|l| Lang::parse(&l).map_err(|e| t.problem("lang", e)).ok());
        let timezone = t
            .text("timezone")
            .and_then(|z| Zone::parse(&z).map_err(|e| t.problem("timezone", e)).ok());
        cfg.alerts = AlertsSection {
            lang,
            timezone,
            recovered_after: t.duration("recovered_after"),
            blind_after: t.duration("blind_after"),
            retry_initial: t.duration("retry_initial"),
            retry_max: t.duration("retry_max"),
        };
        t.finish();
    }
    if let Some(table) = table_at(&mut top, "http", &mut problems) {
        let mut t = Keys::new("http", table, &mut problems);
        cfg.http.listen = t.text("listen").and_then(|a| {
            a.parse()
                .map_err(|e| {
                    t.problem(
                        "listen",
                        format!("`{a}` is not an address and port such as 127.0.0.1:9107 ({e})"),
                    )
                })
                .ok()
        });
        t.finish();
    }
    cfg.channels = channels(top.remove("channel"), &mut problems);
    let keys: BTreeMap<&str, String> = cfg
        .channels
        .iter()
        .map(|c| (c.label.as_str(), c.spec.key()))
        .collect();
    if default_channels.as_ref().is_some_and(Vec::is_empty) {
        problems.push(
            "alerts.default_channels: empty: what no route takes would go nowhere (leave the key out for every channel)"
                .to_owned(),
        );
    }
    if let Some(names) = default_channels {
        cfg.default_channels = Some(
            names
                .iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    channel_key(
                        &keys,
                        n,
                        &format!("alerts.default_channels[{i}]"),
                        &mut problems,
                    )
                })
                .collect(),
        );
    }
    cfg.routes = routes(top.remove("route"), &keys, &mut problems);
    for key in top.keys() {
        problems.push(format!(
            "{key}: unknown section (the file has [zookeeper], [alerts], [http], [[channel]] and [[route]])"
        ));
    }
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(FileProblems(problems))
    }
}

/// The `[[channel]]` tables: each read by its type, names unique, keys unique.
fn channels(value: Option<toml::Value>, problems: &mut Vec<String>) -> Vec<Configured> {
    let tables = match value {
        None => return Vec::new(),
        Some(toml::Value::Array(items)) => items,
        Some(_) => {
            problems.push("channel: must be an array of tables, written [[channel]]".to_owned());
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    let mut keys: Vec<(String, String)> = Vec::new();
    for (i, item) in tables.into_iter().enumerate() {
        let place = format!("channel[{}]", i + 1);
        let toml::Value::Table(mut table) = item else {
            problems.push(format!("{place}: must be a table, written [[channel]]"));
            continue;
        };
        let name = match table.remove("name") {
            None => None,
            Some(toml::Value::String(n)) if valid_name(&n) => Some(n),
            Some(toml::Value::String(n)) => {
                problems.push(format!(
                    "{place}.name: `{n}` is not a usable name (1 to 64 of letters, digits, `-`, `_` and `.`)"
                ));
                None
            }
            Some(_) => {
                problems.push(format!("{place}.name: must be a string"));
                None
            }
        };
        if let Some(n) = &name {
            if !names.insert(n.clone()) {
                problems.push(format!("{place} ({n}).name: two channels are named `{n}`"));
            }
        }
        let kind = match table.remove("type") {
            Some(toml::Value::String(t)) => match kinds::find(&t) {
                Some(kind) => kind,
                None => {
                    problems.push(format!(
                        "{place}.type: unknown channel type `{t}` (known: {})",
                        kinds::names()
                    ));
                    continue;
                }
            },
            Some(_) => {
                problems.push(format!("{place}.type: must be a string"));
                continue;
            }
            None => {
                problems.push(format!("{place}.type: missing (one of {})", kinds::names()));
                continue;
            }
        };
        let place = match &name {
            Some(n) => format!("{place} ({n})"),
            None => place,
        };
        match (kind.read)(table) {
            Ok(spec) => {
                let key = spec.key();
                let label = name.clone().unwrap_or_else(|| key.clone());
                if let Some((other, _)) = keys.iter().find(|(_, k)| *k == key) {
                    problems.push(format!(
                        "{place}: the same receiver as {other}: configure it once"
                    ));
                    continue;
                }
                keys.push((place, key));
                out.push(Configured { label, spec });
            }
            Err(found) => {
                for (key, message) in found {
                    problems.push(if key.is_empty() {
                        format!("{place}: {message}")
                    } else {
                        format!("{place}.{key}: {message}")
                    });
                }
            }
        }
    }
    out
}

/// The key of the channel named `name`, or a problem at `place`.
fn channel_key(
    keys: &BTreeMap<&str, String>,
    name: &str,
    place: &str,
    problems: &mut Vec<String>,
) -> Option<String> {
    match keys.get(name) {
        Some(k) => Some(k.clone()),
        None => {
            let known: Vec<&str> = keys.keys().copied().collect();
            problems.push(format!(
                "{place}: no channel is named `{name}` (named: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ));
            None
        }
    }
}

/// The `[[route]]` tables, checked: globs compile, events exist, channels are named.
fn routes(
    value: Option<toml::Value>,
    keys: &BTreeMap<&str, String>,
    problems: &mut Vec<String>,
) -> Vec<Route> {
    let tables = match value {
        None => return Vec::new(),
        Some(toml::Value::Array(items)) => items,
        Some(_) => {
            problems.push("route: must be an array of tables, written [[route]]".to_owned());
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, item) in tables.into_iter().enumerate() {
        let place = format!("route[{}]", i + 1);
        let toml::Value::Table(table) = item else {
            problems.push(format!("{place}: must be a table, written [[route]]"));
            continue;
        };
        let before = problems.len();
        let mut t = Keys::new(&place, table, problems);
        let globs = |t: &mut Keys, key: &'static str| -> Vec<Pattern> {
            let texts: Vec<String> = t.take(key).unwrap_or_default();
            texts
                .iter()
                .enumerate()
                .filter_map(|(j, g)| {
                    Pattern::new(g)
                        .map_err(|e| t.problem(&format!("{key}[{j}]"), e))
                        .ok()
                })
                .collect()
        };
        let agents = globs(&mut t, "agents");
        let hosts = globs(&mut t, "hosts");
        let label_globs: BTreeMap<String, String> = t.take("labels").unwrap_or_default();
        let mut labels = Vec::new();
        for (name, glob) in &label_globs {
            match Pattern::new(glob) {
                Ok(p) => labels.push((name.clone(), p)),
                Err(e) => t.problem(&format!("labels.{name}"), e),
            }
        }
        let events: Vec<String> = t.take("events").unwrap_or_default();
        let mut kinds = BTreeSet::new();
        for (j, e) in events.iter().enumerate() {
            match e.as_str() {
                "down" => kinds.insert(AlertKind::Down),
                "failed" => kinds.insert(AlertKind::Failed),
                "recovered" => kinds.insert(AlertKind::Recovered),
                "degraded" => kinds.insert(AlertKind::Degraded),
                "healthy" => kinds.insert(AlertKind::Healthy),
                "blind" | "sighted" => {
                    t.problem(&format!("events[{j}]"), format!("`{e}` is the watcher's own notice: it goes to every channel, whatever the routes"));
                    false
                }
                _ => {
                    t.problem(
                        &format!("events[{j}]"),
                        format!(
                            "`{e}` is not an event (down, failed, recovered, degraded, healthy)"
                        ),
                    );
                    false
                }
            };
        }
        let names: Option<Vec<String>> = t.take("channels");
        let continue_ = t.take::<bool>("continue").unwrap_or(false);
        let after = t.duration("after");
        if after == Some(Duration::ZERO) {
            t.problem(
                "after",
                "0s: leave `after` out for a route that sends at once".to_owned(),
            );
        }
        if after.is_some()
            && !kinds.is_empty()
            && !kinds.contains(&AlertKind::Down)
            && !kinds.contains(&AlertKind::Failed)
        {
            t.problem(
                "after",
                "an escalation holds back a down or failed: its events must name one of them"
                    .to_owned(),
            );
        }
        let place = t.place.clone();
        t.finish();
        let mut channels = BTreeSet::new();
        match names {
            None => problems.push(format!(
                "{place}.channels: missing (the channels it sends to)"
            )),
            Some(names) if names.is_empty() => problems.push(format!(
                "{place}.channels: empty (the channels it sends to)"
            )),
            Some(names) => {
                for (j, n) in names.iter().enumerate() {
                    if let Some(k) =
                        channel_key(keys, n, &format!("{place}.channels[{j}]"), problems)
                    {
                        channels.insert(k);
                    }
                }
            }
        }
        if problems.len() == before {
            out.push(Route {
                agents,
                hosts,
                labels,
                events: kinds,
                channels,
                continue_,
                after,
            });
        }
    }
    out
}

/// A channel name routes and logs can use: short, plain, stable.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The table at `key`, removed from `top`; a problem if it is something else.
fn table_at(top: &mut toml::Table, key: &str, problems: &mut Vec<String>) -> Option<toml::Table> {
    match top.remove(key)? {
        toml::Value::Table(t) => Some(t),
        _ => {
            problems.push(format!("{key}: must be a table, written [{key}]"));
            None
        }
    }
}

/// One table's keys, taken one by one; what is left at the end is unknown.
struct Keys<'p> {
    place: String,
    table: toml::Table,
    known: Vec<&'static str>,
    problems: &'p mut Vec<String>,
}

impl<'p> Keys<'p> {
    fn new(place: &str, table: toml::Table, problems: &'p mut Vec<String>) -> Keys<'p> {
        Keys {
            place: place.to_owned(),
            table,
            known: Vec::new(),
            problems,
        }
    }

    fn problem(&mut self, key: &str, message: String) {
        self.problems
            .push(format!("{}.{key}: {message}", self.place));
    }

    fn take<T: DeserializeOwned>(&mut self, key: &'static str) -> Option<T> {
        self.known.push(key);
        let value = self.table.remove(key)?;
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let path = e.path().to_string();
                let at = if path == "." {
                    key.to_owned()
                } else {
                    format!(
                        "{key}{}{path}",
                        if path.starts_with('[') { "" } else { "." }
                    )
                };
                let message = e.into_inner().message().trim().to_owned();
                self.problems
                    .push(format!("{}.{at}: {message}", self.place));
                None
            }
        }
    }

    /// A string that is not blank.
    fn text(&mut self, key: &'static str) -> Option<String> {
        let s: String = self.take(key)?;
        if s.trim().is_empty() {
            self.problem(key, "is empty".to_owned());
            return None;
        }
        Some(s.trim().to_owned())
    }

    /// A duration written like the flags' (`30s`, `2m`, `1h 30m`).
    fn duration(&mut self, key: &'static str) -> Option<Duration> {
        let s: String = self.take(key)?;
        match common::cli::duration(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.problem(key, format!("`{s}`: {e}"));
                None
            }
        }
    }

    fn finish(self) {
        for key in self.table.keys() {
            self.problems.push(format!(
                "{}.{key}: unknown key (known: {})",
                self.place,
                self.known.join(", ")
            ));
        }
    }
}

/// What `config check` prints of a file it accepted: every setting as it will be used (defaults
/// named as such), the channels with their receivers (secrets as `***`) and the key their
/// delivery state is kept under, and where alerts go.
pub fn summary(path: &Path, cfg: &FileConfig) -> String {
    fn or_default(v: Option<Duration>, default: &str) -> String {
        v.map(common::time::human)
            .unwrap_or_else(|| format!("{default} (default)"))
    }
    let zk = &cfg.zookeeper;
    let alerts = &cfg.alerts;
    let mut out = format!("{}: ok\n", path.display());
    out.push_str("zookeeper:\n");
    out.push_str(&format!(
        "  connect          {}\n",
        zk.connect
            .as_deref()
            .unwrap_or("(not in the file: give --zk)")
    ));
    out.push_str(&format!(
        "  root             {}\n",
        zk.root
            .clone()
            .unwrap_or_else(|| format!("{} (default)", common::layout::DEFAULT_ROOT))
    ));
    out.push_str(&format!(
        "  credentials      {}\n",
        zk.auth_file
            .as_ref()
            .map(|p| format!("from {}", p.display()))
            .unwrap_or_else(|| "none (or --zk-auth, --zk-auth-file)".to_owned())
    ));
    out.push_str(&format!(
        "  session timeout  {}\n",
        or_default(zk.session_timeout, "10s")
    ));
    if let Some(acl) = &zk.acl {
        out.push_str(&format!("  acl              {acl}\n"));
    }
    out.push_str("alerts:\n");
    out.push_str(&format!(
        "  language         {}\n  time zone        {}\n",
        alerts
            .lang
            .map_or("en (default)".to_owned(), |l| l.as_str().to_owned()),
        alerts.timezone.as_ref().map_or_else(
            || format!("{} (default: this machine's)", Zone::local().name()),
            |z| z.name().to_owned()
        ),
    ));
    out.push_str(&format!(
        "  recovered after  {}\n  blind after      {}\n  retries          {} doubling to {}\n",
        or_default(alerts.recovered_after, "30s"),
        or_default(alerts.blind_after, "60s"),
        or_default(alerts.retry_initial, "1s"),
        or_default(alerts.retry_max, "60s"),
    ));
    out.push_str(&format!(
        "http:\n  listen           {}\n",
        cfg.http.listen.map_or_else(
            || "off (default; or --listen)".to_owned(),
            |a| format!("{a}: status page, /metrics, /healthz, /api/v1/agents")
        )
    ));
    if cfg.channels.is_empty() {
        out.push_str("channels: none in the file (give --webhook, --dingtalk or --console)\n");
    } else {
        out.push_str("channels (flags add more):\n");
        let width = cfg
            .channels
            .iter()
            .map(|c| c.label.len())
            .max()
            .unwrap_or(0);
        for c in &cfg.channels {
            out.push_str(&format!(
                "  {:width$}  {}\n  {:width$}  delivery state kept as: {}\n",
                c.label,
                c.spec.describe(),
                "",
                c.spec.key(),
            ));
        }
    }
    out.push_str(&where_alerts_go(cfg));
    out
}

/// The routes as `config check` prints them, then where what no route takes goes.
fn where_alerts_go(cfg: &FileConfig) -> String {
    let label = |key: &String| -> String {
        cfg.channels
            .iter()
            .find(|c| c.spec.key() == *key)
            .map(|c| c.label.clone())
            .unwrap_or_else(|| key.clone())
    };
    let list = |keys: &BTreeSet<String>| keys.iter().map(label).collect::<Vec<_>>().join(", ");
    let everywhere = "every channel (the file's and the flags')";
    let mut out = String::new();
    if cfg.routes.is_empty() {
        out.push_str(&format!(
            "routes: none: every alert goes to {}\n",
            cfg.default_channels
                .as_ref()
                .map_or(everywhere.to_owned(), list)
        ));
        return out;
    }
    out.push_str("routes (tried in order; the first that matches decides, unless it continues):\n");
    for (i, r) in cfg.routes.iter().enumerate() {
        let mut when = Vec::new();
        if !r.agents.is_empty() {
            let globs: Vec<&str> = r.agents.iter().map(|p| p.text.as_str()).collect();
            when.push(format!("agent {}", globs.join(" or ")));
        }
        if !r.hosts.is_empty() {
            let globs: Vec<&str> = r.hosts.iter().map(|p| p.text.as_str()).collect();
            when.push(format!("host {}", globs.join(" or ")));
        }
        for (name, p) in &r.labels {
            when.push(format!("label {name}={}", p.text));
        }
        if !r.events.is_empty() {
            let events: Vec<&str> = r.events.iter().map(|e| e.as_str()).collect();
            when.push(format!("event {}", events.join(" or ")));
        }
        let when = if when.is_empty() {
            "every alert".to_owned()
        } else {
            when.join(", ")
        };
        let escalation = r.after.map_or(String::new(), |after| {
            format!(
                " after {} if still down (then its recovered)",
                common::time::human(after)
            )
        });
        out.push_str(&format!(
            "  {}. {when} -> {}{escalation}{}\n",
            i + 1,
            list(&r.channels),
            if r.continue_ { " (and continue)" } else { "" }
        ));
    }
    out.push_str(&format!(
        "  otherwise -> {}\n  blind, sighted (the watcher's own) -> every channel\n",
        cfg.default_channels
            .as_ref()
            .map_or(everywhere.to_owned(), list)
    ));
    out
}

/// `flume-watcher config example`: every key, commented. A test checks that it passes
/// `config check` as it is.
pub const EXAMPLE: &str = r#"# flume-watcher configuration (TOML). Flags and FLUME_WATCHER_* variables override it.
# Check it with: flume-watcher config check --config /etc/flume-watchdog/watcher.toml

[zookeeper]
connect = "127.0.0.1:2181/kafka"         # like --zk: host:port,… with an optional /chroot
root = "/flume-watchdog"                 # like --root
# auth_file = "/etc/flume-watchdog/zk.auth"  # USER:PASSWORD on one line, mode 0600 (like --zk-auth-file)
session_timeout = "10s"                  # how long a dead host goes unnoticed
# acl = "creator-all,world-read"         # like --zk-acl

[alerts]
lang = "en"                              # "en" or "zh": the language of the messages people read
# timezone = "Asia/Shanghai"             # IANA name, UTC or "+08:00"; default: this machine's zone
recovered_after = "30s"                  # live again this long: recovered
blind_after = "60s"                      # no ZooKeeper session this long: say the watcher is blind
retry_initial = "1s"                     # first delay before a failed delivery is tried again
retry_max = "60s"                        # longest delay between delivery attempts

# [http]                                 # off unless listen is given (or --listen)
# listen = "127.0.0.1:9107"              # status page /, /metrics, /healthz, /api/v1/agents; read-only.
#                                        # Anything but loopback lets whoever reaches it read every
#                                        # agent's id, host and labels: put a proxy with auth in front

# Channels: every channel gets every alert. `name` is optional: it names the channel in logs
# (and later in routes); delivery state is kept per receiver, so naming, renaming or moving a
# channel from a flag to this file never sends again what it took.

[[channel]]
name = "hook"
type = "webhook"                         # POST {"alerts":[…]} as JSON
url = "http://127.0.0.1:8080/alerts"
# template = "{% for a in alerts %}{{ a.agent }} {{ a.event }}: {{ a.reason }} {% endfor %}"
#                                        # optional: a minijinja body from the same alerts (or
#                                        # template_file = "/path"), checked by config check
# content_type = "text/plain"            # with a template (default application/json)

[[channel]]
name = "ops"
type = "dingtalk"                        # DingTalk group robot, markdown
url = "https://oapi.dingtalk.com/robot/send?access_token=TOKEN"
secret = "SECRET"                        # optional: signed robot; or secret_file = "/path"
at_mobiles = ["13800000000"]             # optional: who is notified (@ in the text too)
is_at_all = false                        # optional: notify the whole group

[[channel]]
name = "wecom"
type = "wecom"                           # WeCom (企业微信) group robot, markdown (4,096 bytes a message)
url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY"
at_mobiles = ["13800000000"]             # optional: who is notified, by a short text message after
at_all = false                           # optional: notify the whole group (@all)
# Optional, for every chat robot (dingtalk, wecom, feishu, slack): one alert in your own words, a
# minijinja template (or template_file = "/path"). It sees kind, event, agent, host, reason, at,
# outage, restarts, crashes, last_exit, labels, headline, id, lang and zone, in the [alerts]
# language and zone; checked by config check. Messages still fit the robot (cut with …).
template = """
### <font color="warning">{{ event }}</font> {{ agent }} @ {{ host }}
> {{ reason }}, {{ at }}{% if labels.team %} (team {{ labels.team }}){% endif %}
"""

[[channel]]
name = "feishu"
type = "feishu"                          # Feishu / Lark custom bot, an interactive card
url = "https://open.feishu.cn/open-apis/bot/v2/hook/HOOK_ID"
# secret_file = "/etc/flume-watchdog/feishu.secret"  # optional: signed bot; or secret = "…"

[[channel]]
name = "slack"
type = "slack"                           # Slack incoming webhook: a header and the facts per alert
url = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
                                         # the channel and the bot's name are the webhook's own

[[channel]]
name = "mail"
type = "email"
smtp = "smtps://smtp.example.com:465"    # smtps:// implicit TLS; smtp:// STARTTLS (tls = "starttls",
                                         # the default) or plain (tls = "none")
from = "flume-watcher@example.com"
to = ["oncall@example.com"]
# username = "flume-watcher@example.com" # optional login, with password or password_file
# password_file = "/etc/flume-watchdog/smtp.password"
# ca_file = "/etc/ssl/internal-ca.pem"   # extra CAs to trust (an internal CA)
# timeout = "30s"

[[channel]]
name = "sms"
type = "exec"                            # runs the command with {"alerts":[…]} on stdin, no shell;
                                         # exit 0 delivered, 75 retried, anything else dropped
command = ["/bin/cat"]                   # e.g. ["/usr/local/bin/send-sms", "--to", "13800000000"]
timeout = "30s"                          # then it is killed with its children, and retried
# env = { SMS_API_KEY = "…" }            # extra variables (values shown as ***)

[[channel]]
name = "am"
type = "alertmanager"
url = "http://127.0.0.1:9093"            # or urls = [...]: an Alertmanager cluster, posted to each
repeat = "1m"                            # re-posted while firing; resolved on recovery
labels = { team = "logs" }               # optional static labels

[[channel]]
type = "console"                         # one line per alert on stdout

# Routes: tried in order; the first that matches decides unless it says continue = true. What no
# route takes goes to [alerts] default_channels (default_channels = ["ops"]; default: every
# channel). The watcher's own blind and sighted notices go to every channel.

[[route]]
agents = ["web-*", "api-?"]              # globs on the agent id; also hosts = ["db*"] and
                                         # labels = { team = "logs" } (globs on the agent's labels)
events = ["down", "failed"]              # optional: down, failed, recovered (default: all)
channels = ["ops"]
continue = true                          # and try the next routes too

[[route]]                                # escalation: the phone rings only for an outage still
agents = ["web-*"]                       # open 10 minutes after its down (or failed), and then
after = "10m"                            # hears its recovered; a shorter outage never reaches it
channels = ["sms"]
continue = true

[[route]]
agents = ["web-*"]
channels = ["hook"]
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        parse(text).expect_err("problems").0
    }

    #[test]
    fn the_example_passes() {
        let cfg = parse(EXAMPLE).expect("the example is valid");
        let labels: Vec<&str> = cfg.channels.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(
            labels,
            ["hook", "ops", "wecom", "feishu", "slack", "mail", "sms", "am", "console"]
        );
        assert_eq!(cfg.zookeeper.session_timeout, Some(Duration::from_secs(10)));
    }

    #[test]
    fn every_problem_is_listed_with_its_place() {
        let found = problems(
            r#"
bogus = 1
[zookeeper]
connect = ""
sesion_timeout = "5s"
[alerts]
lang = "fr"
timezone = "Mars/Olympus"
recovered_after = "soon"
blind_after = 5
[[channel]]
name = "ops"
type = "dingtalk"
url = "https://oapi.dingtalk.com/robot/send"
secret_file = "/nonexistent/secret"
at_mobiles = ["138-abc"]
[[channel]]
type = "pager"
[[channel]]
name = "ops"
type = "webhook"
url = "http://127.0.0.1:9/x"
[[channel]]
type = "webhook"
url = "ftp://h/x"
extra = true
[[channel]]
type = "webhook"
url = "http://127.0.0.1:9/x"
[[channel]]
name = "group"
type = "wecom"
url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K"
template = "{{ agent }} {{ reasn }}"
[[channel]]
type = "slack"
url = "https://hooks.slack.com/services/T/B/X"
template_file = "/nonexistent/slack.j2"
[[channel]]
type = "feishu"
url = "https://open.feishu.cn/open-apis/bot/v2/hook/H"
template = "{% for %}"
"#,
        );
        let want = [
            "zookeeper.connect: is empty",
            "zookeeper.sesion_timeout: unknown key (known: connect, root, auth_file, session_timeout, acl)",
            "alerts.lang: `fr` is not a language: \"en\" or \"zh\"",
            "alerts.timezone: `Mars/Olympus` is not a time zone",
            "alerts.recovered_after: `soon`: ",
            "alerts.blind_after: invalid type: integer `5`, expected a string",
            "channel[1] (ops).secret_file: cannot read /nonexistent/secret: ",
            "channel[1] (ops).url: DingTalk robot URL has no access_token",
            "channel[1] (ops).at_mobiles[0]: `138-abc` is not a mobile number",
            "channel[2].type: unknown channel type `pager` (known: webhook, dingtalk, wecom, feishu, slack, email, exec, alertmanager, console)",
            "channel[3] (ops).name: two channels are named `ops`",
            "channel[4].extra: unknown field `extra`, expected one of `url`, `template`",
            "channel[5]: the same receiver as channel[3] (ops): configure it once",
            "channel[6] (group).template: undefined value",
            "channel[7].template_file: cannot read /nonexistent/slack.j2: ",
            "channel[8].template: syntax error",
            "bogus: unknown section",
        ];
        let text = found.join("\n");
        for w in want {
            assert!(text.contains(w), "{w:?} missing in:\n{text}");
        }
        assert_eq!(found.len(), want.len(), "{text}");
    }

    #[test]
    fn the_listener_is_off_by_default_and_checked() {
        let cfg = parse(EXAMPLE).expect("valid");
        assert_eq!(cfg.http.listen, None, "commented out in the example");
        assert!(EXAMPLE.contains("# listen = \"127.0.0.1:9107\""));
        let shown = summary(Path::new("w.toml"), &cfg);
        assert!(
            shown.contains("http:\n  listen           off (default"),
            "{shown}"
        );

        let cfg = parse("[http]\nlisten = \"127.0.0.1:9107\"\n").expect("valid");
        assert_eq!(
            cfg.http.listen,
            Some("127.0.0.1:9107".parse().expect("addr"))
        );
        let shown = summary(Path::new("w.toml"), &cfg);
        assert!(
            shown.contains("  listen           127.0.0.1:9107: status page"),
            "{shown}"
        );

        let found = problems("[http]\nlisten = \"localhost\"\nport = 9107\n");
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with(
                "http.listen: `localhost` is not an address and port such as 127.0.0.1:9107"
            ),
            "{found:?}"
        );
        assert_eq!(found[1], "http.port: unknown key (known: listen)");
    }

    #[test]
    fn a_syntax_error_says_where() {
        let found = problems("[alerts]\nlang = \"en\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("line 2"), "{found:?}");
    }

    #[test]
    fn routes_name_channels_and_say_what_they_match() {
        let found = problems(
            r#"
[alerts]
default_channels = ["nobody"]
[[channel]]
name = "ops"
type = "console"
[[route]]
agents = ["web-["]
events = ["down", "blind", "gone"]
channels = ["ops", "pager"]
labels = { team = "logs[" }
after = "soon"
[[route]]
agents = ["*"]
[[route]]
events = ["recovered"]
after = "10m"
channels = ["ops"]
[[route]]
channels = []
color = "red"
"#,
        );
        let want = [
            "alerts.default_channels[0]: no channel is named `nobody` (named: ops)",
            "route[1].agents[0]: `web-[` is not a glob: ",
            "route[1].labels.team: `logs[` is not a glob",
            "route[1].events[1]: `blind` is the watcher's own notice",
            "route[1].events[2]: `gone` is not an event (down, failed, recovered, degraded, healthy)",
            "route[1].after: `soon`: ",
            "route[1].channels[1]: no channel is named `pager` (named: ops)",
            "route[2].channels: missing",
            "route[3].after: an escalation holds back a down or failed",
            "route[4].color: unknown key",
            "route[4].channels: empty",
        ];
        let text = found.join("\n");
        for w in want {
            assert!(text.contains(w), "{w:?} missing in:\n{text}");
        }
        assert_eq!(found.len(), want.len(), "{text}");
    }

    #[test]
    fn nothing_is_left_unrouted() {
        let found = problems("[alerts]\ndefault_channels = []\n[[channel]]\ntype = \"console\"\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("alerts.default_channels: empty"),
            "{found:?}"
        );
    }

    #[test]
    fn the_check_says_where_alerts_go() {
        let cfg = parse(EXAMPLE).expect("valid");
        assert_eq!(cfg.routes.len(), 3);
        let shown = summary(Path::new("w.toml"), &cfg);
        for want in [
            "  1. agent web-* or api-?, event down or failed -> ops (and continue)\n",
            "  2. agent web-* -> sms after 10m if still down (then its recovered) (and continue)\n",
            "  3. agent web-* -> hook\n",
            "  otherwise -> every channel (the file's and the flags')\n",
        ] {
            assert!(shown.contains(want), "{want:?} missing in:\n{shown}");
        }
    }

    #[test]
    fn secrets_are_never_shown() {
        let cfg = parse(
            r#"
[[channel]]
type = "dingtalk"
url = "https://oapi.dingtalk.com/robot/send?access_token=T0K3N"
secret = "S3CR3T"
"#,
        )
        .expect("valid");
        let shown = format!(
            "{} {} {:?}",
            cfg.channels[0].spec.describe(),
            cfg.channels[0].label,
            cfg.channels
        );
        assert!(
            !shown.contains("T0K3N") && !shown.contains("S3CR3T"),
            "{shown}"
        );
        assert!(shown.contains("access_token=***"), "{shown}");
    }

    /// A channel keeps its receipt key whether it is given by a flag or in the file, named or
    /// not: moving it never sends again what it took.
    #[test]
    fn a_channel_keeps_its_key_from_flag_to_file() {
        let url = "https://oapi.dingtalk.com/robot/send?access_token=T0K3N";
        let flag = crate::channels::parse_dingtalk(&format!("{url},secret=S3CR3T")).expect("flag");
        let cfg = parse(&format!(
            "[[channel]]\nname = \"ops\"\ntype = \"dingtalk\"\nurl = \"{url}\"\nsecret = \"S3CR3T\"\nat_mobiles = [\"13800000000\"]\n"
        ))
        .expect("valid");
        use crate::channels::ChannelSpec;
        assert_eq!(cfg.channels[0].spec.key(), flag.key());
        assert_eq!(cfg.channels[0].label, "ops");
    }
}
