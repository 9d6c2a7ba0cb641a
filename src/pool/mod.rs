//! [`Pool`]: serialized functions run in local worker processes.
//!
//! Python's `multiprocessing.Pool.map(closure, items)`, done with registered
//! functions: a function and its capture are encoded once, shipped once to
//! each worker (cached there by content hash), and called there on items
//! sent in chunks. Frames travel on a Unix socket per worker, never on its
//! stdout, so user code may print freely.
//!
//! A pool uses one machine's cores. For more machines, the same `map`,
//! `call` and `submit` run on a fleet behind Redis with
//! [`RedisExecutor`]; the [front page](crate#where-does-it-run) says
//! when to use which, and [`Executor`](crate::Executor) lets code run on
//! either.
//!
//! # Faults
//! Every item gets a result or a typed error; none is lost:
//! - a panic fails that item with [`Error::Panicked`]; the worker lives on;
//! - a worker that dies fails what it was running with [`Error::WorkerDied`]
//!   and is replaced; jobs it had received but not started are sent again;
//! - a task past [`PoolBuilder::timeout`], or its own ([`Pool::call_timeout`],
//!   [`Map::timeout`]), fails with [`Error::Timeout`], and its worker is
//!   killed and replaced;
//! - an [initializer](PoolBuilder::initializer) that panics or fails makes
//!   [`PoolBuilder::build`] fail with [`Error::WorkerStart`], which says why;
//! - a function the worker binary does not register fails with
//!   [`Error::UnknownFunction`];
//! - work over the [`Limits`](crate::Limits) fails with [`Error::TooLarge`]
//!   before it is sent, and so does a chunk whose answer would exceed them;
//! - a worker that owes an answer and sends nothing, not even its heartbeat,
//!   for [`PoolBuilder::liveness_timeout`] is killed: [`Error::WorkerDied`];
//! - a worker killed while it starts is started again, with back-off.
//!
//! A worker runs its frames in order and writes each answer within about a
//! millisecond of finishing it (an item of a group, once the next 31 of its
//! group are done too, unless a timeout applies). When it dies, its oldest
//! unanswered task is
//! the one in doubt and gets [`Error::WorkerDied`] (or is sent again, with
//! [`retries`](PoolBuilder::retries)); the tasks behind it are sent to another
//! worker. Items sent one per message go in groups once they are timed (see
//! [`PoolBuilder::chunk_size`]), and there the pool finds the item: the
//! items the dead worker had not answered are sent again one at a time, each
//! after the worker has written every answer before it, and the next death
//! is charged to the item then running, alone. Either way a task that
//! finished shortly before a death, its answer unwritten, may run twice:
//! rare, but there is no exactly-once promise.
//!
//! # Where a map goes
//! The hot path, parent → socket → worker → socket → parent, in five files:
//! 1. `map/feed.rs`: `Feed::fill` encodes items into chunks (`map/block.rs`;
//!    a typed batch's items straight into one codec sequence) and queues
//!    them as jobs (`job.rs`: what is queued and where answers go), many at
//!    once when half the window is answered; at one item per message, up
//!    to 4,096 timed items go in one job, sent together, each its own task (`singles.rs`);
//! 2. `slot.rs`: one thread per worker takes jobs from the queue a run at a
//!    time and writes them as frames (`protocol.rs`) on the worker's socket;
//! 3. `serve.rs`: the worker reads a frame, runs the batch, writes one
//!    `DONE` frame per chunk;
//! 4. `link.rs`: the slot's reader takes that answer, matches it to the
//!    oldest job in flight (a group's next item) and hands its bytes to the
//!    job's reply (a group's, once all its items are answered): a map's
//!    `Inbox` (`map/inbox.rs`), which decodes them there, on the reader
//!    thread (`answer.rs`), and wakes the iterating thread only when the
//!    chunk it waits for is in;
//! 5. `map.rs`: the iterating thread hands out the decoded results in input order.
//!
//! Modules depend one way: `map` and `task` on `job` and `answer`; `job` and
//! `answer` on nothing else in the pool.
//!
//! # What Python's pools have
//! - an initializer per worker: [`PoolBuilder::initializer`];
//! - recycling after N items: [`PoolBuilder::max_tasks_per_worker`];
//! - cancelling: [`Task::cancel`];
//! - timeouts per call: [`Pool::call_timeout`], [`Pool::submit_timeout`],
//!   [`Map::timeout`], beside the pool's [`PoolBuilder::timeout`];
//! - `close` and `join`, with how each worker ended: [`Pool::close`],
//!   [`Pool::join`], [`Pool::terminate`], [`WorkerExit`];
//! - borrowed items: `pool.map(&f, &items)`, see [`MapItems`];
//! - a [`SerFnMut`] given to `map` is refused at compile time, pointing to
//!   [`Pool::fold`] (see [`MapFn`]);
//! - with the `tracing` feature, events (target `serfn`) for workers
//!   started, dead, recycled or killed, and for functions shipped; without
//!   it the pool prints none of this.
//! - async code: with the `async` feature, `map_stream`,
//!   `map_unordered_stream` and `call_async`, which block no thread: an
//!   answer wakes the polling task, on any runtime.
//!
//! Retrying what a dead worker was running is off by default
//! ([`PoolBuilder::retries`]): the function may have had effects outside
//! the worker before it died, and a function that kills its worker (an
//! abort, an out-of-memory kill) would kill each worker it is retried on.
//!
#![cfg_attr(
    feature = "redis",
    doc = "[`RedisExecutor`]: crate::redis::RedisExecutor"
)]
#![cfg_attr(
    not(feature = "redis"),
    doc = "[`RedisExecutor`]: https://docs.rs/serfn/latest/serfn/redis/struct.RedisExecutor.html"
)]

