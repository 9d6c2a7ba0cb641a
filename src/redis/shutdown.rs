//! Warm shutdown: once asked to stop (SIGTERM, SIGINT, or the stop flag), a
//! worker takes no new task and finishes the one it runs within a grace
//! period; past it, the process exits and leaves that task to another worker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::streams::StreamClaimOptions;
use redis::Commands;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::SigId;

use super::claim::Running;
use super::entry::Keys;
use super::{presence, RedisWorker};
use crate::error::{Error, Result};
use crate::sync::lock;

/// The exit code of a worker that was asked to stop and whose task ran past
/// the grace period ([`RedisWorker::grace`](super::RedisWorker::grace)), or
/// that got a second SIGTERM or SIGINT: the task stays pending, for another
/// worker to take over.
pub const GRACE_EXIT_CODE: i32 = 4;

/// How long a stopping worker waits for its task, unless set otherwise.
pub(super) const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// How often the stop flag is looked at.
const TICK: Duration = Duration::from_millis(20);

impl RedisWorker {
    /// How long a worker asked to stop waits for its running task (30 s by
    /// default). It takes no new task meanwhile; when the task ends, its
    /// answer is published and [`run`](Self::run) returns `Ok`. Past the
    /// grace period the process exits with [`GRACE_EXIT_CODE`](super::GRACE_EXIT_CODE)
    /// and the task stays pending, for another worker to take over at once
    /// (so in a program that runs a worker on a thread, past the grace
    /// period the whole program ends). `Duration::MAX` waits for the task
    /// however long it takes. Under systemd, keep `TimeoutStopSec` above it.
    ///
    /// # Example
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let worker = serfn::redis::RedisWorker::new("redis://127.0.0.1:6379")
    ///     .grace(Duration::from_secs(60))
    ///     .stop_on_signals();
    /// worker.run()?; // Ok after SIGTERM, once the running task is published
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Stops on SIGTERM or SIGINT (Ctrl-C) as on the
    /// [`stop_flag`](Self::stop_flag), with the [`grace`](Self::grace)
    /// period; a second signal ends the process at once with
    /// [`GRACE_EXIT_CODE`](super::GRACE_EXIT_CODE). The handlers are
    /// installed by [`run`](Self::run) and removed when it returns.
    /// [`serfn::worker::redis`](crate::worker::redis) does this.
    ///
    /// # Example
    /// ```no_run
    /// fn main() -> serfn::Result<()> {
    ///     // `kill -TERM` or Ctrl-C: the running task finishes, then `main` returns Ok.
    ///     serfn::redis::RedisWorker::new("redis://127.0.0.1:6379").stop_on_signals().run()
    /// }
    /// ```
    pub fn stop_on_signals(mut self) -> Self {
        self.signals = true;
        self
    }
}

/// SIGTERM and SIGINT handlers that set a stop flag, removed on drop.
pub(super) struct Signals {
    ids: Vec<SigId>,
}

impl Signals {
    /// The first SIGTERM or SIGINT sets `stop`; a second one (the flag
    /// already set) ends the process with [`GRACE_EXIT_CODE`].
    pub(super) fn install(stop: &Arc<AtomicBool>) -> Result<Signals> {
        let mut signals = Signals { ids: Vec::new() };
        for signal in [SIGTERM, SIGINT] {
            // In this order: the shutdown checks the flag before it is set.
            let exit = signal_hook::flag::register_conditional_shutdown(
                signal,
                GRACE_EXIT_CODE,
                Arc::clone(stop),
            );
            signals.ids.push(exit.map_err(Error::io)?);
            let flag = signal_hook::flag::register(signal, Arc::clone(stop));
            signals.ids.push(flag.map_err(Error::io)?);
        }
        Ok(signals)
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Gives a task back to the group at once: idle as if its worker had died
/// `idle` ago, so that the next worker to look for idle tasks takes it.
pub(super) fn release(
    connection: &mut redis::Connection,
    keys: &Keys,
    consumer: &str,
    id: &str,
    idle: Duration,
) -> redis::RedisResult<()> {
    let options = StreamClaimOptions::default()
        .idle(idle.as_millis() as usize)
        .with_justid();
    let _: Vec<String> =
        connection.xclaim_options(keys.tasks(), keys.group(), consumer, 0, &[id], options)?;
    Ok(())
}

/// Ends the process when a stopping worker's task runs past the grace period.
pub(super) struct Grace {
    pub(super) client: redis::Client,
    pub(super) keys: Keys,
    pub(super) consumer: String,
    pub(super) claim_idle: Duration,
    pub(super) grace: Duration,
    pub(super) running: Arc<Mutex<Option<Running>>>,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) finished: Arc<AtomicBool>,
}

impl Grace {
    pub(super) fn run(self) {
        while !self.stop.load(Ordering::SeqCst) {
            if self.finished.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(TICK);
        }
        // No deadline for a grace too long to add (`Duration::MAX`).
        let deadline = Instant::now().checked_add(self.grace);
        tracing::info!(grace = ?self.grace, "asked to stop: finishing the running task, taking no new one");
        while deadline.is_none_or(|deadline| Instant::now() < deadline) {
            if self.finished.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(TICK);
        }
        let running = lock(&self.running);
        if let Some(task) = running.as_ref() {
            tracing::warn!(task = %task.id, grace = ?self.grace, "the task ran past the grace period: left for another worker");
            let connection = presence::connect(&self.client, Duration::from_secs(1));
            let (keys, consumer) = (&self.keys, &self.consumer);
            let released = connection.map(|mut connection| {
                release(&mut connection, keys, consumer, &task.id, self.claim_idle)
            });
            if !matches!(released, Some(Ok(()))) {
                // It is taken over after `claim_idle` all the same.
                tracing::warn!(?released, "cannot release the task");
            }
        } else {
            tracing::warn!(grace = ?self.grace, "still not stopped after the grace period");
        }
        std::process::exit(GRACE_EXIT_CODE);
    }
}
