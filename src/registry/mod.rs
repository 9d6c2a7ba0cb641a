//! Every function this binary registers, by name, and [`SerializableFn`],
//! the type-erased trait each implements.
//!
//! The macros submit one [`Registration`] per function through `inventory`,
//! at link time: there is no set-up call. Decoding looks names up here, so
//! only functions compiled into this binary can ever be called. The trait
//! and the registration name each other, so they live here together; the
//! calling convention they use is `erased`, which depends on neither.
//!
//! At start-up, [`check`] finds names registered twice, and [`trace_all`]
//! traces every function's layout (see below), so that the first task does
//! not pay for it and a layout that cannot be traced is known at once.
//!
//! # Layout tracing
//! Each function's envelope carries fingerprints of its capture's layout
//! and of its argument and output types' layouts: their serde data model,
//! traced with `serde-reflection`. Tracing runs the types' `Deserialize` on
//! values the tracer makes up (zeros, empty strings and sequences, each
//! enum's variants in turn), once per type per process, on a thread of its
//! own (so that a `Deserialize` that panics on a made-up value leaves the
//! type *untraced* and the caller unharmed). It runs the first time a
//! function's fingerprints are needed: its first encode or decode
//! (`to_bytes`, `from_bytes`, a pool shipping it), or [`trace_all`], which
//! pool and Redis workers call before they take work. A type that cannot be
//! traced still encodes and decodes, but its layout is not checked: see
//! [`Registration::layout`].

use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use fnv::FnvHashMap;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::Limits;
use crate::erased::{ArgSlot, AsyncOutput, Input, Output, StageBatch};
use crate::error::{Error, Result};
use crate::function::{AsyncCall, Call};
use crate::signature::{Kind, Signature, TypeInfo};

