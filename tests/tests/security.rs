//! ZooKeeper digest authentication and ACLs end to end: real ZooKeeper, the real binaries.
//!
//! With `--zk-auth`, every node the pair creates belongs to its credentials (anyone may read), so
//! a client without them can neither delete an identity node (which would silence alerts) nor
//! stop an agent; the password never shows in any output.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use scenarios::pair::{events_of, Pair};
use scenarios::{bin, deadline, unique_root, Proc, TempDir, ZkServer};
use zookeeper_client::{Acl, Client, CreateMode, Error as ZkError, Permission, SessionState};

/// The credentials of the pair under test; the password is distinctive so that any leak is found.
const PASSWORD: &str = "s3cr3t-XYZZY";
const AUTH: &str = "alice:s3cr3t-XYZZY";
/// ZooKeeper's digest id of [`AUTH`]: `alice:base64(sha1("alice:s3cr3t-XYZZY"))`.
const DIGEST_ID: &str = "alice:r+tM1t4txdElEhsz4LUoKoeB3ME=";

/// A ZooKeeper client authenticated with `digest` credentials, with a runtime of its own.
struct Authed {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
}

impl Authed {
    fn connect(connect: &str, auth: &str) -> Authed {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let client = rt
            .block_on(
                Client::connector()
                    .with_session_timeout(Duration::from_secs(4))
                    .with_auth("digest", auth.as_bytes())
                    .connect(connect),
            )
            .unwrap_or_else(|e| panic!("authenticated client cannot connect to {connect}: {e}"));
        Authed {
            rt,
            client: Some(client),
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("client")
    }

    /// What the watcher would see of an agent that died: an identity node and a liveness node
    /// that vanishes. Its `down` alert proves the watcher has handled everything before it.
    fn sentinel(&self, pair: &Pair, name: &str) {
        let acl = [
            Acl::new(
                Permission::ALL,
                zookeeper_client::AuthId::new("digest", DIGEST_ID),
            ),
            Acl::new(Permission::READ, zookeeper_client::AuthId::anyone()),
        ];
        let acls = zookeeper_client::Acls::new(&acl);
        let c = self.client();
        self.rt.block_on(async {
            c.create(
                &pair.identity_path(name),
                br#"{"id":"sentinel","host":"nowhere","state":"running"}"#,
                &CreateMode::Persistent.with_acls(acls),
            )
            .await
            .expect("create the sentinel's identity node");
            c.create(
                &pair.live_path(name),
                br#"{"host":"nowhere","watchdog_pid":0}"#,
                &CreateMode::Ephemeral.with_acls(acls),
            )
            .await
            .expect("create the sentinel's liveness node");
            c.delete(&pair.live_path(name), None)
                .await
                .expect("delete the sentinel's liveness node");
        });
        pair.receiver.wait_for_alerts(
            |all| events_of(all, name) == ["down"],
            deadline(20),
            &format!("the sentinel {name}'s down alert"),
        );
    }
}

impl Drop for Authed {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let mut states = client.state_watcher();
            drop(client);
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(3), async {
                    while !states.state().is_terminated() && states.state() != SessionState::Closed
                    {
                        states.changed().await;
                    }
                })
                .await
            });
        }
    }
}

/// A pair on the shared server whose watcher has the credentials.
fn authed_pair(name: &str) -> Pair {
    let mut pair = Pair::new(&ZkServer::shared().connect_string(), &unique_root(name));
    pair.start_watcher_with(&["--zk-auth", AUTH]);
    pair
}

/// `(scheme, id, permission)` of a node's ACL, as one with ADMIN permission reads it.
fn acl_of(authed: &Authed, path: &str) -> Vec<(String, String, Permission)> {
    let (acl, _) = authed
        .rt
        .block_on(authed.client().get_acl(path))
        .unwrap_or_else(|e| panic!("get_acl {path}: {e}"));
    acl.iter()
        .map(|a| (a.scheme().to_owned(), a.id().to_owned(), a.permission()))
        .collect()
}

fn protected() -> Vec<(String, String, Permission)> {
    vec![
        ("digest".into(), DIGEST_ID.into(), Permission::ALL),
        ("world".into(), "anyone".into(), Permission::READ),
    ]
}

/// `flume-watchdog stop` (or any short command), run to its end.
fn run_to_end(label: &str, binary: &str, args: &[&str]) -> (Option<i32>, Proc) {
    let mut cmd = Command::new(bin(binary));
    cmd.args(args);
    let proc = Proc::spawn(label, cmd);
    let status = proc.wait_exit(deadline(30));
    (status.code(), proc)
}

fn assert_no_password(proc: &Proc) {
    for line in proc.lines() {
        assert!(
            !line.contains(PASSWORD),
            "[{}] shows the password: {line}",
            proc.label()
        );
    }
}

