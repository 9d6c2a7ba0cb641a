//! What travels through Redis: key names, and task and result entries, each
//! one codec-encoded field `e`, signed as a whole when a key is set.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec::{self, Key, Limits, TAG_LEN};
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

    /// Where genuine tasks that could not be run go, with the reason.
    pub(crate) fn dead(&self) -> String {
        format!("{}:dead", self.prefix)
    }

    /// Where entries a worker could not open go (failed authentication, or
    /// did not decode): apart from the dead letters, never attributed.
    pub(crate) fn forged(&self) -> String {
        format!("{}:forged", self.prefix)
    }

    /// How many entries were ever parked in [`forged`](Self::forged).
    pub(crate) fn forged_count(&self) -> String {
        format!("{}:forged:count", self.prefix)
    }

    /// Set by a driver that gave up on its job: workers skip its tasks.
    pub(crate) fn cancelled(&self, job: &str) -> String {
        format!("{}:job:{job}:cancelled", self.prefix)
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

    /// A worker's heartbeat: who it is and what it runs, while it lives.
    pub(crate) fn worker(&self, name: &str) -> String {
        format!("{}:worker:{name}", self.prefix)
    }

    /// The prefix itself.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
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
    pub(crate) header: TaskHeader,
    pub(crate) function: [u8; 32],
    #[serde(with = "bytes")]
    pub(crate) items: Vec<u8>,
}

/// What a task says of itself, and what its result and its dead letter
/// need of it: everything but its function and its items.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct TaskHeader {
    pub(crate) job: String,
    pub(crate) task: u64,
    /// The index of the chunk's first item in the job.
    pub(crate) first: u64,
    pub(crate) count: u32,
    /// The function's name, for errors about a task whose function is gone.
    pub(crate) name: String,
    /// Whether the items are one codec sequence for a typed batch, or a
    /// protocol items block for item-by-item calls.
    pub(crate) seq: bool,
    pub(crate) timeout_ms: Option<u64>,
    /// How long the job's results are kept after the last one, in seconds.
    pub(crate) ttl_s: u64,
}

/// What a worker answers for one task; `job` to `seq` repeat its header's.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct ResultEntry {
    pub(crate) job: String,
    pub(crate) task: u64,
    pub(crate) first: u64,
    pub(crate) count: u32,
    pub(crate) seq: bool,
    pub(crate) elapsed_ns: u64,
    pub(crate) worker: String,
    #[serde(with = "output")]
    pub(crate) output: std::result::Result<Vec<u8>, WireError>,
}

/// A `Vec<u8>` as one byte string, not a sequence of `u8`s: the same
/// bincode bytes, but encoded and decoded in one piece rather than byte by
/// byte through serde and the decode guard (most of a large task's cost).
mod bytes {
    use serde::de::{Deserializer, Error, Visitor};
    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl Visitor<'_> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            Ok(bytes.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(bytes)
        }
    }
}

/// A result's output with its bytes as in [`bytes`]; encoded as the
/// `Result` it stands for.
mod output {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::error::WireError;

