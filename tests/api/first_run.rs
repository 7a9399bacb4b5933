//! A first run without traps: the binary creates and migrates its database with no client tools,
//! a database that answers but is not migrated is named as such (with the migration and the
//! command), settings are checked before anything is touched, and every failure names the setting
//! it came from.

use std::process::{Command, Output};
use std::time::Duration;

use gravity_bff::Config;
use gravity_bff::db::migrate::{MIGRATIONS, Migrator, latest_version};

use crate::helpers::{TestDatabase, free_port};
use crate::service_process;
use crate::shutdown::BINARY;
use crate::support::http;
use crate::support::services::{Services, ThrowawayDatabase};

fn run(arguments: &[&str], vars: &[(String, String)]) -> Output {
    Command::new(BINARY)
        .args(arguments)
        .env_clear()
        .envs(vars.iter().map(|(name, value)| (name, value)))
        .output()
        .unwrap()
}

fn with(mut vars: Vec<(String, String)>, changes: &[(&str, &str)]) -> Vec<(String, String)> {
    for (name, value) in changes {
        vars.retain(|(existing, _)| existing != name);
        vars.push(((*name).to_owned(), (*value).to_owned()));
    }
    vars
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A database name that no database has (it is dropped again, if created, when the test ends).
async fn a_missing_database(services: &Services) -> ThrowawayDatabase {
    let throwaway = ThrowawayDatabase::create(services.clone(), "first").await;
    services
        .connect("postgres")
        .await
        .batch_execute(&format!("DROP DATABASE {}", throwaway.name))
        .await
        .unwrap();
    throwaway
}

#[tokio::test]
async fn migrate_up_with_create_database_creates_a_missing_database_then_migrates_it() {
    let services = Services::from_env();
    let missing = a_missing_database(&services).await;
    let vars = services.vars(&missing.name, &missing.name);

    let first = run(&["migrate", "up", "--create-database"], &vars);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let stdout = text(&first.stdout);
    assert!(
        stdout.starts_with(&format!("created database {}\n", missing.name)),
        "{stdout}"
    );
    for migration in MIGRATIONS {
        assert!(stdout.contains(&format!("applied {migration}")), "{stdout}");
    }

    let again = run(&["migrate", "up", "--create-database"], &vars);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(text(&again.stdout), "no change: the schema is up to date\n");

    // A newer release migrated further: this binary says so, rather than "up to date".
    let newer = latest_version() + 1;
    let record = format!("UPDATE schema_migrations SET version = {newer}");
    services
        .connect(&missing.name)
        .await
        .batch_execute(&record)
        .await
        .unwrap();
    let older_binary = run(&["migrate", "up"], &vars);
    assert!(older_binary.status.success(), "{}", text(&older_binary.stderr));
    let told = text(&older_binary.stdout);
    assert_eq!(
        told,
        format!(
            "no change: the database is at version {newer}, newer than this binary's {}\n",
            newer - 1
        )
    );
}

#[tokio::test]
async fn runs_creating_one_missing_database_at_once_all_succeed_and_one_creates_it() {
    let services = Services::from_env();
    for _ in 0..5 {
        let missing = a_missing_database(&services).await;
        let settings = Config::from_vars(services.vars(&missing.name, &missing.name))
            .unwrap()
            .database;
        let mut runs = tokio::task::JoinSet::new();
        for _ in 0..6 {
            let settings = settings.clone();
            runs.spawn(async move {
                Migrator::connect_creating_database(&settings)
                    .await
                    .map(|(_, created)| created)
            });
        }
        let outcomes = runs.join_all().await;
        let failed: Vec<String> = outcomes
            .iter()
            .filter_map(|outcome| outcome.as_ref().err().map(|e| e.to_string()))
            .collect();
        assert!(failed.is_empty(), "{failed:?}");
        let created = outcomes.iter().filter(|outcome| matches!(outcome, Ok(true))).count();
        assert_eq!(created, 1, "one of them created it");
    }
}

#[tokio::test]
async fn a_missing_database_is_named_with_its_setting_and_the_flag_that_creates_it() {
    let services = Services::from_env();
    let missing = a_missing_database(&services).await;
    let output = run(&["migrate", "up"], &services.vars(&missing.name, &missing.name));
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&missing.name) && stderr.contains("(DB_NAME)"),
        "{stderr}"
    );
    assert!(stderr.contains("migrate up --create-database"), "{stderr}");
}

