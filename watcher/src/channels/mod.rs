//! Where alerts go: one [`Channel`] implementation per receiver kind, one file each.
//!
//! Channels only deliver one message; batching, retries and shutdown are the
//! [`Notifier`](crate::notify::Notifier)'s business. Every error classification follows one rule:
//! connection errors, timeouts, HTTP 5xx, 408 and 429 are worth retrying ([`DeliveryError::Retry`]);
//! other HTTP 3xx/4xx mean the configuration is wrong ([`DeliveryError::Permanent`]).
//!
//! Names, `Debug`/`Display` output and error texts never contain a secret: DingTalk secrets,
//! query-string values (an `access_token`), URL user info and token-like path segments are
//! shown as `***`. A name ends with a [`fingerprint`] of the whole configuration instead, so that
//! two receivers that differ only in a hidden part still have different names.

pub mod alertmanager;
pub(crate) mod chat;
pub mod console;
pub mod dingtalk;
pub mod email;
pub mod exec;
pub mod feishu;
pub mod kinds;
pub mod slack;
pub mod template;
pub mod webhook;
pub mod wecom;

use std::fmt;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use sha2::{Digest, Sha256};

pub use console::ConsoleChannel;
pub use dingtalk::{DingTalkChannel, DingTalkConfig};
pub use exec::{ExecChannel, ExecConfig};
pub use feishu::{FeishuChannel, FeishuConfig};
pub use slack::{SlackChannel, SlackConfig};
pub use webhook::{WebhookChannel, WebhookConfig};
pub use wecom::{WeComChannel, WeComConfig};

use crate::alert::Alert;
use crate::notify::Notifier;

/// One receiver of alerts.
pub trait Channel: Send + Sync + 'static {
    /// Name for logs and status, e.g. `webhook http://127.0.0.1:8080/x #0a1b2c3d`. Never a
    /// secret. It keys the channel's delivery receipts in the outage records, so it must differ
    /// between receivers and stay the same for one receiver across restarts and watchers.
    fn name(&self) -> String;
    /// Most alerts one message may carry (the notifier splits bigger batches). At least 1.
    fn max_batch(&self) -> usize;
    /// Shortest time from the end of one attempt to the start of the next, for receivers with
    /// rate limits. The notifier keeps it for every attempt — first tries, retries (on top of
    /// the retry backoff), last attempts at shutdown — and batches what arrives meanwhile.
    fn min_interval(&self) -> Duration {
        Duration::ZERO
    }
    /// Whether `batch` (never empty) fits one message. By count by default; a channel with a
    /// size limit it can measure (WeCom's 4,096 bytes) measures, and packs as many as fit.
    fn fits(&self, batch: &[Alert]) -> bool {
        batch.len() <= self.max_batch()
    }
    /// Sends one message carrying `batch` (never empty, at most `max_batch` alerts, and
    /// [`fits`](Channel::fits) unless it is a single alert).
    fn deliver(
        &self,
        batch: &[Alert],
    ) -> impl std::future::Future<Output = Result<(), DeliveryError>> + Send;
    /// Whether alerts too many for one message go as one summary ([`Burst`](crate::burst::Burst)) rather than as
    /// many messages: yes for what people read (chat groups, mail), no for machine receivers,
    /// which need every alert (the default).
    fn summarizes(&self) -> bool {
        false
    }
    /// Sends one message summarising `alerts` (more than one message would carry), in the words
    /// of a [`Burst`](crate::burst::Burst). Only called when [`summarizes`](Channel::summarizes)
    /// says yes.
    fn deliver_summary(
        &self,
        _alerts: &[Alert],
    ) -> impl std::future::Future<Output = Result<(), DeliveryError>> + Send {
        async {
            Err(DeliveryError::Permanent(
                "this channel does not send summaries".to_owned(),
            ))
        }
    }
    /// An outage this watcher did not announce itself is still open (it took over, or
    /// restarted): `alert` is its `down` or `failed`. A channel that keeps state at its receiver
    /// (Alertmanager forgets an alert that is not posted again) keeps it alive; others ignore it.
    fn still_open(&self, _alert: &Alert) {}
    /// An outage of `agent` ended without a notice (it was stopped as planned while down): a
    /// channel that keeps state at its receiver resolves it there, so that nothing stays firing.
    fn ended_quietly(&self, _agent: &str) {}
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeliveryError {
    /// Might work later: the same message should be sent again.
    #[error("{0}")]
    Retry(String),
    /// Might work once the receiver's `Retry-After` has passed (a 429 that says when): the same
    /// message is sent again, not before then. The notifier keeps the longer of this and its own
    /// backoff, so a receiver that says "now" cannot make it hammer.
    #[error("{1}")]
    RetryAfter(Duration, String),
    /// Will not work without a configuration change: the message is dropped.
    #[error("{0}")]
    Permanent(String),
}

