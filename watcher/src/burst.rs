//! One message for many alerts: what a chat group reads when a rack is lost at once.
//!
//! Why: when hundreds of agents go down together, a chat robot at its documented rate would take
//! minutes to carry one section per agent (DingTalk: 20 messages a minute), and the group would
//! scroll through a hundred messages to learn one fact — a rack is gone. A channel read by people
//! therefore sends what does not fit one message as one summary: how many, of what, on which
//! hosts, why, since when, the first ids, and how to see them all. Machine receivers (webhook,
//! exec, Alertmanager) still get every alert; the outage records keep every notice, and `status`
//! lists every agent.
//!
//! Everything here is pure: a batch and a [`Style`] in, words out, each value within a byte
//! budget so that the summary of any number of alerts fits every chat channel's smallest limit
//! (a Slack block's 3,000 characters).

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::alert::{Alert, AlertKind};
use crate::channels::chat::fit;
use crate::message::{Lang, Style};
use crate::outage::LOST_CONTACT;

/// Hosts named with their counts; the rest are counted.
pub const HOSTS_SHOWN: usize = 10;
/// Agent ids named (the first to arrive); the rest are counted.
pub const IDS_SHOWN: usize = 10;
/// Distinct reasons named with their counts; the rest are counted.
pub const REASONS_SHOWN: usize = 3;
/// Most bytes (JSON-escaped) of one line's value: hosts, ids and reasons are cut to it, visibly.
/// Six lines of it and the labels stay under a Slack block's 3,000 characters.
pub const VALUE_BUDGET: usize = 420;
/// Most bytes of the title.
pub const TITLE_BUDGET: usize = 160;

/// A summary of alerts, in the words of one style.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Burst {
    /// Every alert summarised.
    pub total: usize,
    /// How many of each event, in the order down, failed, recovered, then the rest.
    pub events: Vec<(AlertKind, usize)>,
    /// Hosts by count, most first (then by name); `None` is an unknown host.
    pub hosts: Vec<(Option<String>, usize)>,
    /// Reasons in the style's language by count, most first.
    pub reasons: Vec<(String, usize)>,
    /// The first agent ids, in the order they came.
    pub first_ids: Vec<String>,
    /// When the earliest and the latest transition happened.
    pub since: SystemTime,
    pub until: SystemTime,
    /// Every alert is a `down` for lost contact: hosts or their network are gone, not the agents.
    pub lost_contact: bool,
}

