//! The command line: what the binary is asked to do.
//!
//! Parsing is pure (arguments in, `Command` out) so it is tested without spawning anything; `main`
//! carries the command out. A wrong invocation is a usage error: exit code 2 and one line.

use std::fmt;

/// What the binary does on this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Serve,
    /// `--health`: probe the local server, for a container HEALTHCHECK.
    Health,
    Migrate(MigrateCommand),
    Version,
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrateCommand {
    Up,
    Down(usize),
    Status,
    /// Record a version as applied and clean, after a manual repair (`-1`: none applied).
    Force(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

pub const USAGE: &str = "\
gravity-bff: the Gravity backend-for-frontend

Usage:
  gravity-bff [serve]               run the HTTP server (settings from the environment)
  gravity-bff --health              GET http://127.0.0.1:$API_PORT/health; exit 0 if it answers 200
  gravity-bff migrate [up]          apply every pending migration
  gravity-bff migrate down N        revert the newest N migrations
  gravity-bff migrate status        show the schema version and each migration's state
  gravity-bff migrate force V       mark version V applied and clean after a manual repair (-1: none)
  gravity-bff --version | --help

Settings (environment): API_PORT, DB_HOST, DB_PORT, DB_USER, DB_PASSWORD, DB_NAME, DB_SSL_MODE,
DB_SSL_ROOT_CERT, DB_POOL_SIZE, REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, CACHE_TTL_SECONDS,
CACHE_KEY_PREFIX, LOG_LEVEL, SHUTDOWN_GRACE_SECONDS. See README.md.";

impl Command {
    pub fn parse<I, S>(arguments: I) -> Result<Command, UsageError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let arguments: Vec<S> = arguments.into_iter().collect();
        let words: Vec<&str> = arguments.iter().map(AsRef::as_ref).collect();
        match words.as_slice() {
            [] | ["serve"] => Ok(Command::Serve),
            ["--health"] => Ok(Command::Health),
            ["--version" | "-V"] => Ok(Command::Version),
            ["--help" | "-h" | "help"] => Ok(Command::Help),
            ["migrate"] | ["migrate", "up"] => Ok(Command::Migrate(MigrateCommand::Up)),
            ["migrate", "status"] => Ok(Command::Migrate(MigrateCommand::Status)),
            ["migrate", "down", steps] => match steps.parse::<usize>() {
                Ok(steps) if steps > 0 => Ok(Command::Migrate(MigrateCommand::Down(steps))),
                _ => Err(UsageError(format!(
                    "migrate down takes a positive count, got {steps:?}"
                ))),
            },
            ["migrate", "down"] => Err(UsageError(
                "migrate down needs a count, such as `migrate down 1`".into(),
            )),
            ["migrate", "force", version] => match version.parse::<i64>() {
                Ok(version) if version >= -1 => Ok(Command::Migrate(MigrateCommand::Force(version))),
                _ => Err(UsageError(format!(
                    "migrate force takes a version (or -1), got {version:?}"
                ))),
            },
            ["migrate", other, ..] => Err(UsageError(format!(
                "unknown migrate command {other:?}; try up, down N, status"
            ))),
            [other, ..] => Err(UsageError(format!("unknown argument {other:?}; try --help"))),
        }
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocations_parse_as_the_contract_lists_them() {
        let cases: [(&[&str], Command); 9] = [
            (&[], Command::Serve),
            (&["serve"], Command::Serve),
            (&["--health"], Command::Health),
            (&["--version"], Command::Version),
            (&["--help"], Command::Help),
            (&["migrate"], Command::Migrate(MigrateCommand::Up)),
            (&["migrate", "up"], Command::Migrate(MigrateCommand::Up)),
            (&["migrate", "down", "2"], Command::Migrate(MigrateCommand::Down(2))),
            (&["migrate", "status"], Command::Migrate(MigrateCommand::Status)),
        ];
        for (arguments, expected) in cases {
            assert_eq!(Command::parse(arguments.iter()).unwrap(), expected, "{arguments:?}");
        }
    }

    #[test]
    fn wrong_invocations_are_usage_errors() {
        let cases: [&[&str]; 7] = [
            &["serve", "now"],
            &["--port", "80"],
            &["migrate", "down"],
            &["migrate", "down", "0"],
            &["migrate", "down", "x"],
            &["migrate", "sideways"],
            &["migrate", "force", "-2"],
        ];
        for arguments in cases {
            assert!(Command::parse(arguments.iter()).is_err(), "{arguments:?}");
        }
    }
}
