//! A job on the broker, with no types: its tasks go out as encoded chunks,
//! and their answers come back once each.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::Commands;

use super::cancel::Canceller;
use super::entry::{self, Context, ResultEntry, TaskEntry, TaskHeader, FIELD};
use super::link::Link;
use super::Shared;
use crate::codec::Limits;
use crate::error::{Error, Result, WireError};
use crate::handle::DynFn;

/// Bytes of encoded items in one task, at most.
pub(crate) const MAX_TASK_BYTES: usize = 4 << 20;
/// Items in one task, at most, when sized automatically.
const MAX_CHUNK: usize = 65_536;
/// Worker time a task should take when sized automatically.
const TASK_NS: u64 = 5_000_000;
/// How long one read of the results waits.
pub(crate) const READ_BLOCK: Duration = Duration::from_millis(500);
/// Times a task is sent again (vanished, or its function missing) before it fails.
pub(crate) const MAX_RESENDS: u32 = 2;
/// How often the tasks waiting are looked for in the task stream.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(1);

/// A function ready to send: its stored form and what tasks say of it.
pub(crate) struct Prepared {
    pub(crate) hash: [u8; 32],
    /// Its stored form, to store it again if it is found missing or altered.
    pub(crate) stored: Vec<u8>,
    pub(crate) name: &'static str,
    pub(crate) seq: bool,
}

/// One answer of a task, still encoded.
pub(crate) struct Answer {
    pub(crate) first: u64,
    pub(crate) count: u32,
    pub(crate) seq: bool,
    pub(crate) output: Result<Vec<u8>>,
}

/// A task sent and not yet answered.
pub(crate) struct Waiting {
    /// The index of its first item, and how many it has.
    pub(crate) first: u64,
    pub(crate) count: u32,
    /// Its entry as sent: sent again, unchanged, if the entry vanishes.
    pub(crate) sealed: Vec<u8>,
    /// Its entry's id in the task stream.
    pub(crate) entry: String,
    /// Past it, the task fails: its timeout plus the driver's slack.
    pub(crate) deadline: Instant,
    pub(crate) resends: u32,
}

/// A job on the broker: sends its tasks, receives their answers once each.
pub(crate) struct Job {
    pub(crate) shared: Arc<Shared>,
    pub(crate) link: Link,
    pub(crate) id: String,
    /// Written in the job's description when its name is claimed: a claim
    /// tried again after a lost reply knows its own.
    owner: String,
    pub(crate) function: Prepared,
    pub(crate) next_task: u64,
    pub(crate) next_item: u64,
    /// Tasks sent and not yet answered, by task number.
    pub(crate) waiting: HashMap<u64, Waiting>,
    /// Where reading the results stream goes on from (kept across outages).
    pub(crate) last_id: String,
    /// When the tasks waiting were last looked for in the task stream.
    pub(crate) last_check: Instant,
    /// Past it, every task waiting fails.
    pub(crate) map_deadline: Option<Instant>,
    /// Answers accepted and not yet handed over: kept here, so that an
    /// error after they came loses none of them.
    pub(crate) answered: Vec<Answer>,
    /// Tasks a worker could not run for want of their function as stored
    /// (missing, or altered): sent again once it is stored again.
    pub(crate) repairs: Vec<u64>,
    per_item_ns: Option<u64>,
    /// An async function's: its items overlap in a worker, so a task's
    /// time says nothing of an item's.
    is_async: bool,
}

