//! [`AsyncSerFn`]: a serializable async function.
//!
//! Its calls are futures; it encodes, decodes and composes like [`SerFn`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{wire, DynFn, SerFn};
use crate::codec::{self, Limits};
use crate::compose;
use crate::erased::{Input, Slot};
use crate::error::{Error, Result};
use crate::function::AsyncCall;
use crate::registry::{SerializableFn, TypedAsyncFn};
use crate::signature::{Kind, Signature};

type BoxFuture<R> = Pin<Box<dyn Future<Output = R> + Send>>;

/// A typed call: the function's future, owning what it needs.
type Caller<A, R> = Arc<dyn Fn(A) -> BoxFuture<R> + Send + Sync>;

/// The deepest typed composition, as for [`SerFn::then`]: past it, calls
/// go through the erased pipeline, which loops instead of nesting futures.
const MAX_TYPED_DEPTH: usize = 64;

/// A serializable async function called through `&self`, any number of
/// times: its call is a future.
///
/// Several arguments are one tuple, as for `SerFn`. Arguments and outputs
/// are `Send`, so that a multi-threaded runtime can run its futures.
///
/// # Sync or async
/// Use a sync function ([`SerFn`], [`closure!`](crate::closure)`(... move |x| ...)`)
/// for work that keeps a core busy: parsing, hashing, numbers. A pool
/// runs one at a time per worker process, so its parallelism is the number
/// of workers. Use an async function (`closure!(... async move |x| ...)`,
/// `#[serfn::function] async fn`, [`AsyncCall`]) for work that mostly
/// waits: a request, a query, an upload. A worker runs up to
/// [`max_concurrent`](crate::PoolBuilder::max_concurrent) of them at once on
/// one thread of its own runtime (the `tokio` feature), so waiting items
/// overlap instead of queueing: a function that waits 100 ms gives about
/// ten items a second per worker as a `SerFn`, and about 200 times as many
/// as an `AsyncSerFn` with `max_concurrent(200)` (`cargo run --release
/// --features tokio --example async_throughput`).
/// An async body that keeps the thread busy holds back the other items of
/// its worker: give such work to a sync function.
///
/// Both cross the wire the same way, under signatures of different kinds
/// ([`Kind::Fn`], [`Kind::Async`]): bytes of one are refused as the other
/// with [`Error::SignatureMismatch`].
///
/// # Example
/// ```
/// use serfn::AsyncSerFn;
///
/// let base = 10;
/// let f: AsyncSerFn<u64, u64> = serfn::closure!("docs::delayed_add", [base: u64], async move |x: u64| -> u64 {
///     std::future::ready(()).await; // any future: a request, a query, a timer
///     x + base
/// });
/// let bytes = f.to_bytes()?;
/// let g = AsyncSerFn::<u64, u64>::from_bytes(&bytes)?;
/// # let _ = g;
/// // In a runtime: `assert_eq!(g.call(1).await, 11);`
///
/// // Not a sync function's bytes, and not readable as one.
/// assert!(matches!(serfn::SerFn::<u64, u64>::from_bytes(&bytes), Err(serfn::Error::SignatureMismatch { .. })));
/// # Ok::<(), serfn::Error>(())
/// ```
pub struct AsyncSerFn<A, R> {
    erased: Arc<dyn SerializableFn>,
    /// Calls with the types, when the function was built here or decoded as
    /// one registered function; `None` calls through the erased function.
    typed: Option<Typed<A, R>>,
}

/// A typed call and how deeply it nests.
#[doc(hidden)]
pub struct Typed<A, R> {
    call: Caller<A, R>,
    depth: usize,
}

impl<A, R> Clone for Typed<A, R> {
    fn clone(&self) -> Self {
        Typed {
            call: Arc::clone(&self.call),
            depth: self.depth,
        }
    }
}