/// A registered function with its captured state, type-erased.
///
/// Implemented by [`#[serfn::register]`](crate::register) and the other
/// macros, never by hand. `Box<dyn SerializableFn>` implements serde's
/// `Serialize` and `Deserialize` through typetag, tagged with the registered
/// name; the handles ([`SerFn`](crate::SerFn), [`DynFn`](crate::DynFn), ...)
/// add the version and signature checks and are what most code should use.
///
/// The `__serfn_` methods are the calling convention of the handles and may
/// change in any release.
#[typetag::serde]
pub trait SerializableFn: Send + Sync + 'static {
    /// The registered name.
    fn name(&self) -> &'static str {
        self.__serfn_registration().name()
    }

    /// The function's signature.
    fn signature(&self) -> Signature;

    #[doc(hidden)]
    fn __serfn_registration(&self) -> &'static Registration;

    /// Appends the encoding of the capture: what the registration's
    /// decoder reads back.
    #[doc(hidden)]
    fn __serfn_encode_capture(&self, out: &mut Vec<u8>) -> Result<()>;

    /// Writes the encoding of the capture to `out`: the bytes
    /// [`__serfn_encode_capture`](Self::__serfn_encode_capture) appends,
    /// without holding them whole (registered capture types, `then` and
    /// `bind` encode straight into `out`; this default goes through a `Vec`).
    #[doc(hidden)]
    fn __serfn_write_capture(&self, out: &mut crate::codec::CaptureWriter<'_>) -> Result<()> {
        let mut bytes = Vec::new();
        self.__serfn_encode_capture(&mut bytes)?;
        std::io::Write::write_all(out, &bytes).map_err(Error::encode)
    }

    #[doc(hidden)]
    fn __serfn_call(&self, input: Input<'_>, output: Output<'_>) -> Result<()>;

    #[doc(hidden)]
    fn __serfn_call_mut(&mut self, input: Input<'_>, output: Output<'_>) -> Result<()>;

    #[doc(hidden)]
    fn __serfn_call_once(self: Arc<Self>, input: Input<'_>, output: Output<'_>) -> Result<()>;

    /// Starts an async call: takes the argument from `input` now and returns
    /// the future of the result's encoding. Only `Async` functions, and
    /// pipelines holding one, run this way.
    #[doc(hidden)]
    fn __serfn_call_async(self: Arc<Self>, input: Input<'_>) -> Result<AsyncOutput> {
        let _ = input;
        let found = self.signature();
        Err(Error::SignatureMismatch {
            name: self.name().into(),
            expected: Signature::new(Kind::Async, found.args(), found.output()).to_string(),
            found: found.to_string(),
        })
    }

    /// A deep copy: through the capture's `Clone` when it has one, otherwise
    /// through the codec.
    #[doc(hidden)]
    fn __serfn_clone(&self) -> Result<Arc<dyn SerializableFn>>;

    /// An empty slot for this function's output, for pipelines.
    #[doc(hidden)]
    fn __serfn_output_slot(&self) -> Box<dyn ArgSlot>;

    /// The argument type left after binding the first `bound` elements of
    /// the argument tuple, if the argument is a tuple that long.
    #[doc(hidden)]
    fn __serfn_args_after(&self, bound: usize) -> Option<TypeInfo>;

    /// Checks that `prefix` is the encoding of the first `bound` elements
    /// of the argument tuple, as their declared types, and nothing more:
    /// how a decoded `bind` is refused before it can be called.
    #[doc(hidden)]
    fn __serfn_check_bound(&self, bound: usize, prefix: &[u8]) -> Result<()>;

    /// Whether what is left after binding `bound` leading elements is the
    /// last element of a pair: see [`__serfn_wire_tupled`](Self::__serfn_wire_tupled).
    #[doc(hidden)]
    fn __serfn_pair_last_after(&self, bound: usize) -> bool {
        let _ = bound;
        false
    }

    /// Whether the signature fingerprint this function is encoded with
    /// names its argument `B` as the 1-tuple `(B,)`: a `bind` of the first
    /// of a pair, which took `(B,)` before it took `B`. The encodings of `B`
    /// and `(B,)` are the same bytes, and so are those of the function.
    #[doc(hidden)]
    fn __serfn_wire_tupled(&self) -> bool {
        false
    }

    /// Whether [`__serfn_call_batch`](Self::__serfn_call_batch) and
    /// [`__serfn_batch_stage`](Self::__serfn_batch_stage) are implemented.
    #[doc(hidden)]
    fn __serfn_batches(&self) -> bool {
        false
    }

    /// Calls an `Fn` once per element of `args` (the encoding of a sequence
    /// of arguments) in one typed pass, appending the results and the panics
    /// (as `codec::decode_batch_results` reads them) to `out`: how a pool's
    /// worker runs a chunk.
    #[doc(hidden)]
    fn __serfn_call_batch(&self, args: &[u8], limits: &Limits, out: &mut Vec<u8>) -> Result<()> {
        let _ = (args, limits, out);
        Err(Error::SignatureMismatch {
            name: self.name().into(),
            expected: "a function that runs batches".into(),
            found: self.signature().to_string(),
        })
    }

    /// Runs an `Fn` as one stage of a pipeline's chunk: once per value the
    /// stage before left in `batch`, leaving the results for the next.
    #[doc(hidden)]
    fn __serfn_batch_stage(&self, batch: &mut StageBatch<'_>) -> Result<()> {
        let _ = batch;
        Err(Error::SignatureMismatch {
            name: self.name().into(),
            expected: "a function that runs batches".into(),
            found: self.signature().to_string(),
        })
    }

    /// The stages this function runs, in order: itself, unless it is a pipeline.
    #[doc(hidden)]
    fn __serfn_into_stages(self: Arc<Self>) -> Vec<Arc<dyn SerializableFn>>;

    /// Moves `self` into `target` if `target` is an
    /// `Option<Arc<dyn TypedFn<A, R>>>` of this function's own types, and
    /// returns `None`; otherwise returns `self`. How a handle resolves its
    /// typed call target once, when it is built or decoded.
    #[doc(hidden)]
    fn __serfn_into_typed(self: Arc<Self>, target: &mut dyn Any)
        -> Option<Arc<dyn SerializableFn>>;

    /// Decodes `capture` into `self`, replacing its capture, and returns
    /// `true`; `false`, untouched, if this function is not
    /// [`recycled`](Registration::recycled) or `capture` does not decode
    /// (the caller's full path then says why). What lets a handle reuse the
    /// allocation of a function it decoded before.
    #[doc(hidden)]
    fn __serfn_decode_in_place(&mut self, capture: &[u8]) -> bool {
        let _ = capture;
        false
    }
}

/// A registered `Fn` function called with its own types: what a
/// [`SerFn`](crate::SerFn) calls, one virtual call and no slots.
#[doc(hidden)]
pub trait TypedFn<A, R>: SerializableFn {
    /// Calls the function.
    fn __serfn_typed_call(&self, args: A) -> R;
}

impl<T, A> TypedFn<A, T::Output> for T
where
    T: Call<A> + SerializableFn,
    A: Serialize + DeserializeOwned + 'static,
{
    #[inline]
    fn __serfn_typed_call(&self, args: A) -> T::Output {
        self.call(args)
    }
}

/// A registered `Async` function called with its own types: what an
/// [`AsyncSerFn`](crate::AsyncSerFn) calls, with no encoding in between.
#[doc(hidden)]
pub trait TypedAsyncFn<A, R>: SerializableFn {
    /// Calls the function: its future, owning the function and the argument.
    fn __serfn_typed_call_async(
        self: Arc<Self>,
        args: A,
    ) -> Pin<Box<dyn Future<Output = R> + Send>>;
}

impl<T, A> TypedAsyncFn<A, T::Output> for T
where
    T: AsyncCall<A> + SerializableFn,
    A: Serialize + DeserializeOwned + Send + 'static,
{
    fn __serfn_typed_call_async(
        self: Arc<Self>,
        args: A,
    ) -> Pin<Box<dyn Future<Output = T::Output> + Send>> {
        Box::pin(async move { self.call(args).await })
    }
}

