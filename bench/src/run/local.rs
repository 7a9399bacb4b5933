//! A run on this host: a Redis, a database and service instances of the run's own.

use std::path::Path;
use std::time::Duration;

use super::{Bench, log};
use crate::data::SeededDatabase;
use crate::machine::redis_version_and_pid;
use crate::proc_stat::memory_kib;
use crate::processes::supports_setting;
use crate::scenarios::{AUTH_SETTING, Instance, LOCAL_ENTRIES_SETTING, SCENARIOS, Scenario};
use crate::support::issuer::{AUDIENCE, Algorithm, ISSUER, SigningKey, claims, jwks, now, with};
use crate::support::redis_server::OwnRedis;
use crate::support::service::{Launch, Service};
use crate::support::services::Services;

/// How long an instance has to drain its connections after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long the authenticated instance's token is valid: longer than any run.
const TOKEN_LIFETIME_SECONDS: u64 = 24 * 3600;

/// What the instances of a local run share: where Postgres and Redis are, the database (whose
/// name is also the Redis key prefix), and which of the settings scenarios need the binary has.
struct Local {
    services: Services,
    database: String,
    /// Of `LOCAL_ENTRIES_SETTING` and `AUTH_SETTING`, those the binary's `--help` names.
    supported_settings: Vec<&'static str>,
    local_entries: u32,
    /// Whether Redis is the bench's own `redis-server`.
    own_redis: bool,
    /// The cached instance, when a wanted scenario uses it.
    main: Option<Service>,
}

impl Local {
    /// An instance's environment: the process's own (so `DB_POOL_SIZE=16 make bench` works), then
    /// the run's settings (cache on for 300 s, as shipped), then `extra`.
    /// `local_copies` sets `CACHE_LOCAL_ENTRIES` (on or 0) when the binary has it.
    fn env(&self, port: u16, local_copies: Option<bool>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = self.services.vars(&self.database, &self.database);
        let mut set = |name: &str, value: String| {
            env.retain(|(existing, _)| existing != name);
            env.push((name.to_owned(), value));
        };
        set("API_PORT", port.to_string());
        set("LOG_LEVEL", "info".to_owned());
        set("CACHE_TTL_SECONDS", "300".to_owned());
        if self.own_redis {
            // The bench's own redis-server has no password, whatever the shell says.
            set("REDIS_PASSWORD", String::new());
        }
        match local_copies {
            Some(on) if self.supports(LOCAL_ENTRIES_SETTING) => set(
                LOCAL_ENTRIES_SETTING,
                if on { self.local_entries } else { 0 }.to_string(),
            ),
            _ => {}
        }
        for (name, value) in extra {
            set(name, (*value).to_owned());
        }
        env
    }

    fn supports(&self, setting: &str) -> bool {
        self.supported_settings.contains(&setting)
    }
}

