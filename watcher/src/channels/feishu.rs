//! Feishu / Lark custom bot: an `interactive` card, optionally signed (`timestamp` and `sign` in
//! the JSON body). Success is `{"code":0}` (`{"StatusCode":0}` from older servers).
//!
//! Why a card rather than `post`: its header carries the title in a colour by event (red for
//! down and failed, green for recovered, orange for a blind watcher), which is what a person
//! sees first in a busy group; each alert is one markdown block under it.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::header::CONTENT_TYPE;
use reqwest::Url;
use serde::Deserialize;
use sha2::Sha256;

use super::chat::{self, Budgets};
use super::kinds::{self, KeyProblem, Kind};
use super::template::{self, SectionTemplate};
use super::{
    excerpt, fingerprint, identity_url, read_body, redact_url, status_error, transport_error,
    url_secrets, Channel, ChannelSpec, DeliveryError,
};
use crate::alert::{Alert, AlertKind};
use crate::burst::Burst;
use crate::message::Style;
use crate::notify::Notifier;

/// `[[channel]] type = "feishu"`.
pub const KIND: Kind = Kind {
    name: "feishu",
    read: read_table,
};

/// The keys of a Feishu bot's table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    url: String,
    secret: Option<String>,
    secret_file: Option<std::path::PathBuf>,
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
    let url = super::parse_http_url(&keys.url, "Feishu bot")
        .and_then(with_hook_id)
        .map_err(|e| problems.push(("url".to_owned(), e)))
        .ok();
    match url {
        Some(url) if problems.is_empty() => Ok(Box::new(FeishuConfig {
            url,
            secret: secret.map(Secret),
            template,
        })),
        _ => Err(problems),
    }
}

/// A bot URL ends in `/hook/<id>`.
fn with_hook_id(url: Url) -> Result<Url, String> {
    let segments: Vec<&str> = url.path_segments().into_iter().flatten().collect();
    match segments.as_slice() {
        [.., "hook", id] if !id.is_empty() => Ok(url),
        _ => Err("Feishu bot URL does not end in /hook/<id> \
                  (expected https://open.feishu.cn/open-apis/bot/v2/hook/ID)"
            .to_owned()),
    }
}

/// The hook id: the last path segment, the bot's credential.
fn hook_id(url: &Url) -> Option<&str> {
    url.path_segments()?.next_back().filter(|s| !s.is_empty())
}

/// The URL for people: the hook id as `***` whatever it looks like (a token-like segment only
/// would let a short id through), and whatever else [`redact_url`] hides.
fn shown_url(url: &Url) -> String {
    let mut hidden = url.clone();
    let mut segments: Vec<String> = url
        .path_segments()
        .into_iter()
        .flatten()
        .map(str::to_owned)
        .collect();
    if let Some(last) = segments.last_mut() {
        *last = "***".to_owned();
    }
    hidden.set_path(&segments.join("/"));
    redact_url(&hidden)
}

/// A bot secret; shown as `***` everywhere.
#[derive(Clone, PartialEq, Eq)]
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// `[[channel]] type = "feishu"` as read. `Debug` shows the hook id and the secret as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct FeishuConfig {
    url: Url,
    secret: Option<Secret>,
    /// Not part of the channel's key: how a message reads does not change the receiver.
    template: Option<Arc<SectionTemplate>>,
}

impl FeishuConfig {
    /// A bot at `url` (ending in its hook id), signed with `secret` if given. Errors never
    /// contain the id or the secret.
    pub fn new(url: &str, secret: Option<&str>) -> Result<FeishuConfig, String> {
        let url = with_hook_id(super::parse_http_url(url, "Feishu bot")?)?;
        let secret = match secret.map(str::trim) {
            Some("") => return Err("the Feishu secret is empty".to_owned()),
            s => s.map(|s| Secret(s.to_owned())),
        };
        Ok(FeishuConfig {
            url,
            secret,
            template: None,
        })
    }

    pub fn is_signed(&self) -> bool {
        self.secret.is_some()
    }

