//! DingTalk group robot: a markdown message, optionally signed (`timestamp` + `sign` query
//! parameters). Success is HTTP 200 with `{"errcode":0}`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::Url;
use serde::Deserialize;
use sha2::Sha256;

use super::chat::{self, Budgets};
use super::kinds::{self, KeyProblem, Kind};
use super::template::{self, SectionTemplate};
use super::{
    fingerprint, identity_url, redact_url, url_secrets, Channel, ChannelSpec, DeliveryError,
};
use crate::alert::{Alert, AlertKind};
use crate::burst::Burst;
use crate::message::Style;
use crate::notify::Notifier;

/// `[[channel]] type = "dingtalk"`.
pub const KIND: Kind = Kind {
    name: "dingtalk",
    read: read_table,
};

/// The keys of a DingTalk robot's table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    url: String,
    secret: Option<String>,
    secret_file: Option<std::path::PathBuf>,
    #[serde(default)]
    at_mobiles: Vec<String>,
    #[serde(default)]
    is_at_all: bool,
    /// One alert's section in the operator's words (see [`template`](super::template)).
    template: Option<String>,
    template_file: Option<std::path::PathBuf>,
}

fn read_table(table: toml::Table) -> Result<Box<dyn ChannelSpec>, Vec<KeyProblem>> {
    let keys: Keys = kinds::keys(table)?;
    let mut problems = Vec::new();
    let secret = kinds::secret(
        "secret",
        keys.secret,
        keys.secret_file.as_deref(),
        &mut problems,
    );
    let template = template::read(keys.template, keys.template_file.as_deref(), &mut problems);
    let url = super::parse_http_url(&keys.url, "DingTalk robot")
        .and_then(with_token)
        .map_err(|e| problems.push(("url".to_owned(), e)))
        .ok();
    if keys.at_mobiles.len() > MAX_MENTIONS {
        problems.push((
            "at_mobiles".to_owned(),
            format!(
                "at most {MAX_MENTIONS} numbers (a message must stay under DingTalk's size limit)"
            ),
        ));
    }
    for (i, mobile) in keys.at_mobiles.iter().enumerate() {
        if !is_mobile(mobile) {
            problems.push((
                format!("at_mobiles[{i}]"),
                format!("`{mobile}` is not a mobile number (digits, optionally a leading + or a country code like +86-)"),
            ));
        }
    }
    match url {
        Some(url) if problems.is_empty() => Ok(Box::new(DingTalkConfig {
            url,
            secret: secret.map(Secret),
            mentions: Mentions {
                mobiles: keys.at_mobiles,
                all: keys.is_at_all,
            },
            template,
        })),
        _ => Err(problems),
    }
}

/// Most mobiles one robot mentions: with the longest numbers, a full batch still fits
/// [`MAX_BODY_BYTES`] (a test checks).
pub const MAX_MENTIONS: usize = 20;

/// What DingTalk takes in `atMobiles`: digits, with a `+` and a `-` after a country code.
fn is_mobile(s: &str) -> bool {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    (5..=20).contains(&digits)
        && s.chars()
            .all(|c| c.is_ascii_digit() || c == '+' || c == '-')
}

impl ChannelSpec for DingTalkConfig {
    fn describe(&self) -> String {
        let mut shown = format!("dingtalk {self}");
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
            DingTalkChannel::new(self.clone(), ctx.http.clone()).styled(ctx.style.clone()),
        )
    }
}

/// Who a message notifies: DingTalk notifies a mobile only when it is both in `at.atMobiles` and
/// written `@<mobile>` in the text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mentions {
    pub mobiles: Vec<String>,
    pub all: bool,
}

/// DingTalk rejects bodies larger than this.
pub const MAX_BODY_BYTES: usize = 20_000;

/// A robot secret; shown as `***` everywhere.
#[derive(Clone, PartialEq, Eq)]
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// `--dingtalk URL[,secret=S]`. `Debug`/`Display` show `access_token=***` and `secret=***`.
#[derive(Clone, PartialEq, Eq)]
pub struct DingTalkConfig {
    url: Url,
    secret: Option<Secret>,
    /// Not part of the channel's key: who is notified does not change the receiver.
    mentions: Mentions,
    /// Not part of the key either: how a message reads does not change the receiver.
    template: Option<Arc<SectionTemplate>>,
}

