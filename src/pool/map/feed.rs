//! The sending half of a map: takes items, sends chunks, receives answers.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::super::answer::ChunkResults;
use super::super::entry::FnEntry;
use super::super::job::{Job, Payload, Reply, Work};
use super::super::singles::{Singles, MAX_GROUP};
use super::super::Pool;
use super::block::{items_block_into, one_item_block};
use super::inbox::{Answered, Inbox};
use super::{Progress, CHUNK_NS, ITEMS_AHEAD, MAX_CHUNK, MAX_CHUNK_BYTES};
#[cfg(feature = "async")]
use super::{STREAM_CHUNK, STREAM_FILL};
use crate::error::{Error, Result};

/// Chunks sent and not yet answered (first item index and item count), by
/// sequence number: a window from the oldest unanswered one, as numbers are
/// given in order. O(1) a chunk, where a `BTreeMap` took a fifth of the
/// parent's instructions per item at one item per message.
#[derive(Default)]
struct InFlight {
    first: u64,
    slots: VecDeque<Option<(usize, u32)>>,
    len: usize,
}

impl InFlight {
    /// Adds chunk `seq`, the next number after those pushed before.
    fn push(&mut self, seq: u64, chunk: (usize, u32)) {
        debug_assert_eq!(seq, self.first + self.slots.len() as u64);
        self.slots.push_back(Some(chunk));
        self.len += 1;
    }

    fn remove(&mut self, seq: u64) -> Option<(usize, u32)> {
        let at = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        let chunk = self.slots.get_mut(at)?.take()?;
        self.len -= 1;
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.first += 1;
        }
        Some(chunk)
    }
}

/// The sending half of a map: takes items, sends chunks, receives answers.
pub(crate) struct Feed<'p, A, R, I> {
    pub(super) pool: &'p Pool,
    function: Option<Arc<FnEntry>>,
    pub(super) setup_error: Option<Error>,
    items: std::iter::Fuse<I>,
    /// Items taken but held back from a chunk they did not fit.
    held: VecDeque<A>,
    inbox: Arc<Inbox<R>>,
    /// Answers taken from `inbox`, not yet handed out.
    arrived: VecDeque<Answered<R>>,
    /// Chunks in flight: first item index and item count, by sequence number.
    in_flight: InFlight,
    /// Jobs being queued by `fill`: kept, so that its allocation is reused.
    jobs: Vec<Job>,
    /// Where items are encoded: a small block is copied inline from it.
    block: Vec<u8>,
    /// The last block's length: a new block is made that large at once,
    /// not grown by doubling.
    block_hint: usize,
    pub(super) in_flight_items: usize,
    next_seq: u64,
    next_index: usize,
    pub(super) chunk_size: Option<usize>,
    /// Each chunk's own timeout, instead of the pool's.
    pub(super) timeout: Option<Duration>,
    pub(super) total: Option<usize>,
    pub(super) done: usize,
    pub(super) progress: Option<Box<dyn FnMut(Progress) + Send + 'p>>,
    /// Items in an automatic chunk, at most.
    pub(super) max_chunk: usize,
    /// How long one `fill` may encode, once it has sent a chunk (a stream's).
    pub(super) fill_for: Option<Duration>,
    types: PhantomData<fn(A) -> R>,
}

