//! Configuration both binaries share: the ZooKeeper connect string, the root, durations.

use std::path::Path;
use std::time::Duration;

use tracing::warn;
use zookeeper_client as zk;

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

    /// The servers as `(host, port)`, the port 2181 where none is given; IPv6 hosts without
    /// their brackets.
    pub fn servers(&self) -> Vec<(String, u16)> {
        let servers = self.0.split('/').next().unwrap_or_default();
        servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|server| {
                let (host, port) = match server.strip_prefix('[') {
                    Some(rest) => match rest.split_once(']') {
                        Some((h, p)) => (h, p.strip_prefix(':')),
                        None => (rest, None),
                    },
                    None => match server.rsplit_once(':') {
                        Some((h, p)) => (h, Some(p)),
                        None => (server, None),
                    },
                };
                let port = port.and_then(|p| p.parse().ok()).unwrap_or(2181);
                (host.to_owned(), port)
            })
            .collect()
    }

    /// The chroot, such as `/kafka`; none when absent or `/`.
    pub fn chroot(&self) -> Option<&str> {
        let i = self.0.find('/')?;
        let chroot = &self.0[i..];
        (chroot != "/").then_some(chroot)
    }

    /// The same servers without the chroot: to create a chroot that does not exist yet.
    pub fn without_chroot(&self) -> ConnectString {
        ConnectString(self.0.split('/').next().unwrap_or_default().to_owned())
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
    /// `digest` credentials sent on every connection; `None` connects anonymously.
    pub auth: Option<ZkAuth>,
    /// The ACL of every node the pair creates (see [`crate::session::acls`]).
    pub acl: NodeAcl,
}

impl ZkConfig {
    /// Anonymous, every node open to anyone (`world-all`): the behaviour without `--zk-auth`.
    pub fn new(connect: ConnectString, session_timeout: Duration) -> ZkConfig {
        ZkConfig {
            connect,
            session_timeout,
            auth: None,
            acl: NodeAcl::world_all(),
        }
    }
}

