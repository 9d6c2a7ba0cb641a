//! Cancelling a fleet's one-task call ([`Task::cancel`](crate::Task::cancel)
//! of [`RedisExecutor::submit`](super::RedisExecutor::submit)): the job's
//! cancel marker, set in one transaction with a look at where its task is,
//! so that the answer is honest. A fleet's worker is not killed: a task a
//! worker has taken may run to its end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use redis::streams::{StreamInfoGroupsReply, StreamPendingCountReply};

use super::Shared;
use crate::error::Result;
use crate::pool::job::Runner;
use crate::pool::Cancelled;
use crate::sync::lock;

/// Shared by a submitted task and the thread that sends it.
pub(crate) struct Canceller {
    shared: Arc<Shared>,
    /// Set by `cancel`: the sending thread stops waiting.
    cancelled: AtomicBool,
    /// The job and its task's entry id, once sent. Held while sending, so
    /// that a cancel comes wholly before the task is sent or after.
    sent: Mutex<Option<(String, String)>>,
}

impl Canceller {
    pub(crate) fn new(shared: &Arc<Shared>) -> Arc<Canceller> {
        Arc::new(Canceller {
            shared: Arc::clone(shared),
            cancelled: AtomicBool::new(false),
            sent: Mutex::new(None),
        })
    }

    /// Sends the task with `send` (which gives its job and entry id),
    /// unless the task was cancelled first: then `Ok(false)`.
    pub(crate) fn send(&self, send: impl FnOnce() -> Result<(String, String)>) -> Result<bool> {
        let mut sent = lock(&self.sent);
        if self.is_cancelled() {
            return Ok(false);
        }
        *sent = Some(send()?);
        Ok(true)
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Sets the job's marker and, in the same transaction, reads whether
    /// the task's entry was delivered to a worker and is still pending.
    fn mark(&self, job: &str, entry: &str) -> redis::RedisResult<Cancelled> {
        let keys = &self.shared.keys;
        let (tasks, group) = (keys.tasks(), keys.group());
        let ttl = self.shared.config.result_ttl.as_secs();
        let mut connection = self.shared.client.get_connection()?;
        let (groups, pending): (StreamInfoGroupsReply, StreamPendingCountReply) = redis::pipe()
            .atomic()
            .set_ex(keys.cancelled(job), 1u8, ttl)
            .ignore()
            .xinfo_groups(&tasks)
            .xpending_count(&tasks, &group, entry, entry, 1)
            .query(&mut connection)?;
        let delivered = groups
            .groups
            .iter()
            .find(|g| g.name == group)
            .is_some_and(|g| stream_id(entry) <= stream_id(&g.last_delivered_id));
        Ok(match (delivered, pending.ids.is_empty()) {
            // No worker read it: one that does reads the marker after it.
            (false, _) => Cancelled::NotStarted,
            // Answered, its answer not yet read here.
            (true, true) => Cancelled::Finished,
            // A worker has it, and may have checked the marker before.
            (true, false) => Cancelled::Running,
        })
    }
}

impl Runner for Canceller {
    fn cancel(&self, _: u64) -> bool {
        !matches!(self.cancel_exactly(0), Some(Cancelled::Finished))
    }

    fn cancel_exactly(&self, _: u64) -> Option<Cancelled> {
        let sent = lock(&self.sent);
        self.cancelled.store(true, Ordering::SeqCst);
        let Some((job, entry)) = sent.as_ref() else {
            return Some(Cancelled::NotStarted); // and it is never sent
        };
        Some(self.mark(job, entry).unwrap_or_else(|error| {
            tracing::warn!(%error, job, "cannot cancel the task: the broker failed");
            Cancelled::Running
        }))
    }
}

/// A stream entry id's two numbers, ordered as Redis orders them.
fn stream_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::stream_id;

    #[test]
    fn entry_ids_order_by_time_then_sequence() {
        assert!(stream_id("9-5") < stream_id("10-0"));
        assert!(stream_id("10-1") > stream_id("10-0"));
        assert_eq!(stream_id("0-0"), (0, 0));
    }
}
