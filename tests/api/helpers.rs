//! `spawn_app` and the tools the tests share.

use std::sync::Arc;
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

pub use crate::support::issuer::{AUDIENCE, ISSUER};
pub use crate::support::redis_server::OwnRedis;
pub use crate::support::services::Services;
use crate::support::services::ThrowawayDatabase;
pub use crate::support::{free_port, signal};

/// A fresh, migrated database of its own, dropped (with its Redis keys) when this is dropped.
pub struct TestDatabase {
    pub name: String,
    pub services: Services,
    pub client: tokio_postgres::Client,
    _throwaway: ThrowawayDatabase,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let database = TestDatabase::create_empty().await;
        database.migrate().await;
        database
    }

    pub async fn create_empty() -> TestDatabase {
        let services = Services::from_env();
        let throwaway = ThrowawayDatabase::create(services.clone(), "test").await;
        let client = services.connect(&throwaway.name).await;
        TestDatabase {
            name: throwaway.name.clone(),
            services,
            client,
            _throwaway: throwaway,
        }
    }

    pub async fn migrate(&self) {
        let config = Config::from_vars(self.services.vars(&self.name, "unused")).unwrap();
        let mut migrator = Migrator::connect(&config.database)
            .await
            .expect("the migrator connects");
        migrator.up().await.expect("migrations apply");
    }

    pub fn config(&self) -> Config {
        self.config_with(&[])
    }

    /// The settings with some replaced (an empty value unsets one).
    pub fn config_with(&self, changes: &[(&str, &str)]) -> Config {
        let mut vars = self.services.vars(&self.name, &self.name);
        vars.retain(|(name, _)| !changes.iter().any(|(changed, _)| changed == name));
        vars.extend(
            changes
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string())),
        );
        Config::from_vars(vars).unwrap()
    }
}

/// The service running in this test's runtime, with its own database and key prefix.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    /// Shared with the app's replicas; dropped with the last of them.
    pub database: Arc<TestDatabase>,
    pub key_prefix: String,
    /// The settings it runs with, for starting a replica.
    pub config: Config,
    client: Client<HttpConnector, Full<Bytes>>,
    shutdown: Option<oneshot::Sender<()>>,
}

/// The real server with the real Postgres and Redis.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like `spawn_app`, with the settings adjusted first (another Redis, no cache, …).
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with_settings(&[], adjust).await
}

/// The real server checking bearer tokens of the tests' issuer (tests/support/issuer.rs), whose
/// keys are at `jwks_url` (any `AUTH_JWKS_URL`); `adjust` may shorten its key fetch intervals.
pub async fn spawn_app_with_auth(jwks_url: &str, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let authentication = [
        ("AUTH_DISABLED", ""),
        ("AUTH_ISSUER", ISSUER),
        ("AUTH_AUDIENCE", AUDIENCE),
        ("AUTH_JWKS_URL", jwks_url),
    ];
    spawn_app_with_settings(&authentication, adjust).await
}

/// The real server with settings changed as the environment would change them, then adjusted.
pub async fn spawn_app_with_settings(changes: &[(&str, &str)], adjust: impl FnOnce(&mut Config)) -> TestApp {
    let database = TestDatabase::create().await;
    database.services.check_redis();
    let mut config = database.config_with(changes);
    adjust(&mut config);
    start_app(Arc::new(database), config).await
}

impl TestApp {
    /// Another instance of the service on the same database and Redis (a replica), with its
    /// settings adjusted.
    pub async fn spawn_replica(&self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = self.config.clone();
        adjust(&mut config);
        start_app(self.database.clone(), config).await
    }
}

