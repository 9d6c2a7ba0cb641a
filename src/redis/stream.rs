//! [`RedisMapStream`] and [`RedisMapUnorderedStream`]: the fleet's maps for
//! async code (feature `async`).
//!
//! Reading Redis blocks (the `redis` crate's sync API), so the job's
//! connection lives on a thread of its own: the stream encodes items into
//! tasks where it is polled, hands them to that thread, and the thread
//! sends them and hands back the answers, waking the polling task. The
//! caller's thread never waits on Redis.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use futures_core::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::job::{job_id, Answer, Job, MAX_TASK_BYTES};
use super::{RedisExecutor, Shared};
use crate::codec::Limits;
use crate::error::{Error, Result};
use crate::handle::DynFn;
use crate::pool::answer::{decode_chunk, ChunkResults};
use crate::pool::map::items_block;
use crate::pool::map::{STREAM_CHUNK, STREAM_FILL};
use crate::pool::stream::Budget;
use crate::pool::{MapFn, MapItems};
use crate::sync::lock;

/// What the job's thread hands back.
enum Event {
    Answer(Answer),
    /// The broker failed: every task not yet answered fails with this.
    Failed(Error),
}

/// Between a stream and its job's thread.
struct Link {
    state: Mutex<LinkState>,
}

struct LinkState {
    events: VecDeque<Event>,
    waker: Option<Waker>,
    /// Items in a task, as the job sizes them from the answers' timings.
    chunk_size: usize,
}