    /// `feishu <URL, id as ***>[ (signed)] #<fingerprint>`, the fingerprint over the URL with its
    /// id and, for a signed bot, `,secret=<secret>`: one bot signed with two secrets is two
    /// configurations. See [`Channel::name`].
    pub fn channel_name(&self) -> String {
        let mut identity = identity_url(&self.url);
        if let Some(Secret(secret)) = &self.secret {
            identity.push_str(",secret=");
            identity.push_str(secret);
        }
        let signed = if self.is_signed() { " (signed)" } else { "" };
        format!(
            "feishu {}{signed} {}",
            shown_url(&self.url),
            fingerprint(&identity)
        )
    }
}

impl fmt::Debug for FeishuConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeishuConfig")
            .field("url", &shown_url(&self.url))
            .field("secret", &self.secret)
            .finish()
    }
}

impl ChannelSpec for FeishuConfig {
    fn describe(&self) -> String {
        let secret = if self.is_signed() { ",secret=***" } else { "" };
        let template = if self.template.is_some() {
            ", own template"
        } else {
            ""
        };
        format!("feishu {}{secret}{template}", shown_url(&self.url))
    }
    fn key(&self) -> String {
        self.channel_name()
    }
    fn start(&self, label: &str, notifier: &mut Notifier, ctx: &super::Context) -> bool {
        notifier.add_channel_as(
            label,
            FeishuChannel::new(self.clone(), ctx.http.clone()).styled(ctx.style.clone()),
        )
    }
}

/// The signature: base64(HMAC-SHA256(key = "<timestamp_s>\n<secret>", message = empty)), the
/// reverse of DingTalk's key and message.
pub fn sign(secret: &str, timestamp_s: u64) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let Ok(mac) = Hmac::<Sha256>::new_from_slice(format!("{timestamp_s}\n{secret}").as_bytes())
    else {
        return String::new();
    };
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Feishu documents 20 KB for a message; larger is accepted in practice, but not promised.
pub const MAX_BODY_BYTES: usize = 20_000;

pub struct FeishuChannel {
    config: FeishuConfig,
    /// Language and time zone of the messages.
    style: Style,
    http: reqwest::Client,
    secrets: Vec<String>,
}

/// Feishu's answer; older servers say `StatusCode` and `StatusMessage`.
#[derive(Deserialize)]
struct Reply {
    code: Option<i64>,
    msg: Option<String>,
    #[serde(rename = "StatusCode")]
    status_code: Option<i64>,
    #[serde(rename = "StatusMessage")]
    status_message: Option<String>,
}

impl FeishuChannel {
    /// The most alerts whose worst case, at [`Budgets::TIGHT`], fits [`MAX_BODY_BYTES`] in
    /// either language (a test checks).
    pub const MAX_BATCH: usize = 20;
    /// Feishu allows 5 messages a second and 100 a minute per bot: 600 ms keeps under both.
    pub const MIN_INTERVAL: Duration = Duration::from_millis(600);

    pub fn new(config: FeishuConfig, http: reqwest::Client) -> FeishuChannel {
        let mut secrets = url_secrets(&config.url);
        if let Some(id) = hook_id(&config.url) {
            secrets.push(id.to_owned());
        }
        if let Some(Secret(s)) = &config.secret {
            secrets.push(s.clone());
        }
        FeishuChannel {
            config,
            style: Style::default(),
            http,
            secrets,
        }
    }

    /// The same bot writing in `style` (English and UTC until told).
    pub fn styled(mut self, style: Style) -> FeishuChannel {
        self.style = style;
        self
    }

