//! The load of a scenario: oha (one run, or `mixed`'s two at once) with CPU counted around it,
//! the cache warmed first where the scenario reads hot ids; and the invalidation-lag probe.

use tokio::process::Command;

use super::{Bench, log};
use crate::lag_probe;
use crate::processes::run_to_file;
use crate::results::{cpu_file, lag_file, oha_file, write_json};
use crate::scenarios::{CREATE_BODY, Instance, Load, Method, Path as UrlPath, Scenario, mixed_split};
use crate::support::http::Connection;

impl Bench<'_> {
    /// One oha scenario, or `mixed`'s two at once, with CPU counted around them.
    pub(super) async fn load(&mut self, scenario: &Scenario, base_url: &str, service: &[u32]) -> Result<(), String> {
        let settings = self.settings;
        let connections = scenario.connections(settings.connections);
        let authorization = match scenario.instance {
            Instance::Authenticated => Some(
                self.authorization
                    .clone()
                    .ok_or("the authenticated instance has no token to be read with")?,
            ),
            _ => None,
        };
        let authorization = authorization.as_deref();
        let uses_hot_ids = matches!(
            scenario.load,
            Load::Mixed
                | Load::Oha {
                    path: UrlPath::HotUsers,
                    ..
                }
        );
        if uses_hot_ids {
            let passes = if scenario.instance == Instance::LocalCopies {
                3
            } else {
                2
            };
            let hits = self.warm(base_url, passes, authorization).await?;
            self.meta.cache_warm.insert(scenario.name.to_owned(), hits);
        }
        match scenario.load {
            Load::Oha { method, path, .. } => {
                log(&format!(
                    "{}: {} s at {connections} connection{}",
                    scenario.name,
                    settings.duration.as_secs(),
                    if connections == 1 { "" } else { "s" }
                ));
                let arguments = self.oha_arguments(base_url, method, path, connections, authorization)?;
                let measuring = self.accounting.start(service).await;
                let outcome = self.oha(scenario.name, &arguments).await;
                let cpu = self.accounting.stop(measuring);
                write_json(&cpu_file(&self.folder, scenario.name), &cpu)?;
                outcome
            }
            Load::Mixed => {
                let (reads, writes) = mixed_split(connections);
                log(&format!(
                    "mixed: {} s, reads on {reads} connections and writes on {writes} at once",
                    settings.duration.as_secs()
                ));
                let read_arguments = self.oha_arguments(base_url, Method::Get, UrlPath::HotUsers, reads, None)?;
                let write_arguments = self.oha_arguments(base_url, Method::Create, UrlPath::Users, writes, None)?;
                let measuring = self.accounting.start(service).await;
                let (read_outcome, write_outcome) = tokio::join!(
                    self.oha("mixed_reads", &read_arguments),
                    self.oha("mixed_writes", &write_arguments)
                );
                let cpu = self.accounting.stop(measuring);
                write_json(&cpu_file(&self.folder, scenario.name), &cpu)?;
                read_outcome.and(write_outcome)
            }
            Load::InvalidationLag => Err("the invalidation lag runs on a pair of instances".to_owned()),
        }
    }

    fn oha_arguments(
        &self,
        base_url: &str,
        method: Method,
        path: UrlPath,
        connections: u32,
        authorization: Option<&str>,
    ) -> Result<Vec<String>, String> {
        let mut arguments = vec!["-c".to_owned(), connections.to_string()];
        if let Some(authorization) = authorization {
            arguments.extend(["-H".to_owned(), format!("Authorization: {authorization}")]);
        }
        if method == Method::Create {
            arguments
                .extend(["-m", "POST", "-H", "Content-Type: application/json", "-d", CREATE_BODY].map(str::to_owned));
        }
        match path {
            UrlPath::Health => arguments.push(format!("{base_url}/health")),
            UrlPath::ListPage => arguments.push(format!("{base_url}/v1/users?limit=20")),
            UrlPath::Users => arguments.push(format!("{base_url}/v1/users")),
            UrlPath::HotUsers | UrlPath::AllUsers => {
                let (which, count) = match path {
                    UrlPath::HotUsers => ("hot", self.settings.hot_ids as usize),
                    _ => ("all", self.ids.len()),
                };
                let port = base_url.rsplit(':').next().unwrap_or("0");
                let file = self.folder.join(format!("urls_{which}_{port}.txt"));
                let urls: String = self
                    .ids
                    .iter()
                    .take(count)
                    .map(|id| format!("{base_url}/v1/users/{id}\n"))
                    .collect();
                std::fs::write(&file, urls).map_err(|error| format!("cannot write {}: {error}", file.display()))?;
                arguments.push("--urls-from-file".to_owned());
                arguments.push(file.display().to_string());
            }
        }
        Ok(arguments)
    }

    /// oha for the run's duration; its JSON goes to `<name>.json`. `-w` lets requests in flight at
    /// the deadline finish, so they are not counted as errors.
    async fn oha(&self, name: &str, arguments: &[String]) -> Result<(), String> {
        let seconds = format!("{}s", self.settings.duration.as_secs());
        run_to_file(
            Command::new("oha")
                .args(["--no-tui", "--output-format", "json", "-z", &seconds, "-w"])
                .args(arguments),
            "oha",
            &oha_file(&self.folder, name),
            &self.folder,
        )
        .await
    }

    /// Reads every hot id `passes` times (with `authorization` when the instance wants a token) so
    /// the scenario measures a warm cache; returns how many answered from the cache in the last
    /// pass, as "hits/ids".
    async fn warm(&self, base_url: &str, passes: usize, authorization: Option<&str>) -> Result<String, String> {
        let mut connection = Connection::to_url(base_url)?;
        if let Some(authorization) = authorization {
            connection = connection.with_header("Authorization", authorization);
        }
        let hot = &self.ids[..self.ids.len().min(self.settings.hot_ids as usize)];
        let mut hits = 0;
        let mut failed = 0;
        for pass in 1..=passes {
            for id in hot {
                let response = connection.get(&format!("/v1/users/{id}")).await?;
                if pass == passes {
                    hits += usize::from(response.answered_from_cache());
                    failed += usize::from(response.status != 200);
                }
            }
        }
        if failed > 0 {
            log(&format!("warning: {failed} hot ids did not answer 200"));
        }
        Ok(format!("{hits}/{}", hot.len()))
    }

    /// The invalidation lag between two running instances: writes through A, reads through B.
    pub(super) async fn lag(&mut self, scenario: &Scenario, a: &str, b: &str) -> Result<(), String> {
        log(&format!(
            "{}: {} writes through A, each read back through B",
            scenario.name, self.settings.lag_writes
        ));
        let mut ids = self.ids.clone();
        let first = self.next_lag_id % ids.len().max(1);
        ids.rotate_left(first);
        self.next_lag_id += self.settings.lag_writes as usize;
        let record = lag_probe::measure(a, b, &ids, self.settings.lag_writes, scenario.name).await?;
        write_json(&lag_file(&self.folder, scenario.name), &record)
    }
}
