//! What the registration does next, free of I/O: the supervisor's wishes, the session's states and
//! ZooKeeper's replies come in as [`Event`]s; [`Registration::next_step`] says which one ZooKeeper
//! request to make now. The loop in the parent module carries the steps out one at a time and
//! feeds back what happened.
//!
//! The supervisor alone decides whether the agent should be seen live, dark, or held through a
//! stop ([`Liveness`]) and whether the identity node is to go; nothing here second-guesses it.
//! What is decided here is only what ZooKeeper forces: who holds the id, which node is in the
//! way, and the order of the writes — all of it in [`Registration::next_step`].

use common::records::Replaced;
use common::{AgentState, ExitRecord, RestartCause};

use super::LiveDesired;

/// The liveness node the supervisor wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// No node: the agent is not running. A node that is there goes, and that alerts.
    Dark,
    /// A node for this start of the agent; a node of an earlier start goes first.
    Live(LiveDesired),
    /// A stop began: the node that is there stays until the agent is gone (the stop is seen
    /// through the identity node), and no new one is made.
    Hold,
}

impl Liveness {
    fn incarnation(&self) -> Option<u64> {
        match self {
            Liveness::Live(d) => Some(d.incarnation),
            Liveness::Dark | Liveness::Hold => None,
        }
    }
}

/// The identity node's changing fields, as the supervisor last published them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub state: AgentState,
    pub restarts: u64,
    pub last_exit: Option<ExitRecord>,
    /// See `IdentityRecord::restarted_for`.
    pub restarted_for: Option<RestartCause>,
}

/// Everything the identity node says besides who we are: what to write in one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityFields {
    pub published: Published,
    /// See `IdentityRecord::reregistering`.
    pub reregistering: Option<i64>,
    /// See `IdentityRecord::replaced`.
    pub replaced: Option<Replaced>,
}

/// What the supervisor asked for, kept whole: a step is always judged against the latest wish.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Want {
    published: Published,
    live: Liveness,
    /// A planned stop: the identity node is ours to delete.
    delete_identity: bool,
    close: bool,
}

/// Whether there is a session to make requests in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// No session: open one.
    Down,
    /// A session, connected.
    Up,
    /// A session whose connection is lost; the client reconnects it or declares it expired.
    Cut,
}

/// Where the identity node stands, as far as this watchdog knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// Not created by this watchdog yet (one left by an earlier run is overwritten).
    Unwritten,
    /// Created by this watchdog; `current` once it holds the latest fields.
    Written { current: bool },
    /// Deleted by this watchdog for a planned stop.
    Deleted,
    /// Deleted by someone else: how `flume-watchdog stop` asks for a stop.
    Gone,
}

/// The liveness node in this session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Live {
    /// None of ours (as far as this session knows).
    None,
    /// Made by this session for that start of the agent.
    Made { incarnation: u64, czxid: i64 },
    /// A create found this node in the way, ours to delete before creating again.
    InTheWay { version: i32, why: Stale },
}

/// Why a liveness node found in our place is ours to replace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stale {
    /// This session made it for an earlier start of the agent (a create retried after a
    /// connection loss found it): it must vanish so that the watcher sees the crash.
    EarlierStart,
    /// A persistent node where only an ephemeral one belongs.
    Persistent,
    /// An earlier session of this watchdog made it (the session is over or about to be).
    EarlierSession,
    /// An earlier watchdog of this id on this host made it and is gone, its agent with it.
    DeadWatchdog(Replaced),
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stale::EarlierStart => f.write_str("made for an earlier start of the agent"),
            Stale::Persistent => f.write_str("a persistent node is in the liveness node's place"),
            Stale::EarlierSession => f.write_str("left by an earlier session of this watchdog"),
            Stale::DeadWatchdog(r) => match r.watchdog_pid {
                Some(pid) => write!(
                    f,
                    "left by an earlier watchdog (pid {pid}) on this host that is gone"
                ),
                None => f.write_str("left by an earlier watchdog on this host that is gone"),
            },
        }
    }
}

/// Who holds the liveness node's name, as a read of it found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    Free,
    /// This session's node; `same` when it says what a create would write (the create, retried
    /// after a connection loss, was ours).
    Ours {
        same: bool,
        version: i32,
        czxid: i64,
    },
    Stale {
        version: i32,
        why: Stale,
    },
    /// Another live watchdog's: never touched.
    Other {
        host: String,
        watchdog_pid: Option<u32>,
        session: i64,
    },
}

/// A liveness node as read, for [`classify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub ephemeral_owner: i64,
    pub version: i32,
    pub czxid: i64,
    pub host: Option<String>,
    pub watchdog_pid: Option<u32>,
    /// The data is byte for byte what this watchdog would write now.
    pub same: bool,
}

/// Who a liveness node belongs to. `alive` says whether a process of this host runs (it is only
/// asked about a pid that node names on this host).
pub fn classify(
    found: &Found,
    session: i64,
    host: &str,
    watchdog_pid: u32,
    alive: impl Fn(u32) -> bool,
) -> Holder {
    if found.ephemeral_owner == session {
        return Holder::Ours {
            same: found.same,
            version: found.version,
            czxid: found.czxid,
        };
    }
    if found.ephemeral_owner == 0 {
        return Holder::Stale {
            version: found.version,
            why: Stale::Persistent,
        };
    }
    if found.host.as_deref() == Some(host) {
        if let Some(pid) = found.watchdog_pid {
            if pid == watchdog_pid {
                return Holder::Stale {
                    version: found.version,
                    why: Stale::EarlierSession,
                };
            }
            if !alive(pid) {
                return Holder::Stale {
                    version: found.version,
                    why: Stale::DeadWatchdog(Replaced {
                        czxid: found.czxid,
                        watchdog_pid: Some(pid),
                    }),
                };
            }
        }
    }
    Holder::Other {
        host: found
            .host
            .clone()
            .unwrap_or_else(|| "an unknown host".into()),
        watchdog_pid: found.watchdog_pid,
        session: found.ephemeral_owner,
    }
}

