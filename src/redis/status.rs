//! What a fleet is doing, read from Redis: the live workers, the task
//! stream and its pending entries, the dead letters and the jobs.

use std::collections::HashMap;

use redis::streams::{StreamInfoConsumersReply, StreamPendingCountReply};
use redis::Commands;
use serde::Serialize;

use super::broker;
use super::entry::Keys;
use super::presence::WorkerStatus;
use crate::error::Result;

/// Workers and jobs listed, at most: a status stays bounded.
pub(super) const MAX_LISTED: usize = 10_000;
/// Pending tasks listed per consumer, at most.
const PENDING_LISTED: usize = 100;

/// A fleet at one moment: from [`Fleet::status`](super::Fleet::status) or
/// [`RedisExecutor::fleet_status`](super::RedisExecutor::fleet_status).
///
/// # Example
/// ```no_run
/// let status = serfn::redis::Fleet::new("redis://127.0.0.1:6379")?.status()?;
/// println!("{} workers, {} tasks waiting, {} dead letters",
///     status.workers.len(), status.queue.waiting, status.dead_letters);
/// for job in &status.jobs {
///     println!("{}: {}/{} tasks answered", job.name, job.answered, job.tasks);
/// }
/// # Ok::<(), serfn::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FleetStatus {
    /// The key prefix read.
    pub prefix: String,
    /// Live workers (their heartbeat keys), by name.
    pub workers: Vec<WorkerStatus>,
    /// The task stream.
    pub queue: QueueStatus,
    /// Names in the consumer group with tasks pending: live workers running
    /// them, or dead ones whose tasks wait to be taken over.
    pub pending: Vec<ConsumerStatus>,
    /// Entries in the dead-letter stream.
    pub dead_letters: u64,
    /// Entries in the stream of those workers could not open
    /// ([`Fleet::forged`](super::Fleet::forged)).
    pub forged: u64,
    /// Entries workers could not open, ever (that stream is trimmed).
    pub forged_total: u64,
    /// Jobs with tasks not yet answered, by name.
    pub jobs: Vec<JobStatus>,
    /// Jobs still kept whose every task sent was answered.
    pub finished_jobs: u64,
}

/// The task stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct QueueStatus {
    /// Tasks no worker has taken yet.
    pub waiting: u64,
    /// Tasks taken and not yet answered.
    pub pending: u64,
}

/// A name in the workers' consumer group and the tasks pending with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ConsumerStatus {
    /// The worker's name.
    pub name: String,
    /// Tasks pending with it.
    pub pending: u64,
    /// Milliseconds since it last read or claimed a task.
    pub idle_ms: u64,
    /// The oldest of its pending tasks (at most 100).
    pub tasks: Vec<PendingTask>,
}

/// A task taken by a worker and not yet answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PendingTask {
    /// Its entry in the task stream.
    pub id: String,
    /// Milliseconds since its claim was last renewed: past the workers'
    /// `claim_idle`, another worker takes it over.
    pub idle_ms: u64,
    /// How many times it was handed to a worker.
    pub deliveries: u64,
}

/// A job still kept on the broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct JobStatus {
    /// Its name.
    pub name: String,
    /// The function it maps.
    pub function: String,
    /// Tasks sent so far.
    pub tasks: u64,
    /// Items in them.
    pub items: u64,
    /// Tasks answered (results in its stream, at most `tasks`).
    pub answered: u64,
}

/// The keys matching `{prefix}:{kind}:*` of that type: at most [`MAX_LISTED`].
pub(super) fn scan(
    connection: &mut redis::Connection,
    keys: &Keys,
    kind: &str,
    of_type: &str,
) -> Result<Vec<String>> {
    let pattern = format!("{}:{kind}:*", escape(keys.prefix()));
    let mut cursor = 0u64;
    let mut found = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .arg("TYPE")
            .arg(of_type)
            .query(connection)
            .map_err(broker("list keys"))?;
        found.extend(batch);
        cursor = next;
        if cursor == 0 || found.len() >= MAX_LISTED {
            found.truncate(MAX_LISTED);
            found.sort();
            found.dedup(); // SCAN may return a key twice
            return Ok(found);
        }
    }
}

