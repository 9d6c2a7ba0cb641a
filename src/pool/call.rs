//! [`Pool`]'s one-call API: [`call`](Pool::call), [`submit`](Pool::submit),
//! their timeouts, and the [`SerFnOnce`] variants.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::job::{Job, Reply, TaskCell, Work};
use super::{answer, map, Pool, Task};
use crate::error::{Error, Result};
use crate::handle::SerFnOnce;
use crate::pool::MapFn;

impl Pool {
    /// Calls `f(args)` in a worker and waits for the result. `f` is a
    /// [`SerFn`](crate::SerFn) or an [`AsyncSerFn`](crate::AsyncSerFn)
    /// ([`MapFn`]), whose future the worker runs on its runtime (feature
    /// `tokio`) within the call's timeout, without being killed past it.
    ///
    /// # Errors
    /// [`Error::Panicked`] if `f` panicked; [`Error::WorkerDied`] or
    /// [`Error::Timeout`] if its worker died or was killed;
    /// [`Error::UnknownFunction`] and other decoding errors if the worker
    /// cannot decode `f`; [`Error::Encode`] if `f` or `args` cannot be encoded.
    ///
    /// # Example
    /// ```no_run
    /// # serfn::worker::init();
    /// # let pool = serfn::Pool::new()?;
    /// let add = serfn::closure!("add", [], move |x: i64, y: i64| -> i64 { x + y });
    /// assert_eq!(pool.call(&add, (40, 2))?, 42);
    ///
    /// let root = serfn::closure!("root", [], move |x: f64| -> f64 {
    ///     assert!(x >= 0.0, "no root of {x}");
    ///     x.sqrt()
    /// });
    /// // A panic fails the call, with its message; the worker lives on.
    /// assert!(matches!(pool.call(&root, -1.0), Err(serfn::Error::Panicked { .. })));
    /// assert_eq!(pool.call(&root, 9.0)?, 3.0);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn call<F: MapFn>(&self, f: &F, args: F::Arg) -> Result<F::Output> {
        self.submit(f, args).wait()
    }

    /// As [`call`](Self::call), with a timeout of its own instead of the
    /// pool's [`timeout`](super::PoolBuilder::timeout): past it, the worker is
    /// killed and replaced, and the call fails with [`Error::Timeout`].
    ///
    /// # Errors
    /// As [`call`](Self::call).
    ///
    /// # Example
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// serfn::worker::init();
    /// let pool = serfn::Pool::new()?;
    /// let nap = serfn::closure!("nap", [], move |ms: u64| -> u64 {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     ms
    /// });
    /// let late = pool.call_timeout(&nap, 60_000, Duration::from_millis(500));
    /// assert!(matches!(late, Err(serfn::Error::Timeout { .. })));
    /// assert_eq!(pool.call_timeout(&nap, 1, Duration::from_secs(30))?, 1);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn call_timeout<F: MapFn>(
        &self,
        f: &F,
        args: F::Arg,
        timeout: Duration,
    ) -> Result<F::Output> {
        self.submit_timeout(f, args, timeout).wait()
    }

    /// As [`submit`](Self::submit), with a timeout of its own: see
    /// [`call_timeout`](Self::call_timeout). It counts from when a worker
    /// starts the task, not from now.
    ///
    /// # Example
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// serfn::worker::init();
    /// let pool = serfn::Pool::new()?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// let task = pool.submit_timeout(&square, 3, Duration::from_secs(5));
    /// assert_eq!(task.wait()?, 9);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn submit_timeout<F: MapFn>(
        &self,
        f: &F,
        args: F::Arg,
        timeout: Duration,
    ) -> Task<F::Output> {
        self.submit_with(f, args, Some(timeout))
    }

    /// Sends `f(args)` to a worker; the [`Task`] gives the result.
    ///
    /// # Example
    /// ```no_run
    /// # serfn::worker::init();
    /// # let pool = serfn::Pool::new()?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// // Several tasks in flight at once, then their results.
    /// let tasks: Vec<_> = (1..=4).map(|x| pool.submit(&square, x)).collect();
    /// let squares = tasks.into_iter().map(|t| t.wait()).collect::<serfn::Result<Vec<u64>>>()?;
    /// assert_eq!(squares, [1, 4, 9, 16]);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn submit<F: MapFn>(&self, f: &F, args: F::Arg) -> Task<F::Output> {
        self.submit_with(f, args, None)
    }

    fn submit_with<F: MapFn>(
        &self,
        f: &F,
        args: F::Arg,
        timeout: Option<Duration>,
    ) -> Task<F::Output> {
        let sent = self.function(f.dyn_fn()).and_then(|function| {
            let once = std::iter::once(args);
            let batched = function.batches;
            let limit = self.shared.config.limits.get_max_bytes();
            let mut held = VecDeque::new();
            let items =
                map::items_block(&mut once.into_iter(), &mut held, 1, limit, limit, batched)?.0;
            let decode = if batched {
                answer::decode_one_batched::<F::Output>
            } else {
                answer::decode_one::<F::Output>
            };
            let work = Work::Batch {
                function,
                items: items.into(),
                count: 1,
            };
            Ok((work, decode))
        });
        self.submit_work(sent, timeout)
    }

    /// Calls a [`SerFnOnce`] in a worker, consuming it, and waits for the result.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    ///
    /// # Example
    /// ```no_run
    /// # serfn::worker::init();
    /// # let pool = serfn::Pool::new()?;
    /// let lines = vec!["a".to_string(), "b".to_string()];
    /// let report = serfn::closure!(once "report", [lines: Vec<String>], move |last: String| -> Vec<String> {
    ///     let mut lines = lines;
    ///     lines.push(last);
    ///     lines
    /// });
    /// assert_eq!(pool.call_once(report, "c".into())?, ["a", "b", "c"]);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn call_once<A, R>(&self, f: SerFnOnce<A, R>, args: A) -> Result<R>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.submit_once(f, args).wait()
    }

    /// Sends a [`SerFnOnce`] and its arguments to a worker. Such a function
    /// travels with its call, uncached: it is consumed there.
    ///
    /// # Example
    /// ```no_run
    /// # serfn::worker::init();
    /// # let pool = serfn::Pool::new()?;
    /// let words = vec!["serialized".to_string(), "closures".to_string()];
    /// let join = serfn::closure!(once "join", [words: Vec<String>], move |sep: String| -> String {
    ///     words.join(&sep)
    /// });
    /// let task = pool.submit_once(join, " ".into());
    /// assert_eq!(task.wait()?, "serialized closures");
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn submit_once<A, R>(&self, f: SerFnOnce<A, R>, args: A) -> Task<R>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let name = f.name();
        let limit = self.shared.config.limits.get_max_bytes();
        let sent = f.to_bytes().and_then(|function| {
            let mut held = VecDeque::new();
            let once = &mut std::iter::once(args);
            let items = map::items_block(once, &mut held, 1, limit, limit, false)?.0;
            // Both travel in one frame, which the worker reads whole.
            let len = function.len() + items.len();
            if len > limit {
                return Err(Error::TooLarge {
                    len: len as u64,
                    limit,
                });
            }
            let work = Work::Once {
                name,
                function,
                items,
            };
            Ok((work, answer::decode_one::<R> as answer::Decode<R>))
        });
        self.submit_work(sent, None)
    }

    fn submit_work<R>(
        &self,
        work: Result<(Work, answer::Decode<R>)>,
        timeout: Option<Duration>,
    ) -> Task<R>
    where
        R: DeserializeOwned + 'static,
    {
        match work {
            Ok((work, decode)) => {
                let cell = TaskCell::new();
                let mut job = Job::new(work, Reply::Task(Arc::clone(&cell)));
                job.timeout = timeout;
                self.shared.queue.push([job]);
                Task::new(cell, decode, self.shared.config.limits)
            }
            Err(error) => Task::failed(error),
        }
    }
}
