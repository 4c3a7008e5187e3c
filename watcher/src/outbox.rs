//! The outage records in ZooKeeper (`<root>/outages/<id>`): written as an alert is handed to the
//! channels (or, for what a new leader takes over, before), updated as channels take its notices,
//! pruned once closed and delivered everywhere.
//!
//! Every change is a read-modify-write at the node's version, so two writers (a watcher and its
//! successor) never lose each other's updates, nor the fields of a later version they do not
//! know. A record this watcher cannot read is left as it is.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use tracing::{debug, info, warn};
use zookeeper_client as zk;

use common::config::ZkConfig;
use common::{session, Layout};

use crate::alert::{Alert, AlertKind, NoticeKey};
use crate::record::{decide, Decision, OutageRecord};

pub struct Outbox {
    dir: String,
    /// The ACLs to create records with, and the credentials to report a refusal with.
    zk: ZkConfig,
    /// Unreadable records already logged: agent and the node's last modification.
    unreadable: Mutex<HashSet<(String, i64)>>,
}

/// An agent's record as read.
enum Read {
    Absent,
    Found(OutageRecord, i32),
    Unreadable,
}

/// What recording an alert came to.
#[derive(Debug, PartialEq)]
pub enum Recorded {
    /// Recorded: deliver this (it carries its key).
    Deliver(Box<Alert>),
    /// Reported before: deliver nothing.
    Duplicate,
}

impl Outbox {
    pub fn new(layout: &Layout, zk: ZkConfig) -> Outbox {
        Outbox {
            dir: layout.outages_dir(),
            zk,
            unreadable: Mutex::new(HashSet::new()),
        }
    }

    fn path(&self, agent: &str) -> String {
        format!("{}/{agent}", self.dir)
    }

    async fn read(&self, client: &zk::Client, agent: &str) -> Result<Read, zk::Error> {
        match client.get_data(&self.path(agent)).await {
            Ok((data, stat)) => Ok(self.parse(agent, &data, &stat)),
            Err(zk::Error::NoNode) => Ok(Read::Absent),
            Err(e) => Err(e),
        }
    }

    /// A record that cannot be read is never deleted or overwritten: it may be a later version's,
    /// or an operator's, and it may hold an outage not yet delivered. It is logged once (per
    /// record version) and left alone; the alerts of its agent are then sent unrecorded.
    fn parse(&self, agent: &str, data: &[u8], stat: &zk::Stat) -> Read {
        match serde_json::from_slice::<OutageRecord>(data) {
            Ok(r) => Read::Found(r, stat.version),
            Err(e) => {
                let first = self
                    .unreadable
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert((agent.to_owned(), stat.mzxid));
                if first {
                    warn!(
                        agent,
                        path = %self.path(agent),
                        error = %e,
                        "outage record cannot be read; it is kept as it is, and this agent's alerts are sent without a record (a restarted or new leader may send them again)"
                    );
                }
                Read::Unreadable
            }
        }
    }