impl DeliveryError {
    pub fn is_retry(&self) -> bool {
        matches!(
            self,
            DeliveryError::Retry(_) | DeliveryError::RetryAfter(..)
        )
    }

    /// The same error with every `secret` in its text replaced by `***`.
    pub(crate) fn scrub(self, secrets: &[String]) -> DeliveryError {
        match self {
            DeliveryError::Retry(m) => DeliveryError::Retry(scrub(&m, secrets)),
            DeliveryError::RetryAfter(d, m) => DeliveryError::RetryAfter(d, scrub(&m, secrets)),
            DeliveryError::Permanent(m) => DeliveryError::Permanent(scrub(&m, secrets)),
        }
    }
}

/// A channel as configured (by a flag or a `[[channel]]` of the file), before it runs. Each
/// channel type implements it in its own file, and [`kinds::KINDS`] lists the types the file
/// knows: nothing else names the types, so a new one is a file and a line there.
///
pub trait ChannelSpec: fmt::Debug + Send + Sync {
    /// What `config check` and the logs show: the type and the receiver, secrets as `***`.
    fn describe(&self) -> String;
    /// The channel's [`Channel::name`]: the key of its delivery state in the outage records,
    /// derived from the receiver's whole configuration and never from the name the file gives
    /// it, so that a channel moved from a flag to the file, or renamed, is not sent again what
    /// it took. Two specs with one key are the same receiver configured twice.
    fn key(&self) -> String;
    /// Starts the channel's lane in `notifier`, under `label` (its name in routes and logs);
    /// false if a channel with its key runs already.
    fn start(&self, label: &str, notifier: &mut Notifier, ctx: &Context) -> bool;
}

/// What every channel is started with.
#[derive(Clone, Debug)]
pub struct Context {
    /// The HTTP client all channels share ([`http_client`]).
    pub http: reqwest::Client,
    /// How messages for people are written: language and time zone.
    pub style: crate::message::Style,
}

/// A channel and the name routes and logs know it by: the file's `name`, or its key.
#[derive(Debug)]
pub struct Configured {
    pub label: String,
    pub spec: Box<dyn ChannelSpec>,
}

impl Configured {
    /// A channel given by a flag: known by its key.
    pub fn unnamed(spec: impl ChannelSpec + 'static) -> Configured {
        Configured {
            label: spec.key(),
            spec: Box::new(spec),
        }
    }
}

