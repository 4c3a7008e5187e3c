//! Slack incoming webhook: `POST {"text": …, "blocks": […]}`; success is HTTP 200 with `ok`.
//!
//! `text` is the notification line a phone shows (the headline of a single alert, the count of
//! several); `blocks` hold one header and one mrkdwn section per alert, in the operator's
//! language and zone. Slack refuses (HTTP 400) a section over 3,000 characters and a message of
//! more than 50 blocks: every field has a budget, cut with `…` when it runs over, and a batch
//! holds at most as many alerts as 50 blocks carry (the notifier splits bigger ones).
//!
//! No `channel`, `username` or `icon` keys: the webhooks of Slack apps ignore them (the channel
//! and the name are chosen when the app is installed); only the retired "legacy" integrations
//! honoured them.
//!
//! Replies: 200 `ok` delivered; 429 comes back after its `Retry-After` (Slack allows about one
//! message a second per webhook, with short bursts); 5xx retried; 400/403/404/410
//! (`invalid_payload`, `no_service`, `channel_not_found`, `channel_is_archived`, …) permanent,
//! with Slack's own word for it.
//!
//! The URL's path (`/services/T…/B…/X…`) is the credential: every segment of it but `services`
//! is shown as `***`, in names, `Debug`, `config check` and errors.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::{json, Value};

use super::kinds::{self, KeyProblem, Kind};
use super::template::{self, SectionTemplate};
use super::{
    excerpt, fingerprint, identity_url, read_body, redact_url, retry_after, status_error,
    transport_error, url_secrets, Channel, ChannelSpec, DeliveryError,
};
use crate::alert::{Alert, AlertKind};
use crate::burst::Burst;
use crate::message::Style;
use crate::notify::Notifier;

/// `[[channel]] type = "slack"`.
pub const KIND: Kind = Kind {
    name: "slack",
    read: read_table,
};

/// The keys of a Slack webhook's table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    url: String,
    /// One alert's section in the operator's words (see [`template`](super::template)).
    template: Option<String>,
    template_file: Option<std::path::PathBuf>,
}

fn read_table(table: toml::Table) -> Result<Box<dyn ChannelSpec>, Vec<KeyProblem>> {
    let keys: Keys = kinds::keys(table)?;
    let mut problems = Vec::new();
    let template = template::read(keys.template, keys.template_file.as_deref(), &mut problems);
    let config = SlackConfig::parse(&keys.url)
        .map_err(|e| problems.push(("url".to_owned(), e)))
        .ok();
    match config {
        Some(config) if problems.is_empty() => Ok(Box::new(SlackConfig { template, ..config })),
        _ => Err(problems),
    }
}

/// A Slack incoming webhook. `Debug`/`Display` show its URL with the path's tokens as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct SlackConfig {
    url: Url,
    /// Not part of the channel's key: how a message reads does not change the receiver.
    template: Option<Arc<SectionTemplate>>,
}

impl SlackConfig {
    /// An http(s) URL with a path (`https://hooks.slack.com/services/T…/B…/X…`). Errors never
    /// echo the URL.
    pub fn parse(s: &str) -> Result<SlackConfig, String> {
        let url = super::parse_http_url(s, "Slack webhook")?;
        let has_path = url
            .path_segments()
            .is_some_and(|mut s| s.any(|seg| !seg.is_empty()));
        if !has_path {
            return Err("Slack webhook URL has no path \
                 (expected https://hooks.slack.com/services/T…/B…/X…)"
                .to_owned());
        }
        Ok(SlackConfig {
            url,
            template: None,
        })
    }

    /// `slack <URL, path tokens as ***> #<fingerprint of the URL>`: see [`Channel::name`].
    pub fn channel_name(&self) -> String {
        format!(
            "slack {} {}",
            shown_url(&self.url),
            fingerprint(&identity_url(&self.url))
        )
    }

    /// What error texts must never contain: the path's tokens, and what [`url_secrets`] finds.
    fn secrets(&self) -> Vec<String> {
        let mut secrets = url_secrets(&self.url);
        secrets.extend(
            hidden_segments(&self.url)
                .filter(|s| s.len() >= 3)
                .map(str::to_owned),
        );
        secrets
    }
}

/// The path segments that are a webhook's credential: all but a literal `services` (Slack's
/// `T…` and `B…` ids are short and may be all letters, so [`redact_url`]'s "long, with digits"
/// rule would leave them, and the last segment is the secret itself).
fn hidden_segments(url: &Url) -> impl Iterator<Item = &str> {
    url.path_segments()
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty() && *s != "services")
}

