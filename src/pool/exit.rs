//! [`WorkerExit`]: how a worker process ended, as [`Pool::join`](super::Pool::join)
//! and [`Pool::terminate`](super::Pool::terminate) report it.

use std::process::ExitStatus;

/// How the last worker process of one pool slot ended.
///
/// A worker that was idle when the pool closed exits by itself with status 0
/// ([`is_clean`](Self::is_clean)); one still running a function when it had
/// to stop ([`Pool::terminate`](super::Pool::terminate), or a worker that
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
