//! A `redis-server` of a test's own on a spare port, so that it can be killed, frozen, filled or
//! reconfigured without touching anyone else's data. Killed when dropped (SIGKILL also ends a
//! frozen one).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub struct OwnRedis {
    child: Child,
    pub port: u16,
    /// Where it keeps its files (AOF, RDB), when it was started with persistence.
    pub dir: PathBuf,
    extra: Vec<String>,
}

impl OwnRedis {
    /// On a free port, keeping nothing on disk.
    pub fn start() -> OwnRedis {
        OwnRedis::start_with(free_port(), &[])
    }

    pub fn start_on(port: u16) -> OwnRedis {
        OwnRedis::start_with(port, &[])
    }

    /// With more `redis-server` arguments, which override the defaults (such as `--appendonly yes`
    /// or `--requirepass …`). Its working directory is a fresh temporary one.
    pub fn start_with(port: u16, extra: &[&str]) -> OwnRedis {
        let dir = std::env::temp_dir().join(format!("gravity-redis-{port}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the Redis directory can be created");
        let extra: Vec<String> = extra.iter().map(|argument| (*argument).to_owned()).collect();
        let child = spawn(port, &dir, &extra);
        OwnRedis {
            child,
            port,
            dir,
            extra,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: Redis dies without a word, as on an OOM kill.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port, directory and arguments (so with whatever it persisted).
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(self.port, &self.dir, &self.extra);
    }

    /// Starts it again on the same port and arguments with nothing of what it persisted.
    pub fn restart_empty(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::create_dir_all(&self.dir).expect("the Redis directory can be created");
        self.child = spawn(self.port, &self.dir, &self.extra);
    }

    /// A connection for looking at and changing its state directly.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .and_then(|client| client.get_connection())
            .expect("the test's own Redis accepts connections")
    }
}

fn spawn(port: u16, dir: &std::path::Path, extra: &[String]) -> Child {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed (apt-get install redis-server)");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server on {port} did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
