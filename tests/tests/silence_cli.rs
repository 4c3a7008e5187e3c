//! `flume-watcher silence add | list | remove` as an operator runs them against a real ZooKeeper,
//! and `status` showing which agents a silence covers.

use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use scenarios::{bin, unique_root, ZkProbe, ZkServer};
use serde_json::{json, Value};

/// `flume-watcher <args…> --zk … --root …`, run to its end (each command waits at most 10 s for
/// ZooKeeper), as user `tester`.
fn watcher(connect: &str, root: &str, args: &[&str]) -> Output {
    Command::new(bin("flume-watcher"))
        .args(args)
        .args(["--zk", connect, "--root", root])
        .env("USER", "tester")
        .env_remove("FLUME_WATCHER_ZK_AUTH")
        .output()
        .expect("run flume-watcher")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn is_id(s: &str) -> bool {
    s.len() == 8
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Adds a silence and gives its id, checking what an operator sees: the id alone on stdout.
fn add(connect: &str, root: &str, args: &[&str]) -> (String, String) {
    let mut all = vec!["silence", "add"];
    all.extend_from_slice(args);
    let out = watcher(connect, root, &all);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    let id = stdout.trim_end_matches('\n').to_owned();
    assert!(
        is_id(&id) && stdout == format!("{id}\n"),
        "one id on stdout: {stdout:?}"
    );
    (id, stderr)
}

/// A silence node as another tool (or an older version) would have written it.
fn record(agent: &str, starts: SystemTime, ends: SystemTime) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "v": 1, "agent": agent,
        "starts_at": common::time::format(starts), "ends_at": common::time::format(ends),
        "created_by": "old@host", "comment": "written by hand"
    }))
    .expect("json")
}

