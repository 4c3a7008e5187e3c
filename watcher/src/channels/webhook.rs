//! Generic webhook: `POST {"alerts":[<alert>, …]}` as JSON, or a body of the operator's own made
//! by a template from the same data; any 2xx is success.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use reqwest::Url;
use serde::Serialize;

use super::kinds::{self, KeyProblem, Kind};
use super::{
    fingerprint, identity_url, read_body, redact_url, status_error, transport_error, url_secrets,
    Channel, ChannelSpec, DeliveryError,
};
use crate::alert::Alert;
use crate::notify::Notifier;

/// `[[channel]] type = "webhook"`.
pub const KIND: Kind = Kind {
    name: "webhook",
    read: read_table,
};

/// The keys of a webhook's table.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    url: String,
    /// A minijinja template of the body, given inline or in a file.
    template: Option<String>,
    template_file: Option<PathBuf>,
    /// The body's `Content-Type` (default `application/json`).
    content_type: Option<String>,
}

fn read_table(table: toml::Table) -> Result<Box<dyn ChannelSpec>, Vec<KeyProblem>> {
    let keys: Keys = kinds::keys(table)?;
    let mut problems = Vec::new();
    let url = WebhookConfig::parse(&keys.url)
        .map_err(|e| problems.push(("url".to_owned(), e)))
        .ok();
    let source = match (keys.template, &keys.template_file) {
        (Some(_), Some(_)) => {
            problems.push((
                "template".to_owned(),
                "give template or template_file, not both".to_owned(),
            ));
            None
        }
        (Some(t), None) => Some(("template", t)),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(t) => Some(("template_file", t)),
            Err(e) => {
                problems.push((
                    "template_file".to_owned(),
                    format!("cannot read {}: {e}", path.display()),
                ));
                None
            }
        },
        (None, None) => None,
    };
    let template = match source {
        Some((key, text)) => {
            let content_type = keys
                .content_type
                .unwrap_or_else(|| "application/json".to_owned());
            BodyTemplate::new(text, content_type)
                .map_err(|e| problems.push((key.to_owned(), e)))
                .ok()
        }
        None => {
            if keys.content_type.is_some() {
                problems.push((
                    "content_type".to_owned(),
                    "only with a template (the built-in body is JSON)".to_owned(),
                ));
            }
            None
        }
    };
    match url {
        Some(mut config) if problems.is_empty() => {
            config.template = template.map(Arc::new);
            Ok(Box::new(config))
        }
        _ => Err(problems),
    }
}

/// Most work one rendering may do (minijinja's fuel: about one unit an instruction): far more
/// than any body of a few hundred alerts needs, and a loop that never ends stops there instead.
const TEMPLATE_FUEL: u64 = 5_000_000;

/// A body template: the operator's minijinja source, compiled once. It sees `alerts`, the list
/// the built-in body holds (each alert with its `id`), and minijinja's filters (`tojson` among
/// them). An undefined name is an error, not an empty string, so that a typo fails the check.
pub struct BodyTemplate {
    env: minijinja::Environment<'static>,
    source: String,
    content_type: String,
}

impl BodyTemplate {
    /// Compiles `source` and renders it once with a sample alert, so that what would fail at
    /// 3 a.m. (a syntax error, an unknown filter, a misspelt field) fails `config check` instead.
    pub fn new(source: String, content_type: String) -> Result<BodyTemplate, String> {
        let mut env = minijinja::Environment::new();
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_template_owned("body", source.clone())
            .map_err(|e| super::template::error(&e))?;
        let template = BodyTemplate {
            env,
            source,
            content_type,
        };
        template.render(&[super::template::sample()])?;
        Ok(template)
    }

    fn render(&self, batch: &[Alert]) -> Result<String, String> {
        let data: serde_json::Value =
            serde_json::from_slice(&body(batch)).unwrap_or(serde_json::Value::Null);
        let template = self
            .env
            .get_template("body")
            .map_err(|e| super::template::error(&e))?;
        template
            .render(&data)
            .map_err(|e| super::template::error(&e))
    }
}

impl PartialEq for BodyTemplate {
    fn eq(&self, other: &BodyTemplate) -> bool {
        self.source == other.source && self.content_type == other.content_type
    }
}

impl Eq for BodyTemplate {}

