//! Many machines: the same `map`, `call` and `submit` on a fleet of workers
//! behind Redis Streams (feature `redis`).
//!
//! A driver builds a [`RedisExecutor`] from a Redis URL instead of a
//! [`Pool`](crate::Pool); any number of worker processes, on any machines,
//! that link the same function definitions run [`RedisWorker`] (or
//! [`serfn::worker::redis`](crate::worker::redis)). Both sides use only
//! Redis 6.2 commands.
//!
//! ```no_run
//! use serfn::{Executor, SerFn};
//! use serfn::redis::RedisExecutor;
//!
//! let fleet = RedisExecutor::new("redis://127.0.0.1:6379")?;
//! let square: SerFn<u64, u64> = serfn::closure!("docs::redis::square", [], move |x: u64| -> u64 { x * x });
//! let squares: Vec<u64> = fleet.map(&square, 0..1000).collect::<serfn::Result<_>>()?;
//! assert_eq!(squares[3], 9);
//! # Ok::<(), serfn::Error>(())
//! ```
//!
//! # How it works
//! - **Tasks** are entries of one stream (`{prefix}:tasks`) read by one
//!   consumer group: each entry a chunk of items of one job. A function and
//!   its capture are stored once per map, under the SHA-256 of their
//!   encoding (`{prefix}:fn:{hash}`); each worker fetches it once and keeps
//!   the 64 most recent.
//! - **Results** go to the job's own stream (`{prefix}:job:{job}:results`),
//!   matched by task id and deduplicated by the driver; they are kept for
//!   [`result_ttl`](RedisExecutorBuilder::result_ttl) after the last one,
//!   and a driver that restarted reads them again with
//!   [`RedisExecutor::reattach`].
//! - **At least once**: a worker acknowledges a task in the same
//!   transaction that publishes its result. Tasks left pending by a dead
//!   worker are claimed by live ones after
//!   [`claim_idle`](RedisWorker::claim_idle) (`XAUTOCLAIM`); a long task's
//!   worker renews its claim while it runs, so that it is not stolen. A
//!   task delivered more than [`max_deliveries`](RedisWorker::max_deliveries)
//!   times goes to the dead-letter stream (`{prefix}:dead`) and the driver
//!   gets [`Error::DeadLetter`] for its items.
//!
//! A task may thus run more than once (a worker that died after running it
//! but before its answer was published): **functions should be
//! idempotent**, or their effects outside their result tolerant of a
//! repeat. The driver keeps the first answer for each task.
//!
//! # Security
//! Redis is a shared store: anyone who can write to it can add, change,
//! delete or replay entries. What serfn ever runs is a function this binary
//! registers, never code from the bytes (unlike pickle), and every byte read
//! from Redis is decoded under [`Limits`] like any untrusted input. With a
//! [`Key`] set on the driver and the workers
//! ([`RedisExecutorBuilder::key`], [`RedisWorker::key`]), every task,
//! result and stored function is signed (HMAC-SHA256): a worker refuses an
//! unsigned or altered task with [`Error::Unauthenticated`], moves it to the
//! dead-letter stream and never runs it; the driver ignores results that
//! are not signed (and counts them in [`RedisStats::forged`]); a task names
//! its job and index inside what is signed, so an entry cannot be moved to
//! another job. Without a key, a writer to Redis can make workers call any
//! registered function with arguments of their choosing, and forge results.
//!
//! # Operating a fleet
//! Each worker announces itself under `{prefix}:worker:{name}` (host, pid,
//! version, counts, current task), a key that expires unless refreshed
//! ([`RedisWorker::heartbeat`]). A [`Fleet`] reads it all, with the queue,
//! the tasks pending on each worker, the dead letters and the jobs in flight
//! ([`Fleet::status`], [`RedisExecutor::fleet_status`]), and requeues or
//! purges; the `serfn` command-line tool (package `serfn-cli`) prints the
//! same. On SIGTERM or SIGINT ([`RedisWorker::stop_on_signals`], the
//! default of [`serfn::worker::redis`](crate::worker::redis)) a worker
//! takes no new task and finishes its running one within a
//! [`grace`](RedisWorker::grace) period. OPERATIONS.md, beside the README,
//! covers systemd, retention and key rotation.

