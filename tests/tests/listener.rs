//! The watcher's own observability (`--listen`), end to end against a real ZooKeeper, real
//! watchdogs around stand-in agents, Debian's promtool and a real headless chromium: `/healthz`
//! follows the session, `/metrics` passes promtool and shows a crash, `/api/v1/agents` is
//! `status --json`, the Grafana dashboard names only exported metrics, and the status page shows
//! a crash without being reloaded.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::process::Command;

use nix::sys::signal::Signal;
use scenarios::browser::Browser;
use scenarios::http::{get, promtool_check, request};
use scenarios::pair::{started_agent_pid, Pair};
use scenarios::{bin, deadline, poll_until, unique_root, Proc, ZkServer};
use serde_json::Value;

/// Starts the pair's watcher with `--listen 127.0.0.1:0`; the address it bound, from its log.
fn watcher_with_listener(pair: &mut Pair) -> String {
    pair.start_watcher_with(&["--listen", "127.0.0.1:0"]);
    listen_address(pair.watcher.as_ref().expect("a watcher"))
}

fn listen_address(watcher: &Proc) -> String {
    let line = watcher.wait_for_line(
        "http listener started",
        deadline(10),
        "the listener's address in the watcher's log",
    );
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("address="))
        .unwrap_or_else(|| panic!("no address= in {line:?}"))
        .to_owned()
}

/// A stand-in agent that exits with code 3 on SIGUSR1 and is restarted only after 60 s: it stays
/// down long enough to be seen down. Returns the watchdog and the agent's pid.
fn crashable(pair: &Pair, id: &str) -> (Proc, i32) {
    let wd = pair.watchdog(
        id,
        &["--backoff-initial", "60s", "--backoff-max", "60s"],
        &["--exit-code", "3"],
    );
    let pid = started_agent_pid(&wd, id);
    pair.wait_live(id);
    (wd, pid)
}

fn crash(pid: i32) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR1)
        .unwrap_or_else(|e| panic!("kill -USR1 {pid}: {e}"));
}

/// Scrapes until `want` holds of the text; the last scrape.
fn scrape_until(addr: &str, what: &str, want: impl Fn(&str) -> bool) -> String {
    let last = RefCell::new(String::new());
    poll_until(
        deadline(15),
        what,
        || {
            let text = get(addr, "/metrics").body;
            *last.borrow_mut() = text.clone();
            want(&text).then_some(text)
        },
        || last.borrow().clone(),
    )
}

#[test]
fn healthz_is_ok_with_a_session_and_503_when_zookeeper_is_gone() {
    let mut zk = ZkServer::start();
    let root = unique_root("listener_healthz");
    let mut pair = Pair::new(&zk.connect_string(), &root);
    let addr = watcher_with_listener(&mut pair);

    // "watcher ready" is logged as the first listing ends, a moment before the loop publishes it.
    let ok = poll_until(
        deadline(10),
        "/healthz to answer 200 with a session and a full view",
        || Some(get(&addr, "/healthz")).filter(|a| a.status == 200),
        || format!("{:?}", get(&addr, "/healthz")),
    );
    assert!(
        ok.body
            .starts_with("ok: a working ZooKeeper session and a full view"),
        "{ok:?}"
    );

    zk.stop();
    let blind = poll_until(
        deadline(15),
        "/healthz to answer 503 once ZooKeeper is stopped",
        || Some(get(&addr, "/healthz")).filter(|a| a.status == 503),
        || format!("{:?}", get(&addr, "/healthz")),
    );
    assert!(
        blind
            .body
            .starts_with("blind: no working ZooKeeper session since "),
        "{blind:?}"
    );
    assert!(
        blind.body.contains("agent outages are not seen"),
        "{blind:?}"
    );
    // The listener still answers everything else while blind.
    let metrics = get(&addr, "/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .body
            .contains("flume_watcher_zookeeper_connected 0\n"),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.contains("flume_watcher_blind 1\n"),
        "{}",
        metrics.body
    );

    zk.start_again();
    poll_until(
        deadline(20),
        "/healthz to answer 200 again once ZooKeeper is back",
        || Some(get(&addr, "/healthz")).filter(|a| a.status == 200),
        || format!("{:?}", get(&addr, "/healthz")),
    );
}

