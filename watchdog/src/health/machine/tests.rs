//! Tables for the health machine: time is counted in polls of a 10 s interval (the default), so
//! "within two polls" and "writes per hour" read as they would in production.

use super::*;
use crate::health::metrics::{Channel, Sink, Snapshot, Source};

const INTERVAL: Duration = Duration::from_secs(10);
/// Polls in an hour at the default interval.
const HOUR: u32 = 360;

/// An agent with channel c1 (capacity 1,000) drained by sink k1.
#[derive(Clone)]
struct Agent {
    size: u64,
    drained: u64,
    unhealthy: bool,
    sink_stopped: bool,
}

impl Agent {
    fn healthy() -> Agent {
        Agent {
            size: 0,
            drained: 0,
            unhealthy: false,
            sink_stopped: false,
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            channels: BTreeMap::from([(
                "c1".to_owned(),
                Channel {
                    size: self.size,
                    capacity: 1000,
                    fill_pct: self.size as f64 / 10.0,
                    unhealthy: self.unhealthy,
                    stopped: false,
                },
            )]),
            sinks: BTreeMap::from([(
                "k1".to_owned(),
                Sink {
                    drained: self.drained,
                    stopped: self.sink_stopped,
                },
            )]),
            sources: BTreeMap::from([("r1".to_owned(), Source { stopped: false })]),
        }
    }
}

/// The machine with a clock counted in polls.
struct Run {
    h: Health,
    t0: Instant,
    poll: u32,
    writes: Vec<(u32, HealthRecord)>,
    restarts: Vec<(u32, RestartCause)>,
}

impl Run {
    fn new(rules: Rules) -> Run {
        let t0 = Instant::now();
        let mut h = Health::new(rules);
        assert_eq!(h.on_event(Event::AgentStarted { now: t0 }), vec![]);
        Run {
            h,
            t0,
            poll: 0,
            writes: Vec::new(),
            restarts: Vec::new(),
        }
    }

    fn now(&self) -> Instant {
        self.t0 + INTERVAL * self.poll
    }

    fn read(&mut self, reading: Reading) -> Vec<Action> {
        self.poll += 1;
        let acts = self.h.on_event(Event::Poll {
            now: self.now(),
            wall: SystemTime::UNIX_EPOCH
                + Duration::from_secs(1_800_000_000)
                + INTERVAL * self.poll,
            reading,
        });
        for a in &acts {
            match a {
                Action::Publish(r) => self.writes.push((self.poll, r.clone())),
                Action::Restart(c) => self.restarts.push((self.poll, c.clone())),
                Action::Withdraw => panic!("withdrawn while the agent runs"),
            }
        }
        acts
    }

    fn metrics(&mut self, a: &Agent) -> Vec<Action> {
        self.read(Reading::Metrics(a.snapshot()))
    }

    /// Two readings of `a` draining: the first summary is written on the second.
    fn baseline(&mut self, a: &mut Agent) {
        self.metrics(a);
        a.drained += 10;
        let acts = self.metrics(a);
        assert!(matches!(&acts[..], [Action::Publish(_)]), "{acts:?}");
    }

    fn last(&self) -> &HealthRecord {
        &self.writes.last().expect("a write").1
    }

    fn writes_after(&self, poll: u32) -> usize {
        self.writes.iter().filter(|(p, _)| *p > poll).count()
    }
}

fn quick() -> Rules {
    Rules {
        hold: Duration::ZERO,
        min_gap: Duration::ZERO,
        startup_grace: Duration::ZERO,
        ..Rules::default()
    }
}

/// A healthy agent that drains events at a steady rate with some jitter.
fn steady(run: &mut Run, a: &mut Agent, polls: u32) {
    for i in 0..polls {
        a.drained += 1000 + u64::from(i % 7) * 37;
        a.size = u64::from(i % 5) * 15; // 0–6 % full: drift, never material
        run.metrics(a);
    }
}

