//! A silence as stored in ZooKeeper (`<root>/silences/<id>`): which agents it covers, from when
//! to when, who set it and why.
//!
//! A PERSISTENT node of its own per silence, so that every watcher (leader or follower) sees one
//! added or removed through the watch it already has on the root, and a silence outlives every
//! process. It ends by its time alone: nobody has to be there to lift it. The matchers are kept as
//! written (globs); the watcher compiles them. A node that does not parse is ignored by the
//! watcher with a warning, never taken for a silence of everything.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// A silence id: 8 lowercase hex digits, short enough to type from a phone.
pub const ID_LEN: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceRecord {
    /// Format version: 1.
    pub v: u32,
    /// Glob on the agent id (`web7-*`).
    pub agent: String,
    /// Glob on the agent's host; absent: any host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Globs on the agent's labels: each named label must be there and match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// RFC 3339 UTC: when it begins (when it was added, unless said otherwise).
    pub starts_at: String,
    /// RFC 3339 UTC: when it ends by itself.
    pub ends_at: String,
    /// Who set it: `user@host`.
    pub created_by: String,
    /// Why (`kernel upgrade`): required, as Alertmanager's is, so that the next person on call
    /// knows whether it may be lifted.
    pub comment: String,
}

/// Why a silence node cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadSilence {
    #[error("not a silence record: {0}")]
    NotJson(String),
    #[error("format version {0} is not known (1 is)")]
    Version(u32),
    #[error("{field} is not an RFC 3339 time: {value:?}")]
    Time { field: &'static str, value: String },
    #[error("it ends ({ends}) before it starts ({starts})")]
    EndsBeforeStart { starts: String, ends: String },
}

impl SilenceRecord {
    pub fn parse(data: &[u8]) -> Result<SilenceRecord, BadSilence> {
        let r: SilenceRecord =
            serde_json::from_slice(data).map_err(|e| BadSilence::NotJson(e.to_string()))?;
        if r.v != 1 {
            return Err(BadSilence::Version(r.v));
        }
        let (starts, ends) = (r.starts()?, r.ends()?);
        if ends < starts {
            return Err(BadSilence::EndsBeforeStart {
                starts: r.starts_at.clone(),
                ends: r.ends_at.clone(),
            });
        }
        Ok(r)
    }

    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings and maps of strings always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn starts(&self) -> Result<SystemTime, BadSilence> {
        crate::time::parse(&self.starts_at).ok_or_else(|| BadSilence::Time {
            field: "starts_at",
            value: self.starts_at.clone(),
        })
    }

    pub fn ends(&self) -> Result<SystemTime, BadSilence> {
        crate::time::parse(&self.ends_at).ok_or_else(|| BadSilence::Time {
            field: "ends_at",
            value: self.ends_at.clone(),
        })
    }
}

/// Whether `name` is a silence id (a node name under `<root>/silences/`); anything else there is
/// a foreign node, ignored.
pub fn is_id(name: &str) -> bool {
    name.len() == ID_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SilenceRecord {
        SilenceRecord {
            v: 1,
            agent: "web7-*".into(),
            host: Some("web7.*".into()),
            labels: BTreeMap::from([("team".into(), "logs".into())]),
            starts_at: "2026-12-02T16:00:00.000Z".into(),
            ends_at: "2026-12-02T18:00:00.000Z".into(),
            created_by: "ops@bastion".into(),
            comment: "kernel upgrade".into(),
        }
    }

    #[test]
    fn a_record_round_trips_and_garbage_is_refused_with_why() {
        let r = sample();
        assert_eq!(SilenceRecord::parse(&r.to_json()), Ok(r.clone()));
        let bad = |f: &dyn Fn(&mut SilenceRecord)| {
            let mut r = sample();
            f(&mut r);
            SilenceRecord::parse(&r.to_json()).unwrap_err().to_string()
        };
        assert_eq!(bad(&|r| r.v = 2), "format version 2 is not known (1 is)");
        assert!(bad(&|r| r.ends_at = "soon".into()).starts_with("ends_at is not"));
        assert!(bad(&|r| r.ends_at = "2026-12-02T15:00:00Z".into()).contains("before it starts"));
        for garbage in [&b""[..], b"null", b"[1]", b"{\"v\":1}", &[0xff, 0xfe]] {
            assert!(matches!(
                SilenceRecord::parse(garbage),
                Err(BadSilence::NotJson(_))
            ));
        }
    }

    #[test]
    fn ids_are_eight_lowercase_hex_digits() {
        assert!(is_id("3f9a1c2e"));
        for bad in ["3F9A1C2E", "3f9a1c2", "3f9a1c2e0", "zzzzzzzz", "", "../x"] {
            assert!(!is_id(bad), "{bad:?}");
        }
    }
}
