//! The service as a process of the real binary, for what only a process shows: its stdout and
//! stderr lines, how it takes signals, and its exit code.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{free_port, signal, wait_until_serving};
use crate::shutdown::BINARY;

/// A running `gravity-bff` with its output captured.
pub struct ServiceProcess {
    pub port: u16,
    child: Child,
}

/// How the process ended, and everything it wrote.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl ServiceProcess {
    /// Starts the binary with exactly `vars` (plus a free `API_PORT`) and waits until it serves.
    pub async fn start(mut vars: Vec<(String, String)>) -> ServiceProcess {
        let port = free_port();
        vars.retain(|(name, _)| name != "API_PORT");
        let child = Command::new(BINARY)
            .env_clear()
            .envs(vars)
            .env("API_PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        // Start-up waits up to 5 s for a first Postgres connection before it serves.
        wait_until_serving(port, Duration::from_secs(15)).await;
        ServiceProcess { port, child }
    }

    /// Sends `signal_name` (`TERM`, `HUP`, …) and waits for the process to end.
    pub async fn stop_with(self, signal_name: &str) -> Finished {
        signal(self.child.id(), signal_name);
        self.wait().await
    }

    /// Waits for the process to end on its own (after a signal sent meanwhile).
    pub async fn wait(self) -> Finished {
        let child = self.child;
        let output = tokio::time::timeout(
            Duration::from_secs(20),
            tokio::task::spawn_blocking(move || child.wait_with_output()),
        )
        .await
        .expect("the process ends within 20 s")
        .unwrap()
        .unwrap();
        Finished {
            status: output.status,
            stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
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
