//! The command line: what the binary is asked to do, and how a run ends.
//!
//! Parsing is pure (arguments in, `Command` out) so it is tested without spawning anything; `main`
//! carries the command out. Every way a run can fail is a `Failure`, and `Failure::exit_code` is
//! the one place that picks the exit code: 2 for an operator's mistake (a wrong invocation, a bad
//! setting), 1 for everything else. Either way the process prints one line, never a stack trace.

use std::ffi::OsStr;
use std::fmt;

use crate::config::ConfigError;
use crate::db::migrate::{MIGRATIONS, MigrateError};

/// What the binary does on this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Serve,
    /// `--health`: probe the local server, for a container HEALTHCHECK; with `--started`, healthy
    /// only once the server has been ready since it started (`/health?started`).
    Health {
        started: bool,
    },
    /// `check`: validate the settings as `serve` would, connecting to nothing.
    Check,
    Migrate(MigrateCommand),
    Version,
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrateCommand {
    /// Apply every pending migration; with `create_database`, first create `DB_NAME` if missing.
    Up {
        create_database: bool,
    },
    Down(usize),
    Status,
    /// Record a version as applied and clean, after a manual repair (`-1`: none applied).
    Force(i64),
}

/// Why a run of the binary failed.
#[derive(Debug)]
pub enum Failure {
    /// A wrong invocation; the text says what is wrong.
    Usage(String),
    /// A setting is missing or malformed.
    Config(ConfigError),
    /// The server's port could not be bound.
    Listen {
        port: u16,
        error: std::io::Error,
    },
    /// `--health`: the server did not answer 200; the text says why.
    Unhealthy(String),
    Migrate(MigrateError),
}

/// Exit code for an operator's mistake, as the contract says.
const EXIT_USAGE: u8 = 2;
const EXIT_FAILURE: u8 = 1;

const COMMANDS: &str = "\
gravity-bff: the Gravity backend-for-frontend

Usage:
  gravity-bff [serve]               run the HTTP server (settings from the environment)
  gravity-bff --health              GET http://127.0.0.1:$API_PORT/health; exit 0 if it answers 200
  gravity-bff --health --started    the same with /health?started: 200 once the server has been ready
  gravity-bff check                 check the settings as serve would, connecting to nothing; exit 0 or 2
  gravity-bff migrate [up]          apply every pending migration
  gravity-bff migrate up --create-database    the same, first creating DB_NAME when it is missing
  gravity-bff migrate down N        revert the newest N migrations
  gravity-bff migrate status        show the schema version and each migration's state
  gravity-bff migrate force V       mark version V applied and clean after a manual repair (-1: none)
  gravity-bff --version | --help";

/// What `--help` prints: the commands, then every setting with its default, range and meaning.
pub fn usage() -> String {
    format!(
        "{COMMANDS}\n\nSettings (environment; serving needs AUTH_ISSUER or AUTH_DISABLED=true; docs/API.md says more):\n{}",
        crate::config::help()
    )
}

impl Command {
    pub fn parse(arguments: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Result<Command, String> {
        let arguments: Vec<_> = arguments.into_iter().collect();
        let words = arguments.iter().map(|argument| {
            let argument = argument.as_ref();
            let not_utf8 = || format!("argument {argument:?} is not valid UTF-8; try --help");
            argument.to_str().ok_or_else(not_utf8)
        });
        match words.collect::<Result<Vec<&str>, String>>()?.as_slice() {
            [] | ["serve"] => Ok(Command::Serve),
            ["--health"] => Ok(Command::Health { started: false }),
            ["--health", "--started"] => Ok(Command::Health { started: true }),
            ["check"] => Ok(Command::Check),
            ["--version" | "-V"] => Ok(Command::Version),
            ["--help" | "-h" | "help"] => Ok(Command::Help),
            ["migrate"] | ["migrate", "up"] => Ok(Command::Migrate(MigrateCommand::Up { create_database: false })),
            ["migrate", "up", "--create-database"] => {
                Ok(Command::Migrate(MigrateCommand::Up { create_database: true }))
            }
            ["migrate", "status"] => Ok(Command::Migrate(MigrateCommand::Status)),
            ["migrate", "down", steps] => match steps.parse::<usize>() {
                Ok(steps) if steps > 0 => Ok(Command::Migrate(MigrateCommand::Down(steps))),
                _ => Err(format!("migrate down takes a positive count, got {steps:?}")),
            },
            ["migrate", "down"] => Err("migrate down needs a count, such as `migrate down 1`".into()),
            ["migrate", "force", version] => match version.parse::<i64>() {
                Ok(version) if version == -1 || MIGRATIONS.iter().any(|known| known.version == version) => {
                    Ok(Command::Migrate(MigrateCommand::Force(version)))
                }
                _ => {
                    let known = MIGRATIONS
                        .iter()
                        .map(|known| format!(", {}", known.version))
                        .collect::<String>();
                    Err(format!(
                        "migrate force takes a version this binary has (-1{known}), got {version:?}"
                    ))
                }
            },
            ["migrate", "force"] => Err("migrate force needs a version, such as `migrate force 1` (-1: none)".into()),
            ["migrate", "up", "--create-database", extra, ..]
            | ["migrate", "up" | "status", extra, ..]
            | ["migrate", "down" | "force", _, extra, ..] => Err(format!("unexpected argument {extra:?}; try --help")),
            ["migrate", other, ..] => Err(format!(
                "unknown migrate command {other:?}; try up, down N, force V, status"
            )),
            [other, ..] => Err(format!("unknown argument {other:?}; try --help")),
        }
    }
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) | Failure::Config(_) | Failure::Migrate(MigrateError::Config(_)) => EXIT_USAGE,
            Failure::Listen { .. } | Failure::Unhealthy(_) | Failure::Migrate(_) => EXIT_FAILURE,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(problem) => formatter.write_str(problem),
            Failure::Config(error) => write!(formatter, "{error}"),
            Failure::Listen { port, error } if error.kind() == std::io::ErrorKind::AddrInUse => write!(
                formatter,
                "cannot listen on port {port} (API_PORT): another process holds it; stop that process or \
                 set API_PORT to a free port"
            ),
            Failure::Listen { port, error } => write!(formatter, "cannot listen on port {port} (API_PORT): {error}"),
            Failure::Unhealthy(why) => write!(formatter, "unhealthy: {why}"),
            Failure::Migrate(error) => write!(formatter, "migrate: {error}"),
        }
    }
}

