//! Which watcher leads: a Curator-compatible leader latch under `<root>/watchers` (ephemeral
//! sequential nodes, each watching its predecessor only), campaigned for once per session.
//!
//! Only the leader records and delivers alerts, so the rules here are about never having two: a
//! watcher steps down as soon as its connection is lost (another may lead before it learns that
//! its session is gone), and campaigns again once the connection is back. A lone watcher waits a
//! moment for the latch before its first view, so that it leads from its first alert on.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tracing::{info, warn};
use zookeeper_client as zk;

/// How long a watcher waits for the leadership before its first view.
pub const FIRST_ELECTION_WAIT: Duration = Duration::from_secs(2);

type Campaign<'c> =
    Pin<Box<dyn Future<Output = Result<zk::LockClient<'c>, zk::Error>> + Send + 'c>>;

enum State<'c> {
    /// Neither leading nor campaigning: a campaign failed, or the connection was lost.
    Idle,
    Campaigning(Campaign<'c>),
    /// Holds the latch node (never read: dropping it deletes the node).
    Leading {
        _latch: zk::LockClient<'c>,
    },
}

/// One session's part in the election, driven by the session loop.
pub struct Leadership<'c> {
    client: &'c zk::Client,
    dir: String,
    /// The latch node's data: who this watcher is, for operators.
    me: String,
    acl: Vec<zk::Acl>,
    state: State<'c>,
}

impl<'c> Leadership<'c> {
    /// Starts campaigning at once.
    pub fn new(client: &'c zk::Client, dir: String, me: String, acl: Vec<zk::Acl>) -> Self {
        let mut l = Leadership {
            client,
            dir,
            me,
            acl,
            state: State::Idle,
        };
        l.campaign();
        l
    }

    fn campaign(&mut self) {
        let (client, dir, me, acl) = (
            self.client,
            self.dir.clone(),
            self.me.clone(),
            self.acl.clone(),
        );
        self.state = State::Campaigning(Box::pin(async move {
            let prefix = zk::LockPrefix::new_curator(&dir, "latch-")?;
            client
                .lock(
                    prefix,
                    me.as_bytes(),
                    zk::LockOptions::new(zk::Acls::new(&acl)),
                )
                .await
        }));
    }

    /// Waits up to [`FIRST_ELECTION_WAIT`] for the latch: whether this watcher leads. Any error
    /// ends the session (nothing has been seen yet).
    pub async fn first(&mut self) -> Result<bool, zk::Error> {
        let State::Campaigning(campaign) = &mut self.state else {
            return Ok(matches!(self.state, State::Leading { .. }));
        };
        match tokio::time::timeout(FIRST_ELECTION_WAIT, campaign).await {
            Ok(won) => {
                self.state = State::Leading { _latch: won? };
                info!("leading the watchers: this watcher delivers alerts");
                Ok(true)
            }
            Err(_) => {
                info!("another watcher leads; following");
                Ok(false)
            }
        }
    }

    pub fn campaigning(&self) -> bool {
        matches!(self.state, State::Campaigning(_))
    }

    /// Resolves when a campaign ends (for a `select!` guarded by [`Leadership::campaigning`]):
    /// `Ok` if it won. A failed campaign is tried again after the next reconnection. Cancel-safe:
    /// the campaign itself is kept until it ends.
    pub async fn won(&mut self) -> Result<(), zk::Error> {
        let State::Campaigning(campaign) = &mut self.state else {
            return std::future::pending().await;
        };
        let won = campaign.await;
        match won {
            Ok(lock) => {
                self.state = State::Leading { _latch: lock };
                Ok(())
            }
            Err(e) => {
                self.state = State::Idle;
                Err(e)
            }
        }
    }

    /// The connection is lost: stop campaigning, and step down if leading (true then).
    pub fn disconnected(&mut self) -> bool {
        let was_leading = matches!(self.state, State::Leading { .. });
        self.state = State::Idle;
        if was_leading {
            warn!("stepped down as leader of the watchers");
        }
        was_leading
    }

    /// The connection is back: campaign again, unless leading or campaigning already.
    pub fn reconnected(&mut self) {
        if matches!(self.state, State::Idle) {
            self.campaign();
        }
    }
}
