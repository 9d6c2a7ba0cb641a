//! [`Stats`]: what a pool has done, for tests and monitoring.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of a [`Pool`](crate::Pool) since it started.
///
/// `functions_shipped` counts functions sent to workers: a map ships its
/// function (with its capture) to each worker once, not once per item.
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
            functions_shipped: get(&self.functions_shipped),
            restarts: get(&self.restarts),
            retries: get(&self.retries),
            recycled: get(&self.recycled),
        }
    }
}