#[tokio::test]
async fn a_stop_while_waiting_for_postgres_at_start_up_is_kept_and_ends_in_a_clean_exit() {
    // A Postgres that accepts connections and never answers: the start-up waits its 5 s for it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port().to_string();
    let vars = with(
        Services::from_env().vars("postgres", "first"),
        &[("DB_PORT", &silent_port)],
    );
    let mut service = Command::new(BINARY)
        .env_clear()
        .envs(vars.iter().map(|(name, value)| (name, value)))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // As PID 1 in a container, a signal with no handler yet is dropped; anywhere else it kills.
    // Either way the stop is lost; kept, it ends in the drain's exit code 0.
    crate::support::signal(service.id(), "TERM");
    let stopped =
        crate::helpers::eventually(Duration::from_secs(15), async || service.try_wait().unwrap().is_some()).await;
    assert!(stopped, "it stopped within the start-up's wait and a drain");
    let status = service.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "a clean exit, not killed by the signal: {status:?}"
    );
    drop(silent);
}

#[tokio::test]
async fn an_unreachable_postgres_is_named_with_db_host_and_db_port() {
    let closed = free_port().to_string();
    let vars = with(Services::from_env().vars("postgres", "first"), &[("DB_PORT", &closed)]);
    let output = run(&["migrate", "up", "--create-database"], &vars);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!(":{closed} (DB_HOST, DB_PORT)")), "{stderr}");
}

