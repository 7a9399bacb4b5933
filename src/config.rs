//! Settings from the environment, read once at start-up.
//!
//! The names are the contract's (docs/API.md): the seed's `.env.example` names plus the pool,
//! cache, log and shutdown settings. envy reads every variable as an optional string and this
//! module turns each into a typed value, so that a bad setting is reported as one line naming the
//! variable and the rule it breaks, and a secret's value is never echoed back. Only the service's
//! own names are read at all: an unrelated variable, even one that is not UTF-8, is never looked at.
//! Who may call the service (authentication and CORS) is `access`.

mod access;

use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use crate::http::cors::AllowedOrigin;
pub use crate::telemetry::log::LogLevel;
pub use access::{Authentication, BearerSettings, KeySource};

/// The bound on one Redis call: Redis answers in well under a millisecond on a healthy network;
/// anything near this is sick.
pub(crate) const OPERATION_TIMEOUT: Duration = Duration::from_millis(100);
/// How often each process deletes expired Idempotency-Key records.
const IDEMPOTENCY_SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Everything the service needs to know about its surroundings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The TCP port the HTTP server listens on; `0` asks the OS for a free one (tests use it).
    pub api_port: u16,
    pub database: DatabaseSettings,
    pub cache: CacheSettings,
    pub log_level: LogLevel,
    /// How long in-flight requests may run after SIGTERM before the process exits anyway.
    pub shutdown_grace: Duration,
    /// How often expired Idempotency-Key records are deleted. Not a setting: tests shorten it.
    pub idempotency_sweep_every: Duration,
    /// Open client connections above which new ones wait in the listen backlog; `None`: derived
    /// from the descriptor limit at start-up (`server::limits`).
    pub max_connections: Option<usize>,
    /// Whether requests need a bearer token, and whose.
    pub authentication: Authentication,
    /// Origins whose pages may call the API (`CORS_ALLOWED_ORIGINS`); none: no CORS headers.
    pub cors_allowed_origins: Vec<AllowedOrigin>,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    pub name: String,
    pub ssl_mode: SslMode,
    /// PEM bundle of the CAs that `verify-full` trusts; the public web roots when absent.
    pub ssl_root_cert: Option<PathBuf>,
    /// Long-lived connections kept open; requests are pipelined over them, so a few suffice.
    pub pool_size: usize,
    /// Extra write connections a process may open at once while all of its write connections are
    /// stuck in Postgres (`db::write_pool`); 0 never opens one.
    pub extra_write_connections: usize,
}

#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// `None` when `REDIS_HOST` is empty or `CACHE_TTL_SECONDS` is 0: the service runs uncached.
    pub redis: Option<RedisSettings>,
    pub ttl: Duration,
    pub key_prefix: String,
    /// In-process copies of cached bodies, kept coherent by Redis's invalidation messages;
    /// `0` turns them off.
    pub local_entries: usize,
    /// The bound on one Redis call (`OPERATION_TIMEOUT`). Not read from the environment:
    /// tests lengthen it to hold a reply in flight for as long as a race takes to set up.
    pub call_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub host: String,
    pub port: u16,
    pub password: Option<Secret>,
}

/// How the connection to Postgres is secured, named as libpq names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS, but any certificate is accepted: protects against eavesdropping, not impersonation.
    Require,
    /// TLS with the certificate checked against trusted CAs and the host name.
    VerifyFull,
}

/// A value that must never be printed: `Debug` shows a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// A setting that is missing or malformed: the one line an operator sees before exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub setting: &'static str,
    pub problem: String,
}

/// The environment as envy sees it: every setting an optional string, typed below.
#[derive(Debug, Default, Deserialize)]
struct RawSettings {
    api_port: Option<String>,
    db_host: Option<String>,
    db_port: Option<String>,
    db_user: Option<String>,
    db_password: Option<String>,
    db_password_file: Option<String>,
    db_name: Option<String>,
    db_ssl_mode: Option<String>,
    db_ssl_root_cert: Option<String>,
    db_pool_size: Option<String>,
    db_extra_write_connections: Option<String>,
    redis_host: Option<String>,
    redis_port: Option<String>,
    redis_password: Option<String>,
    redis_password_file: Option<String>,
    cache_ttl_seconds: Option<String>,
    cache_key_prefix: Option<String>,
    cache_local_entries: Option<String>,
    log_level: Option<String>,
    shutdown_grace_seconds: Option<String>,
    max_connections: Option<String>,
    auth_issuer: Option<String>,
    auth_audience: Option<String>,
    auth_jwks_url: Option<String>,
    auth_disabled: Option<String>,
    cors_allowed_origins: Option<String>,
}