#[test]
fn a_healthy_steady_agent_writes_once_then_never_in_an_hour() {
    let mut run = Run::new(Rules::default());
    let mut a = Agent::healthy();
    steady(&mut run, &mut a, HOUR);
    assert_eq!(run.writes.len(), 1, "{:?}", run.writes);
    let (poll, first) = &run.writes[0];
    assert_eq!(
        *poll, 2,
        "written at the second reading, which has the rates"
    );
    assert_eq!(first.verdict, Verdict::Healthy);
    assert!(first.reasons.is_empty());
    assert_eq!(
        first.channels["c1"],
        ChannelFigures {
            fill: 1,
            size: 15,
            cap: 1000
        }
    );
    assert_eq!(first.sinks["k1"].rate, Some(103.7));
    let json = serde_json::to_string(first).expect("serializes");
    assert_eq!(
        json,
        r#"{"v":1,"at":"2027-01-15T08:00:20.000Z","verdict":"healthy","channels":{"c1":{"fill":1,"size":15,"cap":1000}},"sinks":{"k1":{"rate":103.7}}}"#
    );
}

/// Each condition, from a healthy agent: the reason it gives and on which poll after it began
/// the degraded verdict is written (a condition counts on its second reading in a row).
#[test]
fn each_condition_is_degraded_within_two_polls_and_clears_after_resume() {
    type Make = fn(&mut Agent) -> Reading;
    type Case = (&'static str, Make, fn(&HealthReason) -> bool);
    let cases: &[Case] = &[
        (
            "channel 94 % full",
            |a| {
                a.size = 940;
                a.drained += 100;
                Reading::Metrics(a.snapshot())
            },
            |r| {
                *r == HealthReason::ChannelFull {
                    channel: "c1".into(),
                    pct: 94,
                    size: 940,
                    capacity: 1000,
                }
            },
        ),
        (
            "sink flat while events wait",
            |a| {
                a.size = 50;
                Reading::Metrics(a.snapshot())
            },
            |r| {
                matches!(r, HealthReason::SinkStalled { sink, channel: Some(c), ms }
                    if sink == "k1" && c == "c1" && *ms == 20_000)
            },
        ),
        (
            "file channel unhealthy",
            |a| {
                a.unhealthy = true;
                a.drained += 100;
                Reading::Metrics(a.snapshot())
            },
            |r| matches!(r, HealthReason::ChannelUnhealthy { channel } if channel == "c1"),
        ),
        (
            "sink stopped",
            |a| {
                a.sink_stopped = true;
                a.drained += 100;
                Reading::Metrics(a.snapshot())
            },
            |r| matches!(r, HealthReason::ComponentStopped { component, name } if component == "sink" && name == "k1"),
        ),
        (
            "endpoint hung",
            |_| Reading::Unanswered,
            |r| *r == HealthReason::MetricsUnanswered { ms: 20_000 },
        ),
        (
            "endpoint answers garbage",
            |_| Reading::Garbled {
                error: "not JSON: expected value at line 1 column 1".into(),
            },
            |r| matches!(r, HealthReason::MetricsGarbled { error } if error.starts_with("not JSON")),
        ),
    ];
    for (what, make, want) in cases {
        let mut rules = quick();
        rules.wiring = BTreeMap::from([("k1".to_owned(), "c1".to_owned())]);
        let mut run = Run::new(rules);
        let mut a = Agent::healthy();
        steady(&mut run, &mut a, 3);
        let began = run.poll;
        let mut degraded_at = None;
        for _ in 0..4 {
            let r = make(&mut a);
            run.read(r);
            if degraded_at.is_none() && run.last().verdict == Verdict::Degraded {
                degraded_at = Some(run.poll - began);
                let reasons = &run.last().reasons;
                assert!(
                    reasons.len() == 1 && want(&reasons[0]),
                    "{what}: {reasons:?}"
                );
            }
        }
        let degraded_at = degraded_at.unwrap_or_else(|| panic!("{what}: never degraded"));
        assert!(degraded_at <= 2, "{what}: degraded on poll {degraded_at}");
        // Resume: healthy again on the next good reading (hold 0 here).
        let mut a = Agent::healthy();
        a.drained = 1_000_000;
        run.metrics(&a);
        a.drained += 10;
        run.metrics(&a);
        assert_eq!(
            run.last().verdict,
            Verdict::Healthy,
            "{what}: {:?}",
            run.last()
        );
        assert!(run.last().reasons.is_empty());
    }
}

#[test]
fn one_odd_reading_changes_nothing() {
    let mut run = Run::new(Rules::default());
    let mut a = Agent::healthy();
    steady(&mut run, &mut a, 3);
    for odd in [
        Reading::Unanswered,
        Reading::Garbled {
            error: "truncated".into(),
        },
        {
            let mut full = a.clone();
            full.size = 990;
            full.drained += 1;
            Reading::Metrics(full.snapshot())
        },
    ] {
        run.read(odd);
        steady(&mut run, &mut a, 3);
    }
    assert_eq!(run.writes.len(), 1, "{:?}", run.writes);
}

#[test]
fn an_idle_agent_is_not_stalled_and_an_unwired_sink_looks_at_every_channel() {
    // Nothing waits in the channel: a flat sink is an idle one.
    let mut run = Run::new(quick());
    let a = Agent::healthy();
    for _ in 0..10 {
        run.metrics(&a);
    }
    assert_eq!(run.writes.len(), 1);
    // Without wiring, events waiting in any channel make a flat sink stalled; the reason names
    // no channel.
    let mut a = Agent::healthy();
    a.size = 10;
    for _ in 0..3 {
        run.metrics(&a);
    }
    assert!(
        matches!(
            &run.last().reasons[..],
            [HealthReason::SinkStalled {
                channel: None,
                ms: 20_000,
                ..
            }]
        ),
        "{:?}",
        run.last()
    );
    // Wired to another channel that is empty: not stalled.
    let mut rules = quick();
    rules.wiring = BTreeMap::from([("k1".to_owned(), "c1".to_owned())]);
    let mut run = Run::new(rules);
    let mut snap = a.snapshot();
    snap.channels.get_mut("c1").expect("c1").size = 0;
    let mut other = snap.channels["c1"].clone();
    other.size = 500;
    snap.channels.insert("c2".into(), other);
    for _ in 0..4 {
        run.read(Reading::Metrics(snap.clone()));
    }
    assert_eq!(run.writes.len(), 1, "{:?}", run.writes);
}

#[test]
fn material_change_rule() {
    // (fill per cent of each reading after two at 0 % (polls 1, 2), polls that write)
    let cases: &[(&[u64], &[u32])] = &[
        // Small drift: never.
        (&[5, 9, 3, 9, 0, 9], &[]),
        // Ten points lasting two readings: written on the second.
        (&[15, 15, 15], &[4]),
        // Ten points for one reading only: not written.
        (&[15, 0, 15, 0], &[]),
        // Measured from what was written, not from the last reading: a slow climb is written
        // once it has been ten points away from the written figure for two readings (12 %, 16 %:
        // written at 16 %; then 20, 24 are near it and 28 is away for one reading only).
        (&[4, 8, 12, 16, 20, 24, 28], &[6]),
        // Into the full band: figures first (two readings past 10 points), then the verdict.
        (&[85, 85, 85], &[4]),
    ];
    for (fills, want) in cases {
        let mut run = Run::new(quick());
        let mut a = Agent::healthy();
        run.baseline(&mut a);
        for f in *fills {
            a.size = f * 10;
            a.drained += 10;
            run.metrics(&a);
        }
        let polls: Vec<u32> = run.writes.iter().skip(1).map(|(p, _)| *p).collect();
        assert_eq!(&polls[..], *want, "fills {fills:?}: {:?}", run.writes);
    }
    // The verdict is what the fill of 85 % changed on poll 4 there; and with min_gap, figures
    // alone wait for it while a verdict change does not.
    let mut run = Run::new(Rules {
        min_gap: Duration::from_secs(60),
        ..quick()
    });
    let mut a = Agent::healthy();
    run.baseline(&mut a);
    a.size = 500;
    for _ in 0..8 {
        a.drained += 10;
        run.metrics(&a);
    }
    assert_eq!(
        run.writes.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        [2, 8],
        "50 % from poll 3, written once 60 s passed since the first write"
    );
    a.size = 950;
    for _ in 0..2 {
        a.drained += 10;
        run.metrics(&a);
    }
    assert_eq!(run.writes.last().map(|(p, _)| *p), Some(12));
    assert_eq!(run.last().verdict, Verdict::Degraded);
}

#[test]
fn a_degraded_verdict_is_held_before_it_clears() {
    let mut run = Run::new(Rules::default()); // hold 60 s
    let mut a = Agent::healthy();
    run.baseline(&mut a);
    a.size = 900;
    run.metrics(&a);
    run.metrics(&a);
    assert_eq!(run.last().verdict, Verdict::Degraded);
    let degraded_at = run.poll;
    a.size = 0;
    for _ in 0..10 {
        a.drained += 10;
        run.metrics(&a);
    }
    let cleared: Vec<u32> = run
        .writes
        .iter()
        .filter(|(_, r)| r.verdict == Verdict::Healthy)
        .map(|(p, _)| *p)
        .skip(1)
        .collect();
    assert_eq!(
        cleared,
        [degraded_at + 6],
        "healthy once the reason was gone 60 s: {:?}",
        run.writes
    );
}

/// The figures the README quotes: writes in an hour at the default interval and rules, after
/// the first. The bound: figures alone are written at most 6 times an hour (gaps of 1, 2, 4, 8,
/// 16, 16 … minutes), and the verdict clears at most 5 times an hour (holds of 1, 2, 4, 8, 16
/// minutes), each clear following one degrade: 6 + 2 × 5 = 16.
#[test]
fn flapping_writes_per_hour_are_bounded() {
    const BOUND: usize = 16;
    let mut seed = 0x2545_f491_u64;
    let random: Vec<u64> = (0..HOUR)
        .map(|_| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % 101
        })
        .collect();
    // (pattern of fill per cent, repeated for an hour; writes measured)
    let cases: &[(&str, &[u64], usize)] = &[
        ("across 80 % every poll (79/81)", &[79, 81], 0),
        ("across 80 % every poll (50/95)", &[50, 95], 0),
        ("two polls full, two polls empty", &[95, 95, 5, 5], 6),
        (
            "three polls full, nine empty",
            &[95, 95, 95, 5, 5, 5, 5, 5, 5, 5, 5, 5],
            8,
        ),
        (
            "two full, eight empty",
            &[95, 95, 5, 5, 5, 5, 5, 5, 5, 5],
            8,
        ),
        ("random fill 0-100 % every poll", &random, 14),
    ];
    let mut found = Vec::new();
    for (what, pattern, _) in cases {
        let mut run = Run::new(Rules::default());
        let mut a = Agent::healthy();
        a.size = pattern[0] * 10;
        run.baseline(&mut a);
        for i in 1..=HOUR {
            a.size = pattern[i as usize % pattern.len()] * 10;
            a.drained += 100;
            run.metrics(&a);
        }
        let n = run.writes_after(2);
        eprintln!("flapping {what}: {n} writes in an hour");
        assert!(n <= BOUND, "{what}: {n} writes in an hour");
        found.push(n);
    }
    let quoted: Vec<usize> = cases.iter().map(|c| c.2).collect();
    assert_eq!(found, quoted, "the figures the README quotes");
}