impl<A, R> AsyncSerFn<A, R>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    /// Wraps a registered capture struct.
    ///
    /// # Example
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(Serialize, Deserialize)]
    /// struct Double;
    ///
    /// #[serfn::register]
    /// impl serfn::AsyncCall<u32> for Double {
    ///     type Output = u32;
    ///     async fn call(&self, x: u32) -> u32 {
    ///         2 * x
    ///     }
    /// }
    ///
    /// let double = serfn::AsyncSerFn::new(Double);
    /// assert_eq!(double.signature().to_string(), "Async(u32) -> u32");
    /// ```
    pub fn new<F: AsyncCall<A, Output = R> + SerializableFn>(f: F) -> Self {
        Self::from_arc(Arc::new(f))
    }

    /// The signature this handle stands for: of kind [`Kind::Async`].
    pub fn expected_signature() -> Signature {
        Signature::of::<A, R>(Kind::Async)
    }

    /// The registered name of the function: what its bytes carry.
    pub fn name(&self) -> &'static str {
        self.erased.name()
    }

    /// The function's signature.
    pub fn signature(&self) -> Signature {
        self.erased.signature()
    }

    /// Calls the function: a future that owns what it needs (`'static`),
    /// to await or to spawn. Nothing runs until it is polled.
    ///
    /// # Panics
    /// When polled, if the function panics, or if a decoded pipeline
    /// cannot pass a value between its stages (see [`try_call`](Self::try_call)).
    pub fn call(&self, args: A) -> impl Future<Output = R> + Send + 'static {
        let name = self.name();
        let call = self.try_call(args);
        async move {
            call.await
                .unwrap_or_else(|error| panic!("calling serfn function `{name}` failed: {error}"))
        }
    }

    /// Calls the function, returning the errors [`call`](Self::call)
    /// panics on.
    ///
    /// # Errors
    /// Only a function called through its encoded form (a pipeline decoded
    /// from bytes) can fail here: its stages pass values through the codec,
    /// whose `Serialize` impls may fail.
    pub fn try_call(&self, args: A) -> impl Future<Output = Result<R>> + Send + 'static {
        let (typed, erased) = match &self.typed {
            Some(typed) => (Some((typed.call)(args)), None),
            None => (None, Some((Arc::clone(&self.erased), args))),
        };
        async move {
            match (typed, erased) {
                (Some(typed), _) => Ok(typed.await),
                (None, Some((erased, args))) => {
                    // Started here, when polled: a pipeline's first stage
                    // may be sync, and runs as it starts.
                    let started = {
                        let mut input = Slot(Some(args));
                        erased.__serfn_call_async(Input::Slot(&mut input))?
                    };
                    let bytes = started.await?;
                    // Our own encoding: no limit to enforce.
                    codec::decode_value(&bytes, &Limits::unlimited())
                }
                (None, None) => unreachable!("one of the two is set above"),
            }
        }
    }

    /// Runs `self`, then `next` on its output: `next` may be a [`SerFn`] or
    /// an `AsyncSerFn`. The pipeline is async, and encodes like any `then`.
    ///
    /// # Example
    /// ```
    /// let fetch = serfn::closure!("docs::then::fetch", [], async move |id: u32| -> String {
    ///     format!("record {id}")
    /// });
    /// let len = serfn::closure!("docs::then::len", [], move |s: String| -> usize { s.len() });
    /// let both: serfn::AsyncSerFn<u32, usize> = fetch.then(len);
    /// assert_eq!(both.signature().to_string(), "Async(u32) -> usize");
    /// ```
    pub fn then<C, G>(self, next: G) -> AsyncSerFn<A, C>
    where
        C: Serialize + DeserializeOwned + Send + 'static,
        G: AsyncStage<R, C>,
    {
        let erased = compose::then(Arc::clone(&self.erased), next.erased());
        let typed = match (self.typed, next.typed()) {
            (Some(first), Some(second)) => chain(first, second),
            _ => None,
        };
        AsyncSerFn { erased, typed }
    }

    /// Encodes the function and its capture, as [`SerFn::to_bytes`] does.
    ///
    /// # Errors
    /// [`Error::Encode`] if the capture's `Serialize` impl fails.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64);
        self.to_bytes_into(&mut out)?;
        Ok(out)
    }

    /// Appends the envelope [`to_bytes`](Self::to_bytes) returns to `out`.
    ///
    /// # Errors
    /// [`Error::Encode`] if the capture's `Serialize` impl fails.
    pub fn to_bytes_into(&self, out: &mut Vec<u8>) -> Result<()> {
        wire::write_envelope(&*self.erased, out)
    }

    /// Decodes an `AsyncSerFn` from bytes made by [`to_bytes`](Self::to_bytes),
    /// under the default [`Limits`].
    ///
    /// # Errors
    /// A typed error for any bad input (see [`from_bytes`](crate::from_bytes));
    /// [`Error::SignatureMismatch`] if the bytes hold a function of another
    /// signature, a sync function among them.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        wire::read_envelope(bytes, Kind::Async, Self::expected_signature).map(Self::from_arc)
    }

    /// Forgets the types: a [`DynFn`], which a pool's worker runs.
    pub fn into_dyn(self) -> DynFn {
        DynFn::from_arc(self.erased)
    }

    fn from_arc(f: Arc<dyn SerializableFn>) -> Self {
        let mut slot: Option<Arc<dyn TypedAsyncFn<A, R>>> = None;
        match f.__serfn_into_typed(&mut slot) {
            Some(erased) => AsyncSerFn {
                erased,
                typed: None,
            },
            None => {
                let typed = slot.expect("`__serfn_into_typed` moved the function into the slot");
                let erased: Arc<dyn SerializableFn> = typed.clone();
                AsyncSerFn {
                    erased,
                    typed: Some(Typed {
                        call: Arc::new(move |args| {
                            Arc::clone(&typed).__serfn_typed_call_async(args)
                        }),
                        depth: 1,
                    }),
                }
            }
        }
    }
}

