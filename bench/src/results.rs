//! A run's folder, `bench/results/<run-id>/`: what the tools wrote (oha's JSON per scenario,
//! redis-benchmark's CSV, pgbench's reports), what the harness measured beside them (CPU per
//! scenario, the invalidation lag, the machine and memory in `meta.json`), and the report made
//! from them (`summary.json`, `table.md`). Everything the report shows can be rebuilt from the
//! folder alone (`BENCH_REPORT=<folder>`), which is also how a baseline run is read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::lag::LagRecord;
use crate::limits::{LimitResult, parse_pgbench, parse_redis_benchmark};
use crate::oha::OhaResult;
use crate::proc_stat::CpuUse;
use crate::scenarios::{Limit, Load, SCENARIOS};

/// The machine, the settings and the memory figures of a run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Meta {
    pub run_id: String,
    pub label: Option<String>,
    pub date: String,
    pub nproc: u32,
    pub cpu: String,
    pub mem_total_kib: u64,
    pub kernel: String,
    pub load_before: String,
    pub load_after: Option<String>,
    pub oha: String,
    pub duration_s: u64,
    pub connections: u32,
    pub users: u32,
    pub hot_ids: u32,
    pub pg_clients: u32,
    pub lag_writes: u32,
    pub local_entries: u32,
    /// `local`, or `external <url>`.
    pub mode: String,
    pub binary: Option<String>,
    pub binary_bytes: Option<u64>,
    pub git: Option<String>,
    pub postgres: Option<String>,
    pub redis: Option<String>,
    /// How many hot ids answered `X-Cache: HIT` after warming, per warmed instance.
    pub cache_warm: BTreeMap<String, String>,
    pub memory: Memory,
    /// Scenarios that were wanted but could not run, with the reason (shown as n/a).
    pub not_run: BTreeMap<String, String>,
}

/// VmRSS / VmHWM figures in KiB.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Memory {
    /// The cached instance one second after `/ready`, before any traffic.
    pub idle_rss_kib: Option<u64>,
    /// The cached instance's VmHWM after its last scenario.
    pub peak_rss_kib: Option<u64>,
    pub end_rss_kib: Option<u64>,
    pub cold_peak_rss_kib: Option<u64>,
    pub local_peak_rss_kib: Option<u64>,
}

/// Everything read back from a run's folder.
#[derive(Clone, Debug, Default)]
pub struct Run {
    pub folder: PathBuf,
    pub meta: Meta,
    /// By scenario; `mixed` is the two runs combined, `mixed_reads`/`mixed_writes` each alone.
    pub oha: BTreeMap<String, OhaResult>,
    pub cpu: BTreeMap<String, CpuUse>,
    pub lag: BTreeMap<String, LagRecord>,
    pub limits: BTreeMap<Limit, LimitResult>,
}

pub fn oha_file(folder: &Path, name: &str) -> PathBuf {
    folder.join(format!("{name}.json"))
}

pub fn cpu_file(folder: &Path, name: &str) -> PathBuf {
    folder.join(format!("{name}.cpu.json"))
}

pub fn lag_file(folder: &Path, name: &str) -> PathBuf {
    folder.join(format!("{name}.lag.json"))
}

pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|error| error.to_string())?;
    std::fs::write(path, text + "\n").map_err(|error| format!("cannot write {}: {error}", path.display()))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, String> {
    match std::fs::read_to_string(path) {
        Err(_) => Ok(None),
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| format!("{}: {error}", path.display())),
    }
}

impl Run {
    pub fn load(folder: &Path) -> Result<Run, String> {
        let meta: Meta =
            read_json(&folder.join("meta.json"))?.ok_or_else(|| format!("{} has no meta.json", folder.display()))?;
        let mut run = Run {
            folder: folder.to_path_buf(),
            meta,
            ..Run::default()
        };
        let read_oha = |name: &str| -> Result<Option<OhaResult>, String> {
            match std::fs::read_to_string(oha_file(folder, name)) {
                Ok(text) if !text.trim().is_empty() => OhaResult::parse(&text)
                    .map(Some)
                    .map_err(|error| format!("{name}.json: {error}")),
                _ => Ok(None),
            }
        };
        for scenario in SCENARIOS {
            match scenario.load {
                Load::Oha { .. } => {
                    if let Some(result) = read_oha(scenario.name)? {
                        run.oha.insert(scenario.name.to_owned(), result);
                    }
                }
                Load::Mixed => {
                    let parts = (read_oha("mixed_reads")?, read_oha("mixed_writes")?);
                    if let (Some(reads), Some(writes)) = parts {
                        run.oha
                            .insert(scenario.name.to_owned(), OhaResult::combine(&reads, &writes));
                        run.oha.insert("mixed_reads".to_owned(), reads);
                        run.oha.insert("mixed_writes".to_owned(), writes);
                    }
                }
                Load::InvalidationLag => {
                    if let Some(record) = read_json(&lag_file(folder, scenario.name))? {
                        run.lag.insert(scenario.name.to_owned(), record);
                    }
                }
            }
            if let Some(cpu) = read_json(&cpu_file(folder, scenario.name))? {
                run.cpu.insert(scenario.name.to_owned(), cpu);
            }
        }
        for limit in Limit::ALL {
            let Ok(text) = std::fs::read_to_string(folder.join(limit.file())) else {
                continue;
            };
            let parsed = match limit {
                Limit::RedisGet => parse_redis_benchmark(&text),
                _ => parse_pgbench(&text),
            };
            if let Some(parsed) = parsed {
                run.limits.insert(limit, parsed);
            }
        }
        Ok(run)
    }
}