/// The registration's states. The holder check is made once, on the first session; after it
/// either the id is ours for the rest of the run, or another watchdog's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Whether another watchdog holds this id is not known yet: nothing is written before.
    Unchecked,
    /// The id is ours.
    Holding {
        identity: Identity,
        /// This session's liveness node.
        live: Live,
        /// A watch on the identity node is set in this session.
        watching: bool,
        /// The czxid of our liveness node that a new session replaces while the agent runs on:
        /// the watcher reads its vanishing as a handover, not a death. It stays, since it names
        /// a node that never comes back and a watcher catching up later still needs it.
        handover: Option<i64>,
        /// The stale node of a dead earlier watchdog that this one replaces.
        replaced: Option<Replaced>,
    },
    /// Another watchdog holds the id: nothing of ours is written, nothing of theirs touched.
    Conflicted,
    /// The session is closed; the task ends.
    Closed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    // From the supervisor, through `Command`.
    Publish(Published),
    Live(Liveness),
    DeleteIdentity,
    Close,
    // The session.
    SessionOpened,
    ConnectionLost,
    ConnectionBack,
    /// Expired, closed or refused: every request on it fails from now on.
    SessionEnded,
    // Replies to steps.
    HolderChecked(Holder),
    IdentityWritten,
    /// The identity node this watchdog wrote is not there (a write or a watch found it so).
    IdentityMissing,
    IdentityDeleted,
    Watching,
    /// The identity node's watch fired; `deleted` when the node went.
    WatchFired {
        deleted: bool,
    },
    LiveCreated {
        incarnation: u64,
        czxid: i64,
    },
    /// A create of the liveness node for `incarnation` found the name taken.
    LiveInTheWay {
        incarnation: u64,
        holder: Holder,
    },
    LiveDeleted,
    StaleDeleted,
    SessionClosed,
}

/// One thing to do in ZooKeeper, or to wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Open a session.
    Connect,
    /// Nothing to do until the next event.
    Wait,
    /// Make the folders and read the liveness node: is this id held by another watchdog?
    CheckHolder,
    /// Delete the identity node (a planned stop); gone already is as good.
    DeleteIdentity,
    /// Write the identity node: create it, or set its data.
    WriteIdentity {
        create: bool,
        fields: IdentityFields,
    },
    /// Set a watch on the identity node (and see whether it is still there).
    WatchIdentity,
    /// Delete our liveness node, if a read just before shows it is this session's.
    DeleteLive,
    /// Delete the node in the liveness node's place, at the version read.
    DeleteStale { version: i32, why: Stale },
    /// Create the liveness node.
    CreateLive(LiveDesired),
    /// Close the session (its ephemeral nodes vanish now), then end.
    Close,
    /// End without a session: there is nothing of ours in ZooKeeper to clean up now.
    Done,
}

/// The registration of one watchdog: what is wanted, where the session is, where the nodes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    want: Want,
    link: Link,
    state: State,
}

impl Default for Registration {
    fn default() -> Self {
        Registration::new()
    }
}

