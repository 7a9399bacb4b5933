//! Counting outcomes: statuses, transport failures, cache hits, latency percentiles.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::load::{Answer, Outcome};

/// Counted outcomes of a set of requests.
#[derive(Debug, Default)]
pub struct Tally {
    pub total: usize,
    pub by_status: BTreeMap<u16, usize>,
    pub refused: usize,
    pub broken: usize,
    pub timed_out: usize,
    pub cache_hits: usize,
    /// Non-2xx answers without a problem+json body.
    pub errors_without_problem: usize,
    latencies: Vec<Duration>,
}

impl Tally {
    pub fn of<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> Tally {
        let mut tally = Tally::default();
        for outcome in outcomes {
            tally.total += 1;
            tally.latencies.push(outcome.latency);
            match outcome.answer {
                Answer::Status {
                    code,
                    cache_hit,
                    problem,
                } => {
                    *tally.by_status.entry(code).or_default() += 1;
                    tally.cache_hits += usize::from(cache_hit);
                    tally.errors_without_problem += usize::from(code >= 400 && !problem);
                }
                Answer::Refused => tally.refused += 1,
                Answer::Broken => tally.broken += 1,
                Answer::TimedOut => tally.timed_out += 1,
            }
        }
        tally.latencies.sort();
        tally
    }

    /// Answers with a status in `range`.
    pub fn count(&self, range: std::ops::RangeInclusive<u16>) -> usize {
        self.by_status.range(range).map(|(_, count)| count).sum()
    }

    pub fn server_errors(&self) -> usize {
        self.count(500..=599)
    }

    /// Requests that got no HTTP answer at all.
    pub fn unanswered(&self) -> usize {
        self.refused + self.broken + self.timed_out
    }

    pub fn percentile(&self, fraction: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() - 1) as f64 * fraction).round() as usize;
        self.latencies[index]
    }

    pub fn max(&self) -> Duration {
        self.latencies.last().copied().unwrap_or_default()
    }

    /// `200×1180 503×20`, and the transport failures if any.
    pub fn statuses(&self) -> String {
        let mut parts: Vec<String> = self
            .by_status
            .iter()
            .map(|(code, count)| format!("{code}×{count}"))
            .collect();
        for (label, count) in [
            ("refused", self.refused),
            ("broken", self.broken),
            ("timed out", self.timed_out),
        ] {
            if count > 0 {
                parts.push(format!("{label}×{count}"));
            }
        }
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(" ")
        }
    }

    pub fn latency_summary(&self) -> String {
        format!(
            "p50 {}, p99 {}, max {}",
            millis(self.percentile(0.5)),
            millis(self.percentile(0.99)),
            millis(self.max())
        )
    }
}

pub fn millis(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}
