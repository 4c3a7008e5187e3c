//! The supervisor's decisions, free of I/O: what to do when the child starts, exits, a timer fires
//! or a stop is asked for. The loop in `run` turns real events into [`Event`]s and carries out the
//! returned [`Action`]s in order; the order is the contract (identity before liveness, liveness
//! deleted before a restart, identity deleted before the agent is signalled on a planned stop).
//!
//! It is the one place that decides whether the agent is to be seen live, dark, or held through a
//! stop; the registration carries that out without judging it again, and keeps the order of the
//! ZooKeeper writes in `registration::machine::Registration::next_step`.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use common::{AgentState, ExitRecord, RestartCause};

/// Restart and stop policy, as configured by flags.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Delay before the first restart after a crash; it doubles with each crash in a row.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// A child that stayed up this long is healthy again: the next crash restarts fast.
    pub backoff_reset: Duration,
    /// Give up after more than `n` restarts within `window`.
    pub max_restarts: Option<(u32, Duration)>,
    /// How long a stopping agent gets between SIGTERM and SIGKILL.
    pub stop_timeout: Duration,
}

/// How the child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildExit {
    Code(i32),
    Signal(i32),
}

impl ChildExit {
    pub fn record(self, at: SystemTime) -> ExitRecord {
        let at = common::time::format(at);
        match self {
            ChildExit::Code(code) => ExitRecord {
                code: Some(code),
                signal: None,
                at,
                error: None,
            },
            ChildExit::Signal(signo) => ExitRecord {
                code: None,
                signal: Some(signal_name(signo)),
                at,
                error: None,
            },
        }
    }
}

/// As a person reads it in a log line: `code 3`, `SIGKILL`.
impl std::fmt::Display for ChildExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ChildExit::Code(code) => write!(f, "code {code}"),
            ChildExit::Signal(signo) => f.write_str(&signal_name(signo)),
        }
    }
}

pub fn signal_name(signo: i32) -> String {
    match nix::sys::signal::Signal::try_from(signo) {
        Ok(sig) => sig.as_str().to_owned(),
        Err(_) => format!("signal {signo}"),
    }
}

/// Who asked for the stop; decides whether the identity node is ours to delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopOrigin {
    /// SIGTERM to the watchdog (systemd, kill): delete the identity node first, then stop the
    /// agent gracefully. A second SIGTERM changes nothing: systemd sends one, then SIGKILL after
    /// `TimeoutStopSec`, and a repeated `kill` must not cut Flume's own shutdown short.
    Terminate,
    /// SIGINT (Ctrl-C): as SIGTERM; a second one kills the agent at once, since the person at the
    /// terminal does not want to wait for `--stop-timeout`.
    Interrupt,
    /// `flume-watchdog stop` deleted the identity node already.
    IdentityDeleted,
    /// Another watchdog holds this id: stop our agent, touch nothing of theirs.
    Conflict,
}

