//! Where the page, `/api/v1/agents` and the agent metrics get the agents: ZooKeeper, read through
//! [`crate::status`] as `flume-watcher status` reads it, over a session of the listener's own.
//!
//! Why not the watch loop's view: `/api/v1/agents` must be exactly `status --json`, labels and
//! the nodes' times included, which the monitor does not keep; and reading here changes nothing on
//! the alerting path (its own session, its own tasks). Why it stays cheap: one read serves every
//! request for [`FRESH`] (concurrent requests wait for the same read instead of starting their
//! own), so ten browsers and a Prometheus scraping cost one listing a second at most; each read is
//! bounded by [`READ_WAIT`], so a request never hangs on a ZooKeeper that is away.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{debug, warn};
use zookeeper_client as zk;

use common::config::ZkConfig;
use common::{session, Layout};

use crate::status::{self, Status, StatusError};

/// How long one read serves.
pub const FRESH: Duration = Duration::from_secs(1);
/// The longest a read (with a new session, if needed) may take.
pub const READ_WAIT: Duration = Duration::from_secs(3);

/// What one read found: `status`'s view, and every watcher of the election in order (the first
/// leads), as each registered itself (host, pid, since).
#[derive(Debug)]
pub struct View {
    pub status: Status,
    pub watchers: Vec<serde_json::Value>,
}

#[derive(Debug, thiserror::Error, Clone)]
pub enum ReadError {
    #[error(
        "cannot read ZooKeeper within {}: it may be unreachable",
        common::time::human(READ_WAIT)
    )]
    TimedOut,
    #[error("cannot reach ZooKeeper: {0}")]
    Connect(String),
    #[error("{0}")]
    Status(String),
}

struct Cache {
    client: Option<zk::Client>,
    last: Option<(Instant, Result<Arc<View>, ReadError>)>,
}

pub struct Source {
    zk: ZkConfig,
    layout: Layout,
    cache: Mutex<Cache>,
}

impl Source {
    pub fn new(zk: ZkConfig, layout: Layout) -> Source {
        Source {
            zk,
            layout,
            cache: Mutex::new(Cache {
                client: None,
                last: None,
            }),
        }
    }

    /// The agents as ZooKeeper has them (at most [`FRESH`] old), or why they cannot be read.
    pub async fn view(&self) -> Result<Arc<View>, ReadError> {
        let mut cache = self.cache.lock().await;
        if let Some((at, last)) = &cache.last {
            if at.elapsed() < FRESH {
                return last.clone();
            }
        }
        let result = match tokio::time::timeout(READ_WAIT, self.read(&mut cache.client)).await {
            Ok(result) => result,
            Err(_) => {
                // A session that did not answer in time is not trusted again.
                cache.client = None;
                Err(ReadError::TimedOut)
            }
        };
        if let Err(e) = &result {
            debug!(error = %e, "status page: cannot read the agents");
        }
        cache.last = Some((Instant::now(), result.clone()));
        result
    }

    async fn read(&self, client: &mut Option<zk::Client>) -> Result<Arc<View>, ReadError> {
        if client.as_ref().is_some_and(|c| c.state().is_terminated()) {
            *client = None;
        }
        let c = match client {
            Some(c) => c,
            None => {
                let c = session::connect(&self.zk)
                    .await
                    .map_err(|e| ReadError::Connect(e.to_string()))?;
                client.insert(c)
            }
        };
        let connect = self.zk.connect.to_string();
        let read = async {
            let status = status::read_with(c, &self.layout, &connect).await?;
            let watchers = watchers(c, &self.layout).await?;
            Ok::<_, StatusError>(View { status, watchers })
        };
        match read.await {
            Ok(view) => Ok(Arc::new(view)),
            Err(e) => {
                if matches!(&e, StatusError::Zk(z) if is_over(z)) {
                    *client = None;
                }
                let e = match e {
                    StatusError::Zk(zk::Error::NoAuth) => StatusError::NotAuthorized {
                        root: self.layout.root().to_owned(),
                        user: self.zk.auth.as_ref().map(|a| a.user().to_owned()),
                    },
                    e => e,
                };
                Err(ReadError::Status(e.to_string()))
            }
        }
    }

    /// Closes the listener's session (its end is not waited for long: the watcher is stopping).
    pub async fn close(&self) {
        let client = self.cache.lock().await.client.take();
        if let Some(client) = client {
            session::close(client, Duration::from_millis(500)).await;
        }
    }
}

fn is_over(e: &zk::Error) -> bool {
    matches!(
        e,
        zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::AuthFailed
    )
}

/// Every watcher's latch node, in election order (the lowest sequence number leads).
async fn watchers(
    client: &zk::Client,
    layout: &Layout,
) -> Result<Vec<serde_json::Value>, StatusError> {
    let dir = layout.watchers_dir();
    let mut names = match client.list_children(&dir).await {
        Ok(n) => n,
        Err(zk::Error::NoNode) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    names.sort_by_key(|n| status::latch_sequence(n).unwrap_or(u64::MAX));
    let mut out = Vec::new();
    for name in names {
        match client.get_data(&format!("{dir}/{name}")).await {
            Ok((data, _)) => out.push(serde_json::from_slice(&data).unwrap_or_else(|_| {
                warn!(node = %name, "a watcher's election node is not JSON");
                serde_json::Value::Null
            })),
            Err(zk::Error::NoNode) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}
