//! The e-mail channel against a real SMTP server on 127.0.0.1: aiosmtpd (Debian
//! `python3-aiosmtpd`), started by each test with the certificates it needs and stopped when
//! the test ends. What the server received is read back with Python's own mail parser.
//!
//! The TLS tests make a CA and a leaf certificate (`CA:FALSE`, SAN `IP:127.0.0.1` and
//! `DNS:localhost`) at run time: rustls refuses a self-signed certificate that is its own CA.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::ExitRecord;
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdin, Command};

use watcher::alert::{Alert, AlertKind};
use watcher::channels::email::{EmailChannel, EmailSpec};
use watcher::channels::{Channel, DeliveryError};

/// Every wait in these tests ends by this deadline.
const WAIT: Duration = Duration::from_secs(5);
const PYTHON: &str = "/usr/bin/python3";
const INSTALL: &str = "the e-mail tests need Debian's python3-aiosmtpd: run scripts/setup \
                       (or: apt-get install -y python3-aiosmtpd)";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A directory of its own for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "flume-watcher-email-{}-{}-{what}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A test CA and a server certificate it signed, as PEM files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "flume-watcher test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);

    let leaf_key = KeyPair::generate().expect("leaf key");
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("leaf params");
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf
        .signed_by(&leaf_key, &issuer)
        .expect("leaf certificate");

    let pki = Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&pki.ca, ca_cert.pem()).unwrap();
    std::fs::write(&pki.cert, leaf_cert.pem()).unwrap();
    std::fs::write(&pki.key, leaf_key.serialize_pem()).unwrap();
    pki
}

/// aiosmtpd on a port of its choosing, keeping what it accepts in `dir/mail`. Killed when
/// dropped (and it exits by itself once its stdin closes, should this process die).
struct Smtp {
    port: u16,
    mail: PathBuf,
    _stdin: ChildStdin,
    _child: Child,
}

/// What the server got: the envelope and the mail as Python's parser reads it.
#[derive(Debug)]
struct Received {
    envelope: serde_json::Value,
    mail: serde_json::Value,
}

impl Smtp {
    async fn start(dir: &Path, args: &[&str]) -> Smtp {
        let probe = std::process::Command::new(PYTHON)
            .args(["-c", "import aiosmtpd"])
            .output();
        match probe {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "{INSTALL}\n{PYTHON} cannot import aiosmtpd: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => panic!("{INSTALL}\ncannot run {PYTHON}: {e}"),
        }
        let mail = dir.join("mail");
        std::fs::create_dir_all(&mail).unwrap();
        let log = dir.join("smtp.log");
        let mut child = Command::new(PYTHON)
            .arg(fixture("smtp_server.py"))
            .arg("--dir")
            .arg(&mail)
            .args(args)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{INSTALL}\ncannot start {PYTHON}: {e}"));
        let stdin = child.stdin.take().unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(WAIT, lines.next_line()).await;
        let line = match ready {
            Ok(Ok(Some(line))) => line,
            other => panic!(
                "the SMTP server did not say READY within {WAIT:?} ({other:?}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        };
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the SMTP server: {line:?}"));
        Smtp {
            port,
            mail,
            _stdin: stdin,
            _child: child,
        }
    }

    /// The messages received so far, in order.
    fn received(&self) -> Vec<Received> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.mail)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|eml| {
                let envelope = std::fs::read(eml.with_extension("json")).expect("envelope");
                let out = std::process::Command::new(PYTHON)
                    .arg(fixture("parse_mail.py"))
                    .arg(eml)
                    .env("PYTHONDONTWRITEBYTECODE", "1")
                    .output()
                    .expect("python3 parses the mail");
                assert!(
                    out.status.success(),
                    "parse_mail.py failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                Received {
                    envelope: serde_json::from_slice(&envelope).unwrap(),
                    mail: serde_json::from_slice(&out.stdout).unwrap(),
                }
            })
            .collect()
    }

    /// Exactly one message; the server has written it before its final `250`.
    fn only(&self) -> Received {
        let mut all = self.received();
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }
}

