//! [`Stats`]: what a pool has done, for tests and monitoring.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of a [`Pool`](crate::Pool) since it started.
///
/// `functions_shipped` counts functions sent to workers: a map ships its
/// function (with its capture) to each worker once, not once per item.
///
/// # Example
/// ```no_run
/// serfn::worker::init();
/// let pool = serfn::Pool::builder().workers(2).build()?;
/// let weights = vec![0.5; 10_000];
/// let score = serfn::closure!("score", [weights: Vec<f64>], move |x: f64| -> f64 { weights[0] * x });
/// let total: f64 = pool.map(&score, (0..1_000).map(f64::from)).sum::<serfn::Result<f64>>()?;
/// assert_eq!(total, 249_750.0);
/// let stats = pool.stats();
/// assert_eq!((stats.workers, stats.tasks, stats.restarts), (2, 1_000, 0));
/// assert!(stats.functions_shipped <= 2); // the 80 kB capture: once per worker
/// # Ok::<(), serfn::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Worker slots.
    pub workers: usize,
    /// Items run to completion (a panic counts; a dead worker's item does not).
    pub tasks: u64,
    /// Bytes written to the workers' sockets.
    pub bytes_sent: u64,
    /// Bytes read from the workers' sockets.
    pub bytes_received: u64,
    /// Bytes of functions that workers mapped from shared memory instead
    /// of reading them from their sockets (Linux, functions of 1 MiB or
    /// more): each worker's mapping counts, the bytes are written once.
    pub bytes_shared: u64,
    /// Functions sent to a worker (each send of one function to one worker counts once).
    pub functions_shipped: u64,
    /// Workers started to replace one that died or was killed.
    pub restarts: u64,
    /// Tasks sent again after their worker died (see [`retries`](crate::PoolBuilder::retries)).
    pub retries: u64,
    /// Workers started to replace one that ran its
    /// [`max_tasks_per_worker`](crate::PoolBuilder::max_tasks_per_worker).
    pub recycled: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) tasks: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) bytes_shared: AtomicU64,
    pub(crate) functions_shipped: AtomicU64,
    pub(crate) restarts: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) recycled: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self, workers: usize) -> Stats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            workers,
            tasks: get(&self.tasks),
            bytes_sent: get(&self.bytes_sent),
            bytes_received: get(&self.bytes_received),
            bytes_shared: get(&self.bytes_shared),
            functions_shipped: get(&self.functions_shipped),
            restarts: get(&self.restarts),
            retries: get(&self.retries),
            recycled: get(&self.recycled),
        }
    }
}
