//! [`RedisExecutorBuilder`]: an executor's settings.

use std::sync::Arc;
use std::time::Duration;

use super::entry::Keys;
use super::{broker, Config, Counters, RedisExecutor, Shared};
use crate::codec::{Key, Limits};
use crate::error::Result;

/// Builds a [`RedisExecutor`]: `RedisExecutor::builder(url)`, its
/// settings, then [`build`](Self::build).
///
/// # Example
/// ```no_run
/// use std::time::Duration;
///
/// use serfn::codec::Key;
/// use serfn::redis::{RedisExecutor, RedisWorker};
///
/// let (url, key) = ("redis://127.0.0.1:6379", Key::new([7u8; 32]));
/// let worker = RedisWorker::new(url).prefix("nightly").key(key.clone());
/// std::thread::spawn(move || worker.run());
/// let fleet = RedisExecutor::builder(url)
///     .prefix("nightly")
///     .key(key)
///     .timeout(Duration::from_secs(600))
///     .build()?;
/// let cube = serfn::closure!("cube", [], move |x: i64| -> i64 { x * x * x });
/// assert_eq!(serfn::Executor::call(&fleet, &cube, 3)?, 27);
/// # Ok::<(), serfn::Error>(())
/// ```
#[derive(Debug)]
pub struct RedisExecutorBuilder {
    pub(super) url: String,
    pub(super) prefix: String,
    pub(super) config: Config,
}

