//! Watches the task a worker is running, from a thread of its own: renews
//! its claim so that no other worker takes it over, and ends the worker
//! when it runs past its timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::streams::StreamClaimOptions;
use redis::Commands;

use super::backoff::Backoff;
use super::entry::TaskHeader;
use super::outbox::Outbox;
use crate::error::{Error, WireError};
use crate::sync::lock;

/// The exit code of a worker whose task ran past its timeout.
pub const TIMEOUT_EXIT_CODE: i32 = 3;

/// The task a worker is running, for its heartbeat.
pub(super) struct Running {
    pub(super) id: String,
    pub(super) task: TaskHeader,
    pub(super) deadline: Option<Instant>,
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
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        let mut next_attempt = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(tick);
            let running = lock(&self.running);
            let Some(current) = running.as_ref() else {
                continue;
            };
            if connection.is_none() && Instant::now() >= next_attempt {
                connection = self.client.get_connection().ok();
                match connection {
                    Some(_) => backoff.reset(),
                    None => next_attempt = Instant::now() + backoff.pause(),
                }
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