mod builder;
mod claim;
mod dead;
mod entry;
mod fleet;
mod job;
mod map;
mod outbox;
mod presence;
mod reattach;
mod shutdown;
mod status;
mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use self::builder::RedisExecutorBuilder;
pub use self::claim::TIMEOUT_EXIT_CODE;
pub use self::dead::DeadLetter;
use self::entry::Keys;
pub use self::fleet::{Fleet, PurgedJob, Requeued};
pub use self::map::{RedisMap, RedisMapUnordered};
pub use self::presence::{CurrentTask, WorkerStatus};
pub use self::shutdown::GRACE_EXIT_CODE;
pub use self::status::{ConsumerStatus, FleetStatus, JobStatus, PendingTask, QueueStatus};
pub use self::worker::RedisWorker;
use crate::codec::{Key, Limits};
use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::handle::SerFn;
use crate::pool::job::TaskCell;
use crate::pool::task::Task;

/// The prefix of every key serfn uses, unless set otherwise.
pub const DEFAULT_PREFIX: &str = "serfn";

/// Runs maps, calls and submits on workers behind a Redis server.
///
/// Cheap to share by reference; each map opens its own connection.
///
/// # Example
/// ```no_run
/// use serfn::redis::{RedisExecutor, RedisWorker};
///
/// let url = "redis://127.0.0.1:6379";
/// // A worker in this process, for the example; usually many, on other machines.
/// let worker = RedisWorker::new(url);
/// std::thread::spawn(move || worker.run());
///
/// let fleet = RedisExecutor::new(url)?;
/// let offset = 10;
/// let add = serfn::closure!("add_offset", [offset: i64], move |x: i64| -> i64 { x + offset });
/// let results = fleet.map(&add, 0..100).collect::<serfn::Result<Vec<i64>>>()?;
/// assert_eq!(results[5], 15);
/// # Ok::<(), serfn::Error>(())
/// ```
pub struct RedisExecutor {
    shared: Arc<Shared>,
}

/// What the executor and its maps share.
pub(crate) struct Shared {
    pub(crate) client: redis::Client,
    pub(crate) keys: Keys,
    pub(crate) config: Config,
    pub(crate) stats: Counters,
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) key: Option<Key>,
    pub(crate) chunk_size: Option<usize>,
    pub(crate) in_flight: usize,
    pub(crate) timeout: Option<Duration>,
    pub(crate) result_ttl: Duration,
    pub(crate) limits: Limits,
    pub(crate) reconnect: Duration,
}

/// A Redis failure as [`Error::Broker`], saying what was being done.
pub(crate) fn broker(doing: &'static str) -> impl Fn(redis::RedisError) -> Error {
    move |error| Error::Broker {
        reason: format!("{doing}: {error}"),
    }
}