/// The last part of a channel's name: `#` and the first 8 hex digits of the SHA-256 of
/// `identity`, the channel's whole configuration, secrets included.
///
/// Why a hash: the shown URL hides the token, so two robots at one address would otherwise
/// share a name, and with it their delivery receipts. No salt, nothing random: the same
/// configuration gets the same name in every run and every watcher, as the outage records need.
/// Not a way back to the secret: 32 bits of a hash fit some 2^(n-32) of the possible n-bit
/// tokens, so they cannot single out a high-entropy one (a DingTalk access_token has 256 bits);
/// only a value guessable by trial, such as a short PIN in a query, could be confirmed with it,
/// and such a value protects nothing anyway.
pub(crate) fn fingerprint(identity: &str) -> String {
    let digest = Sha256::digest(identity.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("#{hex}")
}

/// The URL as it identifies a receiver: everything that is sent, so not the fragment.
pub(crate) fn identity_url(url: &Url) -> String {
    let mut url = url.clone();
    url.set_fragment(None);
    url.into()
}

/// Clap `value_parser` for `--webhook URL`: an http or https URL.
pub fn parse_webhook(s: &str) -> Result<WebhookConfig, String> {
    one_url(s, "webhook", "--webhook", "FLUME_WATCHER_WEBHOOK")?;
    WebhookConfig::parse(s)
}

/// Clap `value_parser` for `--dingtalk URL[,secret=S]`. A `secret=` anywhere but in that suffix
/// (`URL;secret=S`, `URL&secret=S`) is refused: the URL parser would take it for part of the
/// query, and the robot would be used unsigned, every message then refused by DingTalk.
pub fn parse_dingtalk(s: &str) -> Result<DingTalkConfig, String> {
    let url = s.split(',').next().unwrap_or_default();
    if url.to_ascii_lowercase().contains("secret=") {
        return Err("the secret must follow the URL after a comma: \
                    write URL,secret=S (e.g. https://oapi.dingtalk.com/robot/send?access_token=T,secret=S)"
            .to_owned());
    }
    one_url(s, "DingTalk robot", "--dingtalk", "FLUME_WATCHER_DINGTALK")?;
    DingTalkConfig::parse(s)
}

/// Refuses a value with a blank inside: a URL has none, and the URL parser would quietly encode
/// it (`http://h/a b` becomes `http://h/a%20b`). Several URLs go in several flags, or in the
/// variable, which separates them by spaces. The error does not echo the value.
fn one_url(s: &str, what: &str, flag: &str, var: &str) -> Result<(), String> {
    if s.trim().contains(char::is_whitespace) {
        return Err(format!(
            "a {what} URL has no blank: give one {flag} per URL ({var} separates them by spaces)"
        ));
    }
    Ok(())
}

/// The HTTP client all channels share: 10 s per request, 5 s to connect, no redirects
/// (a redirected POST would lose its body; a 3xx is reported as a configuration error).
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("flume-watcher/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Parses an http(s) URL with a host; `what` names it in errors. Errors never echo the input
/// (it may carry a token).
pub(crate) fn parse_http_url(s: &str, what: &str) -> Result<Url, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err(format!("{what} URL is empty"));
    }
    let url = Url::parse(s).map_err(|e| format!("{what} URL is not a valid URL: {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "{what} URL must start with http:// or https:// (got scheme `{}`)",
            url.scheme()
        ));
    }
    if !matches!(url.host_str(), Some(h) if !h.is_empty()) {
        return Err(format!("{what} URL has no host"));
    }
    Ok(url)
}

/// A path segment that looks like a credential (Slack, Discord, Feishu hook ids): long, with digits.
fn token_like(segment: &str) -> bool {
    segment.len() >= 16 && segment.bytes().any(|b| b.is_ascii_digit())
}

/// The URL for logs: user info, query values and token-like path segments replaced by `***`,
/// no fragment.
pub(crate) fn redact_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_fragment(None);
    if !shown.username().is_empty() || shown.password().is_some() {
        let _ = shown.set_username("***");
        let _ = shown.set_password(None);
    }
    if shown.path_segments().is_some_and(|mut s| s.any(token_like)) {
        let path: Vec<String> = url
            .path_segments()
            .into_iter()
            .flatten()
            .map(|s| {
                if token_like(s) {
                    "***".to_owned()
                } else {
                    s.to_owned()
                }
            })
            .collect();
        shown.set_path(&path.join("/"));
    }
    if url.query().is_some() {
        let keys: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        shown.set_query(None);
        if !keys.is_empty() {
            let mut q = shown.query_pairs_mut();
            for k in &keys {
                q.append_pair(k, "***");
            }
        }
    }
    // `***` is percent-encoded as `%2A%2A%2A` by the serializer; show it plainly.
    shown.as_str().replace("%2A%2A%2A", "***")
}

