//! A worker's serving loop: read tasks from the group, run them, publish
//! their answers, take over what dead workers left, park what cannot be
//! authenticated, and dead-letter what kills every worker.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamPendingCountReply,
    StreamReadOptions, StreamReadReply,
};
use redis::Commands;

use super::broker;
use super::claim::Running;
use super::entry::{self, Context, Keys, TaskEntry, TaskHeader, FIELD};
use super::outbox::{
    acknowledge, append_dead_letter, append_forged, append_result, Checked, Outbox, Parked,
};
use super::presence::Tally;
use super::shutdown;
use crate::codec::{self, Key, Limits};
use crate::error::{Error, Result, WireError};
use crate::handle::DynFn;
use crate::plumbing::Kind;
use crate::pool::protocol::Fields;
use crate::pool::run_async::{self, Runner, Settings};
use crate::sync::lock;

/// What the serving loop reads of its worker's settings (`RedisWorker`'s
/// builder methods set them).
#[derive(Clone, Debug)]
pub(super) struct Config {
    pub(super) key: Option<Key>,
    pub(super) consumer: String,
    pub(super) claim_idle: Duration,
    pub(super) max_deliveries: u32,
    pub(super) limits: Limits,
    pub(super) dead_letter_cap: usize,
    pub(super) max_concurrent: usize,
}

/// Functions a worker keeps decoded, at most.
const CACHED_FUNCTIONS: usize = 64;
/// How long one read of the task stream waits.
const READ_BLOCK: Duration = Duration::from_millis(500);

/// Decoded functions by hash, the most recent [`CACHED_FUNCTIONS`].
#[derive(Default)]
pub(super) struct Functions {
    loaded: HashMap<[u8; 32], std::result::Result<DynFn, WireError>>,
    order: VecDeque<[u8; 32]>,
}

pub(super) struct Serving<'w> {
    pub(super) config: &'w Config,
    /// The worker's stop flag: a task read once it is set is handed back.
    pub(super) stop: Arc<AtomicBool>,
    pub(super) client: redis::Client,
    pub(super) keys: Keys,
    pub(super) outbox: Outbox,
    pub(super) connection: Option<redis::Connection>,
    pub(super) functions: Functions,
    pub(super) running: Arc<Mutex<Option<Running>>>,
    pub(super) tally: Arc<Tally>,
    pub(super) last_claim: Option<Instant>,
    pub(super) checked: Checked,
    /// Runs async functions' items, on a runtime started when first needed.
    pub(super) runner: Runner,
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
    pub(super) fn turn(&mut self) -> Result<()> {
        let idle = self.config.claim_idle;
        if self.last_claim.is_none_or(|at| at.elapsed() >= idle / 2) {
            self.last_claim = Some(Instant::now());
            self.reclaim()?;
        }
        let options = StreamReadOptions::default()
            .group(self.keys.group(), &self.config.consumer)
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
        let idle_ms = self.config.claim_idle.as_millis() as u64;
        let (tasks, group) = (self.keys.tasks(), self.keys.group());
        let consumer = self.config.consumer.clone();
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
        if self.stop.load(Ordering::SeqCst) {
            // Read as the worker was asked to stop: another worker runs it.
            let (keys, idle) = (self.keys.clone(), self.config.claim_idle);
            let consumer = &self.config.consumer;
            let released = shutdown::release(self.connection()?, &keys, consumer, &id.id, idle);
            return released.map_err(broker("release a task"));
        }
        let bytes: Vec<u8> = id.get(FIELD).unwrap_or_default();
        let key = self.config.key.as_ref();
        let task: TaskEntry = match entry::open(&bytes, key, Context::Task, &self.config.limits) {
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
        if deliveries > self.config.max_deliveries {
            let reason = format!(
                "delivered {deliveries} times, more than the {} allowed",
                self.config.max_deliveries
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
                self.config.max_concurrent,
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
        let limits = self.config.limits;
        let settings = Settings {
            timeout: task.header.timeout_ms.map(Duration::from_millis),
            concurrency: self.config.max_concurrent,
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
        let envelope = entry::open_function(&stored, self.config.key.as_ref(), hash)?;
        tracing::debug!(function = name, bytes = stored.len(), "fetched a function");
        self.config.limits.from_bytes::<DynFn>(envelope)
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
        let (keys, cap) = (self.keys.clone(), self.config.dead_letter_cap);
        let consumer = self.config.consumer.clone();
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
        let (keys, cap) = (self.keys.clone(), self.config.dead_letter_cap);
        let consumer = self.config.consumer.clone();
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
