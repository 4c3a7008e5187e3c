//! The ZooKeeper edge of the watchdog: keeps the identity and liveness nodes as the supervisor
//! wants them, through connection loss, session expiry and ZooKeeper being away altogether.
//!
//! It is a task that owns the session and is driven by [`Command`]s describing the *desired*
//! state. Whatever fails is retried when the session allows; nothing here ever waits on the agent
//! or makes the agent wait. Order is kept: identity writes go before liveness changes, and every
//! new agent incarnation gets a *new* liveness node (delete, then create), so the watcher sees
//! each crash even when the restart is quicker than ZooKeeper.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};
use zookeeper_client as zk;

use common::config::ZkConfig;
use common::records::LivenessView;
use common::records::Replaced;
use common::session::{self, Backoff};
use common::{AgentId, AgentState, ExitRecord, IdentityRecord, Layout, LivenessRecord};

use crate::child::watchdog_alive;

pub mod machine;

/// Who we are, written into the nodes.
#[derive(Clone, Debug)]
pub struct Registrant {
    pub zk: ZkConfig,
    pub layout: Layout,
    pub id: AgentId,
    pub host: String,
    pub command: Vec<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub watchdog_pid: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveDesired {
    /// Counts the agent's starts in this watchdog; a new one needs a new node.
    pub incarnation: u64,
    pub agent_pid: u32,
    pub since: SystemTime,
}

pub enum Command {
    Publish {
        state: AgentState,
        restarts: u64,
        last_exit: Option<ExitRecord>,
    },
    Live(Option<LiveDesired>),
    /// Planned stop: delete the identity node; answered once it is gone.
    DeleteIdentity(oneshot::Sender<()>),
    /// Delete our liveness node if we can, close the session; answered when done.
    Close(oneshot::Sender<()>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The first session is up and no other watchdog holds this id.
    Clear,
    /// Another watchdog holds this id's liveness node.
    Conflict {
        host: String,
        watchdog_pid: Option<u32>,
        session: i64,
    },
    /// The identity node vanished: someone ran `flume-watchdog stop`.
    IdentityGone,
}

pub struct Handle {
    tx: mpsc::UnboundedSender<Command>,
}

impl Handle {
    pub fn send(&self, cmd: Command) {
        if self.tx.send(cmd).is_err() {
            warn!("registration task has ended; command dropped");
        }
    }
}

pub fn start(who: Registrant) -> (Handle, mpsc::UnboundedReceiver<Notice>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (ntx, nrx) = mpsc::unbounded_channel();
    let task = Task {
        identity_path: who.layout.agent_path(&who.id),
        live_path: who.layout.live_path(&who.id),
        who,
        rx,
        notices: ntx,
        registered_at: common::time::now(),
        state: AgentState::Starting,
        restarts: 0,
        last_exit: None,
        identity_dirty: true,
        live: None,
        checked_holder: false,
        identity_written: false,
        identity_gone: false,
        delete_waiters: Vec::new(),
        delete_requested: false,
        identity_deleted: false,
        live_applied: None,
        conflicted: false,
        live_czxid: None,
        handover: None,
        replaced: None,
        failure_logged: None,
        close: None,
    };
    tokio::spawn(task.run());
    (Handle { tx }, nrx)
}

type WatchFuture = Pin<Box<dyn Future<Output = zk::WatchedEvent> + Send>>;

enum Holder {
    Free,
    Ours {
        data: Vec<u8>,
        version: i32,
        czxid: i64,
    },
    /// Left by an earlier watchdog of this id on this host that is gone, or not ephemeral at all.
    Stale {
        version: i32,
        why: String,
        /// Set when another watchdog (not an earlier session of this one) made it and died: its
        /// agent died with it, which the watcher is to be told (see `Replaced`).
        dead: Option<Replaced>,
    },
    Other {
        host: String,
        watchdog_pid: Option<u32>,
        session: i64,
    },
}

enum Ended {
    SessionLost,
    Closed,
}

struct Task {
    who: Registrant,
    identity_path: String,
    live_path: String,
    rx: mpsc::UnboundedReceiver<Command>,
    notices: mpsc::UnboundedSender<Notice>,
    registered_at: String,
    // Desired state.
    state: AgentState,
    restarts: u64,
    last_exit: Option<ExitRecord>,
    identity_dirty: bool,
    live: Option<LiveDesired>,
    // Progress.
    checked_holder: bool,
    identity_written: bool,
    identity_gone: bool,
    delete_waiters: Vec<oneshot::Sender<()>>,
    delete_requested: bool,
    identity_deleted: bool,
    /// The incarnation whose liveness node exists under the current session.
    live_applied: Option<u64>,
    conflicted: bool,
    /// Incarnation and czxid of the liveness node this watchdog created last.
    live_czxid: Option<(u64, i64)>,
    /// czxid of our own liveness node that the latest new session replaced (see `reregistering`).
    handover: Option<i64>,
    /// The stale liveness node of a dead earlier watchdog that this one replaces (see `replaced`).
    replaced: Option<Replaced>,
    /// The last write failure said at warn level, and when.
    failure_logged: Option<(String, Instant)>,
    close: Option<oneshot::Sender<()>>,
}

/// A write failure that lasts is said again this often.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(30);

fn is_terminal(e: &zk::Error) -> bool {
    matches!(
        e,
        zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::AuthFailed
    )
}

impl Task {
    fn on_command(&mut self, cmd: Option<Command>) {
        match cmd {
            Some(Command::Publish {
                state,
                restarts,
                last_exit,
            }) => {
                self.state = state;
                self.restarts = restarts;
                self.last_exit = last_exit;
                self.identity_dirty = true;
            }
            Some(Command::Live(live)) => self.live = live,
            Some(Command::DeleteIdentity(done)) => {
                self.delete_requested = true;
                if self.identity_deleted {
                    let _ = done.send(());
                } else {
                    self.delete_waiters.push(done);
                }
            }
            Some(Command::Close(done)) => {
                self.live = None;
                self.close = Some(done);
            }
            None => {
                // The watchdog is gone; behave as if asked to close.
                self.live = None;
                let (tx, _) = oneshot::channel();
                self.close = Some(tx);
            }
        }
    }

