//! Prometheus Alertmanager: `POST {base}/api/v2/alerts` with a JSON array of alerts, one per
//! outage kind of an agent, re-posted while it lasts and resolved (`endsAt` = now) when it ends.
//!
//! Alertmanager is not a chat robot: it holds the state "this is firing" and does the
//! notifying, grouping, silencing and inhibiting itself. So this channel does not send one
//! message per notice; it keeps Alertmanager's picture right:
//!
//! - `down` fires `FlumeAgentDown`, `failed` fires `FlumeAgentFailed` (both `severity=critical`;
//!   a failed agent is still down, so both fire), `blind` fires `FlumeWatcherBlind`
//!   (`severity=warning`, `agent` = the watcher's own identity).
//! - `recovered` resolves the agent's `FlumeAgentDown` and `FlumeAgentFailed`, `sighted` its
//!   `FlumeWatcherBlind`: the same labels, `endsAt` = now. Both names are resolved even when
//!   this channel never posted one of them (a watcher restarted, a new leader): resolving an
//!   alert Alertmanager does not know, or knows as resolved, notifies nobody.
//! - [`AlertmanagerChannel::resolve_quietly`] resolves an outage that ended without a notice
//!   (a planned stop while down), so that nothing stays firing forever.
//! - Firing alerts carry `endsAt` = now + [`VALID_FOR_REPEATS`] × `repeat`, as Prometheus does
//!   (4 × its resend delay), and are re-posted every `repeat` by a background task. Explicit,
//!   rather than left to Alertmanager's `resolve_timeout`: the channel then works whatever that
//!   setting is, and an alert nobody re-posts any more (the watcher died) ends by itself within
//!   4 × `repeat` instead of firing on.
//! - Resolved alerts are re-posted too, for [`RESOLVED_KEPT`] (Prometheus: 15 minutes): an
//!   Alertmanager that missed the resolve (down at that moment, restarted) still learns it.
//!
//! With `urls` (an Alertmanager cluster) every alert goes to each URL, independently, as
//! Prometheus sends to each Alertmanager: the cluster members share notification state, so
//! each alert reaching any one of them is enough for it to be notified once. A delivery
//! therefore succeeds when at least one URL took it; the others are logged and catch up at the
//! next re-post, which sends the whole current state to every URL. It fails (retry) only when no
//! URL took it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use reqwest::Url;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::kinds::{self, KeyProblem, Kind};
use super::{
    excerpt, fingerprint, identity_url, read_body, redact_url, scrub, status_error,
    transport_error, url_secrets, Channel, ChannelSpec, DeliveryError,
};
use crate::alert::{Alert, AlertKind};
use crate::notify::Notifier;

/// `[[channel]] type = "alertmanager"`.
pub const KIND: Kind = Kind {
    name: "alertmanager",
    read: read_table,
};

fn read_table(table: toml::Table) -> Result<Box<dyn ChannelSpec>, Vec<KeyProblem>> {
    let spec: AlertmanagerSpec = kinds::keys(table)?;
    let key = spec.build(None)?.name();
    Ok(Box::new(AlertmanagerConfig { spec, key }))
}

/// An Alertmanager channel as configured: checked when read, built again when started.
#[derive(Debug)]
struct AlertmanagerConfig {
    spec: AlertmanagerSpec,
    key: String,
}

impl ChannelSpec for AlertmanagerConfig {
    fn describe(&self) -> String {
        let shown = self
            .key
            .rsplit_once(" #")
            .map_or(self.key.as_str(), |(s, _)| s);
        format!(
            "{shown}, re-posted every {}",
            self.spec.repeat.as_deref().unwrap_or("1m")
        )
    }
    fn key(&self) -> String {
        self.key.clone()
    }
    fn start(&self, label: &str, notifier: &mut Notifier, _ctx: &super::Context) -> bool {
        match self.spec.build(None) {
            Ok(channel) => notifier.add_channel_as(label, channel),
            Err(problems) => {
                for (key, problem) in problems {
                    tracing::error!(channel = %label, key = %key, %problem, "Alertmanager channel cannot start");
                }
                false
            }
        }
    }
}

/// `alertname` of an agent that went down.
pub const AGENT_DOWN: &str = "FlumeAgentDown";
/// `alertname` of an agent its watchdog gave up restarting.
pub const AGENT_FAILED: &str = "FlumeAgentFailed";
/// A running agent that does not do its job (a full channel, a stalled sink, a hung JVM).
pub const AGENT_DEGRADED: &str = "FlumeAgentDegraded";
/// `alertname` of a watcher that cannot see ZooKeeper (so cannot see outages).
pub const WATCHER_BLIND: &str = "FlumeWatcherBlind";
/// `flume-watcher test-alert`: fires once, ends on its own after [`TEST_LASTS`], never re-posted.
pub const WATCHER_TEST: &str = "FlumeWatcherTest";
/// How long a test alert stays active in Alertmanager: long enough to see it and be notified.
pub const TEST_LASTS: Duration = Duration::from_secs(5 * 60);

/// Re-post interval while firing, unless `repeat` says otherwise: what Prometheus uses.
pub const DEFAULT_REPEAT: Duration = Duration::from_secs(60);
/// A firing alert is valid for this many `repeat`s: Alertmanager resolves it by itself if it
/// hears nothing more for that long (Prometheus uses 4 resend delays).
pub const VALID_FOR_REPEATS: u32 = 4;
/// How long a resolved alert is still re-posted, for an Alertmanager that missed the resolve.
pub const RESOLVED_KEPT: Duration = Duration::from_secs(15 * 60);
/// Most alerts in one POST; a re-post of more is split.
pub const MAX_BATCH: usize = 500;

/// Labels the channel sets itself: a static label of one of these names would change which
/// alert is which.
const RESERVED_LABELS: [&str; 4] = ["alertname", "agent", "host", "severity"];

/// The keys of a `[[channel]] type = "alertmanager"` table (`type` and `name` belong to the
/// enclosing configuration). Checked by [`AlertmanagerSpec::build`], which reports every problem
/// at once. `Debug` hides the secret parts of the URLs.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerSpec {
    /// One Alertmanager's base URL, e.g. `http://127.0.0.1:9093` (a `--web.route-prefix` goes
    /// in its path).
    #[serde(default)]
    pub url: Option<String>,
    /// A cluster: every alert is posted to each.
    #[serde(default)]
    pub urls: Option<Vec<String>>,
    /// Re-post interval while firing, a humantime duration (`"1m"`, `"30s"`); default 1 minute.
    #[serde(default)]
    pub repeat: Option<String>,
    /// Extra static labels on every alert, e.g. `{ team = "logs" }`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Time limit of one request (humantime); default the shared client's 10 s.
    #[serde(default)]
    pub timeout: Option<String>,
}

impl fmt::Debug for AlertmanagerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |s: &String| match Url::parse(s.trim()) {
            Ok(u) => redact_url(&u),
            Err(_) => "<not a URL>".to_owned(),
        };
        f.debug_struct("AlertmanagerSpec")
            .field("url", &self.url.as_ref().map(shown))
            .field(
                "urls",
                &self
                    .urls
                    .as_ref()
                    .map(|l| l.iter().map(shown).collect::<Vec<_>>()),
            )
            .field("repeat", &self.repeat)
            .field("labels", &self.labels)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// One problem with a spec: the key it is about (`urls[1]`, `labels.team`) and what is wrong.
