//! How a pool ends: [`Pool::close`], [`Pool::join`], [`Pool::terminate`]
//! and `Drop`, and [`WorkerExit`], how each worker ended.

use std::process::ExitStatus;
use std::thread::JoinHandle;

use super::Pool;
#[cfg(doc)]
use super::PoolBuilder;
#[cfg(doc)]
use crate::error::Error;

/// How the last worker process of one pool slot ended.
///
/// A worker that was idle when the pool closed exits by itself with status 0
/// ([`is_clean`](Self::is_clean)); one still running a function when it had
/// to stop ([`Pool::terminate`](Pool::terminate), or a worker that
/// did not exit within its grace period) is killed.
///
/// # Example
/// ```no_run
/// serfn::worker::init();
/// let pool = serfn::Pool::builder().workers(2).build()?;
/// for exit in pool.join() {
///     assert!(exit.is_clean(), "worker {} ended with {:?}", exit.pid, exit.status);
/// }
/// # Ok::<(), serfn::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerExit {
    /// The pool slot the worker served, from 0.
    pub slot: usize,
    /// The worker's process id.
    pub pid: u32,
    /// Its exit status (with `std::os::unix::process::ExitStatusExt` for
    /// the signal), or `None` if it could not be waited for.
    pub status: Option<ExitStatus>,
}

impl WorkerExit {
    /// Whether the worker exited by itself with status 0.
    ///
    /// # Example
    /// ```no_run
    /// serfn::worker::init();
    /// let pool = serfn::Pool::new()?;
    /// assert!(pool.join().iter().all(serfn::WorkerExit::is_clean));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn is_clean(&self) -> bool {
        self.status.is_some_and(|status| status.success())
    }
}

impl Pool {
    /// Refuses new work: later calls, submits and maps fail with
    /// [`Error::PoolClosed`]. What was submitted before still runs; wait for
    /// it with [`join`](Self::join). Python's `Pool.close()`.
    ///
    /// # Example
    /// ```no_run
    /// serfn::worker::init();
    /// let pool = serfn::Pool::new()?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// let task = pool.submit(&square, 7);
    /// pool.close();
    /// assert!(matches!(pool.call(&square, 8), Err(serfn::Error::PoolClosed)));
    /// assert_eq!(task.wait()?, 49); // submitted before: it still runs
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn close(&self) {
        self.shared.queue.seal();
    }

    /// Closes the pool to new work ([`close`](Self::close)), waits until
    /// every task submitted before has finished, then lets the workers exit
    /// and reports how each slot's last worker ended. Python's
    /// `close(); join()`; dropping the pool instead stops it at once.
    ///
    /// A worker that dies meanwhile is replaced as usual, so that no
    /// queued task is lost; a task still running past the pool's
    /// [`timeout`](PoolBuilder::timeout), or its own, is killed as usual. A
    /// task that never returns and has no timeout keeps `join` waiting:
    /// [`terminate`](Self::terminate) does not wait.
    ///
    /// # Example
    /// ```no_run
    /// serfn::worker::init();
    /// let pool = serfn::Pool::builder().workers(2).build()?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// let tasks: Vec<_> = (0..10).map(|x| pool.submit(&square, x)).collect();
    /// let exits = pool.join();
    /// assert_eq!(exits.len(), 2);
    /// assert!(exits.iter().all(|exit| exit.is_clean()));
    /// assert!(tasks.into_iter().all(|task| task.is_finished()));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn join(mut self) -> Vec<WorkerExit> {
        self.shared.queue.seal();
        self.stop(true)
    }

    /// Stops the pool now, as dropping it does, and reports how the
    /// workers ended: idle ones exit by themselves, busy ones are killed,
    /// and every task not finished fails with [`Error::PoolClosed`].
    /// Python's `Pool.terminate()`.
    ///
    /// # Example
    /// ```no_run
    /// serfn::worker::init();
    /// let pool = serfn::Pool::builder().workers(1).build()?;
    /// let nap = serfn::closure!("nap", [], move |ms: u64| -> u64 {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms));
    ///     ms
    /// });
    /// let task = pool.submit(&nap, 60_000);
    /// std::thread::sleep(std::time::Duration::from_millis(200));
    /// let exits = pool.terminate();
    /// assert!(!exits[0].is_clean()); // it was killed
    /// assert!(matches!(task.wait(), Err(serfn::Error::PoolClosed)));
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn terminate(mut self) -> Vec<WorkerExit> {
        self.stop(false)
    }

    /// Joins the slot threads: at once with the queue closed, or with
    /// `drain`, once each slot has run what was queued.
    fn stop(&mut self, drain: bool) -> Vec<WorkerExit> {
        if !drain {
            self.shared.queue.close();
        }
        let exits: Vec<_> = self.slots.drain(..).map(JoinHandle::join).collect();
        self.shared.queue.close();
        exits
            .into_iter()
            .filter_map(|exit| exit.ok().flatten())
            .collect()
    }
}

impl Drop for Pool {
    /// Stops the workers: each exits when its socket closes, and is killed
    /// if it is still running a function. Jobs not finished fail with
    /// [`Error::PoolClosed`].
    fn drop(&mut self) {
        self.stop(false);
    }
}
