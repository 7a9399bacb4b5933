//! Chaos scenarios: the release binary under steady load while one thing goes wrong at a time.
//!
//! Run by `make chaos` (scripts/chaos.sh), not by `cargo test`: it needs the release binary, a
//! private Postgres cluster it may restart, and `redis-server`s it may kill. Each scenario gets a
//! database of its own in that cluster and a fresh service process, drives load with the client
//! in `load` (requests from `mix`, answers counted by `tally`), injects its fault, and checks
//! counted outcomes; `report` prints the figures and writes them as Markdown (the source of the
//! tables in docs/RELIABILITY.md). The service runs, and is spoken to, through tests/support (`service`, `http`), which also
//! has the private cluster and Redis.
//!
//! Settings (environment): `CHAOS_BINARY` the service binary (required); `PG_BIN` the
//! directory of initdb/pg_ctl (default the newest /usr/lib/postgresql/*/bin, as for tests/api); `CHAOS_RATE` requests per
//! second (default 800); `CHAOS_SOAK_SECONDS` (default 120); `CHAOS_ONLY` a comma-separated list
//! of scenario names; `CHAOS_REPORT` where the Markdown goes (default target/chaos/report.md).

#[path = "../support/mod.rs"]
mod support;

mod load;
mod mix;
mod report;
mod scenarios;
mod tally;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use report::Report;
use support::cluster::Cluster;
use support::redis_server::OwnRedis;
use support::service::{Launch, Service};

/// What every scenario shares: the binary, the cluster, the load settings.
pub struct Harness {
    pub binary: PathBuf,
    pub cluster: Cluster,
    pub logs: PathBuf,
    /// Requests per second of the steady load.
    pub rate: u32,
    /// Keep-alive connections the load is spread over.
    pub connections: usize,
    pub soak: Duration,
}

/// A service started for one scenario, with the database it uses.
pub struct Started {
    pub service: Service,
    pub database: String,
}

impl Harness {
    /// A fresh database, migrated by the binary itself, and the service on it. `redis` is the
    /// port of the scenario's own Redis, or `None` to run without a cache.
    pub async fn start_service(&self, scenario: &str, redis: Option<&OwnRedis>, extra: &[(&str, &str)]) -> Started {
        let database = format!("chaos_{scenario}");
        self.cluster.create_database(&database).await;
        let env = self.service_env(scenario, redis, extra);
        // Off the runtime's workers: the migration may connect through a proxy of this runtime.
        let mut migrate = Command::new(&self.binary);
        migrate
            .args(["migrate", "up"])
            .env_clear()
            .envs(env.iter().map(|(name, value)| (name, value)));
        let migrated = tokio::task::spawn_blocking(move || migrate.output())
            .await
            .expect("the migration's thread ends")
            .expect("the binary runs");
        assert!(
            migrated.status.success(),
            "migrate up failed: {}",
            String::from_utf8_lossy(&migrated.stderr)
        );
        let service = self.launch(env, &format!("{scenario}.log")).await;
        Started { service, database }
    }

    /// One more instance of `scenario`'s service, as another replica of a deployment: the same
    /// database (already migrated by `start_service`), Redis and key prefix.
    pub async fn start_replica(
        &self,
        scenario: &str,
        replica: &str,
        redis: Option<&OwnRedis>,
        extra: &[(&str, &str)],
    ) -> Service {
        let env = self.service_env(scenario, redis, extra);
        self.launch(env, &format!("{scenario}-{replica}.log")).await
    }

    /// The binary with `env`, its stdout and stderr both in `logs/{log}`.
    async fn launch(&self, env: Vec<(String, String)>, log: &str) -> Service {
        let log = self.logs.join(log);
        Launch {
            output: Some((log.clone(), log)),
            ..Launch::new(&self.binary, env)
        }
        .start()
        .await
        .unwrap_or_else(|error| panic!("{error}"))
    }

    fn service_env(&self, scenario: &str, redis: Option<&OwnRedis>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = vec![
            ("DB_HOST", "127.0.0.1".to_owned()),
            ("DB_PORT", self.cluster.port.to_string()),
            ("DB_USER", "postgres".to_owned()),
            ("DB_NAME", format!("chaos_{scenario}")),
            ("REDIS_HOST", if redis.is_some() { "127.0.0.1" } else { "" }.to_owned()),
            ("REDIS_PORT", redis.map_or(6379, |redis| redis.port).to_string()),
            ("CACHE_KEY_PREFIX", format!("chaos-{scenario}-{}", std::process::id())),
            ("LOG_LEVEL", "warn".to_owned()),
            ("SHUTDOWN_GRACE_SECONDS", "5".to_owned()),
            // The faults here are Postgres's, Redis's and the network's; who may call is tests/api's.
            ("AUTH_DISABLED", "true".to_owned()),
        ];
        for (name, value) in extra {
            env.retain(|(existing, _)| existing != name);
            env.push((name, (*value).to_owned()));
        }
        env.into_iter().map(|(name, value)| (name.to_owned(), value)).collect()
    }
}