    /// Posts the body `make` builds around the signature (signed now, when a secret is set).
    async fn post(
        &self,
        make: impl FnOnce(Option<(u64, String)>) -> Vec<u8>,
    ) -> Result<(), DeliveryError> {
        let now_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let signature = self
            .config
            .secret
            .as_ref()
            .map(|Secret(s)| (now_s, sign(s, now_s)));
        let body = make(signature);
        if body.len() > MAX_BODY_BYTES {
            // Cannot happen with `MAX_BATCH` and a summary's budgets (tests check the worst
            // cases): refuse rather than send what Feishu may reject every time.
            return Err(DeliveryError::Permanent(format!(
                "a Feishu message of {} bytes would exceed its {MAX_BODY_BYTES}-byte limit",
                body.len()
            )));
        }
        let resp = self
            .http
            .post(self.config.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = resp.status();
        if !status.is_success() {
            let body = read_body(resp, 1024).await.unwrap_or_default();
            // The rate answer keeps its meaning whatever status carries it.
            if parse_reply(&body).is_some_and(|(code, _)| code == Some(RATE_LIMITED)) {
                return Err(code_error(RATE_LIMITED, &excerpt(&body, 200)));
            }
            return Err(status_error(status, &excerpt(&body, 200)));
        }
        let body = read_body(resp, 64 * 1024).await.map_err(transport_error)?;
        let Some((code, msg)) = parse_reply(&body) else {
            return Err(DeliveryError::Retry(format!(
                "Feishu replied with a body that is not JSON: {}",
                excerpt(&body, 200)
            )));
        };
        match code {
            Some(0) => Ok(()),
            None => Err(DeliveryError::Retry(format!(
                "Feishu reply has no code: {}",
                excerpt(&body, 200)
            ))),
            Some(code) => Err(code_error(code, &excerpt(&msg, 200))),
        }
    }
}

/// The code and message of a reply in either form, or None if it is not JSON.
fn parse_reply(body: &str) -> Option<(Option<i64>, String)> {
    let reply: Reply = serde_json::from_str(body).ok()?;
    Some((
        reply.code.or(reply.status_code),
        reply.msg.or(reply.status_message).unwrap_or_default(),
    ))
}

/// Feishu's "too many requests" code.
const RATE_LIMITED: i64 = 11232;

/// Classifies a Feishu `code` other than 0.
fn code_error(code: i64, msg: &str) -> DeliveryError {
    let hint = match code {
        19021 => Some("signature mismatch or timestamp off by more than an hour: check the secret and the clock"),
        19001 => Some("the hook id is not valid"),
        19002 => Some("the request is not valid for this bot"),
        19022 => Some("this machine's IP is not on the bot's allow-list"),
        19024 => Some("the message lacks the bot's required keyword"),
        9499 => Some("the request was refused as malformed"),
        _ => None,
    };
    // 11232 (too many requests) and anything unknown: later may work.
    super::chat::refusal("Feishu code", code, msg, hint)
}

impl Channel for FeishuChannel {
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
        let template = self.config.template.as_deref();
        self.post(|signature| message_body_with(batch, &self.style, signature, template))
            .await
            .map_err(|e| e.scrub(&self.secrets))
    }

    fn summarizes(&self) -> bool {
        true
    }

    async fn deliver_summary(&self, alerts: &[Alert]) -> Result<(), DeliveryError> {
        let burst = Burst::of(alerts, &self.style);
        self.post(|signature| summary_body(&burst, alerts, &self.style, signature))
            .await
            .map_err(|e| e.scrub(&self.secrets))
    }
}

/// A burst as a card: its title in the header, its lines in one markdown block.
pub(crate) fn summary_body(
    burst: &Burst,
    alerts: &[Alert],
    style: &Style,
    signature: Option<(u64, String)>,
) -> Vec<u8> {
    let text: Vec<String> = burst
        .lines(style)
        .into_iter()
        .map(|(label, value)| format!("**{label}:** {value}"))
        .collect();
    let elements = vec![serde_json::json!({ "tag": "markdown", "content": text.join("\n") })];
    card(
        header_colour(alerts),
        &burst.title(style),
        elements,
        signature,
    )
}

/// The JSON body for `batch`: whole when it fits [`MAX_BODY_BYTES`], else with every field cut
/// to [`Budgets::TIGHT`]; with `timestamp` and `sign` when `signature` is given.
#[cfg(test)]
pub(crate) fn message_body(
    batch: &[Alert],
    style: &Style,
    signature: Option<(u64, String)>,
) -> Vec<u8> {
    message_body_with(batch, style, signature, None)
}

