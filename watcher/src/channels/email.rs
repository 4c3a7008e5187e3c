//! E-mail over SMTP: one message per batch, plain text and HTML, sent with lettre over rustls.
//!
//! Three ways to reach a server, always chosen explicitly, never guessed:
//! - `smtps://host[:465]`: TLS from the first byte (what QQ, 163 and Aliyun mail use);
//! - `smtp://host[:587]` (`tls = "starttls"`, the default): plain text upgraded by STARTTLS,
//!   and a server that does not offer STARTTLS is an error, never a silent fall-back to plain
//!   text (lettre's "opportunistic" mode is not offered: it would send a login in clear to
//!   anyone who strips the STARTTLS line);
//! - `smtp://host[:25]` with `tls = "none"`: plain text, for a relay on a trusted network;
//!   no login is ever sent that way.
//!
//! Certificates are checked against the Mozilla roots, plus the PEM certificates of `ca_file`
//! (an internal CA on a closed network).
//!
//! A connection per message, no pool: alerts are rare, a fresh connection has no stale state,
//! and each failure belongs to one message. Errors: 4xx replies, connection and TLS failures
//! and timeouts are [`DeliveryError::Retry`]; 5xx replies (an unknown recipient, a refused
//! login) and what the configuration makes impossible (no STARTTLS offered, no usable login
//! mechanism) are [`DeliveryError::Permanent`]. The password never appears in a name, a
//! `Debug` output or an error.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use reqwest::Url;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::kinds::{self, KeyProblem, Kind};
use super::{fingerprint, Channel, ChannelSpec, DeliveryError};
use crate::alert::{Alert, AlertKind};
use crate::burst::Burst;
use crate::message::{escape_html as escape, Lang, Style};
use crate::notify::Notifier;

/// `[[channel]] type = "email"`.
pub const KIND: Kind = Kind {
    name: "email",
    read: read_table,
};

fn read_table(table: toml::Table) -> Result<Box<dyn ChannelSpec>, Vec<KeyProblem>> {
    let spec: EmailSpec = kinds::keys(table)?;
    let key = spec.build(None)?.name();
    Ok(Box::new(EmailConfig { spec, key }))
}

/// An e-mail channel as configured: checked when read, built again when started (it reads its
/// password file then too).
#[derive(Debug)]
struct EmailConfig {
    spec: EmailSpec,
    key: String,
}

impl ChannelSpec for EmailConfig {
    fn describe(&self) -> String {
        // The key shows the server and the first recipient, no secret.
        let shown = self
            .key
            .rsplit_once(" #")
            .map_or(self.key.as_str(), |(s, _)| s);
        match self.spec.to.len() {
            0 | 1 => shown.to_owned(),
            n => format!("{shown} (and {} more)", n - 1),
        }
    }
    fn key(&self) -> String {
        self.key.clone()
    }
    fn start(&self, label: &str, notifier: &mut Notifier, ctx: &super::Context) -> bool {
        match self.spec.build(None) {
            Ok(channel) => notifier.add_channel_as(label, channel.styled(ctx.style.clone())),
            Err(problems) => {
                for (key, problem) in problems {
                    tracing::error!(channel = %label, key = %key, %problem, "e-mail channel cannot start");
                }
                false
            }
        }
    }
}

/// Bounds one delivery, from connecting to the server's last reply, when `timeout` is not set.
/// Generous: some public servers greet slowly on purpose, and the notifier retries anyway.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The keys of a `[[channel]] type = "email"` table (`type` and `name` belong to the enclosing
/// configuration). Everything is optional to serde, so that [`EmailSpec::build`] can list
/// every problem at once, missing keys included, instead of stopping at the first.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EmailSpec {
    /// `smtps://host[:port]` (implicit TLS, port 465 by default) or `smtp://host[:port]`.
    pub smtp: Option<String>,
    /// For `smtp://` only: `"starttls"` (the default; port 587 by default) or `"none"` (port 25).
    pub tls: Option<String>,
    /// The sender, `addr@example.com` or `Name <addr@example.com>`.
    pub from: Option<String>,
    /// Recipients, at least one; same forms as `from`.
    #[serde(default)]
    pub to: Vec<String>,
    /// Login, with `password` or `password_file`.
    pub username: Option<String>,
    pub password: Option<String>,
    /// A file holding the password (one line; a final line break is not part of it).
    pub password_file: Option<PathBuf>,
    /// A duration such as `"10s"`: the longest one delivery may take. Default 30 s.
    pub timeout: Option<String>,
    /// PEM certificates of CAs to trust besides the Mozilla roots.
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for EmailSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSpec")
            .field("smtp", &self.smtp.as_deref().map(shown_url))
            .field("tls", &self.tls)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("password_file", &self.password_file)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// How the connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://` upgraded by STARTTLS, which the server must offer.
    StartTls,
    /// `smtp://` in plain text.
    None,
}

impl Security {
    fn as_str(self) -> &'static str {
        match self {
            Security::Implicit => "implicit",
            Security::StartTls => "starttls",
            Security::None => "none",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Security::Implicit => 465,
            Security::StartTls => 587,
            Security::None => 25,
        }
    }
}

/// Where to connect, as understood from `smtp` and `tls`.
struct Server {
    scheme: &'static str,
    /// For connecting and for checking the certificate (an IPv6 address without brackets).
    host: String,
    /// For the channel's name (an IPv6 address in brackets, as in the URL).
    shown_host: String,
    port: u16,
    security: Security,
}

