//! A Redis server and worker processes for the Redis tests.
//!
//! The server is `SERFN_REDIS_URL` when set (CI starts one with
//! `.ci/redis-up.sh`); without it, a test fails under `CI=true` and starts
//! its own server otherwise. Workers are this test binary re-executed,
//! filtered to its `redis_worker_entry` test.
#![allow(dead_code, reason = "each test crate uses its own part")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A Redis server: the shared one, or one of this test's own.
pub struct Server {
    pub url: String,
    own: Option<PathBuf>,
    /// Whether this test's own server keeps its data (`appendonly yes`).
    persistent: bool,
}

/// The checkout's root, with `.ci/`: above this package's own directory
/// for a workspace member's tests.
fn repo() -> &'static Path {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    while !dir.join(".ci/redis-up.sh").exists() {
        dir = dir.parent().expect(".ci/redis-up.sh above the package");
    }
    dir
}

impl Server {
    /// The server the tests share.
    pub fn shared() -> Server {
        match std::env::var("SERFN_REDIS_URL") {
            Ok(url) => Server {
                url,
                own: None,
                persistent: false,
            },
            Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI=true and SERFN_REDIS_URL is unset: .ci/run starts Redis with .ci/redis-up.sh")
            }
            Err(_) => Server::own(),
        }
    }

    /// A server of this test's own, on a free loopback port, which it may
    /// stop and restart.
    pub fn own() -> Server {
        let dir = tempdir("serfn-redis-own");
        let url = up(&dir, None, false, "");
        Server {
            url,
            own: Some(dir),
            persistent: false,
        }
    }

    /// A server of this test's own with `appendonly yes`: stopped with
    /// [`stop`](Self::stop) and restarted, it has its data back.
    pub fn own_persistent() -> Server {
        let dir = tempdir("serfn-redis-aof");
        let url = up(&dir, None, true, "");
        Server {
            url,
            own: Some(dir),
            persistent: true,
        }
    }

    /// Stops this test's own server as an operator would (SIGTERM: it
    /// writes its append-only file and exits), and waits until it is gone.
    pub fn stop(&self) {
        let dir = self
            .own
            .as_ref()
            .expect("only a test's own server is stopped");
        let pid = std::fs::read_to_string(dir.join("redis.pid")).unwrap();
        let pid = pid.trim().to_owned();
        Command::new("kill").arg(&pid).status().unwrap();
        // Gone, or a zombie (exited, not yet reaped by whoever adopted it).
        let alive = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit(')')
                    .next()
                    .is_some_and(|s| !s.starts_with(" Z"))
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while alive() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!alive(), "redis-server {pid} did not stop");
        let _ = std::fs::remove_file(dir.join("redis.pid"));
    }

    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Kills this test's own server (SIGKILL: no goodbye to clients).
    pub fn kill(&self) {
        let dir = self
            .own
            .as_ref()
            .expect("only a test's own server is killed");
        let pid = std::fs::read_to_string(dir.join("redis.pid")).unwrap();
        Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .unwrap();
        let _ = std::fs::remove_file(dir.join("redis.pid"));
    }

    /// Starts this test's own server again on the same port: empty, or
    /// with its data back if it is persistent.
    pub fn restart(&self) {
        let dir = self
            .own
            .as_ref()
            .expect("only a test's own server is restarted");
        up(dir, Some(self.port()), self.persistent, "");
    }

    /// As [`restart`](Self::restart), with more `redis-server` options.
    pub fn restart_with(&self, options: &str) {
        let dir = self
            .own
            .as_ref()
            .expect("only a test's own server is restarted");
        up(dir, Some(self.port()), self.persistent, options);
    }

    /// A connection for checks.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(dir) = &self.own {
            Command::new("bash")
                .arg(repo().join(".ci/redis-down.sh"))
                .arg(dir)
                .status()
                .ok();
        }
    }
}

