//! The service as a process of the real binary (as a container runs it), for what only a process
//! shows: its stdout and stderr lines, its descriptor limit, how it takes signals, and its exit
//! code. Its output goes to files, so a test reads it at any time and the process never blocks on
//! a full pipe.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{TestDatabase, free_port, signal, wait_until_serving};
use crate::shutdown::BINARY;

/// A running `gravity-bff` with its output captured; killed when dropped.
pub struct ServiceProcess {
    pub port: u16,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// How the process ended, and everything it wrote.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl ServiceProcess {
    /// Starts the binary with exactly `vars` (plus a free `API_PORT`) and waits until it serves.
    pub async fn start(vars: Vec<(String, String)>) -> ServiceProcess {
        ServiceProcess::launch(vars, None).await
    }

    /// Starts the binary on `database` with the settings adjusted by `extra`, under
    /// `sh -c 'ulimit -n N; exec …'` when a descriptor limit is given, and waits until it serves.
    pub async fn on(database: &TestDatabase, extra: &[(&str, &str)], descriptor_limit: Option<u32>) -> ServiceProcess {
        let mut vars = database.services.vars(&database.name, &database.name);
        vars.retain(|(name, _)| !extra.iter().any(|(extra, _)| extra == name));
        vars.extend(extra.iter().map(|(name, value)| (name.to_string(), value.to_string())));
        ServiceProcess::launch(vars, descriptor_limit).await
    }

    async fn launch(mut vars: Vec<(String, String)>, descriptor_limit: Option<u32>) -> ServiceProcess {
        let port = free_port();
        vars.retain(|(name, _)| name != "API_PORT");
        vars.push(("API_PORT".into(), port.to_string()));
        let scratch = std::env::temp_dir().join(format!("gravity-bff-test-{}-{port}", std::process::id()));
        let (stdout, stderr) = (scratch.with_extension("stdout"), scratch.with_extension("stderr"));
        let mut command = match descriptor_limit {
            None => Command::new(BINARY),
            Some(limit) => {
                let mut shell = Command::new("sh");
                shell.args(["-c", &format!("ulimit -n {limit} && exec \"$0\""), BINARY]);
                shell
            }
        };
        let child = command
            .env_clear()
            .envs(vars)
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("the binary starts");
        let process = ServiceProcess {
            port,
            child,
            stdout,
            stderr,
        };
        // Start-up waits up to 5 s for a first Postgres connection before it serves.
        wait_until_serving(port, Duration::from_secs(15)).await;
        process
    }

    /// The process id, for what `/proc` tells of it.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything written to stderr so far: the events, one JSON line each.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The request lines written to stdout so far (the log writer flushes every few ms).
    pub fn request_lines(&self) -> Vec<Value> {
        json_lines(&std::fs::read_to_string(&self.stdout).unwrap_or_default(), "stdout")
    }

    /// `GET path` on a connection of its own: the status and the body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer.get(9..12).and_then(|status| status.parse().ok()).unwrap_or(0);
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_owned();
        (status, body)
    }

    /// A figure of `/metrics` by its full name with labels, e.g. `gravity_http_connections_open`.
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.get("/metrics").await;
        crate::support::metric_value(&text, series).unwrap_or(0.0)
    }

    /// Sends `signal_name` (`TERM`, `HUP`, …) and waits for the process to end.
    pub async fn stop_with(self, signal_name: &str) -> Finished {
        signal(self.child.id(), signal_name);
        self.wait().await
    }

    /// Waits for the process to end on its own (after a signal sent meanwhile).
    pub async fn wait(mut self) -> Finished {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(tokio::time::Instant::now() < deadline, "the process ends within 20 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Finished {
            status,
            stdout: std::fs::read_to_string(&self.stdout).expect("stdout is UTF-8"),
            stderr: std::fs::read_to_string(&self.stderr).expect("stderr is UTF-8"),
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stdout);
        let _ = std::fs::remove_file(&self.stderr);
    }
}

impl Finished {
    /// The request lines: every stdout line, each of which must be a JSON object.
    pub fn request_lines(&self) -> Vec<Value> {
        json_lines(&self.stdout, "stdout")
    }

    /// The event lines: every stderr line, each of which must be a JSON object.
    pub fn events(&self) -> Vec<Value> {
        json_lines(&self.stderr, "stderr")
    }

    /// The one event with this `message`.
    pub fn event(&self, message: &str) -> Value {
        let events = self.events();
        let mut matching = events.iter().filter(|event| event["message"] == message);
        let event = matching
            .next()
            .unwrap_or_else(|| panic!("no {message:?} event in:\n{}", self.stderr));
        assert!(matching.next().is_none(), "two {message:?} events");
        event.clone()
    }
}

fn json_lines(text: &str, stream: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("{stream} holds only JSON lines ({error}): {line:?}"));
            assert!(value.is_object(), "{stream}: {line}");
            value
        })
        .collect()
}