impl StopOrigin {
    /// A stop asked of this watchdog itself: the identity node is ours to delete, first.
    fn deletes_identity(self) -> bool {
        matches!(self, StopOrigin::Terminate | StopOrigin::Interrupt)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sig {
    Term,
    Kill,
}

impl std::fmt::Display for Sig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sig::Term => "SIGTERM",
            Sig::Kill => "SIGKILL",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Start {
        now: Instant,
    },
    Spawned {
        pid: u32,
        now: Instant,
        wall: SystemTime,
    },
    SpawnFailed {
        error: String,
        now: Instant,
        wall: SystemTime,
    },
    Exited {
        pid: u32,
        exit: ChildExit,
        now: Instant,
        wall: SystemTime,
    },
    Timer {
        now: Instant,
    },
    Stop {
        origin: StopOrigin,
        now: Instant,
    },
    /// The agent runs but is stuck (its metrics endpoint hung): end it and start it again, as
    /// after a crash, with the cause on record.
    Restart {
        cause: RestartCause,
        now: Instant,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start the child now; answer with `Spawned` or `SpawnFailed`.
    Spawn,
    /// Write the identity node's changing fields.
    Publish {
        state: AgentState,
        restarts: u64,
        last_exit: Option<ExitRecord>,
        /// Why the watchdog itself ended the run `last_exit` describes, if it did.
        restarted_for: Option<RestartCause>,
    },
    /// Create the liveness node for this child.
    GoLive { pid: u32, since: SystemTime },
    /// Delete our liveness node: this is what makes the watcher alert.
    GoDark,
    /// A stop began: keep the liveness node that is there until the agent is gone (the stop is
    /// told by the identity node), and make no new one, even one asked for before.
    HoldLive,
    /// Delete the identity node, waiting (bounded) for it: a planned stop raises no alert.
    DeleteIdentity,
    /// Signal the child's process group.
    Signal { pid: u32, sig: Sig },
    /// Deliver a `Timer` event at this instant (replaces any earlier one).
    WakeAt(Instant),
    /// Close the session and exit the watchdog with this code.
    Exit(i32),
}

/// Exit code of a watchdog that gave up; systemd's unit lists it in `RestartPreventExitStatus`.
pub const EXIT_FAILED: i32 = 3;
/// Exit code when another watchdog holds the id.
pub const EXIT_CONFLICT: i32 = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Idle,
    /// A spawn was asked for; `attempt` crashes in a row so far.
    Starting {
        attempt: u32,
    },
    Running {
        pid: u32,
        since: Instant,
        attempt: u32,
    },
    Backoff {
        attempt: u32,
        until: Instant,
    },
    /// Ending a stuck agent to start it again: SIGTERM sent, SIGKILL at `deadline`. Its exit is
    /// then a crash like any other (backoff, `--max-restarts`), recorded with `cause`.
    Restarting {
        pid: u32,
        since: Instant,
        attempt: u32,
        deadline: Instant,
        killed: bool,
        cause: RestartCause,
    },
    Stopping {
        pid: u32,
        deadline: Instant,
        killed: bool,
        origin: StopOrigin,
    },
    Stopped,
    Failed,
}

pub struct Supervisor {
    policy: Policy,
    state: State,
    restarts: u64,
    /// Kept on record while the agent runs again: the watcher reads it to explain an outage.
    last_exit: Option<ExitRecord>,
    /// Goes with `last_exit`: set when that exit was our own restart of a stuck agent.
    restarted_for: Option<RestartCause>,
    /// Times of recent restarts, for `max_restarts`.
    recent: VecDeque<Instant>,
}

impl Supervisor {
    pub fn new(policy: Policy) -> Supervisor {
        Supervisor {
            policy,
            state: State::Idle,
            restarts: 0,
            last_exit: None,
            restarted_for: None,
            recent: VecDeque::new(),
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.policy
            .backoff_initial
            .saturating_mul(factor)
            .min(self.policy.backoff_max)
    }

    pub fn on_event(&mut self, event: Event) -> Vec<Action> {
        use Action::*;
        match (&self.state, event) {
            (State::Idle, Event::Start { .. }) => {
                self.state = State::Starting { attempt: 0 };
                vec![
                    Publish {
                        state: AgentState::Starting,
                        restarts: 0,
                        last_exit: None,
                        restarted_for: None,
                    },
                    Spawn,
                ]
            }
            (&State::Starting { attempt }, Event::Spawned { pid, now, wall }) => {
                self.state = State::Running {
                    pid,
                    since: now,
                    attempt,
                };
                vec![
                    Publish {
                        state: AgentState::Running,
                        restarts: self.restarts,
                        last_exit: self.last_exit.clone(),
                        restarted_for: self.restarted_for.clone(),
                    },
                    GoLive { pid, since: wall },
                ]
            }
            (&State::Starting { attempt }, Event::SpawnFailed { error, now, wall }) => {
                // Same as a child that could not exec: a shell would say 127. The reason goes on
                // record, so that the watcher can say why ("cannot start …: No such file").
                let mut exit = ChildExit::Code(127).record(wall);
                exit.error = Some(error);
                self.crashed(attempt, Duration::ZERO, exit, None, now)
            }
            (
                &State::Running {
                    pid,
                    since,
                    attempt,
                },
                Event::Exited {
                    pid: p,
                    exit,
                    now,
                    wall,
                },
            ) if p == pid => self.crashed(
                attempt,
                now.saturating_duration_since(since),
                exit.record(wall),
                None,
                now,
            ),
            (
                &State::Running {
                    pid,
                    since,
                    attempt,
                },
                Event::Restart { cause, now },
            ) => {
                let deadline = now + self.policy.stop_timeout;
                self.state = State::Restarting {
                    pid,
                    since,
                    attempt,
                    deadline,
                    killed: false,
                    cause,
                };
                vec![
                    Signal {
                        pid,
                        sig: Sig::Term,
                    },
                    WakeAt(deadline),
                ]
            }
            (
                State::Restarting {
                    pid,
                    since,
                    attempt,
                    cause,
                    ..
                },
                Event::Exited {
                    pid: p,
                    exit,
                    now,
                    wall,
                },
            ) if p == *pid => {
                let (attempt, uptime, cause) = (
                    *attempt,
                    now.saturating_duration_since(*since),
                    cause.clone(),
                );
                self.crashed(attempt, uptime, exit.record(wall), Some(cause), now)
            }
            (
                State::Restarting {
                    pid,
                    deadline,
                    killed: false,
                    ..
                },
                Event::Timer { now },
            ) if now >= *deadline => {
                let pid = *pid;
                if let State::Restarting { killed, .. } = &mut self.state {
                    *killed = true;
                }
                vec![Signal {
                    pid,
                    sig: Sig::Kill,
                }]
            }
            (&State::Backoff { attempt, until }, Event::Timer { now }) if now >= until => {
                self.state = State::Starting { attempt };
                vec![Spawn]
            }
            (
                &State::Running { pid, .. } | &State::Restarting { pid, .. },
                Event::Stop { origin, now },
            ) => {
                let deadline = now + self.policy.stop_timeout;
                self.state = State::Stopping {
                    pid,
                    deadline,
                    killed: false,
                    origin,
                };
                let mut acts = vec![HoldLive];
                if origin.deletes_identity() {
                    acts.push(DeleteIdentity);
                }
                acts.extend([
                    Signal {
                        pid,
                        sig: Sig::Term,
                    },
                    WakeAt(deadline),
                ]);
                acts
            }
            (
                State::Idle | State::Starting { .. } | State::Backoff { .. },
                Event::Stop { origin, .. },
            ) => {
                self.state = State::Stopped;
                let mut acts = Vec::new();
                if origin.deletes_identity() {
                    acts.push(DeleteIdentity);
                }
                acts.extend([GoDark, Exit(exit_code(origin))]);
                acts
            }
            (
                &State::Stopping {
                    pid,
                    killed: false,
                    origin,
                    ..
                },
                Event::Stop {
                    origin: StopOrigin::Interrupt,
                    now,
                },
            ) => {
                // A second Ctrl-C: the operator does not want to wait for the stop timeout.
                self.state = State::Stopping {
                    pid,
                    deadline: now,
                    killed: true,
                    origin,
                };
                vec![Signal {
                    pid,
                    sig: Sig::Kill,
                }]
            }
            (
                &State::Stopping {
                    pid,
                    deadline,
                    killed: false,
                    origin,
                },
                Event::Timer { now },
            ) if now >= deadline => {
                self.state = State::Stopping {
                    pid,
                    deadline,
                    killed: true,
                    origin,
                };
                vec![Signal {
                    pid,
                    sig: Sig::Kill,
                }]
            }
            (&State::Stopping { pid, origin, .. }, Event::Exited { pid: p, .. }) if p == pid => {
                self.state = State::Stopped;
                vec![GoDark, Exit(exit_code(origin))]
            }
            _ => Vec::new(),
        }
    }

    fn crashed(
        &mut self,
        attempt: u32,
        uptime: Duration,
        exit: ExitRecord,
        cause: Option<RestartCause>,
        now: Instant,
    ) -> Vec<Action> {
        self.last_exit = Some(exit);
        self.restarted_for = cause;
        let last_exit = self.last_exit.clone();
        let restarted_for = self.restarted_for.clone();
        let attempt = if uptime >= self.policy.backoff_reset {
            1
        } else {
            attempt + 1
        };
        if let Some((max, window)) = self.policy.max_restarts {
            while self
                .recent
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) > window)
            {
                self.recent.pop_front();
            }
            if self.recent.len() >= max as usize {
                self.state = State::Failed;
                return vec![
                    Action::Publish {
                        state: AgentState::Failed,
                        restarts: self.restarts,
                        last_exit,
                        restarted_for,
                    },
                    Action::GoDark,
                    Action::Exit(EXIT_FAILED),
                ];
            }
            self.recent.push_back(now);
        }
        self.restarts += 1;
        let until = now + self.delay(attempt);
        self.state = State::Backoff { attempt, until };
        vec![
            Action::Publish {
                state: AgentState::Backoff,
                restarts: self.restarts,
                last_exit,
                restarted_for,
            },
            Action::GoDark,
            Action::WakeAt(until),
        ]
    }
}

