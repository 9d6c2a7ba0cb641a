//! A job on the broker, with no types: its tasks go out as encoded chunks,
//! and their answers come back once each.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::Commands;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::entry::{self, Context, ResultEntry, TaskEntry, TaskHeader, FIELD};
use super::{broker, Shared};
use crate::codec::Limits;
use crate::error::{Error, Result};
use crate::handle::SerFn;

/// Bytes of encoded items in one task, at most.
pub(crate) const MAX_TASK_BYTES: usize = 4 << 20;
/// Items in one task, at most, when sized automatically.
const MAX_CHUNK: usize = 65_536;
/// Worker time a task should take when sized automatically.
const TASK_NS: u64 = 5_000_000;
/// How long one read of the results waits.
pub(crate) const READ_BLOCK: Duration = Duration::from_millis(500);
/// How long without an answer before the dead-letter stream is read.
const DEAD_LETTER_CHECK: Duration = Duration::from_secs(1);

/// A function ready to send: its stored form and what tasks say of it.
pub(crate) struct Prepared {
    hash: [u8; 32],
    name: &'static str,
    pub(crate) seq: bool,
}

/// One answer of a task, still encoded.
pub(crate) struct Answer {
    pub(crate) first: u64,
    pub(crate) count: u32,
    pub(crate) seq: bool,
    pub(crate) output: Result<Vec<u8>>,
}

/// A job on the broker: sends its tasks, receives their answers once each.
pub(crate) struct Job {
    shared: Arc<Shared>,
    connection: redis::Connection,
    pub(crate) id: String,
    pub(crate) function: Prepared,
    pub(crate) next_task: u64,
    pub(crate) next_item: u64,
    /// Tasks sent and not yet answered: the index of their first item and their count.
    pub(crate) waiting: HashMap<u64, (u64, u32)>,
    /// Where reading the results stream goes on from.
    last_id: String,
    /// Where reading the dead-letter stream goes on from.
    last_dead_id: String,
    /// When an answer last came, or the dead letters were last read.
    last_progress: Instant,
    per_item_ns: Option<u64>,
}

impl Job {
    /// Stores the function (once: by content); the first task claims the
    /// job's name (`claim`).
    pub(crate) fn start<A, R>(shared: &Arc<Shared>, f: &SerFn<A, R>, id: String) -> Result<Job>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let batches = f.clone().into_dyn().batches();
        Job::start_encoded(shared, f.to_bytes()?, f.name(), batches, id)
    }

    /// [`start`](Self::start) for a function already encoded (any kind:
    /// a fold's state, a `SerFnOnce`); `seq`: whether its tasks carry items
    /// as one codec sequence.
    pub(crate) fn start_encoded(
        shared: &Arc<Shared>,
        envelope: Vec<u8>,
        name: &'static str,
        seq: bool,
        id: String,
    ) -> Result<Job> {
        let hash = entry::sha256(&envelope);
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
        Ok(Job {
            shared: Arc::clone(shared),
            connection,
            id,
            function: Prepared { hash, name, seq },
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
    pub(crate) fn chunk_size(&self) -> usize {
        match (self.shared.config.chunk_size, self.per_item_ns) {
            (Some(fixed), _) => fixed,
            (None, None) => 1,
            (None, Some(ns)) => (TASK_NS / ns.max(1)).clamp(1, MAX_CHUNK as u64) as usize,
        }
    }

    pub(crate) fn has_room(&self) -> bool {
        self.waiting.len() < self.shared.config.in_flight
    }

    /// Takes the job's name and describes the job, before its first task:
    /// a name is one job's while it is kept, or a second job under it would
    /// read the first one's results as its own.
    fn claim(&mut self) -> Result<()> {
        let job_key = self.shared.keys.job(&self.id);
        let claimed: bool = self
            .connection
            .hset_nx(&job_key, "function", entry::hex(&self.function.hash))
            .map_err(broker("claim the job's name"))?;
        if !claimed {
            return Err(Error::Broker {
                reason: format!(
                    "job `{}` already exists (a job is kept for {} s): read it with \
                     `reattach`, or give the new job another name",
                    self.id,
                    self.shared.config.result_ttl.as_secs()
                ),
            });
        }
        let _: () = redis::pipe()
            .hset(&job_key, "name", self.function.name)
            .expire(&job_key, self.shared.config.result_ttl.as_secs() as i64)
            .query(&mut self.connection)
            .map_err(broker("describe the job"))?;
        Ok(())
    }

    /// Sends one task of `count` items encoded in `items`.
    pub(crate) fn send(&mut self, items: Vec<u8>, count: u32) -> Result<()> {
        if self.next_task == 0 {
            self.claim()?;
        }
        let task = TaskEntry {
            header: TaskHeader {
                job: self.id.clone(),
                task: self.next_task,
                first: self.next_item,
                count,
                name: self.function.name.to_owned(),
                seq: self.function.seq,
                timeout_ms: self.shared.config.timeout.map(|t| t.as_millis() as u64),
                ttl_s: self.shared.config.result_ttl.as_secs(),
            },
            function: self.function.hash,
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
    pub(crate) fn receive(&mut self) -> Result<Vec<Answer>> {
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
            let Ok(TaskEntry { header: task, .. }) =
                entry::open::<TaskEntry>(&bytes, key, Context::Task, &self.limits())
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
            // Genuine but over this driver's limits: the task fails, rather
            // than waiting for an answer that was already given.
            Err(Error::TooLarge { len, limit }) => return self.too_large(bytes, len, limit),
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

    /// The answer for a result entry too large to decode: `TooLarge` for its
    /// task, found from the entry's leading fields.
    fn too_large(&mut self, bytes: &[u8], len: u64, limit: usize) -> Option<Answer> {
        let key = self.shared.config.key.as_ref();
        let Ok(route) = entry::open_route(bytes, key) else {
            self.shared.stats.forged();
            return None;
        };
        let Some((first, count)) = self.waiting.get(&route.task).copied() else {
            self.shared.stats.duplicate();
            return None;
        };
        if route.job != self.id || (route.first, route.count) != (first, count) {
            self.shared.stats.forged();
            return None;
        }
        self.waiting.remove(&route.task);
        Some(Answer {
            first,
            count,
            seq: false,
            output: Err(Error::TooLarge { len, limit }),
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

pub(crate) fn job_id() -> String {
    let mut bytes = [0u8; 8];
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mixed = entry::sha256(format!("{nanos}/{}", std::process::id()).as_bytes());
    bytes.copy_from_slice(&mixed[..8]);
    entry::hex(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_differ() {
        let a = job_id();
        std::thread::sleep(Duration::from_millis(1));
        assert_ne!(a, job_id());
        assert_eq!(a.len(), 16);
    }
}
