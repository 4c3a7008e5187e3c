//! `GET /`: the status page, server-rendered HTML with its style inline and a few lines of
//! script, so that it works on a closed network, from a laptop or a phone, with no build step.
//!
//! Everything that comes from ZooKeeper (ids, hosts, labels, times, what a watcher says about
//! itself) or from the configuration (channel names) is escaped here, once, by [`esc`]: a node
//! may hold anything. The page refreshes itself: its script fetches `/` again every few seconds
//! and swaps the new `<main>` in (parsed by `DOMParser`, which runs no script, from HTML this
//! renderer escaped), so no reload, no lost scroll position; without script it reloads itself
//! (`<noscript>` meta refresh).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

pub use crate::message::escape_html as esc;
use crate::notify::ChannelStats;
use crate::status::Row;

use super::board::{LastResult, Sight};
use super::source::View;

/// How often the page fetches itself again, in milliseconds.
pub const REFRESH_MS: u64 = 2000;

pub struct Page<'a> {
    pub sight: &'a Sight,
    /// This watcher, as people know it: `flume-watcher on vm1 (pid 4242)`.
    pub me: &'a str,
    /// What ZooKeeper says, or why it could not be read.
    pub view: Result<&'a View, String>,
    pub channels: &'a [ChannelStats],
    pub last: &'a BTreeMap<String, LastResult>,
    pub now: SystemTime,
}

/// Problems first, so a person sees them without scrolling; then by id.
fn rank(state: &str) -> u8 {
    match state {
        "failed" => 0,
        "down" => 1,
        "degraded" => 2,
        "stopped" => 3,
        "up" => 5,
        _ => 4,
    }
}

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans',sans-serif;margin:0;background:#f6f7f9;color:#1d2330}\
main{max-width:72rem;margin:0 auto;padding:.75rem}\
h1{font-size:1.3rem;margin:.2rem 0}h2{font-size:1.05rem;margin:1.2rem 0 .4rem}\
.health{padding:.5rem .7rem;border-radius:.4rem;margin:.4rem 0}\
.ok{background:#e3f4e8;color:#14532d}.bad{background:#fde2e1;color:#7f1d1d}\
.muted{color:#5b6475;font-size:.85rem}\
.wrap{overflow-x:auto;-webkit-overflow-scrolling:touch}\
table{border-collapse:collapse;width:100%;background:#fff;font-size:.9rem}\
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e4e7ec;vertical-align:top;white-space:nowrap}\
td.id{white-space:normal;word-break:break-all}\
.badge{display:inline-block;padding:.05rem .45rem;border-radius:.7rem;font-size:.8rem;font-weight:600}\
.s-up{background:#dcfce7;color:#166534}.s-down{background:#fee2e2;color:#991b1b}\
.s-failed{background:#7f1d1d;color:#fff}.s-degraded{background:#ffedd5;color:#9a3412}\
.s-stopped{background:#e5e7eb;color:#374151}\
.chip{display:inline-block;margin-left:.3rem;padding:0 .35rem;border-radius:.3rem;background:#fef9c3;color:#713f12;font-size:.75rem}\
.label{display:inline-block;margin:.1rem .2rem 0 0;padding:0 .3rem;border-radius:.3rem;background:#eef2ff;color:#3730a3;font-size:.75rem}\
@media (max-width:40rem){main{padding:.4rem}th,td{padding:.3rem}table.cards thead{display:none}table.cards tr{display:block;border-bottom:2px solid #d5d9e0;padding:.2rem 0}table.cards td{display:flex;gap:.5rem;border:0;white-space:normal;word-break:break-word;padding:.15rem .5rem}table.cards td::before{content:attr(data-label);flex:0 0 6.5rem;color:#5b6475;font-size:.8rem}}";

