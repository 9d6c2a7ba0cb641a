//! [`Task`]: one submitted call, waited on or awaited.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::answer::{decode_one, Decode};
use super::job::TaskCell;
use crate::codec::Limits;
use crate::error::{Error, Result};
use crate::sync::lock;

/// A call submitted to a [`Pool`](crate::Pool): [`wait`](Task::wait) for
/// its result, or `.await` it on any executor (no runtime is required).
///
/// Dropping a `Task` does not cancel it; its result is discarded.
/// [`cancel`](Task::cancel) does.
///
/// # Example
/// ```no_run
/// # fn main() -> serfn::Result<()> {
/// serfn::worker::init();
/// let pool = serfn::Pool::new()?;
/// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
/// let task = pool.submit(&square, 12);
/// assert_eq!(task.wait()?, 144);
/// # Ok(()) }
/// ```
#[must_use = "a task's result is only seen through wait() or .await"]
pub struct Task<R> {
    cell: Arc<TaskCell>,
    decode: Decode<R>,
    limits: Limits,
    types: PhantomData<fn() -> R>,
}

impl<R> Task<R> {
    pub(crate) fn new(cell: Arc<TaskCell>, decode: Decode<R>, limits: Limits) -> Self {
        Task {
            cell,
            decode,
            limits,
            types: PhantomData,
        }
    }

    /// A task that failed before it was sent.
    pub(crate) fn failed(error: Error) -> Self
    where
        R: DeserializeOwned + 'static,
    {
        let cell = TaskCell::new();
        cell.complete(Err(error));
        Task::new(cell, decode_one, Limits::default())
    }

