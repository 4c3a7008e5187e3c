//! `flume-watchdog stop`: asks a running watchdog, from any host, to stop its agent — by deleting
//! the identity node, which is also what tells the watcher the stop is planned.

use std::time::{Duration, Instant};

use zookeeper_client as zk;

use common::config::ZkConfig;
use common::records::LivenessView;
use common::{session, AgentId, Layout};

#[derive(Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// The liveness node is gone: the agent has stopped.
    Stopped { after: Duration },
    /// The identity node was deleted, but the liveness node is still there after `--wait`.
    StillLive {
        waited: Duration,
        host: Option<String>,
        watchdog_pid: Option<u32>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StopError {
    #[error("cannot reach ZooKeeper at {connect}: {source}")]
    Connect {
        connect: String,
        source: session::ConnectError,
    },
    #[error("no agent {id} is registered under {root} (no identity or liveness node)")]
    NotRegistered { id: String, root: String },
    /// ZooKeeper answered `NoAuth`: the nodes were created with credentials this command lacks.
    #[error("not authorized: give the watchdog's credentials with --zk-auth USER:PASSWORD, --zk-auth-file PATH or FLUME_WATCHDOG_ZK_AUTH ({})", match .user {
        Some(user) => format!("ZooKeeper refused user {user} access to {path}: not the credentials the watchdog registered with"),
        None => format!("ZooKeeper refused access to {path} without credentials"),
    })]
    NotAuthorized { path: String, user: Option<String> },
    #[error("ZooKeeper refused the request: {0}")]
    Zk(#[from] zk::Error),
}

pub async fn stop(
    zk_cfg: &ZkConfig,
    layout: &Layout,
    id: &AgentId,
    wait: Duration,
) -> Result<StopOutcome, StopError> {
    let client = session::connect_now(zk_cfg)
        .await
        .map_err(|source| StopError::Connect {
            connect: zk_cfg.connect.to_string(),
            source,
        })?;
    let result = stop_with(&client, layout, id, wait).await;
    session::close(client, Duration::from_secs(2)).await;
    match result {
        Err(StopError::Zk(zk::Error::NoAuth)) => Err(StopError::NotAuthorized {
            path: layout.agent_path(id),
            user: zk_cfg.auth.as_ref().map(|a| a.user().to_owned()),
        }),
        other => other,
    }
}

async fn stop_with(
    client: &zk::Client,
    layout: &Layout,
    id: &AgentId,
    wait: Duration,
) -> Result<StopOutcome, StopError> {
    let started = Instant::now();
    let identity = layout.agent_path(id);
    let live = layout.live_path(id);
    match client.delete(&identity, None).await {
        Ok(()) => {}
        Err(zk::Error::NoNode) => {
            if client.check_stat(&live).await?.is_none() {
                return Err(StopError::NotRegistered {
                    id: id.to_string(),
                    root: layout.root().to_owned(),
                });
            }
        }
        Err(e) => return Err(e.into()),
    }
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (stat, watcher) = client.check_and_watch_stat(&live).await?;
        if stat.is_none() {
            return Ok(StopOutcome::Stopped {
                after: started.elapsed(),
            });
        }
        if tokio::time::timeout_at(deadline, watcher.changed())
            .await
            .is_err()
        {
            let (host, watchdog_pid) = match client.get_data(&live).await {
                Ok((data, _)) => {
                    let (view, _) = LivenessView::parse(&data);
                    (view.host, view.watchdog_pid)
                }
                Err(zk::Error::NoNode) => {
                    return Ok(StopOutcome::Stopped {
                        after: started.elapsed(),
                    })
                }
                Err(e) => return Err(e.into()),
            };
            return Ok(StopOutcome::StillLive {
                waited: wait,
                host,
                watchdog_pid,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_authorized_says_what_to_give() {
        for user in [None, Some("alice".to_owned())] {
            let e = StopError::NotAuthorized {
                path: "/r/agents/a1".into(),
                user: user.clone(),
            };
            let text = e.to_string();
            assert!(
                text.starts_with("not authorized: give the watchdog's credentials with --zk-auth"),
                "{text}"
            );
            assert!(text.contains("/r/agents/a1"), "{text}");
            assert_eq!(text.contains("alice"), user.is_some(), "{text}");
        }
    }
}