/// Problems found in a spec, as (key, message) pairs.
type Problems = Vec<(String, String)>;

fn problem(problems: &mut Problems, key: &str, message: impl Into<String>) {
    problems.push((key.to_owned(), message.into()));
}

impl EmailSpec {
    /// Checks the spec, reads `password_file` and `ca_file`, and makes the channel; or lists
    /// every problem found, as (key, message) pairs, none echoing a password. `name` is the
    /// configured name; without one the channel is named
    /// `email <smtp URL> -> <first recipient> #<fingerprint>` (see [`EmailChannel::name`]).
    pub fn build(&self, name: Option<&str>) -> Result<EmailChannel, Vec<(String, String)>> {
        let mut problems = Problems::new();
        let server = self.server(&mut problems);
        let from = self.sender(&mut problems);
        let to = self.recipients(&mut problems);
        let login = self.login(server.as_ref().map(|s| s.security), &mut problems);
        let timeout = self.timeout(&mut problems);
        let ca = self.ca(server.as_ref().map(|s| s.security), &mut problems);
        let tls = server.as_ref().and_then(|s| tls(s, ca, &mut problems));

        let (Some(server), Some(from), Some(to), Some(login), Some(timeout), Some(tls)) =
            (server, from, to, login, timeout, tls)
        else {
            return Err(problems);
        };
        if !problems.is_empty() {
            return Err(problems);
        }

        let name = match name {
            Some(name) => name.to_owned(),
            None => default_name(&server, &from, &to, login.as_ref()),
        };
        let mut secrets = Vec::new();
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&server.host)
            .port(server.port)
            .tls(tls)
            .timeout(Some(timeout));
        if let Some((username, password)) = login {
            let b64 = base64::engine::general_purpose::STANDARD;
            secrets.push(b64.encode(format!("\0{username}\0{password}")));
            secrets.push(b64.encode(&password));
            secrets.push(password.clone());
            builder = builder.credentials(Credentials::new(username, password));
        }
        Ok(EmailChannel {
            style: Style::default(),
            name,
            transport: builder.build(),
            from,
            to,
            timeout,
            secrets,
        })
    }

    fn server(&self, problems: &mut Problems) -> Option<Server> {
        let security = self.security(problems);
        let Some(raw) = self.smtp.as_deref().map(str::trim) else {
            problem(
                problems,
                "smtp",
                "required, e.g. smtps://smtp.example.com:465 or smtp://smtp.example.com:587",
            );
            return None;
        };
        // Parse errors do not echo the value: a login may have been written into it.
        let url = match Url::parse(raw) {
            Ok(url) => url,
            Err(e) => {
                problem(problems, "smtp", format!("not a URL: {e}"));
                return None;
            }
        };
        let scheme = match url.scheme() {
            "smtps" => "smtps",
            "smtp" => "smtp",
            other => {
                problem(
                    problems,
                    "smtp",
                    format!("must start with smtps:// or smtp:// (got `{other}://`)"),
                );
                return None;
            }
        };
        let mut ok = true;
        if !url.username().is_empty() || url.password().is_some() {
            problem(
                problems,
                "smtp",
                "holds a login: give username and password (or password_file) instead",
            );
            ok = false;
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            problem(
                problems,
                "smtp",
                format!("must be {scheme}://host[:port], without a path or a query"),
            );
            ok = false;
        }
        // An IPv6 host comes in brackets, which the name keeps and the connection does not. The
        // URL parser keeps the case of hosts in schemes it does not know: names ignore it.
        let (host, shown_host) = match url.host_str().map(str::to_ascii_lowercase) {
            Some(h) if !h.is_empty() => (h.trim_matches(['[', ']']).to_owned(), h),
            _ => {
                problem(problems, "smtp", "has no host");
                return None;
            }
        };
        let security = match (scheme, security) {
            ("smtps", Ok(None)) => Security::Implicit,
            ("smtps", Ok(Some(_))) => {
                problem(
                    problems,
                    "tls",
                    "applies to smtp:// only (smtps:// is TLS from the start)",
                );
                return None;
            }
            (_, Ok(Some(security))) => security,
            (_, Ok(None)) => Security::StartTls,
            (_, Err(())) => return None,
        };
        let port = url.port().unwrap_or(security.default_port());
        if port == 0 {
            problem(problems, "smtp", "port 0 is not a port");
            ok = false;
        }
        ok.then_some(Server {
            scheme,
            host,
            shown_host,
            port,
            security,
        })
    }

    /// `tls` as written: `Ok(None)` when absent, `Err` (already reported) when not understood.
    fn security(&self, problems: &mut Problems) -> Result<Option<Security>, ()> {
        match self.tls.as_deref().map(str::trim) {
            None => Ok(None),
            Some(t) if t.eq_ignore_ascii_case("starttls") => Ok(Some(Security::StartTls)),
            Some(t) if t.eq_ignore_ascii_case("none") => Ok(Some(Security::None)),
            Some(other) => {
                problem(
                    problems,
                    "tls",
                    format!("must be \"starttls\" or \"none\" (got {other:?})"),
                );
                Err(())
            }
        }
    }

    fn sender(&self, problems: &mut Problems) -> Option<Mailbox> {
        let Some(raw) = self.from.as_deref() else {
            problem(
                problems,
                "from",
                "required, e.g. \"flume-watcher@example.com\"",
            );
            return None;
        };
        parse_mailbox(raw, "from", problems)
    }

    fn recipients(&self, problems: &mut Problems) -> Option<Vec<Mailbox>> {
        if self.to.is_empty() {
            problem(
                problems,
                "to",
                "at least one address, e.g. [\"oncall@example.com\"]",
            );
            return None;
        }
        let parsed: Vec<Option<Mailbox>> = self
            .to
            .iter()
            .enumerate()
            .map(|(i, raw)| parse_mailbox(raw, &format!("to[{i}]"), problems))
            .collect();
        parsed.into_iter().collect()
    }

    /// `Some(None)` without a login, `Some(Some((user, password)))` with one, `None` when wrong.
    fn login(
        &self,
        security: Option<Security>,
        problems: &mut Problems,
    ) -> Option<Option<(String, String)>> {
        let before = problems.len();
        let username = self.username.as_deref();
        if username.is_some_and(|u| u.trim().is_empty()) {
            problem(problems, "username", "is empty");
        }
        let password = match (&self.password, &self.password_file) {
            (Some(_), Some(_)) => {
                problem(
                    problems,
                    "password",
                    "give password or password_file, not both",
                );
                None
            }
            (Some(p), None) => {
                if p.is_empty() {
                    problem(problems, "password", "is empty");
                }
                Some(p.clone())
            }
            (None, Some(path)) => read_password(path, problems),
            (None, None) => None,
        };
        match (
            username,
            self.password.is_some() || self.password_file.is_some(),
        ) {
            (Some(_), false) => problem(problems, "username", "needs password or password_file"),
            (None, true) => {
                let key = if self.password.is_some() {
                    "password"
                } else {
                    "password_file"
                };
                problem(problems, key, "needs username");
            }
            _ => {}
        }
        if username.is_some() && security == Some(Security::None) {
            problem(
                problems,
                "tls",
                "\"none\" would send the login in clear: use smtps:// or tls = \"starttls\"",
            );
        }
        if problems.len() > before {
            return None;
        }
        Some(match (username, password) {
            (Some(u), Some(p)) => Some((u.trim().to_owned(), p)),
            _ => None,
        })
    }

    fn timeout(&self, problems: &mut Problems) -> Option<Duration> {
        let Some(raw) = self.timeout.as_deref() else {
            return Some(DEFAULT_TIMEOUT);
        };
        match humantime::parse_duration(raw.trim()) {
            Ok(d) if d.is_zero() => {
                problem(problems, "timeout", "must be more than 0");
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                problem(
                    problems,
                    "timeout",
                    format!("{raw:?} is not a duration such as \"10s\": {e}"),
                );
                None
            }
        }
    }

    /// The extra CA certificates: `Some(None)` without `ca_file`, `None` when it is unusable.
    fn ca(
        &self,
        security: Option<Security>,
        problems: &mut Problems,
    ) -> Option<Option<Certificate>> {
        let Some(path) = &self.ca_file else {
            return Some(None);
        };
        if security == Some(Security::None) {
            problem(
                problems,
                "ca_file",
                "is of no use with tls = \"none\" (nothing is encrypted): remove one of them",
            );
            return None;
        }
        let pem = match std::fs::read(path) {
            Ok(pem) => pem,
            Err(e) => {
                problem(
                    problems,
                    "ca_file",
                    format!("cannot read {}: {e}", path.display()),
                );
                return None;
            }
        };
        // lettre reads a file with no certificate in it as an empty list, without complaint.
        let has_cert = String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----");
        match Certificate::from_pem(&pem) {
            Ok(cert) if has_cert => Some(Some(cert)),
            Ok(_) => {
                problem(
                    problems,
                    "ca_file",
                    format!("{} holds no PEM certificate", path.display()),
                );
                None
            }
            Err(e) => {
                problem(
                    problems,
                    "ca_file",
                    format!("{}: not PEM certificates: {e}", path.display()),
                );
                None
            }
        }
    }
}

