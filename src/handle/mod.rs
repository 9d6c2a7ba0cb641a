//! Typed handles over a type-erased function: [`SerFn`], [`SerFnMut`],
//! [`SerFnOnce`], and the untyped [`DynFn`] a worker uses.
//!
//! Each holds an `Arc<dyn SerializableFn>` whose signature was checked when
//! the handle was built or decoded; calls then pass arguments and results
//! through typed slots on the stack, with no serialization and no allocation.

mod dyn_fn;
mod target;
pub(crate) mod wire;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use self::dyn_fn::DynFn;
use self::target::{Inner, Target};
use crate::compose::{self, SplitFirst};
use crate::erased::{Input, Output, Slot};
use crate::error::{Error, Result};
use crate::function::{Call, CallMut, CallOnce};
use crate::registry::SerializableFn;
use crate::signature::{Kind, Signature};

fn slot_error(f: &dyn SerializableFn, expected: Signature) -> Error {
    Error::SignatureMismatch {
        name: f.name().into(),
        expected: expected.to_string(),
        found: f.signature().to_string(),
    }
}

/// Runs one in-process call through typed slots.
fn call_with<A: Serialize + 'static, R: 'static>(
    f: &dyn SerializableFn,
    expected: Signature,
    args: A,
    call: impl FnOnce(Input<'_>, Output<'_>) -> Result<()>,
) -> Result<R> {
    let mut input = Slot(Some(args));
    let mut output: Option<R> = None;
    call(Input::Slot(&mut input), Output::Slot(&mut output))?;
    output.ok_or_else(|| slot_error(f, expected))
}

fn unwrap_call<R>(f: &dyn SerializableFn, result: Result<R>) -> R {
    result.unwrap_or_else(|error| panic!("calling serfn function `{}` failed: {error}", f.name()))
}