fn tempdir(label: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "{label}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `.ci/redis-up.sh` (on `port` if given, with `options` for
/// `redis-server`); returns the URL.
fn up(dir: &Path, port: Option<u16>, persistent: bool, options: &str) -> String {
    let mut command = Command::new("bash");
    command
        .arg(repo().join(".ci/redis-up.sh"))
        .arg(dir)
        .env("SERFN_REDIS_ARGS", options);
    if persistent {
        command.env("SERFN_REDIS_APPENDONLY", "yes");
    }
    if let Some(port) = port {
        command.env("SERFN_REDIS_PORT", port.to_string());
    }
    let output = command.stderr(Stdio::inherit()).output().unwrap();
    assert!(output.status.success(), "redis-up.sh failed");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned()
}

/// A unique key prefix, so that tests share a server without sharing tasks.
pub fn prefix(test: &str) -> String {
    format!("test-{test}-{}", std::process::id())
}

/// How a worker process is set up.
#[derive(Clone, Default)]
pub struct WorkerSetup {
    pub prefix: String,
    pub key: Option<String>,
    pub claim_idle_ms: Option<u64>,
    pub max_deliveries: Option<u32>,
    pub dead_letter_cap: Option<usize>,
    /// `RedisWorker::grace`, in milliseconds.
    pub grace_ms: Option<u64>,
    /// `RedisWorker::heartbeat`, in milliseconds.
    pub heartbeat_ms: Option<u64>,
    /// `RedisWorker::max_concurrent`.
    pub max_concurrent: Option<usize>,
    /// Another program than this test binary.
    pub program: Option<PathBuf>,
}

/// A worker process.
pub struct Worker {
    pub child: Child,
}

impl Worker {
    pub fn start(url: &str, setup: &WorkerSetup) -> Worker {
        let mut command = match &setup.program {
            Some(program) => {
                let mut command = Command::new(program);
                command.arg(url);
                command
            }
            None => {
                let mut command = Command::new(std::env::current_exe().unwrap());
                command.args([
                    "redis_worker_entry",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ]);
                command
            }
        };
        command
            .env("SERFN_TEST_REDIS_WORKER", url)
            .env("SERFN_TEST_PREFIX", &setup.prefix)
            .env("SERFN_PREFIX", &setup.prefix)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(key) = &setup.key {
            command.env("SERFN_TEST_KEY", key);
        }
        if let Some(ms) = setup.claim_idle_ms {
            command.env("SERFN_TEST_CLAIM_IDLE_MS", ms.to_string());
        }
        if let Some(n) = setup.max_deliveries {
            command.env("SERFN_TEST_MAX_DELIVERIES", n.to_string());
        }
        if let Some(n) = setup.dead_letter_cap {
            command.env("SERFN_TEST_DEAD_LETTER_CAP", n.to_string());
        }
        if let Some(ms) = setup.grace_ms {
            command.env("SERFN_TEST_GRACE_MS", ms.to_string());
        }
        if let Some(ms) = setup.heartbeat_ms {
            command.env("SERFN_TEST_HEARTBEAT_MS", ms.to_string());
        }
        if let Some(n) = setup.max_concurrent {
            command.env("SERFN_TEST_MAX_CONCURRENT", n.to_string());
        }
        Worker {
            child: command.spawn().unwrap(),
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends it a signal by name (`TERM`, `INT`), as an operator would.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for it to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the worker did not exit in {limit:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What `redis_worker_entry` runs when it is a worker: a `RedisWorker` set
/// up from the environment `Worker::start` gave it.
pub fn serve_from_env() {
    let Ok(url) = std::env::var("SERFN_TEST_REDIS_WORKER") else {
        return;
    };
    let mut worker =
        serfn::redis::RedisWorker::new(&url).prefix(std::env::var("SERFN_TEST_PREFIX").unwrap());
    if let Ok(key) = std::env::var("SERFN_TEST_KEY") {
        worker = worker.key(serfn::codec::Key::new(key));
    }
    if let Ok(ms) = std::env::var("SERFN_TEST_CLAIM_IDLE_MS") {
        worker = worker.claim_idle(std::time::Duration::from_millis(ms.parse().unwrap()));
    }
    if let Ok(n) = std::env::var("SERFN_TEST_MAX_DELIVERIES") {
        worker = worker.max_deliveries(n.parse().unwrap());
    }
    if let Ok(n) = std::env::var("SERFN_TEST_DEAD_LETTER_CAP") {
        worker = worker.dead_letter_cap(n.parse().unwrap());
    }
    if let Ok(ms) = std::env::var("SERFN_TEST_GRACE_MS") {
        worker = worker.grace(std::time::Duration::from_millis(ms.parse().unwrap()));
    }
    if let Ok(ms) = std::env::var("SERFN_TEST_HEARTBEAT_MS") {
        worker = worker.heartbeat(std::time::Duration::from_millis(ms.parse().unwrap()));
    }
    if let Ok(n) = std::env::var("SERFN_TEST_MAX_CONCURRENT") {
        worker = worker.max_concurrent(n.parse().unwrap());
    }
    // As `serfn::worker::redis` does: SIGTERM is a warm shutdown.
    worker.stop_on_signals().run().unwrap();
    std::process::exit(0);
}

/// An example program of this package, built now: `cargo test --test`
/// does not build examples, and a binary left by an earlier build may speak
/// an older format (cargo does nothing when it is up to date).
pub fn example(name: &str) -> PathBuf {
    let dir = std::env::current_exe().unwrap();
    let path = dir
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--features", "redis", "--example", name])
        .args(crate::support::format_flags())
        .status()
        .unwrap();
    assert!(status.success(), "cannot build the example {name}");
    path
}
