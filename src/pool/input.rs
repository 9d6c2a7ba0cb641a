//! What [`Pool::map`](super::Pool::map) accepts: [`MapFn`], a function it
//! can run on many items, and [`MapItem`], an item given by value or by
//! reference.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::handle::{AsyncSerFn, DynFn, SerFn};

/// A function [`Pool::map`](super::Pool::map) and
/// [`map_unordered`](super::Pool::map_unordered) can run: a [`SerFn`], which
/// each worker calls on many items, or an [`AsyncSerFn`], whose items a
/// worker overlaps. Sealed.
///
/// A [`SerFnMut`](crate::SerFnMut) keeps state from call to call, which a
/// map spread over workers would split and drop: run it with
/// [`Pool::fold`](super::Pool::fold), which gives back one state per
/// worker. The compiler says so when one is passed to `map`.
///
/// # Example
/// ```no_run
/// fn run_all<F: serfn::pool::MapFn<Arg = u64, Output = u64>>(pool: &serfn::Pool, f: &F) -> serfn::Result<Vec<u64>> {
///     pool.map(f, 0..10).collect()
/// }
///
/// serfn::worker::init();
/// let pool = serfn::Pool::new()?;
/// let double = serfn::closure!("double", [], move |x: u64| -> u64 { 2 * x });
/// assert_eq!(run_all(&pool, &double)?[5], 10);
/// # Ok::<(), serfn::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`Pool::map` runs a `SerFn` (an `Fn`) or an `AsyncSerFn`, and `{Self}` is neither",
    label = "not a `SerFn` or an `AsyncSerFn`",
    note = "a `SerFnMut` keeps state between calls: run it with `Pool::fold`, \
            which gives back each worker's state, instead of `map`"
)]
pub trait MapFn: sealed::Sealed {
    /// The argument each item becomes.
    type Arg: Serialize + DeserializeOwned + 'static;
    /// What each call returns.
    type Output: Serialize + DeserializeOwned + 'static;

    #[doc(hidden)]
    fn dyn_fn(&self) -> DynFn;
}

impl<A, R> MapFn for SerFn<A, R>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    type Arg = A;
    type Output = R;

    fn dyn_fn(&self) -> DynFn {
        self.clone().into_dyn()
    }
}

/// An async function: each worker runs up to
/// [`max_concurrent`](super::PoolBuilder::max_concurrent) of its items at once.
impl<A, R> MapFn for AsyncSerFn<A, R>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    type Arg = A;
    type Output = R;

    fn dyn_fn(&self) -> DynFn {
        self.clone().into_dyn()
    }
}

/// An item of a map over arguments of type `A`: an `A`, or a `&A` borrowed
/// from a slice or a collection, encoded as it is without a clone. Sealed.
///
/// # Example
/// ```no_run
/// serfn::worker::init();
/// let pool = serfn::Pool::new()?;
/// let len = serfn::closure!("len", [], move |s: String| -> usize { s.len() });
/// let words = vec!["a".to_owned(), "bcd".to_owned()];
/// let by_ref: Vec<usize> = pool.map(&len, &words).collect::<serfn::Result<_>>()?;
/// let by_iter: Vec<usize> = pool.map(&len, words.iter()).collect::<serfn::Result<_>>()?;
/// let by_value: Vec<usize> = pool.map(&len, words).collect::<serfn::Result<_>>()?;
/// assert_eq!(by_ref, [1, 3]);
/// assert_eq!((by_iter, by_value), (by_ref.clone(), by_ref));
/// # Ok::<(), serfn::Error>(())
/// ```
pub trait MapItem<A>: Serialize + sealed::Item<A> {}

impl<A: Serialize> MapItem<A> for A {}
impl<A: Serialize> MapItem<A> for &A {}

mod sealed {
    pub trait Sealed {}
    impl<A, R> Sealed for crate::handle::SerFn<A, R> {}
    impl<A, R> Sealed for crate::handle::AsyncSerFn<A, R> {}

    pub trait Item<A> {}
    impl<A> Item<A> for A {}
    impl<A> Item<A> for &A {}
}
