//! The data a run reads: a database of its own (from tests/support, dropped with its Redis keys
//! when the run ends), migrated by the binary under test and seeded with one statement; or, for a
//! stack that is already running, ids collected through its API.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use crate::support::http::Connection;
use crate::support::services::{Services, ThrowawayDatabase};

/// Users as the service would store them, in one statement; `ANALYZE` so the planner knows.
const SEED: &str = "
INSERT INTO users (name, email, avatar_url, created_at, updated_at)
SELECT 'Bench User ' || i,
       'bench.user' || i || '@example.com',
       'https://avatars.example.com/' || i || '.png',
       now() - i * interval '1 second',
       now() - i * interval '1 second'
FROM generate_series(1, $1::int) AS i";

/// Every id, in an order unrelated to insertion, so "the first N" are spread over the table.
const IDS: &str = "SELECT id::text FROM users ORDER BY md5(id::text)";

/// A throwaway database, migrated and seeded. Its name is also the services' Redis key prefix,
/// so dropping it removes their keys as well.
pub struct SeededDatabase {
    pub name: String,
    pub ids: Vec<String>,
    _throwaway: ThrowawayDatabase,
}

impl SeededDatabase {
    pub async fn create(services: &Services, label: &str, binary: &Path, users: u32) -> Result<SeededDatabase, String> {
        let throwaway = ThrowawayDatabase::create(services.clone(), label).await;
        let name = throwaway.name.clone();
        let migrated = Command::new(binary)
            .args(["migrate", "up"])
            .envs(services.vars(&name, &name))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|error| format!("cannot run {} migrate up: {error}", binary.display()))?;
        if !migrated.status.success() {
            return Err(format!(
                "{} migrate up failed: {}",
                binary.display(),
                String::from_utf8_lossy(&migrated.stderr).trim()
            ));
        }
        let client = services.connect(&name).await;
        let users = i32::try_from(users).map_err(|_| "BENCH_USERS is too large".to_owned())?;
        client
            .execute(SEED, &[&users])
            .await
            .map_err(|error| format!("seeding {name}: {error}"))?;
        client
            .batch_execute("ANALYZE users")
            .await
            .map_err(|error| format!("ANALYZE in {name}: {error}"))?;
        let ids = client
            .query(IDS, &[])
            .await
            .map_err(|error| format!("reading ids from {name}: {error}"))?
            .iter()
            .map(|row| row.get::<_, String>(0))
            .collect();
        Ok(SeededDatabase {
            name,
            ids,
            _throwaway: throwaway,
        })
    }
}

/// Ids of a stack that is already running: its database may not be reachable from here (the
/// production stack publishes no Postgres port), so they come from `GET /v1/users`, page by page,
/// until `wanted` are known or the list ends; when fewer than `minimum` exist, the missing users
/// are created with `POST`, so a fresh stack gets at most `minimum` requests of seeding.
pub async fn ids_through_api(base_url: &str, wanted: usize, minimum: usize) -> Result<Vec<String>, String> {
    let mut connection = Connection::to_url(base_url)?;
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    while ids.len() < wanted {
        let path = match &cursor {
            Some(cursor) => format!("/v1/users?limit=100&cursor={}", percent_encoded(cursor)),
            None => "/v1/users?limit=100".to_owned(),
        };
        let page = connection.get(&path).await?;
        if page.status != 200 {
            return Err(format!("GET {path} answered {}", page.status));
        }
        let page = page.json();
        ids.extend(
            page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|user| user["id"].as_str().map(str::to_owned)),
        );
        match page["next_cursor"].as_str() {
            Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
            _ => break,
        }
    }
    for number in ids.len()..minimum {
        let body = format!(r#"{{"name":"Bench Seed {number}"}}"#);
        let created = connection.send("POST", "/v1/users", &[], Some(&body)).await?;
        match created.json()["id"].as_str() {
            Some(id) if created.status == 201 => ids.push(id.to_owned()),
            _ => return Err(format!("POST /v1/users answered {}", created.status)),
        }
    }
    ids.truncate(wanted);
    Ok(ids)
}

/// A query value with everything but RFC 3986's unreserved characters percent-encoded.
fn percent_encoded(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