impl Registration {
    pub fn new() -> Registration {
        Registration {
            want: Want {
                published: Published {
                    state: AgentState::Starting,
                    restarts: 0,
                    last_exit: None,
                    restarted_for: None,
                },
                live: Liveness::Dark,
                delete_identity: false,
                close: false,
            },
            link: Link::Down,
            state: State::Unchecked,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn link(&self) -> Link {
        self.link
    }

    /// The planned stop's delete is done (so its waiters can be answered).
    pub fn identity_deleted(&self) -> bool {
        matches!(
            self.state,
            State::Holding {
                identity: Identity::Deleted,
                ..
            }
        )
    }

    pub fn closing(&self) -> bool {
        self.want.close
    }

    /// The one place that orders the writes:
    ///
    /// 1. the holder check, before anything is written: this id may be another watchdog's;
    /// 2. a planned stop's identity delete, before anything else: a liveness node vanishing
    ///    after it is no alert;
    /// 3. the identity node (exit, handover and replaced marks), before any liveness change, so
    ///    that the watcher reading a vanished liveness node finds why in it;
    /// 4. the liveness node: an old one goes before a new one is made (each start of the agent
    ///    gets a new node, so a restart quicker than ZooKeeper still shows the crash), and a new
    ///    one is made only under an identity node that is there;
    /// 5. the close, once nothing else is left to do.
    pub fn next_step(&self) -> Step {
        match self.link {
            Link::Down if self.want.close || self.state == State::Closed => return Step::Done,
            Link::Down => return Step::Connect,
            Link::Cut => return Step::Wait,
            Link::Up => {}
        }
        let (identity, live, watching, handover, replaced) = match &self.state {
            State::Closed => return Step::Done,
            State::Unchecked => return Step::CheckHolder,
            State::Conflicted if self.want.close => return Step::Close,
            State::Conflicted => return Step::Wait,
            State::Holding {
                identity,
                live,
                watching,
                handover,
                replaced,
            } => (identity, live, *watching, handover, replaced),
        };
        if self.want.delete_identity && *identity != Identity::Deleted {
            return Step::DeleteIdentity;
        }
        let create = match identity {
            Identity::Unwritten => Some(true),
            Identity::Written { current: false } => Some(false),
            _ => None,
        };
        if let Some(create) = create {
            return Step::WriteIdentity {
                create,
                fields: IdentityFields {
                    published: self.want.published.clone(),
                    reregistering: *handover,
                    replaced: replaced.clone(),
                },
            };
        }
        let identity_there = matches!(identity, Identity::Written { .. });
        if identity_there && !watching {
            return Step::WatchIdentity;
        }
        match (live, &self.want.live) {
            (Live::Made { .. }, Liveness::Hold) => {}
            (Live::Made { incarnation, .. }, want) if want.incarnation() != Some(*incarnation) => {
                return Step::DeleteLive;
            }
            (Live::InTheWay { version, why }, Liveness::Live(_)) if identity_there => {
                return Step::DeleteStale {
                    version: *version,
                    why: why.clone(),
                };
            }
            (Live::None, Liveness::Live(d)) if identity_there => {
                return Step::CreateLive(d.clone())
            }
            _ => {}
        }
        if self.want.close {
            Step::Close
        } else {
            Step::Wait
        }
    }

    /// Whether the step after an identity write that succeeds deletes the liveness node: after a
    /// crash the exit is written, then the node goes (that order tells the watcher why). The loop
    /// then sends the look at the node's owner along with the write, so that the delete follows
    /// the write by one round trip: crash → alert is on this path.
    pub fn deletes_live_after_write(&self) -> bool {
        let mut after = self.clone();
        after.on_event(Event::IdentityWritten);
        after.next_step() == Step::DeleteLive
    }

    /// Takes in what happened; a notice for the run loop when there is one to give.
    pub fn on_event(&mut self, event: Event) -> Option<super::Notice> {
        use super::Notice;
        match event {
            Event::Publish(p) => {
                self.want.published = p;
                self.outdate_identity();
            }
            Event::Live(l) => self.want.live = l,
            Event::DeleteIdentity => self.want.delete_identity = true,
            Event::Close => self.want.close = true,
            Event::SessionOpened => {
                self.link = Link::Up;
                let want = self.want.live.incarnation();
                if let State::Holding {
                    live,
                    watching,
                    handover,
                    ..
                } = &mut self.state
                {
                    // Ephemerals of the earlier session are gone, or will be. The agent ran on
                    // meanwhile: the identity node names the node about to be replaced.
                    if let Live::Made { incarnation, czxid } = *live {
                        if want == Some(incarnation) {
                            *handover = Some(czxid);
                        }
                    }
                    *live = Live::None;
                    *watching = false;
                }
                self.outdate_identity();
            }
            Event::ConnectionLost => {
                if self.link == Link::Up {
                    self.link = Link::Cut;
                }
            }
            Event::ConnectionBack => {
                if self.link == Link::Cut {
                    self.link = Link::Up;
                }
            }
            Event::SessionEnded => self.link = Link::Down,
            Event::HolderChecked(holder) => {
                if self.state != State::Unchecked {
                    return None;
                }
                if let Some(notice) = self.conflict(holder) {
                    return Some(notice);
                }
                self.state = State::Holding {
                    identity: Identity::Unwritten,
                    live: Live::None,
                    watching: false,
                    handover: None,
                    replaced: None,
                };
                return Some(Notice::Clear);
            }
            Event::IdentityWritten => {
                if let State::Holding { identity, .. } = &mut self.state {
                    if matches!(identity, Identity::Unwritten | Identity::Written { .. }) {
                        *identity = Identity::Written { current: true };
                    }
                }
            }
            Event::IdentityMissing | Event::WatchFired { deleted: true } => {
                let deleting = self.want.delete_identity;
                if let State::Holding {
                    identity, watching, ..
                } = &mut self.state
                {
                    *watching = false;
                    if !deleting && matches!(identity, Identity::Written { .. }) {
                        *identity = Identity::Gone;
                        return Some(Notice::IdentityGone);
                    }
                }
            }
            Event::WatchFired { deleted: false } => {
                if let State::Holding { watching, .. } = &mut self.state {
                    *watching = false;
                }
            }
            Event::IdentityDeleted => {
                if let State::Holding {
                    identity, watching, ..
                } = &mut self.state
                {
                    *identity = Identity::Deleted;
                    *watching = false;
                }
            }
            Event::Watching => {
                if let State::Holding { watching, .. } = &mut self.state {
                    *watching = true;
                }
            }
            Event::LiveCreated { incarnation, czxid } => {
                if let State::Holding { live, .. } = &mut self.state {
                    *live = Live::Made { incarnation, czxid };
                }
            }
            Event::LiveInTheWay {
                incarnation,
                holder,
            } => {
                if let Some(notice) = self.conflict(holder.clone()) {
                    return Some(notice);
                }
                if let State::Holding {
                    identity,
                    live,
                    replaced,
                    ..
                } = &mut self.state
                {
                    *live = match holder {
                        Holder::Ours {
                            same: true, czxid, ..
                        } => Live::Made { incarnation, czxid },
                        Holder::Ours { version, .. } => Live::InTheWay {
                            version,
                            why: Stale::EarlierStart,
                        },
                        Holder::Stale { version, why } => {
                            // Its vanishing alerts: the identity node says first whose it was.
                            if let Stale::DeadWatchdog(dead) = &why {
                                if replaced.as_ref() != Some(dead) {
                                    *replaced = Some(dead.clone());
                                    if let Identity::Written { current } = identity {
                                        *current = false;
                                    }
                                }
                            }
                            Live::InTheWay { version, why }
                        }
                        Holder::Free | Holder::Other { .. } => Live::None,
                    };
                }
            }
            Event::LiveDeleted | Event::StaleDeleted => {
                if let State::Holding { live, .. } = &mut self.state {
                    *live = Live::None;
                }
            }
            Event::SessionClosed => {
                self.link = Link::Down;
                self.state = State::Closed;
            }
        }
        None
    }

    /// Another watchdog's node: the id is not ours, from now on.
    fn conflict(&mut self, holder: Holder) -> Option<super::Notice> {
        let Holder::Other {
            host,
            watchdog_pid,
            session,
        } = holder
        else {
            return None;
        };
        self.state = State::Conflicted;
        Some(super::Notice::Conflict {
            host,
            watchdog_pid,
            session,
        })
    }

    fn outdate_identity(&mut self) {
        if let State::Holding {
            identity: Identity::Written { current },
            ..
        } = &mut self.state
        {
            *current = false;
        }
    }
}

/// Says a lasting write failure once per kind and again every so often: a failure that persists
/// (a missing permission) must be seen, a retry loop must not flood the log.
#[derive(Clone, Debug, Default)]
pub struct FailureLog {
    last: Option<(String, std::time::Instant)>,
}

impl FailureLog {
    /// A failure now: whether to say it at warn level (else debug).
    pub fn failed(
        &mut self,
        what: &str,
        now: std::time::Instant,
        every: std::time::Duration,
    ) -> bool {
        let due = self
            .last
            .as_ref()
            .is_none_or(|(last, at)| last != what || now.saturating_duration_since(*at) >= every);
        if due {
            self.last = Some((what.to_owned(), now));
        }
        due
    }

    /// A write succeeded: whether a failure had been said (so its end is said too).
    pub fn succeeded(&mut self) -> bool {
        self.last.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Notice;
    use super::*;
    use std::time::{Duration, Instant, SystemTime};

    fn live(incarnation: u64) -> LiveDesired {
        LiveDesired {
            incarnation,
            agent_pid: 100 + incarnation as u32,
            since: SystemTime::UNIX_EPOCH + Duration::from_secs(incarnation),
        }
    }

    fn published(state: AgentState, restarts: u64) -> Published {
        Published {
            state,
            restarts,
            last_exit: (restarts > 0).then(|| ExitRecord {
                code: Some(3),
                signal: None,
                at: "2026-11-21T01:02:03.456Z".into(),
                error: None,
            }),
            restarted_for: None,
        }
    }

    fn fields(
        p: Published,
        reregistering: Option<i64>,
        replaced: Option<Replaced>,
    ) -> IdentityFields {
        IdentityFields {
            published: p,
            reregistering,
            replaced,
        }
    }

    fn starting() -> Published {
        published(AgentState::Starting, 0)
    }

    fn dead(czxid: i64) -> Replaced {
        Replaced {
            czxid,
            watchdog_pid: Some(31843),
        }
    }

    fn other() -> Holder {
        Holder::Other {
            host: "web8".into(),
            watchdog_pid: Some(7),
            session: 99,
        }
    }

    /// Session up, the id ours, the identity node written and watched.
    fn registered() -> Vec<Event> {
        vec![
            Event::SessionOpened,
            Event::HolderChecked(Holder::Free),
            Event::IdentityWritten,
            Event::Watching,
        ]
    }

    /// As `registered`, with the liveness node of the first start made (czxid 50).
    fn live_1() -> Vec<Event> {
        let mut e = registered();
        e.extend([
            Event::Live(Liveness::Live(live(1))),
            Event::LiveCreated {
                incarnation: 1,
                czxid: 50,
            },
        ]);
        e
    }

    fn then(mut base: Vec<Event>, more: impl IntoIterator<Item = Event>) -> Vec<Event> {
        base.extend(more);
        base
    }

    fn run(events: &[Event]) -> (Registration, Vec<Notice>) {
        let mut r = Registration::new();
        let notices = events
            .iter()
            .filter_map(|e| r.on_event(e.clone()))
            .collect();
        (r, notices)
    }

    #[test]
    fn next_step_by_table() {
        use Event as E;
        let crashed = published(AgentState::Backoff, 1);
        let cases: Vec<(&str, Vec<Event>, Step)> = vec![
            // Sessions.
            ("no session yet: open one", vec![], Step::Connect),
            (
                "closing without a session: nothing to clean up",
                vec![E::Close],
                Step::Done,
            ),
            (
                "connection lost: wait for the client",
                then(
                    registered(),
                    [E::ConnectionLost, E::Live(Liveness::Live(live(1)))],
                ),
                Step::Wait,
            ),
            (
                "connection back: carry on",
                then(
                    registered(),
                    [
                        E::ConnectionLost,
                        E::Live(Liveness::Live(live(1))),
                        E::ConnectionBack,
                    ],
                ),
                Step::CreateLive(live(1)),
            ),
            (
                "session ended: open another",
                then(registered(), [E::SessionEnded]),
                Step::Connect,
            ),
            (
                "session ended while closing: end",
                then(registered(), [E::SessionEnded, E::Close]),
                Step::Done,
            ),
            (
                "closed: end",
                then(registered(), [E::Close, E::SessionClosed]),
                Step::Done,
            ),
            // Conflict detection before the agent starts.
            (
                "first session: look at the liveness node before anything",
                vec![
                    E::SessionOpened,
                    E::Publish(crashed.clone()),
                    E::Live(Liveness::Live(live(1))),
                ],
                Step::CheckHolder,
            ),
            (
                "closing before the check: still check, the failed state is worth writing",
                vec![E::SessionOpened, E::Close],
                Step::CheckHolder,
            ),
            (
                "held elsewhere: write nothing",
                vec![
                    E::SessionOpened,
                    E::HolderChecked(other()),
                    E::Live(Liveness::Live(live(1))),
                ],
                Step::Wait,
            ),
            (
                "held elsewhere, closing: close",
                vec![E::SessionOpened, E::HolderChecked(other()), E::Close],
                Step::Close,
            ),
            (
                "free: create the identity node",
                vec![E::SessionOpened, E::HolderChecked(Holder::Free)],
                Step::WriteIdentity {
                    create: true,
                    fields: fields(starting(), None, None),
                },
            ),
            (
                "a stale node at the check does not block",
                vec![
                    E::SessionOpened,
                    E::HolderChecked(Holder::Stale {
                        version: 0,
                        why: Stale::EarlierSession,
                    }),
                ],
                Step::WriteIdentity {
                    create: true,
                    fields: fields(starting(), None, None),
                },
            ),
            // Identity before liveness.
            (
                "liveness wanted before the identity node is written: identity first",
                vec![
                    E::SessionOpened,
                    E::HolderChecked(Holder::Free),
                    E::Live(Liveness::Live(live(1))),
                ],
                Step::WriteIdentity {
                    create: true,
                    fields: fields(starting(), None, None),
                },
            ),
            (
                "identity written: watch it",
                vec![
                    E::SessionOpened,
                    E::HolderChecked(Holder::Free),
                    E::IdentityWritten,
                ],
                Step::WatchIdentity,
            ),
            (
                "a watch that fired is set again",
                then(registered(), [E::WatchFired { deleted: false }]),
                Step::WatchIdentity,
            ),
            (
                "registered, agent not running: wait",
                registered(),
                Step::Wait,
            ),
            (
                "agent running: create its liveness node",
                then(registered(), [E::Live(Liveness::Live(live(1)))]),
                Step::CreateLive(live(1)),
            ),
            ("live: wait", live_1(), Step::Wait),
            (
                "a publish is written",
                then(live_1(), [E::Publish(published(AgentState::Running, 0))]),
                Step::WriteIdentity {
                    create: false,
                    fields: fields(published(AgentState::Running, 0), None, None),
                },
            ),
            // A crash: the exit is recorded, then the node goes; a new start gets a new node.
            (
                "crash: record the exit before the node goes",
                then(
                    live_1(),
                    [E::Publish(crashed.clone()), E::Live(Liveness::Dark)],
                ),
                Step::WriteIdentity {
                    create: false,
                    fields: fields(crashed.clone(), None, None),
                },
            ),
            (
                "crash recorded: the node goes",
                then(
                    live_1(),
                    [
                        E::Publish(crashed.clone()),
                        E::Live(Liveness::Dark),
                        E::IdentityWritten,
                    ],
                ),
                Step::DeleteLive,
            ),
            (
                "restarted before the old node went: delete it first",
                then(
                    live_1(),
                    [E::Live(Liveness::Dark), E::Live(Liveness::Live(live(2)))],
                ),
                Step::DeleteLive,
            ),
            (
                "old node gone: create the new one",
                then(live_1(), [E::Live(Liveness::Live(live(2))), E::LiveDeleted]),
                Step::CreateLive(live(2)),
            ),
            // A planned stop.
            (
                "stop asked: identity deleted first",
                then(live_1(), [E::Live(Liveness::Hold), E::DeleteIdentity]),
                Step::DeleteIdentity,
            ),
            (
                "stop asked with a write pending: the delete still goes first",
                then(
                    live_1(),
                    [
                        E::Publish(crashed.clone()),
                        E::Live(Liveness::Hold),
                        E::DeleteIdentity,
                    ],
                ),
                Step::DeleteIdentity,
            ),
            (
                "identity deleted: the node stays while the agent stops",
                then(
                    live_1(),
                    [
                        E::Live(Liveness::Hold),
                        E::DeleteIdentity,
                        E::IdentityDeleted,
                    ],
                ),
                Step::Wait,
            ),
            (
                "identity deleted: no write after it",
                then(
                    live_1(),
                    [
                        E::Live(Liveness::Hold),
                        E::DeleteIdentity,
                        E::IdentityDeleted,
                        E::Publish(published(AgentState::Stopping, 0)),
                    ],
                ),
                Step::Wait,
            ),
            (
                "the agent stopped: the node goes",
                then(
                    live_1(),
                    [
                        E::Live(Liveness::Hold),
                        E::DeleteIdentity,
                        E::IdentityDeleted,
                        E::Live(Liveness::Dark),
                    ],
                ),
                Step::DeleteLive,
            ),
            (
                "stop during an outage: no node is made after it",
                then(
                    registered(),
                    [E::Live(Liveness::Live(live(1))), E::Live(Liveness::Hold)],
                ),
                Step::Wait,
            ),
            (
                "identity deleted before the hold arrived: no node without an identity node",
                then(
                    registered(),
                    [
                        E::Live(Liveness::Live(live(1))),
                        E::DeleteIdentity,
                        E::IdentityDeleted,
                    ],
                ),
                Step::Wait,
            ),
            (
                "stop asked before the check: check first",
                vec![E::SessionOpened, E::DeleteIdentity],
                Step::CheckHolder,
            ),
            (
                "stop asked before the identity node was made: delete (gone is as good)",
                vec![
                    E::SessionOpened,
                    E::HolderChecked(Holder::Free),
                    E::DeleteIdentity,
                ],
                Step::DeleteIdentity,
            ),
            (
                "stop asked after someone else deleted it: delete still, to answer",
                then(
                    live_1(),
                    [E::WatchFired { deleted: true }, E::DeleteIdentity],
                ),
                Step::DeleteIdentity,
            ),
            (
                "closing after the stop: close",
                then(
                    live_1(),
                    [
                        E::Live(Liveness::Hold),
                        E::DeleteIdentity,
                        E::IdentityDeleted,
                        E::Live(Liveness::Dark),
                        E::LiveDeleted,
                        E::Close,
                    ],
                ),
                Step::Close,
            ),
            (
                "closing with the failed state unwritten: write it, then close",
                then(
                    live_1(),
                    [
                        E::Publish(published(AgentState::Failed, 1)),
                        E::Live(Liveness::Dark),
                        E::Close,
                    ],
                ),
                Step::WriteIdentity {
                    create: false,
                    fields: fields(published(AgentState::Failed, 1), None, None),
                },
            ),
            (
                "closing with our node still there: it goes first",
                then(live_1(), [E::Live(Liveness::Dark), E::Close]),
                Step::DeleteLive,
            ),
            // Someone else deleted the identity node.
            (
                "identity gone: no new node",
                then(
                    registered(),
                    [
                        E::WatchFired { deleted: true },
                        E::Live(Liveness::Live(live(1))),
                    ],
                ),
                Step::Wait,
            ),
            (
                "identity gone (found by a write): no more writes",
                then(
                    live_1(),
                    [
                        E::Publish(crashed.clone()),
                        E::IdentityMissing,
                        E::Publish(published(AgentState::Stopping, 1)),
                    ],
                ),
                Step::Wait,
            ),
            (
                "identity gone: our node still goes when the agent is gone",
                then(
                    live_1(),
                    [
                        E::IdentityMissing,
                        E::Live(Liveness::Hold),
                        E::Live(Liveness::Dark),
                    ],
                ),
                Step::DeleteLive,
            ),
            // A lost session: the handover mark.
            (
                "new session, agent ran on: mark the handover before the new node",
                then(live_1(), [E::SessionEnded, E::SessionOpened]),
                Step::WriteIdentity {
                    create: false,
                    fields: fields(starting(), Some(50), None),
                },
            ),
            (
                "handover marked: watch again",
                then(
                    live_1(),
                    [E::SessionEnded, E::SessionOpened, E::IdentityWritten],
                ),
                Step::WatchIdentity,
            ),
            (
                "handover marked: the new node",
                then(
                    live_1(),
                    [
                        E::SessionEnded,
                        E::SessionOpened,
                        E::IdentityWritten,
                        E::Watching,
                    ],
                ),
                Step::CreateLive(live(1)),
            ),
            (
                "new session after a crash: no handover",
                then(
                    live_1(),
                    [E::Live(Liveness::Dark), E::SessionEnded, E::SessionOpened],
                ),
                Step::WriteIdentity {
                    create: false,
                    fields: fields(starting(), None, None),
                },
            ),
            (
                "new session, agent restarted meanwhile: no handover",
                then(
                    live_1(),
                    [
                        E::Live(Liveness::Live(live(2))),
                        E::SessionEnded,
                        E::SessionOpened,
                    ],
                ),
                Step::WriteIdentity {
                    create: false,
                    fields: fields(starting(), None, None),
                },
            ),
            (
                "the handover mark stays on later writes",
                then(
                    live_1(),
                    [
                        E::SessionEnded,
                        E::SessionOpened,
                        E::IdentityWritten,
                        E::Watching,
                        E::Publish(crashed.clone()),
                    ],
                ),
                Step::WriteIdentity {
                    create: false,
                    fields: fields(crashed.clone(), Some(50), None),
                },
            ),
            (
                "new session before the identity node was ever made: create it",
                vec![
                    E::SessionOpened,
                    E::HolderChecked(Holder::Free),
                    E::SessionEnded,
                    E::SessionOpened,
                ],
                Step::WriteIdentity {
                    create: true,
                    fields: fields(starting(), None, None),
                },
            ),
            // A create that found the name taken.
            (
                "our own create, retried after a connection loss: it is ours",
                then(
                    registered(),
                    [
                        E::Live(Liveness::Live(live(1))),
                        E::LiveInTheWay {
                            incarnation: 1,
                            holder: Holder::Ours {
                                same: true,
                                version: 0,
                                czxid: 51,
                            },
                        },
                    ],
                ),
                Step::Wait,
            ),
            (
                "ours, of an earlier start: delete it",
                then(
                    registered(),
                    [
                        E::Live(Liveness::Live(live(2))),
                        E::LiveInTheWay {
                            incarnation: 2,
                            holder: Holder::Ours {
                                same: false,
                                version: 0,
                                czxid: 51,
                            },
                        },
                    ],
                ),
                Step::DeleteStale {
                    version: 0,
                    why: Stale::EarlierStart,
                },
            ),
            (
                "an earlier session's: delete it",
                then(
                    registered(),
                    [
                        E::Live(Liveness::Live(live(1))),
                        E::LiveInTheWay {
                            incarnation: 1,
                            holder: Holder::Stale {
                                version: 2,
                                why: Stale::EarlierSession,
                            },
                        },
                    ],
                ),
                Step::DeleteStale {
                    version: 2,
                    why: Stale::EarlierSession,
                },
            ),
            (
                "a persistent node: delete it",
                then(
                    registered(),
                    [
                        E::Live(Liveness::Live(live(1))),
                        E::LiveInTheWay {
                            incarnation: 1,
                            holder: Holder::Stale {
                                version: 0,
                                why: Stale::Persistent,
                            },
                        },
                    ],
                ),
                Step::DeleteStale {
                    version: 0,
                    why: Stale::Persistent,
                },
            ),
            (
                "a dead watchdog's: mark it replaced first",
                then(
                    registered(),
                    [
                        E::Live(Liveness::Live(live(1))),
                        E::LiveInTheWay {
                            incarnation: 1,
                            holder: Holder::Stale {
                                version: 0,
                                why: Stale::DeadWatchdog(dead(40)),
                            },
                        },
                    ],
                ),
                Step::WriteIdentity {
                    create: false,
                    fields: fields(starting(), None, Some(dead(40))),
                },
            ),
            (
                "a dead watchdog's, marked: delete it",
                then(
                    registered(),
                    [
                        E::Live(Liveness::Live(live(1))),
                        E::LiveInTheWay {
                            incarnation: 1,
                            holder: Holder::Stale {
                                version: 0,
                                why: Stale::DeadWatchdog(dead(40)),
                            },
                        },
                        E::IdentityWritten,
                    ],
                ),
                Step::DeleteStale {
                    version: 0,
                    why: Stale::DeadWatchdog(dead(40)),
                },
            ),
            (
                "a dead watchdog's, marked already: no second write",
                then(
                    registered(),
                    [
                        E::Live(Liveness::Live(live(1))),
                        E::LiveInTheWay {
                            incarnation: 1,
                            holder: Holder::Stale {
                                version: 0,
                                why: Stale::DeadWatchdog(dead(40)),
                            },
                        },
                        E::IdentityWritten,
                        E::StaleDeleted,
                        E::LiveInTheWay {
                            incarnation: 1,
                            holder: Holder::Stale {
                                version: 1,
                                why: Stale::DeadWatchdog(dead(40)),
                            },
                        },
                    ],
                ),
                Step::DeleteStale {
                    version: 1,
                    why: Stale::DeadWatchdog(dead(40)),
                },
            ),
            (
                "stale node deleted: create ours",
                then(
                    registered(),
                    [
                        E::Live(Liveness::Live(live(1))),
                        E::LiveInTheWay {
                            incarnation: 1,
                            holder: Holder::Stale {
                                version: 2,
                                why: Stale::EarlierSession,
                            },
                        },
                        E::StaleDeleted,
                    ],
                ),
                Step::CreateLive(live(1)),
            ),
            (
                "a stale node is left alone once no node is wanted",
                then(
                    registered(),
                    [
                        E::Live(Liveness::Live(live(1))),
                        E::LiveInTheWay {
                            incarnation: 1,
                            holder: Holder::Stale {
                                version: 2,
                                why: Stale::EarlierSession,
                            },
                        },
                        E::Live(Liveness::Hold),
                    ],
                ),
                Step::Wait,
            ),
            (
                "vanished between the create and the read: create again",
                then(
                    registered(),
                    [
                        E::Live(Liveness::Live(live(1))),
                        E::LiveInTheWay {
                            incarnation: 1,
                            holder: Holder::Free,
                        },
                    ],
                ),
                Step::CreateLive(live(1)),
            ),
            (
                "another live watchdog's: touch nothing",
                then(
                    registered(),
                    [
                        E::Live(Liveness::Live(live(1))),
                        E::LiveInTheWay {
                            incarnation: 1,
                            holder: other(),
                        },
                    ],
                ),
                Step::Wait,
            ),
        ];
        for (name, events, want) in cases {
            let (r, _) = run(&events);
            assert_eq!(r.next_step(), want, "{name}: {:?}", r);
        }
    }

    #[test]
    fn notices_by_table() {
        use Event as E;
        let conflict = Notice::Conflict {
            host: "web8".into(),
            watchdog_pid: Some(7),
            session: 99,
        };
        let cases: Vec<(&str, Vec<Event>, Vec<Notice>)> = vec![
            (
                "clear once the check finds the id free",
                registered(),
                vec![Notice::Clear],
            ),
            (
                "clear once only, whatever later sessions find",
                then(
                    registered(),
                    [E::SessionEnded, E::SessionOpened, E::HolderChecked(other())],
                ),
                vec![Notice::Clear],
            ),
            (
                "conflict at the check",
                vec![E::SessionOpened, E::HolderChecked(other())],
                vec![conflict.clone()],
            ),
            (
                "conflict at a later create",
                then(
                    registered(),
                    [
                        E::Live(Liveness::Live(live(1))),
                        E::LiveInTheWay {
                            incarnation: 1,
                            holder: other(),
                        },
                    ],
                ),
                vec![Notice::Clear, conflict],
            ),
            (
                "identity deleted by someone else: said once",
                then(
                    registered(),
                    [E::WatchFired { deleted: true }, E::IdentityMissing],
                ),
                vec![Notice::Clear, Notice::IdentityGone],
            ),
            (
                "identity found missing by a write",
                then(registered(), [E::Publish(starting()), E::IdentityMissing]),
                vec![Notice::Clear, Notice::IdentityGone],
            ),
            (
                "our own delete is no news",
                then(
                    registered(),
                    [
                        E::DeleteIdentity,
                        E::WatchFired { deleted: true },
                        E::IdentityDeleted,
                    ],
                ),
                vec![Notice::Clear],
            ),
        ];
        for (name, events, want) in cases {
            let (_, notices) = run(&events);
            assert_eq!(notices, want, "{name}");
        }
    }

    #[test]
    fn the_planned_stops_delete_is_reported_done() {
        let (r, _) = run(&then(live_1(), [Event::DeleteIdentity]));
        assert!(!r.identity_deleted());
        let (r, _) = run(&then(
            live_1(),
            [Event::DeleteIdentity, Event::IdentityDeleted],
        ));
        assert!(r.identity_deleted());
    }

    #[test]
    fn classify_by_table() {
        let found = |owner: i64, host: Option<&str>, pid: Option<u32>, same: bool| Found {
            ephemeral_owner: owner,
            version: 4,
            czxid: 40,
            host: host.map(str::to_owned),
            watchdog_pid: pid,
            same,
        };
        let alive = |pid: u32| pid == 500;
        let cases = [
            (
                "our session, same data",
                found(1, Some("web7"), Some(42), true),
                Holder::Ours {
                    same: true,
                    version: 4,
                    czxid: 40,
                },
            ),
            (
                "our session, other data",
                found(1, Some("web7"), Some(42), false),
                Holder::Ours {
                    same: false,
                    version: 4,
                    czxid: 40,
                },
            ),
            (
                "persistent",
                found(0, None, None, false),
                Holder::Stale {
                    version: 4,
                    why: Stale::Persistent,
                },
            ),
            (
                "an earlier session of this watchdog",
                found(2, Some("web7"), Some(42), false),
                Holder::Stale {
                    version: 4,
                    why: Stale::EarlierSession,
                },
            ),
            (
                "a dead watchdog on this host",
                found(2, Some("web7"), Some(43), false),
                Holder::Stale {
                    version: 4,
                    why: Stale::DeadWatchdog(Replaced {
                        czxid: 40,
                        watchdog_pid: Some(43),
                    }),
                },
            ),
            (
                "a live watchdog on this host",
                found(2, Some("web7"), Some(500), false),
                Holder::Other {
                    host: "web7".into(),
                    watchdog_pid: Some(500),
                    session: 2,
                },
            ),
            (
                "this host, no pid said",
                found(2, Some("web7"), None, false),
                Holder::Other {
                    host: "web7".into(),
                    watchdog_pid: None,
                    session: 2,
                },
            ),
            (
                "another host",
                found(2, Some("web8"), Some(43), false),
                Holder::Other {
                    host: "web8".into(),
                    watchdog_pid: Some(43),
                    session: 2,
                },
            ),
            (
                "no host said",
                found(2, None, Some(43), false),
                Holder::Other {
                    host: "an unknown host".into(),
                    watchdog_pid: Some(43),
                    session: 2,
                },
            ),
        ];
        for (name, f, want) in cases {
            assert_eq!(classify(&f, 1, "web7", 42, alive), want, "{name}");
        }
    }

    #[test]
    fn stale_reasons_read_as_a_person_reads_them() {
        assert_eq!(
            Stale::DeadWatchdog(dead(1)).to_string(),
            "left by an earlier watchdog (pid 31843) on this host that is gone"
        );
        assert_eq!(
            Stale::EarlierSession.to_string(),
            "left by an earlier session of this watchdog"
        );
    }

    #[test]
    fn failures_are_said_once_per_kind_and_every_30s() {
        let every = Duration::from_secs(30);
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut log = FailureLog::default();
        // (failure, at second, said at warn level)
        let cases = [
            ("not authorized", 0, true),
            ("not authorized", 1, false),
            ("not authorized", 29, false),
            ("connection loss", 29, true),
            ("connection loss", 40, false),
            ("connection loss", 59, true),
        ];
        for (what, at, want) in cases {
            assert_eq!(log.failed(what, s(at), every), want, "{what} at {at}s");
        }
        assert!(
            log.succeeded(),
            "the end of a failure that was said is said"
        );
        assert!(!log.succeeded());
        assert!(
            log.failed("connection loss", s(60), every),
            "said again after a success"
        );
    }

    #[test]
    fn the_owner_check_goes_along_with_the_write_that_precedes_a_delete() {
        use Event as E;
        let crashed = published(AgentState::Backoff, 1);
        // (what happened, whether the owner check rides with the identity write)
        let cases: Vec<(&str, Vec<Event>, bool)> = vec![
            (
                "a crash: exit written, then the node goes",
                then(
                    live_1(),
                    [E::Publish(crashed.clone()), E::Live(Liveness::Dark)],
                ),
                true,
            ),
            (
                "a restart already asked for: the old node goes first all the same",
                then(
                    live_1(),
                    [
                        E::Publish(crashed.clone()),
                        E::Live(Liveness::Live(live(2))),
                    ],
                ),
                true,
            ),
            (
                "a publish while live: nothing to delete",
                then(live_1(), [E::Publish(published(AgentState::Running, 0))]),
                false,
            ),
            (
                "a stop holds the node: nothing to delete",
                then(
                    live_1(),
                    [E::Publish(crashed.clone()), E::Live(Liveness::Hold)],
                ),
                false,
            ),
            (
                "no node made yet",
                then(registered(), [E::Publish(crashed), E::Live(Liveness::Dark)]),
                false,
            ),
        ];
        for (name, events, want) in cases {
            let (r, _) = run(&events);
            assert!(
                matches!(r.next_step(), Step::WriteIdentity { .. }),
                "{name}: {:?}",
                r.next_step()
            );
            assert_eq!(r.deletes_live_after_write(), want, "{name}");
        }
    }
}
