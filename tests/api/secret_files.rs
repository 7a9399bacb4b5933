//! Passwords from files (`DB_PASSWORD_FILE`, `REDIS_PASSWORD_FILE`), as Docker and Kubernetes
//! mount secrets: the real binary authenticates with what the file holds, its line break removed,
//! and either form given twice, or a file it cannot read, stops it with exit 2 and one line.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::helpers::{OwnRedis, TestDatabase, eventually, free_port, http_get_json};
use crate::service_process;
use crate::shutdown::BINARY;

const REDIS_SECRET: &str = "redis-file-S3cret";

/// A directory of its own for the secret files, removed when dropped.
struct SecretDir(PathBuf);

impl SecretDir {
    fn create() -> SecretDir {
        let path = std::env::temp_dir().join(format!("gravity-secret-files-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&path).unwrap();
        SecretDir(path)
    }

    fn file(&self, name: &str, contents: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl Drop for SecretDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn the_server_authenticates_with_passwords_read_from_files() {
    let database = TestDatabase::create().await;
    let redis = OwnRedis::start_with(free_port(), &["--requirepass", REDIS_SECRET]);
    let secrets = SecretDir::create();
    let mut vars = database.services.vars(&database.name, &database.name);
    vars.retain(|(name, _)| !matches!(name.as_str(), "DB_PASSWORD" | "REDIS_PORT"));
    vars.extend([
        (
            "DB_PASSWORD_FILE".to_owned(),
            secrets.file("db_password", &format!("{}\n", database.services.pg_password)),
        ),
        ("REDIS_PORT".to_owned(), redis.port.to_string()),
        (
            "REDIS_PASSWORD_FILE".to_owned(),
            secrets.file("redis_password", &format!("{REDIS_SECRET}\n")),
        ),
    ]);
    let server = service_process::start(vars).await;

    // This Redis refuses every command until AUTH succeeds: "ok" means the file's password, without
    // its line break, was sent.
    let address = server.url();
    let ready = eventually(Duration::from_secs(10), async || {
        http_get_json(&address, "/ready").await
            == (
                200,
                serde_json::json!({"status": "ready", "postgres": "ok", "redis": "ok", "auth": "disabled"}),
            )
    })
    .await;
    let last = http_get_json(&address, "/ready").await;
    drop(server);
    assert!(ready, "last /ready: {last:?}");
}

#[test]
fn a_password_given_twice_or_an_unreadable_file_exits_2_naming_them() {
    let secrets = SecretDir::create();
    let file = secrets.file("password", "x\n");
    let missing = "/nonexistent/gravity/redis_password";
    let cases = [
        (
            vec![("DB_PASSWORD", "x"), ("DB_PASSWORD_FILE", file.as_str())],
            "DB_PASSWORD and DB_PASSWORD_FILE are both set",
        ),
        (
            vec![("REDIS_PASSWORD", "x"), ("REDIS_PASSWORD_FILE", file.as_str())],
            "REDIS_PASSWORD and REDIS_PASSWORD_FILE are both set",
        ),
        (
            vec![("REDIS_PASSWORD_FILE", missing)],
            "REDIS_PASSWORD_FILE cannot read \"/nonexistent/gravity/redis_password\"",
        ),
    ];
    for (vars, expected) in cases {
        let output = Command::new(BINARY)
            .env_clear()
            .envs([
                ("DB_HOST", "127.0.0.1"),
                ("DB_USER", "postgres"),
                ("DB_NAME", "postgres"),
            ])
            .envs(vars)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}
