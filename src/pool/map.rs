//! [`Map`] and [`MapUnordered`]: streaming maps over a pool, in chunks.

use std::collections::VecDeque;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::answer::ChunkResults;
use crate::error::Result;

pub(crate) use self::block::items_block;
pub(crate) use self::feed::Feed;
use self::inbox::ANY;

/// Items in one automatic chunk of a stream, at most: encoding or decoding
/// a chunk happens in a poll, and should hold the polling thread for about
/// a millisecond, not the tens a 100,000-item chunk takes in a debug build.
#[cfg(feature = "async")]
pub(crate) const STREAM_CHUNK: usize = 8192;
/// Encoding a stream does in one poll, once it has sent a chunk, before it
/// lets results through.
#[cfg(feature = "async")]
pub(crate) const STREAM_FILL: std::time::Duration = std::time::Duration::from_millis(1);

mod block;
mod feed;
mod inbox;
mod settings;

pub(crate) use block::SpareBlocks;

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

/// The results of [`Pool::map`](crate::Pool::map), in input order. Lazy: nothing is sent
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
    R: DeserializeOwned + Send + 'static,
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
    R: DeserializeOwned + Send + 'static,
    I: Iterator<Item = A>,
{
    type Item = Result<R>;

    #[inline]
    fn next(&mut self) -> Option<Result<R>> {
        // The hot path, an item of the current run, stays small: with the
        // refill inlined, each call paid ~40 instructions of prologue.
        match self.ready.next_in_run() {
            Some(result) => Some(Ok(result)),
            None => self.next_slow(),
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
    R: DeserializeOwned + Send + 'static,
    I: Iterator<Item = A>,
{
    /// [`next`](Iterator::next) past the current run: a panic's error, or
    /// the next chunk's first result.
    #[inline(never)]
    fn next_slow(&mut self) -> Option<Result<R>> {
        match self.ready.next() {
            Some(result) => Some(result),
            None => blocking(self.next_chunk(None)),
        }
    }

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
            let Some((seq, _, results)) =
                std::task::ready!(self.feed.recv(self.next_seq, cx.as_deref_mut()))
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

/// The results of [`Pool::map_unordered`](crate::Pool::map_unordered): `(input index, result)` pairs,
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
    /// The chunk being handed out, as in [`Map`], and the input index of
    /// its next result.
    ready: ChunkResults<R>,
    index: usize,
}

impl<'p, A, R, I> MapUnordered<'p, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned + Send + 'static,
    I: Iterator<Item = A>,
{
    pub(crate) fn new(feed: Feed<'p, A, R, I>) -> Self {
        MapUnordered {
            feed,
            ready: ChunkResults::empty(),
            index: 0,
        }
    }
}

impl<A, R, I> Iterator for MapUnordered<'_, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned + Send + 'static,
    I: Iterator<Item = A>,
{
    type Item = (usize, Result<R>);

    #[inline]
    fn next(&mut self) -> Option<(usize, Result<R>)> {
        // As in `Map::next`: the hot path alone inline.
        match self.ready.next_in_run() {
            Some(result) => Some((self.take_index(), Ok(result))),
            None => self.next_slow(),
        }
    }
}

impl<A, R, I> MapUnordered<'_, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned + Send + 'static,
    I: Iterator<Item = A>,
{
    /// The input index of the result handed out now.
    #[inline(always)]
    fn take_index(&mut self) -> usize {
        let index = self.index;
        self.index += 1;
        index
    }

    #[inline(never)]
    fn next_slow(&mut self) -> Option<(usize, Result<R>)> {
        blocking(self.poll_next_pair(None))
    }

    /// The next `(index, result)`; blocks without `cx`.
    pub(crate) fn poll_next_pair(
        &mut self,
        mut cx: Option<&mut Context<'_>>,
    ) -> Poll<Option<(usize, Result<R>)>> {
        loop {
            if let Some(result) = self.ready.next() {
                return Poll::Ready(Some((self.take_index(), result)));
            }
            if let Some(error) = self.feed.setup_error.take() {
                return Poll::Ready(Some((0, Err(error))));
            }
            self.feed.fill();
            let Some((_, start, results)) =
                std::task::ready!(self.feed.recv(ANY, cx.as_deref_mut()))
            else {
                return Poll::Ready(None);
            };
            self.ready = results;
            self.index = start;
        }
    }
}
