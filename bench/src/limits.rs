//! The physical limits, read from the tools' own output: `redis-benchmark --csv` and pgbench's
//! report. They talk to Redis or Postgres directly, with no HTTP and no JSON in the way.

#[derive(Clone, Debug, PartialEq)]
pub struct LimitResult {
    pub per_second: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub average_ms: Option<f64>,
}

/// The GET row of `redis-benchmark --csv`.
pub fn parse_redis_benchmark(csv: &str) -> Option<LimitResult> {
    let mut lines = csv.lines().filter(|line| !line.trim().is_empty());
    let header = fields(lines.next()?);
    let column = |row: &[String], name: &str| -> Option<f64> {
        let index = header.iter().position(|field| field == name)?;
        row.get(index)?.parse().ok()
    };
    lines.map(fields).find_map(|row| {
        if !row.first()?.to_ascii_uppercase().starts_with("GET") {
            return None;
        }
        Some(LimitResult {
            per_second: column(&row, "rps")?,
            p50_ms: column(&row, "p50_latency_ms"),
            p99_ms: column(&row, "p99_latency_ms"),
            average_ms: column(&row, "avg_latency_ms"),
        })
    })
}

/// `tps = …` and `latency average = … ms` from pgbench's report.
pub fn parse_pgbench(report: &str) -> Option<LimitResult> {
    let value = |prefix: &str| -> Option<f64> {
        report
            .lines()
            .find_map(|line| line.strip_prefix(prefix))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(LimitResult {
        per_second: value("tps = ")?,
        p50_ms: None,
        p99_ms: None,
        average_ms: value("latency average = "),
    })
}

fn fields(line: &str) -> Vec<String> {
    line.split(',')
        .map(|field| field.trim().trim_matches('"').to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_get_row_of_redis_benchmark() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"GET\",\"85191.98\",\"0.400\",\"0.104\",\"0.375\",\"0.719\",\"1.063\",\"3.439\"\n";
        let limit = parse_redis_benchmark(csv).unwrap();
        assert_eq!(limit.per_second, 85191.98);
        assert_eq!(limit.p50_ms, Some(0.375));
        assert_eq!(limit.p99_ms, Some(1.063));
        assert_eq!(limit.average_ms, Some(0.4));
    }

    #[test]
    fn redis_benchmark_output_without_a_get_row_is_no_limit() {
        assert_eq!(parse_redis_benchmark("\"test\",\"rps\"\n\"SET\",\"1000\"\n"), None);
        assert_eq!(parse_redis_benchmark(""), None);
    }

    #[test]
    fn reads_tps_and_average_latency_from_pgbench() {
        let report = "pgbench (15.20 (Debian 15.20-0+deb12u1))\n\
                      transaction type: <builtin: select only>\n\
                      number of clients: 8\n\
                      latency average = 0.173 ms\n\
                      initial connection time = 12.345 ms\n\
                      tps = 46107.123456 (without initial connection time)\n";
        let limit = parse_pgbench(report).unwrap();
        assert_eq!(limit.per_second, 46107.123456);
        assert_eq!(limit.average_ms, Some(0.173));
    }

    #[test]
    fn a_failed_pgbench_is_no_limit() {
        assert_eq!(parse_pgbench("pgbench: error: connection to server failed\n"), None);
    }
}