impl Bench<'_> {
    pub(super) async fn local(&mut self) -> Result<(), String> {
        let settings = self.settings;
        let own_redis = settings.redis.is_none().then(OwnRedis::start);
        let (redis_host, redis_port) = match (&settings.redis, &own_redis) {
            (Some((host, port)), _) => (host.clone(), *port),
            (None, Some(own)) => ("127.0.0.1".to_owned(), own.port),
            (None, None) => unreachable!("an own Redis is started when none is named"),
        };
        let services = Services {
            pg_host: settings.pg.host.clone(),
            pg_port: settings.pg.port,
            pg_user: settings.pg.user.clone(),
            pg_password: settings.pg.password.clone(),
            redis_host,
            redis_port,
        };
        self.describe_services(&services, own_redis.is_some()).await;

        log(&format!(
            "creating a database, migrating it with the binary, seeding {} users",
            settings.users
        ));
        let database = SeededDatabase::create(&services, "bench", &settings.binary, settings.users).await?;
        self.ids = database.ids.clone();
        let admin = services.connect("postgres").await;
        self.accounting.database = Some((admin, database.name.clone()));

        self.limits(&services).await?;

        let mut supported_settings = Vec::new();
        for setting in [LOCAL_ENTRIES_SETTING, AUTH_SETTING] {
            if supports_setting(&settings.binary, setting).await {
                supported_settings.push(setting);
            }
        }
        let mut local = Local {
            supported_settings,
            services,
            database: database.name.clone(),
            local_entries: settings.local_entries,
            own_redis: own_redis.is_some(),
            main: None,
        };
        let wanted: Vec<&Scenario> = SCENARIOS
            .iter()
            .filter(|scenario| settings.wants(scenario.name))
            .collect();
        if wanted.iter().any(|scenario| scenario.instance == Instance::Main) {
            let port = self.port(0);
            let main = self
                .start_service("cached", &local.env(port, Some(false), &[]), port)
                .await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.meta.memory.idle_rss_kib = memory_kib(main.pid(), "VmRSS");
            local.main = Some(main);
        }
        for scenario in wanted {
            match scenario.needs_setting {
                Some(setting) if !local.supports(setting) => {
                    self.not_run(scenario, format!("the binary has no {setting} (not in its --help)"));
                }
                _ => {
                    if let Err(error) = self.local_scenario(scenario, &local).await {
                        self.failed(scenario, error);
                    }
                }
            }
        }
        if let Some(main) = local.main.take() {
            self.meta.memory.end_rss_kib = memory_kib(main.pid(), "VmRSS");
            self.meta.memory.peak_rss_kib = memory_kib(main.pid(), "VmHWM");
            main.terminate(STOP_GRACE).await;
        }
        log("cleaning up: the database, its Redis keys and every process of the run");
        drop(database);
        drop(own_redis);
        Ok(())
    }

    /// Redis's version and pid (its CPU is counted), and Postgres's version.
    async fn describe_services(&mut self, services: &Services, own_redis: bool) {
        let (redis_version, redis_pid) = redis_version_and_pid(&services.redis_url());
        self.meta.redis = Some(format!(
            "{} on {}:{}{}",
            redis_version.unwrap_or_else(|| "?".to_owned()),
            services.redis_host,
            services.redis_port,
            if own_redis {
                " (the bench's own redis-server)"
            } else {
                ""
            }
        ));
        self.accounting.redis = redis_pid
            .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
            .into_iter()
            .collect();
        self.meta.postgres = services
            .connect("postgres")
            .await
            .query_one("SHOW server_version", &[])
            .await
            .ok()
            .map(|row| row.get(0));
    }

    /// One scenario against the instance it names, started for it when it is not the cached one.
    async fn local_scenario(&mut self, scenario: &Scenario, local: &Local) -> Result<(), String> {
        match scenario.instance {
            Instance::Main => {
                let main = local
                    .main
                    .as_ref()
                    .expect("the cached instance runs when a scenario needs it");
                self.load(scenario, &main.url(), &[main.pid()]).await
            }
            Instance::Bare => {
                let port = self.port(2);
                let launch = Launch {
                    port: Some(port),
                    port_variable: "BARE_PORT",
                    ..Launch::new(&self.settings.bare_binary, Vec::new())
                };
                let bare = self.start_server(launch, Path::new("/dev/null")).await;
                self.on_instance_of_its_own(scenario, bare).await.map(drop)
            }
            Instance::CacheOff => {
                let port = self.port(1);
                let env = local.env(port, Some(false), &[("CACHE_TTL_SECONDS", "0")]);
                let cold = self.start_service("cache-off", &env, port).await;
                self.meta.memory.cold_peak_rss_kib = self.on_instance_of_its_own(scenario, cold).await?;
                Ok(())
            }
            Instance::LocalCopies => {
                let port = self.port(3);
                let env = local.env(port, Some(true), &[]);
                let copies = self.start_service("local-copies", &env, port).await;
                self.meta.memory.local_peak_rss_kib = self.on_instance_of_its_own(scenario, copies).await?;
                Ok(())
            }
            Instance::Authenticated => {
                let port = self.port(6);
                let env = self.authenticated_env(local, port)?;
                let authenticated = self.start_service("authenticated", &env, port).await;
                self.on_instance_of_its_own(scenario, authenticated).await.map(drop)
            }
            Instance::Pair { local_copies } => {
                let (port_a, port_b) = (self.port(4), self.port(5));
                let (env_a, env_b) = (
                    local.env(port_a, Some(local_copies), &[]),
                    local.env(port_b, Some(local_copies), &[]),
                );
                let a = self.start_service("lag A (writes)", &env_a, port_a).await?;
                let outcome = match self.start_service("lag B (reads)", &env_b, port_b).await {
                    Ok(b) => {
                        let outcome = self.lag(scenario, &a.url(), &b.url()).await;
                        b.terminate(STOP_GRACE).await;
                        outcome
                    }
                    Err(error) => Err(error),
                };
                a.terminate(STOP_GRACE).await;
                outcome
            }
        }
    }

    /// The cached instance's settings with bearer tokens checked, against an ES256 key made for
    /// the run (its key set in the run's folder, `jwks.json`); the token to read with is kept.
    fn authenticated_env(&mut self, local: &Local, port: u16) -> Result<Vec<(String, String)>, String> {
        let key = SigningKey::generate(Algorithm::Es256, "bench");
        let key_set = std::path::absolute(self.folder.join("jwks.json")).map_err(|error| error.to_string())?;
        std::fs::write(&key_set, jwks(&[&key]).to_string())
            .map_err(|error| format!("cannot write {}: {error}", key_set.display()))?;
        let lifetime = serde_json::json!(now() + TOKEN_LIFETIME_SECONDS);
        let token = key.token(&with(&claims("bench", "users:read"), "exp", lifetime));
        self.authorization = Some(format!("Bearer {token}"));
        let jwks_url = format!("file://{}", key_set.display());
        let authentication = [
            ("AUTH_DISABLED", ""),
            ("AUTH_ISSUER", ISSUER),
            ("AUTH_AUDIENCE", AUDIENCE),
            ("AUTH_JWKS_URL", jwks_url.as_str()),
        ];
        Ok(local.env(port, Some(false), &authentication))
    }

    /// Runs a scenario on an instance started for it alone, then stops it; returns its VmHWM.
    async fn on_instance_of_its_own(
        &mut self,
        scenario: &Scenario,
        started: Result<Service, String>,
    ) -> Result<Option<u64>, String> {
        let server = started?;
        let outcome = self.load(scenario, &server.url(), &[server.pid()]).await;
        let peak = memory_kib(server.pid(), "VmHWM");
        server.terminate(STOP_GRACE).await;
        outcome.map(|()| peak)
    }
}
