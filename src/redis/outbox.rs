//! Where a redis worker's answers go: a result published with its task's
//! acknowledgement, and the heartbeat that renews a running task's claim.

use std::time::Duration;

use super::broker;
use super::entry::{self, Context, Keys, ResultEntry, TaskHeader, FIELD};
use crate::codec::Key;
use crate::error::{Result, WireError};

/// Adds a result to its job's stream, which lives as long as the job says;
/// the job's description lives as long (a no-op once its driver deleted it).
pub(super) fn append_result(
    pipe: &mut redis::Pipeline,
    keys: &Keys,
    task: &TaskHeader,
    sealed: &[u8],
) {
    let results = keys.results(&task.job);
    let ttl = task.ttl_s.max(1) as i64;
    pipe.xadd(&results, "*", &[(FIELD, sealed)])
        .ignore()
        .expire(&results, ttl)
        .ignore()
        .expire(keys.job(&task.job), ttl)
        .ignore();
}

/// How long a worker trusts that a job is not cancelled before it asks
/// again: a task of a job that keeps it busy costs no extra round trip.
const CHECK_AGAIN: std::time::Duration = std::time::Duration::from_millis(100);

/// Jobs whose cancellation a worker checked lately, for [`CHECK_AGAIN`]
/// (not for good: a later job may take a cancelled one's name).
#[derive(Default)]
pub(super) struct Checked {
    jobs: std::collections::HashMap<String, (std::time::Instant, bool)>,
}

impl Checked {
    pub(super) fn get(&self, job: &str) -> Option<bool> {
        let (at, cancelled) = self.jobs.get(job)?;
        (at.elapsed() < CHECK_AGAIN).then_some(*cancelled)
    }

    pub(super) fn put(&mut self, job: &str, cancelled: bool) {
        // Bounded: the jobs of the last while, at most a few hundred.
        if self.jobs.len() >= 256 {
            self.jobs.retain(|_, (at, _)| at.elapsed() < CHECK_AGAIN);
            if self.jobs.len() >= 256 {
                self.jobs.clear();
            }
        }
        self.jobs
            .insert(job.to_owned(), (std::time::Instant::now(), cancelled));
    }
}

/// Milliseconds since the Unix epoch, for the `at` of parked entries.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An entry a worker takes out of the task stream without running it.
pub(super) struct Parked<'a> {
    /// Its id in the task stream.
    pub(super) id: &'a str,
    /// Its bytes, exactly as they were there.
    pub(super) bytes: &'a [u8],
    pub(super) reason: &'a str,
    /// The worker that parks it.
    pub(super) worker: &'a str,
}

/// Adds a genuine task to the dead-letter stream, trimmed to about `cap`
/// entries: its bytes as they were signed, and what it was and why it died
/// (the format in the module docs of [`super`]).
pub(super) fn append_dead_letter(
    pipe: &mut redis::Pipeline,
    keys: &Keys,
    cap: usize,
    parked: &Parked<'_>,
    task: &TaskHeader,
    deliveries: u32,
) {
    let fields: [(&str, Vec<u8>); 9] = [
        (FIELD, parked.bytes.to_vec()),
        ("reason", parked.reason.as_bytes().to_vec()),
        ("job", task.job.as_bytes().to_vec()),
        ("task", task.task.to_string().into_bytes()),
        ("name", task.name.as_bytes().to_vec()),
        ("deliveries", deliveries.to_string().into_bytes()),
        ("worker", parked.worker.as_bytes().to_vec()),
        ("at", now_ms().to_string().into_bytes()),
        ("id", parked.id.as_bytes().to_vec()),
    ];
    pipe.xadd_maxlen(keys.dead(), trim(cap), "*", &fields)
        .ignore();
}

/// Parks an entry that could not be opened in the forged stream, trimmed
/// to about `cap` entries, and counts it: no job or task is named, since
/// nothing in it can be trusted.
pub(super) fn append_forged(
    pipe: &mut redis::Pipeline,
    keys: &Keys,
    cap: usize,
    parked: &Parked<'_>,
) {
    let fields: [(&str, Vec<u8>); 5] = [
        (FIELD, parked.bytes.to_vec()),
        ("reason", parked.reason.as_bytes().to_vec()),
        ("worker", parked.worker.as_bytes().to_vec()),
        ("at", now_ms().to_string().into_bytes()),
        ("id", parked.id.as_bytes().to_vec()),
    ];
    pipe.xadd_maxlen(keys.forged(), trim(cap), "*", &fields)
        .ignore()
        .incr(keys.forged_count(), 1)
        .ignore();
}

/// `MAXLEN ~ cap`: Redis trims whole nodes, so the length stays near the cap
/// at a fraction of the cost of an exact trim.
fn trim(cap: usize) -> redis::streams::StreamMaxlen {
    redis::streams::StreamMaxlen::Approx(cap.max(1))
}

/// Acknowledges a task and removes it from the stream.
pub(super) fn acknowledge(pipe: &mut redis::Pipeline, keys: &Keys, id: &str) {
    pipe.xack(keys.tasks(), keys.group(), &[id])
        .ignore()
        .xdel(keys.tasks(), &[id])
        .ignore();
}

/// Where a worker's answers go, and how they are signed.
#[derive(Clone)]
pub(super) struct Outbox {
    pub(super) keys: Keys,
    pub(super) key: Option<Key>,
    pub(super) consumer: String,
}

impl Outbox {
    /// Publishes a task's result and acknowledges the task, in one
    /// transaction: a task is acknowledged only with its result published.
    pub(super) fn publish(
        &self,
        connection: &mut redis::Connection,
        id: &str,
        task: &TaskHeader,
        output: std::result::Result<Vec<u8>, WireError>,
        elapsed: Duration,
    ) -> Result<()> {
        let sealed = self.seal(task, output, elapsed)?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        append_result(&mut pipe, &self.keys, task, &sealed);
        acknowledge(&mut pipe, &self.keys, id);
        let _: () = pipe.query(connection).map_err(broker("publish a result"))?;
        Ok(())
    }

    /// A result entry for `task`, signed with the key.
    pub(super) fn seal(
        &self,
        task: &TaskHeader,
        output: std::result::Result<Vec<u8>, WireError>,
        elapsed: Duration,
    ) -> Result<Vec<u8>> {
        let result = ResultEntry {
            job: task.job.clone(),
            task: task.task,
            first: task.first,
            count: task.count,
            seq: task.seq,
            elapsed_ns: elapsed.as_nanos() as u64,
            worker: self.consumer.clone(),
            output,
        };
        entry::seal(&result, self.key.as_ref(), Context::Result)
    }
}
