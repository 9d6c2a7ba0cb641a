//! Serializable closures: a function plus the state it captured, sent to
//! another process or machine and called there.
//!
//! A closure becomes an explicit **capture struct** (serde data) paired with
//! a **registered, stable name**. Only functions registered in the receiving
//! binary can be called, so bytes from outside can never run arbitrary code,
//! unlike Python's pickle, cloudpickle or dill.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use serfn::{SerFn, SerFnMut};
//!
//! // 1. A capture struct and one attribute (the design's own way).
//! #[derive(Serialize, Deserialize)]
//! struct Scale {
//!     factor: f64,
//! }
//!
//! #[serfn::register]
//! impl serfn::Call<f64> for Scale {
//!     type Output = f64;
//!     fn call(&self, x: f64) -> f64 {
//!         x * self.factor
//!     }
//! }
//!
//! // 2. A plain function whose leading parameters are bound captures
//! //    (Python's `functools.partial`).
//! #[serfn::function]
//! fn affine(#[capture] slope: &f64, #[capture] intercept: &f64, x: f64) -> f64 {
//!     slope * x + intercept
//! }
//!
//! // 3. A closure with an explicit, typed capture list and a stable label.
//! let offset = 0.5;
//! let shift: SerFn<f64, f64> = serfn::closure!("shift", [offset: f64], move |x: f64| -> f64 { x + offset });
//!
//! let pipeline = SerFn::new(Scale { factor: 2.0 }).then(affine(3.0, 1.0)).then(shift);
//! let bytes = serfn::to_bytes(&pipeline)?;          // send these anywhere...
//! let decoded: SerFn<f64, f64> = serfn::from_bytes(&bytes)?; // ...decode in a binary that links the same code
//! assert_eq!(decoded.call(1.0), (2.0 * 3.0 + 1.0) + 0.5);
//!
//! // Stateful functions carry their state across the wire.
//! let mut total: SerFnMut<i64, i64> =
//!     serfn::closure!(mut "running_total", [sum: i64 = 0], move |x: i64| -> i64 { *sum += x; *sum });
//! total.call_mut(40);
//! let mut resumed = SerFnMut::<i64, i64>::from_bytes(&total.to_bytes()?)?;
//! assert_eq!(resumed.call_mut(2), 42);
//! # Ok::<(), serfn::Error>(())
//! ```
//!
//! # Where does it run
//!
//! | where | what runs it | use it when |
//! |---|---|---|
//! | in this process | the handle itself: [`SerFn::call`], [`SerFnMut::call_mut`], [`DynFn::call_bytes`] | bytes from a file, a queue or a protocol of your own are decoded with [`from_bytes`] and called here |
//! | worker processes on this machine | [`Pool`] (Unix) | many items or calls, CPU-bound, on one machine's cores: `pool.map(&f, items)` |
//! | worker processes on any machines | [`RedisExecutor`] (feature `redis`, Unix) | more cores than one machine has, workers that outlive a driver, results read again after a restart |
//!
//! [`Pool`] and [`RedisExecutor`] have the same `map`, `map_unordered`,
//! `call` and `submit`, with the same typed errors, and both implement
//! [`Executor`]: code generic over `impl Executor` runs on either. Start
//! with a `Pool`; move to a fleet when one machine is not enough. Their
//! pages link back here.
//!
//! # Encoding and decoding
//!
//! [`to_bytes`] encodes a function, or any serde value holding functions,
//! into an envelope: its format version, each function's registered name,
//! version and the fingerprints of its signature and its capture's layout,
//! the capture, and a CRC-32. [`from_bytes`] decodes it in any process that
//! links the same definitions: it checks all of that before a byte of a
//! capture is decoded, and decodes under the default [`Limits`]
//! ([`Limits::from_bytes`] sets others), so bad input is a typed [`Error`].
//! [`to_bytes_signed`] and [`from_bytes_signed`] add an HMAC tag for bytes
//! that cross a store others can write; [`to_writer`] and [`from_reader`]
//! frame envelopes on a stream. The handles' own `to_bytes` and `from_bytes`
//! ([`SerFn::to_bytes`], [`SerFn::from_bytes`]) do the same for one function,
//! faster.
//!
//! # Which one do I use
//!
//! | To define a function | when |
//! |---|---|
//! | [`closure!`] | a closure over a few local values: the capture list names and types them, a label names the function. The quickest way. |
//! | [`#[function]`](macro@function) | a plain function whose leading `#[capture]` parameters are bound by calling it (Python's `functools.partial`). |
//! | [`#[register]`](macro@register) | your own capture struct with an `impl` of [`Call`], [`CallMut`] or [`CallOnce`]: full control of its fields, derives, `name` and `version`. |
//! | [`register_instance!`] | a generic capture struct: registered once per concrete type, which typetag needs. |
//!
//! | To hold one | when |
//! |---|---|
//! | [`SerFn<A, R>`](SerFn) | called through `&self`, any number of times: most functions, and what [`Pool::map`], [`Pool::call`] and [`Pool::submit`] take. |
//! | [`SerFnMut<A, R>`](SerFnMut) | its state changes with each call (a counter, an accumulator): `call_mut`, [`Pool::fold`]. |
//! | [`SerFnOnce<A, R>`](SerFnOnce) | consumed by its call, which may move its capture out: `call_once`, [`Pool::call_once`]. |
//! | [`AsyncSerFn<A, R>`](AsyncSerFn) | its body awaits (a request, a query): `closure!("l", [], async move \|x: A\| -> R { .. })`, an `async fn`, or [`AsyncCall`]. A pool's or a fleet's worker overlaps its items (feature `tokio`, [`PoolBuilder::max_concurrent`], `RedisWorker::max_concurrent`); keep CPU-bound work in a `SerFn`. See [`handle::AsyncSerFn`](AsyncSerFn#sync-or-async). |
//! | [`DynFn`] | the types are unknown where it is held: a generic worker or router that decodes any registered function and calls it through bytes. |
//! | [`SerializableFn`] | a bound in code generic over capture structs ([`SerFn::new`] takes one). `Box<dyn SerializableFn>` is typetag's trait object, without the handles' signature check: prefer a handle. |
//!
//! A function of an earlier kind works as a later one: `SerFnMut::from(f)`
//! or `SerFnOnce::from(f)` for a `SerFn` `f`. `A` is one type; several
//! arguments are one tuple, `SerFn<(f64, u32), f64>`.
//!
//! # Worker processes
//! [`Pool`] runs functions in local worker processes: `map`, `map_unordered`,
//! `call`, `submit` (a [`Task`] to wait on or `.await`), `fold` with a
//! `SerFnMut` per worker. Each function is shipped to each worker once; a
//! panic, a dead worker or a timeout is a typed [`Error`] for the items it
//! touched. [`worker::init`] first in `main` lets the pool re-execute the
//! current program as its workers:
//!
//! ```no_run
//! serfn::worker::init();
//! let pool = serfn::Pool::new()?;
//! let offset = 0.5;
//! let shift: serfn::SerFn<f64, f64> = serfn::closure!("shift", [offset: f64], move |x: f64| -> f64 { x + offset });
//! let shifted: Vec<f64> = pool.map(&shift, vec![1.0, 2.0]).collect::<serfn::Result<_>>()?;
//! assert_eq!(shifted, [1.5, 2.5]);
//! # Ok::<(), serfn::Error>(())
//! ```
//!
//! # Functions inside captures
//! A capture may hold other serialized functions (a `SerFn` is serde data),
//! which makes higher-order functions: the inner function travels inside
//! the outer one's bytes and is called in the worker.
//!
//! ```
//! use serfn::SerFn;
//!
//! let square: SerFn<f64, f64> = serfn::closure!("square", [], move |x: f64| -> f64 { x * x });
//! // `twice` captures `f` and applies it two times.
//! let twice: SerFn<f64, f64> =
//!     serfn::closure!("twice", [f: SerFn<f64, f64> = square], move |x: f64| -> f64 { f.call(f.call(x)) });
//!
//! let decoded = SerFn::<f64, f64>::from_bytes(&twice.to_bytes()?)?;
//! assert_eq!(decoded.call(3.0), 81.0);
//! // Or through a pool: `pool.map(&twice, items)` ships both functions once per worker.
//! # Ok::<(), serfn::Error>(())
//! ```
//!
//! # Errors from your functions
//! A function that returns `Result<T, `[`Failure`]`>` can use `?` on any
//! error type: the caller gets the message, the source chain and the type
//! name. A panic in a pool's worker is [`Error::Panicked`] with the panic's
//! `file:line:column`, and its backtrace when `RUST_BACKTRACE=1` is in the
//! workers' environment.
//!
//! Decoding untrusted bytes returns a typed [`Error`], never panics, never
//! calls a function other than the one encoded, and never allocates more
//! than a small multiple of [`Limits::max_bytes`]. Every envelope carries a
//! format version, the function's name, its registration version, the
//! fingerprints of its signature and of its capture's layout, and a CRC-32:
//! all are checked before a single capture byte is decoded (for a pipeline,
//! the signature it claims is checked against the one asked for before any
//! stage is decoded). The CRC catches accidents only: the other checks hold
//! against bytes forged with a valid checksum. Whatever `from_bytes`
//! accepts can be called without an error from its own bytes (a `bind`'s
//! bound values are checked as their types when decoded).
//!
//! # Names, versions and layouts
//! A function's name is what the bytes carry. It defaults to the module path
//! and the type name; `name = "..."` fixes it so that it survives a refactor.
//! Each registration traces its capture's serde data model once (field
//! names and order, variant names, primitive types, sequence and map
//! shapes; never Rust type names or module paths): bytes from a build whose
//! capture changed without a version bump fail with
//! [`Error::LayoutChanged`] instead of decoding into garbage. Register the
//! new layout with `version = 2`; old bytes then fail with
//! [`Error::VersionMismatch`]. [`registry::check`] reports duplicate names
//! at start-up.
//!
//! Tracing a layout runs the type's `Deserialize` on values the tracer
//! makes up (zeros, empty strings, each variant in turn), on a thread of
//! its own, once per type per process: at a function's first encode or
//! decode, or for every registered function at once with
//! [`registry::trace_all`], which pool and Redis workers call before they
//! take work. A type whose `Deserialize` refuses made-up values (such as
//! `NonZeroU32`) cannot be traced: its layout is unchecked, and
//! `trace_all` lists it (see the [`registry`](registry#layout-tracing) docs).
//!
//! # Generic capture structs
//! typetag registers concrete types only, so a generic capture struct is
//! registered once per concrete type, with [`register_instance!`]:
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct AddAll<T> {
//!     items: Vec<T>,
//! }
//!
//! impl<T> serfn::Call<T> for AddAll<T>
//! where
//!     T: Copy + std::iter::Sum<T> + std::ops::Add<Output = T> + Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
//! {
//!     type Output = T;
//!     fn call(&self, x: T) -> T {
//!         x + self.items.iter().copied().sum::<T>()
//!     }
//! }
//!
//! serfn::register_instance!(AddAll<i32> as Call<i32>, name = "add_all::i32");
//! serfn::register_instance!(AddAll<f64> as Call<f64>, name = "add_all::f64");
//!
//! let f = serfn::SerFn::new(AddAll { items: vec![1, 2] });
//! assert_eq!(serfn::SerFn::<i32, i32>::from_bytes(&f.to_bytes()?)?.call(3), 6);
//! # Ok::<(), serfn::Error>(())
//! ```
//!
//! # Features and platforms
//!
//! - `bincode` (default): the wire format is bincode 2.
//! - `postcard`: the wire format is postcard 1 instead, for builds that must
//!   not contain bincode (flagged unmaintained, RUSTSEC-2025-0141): use
//!   `default-features = false, features = ["postcard"]`. With both enabled,
//!   postcard is used (a dependency's default features cannot override the
//!   choice); with neither, the build fails. Its envelopes carry another
//!   version byte ([`codec::FORMAT_VERSION`]), so a build of the other
//!   format refuses them with [`Error::Version`]: all processes of a job
//!   need the same format.
//! - `progress`: an indicatif bar for long maps. `redis`: `serfn::redis`, a fleet
//!   over Redis Streams. `tracing`: events for restarts and timeouts.
//! - `async`: the drivers' forms for async code, on a [`Pool`] and a fleet
//!   alike (and in [`Executor`]): `map_stream` and `map_unordered_stream`
//!   give a `futures_core::Stream` of results as they come, `call_async`
//!   a future of one result; a [`Task`] is always a `Future`. None of them
//!   blocks a runtime thread, and none needs a runtime: an answer wakes the
//!   task. Dropping a stream stops the map, as dropping the iterator does.
//!
//!   ```no_run
//!   # #[cfg(feature = "async")]
//!   async fn total(pool: &serfn::Pool, f: &serfn::SerFn<u64, u64>) -> serfn::Result<u64> {
//!       use futures_core::Stream;
//!       let mut results = pool.map_stream(f, 0..1_000_000);
//!       let mut sum = 0;
//!       while let Some(r) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut results).poll_next(cx)).await {
//!           sum += r?; // or `StreamExt::next` of the `futures` crate
//!       }
//!       Ok(sum)
//!   }
//!   ```
//!
//! The codec, the handles and the registry build on every platform std
//! supports. The process pool ([`Pool`], [`worker`], [`Executor`]) and the
//! Redis backend need Unix (workers talk over Unix sockets and are
//! re-executions of the current program) and are absent from other
//! targets' builds.
//!
//! The repository's `ARCHITECTURE.md` maps the code, `SECURITY.md` states
//! what bytes can and cannot do, and `BENCHMARKS.md` gives every
//! measurement with its command.
//!
#![cfg_attr(
    all(unix, feature = "redis"),
    doc = "[`RedisExecutor`]: crate::redis::RedisExecutor"
)]
#![cfg_attr(
    not(all(unix, feature = "redis")),
    doc = "[`RedisExecutor`]: https://docs.rs/serfn/latest/serfn/redis/struct.RedisExecutor.html"
)]
#![deny(missing_docs)]
// docs.rs builds with `--cfg docsrs`: feature-gated items show their feature.
#![cfg_attr(docsrs, feature(doc_cfg))]
// Denied, not forbidden: one function allows it, the read-only mapping of a
// sealed memfd in `pool/shm/linux.rs`, where its invariant is written down.
#![deny(unsafe_code)]