    fn finish_close(&mut self) {
        if let Some(done) = self.close.take() {
            let _ = done.send(());
        }
    }

    /// Waits for `fut` while still taking commands; `None` once asked to close.
    async fn until_closed<F: Future>(&mut self, fut: F) -> Option<F::Output> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                r = &mut fut => return Some(r),
                cmd = self.rx.recv() => {
                    self.on_command(cmd);
                    if self.close.is_some() {
                        return None;
                    }
                }
            }
        }
    }

    async fn run(mut self) {
        // Short cap: `connect` itself already waits about a session timeout when nobody answers,
        // and a quick return after an outage lets the handover mark beat the old session's expiry.
        let mut retry = Backoff::new(Duration::from_millis(200), Duration::from_secs(1));
        loop {
            if self.close.is_some() {
                // No session: there is nothing of ours in ZooKeeper to clean up now.
                return self.finish_close();
            }
            let zk_cfg = self.who.zk.clone();
            let client = match self.until_closed(session::connect(&zk_cfg)).await {
                None => return self.finish_close(),
                Some(Ok(client)) => client,
                Some(Err(e)) => {
                    let delay = retry.next_delay();
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "zookeeper unreachable; the agent keeps running");
                    self.until_closed(tokio::time::sleep(delay)).await;
                    continue;
                }
            };
            retry.reset();
            info!(session = %client.session_id(), timeout = %common::time::human(client.session_timeout()), "zookeeper session established");
            // Ephemerals of an earlier session are gone (or will be): start over with this one.
            // The agent kept running while the session was lost: mark the identity node with the
            // liveness node about to be replaced, so the watcher reads it as a handover.
            if let Some((incarnation, czxid)) = self.live_czxid.take() {
                if self.live.as_ref().map(|l| l.incarnation) == Some(incarnation) {
                    self.handover = Some(czxid);
                }
            }
            self.live_applied = None;
            self.identity_dirty = true;
            match self.serve(client).await {
                Ended::Closed => return,
                Ended::SessionLost => {
                    warn!("zookeeper session lost; opening a new one, the agent keeps running")
                }
            }
        }
    }

    fn pending(&self, watch_armed: bool) -> bool {
        if self.conflicted {
            return self.close.is_some();
        }
        let live_want = self.live.as_ref().map(|l| l.incarnation);
        !self.checked_holder
            || (self.delete_requested && !self.identity_deleted)
            || (self.identity_dirty && !self.identity_deleted && !self.identity_gone)
            || (self.identity_written
                && !self.identity_deleted
                && !self.identity_gone
                && !watch_armed)
            || (self.identity_written && live_want != self.live_applied && self.may_change_live())
            || self.close.is_some()
    }

    /// A new liveness node is never created once a stop began; an old one is always deleted.
    fn may_change_live(&self) -> bool {
        self.live.is_none()
            || !(self.identity_deleted || self.identity_gone || self.delete_requested)
    }

    /// The liveness node this session made is not the one wanted (the agent exited, or a stop
    /// began): it must go.
    fn live_to_delete(&self) -> bool {
        self.identity_written
            && self.may_change_live()
            && self.live_applied.is_some()
            && self.live.as_ref().map(|l| l.incarnation) != self.live_applied
    }

    async fn serve(&mut self, client: zk::Client) -> Ended {
        let mut states = client.state_watcher();
        let mut watch: Option<WatchFuture> = None;
        let mut failures = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut retry_at: Option<Instant> = None;
        let mut connected = true;
        loop {
            if connected && retry_at.is_none() && self.pending(watch.is_some()) {
                match self.apply(&client, &mut watch).await {
                    Ok(()) => {
                        failures.reset();
                        if self.failure_logged.take().is_some() {
                            info!("the agent's nodes are written again");
                        }
                        if self.close.is_some() {
                            session::close(client, Duration::from_secs(2)).await;
                            self.finish_close();
                            return Ended::Closed;
                        }
                    }
                    Err(e) if is_terminal(&e) => return Ended::SessionLost,
                    Err(e) => {
                        let delay = failures.next_delay();
                        // Said once per kind of failure and every 30 s while it lasts: a failure
                        // that persists (a missing permission) must be seen, a retry loop must
                        // not flood the log.
                        let what = e.to_string();
                        let due = self.failure_logged.as_ref().is_none_or(|(last, at)| {
                            *last != what || at.elapsed() >= FAILURE_LOG_EVERY
                        });
                        if due && e == zk::Error::NoAuth {
                            error!(retry_in = %common::time::human(delay), "{}; retrying, the agent keeps running", session::not_authorized_message(&self.who.zk, &self.identity_path));
                        } else if due {
                            warn!(error = %e, retry_in = %common::time::human(delay), "cannot write the agent's nodes in zookeeper; retrying, the agent keeps running");
                        } else {
                            debug!(error = %e, retry_in = %common::time::human(delay), "zookeeper write failed; will retry");
                        }
                        if due {
                            self.failure_logged = Some((what, Instant::now()));
                        }
                        retry_at = Some(Instant::now() + delay);
                    }
                }
                continue;
            }
            tokio::select! {
                cmd = self.rx.recv() => self.on_command(cmd),
                state = states.changed() => match state {
                    zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                        info!("zookeeper connection restored");
                        connected = true;
                        retry_at = None;
                    }
                    zk::SessionState::Disconnected => {
                        warn!("zookeeper connection lost; the agent keeps running");
                        connected = false;
                    }
                    zk::SessionState::Expired | zk::SessionState::Closed | zk::SessionState::AuthFailed => {
                        return Ended::SessionLost;
                    }
                },
                event = async { watch.as_mut().expect("guarded").await }, if watch.is_some() => {
                    watch = None;
                    match event.event_type {
                        zk::EventType::NodeDeleted if !self.delete_requested => self.on_identity_gone(),
                        zk::EventType::Session => {}
                        _ => {}
                    }
                }
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                    retry_at = None;
                }
            }
        }
    }

    fn on_identity_gone(&mut self) {
        if !self.identity_gone {
            self.identity_gone = true;
            info!(id = %self.who.id, "identity node deleted: a planned stop was requested");
            let _ = self.notices.send(Notice::IdentityGone);
        }
    }

    fn identity_record(&self) -> IdentityRecord {
        IdentityRecord {
            id: self.who.id.to_string(),
            host: self.who.host.clone(),
            command: self.who.command.clone(),
            labels: self.who.labels.clone(),
            registered_at: self.registered_at.clone(),
            watchdog_version: env!("CARGO_PKG_VERSION").to_owned(),
            restarts: self.restarts,
            last_exit: self.last_exit.clone(),
            state: self.state,
            reregistering: self.handover,
            replaced: self.replaced.clone(),
        }
    }

    fn live_record(&self, d: &LiveDesired) -> Vec<u8> {
        let rec = LivenessRecord {
            host: self.who.host.clone(),
            watchdog_pid: self.who.watchdog_pid,
            agent_pid: Some(d.agent_pid),
            since: common::time::format(d.since),
        };
        serde_json::to_vec(&rec).unwrap_or_default()
    }

    async fn apply(
        &mut self,
        client: &zk::Client,
        watch: &mut Option<WatchFuture>,
    ) -> Result<(), zk::Error> {
        if !self.checked_holder {
            session::ensure_dir(client, &self.who.zk, &self.who.layout.agents_dir()).await?;
            session::ensure_dir(client, &self.who.zk, &self.who.layout.live_dir()).await?;
            if let Holder::Other {
                host,
                watchdog_pid,
                session,
            } = self.inspect_live(client).await?
            {
                self.on_conflict(host, watchdog_pid, session);
                return Ok(());
            }
            self.checked_holder = true;
            let _ = self.notices.send(Notice::Clear);
        }
        if self.conflicted {
            return Ok(());
        }
        if self.delete_requested && !self.identity_deleted {
            match client.delete(&self.identity_path, None).await {
                Ok(()) | Err(zk::Error::NoNode) => {
                    self.identity_deleted = true;
                    info!(id = %self.who.id, "identity node deleted for a planned stop");
                    for done in self.delete_waiters.drain(..) {
                        let _ = done.send(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        // After a crash the exit is recorded, then the liveness node goes (that order tells the
        // watcher why). The look at the liveness node's owner is sent before the write, so the
        // delete follows the write by one round trip: crash → alert is on this path.
        let live_path = self.live_path.clone();
        let mut owner_check = self.live_to_delete().then(|| client.check_stat(&live_path));
        if self.identity_dirty && !self.identity_deleted && !self.identity_gone {
            self.write_identity(client).await?;
        }
        if self.identity_written && !self.identity_deleted && !self.identity_gone && watch.is_none()
        {
            let (stat, watcher) = client.check_and_watch_stat(&self.identity_path).await?;
            if stat.is_none() {
                self.on_identity_gone();
            } else {
                *watch = Some(Box::pin(watcher.changed()));
            }
        }
        if self.identity_written && self.may_change_live() {
            let want = self.live.clone();
            if self.live_to_delete() {
                let stat = match owner_check.take() {
                    Some(check) => check.await?,
                    None => client.check_stat(&self.live_path).await?,
                };
                self.delete_live(client, stat).await?;
            }
            if let Some(want) = want {
                if self.live_applied.is_none() && !self.identity_gone && !self.identity_deleted {
                    self.create_live(client, &want).await?;
                }
            }
        }
        Ok(())
    }

    fn on_conflict(&mut self, host: String, watchdog_pid: Option<u32>, session: i64) {
        self.conflicted = true;
        // The run loop decides what a conflict means and says so, once.
        debug!(id = %self.who.id, %host, watchdog_pid, "agent id is already live elsewhere");
        let _ = self.notices.send(Notice::Conflict {
            host,
            watchdog_pid,
            session,
        });
    }

    async fn write_identity(&mut self, client: &zk::Client) -> Result<(), zk::Error> {
        let data = serde_json::to_vec(&self.identity_record()).unwrap_or_default();
        if !self.identity_written {
            let opts = zk::CreateMode::Persistent.with_acls(session::acls(&self.who.zk));
            match client.create(&self.identity_path, &data, &opts).await {
                Ok(_) => {}
                Err(zk::Error::NodeExists) => {
                    client.set_data(&self.identity_path, &data, None).await?;
                }
                Err(zk::Error::NoNode) => {
                    session::ensure_dir(client, &self.who.zk, &self.who.layout.agents_dir())
                        .await?;
                    return Err(zk::Error::NoNode);
                }
                Err(e) => return Err(e),
            }
            self.identity_written = true;
            info!(id = %self.who.id, path = %self.identity_path, "identity node registered");
        } else {
            match client.set_data(&self.identity_path, &data, None).await {
                Ok(_) => {}
                // It existed before: someone deleted it, which is how a stop is asked for.
                Err(zk::Error::NoNode) => self.on_identity_gone(),
                Err(e) => return Err(e),
            }
        }
        self.identity_dirty = false;
        Ok(())
    }

    async fn inspect_live(&self, client: &zk::Client) -> Result<Holder, zk::Error> {
        let (data, stat) = match client.get_data(&self.live_path).await {
            Err(zk::Error::NoNode) => return Ok(Holder::Free),
            Err(e) => return Err(e),
            Ok(found) => found,
        };
        if stat.ephemeral_owner == client.session_id().0 {
            return Ok(Holder::Ours {
                data,
                version: stat.version,
                czxid: stat.czxid,
            });
        }
        if stat.ephemeral_owner == 0 {
            return Ok(Holder::Stale {
                version: stat.version,
                why: "a persistent node is in the liveness node's place".into(),
                dead: None,
            });
        }
        let (view, garbled) = LivenessView::parse(&data);
        if let Some(g) = garbled {
            warn!(path = %self.live_path, problem = %g, "liveness node held by another session has unusable data");
        }
        if view.host.as_deref() == Some(self.who.host.as_str()) {
            if let Some(pid) = view.watchdog_pid {
                if pid == self.who.watchdog_pid {
                    return Ok(Holder::Stale {
                        version: stat.version,
                        why: "left by an earlier session of this watchdog".to_owned(),
                        dead: None,
                    });
                }
                if !watchdog_alive(pid) {
                    return Ok(Holder::Stale {
                        version: stat.version,
                        why: format!(
                            "left by an earlier watchdog (pid {pid}) on this host that is gone"
                        ),
                        dead: Some(Replaced {
                            czxid: stat.czxid,
                            watchdog_pid: Some(pid),
                        }),
                    });
                }
            }
        }
        Ok(Holder::Other {
            host: view.host.unwrap_or_else(|| "an unknown host".into()),
            watchdog_pid: view.watchdog_pid,
            session: stat.ephemeral_owner,
        })
    }

    async fn create_live(
        &mut self,
        client: &zk::Client,
        want: &LiveDesired,
    ) -> Result<(), zk::Error> {
        let data = self.live_record(want);
        let opts = zk::CreateMode::Ephemeral.with_acls(session::acls(&self.who.zk));
        match client.create(&self.live_path, &data, &opts).await {
            Ok((stat, _)) => self.live_czxid = Some((want.incarnation, stat.czxid)),
            Err(zk::Error::NodeExists) => match self.inspect_live(client).await? {
                // Our own create, retried after a connection loss.
                Holder::Ours {
                    data: existing,
                    czxid,
                    ..
                } if existing == data => {
                    self.live_czxid = Some((want.incarnation, czxid));
                }
                // Ours but of an earlier incarnation: it must vanish so the watcher sees the crash.
                Holder::Ours { version, .. } => {
                    client.delete(&self.live_path, Some(version)).await?;
                    return Err(zk::Error::NodeExists);
                }
                Holder::Stale { version, why, dead } => {
                    if let Some(dead) = dead.filter(|d| self.replaced.as_ref() != Some(d)) {
                        // Say on the identity node what is about to happen before the node goes:
                        // its vanishing alerts, and the watcher then names the dead watchdog.
                        self.replaced = Some(dead);
                        self.write_identity(client).await?;
                    }
                    warn!(path = %self.live_path, "replacing a stale liveness node {why}");
                    client.delete(&self.live_path, Some(version)).await?;
                    return Err(zk::Error::NodeExists);
                }
                Holder::Other {
                    host,
                    watchdog_pid,
                    session,
                } => {
                    self.on_conflict(host, watchdog_pid, session);
                    return Ok(());
                }
                Holder::Free => return Err(zk::Error::NodeExists),
            },
            Err(zk::Error::NoNode) => {
                session::ensure_dir(client, &self.who.zk, &self.who.layout.live_dir()).await?;
                return Err(zk::Error::NoNode);
            }
            Err(e) => return Err(e),
        }
        // The handover mark stays: it names a node that can never come back, and a watcher that
        // catches up by listing later still needs it to read the new czxid as no outage.
        self.live_applied = Some(want.incarnation);
        info!(id = %self.who.id, agent_pid = want.agent_pid, "liveness node created");
        Ok(())
    }

    /// Deletes the liveness node if `stat` (read just before) shows it is this session's.
    async fn delete_live(
        &mut self,
        client: &zk::Client,
        stat: Option<zk::Stat>,
    ) -> Result<(), zk::Error> {
        match stat {
            Some(stat) if stat.ephemeral_owner == client.session_id().0 => {
                match client.delete(&self.live_path, Some(stat.version)).await {
                    Ok(()) | Err(zk::Error::NoNode) => {}
                    Err(e) => return Err(e),
                }
                info!(id = %self.who.id, "liveness node deleted");
            }
            // Gone already, or not ours to delete.
            _ => {}
        }
        self.live_applied = None;
        Ok(())
    }
}