fn exit_code(origin: StopOrigin) -> i32 {
    if origin == StopOrigin::Conflict {
        EXIT_CONFLICT
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    const MS: Duration = Duration::from_millis(1);

    fn policy() -> Policy {
        Policy {
            backoff_initial: 100 * MS,
            backoff_max: 1000 * MS,
            backoff_reset: 10_000 * MS,
            max_restarts: None,
            stop_timeout: 5000 * MS,
        }
    }

    struct Clock {
        t0: Instant,
        w0: SystemTime,
    }

    impl Clock {
        fn new() -> Clock {
            Clock {
                t0: Instant::now(),
                w0: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            }
        }
        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }
        fn wall(&self, ms: u64) -> SystemTime {
            self.w0 + Duration::from_millis(ms)
        }
        fn spawned(&self, pid: u32, ms: u64) -> Event {
            Event::Spawned {
                pid,
                now: self.at(ms),
                wall: self.wall(ms),
            }
        }
        fn exited(&self, pid: u32, exit: ChildExit, ms: u64) -> Event {
            Event::Exited {
                pid,
                exit,
                now: self.at(ms),
                wall: self.wall(ms),
            }
        }
    }

    fn started(c: &Clock, p: Policy) -> Supervisor {
        let mut s = Supervisor::new(p);
        assert_eq!(
            s.on_event(Event::Start { now: c.at(0) }),
            vec![
                Publish {
                    state: AgentState::Starting,
                    restarts: 0,
                    last_exit: None,
                    restarted_for: None
                },
                Spawn
            ]
        );
        assert_eq!(
            s.on_event(c.spawned(10, 1)),
            vec![
                Publish {
                    state: AgentState::Running,
                    restarts: 0,
                    last_exit: None,
                    restarted_for: None
                },
                GoLive {
                    pid: 10,
                    since: c.wall(1)
                }
            ]
        );
        s
    }

    #[test]
    fn log_forms_read_as_a_person_reads_them() {
        assert_eq!(ChildExit::Code(3).to_string(), "code 3");
        assert_eq!(ChildExit::Signal(9).to_string(), "SIGKILL");
        assert_eq!(Sig::Term.to_string(), "SIGTERM");
    }

    #[test]
    fn crash_records_exit_goes_dark_and_restarts_after_backoff() {
        let c = Clock::new();
        let mut s = started(&c, policy());
        let exit = ChildExit::Code(3).record(c.wall(500));
        assert_eq!(
            s.on_event(c.exited(10, ChildExit::Code(3), 500)),
            vec![
                Publish {
                    state: AgentState::Backoff,
                    restarts: 1,
                    last_exit: Some(exit.clone()),
                    restarted_for: None
                },
                GoDark,
                WakeAt(c.at(600))
            ]
        );
        assert_eq!(
            s.on_event(Event::Timer { now: c.at(599) }),
            vec![],
            "no restart before the backoff ends"
        );
        assert_eq!(s.on_event(Event::Timer { now: c.at(600) }), vec![Spawn]);
        assert_eq!(
            s.on_event(c.spawned(11, 601)),
            vec![
                Publish {
                    state: AgentState::Running,
                    restarts: 1,
                    last_exit: Some(exit),
                    restarted_for: None
                },
                GoLive {
                    pid: 11,
                    since: c.wall(601)
                }
            ]
        );
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets_after_a_healthy_run() {
        let c = Clock::new();
        let mut s = started(&c, policy());
        let mut t = 1;
        let mut pid = 10;
        let mut delays = Vec::new();
        for _ in 0..6 {
            t += 50; // crashes soon after start
            let acts = s.on_event(c.exited(pid, ChildExit::Code(1), t));
            let Some(&WakeAt(until)) = acts.last() else {
                panic!("expected a timer, got {acts:?}")
            };
            delays.push((until - c.at(t)).as_millis());
            t = (until - c.t0).as_millis() as u64;
            assert_eq!(s.on_event(Event::Timer { now: c.at(t) }), vec![Spawn]);
            pid += 1;
            s.on_event(c.spawned(pid, t));
        }
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        // Up for longer than backoff_reset: the next crash restarts fast again.
        let acts = s.on_event(c.exited(pid, ChildExit::Signal(9), t + 10_000));
        assert_eq!(acts.last(), Some(&WakeAt(c.at(t + 10_000 + 100))));
        assert!(
            matches!(&acts[0], Publish { last_exit: Some(e), .. } if e.signal.as_deref() == Some("SIGKILL"))
        );
    }

    #[test]
    fn exit_code_zero_is_a_crash_too() {
        let c = Clock::new();
        let mut s = started(&c, policy());
        let acts = s.on_event(c.exited(10, ChildExit::Code(0), 50));
        assert!(
            matches!(
                &acts[..],
                [
                    Publish {
                        state: AgentState::Backoff,
                        restarts: 1,
                        ..
                    },
                    GoDark,
                    WakeAt(_)
                ]
            ),
            "{acts:?}"
        );
    }

    #[test]
    fn gives_up_past_max_restarts_within_the_window() {
        let c = Clock::new();
        let mut s = started(
            &c,
            Policy {
                max_restarts: Some((2, 60_000 * MS)),
                ..policy()
            },
        );
        let mut t = 1;
        for pid in 10..12 {
            t += 10;
            let acts = s.on_event(c.exited(pid, ChildExit::Code(1), t));
            let Some(&WakeAt(until)) = acts.last() else {
                panic!("{acts:?}")
            };
            t = (until - c.t0).as_millis() as u64;
            s.on_event(Event::Timer { now: c.at(t) });
            s.on_event(c.spawned(pid + 1, t));
        }
        let acts = s.on_event(c.exited(12, ChildExit::Code(1), t + 10));
        assert!(
            matches!(
                &acts[..],
                [
                    Publish {
                        state: AgentState::Failed,
                        restarts: 2,
                        last_exit: Some(_),
                        ..
                    },
                    GoDark,
                    Exit(EXIT_FAILED)
                ]
            ),
            "{acts:?}"
        );
        assert_eq!(s.state(), &State::Failed);
        assert_eq!(
            s.on_event(Event::Timer {
                now: c.at(t + 10_000)
            }),
            vec![]
        );
    }

    #[test]
    fn restarts_outside_the_window_do_not_count() {
        let c = Clock::new();
        let mut s = started(
            &c,
            Policy {
                max_restarts: Some((1, 1000 * MS)),
                ..policy()
            },
        );
        s.on_event(c.exited(10, ChildExit::Code(1), 10));
        s.on_event(Event::Timer { now: c.at(110) });
        s.on_event(c.spawned(11, 110));
        let acts = s.on_event(c.exited(11, ChildExit::Code(1), 5000));
        assert!(
            matches!(acts.last(), Some(WakeAt(_))),
            "the first restart left the window: {acts:?}"
        );
    }

    #[test]
    fn signal_stop_deletes_identity_first_then_terms_then_kills() {
        let c = Clock::new();
        let mut s = started(&c, policy());
        assert_eq!(
            s.on_event(Event::Stop {
                origin: StopOrigin::Terminate,
                now: c.at(100)
            }),
            vec![
                HoldLive,
                DeleteIdentity,
                Signal {
                    pid: 10,
                    sig: Sig::Term
                },
                WakeAt(c.at(5100))
            ]
        );
        assert_eq!(
            s.on_event(Event::Timer { now: c.at(5100) }),
            vec![Signal {
                pid: 10,
                sig: Sig::Kill
            }]
        );
        assert_eq!(
            s.on_event(c.exited(10, ChildExit::Signal(9), 5101)),
            vec![GoDark, Exit(0)]
        );
    }

    #[test]
    fn remote_stop_does_not_touch_identity_and_child_exit_is_not_a_crash() {
        let c = Clock::new();
        let mut s = started(&c, policy());
        assert_eq!(
            s.on_event(Event::Stop {
                origin: StopOrigin::IdentityDeleted,
                now: c.at(100)
            }),
            vec![
                HoldLive,
                Signal {
                    pid: 10,
                    sig: Sig::Term
                },
                WakeAt(c.at(5100))
            ]
        );
        assert_eq!(
            s.on_event(c.exited(10, ChildExit::Code(0), 200)),
            vec![GoDark, Exit(0)]
        );
        assert_eq!(s.restarts(), 0);
    }

    #[test]
    fn a_second_ctrl_c_kills_at_once_a_second_sigterm_waits_for_the_stop_timeout() {
        // (first signal, second signal, what the second one does)
        let cases = [
            (StopOrigin::Interrupt, StopOrigin::Interrupt, true),
            (StopOrigin::Terminate, StopOrigin::Interrupt, true),
            (StopOrigin::Terminate, StopOrigin::Terminate, false),
            (StopOrigin::Interrupt, StopOrigin::Terminate, false),
            (StopOrigin::IdentityDeleted, StopOrigin::Terminate, false),
            (StopOrigin::IdentityDeleted, StopOrigin::Interrupt, true),
        ];
        for (first, second, kills) in cases {
            let c = Clock::new();
            let mut s = started(&c, policy());
            s.on_event(Event::Stop {
                origin: first,
                now: c.at(100),
            });
            let acts = s.on_event(Event::Stop {
                origin: second,
                now: c.at(200),
            });
            let want = if kills {
                vec![Signal {
                    pid: 10,
                    sig: Sig::Kill,
                }]
            } else {
                vec![]
            };
            assert_eq!(acts, want, "{first:?} then {second:?}");
            // Either way the stop timeout still ends it with SIGKILL if the agent lingers.
            let at_deadline = s.on_event(Event::Timer { now: c.at(5100) });
            assert_eq!(
                at_deadline,
                if kills {
                    vec![]
                } else {
                    vec![Signal {
                        pid: 10,
                        sig: Sig::Kill,
                    }]
                },
                "{first:?} then {second:?}"
            );
        }
    }

    #[test]
    fn stop_during_backoff_ends_without_a_spawn() {
        let c = Clock::new();
        let mut s = started(&c, policy());
        s.on_event(c.exited(10, ChildExit::Code(1), 50));
        assert_eq!(
            s.on_event(Event::Stop {
                origin: StopOrigin::Interrupt,
                now: c.at(60)
            }),
            vec![DeleteIdentity, GoDark, Exit(0)]
        );
        assert_eq!(s.on_event(Event::Timer { now: c.at(1000) }), vec![]);
    }

    #[test]
    fn conflict_stops_with_its_own_code_and_leaves_identity_alone() {
        let c = Clock::new();
        let mut s = started(&c, policy());
        s.on_event(Event::Stop {
            origin: StopOrigin::Conflict,
            now: c.at(10),
        });
        assert_eq!(
            s.on_event(c.exited(10, ChildExit::Code(0), 20)),
            vec![GoDark, Exit(EXIT_CONFLICT)]
        );
    }

    #[test]
    fn spawn_failure_is_a_crash_with_code_127() {
        let c = Clock::new();
        let mut s = Supervisor::new(policy());
        s.on_event(Event::Start { now: c.at(0) });
        let acts = s.on_event(Event::SpawnFailed {
            error: "cannot start /x/flume-ng: No such file or directory".into(),
            now: c.at(1),
            wall: c.wall(1),
        });
        assert!(
            matches!(&acts[0], Publish { state: AgentState::Backoff, last_exit: Some(e), .. }
                if e.code == Some(127)
                    && e.describe() == "cannot start /x/flume-ng: No such file or directory"),
            "{acts:?}"
        );
        assert!(matches!(acts[1..], [GoDark, WakeAt(_)]), "{acts:?}");
    }

    #[test]
    fn exit_of_an_unknown_pid_is_ignored() {
        let c = Clock::new();
        let mut s = started(&c, policy());
        assert_eq!(s.on_event(c.exited(999, ChildExit::Code(1), 50)), vec![]);
    }
    #[test]
    fn a_hung_agent_is_restarted_as_after_a_crash_with_the_cause_on_record() {
        let c = Clock::new();
        let mut s = started(&c, policy());
        let cause = RestartCause::MetricsHung { ms: 60_000 };
        assert_eq!(
            s.on_event(Event::Restart {
                cause: cause.clone(),
                now: c.at(20_000)
            }),
            vec![
                Signal {
                    pid: 10,
                    sig: Sig::Term
                },
                WakeAt(c.at(25_000))
            ]
        );
        // A hung JVM may ignore SIGTERM: SIGKILL at the stop timeout, once.
        assert_eq!(
            s.on_event(Event::Timer { now: c.at(25_000) }),
            vec![Signal {
                pid: 10,
                sig: Sig::Kill
            }]
        );
        assert_eq!(s.on_event(Event::Timer { now: c.at(26_000) }), vec![]);
        // Another restart asked meanwhile changes nothing.
        assert_eq!(
            s.on_event(Event::Restart {
                cause: cause.clone(),
                now: c.at(25_500)
            }),
            vec![]
        );
        let exit = ChildExit::Signal(9).record(c.wall(25_001));
        assert_eq!(
            s.on_event(c.exited(10, ChildExit::Signal(9), 25_001)),
            vec![
                Publish {
                    state: AgentState::Backoff,
                    restarts: 1,
                    last_exit: Some(exit.clone()),
                    restarted_for: Some(cause.clone())
                },
                GoDark,
                // Up for longer than backoff_reset: restarted fast.
                WakeAt(c.at(25_101))
            ]
        );
        s.on_event(Event::Timer { now: c.at(25_101) });
        let acts = s.on_event(c.spawned(11, 25_102));
        assert!(
            matches!(&acts[0], Publish { state: AgentState::Running, restarted_for: Some(r), .. } if *r == cause),
            "the cause stays with its exit: {acts:?}"
        );
        // The next exit is the agent's own: the cause goes.
        let acts = s.on_event(c.exited(11, ChildExit::Code(1), 26_000));
        assert!(
            matches!(
                &acts[0],
                Publish {
                    restarted_for: None,
                    ..
                }
            ),
            "{acts:?}"
        );
    }

    #[test]
    fn a_stop_during_a_restart_is_a_stop() {
        let c = Clock::new();
        let mut s = started(&c, policy());
        s.on_event(Event::Restart {
            cause: RestartCause::MetricsHung { ms: 1 },
            now: c.at(10),
        });
        assert_eq!(
            s.on_event(Event::Stop {
                origin: StopOrigin::Terminate,
                now: c.at(20)
            }),
            vec![
                HoldLive,
                DeleteIdentity,
                Signal {
                    pid: 10,
                    sig: Sig::Term
                },
                WakeAt(c.at(5020))
            ]
        );
        assert_eq!(
            s.on_event(c.exited(10, ChildExit::Code(0), 30)),
            vec![GoDark, Exit(0)]
        );
        assert_eq!(s.restarts(), 0);
    }
}
