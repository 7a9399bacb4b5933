//! One run, in order: the physical limits with nothing of ours running, then the scenarios of
//! `scenarios::SCENARIOS` that `BENCH_SCENARIOS` leaves in, each against the instance it names
//! (started here, or the running stack of `BENCH_URL`), with CPU counted per scenario. Whatever
//! a run starts is owned by a value of this module and goes when that value is dropped: at the
//! end, on an error, or when Ctrl-C drops the whole run.

mod limits;
mod load;
mod local;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::data::ids_through_api;
use crate::machine::{Accounting, busiest, load_average, ticks_per_second};
use crate::proc_stat::memory_kib;
use crate::results::{Meta, write_json};
use crate::scenarios::{Instance, SCENARIOS, Scenario};
use crate::settings::Settings;
use crate::support::free_port;
use crate::support::service::{Launch, Service};

pub fn log(message: &str) {
    let now = time::OffsetDateTime::now_utc();
    eprintln!(
        "\x1b[2m[bench {:02}:{:02}:{:02}]\x1b[0m {message}",
        now.hour(),
        now.minute(),
        now.second()
    );
}

/// What every scenario of a run shares.
struct Bench<'a> {
    settings: &'a Settings,
    folder: PathBuf,
    meta: Meta,
    accounting: Accounting,
    ids: Vec<String>,
    /// Scenarios that failed (their error is in `meta.not_run`).
    failures: usize,
    /// Where the next invalidation-lag scenario starts in `ids`: each takes the users after the
    /// previous one's, so none writes a user another has just written (a service may hold back
    /// cache fills of a user for a while after a write to it).
    next_lag_id: usize,
    /// `Bearer …` for the authenticated instance, once it is started.
    authorization: Option<String>,
}

/// Runs the bench into `folder` (which exists) and returns how many scenarios failed.
pub async fn bench(settings: &Settings, folder: &Path, run_id: &str) -> Result<usize, String> {
    let meta = crate::machine::describe(settings, run_id).await;
    write_json(&folder.join("meta.json"), &meta)?;
    busiest(&folder.join("ps_before.txt")).await;
    let accounting = Accounting {
        ticks_per_second: ticks_per_second().await,
        redis: Vec::new(),
        database: None,
    };
    let mut bench = Bench {
        settings,
        folder: folder.to_path_buf(),
        meta,
        accounting,
        ids: Vec::new(),
        failures: 0,
        next_lag_id: 0,
        authorization: None,
    };
    let outcome = match &settings.external {
        None => bench.local().await,
        Some(_) => bench.external().await,
    };
    bench.meta.load_after = Some(load_average());
    busiest(&folder.join("ps_after.txt")).await;
    write_json(&folder.join("meta.json"), &bench.meta)?;
    outcome.map(|()| bench.failures)
}

impl Bench<'_> {
    /// A stack that is already running (`BENCH_URL`): only what can be measured from outside.
    async fn external(&mut self) -> Result<(), String> {
        let settings = self.settings;
        let external = settings.external.clone().expect("external mode has BENCH_URL");
        log(&format!(
            "collecting ids from {} (creating up to {} users if it has fewer)",
            external.url, settings.hot_ids
        ));
        self.ids = ids_through_api(&external.url, settings.users as usize, settings.hot_ids as usize).await?;
        let pids: Vec<u32> = external.pid.into_iter().collect();
        if let Some(pid) = external.pid {
            self.meta.memory.idle_rss_kib = memory_kib(pid, "VmRSS");
        }
        for scenario in SCENARIOS.iter().filter(|scenario| settings.wants(scenario.name)) {
            let outcome = match scenario.instance {
                Instance::Main => self.load(scenario, &external.url, &pids).await,
                Instance::CacheOff => match &external.cold_url {
                    Some(cold_url) => self.load(scenario, cold_url, &[]).await,
                    None => {
                        self.not_run(
                            scenario,
                            "needs BENCH_COLD_URL, an instance with the cache off".to_owned(),
                        );
                        continue;
                    }
                },
                Instance::Bare | Instance::LocalCopies | Instance::Authenticated | Instance::Pair { .. } => {
                    self.not_run(scenario, "needs instances of its own (not with BENCH_URL)".to_owned());
                    continue;
                }
            };
            if let Err(error) = outcome {
                self.failed(scenario, error);
            }
        }
        if let Some(pid) = external.pid {
            self.meta.memory.peak_rss_kib = memory_kib(pid, "VmHWM");
        }
        Ok(())
    }

    fn port(&self, offset: u16) -> u16 {
        self.settings.port.map_or_else(free_port, |first| first + offset)
    }

    /// An instance of the binary on `port`, started once `/ready` answers 200; its stdout goes
    /// to `BENCH_SERVICE_LOG`.
    async fn start_service(&self, what: &str, env: &[(String, String)], port: u16) -> Result<Service, String> {
        log(&format!("starting the {what} instance on port {port}"));
        let launch = Launch {
            port: Some(port),
            ready_path: "/ready",
            ..Launch::new(&self.settings.binary, env.to_vec())
        };
        self.start_server(launch, &self.settings.service_log).await
    }

    /// A server of ours (an instance, or bare hyper) with the process's own environment under its
    /// settings, 20 s to become ready, and stderr added to the run's `stderr.log`.
    async fn start_server(&self, launch: Launch, stdout: &Path) -> Result<Service, String> {
        Launch {
            ready_within: Duration::from_secs(20),
            output: Some((stdout.to_owned(), self.folder.join("stderr.log"))),
            append: true,
            inherit_environment: true,
            ..launch
        }
        .start()
        .await
    }

    fn not_run(&mut self, scenario: &Scenario, reason: String) {
        log(&format!("{}: n/a, {reason}", scenario.name));
        self.meta.not_run.insert(scenario.name.to_owned(), reason);
    }

    fn failed(&mut self, scenario: &Scenario, error: String) {
        log(&format!("{}: FAILED: {error}", scenario.name));
        self.meta
            .not_run
            .insert(scenario.name.to_owned(), format!("failed: {error}"));
        self.failures += 1;
    }
}