/// A secret such as a password: its `Debug` never shows it, and it has no `Display`, so it cannot
/// end up in a log line, a panic or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A clap `value_parser` that cannot fail, so clap never echoes the value in an error: the
    /// value is checked later, by code whose messages leave it out.
    pub fn from_arg(s: &str) -> Result<Secret, std::convert::Infallible> {
        Ok(Secret(s.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// ZooKeeper `digest` credentials, `user:password`. `Debug` and `Display` show the user only.
#[derive(Clone, PartialEq, Eq)]
pub struct ZkAuth {
    user: String,
    password: Secret,
}

/// Why credentials were refused. Never contains the value itself.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{why} (expected USER:PASSWORD; the value is not shown)")]
pub struct InvalidZkAuth {
    pub why: &'static str,
}

impl ZkAuth {
    /// Parses `user:password` (the user ends at the first `:`; the password may contain `:`).
    pub fn parse(s: &str) -> Result<ZkAuth, InvalidZkAuth> {
        let bad = |why| Err(InvalidZkAuth { why });
        if s.is_empty() {
            return bad("it is empty");
        }
        if s.chars().any(char::is_control) {
            return bad("it contains a control character such as a line break");
        }
        let Some((user, password)) = s.split_once(':') else {
            return bad("it has no ':' between the user and the password");
        };
        if user.is_empty() {
            return bad("the user (before the first ':') is empty");
        }
        if password.is_empty() {
            return bad("the password (after the first ':') is empty");
        }
        Ok(ZkAuth {
            user: user.to_owned(),
            password: Secret::new(password),
        })
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// What ZooKeeper's `addAuth("digest", …)` takes: `user:password`.
    pub fn credentials(&self) -> Secret {
        Secret(format!("{}:{}", self.user, self.password.expose()))
    }

    /// The id ZooKeeper's `digest` scheme gives these credentials in an ACL:
    /// `user:base64(sha1("user:password"))`.
    pub fn digest_id(&self) -> String {
        use base64::Engine as _;
        use sha1::Digest as _;
        let hash = sha1::Sha1::digest(self.credentials().expose().as_bytes());
        format!(
            "{}:{}",
            self.user,
            base64::engine::general_purpose::STANDARD.encode(hash)
        )
    }

    /// Reads `user:password` from a file (a trailing line break is ignored). A file that group
    /// or others may read is used, with a warning naming the file and its mode.
    pub fn read_file(path: &Path) -> Result<ZkAuth, String> {
        use std::io::Read as _;
        use std::os::unix::fs::PermissionsExt as _;
        let shown = path.display();
        let file = std::fs::File::open(path)
            .map_err(|e| format!("--zk-auth-file {shown}: cannot open it: {e}"))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("--zk-auth-file {shown}: cannot read it: {e}"))?;
        if !meta.is_file() {
            return Err(format!("--zk-auth-file {shown}: it is not a regular file"));
        }
        let mode = meta.permissions().mode();
        if auth_file_too_open(mode) {
            warn!(
                file = %shown,
                mode = %format!("{:04o}", mode & 0o7777),
                "the ZooKeeper credentials file {shown} is readable by group or others (mode {:04o}); make it private: chmod 600 {shown}",
                mode & 0o7777
            );
        }
        let mut text = String::new();
        file.take(AUTH_FILE_MAX + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("--zk-auth-file {shown}: cannot read it: {e}"))?;
        if text.len() as u64 > AUTH_FILE_MAX {
            return Err(format!(
                "--zk-auth-file {shown}: it is larger than {AUTH_FILE_MAX} bytes; it must hold one line USER:PASSWORD"
            ));
        }
        ZkAuth::parse(text.trim_end_matches(['\n', '\r']))
            .map_err(|e| format!("--zk-auth-file {shown}: {e}"))
    }
}

/// Longest credentials file read.
const AUTH_FILE_MAX: u64 = 64 * 1024;

/// Whether a credentials file with this mode deserves a warning: group or others have any access.
pub fn auth_file_too_open(mode: u32) -> bool {
    mode & 0o077 != 0
}

impl std::fmt::Debug for ZkAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkAuth")
            .field("user", &self.user)
            .field("password", &self.password)
            .finish()
    }
}

impl std::fmt::Display for ZkAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "digest user {}", self.user)
    }
}

/// One grant of `--zk-acl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AclGrant {
    /// `creator-all`: the holder of the credentials may do everything.
    CreatorAll,
    /// `world-read`: anyone may read.
    WorldRead,
    /// `world-all`: anyone may do everything (the behaviour without credentials).
    WorldAll,
}

impl AclGrant {
    pub fn name(self) -> &'static str {
        match self {
            AclGrant::CreatorAll => "creator-all",
            AclGrant::WorldRead => "world-read",
            AclGrant::WorldAll => "world-all",
        }
    }
}

/// `--zk-acl`: a comma-separated list of grants such as `creator-all,world-read`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclSpec(Vec<AclGrant>);

impl AclSpec {
    pub fn parse(s: &str) -> Result<AclSpec, String> {
        let mut grants = Vec::new();
        for word in s.split(',').map(str::trim) {
            let grant = match word {
                "creator-all" => AclGrant::CreatorAll,
                "world-read" => AclGrant::WorldRead,
                "world-all" => AclGrant::WorldAll,
                "" => return Err("--zk-acl: a grant is empty (write e.g. creator-all,world-read)".into()),
                other => {
                    return Err(format!(
                        "--zk-acl: unknown grant {other:?} (known: creator-all, world-read, world-all; e.g. creator-all,world-read)"
                    ))
                }
            };
            if !grants.contains(&grant) {
                grants.push(grant);
            }
        }
        Ok(AclSpec(grants))
    }

