//! The processes the bench starts: service instances, the bare hyper ceiling, oha, pgbench and
//! redis-benchmark. Each is killed when its handle is dropped, so an error, a panic or Ctrl-C
//! (which drops the whole run) leaves none behind.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::http::wait_for_200;

/// A process of ours, SIGKILLed if dropped before `stop`.
pub struct Process {
    child: Child,
    pub pid: u32,
}

impl Process {
    pub fn spawn(command: &mut Command, what: &str) -> Result<Process, String> {
        let child = command
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| format!("cannot run {what}: {error}"))?;
        let pid = child.id().ok_or_else(|| format!("{what} exited at once"))?;
        Ok(Process { child, pid })
    }

    /// SIGTERM, a few seconds to finish (the service drains its connections), then SIGKILL.
    pub async fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stderr(Stdio::null())
            .status();
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    pub async fn wait(&mut self) -> Result<std::process::ExitStatus, String> {
        self.child.wait().await.map_err(|error| error.to_string())
    }
}

/// Where the processes' output goes: stdout where the caller says, stderr appended to the run's
/// `stderr.log`.
pub fn stderr_log(folder: &Path) -> Result<File, String> {
    File::options()
        .create(true)
        .append(true)
        .open(folder.join("stderr.log"))
        .map_err(|error| format!("cannot open stderr.log: {error}"))
}

/// A running HTTP server of ours (a service instance or bare hyper).
pub struct Server {
    pub process: Process,
    pub url: String,
}

impl Server {
    /// Starts `binary` with `env` on `port` and waits until `ready_path` answers 200.
    pub async fn start(
        binary: &Path,
        env: &[(String, String)],
        port: u16,
        ready_path: &str,
        stdout: &Path,
        folder: &Path,
    ) -> Result<Server, String> {
        let stdout = File::options()
            .create(true)
            .append(true)
            .open(stdout)
            .map_err(|error| format!("cannot open {}: {error}", stdout.display()))?;
        let process = Process::spawn(
            Command::new(binary)
                .envs(env.iter().map(|(name, value)| (name.as_str(), value.as_str())))
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr_log(folder)?),
            &binary.display().to_string(),
        )?;
        let url = format!("http://127.0.0.1:{port}");
        wait_for_200(&url, ready_path, Duration::from_secs(20))
            .await
            .map_err(|error| format!("{} did not become ready: {error}; see stderr.log", binary.display()))?;
        Ok(Server { process, url })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid
    }
}

/// Runs a command to its end with its stdout in `output` (stderr to the run's `stderr.log`);
/// dropping the future kills it.
pub async fn run_to_file(command: &mut Command, what: &str, output: &Path, folder: &Path) -> Result<(), String> {
    let file = File::create(output).map_err(|error| format!("cannot create {}: {error}", output.display()))?;
    let mut process = Process::spawn(
        command.stdin(Stdio::null()).stdout(file).stderr(stderr_log(folder)?),
        what,
    )?;
    let status = process.wait().await?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({status}); see {}",
            folder.join("stderr.log").display()
        ))
    }
}

/// A command's stdout (and stderr) as text; `None` if it cannot run.
pub async fn output_of(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Some(text)
}

/// Whether the binary knows a setting: its `--help` lists every setting it reads.
pub async fn supports_setting(binary: &Path, setting: &str) -> bool {
    output_of(binary, &["--help"])
        .await
        .is_some_and(|help| help.contains(setting))
}

/// `program` on the PATH, or `None`.
pub fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|directory| directory.join(program))
            .find(|candidate| candidate.is_file())
    })
}
