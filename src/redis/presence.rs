//! A worker's announcement of itself: a hash under `{prefix}:worker:{name}`
//! that expires unless refreshed, so that a killed worker's key goes away
//! on its own and a worker that stops cleanly deletes it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use redis::streams::StreamPendingCountReply;
use redis::Commands;
use serde::Serialize;

use super::entry::{Keys, TaskHeader};
use super::RedisWorker;
use crate::sync::lock;

/// How long a worker's key lives after its last refresh, unless set otherwise.
pub(super) const DEFAULT_TTL: Duration = Duration::from_secs(15);
/// How soon a change (a task begun or ended) shows, at the latest: bounds
/// the writes of a worker running many short tasks.
const CHANGE_DELAY: Duration = Duration::from_millis(250);

/// Milliseconds since the Unix epoch, now.
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// This machine's name, as the kernel has it, or `host`.
pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "host".into())
}

impl RedisWorker {
    /// How long this worker's heartbeat key (`{prefix}:worker:{name}`, read
    /// by [`Fleet::workers`](super::Fleet::workers) and `serfn status`)
    /// lives after its last refresh: 15 s by default, refreshed every third
    /// of that. A worker that stops deletes its key; a killed one's expires.
    ///
    /// # Example
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// // A killed worker drops out of `serfn status` within 6 s.
    /// let worker = serfn::redis::RedisWorker::new("redis://127.0.0.1:6379").heartbeat(Duration::from_secs(6));
    /// assert!(format!("{worker:?}").contains("heartbeat: 6s"));
    /// ```
    pub fn heartbeat(mut self, ttl: Duration) -> Self {
        self.heartbeat = ttl.max(Duration::from_millis(300));
        self
    }
}

/// A connection whose every step is bounded by `limit`: a helper thread
/// must not hang on a server that stopped answering.
pub(super) fn connect(client: &redis::Client, limit: Duration) -> Option<redis::Connection> {
    let limit = limit.max(Duration::from_millis(100));
    let connection = client.get_connection_with_timeout(limit).ok()?;
    connection.set_read_timeout(Some(limit)).ok()?;
    connection.set_write_timeout(Some(limit)).ok()?;
    Some(connection)
}

/// What a worker has done, kept up to date by its serving loop and read by
/// its announcer.
#[derive(Default)]
pub(super) struct Tally {
    done: AtomicU64,
    failed: AtomicU64,
    current: Mutex<Option<CurrentTask>>,
    /// Bumped on each change, so the announcer knows to refresh early.
    changes: AtomicU64,
}

impl Tally {
    /// A task starts running.
    pub(super) fn begin(&self, id: &str, task: &TaskHeader) {
        *lock(&self.current) = Some(CurrentTask {
            id: id.to_owned(),
            job: task.job.clone(),
            task: task.task,
            function: task.name.clone(),
            since_unix_ms: now_ms(),
        });
        self.changes.fetch_add(1, Ordering::Relaxed);
    }

    /// The running task ended, its answer published: an error or a result.
    pub(super) fn end(&self, failed: bool) {
        *lock(&self.current) = None;
        self.count(failed);
    }

    /// A task was answered without running: dead-lettered, say.
    pub(super) fn count(&self, failed: bool) {
        let counter = if failed { &self.failed } else { &self.done };
        counter.fetch_add(1, Ordering::Relaxed);
        self.changes.fetch_add(1, Ordering::Relaxed);
    }
}

/// Refreshes a worker's key until the worker stops, then deletes it.
pub(super) struct Announcer {
    pub(super) client: redis::Client,
    pub(super) keys: Keys,
    pub(super) name: String,
    pub(super) ttl: Duration,
    pub(super) tally: Arc<Tally>,
    /// Set when the worker was asked to stop: it says so while it finishes.
    pub(super) stopping: Arc<AtomicBool>,
    /// Set when the worker has stopped serving.
    pub(super) finished: Arc<AtomicBool>,
}

impl Announcer {
    pub(super) fn run(self) {
        let started = now_ms();
        let every = self.ttl / 3;
        let tick = every.min(Duration::from_millis(50));
        let mut connection = None;
        let mut last = None::<Instant>;
        let mut seen_changes = 0;
        let mut was_stopping = false;
        while !self.finished.load(Ordering::SeqCst) {
            let changes = self.tally.changes.load(Ordering::Relaxed);
            let stopping = self.stopping.load(Ordering::SeqCst);
            let changed = changes != seen_changes || stopping != was_stopping;
            let due = match last {
                None => true,
                Some(at) => at.elapsed() >= every || (changed && at.elapsed() >= CHANGE_DELAY),
            };
            if due {
                last = Some(Instant::now());
                (seen_changes, was_stopping) = (changes, stopping);
                if connection.is_none() {
                    connection = connect(&self.client, every);
                }
                if let Some(conn) = connection.as_mut() {
                    if let Err(error) = self.refresh(conn, started) {
                        tracing::debug!(%error, "cannot refresh this worker's key");
                        connection = None;
                    }
                }
            }
            std::thread::sleep(tick);
        }
        let Some(conn) = connection.or_else(|| connect(&self.client, every)) else {
            return; // The key expires on its own.
        };
        self.leave(conn);
    }