/// `first` then `second`, typed; `None` past [`MAX_TYPED_DEPTH`].
fn chain<A, B, C>(first: Typed<A, B>, second: Typed<B, C>) -> Option<Typed<A, C>>
where
    A: 'static,
    B: Send + 'static,
    C: 'static,
{
    let depth = first.depth + second.depth;
    if depth > MAX_TYPED_DEPTH {
        return None;
    }
    let (f, g) = (first.call, second.call);
    Some(Typed {
        call: Arc::new(move |args| {
            let started = f(args);
            let g = Arc::clone(&g);
            Box::pin(async move { g(started.await).await })
        }),
        depth,
    })
}

/// What may follow an [`AsyncSerFn`] in a `then`: a [`SerFn`] or another
/// `AsyncSerFn` taking `B`. Sealed.
pub trait AsyncStage<B, C>: sealed::Sealed {
    #[doc(hidden)]
    fn erased(&self) -> Arc<dyn SerializableFn>;
    #[doc(hidden)]
    fn typed(self) -> Option<Typed<B, C>>;
}

mod sealed {
    pub trait Sealed {}
    impl<B, C> Sealed for crate::SerFn<B, C> {}
    impl<B, C> Sealed for crate::AsyncSerFn<B, C> {}
}

impl<B, C> AsyncStage<B, C> for AsyncSerFn<B, C> {
    fn erased(&self) -> Arc<dyn SerializableFn> {
        Arc::clone(&self.erased)
    }

    fn typed(self) -> Option<Typed<B, C>> {
        self.typed
    }
}

impl<B, C> AsyncStage<B, C> for SerFn<B, C>
where
    B: Serialize + DeserializeOwned + Send + 'static,
    C: Serialize + DeserializeOwned + Send + 'static,
{
    fn erased(&self) -> Arc<dyn SerializableFn> {
        self.inner.erased()
    }

    fn typed(self) -> Option<Typed<B, C>> {
        let depth = self.inner.typed_depth().unwrap_or(1);
        Some(Typed {
            call: Arc::new(move |args| {
                let f = self.clone();
                Box::pin(async move { f.call(args) })
            }),
            depth,
        })
    }
}

impl<A, R> SerFn<A, R>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    /// Runs `self`, then the async `next` on its output: an async pipeline.
    /// (An async function followed by a sync one is [`AsyncSerFn::then`].)
    ///
    /// # Example
    /// ```
    /// let parse = serfn::closure!("docs::then_async::parse", [], move |s: String| -> u32 { s.len() as u32 });
    /// let fetch = serfn::closure!("docs::then_async::fetch", [], async move |n: u32| -> u32 { n + 1 });
    /// let both = parse.then_async(fetch);
    /// let back = serfn::AsyncSerFn::<String, u32>::from_bytes(&both.to_bytes()?)?;
    /// assert_eq!(back.signature().to_string(), "Async(alloc::string::String) -> u32");
    /// # Ok::<(), serfn::Error>(())
    /// ```
    pub fn then_async<C>(self, next: AsyncSerFn<R, C>) -> AsyncSerFn<A, C>
    where
        C: Serialize + DeserializeOwned + Send + 'static,
    {
        let erased = compose::then(self.inner.erased(), Arc::clone(&next.erased));
        let typed = match (AsyncStage::typed(self), next.typed) {
            (Some(first), Some(second)) => chain(first, second),
            _ => None,
        };
        AsyncSerFn { erased, typed }
    }
}

impl<A, R> TryFrom<DynFn> for AsyncSerFn<A, R>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    type Error = Error;

    /// Gives the types back, after checking them.
    fn try_from(f: DynFn) -> Result<Self> {
        let expected = Self::expected_signature();
        let found = f.signature();
        if expected.accepts(&found) {
            Ok(Self::from_arc(f.into_arc()))
        } else {
            Err(Error::SignatureMismatch {
                name: f.name().into(),
                expected: expected.to_string(),
                found: found.to_string(),
            })
        }
    }
}

impl<A, R> Clone for AsyncSerFn<A, R> {
    fn clone(&self) -> Self {
        AsyncSerFn {
            erased: Arc::clone(&self.erased),
            typed: self.typed.clone(),
        }
    }
}

impl<A, R> fmt::Debug for AsyncSerFn<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AsyncSerFn")
            .field(&self.erased.name())
            .field(&format_args!("{}", self.erased.signature()))
            .finish()
    }
}

impl<A, R> Serialize for AsyncSerFn<A, R> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        wire::serialize(&*self.erased, serializer)
    }
}

impl<'de, A, R> Deserialize<'de> for AsyncSerFn<A, R>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        if crate::schema::tracing() {
            return super::trace::trace_function::<D, A, R>(deserializer, Kind::Async)
                .map(Self::from_arc);
        }
        wire::deserialize(deserializer, Some(Self::expected_signature())).map(Self::from_arc)
    }
}
