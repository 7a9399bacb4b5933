//! Every setting of `make bench`, in one table: its name, its default and what it means. The
//! harness reads them from the environment here and nowhere else; `scripts/bench.sh --help`
//! prints the table, and a unit test keeps docs/BENCHMARKS.md's copy of it in step.

use std::path::PathBuf;
use std::time::Duration;

/// One environment variable the bench reads.
pub struct Setting {
    pub name: &'static str,
    /// As shown to people; "—" when unset means something of its own (said in `meaning`).
    pub default: &'static str,
    pub meaning: &'static str,
}

pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "BENCH_DURATION",
        default: "10",
        meaning: "seconds per scenario and per physical limit (`3s` also works)",
    },
    Setting {
        name: "BENCH_CONNECTIONS",
        default: "64",
        meaning: "oha connections, and `redis-benchmark -c`",
    },
    Setting {
        name: "BENCH_USERS",
        default: "10000",
        meaning: "users seeded (one `INSERT … SELECT generate_series`); `get_cold` reads them all",
    },
    Setting {
        name: "BENCH_HOT_IDS",
        default: "100",
        meaning: "ids that `get_hot`, `get_hot_auth` and `get_hot_local` read",
    },
    Setting {
        name: "BENCH_PG_CLIENTS",
        default: "8",
        meaning: "pgbench clients",
    },
    Setting {
        name: "BENCH_LAG_WRITES",
        default: "1000",
        meaning: "writes per invalidation-lag scenario",
    },
    Setting {
        name: "BENCH_LOCAL_ENTRIES",
        default: "10000",
        meaning: "`CACHE_LOCAL_ENTRIES` of the instances that keep local copies",
    },
    Setting {
        name: "BENCH_SCENARIOS",
        default: "all",
        meaning: "a subset, e.g. `health get_hot` (names in the scenario table)",
    },
    Setting {
        name: "BENCH_BIN",
        default: "the musl build",
        meaning: "the service binary to run, e.g. an older build for a before/after comparison",
    },
    Setting {
        name: "BENCH_BARE_BIN",
        default: "the musl build",
        meaning: "the bare hyper ceiling (`examples/bare_hyper.rs`)",
    },
    Setting {
        name: "BENCH_LABEL",
        default: "—",
        meaning: "a word for this run (`before`, `after`), kept in its folder name and report",
    },
    Setting {
        name: "BENCH_BASELINE",
        default: "—",
        meaning: "an earlier run to compare with: its folder, or its label (the newest run with it)",
    },
    Setting {
        name: "BENCH_SKIP_BUILD",
        default: "0",
        meaning: "1: use the binaries already built",
    },
    Setting {
        name: "BENCH_PORT",
        default: "—",
        meaning: "first of seven consecutive local ports (service, cache off, bare hyper, local copies, lag A, lag B, authenticated); unset: free ports",
    },
    Setting {
        name: "BENCH_SERVICE_LOG",
        default: "/dev/null",
        meaning: "where the services' request log goes (the level stays `info`)",
    },
    Setting {
        name: "BENCH_RESULTS",
        default: "bench/results",
        meaning: "where each run's folder is made",
    },
    Setting {
        name: "BENCH_REPORT",
        default: "—",
        meaning: "print the report of this earlier run's folder again and measure nothing",
    },
    Setting {
        name: "BENCH_URL",
        default: "—",
        meaning: "benchmark this running stack instead of starting the binary",
    },
    Setting {
        name: "BENCH_COLD_URL",
        default: "—",
        meaning: "with `BENCH_URL`: an instance of the same stack with `CACHE_TTL_SECONDS=0`, for `get_cold`",
    },
    Setting {
        name: "BENCH_PID",
        default: "—",
        meaning: "with `BENCH_URL`: the service's pid on this host, for its memory and CPU",
    },
    Setting {
        name: "DB_HOST DB_PORT DB_USER DB_PASSWORD",
        default: "127.0.0.1 5432 postgres",
        meaning: "the Postgres the bench uses (its databases are its own)",
    },
    Setting {
        name: "REDIS_HOST REDIS_PORT",
        default: "—",
        meaning: "the Redis the services use; unset: a `redis-server` of the bench's own on a free port",
    },
];

/// The settings of one run, parsed.
#[derive(Clone, Debug)]
pub struct Settings {
    pub duration: Duration,
    pub connections: u32,
    pub users: u32,
    pub hot_ids: u32,
    pub pg_clients: u32,
    pub lag_writes: u32,
    pub local_entries: u32,
    /// `None`: every scenario.
    pub scenarios: Option<Vec<String>>,
    pub binary: PathBuf,
    pub bare_binary: PathBuf,
    pub label: Option<String>,
    pub baseline: Option<String>,
    pub port: Option<u16>,
    pub service_log: PathBuf,
    pub results: PathBuf,
    pub report_only: Option<PathBuf>,
    pub external: Option<External>,
    pub pg: Postgres,
    /// `None`: a `redis-server` of the bench's own.
    pub redis: Option<(String, u16)>,
}

