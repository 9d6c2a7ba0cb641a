//! [`SerFnOnce`]: a serializable `FnOnce`.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::compose;
use crate::erased::{Input, Output, Slot};
use crate::error::{Error, Result};
use crate::function::CallOnce;
use crate::registry::SerializableFn;

/// A serializable function consumed by its call: a serializable [`FnOnce`].
///
/// # Example
/// ```
/// use serfn::SerFnOnce;
///
/// let report = vec![1, 2, 3];
/// let f: SerFnOnce<(), Vec<i32>> = serfn::closure!(once "report", [report: Vec<i32>], move |(): ()| -> Vec<i32> { report });
/// let g = SerFnOnce::<(), Vec<i32>>::from_bytes(&f.to_bytes()?)?;
/// assert_eq!(g.call_once(()), vec![1, 2, 3]);
/// # Ok::<(), serfn::Error>(())
/// ```
pub struct SerFnOnce<A, R> {
    pub(super) inner: Arc<dyn SerializableFn>,
    pub(super) types: PhantomData<fn(A) -> R>,
}

impl<A, R> SerFnOnce<A, R>
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
    /// struct Report(Vec<String>);
    ///
    /// #[serfn::register]
    /// impl serfn::CallOnce<String> for Report {
    ///     type Output = Vec<String>;
    ///     fn call_once(mut self, line: String) -> Vec<String> {
    ///         self.0.push(line); // the capture is moved out, not copied
    ///         self.0
    ///     }
    /// }
    ///
    /// let report = serfn::SerFnOnce::new(Report(vec!["start".into()]));
    /// assert_eq!(report.call_once("end".into()), ["start", "end"]);
    /// ```
    pub fn new<F: CallOnce<A, Output = R> + SerializableFn>(f: F) -> Self {
        Self::from_arc(Arc::new(f))
    }

    /// Calls the function in this process, consuming it.
    ///
    /// # Panics
    /// As [`SerFn::call`](crate::SerFn::call).
    ///
    /// # Example
    /// ```
    /// let names = vec!["a".to_string(), "b".to_string()];
    /// let join = serfn::closure!(once "join", [names: Vec<String>], move |sep: String| -> String {
    ///     names.join(&sep)
    /// });
    /// assert_eq!(join.call_once(", ".into()), "a, b");
    /// ```
    pub fn call_once(self, args: A) -> R {
        let name = self.inner.name();
        self.try_call_once(args)
            .unwrap_or_else(|error| panic!("calling serfn function `{name}` failed: {error}"))
    }

    /// Calls the function, returning the errors [`call_once`](Self::call_once) panics on.
    ///
    /// # Errors
    /// As [`SerFn::try_call`](crate::SerFn::try_call).
    ///
    /// # Example
    /// ```
    /// let data = vec![3u8, 1, 2];
    /// let sorted = serfn::closure!(once "sorted", [data: Vec<u8>], move |(): ()| -> Vec<u8> {
    ///     let mut data = data;
    ///     data.sort();
    ///     data
    /// });
    /// assert_eq!(sorted.try_call_once(())?, [1, 2, 3]);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn try_call_once(self, args: A) -> Result<R> {
        let expected = Self::expected_signature();
        let name = self.inner.name();
        let mut input = Slot(Some(args));
        let mut output: Option<R> = None;
        self.inner
            .__serfn_call_once(Input::Slot(&mut input), Output::Slot(&mut output))?;
        output.ok_or_else(|| Error::SignatureMismatch {
            name: name.into(),
            expected: expected.to_string(),
            found: "a function that returned nothing".into(),
        })
    }

    /// Runs `self`, then `next` on its output; `next` may be a [`SerFn`](crate::SerFn)
    /// or a [`SerFnMut`](crate::SerFnMut).
    ///
    /// # Example
    /// ```
    /// let text = String::from("serialized closures");
    /// let take = serfn::closure!(once "take", [text: String], move |(): ()| -> String { text });
    /// let count = serfn::closure!("words", [], move |s: String| -> usize { s.split_whitespace().count() });
    /// let words = take.then(count);
    /// let words = serfn::SerFnOnce::<(), usize>::from_bytes(&words.to_bytes()?)?;
    /// assert_eq!(words.call_once(()), 2);
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn then<C>(self, next: impl Into<SerFnOnce<R, C>>) -> SerFnOnce<A, C>
    where
        C: Serialize + DeserializeOwned + 'static,
    {
        SerFnOnce::from_arc(compose::then(self.inner, next.into().inner))
    }
}
