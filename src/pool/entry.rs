//! A function as a pool's workers receive it: its encoding, the id it is
//! loaded under, and what the pool has measured of it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use super::shm::Segment;
use crate::error::Error;
use crate::event::event;
use crate::sync::lock;

/// A function as the workers receive it: encoded once, shipped to each
/// worker at most once while the worker keeps it loaded.
pub(crate) struct FnEntry {
    pub(crate) id: u64,
    pub(crate) name: &'static str,
    /// The encoding; empty for one written straight into shared memory
    /// ([`FnEntry::shared`]), which `segment` holds.
    pub(crate) bytes: Vec<u8>,
    /// The encoding's length.
    len: usize,
    pub(crate) hash: u64,
    /// A fold's state: never shared with other maps, never evicted, and lost
    /// with the worker that holds it.
    pub(crate) mutable: bool,
    /// Runs chunks in one typed pass (`BATCH_SEQ`): a registered `Fn`, not a pipeline.
    pub(crate) batches: bool,
    /// An `Async` function: its chunks run concurrently (`ASYNC_BATCH`).
    pub(crate) is_async: bool,
    /// Worker time per item, measured: sizes chunks and worker windows (0: not yet known).
    ns_per_item: AtomicU64,
    /// Answer bytes per item, measured: keeps a chunk's answer within the limits (0: not yet known).
    answer_bytes: AtomicU64,
    /// Why this fold state is gone, once a worker holding it died.
    lost: Mutex<Option<Error>>,
    /// `bytes` in shared memory, made when a worker first needs them.
    segment: OnceLock<Option<Segment>>,
}

impl FnEntry {
    /// `hash`: [`content_hash`] of `bytes`, computed once by the caller.
    pub(crate) fn new(
        id: u64,
        name: &'static str,
        (bytes, hash): (Vec<u8>, u64),
        mutable: bool,
        batches: bool,
    ) -> Self {
        FnEntry {
            id,
            name,
            hash,
            len: bytes.len(),
            bytes,
            mutable,
            batches: batches && !mutable,
            is_async: false,
            ns_per_item: AtomicU64::new(0),
            answer_bytes: AtomicU64::new(0),
            lost: Mutex::new(None),
            segment: OnceLock::new(),
        }
    }

    /// A function whose encoding was written straight into `segment`
    /// (never held in memory: see `Pool::function`).
    pub(crate) fn shared(
        id: u64,
        name: &'static str,
        (segment, hash): (Segment, u64),
        batches: bool,
    ) -> Self {
        let mut entry = FnEntry::new(id, name, (Vec::new(), hash), false, batches);
        entry.len = segment.len();
        entry.segment = OnceLock::from(Some(segment));
        entry
    }

    /// The encoding's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether this function's encoding is the bytes `segment` holds.
    #[cfg(target_os = "linux")]
    pub(crate) fn holds(&self, segment: &Segment) -> bool {
        if self.len != segment.len() {
            return false;
        }
        let compared = if self.bytes.is_empty() {
            // Written to shared memory to begin with: it has its segment.
            self.segment()
                .map_or(Ok(false), |mine| mine.same_bytes(segment))
        } else {
            segment.with_bytes(|theirs| theirs == self.bytes)
        };
        compared.unwrap_or(false)
    }

    /// The function's bytes in a sealed memfd, for workers to map: made on
    /// first use, once for all workers, unless written there to begin
    /// with. `None` below [`SHARED_FROM`](super::shm::SHARED_FROM), off
    /// Linux, or when no memfd can be made (the socket carries the bytes then).
    pub(crate) fn segment(&self) -> Option<&Segment> {
        if let Some(made) = self.segment.get() {
            return made.as_ref();
        }
        if self.len < super::shm::SHARED_FROM {
            return None;
        }
        self.segment
            .get_or_init(|| {
                Segment::create(self.name, &self.bytes)
                    .map_err(|_error| {
                        event!(
                            debug,
                            function = self.name,
                            "no shared memory ({_error}): the socket carries it"
                        );
                    })
                    .ok()
            })
            .as_ref()
    }

    pub(crate) fn ns_per_item(&self) -> u64 {
        self.ns_per_item.load(Ordering::Relaxed)
    }

    pub(crate) fn answer_bytes(&self) -> u64 {
        self.answer_bytes.load(Ordering::Relaxed)
    }

    /// Folds one chunk's measurements into the running estimates.
    pub(crate) fn record(&self, elapsed_ns: u64, items: u32, answer_bytes: usize) {
        average(&self.ns_per_item, elapsed_ns, items);
        self.record_answer(answer_bytes as u64, items);
    }

    /// Folds in the size of an answer, also of one refused as too large.
    pub(crate) fn record_answer(&self, bytes: u64, items: u32) {
        // The largest seen: one answer too large is what must not recur.
        let sample = bytes / u64::from(items.max(1));
        self.answer_bytes.fetch_max(sample, Ordering::Relaxed);
    }

    pub(crate) fn mark_lost(&self, error: Error) {
        lock(&self.lost).get_or_insert(error);
    }

    pub(crate) fn lost(&self) -> Option<Error> {
        lock(&self.lost).as_ref().map(Error::duplicate)
    }
}

/// Moves a running per-item average a quarter of the way to a new sample.
fn average(estimate: &AtomicU64, total: u64, items: u32) {
    let sample = (total / u64::from(items.max(1))).max(1);
    let old = estimate.load(Ordering::Relaxed);
    let new = if old == 0 {
        sample
    } else {
        (old * 3 + sample) / 4
    };
    estimate.store(new.max(1), Ordering::Relaxed);
}

/// A key for the function cache, whose entries are compared byte for byte
/// once their keys match: the length and the last four bytes, which in an
/// envelope are the CRC-32 of all before them, so the key costs nothing.
/// FNV over the bytes, one at a time, took a third of the parent's time
/// for a 100 MiB capture (`perf record`).
pub(crate) fn content_hash(bytes: &[u8]) -> u64 {
    let mut tail = [0; 4];
    let last = &bytes[bytes.len().saturating_sub(4)..];
    tail[..last.len()].copy_from_slice(last);
    envelope_hash(bytes.len() as u64, u32::from_le_bytes(tail))
}

/// [`content_hash`] of an envelope of `len` bytes whose checksum (its last
/// 4 bytes) is `crc`: for one never held in memory.
pub(crate) fn envelope_hash(len: u64, crc: u32) -> u64 {
    len << 32 | u64::from(crc)
}