pub type Problem = (String, String);

impl AlertmanagerSpec {
    /// Checks the spec and builds the channel; or every problem found, each with its key.
    ///
    /// `name` is the configured channel name; without one the name is
    /// `alertmanager <URLs, secrets as ***, comma-separated> #<fingerprint of the URLs>`, the URLs
    /// sorted so that reordering a cluster's list keeps the name (and the delivery receipts
    /// keyed by it). Neither `repeat`, `labels` nor `timeout` are in the name: changing them
    /// does not make another receiver.
    ///
    /// Starts nothing: the re-post task starts with the first delivery, so that `config check`
    /// can build channels outside any runtime.
    pub fn build(&self, name: Option<&str>) -> Result<AlertmanagerChannel, Vec<Problem>> {
        let mut problems: Vec<Problem> = Vec::new();
        let mut problem = |key: &str, message: String| problems.push((key.to_owned(), message));

        let mut targets: Vec<Target> = Vec::new();
        let mut add = |key: &str, s: &str, problem: &mut dyn FnMut(&str, String)| match target(s) {
            Ok(t) if targets.iter().any(|o| o.identity == t.identity) => {
                problem(key, "the same Alertmanager is listed twice".to_owned())
            }
            Ok(t) => targets.push(t),
            Err(e) => problem(key, e),
        };
        match (&self.url, &self.urls) {
            (None, None) => problem(
                "url",
                "missing: give the Alertmanager's base URL (url = \"http://127.0.0.1:9093\"), \
                 or urls = [...] for a cluster"
                    .to_owned(),
            ),
            (Some(_), Some(_)) => problem(
                "urls",
                "give url (one Alertmanager) or urls (a cluster), not both".to_owned(),
            ),
            (Some(url), None) => add("url", url, &mut problem),
            (None, Some(urls)) if urls.is_empty() => problem(
                "urls",
                "is empty: list at least one Alertmanager URL".to_owned(),
            ),
            (None, Some(urls)) => {
                for (i, url) in urls.iter().enumerate() {
                    add(&format!("urls[{i}]"), url, &mut problem);
                }
            }
        }

        let repeat = match duration(self.repeat.as_deref(), DEFAULT_REPEAT) {
            Ok(d) => d,
            Err(e) => {
                problem("repeat", e);
                DEFAULT_REPEAT
            }
        };
        let timeout = match &self.timeout {
            None => None,
            Some(t) => match duration(Some(t), Duration::ZERO) {
                Ok(d) => Some(d),
                Err(e) => {
                    problem("timeout", e);
                    None
                }
            },
        };
        for (label, value) in &self.labels {
            let key = format!("labels.{label}");
            if !valid_label_name(label) {
                problem(
                    &key,
                    "is not a valid label name: letters, digits and _, not starting with a digit"
                        .to_owned(),
                );
            } else if label.starts_with("__") {
                problem(
                    &key,
                    "names starting with __ are reserved by Prometheus".to_owned(),
                );
            } else if RESERVED_LABELS.contains(&label.as_str()) {
                problem(
                    &key,
                    format!("is set by the channel itself (it sets {RESERVED_LABELS:?})"),
                );
            } else if value.is_empty() {
                problem(
                    &key,
                    "is empty: to Alertmanager an empty label is no label; remove it".to_owned(),
                );
            }
        }
        let http = match super::http_client() {
            Ok(c) => Some(c),
            Err(e) => {
                problem("url", format!("cannot set up an HTTP client: {e}"));
                None
            }
        };

        let Some(http) = http.filter(|_| problems.is_empty()) else {
            return Err(problems);
        };
        targets.sort_by(|a, b| a.identity.cmp(&b.identity));
        let name = match name {
            Some(n) => n.to_owned(),
            None => default_name(&targets),
        };
        Ok(AlertmanagerChannel {
            inner: Arc::new(Inner {
                name,
                targets,
                http,
                timeout,
                repeat,
                static_labels: self.labels.clone(),
                state: Mutex::new(State {
                    alerts: FiringSet::new(repeat),
                    unsent: Vec::new(),
                    task: TaskState::NotStarted,
                }),
                wake: Notify::new(),
                stop: CancellationToken::new(),
            }),
        })
    }
}

/// `alertmanager <URLs> #<fingerprint>` for targets sorted by identity.
fn default_name(targets: &[Target]) -> String {
    let shown: Vec<&str> = targets.iter().map(|t| t.shown.as_str()).collect();
    let identity: Vec<&str> = targets.iter().map(|t| t.identity.as_str()).collect();
    format!(
        "alertmanager {} {}",
        shown.join(","),
        fingerprint(&identity.join("\n"))
    )
}

/// A humantime duration, not zero; `default` when absent.
fn duration(s: Option<&str>, default: Duration) -> Result<Duration, String> {
    let Some(s) = s else {
        return Ok(default);
    };
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("is not a duration like \"1m\" or \"30s\": {e}"))?;
    if d.is_zero() {
        return Err("must be more than zero".to_owned());
    }
    Ok(d)
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, Prometheus's label names.
fn valid_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// One Alertmanager to post to.
struct Target {
    /// `{base}/api/v2/alerts`.
    post: Url,
    /// The base URL for logs and the name, secrets as `***`.
    shown: String,
    /// The base URL as it identifies the receiver (for the fingerprint and duplicates).
    identity: String,
    /// What to scrub from error texts.
    secrets: Vec<String>,
}

fn target(s: &str) -> Result<Target, String> {
    let base = super::parse_http_url(s, "Alertmanager")?;
    let path = base.path().trim_end_matches('/');
    if path.ends_with("/api/v2/alerts") || path.ends_with("/api/v1/alerts") {
        return Err(
            "give the Alertmanager's base URL (e.g. http://127.0.0.1:9093), \
                    without /api/v2/alerts: the channel adds it"
                .to_owned(),
        );
    }
    let mut post = base.clone();
    post.set_fragment(None);
    post.path_segments_mut()
        .map_err(|()| "Alertmanager URL cannot take a path".to_owned())?
        .pop_if_empty()
        .extend(["api", "v2", "alerts"]);
    Ok(Target {
        post,
        shown: redact_url(&base),
        identity: identity_url(&base),
        secrets: url_secrets(&base),
    })
}

// --- What is posted ---------------------------------------------------------------------------

/// One alert as Alertmanager's API v2 takes it (`postableAlert`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339: in the future while firing, the moment it ended once resolved.
    pub ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
}

/// Which alert of which agent: Alertmanager tells alerts apart by their labels, and for one
/// configuration those follow from these two (and the host, which the entry keeps).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    agent: String,
    alertname: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: SystemTime,
    /// `None` while firing; when it ended (what `endsAt` says) once resolved.
    resolved_at: Option<SystemTime>,
}