fn main() -> ExitCode {
    let Some(binary) = std::env::var_os("CHAOS_BINARY").map(PathBuf::from) else {
        eprintln!("chaos: set CHAOS_BINARY to the gravity-bff release binary (scripts/chaos.sh does)");
        return ExitCode::from(2);
    };
    let setting = |name: &str, default: u64| -> u64 {
        std::env::var(name)
            .ok()
            .map(|text| {
                text.parse()
                    .unwrap_or_else(|_| panic!("{name} must be a whole number, got {text:?}"))
            })
            .unwrap_or(default)
    };
    let pg_bin = Cluster::default_bin();
    let report_path = std::env::var_os("CHAOS_REPORT").map_or(PathBuf::from("target/chaos/report.md"), PathBuf::from);
    let only: Option<Vec<String>> = std::env::var("CHAOS_ONLY")
        .ok()
        .filter(|text| !text.trim().is_empty())
        .map(|text| text.split(',').map(|name| name.trim().to_owned()).collect());
    // A misspelt name would otherwise run nothing and pass.
    if let Some(unknown) = only
        .iter()
        .flatten()
        .find(|name| !scenarios::ALL.iter().any(|scenario| scenario.name == name.as_str()))
    {
        let known: Vec<&str> = scenarios::ALL.iter().map(|scenario| scenario.name).collect();
        eprintln!(
            "chaos: CHAOS_ONLY names no scenario {unknown:?}; the scenarios: {}",
            known.join(", ")
        );
        return ExitCode::from(2);
    }
    let logs = report_path.parent().unwrap_or(Path::new(".")).join("logs");
    std::fs::create_dir_all(&logs).expect("the chaos log directory can be created");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the runtime starts");
    let started = Instant::now();
    let harness = Arc::new(Harness {
        binary,
        cluster: Cluster::create(&pg_bin, "chaos"),
        logs,
        rate: setting("CHAOS_RATE", 800) as u32,
        connections: 16,
        soak: Duration::from_secs(setting("CHAOS_SOAK_SECONDS", 120)),
    });
    println!(
        "chaos: {} at {} requests/s over {} connections; private Postgres on port {}",
        harness.binary.display(),
        harness.rate,
        harness.connections,
        harness.cluster.port
    );

    let mut reports = Vec::new();
    for scenario in scenarios::ALL {
        if only
            .as_ref()
            .is_some_and(|names| !names.iter().any(|name| name == scenario.name))
        {
            continue;
        }
        println!("\n== {} ({})", scenario.title, scenario.name);
        let clock = Instant::now();
        let harness_for_run = harness.clone();
        let run = scenario.run;
        let outcome = runtime.block_on(async move { tokio::spawn(run(harness_for_run)).await });
        let report = match outcome {
            Ok(report) => report,
            Err(error) => {
                let mut report = Report::new(scenario.title);
                let reason = error
                    .try_into_panic()
                    .ok()
                    .and_then(|panic| {
                        panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                    })
                    .unwrap_or_else(|| "cancelled".to_owned());
                report.crashed(&reason);
                report
            }
        };
        println!("  ({:.1} s)", clock.elapsed().as_secs_f64());
        reports.push(report);
    }
    drop(harness);
    runtime.shutdown_timeout(Duration::from_secs(2));

    let passed = reports.iter().filter(|report| report.passed()).count();
    let failed = reports.len() - passed;
    let markdown: String = reports.iter().map(|report| report.markdown() + "\n").collect();
    if let Some(parent) = report_path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    match std::fs::write(&report_path, markdown) {
        Ok(()) => println!("\nchaos: figures written to {}", report_path.display()),
        Err(error) => eprintln!("chaos: cannot write {}: {error}", report_path.display()),
    }
    for report in reports.iter().filter(|report| !report.passed()) {
        println!("failed: {}", report.title);
    }
    println!("chaos: {:.0} s in all", started.elapsed().as_secs_f64());
    println!("chaos: {passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