pub(crate) mod answer;
mod builder;
mod call;
mod entry;
mod exit;
mod functions;
mod input;
pub(crate) mod job;
pub(crate) mod link;
pub(crate) mod map;
mod process;
pub(crate) mod protocol;
mod queue;
pub(crate) mod run_async;
pub(crate) mod serve;
mod shm;
pub(crate) mod singles;
mod slot;
mod stats;
#[cfg(feature = "async")]
pub(crate) mod stream;
pub(crate) mod task;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

pub(crate) use self::builder::Config;
pub use self::builder::PoolBuilder;
#[cfg(feature = "redis")]
pub(crate) use self::builder::DEFAULT_MAX_CONCURRENT;
use self::entry::FnEntry;
pub use self::exit::WorkerExit;
pub use self::input::{Borrowed, MapFn, MapItems, Owned};
use self::job::{Job, Reply, TaskCell, Work};
pub use self::map::{Map, MapUnordered, Progress};
use self::queue::Queue;
pub use self::stats::Stats;
#[cfg(feature = "async")]
pub use self::stream::{MapStream, MapUnorderedStream};
pub use self::task::{Cancelled, Task};
use crate::error::{Error, Result};
use crate::handle::SerFnMut;
use crate::sync::lock;

/// Encoded functions a pool keeps for reuse across maps, at most.
const CACHED_FUNCTIONS: usize = 32;

/// A pool of worker processes that run serialized functions.
///
/// Workers are started by re-executing the current program (see
/// [`worker::init`](crate::worker::init)) or a program of your choosing
/// ([`PoolBuilder::program`]). Dropping the pool stops them; so does the
/// death of this process.
///
/// A pool runs on this machine. [`RedisExecutor`] runs the same calls on
/// workers on any number of machines, behind Redis: see [where does it
/// run](crate#where-does-it-run).
///
/// # Example
/// ```no_run
/// use serfn::{Pool, SerFn};
///
/// fn main() -> serfn::Result<()> {
///     serfn::worker::init(); // first: a worker process never returns from here
///     let pool = Pool::new()?; // one worker per core
///     let data = vec![1.0, 2.0, 3.0];
///     let weighted: SerFn<f64, f64> = serfn::closure!("weighted", [data: Vec<f64>], move |x: f64| -> f64 {
///         data.iter().map(|d| d * x).sum()
///     });
///     let results = pool.map(&weighted, (0..1000).map(f64::from)).collect::<serfn::Result<Vec<f64>>>()?;
///     assert_eq!(results[2], 12.0);
///     println!("{:?}", pool.stats());
///     Ok(())
/// }
/// ```
#[cfg_attr(
    feature = "redis",
    doc = "[`RedisExecutor`]: crate::redis::RedisExecutor"
)]
#[cfg_attr(
    not(feature = "redis"),
    doc = "[`RedisExecutor`]: https://docs.rs/serfn/latest/serfn/redis/struct.RedisExecutor.html"
)]
pub struct Pool {
    shared: Arc<Shared>,
    slots: Vec<JoinHandle<Option<WorkerExit>>>,
}

/// What the pool's threads share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) queue: Queue,
    pub(crate) stats: stats::Counters,
    pub(crate) dir: process::SocketDir,
    pub(crate) pids: Mutex<Vec<Option<u32>>>,
    pub(crate) next_task: AtomicU64,
    next_function: AtomicU64,
    functions: Mutex<Vec<Arc<FnEntry>>>,
    /// Answered chunks' items blocks, for the next ones of any map.
    pub(crate) spare_blocks: Arc<map::SpareBlocks>,
}