/// The alert `kind` fires: its name and severity; `None` for the kinds that resolve.
fn fires(kind: AlertKind) -> Option<&'static str> {
    match kind {
        AlertKind::Down => Some(AGENT_DOWN),
        AlertKind::Failed => Some(AGENT_FAILED),
        AlertKind::Blind => Some(WATCHER_BLIND),
        AlertKind::Degraded => Some(AGENT_DEGRADED),
        // A test is posted once, outside the set of firing alerts (see `deliver`).
        AlertKind::Recovered | AlertKind::Sighted | AlertKind::Test | AlertKind::Healthy => None,
    }
}

/// The alerts `kind` resolves.
fn resolves(kind: AlertKind) -> &'static [&'static str] {
    match kind {
        AlertKind::Recovered => &[AGENT_DOWN, AGENT_FAILED],
        AlertKind::Sighted => &[WATCHER_BLIND],
        AlertKind::Healthy => &[AGENT_DEGRADED],
        AlertKind::Down
        | AlertKind::Failed
        | AlertKind::Blind
        | AlertKind::Test
        | AlertKind::Degraded => &[],
    }
}

/// An agent that is down or failed pages someone; a blind watcher is a warning: the agents may
/// be fine, only nobody can tell.
fn severity(alertname: &str) -> &'static str {
    if alertname == WATCHER_TEST {
        "info"
    } else if alertname == WATCHER_BLIND || alertname == AGENT_DEGRADED {
        // A degraded agent runs: worth a look soon, not a page at night.
        "warning"
    } else {
        "critical"
    }
}

fn labels(
    alert: &Alert,
    alertname: &'static str,
    static_labels: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    // The agent's own labels first (their names made valid for Alertmanager), then the
    // channel's static labels, then the four that say which alert this is: none of them can be
    // overridden by a label of the same name.
    let mut labels: BTreeMap<String, String> = alert
        .labels
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (label_name(k), v.clone()))
        .collect();
    labels.extend(static_labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.insert("alertname".into(), alertname.into());
    labels.insert("agent".into(), alert.agent.clone());
    // An empty label is no label to Alertmanager: an unknown host is left out.
    if let Some(host) = alert.host.as_deref().filter(|h| !h.is_empty()) {
        labels.insert("host".into(), host.to_owned());
    }
    labels.insert("severity".into(), severity(alertname).into());
    // A degradation says which rule found it and on what component, for routing and silencing
    // in Alertmanager (`health_reason="sink_stalled"`, `component="k1"`).
    if let Some(first) = alert.health.as_ref().and_then(|h| h.reasons.first()) {
        let (kind, component) = reason_labels(first);
        labels.insert("health_reason".into(), kind.into());
        if let Some(component) = component {
            labels.insert("component".into(), component);
        }
    }
    labels
}

/// A health reason's kind (as the health node names it) and the component it is about.
fn reason_labels(reason: &common::records::HealthReason) -> (&'static str, Option<String>) {
    use common::records::HealthReason as R;
    match reason {
        R::ChannelFull { channel, .. } => ("channel_full", Some(channel.clone())),
        R::SinkStalled { sink, .. } => ("sink_stalled", Some(sink.clone())),
        R::ChannelUnhealthy { channel } => ("channel_unhealthy", Some(channel.clone())),
        R::ComponentStopped { name, .. } => ("component_stopped", Some(name.clone())),
        R::MetricsUnanswered { .. } => ("metrics_unanswered", None),
        R::MetricsGarbled { .. } => ("metrics_garbled", None),
    }
}

/// A label name as Alertmanager takes it (`[a-zA-Z_][a-zA-Z0-9_]*`): other characters become `_`.
fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// `summary` (one line), `description` (the details, a line each) and `reason`.
fn annotations(alert: &Alert) -> BTreeMap<String, String> {
    let host = alert.host.as_deref().unwrap_or("unknown host");
    let agent = &alert.agent;
    let one_line = |s: &str| s.replace(['\r', '\n'], " ");
    let reason = one_line(&alert.reason);
    let summary = match alert.event {
        AlertKind::Down => format!("Flume agent {agent} on {host} is down: {reason}"),
        AlertKind::Failed => {
            format!("Flume agent {agent} on {host} failed: its watchdog gave up restarting it")
        }
        AlertKind::Recovered => match alert.outage {
            Some(d) => format!(
                "Flume agent {agent} on {host} is back after {}",
                common::time::human(d)
            ),
            None => format!("Flume agent {agent} on {host} is back"),
        },
        AlertKind::Blind => format!("{agent} cannot see ZooKeeper, so cannot see outages"),
        AlertKind::Sighted => format!("{agent} sees ZooKeeper again"),
        AlertKind::Test => format!("Test alert from {agent} on {host}: nothing is wrong"),
        AlertKind::Degraded => format!("Flume agent {agent} on {host} is degraded: {reason}"),
        AlertKind::Healthy => format!("Flume agent {agent} on {host} is healthy again"),
    };
    let what = match alert.event {
        AlertKind::Down => format!("Flume agent {agent} on {host} went down"),
        AlertKind::Failed => format!("The watchdog of Flume agent {agent} on {host} gave up"),
        AlertKind::Recovered => format!("Flume agent {agent} on {host} recovered"),
        AlertKind::Blind => format!("{agent} lost ZooKeeper"),
        AlertKind::Sighted => format!("{agent} sees ZooKeeper again"),
        AlertKind::Test => format!("{agent} on {host} sent a test alert"),
        AlertKind::Degraded => format!("Flume agent {agent} on {host} became degraded"),
        AlertKind::Healthy => format!("Flume agent {agent} on {host} became healthy"),
    };
    let mut description = vec![
        format!("{what} at {}.", common::time::format(alert.at)),
        format!("Reason: {reason}."),
    ];
    if let Some(r) = alert.restarts {
        description.push(format!("Restarts by the watchdog: {r}."));
    }
    if alert.crashes > 1 {
        description.push(format!("Crashes in this outage: {}.", alert.crashes));
    }
    if let Some(exit) = &alert.last_exit {
        description.push(format!("Last exit: {} at {}.", exit.describe(), exit.at));
    }
    if let Some(d) = alert.outage {
        description.push(format!("Outage lasted {}.", common::time::human(d)));
    }
    let mut annotations = BTreeMap::from([("reason".to_owned(), reason)]);
    if let Some(health) = &alert.health {
        // The figures as measured: annotations, not labels, since they change while the
        // degradation lasts and labels name the alert.
        let mut figures: Vec<String> = health
            .channels
            .iter()
            .map(|(name, c)| format!("channel {name} {} % full ({} of {})", c.fill, c.size, c.cap))
            .collect();
        figures.extend(health.sinks.iter().map(|(name, k)| match k.rate {
            Some(rate) => format!("sink {name} drains {rate:.1} events/s"),
            None => format!("sink {name}"),
        }));
        if !figures.is_empty() {
            description.push(format!("Figures at {}: {}.", health.at, figures.join("; ")));
            annotations.insert("figures".to_owned(), figures.join("; "));
        }
    }
    annotations.insert("summary".to_owned(), summary);
    annotations.insert("description".to_owned(), description.join("\n"));
    annotations
}