impl DingTalkConfig {
    /// Parses `URL[,secret=S]`: the robot URL (with its `access_token`), then options.
    /// Errors never contain the token or the secret.
    pub fn parse(s: &str) -> Result<DingTalkConfig, String> {
        let mut parts = s.split(',');
        let url = super::parse_http_url(parts.next().unwrap_or_default(), "DingTalk robot")?;
        let url = with_token(url)?;
        let mut secret = None;
        for option in parts.map(str::trim).filter(|o| !o.is_empty()) {
            match option.split_once('=') {
                Some(("secret", value)) => {
                    let value = value.trim();
                    if value.is_empty() {
                        return Err("DingTalk option secret= is empty".to_owned());
                    }
                    if secret.is_some() {
                        return Err("DingTalk option secret= is given twice".to_owned());
                    }
                    secret = Some(Secret(value.to_owned()));
                }
                Some((key, _)) => {
                    return Err(format!("unknown DingTalk option `{}` (the only option is secret=SECRET)", key.trim()))
                }
                // Not named: it may be a secret given without `secret=`.
                None => {
                    return Err(
                        "DingTalk options after the URL must look like key=value (the only option is secret=SECRET)"
                            .to_owned(),
                    )
                }
            }
        }
        Ok(DingTalkConfig {
            url,
            secret,
            mentions: Mentions::default(),
            template: None,
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn is_signed(&self) -> bool {
        self.secret.is_some()
    }

    /// `dingtalk <URL, token as ***>[ (signed)] #<fingerprint>`, the fingerprint taken over the
    /// URL with its token and, when there is one, `,secret=<secret>` (the flag's own form): two
    /// robots at one address differ by their token, and one robot signed with two secrets is
    /// two configurations. See [`Channel::name`].
    pub fn channel_name(&self) -> String {
        let mut identity = identity_url(&self.url);
        if let Some(Secret(secret)) = &self.secret {
            identity.push_str(",secret=");
            identity.push_str(secret);
        }
        let signed = if self.is_signed() { " (signed)" } else { "" };
        format!(
            "dingtalk {}{signed} {}",
            redact_url(&self.url),
            fingerprint(&identity)
        )
    }

    /// The URL to post to at `timestamp_ms`: with `timestamp` and `sign` when there is a secret.
    fn request_url(&self, timestamp_ms: u64) -> Url {
        let Some(Secret(secret)) = &self.secret else {
            return self.url.clone();
        };
        let mut url = self.url.clone();
        let kept: Vec<(String, String)> = self
            .url
            .query_pairs()
            .filter(|(k, _)| k != "timestamp" && k != "sign")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.set_query(None);
        url.query_pairs_mut()
            .extend_pairs(kept)
            .append_pair("timestamp", &timestamp_ms.to_string())
            .append_pair("sign", &sign(secret, timestamp_ms));
        url
    }
}

impl fmt::Display for DingTalkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.url))?;
        if self.secret.is_some() {
            f.write_str(",secret=***")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DingTalkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DingTalkConfig")
            .field("url", &redact_url(&self.url))
            .field("secret", &self.secret)
            .field("mentions", &self.mentions)
            .finish()
    }
}

/// A robot URL must carry its `access_token`.
fn with_token(url: Url) -> Result<Url, String> {
    if url
        .query_pairs()
        .any(|(k, v)| k == "access_token" && !v.is_empty())
    {
        return Ok(url);
    }
    Err("DingTalk robot URL has no access_token query parameter \
         (expected https://oapi.dingtalk.com/robot/send?access_token=TOKEN)"
        .to_owned())
}

