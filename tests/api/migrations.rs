//! Migrations: golang-migrate's bookkeeping, the dirty flag, the advisory lock, a failed file rolled back.

use std::time::Duration;

use gravity_bff::db::migrate::{MIGRATIONS, MigrateError, Migrator, SchemaState, advisory_lock_id, latest_version};

use crate::helpers::TestDatabase;

async fn migrator(database: &TestDatabase) -> Migrator {
    Migrator::connect(&database.config().database).await.unwrap()
}

async fn bookkeeping(database: &TestDatabase) -> Vec<(i64, bool)> {
    database
        .client
        .query("SELECT version, dirty FROM schema_migrations", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

async fn has_table(database: &TestDatabase, table: &str) -> bool {
    database
        .client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn up_on_an_empty_database_applies_everything_and_records_one_clean_row() {
    let database = TestDatabase::create_empty().await;
    let mut migrator = migrator(&database).await;
    let applied = migrator.up().await.unwrap();
    assert_eq!(applied.len(), MIGRATIONS.len());
    assert!(has_table(&database, "users").await);
    assert_eq!(bookkeeping(&database).await, vec![(latest_version(), false)]);
    assert_eq!(
        migrator.state().await.unwrap(),
        SchemaState {
            version: Some(latest_version()),
            dirty: false
        }
    );
    assert!(migrator.up().await.unwrap().is_empty(), "a second up has nothing to do");
}

#[tokio::test]
async fn the_table_has_golang_migrates_columns() {
    let database = TestDatabase::create().await;
    let columns: Vec<(String, String, String)> = database
        .client
        .query(
            "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
             WHERE table_name = 'schema_migrations' ORDER BY ordinal_position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(
        columns,
        [
            ("version".into(), "bigint".into(), "NO".into()),
            ("dirty".into(), "boolean".into(), "NO".into())
        ]
    );
}

#[tokio::test]
async fn down_one_then_up_again_returns_to_the_latest_version() {
    let database = TestDatabase::create().await;
    let mut migrator = migrator(&database).await;
    let reverted = migrator.down(1).await.unwrap();
    assert_eq!(reverted.len(), 1);
    assert_eq!(bookkeeping(&database).await, vec![(latest_version() - 1, false)]);
    let applied = migrator.up().await.unwrap();
    assert_eq!(applied.len(), 1);
    assert_eq!(bookkeeping(&database).await, vec![(latest_version(), false)]);
}

#[tokio::test]
async fn down_all_leaves_an_empty_table_as_golang_migrate_does() {
    let database = TestDatabase::create().await;
    let mut migrator = migrator(&database).await;
    migrator.down(MIGRATIONS.len()).await.unwrap();
    assert!(!has_table(&database, "users").await);
    assert_eq!(bookkeeping(&database).await, vec![]);
    assert!(matches!(
        migrator.down(1).await,
        Err(MigrateError::TooFewApplied {
            requested: 1,
            applied: 0
        })
    ));
}

#[tokio::test]
async fn a_dirty_database_is_refused() {
    let database = TestDatabase::create().await;
    database
        .client
        .batch_execute("UPDATE schema_migrations SET dirty = true")
        .await
        .unwrap();
    let mut migrator = migrator(&database).await;
    assert!(matches!(migrator.up().await, Err(MigrateError::Dirty(version)) if version == latest_version()));
    assert!(matches!(migrator.down(1).await, Err(MigrateError::Dirty(_))));
    migrator.force(latest_version()).await.unwrap();
    assert_eq!(bookkeeping(&database).await, vec![(latest_version(), false)]);
}

#[tokio::test]
async fn a_failing_migration_is_rolled_back_whole_and_the_next_run_retries_it() {
    let database = TestDatabase::create().await;
    let mut migrator = migrator(&database).await;
    // Back to version 1, then data that the case-insensitive unique index (version 2) rejects.
    migrator.down(MIGRATIONS.len() - 1).await.unwrap();
    database
        .client
        .batch_execute("INSERT INTO users (name, email) VALUES ('a', 'Same@x.io'), ('b', 'same@x.io')")
        .await
        .unwrap();
    let failed = migrator.up().await;
    assert!(
        matches!(
            failed,
            Err(MigrateError::Failed {
                version: 2,
                from: Some(1),
                rolled_back: true,
                ..
            })
        ),
        "{failed:?}"
    );
    let told = failed.unwrap_err().to_string();
    assert!(
        told.contains("rolled all of it back") && told.contains("clean at version 1"),
        "{told}"
    );
    // Postgres's DETAIL (the duplicated key) is kept, on the one line an operator is promised.
    assert!(told.contains("; DETAIL: Key") && !told.contains('\n'), "{told}");
    assert_eq!(
        bookkeeping(&database).await,
        vec![(1, false)],
        "clean at the version before"
    );

    database
        .client
        .batch_execute("DELETE FROM users WHERE name = 'b'")
        .await
        .unwrap();
    assert_eq!(
        migrator.up().await.unwrap().len(),
        MIGRATIONS.len() - 1,
        "the cause fixed, it runs"
    );
    assert_eq!(bookkeeping(&database).await, vec![(latest_version(), false)]);
}

#[tokio::test]
async fn a_migration_waits_for_a_lock_longer_than_the_services_statement_timeout() {
    let database = TestDatabase::create().await;
    let mut migrator = migrator(&database).await;
    migrator.down(1).await.unwrap();
    // An open transaction that read the tables holds the newest migration (which needs a table to
    // itself) for 10 s: more than the 9 s the service's own sessions would wait.
    let reader = database.services.connect(&database.name).await;
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM users; SELECT count(*) FROM idempotency_keys")
        .await
        .unwrap();
    let release = async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        reader.batch_execute("COMMIT").await.unwrap();
    };
    let started = std::time::Instant::now();
    let ((), applied) = tokio::join!(release, async {
        let applied = migrator.up().await;
        (applied, started.elapsed())
    });
    let (applied, took) = applied;
    assert!(
        took >= Duration::from_millis(9_500),
        "it waited for the reader ({took:?})"
    );
    assert_eq!(applied.unwrap().len(), 1, "and then ran");
    assert_eq!(bookkeeping(&database).await, vec![(latest_version(), false)]);
}

/// A session of its own holding golang-migrate's lock of `database`, named with `name_prefix`
/// before the database's name; the session and the lock's id.
async fn golang_migrates_lock_held(database: &TestDatabase, name_prefix: &str) -> (tokio_postgres::Client, i64) {
    let holder = database.services.connect(&database.name).await;
    let names = holder
        .query_one("SELECT current_schema()::text, current_database()::text", &[])
        .await
        .unwrap();
    let name = format!("{name_prefix}{}", names.get::<_, &str>(1));
    let lock_id = advisory_lock_id(names.get(0), "schema_migrations", &name);
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&lock_id])
        .await
        .unwrap();
    (holder, lock_id)
}

#[tokio::test]
async fn a_run_waits_for_golang_migrates_lock_as_its_library_or_its_command_line_names_it() {
    for cli in [false, true] {
        let database = TestDatabase::create_empty().await;
        // The command line takes the database's name from the URL's path: `/gravity_db`.
        let (holder, lock_id) = golang_migrates_lock_held(&database, if cli { "/" } else { "" }).await;
        let mut migrator = migrator(&database).await;
        let held = tokio::time::timeout(Duration::from_secs(2), migrator.up()).await;
        assert!(
            held.is_err(),
            "up waits while golang-migrate holds its lock (cli: {cli})"
        );
        assert!(!has_table(&database, "users").await, "and applies nothing meanwhile");
        holder
            .execute("SELECT pg_advisory_unlock($1)", &[&lock_id])
            .await
            .unwrap();
        let applied = migrator.up().await.unwrap();
        assert_eq!(applied.len(), MIGRATIONS.len(), "then runs");
    }
}

#[tokio::test]
async fn status_answers_at_once_while_a_run_holds_the_lock_and_changes_nothing() {
    let database = TestDatabase::create_empty().await;
    let (_holder, _) = golang_migrates_lock_held(&database, "").await;
    let mut migrator = migrator(&database).await;
    let state = tokio::time::timeout(Duration::from_secs(5), migrator.state()).await;
    let state = state.expect("status does not queue behind a run").unwrap();
    assert_eq!(
        state,
        SchemaState {
            version: None,
            dirty: false
        }
    );
    assert!(
        !has_table(&database, "schema_migrations").await,
        "status created nothing"
    );
}

#[tokio::test]
async fn the_email_index_holds_any_writer_to_one_address_however_its_accents_are_encoded() {
    let database = TestDatabase::create().await;
    let insert = "INSERT INTO users (name, email) VALUES ('a', $1)";
    database.client.execute(insert, &[&"jos\u{e9}@x.es"]).await.unwrap();
    let decomposed = database.client.execute(insert, &[&"JOSE\u{301}@x.es"]).await;
    let error = decomposed.expect_err("the same address with a combining accent, in upper case");
    let constraint = error.as_db_error().and_then(|error| error.constraint());
    assert_eq!(constraint, Some("users_email_lower_key"), "{error}");
}

#[tokio::test]
async fn a_session_with_no_schema_to_migrate_in_is_named_not_a_panic() {
    let database = TestDatabase::create_empty().await;
    let empty_path = format!("ALTER DATABASE \"{}\" SET search_path = ''", database.name);
    database.client.batch_execute(&empty_path).await.unwrap();
    let refused = Migrator::connect(&database.config().database).await;
    let told = refused.err().expect("refused").to_string();
    assert!(
        told.contains("no schema to migrate") && told.contains("DB_USER"),
        "{told}"
    );
}

#[tokio::test]
async fn two_concurrent_runs_leave_one_consistent_result() {
    let database = TestDatabase::create_empty().await;
    let (mut first, mut second) = (migrator(&database).await, migrator(&database).await);
    let (a, b) = tokio::join!(first.up(), second.up());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), MIGRATIONS.len(), "each migration ran exactly once");
    assert_eq!(bookkeeping(&database).await, vec![(latest_version(), false)]);
}

