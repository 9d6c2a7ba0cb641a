//! Many machines: the same `map`, `call` and `submit` on a fleet of workers
//! behind Redis Streams (feature `redis`).
//!
//! A driver builds a [`RedisExecutor`] from a Redis URL instead of a
//! [`Pool`](crate::Pool); any number of worker processes, on any machines,
//! that link the same function definitions run [`RedisWorker`] (or
//! [`serfn::worker::redis`](crate::worker::redis)). Both sides use only
//! Redis 6.2 commands.
//!
//! On one machine, a [`Pool`](crate::Pool) does the same with less: no
//! server, no network, faster. A fleet is for more machines than one,
//! workers that outlive a driver, and results read again after a restart;
//! the [front page](crate#where-does-it-run) compares them.
//!
//! ```no_run
//! use serfn::SerFn;
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
//!   matched by task id and deduplicated by the driver. Once the driver
//!   has read every result, the job's keys are deleted; a job left
//!   unfinished (its driver stopped or crashed) is kept for
//!   [`result_ttl`](RedisExecutorBuilder::result_ttl) after its last
//!   result, and a driver that restarted reads it again with
//!   [`RedisExecutor::reattach`].
//! - **At least once**: a worker acknowledges a task in the same
//!   transaction that publishes its result. Tasks left pending by a dead
//!   worker are claimed by live ones after
//!   [`claim_idle`](RedisWorker::claim_idle) (`XAUTOCLAIM`); a long task's
//!   worker renews its claim while it runs, so that it is not stolen. A
//!   task delivered more than [`max_deliveries`](RedisWorker::max_deliveries)
//!   times goes to the dead-letter stream (`{prefix}:dead`) and the driver
//!   gets [`Error::DeadLetter`] for its items, in one transaction.
//!
//! A task may thus run more than once (a worker that died after running it
//! but before its answer was published): **functions should be
//! idempotent**, or their effects outside their result tolerant of a
//! repeat. The driver keeps the first answer for each task.
//!
//! # Outages and deadlines
//! - **A broker outage shorter than the
//!   [`reconnect`](RedisExecutorBuilder::reconnect) window loses nothing.**
//!   Every command of the driver that fails on a dropped connection, or
//!   while Redis loads its data (`LOADING`) or runs a script (`BUSY`), is
//!   tried again on a new connection, with a pause that grows from 20 ms
//!   to 1 s (jittered), until the window closes. A task whose sending
//!   failed is sent again under its own task number (if both copies
//!   arrive, the second answer is ignored); results are read on from where
//!   they were. With persistence (`appendonly yes`) every item gets its
//!   result; a Redis that came back without the job (no persistence) fails
//!   every item left with [`Error::Broker`] naming the job.
//! - **A driver that gives up** (the window closed, the job was lost, a
//!   deadline passed) marks its job cancelled
//!   (`{prefix}:job:{job}:cancelled`): workers skip its tasks left.
//! - **No wait is unbounded.** A task whose answer has not come within its
//!   [`timeout`](RedisExecutorBuilder::timeout) plus
//!   [`task_slack`](RedisExecutorBuilder::task_slack) (10 minutes by
//!   default) fails with [`Error::Broker`]; so does every item left past
//!   the [`map_deadline`](RedisExecutorBuilder::map_deadline), if set. Each
//!   second, the driver also looks for its tasks in the task stream: one
//!   that is neither queued nor pending (deleted, trimmed, or read by
//!   something other than serfn's workers) and unanswered is sent again,
//!   twice at most, then fails with [`Error::Broker`] (or
//!   [`Error::DeadLetter`] naming the cause when a worker refused it, such
//!   as a key mismatch).
//! - Workers retry a lost connection for ever, with a pause that grows
//!   from 50 ms to 2 s, jittered by up to a quarter either way.
//!
//! # What is kept, and for how long
//! | key | what | kept |
//! |-----|------|------|
//! | `{prefix}:tasks` | tasks queued or running | until answered; trimmed to about [`queue_cap`](RedisExecutorBuilder::queue_cap) entries (a million by default) |
//! | `{prefix}:dead` | genuine tasks given up, with why | trimmed to about [`dead_letter_cap`](RedisWorker::dead_letter_cap) entries (10,000 by default) |
//! | `{prefix}:forged` | entries a worker could not open, never attributed to a job | trimmed as `{prefix}:dead`; `{prefix}:forged:count` counts them all |
//! | `{prefix}:fn:{hash}` | a function and its capture | `result_ttl` after the last map that sent it |
//! | `{prefix}:job:{job}`, `…:results` | an unfinished job | deleted once its driver read every result, else `result_ttl` after the last result |
//! | `{prefix}:job:{job}:cancelled` | a job its driver gave up | `result_ttl` |
//!
//! A finished job thus leaves its function (shared by every map of the
//! same function and capture) for `result_ttl`, and nothing else.
//!
//! # Security
//! Redis is a shared store: anyone who can write to it can add, change,
//! delete or replay entries. What serfn ever runs is a function this binary
//! registers, never code from the bytes (unlike pickle), and every byte read
//! from Redis is decoded under [`Limits`] like any untrusted input. With a
//! [`Key`] set on the driver and the workers
//! ([`RedisExecutorBuilder::key`], [`RedisWorker::key`]), every task,
//! result and stored function is signed (HMAC-SHA256): a worker refuses an
//! unsigned or altered task, parks it in `{prefix}:forged` (apart from the
//! dead letters, counted, and attributed to no job: what it says of itself
//! is not to be trusted) and never runs it; the driver ignores results that
//! are not signed (and counts them in [`RedisStats::forged`]); a task names
//! its job and index inside what is signed, so an entry cannot be moved to
//! another job. Nothing a writer without the key adds (copies, reordered or
//! altered entries, results, dead-letter reports) changes the answer a
//! driver gives for a genuine task: a copy is answered twice and the second
//! answer ignored, a worker only ever reports on a task it could
//! authenticate, and a stored function found missing or altered is stored
//! again by its driver and its tasks sent again (a worker keeps no such
//! failure). Deleting entries can only delay a task (it is sent again,
//! twice at most) or, done each time, fail it. A key mismatch is named:
//! "this entry is signed, but this worker has no key", "this entry is not
//! signed, but a key is set", "signed with another key, or altered".
//! Without a key, a
//! writer to Redis can make workers call any registered function with
//! arguments of their choosing, and forge results.
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