impl RedisExecutor {
    /// An executor with the defaults, on the Redis server at `url`
    /// (`redis://host:port/db`).
    ///
    /// # Errors
    /// [`Error::Broker`] if the server does not answer.
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// # let worker = serfn::redis::RedisWorker::new(url);
    /// # std::thread::spawn(move || worker.run());
    /// let fleet = serfn::redis::RedisExecutor::new(url)?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// assert_eq!(serfn::Executor::call(&fleet, &square, 12)?, 144);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn new(url: &str) -> Result<Self> {
        Self::builder(url).build()
    }

    /// Configures an executor.
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// # let worker = serfn::redis::RedisWorker::new(url);
    /// # std::thread::spawn(move || worker.run());
    /// let fleet = serfn::redis::RedisExecutor::builder(url).chunk_size(10).in_flight(16).build()?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// assert_eq!(fleet.map(&square, 0..100).count(), 100);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn builder(url: &str) -> RedisExecutorBuilder {
        RedisExecutorBuilder {
            url: url.to_owned(),
            prefix: DEFAULT_PREFIX.to_owned(),
            config: Config {
                key: None,
                chunk_size: None,
                in_flight: 64,
                timeout: None,
                result_ttl: Duration::from_secs(24 * 3600),
                limits: Limits::default(),
                reconnect: Duration::from_secs(10),
            },
        }
    }

    /// Counters since the executor was built.
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// # let worker = serfn::redis::RedisWorker::new(url);
    /// # std::thread::spawn(move || worker.run());
    /// let fleet = serfn::redis::RedisExecutor::new(url)?;
    /// let data = vec![1.0f64; 10_000];
    /// let dot = serfn::closure!("dot", [data: Vec<f64>], move |x: f64| -> f64 { data.iter().sum::<f64>() * x });
    /// fleet.map(&dot, (0..100).map(f64::from)).for_each(drop);
    /// let stats = fleet.stats();
    /// assert_eq!((stats.items, stats.functions_stored), (100, 1)); // the 80 kB capture: stored once
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn stats(&self) -> RedisStats {
        self.shared.stats.snapshot()
    }

    /// Applies `f` to every item on the fleet; yields the results in input
    /// order. Lazy: at most [`in_flight`](RedisExecutorBuilder::in_flight)
    /// tasks wait at once. The job gets a random name unless
    /// [`RedisMap::job`] names it.
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// # let worker = serfn::redis::RedisWorker::new(url);
    /// # std::thread::spawn(move || worker.run());
    /// let fleet = serfn::redis::RedisExecutor::new(url)?;
    /// let root = serfn::closure!("root", [], move |x: f64| -> f64 {
    ///     assert!(x >= 0.0, "no root of {x}");
    ///     x.sqrt()
    /// });
    /// let roots: Vec<_> = fleet.map(&root, [4.0, -1.0, 9.0]).collect();
    /// // Each item's result is its own: a panic fails that item only.
    /// assert!(matches!(roots[1], Err(serfn::Error::Panicked { .. })));
    /// assert_eq!(roots[2].as_ref().ok(), Some(&3.0));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn map<A, R, I>(&self, f: &SerFn<A, R>, items: I) -> RedisMap<'_, A, R, I::IntoIter>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
    {
        RedisMap::new(map::Feed::new(self, f, items.into_iter()))
    }

    /// As [`map`](Self::map), yielding `(index, result)` as results come in.
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// # let worker = serfn::redis::RedisWorker::new(url);
    /// # std::thread::spawn(move || worker.run());
    /// let fleet = serfn::redis::RedisExecutor::new(url)?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// let mut squares = vec![0; 100];
    /// for (index, result) in fleet.map_unordered(&square, 0..100) {
    ///     squares[index] = result?;
    /// }
    /// assert_eq!(squares[9], 81);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn map_unordered<A, R, I>(
        &self,
        f: &SerFn<A, R>,
        items: I,
    ) -> RedisMapUnordered<'_, A, R, I::IntoIter>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
    {
        RedisMapUnordered::new(map::Feed::new(self, f, items.into_iter()))
    }

    /// The results a job has, and those still to come, as `(index,
    /// result)`: for a driver that restarted. Nothing is sent again.
    ///
    /// # Errors
    /// [`Error::Broker`] if the job is unknown (never started, or its
    /// results expired) or Redis cannot be reached.
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// # let worker = serfn::redis::RedisWorker::new(url);
    /// # std::thread::spawn(move || worker.run());
    /// let fleet = serfn::redis::RedisExecutor::new(url)?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// // The driver stops reading after 3 results (as if it had crashed)...
    /// let job = format!("squares-{}", std::process::id()); // unique: a job's results outlive it
    /// let first: Vec<_> = fleet.map(&square, 0..50).job(&job).take(3).collect();
    /// assert_eq!(first.len(), 3);
    /// // ...and a new one gets every result, sent once.
    /// let mut squares = vec![0; 50];
    /// for (index, result) in fleet.reattach::<u64>(&job)? {
    ///     squares[index] = result?;
    /// }
    /// assert_eq!(squares[49], 49 * 49);
    /// assert!(fleet.reattach::<u64>("no-such-job").is_err());
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn reattach<R>(&self, job: &str) -> Result<impl Iterator<Item = (usize, Result<R>)> + '_>
    where
        R: DeserializeOwned + 'static,
    {
        reattach::Reattached::new(self, job)
    }

    /// The fleet this executor sends to, as an operator sees it: the same
    /// server, prefix, key and limits. See [`Fleet`].
    ///
    /// # Errors
    /// [`Error::Broker`] if the server does not answer.
    ///
    /// # Example
    /// ```no_run
    /// let executor = serfn::redis::RedisExecutor::new("redis://127.0.0.1:6379")?;
    /// let fleet = executor.fleet()?;
    /// for dead in fleet.dead_letters(100)? {
    ///     println!("{}: {}", dead.id, dead.reason);
    /// }
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn fleet(&self) -> Result<Fleet> {
        let shared = &self.shared;
        let key = shared.config.key.clone();
        Fleet::from_client(
            &shared.client,
            shared.keys.clone(),
            key,
            shared.config.limits,
        )
    }

    /// What the fleet is doing: its workers, queue, pending tasks, dead
    /// letters and jobs in flight ([`Fleet::status`]).
    ///
    /// # Errors
    /// [`Error::Broker`] if Redis fails.
    ///
    /// # Example
    /// ```no_run
    /// let executor = serfn::redis::RedisExecutor::new("redis://127.0.0.1:6379")?;
    /// let status = executor.fleet_status()?;
    /// if status.workers.is_empty() {
    ///     eprintln!("no worker is alive: {} tasks wait", status.queue.waiting);
    /// }
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn fleet_status(&self) -> Result<FleetStatus> {
        self.fleet()?.status()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Executor for RedisExecutor {
    fn submit<A, R>(&self, f: &SerFn<A, R>, args: A) -> Task<R>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        // A one-item map on its own thread, which completes the task.
        let cell = TaskCell::new();
        let feed = map::Feed::new(self, f, std::iter::once(args));
        let owned = map::OwnedFeed::from(feed);
        let completing = Arc::clone(&cell);
        std::thread::spawn(move || completing.complete(owned.run_one()));
        Task::new(cell, map::decode_owned::<R>, self.shared.config.limits)
    }

    fn map<'a, A, R, I>(&'a self, f: &SerFn<A, R>, items: I) -> impl Iterator<Item = Result<R>> + 'a
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'a,
    {
        RedisExecutor::map(self, f, items)
    }

    fn map_unordered<'a, A, R, I>(
        &'a self,
        f: &SerFn<A, R>,
        items: I,
    ) -> impl Iterator<Item = (usize, Result<R>)> + 'a
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'a,
    {
        RedisExecutor::map_unordered(self, f, items)
    }
}

