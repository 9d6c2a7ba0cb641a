//! The worker's side: take tasks from the group, run them, publish the
//! results, and take over what dead workers left.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamPendingCountReply,
    StreamReadOptions, StreamReadReply,
};
use redis::Commands;

use super::backoff::Backoff;
use super::claim::{Heartbeat, Running};
use super::entry::{self, Context, Keys, TaskEntry, TaskHeader, FIELD};
use super::outbox::{
    acknowledge, append_dead_letter, append_forged, append_result, Checked, Outbox, Parked,
};
use super::presence::{self, Announcer, Tally};
use super::shutdown::{self, Grace, Signals};
use super::{broker, DEFAULT_PREFIX};
use crate::codec::{self, Key, Limits};
use crate::error::{Error, Result, WireError};
use crate::handle::DynFn;
use crate::plumbing::Kind;
use crate::pool::protocol::Fields;
use crate::pool::run_async::{self, Runner, Settings};
use crate::sync::lock;

/// Functions a worker keeps decoded, at most.
const CACHED_FUNCTIONS: usize = 64;
/// How long one read of the task stream waits.
const READ_BLOCK: Duration = Duration::from_millis(500);

/// A worker of a Redis fleet: runs the tasks that
/// [`RedisExecutor`](super::RedisExecutor)s send, until stopped.
///
/// Run it in a program that links the same functions as the drivers:
///
/// ```no_run
/// serfn::redis::RedisWorker::new("redis://127.0.0.1:6379").run()?;
/// # Ok::<(), serfn::Error>(())
/// ```
///
/// It logs through `tracing`: install a subscriber to see what it does.
#[derive(Clone, Debug)]
pub struct RedisWorker {
    url: String,
    prefix: String,
    key: Option<Key>,
    consumer: String,
    claim_idle: Duration,
    max_deliveries: u32,
    limits: Limits,
    dead_letter_cap: usize,
    max_concurrent: usize,
    stop: Arc<AtomicBool>,
    /// Set in presence.rs ([`RedisWorker::heartbeat`]).
    pub(super) heartbeat: Duration,
    /// Set in shutdown.rs ([`RedisWorker::grace`], [`RedisWorker::stop_on_signals`]).
    pub(super) grace: Duration,
    pub(super) signals: bool,
}

/// Entries kept in each of the dead-letter and forged streams, about.
pub const DEFAULT_DEAD_LETTER_CAP: usize = 10_000;

/// [`RedisWorker::max_concurrent`]'s default, the pool's.
pub const DEFAULT_MAX_CONCURRENT: usize = crate::pool::DEFAULT_MAX_CONCURRENT;