impl Burst {
    /// The summary of `batch` (not empty) in `style`.
    pub fn of(batch: &[Alert], style: &Style) -> Burst {
        let mut events: BTreeMap<u8, (AlertKind, usize)> = BTreeMap::new();
        let mut hosts: BTreeMap<Option<String>, usize> = BTreeMap::new();
        let mut reasons: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for (i, a) in batch.iter().enumerate() {
            events.entry(event_order(a.event)).or_insert((a.event, 0)).1 += 1;
            *hosts.entry(a.host.clone()).or_default() += 1;
            // Ties between reasons keep the order of their first alert.
            reasons.entry(style.reason(a)).or_insert((0, i)).0 += 1;
        }
        let mut hosts: Vec<(Option<String>, usize)> = hosts.into_iter().collect();
        hosts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut reasons: Vec<(String, (usize, usize))> = reasons.into_iter().collect();
        reasons.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.1 .1.cmp(&b.1 .1)));
        let times = batch.iter().map(|a| a.at);
        Burst {
            total: batch.len(),
            events: events.into_values().collect(),
            hosts,
            reasons: reasons.into_iter().map(|(r, (n, _))| (r, n)).collect(),
            first_ids: batch
                .iter()
                .take(IDS_SHOWN)
                .map(|a| a.agent.clone())
                .collect(),
            since: times.clone().min().unwrap_or(SystemTime::UNIX_EPOCH),
            until: times.max().unwrap_or(SystemTime::UNIX_EPOCH),
            lost_contact: !batch.is_empty()
                && batch
                    .iter()
                    .all(|a| a.event == AlertKind::Down && a.reason == LOST_CONTACT),
        }
    }

    /// The message's title: `2,000 Flume agents lost contact on 40 hosts`.
    pub fn title(&self, style: &Style) -> String {
        let n = count(self.total);
        let hosts = count(self.hosts.len());
        let single = match self.events.as_slice() {
            [(kind, _)] => Some(*kind),
            _ => None,
        };
        let title = match style.lang {
            Lang::En => {
                let what = match single {
                    _ if self.lost_contact => "lost contact",
                    Some(AlertKind::Down) => "down",
                    Some(AlertKind::Failed) => "failed",
                    Some(AlertKind::Recovered) => "recovered",
                    Some(AlertKind::Degraded) => "degraded",
                    Some(AlertKind::Healthy) => "healthy again",
                    _ => "",
                };
                let host_word = plural(self.hosts.len(), "host", "hosts");
                if what.is_empty() {
                    format!("{n} Flume agent alerts on {hosts} {host_word}")
                } else {
                    let agent_word = plural(self.total, "agent", "agents");
                    format!("{n} Flume {agent_word} {what} on {hosts} {host_word}")
                }
            }
            Lang::Zh => match single {
                _ if self.lost_contact => format!("{n} 个 Flume agent 失去联系（{hosts} 台主机）"),
                Some(
                    kind @ (AlertKind::Down
                    | AlertKind::Failed
                    | AlertKind::Recovered
                    | AlertKind::Degraded
                    | AlertKind::Healthy),
                ) => {
                    format!("{n} 个 Flume agent {}（{hosts} 台主机）", style.event(kind))
                }
                _ => format!("{n} 条 Flume agent 告警（{hosts} 台主机）"),
            },
        };
        fit(&title, TITLE_BUDGET)
    }

    /// The summary's lines, `(label, value)`, every value within [`VALUE_BUDGET`] and on one line.
    pub fn lines(&self, style: &Style) -> Vec<(&'static str, String)> {
        let zh = style.lang == Lang::Zh;
        let label = |en: &'static str, zh_label: &'static str| if zh { zh_label } else { en };
        let sep = if zh { "、" } else { ", " };
        let with_count = |what: &str, n: usize| {
            if zh {
                format!("{what}（{}）", count(n))
            } else {
                format!("{what} ({})", count(n))
            }
        };
        let mut lines = Vec::new();
        if self.events.len() > 1 {
            let parts: Vec<String> = self
                .events
                .iter()
                .map(|(kind, n)| {
                    if zh {
                        format!("{} {}", style.event(*kind), count(*n))
                    } else {
                        format!("{} {}", count(*n), kind.as_str())
                    }
                })
                .collect();
            lines.push((label("Events", "事件"), parts.join(sep)));
        }
        let mut reasons: Vec<String> = self
            .reasons
            .iter()
            .take(REASONS_SHOWN)
            .map(|(r, n)| with_count(&fit(r, 120), *n))
            .collect();
        let other_reasons = self.reasons.len().saturating_sub(REASONS_SHOWN);
        if other_reasons > 0 {
            reasons.push(if zh {
                format!("另有 {} 种原因", count(other_reasons))
            } else {
                format!("{} other reasons", count(other_reasons))
            });
        }
        lines.push((
            label("Why", "原因"),
            reasons.join(if zh { "；" } else { "; " }),
        ));
        let unknown = label("unknown host", "未知主机");
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .take(HOSTS_SHOWN)
            .map(|(h, n)| with_count(&fit(h.as_deref().unwrap_or(unknown), 64), *n))
            .collect();
        let more_hosts = self.hosts.len().saturating_sub(HOSTS_SHOWN);
        let more_hosts = match (more_hosts, zh) {
            (0, _) => String::new(),
            (n, true) => format!("{sep}另有 {} 台主机", count(n)),
            (n, false) => format!("{sep}and {} more hosts", count(n)),
        };
        lines.push((label("Hosts", "主机"), list(&hosts, sep, &more_hosts)));
        let ids: Vec<String> = self.first_ids.iter().map(|id| fit(id, 40)).collect();
        let all = if self.total > ids.len() {
            if zh {
                format!(
                    "（共 {} 个，以上为最先的 {} 个）",
                    count(self.total),
                    ids.len()
                )
            } else {
                format!(" (the first {} of {})", ids.len(), count(self.total))
            }
        } else {
            String::new()
        };
        lines.push((label("Agents", "Agent"), list(&ids, sep, &all)));
        let (since, until) = (style.time(self.since), style.time(self.until));
        let when = match (since == until, zh) {
            (true, _) => since,
            (false, true) => format!("{since} 至 {until}"),
            (false, false) => format!("{since} to {until}"),
        };
        lines.push((label("When", "时间"), when));
        lines.push((
            label("See all", "查看全部"),
            label(
                "flume-watcher status (every agent, its state and why)",
                "flume-watcher status（每个 agent 的状态和原因）",
            )
            .to_owned(),
        ));
        lines
            .into_iter()
            .map(|(l, v)| (l, fit(&v, VALUE_BUDGET)))
            .collect()
    }

    /// Title and lines as plain text, one `label: value` a line: for e-mail and logs.
    pub fn plain(&self, style: &Style) -> String {
        let sep = if style.lang == Lang::Zh { "：" } else { ": " };
        let mut out = self.title(style);
        for (label, value) in self.lines(style) {
            out.push('\n');
            out.push_str(label);
            out.push_str(sep);
            out.push_str(&value);
        }
        out
    }
}