/// The URL for people: path tokens, query values and user info as `***`.
fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    let path: Vec<&str> = url
        .path_segments()
        .into_iter()
        .flatten()
        .map(|s| {
            if s.is_empty() || s == "services" {
                s
            } else {
                "***"
            }
        })
        .collect();
    shown.set_path(&path.join("/"));
    redact_url(&shown)
}

impl fmt::Display for SlackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shown_url(&self.url))
    }
}

impl fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackConfig")
            .field("url", &shown_url(&self.url))
            .finish()
    }
}

impl ChannelSpec for SlackConfig {
    fn describe(&self) -> String {
        match self.template {
            Some(_) => format!("slack {self}, own template"),
            None => format!("slack {self}"),
        }
    }
    fn key(&self) -> String {
        self.channel_name()
    }
    fn start(&self, label: &str, notifier: &mut Notifier, ctx: &super::Context) -> bool {
        notifier.add_channel_as(
            label,
            SlackChannel::new(self.clone(), ctx.http.clone()).styled(ctx.style.clone()),
        )
    }
}

pub struct SlackChannel {
    config: SlackConfig,
    style: Style,
    http: reqwest::Client,
    secrets: Vec<String>,
}

/// Slack refuses a message of more than this many blocks.
pub const MAX_BLOCKS: usize = 50;
/// Slack refuses a section whose text is longer (in characters).
pub const MAX_SECTION_CHARS: usize = 3_000;
/// Slack refuses a header whose text is longer (in characters).
pub const MAX_HEADER_CHARS: usize = 150;
/// Blocks one alert takes: a header and a section.
const BLOCKS_PER_ALERT: usize = 2;

impl SlackChannel {
    /// As many alerts as [`MAX_BLOCKS`] carry.
    pub const MAX_BATCH: usize = MAX_BLOCKS / BLOCKS_PER_ALERT;
    /// Slack allows about one message a second per webhook.
    pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

    pub fn new(config: SlackConfig, http: reqwest::Client) -> SlackChannel {
        let secrets = config.secrets();
        SlackChannel {
            config,
            style: Style::default(),
            http,
            secrets,
        }
    }

    /// The same webhook writing in `style` (English and UTC until told).
    pub fn styled(mut self, style: Style) -> SlackChannel {
        self.style = style;
        self
    }

    async fn post(&self, body: Value) -> Result<(), DeliveryError> {
        let resp = self
            .http
            .post(self.config.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(transport_error)?;
        let status = resp.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let after = retry_after(resp.headers());
            let body = read_body(resp, 1024).await.unwrap_or_default();
            let text = format!("Slack is rate limiting: {}", slack_said(status, &body));
            return Err(match after {
                Some(after) => DeliveryError::RetryAfter(after, text),
                None => DeliveryError::Retry(text),
            });
        }
        let body = read_body(resp, 1024).await.map_err(transport_error)?;
        if !status.is_success() {
            return Err(status_error(status, &excerpt(&body, 200)));
        }
        if status == StatusCode::OK && body.trim() == "ok" {
            return Ok(());
        }
        // Slack answers exactly `200 ok`; anything else on success is not Slack (a proxy's page,
        // a URL that points elsewhere): sending again would not change that.
        Err(DeliveryError::Permanent(format!(
            "the webhook answered {} instead of Slack's `ok`: is the URL a Slack incoming webhook?",
            slack_said(status, &body)
        )))
    }
}

/// `HTTP 429 Too Many Requests: <Slack's text>`.
fn slack_said(status: StatusCode, body: &str) -> String {
    let body = excerpt(body.trim(), 200);
    if body.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {body}")
    }
}

impl Channel for SlackChannel {
    fn name(&self) -> String {
        self.config.channel_name()
    }

    fn max_batch(&self) -> usize {
        Self::MAX_BATCH
    }

    fn min_interval(&self) -> Duration {
        Self::MIN_INTERVAL
    }

    async fn deliver(&self, batch: &[Alert]) -> Result<(), DeliveryError> {
        self.post(message_body_with(
            batch,
            &self.style,
            self.config.template.as_deref(),
        ))
        .await
        .map_err(|e| e.scrub(&self.secrets))
    }

    fn summarizes(&self) -> bool {
        true
    }

    async fn deliver_summary(&self, alerts: &[Alert]) -> Result<(), DeliveryError> {
        let body = summary_body(&Burst::of(alerts, &self.style), &self.style);
        self.post(body).await.map_err(|e| e.scrub(&self.secrets))
    }
}