/// The robot signature before URL encoding: base64(HMAC-SHA256(key = secret,
/// message = "<timestamp_ms>\n<secret>")).
pub fn sign(secret: &str, timestamp_ms: u64) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub struct DingTalkChannel {
    config: DingTalkConfig,
    /// Language and time zone of the messages.
    style: Style,
    http: reqwest::Client,
    secrets: Vec<String>,
}

impl DingTalkChannel {
    /// 20 alerts of at most ~950 JSON bytes each stay under [`MAX_BODY_BYTES`].
    pub const MAX_BATCH: usize = 20;
    /// DingTalk allows 20 messages a minute per robot and then blocks it for 10 minutes.
    pub const MIN_INTERVAL: Duration = Duration::from_secs(3);

    pub fn new(config: DingTalkConfig, http: reqwest::Client) -> DingTalkChannel {
        let mut secrets = url_secrets(&config.url);
        if let Some(Secret(s)) = &config.secret {
            secrets.push(s.clone());
        }
        DingTalkChannel {
            config,
            style: Style::default(),
            http,
            secrets,
        }
    }

    /// The same robot writing in `style` (English and UTC until told).
    pub fn styled(mut self, style: Style) -> DingTalkChannel {
        self.style = style;
        self
    }

    async fn post(&self, body: Vec<u8>) -> Result<(), DeliveryError> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        super::chat::post_errcode(
            &self.http,
            self.config.request_url(now_ms),
            body,
            "DingTalk",
            errcode_error,
        )
        .await
    }
}

/// Classifies a DingTalk `errcode` other than 0.
fn errcode_error(code: i64, errmsg: &str) -> DeliveryError {
    let hint = match code {
        310000 => {
            Some("security check failed: check the secret, the keywords and the IP allow-list")
        }
        300001 | 300005 | 400101 => Some("the access_token is not valid"),
        400102 => Some("the robot is disabled"),
        400106 => Some("the robot does not exist"),
        400013 => Some("the group was dissolved"),
        400105 => Some("message type not supported"),
        _ => None,
    };
    // 130101 (sending too fast), 410100 (rate limited) and anything unknown: later may work.
    super::chat::refusal("DingTalk errcode", code, errmsg, hint)
}

impl Channel for DingTalkChannel {
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
        let (title, text) = render_with(batch, &self.style, self.config.template.as_deref());
        let body = body(title, text, &self.config.mentions);
        self.post(body).await.map_err(|e| e.scrub(&self.secrets))
    }

    fn summarizes(&self) -> bool {
        true
    }

    async fn deliver_summary(&self, alerts: &[Alert]) -> Result<(), DeliveryError> {
        let (title, text) = render_summary(&Burst::of(alerts, &self.style), &self.style);
        let body = body(title, text, &self.config.mentions);
        self.post(body).await.map_err(|e| e.scrub(&self.secrets))
    }
}

/// Field budgets, in JSON-escaped bytes, so that one alert always fits (see `MAX_BATCH`).
const BUDGETS: Budgets = Budgets::FULL;

/// The JSON body for `batch`, notifying `mentions`.
#[cfg(test)]
fn message_body(batch: &[Alert], mentions: &Mentions, style: &Style) -> Vec<u8> {
    let (title, text) = render(batch, style);
    body(title, text, mentions)
}

