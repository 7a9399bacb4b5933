//! A private Postgres cluster: initdb'd into a temporary directory and run on a spare port, so a
//! test can stop, restart, freeze (SIGSTOP) and count its connections without touching anyone
//! else's database.
//!
//! initdb and pg_ctl refuse to run as root, so when the harness is root they run as the `postgres`
//! user (runuser), which owns the directory. The binaries come from `bin` (e.g.
//! /usr/lib/postgresql/15/bin; `Cluster::default_bin` finds the newest installed).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::free_port;

pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    as_postgres_user: bool,
}

impl Cluster {
    /// The newest `/usr/lib/postgresql/*/bin` (Debian's layout), or `PG_BIN`.
    pub fn default_bin() -> PathBuf {
        if let Ok(bin) = std::env::var("PG_BIN") {
            return PathBuf::from(bin);
        }
        let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|entries| {
                entries
                    .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
                    .collect()
            })
            .unwrap_or_default();
        candidates.retain(|bin| bin.join("initdb").exists());
        candidates.sort_by_key(|bin| {
            bin.parent()
                .and_then(|version| version.file_name()?.to_str()?.parse::<u32>().ok())
                .unwrap_or(0)
        });
        candidates.pop().unwrap_or_else(|| {
            panic!("initdb not found under /usr/lib/postgresql/*/bin: apt-get install postgresql, or set PG_BIN")
        })
    }

    /// initdb and start. `fsync` off: durability is not what these tests are about, and it
    /// makes restarts take a fraction of a second.
    pub fn create(bin: &Path, label: &str) -> Cluster {
        let as_postgres_user = is_root();
        let dir = std::env::temp_dir().join(format!("gravity-pg-{label}-{}-{}", std::process::id(), free_port()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the cluster directory can be created");
        if as_postgres_user {
            run(
                Command::new("chown").arg("postgres:postgres").arg(&dir),
                "chown the cluster directory",
            );
        }
        let cluster = Cluster {
            bin: bin.to_path_buf(),
            dir,
            port: free_port(),
            as_postgres_user,
        };
        let data = cluster.data_dir();
        cluster.pg(
            "initdb",
            &["-D", &data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
            "initdb",
        );
        cluster.start();
        cluster
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=100",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log").display().to_string();
        self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "30",
                "start",
            ],
            "pg_ctl start",
        );
    }

    /// Stops the server: `fast` ends every session and checkpoints, as a restart by an operator does.
    pub fn stop(&self, mode: &str) {
        self.pg(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", mode, "-w", "-t", "30", "stop"],
            "pg_ctl stop",
        );
    }

    /// The postmaster and every backend it runs: what SIGSTOP must reach to freeze the server.
    pub fn processes(&self) -> Vec<u32> {
        let pid_file = std::fs::read_to_string(self.dir.join("data").join("postmaster.pid")).unwrap_or_default();
        let Some(postmaster) = pid_file.lines().next().and_then(|line| line.trim().parse::<u32>().ok()) else {
            return Vec::new();
        };
        let children = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| parent_of(*pid) == Some(postmaster));
        std::iter::once(postmaster).chain(children).collect()
    }

    /// SIGSTOP to every process of the server: it stops answering, connections stay open.
    pub fn freeze(&self) {
        for pid in self.processes() {
            let _ = quiet_kill("-STOP", pid);
        }
    }

    /// SIGCONT to every process of the server.
    pub fn thaw(&self) {
        for pid in self.processes() {
            let _ = quiet_kill("-CONT", pid);
        }
    }

    /// A client connected to `database` as the superuser.
    pub async fn client(&self, database: &str) -> tokio_postgres::Client {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .dbname(database)
            .connect_timeout(Duration::from_secs(5));
        let (client, driver) = config
            .connect(tokio_postgres::NoTls)
            .await
            .expect("the private cluster accepts connections");
        tokio::spawn(driver);
        client
    }

    pub async fn create_database(&self, name: &str) {
        self.client("postgres")
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("the database is created");
    }

    /// The service's sessions in `database` (it names itself `gravity-bff`), and how many are idle
    /// in a transaction (a leaked transaction would hold locks forever).
    pub async fn service_sessions(&self, database: &str) -> (i64, i64) {
        let row = self
            .client("postgres")
            .await
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE state LIKE 'idle in transaction%') \
                 FROM pg_stat_activity WHERE datname = $1 AND application_name = 'gravity-bff'",
                &[&database],
            )
            .await
            .expect("pg_stat_activity can be read");
        (row.get(0), row.get(1))
    }

    /// Terminates every session the service holds on `database` (`pg_terminate_backend`); how many.
    pub async fn terminate_service_sessions(&self, database: &str) -> i64 {
        self.client("postgres")
            .await
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = $1 AND application_name = 'gravity-bff'",
                &[&database],
            )
            .await
            .expect("the service's sessions can be terminated")
            .get(0)
    }

    /// Runs one of the cluster's programs (`command`) in its folder.
    fn pg(&self, program: &str, args: &[&str], what: &str) -> Output {
        run(self.command(program).args(args).current_dir(&self.dir), what)
    }

    /// One of the cluster's programs, run as the postgres user when the harness is root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A frozen server ignores pg_ctl; wake it first.
        self.thaw();
        let data = self.data_dir();
        let arguments = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = self.command("pg_ctl").args(arguments).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// kill(1) with `signal` for one of the server's processes. A backend that exited since the
/// listing (a client just disconnected) needs no signal: kill's "No such process" is not printed.
fn quiet_kill(signal: &str, pid: u32) -> std::io::Result<std::process::ExitStatus> {
    Command::new("kill")
        .args([signal, &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
}

/// The parent pid, from /proc/PID/stat (the field after the parenthesised command name).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn run(command: &mut Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{what}: cannot run {:?}: {error}", command.get_program()));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
