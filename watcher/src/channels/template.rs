//! The operator's own words for a chat robot: a minijinja template of one alert's section, in
//! place of the built-in one (`template = "…"` or `template_file = "/path"` in a `[[channel]]` of
//! type dingtalk, wecom, feishu or slack).
//!
//! Why a section and not the whole message: the channel still packs alerts into messages that fit
//! its robot's limits, titles them, mentions people and sums up a burst; the template only says
//! how one alert reads. It sees the alert as people read it — in the configured language and time
//! zone — so a template written for a Chinese group needs no date filters.
//!
//! A template that does not compile, uses an unknown filter or names a field that does not exist
//! fails `config check` (it is rendered once, in both languages, with a sample alert that has every
//! field). One that still fails at run time (out of fuel: a loop that never ends) is logged and
//! the built-in section is sent instead: the alert is never lost to a template. Output longer than
//! the robot's share for one alert is cut, visibly, with `…`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::kinds::KeyProblem;
use crate::alert::{Alert, AlertKind};
use crate::message::{Lang, Style, Zone};

/// Most work one rendering may do (minijinja's fuel: about one unit an instruction): far more than
/// a section needs, and a loop that never ends stops there instead.
pub const FUEL: u64 = 200_000;

/// One alert's section, from the operator's template.
pub struct SectionTemplate {
    env: minijinja::Environment<'static>,
    source: String,
}

impl std::fmt::Debug for SectionTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "template ({} bytes)", self.source.len())
    }
}

impl PartialEq for SectionTemplate {
    fn eq(&self, other: &SectionTemplate) -> bool {
        self.source == other.source
    }
}

impl Eq for SectionTemplate {}

impl SectionTemplate {
    /// Compiles `source` and renders it with a sample alert in both languages, so that what would
    /// fail at 3 a.m. fails `config check` instead.
    pub fn new(source: String) -> Result<SectionTemplate, String> {
        let mut env = minijinja::Environment::new();
        env.set_fuel(Some(FUEL));
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_template_owned("section", source.clone())
            .map_err(|e| error(&e))?;
        let template = SectionTemplate { env, source };
        for lang in [Lang::En, Lang::Zh] {
            let style = Style {
                lang,
                zone: Zone::utc(),
            };
            template.render(&sample(), &style)?;
        }
        Ok(template)
    }

    /// The section of `a` in `style`.
    pub fn render(&self, a: &Alert, style: &Style) -> Result<String, String> {
        let template = self.env.get_template("section").map_err(|e| error(&e))?;
        template.render(context(a, style)).map_err(|e| error(&e))
    }
}

/// Reads a channel's `template` or `template_file` key (not both); every problem is pushed under
/// its key.
pub fn read(
    inline: Option<String>,
    file: Option<&Path>,
    problems: &mut Vec<KeyProblem>,
) -> Option<Arc<SectionTemplate>> {
    let (key, source) = match (inline, file) {
        (Some(_), Some(_)) => {
            problems.push((
                "template".to_owned(),
                "give template or template_file, not both".to_owned(),
            ));
            return None;
        }
        (Some(t), None) => ("template", t),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(t) => ("template_file", t),
            Err(e) => {
                problems.push((
                    "template_file".to_owned(),
                    format!("cannot read {}: {e}", path.display()),
                ));
                return None;
            }
        },
        (None, None) => return None,
    };
    match SectionTemplate::new(source) {
        Ok(t) => Some(Arc::new(t)),
        Err(e) => {
            problems.push((key.to_owned(), e));
            None
        }
    }
}

/// `a`'s section: from `template` when there is one and it renders, else `builtin`; at most
/// `max` JSON-escaped bytes, cut visibly.
pub fn section(
    template: Option<&SectionTemplate>,
    a: &Alert,
    style: &Style,
    max: usize,
    builtin: impl FnOnce() -> String,
) -> String {
    let text = match template.map(|t| t.render(a, style)) {
        Some(Ok(text)) => text,
        Some(Err(e)) => {
            tracing::warn!(
                agent = %a.agent,
                error = %e,
                "the channel's template failed for this alert; sending the built-in message instead"
            );
            builtin()
        }
        None => return builtin(),
    };
    cut(text.trim_end(), max)
}

/// `s` cut so that its JSON-escaped form takes at most `max` bytes, with `…` when cut; lines kept.
pub fn cut(s: &str, max: usize) -> String {
    super::chat::cut(s, max, true)
}

/// minijinja's error with its line, on one line.
pub(crate) fn error(e: &minijinja::Error) -> String {
    let mut text = e.to_string();
    if let Some(line) = e.line() {
        if !text.contains("line") {
            text.push_str(&format!(" (line {line})"));
        }
    }
    text.replace('\n', " ")
}

