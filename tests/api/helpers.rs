//! `spawn_app` and the tools the tests share.

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gravity_bff::App;
use gravity_bff::config::Config;
use gravity_bff::db::migrate::Migrator;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::sync::oneshot;

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

    /// Settings for the service, as the environment would give them.
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
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    async fn admin(&self) -> tokio_postgres::Client {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.pg_host)
            .port(self.pg_port)
            .user(&self.pg_user)
            .dbname("postgres")
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

    fn check_redis(&self) {
        let address = format!("{}:{}", self.redis_host, self.redis_port);
        let reachable = std::net::TcpStream::connect(&address).is_ok();
        assert!(
            reachable,
            "cannot reach the test Redis at {address}. Start it with \
             `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no`, \
             or `make test-up` and TEST_REDIS_PORT=6380"
        );
    }
}

/// A fresh, migrated database of its own, dropped when this is dropped.
pub struct TestDatabase {
    pub name: String,
    pub services: Services,
    pub client: tokio_postgres::Client,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let database = TestDatabase::create_empty().await;
        database.migrate().await;
        database
    }

    pub async fn create_empty() -> TestDatabase {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let services = Services::from_env();
        let name = format!(
            "gravity_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let admin = services.admin().await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("the test database is created");
        let client = connect_to(&services, &name).await;
        TestDatabase { name, services, client }
    }

    pub async fn migrate(&self) {
        let config = Config::from_vars(self.services.vars(&self.name, "unused")).unwrap();
        let mut migrator = Migrator::connect(&config.database)
            .await
            .expect("the migrator connects");
        migrator.up().await.expect("migrations apply");
    }

    pub fn config(&self) -> Config {
        Config::from_vars(self.services.vars(&self.name, &self.name)).unwrap()
    }
}

pub async fn connect_to(services: &Services, database: &str) -> tokio_postgres::Client {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&services.pg_host)
        .port(services.pg_port)
        .user(&services.pg_user)
        .dbname(database);
    if !services.pg_password.is_empty() {
        config.password(&services.pg_password);
    }
    let (client, driver) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("the test database accepts connections");
    tokio::spawn(driver);
    client
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let services = self.services.clone();
        let name = self.name.clone();
        // Drop runs outside any async context we may block; use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let admin = services.admin().await;
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
            if let Ok(client) = redis::Client::open(format!("redis://{}:{}/", services.redis_host, services.redis_port))
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

/// The service running in this test's runtime, with its own database and key prefix.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub database: TestDatabase,
    pub key_prefix: String,
    client: Client<HttpConnector, Full<Bytes>>,
    shutdown: Option<oneshot::Sender<()>>,
}

/// The real server with the real Postgres and Redis.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like `spawn_app`, with the settings adjusted first (another Redis, no cache, …).
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let database = TestDatabase::create().await;
    database.services.check_redis();
    let mut config = database.config();
    adjust(&mut config);
    let key_prefix = config.cache.key_prefix.clone();
    let app = App::build(config).await.expect("the app starts");
    let port = app.port();
    let (shutdown, shutdown_signal) = oneshot::channel::<()>();
    tokio::spawn(async move {
        app.run(async {
            let _ = shutdown_signal.await;
        })
        .await
        .expect("the server runs");
    });
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        database,
        key_prefix,
        client: Client::builder(TokioExecutor::new()).build_http(),
        shutdown: Some(shutdown),
    }
}

/// What a test sees of a response.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }

    /// Asserts an RFC 9457 problem with this status, and returns its body.
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.header("content-type"), Some("application/problem+json"));
        let body = self.json();
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["status"], status);
        assert!(body["title"].is_string() && body["detail"].is_string(), "{body}");
        body
    }
}

impl TestApp {
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(format!("{}{path}", self.address));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(body.into())).unwrap();
        let response = self.client.request(request).await.expect("the server answers");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("the body arrives").to_bytes();
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.request(Method::GET, path, &[], Bytes::new()).await
    }

    pub async fn delete(&self, path: &str) -> TestResponse {
        self.request(Method::DELETE, path, &[], Bytes::new()).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> TestResponse {
        self.send_json(Method::POST, path, body).await
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> TestResponse {
        self.send_json(Method::PATCH, path, body).await
    }

    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> TestResponse {
        let bytes = serde_json::to_vec(body).unwrap();
        self.request(method, path, &[("content-type", "application/json")], bytes)
            .await
    }

    /// Creates a user and returns its JSON.
    pub async fn create_user(&self, body: Value) -> Value {
        let response = self.post_json("/v1/users", &body).await;
        assert_eq!(response.status, 201, "{}", String::from_utf8_lossy(&response.body));
        response.json()
    }

    /// A sync Redis connection for looking at keys directly.
    pub fn redis(&self) -> redis::Connection {
        let services = &self.database.services;
        redis::Client::open(format!("redis://{}:{}/", services.redis_host, services.redis_port))
            .unwrap()
            .get_connection()
            .unwrap()
    }

    pub fn cache_key(&self, id: &str) -> String {
        format!("{}:user:{id}", self.key_prefix)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Waits until a server started as a separate process answers `/health` on `port`.
pub async fn wait_until_serving(port: u16, within: Duration) {
    let started = std::time::Instant::now();
    while gravity_bff::health_check::probe(port, Duration::from_millis(200)).is_err() {
        assert!(
            started.elapsed() < within,
            "the server on {port} did not come up within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `redis-server` of the test's own on a spare port, killed when dropped.
pub struct OwnRedis {
    child: Child,
}

impl OwnRedis {
    pub fn start_on(port: u16) -> OwnRedis {
        OwnRedis::start_with(port, &[])
    }

    /// Like `start_on`, with more `redis-server` arguments (such as `--requirepass`).
    pub fn start_with(port: u16, extra: &[&str]) -> OwnRedis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt-get install redis-server)");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server on {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        OwnRedis { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` until it is true or `within` passes; returns whether it became true.
pub async fn eventually(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