mod backoff;
mod builder;
mod cancel;
mod claim;
mod dead;
mod entry;
mod fleet;
mod job;
mod link;
mod map;
mod once;
mod outbox;
mod presence;
mod reattach;
mod serving;
mod shutdown;
mod stats;
mod status;
#[cfg(feature = "async")]
mod stream;
mod watch;
mod worker;

use std::sync::{Arc, Weak};
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
use self::stats::Counters;
pub use self::stats::RedisStats;
pub use self::status::{ConsumerStatus, FleetStatus, JobStatus, PendingTask, QueueStatus};
#[cfg(feature = "async")]
pub use self::stream::{RedisMapStream, RedisMapUnorderedStream};
pub use self::worker::{RedisWorker, DEFAULT_DEAD_LETTER_CAP, DEFAULT_MAX_CONCURRENT};
use crate::codec::{Key, Limits};
use crate::error::{Error, Result};
use crate::handle::{SerFnMut, SerFnOnce};
use crate::pool::job::{Runner, TaskCell};
use crate::pool::task::Task;
use crate::pool::{MapFn, MapItems};
use crate::sync::lock;

/// The prefix of every key serfn uses, unless set otherwise.
pub const DEFAULT_PREFIX: &str = "serfn";

/// How long past its timeout a driver waits for a task's answer, unless
/// set otherwise ([`RedisExecutorBuilder::task_slack`]).
pub const DEFAULT_TASK_SLACK: Duration = Duration::from_secs(600);