impl RedisWorker {
    /// A worker for the Redis server at `url`, with the defaults.
    ///
    /// # Example
    /// ```no_run
    /// use serfn::redis::{RedisExecutor, RedisWorker};
    /// # let url = "redis://127.0.0.1:6379";
    ///
    /// let worker = RedisWorker::new(url);
    /// std::thread::spawn(move || worker.run()); // usually a process of its own
    /// let neg = serfn::closure!("neg", [], move |x: i32| -> i32 { -x });
    /// assert_eq!(serfn::Executor::call(&RedisExecutor::new(url)?, &neg, 1)?, -1);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn new(url: &str) -> Self {
        RedisWorker {
            url: url.to_owned(),
            prefix: DEFAULT_PREFIX.to_owned(),
            key: None,
            consumer: default_consumer(),
            claim_idle: Duration::from_secs(30),
            max_deliveries: 5,
            limits: Limits::default(),
            dead_letter_cap: DEFAULT_DEAD_LETTER_CAP,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            stop: Arc::new(AtomicBool::new(false)),
            heartbeat: presence::DEFAULT_TTL,
            grace: shutdown::DEFAULT_GRACE,
            signals: false,
        }
    }

    /// The prefix of every key, as the drivers': `serfn` by default.
    ///
    /// # Example
    /// ```no_run
    /// use serfn::redis::{RedisExecutor, RedisWorker};
    /// # let url = "redis://127.0.0.1:6379";
    ///
    /// let worker = RedisWorker::new(url).prefix("staging");
    /// std::thread::spawn(move || worker.run());
    /// let staging = RedisExecutor::builder(url).prefix("staging").build()?;
    /// let neg = serfn::closure!("neg", [], move |x: i32| -> i32 { -x });
    /// assert_eq!(serfn::Executor::call(&staging, &neg, 2)?, -2);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Runs only tasks signed with `key`, and signs results with it.
    ///
    /// # Example
    /// ```no_run
    /// use serfn::redis::{RedisExecutor, RedisWorker};
    /// # let url = "redis://127.0.0.1:6379";
    ///
    /// let key = serfn::codec::Key::new([7u8; 32]); // 32 random bytes from a secrets manager, in production
    /// let worker = RedisWorker::new(url).key(key.clone());
    /// std::thread::spawn(move || worker.run());
    /// let fleet = RedisExecutor::builder(url).key(key).build()?;
    /// let abs = serfn::closure!("abs", [], move |x: i32| -> i32 { x.abs() });
    /// assert_eq!(serfn::Executor::call(&fleet, &abs, -3)?, 3);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn key(mut self, key: Key) -> Self {
        self.key = Some(key);
        self
    }

    /// This worker's name in the consumer group: `host-pid` by default.
    ///
    /// # Example
    /// ```no_run
    /// use serfn::redis::{RedisExecutor, RedisWorker};
    /// # let url = "redis://127.0.0.1:6379";
    ///
    /// let worker = RedisWorker::new(url).consumer("gpu-box-1");
    /// assert!(format!("{worker:?}").contains("gpu-box-1")); // in its logs, and Redis's `XINFO`
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.consumer = name.into();
        self
    }

    /// How long a task may sit unacknowledged with a worker before another
    /// takes it over (30 s by default). A running task's worker renews its
    /// claim three times in that time, so only dead workers lose tasks.
    ///
    /// # Example
    /// ```no_run
    /// use serfn::redis::{RedisExecutor, RedisWorker};
    /// # let url = "redis://127.0.0.1:6379";
    ///
    /// use std::time::Duration;
    ///
    /// // Short tasks: take over a dead worker's after 5 s rather than 30.
    /// let worker = RedisWorker::new(url).claim_idle(Duration::from_secs(5));
    /// assert!(format!("{worker:?}").contains("claim_idle: 5s"));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn claim_idle(mut self, idle: Duration) -> Self {
        self.claim_idle = idle.max(Duration::from_millis(30));
        self
    }

    /// Deliveries of one task after which it goes to the dead-letter
    /// stream instead of running again (5 by default).
    ///
    /// # Example
    /// ```no_run
    /// use serfn::redis::{RedisExecutor, RedisWorker};
    /// # let url = "redis://127.0.0.1:6379";
    ///
    /// // A task that killed two workers is not given to a third.
    /// let worker = RedisWorker::new(url).max_deliveries(2);
    /// assert!(format!("{worker:?}").contains("max_deliveries: 2"));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn max_deliveries(mut self, deliveries: u32) -> Self {
        self.max_deliveries = deliveries.max(1);
        self
    }

    /// Limits for decoding tasks and functions read from Redis.
    ///
    /// # Example
    /// ```no_run
    /// use serfn::redis::{RedisExecutor, RedisWorker};
    /// # let url = "redis://127.0.0.1:6379";
    ///
    /// use serfn::Limits;
    ///
    /// // A shared Redis: bytes from it are bounded as any untrusted input.
    /// let worker = RedisWorker::new(url).limits(Limits::default().max_bytes(1 << 20).max_depth(32));
    /// std::thread::spawn(move || worker.run());
    /// let neg = serfn::closure!("neg", [], move |x: i32| -> i32 { -x });
    /// assert_eq!(serfn::Executor::call(&RedisExecutor::new(url)?, &neg, 4)?, -4);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// About how many entries the dead-letter stream (`{prefix}:dead`) and
    /// the stream of refused entries (`{prefix}:forged`) keep, each
    /// ([`DEFAULT_DEAD_LETTER_CAP`] by default): older ones are trimmed as
    /// new ones come (`XADD MAXLEN ~`), so a flood cannot grow them.
    ///
    /// # Example
    /// ```no_run
    /// use serfn::redis::RedisWorker;
    /// # let url = "redis://127.0.0.1:6379";
    ///
    /// let worker = RedisWorker::new(url).dead_letter_cap(1_000);
    /// assert!(format!("{worker:?}").contains("dead_letter_cap: 1000"));
    /// ```
    pub fn dead_letter_cap(mut self, entries: usize) -> Self {
        self.dead_letter_cap = entries.max(1);
        self
    }

    /// How many items of one task of an async function
    /// ([`AsyncSerFn`](crate::AsyncSerFn)) run at once on this worker's
    /// runtime ([`DEFAULT_MAX_CONCURRENT`] by default, at least 1). Each
    /// item has the task's timeout of its own: a late item's future is
    /// dropped and answers [`Error::Timeout`], a panicking one
    /// [`Error::Panicked`], and the worker goes on. The runtime is the
    /// `tokio` feature's; a worker built without it answers such a task
    /// with [`Error::SignatureMismatch`] and goes on. A driver's tasks of
    /// such a function carry [`DEFAULT_MAX_CONCURRENT`] items unless its
    /// [`chunk_size`](super::RedisExecutorBuilder::chunk_size) says otherwise.
    ///
    /// # Example
    /// ```no_run
    /// use serfn::redis::{RedisExecutor, RedisWorker};
    /// # let url = "redis://127.0.0.1:6379";
    ///
    /// // I/O-bound functions: 500 requests in flight per worker.
    /// let worker = RedisWorker::new(url).max_concurrent(500);
    /// assert!(format!("{worker:?}").contains("max_concurrent: 500"));
    /// ```
    pub fn max_concurrent(mut self, items: usize) -> Self {
        self.max_concurrent = items.max(1);
        self
    }

    /// A flag that stops [`run`](Self::run) when set (checked between
    /// tasks): the running task finishes within the [`grace`](Self::grace)
    /// period.
    ///
    /// # Example
    /// ```no_run
    /// use serfn::redis::{RedisExecutor, RedisWorker};
    /// # let url = "redis://127.0.0.1:6379";
    ///
    /// use std::sync::atomic::Ordering;
    ///
    /// let worker = RedisWorker::new(url);
    /// let stop = worker.stop_flag();
    /// let serving = std::thread::spawn(move || worker.run());
    /// stop.store(true, Ordering::SeqCst); // on SIGTERM, say
    /// serving.join().expect("the worker did not panic")?;
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Serves tasks until the stop flag is set (or a signal comes, with
    /// [`stop_on_signals`](Self::stop_on_signals)), then finishes the
    /// running task (see [`grace`](Self::grace)). Connection failures are
    /// retried for ever, with a pause that grows from 50 ms to 2 s, jittered
    /// by up to a quarter either way, and starts again after a success.
    ///
    /// # Errors
    /// [`Error::Broker`] if the URL is invalid; [`Error::Io`] if a thread or
    /// a signal handler cannot be set up.
    ///
    /// # Example
    /// ```
    /// let bad = serfn::redis::RedisWorker::new("not a url").run();
    /// assert!(matches!(bad, Err(serfn::Error::Broker { .. })));
    /// ```
    pub fn run(self) -> Result<()> {
        // Panics then carry their location (and backtrace) to the driver.
        crate::error::install_hook();
        let client = redis::Client::open(self.url.as_str()).map_err(broker("connect"))?;
        let keys = Keys::new(&self.prefix);
        tracing::info!(consumer = %self.consumer, prefix = %self.prefix, "serfn redis worker starting");
        crate::registry::trace_all(); // layouts traced now, not by the first task
        let _signals = match self.signals {
            true => Some(Signals::install(&self.stop)?),
            false => None,
        };
        // Set once serving ended: the helper threads then end too.
        let finished = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let running = Arc::new(Mutex::new(None));
        let outbox = Outbox {
            keys: keys.clone(),
            key: self.key.clone(),
            consumer: self.consumer.clone(),
        };
        let heartbeat = Heartbeat {
            client: client.clone(),
            outbox: outbox.clone(),
            running: Arc::clone(&running),
            every: self.claim_idle / 3,
            // Not the stop flag: a stopping worker's task keeps its claim.
            stop: Arc::clone(&finished),
        };
        let announcer = Announcer {
            client: client.clone(),
            keys: keys.clone(),
            name: self.consumer.clone(),
            ttl: self.heartbeat,
            tally: Arc::clone(&tally),
            stopping: Arc::clone(&self.stop),
            finished: Arc::clone(&finished),
        };
        let grace = Grace {
            client: client.clone(),
            keys: keys.clone(),
            consumer: self.consumer.clone(),
            claim_idle: self.claim_idle,
            grace: self.grace,
            running: Arc::clone(&running),
            stop: Arc::clone(&self.stop),
            finished: Arc::clone(&finished),
        };
        let helpers = start_helpers(
            &finished,
            [
                spawn("serfn-heartbeat", move || heartbeat.run()),
                spawn("serfn-announce", move || announcer.run()),
                spawn("serfn-grace", move || grace.run()),
            ],
        )?;
        let mut serving = Serving {
            worker: &self,
            client,
            keys,
            outbox,
            connection: None,
            functions: Functions::default(),
            running,
            tally,
            last_claim: None,
            checked: Checked::default(),
            runner: Runner::default(),
        };
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        while !self.stop.load(Ordering::SeqCst) {
            match serving.turn() {
                Ok(()) => backoff.reset(),
                Err(error) => {
                    let pause = backoff.pause();
                    tracing::warn!(%error, ?pause, "serfn redis worker: broker error; reconnecting");
                    serving.connection = None;
                    std::thread::sleep(pause);
                }
            }
        }
        finished.store(true, Ordering::SeqCst);
        for helper in helpers {
            let _ = helper.join();
        }
        tracing::info!(consumer = %self.consumer, "serfn redis worker stopped");
        Ok(())
    }
}