fn alert(agent: &str, host: &str) -> Alert {
    Alert {
        event: AlertKind::Down,
        agent: agent.to_owned(),
        host: Some(host.to_owned()),
        reason: "exited with code 3".to_owned(),
        at: UNIX_EPOCH + Duration::from_millis(1_763_700_000_123),
        restarts: Some(4),
        crashes: 1,
        outage: None,
        last_exit: Some(ExitRecord {
            code: Some(3),
            signal: None,
            at: "2025-11-21T04:39:59.900Z".to_owned(),
            error: None,
        }),
        zxid: Some(0x1f),
        key: None,
        ticket: None,
        not_for: Default::default(),
    }
}

fn spec(smtp: String) -> EmailSpec {
    EmailSpec {
        smtp: Some(smtp),
        from: Some("Flume Watcher <flume-watcher@example.com>".to_owned()),
        to: vec![
            "oncall@example.com".to_owned(),
            "lead@example.com".to_owned(),
        ],
        timeout: Some("3s".to_owned()),
        ..EmailSpec::default()
    }
}

fn build(spec: &EmailSpec) -> EmailChannel {
    spec.build(None)
        .unwrap_or_else(|problems| panic!("{problems:?}"))
}

async fn deliver(channel: &EmailChannel, batch: &[Alert]) -> Result<(), DeliveryError> {
    tokio::time::timeout(WAIT, channel.deliver(batch))
        .await
        .expect("delivery ends within the test's deadline")
}

