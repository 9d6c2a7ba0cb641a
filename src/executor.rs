//! [`Executor`]: what a [`Pool`](crate::Pool) on one machine and a
//! [`RedisExecutor`](crate::redis::RedisExecutor) over many share, so that
//! the code that maps, calls and submits is the same on both.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Result;
use crate::handle::SerFn;
use crate::pool::{Pool, Task};

/// Runs serialized functions somewhere else: in local worker processes
/// ([`Pool`]) or on a fleet of workers behind a broker
/// ([`RedisExecutor`], feature `redis`): see [where does it
/// run](crate#where-does-it-run).
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
///     executor.map(loss, (0..100).map(f64::from)).collect()
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
    /// Calls `f(args)` on a worker and waits for the result.
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
    fn call<A, R>(&self, f: &SerFn<A, R>, args: A) -> Result<R>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.submit(f, args).wait()
    }

    /// Sends `f(args)` to a worker; the [`Task`] gives the result.
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
    fn submit<A, R>(&self, f: &SerFn<A, R>, args: A) -> Task<R>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static;

    /// Applies `f` to every item on workers; yields the results in input order.
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
    fn map<'a, A, R, I>(
        &'a self,
        f: &SerFn<A, R>,
        items: I,
    ) -> impl Iterator<Item = Result<R>> + 'a
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'a;

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
    fn map_unordered<'a, A, R, I>(
        &'a self,
        f: &SerFn<A, R>,
        items: I,
    ) -> impl Iterator<Item = (usize, Result<R>)> + 'a
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'a;
}

impl Executor for Pool {
    fn submit<A, R>(&self, f: &SerFn<A, R>, args: A) -> Task<R>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        Pool::submit(self, f, args)
    }

    fn map<'a, A, R, I>(&'a self, f: &SerFn<A, R>, items: I) -> impl Iterator<Item = Result<R>> + 'a
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'a,
    {
        Pool::map(self, f, items)
    }

    fn map_unordered<'a, A, R, I>(
        &'a self,
        f: &SerFn<A, R>,
        items: I,
    ) -> impl Iterator<Item = (usize, Result<R>)> + 'a
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'a,
    {
        Pool::map_unordered(self, f, items)
    }
}