/// The script: fetch `/` again, swap `<main>`; on failure say so and keep the last view.
const SCRIPT: &str = "(function(){\
var ms=REFRESH;\
function tick(){fetch(location.pathname,{cache:'no-store'})\
.then(function(r){if(!r.ok){throw new Error('HTTP '+r.status)}return r.text()})\
.then(function(t){var m=new DOMParser().parseFromString(t,'text/html').getElementById('main');\
if(m){document.getElementById('main').replaceWith(m)}})\
.catch(function(e){var s=document.getElementById('stale');if(s){s.hidden=false;\
s.textContent='cannot refresh: '+e.message+' (showing the last view)'}})\
.finally(function(){setTimeout(tick,ms)})}\
setTimeout(tick,ms)})();";

pub fn render(p: &Page<'_>) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>flume-watcher</title>\
         <noscript><meta http-equiv=\"refresh\" content=\"10\"></noscript>\
         <style>{STYLE}</style></head><body><main id=\"main\">"
    );
    let _ = write!(
        h,
        "<h1>flume-watcher</h1><p class=\"muted\">{} &middot; as of {}</p>",
        esc(p.me),
        esc(&common::time::format(p.now))
    );
    match p.sight.blind_since {
        None => h.push_str(
            "<p class=\"health ok\" id=\"health\" data-health=\"ok\">Sees ZooKeeper: a working session and a full view.</p>",
        ),
        Some(since) => {
            let why = if p.sight.viewed {
                "no working ZooKeeper session"
            } else {
                "no full view yet"
            };
            let _ = write!(
                h,
                "<p class=\"health bad\" id=\"health\" data-health=\"blind\">BLIND: {why} since {}: outages are not seen until it is back.</p>",
                esc(&common::time::format(since))
            );
        }
    }
    h.push_str("<p class=\"health bad\" id=\"stale\" hidden></p>");
    agents(&mut h, &p.view);
    watchers(&mut h, p);
    channels(&mut h, p);
    silences(&mut h, &p.view);
    let _ = writeln!(
        h,
        "<p class=\"muted\">Refreshes every {} s. Also: <a href=\"/api/v1/agents\">/api/v1/agents</a> \
         (as <code>flume-watcher status --json</code>), <a href=\"/metrics\">/metrics</a>, \
         <a href=\"/healthz\">/healthz</a>.</p></main><script>{}</script></body></html>",
        REFRESH_MS / 1000,
        SCRIPT.replace("REFRESH", &REFRESH_MS.to_string())
    );
    h
}

fn agents(h: &mut String, view: &Result<&View, String>) {
    let rows: Vec<&Row> = match view {
        Ok(v) => {
            let mut rows: Vec<&Row> = v.status.agents.iter().collect();
            rows.sort_by(|a, b| (rank(a.state), &a.id).cmp(&(rank(b.state), &b.id)));
            rows
        }
        Err(why) => {
            let _ = write!(
                h,
                "<h2>Agents</h2><p class=\"health bad\" id=\"agents-error\">Cannot read the agents: {}</p>",
                esc(why)
            );
            return;
        }
    };
    let mut counts: BTreeMap<(u8, &str), usize> = BTreeMap::new();
    for r in &rows {
        *counts.entry((rank(r.state), r.state)).or_default() += 1;
    }
    let summary: Vec<String> = counts
        .iter()
        .map(|((_, state), n)| format!("{n} {}", esc(state)))
        .collect();
    let _ = write!(
        h,
        "<h2>Agents <span class=\"muted\" id=\"agent-counts\">{} in all{}{}</span></h2>",
        rows.len(),
        if summary.is_empty() { "" } else { ": " },
        summary.join(", ")
    );
    if rows.is_empty() {
        h.push_str("<p class=\"muted\">No agent is registered under the root.</p>");
        return;
    }
    h.push_str(
        "<div class=\"wrap\"><table id=\"agents\" class=\"cards\"><thead><tr><th>Agent</th><th>Host</th><th>State</th>\
         <th>Since</th><th>Restarts</th><th>Last exit</th></tr></thead><tbody>",
    );
    for r in rows {
        let state = esc(r.state);
        let _ = write!(
            h,
            "<tr class=\"agent\" data-agent=\"{id}\" data-state=\"{state}\"><td class=\"id\" data-label=\"Agent\">{id}",
            id = esc(&r.id),
        );
        if !r.labels.is_empty() {
            h.push_str("<br>");
            for (k, v) in &r.labels {
                let _ = write!(h, "<span class=\"label\">{}={}</span>", esc(k), esc(v));
            }
        }
        // Why a degraded agent is degraded, under its state (the health node's reasons).
        let why = match &r.health {
            Some(health) if !health.reasons.is_empty() && r.state == "degraded" => format!(
                "<br><span class=\"why\">{}</span>",
                esc(&health.reasons.join("; "))
            ),
            _ => String::new(),
        };
        // The silences that hold its alerts back, as chips beside its state.
        let silenced: String = r
            .silenced
            .iter()
            .map(|id| format!(" <span class=\"chip silenced\">silenced {}</span>", esc(id)))
            .collect();
        let _ = write!(
            h,
            "</td><td data-label=\"Host\">{}</td><td data-label=\"State\"><span class=\"badge s-{state}\">{state}</span>{silenced}{why}</td>\
             <td data-label=\"Since\">{}</td><td data-label=\"Restarts\">{}</td><td data-label=\"Last exit\">{}</td></tr>",
            esc(r.host.as_deref().unwrap_or("-")),
            esc(r.since.as_deref().unwrap_or("-")),
            r.restarts.map_or_else(|| "-".to_owned(), |n| n.to_string()),
            esc(&r.last_exit_words().unwrap_or_else(|| "-".to_owned())),
        );
    }
    h.push_str("</tbody></table></div>");
}

