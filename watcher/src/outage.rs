//! The watcher's decisions, free of I/O: from what ZooKeeper shows about each agent's identity and
//! liveness nodes, decide when an outage begins (one `down` or `failed`), when further crashes are
//! only counted, and when the agent has been live long enough to call it `recovered`.
//!
//! Crash or lost contact? The watchdog records an exit in the identity node *before* deleting the
//! liveness node, so an identity node modified after the vanished liveness node was created
//! (`mzxid > czxid`, both ZooKeeper transaction ids, immune to clock skew) carries the exit that
//! caused this outage. Otherwise the watchdog itself went silent: its session ended.
//!
//! Built for 100,000 agents: the state kept per agent is only what the decisions and the alerts
//! use ([`Registration`], [`Incarnation`]), host names are shared, and the deadlines are kept in a
//! queue of their own, so that an event costs the same whatever the number of agents.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::records::{IdentityView, LivenessView, RestartCause};
use common::{AgentState, ExitRecord};

use crate::alert::{Alert, AlertKind};
use crate::record::OpenOutage;

/// How long a re-registering watchdog gets between its old liveness node vanishing and the new one
/// appearing; it normally takes milliseconds, at most its reconnect backoff.
pub const HANDOVER_GRACE: Duration = Duration::from_secs(10);

/// How long after the watcher was itself cut off from ZooKeeper a lost contact is first taken for
/// a re-registration in progress. When the ensemble was away, every watchdog's old session may
/// expire in the first session timeout after it returns (ZooKeeper re-arms restored sessions), at
/// times racing the watchdog's own re-registration; 30 s covers session timeouts up to 20 s plus
/// reconnect backoffs. A host that really died meanwhile is reported `HANDOVER_GRACE` later.
pub const SETTLE_WINDOW: Duration = Duration::from_secs(30);

pub const LOST_CONTACT: &str = "lost contact: the watchdog's ZooKeeper session ended";

/// How long a registered agent may go without a liveness node before it is `down`. A watchdog
/// creates the liveness node a round trip after the identity node (milliseconds), or as soon as
/// ZooKeeper takes it when it started the agent while ZooKeeper was away; a watcher that starts
/// during a fleet restart sees many agents in between, which is no outage. An agent whose watchdog
/// records a crash or a failure to start before it was ever live is `down` at once.
pub const STARTUP_GRACE: Duration = Duration::from_secs(10);

/// An identity node as last read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub view: IdentityView,
    /// Transaction of its last modification.
    pub mzxid: i64,
}

/// A liveness node as last read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Live {
    pub view: LivenessView,
    /// Transaction that created it: a new incarnation has a new one.
    pub czxid: i64,
}

/// What the monitor keeps of an identity node: the fields its decisions and alerts use, laid out
/// small, as one is kept per agent. The marks a watchdog sets only while it re-registers or
/// replaces a dead watchdog's node are rare, and boxed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    host: Option<Arc<str>>,
    /// The agent's labels, for routes and messages; most agents have a few or none.
    labels: Option<Box<[Label]>>,
    restarts: Option<u64>,
    last_exit: Option<Box<ExitRecord>>,
    marks: Option<Box<Marks>>,
    state: Option<AgentState>,
    /// The watchdog restarted the agent itself, for this (a hung JVM): said with its exit.
    restarted_for: Option<RestartCause>,
    /// Transaction of its last modification.
    mzxid: i64,
}

/// One label of an agent, compact (kept for every agent).
type Label = (Box<str>, Box<str>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Marks {
    /// See `IdentityRecord::reregistering`.
    reregistering: Option<i64>,
    /// See `IdentityRecord::replaced`: the replaced node's czxid and its watchdog's pid.
    replaced: Option<(i64, Option<u32>)>,
}

impl From<Identity> for Registration {
    fn from(Identity { view, mzxid }: Identity) -> Registration {
        let replaced = view.replaced.map(|r| (r.czxid, r.watchdog_pid));
        let marks = (view.reregistering.is_some() || replaced.is_some()).then(|| {
            Box::new(Marks {
                reregistering: view.reregistering,
                replaced,
            })
        });
        let labels = (!view.labels.is_empty()).then(|| {
            view.labels
                .into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
                .collect()
        });
        Registration {
            host: view.host.map(Arc::from),
            labels,
            restarts: view.restarts,
            last_exit: view.last_exit.map(Box::new),
            marks,
            state: view.state,
            restarted_for: view.restarted_for,
            mzxid,
        }
    }
}

impl Registration {
    fn reregistering(&self) -> Option<i64> {
        self.marks.as_ref().and_then(|m| m.reregistering)
    }

    fn replaced(&self) -> Option<(i64, Option<u32>)> {
        self.marks.as_ref().and_then(|m| m.replaced)
    }
}

/// What the monitor keeps of a liveness node: who made it (to tell a restart from a
/// re-registration) and when, in little room. The watchdog's pid is not used by any decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incarnation {
    host: Option<Arc<str>>,
    agent_pid: Option<u32>,
    /// Compared, never read as a time: kept as written.
    since: Option<Box<str>>,
    /// Transaction that created it: a new incarnation has a new one.
    czxid: i64,
}

impl From<Live> for Incarnation {
    fn from(Live { view, czxid }: Live) -> Incarnation {
        Incarnation {
            host: view.host.map(Arc::from),
            agent_pid: view.agent_pid,
            since: view.since.map(String::into_boxed_str),
            czxid,
        }
    }
}

/// What a listing found of one agent: its identity node and its liveness node, as far as present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listed {
    pub identity: Option<Registration>,
    pub live: Option<Incarnation>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Everything under the root, listed after (re)connecting, by agent.
    /// `outages`: the open outage records, i.e. outages already reported.
    Snapshot {
        agents: BTreeMap<String, Listed>,
        outages: BTreeMap<String, OpenOutage>,
        now: Instant,
        wall: SystemTime,
    },
    Identity {
        id: String,
        identity: Option<Identity>,
        now: Instant,
        wall: SystemTime,
    },
    Live {
        id: String,
        live: Option<Live>,
        now: Instant,
        wall: SystemTime,
    },
    Tick {
        now: Instant,
        wall: SystemTime,
    },
    /// The watcher is back after being cut off from ZooKeeper (disconnected, or its session
    /// ended); sent before the listing that follows.
    Reconnected {
        now: Instant,
    },
}

// Actions live for one call and most of them are alerts: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Alert(Alert),
    /// Deliver a `Tick` at this instant (the earliest pending one wins).
    WakeAt(Instant),
    /// Worth a log line, not an alert.
    PlannedStop {
        id: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// No identity node: nothing to alert about (a planned stop, or a liveness node seen first).
    Unregistered,
    /// Registered, not yet seen live: a watchdog between its two creates, or still starting its
    /// agent. A `down`, dated `since` (when first seen so), unless live by `until`
    /// ([`STARTUP_GRACE`]).
    Starting {
        until: Instant,
        since: SystemTime,
    },
    Up,
    Down {
        since: SystemTime,
        crashes: u32,
        failed_sent: bool,
    },
    /// Its watchdog is replacing the liveness node of a still running agent (after losing its
    /// session), or is expected to (see [`SETTLE_WINDOW`]); a down, dated `at`, unless a node of
    /// the same agent process comes by `until`.
    Handover {
        until: Instant,
        vanished: Box<Incarnation>,
        at: SystemTime,
    },
    /// Live again, but not yet for `recovered_after`.
    Recovering {
        since: SystemTime,
        crashes: u32,
        failed_sent: bool,
        back_at: SystemTime,
        until: Instant,
    },
}