fn parse_mailbox(raw: &str, key: &str, problems: &mut Problems) -> Option<Mailbox> {
    match Mailbox::from_str(raw.trim()) {
        Ok(m) => Some(m),
        Err(e) => {
            problem(
                problems,
                key,
                format!("{:?} is not an e-mail address: {e}", raw.trim()),
            );
            None
        }
    }
}

fn read_password(path: &std::path::Path, problems: &mut Problems) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let password = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text);
            if password.is_empty() {
                problem(
                    problems,
                    "password_file",
                    format!("{} is empty", path.display()),
                );
                return None;
            }
            Some(password.to_owned())
        }
        Err(e) => {
            problem(
                problems,
                "password_file",
                format!("cannot read {}: {e}", path.display()),
            );
            None
        }
    }
}

/// The TLS mode to give lettre, with the certificates to trust.
fn tls(server: &Server, ca: Option<Option<Certificate>>, problems: &mut Problems) -> Option<Tls> {
    if server.security == Security::None {
        return Some(Tls::None);
    }
    let ca = ca?;
    let key = if ca.is_some() { "ca_file" } else { "smtp" };
    let mut params = TlsParameters::builder(server.host.clone());
    if let Some(cert) = ca {
        params = params.add_root_certificate(cert);
    }
    match params.build_rustls() {
        Ok(params) if server.security == Security::Implicit => Some(Tls::Wrapper(params)),
        Ok(params) => Some(Tls::Required(params)),
        Err(e) => {
            problem(problems, key, format!("cannot set up TLS: {e}"));
            None
        }
    }
}