    async fn write(
        &self,
        client: &zk::Client,
        agent: &str,
        record: &OutageRecord,
        version: Option<i32>,
    ) -> Result<bool, zk::Error> {
        let data = serde_json::to_vec(record).unwrap_or_default();
        let result = match version {
            Some(v) => client
                .set_data(&self.path(agent), &data, Some(v))
                .await
                .map(|_| ()),
            None => {
                let opts = zk::CreateMode::Persistent.with_acls(session::acls(&self.zk));
                match client.create(&self.path(agent), &data, &opts).await {
                    Err(zk::Error::NoNode) => {
                        session::ensure_dir(client, &self.zk, &self.dir).await?;
                        return Ok(false);
                    }
                    other => other.map(|_| ()),
                }
            }
        };
        match result {
            Ok(()) => Ok(true),
            // Someone else wrote in between: read again and decide again.
            Err(zk::Error::BadVersion | zk::Error::NodeExists | zk::Error::NoNode) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Records `alert` in its agent's outage record, unless that outage was reported already.
    pub async fn record(&self, client: &zk::Client, alert: &Alert) -> Result<Recorded, zk::Error> {
        // An outage mostly finds no record (the last one was pruned once delivered): create it
        // at once, one round trip on the path of every alert; if one exists, read and decide.
        if alert.event != AlertKind::Recovered {
            if let Decision::Write { record, seq } = decide(None, alert) {
                if self
                    .write(client, &alert.record_key(), &record, None)
                    .await?
                {
                    return Ok(Recorded::Deliver(keyed(alert, seq)));
                }
            }
        }
        loop {
            let current = match self.read(client, &alert.record_key()).await? {
                Read::Found(r, v) => Some((r, v)),
                Read::Absent => None,
                // Never lost for a record that cannot be kept: sent, unrecorded.
                Read::Unreadable => return Ok(Recorded::Deliver(Box::new(alert.clone()))),
            };
            // Our own write, applied although its answer was lost with the connection: deliver it.
            if let Some(seq) = current.as_ref().and_then(|(r, _)| r.notice_of(alert)) {
                return Ok(Recorded::Deliver(keyed(alert, seq)));
            }
            let (record, seq) = match decide(current.as_ref().map(|(r, _)| r), alert) {
                Decision::Duplicate => {
                    info!(agent = %alert.agent, event = alert.event.as_str(), "already reported; not sent again");
                    return Ok(Recorded::Duplicate);
                }
                Decision::Write { record, seq } => (record, seq),
            };
            if self
                .write(
                    client,
                    &alert.record_key(),
                    &record,
                    current.map(|(_, v)| v),
                )
                .await?
            {
                return Ok(Recorded::Deliver(keyed(alert, seq)));
            }
        }
    }

    /// `channel` is done with the notice `key`; prunes the record once it has served its purpose.
    pub async fn done(
        &self,
        client: &zk::Client,
        key: &NoticeKey,
        channel: &str,
        channels: &[String],
    ) -> Result<(), zk::Error> {
        self.update(client, &key.agent, channels, |r| {
            r.mark_done(key.seq, channel)
        })
        .await
    }

    /// A planned stop ends the agent's open outage without a notice.
    pub async fn close_silently(
        &self,
        client: &zk::Client,
        agent: &str,
        channels: &[String],
    ) -> Result<(), zk::Error> {
        self.update(client, agent, channels, OutageRecord::close_silently)
            .await
    }

    async fn update(
        &self,
        client: &zk::Client,
        agent: &str,
        channels: &[String],
        mut change: impl FnMut(&mut OutageRecord) -> bool,
    ) -> Result<(), zk::Error> {
        loop {
            let Read::Found(mut record, version) = self.read(client, agent).await? else {
                return Ok(());
            };
            let changed = change(&mut record);
            if record.prunable(channels) {
                match client.delete(&self.path(agent), Some(version)).await {
                    Ok(()) | Err(zk::Error::NoNode) => {
                        debug!(agent, "outage record closed and delivered: pruned");
                        return Ok(());
                    }
                    Err(zk::Error::BadVersion) => continue,
                    Err(e) => return Err(e),
                }
            }
            if !changed || self.write(client, agent, &record, Some(version)).await? {
                return Ok(());
            }
        }
    }

    /// Every readable record, by agent.
    pub async fn load(
        &self,
        client: &zk::Client,
    ) -> Result<BTreeMap<String, OutageRecord>, zk::Error> {
        let mut records = BTreeMap::new();
        for (name, data, stat) in session::read_children(client, &self.dir, |_| true).await? {
            if let Read::Found(r, _) = self.parse(&name, &data, &stat) {
                records.insert(name, r);
            }
        }
        Ok(records)
    }
}

/// `alert` as recorded: notice `seq` of its agent's record.
fn keyed(alert: &Alert, seq: u32) -> Box<Alert> {
    let mut alert = alert.clone();
    alert.key = Some(NoticeKey {
        agent: alert.record_key(),
        seq,
    });
    Box::new(alert)
}
