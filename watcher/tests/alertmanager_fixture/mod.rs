//! A real Prometheus Alertmanager for tests: Debian's `prometheus-alertmanager`, started on a
//! free loopback port with a storage directory and configuration of its own, standalone (no
//! cluster), stopped and cleaned up on drop. A missing binary fails the test, saying how to
//! install it: a channel test that skips proves nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Where Debian's package puts it; `ALERTMANAGER_BIN` points elsewhere.
pub const DEFAULT_BIN: &str = "/usr/bin/prometheus-alertmanager";
/// How long it may take to answer `/-/ready` (about 0.1 s on an idle machine).
const READY_WITHIN: Duration = Duration::from_secs(10);
/// How long [`Alertmanager::wait_alerts`] waits for a condition.
pub const WAIT: Duration = Duration::from_secs(5);

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
    child: Child,
    dir: PathBuf,
    port: u16,
    http: reqwest::Client,
}

impl Alertmanager {
    /// Starts one and waits until it is ready; panics (with its log) if it does not get there.
    pub async fn start() -> Alertmanager {
        let bin = std::env::var("ALERTMANAGER_BIN").unwrap_or_else(|_| DEFAULT_BIN.to_owned());
        assert!(
            Path::new(&bin).is_file(),
            "no Alertmanager at {bin}: apt-get install prometheus-alertmanager \
             (or run scripts/setup; ALERTMANAGER_BIN names another binary)"
        );
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "flume-watcher-am-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).expect("a temp dir for Alertmanager");
        std::fs::write(dir.join("alertmanager.yml"), CONFIG).expect("Alertmanager's config");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client");
        // A free port may be taken between probing and binding: a few tries.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let log = std::fs::File::create(dir.join("alertmanager.log")).expect("a log file");
            let child = Command::new(&bin)
                .arg(format!(
                    "--config.file={}",
                    dir.join("alertmanager.yml").display()
                ))
                .arg(format!("--storage.path={}", dir.join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--cluster.listen-address=")
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("the log file again"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
            let mut am = Alertmanager {
                child,
                dir: dir.clone(),
                port,
                http: http.clone(),
            };
            if am.wait_ready().await {
                return am;
            }
            last_log = am.log();
            // Dropping it kills it and removes the directory: make them again.
            drop(am);
            std::fs::create_dir_all(dir.join("data")).expect("a temp dir for Alertmanager");
            std::fs::write(dir.join("alertmanager.yml"), CONFIG).expect("Alertmanager's config");
        }
        panic!("Alertmanager did not get ready within {READY_WITHIN:?} in 3 tries; its log:\n{last_log}");
    }

    /// True once `/-/ready` answers 200; false if it exited or the deadline passed.
    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let ready = self.http.get(self.url("/-/ready")).send().await;
            if matches!(ready, Ok(r) if r.status().is_success()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("alertmanager.log")).unwrap_or_default()
    }

    /// `GET /api/v2/alerts?filter=agent="<agent>"`: the agent's alerts Alertmanager reports
    /// (never those whose `endsAt` has passed), in Alertmanager's own JSON.
    pub async fn alerts_of(&self, agent: &str) -> Vec<Value> {
        let resp = self
            .http
            .get(self.url("/api/v2/alerts"))
            .query(&[("filter", format!("agent=\"{agent}\""))])
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET /api/v2/alerts: {e}"));
        assert!(
            resp.status().is_success(),
            "GET /api/v2/alerts: {}",
            resp.status()
        );
        match resp.json::<Value>().await {
            Ok(Value::Array(a)) => a,
            other => panic!("GET /api/v2/alerts answered no array: {other:?}"),
        }
    }

    /// Polls [`Alertmanager::alerts_of`] until `cond` holds, at most [`WAIT`]; panics saying
    /// `what` and showing the last answer and the log.
    pub async fn wait_alerts(
        &self,
        agent: &str,
        what: &str,
        mut cond: impl FnMut(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let alerts = self.alerts_of(agent).await;
            if cond(&alerts) {
                return alerts;
            }
            if Instant::now() >= deadline {
                panic!(
                    "waited {WAIT:?} for {what}; Alertmanager reports for agent {agent}:\n{}\n--- its log ---\n{}",
                    serde_json::to_string_pretty(&alerts).unwrap_or_default(),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