impl Job {
    /// Stores the function (once: by content); the first task claims the
    /// job's name (`claim`).
    pub(crate) fn start(shared: &Arc<Shared>, f: &DynFn, id: String) -> Result<Job> {
        let mut job = Job::start_encoded(shared, f.to_bytes()?, f.name(), f.batches(), id)?;
        job.is_async = f.signature().kind() == crate::plumbing::Kind::Async;
        Ok(job)
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
        let mut link = Link::new(shared.client.clone(), shared.config.reconnect);
        let keys = &shared.keys;
        let ttl = shared.config.result_ttl.as_secs();
        let stored = entry::seal_function(&envelope, shared.config.key.as_ref());
        let function_key = keys.function(&hash);
        // SET NX, else EXPIRE: tried again after a lost reply, it leaves the
        // function stored and kept all the same.
        let created = link.run("store the function", |connection| {
            redis::cmd("SET")
                .arg(&function_key)
                .arg(&stored)
                .arg("NX")
                .arg("EX")
                .arg(ttl)
                .query::<Option<String>>(connection)
        })?;
        if created.is_some() {
            shared.stats.stored(stored.len());
        } else {
            link.run("keep the function", |connection| {
                connection.expire::<_, ()>(&function_key, ttl as i64)
            })?;
        }
        link.take_reconnected();
        Ok(Job {
            shared: Arc::clone(shared),
            link,
            id,
            owner: job_id(),
            function: Prepared {
                hash,
                stored,
                name,
                seq,
            },
            next_task: 0,
            next_item: 0,
            waiting: HashMap::new(),
            last_id: "0".into(),
            last_check: Instant::now(),
            map_deadline: shared.config.map_deadline.map(|d| Instant::now() + d),
            answered: Vec::new(),
            repairs: Vec::new(),
            per_item_ns: None,
            is_async: false,
        })
    }

    fn limits(&self) -> Limits {
        self.shared.config.limits
    }

