//! WeCom (企业微信) group robot: a markdown message, and when people are to be notified a short
//! `text` message after it that mentions them. Success is HTTP 200 with `{"errcode":0}`.
//!
//! Why two messages for mentions: WeCom rings people only from a `text` message
//! (`mentioned_mobile_list`, `@all`); markdown mentions take user ids, which operators do not
//! have at hand, and a `text` message cannot be formatted and holds half as much (2,048 bytes).
//! So the alerts go as markdown, readable on a phone, and a one-line `text` after it ("2 Flume
//! agent alerts above") makes the phones ring. The pair counts twice against WeCom's 20 messages
//! a minute, so a robot with mentions keeps twice the spacing.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use tracing::warn;

use super::chat::{self, Budgets};
use super::kinds::{self, KeyProblem, Kind};
use super::template::{self, SectionTemplate};
use super::{
    fingerprint, identity_url, redact_url, url_secrets, Channel, ChannelSpec, DeliveryError,
};
use crate::alert::{Alert, AlertKind};
use crate::burst::Burst;
use crate::message::{Lang, Style};
use crate::notify::Notifier;

/// `[[channel]] type = "wecom"`.
pub const KIND: Kind = Kind {
    name: "wecom",
    read: read_table,
};

/// The keys of a WeCom robot's table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    url: String,
    #[serde(default)]
    at_mobiles: Vec<String>,
    #[serde(default)]
    at_all: bool,
    /// One alert's section in the operator's words (see [`template`](super::template)).
    template: Option<String>,
    template_file: Option<std::path::PathBuf>,
}

/// Most mobiles one robot mentions: more is a broadcast, which `at_all` says better.
pub const MAX_MENTIONS: usize = 50;

fn read_table(table: toml::Table) -> Result<Box<dyn ChannelSpec>, Vec<KeyProblem>> {
    let keys: Keys = kinds::keys(table)?;
    let mut problems = Vec::new();
    let template = template::read(keys.template, keys.template_file.as_deref(), &mut problems);
    let url = super::parse_http_url(&keys.url, "WeCom robot")
        .and_then(with_key)
        .map_err(|e| problems.push(("url".to_owned(), e)))
        .ok();
    if keys.at_mobiles.len() > MAX_MENTIONS {
        problems.push((
            "at_mobiles".to_owned(),
            format!("at most {MAX_MENTIONS} numbers (to notify everyone, set at_all = true)"),
        ));
    }
    for (i, mobile) in keys.at_mobiles.iter().enumerate() {
        if !chat::is_mobile(mobile) {
            problems.push((
                format!("at_mobiles[{i}]"),
                format!("`{mobile}` is not a mobile number (digits, optionally a leading + or a country code like +86-)"),
            ));
        }
    }
    match url {
        Some(url) if problems.is_empty() => Ok(Box::new(WeComConfig {
            url,
            template,
            mentions: Mentions {
                mobiles: keys.at_mobiles,
                all: keys.at_all,
            },
        })),
        _ => Err(problems),
    }
}

/// A robot URL must carry its `key`.
fn with_key(url: Url) -> Result<Url, String> {
    if url.query_pairs().any(|(k, v)| k == "key" && !v.is_empty()) {
        return Ok(url);
    }
    Err("WeCom robot URL has no key query parameter \
         (expected https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY)"
        .to_owned())
}

/// Who the `text` message after the alerts notifies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mentions {
    pub mobiles: Vec<String>,
    pub all: bool,
}

impl Mentions {
    fn any(&self) -> bool {
        !self.mobiles.is_empty() || self.all
    }
}

/// `[[channel]] type = "wecom"` as read. `Debug` shows `key=***`.
#[derive(Clone, PartialEq, Eq)]
pub struct WeComConfig {
    url: Url,
    /// Not part of the channel's key: who is notified does not change the receiver.
    mentions: Mentions,
    /// Not part of the key either: how a message reads does not change the receiver.
    template: Option<Arc<SectionTemplate>>,
}

impl WeComConfig {
    /// A robot at `url` (with its `key`), notifying `mentions`. Errors never contain the key.
    pub fn new(url: &str, mentions: Mentions) -> Result<WeComConfig, String> {
        let url = with_key(super::parse_http_url(url, "WeCom robot")?)?;
        if let Some(bad) = mentions.mobiles.iter().find(|m| !chat::is_mobile(m)) {
            return Err(format!("`{bad}` is not a mobile number"));
        }
        Ok(WeComConfig {
            url,
            mentions,
            template: None,
        })
    }