#[test]
fn a_hung_endpoint_restarts_the_agent_once_after_the_limit() {
    let mut run = Run::new(Rules {
        restart_on_hang: Some(Duration::from_secs(60)),
        ..quick()
    });
    let mut a = Agent::healthy();
    steady(&mut run, &mut a, 2);
    for _ in 0..9 {
        run.read(Reading::Unanswered);
    }
    assert_eq!(
        run.restarts,
        [(8, RestartCause::MetricsHung { ms: 60_000 })],
        "60 s after the last answer (poll 2), once"
    );
    assert_eq!(
        run.last().reasons,
        [HealthReason::MetricsUnanswered { ms: 20_000 }],
        "the reason was written when it began; its growing figure is no new write"
    );
    // Garbage is an answer: never a restart.
    let mut run = Run::new(Rules {
        restart_on_hang: Some(Duration::from_secs(30)),
        ..quick()
    });
    for _ in 0..20 {
        run.read(Reading::Garbled { error: "x".into() });
    }
    assert!(run.restarts.is_empty());
    // An endpoint that never answered counts from the agent's start.
    let mut run = Run::new(Rules {
        restart_on_hang: Some(Duration::from_secs(30)),
        ..quick()
    });
    for _ in 0..3 {
        run.read(Reading::Unanswered);
    }
    assert_eq!(
        run.restarts,
        [(3, RestartCause::MetricsHung { ms: 30_000 })]
    );
}

