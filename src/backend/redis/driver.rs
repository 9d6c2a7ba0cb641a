//! The driver's side: a job's tasks go out, its results come back.
//!
//! [`Job`] does the Redis work with encoded chunks and knows no types;
//! [`Feed`] turns items into chunks and chunk answers into results.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::Commands;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::entry::{self, Context, ResultEntry, TaskEntry, FIELD};
use super::{broker, RedisExecutor, Shared};
use crate::codec::Limits;
use crate::error::{Error, Result};
use crate::handle::SerFn;
use crate::pool::map::{decode_chunk, items_block, ChunkResults};
use crate::pool::task;

/// Bytes of encoded items in one task, at most.
const MAX_TASK_BYTES: usize = 4 << 20;
/// Items in one task, at most, when sized automatically.
const MAX_CHUNK: usize = 65_536;
/// Worker time a task should take when sized automatically.
const TASK_NS: u64 = 5_000_000;
/// How long one read of the results waits.
const READ_BLOCK: Duration = Duration::from_millis(500);
/// How long without an answer before the dead-letter stream is read.
const DEAD_LETTER_CHECK: Duration = Duration::from_secs(1);

/// A function ready to send: its stored form and what tasks say of it.
struct Prepared {
    hash: [u8; 32],
    name: &'static str,
    seq: bool,
}

/// One answer of a task, still encoded.
pub(crate) struct Answer {
    first: u64,
    count: u32,
    seq: bool,
    output: Result<Vec<u8>>,
}

/// A job on the broker: sends its tasks, receives their answers once each.
pub(crate) struct Job {
    shared: Arc<Shared>,
    connection: redis::Connection,
    id: String,
    function: Prepared,
    next_task: u64,
    next_item: u64,
    /// Tasks sent and not yet answered: the index of their first item and their count.
    waiting: HashMap<u64, (u64, u32)>,
    /// Where reading the results stream goes on from.
    last_id: String,
    /// Where reading the dead-letter stream goes on from.
    last_dead_id: String,
    /// When an answer last came, or the dead letters were last read.
    last_progress: Instant,
    per_item_ns: Option<u64>,
}

