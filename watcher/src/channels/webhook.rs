//! Generic webhook: `POST {"alerts":[<alert>, …]}` as JSON; any 2xx is success.

use std::fmt;

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
}

fn read_table(table: toml::Table) -> Result<Box<dyn ChannelSpec>, Vec<KeyProblem>> {
    let keys: Keys = kinds::keys(table)?;
    let config = WebhookConfig::parse(&keys.url).map_err(|e| vec![("url".to_owned(), e)])?;
    Ok(Box::new(config))
}

impl ChannelSpec for WebhookConfig {
    fn describe(&self) -> String {
        format!("webhook {self}")
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
}

impl WebhookConfig {
    pub fn parse(s: &str) -> Result<WebhookConfig, String> {
        Ok(WebhookConfig {
            url: super::parse_http_url(s, "webhook")?,
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
        let resp = self
            .http
            .post(self.config.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body(batch))
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
}
