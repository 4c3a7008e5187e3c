//! Flume's `GET /metrics` reply, read into a typed [`Snapshot`].
//!
//! The reply is a JSON object keyed `SOURCE.<name>`, `CHANNEL.<name>`, `SINK.<name>`, each value
//! an object whose values are all strings (`"ChannelSize": "940000"`). Anything can come back from
//! a port (another program, a proxy's error page, a truncated body), so every way it can be wrong
//! is a [`MetricsError`], never a panic. Keys of other kinds and fields we do not use are skipped:
//! a later Flume or a custom component adds its own.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// What one reading of the metrics says, reduced to what the health rules use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub channels: BTreeMap<String, Channel>,
    pub sinks: BTreeMap<String, Sink>,
    pub sources: BTreeMap<String, Source>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Channel {
    pub size: u64,
    pub capacity: u64,
    /// Per cent full: from size and capacity when the capacity is known, else Flume's own
    /// `ChannelFillPercentage` (a Kafka channel reports capacity 0).
    pub fill_pct: f64,
    /// A file channel whose replay failed for good (`Unhealthy` = 1).
    pub unhealthy: bool,
    /// `StopTime` other than 0.
    pub stopped: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sink {
    /// `EventDrainSuccessCount`: events taken from its channel and delivered, since start.
    pub drained: u64,
    pub stopped: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub stopped: bool,
}

/// Why a reply is not Flume's metrics. The texts are short: one goes into the health node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("JSON but not an object")]
    NotObject,
    #[error("{key} is not an object")]
    ComponentNotObject { key: String },
    #[error("{key} has no {field}")]
    Missing { key: String, field: &'static str },
    #[error("{key}.{field} is not a number: {value:?}")]
    NotNumber {
        key: String,
        field: &'static str,
        value: String,
    },
}

/// Reads a reply body. Fields are strings in Flume; plain JSON numbers are taken too.
pub fn parse(body: &[u8]) -> Result<Snapshot, MetricsError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        let mut text = e.to_string();
        text.truncate(100);
        MetricsError::NotJson(text)
    })?;
    let Value::Object(top) = value else {
        return Err(MetricsError::NotObject);
    };
    let mut snap = Snapshot::default();
    for (key, fields) in &top {
        let Some((kind, name)) = key.split_once('.') else {
            continue;
        };
        if !matches!(kind, "SOURCE" | "CHANNEL" | "SINK") {
            continue;
        }
        let Value::Object(fields) = fields else {
            return Err(MetricsError::ComponentNotObject { key: short(key) });
        };
        let f = Fields { key, fields };
        let stopped = f.optional("StopTime")?.is_some_and(|t| t != 0);
        match kind {
            "CHANNEL" => {
                let size = f.required("ChannelSize")?;
                let capacity = f.required("ChannelCapacity")?;
                let fill_pct = if capacity > 0 {
                    size as f64 * 100.0 / capacity as f64
                } else {
                    f.optional_f64("ChannelFillPercentage")?.unwrap_or(0.0)
                };
                let unhealthy = f.optional("Unhealthy")?.is_some_and(|u| u != 0);
                snap.channels.insert(
                    name.to_owned(),
                    Channel {
                        size,
                        capacity,
                        fill_pct,
                        unhealthy,
                        stopped,
                    },
                );
            }
            "SINK" => {
                let drained = f.required("EventDrainSuccessCount")?;
                snap.sinks
                    .insert(name.to_owned(), Sink { drained, stopped });
            }
            _ => {
                snap.sources.insert(name.to_owned(), Source { stopped });
            }
        }
    }
    Ok(snap)
}