impl Job {
    /// Stores the function (once: by content) and the job's description.
    fn start<A, R>(shared: &Arc<Shared>, f: &SerFn<A, R>, id: String) -> Result<Job>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let envelope = f.to_bytes()?;
        let hash = entry::sha256(&envelope);
        let batches = f.clone().into_dyn().batches();
        let mut connection = shared.client.get_connection().map_err(broker("connect"))?;
        let keys = &shared.keys;
        let ttl = shared.config.result_ttl.as_secs();
        let stored = entry::seal_function(&envelope, shared.config.key.as_ref());
        let function_key = keys.function(&hash);
        let created: bool = redis::cmd("SET")
            .arg(&function_key)
            .arg(&stored)
            .arg("NX")
            .arg("EX")
            .arg(ttl)
            .query::<Option<String>>(&mut connection)
            .map_err(broker("store the function"))?
            .is_some();
        if created {
            shared.stats.stored(stored.len());
        } else {
            let _: () = connection
                .expire(&function_key, ttl as i64)
                .map_err(broker("keep the function"))?;
        }
        let job_key = keys.job(&id);
        let _: () = redis::pipe()
            .hset(&job_key, "function", entry::hex(&hash))
            .hset(&job_key, "name", f.name())
            .expire(&job_key, ttl as i64)
            .query(&mut connection)
            .map_err(broker("describe the job"))?;
        Ok(Job {
            shared: Arc::clone(shared),
            connection,
            id,
            function: Prepared {
                hash,
                name: f.name(),
                seq: batches,
            },
            next_task: 0,
            next_item: 0,
            waiting: HashMap::new(),
            last_id: "0".into(),
            last_dead_id: "-".into(),
            last_progress: Instant::now(),
            per_item_ns: None,
        })
    }

    fn limits(&self) -> Limits {
        self.shared.config.limits
    }

    /// How many items the next task should carry.
    fn chunk_size(&self) -> usize {
        match (self.shared.config.chunk_size, self.per_item_ns) {
            (Some(fixed), _) => fixed,
            (None, None) => 1,
            (None, Some(ns)) => (TASK_NS / ns.max(1)).clamp(1, MAX_CHUNK as u64) as usize,
        }
    }

    fn has_room(&self) -> bool {
        self.waiting.len() < self.shared.config.in_flight
    }

    /// Sends one task of `count` items encoded in `items`.
    fn send(&mut self, items: Vec<u8>, count: u32) -> Result<()> {
        let task = TaskEntry {
            job: self.id.clone(),
            task: self.next_task,
            first: self.next_item,
            count,
            function: self.function.hash,
            name: self.function.name.to_owned(),
            seq: self.function.seq,
            timeout_ms: self.shared.config.timeout.map(|t| t.as_millis() as u64),
            ttl_s: self.shared.config.result_ttl.as_secs(),
            items,
        };
        let sealed = entry::seal(&task, self.shared.config.key.as_ref(), Context::Task)?;
        let keys = &self.shared.keys;
        let job_key = keys.job(&self.id);
        let _: () = redis::pipe()
            .xadd(keys.tasks(), "*", &[(FIELD, &sealed)])
            .ignore()
            .hincr(&job_key, "tasks", 1)
            .ignore()
            .hincr(&job_key, "items", count)
            .ignore()
            .query(&mut self.connection)
            .map_err(broker("send a task"))?;
        self.shared.stats.sent(count, sealed.len());
        self.waiting.insert(self.next_task, (self.next_item, count));
        self.next_task += 1;
        self.next_item += u64::from(count);
        Ok(())
    }

    /// Waits a little for answers; returns those of tasks still waiting.
    fn receive(&mut self) -> Result<Vec<Answer>> {
        let reply = match self.read() {
            Ok(reply) => reply,
            Err(error) if is_connection(&error) => {
                self.reconnect()?;
                return Ok(Vec::new());
            }
            Err(error) => return Err(broker("read results")(error)),
        };
        let mut answers = Vec::new();
        for stream in reply.keys {
            for id in stream.ids {
                self.last_id = id.id.clone();
                let Some(bytes) = id.get::<Vec<u8>>(FIELD) else {
                    self.shared.stats.forged();
                    continue;
                };
                self.shared.stats.received(bytes.len());
                if let Some(answer) = self.accept(&bytes) {
                    answers.push(answer);
                }
            }
        }
        if !answers.is_empty() {
            self.last_progress = Instant::now();
        } else if self.last_progress.elapsed() >= DEAD_LETTER_CHECK {
            self.last_progress = Instant::now();
            answers = self.dead_letters()?;
        }
        Ok(answers)
    }

    /// This job's tasks that went to the dead-letter stream, found by the
    /// entries themselves (which this driver can check): for the tasks no
    /// worker answered, such as those a worker with another key refused.
    fn dead_letters(&mut self) -> Result<Vec<Answer>> {
        let dead: StreamRangeReply = self
            .connection
            .xrange_count(self.shared.keys.dead(), &self.last_dead_id, "+", 256)
            .map_err(broker("read dead letters"))?;
        let mut answers = Vec::new();
        let key = self.shared.config.key.as_ref();
        for id in dead.ids {
            self.last_dead_id = format!("({}", id.id);
            let Some(bytes) = id.get::<Vec<u8>>(FIELD) else {
                continue;
            };
            let Ok(task) = entry::open::<TaskEntry>(&bytes, key, Context::Task, &self.limits())
            else {
                continue;
            };
            if task.job != self.id || !self.waiting.contains_key(&task.task) {
                continue;
            }
            let (first, count) = self.waiting.remove(&task.task).expect("checked above");
            let reason: String = id.get("reason").unwrap_or_default();
            let deliveries: String = id.get("deliveries").unwrap_or_default();
            answers.push(Answer {
                first,
                count,
                seq: task.seq,
                output: Err(Error::DeadLetter {
                    name: task.name,
                    deliveries: deliveries.parse().unwrap_or(0),
                    reason,
                }),
            });
        }
        Ok(answers)
    }

    fn read(&mut self) -> redis::RedisResult<StreamReadReply> {
        let options = StreamReadOptions::default()
            .count(256)
            .block(READ_BLOCK.as_millis() as usize);
        let results = self.shared.keys.results(&self.id);
        self.connection
            .xread_options(&[results], &[&self.last_id], &options)
    }

    /// The answer in a result entry, if it is genuine and the first for its task.
    fn accept(&mut self, bytes: &[u8]) -> Option<Answer> {
        let key = self.shared.config.key.as_ref();
        let result: ResultEntry = match entry::open(bytes, key, Context::Result, &self.limits()) {
            Ok(result) => result,
            Err(_) => {
                self.shared.stats.forged();
                return None;
            }
        };
        let Some((first, count)) = self.waiting.get(&result.task).copied() else {
            self.shared.stats.duplicate();
            return None;
        };
        if result.job != self.id || (result.first, result.count) != (first, count) {
            self.shared.stats.forged();
            return None;
        }
        self.waiting.remove(&result.task);
        if result.output.is_ok() && count > 0 {
            let per_item = result.elapsed_ns / u64::from(count);
            self.per_item_ns = Some(match self.per_item_ns {
                Some(old) => (old * 3 + per_item) / 4,
                None => per_item,
            });
        }
        Some(Answer {
            first,
            count,
            seq: result.seq,
            output: result.output.map_err(|error| error.into_error(None)),
        })
    }

    /// Connects again within the reconnect window, and checks that the
    /// broker still has the job.
    fn reconnect(&mut self) -> Result<()> {
        let deadline = Instant::now() + self.shared.config.reconnect;
        let mut pause = Duration::from_millis(50);
        loop {
            match self.shared.client.get_connection() {
                Ok(connection) => {
                    self.connection = connection;
                    break;
                }
                Err(error) if Instant::now() >= deadline => {
                    return Err(broker("reconnect")(error));
                }
                Err(_) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
        let exists: bool = self
            .connection
            .exists(self.shared.keys.job(&self.id))
            .map_err(broker("check the job"))?;
        if !exists {
            return Err(Error::Broker {
                reason: format!(
                    "the broker lost job `{}` (restarted without persistence, or its keys expired)",
                    self.id
                ),
            });
        }
        Ok(())
    }
}

fn is_connection(error: &redis::RedisError) -> bool {
    error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal()
}

fn job_id() -> String {
    let mut bytes = [0u8; 8];
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mixed = entry::sha256(format!("{nanos}/{}", std::process::id()).as_bytes());
    bytes.copy_from_slice(&mixed[..8]);
    entry::hex(&bytes)
}

/// The typed side of a map: items become tasks, answers become results.
pub(crate) struct Feed<'e, A, R, I> {
    job: std::result::Result<Job, Error>,
    items: std::iter::Fuse<I>,
    /// Decoded chunks by the index of their first item.
    ready: BTreeMap<u64, (u32, ChunkResults<R>)>,
    limits: Limits,
    /// Set when the broker failed: every item left gets a copy.
    failed: Option<Error>,
    input_done: bool,
    types: PhantomData<fn(&'e RedisExecutor, A)>,
}

impl<'e, A, R, I> Feed<'e, A, R, I>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
    I: Iterator<Item = A>,
{
    pub(crate) fn new(executor: &'e RedisExecutor, f: &SerFn<A, R>, items: I) -> Self {
        Feed {
            job: Job::start(executor.shared(), f, job_id()),
            items: items.fuse(),
            ready: BTreeMap::new(),
            limits: executor.shared().config.limits,
            failed: None,
            input_done: false,
            types: PhantomData,
        }
    }

    fn rename(&mut self, name: &str) {
        if let Ok(job) = &mut self.job {
            if job.next_task == 0 {
                job.id = name.to_owned();
            }
        }
    }

    fn job_name(&self) -> Option<&str> {
        self.job.as_ref().ok().map(|job| job.id.as_str())
    }

    /// Sends tasks while there is room, then waits for answers once.
    /// Returns false when nothing is left to send or wait for.
    fn step(&mut self) -> bool {
        let job = match &mut self.job {
            Ok(job) => job,
            Err(_) => return false,
        };
        while !self.input_done && job.has_room() {
            let chunk = job.chunk_size();
            match items_block(self.items.by_ref(), chunk, MAX_TASK_BYTES, job.function.seq) {
                Ok((_, 0)) => self.input_done = true,
                Ok((block, count)) => {
                    if let Err(error) = job.send(block, count) {
                        // The chunk's items were taken from the input: they fail too.
                        let at = job.next_item;
                        job.next_item += u64::from(count);
                        let failed = ChunkResults::Failed {
                            error: error.duplicate(),
                            left: count,
                        };
                        self.ready.insert(at, (count, failed));
                        self.fail(error);
                        return true;
                    }
                }
                Err(error) => {
                    // This item could not be encoded: it alone fails.
                    let at = job.next_item;
                    job.next_item += 1;
                    self.ready
                        .insert(at, (1, ChunkResults::Failed { error, left: 1 }));
                    return true;
                }
            }
        }
        if job.waiting.is_empty() {
            return !self.ready.is_empty();
        }
        match job.receive() {
            Ok(answers) => {
                for answer in answers {
                    let results =
                        decode_chunk(answer.count, answer.output, &self.limits, answer.seq);
                    self.ready.insert(answer.first, (answer.count, results));
                }
            }
            Err(error) => self.fail(error),
        }
        true
    }

    /// The broker failed: the tasks waiting fail with `error`, and so does
    /// every item not yet sent.
    fn fail(&mut self, error: Error) {
        if let Ok(job) = &mut self.job {
            for (_, (first, count)) in job.waiting.drain() {
                let failed = ChunkResults::Failed {
                    error: error.duplicate(),
                    left: count,
                };
                self.ready.insert(first, (count, failed));
            }
        }
        self.failed = Some(error);
    }

    /// The next item of input, failed with the broker's error.
    fn fail_next_input(&mut self) -> Option<(u64, Result<R>)> {
        let error = self
            .failed
            .as_ref()
            .or(self.job.as_ref().err())?
            .duplicate();
        self.items.next()?;
        let at = match &mut self.job {
            Ok(job) => {
                job.next_item += 1;
                job.next_item - 1
            }
            Err(_) => 0,
        };
        Some((at, Err(error)))
    }
}

/// Decodes a one-item answer, as [`Task`](crate::Task) asks.
pub(crate) fn decode_owned<R: DeserializeOwned>(payload: Vec<u8>, limits: &Limits) -> Result<R> {
    let (seq, output) = payload
        .split_first()
        .map_or((false, &[][..]), |(s, o)| (*s == 1, o));
    if seq {
        task::decode_one_batched(output.to_vec(), limits)
    } else {
        task::decode_one(output.to_vec(), limits)
    }
}

/// A one-task job run on a thread of its own, for [`Executor::submit`](crate::Executor::submit).
pub(crate) struct OwnedFeed {
    job: Result<Job>,
    block: Result<(Vec<u8>, u32)>,
}

impl<A, R, I> From<Feed<'_, A, R, I>> for OwnedFeed
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
    I: Iterator<Item = A>,
{
    fn from(mut feed: Feed<'_, A, R, I>) -> Self {
        let seq = feed.job.as_ref().is_ok_and(|job| job.function.seq);
        let block = items_block(feed.items.by_ref(), 1, usize::MAX, seq);
        OwnedFeed {
            job: feed.job,
            block,
        }
    }
}

impl OwnedFeed {
    /// Sends the task and waits for its answer: `[seq][output]`.
    pub(crate) fn run_one(self) -> Result<Vec<u8>> {
        let mut job = self.job?;
        let (block, count) = self.block?;
        job.send(block, count)?;
        loop {
            if let Some(answer) = job.receive()?.pop() {
                let mut payload = vec![u8::from(answer.seq)];
                payload.extend(answer.output?);
                return Ok(payload);
            }
        }
    }
}

macro_rules! map_type {
    ($(#[$doc:meta])* $map:ident) => {
        $(#[$doc])*
        pub struct $map<'e, A, R, I> {
            feed: Feed<'e, A, R, I>,
            current: Option<(u64, ChunkResults<R>)>,
            /// Items yielded so far; in order, also the next item's index.
            yielded: u64,
        }

        impl<'e, A, R, I> $map<'e, A, R, I>
        where
            A: Serialize + DeserializeOwned + 'static,
            R: Serialize + DeserializeOwned + 'static,
            I: Iterator<Item = A>,
        {
            pub(crate) fn new(feed: Feed<'e, A, R, I>) -> Self {
                $map {
                    feed,
                    current: None,
                    yielded: 0,
                }
            }

            /// Names the job, so that a driver that restarts can
            /// [`reattach`](RedisExecutor::reattach) to it; before the first item only.
            pub fn job(mut self, name: &str) -> Self {
                self.feed.rename(name);
                self
            }

            /// The job's name: random unless [`job`](Self::job) set it.
            pub fn job_name(&self) -> Option<&str> {
                self.feed.job_name()
            }
        }

        impl<A, R, I> std::fmt::Debug for $map<'_, A, R, I> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($map))
                    .field("job", &self.feed.job.as_ref().map(|job| &job.id).ok())
                    .field("yielded", &self.yielded)
                    .field("ready", &self.feed.ready.len())
                    .finish()
            }
        }
    };
}