    /// Cancels the task: if no worker has started it, it never runs; if one
    /// is running it, that worker is killed, as for a timeout, and replaced
    /// (killing is the one way to stop a function mid-call), and the other
    /// tasks it was sent go to other workers untouched. A task already
    /// finished is left as it was. Says which of these happened.
    ///
    /// A task already sent to a worker, behind the one it runs, counts as
    /// started: the worker reads ahead, so it may start the task before the
    /// pool hears it finished the one before. That worker is killed when it
    /// gets there, which stops a long task but does not promise that a short
    /// one never ran. A worker is sent at most a couple of tasks ahead, so
    /// with more tasks than workers most of them wait in the pool's queue.
    ///
    /// A fleet's task (`RedisExecutor::submit`) is cancelled through its
    /// job: if no worker had read it, none runs it ([`Cancelled::NotStarted`]);
    /// if one had, it is not stopped ([`Cancelled::Running`]); if it was
    /// answered, [`Cancelled::Finished`].
    ///
    /// # Example
    /// ```no_run
    /// use serfn::pool::Cancelled;
    ///
    /// serfn::worker::init();
    /// let pool = serfn::Pool::builder().workers(1).build()?;
    /// let nap = serfn::closure!("nap", [], move |ms: u64| -> u64 {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms));
    ///     ms
    /// });
    /// let long = pool.submit(&nap, 60_000);
    /// let tasks: Vec<_> = (0..10).map(|_| pool.submit(&nap, 10)).collect();
    /// std::thread::sleep(std::time::Duration::from_millis(100));
    /// assert_eq!(long.cancel(), Cancelled::Stopped); // its worker was killed
    /// assert_eq!(tasks.into_iter().last().unwrap().cancel(), Cancelled::NotStarted);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn cancel(self) -> Cancelled {
        let running = {
            let mut state = lock(&self.cell.state);
            if state.result.is_some() {
                return Cancelled::Finished;
            }
            state.cancelled = true;
            state.running.take()
        };
        // Not yet in a worker: the slot that takes it drops it.
        let Some((runner, task)) = running else {
            return Cancelled::NotStarted;
        };
        let runner = runner.upgrade();
        if let Some(exactly) = runner.as_ref().and_then(|r| r.cancel_exactly(task)) {
            return exactly;
        }
        if runner.is_some_and(|runner| runner.cancel(task)) {
            return Cancelled::Stopped;
        }
        // Answered, or its worker died, in the meantime.
        if self.is_finished() {
            Cancelled::Finished
        } else {
            Cancelled::Stopped
        }
    }

    /// Whether the result is in: [`wait`](Self::wait) would not block.
    ///
    /// # Example
    /// ```no_run
    /// # serfn::worker::init();
    /// # let pool = serfn::Pool::new()?;
    /// let nap = serfn::closure!("nap", [], move |ms: u64| -> u64 {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms));
    ///     ms
    /// });
    /// let task = pool.submit(&nap, 200);
    /// assert!(!task.is_finished());
    /// std::thread::sleep(std::time::Duration::from_secs(2));
    /// assert!(task.is_finished());
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn is_finished(&self) -> bool {
        lock(&self.cell.state).result.is_some()
    }

    /// Blocks until the result is in.
    ///
    /// # Errors
    /// [`Error::Panicked`] if the function panicked; [`Error::WorkerDied`],
    /// [`Error::Timeout`], [`Error::UnknownFunction`] and the other errors
    /// of [`Pool::call`](crate::Pool::call).
    ///
    /// # Example
    /// ```no_run
    /// # serfn::worker::init();
    /// # let pool = serfn::Pool::new()?;
    /// let nap = serfn::closure!("nap", [], move |ms: u64| -> u64 {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms));
    ///     ms
    /// });
    /// let (a, b) = (pool.submit(&nap, 100), pool.submit(&nap, 100)); // both run at once
    /// assert_eq!(a.wait()? + b.wait()?, 200);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn wait(self) -> Result<R> {
        let mut state = lock(&self.cell.state);
        loop {
            if let Some(result) = state.result.take() {
                return result.and_then(|bytes| (self.decode)(bytes, &self.limits));
            }
            state = self
                .cell
                .done
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Blocks until the result is in or `timeout` passes; gives the task back then.
    ///
    /// The task keeps running after a timeout here: for a deadline that
    /// kills the worker, build the pool with [`timeout`](crate::PoolBuilder::timeout)
    /// or submit with [`submit_timeout`](crate::Pool::submit_timeout); to
    /// stop it now, [`cancel`](Self::cancel) it.
    ///
    /// # Errors
    /// As [`wait`](Self::wait), inside the `Ok`.
    ///
    /// # Example
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # serfn::worker::init();
    /// # let pool = serfn::Pool::new()?;
    /// let nap = serfn::closure!("nap", [], move |ms: u64| -> u64 {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms));
    ///     ms
    /// });
    /// let task = pool.submit(&nap, 1_000);
    /// // Not yet: the task comes back, still running.
    /// let task = task.wait_timeout(Duration::from_millis(10)).unwrap_err();
    /// assert!(matches!(task.wait_timeout(Duration::from_secs(30)), Ok(Ok(1_000))));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn wait_timeout(self, timeout: Duration) -> std::result::Result<Result<R>, Self> {
        let state = lock(&self.cell.state);
        let (state, _) = self
            .cell
            .done
            .wait_timeout_while(state, timeout, |state| state.result.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        if state.result.is_none() {
            drop(state);
            return Err(self);
        }
        drop(state);
        Ok(self.wait())
    }
}

/// What [`Task::cancel`] did.
///
/// # Example
/// ```no_run
/// use serfn::pool::Cancelled;
///
/// serfn::worker::init();
/// let pool = serfn::Pool::new()?;
/// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
/// let task = pool.submit(&square, 3);
/// match task.cancel() {
///     Cancelled::NotStarted => println!("it never runs"),
///     Cancelled::Stopped => println!("its worker was killed"),
///     Cancelled::Finished => println!("too late: it had run"),
///     _ => {}
/// }
/// # Ok::<(), serfn::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cancelled {
    /// No worker had started it: it never runs.
    NotStarted,
    /// A worker had it: the worker was killed (and is replaced).
    Stopped,
    /// Its result was already in, and is dropped.
    Finished,
    /// A worker of a fleet had taken it, or the broker could not be
    /// reached: it may run to its end (a fleet does not kill its workers);
    /// its result is dropped.
    Running,
}

impl<R> Future for Task<R> {
    type Output = Result<R>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<R>> {
        let mut state = lock(&self.cell.state);
        match state.result.take() {
            Some(result) => {
                drop(state);
                Poll::Ready(result.and_then(|bytes| (self.decode)(bytes, &self.limits)))
            }
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<R> std::fmt::Debug for Task<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("finished", &self.is_finished())
            .finish()
    }
}
