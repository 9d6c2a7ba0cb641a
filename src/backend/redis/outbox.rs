//! Where a redis worker's answers go: a result published with its task's
//! acknowledgement, and the heartbeat that renews a running task's claim.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::streams::StreamClaimOptions;
use redis::Commands;

use super::broker;
use super::entry::{self, Context, Keys, ResultEntry, TaskHeader, FIELD};
use super::worker::{lock, Running, TIMEOUT_EXIT_CODE};
use crate::codec::Key;
use crate::error::{Error, Result, WireError};

/// Adds a result to its job's stream, which lives as long as the job says.
pub(super) fn append_result(
    pipe: &mut redis::Pipeline,
    keys: &Keys,
    task: &TaskHeader,
    sealed: &[u8],
) {
    let results = keys.results(&task.job);
    pipe.xadd(&results, "*", &[(FIELD, sealed)])
        .ignore()
        .expire(&results, task.ttl_s.max(1) as i64)
        .ignore();
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

/// Renews the running task's claim, from a thread of its own.
pub(super) struct Heartbeat {
    pub(super) client: redis::Client,
    pub(super) outbox: Outbox,
    pub(super) running: Arc<Mutex<Option<Running>>>,
    pub(super) every: Duration,
    pub(super) stop: Arc<AtomicBool>,
}

impl Heartbeat {
    /// Renews the running task's claim; past its timeout, answers
    /// [`Error::Timeout`] for it and ends the process, as the pool kills a
    /// worker whose task runs too long.
    pub(super) fn run(self) {
        let mut connection = None;
        let tick = self.every.min(Duration::from_millis(100));
        let mut last_renewal = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(tick);
            let running = lock(&self.running);
            let Some(current) = running.as_ref() else {
                continue;
            };
            if connection.is_none() {
                connection = self.client.get_connection().ok();
            }
            let Some(conn) = connection.as_mut() else {
                continue;
            };
            if current
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline)
            {
                let timeout = Duration::from_millis(current.task.timeout_ms.unwrap_or(0));
                let error = Error::Timeout {
                    name: current.task.name.clone(),
                    timeout,
                };
                tracing::warn!(task = %current.id, ?timeout, "task ran past its timeout; this worker exits");
                let output = Err(WireError::from(&error));
                let published =
                    self.outbox
                        .publish(conn, &current.id, &current.task, output, timeout);
                if let Err(error) = published {
                    tracing::error!(%error, "cannot publish the timeout");
                }
                std::process::exit(TIMEOUT_EXIT_CODE);
            }
            if last_renewal.elapsed() >= self.every {
                last_renewal = Instant::now();
                let options = StreamClaimOptions::default().with_justid();
                let keys = &self.outbox.keys;
                let renewed: redis::RedisResult<Vec<String>> = conn.xclaim_options(
                    keys.tasks(),
                    keys.group(),
                    &self.outbox.consumer,
                    0,
                    &[&current.id],
                    options,
                );
                if renewed.is_err() {
                    connection = None;
                }
            }
        }
    }
}