impl Health {
    /// When a tick must look at the agent again, if ever.
    fn until(&self) -> Option<Instant> {
        match self {
            Health::Starting { until, .. }
            | Health::Handover { until, .. }
            | Health::Recovering { until, .. } => Some(*until),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
struct Agent {
    identity: Option<Registration>,
    live: Option<Incarnation>,
    health: Health,
}

impl Agent {
    const NEW: Agent = Agent {
        identity: None,
        live: None,
        health: Health::Unregistered,
    };
}

pub struct Monitor {
    recovered_after: Duration,
    agents: HashMap<Arc<str>, Agent>,
    /// Every agent whose health has a deadline ([`Health::until`]), soonest first, so that a tick
    /// and the next wake-up look at these only, not at every agent (an event during a burst of
    /// 50,000 must not walk 100,000 agents). An entry is not removed when its agent's deadline
    /// changes: one that no longer matches is dropped when it comes up.
    deadlines: BinaryHeap<Reverse<(Instant, Arc<str>)>>,
    /// One copy of each host name, shared by the agents on that host and by both nodes of an agent.
    hosts: HashSet<Arc<str>>,
    /// `hosts` is pruned of names no agent uses once it has grown to this size.
    prune_hosts_at: usize,
    /// Until then, lost contacts are held as handovers (see [`SETTLE_WINDOW`]).
    settling_until: Option<Instant>,
}

impl Monitor {
    pub fn new(recovered_after: Duration) -> Monitor {
        Monitor {
            recovered_after,
            agents: HashMap::new(),
            deadlines: BinaryHeap::new(),
            hosts: HashSet::new(),
            prune_hosts_at: 1024,
            settling_until: None,
        }
    }

    /// Agents with an identity node: the ones that can raise alerts.
    pub fn registered(&self) -> usize {
        self.agents
            .values()
            .filter(|a| a.identity.is_some())
            .count()
    }

    pub fn health(&self, id: &str) -> Option<&Health> {
        self.agents.get(id).map(|a| &a.health)
    }

    pub fn on_event(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Snapshot {
                agents,
                outages,
                now,
                wall,
            } => {
                let stopped: Vec<String> = outages
                    .keys()
                    .filter(|id| agents.get(*id).is_none_or(|l| l.identity.is_none()))
                    .cloned()
                    .collect();
                // Known but no longer listed: reconciled with nothing, in id order with the rest.
                let mut gone: Vec<Arc<str>> = self
                    .agents
                    .keys()
                    .filter(|id| !agents.contains_key(&***id))
                    .cloned()
                    .collect();
                gone.sort();
                let mut gone = gone.into_iter().peekable();
                // Moved, not cloned: with thousands of agents a copy doubles the peak memory.
                for (id, listed) in agents {
                    while let Some(g) = gone.next_if(|g| **g < *id) {
                        self.reconcile(&g, Listed::default(), None, (now, wall), &mut out);
                    }
                    self.reconcile(&id, listed, outages.get(&id), (now, wall), &mut out);
                }
                for g in gone {
                    self.reconcile(&g, Listed::default(), None, (now, wall), &mut out);
                }
                for id in stopped {
                    // Stopped as planned while its outage was open: close it, quietly.
                    out.push(Action::PlannedStop { id });
                }
            }
            Event::Identity {
                id,
                identity,
                now,
                wall,
            } => {
                let identity = identity.map(|i| self.keep_identity(i.into()));
                self.set_identity(&id, identity, now, wall, &mut out);
                self.schedule(&id);
            }
            Event::Live {
                id,
                live,
                now,
                wall,
            } => {
                let live = live.map(|l| self.keep_live(l.into()));
                self.set_live(&id, live, now, wall, &mut out);
                self.schedule(&id);
            }
            Event::Reconnected { now } => self.settling_until = Some(now + SETTLE_WINDOW),
            Event::Tick { now, wall } => self.tick(now, wall, &mut out),
        }
        if let Some(next) = self.next_wake() {
            out.push(Action::WakeAt(next));
        }
        out
    }

    /// The agents whose deadline has come, in id order: the ones never live down, the ones live
    /// long enough recovered, the handovers that never completed down.
    fn tick(&mut self, now: Instant, wall: SystemTime, out: &mut Vec<Action>) {
        let mut due: Vec<Arc<str>> = Vec::new();
        while let Some(Reverse((at, _))) = self.deadlines.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((at, id))) = self.deadlines.pop() {
                if self.deadline_of(&id) == Some(at) {
                    due.push(id);
                }
            }
        }
        due.sort();
        due.dedup();
        let never_live: Vec<(Arc<str>, SystemTime)> = due
            .iter()
            .filter_map(|id| {
                let a = self.agents.get(id)?;
                match a.health {
                    Health::Starting { since, .. } if a.live.is_none() => Some((id.clone(), since)),
                    _ => None,
                }
            })
            .collect();
        for (id, since) in never_live {
            // Registered a while ago and never live: its watchdog cannot start it, or
            // died or lost ZooKeeper before it could say so.
            self.down(&id, None, since, out);
        }
        let recovered: Vec<Arc<str>> = due
            .iter()
            .filter(|id| {
                self.agents
                    .get(*id)
                    .is_some_and(|a| matches!(a.health, Health::Recovering { .. }))
            })
            .cloned()
            .collect();
        for id in recovered {
            self.recovered(&id, wall, out);
        }
        let lapsed: Vec<(Arc<str>, Box<Incarnation>, SystemTime)> = due
            .iter()
            .filter_map(|id| match &self.agents.get(id)?.health {
                Health::Handover { vanished, at, .. } => Some((id.clone(), vanished.clone(), *at)),
                _ => None,
            })
            .collect();
        for (id, vanished, at) in lapsed {
            // The re-registration never came: the watchdog or its host died.
            self.down(&id, Some(&*vanished), at, out);
        }
        for id in &due {
            self.schedule(id);
        }
    }

    /// The deadline `id` has now, if any.
    fn deadline_of(&self, id: &str) -> Option<Instant> {
        self.agents.get(id).and_then(|a| a.health.until())
    }

    /// Queues `id`'s deadline, if it has one now. Called after every change to an agent.
    fn schedule(&mut self, id: &str) {
        let Some((key, agent)) = self.agents.get_key_value(id) else {
            return;
        };
        if let Some(until) = agent.health.until() {
            self.deadlines.push(Reverse((until, key.clone())));
        }
        // Outdated entries are dropped as they come up; should they pile up (deadlines moved
        // again and again), the queue is rebuilt from the agents.
        if self.deadlines.len() > 2 * self.agents.len() + 1024 {
            self.deadlines = self
                .agents
                .iter()
                .filter_map(|(id, a)| Some(Reverse((a.health.until()?, id.clone()))))
                .collect();
        }
    }

    fn next_wake(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.deadlines.peek() {
            if self.deadline_of(id) == Some(*at) {
                return Some(*at);
            }
            self.deadlines.pop();
        }
        None
    }

    /// `identity` with its host name shared.
    fn keep_identity(&mut self, mut identity: Registration) -> Registration {
        identity.host = identity.host.map(|h| self.host(h));
        identity
    }

    /// `live` with its host name shared.
    fn keep_live(&mut self, mut live: Incarnation) -> Incarnation {
        live.host = live.host.map(|h| self.host(h));
        live
    }

    fn host(&mut self, host: Arc<str>) -> Arc<str> {
        match self.hosts.get(&host) {
            Some(known) => known.clone(),
            None => {
                self.hosts.insert(host.clone());
                self.prune_hosts();
                host
            }
        }
    }