/// The alerts this channel has posted and still stands by: what is firing (re-posted every
/// `repeat` until resolved) and what was resolved lately (re-posted for [`RESOLVED_KEPT`]).
/// Pure: every time comes in as an argument.
#[derive(Debug)]
pub(crate) struct FiringSet {
    repeat: Duration,
    entries: BTreeMap<Key, Entry>,
    /// Per agent, the latest moment up to which its outages are known to have ended: a `down`
    /// or `failed` that happened before it is an old notice arriving late (queued when the
    /// outage ended quietly, sent again by a new leader) and is posted resolved, never firing.
    ended: BTreeMap<String, SystemTime>,
}

impl FiringSet {
    pub(crate) fn new(repeat: Duration) -> FiringSet {
        FiringSet {
            repeat,
            entries: BTreeMap::new(),
            ended: BTreeMap::new(),
        }
    }

    /// Takes `alert` in; returns the alerts to post now.
    pub(crate) fn apply(
        &mut self,
        alert: &Alert,
        static_labels: &BTreeMap<String, String>,
        now: SystemTime,
    ) -> Vec<Key> {
        if let Some(alertname) = fires(alert.event) {
            let key = Key {
                agent: alert.agent.clone(),
                alertname,
            };
            let ended = self.ended.get(&alert.agent).copied();
            let stale = ended.filter(|&end| alert.at <= end);
            let starts_at = match self.entries.get(&key) {
                // The same outage told again: it began at the earliest time heard.
                Some(e) if e.resolved_at.is_none() => e.starts_at.min(alert.at),
                _ => alert.at,
            };
            self.entries.insert(
                key.clone(),
                Entry {
                    labels: labels(alert, alertname, static_labels),
                    annotations: annotations(alert),
                    starts_at,
                    resolved_at: stale,
                },
            );
            return vec![key];
        }
        let names = resolves(alert.event);
        self.end_agent(&alert.agent, alert.at);
        let mut keys = Vec::new();
        for &alertname in names {
            let key = Key {
                agent: alert.agent.clone(),
                alertname,
            };
            let entry = self.entries.entry(key.clone()).or_insert_with(|| {
                // Never posted here (a restart, a new leader): resolve what it would have been.
                let began = alert
                    .outage
                    .and_then(|d| alert.at.checked_sub(d))
                    .unwrap_or(alert.at);
                Entry {
                    labels: labels(alert, alertname, static_labels),
                    annotations: BTreeMap::new(),
                    starts_at: began,
                    resolved_at: None,
                }
            });
            // What Alertmanager shows with the resolved notification: how it ended.
            entry.annotations = annotations(alert);
            entry.resolved_at.get_or_insert(now);
            keys.push(key);
        }
        keys
    }

    /// The outage of `agent` ended without a notice: resolves whatever of it is firing.
    ///
    /// `record` names the outage record that ended: the agent's (its `down` and `failed` are
    /// resolved), or its health record (`<id>~health`: only its `FlumeAgentDegraded`).
    pub(crate) fn resolve_quietly(&mut self, record: &str, now: SystemTime) -> Vec<Key> {
        let (agent, degradation) = match record.strip_suffix(crate::alert::HEALTH_RECORD_SUFFIX) {
            Some(agent) => (agent, true),
            None => (record, false),
        };
        if !degradation {
            self.end_agent(agent, now);
        }
        let mut keys = Vec::new();
        for (key, entry) in self.entries.iter_mut() {
            if key.agent == agent
                && (key.alertname == AGENT_DEGRADED) == degradation
                && entry.resolved_at.is_none()
            {
                entry.resolved_at = Some(now);
                keys.push(key.clone());
            }
        }
        keys
    }

    fn end_agent(&mut self, agent: &str, at: SystemTime) {
        let end = self.ended.entry(agent.to_owned()).or_insert(at);
        *end = (*end).max(at);
    }

    /// The alerts of `keys` as posted at `now`.
    pub(crate) fn render(&self, keys: &[Key], now: SystemTime) -> Vec<PostableAlert> {
        let mut seen: Vec<&Key> = Vec::new();
        keys.iter()
            .filter(|k| {
                let new = !seen.contains(k);
                seen.push(k);
                new
            })
            .filter_map(|k| self.entries.get(k))
            .map(|e| self.postable(e, now))
            .collect()
    }

    /// Everything to re-post at `now`: the firing alerts, with a fresh `endsAt`, and those
    /// resolved less than [`RESOLVED_KEPT`] ago. Forgets the older ones.
    pub(crate) fn repost(&mut self, now: SystemTime) -> Vec<PostableAlert> {
        let kept = |at: &SystemTime| now.duration_since(*at).unwrap_or_default() < RESOLVED_KEPT;
        self.entries.retain(|_, e| match &e.resolved_at {
            Some(at) => kept(at),
            None => true,
        });
        self.ended.retain(|_, at| kept(at));
        self.entries
            .values()
            .map(|e| self.postable(e, now))
            .collect()
    }

    fn postable(&self, e: &Entry, now: SystemTime) -> PostableAlert {
        let ends_at = match e.resolved_at {
            Some(at) => at,
            None => now + self.repeat * VALID_FOR_REPEATS,
        };
        // A start after the end (clocks of two watchers apart) is a 400 from Alertmanager.
        let starts_at = e.starts_at.min(ends_at).min(now);
        PostableAlert {
            labels: e.labels.clone(),
            annotations: e.annotations.clone(),
            starts_at: common::time::format(starts_at),
            ends_at: common::time::format(ends_at),
            generator_url: None,
        }
    }

    /// The agents with a firing alert, and its name.
    #[cfg(test)]
    pub(crate) fn firing(&self) -> Vec<(&str, &'static str)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.resolved_at.is_none())
            .map(|(k, _)| (k.agent.as_str(), k.alertname))
            .collect()
    }
}

// --- The channel ------------------------------------------------------------------------------

/// Posts alerts to one Alertmanager or each of a cluster, and keeps them there (see the module
/// documentation). Dropping it stops its re-post task.
pub struct AlertmanagerChannel {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    targets: Vec<Target>,
    http: reqwest::Client,
    timeout: Option<Duration>,
    repeat: Duration,
    static_labels: BTreeMap<String, String>,
    state: Mutex<State>,
    /// Wakes the re-post task to post `unsent` now.
    wake: Notify,
    stop: CancellationToken,
}

struct State {
    alerts: FiringSet,
    /// Changes made outside a delivery ([`AlertmanagerChannel::resolve_quietly`]) that the task
    /// has yet to post.
    unsent: Vec<Key>,
    task: TaskState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TaskState {
    NotStarted,
    Running,
}

impl fmt::Debug for AlertmanagerChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertmanagerChannel")
            .field("name", &self.inner.name)
            .field("repeat", &self.inner.repeat)
            .finish_non_exhaustive()
    }
}

impl Drop for AlertmanagerChannel {
    fn drop(&mut self) {
        self.inner.stop.cancel();
    }
}

