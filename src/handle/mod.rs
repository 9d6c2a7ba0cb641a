//! Typed handles over a type-erased function: [`SerFn`], [`SerFnMut`],
//! [`SerFnOnce`], and the untyped [`DynFn`] a worker uses.
//!
//! Each holds an `Arc<dyn SerializableFn>` whose signature was checked when
//! the handle was built or decoded; calls then pass arguments and results
//! through typed slots on the stack, with no serialization and no allocation.

mod async_fn;
mod bind;
mod convert;
mod dyn_fn;
mod fn_mut;
mod fn_once;
mod target;
mod trace;
pub(crate) mod wire;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use self::async_fn::{AsyncSerFn, AsyncStage};
pub use self::dyn_fn::DynFn;
pub use self::fn_mut::SerFnMut;
pub use self::fn_once::SerFnOnce;
use self::target::{Inner, Target};
use crate::compose;
use crate::erased::{Input, Output, Slot};
use crate::error::{Error, Result};
use crate::function::Call;
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

/// The `# Example` of a method every handle has: the lines given, after
/// `f`, a `$handle<f64, f64>` of the `Fn` function `"examples::half"`.
macro_rules! handle_example {
    ($handle:ident, $($line:expr),* $(,)?) => {
        concat!(
            "# Example\n```\n",
            "let f = serfn::", stringify!($handle), "::<f64, f64>::from(serfn::closure!(\n",
            "    \"half\", [], move |x: f64| -> f64 { x / 2.0 }, name = \"examples::half\"\n));\n",
            $($line, "\n",)*
            "# Ok::<(), serfn::Error>(())\n```",
        )
    };
}

