//! The watcher's ZooKeeper edge: one persistent recursive watch on the root turns node events into
//! [`outage::Event`]s; every (re)connection lists both folders and reconciles.
//!
//! Why one persistent recursive watch rather than child watches re-armed per event: it reports
//! each deletion and creation by name, in order, with no window between a fire and a re-arm, and
//! identity data changes (the exit record) arrive on the same stream just before the liveness
//! deletion they explain. Its two weaknesses are handled here: nothing arrives while disconnected
//! (so reconnection re-lists), and zookeeper-client 0.11.2 does not re-register persistent watches
//! after a reconnect (so a new watch is added on every `SyncConnected` before re-listing).
//!
//! Data flows one way through it: node events become [`crate::outage::Event`]s; the monitor's alerts
//! become [`crate::ledger::Event`]s; the ledger's actions (hand alerts to the channels, write
//! records, note receipts) are carried out here, through [`Notifier`] and [`Outbox`], and their
//! results fed back to the ledger. A leader's alert reaches the channels in the same turn of the
//! loop as the node event that caused it; its record is written by the flush that follows. The
//! election is [`Leadership`]'s. Nothing is decided here.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zookeeper_client as zk;

use common::config::ZkConfig;
use common::layout::NodeKind;
use common::records::{HealthRecord, IdentityView, LivenessView};
use common::session::{self, Backoff};
use common::systemd::Systemd;
use common::{AgentId, Layout};

use crate::alert::{Alert, AlertKind, HEALTH_RECORD_SUFFIX};
use crate::blind::Blindness;
use crate::degradation::{self, Degradations};
use crate::leadership::Leadership;
use crate::ledger::{self, Failure, Ledger, Seen, To};
use crate::notify::{Notifier, Receipt};
use crate::outage::{
    Action, Event, Health as OutageHealth, Identity, Incarnation, Listed, Live, Monitor,
    Registration,
};
use crate::outbox::Outbox;
use crate::record::OutageRecord;
use crate::silence::{Silence, Silences};

#[derive(Clone, Debug)]
pub struct WatchConfig {
    pub zk: ZkConfig,
    pub layout: Layout,
    pub recovered_after: Duration,
    /// Without a working session for this long, the watcher says it is blind.
    pub blind_after: Duration,
    /// Which channels each alert goes to.
    pub router: crate::routing::Router,
    /// Where the watcher shows how it sees and what it decided (the `--listen` listener reads it).
    pub board: crate::http::Board,
}

/// Runs until cancelled. ZooKeeper trouble is logged and retried, never returned.
pub async fn watch(
    cfg: WatchConfig,
    notifier: Arc<Notifier>,
    systemd: Arc<Systemd>,
    cancel: CancellationToken,
) {
    let receipts = match notifier.take_receipts() {
        Some(r) => r,
        None => {
            warn!("delivery receipts already taken; outage records will not be updated");
            mpsc::unbounded_channel().1
        }
    };
    let cfg_blind_after = cfg.blind_after;
    let mut w = Watcher {
        outbox: Outbox::new(&cfg.layout, cfg.zk.clone()),
        ledger: Ledger::new(notifier.channel_names(), cfg.router.clone()),
        cfg,
        notifier,
        monitor: None,
        ready: false,
        next_tick: None,
        warned: HashSet::new(),
        receipts,
        flush_again: None,
        cut_off: false,
        escalate_at: None,
        degradations: Degradations::new(),
        silences: BTreeMap::new(),
        warned_silences: HashSet::new(),
        sd_next: systemd.watchdog_every().map(|every| Instant::now() + every),
        systemd,
        blind: Blindness::new(
            cfg_blind_after,
            std::time::Instant::now(),
            SystemTime::now(),
        ),
    };
    // Short cap: `connect` itself waits about a session timeout when nobody answers.
    let mut retry = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
    info!(connect = %w.cfg.zk.connect, root = %w.cfg.layout.root(), "connecting to zookeeper");
    loop {
        let zk_cfg = w.cfg.zk.clone();
        let Some(client) = w.unless_cancelled(&cancel, session::connect(&zk_cfg)).await else {
            return;
        };
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                let delay = retry.next_delay();
                warn!(error = %e, connect = %w.cfg.zk.connect, retry_in_ms = delay.as_millis() as u64, "cannot reach zookeeper; retrying");
                if w.unless_cancelled(&cancel, tokio::time::sleep(delay))
                    .await
                    .is_none()
                {
                    return;
                }
                continue;
            }
        };
        info!(session = %client.session_id(), "zookeeper session established");
        let served_from = Instant::now();
        let result = w.serve(&client, &cancel).await;
        session::close(client, Duration::from_secs(2)).await;
        let Err(e) = result else { return };
        w.blind.lost(std::time::Instant::now(), SystemTime::now());
        w.cut_off = true;
        w.show();
        // A session that worked for a while starts the backoff afresh; one refused at once
        // (e.g. not authorized) must not turn into a tight reconnect loop.
        if served_from.elapsed() > Duration::from_secs(10) {
            retry.reset();
        }
        let delay = retry.next_delay();
        warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "zookeeper session lost; opening a new one");
        if w.unless_cancelled(&cancel, tokio::time::sleep(delay))
            .await
            .is_none()
        {
            return;
        }
    }
}

