//! [`SerFnMut`](crate::SerFnMut): a serializable `FnMut`.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{call_with, slot_error, unwrap_call};
use crate::compose;
use crate::erased::{Input, Output, Slot};
use crate::error::Result;
use crate::function::CallMut;
use crate::registry::SerializableFn;

/// A serializable function called through `&mut self`: a serializable
/// [`FnMut`] whose capture is state.
///
/// The state that calls leave is what the next encoding carries, so a worker
/// can return an updated accumulator.
///
/// # Example
/// ```
/// use serfn::SerFnMut;
///
/// let mut count: SerFnMut<u32, u32> =
///     serfn::closure!(mut "count", [seen: u32 = 0], move |n: u32| -> u32 { *seen += n; *seen });
/// count.call_mut(2);
/// let mut moved = SerFnMut::<u32, u32>::from_bytes(&count.to_bytes()?)?;
/// assert_eq!(moved.call_mut(3), 5);
/// # Ok::<(), serfn::Error>(())
/// ```
pub struct SerFnMut<A, R> {
    pub(super) inner: Arc<dyn SerializableFn>,
    pub(super) types: PhantomData<fn(A) -> R>,
}

impl<A, R> SerFnMut<A, R>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    /// Wraps a registered capture struct.
    ///
    /// # Example
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(Serialize, Deserialize)]
    /// struct Count(u32);
    ///
    /// #[serfn::register]
    /// impl serfn::CallMut<()> for Count {
    ///     type Output = u32;
    ///     fn call_mut(&mut self, (): ()) -> u32 {
    ///         self.0 += 1;
    ///         self.0
    ///     }
    /// }
    ///
    /// let mut count = serfn::SerFnMut::new(Count(0));
    /// count.call_mut(());
    /// assert_eq!(count.call_mut(()), 2);
    /// ```
    pub fn new<F: CallMut<A, Output = R> + SerializableFn>(f: F) -> Self {
        Self::from_arc(Arc::new(f))
    }

    /// Calls the function in this process, updating its state.
    ///
    /// # Panics
    /// As [`SerFn::call`](crate::SerFn::call).
    ///
    /// # Example
    /// ```
    /// let mut max = serfn::closure!(mut "max", [best: i32 = i32::MIN], move |x: i32| -> i32 {
    ///     *best = (*best).max(x);
    ///     *best
    /// });
    /// assert_eq!(max.call_mut(3), 3);
    /// assert_eq!(max.call_mut(1), 3);
    /// ```
    pub fn call_mut(&mut self, args: A) -> R {
        let result = self.try_call_mut(args);
        unwrap_call(&*self.inner, result)
    }

    /// Calls the function, returning the errors [`call_mut`](Self::call_mut) panics on.
    ///
    /// # Errors
    /// As [`SerFn::try_call`](crate::SerFn::try_call).
    ///
    /// # Example
    /// ```
    /// let mut total = serfn::closure!(mut "total", [sum: u64 = 0], move |x: u64| -> u64 { *sum += x; *sum });
    /// assert_eq!(total.try_call_mut(40)?, 40);
    /// assert_eq!(total.try_call_mut(2)?, 42);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn try_call_mut(&mut self, args: A) -> Result<R> {
        let expected = Self::expected_signature();
        // Shared only when it came from a `SerFn`, whose function never changes.
        let inner = &mut self.inner;
        match Arc::get_mut(inner) {
            Some(f) => {
                let mut input = Slot(Some(args));
                let mut output: Option<R> = None;
                f.__serfn_call_mut(Input::Slot(&mut input), Output::Slot(&mut output))?;
                output.ok_or_else(|| slot_error(&**inner, expected))
            }
            None => call_with(&**inner, expected, args, |input, output| {
                inner.__serfn_call(input, output)
            }),
        }
    }

    /// Runs `self`, then `next` on its output; `next` may be a [`SerFn`](crate::SerFn).
    /// The state of each stage travels with the pipeline's bytes.
    ///
    /// # Example
    /// ```
    /// use serfn::SerFnMut;
    ///
    /// let count = serfn::closure!(mut "count", [n: u32 = 0], move |(): ()| -> u32 { *n += 1; *n });
    /// let square = serfn::closure!("square", [], move |x: u32| -> u32 { x * x });
    /// let mut squares = count.then(square);
    /// assert_eq!(squares.call_mut(()), 1);
    /// assert_eq!(squares.call_mut(()), 4);
    /// let mut resumed = SerFnMut::<(), u32>::from_bytes(&squares.to_bytes()?)?;
    /// assert_eq!(resumed.call_mut(()), 9);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn then<C>(self, next: impl Into<SerFnMut<R, C>>) -> SerFnMut<A, C>
    where
        C: Serialize + DeserializeOwned + 'static,
    {
        SerFnMut::from_arc(compose::then(self.inner, next.into().inner))
    }
}