async fn start_app(database: Arc<TestDatabase>, config: Config) -> TestApp {
    let key_prefix = config.cache.key_prefix.clone();
    let app = App::build(config.clone()).await.expect("the app starts");
    let port = app.port();
    let (shutdown, shutdown_signal) = oneshot::channel::<()>();
    tokio::spawn(async move {
        app.run(async {
            let _ = shutdown_signal.await;
        })
        .await;
    });
    let redis_answers = match &config.cache.redis {
        Some(redis) => redis_answers_ping(redis.host.clone(), redis.port).await,
        None => false,
    };
    let app = TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        database,
        key_prefix,
        config,
        client: Client::builder(TokioExecutor::new()).build_http(),
        shutdown: Some(shutdown),
    };
    // The service connects to Redis in the background and serves uncached until it has; on a busy
    // machine a test's first reads could come sooner. When its Redis answers (a test that means
    // Redis to be down, stalled or refusing gives one that does not), the test starts once the
    // cache is live.
    if redis_answers {
        let live = eventually(Duration::from_secs(10), async || {
            app.get("/ready")
                .await
                .body
                .windows(12)
                .any(|part| part == br#""redis":"ok""#)
        })
        .await;
        assert!(
            live,
            "the service did not connect to its Redis within 10 s, though Redis answers"
        );
    }
    app
}

/// Whether a Redis at `host:port` answers PING (without a password) within a second.
async fn redis_answers_ping(host: String, port: u16) -> bool {
    tokio::task::spawn_blocking(move || {
        let second = Duration::from_secs(1);
        let Ok(client) = redis::Client::open(format!("redis://{host}:{port}/")) else {
            return false;
        };
        let Ok(mut connection) = client.get_connection_with_timeout(second) else {
            return false;
        };
        let _ = connection.set_read_timeout(Some(second));
        redis::cmd("PING")
            .query::<String>(&mut connection)
            .is_ok_and(|answer| answer == "PONG")
    })
    .await
    .unwrap_or(false)
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
        send_on(&self.client, &self.address, method, path, headers, body.into()).await
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

    /// Creates a user with just a name; its id and its path.
    pub async fn create_named(&self, name: &str) -> (String, String) {
        let created = self.create_user(serde_json::json!({ "name": name })).await;
        let id = created["id"].as_str().unwrap().to_owned();
        let path = format!("/v1/users/{id}");
        (id, path)
    }

    /// A sync Redis connection for looking at keys directly.
    pub fn redis(&self) -> redis::Connection {
        redis::Client::open(self.database.services.redis_url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    pub fn cache_key(&self, id: &str) -> String {
        format!("{}:user:{id}", self.key_prefix)
    }

    /// Requests that carry `Authorization: Bearer {token}`.
    pub fn with_token(&self, token: &str) -> WithToken<'_> {
        WithToken {
            app: self,
            authorization: format!("Bearer {token}"),
        }
    }
}

/// Requests to an app with a bearer token.
pub struct WithToken<'a> {
    app: &'a TestApp,
    authorization: String,
}

impl WithToken<'_> {
    pub async fn get(&self, path: &str) -> TestResponse {
        self.get_with(path, &[]).await
    }

    /// A GET with more headers beside the token.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> TestResponse {
        self.app
            .request(Method::GET, path, &self.and(headers), Bytes::new())
            .await
    }

    pub async fn delete(&self, path: &str) -> TestResponse {
        self.app
            .request(Method::DELETE, path, &self.and(&[]), Bytes::new())
            .await
    }

    /// A JSON body sent with `method`, and any more headers.
    pub async fn send_json(&self, method: Method, path: &str, headers: &[(&str, &str)], body: &Value) -> TestResponse {
        let mut all = self.and(headers);
        all.push(("content-type", "application/json"));
        self.app
            .request(method, path, &all, serde_json::to_vec(body).unwrap())
            .await
    }

    /// The token's header and `headers`.
    fn and<'h>(&'h self, headers: &[(&'h str, &'h str)]) -> Vec<(&'h str, &'h str)> {
        let mut all = vec![("authorization", self.authorization.as_str())];
        all.extend_from_slice(headers);
        all
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// A GET on a connection of its own (for a request that must run beside the test's others):
/// the status and the JSON body.
pub async fn http_get_json(address: &str, path: &str) -> (u16, Value) {
    let response = one_request(address, Method::GET, path, None).await;
    let body = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status.as_u16(), body)
}

