//! The watchdog pair as a user runs it: a `flume-watcher` posting to a real HTTP receiver, and
//! `flume-watchdog`s around stand-in agents, all on one ZooKeeper under a root of their own.

use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use crate::{bin, deadline, poll_until, stand_in_agent, Proc, Receiver, ZkProbe};

/// Session timeout every scenario's watchdog asks for (the server's minimum is 1 s).
pub const SESSION_TIMEOUT: &str = "2s";
/// `--recovered-after` of every scenario's watcher.
pub const RECOVERED_AFTER: &str = "2s";

pub struct Pair {
    /// Connect string including any chroot.
    pub connect: String,
    pub root: String,
    pub receiver: Receiver,
    pub probe: ZkProbe,
    pub watcher: Option<Proc>,
}

impl Pair {
    /// The receiver and a probe, no watcher yet.
    pub fn new(connect: &str, root: &str) -> Pair {
        Pair {
            connect: connect.to_owned(),
            root: root.to_owned(),
            receiver: Receiver::start(),
            probe: ZkProbe::connect(connect),
            watcher: None,
        }
    }

    /// With a watcher that is ready.
    pub fn start(connect: &str, root: &str) -> Pair {
        let mut pair = Pair::new(connect, root);
        pair.start_watcher();
        pair
    }

    pub fn start_watcher(&mut self) {
        self.start_watcher_with(&[]);
    }

    /// A watcher with more flags (e.g. another channel) besides the webhook to the receiver.
    pub fn start_watcher_with(&mut self, extra: &[&str]) {
        let mut cmd = self.watcher_command(SESSION_TIMEOUT);
        cmd.args(extra);
        self.start_watcher_from(cmd);
    }

    /// Starts the watcher `cmd` (see [`Pair::watcher_command`]) and waits until it is ready.
    pub fn start_watcher_from(&mut self, cmd: Command) {
        let watcher = Proc::spawn("watcher", cmd);
        watcher.wait_for_line(
            "watcher ready",
            deadline(30),
            "the watcher's first full view",
        );
        self.watcher = Some(watcher);
    }

    /// Kills the watcher (SIGKILL: no goodbye, its session left to expire) and waits until it has
    /// exited.
    pub fn kill_watcher(&mut self) {
        let watcher = self.watcher.take().expect("a watcher to kill");
        watcher.signal(nix::sys::signal::Signal::SIGKILL);
        watcher.wait_exit(deadline(5));
    }

    /// Another watcher on the same root and receiver (not waited for).
    pub fn spawn_watcher(&self, label: &str, extra: &[&str]) -> Proc {
        let mut cmd = self.watcher_command(SESSION_TIMEOUT);
        cmd.args(extra);
        Proc::spawn(label, cmd)
    }

    /// `flume-watcher run` on this root with a webhook to the receiver, `--recovered-after` and
    /// short retries, and `--session-timeout session`: more flags may follow.
    pub fn watcher_command(&self, session: &str) -> Command {
        let mut cmd = Command::new(bin("flume-watcher"));
        cmd.args(["run", "--zk", &self.connect, "--root", &self.root])
            .args(["--session-timeout", session])
            .args(["--webhook", &self.receiver.url("/alerts")])
            .args(["--recovered-after", RECOVERED_AFTER])
            .args(["--retry-initial", "100ms", "--retry-max", "1s"]);
        cmd
    }

    /// `flume-watchdog run` around a stand-in agent named `id` (the id is given explicitly).
    pub fn watchdog(&self, id: &str, watchdog_args: &[&str], agent_args: &[&str]) -> Proc {
        watchdog(&self.connect, &self.root, id, watchdog_args, agent_args)
    }

    pub fn live_path(&self, id: &str) -> String {
        format!("{}/live/{id}", self.root)
    }

    pub fn identity_path(&self, id: &str) -> String {
        format!("{}/agents/{id}", self.root)
    }

    /// Waits for the liveness node of a running agent; returns its data.
    pub fn wait_live(&self, id: &str) -> Value {
        let path = self.live_path(id);
        self.probe.wait_until_exists(&path, deadline(20));
        self.probe
            .get_json(&path)
            .unwrap_or_else(|| panic!("{path} vanished right after it was created"))
    }

    /// The pid of the running agent, from its liveness node.
    pub fn agent_pid(&self, id: &str) -> i32 {
        let live = self.wait_live(id);
        live["agent_pid"]
            .as_i64()
            .unwrap_or_else(|| panic!("liveness node of {id} has no agent_pid: {live}"))
            as i32
    }

