//! The physical limits: tools that talk to Redis or Postgres directly, with no HTTP and no JSON
//! in the way, measured before any instance of ours runs.

use std::path::Path;

use tokio::process::Command;

use super::{Bench, log};
use crate::data::SeededDatabase;
use crate::processes::run_to_file;
use crate::scenarios::{Limit, Reference, SCENARIOS, Target};
use crate::support::services::Services;

impl Bench<'_> {
    /// The physical limits the wanted scenarios are compared with, measured before any instance
    /// of ours runs. pgbench gets a database of its own, seeded like the bench's, plus its own
    /// scale-1 tables.
    pub(super) async fn limits(&mut self, services: &Services) -> Result<(), String> {
        let settings = self.settings;
        let mut wanted: Vec<Limit> = SCENARIOS
            .iter()
            .filter(|scenario| settings.wants(scenario.name))
            .flat_map(|scenario| {
                let target = match scenario.target {
                    Some(Target::Throughput {
                        reference: Reference::Limit(limit),
                        ..
                    }) => Some(limit),
                    _ => None,
                };
                scenario.limit.into_iter().chain(target)
            })
            .collect();
        wanted.sort();
        wanted.dedup();
        let seconds = settings.duration.as_secs().to_string();
        if wanted.contains(&Limit::RedisGet) {
            log(&format!(
                "limit: redis-benchmark -t get at {} connections",
                settings.connections
            ));
            let requests = (settings.duration.as_secs() * 60_000).to_string();
            run_to_file(
                Command::new("redis-benchmark").args([
                    "-h",
                    &services.redis_host,
                    "-p",
                    &services.redis_port.to_string(),
                    "-t",
                    "get",
                    "-c",
                    &settings.connections.to_string(),
                    "-n",
                    &requests,
                    "--csv",
                ]),
                "redis-benchmark",
                &self.folder.join(Limit::RedisGet.file()),
                &self.folder,
            )
            .await?;
        }
        let pgbench_limits: Vec<Limit> = wanted.into_iter().filter(|limit| *limit != Limit::RedisGet).collect();
        if pgbench_limits.is_empty() {
            return Ok(());
        }
        let database = SeededDatabase::create(services, "pgbench", &settings.binary, settings.users).await?;
        let pgbench = |extra: &[&str]| {
            let mut command = Command::new("pgbench");
            command
                .env("PGHOST", &services.pg_host)
                .env("PGPORT", services.pg_port.to_string())
                .env("PGUSER", &services.pg_user)
                .env("PGPASSWORD", &services.pg_password)
                .args(extra);
            command
        };
        run_to_file(
            &mut pgbench(&["-i", "-s", "1", "-q", &database.name]),
            "pgbench -i",
            Path::new("/dev/null"),
            &self.folder,
        )
        .await?;
        let clients = settings.pg_clients.to_string();
        let threads = self.meta.nproc.max(1).to_string();
        for limit in pgbench_limits {
            let (what, script): (&str, &[&str]) = match limit {
                Limit::PgbenchSelect => ("pgbench -S", &["-S"]),
                Limit::PgbenchList => ("pgbench, the list query", &["-n", "-f", "bench/sql/pgbench_list.sql"]),
                Limit::PgbenchInsert => ("pgbench, the insert", &["-n", "-f", "bench/sql/pgbench_insert.sql"]),
                Limit::RedisGet => continue,
            };
            log(&format!("limit: {what}, -M prepared, {clients} clients, {seconds} s"));
            let mut arguments = vec!["-M", "prepared", "-c", &clients, "-j", &threads, "-T", &seconds];
            arguments.extend(script);
            arguments.push(&database.name);
            run_to_file(
                &mut pgbench(&arguments),
                what,
                &self.folder.join(limit.file()),
                &self.folder,
            )
            .await?;
        }
        Ok(())
    }
}
