//! The targets applied to a run: each scenario's own (from the scenario table) and those that
//! hold for the whole run (p99 at full load, no failed request, memory and binary size).

use crate::oha::OhaResult;
use crate::results::Run;
use crate::scenarios::{
    BINARY_MAX_MIB, IDLE_RSS_MAX_MIB, P99_CEILING_MS, PEAK_RSS_MAX_MIB, Reference, SCENARIOS, Scenario, Target,
};

use super::text::{milliseconds, thousands};

#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Met,
    Short,
    /// The target could not be judged: the reason (a reference not measured, no baseline, …).
    NotApplicable(String),
}

impl Verdict {
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Met => "ok",
            Verdict::Short => "SHORT",
            Verdict::NotApplicable(_) => "n/a",
        }
    }

    pub fn from_bool(met: bool) -> Verdict {
        if met { Verdict::Met } else { Verdict::Short }
    }
}

/// A target applied to a run: what it says, the figure, and whether it was met.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub what: String,
    pub value: String,
    pub verdict: Verdict,
}

/// Each scenario's target against this run, for the scenarios that ran or were meant to.
pub fn scenario_checks(run: &Run, baseline: Option<&Run>) -> Vec<Check> {
    let mut checks = Vec::new();
    for scenario in SCENARIOS {
        let measured = run.oha.contains_key(scenario.name) || run.lag.contains_key(scenario.name);
        let not_run = run.meta.not_run.get(scenario.name);
        let Some(evaluation) = evaluate(scenario, run, baseline) else {
            continue;
        };
        let verdict = match not_run {
            _ if measured => evaluation.verdict,
            Some(reason) => Verdict::NotApplicable(format!("not run: {reason}")),
            None => continue,
        };
        checks.push(Check {
            what: format!("{} {}", scenario.name, evaluation.goal),
            value: evaluation.value,
            verdict,
        });
    }
    checks
}

/// A scenario's target worked out against this run.
pub struct Evaluation {
    /// The target, e.g. `≥ 0.90 × health`.
    pub goal: String,
    /// The figure, e.g. `0.917`, or `—` when it cannot be worked out.
    pub value: String,
    /// The ratio column, e.g. `0.917 × health (≥ 0.90)`.
    pub column: String,
    pub verdict: Verdict,
}

fn reference_label(reference: Reference) -> String {
    match reference {
        Reference::Scenario(name) => name.to_owned(),
        Reference::Limit(limit) => limit.label().to_owned(),
        Reference::Baseline => "before".to_owned(),
    }
}

pub fn evaluate(scenario: &Scenario, run: &Run, baseline: Option<&Run>) -> Option<Evaluation> {
    let target = scenario.target?;
    let missing = |reference: Reference| -> Verdict {
        Verdict::NotApplicable(match reference {
            Reference::Baseline if baseline.is_none() => "needs BENCH_BASELINE, a run of the older binary".to_owned(),
            Reference::Baseline => "the baseline run has no such scenario".to_owned(),
            other => format!("{} was not measured", reference_label(other)),
        })
    };
    let reference_result = |reference: Reference| -> Option<&OhaResult> {
        match reference {
            Reference::Scenario(name) => run.oha.get(name),
            Reference::Baseline => baseline?.oha.get(scenario.name),
            Reference::Limit(_) => None,
        }
    };
    let measured = run.oha.get(scenario.name);
    Some(match target {
        Target::Throughput { reference, at_least } => {
            let label = reference_label(reference);
            let goal = format!("≥ {at_least:.2} × {label}");
            let base = match reference {
                Reference::Limit(limit) => run.limits.get(&limit).map(|limit| limit.per_second),
                other => reference_result(other).map(|result| result.requests_per_second),
            };
            match (measured, base) {
                (Some(result), Some(base)) if base > 0.0 => {
                    let ratio = result.requests_per_second / base;
                    Evaluation {
                        goal,
                        value: format!("{ratio:.3}"),
                        column: format!("{ratio:.3} × {label} (≥ {at_least:.2})"),
                        verdict: Verdict::from_bool(ratio >= at_least),
                    }
                }
                (_, base) => Evaluation {
                    column: format!("{goal}: n/a"),
                    goal,
                    value: "—".to_owned(),
                    verdict: if base.is_none() {
                        missing(reference)
                    } else {
                        Verdict::NotApplicable("not measured".to_owned())
                    },
                },
            }
        }
        Target::MedianLatency { reference, at_most } => {
            let label = reference_label(reference);
            let goal = format!("p50 ≤ {at_most:.2} × {label}");
            let base = reference_result(reference).and_then(|result| result.p50_ms);
            match (measured.and_then(|result| result.p50_ms), base) {
                (Some(p50), Some(base)) if base > 0.0 => {
                    let ratio = p50 / base;
                    Evaluation {
                        goal,
                        value: format!("{ratio:.3} ({p50:.2} ms vs {base:.2} ms)"),
                        column: format!("p50 {ratio:.3} × {label} (≤ {at_most:.2})"),
                        verdict: Verdict::from_bool(ratio <= at_most),
                    }
                }
                _ => Evaluation {
                    column: format!("{goal}: n/a"),
                    goal,
                    value: "—".to_owned(),
                    verdict: missing(reference),
                },
            }
        }
        Target::NoStaleReads => {
            let stale = run.lag.get(scenario.name).map(|record| record.stale_reads_us.len());
            Evaluation {
                goal: "no stale read after a write's response".to_owned(),
                value: stale.map_or("—".to_owned(), |count| format!("{count} stale reads")),
                column: String::new(),
                verdict: match stale {
                    Some(count) => Verdict::from_bool(count == 0),
                    None => Verdict::NotApplicable("not measured".to_owned()),
                },
            }
        }
    })
}