/// A glob pattern matching `text` literally.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The live workers.
pub(super) fn workers(
    connection: &mut redis::Connection,
    keys: &Keys,
) -> Result<Vec<WorkerStatus>> {
    let names = scan(connection, keys, "worker", "hash")?;
    if names.is_empty() {
        return Ok(Vec::new()); // Redis refuses an empty pipeline
    }
    let mut pipe = redis::pipe();
    for name in &names {
        pipe.hgetall(name);
    }
    let all: Vec<HashMap<String, String>> =
        pipe.query(connection).map_err(broker("read workers"))?;
    let mut workers: Vec<WorkerStatus> = all.iter().filter_map(WorkerStatus::parse).collect();
    workers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(workers)
}

/// The task stream and its pending entries, by consumer.
pub(super) fn queue(
    connection: &mut redis::Connection,
    keys: &Keys,
) -> Result<(QueueStatus, Vec<ConsumerStatus>)> {
    let (tasks, group) = (keys.tasks(), keys.group());
    let length: u64 = connection.xlen(&tasks).map_err(broker("read the queue"))?;
    let consumers: StreamInfoConsumersReply = match connection.xinfo_consumers(&tasks, &group) {
        Ok(consumers) => consumers,
        // No stream or no group yet: no worker ever ran, every task waits.
        Err(error) if matches!(error.code(), Some("NOGROUP") | Some("ERR")) => {
            let queue = QueueStatus {
                waiting: length,
                pending: 0,
            };
            return Ok((queue, Vec::new()));
        }
        Err(error) => return Err(broker("read the consumers")(error)),
    };
    let mut pending = Vec::new();
    for consumer in consumers.consumers.iter().filter(|c| c.pending > 0) {
        let reply: StreamPendingCountReply = connection
            .xpending_consumer_count(&tasks, &group, "-", "+", PENDING_LISTED, &consumer.name)
            .map_err(broker("read pending tasks"))?;
        pending.push(ConsumerStatus {
            name: consumer.name.clone(),
            pending: consumer.pending as u64,
            idle_ms: consumer.idle as u64,
            tasks: reply
                .ids
                .into_iter()
                .map(|task| PendingTask {
                    id: task.id,
                    idle_ms: task.last_delivered_ms as u64,
                    deliveries: task.times_delivered as u64,
                })
                .collect(),
        });
    }
    // Answered tasks are deleted: what is left is pending or waiting.
    let taken: u64 = pending.iter().map(|c| c.pending).sum();
    let queue = QueueStatus {
        waiting: length.saturating_sub(taken),
        pending: taken,
    };
    Ok((queue, pending))
}

/// Every job kept, with how far it got.
pub(super) fn jobs(connection: &mut redis::Connection, keys: &Keys) -> Result<Vec<JobStatus>> {
    let found = scan(connection, keys, "job", "hash")?;
    let lead = keys.job("");
    let names: Vec<&str> = found
        .iter()
        .filter_map(|key| key.strip_prefix(&lead))
        .collect();
    if names.is_empty() {
        return Ok(Vec::new()); // Redis refuses an empty pipeline
    }
    let (mut described, mut answered) = (redis::pipe(), redis::pipe());
    for name in &names {
        described.hgetall(keys.job(name));
        answered.xlen(keys.results(name));
    }
    let fields: Vec<HashMap<String, String>> =
        described.query(connection).map_err(broker("read jobs"))?;
    let counts: Vec<u64> = answered.query(connection).map_err(broker("read jobs"))?;
    let replies = fields.into_iter().zip(counts);
    let jobs = names
        .iter()
        .zip(replies)
        // A job deleted since the scan reads as no fields.
        .filter(|(_, (fields, _))| !fields.is_empty())
        .map(|(name, (fields, answered))| {
            let number = |field: &str| {
                fields
                    .get(field)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let tasks = number("tasks");
            JobStatus {
                name: (*name).to_owned(),
                function: fields.get("name").cloned().unwrap_or_default(),
                tasks,
                items: number("items"),
                answered: answered.min(tasks),
            }
        })
        .collect();
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    #[test]
    fn patterns_match_the_prefix_literally() {
        assert_eq!(super::escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert_eq!(super::escape("serfn"), "serfn");
    }
}
