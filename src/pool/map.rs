//! [`Map`] and [`MapUnordered`]: streaming maps over a pool, in chunks.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::answer::{decode_chunk_bytes, ChunkResults};
use super::job::{ChunkAnswer, FnEntry, Inbox, Job, Payload, Reply, Work};
use super::protocol as proto;
use super::Pool;
use crate::codec;
use crate::error::{Error, Result};

/// Items in one automatic chunk of a stream, at most: encoding or decoding
/// a chunk happens in a poll, and should hold the polling thread for about
/// a millisecond, not the tens a 100,000-item chunk takes in a debug build.
#[cfg(feature = "async")]
pub(crate) const STREAM_CHUNK: usize = 8192;
/// Encoding a stream does in one poll, once it has sent a chunk, before it
/// lets results through.
#[cfg(feature = "async")]
pub(crate) const STREAM_FILL: std::time::Duration = std::time::Duration::from_millis(1);

mod settings;

/// Worker time a chunk should take, once items have been timed.
const CHUNK_NS: u64 = 2_000_000;
/// Items in one chunk, at most.
const MAX_CHUNK: usize = 100_000;
/// Encoded bytes in one chunk before it is closed.
const MAX_CHUNK_BYTES: usize = 4 << 20;
/// Items in flight per worker, below which more chunks are sent.
const ITEMS_AHEAD: usize = 1024;

/// How far a map has come, for [`Map::on_progress`].
///
/// # Example
/// ```no_run
/// # serfn::worker::init();
/// # let pool = serfn::Pool::new()?;
/// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
/// let mut reports = Vec::new();
/// let n = pool.map(&square, 0..1_000).chunk_size(100).on_progress(|p| reports.push(p)).count();
/// assert_eq!(n, 1_000);
/// assert_eq!(reports.len(), 10);
/// assert!(reports.iter().all(|p| p.total == Some(1_000)));
/// assert_eq!(reports.last().map(|p| p.done), Some(1_000));
/// # Ok::<(), serfn::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Items whose results are in.
    pub done: usize,
    /// Items in all, when the input's length is known.
    pub total: Option<usize>,
}

/// Encodes up to `max_items` items, from `held` first, then `items`; stops
/// past `target` bytes. With `seq`, as one codec sequence (for functions that
/// run batches in one typed pass), else as a protocol items block. Returns
/// the bytes and the item count.
///
/// A block never exceeds `limit` bytes (the workers' decode limit): an item
/// that does not fit ends the block and is held back for the next one.
///
/// # Errors
/// Only for the first item taken, which is then used up: [`Error::Encode`],
/// or [`Error::TooLarge`] if it alone exceeds `limit`.
pub(crate) fn items_block<A: Serialize>(
    items: &mut impl Iterator<Item = A>,
    held: &mut VecDeque<A>,
    max_items: usize,
    target: usize,
    limit: usize,
    seq: bool,
) -> Result<(Vec<u8>, u32)> {
    let mut block = Vec::new();
    let count = items_block_into(items, held, max_items, target, limit, seq, &mut block)?;
    Ok((block, count))
}

