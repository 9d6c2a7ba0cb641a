//! [`MapStream`] and [`MapUnorderedStream`]: a pool's maps for async code,
//! as [`Stream`]s (feature `async`).
//!
//! The same [`Map`] and [`MapUnordered`] underneath, polled instead of
//! blocked on: an answer wakes the task that polls. No runtime is needed.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::map::{Map, MapUnordered};
use super::{MapFn, MapItems, Pool, Task};
use crate::error::Result;

/// Results a stream yields in a row before it lets its task's runtime run
/// others (as tokio's own resources do, with the same budget): results
/// often come faster than they are used, and a stream that is always ready
/// would hold a single-threaded runtime for the whole map.
const BUDGET: u32 = 128;

/// Counts results yielded in a row, and says when to yield to the runtime.
#[derive(Debug)]
pub(crate) struct Budget(u32);

impl Budget {
    pub(crate) fn new() -> Self {
        Budget(BUDGET)
    }

    /// `Pending`, with the task woken at once, when the budget is spent.
    pub(crate) fn poll_spend(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            self.0 = BUDGET;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.0 -= 1;
        Poll::Ready(())
    }

    pub(crate) fn refill(&mut self) {
        self.0 = BUDGET;
    }
}

/// The results of [`Pool::map_stream`](super::Pool::map_stream), in input
/// order, as a [`Stream`]. Dropped, it stops the map as a dropped [`Map`]
/// does: the chunks no worker has yet never run.
///
/// # Example
/// ```no_run
/// use std::future::poll_fn;
/// use std::pin::Pin;
/// use futures_core::Stream;
///
/// # async fn run() -> serfn::Result<()> {
/// let pool = serfn::Pool::new()?;
/// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
/// let mut squares = pool.map_stream(&square, 0..1_000);
/// let mut sum = 0;
/// // `StreamExt::next` of the `futures` crate, or the same by hand:
/// while let Some(result) = poll_fn(|cx| Pin::new(&mut squares).poll_next(cx)).await {
///     sum += result?;
/// }
/// assert_eq!(sum, (0..1_000u64).map(|x| x * x).sum::<u64>());
/// # Ok(()) }
/// ```
#[must_use = "a stream does nothing until it is polled"]
pub struct MapStream<'p, A, R, I> {
    map: Map<'p, A, R, I>,
    budget: Budget,
}

impl<'p, A, R, I> MapStream<'p, A, R, I> {
    pub(crate) fn new(map: Map<'p, A, R, I>) -> Self {
        MapStream {
            map: map.polled(),
            budget: Budget::new(),
        }
    }
}

// Sound for any `I`: nothing here is ever pinned, the stream is polled
// through `&mut` to its fields.
impl<A, R, I> Unpin for MapStream<'_, A, R, I> {}

impl<A, R, I> Stream for MapStream<'_, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned + Send + 'static,
    I: Iterator<Item = A>,
{
    type Item = Result<R>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<R>>> {
        let this = self.get_mut();
        std::task::ready!(this.budget.poll_spend(cx));
        let next = this.map.poll_next_result(cx);
        if next.is_pending() {
            this.budget.refill();
        }
        next
    }
}

/// The `(index, result)`s of
/// [`Pool::map_unordered_stream`](super::Pool::map_unordered_stream), as
/// chunks finish, as a [`Stream`]. Dropped, it stops the map as a dropped
/// [`MapUnordered`] does.
///
/// # Example
/// ```no_run
/// use std::future::poll_fn;
/// use std::pin::Pin;
/// use futures_core::Stream;
///
/// # async fn run() -> serfn::Result<()> {
/// let pool = serfn::Pool::new()?;
/// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
/// let mut squares = vec![0; 100];
/// let mut stream = pool.map_unordered_stream(&square, 0..100);
/// while let Some((index, result)) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
///     squares[index] = result?;
/// }
/// assert_eq!(squares[7], 49);
/// # Ok(()) }
/// ```
#[must_use = "a stream does nothing until it is polled"]
pub struct MapUnorderedStream<'p, A, R, I> {
    map: MapUnordered<'p, A, R, I>,
    budget: Budget,
}

impl<'p, A, R, I> MapUnorderedStream<'p, A, R, I> {
    pub(crate) fn new(map: MapUnordered<'p, A, R, I>) -> Self {
        MapUnorderedStream {
            map: map.polled(),
            budget: Budget::new(),
        }
    }
}

// As for `MapStream`: never pinned inside.
impl<A, R, I> Unpin for MapUnorderedStream<'_, A, R, I> {}

