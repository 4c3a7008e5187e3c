//! What a person reads about an alert, in their language (English or Chinese) and time zone:
//! the one place chat, mail and pager channels take their words from.
//!
//! Machine receivers (the generic webhook's JSON, Alertmanager's labels) keep the English reason
//! and UTC times of [`Alert`]: they are parsed, not read. Everything here is for people on a phone
//! at night: what happened, to which agent on which host, why, since when, in their zone.

use std::fmt;
use std::time::{Duration, SystemTime};

use common::records::HealthReason;
use common::ExitRecord;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::alert::{Alert, AlertKind};
use crate::outage::LOST_CONTACT;

/// The language of messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    pub fn parse(s: &str) -> Result<Lang, String> {
        match s {
            "en" => Ok(Lang::En),
            "zh" => Ok(Lang::Zh),
            other => Err(format!("`{other}` is not a language: \"en\" or \"zh\"")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }
}

/// A time zone, and how the operator wrote it.
#[derive(Clone)]
pub struct Zone {
    tz: TimeZone,
    name: String,
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Zone {
    /// An IANA name (`Asia/Shanghai`), `UTC`, or a fixed offset (`+08:00`).
    pub fn parse(s: &str) -> Result<Zone, String> {
        let s = s.trim();
        let tz = if s.starts_with(['+', '-']) {
            let offset = offset_seconds(s)
                .and_then(|secs| jiff::tz::Offset::from_seconds(secs).ok())
                .ok_or_else(|| {
                    format!("`{s}` is not an offset (write it like +08:00 or -05:30)")
                })?;
            TimeZone::fixed(offset)
        } else {
            TimeZone::get(s).map_err(|_| {
                format!("`{s}` is not a time zone (an IANA name like Asia/Shanghai, UTC, or an offset like +08:00)")
            })?
        };
        Ok(Zone {
            tz,
            name: s.to_owned(),
        })
    }

    /// The machine's own zone (`TZ`, else `/etc/localtime`), UTC if it cannot be told.
    pub fn local() -> Zone {
        let tz = TimeZone::try_system().unwrap_or(TimeZone::UTC);
        let name = tz.iana_name().unwrap_or("local").to_owned();
        Zone { tz, name }
    }

    pub fn utc() -> Zone {
        Zone {
            tz: TimeZone::UTC,
            name: "UTC".to_owned(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// `+08:00` or `-0530` in seconds, at most 18 hours. (jiff parses offsets only inside whole
/// timestamps; this is the one form operators write alone.)
fn offset_seconds(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) || rest.len() > 5 {
        return None;
    }
    let (h, m): (i32, i32) = (digits[..2].parse().ok()?, digits[2..].parse().ok()?);
    (h <= 18 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

/// How messages are written: language and time zone.
#[derive(Clone, Debug)]
pub struct Style {
    pub lang: Lang,
    pub zone: Zone,
}

impl Default for Style {
    /// English, UTC: what the tests and the flags-only watcher of before used.
    fn default() -> Style {
        Style {
            lang: Lang::En,
            zone: Zone::utc(),
        }
    }
}

/// One line of a message: what it is and its value.
pub type Fact = (&'static str, String);

impl Style {
    /// `2026-11-21 09:02:03 +08:00`: a person's clock, with the offset that says which.
    pub fn time(&self, t: SystemTime) -> String {
        match Timestamp::try_from(t) {
            Ok(ts) => ts
                .to_zoned(self.zone.tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S %:z")
                .to_string(),
            Err(_) => common::time::format(t),
        }
    }

    /// `1h 5m` / `1小时5分`.
    pub fn duration(&self, d: Duration) -> String {
        match self.lang {
            Lang::En => common::time::human(d),
            Lang::Zh => zh_duration(d),
        }
    }

    /// The event in a word, for headlines.
    pub fn event(&self, kind: AlertKind) -> &'static str {
        match (self.lang, kind) {
            (Lang::En, AlertKind::Down) => "DOWN",
            (Lang::En, AlertKind::Failed) => "FAILED",
            (Lang::En, AlertKind::Recovered) => "RECOVERED",
            (Lang::En, AlertKind::Blind) => "WATCHER BLIND",
            (Lang::En, AlertKind::Sighted) => "WATCHER SEES AGAIN",
            (Lang::En, AlertKind::Test) => "TEST",
            (Lang::Zh, AlertKind::Down) => "宕机",
            (Lang::Zh, AlertKind::Failed) => "已放弃重启",
            (Lang::Zh, AlertKind::Recovered) => "已恢复",
            (Lang::Zh, AlertKind::Blind) => "监控失联",
            (Lang::Zh, AlertKind::Sighted) => "监控恢复",
            (Lang::Zh, AlertKind::Test) => "测试",
            (Lang::En, AlertKind::Degraded) => "DEGRADED",
            (Lang::En, AlertKind::Healthy) => "HEALTHY AGAIN",
            (Lang::Zh, AlertKind::Degraded) => "运行异常",
            (Lang::Zh, AlertKind::Healthy) => "已恢复正常",
        }
    }

    /// `[DOWN] web7-a1 on web7: exited with code 3` / `【宕机】web7-a1（web7）：退出码 3`.
    pub fn headline(&self, a: &Alert) -> String {
        let host = a.host.as_deref();
        match self.lang {
            Lang::En => format!(
                "[{}] {} on {}: {}",
                self.event(a.event),
                a.agent,
                host.unwrap_or("an unknown host"),
                self.reason(a)
            ),
            Lang::Zh => format!(
                "【{}】{}（{}）：{}",
                self.event(a.event),
                a.agent,
                host.unwrap_or("未知主机"),
                self.reason(a)
            ),
        }
    }

    /// A title for a batch: a notification's preview.
    pub fn title(&self, batch: &[Alert]) -> String {
        match (self.lang, batch) {
            (Lang::En, [one]) => format!("Flume agent {} {}", one.agent, one.event.as_str()),
            (Lang::Zh, [one]) => format!("Flume agent {} {}", one.agent, self.event(one.event)),
            (Lang::En, many) => format!("{} Flume agent alerts", many.len()),
            (Lang::Zh, many) => format!("{} 条 Flume agent 告警", many.len()),
        }
    }

    /// Why, in the operator's language.
    pub fn reason(&self, a: &Alert) -> String {
        match self.lang {
            Lang::En => a.reason.clone(),
            Lang::Zh => zh_reason(a, self),
        }
    }

    /// The facts of one alert, in order: agent, host, reason, since, then what applies.
    pub fn facts(&self, a: &Alert) -> Vec<Fact> {
        let zh = self.lang == Lang::Zh;
        let label = |en: &'static str, zh_label: &'static str| if zh { zh_label } else { en };
        let mut facts = vec![
            (label("Agent", "Agent"), a.agent.clone()),
            (
                label("Host", "主机"),
                a.host
                    .clone()
                    .unwrap_or_else(|| label("unknown", "未知").to_owned()),
            ),
            (label("Reason", "原因"), self.reason(a)),
            (
                match a.event {
                    AlertKind::Recovered | AlertKind::Sighted => label("At", "恢复时间"),
                    _ => label("Since", "发生时间"),
                },
                self.time(a.at),
            ),
        ];
        if let Some(outage) = a.outage {
            facts.push((label("Outage", "故障时长"), self.duration(outage)));
        }
        if let Some(r) = a.restarts {
            facts.push((label("Restarts", "重启次数"), r.to_string()));
        }
        if a.crashes > 1 {
            facts.push((
                label("Crashes in this outage", "本次故障崩溃次数"),
                a.crashes.to_string(),
            ));
        }
        if !a.labels.is_empty() {
            let pairs: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            facts.push((label("Labels", "标签"), pairs.join(", ")));
        }
        // Sent late on purpose: the person reading it at the silence's end learns why now, and
        // that the agent did not come back within the maintenance.
        if let Some(s) = &a.silenced {
            let degraded = a.event == AlertKind::Degraded;
            let (comment, ended) = (one_line(&s.comment), self.time(s.ended));
            facts.push((
                label("Silenced", "静默"),
                if zh {
                    let still = if degraded {
                        "仍然异常"
                    } else {
                        "仍未恢复"
                    };
                    format!(
                        "静默 {}（{comment}）期间暂缓发送；静默已于 {ended} 结束，{still}",
                        s.id
                    )
                } else {
                    let still = if degraded {
                        "still degraded"
                    } else {
                        "still down"
                    };
                    format!(
                        "held back by silence {} ({comment}) until it ended at {ended}; {still}",
                        s.id
                    )
                },
            ));
        }
        // The exit itself, when the reason does not already say it (a lost contact, a `failed`
        // that names its last cause in other words).
        if let Some(exit) = &a.last_exit {
            let described = exit.describe();
            if !a.reason.contains(&described) {
                let at = exit
                    .at_time()
                    .map(|t| self.time(t))
                    .unwrap_or_else(|| exit.at.clone());
                facts.push((
                    label("Last exit", "最后一次退出"),
                    format!("{described} ({at})"),
                ));
            }
        }
        facts
    }
}

/// A comment on one line: a newline would break a robot's list, a mail's or a command's table.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text made safe for HTML, in element content and in quoted attributes alike: the status page
/// and the e-mails' HTML part escape with it.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `1小时5分`, `3分12秒`, `850毫秒`.
fn zh_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}毫秒", d.as_millis());
    }
    let s = d.as_secs();
    let (days, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let mut out = String::new();
    for (n, unit) in [(days, "天"), (h, "小时"), (m, "分"), (sec, "秒")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// A health reason in Chinese, from its fields (its figures), not its English text.
fn zh_health(r: &HealthReason) -> String {
    let dur = |ms: u64| zh_duration(Duration::from_millis(ms));
    let n = |v: u64| common::records::thousands(v);
    match r {
        HealthReason::ChannelFull {
            channel,
            pct,
            size,
            capacity,
        } => format!(
            "channel {channel} 已满 {pct}%（{} / {}）",
            n(*size),
            n(*capacity)
        ),
        HealthReason::SinkStalled { sink, channel, ms } => match channel {
            Some(ch) => format!("sink {sink} {} 内未从 channel {ch} 取走任何事件", dur(*ms)),
            None => format!("sink {sink} {} 内未取走任何事件", dur(*ms)),
        },
        HealthReason::ChannelUnhealthy { channel } => {
            format!("channel {channel} 报告不健康（Unhealthy=1，如 file channel 回放失败）")
        }
        HealthReason::ComponentStopped { component, name } => {
            format!("{component} {name} 已停止运行")
        }
        HealthReason::MetricsUnanswered { ms } => {
            format!("监控接口 {} 无响应（JVM 可能卡死）", dur(*ms))
        }
        HealthReason::MetricsGarbled { error } => format!("监控接口返回无法识别的内容：{error}"),
    }
}

/// An exit in Chinese, from its fields rather than its English text.
fn zh_exit(exit: &ExitRecord) -> String {
    if let Some(error) = &exit.error {
        // The system's own words (a missing file, a refused permission): kept as they are.
        return format!("无法启动：{error}");
    }
    match (&exit.signal, exit.code) {
        (Some(sig), _) => format!("被信号 {sig} 终止"),
        (None, Some(code)) => format!("退出码 {code}"),
        (None, None) => "已退出".to_owned(),
    }
}

/// The reasons of the outage monitor and the dead-man switch in Chinese. Each English form they
/// write (`outage.rs`, `blind.rs`) is matched here, and the test lists every one; anything else is
/// kept in English rather than guessed at.
fn zh_reason(a: &Alert, style: &Style) -> String {
    let cause = |text: &str| -> String {
        if let Some(exit) = &a.last_exit {
            if text == exit.describe() {
                return zh_exit(exit);
            }
            // The watchdog restarted a hung agent itself: `restarted: metrics endpoint hung for
            // 1m; killed by SIGTERM`.
            if let Some(hung) = text
                .strip_prefix("restarted: metrics endpoint hung for ")
                .and_then(|rest| rest.strip_suffix(&format!("; {}", exit.describe())))
            {
                return format!(
                    "监控接口 {hung} 无响应（JVM 可能卡死），watchdog 已重启 agent；{}",
                    zh_exit(exit)
                );
            }
        }
        if text == LOST_CONTACT {
            return "失去联系：watchdog 的 ZooKeeper 会话已结束（主机或 watchdog 可能已停止）"
                .to_owned();
        }
        if let Some(rest) = text.strip_prefix("registered but not live for ") {
            let grace = rest.split(':').next().unwrap_or(rest);
            return format!("已注册但 {grace} 内未上线：watchdog 已不在或无法连接 ZooKeeper");
        }
        if let Some(rest) = text.strip_prefix("its watchdog") {
            let pid = rest
                .strip_prefix(" (pid ")
                .and_then(|r| r.split(')').next())
                .map(|p| format!("（pid {p}）"))
                .unwrap_or_default();
            return format!("watchdog{pid} 已退出，agent 随之停止；新的 watchdog 已接管");
        }
        text.to_owned()
    };
    match a.event {
        AlertKind::Failed => match a
            .reason
            .strip_prefix("the watchdog gave up after ")
            .and_then(|r| r.split_once(" restarts; last: "))
        {
            Some((n, last)) => format!("watchdog 重启 {n} 次后放弃；最后一次：{}", cause(last)),
            None => cause(&a.reason),
        },
        AlertKind::Recovered => match a.outage {
            Some(outage) => format!("已恢复在线，故障持续 {}", zh_duration(outage)),
            None => "已恢复在线".to_owned(),
        },
        AlertKind::Degraded => match &a.health {
            Some(h) if !h.reasons.is_empty() => h
                .reasons
                .iter()
                .map(zh_health)
                .collect::<Vec<_>>()
                .join("；"),
            _ => a.reason.clone(),
        },
        AlertKind::Healthy => match a.outage {
            Some(d) => format!("已恢复正常，异常持续 {}", zh_duration(d)),
            None => "已恢复正常".to_owned(),
        },
        AlertKind::Blind => match a.reason.strip_prefix("no working ZooKeeper session since ") {
            Some(rest) => {
                let since = rest.split(": ").next().unwrap_or(rest);
                let since = common::time::parse(since)
                    .map(|t| style.time(t))
                    .unwrap_or_else(|| since.to_owned());
                format!("watcher 自 {since} 起无法连接 ZooKeeper：在恢复之前看不到 agent 故障")
            }
            None => a.reason.clone(),
        },
        AlertKind::Sighted => "watcher 已重新连接 ZooKeeper，期间的故障将补报".to_owned(),
        AlertKind::Test => "这是 flume-watcher 的测试消息，一切正常，无需处理".to_owned(),
        AlertKind::Down => cause(&a.reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn alert(event: AlertKind, reason: &str) -> Alert {
        Alert {
            host: Some("web7".into()),
            restarts: Some(4),
            crashes: 1,
            ..Alert::new(
                event,
                "web7-a1",
                reason,
                // 2026-11-21T01:02:03.470Z
                UNIX_EPOCH + Duration::from_millis(1_795_222_923_470),
            )
        }
    }

    fn zh() -> Style {
        Style {
            lang: Lang::Zh,
            zone: Zone::parse("Asia/Shanghai").expect("zone"),
        }
    }

    #[test]
    fn zones_are_named_or_offsets() {
        for (given, shown) in [
            ("Asia/Shanghai", "2026-11-21 09:02:03 +08:00"),
            ("+08:00", "2026-11-21 09:02:03 +08:00"),
            ("-05:30", "2026-11-20 19:32:03 -05:30"),
            ("UTC", "2026-11-21 01:02:03 +00:00"),
        ] {
            let style = Style {
                lang: Lang::En,
                zone: Zone::parse(given).expect(given),
            };
            assert_eq!(style.time(alert(AlertKind::Down, "x").at), shown, "{given}");
        }
        for bad in ["Mars/Olympus", "+25:00", "eight"] {
            assert!(Zone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_reason_the_monitor_writes_reads_in_chinese() {
        let exit = |code: Option<i32>, signal: Option<&str>, error: Option<&str>| ExitRecord {
            code,
            signal: signal.map(str::to_owned),
            at: "2026-11-21T01:02:03.456Z".into(),
            error: error.map(str::to_owned),
        };
        let with_exit = |event, e: ExitRecord, reason: String| Alert {
            last_exit: Some(e),
            ..alert(event, &reason)
        };
        let code3 = exit(Some(3), None, None);
        let kill = exit(None, Some("SIGKILL"), None);
        let spawn = exit(
            None,
            None,
            Some("cannot start /opt/flume/bin/flume-ng: No such file or directory"),
        );
        let cases = [
            (with_exit(AlertKind::Down, code3.clone(), code3.describe()), "退出码 3"),
            (with_exit(AlertKind::Down, kill.clone(), kill.describe()), "被信号 SIGKILL 终止"),
            (
                with_exit(AlertKind::Down, spawn.clone(), spawn.describe()),
                "无法启动：cannot start /opt/flume/bin/flume-ng: No such file or directory",
            ),
            (
                alert(AlertKind::Down, LOST_CONTACT),
                "失去联系：watchdog 的 ZooKeeper 会话已结束（主机或 watchdog 可能已停止）",
            ),
            (
                alert(
                    AlertKind::Down,
                    "registered but not live for 10s: its watchdog is gone or cannot reach ZooKeeper",
                ),
                "已注册但 10s 内未上线：watchdog 已不在或无法连接 ZooKeeper",
            ),
            (
                alert(
                    AlertKind::Down,
                    "its watchdog (pid 4242) died, and the agent with it; a new watchdog took over",
                ),
                "watchdog（pid 4242） 已退出，agent 随之停止；新的 watchdog 已接管",
            ),
            (
                with_exit(
                    AlertKind::Failed,
                    code3.clone(),
                    "the watchdog gave up after 5 restarts; last: exited with code 3".into(),
                ),
                "watchdog 重启 5 次后放弃；最后一次：退出码 3",
            ),
            (
                with_exit(
                    AlertKind::Down,
                    exit(None, Some("SIGTERM"), None),
                    "restarted: metrics endpoint hung for 1m; killed by SIGTERM".into(),
                ),
                "监控接口 1m 无响应（JVM 可能卡死），watchdog 已重启 agent；被信号 SIGTERM 终止",
            ),
            (
                Alert {
                    health: Some(crate::alert::Health(Box::new(common::records::HealthRecord {
                        v: 1,
                        at: "2026-11-21T01:02:03.456Z".into(),
                        verdict: common::records::Verdict::Degraded,
                        reasons: vec![
                            HealthReason::ChannelFull {
                                channel: "ch-1".into(),
                                pct: 94,
                                size: 940_000,
                                capacity: 1_000_000,
                            },
                            HealthReason::SinkStalled {
                                sink: "k1".into(),
                                channel: Some("ch-1".into()),
                                ms: 20_000,
                            },
                        ],
                        channels: Default::default(),
                        sinks: Default::default(),
                    }))),
                    ..alert(
                        AlertKind::Degraded,
                        "channel ch-1 94 % full (940,000 of 1,000,000); sink k1 drained 0 events from channel ch-1 in 20s",
                    )
                },
                "channel ch-1 已满 94%（940,000 / 1,000,000）；sink k1 20秒 内未从 channel ch-1 取走任何事件",
            ),
            (
                Alert {
                    outage: Some(Duration::from_secs(125)),
                    ..alert(AlertKind::Healthy, "healthy again after 2m 5s")
                },
                "已恢复正常，异常持续 2分5秒",
            ),
            (
                Alert {
                    outage: Some(Duration::from_secs(3725)),
                    ..alert(AlertKind::Recovered, "live again for 30s after an outage of 1h 2m 5s")
                },
                "已恢复在线，故障持续 1小时2分5秒",
            ),
            (
                alert(
                    AlertKind::Blind,
                    "no working ZooKeeper session since 2026-11-21T01:02:03.470Z: agent outages are not seen until it is back",
                ),
                "watcher 自 2026-11-21 09:02:03 +08:00 起无法连接 ZooKeeper：在恢复之前看不到 agent 故障",
            ),
        ];
        for (a, want) in cases {
            assert_eq!(zh().reason(&a), want, "{}", a.reason);
            assert_eq!(
                Style::default().reason(&a),
                a.reason,
                "English is the alert's own"
            );
        }
    }

    /// The last exit is a fact of its own when the reason does not say it (a lost contact), in
    /// every channel that lists facts; said once when it does.
    #[test]
    fn the_last_exit_is_told_when_the_reason_does_not_say_it() {
        let exit = ExitRecord {
            code: Some(3),
            signal: None,
            at: "2026-11-21T01:00:00.000Z".into(),
            error: None,
        };
        let mut lost = alert(AlertKind::Down, crate::outage::LOST_CONTACT);
        lost.last_exit = Some(exit.clone());
        assert_eq!(
            zh().facts(&lost).pop(),
            Some((
                "最后一次退出",
                "exited with code 3 (2026-11-21 09:00:00 +08:00)".to_owned()
            ))
        );
        let mut crashed = alert(AlertKind::Down, "exited with code 3");
        crashed.last_exit = Some(exit);
        assert!(
            Style::default()
                .facts(&crashed)
                .iter()
                .all(|(label, _)| *label != "Last exit"),
            "the reason says it already"
        );
    }

    #[test]
    fn headlines_titles_and_facts() {
        let mut a = alert(AlertKind::Down, "exited with code 3");
        a.last_exit = Some(ExitRecord {
            code: Some(3),
            signal: None,
            at: String::new(),
            error: None,
        });
        assert_eq!(
            Style::default().headline(&a),
            "[DOWN] web7-a1 on web7: exited with code 3"
        );
        assert_eq!(zh().headline(&a), "【宕机】web7-a1（web7）：退出码 3");
        assert_eq!(
            zh().title(std::slice::from_ref(&a)),
            "Flume agent web7-a1 宕机"
        );
        assert_eq!(zh().title(&[a.clone(), a.clone()]), "2 条 Flume agent 告警");
        a.labels = [
            ("team".to_owned(), "logs".to_owned()),
            ("dc".to_owned(), "bj".to_owned()),
        ]
        .into();
        let facts = zh().facts(&a);
        assert_eq!(
            facts,
            vec![
                ("Agent", "web7-a1".to_owned()),
                ("主机", "web7".to_owned()),
                ("原因", "退出码 3".to_owned()),
                ("发生时间", "2026-11-21 09:02:03 +08:00".to_owned()),
                ("重启次数", "4".to_owned()),
                ("标签", "dc=bj, team=logs".to_owned()),
            ]
        );
        // Sent when its silence ended with the agent still down: says why it comes late.
        a.labels.clear();
        a.silenced = Some(crate::alert::SilencedBy {
            id: "3f9a1c2e".into(),
            comment: "kernel\nupgrade".into(),
            ended: a.at + Duration::from_secs(7200),
        });
        assert_eq!(
            zh().facts(&a).pop(),
            Some((
                "静默",
                "静默 3f9a1c2e（kernel upgrade）期间暂缓发送；静默已于 2026-11-21 11:02:03 +08:00 结束，仍未恢复"
                    .to_owned()
            ))
        );
        let en = Style {
            zone: zh().zone,
            ..Style::default()
        };
        assert_eq!(
            en.facts(&a).pop(),
            Some((
                "Silenced",
                "held back by silence 3f9a1c2e (kernel upgrade) until it ended at 2026-11-21 11:02:03 +08:00; still down"
                    .to_owned()
            ))
        );
        assert!(
            a.one_line().ends_with(
                "; held back by silence 3f9a1c2e until it ended at 2026-11-21T03:02:03.470Z"
            ),
            "{}",
            a.one_line()
        );
        assert_eq!(zh_duration(Duration::from_millis(850)), "850毫秒");
        assert_eq!(zh_duration(Duration::from_secs(90_061)), "1天1小时1分1秒");
    }
}
