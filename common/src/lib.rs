//! What flume-watchdog and flume-watcher must agree on: where the nodes live in ZooKeeper
//! (`layout`), what they hold (`records`, `silence`), which agent ids are valid (`id`), how a session is
//! opened and closed (`session`), the configuration both binaries parse (`config`, `cli`) and
//! where their logs go (`logging`).
//!
//! The layout and the records are a contract read by other tools and scripts, so they live here,
//! once, and readers are lenient: a node with garbage in it is logged and used by its name.

pub mod cli;
pub mod config;
pub mod id;
pub mod layout;
pub mod logging;
pub mod records;
pub mod session;
pub mod silence;
pub mod systemd;
pub mod time;

pub use id::{AgentId, InvalidId};
pub use layout::Layout;
pub use records::{
    AgentState, ExitRecord, HealthReason, HealthRecord, IdentityRecord, LivenessRecord,
    RestartCause, Verdict,
};