/// The silences in force (as read with the agents): what each covers, until when (the watcher's
/// clock and UTC), who set it and why.
fn silences(h: &mut String, view: &Result<&View, String>) {
    h.push_str("<h2>Silences</h2>");
    let Ok(view) = view else {
        h.push_str("<p class=\"muted\">Unknown: ZooKeeper cannot be read.</p>");
        return;
    };
    let list = &view.status.silences;
    if list.is_empty() {
        h.push_str("<p class=\"muted\" id=\"no-silences\">None.</p>");
        return;
    }
    h.push_str(
        "<div class=\"wrap\"><table id=\"silences\" class=\"cards\"><thead><tr><th>Silence</th><th>Matchers</th>\
         <th>Until</th><th>By</th><th>Comment</th></tr></thead><tbody>",
    );
    let zone = crate::message::Zone::local();
    for s in list {
        let mut matchers = vec![format!("agent={}", s.agent)];
        matchers.extend(s.host.iter().map(|h| format!("host={h}")));
        matchers.extend(s.labels.iter().map(|(k, v)| format!("{k}={v}")));
        let until = common::time::parse(&s.ends_at).map_or_else(
            || s.ends_at.clone(),
            |t| crate::silencing::local_and_utc(t, &zone),
        );
        let _ = write!(
            h,
            "<tr class=\"silence\" data-silence=\"{id}\"><td class=\"id\" data-label=\"Silence\">{id}</td>\
             <td class=\"id\" data-label=\"Matchers\">{}</td><td data-label=\"Until\">{}</td>\
             <td data-label=\"By\">{}</td><td class=\"id\" data-label=\"Comment\">{}</td></tr>",
            esc(&matchers.join(" ")),
            esc(&until),
            esc(&s.created_by),
            esc(&s.comment),
            id = esc(&s.id),
        );
    }
    h.push_str("</tbody></table></div>");
}

fn watchers(h: &mut String, p: &Page<'_>) {
    let _ = write!(
        h,
        "<h2>Watchers</h2><p id=\"this-watcher\" data-leading=\"{}\">This watcher {}.</p>",
        p.sight.leading,
        if p.sight.leading {
            "leads: it records and delivers alerts"
        } else {
            "follows: another watcher delivers, this one keeps its view warm"
        }
    );
    let Ok(view) = &p.view else {
        return;
    };
    if view.watchers.is_empty() {
        h.push_str(
            "<p class=\"health bad\">No watcher takes part in the election: nobody is alerted.</p>",
        );
        return;
    }
    h.push_str("<div class=\"wrap\"><table id=\"watchers\"><thead><tr><th>Role</th><th>Host</th><th>Pid</th><th>Since</th></tr></thead><tbody>");
    for (i, w) in view.watchers.iter().enumerate() {
        let text = |key: &str| match &w[key] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "?".to_owned(),
            other => other.to_string(),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if i == 0 { "leader" } else { "follower" },
            esc(&text("host")),
            esc(&text("pid")),
            esc(&text("since")),
        );
    }
    h.push_str("</tbody></table></div>");
}