/// A burst as a header (its title) and one section (its lines), each within Slack's limits.
pub(crate) fn summary_body(burst: &Burst, style: &Style) -> Value {
    let title = burst.title(style);
    let mark = if burst.events.iter().all(|(k, _)| *k == AlertKind::Recovered) {
        "🟢"
    } else {
        "🔴"
    };
    let lines: Vec<String> = burst
        .lines(style)
        .into_iter()
        .map(|(label, value)| format!("*{label}:* {}", mrkdwn(&value, MAX_SECTION_CHARS)))
        .collect();
    let section = limit(
        lines.join("\n").chars().map(String::from),
        MAX_SECTION_CHARS,
    );
    json!({
        "text": cut(&title, TEXT_CHARS),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": cut(&format!("{mark} {title}"), MAX_HEADER_CHARS), "emoji": true}},
            {"type": "section", "text": {"type": "mrkdwn", "text": section}},
        ],
    })
}

/// Field budgets in characters (after Slack's `&`, `<`, `>` escaping), so that one alert's
/// section always stays far under [`MAX_SECTION_CHARS`] and a full batch under Slack's 40,000
/// characters of a message.
const AGENT_CHARS: usize = 100;
const HOST_CHARS: usize = 100;
const REASON_CHARS: usize = 500;
const OTHER_CHARS: usize = 100;
/// The notification line.
const TEXT_CHARS: usize = 300;

/// The JSON body for `batch`: `text` for notifications, `blocks` for the message.
#[cfg(test)]
pub(crate) fn message_body(batch: &[Alert], style: &Style) -> Value {
    message_body_with(batch, style, None)
}

/// [`message_body`], each alert's section from `template` when there is one.
fn message_body_with(batch: &[Alert], style: &Style, template: Option<&SectionTemplate>) -> Value {
    let text = match batch {
        [one] => style.headline(&Alert {
            agent: cut(&one.agent, AGENT_CHARS),
            host: one.host.as_deref().map(|h| cut(h, HOST_CHARS)),
            ..one.clone()
        }),
        many => style.title(many),
    };
    let blocks: Vec<Value> = batch
        .iter()
        .flat_map(|a| alert_blocks(a, style, template))
        .collect();
    json!({ "text": cut(&text, TEXT_CHARS), "blocks": blocks })
}

/// Most bytes of one alert's section from a template: under [`MAX_SECTION_CHARS`] whatever
/// its characters.
const TEMPLATE_BYTES: usize = 2_900;

