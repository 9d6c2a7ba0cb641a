//! [`Executor`]: what a [`Pool`](crate::Pool) on one machine and a
//! [`RedisExecutor`](crate::redis::RedisExecutor) over many share, so that
//! the code that maps, calls and submits is the same on both.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Result;
use crate::handle::{SerFnMut, SerFnOnce};
use crate::pool::{MapFn, MapItems, Pool, Task};

/// Runs serialized functions somewhere else: in local worker processes
/// ([`Pool`]) or on a fleet of workers behind a broker
/// ([`RedisExecutor`], feature `redis`): see [where does it
/// run](crate#where-does-it-run).
///
/// Both have the same methods as their own, with the same bounds, so that
/// code written against one runs on the other; this trait is for code
/// generic over the two. Items are given by value or by reference
/// ([`MapItems`]). With the `async` feature, `call_async`, `map_stream` and
/// `map_unordered_stream` are the forms for async code: nothing of theirs
/// blocks the caller's thread.
///
/// Errors are the same typed [`Error`](crate::Error)s on both: a panic is
/// [`Error::Panicked`](crate::Error::Panicked) for its item, a function the
/// workers do not register is [`Error::UnknownFunction`](crate::Error::UnknownFunction),
/// and so on.
///
/// # Example
/// ```no_run
/// use serfn::{Executor, SerFn};
///
/// /// The same code for one machine or many.
/// fn losses(executor: &impl Executor, loss: &SerFn<f64, f64>) -> serfn::Result<Vec<f64>> {
///     let points: Vec<f64> = (0..100).map(f64::from).collect();
///     executor.map(loss, &points).collect() // borrowed items, or owned ones
/// }
///
/// serfn::worker::init();
/// let square = serfn::closure!("docs::square", [], move |x: f64| -> f64 { x * x });
/// let pool = serfn::Pool::new()?;
/// assert_eq!(losses(&pool, &square)?[3], 9.0);
/// # Ok::<(), serfn::Error>(())
/// ```
#[cfg_attr(
    feature = "redis",
    doc = "[`RedisExecutor`]: crate::redis::RedisExecutor"
)]
#[cfg_attr(
    not(feature = "redis"),
    doc = "[`RedisExecutor`]: https://docs.rs/serfn/latest/serfn/redis/struct.RedisExecutor.html"
)]
pub trait Executor {
    /// Calls `f(args)` on a worker and waits for the result. `f` is a
    /// [`SerFn`](crate::SerFn) or an [`AsyncSerFn`](crate::AsyncSerFn), as
    /// for [`map`](Self::map) ([`MapFn`]).
    ///
    /// # Errors
    /// [`Error::Panicked`](crate::Error::Panicked) if `f` panicked, and the
    /// executor's own faults (a dead worker, a timeout, a lost broker).
    ///
    /// # Example
    /// ```no_run
    /// use serfn::Executor;
    ///
    /// fn norm(on: &impl Executor, v: Vec<f64>) -> serfn::Result<f64> {
    ///     let norm = serfn::closure!("norm", [], move |v: Vec<f64>| -> f64 { v.iter().map(|x| x * x).sum::<f64>().sqrt() });
    ///     on.call(&norm, v)
    /// }
    ///
    /// serfn::worker::init();
    /// assert_eq!(norm(&serfn::Pool::new()?, vec![3.0, 4.0])?, 5.0);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    fn call<F: MapFn>(&self, f: &F, args: F::Arg) -> Result<F::Output> {
        self.submit(f, args).wait()
    }

    /// Sends `f(args)` to a worker; the [`Task`] gives the result, by
    /// [`wait`](Task::wait) or `.await`.
    ///
    /// # Example
    /// ```no_run
    /// use serfn::{Executor, SerFn};
    ///
    /// /// Starts every call before waiting for any.
    /// fn all<E: Executor>(on: &E, f: &SerFn<u64, u64>, xs: &[u64]) -> serfn::Result<Vec<u64>> {
    ///     let tasks: Vec<_> = xs.iter().map(|&x| on.submit(f, x)).collect();
    ///     tasks.into_iter().map(|task| task.wait()).collect()
    /// }
    ///
    /// serfn::worker::init();
    /// let double = serfn::closure!("double", [], move |x: u64| -> u64 { 2 * x });
    /// assert_eq!(all(&serfn::Pool::new()?, &double, &[1, 2, 3])?, [2, 4, 6]);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    fn submit<F: MapFn>(&self, f: &F, args: F::Arg) -> Task<F::Output>;

    /// Calls a [`SerFnOnce`] on a worker, consuming it, and waits for the result.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    ///
    /// # Example
    /// ```no_run
    /// use serfn::{Executor, SerFnOnce};
    ///
    /// fn finish(on: &impl Executor, report: SerFnOnce<String, String>) -> serfn::Result<String> {
    ///     on.call_once(report, "done".into())
    /// }
    ///
    /// serfn::worker::init();
    /// let title = String::from("report: ");
    /// let report = serfn::closure!(once "report", [title: String], move |last: String| -> String { title + &last });
    /// assert_eq!(finish(&serfn::Pool::new()?, report)?, "report: done");
    /// # Ok::<(), serfn::Error>(())
    /// ```
    fn call_once<A, R>(&self, f: SerFnOnce<A, R>, args: A) -> Result<R>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static;

    /// Applies `f` to every item on workers; yields the results in input
    /// order. Items are owned or borrowed ([`MapItems`]).
    ///
    /// # Example
    /// ```no_run
    /// use serfn::Executor;
    ///
    /// serfn::worker::init();
    /// let executor = serfn::Pool::new()?; // or a `serfn::redis::RedisExecutor`
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// let sum: u64 = Executor::map(&executor, &square, 1..=10).sum::<serfn::Result<u64>>()?;
    /// assert_eq!(sum, 385);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    fn map<F, I, How>(&self, f: &F, items: I) -> impl Iterator<Item = Result<F::Output>>
    where
        F: MapFn,
        I: MapItems<F::Arg, How>;

    /// As [`map`](Self::map), but yields `(index, result)` in the order
    /// results come in.
    ///
    /// # Example
    /// ```no_run
    /// use serfn::Executor;
    ///
    /// serfn::worker::init();
    /// let executor = serfn::Pool::new()?;
    /// let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
    /// let mut squares = vec![0; 10];
    /// for (index, result) in Executor::map_unordered(&executor, &square, 0..10) {
    ///     squares[index] = result?;
    /// }
    /// assert_eq!(squares[9], 81);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    fn map_unordered<F, I, How>(
        &self,
        f: &F,
        items: I,
    ) -> impl Iterator<Item = (usize, Result<F::Output>)>
    where
        F: MapFn,
        I: MapItems<F::Arg, How>;

    /// Folds `items` into copies of `f`'s state and gives them back, for
    /// you to combine: one per worker on a [`Pool`] (each worker folds the
    /// items it is given), one on a `RedisExecutor`
    /// (a sequential fold: the state travels with each task, one task at a
    /// time). The calls' results are dropped.
    ///
    /// # Errors
    /// The first item's error, as [`call`](Self::call); a fold is never retried.
    ///
    /// # Example
    /// ```no_run
    /// use serfn::{Executor, SerFnMut};
    ///
    /// fn total(on: &impl Executor, sum: &SerFnMut<u64, u64>) -> serfn::Result<u64> {
    ///     let mut states = on.fold(sum, 1..=100)?;
    ///     Ok(states.iter_mut().map(|state| state.call_mut(0)).sum())
    /// }
    ///
    /// serfn::worker::init();
    /// let sum = serfn::closure!(mut "sum", [total: u64 = 0], move |x: u64| -> u64 { *total += x; *total });
    /// assert_eq!(total(&serfn::Pool::new()?, &sum)?, 5050);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    fn fold<A, R, I, How>(&self, f: &SerFnMut<A, R>, items: I) -> Result<Vec<SerFnMut<A, R>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: MapItems<A, How>;

    /// `f(args)` for async code: a future of the result that blocks no
    /// thread of the caller's (the same [`Task`] as [`submit`](Self::submit)
    /// gives). Feature `async`.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    ///
    /// # Example
    /// ```no_run
    /// use serfn::{Executor, SerFn};
    ///
    /// async fn double(on: &impl Executor, f: &SerFn<u64, u64>) -> serfn::Result<u64> {
    ///     on.call_async(f, 21).await
    /// }
    /// ```
    #[cfg(feature = "async")]
    fn call_async<F: MapFn>(&self, f: &F, args: F::Arg) -> Task<F::Output> {
        self.submit(f, args)
    }

    /// [`map`](Self::map) as a [`Stream`](futures_core::Stream), for async
    /// code: results in input order, as they come, with no thread of the
    /// caller's blocked. Dropping it stops the map. Feature `async`.
    ///
    /// Through the trait, the iterators and streams borrow `f` as well as
    /// the executor (a trait's `impl Trait` return captures every lifetime
    /// in scope); the executors' own methods borrow the executor only.
    ///
    /// # Example
    /// ```no_run
    /// use serfn::{Executor, SerFn};
    /// use futures_core::Stream;
    ///
    /// async fn total(on: &impl Executor, f: &SerFn<u64, u64>) -> serfn::Result<u64> {
    ///     // Pinned: the trait does not promise an `Unpin` stream.
    ///     let mut squares = std::pin::pin!(on.map_stream(f, 0..1_000));
    ///     let mut sum = 0;
    ///     while let Some(square) = std::future::poll_fn(|cx| squares.as_mut().poll_next(cx)).await {
    ///         sum += square?;
    ///     }
    ///     Ok(sum)
    /// }
    /// ```
    #[cfg(feature = "async")]
    fn map_stream<F, I, How>(
        &self,
        f: &F,
        items: I,
    ) -> impl futures_core::Stream<Item = Result<F::Output>>
    where
        F: MapFn,
        I: MapItems<F::Arg, How>;

    /// [`map_unordered`](Self::map_unordered) as a
    /// [`Stream`](futures_core::Stream): `(index, result)` as they come.
    /// Feature `async`.
    ///
    /// # Example
    /// ```no_run
    /// use serfn::{Executor, SerFn};
    /// use futures_core::Stream;
    ///
    /// async fn squares(on: &impl Executor, f: &SerFn<u64, u64>) -> serfn::Result<Vec<u64>> {
    ///     let mut squares = vec![0; 100];
    ///     let mut stream = std::pin::pin!(on.map_unordered_stream(f, 0..100));
    ///     while let Some((index, square)) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
    ///         squares[index] = square?;
    ///     }
    ///     Ok(squares)
    /// }
    /// ```
    #[cfg(feature = "async")]
    fn map_unordered_stream<F, I, How>(
        &self,
        f: &F,
        items: I,
    ) -> impl futures_core::Stream<Item = (usize, Result<F::Output>)>
    where
        F: MapFn,
        I: MapItems<F::Arg, How>;
}

