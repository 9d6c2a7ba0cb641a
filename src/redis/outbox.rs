//! Where a redis worker's answers go: a result published with its task's
//! acknowledgement, and the heartbeat that renews a running task's claim.

use std::time::Duration;

use super::broker;
use super::entry::{self, Context, Keys, ResultEntry, TaskHeader, FIELD};
use crate::codec::Key;
use crate::error::{Result, WireError};

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
