//! Settings from the environment, read once at start-up.
//!
//! Every setting is declared once, in `table`, and only those are read (`own_vars_from_env`).
//! Each becomes a typed value, so a bad setting is one line naming the variable and the rule it
//! breaks, and a secret is never echoed back. Who may call the service (authentication and CORS)
//! is `access`.

mod access;
mod table;

use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::http::cors::AllowedOrigin;
pub use crate::telemetry::log::LogLevel;
pub use access::{Authentication, BearerSettings, KeySource};
use table::Vars;
pub use table::{Rule, SETTINGS, Setting, help};

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
    /// `KEEP_ALIVE_SECONDS`: how long an idle keep-alive connection waits for its next request.
    pub keep_alive: Duration,
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
    /// `None` when `REDIS_HOST` is empty: the service runs uncached. With `CACHE_TTL_SECONDS` 0
    /// it reads and stores nothing in Redis, but fences its writes there.
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

/// A password file holds one line; anything this large is the wrong file.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;
/// The prefix goes verbatim into Redis keys.
const MAX_KEY_PREFIX_LEN: usize = 64;
/// Linux's own ceiling on descriptors per process (`fs.nr_open`): more connections than this
/// cannot be open, so a larger value is a typo.
const MAX_MAX_CONNECTIONS: u64 = 1 << 20;

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(own_vars_from_env()?)
    }

    /// Reads settings from any set of variables (the environment, or a test's own list).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        Vars::read(vars)?.into_config()
    }
}

/// The port `--health` probes: `API_PORT` alone, so that the probe never fails because a database
/// setting is absent. `0` cannot be probed.
pub fn probe_port_from_env() -> Result<u16, ConfigError> {
    let port = Vars::read(own_vars_from_env()?.into_iter().filter(|(name, _)| name == "API_PORT"))?.port("API_PORT")?;
    (port != 0)
        .then_some(port)
        .ok_or_else(|| ConfigError::new("API_PORT", "is 0 (any free port), which cannot be probed"))
}

/// The service's own variables from the process environment. `std::env::vars` would panic on any
/// variable that is not UTF-8, ours or not; here only a value of ours that is not UTF-8 is an error.
fn own_vars_from_env() -> Result<Vec<(String, String)>, ConfigError> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.to_str().and_then(table::find)?.name, value)))
        .map(|(name, value)| match value.into_string() {
            Ok(value) => Ok((name.to_owned(), value)),
            Err(_) => Err(ConfigError::new(name, "is not valid UTF-8")),
        })
        .collect()
}

impl Vars {
    fn into_config(self) -> Result<Config, ConfigError> {
        let database = DatabaseSettings {
            host: self.required("DB_HOST")?,
            port: self.port("DB_PORT")?,
            user: self.required("DB_USER")?,
            password: Secret(self.secret("DB_PASSWORD", "DB_PASSWORD_FILE")?),
            name: self.required("DB_NAME")?,
            ssl_mode: match self.one_of("DB_SSL_MODE")? {
                "require" => SslMode::Require,
                "verify-full" => SslMode::VerifyFull,
                _ => SslMode::Disable,
            },
            ssl_root_cert: self.text("DB_SSL_ROOT_CERT").map(PathBuf::from),
            pool_size: self.number("DB_POOL_SIZE")? as usize,
            extra_write_connections: self.number("DB_EXTRA_WRITE_CONNECTIONS")? as usize,
        };
        // libpq's `require` with a root certificate checks the CA; ours checks only under verify-full.
        if database.ssl_root_cert.is_some() && database.ssl_mode != SslMode::VerifyFull {
            let problem = "is read only with DB_SSL_MODE=verify-full, which checks the certificate against it; set that \
                           mode too, or unset it";
            return Err(ConfigError::new("DB_SSL_ROOT_CERT", problem.to_owned()));
        }
        let ttl_seconds = self.number("CACHE_TTL_SECONDS")?;
        let redis_port = self.port("REDIS_PORT")?;
        let redis_password = self.secret("REDIS_PASSWORD", "REDIS_PASSWORD_FILE")?;
        let cache = CacheSettings {
            redis: self.text("REDIS_HOST").map(|host| RedisSettings {
                host,
                port: redis_port,
                password: Some(redis_password).filter(|text| !text.trim().is_empty()).map(Secret),
            }),
            ttl: Duration::from_secs(ttl_seconds),
            key_prefix: self.key_prefix()?,
            local_entries: self.number("CACHE_LOCAL_ENTRIES")? as usize,
            call_timeout: OPERATION_TIMEOUT,
        };
        Ok(Config {
            api_port: self.port("API_PORT")?,
            database,
            cache,
            log_level: match self.one_of("LOG_LEVEL")? {
                "debug" => LogLevel::Debug,
                "warn" => LogLevel::Warn,
                "error" => LogLevel::Error,
                _ => LogLevel::Info,
            },
            shutdown_grace: Duration::from_secs(self.number("SHUTDOWN_GRACE_SECONDS")?),
            keep_alive: Duration::from_secs(self.number("KEEP_ALIVE_SECONDS")?),
            idempotency_sweep_every: IDEMPOTENCY_SWEEP_EVERY,
            max_connections: match self.text("MAX_CONNECTIONS") {
                None => None,
                Some(text) => Some(table::within("MAX_CONNECTIONS", &text, 1, MAX_MAX_CONNECTIONS)? as usize),
            },
            authentication: access::authentication(&self)?,
            cors_allowed_origins: access::allowed_origins(&self)?,
        })
    }