#[test]
fn without_the_credentials_an_identity_node_cannot_be_deleted_and_no_alert_is_raised() {
    let pair = authed_pair("acl");
    let wd = pair.watchdog("s1", &["--zk-auth", AUTH], &[]);
    pair.wait_live("s1");
    let identity = pair.identity_path("s1");
    let live = pair.live_path("s1");

    // Every node the pair created belongs to alice; anyone may read.
    let authed = Authed::connect(&pair.connect, AUTH);
    for path in [
        identity.clone(),
        live.clone(),
        pair.root.clone(),
        format!("{}/agents", pair.root),
        format!("{}/live", pair.root),
        format!("{}/watchers", pair.root),
    ] {
        assert_eq!(acl_of(&authed, &path), protected(), "ACL of {path}");
    }
    // (ZooKeeper hides the digest from a client that may not change the ACL.)
    let (seen, _) = pair
        .probe
        .block_on(pair.probe.client().get_acl(&identity))
        .expect("get_acl without credentials");
    let seen: Vec<_> = seen.iter().map(|a| (a.scheme(), a.id())).collect();
    assert_eq!(seen, [("digest", "alice:x"), ("world", "anyone")]);

    // The anonymous probe reads the nodes, but may not delete or change them, nor add its own.
    let read = pair.probe.get_json(&identity).expect("identity node");
    assert_eq!(read["state"], "running", "{read}");
    let client = pair.probe.client();
    for (what, result) in [
        (
            "delete the identity node",
            pair.probe.block_on(client.delete(&identity, None)),
        ),
        (
            "delete the liveness node",
            pair.probe.block_on(client.delete(&live, None)),
        ),
        (
            "change the identity node",
            pair.probe
                .block_on(client.set_data(&identity, b"{}", None))
                .map(|_| ()),
        ),
        (
            "create an identity node",
            pair.probe
                .block_on(client.create(
                    &pair.identity_path("intruder"),
                    b"{}",
                    &CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all()),
                ))
                .map(|_| ()),
        ),
    ] {
        assert_eq!(result, Err(ZkError::NoAuth), "{what} without credentials");
    }
    assert!(pair.probe.exists(&identity).is_some(), "identity node kept");
    assert!(pair.probe.exists(&live).is_some(), "liveness node kept");

    // The watcher has handled everything up to now, and alerted nothing for s1.
    authed.sentinel(&pair, "sentinel-1");
    // The watcher's own nodes too (the outage record of the sentinel, written beside its
    // delivery: it may land just after the alert).
    pair.probe
        .wait_until_exists(&format!("{}/outages/sentinel-1", pair.root), deadline(10));
    for path in [
        format!("{}/outages", pair.root),
        format!("{}/outages/sentinel-1", pair.root),
    ] {
        assert_eq!(acl_of(&authed, &path), protected(), "ACL of {path}");
    }
    assert_eq!(
        events_of(&pair.receiver.alerts(), "s1"),
        Vec::<String>::new()
    );
    assert!(wd.is_running());

    // status, anonymous or not, shows the agent up and nothing secret.
    for args in [
        vec![
            "status",
            "--zk",
            pair.connect.as_str(),
            "--root",
            pair.root.as_str(),
        ],
        vec![
            "status",
            "--zk",
            pair.connect.as_str(),
            "--root",
            pair.root.as_str(),
            "--zk-auth",
            AUTH,
        ],
        vec![
            "status",
            "--zk",
            pair.connect.as_str(),
            "--root",
            pair.root.as_str(),
            "--zk-auth",
            AUTH,
            "--json",
        ],
    ] {
        let (code, status) = run_to_end("status", "flume-watcher", &args);
        assert_eq!(code, Some(0), "{}", status.output());
        let up = if args.contains(&"--json") {
            let json: serde_json::Value =
                serde_json::from_str(&status.output()).expect("status --json prints JSON");
            json["agents"]
                .as_array()
                .is_some_and(|a| a.iter().any(|r| r["id"] == "s1" && r["state"] == "up"))
        } else {
            status
                .lines()
                .iter()
                .any(|l| l.starts_with("s1 ") && l.contains(" up "))
        };
        assert!(up, "{}", status.output());
        assert_no_password(&status);
    }
    assert_no_password(&wd);
    assert_no_password(pair.watcher.as_ref().expect("watcher"));
}

