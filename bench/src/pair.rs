//! The two pairs measured: ours (the release binaries beside this one) and the baseline (the
//! Curator design in `bench/baseline/`, run on the JVM), started the same way.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use scenarios::{bin, Proc};

#[derive(Clone, Debug)]
pub enum Pair {
    Ours,
    /// The classpath `bench/baseline/build` wrote.
    Baseline {
        classpath: String,
    },
}

/// The largest ZooKeeper reply the baseline's Java client accepts: 8 MiB.
const JAVA_MAX_REPLY: usize = 8 << 20;

/// The restart backoff both watchdogs are given.
pub const BACKOFF: Duration = Duration::from_millis(50);

impl Pair {
    pub fn name(&self) -> &'static str {
        match self {
            Pair::Ours => "ours",
            Pair::Baseline { .. } => "baseline",
        }
    }

    /// The line a watcher prints once it has its first full view.
    pub fn ready_line(&self) -> &'static str {
        match self {
            Pair::Ours => "watcher ready",
            Pair::Baseline { .. } => "baseline watcher ready",
        }
    }

    /// The line a watchdog prints when it has started the agent.
    pub fn started_line(&self) -> &'static str {
        match self {
            Pair::Ours => "agent started",
            Pair::Baseline { .. } => "started pid=",
        }
    }

    pub fn watcher(&self, connect: &str, root: &str, webhook: &str) -> Proc {
        let mut cmd = match self {
            Pair::Ours => {
                let mut c = wrapped(bin("flume-watcher"));
                c.args(["run", "--zk", connect, "--root", root, "--webhook", webhook]);
                // Each crash of the watchdog benchmark is its own outage.
                c.args(["--recovered-after", "200ms"]);
                c
            }
            Pair::Baseline { classpath } => {
                let mut c = self.java(classpath);
                c.args(["BaselineWatcher", "--zk", connect, "--root", root]);
                c.args(["--webhook", webhook]);
                c
            }
        };
        cmd.env(
            "FLUME_WATCHER_LOG",
            std::env::var("BENCH_WATCHER_LOG").unwrap_or("info,zookeeper_client=warn".into()),
        );
        Proc::spawn(&format!("{}-watcher", self.name()), cmd)
    }

    pub fn watchdog(
        &self,
        connect: &str,
        root: &str,
        id: &str,
        session_timeout: Duration,
        agent: &[&str],
    ) -> Proc {
        let mut cmd = match self {
            Pair::Ours => {
                let mut c = Command::new(bin("flume-watchdog"));
                c.args(["run", "--zk", connect, "--root", root, "--id", id]);
                c.arg("--session-timeout")
                    .arg(format!("{}ms", session_timeout.as_millis()));
                c.arg("--backoff-initial")
                    .arg(format!("{}ms", BACKOFF.as_millis()));
                // The agent stays up between crashes longer than this: each restart is a first one.
                c.args(["--backoff-reset", "150ms"]);
                c
            }
            Pair::Baseline { classpath } => {
                let mut c = self.java(classpath);
                c.args([
                    "BaselineWatchdog",
                    "--zk",
                    connect,
                    "--root",
                    root,
                    "--id",
                    id,
                ]);
                c.arg("--session-timeout-ms")
                    .arg(session_timeout.as_millis().to_string());
                c.arg("--backoff-ms").arg(BACKOFF.as_millis().to_string());
                c
            }
        };
        cmd.arg("--").args(agent);
        Proc::spawn(&format!("{}-watchdog-{id}", self.name()), cmd)
    }

    fn java(&self, classpath: &str) -> Command {
        let mut c = Command::new(java());
        // ZooKeeper's Java client refuses replies above jute.maxbuffer (1 MiB by default) by
        // dropping the connection: the child list of 100,000 agents (about 1.7 MB) never arrives,
        // and the baseline retried for 120 s without a first view. Raised as an operator running
        // it at that scale would have to; nothing else reads a reply that large.
        c.arg(format!("-Djute.maxbuffer={JAVA_MAX_REPLY}"));
        c.arg("-cp").arg(classpath);
        c
    }
}

/// `FLUME_BENCH_WRAPPER` (e.g. `valgrind --tool=massif`) runs our watcher under a profiler.
fn wrapped(program: PathBuf) -> Command {
    let wrapper = std::env::var("FLUME_BENCH_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    match words.next() {
        Some(first) => {
            let mut c = Command::new(first);
            c.args(words).arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn java() -> PathBuf {
    std::env::var_os("JAVA").map_or_else(|| PathBuf::from("java"), PathBuf::from)
}
