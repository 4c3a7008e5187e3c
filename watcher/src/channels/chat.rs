//! What the chat robots with a hard size limit (WeCom, Feishu) share: an alert's facts, each cut
//! to a byte budget, so that the worst batch a channel's `max_batch` allows still fits.
//!
//! Why budgets rather than measuring and splitting: the [`Notifier`](crate::notify::Notifier)
//! sends one message per `deliver` and splits batches only by count, so a channel must know from
//! the count alone that a message fits. Each channel renders with [`Budgets::FULL`] first and only
//! when that would not fit with [`Budgets::TIGHT`], whose worst case its tests check: real alerts
//! (short ids, one-line reasons) read whole, and a pathological one is cut visibly, with `…`.

use super::{excerpt, read_body, status_error, transport_error, DeliveryError};
use crate::alert::{Alert, AlertKind};
use crate::message::Style;

/// Most bytes (counted JSON-escaped, which is never less than raw UTF-8) each part of an alert
/// may take in a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Budgets {
    pub agent: usize,
    pub host: usize,
    pub reason: usize,
    /// Every other value: times, durations, counts, the last exit.
    pub other: usize,
}

impl Budgets {
    /// What a person needs whole: long ids and a reason of a few lines.
    pub const FULL: Budgets = Budgets {
        agent: 100,
        host: 100,
        reason: 400,
        other: 80,
    };
    /// When a batch would not fit otherwise: still the id, host and gist of the reason.
    pub const TIGHT: Budgets = Budgets {
        agent: 64,
        host: 48,
        reason: 120,
        other: 40,
    };
}

