//! Fixtures for the end-to-end scenarios: a real ZooKeeper (single server or a 3-node ensemble),
//! a real HTTP receiver for alerts, a real SMTP server ([`smtp`]) and a real Alertmanager
//! ([`alertmanager`]), real processes (the workspace binaries and a stand-in for
//! `flume-ng agent`). The watcher's channel tests use the SMTP server and the Alertmanager too
//! (`scenarios` is a dev-dependency of `watcher`): one fixture each.
//!
//! All fixtures are synchronous, so plain `#[test]` functions use them. Every wait has a deadline
//! and, when it runs out, panics saying what it waited for and what it saw. Every process a fixture
//! starts is killed when the fixture is dropped (also when the test panics) and, through
//! `PR_SET_PDEATHSIG`, when the test process exits.

pub mod alertmanager;
pub mod browser;
pub mod faults;
pub mod health;
pub mod http;
pub mod pair;
pub mod procs;
pub mod scratch;
pub mod smtp;
pub mod spawn;
pub mod tools;
pub mod wait;
pub mod zk;

/// The HTTP receiver, a crate of its own so that the watcher's tests and the bench use it too.
pub use ::receiver;

pub use procs::{bin, pid_alive, stand_in_agent, wait_pid_gone, Proc};
pub use receiver::{Receiver, Reply, Request};
pub use scratch::{free_port, TempDir};
pub use wait::{deadline, deadline_ms, poll_until};
pub use zk::{ZkEnsemble, ZkProbe, ZkServer};
pub use zookeeper_client::Stat;

use std::sync::atomic::{AtomicU64, Ordering};

/// A ZooKeeper path unique to this test and this process, e.g. `/t-my_test-4242-3`, so tests that
/// share one server ([`ZkServer::shared`]) never see each other's nodes.
pub fn unique_root(test_name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name: String = test_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("/t-{name}-{}-{n}", std::process::id())
}
