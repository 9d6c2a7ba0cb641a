//! The driver's watch over the tasks it waits for, so that none is waited
//! on for ever: a task past its deadline fails, and a task whose entry
//! vanished from the stream (neither queued nor pending: deleted, trimmed,
//! or read by something other than serfn's workers) is sent again, then
//! failed.

use std::time::Instant;

use redis::streams::StreamRangeReply;
use redis::Commands;

use super::entry::FIELD;
use super::job::{Answer, Job, Waiting, MAX_RESENDS};
use crate::error::{Error, Result};

/// Refused entries searched for a vanished task's bytes, at most.
const FORGED_SEARCHED: usize = 1_000;

impl Job {
    /// Fails the tasks past their deadline; finds those whose entry
    /// vanished, and sends them again or fails them (into `answered`).
    pub(crate) fn check(&mut self) -> Result<()> {
        let now = Instant::now();
        let late: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, waiting)| now >= waiting.deadline)
            .map(|(&task, _)| task)
            .collect();
        for task in late {
            let waiting = self.waiting.remove(&task).expect("listed above");
            let config = &self.shared.config;
            let deadline = config.timeout.unwrap_or_default() + config.task_slack;
            let error = Error::Broker {
                reason: format!(
                    "no answer to task {task} of `{}` (job `{}`) within the driver's deadline \
                     of {deadline:?} (its timeout and `task_slack`): no worker took it, or \
                     every one that did was lost",
                    self.function.name, self.id
                ),
            };
            self.answered.push(failed(&waiting, error));
        }
        let gone = self.vanished()?;
        if gone.is_empty() {
            return Ok(());
        }
        // A worker acknowledges a task in the transaction that answers it:
        // an answer to a task gone from the stream is in the results now.
        self.read(None)?;
        for task in gone {
            let Some(waiting) = self.waiting.get_mut(&task) else {
                continue;
            };
            if waiting.resends < MAX_RESENDS {
                tracing::warn!(job = %self.id, task, "a task vanished from the stream: sent again");
                self.resend(task)?;
            } else {
                let waiting = self.waiting.remove(&task).expect("found above");
                let error = self.lost(task, &waiting)?;
                self.answered.push(failed(&waiting, error));
            }
        }
        Ok(())
    }

    /// Sends a task waiting again, as it was signed.
    fn resend(&mut self, task: u64) -> Result<()> {
        let Some(waiting) = self.waiting.get_mut(&task) else {
            return Ok(());
        };
        waiting.resends += 1;
        let sealed = waiting.sealed.clone();
        let entry = self.publish(&sealed, None)?;
        if let Some(waiting) = self.waiting.get_mut(&task) {
            waiting.entry = entry;
        }
        Ok(())
    }

    /// Stores the function again (a worker found it missing or altered)
    /// and sends again the tasks that could not run without it.
    pub(crate) fn repair(&mut self) -> Result<()> {
        let tasks = std::mem::take(&mut self.repairs);
        let function_key = self.shared.keys.function(&self.function.hash);
        let ttl = self.shared.config.result_ttl.as_secs();
        let stored = &self.function.stored;
        tracing::warn!(job = %self.id, tasks = tasks.len(), "the function was missing or altered in Redis: stored again");
        self.link.run("store the function again", |connection| {
            redis::cmd("SET")
                .arg(&function_key)
                .arg(stored)
                .arg("EX")
                .arg(ttl)
                .query::<()>(connection)
        })?;
        for task in tasks {
            self.resend(task)?;
        }
        Ok(())
    }

    /// The tasks waiting whose entry is no longer in the task stream.
    fn vanished(&mut self) -> Result<Vec<u64>> {
        let entries: Vec<(u64, String)> = self
            .waiting
            .iter()
            .map(|(&task, waiting)| (task, waiting.entry.clone()))
            .collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let tasks = self.shared.keys.tasks();
        let found: Vec<StreamRangeReply> = self.link.run("look for tasks", |connection| {
            let mut pipe = redis::pipe();
            for (_, entry) in &entries {
                pipe.xrange_count(&tasks, entry, entry, 1);
            }
            pipe.query(connection)
        })?;
        self.check_job()?;
        Ok(entries
            .iter()
            .zip(found)
            .filter(|(_, found)| found.ids.is_empty())
            .map(|((task, _), _)| *task)
            .collect())
    }

    /// The error of a task that vanished every time it was sent: a
    /// worker's refusal when its bytes are among the refused entries (a key
    /// mismatch, named), else the vanishing itself.
    fn lost(&mut self, task: u64, waiting: &Waiting) -> Result<Error> {
        let forged = self.shared.keys.forged();
        let recent: StreamRangeReply = self.link.run("read refused entries", |connection| {
            connection.xrevrange_count(&forged, "+", "-", FORGED_SEARCHED)
        })?;
        let refused = recent
            .ids
            .iter()
            .find(|entry| entry.get::<Vec<u8>>(FIELD).as_deref() == Some(&waiting.sealed[..]));
        let sent = waiting.resends + 1;
        Ok(match refused {
            Some(entry) => Error::DeadLetter {
                name: self.function.name.to_owned(),
                deliveries: sent,
                reason: format!(
                    "refused by a worker: {}",
                    entry.get::<String>("reason").unwrap_or_default()
                ),
            },
            None => Error::Broker {
                reason: format!(
                    "task {task} of job `{}` vanished from `{}` each of the {sent} times it \
                     was sent: deleted, trimmed, or read by something other than serfn's workers",
                    self.id,
                    self.shared.keys.tasks()
                ),
            },
        })
    }
}

fn failed(waiting: &Waiting, error: Error) -> Answer {
    Answer {
        first: waiting.first,
        count: waiting.count,
        seq: false,
        output: Err(error),
    }
}
