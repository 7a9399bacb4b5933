//! The report's ratios, targets, verdicts and formats, on runs made up for each case.
use super::text::{milliseconds, thousands};
use super::{Check, Report, Verdict};
use crate::lag::LagRecord;
use crate::limits::LimitResult;
use crate::oha::OhaResult;
use crate::results::Run;
use crate::scenarios::Limit;

fn oha(rps: f64, p50: f64, p99: f64) -> OhaResult {
    OhaResult {
        requests_per_second: rps,
        responses: (rps * 10.0) as u64,
        p50_ms: Some(p50),
        p99_ms: Some(p99),
        p99_9_ms: Some(p99 * 1.5),
        ..OhaResult::default()
    }
}

fn limit(per_second: f64) -> LimitResult {
    LimitResult {
        per_second,
        p50_ms: None,
        p99_ms: None,
        average_ms: None,
    }
}

fn run() -> Run {
    let mut run = Run::default();
    run.meta.connections = 64;
    for (name, result) in [
        ("bare_hyper", oha(100_000.0, 0.5, 1.8)),
        ("health", oha(96_000.0, 0.6, 2.5)),
        ("get_hot", oha(64_000.0, 0.9, 2.5)),
        ("get_cold", oha(33_000.0, 1.9, 4.1)),
        ("create_c1", oha(900.0, 1.05, 2.0)),
        ("create", oha(24_000.0, 2.0, 12.5)),
    ] {
        run.oha.insert(name.to_owned(), result);
    }
    run.limits.insert(Limit::PgbenchSelect, limit(44_000.0));
    run.limits.insert(Limit::PgbenchInsert, limit(11_000.0));
    run
}

fn check<'a>(report: &'a Report, starts: &str) -> &'a Check {
    report
        .checks
        .iter()
        .find(|check| check.what.starts_with(starts))
        .unwrap_or_else(|| panic!("no check {starts:?} in {:#?}", report.checks))
}

#[test]
fn ratios_to_scenarios_and_limits_of_the_same_run_decide_the_verdicts() {
    let report = Report::build(&run(), None);
    let health = check(&report, "health ");
    assert_eq!(health.value, "0.960");
    assert_eq!(health.verdict, Verdict::Met);
    let cold = check(&report, "get_cold ");
    assert_eq!(cold.value, "0.750");
    assert_eq!(cold.verdict, Verdict::Short);
    let create = check(&report, "create ");
    assert_eq!(create.what, "create ≥ 2.00 × pgbench insert");
    assert_eq!(create.verdict, Verdict::Met);
}

#[test]
fn targets_against_the_baseline_are_not_applicable_without_one_and_judged_with_one() {
    let report = Report::build(&run(), None);
    assert!(matches!(check(&report, "get_hot ").verdict, Verdict::NotApplicable(_)));
    assert!(matches!(
        check(&report, "create_c1 ").verdict,
        Verdict::NotApplicable(_)
    ));

    let mut before = run();
    before.oha.insert("get_hot".to_owned(), oha(65_000.0, 0.9, 2.5));
    before.oha.insert("create_c1".to_owned(), oha(1000.0, 1.0, 2.0));
    let report = Report::build(&run(), Some(&before));
    assert_eq!(check(&report, "get_hot ").verdict, Verdict::Short);
    let latency = check(&report, "create_c1 ");
    assert!(latency.value.starts_with("1.050"), "{}", latency.value);
    assert_eq!(latency.verdict, Verdict::Met);
    let health_row = report.rows.iter().find(|row| row[0] == "health").unwrap();
    assert_eq!(health_row.last().unwrap(), "1.00");
}

#[test]
fn p99_over_the_ceiling_at_full_load_is_named_and_one_connection_runs_do_not_count() {
    let mut run = run();
    run.oha.insert("create_c1".to_owned(), oha(900.0, 1.1, 40.0));
    let report = Report::build(&run, None);
    let p99 = check(&report, "p99 ");
    assert_eq!(p99.verdict, Verdict::Short);
    assert_eq!(p99.value, "over: create 12.5");
}

#[test]
fn non_2xx_and_failed_lag_writes_are_counted_once() {
    let mut run = run();
    let mut reads = oha(900.0, 1.0, 2.0);
    reads.non_2xx = 2;
    let writes = oha(100.0, 1.0, 2.0);
    run.oha.insert("mixed".to_owned(), OhaResult::combine(&reads, &writes));
    run.oha.insert("mixed_reads".to_owned(), reads);
    run.oha.insert("mixed_writes".to_owned(), writes);
    run.lag.insert(
        "lag_redis".to_owned(),
        LagRecord {
            writes: 10,
            failed_writes: 1,
            ..LagRecord::default()
        },
    );
    let report = Report::build(&run, None);
    let bad = check(&report, "no non-2xx");
    assert_eq!(bad.value, "3");
    assert_eq!(bad.verdict, Verdict::Short);
}