impl std::fmt::Debug for RedisExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisExecutor")
            .field("prefix", &self.shared.keys)
            .field("stats", &self.stats())
            .finish()
    }
}

/// What an executor has sent and received through Redis.
///
/// # Example
/// ```no_run
/// # let url = "redis://127.0.0.1:6379";
/// # let worker = serfn::redis::RedisWorker::new(url);
/// # std::thread::spawn(move || worker.run());
/// let fleet = serfn::redis::RedisExecutor::builder(url).chunk_size(10).build()?;
/// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
/// assert_eq!(fleet.map(&square, 0..100).count(), 100);
/// let stats = fleet.stats();
/// assert_eq!((stats.tasks, stats.items, stats.duplicates, stats.forged), (10, 100, 0, 0));
/// # Ok::<(), serfn::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// Tasks (chunks of items) sent.
    pub tasks: u64,
    /// Items sent.
    pub items: u64,
    /// Bytes of tasks written to Redis.
    pub bytes_sent: u64,
    /// Bytes of results read from Redis.
    pub bytes_received: u64,
    /// Functions stored (once per map, content-addressed).
    pub functions_stored: u64,
    /// Bytes of functions stored.
    pub function_bytes: u64,
    /// Results ignored: a second answer to a task already answered.
    pub duplicates: u64,
    /// Results ignored: unsigned or altered, with a key set.
    pub forged: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    tasks: AtomicU64,
    items: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    functions_stored: AtomicU64,
    function_bytes: AtomicU64,
    duplicates: AtomicU64,
    forged: AtomicU64,
    /// Serializes snapshots with nothing else: counters are independent.
    _snapshot: Mutex<()>,
}

impl Counters {
    pub(crate) fn sent(&self, items: u32, bytes: usize) {
        self.tasks.fetch_add(1, Ordering::Relaxed);
        self.items.fetch_add(u64::from(items), Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn received(&self, bytes: usize) {
        self.bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn stored(&self, bytes: usize) {
        self.functions_stored.fetch_add(1, Ordering::Relaxed);
        self.function_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn forged(&self) {
        self.forged.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> RedisStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RedisStats {
            tasks: get(&self.tasks),
            items: get(&self.items),
            bytes_sent: get(&self.bytes_sent),
            bytes_received: get(&self.bytes_received),
            functions_stored: get(&self.functions_stored),
            function_bytes: get(&self.function_bytes),
            duplicates: get(&self.duplicates),
            forged: get(&self.forged),
        }
    }
}