/// One alert for a chat message: the event word, the agent, then `(label, value)` lines, every
/// value within its budget and on one line.
pub(crate) struct Section {
    pub event: AlertKind,
    pub word: &'static str,
    pub agent: String,
    pub lines: Vec<(&'static str, String)>,
}

/// The facts of `a` in `style`, cut to `budgets`.
pub(crate) fn section(a: &Alert, style: &Style, budgets: Budgets) -> Section {
    let mut facts = style.facts(a).into_iter();
    // The agent is the heading; the rest are lines.
    let agent = facts.next().map(|(_, v)| v).unwrap_or_default();
    let lines: Vec<(&'static str, String)> = facts
        .enumerate()
        .map(|(i, (label, value))| {
            let budget = match i {
                0 => budgets.host,
                1 => budgets.reason,
                _ => budgets.other,
            };
            (label, fit(&value, budget))
        })
        .collect();
    Section {
        event: a.event,
        word: style.event(a.event),
        agent: fit(&agent, budgets.agent),
        lines,
    }
}

/// The batch's title (a notification's preview), its agent cut to `budgets` when it names one.
pub(crate) fn title(batch: &[Alert], style: &Style, budgets: Budgets) -> String {
    match batch {
        [one] => style.title(&[Alert {
            agent: fit(&one.agent, budgets.agent),
            ..one.clone()
        }]),
        many => style.title(many),
    }
}

/// `s` on one line, cut so that its JSON-escaped form takes at most `max` bytes (with `…` when
/// cut, so that a shortened value is never mistaken for a whole one).
pub(crate) fn fit(s: &str, max: usize) -> String {
    cut(s, max, false)
}

/// [`fit`], keeping line breaks when `lines` (a template's layout is the operator's); other
/// control characters become spaces either way.
pub(crate) fn cut(s: &str, max: usize, lines: bool) -> String {
    let escaped_len = |c: char| match c {
        '"' | '\\' | '\n' => 2,
        c => c.len_utf8(),
    };
    let clean = s.chars().map(|c| {
        if c.is_control() && !(lines && c == '\n') {
            ' '
        } else {
            c
        }
    });
    let total: usize = clean.clone().map(escaped_len).sum();
    if total <= max {
        return clean.collect();
    }
    let budget = max.saturating_sub('…'.len_utf8());
    let mut out = String::new();
    let mut used = 0;
    for c in clean {
        if used + escaped_len(c) > budget {
            break;
        }
        used += escaped_len(c);
        out.push(c);
    }
    out.push('…');
    out
}

/// What a mobile number looks like to the robots: digits, a `+` and `-` after a country code.
pub(crate) fn is_mobile(s: &str) -> bool {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    (5..=20).contains(&digits)
        && s.chars()
            .all(|c| c.is_ascii_digit() || c == '+' || c == '-')
}

/// Posts a robot's JSON `body` to `url` and reads the reply the way DingTalk and WeCom give it:
/// HTTP 200 with `{"errcode":0}` is success; another 2xx, a body that is not JSON or one without
/// `errcode` may work later (retried); HTTP errors follow the shared rule; a non-zero `errcode` is
/// judged by `classify` (the robot's own codes). `robot` names it in errors.
pub(crate) async fn post_errcode(
    http: &reqwest::Client,
    url: reqwest::Url,
    body: Vec<u8>,
    robot: &str,
    classify: fn(i64, &str) -> DeliveryError,
) -> Result<(), DeliveryError> {
    #[derive(serde::Deserialize)]
    struct Reply {
        errcode: Option<i64>,
        errmsg: Option<String>,
    }
    let resp = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(transport_error)?;
    let status = resp.status();
    if !status.is_success() {
        let body = read_body(resp, 1024).await.unwrap_or_default();
        return Err(status_error(status, &excerpt(&body, 200)));
    }
    if status != reqwest::StatusCode::OK {
        return Err(DeliveryError::Retry(format!(
            "{robot} replied HTTP {status} instead of 200"
        )));
    }
    let body = read_body(resp, 64 * 1024).await.map_err(transport_error)?;
    let reply: Reply = serde_json::from_str(&body).map_err(|_| {
        DeliveryError::Retry(format!(
            "{robot} replied with a body that is not JSON: {}",
            excerpt(&body, 200)
        ))
    })?;
    let errmsg = reply
        .errmsg
        .as_deref()
        .map(|m| excerpt(m, 200))
        .unwrap_or_default();
    match reply.errcode {
        Some(0) => Ok(()),
        None => Err(DeliveryError::Retry(format!(
            "{robot} reply has no errcode: {}",
            excerpt(&body, 200)
        ))),
        Some(code) => Err(classify(code, &errmsg)),
    }
}

/// A robot's refusal (`errcode`/`code` other than 0) as a delivery error: a code with a `hint`
/// (a configuration problem, said how to fix) is permanent; any other (a rate limit, a busy
/// server, a code not known here) may work later. `what` names it: `DingTalk errcode`.
pub(crate) fn refusal(what: &str, code: i64, msg: &str, hint: Option<&str>) -> DeliveryError {
    let mut text = format!("{what} {code}");
    if !msg.is_empty() {
        text.push_str(&format!(": {msg}"));
    }
    match hint {
        Some(hint) => {
            text.push_str(&format!(" ({hint})"));
            DeliveryError::Permanent(text)
        }
        None => DeliveryError::Retry(text),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use common::ExitRecord;
    use std::time::{Duration, UNIX_EPOCH};

    /// A plain alert, as the channel tests use it.
    pub(crate) fn alert(agent: &str, reason: &str) -> Alert {
        Alert {
            host: Some("web-3".to_owned()),
            restarts: Some(4),
            crashes: 2,
            last_exit: Some(ExitRecord {
                code: Some(3),
                signal: None,
                at: "2025-11-21T04:40:00.123Z".to_owned(),
                error: None,
            }),
            ..Alert::new(
                AlertKind::Down,
                agent,
                reason,
                UNIX_EPOCH + Duration::from_millis(1_763_700_000_123),
            )
        }
    }

    /// The longest alert there can be: every field long, of `unit` repeated, every optional
    /// fact present.
    pub(crate) fn worst(unit: &str) -> Alert {
        let nasty = unit.repeat(2_000);
        let mut a = alert(&nasty, &nasty);
        a.host = Some(nasty.clone());
        a.restarts = Some(u64::MAX);
        a.crashes = u32::MAX;
        a.event = AlertKind::Failed;
        a.outage = Some(Duration::from_secs(400 * 365 * 86_400 + 86_399));
        a.last_exit = Some(ExitRecord {
            code: None,
            signal: Some(nasty.clone()),
            at: nasty,
            error: None,
        });
        a
    }

    pub(crate) fn zh() -> Style {
        Style {
            lang: crate::message::Lang::Zh,
            zone: crate::message::Zone::parse("Asia/Shanghai").expect("zone"),
        }
    }

    #[test]
    fn fit_cuts_on_char_boundaries_and_says_so() {
        assert_eq!(fit("abc", 3), "abc");
        assert_eq!(fit("a\nb", 10), "a b");
        assert_eq!(fit("🔥🔥🔥", 8), "🔥…");
        assert_eq!(fit("\"\"\"\"", 6), "\"…");
        assert_eq!(fit("故障故障", 9), "故障…");
    }

    #[test]
    fn a_section_keeps_every_value_within_its_budget() {
        for style in [Style::default(), zh()] {
            let s = section(&worst("故\""), &style, Budgets::TIGHT);
            assert!(s.agent.len() <= Budgets::TIGHT.agent, "{}", s.agent);
            assert!(s.agent.ends_with('…'));
            for (label, value) in &s.lines {
                assert!(value.len() <= Budgets::TIGHT.reason, "{label}: {value}");
                assert!(!value.contains('\n'), "{label}: {value}");
            }
        }
        let plain = section(&alert("a1", "exited with code 3"), &zh(), Budgets::FULL);
        assert_eq!(plain.agent, "a1");
        assert_eq!(plain.word, "宕机");
        assert_eq!(plain.lines[1], ("原因", "退出码 3".to_owned()));
        assert!(
            !plain.lines.iter().any(|(l, _)| *l == "最后一次退出"),
            "the reason already says it"
        );
    }
}
