//! The programs the bench runs to their end: oha, pgbench and redis-benchmark (service instances
//! and the bare hyper ceiling run through tests/support's `service`). Each is killed when its
//! future is dropped, so an error, a panic or Ctrl-C (which drops the whole run) leaves none behind.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::Command;

/// Runs a command to its end with its stdout in `output` (stderr added to the run's
/// `stderr.log`); dropping the future kills it.
pub async fn run_to_file(command: &mut Command, what: &str, output: &Path, folder: &Path) -> Result<(), String> {
    let file = File::create(output).map_err(|error| format!("cannot create {}: {error}", output.display()))?;
    let stderr_log = folder.join("stderr.log");
    let stderr = File::options()
        .create(true)
        .append(true)
        .open(&stderr_log)
        .map_err(|error| format!("cannot open stderr.log: {error}"))?;
    let status = command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(stderr)
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|error| format!("cannot run {what}: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status}); see {}", stderr_log.display()))
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
