//! The binary's command line and settings: exit codes and the one line an operator reads.

use std::process::{Command, Output};

use crate::helpers::{free_port, spawn_app};
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
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("gravity-bff "));
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
        ("DB_SSL_ROOT_CERT", "/nonexistent/ca.pem"),
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