impl Link {
    fn push(&self, events: impl IntoIterator<Item = Event>, chunk_size: usize) {
        let mut state = lock(&self.state);
        state.events.extend(events);
        state.chunk_size = chunk_size;
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The job's thread: sends the tasks it is given, reads answers while any
/// are owed; ends when the stream is dropped (its sender with it) or the
/// broker fails. Tasks already sent still run on the fleet.
fn serve(shared: Arc<Shared>, start: Start, tasks: Receiver<(Vec<u8>, u32)>, link: Arc<Link>) {
    let _unwinding = Unwinding(Arc::clone(&link));
    let failed = |error| link.push([Event::Failed(error)], 1);
    let job = start.and_then(|(envelope, name, seq)| {
        Job::start_encoded(&shared, envelope, name, seq, job_id())
    });
    let mut job = match job {
        Ok(job) => job,
        Err(error) => return failed(error),
    };
    loop {
        loop {
            let task = match job.waiting.is_empty() {
                true => tasks.recv().map_err(|_| TryRecvError::Disconnected),
                false => tasks.try_recv(),
            };
            match task {
                Ok((block, count)) => {
                    if let Err(error) = job.send(block, count) {
                        job.cancel();
                        return failed(error);
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    // The stream is done or dropped: with nothing owed its job
                    // is finished (its keys go); with tasks owed, workers skip
                    // them.
                    match job.waiting.is_empty() {
                        true => job.finish(),
                        false => job.cancel(),
                    }
                    return;
                }
            }
        }
        match job.receive() {
            Ok(answers) if answers.is_empty() => {}
            Ok(answers) => link.push(answers.into_iter().map(Event::Answer), job.chunk_size()),
            Err(error) => {
                // Answers read before the failure are still answers.
                let answered = std::mem::take(&mut job.answered);
                link.push(answered.into_iter().map(Event::Answer), job.chunk_size());
                job.cancel();
                return failed(error);
            }
        }
    }
}

/// Fails what the stream waits for if the job's thread panics, so that a
/// bug there is an error for the items left, not a stream pending forever.
struct Unwinding(Arc<Link>);

impl Drop for Unwinding {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let error = Error::Broker {
                reason: "the thread that talks to Redis for this map panicked".into(),
            };
            self.0.push([Event::Failed(error)], 1);
        }
    }
}

/// The function, encoded, its name and whether its tasks carry one codec sequence.
type Start = Result<(Vec<u8>, &'static str, bool)>;

/// The typed side of an async map: items become tasks where it is polled;
/// chunks of results come back by the index of their first item.
struct Core<'e, A, R, I> {
    shared: Arc<Shared>,
    start: Option<Start>,
    seq: bool,
    items: std::iter::Fuse<I>,
    held: VecDeque<A>,
    /// To the job's thread, once started.
    tasks: Option<Sender<(Vec<u8>, u32)>>,
    link: Arc<Link>,
    /// Tasks sent and not answered: their first item and count.
    waiting: BTreeMap<u64, u32>,
    next_item: u64,
    ready: VecDeque<(u64, ChunkResults<R>)>,
    failed: Option<Error>,
    limits: Limits,
    types: std::marker::PhantomData<&'e RedisExecutor>,
}

impl<'e, A, R, I> Core<'e, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned + 'static,
    I: Iterator<Item = A>,
{
    fn new(executor: &'e RedisExecutor, f: &DynFn, items: I) -> Self {
        let seq = f.batches();
        let shared = Arc::clone(executor.shared());
        Core {
            limits: shared.config.limits,
            shared,
            start: Some(f.to_bytes().map(|envelope| (envelope, f.name(), seq))),
            seq,
            items: items.fuse(),
            held: VecDeque::new(),
            tasks: None,
            link: Arc::new(Link {
                state: Mutex::new(LinkState {
                    events: VecDeque::new(),
                    waker: None,
                    chunk_size: 1,
                }),
            }),
            waiting: BTreeMap::new(),
            next_item: 0,
            ready: VecDeque::new(),
            failed: None,
            types: std::marker::PhantomData,
        }
    }

    /// Starts the job's thread, on the first poll (a map is lazy).
    fn start(&mut self) {
        let Some(start) = self.start.take() else {
            return;
        };
        let (sender, receiver) = mpsc::channel();
        let (shared, link) = (Arc::clone(&self.shared), Arc::clone(&self.link));
        let spawned = std::thread::Builder::new()
            .name("serfn-redis-stream".into())
            .spawn(move || serve(shared, start, receiver, link));
        match spawned {
            Ok(_) => self.tasks = Some(sender),
            Err(error) => {
                self.failed = Some(Error::Broker {
                    reason: format!("cannot start a thread: {error}"),
                })
            }
        }
    }

    /// Encodes and hands over tasks while there is room, or fails the
    /// input left once the broker failed.
    fn fill(&mut self) {
        if let Some(error) = &self.failed {
            // As the blocking map: each item left gets the broker's error.
            if let Some(_item) = self.held.pop_front().or_else(|| self.items.next()) {
                let failed = ChunkResults::failed(error.duplicate(), 1);
                self.ready.push_back((self.next_item, failed));
                self.next_item += 1;
            }
            return;
        }
        let Some(tasks) = &self.tasks else { return };
        let chunk = lock(&self.link.state).chunk_size.min(STREAM_CHUNK);
        let chunk = self.shared.config.chunk_size.unwrap_or(chunk);
        let limit = self.limits.get_max_bytes();
        let started = Instant::now();
        let mut sent = false;
        while self.waiting.len() < self.shared.config.in_flight {
            // Encoding happens in a poll: the rest waits for the next one.
            if sent && started.elapsed() >= STREAM_FILL {
                return;
            }
            let (items, held) = (&mut self.items, &mut self.held);
            let target = MAX_TASK_BYTES.min(limit);
            match items_block(items, held, chunk, target, limit, self.seq) {
                Ok((_, 0)) => return,
                Ok((block, count)) => {
                    // A thread gone has said why, as an event: the chunk fails then.
                    let _ = tasks.send((block, count));
                    sent = true;
                    self.waiting.insert(self.next_item, count);
                    self.next_item += u64::from(count);
                }
                Err(error) => {
                    // This item could not be encoded: it alone fails.
                    self.ready
                        .push_back((self.next_item, ChunkResults::failed(error, 1)));
                    self.next_item += 1;
                }
            }
        }
    }

    /// The next chunk of results, by the index of its first item.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<(u64, ChunkResults<R>)>> {
        self.start();
        loop {
            if let Some(chunk) = self.ready.pop_front() {
                return Poll::Ready(Some(chunk));
            }
            self.fill();
            if !self.ready.is_empty() {
                continue;
            }
            if self.waiting.is_empty() {
                // Every item answered: the job's thread finishes the job.
                self.tasks = None;
                return Poll::Ready(None);
            }
            let mut state = lock(&self.link.state);
            if state.events.is_empty() {
                state.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let events = std::mem::take(&mut state.events);
            drop(state);
            for event in events {
                self.accept(event);
            }
        }
    }

    fn accept(&mut self, event: Event) {
        match event {
            Event::Answer(answer) => {
                if self.waiting.remove(&answer.first).is_some() {
                    let results =
                        decode_chunk(answer.count, answer.output, &self.limits, answer.seq);
                    self.ready.push_back((answer.first, results));
                }
            }
            Event::Failed(error) => {
                for (first, count) in std::mem::take(&mut self.waiting) {
                    let failed = ChunkResults::failed(error.duplicate(), count);
                    self.ready.push_back((first, failed));
                }
                self.failed = Some(error);
            }
        }
    }
}

/// The results of [`RedisExecutor::map_stream`], in input order, as a
/// [`Stream`]. Dropped, it stops sending: the tasks the broker has still
/// run (as for a dropped [`RedisMap`](super::RedisMap)), their results
/// unread.
///
/// # Example
/// ```no_run
/// use std::future::poll_fn;
/// use std::pin::Pin;
/// use futures_core::Stream;
///
/// async fn squares(fleet: &serfn::redis::RedisExecutor) -> serfn::Result<Vec<u64>> {
///     let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
///     let mut stream = fleet.map_stream(&square, 0..100);
///     let mut squares = Vec::new();
///     while let Some(square) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
///         squares.push(square?);
///     }
///     Ok(squares)
/// }
/// ```
#[must_use = "a stream does nothing until it is polled"]
pub struct RedisMapStream<'e, A, R, I> {
    core: Core<'e, A, R, I>,
    /// Chunks ahead of the next index, by their first index.
    parked: BTreeMap<u64, ChunkResults<R>>,
    current: ChunkResults<R>,
    yielded: u64,
    budget: Budget,
}

