//! The two-instance invalidation lag, as recorded and as summarised.
//!
//! For each write through instance A: the lag is the time from A's response to the *start* of
//! the first read through instance B that returned the new body. Every read through B that
//! started after A's response and still returned the old body is a stale read, kept with how late
//! it started. `lag_probe` does the measuring; this module only holds and summarises figures.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LagRecord {
    /// Writes attempted.
    pub writes: u64,
    /// For each write that B came to show, its lag in microseconds.
    pub lags_us: Vec<u64>,
    /// For each stale read, how long after A's response it started, in microseconds.
    pub stale_reads_us: Vec<u64>,
    /// Writes with at least one stale read.
    pub writes_with_stale_reads: u64,
    /// Reads through B after the writes' responses, stale or not.
    pub reads: u64,
    /// Writes before which B would not answer from its cache (no `X-Cache: HIT` while warming),
    /// so B may not have held the old body at all.
    pub not_prewarmed: u64,
    /// Writes B still had not shown when the probe gave up on them.
    pub unconverged: u64,
    /// Writes A did not answer with 200 (not measured further).
    pub failed_writes: u64,
    /// Reads through B after a write that were not answered with 200.
    pub failed_reads: u64,
    /// How long the probe read through B before giving up on one write.
    pub give_up_ms: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LagSummary {
    pub writes: u64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub max_us: Option<u64>,
    pub stale_reads: u64,
    /// The latest start, after A's response, of a read that still returned the old body.
    pub latest_stale_us: Option<u64>,
    pub writes_with_stale_reads: u64,
    pub reads_per_write: Option<f64>,
    pub not_prewarmed: u64,
    pub unconverged: u64,
    pub failed_writes: u64,
    pub failed_reads: u64,
}

impl LagRecord {
    pub fn summary(&self) -> LagSummary {
        let mut lags = self.lags_us.clone();
        lags.sort_unstable();
        LagSummary {
            writes: self.writes,
            p50_us: percentile(&lags, 0.50),
            p99_us: percentile(&lags, 0.99),
            max_us: lags.last().copied(),
            stale_reads: self.stale_reads_us.len() as u64,
            latest_stale_us: self.stale_reads_us.iter().max().copied(),
            writes_with_stale_reads: self.writes_with_stale_reads,
            reads_per_write: (!lags.is_empty()).then(|| self.reads as f64 / lags.len() as f64),
            not_prewarmed: self.not_prewarmed,
            unconverged: self.unconverged,
            failed_writes: self.failed_writes,
            failed_reads: self.failed_reads,
        }
    }
}

/// The nearest-rank percentile of sorted values: the smallest value that at least `share` of
/// them do not exceed.
pub fn percentile(sorted: &[u64], share: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (share * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.50), Some(50));
        assert_eq!(percentile(&values, 0.99), Some(99));
        assert_eq!(percentile(&values, 1.0), Some(100));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[1, 2, 3], 0.0), Some(1));
    }

    #[test]
    fn summary_sorts_lags_and_counts_stale_reads() {
        let record = LagRecord {
            writes: 4,
            lags_us: vec![300, 20, 15, 4000],
            stale_reads_us: vec![5, 120, 60],
            writes_with_stale_reads: 2,
            reads: 7,
            not_prewarmed: 1,
            unconverged: 0,
            failed_writes: 0,
            failed_reads: 0,
            give_up_ms: 10_000,
        };
        let summary = record.summary();
        assert_eq!(summary.p50_us, Some(20));
        assert_eq!(summary.p99_us, Some(4000));
        assert_eq!(summary.max_us, Some(4000));
        assert_eq!(summary.stale_reads, 3);
        assert_eq!(summary.latest_stale_us, Some(120));
        assert_eq!(summary.writes_with_stale_reads, 2);
        assert_eq!(summary.reads_per_write, Some(1.75));
    }

    #[test]
    fn a_run_where_nothing_converged_has_no_lag_figures() {
        let summary = LagRecord {
            writes: 2,
            unconverged: 2,
            ..LagRecord::default()
        }
        .summary();
        assert_eq!(
            (summary.p50_us, summary.max_us, summary.reads_per_write),
            (None, None, None)
        );
        assert_eq!(summary.unconverged, 2);
    }
}