/// `email smtps://smtp.example.com:465 -> oncall@example.com #1a2b3c4d`.
///
/// The fingerprint is taken over what decides where messages go and as whom: the server, its
/// TLS mode, the sender, every recipient, the login and its password, one `key=value` a line
/// (see [`fingerprint`]). Not over `timeout` or `ca_file`: tuning them is not a new receiver,
/// and a new name would send again what was already delivered. A new password is a new
/// configuration, as a new DingTalk secret is.
fn default_name(
    server: &Server,
    from: &Mailbox,
    to: &[Mailbox],
    login: Option<&(String, String)>,
) -> String {
    let url = format!("{}://{}:{}", server.scheme, server.shown_host, server.port);
    let mut identity = vec![
        url.clone(),
        format!("tls={}", server.security.as_str()),
        format!("from={}", from.email),
    ];
    identity.extend(to.iter().map(|m| format!("to={}", m.email)));
    if let Some((username, password)) = login {
        identity.push(format!("username={username}"));
        identity.push(format!("password={password}"));
    }
    let first = to.first().map(|m| m.email.to_string()).unwrap_or_default();
    format!(
        "email {url} -> {first} {}",
        fingerprint(&identity.join("\n"))
    )
}

/// The URL for a `Debug` output: only the scheme, host and port, so that a login written into
/// it by mistake is never shown.
fn shown_url(raw: &str) -> String {
    match Url::parse(raw.trim()) {
        Ok(url) => {
            let host = url.host_str().unwrap_or_default();
            match url.port() {
                Some(port) => format!("{}://{host}:{port}", url.scheme()),
                None => format!("{}://{host}", url.scheme()),
            }
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

/// Sends alerts as e-mail through one SMTP server. Build it with [`EmailSpec::build`].
pub struct EmailChannel {
    name: String,
    /// Language and time zone of the mails.
    style: Style,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
    /// The password and its base64 forms (as AUTH sends them), scrubbed from error texts.
    secrets: Vec<String>,
}

impl fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailChannel")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl EmailChannel {
    /// The same channel writing in `style` (English and UTC until told).
    pub fn styled(mut self, style: Style) -> EmailChannel {
        self.style = style;
        self
    }

    /// A mail is no chat message: a hundred alerts in one stay readable and far below any
    /// server's size limit (each field is cut to at most a few hundred characters).
    pub const MAX_BATCH: usize = 100;
    /// Mail providers throttle accounts that send in bursts (QQ and 163 count messages a
    /// minute); what arrives meanwhile goes into the next message.
    pub const MIN_INTERVAL: Duration = Duration::from_secs(2);

    async fn send(&self, batch: &[Alert], summary: bool) -> Result<(), DeliveryError> {
        let (subject, text, html) = if summary {
            render_summary(batch, &self.style)
        } else {
            render(batch, &self.style)
        };
        let mut message = Message::builder()
            .message_id(Some(message_id(batch, &self.from)))
            .from(self.from.clone())
            .subject(subject)
            .user_agent(concat!("flume-watcher/", env!("CARGO_PKG_VERSION")).to_owned());
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = message
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| DeliveryError::Permanent(format!("cannot build the e-mail: {e}")))?;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(smtp_error(&e)),
            Err(_) => Err(DeliveryError::Retry(format!(
                "SMTP: no delivery within {} (timed out)",
                common::time::human(self.timeout)
            ))),
        }
    }
}

impl Channel for EmailChannel {
    /// The configured name, or `email <smtp URL> -> <first recipient> #<fingerprint>`.
    fn name(&self) -> String {
        self.name.clone()
    }

    fn max_batch(&self) -> usize {
        Self::MAX_BATCH
    }

    fn min_interval(&self) -> Duration {
        Self::MIN_INTERVAL
    }

    async fn deliver(&self, batch: &[Alert]) -> Result<(), DeliveryError> {
        self.send(batch, false)
            .await
            .map_err(|e| e.scrub(&self.secrets))
    }

    fn summarizes(&self) -> bool {
        true
    }

    async fn deliver_summary(&self, alerts: &[Alert]) -> Result<(), DeliveryError> {
        self.send(alerts, true)
            .await
            .map_err(|e| e.scrub(&self.secrets))
    }
}