#[test]
fn stop_needs_the_credentials_and_says_so() {
    let pair = authed_pair("stop");
    let wd = pair.watchdog("s2", &["--zk-auth", AUTH], &[]);
    pair.wait_live("s2");
    let stop = |extra: &[&str]| {
        let mut args = vec![
            "stop",
            "--zk",
            pair.connect.as_str(),
            "--root",
            pair.root.as_str(),
            "--id",
            "s2",
            "--wait",
            "20s",
        ];
        args.extend_from_slice(extra);
        run_to_end("stop", "flume-watchdog", &args)
    };

    let (code, refused) = stop(&[]);
    assert_eq!(code, Some(1), "{}", refused.output());
    assert!(
        refused
            .output()
            .contains("not authorized: give the watchdog's credentials with --zk-auth"),
        "{}",
        refused.output()
    );
    let (code, wrong) = stop(&["--zk-auth", "alice:wrong-XYZZY"]);
    assert_eq!(code, Some(1), "{}", wrong.output());
    assert!(
        wrong.output().contains("not authorized") && !wrong.output().contains("wrong-XYZZY"),
        "{}",
        wrong.output()
    );
    assert!(pair.probe.exists(&pair.identity_path("s2")).is_some());
    assert!(wd.is_running(), "the refused stops must not stop anything");

    let (code, stopped) = stop(&["--zk-auth", AUTH]);
    assert_eq!(code, Some(0), "{}", stopped.output());
    assert!(
        stopped.output().contains("stopped s2"),
        "{}",
        stopped.output()
    );
    let status = wd.wait_exit(deadline(20));
    assert_eq!(status.code(), Some(0), "{}", wd.output());

    let authed = Authed::connect(&pair.connect, AUTH);
    authed.sentinel(&pair, "sentinel-2");
    assert_eq!(
        events_of(&pair.receiver.alerts(), "s2"),
        Vec::<String>::new()
    );
    for proc in [&refused, &stopped, &wd] {
        assert_no_password(proc);
    }
    assert_no_password(pair.watcher.as_ref().expect("watcher"));
}

#[test]
fn a_wrong_password_is_a_clear_error_and_the_agent_keeps_running() {
    let pair = authed_pair("wrong");
    // The root and its folders now belong to alice with the right password.
    pair.probe
        .wait_until_exists(&format!("{}/agents", pair.root), deadline(10));
    let wd = pair.watchdog("s3", &["--zk-auth", "alice:wrong-XYZZY"], &[]);
    let line = wd.wait_for_line(
        "not authorized",
        deadline(20),
        "the watchdog saying it is not authorized",
    );
    assert!(line.contains("alice"), "{line}");
    wd.wait_for_line(
        "stand-in agent s3 started",
        deadline(20),
        "the agent to start anyway",
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(wd.is_running(), "{}", wd.output());
    assert!(pair.probe.exists(&pair.identity_path("s3")).is_none());
    for l in wd.lines() {
        assert!(!l.contains("wrong-XYZZY"), "the password shows: {l}");
    }
}

#[test]
fn a_credentials_file_readable_by_others_is_warned_about() {
    let pair = authed_pair("file");
    let authed = Authed::connect(&pair.connect, AUTH);
    let dir = TempDir::new("zk-auth");
    for (i, (mode, warned)) in [(0o644, true), (0o600, false)].into_iter().enumerate() {
        let file = dir.join(format!("zk-auth-{i}"));
        std::fs::write(&file, format!("{AUTH}\n")).expect("write the credentials file");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let id = format!("f{i}");
        let shown = file.display().to_string();
        let wd = pair.watchdog(&id, &["--zk-auth-file", &shown], &[]);
        pair.wait_live(&id);
        // Registered with the file's credentials.
        assert_eq!(acl_of(&authed, &pair.identity_path(&id)), protected());
        let warnings: Vec<String> = wd
            .lines()
            .into_iter()
            .filter(|l| l.contains("WARN") && l.contains(&shown))
            .collect();
        if warned {
            assert_eq!(warnings.len(), 1, "{}", wd.output());
            assert!(warnings[0].contains("0644"), "{}", warnings[0]);
        } else {
            assert!(warnings.is_empty(), "{warnings:?}");
        }
        assert_no_password(&wd);
    }

    // A missing file is a configuration error (exit 2) naming the file.
    let missing = dir.join("missing").display().to_string();
    let (code, proc) = run_to_end(
        "watcher",
        "flume-watcher",
        &[
            "status",
            "--zk",
            pair.connect.as_str(),
            "--root",
            pair.root.as_str(),
            "--zk-auth-file",
            &missing,
        ],
    );
    assert_eq!(code, Some(2), "{}", proc.output());
    assert!(proc.output().contains(&missing), "{}", proc.output());
}

#[test]
fn folders_open_to_anyone_are_warned_about() {
    // Folders made before credentials were used: anyone may delete identity nodes in them.
    let pair = Pair::new(&ZkServer::shared().connect_string(), &unique_root("open"));
    pair.probe
        .create(&format!("{}/agents/placeholder", pair.root), b"", false);
    pair.probe
        .create(&format!("{}/live/placeholder", pair.root), b"", false);
    let wd = pair.watchdog("o1", &["--zk-auth", AUTH], &[]);
    pair.wait_live("o1");
    let agents = format!("{}/agents", pair.root);
    let line = wd.wait_for_line_where(
        |l| l.contains("WARN") && l.contains(&format!("folder {agents} lets anyone")),
        deadline(10),
        "a warning about the open agents folder",
    );
    assert!(line.contains("silence alerts"), "{line}");
    // The nodes of the watchdog itself are protected all the same.
    let authed = Authed::connect(&pair.connect, AUTH);
    assert_eq!(acl_of(&authed, &pair.identity_path("o1")), protected());
    assert_no_password(&wd);
}