/// About how many entries the task stream keeps, unless set otherwise
/// ([`RedisExecutorBuilder::queue_cap`]).
pub const DEFAULT_QUEUE_CAP: usize = 1_000_000;

/// Runs maps, calls and submits on workers behind a Redis server.
///
/// Cheap to share by reference; each map opens its own connection.
///
/// The same methods as a [`Pool`](crate::Pool), which runs them on this
/// machine's worker processes without a server: see [where does it
/// run](crate#where-does-it-run) for when to use which.
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
    pub(crate) task_slack: Duration,
    pub(crate) map_deadline: Option<Duration>,
    pub(crate) queue_cap: usize,
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
    /// assert_eq!(fleet.call(&square, 12)?, 144);
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
                task_slack: DEFAULT_TASK_SLACK,
                map_deadline: None,
                queue_cap: DEFAULT_QUEUE_CAP,
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
    pub fn map<F, I, How>(&self, f: &F, items: I) -> RedisMap<'_, I::Item, F::Output, I::IntoIter>
    where
        F: MapFn,
        I: MapItems<F::Arg, How>,
    {
        RedisMap::new(map::Feed::new(self, &f.dyn_fn(), items.into_items()))
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
    pub fn map_unordered<F, I, How>(
        &self,
        f: &F,
        items: I,
    ) -> RedisMapUnordered<'_, I::Item, F::Output, I::IntoIter>
    where
        F: MapFn,
        I: MapItems<F::Arg, How>,
    {
        RedisMapUnordered::new(map::Feed::new(self, &f.dyn_fn(), items.into_items()))
    }

    /// Calls `f(args)` on a worker of the fleet and waits for the result.
    /// `f` is a [`SerFn`](crate::SerFn) or an [`AsyncSerFn`](crate::AsyncSerFn)
    /// ([`MapFn`]), which the worker runs on its runtime (see
    /// [`RedisWorker::max_concurrent`]).
    ///
    /// # Errors
    /// [`Error::Panicked`] if `f` panicked; [`Error::Broker`] if Redis
    /// failed; [`Error::DeadLetter`] if no worker could run it;
    /// [`Error::UnknownFunction`] if the workers do not register `f`.
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// # let worker = serfn::redis::RedisWorker::new(url);
    /// # std::thread::spawn(move || worker.run());
    /// let fleet = serfn::redis::RedisExecutor::new(url)?;
    /// let add = serfn::closure!("add", [], move |x: i64, y: i64| -> i64 { x + y });
    /// assert_eq!(fleet.call(&add, (40, 2))?, 42);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn call<F: MapFn>(&self, f: &F, args: F::Arg) -> Result<F::Output> {
        self.submit(f, args).wait()
    }

    /// Sends `f(args)` to the fleet; the [`Task`] gives the result, by
    /// [`wait`](Task::wait) or `.await`. The task is sent, and its answer
    /// awaited, on a thread of its own: [`Task::cancel`] cannot take back a
    /// task the broker has.
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// # let worker = serfn::redis::RedisWorker::new(url);
    /// # std::thread::spawn(move || worker.run());
    /// let fleet = serfn::redis::RedisExecutor::new(url)?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// let tasks: Vec<_> = (1..=4).map(|x| fleet.submit(&square, x)).collect();
    /// let squares = tasks.into_iter().map(|t| t.wait()).collect::<serfn::Result<Vec<u64>>>()?;
    /// assert_eq!(squares, [1, 4, 9, 16]);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn submit<F: MapFn>(&self, f: &F, args: F::Arg) -> Task<F::Output> {
        // A one-item map on its own thread, which completes the task.
        let cell = TaskCell::new();
        let feed = map::Feed::<F::Arg, F::Output, _>::new(self, &f.dyn_fn(), std::iter::once(args));
        let owned = map::OwnedFeed::from(feed);
        let completing = Arc::clone(&cell);
        // Held by the thread: the task's cancel reaches it while it runs.
        let canceller = cancel::Canceller::new(&self.shared);
        let runner: Weak<dyn Runner> = Arc::downgrade(&canceller) as Weak<cancel::Canceller>;
        lock(&cell.state).running = Some((runner, 0));
        let spawned = std::thread::Builder::new()
            .name("serfn-redis-submit".into())
            .spawn(move || completing.complete(owned.run_one(Some(&canceller))));
        if let Err(error) = spawned {
            return Task::failed(Error::Broker {
                reason: format!("cannot start a thread: {error}"),
            });
        }
        Task::new(
            cell,
            map::decode_owned::<F::Output>,
            self.shared.config.limits,
        )
    }

    /// Calls a [`SerFnOnce`] on a worker of the fleet, consuming it, and
    /// waits for the result. It travels with its task, as a map's function
    /// does.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// # let worker = serfn::redis::RedisWorker::new(url);
    /// # std::thread::spawn(move || worker.run());
    /// let fleet = serfn::redis::RedisExecutor::new(url)?;
    /// let words = vec!["serialized".to_string(), "closures".to_string()];
    /// let join = serfn::closure!(once "join", [words: Vec<String>], move |sep: String| -> String {
    ///     words.join(&sep)
    /// });
    /// assert_eq!(fleet.call_once(join, " ".into())?, "serialized closures");
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn call_once<A, R>(&self, f: SerFnOnce<A, R>, args: A) -> Result<R>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        once::call_once(self, f, args)
    }

    /// Folds `items` into `f`'s state, sequentially: the fleet's workers
    /// have no state of their own to keep between tasks, so the state
    /// travels with each task (the items of a
    /// [`chunk_size`](RedisExecutorBuilder::chunk_size), 4096 unless set),
    /// one task at a time, and comes back in the answer. Gives back the one
    /// final state, in a `Vec` as [`Pool::fold`](crate::Pool::fold) gives
    /// one state per worker, so that code generic over an
    /// [`Executor`](crate::Executor) combines them the same way. It runs
    /// on one worker at a time: a fold on the fleet is for a state that
    /// must see every item, not for speed.
    ///
    /// # Errors
    /// The first item's error ([`Error::Panicked`] and as
    /// [`call`](Self::call)); the fold stops there. Never retried.
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// # let worker = serfn::redis::RedisWorker::new(url);
    /// # std::thread::spawn(move || worker.run());
    /// let fleet = serfn::redis::RedisExecutor::new(url)?;
    /// let sum = serfn::closure!(mut "sum", [total: u64 = 0], move |x: u64| -> u64 { *total += x; *total });
    /// let mut states = fleet.fold(&sum, 1..=100)?;
    /// assert_eq!(states.len(), 1);
    /// assert_eq!(states[0].call_mut(0), 5050);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn fold<A, R, I, How>(&self, f: &SerFnMut<A, R>, items: I) -> Result<Vec<SerFnMut<A, R>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: MapItems<A, How>,
    {
        once::fold(self, f, items)
    }

    /// The results a job has, and those still to come, as `(index,
    /// result)`: for a driver that restarted before it read them all.
    /// Nothing is sent again. If no result comes for the driver's deadline
    /// (its [`timeout`](RedisExecutorBuilder::timeout) plus
    /// [`task_slack`](RedisExecutorBuilder::task_slack)), the iterator
    /// yields one [`Error::Broker`] and ends.
    ///
    /// # Errors
    /// [`Error::Broker`] if the job is unknown (never started, its results
    /// expired, or its driver read them all and deleted it) or Redis cannot
    /// be reached within the reconnect window.
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

impl std::fmt::Debug for RedisExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisExecutor")
            .field("prefix", &self.shared.keys)
            .field("stats", &self.stats())
            .finish()
    }
}