#[test]
fn a_starting_agent_may_be_silent_for_the_grace_only_before_its_first_answer() {
    let rules = Rules {
        startup_grace: Duration::from_secs(30),
        ..quick()
    };
    // Silent from its start: not answering counts from 30 s on, so degraded on poll 4.
    let mut run = Run::new(rules.clone());
    for _ in 0..4 {
        run.read(Reading::Unanswered);
    }
    assert_eq!(run.writes.len(), 1, "{:?}", run.writes);
    assert_eq!(run.writes[0].0, 4);
    assert_eq!(
        run.last().reasons,
        [HealthReason::MetricsUnanswered { ms: 40_000 }]
    );
    // Answered once: no grace any more.
    let mut run = Run::new(rules);
    run.metrics(&Agent::healthy());
    run.read(Reading::Unanswered);
    run.read(Reading::Unanswered);
    assert_eq!(run.last().verdict, Verdict::Degraded);
}

#[test]
fn a_new_agent_is_judged_afresh_and_a_gone_one_withdrawn() {
    let mut run = Run::new(Rules::default());
    let mut a = Agent::healthy();
    run.baseline(&mut a);
    assert_eq!(run.h.on_event(Event::AgentGone), vec![Action::Withdraw]);
    assert_eq!(run.h.state(), &State::Idle);
    // Readings while no agent runs are dropped.
    assert_eq!(run.read(Reading::Unanswered), vec![]);
    assert_eq!(run.h.on_event(Event::AgentGone), vec![]);
    let now = run.now();
    run.h.on_event(Event::AgentStarted { now });
    assert_eq!(
        run.metrics(&a),
        vec![],
        "a first reading alone is not written"
    );
    a.drained += 10;
    let acts = run.metrics(&a);
    assert!(matches!(&acts[..], [Action::Publish(r)] if r.verdict == Verdict::Healthy));
    // Gone before its first write: nothing to withdraw.
    let mut h = Health::new(Rules::default());
    h.on_event(Event::AgentStarted { now });
    assert_eq!(h.on_event(Event::AgentGone), vec![]);
}