const DEFAULT_API_PORT: u16 = 8080;
/// Enough for a 2-core host to keep Postgres busy; each connection is one Postgres backend.
const DEFAULT_POOL_SIZE: usize = 4;
/// One connection for reads and one for writes, at the least.
const MIN_POOL_SIZE: usize = 2;
const MAX_POOL_SIZE: usize = 64;
/// Four rows locked at once beyond the default pool's two write connections before unrelated
/// writes wait.
const DEFAULT_EXTRA_WRITE_CONNECTIONS: usize = 4;
const MAX_EXTRA_WRITE_CONNECTIONS: usize = 64;
const DEFAULT_CACHE_TTL_SECONDS: u64 = 300;
/// A week: long enough for any sane cache, short enough that a typo like 3000000000 is caught.
const MAX_CACHE_TTL_SECONDS: u64 = 7 * 24 * 3600;
const MAX_SHUTDOWN_GRACE_SECONDS: u64 = 3600;
const MAX_KEY_PREFIX_LEN: usize = 64;
/// A password file holds one line; anything this large is the wrong file.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;
/// A million copies of typical ~200-byte bodies is ~200 MiB: past that, a process is a cache
/// server, not a client with a cache.
const MAX_LOCAL_ENTRIES: usize = 1_000_000;
/// Linux's own ceiling on descriptors per process (`fs.nr_open`): more connections than this
/// cannot be open, so a larger value is a typo.
const MAX_MAX_CONNECTIONS: u64 = 1 << 20;

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(own_vars_from_env()?)
    }

    /// Reads settings from any set of variables (the environment, or a test's own list).
    pub fn from_vars<I>(vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        // Only our own names are handed to envy, so that an unrelated variable with a strange
        // value elsewhere in the environment can never stop the service from starting.
        let ours = vars.into_iter().filter(|(name, _)| is_our_setting(name));
        let raw: RawSettings = envy::from_iter(ours).map_err(|error| ConfigError {
            setting: "environment",
            problem: error.to_string(),
        })?;
        raw.into_config()
    }
}

/// The port `--health` probes: `API_PORT` alone, so that the probe never fails because a database
/// setting is absent. `0` cannot be probed.
pub fn probe_port_from_env() -> Result<u16, ConfigError> {
    let value = own_vars_from_env()?
        .into_iter()
        .find_map(|(name, value)| (name == "API_PORT").then_some(value));
    parse_port("API_PORT", value, DEFAULT_API_PORT, false)
}

/// The service's own variables from the process environment. `std::env::vars` would panic on any
/// variable that is not UTF-8, ours or not; here only a value of ours that is not UTF-8 is an error.
fn own_vars_from_env() -> Result<Vec<(String, String)>, ConfigError> {
    let mut ours = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().and_then(own_setting) else {
            continue;
        };
        let value = value
            .into_string()
            .map_err(|_| ConfigError::new(name, "is not valid UTF-8"))?;
        ours.push((name.to_owned(), value));
    }
    Ok(ours)
}

fn is_our_setting(name: &str) -> bool {
    own_setting(name).is_some()
}