impl ChannelSpec for WebhookConfig {
    fn describe(&self) -> String {
        match &self.template {
            Some(t) => format!("webhook {self}, body from a template ({})", t.content_type),
            None => format!("webhook {self}"),
        }
    }
    fn key(&self) -> String {
        self.channel_name()
    }
    fn start(&self, label: &str, notifier: &mut Notifier, ctx: &super::Context) -> bool {
        notifier.add_channel_as(label, WebhookChannel::new(self.clone(), ctx.http.clone()))
    }
}

/// `--webhook URL`. `Debug`/`Display` show the URL with query values, user info and token-like
/// path segments as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    url: Url,
    /// Not part of the channel's key: a new body for the same receiver is the same channel.
    template: Option<Arc<BodyTemplate>>,
}

impl WebhookConfig {
    pub fn parse(s: &str) -> Result<WebhookConfig, String> {
        Ok(WebhookConfig {
            url: super::parse_http_url(s, "webhook")?,
            template: None,
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// `webhook <URL, secrets as ***> #<fingerprint of the URL>`: see [`Channel::name`].
    pub fn channel_name(&self) -> String {
        format!(
            "webhook {} {}",
            redact_url(&self.url),
            fingerprint(&identity_url(&self.url))
        )
    }
}

impl fmt::Display for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.url))
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &redact_url(&self.url))
            .field("template", &self.template.is_some())
            .finish()
    }
}

pub struct WebhookChannel {
    config: WebhookConfig,
    http: reqwest::Client,
    secrets: Vec<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    alerts: Vec<Item<'a>>,
}

/// An alert with its notice id first, for receivers that drop repeats.
#[derive(Serialize)]
struct Item<'a> {
    id: String,
    #[serde(flatten)]
    alert: &'a Alert,
}