/// [`items_block`] into `block`, which must be empty: a map reuses one.
fn items_block_into<A: Serialize>(
    items: &mut impl Iterator<Item = A>,
    held: &mut VecDeque<A>,
    max_items: usize,
    target: usize,
    limit: usize,
    seq: bool,
    block: &mut Vec<u8>,
) -> Result<u32> {
    let mut next = || held.pop_front().or_else(|| items.next());
    let too_large = |len: usize| Error::TooLarge {
        len: len as u64,
        limit,
    };
    if seq && max_items == 1 {
        // One item (`call`, `submit`, `chunk_size(1)`): a sequence of one,
        // encoded in place, without a probe encode or a `Vec` of the item.
        let Some(item) = next() else {
            codec::encode_len_into(0, block)?;
            return Ok(0);
        };
        block.reserve(16);
        codec::encode_value_into(std::slice::from_ref(&item), block)?;
        if block.len() > limit {
            return Err(too_large(block.len()));
        }
        return Ok(1);
    }
    if seq {
        // One encode call for the chunk; the first item's size bounds its bytes.
        let Some(first) = next() else {
            codec::encode_value_into(&Vec::<A>::new(), block)?;
            return Ok(0);
        };
        let item_bytes = codec::encode_value(&first)?.len().max(1);
        let max_items = max_items.min(target / item_bytes).max(1);
        // Held items first, then the input in one `extend`: no per-item
        // check of `held` on the hot path.
        let mut chunk: Vec<A> = Vec::with_capacity(max_items.min(MAX_CHUNK));
        chunk.push(first);
        let from_held = held.len().min(max_items - 1);
        chunk.extend(held.drain(..from_held));
        chunk.extend(items.by_ref().take(max_items - chunk.len()));
        loop {
            block.clear();
            let encoded = codec::encode_value_into(&chunk, block);
            if encoded.is_ok() && block.len() <= limit {
                return Ok(chunk.len() as u32);
            }
            if chunk.len() == 1 {
                return Err(encoded.err().unwrap_or_else(|| too_large(block.len())));
            }
            // Halve until it fits, or until the item at fault is alone.
            for item in chunk.split_off(chunk.len() / 2).into_iter().rev() {
                held.push_front(item);
            }
        }
    }
    block.extend_from_slice(&[0; 4]);
    let mut count = 0u32;
    while (count as usize) < max_items {
        let Some(item) = next() else { break };
        let start = block.len();
        let put = proto::put_item(block, |block| codec::encode_value_into(&item, block));
        let len = block.len() - start - 4;
        if put.is_ok() && (block.len() <= limit || (count == 0 && len <= limit)) {
            count += 1;
            if block.len() >= target {
                break;
            }
            continue;
        }
        if count == 0 {
            return Err(put.err().unwrap_or_else(|| too_large(len)));
        }
        block.truncate(start);
        held.push_front(item);
        break;
    }
    block[..4].copy_from_slice(&count.to_le_bytes());
    Ok(count)
}

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
    pool: &'p Pool,
    function: Option<Arc<FnEntry>>,
    setup_error: Option<Error>,
    items: std::iter::Fuse<I>,
    /// Items taken but held back from a chunk they did not fit.
    held: VecDeque<A>,
    inbox: Arc<Inbox>,
    /// Answers taken from `inbox`, not yet decoded.
    arrived: VecDeque<ChunkAnswer>,
    /// Chunks in flight: first item index and item count, by sequence number.
    in_flight: InFlight,
    /// Jobs being queued by `fill`: kept, so that its allocation is reused.
    jobs: Vec<Job>,
    /// Where items are encoded: a small block is copied inline from it.
    block: Vec<u8>,
    in_flight_items: usize,
    next_seq: u64,
    next_index: usize,
    chunk_size: Option<usize>,
    /// Each chunk's own timeout, instead of the pool's.
    timeout: Option<Duration>,
    total: Option<usize>,
    done: usize,
    progress: Option<Box<dyn FnMut(Progress) + Send + 'p>>,
    /// Items in an automatic chunk, at most.
    max_chunk: usize,
    /// How long one `fill` may encode, once it has sent a chunk (a stream's).
    fill_for: Option<Duration>,
    types: PhantomData<fn(A) -> R>,
}