map_type! {
    /// The results of [`RedisExecutor::map`], in input order.
    RedisMap
}

map_type! {
    /// The `(index, result)`s of [`RedisExecutor::map_unordered`], as they come.
    RedisMapUnordered
}

impl<A, R, I> Iterator for RedisMap<'_, A, R, I>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
    I: Iterator<Item = A>,
{
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        loop {
            if let Some((_, results)) = &mut self.current {
                if let Some(result) = results.next() {
                    self.yielded += 1;
                    return Some(result);
                }
                self.current = None;
            }
            if let Some((_, results)) = self.feed.ready.remove(&self.yielded) {
                self.current = Some((self.yielded, results));
                continue;
            }
            if self.feed.failed.is_some() || self.feed.job.is_err() {
                let failed = self.feed.fail_next_input().map(|(_, result)| result);
                self.yielded += u64::from(failed.is_some());
                return failed;
            }
            if !self.feed.step() && self.feed.ready.is_empty() {
                return None;
            }
        }
    }
}

impl<A, R, I> Iterator for RedisMapUnordered<'_, A, R, I>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
    I: Iterator<Item = A>,
{
    type Item = (usize, Result<R>);

    fn next(&mut self) -> Option<(usize, Result<R>)> {
        loop {
            if let Some((at, results)) = &mut self.current {
                if let Some(result) = results.next() {
                    *at += 1;
                    self.yielded += 1;
                    return Some(((*at - 1) as usize, result));
                }
                self.current = None;
            }
            if let Some((first, (_, results))) = self.feed.ready.pop_first() {
                self.current = Some((first, results));
                continue;
            }
            if self.feed.failed.is_some() || self.feed.job.is_err() {
                return self
                    .feed
                    .fail_next_input()
                    .map(|(at, result)| (at as usize, result));
            }
            if !self.feed.step() && self.feed.ready.is_empty() {
                return None;
            }
        }
    }
}