/// What a template sees: the alert as people read it (words in the style's language, times in
/// its zone), plus the machine forms (`kind`, `id`).
fn context(a: &Alert, style: &Style) -> serde_json::Value {
    let zh = style.lang == Lang::Zh;
    serde_json::json!({
        "kind": a.event.as_str(),
        "event": style.event(a.event),
        "agent": a.agent,
        "host": a.host.clone().unwrap_or_else(|| if zh { "未知主机" } else { "unknown host" }.to_owned()),
        "reason": style.reason(a),
        "at": style.time(a.at),
        "outage": a.outage.map(|d| style.duration(d)),
        "restarts": a.restarts,
        "crashes": a.crashes,
        "last_exit": a.last_exit.as_ref().map(|e| e.describe()),
        "labels": a.labels,
        "headline": style.headline(a),
        "id": a.notice_id(),
        "lang": style.lang.as_str(),
        "zone": style.zone.name(),
    })
}

/// An alert with every field set, to try a template on.
pub(crate) fn sample() -> Alert {
    Alert {
        host: Some("web7".to_owned()),
        restarts: Some(1),
        crashes: 1,
        outage: Some(Duration::from_secs(5)),
        last_exit: Some(common::ExitRecord {
            code: Some(3),
            signal: None,
            at: "2026-11-21T01:02:03.000Z".to_owned(),
            error: None,
        }),
        zxid: Some(0x1a2f),
        labels: [("team".to_owned(), "logs".to_owned())].into(),
        ..Alert::new(
            AlertKind::Down,
            "web7-a1",
            "exited with code 3",
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_222_923),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zh() -> Style {
        Style {
            lang: Lang::Zh,
            zone: Zone::parse("Asia/Shanghai").expect("zone"),
        }
    }

    #[test]
    fn a_template_reads_the_alert_in_the_operators_language_and_zone() {
        let t = SectionTemplate::new(
            "**{{ event }}** {{ agent }}@{{ host }}\n{{ reason }} ({{ at }}){% if labels.team %} #{{ labels.team }}{% endif %}"
                .to_owned(),
        )
        .expect("compiles");
        assert_eq!(
            t.render(&sample(), &Style::default()).expect("renders"),
            "**DOWN** web7-a1@web7\nexited with code 3 (2026-11-21 01:02:03 +00:00) #logs"
        );
        assert_eq!(
            t.render(&sample(), &zh()).expect("renders"),
            "**宕机** web7-a1@web7\n退出码 3 (2026-11-21 09:02:03 +08:00) #logs"
        );
    }

    #[test]
    fn a_broken_template_is_refused_with_what_is_wrong() {
        for (source, says) in [
            ("{{ agent ", "syntax error"),
            ("{{ agnet }}", "undefined"),
            ("{{ agent | nosuchfilter }}", "unknown filter"),
            (
                "{% for x in range(10000) %}{% for y in range(10000) %}{% endfor %}{% endfor %}",
                "fuel",
            ),
        ] {
            let e = SectionTemplate::new(source.to_owned()).expect_err(source);
            assert!(e.contains(says), "{source}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn keys_are_read_once_and_files_must_be_readable() {
        let mut problems = Vec::new();
        assert!(read(Some("x".into()), Some(Path::new("/x")), &mut problems).is_none());
        assert!(read(None, Some(Path::new("/nonexistent/t.j2")), &mut problems).is_none());
        assert!(read(Some("{{ nope }}".into()), None, &mut problems).is_none());
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["template", "template_file", "template"],
            "{problems:?}"
        );
        assert!(problems[1].1.contains("/nonexistent/t.j2"), "{problems:?}");
        assert!(read(Some("{{ agent }}".into()), None, &mut problems).is_some());
        assert!(read(None, None, &mut problems).is_none());
        assert_eq!(problems.len(), 3);
    }

    #[test]
    fn output_is_cut_visibly_and_a_failure_falls_back_to_the_built_in_words() {
        let t = SectionTemplate::new("{{ reason }}".to_owned()).expect("compiles");
        let mut a = sample();
        a.reason = "故\"障\n".repeat(1_000);
        let s = section(Some(&t), &a, &Style::default(), 100, || unreachable!());
        assert!(s.ends_with('…') && s.contains('\n'), "{s}");
        assert!(s.len() <= 100, "{} bytes", s.len());
        // Fuel runs out at run time only for a bigger alert: the built-in section goes instead.
        let t = SectionTemplate::new(
            "{% for c in reason %}{% for d in reason %}.{% endfor %}{% endfor %}".to_owned(),
        )
        .expect("the sample's reason is short");
        let s = section(Some(&t), &a, &Style::default(), 100, || {
            "built-in".to_owned()
        });
        assert_eq!(s, "built-in");
        assert_eq!(
            section(None, &a, &Style::default(), 100, || "built-in".to_owned()),
            "built-in"
        );
    }
}