    /// `wecom <URL, key as ***> #<fingerprint of the URL with its key>`. See [`Channel::name`].
    pub fn channel_name(&self) -> String {
        format!(
            "wecom {} {}",
            redact_url(&self.url),
            fingerprint(&identity_url(&self.url))
        )
    }
}

impl fmt::Debug for WeComConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeComConfig")
            .field("url", &redact_url(&self.url))
            .field("mentions", &self.mentions)
            .finish()
    }
}

impl ChannelSpec for WeComConfig {
    fn describe(&self) -> String {
        let mut shown = format!("wecom {}", redact_url(&self.url));
        if !self.mentions.mobiles.is_empty() {
            shown.push_str(&format!(", mentions {}", self.mentions.mobiles.join(" ")));
        }
        if self.mentions.all {
            shown.push_str(", mentions everyone");
        }
        if self.template.is_some() {
            shown.push_str(", own template");
        }
        shown
    }
    fn key(&self) -> String {
        self.channel_name()
    }
    fn start(&self, label: &str, notifier: &mut Notifier, ctx: &super::Context) -> bool {
        notifier.add_channel_as(
            label,
            WeComChannel::new(self.clone(), ctx.http.clone()).styled(ctx.style.clone()),
        )
    }
}

/// WeCom refuses markdown content longer than this, in UTF-8 bytes (errcode 40058).
pub const MAX_CONTENT_BYTES: usize = 4_096;

pub struct WeComChannel {
    config: WeComConfig,
    /// Language and time zone of the messages.
    style: Style,
    http: reqwest::Client,
    secrets: Vec<String>,
}

impl WeComChannel {
    /// The most alerts in one message; how many really go is measured ([`Channel::fits`]):
    /// as many as fit [`MAX_CONTENT_BYTES`] whole.
    pub const MAX_BATCH: usize = 20;
    /// WeCom allows 20 messages a minute per robot.
    pub const MIN_INTERVAL: Duration = Duration::from_secs(3);

    pub fn new(config: WeComConfig, http: reqwest::Client) -> WeComChannel {
        let secrets = url_secrets(&config.url);
        WeComChannel {
            config,
            style: Style::default(),
            http,
            secrets,
        }
    }

    /// The same robot writing in `style` (English and UTC until told).
    pub fn styled(mut self, style: Style) -> WeComChannel {
        self.style = style;
        self
    }

    /// Posts one message body and reads WeCom's answer.
    async fn post(&self, body: Vec<u8>) -> Result<(), DeliveryError> {
        super::chat::post_errcode(
            &self.http,
            self.config.url.clone(),
            body,
            "WeCom",
            errcode_error,
        )
        .await
    }

    async fn send(&self, batch: &[Alert]) -> Result<(), DeliveryError> {
        let content = markdown_content(batch, &self.style, self.config.template.as_deref());
        self.send_content(content, batch.len()).await
    }

    /// Posts `content`, about `alerts` alerts, then the mention when people are to be rung.
    async fn send_content(&self, content: String, alerts: usize) -> Result<(), DeliveryError> {
        if content.len() > MAX_CONTENT_BYTES {
            // Cannot happen: the notifier packs by `fits`, a single alert and a summary fit cut
            // (tests check the worst cases). Were it to, WeCom would refuse it with 40058 every
            // time: say so rather than send it.
            return Err(DeliveryError::Permanent(format!(
                "a WeCom message of {} bytes would exceed its {MAX_CONTENT_BYTES}-byte limit",
                content.len()
            )));
        }
        self.post(markdown_body(&content)).await?;
        if self.config.mentions.any() {
            // The alerts are delivered: a failed mention must not send them again (a retry of
            // the whole would), so it is logged, not returned.
            let ping = mention_body(alerts, &self.config.mentions, &self.style);
            if let Err(e) = self.post(ping).await {
                warn!(
                    channel = %self.config.channel_name(),
                    error = %e.scrub(&self.secrets),
                    "the WeCom alerts were delivered, but the message mentioning people was not"
                );
            }
        }
        Ok(())
    }
}