/// The results of a job read again by a driver that restarted.
pub(crate) struct Reattached<'e, R> {
    shared: Arc<Shared>,
    connection: redis::Connection,
    id: String,
    tasks: u64,
    seen: std::collections::HashSet<u64>,
    last_id: String,
    current: Option<(u64, ChunkResults<R>)>,
    types: PhantomData<&'e ()>,
}

impl<'e, R: DeserializeOwned + 'static> Reattached<'e, R> {
    pub(crate) fn new(executor: &'e RedisExecutor, id: &str) -> Result<Self> {
        let shared = Arc::clone(executor.shared());
        let mut connection = shared.client.get_connection().map_err(broker("connect"))?;
        let tasks: Option<u64> = connection
            .hget(shared.keys.job(id), "tasks")
            .map_err(broker("read the job"))?;
        let Some(tasks) = tasks else {
            return Err(Error::Broker {
                reason: format!("no job `{id}` (never started, or its results expired)"),
            });
        };
        Ok(Reattached {
            shared,
            connection,
            id: id.to_owned(),
            tasks,
            seen: Default::default(),
            last_id: "0".into(),
            current: None,
            types: PhantomData,
        })
    }
}

impl<R: DeserializeOwned + 'static> Iterator for Reattached<'_, R> {
    type Item = (usize, Result<R>);