    /// How many items the next task should carry.
    pub(crate) fn chunk_size(&self) -> usize {
        match (self.shared.config.chunk_size, self.per_item_ns) {
            (Some(fixed), _) => fixed,
            // A worker's round of items at once, with its default settings.
            (None, _) if self.is_async => super::DEFAULT_MAX_CONCURRENT,
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
        let (owner, name) = (self.owner.clone(), self.function.name);
        let hash = entry::hex(&self.function.hash);
        let ttl = self.shared.config.result_ttl.as_secs() as i64;
        let (claimed,): (String,) = self.link.run("claim the job's name", |connection| {
            redis::pipe()
                .atomic()
                .hset_nx(&job_key, "owner", &owner)
                .ignore()
                .hget(&job_key, "owner")
                .query(connection)
        })?;
        if claimed != self.owner {
            return Err(Error::Broker {
                reason: format!(
                    "job `{}` already exists (an unfinished job is kept for {} s): read it \
                     with `reattach`, or give the new job another name",
                    self.id,
                    self.shared.config.result_ttl.as_secs()
                ),
            });
        }
        // A job of the same name that was cancelled is over: this one is not.
        let cancelled = self.shared.keys.cancelled(&self.id);
        self.link.run("describe the job", |connection| {
            redis::pipe()
                .hset(&job_key, "function", &hash)
                .hset(&job_key, "name", name)
                .expire(&job_key, ttl)
                .del(&cancelled)
                .query::<()>(connection)
        })?;
        self.link.take_reconnected();
        Ok(())
    }

    /// Sends one task of `count` items encoded in `items`; after a lost
    /// connection, sends it again (a second copy is answered twice, and the
    /// second answer ignored).
    pub(crate) fn send(&mut self, items: Vec<u8>, count: u32) -> Result<()> {
        if self.next_task == 0 {
            self.claim()?;
        }
        let config = &self.shared.config;
        let task = TaskEntry {
            header: TaskHeader {
                job: self.id.clone(),
                task: self.next_task,
                first: self.next_item,
                count,
                name: self.function.name.to_owned(),
                seq: self.function.seq,
                timeout_ms: config.timeout.map(|t| t.as_millis() as u64),
                ttl_s: config.result_ttl.as_secs(),
            },
            function: self.function.hash,
            items,
        };
        let sealed = entry::seal(&task, config.key.as_ref(), Context::Task)?;
        let deadline = config.timeout.unwrap_or_default() + config.task_slack;
        let (tasks, items) = (self.next_task + 1, self.next_item + u64::from(count));
        let entry_id = self.publish(&sealed, Some((tasks, items)))?;
        self.shared.stats.sent(count, sealed.len());
        self.waiting.insert(
            self.next_task,
            Waiting {
                first: self.next_item,
                count,
                sealed,
                entry: entry_id,
                deadline: Instant::now() + deadline,
                resends: 0,
            },
        );
        self.next_task += 1;
        self.next_item += u64::from(count);
        Ok(())
    }

    /// Adds a task entry to the stream, with the job's totals when given
    /// (absolute, so that a second try counts nothing twice); returns its id.
    pub(crate) fn publish(&mut self, sealed: &[u8], totals: Option<(u64, u64)>) -> Result<String> {
        let keys = &self.shared.keys;
        let (tasks, job_key) = (keys.tasks(), keys.job(&self.id));
        let cap = redis::streams::StreamMaxlen::Approx(self.shared.config.queue_cap);
        let ttl = self.shared.config.result_ttl.as_secs() as i64;
        let (id,): (String,) = self.link.run("send a task", |connection| {
            let mut pipe = redis::pipe();
            pipe.xadd_maxlen(&tasks, cap, "*", &[(FIELD, sealed)]);
            if let Some((tasks, items)) = totals {
                pipe.hset(&job_key, "tasks", tasks)
                    .ignore()
                    .hset(&job_key, "items", items)
                    .ignore()
                    .expire(&job_key, ttl)
                    .ignore();
            }
            pipe.query(connection)
        })?;
        self.check_job()?;
        Ok(id)
    }

    /// After a reconnection: whether the broker still has the job.
    pub(crate) fn check_job(&mut self) -> Result<()> {
        if !self.link.take_reconnected() {
            return Ok(());
        }
        // By its owner: a send tried again may have made the hash anew.
        let job_key = self.shared.keys.job(&self.id);
        let owner: Option<String> = self.link.run("check the job", |connection| {
            connection.hget(&job_key, "owner")
        })?;
        self.link.take_reconnected();
        if owner.as_deref() != Some(self.owner.as_str()) {
            return Err(Error::Broker {
                reason: format!(
                    "the broker lost job `{}` (restarted without persistence, or its keys expired)",
                    self.id
                ),
            });
        }
        Ok(())
    }

    /// Waits a little for answers; returns those of tasks still waiting,
    /// and the failures of tasks past their deadline or lost.
    pub(crate) fn receive(&mut self) -> Result<Vec<Answer>> {
        if let Some(deadline) = self.map_deadline {
            if Instant::now() >= deadline {
                return Err(Error::Broker {
                    reason: format!(
                        "job `{}` ran past the driver's map deadline of {:?}",
                        self.id,
                        self.shared.config.map_deadline.unwrap_or_default()
                    ),
                });
            }
        }
        self.read(Some(READ_BLOCK))?;
        if self.last_check.elapsed() >= CHECK_EVERY && !self.waiting.is_empty() {
            self.last_check = Instant::now();
            self.check()?;
        }
        Ok(std::mem::take(&mut self.answered))
    }

    /// Reads the results that came into [`answered`](Self::answered),
    /// waiting up to `block` for the first; without `block`, every one there is.
    pub(crate) fn read(&mut self, block: Option<Duration>) -> Result<()> {
        const COUNT: usize = 256;
        let mut options = StreamReadOptions::default().count(COUNT);
        if let Some(block) = block {
            options = options.block(block.as_millis() as usize);
        }
        let results = self.shared.keys.results(&self.id);
        loop {
            let last_id = self.last_id.clone();
            let reply: StreamReadReply = self.link.run("read results", |connection| {
                connection.xread_options(&[&results], &[&last_id], &options)
            })?;
            self.check_job()?;
            let mut entries = 0;
            for id in reply.keys.into_iter().flat_map(|stream| stream.ids) {
                entries += 1;
                self.last_id = id.id.clone();
                let Some(bytes) = id.get::<Vec<u8>>(FIELD) else {
                    self.shared.stats.forged();
                    continue;
                };
                self.shared.stats.received(bytes.len());
                if let Some(answer) = self.accept(&bytes) {
                    self.answered.push(answer);
                }
            }
            if !self.repairs.is_empty() {
                self.repair()?;
            }
            if block.is_some() || entries < COUNT {
                return Ok(());
            }
        }
    }

    /// The answer in a result entry, if it is genuine and the first for its task.
    fn accept(&mut self, bytes: &[u8]) -> Option<Answer> {
        let key = self.shared.config.key.as_ref();
        let result: ResultEntry = match entry::open(bytes, key, Context::Result, &self.limits()) {
            Ok(result) => result,
            // Genuine but over this driver's limits: the task fails, rather
            // than waiting for an answer that was already given.
            Err(Error::TooLarge { len, limit }) => return self.too_large(bytes, len, limit),
            Err(error) => {
                tracing::debug!(%error, job = %self.id, "ignored a result entry");
                self.shared.stats.forged();
                return None;
            }
        };
        let Some((first, count)) = self.waiting.get(&result.task).map(|w| (w.first, w.count))
        else {
            self.shared.stats.duplicate();
            return None;
        };
        if result.job != self.id || (result.first, result.count) != (first, count) {
            self.shared.stats.forged();
            return None;
        }
        // The worker found the function missing or altered in Redis: it is
        // stored again and the task sent again, rather than failed.
        let unfetched = matches!(
            result.output,
            Err(WireError::Broker { .. } | WireError::Unauthenticated { .. })
        );
        if unfetched && self.waiting[&result.task].resends < MAX_RESENDS {
            self.repairs.push(result.task);
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
        let Some((first, count)) = self.waiting.get(&route.task).map(|w| (w.first, w.count)) else {
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

    /// Sends one task and waits for its answer; the job is finished after
    /// it, or cancelled when the broker failed first (an answer read before
    /// the failure is still the answer).
    /// With `cancel`, a cancel before the task is sent sends nothing, and
    /// one after it stops the waiting.
    pub(crate) fn run_one(
        mut self,
        block: Vec<u8>,
        count: u32,
        cancel: Option<&Canceller>,
    ) -> Result<Answer> {
        let sent = match cancel {
            Some(cancel) => cancel.send(|| {
                self.send(block, count)?;
                let entry = self.waiting.values().next().map(|w| w.entry.clone());
                Ok((self.id.clone(), entry.unwrap_or_default()))
            }),
            None => self.send(block, count).map(|()| true),
        };
        let answer = sent.and_then(|sent| loop {
            if !sent || cancel.is_some_and(Canceller::is_cancelled) {
                break Err(Error::Broker {
                    reason: "the task was cancelled".into(),
                });
            }
            match self.receive() {
                Ok(mut answers) => {
                    if let Some(answer) = answers.pop() {
                        break Ok(answer);
                    }
                }
                Err(error) => break self.answered.pop().ok_or(error),
            }
        });
        match &answer {
            Ok(_) => self.finish(),
            Err(_) => self.cancel(),
        }
        answer
    }

    /// The driver gave up on the job: workers skip its tasks left (best
    /// effort: the broker may be what failed).
    pub(crate) fn cancel(&mut self) {
        let marker = self.shared.keys.cancelled(&self.id);
        let ttl = self.shared.config.result_ttl.as_secs();
        self.link.try_once(|connection| {
            let _: redis::RedisResult<()> = connection.set_ex(&marker, 1u8, ttl);
        });
    }

    /// Every result was read: the job's description and results go (a
    /// late duplicate answer makes a results stream that expires).
    pub(crate) fn finish(&mut self) {
        let keys = &self.shared.keys;
        let (job_key, results) = (keys.job(&self.id), keys.results(&self.id));
        self.link.try_once(|connection| {
            let _: redis::RedisResult<()> = connection.del(&[job_key, results]);
        });
    }
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