fn text(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// The facts every received alert mail must carry.
fn assert_alert_mail(got: &Received, subject: &str) {
    let mail = &got.mail;
    assert_eq!(text(&mail["subject"]), subject, "{mail}");
    assert_eq!(
        text(&mail["from"]),
        "Flume Watcher <flume-watcher@example.com>"
    );
    assert_eq!(text(&mail["to"]), "oncall@example.com, lead@example.com");
    assert_eq!(text(&mail["content_type"]), "multipart/alternative");
    assert_eq!(
        mail["parts"],
        serde_json::json!(["text/plain", "text/html"])
    );
    assert!(!text(&mail["date"]).is_empty() && !text(&mail["message_id"]).is_empty());
    for part in ["text", "html"] {
        let body = text(&mail[part]);
        for fact in [
            "web7-a1",
            "web7",
            "exited with code 3",
            "2025-11-21 04:40:00 +00:00",
        ] {
            assert!(body.contains(fact), "{part} lacks {fact}: {body}");
        }
    }
    assert_eq!(
        got.envelope["mail_from"], "flume-watcher@example.com",
        "{:?}",
        got.envelope
    );
    assert_eq!(
        got.envelope["rcpt_tos"],
        serde_json::json!(["oncall@example.com", "lead@example.com"])
    );
}

#[tokio::test]
async fn plain_smtp_with_tls_none() {
    let dir = TempDir::new("plain");
    let server = Smtp::start(dir.path(), &[]).await;
    let mut s = spec(format!("smtp://127.0.0.1:{}", server.port));
    s.tls = Some("none".to_owned());
    let channel = build(&s);
    assert!(
        channel.name().starts_with(&format!(
            "email smtp://127.0.0.1:{} -> oncall@example.com #",
            server.port
        )),
        "{}",
        channel.name()
    );
    deliver(&channel, &[alert("web7-a1", "web7")])
        .await
        .expect("delivered");
    let got = server.only();
    assert_alert_mail(&got, "[DOWN] web7-a1 on web7: exited with code 3");
    assert_eq!(got.envelope["encrypted"], false);
    let text = text(&got.mail["text"]);
    assert!(
        text.contains("Restarts:") && text.contains("web7-a1/down/0x1f"),
        "{text}"
    );
}

#[tokio::test]
async fn starttls_is_the_default_for_smtp_and_trusts_the_ca_file() {
    let dir = TempDir::new("starttls");
    let pki = pki(dir.path());
    let cert = pki.cert.to_str().unwrap();
    let key = pki.key.to_str().unwrap();
    let server = Smtp::start(dir.path(), &["--starttls", cert, key]).await;
    let mut s = spec(format!("smtp://127.0.0.1:{}", server.port));

    // Without the test CA the certificate is not trusted: retried, with a hint.
    let err = deliver(&build(&s), &[alert("web7-a1", "web7")])
        .await
        .expect_err("an unknown CA");
    assert!(err.is_retry(), "{err:?}");
    assert!(err.to_string().contains("ca_file"), "{err}");

    s.ca_file = Some(pki.ca.clone());
    deliver(&build(&s), &[alert("web7-a1", "web7")])
        .await
        .expect("delivered");
    let got = server.only();
    assert_alert_mail(&got, "[DOWN] web7-a1 on web7: exited with code 3");
    assert_eq!(got.envelope["encrypted"], true, "sent after STARTTLS");
}

#[tokio::test]
async fn starttls_is_required_not_hoped_for() {
    let dir = TempDir::new("nostarttls");
    // A server that offers no STARTTLS: nothing is sent in plain text instead.
    let server = Smtp::start(dir.path(), &[]).await;
    let s = spec(format!("smtp://127.0.0.1:{}", server.port));
    let err = deliver(&build(&s), &[alert("web7-a1", "web7")])
        .await
        .expect_err("no STARTTLS offered");
    assert!(!err.is_retry(), "{err:?}");
    assert!(err.to_string().contains("STARTTLS"), "{err}");
    assert!(err.to_string().contains("tls = \"none\""), "{err}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn smtps_with_the_test_ca_sends_one_mail_per_batch() {
    let dir = TempDir::new("smtps");
    let pki = pki(dir.path());
    let cert = pki.cert.to_str().unwrap();
    let key = pki.key.to_str().unwrap();
    let server = Smtp::start(dir.path(), &["--smtps", cert, key]).await;
    let mut s = spec(format!("smtps://127.0.0.1:{}", server.port));
    s.ca_file = Some(pki.ca.clone());
    let channel = build(&s);
    assert!(
        channel
            .name()
            .starts_with(&format!("email smtps://127.0.0.1:{} -> ", server.port)),
        "{}",
        channel.name()
    );
    let batch = [
        alert("web7-a1", "web7"),
        alert("web8-a1", "web8"),
        alert("web9-a1", "web9"),
    ];
    deliver(&channel, &batch).await.expect("delivered");
    let got = server.only();
    assert_alert_mail(&got, "[DOWN] 3 agents: web7-a1, web8-a1, web9-a1");
    assert_eq!(got.envelope["encrypted"], true);
    for agent in ["web8-a1", "web9-a1"] {
        assert!(text(&got.mail["text"]).contains(agent));
        assert!(text(&got.mail["html"]).contains(agent));
    }
}

#[tokio::test]
async fn login_over_smtps_and_a_refused_login_is_permanent() {
    let dir = TempDir::new("login");
    let pki = pki(dir.path());
    let cert = pki.cert.to_str().unwrap();
    let key = pki.key.to_str().unwrap();
    let server = Smtp::start(
        dir.path(),
        &["--smtps", cert, key, "--login", "watcher", "Pa55-w0rd"],
    )
    .await;
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "Pa55-w0rd\n").unwrap();
    let mut s = spec(format!("smtps://127.0.0.1:{}", server.port));
    s.ca_file = Some(pki.ca.clone());
    s.username = Some("watcher".to_owned());
    s.password_file = Some(password_file);
    let channel = build(&s);
    assert!(!channel.name().contains("Pa55"), "{}", channel.name());
    deliver(&channel, &[alert("web7-a1", "web7")])
        .await
        .expect("delivered");
    let got = server.only();
    assert_alert_mail(&got, "[DOWN] web7-a1 on web7: exited with code 3");
    assert_eq!(got.envelope["login"], "watcher");

    s.password_file = None;
    s.password = Some("Wr0ng-pw".to_owned());
    let err = deliver(&build(&s), &[alert("web7-a1", "web7")])
        .await
        .expect_err("wrong password");
    assert!(!err.is_retry(), "{err:?}");
    assert!(err.to_string().contains("535"), "{err}");
    assert!(!err.to_string().contains("Wr0ng"), "{err}");
    assert_eq!(server.received().len(), 1, "nothing more accepted");
}

#[tokio::test]
async fn a_refused_recipient_is_permanent_a_busy_one_is_retried() {
    let dir = TempDir::new("rcpt");
    let server = Smtp::start(
        dir.path(),
        &[
            "--reject",
            "gone@example.com",
            "--tempfail",
            "busy@example.com",
        ],
    )
    .await;
    let mut s = spec(format!("smtp://127.0.0.1:{}", server.port));
    s.tls = Some("none".to_owned());
    s.to = vec!["gone@example.com".to_owned()];
    let err = deliver(&build(&s), &[alert("web7-a1", "web7")])
        .await
        .expect_err("550");
    assert!(!err.is_retry(), "{err:?}");
    assert!(
        err.to_string().contains("550") && err.to_string().contains("no such user"),
        "{err}"
    );

    s.to = vec!["busy@example.com".to_owned()];
    let err = deliver(&build(&s), &[alert("web7-a1", "web7")])
        .await
        .expect_err("451");
    assert!(err.is_retry(), "{err:?}");
    assert!(err.to_string().contains("451"), "{err}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn a_server_down_or_silent_is_retried_within_the_timeout() {
    // Down: a port nobody listens on (bound, then released).
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let mut s = spec(format!("smtp://127.0.0.1:{port}"));
    s.tls = Some("none".to_owned());
    let err = deliver(&build(&s), &[alert("web7-a1", "web7")])
        .await
        .expect_err("nobody listens");
    assert!(err.is_retry(), "{err:?}");

    // Silent: connections are accepted and never greeted.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    let mut s = spec(format!("smtp://127.0.0.1:{port}"));
    s.tls = Some("none".to_owned());
    s.timeout = Some("300ms".to_owned());
    let started = Instant::now();
    let err = deliver(&build(&s), &[alert("web7-a1", "web7")])
        .await
        .expect_err("no greeting");
    assert!(err.is_retry(), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    hold.abort();
}

#[tokio::test]
async fn build_lists_every_problem_at_once() {
    let dir = TempDir::new("spec");
    let spec = EmailSpec {
        smtp: Some("smtp://127.0.0.1:2525".to_owned()),
        tls: Some("none".to_owned()),
        from: Some("watcher".to_owned()),
        to: vec![],
        username: Some("watcher".to_owned()),
        password: None,
        password_file: Some(dir.path().join("missing")),
        timeout: Some("10 parsecs".to_owned()),
        ca_file: None,
    };
    let problems = match spec.build(Some("mail")) {
        Ok(_) => panic!("built"),
        Err(problems) => problems,
    };
    let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["from", "to", "password_file", "tls", "timeout"],
        "{problems:?}"
    );
    assert!(problems[2].1.starts_with("cannot read "), "{problems:?}");
}

#[tokio::test]
async fn text_beyond_ascii_arrives_intact() {
    let dir = TempDir::new("utf8");
    let server = Smtp::start(dir.path(), &[]).await;
    let mut s = spec(format!("smtp://127.0.0.1:{}", server.port));
    s.tls = Some("none".to_owned());
    let mut a = alert("日志-a1", "杭州-web7");
    a.reason = "失去联系: 会话过期 <&>".to_owned();
    deliver(&build(&s), &[a]).await.expect("delivered");
    let got = server.only();
    assert_eq!(
        text(&got.mail["subject"]),
        "[DOWN] 日志-a1 on 杭州-web7: 失去联系: 会话过期 <&>"
    );
    assert!(text(&got.mail["text"]).contains("失去联系: 会话过期 <&>"));
    assert!(text(&got.mail["html"]).contains("失去联系: 会话过期 &lt;&amp;&gt;"));
}