impl RedisExecutorBuilder {
    /// The prefix of every key (`serfn` by default): executors and workers
    /// with the same prefix share tasks.
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// let worker = serfn::redis::RedisWorker::new(url).prefix("staging");
    /// std::thread::spawn(move || worker.run());
    /// let staging = serfn::redis::RedisExecutor::builder(url).prefix("staging").build()?;
    /// let neg = serfn::closure!("neg", [], move |x: i32| -> i32 { -x });
    /// assert_eq!(serfn::Executor::call(&staging, &neg, 7)?, -7);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Signs tasks and functions, and accepts only signed results: set the
    /// same key on every worker ([`RedisWorker::key`](super::RedisWorker::key)).
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// use serfn::codec::Key;
    /// use serfn::redis::{RedisExecutor, RedisWorker};
    ///
    /// let key = Key::new([7u8; 32]); // 32 random bytes from a secrets manager, in production
    /// let worker = RedisWorker::new(url).key(key.clone());
    /// std::thread::spawn(move || worker.run());
    /// let fleet = RedisExecutor::builder(url).key(key).build()?;
    /// let abs = serfn::closure!("abs", [], move |x: i32| -> i32 { x.abs() });
    /// assert_eq!(serfn::Executor::call(&fleet, &abs, -7)?, 7);
    /// assert_eq!(fleet.stats().forged, 0);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn key(mut self, key: Key) -> Self {
        self.config.key = Some(key);
        self
    }

    /// Items per task. By default it is adapted so that a task takes a few
    /// milliseconds of a worker's time, from the times workers report; for
    /// an async function ([`AsyncSerFn`](crate::AsyncSerFn)), whose items
    /// a worker overlaps, it is [`DEFAULT_MAX_CONCURRENT`](super::DEFAULT_MAX_CONCURRENT):
    /// set it to the workers' [`max_concurrent`](super::RedisWorker::max_concurrent)
    /// when theirs is set.
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// # let worker = serfn::redis::RedisWorker::new(url);
    /// # std::thread::spawn(move || worker.run());
    /// let fleet = serfn::redis::RedisExecutor::builder(url).chunk_size(100).build()?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// let n = fleet.map(&square, 0..1_000).count();
    /// assert_eq!((n, fleet.stats().tasks), (1_000, 10));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn chunk_size(mut self, items: usize) -> Self {
        self.config.chunk_size = Some(items.max(1));
        self
    }

    /// Tasks of one map waiting or running at once (64 by default): more
    /// than the workers of the fleet, so that none waits.
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// # let worker = serfn::redis::RedisWorker::new(url);
    /// # std::thread::spawn(move || worker.run());
    /// // A small fleet and slow items: a few tasks ahead are enough.
    /// let fleet = serfn::redis::RedisExecutor::builder(url).in_flight(8).build()?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// assert_eq!(fleet.map(&square, 0..100).last().transpose()?, Some(99 * 99));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn in_flight(mut self, tasks: usize) -> Self {
        self.config.in_flight = tasks.max(1);
        self
    }

    /// How long a task may run on its worker: past it, the task fails with
    /// [`Error::Timeout`](crate::Error::Timeout) and its worker process exits (as the pool kills
    /// its worker), to be restarted by whatever runs it. The driver waits
    /// for an answer this long plus [`task_slack`](Self::task_slack).
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// # let worker = serfn::redis::RedisWorker::new(url);
    /// # std::thread::spawn(move || worker.run());
    /// use std::time::Duration;
    ///
    /// let fleet = serfn::redis::RedisExecutor::builder(url).timeout(Duration::from_secs(60)).build()?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// assert_eq!(serfn::Executor::call(&fleet, &square, 9)?, 81); // well within it
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = Some(timeout);
        self
    }

    /// How long an unfinished job's results are kept after its last one (1
    /// day by default), for [`RedisExecutor::reattach`] by a driver that
    /// restarted. A job whose driver read every result is deleted at once.
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// # let worker = serfn::redis::RedisWorker::new(url);
    /// # std::thread::spawn(move || worker.run());
    /// use std::time::Duration;
    ///
    /// let fleet = serfn::redis::RedisExecutor::builder(url).result_ttl(Duration::from_secs(600)).build()?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// let job = format!("nightly-{}", std::process::id());
    /// // The driver stops after 3 results (as if it had crashed)...
    /// let first = fleet.map(&square, 0..10).job(&job).take(3).count();
    /// // ...and within ten minutes, it or a restarted one reads them all.
    /// let again = fleet.reattach::<u64>(&job)?.count();
    /// assert_eq!((first, again), (3, 10));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn result_ttl(mut self, ttl: Duration) -> Self {
        self.config.result_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// Limits for decoding what comes back from Redis.
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// # let worker = serfn::redis::RedisWorker::new(url);
    /// # std::thread::spawn(move || worker.run());
    /// use serfn::Limits;
    ///
    /// let fleet = serfn::redis::RedisExecutor::builder(url).limits(Limits::default().max_bytes(64 << 10)).build()?;
    /// let zeros = serfn::closure!("zeros", [], move |n: usize| -> Vec<u8> { vec![0; n] });
    /// assert_eq!(serfn::Executor::call(&fleet, &zeros, 10)?.len(), 10);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// How long to keep trying to reach Redis when a connection fails, or
    /// while it answers `LOADING` or `BUSY` (10 s by default), before the
    /// items waiting get [`Error::Broker`](crate::Error::Broker). Within it,
    /// nothing is lost: a task whose sending failed is sent again, and the
    /// results are read on from where they were.
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// # let worker = serfn::redis::RedisWorker::new(url);
    /// # std::thread::spawn(move || worker.run());
    /// use std::time::Duration;
    ///
    /// // Rides out a Redis failover of up to a minute.
    /// let fleet = serfn::redis::RedisExecutor::builder(url).reconnect(Duration::from_secs(60)).build()?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// assert_eq!(serfn::Executor::call(&fleet, &square, 3)?, 9);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn reconnect(mut self, window: Duration) -> Self {
        self.config.reconnect = window;
        self
    }

    /// How long past its [`timeout`](Self::timeout) (none: zero) the
    /// driver waits for a task's answer, counted from when it was sent:
    /// the slack for the time it waits in the queue and the time a dead
    /// worker's task takes to be claimed again
    /// ([`DEFAULT_TASK_SLACK`](super::DEFAULT_TASK_SLACK), 10 minutes, by
    /// default). Past it the task's items get
    /// [`Error::Broker`](crate::Error::Broker): no wait of a driver is
    /// unbounded, even with no worker running.
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// # let worker = serfn::redis::RedisWorker::new(url);
    /// # std::thread::spawn(move || worker.run());
    /// use std::time::Duration;
    ///
    /// // Tasks run at most a minute; an answer later than two fails.
    /// let fleet = serfn::redis::RedisExecutor::builder(url)
    ///     .timeout(Duration::from_secs(60))
    ///     .task_slack(Duration::from_secs(60))
    ///     .build()?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// assert_eq!(serfn::Executor::call(&fleet, &square, 3)?, 9);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn task_slack(mut self, slack: Duration) -> Self {
        self.config.task_slack = slack;
        self
    }

    /// How long a whole map may take (none by default: each task is
    /// bounded by [`task_slack`](Self::task_slack)). Past it, every item
    /// left gets [`Error::Broker`](crate::Error::Broker) and workers skip
    /// the job's tasks still queued.
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// # let worker = serfn::redis::RedisWorker::new(url);
    /// # std::thread::spawn(move || worker.run());
    /// use std::time::Duration;
    ///
    /// let fleet = serfn::redis::RedisExecutor::builder(url).map_deadline(Duration::from_secs(3600)).build()?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// assert_eq!(fleet.map(&square, 0..100).count(), 100);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn map_deadline(mut self, deadline: Duration) -> Self {
        self.config.map_deadline = Some(deadline);
        self
    }

    /// About how many entries the task stream keeps
    /// ([`DEFAULT_QUEUE_CAP`](super::DEFAULT_QUEUE_CAP), a million, by
    /// default): each task is added with `XADD MAXLEN ~`, so that a flood
    /// cannot grow it without bound. A task trimmed before it ran is found
    /// missing by its driver and sent again (twice at most).
    ///
    /// # Example
    /// ```no_run
    /// # let url = "redis://127.0.0.1:6379";
    /// # let worker = serfn::redis::RedisWorker::new(url);
    /// # std::thread::spawn(move || worker.run());
    /// let fleet = serfn::redis::RedisExecutor::builder(url).queue_cap(100_000).build()?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// assert_eq!(fleet.map(&square, 0..100).count(), 100);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn queue_cap(mut self, entries: usize) -> Self {
        self.config.queue_cap = entries.max(1);
        self
    }

    /// Connects and checks that the server answers.
    ///
    /// # Errors
    /// [`Error::Broker`](crate::Error::Broker) if the URL is invalid or the server does not answer.
    ///
    /// # Example
    /// ```
    /// use serfn::redis::RedisExecutor;
    ///
    /// // Nothing listens on port 1: the error comes now, not at the first map.
    /// let refused = RedisExecutor::builder("redis://127.0.0.1:1").build();
    /// assert!(matches!(refused, Err(serfn::Error::Broker { .. })));
    /// ```
    pub fn build(self) -> Result<RedisExecutor> {
        let client = redis::Client::open(self.url.as_str()).map_err(broker("connect"))?;
        let mut connection = client.get_connection().map_err(broker("connect"))?;
        redis::cmd("PING")
            .query::<String>(&mut connection)
            .map_err(broker("ping"))?;
        Ok(RedisExecutor {
            shared: Arc::new(Shared {
                client,
                keys: Keys::new(&self.prefix),
                config: self.config,
                stats: Counters::default(),
            }),
        })
    }
}
