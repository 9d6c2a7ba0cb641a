//! What an executor counts: [`RedisStats`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What an executor has sent and received through Redis.
///
/// # Example
/// ```no_run
/// # let url = "redis://127.0.0.1:6379";
/// # let worker = serfn::redis::RedisWorker::new(url);
/// # std::thread::spawn(move || worker.run());
/// let fleet = serfn::redis::RedisExecutor::builder(url).chunk_size(10).build()?;
/// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
/// assert_eq!(fleet.map(&square, 0..100).count(), 100);
/// let stats = fleet.stats();
/// assert_eq!((stats.tasks, stats.items, stats.duplicates, stats.forged), (10, 100, 0, 0));
/// # Ok::<(), serfn::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// Tasks (chunks of items) sent.
    pub tasks: u64,
    /// Items sent.
    pub items: u64,
    /// Bytes of tasks written to Redis.
    pub bytes_sent: u64,
    /// Bytes of results read from Redis.
    pub bytes_received: u64,
    /// Functions stored (once per map, content-addressed).
    pub functions_stored: u64,
    /// Bytes of functions stored.
    pub function_bytes: u64,
    /// Results ignored: a second answer to a task already answered.
    pub duplicates: u64,
    /// Results ignored: unsigned or altered, with a key set.
    pub forged: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    tasks: AtomicU64,
    items: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    functions_stored: AtomicU64,
    function_bytes: AtomicU64,
    duplicates: AtomicU64,
    forged: AtomicU64,
    /// Serializes snapshots with nothing else: counters are independent.
    _snapshot: Mutex<()>,
}

impl Counters {
    pub(crate) fn sent(&self, items: u32, bytes: usize) {
        self.tasks.fetch_add(1, Ordering::Relaxed);
        self.items.fetch_add(u64::from(items), Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn received(&self, bytes: usize) {
        self.bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn stored(&self, bytes: usize) {
        self.functions_stored.fetch_add(1, Ordering::Relaxed);
        self.function_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn forged(&self) {
        self.forged.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> RedisStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RedisStats {
            tasks: get(&self.tasks),
            items: get(&self.items),
            bytes_sent: get(&self.bytes_sent),
            bytes_received: get(&self.bytes_received),
            functions_stored: get(&self.functions_stored),
            function_bytes: get(&self.function_bytes),
            duplicates: get(&self.duplicates),
            forged: get(&self.forged),
        }
    }
}