/// Classifies a WeCom `errcode` other than 0.
fn errcode_error(code: i64, errmsg: &str) -> DeliveryError {
    let hint = match code {
        93000 => Some("the robot's key is not valid (the robot was removed?)"),
        93001..=93999 => {
            Some("the robot refuses messages (disabled, removed, or not in the group)")
        }
        40008 | 40035 | 40033 | 44004 => Some("the message was refused as malformed"),
        40058 => Some("the message is longer than WeCom allows"),
        _ => None,
    };
    // 45009 (api freq out of limit), -1 (system busy) and anything unknown: later may work.
    super::chat::refusal("WeCom errcode", code, errmsg, hint)
}

impl Channel for WeComChannel {
    fn name(&self) -> String {
        self.config.channel_name()
    }

    fn max_batch(&self) -> usize {
        Self::MAX_BATCH
    }

    /// Two messages per delivery when people are mentioned: twice the spacing.
    fn min_interval(&self) -> Duration {
        if self.config.mentions.any() {
            2 * Self::MIN_INTERVAL
        } else {
            Self::MIN_INTERVAL
        }
    }

    /// Measured: the batch's markdown, every alert whole, within [`MAX_CONTENT_BYTES`].
    fn fits(&self, batch: &[Alert]) -> bool {
        batch.len() <= Self::MAX_BATCH
            && render(
                batch,
                &self.style,
                Budgets::FULL,
                self.config.template.as_deref(),
            )
            .len()
                <= MAX_CONTENT_BYTES
    }

    async fn deliver(&self, batch: &[Alert]) -> Result<(), DeliveryError> {
        self.send(batch).await.map_err(|e| e.scrub(&self.secrets))
    }

    fn summarizes(&self) -> bool {
        true
    }

    async fn deliver_summary(&self, alerts: &[Alert]) -> Result<(), DeliveryError> {
        let content = summary_content(&Burst::of(alerts, &self.style), &self.style);
        self.send_content(content, alerts.len())
            .await
            .map_err(|e| e.scrub(&self.secrets))
    }
}

/// A burst as markdown: the title in the colour of its worst event, then its lines as quotes.
pub(crate) fn summary_content(burst: &Burst, style: &Style) -> String {
    let colour = if burst.events.iter().all(|(k, _)| *k == AlertKind::Recovered) {
        "info"
    } else {
        "warning"
    };
    let mut text = format!("### <font color=\"{colour}\">{}</font>", burst.title(style));
    for (label, value) in burst.lines(style) {
        text.push_str(&format!("\n> **{label}:** {value}"));
    }
    text
}