/// Classifies a lettre error: 5xx replies and what the client refuses to do (no STARTTLS
/// offered, no login mechanism in common, an address the server cannot take) will fail again
/// until the configuration changes; everything else (4xx replies, connection, TLS, timeouts,
/// garbled replies) may work later.
fn smtp_error(err: &lettre::transport::smtp::Error) -> DeliveryError {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    // lettre wraps some errors twice in the same kind ("Connection error: Connection error: …").
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split(": ") {
        if parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    let text = parts.join(": ");
    let text = text
        .strip_prefix("internal client error: ")
        .unwrap_or(&text);
    let text = super::excerpt(&format!("SMTP: {text}"), 500);
    if text.contains("STARTTLS is not supported") {
        return DeliveryError::Permanent(format!(
            "{text} (tls = \"none\" talks to a server without TLS, in plain text)"
        ));
    }
    // Retried: a server's certificate gets fixed or renewed without a change here.
    if text.contains("certificate") {
        return DeliveryError::Retry(format!(
            "{text} (ca_file adds the CA certificates of an internal CA)"
        ));
    }
    if err.is_permanent() || err.is_client() {
        DeliveryError::Permanent(text)
    } else {
        DeliveryError::Retry(text)
    }
}

/// `<hash of the batch's notice ids>.alerts@<the sender's domain>`: the same batch sent again
/// (a new leader repeating what its predecessor sent but could not note) carries the same
/// Message-ID, which lets mail systems that drop repeated ids show it once.
fn message_id(batch: &[Alert], from: &Mailbox) -> String {
    let ids: Vec<String> = batch.iter().map(Alert::notice_id).collect();
    let digest = Sha256::digest(ids.join("\n").as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("<{hex}.alerts@{}>", from.email.domain())
}

/// Longest agent id, host or reason shown (in characters); longer ones end with `…`.
const FIELD_CHARS: usize = 300;
/// Longest subject (in characters): mail clients show far less anyway.
const SUBJECT_CHARS: usize = 200;

/// Subject, plain text and HTML for `batch`: the one place that decides what a mail says, so
/// that shared (zh/en) templates can replace it later.
///
/// One alert: `[DOWN] web7-a1 on web7: exited with code 3`. Several:
/// `[DOWN] 3 agents: web7-a1, web8-a1, web9-a1` (`[DOWN/RECOVERED] 3 alerts for 2 agents: …`
/// when they differ), then a section per alert with every fact known.
pub(crate) fn render(batch: &[Alert], style: &Style) -> (String, String, String) {
    let subject = subject(batch, style);
    let mut text = String::new();
    let mut html = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\
         <body style=\"font-family:sans-serif\">\n",
    );
    if batch.len() > 1 {
        text.push_str(&format!("{subject}\n\n"));
        html.push_str(&format!("<p><b>{}</b></p>\n", escape(&subject)));
    }
    for (i, alert) in batch.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        let heading = headline(alert, style);
        let facts = facts(alert, style);
        text.push_str(&heading);
        text.push('\n');
        let width = facts.iter().map(|(k, _)| columns(k)).max().unwrap_or(0) + 1;
        for (key, value) in &facts {
            text.push_str(&format!("  {} {value}\n", padded(key, width)));
        }
        html.push_str(&format!(
            "<h3 style=\"color:{}\">{}</h3>\n<table cellpadding=\"3\">\n",
            colour(alert.event),
            escape(&heading)
        ));
        for (key, value) in &facts {
            html.push_str(&format!(
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
                escape(key),
                escape(value)
            ));
        }
        html.push_str("</table>\n");
    }
    text.push_str("\n-- \nflume-watcher\n");
    html.push_str("<p style=\"color:#888\">flume-watcher</p>\n</body></html>\n");
    (subject, text, html)
}

/// Subject, plain text and HTML summing up `alerts` (a burst): the summary first, then every
/// alert on a line of its own (a mail has room for them all, and whoever reads it later has the
/// whole list at hand).
pub(crate) fn render_summary(alerts: &[Alert], style: &Style) -> (String, String, String) {
    let burst = Burst::of(alerts, style);
    let subject = one_line(&burst.title(style), SUBJECT_CHARS);
    let lines = burst.lines(style);
    let every = match style.lang {
        Lang::En => format!(
            "All {} alerts:",
            common::records::thousands(alerts.len() as u64)
        ),
        Lang::Zh => format!(
            "全部 {} 条告警：",
            common::records::thousands(alerts.len() as u64)
        ),
    };
    let mut text = format!("{subject}\n\n");
    let width = lines.iter().map(|(k, _)| columns(k)).max().unwrap_or(0) + 1;
    for (key, value) in &lines {
        text.push_str(&format!("  {} {value}\n", padded(key, width)));
    }
    text.push_str(&format!("\n{every}\n"));
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\
         <body style=\"font-family:sans-serif\">\n<h3 style=\"color:{}\">{}</h3>\n\
         <table cellpadding=\"3\">\n",
        colour(if alerts.iter().all(|a| a.event == AlertKind::Recovered) {
            AlertKind::Recovered
        } else {
            AlertKind::Down
        }),
        escape(&subject)
    );
    for (key, value) in &lines {
        html.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
            escape(key),
            escape(value)
        ));
    }
    html.push_str(&format!(
        "</table>\n<p><b>{}</b></p>\n<ul>\n",
        escape(&every)
    ));
    for a in alerts {
        let line = format!("{} ({})", headline(a, style), style.time(a.at));
        text.push_str(&format!("  {line}\n"));
        html.push_str(&format!("<li>{}</li>\n", escape(&line)));
    }
    text.push_str("\n-- \nflume-watcher\n");
    html.push_str("</ul>\n<p style=\"color:#888\">flume-watcher</p>\n</body></html>\n");
    (subject, text, html)
}

/// The columns `s` takes in a monospaced mail client: two for a CJK character, one otherwise
/// (enough for the labels here; the full Unicode width tables are not worth a dependency).
fn columns(s: &str) -> usize {
    s.chars()
        .map(|c| {
            if ('\u{2E80}'..='\u{FFEF}').contains(&c) {
                2
            } else {
                1
            }
        })
        .sum()
}