struct Watcher {
    cfg: WatchConfig,
    notifier: Arc<Notifier>,
    /// Created on the first listing, kept across sessions so nothing is alerted twice.
    monitor: Option<Monitor>,
    ready: bool,
    next_tick: Option<Instant>,
    /// Names already reported as not valid ids.
    warned: HashSet<String>,
    outbox: Outbox,
    /// What is recorded, delivered and noted, and what is still to do.
    ledger: Ledger,
    receipts: mpsc::UnboundedReceiver<Receipt>,
    blind: Blindness,
    /// The ledger asked to flush again at this time (a failed record update, receipts left).
    flush_again: Option<Instant>,
    /// Cut off from ZooKeeper since the last listing: the next one starts a settling window
    /// (`outage::SETTLE_WINDOW`), as ZooKeeper itself may have been away.
    cut_off: bool,
    /// The ledger asked to hear when this (wall-clock) time has come: an escalation is due.
    escalate_at: Option<SystemTime>,
    /// The agents told degraded and not yet healthy (issue 11's health nodes).
    degradations: Degradations,
    /// The silences by id, as read from `<root>/silences/` (issue 12): the ledger hushes what
    /// they cover.
    silences: BTreeMap<String, Silence>,
    /// What was said about silence nodes that cannot be used: said once each.
    warned_silences: HashSet<String>,
    /// systemd's view: readiness, status lines, watchdog pings.
    systemd: Arc<Systemd>,
    /// When the next watchdog ping is due, when systemd asks for them.
    sd_next: Option<Instant>,
}

