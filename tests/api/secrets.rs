//! Secrets never leave the process. The real binary runs with `DB_PASSWORD` and `REDIS_PASSWORD`
//! set to marker values and debug logging, is driven through its error paths (Postgres
//! unreachable, Redis refusing the password, bad requests of every kind, bad settings), and
//! everything it wrote or answered is searched for the markers: stdout, stderr, every response
//! status line, header and body, `/metrics`. A client's payload must not reach the log either.

use std::process::{Command, Output};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::helpers::{OwnRedis, Services, free_port};
use crate::service_process;
use crate::shutdown::BINARY;
use crate::support::http;

/// URL-special characters too, in case anything ever builds a connection string from them.
const DB_SECRET: &str = "db-S3cret:p@ss/w0rd?#%41-7d1e";
const REDIS_SECRET: &str = "redis-S3cret@p4ss:x/y-93a2";
/// Client text that has no business in a log line.
const PAYLOAD: &str = "payload-marker-5c0ffee";

#[tokio::test]
async fn passwords_never_appear_in_logs_bodies_headers_or_metrics() {
    let redis_port = free_port();
    // A Redis that wants a password other than the service's, so AUTH fails.
    let _redis = OwnRedis::start_with(redis_port, &["--requirepass", "not-the-configured-one"]);
    let service = service_process::start(settings(redis_port)).await;
    let port = service.port;

    let mut answers = String::new();
    let id = "5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d";
    let user = format!(r#"{{"name":"{PAYLOAD}","email":"{PAYLOAD}@example.org"}}"#);
    let invalid = format!(r#"{{"name":"\u0000{PAYLOAD}","role":"{PAYLOAD}"}}"#);
    let oversized = format!(r#"{{"name":"{}"}}"#, PAYLOAD.repeat(5_000));
    let requests: Vec<(&str, String, Option<&str>, String)> = vec![
        ("GET", "/health".into(), None, String::new()),
        ("GET", "/ready".into(), None, String::new()),
        ("GET", format!("/v1/users/{id}"), None, String::new()),
        ("GET", "/v1/users?limit=5".into(), None, String::new()),
        ("POST", "/v1/users".into(), Some("application/json"), user.clone()),
        (
            "PATCH",
            format!("/v1/users/{id}"),
            Some("application/json"),
            user.clone(),
        ),
        ("DELETE", format!("/v1/users/{id}"), None, String::new()),
        (
            "POST",
            "/v1/users".into(),
            Some("application/json"),
            format!("{{\"name\":\"{PAYLOAD}"),
        ),
        ("POST", "/v1/users".into(), Some("text/plain"), user),
        ("POST", "/v1/users".into(), Some("application/json"), invalid),
        ("POST", "/v1/users".into(), Some("application/json"), oversized),
        ("GET", format!("/v1/users/{PAYLOAD}"), None, String::new()),
        ("GET", format!("/v1/users?cursor={PAYLOAD}"), None, String::new()),
        ("PUT", "/v1/users".into(), None, String::new()),
        ("GET", format!("/{PAYLOAD}"), None, String::new()),
        ("GET", "/metrics".into(), None, String::new()),
        ("GET", "/openapi.json".into(), None, String::new()),
    ];
    for (method, path, content_type, body) in &requests {
        answers.push_str(&raw_request(port, method, path, *content_type, body).await);
    }
    assert!(
        answers.contains("HTTP/1.1 503"),
        "Postgres was unreachable: {answers:.2000}"
    );
    assert!(answers.contains("HTTP/1.1 422"), "the error paths ran");

    let finished = service.stop_with("TERM").await;
    let (stdout, stderr) = (finished.stdout, finished.stderr);
    assert!(
        stderr.contains("postgres connection failed"),
        "the Postgres error was logged:\n{stderr}"
    );
    assert!(
        stderr.contains("cache unavailable"),
        "the Redis error was logged:\n{stderr}"
    );
    assert!(
        stdout.contains("\"http.response.status_code\":503"),
        "requests were logged:\n{stdout}"
    );

    for (place, text) in [
        ("stdout", &*stdout),
        ("stderr", &*stderr),
        ("responses", answers.as_str()),
    ] {
        for secret in [DB_SECRET, REDIS_SECRET] {
            assert!(!text.contains(secret), "{secret:?} appears in {place}");
            // A secret cut at a separator, or percent-encoded, is still a leak.
            assert!(!text.contains(&secret[..10]), "part of {secret:?} appears in {place}");
        }
    }
    for (place, text) in [("stdout", &*stdout), ("stderr", &*stderr)] {
        assert!(!text.contains(PAYLOAD), "client payload appears in {place}:\n{text}");
    }
}

#[test]
fn bad_settings_and_failed_migrations_name_the_problem_without_the_secret() {
    let redis_port = free_port();
    let cases: Vec<SettingsCase> = vec![
        (
            "serve with a bad DB_PORT",
            vec![("DB_PORT", "not-a-port".into())],
            vec![],
        ),
        (
            "serve with a bad REDIS_PORT",
            vec![("REDIS_PORT", "70000".into())],
            vec![],
        ),
        (
            "serve with a bad DB_SSL_MODE",
            vec![("DB_SSL_MODE", "bogus".into())],
            vec![],
        ),
        ("migrate with Postgres unreachable", vec![], vec!["migrate", "up"]),
        (
            "migrate status with Postgres unreachable",
            vec![],
            vec!["migrate", "status"],
        ),
    ];
    for (name, overrides, arguments) in cases {
        let mut env = settings(redis_port);
        for (key, value) in overrides {
            env.retain(|(existing, _)| existing != key);
            env.push((key.to_owned(), value));
        }
        let output: Output = Command::new(BINARY)
            .args(&arguments)
            .env_clear()
            .envs(env)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{name}: it fails");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!printed.trim().is_empty(), "{name}: it says why");
        for secret in [DB_SECRET, REDIS_SECRET] {
            assert!(
                !printed.contains(&secret[..10]),
                "{name}: {secret:?} appears in {printed:?}"
            );
        }
    }
}

/// A run of the binary: what it shows, the settings it changes, its arguments.
type SettingsCase = (&'static str, Vec<(&'static str, String)>, Vec<&'static str>);

/// The service's settings: Postgres on a port nothing listens on, the secrets set.
fn settings(redis_port: u16) -> Vec<(String, String)> {
    let services = Services::from_env();
    [
        ("API_PORT", free_port().to_string()),
        ("DB_HOST", services.pg_host),
        ("DB_PORT", free_port().to_string()),
        ("DB_USER", services.pg_user),
        ("DB_PASSWORD", DB_SECRET.to_owned()),
        ("DB_NAME", "gravity_secrets".to_owned()),
        ("REDIS_HOST", "127.0.0.1".to_owned()),
        ("REDIS_PORT", redis_port.to_string()),
        ("REDIS_PASSWORD", REDIS_SECRET.to_owned()),
        ("CACHE_KEY_PREFIX", format!("gravity-secrets-{}", std::process::id())),
        ("LOG_LEVEL", "debug".to_owned()),
        ("SHUTDOWN_GRACE_SECONDS", "2".to_owned()),
        ("AUTH_DISABLED", "true".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// One request on its own connection; returns the whole answer (status line, headers, body).
async fn raw_request(port: u16, method: &str, path: &str, content_type: Option<&str>, body: &str) -> String {
    let mut stream = http::connect(port).await;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    if let Some(content_type) = content_type {
        request.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let _ = stream.write_all(request.as_bytes()).await;
    let answer = http::read_until_closed(&mut stream, Duration::from_secs(10)).await;
    String::from_utf8_lossy(&answer.unwrap_or_else(|so_far| so_far)).into_owned()
}