/// Targets that hold for the whole run rather than one scenario.
pub fn global_checks(run: &Run) -> Vec<Check> {
    let meta = &run.meta;
    let mut checks = Vec::new();
    let at_full_load: Vec<(&str, f64)> = SCENARIOS
        .iter()
        .filter(|scenario| scenario.name != "bare_hyper" && scenario.connections(meta.connections) == meta.connections)
        .filter_map(|scenario| Some((scenario.name, run.oha.get(scenario.name)?.p99_ms?)))
        .collect();
    if !at_full_load.is_empty() {
        let over: Vec<String> = at_full_load
            .iter()
            .filter(|(_, p99)| *p99 > P99_CEILING_MS)
            .map(|(name, p99)| format!("{name} {}", milliseconds(Some(*p99))))
            .collect();
        let (worst_name, worst) =
            at_full_load.iter().fold(
                ("", 0.0_f64),
                |worst, (name, p99)| if *p99 > worst.1 { (name, *p99) } else { worst },
            );
        checks.push(Check {
            what: format!(
                "p99 ≤ {P99_CEILING_MS:.0} ms at {} connections, every scenario",
                meta.connections
            ),
            value: if over.is_empty() {
                format!("worst {} ms ({worst_name})", milliseconds(Some(worst)))
            } else {
                format!("over: {}", over.join(", "))
            },
            verdict: Verdict::from_bool(over.is_empty()),
        });
    }
    let mut bad: u64 = run
        .oha
        .iter()
        .filter(|(name, _)| name.as_str() != "mixed")
        .map(|(_, result)| result.non_2xx + result.error_count())
        .sum();
    bad += run
        .lag
        .values()
        .map(|record| record.failed_writes + record.failed_reads)
        .sum::<u64>();
    if !run.oha.is_empty() || !run.lag.is_empty() {
        checks.push(Check {
            what: "no non-2xx responses or transport errors".to_owned(),
            value: thousands(bad as f64),
            verdict: Verdict::from_bool(bad == 0),
        });
    }
    let memory = &meta.memory;
    for (label, kib, ceiling) in [
        ("idle RSS", memory.idle_rss_kib, IDLE_RSS_MAX_MIB),
        ("peak RSS", memory.peak_rss_kib, PEAK_RSS_MAX_MIB),
        (
            "static binary",
            meta.binary_bytes.map(|bytes| bytes / 1024),
            BINARY_MAX_MIB,
        ),
    ] {
        if let Some(kib) = kib {
            let mib = kib as f64 / 1024.0;
            checks.push(Check {
                what: format!("{label} ≤ {ceiling:.0} MiB"),
                value: format!("{mib:.1} MiB"),
                verdict: Verdict::from_bool(mib <= ceiling),
            });
        }
    }
    checks
}