fn alert_blocks(
    a: &Alert,
    style: &Style,
    template: Option<&SectionTemplate>,
) -> [Value; BLOCKS_PER_ALERT] {
    let mark = match a.event {
        AlertKind::Down => "🔴",
        AlertKind::Failed => "⛔",
        AlertKind::Recovered => "🟢",
        AlertKind::Blind => "🙈",
        AlertKind::Sighted => "👀",
        AlertKind::Test => "🧪",
        AlertKind::Degraded => "🟠",
        AlertKind::Healthy => "🟢",
    };
    let mut facts = style.facts(a).into_iter();
    // The agent is in the header; the rest are lines of the section, each within its budget.
    let agent = facts.next().map(|(_, v)| v).unwrap_or_default();
    let header = cut(
        &format!(
            "{mark} {} · {}",
            style.event(a.event),
            cut(&agent, AGENT_CHARS)
        ),
        MAX_HEADER_CHARS,
    );
    let builtin = || {
        facts
            .enumerate()
            .map(|(i, (label, value))| {
                let budget = match i {
                    0 => HOST_CHARS,
                    1 => REASON_CHARS,
                    _ => OTHER_CHARS,
                };
                format!("*{label}:* {}", mrkdwn(&value, budget))
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    // Within budget by construction (a test checks the worst case); cut all the same should a
    // budget ever be raised too far, rather than have Slack refuse the message.
    let section = limit(
        template::section(template, a, style, TEMPLATE_BYTES, builtin)
            .chars()
            .map(String::from),
        MAX_SECTION_CHARS,
    );
    [
        json!({"type": "header", "text": {"type": "plain_text", "text": header, "emoji": true}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": section}}),
    ]
}

/// `s` escaped as Slack's mrkdwn asks (`&`, `<`, `>`: a `<` would start a link or a mention),
/// on one line, in at most `max` characters of the escaped text, cut with `…`. Never cuts an
/// escape in half.
fn mrkdwn(s: &str, max: usize) -> String {
    let escape = |c: char| -> String {
        match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            c if c.is_control() => " ".to_owned(),
            c => c.to_string(),
        }
    };
    limit(s.chars().map(escape), max)
}

/// `s` on one line, at most `max` characters, cut with `…`.
fn cut(s: &str, max: usize) -> String {
    limit(
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .map(String::from),
        max,
    )
}

/// The pieces joined, at most `max` characters, else as many whole pieces as fit with `…`.
/// Characters are counted as Slack's limits count them, in UTF-16 units (an emoji may be two),
/// so that no count of Slack's can find more.
fn limit(pieces: impl Iterator<Item = String> + Clone, max: usize) -> String {
    let len = |p: &str| p.encode_utf16().count();
    if pieces.clone().map(|p| len(&p)).sum::<usize>() <= max {
        return pieces.collect();
    }
    let budget = max.saturating_sub(1);
    let mut out = String::new();
    let mut used = 0;
    for p in pieces {
        if used + len(&p) > budget {
            break;
        }
        used += len(&p);
        out.push_str(&p);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::ExitRecord;
    use std::time::UNIX_EPOCH;

    const URL: &str =
        "https://hooks.slack.com/services/TABCDEFGH/BQRSTUVWX/lettersOnlySecretXyzAbcd";

    fn alert(agent: &str, reason: &str) -> Alert {
        Alert {
            host: Some("web-3".to_owned()),
            restarts: Some(4),
            crashes: 1,
            ..Alert::new(
                AlertKind::Down,
                agent,
                reason,
                UNIX_EPOCH + Duration::from_millis(1_795_222_923_470),
            )
        }
    }

    fn zh() -> Style {
        Style {
            lang: crate::message::Lang::Zh,
            zone: crate::message::Zone::parse("Asia/Shanghai").expect("zone"),
        }
    }

    /// Slack counts characters; an emoji may count as two (UTF-16), so the checks do too.
    fn slack_len(s: &str) -> usize {
        s.encode_utf16().count()
    }

    fn worst(style_event: AlertKind) -> Alert {
        let nasty = "<&>\"\\\n🔥故".repeat(2_000);
        let mut a = alert(&nasty, &nasty);
        a.event = style_event;
        a.host = Some(nasty.clone());
        a.restarts = Some(u64::MAX);
        a.crashes = u32::MAX;
        a.outage = Some(Duration::from_secs(400 * 365 * 86_400 + 86_399));
        a.last_exit = Some(ExitRecord {
            code: None,
            signal: Some(nasty.clone()),
            at: nasty,
            error: None,
        });
        a
    }

    fn check_fits(body: &Value) {
        let blocks = body["blocks"].as_array().expect("blocks");
        assert!(blocks.len() <= MAX_BLOCKS, "{} blocks", blocks.len());
        for b in blocks {
            let text = b["text"]["text"].as_str().expect("block text");
            match b["type"].as_str() {
                Some("header") => assert!(slack_len(text) <= MAX_HEADER_CHARS, "{text}"),
                Some("section") => assert!(slack_len(text) <= MAX_SECTION_CHARS, "{text}"),
                other => panic!("unexpected block {other:?}"),
            }
        }
        let total: usize = blocks
            .iter()
            .map(|b| slack_len(b["text"]["text"].as_str().unwrap_or_default()))
            .sum();
        assert!(total < 40_000, "{total} characters in one message");
        assert!(slack_len(body["text"].as_str().expect("text")) <= TEXT_CHARS);
    }

    #[test]
    fn one_alert_is_a_headline_a_header_and_its_facts() {
        let mut a = alert("web7-a1", "exited with code 3");
        a.last_exit = Some(ExitRecord {
            code: Some(3),
            signal: None,
            at: "2026-11-21T01:02:03.470Z".into(),
            error: None,
        });
        let body = message_body(&[a.clone()], &Style::default());
        assert_eq!(body["text"], "[DOWN] web7-a1 on web-3: exited with code 3");
        assert_eq!(
            body["blocks"],
            json!([
                {"type": "header", "text": {"type": "plain_text", "text": "🔴 DOWN · web7-a1", "emoji": true}},
                {"type": "section", "text": {"type": "mrkdwn", "text":
                    "*Host:* web-3\n*Reason:* exited with code 3\n*Since:* 2026-11-21 01:02:03 +00:00\n*Restarts:* 4"}},
            ])
        );
        let body = message_body(&[a], &zh());
        assert_eq!(body["text"], "【宕机】web7-a1（web-3）：退出码 3");
        assert_eq!(body["blocks"][0]["text"]["text"], "🔴 宕机 · web7-a1");
        assert_eq!(
            body["blocks"][1]["text"]["text"],
            "*主机:* web-3\n*原因:* 退出码 3\n*发生时间:* 2026-11-21 09:02:03 +08:00\n*重启次数:* 4"
        );
        let many = message_body(&[alert("a1", "x"), alert("a2", "y")], &zh());
        assert_eq!(many["text"], "2 条 Flume agent 告警");
        assert_eq!(many["blocks"].as_array().map(Vec::len), Some(4));
    }

    #[test]
    fn mrkdwn_control_characters_are_escaped_and_never_cut_in_half() {
        assert_eq!(mrkdwn("a<b>&c", 100), "a&lt;b&gt;&amp;c");
        assert_eq!(mrkdwn("<@U123>", 100), "&lt;@U123&gt;");
        assert_eq!(mrkdwn("ab<cd", 5), "ab…");
        assert_eq!(mrkdwn("a\nb", 10), "a b");
        assert_eq!(cut("故障故障", 3), "故障…");
    }

    /// A full batch of the longest, nastiest alerts fits every limit, in both languages: the
    /// notifier's split by `MAX_BATCH` is all it takes.
    #[test]
    fn worst_case_batches_fit_slacks_limits_in_english_and_chinese() {
        assert_eq!(SlackChannel::MAX_BATCH * BLOCKS_PER_ALERT, MAX_BLOCKS);
        for style in [Style::default(), zh()] {
            for event in [AlertKind::Down, AlertKind::Recovered, AlertKind::Failed] {
                let batch = vec![worst(event); SlackChannel::MAX_BATCH];
                let body = message_body(&batch, &style);
                check_fits(&body);
                let section = body["blocks"][1]["text"]["text"].as_str().unwrap();
                assert!(section.contains('…'), "long fields are cut visibly");
                assert!(!section.contains('<'), "no raw < reaches Slack: {section}");
                check_fits(&message_body(&batch[..1], &style));
            }
        }
    }

    #[test]
    fn the_urls_tokens_never_show() {
        let c = SlackConfig::parse(URL).unwrap();
        let ch = SlackChannel::new(c.clone(), reqwest::Client::new());
        let spec: &dyn ChannelSpec = &c;
        // `printf %s '<URL>' | sha256sum`
        assert_eq!(
            c.channel_name(),
            "slack https://hooks.slack.com/services/***/***/*** #7c1891fc"
        );
        for shown in [
            format!("{c:?}"),
            c.to_string(),
            ch.name(),
            spec.describe(),
            format!("{spec:?}"),
        ] {
            for secret in ["TABCDEFGH", "BQRSTUVWX", "lettersOnlySecretXyzAbcd"] {
                assert!(!shown.contains(secret), "{secret} shown: {shown}");
            }
            assert!(shown.contains("/services/***/***/***"), "{shown}");
        }
        assert_eq!(spec.key(), ch.name());
        let err =
            DeliveryError::Permanent(format!("HTTP 404 for {URL}: no_service")).scrub(&ch.secrets);
        assert_eq!(
            err.to_string(),
            "HTTP 404 for https://hooks.slack.com/services/***/***/***: no_service"
        );
        let other = SlackConfig::parse(&URL.replace("Xyz", "Xyy")).unwrap();
        assert_ne!(other.channel_name(), c.channel_name());
    }

    #[test]
    fn the_table_is_read_and_problems_named() {
        let table = |text: &str| -> toml::Table { toml::from_str(text).expect("toml") };
        let spec = read_table(table(&format!("url = '{URL}'"))).expect("valid");
        assert!(spec
            .describe()
            .starts_with("slack https://hooks.slack.com/services/***"));
        for (text, key, says) in [
            ("url = 'https://hooks.slack.com'", "url", "has no path"),
            ("url = 'ftp://h/services/T/B/SECRETX'", "url", "http://"),
            ("url = 'x'\nchannel = '#ops'", "channel", "unknown field"),
            ("", "", "missing field `url`"),
        ] {
            let problems = read_table(table(text)).expect_err(text);
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].0, key, "{text}: {problems:?}");
            assert!(problems[0].1.contains(says), "{text}: {problems:?}");
            assert!(!problems[0].1.contains("SECRETX"), "{problems:?}");
        }
    }
}
