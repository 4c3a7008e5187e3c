//! A real SMTP server for the e-mail channel's tests and the end-to-end scenarios: aiosmtpd
//! (Debian `python3-aiosmtpd`) run by `fixtures/smtp_server.py` on a port of its choosing on
//! 127.0.0.1, keeping every message it accepts; what it received is read back with Python's own
//! mail parser (`fixtures/parse_mail.py`), an implementation independent of the one that wrote
//! the mail. A missing aiosmtpd fails the test, saying how to install it: a channel test that
//! skips proves nothing.
//!
//! [`Pki`] makes a test CA and a leaf certificate (`CA:FALSE`, SAN `IP:127.0.0.1` and
//! `DNS:localhost`) at run time: rustls refuses a self-signed certificate that is its own CA.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use crate::wait::poll_until;
use crate::Proc;

pub const PYTHON: &str = "/usr/bin/python3";
const INSTALL: &str = "the e-mail tests need Debian's python3-aiosmtpd: run scripts/setup \
                       (or: apt-get install -y python3-aiosmtpd)";

/// A script of `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A test CA and a server certificate it signed, as PEM files.
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// Makes them in `dir` (`ca.pem`, `server.pem`, `server.key`).
    pub fn new(dir: &Path) -> Pki {
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
        std::fs::write(&pki.ca, ca_cert.pem()).expect("write ca.pem");
        std::fs::write(&pki.cert, leaf_cert.pem()).expect("write server.pem");
        std::fs::write(&pki.key, leaf_key.serialize_pem()).expect("write server.key");
        pki
    }

    /// `--starttls CERT KEY` for [`Smtp::start`].
    pub fn starttls_args(&self) -> Vec<String> {
        self.args("--starttls")
    }

    /// `--smtps CERT KEY` for [`Smtp::start`].
    pub fn smtps_args(&self) -> Vec<String> {
        self.args("--smtps")
    }

    fn args(&self, flag: &str) -> Vec<String> {
        vec![
            flag.to_owned(),
            self.cert.to_string_lossy().into_owned(),
            self.key.to_string_lossy().into_owned(),
        ]
    }
}

/// aiosmtpd on a port of its choosing, keeping what it accepts in `dir/mail`. Killed when
/// dropped (and by the kernel, should the test process die).
pub struct Smtp {
    pub port: u16,
    mail: PathBuf,
    proc: Proc,
}

/// What the server got: the envelope (`mail_from`, `rcpt_tos`, `encrypted`, `login`) and the
/// mail as Python's parser reads it (`subject`, `from`, `to`, `date`, `message_id`,
/// `content_type`, `parts`, `text`, `html`).
#[derive(Debug, Clone)]
pub struct Received {
    pub envelope: Value,
    pub mail: Value,
}

impl Received {
    /// The decoded subject.
    pub fn subject(&self) -> &str {
        self.mail["subject"].as_str().unwrap_or_default()
    }

    /// The plain-text part.
    pub fn text(&self) -> &str {
        self.mail["text"].as_str().unwrap_or_default()
    }

    /// The HTML part.
    pub fn html(&self) -> &str {
        self.mail["html"].as_str().unwrap_or_default()
    }
}

/// Panics with how to install aiosmtpd unless python3 can import it.
pub fn require_aiosmtpd() {
    let probe = Command::new(PYTHON)
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
}

impl Smtp {
    /// Starts the server with `args` (`--starttls CERT KEY`, `--smtps CERT KEY`, `--login USER
    /// PASS`, `--reject ADDR`, `--tempfail ADDR`; see the script) and waits until it listens.
    pub fn start<S: AsRef<str>>(dir: &Path, args: &[S]) -> Smtp {
        require_aiosmtpd();
        let mail = dir.join("mail");
        std::fs::create_dir_all(&mail).expect("the mail directory");
        let mut cmd = Command::new(PYTHON);
        cmd.arg(fixture("smtp_server.py"))
            .arg("--dir")
            .arg(&mail)
            .args(args.iter().map(AsRef::as_ref))
            .env("PYTHONDONTWRITEBYTECODE", "1");
        let proc = Proc::spawn("smtp", cmd);
        let line = proc.wait_for_line("READY ", crate::deadline(10), "the SMTP server to listen");
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line from the SMTP server: {line:?}"));
        Smtp { port, mail, proc }
    }

    /// `smtp://127.0.0.1:PORT` (or another scheme).
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The server's output so far (its errors).
    pub fn log(&self) -> String {
        self.proc.output()
    }

    /// How many messages it has accepted so far (each written completely before its final
    /// `250`).
    pub fn count(&self) -> usize {
        self.names().len()
    }

    fn names(&self) -> Vec<PathBuf> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.mail)
            .expect("the mail directory")
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
    }

    /// The messages received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.names().iter().map(|eml| parse(eml)).collect()
    }

    /// Exactly one message; the server has written it before its final `250`.
    pub fn only(&self) -> Received {
        let mut all = self.received();
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    /// Waits until it has accepted at least `n` messages; returns them all. Panics at
    /// `deadline` saying `what` and showing what came.
    pub fn wait_received(&self, n: usize, deadline: Instant, what: &str) -> Vec<Received> {
        poll_until(
            deadline,
            &format!("{what} ({n} mails at the SMTP server)"),
            || (self.count() >= n).then_some(()),
            || {
                let got: Vec<String> = self
                    .received()
                    .iter()
                    .map(|r| r.subject().to_owned())
                    .collect();
                format!(
                    "{} mails: {got:?}\n--- server ---\n{}",
                    got.len(),
                    self.log()
                )
            },
        );
        self.received()
    }
}

/// One received message, through `parse_mail.py`.
fn parse(eml: &Path) -> Received {
    let envelope = std::fs::read(eml.with_extension("json")).expect("the envelope beside it");
    let out = Command::new(PYTHON)
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
        envelope: serde_json::from_slice(&envelope).expect("the envelope is JSON"),
        mail: serde_json::from_slice(&out.stdout).expect("parse_mail.py prints JSON"),
    }
}