pub mod codec;
mod compose;
mod erased;
mod error;
#[cfg(unix)]
mod event;
#[cfg(unix)]
mod executor;
mod function;
mod handle;
pub mod plumbing;
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub mod pool;
#[cfg(all(unix, feature = "redis"))]
#[cfg_attr(docsrs, doc(cfg(all(unix, feature = "redis"))))]
pub mod redis;
pub mod registry;
mod schema;
mod signature;
#[cfg(unix)]
mod sync;
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub mod worker;

// Inlined: the front page lists them with their summaries.
#[doc(inline)]
pub use crate::codec::{
    from_bytes, from_bytes_signed, from_reader, to_bytes, to_bytes_signed, to_writer, Limits,
};
pub use crate::error::{Error, Failure, Result};
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub use crate::executor::Executor;
pub use crate::function::{AsyncCall, Call, CallMut, CallOnce};
pub use crate::handle::{AsyncSerFn, AsyncStage, DynFn, SerFn, SerFnMut, SerFnOnce};
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub use crate::pool::{Map, MapUnordered, Pool, PoolBuilder, Progress, Stats, Task, WorkerExit};
pub use crate::registry::SerializableFn;
// At the root for code written before `plumbing`; documented there.
#[doc(hidden)]
pub use crate::plumbing::{ArgTuple, Kind, Layout, Signature, SplitFirst, TypeInfo};
pub use serfn_macros::{closure, function, main, register};