/// `items` joined by `sep`, cut visibly so that, with `tail` (which is never cut: it says how
/// many there are in all), the value stays within [`VALUE_BUDGET`].
fn list(items: &[String], sep: &str, tail: &str) -> String {
    let mut out = fit(&items.join(sep), VALUE_BUDGET.saturating_sub(tail.len()));
    out.push_str(tail);
    out
}

/// Events in the order a person wants them: what is broken first.
fn event_order(kind: AlertKind) -> u8 {
    match kind {
        AlertKind::Down => 0,
        AlertKind::Failed => 1,
        AlertKind::Recovered => 2,
        AlertKind::Blind => 5,
        AlertKind::Sighted => 6,
        AlertKind::Degraded => 3,
        AlertKind::Healthy => 4,
        AlertKind::Test => 7,
    }
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// `2,000`: a count a person reads at a glance.
fn count(n: usize) -> String {
    common::records::thousands(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Zone;
    use std::time::{Duration, UNIX_EPOCH};

    fn down(agent: &str, host: &str, at_ms: u64) -> Alert {
        Alert {
            host: Some(host.to_owned()),
            restarts: Some(0),
            crashes: 1,
            ..Alert::new(
                AlertKind::Down,
                agent,
                LOST_CONTACT.to_owned(),
                UNIX_EPOCH + Duration::from_millis(1_796_000_000_000 + at_ms),
            )
        }
    }

    /// 2,000 agents on 40 hosts, 50 each, lost within two seconds.
    fn rack() -> Vec<Alert> {
        (0..2_000)
            .map(|i| {
                down(
                    &format!("rack7-{:02}-a{:02}", i / 50, i % 50),
                    &format!("rack7-{:02}", i / 50),
                    i as u64,
                )
            })
            .collect()
    }

    fn zh() -> Style {
        Style {
            lang: Lang::Zh,
            zone: Zone::parse("Asia/Shanghai").expect("zone"),
        }
    }

    #[test]
    fn counts_read_at_a_glance() {
        for (n, s) in [
            (0, "0"),
            (7, "7"),
            (999, "999"),
            (1_000, "1,000"),
            (2_000, "2,000"),
            (123_456, "123,456"),
            (1_000_000, "1,000,000"),
        ] {
            assert_eq!(count(n), s);
        }
    }

    #[test]
    fn a_lost_rack_reads_as_one_fact() {
        let burst = Burst::of(&rack(), &Style::default());
        assert_eq!(burst.total, 2_000);
        assert_eq!(burst.hosts.len(), 40);
        assert!(burst.lost_contact);
        assert_eq!(
            burst.title(&Style::default()),
            "2,000 Flume agents lost contact on 40 hosts"
        );
        assert_eq!(
            burst.title(&zh()),
            "2,000 个 Flume agent 失去联系（40 台主机）"
        );
        let lines = burst.lines(&Style::default());
        let get = |label: &str| {
            lines
                .iter()
                .find(|(l, _)| *l == label)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {label} line in {lines:?}"))
        };
        assert!(
            get("Hosts").starts_with("rack7-00 (50), rack7-01 (50), "),
            "{}",
            get("Hosts")
        );
        assert!(
            get("Hosts").ends_with("and 30 more hosts"),
            "{}",
            get("Hosts")
        );
        assert!(get("Agents").starts_with("rack7-00-a00, rack7-00-a01, "));
        assert!(get("Agents").ends_with("(the first 10 of 2,000)"));
        assert!(get("Why").starts_with("lost contact"), "{}", get("Why"));
        assert!(get("Why").ends_with("(2,000)"), "{}", get("Why"));
        assert_eq!(
            get("When"),
            "2026-11-30 00:53:20 +00:00 to 2026-11-30 00:53:21 +00:00"
        );
        assert!(get("See all").contains("flume-watcher status"));
        assert!(
            !lines.iter().any(|(l, _)| *l == "Events"),
            "one kind of event"
        );
    }

    #[test]
    fn the_chinese_summary_says_the_same_in_beijing_time() {
        let text = Burst::of(&rack(), &zh()).plain(&zh());
        for part in [
            "2,000 个 Flume agent 失去联系（40 台主机）",
            "主机：rack7-00（50）、rack7-01（50）、",
            "另有 30 台主机",
            "（共 2,000 个，以上为最先的 10 个）",
            "时间：2026-11-30 08:53:20 +08:00 至 2026-11-30 08:53:21 +08:00",
            "原因：失去联系",
            "查看全部：flume-watcher status",
        ] {
            assert!(text.contains(part), "{part:?} not in:\n{text}");
        }
    }

    #[test]
    fn mixed_events_are_counted_by_kind_worst_first() {
        let mut batch = vec![down("a1", "h1", 0)];
        let mut r = down("a2", "h1", 1);
        r.event = AlertKind::Recovered;
        r.reason = "recovered after 5m".to_owned();
        batch.push(r);
        let mut f = down("a3", "h2", 2);
        f.event = AlertKind::Failed;
        f.reason = "the watchdog gave up".to_owned();
        batch.push(f);
        let burst = Burst::of(&batch, &Style::default());
        assert_eq!(
            burst.title(&Style::default()),
            "3 Flume agent alerts on 2 hosts"
        );
        assert_eq!(burst.title(&zh()), "3 条 Flume agent 告警（2 台主机）");
        let lines = burst.lines(&Style::default());
        assert_eq!(
            lines[0],
            ("Events", "1 down, 1 failed, 1 recovered".to_owned())
        );
        let zh_lines = burst.lines(&zh());
        assert_eq!(
            zh_lines[0],
            ("事件", "宕机 1、已放弃重启 1、已恢复 1".to_owned())
        );
    }

    #[test]
    fn many_degraded_agents_are_called_so() {
        let batch: Vec<Alert> = (0..30)
            .map(|i| {
                let mut a = down(&format!("a{i}"), &format!("h{}", i % 3), i);
                a.event = AlertKind::Degraded;
                a.reason = "channel c1 94 % full (940 of 1,000)".to_owned();
                a
            })
            .collect();
        let burst = Burst::of(&batch, &Style::default());
        assert_eq!(
            burst.title(&Style::default()),
            "30 Flume agents degraded on 3 hosts"
        );
        assert_eq!(burst.title(&zh()), "30 个 Flume agent 运行异常（3 台主机）");
    }

    #[test]
    fn only_crashes_are_called_down_not_lost_contact() {
        let batch: Vec<Alert> = (0..3)
            .map(|i| {
                let mut a = down(&format!("a{i}"), "h1", i);
                a.reason = "exited with code 3".to_owned();
                a
            })
            .collect();
        let burst = Burst::of(&batch, &Style::default());
        assert!(!burst.lost_contact);
        assert_eq!(
            burst.title(&Style::default()),
            "3 Flume agents down on 1 host"
        );
        assert_eq!(burst.title(&zh()), "3 个 Flume agent 宕机（1 台主机）");
    }

    #[test]
    fn many_reasons_and_long_names_stay_within_budget() {
        let batch: Vec<Alert> = (0..500)
            .map(|i| {
                let mut a = down(&"故\"".repeat(300), &format!("{i}{}", "h".repeat(300)), i);
                a.reason = format!("exited with code {i} {}", "x".repeat(i as usize));
                a
            })
            .collect();
        for style in [Style::default(), zh()] {
            let burst = Burst::of(&batch, &style);
            assert!(burst.title(&style).len() <= TITLE_BUDGET);
            let lines = burst.lines(&style);
            let mut total = burst.title(&style).chars().count();
            for (label, value) in &lines {
                assert!(
                    value.len() <= VALUE_BUDGET,
                    "{label}: {} bytes",
                    value.len()
                );
                assert!(!value.contains('\n'));
                total += label.chars().count() + value.chars().count() + 4;
            }
            assert!(total < 3_000, "{total} characters: more than a Slack block");
            let why = &lines
                .iter()
                .find(|(l, _)| matches!(*l, "Why" | "原因"))
                .expect("why")
                .1;
            assert!(why.contains("497") || why.contains('…'), "{why}");
        }
        // 500 distinct reasons: three are named, the rest counted.
        let burst = Burst::of(&batch[..5], &Style::default());
        let why = burst.lines(&Style::default())[0].1.clone();
        assert!(why.ends_with("2 other reasons"), "{why}");
    }

    #[test]
    fn an_unknown_host_is_said_so() {
        let mut a = down("a1", "h1", 0);
        a.host = None;
        let burst = Burst::of(&[a.clone(), a], &Style::default());
        assert_eq!(burst.hosts, vec![(None, 2)]);
        let hosts = burst.lines(&Style::default())[1].1.clone();
        assert_eq!(hosts, "unknown host (2)");
    }
}
