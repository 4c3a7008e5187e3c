//! The ZooKeeper edge of the watchdog: keeps the identity and liveness nodes as the supervisor
//! wants them, through connection loss, session expiry and ZooKeeper being away altogether.
//!
//! It is a task that owns the session and is driven by [`Command`]s describing the *desired*
//! state. What to do next, and in which order, is decided in [`machine`] (pure, tested by
//! tables); this loop only turns commands, session states and ZooKeeper's replies into its
//! events and carries out its steps. Whatever fails is retried when the session allows; nothing
//! here ever waits on the agent or makes the agent wait.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};
use zookeeper_client as zk;

use common::config::ZkConfig;
use common::records::LivenessView;
use common::session::{self, Backoff};
use common::{
    AgentId, AgentState, ExitRecord, IdentityRecord, Layout, LivenessRecord, RestartCause,
};

use crate::child::watchdog_alive;

pub mod machine;

pub use machine::Liveness;
use machine::{
    classify, Event, FailureLog, Found, Holder, IdentityFields, Published, Registration, Stale,
    Step,
};

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
        restarted_for: Option<RestartCause>,
    },
    /// The health node's data (`None`: no node). Written when nothing else waits, retried until
    /// it is, and written again in every new session (the node is ephemeral).
    Health(Option<Vec<u8>>),
    Live(Liveness),
    /// Planned stop: delete the identity node; answered once it is gone.
    DeleteIdentity(oneshot::Sender<()>),
    /// Finish what was asked (the last state, the liveness node's delete), close the session;
    /// answered when done.
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
        health_path: who.layout.health_path(&who.id),
        health: HealthSlot::default(),
        who,
        rx,
        rx_open: true,
        notices: ntx,
        registered_at: common::time::now(),
        reg: Registration::new(),
        delete_waiters: Vec::new(),
        close_waiter: None,
        failures: FailureLog::default(),
        owner: None,
    };
    tokio::spawn(task.run());
    (Handle { tx }, nrx)
}

type WatchFuture = Pin<Box<dyn Future<Output = zk::WatchedEvent> + Send>>;

struct Task {
    who: Registrant,
    identity_path: String,
    live_path: String,
    health_path: String,
    health: HealthSlot,
    rx: mpsc::UnboundedReceiver<Command>,
    /// False once the watchdog dropped its handle: `recv` would answer at once, forever.
    rx_open: bool,
    notices: mpsc::UnboundedSender<Notice>,
    registered_at: String,
    reg: Registration,
    delete_waiters: Vec<oneshot::Sender<()>>,
    close_waiter: Option<oneshot::Sender<()>>,
    failures: FailureLog,
    /// The liveness node's stat, read along with the identity write that precedes its delete
    /// (see `Registration::deletes_live_after_write`); good for the very next step only.
    owner: Option<Result<Option<zk::Stat>, zk::Error>>,
}