    #[derive(Serialize)]
    #[serde(rename = "Result")]
    enum Borrowed<'a> {
        Ok(#[serde(serialize_with = "super::bytes::serialize")] &'a [u8]),
        Err(&'a WireError),
    }

    #[derive(Deserialize)]
    #[serde(rename = "Result")]
    enum Owned {
        Ok(#[serde(deserialize_with = "super::bytes::deserialize")] Vec<u8>),
        Err(WireError),
    }

    pub(super) fn serialize<S: Serializer>(
        output: &Result<Vec<u8>, WireError>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match output {
            Ok(bytes) => Borrowed::Ok(bytes),
            Err(error) => Borrowed::Err(error),
        }
        .serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Result<Vec<u8>, WireError>, D::Error> {
        Ok(match Owned::deserialize(deserializer)? {
            Owned::Ok(bytes) => Ok(bytes),
            Owned::Err(error) => Err(error),
        })
    }
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

/// Checks an entry's signature when a key is set, then decodes it under
/// `limits`. A key mismatch is named: an entry refused for want of a key
/// (or for having one) says so, rather than "bytes left over" or "the tag
/// does not match".
///
/// # Errors
/// [`Error::Unauthenticated`] when the signature fails, or without a key
/// when the entry is signed; the codec's errors when it does not decode.
pub(crate) fn open<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    key: Option<&Key>,
    context: Context,
    limits: &Limits,
) -> Result<T> {
    match key {
        Some(key) => match codec::verify(key, context.label(), bytes) {
            Ok(message) => codec::decode_value(message, limits),
            Err(_) if codec::decode_value::<T>(bytes, limits).is_ok() => Err(unauthenticated(
                "this entry is not signed, but a key is set",
            )),
            Err(_) => Err(unauthenticated(
                "signed with another key, or altered: the tag does not match",
            )),
        },
        None => codec::decode_value(bytes, limits).map_err(|error| {
            let tagged = bytes.len().checked_sub(TAG_LEN).map(|at| &bytes[..at]);
            match tagged {
                Some(message) if codec::decode_value::<T>(message, limits).is_ok() => {
                    unauthenticated(format!(
                        "this entry is signed, but this {} has no key",
                        context.reader()
                    ))
                }
                _ => error,
            }
        }),
    }
}

fn unauthenticated(reason: impl Into<String>) -> Error {
    Error::Unauthenticated {
        reason: reason.into(),
    }
}

/// Where a result entry goes: its leading fields, all a driver needs to fail
/// the task when the whole entry is over its limits.
#[derive(Deserialize)]
pub(crate) struct ResultRoute {
    pub(crate) job: String,
    pub(crate) task: u64,
    pub(crate) first: u64,
    pub(crate) count: u32,
}

/// The route of a result entry whose signature (with a key) holds, read
/// under the default limits whatever its size.
pub(crate) fn open_route(bytes: &[u8], key: Option<&Key>) -> Result<ResultRoute> {
    let bytes = match key {
        Some(key) => codec::verify(key, Context::Result.label(), bytes)?,
        None => bytes,
    };
    codec::decode_head(bytes, &Limits::default())
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

    /// Who reads entries of this kind.
    fn reader(self) -> &'static str {
        match self {
            Context::Task => "worker",
            Context::Result => "driver",
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
        // Content-addressed: bytes that do not hash to their name were altered.
        return Err(unauthenticated(format!(
            "the function stored under {} does not hash to it",
            hex(hash)
        )));
    }
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entries as they were encoded before [`bytes`]: sequences of `u8`.
    #[derive(Serialize)]
    struct PlainResult {
        job: String,
        task: u64,
        first: u64,
        count: u32,
        seq: bool,
        elapsed_ns: u64,
        worker: String,
        output: std::result::Result<Vec<u8>, WireError>,
    }

    #[test]
    fn byte_strings_encode_as_before_and_round_trip() {
        let limits = Limits::default();
        let error = WireError::from(&Error::decode("no"));
        for output in [
            Ok((0..=255).collect::<Vec<u8>>()),
            Ok(Vec::new()),
            Err(error),
        ] {
            let plain = PlainResult {
                job: "j".into(),
                task: 7,
                first: 70,
                count: 3,
                seq: true,
                elapsed_ns: 5,
                worker: "w".into(),
                output: output.clone(),
            };
            let result = ResultEntry {
                job: "j".into(),
                task: 7,
                first: 70,
                count: 3,
                seq: true,
                elapsed_ns: 5,
                worker: "w".into(),
                output,
            };
            let sealed = seal(&result, None, Context::Result).unwrap();
            assert_eq!(sealed, codec::encode_value(&plain).unwrap());
            let opened: ResultEntry = open(&sealed, None, Context::Result, &limits).unwrap();
            assert_eq!(opened.output, plain.output);
        }
        let task = TaskEntry {
            header: TaskHeader {
                job: "j".into(),
                task: 1,
                first: 0,
                count: 2,
                name: "n".into(),
                seq: false,
                timeout_ms: None,
                ttl_s: 60,
            },
            function: [9; 32],
            items: vec![1, 2, 3],
        };
        let sealed = seal(&task, None, Context::Task).unwrap();
        let opened: TaskEntry = open(&sealed, None, Context::Task, &limits).unwrap();
        assert_eq!(opened.items, vec![1, 2, 3]);
    }

    #[test]
    fn a_key_mismatch_is_named() {
        let limits = Limits::default();
        let (ours, theirs) = (Key::new([1u8; 32]), Key::new([2u8; 32]));
        let result = ResultEntry {
            job: "j".into(),
            task: 0,
            first: 0,
            count: 1,
            seq: false,
            elapsed_ns: 0,
            worker: "w".into(),
            output: Ok(vec![1]),
        };
        let reason = |bytes: &[u8], key: Option<&Key>, context| match open::<ResultEntry>(
            bytes, key, context, &limits,
        ) {
            Err(Error::Unauthenticated { reason }) => reason,
            other => panic!("{other:?}"),
        };
        let signed = seal(&result, Some(&ours), Context::Result).unwrap();
        let plain = seal(&result, None, Context::Result).unwrap();
        assert_eq!(
            reason(&signed, None, Context::Result),
            "this entry is signed, but this driver has no key"
        );
        assert_eq!(
            reason(&signed, None, Context::Task),
            "this entry is signed, but this worker has no key"
        );
        assert_eq!(
            reason(&plain, Some(&ours), Context::Result),
            "this entry is not signed, but a key is set"
        );
        assert!(reason(&signed, Some(&theirs), Context::Result).contains("another key"));
        let mut flipped = signed.clone();
        flipped[2] ^= 1;
        assert!(reason(&flipped, Some(&ours), Context::Result).contains("altered"));
        // Garbage is a decode error, not a key mismatch.
        assert!(matches!(
            open::<ResultEntry>(&[0xff; 8], None, Context::Result, &limits),
            Err(Error::Decode { .. })
        ));
    }
}