    /// Forgets the host names no agent uses any more, once there are many.
    fn prune_hosts(&mut self) {
        if self.hosts.len() >= self.prune_hosts_at {
            self.hosts.retain(|h| Arc::strong_count(h) > 1);
            self.prune_hosts_at = (2 * self.hosts.len()).max(1024);
        }
    }

    fn entry(&mut self, id: &str) -> &mut Agent {
        if !self.agents.contains_key(id) {
            self.agents.insert(Arc::from(id), Agent::NEW);
        }
        self.agents.get_mut(id).expect("inserted above")
    }

    fn forget_if_empty(&mut self, id: &str) {
        if self
            .agents
            .get(id)
            .is_some_and(|a| a.identity.is_none() && a.live.is_none())
        {
            self.agents.remove(id);
        }
    }

    fn set_identity(
        &mut self,
        id: &str,
        identity: Option<Registration>,
        now: Instant,
        wall: SystemTime,
        out: &mut Vec<Action>,
    ) {
        let agent = self.entry(id);
        let had = agent.identity.is_some();
        match identity {
            None => {
                agent.identity = None;
                agent.health = Health::Unregistered;
                if had {
                    out.push(Action::PlannedStop { id: id.to_owned() });
                }
                self.forget_if_empty(id);
            }
            Some(identity) => {
                let failed = identity.state == Some(AgentState::Failed);
                agent.identity = Some(identity);
                if matches!(agent.health, Health::Unregistered) {
                    agent.health = if agent.live.is_some() {
                        Health::Up
                    } else {
                        starting(now, wall)
                    };
                }
                // Never live, and its watchdog records a crash or a failure to start (or gave
                // up): down now, with that reason; the grace is for agents still starting.
                if let Health::Starting { since, .. } = agent.health {
                    if agent.live.is_none() && self.explained_by_exit(id, None) {
                        self.down(id, None, since.min(wall), out);
                        return;
                    }
                }
                let agent = self.entry(id);
                // The watchdog gave up while the agent was already down: say so, once.
                if failed {
                    if let Health::Down {
                        failed_sent: sent @ false,
                        ..
                    } = &mut agent.health
                    {
                        *sent = true;
                        let alert = self.alert(id, AlertKind::Failed, None, wall);
                        out.push(Action::Alert(alert));
                    }
                }
            }
        }
    }

    fn set_live(
        &mut self,
        id: &str,
        live: Option<Incarnation>,
        now: Instant,
        wall: SystemTime,
        out: &mut Vec<Action>,
    ) {
        let recovered_after = self.recovered_after;
        let agent = self.entry(id);
        let old = std::mem::replace(&mut agent.live, live.clone());
        match (old, live) {
            (Some(o), Some(n)) if o.czxid == n.czxid => {}
            (old, Some(n)) => {
                if agent.identity.is_none() {
                    return;
                }
                let handover = old.as_ref().is_some_and(|o| {
                    agent
                        .identity
                        .as_ref()
                        .and_then(Registration::reregistering)
                        == Some(o.czxid)
                        || same_run(o, &n)
                });
                match agent.health.clone() {
                    Health::Handover { vanished, at, .. } if !same_process(&vanished, &n) => {
                        // Not the agent that was running: it was restarted meanwhile.
                        self.down(id, Some(&*vanished), at, out);
                        self.back_up(id, now, wall, recovered_after);
                    }
                    Health::Unregistered | Health::Starting { .. } | Health::Handover { .. } => {
                        agent.health = Health::Up
                    }
                    // The watchdog replaced the node of its still running agent.
                    Health::Up if handover => {}
                    Health::Up => {
                        // A new incarnation without us seeing the old one vanish.
                        if let Some(o) = old {
                            self.down(id, Some(&o), wall, out);
                            self.back_up(id, now, wall, recovered_after);
                        }
                    }
                    Health::Down { .. } => self.back_up(id, now, wall, recovered_after),
                    Health::Recovering {
                        since,
                        crashes,
                        failed_sent,
                        ..
                    } => {
                        let agent = self.entry(id);
                        agent.health = Health::Recovering {
                            since,
                            crashes: crashes + 1,
                            failed_sent,
                            back_at: wall,
                            until: now + recovered_after,
                        };
                    }
                }
            }
            (Some(o), None) => {
                if agent.identity.is_none() {
                    // Stopped as planned: the identity node went first.
                    self.forget_if_empty(id);
                    return;
                }
                let marked = agent
                    .identity
                    .as_ref()
                    .and_then(Registration::reregistering)
                    == Some(o.czxid);
                let settling = self.settling_until.is_some_and(|t| now < t)
                    && !self.explained_by_exit(id, Some(&o))
                    && self.replaced_by(id, &o).is_none();
                let agent = self.entry(id);
                match agent.health.clone() {
                    Health::Unregistered | Health::Starting { .. } | Health::Up
                        if marked || settling =>
                    {
                        // A watchdog re-registering its running agent: expect the new node soon.
                        agent.health = Health::Handover {
                            until: now + HANDOVER_GRACE,
                            vanished: Box::new(o),
                            at: wall,
                        };
                    }
                    Health::Unregistered | Health::Starting { .. } | Health::Up => {
                        self.down(id, Some(&o), wall, out)
                    }
                    Health::Handover { .. } => {}
                    Health::Recovering {
                        since,
                        crashes,
                        failed_sent,
                        ..
                    } => {
                        let failed = self.is_failed(id);
                        self.entry(id).health = Health::Down {
                            since,
                            crashes: crashes + 1,
                            failed_sent: failed_sent || failed,
                        };
                        if failed && !failed_sent {
                            let alert = self.alert(id, AlertKind::Failed, Some(&o), wall);
                            out.push(Action::Alert(alert));
                        }
                    }
                    Health::Down { .. } => {}
                }
            }
            (None, None) => {}
        }
    }

    /// One agent as a listing found it; queues its deadline after.
    fn reconcile(
        &mut self,
        id: &str,
        Listed { identity, live }: Listed,
        reported: Option<&OpenOutage>,
        (now, wall): (Instant, SystemTime),
        out: &mut Vec<Action>,
    ) {
        let identity = identity.map(|i| self.keep_identity(i));
        let live = live.map(|l| self.keep_live(l));
        self.reconcile_nodes(id, (identity, live), reported, (now, wall), out);
        self.schedule(id);
    }

    fn reconcile_nodes(
        &mut self,
        id: &str,
        (identity, live): (Option<Registration>, Option<Incarnation>),
        reported: Option<&OpenOutage>,
        (now, wall): (Instant, SystemTime),
        out: &mut Vec<Action>,
    ) {
        let had_identity = self.agents.get(id).is_some_and(|a| a.identity.is_some());
        match identity {
            None => {
                if had_identity {
                    self.set_identity(id, None, now, wall, out);
                }
                if live.is_some() || self.agents.contains_key(id) {
                    self.entry(id).live = live;
                }
                self.forget_if_empty(id);
            }
            Some(identity) => {
                let recovered_after = self.recovered_after;
                let agent = self.entry(id);
                let mut known_down = false;
                if let Some(open) = reported {
                    if matches!(
                        agent.health,
                        Health::Unregistered | Health::Starting { .. } | Health::Up
                    ) {
                        // Reported already (by an earlier run, or another watcher): not again.
                        agent.health = Health::Down {
                            since: open.since,
                            crashes: 1,
                            failed_sent: open.failed_sent,
                        };
                        known_down = true;
                    }
                }
                self.set_identity(id, Some(identity), now, wall, out);
                if known_down && live.is_some() {
                    self.entry(id).live = live;
                    self.back_up(id, now, wall, recovered_after);
                    return;
                }
                let agent = self.entry(id);
                if live.is_none() && agent.live.is_none() {
                    // Registered but not live, and we never saw it go (at start, or while away):
                    // `set_identity` made it `Starting` (down once the grace is over), or `down`
                    // already if its watchdog recorded why.
                } else {
                    self.set_live(id, live, now, wall, out);
                }
            }
        }
    }