impl<'p, A, R, I> Feed<'p, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned,
    I: Iterator<Item = A>,
{
    pub(crate) fn new(pool: &'p Pool, function: Result<Arc<FnEntry>>, items: I) -> Self {
        let total = match items.size_hint() {
            (low, Some(high)) if low == high => Some(low),
            _ => None,
        };
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
            inbox: Inbox::new(),
            arrived: VecDeque::new(),
            in_flight: InFlight::default(),
            jobs: Vec::new(),
            block: Vec::new(),
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
        let by_time = match function.ns_per_item() {
            // Not timed yet: one item a chunk, so slow items are not bunched
            // before their cost is known; the first answers time them.
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

    fn has_room(&self) -> bool {
        let workers = self.pool.workers();
        self.in_flight.len < 2 * workers + 2 || self.in_flight_items < ITEMS_AHEAD * workers
    }

    /// Sends chunks while there is room and input.
    fn fill(&mut self) {
        let Some(function) = self.function.clone() else {
            return;
        };
        let mut jobs = std::mem::take(&mut self.jobs);
        let started = self.fill_for.map(|_| std::time::Instant::now());
        while self.has_room() {
            if let (Some(started), Some(limit)) = (started, self.fill_for) {
                if !jobs.is_empty() && started.elapsed() >= limit {
                    break;
                }
            }
            let size = self.fitting_chunk_size(&function);
            let limit = self.pool.shared.config.limits.get_max_bytes();
            self.block.clear();
            let encoded = items_block_into(
                &mut self.items,
                &mut self.held,
                size,
                MAX_CHUNK_BYTES.min(limit),
                limit,
                function.batches,
                &mut self.block,
            );
            let count = match &encoded {
                Ok(0) => break,
                Ok(count) => *count,
                // The one item that could not be sent gets the error.
                Err(_) => 1,
            };
            let seq = self.next_seq;
            self.next_seq += 1;
            self.in_flight.push(seq, (self.next_index, count));
            self.next_index += count as usize;
            self.in_flight_items += count as usize;
            match encoded {
                Ok(count) => {
                    let mut job = Job::new(
                        Work::Batch {
                            function: Arc::clone(&function),
                            items: Payload::take(&mut self.block),
                            count,
                        },
                        Reply::Chunk {
                            inbox: Arc::clone(&self.inbox),
                            seq,
                        },
                    );
                    job.timeout = self.timeout;
                    jobs.push(job);
                }
                Err(error) => {
                    self.arrived.push_back((seq, Err(error)));
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
    /// results. Blocks for it without `cx`; with `cx`, is `Pending` until
    /// it comes, and wakes `cx`'s task then.
    fn recv(
        &mut self,
        cx: Option<&mut Context<'_>>,
    ) -> Poll<Option<(u64, usize, ChunkResults<R>)>> {
        if self.in_flight.len == 0 {
            return Poll::Ready(None);
        }
        if self.arrived.is_empty() {
            match cx {
                None => self.inbox.recv_all(&mut self.arrived),
                Some(cx) => std::task::ready!(self.inbox.poll_recv_all(&mut self.arrived, cx)),
            }
        }
        Poll::Ready(self.take_arrived())
    }

    fn take_arrived(&mut self) -> Option<(u64, usize, ChunkResults<R>)> {
        let (seq, answer) = self.arrived.pop_front()?;
        let (start, count) = self.in_flight.remove(seq)?;
        self.in_flight_items -= count as usize;
        self.done += count as usize;
        if let Some(progress) = &mut self.progress {
            progress(Progress {
                done: self.done,
                total: self.total,
            });
        }
        let limits = &self.pool.shared.config.limits;
        let batched = self.function.as_ref().is_some_and(|f| f.batches);
        let results = match answer {
            Ok(payload) => decode_chunk_bytes(count, payload.as_slice(), limits, batched),
            Err(error) => ChunkResults::failed(error, count),
        };
        Some((seq, start, results))
    }
}

#[cfg(feature = "async")]
impl<A, R, I> Feed<'_, A, R, I> {
    /// Smaller steps for a stream: see [`STREAM_CHUNK`] and [`STREAM_FILL`].
    fn polled(&mut self) {
        self.max_chunk = STREAM_CHUNK;
        self.fill_for = Some(STREAM_FILL);
    }
}

#[cfg(feature = "async")]
impl<A, R, I> Map<'_, A, R, I> {
    /// This map, to be polled: smaller steps (see [`Feed::polled`]).
    pub(crate) fn polled(mut self) -> Self {
        self.feed.polled();
        self
    }
}

#[cfg(feature = "async")]
impl<A, R, I> MapUnordered<'_, A, R, I> {
    /// This map, to be polled: smaller steps (see [`Feed::polled`]).
    pub(crate) fn polled(mut self) -> Self {
        self.feed.polled();
        self
    }
}

impl<A, R, I> Drop for Feed<'_, A, R, I> {
    /// Chunks queued and not yet in a worker are dropped, never run.
    fn drop(&mut self) {
        self.inbox.close();
    }
}

/// The results of [`Pool::map`], in input order. Lazy: nothing is sent
/// until the first call to `next`. Dropped early, it stops taking input,
/// and the chunks it queued that no worker has yet are dropped, never run;
/// those a worker has (it is sent a couple ahead of the one it runs) still
/// run, and their results are discarded.
///
/// # Example
/// ```no_run
/// # serfn::worker::init();
/// # let pool = serfn::Pool::new()?;
/// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
/// // Streaming: stops taking input at the first result over 100.
/// let first_big = pool.map(&square, 0..).find(|r| r.as_ref().map_or(true, |&s| s > 100));
/// assert_eq!(first_big.transpose()?, Some(121));
/// # Ok::<(), serfn::Error>(())
/// ```
#[must_use = "a map does nothing until it is iterated"]
pub struct Map<'p, A, R, I> {
    feed: Feed<'p, A, R, I>,
    next_seq: u64,
    /// Chunks answered ahead of `next_seq`, by `seq - next_seq`: a
    /// window, where a `BTreeMap` cost 200 instructions an item at one
    /// item per message (two workers answer out of order half the time).
    parked: VecDeque<Option<ChunkResults<R>>>,
    ready: ChunkResults<R>,
}

impl<'p, A, R, I> Map<'p, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned,
    I: Iterator<Item = A>,
{
    pub(crate) fn new(feed: Feed<'p, A, R, I>) -> Self {
        Map {
            feed,
            next_seq: 0,
            parked: VecDeque::new(),
            ready: ChunkResults::empty(),
        }
    }
}

impl<A, R, I> Iterator for Map<'_, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned,
    I: Iterator<Item = A>,
{
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        // The hot path, an item of the current chunk, stays small: with the
        // refill inlined, each call paid ~40 instructions of prologue.
        match self.ready.next() {
            Some(result) => Some(result),
            None => blocking(self.next_chunk(None)),
        }
    }
}