#[test]
fn drain_rates_are_events_per_second_over_the_interval() {
    let mut run = Run::new(Rules {
        min_gap: Duration::ZERO,
        ..Rules::default()
    });
    let mut a = Agent::healthy();
    run.metrics(&a);
    a.drained = 125;
    a.size = 500;
    run.metrics(&a);
    // Written on the second reading; the rate is over the interval before it.
    assert_eq!(run.writes.len(), 1);
    assert_eq!(run.last().sinks["k1"].rate, Some(12.5));
    assert_eq!(run.last().channels["c1"].fill, 50);
    // A counter that went back (a restarted sink) has no rate.
    let mut h = Health::new(quick());
    let t = Instant::now();
    h.on_event(Event::AgentStarted { now: t });
    let mut hi = Agent::healthy();
    hi.drained = 100;
    h.on_event(Event::Poll {
        now: t + INTERVAL,
        wall: SystemTime::UNIX_EPOCH,
        reading: Reading::Metrics(hi.snapshot()),
    });
    let w = h.state().clone();
    let State::Watching(w) = w else { panic!() };
    let (_, sinks) = w.figures(t + INTERVAL * 2, &Agent::healthy().snapshot());
    assert_eq!(sinks["k1"].rate, None);
    let (_, sinks) = w.figures(t + INTERVAL * 2, &{
        let mut more = Agent::healthy();
        more.drained = 225;
        more.snapshot()
    });
    assert_eq!(sinks["k1"].rate, Some(12.5));
}