/// A markdown message of `title` and `text`, the `@` of every mobile mentioned at its end
/// (without them in the text, DingTalk notifies nobody).
fn body(title: String, mut text: String, mentions: &Mentions) -> Vec<u8> {
    if !mentions.mobiles.is_empty() {
        let at: Vec<String> = mentions.mobiles.iter().map(|m| format!("@{m}")).collect();
        text.push_str("\n\n");
        text.push_str(&at.join(" "));
    }
    let body = serde_json::json!({
        "msgtype": "markdown",
        "markdown": { "title": title, "text": text },
        "at": { "atMobiles": mentions.mobiles, "isAtAll": mentions.all },
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Title (the notification preview) and markdown text, in `style`'s language and zone.
#[cfg(test)]
fn render(batch: &[Alert], style: &Style) -> (String, String) {
    render_with(batch, style, None)
}

/// [`render`], each alert's section from `template` when there is one.
fn render_with(
    batch: &[Alert],
    style: &Style,
    template: Option<&SectionTemplate>,
) -> (String, String) {
    let sections: Vec<String> = batch
        .iter()
        .map(|a| template::section(template, a, style, TEMPLATE_BYTES, || section(a, style)))
        .collect();
    (chat::title(batch, style, BUDGETS), sections.join("\n\n"))
}

/// Most bytes of one alert's section from a template: a full batch of them stays under
/// [`MAX_BODY_BYTES`] (a test checks).
const TEMPLATE_BYTES: usize = 900;

/// A burst's title and markdown: one heading, then its lines as a list.
pub(crate) fn render_summary(burst: &Burst, style: &Style) -> (String, String) {
    let title = burst.title(style);
    let mark = if burst.events.iter().all(|(k, _)| *k == AlertKind::Recovered) {
        "🟢"
    } else {
        "🔴"
    };
    let mut text = format!("#### {mark} **{title}**\n");
    for (label, value) in burst.lines(style) {
        text.push_str(&format!("\n- **{label}:** {value}"));
    }
    (title, text)
}

/// One alert as markdown: a heading with its mark, then its facts as a list.
fn section(a: &Alert, style: &Style) -> String {
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
    let section = chat::section(a, style, BUDGETS);
    let mut s = format!("#### {mark} **{}** {}", section.word, section.agent);
    for (i, (label, value)) in section.lines.iter().enumerate() {
        s.push_str(&format!(
            "{}- **{label}:** {value}",
            if i == 0 { "\n\n" } else { "\n" }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Lang;
    use common::ExitRecord;

    const URL: &str = "https://oapi.dingtalk.com/robot/send?access_token=TOKEN123abc";

    use crate::channels::chat::tests::alert;

    #[test]
    fn parses_url_and_secret() {
        let c = DingTalkConfig::parse(&format!("{URL},secret=SECabc123")).unwrap();
        assert!(c.is_signed());
        assert_eq!(c.url().as_str(), URL);
        let c = DingTalkConfig::parse(URL).unwrap();
        assert!(!c.is_signed());
        assert!(
            DingTalkConfig::parse(&format!("{URL},")).is_ok(),
            "a trailing comma is harmless"
        );
    }

    #[test]
    fn rejects_bad_input_without_echoing_secrets() {
        let cases = [
            ("", "empty"),
            (
                "oapi.dingtalk.com/robot/send?access_token=TOKEN123abc",
                "not a valid URL",
            ),
            (
                "ftp://oapi.dingtalk.com/robot/send?access_token=TOKEN123abc",
                "http://",
            ),
            ("https://oapi.dingtalk.com/robot/send", "access_token"),
            (
                "https://oapi.dingtalk.com/robot/send?access_token=",
                "access_token",
            ),
            (&format!("{URL},secret="), "empty"),
            (&format!("{URL},secret=SECabc123,secret=SECabc123"), "twice"),
            (
                &format!("{URL},colour=red"),
                "unknown DingTalk option `colour`",
            ),
            (&format!("{URL},SECabc123"), "key=value"),
        ];
        for (input, expected) in cases {
            let err = DingTalkConfig::parse(input).expect_err(input);
            assert!(
                err.contains(expected),
                "error for {input:?} should contain {expected:?}: {err}"
            );
            assert!(
                !err.contains("TOKEN123abc") && !err.contains("SECabc123"),
                "error leaks a secret: {err}"
            );
        }
    }

    #[test]
    fn config_debug_display_and_name_hide_token_and_secret() {
        let c = DingTalkConfig::parse(&format!("{URL},secret=SECabc123")).unwrap();
        let ch = DingTalkChannel::new(c.clone(), reqwest::Client::new());
        let spec: &dyn ChannelSpec = &c;
        for shown in [
            format!("{c:?}"),
            c.to_string(),
            ch.name(),
            spec.describe(),
            format!("{spec:?}"),
        ] {
            assert!(
                !shown.contains("TOKEN123abc") && !shown.contains("SECabc123"),
                "leaks a secret: {shown}"
            );
            assert!(
                shown.contains("access_token=***"),
                "should show the redacted token: {shown}"
            );
        }
        assert!(c.to_string().ends_with(",secret=***"), "{c}");
        assert_eq!(spec.key(), ch.name());
    }

    #[test]
    fn names_tell_robots_apart_and_stay_the_same() {
        let name = |flag: &str| DingTalkConfig::parse(flag).unwrap().channel_name();
        // Golden values, from `printf %s '<flag>' | sha256sum`: a changed fingerprint renames the
        // channel, and the outage records key delivery by name.
        assert_eq!(
            name(URL),
            "dingtalk https://oapi.dingtalk.com/robot/send?access_token=*** #bb8fd730"
        );
        assert_eq!(
            name(&format!("{URL},secret=SECabc123")),
            "dingtalk https://oapi.dingtalk.com/robot/send?access_token=*** (signed) #bb7e1ad6"
        );
        let other_robot = "https://oapi.dingtalk.com/robot/send?access_token=TOKEN456def";
        assert_eq!(
            name(other_robot),
            "dingtalk https://oapi.dingtalk.com/robot/send?access_token=*** #a30c8824"
        );
        assert_eq!(
            name(&format!("{URL},secret=SECxyz789")),
            "dingtalk https://oapi.dingtalk.com/robot/send?access_token=*** (signed) #2f6b1ac1"
        );
        // The same flag, written again (a trailing comma, spaces around the secret): the same name.
        assert_eq!(
            name(&format!("{URL}, secret=SECabc123 ,")),
            name(&format!("{URL},secret=SECabc123"))
        );
    }

    #[test]
    fn signed_url_has_timestamp_and_sign() {
        let c =
            DingTalkConfig::parse(&format!("{URL}&timestamp=1&sign=old,secret=SECabc123")).unwrap();
        let url = c.request_url(1_700_000_000_000);
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            vec![
                ("access_token".to_owned(), "TOKEN123abc".to_owned()),
                ("timestamp".to_owned(), "1700000000000".to_owned()),
                ("sign".to_owned(), sign("SECabc123", 1_700_000_000_000)),
            ]
        );
    }

    #[test]
    fn errcodes_are_classified() {
        assert!(!errcode_error(310000, "sign not match").is_retry());
        assert!(!errcode_error(300001, "token is not exist").is_retry());
        assert!(errcode_error(130101, "send too fast").is_retry());
        assert!(errcode_error(410100, "").is_retry());
        assert!(errcode_error(999999, "").is_retry());
    }

    #[test]
    fn markdown_names_the_agent_and_event() {
        let (title, text) = render(&[alert("a1", "exited with code 3")], &Style::default());
        assert_eq!(title, "Flume agent a1 down");
        assert!(
            text.contains("**DOWN**") && text.contains("a1") && text.contains("web-3"),
            "{text}"
        );
        assert!(
            text.contains("exited with code 3") && text.contains("**Restarts:** 4"),
            "{text}"
        );
        assert!(
            !text.contains("Last exit"),
            "last exit repeats the reason: {text}"
        );
        let (title, _) = render(
            &[alert("a1", "x"), alert("a2", "y"), alert("a3", "z")],
            &Style::default(),
        );
        assert_eq!(title, "3 Flume agent alerts");
    }

    #[test]
    fn worst_case_batch_fits_the_body_limit() {
        let nasty = "\"\\\n🔥".repeat(2_000);
        let mut a = alert(&nasty, &nasty);
        a.host = Some(nasty.clone());
        a.restarts = Some(u64::MAX);
        a.crashes = u32::MAX;
        a.event = AlertKind::Recovered;
        a.outage = Some(Duration::from_secs(400 * 365 * 86_400 + 86_399));
        a.last_exit = Some(ExitRecord {
            code: None,
            signal: Some(nasty.clone()),
            at: nasty.clone(),
            error: None,
        });
        let batch = vec![a; DingTalkChannel::MAX_BATCH];
        let most = Mentions {
            mobiles: vec!["+86-13800000000000000".to_owned(); MAX_MENTIONS],
            all: true,
        };
        let body = message_body(&batch, &most, &Style::default());
        assert!(
            body.len() <= MAX_BODY_BYTES,
            "body of {} bytes exceeds {MAX_BODY_BYTES}",
            body.len()
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["msgtype"], "markdown");
        let text = v["markdown"]["text"].as_str().unwrap();
        assert!(text.contains('…'), "long fields are cut with an ellipsis");
        // An operator's template that writes as much as it can still fits, cut visibly.
        let greedy =
            SectionTemplate::new("{{ agent }}{{ host }}{{ reason }}{{ headline }}".to_owned())
                .expect("compiles");
        for style in [Style::default(), crate::channels::chat::tests::zh()] {
            let (title, text) = render_with(&batch, &style, Some(&greedy));
            let body = super::body(title, text, &most);
            assert!(body.len() <= MAX_BODY_BYTES, "{} bytes", body.len());
        }
    }

    /// In Chinese and the operator's zone, every label and time translated; the worst case
    /// still fits (Chinese text is three bytes a character).
    #[test]
    fn a_message_reads_in_chinese_in_the_operators_zone() {
        let style = Style {
            lang: Lang::Zh,
            zone: crate::message::Zone::parse("+08:00").expect("zone"),
        };
        let mut a = alert("a1", "exited with code 3");
        a.last_exit = Some(ExitRecord {
            code: Some(3),
            signal: None,
            at: "2026-11-21T00:00:00Z".into(),
            error: None,
        });
        let (title, text) = render(std::slice::from_ref(&a), &style);
        assert_eq!(title, "Flume agent a1 宕机");
        assert!(
            text.starts_with("#### 🔴 **宕机** a1\n\n- **主机:** "),
            "{text}"
        );
        assert!(text.contains("- **原因:** 退出码 3"), "{text}");
        assert!(text.contains("- **发生时间:** "), "{text}");
        assert!(text.contains(" +08:00"), "{text}");
        let nasty = "故障".repeat(2_000);
        let mut worst = alert(&nasty, &nasty);
        worst.host = Some(nasty.clone());
        worst.restarts = Some(u64::MAX);
        worst.crashes = u32::MAX;
        let body = message_body(
            &vec![worst; DingTalkChannel::MAX_BATCH],
            &Mentions::default(),
            &style,
        );
        assert!(body.len() <= MAX_BODY_BYTES, "{} bytes", body.len());
    }

    /// DingTalk notifies a mobile only when it is in `at.atMobiles` and written `@<mobile>` in
    /// the text.
    #[test]
    fn mentions_are_in_the_at_list_and_in_the_text() {
        let mentions = Mentions {
            mobiles: vec!["13800000000".into(), "13900000000".into()],
            all: false,
        };
        let body = message_body(
            &[alert("a1", "exited with code 3")],
            &mentions,
            &Style::default(),
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["at"],
            serde_json::json!({"atMobiles": ["13800000000", "13900000000"], "isAtAll": false})
        );
        let text = v["markdown"]["text"].as_str().unwrap();
        assert!(text.ends_with("\n\n@13800000000 @13900000000"), "{text}");

        let table: toml::Table = toml::from_str(
            "url = 'https://oapi.dingtalk.com/robot/send?access_token=T'\nat_mobiles = ['13800000000']\nis_at_all = true",
        )
        .unwrap();
        let spec = read_table(table).expect("valid");
        assert!(spec
            .describe()
            .ends_with("mentions 13800000000, mentions everyone"));
        let too_many: Vec<String> = (0..=MAX_MENTIONS)
            .map(|i| format!("'1380000{i:04}'"))
            .collect();
        let table: toml::Table = toml::from_str(&format!(
            "url = 'https://oapi.dingtalk.com/robot/send?access_token=T'\nat_mobiles = [{}]",
            too_many.join(",")
        ))
        .unwrap();
        let problems = read_table(table).expect_err("too many");
        assert_eq!(problems[0].0, "at_mobiles", "{problems:?}");
    }
}