/// The answer of a receive without a `Context`, which blocks until it has one.
fn blocking<T>(poll: Poll<Option<T>>) -> Option<T> {
    match poll {
        Poll::Ready(next) => next,
        Poll::Pending => unreachable!("a receive without a `Context` blocks"),
    }
}

impl<A, R, I> Map<'_, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned,
    I: Iterator<Item = A>,
{
    /// The next result, for async code: `Pending` until it is in.
    #[cfg(feature = "async")]
    pub(crate) fn poll_next_result(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<R>>> {
        match self.ready.next() {
            Some(result) => Poll::Ready(Some(result)),
            None => self.next_chunk(Some(cx)),
        }
    }

    /// Sends more, waits for the next chunk in order (blocking without
    /// `cx`), and yields its first result.
    #[inline(never)]
    fn next_chunk(&mut self, mut cx: Option<&mut Context<'_>>) -> Poll<Option<Result<R>>> {
        loop {
            if let Some(result) = self.ready.next() {
                return Poll::Ready(Some(result));
            }
            if let Some(error) = self.feed.setup_error.take() {
                return Poll::Ready(Some(Err(error)));
            }
            self.feed.fill();
            if let Some(Some(_)) = self.parked.front() {
                self.next_seq += 1;
                match self.parked.pop_front().flatten() {
                    Some(ready) => self.ready = ready,
                    None => return Poll::Ready(None),
                }
                continue;
            }
            let Some((seq, _, results)) = std::task::ready!(self.feed.recv(cx.as_deref_mut()))
            else {
                return Poll::Ready(None);
            };
            if seq == self.next_seq {
                // In order, as most are: no trip through `parked`.
                self.next_seq += 1;
                self.parked.pop_front();
                self.ready = results;
                continue;
            }
            // Sequence numbers in flight are below `next_seq` plus the window.
            let Some(at) = seq
                .checked_sub(self.next_seq)
                .and_then(|at| usize::try_from(at).ok())
            else {
                return Poll::Ready(None);
            };
            if self.parked.len() <= at {
                self.parked.resize_with(at + 1, || None);
            }
            self.parked[at] = Some(results);
        }
    }
}

/// The results of [`Pool::map_unordered`]: `(input index, result)` pairs,
/// as chunks finish.
///
/// # Example
/// ```no_run
/// # serfn::worker::init();
/// # let pool = serfn::Pool::new()?;
/// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
/// let mut squares = vec![0; 100];
/// for (index, result) in pool.map_unordered(&square, 0..100) {
///     squares[index] = result?;
/// }
/// assert_eq!(squares[7], 49);
/// # Ok::<(), serfn::Error>(())
/// ```
#[must_use = "a map does nothing until it is iterated"]
pub struct MapUnordered<'p, A, R, I> {
    feed: Feed<'p, A, R, I>,
    ready: VecDeque<(usize, Result<R>)>,
}

impl<'p, A, R, I> MapUnordered<'p, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned,
    I: Iterator<Item = A>,
{
    pub(crate) fn new(feed: Feed<'p, A, R, I>) -> Self {
        MapUnordered {
            feed,
            ready: VecDeque::new(),
        }
    }
}

impl<A, R, I> Iterator for MapUnordered<'_, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned,
    I: Iterator<Item = A>,
{
    type Item = (usize, Result<R>);

    fn next(&mut self) -> Option<(usize, Result<R>)> {
        blocking(self.poll_next_pair(None))
    }
}

impl<A, R, I> MapUnordered<'_, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned,
    I: Iterator<Item = A>,
{
    /// The next `(index, result)`; blocks without `cx`.
    pub(crate) fn poll_next_pair(
        &mut self,
        mut cx: Option<&mut Context<'_>>,
    ) -> Poll<Option<(usize, Result<R>)>> {
        loop {
            if let Some(pair) = self.ready.pop_front() {
                return Poll::Ready(Some(pair));
            }
            if let Some(error) = self.feed.setup_error.take() {
                return Poll::Ready(Some((0, Err(error))));
            }
            self.feed.fill();
            let Some((_, start, results)) = std::task::ready!(self.feed.recv(cx.as_deref_mut()))
            else {
                return Poll::Ready(None);
            };
            self.ready.extend((start..).zip(results));
        }
    }
}