/// A stack that is already running (`BENCH_URL`).
#[derive(Clone, Debug)]
pub struct External {
    pub url: String,
    pub cold_url: Option<String>,
    pub pid: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct Postgres {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

impl Settings {
    pub fn from_env() -> Result<Settings, String> {
        Settings::from_lookup(|name| std::env::var(name).ok().filter(|value| !value.trim().is_empty()))
    }

    /// Parses the settings from any lookup, so the parsing is testable without the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let number = |name: &str, default: u32, least: u32| -> Result<u32, String> {
            match lookup(name) {
                None => Ok(default),
                Some(text) => match text.trim().parse::<u32>() {
                    Ok(value) if value >= least => Ok(value),
                    _ => Err(format!(
                        "{name} must be a whole number of at least {least}, got {text:?}"
                    )),
                },
            }
        };
        let duration = match lookup("BENCH_DURATION") {
            None => 10,
            Some(text) => match text.trim().trim_end_matches('s').parse::<u64>() {
                Ok(seconds) if seconds >= 1 => seconds,
                _ => {
                    return Err(format!(
                        "BENCH_DURATION must be whole seconds (at least 1), got {text:?}"
                    ));
                }
            },
        };
        let port = match lookup("BENCH_PORT") {
            None => None,
            Some(text) => match text.trim().parse::<u16>() {
                Ok(port) if (1024..=65_530).contains(&port) => Some(port),
                _ => return Err(format!("BENCH_PORT must be a port from 1024 to 65530, got {text:?}")),
            },
        };
        let scenarios = lookup("BENCH_SCENARIOS").map(|text| {
            text.split([' ', ','])
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        });
        if let Some(names) = &scenarios {
            let known: Vec<&str> = crate::scenarios::SCENARIOS
                .iter()
                .map(|scenario| scenario.name)
                .collect();
            if let Some(unknown) = names.iter().find(|name| !known.contains(&name.as_str())) {
                return Err(format!(
                    "BENCH_SCENARIOS names an unknown scenario {unknown:?}; known: {}",
                    known.join(" ")
                ));
            }
        }
        let external = match lookup("BENCH_URL") {
            None => None,
            Some(url) => Some(External {
                url: url.trim().trim_end_matches('/').to_owned(),
                cold_url: lookup("BENCH_COLD_URL").map(|url| url.trim().trim_end_matches('/').to_owned()),
                pid: match lookup("BENCH_PID") {
                    None => None,
                    Some(text) => Some(
                        text.trim()
                            .parse()
                            .map_err(|_| format!("BENCH_PID must be a process id, got {text:?}"))?,
                    ),
                },
            }),
        };
        if let Some(external) = &external
            && !external.url.starts_with("http://")
        {
            return Err(format!("BENCH_URL must start with http://, got {:?}", external.url));
        }
        let redis = match lookup("REDIS_HOST") {
            None => None,
            Some(host) => Some((
                host,
                number("REDIS_PORT", 6379, 1)?
                    .try_into()
                    .map_err(|_| "REDIS_PORT is not a port")?,
            )),
        };
        let release = PathBuf::from("target").join(MUSL_TARGET).join("release");
        Ok(Settings {
            duration: Duration::from_secs(duration),
            connections: number("BENCH_CONNECTIONS", 64, 1)?,
            users: number("BENCH_USERS", 10_000, 1)?,
            hot_ids: number("BENCH_HOT_IDS", 100, 1)?,
            pg_clients: number("BENCH_PG_CLIENTS", 8, 1)?,
            lag_writes: number("BENCH_LAG_WRITES", 1_000, 1)?,
            local_entries: number("BENCH_LOCAL_ENTRIES", 10_000, 1)?,
            scenarios,
            binary: lookup("BENCH_BIN").map_or_else(|| release.join("gravity-bff"), PathBuf::from),
            bare_binary: lookup("BENCH_BARE_BIN")
                .map_or_else(|| release.join("examples").join("bare_hyper"), PathBuf::from),
            label: match lookup("BENCH_LABEL") {
                Some(label) if !label.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) => {
                    return Err(format!(
                        "BENCH_LABEL must be letters, digits, `-`, `_` or `.`, got {label:?}"
                    ));
                }
                label => label,
            },
            baseline: lookup("BENCH_BASELINE"),
            port,
            service_log: PathBuf::from(lookup("BENCH_SERVICE_LOG").unwrap_or_else(|| "/dev/null".to_owned())),
            results: PathBuf::from(lookup("BENCH_RESULTS").unwrap_or_else(|| "bench/results".to_owned())),
            report_only: lookup("BENCH_REPORT").map(PathBuf::from),
            external,
            pg: Postgres {
                host: lookup("DB_HOST").unwrap_or_else(|| "127.0.0.1".to_owned()),
                port: number("DB_PORT", 5432, 1)?
                    .try_into()
                    .map_err(|_| "DB_PORT is not a port".to_owned())?,
                user: lookup("DB_USER").unwrap_or_else(|| "postgres".to_owned()),
                password: lookup("DB_PASSWORD").unwrap_or_default(),
            },
            redis,
        })
    }

    /// Whether `BENCH_SCENARIOS` leaves this scenario in.
    pub fn wants(&self, scenario: &str) -> bool {
        self.scenarios
            .as_ref()
            .is_none_or(|names| names.iter().any(|name| name == scenario))
    }
}