fn default_consumer() -> String {
    format!("{}-{}", presence::hostname(), std::process::id())
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(Error::io)
}

/// The helper threads, all started; or, if one could not be, the others
/// ended and the error.
fn start_helpers<const N: usize>(
    finished: &AtomicBool,
    spawned: [Result<std::thread::JoinHandle<()>>; N],
) -> Result<Vec<std::thread::JoinHandle<()>>> {
    let mut started = Vec::with_capacity(N);
    let mut failure = None;
    for helper in spawned {
        match helper {
            Ok(handle) => started.push(handle),
            Err(error) => failure = failure.or(Some(error)),
        }
    }
    let Some(error) = failure else {
        return Ok(started);
    };
    finished.store(true, Ordering::SeqCst);
    for handle in started {
        let _ = handle.join();
    }
    Err(error)
}

/// Decoded functions by hash, the most recent [`CACHED_FUNCTIONS`].
#[derive(Default)]
struct Functions {
    loaded: HashMap<[u8; 32], std::result::Result<DynFn, WireError>>,
    order: VecDeque<[u8; 32]>,
}

struct Serving<'w> {
    worker: &'w RedisWorker,
    client: redis::Client,
    keys: Keys,
    outbox: Outbox,
    connection: Option<redis::Connection>,
    functions: Functions,
    running: Arc<Mutex<Option<Running>>>,
    tally: Arc<Tally>,
    last_claim: Option<Instant>,
    checked: Checked,
    /// Runs async functions' items, on a runtime started when first needed.
    runner: Runner,
}