/// The name as a `'static` str when it is one of the service's settings.
fn own_setting(name: &str) -> Option<&'static str> {
    const NAMES: [&str; 26] = [
        "API_PORT",
        "DB_HOST",
        "DB_PORT",
        "DB_USER",
        "DB_PASSWORD",
        "DB_PASSWORD_FILE",
        "DB_NAME",
        "DB_SSL_MODE",
        "DB_SSL_ROOT_CERT",
        "DB_POOL_SIZE",
        "DB_EXTRA_WRITE_CONNECTIONS",
        "REDIS_HOST",
        "REDIS_PORT",
        "REDIS_PASSWORD",
        "REDIS_PASSWORD_FILE",
        "CACHE_TTL_SECONDS",
        "CACHE_KEY_PREFIX",
        "CACHE_LOCAL_ENTRIES",
        "LOG_LEVEL",
        "SHUTDOWN_GRACE_SECONDS",
        "MAX_CONNECTIONS",
        "AUTH_ISSUER",
        "AUTH_AUDIENCE",
        "AUTH_JWKS_URL",
        "AUTH_DISABLED",
        "CORS_ALLOWED_ORIGINS",
    ];
    NAMES.iter().copied().find(|known| *known == name)
}

impl RawSettings {
    fn into_config(self) -> Result<Config, ConfigError> {
        let access = access::AccessVars {
            auth_issuer: self.auth_issuer,
            auth_audience: self.auth_audience,
            auth_jwks_url: self.auth_jwks_url,
            auth_disabled: self.auth_disabled,
            cors_allowed_origins: self.cors_allowed_origins,
        };
        let api_port = parse_port("API_PORT", self.api_port, DEFAULT_API_PORT, true)?;
        let database = DatabaseSettings {
            host: required("DB_HOST", self.db_host)?,
            port: parse_port("DB_PORT", self.db_port, 5432, false)?,
            user: required("DB_USER", self.db_user)?,
            password: Secret(secret_setting(
                ("DB_PASSWORD", self.db_password),
                ("DB_PASSWORD_FILE", self.db_password_file),
            )?),
            name: required("DB_NAME", self.db_name)?,
            ssl_mode: parse_ssl_mode(self.db_ssl_mode)?,
            ssl_root_cert: non_empty(self.db_ssl_root_cert).map(PathBuf::from),
            pool_size: parse_number(
                "DB_POOL_SIZE",
                self.db_pool_size,
                DEFAULT_POOL_SIZE as u64,
                MIN_POOL_SIZE as u64,
                MAX_POOL_SIZE as u64,
            )? as usize,
            extra_write_connections: parse_number(
                "DB_EXTRA_WRITE_CONNECTIONS",
                self.db_extra_write_connections,
                DEFAULT_EXTRA_WRITE_CONNECTIONS as u64,
                0,
                MAX_EXTRA_WRITE_CONNECTIONS as u64,
            )? as usize,
        };
        let ttl_seconds = parse_number(
            "CACHE_TTL_SECONDS",
            self.cache_ttl_seconds,
            DEFAULT_CACHE_TTL_SECONDS,
            0,
            MAX_CACHE_TTL_SECONDS,
        )?;
        let redis_port = parse_port("REDIS_PORT", self.redis_port, 6379, false)?;
        let redis_host = non_empty(self.redis_host);
        let redis_password = secret_setting(
            ("REDIS_PASSWORD", self.redis_password),
            ("REDIS_PASSWORD_FILE", self.redis_password_file),
        )?;
        let cache = CacheSettings {
            redis: redis_host.filter(|_| ttl_seconds > 0).map(|host| RedisSettings {
                host,
                port: redis_port,
                password: non_empty(Some(redis_password)).map(Secret),
            }),
            ttl: Duration::from_secs(ttl_seconds),
            key_prefix: parse_key_prefix(self.cache_key_prefix)?,
            local_entries: parse_number(
                "CACHE_LOCAL_ENTRIES",
                self.cache_local_entries,
                0,
                0,
                MAX_LOCAL_ENTRIES as u64,
            )? as usize,
            call_timeout: OPERATION_TIMEOUT,
        };
        Ok(Config {
            api_port,
            database,
            cache,
            log_level: parse_log_level(self.log_level)?,
            shutdown_grace: Duration::from_secs(parse_number(
                "SHUTDOWN_GRACE_SECONDS",
                self.shutdown_grace_seconds,
                10,
                0,
                MAX_SHUTDOWN_GRACE_SECONDS,
            )?),
            idempotency_sweep_every: IDEMPOTENCY_SWEEP_EVERY,
            max_connections: parse_max_connections(self.max_connections)?,
            authentication: access.authentication()?,
            cors_allowed_origins: access.allowed_origins()?,
        })
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|text| !text.trim().is_empty())
}