/// The `(index, result)`s of [`RedisExecutor::map_unordered_stream`], as
/// they come, as a [`Stream`]. Dropped, it stops sending, as
/// [`RedisMapStream`] does.
///
/// # Example
/// ```no_run
/// use std::future::poll_fn;
/// use std::pin::Pin;
/// use futures_core::Stream;
///
/// async fn squares(fleet: &serfn::redis::RedisExecutor) -> serfn::Result<Vec<u64>> {
///     let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
///     let mut squares = vec![0; 100];
///     let mut stream = fleet.map_unordered_stream(&square, 0..100);
///     while let Some((index, square)) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
///         squares[index] = square?;
///     }
///     Ok(squares)
/// }
/// ```
#[must_use = "a stream does nothing until it is polled"]
pub struct RedisMapUnorderedStream<'e, A, R, I> {
    core: Core<'e, A, R, I>,
    current: Option<(u64, ChunkResults<R>)>,
    budget: Budget,
}

// Sound for any `I`: nothing here is ever pinned.
impl<A, R, I> Unpin for RedisMapStream<'_, A, R, I> {}
impl<A, R, I> Unpin for RedisMapUnorderedStream<'_, A, R, I> {}

impl<A, R, I> Stream for RedisMapStream<'_, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned + 'static,
    I: Iterator<Item = A>,
{
    type Item = Result<R>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<R>>> {
        let this = self.get_mut();
        std::task::ready!(this.budget.poll_spend(cx));
        loop {
            if let Some(result) = this.current.next() {
                this.yielded += 1;
                return Poll::Ready(Some(result));
            }
            if let Some(results) = this.parked.remove(&this.yielded) {
                this.current = results;
                continue;
            }
            match this.core.poll_chunk(cx) {
                Poll::Ready(Some((first, results))) => {
                    this.parked.insert(first, results);
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    this.budget.refill();
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<A, R, I> Stream for RedisMapUnorderedStream<'_, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned + 'static,
    I: Iterator<Item = A>,
{
    type Item = (usize, Result<R>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        std::task::ready!(this.budget.poll_spend(cx));
        loop {
            if let Some((at, results)) = &mut this.current {
                if let Some(result) = results.next() {
                    *at += 1;
                    return Poll::Ready(Some(((*at - 1) as usize, result)));
                }
                this.current = None;
            }
            match this.core.poll_chunk(cx) {
                Poll::Ready(Some(chunk)) => this.current = Some(chunk),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    this.budget.refill();
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<A, R, I> std::fmt::Debug for RedisMapStream<'_, A, R, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisMapStream")
            .field("yielded", &self.yielded)
            .finish_non_exhaustive()
    }
}

impl<A, R, I> std::fmt::Debug for RedisMapUnorderedStream<'_, A, R, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisMapUnorderedStream")
            .finish_non_exhaustive()
    }
}

impl RedisExecutor {
    /// [`map`](Self::map) for async code: the results in input order, as
    /// a [`Stream`]. The job's Redis connection lives on a thread of its
    /// own, so the polling thread never waits on Redis; an answer wakes the
    /// polling task (no runtime is needed). Same typed errors as `map`.
    /// Dropped, it stops sending; tasks the broker has still run.
    ///
    /// # Example
    /// ```no_run
    /// use std::future::poll_fn;
    /// use std::pin::Pin;
    /// use futures_core::Stream;
    ///
    /// async fn total(fleet: &serfn::redis::RedisExecutor) -> serfn::Result<u64> {
    ///     let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    ///     let items: Vec<u64> = (0..1_000).collect();
    ///     let mut squares = fleet.map_stream(&square, &items);
    ///     let mut sum = 0;
    ///     while let Some(square) = poll_fn(|cx| Pin::new(&mut squares).poll_next(cx)).await {
    ///         sum += square?;
    ///     }
    ///     Ok(sum)
    /// }
    /// ```
    pub fn map_stream<F, I, How>(
        &self,
        f: &F,
        items: I,
    ) -> RedisMapStream<'_, I::Item, F::Output, I::IntoIter>
    where
        F: MapFn,
        I: MapItems<F::Arg, How>,
    {
        RedisMapStream {
            core: Core::new(self, &f.dyn_fn(), items.into_items()),
            parked: BTreeMap::new(),
            current: ChunkResults::empty(),
            yielded: 0,
            budget: Budget::new(),
        }
    }

    /// [`map_unordered`](Self::map_unordered) for async code: `(index,
    /// result)` as they come, as a [`Stream`]; see [`map_stream`](Self::map_stream).
    ///
    /// # Example
    /// ```no_run
    /// use std::future::poll_fn;
    /// use std::pin::Pin;
    /// use futures_core::Stream;
    ///
    /// async fn count(fleet: &serfn::redis::RedisExecutor) -> usize {
    ///     let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    ///     let mut stream = fleet.map_unordered_stream(&square, 0..100);
    ///     let mut n = 0;
    ///     while poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await.is_some() {
    ///         n += 1;
    ///     }
    ///     n
    /// }
    /// ```
    pub fn map_unordered_stream<F, I, How>(
        &self,
        f: &F,
        items: I,
    ) -> RedisMapUnorderedStream<'_, I::Item, F::Output, I::IntoIter>
    where
        F: MapFn,
        I: MapItems<F::Arg, How>,
    {
        RedisMapUnorderedStream {
            core: Core::new(self, &f.dyn_fn(), items.into_items()),
            current: None,
            budget: Budget::new(),
        }
    }

    /// [`call`](Self::call) for async code: `fleet.call_async(&f, x).await`.
    /// The same [`Task`](crate::Task) as [`submit`](Self::submit) gives:
    /// the call waits for Redis on a thread of its own, and its answer
    /// wakes the future.
    ///
    /// # Errors
    /// As [`call`](Self::call), from the future.
    ///
    /// # Example
    /// ```no_run
    /// async fn twice(fleet: &serfn::redis::RedisExecutor) -> serfn::Result<u64> {
    ///     let double = serfn::closure!("double", [], move |x: u64| -> u64 { 2 * x });
    ///     fleet.call_async(&double, 21).await
    /// }
    /// ```
    pub fn call_async<F: MapFn>(&self, f: &F, args: F::Arg) -> crate::Task<F::Output> {
        self.submit(f, args)
    }
}