impl Pool {
    /// A pool with one worker process per core, re-executing the current program.
    ///
    /// # Errors
    /// As [`PoolBuilder::build`].
    ///
    /// # Example
    /// ```no_run
    /// serfn::worker::init(); // first in `main`: the workers re-execute this program
    /// let pool = serfn::Pool::new()?;
    /// let cores = std::thread::available_parallelism().map_or(1, usize::from);
    /// assert_eq!(pool.workers(), cores);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn new() -> Result<Pool> {
        PoolBuilder::default().build()
    }

    /// Settings for a pool.
    ///
    /// # Example
    /// ```no_run
    /// serfn::worker::init();
    /// let pool = serfn::Pool::builder().workers(2).build()?;
    /// assert_eq!(pool.workers(), 2);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    fn start(config: Config) -> Result<Pool> {
        if self::serve::is_stray_worker() {
            return Err(Error::WorkerStart {
                reason: "this process was started as a serfn worker but did not call \
                         serfn::worker::init() first, so it would start workers of its own"
                    .into(),
            });
        }
        let dir = process::SocketDir::create()?;
        let deadline = Instant::now() + config.start_timeout;
        let connected = process::start_all(&config, &dir, config.workers, deadline);
        let mut workers = Vec::with_capacity(connected.len());
        let mut first_error = None;
        for connected in connected {
            match connected {
                Ok(worker) => workers.push(worker),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            for mut worker in workers {
                process::reap(&mut worker.child, Duration::ZERO);
            }
            return Err(error);
        }
        let shared = Arc::new(Shared {
            queue: Queue::new(config.workers),
            stats: stats::Counters::default(),
            dir,
            pids: Mutex::new(workers.iter().map(|w| Some(w.pid)).collect()),
            next_task: AtomicU64::new(0),
            next_function: AtomicU64::new(1),
            functions: Mutex::new(Vec::new()),
            spare_blocks: Arc::default(),
            config,
        });
        let slots = workers
            .into_iter()
            .enumerate()
            .map(|(index, worker)| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("serfn-worker-{index}"))
                    .spawn(move || slot::run(shared, index, Some(worker)))
                    .map_err(|error| Error::WorkerStart {
                        reason: format!("cannot start a thread: {error}"),
                    })
            })
            .collect::<Result<Vec<_>>>();
        let slots = match slots {
            Ok(slots) => slots,
            Err(error) => {
                shared.queue.close();
                return Err(error);
            }
        };
        Ok(Pool { shared, slots })
    }

    /// The number of worker slots.
    ///
    /// # Example
    /// ```no_run
    /// serfn::worker::init();
    /// let pool = serfn::Pool::builder().workers(3).build()?;
    /// assert_eq!(pool.workers(), 3);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn workers(&self) -> usize {
        self.shared.config.workers
    }

    /// The process ids of the workers running now (a slot restarting has none).
    ///
    /// # Example
    /// ```no_run
    /// # serfn::worker::init();
    /// # let pool = serfn::Pool::new()?;
    /// let pids = pool.worker_pids();
    /// assert_eq!(pids.len(), pool.workers()); // all started, none restarting
    /// assert!(!pids.contains(&std::process::id()));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn worker_pids(&self) -> Vec<u32> {
        lock(&self.shared.pids).iter().flatten().copied().collect()
    }

    /// Counters since the pool started.
    ///
    /// # Example
    /// ```no_run
    /// # serfn::worker::init();
    /// # let pool = serfn::Pool::new()?;
    /// let data = vec![1.0; 1000];
    /// let dot = serfn::closure!("dot", [data: Vec<f64>], move |x: f64| -> f64 { data.iter().sum::<f64>() * x });
    /// let results = pool.map(&dot, (0..100).map(f64::from)).collect::<serfn::Result<Vec<f64>>>()?;
    /// assert_eq!(results[2], 2000.0);
    /// let stats = pool.stats();
    /// assert_eq!(stats.tasks, 100);
    /// // The function and its 8 kB capture go to each worker once, not once per item.
    /// assert!(stats.functions_shipped <= pool.workers() as u64);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn stats(&self) -> Stats {
        self.shared.stats.snapshot(self.workers())
    }

    /// Applies `f` to every item in workers; yields the results in input order.
    ///
    /// Lazy and streaming: items are taken from `items` as results are
    /// consumed, with a bounded number of chunks in flight, so memory stays
    /// bounded whatever the input's length. `f` is shipped to each worker
    /// once. Each item's result is its own: a panic fails that item only.
    /// Set the chunk size with [`Map::chunk_size`] or [`PoolBuilder::chunk_size`],
    /// a timeout per item with [`Map::timeout`].
    ///
    /// Items may be borrowed: `pool.map(&f, &items)` or `items.iter()`
    /// encodes each `&A` as it is, with no clone (see [`MapItems`]). `f` is a
    /// [`SerFn`](crate::SerFn) or an [`AsyncSerFn`](crate::AsyncSerFn): a [`SerFnMut`] goes to [`fold`](Self::fold) instead.
    ///
    /// # Example
    /// ```no_run
    /// serfn::worker::init();
    /// let pool = serfn::Pool::new()?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// let squares: Vec<u64> = pool.map(&square, 0..10_000).collect::<serfn::Result<_>>()?;
    /// assert_eq!(squares[3], 9);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn map<F, I, How>(&self, f: &F, items: I) -> Map<'_, I::Item, F::Output, I::IntoIter>
    where
        F: MapFn,
        I: MapItems<F::Arg, How>,
    {
        let function = self.function(f.dyn_fn());
        Map::new(map::Feed::new(self, function, items.into_items()))
    }

    /// As [`map`](Self::map), but yields `(index, result)` as soon as each
    /// chunk is done, in any order.
    ///
    /// # Example
    /// ```no_run
    /// # serfn::worker::init();
    /// # let pool = serfn::Pool::new()?;
    /// let nap = serfn::closure!("nap", [], move |ms: u64| -> u64 {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms));
    ///     ms
    /// });
    /// let mut done = vec![0; 4];
    /// for (index, result) in pool.map_unordered(&nap, [300, 10, 20, 30]) {
    ///     done[index] = result?; // the index puts each result back in its place
    /// }
    /// assert_eq!(done, [300, 10, 20, 30]);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn map_unordered<F, I, How>(
        &self,
        f: &F,
        items: I,
    ) -> MapUnordered<'_, I::Item, F::Output, I::IntoIter>
    where
        F: MapFn,
        I: MapItems<F::Arg, How>,
    {
        let function = self.function(f.dyn_fn());
        MapUnordered::new(map::Feed::new(self, function, items.into_items()))
    }

    /// Folds `items` into one copy of `f`'s state per worker: each worker
    /// calls its own copy on the items it is given (`call_mut`), and the
    /// copies come back, one per worker, for you to combine. The calls'
    /// results are dropped.
    ///
    /// # Errors
    /// The first item's error: [`Error::Panicked`] (a panicking call may
    /// have left its state half-changed), [`Error::WorkerDied`] (the state
    /// died with the worker; folds are never retried), and as [`call`](Self::call).
    ///
    /// # Example
    /// ```no_run
    /// serfn::worker::init();
    /// let pool = serfn::Pool::new()?;
    /// let sum = serfn::closure!(mut "sum", [total: u64 = 0], move |x: u64| -> u64 { *total += x; *total });
    /// let mut states = pool.fold(&sum, 1..=100)?;
    /// // Each state answers with its total when given 0.
    /// let total: u64 = states.iter_mut().map(|state| state.call_mut(0)).sum();
    /// assert_eq!(total, 5050);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn fold<A, R, I, How>(&self, f: &SerFnMut<A, R>, items: I) -> Result<Vec<SerFnMut<A, R>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: MapItems<A, How>,
    {
        let function = self.intern(f.to_bytes()?, f.name(), true, false, false)?;
        let mut calls = MapUnordered::new(map::Feed::<_, R, _>::new(
            self,
            Ok(Arc::clone(&function)),
            items.into_items(),
        ));
        if let Some((_, Err(error))) = calls.find(|(_, result)| result.is_err()) {
            // Let the chunks in flight finish before the states are dropped.
            calls.for_each(drop);
            return Err(error);
        }
        let tasks: Vec<Task<Vec<u8>>> = (0..self.workers())
            .map(|slot| {
                let cell = TaskCell::new();
                let mut job = Job::new(
                    Work::Take {
                        function: Arc::clone(&function),
                    },
                    Reply::Task(Arc::clone(&cell)),
                );
                job.pin = Some(slot);
                self.shared.queue.push([job]);
                Task::new(cell, |bytes, _| Ok(bytes), self.shared.config.limits)
            })
            .collect();
        tasks
            .into_iter()
            .map(|task| {
                let bytes = task.wait()?;
                self.shared.config.limits.from_bytes(&bytes)
            })
            .collect()
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.workers())
            .field("pids", &self.worker_pids())
            .finish()
    }
}