impl AlertmanagerChannel {
    /// Stops the re-post task when `token` is cancelled too, not only when the channel is
    /// dropped. Call it before the first delivery (the builder style makes that natural).
    pub fn with_cancel(mut self, token: &CancellationToken) -> AlertmanagerChannel {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.stop = token.child_token(),
            None => {
                // Only reachable once the task holds the state: tie it to the token instead.
                let stop = self.inner.stop.clone();
                let token = token.clone();
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        tokio::select! {
                            _ = token.cancelled() => stop.cancel(),
                            _ = stop.cancelled() => {}
                        }
                    });
                }
            }
        }
        self
    }

    /// The re-post interval.
    pub fn repeat(&self) -> Duration {
        self.inner.repeat
    }

    /// The outage of `agent` ended without a notice (it was stopped as planned while down):
    /// resolves its firing alerts in Alertmanager, at once if a runtime is there (else with the
    /// first delivery), and stops re-posting them. A `down` of that agent that happened before
    /// this call and arrives later (it was still queued) is posted resolved, not firing. Does
    /// nothing in Alertmanager if nothing of the agent is firing here.
    pub fn resolve_quietly(&self, agent: &str) {
        let keys = {
            let mut st = self.inner.lock();
            let keys = st.alerts.resolve_quietly(agent, SystemTime::now());
            st.unsent.extend(keys.iter().cloned());
            keys
        };
        if !keys.is_empty() {
            info!(
                channel = %self.inner.name,
                agent,
                alerts = keys.len(),
                "outage ended without a notice; resolving its alerts in Alertmanager"
            );
            self.start_task();
            self.inner.wake.notify_one();
        }
    }

    /// Re-posts `alert` (a `down`, `failed` or `blind`) from now on as if this channel had
    /// delivered it: for a new leader, whose channel has not posted the outages it inherits and
    /// which Alertmanager would otherwise resolve by themselves after 4 × `repeat`. Other kinds
    /// are ignored.
    pub fn keep_firing(&self, alert: &Alert) {
        if fires(alert.event).is_none() {
            return;
        }
        {
            let mut st = self.inner.lock();
            let keys = st
                .alerts
                .apply(alert, &self.inner.static_labels, SystemTime::now());
            st.unsent.extend(keys);
        }
        self.start_task();
        self.inner.wake.notify_one();
    }

    /// Starts the re-post task if it is not running and a runtime is there to run it.
    fn start_task(&self) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut st = self.inner.lock();
        if st.task == TaskState::NotStarted {
            st.task = TaskState::Running;
            rt.spawn(repost_task(self.inner.clone()));
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Posts `body` to every target at once; one result per target, in target order.
    async fn post_all(&self, body: &[PostableAlert]) -> Vec<Result<(), DeliveryError>> {
        futures::future::join_all(self.targets.iter().map(|t| self.post(t, body))).await
    }

    async fn post(&self, target: &Target, body: &[PostableAlert]) -> Result<(), DeliveryError> {
        let mut request = self.http.post(target.post.clone()).json(body);
        if let Some(t) = self.timeout {
            request = request.timeout(t);
        }
        let result = async {
            let resp = request.send().await.map_err(transport_error)?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let text = read_body(resp, 2048).await.unwrap_or_default();
            Err(status_error(status, &excerpt(&am_message(&text), 300)))
        }
        .await;
        result.map_err(|e| e.scrub(&target.secrets))
    }

    /// Posts `alerts` to every target in chunks; logs what failed. Used for re-posts, where
    /// nobody waits for the outcome: the next re-post is the retry.
    async fn post_logged(&self, alerts: &[PostableAlert], why: &'static str) {
        for chunk in alerts.chunks(MAX_BATCH) {
            for (target, result) in self.targets.iter().zip(self.post_all(chunk).await) {
                match result {
                    Ok(()) => debug!(
                        channel = %self.name,
                        alertmanager = %target.shown,
                        alerts = chunk.len(),
                        why,
                        "alerts posted to Alertmanager"
                    ),
                    Err(error) => warn!(
                        channel = %self.name,
                        alertmanager = %target.shown,
                        alerts = chunk.len(),
                        why,
                        %error,
                        retry_in = %common::time::human(self.repeat),
                        "Alertmanager did not take the alerts"
                    ),
                }
            }
        }
    }
}

/// Alertmanager's error text: API v2 answers a JSON string (`"start time must be before end
/// time"`) or `{"code":…,"message":…}`; anything else as it is.
fn am_message(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body.trim()) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(o)) => match o.get("message").and_then(|m| m.as_str()) {
            Some(m) => m.to_owned(),
            None => body.to_owned(),
        },
        _ => body.to_owned(),
    }
}

/// Re-posts the alerts every `repeat`, and posts what [`AlertmanagerChannel::resolve_quietly`]
/// changed as soon as it is woken; until the channel is dropped or its token cancelled.
async fn repost_task(inner: Arc<Inner>) {
    debug!(channel = %inner.name, repeat = %common::time::human(inner.repeat), "Alertmanager re-post task started");
    let mut next = tokio::time::Instant::now() + inner.repeat;
    loop {
        tokio::select! {
            biased;
            _ = inner.stop.cancelled() => break,
            _ = inner.wake.notified() => {
                let body = {
                    let mut st = inner.lock();
                    let keys = std::mem::take(&mut st.unsent);
                    st.alerts.render(&keys, SystemTime::now())
                };
                if !body.is_empty() {
                    inner.post_logged(&body, "changed outside a delivery").await;
                }
            }
            _ = tokio::time::sleep_until(next) => {
                next = tokio::time::Instant::now() + inner.repeat;
                let body = inner.lock().alerts.repost(SystemTime::now());
                if !body.is_empty() {
                    inner.post_logged(&body, "re-post").await;
                }
            }
        }
    }
    debug!(channel = %inner.name, "Alertmanager re-post task stopped");
}

