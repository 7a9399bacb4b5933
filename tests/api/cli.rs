//! The binary's command line and settings: exit codes and the one line an operator reads.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::helpers::{TestDatabase, free_port, spawn_app, wait_until_serving};
use crate::shutdown::BINARY;

fn run(arguments: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(BINARY)
        .args(arguments)
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .unwrap()
}

const VALID: [(&str, &str); 3] = [
    ("DB_HOST", "127.0.0.1"),
    ("DB_USER", "postgres"),
    ("DB_NAME", "postgres"),
];

#[test]
fn version_and_help_say_what_they_are() {
    let version = run(&["--version"], &[]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim_end(),
        format!(
            "gravity-bff {} (revision {})",
            env!("CARGO_PKG_VERSION"),
            gravity_bff::build_info::REVISION
        )
    );
    assert!(!gravity_bff::build_info::REVISION.is_empty());
    let help = run(&["--help"], &[]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("migrate"));
}

#[test]
fn a_wrong_invocation_exits_2_with_one_line() {
    for arguments in [
        &["--frobnicate"][..],
        &["migrate", "down"],
        &["migrate", "sideways"],
        &["serve", "extra"],
    ] {
        let output = run(arguments, &VALID);
        assert_eq!(output.status.code(), Some(2), "{arguments:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
}

#[test]
fn each_missing_required_setting_exits_2_naming_it() {
    for missing in ["DB_HOST", "DB_USER", "DB_NAME"] {
        let vars: Vec<(&str, &str)> = VALID.iter().copied().filter(|(name, _)| *name != missing).collect();
        let output = run(&[], &vars);
        assert_eq!(output.status.code(), Some(2), "{missing}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(missing), "{stderr}");
    }
}

#[test]
fn each_malformed_setting_exits_2_naming_it() {
    let cases = [
        ("API_PORT", "http"),
        ("DB_PORT", "99999"),
        ("DB_SSL_MODE", "sometimes"),
        ("DB_POOL_SIZE", "0"),
        ("REDIS_PORT", "x"),
        ("CACHE_TTL_SECONDS", "forever"),
        ("CACHE_KEY_PREFIX", "bad prefix"),
        ("LOG_LEVEL", "chatty"),
        ("SHUTDOWN_GRACE_SECONDS", "-1"),
        ("MAX_CONNECTIONS", "0"),
        ("DB_SSL_ROOT_CERT", "/nonexistent/ca.pem"),
        ("AUTH_DISABLED", "yes"),
        ("AUTH_ISSUER", "issuer.example.com"),
        ("CORS_ALLOWED_ORIGINS", "*"),
    ];
    for (setting, value) in cases {
        let mut vars = VALID.to_vec();
        vars.push((setting, value));
        if setting == "DB_SSL_ROOT_CERT" {
            vars.push(("DB_SSL_MODE", "verify-full"));
        }
        let output = run(&[], &vars);
        assert_eq!(output.status.code(), Some(2), "{setting}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(setting), "{stderr}");
    }
}

#[test]
fn serving_without_an_issuer_or_auth_disabled_exits_2_naming_both() {
    let port = free_port().to_string();
    let mut vars = VALID.to_vec();
    vars.push(("API_PORT", &port));
    for extra in [None, Some(("AUTH_DISABLED", "false")), Some(("AUTH_AUDIENCE", "api"))] {
        let mut vars = vars.clone();
        vars.extend(extra);
        let output = run(&["serve"], &vars);
        assert_eq!(output.status.code(), Some(2), "{extra:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("AUTH_ISSUER") && stderr.contains("AUTH_DISABLED"),
            "{stderr}"
        );
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_err(),
            "nothing was served"
        );
    }
}

#[tokio::test]
async fn migrate_needs_no_authentication_settings() {
    let database = TestDatabase::create().await;
    let mut vars = database.services.vars(&database.name, &database.name);
    vars.retain(|(name, _)| !name.starts_with("AUTH_"));
    let output = tokio::task::spawn_blocking(move || {
        let vars: Vec<(&str, &str)> = vars
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        run(&["migrate", "status"], &vars)
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn secrets_are_not_echoed_in_errors() {
    let mut vars = VALID.to_vec();
    vars.extend([
        ("DB_PASSWORD", "hunter2-secret"),
        ("REDIS_PASSWORD", "swordfish-secret"),
        ("API_PORT", "bad"),
    ]);
    let output = run(&[], &vars);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !printed.contains("hunter2") && !printed.contains("swordfish"),
        "{printed}"
    );
}

#[test]
fn health_exits_1_with_a_reason_when_nothing_listens() {
    let port = free_port().to_string();
    let output = run(&["--health"], &[("API_PORT", &port)]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

#[tokio::test]
async fn health_exits_0_against_a_running_server() {
    let app = spawn_app().await;
    let port = app.port.to_string();
    let output = tokio::task::spawn_blocking(move || run(&["--health"], &[("API_PORT", &port)]))
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// A value no UTF-8 decoder accepts, as `$'\xff'` gives it in a shell.
const NOT_UTF8: &[u8] = b"\xff";

#[tokio::test]
async fn foreign_variables_that_are_not_utf8_are_never_looked_at() {
    let database = TestDatabase::create().await;
    let mut vars = database.services.vars(&database.name, &database.name);
    let port = free_port();
    vars.retain(|(name, _)| name != "API_PORT");
    vars.push(("API_PORT".into(), port.to_string()));
    let foreign = [
        (OsStr::new("WEIRD"), OsStr::from_bytes(NOT_UTF8)),
        (OsStr::from_bytes(b"W\xffIRD"), OsStr::new("a name that is not UTF-8")),
    ];
    let command = |arguments: &[&str]| {
        let mut command = Command::new(BINARY);
        command
            .args(arguments)
            .env_clear()
            .envs(vars.iter().map(|(name, value)| (name, value)))
            .envs(foreign);
        command
    };

    let status = command(&["migrate", "status"]).output().unwrap();
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(String::from_utf8_lossy(&status.stdout).starts_with("version: "));

    let mut server = command(&[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_serving(port, Duration::from_secs(15)).await;
    let probe = command(&["--health"]).output().unwrap();
    assert_eq!(
        probe.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    assert!(server.try_wait().unwrap().is_none(), "the server is still running");
    server.kill().unwrap();
    let stderr = server.wait_with_output().unwrap().stderr;
    assert!(!String::from_utf8_lossy(&stderr).contains("panicked"));
}

#[test]
fn a_setting_of_ours_that_is_not_utf8_exits_2_with_one_line_naming_it() {
    let cases: [(&[&str], &str); 5] = [
        (&[], "DB_HOST"),
        (&[], "LOG_LEVEL"),
        (&[], "MAX_CONNECTIONS"),
        (&["migrate", "status"], "DB_NAME"),
        (&["--health"], "API_PORT"),
    ];
    for (arguments, setting) in cases {
        let output = Command::new(BINARY)
            .args(arguments)
            .env_clear()
            .envs(VALID.iter().filter(|(name, _)| *name != setting).copied())
            .env(setting, OsStr::from_bytes(NOT_UTF8))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{setting} for {arguments:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(setting) && stderr.contains("UTF-8"), "{stderr}");
    }
}
