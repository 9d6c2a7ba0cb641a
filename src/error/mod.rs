//! The one error type of serfn.

mod failure;
mod panic;
// How errors cross a process boundary: the pool and the fleet are Unix-only.
#[cfg(unix)]
mod wire;

use std::error::Error as StdError;

pub use self::failure::Failure;
#[cfg(unix)]
pub(crate) use self::panic::install_hook;
pub(crate) use self::panic::{catch, Panic};
#[cfg(unix)]
pub(crate) use self::wire::WireError;

/// A boxed error from the codec or from I/O, kept out of [`Error`]'s public
/// types so that changing the wire format does not change this API.
pub type BoxedSource = Box<dyn StdError + Send + Sync + 'static>;

/// Everything that can go wrong when encoding, decoding or calling a
/// serialized function.
///
/// Every decoding failure is one of these variants, whatever the bytes were:
/// serfn never panics on bad input and never calls a function other than the
/// one that was encoded.
///
/// The variants are `#[non_exhaustive]` as a whole: new failure modes (a
/// worker that died, a timeout) are added without a breaking release. The
/// text of [`Display`](std::fmt::Display) is for people and may change; match
/// on the variants instead.
///
/// An error raised inside a [`Pool`](crate::Pool)'s worker reaches the
/// caller as the same variant with the same fields. A boxed source
/// ([`Decode`](Error::Decode), [`Encode`](Error::Encode), [`Io`](Error::Io))
/// arrives as its message, followed once by `(in worker process PID)`; an
/// I/O error keeps its [`ErrorKind`](std::io::ErrorKind) when it is a common
/// one, and is [`Other`](std::io::ErrorKind::Other) otherwise.
///
/// # Example
/// ```
/// use serfn::{Error, SerFn};
///
/// let f = serfn::closure!("inc", [], move |x: i32| -> i32 { x + 1 });
/// let bytes = f.to_bytes()?;
/// match SerFn::<String, String>::from_bytes(&bytes) {
///     Err(Error::SignatureMismatch { name, expected, found }) => {
///         assert!(name.ends_with("inc"));
///         assert_eq!((expected.as_str(), found.as_str()), ("Fn(alloc::string::String) -> alloc::string::String", "Fn(i32) -> i32"));
///     }
///     other => panic!("expected a signature mismatch, got {other:?}"),
/// }
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes name a function that this binary does not register.
    ///
    /// Either the function lives in code this binary does not link, or it was
    /// renamed. Registered names are listed by [`registry::functions`](crate::registry::functions).
    #[error("function `{name}` is not registered in this binary")]
    UnknownFunction {
        /// The name found in the bytes.
        name: String,
    },

    /// Two registrations in this binary share a name, so the bytes cannot be
    /// decoded without guessing which one was meant.
    ///
    /// [`registry::check`](crate::registry::check) reports these at start-up.
    #[error("function name `{name}` is registered more than once in this binary (at {locations})")]
    DuplicateFunction {
        /// The name registered twice.
        name: String,
        /// Where the registrations are, as `file:line`, comma-separated.
        locations: String,
    },

    /// The function's argument or output types, or its kind (`Fn`, `FnMut`,
    /// `FnOnce`), are not the ones the caller asked for.
    ///
    /// Raised before any capture byte is decoded when the registry knows the
    /// signature, so the wrong function is never called.
    #[error("function `{name}` has signature {found}, expected {expected}")]
    SignatureMismatch {
        /// The function's name.
        name: String,
        /// The signature the caller asked for, such as `Fn(f64) -> f64`.
        expected: String,
        /// The signature found, in the bytes or in this binary's registry.
        found: String,
    },

    /// The capture was encoded by a registration of another `version = N`:
    /// its layout changed, so decoding it would produce garbage.
    #[error("function `{name}` was encoded at version {found}, this binary registers version {registered}")]
    VersionMismatch {
        /// The function's name.
        name: String,
        /// The version this binary registers.
        registered: u32,
        /// The version found in the bytes.
        found: u32,
    },

    /// The capture's layout (its serde data model: field names and order,
    /// variant names, primitive types, sequence and map shapes) differs from
    /// the one this binary registers under the same name and version.
    ///
    /// Raised before a single capture byte is decoded: the bytes were made
    /// by a build whose capture struct changed without a `version` bump.
    #[error("function `{name}` (version {version}): the capture's layout changed; bump `version` in its registration")]
    LayoutChanged {
        /// The function's name.
        name: String,
        /// The version both sides register, though their layouts differ.
        version: u32,
    },

    /// The bytes use an envelope format this version of serfn does not read.
    #[error("unsupported serfn format version {found} (this build reads version {supported})")]
    Version {
        /// The format version found in the first byte.
        found: u8,
        /// The format version this build reads and writes.
        supported: u8,
    },

    /// The checksum over the envelope does not match: the bytes were
    /// corrupted or truncated on the way.
    #[error(
        "checksum mismatch: the bytes say {stored:#010x}, their content hashes to {computed:#010x}"
    )]
    Checksum {
        /// The checksum stored in the bytes.
        stored: u32,
        /// The checksum computed over the bytes received.
        computed: u32,
    },

    /// The bytes are not signed by the expected [`Key`](crate::codec::Key)
    /// for the expected context, or they are signed and the reader has no key.
    ///
    /// Raised before a single byte is decoded. `reason` says which: unsigned
    /// bytes given to a signed reader, signed bytes given to a plain one,
    /// bytes too short to hold a tag, or a tag that does not match. A
    /// mismatch cannot tell a changed byte from another key or another
    /// context, by design. See [`codec::from_bytes_signed`](crate::codec::from_bytes_signed).
    #[error("unauthenticated input: {reason}")]
    Unauthenticated {
        /// Why the bytes were refused.
        reason: String,
    },

    /// The input is shorter than the smallest possible encoding.
    #[error("input of {len} bytes is too short to hold a serfn envelope (at least {min} bytes)")]
    Truncated {
        /// The length received.
        len: usize,
        /// The least length an envelope can have.
        min: usize,
    },

    /// The input, or a length inside it, exceeds the decode size limit.
    #[error("{len} bytes exceed the decode limit of {limit} bytes")]
    TooLarge {
        /// The size found (or claimed by a length prefix).
        len: u64,
        /// The configured limit, see [`Limits::max_bytes`](crate::Limits::max_bytes).
        limit: usize,
    },

    /// The input nests deeper than the configured limit.
    #[error("input nests deeper than the limit of {limit} levels")]
    TooDeep {
        /// The configured limit, see [`Limits::max_depth`](crate::Limits::max_depth).
        limit: usize,
    },

    /// The bytes are not a valid encoding of the expected value.
    #[error("malformed input: {source}")]
    Decode {
        /// What the codec reported.
        #[source]
        source: BoxedSource,
    },

    /// A value could not be encoded (its `Serialize` impl failed).
    #[error("cannot encode: {source}")]
    Encode {
        /// What the codec or the value's `Serialize` impl reported.
        #[source]
        source: BoxedSource,
    },

    /// Reading or writing the bytes failed.
    #[error("I/O error: {source}")]
    Io {
        /// The underlying I/O error.
        #[source]
        source: BoxedSource,
    },

    /// The function panicked while it ran; the message is the panic's.
    ///
    /// In a [`Pool`](crate::Pool)'s worker or a Redis worker, a panic hook
    /// notes where the panic happened, and its backtrace when
    /// `RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` enable one in the worker's
    /// environment (see [`PoolBuilder::env`](crate::PoolBuilder::env)). The
    /// hook then runs the one installed before it, so the worker still prints
    /// the panic to stderr as usual. Display shows the location, not the
    /// backtrace.
    #[error("function `{name}` panicked{}: {message}", at(.location))]
    Panicked {
        /// The function's name.
        name: String,
        /// The panic message (its payload if that was a string).
        message: String,
        /// Where it panicked, as `file:line:column`: `None` where no hook
        /// noted it (an in-process [`DynFn::call_bytes`](crate::DynFn::call_bytes)
        /// in a program that did not start as a worker, or a program that
        /// replaced the hook).
        location: Option<String>,
        /// The stack backtrace at the panic, when the worker's environment
        /// enabled backtraces.
        backtrace: Option<String>,
    },

    /// The worker process running the task died (it aborted, exited, or was
    /// killed) before answering. The pool starts a new worker; the task is
    /// retried only if the pool was built with
    /// [`retries`](crate::PoolBuilder::retries).
    #[error("worker process {pid} died ({status}) while running `{name}`")]
    WorkerDied {
        /// The function the worker was running.
        name: String,
        /// The worker's process id.
        pid: u32,
        /// How it ended, such as `signal 9 (SIGKILL)` or `exit status: 3`.
        status: String,
    },

    /// The task ran past the pool's [`timeout`](crate::PoolBuilder::timeout):
    /// a sync function's worker was killed and replaced; an async
    /// function's item was dropped, and its worker went on with the others.
    #[error("`{name}` ran past its timeout of {timeout:?}")]
    Timeout {
        /// The function that ran too long.
        name: String,
        /// The timeout it ran past.
        timeout: std::time::Duration,
    },

    /// A worker process could not be started or did not connect.
    #[error("cannot start a serfn worker: {reason}")]
    WorkerStart {
        /// What went wrong, and what to check.
        reason: String,
    },

    /// The pool was dropped before the task finished.
    #[error("the pool was shut down before the task finished")]
    PoolClosed,

    /// The broker (Redis) failed: it could not be reached within the
    /// reconnect window, or it lost the job (restarted without persistence,
    /// or the job's keys expired). The items still waiting get this error.
    #[error("broker: {reason}")]
    Broker {
        /// What failed, and what was being done.
        reason: String,
    },

    /// The task was moved to the broker's dead-letter stream and never
    /// ran to an answer: it was delivered to workers more times than
    /// allowed (each died or lost it), or workers refused every copy sent
    /// (a key mismatch, named in `reason`).
    #[error(
        "a task of `{name}` went to the dead-letter stream after {deliveries} deliveries: {reason}"
    )]
    DeadLetter {
        /// The function the task called.
        name: String,
        /// How many times it was delivered.
        deliveries: u32,
        /// Why it was given up.
        reason: String,
    },
}

/// ` at file:line:col`, as in Rust's own panic message, when known.
fn at(location: &Option<String>) -> String {
    location
        .as_ref()
        .map_or_else(String::new, |location| format!(" at {location}"))
}

/// `Result` with serfn's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn decode(source: impl Into<BoxedSource>) -> Self {
        Error::Decode {
            source: source.into(),
        }
    }

    pub(crate) fn encode(source: impl Into<BoxedSource>) -> Self {
        Error::Encode {
            source: source.into(),
        }
    }

    /// A copy for each item of a chunk that failed as a whole. It goes
    /// through [`WireError`], the one variant-by-variant mapping: boxed
    /// sources are kept as their message (and an I/O error's kind).
    #[cfg(unix)]
    pub(crate) fn duplicate(&self) -> Self {
        WireError::from(self).into_error(None)
    }

    pub(crate) fn io(source: std::io::Error) -> Self {
        Error::Io {
            source: Box::new(source),
        }
    }
}