macro_rules! handle_common {
    ($handle:ident, $kind:expr, $doc_kind:literal) => {
        impl<A, R> $handle<A, R>
        where
            A: Serialize + DeserializeOwned + 'static,
            R: Serialize + DeserializeOwned + 'static,
        {
            /// The signature this handle stands for.
            ///
            #[doc = handle_example!($handle,
                concat!("let expected = serfn::", stringify!($handle), "::<f64, f64>::expected_signature();"),
                concat!("assert_eq!(expected.to_string(), \"", $doc_kind, "(f64) -> f64\");"),
                "assert!(expected.accepts(&f.signature()));",
            )]
            pub fn expected_signature() -> Signature {
                Signature::of::<A, R>($kind)
            }

            /// The registered name of the function: what its bytes carry.
            ///
            #[doc = handle_example!($handle, "assert_eq!(f.name(), \"examples::half\");")]
            pub fn name(&self) -> &'static str {
                self.inner.name()
            }

            /// The function's own signature, which may be of an earlier kind
            /// than the handle's (an `Fn` function in a `SerFnOnce`).
            ///
            #[doc = handle_example!($handle, "assert_eq!(f.signature().to_string(), \"Fn(f64) -> f64\");")]
            pub fn signature(&self) -> Signature {
                self.inner.signature()
            }

            /// Encodes the function and its capture: the same bytes as
            /// [`to_bytes`](crate::to_bytes), its header written directly.
            ///
            /// # Errors
            /// [`Error::Encode`] if the capture's `Serialize` impl fails.
            ///
            #[doc = handle_example!($handle,
                "let bytes = f.to_bytes()?;",
                "assert_eq!(bytes, serfn::to_bytes(&f)?);",
                concat!("let g = serfn::", stringify!($handle), "::<f64, f64>::from_bytes(&bytes)?;"),
                "assert_eq!(g.to_bytes()?, bytes);",
            )]
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
            #[doc = handle_example!($handle,
                "let mut buf = Vec::new();",
                "for _ in 0..3 {",
                "    buf.clear();",
                "    f.to_bytes_into(&mut buf)?;",
                "    assert_eq!(buf, f.to_bytes()?);",
                "}",
            )]
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
            ///
            #[doc = handle_example!($handle,
                "let bytes = f.to_bytes()?;",
                concat!("let g = serfn::", stringify!($handle), "::<f64, f64>::from_bytes(&bytes)?;"),
                "assert_eq!(g.name(), \"examples::half\");",
                "",
                "// Other types, or damaged bytes: a typed error, never a wrong call.",
                "assert!(matches!(",
                concat!("    serfn::", stringify!($handle), "::<i32, i32>::from_bytes(&bytes),"),
                "    Err(serfn::Error::SignatureMismatch { .. })",
                "));",
                concat!("assert!(serfn::", stringify!($handle), "::<f64, f64>::from_bytes(&bytes[..bytes.len() - 1]).is_err());"),
            )]
            pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
                wire::read_envelope(bytes, $kind, Self::expected_signature).map(Self::from_arc)
            }

            /// Forgets the types: a [`DynFn`] that calls through bytes.
            /// `try_from` gives them back, after checking them.
            ///
            #[doc = handle_example!($handle,
                "let untyped: serfn::DynFn = f.into_dyn();",
                "assert_eq!(untyped.name(), \"examples::half\");",
                concat!("let typed = serfn::", stringify!($handle), "::<f64, f64>::try_from(untyped)?;"),
                "assert_eq!(typed.signature().to_string(), \"Fn(f64) -> f64\");",
            )]
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
                    return crate::handle::trace::trace_function::<D, A, R>(deserializer, $kind).map(Self::from_arc);
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
    ///
    /// # Example
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(Serialize, Deserialize)]
    /// struct Scale(f64);
    ///
    /// #[serfn::register]
    /// impl serfn::Call<f64> for Scale {
    ///     type Output = f64;
    ///     fn call(&self, x: f64) -> f64 {
    ///         x * self.0
    ///     }
    /// }
    ///
    /// let double = serfn::SerFn::new(Scale(2.0));
    /// assert_eq!(double.call(21.0), 42.0);
    /// ```
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
    ///
    /// # Example
    /// ```
    /// // Several arguments are one tuple.
    /// let add = serfn::closure!("add", [], move |x: i32, y: i32| -> i32 { x + y });
    /// assert_eq!(add.call((2, 3)), 5);
    /// ```
    #[inline]
    pub fn call(&self, args: A) -> R {
        match &self.inner {
            Target::Typed(f) => f.__serfn_typed_call(args),
            Target::Composed(pipeline) => pipeline.call(args),
            Target::Erased(_) => self.call_erased(args),
        }
    }

    /// The erased call, out of line: inlined, its frame (slots for the
    /// arguments and the result) kept `call` itself from being inlined and
    /// cost the typed path a 320-byte stack frame per call.
    #[inline(never)]
    fn call_erased(&self, args: A) -> R {
        unwrap_call(&*self.inner, self.try_call(args))
    }

    /// Calls the function, returning the errors [`call`](Self::call) panics on.
    ///
    /// # Errors
    /// Only functions made by [`bind`](Self::bind) can fail here: they pass
    /// their arguments through the codec, whose `Serialize` impls may fail.
    ///
    /// # Example
    /// ```
    /// use serde::{Deserialize, Serialize, Serializer};
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
    /// let longer = serfn::closure!("count_longer", [], move |min: usize, words: Words| -> usize {
    ///     words.0.iter().filter(|w| w.len() >= min).count()
    /// });
    /// let words = || Words(vec!["serde".into(), String::new()]);
    /// assert_eq!(longer.try_call((3, words()))?, 1);
    /// // Bound, it re-encodes its arguments, which `Words` cannot do.
    /// let bound = longer.bind(3);
    /// assert!(matches!(bound.try_call(words()), Err(serfn::Error::Encode { .. })));
    /// # Ok::<(), serfn::Error>(())
    /// ```
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

handle_common!(SerFnMut, Kind::FnMut, "FnMut");
handle_common!(SerFnOnce, Kind::FnOnce, "FnOnce");
