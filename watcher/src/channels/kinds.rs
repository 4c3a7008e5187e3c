//! The channel types a `[[channel]]` table of the configuration file may name, and the helpers
//! their readers share.
//!
//! Each type's file exports one [`Kind`]: its `type` name and the function that reads its table.
//! [`KINDS`] lists them; it is the only place that does, so a new channel type is its file and one
//! line here.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::{
    alertmanager, console, dingtalk, email, exec, feishu, slack, webhook, wecom, ChannelSpec,
};

/// A problem with one key of a channel's table: the key (a path below the table, e.g. `url` or
/// `labels.team`, empty for the table as a whole) and what is wrong, never echoing a secret.
pub type KeyProblem = (String, String);

/// A channel type's reader: its table (without `type` and `name`) to its spec, or every problem.
pub type Reader = fn(toml::Table) -> Result<Box<dyn ChannelSpec>, Vec<KeyProblem>>;

/// One channel type of the configuration file.
pub struct Kind {
    /// The value of `type` that selects it.
    pub name: &'static str,
    /// Reads the channel's table (without `type` and `name`), or lists every problem found.
    pub read: Reader,
}

/// Every channel type the file knows, in the order `config example` shows them.
pub const KINDS: &[Kind] = &[
    webhook::KIND,
    dingtalk::KIND,
    wecom::KIND,
    feishu::KIND,
    slack::KIND,
    email::KIND,
    exec::KIND,
    alertmanager::KIND,
    console::KIND,
];

/// The kind named `name`.
pub fn find(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

/// The names of every kind, for an error that says which exist.
pub fn names() -> String {
    KINDS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

/// Deserializes a channel's table into its keys' struct (`#[serde(deny_unknown_fields)]`),
/// naming the key a problem is about. Serde stops at the first problem of a table; the checks a
/// kind makes after this one add the rest.
pub fn keys<T: DeserializeOwned>(table: toml::Table) -> Result<T, Vec<KeyProblem>> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        vec![(path, e.into_inner().message().trim().to_owned())]
    })
}

/// A secret given inline (`key`) or in a file (`<key>_file`): not both. The file holds the secret
/// on its first line; an unreadable file is a problem of `<key>_file`, named with its path.
pub fn secret(
    key: &str,
    inline: Option<String>,
    file: Option<&Path>,
    problems: &mut Vec<KeyProblem>,
) -> Option<String> {
    let file_key = format!("{key}_file");
    match (inline, file) {
        (Some(_), Some(_)) => {
            problems.push((
                key.to_owned(),
                format!("give {key} or {file_key}, not both"),
            ));
            None
        }
        (Some(s), None) if s.trim().is_empty() => {
            problems.push((key.to_owned(), "is empty".to_owned()));
            None
        }
        (Some(s), None) => Some(s.trim().to_owned()),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => match text.lines().next().map(str::trim) {
                Some(line) if !line.is_empty() => Some(line.to_owned()),
                _ => {
                    problems.push((file_key, format!("{} is empty", path.display())));
                    None
                }
            },
            Err(e) => {
                problems.push((file_key, format!("cannot read {}: {e}", path.display())));
                None
            }
        },
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_unique() {
        let mut names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KINDS.len());
    }

    #[test]
    fn a_problem_names_its_key() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct K {
            url: String,
            #[serde(default)]
            to: Vec<String>,
        }
        let table = |text: &str| -> toml::Table { toml::from_str(text).expect("toml") };
        for (text, key, says) in [
            (
                "url = 3",
                "url",
                "invalid type: integer `3`, expected a string",
            ),
            (
                "url = 'x'\nto = ['a', 2]",
                "to[1]",
                "invalid type: integer `2`",
            ),
            (
                "url = 'x'\nbogus = 1",
                "bogus",
                "unknown field `bogus`, expected `url` or `to`",
            ),
            ("", "", "missing field `url`"),
        ] {
            let problems = keys::<K>(table(text)).expect_err(text);
            assert_eq!(problems.len(), 1, "{text}: {problems:?}");
            assert_eq!(problems[0].0, key, "{text}: {problems:?}");
            assert!(problems[0].1.contains(says), "{text}: {problems:?}");
        }
    }

    #[test]
    fn a_secret_is_inline_or_in_a_file() {
        let dir = std::env::temp_dir().join(format!("kinds-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("s");
        std::fs::write(&file, "S3CR3T\nignored\n").expect("write");
        let mut problems = Vec::new();
        assert_eq!(
            secret("secret", None, Some(&file), &mut problems).as_deref(),
            Some("S3CR3T")
        );
        assert_eq!(
            secret("secret", Some(" x ".into()), None, &mut problems).as_deref(),
            Some("x")
        );
        assert_eq!(secret("secret", None, None, &mut problems), None);
        assert!(problems.is_empty(), "{problems:?}");
        let missing = dir.join("missing");
        for (inline, file) in [
            (Some("x".to_owned()), Some(file.as_path())),
            (None, Some(missing.as_path())),
            (Some(" ".to_owned()), None),
        ] {
            assert_eq!(secret("secret", inline, file, &mut problems), None);
        }
        let said: Vec<String> = problems.iter().map(|(k, m)| format!("{k}: {m}")).collect();
        assert_eq!(said.len(), 3, "{said:?}");
        assert_eq!(said[0], "secret: give secret or secret_file, not both");
        assert!(said[1].starts_with("secret_file: cannot read "), "{said:?}");
        assert_eq!(said[2], "secret: is empty");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
