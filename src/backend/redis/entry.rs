//! What travels through Redis: key names, and task and result entries, each
//! one codec-encoded field `e`, signed as a whole when a key is set.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec::{self, Key, Limits};
use crate::error::{Error, Result, WireError};

/// The stream field that holds an entry.
pub(crate) const FIELD: &str = "e";

/// Domain labels: a result's bytes can never pass for a task's, nor a
/// function's for either.
const TASK_CONTEXT: &[u8] = b"serfn/redis/task";
const RESULT_CONTEXT: &[u8] = b"serfn/redis/result";
const FUNCTION_CONTEXT: &[u8] = b"serfn/redis/function";

/// The names of everything serfn keeps under one prefix.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// The stream of tasks, read by the workers' consumer group.
    pub(crate) fn tasks(&self) -> String {
        format!("{}:tasks", self.prefix)
    }

    /// The workers' consumer group.
    pub(crate) fn group(&self) -> String {
        format!("{}:workers", self.prefix)
    }

    /// Where tasks that could not be run go, with the reason.
    pub(crate) fn dead(&self) -> String {
        format!("{}:dead", self.prefix)
    }

    /// A function's encoding, by the SHA-256 of it.
    pub(crate) fn function(&self, hash: &[u8; 32]) -> String {
        format!("{}:fn:{}", self.prefix, hex(hash))
    }

    /// A job's results.
    pub(crate) fn results(&self, job: &str) -> String {
        format!("{}:job:{job}:results", self.prefix)
    }

    /// A job's description: how many tasks and items it has.
    pub(crate) fn job(&self, job: &str) -> String {
        format!("{}:job:{job}", self.prefix)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// One task: a chunk of items of one job, for the function of that hash.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct TaskEntry {
    pub(crate) job: String,
    pub(crate) task: u64,
    /// The index of the chunk's first item in the job.
    pub(crate) first: u64,
    pub(crate) count: u32,
    pub(crate) function: [u8; 32],
    /// The function's name, for errors about a task whose function is gone.
    pub(crate) name: String,
    /// Whether `items` is one codec sequence for a typed batch, or a
    /// protocol items block for item-by-item calls.
    pub(crate) seq: bool,
    pub(crate) timeout_ms: Option<u64>,
    /// How long the job's results are kept after the last one, in seconds.
    pub(crate) ttl_s: u64,
    pub(crate) items: Vec<u8>,
}

/// What a worker answers for one task.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct ResultEntry {
    pub(crate) job: String,
    pub(crate) task: u64,
    pub(crate) first: u64,
    pub(crate) count: u32,
    pub(crate) seq: bool,
    pub(crate) elapsed_ns: u64,
    pub(crate) worker: String,
    pub(crate) output: std::result::Result<Vec<u8>, WireError>,
}

/// Encodes and, with a key, signs an entry.
pub(crate) fn seal<T: Serialize>(
    value: &T,
    key: Option<&Key>,
    context: Context,
) -> Result<Vec<u8>> {
    let bytes = codec::encode_value(value)?;
    Ok(match key {
        Some(key) => codec::sign(key, context.label(), bytes),
        None => bytes,
    })
}

/// Checks an entry's signature when a key is set, then decodes it under `limits`.
pub(crate) fn open<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    key: Option<&Key>,
    context: Context,
    limits: &Limits,
) -> Result<T> {
    let bytes = match key {
        Some(key) => codec::verify(key, context.label(), bytes)?,
        None => bytes,
    };
    codec::decode_value(bytes, limits)
}

/// What an entry is, so that one kind can never be taken for another.
#[derive(Clone, Copy)]
pub(crate) enum Context {
    Task,
    Result,
}

impl Context {
    fn label(self) -> &'static [u8] {
        match self {
            Context::Task => TASK_CONTEXT,
            Context::Result => RESULT_CONTEXT,
        }
    }
}

/// A function as stored: its envelope, signed with a key.
pub(crate) fn seal_function(envelope: &[u8], key: Option<&Key>) -> Vec<u8> {
    match key {
        Some(key) => codec::sign(key, FUNCTION_CONTEXT, envelope),
        None => envelope.to_vec(),
    }
}

/// The envelope of a stored function, checked against its signature and
/// against the hash it was fetched by.
pub(crate) fn open_function<'b>(
    stored: &'b [u8],
    key: Option<&Key>,
    hash: &[u8; 32],
) -> Result<&'b [u8]> {
    let envelope = match key {
        Some(key) => codec::verify(key, FUNCTION_CONTEXT, stored)?,
        None => stored,
    };
    if &sha256(envelope) != hash {
        return Err(Error::decode(format!(
            "the function stored under {} does not hash to it",
            hex(hash)
        )));
    }
    Ok(envelope)
}
