//! `make bench`: load-tests gravity-bff with oha and prints one table of what it reaches, each
//! figure beside a reference measured on the same machine in the same run (a bare hyper server,
//! `GET /health`, redis-benchmark, pgbench), plus the two-instance invalidation lag.
//!
//! A program of its own beside the service (as rust-analyzer keeps its chores in `xtask`), run by
//! scripts/bench.sh (which builds the release binaries and installs oha). Reading order:
//! `settings` (every setting, once), `scenarios` (every scenario and target, once), `run` (the
//! order of a run), `data` (its database), `processes`, `lag_probe`, `machine` (CPU
//! accounting and the machine's description); then what is pure and unit-tested (`cargo test`
//! runs their tests): `oha`, `limits`, `proc_stat`, `lag`, `results` (a run's folder) and `report`. Databases, free ports and the
//! bench's own redis-server come from tests/support, shared with tests/api and tests/chaos.

// `cargo test` runs the unit tests beside the pure modules; the rest of the program is unused there.
#![cfg_attr(test, allow(dead_code, unused_imports))]

#[path = "../../tests/support/mod.rs"]
mod support;

mod data;
mod lag;
mod lag_probe;
mod limits;
mod machine;
mod oha;
mod proc_stat;
mod processes;
mod report;
mod results;
mod run;
mod scenarios;
mod settings;

use std::path::Path;
use std::process::ExitCode;

use report::Report;
use results::{Run, find_baseline, write_json};
use run::log;
use settings::Settings;

fn main() -> ExitCode {
    if std::env::args()
        .skip(1)
        .any(|argument| argument == "--help" || argument == "-h")
    {
        println!("{}", settings::help());
        return ExitCode::SUCCESS;
    }
    // Relative paths (BENCH_BIN, BENCH_RESULTS, bench/*.sql) are the repository's.
    if let Err(error) = std::env::set_current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/..")) {
        eprintln!("bench: cannot enter the repository: {error}");
        return ExitCode::FAILURE;
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("bench: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the runtime starts");
    let baseline = match settings
        .baseline
        .as_deref()
        .map(|wanted| find_baseline(&settings.results, wanted))
    {
        None => None,
        Some(Ok(folder)) => match Run::load(&folder) {
            Ok(run) => Some(run),
            Err(error) => return fail(&error),
        },
        Some(Err(error)) => return fail(&error),
    };
    if let Some(folder) = &settings.report_only {
        return report(folder, baseline.as_ref(), 0);
    }
    if let Err(error) = runtime.block_on(preflight(&settings)) {
        return fail(&error);
    }

    let run_id = machine::run_id(settings.label.as_deref());
    let folder = settings.results.join(&run_id);
    if let Err(error) = std::fs::create_dir_all(&folder) {
        return fail(&format!("cannot create {}: {error}", folder.display()));
    }
    log(&format!("results in {}", folder.display()));
    // Ctrl-C or SIGTERM drops the run, and with it every process, database and key it made.
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run::bench(&settings, &folder, &run_id) => Some(outcome),
            () = interrupted() => None,
        }
    });
    match outcome {
        None => {
            log("interrupted; everything the run started has been stopped and removed");
            ExitCode::from(130)
        }
        Some(Err(error)) => fail(&error),
        Some(Ok(failures)) => report(&folder, baseline.as_ref(), failures),
    }
}

/// What the run needs, checked before anything is started, each with what to do about it.
async fn preflight(settings: &Settings) -> Result<(), String> {
    let mut needed = vec![("oha", "cargo install oha --locked (scripts/bench.sh does)")];
    if settings.external.is_none() {
        needed.extend([
            (
                "pgbench",
                "apt-get install postgresql-contrib (or postgresql-client-15)",
            ),
            ("redis-benchmark", "apt-get install redis-tools"),
        ]);
        if settings.redis.is_none() {
            needed.push(("redis-server", "apt-get install redis-server, or set REDIS_HOST"));
        }
        for (binary, what) in [
            (&settings.binary, "BENCH_BIN"),
            (&settings.bare_binary, "BENCH_BARE_BIN"),
        ] {
            if !binary.is_file() {
                return Err(format!(
                    "no binary at {} ({what}; scripts/bench.sh builds it, or set {what})",
                    binary.display()
                ));
            }
        }
        let address = format!("{}:{}", settings.pg.host, settings.pg.port);
        let reachable = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            tokio::net::TcpStream::connect(&address),
        )
        .await;
        if !matches!(reachable, Ok(Ok(_))) {
            return Err(format!(
                "Postgres does not answer on {address} (DB_HOST/DB_PORT). Start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
            ));
        }
    }
    for (program, install) in needed {
        if processes::on_path(program).is_none() {
            return Err(format!("{program} is needed: {install}"));
        }
    }
    if let Some(help) = processes::output_of("oha", &["--help"]).await
        && !help.contains("--output-format")
    {
        return Err("this oha has no --output-format; cargo install oha --locked --force".to_owned());
    }
    Ok(())
}

async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

/// Prints the report of a run's folder and saves it there as `table.md` and `summary.json`.
fn report(folder: &Path, baseline: Option<&Run>, failures: usize) -> ExitCode {
    let run = match Run::load(folder) {
        Ok(run) => run,
        Err(error) => return fail(&error),
    };
    let report = Report::build(&run, baseline);
    println!("\n{}", report.terminal());
    let summary = serde_json::json!({
        "meta": &run.meta,
        "header": &report.header,
        "rows": &report.rows,
        "lag": &report.lag_rows,
        "cpu_per_request_us": &report.cpu_rows,
        "checks": report.checks.iter().map(|check| serde_json::json!({
            "what": &check.what,
            "value": &check.value,
            "verdict": format!("{:?}", check.verdict),
        })).collect::<Vec<_>>(),
        "baseline": baseline.map(|baseline| baseline.folder.display().to_string()),
    });
    let saved = std::fs::write(folder.join("table.md"), report.markdown())
        .map_err(|error| error.to_string())
        .and_then(|()| write_json(&folder.join("summary.json"), &summary));
    if let Err(error) = saved {
        return fail(&error);
    }
    println!("\nraw JSON, summary.json and table.md in {}", folder.display());
    if failures > 0 {
        eprintln!("bench: {failures} scenario(s) failed; see the table and stderr.log");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn fail(error: &str) -> ExitCode {
    eprintln!("bench: {error}");
    ExitCode::FAILURE
}