    /// `creator-all,world-read` with credentials, `world-all` without.
    pub fn default_for(authenticated: bool) -> AclSpec {
        if authenticated {
            AclSpec(vec![AclGrant::CreatorAll, AclGrant::WorldRead])
        } else {
            AclSpec(vec![AclGrant::WorldAll])
        }
    }

    pub fn grants(&self) -> &[AclGrant] {
        &self.0
    }
}

impl std::fmt::Display for AclSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|g| g.name()).collect();
        f.write_str(&names.join(","))
    }
}

/// The ACL of every node the pair creates, derived from an [`AclSpec`] and the credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAcl {
    spec: AclSpec,
    list: Vec<zk::Acl>,
}

impl NodeAcl {
    /// `creator-all` becomes `digest:<user>:<hash>` with all permissions (what ZooKeeper's `auth`
    /// scheme would store, written out so that it is known before any node exists).
    pub fn new(spec: AclSpec, auth: Option<&ZkAuth>) -> Result<NodeAcl, String> {
        let grants = spec.grants();
        if !grants.contains(&AclGrant::CreatorAll) && !grants.contains(&AclGrant::WorldAll) {
            return Err(format!(
                "--zk-acl {spec}: nobody could change or delete the nodes; add creator-all (with --zk-auth) or world-all"
            ));
        }
        let mut list = Vec::new();
        for grant in grants {
            match grant {
                AclGrant::CreatorAll => {
                    let Some(auth) = auth else {
                        return Err(format!(
                            "--zk-acl {spec}: creator-all needs credentials: give --zk-auth or --zk-auth-file"
                        ));
                    };
                    list.push(zk::Acl::new(
                        zk::Permission::ALL,
                        zk::AuthId::new("digest", &auth.digest_id()),
                    ));
                }
                AclGrant::WorldAll => {
                    list.push(zk::Acl::new(zk::Permission::ALL, zk::AuthId::anyone()))
                }
                // Implied by world-all.
                AclGrant::WorldRead if grants.contains(&AclGrant::WorldAll) => {}
                AclGrant::WorldRead => {
                    list.push(zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone()))
                }
            }
        }
        Ok(NodeAcl { spec, list })
    }

    /// Anyone may do everything.
    pub fn world_all() -> NodeAcl {
        NodeAcl {
            spec: AclSpec::default_for(false),
            list: zk::Acls::anyone_all().to_vec(),
        }
    }

    pub fn spec(&self) -> &AclSpec {
        &self.spec
    }

    pub fn list(&self) -> &[zk::Acl] {
        &self.list
    }

    pub fn acls(&self) -> zk::Acls<'_> {
        zk::Acls::new(&self.list)
    }
}

impl Default for NodeAcl {
    fn default() -> NodeAcl {
        NodeAcl::world_all()
    }
}

