//! flume-watchdog: runs one Flume agent as a child, restarts it when it exits unasked, and keeps
//! two znodes for it — a persistent identity node and an ephemeral liveness node — so that the
//! watcher can tell a crash (liveness gone, identity kept) from a planned stop (identity gone first).
//!
//! The decisions live in [`supervisor`] and [`registration::machine`] (pure); [`child`] and the
//! loop of [`registration`] are the edges (processes and ZooKeeper); [`run`] ties them together
//! and never lets ZooKeeper trouble reach the agent. [`health`] reads Flume's own metrics to find
//! an agent that runs but does not work (issue 11).

pub mod child;
pub mod cli;
pub mod health;
pub mod registration;
pub mod run;
pub mod stop;
pub mod supervisor;
