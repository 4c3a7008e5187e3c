//! Opening, preparing and closing ZooKeeper sessions, with the crate's pitfalls handled once.

use std::time::Duration;

use tracing::{debug, warn};
use zookeeper_client as zk;

use crate::config::ZkConfig;

/// Opens a session. Fails with `Timeout` after about the session timeout while no server answers;
/// callers retry with [`Backoff`].
pub async fn connect(cfg: &ZkConfig) -> Result<zk::Client, zk::Error> {
    let client = zk::Client::connector()
        .with_session_timeout(cfg.session_timeout)
        .connect(cfg.connect.as_str())
        .await?;
    debug!(session = %client.session_id(), timeout_ms = client.session_timeout().as_millis() as u64, "zookeeper session open");
    Ok(client)
}

/// The ACL of every node the pair creates.
pub fn acls() -> zk::Acls<'static> {
    zk::Acls::anyone_all()
}

/// `mkdir -p` for the pair's persistent folders.
pub async fn ensure_dir(client: &zk::Client, path: &str) -> Result<(), zk::Error> {
    match client
        .mkdir(path, &zk::CreateMode::Persistent.with_acls(acls()))
        .await
    {
        Ok(()) | Err(zk::Error::NodeExists) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Closes a session so that its ephemeral nodes vanish now, not at expiry.
///
/// Dropping the last `Client` only asks the session task to close; a process that exits right
/// after may leave its ephemerals behind until the session expires. So wait for `Closed`.
pub async fn close(client: zk::Client, timeout: Duration) {
    let mut states = client.state_watcher();
    let session = client.session_id();
    drop(client);
    if states.peek_state().is_terminated() {
        return;
    }
    let closed = async {
        loop {
            match states.changed().await {
                zk::SessionState::Closed
                | zk::SessionState::Expired
                | zk::SessionState::AuthFailed => return,
                _ => continue,
            }
        }
    };
    if tokio::time::timeout(timeout, closed).await.is_err() {
        warn!(%session, "zookeeper session did not confirm close in time");
    }
}

/// Capped exponential backoff: `initial`, doubling, at most `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay to wait now; the following one doubles.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let seen: Vec<_> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(seen, [100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}