fn required(setting: &'static str, value: Option<String>) -> Result<String, ConfigError> {
    non_empty(value).ok_or_else(|| ConfigError::new(setting, "is required but not set"))
}

/// A secret given either as the value itself or, as the official Postgres image reads its own
/// settings, as `NAME_FILE`: the path of a file holding it (a Docker or Kubernetes secret mounted
/// as a file), trailing line breaks removed. Both at once is a mistake; empty counts as unset.
fn secret_setting(
    (setting, value): (&'static str, Option<String>),
    (file_setting, path): (&'static str, Option<String>),
) -> Result<String, ConfigError> {
    let value = value.filter(|text| !text.is_empty());
    match (value, non_empty(path)) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            setting,
            format!("and {file_setting} are both set; set only one of them"),
        )),
        (value, None) => Ok(value.unwrap_or_default()),
        (None, Some(path)) => read_secret_file(file_setting, &path),
    }
}

/// Reads at most `MAX_SECRET_FILE_BYTES`, so that a path such as /dev/zero fails instead of
/// filling memory.
fn read_secret_file(setting: &'static str, path: &str) -> Result<String, ConfigError> {
    let unreadable = |error: std::io::Error| ConfigError::new(setting, format!("cannot read {path:?}: {error}"));
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_SECRET_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        let limit = MAX_SECRET_FILE_BYTES / 1024;
        return Err(ConfigError::new(
            setting,
            format!("names {path:?}, which is over {limit} KiB"),
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| ConfigError::new(setting, format!("names {path:?}, which is not UTF-8 text")))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

fn parse_port(
    setting: &'static str,
    value: Option<String>,
    default: u16,
    zero_allowed: bool,
) -> Result<u16, ConfigError> {
    let Some(text) = non_empty(value) else {
        return Ok(default);
    };
    let lowest = if zero_allowed { 0 } else { 1 };
    match text.trim().parse::<u16>() {
        Ok(port) if port >= lowest => Ok(port),
        _ => Err(ConfigError::new(
            setting,
            format!("must be a port number from {lowest} to 65535, got {text:?}"),
        )),
    }
}

fn parse_number(
    setting: &'static str,
    value: Option<String>,
    default: u64,
    lowest: u64,
    highest: u64,
) -> Result<u64, ConfigError> {
    let Some(text) = non_empty(value) else {
        return Ok(default);
    };
    match text.trim().parse::<u64>() {
        Ok(number) if (lowest..=highest).contains(&number) => Ok(number),
        _ => Err(ConfigError::new(
            setting,
            format!("must be a whole number from {lowest} to {highest}, got {text:?}"),
        )),
    }
}

/// Absent or empty: derived from the descriptor limit at start-up.
fn parse_max_connections(value: Option<String>) -> Result<Option<usize>, ConfigError> {
    let Some(text) = non_empty(value) else {
        return Ok(None);
    };
    let number = parse_number("MAX_CONNECTIONS", Some(text), 0, 1, MAX_MAX_CONNECTIONS)?;
    Ok(Some(number as usize))
}

fn parse_ssl_mode(value: Option<String>) -> Result<SslMode, ConfigError> {
    let Some(text) = non_empty(value) else {
        return Ok(SslMode::Disable);
    };
    match text.trim() {
        "disable" => Ok(SslMode::Disable),
        "require" => Ok(SslMode::Require),
        "verify-full" => Ok(SslMode::VerifyFull),
        _ => Err(ConfigError::new(
            "DB_SSL_MODE",
            format!("must be disable, require or verify-full, got {text:?}"),
        )),
    }
}

fn parse_log_level(value: Option<String>) -> Result<LogLevel, ConfigError> {
    let Some(text) = non_empty(value) else {
        return Ok(LogLevel::Info);
    };
    match text.trim().to_ascii_lowercase().as_str() {
        "debug" | "trace" => Ok(LogLevel::Debug),
        "info" => Ok(LogLevel::Info),
        "warn" | "warning" => Ok(LogLevel::Warn),
        "error" => Ok(LogLevel::Error),
        _ => Err(ConfigError::new(
            "LOG_LEVEL",
            format!("must be debug, info, warn or error, got {text:?}"),
        )),
    }
}

/// The prefix goes verbatim into Redis keys, so it is kept to characters that need no quoting.
fn parse_key_prefix(value: Option<String>) -> Result<String, ConfigError> {
    let Some(text) = non_empty(value) else {
        return Ok("gravity".to_owned());
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if text.len() > MAX_KEY_PREFIX_LEN || !text.chars().all(allowed) {
        return Err(ConfigError::new(
            "CACHE_KEY_PREFIX",
            format!(
                "must be 1 to {MAX_KEY_PREFIX_LEN} characters of letters, digits, '_', '-', '.' or ':', got {text:?}"
            ),
        ));
    }
    Ok(text)
}

impl ConfigError {
    pub fn new(setting: &'static str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            setting,
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} {}", self.setting, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl Secret {
    /// The value itself, for the one place that must hand it to a driver.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let base = [("DB_HOST", "db"), ("DB_USER", "gravity"), ("DB_NAME", "gravity_db")];
        let mut vars: Vec<(String, String)> = base.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        vars.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_vars(vars)
    }

    #[test]
    fn defaults_follow_the_contract() {
        let config = config_from(&[]).unwrap();
        assert_eq!(config.api_port, 8080);
        assert_eq!(config.database.port, 5432);
        assert_eq!(config.database.ssl_mode, SslMode::Disable);
        assert_eq!(config.database.pool_size, DEFAULT_POOL_SIZE);
        assert_eq!(config.database.extra_write_connections, 4);
        assert_eq!(config.cache.ttl, Duration::from_secs(300));
        assert_eq!(config.cache.key_prefix, "gravity");
        assert!(config.cache.redis.is_none(), "no REDIS_HOST means no cache");
        assert_eq!(config.log_level, LogLevel::Info);
        assert_eq!(config.shutdown_grace, Duration::from_secs(10));
        assert_eq!(config.max_connections, None, "derived from the descriptor limit");
        assert!(
            matches!(config.authentication, Authentication::NotConfigured),
            "secure by default: no choice made, nothing served"
        );
        assert!(
            config.cors_allowed_origins.is_empty(),
            "no CORS headers unless origins are listed"
        );
    }

    #[test]
    fn max_connections_is_read() {
        let config = config_from(&[("MAX_CONNECTIONS", " 500 ")]).unwrap();
        assert_eq!(config.max_connections, Some(500));
        assert_eq!(config_from(&[("MAX_CONNECTIONS", "")]).unwrap().max_connections, None);
    }

    #[test]
    fn each_required_setting_is_named_when_missing() {
        for missing in ["DB_HOST", "DB_USER", "DB_NAME"] {
            let vars = [("DB_HOST", "db"), ("DB_USER", "u"), ("DB_NAME", "n")]
                .into_iter()
                .filter(|(name, _)| *name != missing)
                .map(|(k, v)| (k.to_string(), v.to_string()));
            let error = Config::from_vars(vars).unwrap_err();
            assert_eq!(error.setting, missing);
        }
    }

    #[test]
    fn malformed_settings_are_named() {
        let cases = [
            ("API_PORT", "eighty"),
            ("API_PORT", "70000"),
            ("DB_PORT", "0"),
            ("DB_SSL_MODE", "prefer-ish"),
            ("DB_POOL_SIZE", "0"),
            ("DB_POOL_SIZE", "1"),
            ("DB_POOL_SIZE", "1000"),
            ("DB_EXTRA_WRITE_CONNECTIONS", "65"),
            ("DB_EXTRA_WRITE_CONNECTIONS", "-1"),
            ("REDIS_PORT", "-1"),
            ("CACHE_TTL_SECONDS", "-5"),
            ("CACHE_KEY_PREFIX", "has space"),
            ("CACHE_LOCAL_ENTRIES", "many"),
            ("CACHE_LOCAL_ENTRIES", "2000000"),
            ("LOG_LEVEL", "loud"),
            ("SHUTDOWN_GRACE_SECONDS", "1.5"),
            ("MAX_CONNECTIONS", "0"),
            ("MAX_CONNECTIONS", "lots"),
            ("MAX_CONNECTIONS", "2000000"),
            ("AUTH_DISABLED", "maybe"),
            ("AUTH_ISSUER", "not a url"),
            ("CORS_ALLOWED_ORIGINS", "*"),
        ];
        for (setting, value) in cases {
            let error = config_from(&[(setting, value)]).unwrap_err();
            assert_eq!(error.setting, setting, "{setting}={value}");
            assert!(error.to_string().starts_with(setting));
        }
    }

    #[test]
    fn a_zero_ttl_turns_the_cache_off() {
        let config = config_from(&[("REDIS_HOST", "cache"), ("CACHE_TTL_SECONDS", "0")]).unwrap();
        assert!(config.cache.redis.is_none());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let config = config_from(&[
            ("DB_PASSWORD", "hunter2"),
            ("REDIS_HOST", "cache"),
            ("REDIS_PASSWORD", "swordfish"),
        ])
        .unwrap();
        let printed = format!("{config:?}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("swordfish"),
            "{printed}"
        );
    }

    /// A file of its own under the temporary directory, removed when dropped.
    struct SecretFile(PathBuf);

    impl SecretFile {
        fn holding(name: &str, contents: &[u8]) -> SecretFile {
            let path = std::env::temp_dir().join(format!("gravity-config-{}-{name}", std::process::id()));
            std::fs::write(&path, contents).unwrap();
            SecretFile(path)
        }

        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for SecretFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn passwords_are_read_from_files_without_their_trailing_line_break() {
        let db = SecretFile::holding("db", b"hunter2 \n");
        let redis = SecretFile::holding("redis", b"swordfish\r\n");
        let config = config_from(&[
            ("DB_PASSWORD_FILE", db.path()),
            ("REDIS_HOST", "cache"),
            ("REDIS_PASSWORD_FILE", redis.path()),
        ])
        .unwrap();
        assert_eq!(config.database.password.expose(), "hunter2 ");
        let redis = config.cache.redis.unwrap().password.unwrap();
        assert_eq!(redis.expose(), "swordfish");
    }

    #[test]
    fn a_password_and_its_file_together_are_refused_naming_both() {
        let file = SecretFile::holding("both", b"x");
        for (setting, file_setting) in [
            ("DB_PASSWORD", "DB_PASSWORD_FILE"),
            ("REDIS_PASSWORD", "REDIS_PASSWORD_FILE"),
        ] {
            let error = config_from(&[(setting, "x"), (file_setting, file.path())]).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("{setting} and {file_setting} are both set; set only one of them")
            );
        }
        // Empty counts as unset, as compose's .env leaves DB_PASSWORD= beside a file.
        let config = config_from(&[("DB_PASSWORD", ""), ("DB_PASSWORD_FILE", file.path())]).unwrap();
        assert_eq!(config.database.password.expose(), "x");
    }

    #[test]
    fn an_unusable_password_file_is_named_with_its_path() {
        let missing = "/nonexistent/gravity/db_password";
        let binary = SecretFile::holding("binary", &[0xff, 0xfe]);
        let huge = SecretFile::holding("huge", &vec![b'x'; 64 * 1024 + 1]);
        for path in [missing, binary.path(), huge.path(), "/dev/zero"] {
            let error = config_from(&[("DB_PASSWORD_FILE", path)]).unwrap_err();
            assert_eq!(error.setting, "DB_PASSWORD_FILE", "{path}");
            assert!(error.to_string().contains(&format!("{path:?}")), "{error}");
        }
        let error = config_from(&[("DB_PASSWORD_FILE", missing)]).unwrap_err();
        assert!(error.problem.contains("No such file"), "{error}");
    }

    #[test]
    fn ssl_modes_are_read() {
        assert_eq!(
            config_from(&[("DB_SSL_MODE", "require")]).unwrap().database.ssl_mode,
            SslMode::Require
        );
        assert_eq!(
            config_from(&[("DB_SSL_MODE", "verify-full")])
                .unwrap()
                .database
                .ssl_mode,
            SslMode::VerifyFull
        );
    }
}