/// The folder `BENCH_BASELINE` names: a path to a run's folder, or a label, meaning the newest
/// run in `results` that has it.
pub fn find_baseline(results: &Path, wanted: &str) -> Result<PathBuf, String> {
    let as_path = PathBuf::from(wanted);
    if as_path.join("meta.json").exists() {
        return Ok(as_path);
    }
    if results.join(wanted).join("meta.json").exists() {
        return Ok(results.join(wanted));
    }
    let mut folders: Vec<PathBuf> = std::fs::read_dir(results)
        .map_err(|error| format!("BENCH_BASELINE: cannot read {}: {error}", results.display()))?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|folder| folder.join("meta.json").exists())
        .collect();
    // Run ids start with the UTC time, so the names sort by age.
    folders.sort();
    folders
        .into_iter()
        .rev()
        .find(|folder| {
            read_json::<Meta>(&folder.join("meta.json"))
                .ok()
                .flatten()
                .is_some_and(|meta| meta.label.as_deref() == Some(wanted))
        })
        .ok_or_else(|| {
            format!(
                "BENCH_BASELINE={wanted:?} is neither a run folder nor the label of a run in {}",
                results.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let folder = std::env::temp_dir().join(format!("gravity-bench-results-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder).unwrap();
        folder
    }

    fn write_meta(folder: &Path, label: Option<&str>) {
        let meta = Meta {
            run_id: folder.file_name().unwrap().to_string_lossy().into_owned(),
            label: label.map(str::to_owned),
            ..Meta::default()
        };
        write_json(&folder.join("meta.json"), &meta).unwrap();
    }

    #[test]
    fn a_folder_reads_back_into_a_run_with_mixed_combined() {
        let folder = scratch("load");
        write_meta(&folder, Some("after"));
        let oha = |rps: f64| {
            format!(
                r#"{{"summary":{{"requestsPerSec":{rps}}},"latencyPercentiles":{{"p50":0.001,"p99":0.002,"p99.9":0.003}},"statusCodeDistribution":{{"200":10}}}}"#
            )
        };
        std::fs::write(oha_file(&folder, "health"), oha(1000.0)).unwrap();
        std::fs::write(oha_file(&folder, "mixed_reads"), oha(900.0)).unwrap();
        std::fs::write(oha_file(&folder, "mixed_writes"), oha(100.0)).unwrap();
        std::fs::write(
            folder.join("limit_pgbench_insert.txt"),
            "tps = 11721.5 (without initial connection time)\n",
        )
        .unwrap();
        write_json(
            &lag_file(&folder, "lag_redis"),
            &LagRecord {
                writes: 3,
                ..LagRecord::default()
            },
        )
        .unwrap();
        write_json(
            &cpu_file(&folder, "health"),
            &CpuUse {
                client_ms: 5.0,
                ..CpuUse::default()
            },
        )
        .unwrap();

        let run = Run::load(&folder).unwrap();
        assert_eq!(run.meta.label.as_deref(), Some("after"));
        assert_eq!(run.oha["health"].requests_per_second, 1000.0);
        assert_eq!(run.oha["mixed"].requests_per_second, 1000.0);
        assert_eq!(run.oha["mixed"].responses, 20);
        assert_eq!(run.limits[&Limit::PgbenchInsert].per_second, 11721.5);
        assert_eq!(run.lag["lag_redis"].writes, 3);
        assert_eq!(run.cpu["health"].client_ms, 5.0);
        assert!(!run.oha.contains_key("get_hot"));
        let _ = std::fs::remove_dir_all(&folder);
    }

    #[test]
    fn a_baseline_is_a_folder_or_the_newest_run_with_that_label() {
        let results = scratch("baseline");
        for (name, label) in [
            ("20260101T000000Z-before", "before"),
            ("20260102T000000Z-before", "before"),
            ("20260103T000000Z-after", "after"),
        ] {
            std::fs::create_dir_all(results.join(name)).unwrap();
            write_meta(&results.join(name), Some(label));
        }
        assert_eq!(
            find_baseline(&results, "before").unwrap(),
            results.join("20260102T000000Z-before")
        );
        assert_eq!(
            find_baseline(&results, "20260101T000000Z-before").unwrap(),
            results.join("20260101T000000Z-before")
        );
        assert!(find_baseline(&results, "during").is_err());
        let _ = std::fs::remove_dir_all(&results);
    }
}