/// `key:` padded with spaces to `width` columns, so that the values line up.
fn padded(key: &str, width: usize) -> String {
    let mut out = format!("{key}:");
    out.push_str(&" ".repeat(width.saturating_sub(columns(key) + 1)));
    out
}

fn subject(batch: &[Alert], style: &Style) -> String {
    let line = match batch {
        [one] => headline(one, style),
        many => {
            let mut events: Vec<AlertKind> = Vec::new();
            let mut agents: Vec<&str> = Vec::new();
            for a in many {
                if !events.contains(&a.event) {
                    events.push(a.event);
                }
                if !agents.contains(&a.agent.as_str()) {
                    agents.push(&a.agent);
                }
            }
            let events: Vec<&str> = events.iter().map(|e| style.event(*e)).collect();
            let count = match (style.lang, agents.len() == many.len()) {
                (Lang::En, true) => format!("{} agents", many.len()),
                (Lang::En, false) => format!("{} alerts for {} agents", many.len(), agents.len()),
                (Lang::Zh, true) => format!("{} 个 agent", many.len()),
                (Lang::Zh, false) => format!("{} 个 agent 的 {} 条告警", agents.len(), many.len()),
            };
            let mut line = match style.lang {
                Lang::En => format!("[{}] {count}: ", events.join("/")),
                Lang::Zh => format!("【{}】{count}：", events.join("/")),
            };
            for (i, agent) in agents.iter().enumerate() {
                let agent = one_line(agent, 60);
                if line.chars().count() + agent.chars().count() + 3 > SUBJECT_CHARS {
                    line.push('…');
                    break;
                }
                if i > 0 {
                    line.push_str(", ");
                }
                line.push_str(&agent);
            }
            line
        }
    };
    one_line(&line, SUBJECT_CHARS)
}

/// `[DOWN] web7-a1 on web7: exited with code 3` (or in Chinese), on one line.
fn headline(a: &Alert, style: &Style) -> String {
    one_line(&style.headline(a), 250)
}

/// What is known about one alert, in reading order, each on one line.
fn facts(a: &Alert, style: &Style) -> Vec<(&'static str, String)> {
    let zh = style.lang == Lang::Zh;
    let mut facts: Vec<(&'static str, String)> = style
        .facts(a)
        .into_iter()
        .map(|(k, v)| (k, one_line(&v, FIELD_CHARS)))
        .collect();
    facts.push((
        if zh { "通知编号" } else { "Notice" },
        one_line(&a.notice_id(), FIELD_CHARS),
    ));
    facts
}

fn colour(event: AlertKind) -> &'static str {
    match event {
        AlertKind::Down => "#c62828",
        AlertKind::Failed => "#8e0000",
        AlertKind::Recovered => "#2e7d32",
        AlertKind::Blind => "#ef6c00",
        AlertKind::Sighted => "#1565c0",
        AlertKind::Test => "#6a1b9a",
        AlertKind::Degraded => "#ef6c00",
        AlertKind::Healthy => "#2e7d32",
    }
}