/// The sensitive parts of a URL, to scrub from error texts.
pub(crate) fn url_secrets(url: &Url) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |s: &str| {
        if s.len() >= 3 {
            out.push(s.to_owned());
        }
    };
    push(url.username());
    if let Some(p) = url.password() {
        push(p);
    }
    for (_, v) in url.query_pairs() {
        push(&v);
    }
    for pair in url.query().unwrap_or_default().split('&') {
        if let Some((_, raw)) = pair.split_once('=') {
            push(raw);
        }
    }
    for seg in url
        .path_segments()
        .into_iter()
        .flatten()
        .filter(|s| token_like(s))
    {
        push(seg);
    }
    out
}

pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    // Longest first, so a secret containing another one is replaced whole.
    let mut secrets: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in secrets {
        if text.contains(s.as_str()) {
            text = text.replace(s.as_str(), "***");
        }
    }
    text
}

/// A transport-level failure (no usable HTTP response), without the URL.
pub(crate) fn transport_error(err: reqwest::Error) -> DeliveryError {
    let permanent = err.is_builder();
    let timeout = err.is_timeout();
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    if timeout && !text.contains("timed out") {
        text.push_str(" (timed out)");
    }
    if permanent {
        DeliveryError::Permanent(text)
    } else {
        DeliveryError::Retry(text)
    }
}

/// Classifies a non-2xx status. `body` is a (short) excerpt of the reply, for the error text.
pub(crate) fn status_error(status: StatusCode, body: &str) -> DeliveryError {
    let mut text = format!("HTTP {status}");
    if status.is_redirection() {
        text.push_str(" (redirects are not followed: configure the final URL)");
    }
    let body = body.trim();
    if !body.is_empty() {
        text.push_str(": ");
        text.push_str(body);
    }
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_informational()
    {
        DeliveryError::Retry(text)
    } else {
        DeliveryError::Permanent(text)
    }
}

