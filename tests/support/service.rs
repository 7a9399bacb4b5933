//! The one way the harnesses run the service binary (or another HTTP server of ours) as a
//! process, as a container runs it: settings in the environment, a free port unless one is
//! given, stdout and stderr in files (so the output can be read at any time and the process never
//! blocks on a full pipe), started once its ready path answers 200, killed when dropped.
//!
//! The API tests run the cargo-built binary, chaos and the bench the release binary by path.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::http::{self, Response};
use crate::support::{free_port, signal};

/// What to run and how, changed from [`Launch::new`] with struct update syntax; `start` runs it.
pub struct Launch {
    pub binary: PathBuf,
    pub vars: Vec<(String, String)>,
    /// A free one when `None`.
    pub port: Option<u16>,
    /// The setting that carries the port: `API_PORT` for the service.
    pub port_variable: &'static str,
    /// Started once this path answers 200, which it must within `ready_within`.
    pub ready_path: &'static str,
    /// Start-up waits up to 5 s for a first Postgres connection before it serves.
    pub ready_within: Duration,
    /// Run under `sh -c 'ulimit -n N; exec …'` when given.
    pub descriptor_limit: Option<u32>,
    /// Files for stdout and stderr (one file when both are the same), created afresh or, with
    /// `append`, added to; temporary files removed with the process when `None`.
    pub output: Option<(PathBuf, PathBuf)>,
    pub append: bool,
    /// The caller's environment under `vars`, rather than `vars` alone.
    pub inherit_environment: bool,
}

/// A running process with its output captured; killed when dropped.
pub struct Service {
    pub port: u16,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    remove_output: bool,
}

/// How the process ended, and everything it wrote.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Launch {
    /// `binary` with exactly `vars` in its environment (plus the port), ready at `/health`.
    pub fn new(binary: impl Into<PathBuf>, vars: Vec<(String, String)>) -> Launch {
        Launch {
            binary: binary.into(),
            vars,
            port: None,
            port_variable: "API_PORT",
            ready_path: "/health",
            ready_within: Duration::from_secs(15),
            descriptor_limit: None,
            output: None,
            append: false,
            inherit_environment: false,
        }
    }

    pub async fn start(self) -> Result<Service, String> {
        let port = self.port.unwrap_or_else(free_port);
        let remove_output = self.output.is_none();
        let (stdout, stderr) = self.output.unwrap_or_else(|| {
            let scratch = std::env::temp_dir().join(format!("gravity-bff-test-{}-{port}", std::process::id()));
            (scratch.with_extension("stdout"), scratch.with_extension("stderr"))
        });
        let open = |path: &Path| {
            File::options()
                .create(true)
                .write(true)
                .append(self.append)
                .truncate(!self.append)
                .open(path)
                .map_err(|error| format!("cannot open {}: {error}", path.display()))
        };
        let stdout_file = open(&stdout)?;
        let stderr_file = match stdout == stderr {
            true => stdout_file.try_clone().map_err(|error| error.to_string())?,
            false => open(&stderr)?,
        };
        let mut command = match self.descriptor_limit {
            None => Command::new(&self.binary),
            Some(limit) => {
                let mut shell = Command::new("sh");
                shell.args(["-c", &format!("ulimit -n {limit} && exec \"$0\"")]);
                shell.arg(&self.binary);
                shell
            }
        };
        if !self.inherit_environment {
            command.env_clear();
        }
        let child = command
            .envs(self.vars)
            .env(self.port_variable, port.to_string())
            .stdin(Stdio::null())
            .stdout(stdout_file)
            .stderr(stderr_file)
            .spawn()
            .map_err(|error| format!("cannot run {}: {error}", self.binary.display()))?;
        let mut service = Service {
            port,
            child,
            stdout,
            stderr,
            remove_output,
        };
        let deadline = tokio::time::Instant::now() + self.ready_within;
        loop {
            let answer = http::get(port, self.ready_path).await;
            if answer.as_ref().is_ok_and(|response| response.status == 200) {
                return Ok(service);
            }
            let exited = service.child.try_wait().ok().flatten();
            if exited.is_some() || tokio::time::Instant::now() >= deadline {
                let last = answer.map_or_else(
                    |failure| failure.to_string(),
                    |response| format!("status {}", response.status),
                );
                return Err(format!(
                    "{} did not answer 200 on {} within {:?} ({}); see {}",
                    self.binary.display(),
                    self.ready_path,
                    self.ready_within,
                    exited.map_or(last, |status| format!("exited: {status}")),
                    service.stderr.display(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Service {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where stdout goes (the request lines, for the service).
    pub fn stdout_path(&self) -> &Path {
        &self.stdout
    }

    /// Everything written to stderr so far: the events, one JSON line each.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The request lines written to stdout so far (the log writer flushes every few ms).
    pub fn request_lines(&self) -> Vec<Value> {
        json_lines(&std::fs::read_to_string(&self.stdout).unwrap_or_default(), "stdout")
    }

    /// The last lines of stderr (where chaos also sends stdout), for a failure message.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.stderr();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `GET path` on a connection of its own; panics when there is no answer.
    pub async fn get(&self, path: &str) -> Response {
        http::get(self.port, path)
            .await
            .unwrap_or_else(|failure| panic!("GET {path} on port {}: {failure}", self.port))
    }

    /// A figure of `/metrics` by its full name with labels; 0 when it is not there.
    pub async fn metric(&self, series: &str) -> f64 {
        http::metric(self.port, series).await.unwrap_or(0.0)
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Open file descriptors (sockets included): a leak shows here.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|entries| entries.count())
            .unwrap_or(0)
    }

    /// Waits for the process to end, up to `within`; `None` if it is still running.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends `signal_name` (`TERM`, `HUP`, …) and waits for the process to end.
    pub async fn stop_with(self, signal_name: &str) -> Finished {
        signal(self.pid(), signal_name);
        self.wait().await
    }

    /// Waits for the process to end on its own (after a signal sent meanwhile).
    pub async fn wait(mut self) -> Finished {
        let status = self.wait_exit(Duration::from_secs(20)).await;
        Finished {
            status: status.expect("the process ends within 20 s"),
            stdout: std::fs::read_to_string(&self.stdout).expect("stdout is UTF-8"),
            stderr: std::fs::read_to_string(&self.stderr).expect("stderr is UTF-8"),
        }
    }

    /// SIGTERM, `grace` to finish (the service drains its connections), then SIGKILL.
    pub async fn terminate(mut self, grace: Duration) {
        if let Ok(None) = self.child.try_wait() {
            signal(self.pid(), "TERM");
            self.wait_exit(grace).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.remove_output {
            let _ = std::fs::remove_file(&self.stdout);
            let _ = std::fs::remove_file(&self.stderr);
        }
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