/// The health node as the health check wants it. Kept beside the registration machine rather
/// than in it: it is no part of the crash/stop contract, so it is written only when the machine
/// has nothing to do and never delays or reorders the identity and liveness writes.
#[derive(Default)]
struct HealthSlot {
    want: Option<Vec<u8>>,
    /// `want` is not yet in ZooKeeper as asked (in this session).
    dirty: bool,
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
        let event = match cmd {
            Some(Command::Publish {
                state,
                restarts,
                last_exit,
                restarted_for,
            }) => Event::Publish(Published {
                state,
                restarts,
                last_exit,
                restarted_for,
            }),
            Some(Command::Health(data)) => {
                self.health.dirty = data.is_some() || self.health.want.is_some();
                self.health.want = data;
                return;
            }
            Some(Command::Live(live)) => Event::Live(live),
            Some(Command::DeleteIdentity(done)) => {
                self.delete_waiters.push(done);
                Event::DeleteIdentity
            }
            Some(Command::Close(done)) => {
                self.close_waiter = Some(done);
                Event::Close
            }
            // The watchdog is gone; behave as if asked to close.
            None => {
                self.rx_open = false;
                Event::Close
            }
        };
        self.feed(event);
    }

    /// Hands an event to the machine, and its outcome to whoever waits for it.
    fn feed(&mut self, event: Event) {
        if let Some(notice) = self.reg.on_event(event) {
            match &notice {
                Notice::Clear => {}
                Notice::Conflict {
                    host, watchdog_pid, ..
                } => {
                    // The run loop decides what a conflict means and says so, once.
                    debug!(id = %self.who.id, %host, watchdog_pid, "agent id is already live elsewhere");
                }
                Notice::IdentityGone => {
                    info!(id = %self.who.id, "identity node deleted: a planned stop was requested")
                }
            }
            let _ = self.notices.send(notice);
        }
        if self.reg.identity_deleted() {
            for done in self.delete_waiters.drain(..) {
                let _ = done.send(());
            }
        }
    }

    fn finish(&mut self) {
        if let Some(done) = self.close_waiter.take() {
            let _ = done.send(());
        }
    }

    /// Waits for `fut` while still taking commands; `None` once asked to close.
    async fn until_closing<F: Future>(&mut self, fut: F) -> Option<F::Output> {
        tokio::pin!(fut);
        loop {
            if self.reg.closing() {
                return None;
            }
            tokio::select! {
                r = &mut fut => return Some(r),
                cmd = self.rx.recv(), if self.rx_open => self.on_command(cmd),
            }
        }
    }

    async fn run(mut self) {
        // Short cap: `connect` itself already waits about a session timeout when nobody answers,
        // and a quick return after an outage lets the handover mark beat the old session's expiry.
        let mut retry = Backoff::new(Duration::from_millis(200), Duration::from_secs(1));
        // Without a session the machine asks only to connect, or to end.
        while self.reg.next_step() == Step::Connect {
            let zk_cfg = self.who.zk.clone();
            match self.until_closing(session::connect(&zk_cfg)).await {
                None => {}
                Some(Ok(client)) => {
                    retry.reset();
                    info!(session = %client.session_id(), timeout = %common::time::human(client.session_timeout()), "zookeeper session established");
                    self.feed(Event::SessionOpened);
                    // The node was ephemeral to the old session: write it again.
                    self.health.dirty = self.health.want.is_some();
                    self.serve(client).await;
                    if self.reg.next_step() == Step::Connect {
                        warn!("zookeeper session lost; opening a new one, the agent keeps running");
                    }
                }
                Some(Err(e)) => {
                    let delay = retry.next_delay();
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "zookeeper unreachable; the agent keeps running");
                    self.until_closing(tokio::time::sleep(delay)).await;
                }
            }
        }
        // Closed, or asked to close without a session: nothing of ours to clean up now.
        self.finish();
    }

    /// Carries out the machine's steps in one session, until it ends or is closed.
    async fn serve(&mut self, client: zk::Client) {
        let mut states = client.state_watcher();
        let mut watch: Option<WatchFuture> = None;
        let mut failures = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut retry_at: Option<Instant> = None;
        loop {
            if retry_at.is_none() {
                // A write: the machine's next step, or the health node when nothing else waits.
                let written = match self.reg.next_step() {
                    Step::Wait if self.health.dirty && self.reg.link() == machine::Link::Up => {
                        Some(self.write_health(&client).await.map(|()| None))
                    }
                    Step::Wait => None,
                    Step::Connect | Step::Done => return,
                    Step::Close => {
                        session::close(client, Duration::from_secs(2)).await;
                        return self.feed(Event::SessionClosed);
                    }
                    step => {
                        let prefetch = matches!(step, Step::WriteIdentity { .. })
                            && self.reg.deletes_live_after_write();
                        if step != Step::DeleteLive {
                            self.owner = None;
                        }
                        let result = self.execute(&client, step, &mut watch, prefetch).await;
                        Some(result.map(Some))
                    }
                };
                if let Some(written) = written {
                    match written {
                        Ok(event) => {
                            failures.reset();
                            if self.failures.succeeded() {
                                info!("the agent's nodes are written again");
                            }
                            if let Some(event) = event {
                                self.feed(event);
                            }
                        }
                        Err(e) if is_terminal(&e) => return self.feed(Event::SessionEnded),
                        Err(e) => {
                            let delay = failures.next_delay();
                            self.failed(&e, delay);
                            retry_at = Some(Instant::now() + delay);
                        }
                    }
                    continue;
                }
            }
            tokio::select! {
                cmd = self.rx.recv(), if self.rx_open => self.on_command(cmd),
                state = states.changed() => match state {
                    zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                        info!("zookeeper connection restored");
                        retry_at = None;
                        self.feed(Event::ConnectionBack);
                    }
                    zk::SessionState::Disconnected => {
                        warn!("zookeeper connection lost; the agent keeps running");
                        self.feed(Event::ConnectionLost);
                    }
                    zk::SessionState::Expired | zk::SessionState::Closed | zk::SessionState::AuthFailed => {
                        return self.feed(Event::SessionEnded);
                    }
                },
                event = async { watch.as_mut().expect("guarded").await }, if watch.is_some() => {
                    watch = None;
                    let deleted = event.event_type == zk::EventType::NodeDeleted;
                    self.feed(Event::WatchFired { deleted });
                }
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                    retry_at = None;
                }
            }
        }
    }

    /// Says a failed step: once per kind of failure and every 30 s while it lasts.
    fn failed(&mut self, e: &zk::Error, delay: Duration) {
        let due =
            self.failures
                .failed(&e.to_string(), Instant::now().into_std(), FAILURE_LOG_EVERY);
        if due && *e == zk::Error::NoAuth {
            error!(retry_in = %common::time::human(delay), "{}; retrying, the agent keeps running", session::not_authorized_message(&self.who.zk, &self.identity_path));
        } else if due {
            warn!(error = %e, retry_in = %common::time::human(delay), "cannot write the agent's nodes in zookeeper; retrying, the agent keeps running");
        } else {
            debug!(error = %e, retry_in = %common::time::human(delay), "zookeeper write failed; will retry");
        }
    }

    /// One step, as one ZooKeeper request (or a read and the request it decides); what came of
    /// it as the machine's event.
    async fn execute(
        &mut self,
        client: &zk::Client,
        step: Step,
        watch: &mut Option<WatchFuture>,
        prefetch_owner: bool,
    ) -> Result<Event, zk::Error> {
        match step {
            Step::CheckHolder => {
                session::ensure_dir(client, &self.who.zk, &self.who.layout.agents_dir()).await?;
                session::ensure_dir(client, &self.who.zk, &self.who.layout.live_dir()).await?;
                Ok(Event::HolderChecked(self.inspect_live(client, None).await?))
            }
            Step::DeleteIdentity => match client.delete(&self.identity_path, None).await {
                Ok(()) | Err(zk::Error::NoNode) => {
                    info!(id = %self.who.id, "identity node deleted for a planned stop");
                    Ok(Event::IdentityDeleted)
                }
                Err(e) => Err(e),
            },
            Step::WriteIdentity { create, fields } => {
                let data = serde_json::to_vec(&self.identity_record(fields)).unwrap_or_default();
                if !create {
                    // The request goes out when the future is made, before the write's.
                    let owner = prefetch_owner.then(|| client.check_stat(&self.live_path));
                    let written = client.set_data(&self.identity_path, &data, None).await;
                    if let Some(owner) = owner {
                        self.owner = Some(owner.await);
                    }
                    return match written {
                        Ok(_) => Ok(Event::IdentityWritten),
                        // It existed: someone deleted it, which is how a stop is asked for.
                        Err(zk::Error::NoNode) => Ok(Event::IdentityMissing),
                        Err(e) => Err(e),
                    };
                }
                let opts = zk::CreateMode::Persistent.with_acls(session::acls(&self.who.zk));
                match client.create(&self.identity_path, &data, &opts).await {
                    Ok(_) => {}
                    // An earlier run's, or our own create retried after a connection loss.
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
                info!(id = %self.who.id, path = %self.identity_path, "identity node registered");
                Ok(Event::IdentityWritten)
            }
            Step::WatchIdentity => {
                let (stat, watcher) = client.check_and_watch_stat(&self.identity_path).await?;
                if stat.is_none() {
                    return Ok(Event::IdentityMissing);
                }
                *watch = Some(Box::pin(watcher.changed()));
                Ok(Event::Watching)
            }
            Step::DeleteLive => {
                // Only this session's node: another one in its place is not ours to delete.
                let owner = match self.owner.take() {
                    Some(read) => read?,
                    None => client.check_stat(&self.live_path).await?,
                };
                if let Some(stat) = owner {
                    if stat.ephemeral_owner == client.session_id().0 {
                        match client.delete(&self.live_path, Some(stat.version)).await {
                            Ok(()) | Err(zk::Error::NoNode) => {}
                            Err(e) => return Err(e),
                        }
                        info!(id = %self.who.id, "liveness node deleted");
                    }
                }
                Ok(Event::LiveDeleted)
            }
            Step::DeleteStale { version, why } => {
                if why == Stale::EarlierStart {
                    debug!(path = %self.live_path, "deleting the liveness node of an earlier start of the agent");
                } else {
                    warn!(path = %self.live_path, "replacing a stale liveness node {why}");
                }
                match client.delete(&self.live_path, Some(version)).await {
                    // Gone or changed meanwhile: the next create looks again.
                    Ok(()) | Err(zk::Error::NoNode) | Err(zk::Error::BadVersion) => {
                        Ok(Event::StaleDeleted)
                    }
                    Err(e) => Err(e),
                }
            }
            Step::CreateLive(want) => {
                let data = self.live_record(&want);
                let opts = zk::CreateMode::Ephemeral.with_acls(session::acls(&self.who.zk));
                let czxid = match client.create(&self.live_path, &data, &opts).await {
                    Ok((stat, _)) => stat.czxid,
                    Err(zk::Error::NodeExists) => {
                        let holder = self.inspect_live(client, Some(&data)).await?;
                        match holder {
                            // Our own create, retried after a connection loss.
                            Holder::Ours {
                                same: true, czxid, ..
                            } => czxid,
                            holder => {
                                return Ok(Event::LiveInTheWay {
                                    incarnation: want.incarnation,
                                    holder,
                                })
                            }
                        }
                    }
                    Err(zk::Error::NoNode) => {
                        session::ensure_dir(client, &self.who.zk, &self.who.layout.live_dir())
                            .await?;
                        return Err(zk::Error::NoNode);
                    }
                    Err(e) => return Err(e),
                };
                info!(id = %self.who.id, agent_pid = want.agent_pid, "liveness node created");
                Ok(Event::LiveCreated {
                    incarnation: want.incarnation,
                    czxid,
                })
            }
            // `serve` takes these itself and never passes them here.
            Step::Connect | Step::Wait | Step::Close | Step::Done => {
                unreachable!("not a request: {step:?}")
            }
        }
    }

    /// Makes the health node say what is wanted: this session's ephemeral node, created, updated
    /// or deleted. A node of an earlier session (ours before it expired) is replaced.
    async fn write_health(&mut self, client: &zk::Client) -> Result<(), zk::Error> {
        let Some(data) = self.health.want.clone() else {
            match client.check_stat(&self.health_path).await? {
                Some(stat) if stat.ephemeral_owner == client.session_id().0 => {
                    match client.delete(&self.health_path, Some(stat.version)).await {
                        Ok(()) | Err(zk::Error::NoNode) | Err(zk::Error::BadVersion) => {}
                        Err(e) => return Err(e),
                    }
                }
                _ => {}
            }
            self.health.dirty = false;
            debug!(path = %self.health_path, "health node withdrawn");
            return Ok(());
        };
        let opts = zk::CreateMode::Ephemeral.with_acls(session::acls(&self.who.zk));
        match client.create(&self.health_path, &data, &opts).await {
            Ok(_) => {}
            Err(zk::Error::NodeExists) => match client.check_stat(&self.health_path).await? {
                Some(stat) if stat.ephemeral_owner == client.session_id().0 => {
                    client
                        .set_data(&self.health_path, &data, Some(stat.version))
                        .await?;
                }
                // Not ours: an earlier session's, left until it expires. Ours replaces it.
                Some(stat) => {
                    match client.delete(&self.health_path, Some(stat.version)).await {
                        Ok(()) | Err(zk::Error::NoNode) => {}
                        Err(e) => return Err(e),
                    }
                    client.create(&self.health_path, &data, &opts).await?;
                }
                None => return Err(zk::Error::NoNode),
            },
            Err(zk::Error::NoNode) => {
                session::ensure_dir(client, &self.who.zk, &self.who.layout.health_dir()).await?;
                return Err(zk::Error::NoNode);
            }
            Err(e) => return Err(e),
        }
        self.health.dirty = false;
        debug!(path = %self.health_path, bytes = data.len(), "health node written");
        Ok(())
    }

    fn identity_record(&self, fields: IdentityFields) -> IdentityRecord {
        IdentityRecord {
            id: self.who.id.to_string(),
            host: self.who.host.clone(),
            command: self.who.command.clone(),
            labels: self.who.labels.clone(),
            registered_at: self.registered_at.clone(),
            watchdog_version: env!("CARGO_PKG_VERSION").to_owned(),
            restarts: fields.published.restarts,
            last_exit: fields.published.last_exit,
            state: fields.published.state,
            reregistering: fields.reregistering,
            replaced: fields.replaced,
            restarted_for: fields.published.restarted_for,
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

    /// Reads the liveness node and says whose it is; `wanted` is what a create would write.
    async fn inspect_live(
        &self,
        client: &zk::Client,
        wanted: Option<&[u8]>,
    ) -> Result<Holder, zk::Error> {
        let (data, stat) = match client.get_data(&self.live_path).await {
            Err(zk::Error::NoNode) => return Ok(Holder::Free),
            Err(e) => return Err(e),
            Ok(found) => found,
        };
        let session = client.session_id().0;
        let (host, watchdog_pid) = if stat.ephemeral_owner == session || stat.ephemeral_owner == 0 {
            (None, None)
        } else {
            let (view, garbled) = LivenessView::parse(&data);
            if let Some(g) = garbled {
                warn!(path = %self.live_path, problem = %g, "liveness node held by another session has unusable data");
            }
            (view.host, view.watchdog_pid)
        };
        let found = Found {
            ephemeral_owner: stat.ephemeral_owner,
            version: stat.version,
            czxid: stat.czxid,
            host,
            watchdog_pid,
            same: wanted == Some(data.as_slice()),
        };
        Ok(classify(
            &found,
            session,
            &self.who.host,
            self.who.watchdog_pid,
            watchdog_alive,
        ))
    }
}