macro_rules! handle_common {
    ($handle:ident, $kind:expr, $doc_kind:literal) => {
        impl<A, R> $handle<A, R>
        where
            A: Serialize + DeserializeOwned + 'static,
            R: Serialize + DeserializeOwned + 'static,
        {
            /// The signature this handle stands for.
            pub fn expected_signature() -> Signature {
                Signature::of::<A, R>($kind)
            }

            /// The registered name of the function.
            pub fn name(&self) -> &'static str {
                self.inner.name()
            }

            /// The function's own signature, which may be of an earlier kind
            /// than the handle's (an `Fn` function in a `SerFnOnce`).
            pub fn signature(&self) -> Signature {
                self.inner.signature()
            }

            /// Encodes the function and its capture: the same bytes as
            /// [`to_bytes`](crate::to_bytes), its header written directly.
            ///
            /// # Errors
            /// [`Error::Encode`] if the capture's `Serialize` impl fails.
            pub fn to_bytes(&self) -> Result<Vec<u8>> {
                let mut out = Vec::with_capacity(64);
                self.to_bytes_into(&mut out)?;
                Ok(out)
            }

            /// Appends the envelope [`to_bytes`](Self::to_bytes) returns to
            /// `out`: reusing one buffer saves an allocation per encoding.
            ///
            /// # Errors
            /// [`Error::Encode`] if the capture's `Serialize` impl fails;
            /// `out` is then as it was.
            ///
            /// # Example
            /// ```
            /// let f = serfn::closure!("inc", [], move |x: u8| -> u8 { x + 1 });
            /// let mut buf = Vec::new();
            /// for _ in 0..3 {
            ///     buf.clear();
            ///     f.to_bytes_into(&mut buf)?;
            ///     assert_eq!(buf, f.to_bytes()?);
            /// }
            /// # Ok::<(), serfn::Error>(())
            /// ```
            pub fn to_bytes_into(&self, out: &mut Vec<u8>) -> Result<()> {
                wire::write_envelope(&*self.inner, out)
            }

            #[doc = concat!("Decodes a `", stringify!($handle), "` from bytes made by [`to_bytes`](Self::to_bytes),")]
            /// under the default [`Limits`](crate::Limits).
            ///
            /// # Errors
            /// A typed error for any bad input (see [`from_bytes`](crate::from_bytes));
            /// [`Error::SignatureMismatch`] if the bytes hold a function of another
            /// signature, raised before its capture is decoded.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
                wire::read_envelope(bytes, &Self::expected_signature()).map(Self::from_arc)
            }

            /// Forgets the types: a [`DynFn`] that calls through bytes.
            pub fn into_dyn(self) -> DynFn {
                DynFn::from_arc(self.inner.into_arc())
            }

            fn from_arc(inner: Arc<dyn SerializableFn>) -> Self {
                $handle {
                    inner: Inner::from_arc(inner),
                    types: PhantomData,
                }
            }

            fn checked(inner: Arc<dyn SerializableFn>) -> Result<Self> {
                let expected = Self::expected_signature();
                let found = inner.signature();
                if expected.accepts(&found) {
                    Ok(Self::from_arc(inner))
                } else {
                    Err(Error::SignatureMismatch {
                        name: inner.name().into(),
                        expected: expected.to_string(),
                        found: found.to_string(),
                    })
                }
            }

            /// Binds the first element of the argument tuple: Python's
            /// `functools.partial`. The rest of the arguments stay a tuple,
            /// `()` when none is left.
            ///
            /// The value is encoded now and travels with the function. Plain
            /// data (numbers, strings, vectors, derived structs) always
            /// encodes, so this returns the function itself; for a value
            /// whose encoding can fail, [`try_bind`](Self::try_bind) returns
            /// the error instead, as [`try_call`](SerFn::try_call) does for
            /// [`call`](SerFn::call).
            ///
            /// # Panics
            /// If the value's `Serialize` impl fails: a poisoned `Mutex`, a
            /// `RefCell` borrowed mutably, a sequence whose length is not
            /// known in advance, `#[serde(flatten)]` (serfn's format needs
            /// every length first). Such a value could not be a capture or an
            /// argument sent to a worker either.
            ///
            /// # Example
            /// ```
            /// use serfn::SerFn;
            ///
            /// let power: SerFn<(f64, i32), f64> =
            ///     serfn::closure!("power", [], move |x: f64, n: i32| -> f64 { x.powi(n) });
            /// let two_to_the: SerFn<(i32,), f64> = power.bind(2.0);
            /// assert_eq!(two_to_the.call((10,)), 1024.0);
            ///
            /// // The bound value is part of the function's bytes.
            /// let decoded = SerFn::<(i32,), f64>::from_bytes(&two_to_the.to_bytes()?)?;
            /// assert_eq!(decoded.call((3,)), 8.0);
            /// # Ok::<(), serfn::Error>(())
            /// ```
            #[track_caller]
            pub fn bind(self, first: A::First) -> $handle<A::Rest, R>
            where
                A: SplitFirst,
                A::First: Serialize,
                A::Rest: Serialize + DeserializeOwned,
            {
                let name = self.name();
                // A `match`, not a closure: `#[track_caller]` then names the caller.
                match self.try_bind(first) {
                    Ok(bound) => bound,
                    Err(error) => {
                        panic!("cannot bind the first argument of serfn function `{name}`: {error}")
                    }
                }
            }

            /// [`bind`](Self::bind), returning the error it panics on.
            ///
            /// # Errors
            /// [`Error::Encode`] if the bound value's `Serialize` impl fails.
            ///
            /// # Example
            /// ```
            /// use serde::{Deserialize, Serialize, Serializer};
            /// use serfn::SerFn;
            ///
            /// /// Encodes its non-empty words: a count not known in advance.
            /// #[derive(Deserialize)]
            /// struct Words(Vec<String>);
            ///
            /// impl Serialize for Words {
            ///     fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            ///         s.collect_seq(self.0.iter().filter(|w| !w.is_empty()))
            ///     }
            /// }
            ///
            /// let longer: SerFn<(Words, usize), usize> = serfn::closure!(
            ///     "count_longer", [], move |words: Words, min: usize| -> usize {
            ///         words.0.iter().filter(|w| w.len() >= min).count()
            ///     }
            /// );
            /// let words = Words(vec!["serde".into(), String::new()]);
            /// assert!(matches!(longer.try_bind(words), Err(serfn::Error::Encode { .. })));
            /// ```
            pub fn try_bind(self, first: A::First) -> Result<$handle<A::Rest, R>>
            where
                A: SplitFirst,
                A::First: Serialize,
                A::Rest: Serialize + DeserializeOwned,
            {
                Ok($handle::from_arc(compose::bind(self.inner.into_arc(), &first)?))
            }
        }

        impl<A, R> TryFrom<DynFn> for $handle<A, R>
        where
            A: Serialize + DeserializeOwned + 'static,
            R: Serialize + DeserializeOwned + 'static,
        {
            type Error = Error;

            /// Gives the types back, after checking them.
            fn try_from(f: DynFn) -> Result<Self> {
                Self::checked(f.into_arc())
            }
        }

        impl<A, R> fmt::Debug for $handle<A, R> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($handle))
                    .field(&self.inner.name())
                    .field(&format_args!("{}", self.inner.signature()))
                    .finish()
            }
        }

        impl<A, R> Serialize for $handle<A, R> {
            fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                wire::serialize(&*self.inner, serializer)
            }
        }

        impl<'de, A, R> Deserialize<'de> for $handle<A, R>
        where
            A: Serialize + DeserializeOwned + 'static,
            R: Serialize + DeserializeOwned + 'static,
        {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
                if crate::schema::tracing() {
                    return crate::schema::trace_function::<D, A, R>(deserializer, $kind).map(Self::from_arc);
                }
                wire::deserialize(deserializer, Some(Self::expected_signature())).map(Self::from_arc)
            }
        }
    };
}