/// `{"alerts":[…]}`, each alert with its notice id first: the body of the generic webhook, and
/// what the exec channel writes to its command's stdin (one format for machine receivers).
pub(crate) fn body(batch: &[Alert]) -> Vec<u8> {
    let body = Body {
        alerts: batch
            .iter()
            .map(|alert| Item {
                id: alert.notice_id(),
                alert,
            })
            .collect(),
    };
    // Serializing plain structs of strings and numbers into memory does not fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

impl WebhookChannel {
    pub const MAX_BATCH: usize = 500;

    pub fn new(config: WebhookConfig, http: reqwest::Client) -> WebhookChannel {
        let secrets = url_secrets(&config.url);
        WebhookChannel {
            config,
            http,
            secrets,
        }
    }

    async fn post(&self, batch: &[Alert]) -> Result<(), DeliveryError> {
        let (content_type, data) = match &self.config.template {
            None => ("application/json", body(batch)),
            Some(t) => {
                let rendered = t.render(batch).map_err(|e| {
                    DeliveryError::Permanent(format!("the webhook's template failed: {e}"))
                })?;
                (t.content_type.as_str(), rendered.into_bytes())
            }
        };
        let resp = self
            .http
            .post(self.config.url.clone())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(data)
            .send()
            .await
            .map_err(transport_error)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = read_body(resp, 1024).await.unwrap_or_default();
        Err(status_error(status, &super::excerpt(&body, 200)))
    }
}

impl Channel for WebhookChannel {
    fn name(&self) -> String {
        self.config.channel_name()
    }

    fn max_batch(&self) -> usize {
        Self::MAX_BATCH
    }

    async fn deliver(&self, batch: &[Alert]) -> Result<(), DeliveryError> {
        self.post(batch).await.map_err(|e| e.scrub(&self.secrets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_and_https_only() {
        assert_eq!(
            WebhookConfig::parse("http://127.0.0.1:8080/x")
                .unwrap()
                .to_string(),
            "http://127.0.0.1:8080/x"
        );
        assert!(WebhookConfig::parse(" https://alerts.example.com/hook ").is_ok());
        for bad in [
            "",
            "127.0.0.1:8080/x",
            "ftp://h/x",
            "not a url",
            "http://",
            "file:///tmp/x",
        ] {
            let err = WebhookConfig::parse(bad).expect_err(bad);
            assert!(
                err.contains("webhook URL"),
                "error for {bad:?} should name the webhook URL: {err}"
            );
        }
        let err = WebhookConfig::parse("ftp://h/x?token=SECRET1").unwrap_err();
        assert!(!err.contains("SECRET1"), "error echoes the token: {err}");
    }

    #[test]
    fn debug_hides_query_values() {
        let c = WebhookConfig::parse("https://h.example/hook?token=SECRET1").unwrap();
        assert!(!format!("{c:?} {c}").contains("SECRET1"), "{c:?}");
    }

    #[test]
    fn names_tell_hooks_apart_by_their_hidden_token_without_showing_it() {
        let one = WebhookConfig::parse("https://h.example/hook?token=SECRET1").unwrap();
        let two = WebhookConfig::parse("https://h.example/hook?token=SECRET2").unwrap();
        let again = WebhookConfig::parse("https://h.example/hook?token=SECRET1#ignored").unwrap();
        // `printf %s 'https://h.example/hook?token=SECRET1' | sha256sum`
        assert_eq!(
            one.channel_name(),
            "webhook https://h.example/hook?token=*** #7cbc5951"
        );
        assert_ne!(one.channel_name(), two.channel_name());
        assert_eq!(one.channel_name(), again.channel_name());
        for c in [&one, &two] {
            let name = WebhookChannel::new(c.clone(), reqwest::Client::new()).name();
            assert_eq!(name, c.channel_name());
            assert!(!name.contains("SECRET"), "{name}");
        }
    }

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).expect("toml")
    }

    /// A template makes the body from the same alerts, with the content type asked for; it does
    /// not change the channel's key.
    #[test]
    fn a_template_makes_the_body() {
        let spec = read_table(table(
            "url = 'http://127.0.0.1:9/x'\ncontent_type = 'text/plain'\n\
             template = '{% for a in alerts %}{{ a.event|upper }} {{ a.agent }}@{{ a.host }}: {{ a.reason }} [{{ a.id }}] {% endfor %}'",
        ))
        .expect("valid");
        assert_eq!(
            spec.key(),
            WebhookConfig::parse("http://127.0.0.1:9/x")
                .expect("url")
                .channel_name()
        );
        assert!(
            spec.describe()
                .ends_with("body from a template (text/plain)"),
            "{}",
            spec.describe()
        );
        let keys: Keys = kinds::keys(table(
            "url = 'http://127.0.0.1:9/x'\ntemplate = '{{ alerts|tojson }}'",
        ))
        .expect("keys");
        let t = BodyTemplate::new(keys.template.expect("template"), "application/json".into())
            .expect("compiles");
        let rendered: serde_json::Value = serde_json::from_str(
            &t.render(&[super::super::template::sample()])
                .expect("renders"),
        )
        .expect("json");
        assert_eq!(rendered[0]["id"], "web7-a1/down/0x1a2f");
        let t = BodyTemplate::new(
            "{% for a in alerts %}{{ a.event|upper }} {{ a.agent }}{% endfor %}".into(),
            "text/plain".into(),
        )
        .expect("compiles");
        assert_eq!(
            t.render(&[super::super::template::sample()])
                .expect("renders"),
            "DOWN web7-a1"
        );
    }

    /// What would fail at night fails the check: syntax, a misspelt field, an unknown filter, a
    /// loop without end (fuel), an unreadable file, a content type without a template.
    #[test]
    fn a_broken_template_fails_the_check() {
        for (text, key, says) in [
            ("template = '{% for a in alerts %}'", "template", "syntax error"),
            ("template = '{{ alerts[0].agnet }}'", "template", "undefined"),
            ("template = '{{ alerts|nosuchfilter }}'", "template", "unknown filter"),
            (
                "template = '{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}'",
                "template",
                "fuel",
            ),
            ("template_file = '/nonexistent/body.j2'", "template_file", "cannot read /nonexistent/body.j2"),
            ("content_type = 'text/plain'", "content_type", "only with a template"),
        ] {
            let problems = match read_table(table(&format!("url = 'http://127.0.0.1:9/x'\n{text}"))) {
                Ok(_) => panic!("{text}: accepted"),
                Err(p) => p,
            };
            assert_eq!(problems.len(), 1, "{text}: {problems:?}");
            assert_eq!(problems[0].0, key, "{text}: {problems:?}");
            assert!(
                problems[0].1.to_lowercase().contains(says),
                "{text}: {problems:?}"
            );
        }
    }
}