/// `?` turns each kind of failure into a `Failure`.
macro_rules! failure_from {
    ($($variant:ident($error:ty)),*) => {$(
        impl From<$error> for Failure {
            fn from(error: $error) -> Failure {
                Failure::$variant(error)
            }
        }
    )*};
}

failure_from!(Config(ConfigError), Migrate(MigrateError));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocations_parse_as_the_contract_lists_them() {
        let up = |create_database| Command::Migrate(MigrateCommand::Up { create_database });
        let cases: [(&[&str], Command); 12] = [
            (&[], Command::Serve),
            (&["serve"], Command::Serve),
            (&["--health"], Command::Health { started: false }),
            (&["--health", "--started"], Command::Health { started: true }),
            (&["check"], Command::Check),
            (&["--version"], Command::Version),
            (&["--help"], Command::Help),
            (&["migrate"], up(false)),
            (&["migrate", "up"], up(false)),
            (&["migrate", "up", "--create-database"], up(true)),
            (&["migrate", "down", "2"], Command::Migrate(MigrateCommand::Down(2))),
            (&["migrate", "status"], Command::Migrate(MigrateCommand::Status)),
        ];
        for (arguments, expected) in cases {
            assert_eq!(Command::parse(arguments.iter()).unwrap(), expected, "{arguments:?}");
        }
    }

    #[test]
    fn operator_mistakes_exit_2_and_other_failures_exit_1() {
        let usage = Failure::Usage("x".into());
        let setting = Failure::Config(ConfigError::new("DB_PORT", "is wrong"));
        let unhealthy = Failure::Unhealthy("no answer".into());
        assert_eq!(
            (usage.exit_code(), setting.exit_code(), unhealthy.exit_code()),
            (2, 2, 1)
        );
    }

    #[test]
    fn a_non_utf8_argument_is_a_usage_error() {
        use std::os::unix::ffi::OsStrExt;
        let argument = OsStr::from_bytes(b"\xff");
        assert!(Command::parse([argument]).is_err());
    }

    #[test]
    fn wrong_invocations_are_usage_errors() {
        let cases: [(&[&str], &str); 13] = [
            (&["serve", "now"], "unknown argument"),
            (&["--port", "80"], "unknown argument"),
            (&["migrate", "down"], "needs a count"),
            (&["migrate", "down", "0"], "a positive count"),
            (&["migrate", "down", "x"], "a positive count"),
            (&["migrate", "down", "1", "2", "3"], "unexpected argument \"2\""),
            (
                &["migrate", "up", "now", "--create-database"],
                "unexpected argument \"now\"",
            ),
            (
                &["migrate", "up", "--create-database", "x"],
                "unexpected argument \"x\"",
            ),
            (&["migrate", "status", "x"], "unexpected argument \"x\""),
            (&["migrate", "sideways"], "try up, down N, force V, status"),
            (&["migrate", "force"], "needs a version"),
            (&["migrate", "force", "-2"], "a version this binary has (-1, 1, "),
            (&["migrate", "force", "9999"], "a version this binary has (-1, 1, "),
        ];
        for (arguments, told) in cases {
            let error = Command::parse(arguments.iter()).unwrap_err();
            assert!(error.contains(told), "{arguments:?}: {error}");
        }
    }
}
