//! The worker side of a [`Pool`](crate::Pool): a process that decodes
//! functions, calls them and sends the results back.
//!
//! A pool starts its workers by re-executing a program (by default the
//! current one) with a few `SERFN_WORKER_*` environment variables set. The
//! program turns into a worker when it calls [`init`], which must come first
//! in `main`, before anything that parses arguments or has side effects:
//!
//! ```no_run
//! serfn::worker::init(); // first in `main`: a worker never returns from here
//! // ... the program itself, which may start a `serfn::Pool`
//! ```
//!
//! **Everything before `init()` runs again in every worker.**
//! [`#[serfn::main]`](crate::main) on `fn main` puts the call first, and
//! `init()` warns once when it sees that other threads run already.
//!
//! In `cargo test` binaries, where libtest owns `main`, put
//! [`serfn::test_support!()`](crate::test_support) at the top level of the
//! test crate instead: the pool then starts the test binary filtered to the
//! one test that macro defines, which calls [`init`].
//!
//! A worker exits when the pool's end of its socket closes: when the pool is
//! dropped, and when the parent process dies, even while a function runs.

use std::sync::atomic::{AtomicBool, Ordering};

pub use crate::pool::serve::{is_worker, TEST_ENTRY};
use crate::pool::serve::{serve_and_exit, ENV_SOCKET};

/// Turns this process into a worker if a pool started it; returns at once otherwise.
///
/// Call it first in `main`. In a process started by a pool it serves that
/// pool until the pool goes away, then exits the process: it never returns.
/// Failures are printed to stderr (which the pool's process shares) and end
/// the process with exit code 101, which the pool reports as
/// [`Error::WorkerDied`](crate::Error::WorkerDied) or [`Error::WorkerStart`](crate::Error::WorkerStart).
///
/// # Warning
/// Everything before `init()` runs again in every worker. Where that is
/// cheap and reliable to see, `init()` says so once on stderr when it
/// returns (in the program, not in its workers): on Linux, when other
/// threads are already running (counted in `/proc/self/task`), since a
/// thread started before `init()` is started again by every worker. Time
/// since the process started and output already written were considered and
/// left out: a slow start on a loaded machine is not a mistake, and what was
/// written to a terminal or a pipe cannot be seen from inside the process.
/// [`#[serfn::main]`](crate::main) puts `init()` first, and a test binary's
/// [`test_support!`](crate::test_support) entry, which libtest runs on a
/// thread of its own, does not warn.
///
/// # Example
/// ```no_run
/// fn main() -> serfn::Result<()> {
///     serfn::worker::init(); // a worker serves here and exits; the program goes on
///     let pool = serfn::Pool::builder().workers(1).build()?;
///     let pid = serfn::closure!("pid", [], move || -> u32 { std::process::id() });
///     assert_ne!(pool.call(&pid, ())?, std::process::id()); // it ran in the worker
///     Ok(())
/// }
/// ```
pub fn init() {
    let Some(socket) = std::env::var_os(ENV_SOCKET) else {
        warn_if_late();
        return;
    };
    serve_and_exit(socket);
}

/// [`init`] for the entry that [`test_support!`](crate::test_support)
/// defines: libtest has started its threads by then, so no warning.
#[doc(hidden)]
pub fn init_test_entry() {
    if let Some(socket) = std::env::var_os(ENV_SOCKET) {
        serve_and_exit(socket);
    }
}

/// The warning of [`init`] when other threads run already; once.
fn warn_if_late() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if let Some(threads) = other_threads() {
        if threads > 0 && !WARNED.swap(true, Ordering::SeqCst) {
            eprintln!("{}", late_warning(threads));
        }
    }
}

fn late_warning(threads: usize) -> String {
    format!(
        "serfn: worker::init() was called while {threads} other thread(s) were running. \
         Everything before worker::init() runs again in every worker: call it first in main, \
         or put #[serfn::main] on main"
    )
}

/// The threads of this process besides the caller's, where that can be
/// counted reliably.
fn other_threads() -> Option<usize> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    Some(tasks.count().saturating_sub(1))
}

/// Serves a Redis fleet from this process until it is stopped: the tasks
/// that [`RedisExecutor`](crate::redis::RedisExecutor)s send through the
/// server at `url`, with the defaults. [`RedisWorker`](crate::redis::RedisWorker)
/// sets a key, a prefix and the rest.
///
/// SIGTERM or SIGINT is a warm shutdown
/// ([`RedisWorker::stop_on_signals`](crate::redis::RedisWorker::stop_on_signals)):
/// no new task is taken, the running one finishes and is published within
/// the 30 s grace period, and this returns `Ok` (exit code 0 from `main`).
/// Past the grace period, or on a second signal, the process exits with
/// [`GRACE_EXIT_CODE`](crate::redis::GRACE_EXIT_CODE) and the task is left
/// for another worker.
///
/// # Errors
/// [`Error::Broker`](crate::Error::Broker) if the URL is invalid.
///
/// # Example
/// ```no_run
/// fn main() -> serfn::Result<()> {
///     serfn::worker::redis("redis://127.0.0.1:6379") // until SIGTERM, then Ok
/// }
/// ```
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub fn redis(url: &str) -> crate::Result<()> {
    crate::redis::RedisWorker::new(url).stop_on_signals().run()
}