mod registration;
mod trace;

pub use self::registration::{DecodeFn, Registration};
pub(crate) use self::registration::{Direct, Fingerprints};
pub use self::trace::{trace_all, Untraced};

/// What the macros submit to `inventory`.
#[doc(hidden)]
pub struct Registered(pub &'static Registration);

inventory::collect!(Registered);

enum Entry {
    Unique(&'static Registration),
    Duplicate(Vec<&'static Registration>),
}

/// Keyed by the names' bytes, so that a decoder looks a name up as it reads it.
fn table() -> &'static FnvHashMap<&'static [u8], Entry> {
    // Names are this binary's own, not attacker-chosen keys: a fast hash is
    // safe (an input's name is hashed once, whatever it is).
    static TABLE: OnceLock<FnvHashMap<&'static [u8], Entry>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = FnvHashMap::default();
        for Registered(registration) in inventory::iter::<Registered> {
            table
                .entry(registration.name().as_bytes())
                .and_modify(|entry| match entry {
                    Entry::Unique(first) => *entry = Entry::Duplicate(vec![first, registration]),
                    Entry::Duplicate(all) => all.push(registration),
                })
                .or_insert(Entry::Unique(registration));
        }
        table
    })
}

thread_local! {
    /// The registration this thread found last.
    static LAST: Cell<Option<&'static Registration>> = const { Cell::new(None) };
}

/// Looks a name up, refusing unknown and ambiguous names.
pub(crate) fn lookup(name: &str) -> Result<&'static Registration> {
    lookup_bytes(name.as_bytes())
}

/// [`lookup`] of a name as it is encoded; a name that is not UTF-8 is the
/// decode error reading it as a `str` would have been.
pub(crate) fn lookup_bytes(name: &[u8]) -> Result<&'static Registration> {
    // Decodes tend to repeat one name (a pool's tasks, a batch of
    // envelopes): comparing it with the last found is a third of hashing it.
    if let Some(last) = LAST.get() {
        if last.name().as_bytes() == name {
            return Ok(last);
        }
    }
    match table().get(name) {
        Some(Entry::Unique(registration)) => {
            LAST.set(Some(registration));
            Ok(registration)
        }
        Some(Entry::Duplicate(all)) => Err(duplicate_error(all)),
        None => match std::str::from_utf8(name) {
            Ok(name) => Err(Error::UnknownFunction { name: name.into() }),
            Err(error) => Err(Error::decode(format!("a string is not UTF-8: {error}"))),
        },
    }
}

fn duplicate_error(all: &[&'static Registration]) -> Error {
    let locations: Vec<String> = all.iter().map(|r| r.location()).collect();
    Error::DuplicateFunction {
        name: all[0].name().into(),
        locations: locations.join(", "),
    }
}

/// Every function registered in this binary, sorted by name.
///
/// # Example
/// ```
/// for registration in serfn::registry::functions() {
///     println!("{} v{}: {:?}", registration.name(), registration.version(), registration.signature());
/// }
/// ```
pub fn functions() -> Vec<&'static Registration> {
    let mut all: Vec<&'static Registration> = inventory::iter::<Registered>
        .into_iter()
        .map(|Registered(registration)| *registration)
        .collect();
    all.sort_by_key(|registration| registration.name());
    all
}

/// Looks up a registered function by name.
///
/// # Errors
/// [`Error::UnknownFunction`] if no function has that name,
/// [`Error::DuplicateFunction`] if several do.
///
/// # Example
/// ```
/// let double = serfn::closure!("double", [], move |x: i32| -> i32 { 2 * x }, name = "docs::double");
/// assert_eq!(serfn::registry::get(double.name())?.name(), "docs::double");
/// assert!(matches!(serfn::registry::get("docs::nothing"), Err(serfn::Error::UnknownFunction { .. })));
/// # Ok::<(), serfn::Error>(())
/// ```
pub fn get(name: &str) -> Result<&'static Registration> {
    lookup(name)
}

/// Checks that no two registrations share a name.
///
/// typetag only notices a duplicate when it decodes one; call this at
/// start-up (or in a test) to learn of it at once.
///
/// # Errors
/// [`Error::DuplicateFunction`] for the first duplicated name, by name order,
/// listing where each registration is.
///
/// # Example
/// ```
/// serfn::registry::check()?;
/// # Ok::<(), serfn::Error>(())
/// ```
pub fn check() -> Result<()> {
    let mut duplicated: Vec<&Vec<&'static Registration>> = table()
        .values()
        .filter_map(|entry| match entry {
            Entry::Duplicate(all) => Some(all),
            Entry::Unique(_) => None,
        })
        .collect();
    duplicated.sort_by_key(|all| all[0].name());
    match duplicated.first() {
        Some(all) => Err(duplicate_error(all)),
        None => Ok(()),
    }
}
