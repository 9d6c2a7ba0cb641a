//! The worker's side: take tasks from the group, run them, publish the
//! results, and take over what dead workers left.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::backoff::Backoff;
use super::claim::Heartbeat;
use super::entry::Keys;
use super::outbox::{Checked, Outbox};
use super::presence::{self, Announcer, Tally};
use super::serving::{Config, Functions, Serving};
use super::shutdown::{self, Grace, Signals};
use super::{broker, DEFAULT_PREFIX};
use crate::codec::{Key, Limits};
use crate::error::{Error, Result};
use crate::pool::run_async::Runner;

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
    pub(super) url: String,
    pub(super) prefix: String,
    /// What the serving loop reads.
    pub(super) config: Config,
    pub(super) stop: Arc<AtomicBool>,
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
            config: Config {
                key: None,
                consumer: default_consumer(),
                claim_idle: Duration::from_secs(30),
                max_deliveries: 5,
                limits: Limits::default(),
                dead_letter_cap: DEFAULT_DEAD_LETTER_CAP,
                max_concurrent: DEFAULT_MAX_CONCURRENT,
            },
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
        self.config.key = Some(key);
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
        self.config.consumer = name.into();
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
        self.config.claim_idle = idle.max(Duration::from_millis(30));
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
        self.config.max_deliveries = deliveries.max(1);
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
        self.config.limits = limits;
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
        self.config.dead_letter_cap = entries.max(1);
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
        self.config.max_concurrent = items.max(1);
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
        tracing::info!(consumer = %self.config.consumer, prefix = %self.prefix, "serfn redis worker starting");
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
            key: self.config.key.clone(),
            consumer: self.config.consumer.clone(),
        };
        let heartbeat = Heartbeat {
            client: client.clone(),
            outbox: outbox.clone(),
            running: Arc::clone(&running),
            every: self.config.claim_idle / 3,
            // Not the stop flag: a stopping worker's task keeps its claim.
            stop: Arc::clone(&finished),
        };
        let announcer = Announcer {
            client: client.clone(),
            keys: keys.clone(),
            name: self.config.consumer.clone(),
            ttl: self.heartbeat,
            tally: Arc::clone(&tally),
            stopping: Arc::clone(&self.stop),
            finished: Arc::clone(&finished),
        };
        let grace = Grace {
            client: client.clone(),
            keys: keys.clone(),
            consumer: self.config.consumer.clone(),
            claim_idle: self.config.claim_idle,
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
            config: &self.config,
            stop: Arc::clone(&self.stop),
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
        tracing::info!(consumer = %self.config.consumer, "serfn redis worker stopped");
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
