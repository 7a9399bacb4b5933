//! The rows of the report's tables: scenarios, invalidation lag, CPU per request.

use crate::lag::LagSummary;
use crate::oha::OhaResult;
use crate::results::Run;
use crate::scenarios::{Load, SCENARIOS, Scenario};

use super::LAG_HEADER;
use super::targets::{Evaluation, evaluate};
use super::text::{milliseconds, thousands};

/// The main table's rows (a scenario that did not run shows why) and the lag table's.
pub fn table_rows(run: &Run, baseline: Option<&Run>) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let mut rows = Vec::new();
    let mut lag_rows = Vec::new();
    for scenario in SCENARIOS {
        let not_run = run.meta.not_run.get(scenario.name);
        match scenario.load {
            Load::Oha { .. } | Load::Mixed => {
                if let Some(result) = run.oha.get(scenario.name) {
                    let evaluation = evaluate(scenario, run, baseline);
                    rows.push(scenario_row(scenario, result, run, baseline, evaluation.as_ref()));
                    if scenario.load == Load::Mixed {
                        rows.extend(mixed_parts(run, baseline));
                    }
                } else if let Some(reason) = not_run {
                    let mut row = vec![scenario.name.to_owned()];
                    row.extend(["—"; 5].map(str::to_owned));
                    row.extend([not_run_cell(reason), "n/a".to_owned(), String::new()]);
                    if baseline.is_some() {
                        row.push(String::new());
                    }
                    rows.push(row);
                }
            }
            Load::InvalidationLag => {
                if let Some(record) = run.lag.get(scenario.name) {
                    lag_rows.push(lag_row(scenario.name, &record.summary()));
                } else if let Some(reason) = not_run {
                    let mut row = vec![scenario.name.to_owned(), not_run_cell(reason)];
                    row.extend(std::iter::repeat_n(String::new(), LAG_HEADER.len() - 2));
                    lag_rows.push(row);
                }
            }
        }
    }
    (rows, lag_rows)
}

/// `mixed`'s reads and writes, each on a row of its own under it.
fn mixed_parts(run: &Run, baseline: Option<&Run>) -> Vec<Vec<String>> {
    [("mixed_reads", "  ├ reads"), ("mixed_writes", "  └ writes")]
        .into_iter()
        .filter_map(|(part, label)| {
            let result = run.oha.get(part)?;
            let mut row = figures(label, result);
            row.extend([String::new(), String::new(), String::new()]);
            if let Some(baseline) = baseline {
                row.push(versus(result, baseline.oha.get(part)));
            }
            Some(row)
        })
        .collect()
}

/// A table cell for a scenario that did not run: the reason, cut short (the targets list has it whole).
fn not_run_cell(reason: &str) -> String {
    const WIDTH: usize = 48;
    let text = format!("not run: {reason}");
    if text.chars().count() <= WIDTH {
        text
    } else {
        text.chars().take(WIDTH - 1).collect::<String>() + "…"
    }
}

fn figures(label: &str, result: &OhaResult) -> Vec<String> {
    vec![
        label.to_owned(),
        thousands(result.requests_per_second),
        milliseconds(result.p50_ms),
        milliseconds(result.p99_ms),
        milliseconds(result.p99_9_ms),
        thousands((result.non_2xx + result.error_count()) as f64),
    ]
}

fn scenario_row(
    scenario: &Scenario,
    result: &OhaResult,
    run: &Run,
    baseline: Option<&Run>,
    evaluation: Option<&Evaluation>,
) -> Vec<String> {
    let mut row = figures(scenario.name, result);
    let mut ratio = match (scenario.name, evaluation) {
        ("bare_hyper", _) => "ceiling".to_owned(),
        (_, Some(evaluation)) => evaluation.column.clone(),
        (_, None) => String::new(),
    };
    if let Some(share) = result.write_share {
        ratio = format!("{ratio}, {:.1}% writes", share * 100.0);
    }
    row.push(ratio);
    row.push(evaluation.map_or(String::new(), |evaluation| evaluation.verdict.word().to_owned()));
    row.push(
        scenario
            .limit
            .and_then(|limit| {
                let measured = run.limits.get(&limit)?;
                Some(format!(
                    "{:.2} × {}",
                    result.requests_per_second / measured.per_second,
                    limit.label()
                ))
            })
            .unwrap_or_default(),
    );
    if let Some(baseline) = baseline {
        row.push(versus(result, baseline.oha.get(scenario.name)));
    }
    row
}

/// This run's rate as a multiple of the baseline's.
fn versus(result: &OhaResult, before: Option<&OhaResult>) -> String {
    match before {
        Some(before) if before.requests_per_second > 0.0 => {
            format!("{:.2}", result.requests_per_second / before.requests_per_second)
        }
        _ => "n/a".to_owned(),
    }
}

fn lag_row(name: &str, summary: &LagSummary) -> Vec<String> {
    let us = |us: Option<u64>| us.map_or("—".to_owned(), |us| thousands(us as f64));
    vec![
        name.to_owned(),
        thousands(summary.writes as f64),
        us(summary.p50_us),
        us(summary.p99_us),
        us(summary.max_us),
        format!(
            "{} in {} writes",
            thousands(summary.stale_reads as f64),
            thousands(summary.writes_with_stale_reads as f64)
        ),
        us(summary.latest_stale_us),
        thousands(summary.not_prewarmed as f64),
        thousands(summary.unconverged as f64),
    ]
}

pub fn cpu_rows(run: &Run) -> Vec<Vec<String>> {
    let us = |value: Option<f64>| value.map_or("—".to_owned(), |value| format!("{value:.1}"));
    SCENARIOS
        .iter()
        .filter_map(|scenario| {
            let cpu = run.cpu.get(scenario.name)?;
            let per = cpu.per_request(run.oha.get(scenario.name)?.requests())?;
            Some(vec![
                scenario.name.to_owned(),
                us(per.service_us),
                us(per.redis_us),
                us(per.postgres_us),
                us(Some(per.client_us)),
                us(Some(per.other_us)),
                us(Some(per.total_us)),
                per.machine_busy
                    .map_or("—".to_owned(), |busy| format!("{:.0}%", busy * 100.0)),
            ])
        })
        .collect()
}
