//! A real Prometheus Alertmanager for the Alertmanager channel's tests and the end-to-end
//! scenarios: Debian's `prometheus-alertmanager`, started on a free loopback port with a storage
//! directory and configuration of its own, standalone (no cluster), stopped and cleaned up on
//! drop (and killed by the kernel should the test process die). A missing binary fails the
//! test, saying how to install it: a channel test that skips proves nothing.
//!
//! Synchronous like the other fixtures; a tokio test uses the `_async` forms of the waits, which
//! leave the runtime free to run the channel's own tasks (its re-posts) meanwhile.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{free_port, Proc, TempDir};

/// Where Debian's package puts it; `ALERTMANAGER_BIN` points elsewhere.
pub const DEFAULT_BIN: &str = "/usr/bin/prometheus-alertmanager";
/// How long it may take to answer `/-/ready` (about 0.1 s on an idle machine).
const READY_WITHIN: Duration = Duration::from_secs(10);
/// How long [`Alertmanager::wait_alerts_async`] waits for a condition.
pub const WAIT: Duration = Duration::from_secs(5);
/// Time limit of one API request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The receiver does nothing: the tests look at the API, not at notifications. A short
/// `group_wait` so that an alert is `active` soon after it is posted.
const CONFIG: &str = "\
route:
  receiver: 'null'
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: 'null'
";

pub struct Alertmanager {
    proc: Proc,
    port: u16,
    _dir: TempDir,
}

impl Alertmanager {
    /// Starts one and waits until it is ready; panics (with its log) if it does not get there.
    pub fn start() -> Alertmanager {
        let bin = std::env::var("ALERTMANAGER_BIN").unwrap_or_else(|_| DEFAULT_BIN.to_owned());
        assert!(
            Path::new(&bin).is_file(),
            "no Alertmanager at {bin}: run scripts/setup (or: apt-get install -y \
             prometheus-alertmanager; ALERTMANAGER_BIN names another binary)"
        );
        // A free port may be taken between probing and binding: a few tries.
        let mut last_log = String::new();
        for _ in 0..3 {
            let dir = TempDir::new("alertmanager");
            std::fs::create_dir_all(dir.join("data")).expect("a data dir for Alertmanager");
            std::fs::write(dir.join("alertmanager.yml"), CONFIG).expect("Alertmanager's config");
            let port = free_port();
            let mut cmd = Command::new(&bin);
            cmd.arg(format!(
                "--config.file={}",
                dir.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn");
            let am = Alertmanager {
                proc: Proc::spawn("alertmanager", cmd),
                port,
                _dir: dir,
            };
            if am.wait_ready() {
                return am;
            }
            last_log = am.log();
        }
        panic!("Alertmanager did not get ready within {READY_WITHIN:?} in 3 tries; its log:\n{last_log}");
    }

    /// True once `/-/ready` answers 200; false if it exited or the deadline passed.
    fn wait_ready(&self) -> bool {
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if !self.proc.is_running() {
                return false;
            }
            if matches!(get(self.port, "/-/ready"), Ok((200, _))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        self.proc.output()
    }

    /// `GET /api/v2/alerts?filter=agent="<agent>"`: the agent's alerts Alertmanager reports
    /// (never those whose `endsAt` has passed), in Alertmanager's own JSON.
    pub fn alerts_of(&self, agent: &str) -> Vec<Value> {
        alerts_of(self.port, agent).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Polls [`Alertmanager::alerts_of`] every 100 ms until `cond` holds, at most until
    /// `deadline`; panics saying `what` and showing the last answer and the log.
    pub fn wait_alerts(
        &self,
        agent: &str,
        what: &str,
        deadline: Instant,
        mut cond: impl FnMut(&[Value]) -> bool,
    ) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let alerts = self.alerts_of(agent);
            if cond(&alerts) {
                return alerts;
            }
            if Instant::now() >= deadline {
                self.gave_up(agent, what, started.elapsed(), &alerts);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// [`Alertmanager::alerts_of`] for a tokio test (the request runs on the blocking pool).
    pub async fn alerts_of_async(&self, agent: &str) -> Vec<Value> {
        let (port, agent) = (self.port, agent.to_owned());
        tokio::task::spawn_blocking(move || alerts_of(port, &agent))
            .await
            .expect("the request's task")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Alertmanager::wait_alerts`] for a tokio test, for at most [`WAIT`].
    pub async fn wait_alerts_async(
        &self,
        agent: &str,
        what: &str,
        mut cond: impl FnMut(&[Value]) -> bool,
    ) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let alerts = self.alerts_of_async(agent).await;
            if cond(&alerts) {
                return alerts;
            }
            if started.elapsed() >= WAIT {
                self.gave_up(agent, what, started.elapsed(), &alerts);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn gave_up(&self, agent: &str, what: &str, waited: Duration, alerts: &[Value]) -> ! {
        panic!(
            "waited {waited:.1?} for {what}; Alertmanager reports for agent {agent}:\n{}\n--- its log ---\n{}",
            serde_json::to_string_pretty(alerts).unwrap_or_default(),
            self.log()
        );
    }
}

/// The alerts of `agent` at the Alertmanager on `port`.
fn alerts_of(port: u16, agent: &str) -> Result<Vec<Value>, String> {
    let filter: String =
        form_urlencoded::byte_serialize(format!("agent=\"{agent}\"").as_bytes()).collect();
    let path = format!("/api/v2/alerts?filter={filter}");
    let (status, body) = get(port, &path).map_err(|e| format!("GET {path}: {e}"))?;
    if status != 200 {
        return Err(format!("GET {path}: {status}: {body}"));
    }
    match serde_json::from_str::<Value>(&body) {
        Ok(Value::Array(a)) => Ok(a),
        other => Err(format!("GET {path} answered no array: {other:?}: {body}")),
    }
}

/// `GET path` from 127.0.0.1:`port` as HTTP/1.0 (the answer is neither chunked nor kept
/// alive: the body is what comes until the server closes): the status and the body.
fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut conn = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT)?;
    conn.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    conn.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    write!(
        conn,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let bad = || std::io::Error::other(format!("not an HTTP answer: {answer:?}"));
    let (head, body) = answer.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, body.to_owned()))
}
