//! [`WireError`]: an [`Error`] as plain data, for what crosses a process
//! boundary (a pool's socket, a Redis stream).

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BoxedSource, Error};

/// An [`Error`] as plain data, variant for variant and field for field: what
/// a worker sends its pool, and what [`Error::duplicate`] copies through.
///
/// Both conversions match exhaustively, so a new `Error` variant does not
/// compile until it has a wire form here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum WireError {
    UnknownFunction {
        name: String,
    },
    DuplicateFunction {
        name: String,
        locations: String,
    },
    SignatureMismatch {
        name: String,
        expected: String,
        found: String,
    },
    VersionMismatch {
        name: String,
        registered: u32,
        found: u32,
    },
    LayoutChanged {
        name: String,
        version: u32,
    },
    Version {
        found: u8,
        supported: u8,
    },
    Checksum {
        stored: u32,
        computed: u32,
    },
    Unauthenticated {
        reason: String,
    },
    Truncated {
        len: usize,
        min: usize,
    },
    TooLarge {
        len: u64,
        limit: usize,
    },
    TooDeep {
        limit: usize,
    },
    Decode {
        source: WireSource,
    },
    Encode {
        source: WireSource,
    },
    Io {
        source: WireSource,
        /// The [`io::ErrorKind`]'s name, see [`io_kind`].
        kind: String,
    },
    Panicked {
        name: String,
        message: String,
        location: Option<String>,
        backtrace: Option<String>,
    },
    WorkerDied {
        name: String,
        pid: u32,
        status: String,
    },
    Timeout {
        name: String,
        timeout: Duration,
    },
    WorkerStart {
        reason: String,
    },
    PoolClosed,
    Broker {
        reason: String,
    },
    DeadLetter {
        name: String,
        deliveries: u32,
        reason: String,
    },
}

/// A boxed source as data: its message, and the worker it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct WireSource {
    message: String,
    worker: Option<u32>,
}

/// A boxed source rebuilt from a [`WireSource`]. It names the worker once,
/// however many times it is copied or relayed (as through a worker that
/// runs a pool of its own).
#[derive(Debug)]
struct Relayed {
    message: String,
    worker: Option<u32>,
}