/// `--zk-auth`, `--zk-auth-file` and `--zk-acl` as given (from flags or the environment), made
/// into credentials and the node ACL. Every problem goes to `errors`; no message shows a secret.
pub fn zk_security(
    auth: Option<&Secret>,
    auth_file: Option<&Path>,
    acl: Option<&str>,
    errors: &mut Vec<String>,
) -> Option<(Option<ZkAuth>, NodeAcl)> {
    let before = errors.len();
    let auth = match (auth, auth_file) {
        (Some(_), Some(_)) => {
            errors.push("give either --zk-auth or --zk-auth-file, not both".to_owned());
            None
        }
        (Some(secret), None) => ZkAuth::parse(secret.expose())
            .map(Some)
            .map_err(|e| errors.push(format!("--zk-auth: {e}")))
            .ok(),
        (None, Some(path)) => ZkAuth::read_file(path)
            .map(Some)
            .map_err(|e| errors.push(e))
            .ok(),
        (None, None) => Some(None),
    };
    let spec = match acl {
        Some(s) => AclSpec::parse(s).map_err(|e| errors.push(e)).ok(),
        None => auth.as_ref().map(|a| AclSpec::default_for(a.is_some())),
    };
    // An ACL that needs credentials is only judged once the credentials could be read.
    let (Some(auth), Some(spec)) = (auth, spec) else {
        return None;
    };
    let acl = NodeAcl::new(spec, auth.as_ref())
        .map_err(|e| errors.push(e))
        .ok()?;
    (errors.len() == before).then_some((auth, acl))
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
    fn servers_and_chroot() {
        let c = ConnectString::parse("zk1:2182,zk2,[::1]:2183/kafka/a").unwrap();
        assert_eq!(
            c.servers(),
            [
                ("zk1".to_owned(), 2182),
                ("zk2".to_owned(), 2181),
                ("::1".to_owned(), 2183)
            ]
        );
        assert_eq!(c.chroot(), Some("/kafka/a"));
        assert_eq!(c.without_chroot().as_str(), "zk1:2182,zk2,[::1]:2183");
        assert_eq!(ConnectString::parse("zk1:2181/").unwrap().chroot(), None);
        assert_eq!(ConnectString::parse("zk1").unwrap().chroot(), None);
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
    fn good_credentials() {
        let a = ZkAuth::parse("alice:secret").unwrap();
        assert_eq!(a.user(), "alice");
        assert_eq!(a.credentials().expose(), "alice:secret");
        // The password may contain ':' and spaces; the user ends at the first ':'.
        let b = ZkAuth::parse("bob:pa:ss word").unwrap();
        assert_eq!(b.user(), "bob");
        assert_eq!(b.credentials().expose(), "bob:pa:ss word");
    }

    #[test]
    fn bad_credentials_say_why_without_the_value() {
        let cases = [
            ("", "empty"),
            ("alicesecret", "no ':'"),
            (":secret", "user"),
            ("alice:", "password"),
            ("alice:sec\nret", "control character"),
            ("alice:secret\n", "control character"),
        ];
        for (input, want) in cases {
            let e = ZkAuth::parse(input).expect_err(input);
            let text = e.to_string();
            assert!(text.contains(want), "{input:?}: {text}");
            assert!(text.contains("USER:PASSWORD"), "{text}");
            for part in ["alice", "secret", "sec"] {
                assert!(!text.contains(part), "{text:?} shows {part:?}");
            }
        }
    }

    #[test]
    fn debug_and_display_hide_the_password() {
        let a = ZkAuth::parse("alice:hunter2").unwrap();
        for shown in [
            format!("{a:?}"),
            format!("{a:#?}"),
            format!("{a}"),
            format!("{:?}", a.credentials()),
            format!("{:?}", Secret::new("alice:hunter2")),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert!(format!("{a:?}").contains("alice"));
        assert!(format!("{a:?}").contains("<redacted>"));
        let mut cfg = ZkConfig::new(
            ConnectString::parse("zk1:2181").unwrap(),
            Duration::from_secs(10),
        );
        cfg.acl = NodeAcl::new(AclSpec::default_for(true), Some(&a)).unwrap();
        cfg.auth = Some(a);
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn digest_id_is_zookeepers() {
        // python3: base64.b64encode(hashlib.sha1(b"alice:secret").digest())
        let a = ZkAuth::parse("alice:secret").unwrap();
        assert_eq!(a.digest_id(), "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=");
    }

    fn acl_of(
        spec: &str,
        auth: Option<&ZkAuth>,
    ) -> Result<Vec<(String, String, zk::Permission)>, String> {
        let acl = NodeAcl::new(AclSpec::parse(spec)?, auth)?;
        Ok(acl
            .list()
            .iter()
            .map(|a| (a.scheme().to_owned(), a.id().to_owned(), a.permission()))
            .collect())
    }

    #[test]
    fn acl_lists_from_specs() -> Result<(), String> {
        let alice = ZkAuth::parse("alice:secret").unwrap();
        let digest = || ("digest".to_owned(), alice.digest_id(), zk::Permission::ALL);
        let world = |p| ("world".to_owned(), "anyone".to_owned(), p);
        assert_eq!(
            acl_of("creator-all,world-read", Some(&alice)).unwrap(),
            [digest(), world(zk::Permission::READ)]
        );
        assert_eq!(acl_of("creator-all", Some(&alice)).unwrap(), [digest()]);
        assert_eq!(
            acl_of("world-all", Some(&alice)).unwrap(),
            [world(zk::Permission::ALL)]
        );
        assert_eq!(
            acl_of("world-all", None).unwrap(),
            [world(zk::Permission::ALL)]
        );
        assert_eq!(
            acl_of(" world-read , world-all,world-all", None).unwrap(),
            [world(zk::Permission::ALL)]
        );
        assert!(acl_of("creator-all", None)
            .unwrap_err()
            .contains("--zk-auth"));
        assert!(acl_of("world-read", Some(&alice))
            .unwrap_err()
            .contains("nobody"));
        assert!(acl_of("creator-al", None)
            .unwrap_err()
            .contains("unknown grant"));
        assert!(acl_of("creator-all,", None).unwrap_err().contains("empty"));
        // The defaults.
        assert_eq!(
            NodeAcl::new(AclSpec::default_for(true), Some(&alice)),
            NodeAcl::new(AclSpec::parse("creator-all,world-read")?, Some(&alice))
        );
        assert_eq!(NodeAcl::default().list(), &zk::Acls::anyone_all()[..]);
        assert_eq!(
            AclSpec::default_for(true).to_string(),
            "creator-all,world-read"
        );
        Ok(())
    }

    #[test]
    fn security_flags_together() {
        let secret = Secret::new("alice:secret");
        let mut errors = Vec::new();
        let (auth, acl) = zk_security(Some(&secret), None, None, &mut errors).unwrap();
        assert_eq!(auth.unwrap().user(), "alice");
        assert_eq!(acl.spec().to_string(), "creator-all,world-read");
        let (auth, acl) = zk_security(None, None, None, &mut errors).unwrap();
        assert!(auth.is_none());
        assert_eq!(acl, NodeAcl::world_all());
        assert!(errors.is_empty(), "{errors:?}");

        // Both sources; a bad value with an ACL that would need it: one error each, no cascade.
        let bad = Secret::new("alicesecret");
        assert!(zk_security(Some(&secret), Some(Path::new("/x")), None, &mut errors).is_none());
        assert!(zk_security(Some(&bad), None, Some("creator-all"), &mut errors).is_none());
        assert!(zk_security(None, None, Some("creator-all"), &mut errors).is_none());
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("not both"), "{errors:?}");
        assert!(errors[1].starts_with("--zk-auth: "), "{errors:?}");
        assert!(errors[2].contains("needs credentials"), "{errors:?}");
        assert!(!errors.join("\n").contains("secret"), "{errors:?}");
    }

    #[test]
    fn credentials_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("common-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("zk-auth");
        std::fs::write(&file, "alice:secret\r\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let a = ZkAuth::read_file(&file).unwrap();
        assert_eq!(a.credentials().expose(), "alice:secret");

        std::fs::write(&file, "alice:secret\nsecond line\n").unwrap();
        let e = ZkAuth::read_file(&file).unwrap_err();
        assert!(
            e.contains("control character") && e.contains("zk-auth"),
            "{e}"
        );
        assert!(!e.contains("secret"), "{e}");

        let missing = dir.join("missing");
        let e = ZkAuth::read_file(&missing).unwrap_err();
        assert!(
            e.contains("--zk-auth-file") && e.contains("missing") && e.contains("cannot open"),
            "{e}"
        );
        let e = ZkAuth::read_file(&dir).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn which_file_modes_warn() {
        for private in [0o100600, 0o100400, 0o100700, 0o600, 0o4600] {
            assert!(!auth_file_too_open(private), "{private:o}");
        }
        for open in [
            0o100644, 0o100640, 0o100604, 0o100660, 0o100666, 0o610, 0o601,
        ] {
            assert!(auth_file_too_open(open), "{open:o}");
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