#[tokio::test]
async fn the_binary_migrates_and_reports_status() {
    let database = TestDatabase::create_empty().await;
    let vars = database.services.vars(&database.name, "unused");
    let run = move |arguments: &'static [&'static str]| {
        let vars = vars.clone();
        std::process::Command::new(crate::shutdown::BINARY)
            .args(arguments)
            .env_clear()
            .envs(vars)
            .output()
            .unwrap()
    };
    let (up, status) = tokio::task::spawn_blocking(move || (run(&["migrate", "up"]), run(&["migrate", "status"])))
        .await
        .unwrap();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status_text.starts_with(&format!("version: {}", latest_version())),
        "{status_text}"
    );
    assert!(status_text.contains("0001_initial_schema"));
}

/// A stand-in Postgres on a local port that answers its first client with `reply`, whatever it sent.
async fn a_server_answering(reply: &'static [u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut startup = [0; 512];
        let _ = socket.read(&mut startup).await;
        let _ = socket.write_all(reply).await;
        let _ = socket.read(&mut startup).await;
    });
    port
}

#[tokio::test]
async fn a_server_asking_for_a_password_none_was_given_for_names_the_login_settings() {
    // AuthenticationMD5Password (with its salt): what a stock pg_hba.conf's `md5` line asks of a
    // user logging in without DB_PASSWORD; the driver gives up before any SQLSTATE.
    let port = a_server_answering(b"R\0\0\0\x0c\0\0\0\x05salt").await;
    let database = TestDatabase::create_empty().await;
    let mut settings = database.config_with(&[("DB_PASSWORD", "")]).database;
    (settings.port, settings.ssl_mode) = (port, gravity_bff::config::SslMode::Disable);
    let Err(MigrateError::Connect(text)) = Migrator::connect(&settings).await else {
        panic!("a login refused before it began is a connect error");
    };
    assert!(text.contains("(DB_USER, DB_PASSWORD)"), "{text}");
}

#[tokio::test]
async fn a_server_refusing_tls_names_the_tls_settings() {
    let port = a_server_answering(b"N").await;
    let database = TestDatabase::create_empty().await;
    let mut settings = database.config().database;
    (settings.port, settings.ssl_mode) = (port, gravity_bff::config::SslMode::Require);
    let Err(MigrateError::Connect(text)) = Migrator::connect(&settings).await else {
        panic!("TLS refused is a connect error");
    };
    assert!(text.contains("(DB_SSL_MODE, DB_SSL_ROOT_CERT)"), "{text}");
}
