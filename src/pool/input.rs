//! What [`Pool::map`](super::Pool::map) accepts: [`MapFn`], a function it
//! can run on many items, and [`MapItems`], items given by value or
//! borrowed.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::handle::{AsyncSerFn, DynFn, SerFn};

/// A function [`Pool::map`](super::Pool::map),
/// [`map_unordered`](super::Pool::map_unordered), [`call`](super::Pool::call)
/// and [`submit`](super::Pool::submit) can run: a [`SerFn`], which
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
    type Output: Serialize + DeserializeOwned + Send + 'static;

    #[doc(hidden)]
    fn dyn_fn(&self) -> DynFn;
}

impl<A, R> MapFn for SerFn<A, R>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
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

/// The items of a map over arguments of type `A`: any collection or
/// iterator of `A`s, or a borrowed collection of them (`&Vec<A>`, `&[A]`,
/// `&[A; N]`, `&VecDeque<A>`, or their `.iter()`), whose `&A`s are encoded
/// as they are, without a clone.
///
/// `How` is [`Owned`] or [`Borrowed`], and the compiler infers it: one
/// trait with two readings of the same items would leave `vec![]` or
/// `std::iter::empty()` ambiguous, since their item type is known only as
/// `A`. So an iterator of references is read as borrowed items only in the
/// forms above; add `.cloned()` to any other.
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
/// let none: Vec<usize> = pool.map(&len, vec![]).collect::<serfn::Result<_>>()?;
/// assert!(none.is_empty());
/// # Ok::<(), serfn::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a collection or iterator of `{A}`, nor a borrowed slice of them",
    label = "not items of type `{A}`",
    note = "give the items by value (any `IntoIterator<Item = {A}>`), or borrowed as \
            `&Vec<{A}>`, `&[{A}]`, `&[{A}; N]`, `&VecDeque<{A}>` or their `.iter()`; \
            add `.cloned()` to another iterator of references"
)]
pub trait MapItems<A, How>: Sized {
    /// What is encoded for each item: `A` or `&A`.
    type Item: Serialize;
    /// The iterator of the items.
    type IntoIter: Iterator<Item = Self::Item>;

    /// The items, one by one.
    fn into_items(self) -> Self::IntoIter;
}

/// The [`MapItems`] reading of items given by value.
#[derive(Debug)]
pub enum Owned {}

/// The [`MapItems`] reading of borrowed items, encoded without a clone.
#[derive(Debug)]
pub enum Borrowed {}

impl<A: Serialize, I: IntoIterator<Item = A>> MapItems<A, Owned> for I {
    type Item = A;
    type IntoIter = I::IntoIter;

    fn into_items(self) -> I::IntoIter {
        self.into_iter()
    }
}

/// `MapItems<A, Borrowed>` for borrowed forms whose iterator yields `&'a A`.
macro_rules! borrowed {
    ($([$($generics:tt)*] $ty:ty => $iter:ty;)*) => {$(
        impl<'a, A: Serialize $($generics)*> MapItems<A, Borrowed> for $ty {
            type Item = &'a A;
            type IntoIter = $iter;

            fn into_items(self) -> $iter {
                self.into_iter()
            }
        }
    )*};
}

borrowed! {
    [] &'a Vec<A> => std::slice::Iter<'a, A>;
    [] &'a [A] => std::slice::Iter<'a, A>;
    [, const N: usize] &'a [A; N] => std::slice::Iter<'a, A>;
    [] &'a std::collections::VecDeque<A> => std::collections::vec_deque::Iter<'a, A>;
    [] std::slice::Iter<'a, A> => std::slice::Iter<'a, A>;
    [] std::collections::vec_deque::Iter<'a, A> => std::collections::vec_deque::Iter<'a, A>;
}

mod sealed {
    pub trait Sealed {}
    impl<A, R> Sealed for crate::handle::SerFn<A, R> {}
    impl<A, R> Sealed for crate::handle::AsyncSerFn<A, R> {}
}