fn channels(h: &mut String, p: &Page<'_>) {
    h.push_str("<h2>Channels</h2>");
    if p.channels.is_empty() {
        h.push_str("<p class=\"muted\">None.</p>");
        return;
    }
    h.push_str("<div class=\"wrap\"><table id=\"channels\" class=\"cards\"><thead><tr><th>Channel</th><th>Last result</th>\
        <th>Delivered</th><th>Refused</th><th>Retries</th><th>Pending</th></tr></thead><tbody>");
    for c in p.channels {
        let last = match p.last.get(&c.label) {
            None => "none yet".to_owned(),
            Some(l) => format!(
                "{} {} {} at {}",
                if l.delivered { "delivered" } else { "REFUSED" },
                l.alerts,
                if l.alerts == 1 {
                    format!("{} alert", l.event)
                } else {
                    "alerts".to_owned()
                },
                common::time::format(l.at)
            ),
        };
        let _ = write!(
            h,
            "<tr><td class=\"id\" data-label=\"Channel\">{}</td><td data-label=\"Last result\">{}</td>\
             <td data-label=\"Delivered\">{}</td><td data-label=\"Refused\">{}</td><td data-label=\"Retries\">{}</td>\
             <td data-label=\"Pending\">{}</td></tr>",
            esc(&c.label),
            esc(&last),
            c.delivered,
            c.failed_permanently,
            c.retries,
            c.pending
        );
    }
    h.push_str("</tbody></table></div>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Status;
    use common::ExitRecord;

    fn row(id: &str, host: &str, state: &'static str) -> Row {
        Row {
            id: id.to_owned(),
            host: Some(host.to_owned()),
            state,
            since: Some("2026-11-21T01:00:00.000Z".to_owned()),
            restarts: Some(1),
            last_exit: None,
            labels: Default::default(),
            health: None,
            silenced: Vec::new(),
        }
    }

    fn sight(blind: bool) -> Sight {
        Sight {
            connected: !blind,
            leading: true,
            blind_since: blind.then(SystemTime::now),
            viewed: true,
        }
    }

    fn page(view: Result<&View, String>, blind: bool) -> String {
        render(&Page {
            sight: &sight(blind),
            me: "flume-watcher on <vm> (pid 1)",
            view,
            channels: &[ChannelStats {
                label: "ops<script>".into(),
                delivered: 3,
                ..Default::default()
            }],
            last: &BTreeMap::new(),
            now: SystemTime::now(),
        })
    }

    fn silence(id: &str, by: &str, comment: &str) -> crate::silencing::Listed {
        crate::silencing::Listed {
            id: id.to_owned(),
            state: "active",
            agent: "web<7>-*".to_owned(),
            host: None,
            labels: BTreeMap::from([("team".to_owned(), "logs".to_owned())]),
            starts_at: "2026-12-02T16:00:00.000Z".to_owned(),
            ends_at: "2026-12-02T18:00:00.000Z".to_owned(),
            created_by: by.to_owned(),
            comment: comment.to_owned(),
        }
    }

    #[test]
    fn everything_from_zookeeper_is_escaped() {
        let mut evil = row("a1", "<script>alert(1)</script>", "down");
        evil.labels.insert("team\"x".into(), "<b>logs</b>&".into());
        evil.last_exit = Some(ExitRecord {
            code: None,
            signal: None,
            at: "<img src=x onerror=alert(2)>".into(),
            error: Some("cannot start <i>flume</i>".into()),
        });
        let view = View {
            status: Status {
                leader: None,
                watchers: 1,
                agents: vec![evil],
                silences: vec![silence("<s>", "by<me>", "why <i>")],
                notes: vec![],
            },
            watchers: vec![serde_json::json!({"host": "<h>", "pid": 7, "since": "\"'"})],
        };
        let html = page(Ok(&view), false);
        for bad in [
            "<script>alert",
            "<b>logs",
            "<img",
            "<i>flume",
            "<h>",
            "<vm>",
            "ops<script>",
            "web<7>",
            "by<me>",
            "<s>",
        ] {
            assert!(!html.contains(bad), "{bad:?} unescaped in:\n{html}");
        }
        for good in [
            "&lt;script&gt;alert(1)&lt;/script&gt;",
            "team&quot;x=&lt;b&gt;logs&lt;/b&gt;&amp;",
            "cannot start &lt;i&gt;flume&lt;/i&gt;",
            "&lt;h&gt;",
            "&quot;&#39;",
            "agent=web&lt;7&gt;-*",
            "by&lt;me&gt;",
            "why &lt;i&gt;",
        ] {
            assert!(html.contains(good), "{good:?} missing in:\n{html}");
        }
        // Only the page's own script runs.
        assert_eq!(html.matches("<script>").count(), 1, "{html}");
    }

    #[test]
    fn states_problems_first_health_and_phone_layout() {
        let view = View {
            status: Status {
                leader: None,
                watchers: 2,
                agents: vec![
                    row("a-up", "h1", "up"),
                    row("b-down", "h2", "down"),
                    row("c-failed", "h3", "failed"),
                    Row {
                        health: Some(crate::status::RowHealth {
                            verdict: "degraded",
                            reasons: vec!["sink k1 drained 0 events in 20s <b>".to_owned()],
                            at: "t".to_owned(),
                        }),
                        ..row("d-degraded", "h4", "degraded")
                    },
                    row("e-stopped", "h5", "stopped"),
                    Row {
                        silenced: vec!["3f9a1c2e".to_owned()],
                        ..row("f-silenced", "h6", "down")
                    },
                ],
                silences: vec![silence("3f9a1c2e", "ops@bastion", "kernel upgrade")],
                notes: vec![],
            },
            watchers: vec![
                serde_json::json!({"host": "w1", "pid": 1, "since": "t"}),
                serde_json::json!({"host": "w2", "pid": 2, "since": "t"}),
            ],
        };
        let html = page(Ok(&view), false);
        let order: Vec<usize> = [
            "c-failed",
            "b-down",
            "f-silenced",
            "d-degraded",
            "e-stopped",
            "a-up",
        ]
        .iter()
        .map(|id| {
            html.find(&format!("data-agent=\"{id}\""))
                .unwrap_or_else(|| panic!("{id} missing in {html}"))
        })
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        for want in [
            "data-agent=\"b-down\" data-state=\"down\"",
            "<td data-label=\"State\"><span class=\"badge s-down\">down</span>",
            "<span class=\"badge s-degraded\">degraded</span><br><span class=\"why\">sink k1 drained 0 events in 20s &lt;b&gt;</span>",
            "6 in all: 1 failed, 2 down, 1 degraded, 1 stopped, 1 up",
            "<span class=\"badge s-down\">down</span> <span class=\"chip silenced\">silenced 3f9a1c2e</span>",
            "<tr class=\"silence\" data-silence=\"3f9a1c2e\"><td class=\"id\" data-label=\"Silence\">3f9a1c2e</td>",
            "agent=web&lt;7&gt;-* team=logs",
            "(2026-12-02T18:00:00.000Z)</td><td data-label=\"By\">ops@bastion</td>",
            ">kernel upgrade</td>",
            "data-health=\"ok\"",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<td>leader</td><td>w1</td>",
            "<td>follower</td><td>w2</td>",
            "This watcher leads",
            "fetch(location.pathname",
        ] {
            assert!(html.contains(want), "{want:?} missing in:\n{html}");
        }
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external asset"
        );

        assert!(!html.contains("id=\"no-silences\""), "{html}");

        let blind = page(Err("cannot reach ZooKeeper: <refused>".into()), true);
        assert!(blind.contains("data-health=\"blind\""), "{blind}");
        assert!(
            blind.contains("Cannot read the agents: cannot reach ZooKeeper: &lt;refused&gt;"),
            "{blind}"
        );
    }
}