    fn is_failed(&self, id: &str) -> bool {
        self.agents
            .get(id)
            .and_then(|a| a.identity.as_ref())
            .and_then(|i| i.state)
            == Some(AgentState::Failed)
    }

    /// Starts an outage and raises its one alert.
    fn down(
        &mut self,
        id: &str,
        vanished: Option<&Incarnation>,
        wall: SystemTime,
        out: &mut Vec<Action>,
    ) {
        let failed = self.is_failed(id);
        let kind = if failed {
            AlertKind::Failed
        } else {
            AlertKind::Down
        };
        let alert = self.alert(id, kind, vanished, wall);
        self.entry(id).health = Health::Down {
            since: wall,
            crashes: 1,
            failed_sent: failed,
        };
        out.push(Action::Alert(alert));
    }

    fn back_up(&mut self, id: &str, now: Instant, wall: SystemTime, recovered_after: Duration) {
        let agent = self.entry(id);
        if let Health::Down {
            since,
            crashes,
            failed_sent,
        } = agent.health
        {
            agent.health = Health::Recovering {
                since,
                crashes,
                failed_sent,
                back_at: wall,
                until: now + recovered_after,
            };
        }
    }

    fn recovered(&mut self, id: &str, wall: SystemTime, out: &mut Vec<Action>) {
        let Some(agent) = self.agents.get_mut(id) else {
            return;
        };
        let Health::Recovering {
            since,
            crashes,
            back_at,
            ..
        } = agent.health
        else {
            return;
        };
        agent.health = Health::Up;
        let outage = back_at.duration_since(since).unwrap_or_default();
        let mut alert = self.alert(id, AlertKind::Recovered, None, wall);
        alert.reason = format!(
            "live again for {} after an outage of {}",
            common::time::human(self.recovered_after),
            common::time::human(outage)
        );
        alert.crashes = crashes;
        alert.outage = Some(outage);
        out.push(Action::Alert(alert));
    }

    /// When a new watchdog marked the vanished node as the stale one of a dead watchdog it replaces:
    /// that watchdog's pid, as far as known.
    fn replaced_by(&self, id: &str, vanished: &Incarnation) -> Option<Option<u32>> {
        let identity = self.agents.get(id)?.identity.as_ref()?;
        let (czxid, watchdog_pid) = identity.replaced()?;
        (czxid == vanished.czxid).then_some(watchdog_pid)
    }

    /// The recorded exit explains this outage only if it was recorded after the vanished node was
    /// made; otherwise the watchdog went silent.
    fn explained_by_exit(&self, id: &str, vanished: Option<&Incarnation>) -> bool {
        let identity = self.agents.get(id).and_then(|a| a.identity.as_ref());
        match (identity, vanished) {
            (Some(i), Some(l)) => i.mzxid > l.czxid,
            (Some(i), None) => {
                matches!(i.state, Some(AgentState::Backoff | AgentState::Failed))
            }
            _ => false,
        }
    }

    /// A notice about `id` that is not this monitor's own decision (a degradation, told by its
    /// watchdog): the agent's host, labels and restarts as registered, with `reason`.
    pub fn notice(&self, id: &str, event: AlertKind, reason: String, wall: SystemTime) -> Alert {
        let identity = self.agents.get(id).and_then(|a| a.identity.as_ref());
        Alert {
            host: identity.and_then(|i| i.host.as_deref()).map(str::to_owned),
            restarts: identity.and_then(|i| i.restarts),
            labels: labels_of(identity),
            ..Alert::new(event, id, reason, wall)
        }
    }

    fn alert(
        &self,
        id: &str,
        event: AlertKind,
        vanished: Option<&Incarnation>,
        wall: SystemTime,
    ) -> Alert {
        let agent = self.agents.get(id);
        let identity = agent.and_then(|a| a.identity.as_ref());
        let host = identity
            .and_then(|i| i.host.as_deref())
            .or_else(|| vanished.and_then(|l| l.host.as_deref()))
            .or_else(|| {
                agent
                    .and_then(|a| a.live.as_ref())
                    .and_then(|l| l.host.as_deref())
            })
            .map(str::to_owned);
        let last_exit = identity.and_then(|i| i.last_exit.as_deref());
        let labels = labels_of(identity);
        let exit_explains = self.explained_by_exit(id, vanished);
        let replaced = vanished.and_then(|v| self.replaced_by(id, v));
        let cause = match (last_exit, exit_explains, replaced) {
            (_, _, Some(pid)) => format!(
                "its watchdog{} died, and the agent with it; a new watchdog took over",
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            ),
            (Some(exit), true, None) => match identity.and_then(|i| i.restarted_for.as_ref()) {
                // `restarted: metrics endpoint hung for 1m; killed by SIGTERM`.
                Some(cause) => format!("{}; {}", cause.describe(), exit.describe()),
                None => exit.describe(),
            },
            _ if vanished.is_none() => format!(
                "registered but not live for {}: its watchdog is gone or cannot reach ZooKeeper",
                common::time::human(STARTUP_GRACE)
            ),
            _ => LOST_CONTACT.to_owned(),
        };
        let restarts = identity.and_then(|i| i.restarts);
        let reason = match event {
            AlertKind::Failed => format!(
                "the watchdog gave up after {} restarts; last: {cause}",
                restarts.unwrap_or(0)
            ),
            _ => cause,
        };
        let crashes = match agent.map(|a| &a.health) {
            Some(Health::Down { crashes, .. } | Health::Recovering { crashes, .. }) => *crashes,
            _ => 1,
        };
        // What every watcher saw the same way: the node that vanished or came back, else the
        // identity write that told. Zero: created and gone before it could be read.
        let zxid = match event {
            AlertKind::Recovered => agent.and_then(|a| a.live.as_ref()).map(|l| l.czxid),
            _ => vanished.map(|l| l.czxid).or(identity.map(|i| i.mzxid)),
        }
        .filter(|z| *z > 0);
        Alert {
            host,
            restarts,
            crashes,
            last_exit: if exit_explains {
                last_exit.cloned()
            } else {
                None
            },
            zxid,
            labels,
            ..Alert::new(event, id, reason, wall)
        }
    }
}

