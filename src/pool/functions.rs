//! The pool's functions: each encoded once per call that names it, found
//! in a cache by its bytes, so that a worker that holds it is not sent it
//! again; a large one encoded straight into shared memory.

use std::sync::Arc;

use super::entry::{self, FnEntry};
#[cfg(target_os = "linux")]
use super::shm;
use super::{Pool, CACHED_FUNCTIONS};
use crate::error::{Error, Result};
#[cfg(target_os = "linux")]
use crate::event::event;
use crate::handle::DynFn;
use crate::signature::Kind;
use crate::sync::lock;

impl Pool {
    /// The shared entry for an encoded function: a cached one with the same
    /// bytes, so that workers that have it are not sent it again.
    pub(super) fn function(&self, f: DynFn) -> Result<Arc<FnEntry>> {
        let batches = f.batches();
        let is_async = f.signature().kind() == Kind::Async;
        let last = self.last_size(f.name());
        #[cfg(target_os = "linux")]
        if let Some(entry) = self.shared_function(&f, last, batches, is_async)? {
            return Ok(entry);
        }
        // Sized as its last encoding: growing from 64 bytes took a fifth of
        // a 100 MiB capture's encoding.
        let mut bytes = Vec::with_capacity(last.max(64));
        f.to_bytes_into(&mut bytes)?;
        self.intern(bytes, f.name(), false, batches, is_async)
    }

    /// [`function`](Self::function) for one of
    /// [`SHARED_FROM`](shm::SHARED_FROM) bytes or more: encoded straight
    /// into shared memory, never held in this process's memory (a 100 MiB
    /// capture's copy into fresh memory cost more than the rest of its
    /// encoding). A function is taken for that large when the last encoding
    /// of its name (`last` bytes) was, or, for a name not seen yet, when
    /// its capture counts past the threshold (counting stops there). `None`
    /// for a smaller function, and when shared memory fails: the caller
    /// encodes it then.
    #[cfg(target_os = "linux")]
    fn shared_function(
        &self,
        f: &DynFn,
        last: usize,
        batches: bool,
        is_async: bool,
    ) -> Result<Option<Arc<FnEntry>>> {
        let large = match last {
            0 => !f.capture_fits(shm::SHARED_FROM as u64)?,
            last => last >= shm::SHARED_FROM,
        };
        if !large {
            return Ok(None);
        }
        let (segment, written) =
            match shm::Segment::write_with(f.name(), |file| f.stream_bytes(file)) {
                Ok(made) => made,
                Err(_error) => {
                    event!(
                        debug,
                        function = f.name(),
                        "not written to shared memory ({_error}): encoded in memory"
                    );
                    return Ok(None);
                }
            };
        self.check_size(segment.len())?;
        let hash = entry::envelope_hash(written.len, written.crc);
        let mut cache = lock(&self.shared.functions);
        if let Some(entry) = take_cached(&mut cache, hash, |cached| cached.holds(&segment)) {
            return Ok(Some(entry));
        }
        let mut entry =
            FnEntry::shared(self.next_function_id(), f.name(), (segment, hash), batches);
        entry.is_async = is_async;
        let entry = Arc::new(entry);
        put_cached(&mut cache, &entry);
        Ok(Some(entry))
    }

    /// The size of the last cached encoding of function `name`, or 0.
    fn last_size(&self, name: &str) -> usize {
        let cache = lock(&self.shared.functions);
        cache
            .iter()
            .rev()
            .find(|f| f.name == name)
            .map_or(0, |f| f.len())
    }

    pub(super) fn intern(
        &self,
        bytes: Vec<u8>,
        name: &'static str,
        mutable: bool,
        batches: bool,
        is_async: bool,
    ) -> Result<Arc<FnEntry>> {
        self.check_size(bytes.len())?;
        let hash = entry::content_hash(&bytes);
        let make = |id, bytes| {
            let mut entry = FnEntry::new(id, name, (bytes, hash), mutable, batches);
            entry.is_async = is_async;
            entry
        };
        if mutable {
            return Ok(Arc::new(make(self.next_function_id(), bytes)));
        }
        let mut cache = lock(&self.shared.functions);
        if let Some(entry) = take_cached(&mut cache, hash, |cached| cached.bytes == bytes) {
            return Ok(entry);
        }
        let entry = Arc::new(make(self.next_function_id(), bytes));
        put_cached(&mut cache, &entry);
        Ok(entry)
    }

    /// Refuses a function the workers could not read: here, not by them.
    fn check_size(&self, len: usize) -> Result<()> {
        let limit = self.shared.config.limits.get_max_bytes();
        if len > limit {
            return Err(Error::TooLarge {
                len: len as u64,
                limit,
            });
        }
        Ok(())
    }

    fn next_function_id(&self) -> u64 {
        self.shared
            .next_function
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// The cached function of `hash` that is the `same`, moved to the back of
/// `cache` (the most recently used).
fn take_cached(
    cache: &mut Vec<Arc<FnEntry>>,
    hash: u64,
    same: impl Fn(&FnEntry) -> bool,
) -> Option<Arc<FnEntry>> {
    let at = cache.iter().position(|f| f.hash == hash && same(f))?;
    let entry = cache.remove(at);
    cache.push(Arc::clone(&entry));
    Some(entry)
}

/// Caches `entry`, forgetting the least recently used past [`CACHED_FUNCTIONS`].
fn put_cached(cache: &mut Vec<Arc<FnEntry>>, entry: &Arc<FnEntry>) {
    cache.push(Arc::clone(entry));
    if cache.len() > CACHED_FUNCTIONS {
        cache.remove(0);
    }
}
