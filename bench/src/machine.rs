//! The machine a run happened on, as its report records it, and the processes whose CPU time is
//! counted per scenario: the service's, Redis's, and Postgres's backends of the bench database
//! plus its WAL writer, checkpointer and background writer.

use std::path::Path;

use crate::proc_stat::{CpuSample, CpuUse, read_group, read_own_and_machine};
use crate::processes::output_of;
use crate::results::Meta;
use crate::settings::Settings;

/// The run's id: its UTC start time, then its label, so folders sort by age.
pub fn run_id(label: Option<&str>) -> String {
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    match label {
        Some(label) => format!("{stamp}-{label}"),
        None => stamp,
    }
}

fn date_utc() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute()
    )
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn first_line_with(path: &str, prefix: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()?.lines().find_map(|line| {
        Some(
            line.strip_prefix(prefix)?
                .trim_start_matches([' ', '\t', ':'])
                .trim()
                .to_owned(),
        )
    })
}

/// The machine and the settings; memory, `not_run` and the end figures are filled in later.
pub async fn describe(settings: &Settings, run_id: &str) -> Meta {
    let oha = output_of("oha", &["--version"]).await.unwrap_or_default();
    let git = output_of("git", &["rev-parse", "--short", "HEAD"]).await.map(|head| {
        let head = head.trim().to_owned();
        let clean = std::process::Command::new("git")
            .args(["diff", "--quiet", "HEAD", "--", "src", "Cargo.toml", "Cargo.lock"])
            .status()
            .is_ok_and(|status| status.success());
        if clean { head } else { format!("{head} (src modified)") }
    });
    let local = settings.external.is_none();
    Meta {
        run_id: run_id.to_owned(),
        label: settings.label.clone(),
        date: date_utc(),
        nproc: std::thread::available_parallelism().map_or(0, |count| count.get() as u32),
        cpu: first_line_with("/proc/cpuinfo", "model name").unwrap_or_default(),
        mem_total_kib: first_line_with("/proc/meminfo", "MemTotal")
            .and_then(|value| value.trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        load_before: load_average(),
        load_after: None,
        oha: oha.lines().next().unwrap_or("oha").trim().to_owned(),
        duration_s: settings.duration.as_secs(),
        connections: settings.connections,
        users: settings.users,
        hot_ids: settings.hot_ids,
        pg_clients: settings.pg_clients,
        lag_writes: settings.lag_writes,
        local_entries: settings.local_entries,
        mode: match &settings.external {
            None => "local".to_owned(),
            Some(external) => format!("external {}", external.url),
        },
        binary: local.then(|| settings.binary.display().to_string()),
        binary_bytes: local
            .then(|| std::fs::metadata(&settings.binary).ok().map(|metadata| metadata.len()))
            .flatten(),
        git: if local {
            match output_of(&settings.binary, &["--version"]).await {
                Some(version) => Some(format!(
                    "{}; tree {}",
                    version.trim(),
                    git.unwrap_or_else(|| "unknown".to_owned())
                )),
                None => git,
            }
        } else {
            git
        },
        ..Meta::default()
    }
}

/// The busiest processes over one second (top's second sample; ps's %CPU is a lifetime average).
pub async fn busiest(output: &Path) {
    let text = match output_of("top", &["-b", "-n", "2", "-d", "1"]).await {
        Some(text) => {
            let second_sample = text.split("\ntop -").nth(1).unwrap_or(&text).to_owned();
            second_sample.lines().skip(6).take(12).collect::<Vec<_>>().join("\n")
        }
        None => output_of("ps", &["-eo", "pcpu,rss,comm", "--sort=-pcpu"])
            .await
            .unwrap_or_default()
            .lines()
            .take(12)
            .collect::<Vec<_>>()
            .join("\n"),
    };
    let _ = std::fs::write(output, text + "\n");
}

/// CPU ticks per second (`getconf CLK_TCK`; 100 on Linux in practice).
pub async fn ticks_per_second() -> u64 {
    output_of("getconf", &["CLK_TCK"])
        .await
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

/// The processes whose CPU is counted over one scenario, and how to find Postgres's.
pub struct Accounting {
    pub ticks_per_second: u64,
    pub redis: Vec<u32>,
    /// The database whose backends count as Postgres's work; `None` when Postgres is not ours
    /// to look at (a stack that is already running).
    pub database: Option<(tokio_postgres::Client, String)>,
}

/// A scenario being measured: the first sample and the pids it is about.
pub struct Measuring {
    start: CpuSample,
    service: Vec<u32>,
    postgres: Vec<u32>,
    clock: std::time::Instant,
}

impl Accounting {
    pub async fn start(&self, service: &[u32]) -> Measuring {
        let postgres = match &self.database {
            None => Vec::new(),
            Some((client, database)) => client
                .query(
                    "SELECT pid FROM pg_stat_activity \
                     WHERE (datname = $1 AND pid <> pg_backend_pid()) \
                        OR backend_type IN ('walwriter', 'checkpointer', 'background writer')",
                    &[database],
                )
                .await
                .map(|rows| rows.iter().map(|row| row.get::<_, i32>(0) as u32).collect())
                .unwrap_or_default(),
        };
        let clock = std::time::Instant::now();
        let start = self.sample(service, &postgres, 0.0);
        Measuring {
            start,
            service: service.to_vec(),
            postgres,
            clock,
        }
    }

    pub fn stop(&self, measuring: Measuring) -> CpuUse {
        let wall_ms = measuring.clock.elapsed().as_secs_f64() * 1000.0;
        let end = self.sample(&measuring.service, &measuring.postgres, wall_ms);
        CpuUse::between(&measuring.start, &end, self.ticks_per_second)
    }

    fn sample(&self, service: &[u32], postgres: &[u32], wall_ms: f64) -> CpuSample {
        let (children, machine_busy, machine_idle) = read_own_and_machine();
        CpuSample {
            wall_ms,
            service: read_group(service),
            redis: read_group(&self.redis),
            postgres: read_group(postgres),
            children,
            machine_busy,
            machine_idle,
        }
    }
}

/// `redis_version` and `process_id` from `INFO server`.
pub fn redis_version_and_pid(url: &str) -> (Option<String>, Option<u32>) {
    let info: Option<String> = redis::Client::open(url)
        .and_then(|client| client.get_connection())
        .and_then(|mut connection| redis::cmd("INFO").arg("server").query(&mut connection))
        .ok();
    let field = |name: &str| {
        info.as_deref()?
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(|value| value.trim().to_owned())
    };
    (
        field("redis_version"),
        field("process_id").and_then(|pid| pid.parse().ok()),
    )
}