/// Registers one concrete instance of a generic capture struct.
///
/// `serfn::register_instance!(Type<Concrete> as Call<Args>, name = "...", version = N)`;
/// the trait is `Call`, `CallMut` or `CallOnce`, `name` defaults to the
/// module path and the type as written, `version` to 1. See the
/// [crate docs](crate#generic-capture-structs).
///
/// # Example
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Repeat<T> {
///     item: T,
/// }
///
/// impl<T: Clone + serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static> serfn::Call<usize> for Repeat<T> {
///     type Output = Vec<T>;
///     fn call(&self, n: usize) -> Vec<T> {
///         vec![self.item.clone(); n]
///     }
/// }
///
/// serfn::register_instance!(Repeat<String> as Call<usize>, name = "repeat::string", version = 2);
///
/// let f = serfn::SerFn::new(Repeat { item: "ab".to_string() });
/// assert_eq!((f.name(), f.call(2)), ("repeat::string", vec!["ab".to_string(); 2]));
/// assert_eq!(serfn::registry::get("repeat::string")?.version(), 2);
/// # Ok::<(), serfn::Error>(())
/// ```
#[macro_export]
macro_rules! register_instance {
    ($ty:ty as $kind:ident<$args:ty> $(, name = $name:expr)? $(, version = $version:expr)? $(,)?) => {
        $crate::__private::register_erased! {
            kind: $kind,
            ty: $ty,
            args: $args,
            name: $crate::__register_instance_default!(($($name)?) $crate::__private::concat!($crate::__private::module_path!(), "::", stringify!($ty))),
            version: $crate::__register_instance_default!(($($version)?) 1),
        }
    };
}

/// Lets a `cargo test` binary be a pool's worker: put `serfn::test_support!();`
/// at the top level of the test crate (libtest owns its `main`).
///
/// It defines a test named [`worker::TEST_ENTRY`](crate::worker::TEST_ENTRY)
/// that calls [`worker::init`](crate::worker::init); a pool started from the
/// test binary runs the binary filtered to that test. Run normally, the test
/// passes at once.
///
/// # Example
/// ```no_run
/// // tests/test_squares.rs
/// serfn::test_support!();
///
/// #[test]
/// fn squares_in_workers() -> serfn::Result<()> {
///     let pool = serfn::Pool::builder().workers(2).build()?;
///     let square = serfn::closure!("square", [], move |x: u64| -> u64 { x * x });
///     assert_eq!(pool.call(&square, 7)?, 49);
///     Ok(())
/// }
/// # fn main() {}
/// ```
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
#[macro_export]
macro_rules! test_support {
    () => {
        #[test]
        fn __serfn_worker_entry() {
            $crate::worker::init_test_entry();
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __register_instance_default {
    (() $default:expr) => {
        $default
    };
    (($given:expr) $default:expr) => {
        $given
    };
}

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

// Keeps the README's examples compiling and passing.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