#[tokio::test]
async fn a_database_that_answers_but_was_never_migrated_is_not_called_unreachable() {
    let database = TestDatabase::create_empty().await;
    let service = service_process::on(&database, &[], None).await;

    let ready = service.get("/ready").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    let ready = ready.json();
    assert_eq!(ready["postgres"], "schema_behind", "{ready}");
    let detail = ready["detail"].as_str().unwrap();
    assert!(detail.contains("0001_initial_schema"), "{detail}");
    assert!(detail.contains("gravity-bff migrate up"), "{detail}");

    // A write and a read say the same, and nothing was written.
    let write = http::request(service.port, "POST", "/v1/users", &[], Some(r#"{"name":"Ada"}"#))
        .await
        .unwrap();
    assert_eq!(write.status, 503, "{}", write.text());
    assert!(write.text().contains("0001_initial_schema"), "{}", write.text());
    let read = service.get("/v1/users/5b6c1f0e-9a7d-4c3b-8e21-0f4d6a7b8c9d").await;
    assert_eq!(read.status, 503);
    assert!(read.text().contains("gravity-bff migrate up"), "{}", read.text());

    // Migrating is all it takes: the running service becomes ready by itself.
    database.migrate().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ready = service.get("/ready").await;
        if ready.status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still not ready: {}",
            ready.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_database_one_migration_behind_names_the_missing_migration() {
    let database = TestDatabase::create().await;
    let mut migrator = Migrator::connect(&database.config().database).await.unwrap();
    migrator.down(1).await.unwrap();
    let latest = MIGRATIONS.last().unwrap();

    let service = service_process::on(&database, &[], None).await;
    let ready = service.get("/ready").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    let wanted = format!("migration {latest} is not applied");
    assert!(ready.text().contains(&wanted), "{}", ready.text());
}

#[test]
fn check_validates_the_settings_as_serve_would_and_connects_to_nothing() {
    let closed = free_port().to_string();
    let vars = with(
        Services::from_env().vars("postgres", "first"),
        &[("DB_PORT", &closed), ("REDIS_PORT", &closed)],
    );
    let good = run(&["check"], &vars);
    assert!(good.status.success(), "{}", text(&good.stderr));
    assert_eq!(text(&good.stdout), "settings ok\n");

    for (changes, named) in [
        (&[("CACHE_TTL_SECONDS", "5m")][..], "CACHE_TTL_SECONDS"),
        (&[("DB_PORT", "abc")][..], "DB_PORT"),
        (&[("AUTH_DISABLED", "")][..], "AUTH_ISSUER"),
    ] {
        let bad = run(&["check"], &with(vars.clone(), changes));
        assert_eq!(bad.status.code(), Some(2), "{changes:?}");
        let stderr = text(&bad.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(named), "{changes:?}: {stderr}");
    }
}

#[test]
fn a_taken_port_is_named_with_api_port() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let vars = with(Services::from_env().vars("postgres", "first"), &[("API_PORT", &port)]);
    let output = run(&[], &vars);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains(&format!("port {port} (API_PORT)")), "{stderr}");
}

#[tokio::test]
async fn a_newer_releases_migration_under_way_or_failed_does_not_stop_this_release() {
    let database = TestDatabase::create().await;
    // What `migrate up` of the next release records while its first file runs, and leaves if the
    // run is cut off: that version, dirty.
    let next = MIGRATIONS.last().unwrap().version + 1;
    database
        .client
        .execute("UPDATE schema_migrations SET version = $1, dirty = true", &[&next])
        .await
        .unwrap();

    let service = service_process::on(&database, &[], None).await;
    let ready = service.get("/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    let write = http::request(service.port, "POST", "/v1/users", &[], Some(r#"{"name":"Ada"}"#))
        .await
        .unwrap();
    assert_eq!(write.status, 201, "{}", write.text());

    // Dirty at this release's own newest migration: a run of it under way or cut off, so it is refused.
    database
        .client
        .execute("UPDATE schema_migrations SET version = $1", &[&(next - 1)])
        .await
        .unwrap();
    let service = service_process::on(&database, &[], None).await;
    let ready = service.get("/ready").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    let told = ready.text();
    assert!(told.contains(&format!("dirty at version {}", next - 1)), "{told}");
    assert!(told.contains(&format!("migrate force {}", next - 1)), "{told}");
}

#[tokio::test]
async fn health_started_answers_as_ready_until_the_first_time_it_is_then_as_liveness() {
    let database = TestDatabase::create_empty().await;
    let service = service_process::on(&database, &[], None).await;
    let probe_vars = vec![("API_PORT".to_owned(), service.port.to_string())];

    // Not ready yet (never migrated): plain liveness is 200, `started` is /ready's 503.
    assert_eq!(service.get("/health").await.status, 200);
    let started = service.get("/health?started").await;
    assert_eq!(started.status, 503, "{}", started.text());
    assert_eq!(started.json()["postgres"], "schema_behind", "{}", started.text());
    let probe = run(&["--health", "--started"], &probe_vars);
    assert_eq!(probe.status.code(), Some(1), "{}", text(&probe.stderr));
    assert!(
        text(&probe.stderr).contains("/health?started answered"),
        "{}",
        text(&probe.stderr)
    );
    assert_eq!(run(&["--health"], &probe_vars).status.code(), Some(0));

    // Ready once, without anyone asking /ready: from then on `started` is 200.
    database.migrate().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while service.get("/health?started").await.status != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(run(&["--health", "--started"], &probe_vars).status.code(), Some(0));

    // Not ready any more (the schema taken back, its connections replaced): a started replica
    // stays healthy; only /ready says so.
    let mut migrator = Migrator::connect(&database.config().database).await.unwrap();
    migrator.down(1).await.unwrap();
    database
        .client
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while service.get("/ready").await.status != 503 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still ready after its schema went back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(service.get("/health?started").await.status, 200);
    assert_eq!(run(&["--health", "--started"], &probe_vars).status.code(), Some(0));
}