/// A serializable function called through `&self`, any number of times: a
/// serializable [`Fn`].
///
/// Several arguments are one tuple: `SerFn<(f64, f64), f64>`. Cloning is
/// cheap (the capture is shared, as it never changes).
///
/// # Example
/// ```
/// use serfn::SerFn;
///
/// let offset = 0.5;
/// let f: SerFn<f64, f64> = serfn::closure!("add_offset", [offset: f64], move |x: f64| -> f64 { x + offset });
/// let bytes = f.to_bytes()?;
///
/// // ...in another process of the same binary:
/// let g = SerFn::<f64, f64>::from_bytes(&bytes)?;
/// assert_eq!(g.call(1.0), 1.5);
///
/// // Asking for another signature is a typed error, not a wrong call.
/// assert!(matches!(
///     SerFn::<i32, i32>::from_bytes(&bytes),
///     Err(serfn::Error::SignatureMismatch { .. })
/// ));
/// # Ok::<(), serfn::Error>(())
/// ```
pub struct SerFn<A, R> {
    inner: Target<A, R>,
    types: PhantomData<fn(A) -> R>,
}

handle_common!(SerFn, Kind::Fn, "Fn");

impl<A, R> SerFn<A, R>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    /// Wraps a registered capture struct.
    pub fn new<F: Call<A, Output = R> + SerializableFn>(f: F) -> Self {
        SerFn {
            inner: Target::Typed(Arc::new(f)),
            types: PhantomData,
        }
    }

    /// Calls the function in this process: no serialization, no allocation.
    ///
    /// # Panics
    /// If the function panics; and if a function made by [`bind`](Self::bind)
    /// cannot re-encode its arguments (see [`try_call`](Self::try_call)).
    #[inline]
    pub fn call(&self, args: A) -> R {
        match &self.inner {
            Target::Typed(f) => f.__serfn_typed_call(args),
            Target::Composed(pipeline) => pipeline.call(args),
            Target::Erased(_) => unwrap_call(&*self.inner, self.try_call(args)),
        }
    }

    /// Calls the function, returning the errors [`call`](Self::call) panics on.
    ///
    /// # Errors
    /// Only functions made by [`bind`](Self::bind) can fail here: they pass
    /// their arguments through the codec, whose `Serialize` impls may fail.
    pub fn try_call(&self, args: A) -> Result<R> {
        match &self.inner {
            Target::Typed(f) => Ok(f.__serfn_typed_call(args)),
            Target::Composed(pipeline) => Ok(pipeline.call(args)),
            Target::Erased(f) => {
                call_with(&**f, Self::expected_signature(), args, |input, output| {
                    f.__serfn_call(input, output)
                })
            }
        }
    }

    /// Runs `self`, then `next` on its output: a serializable composition,
    /// stored flat however long the chain. Built in this process from typed
    /// functions, its calls pass values from stage to stage with their types
    /// (up to 64 stages; a longer chain, or one holding a decoded pipeline,
    /// calls through its encoded form's slots).
    ///
    /// # Example
    /// ```
    /// let inc = serfn::closure!("then_inc", [], move |x: i32| -> i32 { x + 1 });
    /// let show = serfn::closure!("then_show", [], move |x: i32| -> String { x.to_string() });
    /// let both = inc.then(show);
    /// assert_eq!(both.call(41), "42");
    /// let back = serfn::SerFn::<i32, String>::from_bytes(&both.to_bytes()?)?;
    /// assert_eq!(back.call(1), "2");
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn then<C>(self, next: SerFn<R, C>) -> SerFn<A, C>
    where
        C: Serialize + DeserializeOwned + 'static,
    {
        let typed = Target::compose(&self.inner, &next.inner, || {
            compose::then(self.inner.erased(), next.inner.erased())
        });
        match typed {
            Some(inner) => SerFn {
                inner,
                types: PhantomData,
            },
            None => SerFn::from_arc(compose::then(self.inner.into_arc(), next.inner.into_arc())),
        }
    }
}

