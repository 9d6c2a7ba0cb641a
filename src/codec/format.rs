//! The wire format: bincode 2 (the default `bincode` feature) or postcard 1
//! (the `postcard` feature; it wins when both are enabled, so that a
//! dependency's default features cannot override an explicit choice).
//!
//! Everything format-specific lives in this module: one file per format
//! beside it, each with `VERSION` (the envelope's version byte, distinct per
//! format), `encode_into` and `decode_seed`. serfn relies on properties any
//! compact serde format has (bincode and postcard both do): a tuple encodes
//! as the concatenation of its elements, a sequence as its length (as
//! [`encode_len_into`] writes it) followed by its elements, and a value's
//! encoding does not depend on the type parameters of the enum around it.
//! For the guard's memory bound, `deserialize_str` and `deserialize_bytes`
//! must check a length against the input left before allocating.

use serde::de::{DeserializeOwned, DeserializeSeed};
use serde::Serialize;

use super::{guard, Limits};
use crate::error::Result;

#[cfg(not(any(feature = "bincode", feature = "postcard")))]
compile_error!("serfn needs a wire format: enable the `bincode` (default) or `postcard` feature");

#[cfg(all(feature = "bincode", not(feature = "postcard")))]
mod bincode;
#[cfg(all(feature = "bincode", not(feature = "postcard")))]
use self::bincode as imp;

#[cfg(feature = "postcard")]
mod postcard;
#[cfg(feature = "postcard")]
use self::postcard as imp;

pub(super) use self::imp::VERSION;

/// Appends the encoding of `value` to `buf`.
#[inline]
pub(super) fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<()> {
    imp::encode_into(value, buf)
}

/// Writes the encoding of `value` to `writer`: for a caller that watches
/// the bytes as they are written.
pub(super) fn encode_to<T: Serialize + ?Sized, W: std::io::Write>(
    value: &T,
    writer: W,
) -> Result<()> {
    imp::encode_to(value, writer)
}

/// Appends the length prefix of a sequence of `len` elements: a worker
/// writes it before the results it encodes one by one.
#[inline]
pub(super) fn encode_len_into(len: usize, buf: &mut Vec<u8>) -> Result<()> {
    write_varint(len as u64, buf);
    Ok(())
}

/// What follows the length prefix of `bytes`, if that prefix says one
/// element: a length within [`ONE_BYTE_MAX`] is that one byte.
#[inline]
pub(super) fn after_len_one(bytes: &[u8]) -> Option<&[u8]> {
    match bytes {
        [1, rest @ ..] => Some(rest),
        _ => None,
    }
}

/// The largest integer the format writes as one byte.
const ONE_BYTE_MAX: u64 = imp::ONE_BYTE_MAX;

/// Appends `value` as serde's `serialize_u64` writes it: for an integer of
/// up to 64 bits, the same bytes as `serialize_u32` and a `usize` length.
#[inline]
fn write_varint(value: u64, out: &mut Vec<u8>) {
    if value <= ONE_BYTE_MAX {
        out.push(value as u8);
        return;
    }
    // Encoding a `u64` into a `Vec` cannot fail in either format.
    let encoded = imp::encode_into(&value, out);
    debug_assert!(encoded.is_ok());
}

/// Appends a `u32` as serde's `serialize_u32` writes it.
pub(crate) fn write_u32(value: u32, out: &mut Vec<u8>) {
    write_varint(value.into(), out);
}

/// Appends the length of a byte string of `len` bytes, as serde's
/// `serialize_bytes` writes it before the bytes.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))] // `stream`'s
pub(crate) fn write_len(len: u64, out: &mut Vec<u8>) {
    write_varint(len, out);
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
    // One byte, the length of any content up to `ONE_BYTE_MAX` bytes.
    out.push(0);
    out.len()
}

/// Ends the byte string [`begin_bytes`] started at `start`.
#[inline]
pub(crate) fn end_bytes(start: usize, out: &mut Vec<u8>) {
    let len = out.len() - start;
    if len as u64 <= ONE_BYTE_MAX {
        out[start - 1] = len as u8;
        return;
    }
    end_long_bytes(start, len, out);
}

/// [`end_bytes`] past one byte of length, out of line: its frame kept
/// `end_bytes` from being inlined, which cost more than the rest of it.
#[cold]
#[inline(never)]
fn end_long_bytes(start: usize, len: usize, out: &mut Vec<u8>) {
    let mut prefix = Vec::with_capacity(10);
    write_varint(len as u64, &mut prefix);
    out.splice(start - 1..start, prefix);
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
            // The common case, a short length: one byte.
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

    /// Any other case, and every error, as the format reads and words it.
    #[cold]
    fn decode<T: serde::Deserialize<'a>>(&mut self) -> Result<T> {
        let (value, used) = imp::decode_plain::<T>(self.rest)?;
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
#[inline]
pub(super) fn decode_seed<'de, S>(
    bytes: &'de [u8],
    limits: &Limits,
    seed: S,
) -> Result<(S::Value, usize)>
where
    S: DeserializeSeed<'de>,
{
    imp::decode_seed(bytes, limits, seed)
}

/// Decodes a `T` from the start of `bytes` without the guard, for a type
/// that cannot allocate or nest by what the input says.
pub(super) fn decode_unguarded<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize)> {
    imp::decode_plain(bytes)
}

/// `seed` behind the guard: what each format's `decode_seed` deserializes.
struct Guarded<'l, S> {
    limits: &'l Limits,
    seed: S,
}

impl<'l, S> Guarded<'l, S> {
    fn new(limits: &'l Limits, seed: S) -> Self {
        Guarded { limits, seed }
    }
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
