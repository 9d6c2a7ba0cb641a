//! [`PoolBuilder`]: a pool's settings.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::Pool;
use crate::codec::Limits;
use crate::error::{Error, Result};
use crate::handle::SerFnOnce;

/// A function each worker runs once, before its first task: its name and
/// its bytes, or why they could not be made (reported by `build`).
#[derive(Clone, Debug)]
pub(crate) struct Initializer {
    pub(crate) name: &'static str,
    pub(crate) bytes: std::result::Result<Arc<[u8]>, Arc<Error>>,
}

/// A pool's settings, from [`PoolBuilder`].
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) program: Option<PathBuf>,
    pub(crate) args: Option<Vec<OsString>>,
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) chunk_size: Option<usize>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retries: u32,
    pub(crate) start_timeout: Duration,
    pub(crate) liveness: Duration,
    pub(crate) limits: Limits,
    pub(crate) initializer: Option<Initializer>,
    pub(crate) max_tasks: Option<u64>,
    /// Async items a worker runs at once.
    pub(crate) max_concurrent: usize,
}

/// [`PoolBuilder::max_concurrent`]'s default.
pub(crate) const DEFAULT_MAX_CONCURRENT: usize = 100;

/// Settings for a [`Pool`]: `Pool::builder().workers(4).build()?`.
///
/// # Example
/// ```no_run
/// use std::time::Duration;
///
/// serfn::worker::init();
/// let pool = serfn::Pool::builder()
///     .workers(2)
///     .timeout(Duration::from_secs(10))
///     .env("RUST_LOG", "info")
///     .build()?;
/// # Ok::<(), serfn::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until .build()"]
pub struct PoolBuilder {
    config: Config,
}

impl Default for PoolBuilder {
    fn default() -> Self {
        PoolBuilder {
            config: Config {
                workers: std::thread::available_parallelism().map_or(1, usize::from),
                program: None,
                args: None,
                env: Vec::new(),
                chunk_size: None,
                timeout: None,
                retries: 0,
                start_timeout: Duration::from_secs(10),
                liveness: Duration::from_secs(10),
                limits: Limits::default(),
                initializer: None,
                max_tasks: None,
                max_concurrent: DEFAULT_MAX_CONCURRENT,
            },
        }
    }
}