    /// Rewrites the key whole (no stale task fields) and renews its TTL, in
    /// one transaction: a worker killed in between leaves no key without TTL.
    fn refresh(&self, conn: &mut redis::Connection, started: u64) -> redis::RedisResult<()> {
        let key = self.keys.worker(&self.name);
        let state = if self.stopping.load(Ordering::SeqCst) {
            "stopping"
        } else {
            "running"
        };
        let mut fields: Vec<(&str, String)> = vec![
            ("name", self.name.clone()),
            ("host", hostname()),
            ("pid", std::process::id().to_string()),
            ("version", env!("CARGO_PKG_VERSION").to_owned()),
            ("started", started.to_string()),
            ("seen", now_ms().to_string()),
            ("state", state.to_owned()),
            ("done", self.tally.done.load(Ordering::Relaxed).to_string()),
            (
                "failed",
                self.tally.failed.load(Ordering::Relaxed).to_string(),
            ),
        ];
        if let Some(current) = lock(&self.tally.current).as_ref() {
            fields.extend([
                ("task", current.id.clone()),
                ("task_job", current.job.clone()),
                ("task_index", current.task.to_string()),
                ("task_function", current.function.clone()),
                ("task_since", current.since_unix_ms.to_string()),
            ]);
        }
        redis::pipe()
            .atomic()
            .del(&key)
            .ignore()
            .hset_multiple(&key, &fields)
            .ignore()
            .pexpire(&key, self.ttl.as_millis() as i64)
            .ignore()
            .query(conn)
    }

    /// Deletes the key, and this worker's name in the consumer group when
    /// no task is pending with it (one pending is left for a live worker to
    /// take over: deleting the name would drop it).
    fn leave(&self, mut conn: redis::Connection) {
        let _: redis::RedisResult<()> = conn.del(self.keys.worker(&self.name));
        let (tasks, group) = (self.keys.tasks(), self.keys.group());
        let pending: redis::RedisResult<StreamPendingCountReply> =
            conn.xpending_consumer_count(&tasks, &group, "-", "+", 1, &self.name);
        if pending.is_ok_and(|pending| pending.ids.is_empty()) {
            let _: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("DELCONSUMER")
                .arg(&tasks)
                .arg(&group)
                .arg(&self.name)
                .query(&mut conn);
        }
    }
}

/// The task a worker is running.
///
/// # Example
/// ```no_run
/// let fleet = serfn::redis::Fleet::new("redis://127.0.0.1:6379")?;
/// for worker in fleet.workers()? {
///     if let Some(task) = &worker.current {
///         println!("{} runs {} of job {} since {}", worker.name, task.function, task.job, task.since_unix_ms);
///     }
/// }
/// # Ok::<(), serfn::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CurrentTask {
    /// The task's entry in the task stream.
    pub id: String,
    /// Its job's name.
    pub job: String,
    /// Its index in the job.
    pub task: u64,
    /// The function's registered name.
    pub function: String,
    /// When it started, in milliseconds since the Unix epoch.
    pub since_unix_ms: u64,
}

/// A live worker, as its heartbeat key announces it.
///
/// # Example
/// ```no_run
/// let fleet = serfn::redis::Fleet::new("redis://127.0.0.1:6379")?;
/// let done: u64 = fleet.workers()?.iter().map(|worker| worker.done).sum();
/// println!("the live workers have run {done} tasks");
/// # Ok::<(), serfn::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WorkerStatus {
    /// Its name in the consumer group ([`RedisWorker::consumer`](super::RedisWorker::consumer)).
    pub name: String,
    /// The machine it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: u32,
    /// The serfn version it was built with.
    pub version: String,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// When it last refreshed its key, in milliseconds since the Unix epoch
    /// (by its own clock).
    pub seen_unix_ms: u64,
    /// Whether it was asked to stop and is finishing its task.
    pub stopping: bool,
    /// Tasks it answered with their results.
    pub done: u64,
    /// Tasks it answered with an error (a panic, a refusal, a dead letter).
    pub failed: u64,
    /// The task it runs now, if any.
    pub current: Option<CurrentTask>,
}

impl WorkerStatus {
    /// A worker's key as read with `HGETALL`; `None` if it is not one.
    pub(super) fn parse(fields: &HashMap<String, String>) -> Option<WorkerStatus> {
        let number = |name: &str| fields.get(name).and_then(|value| value.parse::<u64>().ok());
        let text = |name: &str| fields.get(name).cloned().unwrap_or_default();
        let current = match (fields.get("task"), fields.get("task_job")) {
            (Some(id), Some(job)) => Some(CurrentTask {
                id: id.clone(),
                job: job.clone(),
                task: number("task_index").unwrap_or(0),
                function: text("task_function"),
                since_unix_ms: number("task_since").unwrap_or(0),
            }),
            _ => None,
        };
        Some(WorkerStatus {
            name: fields.get("name")?.clone(),
            host: text("host"),
            pid: number("pid")
                .and_then(|pid| u32::try_from(pid).ok())
                .unwrap_or(0),
            version: text("version"),
            started_unix_ms: number("started").unwrap_or(0),
            seen_unix_ms: number("seen").unwrap_or(0),
            stopping: fields.get("state").is_some_and(|state| state == "stopping"),
            done: number("done").unwrap_or(0),
            failed: number("failed").unwrap_or(0),
            current,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_parses_back_and_junk_is_not_a_worker() {
        let fields: HashMap<String, String> = [
            ("name", "w1"),
            ("host", "box"),
            ("pid", "42"),
            ("version", "0.1.0"),
            ("started", "1000"),
            ("seen", "2000"),
            ("state", "stopping"),
            ("done", "7"),
            ("failed", "1"),
            ("task", "1-0"),
            ("task_job", "j"),
            ("task_index", "3"),
            ("task_function", "f"),
            ("task_since", "1500"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let worker = WorkerStatus::parse(&fields).unwrap();
        assert_eq!((worker.pid, worker.done, worker.failed), (42, 7, 1));
        assert!(worker.stopping);
        assert_eq!(worker.current.unwrap().task, 3);
        assert!(WorkerStatus::parse(&HashMap::new()).is_none());
    }
}
