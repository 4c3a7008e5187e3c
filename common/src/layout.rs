//! Where the pair's nodes live under the root. A contract: scripts and other tools read it.

use crate::AgentId;

pub const DEFAULT_ROOT: &str = "/flume-watchdog";

/// Paths of the pair's znodes under one root (relative to any chroot in the connect string).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    root: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("root {root:?} is not a valid znode path: {why}")]
pub struct InvalidRoot {
    pub root: String,
    pub why: &'static str,
}

impl Layout {
    pub fn new(root: &str) -> Result<Layout, InvalidRoot> {
        let bad = |why| {
            Err(InvalidRoot {
                root: root.to_owned(),
                why,
            })
        };
        if !root.starts_with('/') {
            return bad("it must be an absolute path such as /flume-watchdog");
        }
        if root.len() > 1 && root.ends_with('/') {
            return bad("it must not end with '/'");
        }
        if root.contains("//") {
            return bad("it must not contain an empty segment");
        }
        if root.split('/').any(|seg| seg == "." || seg == "..") {
            return bad("'.' and '..' are not allowed as segments");
        }
        if root.chars().any(|c| c.is_control()) {
            return bad("it must not contain control characters");
        }
        Ok(Layout {
            root: if root == "/" {
                String::new()
            } else {
                root.to_owned()
            },
        })
    }

    pub fn root(&self) -> &str {
        if self.root.is_empty() {
            "/"
        } else {
            &self.root
        }
    }

    /// Folder of the PERSISTENT identity nodes.
    pub fn agents_dir(&self) -> String {
        format!("{}/agents", self.root)
    }

    /// Folder of the EPHEMERAL liveness nodes.
    pub fn live_dir(&self) -> String {
        format!("{}/live", self.root)
    }

    /// Folder of the watcher's outage records (its durable outbox).
    pub fn outages_dir(&self) -> String {
        format!("{}/outages", self.root)
    }

    /// Folder of the watchers' leader election (ephemeral sequential nodes).
    pub fn watchers_dir(&self) -> String {
        format!("{}/watchers", self.root)
    }

    /// Folder of the EPHEMERAL health nodes (issue 11), beside the liveness nodes.
    pub fn health_dir(&self) -> String {
        format!("{}/health", self.root)
    }

    /// The agent's health summary (`records::HealthRecord`); only watchdogs that poll Flume's
    /// metrics write one.
    pub fn health_path(&self, id: &AgentId) -> String {
        format!("{}/health/{}", self.root, id)
    }

    /// Folder of the silences (`silence::SilenceRecord`), one PERSISTENT node each.
    pub fn silences_dir(&self) -> String {
        format!("{}/silences", self.root)
    }

    pub fn silence_path(&self, id: &str) -> String {
        format!("{}/silences/{}", self.root, id)
    }

    pub fn agent_path(&self, id: &AgentId) -> String {
        format!("{}/agents/{}", self.root, id)
    }

    pub fn live_path(&self, id: &AgentId) -> String {
        format!("{}/live/{}", self.root, id)
    }

    /// Classifies a path seen in a watch event on the root.
    pub fn classify<'a>(&self, path: &'a str) -> NodeKind<'a> {
        let Some(rest) = path.strip_prefix(self.root.as_str()) else {
            return NodeKind::Other;
        };
        if let Some(name) = rest.strip_prefix("/agents/") {
            if !name.contains('/') {
                return NodeKind::Identity(name);
            }
        } else if let Some(name) = rest.strip_prefix("/live/") {
            if !name.contains('/') {
                return NodeKind::Liveness(name);
            }
        } else if let Some(name) = rest.strip_prefix("/health/") {
            if !name.contains('/') {
                return NodeKind::Health(name);
            }
        } else if let Some(name) = rest.strip_prefix("/outages/") {
            if !name.contains('/') {
                return NodeKind::Outage(name);
            }
        } else if let Some(name) = rest.strip_prefix("/silences/") {
            if !name.contains('/') {
                return NodeKind::Silence(name);
            }
        } else if rest == "/agents" {
            return NodeKind::AgentsDir;
        } else if rest == "/live" {
            return NodeKind::LiveDir;
        } else if rest.is_empty() || rest == "/" {
            return NodeKind::Root;
        }
        NodeKind::Other
    }
}

/// What a path under the root is; names are not validated here.
#[derive(Debug, PartialEq, Eq)]
pub enum NodeKind<'a> {
    Root,
    AgentsDir,
    LiveDir,
    Identity(&'a str),
    Liveness(&'a str),
    /// A watcher's outage record.
    Outage(&'a str),
    /// An agent's health summary.
    Health(&'a str),
    /// A silence.
    Silence(&'a str),
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_classification() {
        let l = Layout::new("/flume-watchdog").unwrap();
        let id = AgentId::parse("h-a1").unwrap();
        assert_eq!(l.agent_path(&id), "/flume-watchdog/agents/h-a1");
        assert_eq!(l.live_path(&id), "/flume-watchdog/live/h-a1");
        assert_eq!(
            l.classify("/flume-watchdog/live/h-a1"),
            NodeKind::Liveness("h-a1")
        );
        assert_eq!(
            l.classify("/flume-watchdog/agents/x"),
            NodeKind::Identity("x")
        );
        assert_eq!(l.classify("/flume-watchdog/agents"), NodeKind::AgentsDir);
        assert_eq!(l.classify("/flume-watchdog/live/a/b"), NodeKind::Other);
        assert_eq!(l.classify("/flume-watchdogx/live/a"), NodeKind::Other);
        assert_eq!(
            l.classify("/flume-watchdog/outages/a"),
            NodeKind::Outage("a")
        );
        assert_eq!(l.classify("/flume-watchdog/watchers/x"), NodeKind::Other);
        assert_eq!(l.health_path(&id), "/flume-watchdog/health/h-a1");
        assert_eq!(
            l.classify("/flume-watchdog/silences/3f9a1c2e"),
            NodeKind::Silence("3f9a1c2e")
        );
        assert_eq!(
            l.silence_path("3f9a1c2e"),
            "/flume-watchdog/silences/3f9a1c2e"
        );
        assert_eq!(
            l.classify("/flume-watchdog/health/h-a1"),
            NodeKind::Health("h-a1")
        );
    }

    #[test]
    fn slash_root_and_bad_roots() {
        let l = Layout::new("/").unwrap();
        assert_eq!(l.agents_dir(), "/agents");
        assert_eq!(l.classify("/live/a"), NodeKind::Liveness("a"));
        for bad in ["flume", "/a/", "/a//b", "/a/../b", ""] {
            assert!(Layout::new(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