#[test]
fn scenarios_that_could_not_run_show_as_not_applicable_with_the_reason() {
    let mut run = run();
    run.meta.not_run.insert(
        "get_hot_local".to_owned(),
        "the binary has no CACHE_LOCAL_ENTRIES".to_owned(),
    );
    run.meta.not_run.insert(
        "lag_local".to_owned(),
        "the binary has no CACHE_LOCAL_ENTRIES".to_owned(),
    );
    let report = Report::build(&run, None);
    let row = report.rows.iter().find(|row| row[0] == "get_hot_local").unwrap();
    assert_eq!(row[7], "n/a");
    assert!(row[6].contains("CACHE_LOCAL_ENTRIES"));
    assert!(matches!(
        check(&report, "get_hot_local ").verdict,
        Verdict::NotApplicable(_)
    ));
    assert!(
        report
            .lag_rows
            .iter()
            .any(|row| row[0] == "lag_local" && row[1].contains("not run"))
    );
    assert!(report.terminal().contains("n/a"));
}

#[test]
fn stale_reads_fail_the_redis_only_lag_and_are_reported() {
    let mut run = run();
    run.lag.insert(
        "lag_redis".to_owned(),
        LagRecord {
            writes: 3,
            lags_us: vec![10, 20, 5000],
            stale_reads_us: vec![40],
            writes_with_stale_reads: 1,
            reads: 4,
            ..LagRecord::default()
        },
    );
    let report = Report::build(&run, None);
    assert_eq!(check(&report, "lag_redis ").verdict, Verdict::Short);
    assert_eq!(
        report.lag_rows[0],
        [
            "lag_redis",
            "3",
            "20",
            "5,000",
            "5,000",
            "1 in 1 writes",
            "40",
            "0",
            "0"
        ]
    );
}

#[test]
fn memory_and_binary_size_are_held_to_their_ceilings() {
    let mut run = run();
    run.meta.memory.idle_rss_kib = Some(3 * 1024);
    run.meta.memory.peak_rss_kib = Some(40 * 1024);
    run.meta.binary_bytes = Some(4_131_688);
    let report = Report::build(&run, None);
    assert_eq!(check(&report, "idle RSS").verdict, Verdict::Met);
    assert_eq!(check(&report, "peak RSS").verdict, Verdict::Short);
    assert_eq!(check(&report, "static binary").value, "3.9 MiB");
}

#[test]
fn cpu_rows_divide_by_the_requests_of_the_same_scenario() {
    let mut run = run();
    run.cpu.insert(
        "health".to_owned(),
        crate::proc_stat::CpuUse {
            wall_ms: 10_000.0,
            service_ms: Some(9_600.0),
            redis_ms: None,
            postgres_ms: None,
            client_ms: 9_600.0,
            machine_busy_ms: 19_200.0,
            machine_idle_ms: 800.0,
        },
    );
    let report = Report::build(&run, None);
    assert_eq!(
        report.cpu_rows,
        [["health", "10.0", "—", "—", "10.0", "0.0", "20.0", "96%"]]
    );
}

#[test]
fn numbers_are_grouped_and_milliseconds_keep_two_decimals_below_ten() {
    assert_eq!(thousands(63_891.4), "63,891");
    assert_eq!(thousands(999.6), "1,000");
    assert_eq!(thousands(1_234_567.0), "1,234,567");
    assert_eq!(thousands(0.0), "0");
    assert_eq!(milliseconds(Some(2.514)), "2.51");
    assert_eq!(milliseconds(Some(18.46)), "18.5");
    assert_eq!(milliseconds(None), "—");
}

#[test]
fn markdown_has_one_column_per_header_cell_in_every_row() {
    let report = Report::build(&run(), None);
    let markdown = report.markdown();
    let table: Vec<&str> = markdown
        .lines()
        .skip_while(|line| !line.starts_with("| scenario | req/s"))
        .take_while(|line| line.starts_with('|'))
        .collect();
    assert!(table.len() > 3);
    let columns = table[0].matches('|').count();
    assert!(
        table.iter().all(|line| line.matches('|').count() == columns),
        "{markdown}"
    );
}