/// The trait's methods, each the executor's own method of that name.
macro_rules! forward_executor {
    ($executor:ty) => {
        impl $crate::executor::Executor for $executor {
            fn call<F: MapFn>(&self, f: &F, args: F::Arg) -> Result<F::Output> {
                <$executor>::call(self, f, args)
            }

            fn submit<F: MapFn>(&self, f: &F, args: F::Arg) -> Task<F::Output> {
                <$executor>::submit(self, f, args)
            }

            fn call_once<A, R>(&self, f: SerFnOnce<A, R>, args: A) -> Result<R>
            where
                A: Serialize + DeserializeOwned + 'static,
                R: Serialize + DeserializeOwned + 'static,
            {
                <$executor>::call_once(self, f, args)
            }

            fn map<F, I, How>(&self, f: &F, items: I) -> impl Iterator<Item = Result<F::Output>>
            where
                F: MapFn,
                I: MapItems<F::Arg, How>,
            {
                <$executor>::map(self, f, items)
            }

            fn map_unordered<F, I, How>(
                &self,
                f: &F,
                items: I,
            ) -> impl Iterator<Item = (usize, Result<F::Output>)>
            where
                F: MapFn,
                I: MapItems<F::Arg, How>,
            {
                <$executor>::map_unordered(self, f, items)
            }

            fn fold<A, R, I, How>(
                &self,
                f: &SerFnMut<A, R>,
                items: I,
            ) -> Result<Vec<SerFnMut<A, R>>>
            where
                A: Serialize + DeserializeOwned + 'static,
                R: Serialize + DeserializeOwned + Send + 'static,
                I: MapItems<A, How>,
            {
                <$executor>::fold(self, f, items)
            }

            #[cfg(feature = "async")]
            fn call_async<F: MapFn>(&self, f: &F, args: F::Arg) -> Task<F::Output> {
                <$executor>::call_async(self, f, args)
            }

            #[cfg(feature = "async")]
            fn map_stream<F, I, How>(
                &self,
                f: &F,
                items: I,
            ) -> impl futures_core::Stream<Item = Result<F::Output>>
            where
                F: MapFn,
                I: MapItems<F::Arg, How>,
            {
                <$executor>::map_stream(self, f, items)
            }

            #[cfg(feature = "async")]
            fn map_unordered_stream<F, I, How>(
                &self,
                f: &F,
                items: I,
            ) -> impl futures_core::Stream<Item = (usize, Result<F::Output>)>
            where
                F: MapFn,
                I: MapItems<F::Arg, How>,
            {
                <$executor>::map_unordered_stream(self, f, items)
            }
        }
    };
}

forward_executor!(Pool);
#[cfg(all(unix, feature = "redis"))]
forward_executor!(crate::redis::RedisExecutor);
