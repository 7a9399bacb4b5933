//! `DB_SSL_MODE`: the local Postgres has `ssl = on`, so both TLS modes are exercised for real.

use gravity_bff::config::SslMode;
use serde_json::json;

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn require_encrypts_the_connections() {
    let app = spawn_app_with(|config| config.database.ssl_mode = SslMode::Require).await;
    let created = app.create_user(json!({"name": "Ada"})).await;
    assert_eq!(
        app.get(&format!("/v1/users/{}", created["id"].as_str().unwrap()))
            .await
            .status,
        200
    );
    let encrypted: i64 = app
        .database
        .client
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE application_name = 'gravity-bff' AND datname = current_database() AND ssl",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted >= 1, "the service's connections use TLS");
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_no_trusted_ca_signed() {
    // The local server's certificate is self-signed (Debian's snakeoil), so verification must fail:
    // the service starts, stays alive, and reports itself not ready.
    let app = spawn_app_with(|config| config.database.ssl_mode = SslMode::VerifyFull).await;
    assert_eq!(app.get("/health").await.status, 200);
    app.get("/ready").await.problem(503);
    app.post_json("/v1/users", &json!({"name": "Ada"})).await.problem(503);
}
