//! The results of a job read again by a driver that restarted.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Instant;

use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::Commands;
use serde::de::DeserializeOwned;

use super::entry::{self, Context, ResultEntry, FIELD};
use super::job::READ_BLOCK;
use super::link::Link;
use super::{RedisExecutor, Shared};
use crate::error::{Error, Result};
use crate::pool::answer::{decode_chunk, ChunkResults};

/// The results of a job read again by a driver that restarted.
pub(crate) struct Reattached<'e, R> {
    shared: Arc<Shared>,
    link: Link,
    /// When a result last came: with none for the driver's deadline (the
    /// timeout and `task_slack`), the job fails rather than waits for ever.
    last_progress: Instant,
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
        let mut link = Link::new(shared.client.clone(), shared.config.reconnect);
        let job_key = shared.keys.job(id);
        let tasks: Option<u64> = link.run("read the job", |connection| {
            connection.hget(&job_key, "tasks")
        })?;
        let Some(tasks) = tasks else {
            return Err(Error::Broker {
                reason: format!("no job `{id}` (never started, or its results expired)"),
            });
        };
        Ok(Reattached {
            shared,
            link,
            last_progress: Instant::now(),
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
            let config = &self.shared.config;
            let quiet = config.timeout.unwrap_or_default() + config.task_slack;
            if self.last_progress.elapsed() >= quiet {
                let reason = format!(
                    "no result of job `{}` for the driver's deadline of {quiet:?} (its timeout \
                     and `task_slack`), with {} of its tasks unanswered",
                    self.id,
                    self.tasks.saturating_sub(self.seen.len() as u64)
                );
                self.tasks = 0;
                return Some((0, Err(Error::Broker { reason })));
            }
            let results = self.shared.keys.results(&self.id);
            let last_id = self.last_id.clone();
            let read = self.link.run("read results", |connection| {
                connection.xread_options(&[&results], &[&last_id], &options)
            });
            let reply: StreamReadReply = match read {
                Ok(reply) => reply,
                Err(error) => {
                    self.tasks = 0;
                    return Some((0, Err(error)));
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
                self.last_progress = Instant::now();
                let output = result.output.map_err(|error| error.into_error(None));
                let results = decode_chunk(result.count, output, &limits, result.seq);
                self.current = Some((result.first, results));
                break;
            }
        }
    }
}