impl Channel for AlertmanagerChannel {
    fn name(&self) -> String {
        self.inner.name.clone()
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    /// Posts the alerts `batch` fires or resolves to every target; succeeds when at least one
    /// took them (see the module documentation).
    async fn deliver(&self, batch: &[Alert]) -> Result<(), DeliveryError> {
        self.start_task();
        let body = {
            let now = SystemTime::now();
            let mut st = self.inner.lock();
            let mut keys = Vec::new();
            for alert in batch.iter().filter(|a| a.event != AlertKind::Test) {
                keys.extend(st.alerts.apply(alert, &self.inner.static_labels, now));
            }
            let mut body = st.alerts.render(&keys, now);
            body.extend(
                batch
                    .iter()
                    .filter(|a| a.event == AlertKind::Test)
                    .map(|a| PostableAlert {
                        labels: labels(a, WATCHER_TEST, &self.inner.static_labels),
                        annotations: annotations(a),
                        starts_at: common::time::format(now),
                        ends_at: common::time::format(now + TEST_LASTS),
                        generator_url: None,
                    }),
            );
            body
        };
        if body.is_empty() {
            return Ok(());
        }
        let results = self.inner.post_all(&body).await;
        let took = results.iter().filter(|r| r.is_ok()).count();
        let many = self.inner.targets.len() > 1;
        let mut retry = false;
        let mut errors = Vec::new();
        for (target, result) in self.inner.targets.iter().zip(results) {
            let Err(error) = result else { continue };
            retry |= error.is_retry();
            if took > 0 {
                warn!(
                    channel = %self.inner.name,
                    alertmanager = %target.shown,
                    %error,
                    catch_up_in = %common::time::human(self.inner.repeat),
                    "one Alertmanager of the cluster did not take the alerts; the others did"
                );
            }
            let text = error.to_string();
            errors.push(if many {
                format!("{}: {text}", target.shown)
            } else {
                text
            });
        }
        if took > 0 {
            return Ok(());
        }
        let text = errors.join("; ");
        let all_secrets: Vec<String> = self
            .inner
            .targets
            .iter()
            .flat_map(|t| t.secrets.iter().cloned())
            .collect();
        let text = scrub(&text, &all_secrets);
        Err(if retry {
            DeliveryError::Retry(text)
        } else {
            DeliveryError::Permanent(text)
        })
    }

    fn still_open(&self, alert: &Alert) {
        self.keep_firing(alert);
    }

    fn ended_quietly(&self, agent: &str) {
        self.resolve_quietly(agent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn spec(url: &str) -> AlertmanagerSpec {
        AlertmanagerSpec {
            url: Some(url.to_owned()),
            ..AlertmanagerSpec::default()
        }
    }

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_763_700_000 + secs)
    }

    fn alert(event: AlertKind, agent: &str, at: SystemTime) -> Alert {
        Alert {
            host: Some("web-3".to_owned()),
            restarts: Some(2),
            crashes: 1,
            ..Alert::new(event, agent, "killed by SIGKILL", at)
        }
    }

    #[test]
    fn a_degradation_fires_as_a_warning_naming_its_rule_and_component_with_the_figures() {
        use common::records::{ChannelFigures, HealthReason, HealthRecord, SinkFigures, Verdict};
        let mut a = alert(AlertKind::Degraded, "a1", t(0));
        a.reason = "sink k1 drained 0 events in 20s".to_owned();
        a.health = Some(crate::alert::Health(Box::new(HealthRecord {
            v: 1,
            at: "2026-11-21T01:02:03.000Z".to_owned(),
            verdict: Verdict::Degraded,
            reasons: vec![HealthReason::SinkStalled {
                sink: "k1".to_owned(),
                channel: Some("c1".to_owned()),
                ms: 20_000,
            }],
            channels: [(
                "c1".to_owned(),
                ChannelFigures {
                    fill: 94,
                    size: 940,
                    cap: 1_000,
                },
            )]
            .into(),
            sinks: [("k1".to_owned(), SinkFigures { rate: Some(0.0) })].into(),
        })));
        let name = fires(a.event).expect("a degradation fires");
        assert_eq!(name, AGENT_DEGRADED);
        let l = labels(&a, name, &BTreeMap::new());
        assert_eq!(l["severity"], "warning", "{l:?}");
        assert_eq!(l["health_reason"], "sink_stalled", "{l:?}");
        assert_eq!(l["component"], "k1", "{l:?}");
        let n = annotations(&a);
        assert_eq!(
            n["figures"], "channel c1 94 % full (940 of 1000); sink k1 drains 0.0 events/s",
            "{n:?}"
        );
        assert!(
            n["description"].contains("Figures at 2026-11-21T01:02:03.000Z"),
            "{n:?}"
        );
        assert_eq!(resolves(AlertKind::Healthy), &[AGENT_DEGRADED]);
    }

    fn recovered(agent: &str, at: SystemTime, outage: Duration) -> Alert {
        let mut a = alert(AlertKind::Recovered, agent, at);
        a.reason = format!("recovered after {}", common::time::human(outage));
        a.outage = Some(outage);
        a
    }

    fn no_labels() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    #[test]
    fn build_lists_every_problem_at_once_with_its_key() {
        let bad = AlertmanagerSpec {
            url: None,
            urls: Some(vec![
                "http://am1.example:9093".into(),
                "ftp://am2.example".into(),
                "http://am1.example:9093/".into(),
                "http://am3.example:9093/api/v2/alerts".into(),
            ]),
            repeat: Some("0s".into()),
            labels: BTreeMap::from([
                ("9team".into(), "x".into()),
                ("severity".into(), "page".into()),
                ("__meta".into(), "x".into()),
                ("dc".into(), "".into()),
                ("ok_label".into(), "fine".into()),
            ]),
            timeout: Some("soon".into()),
        };
        let problems = bad.build(None).expect_err("a spec full of mistakes");
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "urls[1]",
                "urls[2]",
                "urls[3]",
                "repeat",
                "timeout",
                "labels.9team",
                "labels.__meta",
                "labels.dc",
                "labels.severity",
            ],
            "{problems:#?}"
        );
        let text = |key: &str| &problems.iter().find(|(k, _)| k == key).unwrap().1;
        assert!(text("urls[1]").contains("http://"), "{problems:?}");
        assert!(text("urls[2]").contains("twice"), "{problems:?}");
        assert!(text("urls[3]").contains("base URL"), "{problems:?}");
        assert!(text("repeat").contains("more than zero"), "{problems:?}");
        assert!(text("timeout").contains("duration"), "{problems:?}");
        assert!(text("labels.severity").contains("set by the channel"));