impl<A, R> Clone for SerFn<A, R> {
    fn clone(&self) -> Self {
        SerFn {
            inner: self.inner.clone(),
            types: PhantomData,
        }
    }
}

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
    inner: Arc<dyn SerializableFn>,
    types: PhantomData<fn(A) -> R>,
}

handle_common!(SerFnMut, Kind::FnMut, "FnMut");

impl<A, R> SerFnMut<A, R>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    /// Wraps a registered capture struct.
    pub fn new<F: CallMut<A, Output = R> + SerializableFn>(f: F) -> Self {
        Self::from_arc(Arc::new(f))
    }

    /// Calls the function in this process, updating its state.
    ///
    /// # Panics
    /// As [`SerFn::call`].
    pub fn call_mut(&mut self, args: A) -> R {
        let result = self.try_call_mut(args);
        unwrap_call(&*self.inner, result)
    }

    /// Calls the function, returning the errors [`call_mut`](Self::call_mut) panics on.
    ///
    /// # Errors
    /// As [`SerFn::try_call`].
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

    /// Runs `self`, then `next` on its output.
    pub fn then<C>(self, next: impl Into<SerFnMut<R, C>>) -> SerFnMut<A, C>
    where
        C: Serialize + DeserializeOwned + 'static,
    {
        SerFnMut::from_arc(compose::then(self.inner, next.into().inner))
    }
}

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
    inner: Arc<dyn SerializableFn>,
    types: PhantomData<fn(A) -> R>,
}

handle_common!(SerFnOnce, Kind::FnOnce, "FnOnce");

impl<A, R> SerFnOnce<A, R>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    /// Wraps a registered capture struct.
    pub fn new<F: CallOnce<A, Output = R> + SerializableFn>(f: F) -> Self {
        Self::from_arc(Arc::new(f))
    }

    /// Calls the function in this process, consuming it.
    ///
    /// # Panics
    /// As [`SerFn::call`].
    pub fn call_once(self, args: A) -> R {
        let name = self.inner.name();
        self.try_call_once(args)
            .unwrap_or_else(|error| panic!("calling serfn function `{name}` failed: {error}"))
    }

    /// Calls the function, returning the errors [`call_once`](Self::call_once) panics on.
    ///
    /// # Errors
    /// As [`SerFn::try_call`].
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

    /// Runs `self`, then `next` on its output.
    pub fn then<C>(self, next: impl Into<SerFnOnce<R, C>>) -> SerFnOnce<A, C>
    where
        C: Serialize + DeserializeOwned + 'static,
    {
        SerFnOnce::from_arc(compose::then(self.inner, next.into().inner))
    }
}

/// Deep copies: the capture is state, so a clone must not share it.
macro_rules! clone_deep {
    ($handle:ident) => {
        impl<A, R> Clone for $handle<A, R> {
            /// Clones the capture, through its `Clone` impl when it has one,
            /// otherwise through its serde impls.
            ///
            /// # Panics
            /// Only if the capture has no `Clone` impl and its own encoding
            /// does not decode, which is a bug in its serde impls.
            fn clone(&self) -> Self {
                let inner = self.inner.__serfn_clone().unwrap_or_else(|error| {
                    panic!(
                        "cannot clone serfn function `{}`: {error}",
                        self.inner.name()
                    )
                });
                $handle {
                    inner,
                    types: PhantomData,
                }
            }
        }
    };
}

clone_deep!(SerFnMut);
clone_deep!(SerFnOnce);

impl<A: 'static, R: 'static> From<SerFn<A, R>> for SerFnMut<A, R> {
    fn from(f: SerFn<A, R>) -> Self {
        SerFnMut {
            inner: f.inner.into_arc(),
            types: PhantomData,
        }
    }
}

impl<A: 'static, R: 'static> From<SerFn<A, R>> for SerFnOnce<A, R> {
    fn from(f: SerFn<A, R>) -> Self {
        SerFnOnce {
            inner: f.inner.into_arc(),
            types: PhantomData,
        }
    }
}

impl<A, R> From<SerFnMut<A, R>> for SerFnOnce<A, R> {
    fn from(f: SerFnMut<A, R>) -> Self {
        SerFnOnce {
            inner: f.inner,
            types: PhantomData,
        }
    }
}