/// The labels of a registration as an alert carries them.
fn labels_of(identity: Option<&Registration>) -> BTreeMap<String, String> {
    identity
        .and_then(|i| i.labels.as_deref())
        .map(|pairs| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn starting(now: Instant, wall: SystemTime) -> Health {
    Health::Starting {
        until: now + STARTUP_GRACE,
        since: wall,
    }
}

/// The new node names the agent process the old one did (or does not say): the watchdog
/// re-registered, the agent ran on.
fn same_process(old: &Incarnation, new: &Incarnation) -> bool {
    match (old.agent_pid, new.agent_pid) {
        (Some(a), Some(b)) => a == b && old.host == new.host,
        _ => true,
    }
}

/// The new node describes the very run of the agent the old one did (same host, pid and start
/// time): a re-registration seen only by re-listing, never a restart.
fn same_run(old: &Incarnation, new: &Incarnation) -> bool {
    old.agent_pid.is_some()
        && old.since.is_some()
        && old.agent_pid == new.agent_pid
        && old.since == new.since
        && old.host == new.host
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::ExitRecord;

    const RECOVER: Duration = Duration::from_secs(30);

    struct T {
        m: Monitor,
        t0: Instant,
        w0: SystemTime,
    }

    fn identity(
        mzxid: i64,
        state: AgentState,
        restarts: u64,
        exit: Option<(Option<i32>, Option<&str>)>,
    ) -> Identity {
        Identity {
            view: IdentityView {
                host: Some("web1".into()),
                restarts: Some(restarts),
                state: Some(state),
                last_exit: exit.map(|(code, sig)| ExitRecord {
                    code,
                    signal: sig.map(String::from),
                    at: "2026-11-21T00:00:00Z".into(),
                    error: None,
                }),
                ..IdentityView::default()
            },
            mzxid,
        }
    }

    fn live(czxid: i64) -> Live {
        Live {
            view: LivenessView {
                host: Some("web1".into()),
                ..LivenessView::default()
            },
            czxid,
        }
    }

    impl T {
        fn new() -> T {
            T {
                m: Monitor::new(RECOVER),
                t0: Instant::now(),
                w0: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            }
        }
        fn at(&self, s: u64) -> (Instant, SystemTime) {
            (
                self.t0 + Duration::from_secs(s),
                self.w0 + Duration::from_secs(s),
            )
        }
        fn snapshot(
            &mut self,
            s: u64,
            ids: &[(&str, Identity)],
            lives: &[(&str, Live)],
        ) -> Vec<Alert> {
            let (now, wall) = self.at(s);
            alerts(self.m.on_event(Event::Snapshot {
                agents: listing(ids, lives),
                outages: BTreeMap::new(),
                now,
                wall,
            }))
        }
        fn identity(&mut self, s: u64, id: &str, i: Option<Identity>) -> Vec<Alert> {
            let (now, wall) = self.at(s);
            alerts(self.m.on_event(Event::Identity {
                id: id.into(),
                identity: i,
                now,
                wall,
            }))
        }
        fn live(&mut self, s: u64, id: &str, l: Option<Live>) -> Vec<Alert> {
            let (now, wall) = self.at(s);
            alerts(self.m.on_event(Event::Live {
                id: id.into(),
                live: l,
                now,
                wall,
            }))
        }
        fn tick(&mut self, s: u64) -> Vec<Alert> {
            let (now, wall) = self.at(s);
            alerts(self.m.on_event(Event::Tick { now, wall }))
        }
        /// One agent `a`, up: identity written at zxid 10, liveness created at 11.
        fn with_agent_up() -> T {
            let mut t = T::new();
            assert_eq!(
                t.snapshot(
                    0,
                    &[("a", identity(10, AgentState::Running, 0, None))],
                    &[("a", live(11))]
                ),
                vec![]
            );
            t
        }
    }

    /// Two watchers see the same node events at different times (and with different clocks);
    /// the notices they decide carry the same ids, built on ZooKeeper's transaction ids, so that
    /// a new leader sending again what its predecessor sent sends the same id.
    #[test]
    fn every_watcher_gives_a_transition_the_same_notice_id() {
        let ids = |skew: u64| -> Vec<String> {
            let mut t = T::with_agent_up();
            t.w0 += Duration::from_millis(skew);
            let mut sent = t.identity(
                5,
                "a",
                Some(identity(12, AgentState::Backoff, 1, Some((Some(3), None)))),
            );
            sent.extend(t.live(5, "a", None));
            sent.extend(t.live(6, "a", Some(live(13))));
            sent.extend(t.tick(6 + RECOVER.as_secs()));
            sent.iter().map(Alert::notice_id).collect()
        };
        let (one, other) = (ids(0), ids(7));
        assert_eq!(
            one,
            ["a/down/0xb", "a/recovered/0xd"],
            "the vanished node's creation, then the new one's"
        );
        assert_eq!(one, other);
    }

    /// A listing of these identity and liveness nodes.
    fn listing(ids: &[(&str, Identity)], lives: &[(&str, Live)]) -> BTreeMap<String, Listed> {
        let mut agents: BTreeMap<String, Listed> = BTreeMap::new();
        for (id, identity) in ids {
            agents.entry(id.to_string()).or_default().identity = Some(identity.clone().into());
        }
        for (id, live) in lives {
            agents.entry(id.to_string()).or_default().live = Some(live.clone().into());
        }
        agents
    }

    fn alerts(actions: Vec<Action>) -> Vec<Alert> {
        actions
            .into_iter()
            .filter_map(|a| match a {
                Action::Alert(a) => Some(a),
                _ => None,
            })
            .collect()
    }

    fn kinds(alerts: &[Alert]) -> Vec<(AlertKind, String)> {
        alerts.iter().map(|a| (a.event, a.reason.clone())).collect()
    }

    #[test]
    fn crash_gives_one_down_with_the_exit_then_recovered() {
        let mut t = T::with_agent_up();
        assert_eq!(
            t.identity(
                1,
                "a",
                Some(identity(20, AgentState::Backoff, 1, Some((Some(3), None))))
            ),
            vec![]
        );
        let down = t.live(1, "a", None);
        assert_eq!(
            kinds(&down),
            [(AlertKind::Down, "exited with code 3".into())]
        );
        assert_eq!(down[0].restarts, Some(1));
        assert_eq!(down[0].host.as_deref(), Some("web1"));
        assert_eq!(
            t.live(2, "a", Some(live(30))),
            vec![],
            "back up: nothing until recovered_after"
        );
        assert_eq!(t.tick(31), vec![], "29 s live is not yet recovered");
        let rec = t.tick(32);
        assert_eq!(rec.len(), 1, "{rec:?}");
        assert_eq!(rec[0].event, AlertKind::Recovered);
        assert_eq!(rec[0].outage, Some(Duration::from_secs(1)));
        assert_eq!(t.tick(100), vec![], "recovered is sent once");
    }

    #[test]
    fn vanished_node_without_a_recorded_exit_is_lost_contact() {
        let mut t = T::with_agent_up();
        assert_eq!(
            kinds(&t.live(5, "a", None)),
            [(AlertKind::Down, LOST_CONTACT.into())]
        );
    }

    #[test]
    fn an_exit_older_than_the_vanished_node_does_not_explain_it() {
        let mut t = T::new();
        // The identity still holds the exit of an earlier incarnation (written at 10, node made at 11).
        t.snapshot(
            0,
            &[(
                "a",
                identity(10, AgentState::Running, 1, Some((Some(1), None))),
            )],
            &[("a", live(11))],
        );
        let down = t.live(5, "a", None);
        assert_eq!(kinds(&down), [(AlertKind::Down, LOST_CONTACT.into())]);
        assert_eq!(down[0].last_exit, None);
    }

    #[test]
    fn signal_is_named() {
        let mut t = T::with_agent_up();
        t.identity(
            1,
            "a",
            Some(identity(
                20,
                AgentState::Backoff,
                1,
                Some((None, Some("SIGKILL"))),
            )),
        );
        assert_eq!(
            kinds(&t.live(1, "a", None)),
            [(AlertKind::Down, "killed by SIGKILL".into())]
        );
    }

    #[test]
    fn planned_stop_is_silent() {
        let mut t = T::with_agent_up();
        let (now, wall) = t.at(1);
        let acts = t.m.on_event(Event::Identity {
            id: "a".into(),
            identity: None,
            now,
            wall,
        });
        assert_eq!(acts, vec![Action::PlannedStop { id: "a".into() }]);
        assert_eq!(t.live(1, "a", None), vec![]);
        assert_eq!(t.m.health("a"), None, "a stopped agent is forgotten");
        assert_eq!(t.tick(100), vec![]);
    }

    #[test]
    fn flapping_is_one_outage() {
        let mut t = T::with_agent_up();
        assert_eq!(t.live(1, "a", None).len(), 1);
        for (i, s) in [2u64, 4, 6].iter().enumerate() {
            assert_eq!(t.live(*s, "a", Some(live(100 + i as i64))), vec![]);
            assert_eq!(
                t.live(s + 1, "a", None),
                vec![],
                "a crash within recovered_after is counted, not sent"
            );
        }
        assert_eq!(t.live(8, "a", Some(live(200))), vec![]);
        let rec = t.tick(38);
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].crashes, 4);
        assert_eq!(rec[0].outage, Some(Duration::from_secs(7)));
    }

    #[test]
    fn restart_missed_between_two_events_counts_as_an_outage() {
        // Liveness created again (new czxid) without a deletion seen: e.g. events lost.
        let mut t = T::with_agent_up();
        t.identity(
            1,
            "a",
            Some(identity(20, AgentState::Running, 1, Some((Some(3), None)))),
        );
        assert_eq!(
            kinds(&t.live(1, "a", Some(live(21)))),
            [(AlertKind::Down, "exited with code 3".into())]
        );
        assert_eq!(t.tick(31).len(), 1, "then recovered");
    }

    #[test]
    fn watcher_started_after_the_agent_died_alerts_once() {
        let mut t = T::new();
        let id = identity(20, AgentState::Backoff, 4, Some((Some(3), None)));
        let first = t.snapshot(0, &[("a", id.clone())], &[]);
        assert_eq!(
            kinds(&first),
            [(AlertKind::Down, "exited with code 3".into())]
        );
        assert_eq!(
            t.snapshot(5, &[("a", id)], &[]),
            vec![],
            "a reconnection does not repeat it"
        );
    }

    #[test]
    fn reconnect_sees_what_happened_while_away() {
        let mut t = T::with_agent_up();
        // Away: the agent crashed and came back (new czxid); another one died for good.
        let b = identity(12, AgentState::Running, 0, None);
        assert_eq!(
            t.snapshot(
                1,
                &[
                    ("a", identity(10, AgentState::Running, 0, None)),
                    ("b", b.clone())
                ],
                &[("a", live(11)), ("b", live(13))]
            ),
            vec![]
        );
        let seen = t.snapshot(
            2,
            &[
                (
                    "a",
                    identity(40, AgentState::Running, 1, Some((Some(3), None))),
                ),
                ("b", b),
            ],
            &[("a", live(41))],
        );
        assert_eq!(
            kinds(&seen),
            [
                (AlertKind::Down, "exited with code 3".into()),
                (AlertKind::Down, LOST_CONTACT.into())
            ]
        );
        assert_eq!(seen[1].agent, "b");
        assert_eq!(
            t.tick(32)
                .iter()
                .map(|a| a.agent.as_str())
                .collect::<Vec<_>>(),
            ["a"]
        );
    }

    #[test]
    fn a_new_registration_between_its_two_creates_is_not_down() {
        let mut t = T::with_agent_up();
        assert_eq!(
            t.identity(1, "n", Some(identity(50, AgentState::Starting, 0, None))),
            vec![]
        );
        assert_eq!(
            t.snapshot(
                2,
                &[
                    ("a", identity(10, AgentState::Running, 0, None)),
                    ("n", identity(50, AgentState::Starting, 0, None))
                ],
                &[("a", live(11))]
            ),
            vec![]
        );
        assert_eq!(t.live(2, "n", Some(live(51))), vec![]);
        assert_eq!(t.m.health("n"), Some(&Health::Up));
    }

    #[test]
    fn giving_up_is_failed_once() {
        let mut t = T::with_agent_up();
        t.identity(
            1,
            "a",
            Some(identity(20, AgentState::Backoff, 1, Some((Some(1), None)))),
        );
        assert_eq!(t.live(1, "a", None).len(), 1);
        t.live(2, "a", Some(live(30)));
        t.identity(
            3,
            "a",
            Some(identity(31, AgentState::Failed, 1, Some((Some(1), None)))),
        );
        let failed = t.live(3, "a", None);
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].event, AlertKind::Failed);
        assert!(
            failed[0]
                .reason
                .contains("gave up after 1 restarts; last: exited with code 1"),
            "{}",
            failed[0].reason
        );
        assert_eq!(
            t.identity(4, "a", Some(identity(32, AgentState::Failed, 1, None))),
            vec![]
        );
    }

    #[test]
    fn failed_written_while_down_is_sent_once() {
        let mut t = T::with_agent_up();
        t.identity(
            1,
            "a",
            Some(identity(20, AgentState::Backoff, 1, Some((Some(1), None)))),
        );
        t.live(1, "a", None);
        let failed = t.identity(
            2,
            "a",
            Some(identity(21, AgentState::Failed, 1, Some((Some(1), None)))),
        );
        assert_eq!(
            failed.iter().map(|a| a.event).collect::<Vec<_>>(),
            [AlertKind::Failed]
        );
        assert_eq!(
            t.identity(3, "a", Some(identity(22, AgentState::Failed, 1, None))),
            vec![]
        );
    }

    #[test]
    fn first_failure_straight_to_failed() {
        let mut t = T::with_agent_up();
        t.identity(
            1,
            "a",
            Some(identity(20, AgentState::Failed, 0, Some((Some(1), None)))),
        );
        assert_eq!(
            t.live(1, "a", None)
                .iter()
                .map(|a| a.event)
                .collect::<Vec<_>>(),
            [AlertKind::Failed]
        );
    }

    #[test]
    fn garbage_nodes_still_alert_by_name() {
        let mut t = T::new();
        let junk = Identity {
            view: IdentityView::default(),
            mzxid: 10,
        };
        let junk_live = Live {
            view: LivenessView::default(),
            czxid: 11,
        };
        t.snapshot(0, &[("g", junk)], &[("g", junk_live)]);
        let down = t.live(1, "g", None);
        assert_eq!(kinds(&down), [(AlertKind::Down, LOST_CONTACT.into())]);
        assert_eq!(down[0].agent, "g");
        assert_eq!(down[0].host, None);
    }

    #[test]
    fn liveness_without_identity_never_alerts() {
        let mut t = T::new();
        t.snapshot(0, &[], &[("x", live(5))]);
        assert_eq!(t.live(1, "x", None), vec![]);
        assert_eq!(t.m.registered(), 0);
    }

    #[test]
    fn a_reported_outage_is_not_reported_again_and_still_recovers() {
        let mut t = T::new();
        let (now, wall) = t.at(0);
        let since = wall - Duration::from_secs(60);
        let seed = |live: Option<Live>| Event::Snapshot {
            agents: listing(
                &[(
                    "a",
                    identity(20, AgentState::Backoff, 1, Some((Some(3), None))),
                )],
                &live.into_iter().map(|l| ("a", l)).collect::<Vec<_>>(),
            ),
            outages: BTreeMap::from([(
                "a".to_owned(),
                OpenOutage {
                    since,
                    failed_sent: false,
                },
            )]),
            now,
            wall,
        };
        // Still down: nothing to say.
        assert_eq!(alerts(t.m.on_event(seed(None))), vec![]);
        // Back meanwhile: recovered once it has been live long enough, with the whole outage.
        let mut t = T::new();
        assert_eq!(alerts(t.m.on_event(seed(Some(live(30))))), vec![]);
        let rec = t.tick(30);
        assert_eq!(rec.len(), 1, "{rec:?}");
        assert_eq!(rec[0].event, AlertKind::Recovered);
        assert_eq!(rec[0].outage, Some(Duration::from_secs(60)));
    }

    #[test]
    fn an_open_record_of_a_stopped_agent_is_closed_quietly() {
        let mut t = T::new();
        let (now, wall) = t.at(0);
        let acts = t.m.on_event(Event::Snapshot {
            agents: BTreeMap::new(),
            outages: BTreeMap::from([(
                "gone".to_owned(),
                OpenOutage {
                    since: wall,
                    failed_sent: false,
                },
            )]),
            now,
            wall,
        });
        assert_eq!(acts, vec![Action::PlannedStop { id: "gone".into() }]);
    }

    fn reregistering(mzxid: i64, czxid: i64) -> Identity {
        let mut i = identity(mzxid, AgentState::Running, 0, None);
        i.view.reregistering = Some(czxid);
        i
    }

    #[test]
    fn a_watchdog_re_registering_its_running_agent_is_no_outage() {
        let mut t = T::with_agent_up();
        // New session: identity marked with the node it replaces (czxid 11), then delete, create.
        assert_eq!(t.identity(1, "a", Some(reregistering(20, 11))), vec![]);
        assert_eq!(
            t.live(1, "a", None),
            vec![],
            "the marked node's vanishing is a handover"
        );
        assert_eq!(t.live(1, "a", Some(live(21))), vec![]);
        assert_eq!(t.m.health("a"), Some(&Health::Up));
        assert_eq!(t.tick(60), vec![], "nothing later either");
        // Seen only by listing (events missed): same.
        let mut t = T::with_agent_up();
        assert_eq!(
            t.snapshot(1, &[("a", reregistering(20, 11))], &[("a", live(21))]),
            vec![]
        );
    }

    #[test]
    fn a_handover_that_never_completes_is_a_down_after_the_grace() {
        let mut t = T::with_agent_up();
        t.identity(1, "a", Some(reregistering(20, 11)));
        assert_eq!(t.live(1, "a", None), vec![]);
        assert_eq!(t.tick(10), vec![], "within the grace");
        let down = t.tick(11);
        assert_eq!(kinds(&down), [(AlertKind::Down, LOST_CONTACT.into())]);
    }

    #[test]
    fn a_mark_for_another_node_does_not_hide_a_death() {
        let mut t = T::with_agent_up();
        t.identity(1, "a", Some(reregistering(20, 5)));
        assert_eq!(t.live(1, "a", None).len(), 1);
    }

    fn run_of(czxid: i64, agent_pid: u32, since: &str) -> Live {
        let mut l = live(czxid);
        l.view.agent_pid = Some(agent_pid);
        l.view.since = Some(since.into());
        l
    }

    impl T {
        /// `a` up as agent process 7 (liveness czxid 11), then the watcher cut off and back at `s`.
        fn settling_with_run_up(s: u64) -> T {
            let mut t = T::new();
            t.snapshot(
                0,
                &[("a", identity(10, AgentState::Running, 0, None))],
                &[("a", run_of(11, 7, "t0"))],
            );
            let (now, _) = t.at(s);
            assert_eq!(alerts(t.m.on_event(Event::Reconnected { now })), vec![]);
            t
        }
    }

    /// After the watcher was cut off (ZooKeeper may have been away), a lost contact is first taken
    /// for a re-registration racing its old session's expiry; everything else is as ever.
    #[test]
    fn settling_after_a_reconnection_table() {
        struct Case {
            what: &'static str,
            /// Identity rewritten (an exit recorded) before the node vanishes.
            exit_first: bool,
            vanish_at: u64,
            /// The replacement node: (at, agent pid, since).
            back: Option<(u64, u32, &'static str)>,
            expect: &'static [AlertKind],
            /// When the down is dated, seconds after t0.
            down_at: Option<u64>,
        }
        let cases = [
            Case {
                what: "re-registered run of the same agent",
                exit_first: false,
                vanish_at: 2,
                back: Some((4, 7, "t0")),
                expect: &[],
                down_at: None,
            },
            Case {
                what: "never re-registered: a down after the grace, dated at the vanishing",
                exit_first: false,
                vanish_at: 2,
                back: None,
                expect: &[AlertKind::Down],
                down_at: Some(2),
            },
            Case {
                what: "another agent process came back: it was restarted meanwhile",
                exit_first: false,
                vanish_at: 2,
                back: Some((4, 8, "t1")),
                expect: &[AlertKind::Down, AlertKind::Recovered],
                down_at: Some(2),
            },
            Case {
                what: "a recorded exit is a crash: down at once",
                exit_first: true,
                vanish_at: 2,
                back: None,
                expect: &[AlertKind::Down],
                down_at: Some(2),
            },
            Case {
                what: "after the settling window: down at once",
                exit_first: false,
                vanish_at: 1 + SETTLE_WINDOW.as_secs(),
                back: None,
                expect: &[AlertKind::Down],
                down_at: Some(1 + SETTLE_WINDOW.as_secs()),
            },
        ];
        for c in cases {
            let mut t = T::settling_with_run_up(1);
            let mut seen = Vec::new();
            if c.exit_first {
                let crashed = identity(20, AgentState::Backoff, 1, Some((Some(3), None)));
                seen.extend(t.identity(c.vanish_at, "a", Some(crashed)));
            }
            seen.extend(t.live(c.vanish_at, "a", None));
            let held = seen.is_empty();
            if let Some((at, pid, since)) = c.back {
                seen.extend(t.live(at, "a", Some(run_of(30, pid, since))));
            }
            let end = c.vanish_at + HANDOVER_GRACE.as_secs() + RECOVER.as_secs() + 1;
            for s in c.vanish_at..=end {
                seen.extend(t.tick(s));
            }
            let got: Vec<AlertKind> = seen.iter().map(|a| a.event).collect();
            assert_eq!(got, c.expect, "{}: {seen:?}", c.what);
            let down = seen.iter().find(|a| a.event == AlertKind::Down);
            assert_eq!(
                down.map(|a| a.at),
                c.down_at.map(|s| t.at(s).1),
                "{}: the down's time",
                c.what
            );
            if c.what.starts_with("never") {
                assert!(held, "held during the grace");
                assert_eq!(down.map(|a| a.reason.as_str()), Some(LOST_CONTACT));
            }
        }
    }

    #[test]
    fn a_re_listing_that_finds_the_same_run_re_registered_is_no_outage() {
        // No mark seen (it came and went while the watcher was away), no settling: the node's
        // content says the same agent process still runs.
        let mut t = T::new();
        t.snapshot(
            0,
            &[("a", identity(10, AgentState::Running, 0, None))],
            &[("a", run_of(11, 7, "t0"))],
        );
        let same = t.snapshot(
            5,
            &[("a", identity(10, AgentState::Running, 0, None))],
            &[("a", run_of(40, 7, "t0"))],
        );
        assert_eq!(same, vec![]);
        let restarted = t.snapshot(
            6,
            &[("a", identity(10, AgentState::Running, 0, None))],
            &[("a", run_of(50, 9, "t6"))],
        );
        assert_eq!(kinds(&restarted), [(AlertKind::Down, LOST_CONTACT.into())]);
    }

    #[test]
    fn wake_is_asked_for_the_earliest_recovery() {
        let mut t = T::with_agent_up();
        t.live(1, "a", None);
        let (now, wall) = t.at(2);
        let acts = t.m.on_event(Event::Live {
            id: "a".into(),
            live: Some(live(40)),
            now,
            wall,
        });
        assert_eq!(acts, vec![Action::WakeAt(now + RECOVER)]);
    }

    /// An identity node whose state says what the watchdog did, with an exit (or a failure to
    /// start) recorded.
    fn identity_failing(mzxid: i64, state: AgentState, restarts: u64) -> Identity {
        let mut i = identity(mzxid, state, restarts, Some((Some(127), None)));
        if let Some(exit) = i.view.last_exit.as_mut() {
            exit.error =
                Some("cannot start /nonexistent/flume-ng: No such file or directory".into());
        }
        i
    }

    const GRACE: u64 = STARTUP_GRACE.as_secs();

    #[test]
    fn registered_but_never_live_table() {
        // (what the watcher sees, in order, and the alerts expected, in order)
        type Step = (u64, &'static str);
        struct Case {
            name: &'static str,
            steps: Vec<Step>,
            want: Vec<(AlertKind, &'static str)>,
        }
        let cases = [
            Case {
                name: "a watcher starting while a watchdog registers: live within the grace",
                steps: vec![(0, "snapshot starting"), (0, "live"), (GRACE + 1, "tick")],
                want: vec![],
            },
            Case {
                name: "the same, its identity seen running before the liveness node",
                steps: vec![(0, "snapshot running"), (1, "live"), (GRACE + 1, "tick")],
                want: vec![],
            },
            Case {
                name: "registered, never live: down once the grace is over, not before",
                steps: vec![(0, "event starting"), (GRACE - 1, "tick"), (GRACE, "tick"), (GRACE + 30, "tick")],
                want: vec![(AlertKind::Down, "registered but not live for 10s")],
            },
            Case {
                name: "a host that died while the watcher was away: down after the grace",
                steps: vec![(0, "snapshot running"), (GRACE, "tick")],
                want: vec![(AlertKind::Down, "registered but not live for 10s")],
            },
            Case {
                name: "cannot start: down at once with the reason, then failed when it gives up",
                steps: vec![(0, "event starting"), (0, "event cannot start"), (1, "event cannot start"), (2, "event failed"), (GRACE, "tick")],
                want: vec![
                    (AlertKind::Down, "cannot start /nonexistent/flume-ng: No such file or directory"),
                    (AlertKind::Failed, "the watchdog gave up after 2 restarts; last: cannot start /nonexistent/flume-ng"),
                ],
            },
            Case {
                name: "gave up before the watcher saw it start: failed once",
                steps: vec![(0, "snapshot failed"), (GRACE, "tick")],
                want: vec![(AlertKind::Failed, "the watchdog gave up after 2 restarts; last: cannot start")],
            },
            Case {
                name: "stopped as planned while starting: nothing",
                steps: vec![(0, "event starting"), (1, "event gone"), (GRACE, "tick")],
                want: vec![],
            },
        ];
        for case in cases {
            let mut t = T::new();
            let mut got = Vec::new();
            for (s, step) in &case.steps {
                let s = *s;
                got.extend(match *step {
                    "snapshot starting" => t.snapshot(
                        s,
                        &[("n", identity(50, AgentState::Starting, 0, None))],
                        &[],
                    ),
                    "snapshot running" => {
                        t.snapshot(s, &[("n", identity(50, AgentState::Running, 0, None))], &[])
                    }
                    "snapshot failed" => t.snapshot(
                        s,
                        &[("n", identity_failing(50, AgentState::Failed, 2))],
                        &[],
                    ),
                    "event starting" => {
                        t.identity(s, "n", Some(identity(50, AgentState::Starting, 0, None)))
                    }
                    "event cannot start" => t.identity(
                        s,
                        "n",
                        Some(identity_failing(51 + s as i64, AgentState::Backoff, s + 1)),
                    ),
                    "event failed" => {
                        t.identity(s, "n", Some(identity_failing(60, AgentState::Failed, 2)))
                    }
                    "event gone" => t.identity(s, "n", None),
                    "live" => t.live(s, "n", Some(live(70))),
                    "tick" => t.tick(s),
                    other => panic!("unknown step {other}"),
                });
            }
            assert_eq!(
                got.len(),
                case.want.len(),
                "{}: {:?}",
                case.name,
                kinds(&got)
            );
            for (alert, (kind, reason)) in got.iter().zip(&case.want) {
                assert_eq!(alert.event, *kind, "{}: {:?}", case.name, kinds(&got));
                assert!(
                    alert.reason.starts_with(reason),
                    "{}: {:?}",
                    case.name,
                    alert.reason
                );
                assert_eq!(alert.agent, "n");
            }
        }
    }

    #[test]
    fn never_live_is_dated_when_first_seen_and_wakes_the_loop() {
        let mut t = T::new();
        let (now, wall) = t.at(3);
        let acts = t.m.on_event(Event::Identity {
            id: "n".into(),
            identity: Some(identity(50, AgentState::Starting, 0, None)),
            now,
            wall,
        });
        assert_eq!(acts, vec![Action::WakeAt(now + STARTUP_GRACE)]);
        let down = t.tick(3 + GRACE);
        assert_eq!(down.len(), 1, "{down:?}");
        assert_eq!(down[0].at, wall, "the outage began when it was registered");
        assert_eq!(down[0].last_exit, None);
        // It comes up after all: recovered, with the outage counted from the registration.
        assert_eq!(t.live(20, "n", Some(live(70))), vec![]);
        let rec = t.tick(20 + RECOVER.as_secs());
        assert_eq!(rec.len(), 1, "{rec:?}");
        assert_eq!(rec[0].outage, Some(Duration::from_secs(17)));
    }

    #[test]
    fn a_node_replaced_by_the_successor_of_a_dead_watchdog_says_so() {
        use common::records::Replaced;
        let mut t = T::with_agent_up();
        // The successor registers: identity rewritten with the mark naming node 11, then deletes it.
        let mut marked = identity(20, AgentState::Starting, 0, None);
        marked.view.replaced = Some(Replaced {
            czxid: 11,
            watchdog_pid: Some(31843),
        });
        assert_eq!(t.identity(1, "a", Some(marked.clone())), vec![]);
        let down = t.live(1, "a", None);
        assert_eq!(
            kinds(&down),
            [(
                AlertKind::Down,
                "its watchdog (pid 31843) died, and the agent with it; a new watchdog took over"
                    .into()
            )]
        );
        assert_eq!(t.live(1, "a", Some(live(21))), vec![]);
        assert_eq!(t.tick(31).len(), 1, "then recovered");

        // Even right after the watcher was cut off (when lost contacts wait for a re-registration):
        // a replaced node is a death, said at once.
        let mut t = T::with_agent_up();
        let (now, _) = t.at(1);
        t.m.on_event(Event::Reconnected { now });
        t.identity(1, "a", Some(marked));
        assert_eq!(t.live(1, "a", None).len(), 1);
        // A mark naming another node explains nothing.
        let mut t = T::with_agent_up();
        let mut other = identity(20, AgentState::Starting, 0, None);
        other.view.replaced = Some(Replaced {
            czxid: 5,
            watchdog_pid: Some(1),
        });
        t.identity(1, "a", Some(other));
        assert_eq!(
            kinds(&t.live(1, "a", None)),
            [(AlertKind::Down, LOST_CONTACT.into())]
        );
    }
}
