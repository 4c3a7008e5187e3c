//! Prints alerts on stdout, `ALERT <one line>` each: the demo's "what the watcher would send".

use std::io::Write as _;

use super::kinds::{self, KeyProblem, Kind};
use super::{Channel, ChannelSpec, DeliveryError};
use crate::alert::Alert;
use crate::notify::Notifier;

/// `[[channel]] type = "console"`: no keys.
pub const KIND: Kind = Kind {
    name: "console",
    read: read_table,
};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {}

fn read_table(table: toml::Table) -> Result<Box<dyn ChannelSpec>, Vec<KeyProblem>> {
    let Keys {} = kinds::keys(table)?;
    Ok(Box::new(ConsoleChannel))
}

impl ChannelSpec for ConsoleChannel {
    fn describe(&self) -> String {
        "console (stdout)".to_owned()
    }
    fn key(&self) -> String {
        ConsoleChannel::NAME.to_owned()
    }
    fn start(&self, label: &str, notifier: &mut Notifier, _ctx: &super::Context) -> bool {
        notifier.add_channel_as(label, *self)
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct ConsoleChannel;

impl ConsoleChannel {
    /// There is one stdout, so one console channel: its name needs no fingerprint.
    pub const NAME: &'static str = "console";

    pub fn new() -> ConsoleChannel {
        ConsoleChannel
    }
}

/// The lines the console channel prints for `batch`.
pub fn lines(batch: &[Alert]) -> String {
    batch
        .iter()
        .map(|a| format!("ALERT {}\n", a.one_line()))
        .collect()
}

impl Channel for ConsoleChannel {
    fn name(&self) -> String {
        Self::NAME.to_owned()
    }

    fn max_batch(&self) -> usize {
        10_000
    }

    /// Always succeeds: a closed stdout is not worth retrying.
    async fn deliver(&self, batch: &[Alert]) -> Result<(), DeliveryError> {
        let text = lines(batch);
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertKind;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn one_prefixed_line_per_alert() {
        let a = Alert {
            host: Some("web-3".to_owned()),
            restarts: Some(2),
            crashes: 1,
            ..Alert::new(
                AlertKind::Down,
                "a1",
                "killed by SIGKILL",
                UNIX_EPOCH + Duration::from_secs(1_763_700_000),
            )
        };
        let text = lines(&[a.clone(), a.clone()]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0], format!("ALERT {}", a.one_line()));
        assert!(
            lines[0].starts_with("ALERT [DOWN] a1 on web-3: killed by SIGKILL"),
            "{}",
            lines[0]
        );
    }
}