impl<'p, A, R, I> Feed<'p, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned + Send + 'static,
    I: Iterator<Item = A>,
{
    pub(crate) fn new(pool: &'p Pool, function: Result<Arc<FnEntry>>, items: I) -> Self {
        let total = match items.size_hint() {
            (low, Some(high)) if low == high => Some(low),
            _ => None,
        };
        let batched = function.as_ref().is_ok_and(|f| f.batches);
        let inbox = Inbox::new(
            pool.shared.config.limits,
            batched,
            Arc::clone(&pool.shared.spare_blocks),
        );
        let (function, setup_error) = match function {
            Ok(function) => (Some(function), None),
            Err(error) => (None, Some(error)),
        };
        Feed {
            pool,
            function,
            setup_error,
            items: items.fuse(),
            held: VecDeque::new(),
            inbox,
            arrived: VecDeque::new(),
            in_flight: InFlight::default(),
            jobs: Vec::new(),
            block: Vec::new(),
            block_hint: 0,
            in_flight_items: 0,
            next_seq: 0,
            next_index: 0,
            chunk_size: pool.shared.config.chunk_size,
            timeout: None,
            total,
            done: 0,
            progress: None,
            max_chunk: MAX_CHUNK,
            fill_for: None,
            types: PhantomData,
        }
    }

    fn next_chunk_size(&self, function: &FnEntry) -> usize {
        let config = &self.pool.shared.config;
        if let Some(size) = self.chunk_size {
            return size;
        }
        // An async chunk's items run at once, each with its own timeout:
        // a chunk is what a worker overlaps, shared fairly among workers.
        if function.is_async {
            let fair = self.total.map_or(usize::MAX, |total| {
                total.div_ceil(self.pool.workers()).max(1)
            });
            return config.max_concurrent.min(fair).clamp(1, MAX_CHUNK);
        }
        if config.timeout.is_some() || self.timeout.is_some() {
            return 1;
        }
        self.timed_size(function)
    }

    /// Items that take a worker about [`CHUNK_NS`], at most a quarter of a
    /// worker's share of the input. One while items are not timed, so that
    /// slow items are not bunched before their cost is known; the first
    /// answers time them.
    fn timed_size(&self, function: &FnEntry) -> usize {
        let by_time = match function.ns_per_item() {
            0 => 1,
            ns => usize::try_from(CHUNK_NS / ns).unwrap_or(self.max_chunk),
        };
        let by_balance = self.total.map_or(self.max_chunk, |total| {
            total.div_ceil(4 * self.pool.workers()).max(1)
        });
        by_time.min(by_balance).clamp(1, self.max_chunk)
    }

    /// [`next_chunk_size`](Self::next_chunk_size), made small enough for
    /// the chunk's answer to stay well within the limits.
    fn fitting_chunk_size(&self, function: &FnEntry) -> usize {
        let mut size = self.next_chunk_size(function);
        // A chunk larger than a worker's share would never be sent.
        if let Some(max) = self.pool.shared.config.max_tasks {
            size = size.min(usize::try_from(max).unwrap_or(usize::MAX));
        }
        let limit = self.pool.shared.config.limits.get_max_bytes() as u64;
        match function.answer_bytes() {
            0 => size,
            bytes => size.min(
                usize::try_from(limit / 2 / bytes)
                    .unwrap_or(usize::MAX)
                    .max(1),
            ),
        }
    }

    /// Items sent one per message that go in one job
    /// ([`singles`](super::super::singles)): as many as an automatic chunk
    /// would hold ([`timed_size`](Self::timed_size)), up to [`MAX_GROUP`] and
    /// a worker's [`max_tasks`](crate::PoolBuilder::max_tasks_per_worker).
    /// Async and fold functions send their items a job each, as before.
    fn group_size(&self, function: &FnEntry) -> usize {
        if function.is_async || function.mutable {
            return 1;
        }
        let by_recycling = self
            .pool
            .shared
            .config
            .max_tasks
            .map_or(MAX_GROUP, |max| usize::try_from(max).unwrap_or(MAX_GROUP));
        self.timed_size(function)
            .min(by_recycling)
            .clamp(1, MAX_GROUP)
    }

    /// A job of up to `group` items, each encoded as a block of one and
    /// sent as its own task; `None` once the input is out. An item that cannot
    /// be encoded ends the group, and is answered with its error on its own.
    fn group_job(&mut self, function: &Arc<FnEntry>, group: usize, limit: usize) -> Option<Job> {
        let grouped = self.timeout.is_none() && self.pool.shared.config.timeout.is_none();
        let mut singles =
            Singles::new(Arc::clone(function), group, self.block_hint, grouped, limit);
        let mut failed = None;
        let seq = function.batches;
        while (singles.len() as usize) < group && singles.bytes() < MAX_CHUNK_BYTES {
            let Some(item) = self.held.pop_front().or_else(|| self.items.next()) else {
                break;
            };
            if let Err(error) = singles.push_with(|out| one_item_block(&item, seq, limit, out)) {
                failed = Some(error);
                break;
            }
        }
        self.block_hint = singles.bytes();
        let count = singles.len();
        let job = (count > 0).then(|| {
            let seq = self.next_chunk(count);
            let mut job = Job::new(
                Work::Singles(Box::new(singles)),
                Reply::Chunk {
                    inbox: Arc::clone(&self.inbox) as _,
                    seq,
                },
            );
            job.timeout = self.timeout;
            job
        });
        if let Some(error) = failed {
            let seq = self.next_chunk(1);
            self.arrived
                .push_back((seq, ChunkResults::failed(error, 1)));
        }
        job
    }

    /// Numbers the next chunk, of `count` items, and counts it in flight.
    fn next_chunk(&mut self, count: u32) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight.push(seq, (self.next_index, count));
        self.next_index += count as usize;
        self.in_flight_items += count as usize;
        seq
    }

    /// Whether another chunk may be made: 2 per worker and 2 more in
    /// flight, or fewer than [`ITEMS_AHEAD`] items a worker; 4 groups per
    /// worker and 2 more. At 2 per worker, groups of fast items were
    /// refilled at half the room, about half a millisecond of a worker's
    /// work, which took the map's thread about as long to frame (each item
    /// a frame): workers waited for the next group (alternated at one item
    /// per message, 300,000 `f64`s: ahead in 7 runs of 8, medians 18.2 →
    /// 20.0M tasks/s). Chunks, whose items are copied in one pass, did not
    /// gain from it (the chunked row, 5 alternated runs: 91.1 → 88.6M).
    fn has_room(&self, groups: bool) -> bool {
        let workers = self.pool.workers();
        let per_worker = if groups { 4 } else { 2 };
        self.in_flight.len < per_worker * workers + 2
            || self.in_flight_items < ITEMS_AHEAD * workers
    }

    /// Whether the chunks in flight are down to half of the room: refilled
    /// only then, in one push of many jobs, so that a slot is not woken for
    /// each item, nor the queue locked for each.
    fn is_low(&self) -> bool {
        let workers = self.pool.workers();
        self.in_flight.len < workers + 1 || self.in_flight_items <= ITEMS_AHEAD * workers / 2
    }

    /// Sends chunks while there is room and input, once in flight is low.
    pub(super) fn fill(&mut self) {
        let Some(function) = self.function.clone() else {
            return;
        };
        if !self.is_low() {
            return;
        }
        let mut jobs = std::mem::take(&mut self.jobs);
        let started = self.fill_for.map(|_| std::time::Instant::now());
        // Sized once a fill: the estimates it reads move only as answers come.
        let size = self.fitting_chunk_size(&function);
        let group = match size {
            1 => self.group_size(&function),
            _ => 1,
        };
        let limit = self.pool.shared.config.limits.get_max_bytes();
        while self.has_room(group > 1) {
            if let (Some(started), Some(fill_for)) = (started, self.fill_for) {
                if !jobs.is_empty() && started.elapsed() >= fill_for {
                    break;
                }
            }
            // While a worker may have nothing to run (a map's start), each
            // job goes at once: the workers start while the rest is encoded.
            if !jobs.is_empty() && self.in_flight.len <= self.pool.workers() {
                self.pool.shared.queue.push(jobs.drain(..));
            }
            if group > 1 {
                match self.group_job(&function, group, limit) {
                    Some(job) => {
                        jobs.push(job);
                        continue;
                    }
                    None => break,
                }
            }
            if self.block.capacity() == 0 {
                // The last chunk's block was sent off: an answered one's memory.
                self.block = self.pool.shared.spare_blocks.take().unwrap_or_default();
            }
            self.block.clear();
            self.block.reserve(self.block_hint);
            let encoded = items_block_into(
                &mut self.items,
                &mut self.held,
                size,
                MAX_CHUNK_BYTES.min(limit),
                limit,
                function.batches,
                &mut self.block,
            );
            self.block_hint = self.block.len();
            let count = match &encoded {
                Ok(0) => break,
                Ok(count) => *count,
                // The one item that could not be sent gets the error.
                Err(_) => 1,
            };
            let seq = self.next_chunk(count);
            match encoded {
                Ok(count) => {
                    let mut job = Job::new(
                        Work::Batch {
                            function: Arc::clone(&function),
                            items: Payload::take(&mut self.block),
                            count,
                        },
                        Reply::Chunk {
                            inbox: Arc::clone(&self.inbox) as _,
                            seq,
                        },
                    );
                    job.timeout = self.timeout;
                    jobs.push(job);
                }
                Err(error) => {
                    self.arrived
                        .push_back((seq, ChunkResults::failed(error, count)));
                    break;
                }
            }
        }
        if !jobs.is_empty() {
            self.pool.shared.queue.push(jobs.drain(..));
        }
        self.jobs = jobs;
    }

    /// The next chunk answered: its sequence number, first index and
    /// results. Blocks without `cx` until chunk `awaited` is answered
    /// ([`ANY`](super::inbox::ANY): any); with `cx`, is `Pending` until an
    /// answer comes, and wakes `cx`'s task then.
    pub(super) fn recv(
        &mut self,
        awaited: u64,
        cx: Option<&mut Context<'_>>,
    ) -> Poll<Option<(u64, usize, ChunkResults<R>)>> {
        if self.in_flight.len == 0 {
            return Poll::Ready(None);
        }
        if self.arrived.is_empty() {
            match cx {
                None => self.inbox.recv_all(awaited, &mut self.arrived),
                Some(cx) => std::task::ready!(self.inbox.poll_recv_all(&mut self.arrived, cx)),
            }
        }
        Poll::Ready(self.take_arrived())
    }

    fn take_arrived(&mut self) -> Option<(u64, usize, ChunkResults<R>)> {
        let (seq, results) = self.arrived.pop_front()?;
        let (start, count) = self.in_flight.remove(seq)?;
        self.in_flight_items -= count as usize;
        self.done += count as usize;
        if let Some(progress) = &mut self.progress {
            progress(Progress {
                done: self.done,
                total: self.total,
            });
        }
        Some((seq, start, results))
    }
}

#[cfg(feature = "async")]
impl<A, R, I> Feed<'_, A, R, I> {
    /// Smaller steps for a stream: see [`STREAM_CHUNK`] and [`STREAM_FILL`].
    pub(super) fn polled(&mut self) {
        self.max_chunk = STREAM_CHUNK;
        self.fill_for = Some(STREAM_FILL);
    }
}

impl<A, R, I> Drop for Feed<'_, A, R, I> {
    /// Chunks queued and not yet in a worker are dropped, never run.
    fn drop(&mut self) {
        self.inbox.close();
    }
}
