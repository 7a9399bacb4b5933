//! The test Postgres and Redis, named by the environment, and throwaway databases on them.
//!
//! `TEST_PG_HOST/PORT/USER/PASSWORD` and `TEST_REDIS_HOST/PORT` (default 127.0.0.1:5432 as
//! `postgres`, 127.0.0.1:6379). A test that cannot reach them fails with a message that says
//! how to start them; nothing is skipped.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Where the test Postgres and Redis are.
#[derive(Clone, Debug)]
pub struct Services {
    pub pg_host: String,
    pub pg_port: u16,
    pub pg_user: String,
    pub pg_password: String,
    pub redis_host: String,
    pub redis_port: u16,
}

impl Services {
    pub fn from_env() -> Services {
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        Services {
            pg_host: var("TEST_PG_HOST", "127.0.0.1"),
            pg_port: var("TEST_PG_PORT", "5432").parse().expect("TEST_PG_PORT is a port"),
            pg_user: var("TEST_PG_USER", "postgres"),
            pg_password: var("TEST_PG_PASSWORD", ""),
            redis_host: var("TEST_REDIS_HOST", "127.0.0.1"),
            redis_port: var("TEST_REDIS_PORT", "6379")
                .parse()
                .expect("TEST_REDIS_PORT is a port"),
        }
    }

    /// The service's settings for `database`, as the environment would give them. Authentication
    /// is explicitly off: these harnesses test what a request does once it is let in
    /// (tests/api/auth.rs and the bench's `get_hot_auth` turn it on).
    pub fn vars(&self, database: &str, key_prefix: &str) -> Vec<(String, String)> {
        [
            ("API_PORT", "0".to_owned()),
            ("DB_HOST", self.pg_host.clone()),
            ("DB_PORT", self.pg_port.to_string()),
            ("DB_USER", self.pg_user.clone()),
            ("DB_PASSWORD", self.pg_password.clone()),
            ("DB_NAME", database.to_owned()),
            ("REDIS_HOST", self.redis_host.clone()),
            ("REDIS_PORT", self.redis_port.to_string()),
            ("CACHE_KEY_PREFIX", key_prefix.to_owned()),
            ("LOG_LEVEL", "error".to_owned()),
            ("SHUTDOWN_GRACE_SECONDS", "5".to_owned()),
            ("AUTH_DISABLED", "true".to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// A client of `database`, or a failure that says how to start the test Postgres.
    pub async fn connect(&self, database: &str) -> tokio_postgres::Client {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.pg_host)
            .port(self.pg_port)
            .user(&self.pg_user)
            .dbname(database)
            .connect_timeout(Duration::from_secs(3));
        if !self.pg_password.is_empty() {
            config.password(&self.pg_password);
        }
        let (client, driver) = config.connect(tokio_postgres::NoTls).await.unwrap_or_else(|error| {
            panic!(
                "cannot reach the test Postgres at {}:{} as {} ({error}). Start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or `make test-up` \
                 and TEST_PG_PORT=5433 TEST_PG_USER=test TEST_PG_PASSWORD=test",
                self.pg_host, self.pg_port, self.pg_user
            )
        });
        tokio::spawn(driver);
        client
    }

    /// Fails with a message that says how to start the test Redis when it cannot be reached.
    pub fn check_redis(&self) {
        let address = format!("{}:{}", self.redis_host, self.redis_port);
        assert!(
            std::net::TcpStream::connect(&address).is_ok(),
            "cannot reach the test Redis at {address}. Start it with \
             `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no`, \
             or `make test-up` and TEST_REDIS_PORT=6380"
        );
    }

    pub fn redis_url(&self) -> String {
        format!("redis://{}:{}/", self.redis_host, self.redis_port)
    }
}

/// A database of its own, empty until migrated, dropped (with its Redis keys, which use its name
/// as their prefix) when this is dropped.
pub struct ThrowawayDatabase {
    pub name: String,
    pub services: Services,
}

impl ThrowawayDatabase {
    /// Creates a database with a name no other test run uses.
    pub async fn create(services: Services, label: &str) -> ThrowawayDatabase {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "gravity_{label}_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("the clock is past 1970")
                .subsec_nanos()
        );
        services
            .connect("postgres")
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("the throwaway database is created");
        ThrowawayDatabase { name, services }
    }
}

impl Drop for ThrowawayDatabase {
    fn drop(&mut self) {
        let services = self.services.clone();
        let name = self.name.clone();
        // Drop may run inside a runtime that must not be blocked: a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the clean-up");
            runtime.block_on(async {
                let _ = services
                    .connect("postgres")
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
            if let Ok(client) = redis::Client::open(services.redis_url())
                && let Ok(mut connection) = client.get_connection()
            {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{name}:*"))
                    .query(&mut connection)
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut connection);
                }
            }
        })
        .join();
    }
}