    /// Waits for a liveness node whose agent is not `old_pid`: the agent was restarted.
    pub fn wait_restarted(&self, id: &str, old_pid: i32) -> i32 {
        let path = self.live_path(id);
        poll_until(
            deadline(20),
            &format!("{id} restarted (a liveness node with an agent other than pid {old_pid})"),
            || {
                self.probe
                    .get_json(&path)
                    .and_then(|v| v["agent_pid"].as_i64())
                    .map(|p| p as i32)
                    .filter(|p| *p != old_pid)
            },
            || format!("{path}: {:?}", self.probe.get_json(&path)),
        )
    }

    /// Alerts received for one agent, in order.
    pub fn alerts_for(&self, id: &str) -> Vec<Value> {
        self.receiver
            .alerts()
            .into_iter()
            .filter(|a| a["agent"] == id)
            .collect()
    }

    /// Waits until the alerts for `id` have these events (exactly, in order).
    pub fn wait_events(&self, id: &str, events: &[&str], secs: u64) -> Vec<Value> {
        let want: Vec<&str> = events.to_vec();
        self.receiver
            .wait_for_alerts(
                |all| events_of(all, id) == want,
                deadline(secs),
                &format!("alerts {want:?} for {id}"),
            )
            .into_iter()
            .filter(|a| a["agent"] == id)
            .collect()
    }

    /// Proves the watcher has processed everything that happened before this call: a stand-in
    /// agent (identity node plus an ephemeral liveness node of the probe's session) is made to die,
    /// and its alert must arrive. The watcher handles ZooKeeper events in order, so anything
    /// earlier has been handled (and would have been sent in this or an earlier message).
    pub fn sentinel(&self, name: &str) -> Instant {
        let identity = self.identity_path(name);
        let live = self.live_path(name);
        self.probe.create(
            &identity,
            br#"{"id":"sentinel","host":"nowhere","state":"running"}"#,
            false,
        );
        self.probe
            .create(&live, br#"{"host":"nowhere","watchdog_pid":0}"#, true);
        self.probe.delete(&live);
        self.receiver.wait_for_alerts(
            |all| events_of(all, name) == ["down"],
            deadline(20),
            &format!("the sentinel {name}'s down alert"),
        );
        Instant::now()
    }
}

/// Waits until `follower` leads (once the old leader's session has ended).
pub fn wait_took_over(follower: &Proc) {
    follower.wait_for_line(
        "delivers alerts now",
        deadline(15),
        "the follower to take over once the leader's session ended",
    );
}

/// The `event` fields of the alerts for `id`.
pub fn events_of(alerts: &[Value], id: &str) -> Vec<String> {
    alerts
        .iter()
        .filter(|a| a["agent"] == id)
        .map(|a| a["event"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// `flume-watchdog run` around a stand-in agent named `id`, without needing ZooKeeper to be up.
pub fn watchdog(
    connect: &str,
    root: &str,
    id: &str,
    watchdog_args: &[&str],
    agent_args: &[&str],
) -> Proc {
    let mut cmd = watchdog_command(connect, root, id, SESSION_TIMEOUT);
    cmd.args(watchdog_args);
    around_stand_in(&mut cmd, id);
    cmd.args(agent_args);
    Proc::spawn(&format!("watchdog {id}"), cmd)
}

/// `flume-watchdog run --zk … --root … --id … --session-timeout …`: more flags may follow, then
/// the agent's command (see [`around_stand_in`]).
pub fn watchdog_command(connect: &str, root: &str, id: &str, session: &str) -> Command {
    let mut cmd = Command::new(bin("flume-watchdog"));
    cmd.args(["run", "--zk", connect, "--root", root, "--id", id])
        .args(["--session-timeout", session]);
    cmd
}

/// Ends a watchdog's flags with `-- <stand-in agent> agent -n ID -c conf -f conf/flume.conf`; the
/// agent's own flags may follow.
pub fn around_stand_in(cmd: &mut Command, id: &str) {
    cmd.arg("--").arg(stand_in_agent()).args([
        "agent",
        "-n",
        id,
        "-c",
        "conf",
        "-f",
        "conf/flume.conf",
    ]);
}

/// The pid the stand-in agent printed when it started (`stand-in agent NAME started pid=PID`).
pub fn started_agent_pid(watchdog: &Proc, id: &str) -> i32 {
    let line = watchdog.wait_for_line(
        &format!("stand-in agent {id} started pid="),
        deadline(20),
        &format!("agent {id} to start"),
    );
    line.rsplit("pid=")
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"))
}
