//! Configuration both binaries share: the ZooKeeper connect string, the root, durations.

use std::time::Duration;

/// A checked ZooKeeper connect string: `host[:port][,host[:port]]…[/chroot]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectString(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid ZooKeeper connect string {input:?}: {why} (expected host:port[,host:port…][/chroot], e.g. zk1:2181,zk2:2181/kafka)")]
pub struct InvalidConnectString {
    pub input: String,
    pub why: String,
}

impl ConnectString {
    pub fn parse(input: &str) -> Result<ConnectString, InvalidConnectString> {
        let err = |why: String| InvalidConnectString {
            input: input.to_owned(),
            why,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("it is empty".into()));
        }
        let (servers, chroot) = match s.find('/') {
            Some(i) => (&s[..i], Some(&s[i..])),
            None => (s, None),
        };
        if let Some(chroot) = chroot {
            if chroot.len() > 1 && (chroot.ends_with('/') || chroot.contains("//")) {
                return Err(err(format!("chroot {chroot:?} is not a valid path")));
            }
        }
        for server in servers.split(',') {
            let server = server.trim();
            if server.is_empty() {
                return Err(err("a server address is empty".into()));
            }
            let (host, port) = if let Some(rest) = server.strip_prefix('[') {
                // IPv6 literal: [::1]:2181
                match rest.split_once(']') {
                    Some((h, "")) => (h, None),
                    Some((h, p)) => match p.strip_prefix(':') {
                        Some(p) => (h, Some(p)),
                        None => return Err(err(format!("server {server:?} has text after ']'"))),
                    },
                    None => return Err(err(format!("server {server:?} lacks a closing ']'"))),
                }
            } else {
                match server.rsplit_once(':') {
                    Some((h, _)) if h.contains(':') => {
                        return Err(err(format!(
                            "server {server:?}: write IPv6 addresses as [addr]:port"
                        )))
                    }
                    Some((h, p)) => (h, Some(p)),
                    None => (server, None),
                }
            };
            if host.is_empty() {
                return Err(err(format!("server {server:?} has no host")));
            }
            if host.contains(char::is_whitespace) {
                return Err(err(format!("server {server:?} contains white space")));
            }
            if let Some(port) = port {
                match port.parse::<u16>() {
                    Ok(p) if p > 0 => {}
                    _ => {
                        return Err(err(format!(
                            "server {server:?} has an invalid port {port:?}"
                        )))
                    }
                }
            }
        }
        Ok(ConnectString(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ConnectString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses `500ms`, `10s`, `2m`, `1h 30m` for clap.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (write durations like 500ms, 10s, 2m)"))
}

/// How to reach ZooKeeper: shared by every command of both binaries.
#[derive(Clone, Debug)]
pub struct ZkConfig {
    pub connect: ConnectString,
    pub session_timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_connect_strings() {
        for ok in [
            "zk1:2181",
            "zk1:2181,zk2:2181/kafka",
            "127.0.0.1:2181/a/b",
            "zk1,zk2",
            "zk1:2181/",
            "[::1]:2181",
        ] {
            assert!(
                ConnectString::parse(ok).is_ok(),
                "{ok:?} should be accepted"
            );
        }
    }

    #[test]
    fn bad_connect_strings_say_why() {
        let cases = [
            ("", "empty"),
            ("zk1:2181,,zk2:2181", "empty"),
            ("zk1:notaport", "invalid port"),
            ("zk1:70000", "invalid port"),
            (":2181", "no host"),
            ("zk1:2181/kafka/", "chroot"),
            ("zk 1:2181", "white space"),
        ];
        for (input, want) in cases {
            let e = ConnectString::parse(input).expect_err(input);
            assert!(e.to_string().contains(want), "{input:?}: {e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("ten").unwrap_err().contains("500ms"));
    }
}