        let neither = AlertmanagerSpec::default().build(None).unwrap_err();
        assert_eq!(neither.len(), 1);
        assert_eq!(neither[0].0, "url");
        let both = AlertmanagerSpec {
            url: Some("http://a.example:9093".into()),
            urls: Some(vec!["http://b.example:9093".into()]),
            ..AlertmanagerSpec::default()
        };
        assert_eq!(both.build(None).unwrap_err()[0].0, "urls");
        let empty = AlertmanagerSpec {
            urls: Some(vec![]),
            ..AlertmanagerSpec::default()
        };
        assert!(empty.build(None).unwrap_err()[0].1.contains("empty"));
    }

    #[test]
    fn problems_and_debug_never_show_a_secret() {
        let s = AlertmanagerSpec {
            urls: Some(vec![
                "ftp://u:S3CRETpw@am.example".into(),
                "http://u:S3CRETpw@am.example:9093?token=T0K3N".into(),
            ]),
            ..AlertmanagerSpec::default()
        };
        let shown = format!("{s:?} {:?}", s.build(None).unwrap_err());
        assert!(
            !shown.contains("S3CRETpw") && !shown.contains("T0K3N"),
            "{shown}"
        );
    }

    #[test]
    fn the_spec_deserialises_its_own_keys_only() {
        let s: AlertmanagerSpec = serde_json::from_str(
            r#"{"urls":["http://a.example:9093"],"repeat":"30s","labels":{"team":"logs"},"timeout":"5s"}"#,
        )
        .expect("every documented key");
        let channel = s.build(None).expect("valid");
        assert_eq!(channel.repeat(), Duration::from_secs(30));
        let err = serde_json::from_str::<AlertmanagerSpec>(
            r#"{"url":"http://a.example","reapeat":"1m"}"#,
        )
        .expect_err("a misspelt key");
        assert!(err.to_string().contains("reapeat"), "{err}");
    }

    #[test]
    fn names_are_stable_sorted_and_hide_secrets() {
        // `printf %s 'http://127.0.0.1:9093/' | sha256sum`: a changed fingerprint renames the
        // channel, and delivery receipts are keyed by name.
        let one = spec("http://127.0.0.1:9093").build(None).unwrap();
        assert_eq!(one.name(), "alertmanager http://127.0.0.1:9093/ #8909c602");
        assert_eq!(
            spec("http://127.0.0.1:9093/#x").build(None).unwrap().name(),
            one.name()
        );
        // `printf 'http://am1.example:9093/\nhttp://u:pw@am2.example:9093/am' | sha256sum`
        let cluster = |urls: [&str; 2]| AlertmanagerSpec {
            urls: Some(urls.iter().map(|u| u.to_string()).collect()),
            ..AlertmanagerSpec::default()
        };
        let a = cluster(["http://u:pw@am2.example:9093/am", "http://am1.example:9093"]);
        let b = cluster(["http://am1.example:9093", "http://u:pw@am2.example:9093/am"]);
        let name = a.build(None).unwrap().name();
        assert_eq!(
            name,
            "alertmanager http://am1.example:9093/,http://***@am2.example:9093/am #e1f34024"
        );
        assert_eq!(b.build(None).unwrap().name(), name);
        assert_eq!(
            spec("http://h:9093").build(Some("am")).unwrap().name(),
            "am"
        );
    }

    #[test]
    fn posts_under_the_base_url_and_its_prefix() {
        for (base, post) in [
            ("http://h:9093", "http://h:9093/api/v2/alerts"),
            ("http://h:9093/", "http://h:9093/api/v2/alerts"),
            (
                "https://h/alertmanager/",
                "https://h/alertmanager/api/v2/alerts",
            ),
            ("http://h/am?x=1", "http://h/am/api/v2/alerts?x=1"),
        ] {
            assert_eq!(target(base).unwrap().post.as_str(), post, "{base}");
        }
    }

    #[test]
    fn label_names_follow_prometheus() {
        for ok in ["team", "_x", "a1_B2"] {
            assert!(valid_label_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a.b", "ä"] {
            assert!(!valid_label_name(bad), "{bad}");
        }
    }

    #[test]
    fn alertmanager_error_texts_are_unwrapped() {
        assert_eq!(
            am_message(r#""start time must be before end time""#),
            "start time must be before end time"
        );
        assert_eq!(am_message(r#"{"code":400,"message":"bad"}"#), "bad");
        assert_eq!(am_message("404 page not found\n"), "404 page not found\n");
    }

    #[test]
    fn a_down_fires_with_its_labels_start_and_a_validity_of_four_repeats() {
        let mut set = FiringSet::new(Duration::from_secs(60));
        let statics = BTreeMap::from([("team".to_owned(), "logs".to_owned())]);
        let keys = set.apply(&alert(AlertKind::Down, "a1", t(0)), &statics, t(5));
        let posted = set.render(&keys, t(5));
        assert_eq!(posted.len(), 1);
        let p = &posted[0];
        assert_eq!(
            p.labels,
            BTreeMap::from([
                ("alertname".to_owned(), AGENT_DOWN.to_owned()),
                ("agent".to_owned(), "a1".to_owned()),
                ("host".to_owned(), "web-3".to_owned()),
                ("severity".to_owned(), "critical".to_owned()),
                ("team".to_owned(), "logs".to_owned()),
            ])
        );
        assert_eq!(p.starts_at, common::time::format(t(0)));
        assert_eq!(p.ends_at, common::time::format(t(5 + 240)));
        assert_eq!(
            p.annotations["summary"],
            "Flume agent a1 on web-3 is down: killed by SIGKILL"
        );
        assert_eq!(p.annotations["reason"], "killed by SIGKILL");
        assert_eq!(
            p.annotations["description"],
            format!(
                "Flume agent a1 on web-3 went down at {}.\nReason: killed by SIGKILL.\n\
                 Restarts by the watchdog: 2.",
                common::time::format(t(0))
            )
        );
        assert_eq!(set.firing(), [("a1", AGENT_DOWN)]);
    }

    #[test]
    fn a_notice_told_again_keeps_the_earliest_start_and_one_alert() {
        let mut set = FiringSet::new(Duration::from_secs(60));
        set.apply(&alert(AlertKind::Down, "a1", t(10)), &no_labels(), t(10));
        set.apply(&alert(AlertKind::Down, "a1", t(0)), &no_labels(), t(20));
        set.apply(&alert(AlertKind::Down, "a1", t(30)), &no_labels(), t(30));
        let all = set.repost(t(40));
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].starts_at, common::time::format(t(0)));
    }

    #[test]
    fn failed_fires_beside_down_and_recovered_resolves_both() {
        let mut set = FiringSet::new(Duration::from_secs(60));
        set.apply(&alert(AlertKind::Down, "a1", t(0)), &no_labels(), t(0));
        set.apply(&alert(AlertKind::Failed, "a1", t(50)), &no_labels(), t(50));
        set.apply(&alert(AlertKind::Down, "a2", t(60)), &no_labels(), t(60));
        assert_eq!(
            set.firing(),
            [("a1", AGENT_DOWN), ("a1", AGENT_FAILED), ("a2", AGENT_DOWN)]
        );
        let keys = set.apply(
            &recovered("a1", t(100), Duration::from_secs(100)),
            &no_labels(),
            t(101),
        );
        let posted = set.render(&keys, t(101));
        let names: Vec<&str> = posted
            .iter()
            .map(|p| p.labels["alertname"].as_str())
            .collect();
        assert_eq!(names, [AGENT_DOWN, AGENT_FAILED]);
        for p in &posted {
            assert_eq!(p.ends_at, common::time::format(t(101)), "{p:?}");
            assert_eq!(p.labels["severity"], "critical");
            assert!(
                p.annotations["summary"].contains("is back after 1m 40s"),
                "{p:?}"
            );
        }
        assert_eq!(posted[0].starts_at, common::time::format(t(0)));
        assert_eq!(posted[1].starts_at, common::time::format(t(50)));
        assert_eq!(set.firing(), [("a2", AGENT_DOWN)]);
    }

    #[test]
    fn what_is_reposted_at_a_time_and_when_resolved_ones_are_forgotten() {
        let mut set = FiringSet::new(Duration::from_secs(30));
        set.apply(&alert(AlertKind::Down, "a1", t(0)), &no_labels(), t(0));
        set.apply(&alert(AlertKind::Down, "a2", t(0)), &no_labels(), t(0));
        set.apply(
            &recovered("a2", t(60), Duration::from_secs(60)),
            &no_labels(),
            t(60),
        );
        let mut at = |secs| {
            let mut s: Vec<(String, String)> = set
                .repost(t(secs))
                .into_iter()
                .map(|p| {
                    (
                        format!("{} {}", p.labels["agent"], p.labels["alertname"]),
                        p.ends_at,
                    )
                })
                .collect();
            s.sort();
            s
        };
        let firing_until = |secs| common::time::format(t(secs + 120));
        let resolved_at = common::time::format(t(60));
        assert_eq!(
            at(90),
            [
                ("a1 FlumeAgentDown".to_owned(), firing_until(90)),
                ("a2 FlumeAgentDown".to_owned(), resolved_at.clone()),
                ("a2 FlumeAgentFailed".to_owned(), resolved_at.clone()),
            ]
        );
        let last = 60 + RESOLVED_KEPT.as_secs() - 1;
        assert_eq!(at(last).len(), 3);
        assert_eq!(
            at(last + 1),
            [("a1 FlumeAgentDown".to_owned(), firing_until(last + 1))]
        );
    }

    #[test]
    fn a_recovered_never_posted_here_resolves_what_it_would_have_been() {
        let mut set = FiringSet::new(Duration::from_secs(60));
        let keys = set.apply(
            &recovered("a1", t(300), Duration::from_secs(200)),
            &no_labels(),
            t(301),
        );
        let posted = set.render(&keys, t(301));
        assert_eq!(posted.len(), 2);
        for p in &posted {
            assert_eq!(p.starts_at, common::time::format(t(100)));
            assert_eq!(p.ends_at, common::time::format(t(301)));
            assert_eq!(p.labels["host"], "web-3");
        }
        assert!(set.firing().is_empty());
    }

    #[test]
    fn a_refire_after_a_resolve_is_a_new_outage() {
        let mut set = FiringSet::new(Duration::from_secs(60));
        set.apply(&alert(AlertKind::Down, "a1", t(0)), &no_labels(), t(0));
        set.apply(
            &recovered("a1", t(100), Duration::from_secs(100)),
            &no_labels(),
            t(100),
        );
        let keys = set.apply(&alert(AlertKind::Down, "a1", t(200)), &no_labels(), t(200));
        let p = &set.render(&keys, t(200))[0];
        assert_eq!(p.starts_at, common::time::format(t(200)));
        assert_eq!(p.ends_at, common::time::format(t(440)));
        assert_eq!(set.firing(), [("a1", AGENT_DOWN)]);
    }

    #[test]
    fn a_quiet_resolve_ends_what_fires_and_a_late_notice_of_that_outage_with_it() {
        let mut set = FiringSet::new(Duration::from_secs(60));
        set.apply(&alert(AlertKind::Down, "a1", t(0)), &no_labels(), t(0));
        set.apply(&alert(AlertKind::Failed, "a1", t(10)), &no_labels(), t(10));
        let keys = set.resolve_quietly("a1", t(50));
        let posted = set.render(&keys, t(50));
        assert_eq!(posted.len(), 2);
        assert!(posted
            .iter()
            .all(|p| p.ends_at == common::time::format(t(50))));
        assert!(set.firing().is_empty());
        // Nothing more to resolve: nothing to post.
        assert!(set.resolve_quietly("a1", t(55)).is_empty());
        assert!(set.resolve_quietly("nobody", t(55)).is_empty());

        // b1's down was still queued when its outage ended quietly: it arrives resolved.
        set.resolve_quietly("b1", t(60));
        let keys = set.apply(&alert(AlertKind::Down, "b1", t(58)), &no_labels(), t(61));
        let p = &set.render(&keys, t(61))[0];
        assert_eq!(p.ends_at, common::time::format(t(60)));
        assert_eq!(p.starts_at, common::time::format(t(58)));
        assert!(set.firing().is_empty());
        // A later outage fires.
        set.apply(&alert(AlertKind::Down, "b1", t(70)), &no_labels(), t(70));
        assert_eq!(set.firing(), [("b1", AGENT_DOWN)]);
    }

    #[test]
    fn blind_is_a_warning_that_sighted_resolves() {
        let mut set = FiringSet::new(Duration::from_secs(60));
        let who = "flume-watcher on w1 (pid 7)";
        let keys = set.apply(&alert(AlertKind::Blind, who, t(0)), &no_labels(), t(0));
        let p = &set.render(&keys, t(0))[0];
        assert_eq!(p.labels["alertname"], WATCHER_BLIND);
        assert_eq!(p.labels["severity"], "warning");
        set.apply(&alert(AlertKind::Down, "a1", t(1)), &no_labels(), t(1));
        let keys = set.apply(&alert(AlertKind::Sighted, who, t(90)), &no_labels(), t(90));
        let posted = set.render(&keys, t(90));
        assert_eq!(posted.len(), 1);
        assert_eq!(posted[0].labels["alertname"], WATCHER_BLIND);
        assert_eq!(posted[0].ends_at, common::time::format(t(90)));
        assert_eq!(set.firing(), [("a1", AGENT_DOWN)]);
    }

    #[test]
    fn a_start_after_the_end_is_clamped_not_refused() {
        // Another watcher's clock ran ahead: Alertmanager answers 400 to startsAt > endsAt.
        let mut set = FiringSet::new(Duration::from_secs(60));
        let keys = set.apply(
            &recovered("a1", t(3600), Duration::from_secs(1)),
            &no_labels(),
            t(0),
        );
        let p = &set.render(&keys, t(0))[0];
        assert_eq!(p.starts_at, p.ends_at);
        let keys = set.apply(&alert(AlertKind::Down, "a2", t(3600)), &no_labels(), t(0));
        let p = &set.render(&keys, t(0))[0];
        assert_eq!(p.starts_at, common::time::format(t(0)));
    }

    #[test]
    fn an_unknown_host_is_no_label_and_the_body_is_alertmanagers_shape() {
        let mut set = FiringSet::new(Duration::from_secs(60));
        let mut a = alert(AlertKind::Down, "a1", t(0));
        a.host = None;
        let keys = set.apply(&a, &no_labels(), t(0));
        let body = serde_json::to_value(set.render(&keys, t(0))).unwrap();
        let item = &body[0];
        assert!(item["labels"].get("host").is_none(), "{body}");
        assert!(item["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("unknown host"));
        for key in ["labels", "annotations", "startsAt", "endsAt"] {
            assert!(item.get(key).is_some(), "{key} missing: {body}");
        }
        assert!(item.get("generatorURL").is_none(), "{body}");
    }

    #[test]
    fn a_channel_built_outside_a_runtime_resolves_quietly_without_panicking() {
        let channel = spec("http://127.0.0.1:9").build(None).unwrap();
        channel.keep_firing(&alert(AlertKind::Down, "a1", t(0)));
        assert_eq!(channel.inner.lock().alerts.firing(), [("a1", AGENT_DOWN)]);
        channel.resolve_quietly("a1");
        assert!(channel.inner.lock().alerts.firing().is_empty());
        // Kept for the first delivery, which starts the task.
        assert_eq!(channel.inner.lock().unsent.len(), 2);
        assert_eq!(channel.inner.lock().task, TaskState::NotStarted);
    }

    /// The agent's labels go along, their names made valid; they never replace the labels that
    /// say which alert this is.
    #[test]
    fn the_agents_labels_go_along_and_never_replace_the_alerts_own() {
        let mut a = alert(AlertKind::Down, "web7-a1", SystemTime::now());
        a.labels = [
            ("team".to_owned(), "logs".to_owned()),
            ("k8s.io/zone".to_owned(), "bj".to_owned()),
            ("agent".to_owned(), "spoofed".to_owned()),
            ("9lives".to_owned(), "x".to_owned()),
        ]
        .into();
        let got = labels(&a, "FlumeAgentDown", &BTreeMap::new());
        assert_eq!(got["team"], "logs");
        assert_eq!(got["k8s_io_zone"], "bj");
        assert_eq!(got["_9lives"], "x");
        assert_eq!(got["agent"], "web7-a1");
        assert_eq!(got["alertname"], "FlumeAgentDown");
    }
}