impl Serving<'_> {
    fn connection(&mut self) -> Result<&mut redis::Connection> {
        if self.connection.is_none() {
            let mut connection = self.client.get_connection().map_err(broker("connect"))?;
            ensure_group(&mut connection, &self.keys)?;
            self.connection = Some(connection);
        }
        Ok(self.connection.as_mut().expect("connected above"))
    }

    /// Takes over idle tasks when it is time, then reads and runs new ones.
    fn turn(&mut self) -> Result<()> {
        let idle = self.worker.claim_idle;
        if self.last_claim.is_none_or(|at| at.elapsed() >= idle / 2) {
            self.last_claim = Some(Instant::now());
            self.reclaim()?;
        }
        let options = StreamReadOptions::default()
            .group(self.keys.group(), &self.worker.consumer)
            .count(1)
            .block(READ_BLOCK.as_millis() as usize);
        let tasks = self.keys.tasks();
        let reply: redis::RedisResult<StreamReadReply> =
            self.connection()?
                .xread_options(&[&tasks], &[">"], &options);
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) if error.code() == Some("NOGROUP") => {
                // The stream went away (Redis restarted): connect afresh.
                self.connection = None;
                return Ok(());
            }
            Err(error) => return Err(broker("read tasks")(error)),
        };
        for id in reply.keys.into_iter().flat_map(|stream| stream.ids) {
            self.process(id, 1)?;
        }
        Ok(())
    }

    /// Claims tasks idle past `claim_idle` (their worker died): runs them,
    /// or dead-letters those delivered too often.
    fn reclaim(&mut self) -> Result<()> {
        let idle_ms = self.worker.claim_idle.as_millis() as u64;
        let (tasks, group) = (self.keys.tasks(), self.keys.group());
        let consumer = self.worker.consumer.clone();
        let options = StreamAutoClaimOptions::default().count(16);
        let reply: StreamAutoClaimReply = self
            .connection()?
            .xautoclaim_options(&tasks, &group, &consumer, idle_ms, "0-0", options)
            .map_err(broker("claim idle tasks"))?;
        for id in reply.claimed {
            let pending: StreamPendingCountReply = self
                .connection()?
                .xpending_count(&tasks, &group, &id.id, &id.id, 1)
                .map_err(broker("count deliveries"))?;
            let deliveries = pending.ids.first().map_or(1, |p| p.times_delivered) as u32;
            tracing::info!(task = %id.id, deliveries, "took over a task left idle");
            self.process(id, deliveries)?;
        }
        Ok(())
    }

    fn process(&mut self, id: StreamId, deliveries: u32) -> Result<()> {
        if self.worker.stop.load(Ordering::SeqCst) {
            // Read as the worker was asked to stop: another worker runs it.
            let (keys, idle) = (self.keys.clone(), self.worker.claim_idle);
            let consumer = &self.worker.consumer;
            let released = shutdown::release(self.connection()?, &keys, consumer, &id.id, idle);
            return released.map_err(broker("release a task"));
        }
        let bytes: Vec<u8> = id.get(FIELD).unwrap_or_default();
        let key = self.worker.key.as_ref();
        let task: TaskEntry = match entry::open(&bytes, key, Context::Task, &self.worker.limits) {
            Ok(task) => task,
            Err(error) => {
                tracing::warn!(task = %id.id, %error, "refused an entry: parked apart, not run");
                return self.park_forged(&id.id, &bytes, &error.to_string());
            }
        };
        let header = &task.header;
        if self.cancelled(&header.job)? {
            tracing::debug!(task = %id.id, job = %header.job, "skipped a task of a cancelled job");
            let mut pipe = redis::pipe();
            acknowledge(&mut pipe, &self.keys, &id.id);
            let _: () = pipe
                .query(self.connection()?)
                .map_err(broker("drop a cancelled task"))?;
            return Ok(());
        }
        if deliveries > self.worker.max_deliveries {
            let reason = format!(
                "delivered {deliveries} times, more than the {} allowed",
                self.worker.max_deliveries
            );
            tracing::warn!(task = %id.id, %reason, "dead-lettered");
            return self.dead_letter(&id.id, &bytes, header, deliveries, &reason);
        }
        let bound = self.bound(&task);
        let started = Instant::now();
        *lock(&self.running) = Some(Running {
            id: id.id.clone(),
            task: header.clone(),
            deadline: bound.map(|bound| started + bound),
        });
        self.tally.begin(&id.id, header);
        let output = self.run_task(&task);
        let elapsed = started.elapsed();
        let failed = output.is_err();
        let outbox = self.outbox.clone();
        let published = outbox.publish(self.connection()?, &id.id, header, output, elapsed);
        *lock(&self.running) = None;
        self.tally.end(failed);
        published
    }

    /// How long `task` may run before its worker is ended: its timeout; for
    /// an async function's, a round of it per `max_concurrent` items (each
    /// item's own timeout answers first, and the worker lives).
    fn bound(&mut self, task: &TaskEntry) -> Option<Duration> {
        let timeout = Duration::from_millis(task.header.timeout_ms?);
        let function = self.function(&task.function, &task.header.name);
        if function.is_ok_and(|f| f.signature().kind() == Kind::Async) {
            let count = task.header.count as usize;
            return Some(run_async::chunk_bound(
                timeout,
                count,
                self.worker.max_concurrent,
            ));
        }
        Some(timeout)
    }

    fn run_task(&mut self, task: &TaskEntry) -> std::result::Result<Vec<u8>, WireError> {
        // Apart from `self`, which lends the function it runs.
        let mut runner = std::mem::take(&mut self.runner);
        let output = self.run_with(task, &mut runner);
        self.runner = runner;
        output
    }

    fn run_with(
        &mut self,
        task: &TaskEntry,
        runner: &mut Runner,
    ) -> std::result::Result<Vec<u8>, WireError> {
        let limits = self.worker.limits;
        let settings = Settings {
            timeout: task.header.timeout_ms.map(Duration::from_millis),
            concurrency: self.worker.max_concurrent,
        };
        let function = self.function(&task.function, &task.header.name)?;
        let mut out = Vec::new();
        let kind = function.signature().kind();
        if kind == Kind::Async {
            let items = Fields(&task.items).items()?;
            check_count(task, items.len())?;
            runner
                .run(function, &items, &limits, &settings, &mut out)
                .map_err(|error| WireError::from(&error))?;
            return Ok(out);
        }
        if kind != Kind::Fn && !task.header.seq {
            // A fold's state or a `SerFnOnce`: a fresh copy of the stored one.
            let mut function = function.clone();
            let items = Fields(&task.items).items()?;
            if kind == Kind::FnOnce {
                let [args] = items[..] else {
                    let message = format!("a `SerFnOnce` task carries {} items", items.len());
                    return Err(WireError::from(&Error::decode(message)));
                };
                codec::encode_len_into(1, &mut out).map_err(|e| WireError::from(&e))?;
                function.call_once_into(args, &limits, &mut out)?;
                return Ok(out);
            }
            function.call_each_mut(&items, &limits, &mut out)?;
            let state = function.to_bytes().map_err(|e| WireError::from(&e))?;
            return Ok(super::once::join_state(&out, &state));
        }
        if task.header.seq {
            function.call_batch(&task.items, &limits, &mut out)?;
        } else {
            let items = Fields(&task.items).items()?;
            check_count(task, items.len())?;
            function.call_each(&items, &limits, &mut out)?;
        }
        Ok(out)
    }

    /// The function of that hash: cached, or fetched, checked and decoded.
    fn function(&mut self, hash: &[u8; 32], name: &str) -> std::result::Result<&DynFn, WireError> {
        if !self.functions.loaded.contains_key(hash) {
            let loaded = self.fetch(hash, name);
            // What Redis holds may be put right (stored again, or a forgery
            // replaced): only what this binary makes of genuine bytes is kept.
            if let Err(error @ (Error::Broker { .. } | Error::Unauthenticated { .. })) = &loaded {
                return Err(WireError::from(error));
            }
            let loaded = loaded.map_err(|error| WireError::from(&error));
            if self.functions.order.len() >= CACHED_FUNCTIONS {
                if let Some(oldest) = self.functions.order.pop_front() {
                    self.functions.loaded.remove(&oldest);
                }
            }
            self.functions.order.push_back(*hash);
            self.functions.loaded.insert(*hash, loaded);
        }
        match &self.functions.loaded[hash] {
            Ok(function) => Ok(function),
            Err(error) => Err(error.clone()),
        }
    }

    fn fetch(&mut self, hash: &[u8; 32], name: &str) -> Result<DynFn> {
        let function_key = self.keys.function(hash);
        let stored: Option<Vec<u8>> = self
            .connection()?
            .get(&function_key)
            .map_err(broker("fetch a function"))?;
        let Some(stored) = stored else {
            return Err(Error::Broker {
                reason: format!("the function `{name}` is no longer stored (expired?)"),
            });
        };
        let envelope = entry::open_function(&stored, self.worker.key.as_ref(), hash)?;
        tracing::debug!(function = name, bytes = stored.len(), "fetched a function");
        self.worker.limits.from_bytes::<DynFn>(envelope)
    }

    /// Whether the driver of `job` gave up on it.
    fn cancelled(&mut self, job: &str) -> Result<bool> {
        if let Some(cancelled) = self.checked.get(job) {
            return Ok(cancelled);
        }
        let marker = self.keys.cancelled(job);
        let cancelled = self
            .connection()?
            .exists(marker)
            .map_err(broker("check the job"))?;
        self.checked.put(job, cancelled);
        Ok(cancelled)
    }

    /// Moves a genuine task to the dead-letter stream, tells its driver
    /// (signed: [`Error::DeadLetter`]) and acknowledges it, in one
    /// transaction: the task leaves the stream only with its answer given.
    fn dead_letter(
        &mut self,
        id: &str,
        bytes: &[u8],
        task: &TaskHeader,
        deliveries: u32,
        reason: &str,
    ) -> Result<()> {
        let error = Error::DeadLetter {
            name: task.name.clone(),
            deliveries,
            reason: reason.to_owned(),
        };
        let sealed = self
            .outbox
            .seal(task, Err(WireError::from(&error)), Duration::ZERO)?;
        let (keys, cap) = (self.keys.clone(), self.worker.dead_letter_cap);
        let consumer = self.worker.consumer.clone();
        let mut pipe = redis::pipe();
        pipe.atomic();
        let parked = Parked {
            id,
            bytes,
            reason,
            worker: &consumer,
        };
        append_dead_letter(&mut pipe, &keys, cap, &parked, task, deliveries);
        append_result(&mut pipe, &keys, task, &sealed);
        acknowledge(&mut pipe, &keys, id);
        let _: () = pipe
            .query(self.connection()?)
            .map_err(broker("dead-letter a task"))?;
        self.tally.count(true);
        Ok(())
    }

    /// Parks an entry this worker could not open (not signed with its key,
    /// or not a task) apart from the dead letters and acknowledges it. No
    /// one is told: what it names of itself is not to be trusted, and a
    /// genuine task refused here (a key mismatch) is found missing by its
    /// driver, which knows its own bytes.
    fn park_forged(&mut self, id: &str, bytes: &[u8], reason: &str) -> Result<()> {
        let (keys, cap) = (self.keys.clone(), self.worker.dead_letter_cap);
        let consumer = self.worker.consumer.clone();
        let mut pipe = redis::pipe();
        pipe.atomic();
        let parked = Parked {
            id,
            bytes,
            reason,
            worker: &consumer,
        };
        append_forged(&mut pipe, &keys, cap, &parked);
        acknowledge(&mut pipe, &keys, id);
        let _: () = pipe
            .query(self.connection()?)
            .map_err(broker("park a refused entry"))?;
        // A refused entry counts as failed in the worker's heartbeat.
        self.tally.count(true);
        Ok(())
    }
}

/// Whether `task` carries the `carried` items its header counts.
fn check_count(task: &TaskEntry, carried: usize) -> std::result::Result<(), WireError> {
    let count = task.header.count;
    if carried != count as usize {
        let message = format!("a task of {count} items carries {carried}");
        return Err(WireError::from(&Error::decode(message)));
    }
    Ok(())
}

/// Creates the consumer group (and the stream) if they do not exist; from
/// the start of the stream, so that tasks sent before any worker ran are served.
fn ensure_group(connection: &mut redis::Connection, keys: &Keys) -> Result<()> {
    let created: redis::RedisResult<()> =
        connection.xgroup_create_mkstream(keys.tasks(), keys.group(), "0");
    match created {
        Ok(()) => Ok(()),
        Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
        Err(error) => Err(broker("create the consumer group")(error)),
    }
}