/// The longest `Retry-After` honoured: a receiver asking for more (or a broken one asking for
/// days) is tried again after this, so that alerts are not held back for longer than an operator
/// would wait to notice.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// A reply's `Retry-After` in delay-seconds (the form rate-limited robots such as Slack send),
/// at most [`MAX_RETRY_AFTER`]. The HTTP-date form is not read: the caller then falls back to
/// its own backoff.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// Reads at most `limit` bytes of a reply body (errors end the read), lossily as UTF-8.
pub(crate) async fn read_body(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<String, reqwest::Error> {
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = limit.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= limit {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// At most `max` characters of `s` for an error text, on one line.
pub(crate) fn excerpt(s: &str, max: usize) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out: String = one_line.chars().take(max).collect();
    if one_line.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_query_values_userinfo_and_token_paths() {
        let url = Url::parse(
            "https://u:pw@h.example/hooks/T0001/B0002/abcdEFGH1234ijklMNOP?key=K123&x=1#frag",
        )
        .unwrap();
        let shown = redact_url(&url);
        assert_eq!(
            shown,
            "https://***@h.example/hooks/T0001/B0002/***?key=***&x=***"
        );
        let plain = Url::parse("http://127.0.0.1:8080/x").unwrap();
        assert_eq!(redact_url(&plain), "http://127.0.0.1:8080/x");
        let secrets = url_secrets(&url);
        assert!(secrets.contains(&"K123".to_owned()), "{secrets:?}");
        assert!(
            secrets.contains(&"abcdEFGH1234ijklMNOP".to_owned()),
            "{secrets:?}"
        );
        assert_eq!(
            scrub("failed for https://h/?key=K123", &secrets),
            "failed for https://h/?key=***"
        );
    }

    #[test]
    fn fingerprints_are_stable_short_and_tell_hidden_parts_apart() {
        // Golden value, from `printf %s 'http://h.example/hook?key=K1' | sha256sum`: a changed
        // fingerprint renames every channel, and the outage records key delivery by name.
        assert_eq!(fingerprint("http://h.example/hook?key=K1"), "#85d50428");
        let a = Url::parse("http://h.example/hook?key=K1").unwrap();
        let b = Url::parse("http://h.example/hook?key=K2").unwrap();
        assert_eq!(redact_url(&a), redact_url(&b));
        assert_ne!(
            fingerprint(&identity_url(&a)),
            fingerprint(&identity_url(&b))
        );
        // The fragment is never sent: the same receiver.
        let c = Url::parse("http://h.example/hook?key=K1#x").unwrap();
        assert_eq!(identity_url(&a), identity_url(&c));
    }

    #[test]
    fn status_classification() {
        assert!(status_error(StatusCode::INTERNAL_SERVER_ERROR, "").is_retry());
        assert!(status_error(StatusCode::SERVICE_UNAVAILABLE, "").is_retry());
        assert!(status_error(StatusCode::TOO_MANY_REQUESTS, "").is_retry());
        assert!(status_error(StatusCode::REQUEST_TIMEOUT, "").is_retry());
        assert!(!status_error(StatusCode::NOT_FOUND, "").is_retry());
        assert!(!status_error(StatusCode::BAD_REQUEST, "").is_retry());
        assert!(!status_error(StatusCode::UNAUTHORIZED, "").is_retry());
        assert!(!status_error(StatusCode::MOVED_PERMANENTLY, "").is_retry());
        assert_eq!(
            status_error(StatusCode::NOT_FOUND, "no such hook\n").to_string(),
            "HTTP 404 Not Found: no such hook"
        );
    }

    #[test]
    fn a_flag_value_is_one_url_judged_whole() {
        for value in [
            "not a url",
            "http://h.example/a b",
            "http://a.example http://b.example",
        ] {
            let err = parse_webhook(value).expect_err(value);
            assert!(err.contains("no blank"), "{value}: {err}");
            assert!(err.contains("--webhook"), "{value}: {err}");
        }
        let robot = "https://oapi.dingtalk.com/robot/send?access_token=T0K3N";
        let err = parse_dingtalk(&format!("{robot} {robot}")).expect_err("two robots");
        assert!(err.contains("no blank"), "{err}");
        assert!(!err.contains("T0K3N"), "{err}");
        // Blanks around a value are not inside it.
        assert!(parse_webhook(" http://h.example/hook ").is_ok());
    }

    #[test]
    fn a_dingtalk_secret_anywhere_but_after_a_comma_is_refused_unshown() {
        let robot = "https://oapi.dingtalk.com/robot/send?access_token=T0K3N";
        for value in [
            format!("{robot};secret=S3CR3T"),
            format!("{robot}&secret=S3CR3T"),
            format!("{robot}&Secret=S3CR3T,secret=S3CR3T"),
            format!("{robot} secret=S3CR3T"),
        ] {
            let err = parse_dingtalk(&value).expect_err(&value);
            assert!(err.contains("write URL,secret=S"), "{value}: {err}");
            assert!(!err.contains("S3CR3T") && !err.contains("T0K3N"), "{err}");
        }
        let signed = parse_dingtalk(&format!("{robot},secret=S3CR3T")).expect("documented form");
        assert!(signed.is_signed());
        assert!(!parse_dingtalk(robot).expect("unsigned").is_signed());
    }

    #[test]
    fn excerpt_is_one_bounded_line() {
        assert_eq!(excerpt("a\nb", 10), "a b");
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }
}