#[test]
fn metrics_pass_promtool_and_show_a_crash_as_the_api_does() {
    let zk = ZkServer::shared();
    let root = unique_root("listener_metrics");
    let mut pair = Pair::new(&zk.connect_string(), &root);
    let addr = watcher_with_listener(&mut pair);
    let (_steady, _) = crashable(&pair, "steady1");
    let (_wd, pid) = crashable(&pair, "crash1");

    let before = scrape_until(&addr, "both agents up in /metrics", |t| {
        t.contains("flume_watcher_agents{state=\"up\"} 2\n")
    });
    promtool_check(&before).unwrap_or_else(|e| panic!("{e}\n--- scrape ---\n{before}"));
    for want in [
        "flume_watcher_zookeeper_connected 1\n",
        "flume_watcher_leader 1\n",
        "flume_watcher_blind 0\n",
        "flume_watcher_silences_active 0\n",
        "flume_watcher_agents{state=\"down\"} 0\n",
        "flume_watcher_agents{state=\"degraded\"} 0\n",
        "flume_watcher_agent_up{agent=\"crash1\",host=\"",
    ] {
        assert!(before.contains(want), "{want:?} missing in:\n{before}");
    }

    crash(pid);
    pair.wait_events("crash1", &["down"], 15);
    let after = scrape_until(
        &addr,
        "crash1 down and its alert counted in /metrics",
        |t| {
            t.contains("flume_watcher_agents{state=\"down\"} 1\n")
                && t.lines().any(|l| {
                    l.starts_with("flume_watcher_agent_up{agent=\"crash1\",") && l.ends_with("} 0")
                })
                && t.lines().any(|l| {
                    l.starts_with("flume_watcher_alerts_sent_total{")
                        && l.contains("event=\"down\"")
                        && l.ends_with("} 1")
                })
        },
    );
    promtool_check(&after).unwrap_or_else(|e| panic!("{e}\n--- scrape ---\n{after}"));
    eprintln!("--- /metrics after the crash (promtool: no complaint) ---\n{after}");
    for want in [
        "flume_watcher_agents{state=\"up\"} 1\n",
        "flume_watcher_outages_opened_total 1\n",
        "flume_watcher_delivery_latency_seconds_count{channel=\"webhook ",
        "le=\"+Inf\"} 1\n",
        "flume_watcher_pending_notices{channel=\"webhook ",
    ] {
        assert!(after.contains(want), "{want:?} missing in:\n{after}");
    }
    assert!(
        after.lines().any(
            |l| l.starts_with("flume_watcher_agent_restarts{agent=\"crash1\"")
                && l.ends_with("} 1")
        ),
        "crash1's restart counted by its watchdog:\n{after}"
    );

    // A silence on the crashed agent: counted, and shown by the API as by status.
    let added = Command::new(bin("flume-watcher"))
        .args([
            "silence",
            "add",
            "--zk",
            &zk.connect_string(),
            "--root",
            &root,
        ])
        .args([
            "--agent",
            "crash1",
            "--for",
            "1h",
            "--comment",
            "looking into it",
        ])
        .output()
        .expect("run flume-watcher silence add");
    assert_eq!(
        added.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let silence = String::from_utf8_lossy(&added.stdout).trim().to_owned();
    let silenced = scrape_until(&addr, "the silence counted in /metrics", |t| {
        t.contains("flume_watcher_silences_active 1\n")
    });
    promtool_check(&silenced).unwrap_or_else(|e| panic!("{e}\n--- scrape ---\n{silenced}"));

    // /api/v1/agents is `status --json`, agent for agent.
    let api = get(&addr, "/api/v1/agents");
    assert_eq!(api.status, 200, "{api:?}");
    assert_eq!(api.header("content-type"), Some("application/json"));
    let api: Value = serde_json::from_str(&api.body)
        .unwrap_or_else(|e| panic!("JSON from /api/v1/agents ({e}): {}", api.body));
    let out = Command::new(bin("flume-watcher"))
        .args([
            "status",
            "--zk",
            &zk.connect_string(),
            "--root",
            &root,
            "--json",
        ])
        .output()
        .expect("run flume-watcher status --json");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).expect("status --json prints JSON");
    assert_eq!(api, cli, "/api/v1/agents and status --json differ");
    let crashed = api["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["id"] == "crash1"))
        .unwrap_or_else(|| panic!("crash1 in {api}"));
    assert_eq!(crashed["state"], "down", "{api}");
    assert_eq!(crashed["last_exit"]["code"], 3, "{api}");
    assert_eq!(crashed["silenced"], serde_json::json!([silence]), "{api}");
    assert_eq!(api["silences"][0]["id"], silence.as_str(), "{api}");

    // Read-only: GET and HEAD; anything else 405; unknown paths 404.
    let post = request(&addr, "POST", "/api/v1/agents");
    assert_eq!(post.status, 405, "{post:?}");
    assert_eq!(post.header("allow"), Some("GET, HEAD"), "{post:?}");
    let head = request(&addr, "HEAD", "/metrics");
    assert_eq!((head.status, head.body.as_str()), (200, ""), "{head:?}");
    assert_eq!(get(&addr, "/nothing-here").status, 404);
}

/// The names a scrape exports: every family's name, and a histogram's series.
fn exported(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                names.insert(name.to_owned());
                if kind == "histogram" {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{suffix}"));
                    }
                }
            }
        } else if !line.starts_with('#') {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

/// The metric names a PromQL expression reads: identifiers that are not functions (followed by
/// `(`), keywords, label names (inside `{…}` or a `by (…)` clause) or durations (inside `[…]`).
fn metrics_in(expr: &str) -> Vec<String> {
    const KEYWORDS: [&str; 13] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
    ];
    const AGGREGATIONS: [&str; 12] = [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    // Strings, matchers and ranges out.
    let mut plain = String::new();
    let mut closing: Option<char> = None;
    for c in expr.chars() {
        match closing {
            Some(end) if c == end => closing = None,
            Some(_) => {}
            None => match c {
                '{' => closing = Some('}'),
                '[' => closing = Some(']'),
                '"' => closing = Some('"'),
                c => plain.push(c),
            },
        }
    }
    let chars: Vec<char> = plain.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    let mut grouping = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ]
            .contains(&word.as_str())
            {
                grouping = true;
            } else if grouping
                || KEYWORDS.contains(&word.as_str())
                || AGGREGATIONS.contains(&word.as_str())
                || next == Some(&'(')
            {
                // A label in a grouping clause, a keyword, an aggregation (`sum by (…) (…)`), or
                // a function.
            } else {
                found.push(word);
            }
        } else {
            if c == ')' {
                grouping = false;
            }
            if c.is_ascii_digit() || c == '.' {
                // A number (or a duration's digits): skip it whole.
                while i + 1 < chars.len()
                    && (chars[i + 1].is_ascii_alphanumeric() || chars[i + 1] == '.')
                {
                    i += 1;
                }
            }
            i += 1;
        }
    }
    found
}

fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn the_grafana_dashboard_names_only_metrics_the_watcher_exports() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../contrib/grafana/flume-watcher.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let dashboard: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"));
    let mut found = Vec::new();
    exprs(&dashboard, &mut found);
    assert!(found.len() >= 10, "the dashboard's expressions: {found:?}");
    assert_eq!(
        metrics_in("sum by (state) (rate(a_total{x=\"y(\"}[5m])) * 60 / on (h) b"),
        ["a_total", "b"],
        "the expression reader itself"
    );

    let zk = ZkServer::shared();
    let root = unique_root("listener_grafana");
    let mut pair = Pair::new(&zk.connect_string(), &root);
    let addr = watcher_with_listener(&mut pair);
    let (_wd, _) = crashable(&pair, "g1");
    pair.sentinel("g-sentinel");
    let scrape = scrape_until(&addr, "an agent and a delivery in /metrics", |t| {
        t.contains("flume_watcher_agent_up{")
            && t.contains("flume_watcher_delivery_latency_seconds_bucket{")
    });
    let names = exported(&scrape);
    for expr in &found {
        let used = metrics_in(expr);
        assert!(!used.is_empty(), "no metric in {expr:?}");
        for m in used {
            assert!(
                names.contains(&m),
                "{m} (in {expr:?}) is not exported; exported: {names:?}"
            );
        }
    }
    // The instance variable's query too.
    let definition = dashboard["templating"]["list"][0]["definition"]
        .as_str()
        .unwrap_or_default();
    let metric = definition
        .strip_prefix("label_values(")
        .and_then(|r| r.split(',').next())
        .unwrap_or_else(|| panic!("templating definition {definition:?}"));
    assert!(names.contains(metric), "{metric}");
}