    /// A secret given either as the value itself or, as the official Postgres image reads its own
    /// settings, as `NAME_FILE` (docs/API.md, `DB_PASSWORD_FILE`). Empty counts as unset.
    fn secret(&self, setting: &'static str, file_setting: &'static str) -> Result<String, ConfigError> {
        let value = self.raw(setting).filter(|text| !text.is_empty());
        match (value, self.text(file_setting)) {
            (Some(_), Some(_)) => Err(ConfigError::new(
                setting,
                format!("and {file_setting} are both set; set only one of them"),
            )),
            (value, None) => Ok(value.unwrap_or_default()),
            (None, Some(path)) => read_secret_file(file_setting, &path),
        }
    }

    /// The prefix goes verbatim into Redis keys, so it is kept to characters that need no quoting.
    fn key_prefix(&self) -> Result<String, ConfigError> {
        let text = self.text("CACHE_KEY_PREFIX").unwrap_or_else(|| "gravity".to_owned());
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
        if text.len() > MAX_KEY_PREFIX_LEN || !text.chars().all(allowed) {
            let rule = format!("must be 1 to {MAX_KEY_PREFIX_LEN} characters of letters, digits, '_', '-', '.' or ':'");
            return Err(ConfigError::new("CACHE_KEY_PREFIX", format!("{rule}, got {text:?}")));
        }
        Ok(text)
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
        let problem = format!("names {path:?}, which is over {} KiB", MAX_SECRET_FILE_BYTES / 1024);
        return Err(ConfigError::new(setting, problem));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| ConfigError::new(setting, format!("names {path:?}, which is not UTF-8 text")))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
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
        assert_eq!(config.database.pool_size, 4);
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
    fn a_root_certificate_without_verify_full_is_refused_since_it_would_check_nothing() {
        for mode in ["disable", "require"] {
            let error = config_from(&[("DB_SSL_ROOT_CERT", "/etc/ca.pem"), ("DB_SSL_MODE", mode)]).unwrap_err();
            assert_eq!(error.setting, "DB_SSL_ROOT_CERT", "{mode}");
            assert!(error.problem.contains("DB_SSL_MODE=verify-full"), "{error}");
        }
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
    fn a_zero_ttl_turns_cached_reads_off_but_keeps_redis_for_the_fences() {
        let config = config_from(&[("REDIS_HOST", "cache"), ("CACHE_TTL_SECONDS", "0")]).unwrap();
        assert!(config.cache.redis.is_some());
        assert_eq!(config.cache.ttl, Duration::ZERO);
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