/// [`message_body`], each alert's section from `template` when there is one.
fn message_body_with(
    batch: &[Alert],
    style: &Style,
    signature: Option<(u64, String)>,
    template: Option<&SectionTemplate>,
) -> Vec<u8> {
    let full = body_with(batch, style, signature.clone(), Budgets::FULL, template);
    if full.len() <= MAX_BODY_BYTES {
        return full;
    }
    body_with(batch, style, signature, Budgets::TIGHT, template)
}

/// Most bytes of one alert's section from a template: a full batch of them stays under
/// [`MAX_BODY_BYTES`].
const TEMPLATE_BYTES: usize = 850;

fn body_with(
    batch: &[Alert],
    style: &Style,
    signature: Option<(u64, String)>,
    budgets: Budgets,
    template: Option<&SectionTemplate>,
) -> Vec<u8> {
    let mut elements = Vec::with_capacity(2 * batch.len());
    for (i, a) in batch.iter().enumerate() {
        if i > 0 {
            elements.push(serde_json::json!({ "tag": "hr" }));
        }
        let text = template::section(template, a, style, TEMPLATE_BYTES, || {
            let s = chat::section(a, style, budgets);
            let mut text = format!(
                "<font color='{}'>**{}**</font> **{}**",
                colour(s.event),
                s.word,
                s.agent
            );
            for (label, value) in &s.lines {
                text.push_str(&format!("\n**{label}:** {value}"));
            }
            text
        });
        elements.push(serde_json::json!({ "tag": "markdown", "content": text }));
    }
    card(
        header_colour(batch),
        &chat::title(batch, style, budgets),
        elements,
        signature,
    )
}

/// An interactive card's body, signed when `signature` is given.
fn card(
    colour: &str,
    title: &str,
    elements: Vec<serde_json::Value>,
    signature: Option<(u64, String)>,
) -> Vec<u8> {
    let mut body = serde_json::json!({
        "msg_type": "interactive",
        "card": {
            "config": { "wide_screen_mode": true },
            "header": {
                "template": colour,
                "title": { "tag": "plain_text", "content": title },
            },
            "elements": elements,
        },
    });
    if let Some((timestamp, sign)) = signature {
        body["timestamp"] = serde_json::Value::String(timestamp.to_string());
        body["sign"] = serde_json::Value::String(sign);
    }
    serde_json::to_vec(&body).unwrap_or_default()
}

/// A card colour for one event.
fn colour(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::Down | AlertKind::Failed => "red",
        AlertKind::Recovered | AlertKind::Healthy => "green",
        AlertKind::Blind | AlertKind::Degraded => "orange",
        AlertKind::Sighted | AlertKind::Test => "blue",
    }
}

