//! What one oha run measured, read from its `--output-format json` (latencies there are in
//! seconds), and the sum of the two runs that make `mixed`.

use std::collections::BTreeMap;

use serde_json::Value;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct OhaResult {
    pub requests_per_second: f64,
    /// Responses of any status.
    pub responses: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p99_9_ms: Option<f64>,
    /// Responses whose status is not 2xx.
    pub non_2xx: u64,
    /// Requests that got no response at all (connect or read errors, timeouts), by oha's wording.
    pub errors: BTreeMap<String, u64>,
    /// `mixed` only: the share of its requests that were writes.
    pub write_share: Option<f64>,
}

impl OhaResult {
    pub fn parse(text: &str) -> Result<OhaResult, String> {
        let data: Value = serde_json::from_str(text).map_err(|error| format!("not oha's JSON: {error}"))?;
        let summary = data
            .get("summary")
            .ok_or_else(|| "oha's JSON has no summary".to_owned())?;
        let percentile = |key: &str| data["latencyPercentiles"][key].as_f64().map(|seconds| seconds * 1000.0);
        let mut responses = 0;
        let mut non_2xx = 0;
        if let Some(statuses) = data["statusCodeDistribution"].as_object() {
            for (code, count) in statuses {
                let code: u16 = code
                    .parse()
                    .map_err(|_| format!("status code {code:?} is not a number"))?;
                let count = count.as_u64().unwrap_or(0);
                responses += count;
                if !(200..300).contains(&code) {
                    non_2xx += count;
                }
            }
        }
        let errors = data["errorDistribution"]
            .as_object()
            .map(|errors| {
                errors
                    .iter()
                    .map(|(kind, count)| (kind.clone(), count.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(OhaResult {
            requests_per_second: summary["requestsPerSec"].as_f64().unwrap_or(0.0),
            responses,
            p50_ms: percentile("p50"),
            p99_ms: percentile("p99"),
            p99_9_ms: percentile("p99.9"),
            non_2xx,
            errors,
            write_share: None,
        })
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Requests that were sent: answered or not.
    pub fn requests(&self) -> u64 {
        self.responses + self.error_count()
    }

    /// Reads and writes that ran at once, as one scenario: rates and counts add up, the tail is
    /// the worse of the two, and a median of two different distributions is not reported.
    pub fn combine(reads: &OhaResult, writes: &OhaResult) -> OhaResult {
        let worse = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let total = reads.requests_per_second + writes.requests_per_second;
        let mut errors = reads.errors.clone();
        for (kind, count) in &writes.errors {
            *errors.entry(kind.clone()).or_default() += count;
        }
        OhaResult {
            requests_per_second: total,
            responses: reads.responses + writes.responses,
            p50_ms: None,
            p99_ms: worse(reads.p99_ms, writes.p99_ms),
            p99_9_ms: worse(reads.p99_9_ms, writes.p99_9_ms),
            non_2xx: reads.non_2xx + writes.non_2xx,
            errors,
            write_share: (total > 0.0).then(|| writes.requests_per_second / total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape oha 1.16 writes, trimmed to what is read.
    const SAMPLE: &str = r#"{
      "summary": {"successRate": 1.0, "total": 10.0009, "requestsPerSec": 63891.25},
      "latencyPercentiles": {"p10": 0.0004, "p50": 0.00093, "p99": 0.00251, "p99.9": 0.00435},
      "statusCodeDistribution": {"200": 638900, "404": 3, "503": 2},
      "errorDistribution": {"aborted due to deadline": 7}
    }"#;

    #[test]
    fn parses_rates_milliseconds_and_the_non_2xx_count() {
        let result = OhaResult::parse(SAMPLE).unwrap();
        assert_eq!(result.requests_per_second, 63891.25);
        assert_eq!(result.responses, 638_905);
        assert_eq!(result.non_2xx, 5);
        assert!((result.p50_ms.unwrap() - 0.93).abs() < 1e-9);
        assert!((result.p99_9_ms.unwrap() - 4.35).abs() < 1e-9);
        assert_eq!(result.error_count(), 7);
        assert_eq!(result.requests(), 638_912);
    }

    #[test]
    fn a_run_without_responses_has_no_percentiles_and_no_statuses() {
        let result = OhaResult::parse(
            r#"{"summary": {"requestsPerSec": 0.0}, "latencyPercentiles": {"p50": null},
                "statusCodeDistribution": {}, "errorDistribution": {"connection refused": 12}}"#,
        )
        .unwrap();
        assert_eq!(result.p50_ms, None);
        assert_eq!(result.responses, 0);
        assert_eq!(result.error_count(), 12);
    }

    #[test]
    fn something_that_is_not_oha_output_is_an_error() {
        assert!(OhaResult::parse("").is_err());
        assert!(OhaResult::parse(r#"{"latencyPercentiles": {}}"#).is_err());
    }

    #[test]
    fn mixed_adds_rates_and_keeps_the_worse_tail() {
        let reads = OhaResult {
            requests_per_second: 900.0,
            responses: 9000,
            p50_ms: Some(1.0),
            p99_ms: Some(3.0),
            p99_9_ms: Some(5.0),
            non_2xx: 1,
            ..OhaResult::default()
        };
        let writes = OhaResult {
            requests_per_second: 100.0,
            responses: 1000,
            p50_ms: Some(2.0),
            p99_ms: Some(4.0),
            p99_9_ms: None,
            non_2xx: 2,
            ..OhaResult::default()
        };
        let mixed = OhaResult::combine(&reads, &writes);
        assert_eq!(mixed.requests_per_second, 1000.0);
        assert_eq!(mixed.responses, 10_000);
        assert_eq!(mixed.p50_ms, None);
        assert_eq!(mixed.p99_ms, Some(4.0));
        assert_eq!(mixed.p99_9_ms, Some(5.0));
        assert_eq!(mixed.non_2xx, 3);
        assert!((mixed.write_share.unwrap() - 0.1).abs() < 1e-12);
    }
}