/// `s` on one line (control characters as blanks), at most `max` characters (`…` when cut).
fn one_line(s: &str, max: usize) -> String {
    let clean = s.chars().map(|c| if c.is_control() { ' ' } else { c });
    if clean.clone().count() <= max {
        return clean.collect();
    }
    let mut out: String = clean.take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use common::ExitRecord;

    fn alert(agent: &str, host: &str, reason: &str) -> Alert {
        Alert {
            host: Some(host.to_owned()),
            restarts: Some(4),
            crashes: 2,
            last_exit: Some(ExitRecord {
                code: Some(3),
                signal: None,
                at: "2025-11-21T04:40:00.123Z".to_owned(),
                error: None,
            }),
            zxid: Some(0x1f),
            ..Alert::new(
                AlertKind::Down,
                agent,
                reason,
                UNIX_EPOCH + Duration::from_millis(1_763_700_000_123),
            )
        }
    }

    fn spec(smtp: &str) -> EmailSpec {
        EmailSpec {
            smtp: Some(smtp.to_owned()),
            from: Some("Flume Watcher <flume-watcher@example.com>".to_owned()),
            to: vec![
                "oncall@example.com".to_owned(),
                "lead@example.com".to_owned(),
            ],
            ..EmailSpec::default()
        }
    }

    fn problems(spec: &EmailSpec) -> Vec<(String, String)> {
        match spec.build(None) {
            Ok(ch) => panic!("built {}", ch.name()),
            Err(p) => p,
        }
    }

    #[test]
    fn the_toml_of_the_issue_is_understood_and_unknown_keys_are_not() {
        let spec: EmailSpec = serde_json::from_value(serde_json::json!({
            "smtp": "smtps://smtp.example.com:465",
            "from": "flume-watcher@example.com",
            "to": ["oncall@example.com"],
            "username": "u",
            "password": "pw",
            "timeout": "10s",
        }))
        .unwrap();
        let ch = spec.build(Some("mail")).expect("builds");
        assert_eq!(ch.name(), "mail");
        assert_eq!(ch.timeout, Duration::from_secs(10));
        let err = serde_json::from_value::<EmailSpec>(serde_json::json!({"smtp": "x", "port": 1}))
            .expect_err("unknown key");
        assert!(err.to_string().contains("unknown field `port`"), "{err}");
    }

    #[test]
    fn names_are_stable_tell_receivers_apart_and_hide_the_password() {
        let name = |s: &EmailSpec| s.build(None).expect("builds").name();
        // Golden values, from
        // `printf 'smtps://smtp.example.com:465\ntls=implicit\nfrom=flume-watcher@example.com\nto=oncall@example.com\nto=lead@example.com' | sha256sum`:
        // a changed fingerprint renames the channel, and the outage records key delivery by name.
        let plain = spec("smtps://smtp.example.com");
        assert_eq!(
            name(&plain),
            "email smtps://smtp.example.com:465 -> oncall@example.com #4f8363fc"
        );
        // The same receiver written otherwise: the same name.
        let mut same = spec(" smtps://SMTP.example.com:465/ ");
        same.timeout = Some("5s".to_owned());
        assert_eq!(name(&same), name(&plain));

        let mut login = spec("smtps://smtp.example.com:465");
        login.username = Some("watcher".to_owned());
        login.password = Some("S3cr3t-pw".to_owned());
        let with_login = name(&login);
        assert!(!with_login.contains("S3cr3t") && !with_login.contains("watcher"));
        login.password = Some("other-pw".to_owned());
        assert_ne!(name(&login), with_login, "another password, another name");

        let mut starttls = spec("smtp://smtp.example.com");
        assert_eq!(
            name(&starttls),
            format!(
                "email smtp://smtp.example.com:587 -> oncall@example.com {}",
                fingerprint(
                    "smtp://smtp.example.com:587\ntls=starttls\nfrom=flume-watcher@example.com\n\
                     to=oncall@example.com\nto=lead@example.com"
                )
            )
        );
        starttls.tls = Some("none".to_owned());
        assert!(name(&starttls).starts_with("email smtp://smtp.example.com:25 -> "));
        let mut ipv6 = spec("smtp://[::1]:2525");
        ipv6.tls = Some("none".to_owned());
        assert!(name(&ipv6).starts_with("email smtp://[::1]:2525 -> oncall@example.com #"));
        let mut more = spec("smtps://smtp.example.com");
        more.to.push("third@example.com".to_owned());
        assert_ne!(name(&more), name(&plain), "every recipient counts");
    }

    #[test]
    fn build_lists_every_problem_at_once_without_the_password() {
        let bad = EmailSpec {
            smtp: Some("http://u:S3cr3t@mail.example.com/x?y=1".to_owned()),
            tls: Some("yes".to_owned()),
            from: Some("not an address".to_owned()),
            to: vec!["ok@example.com".to_owned(), "@nobody".to_owned()],
            username: None,
            password: Some("S3cr3t".to_owned()),
            password_file: Some("/nonexistent/pw".into()),
            timeout: Some("soon".to_owned()),
            ca_file: Some("/nonexistent/ca.pem".into()),
        };
        let found = problems(&bad);
        let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        for key in [
            "smtp", "tls", "from", "to[1]", "password", "timeout", "ca_file",
        ] {
            assert!(keys.contains(&key), "no problem for {key}: {found:?}");
        }
        for (key, message) in &found {
            assert!(!message.contains("S3cr3t"), "{key}: {message}");
        }
        let text = |key: &str| {
            found
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join(" | ")
        };
        assert!(
            text("smtp").contains("must start with smtps:// or smtp://"),
            "{found:?}"
        );
        assert!(
            text("ca_file").contains("cannot read /nonexistent/ca.pem"),
            "{found:?}"
        );
        assert!(text("password").contains("not both"), "{found:?}");

        let empty = problems(&EmailSpec::default());
        let keys: Vec<&str> = empty.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["smtp", "from", "to"], "{empty:?}");
        assert!(empty[2].1.contains("at least one address"));
    }

    #[test]
    fn logins_and_tls_modes_are_checked() {
        let mut s = spec("smtp://mail.example.com:25");
        s.tls = Some("none".to_owned());
        s.username = Some("u".to_owned());
        s.password_file = Some("/nonexistent/pw".into());
        let found = problems(&s);
        assert!(
            found
                .iter()
                .any(|(k, m)| k == "tls" && m.contains("in clear")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|(k, m)| k == "password_file" && m.starts_with("cannot read /nonexistent/pw:")),
            "{found:?}"
        );

        let mut s = spec("smtps://mail.example.com");
        s.tls = Some("starttls".to_owned());
        assert_eq!(problems(&s)[0].0, "tls");
        s.tls = None;
        s.username = Some("u".to_owned());
        assert_eq!(
            problems(&s),
            [(
                "username".to_owned(),
                "needs password or password_file".to_owned()
            )]
        );

        let dir = std::env::temp_dir().join(format!("email-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pw = dir.join("pw");
        std::fs::write(&pw, "line-pw\n").unwrap();
        s.password_file = Some(pw.clone());
        let ch = s.build(None).expect("password file read");
        assert!(
            ch.secrets.contains(&"line-pw".to_owned()),
            "the line break is not part of it"
        );
        let notpem = dir.join("ca.pem");
        std::fs::write(&notpem, "hello\n").unwrap();
        s.ca_file = Some(notpem);
        let found = problems(&s);
        assert!(found[0].1.contains("holds no PEM certificate"), "{found:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_hides_the_password() {
        let mut s = spec("smtps://u:urlpw@mail.example.com");
        s.username = Some("u".to_owned());
        s.password = Some("S3cr3t".to_owned());
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("S3cr3t") && !shown.contains("urlpw"),
            "{shown}"
        );
        s.smtp = Some("smtps://mail.example.com".to_owned());
        let ch = s.build(None).unwrap();
        assert!(!format!("{ch:?}").contains("S3cr3t"));
    }

    #[test]
    fn errors_are_scrubbed_of_every_form_of_the_password() {
        let mut s = spec("smtps://mail.example.com");
        s.username = Some("u".to_owned());
        s.password = Some("S3cr3t".to_owned());
        let ch = s.build(None).unwrap();
        let plain = base64::engine::general_purpose::STANDARD.encode("\0u\0S3cr3t");
        let e = DeliveryError::Permanent(format!("535 bad S3cr3t {plain}")).scrub(&ch.secrets);
        assert_eq!(e, DeliveryError::Permanent("535 bad *** ***".to_owned()));
    }

    #[test]
    fn one_alert_names_event_agent_host_and_reason() {
        let (subject, text, html) = render(
            &[alert("web7-a1", "web7", "exited with code 3")],
            &Style::default(),
        );
        assert_eq!(subject, "[DOWN] web7-a1 on web7: exited with code 3");
        assert!(
            text.starts_with("[DOWN] web7-a1 on web7: exited with code 3\n"),
            "{text}"
        );
        for fact in [
            "Agent:",
            "web7-a1",
            "Since:",
            "2025-11-21 04:40:00 +00:00",
            "Restarts:",
            "Crashes in this outage: 2",
            "web7-a1/down/0x1f",
        ] {
            assert!(text.contains(fact), "{fact} missing: {text}");
        }
        assert!(!text.contains("Last exit"), "it repeats the reason: {text}");
        assert!(html.contains("<th align=\"left\">Reason</th><td>exited with code 3</td>"));
    }

    /// In Chinese and the operator's zone: subject, facts and times.
    #[test]
    fn a_mail_reads_in_chinese_in_the_operators_zone() {
        let style = Style {
            lang: Lang::Zh,
            zone: crate::message::Zone::parse("Asia/Shanghai").expect("zone"),
        };
        let mut a = alert("web7-a1", "web7", "exited with code 3");
        a.last_exit = Some(common::ExitRecord {
            code: Some(3),
            signal: None,
            at: "2025-11-21T04:40:00.100Z".into(),
            error: None,
        });
        let (subject, text, html) = render(&[a.clone(), a], &style);
        assert_eq!(subject, "【宕机】1 个 agent 的 2 条告警：web7-a1");
        for fact in [
            "【宕机】web7-a1（web7）：退出码 3",
            "主机",
            "发生时间",
            "2025-11-21 12:40:00 +08:00",
        ] {
            assert!(text.contains(fact), "{fact} missing: {text}");
        }
        assert!(
            html.contains("<th align=\"left\">原因</th><td>退出码 3</td>"),
            "{html}"
        );
        // Values line up in a monospaced client, Chinese labels being two columns a character.
        let starts: std::collections::BTreeSet<usize> = text
            .lines()
            .filter(|l| l.starts_with("  ") && l.contains(':'))
            .map(|l| {
                let (label, rest) = l.split_at(l.find(':').unwrap_or(0) + 1);
                columns(label) + rest.len() - rest.trim_start().len()
            })
            .collect();
        assert_eq!(starts.len(), 1, "values start in one column: {text}");
    }

    #[test]
    fn a_batch_is_summed_up_in_the_subject() {
        let batch = [
            alert("web7-a1", "web7", "x"),
            alert("web8-a1", "web8", "y"),
            alert("web9-a1", "web9", "z"),
        ];
        let (subject, text, _) = render(&batch, &Style::default());
        assert_eq!(subject, "[DOWN] 3 agents: web7-a1, web8-a1, web9-a1");
        assert_eq!(text.matches("[DOWN] web").count(), 3, "{text}");

        let mut back = alert("web7-a1", "web7", "recovered after 3m");
        back.event = AlertKind::Recovered;
        back.outage = Some(Duration::from_secs(192));
        let (subject, text, _) = render(&[batch[0].clone(), back], &Style::default());
        assert_eq!(subject, "[DOWN/RECOVERED] 2 alerts for 1 agents: web7-a1");
        assert!(
            text.contains("Outage:") && text.contains("3m 12s"),
            "{text}"
        );

        let many: Vec<Alert> = (0..100)
            .map(|i| alert(&format!("agent-{i:03}"), "h", "x"))
            .collect();
        let (subject, _, _) = render(&many, &Style::default());
        assert!(
            subject.starts_with("[DOWN] 100 agents: agent-000, agent-001"),
            "{subject}"
        );
        assert!(
            subject.ends_with('…') && subject.chars().count() <= SUBJECT_CHARS,
            "{subject}"
        );
    }

    #[test]
    fn html_is_escaped_and_fields_are_bounded_single_lines() {
        let nasty = "<script>alert('x')</script> & \"q\"\r\nBcc: evil@example.com";
        let (subject, text, html) = render(
            &[alert(nasty, nasty, &nasty.repeat(100))],
            &Style::default(),
        );
        assert!(
            !subject.contains('\n') && !subject.contains('\r'),
            "{subject:?}"
        );
        assert!(subject.chars().count() <= SUBJECT_CHARS);
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;")
        );
        assert!(!text.contains("\nBcc:"), "{text}");
        assert!(
            text.lines().all(|l| l.chars().count() < FIELD_CHARS + 40),
            "{text}"
        );
    }
}
