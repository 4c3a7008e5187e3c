//! What the wrapped command line says about Flume's monitoring and wiring: the HTTP monitoring
//! port (so that operators who already enabled it need no second flag), and which channel each
//! sink drains (Flume's metrics do not say; the agent's properties file does).

use std::collections::BTreeMap;

/// The port of Flume's HTTP monitoring, when the agent is started with it:
/// `-Dflume.monitoring.type=http` and `-Dflume.monitoring.port=N`, as arguments of their own, or
/// inside one argument holding several JVM options (`"-Xmx1g -Dflume.monitoring.type=http …"`),
/// or in `JAVA_OPTS` (which `flume-ng` passes to java, usually from `flume-env.sh`). As for java,
/// the last setting wins, and the command line comes after `JAVA_OPTS`.
pub fn monitoring_port(argv: &[String], java_opts: Option<&str>) -> Option<u16> {
    let mut http = false;
    let mut port = None;
    let words = java_opts
        .into_iter()
        .chain(argv.iter().map(String::as_str))
        .flat_map(str::split_whitespace)
        .map(|w| w.trim_matches(|c| c == '"' || c == '\''));
    for word in words {
        if let Some(kind) = word.strip_prefix("-Dflume.monitoring.type=") {
            http = kind.eq_ignore_ascii_case("http");
        } else if let Some(p) = word.strip_prefix("-Dflume.monitoring.port=") {
            port = p.parse::<u16>().ok().filter(|p| *p != 0);
        }
    }
    port.filter(|_| http)
}

/// The agent's name (`-n`/`--name`) and properties file (`-f`/`--conf-file`).
pub fn agent_conf(argv: &[String]) -> Option<(String, String)> {
    let value = |flags: &[&str]| {
        argv.windows(2)
            .rev()
            .find(|w| flags.contains(&w[0].as_str()))
            .map(|w| w[1].clone())
    };
    Some((value(&["-n", "--name"])?, value(&["-f", "--conf-file"])?))
}

/// Which channel each sink of `agent` drains, from the properties text
/// (`a1.sinks.k1.channel = c1`). Lines that are not such a setting are skipped.
pub fn sink_channels(properties: &str, agent: &str) -> BTreeMap<String, String> {
    let prefix = format!("{agent}.sinks.");
    let mut out = BTreeMap::new();
    for line in properties.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((key, value)) = line.split_once(['=', ':']) else {
            continue;
        };
        let Some(rest) = key.trim().strip_prefix(&prefix) else {
            continue;
        };
        if let Some(sink) = rest.strip_suffix(".channel") {
            let channel = value.trim();
            if !sink.is_empty() && !sink.contains('.') && !channel.is_empty() {
                out.insert(sink.to_owned(), channel.to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn the_monitoring_port_is_found_wherever_java_would_take_it() {
        let base = [
            "flume-ng", "agent", "-n", "a1", "-c", "conf", "-f", "a1.conf",
        ];
        // (extra arguments, JAVA_OPTS, port found)
        let cases: &[(&[&str], Option<&str>, Option<u16>)] = &[
            (&[], None, None),
            (
                &[
                    "-Dflume.monitoring.type=http",
                    "-Dflume.monitoring.port=34545",
                ],
                None,
                Some(34545),
            ),
            (
                &["-Xmx1g -Dflume.monitoring.type=http -Dflume.monitoring.port=34545"],
                None,
                Some(34545),
            ),
            (
                &[],
                Some("-Xms100m -Dflume.monitoring.type=http -Dflume.monitoring.port=41414"),
                Some(41414),
            ),
            // The command line comes after JAVA_OPTS: its port wins.
            (
                &["-Dflume.monitoring.port=5000"],
                Some("-Dflume.monitoring.type=http -Dflume.monitoring.port=41414"),
                Some(5000),
            ),
            (
                &[
                    "-Dflume.monitoring.type=HTTP",
                    "'-Dflume.monitoring.port=1'",
                ],
                None,
                Some(1),
            ),
            // Not HTTP: ganglia reports elsewhere, and a port alone means nothing.
            (
                &[
                    "-Dflume.monitoring.type=ganglia",
                    "-Dflume.monitoring.port=34545",
                ],
                None,
                None,
            ),
            (&["-Dflume.monitoring.port=34545"], None, None),
            (&["-Dflume.monitoring.type=http"], None, None),
            // The last setting wins, as for java.
            (
                &[
                    "-Dflume.monitoring.type=http",
                    "-Dflume.monitoring.port=1",
                    "-Dflume.monitoring.type=ganglia",
                ],
                None,
                None,
            ),
            (
                &[
                    "-Dflume.monitoring.type=http",
                    "-Dflume.monitoring.port=99999",
                ],
                None,
                None,
            ),
            (
                &["-Dflume.monitoring.type=http", "-Dflume.monitoring.port=0"],
                None,
                None,
            ),
            (
                &["-Dflume.monitoring.type=http", "-Dflume.monitoring.port=x1"],
                None,
                None,
            ),
        ];
        for (extra, java_opts, want) in cases {
            let mut line = argv(&base);
            line.extend(argv(extra));
            assert_eq!(
                monitoring_port(&line, *java_opts),
                *want,
                "{extra:?} JAVA_OPTS={java_opts:?}"
            );
        }
    }

    #[test]
    fn sinks_are_wired_to_their_channels_by_the_properties_file() {
        let line = argv(&["flume-ng", "agent", "--conf-file", "x.conf", "--name", "a1"]);
        assert_eq!(agent_conf(&line), Some(("a1".into(), "x.conf".into())));
        assert_eq!(agent_conf(&argv(&["flume-ng", "agent", "-n", "a1"])), None);
        let props = "\
# a1.sinks.old.channel = c0
a1.sources = r1
a1.sources.r1.channels = c1 c2
a1.sinks.k1.channel = c1
  a1.sinks.k2.channel:c2
a1.sinks.k2.type = hdfs
a2.sinks.k9.channel = c9
a1.sinks.k3.channel =
";
        assert_eq!(
            sink_channels(props, "a1"),
            BTreeMap::from([("k1".into(), "c1".into()), ("k2".into(), "c2".into())])
        );
    }
}