/// A key as it goes into an error: a hostile reply may have 1 MB keys.
fn short(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

struct Fields<'a> {
    key: &'a str,
    fields: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn required(&self, field: &'static str) -> Result<u64, MetricsError> {
        self.optional(field)?.ok_or_else(|| MetricsError::Missing {
            key: short(self.key),
            field,
        })
    }

    fn optional(&self, field: &'static str) -> Result<Option<u64>, MetricsError> {
        match self.fields.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let n = match v {
                    Value::String(s) => s.trim().parse::<u64>().ok(),
                    Value::Number(n) => n.as_u64(),
                    _ => None,
                };
                n.map(Some).ok_or_else(|| self.not_number(field, v))
            }
        }
    }

    fn optional_f64(&self, field: &'static str) -> Result<Option<f64>, MetricsError> {
        match self.fields.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let n = match v {
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    Value::Number(n) => n.as_f64(),
                    _ => None,
                };
                n.filter(|n| n.is_finite() && *n >= 0.0)
                    .map(Some)
                    .ok_or_else(|| self.not_number(field, v))
            }
        }
    }

    fn not_number(&self, field: &'static str, v: &Value) -> MetricsError {
        let value = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        MetricsError::NotNumber {
            key: short(self.key),
            field,
            value: short(&value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real-shaped reply of Flume 1.x (memory channel, Kafka sink), kept as a fixture.
    const SAMPLE: &str = include_str!("../../tests/data/flume-metrics-sample.json");

    #[test]
    fn the_sample_reads_in_full() {
        let snap = parse(SAMPLE.as_bytes()).expect("the sample is Flume's metrics");
        assert_eq!(
            snap.channels.get("ch-1"),
            Some(&Channel {
                size: 0,
                capacity: 1_000_000,
                fill_pct: 0.0,
                unhealthy: false,
                stopped: false
            })
        );
        assert_eq!(
            snap.sinks.get("sink-1"),
            Some(&Sink {
                drained: 28286,
                stopped: false
            })
        );
        assert_eq!(snap.sources.get("src-1"), Some(&Source { stopped: false }));
    }

    #[test]
    fn figures_and_flags() {
        let body = br#"{"CHANNEL.c":{"ChannelSize":"940000","ChannelCapacity":"1000000","Unhealthy":"1","StopTime":"0"},
                        "CHANNEL.k":{"ChannelSize":"0","ChannelCapacity":"0","ChannelFillPercentage":"12.5"},
                        "SINK.s":{"EventDrainSuccessCount":7,"StopTime":"1442566411897"},
                        "SOURCE.r":{"StopTime":"5"},
                        "OTHER.x":"anything","NoDot":1}"#;
        let snap = parse(body).expect("valid");
        let c = &snap.channels["c"];
        assert_eq!(
            (c.size, c.capacity, c.unhealthy, c.stopped),
            (940_000, 1_000_000, true, false)
        );
        assert!((c.fill_pct - 94.0).abs() < 1e-9);
        assert!((snap.channels["k"].fill_pct - 12.5).abs() < 1e-9);
        assert_eq!(
            snap.sinks["s"],
            Sink {
                drained: 7,
                stopped: true
            }
        );
        assert!(snap.sources["r"].stopped);
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let huge = "x".repeat(1 << 20);
        let huge_key = format!(r#"{{"CHANNEL.{huge}":1}}"#);
        type Case<'a> = (&'a [u8], &'a str);
        let cases: Vec<Case> = vec![
            (b"", "not JSON: EOF while parsing a value at line 1 column 0"),
            (b"<html>502 Bad Gateway</html>", "not JSON: expected value at line 1 column 1"),
            (b"[1,2]", "JSON but not an object"),
            (b"\"metrics\"", "JSON but not an object"),
            (br#"{"CHANNEL.c":"full"}"#, "CHANNEL.c is not an object"),
            (br#"{"CHANNEL.c":{"ChannelSize":"1"}}"#, "CHANNEL.c has no ChannelCapacity"),
            (br#"{"SINK.k":{}}"#, "SINK.k has no EventDrainSuccessCount"),
            (
                br#"{"CHANNEL.c":{"ChannelSize":"lots","ChannelCapacity":"10"}}"#,
                r#"CHANNEL.c.ChannelSize is not a number: "lots""#,
            ),
            (
                br#"{"CHANNEL.c":{"ChannelSize":"-1","ChannelCapacity":"10"}}"#,
                r#"CHANNEL.c.ChannelSize is not a number: "-1""#,
            ),
            (
                br#"{"SINK.k":{"EventDrainSuccessCount":[1]}}"#,
                r#"SINK.k.EventDrainSuccessCount is not a number: "[1]""#,
            ),
            (
                br#"{"CHANNEL.c":{"ChannelSize":"0","ChannelCapacity":"0","ChannelFillPercentage":"NaN"}}"#,
                r#"CHANNEL.c.ChannelFillPercentage is not a number: "NaN""#,
            ),
            (
                br#"{"SINK.k":{"EventDrainSuccessCount":"99999999999999999999999"}}"#,
                r#"SINK.k.EventDrainSuccessCount is not a number: "99999999999999999999999""#,
            ),
            (br#"{"SINK.k":{"EventDrainSuccessCount":"1"}} trailing"#, "not JSON: trailing characters at line 1 column 43"),
        ];
        for (body, want) in cases {
            let got = parse(body).expect_err(&String::from_utf8_lossy(body));
            assert_eq!(got.to_string(), want, "{}", String::from_utf8_lossy(body));
        }
        let long = parse(huge_key.as_bytes()).expect_err("a number is no component");
        assert!(long.to_string().len() < 100, "{long}");
        assert!(matches!(parse(huge.as_bytes()), Err(MetricsError::NotJson(t)) if t.len() <= 100));
        // An agent without components (its configuration did not load) answers `{}`.
        assert_eq!(parse(b"{}"), Ok(Snapshot::default()));
    }
}