/// `{"msgtype":"markdown","markdown":{"content":…}}`.
fn markdown_body(content: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "msgtype": "markdown",
        "markdown": { "content": content },
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The `text` message that rings `mentions`, saying how many alerts it is about.
pub(crate) fn mention_body(alerts: usize, mentions: &Mentions, style: &Style) -> Vec<u8> {
    let content = match (style.lang, alerts) {
        (Lang::En, 1) => "1 Flume agent alert above".to_owned(),
        (Lang::En, n) => format!("{n} Flume agent alerts above"),
        (Lang::Zh, n) => format!("以上 {n} 条 Flume agent 告警"),
    };
    let mut list = mentions.mobiles.clone();
    if mentions.all {
        list.push("@all".to_owned());
    }
    let body = serde_json::json!({
        "msgtype": "text",
        "text": { "content": content, "mentioned_mobile_list": list },
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The markdown for `batch` in `style`: whole when it fits, else with every field cut to
/// [`Budgets::TIGHT`].
pub(crate) fn markdown_content(
    batch: &[Alert],
    style: &Style,
    template: Option<&SectionTemplate>,
) -> String {
    let full = render(batch, style, Budgets::FULL, template);
    if full.len() <= MAX_CONTENT_BYTES {
        return full;
    }
    render(batch, style, Budgets::TIGHT, template)
}

/// Most bytes of one alert's section from a template: alone, it fits with room for the title.
const TEMPLATE_BYTES: usize = 3_600;

fn render(
    batch: &[Alert],
    style: &Style,
    budgets: Budgets,
    template: Option<&SectionTemplate>,
) -> String {
    let mut parts = Vec::with_capacity(batch.len() + 1);
    if batch.len() > 1 {
        parts.push(format!("**{}**", chat::title(batch, style, budgets)));
    }
    for a in batch {
        parts.push(template::section(
            template,
            a,
            style,
            TEMPLATE_BYTES,
            || {
                let s = chat::section(a, style, budgets);
                // WeCom's markdown knows three colours: warning (orange-red), info (green), comment
                // (grey).
                let colour = match s.event {
                    AlertKind::Down | AlertKind::Failed | AlertKind::Degraded => "warning",
                    AlertKind::Recovered | AlertKind::Healthy => "info",
                    AlertKind::Blind | AlertKind::Sighted | AlertKind::Test => "comment",
                };
                let mut text =
                    format!("### <font color=\"{colour}\">{}</font> {}", s.word, s.agent);
                for (label, value) in &s.lines {
                    text.push_str(&format!("\n> **{label}:** {value}"));
                }
                text
            },
        ));
    }
    parts.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::chat::tests::{alert, worst, zh};

    const URL: &str = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY0123-4567-89ab";

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).expect("toml")
    }

    #[test]
    fn a_markdown_message_names_event_agent_host_and_reason() {
        let body = markdown_body(&markdown_content(
            &[alert("a1", "exited with code 3")],
            &Style::default(),
            None,
        ));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["msgtype"], "markdown");
        let content = v["markdown"]["content"].as_str().unwrap();
        assert!(
            content.starts_with("### <font color=\"warning\">DOWN</font> a1\n> **Host:** web-3\n> **Reason:** exited with code 3\n> **Since:** 2025-11-21 04:40:00 +00:00"),
            "{content}"
        );
        assert!(content.contains("> **Restarts:** 4"), "{content}");
        let v = serde_json::from_slice::<serde_json::Value>(&markdown_body(&markdown_content(
            &[alert("a1", "x"), alert("a2", "y")],
            &zh(),
            None,
        )))
        .unwrap();
        let content = v["markdown"]["content"].as_str().unwrap();
        assert!(
            content.starts_with("**2 条 Flume agent 告警**\n\n### <font color=\"warning\">宕机</font> a1\n> **主机:** web-3"),
            "{content}"
        );
        assert!(content.contains("+08:00"), "the operator's zone: {content}");
    }

    /// The worst alerts there are, both languages, every kind of character: alone, cut visibly
    /// under WeCom's limit; in a summary, whole. Ordinary ones packed as many as fit.
    #[test]
    fn what_the_notifier_packs_fits_the_content_limit() {
        for style in [Style::default(), zh()] {
            let channel = WeComChannel::new(
                WeComConfig::new(URL, Mentions::default()).expect("url"),
                reqwest::Client::new(),
            )
            .styled(style.clone());
            for unit in ["故障", "\"\\\n🔥", "x"] {
                // The worst single alert goes alone, cut visibly to fit.
                let content = markdown_content(&[worst(unit)], &style, None);
                assert!(
                    content.len() <= MAX_CONTENT_BYTES,
                    "{unit:?}: {} bytes",
                    content.len()
                );
                assert!(content.contains('…'), "cut with an ellipsis");
                // The worst summary fits whole.
                let many = vec![worst(unit); 2_000];
                let summary = summary_content(&Burst::of(&many, &style), &style);
                assert!(
                    summary.len() <= MAX_CONTENT_BYTES,
                    "{unit:?}: {} bytes",
                    summary.len()
                );
            }
            // Real alerts go whole, as many as fit: more than the six of a fixed budget.
            let batch: Vec<Alert> = (0..WeComChannel::MAX_BATCH)
                .map(|i| {
                    alert(
                        &format!("web-{i:03}-flume-kafka-sink"),
                        "exited with code 3",
                    )
                })
                .collect();
            let most = (1..=batch.len())
                .take_while(|n| channel.fits(&batch[..*n]))
                .last()
                .expect("one fits");
            assert!(
                most >= 8,
                "{:?}: only {most} ordinary alerts fit",
                style.lang
            );
            let content = markdown_content(&batch[..most], &style, None);
            assert!(content.len() <= MAX_CONTENT_BYTES);
            assert!(!content.contains('…'), "{content}");
            assert_eq!(content.matches("### ").count(), most);
            if most < batch.len() {
                let over = render(&batch[..most + 1], &style, Budgets::FULL, None);
                assert!(over.len() > MAX_CONTENT_BYTES, "one more would not fit");
            }
        }
    }

    #[test]
    fn mentions_ring_from_a_text_message_in_the_styles_language() {
        let mentions = Mentions {
            mobiles: vec!["13800000000".into()],
            all: true,
        };
        let v: serde_json::Value =
            serde_json::from_slice(&mention_body(2, &mentions, &Style::default())).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"msgtype": "text", "text": {
                "content": "2 Flume agent alerts above",
                "mentioned_mobile_list": ["13800000000", "@all"]}})
        );
        let v: serde_json::Value =
            serde_json::from_slice(&mention_body(1, &mentions, &zh())).unwrap();
        assert_eq!(v["text"]["content"], "以上 1 条 Flume agent 告警");
        let quiet = WeComChannel::new(
            WeComConfig::new(URL, Mentions::default()).unwrap(),
            reqwest::Client::new(),
        );
        let loud = WeComChannel::new(
            WeComConfig::new(URL, mentions).unwrap(),
            reqwest::Client::new(),
        );
        assert_eq!(quiet.min_interval(), Duration::from_secs(3));
        assert_eq!(loud.min_interval(), Duration::from_secs(6));
        assert_eq!(
            quiet.name(),
            loud.name(),
            "mentions do not change the receiver"
        );
    }

    #[test]
    fn errcodes_are_classified() {
        assert!(errcode_error(45009, "api freq out of limit").is_retry());
        assert!(errcode_error(-1, "system busy").is_retry());
        assert!(errcode_error(123456, "").is_retry());
        for permanent in [93000, 93004, 93008, 40008, 40058, 44004] {
            assert!(!errcode_error(permanent, "").is_retry(), "{permanent}");
        }
        assert_eq!(
            errcode_error(93000, "invalid webhook url").to_string(),
            "WeCom errcode 93000: invalid webhook url (the robot's key is not valid (the robot was removed?))"
        );
    }

    #[test]
    fn name_debug_and_describe_never_show_the_key() {
        let spec = read_table(table(&format!(
            "url = '{URL}'\nat_mobiles = ['13800000000']\nat_all = true"
        )))
        .expect("valid");
        let config = WeComConfig::new(URL, Mentions::default()).unwrap();
        let ch = WeComChannel::new(config.clone(), reqwest::Client::new());
        for shown in [
            spec.describe(),
            spec.key(),
            format!("{spec:?}"),
            ch.name(),
            format!("{config:?}"),
        ] {
            assert!(!shown.contains("KEY0123"), "leaks the key: {shown}");
            assert!(shown.contains("key=***"), "{shown}");
        }
        assert_eq!(
            spec.describe(),
            "wecom https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***, mentions 13800000000, mentions everyone"
        );
        // Golden: `printf %s "$URL" | sha256sum`; a changed fingerprint renames the channel.
        assert_eq!(
            ch.name(),
            format!(
                "wecom https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=*** {}",
                crate::channels::fingerprint(URL)
            )
        );
        assert_ne!(
            ch.name(),
            WeComConfig::new(&URL.replace("KEY0", "KEY1"), Mentions::default())
                .unwrap()
                .channel_name(),
            "two robots differ by their key"
        );
        assert_eq!(spec.key(), ch.name());
        let err = errcode_error(93000, "invalid webhook url KEY0123-4567-89ab")
            .scrub(&url_secrets(&config.url));
        assert!(!err.to_string().contains("KEY0123"), "{err}");
    }

    #[test]
    fn every_problem_of_a_table_is_listed_without_the_key() {
        let problems = read_table(table(
            "url = 'https://qyapi.weixin.qq.com/cgi-bin/webhook/send?token=KEY0123'\nat_mobiles = ['138-abc', '13800000000', 'x']",
        ))
        .expect_err("problems");
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["url", "at_mobiles[0]", "at_mobiles[2]"],
            "{problems:?}"
        );
        assert!(
            problems[0].1.contains("no key query parameter"),
            "{problems:?}"
        );
        assert!(!format!("{problems:?}").contains("KEY0123"));
        let problems =
            read_table(table("url = 'ftp://h/x?key=K'\nat_all = 'yes'")).expect_err("problems");
        assert_eq!(problems[0].0, "at_all", "{problems:?}");
        let problems = read_table(table("url = 'ftp://h/x?key=K'")).expect_err("problems");
        assert_eq!(problems[0].0, "url");
        assert!(problems[0].1.contains("http://"), "{problems:?}");
        let problems =
            read_table(table("url = 'https://h/?key=K'\nmentions = []")).expect_err("problems");
        assert_eq!(problems[0].0, "mentions");
        let many: Vec<String> = (0..=MAX_MENTIONS)
            .map(|i| format!("'1380000{i:04}'"))
            .collect();
        let problems = read_table(table(&format!(
            "url = 'https://h/?key=K'\nat_mobiles = [{}]",
            many.join(",")
        )))
        .expect_err("too many");
        assert_eq!(problems[0].0, "at_mobiles");
    }
}
