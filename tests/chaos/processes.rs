//! The service under test (the release binary, exactly as it ships), plus a small raw HTTP helper
//! for set-up requests. The private Postgres and Redis come from tests/support.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use crate::support::free_port;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The service under test, started from the release binary with its settings in the environment.
pub struct Service {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Service {
    /// Starts the binary and waits until `/health` answers.
    pub async fn start(binary: &Path, env: &[(String, String)], log: PathBuf) -> Service {
        let port = free_port();
        let stdout = File::create(&log).expect("the log file can be created");
        let stderr = stdout.try_clone().expect("the log file handle clones");
        let child = Command::new(binary)
            .env_clear()
            .envs(env.iter().map(|(name, value)| (name.as_str(), value.as_str())))
            .env("API_PORT", port.to_string())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", binary.display()));
        let service = Service { child, port, log };
        let started = Instant::now();
        while get(port, "/health").await.map(|response| response.status) != Some(200) {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the service did not answer /health within 15 s; see {}",
                service.log.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        service
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
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

    /// Waits for the process to exit, up to `within`; `None` if it is still running.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The service's log, for a failure message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response to a set-up request.
pub struct RawResponse {
    pub status: u16,
    pub body: Vec<u8>,
    /// `X-Cache: HIT` was among the headers.
    pub cache_hit: bool,
}

impl RawResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

pub async fn get(port: u16, path: &str) -> Option<RawResponse> {
    request(port, "GET", path, None).await
}

/// One request on a fresh connection (`Connection: close`); `None` if there was no answer.
pub async fn request(port: u16, method: &str, path: &str, json: Option<&str>) -> Option<RawResponse> {
    request_with_headers(port, method, path, &[], json).await
}

/// Like `request`, with more headers (such as `Idempotency-Key`).
pub async fn request_with_headers(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    json: Option<&str>,
) -> Option<RawResponse> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = json {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        head.push_str(json.unwrap_or_default());
        stream.write_all(head.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        let split = answer.windows(4).position(|window| window == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&answer[..split]).into_owned();
        let status = head.get(9..12)?.parse().ok()?;
        let cache_hit = head.to_ascii_lowercase().contains("\r\nx-cache: hit");
        Some(RawResponse {
            status,
            body: answer[split + 4..].to_vec(),
            cache_hit,
        })
    };
    tokio::time::timeout(Duration::from_secs(15), exchange)
        .await
        .ok()
        .flatten()
}

/// Creates `count` users and returns their ids.
pub async fn create_users(port: u16, count: usize, label: &str) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    for number in 0..count {
        let body = format!(r#"{{"name":"{label} {number}","email":"{label}-{number}@example.org"}}"#);
        let response = request(port, "POST", "/v1/users", Some(&body))
            .await
            .expect("the service answers a create");
        assert_eq!(response.status, 201, "{}", String::from_utf8_lossy(&response.body));
        ids.push(
            response.json()["id"]
                .as_str()
                .expect("a created user has an id")
                .to_owned(),
        );
    }
    ids
}

/// A figure from `/metrics`, such as `gravity_cache_hits_total`.
pub async fn metric(port: u16, name: &str) -> Option<f64> {
    let response = get(port, "/metrics").await?;
    crate::support::metric_value(&String::from_utf8_lossy(&response.body), name)
}
