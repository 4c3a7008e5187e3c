//! Agent ids: the names of the identity and liveness nodes.

use std::fmt;

/// Longest id accepted; keeps node names short enough that 30,000 of them fit a `getChildren` reply.
pub const MAX_ID_LEN: usize = 128;

/// A validated agent id: 1–128 characters of `[A-Za-z0-9._:-]`.
///
/// The character set keeps ids safe as znode names, file names and systemd instance names alike.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidId {
    #[error("agent id is empty")]
    Empty,
    #[error("agent id is {len} characters long; at most {MAX_ID_LEN} are allowed")]
    TooLong { len: usize },
    #[error(
        "agent id {id:?} contains {ch:?}; only letters, digits, '.', '_', ':' and '-' are allowed"
    )]
    BadChar { id: String, ch: char },
    #[error("agent id {0:?} is reserved (\".\" and \"..\" cannot be znode names)")]
    Reserved(String),
}

impl AgentId {
    pub fn parse(s: &str) -> Result<AgentId, InvalidId> {
        if s.is_empty() {
            return Err(InvalidId::Empty);
        }
        let len = s.chars().count();
        if len > MAX_ID_LEN {
            return Err(InvalidId::TooLong { len });
        }
        if let Some(ch) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(InvalidId::BadChar {
                id: s.to_owned(),
                ch,
            });
        }
        if s == "." || s == ".." {
            return Err(InvalidId::Reserved(s.to_owned()));
        }
        Ok(AgentId(s.to_owned()))
    }

    /// The default id `<hostname>-<agent name>`, where the agent name is the `-n`/`--name`
    /// argument of the wrapped `flume-ng agent` command. `None` when the command names no agent.
    pub fn default_for(hostname: &str, command: &[String]) -> Option<Result<AgentId, InvalidId>> {
        let name = agent_name(command)?;
        Some(AgentId::parse(&format!("{hostname}-{name}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The value of `-n NAME`, `-nNAME`, `--name NAME` or `--name=NAME` in a `flume-ng` command line.
pub fn agent_name(command: &[String]) -> Option<&str> {
    let mut args = command.iter().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-n" || arg == "--name" {
            return args.next().map(String::as_str);
        }
        if let Some(v) = arg.strip_prefix("--name=") {
            return Some(v);
        }
        if let Some(v) = arg
            .strip_prefix("-n")
            .filter(|v| !v.is_empty() && !arg.starts_with("--"))
        {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn valid_and_invalid_ids() {
        for ok in ["a", "host-1.example.com-a1", "A_b:c-9", &"x".repeat(128)] {
            assert!(AgentId::parse(ok).is_ok(), "{ok:?} should be valid");
        }
        assert_eq!(AgentId::parse(""), Err(InvalidId::Empty));
        assert_eq!(
            AgentId::parse(&"x".repeat(129)),
            Err(InvalidId::TooLong { len: 129 })
        );
        assert!(matches!(
            AgentId::parse("a/b"),
            Err(InvalidId::BadChar { ch: '/', .. })
        ));
        assert!(matches!(
            AgentId::parse("a b"),
            Err(InvalidId::BadChar { ch: ' ', .. })
        ));
        assert!(matches!(
            AgentId::parse("agent\u{e9}"),
            Err(InvalidId::BadChar { .. })
        ));
        assert_eq!(AgentId::parse(".."), Err(InvalidId::Reserved("..".into())));
    }

    #[test]
    fn agent_name_forms() {
        let cases = [
            ("flume-ng agent -n a1 -c conf -f f.conf", Some("a1")),
            ("flume-ng agent --name a2 -c conf", Some("a2")),
            ("flume-ng agent --name=a3", Some("a3")),
            ("flume-ng agent -na4 -c conf", Some("a4")),
            ("flume-ng agent -c conf -f f.conf", None),
            ("flume-ng agent -c conf -n", None),
        ];
        for (cmd, want) in cases {
            assert_eq!(agent_name(&argv(cmd)), want, "{cmd}");
        }
    }

    #[test]
    fn default_id_joins_host_and_name() {
        let id = AgentId::default_for("web7", &argv("flume-ng agent -n a1"))
            .unwrap()
            .unwrap();
        assert_eq!(id.as_str(), "web7-a1");
        assert!(AgentId::default_for("web7", &argv("sleep 10")).is_none());
    }
}