/// The header's colour: the most alarming event of the batch.
fn header_colour(batch: &[Alert]) -> &'static str {
    let has = |k: AlertKind| batch.iter().any(|a| a.event == k);
    if has(AlertKind::Down) || has(AlertKind::Failed) {
        "red"
    } else if has(AlertKind::Blind) {
        "orange"
    } else if batch.iter().all(|a| a.event == AlertKind::Recovered) {
        "green"
    } else {
        "blue"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::chat::tests::{alert, worst, zh};

    const URL: &str = "https://open.feishu.cn/open-apis/bot/v2/hook/HOOKid-0123-4567";

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).expect("toml")
    }

    fn json(body: &[u8]) -> serde_json::Value {
        serde_json::from_slice(body).expect("JSON")
    }

    #[test]
    fn a_card_has_a_coloured_header_and_one_block_per_alert() {
        let mut recovered = alert("a2", "live again");
        recovered.event = AlertKind::Recovered;
        let v = json(&message_body(
            &[alert("a1", "exited with code 3"), recovered.clone()],
            &Style::default(),
            None,
        ));
        assert_eq!(v["msg_type"], "interactive");
        assert!(
            v.get("sign").is_none() && v.get("timestamp").is_none(),
            "{v}"
        );
        assert_eq!(v["card"]["header"]["template"], "red", "{v}");
        assert_eq!(
            v["card"]["header"]["title"]["content"],
            "2 Flume agent alerts"
        );
        let elements = v["card"]["elements"].as_array().unwrap();
        assert_eq!(elements.len(), 3, "two blocks and a rule between: {v}");
        assert_eq!(elements[1]["tag"], "hr");
        let first = elements[0]["content"].as_str().unwrap();
        assert!(
            first.starts_with("<font color='red'>**DOWN**</font> **a1**\n**Host:** web-3\n**Reason:** exited with code 3\n**Since:** 2025-11-21 04:40:00 +00:00"),
            "{first}"
        );
        assert!(elements[2]["content"]
            .as_str()
            .unwrap()
            .starts_with("<font color='green'>**RECOVERED**</font> **a2**"));

        let v = json(&message_body(
            &[recovered],
            &zh(),
            Some((1_700_000_000, "S".into())),
        ));
        assert_eq!(v["card"]["header"]["template"], "green");
        assert_eq!(
            v["card"]["header"]["title"]["content"],
            "Flume agent a2 已恢复"
        );
        assert_eq!(v["timestamp"], "1700000000", "seconds, as a string");
        assert_eq!(v["sign"], "S");
        let text = v["card"]["elements"][0]["content"].as_str().unwrap();
        assert!(text.contains("**主机:** web-3"), "{text}");
        assert!(text.contains("+08:00"), "the operator's zone: {text}");
        let mut blind = alert("watcher", "no session");
        blind.event = AlertKind::Blind;
        assert_eq!(header_colour(&[blind]), "orange");
    }

    #[test]
    fn the_worst_full_batch_fits_the_body_limit() {
        for style in [Style::default(), zh()] {
            for unit in ["故障", "\"\\\n🔥", "x"] {
                let batch = vec![worst(unit); FeishuChannel::MAX_BATCH];
                let body = message_body(&batch, &style, Some((u64::MAX, sign("S", u64::MAX))));
                assert!(
                    body.len() <= MAX_BODY_BYTES,
                    "{unit:?} {:?}: {} bytes",
                    style.lang,
                    body.len()
                );
                let v = json(&body);
                let elements = v["card"]["elements"].as_array().unwrap();
                assert_eq!(elements.len(), 2 * FeishuChannel::MAX_BATCH - 1);
                assert!(elements[0]["content"].as_str().unwrap().contains('…'));
            }
        }
        // Real alerts go whole.
        let batch: Vec<Alert> = (0..FeishuChannel::MAX_BATCH)
            .map(|i| {
                alert(
                    &format!("web-{i:03}-flume-kafka-sink"),
                    "exited with code 3",
                )
            })
            .collect();
        let body = message_body(&batch, &zh(), None);
        assert_eq!(body, body_with(&batch, &zh(), None, Budgets::FULL, None));
        // An operator's template that writes as much as it can still fits, cut visibly.
        let greedy =
            SectionTemplate::new("{{ agent }}{{ host }}{{ reason }}{{ headline }}".to_owned())
                .expect("compiles");
        for unit in ["故障", "\"\\\n🔥", "x"] {
            let batch = vec![worst(unit); FeishuChannel::MAX_BATCH];
            let body = message_body_with(
                &batch,
                &zh(),
                Some((u64::MAX, sign("S", u64::MAX))),
                Some(&greedy),
            );
            assert!(
                body.len() <= MAX_BODY_BYTES,
                "{unit:?}: {} bytes",
                body.len()
            );
            assert!(json(&body)["card"]["elements"][0]["content"]
                .as_str()
                .is_some_and(|t| t.ends_with('…')));
        }
    }

    #[test]
    fn the_signature_is_keyed_by_timestamp_and_secret() {
        // Golden, from Python: base64.b64encode(hmac.new(b"1700000000\nSEC", b"",
        // hashlib.sha256).digest()); the integration test checks it against python3 itself.
        assert_eq!(
            sign("SEC", 1_700_000_000),
            "yKzlnG5gJbbUvULgjP0QN/V99n1fNH31XG8Rrvl9pfk="
        );
        assert_ne!(sign("SEC", 1_700_000_000), sign("SEC", 1_700_000_001));
        assert_ne!(sign("SEC", 1_700_000_000), sign("SED", 1_700_000_000));
    }

    #[test]
    fn codes_are_classified() {
        assert!(code_error(11232, "frequency limited").is_retry());
        assert!(code_error(1, "").is_retry());
        for permanent in [19021, 19001, 19002, 19022, 19024, 9499] {
            assert!(!code_error(permanent, "").is_retry(), "{permanent}");
        }
        assert_eq!(
            parse_reply(r#"{"code":0,"msg":"success","data":{}}"#),
            Some((Some(0), "success".into()))
        );
        assert_eq!(
            parse_reply(r#"{"Extra":null,"StatusCode":0,"StatusMessage":"success"}"#),
            Some((Some(0), "success".into()))
        );
        assert_eq!(parse_reply("<html>"), None);
    }

    #[test]
    fn name_debug_and_describe_never_show_the_id_or_secret() {
        let spec =
            read_table(table(&format!("url = '{URL}'\nsecret = 'S3CR3Tsecret'"))).expect("valid");
        let config = FeishuConfig::new(URL, Some("S3CR3Tsecret")).unwrap();
        let ch = FeishuChannel::new(config.clone(), reqwest::Client::new());
        for shown in [
            spec.describe(),
            spec.key(),
            format!("{spec:?}"),
            ch.name(),
            format!("{config:?}"),
        ] {
            assert!(
                !shown.contains("HOOKid") && !shown.contains("S3CR3T"),
                "leaks a secret: {shown}"
            );
            assert!(shown.contains("/open-apis/bot/v2/hook/***"), "{shown}");
        }
        assert_eq!(
            spec.describe(),
            "feishu https://open.feishu.cn/open-apis/bot/v2/hook/***,secret=***"
        );
        assert_eq!(
            ch.name(),
            format!(
                "feishu https://open.feishu.cn/open-apis/bot/v2/hook/*** (signed) {}",
                crate::channels::fingerprint(&format!("{URL},secret=S3CR3Tsecret"))
            )
        );
        // A short id, not token-like, is hidden too.
        let short =
            FeishuConfig::new("https://open.feishu.cn/open-apis/bot/v2/hook/abc", None).unwrap();
        assert!(
            short.channel_name().contains("/hook/*** #"),
            "{}",
            short.channel_name()
        );
        assert_ne!(
            short.channel_name(),
            FeishuConfig::new("https://open.feishu.cn/open-apis/bot/v2/hook/abd", None)
                .unwrap()
                .channel_name()
        );
        let err = code_error(19021, "sign S3CR3Tsecret for HOOKid-0123-4567").scrub(&ch.secrets);
        assert!(
            !err.to_string().contains("S3CR3T") && !err.to_string().contains("HOOKid"),
            "{err}"
        );
    }

    #[test]
    fn every_problem_of_a_table_is_listed_without_a_secret() {
        let problems = read_table(table(
            "url = 'https://open.feishu.cn/open-apis/bot/v2/HOOKid'\nsecret = 'S3CR3T'\nsecret_file = '/nonexistent'",
        ))
        .expect_err("problems");
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["secret", "url"], "{problems:?}");
        assert!(problems[1].1.contains("/hook/<id>"), "{problems:?}");
        let shown = format!("{problems:?}");
        assert!(
            !shown.contains("HOOKid") && !shown.contains("S3CR3T"),
            "{shown}"
        );
        let problems = read_table(table(
            "url = 'https://h/hook/x'\nsecret_file = '/nonexistent/s'",
        ))
        .expect_err("problems");
        assert_eq!(problems[0].0, "secret_file", "{problems:?}");
        let problems = read_table(table("url = 'https://h/hook/x'\nat_mobiles = ['1']"))
            .expect_err("problems");
        assert_eq!(problems[0].0, "at_mobiles", "{problems:?}");
        let problems = read_table(table("url = 'https://h/hook/'")).expect_err("problems");
        assert_eq!(problems[0].0, "url", "{problems:?}");
        assert!(read_table(table("url = 'http://127.0.0.1:9/open-apis/bot/v2/hook/x'")).is_ok());
    }
}