/// The table printed by `scripts/bench.sh --help`.
pub fn help() -> String {
    let width = SETTINGS.iter().map(|setting| setting.name.len()).max().unwrap_or(0);
    let mut text = String::from(
        "make bench (scripts/bench.sh): load-test gravity-bff and print what it reaches against the\n\
         physical limits measured in the same run. Settings (environment), with their defaults:\n\n",
    );
    for setting in SETTINGS {
        text.push_str(&format!(
            "  {:width$}  {}  [{}]\n",
            setting.name, setting.meaning, setting.default
        ));
    }
    text.push_str("\nScenarios, in the order they run:\n\n");
    for scenario in crate::scenarios::SCENARIOS {
        text.push_str(&format!("  {:14}  {}\n", scenario.name, scenario.request));
    }
    text.push_str("\nSee docs/BENCHMARKS.md.");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        Settings::from_lookup(|name| {
            pairs
                .iter()
                .find(|(candidate, _)| candidate == name)
                .map(|(_, value)| value.clone())
        })
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let settings = parse(&[]).unwrap();
        assert_eq!(settings.duration, Duration::from_secs(10));
        assert_eq!(settings.connections, 64);
        assert_eq!(settings.users, 10_000);
        assert_eq!(settings.hot_ids, 100);
        assert_eq!(settings.pg_clients, 8);
        assert_eq!(settings.lag_writes, 1_000);
        assert_eq!(settings.local_entries, 10_000);
        assert!(settings.scenarios.is_none());
        assert!(settings.redis.is_none());
        assert_eq!(
            settings.binary,
            PathBuf::from("target/x86_64-unknown-linux-musl/release/gravity-bff")
        );
        assert_eq!((settings.pg.host.as_str(), settings.pg.port), ("127.0.0.1", 5432));
    }

    #[test]
    fn duration_accepts_a_trailing_s_and_rejects_zero() {
        assert_eq!(
            parse(&[("BENCH_DURATION", "3s")]).unwrap().duration,
            Duration::from_secs(3)
        );
        assert!(parse(&[("BENCH_DURATION", "0")]).is_err());
        assert!(parse(&[("BENCH_DURATION", "fast")]).is_err());
    }

    #[test]
    fn scenarios_subset_is_split_on_spaces_and_commas_and_checked() {
        let settings = parse(&[("BENCH_SCENARIOS", "health, get_hot  create_c1")]).unwrap();
        assert!(settings.wants("get_hot") && settings.wants("create_c1") && !settings.wants("mixed"));
        let error = parse(&[("BENCH_SCENARIOS", "health get_hotter")]).unwrap_err();
        assert!(error.contains("get_hotter"), "{error}");
    }

    #[test]
    fn a_label_is_one_plain_word() {
        assert_eq!(
            parse(&[("BENCH_LABEL", "before")]).unwrap().label.as_deref(),
            Some("before")
        );
        assert!(parse(&[("BENCH_LABEL", "../x")]).is_err());
    }

    #[test]
    fn external_mode_trims_the_trailing_slash_and_wants_http() {
        let settings = parse(&[("BENCH_URL", "http://127.0.0.1:8080/"), ("BENCH_PID", "42")]).unwrap();
        let external = settings.external.unwrap();
        assert_eq!(external.url, "http://127.0.0.1:8080");
        assert_eq!(external.pid, Some(42));
        assert!(parse(&[("BENCH_URL", "https://example.org")]).is_err());
    }

    #[test]
    fn redis_host_switches_from_an_own_redis_server_to_that_one() {
        let settings = parse(&[("REDIS_HOST", "127.0.0.1"), ("REDIS_PORT", "6380")]).unwrap();
        assert_eq!(settings.redis, Some(("127.0.0.1".to_owned(), 6380)));
    }

    /// docs/BENCHMARKS.md shows the same table to readers; this keeps the two from drifting.
    #[test]
    fn the_documented_settings_table_matches_this_one() {
        let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/BENCHMARKS.md"))
            .expect("docs/BENCHMARKS.md is readable");
        let table: Vec<&str> = docs
            .lines()
            .skip_while(|line| !line.starts_with("| setting | default |"))
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .collect();
        let documented: Vec<String> = table
            .iter()
            .map(|line| {
                line.split('|')
                    .nth(1)
                    .unwrap_or_default()
                    .replace('`', "")
                    .trim()
                    .to_owned()
            })
            .collect();
        let defined: Vec<String> = SETTINGS.iter().map(|setting| setting.name.to_owned()).collect();
        assert_eq!(
            documented, defined,
            "docs/BENCHMARKS.md's settings table is out of step with SETTINGS"
        );
        for setting in SETTINGS {
            let row = table
                .iter()
                .find(|line| line.replace('`', "").starts_with(&format!("| {}", setting.name)))
                .unwrap_or(&"");
            assert!(
                row.contains(setting.default),
                "the documented default of {} is not {:?}: {row}",
                setting.name,
                setting.default
            );
        }
    }
}