impl fmt::Display for Relayed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.worker {
            Some(pid) => write!(f, "{} (in worker process {pid})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl StdError for Relayed {}

impl WireSource {
    fn of(source: &(dyn StdError + Send + Sync + 'static)) -> Self {
        match source.downcast_ref::<Relayed>() {
            Some(relayed) => WireSource {
                message: relayed.message.clone(),
                worker: relayed.worker,
            },
            None => WireSource {
                message: source.to_string(),
                worker: None,
            },
        }
    }

    /// The source, marked as from `worker` unless it already names one.
    fn into_source(self, worker: Option<u32>) -> Relayed {
        Relayed {
            message: self.message,
            worker: self.worker.or(worker),
        }
    }
}

/// The I/O error kinds that cross by name; any other arrives as `Other`
/// (its message is kept either way).
const IO_KINDS: [io::ErrorKind; 20] = {
    use io::ErrorKind::*;
    [
        NotFound,
        PermissionDenied,
        ConnectionRefused,
        ConnectionReset,
        ConnectionAborted,
        NotConnected,
        AddrInUse,
        AddrNotAvailable,
        BrokenPipe,
        AlreadyExists,
        WouldBlock,
        InvalidInput,
        InvalidData,
        TimedOut,
        WriteZero,
        Interrupted,
        Unsupported,
        UnexpectedEof,
        OutOfMemory,
        Other,
    ]
};

fn io_kind(name: &str) -> io::ErrorKind {
    IO_KINDS
        .into_iter()
        .find(|kind| format!("{kind:?}") == name)
        .unwrap_or(io::ErrorKind::Other)
}

fn io_source(source: &BoxedSource) -> (WireSource, String) {
    match source.downcast_ref::<io::Error>() {
        Some(error) => {
            let message = match error.get_ref() {
                Some(inner) => WireSource::of(inner),
                None => WireSource::of(&**source),
            };
            (message, format!("{:?}", error.kind()))
        }
        None => (
            WireSource::of(&**source),
            format!("{:?}", io::ErrorKind::Other),
        ),
    }
}

impl From<&Error> for WireError {
    fn from(error: &Error) -> Self {
        match error {
            Error::UnknownFunction { name } => WireError::UnknownFunction { name: name.clone() },
            Error::DuplicateFunction { name, locations } => WireError::DuplicateFunction {
                name: name.clone(),
                locations: locations.clone(),
            },
            Error::SignatureMismatch {
                name,
                expected,
                found,
            } => WireError::SignatureMismatch {
                name: name.clone(),
                expected: expected.clone(),
                found: found.clone(),
            },
            Error::VersionMismatch {
                name,
                registered,
                found,
            } => WireError::VersionMismatch {
                name: name.clone(),
                registered: *registered,
                found: *found,
            },
            Error::LayoutChanged { name, version } => WireError::LayoutChanged {
                name: name.clone(),
                version: *version,
            },
            &Error::Version { found, supported } => WireError::Version { found, supported },
            &Error::Checksum { stored, computed } => WireError::Checksum { stored, computed },
            Error::Unauthenticated { reason } => WireError::Unauthenticated {
                reason: reason.clone(),
            },
            &Error::Truncated { len, min } => WireError::Truncated { len, min },
            &Error::TooLarge { len, limit } => WireError::TooLarge { len, limit },
            &Error::TooDeep { limit } => WireError::TooDeep { limit },
            Error::Decode { source } => WireError::Decode {
                source: WireSource::of(&**source),
            },
            Error::Encode { source } => WireError::Encode {
                source: WireSource::of(&**source),
            },
            Error::Io { source } => {
                let (source, kind) = io_source(source);
                WireError::Io { source, kind }
            }
            Error::Panicked {
                name,
                message,
                location,
                backtrace,
            } => WireError::Panicked {
                name: name.clone(),
                message: message.clone(),
                location: location.clone(),
                backtrace: backtrace.clone(),
            },
            Error::WorkerDied { name, pid, status } => WireError::WorkerDied {
                name: name.clone(),
                pid: *pid,
                status: status.clone(),
            },
            Error::Timeout { name, timeout } => WireError::Timeout {
                name: name.clone(),
                timeout: *timeout,
            },
            Error::WorkerStart { reason } => WireError::WorkerStart {
                reason: reason.clone(),
            },
            Error::PoolClosed => WireError::PoolClosed,
            Error::Broker { reason } => WireError::Broker {
                reason: reason.clone(),
            },
            Error::DeadLetter {
                name,
                deliveries,
                reason,
            } => WireError::DeadLetter {
                name: name.clone(),
                deliveries: *deliveries,
                reason: reason.clone(),
            },
        }
    }
}

impl From<Error> for WireError {
    fn from(error: Error) -> Self {
        WireError::from(&error)
    }
}

impl WireError {
    /// The error again; its boxed source, if any, names `worker` as where
    /// it came from (unless it names a worker already).
    pub(crate) fn into_error(self, worker: Option<u32>) -> Error {
        let boxed = |source: WireSource| -> BoxedSource { Box::new(source.into_source(worker)) };
        match self {
            WireError::UnknownFunction { name } => Error::UnknownFunction { name },
            WireError::DuplicateFunction { name, locations } => {
                Error::DuplicateFunction { name, locations }
            }
            WireError::SignatureMismatch {
                name,
                expected,
                found,
            } => Error::SignatureMismatch {
                name,
                expected,
                found,
            },
            WireError::VersionMismatch {
                name,
                registered,
                found,
            } => Error::VersionMismatch {
                name,
                registered,
                found,
            },
            WireError::LayoutChanged { name, version } => Error::LayoutChanged { name, version },
            WireError::Version { found, supported } => Error::Version { found, supported },
            WireError::Checksum { stored, computed } => Error::Checksum { stored, computed },
            WireError::Unauthenticated { reason } => Error::Unauthenticated { reason },
            WireError::Truncated { len, min } => Error::Truncated { len, min },
            WireError::TooLarge { len, limit } => Error::TooLarge { len, limit },
            WireError::TooDeep { limit } => Error::TooDeep { limit },
            WireError::Decode { source } => Error::Decode {
                source: boxed(source),
            },
            WireError::Encode { source } => Error::Encode {
                source: boxed(source),
            },
            WireError::Io { source, kind } => Error::Io {
                source: Box::new(io::Error::new(io_kind(&kind), source.into_source(worker))),
            },
            WireError::Panicked {
                name,
                message,
                location,
                backtrace,
            } => Error::Panicked {
                name,
                message,
                location,
                backtrace,
            },
            WireError::WorkerDied { name, pid, status } => Error::WorkerDied { name, pid, status },
            WireError::Timeout { name, timeout } => Error::Timeout { name, timeout },
            WireError::WorkerStart { reason } => Error::WorkerStart { reason },
            WireError::PoolClosed => Error::PoolClosed,
            WireError::Broker { reason } => Error::Broker { reason },
            WireError::DeadLetter {
                name,
                deliveries,
                reason,
            } => Error::DeadLetter {
                name,
                deliveries,
                reason,
            },
        }
    }
}