impl Watcher {
    /// Waits for `fut` while keeping the dead-man switch ticking; `None` if cancelled.
    async fn unless_cancelled<F: std::future::Future>(
        &mut self,
        cancel: &CancellationToken,
        fut: F,
    ) -> Option<F::Output> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return None,
                r = &mut fut => return Some(r),
                _ = blind_timer(self.blind.due()), if self.blind.due().is_some() => self.check_blind(),
                _ = tokio::time::sleep_until(self.sd_next.unwrap_or_else(Instant::now)), if self.sd_next.is_some() => self.sd_ping(),
            }
        }
    }

    /// Serves one session; `Ok` means cancelled, `Err` means the session is over.
    async fn serve(
        &mut self,
        client: &zk::Client,
        cancel: &CancellationToken,
    ) -> Result<(), zk::Error> {
        let root = self.cfg.layout.root().to_owned();
        self.ledger.on_event(ledger::Event::SteppedDown);
        let watchers_dir = self.cfg.layout.watchers_dir();
        session::ensure_dir(client, &self.cfg.zk, &watchers_dir).await?;
        let me = serde_json::json!({
            "host": nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()),
            "pid": std::process::id(),
            "since": common::time::now(),
        })
        .to_string();
        let acl = session::acls(&self.cfg.zk).to_vec();
        let mut leadership = Leadership::new(client, watchers_dir, me, acl);
        if leadership.first().await? {
            self.ledger
                .on_event(ledger::Event::BecameLeader { took_over: false });
        }
        let mut events = self.prepare(client, &root).await?;
        self.sighted();
        let mut deferred: Option<zk::WatchedEvent> = None;
        loop {
            self.show();
            let tick = self.next_tick;
            let event = if let Some(event) = deferred.take() {
                event
            } else {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => {
                        self.shut_down(client).await;
                        return Ok(());
                    }
                    // Node events before bookkeeping: a crash never waits for receipts.
                    event = events.changed() => event,
                    Some(receipt) = self.receipts.recv() => {
                        self.ledger.on_event(receipt_event(receipt));
                        self.flush(client).await?;
                        continue;
                    }
                    _ = tokio::time::sleep_until(tick.unwrap_or_else(Instant::now)), if tick.is_some() => {
                        self.next_tick = None;
                        self.apply(Event::Tick { now: Instant::now().into_std(), wall: SystemTime::now() });
                        self.flush(client).await?;
                        continue;
                    }
                    _ = wall_timer(self.escalate_at), if self.escalate_at.is_some() => {
                        self.escalate_at = None;
                        let actions = self.ledger.on_event(ledger::Event::Due { wall: SystemTime::now() });
                        self.carry_out(client, actions).await?;
                        self.flush(client).await?;
                        continue;
                    }
                    _ = tokio::time::sleep_until(self.flush_again.unwrap_or_else(Instant::now)), if self.flush_again.is_some() => {
                        self.flush_again = None;
                        self.flush(client).await?;
                        continue;
                    }
                    _ = blind_timer(self.blind.due()), if self.blind.due().is_some() => {
                        self.check_blind();
                        continue;
                    }
                    _ = tokio::time::sleep_until(self.sd_next.unwrap_or_else(Instant::now)), if self.sd_next.is_some() => {
                        self.sd_ping();
                        continue;
                    }
                    won = leadership.won(), if leadership.campaigning() => {
                        match won {
                            Ok(()) => self.take_over(client).await?,
                            Err(e) if is_session_over(&e) => return Err(e),
                            Err(e) => warn!(error = %e, "leader election failed; trying again after the next reconnection"),
                        }
                        continue;
                    }
                }
            };
            match event.event_type {
                zk::EventType::Session => match event.session_state {
                    zk::SessionState::Disconnected => {
                        warn!("zookeeper connection lost; alerts wait until it is back");
                        self.cut_off = true;
                        self.blind
                            .lost(std::time::Instant::now(), SystemTime::now());
                        // Another watcher may lead before we know our session is gone.
                        if leadership.disconnected() {
                            self.ledger.on_event(ledger::Event::SteppedDown);
                        }
                    }
                    zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                        info!("zookeeper connection restored; re-listing");
                        // Re-add the watch first (the client lost it), then list: no gap.
                        events = self.prepare(client, &root).await?;
                        self.sighted();
                        leadership.reconnected();
                    }
                    state => return Err(state.to_error_like()),
                },
                _ => {
                    self.node_event(client, event).await?;
                    // Take what else is already there, so that a burst (a rack losing power) is
                    // recorded and sent together rather than one message per event. Polled once,
                    // with no timer: a zero timeout would wait for the timer wheel's next tick.
                    while let Some(next) = events.changed().now_or_never() {
                        if next.event_type == zk::EventType::Session {
                            deferred = Some(next);
                            break;
                        }
                        self.node_event(client, next).await?;
                    }
                }
            }
            self.flush(client).await?;
        }
    }

    /// Lets the channels make their last attempts, then notes in the records what they delivered,
    /// so that the next leader does not send it again.
    async fn shut_down(&mut self, client: &zk::Client) {
        self.notifier.wait_stopped().await;
        while let Ok(receipt) = self.receipts.try_recv() {
            self.ledger.on_event(receipt_event(receipt));
        }
        // Every record and receipt now, window after window (a flush does one a turn), as long
        // as ZooKeeper takes them: an alert handed over but not recorded would be lost to the
        // next leader if its channel did not take it.
        loop {
            let left = |l: &Ledger| l.unrecorded() + l.unnoted();
            let before = left(&self.ledger);
            if let Err(e) = self.flush(client).await {
                warn!(error = %e, unrecorded = self.ledger.unrecorded(), "could not record or note the last alerts; the next leader may repeat them");
                break;
            }
            let now = left(&self.ledger);
            if now == 0 || now >= before {
                break;
            }
        }
    }

    async fn node_event(
        &mut self,
        client: &zk::Client,
        event: zk::WatchedEvent,
    ) -> Result<(), zk::Error> {
        match self.on_node_event(client, event).await {
            Err(e) if is_session_over(&e) => Err(e),
            // Connection lost mid-read: the reconnection re-lists and catches up.
            Err(e) => {
                warn!(error = %e, "cannot read a changed node now; will re-list on reconnection");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// Watch, then list and reconcile.
    async fn prepare(
        &mut self,
        client: &zk::Client,
        root: &str,
    ) -> Result<zk::PersistentWatcher, zk::Error> {
        session::ensure_dir(client, &self.cfg.zk, &self.cfg.layout.agents_dir()).await?;
        session::ensure_dir(client, &self.cfg.zk, &self.cfg.layout.live_dir()).await?;
        let events = client
            .watch(root, zk::AddWatchMode::PersistentRecursive)
            .await?;
        self.snapshot(client).await?;
        self.flush(client).await?;
        Ok(events)
    }

    async fn snapshot(&mut self, client: &zk::Client) -> Result<(), zk::Error> {
        let started = Instant::now();
        let (agents_dir, live_dir) = (self.cfg.layout.agents_dir(), self.cfg.layout.live_dir());
        // Both folders at once, each node converted to what the monitor keeps as its batch
        // arrives: the raw data of 200,000 nodes is never held at once.
        let (identity_names, live_names) = futures::try_join!(
            session::child_names(client, &agents_dir, |_| true),
            session::child_names(client, &live_dir, |_| true),
        )?;
        let identity_names: Vec<String> = identity_names
            .into_iter()
            .filter(|n| self.valid(n))
            .collect();
        let live_names: Vec<String> = live_names.into_iter().filter(|n| self.valid(n)).collect();
        let listed_ms = started.elapsed().as_millis() as u64;
        let this = &*self;
        let (identities, lives) = futures::try_join!(
            session::read_named(client, &agents_dir, identity_names, |name, data, stat| {
                let identity = Registration::from(this.identity(&name, &data, stat.mzxid));
                (name, identity)
            }),
            session::read_named(client, &live_dir, live_names, |name, data, stat| {
                let live = Incarnation::from(this.live(&name, &data, stat.czxid));
                (name, live)
            }),
        )?;
        let mut agents: BTreeMap<String, Listed> = identities
            .into_iter()
            .map(|(name, identity)| {
                let listed = Listed {
                    identity: Some(identity),
                    live: None,
                };
                (name, listed)
            })
            .collect();
        for (name, live) in lives {
            agents.entry(name).or_default().live = Some(live);
        }
        debug!(
            agents = agents.len(),
            listed_ms,
            read_ms = started.elapsed().as_millis() as u64,
            "both folders read"
        );
        if self.monitor.is_none() {
            self.monitor = Some(Monitor::new(self.cfg.recovered_after));
        }
        if std::mem::take(&mut self.cut_off) {
            self.apply(Event::Reconnected {
                now: Instant::now().into_std(),
            });
        }
        // Outages reported before (by an earlier run): not again; and what a channel has not
        // taken yet goes out now, in order.
        let records = self.outbox.load(client).await?;
        // A degradation's record (`<id>~health`) is the degradations' business, not the monitor's.
        let (told, outages): (BTreeMap<String, SystemTime>, _) = {
            let mut told = BTreeMap::new();
            let mut outages = BTreeMap::new();
            for (key, r) in &records {
                let Some(open) = r.open_outage() else {
                    continue;
                };
                match key.strip_suffix(HEALTH_RECORD_SUFFIX) {
                    Some(id) => {
                        told.insert(id.to_owned(), open.since);
                    }
                    None => {
                        outages.insert(key.clone(), open);
                    }
                }
            }
            (told, outages)
        };
        let health_dir = self.cfg.layout.health_dir();
        let health_names =
            session::child_names(client, &health_dir, |n| AgentId::parse(n).is_ok()).await?;
        let nodes: BTreeMap<String, (HealthRecord, i64)> =
            session::read_named(client, &health_dir, health_names, |name, data, stat| {
                (name, HealthRecord::parse(&data).0.map(|r| (r, stat.mzxid)))
            })
            .await?
            .into_iter()
            .filter_map(|(name, r)| Some((name, r?)))
            .collect();
        // Before the records: what they keep pending for an agent silenced now is hushed again.
        self.silences = self.read_silences(client).await?;
        let actions = self.tell_silences();
        self.carry_out(client, actions).await?;
        let actions = self.ledger.on_event(ledger::Event::RecordsLoaded(records));
        self.carry_out(client, actions).await?;
        self.apply(Event::Snapshot {
            agents,
            outages,
            now: Instant::now().into_std(),
            wall: SystemTime::now(),
        });
        let nodes = nodes
            .into_iter()
            .filter(|(id, (record, _))| self.believable(id, record))
            .collect();
        let actions = self.degradations.on_event(degradation::Event::Snapshot {
            told,
            nodes,
            wall: SystemTime::now(),
        });
        self.degraded(actions);
        if !self.ready {
            self.ready = true;
            let agents = self.monitor.as_ref().map_or(0, Monitor::registered);
            info!(agents, root = %self.cfg.layout.root(), took_ms = started.elapsed().as_millis() as u64, "watcher ready");
        }
        self.systemd.ready(&self.status_line());
        Ok(())
    }

    async fn on_node_event(
        &mut self,
        client: &zk::Client,
        event: zk::WatchedEvent,
    ) -> Result<(), zk::Error> {
        let now = Instant::now().into_std();
        let wall = SystemTime::now();
        let kind = self.cfg.layout.classify(&event.path);
        let created_or_changed = matches!(
            event.event_type,
            zk::EventType::NodeCreated | zk::EventType::NodeDataChanged
        );
        match kind {
            NodeKind::Identity(name) if self.valid(name) => {
                let identity = if created_or_changed {
                    found(client.get_data(&event.path).await)?
                        .map(|(data, stat)| self.identity(name, &data, stat.mzxid))
                } else {
                    None
                };
                self.apply(Event::Identity {
                    id: name.to_owned(),
                    identity,
                    now,
                    wall,
                });
            }
            NodeKind::Liveness(name) if self.valid(name) => {
                let live = if created_or_changed {
                    match found(client.get_data(&event.path).await)? {
                        Some((data, stat)) => Some(self.live(name, &data, stat.czxid)),
                        // Created and deleted before we could read it: an agent that died right
                        // after it started. It did exist, and its deletion event follows: keep the
                        // incarnation (its czxid unknown, so any recorded exit explains it).
                        None if event.event_type == zk::EventType::NodeCreated => Some(Live {
                            view: LivenessView::default(),
                            czxid: 0,
                        }),
                        None => return Ok(()),
                    }
                } else {
                    None
                };
                self.apply(Event::Live {
                    id: name.to_owned(),
                    live,
                    now,
                    wall,
                });
            }
            NodeKind::Health(name) if self.valid(name) => {
                let record = if created_or_changed {
                    found(client.get_data(&event.path).await)?.and_then(|(data, stat)| {
                        let (record, garbled) = HealthRecord::parse(&data);
                        if let Some(g) = garbled {
                            debug!(agent = name, problem = %g, "health node partly unreadable");
                        }
                        record.map(|r| (r, stat.mzxid))
                    })
                } else {
                    None
                };
                let record = record.filter(|(r, _)| self.believable(name, r));
                let actions = self.degradations.on_event(degradation::Event::Node {
                    id: name.to_owned(),
                    record,
                    wall,
                });
                self.degraded(actions);
            }
            NodeKind::Silence(name) if common::silence::is_id(name) => {
                let silence = if created_or_changed {
                    found(client.get_data(&event.path).await)?
                        .and_then(|(data, _)| self.silence(name, &data))
                } else {
                    None
                };
                match silence {
                    Some(s) => {
                        info!(silence = name, agent = %s.record.agent, ends = %s.record.ends_at, by = %s.record.created_by, comment = %s.record.comment, "silence set");
                        self.silences.insert(name.to_owned(), s);
                    }
                    None => {
                        if self.silences.remove(name).is_some() {
                            info!(silence = name, "silence removed");
                        }
                    }
                }
                let actions = self.tell_silences();
                self.carry_out(client, actions).await?;
            }
            // Only a follower reads what the leader records: to forget what it remembered.
            NodeKind::Outage(name) if !self.ledger.leader() => {
                let seen = if created_or_changed {
                    let data = found(client.get_data(&event.path).await)?;
                    match data.map(|(d, _)| serde_json::from_slice::<OutageRecord>(&d)) {
                        Some(Ok(record)) => Seen::Record(record),
                        Some(Err(_)) => Seen::Unreadable,
                        None => Seen::Pruned,
                    }
                } else {
                    Seen::Pruned
                };
                self.ledger.on_event(ledger::Event::LeaderRecorded {
                    agent: name.to_owned(),
                    seen,
                });
            }
            NodeKind::Root | NodeKind::AgentsDir | NodeKind::LiveDir
                if event.event_type == zk::EventType::NodeDeleted =>
            {
                warn!(path = %event.path, "a folder of the root was deleted; recreating it and re-listing");
                session::ensure_dir(client, &self.cfg.zk, &self.cfg.layout.agents_dir()).await?;
                session::ensure_dir(client, &self.cfg.zk, &self.cfg.layout.live_dir()).await?;
                self.snapshot(client).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Every usable silence under `<root>/silences/` (read as `status` reads them); the rest is
    /// logged once and ignored.
    async fn read_silences(
        &mut self,
        client: &zk::Client,
    ) -> Result<BTreeMap<String, Silence>, zk::Error> {
        let read = crate::silencing::read_with(client, &self.cfg.layout).await?;
        for note in read.skipped {
            self.warn_silence(note);
        }
        Ok(read
            .silences
            .iter()
            .map(|s| (s.id.clone(), s.clone()))
            .collect())
    }

    /// A silence node's data compiled, or `None` (said once) when it cannot be used: a silence
    /// that cannot be read silences nothing.
    fn silence(&mut self, name: &str, data: &[u8]) -> Option<Silence> {
        match Silence::parse(name, data) {
            Ok(s) => Some(s),
            Err(why) => {
                let dir = self.cfg.layout.silences_dir();
                self.warn_silence(format!("skipped {dir}/{name}: {why}"));
                None
            }
        }
    }

    fn warn_silence(&mut self, note: String) {
        if self.warned_silences.insert(note.clone()) {
            warn!(problem = %note, "a silence node cannot be used; it silences nothing");
        }
    }

    /// Hands the silences to the ledger; what it releases is for the caller to carry out.
    fn tell_silences(&mut self) -> Vec<ledger::Action> {
        let silences = Silences::new(self.silences.values().cloned().collect());
        self.ledger.on_event(ledger::Event::Silences {
            silences,
            wall: SystemTime::now(),
        })
    }

    fn apply(&mut self, event: Event) {
        let Some(monitor) = self.monitor.as_mut() else {
            return;
        };
        let mut batch: Vec<Alert> = Vec::new();
        let mut superseded: Vec<String> = Vec::new();
        self.next_tick = None;
        for action in monitor.on_event(event) {
            match action {
                Action::Alert(alert) => {
                    info!(event = alert.event.as_str(), agent = %alert.agent, host = %alert.host.as_deref().unwrap_or("an unknown host"), reason = %alert.reason, "alert");
                    if matches!(alert.event, AlertKind::Down | AlertKind::Failed) {
                        superseded.push(alert.agent.clone());
                    }
                    batch.push(alert);
                }
                Action::WakeAt(at) => self.next_tick = Some(Instant::from_std(at)),
                Action::PlannedStop { id } => {
                    info!(agent = %id, "planned stop: identity node deleted, no alert");
                    for action in self.ledger.on_event(ledger::Event::PlannedStop(id)) {
                        self.tell(action);
                    }
                }
            }
        }
        self.cfg.board.decided(&batch);
        // A leader's alerts go to the channels now; their records are written by the next flush.
        for action in self.ledger.on_event(ledger::Event::Decided(batch)) {
            self.tell(action);
        }
        // A down supersedes a degradation: it ends without a notice.
        for id in superseded {
            let actions = self.degradations.on_event(degradation::Event::Down { id });
            self.degraded(actions);
        }
    }

    /// Whether a health node is worth a notice: about an agent that is registered and live (a node
    /// left by anything else is no agent's health), and a degraded verdict that says why (a node
    /// too garbled to give a reason is not taken for a degradation).
    fn believable(&self, id: &str, record: &HealthRecord) -> bool {
        let live = self
            .monitor
            .as_ref()
            .and_then(|m| m.health(id))
            .is_some_and(|h| matches!(h, OutageHealth::Up | OutageHealth::Recovering { .. }));
        let reasoned =
            record.verdict == common::records::Verdict::Healthy || !record.reasons.is_empty();
        if !(live && reasoned) {
            debug!(agent = id, live, reasoned, "health node ignored");
        }
        live && reasoned
    }

    /// Turns the degradations' decisions into notices (through the ledger, as crashes) and quiet
    /// ends of their records.
    fn degraded(&mut self, actions: Vec<degradation::Action>) {
        let Some(monitor) = self.monitor.as_ref() else {
            return;
        };
        let mut batch = Vec::new();
        let mut ended = Vec::new();
        for action in actions {
            match action {
                degradation::Action::Degraded {
                    id,
                    record,
                    zxid,
                    at,
                } => {
                    let reasons: Vec<String> =
                        record.reasons.iter().map(|r| r.describe()).collect();
                    let reason = if reasons.is_empty() {
                        "degraded (its watchdog gave no reason)".to_owned()
                    } else {
                        reasons.join("; ")
                    };
                    let mut alert = monitor.notice(&id, AlertKind::Degraded, reason, at);
                    alert.zxid = Some(zxid).filter(|z| *z > 0);
                    alert.health = Some(crate::alert::Health(Box::new(record)));
                    info!(event = "degraded", agent = %id, reason = %alert.reason, "alert");
                    batch.push(alert);
                }
                degradation::Action::Healthy {
                    id,
                    lasted,
                    zxid,
                    at,
                } => {
                    let reason = format!("healthy again after {}", common::time::human(lasted));
                    let mut alert = monitor.notice(&id, AlertKind::Healthy, reason, at);
                    alert.zxid = zxid.filter(|z| *z > 0);
                    alert.outage = Some(lasted);
                    info!(event = "healthy", agent = %id, lasted = %common::time::human(lasted), "alert");
                    batch.push(alert);
                }
                degradation::Action::Forget { id } => {
                    debug!(agent = %id, "degradation over without a notice (the agent stopped, crashed or lost its watchdog)");
                    ended.push(format!("{id}{HEALTH_RECORD_SUFFIX}"));
                }
            }
        }
        for action in self.ledger.on_event(ledger::Event::Decided(batch)) {
            self.tell(action);
        }
        for key in ended {
            for action in self.ledger.on_event(ledger::Event::PlannedStop(key)) {
                self.tell(action);
            }
        }
    }

    /// Carries out what the ledger asks of the channels; deciding and planned stops ask nothing
    /// of ZooKeeper.
    fn tell(&mut self, action: ledger::Action) {
        match action {
            ledger::Action::Deliver {
                to: To::All,
                alerts,
            } => self.notifier.send(alerts),
            ledger::Action::Deliver {
                to: To::Channel(channel),
                alerts,
            } => self.notifier.send_to(&channel, alerts),
            ledger::Action::StillOpen(alerts) => self.notifier.still_open(&alerts),
            ledger::Action::EndedQuietly(agent) => self.notifier.ended_quietly(&agent),
            ledger::Action::EscalateAt(at) => self.escalate_at = Some(at),
            other => {
                debug!(action = ?other, "a record operation asked for outside a flush; it waits for the next one")
            }
        }
    }

    /// Becomes the leader: records what this watcher saw but the old leader did not record, and
    /// delivers what the old leader recorded but did not deliver.
    async fn take_over(&mut self, client: &zk::Client) -> Result<(), zk::Error> {
        self.ledger
            .on_event(ledger::Event::BecameLeader { took_over: true });
        self.systemd.status(&self.status_line());
        self.snapshot(client).await?;
        self.flush(client).await
    }

    /// Records decided alerts (then hands them to the channels), notes deliveries and closes
    /// records, as far as the ledger asks. What ZooKeeper refuses now stays in the ledger, which
    /// asks again later.
    async fn flush(&mut self, client: &zk::Client) -> Result<(), zk::Error> {
        let actions = self.ledger.on_event(ledger::Event::Flush);
        self.carry_out(client, actions).await
    }

    /// Carries out the ledger's actions, feeding each record operation's results back to it, until
    /// it asks for nothing more. `Err` only when the session is over.
    async fn carry_out(
        &mut self,
        client: &zk::Client,
        actions: Vec<ledger::Action>,
    ) -> Result<(), zk::Error> {
        let mut todo = VecDeque::from(actions);
        let mut over = None;
        while let Some(action) = todo.pop_front() {
            let (outbox, channels) = (&self.outbox, self.ledger.channels());
            let (result, error) = match action {
                action @ (ledger::Action::Deliver { .. }
                | ledger::Action::StillOpen(_)
                | ledger::Action::EndedQuietly(_)
                | ledger::Action::EscalateAt(_)) => {
                    self.tell(action);
                    continue;
                }
                ledger::Action::RetryAt(at) => {
                    self.flush_again = Some(Instant::from_std(at));
                    continue;
                }
                ledger::Action::Record(window) => {
                    let results = futures::future::join_all(
                        window.iter().map(|a| bounded(outbox.record(client, a))),
                    )
                    .await;
                    let (results, error) = failures(results);
                    let now = Instant::now().into_std();
                    (ledger::Event::Recorded { results, now }, error)
                }
                ledger::Action::NoteDone(window) => {
                    let results = futures::future::join_all(window.iter().map(|(key, channel)| {
                        bounded(outbox.done(client, key, channel, channels))
                    }))
                    .await;
                    let (results, error) = failures(results);
                    let now = Instant::now().into_std();
                    (ledger::Event::Noted { results, now }, error)
                }
                ledger::Action::Close(id) => {
                    let result = bounded(outbox.close_silently(client, &id, channels)).await;
                    let (mut results, error) = failures(vec![result]);
                    let result = results.pop().unwrap_or(Ok(()));
                    let now = Instant::now().into_std();
                    (ledger::Event::Closed { result, now }, error)
                }
            };
            todo.extend(self.ledger.on_event(result));
            match error {
                Some(e) if is_session_over(&e) => over = Some(e),
                Some(e) => {
                    warn!(error = %e, pending = self.ledger.unrecorded(), "cannot update outage records now; will retry");
                }
                None => {}
            }
        }
        over.map_or(Ok(()), Err)
    }

    /// Publishes how the watcher sees now: connected, leading, blind since when.
    fn show(&self) {
        let connected = !self.cut_off;
        let leading = self.ledger.leader();
        self.cfg
            .board
            .saw(connected, leading, self.blind.blind_since());
    }

    /// Says it is blind, once blind for long enough. Every watcher speaks for itself here: a blind
    /// watcher cannot know whether the others see.
    fn check_blind(&mut self) {
        if let Some(alert) = self
            .blind
            .check(std::time::Instant::now(), SystemTime::now())
        {
            warn!(reason = %alert.reason, "watcher is blind");
            // Ready all the same: a watcher that cannot see must live to say so (and to see
            // again); systemd restarting it would not bring ZooKeeper back.
            self.systemd.ready(&format!("BLIND: {}", alert.reason));
            self.notifier.send(vec![alert]);
        }
    }

    /// What `systemctl status` shows while the watcher sees.
    fn status_line(&self) -> String {
        let agents = self.monitor.as_ref().map_or(0, Monitor::registered);
        let role = if self.ledger.leader() {
            "leading: sends the alerts"
        } else {
            "following the leading watcher"
        };
        format!(
            "watching {agents} agents under {}, {role}",
            self.cfg.layout.root()
        )
    }

    /// Pings systemd's watchdog from the watch loop itself (not from a task of its own), so that
    /// a loop that hangs stops the pings and systemd restarts the watcher.
    fn sd_ping(&mut self) {
        self.systemd.ping();
        self.sd_next = self
            .systemd
            .watchdog_every()
            .map(|every| Instant::now() + every);
    }

    fn sighted(&mut self) {
        if let Some(alert) = self
            .blind
            .seen(std::time::Instant::now(), SystemTime::now())
        {
            info!(reason = %alert.reason, "watcher sees again");
            self.notifier.send(vec![alert]);
        }
    }

    fn valid(&mut self, name: &str) -> bool {
        if AgentId::parse(name).is_ok() {
            return true;
        }
        if self.warned.insert(name.to_owned()) {
            warn!(name, "ignoring a node whose name is not a valid agent id");
        }
        false
    }

    fn identity(&self, name: &str, data: &[u8], mzxid: i64) -> Identity {
        let (view, garbled) = IdentityView::parse(data);
        if let Some(problem) = garbled {
            warn!(agent = name, %problem, "identity node has unusable data; using its name");
        }
        Identity { view, mzxid }
    }

    fn live(&self, name: &str, data: &[u8], czxid: i64) -> Live {
        let (view, garbled) = LivenessView::parse(data);
        if let Some(problem) = garbled {
            warn!(agent = name, %problem, "liveness node has unusable data; using its name");
        }
        Live { view, czxid }
    }
}

fn receipt_event(receipt: Receipt) -> ledger::Event {
    ledger::Event::Receipt {
        channel: receipt.channel,
        keys: receipt.keys,
        tickets: receipt.tickets,
    }
}

/// A node that vanished between listing and reading is simply absent.
fn found<T>(r: Result<T, zk::Error>) -> Result<Option<T>, zk::Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(zk::Error::NoNode) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sleeps until the wall clock reads `at` (as far as it can tell now: a clock set meanwhile makes
/// it early or late, and the ledger asks again).
async fn wall_timer(at: Option<SystemTime>) {
    if let Some(at) = at {
        let wait = at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        tokio::time::sleep(wait).await;
    }
}

async fn blind_timer(due: Option<std::time::Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(Instant::from_std(due)).await;
    }
}

/// One outage-record operation may take this long. A request made while disconnected waits for
/// the reconnection (or the session's end); the loop must not, or it would miss the disconnection
/// and lead on while another watcher takes over. Record writes are safe to repeat.
const RECORD_WAIT: Duration = Duration::from_secs(1);

async fn bounded<T>(
    op: impl std::future::Future<Output = Result<T, zk::Error>>,
) -> Result<T, zk::Error> {
    tokio::time::timeout(RECORD_WAIT, op)
        .await
        .unwrap_or(Err(zk::Error::ConnectionLoss))
}

/// The results as the ledger takes them, and the first error (which says whether the session is
/// over).
fn failures<T>(results: Vec<Result<T, zk::Error>>) -> (Vec<Result<T, Failure>>, Option<zk::Error>) {
    let mut first = None;
    let results = results
        .into_iter()
        .map(|r| {
            r.map_err(|e| {
                let failure = if is_session_over(&e) {
                    Failure::SessionOver
                } else {
                    Failure::Transient
                };
                first.get_or_insert(e);
                failure
            })
        })
        .collect();
    (results, first)
}

fn is_session_over(e: &zk::Error) -> bool {
    matches!(
        e,
        zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::AuthFailed
    )
}

trait StateError {
    fn to_error_like(self) -> zk::Error;
}

impl StateError for zk::SessionState {
    fn to_error_like(self) -> zk::Error {
        match self {
            zk::SessionState::AuthFailed => zk::Error::AuthFailed,
            zk::SessionState::Closed => zk::Error::ClientClosed,
            _ => zk::Error::SessionExpired,
        }
    }
}