#[test]
fn the_status_page_shows_a_crash_without_a_reload() {
    let zk = ZkServer::shared();
    let root = unique_root("listener_page");
    let mut pair = Pair::new(&zk.connect_string(), &root);
    let addr = watcher_with_listener(&mut pair);
    let (_steady, _) = crashable(&pair, "steady1");
    let (_wd, pid) = crashable(&pair, "crash1");

    let mut browser = Browser::start();
    let tab = browser.open(&format!("http://{addr}/"));
    let state_of = |b: &mut Browser, id: &str| {
        b.eval(
            &tab,
            &format!(
                "(function(){{var r=document.querySelector('tr[data-agent=\"{id}\"]');return r?r.getAttribute('data-state'):null}})()"
            ),
        )
    };
    let seen = RefCell::new(Value::Null);
    poll_until(
        deadline(15),
        "the page to list steady1 and crash1 up",
        || {
            let rows = browser.eval(
                &tab,
                "Array.from(document.querySelectorAll('tr.agent')).map(function(r){return r.dataset.agent+'='+r.dataset.state}).join(' ')",
            );
            let done = rows == "crash1=up steady1=up";
            *seen.borrow_mut() = rows;
            done.then_some(())
        },
        || format!("rows: {}", seen.borrow()),
    );
    let health = browser.eval(&tab, "document.getElementById('health').dataset.health");
    assert_eq!(health, "ok");
    // A mark that a reload would wipe out.
    browser.eval(&tab, "window.__notReloaded = 42");

    crash(pid);
    let last = RefCell::new(Value::Null);
    poll_until(
        deadline(15),
        "the page to show crash1 down by itself",
        || {
            let state = state_of(&mut browser, "crash1");
            let done = state == "down";
            *last.borrow_mut() = state;
            done.then_some(())
        },
        || format!("crash1's data-state: {}", last.borrow()),
    );
    assert_eq!(
        browser.eval(&tab, "window.__notReloaded"),
        42,
        "the page was reloaded"
    );
    let row = browser.eval(
        &tab,
        "document.querySelector('tr[data-agent=\"crash1\"]').innerText",
    );
    assert!(
        row.as_str()
            .is_some_and(|t| t.contains("down") && t.contains("exited with code 3")),
        "{row}"
    );
    assert_eq!(state_of(&mut browser, "steady1"), "up");
    let text = browser.eval(&tab, "document.body.innerText");
    let text = text.as_str().unwrap_or_default();
    for want in [
        "Agents",
        "2 in all: 1 down, 1 up",
        "This watcher leads",
        "leader",
        "Channels",
        "webhook",
    ] {
        assert!(
            text.contains(want),
            "{want:?} missing in the page as rendered:\n{text}"
        );
    }
    eprintln!("--- the status page as chromium rendered it ---\n{text}");
}

#[test]
fn a_taken_port_stops_the_start_with_its_reason() {
    let zk = ZkServer::shared();
    let root = unique_root("listener_taken");
    let pair = Pair::new(&zk.connect_string(), &root);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port to take");
    let addr = taken.local_addr().expect("its address").to_string();
    let mut cmd = pair.watcher_command("2s");
    cmd.args(["--listen", &addr]);
    let watcher = Proc::spawn("watcher", cmd);
    let status = watcher.wait_exit(deadline(10));
    assert_eq!(status.code(), Some(1), "{}", watcher.output());
    assert!(
        watcher
            .output()
            .contains(&format!("cannot listen on {addr} (--listen): ")),
        "{}",
        watcher.output()
    );
}