/// A GET's body as text, on a connection of its own.
pub async fn http_text(address: &str, path: &str) -> String {
    String::from_utf8_lossy(&one_request(address, Method::GET, path, None).await.body).into_owned()
}

/// A PATCH of JSON on a connection of its own: the status and the JSON body.
pub async fn http_patch_json(address: &str, path: &str, body: &Value) -> (u16, Value) {
    let response = one_request(address, Method::PATCH, path, Some(body)).await;
    let body = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status.as_u16(), body)
}

/// A POST of JSON on a connection of its own; the 201's body.
pub async fn http_post_json(address: &str, path: &str, body: &Value) -> Value {
    let response = one_request(address, Method::POST, path, Some(body)).await;
    assert_eq!(response.status, 201, "{}", String::from_utf8_lossy(&response.body));
    serde_json::from_slice(&response.body).unwrap()
}

async fn one_request(address: &str, method: Method, path: &str, json: Option<&Value>) -> TestResponse {
    match json {
        Some(json) => {
            let body = serde_json::to_vec(json).unwrap();
            http_request(address, method, path, &[("content-type", "application/json")], &body).await
        }
        None => http_request(address, method, path, &[], b"").await,
    }
}

/// Any request, on a connection of its own (so it can run in a task beside the test's others).
/// `method` on `path` with `Idempotency-Key: key`, and `body` as JSON unless it is empty.
pub async fn send_keyed(app: &TestApp, method: Method, path: &str, key: &str, body: &str) -> TestResponse {
    let mut headers = vec![("idempotency-key", key)];
    if !body.is_empty() {
        headers.push(("content-type", "application/json"));
    }
    app.request(method, path, &headers, Bytes::from(body.to_owned())).await
}

pub async fn http_request(
    address: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> TestResponse {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    send_on(&client, address, method, path, headers, Bytes::copy_from_slice(body)).await
}

async fn send_on(
    client: &Client<HttpConnector, Full<Bytes>>,
    address: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> TestResponse {
    let mut builder = Request::builder().method(method).uri(format!("{address}{path}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = client
        .request(builder.body(Full::new(body)).unwrap())
        .await
        .expect("the server answers");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("the body arrives").to_bytes();
    TestResponse {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Another Postgres session that holds the rows of `ids` locked (`SELECT … FOR UPDATE` in an open
/// transaction) until it runs `COMMIT`.
pub async fn lock_rows(database: &TestDatabase, ids: &[&str]) -> tokio_postgres::Client {
    let locker = database.services.connect(&database.name).await;
    locker
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM users WHERE id IN ('{}') FOR UPDATE",
            ids.join("','")
        ))
        .await
        .expect("the rows are locked");
    locker
}

/// Waits until at least `count` of the service's Postgres sessions wait on a lock.
pub async fn wait_for_lock_waits(database: &TestDatabase, count: i64) {
    let waiting = eventually(Duration::from_secs(5), async || lock_waits(database).await >= count).await;
    assert!(waiting, "the service's writes never waited on the locked rows");
}

/// How many of the service's Postgres sessions wait on a lock now.
pub async fn lock_waits(database: &TestDatabase) -> i64 {
    let row = database
        .client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'gravity-bff' AND wait_event_type = 'Lock'",
            &[],
        )
        .await
        .unwrap();
    row.get(0)
}

/// Waits until a server started as a separate process answers `/health` on `port`.
pub async fn wait_until_serving(port: u16, within: Duration) {
    let started = std::time::Instant::now();
    while gravity_bff::health_probe::probe(port, "/health", Duration::from_millis(200)).is_err() {
        assert!(
            started.elapsed() < within,
            "the server on {port} did not come up within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
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
