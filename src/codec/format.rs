//! The wire format: bincode 2 with its `serde` support.
//!
//! Everything format-specific lives in this file. serfn relies on two
//! properties any compact serde format has (bincode and postcard both do):
//! a tuple encodes as the concatenation of its elements, a sequence as its
//! length (as [`encode_len_into`] writes it) followed by its elements, and a
//! value's encoding does not depend on the type parameters of the enum around it.

use serde::de::{DeserializeOwned, DeserializeSeed};
use serde::Serialize;

use super::{clear_stashed, guard, take_stashed, Limits};
use crate::error::{Error, Result};

fn config() -> bincode::config::Configuration {
    // Varint integers, little endian. No bincode limit: `guard` enforces ours,
    // which unlike bincode's can be set at run time.
    bincode::config::standard()
}

/// Appends the encoding of `value` to `buf`.
pub(super) fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<()> {
    bincode::serde::encode_into_std_write(value, buf, config())
        .map(drop)
        .map_err(Error::encode)
}

/// Appends the length prefix of a sequence of `len` elements: a worker
/// writes it before the results it encodes one by one.
pub(super) fn encode_len_into(len: usize, buf: &mut Vec<u8>) -> Result<()> {
    encode_into(&(len as u64), buf)
}

/// `value` as a varint, as bincode writes an integer of up to 64 bits, and
/// its length.
fn varint(value: u64) -> ([u8; 9], usize) {
    let mut buf = [0u8; 9];
    // A varint of a u64 takes 9 bytes at most: the slice always fits.
    let len = bincode::encode_into_slice(value, &mut buf, config()).unwrap_or(0);
    (buf, len)
}

/// The largest value bincode writes as one byte.
const ONE_BYTE_MAX: u64 = 250;

#[inline]
fn write_varint(value: u64, out: &mut Vec<u8>) {
    if value <= ONE_BYTE_MAX {
        out.push(value as u8);
        return;
    }
    let (buf, len) = varint(value);
    out.extend_from_slice(&buf[..len]);
}

/// Appends a `u32` as serde's `serialize_u32` writes it.
pub(crate) fn write_u32(value: u32, out: &mut Vec<u8>) {
    write_varint(value.into(), out);
}

/// Appends a byte string (or a `str`'s bytes) as serde's `serialize_bytes`
/// writes it: its length, then the bytes.
pub(crate) fn write_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    write_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Starts a byte string whose content the caller appends to `out` next;
/// [`end_bytes`] writes its length in front. Returns where the content starts.
pub(crate) fn begin_bytes(out: &mut Vec<u8>) -> usize {
    // One byte, the length of any content under 251 bytes.
    out.push(0);
    out.len()
}

/// Ends the byte string [`begin_bytes`] started at `start`.
pub(crate) fn end_bytes(start: usize, out: &mut Vec<u8>) {
    let len = out.len() - start;
    if len as u64 <= ONE_BYTE_MAX {
        out[start - 1] = len as u8;
        return;
    }
    let (prefix, prefix_len) = varint(len as u64);
    out.splice(start - 1..start, prefix[..prefix_len].iter().copied());
}

/// Reads header fields written by [`write_u32`] and [`write_bytes`].
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// A byte string, borrowed: its length is checked against the input left.
    #[inline]
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8]> {
        match self.rest.split_first() {
            // The common case, a length under 251: one byte.
            Some((&len, rest))
                if u64::from(len) <= ONE_BYTE_MAX && usize::from(len) <= rest.len() =>
            {
                let (bytes, rest) = rest.split_at(usize::from(len));
                self.rest = rest;
                Ok(bytes)
            }
            _ => self.decode::<&'a [u8]>(),
        }
    }

    /// A `u32`, as serde's `deserialize_u32` reads it.
    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32> {
        match self.rest.split_first() {
            Some((&value, rest)) if u64::from(value) <= ONE_BYTE_MAX => {
                self.rest = rest;
                Ok(value.into())
            }
            _ => self.decode::<u32>(),
        }
    }

    /// Any other case, and every error, as bincode reads and words it.
    #[cold]
    fn decode<T: bincode::BorrowDecode<'a, ()>>(&mut self) -> Result<T> {
        let (value, used) = bincode::borrow_decode_from_slice::<T, _>(self.rest, config())
            .map_err(|error| Error::decode(describe(&error)))?;
        self.rest = &self.rest[used..];
        Ok(value)
    }

    /// What is left unread.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

/// Decodes with `seed` from the start of `bytes` under `limits`; returns the
/// value and how many bytes it used.
pub(super) fn decode_seed<'de, S>(
    bytes: &'de [u8],
    limits: &Limits,
    seed: S,
) -> Result<(S::Value, usize)>
where
    S: DeserializeSeed<'de>,
{
    clear_stashed();
    bincode::serde::seed_decode_from_slice(Guarded { limits, seed }, bytes, config())
        .map_err(|error| take_stashed().unwrap_or_else(|| Error::decode(describe(&error))))
}

/// Decodes a `T` from the start of `bytes` without the guard, for a type
/// that cannot allocate or nest by what the input says.
pub(super) fn decode_unguarded<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize)> {
    bincode::serde::decode_from_slice(bytes, config())
        .map_err(|error| Error::decode(describe(&error)))
}

/// What went wrong, in words: bincode's own `Display` is its `Debug`.
fn describe(error: &bincode::error::DecodeError) -> String {
    use bincode::error::DecodeError as E;
    match error {
        E::UnexpectedEnd { additional } => {
            format!("the input ends early ({additional} more bytes needed)")
        }
        E::InvalidBooleanValue(value) => format!("{value} is not a boolean (0 or 1)"),
        E::InvalidCharEncoding(bytes) => format!("{bytes:?} is not a char"),
        E::UnexpectedVariant {
            type_name, found, ..
        } => format!("variant index {found} does not exist in `{type_name}`"),
        E::OutsideUsizeRange(value) => format!("{value} does not fit in a usize"),
        E::InvalidIntegerType { expected, found } => {
            format!("expected an integer of type {expected:?}, found {found:?}")
        }
        E::Utf8 { inner } => format!("a string is not UTF-8: {inner}"),
        E::OtherString(message) => message.clone(),
        E::Other(message) => (*message).to_owned(),
        other => format!("{other:?}"),
    }
}

struct Guarded<'l, S> {
    limits: &'l Limits,
    seed: S,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Guarded<'_, S> {
    type Value = S::Value;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<S::Value, D::Error> {
        guard::deserialize_seed(deserializer, self.limits, self.seed)
    }
}