impl<A, R, I> Stream for MapUnorderedStream<'_, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned + Send + 'static,
    I: Iterator<Item = A>,
{
    type Item = (usize, Result<R>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        std::task::ready!(this.budget.poll_spend(cx));
        let next = this.map.poll_next_pair(Some(cx));
        if next.is_pending() {
            this.budget.refill();
        }
        next
    }
}

impl<'p, A, R, I> Map<'p, A, R, I> {
    /// This map as a [`Stream`], for async code, with the settings given
    /// to it (chunk size, timeout, progress).
    ///
    /// # Example
    /// ```no_run
    /// use futures_core::Stream;
    ///
    /// # async fn run() -> serfn::Result<()> {
    /// let pool = serfn::Pool::new()?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// let squares = pool.map(&square, 0..1_000).chunk_size(100).into_stream();
    /// assert_eq!(squares.size_hint().0, 0);
    /// # Ok(()) }
    /// ```
    pub fn into_stream(self) -> MapStream<'p, A, R, I> {
        MapStream::new(self)
    }
}

impl<'p, A, R, I> MapUnordered<'p, A, R, I> {
    /// This map as a [`Stream`], for async code, with the settings given to it.
    ///
    /// # Example
    /// ```no_run
    /// use futures_core::Stream;
    ///
    /// # async fn run() -> serfn::Result<()> {
    /// let pool = serfn::Pool::new()?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// let squares = pool.map_unordered(&square, 0..1_000).chunk_size(100).into_stream();
    /// assert_eq!(squares.size_hint().0, 0);
    /// # Ok(()) }
    /// ```
    pub fn into_stream(self) -> MapUnorderedStream<'p, A, R, I> {
        MapUnorderedStream::new(self)
    }
}

impl Pool {
    /// [`map`](Pool::map) for async code: the results in input order, as a
    /// [`Stream`] that blocks no thread (an answer wakes the polling task;
    /// no runtime is needed). Each result is its own, with the same typed
    /// errors as `map`; dropping the stream stops the map, and the chunks
    /// no worker has yet never run. Settings: [`Map::into_stream`].
    ///
    /// # Example
    /// ```no_run
    /// use std::future::poll_fn;
    /// use std::pin::Pin;
    /// use futures_core::Stream;
    ///
    /// async fn total(pool: &serfn::Pool) -> serfn::Result<u64> {
    ///     let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    ///     let items: Vec<u64> = (0..10_000).collect();
    ///     let mut squares = pool.map_stream(&square, &items);
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
    ) -> MapStream<'_, I::Item, F::Output, I::IntoIter>
    where
        F: MapFn,
        I: MapItems<F::Arg, How>,
    {
        self.map(f, items).into_stream()
    }

    /// [`map_unordered`](Pool::map_unordered) for async code: `(index,
    /// result)` as chunks finish, as a [`Stream`]; see
    /// [`map_stream`](Self::map_stream).
    ///
    /// # Example
    /// ```no_run
    /// use std::future::poll_fn;
    /// use std::pin::Pin;
    /// use futures_core::Stream;
    ///
    /// async fn squares(pool: &serfn::Pool) -> serfn::Result<Vec<u64>> {
    ///     let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    ///     let mut squares = vec![0; 100];
    ///     let mut stream = pool.map_unordered_stream(&square, 0..100);
    ///     while let Some((index, square)) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
    ///         squares[index] = square?;
    ///     }
    ///     Ok(squares)
    /// }
    /// ```
    pub fn map_unordered_stream<F, I, How>(
        &self,
        f: &F,
        items: I,
    ) -> MapUnorderedStream<'_, I::Item, F::Output, I::IntoIter>
    where
        F: MapFn,
        I: MapItems<F::Arg, How>,
    {
        self.map_unordered(f, items).into_stream()
    }

    /// [`call`](Pool::call) for async code: `pool.call_async(&f, x).await`.
    /// The same [`Task`] as [`submit`](Pool::submit) gives: a future that
    /// the answer wakes, on any runtime.
    ///
    /// # Errors
    /// As [`call`](Pool::call), from the future.
    ///
    /// # Example
    /// ```no_run
    /// async fn hypotenuse(pool: &serfn::Pool) -> serfn::Result<f64> {
    ///     let norm = serfn::closure!("norm", [], move |v: (f64, f64)| -> f64 { v.0.hypot(v.1) });
    ///     pool.call_async(&norm, (3.0, 4.0)).await
    /// }
    /// ```
    pub fn call_async<F: MapFn>(&self, f: &F, args: F::Arg) -> Task<F::Output> {
        self.submit(f, args)
    }
}

impl<A, R, I> std::fmt::Debug for MapStream<'_, A, R, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapStream").finish_non_exhaustive()
    }
}

impl<A, R, I> std::fmt::Debug for MapUnorderedStream<'_, A, R, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapUnorderedStream").finish_non_exhaustive()
    }
}