    fn next(&mut self) -> Option<(usize, Result<R>)> {
        loop {
            if let Some((at, results)) = &mut self.current {
                if let Some(result) = results.next() {
                    *at += 1;
                    return Some(((*at - 1) as usize, result));
                }
                self.current = None;
            }
            if self.seen.len() as u64 >= self.tasks {
                return None;
            }
            let options = StreamReadOptions::default()
                .count(64)
                .block(READ_BLOCK.as_millis() as usize);
            let results = self.shared.keys.results(&self.id);
            let reply: StreamReadReply =
                match self
                    .connection
                    .xread_options(&[results], &[&self.last_id], &options)
                {
                    Ok(reply) => reply,
                    Err(error) => {
                        self.tasks = 0;
                        return Some((0, Err(broker("read results")(error))));
                    }
                };
            let key = self.shared.config.key.as_ref();
            let limits = self.shared.config.limits;
            for id in reply.keys.into_iter().flat_map(|stream| stream.ids) {
                self.last_id = id.id.clone();
                let Some(bytes) = id.get::<Vec<u8>>(FIELD) else {
                    continue;
                };
                let Ok(result) = entry::open::<ResultEntry>(&bytes, key, Context::Result, &limits)
                else {
                    self.shared.stats.forged();
                    continue;
                };
                if result.job != self.id || !self.seen.insert(result.task) {
                    continue;
                }
                let output = result.output.map_err(|error| error.into_error(None));
                let results = decode_chunk(result.count, output, &limits, result.seq);
                self.current = Some((result.first, results));
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    #[test]
    fn job_ids_differ() {
        let a = job_id();
        std::thread::sleep(Duration::from_millis(1));
        assert_ne!(a, job_id());
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn owned_payloads_say_how_to_decode() {
        let limits = Limits::default();
        let mut seq = vec![1];
        codec::encode_value_into(&(vec![5u8], Vec::<(u32, ())>::new()), &mut seq).unwrap();
        assert_eq!(decode_owned::<u8>(seq, &limits).unwrap(), 5);
    }
}
