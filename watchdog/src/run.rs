//! The watchdog's event loop: child exits, timers, signals and registration notices become
//! supervisor events; the supervisor's actions are carried out here, in order. Readings of
//! Flume's metrics go to the health machine, whose summaries go to the registration and whose
//! restarts go to the supervisor, like any other event.

use std::time::{Duration, SystemTime};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use common::records::{HealthRecord, Verdict};

use crate::child::{signal_group, Agent};
use crate::health::machine::{self as health, Health};
use crate::health::{poller, HealthConfig};
use crate::registration::{self, Command, LiveDesired, Liveness, Notice, Registrant};
use crate::supervisor::{Action, Event, Policy, State, StopOrigin, Supervisor, EXIT_CONFLICT};
use common::systemd::Systemd;

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub registrant: Registrant,
    pub policy: Policy,
    /// How long to wait for ZooKeeper before starting the agent anyway.
    pub startup_wait: Duration,
    /// Reading Flume's metrics (issue 11); `None`: no monitoring endpoint, no health node.
    pub health: Option<HealthConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("agent id {id} is already live on host {host} (watchdog pid {pid}); refusing to start a second one")]
    Conflict {
        id: String,
        host: String,
        pid: String,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Runs until the agent is stopped (exit code 0), given up on (3) or found duplicated (4).
pub async fn run(cfg: RunConfig) -> Result<i32, RunError> {
    let mut sigterm = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    let id = cfg.registrant.id.to_string();
    let argv = cfg.registrant.command.clone();
    let close_wait = cfg
        .registrant
        .zk
        .session_timeout
        .min(Duration::from_secs(5));
    let stop_wait = cfg.stop_wait();
    let systemd = Systemd::from_env();
    systemd.status(&format!("agent {id}: registering in ZooKeeper"));
    let (reg, mut notices) = registration::start(cfg.registrant.clone());
    // What the status line says of ZooKeeper: the agent runs either way.
    let mut registered = "registered";

    // Give ZooKeeper a short chance to say whether this id is taken; never more.
    match tokio::time::timeout(cfg.startup_wait, notices.recv()).await {
        Ok(Some(Notice::Conflict {
            host, watchdog_pid, ..
        })) => {
            close(&reg, close_wait).await;
            let pid = watchdog_pid.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
            return Err(RunError::Conflict { id, host, pid });
        }
        Ok(_) => {}
        Err(_) => {
            registered = "not registered yet (ZooKeeper does not answer)";
            warn!(
                waited = %common::time::human(cfg.startup_wait),
                "not registered in zookeeper yet (see the lines above for why); starting the agent anyway, it is registered as soon as zookeeper allows"
            )
        }
    }
    // systemd's watchdog is pinged from the loop below, not from a task: a loop that hangs
    // stops the pings, and systemd restarts the watchdog.
    let mut sd_next = systemd.watchdog_every().map(|every| Instant::now() + every);

    // The one token every task of this run stops by.
    let cancel = CancellationToken::new();
    let _stop_tasks = cancel.clone().drop_guard();
    let (health_tx, mut readings) = mpsc::channel::<poller::Polled>(4);
    let mut judge = match &cfg.health {
        Some(h) => {
            let mut rules = h.rules.clone();
            rules.wiring = crate::health::wiring_from_command(&argv);
            info!(url = %h.url, interval = %common::time::human(h.interval), "reading flume's metrics for the agent's health");
            let (url, interval, timeout) = (h.url.clone(), h.interval, h.timeout());
            let token = cancel.clone();
            tokio::spawn(async move {
                if let Err(e) = poller::run(url, interval, timeout, health_tx, token).await {
                    error!(error = %e, "cannot read flume's metrics; the agent's health is not checked");
                }
            });
            Some(Health::new(rules))
        }
        None => {
            drop(health_tx);
            None
        }
    };
    let mut verdict: Option<Verdict> = None;

    let mut sup = Supervisor::new(cfg.policy.clone());
    let mut agent: Option<Agent> = None;
    let mut wake: Option<Instant> = None;
    let mut incarnation = 0u64;
    let mut queue = vec![Event::Start {
        now: Instant::now().into_std(),
    }];

    loop {
        while !queue.is_empty() {
            let event = queue.remove(0);
            for action in sup.on_event(event) {
                match action {
                    Action::Spawn => {
                        let wall = SystemTime::now();
                        let now = Instant::now().into_std();
                        match Agent::spawn(&argv) {
                            Ok(a) => {
                                info!(pid = a.pid(), "agent started");
                                // Ready once the agent runs and its registration was tried.
                                systemd.ready(&format!(
                                    "agent {id} up, pid {}, {registered}",
                                    a.pid()
                                ));
                                if let Some(h) = judge.as_mut() {
                                    h.on_event(health::Event::AgentStarted { now });
                                }
                                queue.push(Event::Spawned {
                                    pid: a.pid(),
                                    now,
                                    wall,
                                });
                                agent = Some(a);
                            }
                            Err(e) => {
                                let error = spawn_error(&argv, &e);
                                error!(command = %argv.join(" "), "{error}");
                                systemd.ready(&format!("agent {id} cannot start: {error}"));
                                queue.push(Event::SpawnFailed { error, now, wall });
                            }
                        }
                    }
                    Action::Publish {
                        state,
                        restarts,
                        last_exit,
                        restarted_for,
                    } => reg.send(Command::Publish {
                        state,
                        restarts,
                        last_exit,
                        restarted_for,
                    }),
                    Action::GoLive { pid, since } => {
                        incarnation += 1;
                        reg.send(Command::Live(Liveness::Live(LiveDesired {
                            incarnation,
                            agent_pid: pid,
                            since,
                        })));
                    }
                    Action::GoDark => reg.send(Command::Live(Liveness::Dark)),
                    Action::HoldLive => reg.send(Command::Live(Liveness::Hold)),
                    Action::DeleteIdentity => {
                        let (tx, rx) = oneshot::channel();
                        reg.send(Command::DeleteIdentity(tx));
                        if tokio::time::timeout(stop_wait, rx).await.is_err() {
                            warn!(waited_ms = stop_wait.as_millis() as u64, "could not delete the identity node in time; the watcher may report this stop");
                        }
                    }
                    Action::Signal { pid, sig } => {
                        info!(pid, signal = %sig, "signalling the agent's process group");
                        if let Err(e) = signal_group(pid, sig) {
                            error!(pid, error = %e, "cannot signal the agent");
                        }
                    }
                    Action::WakeAt(at) => wake = Some(Instant::from_std(at)),
                    Action::Exit(code) => {
                        if code == crate::supervisor::EXIT_FAILED {
                            systemd
                                .status(&format!("agent {id} failed: it keeps exiting; gave up"));
                        }
                        close(&reg, close_wait).await;
                        if code == crate::supervisor::EXIT_FAILED {
                            error!(code, restarts = sup.restarts(), "giving up: the agent keeps exiting (more than --max-restarts within --restart-window); its identity node says failed");
                        } else {
                            info!(code, "watchdog exits");
                        }
                        return Ok(code);
                    }
                }
            }
        }

        let event = tokio::select! {
            exit = async { agent.as_mut().expect("guarded").wait().await }, if agent.is_some() => {
                let pid = agent.take().map(|a| a.pid()).unwrap_or_default();
                if let Some(h) = judge.as_mut() {
                    for act in h.on_event(health::Event::AgentGone) {
                        if act == health::Action::Withdraw {
                            reg.send(Command::Health(None));
                        }
                    }
                    verdict = None;
                }
                let now = Instant::now().into_std();
                let wall = SystemTime::now();
                match exit {
                    Ok(exit) if matches!(sup.state(), State::Stopping { .. }) => {
                        info!(pid, exit = %exit, "agent stopped");
                        Event::Exited { pid, exit, now, wall }
                    }
                    Ok(exit) => {
                        warn!(pid, exit = %exit, "agent exited");
                        systemd.status(&format!("agent {id} exited ({exit}); restarting as the policy says"));
                        Event::Exited { pid, exit, now, wall }
                    }
                    Err(e) => {
                        error!(pid, error = %e, "cannot wait for the agent; treating it as exited");
                        Event::Exited { pid, exit: crate::supervisor::ChildExit::Code(-1), now, wall }
                    }
                }
            }
            _ = tokio::time::sleep_until(sd_next.unwrap_or_else(Instant::now)), if sd_next.is_some() => {
                systemd.ping();
                sd_next = systemd.watchdog_every().map(|every| Instant::now() + every);
                continue;
            }
            _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {
                wake = None;
                Event::Timer { now: Instant::now().into_std() }
            }
            _ = sigterm.recv() => {
                if matches!(sup.state(), State::Stopping { .. }) {
                    info!(stop_timeout = %common::time::human(cfg.policy.stop_timeout), "SIGTERM again: the agent is already stopping; it is killed if still running when the stop timeout ends (SIGINT kills it at once)");
                } else {
                    info!("SIGTERM: stopping the agent");
                }
                Event::Stop { origin: StopOrigin::Terminate, now: Instant::now().into_std() }
            }
            _ = sigint.recv() => {
                if matches!(sup.state(), State::Stopping { .. }) {
                    info!("SIGINT again: killing the agent now");
                } else {
                    info!("SIGINT: stopping the agent (SIGINT again kills it at once)");
                }
                Event::Stop { origin: StopOrigin::Interrupt, now: Instant::now().into_std() }
            }
            Some(polled) = readings.recv(), if judge.is_some() => {
                let Some(h) = judge.as_mut() else { continue };
                let event = health::Event::Poll { now: polled.now.into_std(), wall: polled.wall, reading: polled.reading };
                let mut restart = None;
                for act in h.on_event(event) {
                    match act {
                        health::Action::Publish(record) => {
                            say_verdict(&mut verdict, &record);
                            match serde_json::to_vec(&record) {
                                Ok(data) => reg.send(Command::Health(Some(data))),
                                Err(e) => error!(error = %e, "cannot encode the health summary"),
                            }
                        }
                        health::Action::Withdraw => reg.send(Command::Health(None)),
                        health::Action::Restart(cause) => {
                            warn!(pid = agent.as_ref().map(Agent::pid), "{}: the agent runs but does not answer; restarting it (--restart-on-hang)", cause.describe());
                            restart = Some(Event::Restart { cause, now: Instant::now().into_std() });
                        }
                    }
                }
                match restart {
                    Some(event) => event,
                    None => continue,
                }
            }
            notice = notices.recv() => match notice {
                Some(Notice::IdentityGone) => Event::Stop { origin: StopOrigin::IdentityDeleted, now: Instant::now().into_std() },
                Some(Notice::Conflict { host, watchdog_pid, .. }) => {
                    let pid = watchdog_pid.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
                    error!(%host, watchdog_pid = %pid, code = EXIT_CONFLICT, "agent id {id} is now live on host {host} (watchdog pid {pid}), another watchdog holds it; stopping our agent");
                    Event::Stop { origin: StopOrigin::Conflict, now: Instant::now().into_std() }
                }
                Some(Notice::Clear) => {
                    if registered != "registered" {
                        registered = "registered";
                        if let Some(a) = agent.as_ref() {
                            systemd.status(&format!("agent {id} up, pid {}, {registered}", a.pid()));
                        }
                    }
                    continue;
                }
                None => continue,
            },
        };
        if let Event::Stop { origin, .. } = &event {
            systemd.stopping(&format!("stopping agent {id} ({})", stop_reason(origin)));
        }
        queue.push(event);
    }
}

/// Why a stop began, for `systemctl status`.
fn stop_reason(origin: &StopOrigin) -> &'static str {
    match origin {
        StopOrigin::Terminate => "SIGTERM",
        StopOrigin::Interrupt => "SIGINT",
        StopOrigin::IdentityDeleted => "flume-watchdog stop",
        StopOrigin::Conflict => "its id is live elsewhere",
    }
}