fn list_json(connect: &str, root: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["silence", "list", "--json"];
    args.extend_from_slice(extra);
    let out = watcher(connect, root, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice::<Vec<Value>>(&out.stdout)
        .unwrap_or_else(|e| panic!("a JSON array ({e}): {}", text(&out.stdout)))
}

fn ids_states(list: &[Value]) -> Vec<(String, String)> {
    list.iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap_or("?").to_owned(),
                s["state"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect()
}

#[test]
fn add_list_and_remove_silences() {
    let zk = ZkServer::shared();
    let connect = zk.connect_string();
    let root = unique_root("silence_cli_add_list");
    let probe = ZkProbe::connect(&connect);
    let now = SystemTime::now();

    // --for, on a root nobody has used yet: the folders are made.
    let (for_id, said) = add(
        &connect,
        &root,
        &[
            "--agent",
            "web7-*",
            "--label",
            "team=logs",
            "--for",
            "2h",
            "--comment",
            "kernel upgrade",
        ],
    );
    assert!(
        said.contains(&format!(
            "silence {for_id} holds back the alerts about agent=web7-* team=logs until "
        )) && said.contains("Z): kernel upgrade"),
        "says what it silences and until when, local time and UTC: {said}"
    );
    let stored = probe
        .get_json(&format!("{root}/silences/{for_id}"))
        .expect("the silence node");
    assert_eq!(stored["agent"], "web7-*");
    assert_eq!(stored["labels"], json!({"team": "logs"}));
    assert_eq!(stored["comment"], "kernel upgrade");
    assert!(
        stored["created_by"]
            .as_str()
            .is_some_and(|b| b.starts_with("tester@") && b.len() > "tester@".len()),
        "{stored}"
    );
    let ends = common::time::parse(stored["ends_at"].as_str().unwrap_or("")).expect("ends_at");
    let two_hours = ends.duration_since(now).expect("ends later");
    assert!(
        two_hours > Duration::from_secs(7190) && two_hours < Duration::from_secs(7230),
        "{stored}"
    );

    // --until with an offset and without seconds: stored in UTC.
    let in_3h = UNIX_EPOCH
        + Duration::from_secs(
            (now.duration_since(UNIX_EPOCH).expect("epoch").as_secs() / 60 + 180) * 60,
        );
    let shanghai = common::time::format(in_3h + Duration::from_secs(8 * 3600));
    let until = format!("{}+08:00", &shanghai[..16]);
    let (until_id, _) = add(
        &connect,
        &root,
        &[
            "--agent",
            "*",
            "--host",
            "rack7-*",
            "--until",
            &until,
            "--comment",
            "rack 7 power",
        ],
    );
    let stored = probe
        .get_json(&format!("{root}/silences/{until_id}"))
        .expect("the silence node");
    assert_eq!(stored["ends_at"], common::time::format(in_3h), "{until}");
    assert_eq!(stored["host"], "rack7-*");

    // Pending: begins in an hour.
    let start = common::time::format(now + Duration::from_secs(3600));
    let (pending_id, said) = add(
        &connect,
        &root,
        &[
            "--agent",
            "db-*",
            "--start",
            &start,
            "--for",
            "1h",
            "--comment",
            "later",
        ],
    );
    assert!(said.contains(" from "), "says when it begins: {said}");

    // Ended an hour ago (kept and shown with --all), and six days ago (pruned).
    let hour = Duration::from_secs(3600);
    probe.create(
        &format!("{root}/silences/0000beef"),
        &record("old-*", now - 3 * hour, now - hour),
        false,
    );
    probe.create(
        &format!("{root}/silences/0000dead"),
        &record("ancient-*", now - 145 * hour, now - 144 * hour),
        false,
    );

    let out = watcher(&connect, &root, &["silence", "list"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("deleted 1 silence(s) that ended more than 5 days ago: 0000dead"),
        "{stderr}"
    );
    assert!(probe.exists(&format!("{root}/silences/0000dead")).is_none());
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        4,
        "header, two in force, one pending:\n{stdout}"
    );
    for h in ["ID", "MATCHERS", "STATE", "STARTS", "ENDS", "BY", "COMMENT"] {
        assert!(lines[0].contains(h), "{stdout}");
    }
    // In force first, the one that ends first first; then the pending one.
    assert!(
        lines[1].starts_with(&for_id) && lines[1].contains("active"),
        "{stdout}"
    );
    assert!(lines[1].contains("agent=web7-* team=logs") && lines[1].ends_with("kernel upgrade"));
    assert!(lines[2].starts_with(&until_id) && lines[2].contains("agent=* host=rack7-*"));
    assert!(
        lines[3].starts_with(&pending_id) && lines[3].contains("pending"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("0000beef"),
        "no expired one without --all:\n{stdout}"
    );

    let listed = list_json(&connect, &root, &[]);
    assert_eq!(
        ids_states(&listed),
        [
            (for_id.clone(), "active".to_owned()),
            (until_id.clone(), "active".to_owned()),
            (pending_id.clone(), "pending".to_owned())
        ]
    );
    let first = &listed[0];
    for key in [
        "id",
        "state",
        "agent",
        "host",
        "labels",
        "starts_at",
        "ends_at",
        "created_by",
        "comment",
    ] {
        assert!(first.get(key).is_some(), "{key} in {first}");
    }
    assert_eq!(first["host"], Value::Null);
    let all = list_json(&connect, &root, &["--all"]);
    assert_eq!(
        ids_states(&all).last(),
        Some(&("0000beef".to_owned(), "expired".to_owned()))
    );
    assert_eq!(all.len(), 4);

    // remove: gone from ZooKeeper and from the list.
    let out = watcher(&connect, &root, &["silence", "remove", &for_id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!(
            "removed silence {for_id} (agent=web7-* team=logs: kernel upgrade)"
        )),
        "{}",
        text(&out.stderr)
    );
    assert!(probe.exists(&format!("{root}/silences/{for_id}")).is_none());
    assert!(!ids_states(&list_json(&connect, &root, &[]))
        .iter()
        .any(|(i, _)| *i == for_id));

    // Unknown id: exit 1, said plainly; not an id: a usage error.
    let out = watcher(&connect, &root, &["silence", "remove", &for_id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("no silence {for_id} under {root}/silences")),
        "{}",
        text(&out.stderr)
    );
    let out = watcher(&connect, &root, &["silence", "remove", "web7-a1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("ID: `web7-a1` is not a silence id"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn nodes_that_are_not_silences_are_skipped_with_a_note() {
    let zk = ZkServer::shared();
    let connect = zk.connect_string();
    let root = unique_root("silence_cli_skips");
    let probe = ZkProbe::connect(&connect);
    let (good, _) = add(
        &connect,
        &root,
        &["--agent", "a*", "--for", "1h", "--comment", "ok"],
    );
    let dir = format!("{root}/silences");
    probe.create(&format!("{dir}/README"), b"hello", false);
    probe.create(&format!("{dir}/0badf00d"), b"not json", false);
    let now = SystemTime::now();
    probe.create(
        &format!("{dir}/0badc0de"),
        &record("[web", now, now + Duration::from_secs(3600)),
        false,
    );

    for args in [&["silence", "list"][..], &["silence", "list", "--json"][..]] {
        let out = watcher(&connect, &root, args);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        for (node, why) in [
            ("README", "not a silence id"),
            ("0badf00d", "not a silence record"),
            ("0badc0de", "agent: `[web` is not a glob"),
        ] {
            assert_eq!(
                stderr
                    .lines()
                    .filter(|l| l.contains(&format!("skipped {dir}/{node}: ")) && l.contains(why))
                    .count(),
                1,
                "{node}: {why}; stderr:\n{stderr}"
            );
        }
        assert!(stdout.contains(&good), "{stdout}");
        assert!(
            !stdout.contains("0bad") && !stdout.contains("README"),
            "{stdout}"
        );
    }
    // status says the same, and still shows what it can.
    let out = watcher(&connect, &root, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&format!("skipped {dir}/0badf00d")));
    let status: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(status["silences"][0]["id"], good.as_str(), "{status}");
    // Nothing was deleted: only silences ended long ago are.
    assert_eq!(probe.children(&dir).len(), 4);
}

#[test]
fn bad_flags_exit_2_with_a_line_naming_the_flag_and_change_nothing() {
    let zk = ZkServer::shared();
    let connect = zk.connect_string();
    let root = unique_root("silence_cli_bad_flags");
    let probe = ZkProbe::connect(&connect);
    let rows: &[(&[&str], &str)] = &[
        (
            &["--agent", "a", "--comment", "x"],
            "--for or --until: give one",
        ),
        (
            &["--agent", "a", "--for", "0s", "--comment", "x"],
            "--for: must be more than 0",
        ),
        (
            &["--agent", "a", "--for", "-2h", "--comment", "x"],
            "invalid value '-2h' for '--for <DURATION>'",
        ),
        (
            &[
                "--agent",
                "a",
                "--until",
                "2020-01-01T00:00+08:00",
                "--comment",
                "x",
            ],
            "--until: the silence would end in the past",
        ),
        (
            &["--agent", "a", "--until", "tomorrow", "--comment", "x"],
            "--until: `tomorrow` is not a time with an offset",
        ),
        (
            &["--agent", "[web", "--for", "1h", "--comment", "x"],
            "--agent: `[web` is not a glob",
        ),
        (
            &["--agent", "a", "--for", "1h", "--comment", ""],
            "--comment: empty",
        ),
        (&["--agent", "a", "--for", "1h"], "--comment <TEXT>"),
        (&["--for", "1h", "--comment", "x"], "--agent <GLOB>"),
    ];
    for (args, want) in rows {
        let mut all = vec!["silence", "add"];
        all.extend_from_slice(args);
        let out = watcher(&connect, &root, &all);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("flume-watcher: ") && l.contains(want)),
            "{args:?}: {want:?} in\n{stderr}"
        );
        assert!(
            stderr.contains("Usage: flume-watcher silence add ")
                && stderr.contains("try 'flume-watcher silence add --help'"),
            "{args:?}: the usage of silence add itself, not of silence:\n{stderr}"
        );
        assert_eq!(text(&out.stdout), "", "{args:?}");
    }
    assert!(probe.exists(&root).is_none(), "nothing was created");
    // list of a root that does not exist: said, exit 1.
    let out = watcher(&connect, &root, &["silence", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(&format!("{root} does not exist at {connect}")));
}

#[test]
fn status_marks_a_down_agent_that_a_silence_covers() {
    let zk = ZkServer::shared();
    let connect = zk.connect_string();
    let root = unique_root("silence_cli_status");
    let probe = ZkProbe::connect(&connect);
    let agent = |id: &str, host: &str, labels: Value| {
        let data = json!({"id": id, "host": host, "state": "backoff", "labels": labels});
        probe.create(
            &format!("{root}/agents/{id}"),
            data.to_string().as_bytes(),
            false,
        );
    };
    agent("web7-a1", "web7", json!({"team": "logs"}));
    agent("web7-a2", "web7", json!({"team": "db"}));
    agent("web8-a1", "web8", json!({"team": "logs"}));
    let (id, _) = add(
        &connect,
        &root,
        &[
            "--agent",
            "web7-*",
            "--label",
            "team=logs",
            "--for",
            "1h",
            "--comment",
            "kernel upgrade",
        ],
    );
    // A pending one covers web8-a1 later, not now.
    let later = common::time::format(SystemTime::now() + Duration::from_secs(3600));
    add(
        &connect,
        &root,
        &[
            "--agent",
            "web8-*",
            "--start",
            &later,
            "--for",
            "1h",
            "--comment",
            "later",
        ],
    );

    let out = watcher(&connect, &root, &["status"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let row = |id: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} in\n{stdout}"))
            .to_owned()
    };
    assert!(
        row("web7-a1").contains(&format!("down (silenced {id})")),
        "{stdout}"
    );
    for other in ["web7-a2", "web8-a1"] {
        assert!(
            row(other).contains("down") && !row(other).contains("silenced"),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains(&format!("silence {id} in force until "))
            && stdout.contains("kernel upgrade"),
        "{stdout}"
    );

    let out = watcher(&connect, &root, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let rows = status["agents"].as_array().expect("agents");
    let of = |a: &str| rows.iter().find(|r| r["id"] == a).cloned().expect("row");
    assert_eq!(of("web7-a1")["silenced"], json!([id]), "{status}");
    assert_eq!(of("web7-a1")["state"], "down");
    assert!(of("web7-a2").get("silenced").is_none(), "{status}");
    assert!(of("web8-a1").get("silenced").is_none(), "{status}");
    let silences = status["silences"].as_array().expect("silences");
    assert_eq!(silences.len(), 1, "only the one in force: {status}");
    assert_eq!(silences[0]["id"], id.as_str());
    assert_eq!(silences[0]["state"], "active");
    assert_eq!(silences[0]["labels"], json!({"team": "logs"}));
}
