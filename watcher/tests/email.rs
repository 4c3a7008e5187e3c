//! The e-mail channel against a real SMTP server on 127.0.0.1: aiosmtpd (Debian
//! `python3-aiosmtpd`), started by each test with the certificates it needs and stopped when
//! the test ends (the fixture is `scenarios::smtp`, shared with the end-to-end scenarios). What
//! the server received is read back with Python's own mail parser.

use std::time::{Duration, Instant, UNIX_EPOCH};

use common::ExitRecord;
use tokio::net::TcpListener;

use scenarios::smtp::{Pki, Received, Smtp};
use scenarios::TempDir;
use watcher::alert::{Alert, AlertKind};
use watcher::channels::email::{EmailChannel, EmailSpec};
use watcher::channels::{Channel, DeliveryError};

/// Every wait in these tests ends by this deadline.
const WAIT: Duration = Duration::from_secs(5);

fn pki(dir: &std::path::Path) -> Pki {
    Pki::new(dir)
}

fn alert(agent: &str, host: &str) -> Alert {
    Alert {
        host: Some(host.to_owned()),
        restarts: Some(4),
        crashes: 1,
        last_exit: Some(ExitRecord {
            code: Some(3),
            signal: None,
            at: "2025-11-21T04:39:59.900Z".to_owned(),
            error: None,
        }),
        zxid: Some(0x1f),
        ..Alert::new(
            AlertKind::Down,
            agent,
            "exited with code 3",
            UNIX_EPOCH + Duration::from_millis(1_763_700_000_123),
        )
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
    let server = Smtp::start::<&str>(dir.path(), &[]);
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
    let server = Smtp::start(dir.path(), &["--starttls", cert, key]);
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
    let server = Smtp::start::<&str>(dir.path(), &[]);
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
    let server = Smtp::start(dir.path(), &["--smtps", cert, key]);
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
    );
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
    );
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
    let server = Smtp::start::<&str>(dir.path(), &[]);
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