/// Logs a change of verdict, once: an operator reading the log sees what the health node says.
fn say_verdict(last: &mut Option<Verdict>, record: &HealthRecord) {
    if *last == Some(record.verdict) && record.verdict == Verdict::Healthy {
        return;
    }
    let reasons: Vec<String> = record.reasons.iter().map(|r| r.describe()).collect();
    match record.verdict {
        Verdict::Healthy if last.is_some() => info!("the agent is healthy again"),
        Verdict::Healthy => info!("the agent is healthy"),
        Verdict::Degraded => warn!(reasons = %reasons.join("; "), "the agent is degraded"),
    }
    *last = Some(record.verdict);
}

impl RunConfig {
    /// A planned stop waits this long for the identity node to go before stopping the agent
    /// anyway: long enough to ride out a short ZooKeeper hiccup, never longer than the stop itself.
    fn stop_wait(&self) -> Duration {
        self.registrant
            .zk
            .session_timeout
            .min(self.policy.stop_timeout)
    }
}

/// Why the agent could not be started, as the alert will say it: the program and the system's
/// reason, without Rust's `(os error 2)`.
fn spawn_error(argv: &[String], e: &std::io::Error) -> String {
    let program = argv.first().map_or("the agent", String::as_str);
    let reason = e.to_string();
    let reason = match reason.rfind(" (os error ") {
        Some(i) if reason.ends_with(')') => reason[..i].to_owned(),
        _ => reason,
    };
    format!("cannot start {program}: {reason}")
}

async fn close(reg: &registration::Handle, wait: Duration) {
    let (tx, rx) = oneshot::channel();
    reg.send(Command::Close(tx));
    if tokio::time::timeout(wait, rx).await.is_err() {
        warn!("could not close the zookeeper session cleanly; its liveness node will vanish at session expiry");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spawn_error_names_the_program_and_the_reason() {
        let argv = ["/nonexistent/flume-ng".to_owned(), "agent".to_owned()];
        let e = std::io::Error::from_raw_os_error(nix::libc::ENOENT);
        assert_eq!(
            spawn_error(&argv, &e),
            "cannot start /nonexistent/flume-ng: No such file or directory"
        );
        let e = std::io::Error::from_raw_os_error(nix::libc::EACCES);
        assert_eq!(
            spawn_error(&argv[..1], &e),
            "cannot start /nonexistent/flume-ng: Permission denied"
        );
        assert_eq!(
            spawn_error(&[], &std::io::Error::other("empty command")),
            "cannot start the agent: empty command"
        );
    }
}