impl PoolBuilder {
    /// The number of worker processes; default: one per core.
    ///
    /// # Example
    /// ```no_run
    /// serfn::worker::init();
    /// let pool = serfn::Pool::builder().workers(3).build()?;
    /// assert_eq!(pool.worker_pids().len(), 3);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn workers(mut self, workers: usize) -> Self {
        self.config.workers = workers.max(1);
        self
    }

    /// Runs workers from this program instead of re-executing the current
    /// one. Its `main` must call [`worker::init`](crate::worker::init) first,
    /// and it must register every function the pool is given: others fail
    /// with [`Error::UnknownFunction`](crate::Error::UnknownFunction). It gets no arguments unless [`args`](Self::args) sets them.
    ///
    /// # Example
    /// ```no_run
    /// use serfn::{Error, Pool};
    ///
    /// serfn::worker::init();
    /// // Typically a binary of your workspace: `target/release/my-worker`.
    /// let missing = Pool::builder().program("/no/such/worker").build();
    /// assert!(matches!(missing, Err(Error::WorkerStart { .. })));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.config.program = Some(program.into());
        self
    }

    /// The workers' command-line arguments. By default none for a
    /// [`program`](Self::program), and for the current program a test
    /// filter that [`test_support!`](crate::test_support) answers.
    ///
    /// # Example
    /// ```no_run
    /// serfn::worker::init(); // before the arguments are parsed: a worker never returns from it
    /// let me = std::env::current_exe().expect("the path of this program");
    /// let pool = serfn::Pool::builder().program(me).args(["--quiet"]).build()?;
    /// let args = serfn::closure!("args", [], move || -> Vec<String> { std::env::args().skip(1).collect() });
    /// assert_eq!(pool.call(&args, ())?, ["--quiet"]);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.config.args = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Sets an environment variable for the workers, on top of this process's environment.
    ///
    /// # Example
    /// ```no_run
    /// serfn::worker::init();
    /// let pool = serfn::Pool::builder().env("MODEL_DIR", "/srv/models").build()?;
    /// let dir = serfn::closure!("model_dir", [], move || -> Option<String> { std::env::var("MODEL_DIR").ok() });
    /// assert_eq!(pool.call(&dir, ())?.as_deref(), Some("/srv/models"));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.config.env.push((key.into(), value.into()));
        self
    }

    /// Items per message for [`Pool::map`] and the like. By default chunks
    /// are sized from measured run times (about 2 ms of work each, and at
    /// least 4 chunks per worker when the input's length is known); 1 when
    /// a [`timeout`](Self::timeout) is set. Either way a chunk is made
    /// smaller once its function's answers are seen to be large: a chunk
    /// whose answer exceeds the [`limits`](Self::limits) fails with
    /// [`Error::TooLarge`](crate::Error::TooLarge) as a whole.
    ///
    /// At 1, each item is a message of its own, with its own result or
    /// error, [`timeout`](Self::timeout) and [`retries`](Self::retries).
    /// Once a map's items are timed, the pool still queues and hands them
    /// over up to 4,096 at a time (as many as take a worker about 2 ms), so
    /// a map's [`on_progress`](crate::Map::on_progress) reports come that
    /// often, not once per item.
    ///
    /// # Example
    /// ```no_run
    /// serfn::worker::init();
    /// let pool = serfn::Pool::builder().chunk_size(100).build()?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// let mut chunks = 0;
    /// let squares = pool
    ///     .map(&square, 0..1_000)
    ///     .on_progress(|_| chunks += 1) // once per chunk answered
    ///     .collect::<serfn::Result<Vec<u64>>>()?;
    /// assert_eq!((squares.len(), chunks), (1_000, 10));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn chunk_size(mut self, items: usize) -> Self {
        self.config.chunk_size = Some(items.max(1));
        self
    }

    /// Kills a worker whose task runs longer than this, and fails the task
    /// with [`Error::Timeout`](crate::Error::Timeout). A task is one message: one item, unless a
    /// [`chunk_size`](Self::chunk_size) above 1 is set, when it is one chunk.
    /// A call or a map may set its own instead: [`Pool::call_timeout`],
    /// [`Pool::submit_timeout`], [`Map::timeout`](crate::Map::timeout).
    ///
    /// # Example
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// serfn::worker::init();
    /// let pool = serfn::Pool::builder().timeout(Duration::from_millis(500)).build()?;
    /// let nap = serfn::closure!("nap", [], move |ms: u64| -> u64 {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     ms
    /// });
    /// assert!(matches!(pool.call(&nap, 60_000), Err(serfn::Error::Timeout { .. })));
    /// assert_eq!(pool.call(&nap, 1)?, 1); // on a fresh worker
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = Some(timeout);
        self
    }

    /// How many items of an async function ([`AsyncSerFn`](crate::AsyncSerFn))
    /// a worker runs at once, on its runtime; default 100. A map sends an
    /// async function's items this many to a message (unless a
    /// [`chunk_size`](Self::chunk_size) is set), and the worker overlaps
    /// them: 200 items that each wait 100 ms take about 100 ms, not 20 s.
    /// Sync functions are unaffected: a worker runs one at a time. A
    /// chunk's answer goes back once all its items are done, and a worker
    /// runs its chunks in order: an item that waits long holds back the
    /// rest of its chunk's answer and the worker's next chunk (a timeout
    /// bounds how long).
    ///
    /// For an async function, a [`timeout`](Self::timeout) applies to each
    /// item: past it, the item's future is dropped and the item fails with
    /// [`Error::Timeout`](crate::Error::Timeout); the worker and the
    /// other items go on. Needs the `tokio` feature: a worker then runs a
    /// current-thread tokio runtime with its timers, and its I/O driver when
    /// the program enables tokio's `net` feature. Without it, an async
    /// function's items fail with [`Error::SignatureMismatch`](crate::Error::SignatureMismatch).
    ///
    /// # Example
    /// ```no_run
    /// serfn::worker::init();
    /// let pool = serfn::Pool::builder().workers(2).max_concurrent(200).build()?;
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn max_concurrent(mut self, items: usize) -> Self {
        self.config.max_concurrent = items.clamp(1, u32::MAX as usize);
        self
    }

    /// How many times a task is sent again after its worker died while running
    /// it; default 0. See [the module docs](crate::pool#faults) for why.
    /// Fold tasks are never retried: the state they changed died with the worker.
    /// One exception, at one item per message: when a death leaves open which
    /// item of a group ran, the items the worker had not answered are sent
    /// again, one at a time, to find it; only the next death is counted
    /// against an item (the module docs again).
    ///
    /// # Example
    /// ```no_run
    /// serfn::worker::init();
    /// let pool = serfn::Pool::builder().workers(1).retries(1).build()?;
    /// let crash = serfn::closure!("crash", [], move || -> () { std::process::abort() });
    /// // Run twice, on two workers, and lost twice.
    /// assert!(matches!(pool.call(&crash, ()), Err(serfn::Error::WorkerDied { .. })));
    /// assert_eq!(pool.stats().retries, 1);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn retries(mut self, retries: u32) -> Self {
        self.config.retries = retries;
        self
    }

    /// How long a new worker may take to connect; default 10 s.
    ///
    /// # Example
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// serfn::worker::init();
    /// // A program that never connects: `build` gives up after the start timeout.
    /// let stuck = serfn::Pool::builder()
    ///     .program("sleep")
    ///     .args(["60"])
    ///     .start_timeout(Duration::from_millis(300))
    ///     .build();
    /// assert!(matches!(stuck, Err(serfn::Error::WorkerStart { .. })));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.config.start_timeout = timeout;
        self
    }

    /// How long a worker that owes an answer may send nothing at all before
    /// it is killed and its task fails with [`Error::WorkerDied`](crate::Error::WorkerDied) (or is
    /// retried); default 10 s.
    ///
    /// A worker says it is alive every 100 ms from a thread of its own, also
    /// while a function runs, so a slow function is never silent: this
    /// catches a process that is stopped (`SIGSTOP`), stalled as a whole, or
    /// that stopped in the middle of a frame. A function that deadlocks or
    /// loops keeps its process alive; bound it with [`timeout`](Self::timeout).
    ///
    /// # Example
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// serfn::worker::init();
    /// let pool = serfn::Pool::builder().liveness_timeout(Duration::from_millis(500)).build()?;
    /// let nap = serfn::closure!("nap", [], move |ms: u64| -> u64 {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     ms
    /// });
    /// // Slow is not silent: the worker's heartbeat keeps it alive.
    /// assert_eq!(pool.call(&nap, 2_000)?, 2_000);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn liveness_timeout(mut self, timeout: Duration) -> Self {
        self.config.liveness = timeout;
        self
    }

    /// Decode limits for what crosses the pool's sockets, both ways: work
    /// (a function, its capture or a chunk of items) that would exceed them
    /// fails with [`Error::TooLarge`](crate::Error::TooLarge) before it is sent, and so does an
    /// answer, in the worker, before it is sent back.
    ///
    /// # Example
    /// ```no_run
    /// use serfn::{Error, Limits};
    ///
    /// serfn::worker::init();
    /// let pool = serfn::Pool::builder().limits(Limits::default().max_bytes(64 << 10)).build()?;
    /// let len = serfn::closure!("len", [], move |v: Vec<u8>| -> usize { v.len() });
    /// assert_eq!(pool.call(&len, vec![0; 1_000])?, 1_000);
    /// // Refused before it is sent.
    /// assert!(matches!(pool.call(&len, vec![0; 1 << 20]), Err(Error::TooLarge { .. })));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Runs `init` once in each worker process, before its first task, and
    /// again in each worker started later (to replace one that died, or
    /// [recycled](Self::max_tasks_per_worker)): Python's
    /// `Pool(initializer=...)`, to load a model or open a file once per process.
    ///
    /// What it sets up is the worker's own: keep it in a `static` (a
    /// [`OnceLock`](std::sync::OnceLock), a `thread_local!`) that the
    /// pool's functions read, as in the example. A worker counts as started
    /// once its initializer returns, so the [`start_timeout`](Self::start_timeout)
    /// bounds both: raise it for a slow initializer.
    ///
    /// # Errors
    /// [`build`](Self::build) fails with [`Error::WorkerStart`] if `init`
    /// panics or fails in any worker (its `reason` names the initializer and
    /// carries the panic's message and location), or with [`Error::Encode`]
    /// or [`Error::TooLarge`] if `init` cannot be encoded within the
    /// [`limits`](Self::limits). Once the pool runs, a replacement worker
    /// whose initializer fails is retried with back-off, as a worker that
    /// fails to start is; the jobs waiting fail with that error once no
    /// worker is left.
    ///
    /// # Example
    /// ```no_run
    /// use std::sync::OnceLock;
    ///
    /// static SCALE: OnceLock<f64> = OnceLock::new();
    ///
    /// serfn::worker::init();
    /// // Runs in each worker: say, a model read from disk, once per process.
    /// let load = serfn::closure!("load_scale", [scale: f64 = 2.5], move || -> () {
    ///     SCALE.get_or_init(|| *scale);
    /// });
    /// let pool = serfn::Pool::builder().workers(2).initializer(load).build()?;
    /// let scaled = serfn::closure!("scaled", [], move |x: f64| -> f64 { x * SCALE.get().copied().unwrap_or(0.0) });
    /// assert_eq!(pool.call(&scaled, 2.0)?, 5.0);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn initializer(mut self, init: impl Into<SerFnOnce<(), ()>>) -> Self {
        let init = init.into();
        self.config.initializer = Some(Initializer {
            name: init.name(),
            bytes: init.to_bytes().map(Arc::from).map_err(Arc::new),
        });
        self
    }

    /// Replaces each worker after it has run this many items (Python's
    /// `maxtasksperchild`, loky's `max_tasks_per_child`): for functions that
    /// leak memory or other resources. Default: never.
    ///
    /// The worker is sent no more items once it has `tasks` of them, finishes
    /// those, and exits cleanly when the pool closes its socket; a new worker
    /// (which runs the [`initializer`](Self::initializer) again) takes its
    /// place. No item is lost or run twice. Maps send chunks of at most
    /// `tasks` items, so that a worker never runs more. A worker that holds a
    /// [`fold`](Pool::fold)'s state is recycled only once the fold has taken
    /// it back. [`Stats::recycled`](crate::Stats::recycled) counts these.
    ///
    /// # Example
    /// ```no_run
    /// serfn::worker::init();
    /// let pool = serfn::Pool::builder().workers(2).max_tasks_per_worker(100).build()?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// let squares: Vec<u64> = pool.map(&square, 0..1_000).collect::<serfn::Result<_>>()?;
    /// assert_eq!(squares[9], 81);
    /// assert!(pool.stats().recycled >= 8);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn max_tasks_per_worker(mut self, tasks: u64) -> Self {
        self.config.max_tasks = Some(tasks.max(1));
        self
    }

    /// Starts the workers and waits until each has connected.
    ///
    /// # Errors
    /// [`Error::WorkerStart`](crate::Error::WorkerStart) if a worker cannot be started or does not
    /// connect within the [`start_timeout`](Self::start_timeout); also when
    /// called in a process a pool started as a worker that did not call
    /// [`worker::init`](crate::worker::init), which would start workers without end.
    ///
    /// # Example
    /// ```no_run
    /// serfn::worker::init();
    /// let pool = serfn::Pool::builder().workers(2).build()?;
    /// // Every worker has started and connected.
    /// assert_eq!(pool.worker_pids().len(), 2);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn build(self) -> Result<Pool> {
        if let Some(init) = &self.config.initializer {
            let bytes = init.bytes.as_ref().map_err(|error| error.duplicate())?;
            let limit = self.config.limits.get_max_bytes();
            if bytes.len() > limit {
                return Err(Error::TooLarge {
                    len: bytes.len() as u64,
                    limit,
                });
            }
        }
        Pool::start(self.config)
    }
}
